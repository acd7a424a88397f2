#!/bin/bash
# Prepares Docker for the deploy test, on a machine that may have nothing:
#   docker-env.sh up STATE_DIR    installs docker.io, docker-compose and
#       debootstrap if missing, starts dockerd if none answers (its pid goes
#       to STATE_DIR/dockerd.pid, its log to STATE_DIR/dockerd.log), and makes
#       the local debian:bookworm-slim base image if absent (kept as a cache).
#   docker-env.sh down STATE_DIR  stops the dockerd that `up` started, if any.
# Exits non-zero with the reason on stderr when Docker cannot be had: the
# deploy test then fails (it does not skip).
set -u
cd "$(dirname "$0")/../.."
cmd=${1:?up or down}
state=${2:?state directory}
mkdir -p "$state"

case "$cmd" in
up)
    . tests/deps.sh
    # roomd_install_deps also checks the build packages: all present here,
    # since the suite has just built with them.
    roomd_install_deps docker.io docker-compose debootstrap || exit 1
    if ! docker info >/dev/null 2>&1; then
        # No engine answers: start one (no systemd on these machines).
        setsid dockerd >"$state/dockerd.log" 2>&1 </dev/null &
        echo $! >"$state/dockerd.pid"
        for _ in $(seq 120); do
            docker info >/dev/null 2>&1 && break
            kill -0 "$(cat "$state/dockerd.pid")" 2>/dev/null || break
            sleep 0.5
        done
        if ! docker info >/dev/null 2>&1; then
            echo "dockerd did not start; the end of its log:" >&2
            tail -20 "$state/dockerd.log" >&2
            exit 1
        fi
    fi
    deploy/base-image.sh debian:bookworm-slim || { echo "could not make debian:bookworm-slim" >&2; exit 1; }
    ;;
down)
    [ -f "$state/dockerd.pid" ] || exit 0
    pid=$(cat "$state/dockerd.pid")
    # dockerd stops the containerd it started and every container on SIGTERM.
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "dockerd ($pid) did not stop in 30 s" >&2
        exit 1
    fi
    rm -f "$state/dockerd.pid"
    ;;
*)
    echo "usage: $0 up|down STATE_DIR" >&2
    exit 2
    ;;
esac
