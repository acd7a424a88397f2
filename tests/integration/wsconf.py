"""A raw RFC 6455 (+ RFC 7692 permessage-deflate) client for the conformance
tests in test_conformance.py.

It sends whatever a test asks for, byte for byte (unmasked frames, reserved
bits, bad lengths, invalid UTF-8, frames cut into arbitrary TCP writes), and
it checks everything the server sends against the rules a server must keep:
frames unmasked, minimal length encoding, RSV bits only as negotiated,
control frames short and unfragmented, text valid UTF-8, nothing after the
close frame. A server-side violation raises AssertionError naming the rule.

Every read has a deadline (TIMEOUT seconds unless told otherwise): a server
that stays silent fails the test instead of hanging it. Nothing here asserts
on timing beyond that.

Standard library only.
"""
import base64
import hashlib
import os
import re
import socket
import ssl
import struct
import time
import zlib

TIMEOUT = 5.0

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
DATA_OPS = (OP_TEXT, OP_BINARY)
KNOWN_OPS = (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)

RSV1, RSV2, RSV3 = 4, 2, 1          # values for the rsv argument (bits 6, 5, 4 of byte 0)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEFLATE_TAIL = b"\x00\x00\xff\xff"


# --- UTF-8 --------------------------------------------------------------------

def utf8_fail_index(data):
    """Index of the first byte at which `data` stops being a prefix of some
    valid UTF-8 string (RFC 3629), or None if it is such a prefix. This is
    where a fail-fast validator must reject. (Python's own incremental decoder
    is not usable: it accepts b"\\xed\\xa0" as a viable prefix.)"""
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif b == 0xE0:
            need, lo, hi = 2, 0xA0, 0xBF
        elif 0xE1 <= b <= 0xEC or 0xEE <= b <= 0xEF:
            need, lo, hi = 2, 0x80, 0xBF
        elif b == 0xED:
            need, lo, hi = 2, 0x80, 0x9F
        elif b == 0xF0:
            need, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= b <= 0xF3:
            need, lo, hi = 3, 0x80, 0xBF
        elif b == 0xF4:
            need, lo, hi = 3, 0x80, 0x8F
        else:
            return i
        for k in range(1, need + 1):
            if i + k >= n:
                return None  # truncated, but still a viable prefix
            c = data[i + k]
            if k == 1 and not lo <= c <= hi:
                return i + k
            if k > 1 and not 0x80 <= c <= 0xBF:
                return i + k
        i += need + 1
    return None


def utf8_valid(data):
    try:
        bytes(data).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def text_of_len(n, seed=0):
    """Valid UTF-8 of exactly n bytes, with 2-, 3- and 4-byte sequences mixed in."""
    alphabet = ["a", "b", "Z", "7", " ", "é", "ß", "€", "✓", "κ", "𝄞", "😀", "\x00", "~", "\u2028"]
    out = bytearray()
    i = seed
    while True:
        ch = alphabet[(i * 7 + i // 3) % len(alphabet)].encode()
        i += 1
        if len(out) + len(ch) > n:
            break
        out += ch
    out += b"x" * (n - len(out))
    return bytes(out)


def binary_of_len(n, seed=0):
    """Deterministic bytes covering all 256 values (incompressible-ish)."""
    base = hashlib.sha256(b"roomd-%d" % seed).digest()
    out = bytearray()
    block = base
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


# --- frames -------------------------------------------------------------------

def mask_bytes(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None, key=None, length_form=None):
    """Bytes of one client frame. `length` overrides the announced length
    (the payload is still what is sent); `length_form` forces 7, 16 or 64-bit
    length encoding."""
    payload = bytes(payload)
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        hdr = struct.pack("!BB", b0, m | n)
    elif form == 16:
        hdr = struct.pack("!BBH", b0, m | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, m | 127, n)
    if mask:
        key = os.urandom(4) if key is None else key
        return hdr + key + mask_bytes(payload, key)
    return hdr + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


def fragments(opcode, payload, size, rsv_first=0):
    """Frames of one message cut into payload pieces of `size` bytes
    (at least one frame, even for an empty payload)."""
    payload = bytes(payload)
    pieces = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
    out = []
    for i, p in enumerate(pieces):
        out.append(frame(opcode if i == 0 else OP_CONT, p, fin=(i == len(pieces) - 1),
                         rsv=rsv_first if i == 0 else 0))
    return b"".join(out)


# --- permessage-deflate (RFC 7692) -------------------------------------------

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"


def parse_extensions(header):
    """'a; x=1; y, b' -> [('a', [('x', '1'), ('y', None)]), ('b', [])].
    Raises ValueError on syntax errors."""
    out = []
    if header is None:
        return out
    for ext in _split_outside_quotes(header, ","):
        ext = ext.strip()
        if not ext:
            continue
        parts = [p.strip() for p in _split_outside_quotes(ext, ";")]
        name = parts[0]
        if not re.fullmatch(_TOKEN, name):
            raise ValueError("bad extension name %r" % name)
        params = []
        for p in parts[1:]:
            if "=" in p:
                k, v = (x.strip() for x in p.split("=", 1))
                if len(v) >= 2 and v[0] == v[-1] == '"':
                    v = v[1:-1]
                if not re.fullmatch(_TOKEN, k) or not re.fullmatch(_TOKEN, v):
                    raise ValueError("bad parameter %r" % p)
                params.append((k, v))
            else:
                if not re.fullmatch(_TOKEN, p):
                    raise ValueError("bad parameter %r" % p)
                params.append((p, None))
        out.append((name, params))
    return out


def _split_outside_quotes(s, sep):
    parts, cur, q = [], "", False
    for ch in s:
        if ch == '"':
            q = not q
        if ch == sep and not q:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


PMD_PARAMS = ("server_no_context_takeover", "client_no_context_takeover",
              "server_max_window_bits", "client_max_window_bits")


def _bits(v):
    return v is not None and re.fullmatch(r"[1-9][0-9]?", v) is not None and 8 <= int(v) <= 15


def pmd_offer_valid(params):
    """Is this offer (list of (name, value)) one a server must be able to
    parse and accept (RFC 7692 7.1)?"""
    names = [k for k, _ in params]
    if len(set(names)) != len(names):
        return False
    for k, v in params:
        if k in ("server_no_context_takeover", "client_no_context_takeover"):
            if v is not None:
                return False
        elif k == "server_max_window_bits":
            if not _bits(v):
                return False
        elif k == "client_max_window_bits":
            if v is not None and not _bits(v):
                return False
        else:
            return False
    return True


def pmd_response_problems(offers, response):
    """Why `response` (the parsed permessage-deflate entry of a 101, a list of
    (name, value)) is not a valid acceptance of any of `offers` (each a list
    of (name, value)); [] when it accepts at least one of them."""
    names = [k for k, _ in response]
    base = []
    if len(set(names)) != len(names):
        base.append("duplicate parameter in %r" % (response,))
    for k, v in response:
        if k not in PMD_PARAMS:
            base.append("unknown parameter %r" % k)
        elif k.endswith("no_context_takeover") and v is not None:
            base.append("%s must not have a value" % k)
        elif k.endswith("max_window_bits") and not _bits(v):
            base.append("%s needs a value 8..15 in a response, got %r" % (k, v))
    if base:
        return base
    resp = dict(response)
    why = []
    for i, offer in enumerate(offers):
        if not pmd_offer_valid(offer):
            why.append("offer %d is invalid and must be declined" % i)
            continue
        o = dict(offer)
        bad = []
        if "server_max_window_bits" in o:
            if "server_max_window_bits" not in resp:
                bad.append("offer %d has server_max_window_bits=%s: the response must carry "
                           "server_max_window_bits <= it (or decline)" % (i, o["server_max_window_bits"]))
            elif int(resp["server_max_window_bits"]) > int(o["server_max_window_bits"]):
                bad.append("offer %d: server_max_window_bits=%s above the offered %s"
                           % (i, resp["server_max_window_bits"], o["server_max_window_bits"]))
        if "client_max_window_bits" in resp:
            if "client_max_window_bits" not in o:
                bad.append("offer %d has no client_max_window_bits: the response must not carry it" % i)
            elif o["client_max_window_bits"] is not None and \
                    int(resp["client_max_window_bits"]) > int(o["client_max_window_bits"]):
                bad.append("offer %d: client_max_window_bits above the offered value" % i)
        if not bad:
            return []
        why += bad
    return why or ["no offer to accept"]


def offer_string(params):
    return "permessage-deflate" + "".join(
        "; %s" % k if v is None else "; %s=%s" % (k, v) for k, v in params)


class Deflater:
    """Client side compression per RFC 7692 7.2.1."""

    def __init__(self, params):
        p = dict(params)
        self.independent = "client_no_context_takeover" in p
        bits = int(p["client_max_window_bits"]) if p.get("client_max_window_bits") else 15
        # zlib cannot deflate with an 8-bit raw window; Huffman-only output
        # has no back-references at all, so it fits any window.
        self.bits = max(bits, 9)
        self.strategy = zlib.Z_HUFFMAN_ONLY if bits == 8 else zlib.Z_DEFAULT_STRATEGY
        self.obj = None

    def _new(self):
        return zlib.compressobj(6, zlib.DEFLATED, -self.bits, 8, self.strategy)

    def compress(self, data):
        if self.obj is None or self.independent:
            self.obj = self._new()
        out = self.obj.compress(bytes(data)) + self.obj.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(DEFLATE_TAIL)
        return out[:-4]


def deflate_raw(data, bits=15, level=9, final=False, strategy=zlib.Z_DEFAULT_STRATEGY):
    """One message compressed on its own (valid with or without context
    takeover): Z_SYNC_FLUSH and the 00 00 ff ff tail removed, or (final)
    ended with a BFINAL block and nothing removed (RFC 7692 7.2.3.4)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -max(bits, 9), 8, strategy)
    out = c.compress(bytes(data))
    if final:
        return out + c.flush(zlib.Z_FINISH)
    out += c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(DEFLATE_TAIL)
    return out[:-4]


class Inflater:
    """Decompression of the server's messages per the agreement. (zlib's
    inflate does not enforce the window size it is given: a back-reference
    beyond it still decodes when the data is in its output. Window
    compliance is checked with deflate_max_distance instead.)"""

    def __init__(self, params):
        p = dict(params)
        self.independent = "server_no_context_takeover" in p
        self.bits = int(p["server_max_window_bits"]) if p.get("server_max_window_bits") else 15
        self.obj = None

    def inflate(self, data, limit=64 << 20):
        if self.obj is None or self.independent:
            self.obj = zlib.decompressobj(-self.bits)
        try:
            out = self.obj.decompress(bytes(data) + DEFLATE_TAIL, limit)
        except zlib.error as e:
            raise AssertionError("server sent undecodable compressed data (window %d bits): %s"
                                 % (self.bits, e)) from None
        assert not self.obj.unconsumed_tail, "server message inflates beyond %d bytes" % limit
        return out


class _Bits:
    def __init__(self, data):
        self.data, self.pos, self.bit = data, 0, 0

    def get(self, n):
        v = 0
        for i in range(n):
            if self.pos >= len(self.data):
                raise EOFError
            v |= ((self.data[self.pos] >> self.bit) & 1) << i
            self.bit += 1
            if self.bit == 8:
                self.bit, self.pos = 0, self.pos + 1
        return v

    def align(self):
        if self.bit:
            self.bit, self.pos = 0, self.pos + 1

    def at_end(self):
        return self.pos >= len(self.data)


def _huffman(lengths):
    codes, code, table = {}, 0, {}
    bl_count = [0] * 16
    for ln in lengths:
        bl_count[ln] += 1
    bl_count[0] = 0
    next_code = [0] * 16
    for b in range(1, 16):
        code = (code + bl_count[b - 1]) << 1
        next_code[b] = code
    for sym, ln in enumerate(lengths):
        if ln:
            table[(ln, next_code[ln])] = sym
            next_code[ln] += 1
    return table


def _decode(bits, table):
    code = ln = 0
    while True:
        code = (code << 1) | bits.get(1)
        ln += 1
        sym = table.get((ln, code))
        if sym is not None:
            return sym
        if ln > 15:
            raise ValueError("bad Huffman code")


_LBASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
          131, 163, 195, 227, 258]
_LEXT = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
_DBASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
          2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
_DEXT = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
_FIXED_LIT = _huffman([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8)
_FIXED_DIST = _huffman([5] * 30)


def deflate_max_distance(data):
    """Decode one raw DEFLATE message (as sent, without the 00 00 ff ff
    tail) in pure Python: (output, the longest back-reference distance
    used). Slow; meant for probe messages of some KiB."""
    bits = _Bits(bytes(data) + DEFLATE_TAIL)
    out = bytearray()
    maxd = 0
    while not bits.at_end():
        final = bits.get(1)
        btype = bits.get(2)
        if btype == 0:
            bits.align()
            n = bits.get(16)
            assert bits.get(16) == n ^ 0xFFFF, "stored block LEN/NLEN mismatch"
            out += bits.data[bits.pos:bits.pos + n]
            bits.pos += n
        elif btype in (1, 2):
            if btype == 1:
                lit, dist = _FIXED_LIT, _FIXED_DIST
            else:
                hlit, hdist, hclen = bits.get(5) + 257, bits.get(5) + 1, bits.get(4) + 4
                order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
                cl = [0] * 19
                for i in range(hclen):
                    cl[order[i]] = bits.get(3)
                clt = _huffman(cl)
                lens = []
                while len(lens) < hlit + hdist:
                    sym = _decode(bits, clt)
                    if sym < 16:
                        lens.append(sym)
                    elif sym == 16:
                        lens += [lens[-1]] * (3 + bits.get(2))
                    elif sym == 17:
                        lens += [0] * (3 + bits.get(3))
                    else:
                        lens += [0] * (11 + bits.get(7))
                lit, dist = _huffman(lens[:hlit]), _huffman(lens[hlit:])
            while True:
                sym = _decode(bits, lit)
                if sym < 256:
                    out.append(sym)
                elif sym == 256:
                    break
                else:
                    n = _LBASE[sym - 257] + bits.get(_LEXT[sym - 257])
                    ds = _decode(bits, dist)
                    d = _DBASE[ds] + bits.get(_DEXT[ds])
                    assert d <= len(out), "back-reference before the start of the message"
                    maxd = max(maxd, d)
                    for _ in range(n):
                        out.append(out[-d])
        else:
            raise AssertionError("reserved DEFLATE block type")
        if final:
            break
    return bytes(out), maxd


# --- connections ----------------------------------------------------------------

class Endpoint:
    """Where and how to connect: ws (plain) or wss (TLS, host name localhost)."""

    def __init__(self, scheme, port, ssl_context=None):
        self.scheme = scheme
        self.port = port
        self.ssl_context = ssl_context
        self.host = "localhost" if scheme == "wss" else "127.0.0.1"

    @classmethod
    def of(cls, roomd, scheme):
        if scheme == "wss":
            return cls("wss", roomd.tls_port, roomd.ssl_context())
        return cls("ws", roomd.port)

    def connect(self, path, **kw):
        return Conn(self, path, **kw)

    def __repr__(self):
        return "%s://%s:%d" % (self.scheme, self.host, self.port)


class HandshakeRefused(Exception):
    def __init__(self, status, head):
        super().__init__("handshake answered %s:\n%s" % (status, head))
        self.status = status
        self.head = head


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload")

    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return "Frame(fin=%d rsv=%d op=%d len=%d %r)" % (self.fin, self.rsv, self.opcode,
                                                         len(self.payload), p)


class Conn:
    """One WebSocket connection driven byte by byte.

    `extensions`: the Sec-WebSocket-Extensions value to offer (or None).
    After the handshake: .status, .headers (lower-case name -> list of values),
    .extensions (parsed response), .pmd (the agreed permessage-deflate
    parameters as a list of (name, value), or None)."""

    def __init__(self, ep, path, extensions=None, headers=(), timeout=TIMEOUT):
        self.ep = ep
        self.timeout = timeout
        raw = socket.create_connection(("127.0.0.1", ep.port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ep.ssl_context is not None:
            try:
                self.sock = ep.ssl_context.wrap_socket(raw, server_hostname=ep.host)
            except BaseException:
                raw.close()
                raise
        else:
            self.sock = raw
        self.buf = bytearray()
        self.pos = 0
        self.closed_seen = None       # the close frame's payload once received
        self.msg_op = None            # server data message in progress
        self.msg_rsv1 = False
        self.msg_parts = []
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, ep.host, ep.port, key))
        if extensions is not None:
            req += "Sec-WebSocket-Extensions: %s\r\n" % extensions
        for h in headers:
            req += h + "\r\n"
        try:
            self.sock.sendall((req + "\r\n").encode())
            head = self._read_head()
        except BaseException:
            self.sock.close()
            raise
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers.setdefault(k.strip().lower(), []).append(v.strip())
        if self.status != 101:
            self.sock.close()
            raise HandshakeRefused(self.status, head.decode("latin-1"))
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert self.headers.get("sec-websocket-accept") == [want], head
        ext = self.headers.get("sec-websocket-extensions")
        self.extensions_header = ", ".join(ext) if ext else None
        self.extensions = parse_extensions(self.extensions_header)
        self.pmd = None
        for name, params in self.extensions:
            assert name == "permessage-deflate", "server agreed to an extension nobody offered: %r" % name
            assert self.pmd is None, "permessage-deflate agreed twice: %r" % self.extensions_header
            self.pmd = params
        if self.pmd is not None:
            assert extensions is not None and "permessage-deflate" in extensions, \
                "server agreed to permessage-deflate without an offer"
        self.inflater = Inflater(self.pmd) if self.pmd is not None else None
        self.deflater = Deflater(self.pmd) if self.pmd is not None else None

    def _read_head(self):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake: %r" % data)
            data += chunk
            assert len(data) < 65536, "endless response head"
        head, rest = data.split(b"\r\n\r\n", 1)
        self.buf += rest
        return head

    # -- sending --

    def send(self, data, chop=None, tolerate_close=False):
        """Write bytes, in pieces of `chop` bytes (one write each) if given.
        tolerate_close: the server may already have failed the connection,
        so a reset or broken pipe while sending is not an error."""
        data = bytes(data)
        try:
            if chop is None:
                self.sock.sendall(data)
            else:
                for i in range(0, len(data), chop):
                    self.sock.sendall(data[i:i + chop])
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            if not tolerate_close:
                raise

    def send_frame(self, opcode, payload=b"", chop=None, tolerate_close=False, **kw):
        self.send(frame(opcode, payload, **kw), chop=chop, tolerate_close=tolerate_close)

    def send_message(self, opcode, payload, frag=None, chop=None, compress=False):
        """A whole data message: one frame, or fragments of `frag` bytes;
        compressed with the agreed parameters when compress is set."""
        payload = bytes(payload)
        rsv = 0
        if compress:
            assert self.deflater is not None, "permessage-deflate was not negotiated"
            payload = self.deflater.compress(payload)
            rsv = RSV1
        if frag is None:
            data = frame(opcode, payload, rsv=rsv)
        else:
            data = fragments(opcode, payload, frag, rsv_first=rsv)
        self.send(data, chop=chop)

    def z(self, data, **kw):
        """`data` compressed on its own within the agreed client window."""
        assert self.deflater is not None, "permessage-deflate was not negotiated"
        kw.setdefault("bits", self.deflater.bits)
        kw.setdefault("strategy", self.deflater.strategy)
        return deflate_raw(data, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    # -- receiving --

    def _fill(self, deadline_left):
        self.sock.settimeout(deadline_left)
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            raise AssertionError("no data from the server within %.0f s" % self.timeout) from None
        except ConnectionResetError:
            raise AssertionError("the server reset the connection (RST) instead of closing it") from None
        finally:
            self.sock.settimeout(self.timeout)   # writes keep the full timeout
        if self.pos > 1 << 20:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += chunk
        return bool(chunk)

    def _parse(self):
        b, p = self.buf, self.pos
        avail = len(b) - p
        if avail < 2:
            return None
        b0, b1 = b[p], b[p + 1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            if avail < 4:
                return None
            n = struct.unpack_from("!H", b, p + 2)[0]
            off = 4
            assert n >= 126, "server used a 16-bit length for %d bytes (not minimal)" % n
        elif n == 127:
            if avail < 10:
                return None
            n = struct.unpack_from("!Q", b, p + 2)[0]
            off = 10
            assert n >> 63 == 0, "server frame length with the top bit set"
            assert n >= 65536, "server used a 64-bit length for %d bytes (not minimal)" % n
        assert not (b1 & 0x80), "server frame is masked"
        if avail < off + n:
            return None
        payload = bytes(b[p + off:p + off + n])
        self.pos = p + off + n
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload)

    def recv_frame(self, timeout=None):
        """The next frame, checked against the server's rules; None on EOF
        (which is only legal after the close frame)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f = self._parse()
            if f is not None:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no complete frame from the server within the timeout")
            if not self._fill(left):
                assert len(self.buf) == self.pos, "EOF in the middle of a frame"
                return None
        assert self.closed_seen is None, "server sent %r after its close frame" % f
        assert f.opcode in KNOWN_OPS, "server used reserved opcode %d" % f.opcode
        if f.opcode >= 8:
            assert f.fin, "server fragmented a control frame"
            assert len(f.payload) <= 125, "server control frame of %d bytes" % len(f.payload)
            assert f.rsv == 0, "server set RSV bits on a control frame"
        elif f.opcode == OP_CONT:
            assert self.msg_op is not None, "server sent a continuation without a message"
            assert f.rsv == 0, "server set RSV bits on a continuation frame"
        else:
            assert self.msg_op is None, "server started a message inside another"
            assert f.rsv & 3 == 0, "server set RSV2/RSV3"
            assert not (f.rsv & RSV1) or self.pmd is not None, \
                "server set RSV1 without negotiated permessage-deflate"
        return f

    def recv(self, timeout=None):
        """The next event: (opcode, payload) of a whole data message
        (decompressed, UTF-8 checked for text) or of a control frame;
        None on EOF."""
        while True:
            f = self.recv_frame(timeout)
            if f is None:
                assert self.msg_op is None, "EOF inside a fragmented server message"
                return None
            if f.opcode >= 8:
                if f.opcode == OP_CLOSE:
                    self.closed_seen = f.payload
                return f.opcode, f.payload
            if f.opcode != OP_CONT:
                self.msg_op, self.msg_rsv1, self.msg_parts = f.opcode, bool(f.rsv & RSV1), []
            self.msg_parts.append(f.payload)
            if f.fin:
                op, data = self.msg_op, b"".join(self.msg_parts)
                self.last_raw = (self.msg_rsv1, data)   # as sent, for window checks
                if self.msg_rsv1:
                    data = self.inflater.inflate(data)
                self.msg_op, self.msg_parts = None, []
                if op == OP_TEXT:
                    assert utf8_valid(data), "server sent a text message that is not UTF-8"
                return op, data

    def recv_until_close(self, timeout=None):
        """(events before the close, close code, reason). The code is 1005
        for an empty close. Fails on EOF without a close frame."""
        events = []
        while True:
            ev = self.recv(timeout)
            assert ev is not None, "connection ended without a close frame; before it: %r" % events
            op, payload = ev
            if op == OP_CLOSE:
                assert len(payload) != 1, "server close payload of 1 byte"
                if not payload:
                    return events, 1005, ""
                code = struct.unpack("!H", payload[:2])[0]
                assert code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                                1014) or 3000 <= code <= 4999, "server sent close code %d" % code
                assert utf8_valid(payload[2:]), "server close reason is not UTF-8"
                return events, code, payload[2:].decode()
            events.append(ev)

    def expect_eof(self, timeout=None):
        """After the close frame: the server closes TCP (EOF, never more
        data). Returns True; fails on timeout, data or reset."""
        ev = self.recv(timeout)
        assert ev is None, "server sent %r after the close frame" % (ev,)
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
