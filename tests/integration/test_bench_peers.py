"""The benchmark's reference peers (bench/peers/node-ws, bench/peers/workerd)
must implement the same endpoints as roomd, or the comparison means nothing:
/echo/<name> answers "[Durable Object]: " + message, /chat/<name> relays to
every other member of that room only, a plain GET gets 426; workerd's
counter is durable across a restart. Their npm packages come from the
committed package-lock.json (npm ci) when node_modules is missing."""
import asyncio
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import websockets

from conftest import ROOT, free_port, make_cert

PEERS = os.path.join(ROOT, "bench", "peers")
PREFIX = "[Durable Object]: "


def npm_ready(name):
    d = os.path.join(PEERS, name)
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.fail("node/npm not installed: tests/run.sh provides them")
    if not os.path.isdir(os.path.join(d, "node_modules")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=d, check=True,
                       capture_output=True, timeout=300)
    return d


def wait_port(proc, port, log, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode}: {open(log).read()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/echo/x", timeout=1)
        except urllib.error.HTTPError:
            return  # any HTTP answer: it is up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"peer not up on {port}: {open(log).read()[-2000:]}")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("peer ignored SIGTERM for 10 s")


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def silent(ws, t=0.3):
    try:
        m = await asyncio.wait_for(ws.recv(), t)
    except asyncio.TimeoutError:
        return True
    raise AssertionError(f"unexpected message {m!r}")


async def check_echo_and_chat(base, echo_path="/echo/t", binary_echo=True):
    async with websockets.connect(base + echo_path, compression=None) as ws:
        await ws.send("hello")
        assert await ws.recv() == PREFIX + "hello"
        if binary_echo:
            await ws.send(b"\x00\xff")
            assert await ws.recv() == PREFIX.encode() + b"\x00\xff"
    a = await websockets.connect(base + "/chat/r1", compression=None)
    b = await websockets.connect(base + "/chat/r1", compression=None)
    c = await websockets.connect(base + "/chat/r1", compression=None)
    other = await websockets.connect(base + "/chat/r2", compression=None)
    try:
        await a.send("from a")
        assert await b.recv() == "from a"
        assert await c.recv() == "from a"
        await silent(a)       # never back to the sender
        await silent(other)   # never to another room
        await b.close()
        await c.send("from c")
        assert await a.recv() == "from c"
    finally:
        for w in (a, c, other):
            await w.close()


@pytest.fixture(scope="module")
def node_peer(tmp_path_factory):
    d = npm_ready("node-ws")
    tmp = tmp_path_factory.mktemp("node-peer")
    cert, key = make_cert(str(tmp))
    port, tport = free_port(), free_port()
    log = str(tmp / "node.log")
    proc = subprocess.Popen(["node", os.path.join(d, "server.js"), "--port", str(port),
                             "--tls-port", str(tport), "--cert", cert, "--key", key],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    wait_port(proc, port, log)
    yield port, tport, cert
    stop(proc)


def test_node_peer_endpoints(node_peer):
    port, _, _ = node_peer
    asyncio.run(check_echo_and_chat(f"ws://127.0.0.1:{port}"))
    assert http_status(f"http://127.0.0.1:{port}/echo/x")[0] == 426
    assert http_status(f"http://127.0.0.1:{port}/chat/x")[0] == 426
    assert http_status(f"http://127.0.0.1:{port}/other/x")[0] == 404


def test_node_peer_tls_and_no_deflate(node_peer):
    port, tport, cert = node_peer
    import ssl

    async def run():
        ctx = ssl.create_default_context(cafile=cert)
        async with websockets.connect(f"wss://127.0.0.1:{tport}/echo/t", ssl=ctx) as ws:
            await ws.send("secure")
            assert await ws.recv() == PREFIX + "secure"
        # permessage-deflate is off unless --deflate, as in roomd's default
        # (websockets offers it by default)
        async with websockets.connect(f"ws://127.0.0.1:{port}/echo/t") as ws:
            assert ws.response_headers.get("Sec-WebSocket-Extensions") is None
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await websockets.connect(f"ws://127.0.0.1:{port}/nope/x")
        assert e.value.status_code == 404
    asyncio.run(run())


def test_node_peer_bad_args():
    d = npm_ready("node-ws")
    for args in (["--port", "x"], ["--tls-port", "1"], ["--bogus"]):
        p = subprocess.run(["node", os.path.join(d, "server.js"), *args],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 2, (args, p.stderr)


class Workerd:
    def __init__(self, d, tmp):
        self.tmp = str(tmp)
        self.storage = os.path.join(self.tmp, "storage")
        os.makedirs(self.storage, exist_ok=True)
        self.bin = os.path.join(d, "node_modules", "@cloudflare", "workerd-linux-64", "bin", "workerd")
        if not os.access(self.bin, os.X_OK):
            self.bin = os.path.join(d, "node_modules", "workerd", "bin", "workerd")
        self.config = os.path.join(d, "config.capnp")
        self.port = free_port()
        self.proc = None

    def start(self):
        log = os.path.join(self.tmp, "workerd.log")
        self.proc = subprocess.Popen([self.bin, "serve", self.config, "--socket-addr",
                                      f"http=127.0.0.1:{self.port}", "--directory-path",
                                      f"do-storage={self.storage}"],
                                     stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        wait_port(self.proc, self.port, log)

    def stop(self):
        stop(self.proc)


@pytest.fixture(scope="module")
def workerd_peer(tmp_path_factory):
    w = Workerd(npm_ready("workerd"), tmp_path_factory.mktemp("workerd-peer"))
    w.start()
    yield w
    w.stop()


def test_workerd_peer_endpoints(workerd_peer):
    base = f"ws://127.0.0.1:{workerd_peer.port}"
    # The seed's echo is kept as written: it formats binary messages with a
    # template string, so only text is compared there.
    asyncio.run(check_echo_and_chat(base, "/echo/t", binary_echo=False))
    asyncio.run(check_echo_and_chat(base, "/echo-hib/t"))
    http = f"http://127.0.0.1:{workerd_peer.port}"
    status, body = http_status(http + "/echo/x")
    assert (status, body) == (426, "Durable Object expected Upgrade: websocket")
    assert http_status(http + "/chat/x")[0] == 426
    assert http_status(http + "/nope/x")[0] == 404
    status, body = http_status(http + "/echo/x/getCurrentConnections")
    assert status == 200 and "WebSocket client" in body


def test_workerd_counter_is_durable(workerd_peer):
    http = f"http://127.0.0.1:{workerd_peer.port}"

    async def bump(n):
        async with websockets.connect(f"ws://127.0.0.1:{workerd_peer.port}/counter/d",
                                      compression=None) as ws:
            got = []
            for _ in range(n):
                await ws.send('{"op":"increment"}')
                got.append(await ws.recv())
            await ws.send('{"op":"increment","by":5}')
            got.append(await ws.recv())
            await ws.send("not json")
            got.append(await ws.recv())
            return got

    before = int(http_status(http + "/counter/d")[1])
    got = asyncio.run(bump(3))
    assert got[:4] == [f'{{"value":{before + i}}}' for i in (1, 2, 3, 8)]
    assert "error" in got[4]
    workerd_peer.stop()
    workerd_peer.start()
    assert http_status(http + "/counter/d") == (200, f"{before + 8}\n")
