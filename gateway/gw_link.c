/* Links to the shards: connect with backoff, HELLO, frame dispatch, and
 * batched writes (one write per link per loop turn).
 *
 *   DOWN --connect--> CONNECTED --shard HELLO--> UP --EOF/error--> DOWN (retry)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
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
        gw_shard *s = &gw.shards[i];
        for (size_t j = 0; j < s->nclasses; j++)
            if (strlen(s->classes[j]) == len && memcmp(s->classes[j], cls, len) == 0)
                return true;
    }
    return false;
}

bool gw_any_shard_up(void)
{
    for (size_t i = 0; i < gw.nshards; i++)
        if (gw.shards[i].up)
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
    if (gw.stopping)
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
        if (gw.shards[i].up)
            return &gw.shards[i];
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

void gw_link_ping_all(void)
{
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = &gw.shards[i];
        if (s->up) {
            pr_enc_ping(&s->out, PR_PING, rd_mono_ms());
            gw_link_want_flush(s);
        }
    }
}

int gw_link_init(void)
{
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = &gw.shards[i];
        s->fd = -1;
        evtimer_assign(&s->ev_retry, gw.base, link_retry_cb, s);
        gw_link_connect(s);
    }
    return 0;
}

void gw_link_shutdown(void)
{
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = &gw.shards[i];
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
}
