"""Bounded soak: thousands of connections with random valid and invalid
traffic, then no descriptor is leaked (counted in /proc) and no memory is
leaked (LeakSanitizer in the test build reports at exit, which the fixture
turns into a failure)."""
import asyncio
import os
import random
import re
import struct
import time
import urllib.request

import websockets

from conftest import Roomd


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_conns(r):
    with urllib.request.urlopen(r.http + "/metrics", timeout=5) as resp:
        return int(re.search(r"^roomd_connections (\d+)$", resp.read().decode(), re.M).group(1))


def masked(opcode, payload, fin=True, rsv=0):
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    hdr = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    hdr += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return hdr + key + body


UPGRADE = ("GET /{path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


async def raw(r, data_after_upgrade, path="echo/soak", read=True):
    reader, writer = await asyncio.open_connection("127.0.0.1", r.port)
    try:
        writer.write(UPGRADE.format(path=path).encode() + data_after_upgrade)
        await writer.drain()
        if read:
            try:
                await asyncio.wait_for(reader.read(65536), 2)
            except asyncio.TimeoutError:
                pass
    finally:
        writer.close()


async def one(r, rng):
    kind = rng.randrange(10)
    try:
        if kind == 0:
            async with websockets.connect(f"{r.ws}/echo/soak{rng.randrange(50)}") as ws:
                await ws.send("x" * rng.randrange(1, 3000))
                await ws.recv()
        elif kind == 1:
            async with websockets.connect(f"{r.ws}/chat/soak{rng.randrange(20)}") as ws:
                await ws.send("hello room")
        elif kind == 2:  # garbage after the upgrade
            await raw(r, os.urandom(rng.randrange(1, 200)))
        elif kind == 3:  # invalid UTF-8, bad opcode, reserved bits, unmasked
            bad = rng.choice([masked(1, b"\xff\xfe"), masked(5, b"x"), masked(1, b"x", rsv=2),
                              b"\x81\x04test", masked(9, b"p", fin=False)])
            await raw(r, bad)
        elif kind == 4:  # closes mid-handshake
            reader, writer = await asyncio.open_connection("127.0.0.1", r.port)
            writer.write(UPGRADE.format(path="echo/x").encode()[:rng.randrange(1, 60)])
            await writer.drain()
            writer.close()
        elif kind == 5:  # abrupt close mid-message
            await raw(r, masked(1, b"partial message", fin=False)[:rng.randrange(2, 10)], read=False)
        elif kind == 6:  # plain HTTP, keep-alive, several requests
            reader, writer = await asyncio.open_connection("127.0.0.1", r.port)
            writer.write(b"GET /echo/soak/getCurrentConnections HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
            await writer.drain()
            await asyncio.wait_for(reader.read(65536), 2)
            writer.close()
        elif kind == 7:  # bad requests
            reader, writer = await asyncio.open_connection("127.0.0.1", r.port)
            writer.write(rng.choice([b"GET / HTTP/9.9\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                                     b"GET /echo/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
                                     b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"]))
            await writer.drain()
            await asyncio.wait_for(reader.read(65536), 2)
            writer.close()
        elif kind == 8:  # a fragmented message with pings in between, then close
            await raw(r, masked(1, b"frag", fin=False) + masked(9, b"ping") + masked(0, b"ment") +
                      masked(8, b"\x03\xe8"))
        else:  # a big message over the limit
            await raw(r, b"\x82\xff" + struct.pack("!Q", 2 << 20) + os.urandom(4) + b"xx")
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
        pass  # the server may cut us off; what matters is what it leaks


def settle(r):
    """Wait (bounded) until the only connection left is the /metrics request itself."""
    end = time.monotonic() + 20
    while open_conns(r) > 1 and time.monotonic() < end:
        time.sleep(0.05)
    assert open_conns(r) == 1


def test_soak_no_leaks(tmp_path):
    r = Roomd(tmp_path, shards=2, extra=("--msg-rate", "0"))
    try:
        pids = [r.proc.pid] + list(r.shard_pids().values())
        settle(r)
        time.sleep(0.2)  # the settle request's own socket closes too
        before = {p: fds(p) for p in pids}
        rng = random.Random(1234)
        deadline = time.monotonic() + 45
        total = 0

        async def run():
            nonlocal total
            while total < 4000 and time.monotonic() < deadline:
                await asyncio.gather(*(one(r, rng) for _ in range(100)))
                total += 100
        asyncio.run(run())
        assert total >= 1000, f"only {total} connections in the time bound"
        print(f"soak: {total} connections")
        settle(r)
        # A leak stays; a socket being torn down right now does not.
        end = time.monotonic() + 10
        while True:
            after = {p: fds(p) for p in pids}
            if all(after[p] <= before[p] for p in pids) or time.monotonic() > end:
                break
            time.sleep(0.05)
        assert after == before, f"descriptors before {before}, after {after}"
        assert r.health()[0] == 200
    finally:
        r.stop()
