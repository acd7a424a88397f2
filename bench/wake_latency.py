#!/usr/bin/python3
"""Wake-up cost of a hibernated object: round-trip time of the first message
to each of N hibernated counters versus the next one (object awake).

  bench/wake_latency.py --url ws://127.0.0.1:8080 --objects 1000 --hibernate-wait 3

Start roomd with a short --hibernate-after (e.g. 1s) so the objects sleep
during --hibernate-wait. Prints one JSON line with percentiles in µs."""
import argparse
import asyncio
import json
import time

import websockets


def pct(v, p):
    v = sorted(v)
    return round(v[min(len(v) - 1, int(len(v) * p / 100))] * 1e6, 1)


async def main(a):
    sem = asyncio.Semaphore(100)

    async def open_one(i):
        async with sem:
            ws = await websockets.connect(f"{a.url}/counter/wake-{i}", ping_interval=None, compression=None)
            await ws.send('{"op":"increment"}')
            await ws.recv()
            return ws
    conns = await asyncio.gather(*(open_one(i) for i in range(a.objects)))
    await asyncio.sleep(a.hibernate_wait)
    wake, awake = [], []
    for ws in conns:  # one at a time: latency, not throughput
        for bucket in (wake, awake):
            t = time.perf_counter()
            await ws.send('{"op":"increment"}')
            await ws.recv()
            bucket.append(time.perf_counter() - t)
    print(json.dumps({"objects": a.objects,
                      "wake_p50_us": pct(wake, 50), "wake_p99_us": pct(wake, 99),
                      "awake_p50_us": pct(awake, 50), "awake_p99_us": pct(awake, 99)}))
    for ws in conns:
        ws.transport.abort()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--objects", type=int, default=1000)
    p.add_argument("--hibernate-wait", type=float, default=3.0)
    asyncio.run(main(p.parse_args()))
