"""/client.js, /client.d.ts and /exports.js: how they are served (ETag,
caching, gzip, size), what /exports.js generates, and the client and the
exports driven for real by Node 20 processes importing them by URL."""
import gzip
import json
import functools
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import BUILD, Roomd, free_port

MODULE = os.path.join(BUILD, "tests", "modules", "mod_web.so")
NODE_SCRIPT = os.path.join(os.path.dirname(__file__), "js", "node_client.mjs")


def node_version():
    node = shutil.which("node")
    if not node:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    m = re.match(r"v(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _needs_node(fn):
    """The Node tests need Node >= 20.10 (network imports, global WebSocket);
    tests/run.sh provides it. Without it they fail: they do not skip."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        v = node_version()
        assert v and v >= (20, 10), f"needs Node >= 20.10 on PATH (found {v}): run tests/run.sh, which provides it"
        return fn(*args, **kwargs)
    return wrapper


needs_node = _needs_node


@pytest.fixture(scope="module")
def r(tmp_path_factory):
    g = Roomd(tmp_path_factory.mktemp("client"), shards=2, extra=("--module", MODULE))
    yield g
    g.stop()


def get(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def node(*args, timeout=60):
    p = subprocess.run(["node", "--experimental-network-imports", "--experimental-websocket", NODE_SCRIPT,
                        *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_client_js_is_served_with_caching_headers(r):
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", "client", "client.js"), "rb").read()
    status, h, body = get(r.http + "/client.js")
    assert status == 200 and body == src
    assert h["Content-Type"] == "text/javascript; charset=utf-8"
    assert h["Cache-Control"] == "public, no-cache" and h["Access-Control-Allow-Origin"] == "*"
    etag = h["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{16}"', etag)
    status, h2, body = get(r.http + "/client.js", {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and h2["Content-Encoding"] == "gzip" and h2["ETag"] == etag
    assert gzip.decompress(body) == src
    assert len(body) <= 8192, f"client.js is {len(body)} bytes gzipped"
    status, h3, body = get(r.http + "/client.js", {"If-None-Match": etag})
    assert status == 304 and body == b""
    assert get(r.http + "/client.js", {"Accept-Encoding": "gzip;q=0"})[1].get("Content-Encoding") is None
    status, h4, body = get(r.http + "/client.d.ts")
    assert status == 200 and b"export function connect" in body
    status, _, body = get(r.http + "/client.js", method="HEAD")
    assert status == 200 and body == b""


def test_exports_js(r):
    status, h, body = get(r.http + "/exports.js?shared&room=t")
    assert status == 200 and h["Content-Type"].startswith("text/javascript")
    js = body.decode()
    assert f'import {{ connect }} from "{r.http}/client.js";' in js
    assert f'const WS = "ws://127.0.0.1:{r.port}", SHARED = true, ROOM = "t";' in js
    for line in ('export class Counter {', 'increment(...a) { return this.$client.call("increment", a); }',
                 'watch(...a) { return this.$client.stream("watch", a); }', 'export class Kv {',
                 'export class Greeter {', 'countdown(...a) { return this.$client.stream("countdown", a); }'):
        assert line in js
    # Classes without methods are not exported; the default room is "default".
    assert "class Echo" not in js and "class Legacy" not in js
    js = get(r.http + "/exports.js")[2].decode()
    assert 'SHARED = false, ROOM = "default"' in js
    assert 'ROOM = "caf\\u00e9 1"' in get(r.http + "/exports.js?shared&room=caf%C3%A9%201")[2].decode() or \
        'ROOM = "café 1"' in get(r.http + "/exports.js?shared&room=caf%C3%A9%201")[2].decode()
    for bad in ("room=", "room=a%2Fb", "room=%00", "room=~x", "room=" + "x" * 200, "room=%zz"):
        status, _, body = get(r.http + "/exports.js?shared&" + bad)
        assert status == 400 and b"room must be" in body, bad
    status, h, _ = get(r.http + "/exports.js?shared&room=t")
    assert get(r.http + "/exports.js?shared&room=t", {"If-None-Match": h["ETag"]})[0] == 304


def test_exports_origin_from_public_url(tmp_path):
    g = Roomd(tmp_path, shards=1, extra=("--public-url", "https://rooms.example/"))
    try:
        js = get(g.http + "/exports.js")[2].decode()
        assert 'from "https://rooms.example/client.js"' in js and 'WS = "wss://rooms.example"' in js
    finally:
        g.stop()


@needs_node
def test_node_processes_share_and_isolate(r):
    """Three Node processes import /exports.js by URL at once: two with
    ?shared&room=n reach one counter (each waits, through watch(), until it
    has seen both increments, then leaves the loop, which cancels the stream);
    the third, without ?shared, has its own."""
    cmd = ["node", "--experimental-network-imports", "--experimental-websocket", NODE_SCRIPT, "shared", r.http]
    procs = [subprocess.Popen(cmd + ["?shared&room=n", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    procs.append(subprocess.Popen(cmd + ["", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        o, e = p.communicate(timeout=60)
        assert p.returncode == 0, e
        outs.append(json.loads(o.strip().splitlines()[-1]))
    a, b, iso = outs
    assert a["name"] == b["name"] == "n"
    assert sorted([a["mine"], b["mine"]]) == [1, 2]
    assert a["seen"] == b["seen"] == 2 and a["count"] == b["count"] == 2
    assert iso["name"].startswith("~") and iso["mine"] == 1 and iso["seen"] == 1 and iso["count"] == 1
    # The shared object is the ordinary counter/n: the HTTP side agrees.
    assert get(f"{r.http}/counter/n")[2] == b"2\n"


@needs_node
def test_node_client_rpc_typed_messages_heartbeat_timeout(r):
    res = node("client", r.http)
    assert res["first"] == 2
    assert res["error"] == {"rpc": True, "code": -32602, "message": "increment(by): by must be an integer"}
    assert res["stillOpen"] and res["opens"] == 1
    assert res["typed"] == {"payload": {"n": 5}, "hasMeta": True}
    assert res["invalid"] == "roomd: invalid PING payload"
    assert res["timeout"] == "roomd: increment timed out after 300 ms"
    m = get(r.http + "/metrics")[2].decode()
    assert int(re.search(r"^roomd_heartbeats_total (\d+)", m, re.M).group(1)) >= 1


@needs_node
def test_node_client_queue_is_bounded(r):
    res = node("queue", f"ws://127.0.0.1:{free_port()}", r.http + "/client.js")
    assert res == {"err": "roomd: send queue full (2)", "closes": 3}


@needs_node
def test_node_client_reconnects_after_gateway_restart(tmp_path):
    g = Roomd(tmp_path, shards=1)
    proc = subprocess.Popen(["node", "--experimental-network-imports", "--experimental-websocket", NODE_SCRIPT,
                             "reconnect", g.ws, g.http + "/client.js"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        g.stop()
        g2 = Roomd(tmp_path, shards=1, port=g.port)
        try:
            o, e = proc.communicate(timeout=60)
            assert proc.returncode == 0, e
            res = json.loads(o.strip().splitlines()[-1])
            assert res["before"] == 1 and res["after"] == 2  # durable across the restart
            assert res["events"][:2] == ["open", "close"] and "reconnect" in res["events"]
        finally:
            g2.stop()
    finally:
        if proc.poll() is None:
            proc.kill()


@needs_node
def test_node_client_gives_up_a_silent_link(tmp_path):
    g = Roomd(tmp_path, shards=1)
    proc = subprocess.Popen(["node", "--experimental-network-imports", "--experimental-websocket", NODE_SCRIPT,
                             "deadlink", g.ws, g.http + "/client.js"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(g.proc.pid, signal.SIGSTOP)
        try:
            assert proc.stdout.readline().strip() == "dead"
        finally:
            os.kill(g.proc.pid, signal.SIGCONT)
        o, e = proc.communicate(timeout=60)
        assert proc.returncode == 0, e
        assert json.loads(o.strip().splitlines()[-1]) == {"code": 4000, "reason": "heartbeat timeout", "after": 1}
    finally:
        if proc.poll() is None:
            proc.kill()
        g.stop()
