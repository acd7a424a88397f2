/* kv: durable key/value for apps that just need shared state. JSON messages
 * (every reply carries the request's "id" when it had one):
 *   {"op":"put","key":K,"value":V}             -> {"ok":true}
 *   {"op":"get","key":K}                       -> {"value":V} (null when absent)
 *   {"op":"delete","key":K}                    -> {"deleted":true|false}
 *   {"op":"list","prefix":P,"start":S,"end":E,"limit":N,"reverse":B}
 *                                              -> {"items":[[K,V],...]}
 * Keys are strings (1..2048 bytes), values any JSON (stored as its text, at
 * most 128 KiB). Replies follow the commit (the output gate). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "roomd_module.h"

static int kv_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

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

static void reply_error(roomd_ctx *ctx, roomd_conn *conn, json_t *req, const char *msg)
{
    reply(ctx, conn, req, json_pack("{s:s}", "error", msg));
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

static void kv_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                       const uint8_t *data, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb((const char *)data, len, 0, &jerr);
    const char *op = req ? json_string_value(json_object_get(req, "op")) : NULL;
    json_t *jkey = req ? json_object_get(req, "key") : NULL;
    const char *key = json_string_value(jkey);
    size_t klen = key ? json_string_length(jkey) : 0;
    if (!op) {
        reply_error(ctx, conn, req, "expected a JSON object with \"op\"");
    } else if (strcmp(op, "put") == 0 || strcmp(op, "get") == 0 || strcmp(op, "delete") == 0) {
        if (!key || !klen) {
            reply_error(ctx, conn, req, "\"key\" must be a non-empty string");
        } else if (op[0] == 'p') {
            json_t *v = json_object_get(req, "value");
            char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            int r = text ? roomd_storage_put(ctx, key, klen, text, strlen(text)) : -EINVAL;
            free(text);
            if (r < 0)
                reply_error(ctx, conn, req, r == -E2BIG ? "key or value too large"
                                                        : !v ? "\"value\" is missing" : roomd_storage_error(ctx));
            else
                reply(ctx, conn, req, json_pack("{s:b}", "ok", 1));
        } else if (op[0] == 'g') {
            const void *v;
            size_t vl;
            int r = roomd_storage_get(ctx, key, klen, &v, &vl);
            if (r == -ENOENT) {
                reply(ctx, conn, req, json_pack("{s:n}", "value"));
            } else if (r < 0) {
                reply_error(ctx, conn, req, roomd_storage_error(ctx));
            } else {
                json_t *val = json_loadb(v, vl, JSON_DECODE_ANY, &jerr);
                reply(ctx, conn, req, json_pack("{s:o}", "value", val ? val : json_null()));
            }
        } else {
            int r = roomd_storage_delete(ctx, key, klen);
            if (r < 0 && r != -ENOENT)
                reply_error(ctx, conn, req, roomd_storage_error(ctx));
            else
                reply(ctx, conn, req, json_pack("{s:b}", "deleted", r == 0));
        }
    } else if (strcmp(op, "list") == 0) {
        json_t *p = json_object_get(req, "prefix"), *s = json_object_get(req, "start"),
               *e = json_object_get(req, "end"), *lim = json_object_get(req, "limit");
        roomd_range range = {
            .prefix = json_string_value(p), .prefix_len = p ? json_string_length(p) : 0,
            .start = json_string_value(s), .start_len = s ? json_string_length(s) : 0,
            .end = json_string_value(e), .end_len = e ? json_string_length(e) : 0,
            .limit = lim && json_is_integer(lim) ? (uint32_t)json_integer_value(lim) : 100,
            .reverse = json_is_true(json_object_get(req, "reverse")),
        };
        struct list_ud u = { json_array() };
        int r = roomd_storage_list(ctx, &range, list_one, &u);
        if (r < 0) {
            json_decref(u.items);
            reply_error(ctx, conn, req, r == -E2BIG ? "limit is at most 1000" : roomd_storage_error(ctx));
        } else {
            reply(ctx, conn, req, json_pack("{s:o}", "items", u.items));
        }
    } else {
        reply_error(ctx, conn, req, "unknown op (put, get, delete, list)");
    }
    json_decref(req);
}

const roomd_class cls_kv = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "kv",
    .create = kv_create,
    .message = kv_message,
};
