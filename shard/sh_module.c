/* The class registry and the services of roomd_module.h. */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rd_log.h"
#include "rd_time.h"
#include "sh.h"
#include "sh_fed.h"

#define SH_MAX_CLASSES 64
#define SH_MAX_METHODS 64

static const roomd_class *classes[SH_MAX_CLASSES];
static size_t nclasses;

static int class_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Method names become JavaScript identifiers in /exports.js. */
static bool method_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return strcmp(s, "constructor") != 0 && strcmp(s, "then") != 0 && strcmp(s, "close") != 0;
}

static bool methods_valid(const roomd_class *c)
{
    size_t n = 0;
    for (const roomd_method *m = sh_class_methods(c); m && m->name; m++, n++) {
        if (n == SH_MAX_METHODS || !method_name_valid(m->name) || !m->call ||
            (m->flags & ~ROOMD_METHOD_STREAM))
            return false;
        for (const roomd_method *o = sh_class_methods(c); o != m; o++)
            if (strcmp(o->name, m->name) == 0)
                return false;
    }
    return true;
}

static int register_class(const roomd_class *c)
{
    if (c->version < ROOMD_MODULE_API_VERSION_MIN || c->version > ROOMD_MODULE_API_VERSION || !c->name ||
        !class_name_valid(c->name) || !c->create || !methods_valid(c))
        return -EINVAL;
    if (sh_module_find(c->name, strlen(c->name)))
        return -EEXIST;
    if (nclasses == SH_MAX_CLASSES)
        return -ENOSPC;
    classes[nclasses++] = c;
    return 0;
}

struct roomd_loader {
    const char *path;
};

int roomd_class_register(roomd_loader *ld, const roomd_class *cls)
{
    int r = register_class(cls);
    if (r == 0)
        rd_info("msg=\"class loaded\" class=%s module=%s", cls->name, ld->path);
    return r;
}

int sh_module_load(const char *path, char err[RD_ERR_LEN])
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, RD_ERR_LEN, "cannot load module: %s", dlerror());
        return -ENOENT;
    }
    roomd_module_init_fn init;
    *(void **)&init = dlsym(h, ROOMD_MODULE_INIT);
    if (!init) {
        snprintf(err, RD_ERR_LEN, "%s does not export %s()", path, ROOMD_MODULE_INIT);
        dlclose(h);
        return -EINVAL;
    }
    roomd_loader ld = { path };
    size_t before = nclasses;
    int r = init(&ld);
    if (r < 0 || nclasses == before) {
        snprintf(err, RD_ERR_LEN, "%s: %s", path,
                 r < 0 ? "roomd_module_init() refused to load (a class with a bad version or name, "
                         "or one already loaded?)"
                       : "registered no class");
        nclasses = before;
        dlclose(h);
        return r < 0 ? r : -EINVAL;
    }
    /* Never dlclose a loaded module: its class tables are in use until exit. */
    return 0;
}

void sh_module_register_builtins(void)
{
    register_class(&cls_echo);
    register_class(&cls_chat);
    register_class(&cls_mirror);
    register_class(&cls_counter);
    register_class(&cls_kv);
}

const roomd_class *sh_module_find(const char *name, size_t len)
{
    for (size_t i = 0; i < nclasses; i++)
        if (strlen(classes[i]->name) == len && memcmp(classes[i]->name, name, len) == 0)
            return classes[i];
    return NULL;
}

size_t sh_module_methods(char **names, const char **kinds, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < nclasses; i++)
        for (const roomd_method *m = sh_class_methods(classes[i]); m && m->name && n < max; m++) {
            size_t l = strlen(classes[i]->name) + 1 + strlen(m->name) + 1;
            names[n] = rd_xmalloc(l);
            snprintf(names[n], l, "%s.%s", classes[i]->name, m->name);
            kinds[n++] = m->flags & ROOMD_METHOD_STREAM ? "stream" : "call";
        }
    return n;
}

size_t sh_module_names(const char **out, size_t max)
{
    size_t n = nclasses < max ? nclasses : max;
    for (size_t i = 0; i < n; i++)
        out[i] = classes[i]->name;
    return n;
}

void sh_module_shutdown(void)
{
    nclasses = 0;
}

/* --- services ------------------------------------------------------------ */

int roomd_send(roomd_ctx *ctx, roomd_conn *conn, int opcode, const void *data, size_t len)
{
    if (!conn || conn->closing || !conn->link || conn->link->closing)
        return -ENOTCONN;
    if (opcode != ROOMD_TEXT && opcode != ROOMD_BINARY)
        return -EINVAL;
    int r = pr_enc_frame(&conn->link->out, PR_SEND, conn->id, (unsigned)opcode, data, len);
    if (r < 0)
        return r;
    sh_link_want_flush(conn->link);
    return 0;
}

size_t roomd_broadcast(roomd_ctx *ctx, int opcode, const void *data, size_t len,
                       const roomd_conn *except)
{
    size_t n = sh_broadcast_local(ctx->obj, opcode, data, len, except);
    /* Federation: the other cells' members get it through Redis (no-op without --redis). */
    if (opcode == ROOMD_TEXT || opcode == ROOMD_BINARY)
        sh_fed_publish(ctx->obj, opcode, data, len);
    return n;
}

size_t sh_broadcast_local(sh_object *o, int opcode, const void *data, size_t len,
                          const roomd_conn *except)
{
    size_t total = 0;
    if (opcode != ROOMD_TEXT && opcode != ROOMD_BINARY)
        return 0;
    /* Count recipients per gateway, then send each gateway one BROADCAST
     * carrying the payload once and its recipients' ids. */
    for (size_t i = 0; i < o->nconns; i++)
        o->conns[i]->link->scratch = 0;
    for (size_t i = 0; i < o->nconns; i++) {
        roomd_conn *c = o->conns[i];
        if (c != except && !c->closing && !c->link->closing)
            c->link->scratch++;
    }
    for (size_t i = 0; i < o->nconns; i++) {
        sh_link *l = o->conns[i]->link;
        if (!l->scratch)
            continue;
        rd_buf *b = &l->out;
        size_t start = pr_frame_begin(b);
        pr_mp_put_array(b, 4);
        pr_mp_put_uint(b, PR_BROADCAST);
        pr_mp_put_uint(b, (uint64_t)opcode);
        pr_mp_put_bin(b, data, len);
        pr_mp_put_array(b, l->scratch);
        for (size_t j = i; j < o->nconns; j++) {
            roomd_conn *c = o->conns[j];
            if (c->link == l && c != except && !c->closing)
                pr_mp_put_uint(b, c->id);
        }
        total += l->scratch;
        l->scratch = 0;
        if (pr_frame_end(b, start) < 0) {
            rd_warn("msg=\"broadcast too large for one frame\" object=%s bytes=%zu", o->key, len);
            continue;
        }
        sh_link_want_flush(l);
    }
    return total;
}

int roomd_conn_close(roomd_ctx *ctx, roomd_conn *conn, int code, const char *reason)
{
    if (!conn || conn->closing)
        return -ENOTCONN;
    if (!(code == 1000 || (code >= 3000 && code <= 4999)))
        return -EINVAL;
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123)
        return -EINVAL;
    conn->closing = true;
    if (!conn->link->closing) {
        pr_enc_close(&conn->link->out, conn->id, (unsigned)code, reason ? reason : "", rl);
        sh_link_want_flush(conn->link);
    }
    return 0;
}

size_t roomd_conn_count(roomd_ctx *ctx)
{
    size_t n = 0;
    for (size_t i = 0; i < ctx->obj->nconns; i++)
        n += !ctx->obj->conns[i]->closing;
    return n;
}

roomd_conn *roomd_conn_at(roomd_ctx *ctx, size_t index)
{
    for (size_t i = 0; i < ctx->obj->nconns; i++) {
        roomd_conn *c = ctx->obj->conns[i];
        if (c->closing)
            continue;
        if (index-- == 0)
            return c;
    }
    return NULL;
}

const char *roomd_conn_client_id(const roomd_conn *conn) { return conn->client_id; }
uint64_t roomd_conn_connected_at(const roomd_conn *conn) { return conn->connected_at; }
const char *roomd_object_name(roomd_ctx *ctx) { return ctx->obj->key + ctx->obj->name_off; }
const char *roomd_object_key(roomd_ctx *ctx) { return ctx->obj->key; }

static void send_meta(roomd_conn *conn, unsigned what)
{
    rd_buf *b = &conn->link->out;
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 5);
    pr_mp_put_uint(b, PR_META);
    pr_mp_put_uint(b, conn->id);
    pr_mp_put_uint(b, what);
    pr_mp_put_bin(b, conn->attachment, conn->attachment_len);
    pr_mp_put_array(b, conn->ntags);
    for (size_t i = 0; i < conn->ntags; i++)
        pr_mp_put_str(b, conn->tags[i], strlen(conn->tags[i]));
    pr_frame_end(b, start);
    sh_link_want_flush(conn->link);
}

int roomd_conn_set_attachment(roomd_ctx *ctx, roomd_conn *conn, const void *data, size_t len)
{
    if (!conn || conn->closing)
        return -ENOTCONN;
    if (len > PR_MAX_ATTACHMENT)
        return -E2BIG;
    free(conn->attachment);
    conn->attachment = NULL;
    conn->attachment_len = 0;
    if (len) {
        conn->attachment = rd_xmalloc(len);
        memcpy(conn->attachment, data, len);
        conn->attachment_len = (uint32_t)len;
    }
    if (!conn->link->closing)
        send_meta(conn, PR_META_ATTACHMENT);
    return 0;
}

const void *roomd_conn_attachment(const roomd_conn *conn, size_t *ret_len)
{
    *ret_len = conn->attachment_len;
    return conn->attachment;
}

int roomd_conn_set_tags(roomd_ctx *ctx, roomd_conn *conn, const char *const *tags, size_t n)
{
    if (!conn || conn->closing)
        return -ENOTCONN;
    if (n > PR_MAX_TAGS)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        size_t l = tags[i] ? strlen(tags[i]) : 0;
        if (l == 0 || l > PR_MAX_TAG_LEN)
            return -EINVAL;
    }
    for (size_t i = 0; i < conn->ntags; i++)
        free(conn->tags[i]);
    free(conn->tags);
    conn->tags = n ? rd_xcalloc(n, sizeof *conn->tags) : NULL;
    for (size_t i = 0; i < n; i++)
        conn->tags[i] = rd_xstrndup(tags[i], strlen(tags[i]));
    conn->ntags = (uint8_t)n;
    if (!conn->link->closing)
        send_meta(conn, PR_META_TAGS);
    return 0;
}

size_t roomd_conn_tag_count(const roomd_conn *conn) { return conn->ntags; }

const char *roomd_conn_tag(const roomd_conn *conn, size_t i)
{
    return i < conn->ntags ? conn->tags[i] : NULL;
}

static bool has_tag(const roomd_conn *c, const char *tag)
{
    for (size_t i = 0; i < c->ntags; i++)
        if (strcmp(c->tags[i], tag) == 0)
            return true;
    return false;
}

size_t roomd_conns_with_tag(roomd_ctx *ctx, const char *tag, roomd_conn **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < ctx->obj->nconns; i++) {
        roomd_conn *c = ctx->obj->conns[i];
        if (c->closing || !has_tag(c, tag))
            continue;
        if (n < max)
            out[n] = c;
        n++;
    }
    return n;
}

size_t roomd_broadcast_tag(roomd_ctx *ctx, const char *tag, int opcode, const void *data, size_t len,
                           const roomd_conn *except)
{
    size_t n = 0;
    for (size_t i = 0; i < ctx->obj->nconns; i++) {
        roomd_conn *c = ctx->obj->conns[i];
        if (c != except && !c->closing && has_tag(c, tag) && roomd_send(ctx, c, opcode, data, len) == 0)
            n++;
    }
    return n;
}

int roomd_set_auto_response(roomd_ctx *ctx, const char *request, const char *response)
{
    sh_object *o = ctx->obj;
    if (request && (!*request || strlen(request) > 2048 || !response || strlen(response) > 2048))
        return -EINVAL;
    free(o->ar_request);
    free(o->ar_response);
    o->ar_request = request ? rd_xstrndup(request, strlen(request)) : NULL;
    o->ar_response = request ? rd_xstrndup(response, strlen(response)) : NULL;
    sh_autoresp_publish(o);
    return 0;
}

uint64_t roomd_conn_auto_response_at(const roomd_conn *conn) { return conn->autoresp_at; }

/* --- storage ---------------------------------------------------------------- */

_Static_assert(sizeof(roomd_sql_value) == sizeof(sh_store_sql_value), "roomd_sql_value mirrors sh_store");
_Static_assert(sizeof(roomd_range) == sizeof(sh_store_range), "roomd_range mirrors sh_store");

/* How long an event waits for another shard to release an object's storage. */
#define SH_LOCK_WAIT_MS 2000

/* The object's store, opened on first use, with the event's transaction begun. */
static sh_store *ctx_store(roomd_ctx *ctx)
{
    sh_object *o = ctx->obj;
    if (!o->store) {
        sh_store_durability d = strcmp(sh.cfg.durability, "full") == 0 ? SH_STORE_FULL : SH_STORE_NORMAL;
        int r = sh_store_open(sh.cfg.data_dir, o->key, o->key_len, d, &o->store, ctx->err);
        /* Another shard still holds the object: the shard set just changed
         * and the previous owner has not let go yet (a second gateway's
         * members, an alarm). It releases within a loop turn or two, so wait
         * for it briefly rather than fail the event; never two writers. */
        for (unsigned waited = 0; r == -EWOULDBLOCK && waited < SH_LOCK_WAIT_MS; waited++) {
            if (waited == 0)
                rd_warn("msg=\"object storage held by another shard; waiting\" object=%s", o->key);
            nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
            r = sh_store_open(sh.cfg.data_dir, o->key, o->key_len, d, &o->store, ctx->err);
        }
        if (r < 0) {
            rd_err("msg=\"cannot open object storage\" object=%s err=\"%s\"", o->key, ctx->err);
            return NULL;
        }
    }
    if (!sh_store_pending(o->store))
        sh_store_begin(o->store); /* -EALREADY when this event already began: fine */
    return o->store;
}

void sh_event_end(roomd_ctx *ctx)
{
    sh_object *o = ctx->obj;
    for (size_t i = 0; i < ctx->nallocs; i++)
        free(ctx->allocs[i]);
    free(ctx->allocs);
    ctx->allocs = NULL;
    ctx->nallocs = 0;
    if (!o || !o->store)
        return;
    if (sh_store_pending(o->store)) {
        /* Group commit: one commit (with --durability full, one fsync) per
         * object per loop turn, not one per event. The turn's output is
         * flushed only after sh_commit_dirty(), so the output gate holds. */
        if (!o->dirty) {
            if (sh.ndirty == sh.dirty_cap) {
                sh.dirty_cap = sh.dirty_cap ? sh.dirty_cap * 2 : 16;
                sh.dirty = rd_xrealloc(sh.dirty, sh.dirty_cap * sizeof *sh.dirty);
            }
            sh.dirty[sh.ndirty++] = o;
            o->dirty = true;
        }
        return;
    }
}

void sh_dirty_forget(sh_object *o)
{
    if (!o->dirty)
        return;
    o->dirty = false;
    for (size_t i = 0; i < sh.ndirty; i++)
        if (sh.dirty[i] == o) {
            sh.dirty[i] = sh.dirty[--sh.ndirty];
            break;
        }
}

void sh_commit_object(sh_object *o)
{
    sh_dirty_forget(o);
    if (!o->store)
        return;
    char err[RD_ERR_LEN];
    bool writes = sh_store_pending(o->store);
    uint64_t t0 = writes ? rd_mono_ns() : 0;
    if (sh_store_commit(o->store, err) < 0) {
        /* Crash-only: the output that depended on these writes is still
         * unsent, so nothing was acknowledged; the gateway restarts us and
         * resumes every connection. */
        rd_err("msg=\"storage commit failed; stopping\" object=%s err=\"%s\"", o->key, err);
        _exit(70);
    }
    if (writes)
        rd_hist_observe(&sh.commit_hist, (rd_mono_ns() - t0) / 1000);
}

void sh_commit_dirty(void)
{
    while (sh.ndirty)
        sh_commit_object(sh.dirty[sh.ndirty - 1]);
}

int roomd_storage_get(roomd_ctx *ctx, const void *key, size_t klen, const void **ret_value,
                      size_t *ret_len)
{
    sh_store *st = ctx_store(ctx);
    if (!st)
        return -EIO;
    rd_buf v = RD_BUF_INIT;
    int r = sh_store_get(st, key, klen, &v, ctx->err);
    if (r < 0) {
        rd_buf_free(&v);
        return r;
    }
    if (!v.p)
        rd_buf_reserve(&v, 1);
    ctx->allocs = rd_xrealloc(ctx->allocs, (ctx->nallocs + 1) * sizeof *ctx->allocs);
    ctx->allocs[ctx->nallocs++] = v.p;
    *ret_value = v.p;
    *ret_len = v.len;
    return 0;
}

int roomd_storage_put(roomd_ctx *ctx, const void *key, size_t klen, const void *value, size_t vlen)
{
    sh_store *st = ctx_store(ctx);
    return st ? sh_store_put(st, key, klen, value, vlen, ctx->err) : -EIO;
}

int roomd_storage_delete(roomd_ctx *ctx, const void *key, size_t klen)
{
    sh_store *st = ctx_store(ctx);
    return st ? sh_store_del(st, key, klen, ctx->err) : -EIO;
}

int roomd_storage_list(roomd_ctx *ctx, const roomd_range *range, roomd_list_cb cb, void *ud)
{
    sh_store *st = ctx_store(ctx);
    return st ? sh_store_list(st, (const sh_store_range *)range, (sh_store_list_cb)cb, ud, ctx->err) : -EIO;
}

int roomd_sql(roomd_ctx *ctx, const char *sql, const roomd_sql_value *params, size_t nparams,
              roomd_row_cb cb, void *ud)
{
    sh_store *st = ctx_store(ctx);
    return st ? sh_store_exec_sql(st, sql, (const sh_store_sql_value *)params, nparams,
                                  (sh_store_row_cb)cb, ud, ctx->err)
              : -EIO;
}

const char *roomd_storage_error(roomd_ctx *ctx) { return ctx->err; }

int roomd_alarm_set(roomd_ctx *ctx, uint64_t at_ms)
{
    sh_store *st = ctx_store(ctx);
    if (!st)
        return -EIO;
    /* Index first: if we die between the two commits, the index names an
     * alarm the object does not have, which firing checks and skips; the
     * other order could lose an alarm. */
    if (at_ms) {
        int r = sh_alarm_schedule(ctx->obj->key, ctx->obj->key_len, at_ms, 0);
        if (r < 0)
            return r;
    }
    return sh_store_alarm_set(st, at_ms, ctx->err);
}

int roomd_alarm_get(roomd_ctx *ctx, uint64_t *ret_at_ms)
{
    sh_store *st = ctx_store(ctx);
    return st ? sh_store_alarm_get(st, ret_at_ms, ctx->err) : -EIO;
}

int roomd_reject(roomd_ctx *ctx, int status, const char *reason)
{
    if (status < 400 || status > 599)
        return -EINVAL;
    ctx->reject_status = status;
    free(ctx->reject_reason);
    ctx->reject_reason = strdup(reason ? reason : "");
    return 0;
}

int roomd_select_protocol(roomd_ctx *ctx, const char *protocol)
{
    size_t n = strlen(protocol);
    if (n == 0 || n >= sizeof ctx->protocol)
        return -EINVAL;
    /* Must be one of the offered comma-separated tokens. */
    const char *p = ctx->offered, *end = p ? p + ctx->offered_len : NULL;
    while (p && p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if ((size_t)(p - s) == n && memcmp(s, protocol, n) == 0) {
            memcpy(ctx->protocol, protocol, n + 1);
            ctx->protocol_set = true;
            return 0;
        }
    }
    return -ENOENT;
}

const char *roomd_ctx_claims(roomd_ctx *ctx, size_t *ret_len)
{
    *ret_len = ctx->claims ? ctx->claims_len : 0;
    return ctx->claims;
}

const char *roomd_conn_claims(const roomd_conn *conn, size_t *ret_len)
{
    *ret_len = conn->claims ? conn->claims_len : 0;
    return conn->claims;
}

int roomd_http_reply(roomd_ctx *ctx, int status, const char *content_type,
                     const void *body, size_t len)
{
    if (!ctx->http_link || ctx->replied)
        return -EINVAL;
    if (status < 100 || status > 599)
        return -EINVAL;
    ctx->replied = true;
    rd_buf *b = &ctx->http_link->out;
    const char *ct = content_type ? content_type : "text/plain; charset=utf-8";
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 5);
    pr_mp_put_uint(b, PR_HTTP_RES);
    pr_mp_put_uint(b, ctx->http_req);
    pr_mp_put_uint(b, (uint64_t)status);
    pr_mp_put_map(b, 1);
    pr_mp_put_str(b, "content-type", 12);
    pr_mp_put_str(b, ct, strlen(ct));
    pr_mp_put_bin(b, body, len);
    int r = pr_frame_end(b, start);
    sh_link_want_flush(ctx->http_link);
    return r;
}

void roomd_log(roomd_ctx *ctx, int level, const char *fmt, ...)
{
    if (level > rd_log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char q[1100];
    size_t n = rd_log_quote(q, sizeof q, msg, strlen(msg));
    rd_log_write(level, "object=%s msg=%.*s", ctx->obj ? ctx->obj->key : "-", (int)n, q);
}
