/* Links to the shards: connect with backoff, HELLO, frame dispatch, and
 * batched writes (one write per link per loop turn); the routing set (the
 * members rendezvous hashing picks from) and, in discovery mode, following
 * the shard sockets in --shard-dir.
 *
 *   DOWN --connect--> CONNECTED --shard HELLO--> UP --EOF/error--> DOWN (retry)
 *
 * Membership: spawn mode's configured shards are members from the start and
 * stay members while they restart (their clients wait for them); shards
 * added by a resize, and every shard in discovery mode, join when their HELLO
 * arrives. A discovered shard leaves when its socket disappears or it stays
 * unreachable for --shard-timeout; a resize removes spawned ones.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gw.h"
#include "pr_link.h"
#include "rd_log.h"
#include "rd_time.h"

#define LINK_READ_CHUNK (256 * 1024)

static void link_read_cb(evutil_socket_t fd, short what, void *arg);
static void link_write_cb(evutil_socket_t fd, short what, void *arg);
static void link_retry_cb(evutil_socket_t fd, short what, void *arg);

bool gw_class_known(const char *cls, size_t len)
{
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = gw.shards[i];
        for (size_t j = 0; j < s->nclasses; j++)
            if (strlen(s->classes[j]) == len && memcmp(s->classes[j], cls, len) == 0)
                return true;
    }
    return false;
}

bool gw_any_shard_up(void)
{
    for (size_t i = 0; i < gw.nshards; i++)
        if (gw.shards[i]->up)
            return true;
    return false;
}

void gw_link_want_flush(gw_shard *s)
{
    if (s->flush_pending || s->fd < 0)
        return;
    s->flush_pending = true;
    s->flush_next = gw.shard_flush_list;
    gw.shard_flush_list = s;
}

static void schedule_retry(gw_shard *s)
{
    /* Nothing to reconnect to: a removed shard, or a socket that is gone. */
    if (gw.stopping || s->stop_sent || (gw.cfg.shard_dir && !s->present))
        return;
    s->retry_ms = s->retry_ms ? s->retry_ms * 2 : 20;
    if (s->retry_ms > 1000)
        s->retry_ms = 1000;
    struct timeval tv = { (time_t)(s->retry_ms / 1000), (suseconds_t)(s->retry_ms % 1000) * 1000 };
    evtimer_add(&s->ev_retry, &tv);
}

static void link_down(gw_shard *s, const char *why)
{
    if (s->fd < 0)
        return;
    if (s->up)
        rd_warn("msg=\"shard link down\" shard=%s reason=\"%s\"", s->name, why);
    else
        rd_debug("msg=\"shard link failed\" shard=%s reason=\"%s\"", s->name, why);
    event_del(&s->ev_read);
    event_del(&s->ev_write);
    close(s->fd);
    s->fd = -1;
    s->up = false;
    s->write_armed = false;
    s->gen++;
    s->down_since_ms = rd_mono_ms();
    rd_buf_free(&s->in);
    rd_buf_free(&s->out);
    gw_conn_shard_lost(s);
    schedule_retry(s);
}

void gw_link_connect(gw_shard *s)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rd_warn("msg=\"socket failed\" err=\"%s\"", strerror(errno));
        schedule_retry(s);
        return;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS &&
        errno != EAGAIN) {
        rd_debug("msg=\"shard not reachable yet\" shard=%s err=\"%s\"", s->name, strerror(errno));
        close(fd);
        schedule_retry(s);
        return;
    }
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    s->fd = fd;
    event_assign(&s->ev_read, gw.base, fd, EV_READ | EV_PERSIST, link_read_cb, s);
    event_assign(&s->ev_write, gw.base, fd, EV_WRITE | EV_PERSIST, link_write_cb, s);
    event_add(&s->ev_read, NULL);
    pr_enc_hello(&s->out, "gateway", gw.name, NULL, 0);
    gw_link_want_flush(s);
}

static void link_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_shard *s = arg;
    if (s->fd < 0 && !gw.stopping)
        gw_link_connect(s);
}

static int link_write(gw_shard *s)
{
    while (rd_buf_avail(&s->out)) {
        ssize_t n = send(s->fd, rd_buf_data(&s->out), rd_buf_avail(&s->out), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!s->write_armed) {
                    event_add(&s->ev_write, NULL);
                    s->write_armed = true;
                }
                return 0;
            }
            link_down(s, strerror(errno));
            return -1;
        }
        rd_buf_consume(&s->out, (size_t)n);
        if (s->full && rd_buf_avail(&s->out) < gw.cfg.link_high / 2)
            gw_conn_link_drained(s);
    }
    if (s->full)
        gw_conn_link_drained(s);
    if (s->write_armed) {
        event_del(&s->ev_write);
        s->write_armed = false;
    }
    rd_buf_reset(&s->out, 1u << 20);
    return 0;
}

void gw_link_flush_all(void)
{
    while (gw.shard_flush_list) {
        gw_shard *s = gw.shard_flush_list;
        gw.shard_flush_list = s->flush_next;
        s->flush_pending = false;
        if (s->fd >= 0 && !s->write_armed)
            link_write(s);
    }
}

static void link_write_cb(evutil_socket_t fd, short what, void *arg)
{
    link_write(arg);
}

/* Tell s the routing set: shards move the alarms of objects they no longer
 * own to the owners (through us: ALARM_MOVE / ALARM_MOVED). */
static void send_set(gw_shard *s)
{
    rd_buf *b = &s->out;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 2);
    pr_mp_put_uint(b, PR_SET);
    pr_mp_put_array(b, (uint32_t)gw.nroute);
    for (size_t i = 0; i < gw.nroute; i++)
        pr_mp_put_str(b, gw.route_names[i], strlen(gw.route_names[i]));
    pr_frame_end(b, start);
    gw_link_want_flush(s);
}

/* An alarm changing hands: ALARM_MOVE goes to the key's owner, ALARM_MOVED
 * back to the shard it names. */
static void relay_alarm(gw_shard *s, const pr_msg *m)
{
    gw_shard *to;
    pr_str k = m->u.alarm.key;
    if (m->type == PR_ALARM_MOVE) {
        to = gw_route_pick(k.p, k.n);
        if (!to || to == s || !to->up)
            return; /* the giver offers it again later */
        pr_enc_alarm(&to->out, PR_ALARM_MOVE, k.p, k.n, m->u.alarm.at, m->u.alarm.retries, s->name,
                     strlen(s->name));
    } else {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)m->u.alarm.shard.n, m->u.alarm.shard.p);
        to = gw_shard_get(name, false);
        if (!to || !to->up)
            return;
        pr_enc_alarm(&to->out, PR_ALARM_MOVED, k.p, k.n, m->u.alarm.at, 0, to->name, strlen(to->name));
    }
    gw_link_want_flush(to);
}

static void free_classes(gw_shard *s)
{
    for (size_t i = 0; i < s->nclasses; i++)
        free(s->classes[i]);
    free(s->classes);
    s->classes = NULL;
    s->nclasses = 0;
    for (size_t i = 0; i < s->nmethods; i++)
        free(s->methods[i]);
    free(s->methods);
    free(s->method_stream);
    s->methods = NULL;
    s->method_stream = NULL;
    s->nmethods = 0;
}

const gw_shard *gw_methods_source(void)
{
    /* Every shard loads the same classes; the first one up speaks for all. */
    for (size_t i = 0; i < gw.nshards; i++)
        if (gw.shards[i]->up)
            return gw.shards[i];
    return NULL;
}

static int handle_hello(gw_shard *s, const pr_msg *m)
{
    if (m->u.hello.version != PR_VERSION) {
        rd_err("msg=\"shard speaks another protocol version\" shard=%s version=%llu ours=%d", s->name,
               (unsigned long long)m->u.hello.version, PR_VERSION);
        return -EPROTO;
    }
    if (m->u.hello.role.n != 5 || memcmp(m->u.hello.role.p, "shard", 5) != 0)
        return -EPROTO;
    if (m->u.hello.name.n != strlen(s->name) || memcmp(m->u.hello.name.p, s->name, m->u.hello.name.n)) {
        rd_err("msg=\"socket answered with another shard's name\" shard=%s got=%.*s", s->name,
               (int)m->u.hello.name.n, m->u.hello.name.p);
        return -EPROTO;
    }
    free_classes(s);
    pr_list l = m->u.hello.classes;
    s->classes = rd_xcalloc(l.n ? l.n : 1, sizeof *s->classes);
    pr_str c;
    while (pr_list_next_str(&l, &c) == 0)
        s->classes[s->nclasses++] = rd_xstrndup(c.p, c.n);
    pr_list ml = m->u.hello.methods;
    pr_str k, v;
    s->methods = rd_xcalloc(ml.n ? ml.n : 1, sizeof *s->methods);
    s->method_stream = rd_xcalloc(ml.n ? ml.n : 1, sizeof *s->method_stream);
    while (pr_list_next_kv(&ml, &k, &v) == 0) {
        s->method_stream[s->nmethods] = v.n == 6 && memcmp(v.p, "stream", 6) == 0;
        s->methods[s->nmethods++] = rd_xstrndup(k.p, k.n);
    }
    s->up = true;
    s->retry_ms = 0;
    s->down_since_ms = 0;
    rd_info("msg=\"shard link up\" shard=%s classes=%zu", s->name, s->nclasses);
    gw_conn_shard_up(s);
    if (gw.nroute)
        send_set(s);
    if (s->joining) {
        gw_spawn_admit(false);
    } else if (!s->member && !s->retiring && (!gw.cfg.shard_dir || s->present) &&
               (gw.cfg.worker == 0 || s->listed)) {
        s->member = true;
        gw_route_update();
    }
    return 0;
}

static void dispatch(gw_shard *s, const uint8_t *body, size_t len)
{
    pr_msg m;
    char err[RD_ERR_LEN];
    if (pr_msg_decode(body, len, &m, err) < 0) {
        rd_err("msg=\"malformed frame from shard\" shard=%s err=\"%s\"", s->name, err);
        link_down(s, "malformed frame");
        return;
    }
    if (!s->up) {
        if (m.type != PR_HELLO || handle_hello(s, &m) < 0)
            link_down(s, "bad HELLO");
        return;
    }
    gw_conn *c;
    switch (m.type) {
    case PR_BROADCAST:
        gw_conn_on_broadcast(s, &m);
        return;
    case PR_SEND:
        if ((c = rd_map_get(&gw.conns, m.u.frame.conn)) && c->shard == s)
            gw_conn_on_send(c, &m);
        return;
    case PR_ACCEPT:
        if ((c = rd_map_get(&gw.conns, m.u.accept.conn)) && c->shard == s)
            gw_conn_on_accept(c, &m);
        return;
    case PR_REJECT:
        if ((c = rd_map_get(&gw.conns, m.u.reject.conn)) && c->shard == s)
            gw_conn_on_reject(c, &m);
        return;
    case PR_CLOSE:
        if ((c = rd_map_get(&gw.conns, m.u.close.conn)) && c->shard == s)
            gw_conn_on_close(c, &m);
        return;
    case PR_HTTP_RES:
        if ((c = rd_map_get(&gw.conns, m.u.http_res.req)) && c->shard == s)
            gw_conn_on_http_res(c, &m);
        return;
    case PR_META:
        if ((c = rd_map_get(&gw.conns, m.u.meta.conn)) && c->shard == s)
            gw_conn_on_meta(c, &m);
        return;
    case PR_AUTORESP:
        gw_autoresp_set(&m);
        return;
    case PR_DETACHED:
        gw_conn_on_detached(s, &m);
        return;
    case PR_INFO_RES:
        gw_conn_on_info(s, &m);
        return;
    case PR_ALARM_MOVE:
    case PR_ALARM_MOVED:
        relay_alarm(s, &m);
        return;
    case PR_PING:
        pr_enc_ping(&s->out, PR_PONG, m.u.ping.token);
        gw_link_want_flush(s);
        return;
    case PR_PONG:
        s->fed = (uint8_t)(m.u.ping.status <= 2 ? m.u.ping.status : 2);
        s->fed_published = m.u.ping.published;
        s->fed_dropped = m.u.ping.dropped;
        s->fed_received = m.u.ping.received;
        s->fed_gaps = m.u.ping.gaps;
        s->fed_hangs = m.u.ping.hangs;
        s->objects_live = m.u.ping.live;
        s->objects_hibernated = m.u.ping.hibernated;
        /* An older shard sends none (the histograms read as empty). */
        pr_get_hist(&m.u.ping.commit_hist, &s->commit_hist);
        pr_get_hist(&m.u.ping.event_hist, &s->event_hist);
        pr_get_hist(&m.u.ping.fed_lag_hist, &s->fed_lag_hist);
        return;
    default:
        rd_err("msg=\"unexpected message from shard\" shard=%s type=%s", s->name, pr_type_name(m.type));
        link_down(s, "unexpected message");
    }
}

static int on_frame(void *arg, const uint8_t *body, size_t len)
{
    gw_shard *s = arg;
    uint32_t gen = s->gen;
    dispatch(s, body, len);
    return s->gen != gen; /* the link went down while dispatching */
}

static void link_read_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_shard *s = arg;
    uint32_t gen = s->gen;
    const char *why;
    if (pr_link_read(fd, &s->in, LINK_READ_CHUNK, PR_FRAME_MAX, on_frame, s, &why) < 0) {
        if (strcmp(why, "frame exceeds the size cap") == 0)
            rd_err("msg=\"oversized frame from shard\" shard=%s", s->name);
        link_down(s, why);
        return;
    }
    if (s->gen == gen && !rd_buf_avail(&s->in))
        rd_buf_reset(&s->in, 1u << 20);
}

/* Takes in what the shards have sent since the loop last looked, during a
 * long sweep of client writes (gw_conn_flush_all): a broadcast that arrives
 * mid-sweep then reaches the connections the sweep has not written yet in
 * this sweep instead of the next one. Same as the read events would do. */
void gw_link_poll_all(void)
{
    for (size_t i = 0; i < gw.nshards && !gw.stopping; i++) {
        gw_shard *s = gw.shards[i];
        if (s->fd >= 0 && s->up)
            link_read_cb(s->fd, EV_READ, s);
    }
}

void gw_link_ping_all(void)
{
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = gw.shards[i];
        if (s->up) {
            pr_enc_ping(&s->out, PR_PING, rd_mono_ms());
            gw_link_want_flush(s);
        }
    }
}

int gw_link_init(void)
{
    for (size_t i = 0; i < gw.nshards; i++)
        gw_link_connect(gw.shards[i]);
    return 0;
}

gw_shard *gw_shard_get(const char *name, bool create)
{
    for (size_t i = 0; i < gw.nshards; i++)
        if (strcmp(gw.shards[i]->name, name) == 0)
            return gw.shards[i];
    if (!create)
        return NULL;
    if (gw.nshards == gw.shards_cap) {
        gw.shards_cap = gw.shards_cap ? gw.shards_cap * 2 : 8;
        gw.shards = rd_xrealloc(gw.shards, gw.shards_cap * sizeof *gw.shards);
    }
    gw_shard *s = rd_xcalloc(1, sizeof *s);
    s->index = (int)gw.nshards;
    s->fd = -1;
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->path, sizeof s->path, "%s/%s.sock", gw.cfg.shard_dir ? gw.cfg.shard_dir : gw.cfg.run_dir,
             name);
    if (gw.base) {
        evtimer_assign(&s->ev_retry, gw.base, link_retry_cb, s);
        evtimer_assign(&s->ev_restart, gw.base, gw_spawn_restart_cb, s);
    }
    gw.shards[gw.nshards++] = s;
    return s;
}

#define GW_MEMBERS_FILE "gateway.members"

/* --workers: the parent publishes its routing set for its workers, so every
 * process routes alike (and moves objects at the same moments). */
static void write_members(void)
{
    char path[600], tmp[620];
    snprintf(path, sizeof path, "%s/%s", gw.cfg.run_dir, GW_MEMBERS_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        rd_err("msg=\"cannot write the members file\" path=%s err=\"%s\"", tmp, strerror(errno));
        return;
    }
    for (size_t i = 0; i < gw.nroute; i++)
        fprintf(f, "%s\n", gw.route[i]->name);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        rd_err("msg=\"cannot write the members file\" path=%s err=\"%s\"", path, strerror(errno));
}

/* A worker: membership is what the parent's file lists (and is up). */
static bool read_members(void)
{
    char path[600], line[128];
    snprintf(path, sizeof path, "%s/%s", gw.cfg.run_dir, GW_MEMBERS_FILE);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    for (size_t i = 0; i < gw.nshards; i++)
        gw.shards[i]->listed = false;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            gw_shard_get(line, true)->listed = true;
    }
    fclose(f);
    bool changed = false;
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = gw.shards[i];
        bool want = s->listed && s->up;
        changed |= want != s->member;
        s->member = want;
    }
    return changed;
}

void gw_route_update(void)
{
    size_t n = 0;
    for (size_t i = 0; i < gw.nshards; i++)
        n += gw.shards[i]->member;
    bool changed = n != gw.nroute;
    for (size_t i = 0, k = 0; !changed && i < gw.nshards; i++)
        if (gw.shards[i]->member)
            changed = gw.route[k++] != gw.shards[i];
    if (!changed)
        return;
    gw.route = rd_xrealloc(gw.route, (n ? n : 1) * sizeof *gw.route);
    gw.route_names = rd_xrealloc(gw.route_names, (n ? n : 1) * sizeof *gw.route_names);
    char list[1024];
    size_t len = 0;
    list[0] = '\0';
    gw.nroute = 0;
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = gw.shards[i];
        if (!s->member)
            continue;
        gw.route[gw.nroute] = s;
        gw.route_names[gw.nroute++] = s->name;
        if (len < sizeof list - 80)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? "," : "", s->name);
    }
    gw.stats.set_changes++;
    rd_info("msg=\"shard set changed\" shards=%zu members=\"%s\"", gw.nroute, list);
    for (size_t i = 0; i < gw.nshards; i++)
        if (gw.shards[i]->up)
            send_set(gw.shards[i]);
    if (gw.cfg.workers > 1)
        write_members();
    if (gw.nroute)
        gw_conn_rebalance();
}

/* --- discovery mode ---------------------------------------------------------- */

static void inotify_cb(evutil_socket_t fd, short what, void *arg)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    while (read(fd, buf, sizeof buf) > 0)
        any = true;
    if (any)
        gw_discover_scan();
}

int gw_discover_init(char err[RD_ERR_LEN])
{
    gw.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (gw.inotify_fd < 0 ||
        inotify_add_watch(gw.inotify_fd, gw.cfg.shard_dir,
                          IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB) < 0) {
        /* The tick's rescan still follows the directory, once a second. */
        rd_warn("msg=\"cannot watch the shard directory; rescanning each second\" dir=%s err=\"%s\"",
                gw.cfg.shard_dir, strerror(errno));
        if (gw.inotify_fd >= 0)
            close(gw.inotify_fd);
        gw.inotify_fd = -1;
    } else {
        event_assign(&gw.ev_inotify, gw.base, gw.inotify_fd, EV_READ | EV_PERSIST, inotify_cb, NULL);
        event_add(&gw.ev_inotify, NULL);
    }
    DIR *d = opendir(gw.cfg.shard_dir);
    if (!d) {
        snprintf(err, RD_ERR_LEN, "cannot read --shard-dir %s: %s", gw.cfg.shard_dir, strerror(errno));
        return -errno;
    }
    closedir(d);
    gw_discover_scan();
    return 0;
}

/* "<name>.sock" with a name a shard could have (roomd-shard --name). */
static bool sock_name(const char *file, char name[64])
{
    size_t n = strlen(file);
    if (n <= 5 || n - 5 >= 64 || strcmp(file + n - 5, ".sock") != 0 || file[0] == '.')
        return false;
    memcpy(name, file, n - 5);
    name[n - 5] = '\0';
    return true;
}

void gw_discover_scan(void)
{
    if (!gw.cfg.shard_dir || gw.stopping)
        return;
    DIR *d = opendir(gw.cfg.shard_dir);
    if (!d) {
        rd_warn("msg=\"cannot read the shard directory\" dir=%s err=\"%s\"", gw.cfg.shard_dir,
                strerror(errno));
        return;
    }
    static uint32_t scan; /* shards whose socket this scan finds get its number */
    scan++;
    struct dirent *e;
    char name[64];
    while ((e = readdir(d))) {
        if (e->d_type != DT_SOCK && e->d_type != DT_UNKNOWN)
            continue;
        if (!sock_name(e->d_name, name))
            continue;
        gw_shard *s = gw_shard_get(name, true);
        s->seen_scan = scan;
        if (!s->present) {
            s->present = true;
            rd_info("msg=\"shard socket appeared\" shard=%s path=%s", s->name, s->path);
            if (s->fd < 0) {
                evtimer_del(&s->ev_retry);
                s->retry_ms = 0;
                gw_link_connect(s);
            }
        }
    }
    closedir(d);
    bool changed = false;
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = gw.shards[i];
        if (s->seen_scan == scan || !s->present)
            continue;
        s->present = false;
        rd_info("msg=\"shard socket disappeared\" shard=%s", s->name);
        evtimer_del(&s->ev_retry);
        if (s->member) {
            s->member = false;
            changed = true;
        }
    }
    if (gw.cfg.worker > 0)
        changed |= read_members();
    if (changed)
        gw_route_update();
}

void gw_link_tick(void)
{
    if (!gw.cfg.shard_dir)
        return;
    if (gw.cfg.worker > 0) {
        gw_discover_scan(); /* the parent decides who leaves */
        return;
    }
    gw_discover_scan();
    uint64_t now = rd_mono_ms();
    bool changed = false;
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = gw.shards[i];
        if (s->member && !s->up && s->down_since_ms && now - s->down_since_ms >= gw.cfg.shard_timeout) {
            rd_warn("msg=\"shard unreachable; leaving the set\" shard=%s down_ms=%llu", s->name,
                    (unsigned long long)(now - s->down_since_ms));
            s->member = false;
            changed = true;
        }
    }
    if (changed)
        gw_route_update();
}

void gw_link_shutdown(void)
{
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = gw.shards[i];
        evtimer_del(&s->ev_retry);
        if (s->fd >= 0) {
            link_write(s);
            if (s->fd >= 0) {
                event_del(&s->ev_read);
                event_del(&s->ev_write);
                close(s->fd);
                s->fd = -1;
            }
        }
        rd_buf_free(&s->in);
        rd_buf_free(&s->out);
        free_classes(s);
    }
    if (gw.inotify_fd >= 0) {
        event_del(&gw.ev_inotify);
        close(gw.inotify_fd);
        gw.inotify_fd = -1;
    }
}
