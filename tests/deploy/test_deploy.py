"""deploy/docker-compose.yml for real: builds the images, brings the stack up
(redis, gateway, shards found by their sockets), connects WebSocket clients
over wss:// on the published port, scales the shards 2 -> 4 and kills one
shard container with the clients connected, and tears everything down.

Docker is set up by docker-env.sh (installs it if missing, starts dockerd if
none answers, makes the local debian:bookworm-slim base): when Docker cannot
be had this test fails, it does not skip. Its own compose project name, image
tag and free loopback ports keep it apart from anything else running.
"""
import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest
import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPOSE_FILE = os.path.join(ROOT, "deploy", "docker-compose.yml")
ENV_SCRIPT = os.path.join(ROOT, "tests", "deploy", "docker-env.sh")
ROOMS = 24
# The runtime image is debian:bookworm-slim (75 MB) plus the runtime
# libraries and two binaries: well under this.
MAX_IMAGE_BYTES = 150 * 1000 * 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, timeout, env=None, check=True):
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


@pytest.fixture(scope="module")
def docker():
    """A Docker engine and the base image; stops the engine if it started it."""
    state = tempfile.mkdtemp(prefix="roomd-docker-")
    p = subprocess.run(["bash", ENV_SCRIPT, "up", state], capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        shutil.rmtree(state, ignore_errors=True)
        pytest.fail(f"Docker is not available: {p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    yield
    p = subprocess.run(["bash", ENV_SCRIPT, "down", state], capture_output=True, text=True, timeout=120)
    shutil.rmtree(state, ignore_errors=True)
    assert p.returncode == 0, p.stderr


class Stack:
    def __init__(self):
        tag = f"test{os.getpid()}"
        self.project = f"roomdtest{os.getpid()}"
        self.http_port = free_port()
        self.https_port = free_port()
        self.images = [f"roomd:{tag}", f"roomd-redis:{tag}"]
        self.env = dict(os.environ, ROOMD_IMAGE_TAG=tag, ROOMD_PUBLISH_ADDR="127.0.0.1",
                        ROOMD_HTTP_PORT=str(self.http_port), ROOMD_HTTPS_PORT=str(self.https_port))
        self.env.pop("DOCKER_BUILDKIT", None)
        self.cmd = ["docker-compose", "-p", self.project, "-f", COMPOSE_FILE]

    def compose(self, *args, timeout=300, check=True):
        return run(self.cmd + list(args), timeout, env=self.env, check=check)

    def shard_containers(self):
        ids = self.compose("ps", "-q", "shard").stdout.split()
        out = {}
        for cid in ids:
            st = run(["docker", "inspect", "-f", "{{.State.Running}} {{.Config.Hostname}}", cid], 30).stdout.split()
            if st[0] == "true":
                out[st[1]] = cid
        return out

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def wait_shards(self, names, timeout=90):
        """/healthz lists exactly these shards, all up, and answers 200."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                status, _, body = self.get("/healthz")
                last = (status, body)
                h = json.loads(body)
                if status == 200 and h["shards"] == {n: "up" for n in names}:
                    return h
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"gateway did not settle on shards {sorted(names)}: last /healthz {last}\n"
                             + self.logs())

    def logs(self):
        p = self.compose("logs", "--no-color", "--tail=40", check=False, timeout=60)
        return p.stdout[-8000:]

    def owner(self, room):
        status, headers, _ = self.get(f"/chat/{room}")
        assert status == 426, (room, status)
        return headers["X-Roomd-Shard"]

    def metric(self, name):
        _, _, body = self.get("/metrics")
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")


@pytest.fixture(scope="module")
def stack(docker):
    s = Stack()
    try:
        yield s
    finally:
        s.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False, timeout=180)
        keep_cache(s)


def keep_cache(s):
    """The next run's build is cached by the layers of this one: keep them
    under fixed tags (the compile stage too, which no image references) and
    prune the roomd layers they superseded, so runs do not pile up images."""
    cache = {s.images[0]: "roomd:deploy-test-cache", s.images[1]: "roomd-redis:deploy-test-cache"}
    built = run(["docker", "build", "-q", "-f", os.path.join(ROOT, "deploy", "Dockerfile"), "--target", "build",
                 "-t", "roomd-build:deploy-test-cache", ROOT], 600, check=False)
    for image, tag in cache.items():
        if run(["docker", "tag", image, tag], 60, check=False).returncode == 0:
            run(["docker", "rmi", image], 60, check=False)
    if built.returncode == 0:
        run(["docker", "image", "prune", "-f", "--filter", "label=io.roomd.image"], 120, check=False)


async def exchange(pairs, phase):
    """Every room: a's message reaches b and b's reaches a (skipping the
    history the chat class replays)."""
    async def one(i, a, b):
        for src, dst, who in ((a, b, "a"), (b, a, "b")):
            msg = f"{phase}:{i}:{who}"
            await src.send(msg)
            while True:
                got = await asyncio.wait_for(dst.recv(), 20)
                if got == msg:
                    break
    await asyncio.gather(*(one(i, a, b) for i, (a, b) in enumerate(pairs)))


def test_compose_scale_and_kill(stack):
    s = stack
    s.compose("build", timeout=900)
    size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", s.images[0]], 30).stdout)
    assert size < MAX_IMAGE_BYTES, f"roomd image is {size} bytes"

    s.compose("up", "-d", "--scale", "shard=2", timeout=300)
    shards = s.shard_containers()
    assert len(shards) == 2, shards
    s.wait_shards(shards)
    assert s.compose("exec", "-T", "gateway", "id", "-u").stdout.strip() == "10001"
    cid = next(iter(shards.values()))
    assert run(["docker", "exec", cid, "id", "-u"], 30).stdout.strip() == "10001"
    # No certificate was mounted: the gateway made a development one.
    cert = s.compose("exec", "-T", "gateway", "cat", "/var/lib/roomd/tls/cert.pem").stdout
    assert "BEGIN CERTIFICATE" in cert

    tls = ssl.create_default_context()
    tls.load_verify_locations(cadata=cert)
    run_id = uuid.uuid4().hex[:8]
    rooms = [f"deploy-{run_id}-{i}" for i in range(ROOMS)]

    async def scenario():
        url = f"wss://localhost:{s.https_port}/chat/"
        pairs = []
        for room in rooms:
            a = await websockets.connect(url + room, ssl=tls)
            b = await websockets.connect(url + room, ssl=tls)
            pairs.append((a, b))
        conns = [c for p in pairs for c in p]
        try:
            await exchange(pairs, "two")
            assert s.metric("roomd_websockets") == 2 * ROOMS
            before = {r: s.owner(r) for r in rooms}
            assert set(before.values()) <= set(shards)

            # Scale 2 -> 4 with every client connected.
            await asyncio.to_thread(s.compose, "up", "-d", "--no-recreate", "--scale", "shard=4")
            four = s.shard_containers()
            assert len(four) == 4 and set(shards) <= set(four), four
            await asyncio.to_thread(s.wait_shards, four)
            after = {r: s.owner(r) for r in rooms}
            moved = [r for r in rooms if after[r] != before[r]]
            print(f"scale 2 -> 4: {len(moved)} of {ROOMS} rooms moved with their clients")
            assert moved, "no room moved to the new shards"
            assert all(after[r] in set(four) - set(shards) for r in moved)
            await exchange(pairs, "four")
            assert not [c for c in conns if c.closed], "a client was disconnected by the scale-up"

            # Kill the shard that owns the first room, with its clients connected.
            victim = after[rooms[0]]
            print(f"killing shard {victim} ({sum(1 for r in rooms if after[r] == victim)} rooms)")
            await asyncio.to_thread(run, ["docker", "kill", four[victim]], 60)
            rest = {n: c for n, c in four.items() if n != victim}
            await asyncio.to_thread(s.wait_shards, rest)
            await exchange(pairs, "three")
            assert not [c for c in conns if c.closed], "a client was disconnected by the shard kill"
            assert all(s.owner(r) in rest for r in rooms)
            assert s.metric("roomd_websockets") == 2 * ROOMS
        finally:
            await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)

    try:
        asyncio.run(scenario())
    except BaseException:
        print(s.logs())
        raise
