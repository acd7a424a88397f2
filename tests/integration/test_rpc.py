"""JSON-RPC 2.0 over an object's WebSocket and over HTTP for backends:
counter and kv methods, every error class, notifications, streams ended by
the class or cancelled by the client, the stream limit, and a user module's
methods."""
import asyncio
import json
import os
import urllib.request

import pytest
import websockets

from conftest import BUILD, Roomd

KEY = "backend-api-key"
MODULE = os.path.join(BUILD, "tests", "modules", "mod_web.so")


@pytest.fixture(scope="module")
def r(tmp_path_factory):
    g = Roomd(tmp_path_factory.mktemp("rpc"), shards=2, extra=("--module", MODULE, "--publish-key", KEY))
    yield g
    g.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


class Rpc:
    """A minimal JSON-RPC client over one websockets connection."""

    def __init__(self, ws):
        self.ws = ws
        self.next = 0

    async def send(self, method, params=None, notify=False):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        if not notify:
            self.next += 1
            msg["id"] = self.next
        await self.ws.send(json.dumps(msg))
        return msg.get("id")

    async def recv(self):
        return json.loads(await self.ws.recv())

    async def call(self, method, params=None):
        i = await self.send(method, params)
        resp = await self.recv()
        assert resp["id"] == i, resp
        return resp


def post(r, path, body=b"", key=KEY, method="POST"):
    req = urllib.request.Request(r.http + path, data=body if method == "POST" else None, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_counter_methods_over_websocket(r):
    async def go():
        async with websockets.connect(f"{r.ws}/counter/rpc1") as ws:
            c = Rpc(ws)
            assert (await c.call("increment"))["result"] == 1
            assert (await c.call("increment", [5]))["result"] == 6
            assert (await c.call("increment", {"by": -2}))["result"] == 4
            # A notification runs but is not answered.
            await c.send("increment", notify=True)
            assert (await c.call("getCount"))["result"] == 5
            # init only sets a counter that was never set.
            assert (await c.call("init", [100]))["result"] == 5
            # String ids come back as sent; the old message protocol still works.
            await ws.send('{"jsonrpc":"2.0","id":"a-1","method":"getCount"}')
            assert await c.recv() == {"jsonrpc": "2.0", "id": "a-1", "result": 5}
            await ws.send('{"op":"get"}')
            assert await c.recv() == {"value": 5}
    run(go())


def test_jsonrpc_errors(r):
    async def go():
        async with websockets.connect(f"{r.ws}/counter/rpc2") as ws:
            c = Rpc(ws)
            await ws.send('{"jsonrpc":"2.0","id":1,"method":"getCount"')
            e = await c.recv()
            assert e["id"] is None and e["error"]["code"] == -32700
            assert e["error"]["message"].startswith("parse error")
            await ws.send('{"jsonrpc":"1.0","id":2,"method":"getCount"}')
            e = await c.recv()
            assert e["id"] == 2 and e["error"] == {"code": -32600, "message": '"jsonrpc" must be "2.0"'}
            await ws.send('[{"jsonrpc":"2.0","id":3,"method":"getCount"}]')
            e = await c.recv()
            assert e["error"]["code"] == -32600 and "batch" in e["error"]["message"]
            await ws.send('{"jsonrpc":"2.0","id":{"x":1},"method":"getCount"}')
            assert (await c.recv())["error"]["code"] == -32600
            await ws.send('{"jsonrpc":"2.0","id":4,"method":7}')
            assert (await c.recv())["error"]["code"] == -32600
            e = await c.call("nope")
            assert e["error"] == {"code": -32601, "message": 'method not found: counter has no method "nope"'}
            assert (await c.call("rpc.secret"))["error"]["code"] == -32601
            e = await c.call("increment", ["x"])
            assert e["error"] == {"code": -32602, "message": "increment(by): by must be an integer"}
            e = await c.call("getCount", 5)
            assert e["error"]["code"] == -32602
            # After all that the connection still works.
            assert (await c.call("getCount"))["result"] == 0
    run(go())


def test_http_rpc(r):
    assert post(r, "/counter/h1/rpc/increment") == (200, '{"jsonrpc":"2.0","id":null,"result":1}\n')
    status, body = post(r, "/counter/h1/rpc/increment", b'{"by": 10}')
    assert status == 200 and json.loads(body)["result"] == 11
    assert json.loads(post(r, "/counter/h1/rpc/getCount", b"[]")[1])["result"] == 11
    status, body = post(r, "/counter/h1/rpc/increment", key=None)
    assert status == 401 and "API key is required" in body
    assert post(r, "/counter/h1/rpc/increment", key="wrong")[0] == 401
    assert post(r, "/counter/h1/rpc/increment", method="GET")[0] == 405
    status, body = post(r, "/counter/h1/rpc/nope")
    assert status == 404 and json.loads(body)["error"]["code"] == -32601
    status, body = post(r, "/counter/h1/rpc/increment", b"{bad")
    assert status == 400 and json.loads(body)["error"]["code"] == -32700
    status, body = post(r, "/counter/h1/rpc/increment", b'"x"')
    assert status == 400 and json.loads(body)["error"]["code"] == -32602
    status, body = post(r, "/counter/h1/rpc/increment", b'["x"]')
    assert status == 400 and json.loads(body)["error"]["code"] == -32602
    status, body = post(r, "/counter/h1/rpc/watch")
    assert status == 400 and "streaming method" in json.loads(body)["error"]["message"]
    assert post(r, "/counter/h1/rpc/")[0] == 400
    # kv over HTTP, and an application error from a user class (422).
    assert json.loads(post(r, "/kv/h2/rpc/put", b'["k", {"a": [1, 2]}]')[1])["result"] is True
    assert json.loads(post(r, "/kv/h2/rpc/get", b'{"key": "k"}')[1])["result"] == {"a": [1, 2]}
    assert json.loads(post(r, "/kv/h2/rpc/list", b'[{"prefix": "k"}]')[1])["result"] == [["k", {"a": [1, 2]}]]
    assert json.loads(post(r, "/kv/h2/rpc/delete", b'["k"]')[1])["result"] is True
    assert json.loads(post(r, "/kv/h2/rpc/get", b'["k"]')[1])["result"] is None
    status, body = post(r, "/kv/h2/rpc/put", b'[""]')
    assert status == 400 and json.loads(body)["error"]["message"] == '"key" must be a non-empty string'
    assert json.loads(post(r, "/greeter/g/rpc/hello", b'["ada"]')[1])["result"] == "hello, ada"
    # The value is what the WebSocket side sees too.
    async def go():
        async with websockets.connect(f"{r.ws}/counter/h1") as ws:
            assert (await Rpc(ws).call("getCount"))["result"] == 11
    run(go())


def test_stream_until_cancelled(r):
    async def go():
        async with websockets.connect(f"{r.ws}/counter/s1") as w, \
                websockets.connect(f"{r.ws}/counter/s1") as other:
            c, o = Rpc(w), Rpc(other)
            sid = await c.send("watch")
            first = await c.recv()
            assert first == {"jsonrpc": "2.0", "method": "rpc.stream", "params": {"id": sid, "value": 0}}
            for want in (1, 2, 3):
                assert (await o.call("increment"))["result"] == want
                ev = await c.recv()
                assert ev["params"] == {"id": sid, "value": want}
            await c.send("rpc.cancel", [sid], notify=True)
            assert await c.recv() == {"jsonrpc": "2.0", "id": sid,
                                      "error": {"code": -32800, "message": "cancelled"}}
            await o.call("increment")
            # Nothing more for the cancelled stream: the next message is this answer.
            assert (await c.call("getCount"))["result"] == 4
            # Cancelling an unknown stream is silently ignored; a bad cancel is an error.
            await c.send("rpc.cancel", {"id": 999}, notify=True)
            e = await c.call("rpc.cancel", [])
            assert e["error"]["code"] == -32602
    run(go())


def test_stream_limit_and_close(r):
    async def go():
        async with websockets.connect(f"{r.ws}/counter/s2") as w:
            c = Rpc(w)
            for i in range(16):
                sid = await c.send("watch")
                assert (await c.recv())["params"]["id"] == sid
            e = await c.call("watch")
            assert e["error"] == {"code": -32000, "message": "too many open streams on this connection (16)"}
        # The closed connection's streams are gone; the object serves others.
        async with websockets.connect(f"{r.ws}/counter/s2") as w:
            assert (await Rpc(w).call("increment"))["result"] == 1
    run(go())


def test_kv_watch_prefix(r):
    async def go():
        async with websockets.connect(f"{r.ws}/kv/w1") as w:
            c = Rpc(w)
            sid = await c.send("watch", ["user:"])
            assert (await c.call("put", ["other", 1]))["result"] is True
            # The change is streamed while the put runs, so before its answer.
            pid = await c.send("put", ["user:1", {"n": "ada"}])
            ev = await c.recv()
            assert ev["params"] == {"id": sid, "value": {"key": "user:1", "value": {"n": "ada"}}}
            assert await c.recv() == {"jsonrpc": "2.0", "id": pid, "result": True}
            did = await c.send("delete", ["user:1"])
            ev = await c.recv()
            assert ev["params"]["value"] == {"key": "user:1", "deleted": True}
            assert (await c.recv())["id"] == did
    run(go())


def test_user_module_methods_and_server_ended_stream(r):
    async def go():
        async with websockets.connect(f"{r.ws}/greeter/g1") as w:
            c = Rpc(w)
            assert (await c.call("hello", {"name": "bob"}))["result"] == "hello, bob"
            sid = await c.send("countdown", [3])
            got = [(await c.recv())["params"]["value"] for _ in range(3)]
            assert got == [3, 2, 1]
            assert await c.recv() == {"jsonrpc": "2.0", "id": sid, "result": "liftoff"}
            e = await c.call("countdown", [1000])
            assert e["error"] == {"code": 4000, "message": "countdown(n): n must be 0..100"}
            # greeter has no message handler: a non-RPC message is ignored.
            await w.send("plain text")
            assert (await c.call("hello", ["x"]))["result"] == "hello, x"
        # A version 1 class loads and works.
        async with websockets.connect(f"{r.ws}/legacy/l1") as w:
            await w.send("same")
            assert await w.recv() == "same"
    run(go())


def test_streams_outlive_hibernation(tmp_path):
    g = Roomd(tmp_path, shards=1, extra=("--hibernate-after", "200ms"))
    try:
        async def go():
            async with websockets.connect(f"{g.ws}/counter/hib") as w, \
                    websockets.connect(f"{g.ws}/counter/hib") as other:
                c = Rpc(w)
                sid = await c.send("watch")
                assert (await c.recv())["params"] == {"id": sid, "value": 0}
                deadline = asyncio.get_running_loop().time() + 20
                while 'msg="object hibernated" object=counter/hib' not in g.read_log():
                    assert asyncio.get_running_loop().time() < deadline, "never hibernated"
                    await asyncio.sleep(0.1)
                # The increment wakes the object (create runs again); the stream is still there.
                assert (await Rpc(other).call("increment"))["result"] == 1
                assert (await c.recv())["params"] == {"id": sid, "value": 1}
        run(go())
    finally:
        g.stop()
