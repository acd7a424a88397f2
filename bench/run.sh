#!/bin/bash
# roomd vs the C limit reference (bench/peers/limit_server.c), side by side.
#
#   bench/run.sh [--pin] [--quick] [--no-build] [--rates "100 200 300 400 600"]
#                [--shards N]
#
# 1. Builds the release build in build-rel (meson setup on first use, then
#    ninja) and the limit server.
# 2. For each server in turn (roomd: gateway + N shards; limit: one process)
#    starts it on a free loopback port, waits until a WebSocket echo round trip
#    works, runs the scenarios with roomd-bench, and stops it by PID.
# 3. Scenarios: echo 1 connection (latency), echo 100 connections
#    (throughput), chat fan-out 1 room x 1000 members, 10 publishers, at
#    several total publish rates (deliveries requested = rate x 999).
# 4. Prints a markdown table (roomd | limit | roomd/limit) and keeps every raw
#    roomd-bench JSON line in bench/results/<UTC timestamp>.jsonl.
#
# --pin: server processes on CPU 0, the bench client on CPU 1 (taskset).
# --quick: short runs (smoke test, numbers not meaningful).
# --no-build: use the binaries already in build-rel (e.g. while the tree does
#   not compile); the limit server is still built if it is missing.
# Every step is bounded in time; the default run takes about 4 minutes.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

PIN=0
QUICK=0
BUILD_STEP=1
SHARDS=4
RATES="100 200 300 400 600"
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --pin) PIN=1 ;;
        --quick) QUICK=1 ;;
        --no-build) BUILD_STEP=0 ;;
        --rates) RATES=${2:?--rates needs a list}; shift ;;
        --shards) SHARDS=${2:?--shards needs a number}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    ECHO1_DUR=2; ECHO100_DUR=2; FAN_DUR=2
else
    ECHO1_DUR=10; ECHO100_DUR=10; FAN_DUR=10
fi
WARMUP=1
MEMBERS=1000
PUBLISHERS=10
DRAIN=3

die() { echo "run.sh: $*" >&2; exit 1; }

# ---- build -----------------------------------------------------------------
. bench/lib.sh # build_release, free_port, ws_ready, stop_server, bench_json (run from the repository root)
BUILD=build-rel
[ "$BUILD_STEP" = 1 ] && build_release "$BUILD" run-sh-ninja.log
GATEWAY=$ROOT/$BUILD/gateway/roomd-gateway
BENCH=$ROOT/$BUILD/bench/roomd-bench
LIMIT=$ROOT/$BUILD/bench/peers/roomd-limit-server
if [ ! -x "$LIMIT" ]; then
    # Not (yet) part of the meson build: plain gcc.
    LIMIT=$ROOT/$BUILD/bench-limit/roomd-limit-server
    if [ "$BUILD_STEP" = 1 ] || [ ! -x "$LIMIT" ]; then
        mkdir -p "$BUILD/bench-limit"
        gcc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wvla -Wformat=2 -Wcast-align -Wundef -Werror \
            -o "$LIMIT" bench/peers/limit_server.c || die "building the limit server failed"
    fi
fi
for b in "$GATEWAY" "$BENCH" "$LIMIT"; do [ -x "$b" ] || die "missing $b"; done

# Anti-abuse limits that a load test from one loopback address must lift
# (1000 connections from 127.0.0.1; 10k+ messages/s on one WebSocket). Only
# passed if this gateway build has them.
ROOMD_EXTRA=()
gw_help=$("$GATEWAY" --help 2>&1)
for opt in "--max-per-ip 0" "--msg-rate 0"; do
    case "$gw_help" in *"${opt% *} "*) ROOMD_EXTRA+=($opt) ;; esac
done

SRV_PIN=()
# Each fan-out run uses rooms of its own (room-<rate>-0): roomd's chat
# replays a room's last 100 messages to whoever joins, and a room reused
# from the previous run would start with 100 x 1000 replayed messages.
CLI_PIN=()
if [ "$PIN" = 1 ]; then
    command -v taskset >/dev/null || die "--pin needs taskset (util-linux)"
    [ "$(nproc)" -ge 2 ] || die "--pin needs at least 2 CPUs"
    SRV_PIN=(taskset -c 0)
    CLI_PIN=(taskset -c 1)
fi

TMP=$(mktemp -d /tmp/roomd-bench-run.XXXXXX)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
RESULTS=$ROOT/bench/results/$STAMP.jsonl
: >"$RESULTS"

# ---- server lifecycle (only processes started here, by PID) ----------------

cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# start_server NAME: sets SRV_PID and PORT
start_server() {
    local name=$1 i
    PORT=$(free_port) || die "no free port"
    case "$name" in
        roomd)
            rm -rf "$TMP/roomd"
            mkdir -p "$TMP/roomd/run" "$TMP/roomd/data"
            "${SRV_PIN[@]}" "$GATEWAY" --shards "$SHARDS" --listen "127.0.0.1:$PORT" \
                --run-dir "$TMP/roomd/run" --data-dir "$TMP/roomd/data" --log-level warn \
                "${ROOMD_EXTRA[@]}" >>"$TMP/server-$name.log" 2>&1 &
            ;;
        limit)
            "${SRV_PIN[@]}" "$LIMIT" --port "$PORT" >>"$TMP/server-$name.log" 2>&1 &
            ;;
    esac
    SRV_PID=$!
    for i in $(seq 100); do
        kill -0 "$SRV_PID" 2>/dev/null || { cat "$TMP/server-$name.log" >&2; die "$name exited at startup"; }
        if ws_ready "$PORT"; then
            SRV_CHILDREN=$(pgrep -P "$SRV_PID" 2>/dev/null | tr '\n' ' ')
            return 0
        fi
        sleep 0.1
    done
    cat "$TMP/server-$name.log" >&2
    die "$name did not accept WebSocket connections within 10 s"
}

# run_bench SERVER SCENARIO RATE -- roomd-bench args...
run_bench() {
    local srv=$1 sc=$2 rate=$3
    shift 4
    bench_json "run.sh: $srv $sc" "$(( ${BENCH_BOUND:-60} ))" "$@"
    printf '{"server":"%s","scenario":"%s","rate":%s,"pin":%s,"exit":%s,%s\n' \
        "$srv" "$sc" "$rate" "$PIN" "$BENCH_RC" "${BENCH_JSON#\{}" >>"$RESULTS"
    printf '  %-6s %-14s exit %s\n' "$srv" "$sc" "$BENCH_RC" >&2
}

# ---- run ------------------------------------------------------------------
printf '{"scenario":"meta","timestamp":"%s","git":"%s","pin":%s,"built":%s,"shards":%s,"nproc":%s,"loadavg":"%s","kernel":"%s","limit_bin":"%s","roomd_args":"%s"}\n' \
    "$STAMP" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$PIN" "$BUILD_STEP" "$SHARDS" \
    "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(uname -r)" "${LIMIT#"$ROOT"/}" \
    "--shards $SHARDS --log-level warn ${ROOMD_EXTRA[*]}" >>"$RESULTS"
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    echo "run.sh: warning: load average $load1 > 0.5; results will be noisy" >&2
fi

for srv in roomd limit; do
    echo "run.sh: $srv ..." >&2
    start_server "$srv"
    url=ws://127.0.0.1:$PORT
    BENCH_BOUND=$((ECHO1_DUR + WARMUP + 25))
    run_bench "$srv" echo_1 0 -- echo --url "$url/echo/bench" --conns 1 \
        --duration "$ECHO1_DUR" --warmup "$WARMUP" --drain-timeout "$DRAIN"
    BENCH_BOUND=$((ECHO100_DUR + WARMUP + 25))
    run_bench "$srv" echo_100 0 -- echo --url "$url/echo/bench" --conns 100 \
        --duration "$ECHO100_DUR" --warmup "$WARMUP" --drain-timeout "$DRAIN"
    BENCH_BOUND=$((FAN_DUR + 2 * DRAIN + 25))
    for rate in $RATES; do
        kill -0 "$SRV_PID" 2>/dev/null || die "$srv died during the run"
        run_bench "$srv" "fanout_$rate" "$rate" -- fanout --url "$url/chat/room-$rate" --rooms 1 \
            --members "$MEMBERS" --publishers "$PUBLISHERS" --rate "$rate" \
            --duration "$FAN_DUR" --drain-timeout "$DRAIN"
    done
    kill -0 "$SRV_PID" 2>/dev/null || die "$srv died during the run"
    stop_server
done

# ---- report ---------------------------------------------------------------
/usr/bin/python3 - "$RESULTS" "$ROOT" <<'PY'
import json, os, sys

path, root = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path) if l.strip()]
meta = next(r for r in rows if r.get("scenario") == "meta")
res = {(r["server"], r["scenario"]): r for r in rows if "server" in r}

def get(srv, sc, key):
    r = res.get((srv, sc))
    return None if r is None or key not in r else r[key]

def loss_pct(srv, sc):
    e, l = get(srv, sc, "expected"), get(srv, sc, "lost")
    return None if not e else 100.0 * l / e

def fmt(v, kind):
    if v is None:
        return "n/a"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "pct":
        return f"{v:.3f} %"
    return f"{v:,.1f}" if v >= 100 else f"{v:.3f}" if v < 10 else f"{v:.2f}"

table = []  # (scenario, metric, roomd, limit, kind)
def add(sc, label, metric, key=None, kind="num", fn=None):
    vals = [fn(s, sc) if fn else get(s, sc, key) for s in ("roomd", "limit")]
    table.append((label, metric, vals[0], vals[1], kind, sc))

add("echo_1", "echo, 1 conn", "RTT p50 (µs)", "rtt_us_p50")
add("echo_1", "echo, 1 conn", "RTT p99 (µs)", "rtt_us_p99")
add("echo_1", "echo, 1 conn", "RTT p99.9 (µs)", "rtt_us_p999")
add("echo_1", "echo, 1 conn", "round trips/s", "round_trips_per_s", "int")
add("echo_100", "echo, 100 conns", "round trips/s", "round_trips_per_s", "int")
add("echo_100", "echo, 100 conns", "RTT p50 (µs)", "rtt_us_p50")
add("echo_100", "echo, 100 conns", "RTT p99 (µs)", "rtt_us_p99")
rates = []
for r in rows:
    if r.get("server") and r["scenario"].startswith("fanout_") and r["rate"] not in rates:
        rates.append(r["rate"])
for rate in rates:
    sc = f"fanout_{rate}"
    members = get("roomd", sc, "members") or get("limit", sc, "members") or 1000
    req = rate * (members - 1)
    label = f"fan-out {rate} msg/s ({req / 1000:,.1f}k/s req.)"
    add(sc, label, "deliveries/s", "deliveries_per_s", "int")
    add(sc, label, "loss", kind="pct", fn=loss_pct)
    add(sc, label, "latency p50 (ms)", "latency_ms_p50")
    add(sc, label, "latency p99 (ms)", "latency_ms_p99")

def ok_mark(srv, sc):
    r = res.get((srv, sc))
    return "" if r and r.get("ok") == 1 and r.get("exit") == 0 else " ⚠"

print(f"## roomd vs C limit reference — {meta['timestamp']}")
print()
print(f"git {meta['git']}{'' if meta.get('built', 1) else ' (--no-build: existing binaries)'}, "
      f"roomd-gateway {meta.get('roomd_args', '--shards ' + str(meta['shards']))}, "
      f"{'pinned: servers on CPU 0, client on CPU 1' if meta['pin'] else 'not pinned'}, "
      f"{meta['nproc']} CPUs, load average at start {meta['loadavg']}, kernel {meta['kernel']}")
print()
print("| scenario | metric | roomd | limit | roomd/limit |")
print("|---|---|---:|---:|---:|")
prev = None
for label, metric, a, b, kind, sc in table:
    if kind == "pct":
        ratio = "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"
    else:
        ratio = "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"
    print(f"| {label if label != prev else ''} | {metric} | {fmt(a, kind)}{ok_mark('roomd', sc)} "
          f"| {fmt(b, kind)}{ok_mark('limit', sc)} | {ratio} |")
    prev = label
print()
bad = [r for r in rows if r.get("server") and (r.get("ok") != 1 or r.get("exit") != 0)]
for r in bad:
    keys = ("exit", "connect_failed", "closed_unexpectedly", "protocol_errors", "close_timeouts",
            "send_skipped", "duplicated", "reordered", "unexpected", "malformed", "mismatched", "corrupt")
    print(f"⚠ {r['server']} {r['scenario']}: " +
          ", ".join(f"{k} {r[k]}" for k in keys if r.get(k)))
if bad:
    print()
print("Ratios are roomd/limit: > 1 is better for roomd in round trips/s and deliveries/s, "
      "worse in latency. Loss = lost/expected deliveries.")
print(f"Raw JSON lines: {os.path.relpath(path, root)}")
PY
