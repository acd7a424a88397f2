/* kv: durable key/value for apps that just need shared state.
 *
 * RPC methods (JSON-RPC, POST .../rpc/<method>, /exports.js's Kv class):
 *   get(key) -> value or null        put(key, value) -> true
 *   delete(key) -> whether it existed
 *   list({prefix, start, end, limit, reverse}) -> [[key, value], ...]
 *   watch(prefix = "") -> stream: {"key":K,"value":V} after each put and
 *                         {"key":K,"deleted":true} after each delete of a
 *                         key starting with prefix
 * The older JSON messages answer the same operations (every reply carries
 * the request's "id" when it had one):
 *   {"op":"put","key":K,"value":V}             -> {"ok":true}
 *   {"op":"get","key":K}                       -> {"value":V} (null when absent)
 *   {"op":"delete","key":K}                    -> {"deleted":true|false}
 *   {"op":"list","prefix":P,"start":S,"end":E,"limit":N,"reverse":B}
 *                                              -> {"items":[[K,V],...]}
 * Keys are strings (1..2048 bytes), values any JSON (stored as its text, at
 * most 128 KiB). Answers follow the commit (the output gate). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "roomd_module.h"
#include "rpc_codec.h"

static int kv_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

/* --- operations, shared by both protocols: a result, or NULL with *ret_err
 * set (code: a JSON-RPC code; the text in err) ---------------------------- */

typedef struct kv_err {
    int code;
    char text[200];
} kv_err;

static json_t *op_fail(kv_err *e, int code, const char *text)
{
    e->code = code;
    snprintf(e->text, sizeof e->text, "%s", text);
    return NULL;
}

static bool key_of(json_t *jkey, const char **ret, size_t *ret_len)
{
    *ret = json_string_value(jkey);
    *ret_len = *ret ? json_string_length(jkey) : 0;
    return *ret && *ret_len;
}

/* Tell watch() streams whose prefix the key starts with. */
static void notify(roomd_ctx *ctx, const char *key, size_t klen, json_t *value)
{
    roomd_stream *streams[64];
    size_t n = roomd_streams(ctx, "watch", streams, 64);
    if (!n)
        return;
    json_t *ev = value ? json_pack("{s:s%,s:O}", "key", key, klen, "value", value)
                       : json_pack("{s:s%,s:b}", "key", key, klen, "deleted", 1);
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    for (size_t i = 0; text && i < n && i < 64; i++) {
        size_t pl;
        const char *params = roomd_stream_params(streams[i], &pl);
        json_error_t je;
        json_t *p = json_loadb(params, pl, 0, &je);
        json_t *pre = p ? sh_rpc_param(p, 0, "prefix") : NULL;
        size_t prl = json_string_length(pre);
        if (!pre || (prl <= klen && memcmp(json_string_value(pre), key, prl) == 0))
            roomd_stream_emit(ctx, streams[i], text, strlen(text));
        json_decref(p);
    }
    free(text);
    json_decref(ev);
}

static json_t *op_put(roomd_ctx *ctx, json_t *jkey, json_t *v, kv_err *e)
{
    const char *key;
    size_t klen;
    if (!key_of(jkey, &key, &klen))
        return op_fail(e, ROOMD_RPC_INVALID_PARAMS, "\"key\" must be a non-empty string");
    if (!v)
        return op_fail(e, ROOMD_RPC_INVALID_PARAMS, "\"value\" is missing");
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    int r = text ? roomd_storage_put(ctx, key, klen, text, strlen(text)) : -EINVAL;
    free(text);
    if (r < 0)
        return op_fail(e, r == -E2BIG ? ROOMD_RPC_INVALID_PARAMS : ROOMD_RPC_INTERNAL_ERROR,
                       r == -E2BIG ? "key or value too large" : roomd_storage_error(ctx));
    notify(ctx, key, klen, v);
    return json_true();
}

static json_t *op_get(roomd_ctx *ctx, json_t *jkey, kv_err *e)
{
    const char *key;
    size_t klen;
    if (!key_of(jkey, &key, &klen))
        return op_fail(e, ROOMD_RPC_INVALID_PARAMS, "\"key\" must be a non-empty string");
    const void *v;
    size_t vl;
    int r = roomd_storage_get(ctx, key, klen, &v, &vl);
    if (r == -ENOENT)
        return json_null();
    if (r < 0)
        return op_fail(e, r == -E2BIG ? ROOMD_RPC_INVALID_PARAMS : ROOMD_RPC_INTERNAL_ERROR,
                       r == -E2BIG ? "key too large" : roomd_storage_error(ctx));
    json_error_t je;
    json_t *val = json_loadb(v, vl, JSON_DECODE_ANY, &je);
    return val ? val : json_null();
}

static json_t *op_delete(roomd_ctx *ctx, json_t *jkey, kv_err *e)
{
    const char *key;
    size_t klen;
    if (!key_of(jkey, &key, &klen))
        return op_fail(e, ROOMD_RPC_INVALID_PARAMS, "\"key\" must be a non-empty string");
    int r = roomd_storage_delete(ctx, key, klen);
    if (r < 0 && r != -ENOENT)
        return op_fail(e, ROOMD_RPC_INTERNAL_ERROR, roomd_storage_error(ctx));
    if (r == 0)
        notify(ctx, key, klen, NULL);
    return json_boolean(r == 0);
}

struct list_ud {
    json_t *items;
};

static int list_one(void *ud, const uint8_t *key, size_t klen, const uint8_t *value, size_t vlen)
{
    struct list_ud *u = ud;
    json_error_t e;
    json_t *v = json_loadb((const char *)value, vlen, JSON_DECODE_ANY, &e);
    json_array_append_new(u->items, json_pack("[s%o]", (const char *)key, klen, v ? v : json_null()));
    return 0;
}

/* opts: an object with prefix, start, end, limit, reverse (all optional). */
static json_t *op_list(roomd_ctx *ctx, json_t *opts, kv_err *e)
{
    if (opts && !json_is_object(opts))
        return op_fail(e, ROOMD_RPC_INVALID_PARAMS, "list takes an object {prefix, start, end, limit, reverse}");
    json_t *p = json_object_get(opts, "prefix"), *s = json_object_get(opts, "start"),
           *en = json_object_get(opts, "end"), *lim = json_object_get(opts, "limit");
    roomd_range range = {
        .prefix = json_string_value(p), .prefix_len = p ? json_string_length(p) : 0,
        .start = json_string_value(s), .start_len = s ? json_string_length(s) : 0,
        .end = json_string_value(en), .end_len = en ? json_string_length(en) : 0,
        .limit = lim && json_is_integer(lim) ? (uint32_t)json_integer_value(lim) : 100,
        .reverse = json_is_true(json_object_get(opts, "reverse")),
    };
    struct list_ud u = { json_array() };
    int r = roomd_storage_list(ctx, &range, list_one, &u);
    if (r < 0) {
        json_decref(u.items);
        return op_fail(e, r == -E2BIG ? ROOMD_RPC_INVALID_PARAMS : ROOMD_RPC_INTERNAL_ERROR,
                       r == -E2BIG ? "limit is at most 1000" : roomd_storage_error(ctx));
    }
    return u.items;
}

/* --- the JSON message protocol -------------------------------------------- */

static void reply(roomd_ctx *ctx, roomd_conn *conn, json_t *req, json_t *out)
{
    json_t *id = req ? json_object_get(req, "id") : NULL;
    if (id)
        json_object_set(out, "id", id);
    char *text = json_dumps(out, JSON_COMPACT);
    if (text) {
        roomd_send(ctx, conn, ROOMD_TEXT, text, strlen(text));
        free(text);
    }
    json_decref(out);
}

static void kv_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                       const uint8_t *data, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb((const char *)data, len, 0, &jerr);
    const char *op = req ? json_string_value(json_object_get(req, "op")) : NULL;
    json_t *key = req ? json_object_get(req, "key") : NULL;
    kv_err e = { 0, "" };
    json_t *res = NULL;
    const char *field = NULL;
    if (!op) {
        op_fail(&e, 0, "expected a JSON object with \"op\"");
    } else if (strcmp(op, "put") == 0) {
        if ((res = op_put(ctx, key, json_object_get(req, "value"), &e)))
            field = "ok";
    } else if (strcmp(op, "get") == 0) {
        if ((res = op_get(ctx, key, &e)))
            field = "value";
    } else if (strcmp(op, "delete") == 0) {
        if ((res = op_delete(ctx, key, &e)))
            field = "deleted";
    } else if (strcmp(op, "list") == 0) {
        if ((res = op_list(ctx, req, &e)))
            field = "items";
    } else {
        op_fail(&e, 0, "unknown op (put, get, delete, list)");
    }
    reply(ctx, conn, req, res ? json_pack("{s:o}", field, res) : json_pack("{s:s}", "error", e.text));
    json_decref(req);
}

/* --- RPC ---------------------------------------------------------------- */

enum { KV_GET, KV_PUT, KV_DELETE, KV_LIST };

static void rpc_op(roomd_ctx *ctx, roomd_call *call, const char *params, size_t len, int which)
{
    json_error_t je;
    json_t *p = json_loadb(params, len, 0, &je);
    kv_err e = { ROOMD_RPC_INVALID_PARAMS, "params must be an array or an object" };
    json_t *res = NULL;
    if (p) {
        switch (which) {
        case KV_GET: res = op_get(ctx, sh_rpc_param(p, 0, "key"), &e); break;
        case KV_PUT: res = op_put(ctx, sh_rpc_param(p, 0, "key"), sh_rpc_param(p, 1, "value"), &e); break;
        case KV_DELETE: res = op_delete(ctx, sh_rpc_param(p, 0, "key"), &e); break;
        default: res = op_list(ctx, json_is_array(p) ? json_array_get(p, 0) : p, &e); break;
        }
    }
    char *text = res ? json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (text)
        roomd_rpc_result(ctx, call, text, strlen(text));
    else
        roomd_rpc_error(ctx, call, e.code, e.text);
    free(text);
    json_decref(res);
    json_decref(p);
}

static void rpc_get(roomd_ctx *ctx, void *st, roomd_call *call, const char *p, size_t n)
{
    rpc_op(ctx, call, p, n, KV_GET);
}

static void rpc_put(roomd_ctx *ctx, void *st, roomd_call *call, const char *p, size_t n)
{
    rpc_op(ctx, call, p, n, KV_PUT);
}

static void rpc_delete(roomd_ctx *ctx, void *st, roomd_call *call, const char *p, size_t n)
{
    rpc_op(ctx, call, p, n, KV_DELETE);
}

static void rpc_list(roomd_ctx *ctx, void *st, roomd_call *call, const char *p, size_t n)
{
    rpc_op(ctx, call, p, n, KV_LIST);
}

static void rpc_watch(roomd_ctx *ctx, void *st, roomd_call *call, const char *params, size_t len)
{
    json_error_t je;
    json_t *p = json_loadb(params, len, 0, &je);
    json_t *pre = p ? sh_rpc_param(p, 0, "prefix") : NULL;
    if (pre && !json_is_string(pre))
        roomd_rpc_error(ctx, call, ROOMD_RPC_INVALID_PARAMS, "watch(prefix): prefix must be a string");
    else
        roomd_rpc_stream(ctx, call); /* values come from put and delete */
    json_decref(p);
}

static const roomd_method kv_methods[] = {
    { "get", rpc_get, 0 },
    { "put", rpc_put, 0 },
    { "delete", rpc_delete, 0 },
    { "list", rpc_list, 0 },
    { "watch", rpc_watch, ROOMD_METHOD_STREAM },
    { NULL, NULL, 0 },
};

const roomd_class cls_kv = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "kv",
    .create = kv_create,
    .message = kv_message,
    .methods = kv_methods,
};
