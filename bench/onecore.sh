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
#   cli idle    time the client spent blocked in epoll_wait() with nothing
#               to read, % of the window: near 0 means the client was the
#               bottleneck; well above 0 means it was waiting for the server
#   msgs/recv   messages per recv() in the client (how much the data queued)
# Raw JSON: bench/results/onecore-<UTC stamp>.jsonl; a markdown table on
# stdout. The machine's other load shares the two cores: note the load
# average printed with each run. ~1 min per server with the default rates.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

BUILD_STEP=1
SHARDS=4
DUR=5
SERVERS="roomd limit"
RATES="50 100 200 400 800"
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD_STEP=0 ;;
        --duration) DUR=${2:?--duration needs seconds}; shift ;;
        --servers) SERVERS=${2:?--servers needs a list}; shift ;;
        --rates) RATES=${2:?--rates needs a list}; shift ;;
        --shards) SHARDS=${2:?--shards needs a number}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "onecore.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$DUR" in ''|*[!0-9]*) echo "onecore.sh: --duration takes whole seconds" >&2; exit 2 ;; esac
[ "$DUR" -ge 1 ] && [ "$DUR" -le 15 ] || { echo "onecore.sh: --duration must be 1..15" >&2; exit 2; }
for s in $SERVERS; do
    case "$s" in roomd|limit) ;; *) echo "onecore.sh: unknown server '$s' (roomd, limit)" >&2; exit 2 ;; esac
done
for r in $RATES; do
    case "$r" in ''|*[!0-9]*|0) echo "onecore.sh: bad rate '$r'" >&2; exit 2 ;; esac
done

die() { echo "onecore.sh: $*" >&2; exit 1; }

. bench/lib.sh # build_release, free_port, ws_ready, stop_server
BUILD=build-rel
[ "$BUILD_STEP" = 1 ] && build_release "$BUILD" onecore-sh-ninja.log
GATEWAY=$ROOT/$BUILD/gateway/roomd-gateway
BENCH=$ROOT/$BUILD/bench/roomd-bench
LIMIT=$ROOT/$BUILD/bench/peers/roomd-limit-server
for b in "$GATEWAY" "$BENCH" "$LIMIT"; do [ -x "$b" ] || die "missing $b (build $BUILD)"; done
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

start() {
    PORT=$(free_port) || die "no free port"
    case "$1" in
        roomd)
            mkdir -p "$TMP/run" "$TMP/data"
            taskset -c 0 "$GATEWAY" --shards "$SHARDS" --listen "127.0.0.1:$PORT" \
                --run-dir "$TMP/run" --data-dir "$TMP/data" --log-level warn \
                --max-per-ip 0 --msg-rate 0 >>"$TMP/server.log" 2>&1 &
            ;;
        limit)
            taskset -c 0 "$LIMIT" --port "$PORT" >>"$TMP/server.log" 2>&1 &
            ;;
    esac
    SRV_PID=$!
    local i
    for i in $(seq 150); do
        kill -0 "$SRV_PID" 2>/dev/null || { tail -20 "$TMP/server.log" >&2; die "$1 exited at startup"; }
        if ws_ready "$PORT"; then
            SRV_CHILDREN=$(pgrep -P "$SRV_PID" 2>/dev/null | tr '\n' ' ')
            SRV_PIDS=$(echo "$SRV_PID $SRV_CHILDREN" | xargs | tr ' ' ',')
            return 0
        fi
        sleep 0.1
    done
    die "$1 did not accept WebSocket connections within 15 s"
}

for srv in $SERVERS; do
    echo "onecore.sh: $srv ..." >&2
    start "$srv"
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
            out='{"ok":0}'
        fi
        printf '{"server":"%s","rate":%s,"exit":%s,"loadavg":%s,%s\n' "$srv" "$rate" "$rc" "$load" \
            "${out#\{}" >>"$RESULTS"
        echo "  $srv $rate msg/s: exit $rc (load $load)" >&2
        kill -0 "$SRV_PID" 2>/dev/null || die "$srv died (log: $TMP/server.log)"
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
          f"| {pct(r['client_cpu_s'])} | {pct(r['client_idle_s'])} "
          f"| {r['window_msgs_in'] / max(r['window_recv_calls'], 1):.2f} | {r['loadavg']} |")
PY
echo "Raw JSON lines: ${RESULTS#"$ROOT"/}"
