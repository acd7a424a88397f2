"""Fixtures that run the real roomd binaries on loopback.

ROOMD_BUILD names the build directory (tests/run.sh sets it to the ASan
build). Every process's stderr is kept in a log file that is scanned for
sanitizer reports when the gateway stops; the gateway must exit 0.
"""
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ROOMD_BUILD", os.path.join(ROOT, "build"))
GATEWAY = os.path.join(BUILD, "gateway", "roomd-gateway")
SHARD = os.path.join(BUILD, "shard", "roomd-shard")

SANITIZER = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory):
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True)
    return cert, key


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Roomd:
    """A gateway in spawn mode with its shards."""

    def __init__(self, tmp, shards=4, extra=(), port=None, tls_port=None):
        self.tmp = str(tmp)
        os.makedirs(self.tmp, exist_ok=True)
        self.port = port or free_port()
        self.tls_port = tls_port or free_port()
        self.cert, self.key = make_cert(self.tmp)
        self.run_dir = os.path.join(self.tmp, "run")
        self.data_dir = os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "roomd.log")
        self.shards = shards
        self.args = [GATEWAY, "--shards", str(shards),
                     "--listen", f"127.0.0.1:{self.port}",
                     "--tls-listen", f"127.0.0.1:{self.tls_port}",
                     "--cert", self.cert, "--key", self.key,
                     "--run-dir", self.run_dir, "--data-dir", self.data_dir,
                     "--log-level", "debug", *extra]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        self.wait_healthy()

    @property
    def ws(self):
        return f"ws://127.0.0.1:{self.port}"

    @property
    def wss(self):
        return f"wss://localhost:{self.tls_port}"

    @property
    def http(self):
        return f"http://127.0.0.1:{self.port}"

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        return ctx

    def health(self):
        try:
            with urllib.request.urlopen(self.http + "/healthz", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return None, ""

    def wait_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.read_log()}")
            status, _ = self.health()
            if status == 200:
                return
            time.sleep(0.05)
        raise RuntimeError(f"roomd not healthy after {timeout}s:\n{self.read_log()[-4000:]}")

    def route(self, key):
        out = subprocess.run([GATEWAY, "--shards", str(self.shards), "--route", key],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def shard_pids(self):
        """name -> pid of the shard processes, from the gateway's log."""
        pids = {}
        for m in re.finditer(r"msg=\"shard started\" shard=(\S+) pid=(\d+)", self.read_log()):
            pids[m.group(1)] = int(m.group(2))
        return pids

    def read_log(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError("gateway did not stop within 20 s of SIGTERM")
        # Spawn mode stops the shards with the gateway.
        for name, pid in self.shard_pids().items():
            assert not alive(pid), f"{name} (pid {pid}) outlived its gateway"
        self.log.close()
        log = open(self.log_path, "rb").read().decode(errors="replace")
        bad = SANITIZER.search(log)
        assert not bad, "sanitizer report in roomd's log:\n" + log[max(0, bad.start() - 2000):bad.start() + 6000]
        assert self.proc.returncode == 0, f"gateway exited with {self.proc.returncode}\n{log[-3000:]}"


@pytest.fixture(scope="module")
def roomd(tmp_path_factory):
    r = Roomd(tmp_path_factory.mktemp("roomd"), extra=("--handshake-timeout", "1s"))
    yield r
    r.stop()
