/* The object table: objects by key, their connections, and the dispatch of
 * gateway messages to class callbacks. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "rd_log.h"
#include "rd_time.h"
#include "sh.h"
#include "rpc_codec.h"
#include "sh_fed.h"

#define SH_DEFAULT_MAX_CONNECTIONS 1000
#define SH_MAX_HEADERS 100

static void ctx_init(roomd_ctx *ctx, sh_object *o)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->obj = o;
}

/* Split "class/name" and find the class. */
static const roomd_class *key_class(const char *key, size_t len, size_t *ret_cls_len)
{
    const char *slash = memchr(key, '/', len);
    if (!slash || slash == key || slash + 1 == key + len)
        return NULL;
    *ret_cls_len = (size_t)(slash - key);
    return sh_module_find(key, *ret_cls_len);
}

static sh_object *object_get(const char *key, size_t len, int *ret_status)
{
    sh_object *o = rd_smap_get(&sh.objects, key, len);
    if (o)
        return o;
    size_t cl;
    const roomd_class *cls = key_class(key, len, &cl);
    if (!cls) {
        *ret_status = 404;
        return NULL;
    }
    if (len > UINT16_MAX) {
        *ret_status = 400;
        return NULL;
    }
    o = rd_xcalloc(1, sizeof *o + len + 1);
    o->cls = cls;
    memcpy(o->key, key, len);
    o->key_len = (uint16_t)len;
    o->name_off = (uint16_t)(cl + 1);
    roomd_ctx ctx;
    ctx_init(&ctx, o);
    o->busy++;
    int r = cls->create(&ctx, &o->state);
    sh_event_end(&ctx);
    o->busy--;
    if (r < 0) {
        rd_warn("msg=\"class refused to create object\" object=%s err=%d", o->key, r);
        sh_dirty_forget(o);
        sh_store_close(o->store);
        free(o);
        *ret_status = 500;
        return NULL;
    }
    rd_smap_put(&sh.objects, o->key, o->key_len, o);
    o->last_event_ms = (uint32_t)rd_mono_ms();
    rd_debug("msg=\"object created\" object=%s", o->key);
    return o;
}

/* Every event goes through here: a hibernated object is built again (its
 * constructor re-runs, its connections were kept). -1 when the class
 * refuses to create it; the event is then dropped. */
static int object_touch(sh_object *o)
{
    o->last_event_ms = (uint32_t)rd_mono_ms();
    if (!o->hibernated)
        return 0;
    roomd_ctx ctx;
    ctx_init(&ctx, o);
    o->busy++;
    int r = o->cls->create(&ctx, &o->state);
    sh_event_end(&ctx);
    o->busy--;
    if (r < 0) {
        rd_warn("msg=\"class refused to wake object\" object=%s err=%d", o->key, r);
        return -1;
    }
    o->hibernated = false;
    sh.hibernated--;
    sh.wakes++;
    rd_debug("msg=\"object woke\" object=%s", o->key);
    return 0;
}

static void object_hibernate(sh_object *o)
{
    roomd_ctx ctx;
    ctx_init(&ctx, o);
    if (o->cls->destroy)
        o->cls->destroy(&ctx, o->state);
    sh_event_end(&ctx);
    sh_commit_object(o);
    sh_store_close(o->store); /* releases the lock and SQLite's cache */
    o->store = NULL;
    o->state = NULL;
    o->hibernated = true;
    /* Keep only what the connections need: an exact-size member array, or
     * none for a single member. */
    if (o->cap > o->nconns && o->conns != &o->one) {
        if (o->nconns <= 1) {
            o->one = o->nconns ? o->conns[0] : NULL;
            free(o->conns);
            o->conns = &o->one;
            o->cap = 1;
        } else {
            o->cap = o->nconns;
            o->conns = rd_xrealloc(o->conns, o->cap * sizeof *o->conns);
        }
    }
    sh.hibernated++;
    sh.hibernations++;
    rd_debug("msg=\"object hibernated\" object=%s connections=%zu", o->key, (size_t)o->nconns);
}

/* What a hibernated object costs the shard on average, connection records
 * aside: its heap chunks (malloc's own header included) and its share of
 * the object map's slots. */
size_t sh_object_hibernated_bytes(void)
{
    size_t n = 0, bytes = 0, it = 0;
    sh_object *o;
    while ((o = rd_map_next(&sh.objects, &it))) {
        if (!o->hibernated)
            continue;
        n++;
        bytes += malloc_usable_size(o) + sizeof(size_t);
        if (o->conns != &o->one)
            bytes += malloc_usable_size(o->conns) + sizeof(size_t);
    }
    if (!n)
        return 0;
    return bytes / n + sh.objects.cap * sizeof(rd_map_slot) / sh.objects.count;
}

void sh_object_tick(void)
{
    if (!sh.cfg.hibernate_after)
        return;
    uint64_t now = rd_mono_ms();
    sh_object *o;
    size_t it = 0, n = 0;
    while ((o = rd_map_next(&sh.objects, &it)))
        if (!o->hibernated && !o->busy && o->nconns && (uint32_t)now - o->last_event_ms >= sh.cfg.hibernate_after) {
            object_hibernate(o);
            n++;
        }
    if (n) {
        /* Hand the freed state (SQLite caches above all) back to the system,
         * so an idle room costs what it holds, not what it once used. */
        malloc_trim(0);
        rd_info("msg=\"objects hibernated\" count=%zu hibernating=%zu objects=%zu bytes_per_hibernated=%zu", n,
                sh.hibernated, sh.objects.count, sh_object_hibernated_bytes());
    }
}

void sh_autoresp_publish(sh_object *o)
{
    for (sh_link *l = sh.links; l; l = l->next) {
        if (l->closing || !l->hello)
            continue;
        rd_buf *b = &l->out;
        size_t start = pr_frame_begin(b);
        pr_mp_put_array(b, 4);
        pr_mp_put_uint(b, PR_AUTORESP);
        pr_mp_put_str(b, o->key, o->key_len);
        pr_mp_put_str(b, o->ar_request ? o->ar_request : "", o->ar_request ? strlen(o->ar_request) : 0);
        pr_mp_put_str(b, o->ar_response ? o->ar_response : "", o->ar_response ? strlen(o->ar_response) : 0);
        pr_frame_end(b, start);
        sh_link_want_flush(l);
    }
}

void sh_object_link_hello(sh_link *l)
{
    sh_object *o;
    size_t it = 0;
    while ((o = rd_map_next(&sh.objects, &it))) {
        if (!o->ar_request)
            continue;
        rd_buf *b = &l->out;
        size_t start = pr_frame_begin(b);
        pr_mp_put_array(b, 4);
        pr_mp_put_uint(b, PR_AUTORESP);
        pr_mp_put_str(b, o->key, o->key_len);
        pr_mp_put_str(b, o->ar_request, strlen(o->ar_request));
        pr_mp_put_str(b, o->ar_response, strlen(o->ar_response));
        pr_frame_end(b, start);
    }
    sh_link_want_flush(l);
}

void sh_conn_free_meta(roomd_conn *c)
{
    free(c->claims);
    free(c->attachment);
    for (size_t i = 0; i < c->ntags; i++)
        free(c->tags[i]);
    free(c->tags);
}

static void object_evict(sh_object *o)
{
    roomd_ctx ctx;
    ctx_init(&ctx, o);
    if (o->ar_request) {
        free(o->ar_request);
        free(o->ar_response);
        o->ar_request = o->ar_response = NULL;
        if (!sh.stopping)
            sh_autoresp_publish(o); /* the gateways forget the pair */
    }
    if (o->hibernated)
        sh.hibernated--;
    else if (o->cls->destroy)
        o->cls->destroy(&ctx, o->state);
    sh_event_end(&ctx);
    sh_commit_object(o);
    sh_store_close(o->store);
    o->store = NULL;
    sh_fed_forget(o); /* federation state goes with the object */
    rd_smap_del(&sh.objects, o->key, o->key_len);
    rd_debug("msg=\"object evicted\" object=%s", o->key);
    free(o->streams); /* empty: streams end with their connections */
    if (o->conns != &o->one)
        free(o->conns);
    free(o);
}

/* Evict objects nobody is connected to once their event is over. */
static void object_maybe_evict(sh_object *o)
{
    if (o->nconns == 0 && o->busy == 0)
        object_evict(o);
}

static void object_add_conn(sh_object *o, roomd_conn *c)
{
    if (o->cap == 0) {
        o->conns = &o->one;
        o->cap = 1;
    } else if (o->nconns == o->cap) {
        roomd_conn **grown = rd_xmalloc((size_t)o->cap * 2 * sizeof *grown);
        memcpy(grown, o->conns, o->nconns * sizeof *grown);
        if (o->conns != &o->one)
            free(o->conns);
        o->conns = grown;
        o->cap *= 2;
    }
    c->index = o->nconns;
    o->conns[o->nconns++] = c;
    if (o->nconns == 1)
        sh_fed_watch(o); /* federation: subscribe roomd:o:<key> */
}

/* Keep join order: shift the tail down (objects are small, order is what
 * classes see through roomd_conn_at). */
static void object_remove_conn(sh_object *o, roomd_conn *c)
{
    size_t i = c->index;
    memmove(&o->conns[i], &o->conns[i + 1], (o->nconns - i - 1) * sizeof *o->conns);
    o->nconns--;
    for (; i < o->nconns; i++)
        o->conns[i]->index = i;
    if (o->nconns == 0)
        sh_fed_unwatch(o); /* federation: unsubscribe */
}

static size_t open_count(const sh_object *o)
{
    size_t n = 0;
    for (size_t i = 0; i < o->nconns; i++)
        n += !o->conns[i]->closing;
    return n;
}

/* Copy the headers of a pr_list into roomd_header entries. */
static size_t collect_headers(pr_list headers, roomd_header *out, size_t max)
{
    size_t n = 0;
    pr_str k, v;
    while (n < max && pr_list_next_kv(&headers, &k, &v) == 0)
        out[n++] = (roomd_header){ k.p, k.n, v.p, v.n };
    return n;
}

static void handle_open(sh_link *l, const pr_msg *m)
{
    uint64_t id = m->u.open.conn;
    if (rd_map_get(&l->conns, id)) {
        pr_enc_reject(&l->out, id, 400, "duplicate connection id", 23);
        sh_link_want_flush(l);
        return;
    }
    int status = 0;
    sh_object *o = object_get(m->u.open.key.p, m->u.open.key.n, &status);
    if (!o) {
        const char *why = status == 404 ? "unknown class" : "object could not be created";
        pr_enc_reject(&l->out, id, (unsigned)status, why, strlen(why));
        sh_link_want_flush(l);
        return;
    }
    bool resumed = m->u.open.flags & PR_OPEN_RESUMED;
    if (!resumed && object_touch(o) < 0) {
        pr_enc_reject(&l->out, id, 500, "object could not be created", 27);
        sh_link_want_flush(l);
        return;
    }
    /* A resumed connection was admitted before the shard restarted: it is
     * counted, never refused, and the class sees no second connect. */
    uint32_t max = o->cls->max_connections ? o->cls->max_connections : SH_DEFAULT_MAX_CONNECTIONS;
    if (!resumed && open_count(o) >= max) {
        char why[96];
        int n = snprintf(why, sizeof why, "object %s is full (maxConnections %u)", o->key, max);
        pr_enc_reject(&l->out, id, 503, why, (size_t)n);
        sh_link_want_flush(l);
        object_maybe_evict(o);
        return;
    }
    roomd_conn *c = rd_xcalloc(1, sizeof *c);
    c->link = l;
    c->id = id;
    c->obj = o;
    c->connected_at = m->u.open.connected_at;
    size_t cl = m->u.open.client_id.n < RD_UUID_STR_LEN ? m->u.open.client_id.n : RD_UUID_STR_LEN;
    memcpy(c->client_id, m->u.open.client_id.p, cl);
    c->client_id[cl] = '\0';
    if (m->u.open.claims.n) {
        c->claims = rd_xstrndup(m->u.open.claims.p, m->u.open.claims.n);
        c->claims_len = m->u.open.claims.n;
    }

    roomd_ctx ctx;
    ctx_init(&ctx, o);
    ctx.offered = m->u.open.subprotocols.p;
    ctx.offered_len = m->u.open.subprotocols.n;
    ctx.claims = c->claims;
    ctx.claims_len = c->claims_len;
    int accepted = 0;
    /* What connect sends on this link must reach the gateway after ACCEPT,
     * or the gateway (still waiting to answer the handshake) drops it. */
    size_t mark = rd_buf_avail(&l->out);
    if (o->cls->connect && !resumed) {
        roomd_header hdrs[SH_MAX_HEADERS];
        roomd_request req = {
            .method = "GET", .path = "", .path_len = 0,
            .query = m->u.open.query.p ? m->u.open.query.p : "", .query_len = m->u.open.query.n,
            .headers = hdrs, .nheaders = collect_headers(m->u.open.headers, hdrs, SH_MAX_HEADERS),
            .remote = "",
        };
        char remote[64];
        snprintf(remote, sizeof remote, "%.*s", (int)m->u.open.remote.n,
                 m->u.open.remote.p ? m->u.open.remote.p : "");
        req.remote = remote;
        o->busy++;
        accepted = o->cls->connect(&ctx, o->state, c, &req) == 0;
        sh_event_end(&ctx);
        o->busy--;
    } else {
        accepted = 1;
    }
    if (!accepted) {
        int st = ctx.reject_status ? ctx.reject_status : 403;
        const char *why = ctx.reject_reason ? ctx.reject_reason : "connection refused by the object";
        pr_enc_reject(&l->out, id, (unsigned)st, why, strlen(why));
        free(ctx.reject_reason);
        sh_conn_free_meta(c);
        free(c);
        sh_link_want_flush(l);
        object_maybe_evict(o);
        return;
    }
    free(ctx.reject_reason);
    /* Default: echo the first offered subprotocol, so browsers that offered
     * some do not fail the handshake. */
    if (!ctx.protocol_set && ctx.offered && ctx.offered_len) {
        const char *p = ctx.offered, *end = p + ctx.offered_len;
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t n = (size_t)(p - s);
        if (n > 0 && n < sizeof ctx.protocol) {
            memcpy(ctx.protocol, s, n);
            ctx.protocol[n] = '\0';
            ctx.protocol_set = true;
        }
    }
    if (resumed) {
        /* What the class attached to the connection comes back with it. */
        if (m->u.open.attachment.n && m->u.open.attachment.n <= PR_MAX_ATTACHMENT) {
            c->attachment = rd_xmalloc(m->u.open.attachment.n);
            memcpy(c->attachment, m->u.open.attachment.p, m->u.open.attachment.n);
            c->attachment_len = (uint32_t)m->u.open.attachment.n;
        }
        pr_list tl = m->u.open.tags;
        pr_str t;
        if (tl.n)
            c->tags = rd_xcalloc(tl.n < PR_MAX_TAGS ? tl.n : PR_MAX_TAGS, sizeof *c->tags);
        while (c->ntags < PR_MAX_TAGS && pr_list_next_str(&tl, &t) == 0)
            c->tags[c->ntags++] = rd_xstrndup(t.p, t.n);
    }
    rd_map_put(&l->conns, id, c);
    object_add_conn(o, c);
    rd_buf later = RD_BUF_INIT;
    if (rd_buf_avail(&l->out) > mark) {
        rd_buf_append(&later, rd_buf_data(&l->out) + mark, rd_buf_avail(&l->out) - mark);
        l->out.len = l->out.off + mark;
    }
    pr_enc_accept(&l->out, id, ctx.protocol_set ? ctx.protocol : NULL,
                  ctx.protocol_set ? strlen(ctx.protocol) : 0);
    rd_buf_append(&l->out, rd_buf_data(&later), rd_buf_avail(&later));
    rd_buf_free(&later);
    sh_link_want_flush(l);
}

static void conn_gone(roomd_conn *c, int code, const char *reason, size_t rlen)
{
    sh_object *o = c->obj;
    object_remove_conn(o, c);
    rd_map_del(&c->link->conns, c->id);
    sh_rpc_conn_gone(o, c);
    if (o->cls->close && object_touch(o) == 0) {
        roomd_ctx ctx;
        ctx_init(&ctx, o);
        o->busy++;
        o->cls->close(&ctx, o->state, c, code, reason, rlen);
        sh_event_end(&ctx);
        o->busy--;
    }
    sh_conn_free_meta(c);
    free(c);
    object_maybe_evict(o);
}

static void handle_frame(sh_link *l, const pr_msg *m)
{
    roomd_conn *c = rd_map_get(&l->conns, m->u.frame.conn);
    if (!c || c->closing)
        return; /* raced with a close: the message has nowhere to go */
    if (m->u.frame.opcode != ROOMD_TEXT && m->u.frame.opcode != ROOMD_BINARY)
        return;
    sh_object *o = c->obj;
    /* A class with methods takes JSON-RPC requests (rpc_codec.h says which
     * text messages are); everything else goes to its message handler. */
    bool rpc = m->u.frame.opcode == ROOMD_TEXT && sh_class_methods(o->cls) &&
               sh_rpc_is_request(m->u.frame.payload.p, m->u.frame.payload.n);
    if ((!rpc && !o->cls->message) || object_touch(o) < 0)
        return;
    roomd_ctx ctx;
    ctx_init(&ctx, o);
    o->busy++;
    if (rpc)
        sh_rpc_frame(&ctx, c, m->u.frame.payload.p, m->u.frame.payload.n);
    else
        o->cls->message(&ctx, o->state, c, (int)m->u.frame.opcode, m->u.frame.payload.p,
                        m->u.frame.payload.n);
    sh_event_end(&ctx);
    o->busy--;
}

/* The gateway's CLOSE is always acknowledged with a CLOSE for the same id,
 * after everything this shard sent that connection before: the gateway
 * answers the client's close frame only then, so replies are not cut off. */
static void handle_close(sh_link *l, const pr_msg *m)
{
    roomd_conn *c = rd_map_get(&l->conns, m->u.close.conn);
    if (c)
        conn_gone(c, (int)m->u.close.code, m->u.close.reason.p ? m->u.close.reason.p : "",
                  m->u.close.reason.n);
    pr_enc_close(&l->out, m->u.close.conn, (unsigned)m->u.close.code, NULL, 0);
    sh_link_want_flush(l);
}

/* The object a request (HTTP or publish) names, with ctx set up to answer
 * it; NULL after answering 404 (unknown class) or 500 (create refused). */
static sh_object *request_object(sh_link *l, uint64_t req, pr_str key, roomd_ctx *ctx)
{
    int status = 0;
    sh_object *o = object_get(key.p, key.n, &status);
    ctx_init(ctx, o);
    ctx->http_link = l;
    ctx->http_req = req;
    if (o && object_touch(o) == 0)
        return o;
    const char *why = status == 404 ? "unknown class\n" : "object could not be created\n";
    roomd_http_reply(ctx, status == 404 ? 404 : 500, NULL, why, strlen(why));
    if (o)
        object_maybe_evict(o);
    return NULL;
}

static void handle_http(sh_link *l, const pr_msg *m)
{
    roomd_ctx ctx;
    sh_object *o = request_object(l, m->u.http_req.req, m->u.http_req.key, &ctx);
    if (!o)
        return;
    if (o->cls->http) {
        roomd_header hdrs[SH_MAX_HEADERS];
        char method[16], remote[64];
        snprintf(method, sizeof method, "%.*s", (int)m->u.http_req.method.n, m->u.http_req.method.p);
        snprintf(remote, sizeof remote, "%.*s", (int)m->u.http_req.remote.n,
                 m->u.http_req.remote.p ? m->u.http_req.remote.p : "");
        roomd_request req = {
            .method = method,
            .path = m->u.http_req.path.p ? m->u.http_req.path.p : "",
            .path_len = m->u.http_req.path.n,
            .query = m->u.http_req.query.p ? m->u.http_req.query.p : "",
            .query_len = m->u.http_req.query.n,
            .headers = hdrs,
            .nheaders = collect_headers(m->u.http_req.headers, hdrs, SH_MAX_HEADERS),
            .body = m->u.http_req.body.p,
            .body_len = m->u.http_req.body.n,
            .remote = remote,
        };
        if (m->u.http_req.claims.n) {
            ctx.claims = m->u.http_req.claims.p;
            ctx.claims_len = m->u.http_req.claims.n;
        }
        o->busy++;
        o->cls->http(&ctx, o->state, &req);
        sh_event_end(&ctx);
        o->busy--;
    }
    if (!ctx.replied) {
        static const char nf[] = "not found\n";
        roomd_http_reply(&ctx, 404, NULL, nf, sizeof nf - 1);
    }
    object_maybe_evict(o);
}

/* A backend's message for every member of the object, in this cell (the
 * local connections) and, with --redis, in every other cell. The class is
 * not involved; answered like an HTTP request. */
static void handle_publish(sh_link *l, const pr_msg *m)
{
    roomd_ctx ctx;
    sh_object *o = request_object(l, m->u.publish.req, m->u.publish.key, &ctx);
    if (!o)
        return;
    int op = m->u.publish.opcode == ROOMD_BINARY ? ROOMD_BINARY : ROOMD_TEXT;
    size_t n = sh_broadcast_local(o, op, m->u.publish.payload.p, m->u.publish.payload.n, NULL);
    sh_fed_publish(o, op, m->u.publish.payload.p, m->u.publish.payload.n);
    char body[128];
    int bl = snprintf(body, sizeof body, "{\"delivered\":%zu,\"federated\":%s}\n", n,
                      sh_fed_state() != SH_FED_OFF ? "true" : "false");
    roomd_http_reply(&ctx, 200, "application/json", body, (size_t)bl);
    object_maybe_evict(o);
}

/* The shard set changed and the gateway moves these connections to the
 * object's new owner. No close event: to the class they stay connected. The
 * object hibernates first (destroy runs, storage is committed and closed, so
 * its lock is free before the gateway re-opens the connections elsewhere);
 * once no connection is left here the object is forgotten. DETACHED follows
 * everything this shard sent those connections. */
static void handle_detach(sh_link *l, const pr_msg *m)
{
    pr_str key = m->u.detach.key;
    sh_object *o = rd_smap_get(&sh.objects, key.p, key.n);
    size_t moved = 0;
    if (o) {
        pr_list cl = m->u.detach.conns;
        uint64_t id;
        while (pr_list_next_uint(&cl, &id) == 0) {
            roomd_conn *c = rd_map_get(&l->conns, id);
            if (!c || c->obj != o)
                continue;
            object_remove_conn(o, c);
            rd_map_del(&l->conns, id);
            /* Its RPC streams cannot follow it (the class's state does not):
             * they end here, as on a shard restart; client.js calls again. */
            sh_rpc_conn_gone(o, c);
            sh_conn_free_meta(c);
            free(c);
            moved++;
        }
        rd_debug("msg=\"connections detached\" object=%s moved=%zu left=%zu", o->key, moved, (size_t)o->nconns);
        if (o->nconns == 0)
            object_evict(o); /* destroy, commit, close: the lock is free */
        else if (!o->hibernated)
            object_hibernate(o); /* other gateways' members stay, asleep */
    }
    /* The answer echoes the list: the gateway counts them off. */
    rd_buf *b = &l->out;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 3);
    pr_mp_put_uint(b, PR_DETACHED);
    pr_mp_put_str(b, key.p, key.n);
    pr_list cl = m->u.detach.conns;
    pr_mp_put_array(b, cl.n);
    uint64_t id;
    while (pr_list_next_uint(&cl, &id) == 0)
        pr_mp_put_uint(b, id);
    pr_frame_end(b, start);
    sh_link_want_flush(l);
}

static void handle_info(sh_link *l, const pr_msg *m)
{
    size_t conns = 0;
    for (sh_link *k = sh.links; k; k = k->next)
        conns += k->conns.count;
    uint64_t counts[7] = { sh.objects.count, sh.hibernated, conns, 0, 0, 0, sh_alarm_foreign() };
    sh_object *o = m->u.info.key.n ? rd_smap_get(&sh.objects, m->u.info.key.p, m->u.info.key.n) : NULL;
    if (o) {
        counts[3] = 1;
        counts[4] = o->hibernated;
        counts[5] = o->nconns;
    }
    pr_enc_info_res(&l->out, m->u.info.req, counts);
    sh_link_want_flush(l);
}

/* A backend's POST .../rpc/<method>: params in, a JSON-RPC response (id
 * null) out as the HTTP answer. Streaming methods need a WebSocket. */
static void handle_call(sh_link *l, const pr_msg *m)
{
    roomd_ctx ctx;
    sh_object *o = request_object(l, m->u.call.req, m->u.call.key, &ctx);
    if (!o)
        return;
    char name[SH_RPC_MAX_METHOD + 1], why[200];
    snprintf(name, sizeof name, "%.*s", (int)(m->u.call.method.n < SH_RPC_MAX_METHOD ? m->u.call.method.n
                                                                                     : SH_RPC_MAX_METHOD),
             m->u.call.method.p ? m->u.call.method.p : "");
    const roomd_method *rm = sh_rpc_find(o->cls, name);
    const char *params = (const char *)m->u.call.params.p;
    size_t plen = m->u.call.params.n;
    json_error_t je;
    json_t *pj = plen ? json_loadb(params, plen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je) : NULL;
    int code = 0;
    if (!rm || m->u.call.method.n > SH_RPC_MAX_METHOD) {
        code = ROOMD_RPC_METHOD_NOT_FOUND;
        snprintf(why, sizeof why, "method not found: %s has no method \"%s\"", o->cls->name, name);
    } else if (rm->flags & ROOMD_METHOD_STREAM) {
        code = ROOMD_RPC_INVALID_REQUEST;
        snprintf(why, sizeof why, "%s is a streaming method: call it over a WebSocket", name);
    } else if (plen && !pj) {
        code = ROOMD_RPC_PARSE_ERROR;
        snprintf(why, sizeof why, "parse error: %s (at byte %d)", je.text, je.position);
    } else if (pj && !json_is_array(pj) && !json_is_object(pj)) {
        code = ROOMD_RPC_INVALID_PARAMS;
        snprintf(why, sizeof why, "the body (params) must be a JSON array or object");
    }
    json_decref(pj);
    if (code) {
        rd_buf b = RD_BUF_INIT;
        sh_rpc_put_error(&b, NULL, code, why);
        rd_buf_append(&b, "\n", 1);
        roomd_http_reply(&ctx, code == ROOMD_RPC_METHOD_NOT_FOUND ? 404 : 400, "application/json",
                         rd_buf_data(&b), rd_buf_avail(&b));
        rd_buf_free(&b);
    } else {
        o->busy++;
        sh_rpc_invoke(&ctx, NULL, rm, NULL, false, plen ? params : "[]", plen ? plen : 2);
        sh_event_end(&ctx);
        o->busy--;
    }
    object_maybe_evict(o);
}

void sh_object_handle(sh_link *l, const pr_msg *m)
{
    switch (m->type) {
    case PR_OPEN:
        handle_open(l, m);
        break;
    case PR_FRAME: {
        uint64_t t0 = rd_mono_ns();
        handle_frame(l, m);
        rd_hist_observe(&sh.event_hist, (rd_mono_ns() - t0) / 1000);
        break;
    }
    case PR_CLOSE:
        handle_close(l, m);
        break;
    case PR_HTTP_REQ:
        handle_http(l, m);
        break;
    case PR_PUBLISH:
        handle_publish(l, m);
        break;
    case PR_DETACH:
        handle_detach(l, m);
        break;
    case PR_INFO:
        handle_info(l, m);
        break;
    case PR_CALL:
        handle_call(l, m);
        break;
    case PR_AUTOHIT: {
        /* Not an event: the object stays asleep. */
        roomd_conn *c = rd_map_get(&l->conns, m->u.autohit.conn);
        if (c)
            c->autoresp_at = m->u.autohit.at;
        break;
    }
    default:
        rd_warn("msg=\"unexpected message from gateway\" type=%s gateway=%s", pr_type_name(m->type),
                l->peer);
        break;
    }
}

/* A gateway went away: its connections are gone (1006 to the classes). */
void sh_object_link_gone(sh_link *l)
{
    roomd_conn *c;
    size_t it = 0;
    /* Collect first: conn_gone edits the map we walk. */
    size_t n = l->conns.count, k = 0;
    roomd_conn **all = rd_xmalloc((n ? n : 1) * sizeof *all);
    while ((c = rd_map_next(&l->conns, &it)) && k < n)
        all[k++] = c;
    for (size_t i = 0; i < k; i++)
        conn_gone(all[i], 1006, "gateway link lost", 17);
    free(all);
}

int sh_object_fire_alarm(const char *key, size_t klen, uint64_t at, unsigned retries)
{
    int status = 0;
    sh_object *o = object_get(key, klen, &status);
    if (!o)
        return status == 404 ? -ENOENT : -EIO; /* a class no longer loaded: forget it */
    if (object_touch(o) < 0) {
        object_maybe_evict(o);
        return -EIO;
    }
    /* Earlier events of this turn commit first: a failed attempt rolls back
     * its own writes only. */
    sh_commit_object(o);
    roomd_ctx ctx;
    ctx_init(&ctx, o);
    o->busy++;
    uint64_t stored = 0;
    int r = roomd_alarm_get(&ctx, &stored);
    if (r < 0 || stored == 0 || stored > rd_wall_ms()) {
        /* Storage owned elsewhere (not ours to fire), no alarm (a stale
         * index entry), or moved later (its own entry is scheduled). */
        sh_event_end(&ctx);
        o->busy--;
        object_maybe_evict(o);
        return r == -EWOULDBLOCK ? -EAGAIN : r < 0 ? r : stored == 0 ? -ENOENT : -EAGAIN;
    }
    /* Where each gateway's output stood before the handler: a failed
     * attempt's messages are taken back along with its writes. */
    size_t nlinks = 0;
    for (sh_link *l = sh.links; l; l = l->next)
        nlinks++;
    size_t *marks = rd_xmalloc((nlinks ? nlinks : 1) * sizeof *marks), k = 0;
    for (sh_link *l = sh.links; l; l = l->next)
        marks[k++] = rd_buf_avail(&l->out);
    int hr = o->cls->alarm ? o->cls->alarm(&ctx, o->state, retries) : 0;
    bool cleared = false;
    if (hr < 0) {
        sh_store_rollback(o->store); /* the failed attempt leaves nothing behind */
        k = 0;
        for (sh_link *l = sh.links; l && k < nlinks; l = l->next, k++)
            if (rd_buf_avail(&l->out) > marks[k])
                l->out.len = l->out.off + marks[k];
    } else {
        uint64_t now_stored = 0;
        if (roomd_alarm_get(&ctx, &now_stored) == 0 && now_stored == stored) {
            roomd_alarm_set(&ctx, 0); /* handled, and the handler did not set a new one */
            cleared = true;
        }
    }
    free(marks);
    sh_event_end(&ctx);
    o->busy--;
    if (cleared)
        sh_alarm_forget(o->key);
    rd_debug("msg=\"alarm fired\" object=%s retries=%u result=%d", o->key, retries, hr);
    object_maybe_evict(o);
    return hr < 0 ? hr : 0;
}

int sh_object_federate(sh_object *o, const char *from, const uint8_t *data, size_t len)
{
    if (!o->cls->federate)
        return -EOPNOTSUPP;
    if (object_touch(o) < 0) {
        object_maybe_evict(o);
        return -EIO;
    }
    roomd_ctx ctx;
    ctx_init(&ctx, o);
    o->busy++;
    o->cls->federate(&ctx, o->state, from, data ? data : (const uint8_t *)"", len);
    sh_event_end(&ctx);
    o->busy--;
    object_maybe_evict(o);
    return 0;
}

void sh_object_federate_result(const char *key, size_t klen, uint64_t id,
                               const roomd_federate_result *res, size_t n)
{
    int status = 0;
    sh_object *o = object_get(key, klen, &status);
    if (!o) {
        rd_warn("msg=\"federate results lost: the caller cannot be built\" object=%.*s id=%" PRIu64,
                (int)klen, key, id);
        return;
    }
    if (o->cls->federate_result && object_touch(o) == 0) {
        roomd_ctx ctx;
        ctx_init(&ctx, o);
        o->busy++;
        o->cls->federate_result(&ctx, o->state, id, res, n);
        sh_event_end(&ctx);
        o->busy--;
    }
    object_maybe_evict(o);
}

void sh_object_shutdown(void)
{
    sh_object *o;
    size_t it = 0;
    size_t n = sh.objects.count, k = 0;
    sh_object **all = rd_xmalloc((n ? n : 1) * sizeof *all);
    while ((o = rd_map_next(&sh.objects, &it)) && k < n)
        all[k++] = o;
    for (size_t i = 0; i < k; i++)
        object_evict(all[i]);
    free(all);
    rd_map_free(&sh.objects);
}
