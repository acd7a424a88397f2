#!/bin/sh
# Installs what is missing, builds, makes a development certificate, and runs
# roomd in the foreground: gateway + 4 shards on https://localhost:8443 and
# http://localhost:8080 (embedded storage under ./data, sockets under ./run).
# Extra arguments go to roomd-gateway (see build/gateway/roomd-gateway --help).
set -eu
cd "$(dirname "$0")/.."
. tests/deps.sh
roomd_install_deps
if [ ! -f build/build.ninja ]; then
    meson setup build -Dbuildtype=release >/dev/null
fi
ninja -C build >/dev/null
mkdir -p run/tls data
if [ ! -f run/tls/cert.pem ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
        -keyout run/tls/key.pem -out run/tls/cert.pem 2>/dev/null
    echo "made a development certificate: run/tls/cert.pem" >&2
fi
echo "roomd: https://localhost:8443 and http://localhost:8080 (Ctrl-C stops)" >&2
exec build/gateway/roomd-gateway --shards 4 --listen 127.0.0.1:8080 --tls-listen 127.0.0.1:8443 \
    --cert run/tls/cert.pem --key run/tls/key.pem --run-dir run --data-dir data "$@"
