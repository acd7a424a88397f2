#!/bin/bash
# Fan-out latency with the server on one core, and who is the bottleneck.
#
#   bench/onecore.sh [--servers "roomd limit"] [--rates "50 100 200 400 800"]
#                    [--duration S] [--no-build] [--shards N]
#
# Each server in turn (roomd: gateway + --shards (4) shards; limit:
# bench/peers/limit_server.c) runs pinned to CPU 0 (taskset), roomd-bench to
# CPU 1; at every rate, fan-out over 10 rooms x 1000 members, 1 publisher
# per room, --duration (5) s, a fresh set of rooms per run. Besides
# deliveries/s and latency, each row says where the time went:
#   srv cpu     CPU of the server's processes, % of one core
#   cli cpu     the client's CPU, % of one core
#   cli idle    time the client was blocked with nothing to read, % of the
#               window (the window minus its CPU time minus its time waiting
#               for a CPU, from /proc/self/schedstat): near 0 means the
#               client was the bottleneck; well above 0, it waited for the
#               server
#   msgs/recv   messages per recv() in the client (how much the data queued)
# Raw JSON: bench/results/onecore-<UTC stamp>.jsonl; a markdown table on
# stdout. The machine's other load shares the two cores: note the load
# average printed with each run. ~1 min per server with the default rates.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

SERVERS="roomd limit"
RATES="50 100 200 400 800"
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "onecore.sh: $*" >&2; exit 1; }
. bench/lib.sh # common_option, release_binaries, start_pinned, stop_server
common_defaults # BUILD_STEP, SHARDS, DUR
while [ $# -gt 0 ]; do
    common_option "$@"
    if [ "$COMMON_SHIFT" = 0 ]; then
        case "$1" in
            --rates) RATES=${2:?--rates needs a list}; shift ;;
            *) echo "onecore.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
        esac
        COMMON_SHIFT=1
    fi
    shift "$COMMON_SHIFT"
done
for s in $SERVERS; do
    case "$s" in roomd|limit) ;; *) echo "onecore.sh: unknown server '$s' (roomd, limit)" >&2; exit 2 ;; esac
done
for r in $RATES; do
    case "$r" in ''|*[!0-9]*|0) echo "onecore.sh: bad rate '$r'" >&2; exit 2 ;; esac
done

release_binaries onecore-sh-ninja.log # BUILD, GATEWAY, BENCH, LIMIT
command -v taskset >/dev/null || die "needs taskset (util-linux)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs"

TMP=$(mktemp -d /tmp/roomd-onecore.XXXXXX)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
RESULTS=$ROOT/bench/results/onecore-$STAMP.jsonl
: >"$RESULTS"
cleanup() { stop_server; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

for srv in $SERVERS; do
    echo "onecore.sh: $srv ..." >&2
    start_pinned "$srv" 0 "$TMP/$srv"
    for rate in $RATES; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        out=$(timeout --kill-after=5 $((DUR + 40)) taskset -c 1 "$BENCH" fanout \
            --url "ws://127.0.0.1:$PORT/chat/oc$rate-$STAMP" --rooms 10 --members 1000 \
            --publishers 1 --rate "$rate" --duration "$DUR" --drain-timeout 5 \
            --connect-timeout 20 --cpu-pids "$SRV_PIDS" --json --quiet 2>"$TMP/bench.err")
        rc=$?
        out=$(printf '%s\n' "$out" | grep -m1 '^{' || true)
        if [ -z "$out" ]; then
            tail -3 "$TMP/bench.err" >&2
            echo "  (server log: $TMP/$srv/server.log)" >&2
            out='{"ok":0}'
        fi
        printf '{"server":"%s","rate":%s,"exit":%s,"loadavg":%s,%s\n' "$srv" "$rate" "$rc" "$load" \
            "${out#\{}" >>"$RESULTS"
        echo "  $srv $rate msg/s: exit $rc (load $load)" >&2
        kill -0 "$SRV_PID" 2>/dev/null || die "$srv died (log: $TMP/$srv/server.log)"
    done
    stop_server
done

/usr/bin/python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| server | rate (msg/s) | deliveries/s | lost | p50 / p99 (ms) | srv cpu | cli cpu | cli idle | msgs/recv | load |")
print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
for r in rows:
    if not r.get("window_s"):
        print(f"| {r['server']} | {r['rate']} | failed (exit {r['exit']}) | | | | | | | {r['loadavg']} |")
        continue
    w = r["window_s"]
    pct = lambda x: f"{100 * x / w:.0f} %"
    print(f"| {r['server']} | {r['rate']} | {r['deliveries_per_s']:,.0f} | {r['lost']} "
          f"| {r['latency_ms_p50']:.1f} / {r['latency_ms_p99']:.1f} | {pct(r['cpu_s_total'])} "
          f"| {pct(r['client_cpu_s'])} | {pct(max(w - r['client_cpu_s'] - r['client_runq_s'], 0))} "
          f"| {r['window_msgs_in'] / max(r['window_recv_calls'], 1):.2f} | {r['loadavg']} |")
PY
echo "Raw JSON lines: ${RESULTS#"$ROOT"/}"
