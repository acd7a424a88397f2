/* roomd-shard: one process, one thread, one event loop. Owns the objects
 * that hash to it and serves any number of gateways on
 * <run-dir>/<name>.sock. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rd_config.h"
#include "rd_log.h"
#include "rd_os.h"
#include "sh.h"
#include "sh_fed.h"

sh_server sh;

#define OPT(n, t, f, d, lo, hi, mv, h) { n, t, offsetof(sh_config, f), d, lo, hi, mv, h }
static const rd_cfg_opt shard_opts[] = {
    OPT("name", RD_CFG_STR, name, NULL, 0, 0, "NAME",
        "shard name; the socket is <run-dir>/<name>.sock (required)"),
    OPT("run-dir", RD_CFG_STR, run_dir, "./run", 0, 0, "DIR", "directory of the shard sockets"),
    OPT("data-dir", RD_CFG_STR, data_dir, "./data", 0, 0, "DIR", "directory of object storage"),
    OPT("log-level", RD_CFG_STR, log_level, "info", 0, 0, "LEVEL", "error, warn, info or debug"),
    OPT("log-format", RD_CFG_STR, log_format, "logfmt", 0, 0, "logfmt|json", "one line per event, as logfmt or JSON"),
    OPT("config", RD_CFG_STR, config, NULL, 0, 0, "FILE",
        "read options from FILE (name = value lines); flags and ROOMD_* override it"),
    OPT("max-link-frame", RD_CFG_SIZE, max_frame, "16m", 1024, 16 << 20, "BYTES",
        "largest gateway protocol frame accepted"),
    OPT("module", RD_CFG_LIST, modules, NULL, 0, 0, "PATH",
        "load object classes from a shared object (see roomd_module.h)"),
    OPT("durability", RD_CFG_STR, durability, "normal", 0, 0, "normal|full",
        "normal: a commit survives a process crash; full: it also survives power loss (fsync)"),
    OPT("hibernate-after", RD_CFG_MS, hibernate_after, "10s", 0, 86400000, "DURATION",
        "evict an object with connections after this long without events (its destroy runs, its "
        "WebSockets stay open, the next event re-runs create); 0: never"),
    OPT("link-high-water", RD_CFG_SIZE, link_high, "16m", 65536, 1 << 30, "BYTES",
        "output queued to one gateway before the shard stops reading input (resumes at half)"),
    OPT("redis", RD_CFG_STR, redis, NULL, 0, 0, "URL",
        "federation: redis://[[user]:password@]host[:port][/db]; broadcasts reach the same object's "
        "members on every shard sharing this Redis (see README, Federation)"),
    OPT("redis-timeout", RD_CFG_MS, redis_timeout, "2s", 100, 600000, "DURATION",
        "a Redis connection waiting this long for a reply (or to connect) is hung: counted, "
        "dropped and reconnected"),
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: roomd-shard --name NAME [options]\n\n"
               "Runs the objects that hash to NAME, for any number of roomd gateways.\n\n"
               "Options (each also settable as ROOMD_<NAME> in the environment):\n");
    rd_cfg_help(shard_opts, f);
    fprintf(f, "  %-28s %s\n  %-28s %s\n  %-28s %s\n", "--help", "show this help and exit", "--version",
            "print the version and exit", "--check-config", "check the options (and certificates, modules) and exit");
}

static int name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return s[0] != '.';
}

/* Bind the socket; a stale file from a dead shard is replaced, a live one
 * (something accepts connections on it) is a refusal. */
static int listen_socket(char err[RD_ERR_LEN])
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s.sock", sh.cfg.run_dir, sh.cfg.name);
    if (n < 0 || (size_t)n >= sizeof sa.sun_path) {
        snprintf(err, RD_ERR_LEN, "socket path %s/%s.sock is too long", sh.cfg.run_dir, sh.cfg.name);
        return -ENAMETOOLONG;
    }
    snprintf(sh.sock_path, sizeof sh.sock_path, "%s", sa.sun_path);
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
        if (connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            snprintf(err, RD_ERR_LEN, "%s is in use by another running shard", sa.sun_path);
            return -EADDRINUSE;
        }
        close(probe);
    }
    unlink(sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
        int e = errno;
        snprintf(err, RD_ERR_LEN, "%s: %s", sa.sun_path, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    sh.listen_fd = fd;
    return 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    sh_object_tick();
    sh_alarm_tick();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    rd_info("msg=\"stopping\" signal=%d", (int)sig);
    sh.stopping = true;
    event_base_loopbreak(sh.base);
}

int main(int argc, char **argv)
{
    char err[RD_ERR_LEN] = "";
    static const char *const actions[] = { "help", "version", "check-config", NULL };
    const char *action = NULL;

    if (rd_cfg_load(shard_opts, &sh.cfg, argc, argv, actions, &action, err) < 0)
        goto fail_cfg;
    if (action && strcmp(action, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (action && strcmp(action, "version") == 0) {
        printf("roomd-shard 0.1.0 (protocol %d, module API %d)\n", PR_VERSION, ROOMD_MODULE_API_VERSION);
        return 0;
    }
    if (!sh.cfg.name || !name_valid(sh.cfg.name)) {
        snprintf(err, sizeof err, "--name is required: 1-64 of [A-Za-z0-9._-], not starting with '.'");
        goto fail_cfg;
    }
    if (strcmp(sh.cfg.durability, "normal") != 0 && strcmp(sh.cfg.durability, "full") != 0) {
        snprintf(err, sizeof err, "--durability: '%s' is not 'normal' or 'full'", sh.cfg.durability);
        goto fail_cfg;
    }
    int lvl = rd_log_level_parse(sh.cfg.log_level);
    if (lvl < 0) {
        snprintf(err, sizeof err, "--log-level: '%s' is not one of error, warn, info, debug",
                 sh.cfg.log_level);
        goto fail_cfg;
    }
    if (strcmp(sh.cfg.log_format, "logfmt") != 0 && strcmp(sh.cfg.log_format, "json") != 0) {
        snprintf(err, sizeof err, "--log-format: '%s' is not 'logfmt' or 'json'", sh.cfg.log_format);
        goto fail_cfg;
    }
    rd_log_init(sh.cfg.name, lvl, strcmp(sh.cfg.log_format, "json") == 0);
    bool check = action && strcmp(action, "check-config") == 0;

    signal(SIGPIPE, SIG_IGN);
    rd_raise_nofile();
    int r;
    if (!check && ((r = rd_mkdir_p(sh.cfg.run_dir)) < 0 || (r = rd_mkdir_p(sh.cfg.data_dir)) < 0)) {
        snprintf(err, sizeof err, "cannot create %s or %s: %s", sh.cfg.run_dir, sh.cfg.data_dir,
                 strerror(-r));
        goto fail;
    }
    sh_module_register_builtins();
    for (size_t i = 0; sh.cfg.modules && sh.cfg.modules[i]; i++)
        if (sh_module_load(sh.cfg.modules[i], err) < 0)
            goto fail_cfg;
    if (check) {
        printf("roomd-shard: configuration ok\n");
        rd_cfg_free(shard_opts, &sh.cfg);
        return 0;
    }
    rd_map_init(&sh.objects, 1);
    if (sh_alarm_init(err) < 0)
        goto fail;
    sh.base = event_base_new();
    if (!sh.base) {
        snprintf(err, sizeof err, "event_base_new failed");
        goto fail;
    }
    if (listen_socket(err) < 0)
        goto fail;
    /* Federation (--redis): a refused password stops us here. */
    sh_fed_set_timeout(sh.cfg.redis_timeout);
    if (sh_fed_start(sh.cfg.redis, err) < 0)
        goto fail;
    sh.ev_listen = event_new(sh.base, sh.listen_fd, EV_READ | EV_PERSIST, sh_link_accept_cb, NULL);
    event_add(sh.ev_listen, NULL);
    struct event *ev_tick = event_new(sh.base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tick = { 0, 250000 };
    event_add(ev_tick, &tick);
    struct event *ev_term = evsignal_new(sh.base, SIGTERM, on_signal, NULL);
    struct event *ev_int = evsignal_new(sh.base, SIGINT, on_signal, NULL);
    event_add(ev_term, NULL);
    event_add(ev_int, NULL);
    rd_info("msg=\"shard ready\" socket=%s pid=%d", sh.sock_path, (int)getpid());

    /* One loop turn, then the deferred work: batched writes and freeing what
     * callbacks closed (Redis' beforeSleep). */
    while (!sh.stopping) {
        event_base_loop(sh.base, EVLOOP_ONCE);
        sh_commit_dirty(); /* before anything of this turn leaves */
        sh_link_flush_all();
        sh_link_backpressure();
        sh_link_reap();
    }

    event_free(sh.ev_listen);
    close(sh.listen_fd);
    unlink(sh.sock_path);
    sh_link_flush_all();
    while (sh.links)
        sh_link_close(sh.links, "shard stopping");
    sh_link_reap();
    sh_commit_dirty();
    sh_object_shutdown();
    sh_fed_stop(); /* before the event base goes */
    sh_federate_shutdown(); /* after: Redis' last callbacks have run */
    sh_alarm_shutdown();
    free(sh.dirty);
    event_free(ev_tick);
    event_free(ev_term);
    event_free(ev_int);
    event_base_free(sh.base);
    rd_cfg_free(shard_opts, &sh.cfg);
    rd_info("msg=\"stopped\"");
    return 0;

fail_cfg:
    fprintf(stderr, "roomd-shard: %s\n", err);
    rd_cfg_free(shard_opts, &sh.cfg);
    return 2;
fail:
    rd_err("msg=\"cannot start\" err=\"%s\"", err);
    rd_cfg_free(shard_opts, &sh.cfg);
    return 1;
}
