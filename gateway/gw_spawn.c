/* Spawn mode: the gateway starts its N shards, restarts one that dies (with
 * backoff), changes their number at runtime, and stops them on exit. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gw.h"
#include "rd_log.h"
#include "rd_time.h"

static struct event ev_chld;
static bool chld_on;
/* --workers */
static pid_t *workers;          /* [1..n-1]; 0: not running */
static uint64_t *worker_started;
static size_t nworkers;
static char **worker_argv;      /* ours, plus --worker N */
static int worker_argc;         /* ours */
static struct event ev_worker_restart;
static uint64_t joining_since_ms; /* the last resize that added shards */

static const char *shard_binary(void)
{
    static char path[1024];
    if (gw.cfg.shard_bin)
        return gw.cfg.shard_bin;
    /* Next to the gateway when installed; ../shard/ in the build tree. */
    static const char *const rel[] = { "/roomd-shard", "/../shard/roomd-shard" };
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s%s", gw.self_dir, rel[i]);
        if (access(path, X_OK) == 0)
            return path;
    }
    return "roomd-shard"; /* $PATH */
}

static void spawn_one(gw_shard *s)
{
    const char *bin = shard_binary();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        rd_err("msg=\"fork failed\" shard=%s err=\"%s\"", s->name, strerror(errno));
        return;
    }
    if (pid == 0) {
        /* Die with the gateway, whatever kills it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(0);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *argv[64] = { (char *)bin, "--name", s->name, "--run-dir", gw.cfg.run_dir,
                           "--data-dir", gw.cfg.data_dir, "--log-level", gw.cfg.log_level,
                           "--log-format", gw.cfg.log_format,
                           "--hibernate-after", gw.cfg.hibernate_after,
                           "--durability", gw.cfg.durability,
                           "--redis-timeout", gw.cfg.redis_timeout };
        int n = 17;
        for (size_t i = 0; gw.cfg.modules && gw.cfg.modules[i] && n < 61; i++) {
            argv[n++] = "--module";
            argv[n++] = gw.cfg.modules[i];
        }
        argv[n] = NULL;
        /* Federation: through the environment (ROOMD_REDIS), so a password
         * in the URL does not show in the process list. */
        if (gw.cfg.redis && *gw.cfg.redis)
            setenv("ROOMD_REDIS", gw.cfg.redis, 1);
        execvp(bin, argv);
        fprintf(stderr, "roomd-gateway: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    s->pid = pid;
    s->started_mono_ms = rd_mono_ms();
    rd_info("msg=\"shard started\" shard=%s pid=%d binary=%s", s->name, (int)pid, bin);
}

void gw_spawn_restart_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_shard *s = arg;
    if (!gw.stopping && s->pid == 0 && !s->retiring)
        spawn_one(s);
}

static void spawn_worker(size_t i)
{
    char num[16];
    snprintf(num, sizeof num, "%zu", i);
    worker_argv[worker_argc + 1] = num; /* the value of the trailing --worker */
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        rd_err("msg=\"fork failed\" worker=%zu err=\"%s\"", i, strerror(errno));
        return;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv("/proc/self/exe", worker_argv);
        fprintf(stderr, "roomd-gateway: cannot start worker %zu: %s\n", i, strerror(errno));
        _exit(127);
    }
    worker_argv[worker_argc + 1] = NULL;
    workers[i] = pid;
    worker_started[i] = rd_mono_ms();
    rd_info("msg=\"worker started\" worker=%zu pid=%d", i, (int)pid);
}

static void worker_restart_cb(evutil_socket_t fd, short what, void *arg)
{
    for (size_t i = 1; i < nworkers && !gw.stopping; i++)
        if (workers[i] == 0)
            spawn_worker(i);
}

/* A worker died: start it again (after a second if it died young). */
static bool worker_exited(pid_t pid, int status)
{
    for (size_t i = 1; i < nworkers; i++) {
        if (workers[i] != pid)
            continue;
        workers[i] = 0;
        if (gw.stopping)
            return true;
        rd_warn("msg=\"worker died\" worker=%zu pid=%d status=%d", i, (int)pid,
                WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
        uint64_t ran = rd_mono_ms() - worker_started[i];
        struct timeval tv = { ran < 1000 ? 1 : 0, ran < 1000 ? 0 : 50000 };
        evtimer_add(&ev_worker_restart, &tv);
        return true;
    }
    return false;
}

static void chld_cb(evutil_socket_t sig, short what, void *arg);

static void chld_watch(void)
{
    if (chld_on)
        return;
    evsignal_assign(&ev_chld, gw.base, SIGCHLD, chld_cb, NULL);
    evsignal_add(&ev_chld, NULL);
    chld_on = true;
}

int gw_spawn_workers(int argc, char **argv)
{
    nworkers = (size_t)gw.cfg.workers;
    workers = rd_xcalloc(nworkers, sizeof *workers);
    worker_started = rd_xcalloc(nworkers, sizeof *worker_started);
    worker_argc = argc;
    worker_argv = rd_xcalloc((size_t)argc + 3, sizeof *worker_argv);
    for (int i = 0; i < argc; i++)
        worker_argv[i] = argv[i];
    worker_argv[argc] = "--worker";
    worker_argv[argc + 1] = NULL; /* the number goes here in spawn_worker */
    worker_argv[argc + 2] = NULL;
    evtimer_assign(&ev_worker_restart, gw.base, worker_restart_cb, NULL);
    chld_watch();
    for (size_t i = 1; i < nworkers; i++)
        spawn_worker(i);
    return 0;
}

static void chld_cb(evutil_socket_t sig, short what, void *arg)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (worker_exited(pid, status))
            continue;
        for (size_t i = 0; i < gw.nshards; i++) {
            gw_shard *s = gw.shards[i];
            if (s->pid != pid)
                continue;
            s->pid = 0;
            if (gw.stopping)
                break;
            if (s->retiring) {
                rd_info("msg=\"shard stopped\" shard=%s pid=%d reason=\"removed by a resize\"", s->name,
                        (int)pid);
                break;
            }
            uint64_t up = rd_mono_ms() - s->started_mono_ms;
            /* A shard that ran a while earns a fast restart; one that keeps
             * dying waits longer each time, up to 5 s. */
            s->restart_ms = up > 10000 ? 100 : (s->restart_ms ? s->restart_ms * 2 : 100);
            if (s->restart_ms > 5000)
                s->restart_ms = 5000;
            s->restarts++;
            if (WIFSIGNALED(status))
                rd_warn("msg=\"shard died\" shard=%s pid=%d signal=%d restart_in_ms=%llu", s->name,
                        (int)pid, WTERMSIG(status), (unsigned long long)s->restart_ms);
            else
                rd_warn("msg=\"shard exited\" shard=%s pid=%d status=%d restart_in_ms=%llu", s->name,
                        (int)pid, WEXITSTATUS(status), (unsigned long long)s->restart_ms);
            struct timeval tv = { (time_t)(s->restart_ms / 1000), (suseconds_t)(s->restart_ms % 1000) * 1000 };
            evtimer_add(&s->ev_restart, &tv);
            break;
        }
    }
}

int gw_spawn_start(void)
{
    if (gw.cfg.shard_dir)
        return 0; /* discovery mode: the shards are someone else's */
    chld_watch();
    for (size_t i = 0; i < gw.nshards; i++)
        spawn_one(gw.shards[i]);
    return 0;
}

/* Spawned shards in use (not retiring) are shard-0..shard-(n-1). */
static size_t spawned_count(void)
{
    size_t n = 0;
    for (size_t i = 0; i < gw.nshards; i++)
        n += !gw.shards[i]->retiring;
    return n;
}

int gw_spawn_resize(size_t n, char err[RD_ERR_LEN])
{
    if (gw.cfg.shard_dir) {
        snprintf(err, RD_ERR_LEN, "discovery mode (--shard-dir): start or stop shard processes instead");
        return -EINVAL;
    }
    if (n < 1 || n > 256) {
        snprintf(err, RD_ERR_LEN, "shard count must be 1..256");
        return -EINVAL;
    }
    size_t have = spawned_count();
    if (n == have)
        return 0;
    rd_info("msg=\"resizing shards\" from=%zu to=%zu", have, n);
    char name[64];
    for (size_t i = have; i < n; i++) {
        /* New (or once retired) shards join the routing set when their
         * HELLO arrives, so nothing waits for a process that is starting. */
        snprintf(name, sizeof name, "shard-%zu", i);
        gw_shard *s = gw_shard_get(name, true);
        if (!s->member)
            s->joining = true;
        s->retiring = false;
        s->stop_sent = false;
        s->drained = false;
        if (s->pid == 0)
            spawn_one(s);
        if (s->fd < 0)
            gw_link_connect(s);
    }
    for (size_t i = n; i < have; i++) {
        snprintf(name, sizeof name, "shard-%zu", i);
        gw_shard *s = gw_shard_get(name, false);
        s->retiring = true; /* leaves the set now; stopped once its connections moved */
        s->joining = false;
        s->member = false;
    }
    joining_since_ms = rd_mono_ms();
    gw_spawn_admit(false);
    gw_route_update();
    return 0;
}

void gw_spawn_admit(bool force)
{
    size_t waiting = 0, ready = 0;
    for (size_t i = 0; i < gw.nshards; i++)
        if (gw.shards[i]->joining) {
            waiting++;
            ready += gw.shards[i]->up;
        }
    if (!waiting || !ready || (ready < waiting && !force))
        return;
    if (ready < waiting)
        rd_warn("msg=\"not every new shard came up in time; adding those that did\" ready=%zu of=%zu",
                ready, waiting);
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = gw.shards[i];
        if (s->joining && s->up) {
            s->joining = false;
            s->member = true;
        }
    }
    gw_route_update();
}

/* Stop retired shards nothing uses any more; admit late joiners. */
void gw_spawn_tick(void)
{
    if (joining_since_ms && rd_mono_ms() - joining_since_ms > 10000) {
        gw_spawn_admit(true);
        bool still = false;
        for (size_t i = 0; i < gw.nshards; i++)
            still |= gw.shards[i]->joining;
        if (!still)
            joining_since_ms = 0;
    }
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = gw.shards[i];
        if (!s->retiring || s->stop_sent || s->pid <= 0 || gw_conn_shard_in_use(s))
            continue;
        if (!s->drained) {
            /* Other gateways' connections (our workers') count too, and its
             * alarms must have moved: ask the shard itself. */
            if (s->up) {
                pr_enc_info_req(&s->out, 0, "", 0);
                gw_link_want_flush(s);
            }
            continue;
        }
        rd_info("msg=\"stopping removed shard\" shard=%s pid=%d", s->name, (int)s->pid);
        kill(s->pid, SIGTERM);
        s->stop_sent = true;
    }
}

#define GW_RESIZE_FILE "gateway.resize"

int gw_spawn_forward_resize(size_t n, char err[RD_ERR_LEN])
{
    if (n < 1 || n > 256) {
        snprintf(err, RD_ERR_LEN, "shard count must be 1..256");
        return -EINVAL;
    }
    char path[600], tmp[620];
    snprintf(path, sizeof path, "%s/%s", gw.cfg.run_dir, GW_RESIZE_FILE);
    snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%zu\n", n) < 0 || fclose(f) != 0 || rename(tmp, path) != 0 ||
        kill(getppid(), SIGUSR1) != 0) {
        snprintf(err, RD_ERR_LEN, "cannot hand the resize to the main gateway process: %s", strerror(errno));
        return -EIO;
    }
    return 0;
}

void gw_spawn_resize_requested(void)
{
    char path[600], err[RD_ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", gw.cfg.run_dir, GW_RESIZE_FILE);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    unsigned long n = 0;
    int got = fscanf(f, "%lu", &n);
    fclose(f);
    unlink(path);
    if (got == 1 && gw_spawn_resize(n, err) < 0)
        rd_err("msg=\"shard resize from a worker refused\" err=\"%s\"", err);
}

void gw_spawn_stop_workers(void)
{
    for (size_t i = 1; i < nworkers; i++)
        if (workers[i] > 0)
            kill(workers[i], SIGTERM);
}

/* Workers drain their own clients (they got SIGTERM with ours); the shards
 * stay up until they are done. */
/* Wait up to ms for the n processes *pids[i] (0: none) to exit, then
 * SIGKILL the rest; each reaped one's pid becomes 0. */
static void reap_within(pid_t *const *pids, size_t n, uint64_t ms)
{
    uint64_t until = rd_mono_ms() + ms;
    for (;;) {
        size_t alive = 0;
        for (size_t i = 0; i < n; i++) {
            if (*pids[i] > 0 && waitpid(*pids[i], NULL, WNOHANG) == *pids[i])
                *pids[i] = 0;
            alive += *pids[i] > 0;
        }
        if (!alive)
            return;
        if (rd_mono_ms() > until)
            break;
        usleep(20000);
    }
    for (size_t i = 0; i < n; i++)
        if (*pids[i] > 0) {
            kill(*pids[i], SIGKILL);
            waitpid(*pids[i], NULL, 0);
            *pids[i] = 0;
        }
}

static void wait_workers(void)
{
    if (!nworkers)
        return;
    evtimer_del(&ev_worker_restart);
    pid_t **pids = rd_xcalloc(nworkers, sizeof *pids);
    for (size_t i = 1; i < nworkers; i++)
        pids[i - 1] = &workers[i];
    reap_within(pids, nworkers - 1, gw.cfg.drain_timeout + 3000);
    free(pids);
    free(workers);
    free(worker_started);
    free(worker_argv);
    workers = NULL;
    nworkers = 0;
}

void gw_spawn_stop(void)
{
    gw_spawn_stop_workers();
    wait_workers();
    for (size_t i = 0; i < gw.nshards; i++) {
        evtimer_del(&gw.shards[i]->ev_restart);
        if (gw.shards[i]->pid > 0)
            kill(gw.shards[i]->pid, SIGTERM);
    }
    /* Give them 3 s to flush and exit, then make sure. */
    pid_t **pids = rd_xcalloc(gw.nshards ? gw.nshards : 1, sizeof *pids);
    for (size_t i = 0; i < gw.nshards; i++)
        pids[i] = &gw.shards[i]->pid;
    reap_within(pids, gw.nshards, 3000);
    free(pids);
    if (chld_on)
        evsignal_del(&ev_chld);
    chld_on = false;
}
