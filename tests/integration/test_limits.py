"""Each limit and policy of the gateway fires with the right status or close
code, while a well-behaved client on the same gateway keeps being served."""
import asyncio
import os
import re
import signal
import socket
import struct
import threading
import time
import urllib.request

import pytest
import websockets

from conftest import Roomd
from rawws import RawWS, http_raw


def metric(r, name, labels=""):
    with urllib.request.urlopen(r.http + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(r"^%s%s (\d+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    assert m, f"{name}{labels} not in /metrics"
    return int(m.group(1))


def bystander_ok(r):
    """A well-behaved client still gets its answers."""
    async def go():
        async with websockets.connect(r.ws + "/echo/bystander") as ws:
            for i in range(20):
                await ws.send(f"still here {i}")
                assert await ws.recv() == f"[Durable Object]: still here {i}"
    asyncio.run(asyncio.wait_for(go(), 30))


@pytest.fixture
def make(tmp_path):
    made = []

    def start(*extra, shards=1):
        r = Roomd(tmp_path / str(len(made)), shards=shards, extra=extra)
        made.append(r)
        return r
    yield start
    for r in made:
        r.stop()


def flood_room(r, room, count, size):
    async def go():
        async with websockets.connect(f"{r.ws}/chat/{room}") as pub:
            payload = "m" * size
            for i in range(count):
                await pub.send(f"{i:08d}{payload}")
            await pub.ping()
    asyncio.run(asyncio.wait_for(go(), 60))


def open_non_reader(r, room):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", r.port))
    w = RawWS.__new__(RawWS)
    w.sock, w.buf = s, b""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    s.sendall((f"GET /chat/{room} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    while b"\r\n\r\n" not in w.buf:
        w.buf += s.recv(4096)
    head, w.buf = w.buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101")
    return w


def test_client_that_never_reads_is_closed_as_slow_consumer(make):
    r = make("--max-outbound", "64k", "--slow-policy", "close", "--msg-rate", "0",
             "--close-timeout", "60s")
    slow = open_non_reader(r, "slowroom")
    # ~12 MB for a client that reads nothing: far past kernel buffers and the budget.
    flood_room(r, "slowroom", 12000, 1000)
    deadline = time.monotonic() + 30
    while metric(r, "roomd_closed_total", '{reason="slow_consumer"}') < 1:
        assert time.monotonic() < deadline, "slow consumer never closed"
        time.sleep(0.05)
    bystander_ok(r)
    slow.sock.settimeout(30)
    code, reason = slow.expect_close()
    assert (code, reason) == (1008, "slow consumer")
    slow.close()


def test_drop_oldest_policy_keeps_the_connection_and_counts(make):
    r = make("--max-outbound", "64k", "--slow-policy", "drop-oldest", "--msg-rate", "0")
    slow = open_non_reader(r, "droproom")
    flood_room(r, "droproom", 12000, 1000)
    deadline = time.monotonic() + 30
    while metric(r, "roomd_dropped_messages_total", '{reason="slow_consumer"}') < 1:
        assert time.monotonic() < deadline, "nothing dropped"
        time.sleep(0.05)
    bystander_ok(r)
    # The survivor reads what is left: whole messages, in order, with gaps.
    slow.sock.settimeout(5)
    seqs = []
    while True:
        try:
            f = slow.recv_frame()
        except socket.timeout:
            break
        assert f is not None and f[0] == 1
        seqs.append(int(f[1][:8]))
    assert seqs == sorted(seqs) and len(seqs) < 12000 and seqs[-1] == 11999
    dropped = metric(r, "roomd_dropped_messages_total", '{reason="slow_consumer"}')
    assert len(seqs) + dropped == 12000
    slow.close()


def test_message_flood_closes_with_1008(make):
    r = make("--msg-rate", "100", "--msg-burst", "50")
    w = RawWS("127.0.0.1", r.port, "/echo/flood")
    # 200 messages in one write: the bucket (50, +100/s) cannot cover them.
    frames = b""
    for i in range(200):
        key = os.urandom(4)
        payload = bytes(b ^ key[j % 4] for j, b in enumerate(b"spam"))
        frames += struct.pack("!BB", 0x81, 0x80 | 4) + key + payload
    w.sock.sendall(frames)
    assert w.expect_close() == (1008, "message rate exceeded")
    assert metric(r, "roomd_closed_total", '{reason="rate"}') == 1
    bystander_ok(r)


def test_refused_origin_gets_403(make):
    r = make("--allowed-origins", "https://app.example,https://*.friends.example")
    def handshake(origin):
        req = ("GET /echo/o HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
        if origin:
            req += f"Origin: {origin}\r\n"
        with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
            s.sendall((req + "\r\n").encode())
            data = s.recv(4096)
        return int(data.split(b" ")[1]), data
    status, data = handshake("https://evil.example")
    assert status == 403 and data.endswith(b"origin not allowed\n")
    assert handshake("https://app.example")[0] == 101
    assert handshake("https://chat.friends.example")[0] == 101
    assert handshake("https://friends.example")[0] == 403
    assert handshake("http://app.example")[0] == 403
    assert handshake(None)[0] == 101  # not a browser
    assert metric(r, "roomd_refused_total", '{reason="origin"}') == 3
    bystander_ok(r)


def test_too_many_connections_from_one_address_get_429(make):
    r = make("--max-per-ip", "3")
    held = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        held.append(s)
    status, head, body = http_raw("127.0.0.1", r.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 429 and body == b"too many connections from your address\n"
    for s in held:
        s.close()
    deadline = time.monotonic() + 10
    while True:  # the slots free up as the gateway notices the closes
        status, _, _ = http_raw("127.0.0.1", r.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        if status == 200:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    bystander_ok(r)


def test_silent_client_gets_a_ping_then_1001(make):
    r = make("--idle-timeout", "1s")
    w = RawWS("127.0.0.1", r.port, "/echo/idle", timeout=15)
    assert w.recv_frame() == (9, b"roomd")   # the probe; we do not answer
    assert w.expect_close() == (1001, "idle timeout")
    assert w.eof_after_close()

    assert metric(r, "roomd_closed_total", '{reason="idle"}') == 1


def test_client_answering_pings_stays_connected(make):
    """A client that answers the idle probes (websockets does) outlives
    several idle periods. The period is long enough that an answer has
    seconds to arrive even on a loaded machine."""
    r = make("--idle-timeout", "4s")

    async def go():
        async with websockets.connect(r.ws + "/echo/alive", ping_interval=None) as ws:
            deadline = time.monotonic() + 60
            while await asyncio.to_thread(metric, r, "roomd_pings_sent_total") < 3:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            await ws.send("still")
            assert await ws.recv() == "[Durable Object]: still"
    asyncio.run(asyncio.wait_for(go(), 90))
    assert metric(r, "roomd_closed_total", '{reason="idle"}') == 0


def test_stalled_shard_pauses_its_clients_and_loses_nothing(make):
    r = make("--link-high-water", "64k", "--msg-rate", "0", "--max-outbound", "64m")
    pid = r.shard_pids()["shard-0"]
    count, size = 20000, 1000

    async def go():
        async with websockets.connect(r.ws + "/mirror/stall", max_queue=None, max_size=None) as ws:
            os.kill(pid, signal.SIGSTOP)
            try:
                async def send_all():
                    for i in range(count):
                        await ws.send(f"{i:08d}" + "p" * size)
                sender = asyncio.create_task(send_all())
                deadline = time.monotonic() + 30
                while await asyncio.to_thread(metric, r, "roomd_link_pauses_total") < 1:
                    assert time.monotonic() < deadline, "client never paused"
                    await asyncio.sleep(0.05)
                queued = await asyncio.to_thread(metric, r, "roomd_shard_link_queued_bytes", '{shard="shard-0"}')
                assert queued < 2 * 1024 * 1024, f"link queue grew to {queued} bytes"
            finally:
                os.kill(pid, signal.SIGCONT)
            for i in range(count):
                msg = await asyncio.wait_for(ws.recv(), 30)
                assert int(msg[:8]) == i
            await sender
    asyncio.run(asyncio.wait_for(go(), 120))
    bystander_ok(r)


def test_decompression_bomb_closes_with_1009(make):
    """A 40 KB compressed message that inflates to 16 MB: close 1009 as soon
    as the limit is crossed, and the gateway keeps serving."""
    import zlib
    r = make()
    w = RawWS("127.0.0.1", r.port, "/mirror/bomb",
              headers=("Sec-WebSocket-Extensions: permessage-deflate",))
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = co.compress(b"\0" * (16 << 20)) + co.flush(zlib.Z_SYNC_FLUSH)
    assert bomb.endswith(b"\x00\x00\xff\xff") and len(bomb) < 100_000
    w.send_frame(2, bomb[:-4], rsv=4)
    assert w.expect_close() == (1009, "message too large")
    bystander_ok(r)


def test_broadcast_is_compressed_once_for_all_members(make):
    r = make()
    before = metric(r, "roomd_compressed_messages_total", '{direction="out"}')

    async def go():
        members = [await websockets.connect(r.ws + "/chat/deflated") for _ in range(6)]
        for ws in members:  # Python's websockets offers permessage-deflate
            assert ws.extensions and ws.extensions[0].name == "permessage-deflate"
        text = '{"type":"ROOM:MESSAGE","payload":{"user":"ada","text":"%s"}}' % ("hello " * 40)
        await members[0].send(text)
        for ws in members[1:]:
            assert await asyncio.wait_for(ws.recv(), 10) == text
        for ws in members:
            await ws.close()
    asyncio.run(asyncio.wait_for(go(), 30))
    # Five recipients, one compression.
    assert metric(r, "roomd_compressed_messages_total", '{direction="out"}') - before == 1
    assert metric(r, "roomd_compression_memory_bytes", '{kind="per_connection"}') == 0
