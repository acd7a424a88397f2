/* Fuzz target for proto/: the input is read as a gateway<->shard stream
 * (frames split with a 64 KiB cap, every body decoded, every list walked),
 * then as one frame body, then as a run of msgpack values for pr_mp_skip.
 * Beyond "no crash, no leak" it checks the invariants callers rely on:
 * lists validated at decode time walk to the end without error, a failed
 * read leaves the cursor alone, and a decoded message re-encodes to a body
 * that decodes to the same message. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pr_mp.h"
#include "pr_msg.h"
#include "rd_buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void walk_str(pr_list l, rd_buf *out)
{
    pr_str s;
    uint32_t n = l.n;
    pr_mp_put_array(out, n);
    for (uint32_t i = 0; i < n; i++) {
        CHECK(pr_list_next_str(&l, &s) == 0);
        pr_mp_put_str(out, s.p, s.n);
    }
    CHECK(pr_list_next_str(&l, &s) == -ENOENT);
    CHECK(l.cur.p == l.cur.end);
}

static void walk_kv(pr_list l, rd_buf *out)
{
    pr_str k, v;
    uint32_t n = l.n;
    pr_mp_put_map(out, n);
    for (uint32_t i = 0; i < n; i++) {
        CHECK(pr_list_next_kv(&l, &k, &v) == 0);
        pr_mp_put_str(out, k.p, k.n);
        pr_mp_put_str(out, v.p, v.n);
    }
    CHECK(pr_list_next_kv(&l, &k, &v) == -ENOENT);
    CHECK(l.cur.p == l.cur.end);
}

static void walk_uint(pr_list l, rd_buf *out)
{
    uint64_t u;
    uint32_t n = l.n;
    pr_mp_put_array(out, n);
    for (uint32_t i = 0; i < n; i++) {
        CHECK(pr_list_next_uint(&l, &u) == 0);
        pr_mp_put_uint(out, u);
    }
    CHECK(pr_list_next_uint(&l, &u) == -ENOENT);
    CHECK(l.cur.p == l.cur.end);
}

static void put_s(rd_buf *b, pr_str s)
{
    if (s.p)
        pr_mp_put_str(b, s.p, s.n);
    else
        pr_mp_put_nil(b);
}

/* An optional trailing string: absent reads as empty, re-encoded as "". */
static void put_opt(rd_buf *b, pr_str s)
{
    pr_mp_put_str(b, s.p ? s.p : "", s.n);
}

/* Re-encode m (shortest forms, no extra fields) into out as a bare body. */
static void reencode(const pr_msg *m, rd_buf *out)
{
    static const uint8_t nfields[PR_TYPE_MAX_ + 1] = {
        [PR_HELLO] = 6, [PR_OPEN] = 13, [PR_ACCEPT] = 3, [PR_REJECT] = 4, [PR_CLOSE] = 4, [PR_FRAME] = 4,
        [PR_SEND] = 4, [PR_BROADCAST] = 4, [PR_HTTP_REQ] = 10, [PR_HTTP_RES] = 5, [PR_PING] = 2,
        [PR_PONG] = 13, [PR_META] = 5, [PR_AUTORESP] = 4, [PR_AUTOHIT] = 3, [PR_PUBLISH] = 5,
        [PR_DETACH] = 3, [PR_DETACHED] = 3, [PR_CALL] = 5, [PR_INFO] = 3, [PR_INFO_RES] = 9, [PR_SET] = 2,
        [PR_ALARM_MOVE] = 5, [PR_ALARM_MOVED] = 4,
    };
    pr_mp_put_array(out, nfields[m->type]);
    pr_mp_put_uint(out, (uint64_t)m->type);
    switch (m->type) {
    case PR_HELLO:
        pr_mp_put_uint(out, m->u.hello.version);
        put_s(out, m->u.hello.role);
        put_s(out, m->u.hello.name);
        walk_str(m->u.hello.classes, out);
        walk_kv(m->u.hello.methods, out);
        break;
    case PR_OPEN:
        pr_mp_put_uint(out, m->u.open.conn);
        put_s(out, m->u.open.key);
        put_s(out, m->u.open.client_id);
        pr_mp_put_uint(out, m->u.open.connected_at);
        pr_mp_put_uint(out, m->u.open.flags);
        put_s(out, m->u.open.subprotocols);
        put_s(out, m->u.open.remote);
        put_s(out, m->u.open.query);
        walk_kv(m->u.open.headers, out);
        pr_mp_put_bin(out, m->u.open.attachment.p, m->u.open.attachment.n);
        walk_str(m->u.open.tags, out);
        put_opt(out, m->u.open.claims);
        break;
    case PR_META:
        pr_mp_put_uint(out, m->u.meta.conn);
        pr_mp_put_uint(out, m->u.meta.what);
        pr_mp_put_bin(out, m->u.meta.attachment.p, m->u.meta.attachment.n);
        walk_str(m->u.meta.tags, out);
        break;
    case PR_AUTORESP:
        put_s(out, m->u.autoresp.key);
        put_s(out, m->u.autoresp.request);
        put_s(out, m->u.autoresp.response);
        break;
    case PR_AUTOHIT:
        pr_mp_put_uint(out, m->u.autohit.conn);
        pr_mp_put_uint(out, m->u.autohit.at);
        break;
    case PR_PUBLISH:
        pr_mp_put_uint(out, m->u.publish.req);
        put_s(out, m->u.publish.key);
        pr_mp_put_uint(out, m->u.publish.opcode);
        pr_mp_put_bin(out, m->u.publish.payload.p, m->u.publish.payload.n);
        break;
    case PR_DETACH:
    case PR_DETACHED:
        put_s(out, m->u.detach.key);
        walk_uint(m->u.detach.conns, out);
        break;
    case PR_INFO:
        pr_mp_put_uint(out, m->u.info.req);
        put_s(out, m->u.info.key);
        break;
    case PR_INFO_RES:
        pr_mp_put_uint(out, m->u.info_res.req);
        pr_mp_put_uint(out, m->u.info_res.objects);
        pr_mp_put_uint(out, m->u.info_res.hibernated);
        pr_mp_put_uint(out, m->u.info_res.conns);
        pr_mp_put_uint(out, m->u.info_res.found);
        pr_mp_put_uint(out, m->u.info_res.key_hibernated);
        pr_mp_put_uint(out, m->u.info_res.key_conns);
        pr_mp_put_uint(out, m->u.info_res.alarms);
        break;
    case PR_SET:
        walk_str(m->u.set.members, out);
        break;
    case PR_ALARM_MOVE:
        put_s(out, m->u.alarm.key);
        pr_mp_put_uint(out, m->u.alarm.at);
        pr_mp_put_uint(out, m->u.alarm.retries);
        put_s(out, m->u.alarm.shard);
        break;
    case PR_ALARM_MOVED:
        put_s(out, m->u.alarm.key);
        pr_mp_put_uint(out, m->u.alarm.at);
        put_s(out, m->u.alarm.shard);
        break;
    case PR_CALL:
        pr_mp_put_uint(out, m->u.call.req);
        put_s(out, m->u.call.key);
        put_s(out, m->u.call.method);
        pr_mp_put_bin(out, m->u.call.params.p, m->u.call.params.n);
        break;
    case PR_ACCEPT:
        pr_mp_put_uint(out, m->u.accept.conn);
        put_s(out, m->u.accept.subprotocol);
        break;
    case PR_REJECT:
        pr_mp_put_uint(out, m->u.reject.conn);
        pr_mp_put_uint(out, m->u.reject.status);
        put_s(out, m->u.reject.body);
        break;
    case PR_CLOSE:
        pr_mp_put_uint(out, m->u.close.conn);
        pr_mp_put_uint(out, m->u.close.code);
        put_s(out, m->u.close.reason);
        break;
    case PR_FRAME:
    case PR_SEND:
        pr_mp_put_uint(out, m->u.frame.conn);
        pr_mp_put_uint(out, m->u.frame.opcode);
        pr_mp_put_bin(out, m->u.frame.payload.p, m->u.frame.payload.n);
        break;
    case PR_BROADCAST:
        pr_mp_put_uint(out, m->u.broadcast.opcode);
        pr_mp_put_bin(out, m->u.broadcast.payload.p, m->u.broadcast.payload.n);
        walk_uint(m->u.broadcast.conns, out);
        break;
    case PR_HTTP_REQ:
        pr_mp_put_uint(out, m->u.http_req.req);
        put_s(out, m->u.http_req.key);
        put_s(out, m->u.http_req.method);
        put_s(out, m->u.http_req.path);
        put_s(out, m->u.http_req.query);
        walk_kv(m->u.http_req.headers, out);
        pr_mp_put_bin(out, m->u.http_req.body.p, m->u.http_req.body.n);
        put_s(out, m->u.http_req.remote);
        put_opt(out, m->u.http_req.claims);
        break;
    case PR_HTTP_RES:
        pr_mp_put_uint(out, m->u.http_res.req);
        pr_mp_put_uint(out, m->u.http_res.status);
        walk_kv(m->u.http_res.headers, out);
        pr_mp_put_bin(out, m->u.http_res.body.p, m->u.http_res.body.n);
        break;
    case PR_PING:
        pr_mp_put_uint(out, m->u.ping.token);
        break;
    case PR_PONG:
        pr_mp_put_uint(out, m->u.ping.token);
        pr_mp_put_uint(out, m->u.ping.status);
        pr_mp_put_uint(out, m->u.ping.published);
        pr_mp_put_uint(out, m->u.ping.dropped);
        pr_mp_put_uint(out, m->u.ping.received);
        pr_mp_put_uint(out, m->u.ping.gaps);
        pr_mp_put_uint(out, m->u.ping.hangs);
        pr_mp_put_uint(out, m->u.ping.live);
        pr_mp_put_uint(out, m->u.ping.hibernated);
        walk_uint(m->u.ping.commit_hist, out);
        walk_uint(m->u.ping.event_hist, out);
        walk_uint(m->u.ping.fed_lag_hist, out);
        /* The gateway reads the histograms: a list of the right length
         * decodes, any other is refused and reads as empty. */
        const pr_list *hl[3] = { &m->u.ping.commit_hist, &m->u.ping.event_hist, &m->u.ping.fed_lag_hist };
        for (size_t i = 0; i < 3; i++) {
            pr_list l = *hl[i];
            rd_hist h;
            int r = pr_get_hist(&l, &h);
            CHECK(r == 0 ? hl[i]->n == RD_HIST_BOUNDS + 2 : r == -EINVAL && rd_hist_count(&h) == 0);
        }
        break;
    default:
        abort();
    }
}

static void decode_one(const uint8_t *body, size_t len)
{
    pr_msg m;
    char err[RD_ERR_LEN];
    err[0] = '\0';
    if (pr_msg_decode(body, len, &m, err) < 0) {
        CHECK(err[0] != '\0' && memchr(err, '\0', RD_ERR_LEN));
        return;
    }
    CHECK(m.type >= 1 && m.type <= PR_TYPE_MAX_);
    CHECK(strcmp(pr_type_name(m.type), "UNKNOWN") != 0);

    /* Canonical re-encoding is a fixed point: decode(enc(m)) encodes to the
     * same bytes again. */
    rd_buf a = RD_BUF_INIT, b = RD_BUF_INIT;
    reencode(&m, &a);
    pr_msg m2;
    CHECK(pr_msg_decode(rd_buf_data(&a), rd_buf_avail(&a), &m2, err) == 0);
    CHECK(m2.type == m.type);
    reencode(&m2, &b);
    CHECK(rd_buf_avail(&a) == rd_buf_avail(&b));
    CHECK(memcmp(rd_buf_data(&a), rd_buf_data(&b), rd_buf_avail(&a)) == 0);
    rd_buf_free(&a);
    rd_buf_free(&b);
}

/* Run every getter at c; failures must leave the cursor where it was. */
static void probe_getters(const pr_mp_cur *c)
{
    pr_mp_cur t;
    bool bo;
    uint64_t u;
    int64_t s;
    const char *sp;
    const uint8_t *bp;
    size_t n;
    uint32_t cnt;
    enum pr_mp_type type = pr_mp_peek(c);
#define TRY(call) do { \
        t = *c; \
        if ((call) < 0) \
            CHECK(t.p == c->p); \
        else \
            CHECK(t.p > c->p && t.p <= c->end); \
    } while (0)
    TRY(pr_mp_get_nil(&t));
    TRY(pr_mp_get_bool(&t, &bo));
    TRY(pr_mp_get_uint(&t, &u));
    TRY(pr_mp_get_int(&t, &s));
    TRY(pr_mp_get_str(&t, &sp, &n));
    TRY(pr_mp_get_str_or_nil(&t, &sp, &n));
    TRY(pr_mp_get_bin(&t, &bp, &n));
    TRY(pr_mp_get_array(&t, &cnt));
    TRY(pr_mp_get_map(&t, &cnt));
#undef TRY
    /* peek agrees with the integer getters */
    t = *c;
    if (pr_mp_get_uint(&t, &u) == 0)
        CHECK(type == PR_MP_UINT);
    t = *c;
    if (pr_mp_get_int(&t, &s) == 0)
        CHECK(type == (s >= 0 ? PR_MP_UINT : PR_MP_INT));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        const uint8_t *body;
        size_t len;
        int r = pr_frame_next(data + off, size - off, 65536, &body, &len);
        if (r <= 0)
            break;
        CHECK((size_t)r == PR_FRAME_HDR + len && (size_t)r <= size - off);
        decode_one(body, len);
        off += (size_t)r;
    }

    decode_one(data, size);

    pr_mp_cur c;
    pr_mp_cur_init(&c, data, size);
    for (;;) {
        probe_getters(&c);
        pr_mp_cur before = c;
        if (pr_mp_skip(&c) < 0) {
            CHECK(c.p == before.p);
            break;
        }
        CHECK(c.p > before.p && c.p <= c.end);
    }
    return 0;
}
