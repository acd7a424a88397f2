/* roomd-gateway: TLS/HTTP/WebSocket edge that routes each object to the
 * shard owning it (rendezvous hashing over the shard names). */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw.h"
#include "rd_config.h"
#include "rd_hash.h"
#include "rd_log.h"
#include "rd_os.h"
#include "rd_redis.h"
#include "rd_time.h"

gw_server gw;

#define OPT(n, t, f, d, lo, hi, mv, h) { n, t, offsetof(gw_config, f), d, lo, hi, mv, h }
static const rd_cfg_opt gateway_opts[] = {
    OPT("listen", RD_CFG_STR, listen, "127.0.0.1:8080", 0, 0, "HOST:PORT",
        "plaintext HTTP/WebSocket listener (\"\" to disable)"),
    OPT("tls-listen", RD_CFG_STR, tls_listen, NULL, 0, 0, "HOST:PORT",
        "TLS listener (needs --cert and --key)"),
    OPT("cert", RD_CFG_STR, cert, NULL, 0, 0, "FILE", "TLS certificate chain (PEM)"),
    OPT("key", RD_CFG_STR, key, NULL, 0, 0, "FILE", "TLS private key (PEM)"),
    OPT("tls-offload", RD_CFG_BOOL, tls_offload, "true", 0, 0, NULL,
        "after a TLS 1.3 handshake free OpenSSL's connection state (~14 KB) and protect records in the "
        "gateway (AES-GCM, ChaCha20-Poly1305; KeyUpdate supported); --no-tls-offload: OpenSSL keeps every connection"),
    OPT("shards", RD_CFG_INT, shards, "4", 1, 256, "N",
        "spawn mode: start and supervise N shard processes named shard-0..shard-N-1"),
    OPT("shard-bin", RD_CFG_STR, shard_bin, NULL, 0, 0, "PATH",
        "roomd-shard binary; unset: next to this binary, then ../shard/, then $PATH"),
    OPT("module", RD_CFG_LIST, modules, NULL, 0, 0, "PATH",
        "spawn mode: passed to every shard (roomd-shard --module): load classes from a shared object"),
    OPT("durability", RD_CFG_STR, durability, "normal", 0, 0, "normal|full",
        "spawn mode: passed to every shard: full makes every storage commit wait for fsync"),
    OPT("hibernate-after", RD_CFG_STR, hibernate_after, "10s", 0, 0, "DURATION",
        "spawn mode: passed to every shard: evict objects idle this long, their WebSockets staying open"),
    OPT("redis", RD_CFG_STR, redis, NULL, 0, 0, "URL",
        "spawn mode: passed to every shard: federation through Redis, "
        "redis://[[user]:password@]host[:port][/db] (README, Federation)"),
    OPT("shard-dir", RD_CFG_STR, shard_dir, NULL, 0, 0, "DIR",
        "discovery mode: route to the shards whose sockets (NAME.sock) are in DIR, following them as "
        "they appear and disappear; --shards and the spawn options are then unused"),
    OPT("shard-timeout", RD_CFG_MS, shard_timeout, "2s", 100, 3600000, "DURATION",
        "discovery mode: a shard unreachable this long leaves the set and its objects move"),
    OPT("handoff-timeout", RD_CFG_MS, handoff_timeout, "10s", 100, 3600000, "DURATION",
        "when the shard set changes, how long a moving object waits for its old shard to let go"),
    OPT("handoff-concurrency", RD_CFG_INT, handoff_concurrency, "8", 1, 100000, "N",
        "objects moved at once when the shard set changes; the others keep being served by their "
        "old shard until their turn (a moving object's clients wait for its old shard to let go)"),
    OPT("admin-key", RD_CFG_STR, admin_key, NULL, 0, 0, "KEY",
        "API key for /admin/... (Authorization: Bearer KEY); unset: the admin API is off"),
    OPT("workers", RD_CFG_INT, workers, "1", 1, 64, "N",
        "gateway processes sharing the listening ports (SO_REUSEPORT), for more cores; this one "
        "spawns the shards (or follows --shard-dir), the others route by its shard set "
        "(<run-dir>/gateway.members)"),
    OPT("reuseport", RD_CFG_BOOL, reuseport, "false", 0, 0, NULL,
        "set SO_REUSEPORT on the listeners, so independent gateways can share a port (on with --workers)"),
    OPT("worker", RD_CFG_INT, worker, "0", 0, 64, "N", "internal: set on the processes --workers starts"),
    OPT("redis-timeout", RD_CFG_STR, redis_timeout, "2s", 0, 0, "DURATION",
        "spawn mode: passed to every shard: a Redis connection waiting this long for a reply is "
        "hung: dropped and reconnected"),
    OPT("run-dir", RD_CFG_STR, run_dir, "./run", 0, 0, "DIR", "directory of the shard sockets"),
    OPT("data-dir", RD_CFG_STR, data_dir, "./data", 0, 0, "DIR", "object storage, passed to shards"),
    OPT("name", RD_CFG_STR, name, NULL, 0, 0, "NAME", "gateway name in logs and shard links; unset: gw-<host>-<pid>"),
    OPT("log-level", RD_CFG_STR, log_level, "info", 0, 0, "LEVEL", "error, warn, info or debug"),
    OPT("log-format", RD_CFG_STR, log_format, "logfmt", 0, 0, "logfmt|json", "one line per event, as logfmt or JSON"),
    OPT("config", RD_CFG_STR, config, NULL, 0, 0, "FILE",
        "read options from FILE (name = value lines); ROOMD_* and flags override it"),
    OPT("route", RD_CFG_STR, route, NULL, 0, 0, "KEY",
        "print the shard owning object KEY (\"class/name\") among the --shards names and exit"),
    OPT("max-head", RD_CFG_SIZE, max_head, "8k", 1024, 1 << 20, "BYTES",
        "largest HTTP request head (431 beyond)"),
    OPT("max-headers", RD_CFG_INT, max_headers, "64", 1, GW_HTTP_MAX_HEADERS, "N",
        "most request header fields (431 beyond)"),
    OPT("max-body", RD_CFG_SIZE, max_body, "1m", 0, 64 << 20, "BYTES",
        "largest HTTP request body (413 beyond)"),
    OPT("max-frame", RD_CFG_SIZE, max_frame, "1m", 125, 64 << 20, "BYTES",
        "largest WebSocket frame payload (close 1009 beyond)"),
    OPT("max-message", RD_CFG_SIZE, max_message, "1m", 125, 64 << 20, "BYTES",
        "largest WebSocket message, all fragments (close 1009 beyond)"),
    OPT("max-key", RD_CFG_SIZE, max_key, "256", 1, 256, "BYTES",
        "longest object name after percent-decoding (400 beyond)"),
    OPT("resume-timeout", RD_CFG_MS, resume_timeout, "30s", 0, 3600000, "DURATION",
        "when a shard restarts its WebSockets wait (not read) this long for it, then close 1012"),
    OPT("handshake-timeout", RD_CFG_MS, handshake_timeout, "10s", 100, 3600000, "DURATION",
        "time for TLS + a complete request head; also the keep-alive idle time (408/close)"),
    OPT("close-timeout", RD_CFG_MS, close_timeout, "5s", 100, 600000, "DURATION",
        "time to flush the last bytes to a closing client"),
    OPT("max-connections", RD_CFG_INT, max_connections, "100000", 1, 10000000, "N",
        "client connections at once; accepting pauses at the limit"),
    OPT("max-per-ip", RD_CFG_INT, max_per_ip, "256", 0, 10000000, "N",
        "client connections from one address (429 beyond); 0: no limit"),
    OPT("idle-timeout", RD_CFG_MS, idle_timeout, "60s", 0, 86400000, "DURATION",
        "WebSocket silent this long is closed (1001); a ping is sent at half of it; 0: never"),
    OPT("msg-rate", RD_CFG_INT, msg_rate, "1000", 0, 100000000, "N",
        "messages per second one WebSocket may send, sustained (close 1008 beyond); 0: no limit"),
    OPT("msg-burst", RD_CFG_INT, msg_burst, "2000", 1, 100000000, "N",
        "messages one WebSocket may send in a burst above --msg-rate"),
    OPT("max-write-per-turn", RD_CFG_SIZE, max_write_turn, "256k", 4096, 64 << 20, "BYTES",
        "bytes written to one client per event-loop turn, so one fast reader cannot starve others"),
    OPT("max-outbound", RD_CFG_SIZE, max_outbound, "4m", 65536, 1 << 30, "BYTES",
        "bytes queued for one client that does not read; then --slow-policy applies"),
    OPT("slow-policy", RD_CFG_STR, slow_policy, "close", 0, 0, "close|drop-oldest",
        "slow consumer: close with 1008 \"slow consumer\", or drop its oldest queued messages"),
    OPT("link-high-water", RD_CFG_SIZE, link_high, "8m", 65536, 1 << 30, "BYTES",
        "bytes queued to one shard before the clients feeding it are paused (resumed at half)"),
    OPT("allowed-origins", RD_CFG_STR, allowed_origins, NULL, 0, 0, "LIST",
        "comma-separated Origin values browsers may connect from, e.g. https://app.example; "
        "a host may start with *. for any subdomain; others get 403; unset: any origin"),
    OPT("compression", RD_CFG_BOOL, compression, "true", 0, 0, NULL,
        "accept permessage-deflate (RFC 7692) when clients offer it"),
    OPT("compression-context-takeover", RD_CFG_BOOL, compression_takeover, "false", 0, 0, NULL,
        "allow per-connection compression contexts (better ratio, ~300 KiB per connection); off: "
        "every message is compressed alone and a broadcast once for all"),
    OPT("compression-level", RD_CFG_INT, compression_level, "1", 0, 9, "N", "zlib level for outgoing messages"),
    OPT("compression-window-bits", RD_CFG_INT, compression_window, "15", 9, 15, "N",
        "largest deflate window, both directions"),
    OPT("compression-mem-level", RD_CFG_INT, compression_mem_level, "8", 1, 9, "N",
        "zlib memLevel for outgoing messages: lower resets faster per message, compresses less"),
    OPT("compression-min-size", RD_CFG_SIZE, compression_min, "64", 0, 1 << 20, "BYTES",
        "outgoing messages smaller than this are sent uncompressed"),
    OPT("publish-key", RD_CFG_STR, publish_key, NULL, 0, 0, "KEY",
        "API key for the backend endpoints POST /<class>/<name>/publish and /rpc/<method> "
        "(Authorization: Bearer KEY); unset: they are off"),
    OPT("public-url", RD_CFG_STR, public_url, NULL, 0, 0, "URL",
        "the gateway's origin as clients reach it (https://rooms.example); /exports.js points there; "
        "unset: the scheme and Host of each request"),
    OPT("jwt-secret", RD_CFG_STR, jwt_secret, NULL, 0, 0, "SECRET",
        "accept HS256 JSON Web Tokens signed with this secret (prefer ROOMD_JWT_SECRET: flags show in ps)"),
    OPT("jwt-key", RD_CFG_STR, jwt_key, NULL, 0, 0, "FILE",
        "accept RS256 (RSA) or ES256 (EC P-256) JSON Web Tokens verified with this PEM public key"),
    OPT("jwt-leeway", RD_CFG_MS, jwt_leeway, "30s", 0, 600000, "DURATION",
        "clock skew allowed when checking a token's exp and nbf"),
    OPT("jwt-class", RD_CFG_LIST, jwt_classes, NULL, 0, 0, "CLASS",
        "connections and requests to this class need a valid token ('*': every class); "
        "elsewhere a token is optional, but an invalid one is still refused"),
    OPT("drain-timeout", RD_CFG_MS, drain_timeout, "5s", 0, 600000, "DURATION",
        "on SIGTERM: time to close every client with 1001 and flush before exiting"),
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: roomd-gateway [options]\n\n"
               "Accepts HTTP and WebSocket clients and routes /<class>/<name> to the shard\n"
               "owning that object.\n\n"
               "Options (each also settable as ROOMD_<NAME> in the environment,\n"
               "e.g. ROOMD_TLS_LISTEN, or in a --config file; on/off options take --no-<name>):\n");
    rd_cfg_help(gateway_opts, f);
    fprintf(f, "  %-28s %s\n  %-28s %s\n  %-28s %s\n", "--help", "show this help and exit", "--version",
            "print the version and exit", "--check-config", "check the options (and certificates, modules) and exit");
}

/* "host:port", "[v6]:port" or ":port" (all addresses). */
static int listen_on(const char *spec, char err[RD_ERR_LEN])
{
    char host[256];
    const char *port;
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1]) {
        snprintf(err, RD_ERR_LEN, "listen address '%s' is not HOST:PORT", spec);
        return -EINVAL;
    }
    size_t hl = (size_t)(colon - spec);
    if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
        spec++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        snprintf(err, RD_ERR_LEN, "listen address '%s' is too long", spec);
        return -EINVAL;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    port = colon + 1;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *res;
    int r = getaddrinfo(hl ? host : NULL, port, &hints, &res);
    if (r != 0) {
        snprintf(err, RD_ERR_LEN, "cannot resolve '%s': %s", spec, gai_strerror(r));
        return -EINVAL;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (gw.cfg.reuseport || gw.cfg.workers > 1)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, RD_ERR_LEN, "cannot listen on %s: %s", spec, strerror(e));
        return -e;
    }
    return fd;
}

/* "a, b,c" -> gw.origins. Each must be scheme://host[:port], host may start
 * with "*." for any subdomain. */
static int split_origins(char err[RD_ERR_LEN])
{
    char *list = strdup(gw.cfg.allowed_origins), *save = NULL;
    for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        const char *sep = strstr(tok, "://");
        if (!sep || sep == tok || !sep[3] || strchr(sep + 3, '/') ||
            (strchr(sep + 3, '*') && strncmp(sep + 3, "*.", 2) != 0) || strchr(sep + 4, '*')) {
            snprintf(err, RD_ERR_LEN, "--allowed-origins: '%s' is not scheme://host[:port] "
                     "(host may start with '*.')", tok);
            free(list);
            return -EINVAL;
        }
        gw.origins = rd_xrealloc(gw.origins, (gw.norigins + 1) * sizeof *gw.origins);
        gw.origins[gw.norigins++] = strdup(tok);
    }
    free(list);
    return 0;
}

/* SIGHUP in spawn mode with --config: apply a changed "shards" count. */
static void reload_shard_count(void)
{
    if (!gw.cfg.config || gw.cfg.shard_dir)
        return;
    gw_config fresh;
    memset(&fresh, 0, sizeof fresh);
    char err[RD_ERR_LEN] = "";
    char *argv[] = { "roomd-gateway", "--config", gw.cfg.config, NULL };
    const char *action = NULL;
    if (rd_cfg_load(gateway_opts, &fresh, 3, argv, NULL, &action, err) < 0) {
        rd_err("msg=\"config reload failed; keeping the shard count\" err=\"%s\"", err);
        rd_cfg_free(gateway_opts, &fresh);
        return;
    }
    if (gw_spawn_resize((size_t)fresh.shards, err) < 0)
        rd_err("msg=\"shard resize refused\" err=\"%s\"", err);
    rd_cfg_free(gateway_opts, &fresh);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    reload_shard_count();
    if (!gw.ssl_ctx)
        return;
    /* New handshakes get the new certificate; live connections keep the old
     * context, which OpenSSL frees when the last of them goes. */
    char err[RD_ERR_LEN];
    SSL_CTX *ctx = gw_tls_ctx_new(gw.cfg.cert, gw.cfg.key, err);
    if (!ctx) {
        rd_err("msg=\"certificate reload failed; keeping the old one\" err=\"%s\"", err);
        return;
    }
    SSL_CTX_free(gw.ssl_ctx);
    gw.ssl_ctx = ctx;
    rd_info("msg=\"certificate reloaded\" cert=%s", gw.cfg.cert);
}

static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
    gw_spawn_resize_requested();
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    rd_info("msg=\"stopping\" signal=%d", (int)sig);
    gw.stopping = true;
    event_base_loopbreak(gw.base);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    static unsigned ticks;
    gw_conn_tick();
    gw_conn_handoff_tick();
    gw_spawn_tick();
    gw_link_tick(); /* discovery: a member unreachable for --shard-timeout leaves within a tick */
    if (ticks++ % 4 == 0)
        gw_link_ping_all();
}

/* Keep headroom for shard links, listeners and logs. */
static void fit_nofile(void)
{
    int64_t lim = rd_raise_nofile() - 64;
    if (gw.cfg.max_connections > lim) {
        rd_info("msg=\"lowering max-connections to fit the descriptor limit\" from=%lld to=%lld",
                (long long)gw.cfg.max_connections, (long long)(lim > 1 ? lim : 1));
        gw.cfg.max_connections = lim > 1 ? lim : 1;
    }
}

/* Spawn mode's shards, members of the routing set from the start. */
static void make_spawn_shards(void)
{
    char name[64];
    for (int64_t i = 0; i < gw.cfg.shards; i++) {
        snprintf(name, sizeof name, "shard-%lld", (long long)i);
        gw_shard_get(name, true)->member = true;
    }
}

/* --route: the owner among shard-0..shard-N-1. */
static void print_route(void)
{
    size_t n = (size_t)gw.cfg.shards;
    char(*names)[64] = rd_xcalloc(n, sizeof *names);
    const char **p = rd_xcalloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "shard-%zu", i);
        p[i] = names[i];
    }
    printf("%s\n", p[rd_hrw_pick(gw.cfg.route, strlen(gw.cfg.route), p, n)]);
    free(p);
    free(names);
}

static void find_self_dir(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(gw.self_dir, sizeof gw.self_dir, ".");
        return;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(gw.self_dir, sizeof gw.self_dir, "%s", exe);
}

int main(int argc, char **argv)
{
    char err[RD_ERR_LEN] = "";
    static const char *const actions[] = { "help", "version", "check-config", NULL };
    const char *action = NULL;
    gw.listen_fd[0] = gw.listen_fd[1] = -1;

    if (rd_cfg_load(gateway_opts, &gw.cfg, argc, argv, actions, &action, err) < 0)
        goto fail_cfg;
    if (action && strcmp(action, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (action && strcmp(action, "version") == 0) {
        printf("roomd-gateway 0.1.0 (protocol %d)\n", PR_VERSION);
        return 0;
    }
    if (gw.cfg.route) {
        print_route();
        rd_cfg_free(gateway_opts, &gw.cfg);
        return 0;
    }
    int lvl = rd_log_level_parse(gw.cfg.log_level);
    if (lvl < 0) {
        snprintf(err, sizeof err, "--log-level: '%s' is not one of error, warn, info, debug",
                 gw.cfg.log_level);
        goto fail_cfg;
    }
    if (strcmp(gw.cfg.slow_policy, "close") != 0 && strcmp(gw.cfg.slow_policy, "drop-oldest") != 0) {
        snprintf(err, sizeof err, "--slow-policy: '%s' is not 'close' or 'drop-oldest'", gw.cfg.slow_policy);
        goto fail_cfg;
    }
    uint64_t hib;
    if (rd_parse_ms(gw.cfg.hibernate_after, &hib) < 0) {
        snprintf(err, sizeof err, "--hibernate-after: '%s' is not a duration (e.g. 10s)", gw.cfg.hibernate_after);
        goto fail_cfg;
    }
    uint64_t rto;
    if (rd_parse_ms(gw.cfg.redis_timeout, &rto) < 0 || rto < 100 || rto > 600000) {
        snprintf(err, sizeof err, "--redis-timeout: '%s' is not a duration from 100ms to 10m",
                 gw.cfg.redis_timeout);
        goto fail_cfg;
    }
    if (gw.cfg.redis && gw.cfg.redis[0]) {
        /* A wrong password is a startup error here, not a shard that keeps
         * failing; an unreachable Redis is not (shards retry by themselves). */
        rd_redis_url u;
        if (rd_redis_url_parse(gw.cfg.redis, &u, err) < 0)
            goto fail_cfg;
        int rr = rd_redis_check(&u, 2000, err);
        rd_redis_url_free(&u);
        if (rr == -EACCES)
            goto fail_cfg;
        if (rr < 0)
            fprintf(stderr, "roomd-gateway: warning: %s; the shards will keep trying\n", err);
    }
    if (gw.cfg.allowed_origins && gw.cfg.allowed_origins[0] && split_origins(err) < 0)
        goto fail_cfg;
    if (gw.cfg.jwt_secret && gw.cfg.jwt_secret[0]) {
        /* RFC 7518 §3.2: an HS256 key is at least as long as the hash. */
        if (strlen(gw.cfg.jwt_secret) < 32) {
            snprintf(err, sizeof err, "--jwt-secret: HS256 needs a secret of at least 32 bytes (RFC 7518)");
            goto fail_cfg;
        }
        gw.jwt.secret = (const uint8_t *)gw.cfg.jwt_secret;
        gw.jwt.secret_len = strlen(gw.cfg.jwt_secret);
    }
    if (gw.cfg.jwt_key && gw.cfg.jwt_key[0] && gw_jwt_key_load(gw.cfg.jwt_key, &gw.jwt.pub, err) < 0)
        goto fail_cfg;
    if (gw.cfg.jwt_classes && gw.cfg.jwt_classes[0] && !gw.jwt.secret && !gw.jwt.pub) {
        snprintf(err, sizeof err, "--jwt-class needs --jwt-secret or --jwt-key");
        goto fail_cfg;
    }
    gw.pmd_policy = (ws_pmd_policy){
        .enabled = gw.cfg.compression,
        .server_context_takeover = gw.cfg.compression_takeover,
        .client_context_takeover = gw.cfg.compression_takeover,
        .max_window_bits = (uint8_t)gw.cfg.compression_window,
        .mem_level = (int)gw.cfg.compression_mem_level,
        .level = (int)gw.cfg.compression_level,
    };
    if (ws_pmd_policy_check(&gw.pmd_policy, err) < 0)
        goto fail_cfg;
    bool want_plain = gw.cfg.listen && gw.cfg.listen[0];
    bool want_tls = gw.cfg.tls_listen && gw.cfg.tls_listen[0];
    if (want_tls && (!gw.cfg.cert || !gw.cfg.key)) {
        snprintf(err, sizeof err, "--tls-listen needs --cert and --key");
        goto fail_cfg;
    }
    if (!want_plain && !want_tls) {
        snprintf(err, sizeof err, "nothing to listen on: give --listen and/or --tls-listen");
        goto fail_cfg;
    }
    if (gw.cfg.name)
        snprintf(gw.name, sizeof gw.name, "%s", gw.cfg.name);
    else {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(gw.name, sizeof gw.name, "gw-%s-%d", host, (int)getpid());
    }
    if (gw.cfg.worker > 0) {
        /* One of a --workers parent's: the parent's shards, found by their
         * sockets; no spawning, no workers of its own. */
        size_t nl = strlen(gw.name);
        snprintf(gw.name + nl, sizeof gw.name - nl, "-w%lld", (long long)gw.cfg.worker);
        if (!gw.cfg.shard_dir)
            gw.cfg.shard_dir = strdup(gw.cfg.run_dir);
        gw.cfg.workers = 1;
        gw.cfg.reuseport = true;
    }
    if (strcmp(gw.cfg.log_format, "logfmt") != 0 && strcmp(gw.cfg.log_format, "json") != 0) {
        snprintf(err, sizeof err, "--log-format: '%s' is not 'logfmt' or 'json'", gw.cfg.log_format);
        goto fail_cfg;
    }
    rd_log_init("gateway", lvl, strcmp(gw.cfg.log_format, "json") == 0);
    bool check = action && strcmp(action, "check-config") == 0;
    find_self_dir();

    signal(SIGPIPE, SIG_IGN);
    fit_nofile();
    int r;
    if (!check && ((r = rd_mkdir_p(gw.cfg.run_dir)) < 0 || (r = rd_mkdir_p(gw.cfg.data_dir)) < 0)) {
        snprintf(err, sizeof err, "cannot create %s or %s: %s", gw.cfg.run_dir, gw.cfg.data_dir,
                 strerror(-r));
        goto fail;
    }
    if (want_tls && !(gw.ssl_ctx = gw_tls_ctx_new(gw.cfg.cert, gw.cfg.key, err)))
        goto fail;
    if (check) {
        printf("roomd-gateway: configuration ok\n");
        if (gw.ssl_ctx)
            SSL_CTX_free(gw.ssl_ctx);
        EVP_PKEY_free(gw.jwt.pub);
        rd_cfg_free(gateway_opts, &gw.cfg);
        return 0;
    }
    gw_assets_init();
    rd_map_init(&gw.conns, 0);
    rd_map_init(&gw.ips, 1);
    rd_map_init(&gw.autoresp, 1);
    rd_map_init(&gw.handoffs, 1);
    gw.inotify_fd = -1;
    gw.scratch = rd_xmalloc(GW_SCRATCH);
    gw.base = event_base_new();
    if (!gw.base) {
        snprintf(err, sizeof err, "event_base_new failed");
        goto fail;
    }
    if (want_plain && (gw.listen_fd[0] = listen_on(gw.cfg.listen, err)) < 0)
        goto fail;
    if (want_tls && (gw.listen_fd[1] = listen_on(gw.cfg.tls_listen, err)) < 0)
        goto fail;
    for (int i = 0; i < 2; i++) {
        if (gw.listen_fd[i] < 0)
            continue;
        event_assign(&gw.ev_listen[i], gw.base, gw.listen_fd[i], EV_READ | EV_PERSIST, gw_accept_cb,
                     i ? (void *)&gw : NULL);
        event_add(&gw.ev_listen[i], NULL);
    }
    evtimer_assign(&gw.ev_accept_retry, gw.base, gw_accept_retry_cb, NULL);
    event_assign(&gw.ev_tick, gw.base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tick = { 0, 250000 };
    event_add(&gw.ev_tick, &tick);
    struct event ev_term, ev_int, ev_hup, ev_usr1;
    evsignal_assign(&ev_hup, gw.base, SIGHUP, on_hup, NULL);
    evsignal_add(&ev_hup, NULL);
    evsignal_assign(&ev_usr1, gw.base, SIGUSR1, on_usr1, NULL);
    evsignal_add(&ev_usr1, NULL);
    evsignal_assign(&ev_term, gw.base, SIGTERM, on_stop_signal, NULL);
    evsignal_assign(&ev_int, gw.base, SIGINT, on_stop_signal, NULL);
    evsignal_add(&ev_term, NULL);
    evsignal_add(&ev_int, NULL);

    if (gw.cfg.shard_dir) {
        if (gw_discover_init(err) < 0)
            goto fail;
    } else {
        make_spawn_shards();
        gw_spawn_start();
        gw_link_init();
    }
    if (gw.cfg.workers > 1 && gw_spawn_workers(argc, argv) < 0) {
        snprintf(err, sizeof err, "cannot start the workers");
        goto fail;
    }
    gw_route_update();
    rd_info("msg=\"gateway ready\" name=%s listen=%s tls_listen=%s shards=%zu mode=%s pid=%d", gw.name,
            want_plain ? gw.cfg.listen : "-", want_tls ? gw.cfg.tls_listen : "-", gw.nshards,
            gw.cfg.shard_dir ? "discovery" : "spawn", (int)getpid());

    /* One loop turn, then the deferred work: batched writes to shards, to
     * clients, to shards again (what the client sweep produced), then
     * freeing what callbacks closed (Redis' beforeSleep). The shards go
     * first: what clients sent is processed while we write to clients. */
    while (!gw.stopping) {
        event_base_loop(gw.base, EVLOOP_ONCE | (gw_conn_flush_pending() ? EVLOOP_NONBLOCK : 0));
        gw_link_flush_all();
        gw_conn_flush_all();
        gw_link_flush_all();
        gw_conn_reap();
    }

    /* Stop accepting, say goodbye to every client, and give the close
     * frames a bounded moment to leave before the rest are cut. The
     * workers do the same with theirs at the same time. */
    gw_spawn_stop_workers();
    for (int i = 0; i < 2; i++)
        if (gw.listen_fd[i] >= 0) {
            event_del(&gw.ev_listen[i]);
            close(gw.listen_fd[i]);
        }
    evtimer_del(&gw.ev_accept_retry);
    gw_conn_close_all(WS_CLOSE_GOING_AWAY, "server shutting down");
    uint64_t until = rd_mono_ms() + gw.cfg.drain_timeout;
    while (gw.nconns > 0 && rd_mono_ms() < until) {
        gw_conn_flush_all();
        gw_link_flush_all();
        gw_conn_reap();
        if (gw.nconns > 0)
            event_base_loop(gw.base, EVLOOP_ONCE | (gw_conn_flush_pending() ? EVLOOP_NONBLOCK : 0));
    }
    gw_conn_kill_all();
    gw_link_flush_all();
    gw_conn_reap();
    gw_link_shutdown();
    gw_spawn_stop();
    rd_info("msg=\"stopped\"");
    event_del(&gw.ev_tick);
    evsignal_del(&ev_term);
    evsignal_del(&ev_int);
    evsignal_del(&ev_hup);
    evsignal_del(&ev_usr1);
    for (size_t i = 0; i < gw.norigins; i++)
        free(gw.origins[i]);
    free(gw.origins);
    rd_map_free(&gw.ips);
    gw_autoresp_free_all();
    for (size_t i = 0; i < gw.ndeflaters; i++)
        ws_deflater_free(gw.deflaters[i]);
    for (size_t i = 0; i < gw.ninflaters; i++)
        ws_inflater_free(gw.inflaters[i]);
    rd_buf_free(&gw.inflated);
    rd_buf_free(&gw.deflated);
    if (gw.ssl_ctx)
        SSL_CTX_free(gw.ssl_ctx);
    free(gw.scratch);
    gw_conn_handoff_free_all();
    rd_map_free(&gw.handoffs);
    for (size_t i = 0; i < gw.nshards; i++)
        free(gw.shards[i]);
    gw_assets_free();
    EVP_PKEY_free(gw.jwt.pub);
    free(gw.shards);
    free(gw.route);
    free(gw.route_names);
    rd_map_free(&gw.conns);
    event_base_free(gw.base);
    rd_cfg_free(gateway_opts, &gw.cfg);
    return 0;

fail_cfg:
    fprintf(stderr, "roomd-gateway: %s\n", err);
    EVP_PKEY_free(gw.jwt.pub);
    rd_cfg_free(gateway_opts, &gw.cfg);
    return 2;
fail:
    rd_err("msg=\"cannot start\" err=\"%s\"", err);
    fprintf(stderr, "roomd-gateway: %s\n", err);
    EVP_PKEY_free(gw.jwt.pub);
    rd_cfg_free(gateway_opts, &gw.cfg);
    return 1;
}
