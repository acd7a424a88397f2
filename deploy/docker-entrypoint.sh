#!/bin/bash
# Entrypoint of the roomd image (deploy/Dockerfile):
#   gateway [ARGS]  roomd-gateway; listens on 0.0.0.0:8080 and, with TLS,
#                   0.0.0.0:8443. The certificate is ROOMD_CERT/ROOMD_KEY
#                   (default /etc/roomd/tls/{cert,key}.pem, mount them there);
#                   when those files are missing a self-signed development
#                   certificate is made once in /var/lib/roomd/tls for
#                   localhost and ROOMD_DEV_CERT_NAMES (comma-separated).
#   shard [ARGS]    roomd-shard named ROOMD_NAME, by default the container's
#                   hostname (its short id), so every replica of a scaled
#                   service has a name of its own and keeps it across restarts.
#   health          the HEALTHCHECK: the gateway's /healthz answers 200, or the
#                   shard's socket exists.
#   anything else   run as a command.
# Every other option comes from ROOMD_* variables (see --help of each program).
set -eu

gateway_port() {
    local l=${ROOMD_LISTEN-0.0.0.0:8080}
    echo "${l##*:}"
}

health() {
    local cmd
    cmd=$(tr '\0' ' ' </proc/1/cmdline)
    case "$cmd" in
    *roomd-shard*)
        [ -S "${ROOMD_RUN_DIR:-/var/lib/roomd/run}/${ROOMD_NAME:-$(hostname)}.sock" ]
        ;;
    *)
        local port line
        port=$(gateway_port)
        [ -n "$port" ] || exit 0
        exec 3<>"/dev/tcp/127.0.0.1/$port"
        printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
        IFS= read -r -t 3 line <&3
        case "$line" in
        "HTTP/1."?" 200 "*) exit 0 ;;
        *) echo "healthz: $line"; exit 1 ;;
        esac
        ;;
    esac
}

dev_cert() {
    local dir=/var/lib/roomd/tls san="DNS:localhost,IP:127.0.0.1,IP:::1" n
    if [ ! -s "$dir/cert.pem" ] || [ ! -s "$dir/key.pem" ]; then
        local IFS=,
        for n in ${ROOMD_DEV_CERT_NAMES:-}; do
            case "$n" in
            *[!0-9.:a-fA-F]*) san="$san,DNS:$n" ;;
            *) san="$san,IP:$n" ;;
            esac
        done
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
            -subj /CN=localhost -addext "subjectAltName=$san" \
            -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
        echo "roomd-entrypoint: made a development certificate $dir/cert.pem for $san" >&2
    fi
    export ROOMD_CERT=$dir/cert.pem ROOMD_KEY=$dir/key.pem
}

role=${1:-gateway}
[ $# -gt 0 ] && shift
case "$role" in
gateway)
    export ROOMD_LISTEN=${ROOMD_LISTEN-0.0.0.0:8080}
    export ROOMD_TLS_LISTEN=${ROOMD_TLS_LISTEN-0.0.0.0:8443}
    if [ -n "$ROOMD_TLS_LISTEN" ]; then
        cert=${ROOMD_CERT:-/etc/roomd/tls/cert.pem} key=${ROOMD_KEY:-/etc/roomd/tls/key.pem}
        if [ -f "$cert" ] && [ -f "$key" ]; then
            export ROOMD_CERT=$cert ROOMD_KEY=$key
        else
            dev_cert
        fi
    fi
    exec roomd-gateway "$@"
    ;;
shard)
    export ROOMD_NAME=${ROOMD_NAME:-$(hostname)}
    exec roomd-shard "$@"
    ;;
health)
    health
    ;;
*)
    exec "$role" "$@"
    ;;
esac
