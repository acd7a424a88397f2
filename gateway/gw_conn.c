/* Client connections: accept, TLS, HTTP, the WebSocket handshake through
 * the owning shard, frames both ways, and teardown. The state diagram is in
 * gw.h. Output is queued (gw_out -> shared gw_blob) and written once per loop
 * turn by gw_conn_flush_all(); connections are freed only from the deferred
 * pass gw_conn_reap(), never inside their own callbacks. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>

#include "gw.h"
#include "gw_tls13.h"
#include "gw_exports.h"
#include "rd_hash.h"
#include "rd_log.h"
#include "rd_time.h"
#include "rd_uuid.h"

#define GW_MAX_IOV 64
#define GW_TLS_RECORD 16384
#define GW_LINGER_MS 2000

static gw_out *out_free_list;

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static void conn_process(gw_conn *c, uint8_t *p, size_t n);
static void conn_kill(gw_conn *c);

/* --- blobs and queues ---------------------------------------------------- */

gw_blob *gw_blob_new(size_t len)
{
    gw_blob *b = rd_xmalloc(sizeof *b + len);
    b->refs = 1;
    b->len = (uint32_t)len;
    return b;
}

void gw_blob_unref(gw_blob *b)
{
    if (b && --b->refs == 0)
        free(b);
}

static void want_flush(gw_conn *c)
{
    if (c->flush_pending || c->state == GW_C_DEAD)
        return;
    c->flush_pending = true;
    c->flush_next = gw.flush_list;
    gw.flush_list = c;
}

/* The socket is full: wait for EV_WRITE. */
static void arm_write(gw_conn *c)
{
    if (!c->write_armed) {
        event_add(&c->ev_write, NULL);
        c->write_armed = true;
    }
}

static void ws_fail(gw_conn *c, uint16_t code, const char *reason);
static void link_unpause(gw_conn *c);
static void resume_reading(gw_conn *c);
static void admin_request(gw_conn *c, const gw_http_request *req, const char *path, size_t plen,
                          const char *query, size_t qlen);
static void admin_free(gw_conn *c);
static void handoff_shard_lost(gw_shard *s);

/* A move of one object's connections (see the handoff section). */
typedef struct gw_handoff_item {
    uint64_t conn;
    gw_shard *from;           /* where its DETACH went; NULL when nothing was open */
    bool detaching;           /* waiting for DETACHED */
} gw_handoff_item;

typedef struct gw_handoff {
    char *key;
    size_t key_len;
    gw_shard *from;           /* the owner being left: new members go there meanwhile */
    gw_handoff_item *items;
    size_t n, cap;
    size_t pending;           /* items detaching */
    size_t cursor;            /* answers come back in order: where to look first */
    uint64_t started_ms;
    bool started;             /* else waiting in the queue (its members still served) */
    struct gw_handoff *qnext;
} gw_handoff;

static void pmd_close(gw_conn *c);

static void out_free(gw_out *o)
{
    gw_blob_unref(o->blob);
    o->next = out_free_list;
    out_free_list = o;
}

/* Control bytes (handshake responses, close and pong frames): never dropped,
 * not subject to the outbound budget. */
static void enqueue(gw_conn *c, gw_blob *b)
{
    gw_out *o = out_free_list;
    if (o)
        out_free_list = o->next;
    else
        o = rd_xmalloc(sizeof *o);
    o->next = NULL;
    o->blob = b;
    o->off = 0;
    o->droppable = false;
    b->refs++;
    if (c->out_tail)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
    c->out_bytes += b->len;
    want_flush(c);
}

/* A client that stopped reading. Policy close: discard what it has not
 * started to receive and close with 1008. Policy drop-oldest: discard whole
 * queued messages, oldest first, until it fits, and count them. */
static void slow_consumer(gw_conn *c)
{
    gw_out *keep = c->out_head && c->out_head->off ? c->out_head : NULL;
    gw_out **pp = keep ? &keep->next : &c->out_head;
    if (strcmp(gw.cfg.slow_policy, "drop-oldest") == 0) {
        while (*pp && c->out_bytes > gw.cfg.max_outbound) {
            gw_out *o = *pp;
            if (!o->droppable) {
                pp = &o->next;
                continue;
            }
            *pp = o->next;
            c->out_bytes -= o->blob->len;
            gw.stats.dropped_slow++;
            gw.stats.dropped_slow_bytes += o->blob->len;
            out_free(o);
        }
    } else {
        while (*pp) {
            gw_out *o = *pp;
            *pp = o->next;
            c->out_bytes -= o->blob->len - o->off;
            out_free(o);
        }
    }
    c->out_tail = NULL;
    for (gw_out *o = c->out_head; o; o = o->next)
        c->out_tail = o;
    if (strcmp(gw.cfg.slow_policy, "drop-oldest") != 0 && c->state == GW_C_WS) {
        gw.stats.closed_slow++;
        rd_info("msg=\"slow consumer closed\" conn=%llu remote=%s", (unsigned long long)c->id, c->remote);
        ws_fail(c, WS_CLOSE_POLICY, "slow consumer");
    }
}

/* A data message for the client, subject to --max-outbound. */
static void enqueue_data(gw_conn *c, gw_blob *b)
{
    enqueue(c, b);
    c->out_tail->droppable = true;
    if (c->out_bytes > gw.cfg.max_outbound)
        slow_consumer(c);
}

static void enqueue_bytes(gw_conn *c, const void *p, size_t n)
{
    gw_blob *b = gw_blob_new(n);
    memcpy(b->data, p, n);
    enqueue(c, b);
    gw_blob_unref(b);
}

static void out_drop_all(gw_conn *c)
{
    while (c->out_head) {
        gw_out *o = c->out_head;
        c->out_head = o->next;
        out_free(o);
    }
    c->out_tail = NULL;
    c->out_bytes = 0;
}

/* Remove n written bytes from the front of the queue. */
static void out_consume(gw_conn *c, size_t n)
{
    c->out_bytes -= n;
    while (n) {
        gw_out *o = c->out_head;
        size_t left = o->blob->len - o->off;
        if (n < left) {
            o->off += (uint32_t)n;
            return;
        }
        n -= left;
        c->out_head = o->next;
        if (!c->out_head)
            c->out_tail = NULL;
        out_free(o);
    }
}

/* --- timeouts ------------------------------------------------------------ */

/* Each list holds connections with the same timeout, so appending keeps it
 * sorted by deadline and the tick only looks at the expired head. */
static void tq_remove(gw_conn *c)
{
    if (c->tq < 0)
        return;
    if (c->tq_prev)
        c->tq_prev->tq_next = c->tq_next;
    else
        gw.tq_head[c->tq] = c->tq_next;
    if (c->tq_next)
        c->tq_next->tq_prev = c->tq_prev;
    else
        gw.tq_tail[c->tq] = c->tq_prev;
    c->tq_next = c->tq_prev = NULL;
    c->tq = -1;
}

static void tq_add(gw_conn *c, int q, uint64_t timeout_ms)
{
    tq_remove(c);
    c->tq = q;
    c->deadline_ms = rd_mono_ms() + timeout_ms;
    c->tq_prev = gw.tq_tail[q];
    c->tq_next = NULL;
    if (gw.tq_tail[q])
        gw.tq_tail[q]->tq_next = c;
    else
        gw.tq_head[q] = c;
    gw.tq_tail[q] = c;
}

/* --- raw I/O (plaintext or TLS) ------------------------------------------ */

/* > 0 bytes, 0 EOF, -EAGAIN nothing now, other < 0 fatal. *more: another
 * read may find input right away (a full buffer, or TLS holds some). */
static ssize_t io_read(gw_conn *c, uint8_t *buf, size_t cap, bool *more)
{
    if (c->t13) {
        ssize_t n = gw_tls13_read(c->t13, c->fd, buf, cap, more);
        if (gw_tls13_pending(c->t13))
            want_flush(c); /* a KeyUpdate to answer */
        if (n < 0 && n != -EAGAIN) {
            gw.stats.tls_record_errors++;
            rd_debug("msg=\"tls record error\" conn=%llu err=\"%s\"", (unsigned long long)c->id, strerror((int)-n));
        }
        return n;
    }
    if (!c->ssl) {
        for (;;) {
            ssize_t n = recv(c->fd, buf, cap, 0);
            if (n >= 0) {
                *more = (size_t)n == cap;
                return n;
            }
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
    }
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, (int)(cap > INT32_MAX ? INT32_MAX : cap));
    if (n > 0) {
        *more = (size_t)n == cap || SSL_pending(c->ssl);
        return n;
    }
    int e = SSL_get_error(c->ssl, n);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        c->tls_read_wants_write = true;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        gw_tls_log_errors("read");
        return -EIO;
    }
}

/* Bytes of the queue taken (>= 0; 0 when the socket is full) or < 0 fatal. */
static ssize_t io_write(gw_conn *c)
{
    if (c->t13) {
        /* Up to four full records per send(); what the socket does not
         * take stays with the record layer (gw_tls13_pending). */
        static uint8_t plain[GW_TLS13_IO_MAX];
        size_t len = 0;
        for (gw_out *o = c->out_head; o && len < sizeof plain; o = o->next) {
            size_t k = o->blob->len - o->off;
            if (k > sizeof plain - len)
                k = sizeof plain - len;
            memcpy(plain + len, o->blob->data + o->off, k);
            len += k;
        }
        return gw_tls13_write(c->t13, c->fd, plain, len);
    }
    if (!c->ssl) {
        struct iovec iov[GW_MAX_IOV];
        int n = 0;
        size_t total = 0;
        for (gw_out *o = c->out_head; o && n < GW_MAX_IOV && total < gw.cfg.max_write_turn;
             o = o->next, n++) {
            iov[n].iov_base = o->blob->data + o->off;
            iov[n].iov_len = o->blob->len - o->off;
            total += iov[n].iov_len;
        }
        for (;;) {
            ssize_t w = writev(c->fd, iov, n);
            if (w >= 0)
                return w;
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        }
    }
    /* Coalesce small frames into full TLS records: one record per 16 KiB
     * instead of one per message. A retried SSL_write must repeat the same
     * length; the queue's front bytes are unchanged until it succeeds. */
    uint8_t rec[GW_TLS_RECORD];
    size_t len = 0;
    size_t want = c->tls_write_len ? (size_t)c->tls_write_len : sizeof rec;
    for (gw_out *o = c->out_head; o && len < want; o = o->next) {
        size_t k = o->blob->len - o->off;
        if (k > want - len)
            k = want - len;
        memcpy(rec + len, o->blob->data + o->off, k);
        len += k;
    }
    ERR_clear_error();
    int w = SSL_write(c->ssl, rec, (int)len);
    if (w > 0) {
        c->tls_write_len = 0;
        return w;
    }
    int e = SSL_get_error(c->ssl, w);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        c->tls_write_len = (int)len;
        c->tls_write_wants_read = e == SSL_ERROR_WANT_READ;
        return 0;
    }
    gw_tls_log_errors("write");
    return -EIO;
}

/* --- teardown ------------------------------------------------------------ */

static void shard_forget(gw_conn *c, unsigned code, const char *reason)
{
    if (!c->shard_open)
        return;
    c->shard_open = false;
    gw_shard *s = c->shard;
    if (s && s->fd >= 0 && s->gen == c->shard_gen) {
        pr_enc_close(&s->out, c->id, code, reason, strlen(reason));
        gw_link_want_flush(s);
    }
}

/* Mark dead and hand to the deferred free. Safe inside any callback. */
static void conn_kill(gw_conn *c)
{
    if (c->state == GW_C_DEAD)
        return;
    shard_forget(c, WS_CLOSE_ABNORMAL, "connection lost");
    link_unpause(c);
    c->state = GW_C_DEAD;
    tq_remove(c);
    event_del(&c->ev_read);
    event_del(&c->ev_write);
    rd_map_del(&gw.conns, c->id);
    c->reap_next = gw.reap_list;
    gw.reap_list = c;
}

void gw_conn_reap(void)
{
    /* A dead connection may still sit on the flush list; take it off. */
    for (gw_conn **pp = &gw.flush_list; *pp;) {
        if ((*pp)->state == GW_C_DEAD) {
            (*pp)->flush_pending = false;
            *pp = (*pp)->flush_next;
        } else {
            pp = &(*pp)->flush_next;
        }
    }
    while (gw.reap_list) {
        gw_conn *c = gw.reap_list;
        gw.reap_list = c->reap_next;
        out_drop_all(c);
        if (c->ssl)
            SSL_free(c->ssl);
        gw_tls13_free(c->t13);
        close(c->fd);
        rd_buf_free(&c->in);
        if (c->ip && --c->ip->conns == 0) {
            rd_smap_del(&gw.ips, c->ip->addr, strlen(c->ip->addr));
            free(c->ip);
        }
        pmd_close(c);
        free(c->attachment);
        free(c->tags);
        free(c->claims);
        if (c->ws) {
            ws_reader_free(c->ws);
            free(c->ws);
        }
        admin_free(c);
        free(c->key);
        free(c);
        gw.nconns--;
    }
    if (gw.accept_paused && !gw.stopping &&
        (gw.cfg.max_connections <= 0 || gw.nconns < (size_t)gw.cfg.max_connections))
        gw_accept_retry_cb(-1, 0, NULL);
}

/* Everything queued so far goes out, then the connection closes gracefully. */
static void close_after_flush(gw_conn *c)
{
    if (c->state == GW_C_DEAD || c->state == GW_C_LINGER)
        return;
    c->state = GW_C_CLOSING;
    c->close_after_flush = true;
    tq_add(c, GW_TQ_CLOSE, gw.cfg.close_timeout);
    want_flush(c);
}

/* The queue is empty and we are closing: half-close, then read and discard
 * until the peer closes too (or the linger timer ends it). Closing with
 * unread input would send RST and could destroy our last frames in flight. */
static void start_linger(gw_conn *c)
{
    if (c->t13)
        gw_tls13_close_notify(c->t13, c->fd);
    if (c->ssl) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* best effort close_notify */
    }
    shutdown(c->fd, SHUT_WR);
    c->state = GW_C_LINGER;
    c->read_paused = false;
    event_add(&c->ev_read, NULL);
    tq_add(c, GW_TQ_CLOSE, GW_LINGER_MS);
}

/* --- responses ----------------------------------------------------------- */

static void http_respond(gw_conn *c, int status, const char *ctype, const char *extra_headers,
                         const void *body, size_t blen, bool keep_alive)
{
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: %s\r\n"
                     "%s\r\n",
                     status, gw_http_reason(status), ctype ? ctype : "text/plain; charset=utf-8",
                     blen, keep_alive ? "keep-alive" : "close", extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof head)
        n = (int)sizeof head - 1;
    size_t bl = c->head_request ? 0 : blen;
    gw_blob *b = gw_blob_new((size_t)n + bl);
    memcpy(b->data, head, (size_t)n);
    if (bl)
        memcpy(b->data + n, body, bl);
    enqueue(c, b);
    gw_blob_unref(b);
    if (!keep_alive) {
        close_after_flush(c);
        return;
    }
    c->state = GW_C_HTTP;
    tq_add(c, GW_TQ_HANDSHAKE, gw.cfg.handshake_timeout);
}

/* A refusal: status, a one-line reason as the body, connection closed. */
static void http_error(gw_conn *c, int status, const char *reason, const char *extra)
{
    char body[RD_ERR_LEN + 2];
    int n = snprintf(body, sizeof body, "%s\n", reason);
    rd_debug("msg=\"request refused\" conn=%llu remote=%s status=%d reason=\"%s\"",
             (unsigned long long)c->id, c->remote, status, reason);
    http_respond(c, status, NULL, extra, body, (size_t)n, false);
}

static void ws_send_close(gw_conn *c, uint16_t code, const char *reason, size_t rlen)
{
    uint8_t payload[125];
    size_t pl = ws_close_payload(payload, code, reason, rlen);
    uint8_t hdr[14];
    size_t hl = ws_frame_header(hdr, true, false, WS_OP_CLOSE, pl, NULL);
    gw_blob *b = gw_blob_new(hl + pl);
    memcpy(b->data, hdr, hl);
    memcpy(b->data + hl, payload, pl);
    enqueue(c, b);
    gw_blob_unref(b);
}

static gw_blob *ws_frame_blob(int opcode, bool rsv1, const void *payload, size_t len)
{
    uint8_t hdr[14];
    size_t hl = ws_frame_header(hdr, true, rsv1, opcode, len, NULL);
    gw_blob *b = gw_blob_new(hl + len);
    memcpy(b->data, hdr, hl);
    if (len)
        memcpy(b->data + hl, payload, len);
    return b;
}

/* Close the WebSocket from our side with code and reason. */
static void ws_fail(gw_conn *c, uint16_t code, const char *reason)
{
    if (c->state != GW_C_WS)
        return;
    ws_send_close(c, code, reason, strlen(reason));
    shard_forget(c, code, reason);
    close_after_flush(c);
}

/* --- requests ------------------------------------------------------------ */

static void metric(rd_buf *b, const char *name, const char *type, const char *help,
                   const char *labels, uint64_t v)
{
    char line[512];
    int n;
    if (type) {
        n = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
        rd_buf_append(b, line, (size_t)n);
    }
    n = snprintf(line, sizeof line, "%s%s %llu\n", name, labels ? labels : "", (unsigned long long)v);
    rd_buf_append(b, line, (size_t)n);
}

/* Prometheus text format. */
void gw_metrics_render(rd_buf *b)
{
    const gw_stats *st = &gw.stats;
    size_t out_bytes = 0, ws = 0;
    gw_conn *c;
    size_t it = 0;
    while ((c = rd_map_next(&gw.conns, &it))) {
        out_bytes += c->out_bytes;
        ws += c->state == GW_C_WS;
    }
    metric(b, "roomd_connections", "gauge", "Client connections open now.", NULL, gw.nconns);
    metric(b, "roomd_websockets", "gauge", "WebSocket connections open now.", NULL, ws);
    metric(b, "roomd_outbound_queued_bytes", "gauge", "Bytes queued for clients.", NULL, out_bytes);
    metric(b, "roomd_accepted_total", "counter", "TCP connections accepted.", NULL, st->accepted);
    metric(b, "roomd_http_requests_total", "counter", "HTTP requests parsed.", NULL, st->http_requests);
    metric(b, "roomd_handshakes_total", "counter", "WebSocket handshakes by result.", "{result=\"ok\"}",
           st->handshakes_ok);
    static const char *const hsf[GW_HSF_COUNT] = { "bad_request", "origin", "unknown_class", "unavailable",
                                                   "rejected" };
    uint64_t failed = 0;
    for (size_t i = 0; i < GW_HSF_COUNT; i++)
        failed += st->hs_failed[i];
    metric(b, "roomd_handshakes_total", NULL, NULL, "{result=\"failed\"}", failed);
    for (size_t i = 0; i < GW_HSF_COUNT; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "{reason=\"%s\"}", hsf[i]);
        metric(b, "roomd_handshake_failures_total", i ? NULL : "counter", "WebSocket handshakes refused, by reason.",
               labels, st->hs_failed[i]);
    }
    metric(b, "roomd_tls_handshake_failures_total", "counter", "TLS handshakes that failed.", NULL,
           st->tls_failed);
    metric(b, "roomd_tls_offloaded_total", "counter",
           "TLS 1.3 connections whose records the gateway protects after the handshake (--tls-offload).", NULL,
           st->tls_offloaded);
    metric(b, "roomd_tls_record_errors_total", "counter",
           "Connections ended by a TLS record that failed to open, or by a peer's alert.", NULL,
           st->tls_record_errors);
    metric(b, "roomd_refused_total", "counter", "Requests refused by a limit.", "{reason=\"per_ip\"}",
           st->refused_per_ip);
    metric(b, "roomd_refused_total", NULL, NULL, "{reason=\"origin\"}", st->refused_origin);
    metric(b, "roomd_messages_total", "counter", "WebSocket messages.", "{direction=\"in\"}", st->msgs_in);
    metric(b, "roomd_messages_total", NULL, NULL, "{direction=\"out\"}", st->msgs_out);
    metric(b, "roomd_message_bytes_total", "counter", "WebSocket payload bytes.", "{direction=\"in\"}",
           st->bytes_in);
    metric(b, "roomd_message_bytes_total", NULL, NULL, "{direction=\"out\"}", st->bytes_out);
    metric(b, "roomd_broadcasts_total", "counter", "Broadcasts received from shards.", NULL, st->broadcasts);
    metric(b, "roomd_deliveries_total", "counter", "Broadcast messages queued to clients.", NULL,
           st->deliveries);
    metric(b, "roomd_closed_total", "counter", "WebSockets closed by the gateway, by reason.",
           "{reason=\"rate\"}", st->closed_rate);
    metric(b, "roomd_closed_total", NULL, NULL, "{reason=\"slow_consumer\"}", st->closed_slow);
    metric(b, "roomd_closed_total", NULL, NULL, "{reason=\"idle\"}", st->closed_idle);
    metric(b, "roomd_closed_total", NULL, NULL, "{reason=\"protocol\"}", st->closed_protocol);
    metric(b, "roomd_dropped_messages_total", "counter",
           "Messages to clients dropped: by --slow-policy drop-oldest, or for a connection already closed.",
           "{reason=\"slow_consumer\"}", st->dropped_slow);
    metric(b, "roomd_dropped_messages_total", NULL, NULL, "{reason=\"closed\"}", st->dropped_closed);
    metric(b, "roomd_dropped_bytes_total", "counter", "Bytes dropped by --slow-policy drop-oldest.",
           "{reason=\"slow_consumer\"}", st->dropped_slow_bytes);
    rd_hist_render(b, "roomd_shard_request_seconds",
                   "Gateway to shard and back: a WebSocket open (OPEN to ACCEPT/REJECT) or an object HTTP request.",
                   true, "kind=\"open\"", &st->open_hist);
    rd_hist_render(b, "roomd_shard_request_seconds", NULL, false, "kind=\"http\"", &st->http_hist);
    metric(b, "roomd_link_pauses_total", "counter", "Clients paused because their shard link was full.",
           NULL, st->link_pauses);
    metric(b, "roomd_accept_pauses_total", "counter", "Times accepting paused (limit or descriptors).",
           NULL, st->accept_pauses);
    metric(b, "roomd_pings_sent_total", "counter", "Idle probes sent.", NULL, st->pings_sent);
    metric(b, "roomd_auto_responses_total", "counter", "Messages answered by an object's auto-response.",
           NULL, st->auto_responses);
    metric(b, "roomd_resumed_total", "counter", "WebSockets re-opened on a restarted shard, by result.",
           "{result=\"ok\"}", st->resumed);
    metric(b, "roomd_resumed_total", NULL, NULL, "{result=\"failed\"}", st->resume_failed);
    metric(b, "roomd_heartbeats_total", "counter", "/client.js heartbeats the gateway answered itself.",
           NULL, st->heartbeats);
    metric(b, "roomd_auth_refused_total", "counter", "Requests refused by JWT authentication (401/403).",
           NULL, st->auth_refused);
    metric(b, "roomd_compressed_messages_total", "counter",
           "permessage-deflate messages (out: compressions, shared by all recipients of a broadcast).",
           "{direction=\"in\"}", st->compressed_in);
    metric(b, "roomd_compressed_messages_total", NULL, NULL, "{direction=\"out\"}", st->compressed_out);
    size_t shared = 0;
    for (size_t i = 0; i < gw.ndeflaters; i++)
        shared += ws_deflater_memory(gw.deflaters[i]);
    for (size_t i = 0; i < gw.ninflaters; i++)
        shared += ws_inflater_memory(gw.inflaters[i]);
    metric(b, "roomd_compression_memory_bytes", "gauge",
           "Estimated zlib memory: shared (stateless) and per-connection (context takeover).",
           "{kind=\"shared\"}", shared);
    metric(b, "roomd_compression_memory_bytes", NULL, NULL, "{kind=\"per_connection\"}", st->pmd_conn_memory);
    metric(b, "roomd_compression_connections", "gauge", "Connections holding their own zlib state.", NULL,
           st->pmd_conns);
    for (size_t i = 0; i < gw.nshards; i++) {
        char labels[96];
        snprintf(labels, sizeof labels, "{shard=\"%s\"}", gw.shards[i]->name);
        metric(b, "roomd_shard_member", i ? NULL : "gauge", "In the routing set (1) or not (0).", labels,
               gw.shards[i]->member);
    }
    metric(b, "roomd_shard_set_changes_total", "counter", "Routing set changes.", NULL, st->set_changes);
    metric(b, "roomd_handoffs_total", "counter", "Objects moved to another shard.", NULL, st->handoffs);
    metric(b, "roomd_handoff_connections_total", "counter", "Connections moved to another shard.", NULL,
           st->handoff_conns);
    metric(b, "roomd_handoff_timeouts_total", "counter",
           "Moves finished without the old shard's answer (--handoff-timeout).", NULL, st->handoff_timeouts);
    metric(b, "roomd_handoffs_in_progress", "gauge", "Objects moving or waiting to move.", NULL, gw.handoffs.count);
    {
        static const char *const le[8] = { "0.001", "0.002", "0.005", "0.01", "0.05", "0.25", "1", "+Inf" };
        uint64_t cum = 0;
        rd_buf_printf(b, "# HELP roomd_handoff_pause_seconds Time a moved connection was not read, "
                         "from the move's start to the new shard's accept.\n"
                         "# TYPE roomd_handoff_pause_seconds histogram\n");
        for (int k = 0; k < 8; k++) {
            cum += st->handoff_pause_us[k];
            rd_buf_printf(b, "roomd_handoff_pause_seconds_bucket{le=\"%s\"} %llu\n", le[k],
                          (unsigned long long)cum);
        }
        rd_buf_printf(b, "roomd_handoff_pause_seconds_sum %.6f\nroomd_handoff_pause_seconds_count %llu\n",
                      (double)st->handoff_pause_sum_us / 1e6, (unsigned long long)cum);
    }
    for (size_t i = 0; i < gw.nshards; i++) {
        char labels[96];
        snprintf(labels, sizeof labels, "{shard=\"%s\"}", gw.shards[i]->name);
        metric(b, "roomd_shard_up", i ? NULL : "gauge", "Gateway-to-shard link state (1 up).", labels,
               gw.shards[i]->up);
    }
    for (size_t i = 0; i < gw.nshards; i++) {
        char labels[96];
        snprintf(labels, sizeof labels, "{shard=\"%s\"}", gw.shards[i]->name);
        metric(b, "roomd_shard_link_queued_bytes", i ? NULL : "gauge", "Bytes queued to a shard.", labels,
               rd_buf_avail(&gw.shards[i]->out));
    }
    for (size_t i = 0; i < gw.nshards; i++) {
        char labels[96];
        snprintf(labels, sizeof labels, "{shard=\"%s\"}", gw.shards[i]->name);
        metric(b, "roomd_shard_restarts_total", i ? NULL : "counter", "Shard processes restarted.", labels,
               gw.shards[i]->restarts);
    }
    /* Federation, per shard, as of its last PONG (at most a second old). */
    static const struct { const char *name, *help; size_t off; } fedm[] = {
        { "roomd_federation_published_total", "Broadcasts published to Redis.", offsetof(gw_shard, fed_published) },
        { "roomd_federation_dropped_total", "Broadcasts not published (Redis down or behind).", offsetof(gw_shard, fed_dropped) },
        { "roomd_federation_received_total", "Envelopes received from Redis.", offsetof(gw_shard, fed_received) },
        { "roomd_federation_gaps_total", "Messages missing in the sequences received.", offsetof(gw_shard, fed_gaps) },
        { "roomd_federation_hangs_total", "Redis connections dropped for missing their reply deadline.", offsetof(gw_shard, fed_hangs) },
    };
    for (size_t k = 0; k < sizeof fedm / sizeof fedm[0]; k++)
        for (size_t i = 0; i < gw.nshards; i++) {
            char labels[96];
            snprintf(labels, sizeof labels, "{shard=\"%s\"}", gw.shards[i]->name);
            metric(b, fedm[k].name, i ? NULL : "counter", fedm[k].help, labels,
                   *(const uint64_t *)((const char *)gw.shards[i] + fedm[k].off));
        }
    for (size_t i = 0; i < gw.nshards; i++) {
        char labels[96];
        snprintf(labels, sizeof labels, "{shard=\"%s\"}", gw.shards[i]->name);
        metric(b, "roomd_federation_state", i ? NULL : "gauge", "0 off, 1 ok, 2 degraded.", labels,
               gw.shards[i]->fed);
    }
    /* Objects and latency histograms, per shard, from its last PONG. */
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < gw.nshards; i++) {
            char labels[128];
            snprintf(labels, sizeof labels, "{shard=\"%s\",state=\"%s\"}", gw.shards[i]->name,
                     k ? "hibernated" : "live");
            metric(b, "roomd_shard_objects", i || k ? NULL : "gauge",
                   "Objects on a shard: live (in memory) or hibernated (evicted, WebSockets kept).", labels,
                   k ? gw.shards[i]->objects_hibernated : gw.shards[i]->objects_live);
        }
    static const struct { const char *name, *help; size_t off; } hists[] = {
        { "roomd_shard_commit_seconds", "Storage commits that wrote something (one per object per loop turn).",
          offsetof(gw_shard, commit_hist) },
        { "roomd_shard_message_seconds", "A client message's handling on its shard (the class's callback).",
          offsetof(gw_shard, event_hist) },
        { "roomd_federation_lag_seconds", "Sampled broadcasts' round trip shard -> Redis -> shard.",
          offsetof(gw_shard, fed_lag_hist) },
    };
    for (size_t k = 0; k < sizeof hists / sizeof hists[0]; k++)
        for (size_t i = 0; i < gw.nshards; i++) {
            char labels[96];
            snprintf(labels, sizeof labels, "shard=\"%s\"", gw.shards[i]->name);
            rd_hist_render(b, hists[k].name, hists[k].help, i == 0, labels,
                           (const rd_hist *)((const char *)gw.shards[i] + hists[k].off));
        }
}

/* Accept-Encoding lists gzip (without q=0). */
static bool accepts_gzip(const gw_http_request *req)
{
    const gw_http_header *h = gw_http_header_find(req, "accept-encoding");
    const char *p = h ? h->value : NULL, *end = h ? h->value + h->value_len : NULL;
    while (p && p < end) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        const char *e = p;
        while (e < end && *e != ',')
            e++;
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *ne = semi ? semi : e;
        while (ne > p && ne[-1] == ' ')
            ne--;
        if (ne - p == 4 && strncasecmp(p, "gzip", 4) == 0) {
            const char *q = semi ? memmem(semi, (size_t)(e - semi), "q=0", 3) : NULL;
            /* q=0, q=0.0, q=0.00: refused; q=0.5: fine */
            bool zero = q && (q + 3 == e || q[3] == ' ' ||
                              (q[3] == '.' && strspn(q + 4, "0") >= (size_t)(e - q - 4)));
            return !zero;
        }
        p = e;
    }
    return false;
}

/* If-None-Match names our ETag (or "*"): the client's copy is current. */
static bool etag_matches(const gw_http_request *req, const char *etag)
{
    const gw_http_header *h = gw_http_header_find(req, "if-none-match");
    if (!h)
        return false;
    if (h->value_len == 1 && h->value[0] == '*')
        return true;
    return memmem(h->value, h->value_len, etag, strlen(etag)) != NULL;
}

/* 200 with body, or 304 (no body; Content-Length of the representation). */
static void respond_cached(gw_conn *c, const gw_http_request *req, const char *ctype, const char *etag,
                           const char *extra, const void *body, size_t len)
{
    char head[512];
    snprintf(head, sizeof head, "ETag: %s\r\nAccess-Control-Allow-Origin: *\r\n%s", etag, extra);
    if (etag_matches(req, etag)) {
        bool was = c->head_request;
        c->head_request = true;
        http_respond(c, 304, ctype, head, NULL, len, c->keep_alive);
        c->head_request = was;
        return;
    }
    http_respond(c, 200, ctype, head, body, len, c->keep_alive);
}

/* /client.js and friends: revalidated by ETag on every use (no-cache), so
 * an upgraded gateway is picked up at once; gzip when the client takes it. */
static void serve_asset(gw_conn *c, const gw_http_request *req, const gw_asset *a)
{
    bool gz = a->gz && accepts_gzip(req);
    char extra[160];
    snprintf(extra, sizeof extra, "Cache-Control: public, no-cache\r\nVary: Accept-Encoding\r\n%s",
             gz ? "Content-Encoding: gzip\r\n" : "");
    respond_cached(c, req, a->ctype, a->etag, extra, gz ? a->gz : a->body, gz ? a->gz_len : a->len);
}

/* GET /exports.js?shared&room=R: generated per request (origin, room, the
 * classes' methods as the shards announced them). */
static void serve_exports(gw_conn *c, const gw_http_request *req, const char *q, size_t ql)
{
    gw_exports_req er;
    char err[RD_ERR_LEN], origin[512];
    if (gw_exports_query(q, ql, &er, err) < 0) {
        http_error(c, 400, err, NULL);
        return;
    }
    const gw_http_header *h = gw_http_header_find(req, "host");
    if (gw_exports_origin(c->tls, h ? h->value : NULL, h ? h->value_len : 0, gw.cfg.public_url, origin,
                          sizeof origin, err) < 0) {
        http_error(c, 400, err, NULL);
        return;
    }
    const gw_shard *s = gw_methods_source();
    if (!s) {
        http_error(c, 503, "no shard is available yet; retry shortly", "Retry-After: 1\r\n");
        return;
    }
    rd_buf b = RD_BUF_INIT;
    gw_exports_render(&b, origin, &er, (const char *const *)s->methods, s->method_stream, s->nmethods);
    char etag[24];
    snprintf(etag, sizeof etag, "\"%016llx\"", (unsigned long long)rd_hash64(rd_buf_data(&b), rd_buf_avail(&b)));
    respond_cached(c, req, "text/javascript; charset=utf-8", etag, "Cache-Control: no-cache\r\nVary: Host\r\n",
                   rd_buf_data(&b), rd_buf_avail(&b));
    rd_buf_free(&b);
}

static void gateway_route(gw_conn *c, const gw_http_request *req, const char *path, size_t plen)
{
    bool get = (req->method_len == 3 && !memcmp(req->method, "GET", 3)) ||
               (req->method_len == 4 && !memcmp(req->method, "HEAD", 4));
    if (plen == 8 && !memcmp(path, "/healthz", 8)) {
        if (!get) {
            http_error(c, 405, "/healthz answers GET and HEAD", "Allow: GET, HEAD\r\n");
            return;
        }
        char body[4096];
        size_t n = 0, up = 0;
        n += (size_t)snprintf(body + n, sizeof body - n, "{\"shards\":{");
        /* The routing set: every member must be up. */
        for (size_t i = 0; i < gw.nroute && n < sizeof body - 128; i++) {
            up += gw.route[i]->up;
            n += (size_t)snprintf(body + n, sizeof body - n, "%s\"%s\":\"%s\"", i ? "," : "",
                                  gw.route[i]->name, gw.route[i]->up ? "up" : "down");
        }
        /* Federation: off unless a shard runs with --redis; degraded while any
         * shard reports Redis unreachable or a subscription missing. */
        int fed = 0;
        for (size_t i = 0; i < gw.nroute; i++)
            if (gw.route[i]->up && gw.route[i]->fed > fed)
                fed = gw.route[i]->fed;
        bool ok = gw.nroute > 0 && up == gw.nroute && fed != 2;
        n += (size_t)snprintf(body + n, sizeof body - n, "},\"federation\":\"%s\",\"status\":\"%s\"}\n",
                              fed == 0 ? "off" : fed == 1 ? "ok" : "degraded", ok ? "ok" : "degraded");
        http_respond(c, ok ? 200 : 503, "application/json", NULL, body, n, c->keep_alive);
        return;
    }
    if (plen == 8 && !memcmp(path, "/metrics", 8) && get) {
        rd_buf b = RD_BUF_INIT;
        gw_metrics_render(&b);
        http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, rd_buf_data(&b),
                     rd_buf_avail(&b), c->keep_alive);
        rd_buf_free(&b);
        return;
    }
    const gw_asset *asset = get ? gw_asset_find(path, plen) : NULL;
    if (asset) {
        serve_asset(c, req, asset);
        return;
    }
    if (plen == 11 && !memcmp(path, "/exports.js", 11) && get) {
        const char *qm = memchr(req->target, '?', req->target_len);
        serve_exports(c, req, qm ? qm + 1 : "", qm ? req->target_len - (size_t)(qm + 1 - req->target) : 0);
        return;
    }
    http_error(c, 404, "not found", NULL);
}

/* Browsers send Origin; --allowed-origins lists who may connect: exact
 * origins, or a host starting with "*." for any subdomain. A request
 * without Origin is not from a browser page and is let through. */
static bool origin_allowed(const gw_http_request *req)
{
    if (!gw.origins)
        return true;
    const gw_http_header *h = gw_http_header_find(req, "origin");
    if (!h)
        return true;
    for (size_t i = 0; i < gw.norigins; i++) {
        const char *o = gw.origins[i];
        size_t ol = strlen(o);
        const char *star = strstr(o, "://*.");
        if (!star) {
            if (ol == h->value_len && strncasecmp(o, h->value, ol) == 0)
                return true;
            continue;
        }
        /* Wildcard: same scheme, and the host ends with ".domain". */
        size_t scheme = (size_t)(star - o) + 3, suffix = ol - scheme - 1;
        if (h->value_len > scheme + suffix && strncasecmp(o, h->value, scheme) == 0 &&
            strncasecmp(o + scheme + 1, h->value + h->value_len - suffix, suffix) == 0)
            return true;
    }
    return false;
}

/* permessage-deflate: every Sec-WebSocket-Extensions header, joined, against
 * the policy. An unparseable list is a 400; no acceptable offer just means
 * no compression. */
static int negotiate_pmd(gw_conn *c, const gw_http_request *req, char resp[WS_PMD_RESP_MAX],
                         int *ret_status, char err[RD_ERR_LEN])
{
    char joined[8192];
    size_t n = 0;
    c->pmd = false;
    if (!gw.pmd_policy.enabled)
        return 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const gw_http_header *h = &req->headers[i];
        if (h->name_len != 24 || strncasecmp(h->name, "sec-websocket-extensions", 24) != 0)
            continue;
        if (n + h->value_len + 2 > sizeof joined) {
            *ret_status = 400;
            snprintf(err, RD_ERR_LEN, "Sec-WebSocket-Extensions too long");
            return -EINVAL;
        }
        if (n) {
            joined[n++] = ',';
            joined[n++] = ' ';
        }
        memcpy(joined + n, h->value, h->value_len);
        n += h->value_len;
    }
    if (!n)
        return 0;
    char why[RD_ERR_LEN];
    int r = ws_pmd_negotiate(joined, n, &gw.pmd_policy, &c->pmd_params, resp, WS_PMD_RESP_MAX, why);
    if (r < 0) {
        *ret_status = 400;
        snprintf(err, RD_ERR_LEN, "Sec-WebSocket-Extensions: %s", why);
        return -EINVAL;
    }
    c->pmd = r == 1;
    if (!c->pmd)
        resp[0] = '\0';
    return 0;
}

static ws_deflater *shared_deflater(const ws_pmd_params *p, uint8_t *ret_key)
{
    unsigned key = ws_deflater_key(p, &gw.pmd_policy);
    size_t i;
    for (i = 0; i < gw.ndeflaters; i++)
        if (gw.deflater_keys[i] == key)
            break;
    if (i == gw.ndeflaters) {
        if (i == GW_PMD_SHARED)
            i = 0; /* cannot happen: at most 8 window sizes per policy */
        else
            gw.ndeflaters++;
        gw.deflater_keys[i] = key;
        gw.deflaters[i] = ws_deflater_new(p, &gw.pmd_policy);
    }
    *ret_key = (uint8_t)i;
    return gw.deflaters[i];
}

static ws_inflater *shared_inflater(const ws_pmd_params *p)
{
    unsigned key = ws_inflater_key(p);
    for (size_t i = 0; i < gw.ninflaters; i++)
        if (gw.inflater_keys[i] == key)
            return gw.inflaters[i];
    if (gw.ninflaters == GW_PMD_SHARED)
        return NULL;
    gw.inflater_keys[gw.ninflaters] = key;
    return gw.inflaters[gw.ninflaters++] = ws_inflater_new(p);
}

/* Set up compression state for a connection that negotiated it. */
static void pmd_open(gw_conn *c)
{
    c->ws->pmd = true;
    if (c->pmd_params.server_no_context_takeover) {
        shared_deflater(&c->pmd_params, &c->pmd_key);
    } else {
        c->deflater = ws_deflater_new(&c->pmd_params, &gw.pmd_policy);
        gw.stats.pmd_conn_memory += ws_deflater_memory(c->deflater);
    }
    if (!c->pmd_params.client_no_context_takeover) {
        c->inflater = ws_inflater_new(&c->pmd_params);
        gw.stats.pmd_conn_memory += ws_inflater_memory(c->inflater);
    }
    if (c->deflater || c->inflater)
        gw.stats.pmd_conns++;
}

static void pmd_close(gw_conn *c)
{
    if (c->deflater || c->inflater)
        gw.stats.pmd_conns--;
    if (c->deflater) {
        gw.stats.pmd_conn_memory -= ws_deflater_memory(c->deflater);
        ws_deflater_free(c->deflater);
        c->deflater = NULL;
    }
    if (c->inflater) {
        gw.stats.pmd_conn_memory -= ws_inflater_memory(c->inflater);
        ws_inflater_free(c->inflater);
        c->inflater = NULL;
    }
}

/* The frame for one outgoing data message to c: compressed when c
 * negotiated it and the message is big enough. cache[] holds this message's
 * compressed frames per shared deflater, so a broadcast is compressed once
 * per sharing key; plain is the uncompressed frame, built once. */
static gw_blob *frame_for(gw_conn *c, int opcode, const uint8_t *p, size_t n, gw_blob **plain,
                          gw_blob *cache[GW_PMD_SHARED])
{
    if (c->pmd && n >= gw.cfg.compression_min) {
        gw_blob **slot = c->deflater ? NULL : &cache[c->pmd_key];
        if (slot && *slot)
            return *slot;
        ws_deflater *d = c->deflater ? c->deflater : gw.deflaters[c->pmd_key];
        rd_buf_reset(&gw.deflated, 4u << 20);
        if (ws_deflater_message(d, p, n, &gw.deflated) == 0) {
            gw.stats.compressed_out++;
            gw_blob *b = ws_frame_blob(opcode, true, rd_buf_data(&gw.deflated), rd_buf_avail(&gw.deflated));
            if (slot)
                *slot = b;
            return b;
        }
        if (c->deflater) {
            ws_fail(c, WS_CLOSE_INTERNAL, "compression failed");
            return NULL;
        }
    }
    if (!*plain)
        *plain = ws_frame_blob(opcode, false, p, n);
    return *plain;
}

/* Constant time, so the key cannot be guessed byte by byte from timing. */
/* Where a request for key goes now: its routing owner, or, while the object
 * waits to move or is moving, the old owner that still holds it (a new
 * member then moves with the others). */
static gw_shard *owner_now(const char *key, size_t klen)
{
    gw_handoff *moving = rd_smap_get(&gw.handoffs, key, klen);
    if (moving && moving->from && moving->from->up)
        return moving->from;
    return gw_route_pick(key, klen);
}

static bool key_equal(const char *a, size_t al, const char *b, size_t bl)
{
    unsigned char d = al != bl;
    for (size_t i = 0; i < al && i < bl; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* A bearer key check: 403 when no key is configured (off_reason), 401
 * without the right one. what names the key in the answers; x_roomd_key
 * also accepts it in an X-Roomd-Key header. */
static bool key_authorized(gw_conn *c, const gw_http_request *req, const char *want, const char *off_reason,
                           const char *what, bool x_roomd_key)
{
    if (!want || !want[0]) {
        http_error(c, 403, off_reason, NULL);
        return false;
    }
    const gw_http_header *h = gw_http_header_find(req, "authorization");
    const char *k = NULL;
    size_t kl = 0;
    if (h && h->value_len > 7 && strncasecmp(h->value, "Bearer ", 7) == 0) {
        k = h->value + 7;
        kl = h->value_len - 7;
    } else if (x_roomd_key && (h = gw_http_header_find(req, "x-roomd-key"))) {
        k = h->value;
        kl = h->value_len;
    }
    if (!k || !key_equal(k, kl, want, strlen(want))) {
        char why[96];
        if (k)
            snprintf(why, sizeof why, "wrong %s", what);
        else
            snprintf(why, sizeof why, "an %s is required (Authorization: Bearer KEY)", what);
        http_error(c, 401, why, "WWW-Authenticate: Bearer\r\n");
        return false;
    }
    return true;
}

/* The backend endpoints (publish, rpc) take POST and the API key
 * (--publish-key) as a bearer token or X-Roomd-Key. false after answering. */
static bool backend_allowed(gw_conn *c, const gw_http_request *req, const char *what)
{
    char why[96];
    if (!(req->method_len == 4 && !memcmp(req->method, "POST", 4))) {
        snprintf(why, sizeof why, "%s takes POST", what);
        http_error(c, 405, why, "Allow: POST\r\n");
        return false;
    }
    snprintf(why, sizeof why, "%s is off: start the gateway with --publish-key", what);
    if (!key_authorized(c, req, gw.cfg.publish_key, why, "API key", true)) {
        return false;
    }
    return true;
}

/* The shard owning a backend request's object, with the key in key[]; NULL
 * after answering. */
static gw_shard *backend_shard(gw_conn *c, const gw_target *t, char key[300], size_t *ret_klen)
{
    size_t klen = t->cls_len + 1 + t->name_len;
    if (klen >= 300) {
        http_error(c, 400, "object name too long", NULL);
        return NULL;
    }
    memcpy(key, t->cls, t->cls_len);
    key[t->cls_len] = '/';
    memcpy(key + t->cls_len + 1, t->name, t->name_len);
    gw_shard *s = owner_now(key, klen);
    if (!s || !s->up) {
        http_error(c, 503, "the shard owning this object is restarting; retry shortly", "Retry-After: 1\r\n");
        return NULL;
    }
    c->shard = s;
    c->shard_gen = s->gen;
    *ret_klen = klen;
    return s;
}

/* The request went to the shard: read nothing more until its HTTP_RES. */
static void backend_wait(gw_conn *c, gw_shard *s)
{
    gw_link_want_flush(s);
    c->state = GW_C_WAIT_HTTP;
    tq_remove(c);
    c->read_paused = true;
    event_del(&c->ev_read);
}

/* Send a backend request to the object's shard: PUBLISH [req, key, opcode,
 * payload] or CALL [req, key, method, params]; then wait for its HTTP_RES. */
static void backend_forward(gw_conn *c, const gw_target *t, int type, const char *method, size_t ml,
                            unsigned opcode, const uint8_t *body, size_t blen)
{
    char key[300];
    size_t klen;
    gw_shard *s = backend_shard(c, t, key, &klen);
    if (!s)
        return;
    rd_buf *b = &s->out;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 5);
    pr_mp_put_uint(b, (uint64_t)type);
    pr_mp_put_uint(b, c->id);
    pr_mp_put_str(b, key, klen);
    if (type == PR_CALL)
        pr_mp_put_str(b, method, ml);
    else
        pr_mp_put_uint(b, opcode);
    pr_mp_put_bin(b, body, blen);
    if (pr_frame_end(b, start) < 0) {
        http_error(c, 413, type == PR_CALL ? "request too large" : "message too large", NULL);
        return;
    }
    backend_wait(c, s);
}

/* POST /<class>/<name>/publish: a backend's message to every member of the
 * object, in every cell. ?type=binary sends a binary message; text must be
 * UTF-8. */
static void publish_request(gw_conn *c, const gw_http_request *req, const gw_target *t,
                            const uint8_t *body, size_t blen)
{
    if (!backend_allowed(c, req, "publishing"))
        return;
    bool binary = t->query_len == 11 && memcmp(t->query, "type=binary", 11) == 0;
    if (!binary && !ws_utf8_valid(body, blen)) {
        http_error(c, 400, "text messages must be UTF-8 (use ?type=binary for bytes)", NULL);
        return;
    }
    backend_forward(c, t, PR_PUBLISH, NULL, 0, binary ? WS_OP_BINARY : WS_OP_TEXT, body, blen);
}

/* POST /<class>/<name>/rpc/<method>: a backend calls a method; the body is
 * its params (JSON array or object, empty for none); the answer is the
 * JSON-RPC response (README, RPC). */
static void rpc_request(gw_conn *c, const gw_http_request *req, const gw_target *t,
                        const uint8_t *body, size_t blen)
{
    if (!backend_allowed(c, req, "RPC over HTTP"))
        return;
    const char *method = t->rest + 5;
    size_t ml = t->rest_len - 5;
    if (ml == 0 || ml > 64 || memchr(method, '/', ml)) {
        http_error(c, 400, "use POST /<class>/<name>/rpc/<method>", NULL);
        return;
    }
    backend_forward(c, t, PR_CALL, method, ml, 0, body, blen);
}

/* Does --jwt-class name this class (or '*')? */
static bool jwt_required(const gw_target *t)
{
    for (char **cl = gw.cfg.jwt_classes; cl && *cl; cl++)
        if (strcmp(*cl, "*") == 0 || (strlen(*cl) == t->cls_len && !memcmp(*cl, t->cls, t->cls_len)))
            return true;
    return false;
}

/* JWT authentication of an upgrade or an object HTTP request. The token
 * comes from Authorization: Bearer, a "bearer.<jwt>" subprotocol entry
 * (ptok: browsers cannot set headers on a WebSocket), or ?token=. Returns 0
 * to go on (*ret filled when a valid token came), or -1 after answering:
 * 401 with the reason (missing, malformed, algorithm, signature, expired),
 * 403 when the token does not open this object. */
static int authenticate(gw_conn *c, const gw_http_request *req, const gw_target *t, const char *key,
                        size_t klen, const char *ptok, size_t ptlen, gw_jwt *ret)
{
    if (!gw.jwt.secret && !gw.jwt.pub)
        return 0;
    const gw_http_header *h = gw_http_header_find(req, "authorization");
    const char *tok = NULL;
    size_t tl = 0;
    if (h && h->value_len >= 7 && strncasecmp(h->value, "Bearer ", 7) == 0) {
        tok = h->value + 7;
        tl = h->value_len - 7;
    } else if (ptok) {
        tok = ptok;
        tl = ptlen;
    } else if (!gw_http_query_param(t->query, t->query_len, "token", &tok, &tl)) {
        tok = NULL;
    }
    if (!tok && !jwt_required(t))
        return 0;
    char err[RD_ERR_LEN], why[RD_ERR_LEN + 64];
    int r = tok ? gw_jwt_verify(&gw.jwt, tok, tl, (int64_t)(rd_wall_ms() / 1000),
                                (int64_t)(gw.cfg.jwt_leeway / 1000), ret, err)
                : (snprintf(err, sizeof err, "missing token"), GW_JWT_MALFORMED);
    if (r < 0) {
        gw.stats.auth_refused++;
        /* RFC 6750 §3: the challenge names the error; the body says it plainly. */
        snprintf(why, sizeof why, "WWW-Authenticate: Bearer error=\"%s\"\r\n",
                 tok ? "invalid_token" : "invalid_request");
        http_error(c, 401, err, why);
        return -1;
    }
    if (!gw_jwt_allows(ret, key, klen)) {
        gw.stats.auth_refused++;
        gw_jwt_free(ret);
        snprintf(why, sizeof why, "the token does not open %.*s", (int)(klen < 200 ? klen : 200), key);
        http_error(c, 403, why, NULL);
        return -1;
    }
    return 0;
}

static const char *const object_methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", NULL };

static bool method_allowed(const gw_http_request *req)
{
    for (const char *const *m = object_methods; *m; m++)
        if (strlen(*m) == req->method_len && !memcmp(*m, req->method, req->method_len))
            return true;
    return false;
}

/* Write the request's headers as a msgpack map, names lower-cased. */
static void put_headers(rd_buf *b, const gw_http_request *req)
{
    pr_mp_put_map(b, (uint32_t)req->num_headers);
    for (size_t i = 0; i < req->num_headers; i++) {
        const gw_http_header *h = &req->headers[i];
        char name[256];
        size_t nl = h->name_len < sizeof name ? h->name_len : sizeof name;
        for (size_t j = 0; j < nl; j++) {
            char ch = h->name[j];
            name[j] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
        }
        pr_mp_put_str(b, name, nl);
        pr_mp_put_str(b, h->value, h->value_len);
    }
}

static void object_request(gw_conn *c, const gw_http_request *req, const gw_target *t,
                           const uint8_t *body, size_t blen)
{
    bool upgrade = ws_handshake_requested(req);
    if (!gw_any_shard_up()) {
        gw.stats.hs_failed[GW_HSF_UNAVAILABLE] += upgrade;
        http_error(c, 503, "no shard is available yet; retry shortly", "Retry-After: 1\r\n");
        return;
    }
    if (!gw_class_known(t->cls, t->cls_len)) {
        char why[96];
        snprintf(why, sizeof why, "unknown class '%.*s'", (int)t->cls_len, t->cls);
        gw.stats.hs_failed[GW_HSF_UNKNOWN_CLASS] += upgrade;
        http_error(c, 404, why, NULL);
        return;
    }
    char accept[WS_ACCEPT_LEN + 1];
    char ext_resp[WS_PMD_RESP_MAX] = "";
    const char *protos = NULL, *ptok = NULL;
    size_t protos_len = 0, ptlen = 0;
    if (upgrade && !origin_allowed(req)) {
        gw.stats.refused_origin++;
        gw.stats.hs_failed[GW_HSF_ORIGIN]++;
        http_error(c, 403, "origin not allowed", NULL);
        return;
    }
    if (upgrade) {
        int status;
        char err[RD_ERR_LEN];
        if (ws_handshake_check(req, accept, &protos, &protos_len, &status, err) < 0 ||
            negotiate_pmd(c, req, ext_resp, &status, err) < 0) {
            gw.stats.hs_failed[GW_HSF_BAD_REQUEST]++;
            http_error(c, status, err, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
            return;
        }
    } else if (t->rest_len == 8 && memcmp(t->rest, "/publish", 8) == 0) {
        publish_request(c, req, t, body, blen);
        return;
    } else if (t->rest_len >= 5 && memcmp(t->rest, "/rpc/", 5) == 0) {
        rpc_request(c, req, t, body, blen);
        return;
    } else if (!method_allowed(req)) {
        http_error(c, 405, "method not allowed", "Allow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n");
        return;
    }
    size_t klen = t->cls_len + 1 + t->name_len;
    free(c->key);
    c->key = rd_xmalloc(klen + 1);
    memcpy(c->key, t->cls, t->cls_len);
    c->key[t->cls_len] = '/';
    memcpy(c->key + t->cls_len + 1, t->name, t->name_len);
    c->key[klen] = '\0';
    /* The bearer entry is a credential, not a subprotocol: the class never
     * sees it, so it is never echoed back as the selected protocol. */
    char *offered = NULL;
    if (protos) {
        offered = rd_xmalloc(protos_len + 1);
        protos_len = gw_jwt_protocols_strip(protos, protos_len, offered, &ptok, &ptlen);
        protos = offered;
    }
    gw_jwt jwt = { 0 };
    if (authenticate(c, req, t, c->key, klen, ptok, ptlen, &jwt) < 0) {
        free(offered);
        return;
    }
    free(c->claims);
    c->claims = jwt.claims; /* the connection keeps them for resumes */
    c->claims_len = (uint32_t)jwt.claims_len;
    jwt.claims = NULL;
    gw_jwt_free(&jwt);
    gw_shard *s = owner_now(c->key, klen);
    if (!s || !s->up) {
        gw.stats.hs_failed[GW_HSF_UNAVAILABLE] += upgrade;
        free(offered);
        http_error(c, 503, "the shard owning this object is restarting; retry shortly",
                   "Retry-After: 1\r\n");
        return;
    }
    c->shard = s;
    c->sent_ns = rd_mono_ns();
    c->shard_gen = s->gen;
    rd_buf *b = &s->out;
    size_t start = pr_frame_begin(b);
    if (upgrade) {
        char client_id[RD_UUID_STR_LEN + 1];
        rd_uuid7(c->client_id);
        rd_uuid_format(c->client_id, client_id);
        c->connected_at = rd_wall_ms();
        /* The accept key and the extension answer ride in the key's tail
         * until the shard accepts: "class/name\0accept\0extensions\0". */
        size_t el = strlen(ext_resp);
        c->key = rd_xrealloc(c->key, klen + 1 + WS_ACCEPT_LEN + 1 + el + 1);
        memcpy(c->key + klen + 1, accept, WS_ACCEPT_LEN + 1);
        memcpy(c->key + klen + 1 + WS_ACCEPT_LEN + 1, ext_resp, el + 1);
        pr_mp_put_array(b, c->claims ? 13 : 10);
        pr_mp_put_uint(b, PR_OPEN);
        pr_mp_put_uint(b, c->id);
        pr_mp_put_str(b, c->key, klen);
        pr_mp_put_str(b, client_id, RD_UUID_STR_LEN);
        pr_mp_put_uint(b, c->connected_at);
        pr_mp_put_uint(b, 0);
        pr_mp_put_str(b, protos ? protos : "", protos_len);
        pr_mp_put_str(b, c->remote, strlen(c->remote));
        pr_mp_put_str(b, t->query, t->query_len);
        put_headers(b, req);
        if (c->claims) {
            pr_mp_put_bin(b, NULL, 0);
            pr_mp_put_array(b, 0);
            pr_mp_put_str(b, c->claims, c->claims_len);
        }
        c->state = GW_C_WAIT_OPEN;
        c->shard_open = true;
    } else {
        pr_mp_put_array(b, c->claims ? 10 : 9);
        pr_mp_put_uint(b, PR_HTTP_REQ);
        pr_mp_put_uint(b, c->id);
        pr_mp_put_str(b, c->key, klen);
        pr_mp_put_str(b, req->method, req->method_len);
        pr_mp_put_str(b, t->rest, t->rest_len);
        pr_mp_put_str(b, t->query, t->query_len);
        put_headers(b, req);
        pr_mp_put_bin(b, body, blen);
        pr_mp_put_str(b, c->remote, strlen(c->remote));
        if (c->claims)
            pr_mp_put_str(b, c->claims, c->claims_len);
        c->state = GW_C_WAIT_HTTP;
    }
    free(offered);
    if (pr_frame_end(b, start) < 0) {
        c->shard_open = false;
        c->state = GW_C_HTTP;
        http_error(c, 413, "request too large", NULL);
        return;
    }
    gw_link_want_flush(s);
    /* Nothing more is read until the shard answers. */
    tq_remove(c);
    c->read_paused = true;
    event_del(&c->ev_read);
}

/* Returns bytes consumed; 0 when more input is needed or reading stops. */
static size_t handle_http(gw_conn *c, uint8_t *p, size_t n)
{
    gw_http_request req;
    int status = 0;
    char err[RD_ERR_LEN];
    int r = gw_http_parse((const char *)p, n, gw.cfg.max_head, (size_t)gw.cfg.max_headers, &req,
                          &status, err);
    if (r == 0)
        return 0;
    if (r < 0) {
        http_error(c, status, err, NULL);
        return n;
    }
    if (c->over_ip_limit) {
        gw.stats.refused_per_ip++;
        http_error(c, 429, "too many connections from your address", "Retry-After: 5\r\n");
        return n;
    }
    gw.stats.http_requests++;
    size_t head = (size_t)r;
    size_t blen = 0;
    if (req.chunked) {
        http_error(c, 411, "chunked request bodies are not supported; send Content-Length", NULL);
        return n;
    }
    if (req.content_length > 0) {
        if ((uint64_t)req.content_length > gw.cfg.max_body) {
            http_error(c, 413, "request body too large", NULL);
            return n;
        }
        blen = (size_t)req.content_length;
        if (n - head < blen)
            return 0; /* wait for the whole body (bounded by max-body) */
    }
    c->keep_alive = req.keep_alive;
    c->head_request = req.method_len == 4 && !memcmp(req.method, "HEAD", 4);
    if (req.target_len >= 7 && !memcmp(req.target, "/admin/", 7)) {
        const char *qm = memchr(req.target, '?', req.target_len);
        size_t pl = qm ? (size_t)(qm - req.target) : req.target_len;
        admin_request(c, &req, req.target, pl, qm ? qm + 1 : "", qm ? req.target_len - pl - 1 : 0);
        return head + blen;
    }
    gw_target t;
    int k = gw_route_parse(req.target, req.target_len, gw.cfg.max_key, &t, err);
    if (k < 0)
        http_error(c, 400, err, NULL);
    else if (k == 0) {
        const char *qm = memchr(req.target, '?', req.target_len);
        gateway_route(c, &req, req.target, qm ? (size_t)(qm - req.target) : req.target_len);
    } else
        object_request(c, &req, &t, p + head, blen);
    return head + blen;
}

/* --- WebSocket input ----------------------------------------------------- */

/* Close the WebSocket with code/reason once the shard has acknowledged, so
 * replies to what the client sent before are delivered first (the shard's
 * CLOSE follows all its output for the connection). reason must outlive the
 * wait: static, or the reader's error text. */
static void close_after_shard(gw_conn *c, uint16_t code, const char *reason, unsigned shard_code)
{
    bool linked = c->shard_open && c->shard && c->shard->fd >= 0 && c->shard->gen == c->shard_gen;
    c->close_echo = code;
    c->close_reason = reason;
    shard_forget(c, shard_code, reason ? reason : "");
    if (linked) {
        c->state = GW_C_CLOSE_WAIT;
        tq_add(c, GW_TQ_CLOSE, gw.cfg.close_timeout);
    } else {
        ws_send_close(c, code, reason, reason ? strlen(reason) : 0);
        close_after_flush(c);
    }
}

/* Token bucket in thousandths of a message: --msg-rate per second sustained,
 * --msg-burst at once. False (and the connection closing) when empty. */
static bool rate_take(gw_conn *c)
{
    if (gw.cfg.msg_rate <= 0)
        return true;
    uint64_t now = rd_mono_ms();
    uint64_t cap = (uint64_t)gw.cfg.msg_burst * 1000;
    uint64_t t = c->tokens_ms ? c->tokens + (now - c->tokens_ms) * (uint64_t)gw.cfg.msg_rate : cap;
    c->tokens_ms = now;
    if (t > cap)
        t = cap;
    if (t < 1000) {
        c->tokens = (uint32_t)t;
        gw.stats.closed_rate++;
        rd_info("msg=\"message rate exceeded\" conn=%llu remote=%s", (unsigned long long)c->id, c->remote);
        ws_fail(c, WS_CLOSE_POLICY, "message rate exceeded");
        return false;
    }
    c->tokens = (uint32_t)(t - 1000);
    return true;
}

/* Replace a compressed message's payload by its inflated bytes (in
 * gw.inflated, valid until the next message). False when the connection
 * is failing: too big (1009), corrupt (1007), or invalid UTF-8 (1007). */
static bool inflate_message(gw_conn *c, ws_event *ev)
{
    ws_inflater *inf = c->inflater ? c->inflater : shared_inflater(&c->pmd_params);
    char err[RD_ERR_LEN];
    rd_buf_reset(&gw.inflated, 4u << 20);
    int r = inf ? ws_inflater_message(inf, ev->data, ev->len, gw.cfg.max_message, &gw.inflated, err)
                : -EBADMSG;
    if (r == -EMSGSIZE) {
        ws_fail(c, WS_CLOSE_TOO_BIG, "message too large");
        return false;
    }
    if (r < 0) {
        ws_fail(c, WS_CLOSE_INVALID_DATA, "invalid compressed data");
        return false;
    }
    ev->data = rd_buf_data(&gw.inflated);
    ev->len = rd_buf_avail(&gw.inflated);
    if (ev->opcode == WS_OP_TEXT && !ws_utf8_valid(ev->data, ev->len)) {
        ws_fail(c, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
        return false;
    }
    gw.stats.compressed_in++;
    return true;
}

/* The object's auto-response matched: answer here, tell the shard when
 * (without waking the object), and do not forward the message. */
static bool auto_respond(gw_conn *c, const ws_event *ev)
{
    gw_autoresp *a = rd_smap_get(&gw.autoresp, c->key, strlen(c->key));
    if (!a || a->request_len != ev->len || memcmp(a->request, ev->data, ev->len) != 0)
        return false;
    enqueue_data(c, a->response);
    gw.stats.auto_responses++;
    gw_shard *s = c->shard;
    if (s && s->fd >= 0 && s->gen == c->shard_gen) {
        rd_buf *b = &s->out;
        size_t start = pr_frame_begin(b);
        pr_mp_put_array(b, 3);
        pr_mp_put_uint(b, PR_AUTOHIT);
        pr_mp_put_uint(b, c->id);
        pr_mp_put_uint(b, rd_wall_ms());
        pr_frame_end(b, start);
        gw_link_want_flush(s);
    }
    return true;
}

/* /client.js's heartbeat: the gateway answers this exact JSON-RPC ping on
 * every connection itself, so a client can tell a dead link from a quiet
 * one without waking (or even reaching) its object. */
static bool heartbeat(gw_conn *c, const ws_event *ev)
{
    static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":\"hb\",\"method\":\"rpc.ping\"}";
    static const char res[] = "{\"jsonrpc\":\"2.0\",\"id\":\"hb\",\"result\":\"pong\"}";
    if (ev->len != sizeof req - 1 || memcmp(ev->data, req, sizeof req - 1) != 0)
        return false;
    gw_blob *b = ws_frame_blob(WS_OP_TEXT, false, res, sizeof res - 1);
    enqueue_data(c, b);
    gw_blob_unref(b);
    gw.stats.heartbeats++;
    return true;
}

void gw_autoresp_set(const pr_msg *m)
{
    const pr_str *k = &m->u.autoresp.key;
    gw_autoresp *a = rd_smap_del(&gw.autoresp, k->p, k->n);
    if (a) {
        gw_blob_unref(a->response);
        free(a->request);
        free(a->key);
        free(a);
    }
    if (!m->u.autoresp.request.n)
        return;
    a = rd_xcalloc(1, sizeof *a);
    a->key = rd_xstrndup(k->p, k->n);
    a->key_len = k->n;
    a->request = rd_xstrndup(m->u.autoresp.request.p, m->u.autoresp.request.n);
    a->request_len = m->u.autoresp.request.n;
    a->response = ws_frame_blob(WS_OP_TEXT, false, m->u.autoresp.response.p, m->u.autoresp.response.n);
    rd_smap_put(&gw.autoresp, a->key, a->key_len, a);
}

void gw_autoresp_free_all(void)
{
    gw_autoresp *a;
    size_t it = 0;
    while ((a = rd_map_next(&gw.autoresp, &it))) {
        gw_blob_unref(a->response);
        free(a->request);
        free(a->key);
        free(a);
    }
    rd_map_free(&gw.autoresp);
}

void gw_conn_on_meta(gw_conn *c, const pr_msg *m)
{
    if (m->u.meta.what & PR_META_ATTACHMENT) {
        free(c->attachment);
        c->attachment = NULL;
        c->attachment_len = 0;
        if (m->u.meta.attachment.n && m->u.meta.attachment.n <= PR_MAX_ATTACHMENT) {
            c->attachment = rd_xmalloc(m->u.meta.attachment.n);
            memcpy(c->attachment, m->u.meta.attachment.p, m->u.meta.attachment.n);
            c->attachment_len = (uint32_t)m->u.meta.attachment.n;
        }
    }
    if (m->u.meta.what & PR_META_TAGS) {
        /* Kept as the msgpack strings they came in, to send back as is. */
        free(c->tags);
        c->tags = NULL;
        c->tags_len = 0;
        c->ntags = 0;
        const pr_list *l = &m->u.meta.tags;
        if (l->n && l->n <= PR_MAX_TAGS) {
            c->tags_len = (uint32_t)(l->cur.end - l->cur.p);
            c->tags = rd_xmalloc(c->tags_len);
            memcpy(c->tags, l->cur.p, c->tags_len);
            c->ntags = (uint8_t)l->n;
        }
    }
}

static void link_pause(gw_conn *c, gw_shard *s)
{
    if (c->link_paused)
        return;
    c->link_paused = true;
    c->read_paused = true;
    event_del(&c->ev_read);
    c->pause_next = s->paused;
    s->paused = c;
    gw.stats.link_pauses++;
}

static void link_unpause(gw_conn *c)
{
    if (!c->link_paused)
        return;
    gw_shard *s = c->shard;
    for (gw_conn **pp = s ? &s->paused : NULL; pp && *pp; pp = &(*pp)->pause_next)
        if (*pp == c) {
            *pp = c->pause_next;
            break;
        }
    c->link_paused = false;
    c->pause_next = NULL;
}

static size_t handle_ws(gw_conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n && c->state == GW_C_WS) {
        ws_event ev;
        size_t used = ws_reader_feed(c->ws, p + off, n - off, &ev);
        off += used;
        switch (ev.type) {
        case WS_EV_NONE:
            if (used == 0)
                return n; /* cannot happen with input left; never spin */
            break;
        case WS_EV_MESSAGE: {
            gw_shard *s = c->shard;
            if (!s || s->fd < 0 || s->gen != c->shard_gen) {
                ws_fail(c, WS_CLOSE_RESTART, "shard restarting");
                return n;
            }
            if (!rate_take(c))
                return n;
            if (ev.compressed && !inflate_message(c, &ev))
                return n;
            if (ev.opcode == WS_OP_TEXT && gw.autoresp.count && auto_respond(c, &ev))
                break;
            if (ev.opcode == WS_OP_TEXT && heartbeat(c, &ev))
                break;
            gw.stats.msgs_in++;
            gw.stats.bytes_in += ev.len;
            pr_enc_frame(&s->out, PR_FRAME, c->id, (unsigned)ev.opcode, ev.data, ev.len);
            gw_link_want_flush(s);
            if (rd_buf_avail(&s->out) > gw.cfg.link_high || s->full) {
                /* The shard is behind: stop reading this client until its
                 * link drains; unread bytes wait here and in the kernel. */
                s->full = true;
                link_pause(c, s);
                return off;
            }
            break;
        }
        case WS_EV_PING: {
            if (!rate_take(c))
                return n;
            gw_blob *b = ws_frame_blob(WS_OP_PONG, false, ev.data, ev.len);
            enqueue(c, b);
            gw_blob_unref(b);
            break;
        }
        case WS_EV_PONG:
            break;
        case WS_EV_CLOSE:
            /* Echo the code (none -> empty close), after the replies. */
            close_after_shard(c, ev.close_code == WS_CLOSE_NO_STATUS ? 0 : ev.close_code, NULL,
                              ev.close_code);
            return n;
        case WS_EV_ERROR:
            gw.stats.closed_protocol++;
            rd_debug("msg=\"websocket protocol error\" conn=%llu code=%u reason=\"%s\"",
                     (unsigned long long)c->id, ev.close_code, ev.reason);
            /* The messages before the bad frame were fine: their replies go
             * out first, then the close with the error. */
            close_after_shard(c, ev.close_code, ev.reason, ev.close_code);
            return n;
        }
    }
    return c->state == GW_C_WS ? off : n;
}

/* Run the state machine over input; returns bytes consumed. */
static size_t consume(gw_conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        size_t used;
        switch (c->state) {
        case GW_C_HTTP:
            used = handle_http(c, p + off, n - off);
            break;
        case GW_C_WS:
            used = handle_ws(c, p + off, n - off);
            break;
        case GW_C_LINGER:
        case GW_C_CLOSING:
        case GW_C_CLOSE_WAIT:
        case GW_C_DEAD:
            return n; /* discard */
        default:
            return off; /* waiting for the shard: keep the rest */
        }
        if (used == 0)
            break;
        off += used;
    }
    return off;
}

static void conn_process(gw_conn *c, uint8_t *p, size_t n)
{
    if (c->state == GW_C_WS && gw.cfg.idle_timeout) {
        c->ping_sent = false;
        tq_add(c, GW_TQ_IDLE, gw.cfg.idle_timeout / 2);
    }
    if (rd_buf_avail(&c->in)) {
        rd_buf_append(&c->in, p, n);
        size_t used = consume(c, rd_buf_data(&c->in), rd_buf_avail(&c->in));
        rd_buf_consume(&c->in, used);
    } else {
        size_t used = consume(c, p, n);
        if (used < n)
            rd_buf_append(&c->in, p + used, n - used);
    }
    if (rd_buf_avail(&c->in) == 0)
        rd_buf_free(&c->in); /* idle connections hold no input buffer */
    else if (c->state == GW_C_HTTP && rd_buf_avail(&c->in) > gw.cfg.max_head + gw.cfg.max_body)
        http_error(c, 413, "request too large", NULL);
}

/* Input left over while we waited for the shard. */
static void resume_reading(gw_conn *c)
{
    if (c->state == GW_C_DEAD || c->resume_wait || c->handoff)
        return; /* its shard has not taken it (back) yet */
    c->read_paused = false;
    event_add(&c->ev_read, NULL);
    if (rd_buf_avail(&c->in)) {
        size_t used = consume(c, rd_buf_data(&c->in), rd_buf_avail(&c->in));
        rd_buf_consume(&c->in, used);
        if (!rd_buf_avail(&c->in))
            rd_buf_free(&c->in);
    }
}

static int tls_handshake(gw_conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->state = GW_C_HTTP;
        if (c->t13) {
            /* TLS 1.3: the record layer becomes ours and OpenSSL's state goes. */
            if (gw_tls13_take(c->ssl, c->t13)) {
                SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
                SSL_free(c->ssl);
                c->ssl = NULL;
                gw.stats.tls_offloaded++;
            } else {
                gw_tls13_detach(c->ssl);
                gw_tls13_free(c->t13);
                c->t13 = NULL;
            }
        }
        return 1;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        arm_write(c);
        return 0;
    }
    gw_tls_log_errors("handshake");
    gw.stats.tls_failed++;
    rd_debug("msg=\"tls handshake failed\" conn=%llu remote=%s", (unsigned long long)c->id, c->remote);
    conn_kill(c);
    return -1;
}

static void conn_read(gw_conn *c)
{
    if (c->state == GW_C_TLS_HS && tls_handshake(c) <= 0)
        return;
    /* A bounded number of reads per turn keeps one busy client from starving
     * the others. TLS may hold decrypted bytes we have not read (SSL_pending)
     * that no fd event will announce, so keep reading those. */
    for (int i = 0; i < 8 && c->state != GW_C_DEAD && !c->read_paused; i++) {
        bool more = false;
        ssize_t n = io_read(c, gw.scratch, GW_SCRATCH, &more);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            conn_kill(c);
            return;
        }
        conn_process(c, gw.scratch, (size_t)n);
        if (!more)
            break;
    }
    if (c->tls_read_wants_write && c->state != GW_C_DEAD)
        arm_write(c);
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_conn *c = arg;
    if (c->tls_write_wants_read) {
        c->tls_write_wants_read = false;
        want_flush(c);
    }
    conn_read(c);
}

/* --- output -------------------------------------------------------------- */

static void conn_flush(gw_conn *c)
{
    if (c->state == GW_C_DEAD || c->state == GW_C_TLS_HS)
        return;
    size_t written = 0;
    for (;;) {
        if (c->t13 && gw_tls13_pending(c->t13)) {
            int r = gw_tls13_flush(c->t13, c->fd);
            if (r < 0) {
                conn_kill(c);
                return;
            }
            if (r == 0) {
                arm_write(c);
                return;
            }
        }
        if (!c->out_head)
            break;
        if (written >= gw.cfg.max_write_turn) {
            /* Fair share used: the rest goes out next turn. */
            want_flush(c);
            return;
        }
        ssize_t w = io_write(c);
        if (w < 0) {
            conn_kill(c);
            return;
        }
        if (w == 0) {
            arm_write(c);
            return;
        }
        out_consume(c, (size_t)w);
        written += (size_t)w;
    }
    if (c->write_armed && !c->tls_read_wants_write) {
        event_del(&c->ev_write);
        c->write_armed = false;
    }
    if (c->close_after_flush && c->state == GW_C_CLOSING)
        start_linger(c);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_conn *c = arg;
    if (c->state == GW_C_TLS_HS) {
        c->write_armed = false;
        event_del(&c->ev_write);
        if (tls_handshake(c) > 0)
            conn_read(c);
        return;
    }
    if (c->tls_read_wants_write) {
        c->tls_read_wants_write = false;
        conn_read(c);
    }
    conn_flush(c);
}

/* Connections re-queued by conn_flush (over their per-turn share) land on
 * a fresh list, served next turn; the loop then polls without blocking.
 *
 * A sweep over many connections can take long: at saturation each write
 * to a loopback socket costs ~10 µs, so 10,000 of them hold the loop for
 * ~100 ms. Every GW_SWEEP_POLL_MS of it the shard links are read, so what
 * they sent meanwhile goes out to the connections still ahead in this
 * sweep (a connection on `list` is not on gw.flush_list: new output for it
 * is written when its turn comes). */
#define GW_SWEEP_POLL_MS 2
#define GW_SWEEP_POLL_EVERY 64 /* connections between clock reads */
void gw_conn_flush_all(void)
{
    gw_conn *list = gw.flush_list;
    gw.flush_list = NULL;
    uint64_t next_poll = 0;
    unsigned n = 0;
    while (list) {
        gw_conn *c = list;
        list = c->flush_next;
        c->flush_pending = false;
        if (!c->write_armed)
            conn_flush(c);
        if (++n % GW_SWEEP_POLL_EVERY == 0 && list) {
            uint64_t now = rd_mono_ms();
            if (!next_poll) {
                next_poll = now + GW_SWEEP_POLL_MS;
            } else if (now >= next_poll) {
                gw_link_poll_all();
                next_poll = now + GW_SWEEP_POLL_MS;
            }
        }
    }
}

bool gw_conn_flush_pending(void)
{
    return gw.flush_list != NULL;
}

/* --- handoff: the shard set changed ------------------------------------------
 *
 * Every connection whose object has a new owner stops being read (its bytes
 * wait in the kernel and c->in, bounded by the socket buffers), and its old
 * shard gets DETACH: the object hibernates there, its storage is committed
 * and its lock released, and DETACHED comes back after everything that shard
 * sent the connection. When the last of an object's connections is detached
 * they are all re-opened, resumed, on the current owner in one batch: none
 * of the object's members can speak before all of them are there again, so
 * no broadcast misses anyone. A shard that is gone has nothing to detach. */

static void send_open_resumed(gw_conn *c, gw_shard *s)
{
    rd_buf *b = &s->out;
    char client_id[RD_UUID_STR_LEN + 1];
    rd_uuid_format(c->client_id, client_id);
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, c->claims ? 13 : 12);
    pr_mp_put_uint(b, PR_OPEN);
    pr_mp_put_uint(b, c->id);
    pr_mp_put_str(b, c->key, strlen(c->key));
    pr_mp_put_str(b, client_id, RD_UUID_STR_LEN);
    pr_mp_put_uint(b, c->connected_at);
    pr_mp_put_uint(b, PR_OPEN_RESUMED);
    pr_mp_put_str(b, "", 0);
    pr_mp_put_str(b, c->remote, strlen(c->remote));
    pr_mp_put_str(b, "", 0);
    pr_mp_put_map(b, 0);
    pr_mp_put_bin(b, c->attachment, c->attachment_len);
    pr_mp_put_array(b, c->ntags);
    rd_buf_append(b, c->tags, c->tags_len);
    if (c->claims) /* the verified JWT claims come back with the connection */
        pr_mp_put_str(b, c->claims, c->claims_len);
    pr_frame_end(b, start);
    c->shard_gen = s->gen;
    c->shard_open = true;
}

static gw_handoff *hq_head, *hq_tail; /* moves waiting to start, in order */
static size_t h_active;                /* moves started, not finished */

static void handoff_free(gw_handoff *h)
{
    free(h->items);
    free(h->key);
    free(h);
}

static bool shard_live(const gw_shard *s)
{
    return s && s->fd >= 0 && s->up;
}

/* List c in its object's move (made, and queued, when new). */
static gw_handoff *handoff_add(gw_conn *c)
{
    size_t klen = strlen(c->key);
    gw_handoff *h = rd_smap_get(&gw.handoffs, c->key, klen);
    if (!h) {
        h = rd_xcalloc(1, sizeof *h);
        h->key = rd_xstrndup(c->key, klen);
        h->key_len = klen;
        h->from = c->shard;
        rd_smap_put(&gw.handoffs, h->key, klen, h);
        if (hq_tail)
            hq_tail->qnext = h;
        else
            hq_head = h;
        hq_tail = h;
    }
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        h->items = rd_xrealloc(h->items, h->cap * sizeof *h->items);
    }
    h->items[h->n++] = (gw_handoff_item){ .conn = c->id };
    c->move_queued = true;
    return h;
}

/* Stop reading c and detach it from its shard (if that one is alive). */
static void handoff_detach(gw_handoff *h, gw_handoff_item *it, gw_conn *c)
{
    c->move_queued = false;
    c->handoff = true;
    c->handoff_us = rd_mono_ns() / 1000;
    link_unpause(c);
    if (!c->read_paused) {
        c->read_paused = true;
        event_del(&c->ev_read);
    }
    gw_shard *s = c->shard;
    if (shard_live(s) && c->shard_open && s->gen == c->shard_gen) {
        rd_buf *b = &s->out;
        size_t start = pr_frame_begin(b);
        pr_mp_put_array(b, 3);
        pr_mp_put_uint(b, PR_DETACH);
        pr_mp_put_str(b, h->key, h->key_len);
        pr_mp_put_array(b, 1);
        pr_mp_put_uint(b, c->id);
        pr_frame_end(b, start);
        gw_link_want_flush(s);
        it->from = s;
        it->detaching = true;
        h->pending++;
    }
    c->shard_open = false; /* closing now needs no CLOSE: the shard forgets it */
}

static void handoff_finish(gw_handoff *h);

static void handoff_start(gw_handoff *h)
{
    h->started = true;
    h->started_ms = rd_mono_ms();
    h_active++;
    gw.stats.handoffs++;
    for (size_t i = 0; i < h->n; i++) {
        gw_conn *c = rd_map_get(&gw.conns, h->items[i].conn);
        if (c && c->move_queued && c->state == GW_C_WS)
            handoff_detach(h, &h->items[i], c);
        else if (c)
            c->move_queued = false;
    }
    if (h->pending == 0)
        handoff_finish(h);
}

/* Start queued moves: those whose old shard is gone at once (their clients
 * wait already), the others --handoff-concurrency at a time, so each move
 * waits for a few objects' storage to close on its old shard, not for all. */
static void handoff_pump(void)
{
    for (gw_handoff **pp = &hq_head; *pp;) {
        gw_handoff *h = *pp;
        if (shard_live(h->from) && h_active >= (size_t)gw.cfg.handoff_concurrency) {
            pp = &h->qnext;
            continue;
        }
        *pp = h->qnext;
        if (hq_tail == h) {
            hq_tail = NULL;
            for (gw_handoff *t = hq_head; t; t = t->qnext)
                hq_tail = t;
        }
        h->qnext = NULL;
        handoff_start(h); /* may finish, and pump again: the list is consistent here */
        pp = &hq_head;
    }
}

static void handoff_finish(gw_handoff *h)
{
    gw_shard *to = gw_route_pick(h->key, h->key_len);
    size_t moved = 0;
    for (size_t i = 0; i < h->n; i++) {
        gw_conn *c = rd_map_get(&gw.conns, h->items[i].conn);
        if (!c || !c->handoff)
            continue;
        c->handoff = false;
        if (c->state != GW_C_WS)
            continue; /* closing by itself meanwhile */
        if (!to) {
            ws_fail(c, WS_CLOSE_RESTART, "no shard available");
            continue;
        }
        c->shard = to;
        c->resume_wait = true; /* reading resumes with the new owner's ACCEPT */
        if (to->up)
            send_open_resumed(c, to);
        /* else: its OPEN goes when the shard's link is up (gw_conn_shard_up) */
        moved++;
    }
    gw.stats.handoff_conns += moved;
    if (to && to->up)
        gw_link_want_flush(to);
    rd_debug("msg=\"object moved\" object=%s from=%s to=%s connections=%zu ms=%llu", h->key,
             h->from ? h->from->name : "-", to ? to->name : "-", moved,
             (unsigned long long)(rd_mono_ms() - h->started_ms));
    rd_smap_del(&gw.handoffs, h->key, h->key_len);
    handoff_free(h);
    h_active--;
    handoff_pump();
}

/* Finish every started move that waits for nothing; collected first
 * because finishing removes from the map being walked. */
static void handoff_finish_ready(void)
{
    size_t n = gw.handoffs.count, k = 0, it = 0;
    if (!n)
        return;
    gw_handoff **ready = rd_xmalloc(n * sizeof *ready), *h;
    while (k < n && (h = rd_map_next(&gw.handoffs, &it)))
        if (h->started && h->pending == 0)
            ready[k++] = h;
    for (size_t i = 0; i < k; i++)
        handoff_finish(ready[i]);
    free(ready);
}

/* c just opened on a shard that no longer owns its object (the set changed
 * while it was opening): it moves with the object's other members. */
static void handoff_late(gw_conn *c)
{
    gw_handoff *h = handoff_add(c);
    if (h->started) {
        handoff_detach(h, &h->items[h->n - 1], c);
        if (h->pending == 0)
            handoff_finish(h);
    } else {
        handoff_pump();
    }
}

void gw_conn_rebalance(void)
{
    if (gw.stopping || !gw.nroute)
        return;
    size_t moving = 0;
    gw_conn *c;
    size_t it = 0;
    while ((c = rd_map_next(&gw.conns, &it))) {
        if (c->state != GW_C_WS || c->handoff || c->move_queued || !c->key)
            continue;
        if (gw_route_pick(c->key, strlen(c->key)) == c->shard)
            continue;
        handoff_add(c);
        moving++;
    }
    if (moving)
        rd_info("msg=\"moving connections to their objects' new shards\" connections=%zu objects=%zu",
                moving, gw.handoffs.count);
    handoff_pump();
}

void gw_conn_on_detached(gw_shard *s, const pr_msg *m)
{
    gw_handoff *h = rd_smap_get(&gw.handoffs, m->u.detach.key.p, m->u.detach.key.n);
    if (!h)
        return; /* given up on (--handoff-timeout) */
    pr_list l = m->u.detach.conns;
    uint64_t id;
    while (pr_list_next_uint(&l, &id) == 0) {
        for (size_t k = 0; k < h->n; k++) {
            gw_handoff_item *it = &h->items[(h->cursor + k) % h->n];
            if (it->conn == id && it->from == s && it->detaching) {
                it->detaching = false;
                h->pending--;
                h->cursor = (h->cursor + k + 1) % h->n;
                break;
            }
        }
    }
    if (h->pending == 0)
        handoff_finish(h);
}

/* A shard that went away detaches nothing more: it let go by dying. */
static void handoff_shard_lost(gw_shard *s)
{
    gw_handoff *h;
    size_t it = 0;
    while ((h = rd_map_next(&gw.handoffs, &it)))
        for (size_t i = 0; i < h->n; i++)
            if (h->items[i].from == s && h->items[i].detaching) {
                h->items[i].detaching = false;
                h->pending--;
            }
    handoff_finish_ready();
    handoff_pump(); /* moves away from s need not wait their turn now */
}

bool gw_conn_shard_in_use(const gw_shard *s)
{
    gw_handoff *h;
    size_t it = 0;
    while ((h = rd_map_next(&gw.handoffs, &it)))
        for (size_t i = 0; i < h->n; i++)
            if (h->items[i].from == s && h->items[i].detaching)
                return true;
    gw_conn *c;
    it = 0;
    while ((c = rd_map_next(&gw.conns, &it)))
        if (c->shard == s)
            return true;
    return false;
}

static void pause_observe(gw_conn *c)
{
    uint64_t us = rd_mono_ns() / 1000 - c->handoff_us;
    c->handoff_us = 0;
    static const uint64_t bounds_us[7] = { 1000, 2000, 5000, 10000, 50000, 250000, 1000000 };
    size_t b = 0;
    while (b < 7 && us > bounds_us[b])
        b++;
    gw.stats.handoff_pause_us[b]++;
    gw.stats.handoff_pause_sum_us += us;
}

void gw_conn_handoff_free_all(void)
{
    gw_handoff *h;
    size_t it = 0;
    while ((h = rd_map_next(&gw.handoffs, &it)))
        handoff_free(h);
}

/* A JSON string literal for s (valid UTF-8 assumed). */
static void gw_json_str(rd_buf *b, const char *s, size_t n)
{
    rd_buf_append_u8(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            rd_buf_append_u8(b, '\\');
            rd_buf_append_u8(b, ch);
        } else if (ch < 0x20 || ch == 0x7f) {
            rd_buf_printf(b, "\\u%04x", ch);
        } else {
            rd_buf_append_u8(b, ch);
        }
    }
    rd_buf_append_u8(b, '"');
}

/* --- admin API -----------------------------------------------------------------
 *
 * GET /admin/shards                  the shard set, each shard's counts
 * GET /admin/objects/<class>/<name>  an object's owner and state
 * POST /admin/shards?count=N         spawn mode: change the shard count
 * Bearer --admin-key. Counts come from the shards (INFO), so they include
 * other gateways' connections; a shard that does not answer within a second
 * shows null. */

#define GW_ADMIN_WAIT_MS 1000

typedef struct gw_admin {
    struct gw_admin *next;
    gw_conn *conn;
    uint64_t deadline_ms;
    size_t pending;
    bool object;              /* /admin/objects/... (else /admin/shards) */
    gw_shard *owner;
    size_t nres;              /* gw.nshards when asked */
    struct { bool got; uint64_t v[6]; } *res;   /* by gw.shards index */
} gw_admin;

static gw_admin *admins;

static void admin_free(gw_conn *c)
{
    gw_admin *a = c->admin;
    if (!a)
        return;
    for (gw_admin **pp = &admins; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    free(a->res);
    free(a);
    c->admin = NULL;
}

static bool admin_authorized(gw_conn *c, const gw_http_request *req)
{
    return key_authorized(c, req, gw.cfg.admin_key, "the admin API is off: start the gateway with --admin-key",
                          "admin key", false);
}

static void admin_ask(gw_admin *a, gw_shard *s, const char *key, size_t klen)
{
    pr_enc_info_req(&s->out, a->conn->id, key, klen);
    gw_link_want_flush(s);
    a->pending++;
}

static size_t gateway_conns_on(const gw_shard *s, const char *key)
{
    size_t n = 0, it = 0;
    gw_conn *c;
    while ((c = rd_map_next(&gw.conns, &it)))
        if ((c->state == GW_C_WS || c->state == GW_C_CLOSE_WAIT) && c->key &&
            (key ? strcmp(c->key, key) == 0 : c->shard == s))
            n++;
    return n;
}

static void admin_reply(gw_conn *c)
{
    gw_admin *a = c->admin;
    rd_buf b = RD_BUF_INIT;
    char num[32];
    if (a->object) {
        const char *key = c->key;
        gw_shard *s = a->owner;
        bool got = s && (size_t)s->index < a->nres && a->res[s->index].got;
        const uint64_t *v = got ? a->res[s->index].v : NULL;
        rd_buf_append(&b, "{\"object\":", 10);
        gw_json_str(&b, key, strlen(key));
        rd_buf_append(&b, ",\"owner\":", 9);
        if (s)
            gw_json_str(&b, s->name, strlen(s->name));
        else
            rd_buf_append(&b, "null", 4);
        rd_buf_printf(&b, ",\"owner_up\":%s,\"moving\":%s", s && s->up ? "true" : "false",
                      rd_smap_get(&gw.handoffs, key, strlen(key)) ? "true" : "false");
        if (v)
            rd_buf_printf(&b, ",\"loaded\":%s,\"hibernated\":%s,\"connections\":%llu",
                          v[3] ? "true" : "false", v[4] ? "true" : "false", (unsigned long long)v[5]);
        else
            rd_buf_printf(&b, ",\"loaded\":null,\"hibernated\":null,\"connections\":null");
        rd_buf_printf(&b, ",\"gateway_connections\":%zu}\n", gateway_conns_on(NULL, key));
    } else {
        rd_buf_printf(&b, "{\"gateway\":");
        gw_json_str(&b, gw.name, strlen(gw.name));
        rd_buf_printf(&b, ",\"mode\":\"%s\",\"members\":%zu,\"moving\":%zu,\"shards\":[",
                      gw.cfg.shard_dir ? "discovery" : "spawn", gw.nroute, gw.handoffs.count);
        for (size_t i = 0; i < gw.nshards; i++) {
            gw_shard *s = gw.shards[i];
            if (!s->member && !s->up && !s->present && !(s->pid > 0))
                continue; /* long gone */
            rd_buf_printf(&b, "%s{\"name\":", b.len && rd_buf_data(&b)[rd_buf_avail(&b) - 1] == '[' ? "" : ",");
            gw_json_str(&b, s->name, strlen(s->name));
            rd_buf_printf(&b, ",\"member\":%s,\"up\":%s,\"retiring\":%s", s->member ? "true" : "false",
                          s->up ? "true" : "false", s->retiring ? "true" : "false");
            if (s->pid > 0)
                rd_buf_printf(&b, ",\"pid\":%d", (int)s->pid);
            bool got = i < a->nres && a->res[i].got;
            for (int k = 0; k < 3; k++) {
                static const char *const names[3] = { "objects", "hibernated", "connections" };
                if (got)
                    snprintf(num, sizeof num, "%llu", (unsigned long long)a->res[i].v[k]);
                else
                    snprintf(num, sizeof num, "null");
                rd_buf_printf(&b, ",\"%s\":%s", names[k], num);
            }
            rd_buf_printf(&b, ",\"gateway_connections\":%zu}", gateway_conns_on(s, NULL));
        }
        rd_buf_printf(&b, "]}\n");
    }
    admin_free(c);
    c->state = GW_C_HTTP;
    http_respond(c, 200, "application/json", NULL, rd_buf_data(&b), rd_buf_avail(&b), c->keep_alive);
    rd_buf_free(&b);
    resume_reading(c);
}

void gw_conn_on_info(gw_shard *s, const pr_msg *m)
{
    if (m->u.info_res.req == 0) { /* gw_spawn_tick's: may a retiring shard stop? */
        if (s->retiring && m->u.info_res.conns == 0 && m->u.info_res.alarms == 0)
            s->drained = true; /* nobody's connections, no alarm left to hand over */
        return;
    }
    gw_conn *c = rd_map_get(&gw.conns, m->u.info_res.req);
    if (!c || !c->admin || c->state != GW_C_WAIT_HTTP)
        return;
    gw_admin *a = c->admin;
    if ((size_t)s->index >= a->nres || a->res[s->index].got)
        return;
    a->res[s->index].got = true;
    const uint64_t v[6] = { m->u.info_res.objects, m->u.info_res.hibernated, m->u.info_res.conns,
                            m->u.info_res.found, m->u.info_res.key_hibernated, m->u.info_res.key_conns };
    memcpy(a->res[s->index].v, v, sizeof v);
    if (--a->pending == 0)
        admin_reply(c);
}

static void admin_request(gw_conn *c, const gw_http_request *req, const char *path, size_t plen,
                          const char *query, size_t qlen)
{
    if (!admin_authorized(c, req))
        return;
    bool get = req->method_len == 3 && !memcmp(req->method, "GET", 3);
    bool post = req->method_len == 4 && !memcmp(req->method, "POST", 4);
    gw_admin *a = NULL;
    if (plen == 13 && !memcmp(path, "/admin/shards", 13)) {
        if (post) {
            char err[RD_ERR_LEN];
            char *end = NULL;
            unsigned long n = 0;
            if (qlen > 6 && !memcmp(query, "count=", 6)) {
                char tmp[16];
                snprintf(tmp, sizeof tmp, "%.*s", (int)(qlen - 6 < 15 ? qlen - 6 : 15), query + 6);
                n = strtoul(tmp, &end, 10);
                if (!end || *end)
                    n = 0;
            }
            if (n == 0) {
                http_error(c, 400, "give the new shard count: POST /admin/shards?count=N", NULL);
                return;
            }
            if (gw.cfg.worker > 0 && gw_spawn_forward_resize(n, err) == 0) {
                /* the parent (which spawns the shards) does it */
            } else if (gw_spawn_resize(n, err) < 0) {
                http_error(c, 409, err, NULL);
                return;
            }
            char body[64];
            int bl = snprintf(body, sizeof body, "{\"shards\":%lu}\n", n);
            http_respond(c, 202, "application/json", NULL, body, (size_t)bl, c->keep_alive);
            return;
        }
        if (!get) {
            http_error(c, 405, "/admin/shards answers GET and POST", "Allow: GET, POST\r\n");
            return;
        }
        a = rd_xcalloc(1, sizeof *a);
        a->conn = c;
        c->admin = a;
        a->nres = gw.nshards;
        a->res = rd_xcalloc(a->nres ? a->nres : 1, sizeof *a->res);
        for (size_t i = 0; i < gw.nshards; i++)
            if (gw.shards[i]->up)
                admin_ask(a, gw.shards[i], "", 0);
    } else if (plen > 15 && !memcmp(path, "/admin/objects/", 15)) {
        if (!get) {
            http_error(c, 405, "/admin/objects/... answers GET", "Allow: GET\r\n");
            return;
        }
        gw_target t;
        char err[RD_ERR_LEN];
        if (gw_route_parse(path + 14, plen - 14, gw.cfg.max_key, &t, err) <= 0 || t.rest_len) {
            http_error(c, 400, "use /admin/objects/<class>/<name>", NULL);
            return;
        }
        size_t klen = t.cls_len + 1 + t.name_len;
        free(c->key);
        c->key = rd_xmalloc(klen + 1);
        memcpy(c->key, t.cls, t.cls_len);
        c->key[t.cls_len] = '/';
        memcpy(c->key + t.cls_len + 1, t.name, t.name_len);
        c->key[klen] = '\0';
        a = rd_xcalloc(1, sizeof *a);
        a->conn = c;
        c->admin = a;
        a->object = true;
        a->owner = gw_route_pick(c->key, klen);
        a->nres = gw.nshards;
        a->res = rd_xcalloc(a->nres ? a->nres : 1, sizeof *a->res);
        if (a->owner && a->owner->up)
            admin_ask(a, a->owner, c->key, klen);
    } else {
        http_error(c, 404, "not found: /admin/shards or /admin/objects/<class>/<name>", NULL);
        return;
    }
    a->deadline_ms = rd_mono_ms() + GW_ADMIN_WAIT_MS;
    a->next = admins;
    admins = a;
    c->state = GW_C_WAIT_HTTP;
    tq_remove(c);
    c->read_paused = true;
    event_del(&c->ev_read);
    if (a->pending == 0)
        admin_reply(c);
}

void gw_conn_handoff_tick(void)
{
    uint64_t now = rd_mono_ms();
    for (gw_admin *a = admins, *next; a; a = next) {
        next = a->next;
        if (now >= a->deadline_ms)
            admin_reply(a->conn);
    }
    gw_handoff *h;
    size_t it = 0;
    bool late = false;
    while ((h = rd_map_next(&gw.handoffs, &it)))
        if (h->started && h->pending && now - h->started_ms >= gw.cfg.handoff_timeout) {
            rd_err("msg=\"old shard did not release the object in time; moving it anyway\" object=%s "
                   "shard=%s waiting=%zu", h->key, h->from ? h->from->name : "-", h->pending);
            for (size_t i = 0; i < h->n; i++)
                h->items[i].detaching = false;
            h->pending = 0;
            gw.stats.handoff_timeouts++;
            late = true;
        }
    if (late)
        handoff_finish_ready();
    handoff_pump();
}

/* --- shard answers ------------------------------------------------------- */

void gw_conn_on_accept(gw_conn *c, const pr_msg *m)
{
    if (c->resume_wait && c->state == GW_C_WS) {
        c->resume_wait = false;
        gw.stats.resumed++;
        if (c->handoff_us)
            pause_observe(c);
        resume_reading(c);
        return;
    }
    if (c->state != GW_C_WAIT_OPEN)
        return;
    rd_hist_observe(&gw.stats.open_hist, (rd_mono_ns() - c->sent_ns) / 1000);
    size_t klen = strlen(c->key);
    const char *accept = c->key + klen + 1;
    const char *ext = accept + WS_ACCEPT_LEN + 1;
    char head[768];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n", accept);
    if (m->u.accept.subprotocol.p && m->u.accept.subprotocol.n > 0 && m->u.accept.subprotocol.n < 200)
        n += snprintf(head + n, sizeof head - (size_t)n, "Sec-WebSocket-Protocol: %.*s\r\n",
                      (int)m->u.accept.subprotocol.n, m->u.accept.subprotocol.p);
    if (c->pmd)
        n += snprintf(head + n, sizeof head - (size_t)n, "Sec-WebSocket-Extensions: %s\r\n", ext);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    enqueue_bytes(c, head, (size_t)n);
    c->key = rd_xrealloc(c->key, klen + 1);
    c->ws = rd_xmalloc(sizeof *c->ws);
    ws_reader_init(c->ws, gw.cfg.max_frame, gw.cfg.max_message);
    if (c->pmd)
        pmd_open(c);
    c->state = GW_C_WS;
    gw.stats.handshakes_ok++;
    if (gw.cfg.idle_timeout)
        tq_add(c, GW_TQ_IDLE, gw.cfg.idle_timeout / 2);
    else
        tq_remove(c);
    rd_debug("msg=\"websocket open\" conn=%llu object=%s shard=%s", (unsigned long long)c->id, c->key,
             c->shard->name);
    if (gw_route_pick(c->key, klen) != c->shard) {
        /* The set changed while it was opening: move it like the others. */
        handoff_late(c);
        return;
    }
    resume_reading(c);
}

void gw_conn_on_reject(gw_conn *c, const pr_msg *m)
{
    if (c->resume_wait && c->state == GW_C_WS) {
        c->resume_wait = false;
        c->shard_open = false;
        gw.stats.resume_failed++;
        rd_warn("msg=\"resume refused\" conn=%llu object=%s status=%llu", (unsigned long long)c->id,
                c->key, (unsigned long long)m->u.reject.status);
        ws_fail(c, WS_CLOSE_INTERNAL, "object could not be resumed");
        return;
    }
    if (c->state != GW_C_WAIT_OPEN)
        return;
    gw.stats.hs_failed[GW_HSF_REJECTED]++;
    rd_hist_observe(&gw.stats.open_hist, (rd_mono_ns() - c->sent_ns) / 1000);
    c->shard_open = false;
    c->state = GW_C_HTTP;
    int status = (int)m->u.reject.status;
    if (status < 400 || status > 599)
        status = 500;
    char why[RD_ERR_LEN];
    snprintf(why, sizeof why, "%.*s", (int)m->u.reject.body.n, m->u.reject.body.p ? m->u.reject.body.p : "");
    http_error(c, status, why, status == 503 ? "Retry-After: 1\r\n" : NULL);
}

void gw_conn_on_send(gw_conn *c, const pr_msg *m)
{
    if (c->state != GW_C_WS && c->state != GW_C_CLOSE_WAIT) {
        gw.stats.dropped_closed++;
        return;
    }
    gw_blob *plain = NULL, *cache[GW_PMD_SHARED] = { 0 };
    gw_blob *b = frame_for(c, m->u.frame.opcode == WS_OP_BINARY ? WS_OP_BINARY : WS_OP_TEXT,
                           m->u.frame.payload.p, m->u.frame.payload.n, &plain, cache);
    gw.stats.msgs_out++;
    gw.stats.bytes_out += m->u.frame.payload.n;
    if (b)
        enqueue_data(c, b);
    gw_blob_unref(plain);
    for (size_t i = 0; i < GW_PMD_SHARED; i++)
        gw_blob_unref(cache[i]);
    if (b && b != plain && c->deflater)
        gw_blob_unref(b);
}

void gw_conn_on_broadcast(gw_shard *s, const pr_msg *m)
{
    /* Framed once; every recipient's queue points at the same bytes. */
    int op = m->u.broadcast.opcode == WS_OP_BINARY ? WS_OP_BINARY : WS_OP_TEXT;
    gw_blob *plain = NULL, *cache[GW_PMD_SHARED] = { 0 };
    pr_list l = m->u.broadcast.conns;
    uint64_t id, n = 0;
    while (pr_list_next_uint(&l, &id) == 0) {
        gw_conn *c = rd_map_get(&gw.conns, id);
        /* Only the shard a connection belongs to may write to it. */
        if (!c || c->shard != s || (c->state != GW_C_WS && c->state != GW_C_CLOSE_WAIT)) {
            gw.stats.dropped_closed++;
            continue;
        }
        gw_blob *b = frame_for(c, op, m->u.broadcast.payload.p, m->u.broadcast.payload.n, &plain, cache);
        if (!b)
            continue;
        enqueue_data(c, b);
        if (b != plain && c->deflater)
            gw_blob_unref(b); /* per-connection stream: not shared */
        n++;
    }
    for (size_t i = 0; i < GW_PMD_SHARED; i++)
        gw_blob_unref(cache[i]);
    gw.stats.broadcasts++;
    gw.stats.deliveries += n;
    gw.stats.msgs_out += n;
    gw.stats.bytes_out += n * m->u.broadcast.payload.n;
    gw_blob_unref(plain);
}

/* The shard's CLOSE either closes a live connection (the class called
 * roomd_conn_close) or acknowledges ours, after everything it sent before. */
void gw_conn_on_close(gw_conn *c, const pr_msg *m)
{
    switch (c->state) {
    case GW_C_WS: {
        const char *r = m->u.close.reason.p ? m->u.close.reason.p : "";
        unsigned code = (unsigned)m->u.close.code;
        if (!ws_close_code_valid(code) || code == WS_CLOSE_NO_STATUS)
            code = WS_CLOSE_NORMAL;
        ws_send_close(c, (uint16_t)code, r, m->u.close.reason.n);
        shard_forget(c, code, r); /* lets the shard drop its record; it acks */
        close_after_flush(c);
        break;
    }
    case GW_C_CLOSE_WAIT:
        ws_send_close(c, c->close_echo, c->close_reason, c->close_reason ? strlen(c->close_reason) : 0);
        close_after_flush(c);
        break;
    case GW_C_WAIT_OPEN:
        c->shard_open = false;
        c->state = GW_C_HTTP;
        http_error(c, 503, "the object closed the connection", NULL);
        break;
    default:
        break;
    }
}

void gw_conn_on_http_res(gw_conn *c, const pr_msg *m)
{
    if (c->state != GW_C_WAIT_HTTP)
        return;
    rd_hist_observe(&gw.stats.http_hist, (rd_mono_ns() - c->sent_ns) / 1000);
    int status = (int)m->u.http_res.status;
    if (status < 100 || status > 599)
        status = 502;
    char ctype[128] = "text/plain; charset=utf-8";
    pr_list l = m->u.http_res.headers;
    pr_str k, v;
    while (pr_list_next_kv(&l, &k, &v) == 0)
        if (k.n == 12 && !strncasecmp(k.p, "content-type", 12) && v.n < sizeof ctype) {
            bool clean = true;
            for (size_t i = 0; i < v.n; i++)
                clean &= v.p[i] >= 0x20 && v.p[i] != 0x7f;
            if (clean)
                snprintf(ctype, sizeof ctype, "%.*s", (int)v.n, v.p);
        }
    c->state = GW_C_HTTP;
    char extra[96];
    snprintf(extra, sizeof extra, "X-Roomd-Shard: %s\r\n", c->shard->name);
    http_respond(c, status, ctype, extra, m->u.http_res.body.p, m->u.http_res.body.n, c->keep_alive);
    resume_reading(c);
}

void gw_conn_link_drained(gw_shard *s)
{
    gw_conn *c = s->paused;
    s->paused = NULL;
    s->full = false;
    while (c) {
        gw_conn *next = c->pause_next;
        c->pause_next = NULL;
        c->link_paused = false;
        resume_reading(c);
        c = next;
    }
}

void gw_conn_shard_up(gw_shard *s)
{
    gw_conn *c;
    size_t it = 0;
    while ((c = rd_map_next(&gw.conns, &it))) {
        if (c->shard != s || !c->resume_wait || c->handoff || c->state != GW_C_WS)
            continue;
        send_open_resumed(c, s);
    }
    gw_link_want_flush(s);
}

/* Shards that stayed down past --resume-timeout: give their clients up. */
static void resume_expire(void)
{
    uint64_t now = rd_mono_ms();
    for (size_t i = 0; i < gw.nshards; i++) {
        gw_shard *s = gw.shards[i];
        if (!s->down_since_ms || now - s->down_since_ms < gw.cfg.resume_timeout)
            continue;
        gw_conn *c;
        size_t it = 0;
        while ((c = rd_map_next(&gw.conns, &it)))
            if (c->shard == s && c->resume_wait && c->state == GW_C_WS) {
                c->resume_wait = false;
                gw.stats.resume_failed++;
                ws_fail(c, WS_CLOSE_RESTART, "shard restarting");
            }
        s->down_since_ms = 0; /* done; nothing else waits */
    }
}

void gw_conn_shard_lost(gw_shard *s)
{
    while (s->paused) {
        gw_conn *c = s->paused;
        s->paused = c->pause_next;
        c->pause_next = NULL;
        c->link_paused = false;
    }
    s->full = false;
    gw_conn *c;
    size_t it = 0;
    /* Nothing below removes from the map, so walking it is safe. */
    while ((c = rd_map_next(&gw.conns, &it))) {
        if (c->shard != s)
            continue;
        c->shard_open = false;
        switch (c->state) {
        case GW_C_WS:
            if (gw.cfg.resume_timeout == 0 || gw.stopping) {
                ws_fail(c, WS_CLOSE_RESTART, "shard restarting");
                break;
            }
            /* Keep the client; stop reading it (its bytes wait in the kernel)
             * until the restarted shard has taken the connection back. */
            c->resume_wait = true;
            c->read_paused = true;
            event_del(&c->ev_read);
            continue; /* keeps c->shard */
        case GW_C_CLOSE_WAIT:
            ws_send_close(c, c->close_echo, c->close_reason,
                          c->close_reason ? strlen(c->close_reason) : 0);
            close_after_flush(c);
            break;
        case GW_C_WAIT_OPEN:
        case GW_C_WAIT_HTTP:
            c->state = GW_C_HTTP;
            http_error(c, 503, "the shard owning this object restarted; retry", "Retry-After: 1\r\n");
            break;
        default:
            break;
        }
        c->shard = NULL;
    }
    handoff_shard_lost(s);
}

void gw_conn_close_all(uint16_t code, const char *reason)
{
    /* Collect first: conn_kill removes from the map being walked. */
    size_t n = gw.conns.count, k = 0, it = 0;
    gw_conn **all = rd_xmalloc((n ? n : 1) * sizeof *all), *c;
    while (k < n && (c = rd_map_next(&gw.conns, &it)))
        all[k++] = c;
    for (size_t i = 0; i < k; i++) {
        c = all[i];
        if (c->state == GW_C_WS)
            ws_fail(c, code, reason);
        else if (c->state != GW_C_CLOSING && c->state != GW_C_LINGER)
            conn_kill(c);
    }
    free(all);
}

void gw_conn_kill_all(void)
{
    size_t n = gw.conns.count, k = 0, it = 0;
    gw_conn **all = rd_xmalloc((n ? n : 1) * sizeof *all), *c;
    while (k < n && (c = rd_map_next(&gw.conns, &it)))
        all[k++] = c;
    for (size_t i = 0; i < k; i++)
        conn_kill(all[i]);
    free(all);
}

/* --- timeouts ------------------------------------------------------------ */

void gw_conn_tick(void)
{
    resume_expire();
    uint64_t now = rd_mono_ms();
    gw_conn *c;
    while ((c = gw.tq_head[GW_TQ_HANDSHAKE]) && c->deadline_ms <= now) {
        tq_remove(c);
        if (c->state == GW_C_HTTP && rd_buf_avail(&c->in)) {
            http_error(c, 408, "request not completed in time", NULL);
        } else {
            rd_debug("msg=\"idle connection closed\" conn=%llu remote=%s", (unsigned long long)c->id,
                     c->remote);
            conn_kill(c);
        }
    }
    while ((c = gw.tq_head[GW_TQ_CLOSE]) && c->deadline_ms <= now) {
        tq_remove(c);
        conn_kill(c);
    }
    while ((c = gw.tq_head[GW_TQ_IDLE]) && c->deadline_ms <= now) {
        tq_remove(c);
        if (c->state != GW_C_WS)
            continue;
        if (!c->ping_sent) {
            /* Half the idle time passed in silence: ask. A pong (or anything)
             * resets the clock. */
            static const uint8_t probe[] = "roomd";
            gw_blob *b = ws_frame_blob(WS_OP_PING, false, probe, sizeof probe - 1);
            enqueue(c, b);
            gw_blob_unref(b);
            c->ping_sent = true;
            gw.stats.pings_sent++;
            tq_add(c, GW_TQ_IDLE, gw.cfg.idle_timeout - gw.cfg.idle_timeout / 2);
        } else {
            gw.stats.closed_idle++;
            rd_debug("msg=\"idle websocket closed\" conn=%llu remote=%s", (unsigned long long)c->id, c->remote);
            ws_fail(c, WS_CLOSE_GOING_AWAY, "idle timeout");
        }
    }
}

/* --- accept -------------------------------------------------------------- */

static void format_remote(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        port = ntohs(s4->sin_port);
        snprintf(out, cap, "%s:%u", ip, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        port = ntohs(s6->sin6_port);
        snprintf(out, cap, "[%s]:%u", ip, port);
    } else {
        snprintf(out, cap, "unix");
    }
}

/* Count the connection against its address; past --max-per-ip it is let in
 * only to be told 429. */
static void ip_account(gw_conn *c)
{
    char addr[48];
    const char *colon = strrchr(c->remote, ':');
    size_t n = colon ? (size_t)(colon - c->remote) : strlen(c->remote);
    if (n >= sizeof addr)
        n = sizeof addr - 1;
    memcpy(addr, c->remote, n);
    addr[n] = '\0';
    gw_ip *ip = rd_smap_get(&gw.ips, addr, n);
    if (gw.cfg.max_per_ip > 0 && ip && ip->conns >= (uint64_t)gw.cfg.max_per_ip) {
        c->over_ip_limit = true;
        return;
    }
    if (!ip) {
        ip = rd_xcalloc(1, sizeof *ip);
        memcpy(ip->addr, addr, n + 1);
        rd_smap_put(&gw.ips, ip->addr, n, ip);
    }
    ip->conns++;
    c->ip = ip;
}

static void pause_accept(uint64_t ms)
{
    if (!gw.accept_paused) {
        for (int i = 0; i < 2; i++)
            if (gw.listen_fd[i] >= 0)
                event_del(&gw.ev_listen[i]);
        gw.accept_paused = true;
    }
    if (ms) {
        struct timeval tv = { 0, (suseconds_t)ms * 1000 };
        evtimer_add(&gw.ev_accept_retry, &tv);
    }
}

void gw_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    if (!gw.accept_paused || gw.stopping)
        return;
    gw.accept_paused = false;
    evtimer_del(&gw.ev_accept_retry);
    for (int i = 0; i < 2; i++)
        if (gw.listen_fd[i] >= 0)
            event_add(&gw.ev_listen[i], NULL);
}

void gw_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    bool tls = arg != NULL;
    for (int i = 0; i < 64; i++) {
        if (gw.cfg.max_connections > 0 && gw.nconns >= (size_t)gw.cfg.max_connections) {
            /* Resumed from gw_conn_reap when a connection goes away. */
            rd_warn("msg=\"connection limit reached; not accepting\" limit=%lld",
                    (long long)gw.cfg.max_connections);
            gw.stats.accept_pauses++;
            pause_accept(0);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment instead of
                 * spinning on a listener that stays readable. */
                rd_warn("msg=\"accept paused\" err=\"%s\"", strerror(errno));
                gw.stats.accept_pauses++;
                pause_accept(100);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                       errno != ECONNABORTED) {
                rd_warn("msg=\"accept failed\" err=\"%s\"", strerror(errno));
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        gw_conn *c = rd_xcalloc(1, sizeof *c);
        c->id = ++gw.next_conn_id;
        c->fd = fd;
        c->tq = -1;
        c->tls = tls;
        format_remote(&ss, c->remote, sizeof c->remote);
        ip_account(c);
        gw.stats.accepted++;
        if (tls) {
            c->ssl = SSL_new(gw.ssl_ctx);
            if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
                rd_warn("msg=\"SSL_new failed\"");
                if (c->ssl)
                    SSL_free(c->ssl);
                close(fd);
                free(c);
                continue;
            }
            SSL_set_accept_state(c->ssl);
            if (gw.cfg.tls_offload)
                gw_tls13_attach(c->ssl, &c->t13);
            c->state = GW_C_TLS_HS;
        } else {
            c->state = GW_C_HTTP;
        }
        event_assign(&c->ev_read, gw.base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
        event_assign(&c->ev_write, gw.base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
        event_add(&c->ev_read, NULL);
        rd_map_put(&gw.conns, c->id, c);
        gw.nconns++;
        tq_add(c, GW_TQ_HANDSHAKE, gw.cfg.handshake_timeout);
    }
}
