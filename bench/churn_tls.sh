#!/bin/bash
# TLS handshakes/s, roomd vs Node (ws), repeated and alternated, and which
# side of each run was the limit.
#
#   bench/churn_tls.sh [--servers "roomd node"] [--cert rsa2048|rsa3072|ec256]
#                      [--rounds N] [--duration S] [--no-build] [--shards N]
#
# Every round starts each server in turn on CPU 0 (taskset) with the same
# certificate (--cert, default rsa3072; one certificate for the whole
# invocation), runs `roomd-bench churn` over wss:// on CPU 1 (32 connections
# at a time, full TLS 1.3 handshakes, no resumption) for --duration (5) s
# with the server's processes in --cpu-pids, and stops it. --rounds (3)
# rounds, so the servers alternate and the machine's other load hits both.
# Each row: handshakes/s, the CPU of each side in % of one core and in µs per
# handshake. The side that spends more CPU per handshake sets the rate when
# both get a core; a side near 100 % of its core is the limit. The last
# lines give each server's median and the ratio of the medians.
# Raw JSON: bench/results/churn-tls-<UTC stamp>.jsonl; markdown on stdout.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=3
CERT=rsa3072
SERVERS="roomd node"
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "churn_tls.sh: $*" >&2; exit 1; }
. bench/lib.sh # common_option, release_binaries, start_pinned, stop_server, make_cert
common_defaults # BUILD_STEP, SHARDS, DUR
while [ $# -gt 0 ]; do
    common_option "$@"
    if [ "$COMMON_SHIFT" = 0 ]; then
        case "$1" in
            --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
            --cert) CERT=${2:?--cert needs rsa2048, rsa3072 or ec256}; shift ;;
            *) echo "churn_tls.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
        esac
        COMMON_SHIFT=1
    fi
    shift "$COMMON_SHIFT"
done
case "$ROUNDS" in ''|*[!0-9]*|0) echo "churn_tls.sh: --rounds takes a number >= 1" >&2; exit 2 ;; esac
[ "$ROUNDS" -le 10 ] || { echo "churn_tls.sh: at most 10 rounds" >&2; exit 2; }
for s in $SERVERS; do
    case "$s" in roomd|node) ;; *) echo "churn_tls.sh: unknown server '$s' (roomd, node)" >&2; exit 2 ;; esac
done

release_binaries churn-tls-sh-ninja.log # BUILD, GATEWAY, BENCH, LIMIT
NODE=$(command -v node || true)
case " $SERVERS " in *" node "*)
    [ -n "$NODE" ] && [ -d bench/peers/node-ws/node_modules/ws ] ||
        die "the node peer needs node and 'npm ci' in bench/peers/node-ws (or --servers roomd)" ;;
esac
command -v taskset >/dev/null || die "needs taskset (util-linux)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs"

TMP=$(mktemp -d /tmp/roomd-churn-tls.XXXXXX)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
RESULTS=$ROOT/bench/results/churn-tls-$STAMP.jsonl
: >"$RESULTS"
cleanup() { stop_server; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
make_cert "$CERT" "$TMP"

for round in $(seq "$ROUNDS"); do
    for srv in $SERVERS; do
        start_pinned "$srv" 0 "$TMP/$srv" "$TMP/cert.pem" "$TMP/key.pem"
        load=$(cut -d' ' -f1 /proc/loadavg)
        out=$(timeout --kill-after=5 $((DUR + 20)) taskset -c 1 "$BENCH" churn \
            --url "wss://127.0.0.1:$TLS_PORT/echo/churn" --conns 32 --duration "$DUR" \
            --drain-timeout 3 --cpu-pids "$SRV_PIDS" --json --quiet 2>"$TMP/bench.err")
        rc=$?
        out=$(printf '%s\n' "$out" | grep -m1 '^{' || true)
        if [ -z "$out" ]; then
            tail -3 "$TMP/bench.err" >&2
            out='{"ok":0}'
        fi
        printf '{"server":"%s","round":%s,"cert":"%s","exit":%s,"loadavg":%s,%s\n' "$srv" "$round" \
            "$CERT" "$rc" "$load" "${out#\{}" >>"$RESULTS"
        echo "  round $round $srv: exit $rc (load $load)" >&2
        stop_server
    done
done

/usr/bin/python3 - "$RESULTS" "$CERT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"TLS certificate: {sys.argv[2]}; servers on CPU 0, roomd-bench churn on CPU 1")
print()
print("| round | server | handshakes/s | server cpu | client cpu | server µs/hs | client µs/hs | load |")
print("|---:|---|---:|---:|---:|---:|---:|---:|")
med = {}
for r in rows:
    hs, w = r.get("handshakes"), r.get("window_s")
    if r.get("ok") != 1 or not hs or not w or r.get("cpu_s_total", -1) < 0:
        print(f"| {r['round']} | {r['server']} | failed (exit {r['exit']}) | | | | | {r['loadavg']} |")
        continue
    med.setdefault(r["server"], []).append(r["handshakes_per_s"])
    print(f"| {r['round']} | {r['server']} | {r['handshakes_per_s']:,.0f} "
          f"| {100 * r['cpu_s_total'] / w:.0f} % | {100 * r['client_cpu_s'] / w:.0f} % "
          f"| {1e6 * r['cpu_s_total'] / hs:.0f} | {1e6 * r['client_cpu_s'] / hs:.0f} | {r['loadavg']} |")
print()
for s, v in med.items():
    print(f"{s}: median {statistics.median(v):,.0f} handshakes/s over {len(v)} runs")
if "roomd" in med and "node" in med:
    print(f"roomd/node (medians): {statistics.median(med['roomd']) / statistics.median(med['node']):.2f}")
PY
echo "Raw JSON lines: ${RESULTS#"$ROOT"/}"
