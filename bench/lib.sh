# Shared by bench/run.sh, bench/compress_cpu.sh, bench/federation.sh,
# bench/compare.sh, bench/onecore.sh and bench/churn_tls.sh (sourced, not run).

# build_release DIR LOG [TARGET...]: the release build in DIR (meson setup on
# first use, then ninja); on failure the log's tail and exit 1.
build_release() {
    local dir=$1 log=$2
    shift 2
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" -Dbuildtype=release >/dev/null ||
            { echo "$(basename "$0"): meson setup $dir failed" >&2; exit 1; }
    fi
    ninja -C "$dir" "$@" >"$dir/$log" 2>&1 ||
        { tail -30 "$dir/$log"; echo "$(basename "$0"): ninja -C $dir failed (--no-build uses the existing binaries)" >&2; exit 1; }
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One WebSocket echo round trip to /echo/ready (exit 0 if it worked).
ws_ready() {
    /usr/bin/python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.settimeout(1)
    s.sendall(b"GET /echo/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    d = b""
    while b"\r\n\r\n" not in d:
        r = s.recv(4096)
        if not r:
            sys.exit(1)
        d += r
    if not d.startswith(b"HTTP/1.1 101"):
        sys.exit(1)
    mask = b"\x01\x02\x03\x04"
    s.sendall(b"\x81\x84" + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(b"ping")))
    while b"[Durable Object]: ping" not in d:
        r = s.recv(4096)
        if not r:
            sys.exit(1)
        d += r
    s.close()
except OSError:
    sys.exit(1)
PY
}

# The server a script started (SRV_PID, and SRV_CHILDREN it knows of): stop
# it by PID, then make sure its children (roomd's shards) went with it.
SRV_PID=
SRV_CHILDREN=

stop_server() {
    [ -n "$SRV_PID" ] || return 0
    local pid=$SRV_PID i
    SRV_PID=
    # roomd: remember the shards the gateway spawned, to check they go too.
    local kids
    kids=$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ')
    kids="$kids $SRV_CHILDREN"
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$(basename "$0"): server $pid ignored SIGTERM for 10 s; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    for k in $kids; do
        for i in $(seq 30); do kill -0 "$k" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$k" 2>/dev/null; then
            echo "$(basename "$0"): child $k outlived its server; SIGKILL" >&2
            kill -KILL "$k" 2>/dev/null
        fi
    done
    SRV_CHILDREN=
}

# wait_ready NAME LOG: waits up to 15 s until the server just started as
# SRV_PID answers a WebSocket echo on PORT; then sets SRV_CHILDREN and
# SRV_PIDS (the process tree, comma-separated, for --cpu-pids). Calls the
# script's die() if the server exits or never answers.
wait_ready() {
    local name=$1 log=$2 i
    for i in $(seq 150); do
        kill -0 "$SRV_PID" 2>/dev/null || { tail -20 "$log" >&2; die "$name exited at startup"; }
        if ws_ready "$PORT"; then
            SRV_CHILDREN=$(pgrep -P "$SRV_PID" 2>/dev/null | tr '\n' ' ')
            SRV_PIDS=$(echo "$SRV_PID $SRV_CHILDREN" | xargs | tr ' ' ',')
            return 0
        fi
        sleep 0.1
    done
    tail -20 "$log" >&2
    die "$name did not accept WebSocket connections within 15 s"
}

# start_pinned NAME CPU DIR [CERT KEY]: starts roomd (gateway + $SHARDS
# shards), limit (no TLS) or node on CPU, on free loopback ports PORT and,
# with a certificate, TLS_PORT; its files and log go to DIR. Uses GATEWAY,
# LIMIT, NODE (the script's binaries) and waits until it answers.
start_pinned() {
    local name=$1 cpu=$2 dir=$3 cert=${4:-} key=${5:-}
    PORT=$(free_port) || die "no free port"
    TLS_PORT=
    local tls=()
    if [ -n "$cert" ]; then
        TLS_PORT=$(free_port) || die "no free port"
    fi
    mkdir -p "$dir"
    case "$name" in
        roomd)
            [ -n "$cert" ] && tls=(--tls-listen "127.0.0.1:$TLS_PORT" --cert "$cert" --key "$key")
            rm -rf "$dir/run" "$dir/data"
            mkdir -p "$dir/run" "$dir/data"
            taskset -c "$cpu" "$GATEWAY" --shards "${SHARDS:-4}" --listen "127.0.0.1:$PORT" "${tls[@]}" \
                --run-dir "$dir/run" --data-dir "$dir/data" --log-level warn \
                --max-per-ip 0 --msg-rate 0 >>"$dir/server.log" 2>&1 &
            ;;
        limit)
            [ -z "$cert" ] || die "the limit server has no TLS"
            taskset -c "$cpu" "$LIMIT" --port "$PORT" >>"$dir/server.log" 2>&1 &
            ;;
        node)
            [ -n "$cert" ] && tls=(--tls-port "$TLS_PORT" --cert "$cert" --key "$key")
            taskset -c "$cpu" "$NODE" bench/peers/node-ws/server.js --port "$PORT" "${tls[@]}" \
                >>"$dir/server.log" 2>&1 &
            ;;
        *) die "unknown server '$name'" ;;
    esac
    SRV_PID=$!
    wait_ready "$name" "$dir/server.log"
}

# make_cert KIND DIR: a self-signed certificate for localhost/127.0.0.1 in
# DIR/cert.pem and DIR/key.pem. KIND: rsa3072 (the default of compare.sh and
# churn_tls.sh: the server's RSA signature dominates a full handshake and
# the client's RSA verify is cheap), rsa2048, or ec256 (ECDSA P-256: cheap to
# sign, and the client's verify costs more than the server's signature).
make_cert() {
    local kind=$1 dir=$2 alg
    case "$kind" in
        rsa2048) alg=(-newkey rsa:2048) ;;
        rsa3072) alg=(-newkey rsa:3072) ;;
        ec256) alg=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
        *) die "unknown certificate kind '$kind' (rsa2048, rsa3072, ec256)" ;;
    esac
    openssl req -x509 "${alg[@]}" -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 || die "openssl req failed"
}

usage_error() { echo "$(basename "$0"): $*" >&2; exit 2; }

# The defaults of the options common_option parses.
common_defaults() {
    BUILD_STEP=1
    SHARDS=4
    DUR=5
}

# common_option "$@": the options bench/onecore.sh and bench/churn_tls.sh
# share: --no-build, --duration S (whole seconds, 1..15: runs stay under
# 20 s), --servers LIST, --shards N, --help (the script's usage()). Sets
# BUILD_STEP, DUR, SERVERS, SHARDS; COMMON_SHIFT is how many words it took
# (0: not one of these).
common_option() {
    COMMON_SHIFT=2
    case "$1" in
        --no-build) BUILD_STEP=0; COMMON_SHIFT=1 ;;
        --duration)
            DUR=${2:-}
            case "$DUR" in ''|*[!0-9]*) usage_error "--duration takes whole seconds" ;; esac
            [ "$DUR" -ge 1 ] && [ "$DUR" -le 15 ] || usage_error "--duration must be 1..15"
            ;;
        --servers) SERVERS=${2:?--servers needs a list} ;;
        --shards) SHARDS=${2:?--shards needs a number} ;;
        -h|--help) usage; exit 0 ;;
        *) COMMON_SHIFT=0 ;;
    esac
}

# release_binaries LOG: the release build in build-rel (unless BUILD_STEP=0;
# ninja's output in build-rel/LOG); sets BUILD, GATEWAY, BENCH, LIMIT
# (absolute; the script's ROOT) and dies if one of them is missing.
release_binaries() {
    BUILD=build-rel
    [ "${BUILD_STEP:-1}" = 1 ] && build_release "$BUILD" "$1"
    GATEWAY=$ROOT/$BUILD/gateway/roomd-gateway
    BENCH=$ROOT/$BUILD/bench/roomd-bench
    LIMIT=$ROOT/$BUILD/bench/peers/roomd-limit-server
    local b
    for b in "$GATEWAY" "$BENCH" "$LIMIT"; do [ -x "$b" ] || die "missing $b (build $BUILD)"; done
}

# bench_json TAG BOUND_S roomd-bench args...: runs $BENCH on the client CPU
# (${CLI_PIN[@]}) for at most BOUND_S; BENCH_JSON is its JSON line
# ({"ok":0} if it printed none) and BENCH_RC its exit status. What went
# wrong is said on stderr, prefixed with TAG.
bench_json() {
    local tag=$1 bound=$2
    shift 2
    BENCH_JSON=$(timeout --kill-after=5 "$bound" "${CLI_PIN[@]}" "$BENCH" "$@" --json --quiet 2>"$TMP/bench.err")
    BENCH_RC=$?
    BENCH_JSON=$(printf '%s\n' "$BENCH_JSON" | grep -m1 '^{' || true)
    if [ -z "$BENCH_JSON" ]; then
        echo "$tag: no JSON (exit $BENCH_RC):" >&2
        tail -5 "$TMP/bench.err" >&2
        BENCH_JSON='{"ok":0}'
    elif [ "$BENCH_RC" != 0 ]; then
        echo "$tag: roomd-bench exit $BENCH_RC:" >&2
        grep -i 'error' "$TMP/bench.err" | head -5 >&2
    fi
}
