# Shared by bench/run.sh, bench/compress_cpu.sh and bench/federation.sh
# (sourced, not run).

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
