#!/bin/bash
# CPU cost of permessage-deflate on a chat broadcast. Issue target: "compressed
# broadcast to 1000 members costs at most 1.5x the CPU of the uncompressed one".
#
#   bench/compress_cpu.sh [--pin] [--no-build] [--rate 200] [--duration 10]
#       [--members 1000] [--publishers 10] [--size 300] [--shards 4]
#       [--repeat 1] [--restart] [--max-load 0.8] [--load-wait 600] [--out FILE]
#
# 1. Builds build-rel (meson setup on first use, then ninja) unless --no-build.
# 2. Waits until the 1-minute load average is below --max-load, polling every
#    10 s for at most --load-wait s (then it runs anyway and says so).
# 3. Starts roomd like run.sh (gateway + --shards shards, --max-per-ip 0
#    --msg-rate 0, compression on: the gateway's default) on a free loopback
#    port and waits for a WebSocket echo round trip.
# 4. Runs a 2 s unmeasured warm-up fan-out, then --repeat pairs of
#    roomd-bench fanout runs: 1 room x --members, --publishers publishers,
#    --rate msg/s in total, --payload json (a ~300-byte chat message with
#    varying user/time/text fields), --duration s; one run without and one
#    with --deflate (plain first in odd pairs, deflate first in even pairs).
#    roomd-bench itself reads utime+stime of the gateway and of every shard
#    from /proc/PID/stat when its publishing window opens and closes
#    (--cpu-pids), so the CPU seconds cover exactly that window, and counts
#    the WebSocket bytes it received in it (frame headers included, TCP/IP
#    headers not).
# 5. Prints a markdown table (medians over the repeats): CPU seconds of the
#    gateway and of the shards, deliveries/s, loss, latency p50/p99, bytes on
#    the wire, and the ratio compressed/uncompressed. --out FILE keeps the raw
#    roomd-bench JSON lines.
#
# --pin: server processes on CPU 0, the bench client on CPU 1 (taskset).
# --restart: a fresh server for every measured run (default: one server).
# Every step is bounded in time; the default run takes about 45 s plus the
# load wait. Only processes started here are stopped, by PID.
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

PIN=0
BUILD_STEP=1
RATE=200
DURATION=10
MEMBERS=1000
PUBLISHERS=10
SIZE=300
SHARDS=4
REPEAT=1
RESTART=0
MAX_LOAD=0.8
LOAD_WAIT=600
OUT=
DRAIN=3
usage() { sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; }
need() { [ -n "${2:-}" ] || { echo "compress_cpu.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --pin) PIN=1 ;;
        --no-build) BUILD_STEP=0 ;;
        --restart) RESTART=1 ;;
        --rate) need "$1" "${2:-}"; RATE=$2; shift ;;
        --duration) need "$1" "${2:-}"; DURATION=$2; shift ;;
        --members) need "$1" "${2:-}"; MEMBERS=$2; shift ;;
        --publishers) need "$1" "${2:-}"; PUBLISHERS=$2; shift ;;
        --size) need "$1" "${2:-}"; SIZE=$2; shift ;;
        --shards) need "$1" "${2:-}"; SHARDS=$2; shift ;;
        --repeat) need "$1" "${2:-}"; REPEAT=$2; shift ;;
        --max-load) need "$1" "${2:-}"; MAX_LOAD=$2; shift ;;
        --load-wait) need "$1" "${2:-}"; LOAD_WAIT=$2; shift ;;
        --out) need "$1" "${2:-}"; OUT=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compress_cpu.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for v in RATE DURATION MEMBERS PUBLISHERS SIZE SHARDS REPEAT LOAD_WAIT; do
    [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "compress_cpu.sh: bad number for $v: ${!v}" >&2; exit 2; }
done
[[ $REPEAT =~ ^[1-9][0-9]*$ && $SHARDS =~ ^[1-9][0-9]*$ && $LOAD_WAIT =~ ^[0-9]+$ ]] ||
    { echo "compress_cpu.sh: --repeat/--shards need integers >= 1, --load-wait an integer" >&2; exit 2; }

die() { echo "compress_cpu.sh: $*" >&2; exit 1; }

# ---- build -----------------------------------------------------------------
. bench/lib.sh # build_release, free_port, ws_ready, stop_server (run from the repository root)
BUILD=build-rel
[ "$BUILD_STEP" = 1 ] && build_release "$BUILD" compress-cpu-ninja.log gateway/roomd-gateway shard/roomd-shard bench/roomd-bench
GATEWAY=$ROOT/$BUILD/gateway/roomd-gateway
BENCH=$ROOT/$BUILD/bench/roomd-bench
for b in "$GATEWAY" "$BENCH"; do [ -x "$b" ] || die "missing $b"; done
"$BENCH" --help 2>&1 | grep -q -- '--cpu-pids' || die "$BENCH has no --deflate/--cpu-pids (rebuild it)"

SRV_PIN=()
# chat replays a room's last 100 messages to whoever joins: every run gets a
# room of its own, or the joins of one run would start with the last one's
# history (a burst of 100 x members messages).
RUN_SEQ=0
CLI_PIN=()
if [ "$PIN" = 1 ]; then
    command -v taskset >/dev/null || die "--pin needs taskset (util-linux)"
    [ "$(nproc)" -ge 2 ] || die "--pin needs at least 2 CPUs"
    SRV_PIN=(taskset -c 0)
    CLI_PIN=(taskset -c 1)
fi

TMP=$(mktemp -d /tmp/roomd-compress-cpu.XXXXXX)
RESULTS=$TMP/results.jsonl
: >"$RESULTS"

# ---- server lifecycle (only processes started here, by PID) ----------------

cleanup() {
    stop_server
    if [ -n "$OUT" ] && [ -s "$RESULTS" ]; then cp "$RESULTS" "$OUT"; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


start_server() {
    PORT=$(free_port) || die "no free port"
    rm -rf "$TMP/roomd"
    mkdir -p "$TMP/roomd/run" "$TMP/roomd/data"
    "${SRV_PIN[@]}" "$GATEWAY" --shards "$SHARDS" --listen "127.0.0.1:$PORT" \
        --run-dir "$TMP/roomd/run" --data-dir "$TMP/roomd/data" --log-level warn \
        --max-per-ip 0 --msg-rate 0 >>"$TMP/server.log" 2>&1 &
    SRV_PID=$!
    for _ in $(seq 100); do
        kill -0 "$SRV_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "roomd exited at startup"; }
        if ws_ready "$PORT"; then
            SRV_CHILDREN=$(pgrep -P "$SRV_PID" 2>/dev/null | tr '\n' ' ')
            return 0
        fi
        sleep 0.1
    done
    cat "$TMP/server.log" >&2
    die "roomd did not accept WebSocket connections within 10 s"
}

load1() { cut -d' ' -f1 /proc/loadavg; }

wait_load() {
    local waited=0 l
    while :; do
        l=$(load1)
        awk -v l="$l" -v m="$MAX_LOAD" 'BEGIN { exit !(l < m) }' && { echo "$l"; return 0; }
        if [ "$waited" -ge "$LOAD_WAIT" ]; then
            echo "compress_cpu.sh: warning: load average $l still >= $MAX_LOAD after ${waited} s; running anyway" >&2
            echo "$l"
            return 0
        fi
        echo "compress_cpu.sh: load average $l >= $MAX_LOAD; waiting (${waited}/${LOAD_WAIT} s)" >&2
        sleep 10
        waited=$((waited + 10))
    done
}

# run_fanout MODE(plain|deflate) RUN DURATION [extra roomd-bench args]
run_fanout() {
    local mode=$1 run=$2 dur=$3 out rc shards pids l
    shift 3
    kill -0 "$SRV_PID" 2>/dev/null || die "roomd died"
    shards=$(pgrep -P "$SRV_PID" 2>/dev/null | tr '\n' ',' | sed 's/,$//')
    [ -n "$shards" ] || die "no shard processes under gateway $SRV_PID"
    pids="$SRV_PID,$shards"
    l=$(cut -d' ' -f1-3 /proc/loadavg)
    local bound
    bound=$(awk -v d="$dur" -v r="$DRAIN" 'BEGIN { printf "%d", d + 2 * r + 30 }')
    out=$(timeout --kill-after=5 "$bound" "${CLI_PIN[@]}" "$BENCH" fanout \
        --url "ws://127.0.0.1:$PORT/chat/room-$((++RUN_SEQ))" --rooms 1 --members "$MEMBERS" \
        --publishers "$PUBLISHERS" --rate "$RATE" --duration "$dur" --payload json \
        --size "$SIZE" --drain-timeout "$DRAIN" --cpu-pids "$pids" --json --quiet "$@" \
        2>"$TMP/bench.err")
    rc=$?
    out=$(printf '%s\n' "$out" | grep -m1 '^{' || true)
    if [ -z "$out" ]; then
        echo "compress_cpu.sh: $mode run $run: no JSON (exit $rc):" >&2
        tail -5 "$TMP/bench.err" >&2
        out='{"ok":0}'
    elif [ "$rc" != 0 ]; then
        echo "compress_cpu.sh: $mode run $run: roomd-bench exit $rc:" >&2
        grep -i 'error' "$TMP/bench.err" | head -5 >&2
    fi
    if [ "$run" != 0 ]; then
        printf '{"mode":"%s","run":%s,"exit":%s,"nshards":%s,"loadavg":"%s",%s\n' \
            "$mode" "$run" "$rc" "$(echo "$shards" | tr ',' '\n' | wc -l)" "$l" "${out#\{}" >>"$RESULTS"
        printf '  run %s %-8s exit %s  (load %s)\n' "$run" "$mode" "$rc" "$l" >&2
    fi
}

# ---- run ------------------------------------------------------------------
LOAD_START_ALL=$(cut -d' ' -f1-3 /proc/loadavg)
echo "compress_cpu.sh: load average now $LOAD_START_ALL; waiting for < $MAX_LOAD (at most $LOAD_WAIT s)" >&2
WAIT_T0=$(date +%s)
wait_load >/dev/null
WAITED=$(( $(date +%s) - WAIT_T0 ))
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "compress_cpu.sh: starting at load $LOAD_START (waited ${WAITED} s)" >&2

start_server
echo "compress_cpu.sh: roomd gateway $SRV_PID, shards $(pgrep -P "$SRV_PID" | tr '\n' ' ')on port $PORT; warm-up ..." >&2
run_fanout deflate 0 2 --deflate
for r in $(seq "$REPEAT"); do
    if [ $((r % 2)) = 1 ]; then order="plain deflate"; else order="deflate plain"; fi
    for mode in $order; do
        if [ "$RESTART" = 1 ]; then
            stop_server
            start_server
        fi
        if [ "$mode" = deflate ]; then
            run_fanout deflate "$r" "$DURATION" --deflate
        else
            run_fanout plain "$r" "$DURATION"
        fi
    done
done
stop_server
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ---------------------------------------------------------------
/usr/bin/python3 - "$RESULTS" <<PY
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {"plain": [r for r in rows if r.get("mode") == "plain"],
      "deflate": [r for r in rows if r.get("mode") == "deflate"]}

def med(mode, fn):
    vals = []
    for r in by[mode]:
        try:
            v = fn(r)
        except (KeyError, TypeError, ZeroDivisionError):
            v = None
        if v is not None and v >= 0:
            vals.append(v)
    return statistics.median(vals) if vals else None

def shards(r):
    vals = [r["cpu_s_%d" % i] for i in range(1, r["nshards"] + 1)]
    return None if any(v < 0 for v in vals) else sum(vals)

def loss(r):
    return 100.0 * r["lost"] / r["expected"] if r["expected"] else None

metrics = [
    ("CPU s, gateway", lambda r: r["cpu_s_0"], "cpu"),
    ("CPU s, shards (sum)", shards, "cpu"),
    ("CPU s, gateway + shards", lambda r: r["cpu_s_total"], "cpu"),
    ("server CPU, % of one core", lambda r: 100.0 * r["cpu_s_total"] / r["window_s"], "num"),
    ("deliveries/s", lambda r: r["deliveries_per_s"], "int"),
    ("loss", loss, "pct"),
    ("latency p50 (ms)", lambda r: r["latency_ms_p50"], "num"),
    ("latency p99 (ms)", lambda r: r["latency_ms_p99"], "num"),
    ("bytes on the wire to clients (MB)", lambda r: r["window_bytes_in"] / 1e6, "num"),
    ("wire bytes per delivery", lambda r: r["window_bytes_in"] / (r["deliveries_per_s"] * r["duration_s"]), "num"),
    ("client CPU s (roomd-bench)", lambda r: r["client_cpu_s"], "cpu"),
]

def fmt(v, kind):
    if v is None:
        return "n/a"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "pct":
        return f"{v:.3f} %"
    if kind == "cpu":
        return f"{v:.2f}"
    return f"{v:,.1f}" if v >= 100 else f"{v:.3f}" if v < 10 else f"{v:.2f}"

n = max(len(by["plain"]), len(by["deflate"]))
print(f"## permessage-deflate CPU cost, chat fan-out — $STAMP")
print()
print(f"roomd-gateway --shards $SHARDS --max-per-ip 0 --msg-rate 0 (compression defaults: level 1, "
      f"no context takeover, min size 64); 1 room x $MEMBERS members, $PUBLISHERS publishers, "
      f"$RATE msg/s in total, --payload json --size $SIZE, $DURATION s per run, "
      f"{'median of ' + str(n) + ' runs each' if n > 1 else 'one run each'}, "
      f"{'pinned: server on CPU 0, client on CPU 1' if $PIN else 'not pinned'}; "
      f"{'one server for all runs' if not $RESTART else 'fresh server per run'}.")
print(f"Load average: $LOAD_START_ALL before waiting, $LOAD_START at start (waited $WAITED s), "
      f"$LOAD_END at the end (includes this benchmark).")
print()
print("| metric | uncompressed | compressed (--deflate) | compressed/uncompressed |")
print("|---|---:|---:|---:|")
res = {}
for label, fn, kind in metrics:
    a, b = med("plain", fn), med("deflate", fn)
    res[label] = (a, b)
    ratio = "n/a" if a is None or b is None or a == 0 else f"{b / a:.2f}"
    print(f"| {label} | {fmt(a, kind)} | {fmt(b, kind)} | {ratio} |")
print()
d = by["deflate"]
if d:
    neg = [r.get("deflate_conns", 0) for r in d]
    zin = [r.get("msgs_in_compressed", 0) for r in d]
    tot = [r.get("msgs_in", 0) for r in d]
    cb = [r.get("compressed_payload_bytes_in", 0) for r in d]
    ib = [r.get("inflated_payload_bytes_in", 0) for r in d]
    print(f"Compressed runs: deflate negotiated on {min(neg)}..{max(neg)} of $MEMBERS connections; "
          f"{sum(zin):,} of {sum(tot):,} messages arrived compressed; payload "
          f"{(sum(cb) / sum(ib)) if sum(ib) else 0:.3f} of its inflated size.")
p = by["plain"]
if p and any(r.get("msgs_in_compressed", 0) for r in p):
    print("⚠ uncompressed runs received compressed messages")
bad = [r for r in rows if r.get("ok") != 1 or r.get("exit") != 0 or r.get("lost", 1) or r.get("corrupt", 0)
       or r.get("malformed", 0)]
for r in bad:
    keys = ("exit", "connect_failed", "closed_unexpectedly", "protocol_errors", "send_skipped", "lost",
            "duplicated", "reordered", "unexpected", "malformed", "corrupt")
    print(f"⚠ {r.get('mode')} run {r.get('run')}: " + ", ".join(f"{k} {r[k]}" for k in keys if r.get(k)))
print()
g, t = res["CPU s, gateway"], res["CPU s, gateway + shards"]
def verdict(x):
    a, b = x
    if a is None or b is None or a == 0:
        return "n/a"
    return f"{b / a:.2f}x ({'met' if b / a <= 1.5 else 'NOT met'})"
print(f"Target \"compressed broadcast costs at most 1.5x the CPU of the uncompressed one\": "
      f"gateway + shards {verdict(t)}; gateway alone {verdict(g)}.")
if n > 1:
    print()
    print("Per run (CPU s gateway / shards, deliveries/s, p99 ms, load at start):")
    for r in rows:
        try:
            sh = shards(r)
        except KeyError:
            sh = None
        print(f"- run {r.get('run')} {r.get('mode')}: {fmt(r.get('cpu_s_0'), 'cpu')} / "
              f"{fmt(sh, 'cpu')}, {fmt(r.get('deliveries_per_s'), 'int')}, "
              f"{fmt(r.get('latency_ms_p99'), 'num')}, {r.get('loadavg')}")
PY
