#!/usr/bin/python3
"""The report of bench/compare.sh: reads its JSON lines, prints markdown
(summary table with ratios, fan-out ladder, issue 9's acceptance checks).

  bench/compare_report.py bench/results/compare-<stamp>.jsonl
  bench/compare_report.py --sustained FILE   (exit 0 if FILE's last run kept pace)
"""
import json
import sys

PEERS = ("limit", "node", "workerd")
RES = {}  # (server, scenario) -> its JSON line, for the row helpers


def load(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    meta = next((r for r in rows if r.get("scenario") == "meta"), {})
    runs = {}
    for r in rows:
        if "server" in r:
            runs.setdefault((r["server"], r["scenario"]), []).append(r)
    # A scenario run several times (churn_tls: --tls-rounds) counts by its
    # median run, so one burst of other load does not decide the ratio.
    res = {}
    for k, rs in runs.items():
        rs = sorted(rs, key=lambda r: (good(r), r.get("handshakes_per_s", 0)))
        res[k] = rs[len(rs) // 2] if all(good(r) for r in rs) else rs[0]
    return meta, rows, res


def good(r):
    return r is not None and r.get("ok") == 1 and r.get("exit") == 0


def sustained(r):
    """No loss, no skipped sends, and the server kept pace: the deliveries
    counted inside the window reach 97 % of what a steady pipeline with the
    run's median latency delivers there (nothing arrives during the first
    p50 of the window). A server that falls behind builds a backlog, which
    the drain hides from the loss count but not from this."""
    if not good(r):
        return False
    req = r.get("rate", 0) * (r.get("members", 1) - 1)
    dur = r.get("duration_s") or 1.0
    ramp = min(r.get("latency_ms_p50", 0) / 1000.0, dur)
    return r.get("lost", 1) == 0 and r.get("send_skipped", 1) == 0 and \
        r.get("deliveries_per_s", 0) >= 0.97 * req * (dur - ramp) / dur


def fan_runs(rows, srv):
    return sorted((r for r in rows if r.get("server") == srv and r["scenario"].startswith("fan_")),
                  key=lambda r: r["rate"])


def best_fan(rows, srv):
    """The highest-rate run that was sustained (the ladder stops at the first
    one that is not, so every lower rate was sustained too)."""
    ok = [r for r in fan_runs(rows, srv) if sustained(r)]
    return ok[-1] if ok else None


def tls_cpu_per_hs(key):
    """CPU seconds (the server's processes, or the client's) in the churn_tls
    window per handshake verified in it, in µs: which side a handshake costs
    more, and so which side set the rate."""
    def f(srv):
        r = RES.get((srv, "churn_tls"))
        if not good(r) or not r.get("handshakes") or r.get(key) is None or r[key] < 0:
            return None
        return r[key] * 1e6 / r["handshakes"]
    return f


def fmt(v, kind="num"):
    if v is None:
        return "n/a"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "bytes":
        return f"{v:,.0f} B"
    return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def ratio(a, b):
    return "n/a" if a is None or b in (None, 0) else f"{a / b:.2f}"


def main():
    if sys.argv[1] == "--sustained":
        # compare.sh's ladder: exit 0 if the last line of the file was sustained
        last = [l for l in open(sys.argv[2]) if l.strip()][-1]
        sys.exit(0 if sustained(json.loads(last)) else 1)
    meta, rows, res = load(sys.argv[1])
    RES.update(res)
    servers = [s for s in ("roomd",) + PEERS
               if any(r.get("server") == s for r in rows)]
    peers = [s for s in servers if s != "roomd"]

    def get(srv, sc, key, need_ok=True):
        r = res.get((srv, sc))
        if r is None or key not in r or (need_ok and not good(r)):
            return None
        return r[key]

    node_best = best_fan(rows, "node")
    node_rate = node_best["rate"] if node_best else None

    def fan_metric(key):
        def f(srv):
            b = best_fan(rows, srv)
            return None if b is None else b[key]
        return f

    def at_node_rate(srv):
        if node_rate is None:
            return None
        r = res.get((srv, f"fan_{node_rate}"))
        return r["latency_ms_p99"] if r is not None and sustained(r) else None

    table = [  # (label, unit/metric, kind, value function)
        ("echo, 1 conn", "RTT p50 (µs)", "num", lambda s: get(s, "echo_1", "rtt_us_p50")),
        ("", "RTT p99 (µs)", "num", lambda s: get(s, "echo_1", "rtt_us_p99")),
        ("echo, 100 conns", "round trips/s", "int", lambda s: get(s, "echo_100", "round_trips_per_s")),
        (f"fan-out {10} rooms × 1000", "highest sustained rate (msg/s)", "int", fan_metric("rate")),
        ("", "deliveries/s at that rate", "int", fan_metric("deliveries_per_s")),
        ("", "p99 at that rate (ms)", "num", fan_metric("latency_ms_p99")),
        ("", f"p99 at Node's rate, {node_rate or '?'} msg/s (ms)", "num", at_node_rate),
        ("idle memory / conn", "plaintext", "bytes", lambda s: get(s, "idle", "bytes_per_conn")),
        ("", "TLS", "bytes", lambda s: get(s, "idle_tls", "bytes_per_conn")),
        ("connection churn", "handshakes/s plaintext", "int", lambda s: get(s, "churn", "handshakes_per_s")),
        ("", "handshakes/s TLS", "int", lambda s: get(s, "churn_tls", "handshakes_per_s")),
        ("", "server CPU per TLS handshake (µs)", "num", tls_cpu_per_hs("cpu_s_total")),
        ("", "client CPU per TLS handshake (µs)", "num", tls_cpu_per_hs("client_cpu_s")),
        ("durable counter, 50 conns", "increments/s", "int", lambda s: get(s, "counter", "round_trips_per_s")),
    ]
    print(f"## roomd vs peers — {meta.get('timestamp', '?')}")
    if meta.get("cert"):
        print()
        print(f"TLS certificate (every server): {meta['cert']}")
    print()
    print(f"git {meta.get('git', '?')}, roomd --shards {meta.get('shards', '?')}, "
          f"{'pinned: servers on CPU 0, clients on CPU 1' if meta.get('pin') else 'not pinned'}, "
          f"{meta.get('nproc', '?')} CPUs, load average at start {meta.get('loadavg', '?')}, "
          f"kernel {meta.get('kernel', '?')}, runs of {meta.get('duration', '?')} s, "
          f"{meta.get('idle_conns', '?')} idle connections; node {meta.get('node') or '-'} + ws "
          f"{meta.get('ws') or '-'}, workerd {meta.get('workerd') or '-'}, {meta.get('openssl', '')}")
    print()
    print("| scenario | metric | " + " | ".join(servers) + " | " +
          " | ".join(f"roomd/{p}" for p in peers) + " |")
    print("|---|---|" + "---:|" * (len(servers) + len(peers)))
    for label, metric, kind, fn in table:
        vals = {s: fn(s) for s in servers}
        print(f"| {label} | {metric} | " + " | ".join(fmt(vals[s], kind) for s in servers) + " | " +
              " | ".join(ratio(vals.get("roomd"), vals[p]) for p in peers) + " |")
    full = get("roomd-full", "counter", "round_trips_per_s")
    if ("roomd-full", "counter") in res:
        print(f"| | increments/s, roomd --durability full (fsync per commit) | {fmt(full, 'int')} | "
              + " | ".join("" for _ in servers[1:]) + " | " +
              " | ".join(ratio(full, get(p, "counter", "round_trips_per_s")) if p == "workerd" else ""
                         for p in peers) + " |")
    print()
    print("Ratios are roomd/peer (> 1: roomd higher; better for rates, worse for latency and "
          "memory). n/a: not supported by that server (limit has no TLS and no storage; Node has "
          "no durable counter) or the run failed (below).")
    print()

    print("Fan-out ladder (10 rooms × 1000 members, 2 publishers per room; deliveries requested = "
          "rate × 999; the ladder stops at the first rate not sustained: loss, skipped sends, or "
          "in-window deliveries < 97 % of rate × 999 × (window − p50) / window):")
    print()
    print("| server | msg/s | requested/s | deliveries/s | lost | p50 (ms) | p99 (ms) | server CPU s | sustained |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in servers:
        for r in fan_runs(rows, s):
            m = r.get("members", 1000)
            print(f"| {s}{'' if m == 1000 else f' ({m} members)'} | {r['rate']} | {r['rate'] * (m - 1):,} "
                  f"| {fmt(r.get('deliveries_per_s'), 'int')} "
                  f"| {fmt(r.get('lost'), 'int')} | {fmt(r.get('latency_ms_p50'))} "
                  f"| {fmt(r.get('latency_ms_p99'))} | {fmt(r.get('cpu_s_total'))} "
                  f"| {'yes' if sustained(r) else 'no'} |")
    print()

    bad = [r for r in rows if r.get("server") and not good(r) and not r["scenario"].startswith("fan_")]
    for r in bad:
        keys = ("exit", "connect_failed", "closed_unexpectedly", "protocol_errors", "failed",
                "tls_failed", "close_timeouts", "mismatched", "corrupt", "malformed")
        print(f"- ⚠ {r['server']} {r['scenario']}: " +
              (", ".join(f"{k} {r[k]}" for k in keys if r.get(k)) or "no result"))
    if bad:
        print()

    def check(name, value, target, met):
        verdict = "n/a" if met is None else "**met**" if met else "**not met**"
        print(f"| {name} | {value} | {target} | {verdict} |")

    print("Issue 9 acceptance (this run):")
    print()
    print("| target | measured | needed | verdict |")
    print("|---|---|---|---|")
    rf = fan_metric("deliveries_per_s")
    rd = rf("roomd")
    for p, need in (("node", 5.0), ("workerd", 10.0), ("limit", 0.6)):
        v = rf(p)
        r = None if rd is None or not v else rd / v
        check(f"fan-out deliveries/s vs {p}", "n/a" if r is None else f"{r:.2f}×", f"≥ {need}×",
              None if r is None else r >= need)
    a, b = at_node_rate("roomd"), at_node_rate("node")
    check(f"fan-out p99 at Node's rate ({node_rate} msg/s)",
          "n/a" if a is None or b is None else f"{a:.2f} ms vs Node {b:.2f} ms", "≤ Node",
          None if a is None or b is None else a <= b)
    a, b = get("roomd", "echo_1", "rtt_us_p50"), get("limit", "echo_1", "rtt_us_p50")
    check("echo 1 conn p50 vs limit", "n/a" if a is None or not b else f"{a / b:.2f}× ({a:.1f} vs {b:.1f} µs)",
          "≤ 1.5×", None if a is None or not b else a / b <= 1.5)
    a = get("roomd", "idle", "bytes_per_conn")
    check("idle memory / conn, plaintext", fmt(a, "bytes"), "≤ 3 KB (3,072 B)", None if a is None else a <= 3072)
    a = get("roomd", "idle_tls", "bytes_per_conn")
    check("idle memory / conn, TLS", fmt(a, "bytes"), "≤ 12 KB (12,288 B)", None if a is None else a <= 12288)
    a, b = get("roomd", "churn_tls", "handshakes_per_s"), get("node", "churn_tls", "handshakes_per_s")
    check("TLS handshakes/s vs Node", "n/a" if a is None or not b else f"{a / b:.2f}× ({a:,.0f} vs {b:,.0f})",
          "≥ 1×", None if a is None or not b else a >= b)
    a, b = get("roomd", "counter", "round_trips_per_s"), get("workerd", "counter", "round_trips_per_s")
    check("durable counter vs workerd (roomd default: normal)",
          "n/a" if a is None or not b else f"{a / b:.1f}× ({a:,.0f} vs {b:,.0f})",
          "≥ 10×", None if a is None or not b else a >= 10 * b)
    if full is not None:
        check("durable counter vs workerd (roomd --durability full)",
              "n/a" if not b else f"{full / b:.1f}× ({full:,.0f} vs {b:,.0f})",
              "≥ 10×", None if not b else full >= 10 * b)
    print()


if __name__ == "__main__":
    main()
