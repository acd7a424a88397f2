"""Federation through Redis (DESIGN §7): two cells (two gateways in spawn
mode, each with its own shards, run dir and data dir) share one real
redis-server started here on loopback."""
import asyncio
import base64
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid

import msgpack
import pytest
import redis
import websockets

from conftest import BUILD, GATEWAY, SHARD, Roomd, alive, free_port

MODULE = os.path.join(BUILD, "tests", "modules", "mod_upper.so")


class RedisServer:
    def __init__(self, tmp, password=None):
        self.exe = shutil.which("redis-server")
        if not self.exe:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.tmp = str(tmp)
        os.makedirs(self.tmp, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.proc = None
        self.log = open(os.path.join(self.tmp, "redis.log"), "ab")
        self.start()

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=5)

    def start(self):
        args = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.tmp]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except redis.exceptions.ConnectionError:
                pass
            assert self.proc.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
            time.sleep(0.05)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def wait_subscribers(self, channel, n, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            got = dict(self.client().pubsub_numsub(channel)).get(channel.encode(), 0)
            if got == n:
                return
            assert time.monotonic() < deadline, f"{channel}: {got} subscribers, not {n}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def rds(tmp_path_factory):
    r = RedisServer(tmp_path_factory.mktemp("redis"))
    yield r
    r.stop()


@pytest.fixture(scope="module")
def cells(tmp_path_factory, rds):
    extra = ("--redis", rds.url, "--module", MODULE)
    a = Roomd(tmp_path_factory.mktemp("cell-a"), extra=extra)
    try:
        b = Roomd(tmp_path_factory.mktemp("cell-b"), extra=extra)
    except BaseException:
        a.stop()
        raise
    yield a, b
    try:
        a.stop()
    finally:
        b.stop()


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def fresh_room():
    return "chat/fed-" + uuid.uuid4().hex[:12]


async def join(cell, room, n):
    return await asyncio.gather(*(websockets.connect(f"{cell.ws}/{room}", max_size=None,
                                                     open_timeout=20) for _ in range(n)))


async def close_all(conns):
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


async def recv_n(ws, n, timeout=30):
    out = []
    while len(out) < n:
        out.append(await asyncio.wait_for(ws.recv(), timeout))
    return out


async def expect_silence(ws, seconds=0.3):
    try:
        extra = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected extra message {extra!r}")


def assert_processes_alive(cell):
    assert cell.proc.poll() is None, "gateway exited"
    log = cell.read_log()
    assert "shard died" not in log and "shard exited" not in log, "a shard restarted"
    for name, pid in cell.shard_pids().items():
        assert alive(pid), f"{name} is gone"


def test_every_member_in_both_cells_gets_every_message_once_in_order(cells, rds):
    a, b = cells
    room = fresh_room()
    per_cell, per_sender = 100, 3
    members = 2 * per_cell

    async def main():
        conns = await join(a, room, per_cell) + await join(b, room, per_cell)
        try:
            # Both cells' owning shards hold the room's channel before anyone speaks.
            await asyncio.to_thread(rds.wait_subscribers, f"roomd:o:{room}", 2)
            expected = (members - 1) * per_sender
            readers = [asyncio.create_task(recv_n(ws, expected, 60)) for ws in conns]
            for i in range(per_sender):
                await asyncio.gather(*(ws.send(f"m {k} {i}") for k, ws in enumerate(conns)))
            got = await asyncio.gather(*readers)
            for k, msgs in enumerate(got):
                seen = {}
                for m in msgs:
                    _, sender, i = m.split()
                    sender, i = int(sender), int(i)
                    assert sender != k, f"member {k} got its own message"
                    seen.setdefault(sender, []).append(i)
                assert len(seen) == members - 1
                for sender, idx in seen.items():
                    assert idx == list(range(per_sender)), \
                        f"member {k} got {idx} from {sender}: not exactly once in order"
            await expect_silence(conns[0])
            await expect_silence(conns[-1])
        finally:
            await close_all(conns)
    run(main())


def publish_calls(rds):
    return rds.client().info("commandstats").get("cmdstat_publish", {}).get("calls", 0)


def test_one_publish_per_broadcast_per_cell_whatever_the_number_of_recipients(cells, rds):
    a, b = cells
    room = fresh_room()
    per_cell, from_a, from_b = 30, 10, 5

    async def main():
        ca = await join(a, room, per_cell)
        cb = await join(b, room, per_cell)
        try:
            await asyncio.to_thread(rds.wait_subscribers, f"roomd:o:{room}", 2)
            before = await asyncio.to_thread(publish_calls, rds)
            for i in range(from_a):
                await ca[0].send(f"a {i}")
            for i in range(from_b):
                await cb[0].send(f"b {i}")
            others = ca[1:] + cb[1:]
            got = await asyncio.gather(*(recv_n(ws, from_a + from_b, 30) for ws in others))
            for msgs in got:
                assert sorted(msgs) == sorted([f"a {i}" for i in range(from_a)] +
                                              [f"b {i}" for i in range(from_b)])
            assert await recv_n(ca[0], from_b) == [f"b {i}" for i in range(from_b)]
            assert await recv_n(cb[0], from_a) == [f"a {i}" for i in range(from_a)]
            after = await asyncio.to_thread(publish_calls, rds)
            # 59 recipients each, yet one PUBLISH per broadcast, by its own
            # cell only (what arrives from Redis is not published again).
            assert after - before == from_a + from_b
        finally:
            await close_all(ca + cb)
    run(main())


def test_backend_publishes_json_and_msgpack_to_every_member(cells, rds):
    a, b = cells
    room = fresh_room()
    channel = f"roomd:o:{room}"
    envelopes = [
        (json.dumps({"type": "text", "data": "json text ü"}), "json text ü"),
        (json.dumps({"type": "binary", "data": base64.b64encode(b"\x00\x01json").decode()}),
         b"\x00\x01json"),
        (msgpack.packb({"type": "text", "data": "msgpack text"}), "msgpack text"),
        (msgpack.packb({"type": "binary", "data": b"\xffmsgpack"}, use_bin_type=True),
         b"\xffmsgpack"),
    ]

    async def main():
        conns = await join(a, room, 5) + await join(b, room, 5)
        try:
            await asyncio.to_thread(rds.wait_subscribers, channel, 2)
            r = rds.client()
            # Not envelopes: counted as bad and dropped, nothing reaches members.
            r.publish(channel, b"garbage")
            r.publish(channel, json.dumps({"type": "text", "data": 5}))
            for env, _ in envelopes:
                assert r.publish(channel, env) == 2  # one subscriber per cell
            for ws in conns:
                got = await recv_n(ws, len(envelopes), 20)
                assert got == [want for _, want in envelopes]
            await expect_silence(conns[0])
        finally:
            await close_all(conns)
    run(main())
    assert "bad federation envelope" in a.read_log() + b.read_log()


def gap_total(cell, room):
    total = 0
    for m in re.finditer(r'msg="federation gap" object=(\S+) origin=\S+ missing=(\d+)', cell.read_log()):
        if m.group(1) == room:
            total += int(m.group(2))
    return total


def test_redis_outage_keeps_cells_running_and_counts_the_loss(cells, rds):
    a, b = cells
    room = fresh_room()
    channel = f"roomd:o:{room}"
    n = 5  # members per cell; member 0 of each cell is its sender

    async def main():
        ca = await join(a, room, n)
        cb = await join(b, room, n)
        received = {id(ws): [] for ws in ca + cb}
        stop_reading = asyncio.Event()

        async def reader(ws):
            while not stop_reading.is_set():
                try:
                    m = await asyncio.wait_for(ws.recv(), 0.2)
                except asyncio.TimeoutError:
                    continue
                received[id(ws)].append(m)

        readers = [asyncio.create_task(reader(ws)) for ws in ca + cb]
        sent = {"A": 0, "B": 0}
        sending = asyncio.Event()
        sending.set()

        async def sender(tag, ws):
            while sending.is_set():
                await ws.send(f"{tag} {sent[tag]}")
                sent[tag] += 1
                await asyncio.sleep(0.02)

        def got_from(ws, tag):
            return [int(m.split()[1]) for m in received[id(ws)] if m.split()[0] == tag]

        async def until(cond, what, timeout):
            deadline = time.monotonic() + timeout
            while not cond():
                assert time.monotonic() < deadline, what
                await asyncio.sleep(0.05)

        try:
            await asyncio.to_thread(rds.wait_subscribers, channel, 2)
            senders = [asyncio.create_task(sender("A", ca[0])), asyncio.create_task(sender("B", cb[0]))]
            await until(lambda: len(got_from(cb[1], "A")) >= 10 and len(got_from(ca[1], "B")) >= 10,
                        "cross-cell delivery before the outage", 20)
            # Every shard reports its Redis link with its next answer to the
            # gateway's once-a-second ping: ok before the outage.
            await until(lambda: '"federation":"ok"' in a.health()[1], "healthz not ok before the outage", 20)
            rds.kill()
            killed_at = dict(sent)
            # /healthz says so while Redis is gone (the gateway asks its shards each second).
            await until(lambda: '"federation":"degraded"' in a.health()[1], "healthz never degraded", 20)
            assert a.health()[0] == 503
            await asyncio.sleep(5)
            # In-cell delivery went on while Redis was down.
            assert max(got_from(ca[1], "A"), default=-1) > killed_at["A"] + 5
            assert max(got_from(cb[1], "B"), default=-1) > killed_at["B"] + 5
            await asyncio.to_thread(rds.start)
            back_at = dict(sent)
            # Cross-cell delivery resumes by itself (bounded wait, no timing claim).
            await until(lambda: max(got_from(cb[1], "A"), default=-1) > back_at["A"] and
                        max(got_from(ca[1], "B"), default=-1) > back_at["B"],
                        "cross-cell delivery did not resume after Redis came back", 30)
            await until(lambda: '"federation":"ok"' in a.health()[1], "healthz never recovered", 30)
            await asyncio.sleep(0.5)
            sending.clear()
            await asyncio.gather(*senders)
            final = dict(sent)
            # Wait for what is still on its way: every in-cell message, and
            # cross-cell up to the last one sent.
            await until(lambda: all(got_from(ws, "A") and got_from(ws, "A")[-1] == final["A"] - 1
                                    for ws in ca[1:] + cb) and
                        all(got_from(ws, "B") and got_from(ws, "B")[-1] == final["B"] - 1
                            for ws in cb[1:] + ca),
                        "the last messages did not arrive", 30)
        finally:
            stop_reading.set()
            await asyncio.gather(*readers, return_exceptions=True)
            await close_all(ca + cb)

        missing = {}
        for tag, local, remote in (("A", ca, cb), ("B", cb, ca)):
            for ws in local[1:]:
                assert got_from(ws, tag) == list(range(final[tag])), "in-cell loss or reordering"
            sets = []
            for ws in remote:
                idx = got_from(ws, tag)
                assert idx == sorted(set(idx)), "cross-cell duplicates or reordering"
                sets.append(set(range(final[tag])) - set(idx))
            assert all(s == sets[0] for s in sets), "members of one cell missed different messages"
            missing[tag] = len(sets[0])
        return missing

    missing = run(main(), timeout=180)
    assert_processes_alive(a)
    assert_processes_alive(b)
    assert missing["A"] > 0 and missing["B"] > 0, "a 5 s outage lost nothing?"
    # The receiving cell's gap counter names exactly what it did not get.
    assert gap_total(b, room) == missing["A"]
    assert gap_total(a, room) == missing["B"]
    log = a.read_log()
    assert 'msg="redis disconnected"' in log and 'msg="redis resubscribed"' in log
    assert "federation publish dropped" in log
    # /metrics says the same (the gateway learns it from its shards' PONGs,
    # at most a second old: wait for it, bounded).
    import re
    import urllib.request

    def fed_metric(r, name):
        with urllib.request.urlopen(r.http + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return sum(int(v) for v in re.findall(r"^%s\{shard=\"[^\"]+\"\} (\d+)$" % name, text, re.M))
    deadline = time.monotonic() + 20
    while fed_metric(b, "roomd_federation_gaps_total") < missing["A"]:
        assert time.monotonic() < deadline, "gaps never reached /metrics"
        time.sleep(0.2)
    assert fed_metric(b, "roomd_federation_gaps_total") == missing["A"]
    assert fed_metric(a, "roomd_federation_dropped_total") > 0
    assert fed_metric(a, "roomd_federation_published_total") > 0
    assert fed_metric(b, "roomd_federation_received_total") > 0


def test_password_redis_and_wrong_password(tmp_path):
    rds = RedisServer(tmp_path / "redis", password="s3cret pass")
    try:
        wrong = f"redis://:nope@127.0.0.1:{rds.port}"
        out = subprocess.run([SHARD, "--name", "s", "--run-dir", str(tmp_path / "run"),
                              "--data-dir", str(tmp_path / "data"), "--redis", wrong],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode != 0
        assert "refused the password" in out.stderr, out.stderr
        # The gateway checks it too: a wrong password is a startup error.
        gw = subprocess.run([GATEWAY, "--shards", "1", "--listen", "127.0.0.1:0", "--run-dir",
                             str(tmp_path / "run-gw"), "--redis", wrong, "--check-config"],
                            capture_output=True, text=True, timeout=20)
        assert gw.returncode == 2 and "refused the password" in gw.stderr, gw.stderr
        nopass = subprocess.run([GATEWAY, "--redis", f"redis://127.0.0.1:{rds.port}", "--check-config"],
                                capture_output=True, text=True, timeout=20)
        assert nopass.returncode == 2 and "requires a password" in nopass.stderr, nopass.stderr
        ok = subprocess.run([GATEWAY, "--redis", rds.url, "--check-config"], capture_output=True,
                            text=True, timeout=20)
        assert ok.returncode == 0, ok.stderr

        a = Roomd(tmp_path / "a", shards=1, extra=("--redis", rds.url))
        try:
            b = Roomd(tmp_path / "b", shards=1, extra=("--redis", rds.url))
            try:
                room = fresh_room()

                async def main():
                    x, = await join(a, room, 1)
                    y, = await join(b, room, 1)
                    await asyncio.to_thread(rds.wait_subscribers, f"roomd:o:{room}", 2)
                    await x.send("over the password")
                    assert await asyncio.wait_for(y.recv(), 20) == "over the password"
                    await close_all([x, y])
                run(main())
                # The password reaches the shards through the environment, not argv.
                for pid in b.shard_pids().values():
                    with open(f"/proc/{pid}/cmdline") as f:
                        assert rds.password not in f.read()
            finally:
                b.stop()
        finally:
            a.stop()
    finally:
        rds.stop()


# --- federate ---------------------------------------------------------------

def name_where(cell, want, prefix="fed/"):
    """A fresh key whose shard in cell satisfies want(shard name)."""
    for _ in range(1000):
        key = prefix + uuid.uuid4().hex[:10]
        if want(cell.route(key)):
            return key
    raise AssertionError("no key found for the wanted shard")


def parse_result(text):
    """"result id=N k=status:holders ..." -> (N, {k: (status, holders)})"""
    words = text.split()
    assert words[0] == "result", text
    out = {}
    for w in words[2:]:
        k, _, v = w.rpartition("=")
        st, h = v.split(":")
        out[k] = (int(st), int(h))
    return int(words[1][3:]), out


async def federate(ws, command):
    await ws.send(command)
    ack = await asyncio.wait_for(ws.recv(), 20)
    assert ack.startswith("id "), ack
    res = await asyncio.wait_for(ws.recv(), 20)
    rid, results = parse_result(res)
    assert rid == int(ack.split()[1])
    return results


def test_federate_reaches_objects_on_other_shards_and_cells_and_reports_unreachable(cells, rds):
    a, b = cells
    sender = name_where(a, lambda s: True)
    home = a.route(sender)
    same = name_where(a, lambda s: s == home)        # the sender's shard
    other = name_where(a, lambda s: s != home)       # another shard of cell A
    remote = name_where(b, lambda s: True)           # held by cell B only
    both = name_where(a, lambda s: True)             # members in both cells
    nowhere = name_where(a, lambda s: True)          # held by nobody
    errno_of = {same: 0, other: 0, remote: 0, both: 0, nowhere: -errno.EHOSTUNREACH,
                "upper/x": -errno.EOPNOTSUPP, "nosuch/x": -errno.ENOENT, "noslash": -errno.EINVAL}
    holders = {same: 1, other: 1, remote: 1, both: 2}

    async def main():
        s, = await join(a, sender, 1)
        m_same, = await join(a, same, 1)
        m_other, = await join(a, other, 1)
        m_remote, = await join(b, remote, 1)
        m_both = await join(a, both, 1) + await join(b, both, 1)
        members = [m_same, m_other, m_remote] + m_both
        try:
            for key, n in ((same, 1), (other, 1), (remote, 1), (both, 2)):
                await asyncio.to_thread(rds.wait_subscribers, f"roomd:o:{key}", n)
            results = await federate(s, "fed " + ",".join(errno_of) + " hello there")
            assert list(results) == list(errno_of), "one result per key, in order"
            for key, want in errno_of.items():
                assert results[key] == (want, holders.get(key, 0)), (key, results[key])
            # Every live instance's handler ran once, wherever it lives.
            for ws in members:
                assert await asyncio.wait_for(ws.recv(), 20) == f"got from={sender} hello there"
                await expect_silence(ws, 0.2)
            await expect_silence(s, 0.2)

            # federateWithFilter: keys the filter refuses are not sent.
            results = await federate(s, f"fedf {remote} {same},{remote} filtered")
            assert results == {same: (-errno.ECANCELED, 0), remote: (0, 1)}
            assert await asyncio.wait_for(m_remote.recv(), 20) == f"got from={sender} filtered"
            await expect_silence(m_same, 0.3)

            # A backend can federate through Redis too (JSON envelope).
            env = json.dumps({"type": "federate", "from": "backend", "data": "from a backend"})
            assert rds.client().publish(f"roomd:o:{remote}", env) == 1
            assert await asyncio.wait_for(m_remote.recv(), 20) == "got from=backend from a backend"

            # From an object without members (over HTTP): it is evicted when
            # the request is over, and built again for its results.
            caller = name_where(a, lambda s: True)
            body = f"{remote},{nowhere} via http".encode()
            req = urllib.request.Request(a.http + "/" + caller, data=body, method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 202
            assert await asyncio.wait_for(m_remote.recv(), 20) == f"got from={caller} via http"
            deadline = time.monotonic() + 20
            while True:
                with urllib.request.urlopen(a.http + "/" + caller, timeout=10) as resp:
                    last = resp.read().decode()
                if last:
                    break
                assert time.monotonic() < deadline, "the results never reached the caller"
                await asyncio.sleep(0.1)
            _, results = parse_result(last)
            assert results == {remote: (0, 1), nowhere: (-errno.EHOSTUNREACH, 0)}
        finally:
            await close_all([s] + members)
    run(main())


def test_federate_without_redis_reaches_this_shard_only_and_wakes_hibernated_objects(tmp_path):
    r = Roomd(tmp_path, shards=2, extra=("--module", MODULE, "--hibernate-after", "300ms"))
    try:
        sender = name_where(r, lambda s: True)
        home = r.route(sender)
        same = name_where(r, lambda s: s == home)
        other = name_where(r, lambda s: s != home)
        absent = name_where(r, lambda s: s == home)

        async def main():
            s, = await join(r, sender, 1)
            m_same, = await join(r, same, 1)
            m_other, = await join(r, other, 1)
            try:
                deadline = time.monotonic() + 20
                while f'msg="object hibernated" object={same} ' not in r.read_log():
                    assert time.monotonic() < deadline, "the target never hibernated"
                    await asyncio.sleep(0.05)
                results = await federate(s, f"fed {same},{other},{absent} no redis")
                assert results == {same: (0, 1), other: (-errno.ENETUNREACH, 0),
                                   absent: (-errno.ENETUNREACH, 0)}
                assert await asyncio.wait_for(m_same.recv(), 20) == f"got from={sender} no redis"
                await expect_silence(m_other, 0.3)
                assert f'msg="object woke" object={same}' in r.read_log()
                # A call without keys is refused as a whole.
                await s.send("fed  ")
                assert await asyncio.wait_for(s.recv(), 20) == f"err {-errno.EINVAL}"
            finally:
                await close_all([s, m_same, m_other])
        run(main())
    finally:
        r.stop()


def fed_metric(cell, name):
    with urllib.request.urlopen(cell.http + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(int(v) for v in re.findall(r"^%s\{shard=\"[^\"]+\"\} (\d+)$" % name, text, re.M))


def test_hung_redis_is_detected_counted_and_recovered(cells, rds):
    """A Redis that keeps its connections but answers nothing (SIGSTOP):
    the reply deadline finds it, /healthz degrades, federate reports it, and
    everything comes back once Redis answers again."""
    a, b = cells
    room = fresh_room()
    remote = name_where(b, lambda s: True)
    sender = name_where(a, lambda s: True)
    hangs_before = fed_metric(a, "roomd_federation_hangs_total")

    async def until(cond, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(cond):
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.05)

    async def main():
        ca = await join(a, room, 2)
        cb, = await join(b, room, 1)
        s, = await join(a, sender, 1)
        m_remote, = await join(b, remote, 1)
        try:
            await asyncio.to_thread(rds.wait_subscribers, f"roomd:o:{room}", 2)
            await asyncio.to_thread(rds.wait_subscribers, f"roomd:o:{remote}", 1)
            await ca[0].send("before")
            assert await asyncio.wait_for(cb.recv(), 20) == "before"
            assert await asyncio.wait_for(ca[1].recv(), 20) == "before"
            rds.proc.send_signal(signal.SIGSTOP)
            try:
                await until(lambda: '"federation":"degraded"' in a.health()[1] and
                            '"federation":"degraded"' in b.health()[1],
                            "a hung Redis was never reported on /healthz")
                assert 'msg="redis not answering; reconnecting"' in a.read_log()
                # In-cell delivery does not wait for Redis.
                await ca[0].send("during")
                assert await asyncio.wait_for(ca[1].recv(), 20) == "during"
                # federate says why the other cell was not reached.
                results = await federate(s, f"fed {remote} hung")
                assert results == {remote: (-errno.ENOTCONN, 0)}
            finally:
                rds.proc.send_signal(signal.SIGCONT)
            await until(lambda: '"federation":"ok"' in a.health()[1] and '"federation":"ok"' in b.health()[1],
                        "federation never recovered after Redis answered again")
            await ca[0].send("after")
            # What was said during the hang may or may not have crossed (it was
            # queued to a Redis that was not answering); "after" must.
            got = []
            while "after" not in got:
                got.append(await asyncio.wait_for(cb.recv(), 20))
            assert set(got) <= {"during", "after"}
            assert await asyncio.wait_for(ca[1].recv(), 20) == "after"
            results = await federate(s, f"fed {remote} back")
            assert results == {remote: (0, 1)}
            # The call made during the hang had its PUBLISH written to a Redis
            # that was stopped, not refused: Redis may still run it when it
            # resumes (-ENOTCONN means "not confirmed", not "not delivered").
            got = []
            while f"got from={sender} back" not in got:
                got.append(await asyncio.wait_for(m_remote.recv(), 20))
            assert set(got) <= {f"got from={sender} hung", f"got from={sender} back"}, got
        finally:
            await close_all(ca + [cb, s, m_remote])
    run(main(), timeout=180)
    assert_processes_alive(a)
    assert_processes_alive(b)
    log = a.read_log()
    assert 'msg="redis resubscribed"' in log[log.rindex('msg="redis not answering; reconnecting"'):]
    deadline = time.monotonic() + 20
    while fed_metric(a, "roomd_federation_hangs_total") <= hangs_before:
        assert time.monotonic() < deadline, "hangs never reached /metrics"
        time.sleep(0.2)
