"""Issue 6: the shard set changes while clients stay connected.

- Spawn mode resized 2 -> 4 -> 3 -> 6 -> 2 (admin API) under continuous
  traffic from 2,000 clients in 200 rooms of the "relay" test class: no
  connection closes, every message reaches every other member of its room
  exactly once and in per-sender order, each room's durable message count is
  exact, and the objects that moved at each step are within 25 % of the ideal
  |dN| / max(N, N').
- Discovery mode (--shard-dir): shards started on their own; one stopped has
  its objects taken over by the others within 2 s, clients still connected;
  one added takes its share.
- Two gateways (one spawning, one following the same socket directory) serve
  members of the same rooms.
"""
import asyncio
import json
import os
import random
import re
import resource
import signal
import subprocess
import time
import urllib.request

import pytest
import websockets

from conftest import BUILD, SANITIZER, SHARD, GATEWAY, Roomd, alive, free_port

MODULE = os.path.join(BUILD, "tests", "modules", "mod_upper.so")
ADMIN = "admin-secret"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def admin(base, method, path):
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": "Bearer " + ADMIN})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(base, name):
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^" + re.escape(name) + r" (\d+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return int(m.group(1))


def relay_count(base, room):
    with urllib.request.urlopen(f"{base}/relay/{room}", timeout=10) as r:
        return int(r.read().decode().strip().split("=")[1])


class Member:
    """One client: sends "<room> <idx> <seq>" now and then, and checks that
    what it receives from each other member arrives once and in order."""

    def __init__(self, room, idx, ws):
        self.room, self.idx, self.ws = room, idx, ws
        self.sent = 0
        self.last = {}           # sender idx -> last seq seen
        self.errors = []
        self.closed = None       # why the server closed it (None: it did not)
        self.we_closed = False

    async def receive(self):
        try:
            async for msg in self.ws:
                room, idx, seq = msg.split()
                idx, seq = int(idx), int(seq)
                if room != self.room or idx == self.idx:
                    self.errors.append(f"{self.room}/{self.idx}: got {msg!r}")
                    continue
                want = self.last.get(idx, -1) + 1
                if seq != want:
                    self.errors.append(f"{self.room}/{self.idx}: from {idx} got {seq}, wanted {want}")
                self.last[idx] = seq
        except websockets.ConnectionClosed as e:
            if not self.we_closed:
                self.closed = f"{e.code} {e.reason}"
        if self.closed is None and not self.we_closed:
            self.closed = "closed"

    async def close(self):
        self.we_closed = True
        await self.ws.close()

    async def send_loop(self, running, period):
        await asyncio.sleep(random.uniform(0, period))
        while running():
            await self.ws.send(f"{self.room} {self.idx} {self.sent}")
            self.sent += 1
            await asyncio.sleep(period * random.uniform(0.8, 1.2))


async def connect_all(url_for, rooms, per_room, batch=100):
    members = []
    specs = [(f"r{r}", i) for r in range(rooms) for i in range(per_room)]
    for k in range(0, len(specs), batch):
        chunk = specs[k:k + batch]
        socks = await asyncio.gather(*[
            websockets.connect(url_for(room, i), compression=None, ping_interval=None, max_queue=None,
                               open_timeout=30) for room, i in chunk])
        members += [Member(room, i, ws) for (room, i), ws in zip(chunk, socks)]
    return members


async def drain_and_check(members, timeout=60):
    """Wait until every member heard every other member's last message."""
    by_room = {}
    for m in members:
        by_room.setdefault(m.room, []).append(m)
    deadline = time.monotonic() + timeout
    while True:
        missing = 0
        for room, ms in by_room.items():
            for m in ms:
                for o in ms:
                    if o is not m and m.last.get(o.idx, -1) != o.sent - 1:
                        missing += 1
        if not missing or time.monotonic() > deadline:
            return missing
        await asyncio.sleep(0.2)


async def round_trip(members):
    """Every member says one thing; wait until everyone heard everyone."""
    for m in members:
        await m.ws.send(f"{m.room} {m.idx} {m.sent}")
        m.sent += 1
    return await drain_and_check(members, timeout=20)


def assert_clean(base, members):
    """No connection closed, nothing lost or out of order, and each room's
    durable count equals what its members sent."""
    closed = [m.closed for m in members if m.closed]
    errors = [e for m in members for e in m.errors]
    assert not closed, closed[:5]
    assert not errors, errors[:5]
    sent = {}
    for m in members:
        sent[m.room] = sent.get(m.room, 0) + m.sent
    for room, n in sent.items():
        assert relay_count(base, room) == n, room


def wait_members(base, n, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, body = admin(base, "GET", "/admin/shards")
        assert st == 200, body
        if body["members"] == n and body["moving"] == 0:
            return body
        time.sleep(0.1)
    raise AssertionError(f"shard set did not settle at {n}: {body}")


def test_resize_under_traffic(tmp_path):
    raise_nofile()
    rooms, per_room = 200, 10
    r = Roomd(tmp_path, shards=2,
              extra=("--module", MODULE, "--admin-key", ADMIN, "--max-per-ip", "0",
                     "--log-level", "info"))
    try:
        async def run():
            members = await connect_all(lambda room, i: f"{r.ws}/relay/{room}", rooms, per_room)
            receivers = [asyncio.ensure_future(m.receive()) for m in members]
            state = {"on": True}
            senders = [asyncio.ensure_future(m.send_loop(lambda: state["on"], 4.0)) for m in members]
            loop = asyncio.get_running_loop()
            await asyncio.sleep(3)
            prev = 2
            report = []
            for n in (4, 3, 6, 2):
                before = await loop.run_in_executor(None, metric, r.http, "roomd_handoffs_total")
                sent_before = [m.sent for m in members]
                st, body = await loop.run_in_executor(None, admin, r.http, "POST", f"/admin/shards?count={n}")
                assert st == 202, body
                await loop.run_in_executor(None, wait_members, r.http, n)
                # Traffic spans the step: every member speaks again after it.
                while any(m.sent <= b for m, b in zip(members, sent_before)):
                    await asyncio.sleep(0.1)
                moved = await loop.run_in_executor(None, metric, r.http, "roomd_handoffs_total") - before
                ideal = abs(n - prev) / max(n, prev) * rooms
                report.append((prev, n, moved, ideal))
                prev = n
            state["on"] = False
            await asyncio.gather(*senders)
            missing = await drain_and_check(members)
            closed = [f"{m.room}/{m.idx}: {m.closed}" for m in members if m.closed]
            errors = [e for m in members for e in m.errors]
            sent = {}
            for m in members:
                sent[m.room] = sent.get(m.room, 0) + m.sent
            for m in members:
                await m.close()
            await asyncio.gather(*receivers)
            return report, missing, closed, errors, sent

        report, missing, closed, errors, sent = asyncio.run(run())
        assert not closed, f"{len(closed)} connections closed during the resizes: {closed[:5]}"
        assert not errors, f"{len(errors)} lost/duplicated/reordered: {errors[:5]}"
        assert missing == 0, f"{missing} (member, sender) pairs still missing messages"
        for prev, n, moved, ideal in report:
            print(f"resize {prev}->{n}: {moved} of {rooms} objects moved, ideal {ideal:.0f}")
            assert abs(moved - ideal) <= 0.25 * ideal, f"{prev}->{n}: {moved} objects moved, ideal {ideal:.0f}"
        for room, n in sent.items():
            assert relay_count(r.http, room) == n, room
        assert metric(r.http, "roomd_handoff_timeouts_total") == 0
        st, body = admin(r.http, "GET", "/admin/shards")
        assert st == 200 and body["members"] == 2
        assert sum(s["connections"] or 0 for s in body["shards"]) == 0
    finally:
        r.stop()


class Shard:
    def __init__(self, name, run_dir, data_dir, log):
        self.name = name
        self.proc = subprocess.Popen(
            [SHARD, "--name", name, "--run-dir", run_dir, "--data-dir", data_dir, "--module", MODULE,
             "--log-level", "info"], stdout=log, stderr=log, start_new_session=True)
        self.sock = os.path.join(run_dir, name + ".sock")
        deadline = time.monotonic() + 20
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None, f"shard {name} exited"
            assert time.monotonic() < deadline, f"shard {name} made no socket"
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)


class Discovery:
    """Shards started on their own, and a gateway following their directory."""

    def __init__(self, tmp, names):
        self.run_dir = os.path.join(str(tmp), "run")
        self.data_dir = os.path.join(str(tmp), "data")
        os.makedirs(self.run_dir)
        self.log_path = os.path.join(str(tmp), "roomd.log")
        self.log = open(self.log_path, "ab")
        self.shards = {n: Shard(n, self.run_dir, self.data_dir, self.log) for n in names}
        self.port = free_port()
        self.gw = subprocess.Popen(
            [GATEWAY, "--shard-dir", self.run_dir, "--listen", f"127.0.0.1:{self.port}",
             "--run-dir", self.run_dir, "--data-dir", self.data_dir, "--admin-key", ADMIN,
             "--max-per-ip", "0", "--log-level", "info"],
            stdout=self.log, stderr=self.log, start_new_session=True)
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if admin(self.http, "GET", "/admin/shards")[1]["members"] == len(names):
                    break
            except OSError:
                pass
            assert self.gw.poll() is None, self.read_log()
            assert time.monotonic() < deadline, self.read_log()[-3000:]
            time.sleep(0.05)

    def read_log(self):
        self.log.flush()
        return open(self.log_path, "rb").read().decode(errors="replace")

    def stop(self):
        self.gw.send_signal(signal.SIGTERM)
        self.gw.wait(timeout=20)
        for s in self.shards.values():
            s.stop()
        self.log.close()
        log = open(self.log_path, "rb").read().decode(errors="replace")
        bad = SANITIZER.search(log)
        assert not bad, log[max(0, bad.start() - 2000):bad.start() + 4000]
        assert self.gw.returncode == 0, log[-3000:]


def owners(base, rooms):
    out = {}
    for room in rooms:
        st, body = admin(base, "GET", f"/admin/objects/relay/{room}")
        assert st == 200, body
        out[room] = body
    return out


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_discovery_takeover(tmp_path, how):
    """A shard that stops (its socket disappears) or is killed (its socket
    stays, refusing) loses its objects to the others within 2 s; a new one
    takes its share. Clients stay connected and keep talking."""
    raise_nofile()
    d = Discovery(tmp_path, ["alpha", "beta", "gamma"])
    try:
        rooms = [f"r{i}" for i in range(30)]

        async def run():
            loop = asyncio.get_running_loop()
            members = await connect_all(lambda room, i: f"{d.ws}/relay/{room}", len(rooms), 3)
            receivers = [asyncio.ensure_future(m.receive()) for m in members]

            assert await round_trip(members) == 0
            before = await loop.run_in_executor(None, owners, d.http, rooms)
            victim = "beta"
            lost = [r for r, o in before.items() if o["owner"] == victim]
            assert lost, "no room on the victim: pick other names"
            t0 = time.monotonic()
            if how == "stopped":
                d.shards[victim].stop(signal.SIGTERM)
                assert not os.path.exists(d.shards[victim].sock)
            else:
                d.shards[victim].stop(signal.SIGKILL)
                assert os.path.exists(d.shards[victim].sock)
            # Taken over: every room answers from a live shard (at once when
            # the socket went away, after --shard-timeout (2 s) when a killed
            # shard left it behind). The time is printed, not asserted (no
            # timing assertions here); the deadline only guards against a hang.
            while True:
                now = await loop.run_in_executor(None, owners, d.http, lost)
                if all(o["owner"] != victim and o["loaded"] and o["connections"] == 3 for o in now.values()):
                    break
                assert time.monotonic() - t0 < 20, now
                await asyncio.sleep(0.05)
            took = time.monotonic() - t0
            assert await round_trip(members) == 0
            # A new shard joins and takes its share of the rooms.
            d.shards["delta"] = Shard("delta", d.run_dir, d.data_dir, d.log)
            await loop.run_in_executor(None, wait_members, d.http, 3)
            after = await loop.run_in_executor(None, owners, d.http, rooms)
            assert any(o["owner"] == "delta" for o in after.values())
            assert await round_trip(members) == 0
            for m in members:
                await m.close()
            await asyncio.gather(*receivers)
            return took, members

        took, members = asyncio.run(run())
        print(f"shard {how}: its rooms answered from other shards {took:.2f} s later")
        assert_clean(d.http, members)
        d.shards.pop("beta")
    finally:
        d.stop()


def test_two_gateways_share_rooms(tmp_path):
    """A second gateway follows the first one's shard sockets: members on
    either gateway hear each other."""
    r = Roomd(tmp_path, shards=3, extra=("--module", MODULE, "--log-level", "info"))
    log = open(os.path.join(str(tmp_path), "gw2.log"), "ab")
    port2 = free_port()
    gw2 = subprocess.Popen(
        [GATEWAY, "--shard-dir", r.run_dir, "--listen", f"127.0.0.1:{port2}", "--data-dir", r.data_dir,
         "--run-dir", r.run_dir, "--name", "second", "--log-level", "info"],
        stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port2}/healthz", timeout=2) as h:
                    if json.loads(h.read())["shards"] and h.status == 200:
                        break
            except (OSError, ValueError):
                pass
            assert time.monotonic() < deadline and gw2.poll() is None
            time.sleep(0.05)

        async def run():
            urls = [r.ws, f"ws://127.0.0.1:{port2}"]
            members = await connect_all(lambda room, i: f"{urls[i % 2]}/relay/{room}", 10, 4)
            receivers = [asyncio.ensure_future(m.receive()) for m in members]
            for _ in range(5):
                for m in members:
                    await m.ws.send(f"{m.room} {m.idx} {m.sent}")
                    m.sent += 1
            missing = await drain_and_check(members, timeout=20)
            errors = [e for m in members for e in m.errors]
            for m in members:
                await m.close()
            await asyncio.gather(*receivers)
            return missing, errors

        missing, errors = asyncio.run(run())
        assert missing == 0 and not errors, errors[:5]
    finally:
        gw2.send_signal(signal.SIGTERM)
        gw2.wait(timeout=20)
        log.close()
        text = open(os.path.join(str(tmp_path), "gw2.log"), "rb").read().decode(errors="replace")
        assert not SANITIZER.search(text), text[-4000:]
        assert gw2.returncode == 0, text[-3000:]
        r.stop()


def test_workers_share_port_and_resize(tmp_path):
    """--workers 2: two gateway processes on one port; members connected to
    either hear each other, and a resize (whichever process takes the
    request) moves both processes' connections without closing any."""
    raise_nofile()
    r = Roomd(tmp_path, shards=2, extra=("--module", MODULE, "--workers", "2", "--admin-key", ADMIN,
                                         "--max-per-ip", "0", "--log-level", "info"))
    try:
        names = set()
        deadline = time.monotonic() + 20
        while len(names) < 2:
            # Ready: this process has both members and its links to them up.
            st, body = admin(r.http, "GET", "/admin/shards")
            if st == 200 and body["members"] == 2 and all(s["up"] for s in body["shards"] if s["member"]):
                names.add(body["gateway"])
            assert time.monotonic() < deadline, f"one process answers every request: {names}"
        assert any(n.endswith("-w1") for n in names), names

        async def run():
            loop = asyncio.get_running_loop()
            members = await connect_all(lambda room, i: f"{r.ws}/relay/{room}", 20, 6)
            receivers = [asyncio.ensure_future(m.receive()) for m in members]

            assert await round_trip(members) == 0
            for n in (4, 3):
                st, body = await loop.run_in_executor(None, admin, r.http, "POST", f"/admin/shards?count={n}")
                assert st == 202, body
                # Both processes settle on the same set.
                deadline = time.monotonic() + 30
                seen = {}
                while len(seen) < 2 or any(v != (n, 0) for v in seen.values()):
                    st, body = await loop.run_in_executor(None, admin, r.http, "GET", "/admin/shards")
                    seen[body["gateway"]] = (body["members"], body["moving"])
                    assert time.monotonic() < deadline, seen
                assert await round_trip(members) == 0
            for m in members:
                await m.close()
            await asyncio.gather(*receivers)
            return members

        members = asyncio.run(run())
        assert_clean(r.http, members)
    finally:
        r.stop()


def test_sighup_applies_config_shard_count(tmp_path):
    """Spawn mode re-reads "shards" from --config on SIGHUP."""
    conf = os.path.join(str(tmp_path), "roomd.conf")
    with open(conf, "w") as f:
        f.write(f"shards = 2\nadmin-key = {ADMIN}\n")
    r = Roomd(tmp_path, shards=2, extra=("--config", conf))
    try:
        wait_members(r.http, 2)
        with open(conf, "w") as f:
            f.write(f"shards = 3\nadmin-key = {ADMIN}\n")
        r.proc.send_signal(signal.SIGHUP)
        body = wait_members(r.http, 3)
        assert sorted(s["name"] for s in body["shards"] if s["member"]) == ["shard-0", "shard-1", "shard-2"]
        # A bad file changes nothing.
        with open(conf, "w") as f:
            f.write("shards = many\n")
        r.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "config reload failed" not in r.read_log():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert wait_members(r.http, 3)["members"] == 3
    finally:
        r.stop()


def test_admin_api_refusals(roomd_admin):
    base = roomd_admin.http
    req = urllib.request.Request(base + "/admin/shards")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 401
    req = urllib.request.Request(base + "/admin/shards", headers={"Authorization": "Bearer nope"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 401 and b"wrong admin key" in e.value.read()
    assert admin(base, "POST", "/admin/shards")[0] == 400
    assert admin(base, "POST", "/admin/shards?count=0")[0] == 400
    assert admin(base, "POST", "/admin/shards?count=999")[0] == 409
    assert admin(base, "DELETE", "/admin/shards")[0] == 405
    assert admin(base, "GET", "/admin/nothing")[0] == 404
    assert admin(base, "GET", "/admin/objects/echo")[0] == 400
    st, body = admin(base, "GET", "/admin/objects/echo/x%20y")
    assert st == 200 and body["object"] == "echo/x y" and body["loaded"] is False
    assert body["owner"] == roomd_admin.route("echo/x y")


@pytest.fixture
def roomd_admin(tmp_path):
    r = Roomd(tmp_path, shards=3, extra=("--admin-key", ADMIN))
    yield r
    r.stop()


def test_alarms_follow_their_objects(tmp_path):
    """Objects with an alarm and no connection at all: when the set shrinks
    3 -> 1 their alarms are handed to the remaining shard before the removed
    ones stop, and each fires exactly once there."""
    r = Roomd(tmp_path, shards=3, extra=("--module", MODULE, "--admin-key", ADMIN))
    try:
        names = [f"a{i}" for i in range(24)]

        async def arm():
            for n in names:
                async with websockets.connect(f"{r.ws}/meta/{n}") as ws:
                    await ws.send("alarm 4000")
                    assert await ws.recv() == "alarm set"

        asyncio.run(arm())
        placed = {n: r.route(f"meta/{n}") for n in names}
        assert len(set(placed.values())) == 3
        st, body = admin(r.http, "POST", "/admin/shards?count=1")
        assert st == 202, body
        # The removed shards stop only once they hold no alarm of another's.
        deadline = time.monotonic() + 30
        while True:
            st, body = admin(r.http, "GET", "/admin/shards")
            gone = [s for s in body["shards"] if s["name"] != "shard-0" and s["up"]]
            if body["members"] == 1 and not gone:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
        assert "offering alarms to their objects' new shards" in r.read_log()

        def fired(n):
            with urllib.request.urlopen(f"{r.http}/meta/{n}", timeout=10) as h:
                return h.read().decode().strip()

        deadline = time.monotonic() + 30
        while any(fired(n) != "alarms=1" for n in names):
            assert time.monotonic() < deadline, {n: fired(n) for n in names}
            time.sleep(0.2)
        time.sleep(1.5)  # a duplicate firing would show as alarms=2
        assert all(fired(n) == "alarms=1" for n in names)
    finally:
        r.stop()
