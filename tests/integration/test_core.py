"""The core path of issue 2 against real processes: the seed's echo object,
chat, routing by the documented hash, shard restart, and every refusal."""
import asyncio
import json
import os
import signal
import socket
import time
import urllib.request

import pytest
import websockets

from rawws import RawWS, http_raw

ECHO_PREFIX = "[Durable Object]: "
USAGE = """
This Durable Object supports the following endpoints:
/websocket
- Creates a WebSocket connection. Any messages sent to it are echoed with a prefix.
/getCurrentConnections
- A regular HTTP GET endpoint that returns the number of currently connected WebSocket clients.
"""


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_echo_seed(roomd, scheme):
    async def go():
        url = (roomd.ws if scheme == "ws" else roomd.wss) + "/echo/foo"
        ssl_ctx = roomd.ssl_context() if scheme == "wss" else None
        async with websockets.connect(url, ssl=ssl_ctx) as ws:
            await ws.send("hello")
            assert await ws.recv() == ECHO_PREFIX + "hello"
            await ws.send("ünïcødé ✓")
            assert await ws.recv() == ECHO_PREFIX + "ünïcødé ✓"
            big = "x" * 200000
            await ws.send(big)
            assert await ws.recv() == ECHO_PREFIX + big
            await ws.send(b"\x00\x01bin")
            assert await ws.recv() == (ECHO_PREFIX.encode() + b"\x00\x01bin")
    run(go())


def test_echo_connection_counts(roomd):
    base = roomd.http + "/echo/counting"
    assert get(base + "/getCurrentConnections")[:2] == (
        200, "There are 0 WebSocket clients connected to this Durable Object instance.")

    async def go():
        first = await websockets.connect(roomd.ws + "/echo/counting")
        await first.send("a")
        await first.recv()
        status, body, _ = await asyncio.to_thread(get, base + "/getCurrentConnections")
        assert (status, body) == (200, "There is 1 WebSocket client connected to this Durable Object instance.")
        more = [await websockets.connect(roomd.ws + "/echo/counting") for _ in range(2)]
        status, body, _ = await asyncio.to_thread(get, base + "/getCurrentConnections")
        assert body == "There are 3 WebSocket clients connected to this Durable Object instance."
        for ws in more + [first]:
            await ws.close()
    run(go())
    # Closing is asynchronous on the shard; the count must come back to 0.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if get(base + "/getCurrentConnections")[1].startswith("There are 0 "):
            break
        time.sleep(0.05)
    assert get(base + "/getCurrentConnections")[1] == \
        "There are 0 WebSocket clients connected to this Durable Object instance."


def test_echo_426_and_usage(roomd):
    status, body, _ = get(roomd.http + "/echo/foo")
    assert (status, body) == (426, "Durable Object expected Upgrade: websocket")
    status, body, _ = get(roomd.http + "/echo/foo/websocket")
    assert (status, body) == (426, "Durable Object expected Upgrade: websocket")
    status, body, _ = get(roomd.http + "/echo/foo/anything-else")
    assert (status, body) == (200, USAGE)


def rooms_on_every_shard(roomd, per_shard=1):
    """Room names chosen so that every shard owns per_shard of them."""
    want = {f"shard-{i}": [] for i in range(roomd.shards)}
    i = 0
    while any(len(v) < per_shard for v in want.values()):
        name = f"room{i}"
        owner = roomd.route("chat/" + name)
        if len(want[owner]) < per_shard:
            want[owner].append(name)
        i += 1
    return [n for v in want.values() for n in v]


def test_chat_broadcast_across_all_shards(roomd):
    rooms = rooms_on_every_shard(roomd)
    members = 50
    per_member = 3

    async def room(name):
        conns = [await websockets.connect(f"{roomd.ws}/chat/{name}", max_queue=None) for _ in range(members)]
        # Everyone is a member before anyone speaks.
        for i, ws in enumerate(conns):
            for k in range(per_member):
                await ws.send(f"{name}:{i}:{k}")
        expected = members * per_member - per_member
        got = []
        for i, ws in enumerate(conns):
            mine = []
            while len(mine) < expected:
                mine.append(await asyncio.wait_for(ws.recv(), 20))
            got.append(mine)
        for ws in conns:
            await ws.close()
        return got

    async def go():
        return await asyncio.gather(*(room(n) for n in rooms))

    results = run(go())
    for name, got in zip(rooms, results):
        for i, mine in enumerate(got):
            assert not [m for m in mine if m.startswith(f"{name}:{i}:")], "sender got its own message"
            assert len(set(mine)) == len(mine), "duplicate delivery"
            assert set(mine) == {f"{name}:{j}:{k}" for j in range(members) if j != i
                                 for k in range(per_member)}
            # Per-sender order is preserved.
            for j in range(members):
                seq = [int(m.split(":")[2]) for m in mine if m.split(":")[1] == str(j)]
                assert seq == sorted(seq)


def test_objects_spread_as_the_hash_says(roomd):
    seen = {}
    for i in range(40):
        key = f"echo/spread-{i}"
        status, _, headers = get(f"{roomd.http}/{key}/getCurrentConnections")
        assert status == 200
        assert headers["X-Roomd-Shard"] == roomd.route(key)
        seen[headers["X-Roomd-Shard"]] = seen.get(headers["X-Roomd-Shard"], 0) + 1
    assert set(seen) == {f"shard-{i}" for i in range(roomd.shards)}


def test_route_command_is_stable():
    from conftest import GATEWAY
    import subprocess
    out = subprocess.run([GATEWAY, "--shards", "4", "--route", "counter/main"], capture_output=True,
                         text=True, check=True).stdout
    assert out == "shard-2\n"  # fixed forever: rd_hash.h documents the hash


def test_unknown_class_is_404(roomd):
    status, body, _ = get(roomd.http + "/nosuchclass/foo")
    assert status == 404 and "unknown class 'nosuchclass'" in body
    status, _, _ = get(roomd.http + "/not-an-object")
    assert status == 404


def test_bad_method_is_405(roomd):
    status, head, body = http_raw("127.0.0.1", roomd.port,
                                  b"TRACE /echo/foo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405 and b"method not allowed" in body
    status, head, body = http_raw("127.0.0.1", roomd.port,
                                  b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status == 405


def test_oversized_head_is_431(roomd):
    req = b"GET /echo/foo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    status, _, body = http_raw("127.0.0.1", roomd.port, req)
    assert status == 431 and body.strip()
    many = b"GET /echo/foo HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(80)) + b"\r\n"
    status, _, _ = http_raw("127.0.0.1", roomd.port, many)
    assert status == 431


@pytest.mark.parametrize("headers,status,reason", [
    ({"Sec-WebSocket-Key": None}, 400, b"Sec-WebSocket-Key"),
    ({"Sec-WebSocket-Key": "short"}, 400, b"Sec-WebSocket-Key"),
    ({"Sec-WebSocket-Version": "8"}, 426, b"Sec-WebSocket-Version"),
    ({"Connection": "keep-alive"}, 400, b"Connection: Upgrade"),
])
def test_bad_handshake(roomd, headers, status, reason):
    h = {"Host": "x", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
    h.update(headers)
    req = "GET /echo/foo HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items() if v is not None) + "\r\n"
    got, head, body = http_raw("127.0.0.1", roomd.port, req.encode())
    assert got == status
    assert reason in body and body.endswith(b"\n") and body.count(b"\n") == 1
    if status == 426:
        assert "Sec-WebSocket-Version: 13" in head


def test_bad_object_name_is_400(roomd):
    for path in (b"/echo/%zz", b"/echo/%00x", b"/echo/" + b"n" * 300, b"/echo/%C3%28"):
        status, _, body = http_raw("127.0.0.1", roomd.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 400, path
        assert b"object name" in body


def test_percent_decoded_names_reach_the_object(roomd):
    async def go():
        async with websockets.connect(roomd.ws + "/chat/caf%C3%A9%20au%20lait") as a, \
                websockets.connect(roomd.ws + "/chat/café%20au%20lait".replace("é", "%C3%A9")) as b:
            await a.send("same room")
            assert await asyncio.wait_for(b.recv(), 10) == "same room"
    run(go())


@pytest.mark.parametrize("send,code", [
    (lambda w: w.send_frame(1, b"unmasked", mask=False), 1002),
    (lambda w: w.send_frame(1, b"\xff\xfe"), 1007),
    (lambda w: (w.send_frame(1, b"ok \xce", fin=False), w.send_frame(0, b"\xff", fin=True)), 1007),
    (lambda w: w.send_frame(1, b"x", rsv=4), 1002),
    (lambda w: w.send_frame(3, b"x"), 1002),
    (lambda w: w.send_frame(9, b"x" * 126), 1002),
    (lambda w: w.send_frame(9, b"p", fin=False), 1002),
    (lambda w: w.send_frame(0, b"cont"), 1002),
    (lambda w: w.send_frame(8, b"\x03\xe8" + b"\xff"), 1007),
    (lambda w: w.send_frame(8, b"\x03\xed"), 1002),
    (lambda w: w.send_frame(2, b"", length=(1 << 20) + 1), 1009),
    (lambda w: (w.send_frame(2, b"a" * 700000, fin=False), w.send_frame(0, b"b" * 400000)), 1009),
])
def test_protocol_violations_close_with_the_right_code(roomd, send, code):
    w = RawWS("127.0.0.1", roomd.port, "/echo/violations")
    send(w)
    got, reason = w.expect_close()
    assert got == code, reason
    assert w.eof_after_close()
    w.close()
    # Everyone else is still served.
    assert get(roomd.http + "/echo/violations/getCurrentConnections")[0] == 200


def test_ping_pong_and_close_echo(roomd):
    w = RawWS("127.0.0.1", roomd.port, "/echo/pings")
    w.send_frame(9, b"are you there")
    assert w.recv_frame() == (10, b"are you there")
    # A ping between the fragments of a message.
    w.send_frame(1, b"frag", fin=False)
    w.send_frame(9, b"mid")
    w.send_frame(0, b"mented", fin=True)
    assert w.recv_frame() == (10, b"mid")
    assert w.recv_frame() == (1, (ECHO_PREFIX + "fragmented").encode())
    w.send_frame(8, b"\x0f\xa0bye")  # 4000
    assert w.expect_close() == (4000, "")
    assert w.eof_after_close()
    w.close()


def test_slow_client_is_closed(roomd):
    """The fixture runs with --handshake-timeout 1s: a head that never ends is cut."""
    with socket.create_connection(("127.0.0.1", roomd.port), timeout=15) as s:
        s.sendall(b"GET /echo/foo HTTP/1.1\r\nHost: x\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 408 ")
    with socket.create_connection(("127.0.0.1", roomd.port), timeout=15) as s:
        assert s.recv(4096) == b""  # connected and silent: closed without a word


def test_healthz(roomd):
    status, body, headers = get(roomd.http + "/healthz")
    assert status == 200 and '"status":"ok"' in body
    assert headers["Content-Type"] == "application/json"


def test_killed_shard_restarts_without_disconnecting_clients(tmp_path):
    """SIGKILL a shard: the gateway restarts it and re-opens its WebSockets
    (OPEN{resumed}); clients see a delay, not a close."""
    from conftest import Roomd
    r = Roomd(tmp_path, shards=4)
    try:
        name = "echo/victim"
        owner = r.route(name)
        pid = r.shard_pids()[owner]
        room = next(f"room{i}" for i in range(1000) if r.route(f"chat/room{i}") == owner)

        async def go():
            ws = await websockets.connect(f"{r.ws}/{name}")
            a = await websockets.connect(f"{r.ws}/chat/{room}")
            b = await websockets.connect(f"{r.ws}/chat/{room}")
            await ws.send("one")
            assert await ws.recv() == ECHO_PREFIX + "one"
            os.kill(pid, signal.SIGKILL)
            # Messages sent once the gateway knows the shard is gone wait for
            # the restarted one (before that they would go to a dead socket).
            deadline = time.monotonic() + 20
            while 'msg="shard link down" shard=%s' % owner not in r.read_log():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await ws.send("during the restart")
            assert await asyncio.wait_for(ws.recv(), 20) == ECHO_PREFIX + "during the restart"
            await a.send("still a room")
            assert await asyncio.wait_for(b.recv(), 20) == "still a room"
            # New connections work too.
            async with websockets.connect(f"{r.ws}/{name}") as ws2:
                await ws2.send("two")
                assert await ws2.recv() == ECHO_PREFIX + "two"
                # The resumed connection is counted again, exactly once.
                status, body, _ = await asyncio.to_thread(get, f"{r.http}/{name}/getCurrentConnections")
                assert body == "There are 2 WebSocket clients connected to this Durable Object instance."
            for c in (ws, a, b):
                assert c.open
                await c.close()
        run(go())
        assert r.shard_pids()[owner] != pid
        assert 'msg="shard died" shard=%s' % owner in r.read_log()
        r.wait_healthy()
    finally:
        r.stop()


def test_connection_limit_pauses_accepting(tmp_path):
    """At --max-connections the gateway stops accepting (no spinning, no
    refusals); the next client is served as soon as a slot frees up."""
    from conftest import Roomd
    r = Roomd(tmp_path, shards=1, extra=("--max-connections", "3", "--handshake-timeout", "60s"))
    try:
        # wait_healthy used one connection, closed by now; fill the three slots.
        idle = [socket.create_connection(("127.0.0.1", r.port), timeout=10) for _ in range(3)]
        for s in idle:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
        waiting = socket.create_connection(("127.0.0.1", r.port), timeout=10)  # kernel backlog
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        waiting.settimeout(0.5)
        with pytest.raises(socket.timeout):
            waiting.recv(4096)
        idle.pop().close()
        waiting.settimeout(10)
        assert waiting.recv(4096).startswith(b"HTTP/1.1 200 ")
        waiting.close()
        for s in idle:
            s.close()
        assert "connection limit reached" in r.read_log()
    finally:
        r.stop()


def test_loadable_module_class(tmp_path):
    """roomd-shard --module loads user classes through the same API; spawn
    mode passes --module to every shard."""
    from conftest import BUILD, SHARD, Roomd
    import subprocess
    so = os.path.join(BUILD, "tests", "modules", "mod_upper.so")
    r = Roomd(tmp_path, shards=2, extra=("--module", so))
    try:
        async def go():
            async with websockets.connect(r.ws + "/upper/x") as ws:
                await ws.send("hello module")
                assert await ws.recv() == "HELLO MODULE"
                status, body, headers = await asyncio.to_thread(get, r.http + "/upper/x")
                assert (status, body) == (200, "conns=1 msgs=1 creates=1\n")
        run(go())
        assert 'msg="class loaded" class=upper' in r.read_log()
    finally:
        r.stop()
    bad = subprocess.run([SHARD, "--name", "s", "--run-dir", str(tmp_path / "run2"),
                          "--module", "/nonexistent/mod.so"], capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot load module" in bad.stderr
    notmod = subprocess.run([SHARD, "--name", "s", "--run-dir", str(tmp_path / "run3"),
                             "--module", "libz.so.1"], capture_output=True, text=True)
    assert notmod.returncode == 2 and "does not export roomd_module_init()" in notmod.stderr


def test_idle_objects_hibernate_and_wake_with_connections_open(tmp_path):
    """--hibernate-after: an object without events is evicted (destroy runs,
    its in-memory state is gone) while its WebSockets stay open; the next
    event re-runs create and the connections are all still there."""
    from conftest import BUILD, Roomd
    so = os.path.join(BUILD, "tests", "modules", "mod_upper.so")
    r = Roomd(tmp_path, shards=1, extra=("--module", so, "--hibernate-after", "300ms"))
    try:
        async def go():
            conns = [await websockets.connect(r.ws + "/upper/h") for _ in range(3)]
            for ws in conns:
                await ws.send("a")
                assert await ws.recv() == "A"
            deadline = time.monotonic() + 20
            while 'msg="object hibernated" object=upper/h connections=3' not in r.read_log():
                assert time.monotonic() < deadline, "object never hibernated"
                await asyncio.sleep(0.05)
            # Waking it (an HTTP request is an event) re-runs create: fresh state.
            status, body, _ = await asyncio.to_thread(get, r.http + "/upper/h")
            assert body == "conns=3 msgs=0 creates=2\n"
            for ws in conns:
                assert ws.open
                await ws.send("b")
                assert await ws.recv() == "B"
            status, body, _ = await asyncio.to_thread(get, r.http + "/upper/h")
            assert body == "conns=3 msgs=3 creates=2\n"
            for ws in conns:
                await ws.close()
        run(go())
        assert 'msg="object woke" object=upper/h' in r.read_log()
    finally:
        r.stop()


def test_attachments_tags_and_auto_response_survive_hibernation_and_restart(tmp_path):
    from conftest import BUILD, Roomd
    so = os.path.join(BUILD, "tests", "modules", "mod_upper.so")
    r = Roomd(tmp_path, shards=1, extra=("--module", so, "--hibernate-after", "300ms"))
    try:
        async def ask(ws, cmd):
            await ws.send(cmd)
            return await asyncio.wait_for(ws.recv(), 20)

        async def go():
            c1 = await websockets.connect(r.ws + "/meta/m?tags=red")
            c2 = await websockets.connect(r.ws + "/meta/m?tags=blue,red")
            assert await ask(c1, "whoami") == "att=joined:tags=red tags=red"
            assert await ask(c2, "whoami") == "att=joined:tags=blue,red tags=blue,red"
            await c1.send("tagged blue only for blue")
            assert await asyncio.wait_for(c2.recv(), 10) == "only for blue"
            await c1.send("autoresp ping pong")
            # The shard tells the gateway before it answers this: once the
            # answer is here, the gateway has the pair.
            assert await ask(c1, "whoami") == "att=joined:tags=red tags=red"
            assert await ask(c1, "ping") == "pong"
            assert await ask(c1, "autoat") == "yes"
            assert await ask(c2, "autoat") == "no"
            # Hibernated: the gateway answers without waking the object.
            deadline = time.monotonic() + 20
            while 'msg="object hibernated" object=meta/m' not in r.read_log():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            wakes = r.read_log().count('msg="object woke" object=meta/m')
            assert await ask(c2, "ping") == "pong"
            assert r.read_log().count('msg="object woke" object=meta/m') == wakes
            assert await ask(c2, "whoami") == "att=joined:tags=blue,red tags=blue,red"
            assert await ask(c2, "autoat") == "yes"
            # A shard restart: attachments and tags come back from the gateway.
            pid = r.shard_pids()["shard-0"]
            os.kill(pid, signal.SIGKILL)
            while 'msg="shard link down" shard=shard-0' not in r.read_log():
                assert time.monotonic() < deadline + 20
                await asyncio.sleep(0.02)
            assert await ask(c1, "whoami") == "att=joined:tags=red tags=red"
            assert await ask(c2, "whoami") == "att=joined:tags=blue,red tags=blue,red"
            await c1.send("tagged red to the reds")
            assert await asyncio.wait_for(c1.recv(), 10) == "to the reds"
            assert await asyncio.wait_for(c2.recv(), 10) == "to the reds"
            assert await ask(c1, "ping") == "pong"
            await c1.close()
            await c2.close()
        run(go())
    finally:
        r.stop()


def test_the_1001st_connection_to_an_object_is_refused(tmp_path):
    from conftest import Roomd
    r = Roomd(tmp_path, shards=1, extra=("--max-per-ip", "0"))
    try:
        async def go():
            sem = asyncio.Semaphore(100)

            async def one():
                async with sem:
                    return await websockets.connect(r.ws + "/echo/full", ping_interval=None,
                                                    compression=None)
            conns = await asyncio.gather(*(one() for _ in range(1000)))
            with pytest.raises(websockets.InvalidStatusCode) as e:
                await websockets.connect(r.ws + "/echo/full")
            assert e.value.status_code == 503
            status, body, headers = await asyncio.to_thread(get, r.http + "/echo/full/getCurrentConnections")
            assert body == "There are 1000 WebSocket clients connected to this Durable Object instance."
            # Another object is not affected; a freed slot is usable again.
            async with websockets.connect(r.ws + "/echo/other") as ws:
                await ws.send("x")
                assert await ws.recv() == ECHO_PREFIX + "x"
            await conns[0].close()
            deadline = time.monotonic() + 10
            while True:
                try:
                    ws = await websockets.connect(r.ws + "/echo/full")
                    await ws.close()
                    break
                except websockets.InvalidStatusCode:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            for ws in conns[1:]:
                ws.transport.abort()
        run(go())
        status, head, body = http_raw("127.0.0.1", r.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200
    finally:
        r.stop()


def test_check_config_and_json_logs(tmp_path):
    import json as js
    import subprocess
    from conftest import GATEWAY, SHARD, Roomd
    ok = subprocess.run([GATEWAY, "--check-config"], capture_output=True, text=True)
    assert ok.returncode == 0 and "configuration ok" in ok.stdout
    bad = subprocess.run([GATEWAY, "--tls-listen", "127.0.0.1:0", "--cert", "/nonexistent.pem",
                          "--key", "/nonexistent.key", "--check-config"], capture_output=True, text=True)
    assert bad.returncode != 0 and "cannot read /nonexistent.pem" in bad.stderr
    bad = subprocess.run([GATEWAY, "--max-frame", "12q", "--check-config"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--max-frame" in bad.stderr
    cfg = tmp_path / "roomd.conf"
    cfg.write_text("# a config file\nmax-per-ip = 7\nlog-format = json\n")
    env = dict(os.environ, ROOMD_MSG_RATE="oops")
    bad = subprocess.run([GATEWAY, "--config", str(cfg), "--check-config"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "ROOMD_MSG_RATE" in bad.stderr
    assert subprocess.run([SHARD, "--name", "x", "--check-config"], capture_output=True).returncode == 0
    r = Roomd(tmp_path / "j", shards=2, extra=("--log-format", "json"))
    try:
        async def go():
            async with websockets.connect(r.ws + "/echo/j") as ws:
                await ws.send("x")
                await ws.recv()
        run(go())
    finally:
        r.stop()
    lines = [l for l in open(r.log_path).read().splitlines() if l.strip()]
    procs = set()
    for line in lines:
        rec = js.loads(line)  # every line, gateway's and shards', is one JSON object
        assert {"ts", "level", "proc", "msg"} <= set(rec)
        procs.add(rec["proc"])
    assert {"gateway", "shard-0", "shard-1"} <= procs


def test_backend_publish_endpoint(tmp_path):
    from conftest import Roomd
    r = Roomd(tmp_path, shards=2, extra=("--publish-key", "s3cret"))
    try:
        def post(path, body, headers=()):
            req = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                   + "".join(h + "\r\n" for h in headers) + "\r\n").encode() + body
            return http_raw("127.0.0.1", r.port, req)

        async def go():
            members = [await websockets.connect(r.ws + "/chat/news") for _ in range(3)]
            status, head, body = await asyncio.to_thread(post, "/chat/news/publish", b"hello")
            assert status == 401 and "WWW-Authenticate: Bearer" in head
            status, _, _ = await asyncio.to_thread(post, "/chat/news/publish", b"x",
                                                   ("Authorization: Bearer wrong",))
            assert status == 401
            status, _, body = await asyncio.to_thread(post, "/chat/news/publish", b"breaking news",
                                                      ("Authorization: Bearer s3cret",))
            assert status == 200 and json.loads(body) == {"delivered": 3, "federated": False}
            for ws in members:
                assert await asyncio.wait_for(ws.recv(), 10) == "breaking news"
            status, _, body = await asyncio.to_thread(post, "/chat/news/publish?type=binary", b"\x00\xff",
                                                      ("X-Roomd-Key: s3cret",))
            assert status == 200
            for ws in members:
                assert await asyncio.wait_for(ws.recv(), 10) == b"\x00\xff"
            status, _, body = await asyncio.to_thread(post, "/chat/news/publish", b"\xff\xfe",
                                                      ("Authorization: Bearer s3cret",))
            assert status == 400 and b"UTF-8" in body
            status, _, _ = await asyncio.to_thread(post, "/nosuch/news/publish", b"x",
                                                   ("Authorization: Bearer s3cret",))
            assert status == 404
            status, _, body = await asyncio.to_thread(
                http_raw, "127.0.0.1", r.port, b"GET /chat/news/publish HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status == 405
            for ws in members:
                await ws.close()
        run(go())
    finally:
        r.stop()
