#!/bin/bash
# roomd vs every reference peer, every scenario, one run, ratios (issue 9).
#
#   bench/compare.sh [--no-pin] [--quick] [--no-build] [--duration S]
#                    [--servers "roomd limit node workerd"] [--rates "10 20 50 ..."]
#                    [--idle-conns N] [--shards N] [--cert rsa2048|rsa3072|ec256]
#                    [--tls-rounds N]
#
# Servers, each started in turn on free loopback ports, run through every
# scenario, then stopped by PID (only processes started here):
#   roomd    gateway + --shards (4) shards, plaintext and TLS listeners
#   limit    bench/peers/limit_server.c: one thread, epoll, no routing (no TLS)
#   node     bench/peers/node-ws/server.js: Node.js + ws, one process
#   workerd  bench/peers/workerd: the seeds' Durable Objects on workerd
#   roomd-full  (counter scenario only) roomd with --durability full, because
#            workerd's storage fsyncs every commit and roomd's default does not
# Scenarios (roomd-bench unless said; durations default to 5 s):
#   echo_1        echo, 1 connection: RTT p50/p99
#   echo_100      echo, 100 connections on one object: round trips/s
#   fan_<rate>    fan-out 10 rooms x 1000 members, 2 publishers per room,
#                 <rate> msg/s in total (deliveries requested = rate x 999;
#                 workerd: 990 members, see below, rate x 989);
#                 the rates of --rates are climbed in order until one is not
#                 sustained (loss, skipped sends, or in-window deliveries
#                 < 97 % of rate x 999 x (window - p50 latency) / window)
#   idle, idle_tls  bench/idle_rss.py: RSS of the server's process tree per
#                 idle WebSocket (--idle-conns, default 5000)
#   churn, churn_tls  roomd-bench churn, 32 at a time: handshakes/s. Every
#                 TLS server uses the same certificate, RSA-3072 by default
#                 (--cert). The OpenSSL 3.0 client spends ~0.7 ms of CPU per
#                 full handshake: with ECDSA P-256 that is more than roomd
#                 spends (the client's core set the rate), with RSA-2048
#                 about as much; with RSA-3072 the servers' signatures make
#                 them the limit (servers at 98-100 % of their core, client
#                 ~35 %; bench/README.md, churn; bench/churn_tls.sh).
#                 churn_tls runs --tls-rounds (3) times per server and the
#                 report takes each server's median run
#   counter       echo --message '{"op":"increment"}' x 50 connections on one
#                 durable counter (roomd, roomd-full, workerd)
# Output: a markdown table with ratios and the issue's acceptance checks on
# stdout (also kept in bench/results/compare-<UTC stamp>.md), every raw JSON
# line in bench/results/compare-<UTC stamp>.jsonl.
#
# Servers run on CPU 0 and every client on CPU 1 (taskset) unless --no-pin.
# --quick: 1 s runs, 500 idle connections, 3 rates, 1 TLS round (validates the script;
#   the numbers mean nothing). --no-build: use the binaries in build-rel.
# Every bench run is bounded by `timeout`; the default run takes ~8-10 min.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

PIN=1
QUICK=0
BUILD_STEP=1
SHARDS=4
DUR=5
SERVERS="roomd limit node workerd"
RATES="10 20 50 100 200 300 400 600 800 1000 1200"
IDLE_CONNS=5000
CERT=rsa3072
TLS_ROUNDS=3
usage() { sed -n '2,47p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --no-pin) PIN=0 ;;
        --pin) PIN=1 ;;
        --quick) QUICK=1 ;;
        --no-build) BUILD_STEP=0 ;;
        --duration) DUR=${2:?--duration needs seconds}; shift ;;
        --servers) SERVERS=${2:?--servers needs a list}; shift ;;
        --rates) RATES=${2:?--rates needs a list}; shift ;;
        --idle-conns) IDLE_CONNS=${2:?--idle-conns needs a number}; shift ;;
        --shards) SHARDS=${2:?--shards needs a number}; shift ;;
        --cert) CERT=${2:?--cert needs rsa2048, rsa3072 or ec256}; shift ;;
        --tls-rounds) TLS_ROUNDS=${2:?--tls-rounds needs a number}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    DUR=1; IDLE_CONNS=500; RATES="10 50 200"; TLS_ROUNDS=1
fi
case "$TLS_ROUNDS" in ''|*[!0-9]*|0) echo "compare.sh: --tls-rounds takes a whole number >= 1" >&2; exit 2 ;; esac
case "$DUR" in ''|*[!0-9]*) echo "compare.sh: --duration takes whole seconds" >&2; exit 2 ;; esac
[ "$DUR" -ge 1 ] && [ "$DUR" -le 15 ] || { echo "compare.sh: --duration must be 1..15 (runs stay under 20 s)" >&2; exit 2; }
case "$CERT" in rsa2048|rsa3072|ec256) ;; *) echo "compare.sh: --cert: rsa2048, rsa3072 or ec256" >&2; exit 2 ;; esac
for s in $SERVERS; do
    case "$s" in roomd|limit|node|workerd) ;; *) echo "compare.sh: unknown server '$s'" >&2; exit 2 ;; esac
done
WARMUP=1
DRAIN=3
ROOMS=10
MEMBERS=1000
PUBLISHERS=2

die() { echo "compare.sh: $*" >&2; exit 1; }

# ---- build and install -------------------------------------------------------
. bench/lib.sh # release_binaries, free_port, ws_ready, stop_server, bench_json (from the repository root)
release_binaries compare-sh-ninja.log # BUILD, GATEWAY, BENCH, LIMIT

NODE=$(command -v node || true)
PEERS=$ROOT/bench/peers
# npm ci (from the committed package-lock.json) when node_modules is missing.
npm_install() {
    local dir=$1
    [ -d "$dir/node_modules" ] && return 0
    command -v npm >/dev/null || return 1
    echo "compare.sh: npm ci in ${dir#"$ROOT"/} ..." >&2
    (cd "$dir" && timeout 300 npm ci --no-audit --no-fund >"$dir/npm-ci.log" 2>&1) ||
        { tail -5 "$dir/npm-ci.log" >&2; return 1; }
}
case " $SERVERS " in *" node "*)
    { [ -n "$NODE" ] && npm_install "$PEERS/node-ws"; } ||
        die "the node peer needs node and npm (bench/peers/node-ws); drop it with --servers" ;;
esac
WORKERD=
case " $SERVERS " in *" workerd "*)
    npm_install "$PEERS/workerd" || die "npm ci in bench/peers/workerd failed; drop workerd with --servers"
    for w in "$PEERS/workerd/node_modules/@cloudflare/workerd-linux-64/bin/workerd" \
             "$PEERS/workerd/node_modules/workerd/bin/workerd"; do
        if [ -x "$w" ] && "$w" --version >/dev/null 2>&1; then WORKERD=$w; break; fi
    done
    [ -n "$WORKERD" ] || die "no runnable workerd binary under bench/peers/workerd/node_modules" ;;
esac

# Lift the anti-abuse limits that a load test from one address trips by design.
ROOMD_EXTRA=(--max-per-ip 0 --msg-rate 0)

SRV_PIN=()
CLI_PIN=()
if [ "$PIN" = 1 ]; then
    command -v taskset >/dev/null || die "pinning needs taskset (util-linux); or --no-pin"
    [ "$(nproc)" -ge 2 ] || die "pinning needs 2 CPUs; or --no-pin"
    SRV_PIN=(taskset -c 0)
    CLI_PIN=(taskset -c 1)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null # node does not raise its own limit

TMP=$(mktemp -d /tmp/roomd-compare.XXXXXX)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
RESULTS=$ROOT/bench/results/compare-$STAMP.jsonl
REPORT=$ROOT/bench/results/compare-$STAMP.md
: >"$RESULTS"
make_cert "$CERT" "$TMP"


cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME: sets SRV_PID, PORT, TLS_PORT ("" without TLS), SRV_PIDS
# (the process tree, comma-separated, for --cpu-pids)
start_server() {
    local name=$1
    PORT=$(free_port) || die "no free port"
    TLS_PORT=$(free_port) || die "no free port"
    local log=$TMP/server-$name.log
    case "$name" in
        roomd|roomd-full)
            rm -rf "$TMP/$name"
            mkdir -p "$TMP/$name/run" "$TMP/$name/data"
            local dur=normal
            [ "$name" = roomd-full ] && dur=full
            "${SRV_PIN[@]}" "$GATEWAY" --shards "$SHARDS" --listen "127.0.0.1:$PORT" \
                --tls-listen "127.0.0.1:$TLS_PORT" --cert "$TMP/cert.pem" --key "$TMP/key.pem" \
                --run-dir "$TMP/$name/run" --data-dir "$TMP/$name/data" --log-level warn \
                --durability "$dur" "${ROOMD_EXTRA[@]}" >>"$log" 2>&1 &
            ;;
        limit)
            TLS_PORT=
            "${SRV_PIN[@]}" "$LIMIT" --port "$PORT" >>"$log" 2>&1 &
            ;;
        node)
            "${SRV_PIN[@]}" "$NODE" "$PEERS/node-ws/server.js" --port "$PORT" \
                --tls-port "$TLS_PORT" --cert "$TMP/cert.pem" --key "$TMP/key.pem" >>"$log" 2>&1 &
            ;;
        workerd)
            # config-tls.capnp embeds cert.pem/key.pem from beside it.
            rm -rf "$TMP/workerd"
            mkdir -p "$TMP/workerd/storage"
            cp "$PEERS/workerd/config.capnp" "$PEERS/workerd/config-tls.capnp" \
                "$PEERS/workerd/worker.js" "$TMP/cert.pem" "$TMP/key.pem" "$TMP/workerd/"
            "${SRV_PIN[@]}" "$WORKERD" serve "$TMP/workerd/config-tls.capnp" \
                --socket-addr "http=127.0.0.1:$PORT" --socket-addr "https=127.0.0.1:$TLS_PORT" \
                --directory-path "do-storage=$TMP/workerd/storage" >>"$log" 2>&1 &
            ;;
    esac
    SRV_PID=$!
    wait_ready "$name" "$log"
}

# record SERVER SCENARIO RATE JSON EXIT
record() {
    printf '{"server":"%s","scenario":"%s","rate":%s,"pin":%s,"exit":%s,%s\n' \
        "$1" "$2" "$3" "$PIN" "$5" "${4#\{}" >>"$RESULTS"
}

# bench SERVER SCENARIO RATE BOUND_S -- roomd-bench args...
bench() {
    local srv=$1 sc=$2 rate=$3 bound=$4
    shift 5
    bench_json "compare.sh: $srv $sc" "$bound" "$@"
    record "$srv" "$sc" "$rate" "$BENCH_JSON" "$BENCH_RC"
    printf '  %-8s %-12s exit %s\n' "$srv" "$sc" "$BENCH_RC" >&2
}

# idle SERVER SCENARIO URL [CAFILE]
idle() {
    local srv=$1 sc=$2 url=$3 ca=${4:-} out rc
    local args=(--gateway-pid "$SRV_PID" --url "$url" --conns "$IDLE_CONNS" --timeout 60 --settle 6)
    [ -n "$ca" ] && args+=(--cafile "$ca")
    out=$(timeout --kill-after=5 90 "${CLI_PIN[@]}" /usr/bin/python3 bench/idle_rss.py "${args[@]}" 2>"$TMP/idle.err")
    rc=$?
    out=$(printf '%s\n' "$out" | grep -m1 '^{' || true)
    if [ -z "$out" ]; then
        echo "compare.sh: $srv $sc: idle_rss.py failed (exit $rc):" >&2
        tail -3 "$TMP/idle.err" >&2
        out='{"ok":0}'
    else
        out="{\"ok\":1,${out#\{}"
    fi
    record "$srv" "$sc" 0 "$out" "$rc"
    printf '  %-8s %-12s exit %s\n' "$srv" "$sc" "$rc" >&2
}

# sustained: the last fan-out run kept pace without loss (the criterion is
# compare_report.py's, so the ladder and the report agree).
sustained() { /usr/bin/python3 bench/compare_report.py --sustained "$RESULTS"; }

alive_or_die() { kill -0 "$SRV_PID" 2>/dev/null || die "$1 died during the run (log: $TMP/server-$1.log)"; }

# ---- run --------------------------------------------------------------------
printf '{"scenario":"meta","timestamp":"%s","git":"%s","pin":%s,"shards":%s,"nproc":%s,"loadavg":"%s","kernel":"%s","duration":%s,"idle_conns":%s,"servers":"%s","node":"%s","ws":"%s","workerd":"%s","openssl":"%s","cert":"%s"}\n' \
    "$STAMP" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$PIN" "$SHARDS" "$(nproc)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$(uname -r)" "$DUR" "$IDLE_CONNS" "$SERVERS" \
    "$([ -n "$NODE" ] && "$NODE" --version)" \
    "$(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$PEERS/node-ws/node_modules/ws/package.json" 2>/dev/null | head -1)" \
    "$([ -n "$WORKERD" ] && "$WORKERD" --version 2>/dev/null)" "$(openssl version)" "$CERT" >>"$RESULTS"
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    echo "compare.sh: warning: load average $load1 > 0.5; results will be noisy" >&2
fi

T_START=$(date +%s)
for srv in $SERVERS; do
    echo "compare.sh: $srv ..." >&2
    start_server "$srv"
    url=ws://127.0.0.1:$PORT
    B=$((DUR + WARMUP + 15))
    bench "$srv" echo_1 0 "$B" -- echo --url "$url/echo/bench" --conns 1 \
        --duration "$DUR" --warmup "$WARMUP" --drain-timeout "$DRAIN" --cpu-pids "$SRV_PIDS"
    bench "$srv" echo_100 0 "$B" -- echo --url "$url/echo/bench" --conns 100 \
        --duration "$DUR" --warmup "$WARMUP" --drain-timeout "$DRAIN" --cpu-pids "$SRV_PIDS"
    alive_or_die "$srv"

    # Fan-out: 10,000 connections per run. workerd holds two descriptors per
    # WebSocket (it dies with EMFILE on accept() beyond its limit), so under
    # this sandbox's RLIMIT_NOFILE cap (20,000) its rooms get fewer members.
    members=$MEMBERS
    if [ "$srv" = workerd ]; then
        fit=$(( ($(ulimit -Hn) - 200) / 2 / ROOMS ))
        [ "$fit" -lt "$members" ] && members=$fit
    fi
    B=$((20 + DUR + 2 * DRAIN + 10))
    for rate in $RATES; do
        alive_or_die "$srv"
        bench "$srv" "fan_$rate" "$rate" "$B" -- fanout --url "$url/chat/fan$rate-$STAMP" \
            --rooms "$ROOMS" --members "$members" --publishers "$PUBLISHERS" --rate "$rate" \
            --duration "$DUR" --drain-timeout "$DRAIN" --connect-timeout 20 \
            --cpu-pids "$SRV_PIDS"
        sustained || break
    done
    alive_or_die "$srv"

    B=$((DUR + 15))
    bench "$srv" churn 0 "$B" -- churn --url "$url/echo/churn" --conns 32 --duration "$DUR" \
        --drain-timeout "$DRAIN" --cpu-pids "$SRV_PIDS"
    if [ -n "$TLS_PORT" ]; then
        for _ in $(seq "$TLS_ROUNDS"); do
            bench "$srv" churn_tls 0 "$B" -- churn --url "wss://127.0.0.1:$TLS_PORT/echo/churn" \
                --conns 32 --duration "$DUR" --drain-timeout "$DRAIN" --cpu-pids "$SRV_PIDS"
        done
    fi
    alive_or_die "$srv"

    if [ "$srv" = roomd ] || [ "$srv" = workerd ]; then
        bench "$srv" counter 0 "$((DUR + WARMUP + 15))" -- echo --url "$url/counter/c$STAMP" \
            --conns 50 --message '{"op":"increment"}' --duration "$DUR" --warmup "$WARMUP" \
            --drain-timeout "$DRAIN" --cpu-pids "$SRV_PIDS"
    fi

    # Idle memory on a freshly started server each time, so the heap left
    # over from the load scenarios does not count either way.
    stop_server
    start_server "$srv"
    idle "$srv" idle "ws://127.0.0.1:$PORT"
    if [ -n "$TLS_PORT" ]; then
        stop_server
        start_server "$srv"
        idle "$srv" idle_tls "wss://127.0.0.1:$TLS_PORT" "$TMP/cert.pem"
    fi
    alive_or_die "$srv"
    stop_server
done
case " $SERVERS " in *" roomd "*)
    echo "compare.sh: roomd-full (--durability full) ..." >&2
    start_server roomd-full
    bench roomd-full counter 0 "$((DUR + WARMUP + 15))" -- echo --url "ws://127.0.0.1:$PORT/counter/c$STAMP" \
        --conns 50 --message '{"op":"increment"}' --duration "$DUR" --warmup "$WARMUP" \
        --drain-timeout "$DRAIN" --cpu-pids "$SRV_PIDS"
    stop_server ;;
esac
echo "compare.sh: scenarios took $(( $(date +%s) - T_START )) s" >&2

# ---- report -----------------------------------------------------------------
/usr/bin/python3 bench/compare_report.py "$RESULTS" | tee "$REPORT"
echo "Raw JSON lines: ${RESULTS#"$ROOT"/}; this report: ${REPORT#"$ROOT"/}"
