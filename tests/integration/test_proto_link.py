"""Talk to a shard directly over its Unix socket with Python's msgpack: the
wire protocol as documented in proto/pr_msg.h, and a malformed frame closes
only that link."""
import os
import socket
import struct

import msgpack
import pytest

HELLO, OPEN, ACCEPT, REJECT, CLOSE, FRAME, SEND, BROADCAST, HTTP_REQ, HTTP_RES, PING, PONG = range(1, 13)


class Link:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.buf = b""

    def send(self, msg):
        body = msgpack.packb(msg, use_bin_type=True)
        self.s.sendall(struct.pack("!I", len(body)) + body)

    def send_raw(self, data):
        self.s.sendall(data)

    def recv(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack("!I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return msgpack.unpackb(body, raw=False)
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def close(self):
        self.s.close()


def shard_link(roomd, name="shard-0"):
    link = Link(os.path.join(roomd.run_dir, f"{name}.sock"))
    hello = link.recv()
    assert hello[0] == HELLO and hello[1] == 1 and hello[2] == "shard" and hello[3] == name
    assert {"echo", "chat"} <= set(hello[4])
    link.send([HELLO, 1, "gateway", "pytest-gateway", []])
    return link


def test_shard_speaks_the_documented_protocol(roomd):
    link = shard_link(roomd)
    link.send([PING, 77])
    pong = link.recv()
    assert pong[:8] == [PONG, 77, 0, 0, 0, 0, 0, 0]  # federation state (0: off) and its counters
    # objects live and hibernated, then histograms (commits, message handling,
    # federation lag): RD_HIST_BOUNDS + 1 bucket counts and the sum in microseconds
    assert len(pong) == 13 and all(isinstance(v, int) and v >= 0 for v in pong[8:10])
    assert all(len(h) == 17 and all(isinstance(v, int) for v in h) for h in pong[10:])
    link.send([OPEN, 1, "echo/direct", "0190c7e0-0000-7000-8000-000000000001", 1700000000000, 0,
               "", "127.0.0.1:1", "", {"host": "x"}])
    assert link.recv() == [ACCEPT, 1, None]
    link.send([FRAME, 1, 1, b"hi"])
    assert link.recv() == [SEND, 1, 1, b"[Durable Object]: hi"]
    link.send([HTTP_REQ, 9, "echo/direct", "GET", "/getCurrentConnections", "", {}, b"", "x"])
    res = link.recv()
    assert res[:3] == [HTTP_RES, 9, 200]
    assert res[4] == b"There is 1 WebSocket client connected to this Durable Object instance."
    link.send([OPEN, 2, "nosuch/x", "id", 0, 0, "", "", "", {}])
    rej = link.recv()
    assert rej[:3] == [REJECT, 2, 404]
    link.send([CLOSE, 1, 1000, ""])
    assert link.recv() == [CLOSE, 1, 1000, None]  # acknowledged after its output
    link.send([CLOSE, 99, 1006, ""])              # unknown ids are acknowledged too
    assert link.recv() == [CLOSE, 99, 1006, None]
    link.send([OPEN, 3, "chat/direct", "a", 0, 0, "", "", "", {}])
    link.send([OPEN, 4, "chat/direct", "b", 0, 0, "", "", "", {}])
    assert link.recv()[:2] == [ACCEPT, 3]
    assert link.recv()[:2] == [ACCEPT, 4]
    link.send([FRAME, 3, 1, b"to b"])
    assert link.recv() == [BROADCAST, 1, b"to b", [4]]
    link.close()


@pytest.mark.parametrize("garbage", [
    struct.pack("!I", 3) + b"\xc1\xc1\xc1",              # reserved msgpack byte
    struct.pack("!I", 2) + b"\x91\x2a",                  # unknown message type 42
    struct.pack("!I", 0xFFFFFFF0) + b"x",                # over the frame cap
    struct.pack("!I", 1) + b"\x05",                      # not an array
])
def test_malformed_frame_closes_only_that_link(roomd, garbage):
    import asyncio
    import websockets

    async def client_survives():
        async with websockets.connect(roomd.ws + "/echo/bystander") as ws:
            await ws.send("before")
            assert await ws.recv() == "[Durable Object]: before"
            # Send garbage to every shard, so the bystander's shard is hit too.
            for i in range(roomd.shards):
                bad = shard_link(roomd, f"shard-{i}")
                bad.send_raw(garbage)
                assert bad.recv() is None, "the shard must close a link that sent a malformed frame"
                bad.close()
            await ws.send("after")
            assert await ws.recv() == "[Durable Object]: after"

    asyncio.run(asyncio.wait_for(client_survives(), 30))
    log = roomd.read_log()
    assert 'msg="gateway link closed"' in log
