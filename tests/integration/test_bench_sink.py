"""roomd-bench sink (the client's own receive capacity, with a forked
loopback sender) and the fan-out receive checks it relies on: every message
the sender wrote must arrive exactly once and be verified, the counters must
catch what a broken server does, and the new per-run numbers (recv calls,
idle time, CPU per delivery) must be reported."""
import base64
import hashlib
import json
import os
import socket
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
    assert 0 <= r["client_idle_s"] <= r["window_s"]
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
    # 100 msg/s for 8 members leaves the client waiting most of the time
    assert 0 < r["client_idle_s"] <= r["window_s"]
    assert r["client_ns_per_delivery"] > 0
    assert "client idle (epoll)" in err


class BrokenFanout:
    """A WebSocket server that sends every connection the same scripted
    messages of publisher 0 (room 0): a duplicate, one out of order, one
    with a damaged body, then answers the close handshake."""

    def __init__(self, script):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.threads = []
        self.t = threading.Thread(target=self.accept, daemon=True)
        self.t.start()

    def accept(self):
        self.sock.settimeout(10)
        try:
            while True:
                c, _ = self.sock.accept()
                t = threading.Thread(target=self.serve, args=(c,), daemon=True)
                t.start()
                self.threads.append(t)
        except OSError:
            pass

    @staticmethod
    def frame(payload, op=1):
        assert len(payload) < 126
        return bytes([0x80 | op, len(payload)]) + payload

    def serve(self, c):
        try:
            c.settimeout(10)
            d = b""
            while b"\r\n\r\n" not in d:
                r = c.recv(4096)
                if not r:
                    return
                d += r
            key = [l.split(b":", 1)[1].strip() for l in d.split(b"\r\n")
                   if l.lower().startswith(b"sec-websocket-key:")][0]
            acc = base64.b64encode(hashlib.sha1(
                key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            c.sendall(b"".join(self.frame(m) for m in self.script))
            # read the client's frames (its publishes, then its close) until the close
            buf = d[d.index(b"\r\n\r\n") + 4:]
            while True:
                while len(buf) < 2:
                    r = c.recv(65536)
                    if not r:
                        return
                    buf += r
                n = buf[1] & 0x7F
                hl = 2 + (2 if n == 126 else 8 if n == 127 else 0) + 4
                while len(buf) < hl:
                    buf += c.recv(65536)
                if n == 126:
                    n = struct.unpack(">H", buf[2:4])[0]
                elif n == 127:
                    n = struct.unpack(">Q", buf[2:10])[0]
                while len(buf) < hl + n:
                    buf += c.recv(65536)
                op = buf[0] & 0x0F
                buf = buf[hl + n:]
                if op == 8:
                    c.sendall(b"\x88\x02\x03\xe8")
                    return
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()
        for t in self.threads:
            t.join(5)


def bench_msg(pub, seq, body=b"x"):
    head = b"RBF:%08x:%016x:%016x;" % (pub, seq, time.monotonic_ns())
    return head + body * (64 - len(head))


def test_fanout_counts_what_a_broken_server_does():
    script = [bench_msg(0, 1), bench_msg(0, 2), bench_msg(0, 2), bench_msg(0, 4),
              bench_msg(0, 3), bench_msg(0, 5, b"y"), bench_msg(7, 1), b"hello"]
    s = BrokenFanout(script)
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
