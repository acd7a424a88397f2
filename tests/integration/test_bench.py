"""roomd-bench churn (connection set-up rate) against the real gateway, plain
and TLS, and against broken servers: the numbers it reports must come from
verified handshakes, and failures must be counted, not hidden."""
import base64
import hashlib
import json
import os
import socket
import ssl
import subprocess
import threading

from conftest import BUILD

BENCH = os.path.join(BUILD, "bench", "roomd-bench")


def churn(url, *extra, timeout=30):
    p = subprocess.run([BENCH, "churn", "--url", url, "--conns", "4", "--duration", "1",
                        "--warmup", "0.2", "--drain-timeout", "2", "--json", "--quiet", *extra],
                       capture_output=True, text=True, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    return p.returncode, (json.loads(lines[0]) if lines else None), p.stderr


def test_churn_plaintext(roomd):
    rc, r, err = churn(roomd.ws + "/echo/churn")
    assert rc == 0, err
    assert r["ok"] == 1 and r["tls"] == 0
    assert r["handshakes"] > 0 and r["failed"] == 0
    assert r["handshakes_per_s"] > 0
    assert 0 < r["hs_ms_p50"] <= r["hs_ms_p99"] <= r["hs_ms_max"]
    assert "handshakes/s" in err  # the human table goes to stderr with --json


def test_churn_tls(roomd):
    rc, r, err = churn(roomd.wss + "/echo/churn")
    assert rc == 0, err
    assert r["ok"] == 1 and r["tls"] == 1
    assert r["handshakes"] > 0 and r["failed"] == 0 and r["tls_failed"] == 0
    # conftest's certificate is ECDSA P-256; the report says what was negotiated
    assert r["tls_key_bits"] == 256 and r["tls_key_rsa"] == 0
    assert "TLSv1.3" in err and "server key id-ecPublicKey 256 bits" in err
    assert "us per handshake" in err


class TlsUpgradeServer:
    """A TLS WebSocket server (Python ssl, any certificate) that answers every
    upgrade with a correct 101, then the client's close frame with its own."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.answer, args=(c,), daemon=True).start()

    def answer(self, c):
        try:
            c.settimeout(5)
            t = self.ctx.wrap_socket(c, server_side=True)
            d = b""
            while b"\r\n\r\n" not in d:
                r = t.recv(4096)
                if not r:
                    return
                d += r
            key = [l.split(b":", 1)[1].strip() for l in d.split(b"\r\n")
                   if l.lower().startswith(b"sec-websocket-key:")][0]
            acc = base64.b64encode(hashlib.sha1(
                key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            t.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            if len(t.recv(64)) >= 2:  # the client's close frame
                t.sendall(b"\x88\x02\x03\xe8")
            t.close()
        except (OSError, ssl.SSLError, IndexError):
            c.close()

    def close(self):
        self.stop = True
        self.t.join()
        self.sock.close()


def test_churn_tls_rsa_certificate(tmp_path):
    key, cert = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    s = TlsUpgradeServer(cert, key)
    try:
        rc, r, err = churn(f"wss://127.0.0.1:{s.port}/echo/x", "--conns", "2")
    finally:
        s.close()
    assert rc == 0, err
    assert r["handshakes"] > 0 and r["failed"] == 0
    assert r["tls_key_bits"] == 2048 and r["tls_key_rsa"] == 1
    assert "server key rsaEncryption 2048 bits" in err


def test_churn_counts_refused_upgrades(roomd):
    # An unknown class is answered 404: every attempt fails, none counts.
    rc, r, err = churn(roomd.ws + "/nosuchclass/x")
    assert rc == 1
    assert r["ok"] == 0 and r["handshakes"] == 0 and r["failed"] > 0
    assert "expected 101" in err


def test_churn_tls_against_plaintext_port_fails(roomd):
    rc, r, err = churn(f"wss://127.0.0.1:{roomd.port}/echo/churn")
    assert rc == 1
    assert r["handshakes"] == 0 and r["tls_failed"] > 0


class FakeServer:
    """Accepts TCP and answers every request head with `reply` (or never)."""

    def __init__(self, reply):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.conns = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            if self.reply is not None:
                threading.Thread(target=self.answer, args=(c,), daemon=True).start()

    def answer(self, c):
        try:
            c.settimeout(2)
            d = b""
            while b"\r\n\r\n" not in d:
                r = c.recv(4096)
                if not r:
                    return
                d += r
            c.sendall(self.reply)
            c.close()
        except OSError:
            pass

    def close(self):
        self.stop = True
        self.t.join()
        for c in self.conns:
            c.close()
        self.sock.close()


def test_churn_rejects_bad_accept():
    s = FakeServer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
    try:
        rc, r, err = churn(f"ws://127.0.0.1:{s.port}/echo/x")
    finally:
        s.close()
    assert rc == 1
    assert r["handshakes"] == 0 and r["failed"] > 0
    assert "bad Sec-WebSocket-Accept" in err


def test_churn_times_out_silent_server():
    s = FakeServer(None)
    try:
        rc, r, err = churn(f"ws://127.0.0.1:{s.port}/echo/x", "--connect-timeout", "0.3")
    finally:
        s.close()
    assert rc == 1
    assert r["handshakes"] == 0 and r["failed"] >= 4
    assert "no 101 within" in err


def test_churn_usage_errors():
    for args in (["--message", "x"], ["--rooms", "2"], ["--deflate"]):
        p = subprocess.run([BENCH, "churn", "--url", "ws://127.0.0.1:1/echo/x", *args],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (args, p.stderr)
    p = subprocess.run([BENCH, "echo", "--url", "wss://127.0.0.1:1/echo/x"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "only supported by churn" in p.stderr
