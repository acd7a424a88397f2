"""roomd-bench against the real gateway and against broken servers: churn
(connection set-up rate, plain and TLS), sink (the client's own receive
capacity with a forked loopback sender) and the fan-out receive checks. The
numbers it reports must come from verified handshakes and messages, and
failures must be counted, not hidden."""
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

from conftest import BUILD

BENCH = os.path.join(BUILD, "bench", "roomd-bench")


def run(mode, *args, timeout=60):
    p = subprocess.run([BENCH, mode, *args, "--json", "--quiet"],
                       capture_output=True, text=True, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    return p.returncode, (json.loads(lines[0]) if lines else None), p.stderr


def churn(url, *extra, timeout=30):
    return run("churn", "--url", url, "--conns", "4", "--duration", "1", "--warmup", "0.2",
               "--drain-timeout", "2", *extra, timeout=timeout)


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


def test_churn_tls_rsa_certificate(tmp_path):
    key, cert = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s = FakeServer(handler=upgrade_then_close, tls=ctx)
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
    """Accepts TCP (tls: wrapped in that server context) and runs
    handler(conn) per connection in a thread; or answers every request head
    with `reply`; or, with neither, never answers."""

    def __init__(self, reply=None, handler=None, tls=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handler = handler or (self.answer if reply is not None else None)
        self.reply = reply
        self.tls = tls
        self.conns = []
        self.threads = []
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
            if self.handler is not None:
                t = threading.Thread(target=self.serve, args=(c,), daemon=True)
                t.start()
                self.threads.append(t)

    def serve(self, c):
        try:
            c.settimeout(5)
            if self.tls is not None:
                c = self.tls.wrap_socket(c, server_side=True)
            self.handler(c)
        except (OSError, ssl.SSLError):
            pass

    def answer(self, c):
        read_head(c)
        c.sendall(self.reply)
        c.close()

    def close(self):
        self.stop = True
        self.t.join()
        for t in self.threads:
            t.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


def read_head(c):
    """The request head from c, and what came after it."""
    d = b""
    while b"\r\n\r\n" not in d:
        r = c.recv(4096)
        if not r:
            raise OSError("closed before the request head")
        d += r
    i = d.index(b"\r\n\r\n") + 4
    return d[:i], d[i:]


def answer_upgrade(c):
    """Reads an upgrade request, sends the 101 it asks for; returns what came
    after the request."""
    head, rest = read_head(c)
    key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
           if l.lower().startswith(b"sec-websocket-key:")][0]
    acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
    return rest


def upgrade_then_close(c):
    answer_upgrade(c)
    if len(c.recv(64)) >= 2:  # the client's close frame
        c.sendall(b"\x88\x02\x03\xe8")
    c.close()


def test_churn_rejects_bad_accept():
    s = FakeServer(reply=b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
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


# ---- sink (the client alone) and the fan-out receive checks ----------------

def check_exact(r):
    assert r["ok"] == 1 and r["sender_ok"] == 1
    assert r["expected"] > 0 and r["delivered"] == r["expected"] and r["lost"] == 0
    assert r["duplicated"] == 0 and r["reordered"] == 0
    assert r["unexpected"] == 0 and r["malformed"] == 0 and r["corrupt"] == 0
    assert r["protocol_errors"] == 0 and r["close_timeouts"] == 0


def test_sink_delivers_every_message_once():
    rc, r, err = run("sink", "--rooms", "3", "--members", "4", "--publishers", "2",
                     "--batch", "5", "--duration", "0.5")
    assert rc == 0, err
    check_exact(r)
    assert r["conns"] == r["connected"] == 12
    # the same batch goes to the 4 members of each room
    assert r["expected"] == r["sent"] * 4
    assert r["sender_sends"] * 5 == r["expected"]
    assert r["recv_calls"] > 0 and r["msgs_in"] == r["delivered"]
    assert r["deliveries_per_s"] > 0 and r["client_ns_per_delivery"] > 0
    assert 0 < r["sender_cpu_s"] and 0 < r["sender_active_s"] < 5
    assert 0 <= r["client_runq_s"] < r["window_s"] and 0 < r["client_cpu_s"]
    assert "messages per recv" in err and "sender cpu" in err


def test_sink_json_payload_and_long_frames():
    # 300-byte JSON bodies (16-bit frame length), checked byte by byte
    rc, r, err = run("sink", "--rooms", "2", "--members", "3", "--payload", "json",
                     "--batch", "2", "--duration", "0.3")
    assert rc == 0, err
    check_exact(r)
    assert r["size"] == 300 and r["payload_json"] == 1
    # 70,000-byte messages: 64-bit frame lengths, reassembled across reads
    rc, r, err = run("sink", "--rooms", "1", "--members", "2", "--size", "70000",
                     "--batch", "1", "--duration", "0.3")
    assert rc == 0, err
    check_exact(r)
    assert r["recv_calls"] > r["delivered"]  # each message needed several reads


def test_sink_usage_errors():
    for args in (["--rate", "10"], ["--url", "ws://127.0.0.1:1/chat/x"], ["--settle", "1"],
                 ["--deflate"], ["--conns", "3"], ["--cpu-pids", "1"], ["--batch", "0"],
                 ["--batch", "5000"], ["--sender-cpu", "x"]):
        p = subprocess.run([BENCH, "sink", *args], capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (args, p.stderr)
    for mode in ("fanout", "echo"):
        p = subprocess.run([BENCH, mode, "--batch", "4"], capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and "only apply to sink" in p.stderr


def test_sink_reports_a_sender_that_cannot_run():
    # a CPU that does not exist: the sender cannot pin itself and exits, the
    # connections are refused or never answered, and the run fails
    rc, r, err = run("sink", "--rooms", "1", "--members", "2", "--duration", "0.2",
                     "--sender-cpu", str(os.cpu_count() + 64), "--connect-timeout", "1")
    assert rc == 1
    assert r["ok"] == 0 and r["delivered"] == 0
    assert "sched_setaffinity" in err


def test_fanout_reports_recv_and_idle(roomd):
    rc, r, err = run("fanout", "--url", roomd.ws + "/chat/sinkcheck", "--rooms", "2",
                     "--members", "4", "--rate", "100", "--duration", "1")
    assert rc == 0, err
    assert r["lost"] == 0 and r["delivered"] == r["expected"] > 0
    assert r["recv_calls"] > 0 and r["epoll_waits"] > 0
    # 100 msg/s for 8 members leaves the client idle most of the time
    assert r["client_cpu_s"] + r["client_runq_s"] < 0.5 * r["window_s"]
    assert r["client_ns_per_delivery"] > 0
    assert "client idle" in err and "waiting for a CPU" in err


def scripted_fanout(script):
    """A handler for FakeServer: answers the upgrade, sends the scripted
    messages, then reads the client's frames (its publishes, then its close)
    and answers the close."""
    def handler(c):
        buf = answer_upgrade(c)
        c.sendall(b"".join(bytes([0x81, len(m)]) + m for m in script))
        while True:
            while len(buf) < 2 or len(buf) < frame_len(buf):
                r = c.recv(65536)
                if not r:
                    return
                buf += r
            op, n = buf[0] & 0x0F, frame_len(buf)
            buf = buf[n:]
            if op == 8:
                c.sendall(b"\x88\x02\x03\xe8")
                c.close()
                return
    return handler


def frame_len(buf):
    """Length of the masked client frame at the start of buf (header, key,
    payload), or a bound to read up to while the header is incomplete."""
    n = buf[1] & 0x7F
    hl = 2 + (2 if n == 126 else 8 if n == 127 else 0) + 4
    if len(buf) < hl:
        return hl
    if n == 126:
        n = struct.unpack(">H", buf[2:4])[0]
    elif n == 127:
        n = struct.unpack(">Q", buf[2:10])[0]
    return hl + n


def bench_msg(pub, seq, body=b"x"):
    head = b"RBF:%08x:%016x:%016x;" % (pub, seq, time.monotonic_ns())
    return head + body * (64 - len(head))


def test_fanout_counts_what_a_broken_server_does():
    script = [bench_msg(0, 1), bench_msg(0, 2), bench_msg(0, 2), bench_msg(0, 4),
              bench_msg(0, 3), bench_msg(0, 5, b"y"), bench_msg(7, 1), b"hello"]
    s = FakeServer(handler=scripted_fanout(script))
    try:
        # one room of 3: member 0 publishes (publisher id 0), members 1 and 2 receive
        rc, r, err = run("fanout", "--url", f"ws://127.0.0.1:{s.port}/chat/broken",
                         "--rooms", "1", "--members", "3", "--rate", "20", "--duration", "0.5",
                         "--settle", "0.3", "--drain-timeout", "1")
    finally:
        s.close()
    assert rc == 0, err
    # members 1 and 2 each: seq 1, 2, 4, 3, 5 are new; the second 2 is a
    # duplicate; 3 came after 4; 5's body is damaged (still delivered)
    assert r["delivered"] == 10
    assert r["duplicated"] == 2 and r["reordered"] == 2 and r["corrupt"] == 2
    # publisher 7 is not in this room (all 3 members), member 0 got its own
    # messages back (6 of them), "hello" is no bench message (all 3)
    assert r["unexpected"] == 3 + 6
    assert r["malformed"] == 3
    # what member 0 published (to a server that drops it) never came back
    assert r["expected"] == 2 * r["sent"] > 10
    assert r["lost"] == r["expected"] - 10


def test_compare_report_takes_the_median_tls_round(tmp_path):
    """bench/compare.sh runs churn_tls several times per server; the report
    compares each server's median run, and a failed round is what counts if
    there is one."""
    report = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "compare_report.py")

    def run(rows):
        path = tmp_path / "c.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = subprocess.run(["/usr/bin/python3", report, str(path)], check=True,
                             capture_output=True, text=True).stdout
        return next(l for l in out.splitlines() if l.startswith("| TLS handshakes/s vs Node"))

    def tls(srv, hs, ok=1):
        return {"server": srv, "scenario": "churn_tls", "ok": ok, "exit": 0, "handshakes_per_s": hs}

    line = run([tls("roomd", 100), tls("roomd", 300), tls("roomd", 200), tls("node", 150)])
    assert "1.33× (200 vs 150)" in line and "**met**" in line
    line = run([tls("roomd", 300), tls("roomd", 0, ok=0), tls("roomd", 250), tls("node", 150)])
    assert line == "| TLS handshakes/s vs Node | n/a | ≥ 1× | n/a |", line
