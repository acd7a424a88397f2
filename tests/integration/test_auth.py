"""JWT authentication in the gateway: HS256/RS256/ES256 from the
Authorization header, a bearer.<jwt> subprotocol entry or ?token=; exp/nbf;
wrong key, wrong or no algorithm, missing token; roomd.objects; claims in
the class's connect callback, which may refuse."""
import asyncio
import json
import os
import re
import socket
import subprocess
import time

import pytest
import websockets

from conftest import BUILD, GATEWAY, Roomd
from jwtutil import keypair, mint

SECRET = "integration-secret-with-32-bytes-or-more"
MODULE = os.path.join(BUILD, "tests", "modules", "mod_web.so")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("keys"))
    return {"rsa": keypair(d, "rsa", "rsa"), "rsa2": keypair(d, "rsa2", "rsa"),
            "ec": keypair(d, "ec", "ec")}


@pytest.fixture(scope="module")
def gw(tmp_path_factory, keys):
    """HS256 secret and an RSA key; whoami needs a token, echo does not."""
    r = Roomd(tmp_path_factory.mktemp("auth"), shards=2,
              extra=("--module", MODULE, "--jwt-secret", SECRET, "--jwt-key", keys["rsa"][1],
                     "--jwt-class", "whoami", "--jwt-leeway", "5s"))
    yield r
    r.stop()


def request(r, path, token=None, upgrade=False, headers=()):
    h = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{r.port}", "Connection: close"]
    if token:
        h.append(f"Authorization: Bearer {token}")
    if upgrade:
        h[2] = "Connection: Upgrade"
        h += ["Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    h += list(headers)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(("\r\n".join(h) + "\r\n\r\n").encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
        head, _, body = resp.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        if status != 101:  # a 101 has no body; anything else is read to its end
            m = re.search(rb"(?i)content-length: *(\d+)", head)
            while m and len(body) < int(m.group(1)):
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
    return status, head.decode(), body.decode()


def claims(sub="ada", **kw):
    c = {"sub": sub, "exp": int(time.time()) + 600}
    c.update(kw)
    return c


def test_good_tokens_reach_the_class(gw, keys):
    for tok in (mint("HS256", claims(), secret=SECRET), mint("RS256", claims(), key=keys["rsa"][0])):
        status, _, body = request(gw, "/whoami/a", tok)
        assert status == 200, body
        assert json.loads(body)["sub"] == "ada"
    # ?token= works too, for WebSockets as well.
    tok = mint("HS256", claims("bob"), secret=SECRET)
    status, _, body = request(gw, f"/whoami/a?token={tok}")
    assert status == 200 and json.loads(body)["sub"] == "bob"

    async def go():
        async with websockets.connect(f"{gw.ws}/whoami/b?token={tok}") as ws:
            await ws.send("who")
            assert json.loads(await ws.recv())["sub"] == "bob"
    asyncio.run(asyncio.wait_for(go(), 30))


def test_subprotocol_token_is_never_echoed(gw):
    tok = mint("HS256", claims("cy"), secret=SECRET)

    async def go():
        # The bearer entry alone: the handshake answers no subprotocol.
        async with websockets.connect(f"{gw.ws}/whoami/c", subprotocols=[f"bearer.{tok}"]) as ws:
            assert ws.subprotocol is None
            await ws.send("who")
            assert json.loads(await ws.recv())["sub"] == "cy"
        # With a real one beside it, that one is selected.
        async with websockets.connect(f"{gw.ws}/whoami/c", subprotocols=[f"bearer.{tok}", "roomd"]) as ws:
            assert ws.subprotocol == "roomd"
    asyncio.run(asyncio.wait_for(go(), 30))
    status, head, _ = request(gw, "/whoami/c", upgrade=True,
                              headers=[f"Sec-WebSocket-Protocol: app, bearer.{tok}"])
    assert status == 101
    assert "Sec-WebSocket-Protocol: app" in head and "bearer" not in head


def test_missing_token(gw):
    status, head, body = request(gw, "/whoami/a")
    assert status == 401 and body == "missing token\n"
    assert 'WWW-Authenticate: Bearer error="invalid_request"' in head
    status, _, body = request(gw, "/whoami/a", upgrade=True)
    assert status == 401 and body == "missing token\n"
    # Classes without --jwt-class take anonymous clients.
    status, _, _ = request(gw, "/echo/a/getCurrentConnections")
    assert status == 200


def test_expired_and_not_yet_valid(gw):
    now = int(time.time())
    tok = mint("HS256", {"sub": "ada", "exp": now - 60}, secret=SECRET)
    status, head, body = request(gw, "/whoami/a", tok, upgrade=True)
    assert status == 401 and body == "expired\n"
    assert 'error="invalid_token"' in head
    # Within the leeway (5 s) it still passes.
    tok = mint("HS256", {"sub": "ada", "exp": now - 1}, secret=SECRET)
    assert request(gw, "/whoami/a", tok)[0] == 200
    tok = mint("HS256", {"sub": "ada", "nbf": now + 120}, secret=SECRET)
    status, _, body = request(gw, "/whoami/a", tok)
    assert status == 401 and body == "not yet valid (nbf)\n"
    # An invalid token is refused even where a token is optional.
    status, _, body = request(gw, "/echo/a/getCurrentConnections",
                              mint("HS256", {"exp": now - 60}, secret=SECRET))
    assert status == 401 and body == "expired\n"


def test_wrong_key(gw, keys):
    status, _, body = request(gw, "/whoami/a", mint("HS256", claims(), secret=SECRET + "x"))
    assert status == 401 and body == "bad signature\n"
    status, _, body = request(gw, "/whoami/a", mint("RS256", claims(), key=keys["rsa2"][0]), upgrade=True)
    assert status == 401 and body == "bad signature\n"


def test_wrong_algorithm(gw, keys):
    # No EC key configured: ES256 is not allowed; nor is "none".
    status, _, body = request(gw, "/whoami/a", mint("ES256", claims(), key=keys["ec"][0]))
    assert status == 401 and body == "algorithm not allowed: ES256\n"
    status, _, body = request(gw, "/whoami/a", mint("none", claims()))
    assert status == 401 and body == "algorithm not allowed: none\n"
    # Algorithm confusion: HS256 keyed with the RSA public key is a bad signature
    # (the HMAC is checked with the configured secret only).
    pem = open(keys["rsa"][1]).read()
    status, _, body = request(gw, "/whoami/a", mint("HS256", claims(), secret=pem))
    assert status == 401 and body == "bad signature\n"
    status, _, body = request(gw, "/whoami/a", "not-a-token")
    assert status == 401 and body.startswith("malformed token")


def test_objects_claim_and_connect_refusal(gw):
    tok = mint("HS256", claims(roomd={"objects": ["whoami/x*", "echo/one"]}), secret=SECRET)
    assert request(gw, "/whoami/x1", tok)[0] == 200
    assert request(gw, "/echo/one/getCurrentConnections", tok)[0] == 200
    status, _, body = request(gw, "/whoami/y", tok, upgrade=True)
    assert status == 403 and body == "the token does not open whoami/y\n"
    # The class's connect callback sees the claims and may refuse.
    status, _, body = request(gw, "/whoami/a", mint("HS256", claims(banned=True), secret=SECRET),
                              upgrade=True)
    assert status == 403 and body == "banned by the whoami class\n"
    # The gateway kept serving throughout.
    assert gw.health()[0] == 200
    metrics = request(gw, "/metrics")[2]
    assert "roomd_auth_refused_total" in metrics


def test_es256_and_claims_survive_a_shard_restart(tmp_path, keys):
    r = Roomd(tmp_path, shards=1, extra=("--module", MODULE, "--jwt-key", keys["ec"][1]))
    try:
        tok = mint("ES256", claims("eve"), key=keys["ec"][0])
        assert json.loads(request(r, "/whoami/a", tok)[2])["sub"] == "eve"
        assert request(r, "/whoami/a", mint("HS256", claims(), secret=SECRET))[2] == \
            "algorithm not allowed: HS256\n"

        async def go():
            async with websockets.connect(f"{r.ws}/whoami/z", subprotocols=[f"bearer.{tok}"]) as ws:
                pid = r.shard_pids()["shard-0"]
                os.kill(pid, 9)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and (r.shard_pids().get("shard-0") == pid or
                                                       r.health()[0] != 200):
                    await asyncio.sleep(0.1)
                await ws.send("who")
                assert json.loads(await ws.recv())["sub"] == "eve"
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        r.stop()


@pytest.mark.parametrize("args, msg", [
    (("--jwt-secret", "short"), "at least 32 bytes"),
    (("--jwt-class", "chat"), "--jwt-class needs --jwt-secret or --jwt-key"),
    (("--jwt-key", "/nonexistent.pem"), "cannot open /nonexistent.pem"),
])
def test_config_errors(args, msg):
    p = subprocess.run([GATEWAY, *args, "--check-config"], capture_output=True, text=True)
    assert p.returncode == 2 and msg in p.stderr
