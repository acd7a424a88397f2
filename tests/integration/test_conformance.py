"""RFC 6455 / RFC 7692 conformance of the gateway, organised like the public
Autobahn|Testsuite categories, against the mirror class (every message comes
back unchanged, text as text, binary as binary).

Every case runs over ws and wss (the `ep` fixture) and has an
Autobahn-style id ("1.1.1") whose first number is the Autobahn category.
These ids are Autobahn's own, doing what Autobahn's case of that number
does: 1.1.1-1.2.8, 2.1-2.11, 5.1-5.20, 6.1-6.4, 6.5.1-6.23.7 (Autobahn's
UTF-8 sequences), 7.1.1-7.1.5, 7.3.x, 7.5.1, 7.7.x, 7.9.x, 9.x (with this
server's 1 MiB cap in place of Autobahn's 16 MB), 10.1.1, 12.1.x (its
message sizes) and 13.1-13.7 (its offers). Other ids in a category are
additions; 3.x and 4.x cover Autobahn's cases as a full cross product
(every RSV value on every frame type, every reserved opcode in every
variant) under ids of their own.

Each case asserts the exact frames that come back (opcode and bytes, or the
exact close code), that the server then closes TCP, and after every case
that fails the connection, that a fresh connection is still served.

The raw client and its checks of what the server sends (unmasked frames,
minimal lengths, RSV bits, UTF-8, nothing after close) are in wsconf.py.

Cases where RFC 6455 lets the server choose, and this suite accepts more
than one outcome, say so where they are defined (search "EITHER").
"""
import asyncio
import struct

import pytest

from wsconf import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                    RSV1, RSV2, RSV3, Endpoint, HandshakeRefused, binary_of_len, close_payload,
                    deflate_max_distance, deflate_raw, fragments, frame, offer_string, parse_extensions,
                    pmd_offer_valid, pmd_response_problems, text_of_len, utf8_fail_index)

MIB = 1 << 20
MAX_MESSAGE = MIB          # the gateway's default --max-frame and --max-message

SCHEMES = ["ws", "wss"]


@pytest.fixture(params=SCHEMES)
def ep(request, roomd):
    return Endpoint.of(roomd, request.param)


def path(case):
    return "/mirror/conf-" + case.replace(".", "-")


def cases(table):
    """[(id, *values)] -> pytest params with the id."""
    return [pytest.param(*row[1:], id=row[0]) for row in table]


# --- common checks --------------------------------------------------------------

def close_cleanly(c, code=1000):
    """Our close is echoed with the same code and nothing else, then TCP ends."""
    c.send_close(code)
    events, got, reason = c.recv_until_close()
    assert events == [], "unexpected frames before the close echo: %r" % events
    assert got == code, (got, reason)
    assert c.expect_eof()
    c.close()


def expect_failed(c, code, before=()):
    """The server fails the connection with `code` after exactly the events
    `before`, then closes TCP."""
    events, got, reason = c.recv_until_close()
    assert events == list(before), "frames before the close: %r" % events
    assert got == code, "closed with %d (%r), expected %d" % (got, reason, code)
    if code == 1005:
        assert c.closed_seen == b"", c.closed_seen
    assert c.expect_eof()
    c.close()


def still_serving(ep):
    """A fresh connection gets its messages back: the failed one hurt no one."""
    with ep.connect("/mirror/conf-fresh") as c:
        c.send_message(OP_TEXT, "still here ✓".encode())
        c.send_message(OP_BINARY, b"\x00\xff")
        assert c.recv() == (OP_TEXT, "still here ✓".encode())
        assert c.recv() == (OP_BINARY, b"\x00\xff")
        close_cleanly(c)


def payload_for(op, n, seed=0):
    return text_of_len(n, seed) if op == OP_TEXT else binary_of_len(n, seed)


# === 1 framing ======================================================================

LENGTHS = [0, 125, 126, 127, 128, 65535, 65536]
FRAMING = []
for _g, _op in ((1, OP_TEXT), (2, OP_BINARY)):
    for _i, _n in enumerate(LENGTHS, 1):
        FRAMING.append(("1.%d.%d" % (_g, _i), _op, _n, None))
    FRAMING.append(("1.%d.8" % _g, _op, 65536, 997))           # Autobahn: 997-byte chops
    FRAMING.append(("1.%d.9" % _g, _op, MAX_MESSAGE, None))    # exactly the cap
    FRAMING.append(("1.%d.10" % _g, _op, MAX_MESSAGE - 1, 65536))
    FRAMING.append(("1.%d.11" % _g, _op, 125, 1))              # 1-byte chops
    FRAMING.append(("1.%d.12" % _g, _op, 126, 1))
    FRAMING.append(("1.%d.13" % _g, _op, 128, 1))
    FRAMING.append(("1.%d.14" % _g, _op, 1, 1))
    FRAMING.append(("1.%d.15" % _g, _op, 300000, 4093))


@pytest.mark.parametrize("op,n,chop", cases(FRAMING))
def test_1_framing(ep, request, op, n, chop):
    """A single-frame message of n bytes (written in `chop`-byte pieces) comes
    back as the same opcode and bytes; the server's frame header uses the
    minimal length form (checked in wsconf)."""
    payload = payload_for(op, n)
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send_message(op, payload, chop=chop)
        assert c.recv() == (op, payload)
        close_cleanly(c)


@pytest.mark.parametrize("data,code", cases([
    ("1.3.1", frame(OP_TEXT, b"unmasked", mask=False), 1002),
    ("1.3.2", frame(OP_BINARY, b"", mask=False), 1002),
    ("1.3.3", frame(OP_PING, b"p", mask=False), 1002),
    ("1.3.4", frame(OP_CLOSE, close_payload(1000), mask=False), 1002),
    # 64-bit length with the most significant bit set (RFC 6455 5.2).
    ("1.3.5", frame(OP_BINARY, b"", length=1 << 63), 1002),
    ("1.3.6", frame(OP_BINARY, b"", length=(1 << 64) - 1), 1002),
    # Announced lengths beyond the limits fail on the header alone.
    ("1.3.7", frame(OP_BINARY, b"", length=1 << 40), 1009),
    ("1.3.8", frame(OP_TEXT, b"", length=MAX_MESSAGE + 1), 1009),
]))
def test_1_bad_headers(ep, request, data, code):
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send(data)
        expect_failed(c, code)
    still_serving(ep)


def test_1_masking_keys(ep):
    """1.4.1: any masking key works, including all-zero and all-one keys, and
    every payload offset modulo 4."""
    with ep.connect(path("1.4.1")) as c:
        sent = []
        for i, key in enumerate([b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04",
                                 b"\x80\x00\x00\x01"]):
            for n in range(0, 9):
                payload = binary_of_len(n, seed=i * 10 + n)
                c.send(frame(OP_BINARY, payload, key=key))
                sent.append((OP_BINARY, payload))
        assert [c.recv() for _ in sent] == sent
        close_cleanly(c)


# === 2 ping / pong ==================================================================

PING_OK = [
    ("2.1", [frame(OP_PING, b"")], None, [(OP_PONG, b"")]),
    ("2.2", [frame(OP_PING, b"Hello, world!")], None, [(OP_PONG, b"Hello, world!")]),
    ("2.3", [frame(OP_PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")], None,
     [(OP_PONG, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")]),
    ("2.4", [frame(OP_PING, b"\xfe" * 125)], None, [(OP_PONG, b"\xfe" * 125)]),
    ("2.6", [frame(OP_PING, b"\xfe" * 125)], 1, [(OP_PONG, b"\xfe" * 125)]),
    # Unsolicited pongs are ignored.
    ("2.7", [frame(OP_PONG, b"")], None, []),
    ("2.8", [frame(OP_PONG, b"unsolicited pong payload")], None, []),
    ("2.9", [frame(OP_PONG, b"unsolicited pong payload"), frame(OP_PING, b"ping payload")], None,
     [(OP_PONG, b"ping payload")]),
    ("2.10", [frame(OP_PING, b"payload-%d" % i) for i in range(10)], None,
     [(OP_PONG, b"payload-%d" % i) for i in range(10)]),
    ("2.11", [frame(OP_PING, b"payload-%d" % i) for i in range(10)], 1,
     [(OP_PONG, b"payload-%d" % i) for i in range(10)]),
    # Pongs are answered in order with the data messages around them too.
    ("2.12", [frame(OP_PING, b"a"), frame(OP_PONG, b"ignored"), frame(OP_PING, b"b" * 125),
              frame(OP_PING, binary_of_len(125))], 3,
     [(OP_PONG, b"a"), (OP_PONG, b"b" * 125), (OP_PONG, binary_of_len(125))]),
    ("2.13", [frame(OP_PING, bytes(range(125)))], None, [(OP_PONG, bytes(range(125)))]),
    ("2.14", [frame(OP_PING, "κόσμε ✓".encode())], None, [(OP_PONG, "κόσμε ✓".encode())]),
    # A ping payload need not be UTF-8.
    ("2.15", [frame(OP_PING, b"\xff\xfe\xed\xa0\x80")], None, [(OP_PONG, b"\xff\xfe\xed\xa0\x80")]),
]
for _n in (0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 31, 33, 63, 64, 100, 124, 125):
    PING_OK.append(("2.16.%d" % _n, [frame(OP_PING, binary_of_len(_n, _n))], None,
                    [(OP_PONG, binary_of_len(_n, _n))]))


@pytest.mark.parametrize("frames,chop,expect", cases(PING_OK))
def test_2_ping_pong(ep, request, frames, chop, expect):
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send(b"".join(frames), chop=chop)
        got = [c.recv() for _ in expect]
        assert got == expect
        close_cleanly(c)   # also proves nothing else (no pong for a pong) came first


def test_2_every_ping_length(ep):
    """2.17: a ping of every length 0..125 on one connection, pongs in order."""
    with ep.connect(path("2.17")) as c:
        pings = [binary_of_len(n, n) for n in range(126)]
        c.send(b"".join(frame(OP_PING, p) for p in pings))
        assert [c.recv() for _ in pings] == [(OP_PONG, p) for p in pings]
        close_cleanly(c)


@pytest.mark.parametrize("data", cases([
    ("2.5", frame(OP_PING, b"\xfe" * 126)),
    ("2.18", frame(OP_PING, b"\xfe" * 65536)),
    ("2.19", frame(OP_PONG, b"\xfe" * 126)),
    ("2.20", frame(OP_PING, b"\xfe" * 126) + frame(OP_PING, b"after")),
]))
def test_2_control_too_long(ep, request, data):
    """Control frames longer than 125 bytes fail with 1002, with no pong."""
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send(data, tolerate_close=True)
        expect_failed(c, 1002)
    still_serving(ep)


# === 3 reserved bits =====================================================================

RSV_TARGETS = [
    (1, OP_TEXT, b"Hello, world!"),
    (2, OP_BINARY, b"\x00\xffbinary"),
    (3, OP_PING, b"ping"),
    (4, OP_CLOSE, close_payload(1000)),
    (5, OP_PONG, b"pong"),
]
RSV_CASES = []
for _t, _op, _payload in RSV_TARGETS:
    for _rsv in range(1, 8):
        RSV_CASES.append(("3.%d.%d" % (_t, _rsv), _op, _payload, _rsv))


@pytest.mark.parametrize("op,payload,rsv", cases(RSV_CASES))
@pytest.mark.parametrize("before", ["alone", "after-echo"])
def test_3_reserved_bits(ep, request, op, payload, rsv, before):
    """No extension negotiated: any RSV bit fails the connection with 1002,
    nothing sent after the bad frame is answered (the trailing text and ping
    get no echo and no pong). after-echo: a valid message first, whose echo
    is received before the bad frame is sent."""
    with ep.connect(path(request.node.callspec.id)) as c:
        if before == "after-echo":
            c.send_message(OP_TEXT, b"first")
            assert c.recv() == (OP_TEXT, b"first")
        c.send(frame(op, payload, rsv=rsv) + frame(OP_TEXT, b"after") + frame(OP_PING, b"after"),
               tolerate_close=True)
        expect_failed(c, 1002)
    still_serving(ep)


@pytest.mark.parametrize("rsv", [pytest.param(r, id="3.6.%d" % r) for r in range(1, 8)])
def test_3_reserved_bits_pipelined(ep, rsv):
    """Autobahn 3.2-3.4's shape: valid text, bad frame and ping in one write.
    The valid message's echo, then the close (strict: the server delivers the
    replies to what it accepted before failing the connection). Never a pong."""
    with ep.connect(path("3.6.%d" % rsv)) as c:
        c.send(frame(OP_TEXT, b"Hello, world!") + frame(OP_TEXT, b"Hello, world!", rsv=rsv) +
               frame(OP_PING, b""))
        events, code, reason = c.recv_until_close()
        assert events == [(OP_TEXT, b"Hello, world!")], events
        assert code == 1002, (code, reason)
        assert c.expect_eof()
    still_serving(ep)


# === 4 opcodes ======================================================================

OPCODE_CASES = []
for _g, _ops in ((1, (3, 4, 5, 6, 7)), (2, (11, 12, 13, 14, 15))):
    _i = 0
    for _op in _ops:
        for _variant in ("empty", "payload", "after-echo"):
            _i += 1
            OPCODE_CASES.append(("4.%d.%d" % (_g, _i), _op, _variant))


@pytest.mark.parametrize("op,variant", cases(OPCODE_CASES))
def test_4_reserved_opcodes(ep, request, op, variant):
    """Reserved non-control (3-7) and control (11-15) opcodes fail with 1002;
    the ping sent after it is not answered."""
    with ep.connect(path(request.node.callspec.id)) as c:
        if variant == "after-echo":
            c.send_message(OP_TEXT, b"Hello, world!")
            assert c.recv() == (OP_TEXT, b"Hello, world!")
        payload = b"" if variant == "empty" else b"reserved opcode payload"
        c.send(frame(op, payload) + frame(OP_PING, b""), tolerate_close=True)
        expect_failed(c, 1002)
    still_serving(ep)


def test_4_reserved_opcode_inside_fragmented_message(ep):
    """4.3.1: a reserved opcode between the fragments of a message."""
    with ep.connect(path("4.3.1")) as c:
        c.send(frame(OP_TEXT, b"frag", fin=False) + frame(5, b"x") + frame(OP_CONT, b"ment"),
               tolerate_close=True)
        expect_failed(c, 1002)
    still_serving(ep)


# === 5 fragmentation =====================================================================
# A scenario is a list of steps: bytes to send (in one write), ("chop", n,
# bytes) to write in n-byte pieces, ("recv", event) to receive and check one
# event before going on, ("recv_any", [events]) for events in any order. It
# ends with ("ok",): our close is echoed; ("close", code): the close the
# scenario sent is echoed with that code (1005: an empty close) and nothing
# else comes; or ("fail", code): the server fails the connection with that
# code. Either way TCP then ends; writes after the close may find it closed.

def T(p, fin=True):
    return frame(OP_TEXT, p, fin=fin)


def C(p, fin=True):
    return frame(OP_CONT, p, fin=fin)


FRAG = [
    ("5.1", [frame(OP_PING, b"fragment1", fin=False) + C(b"fragment2")], ("fail", 1002)),
    ("5.2", [frame(OP_PONG, b"fragment1", fin=False) + C(b"fragment2")], ("fail", 1002)),
    ("5.3", [T(b"fragment1", False) + C(b"fragment2"), ("recv", (OP_TEXT, b"fragment1fragment2"))],
     ("ok",)),
    ("5.4", [T(b"fragment1", False), C(b"fragment2"), ("recv", (OP_TEXT, b"fragment1fragment2"))],
     ("ok",)),
    ("5.5", [("chop", 1, T(b"fragment1", False)), ("chop", 1, C(b"fragment2")),
             ("recv", (OP_TEXT, b"fragment1fragment2"))], ("ok",)),
    ("5.6", [T(b"fragment1", False) + frame(OP_PING, b"ping payload") + C(b"fragment2"),
             ("recv", (OP_PONG, b"ping payload")), ("recv", (OP_TEXT, b"fragment1fragment2"))],
     ("ok",)),
    ("5.7", [T(b"fragment1", False), frame(OP_PING, b"ping payload"), C(b"fragment2"),
             ("recv", (OP_PONG, b"ping payload")), ("recv", (OP_TEXT, b"fragment1fragment2"))],
     ("ok",)),
    ("5.8", [("chop", 1, T(b"fragment1", False) + frame(OP_PING, b"ping payload") + C(b"fragment2")),
             ("recv", (OP_PONG, b"ping payload")), ("recv", (OP_TEXT, b"fragment1fragment2"))],
     ("ok",)),
    # Continuation without a message started, FIN set / not set; then a valid text.
    ("5.9", [C(b"non-continuation payload") + T(b"Hello, world!")], ("fail", 1002)),
    ("5.10", [C(b"non-continuation payload"), T(b"Hello, world!")], ("fail", 1002)),
    ("5.11", [("chop", 1, C(b"non-continuation payload") + T(b"Hello, world!"))], ("fail", 1002)),
    ("5.12", [C(b"non-continuation payload", False) + T(b"Hello, world!")], ("fail", 1002)),
    ("5.13", [C(b"non-continuation payload", False), T(b"Hello, world!")], ("fail", 1002)),
    ("5.14", [("chop", 1, C(b"non-continuation payload", False) + T(b"Hello, world!"))],
     ("fail", 1002)),
    ("5.16", [C(b"fragment1", False) + C(b"fragment2") + T(b"fragment3")] * 2, ("fail", 1002)),
    ("5.17", [C(b"fragment1") + C(b"fragment2", False) + T(b"fragment3")] * 2, ("fail", 1002)),
    # "text after unfinished text": a new data frame while a message is open.
    ("5.18", [T(b"fragment1", False) + T(b"fragment2")], ("fail", 1002)),
    ("5.19", [T(b"fragment1", False), C(b"fragment2", False), frame(OP_PING, b"pongme 1!"),
              ("recv", (OP_PONG, b"pongme 1!")),
              C(b"fragment3", False), C(b"fragment4", False), frame(OP_PING, b"pongme 2!"),
              ("recv", (OP_PONG, b"pongme 2!")),
              C(b"fragment5"), ("recv", (OP_TEXT, b"fragment1fragment2fragment3fragment4fragment5"))],
     ("ok",)),
    ("5.20", [("chop", 1, T(b"fragment1", False) + C(b"fragment2", False) +
               frame(OP_PING, b"pongme 1!")),
              ("recv", (OP_PONG, b"pongme 1!")),
              ("chop", 1, C(b"fragment3", False) + C(b"fragment4", False) + frame(OP_PING, b"pongme 2!")),
              ("recv", (OP_PONG, b"pongme 2!")),
              ("chop", 1, C(b"fragment5")),
              ("recv", (OP_TEXT, b"fragment1fragment2fragment3fragment4fragment5"))], ("ok",)),
    # Additions.
    ("5.21", [frame(OP_BINARY, b"\x00\x01", fin=False) + C(b"\x02\x03", False) + C(b"\xff"),
              ("recv", (OP_BINARY, b"\x00\x01\x02\x03\xff"))], ("ok",)),
    ("5.22", [frame(OP_BINARY, b"bin", fin=False) + T(b"text")], ("fail", 1002)),
    ("5.23", [T(b"text", False) + frame(OP_BINARY, b"bin")], ("fail", 1002)),
    ("5.24", [frame(OP_BINARY, b"bin", fin=False) + frame(OP_BINARY, b"bin", fin=False)],
     ("fail", 1002)),
    # Fragmented close (with or without an open message).
    ("5.25", [frame(OP_CLOSE, close_payload(1000), fin=False) + C(b"")], ("fail", 1002)),
    ("5.26", [frame(OP_CLOSE, b"", fin=False)], ("fail", 1002)),
    ("5.27", [T(b"open", False) + frame(OP_CLOSE, close_payload(1000), fin=False)], ("fail", 1002)),
    # A fragmented ping inside a fragmented message.
    ("5.28", [T(b"open", False) + frame(OP_PING, b"x", fin=False) + C(b"y") + C(b"end")],
     ("fail", 1002)),
    # Continuation right after a finished (and echoed) message.
    ("5.30", [T(b"done"), ("recv", (OP_TEXT, b"done")), C(b"late")], ("fail", 1002)),
    # Empty fragments (Autobahn 6.1.2/6.1.3 shapes, binary here).
    ("5.31", [frame(OP_BINARY, b"", fin=False) + C(b"", False) + C(b""), ("recv", (OP_BINARY, b""))],
     ("ok",)),
    ("5.32", [frame(OP_BINARY, b"", fin=False) + C(b"middle", False) + C(b""),
              ("recv", (OP_BINARY, b"middle"))], ("ok",)),
    # Pings between each of ten fragments: ten pongs in order; the message
    # after the ninth (the last pong and the message in either order).
    ("5.33", [b"".join((T if i == 0 else C)(b"f%d" % i, i == 9) + frame(OP_PING, b"p%d" % i)
                       for i in range(10))]
     + [("recv", (OP_PONG, b"p%d" % i)) for i in range(9)]
     + [("recv_any", [(OP_PONG, b"p9"), (OP_TEXT, b"f0f1f2f3f4f5f6f7f8f9")])], ("ok",)),
    # An unsolicited pong between fragments is ignored.
    ("5.34", [T(b"a", False) + frame(OP_PONG, b"x") + C(b"b"), ("recv", (OP_TEXT, b"ab"))], ("ok",)),
    # A close between fragments: echoed, the unfinished message is dropped.
    ("5.35", [T(b"unfinished", False) + frame(OP_CLOSE, close_payload(1000)) + C(b"rest")],
     ("close", 1000)),
    # A new (binary) message while text is unfinished, even if a continuation follows.
    ("5.36", [T(b"x", False) + frame(OP_BINARY, b"y", fin=False) + C(b"z")], ("fail", 1002)),
]


def run_steps(ep, case, steps, end):
    with ep.connect(path(case)) as c:
        failing = end[0] in ("fail", "close")
        for st in steps:
            if isinstance(st, bytes):
                c.send(st, tolerate_close=failing)
            elif st[0] == "chop":
                c.send(st[2], chop=st[1], tolerate_close=failing)
            elif st[0] == "recv":
                assert c.recv() == st[1]
            elif st[0] == "recv_any":
                # Events whose relative order the RFC leaves open.
                got = [c.recv() for _ in st[1]]
                assert sorted(got) == sorted(st[1]), got
        if end[0] == "ok":
            close_cleanly(c)
        else:
            expect_failed(c, end[1])
    if end[0] == "fail":
        still_serving(ep)


@pytest.mark.parametrize("steps,end", cases(FRAG))
def test_5_fragmentation(ep, request, steps, end):
    run_steps(ep, request.node.callspec.id, steps, end)


def test_5_15_message_then_broken_continuation(ep):
    """5.15: text fragmented in two (complete), then a continuation with no
    message open: the echo, then 1002 (strict)."""
    with ep.connect(path("5.15")) as c:
        c.send(T(b"fragment1", False) + C(b"fragment2") + C(b"fragment3", False) + T(b"fragment4"))
        events, code, reason = c.recv_until_close()
        assert events == [(OP_TEXT, b"fragment1fragment2")], events
        assert code == 1002, (code, reason)
        assert c.expect_eof()
    still_serving(ep)


@pytest.mark.parametrize("op,n,frag,chop", cases([
    ("5.37.1", OP_TEXT, 600, 1, None),        # 600 one-byte fragments, multi-byte chars split
    ("5.37.2", OP_BINARY, 1000, 1, None),
    ("5.37.3", OP_TEXT, 300, 1, 5),           # ... and the frames cut into 5-byte writes
    ("5.37.4", OP_BINARY, 4096, 7, None),
    ("5.37.5", OP_TEXT, 65536, 1000, None),
    ("5.37.6", OP_TEXT, 5000, 3, 1024),
    ("5.37.7", OP_BINARY, 0, 1, None),
]))
def test_5_many_fragments(ep, request, op, n, frag, chop):
    payload = payload_for(op, n, 5)
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send_message(op, payload, frag=frag, chop=chop)
        assert c.recv() == (op, payload)
        close_cleanly(c)


# === 6 UTF-8 ============================================================================
# The sequences of Autobahn's case6_x_x (from Markus Kuhn's UTF-8 decoder
# stress test), numbered as Autobahn numbers them: 6.5.1 onwards.

def _utf8_groups():
    g = []
    vss = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
    g.append([b"hello\x24world", b"hello\xc2\xa2world", b"hello\xe2\x82\xacworld",
              b"hello\xf0\xa4\xad\xa2world", vss])                                         # 6.5
    g.append([vss[:i] for i in range(1, len(vss) + 1)])                                     # 6.6
    g.append([b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80"])                  # 6.7
    g.append([b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"])                        # 6.8
    g.append([b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf"])                  # 6.9
    g.append([b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf\xbf"])   # 6.10
    g.append([b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd", b"\xf4\x8f\xbf\xbf",
              b"\xf4\x90\x80\x80"])                                                          # 6.11
    g.append([b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf",
              b"\x80\xbf\x80\xbf\x80", b"\x80\xbf\x80\xbf\x80\xbf",
              bytes(range(0x80, 0xbf))])                                                     # 6.12
    g.append([b"".join(bytes([c, 0x20]) for c in range(lo, hi))
              for lo, hi in ((0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd))])  # 6.13
    k = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
         b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    g.append(k)                                                                              # 6.14
    g.append([b"".join(k)])                                                                  # 6.15
    g.append([b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"])                                        # 6.16
    g.append([b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf8\x80\x80\x80\xaf",
              b"\xfc\x80\x80\x80\x80\xaf"])                                                  # 6.17
    g.append([b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf", b"\xf8\x87\xbf\xbf\xbf",
              b"\xfc\x83\xbf\xbf\xbf\xbf"])                                                  # 6.18
    g.append([b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf8\x80\x80\x80\x80",
              b"\xfc\x80\x80\x80\x80\x80"])                                                  # 6.19
    g.append([b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
              b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf"])                            # 6.20
    g.append([b"\xed\xa0\x80\xed\xb0\x80", b"\xed\xa0\x80\xed\xbf\xbf", b"\xed\xad\xbf\xed\xb0\x80",
              b"\xed\xad\xbf\xed\xbf\xbf", b"\xed\xae\x80\xed\xb0\x80", b"\xed\xae\x80\xed\xbf\xbf",
              b"\xed\xaf\xbf\xed\xb0\x80", b"\xed\xaf\xbf\xed\xbf\xbf"])                     # 6.21
    nonchars = [b"\xef\xbf\xbe", b"\xef\xbf\xbf"]
    for z1 in b"\xf0\xf1\xf2\xf3\xf4":
        for z2 in b"\x8f\x9f\xaf\xbf":
            if z1 == 0xf4 and z2 != 0x8f:
                continue
            for z3 in b"\xbe\xbf":
                zz = bytes([z1, z2, 0xbf, z3])
                if zz not in (b"\xf0\x8f\xbf\xbe", b"\xf0\x8f\xbf\xbf"):
                    nonchars.append(zz)
    g.append(nonchars)                                                                       # 6.22
    g.append([b"\xef\xbf\xb9", b"\xef\xbf\xba", b"\xef\xbf\xbb", b"\xef\xbf\xbc", b"\xef\xbf\xbd",
              b"\xef\xbf\xbe", b"\xef\xbf\xbf"])                                             # 6.23
    out = []
    for gi, seqs in enumerate(g, 5):
        for si, s in enumerate(seqs, 1):
            try:
                s.decode("utf-8")
                valid = True
            except UnicodeDecodeError:
                valid = False
            out.append(("6.%d.%d" % (gi, si), s, valid))
    return out


UTF8 = _utf8_groups()
UTF8_VALID = [(i, s) for i, s, v in UTF8 if v]
UTF8_INVALID = [(i, s) for i, s, v in UTF8 if not v]


@pytest.mark.parametrize("seq", cases(UTF8_VALID))
def test_6_valid_utf8(ep, request, seq):
    """A valid sequence is echoed as text: in one frame, in one-byte
    fragments, and in one frame written one byte at a time."""
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send_message(OP_TEXT, seq)
        c.send_message(OP_TEXT, seq, frag=1)
        c.send_message(OP_TEXT, seq, chop=1)
        assert [c.recv() for _ in range(3)] == [(OP_TEXT, seq)] * 3
        close_cleanly(c)


@pytest.mark.parametrize("seq", cases(UTF8_INVALID))
@pytest.mark.parametrize("how", ["frame", "fragments", "chops"])
def test_6_invalid_utf8(ep, request, seq, how):
    """An invalid sequence fails the connection with 1007, whether in one
    frame, in one-byte fragments (every split across a fragment boundary) or
    cut into one-byte writes; a valid message after it is not echoed."""
    with ep.connect(path(request.node.callspec.id)) as c:
        if how == "frame":
            c.send(frame(OP_TEXT, seq) + frame(OP_TEXT, b"after"), tolerate_close=True)
        elif how == "fragments":
            c.send(fragments(OP_TEXT, seq, 1) + frame(OP_TEXT, b"after"), tolerate_close=True)
        else:
            c.send(frame(OP_TEXT, seq), chop=1, tolerate_close=True)
        expect_failed(c, 1007)
    still_serving(ep)


@pytest.mark.parametrize("seq", cases(UTF8_INVALID))
@pytest.mark.parametrize("how", ["fragment", "chop"])
def test_6_fail_fast(ep, request, seq, how):
    """FAIL-FAST (Autobahn 6.4 applied to every invalid sequence). The
    message starts with valid text, then the sequence up to the byte where
    it stops being a prefix of any valid UTF-8. fragment: that much is the
    first fragment (FIN clear); chop: it is the first part of one frame whose
    header announces the whole payload. The 1007 close must arrive before
    anything else is sent; only then is the rest sent.

    Sequences that are only truncated (valid prefixes, invalid because the
    message ends) cannot fail early and must not: for them (fragment) the
    first fragment is sent, then a ping whose pong proves the connection is
    still open, then the empty final fragment, which fails with 1007; (chop)
    the frame is sent whole and fails with 1007."""
    head = "κόσμε ".encode()
    k = utf8_fail_index(seq)
    with ep.connect(path(request.node.callspec.id)) as c:
        if k is None:
            first, rest = head + seq, b""
        else:
            first, rest = head + seq[:k + 1], seq[k + 1:] + b"edited"
        if how == "fragment":
            c.send(frame(OP_TEXT, first, fin=False))
            later = frame(OP_CONT, rest)
        else:
            whole = frame(OP_TEXT, first + rest)
            cut = len(whole) - len(rest)
            c.send(whole[:cut])
            later = whole[cut:]
        if k is None:
            if how == "fragment":
                c.send(frame(OP_PING, b"open?"))
                assert c.recv() == (OP_PONG, b"open?")
            c.send(later)
            expect_failed(c, 1007)
        else:
            events, code, reason = c.recv_until_close()   # before sending the rest
            assert events == [] and code == 1007, (events, code, reason)
            c.send(later, tolerate_close=True)
            assert c.expect_eof()
    still_serving(ep)


@pytest.mark.parametrize("steps,end", cases([
    # 6.1 empty text messages.
    ("6.1.1", [T(b""), ("recv", (OP_TEXT, b""))], ("ok",)),
    ("6.1.2", [T(b"", False) + C(b"", False) + C(b""), ("recv", (OP_TEXT, b""))], ("ok",)),
    ("6.1.3", [T(b"", False) + C(b"middle frame payload", False) + C(b""),
               ("recv", (OP_TEXT, b"middle frame payload"))], ("ok",)),
    # 6.2 valid UTF-8 whole, split at code points, in one-byte fragments.
    ("6.2.1", [T("Hello-µ@ßöäüàá-UTF-8!!".encode()),
               ("recv", (OP_TEXT, "Hello-µ@ßöäüàá-UTF-8!!".encode()))], ("ok",)),
    ("6.2.2", [b"".join((T if i == 0 else C)(ch.encode(), i == len("Hello-µ@ßöäüàá-UTF-8!!") - 1)
                        for i, ch in enumerate("Hello-µ@ßöäüàá-UTF-8!!")),
               ("recv", (OP_TEXT, "Hello-µ@ßöäüàá-UTF-8!!".encode()))], ("ok",)),
    ("6.2.3", [fragments(OP_TEXT, "Hello-µ@ßöäüàá-UTF-8!!".encode(), 1),
               ("recv", (OP_TEXT, "Hello-µ@ßöäüàá-UTF-8!!".encode()))], ("ok",)),
    ("6.2.4", [fragments(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1),
               ("recv", (OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"))], ("ok",)),
    # 6.3 invalid UTF-8 (a surrogate) whole and in one-byte fragments.
    ("6.3.1", [T(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")], ("fail", 1007)),
    ("6.3.2", [fragments(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", 1)],
     ("fail", 1007)),
    # 6.24: sequences split across a fragment boundary.
    ("6.24.1", [T(b"\xed", False) + C(b"\xa0\x80")], ("fail", 1007)),
    ("6.24.2", [T(b"\xed\xa0", False) + C(b"\x80")], ("fail", 1007)),
    ("6.24.3", [T(b"\xf4", False) + C(b"\x90\x80\x80")], ("fail", 1007)),
    ("6.24.4", [T(b"\xf4\x8f\xbf", False) + C(b"\xc0")], ("fail", 1007)),
    ("6.24.5", [T(b"\xc3", False) + C(b"(")], ("fail", 1007)),
    ("6.24.6", [T(b"\xe0\x80", False) + C(b"\xaf")], ("fail", 1007)),
    ("6.24.7", [T(b"abc\xe2\x82", False) + C(b"")], ("fail", 1007)),         # truncated at the end
    ("6.24.8", [T(b"\xf0\x9f", False) + C(b"\x98", False) + C(b"")], ("fail", 1007)),
    ("6.24.9", [T(b"\xf0\x9f", False) + frame(OP_PING, b"p") + C(b"\x98\x80"),
                ("recv", (OP_PONG, b"p")), ("recv", (OP_TEXT, "😀".encode()))], ("ok",)),
    ("6.24.10", [T(b"\xe2", False) + C(b"\x82", False) + C(b"\xac"), ("recv", (OP_TEXT, "€".encode()))],
     ("ok",)),
    ("6.24.11", [T(b"ok", False) + C(b"\xc2", False) + C(b"\xa2 fine"),
                 ("recv", (OP_TEXT, "ok¢ fine".encode()))], ("ok",)),
    # Binary messages are not UTF-8 checked.
    ("6.25.1", [frame(OP_BINARY, b"\xed\xa0\x80\xff\xfe"), ("recv", (OP_BINARY, b"\xed\xa0\x80\xff\xfe"))],
     ("ok",)),
    ("6.25.2", [fragments(OP_BINARY, b"\xf4\x90\x80\x80\xc0", 1),
                ("recv", (OP_BINARY, b"\xf4\x90\x80\x80\xc0"))], ("ok",)),
]))
def test_6_utf8_messages(ep, request, steps, end):
    run_steps(ep, request.node.callspec.id, steps, end)


@pytest.mark.parametrize("first,second,third", cases([
    # Autobahn 6.4.1-6.4.4: the close must come before the third part is sent.
    ("6.4.1", ("frag", "κόσμε".encode()), ("frag", b"\xf4\x90\x80\x80"), ("cont", b"edited")),
    ("6.4.2", ("frag", "κόσμε".encode() + b"\xf4"), ("frag", b"\x90"), ("cont", b"\x80\x80edited")),
    ("6.4.3", ("chop", "κόσμε".encode()), ("chop", b"\xf4\x90\x80\x80"), ("chop", b"edited")),
    ("6.4.4", ("chop", "κόσμε".encode() + b"\xf4"), ("chop", b"\x90"), ("chop", b"\x80\x80edited")),
]))
def test_6_4_fail_fast(ep, request, first, second, third):
    with ep.connect(path(request.node.callspec.id)) as c:
        if first[0] == "frag":
            c.send(frame(OP_TEXT, first[1], fin=False))
            c.send(frame(OP_CONT, second[1], fin=False))
            rest = frame(OP_CONT, third[1])
        else:
            whole = frame(OP_TEXT, first[1] + second[1] + third[1])
            split1 = len(whole) - len(third[1]) - len(second[1])
            split2 = len(whole) - len(third[1])
            c.send(whole[:split1])
            c.send(whole[split1:split2])
            rest = whole[split2:]
        events, code, reason = c.recv_until_close()
        assert events == [] and code == 1007, (events, code, reason)
        c.send(rest, tolerate_close=True)
        assert c.expect_eof()
    still_serving(ep)


# === 7 close handling ===================================================================

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
               3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", [pytest.param(c, id="7.7.%d" % i) for i, c in enumerate(VALID_CODES, 1)])
def test_7_valid_close_codes(ep, request, code):
    """Every code a peer may send is echoed: the server's close carries
    exactly that code; then TCP ends. (1012-1014 are IANA-registered and
    accepted.)"""
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send_close(code, "reason")
        events, got, reason = c.recv_until_close()
        assert events == [] and got == code, (events, got, reason)
        assert c.closed_seen[:2] == struct.pack("!H", code)
        assert c.expect_eof()


@pytest.mark.parametrize("code", [pytest.param(c, id="7.9.%d" % i) for i, c in enumerate(INVALID_CODES, 1)])
def test_7_invalid_close_codes(ep, request, code):
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send_close(code)
        expect_failed(c, 1002)
    still_serving(ep)


CLOSE_CASES = [
    # 7.1.x: what follows a close is ignored.
    ("7.1.2", [frame(OP_CLOSE, close_payload(1000)) + frame(OP_CLOSE, close_payload(1000))],
     ("close", 1000)),
    ("7.1.3", [frame(OP_CLOSE, close_payload(1000)) + frame(OP_PING, b"Hello, world!")], ("close", 1000)),
    ("7.1.4", [frame(OP_CLOSE, close_payload(1000)) + T(b"Hello, world!")], ("close", 1000)),
    ("7.1.5", [T(b"fragment1", False) + frame(OP_CLOSE, close_payload(1000)) + C(b"fragment2")],
     ("close", 1000)),
    # Data after close: frames of every kind, even invalid ones, get no answer.
    ("7.1.7", [frame(OP_CLOSE, close_payload(1000)) + frame(OP_BINARY, b"x" * 70000) +
               frame(OP_TEXT, b"\xff") + frame(3, b"") + frame(OP_PING, b"x" * 200)], ("close", 1000)),
    ("7.1.8", [frame(OP_CLOSE, close_payload(4001)), T(b"after")], ("close", 4001)),
    # 7.3.x close payloads.
    ("7.3.1", [frame(OP_CLOSE, b"")], ("close", 1005)),
    ("7.3.2", [frame(OP_CLOSE, b"\x03")], ("fail", 1002)),
    ("7.3.3", [frame(OP_CLOSE, close_payload(1000))], ("close", 1000)),
    ("7.3.4", [frame(OP_CLOSE, close_payload(1000, b"Hello World!"))], ("close", 1000)),
    ("7.3.5", [frame(OP_CLOSE, close_payload(1000, b"*" * 123))], ("close", 1000)),
    ("7.3.6", [frame(OP_CLOSE, close_payload(1000, b"*" * 124))], ("fail", 1002)),
    ("7.3.7", [frame(OP_CLOSE, close_payload(1000, ("é" * 61 + "x").encode()))], ("close", 1000)),
    # 7.5.1 invalid UTF-8 in the reason, and variants.
    ("7.5.1", [frame(OP_CLOSE, close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
                                                   b"\xed\xa0\x80\x65\x64\x69\x74\x65\x64"))], ("fail", 1007)),
    ("7.5.2", [frame(OP_CLOSE, close_payload(1000, b"truncated \xce"))], ("fail", 1007)),
    ("7.5.3", [frame(OP_CLOSE, close_payload(4000, b"\xc0\xaf"))], ("fail", 1007)),
    ("7.5.4", [frame(OP_CLOSE, close_payload(1000, b"\xf4\x90\x80\x80"))], ("fail", 1007)),
    # A close written one byte at a time, and a close with a code only in chops.
    ("7.12.1", [("chop", 1, frame(OP_CLOSE, close_payload(1000, b"bye")))], ("close", 1000)),
    ("7.12.2", [("chop", 1, frame(OP_CLOSE, b""))], ("close", 1005)),
    # After an echoed message, a ping and its pong, the close.
    ("7.12.3", [T(b"Hello"), ("recv", (OP_TEXT, b"Hello")), frame(OP_PING, b"p"),
                ("recv", (OP_PONG, b"p")), frame(OP_CLOSE, close_payload(1001))], ("close", 1001)),
]


@pytest.mark.parametrize("steps,end", cases(CLOSE_CASES))
def test_7_close(ep, request, steps, end):
    """("close", code): the client's close is echoed with that code (1005:
    an empty close frame) and nothing else comes back, then TCP ends.
    ("fail", code): the server fails the connection with that code."""
    run_steps(ep, request.node.callspec.id, steps, end)


def test_7_1_1_message_then_close(ep):
    """7.1.1 (Autobahn): a text message and a close sent back to back: the
    echo of the message, then the close echoed with 1000 (a clean close
    finishes the work already received)."""
    with ep.connect(path("7.1.1")) as c:
        c.send(T(b"Hello World!") + frame(OP_CLOSE, close_payload(1000)))
        events, code, reason = c.recv_until_close()
        assert (events, code) == ([(OP_TEXT, b"Hello World!")], 1000), (events, code, reason)
        assert c.expect_eof()


def test_7_1_1b_message_echoed_then_close(ep):
    """7.1.1b: the same with the echo awaited before the close is sent."""
    with ep.connect(path("7.1.1b")) as c:
        c.send(T(b"Hello World!"))
        assert c.recv() == (OP_TEXT, b"Hello World!")
        close_cleanly(c)


def test_7_server_closes_tcp_first(ep):
    """7.14: after the close handshake the server closes TCP without waiting
    for us; we keep our side open and read EOF."""
    with ep.connect(path("7.14")) as c:
        c.send_close(1000)
        events, code, _ = c.recv_until_close()
        assert events == [] and code == 1000
        assert c.expect_eof()
        # Our own later writes are harmless (the server discards them).
        c.send(T(b"late"), tolerate_close=True)
    still_serving(ep)


# === 9 limits / performance (light) ========================================================

SIZES = [65536, 262144, 524288, MAX_MESSAGE]
LIMIT_OK = []
for _g, _op in ((1, OP_TEXT), (2, OP_BINARY)):
    for _i, _n in enumerate(SIZES, 1):
        LIMIT_OK.append(("9.%d.%d" % (_g, _i), _op, _n, None, None))
for _g, _op in ((3, OP_TEXT), (4, OP_BINARY)):
    for _i, _f in enumerate([64, 256, 1024, 4096, 16384, 65536, 262144, MAX_MESSAGE], 1):
        LIMIT_OK.append(("9.%d.%d" % (_g, _i), _op, MAX_MESSAGE, _f, None))
for _g, _op in ((5, OP_TEXT), (6, OP_BINARY)):
    for _i, _ch in enumerate([64, 128, 256, 512, 1024, 2048], 1):
        LIMIT_OK.append(("9.%d.%d" % (_g, _i), _op, MAX_MESSAGE, None, _ch))


@pytest.mark.parametrize("op,n,frag,chop", cases(LIMIT_OK))
def test_9_big_messages(ep, request, op, n, frag, chop):
    """Messages up to the 1 MiB cap round trip: whole (9.1/9.2), in
    fragments of 64 B..1 MiB (9.3/9.4), in writes of 64..2048 bytes (9.5/9.6)."""
    payload = payload_for(op, n, seed=n)
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send_message(op, payload, frag=frag, chop=chop)
        got = c.recv()
        assert got[0] == op and len(got[1]) == n and got[1] == payload
        close_cleanly(c)


@pytest.mark.parametrize("op,size,count", cases([
    ("9.7.1", OP_TEXT, 0, 100), ("9.7.2", OP_TEXT, 16, 100), ("9.7.3", OP_TEXT, 64, 100),
    ("9.7.4", OP_TEXT, 256, 100), ("9.7.5", OP_TEXT, 1024, 50), ("9.7.6", OP_TEXT, 4096, 50),
    ("9.8.1", OP_BINARY, 0, 100), ("9.8.2", OP_BINARY, 16, 100), ("9.8.3", OP_BINARY, 64, 100),
    ("9.8.4", OP_BINARY, 256, 100), ("9.8.5", OP_BINARY, 1024, 50), ("9.8.6", OP_BINARY, 4096, 50),
]))
def test_9_many_messages(ep, request, op, size, count):
    """9.7/9.8: messages sent one after another, each echo awaited."""
    with ep.connect(path(request.node.callspec.id)) as c:
        for i in range(count):
            p = payload_for(op, size, seed=i)
            c.send_message(op, p)
            assert c.recv() == (op, p)
        close_cleanly(c)


def _big_in_fragments(sizes):
    return b"".join(frame(OP_BINARY if i == 0 else OP_CONT, b"\xab" * n, fin=(i == len(sizes) - 1))
                    for i, n in enumerate(sizes))


@pytest.mark.parametrize("data", cases([
    ("9.9.1", frame(OP_BINARY, b"\x00" * (MAX_MESSAGE + 1))),
    ("9.9.2", frame(OP_TEXT, b"a" * (MAX_MESSAGE + 1))),
    ("9.9.3", frame(OP_BINARY, b"", length=MAX_MESSAGE + 1)),          # header alone suffices
    ("9.9.4", _big_in_fragments([MAX_MESSAGE // 2, MAX_MESSAGE // 2, 1])),
    ("9.9.5", _big_in_fragments([65536] * 17)),
    ("9.9.6", _big_in_fragments([700000, 400000])),
    ("9.9.7", _big_in_fragments([1] * 10 + [MAX_MESSAGE - 9])),
    ("9.9.8", frame(OP_TEXT, b"a" * 100, fin=False) + frame(OP_CONT, b"", length=MAX_MESSAGE)),
]))
def test_9_too_big(ep, request, data):
    """Beyond 1 MiB, in one frame or assembled from fragments: 1009."""
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send(data, tolerate_close=True)
        expect_failed(c, 1009)
    still_serving(ep)


def test_9_exactly_the_cap_in_fragments(ep):
    """9.10: 1 MiB exactly, as 1-byte + (1 MiB - 2) + 1-byte fragments, with
    a ping in the middle."""
    payload = binary_of_len(MAX_MESSAGE, 9)
    with ep.connect(path("9.10")) as c:
        c.send(frame(OP_BINARY, payload[:1], fin=False) + frame(OP_PING, b"mid") +
               frame(OP_CONT, payload[1:-1], fin=False) + frame(OP_CONT, payload[-1:]))
        assert c.recv() == (OP_PONG, b"mid")
        assert c.recv() == (OP_BINARY, payload)
        close_cleanly(c)


# === 10 misc ===============================================================================

def _mixed(count, seed=0):
    out = []
    for i in range(count):
        op = OP_TEXT if (i + seed) % 3 else OP_BINARY
        n = [0, 1, 17, 125, 126, 1000, 4096][(i * 5 + seed) % 7]
        out.append((op, payload_for(op, n, seed=i)))
    return out


@pytest.mark.parametrize("count,chop,frag", cases([
    ("10.2.1", 10, None, None),
    ("10.2.2", 100, None, None),
    ("10.2.3", 500, None, None),
    ("10.2.4", 100, 7, None),          # the one write cut into 7-byte pieces
    ("10.2.5", 100, None, 50),         # each message fragmented too
    ("10.2.6", 300, 1000, 3),
]))
def test_10_pipelined(ep, request, count, chop, frag):
    """Many messages in one TCP write: all echoed, in order, types kept."""
    msgs = _mixed(count, seed=count)
    data = b"".join(fragments(op, p, frag) if frag else frame(op, p) for op, p in msgs)
    with ep.connect(path(request.node.callspec.id)) as c:
        c.send(data, chop=chop)
        got = [c.recv() for _ in msgs]
        assert got == msgs
        close_cleanly(c)


def test_10_1_1_autofragmented(ep):
    """10.1.1: a 65536-byte text message in 1300-byte fragments."""
    payload = text_of_len(65536, 3)
    with ep.connect(path("10.1.1")) as c:
        c.send_message(OP_TEXT, payload, frag=1300)
        assert c.recv() == (OP_TEXT, payload)
        close_cleanly(c)


def test_10_3_pings_between_pipelined_messages(ep):
    """10.3: messages and pings in one write: pongs in ping order, echoes in
    message order (how the two interleave is not specified)."""
    msgs = _mixed(40, seed=1)
    data = b""
    for i, (op, p) in enumerate(msgs):
        data += frame(op, p) + frame(OP_PING, b"%d" % i)
    with ep.connect(path("10.3")) as c:
        c.send(data)
        got = [c.recv() for _ in range(2 * len(msgs))]
        assert [e for e in got if e[0] == OP_PONG] == [(OP_PONG, b"%d" % i) for i in range(len(msgs))]
        assert [e for e in got if e[0] != OP_PONG] == msgs
        close_cleanly(c)


def test_10_4_connections_are_independent(ep):
    """10.4: five connections to the same mirror object, interleaved: each
    gets exactly its own messages back."""
    conns = [ep.connect(path("10.4")) for _ in range(5)]
    try:
        for round_ in range(5):
            for i, c in enumerate(conns):
                c.send_message(OP_TEXT, b"conn %d round %d" % (i, round_))
        for i, c in enumerate(conns):
            assert [c.recv() for _ in range(5)] == [(OP_TEXT, b"conn %d round %d" % (i, r))
                                                   for r in range(5)]
        for c in conns:
            close_cleanly(c)
    finally:
        for c in conns:
            c.close()


# === 12 / 13 compression (RFC 7692) =========================================================
# The server always answers an acceptable offer with no context takeover in
# both directions; its messages may come compressed (RSV1), and wsconf
# inflates them with the agreed window and context rules.

AUTOBAHN_OFFER = [("client_no_context_takeover", None), ("client_max_window_bits", None)]
MSG_SIZES = [(16, None), (64, None), (256, None), (1024, None), (4096, None), (8192, None),
             (16384, None), (32768, None), (65536, None), (131072, None),
             (8192, 256), (16384, 256), (32768, 256), (65536, 256), (131072, 256),
             (131072, 1024), (131072, 4096), (131072, 32768)]


def corpus(n, binary, seed=0):
    """Compressible test data: JSON-ish text, or structured binary."""
    if binary:
        unit = b"".join(struct.pack("!IHB", i * 2654435761 % (1 << 32), i % 977, i % 7)
                        for i in range(seed, seed + 4096))
    else:
        unit = "".join('{"id": %d, "name": "user-%d", "tags": ["κόσμε", "ü", "✓"], "ok": %s}\n'
                       % (i, i * 7 % 1000, "true" if i % 3 else "false")
                       for i in range(seed, seed + 600)).encode()
    out = (unit * (n // len(unit) + 1))[:n]
    if not binary:
        # Cut on a character boundary and pad to exactly n bytes.
        while True:
            try:
                out.decode()
                break
            except UnicodeDecodeError:
                out = out[:-1]
        out += b" " * (n - len(out))
    return out


def connect_offering(ep, case, header):
    """Connect offering `header`; a refused handshake fails the test (an
    offer the server cannot take is declined, never refused)."""
    try:
        return ep.connect(path(case), extensions=header)
    except HandshakeRefused as e:
        pytest.fail("handshake refused (%s) for the offer %r" % (e.status, header))


def negotiated(ep, case, offer):
    c = connect_offering(ep, case, offer_string(offer) if isinstance(offer, list) else offer)
    assert c.pmd is not None, "permessage-deflate not agreed for the offer %r (response: %r)" % (
        offer, c.extensions_header)
    return c


def window_probe(c):
    """A message whose only repeats lie just beyond the agreed server window
    (an incompressible block of 2**bits + 50 bytes, three times): a server
    compressing with a larger window than agreed would refer back 2**bits +
    50 bytes. (test_13_server_window decodes the server's reply to check.)"""
    bits = int(dict(c.pmd).get("server_max_window_bits") or 15) if c.pmd is not None else 15
    return (OP_BINARY, binary_of_len((1 << bits) + 50, seed=bits) * 3)


def round_trip(c, msgs, frag=None, compress=True):
    for op, p in msgs:
        c.send_message(op, p, frag=frag, compress=compress)
        got = c.recv()
        assert got[0] == op and len(got[1]) == len(p) and got[1] == p, \
            "echo differs (op %d, %d bytes sent, %d received)" % (got[0], len(p), len(got[1]))


@pytest.mark.parametrize("binary", [pytest.param(False, id="text"), pytest.param(True, id="binary")])
@pytest.mark.parametrize("size,frag", [pytest.param(s, f, id="12.1.%d" % i)
                                       for i, (s, f) in enumerate(MSG_SIZES, 1)])
def test_12_compressed_messages(ep, size, frag, binary):
    """12.x: with Autobahn's default offer, compressed messages of many sizes
    (some fragmented) are echoed; every one compressed on its own (the
    server demands client_no_context_takeover)."""
    op = OP_BINARY if binary else OP_TEXT
    with negotiated(ep, "12.1.%d" % size, AUTOBAHN_OFFER) as c:
        assert "client_no_context_takeover" in dict(c.pmd), c.extensions_header
        assert "server_no_context_takeover" in dict(c.pmd), c.extensions_header
        round_trip(c, [(op, corpus(size, binary, seed=s)) for s in range(4)], frag=frag)
        close_cleanly(c)


# Payloads are built per connection by functions of z: z(data) compresses one
# message on its own within the agreed client window (z(data, final=True)
# ends it with a BFINAL block, z(data, level=0) uses stored blocks).

PMD_MISC = [
    ("12.3.1", lambda z: [frame(OP_TEXT, z(b""), rsv=RSV1)], [(OP_TEXT, b"")]),
    ("12.3.2", lambda z: [frame(OP_BINARY, b"\x00", rsv=RSV1)], [(OP_BINARY, b"")]),  # empty stored block
    ("12.3.3", lambda z: [frame(OP_TEXT, b"plain, not compressed")], [(OP_TEXT, b"plain, not compressed")]),
    ("12.3.4", lambda z: [fragments(OP_TEXT, z(corpus(3000, False)), 1, rsv_first=RSV1)],
     [(OP_TEXT, corpus(3000, False))]),
    ("12.3.5", lambda z: [fragments(OP_TEXT, z("κόσμε 😀 ü€".encode() * 50), 3, rsv_first=RSV1)],
     [(OP_TEXT, "κόσμε 😀 ü€".encode() * 50)]),
    ("12.3.6", lambda z: [frame(OP_TEXT, z(b"final block " * 20, final=True), rsv=RSV1)],
     [(OP_TEXT, b"final block " * 20)]),                        # RFC 7692 7.2.3.4
    ("12.3.7", lambda z: [frame(OP_BINARY, z(binary_of_len(5000), level=0), rsv=RSV1)],
     [(OP_BINARY, binary_of_len(5000))]),                       # RFC 7692 7.2.3.3
    # A compressed message in two fragments with a ping between them.
    ("12.3.8", lambda z: [frame(OP_TEXT, z(b"x" * 1000)[:3], fin=False, rsv=RSV1) + frame(OP_PING, b"mid") +
                          frame(OP_CONT, z(b"x" * 1000)[3:])], [(OP_PONG, b"mid"), (OP_TEXT, b"x" * 1000)]),
    ("12.3.9", lambda z: [frame(OP_TEXT, z(b"one"), rsv=RSV1) + frame(OP_BINARY, z(b"two"), rsv=RSV1) +
                          frame(OP_TEXT, b"three") + frame(OP_BINARY, z(b"\x00" * 4), rsv=RSV1)],
     [(OP_TEXT, b"one"), (OP_BINARY, b"two"), (OP_TEXT, b"three"), (OP_BINARY, b"\x00" * 4)]),
    ("12.3.10", lambda z: [frame(OP_TEXT, z(b"a" * MAX_MESSAGE), rsv=RSV1)],
     [(OP_TEXT, b"a" * MAX_MESSAGE)]),                          # inflates to exactly the cap
    ("12.3.11", lambda z: [frame(OP_BINARY, z(binary_of_len(MAX_MESSAGE // 2)), rsv=RSV1)],
     [(OP_BINARY, binary_of_len(MAX_MESSAGE // 2))]),            # incompressible
    ("12.3.12", lambda z: [frame(OP_BINARY, z(binary_of_len(MAX_MESSAGE - 1000), level=0), rsv=RSV1)],
     [(OP_BINARY, binary_of_len(MAX_MESSAGE - 1000))]),  # stored blocks, just under 1 MiB on the wire
]


@pytest.mark.parametrize("steps,expect", cases(PMD_MISC))
def test_12_compressed_misc(ep, request, steps, expect):
    with negotiated(ep, request.node.callspec.id, AUTOBAHN_OFFER) as c:
        for s in steps(c.z):
            c.send(s)
        assert [c.recv() for _ in expect] == expect
        close_cleanly(c)


PMD_ERRORS = [
    ("12.4.1", lambda z: frame(OP_TEXT, z(b"abc")[:1], fin=False, rsv=RSV1) +
     frame(OP_CONT, z(b"abc")[1:], rsv=RSV1), (1002,)),      # RSV1 on a continuation
    ("12.4.2", lambda z: frame(OP_PING, b"p", rsv=RSV1), (1002,)),
    ("12.4.3", lambda z: frame(OP_PONG, b"p", rsv=RSV1), (1002,)),
    ("12.4.4", lambda z: frame(OP_CLOSE, close_payload(1000), rsv=RSV1), (1002,)),
    ("12.4.5", lambda z: frame(OP_TEXT, z(b"abc"), rsv=RSV1 | RSV2), (1002,)),
    ("12.4.6", lambda z: frame(OP_TEXT, z(b"abc"), rsv=RSV3), (1002,)),
    ("12.4.7", lambda z: frame(OP_CONT, z(b"abc"), rsv=RSV1), (1002,)),  # and no message open
    # Invalid compressed data: EITHER 1007 or 1002 (RFC 7692 leaves the code open).
    ("12.4.8", lambda z: frame(OP_BINARY, b"\xff\xff\xff\xff", rsv=RSV1), (1007, 1002)),  # block type 3
    ("12.4.9", lambda z: frame(OP_TEXT, b"\x00\x05\x00\x00\x00hello", rsv=RSV1), (1007, 1002)),  # LEN/NLEN
    ("12.4.10", lambda z: frame(OP_BINARY, b"\x03\x02\x00", rsv=RSV1), (1007, 1002)),  # distance too far
    # Valid compression of invalid UTF-8.
    ("12.4.11", lambda z: frame(OP_TEXT, z(b"ok \xed\xa0\x80 not ok"), rsv=RSV1), (1007,)),
    ("12.4.12", lambda z: fragments(OP_TEXT, z(b"truncated \xe2\x82"), 2, rsv_first=RSV1), (1007,)),
    # Inflating beyond 1 MiB: just over, and a 16 MiB bomb of ~16 KiB.
    ("12.4.13", lambda z: frame(OP_BINARY, z(b"\x00" * (MAX_MESSAGE + 1)), rsv=RSV1), (1009,)),
    ("12.4.14", lambda z: frame(OP_BINARY, z(b"\x00" * (16 * MIB)), rsv=RSV1), (1009,)),
    ("12.4.15", lambda z: frame(OP_TEXT, z(b"a" * (MAX_MESSAGE + 1)), rsv=RSV1), (1009,)),
    ("12.4.16", lambda z: fragments(OP_BINARY, z(b"\x00" * (2 * MIB)), 100, rsv_first=RSV1), (1009,)),
]


@pytest.mark.parametrize("data,codes", cases(PMD_ERRORS))
def test_12_compression_errors(ep, request, data, codes):
    """With permessage-deflate agreed: RSV1 only on a message's first frame,
    RSV2/3 never; undecodable data 1007 (or 1002); decoded invalid UTF-8
    1007; more than 1 MiB once inflated 1009 (a small payload, a large
    message). Nothing after it is answered."""
    with negotiated(ep, request.node.callspec.id, AUTOBAHN_OFFER) as c:
        c.send(data(c.z) + frame(OP_PING, b"after"), tolerate_close=True)
        events, code, reason = c.recv_until_close()
        assert events == [] and code in codes, (events, code, reason)
        assert c.expect_eof()
    if len(codes) > 1:
        # Which of the accepted codes the server chose (pytest -rA shows it).
        print("%s: closed with %d (%s)" % (request.node.callspec.id, code, reason))
        request.node.user_properties.append(("close_code", code))
    still_serving(ep)


@pytest.mark.parametrize("offer", cases([
    ("12.5.1", None),                                      # no offer at all
    ("12.5.2", "x-webkit-deflate-frame"),                  # another extension, unknown
    ("12.5.3", "permessage-deflate; server_max_window_bits=7"),   # invalid offer: declined
]))
@pytest.mark.parametrize("op", [pytest.param(OP_TEXT, id="text"), pytest.param(OP_BINARY, id="binary")])
def test_12_rsv1_without_agreement(ep, request, offer, op):
    """No permessage-deflate agreed: a compressed (RSV1) message is 1002."""
    with connect_offering(ep, request.node.callspec.id, offer) as c:
        assert c.pmd is None, c.extensions_header
        c.send(frame(op, deflate_raw(b"hello"), rsv=RSV1))
        expect_failed(c, 1002)
    still_serving(ep)


# 13.1-13.7: Autobahn's offers, in its syntax (client accepts no context
# takeover and offers client_max_window_bits; requests server parameters).
AUTOBAHN_13 = [
    [AUTOBAHN_OFFER],
    [AUTOBAHN_OFFER + [("server_no_context_takeover", None)]],
    [AUTOBAHN_OFFER + [("server_max_window_bits", "8")]],
    [AUTOBAHN_OFFER + [("server_max_window_bits", "15")]],
    [AUTOBAHN_OFFER + [("server_no_context_takeover", None), ("server_max_window_bits", "8")]],
    [AUTOBAHN_OFFER + [("server_no_context_takeover", None), ("server_max_window_bits", "15")]],
    [AUTOBAHN_OFFER + [("server_no_context_takeover", None), ("server_max_window_bits", "8")],
     AUTOBAHN_OFFER + [("server_no_context_takeover", None)],
     AUTOBAHN_OFFER],
]


def offers_header(offers):
    return ", ".join(offer_string(o) for o in offers)


def may_decline(offers):
    """An offer list the server may decline entirely: every valid offer in
    it asks for an 8-bit server window (which zlib cannot produce; RFC 7692
    lets the server decline it)."""
    return all(dict(o).get("server_max_window_bits") == "8" for o in offers if pmd_offer_valid(o))


def check_agreement(c, offers):
    """The 101's extension answer is valid for the offers (RFC 7692 7.1):
    a valid acceptance of one offer, or (only where this suite allows it,
    see may_decline) none; always no context takeover both ways."""
    if c.pmd is None:
        assert may_decline(offers) or not any(pmd_offer_valid(o) for o in offers), \
            "offer %r declined (response %r)" % (offers_header(offers), c.extensions_header)
        return False
    problems = pmd_response_problems(offers, c.pmd)
    assert not problems, "response %r to %r: %s" % (c.extensions_header, offers_header(offers), problems)
    p = dict(c.pmd)
    assert "server_no_context_takeover" in p and "client_no_context_takeover" in p, c.extensions_header
    return True


@pytest.mark.parametrize("offers", [pytest.param(o, id="13.%d" % i) for i, o in enumerate(AUTOBAHN_13, 1)])
@pytest.mark.parametrize("size,frag", [pytest.param(s, f, id="%d" % i)
                                       for i, (s, f) in enumerate(MSG_SIZES, 1) if i in (1, 4, 7, 10, 15, 17)])
def test_13_autobahn_offers(ep, offers, size, frag):
    """13.x.y: Autobahn's offers (13.3/13.5 ask for an 8-bit server window:
    accepted with server_max_window_bits=8, or declined); messages of the
    size round trip compressed, and the server's compressed replies inflate
    within the agreed window."""
    with connect_offering(ep, "13", offers_header(offers)) as c:
        agreed = check_agreement(c, offers)
        msgs = [(OP_TEXT, corpus(size, False, seed=s)) for s in range(3)]
        round_trip(c, msgs + [window_probe(c)], frag=frag, compress=agreed)
        close_cleanly(c)


@pytest.mark.parametrize("bits", [pytest.param(b, id="13.11.%d" % b) for b in range(8, 16)])
def test_13_server_window(ep, bits):
    """13.11: after agreeing to server_max_window_bits=N (N=8 may be
    declined), the server's compressed messages never refer further back
    than 2**N bytes: its reply to a window probe and to a text corpus,
    decoded by a pure-Python inflater that records every distance."""
    header = "permessage-deflate; server_max_window_bits=%d" % bits
    with connect_offering(ep, "13.11", header) as c:
        if not check_agreement(c, [[("server_max_window_bits", str(bits))]]):
            close_cleanly(c)
            return
        assert int(dict(c.pmd)["server_max_window_bits"]) <= bits
        agreed = int(dict(c.pmd)["server_max_window_bits"])
        for op, p in (window_probe(c), (OP_TEXT, corpus(3 << agreed, False, seed=bits))):
            c.send_message(op, p)
            assert c.recv() == (op, p)
            compressed, raw = c.last_raw
            assert compressed, "the server did not compress a %d-byte compressible message" % len(p)
            out, dist = deflate_max_distance(raw)
            assert out == p
            assert dist <= 1 << agreed, "back-reference of %d bytes with a %d-bit window" % (dist, agreed)
        close_cleanly(c)


WINDOW_VALUES = [None, "valueless"] + [str(b) for b in range(8, 16)]


@pytest.mark.parametrize("cmwb", WINDOW_VALUES, ids=lambda v: "c%s" % v)
@pytest.mark.parametrize("smwb", [None] + [str(b) for b in range(8, 16)], ids=lambda v: "s%s" % v)
def test_13_negotiation_matrix(ep, cmwb, smwb):
    """13.8: every combination of client_no_context_takeover,
    server_no_context_takeover, client_max_window_bits (absent, valueless,
    8..15) and server_max_window_bits (absent, 8..15): the handshake always
    succeeds; the answer is a valid agreement (server_max_window_bits=8 may
    instead be declined); with an agreement a compressed text and binary
    message round trip, and the server's compressed replies keep to the
    agreed window (window_probe)."""
    for cnct in (False, True):
        for snct in (False, True):
            offer = []
            if cnct:
                offer.append(("client_no_context_takeover", None))
            if snct:
                offer.append(("server_no_context_takeover", None))
            if cmwb is not None:
                offer.append(("client_max_window_bits", None if cmwb == "valueless" else cmwb))
            if smwb is not None:
                offer.append(("server_max_window_bits", smwb))
            with connect_offering(ep, "13.8", offer_string(offer)) as c:
                agreed = check_agreement(c, [offer])
                round_trip(c, [(OP_TEXT, corpus(2000, False)), (OP_BINARY, corpus(3000, True)),
                               window_probe(c)], compress=agreed)
                close_cleanly(c)


@pytest.mark.parametrize("header,accept", cases([
    # Invalid offers must be declined (RFC 7692 5.1), never fail the handshake.
    ("13.9.1", "permessage-deflate; server_max_window_bits=7", None),
    ("13.9.2", "permessage-deflate; server_max_window_bits=16", None),
    ("13.9.3", "permessage-deflate; server_max_window_bits=0", None),
    ("13.9.4", "permessage-deflate; server_max_window_bits=08", None),
    ("13.9.5", "permessage-deflate; server_max_window_bits", None),
    ("13.9.6", "permessage-deflate; client_max_window_bits=7", None),
    ("13.9.7", "permessage-deflate; client_max_window_bits=16", None),
    ("13.9.8", "permessage-deflate; client_max_window_bits=abc", None),
    ("13.9.9", "permessage-deflate; server_no_context_takeover=1", None),
    ("13.9.10", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("13.9.11", "permessage-deflate; unknown_parameter", None),
    ("13.9.12", "permessage-deflate; client_max_window_bits=10; client_max_window_bits=11", None),
    ("13.9.13", "x-webkit-deflate-frame", None),
    ("13.9.14", "permessage-foo, deflate-frame; no_context_takeover", None),
    # An invalid offer, then a valid one: the valid one is the one accepted.
    ("13.9.15", "permessage-deflate; server_max_window_bits=7, permessage-deflate", 1),
    ("13.9.16", "permessage-deflate; bogus, permessage-deflate; client_max_window_bits", 1),
    ("13.9.17", "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", 0),
    # Valid offers written differently.
    ("13.9.18", 'permessage-deflate; client_max_window_bits="10"', 0),       # quoted value
    ("13.9.19", "permessage-deflate;client_max_window_bits;server_no_context_takeover", 0),
    ("13.9.20", "permessage-deflate", 0),
    ("13.9.21", "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15", 0),
    ("13.9.22", "permessage-deflate; server_max_window_bits=9", 0),
]))
def test_13_offer_parsing(ep, request, header, accept):
    """accept None: the answer has no permessage-deflate; accept i: offer i
    (of the permessage-deflate offers) is validly accepted."""
    with connect_offering(ep, request.node.callspec.id, header) as c:
        offers = [params for name, params in parse_extensions(header) if name == "permessage-deflate"]
        if accept is None:
            assert c.pmd is None, "invalid offer %r accepted: %r" % (header, c.extensions_header)
        else:
            assert c.pmd is not None, "valid offer %r declined" % header
            problems = pmd_response_problems([offers[accept]], c.pmd)
            assert not problems, (c.extensions_header, problems)
        round_trip(c, [(OP_TEXT, b"hello " * 50)], compress=c.pmd is not None)
        close_cleanly(c)


@pytest.mark.parametrize("case", [pytest.param(i, id="13.10.%d" % i) for i in (1, 2)])
def test_13_python_websockets_client(roomd, case):
    """13.10: Debian's python3-websockets (offers permessage-deflate with
    client_max_window_bits by default) agrees on compression and exchanges
    text and binary messages of many sizes over ws (1) and wss (2)."""
    import websockets
    from websockets.extensions.permessage_deflate import PerMessageDeflate

    url = (roomd.ws if case == 1 else roomd.wss) + path("13.10")
    ssl_ctx = roomd.ssl_context() if case == 2 else None

    async def go():
        async with websockets.connect(url, ssl=ssl_ctx, max_size=2 * MIB) as ws:
            exts = ws.extensions if hasattr(ws, "extensions") else ws.protocol.extensions
            assert any(isinstance(e, PerMessageDeflate) for e in exts), \
                "permessage-deflate not negotiated with python-websockets"
            for n in (0, 10, 1000, 65536, 500000, MAX_MESSAGE):
                t = corpus(n, False, seed=n).decode()
                await ws.send(t)
                assert await ws.recv() == t
                b = corpus(n, True, seed=n)
                await ws.send(b)
                assert await ws.recv() == b
    asyncio.run(asyncio.wait_for(go(), 60))
