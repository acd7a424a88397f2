"""TLS details (versions, ALPN, resumption, certificate reload without
dropping connections) and the graceful drain on SIGTERM."""
import asyncio
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess

import pytest
import websockets

from conftest import Roomd, make_cert


def tls_connect(r, ctx=None, session=None):
    ctx = ctx or r.ssl_context()
    raw = socket.create_connection(("127.0.0.1", r.tls_port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost", session=session)


def test_tls_versions_and_alpn(roomd):
    ctx = roomd.ssl_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with tls_connect(roomd, ctx) as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        assert s.selected_alpn_protocol() == "http/1.1"
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        ctx = roomd.ssl_context()
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = old
        try:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            with tls_connect(roomd, ctx):
                pass


def test_tls12_session_resumption(roomd):
    ctx = roomd.ssl_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_connect(roomd, ctx) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(4096):
            pass
        session = s.session
    with tls_connect(roomd, ctx, session=session) as s2:
        assert s2.session_reused


def fingerprint(r):
    with tls_connect(r) as s:
        return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def test_certificate_reload_on_sighup_keeps_connections(tmp_path):
    r = Roomd(tmp_path / "a", shards=1)
    try:
        before = fingerprint(r)

        async def go():
            async with websockets.connect(r.wss + "/echo/reload", ssl=r.ssl_context()) as ws:
                await ws.send("one")
                assert await ws.recv() == "[Durable Object]: one"
                newdir = tmp_path / "new"
                newdir.mkdir()
                cert, key = make_cert(str(newdir))
                shutil.copy(cert, r.cert)
                shutil.copy(key, r.key)
                r.proc.send_signal(signal.SIGHUP)
                for _ in range(200):
                    if "certificate reloaded" in r.read_log():
                        break
                    await asyncio.sleep(0.02)
                assert "certificate reloaded" in r.read_log()
                # The open connection is untouched.
                await ws.send("two")
                assert await ws.recv() == "[Durable Object]: two"
        asyncio.run(asyncio.wait_for(go(), 30))
        # New handshakes present the new certificate (r.ssl_context trusts it now).
        assert fingerprint(r) != before
        # A broken certificate file is refused and the old one stays.
        with open(r.cert, "w") as f:
            f.write("garbage")
        r.proc.send_signal(signal.SIGHUP)
        for _ in range(200):
            if "certificate reload failed" in r.read_log():
                break
            asyncio.run(asyncio.sleep(0.02))
        assert "certificate reload failed" in r.read_log()
        assert r.health()[0] == 200
    finally:
        r.stop()


def test_sigterm_drains_every_client_with_1001(tmp_path):
    r = Roomd(tmp_path, shards=2)

    async def go():
        conns = [await websockets.connect(f"{r.ws}/chat/drain{i % 3}") for i in range(10)]
        tls = await websockets.connect(r.wss + "/echo/drain", ssl=r.ssl_context())
        r.proc.send_signal(signal.SIGTERM)
        for ws in conns + [tls]:
            try:
                await asyncio.wait_for(ws.recv(), 10)
                pytest.fail("expected a close")
            except websockets.ConnectionClosed as e:
                assert e.rcvd is not None
                assert (e.rcvd.code, e.rcvd.reason) == (1001, "server shutting down")
    try:
        asyncio.run(asyncio.wait_for(go(), 30))
        assert r.proc.wait(timeout=20) == 0
    finally:
        r.stop()
