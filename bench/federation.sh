#!/bin/bash
# Federation: cross-cell vs in-cell broadcast latency in one run, Redis
# PUBLISHes per broadcast, and how pipelined those publishes reach Redis.
#
#   bench/federation.sh [--no-build] [--rate N] [--duration S] [--rooms R]
#                       [--members M] [--shards N] [--deflate]
#
# 1. Builds the release build in build-rel (meson setup on first use).
# 2. Starts a redis-server (loopback, free port, no persistence) and two
#    cells, A and B (a gateway with N shards each, own run and data dirs,
#    both --redis to that Redis).
# 3. Runs roomd-bench fanout with --url on A and --cross-url on B: the
#    publishers and half the receivers of every chat room are on A, the
#    other half on B, so each broadcast is delivered in-cell and, through
#    Redis, cross-cell, under the same load.
# 4. Reads Redis' INFO before and after: PUBLISH calls (commandstats) per
#    broadcast sent, and Redis' read() calls (total_reads_processed) per
#    PUBLISH (below 1: several publishes arrived in one read, pipelined).
# Prints the bench's report and those ratios; keeps the JSON line in
# bench/results/<UTC timestamp>-federation.jsonl. Every step is bounded.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

BUILD_STEP=1
RATE=10000
DURATION=10
ROOMS=50
MEMBERS=5
SHARDS=2
DEFLATE=()
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD_STEP=0 ;;
        --rate) RATE=${2:?--rate needs a number}; shift ;;
        --duration) DURATION=${2:?--duration needs seconds}; shift ;;
        --rooms) ROOMS=${2:?--rooms needs a number}; shift ;;
        --members) MEMBERS=${2:?--members needs a number}; shift ;;
        --shards) SHARDS=${2:?--shards needs a number}; shift ;;
        --deflate) DEFLATE=(--deflate) ;;
        -h|--help) usage; exit 0 ;;
        *) echo "federation.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
die() { echo "federation.sh: $*" >&2; exit 1; }

. bench/lib.sh # build_release, free_port, ws_ready, stop_server

BUILD=build-rel
[ "$BUILD_STEP" = 1 ] && build_release "$BUILD" federation-ninja.log
GATEWAY=$ROOT/$BUILD/gateway/roomd-gateway
BENCH=$ROOT/$BUILD/bench/roomd-bench
REDIS=$(command -v redis-server) || die "redis-server is not installed"
command -v redis-cli >/dev/null || die "redis-cli is not installed"
for b in "$GATEWAY" "$BENCH"; do [ -x "$b" ] || die "missing $b"; done

TMP=$(mktemp -d /tmp/roomd-bench-fed.XXXXXX)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
RESULTS=$ROOT/bench/results/$STAMP-federation.jsonl
REDIS_PID=
CELL_A=
CELL_B=

cleanup() {
    SRV_PID=$CELL_A; stop_server
    SRV_PID=$CELL_B; stop_server
    SRV_PID=$REDIS_PID; stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RPORT=$(free_port) || die "no free port"
"$REDIS" --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
    >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do
    redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited at startup"
    sleep 0.1
done
redis-cli -p "$RPORT" ping >/dev/null 2>&1 || die "redis-server did not answer within 10 s"

# start_cell NAME: sets CELL_PID and CELL_PORT
start_cell() {
    local name=$1
    CELL_PORT=$(free_port) || die "no free port"
    mkdir -p "$TMP/$name/run" "$TMP/$name/data"
    "$GATEWAY" --shards "$SHARDS" --listen "127.0.0.1:$CELL_PORT" --run-dir "$TMP/$name/run" \
        --data-dir "$TMP/$name/data" --log-level warn --max-per-ip 0 --msg-rate 0 \
        --redis "redis://127.0.0.1:$RPORT" >>"$TMP/$name.log" 2>&1 &
    CELL_PID=$!
    for _ in $(seq 100); do
        kill -0 "$CELL_PID" 2>/dev/null || { cat "$TMP/$name.log" >&2; die "cell $name exited at startup"; }
        ws_ready "$CELL_PORT" && return 0
        sleep 0.1
    done
    die "cell $name not ready within 10 s"
}
start_cell a; CELL_A=$CELL_PID; PORT_A=$CELL_PORT
start_cell b; CELL_B=$CELL_PID; PORT_B=$CELL_PORT

info_field() { redis-cli -p "$RPORT" info "$1" | tr -d '\r' | sed -n "s/^$2//p"; }
publishes() { info_field commandstats 'cmdstat_publish:calls=' | cut -d, -f1; }
reads() { info_field stats 'total_reads_processed:'; }

# Fresh rooms: chat replays a room's history to whoever joins.
ROOM="fed-$STAMP"
pub0=$(publishes); pub0=${pub0:-0}
rd0=$(reads)
timeout $((DURATION + 60)) "$BENCH" fanout --url "ws://127.0.0.1:$PORT_A/chat/$ROOM" \
    --cross-url "ws://127.0.0.1:$PORT_B" --rooms "$ROOMS" --members "$MEMBERS" --publishers 1 \
    --rate "$RATE" --duration "$DURATION" --warmup 1 --drain-timeout 3 --quiet --json \
    --cpu-pids "$CELL_A,$(pgrep -P "$CELL_A" | paste -sd,),$CELL_B,$(pgrep -P "$CELL_B" | paste -sd,),$REDIS_PID" \
    "${DEFLATE[@]}" >"$TMP/bench.json" 2>"$TMP/bench.txt"
rc=$?
pub1=$(publishes)
rd1=$(reads)
cat "$TMP/bench.txt"
[ "$rc" = 0 ] || die "roomd-bench failed (exit $rc)"
/usr/bin/python3 - "$pub0" "$pub1" "$rd0" "$rd1" "$TMP/bench.json" "$RESULTS" \
    "$(uptime | sed 's/.*load average: //')" <<'PY'
import json, sys
p0, p1, r0, r1 = (int(x) for x in sys.argv[1:5])
b = json.load(open(sys.argv[5]))
sent, pubs, reads = b["sent"], p1 - p0, r1 - r0
# The bench's line plus Redis' side and the machine's load, for RESULTS.md.
b.update(redis_publish_calls=pubs, redis_reads=reads, loadavg=sys.argv[7])
with open(sys.argv[6], "a") as f:
    f.write(json.dumps(b) + "\n")
print(f"broadcasts sent {sent}, Redis PUBLISH calls {pubs} ({pubs / sent:.4f} per broadcast)")
print(f"Redis read() calls {reads} for them ({reads / pubs:.3f} per PUBLISH, all clients)")
print("latency ms      p50      p90      p99    p99.9")
print("in-cell   " + "".join(f"{b['latency_ms_' + k]:9.3f}" for k in ("p50", "p90", "p99", "p999")))
print("x-cell    " + "".join(f"{b['xlatency_ms_' + k]:9.3f}" for k in ("p50", "p90", "p99", "p999")))
print(f"x-cell - in-cell p99: {b['xlatency_ms_p99'] - b['latency_ms_p99']:+.3f} ms; "
      f"p50: {b['xlatency_ms_p50'] - b['latency_ms_p50']:+.3f} ms")
PY
echo "JSON: $RESULTS"
