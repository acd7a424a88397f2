/* counter: the Shared Exports example's Counter, durable. JSON messages:
 *   {"op":"increment"} or {"op":"increment","by":N}  ->  {"value":N}
 *   {"op":"get"}                                        ->  {"value":N}
 * The reply is sent after the increment is committed (the output gate), so
 * a client that saw {"value":N} knows N survives a crash.
 * GET /counter/<name> answers the value as text. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "roomd_module.h"

static int counter_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

static int64_t load(roomd_ctx *ctx, int *ret_err)
{
    const void *v;
    size_t n;
    int r = roomd_storage_get(ctx, "count", 5, &v, &n);
    *ret_err = r == -ENOENT ? 0 : r;
    if (r < 0 || n != sizeof(int64_t))
        return 0;
    int64_t x;
    memcpy(&x, v, sizeof x);
    return x;
}

static void reply_error(roomd_ctx *ctx, roomd_conn *conn, const char *what)
{
    char out[256];
    int n = snprintf(out, sizeof out, "{\"error\":\"%s\"}", what);
    roomd_send(ctx, conn, ROOMD_TEXT, out, (size_t)n);
}

static void counter_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                            const uint8_t *data, size_t len)
{
    json_error_t jerr;
    json_t *msg = json_loadb((const char *)data, len, 0, &jerr);
    const char *op = msg ? json_string_value(json_object_get(msg, "op")) : NULL;
    if (!op) {
        reply_error(ctx, conn, "expected {\\\"op\\\":\\\"increment\\\"} or {\\\"op\\\":\\\"get\\\"}");
        json_decref(msg);
        return;
    }
    int err;
    int64_t value = load(ctx, &err);
    if (err < 0) {
        reply_error(ctx, conn, "storage unavailable");
        json_decref(msg);
        return;
    }
    if (strcmp(op, "increment") == 0) {
        json_t *by = json_object_get(msg, "by");
        value += by && json_is_integer(by) ? json_integer_value(by) : 1;
        if (roomd_storage_put(ctx, "count", 5, &value, sizeof value) < 0) {
            reply_error(ctx, conn, "storage unavailable");
            json_decref(msg);
            return;
        }
    } else if (strcmp(op, "get") != 0) {
        reply_error(ctx, conn, "unknown op");
        json_decref(msg);
        return;
    }
    char out[64];
    int n = snprintf(out, sizeof out, "{\"value\":%" PRId64 "}", value);
    roomd_send(ctx, conn, ROOMD_TEXT, out, (size_t)n);
    json_decref(msg);
}

static void counter_http(roomd_ctx *ctx, void *state, const roomd_request *req)
{
    int err;
    int64_t value = load(ctx, &err);
    char out[64];
    int n = snprintf(out, sizeof out, "%" PRId64 "\n", value);
    if (err < 0)
        roomd_http_reply(ctx, 503, NULL, "storage unavailable\n", 20);
    else
        roomd_http_reply(ctx, 200, NULL, out, (size_t)n);
}

const roomd_class cls_counter = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "counter",
    .create = counter_create,
    .message = counter_message,
    .http = counter_http,
};
