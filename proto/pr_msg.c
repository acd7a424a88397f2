#include "pr_msg.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- framing ---------------------------------------------------------- */

int pr_frame_next(const uint8_t *buf, size_t len, size_t max,
                  const uint8_t **ret_body, size_t *ret_len)
{
    if (len < PR_FRAME_HDR)
        return 0;
    uint32_t n;
    memcpy(&n, buf, sizeof n);
    n = be32toh(n);
    /* Refuse as soon as the header is in, before buffering a huge body; the
     * INT_MAX bound keeps the returned size representable. */
    if (n == 0 || n > max || n > INT_MAX - PR_FRAME_HDR)
        return -EMSGSIZE;
    if (len - PR_FRAME_HDR < n)
        return 0;
    *ret_body = buf + PR_FRAME_HDR;
    *ret_len = n;
    return (int)(PR_FRAME_HDR + n);
}

/* ---- decoding --------------------------------------------------------- */

enum pr_kind {
    K_UINT,
    K_STR,
    K_STR_NIL,  /* str, or nil for an absent optional string */
    K_BIN,
    K_STR_LIST, /* array of str */
    K_KV_LIST,  /* map str -> str */
    K_UINT_LIST /* array of uint */
};

struct pr_field {
    uint8_t kind;
    uint16_t off;
    const char *name;
};

#define PR_MAX_FIELDS 12

struct pr_desc {
    const char *name;
    uint8_t nfields; /* after the type */
    struct pr_field f[PR_MAX_FIELDS];
    uint8_t nreq;    /* required ones; 0 means all (later ones may be absent: empty) */
};

#define F(kind, msg, member) { kind, (uint16_t)offsetof(pr_msg, u.msg.member), #member }

static const struct pr_desc descs[PR_TYPE_MAX_ + 1] = {
    [0] = { "UNKNOWN", 0, { { 0, 0, NULL } } },
    [PR_HELLO] = { "HELLO", 5, {
        F(K_UINT, hello, version), F(K_STR, hello, role), F(K_STR, hello, name),
        F(K_STR_LIST, hello, classes), F(K_KV_LIST, hello, methods) }, 4 },
    [PR_OPEN] = { "OPEN", 12, {
        F(K_UINT, open, conn), F(K_STR, open, key), F(K_STR, open, client_id),
        F(K_UINT, open, connected_at), F(K_UINT, open, flags), F(K_STR, open, subprotocols),
        F(K_STR, open, remote), F(K_STR, open, query), F(K_KV_LIST, open, headers),
        F(K_BIN, open, attachment), F(K_STR_LIST, open, tags), F(K_STR, open, claims) }, 9 },
    [PR_ACCEPT] = { "ACCEPT", 2, {
        F(K_UINT, accept, conn), F(K_STR_NIL, accept, subprotocol) } },
    [PR_REJECT] = { "REJECT", 3, {
        F(K_UINT, reject, conn), F(K_UINT, reject, status), F(K_STR_NIL, reject, body) } },
    [PR_CLOSE] = { "CLOSE", 3, {
        F(K_UINT, close, conn), F(K_UINT, close, code), F(K_STR_NIL, close, reason) } },
    [PR_FRAME] = { "FRAME", 3, {
        F(K_UINT, frame, conn), F(K_UINT, frame, opcode), F(K_BIN, frame, payload) } },
    [PR_SEND] = { "SEND", 3, {
        F(K_UINT, frame, conn), F(K_UINT, frame, opcode), F(K_BIN, frame, payload) } },
    [PR_BROADCAST] = { "BROADCAST", 3, {
        F(K_UINT, broadcast, opcode), F(K_BIN, broadcast, payload),
        F(K_UINT_LIST, broadcast, conns) } },
    [PR_HTTP_REQ] = { "HTTP_REQ", 9, {
        F(K_UINT, http_req, req), F(K_STR, http_req, key), F(K_STR, http_req, method),
        F(K_STR, http_req, path), F(K_STR, http_req, query), F(K_KV_LIST, http_req, headers),
        F(K_BIN, http_req, body), F(K_STR, http_req, remote), F(K_STR, http_req, claims) }, 8 },
    [PR_HTTP_RES] = { "HTTP_RES", 4, {
        F(K_UINT, http_res, req), F(K_UINT, http_res, status), F(K_KV_LIST, http_res, headers),
        F(K_BIN, http_res, body) } },
    [PR_PING] = { "PING", 1, { F(K_UINT, ping, token) } },
    [PR_PONG] = { "PONG", 12, { F(K_UINT, ping, token), F(K_UINT, ping, status), F(K_UINT, ping, published),
        F(K_UINT, ping, dropped), F(K_UINT, ping, received), F(K_UINT, ping, gaps), F(K_UINT, ping, hangs),
        F(K_UINT, ping, live), F(K_UINT, ping, hibernated), F(K_UINT_LIST, ping, commit_hist), F(K_UINT_LIST, ping, event_hist),
        F(K_UINT_LIST, ping, fed_lag_hist) }, 1 },
    [PR_META] = { "META", 4, {
        F(K_UINT, meta, conn), F(K_UINT, meta, what), F(K_BIN, meta, attachment),
        F(K_STR_LIST, meta, tags) } },
    [PR_AUTORESP] = { "AUTORESP", 3, {
        F(K_STR, autoresp, key), F(K_STR, autoresp, request), F(K_STR, autoresp, response) } },
    [PR_AUTOHIT] = { "AUTOHIT", 2, { F(K_UINT, autohit, conn), F(K_UINT, autohit, at) } },
    [PR_PUBLISH] = { "PUBLISH", 4, {
        F(K_UINT, publish, req), F(K_STR, publish, key), F(K_UINT, publish, opcode),
        F(K_BIN, publish, payload) } },
    [PR_DETACH] = { "DETACH", 2, { F(K_STR, detach, key), F(K_UINT_LIST, detach, conns) } },
    [PR_DETACHED] = { "DETACHED", 2, { F(K_STR, detach, key), F(K_UINT_LIST, detach, conns) } },
    [PR_INFO] = { "INFO", 2, { F(K_UINT, info, req), F(K_STR, info, key) } },
    [PR_INFO_RES] = { "INFO_RES", 8, {
        F(K_UINT, info_res, req), F(K_UINT, info_res, objects), F(K_UINT, info_res, hibernated),
        F(K_UINT, info_res, conns), F(K_UINT, info_res, found), F(K_UINT, info_res, key_hibernated),
        F(K_UINT, info_res, key_conns), F(K_UINT, info_res, alarms) }, 7 },
    [PR_SET] = { "SET", 1, { F(K_STR_LIST, set, members) } },
    [PR_ALARM_MOVE] = { "ALARM_MOVE", 4, {
        F(K_STR, alarm, key), F(K_UINT, alarm, at), F(K_UINT, alarm, retries), F(K_STR, alarm, shard) } },
    [PR_ALARM_MOVED] = { "ALARM_MOVED", 3, {
        F(K_STR, alarm, key), F(K_UINT, alarm, at), F(K_STR, alarm, shard) } },
    [PR_CALL] = { "CALL", 4, {
        F(K_UINT, call, req), F(K_STR, call, key), F(K_STR, call, method), F(K_BIN, call, params) } },
};

#undef F

const char *pr_type_name(int type)
{
    if (type < 1 || type > PR_TYPE_MAX_ || !descs[type].name)
        return "UNKNOWN";
    return descs[type].name;
}

__attribute__((format(printf, 2, 3)))
static int fail(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, RD_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

static int dec_list(pr_mp_cur *c, const struct pr_field *f, const char *mname, unsigned idx,
                    pr_list *ret, char *err)
{
    uint32_t n;
    bool map = f->kind == K_KV_LIST;
    if ((map ? pr_mp_get_map(c, &n) : pr_mp_get_array(c, &n)) < 0)
        return fail(err, "%s: field %u (%s) is not %s", mname, idx, f->name,
                    map ? "a map" : "an array");
    ret->cur.p = c->p;
    ret->n = n;
    for (uint32_t i = 0; i < n; i++) {
        const char *s;
        size_t sl;
        uint64_t u;
        switch (f->kind) {
        case K_STR_LIST:
            if (pr_mp_get_str(c, &s, &sl) < 0)
                return fail(err, "%s: field %u (%s) element %" PRIu32 " is not a string", mname,
                            idx, f->name, i + 1);
            break;
        case K_KV_LIST:
            if (pr_mp_get_str(c, &s, &sl) < 0)
                return fail(err, "%s: field %u (%s) key %" PRIu32 " is not a string", mname, idx,
                            f->name, i + 1);
            if (pr_mp_get_str(c, &s, &sl) < 0)
                return fail(err, "%s: field %u (%s) value %" PRIu32 " is not a string", mname,
                            idx, f->name, i + 1);
            break;
        default:
            if (pr_mp_get_uint(c, &u) < 0)
                return fail(err, "%s: field %u (%s) element %" PRIu32
                            " is not an unsigned integer", mname, idx, f->name, i + 1);
            break;
        }
    }
    ret->cur.end = c->p;
    return 0;
}

static int dec_field(pr_mp_cur *c, const struct pr_field *f, const char *mname, unsigned idx,
                     pr_msg *m, char *err)
{
    void *dst = (char *)m + f->off;
    switch (f->kind) {
    case K_UINT:
        if (pr_mp_get_uint(c, dst) < 0)
            return fail(err, "%s: field %u (%s) is not an unsigned integer", mname, idx, f->name);
        return 0;
    case K_STR:
    case K_STR_NIL: {
        pr_str *s = dst;
        int r = f->kind == K_STR ? pr_mp_get_str(c, &s->p, &s->n)
                                 : pr_mp_get_str_or_nil(c, &s->p, &s->n);
        if (r < 0)
            return fail(err, "%s: field %u (%s) is not a string%s", mname, idx, f->name,
                        f->kind == K_STR ? "" : " or nil");
        return 0;
    }
    case K_BIN: {
        pr_bytes *b = dst;
        if (pr_mp_get_bin(c, &b->p, &b->n) < 0)
            return fail(err, "%s: field %u (%s) is not binary", mname, idx, f->name);
        return 0;
    }
    default:
        return dec_list(c, f, mname, idx, dst, err);
    }
}

int pr_msg_decode(const uint8_t *body, size_t len, pr_msg *ret, char err[RD_ERR_LEN])
{
    pr_mp_cur c;
    pr_mp_cur_init(&c, body, len);
    uint32_t n;
    if (pr_mp_get_array(&c, &n) < 0)
        return fail(err, pr_mp_peek(&c) == PR_MP_ARRAY ? "frame body is a truncated array"
                                                       : "frame body is not an array");
    if (n == 0)
        return fail(err, "frame body is an empty array");
    uint64_t type;
    if (pr_mp_get_uint(&c, &type) < 0)
        return fail(err, "message type is not an unsigned integer");
    if (type == 0 || type > PR_TYPE_MAX_ || !descs[type].name)
        return fail(err, "unknown message type %" PRIu64, type);
    const struct pr_desc *d = &descs[type];
    unsigned nreq = d->nreq ? d->nreq : d->nfields;
    if (n < 1u + nreq)
        return fail(err, "%s: missing field %" PRIu32 " (%s)", d->name, n + 1,
                    d->f[n - 1].name);
    /* Not zeroed: that alone doubled the cost of a FRAME decode. Only the
     * type's own union member is meaningful to callers. */
    pr_msg m;
    m.type = (int)type;
    for (unsigned i = 0; i < d->nfields; i++) {
        if (1u + i >= n) {
            /* An absent optional field reads as empty (0, "", no bytes, no elements). */
            void *dst = (char *)&m + d->f[i].off;
            switch (d->f[i].kind) {
            case K_UINT: memset(dst, 0, sizeof(uint64_t)); break;
            case K_STR: case K_STR_NIL: memset(dst, 0, sizeof(pr_str)); break;
            case K_BIN: memset(dst, 0, sizeof(pr_bytes)); break;
            default: memset(dst, 0, sizeof(pr_list)); break;
            }
            continue;
        }
        int r = dec_field(&c, &d->f[i], d->name, i + 2, &m, err);
        if (r < 0)
            return r;
    }
    for (uint32_t i = 1u + d->nfields; i < n; i++) {
        if (pr_mp_skip(&c) < 0)
            return fail(err, "%s: extra field %" PRIu32 " is malformed", d->name, i + 1);
    }
    if (!pr_mp_at_end(&c))
        return fail(err, "%s: %zu bytes after the message", d->name, (size_t)(c.end - c.p));
    *ret = m;
    return 0;
}

int pr_list_next_str(pr_list *l, pr_str *ret)
{
    if (l->n == 0)
        return -ENOENT;
    const char *p;
    size_t n;
    if (pr_mp_get_str(&l->cur, &p, &n) < 0)
        return -EBADMSG;
    l->n--;
    ret->p = p;
    ret->n = n;
    return 0;
}

int pr_list_next_kv(pr_list *l, pr_str *ret_k, pr_str *ret_v)
{
    if (l->n == 0)
        return -ENOENT;
    pr_mp_cur c = l->cur;
    const char *k, *v;
    size_t kn, vn;
    if (pr_mp_get_str(&c, &k, &kn) < 0 || pr_mp_get_str(&c, &v, &vn) < 0)
        return -EBADMSG;
    l->cur = c;
    l->n--;
    ret_k->p = k;
    ret_k->n = kn;
    ret_v->p = v;
    ret_v->n = vn;
    return 0;
}

int pr_list_next_uint(pr_list *l, uint64_t *ret)
{
    if (l->n == 0)
        return -ENOENT;
    if (pr_mp_get_uint(&l->cur, ret) < 0)
        return -EBADMSG;
    l->n--;
    return 0;
}

/* ---- encoding --------------------------------------------------------- */

/* Offsets are relative to b->off: rd_buf_reserve may compact the buffer
 * while the body is written, which moves every byte but keeps that
 * distance. */
size_t pr_frame_begin(rd_buf *b)
{
    size_t start = b->len - b->off;
    rd_buf_reserve(b, PR_FRAME_HDR);
    memset(b->p + b->len, 0, PR_FRAME_HDR);
    rd_buf_commit(b, PR_FRAME_HDR);
    return start;
}

int pr_frame_end(rd_buf *b, size_t start)
{
    size_t used = b->len - b->off;
    if (start > used || used - start < PR_FRAME_HDR)
        return -EINVAL;
    size_t n = used - start - PR_FRAME_HDR;
    if (n == 0 || n > PR_FRAME_MAX) {
        b->len = b->off + start;
        return n ? -EMSGSIZE : -EINVAL;
    }
    uint32_t be = htobe32((uint32_t)n);
    memcpy(b->p + b->off + start, &be, sizeof be);
    return 0;
}

static void put_opt_str(rd_buf *b, const char *s, size_t n)
{
    if (s)
        pr_mp_put_str(b, s, n);
    else
        pr_mp_put_nil(b);
}

int pr_enc_hello(rd_buf *b, const char *role, const char *name,
                 const char *const *classes, size_t nclasses)
{
    return pr_enc_hello_methods(b, role, name, classes, nclasses, NULL, NULL, 0);
}

int pr_enc_hello_methods(rd_buf *b, const char *role, const char *name,
                         const char *const *classes, size_t nclasses,
                         const char *const *names, const char *const *kinds, size_t nmethods)
{
    if (nclasses > UINT32_MAX || nmethods > UINT32_MAX)
        return -EMSGSIZE;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, names ? 6 : 5);
    pr_mp_put_uint(b, PR_HELLO);
    pr_mp_put_uint(b, PR_VERSION);
    put_opt_str(b, role, role ? strlen(role) : 0);
    put_opt_str(b, name, name ? strlen(name) : 0);
    pr_mp_put_array(b, (uint32_t)nclasses);
    for (size_t i = 0; i < nclasses; i++)
        put_opt_str(b, classes[i], classes[i] ? strlen(classes[i]) : 0);
    if (names) {
        pr_mp_put_map(b, (uint32_t)nmethods);
        for (size_t i = 0; i < nmethods; i++) {
            pr_mp_put_str(b, names[i], strlen(names[i]));
            pr_mp_put_str(b, kinds[i], strlen(kinds[i]));
        }
    }
    return pr_frame_end(b, start);
}

int pr_enc_accept(rd_buf *b, uint64_t conn, const char *subprotocol, size_t len)
{
    if (len > PR_FRAME_MAX)
        return -EMSGSIZE;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 3);
    pr_mp_put_uint(b, PR_ACCEPT);
    pr_mp_put_uint(b, conn);
    put_opt_str(b, subprotocol, len);
    return pr_frame_end(b, start);
}

static int enc_conn_uint_str(rd_buf *b, int type, uint64_t conn, unsigned v, const char *s,
                             size_t len)
{
    if (len > PR_FRAME_MAX)
        return -EMSGSIZE;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 4);
    pr_mp_put_uint(b, (uint64_t)type);
    pr_mp_put_uint(b, conn);
    pr_mp_put_uint(b, v);
    put_opt_str(b, s, len);
    return pr_frame_end(b, start);
}

int pr_enc_reject(rd_buf *b, uint64_t conn, unsigned status, const char *body, size_t len)
{
    return enc_conn_uint_str(b, PR_REJECT, conn, status, body, len);
}

int pr_enc_close(rd_buf *b, uint64_t conn, unsigned code, const char *reason, size_t len)
{
    return enc_conn_uint_str(b, PR_CLOSE, conn, code, reason, len);
}

int pr_enc_frame(rd_buf *b, int type, uint64_t conn, unsigned opcode,
                 const void *payload, size_t len)
{
    if (type != PR_FRAME && type != PR_SEND)
        return -EINVAL;
    if (len > PR_FRAME_MAX)
        return -EMSGSIZE;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 4);
    pr_mp_put_uint(b, (uint64_t)type);
    pr_mp_put_uint(b, conn);
    pr_mp_put_uint(b, opcode);
    pr_mp_put_bin(b, payload, len);
    return pr_frame_end(b, start);
}

int pr_enc_info_req(rd_buf *b, uint64_t req, const char *key, size_t len)
{
    if (len > PR_FRAME_MAX)
        return -EMSGSIZE;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 3);
    pr_mp_put_uint(b, PR_INFO);
    pr_mp_put_uint(b, req);
    pr_mp_put_str(b, key, len);
    return pr_frame_end(b, start);
}

int pr_enc_info_res(rd_buf *b, uint64_t req, const uint64_t counts[7])
{
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 9);
    pr_mp_put_uint(b, PR_INFO_RES);
    pr_mp_put_uint(b, req);
    for (int i = 0; i < 7; i++)
        pr_mp_put_uint(b, counts[i]);
    return pr_frame_end(b, start);
}

int pr_enc_alarm(rd_buf *b, int type, const char *key, size_t klen, uint64_t at, uint64_t retries,
                 const char *shard, size_t slen)
{
    if (type != PR_ALARM_MOVE && type != PR_ALARM_MOVED)
        return -EINVAL;
    if (klen > PR_FRAME_MAX || slen > PR_FRAME_MAX)
        return -EMSGSIZE;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, type == PR_ALARM_MOVE ? 5 : 4);
    pr_mp_put_uint(b, (uint64_t)type);
    pr_mp_put_str(b, key, klen);
    pr_mp_put_uint(b, at);
    if (type == PR_ALARM_MOVE)
        pr_mp_put_uint(b, retries);
    pr_mp_put_str(b, shard, slen);
    return pr_frame_end(b, start);
}

int pr_enc_ping(rd_buf *b, int type, uint64_t token)
{
    if (type != PR_PING && type != PR_PONG)
        return -EINVAL;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 2);
    pr_mp_put_uint(b, (uint64_t)type);
    pr_mp_put_uint(b, token);
    return pr_frame_end(b, start);
}

void pr_put_hist(rd_buf *b, const rd_hist *h)
{
    pr_mp_put_array(b, RD_HIST_BOUNDS + 2);
    for (size_t i = 0; i <= RD_HIST_BOUNDS; i++)
        pr_mp_put_uint(b, h->counts[i]);
    pr_mp_put_uint(b, h->sum_us);
}

int pr_get_hist(pr_list *l, rd_hist *h)
{
    *h = (rd_hist){ { 0 }, 0 };
    if (l->n != RD_HIST_BOUNDS + 2)
        return -EINVAL;
    rd_hist t;
    for (size_t i = 0; i <= RD_HIST_BOUNDS; i++)
        if (pr_list_next_uint(l, &t.counts[i]) < 0)
            return -EBADMSG;
    if (pr_list_next_uint(l, &t.sum_us) < 0)
        return -EBADMSG;
    *h = t;
    return 0;
}
