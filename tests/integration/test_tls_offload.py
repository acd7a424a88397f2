"""The gateway's own TLS 1.3 record layer (--tls-offload, gateway/gw_tls13.c),
driven by third-party clients: `openssl s_client` for each TLS 1.3 suite and
for KeyUpdate in both forms, Python's ssl + websockets for WebSocket traffic,
and raw bytes after a real handshake for records that must be refused."""
import asyncio
import re
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest
import websockets

from conftest import Roomd

SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
GET = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"


def metric(r, name):
    with urllib.request.urlopen(r.http + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return int(m.group(1))


def s_client(r, suite, script):
    """Runs openssl s_client (interactive commands on: 'K' asks for a key
    update both ways, 'k' updates only the client's key) over the lines of
    script, pausing between them so each is its own write. Returns its output."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{r.tls_port}",
                          "-servername", "localhost", "-CAfile", r.cert, "-ciphersuites", suite,
                          "-msg"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for chunk in script:
            p.stdin.write(chunk)
            p.stdin.flush()
            time.sleep(0.3)  # pacing only: what is checked is the output below
        p.stdin.close()  # end of input: s_client closes the connection
        p.stdin = None
        out, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return out.decode(errors="replace")


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    r = Roomd(tmp_path_factory.mktemp("offload"), shards=2)
    yield r
    r.stop()


@pytest.mark.parametrize("suite", SUITES)
def test_each_suite_with_key_updates(gw, suite):
    before = metric(gw, "roomd_tls_offloaded_total")
    out = s_client(gw, suite, [GET, b"K\n", GET, b"k\n", GET])
    assert f"Cipher is {suite}" in out
    assert out.count("HTTP/1.1 200 OK") == 3, out[-3000:]
    # The client asked for our key update once ('K'): we answered once.
    assert out.count(">>> TLS 1.3, Handshake [length 0005], KeyUpdate") == 2, out[-3000:]
    assert out.count("<<< TLS 1.3, Handshake [length 0005], KeyUpdate") == 1, out[-3000:]
    assert metric(gw, "roomd_tls_offloaded_total") == before + 1
    assert metric(gw, "roomd_tls_record_errors_total") == 0


def test_websocket_traffic_and_close(gw):
    async def go():
        async with websockets.connect(gw.wss + "/echo/offload", ssl=gw.ssl_context(),
                                      max_size=None, compression=None) as ws:
            # Sizes around the 16 KiB record and 64 KiB write boundaries.
            for n in (1, 125, 16383, 16384, 16385, 65536, 300000):
                msg = "".join(chr(97 + i % 26) for i in range(n))
                await ws.send(msg)
                assert await ws.recv() == "[Durable Object]: " + msg
            await ws.close()
            assert ws.close_code == 1000
    asyncio.run(go())
    assert metric(gw, "roomd_tls_record_errors_total") == 0


def raw_after_handshake(r, payload):
    """A real TLS 1.3 handshake with Python's ssl, then raw bytes on the
    socket under it. Returns what the gateway did: 'closed' or 'open'."""
    raw = socket.create_connection(("127.0.0.1", r.tls_port), timeout=5)
    ctx = r.ssl_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    try:
        sock = socket.socket(fileno=s.detach())
        sock.sendall(payload)
        sock.settimeout(5)
        try:
            while True:
                data = sock.recv(4096)
                if not data:
                    return "closed"
        except ConnectionResetError:
            return "closed"
        except socket.timeout:
            return "open"
    finally:
        sock.close()


@pytest.mark.parametrize("payload", [
    bytes([23, 3, 3, 0, 32]) + bytes(32),       # fails authentication
    bytes([22, 3, 3, 0, 4, 1, 0, 0, 0]),        # a plaintext handshake record
    bytes([23, 3, 3, 0x41, 0x01]),              # longer than 2^14 + 256
], ids=["forged", "plaintext", "oversize"])
def test_bad_records_close_only_that_connection(gw, payload):
    errors = metric(gw, "roomd_tls_record_errors_total")

    async def neighbour():
        async with websockets.connect(gw.wss + "/echo/neighbour", ssl=gw.ssl_context()) as ws:
            await ws.send("before")
            assert await ws.recv() == "[Durable Object]: before"
            assert await asyncio.to_thread(raw_after_handshake, gw, payload) == "closed"
            await ws.send("after")
            assert await ws.recv() == "[Durable Object]: after"
    asyncio.run(neighbour())
    assert metric(gw, "roomd_tls_record_errors_total") == errors + 1


def test_tls12_stays_with_openssl(gw):
    before = metric(gw, "roomd_tls_offloaded_total")
    ctx = gw.ssl_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    async def go():
        async with websockets.connect(gw.wss + "/echo/tls12", ssl=ctx) as ws:
            await ws.send("x" * 70000)
            assert await ws.recv() == "[Durable Object]: " + "x" * 70000
    asyncio.run(go())
    assert metric(gw, "roomd_tls_offloaded_total") == before


def test_max_fragment_length_stays_with_openssl(gw):
    """A client that negotiates 512-byte records (RFC 6066) keeps OpenSSL's
    record layer, which honours the limit; a 3 KB response arrives intact."""
    before = metric(gw, "roomd_tls_offloaded_total")
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{gw.tls_port}",
                        "-servername", "localhost", "-CAfile", gw.cert, "-maxfraglen", "512",
                        "-ign_eof", "-quiet"],
                       input=b"GET /client.js HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                       capture_output=True, timeout=20)
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), p.stdout[:500] + p.stderr[-2000:]
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    assert length > 3000 and len(body) == length
    assert metric(gw, "roomd_tls_offloaded_total") == before


def test_offload_off(tmp_path):
    r = Roomd(tmp_path, shards=1, extra=("--no-tls-offload",))
    try:
        out = s_client(r, SUITES[0], [GET, b"K\n", GET])
        assert out.count("HTTP/1.1 200 OK") == 2, out[-3000:]
        assert metric(r, "roomd_tls_offloaded_total") == 0
    finally:
        r.stop()
