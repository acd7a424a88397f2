#!/usr/bin/python3
"""Idle connection cost: RSS of the roomd process tree (gateway + shards)
per idle WebSocket connection (or of any server's process tree: --gateway-pid
is the root of the tree, e.g. a peer's PID).

  bench/idle_rss.py --gateway-pid PID --url ws://127.0.0.1:8080 --conns 15000 [--cafile cert.pem]
                    [--path /echo/idle]

Opens --conns WebSockets to <--path>-<i % 100> (wss:// with --cafile),
lets them settle, and prints the RSS before, after and the difference per
connection as one JSON line. Uses Debian's python3-websockets."""
import argparse
import asyncio
import json
import os
import resource
import ssl
import sys
import time

import websockets


def tree_pids(root):
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return pids


def rss_kib(pids):
    total = 0
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def main(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.create_default_context(cafile=a.cafile) if a.cafile else None
    pids = tree_pids(a.gateway_pid)
    before = rss_kib(pids)
    conns, sem = [], asyncio.Semaphore(200)
    deadline = time.monotonic() + a.timeout

    async def one(i):
        async with sem:
            ws = await websockets.connect(f"{a.url}{a.path}-{i % 100}", ssl=ctx,
                                          ping_interval=None, compression=None)
            conns.append(ws)
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(a.conns))),
                           max(1, deadline - time.monotonic()))
    await asyncio.sleep(a.settle)
    after = rss_kib(pids)
    print(json.dumps({"conns": len(conns), "tls": bool(ctx), "rss_before_kib": before,
                      "rss_after_kib": after,
                      "bytes_per_conn": round((after - before) * 1024 / len(conns))}))
    for ws in conns:
        ws.transport.abort()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gateway-pid", type=int, required=True)
    p.add_argument("--url", required=True, help="ws://HOST:PORT or wss://HOST:PORT")
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--cafile")
    p.add_argument("--path", default="/echo/idle",
                   help="URL path prefix; connection i uses <path>-<i %% 100> (default /echo/idle)")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--settle", type=float, default=6,
                   help="seconds to wait before measuring (the gateway trims its heap every 5 s)")
    sys.exit(asyncio.run(main(p.parse_args())))
