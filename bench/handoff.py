#!/usr/bin/python3
"""Handoff pause when the shard set changes (issue 6).

Starts a release gateway in spawn mode, holds C connections over R objects
(class relay from the test module, so every object has storage to commit
and release), resizes the shard set through the admin API (2 -> 4 -> 3 ->
6 -> 2 by default) and reads the gateway's roomd_handoff_pause_seconds
histogram: the time from a connection's move starting (reading stops) to the
new shard accepting it. Prints a table and, with --json, one JSON line.

    bench/handoff.py [--build build-rel] [--rooms 200] [--members 10] [--steps 4,3,6,2]
"""
import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KEY = "bench"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(base, path, method="GET"):
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": "Bearer " + KEY})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def histogram(base):
    text = get(base, "/metrics")
    buckets = [(float("inf") if le == "+Inf" else float(le), int(n)) for le, n in
               re.findall(r'^roomd_handoff_pause_seconds_bucket\{le="([^"]+)"\} (\d+)$', text, re.M)]
    total = float(re.search(r"^roomd_handoff_pause_seconds_sum (\S+)$", text, re.M).group(1))
    return buckets, total


def quantile(buckets, q):
    n = buckets[-1][1]
    for le, c in buckets:
        if c >= q * n:
            return le
    return float("inf")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-rel"))
    ap.add_argument("--rooms", type=int, default=200)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--steps", default="4,3,6,2")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = tempfile.mkdtemp(prefix="roomd-handoff-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(tmp, "gw.log"), "wb")
    gw = subprocess.Popen(
        [os.path.join(a.build, "gateway", "roomd-gateway"), "--shards", "2", "--listen", f"127.0.0.1:{port}",
         "--run-dir", os.path.join(tmp, "run"), "--data-dir", os.path.join(tmp, "data"),
         "--module", os.path.join(a.build, "tests", "modules", "mod_upper.so"), "--admin-key", KEY,
         "--max-per-ip", "0", "--log-level", os.environ.get("ROOMD_LOG_LEVEL", "warn")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5) as h:
                    if h.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("gateway did not come up")
            time.sleep(0.05)

        async def run():
            socks = []
            for r in range(a.rooms):
                socks += await asyncio.gather(*[
                    websockets.connect(f"ws://127.0.0.1:{port}/relay/h{r}", compression=None,
                                       ping_interval=None) for _ in range(a.members)])
                # One message per room: the object is loaded and has storage.
                await socks[-1].send("x")
            await asyncio.sleep(0.5)
            loop = asyncio.get_running_loop()
            rows = []
            prev = 2
            for n in [int(x) for x in a.steps.split(",")]:
                b0, s0 = await loop.run_in_executor(None, histogram, base)
                t0 = time.monotonic()
                await loop.run_in_executor(None, get, base, f"/admin/shards?count={n}", "POST")
                while True:
                    st = json.loads(await loop.run_in_executor(None, get, base, "/admin/shards"))
                    if st["members"] == n and st["moving"] == 0:
                        break
                    await asyncio.sleep(0.01)
                settle = time.monotonic() - t0
                await asyncio.sleep(0.3)
                b1, s1 = await loop.run_in_executor(None, histogram, base)
                step = [(le, c1 - c0) for (le, c1), (_, c0) in zip(b1, b0)]
                moved = step[-1][1]
                rows.append({"from": prev, "to": n, "moved_conns": moved,
                             "p50_le_ms": quantile(step, 0.5) * 1000, "p99_le_ms": quantile(step, 0.99) * 1000,
                             "mean_ms": (s1 - s0) / moved * 1000 if moved else 0, "settle_s": settle})
                prev = n
            for s in socks:
                await s.close()
            return rows

        rows = asyncio.run(run())
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(timeout=30)
        if not os.environ.get("ROOMD_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'step':>8} {'moved conns':>12} {'pause p50 <=':>13} {'p99 <=':>8} {'mean':>8} {'set settled':>12}",
          file=sys.stderr if a.json else sys.stdout)
    for r in rows:
        print(f"{r['from']:>3} -> {r['to']:<2} {r['moved_conns']:>12} {r['p50_le_ms']:>10.0f} ms {r['p99_le_ms']:>5.0f} ms "
              f"{r['mean_ms']:>5.2f} ms {r['settle_s']:>10.3f} s", file=sys.stderr if a.json else sys.stdout)
    if a.json:
        print(json.dumps({"scenario": "handoff", "rooms": a.rooms, "members": a.members, "steps": rows}))


if __name__ == "__main__":
    main()
