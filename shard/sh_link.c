/* Gateway links: accept, read and split frames, dispatch, batched writes.
 *
 *  accept -> HELLO sent -> (gateway HELLO checked) -> serving -> closing -> reaped
 * Output is appended to l->out during event handling and written once per
 * loop turn by sh_link_flush_all(), so a burst of sends costs one write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rd_log.h"
#include "pr_link.h"
#include "sh_fed.h"
#include "sh.h"

#define SH_READ_CHUNK (64 * 1024)
#define SH_MAX_CLASS_NAMES 64

static sh_link *reap_list;

static void link_read_cb(evutil_socket_t fd, short what, void *arg);
static void link_write_cb(evutil_socket_t fd, short what, void *arg);

void sh_link_want_flush(sh_link *l)
{
    if (l->flush_pending || l->closing)
        return;
    l->flush_pending = true;
    l->flush_next = sh.flush_list;
    sh.flush_list = l;
}

void sh_link_close(sh_link *l, const char *why)
{
    if (l->closing)
        return;
    l->closing = true;
    rd_info("msg=\"gateway link closed\" gateway=%s link=%llu reason=\"%s\"",
            l->peer[0] ? l->peer : "-", (unsigned long long)l->id, why);
    event_del(l->ev_read);
    event_del(l->ev_write);
    sh_object_link_gone(l);
    if (l->prev)
        l->prev->next = l->next;
    else
        sh.links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->next = reap_list;
    reap_list = l;
}

/* Free closed links outside of any of their callbacks. */
void sh_link_reap(void)
{
    while (reap_list) {
        sh_link *l = reap_list;
        reap_list = l->next;
        event_free(l->ev_read);
        event_free(l->ev_write);
        close(l->fd);
        rd_buf_free(&l->in);
        rd_buf_free(&l->out);
        rd_map_free(&l->conns);
        free(l);
    }
}

static int link_write(sh_link *l)
{
    while (rd_buf_avail(&l->out)) {
        ssize_t n = send(l->fd, rd_buf_data(&l->out), rd_buf_avail(&l->out), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!l->write_armed) {
                    event_add(l->ev_write, NULL);
                    l->write_armed = true;
                }
                return 0;
            }
            sh_link_close(l, strerror(errno));
            return -1;
        }
        rd_buf_consume(&l->out, (size_t)n);
    }
    if (l->write_armed) {
        event_del(l->ev_write);
        l->write_armed = false;
    }
    /* A burst can leave a large buffer behind; give it back when idle. */
    rd_buf_reset(&l->out, 1u << 20);
    return 0;
}

void sh_link_flush_all(void)
{
    while (sh.flush_list) {
        sh_link *l = sh.flush_list;
        sh.flush_list = l->flush_next;
        l->flush_pending = false;
        if (!l->closing && !l->write_armed)
            link_write(l);
    }
}

/* Every event the shard runs may produce output for any gateway, so when one
 * gateway stops taking it the only bounded answer is to stop taking events:
 * reading pauses on all links until the queue is back under half. */
void sh_link_backpressure(void)
{
    size_t most = 0;
    for (sh_link *l = sh.links; l; l = l->next)
        if (rd_buf_avail(&l->out) > most)
            most = rd_buf_avail(&l->out);
    if (!sh.input_paused && most > sh.cfg.link_high) {
        sh.input_paused = true;
        sh.input_pauses++;
        for (sh_link *l = sh.links; l; l = l->next)
            event_del(l->ev_read);
        rd_debug("msg=\"input paused: a gateway is not reading\" queued=%zu", most);
    } else if (sh.input_paused && most < sh.cfg.link_high / 2) {
        sh.input_paused = false;
        for (sh_link *l = sh.links; l; l = l->next)
            event_add(l->ev_read, NULL);
        rd_debug("msg=\"input resumed\"");
    }
}

static void link_write_cb(evutil_socket_t fd, short what, void *arg)
{
    sh_link *l = arg;
    link_write(l);
}

static void send_hello(sh_link *l)
{
    const char *names[SH_MAX_CLASS_NAMES];
    size_t n = sh_module_names(names, SH_MAX_CLASS_NAMES);
    /* The gateway learns the methods for /exports.js and its RPC path. */
    enum { MAX_METHODS = 64 * 64 };
    char **methods = rd_xcalloc(MAX_METHODS, sizeof *methods);
    const char **kinds = rd_xcalloc(MAX_METHODS, sizeof *kinds);
    size_t nm = sh_module_methods(methods, kinds, MAX_METHODS);
    pr_enc_hello_methods(&l->out, "shard", sh.cfg.name, names, n, (const char *const *)methods, kinds, nm);
    for (size_t i = 0; i < nm; i++)
        free(methods[i]);
    free(methods);
    free(kinds);
    sh_link_want_flush(l);
}

static int handle_hello(sh_link *l, const pr_msg *m)
{
    if (m->u.hello.version != PR_VERSION) {
        rd_warn("msg=\"gateway speaks another protocol version\" version=%llu ours=%d",
                (unsigned long long)m->u.hello.version, PR_VERSION);
        return -EPROTO;
    }
    if (m->u.hello.role.n != 7 || memcmp(m->u.hello.role.p, "gateway", 7) != 0) {
        rd_warn("msg=\"peer is not a gateway\" role=%.*s", (int)m->u.hello.role.n, m->u.hello.role.p);
        return -EPROTO;
    }
    snprintf(l->peer, sizeof l->peer, "%.*s", (int)m->u.hello.name.n, m->u.hello.name.p);
    l->hello = true;
    sh_object_link_hello(l);
    rd_info("msg=\"gateway connected\" gateway=%s link=%llu", l->peer, (unsigned long long)l->id);
    return 0;
}

static void dispatch(sh_link *l, const uint8_t *body, size_t len)
{
    pr_msg m;
    char err[RD_ERR_LEN];
    if (pr_msg_decode(body, len, &m, err) < 0) {
        sh_link_close(l, err);
        return;
    }
    if (!l->hello) {
        if (m.type != PR_HELLO || handle_hello(l, &m) < 0)
            sh_link_close(l, m.type != PR_HELLO ? "first message is not HELLO" : "bad HELLO");
        return;
    }
    switch (m.type) {
    case PR_HELLO:
        sh_link_close(l, "second HELLO");
        return;
    case PR_PING: {
        rd_buf *b = &l->out;
        size_t start = pr_frame_begin(b);
        sh_fed_stats fs;
        sh_fed_stats_get(&fs);
        pr_mp_put_array(b, 13);
        pr_mp_put_uint(b, PR_PONG);
        pr_mp_put_uint(b, m.u.ping.token);
        pr_mp_put_uint(b, (uint64_t)sh_fed_state());
        pr_mp_put_uint(b, fs.published);
        pr_mp_put_uint(b, fs.dropped);
        pr_mp_put_uint(b, fs.received);
        pr_mp_put_uint(b, fs.gaps);
        pr_mp_put_uint(b, fs.hangs);
        pr_mp_put_uint(b, sh.objects.count - sh.hibernated);
        pr_mp_put_uint(b, sh.hibernated);
        pr_put_hist(b, &sh.commit_hist);
        pr_put_hist(b, &sh.event_hist);
        pr_put_hist(b, &fs.lag);
        pr_frame_end(b, start);
        sh_link_want_flush(l);
        return;
    }
    case PR_PONG:
        return;
    case PR_SET:
        sh_alarm_set_members(&m);
        return;
    case PR_ALARM_MOVE:
        sh_alarm_take(l, &m);
        return;
    case PR_ALARM_MOVED:
        sh_alarm_given(&m);
        return;
    default:
        sh_object_handle(l, &m);
    }
}

static int on_frame(void *arg, const uint8_t *body, size_t len)
{
    sh_link *l = arg;
    dispatch(l, body, len);
    return l->closing;
}

static void link_read_cb(evutil_socket_t fd, short what, void *arg)
{
    sh_link *l = arg;
    const char *why;
    if (pr_link_read(fd, &l->in, SH_READ_CHUNK, sh.cfg.max_frame, on_frame, l, &why) < 0) {
        sh_link_close(l, why);
        return;
    }
    if (!l->closing && !rd_buf_avail(&l->in))
        rd_buf_reset(&l->in, 256u << 10);
}

void sh_link_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    for (int i = 0; i < 16; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                rd_warn("msg=\"accept failed\" err=\"%s\"", strerror(errno));
            return;
        }
        int sz = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        sh_link *l = rd_xcalloc(1, sizeof *l);
        l->id = ++sh.next_link_id;
        l->fd = fd;
        rd_map_init(&l->conns, 0);
        l->ev_read = event_new(sh.base, fd, EV_READ | EV_PERSIST, link_read_cb, l);
        l->ev_write = event_new(sh.base, fd, EV_WRITE | EV_PERSIST, link_write_cb, l);
        if (!sh.input_paused)
            event_add(l->ev_read, NULL);
        l->next = sh.links;
        if (sh.links)
            sh.links->prev = l;
        sh.links = l;
        send_hello(l);
    }
}
