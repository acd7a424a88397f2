#!/bin/bash
# --workers: echo throughput at C connections (spread over C objects, so every
# shard works) with one gateway process and with two, alternating R times in
# one run; prints each run and the ratio of the medians.
#
#   bench/workers.sh [--build DIR] [--conns 500] [--shards 4] [--duration 10] [--rounds 3]
set -u
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=build-rel CONNS=500 SHARDS=4 DUR=10 ROUNDS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --build) BUILD=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        --duration) DUR=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        *) echo "workers.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
[ -x "$BUILD/gateway/roomd-gateway" ] || { echo "workers.sh: build $BUILD first" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'stop_server; rm -rf "$TMP"' EXIT
one() { # workers -> round trips/s
    local w=$1 port
    port=$(free_port)
    rm -rf "$TMP/run" "$TMP/data"
    "$BUILD/gateway/roomd-gateway" --shards "$SHARDS" --workers "$w" --listen "127.0.0.1:$port" \
        --run-dir "$TMP/run" --data-dir "$TMP/data" --max-per-ip 0 --msg-rate 0 --log-level warn \
        2>>"$TMP/gw.log" &
    SRV_PID=$!
    for _ in $(seq 100); do ws_ready "$port" && break; sleep 0.1; done
    sleep 0.5 # the workers' links
    "$BUILD/bench/roomd-bench" echo --url "ws://127.0.0.1:$port/echo/w" --conns "$CONNS" \
        --objects "$CONNS" --duration "$DUR" --json --quiet 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin)["round_trips_per_s"]))'
    stop_server
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; conns $CONNS; shards $SHARDS"
r1=() r2=()
for _ in $(seq "$ROUNDS"); do
    a=$(one 1); b=$(one 2)
    echo "workers 1: $a round trips/s   workers 2: $b round trips/s"
    r1+=("$a"); r2+=("$b")
done
/usr/bin/python3 - "${r1[*]}" "${r2[*]}" <<'PY'
import statistics, sys
a = [int(x) for x in sys.argv[1].split()]
b = [int(x) for x in sys.argv[2].split()]
print(f"median: workers 1 {statistics.median(a):.0f}/s, workers 2 {statistics.median(b):.0f}/s, "
      f"ratio {statistics.median(b) / statistics.median(a):.2f}x")
PY
