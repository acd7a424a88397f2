"""/metrics read the way Prometheus reads it: Debian's prometheus_client text
parser takes the whole page, every family has a type, histograms are
consistent, and the counters move by what the test did (messages,
handshakes and their failures by reason, TLS failures, request latency,
and the shards' objects, commits, message handling and federation lag that
the gateway learns from their PONGs)."""
import asyncio
import json
import socket
import time
import urllib.request
import uuid

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from conftest import Roomd
from rawws import http_raw
from test_federation import RedisServer


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    rds = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        r = Roomd(tmp_path_factory.mktemp("roomd"), shards=2,
                  extra=("--redis", rds.url, "--hibernate-after", "1s",
                         "--allowed-origins", "https://ok.example"))
    except BaseException:
        rds.stop()
        raise
    yield r
    try:
        r.stop()
    finally:
        rds.stop()


def scrape(r):
    with urllib.request.urlopen(r.http + "/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    families = list(text_string_to_metric_families(text))
    return families, Samples(families)


class Samples:
    def __init__(self, families):
        self.s = [(s.name, s.labels, s.value) for f in families for s in f.samples]

    def get(self, name, **labels):
        found = [v for n, l, v in self.s if n == name and l == labels]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
        return found[0]

    def sum(self, name, **labels):
        """Over every sample of name whose labels include these."""
        return sum(v for n, l, v in self.s if n == name and labels.items() <= l.items())


def wait_for(r, what, timeout=15):
    """Shard statistics arrive with the next PONG (the gateway pings every
    second): poll, bounded."""
    deadline = time.monotonic() + timeout
    while True:
        _, s = scrape(r)
        if what(s):
            return s
        assert time.monotonic() < deadline, "condition never reached /metrics"
        time.sleep(0.2)


def test_parses_with_types_and_consistent_histograms(env):
    families, s = scrape(env)
    names = {f.name: f.type for f in families}
    assert all(t in ("counter", "gauge", "histogram") for t in names.values()), names
    # prometheus_client names counter families without _total.
    for name, kind in [("roomd_messages", "counter"), ("roomd_handshake_failures", "counter"),
                       ("roomd_dropped_messages", "counter"), ("roomd_shard_objects", "gauge"),
                       ("roomd_shard_request_seconds", "histogram"),
                       ("roomd_shard_commit_seconds", "histogram"),
                       ("roomd_shard_message_seconds", "histogram"),
                       ("roomd_federation_lag_seconds", "histogram"), ("roomd_shard_up", "gauge")]:
        assert names.get(name) == kind, (name, names.get(name))
    for f in families:
        if f.type != "histogram":
            continue
        series = {}
        for smp in f.samples:
            key = tuple(sorted((k, v) for k, v in smp.labels.items() if k != "le"))
            series.setdefault(key, {})[smp.name[len(f.name):] + smp.labels.get("le", "")] = smp.value
        for key, v in series.items():
            buckets = [(float(k[len("_bucket"):]), c) for k, c in v.items() if k.startswith("_bucket")]
            buckets.sort()
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), (f.name, key, buckets)
            assert buckets[-1][0] == float("inf") and counts[-1] == v["_count"], (f.name, key)


def test_messages_handshakes_and_latency(env):
    _, before = scrape(env)

    async def echo():
        async with websockets.connect(env.wss + "/echo/metrics", ssl=env.ssl_context()) as ws:
            for i in range(5):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"[Durable Object]: m{i}"
    asyncio.run(asyncio.wait_for(echo(), 30))
    with urllib.request.urlopen(env.http + "/counter/metrics-http", timeout=5) as resp:
        assert resp.status == 200
    _, after = scrape(env)

    def d(name, **labels):
        return after.get(name, **labels) - before.get(name, **labels)
    assert d("roomd_messages_total", direction="in") == 5
    assert d("roomd_messages_total", direction="out") == 5
    assert d("roomd_handshakes_total", result="ok") == 1
    assert d("roomd_handshakes_total", result="failed") == 0
    assert d("roomd_shard_request_seconds_count", kind="open") == 1
    assert d("roomd_shard_request_seconds_count", kind="http") == 1
    assert d("roomd_shard_request_seconds_sum", kind="http") > 0


UPGRADE = ("GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\n{extra}\r\n")
KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"


def test_handshake_failures_by_reason(env):
    _, before = scrape(env)
    cases = [
        ("bad_request", "/echo/x", "", 400),                                    # no key
        ("unknown_class", "/nosuchclass/x", KEY, 404),
        ("origin", "/echo/x", KEY + "Origin: https://evil.example\r\n", 403),
    ]
    for _, path, extra, status in cases:
        got, head, _ = http_raw("127.0.0.1", env.port, UPGRADE.format(path=path, extra=extra).encode())
        assert got == status, head
    # Not TLS at all on the TLS port.
    with socket.create_connection(("127.0.0.1", env.tls_port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        try:
            while sock.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
    _, after = scrape(env)
    for reason, _, _, _ in cases:
        got = (after.get("roomd_handshake_failures_total", reason=reason)
               - before.get("roomd_handshake_failures_total", reason=reason))
        assert got == 1, (reason, got)
    assert (after.get("roomd_handshakes_total", result="failed")
            - before.get("roomd_handshakes_total", result="failed")) == len(cases)
    assert (after.get("roomd_tls_handshake_failures_total")
            - before.get("roomd_tls_handshake_failures_total")) == 1


def test_shard_objects_commits_and_federation_lag(env):
    _, before = scrape(env)
    room = f"metrics-{uuid.uuid4().hex[:8]}"

    async def go():
        async with websockets.connect(env.ws + f"/counter/{room}") as c, \
                websockets.connect(env.ws + f"/chat/{room}") as a, \
                websockets.connect(env.ws + f"/chat/{room}") as b:
            for _ in range(3):
                await c.send(json.dumps({"op": "increment"}))
                await c.recv()
            await a.send("hello")
            assert await b.recv() == "hello"
            # Both objects are live; the gateway hears of it within a PONG.
            await asyncio.to_thread(wait_for, env, lambda s: s.sum("roomd_shard_objects", state="live") >= 2)
            # Idle past --hibernate-after (1 s) with connections kept: hibernated.
            await asyncio.to_thread(wait_for, env,
                                    lambda s: s.sum("roomd_shard_objects", state="hibernated") >= 2)
    asyncio.run(asyncio.wait_for(go(), 60))

    def grew(name, by):
        return lambda s: s.sum(name) - before.sum(name) >= by
    # Three durable increments, each its own commit (chat's history write too).
    wait_for(env, grew("roomd_shard_commit_seconds_count", 4))
    # Every client message ran its object's callback on its shard.
    wait_for(env, grew("roomd_shard_message_seconds_count", 4))
    # chat's broadcast went through Redis and came back: one lag sample.
    s = wait_for(env, grew("roomd_federation_lag_seconds_count", 1))
    assert s.sum("roomd_federation_lag_seconds_sum") > 0
    assert all(v == 1 for n, _, v in s.s if n == "roomd_federation_state")
