/* counter: the Shared Exports example's Counter, durable.
 *
 * RPC methods (JSON-RPC over the WebSocket, POST .../rpc/<method>, and the
 * Counter class of /exports.js):
 *   increment(by = 1) -> the new value      getCount() -> the value
 *   init(initial = 0) -> the value; sets it only if the counter was never set
 *                        (what `new Counter(0)` of /exports.js calls)
 *   watch()           -> stream: the value now, then after every change
 * The older JSON messages still work:
 *   {"op":"increment"} or {"op":"increment","by":N}  ->  {"value":N}
 *   {"op":"get"}                                        ->  {"value":N}
 * Answers follow the commit (the output gate), so a client that saw N knows
 * N survives a crash. GET /counter/<name> answers the value as text. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "roomd_module.h"
#include "rpc_codec.h"

static int counter_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

/* The value, 0 when never set (*ret_set false); *ret_err < 0 when storage failed. */
static int64_t load(roomd_ctx *ctx, int *ret_err, bool *ret_set)
{
    const void *v;
    size_t n;
    int r = roomd_storage_get(ctx, "count", 5, &v, &n);
    *ret_err = r == -ENOENT ? 0 : r;
    if (ret_set)
        *ret_set = r == 0;
    if (r < 0 || n != sizeof(int64_t))
        return 0;
    int64_t x;
    memcpy(&x, v, sizeof x);
    return x;
}

/* Store value and tell every watch() stream. */
static int store(roomd_ctx *ctx, int64_t value)
{
    int r = roomd_storage_put(ctx, "count", 5, &value, sizeof value);
    if (r < 0)
        return r;
    char out[24];
    int n = snprintf(out, sizeof out, "%" PRId64, value);
    roomd_stream_emit_all(ctx, "watch", out, (size_t)n);
    return 0;
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
    int64_t value = load(ctx, &err, NULL);
    if (err < 0) {
        reply_error(ctx, conn, "storage unavailable");
        json_decref(msg);
        return;
    }
    if (strcmp(op, "increment") == 0) {
        json_t *by = json_object_get(msg, "by");
        value += by && json_is_integer(by) ? json_integer_value(by) : 1;
        if (store(ctx, value) < 0) {
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

static void result_int(roomd_ctx *ctx, roomd_call *call, int64_t v)
{
    char out[24];
    int n = snprintf(out, sizeof out, "%" PRId64, v);
    roomd_rpc_result(ctx, call, out, (size_t)n);
}

/* The optional integer parameter `name` (position 0): 0 and *ret, or
 * -EINVAL after answering the call with an invalid-params error. */
static int int_param(roomd_ctx *ctx, roomd_call *call, const char *params, size_t len,
                     const char *method, const char *name, int64_t *ret)
{
    json_error_t je;
    json_t *p = len > 2 ? json_loadb(params, len, 0, &je) : NULL;
    json_t *v = p ? sh_rpc_param(p, 0, name) : NULL;
    int r = 0;
    if (v && !json_is_integer(v)) {
        char why[96];
        snprintf(why, sizeof why, "%s(%s): %s must be an integer", method, name, name);
        roomd_rpc_error(ctx, call, ROOMD_RPC_INVALID_PARAMS, why);
        r = -EINVAL;
    } else if (v) {
        *ret = json_integer_value(v);
    }
    json_decref(p);
    return r;
}

static void rpc_increment(roomd_ctx *ctx, void *state, roomd_call *call, const char *params, size_t len)
{
    int64_t by = 1;
    int err;
    if (int_param(ctx, call, params, len, "increment", "by", &by) < 0)
        return;
    int64_t value = load(ctx, &err, NULL) + by;
    if (err < 0 || store(ctx, value) < 0) {
        roomd_rpc_error(ctx, call, ROOMD_RPC_INTERNAL_ERROR, "storage unavailable");
        return;
    }
    result_int(ctx, call, value);
}

static void rpc_get_count(roomd_ctx *ctx, void *state, roomd_call *call, const char *params, size_t len)
{
    int err;
    int64_t value = load(ctx, &err, NULL);
    if (err < 0)
        roomd_rpc_error(ctx, call, ROOMD_RPC_INTERNAL_ERROR, "storage unavailable");
    else
        result_int(ctx, call, value);
}

static void rpc_init(roomd_ctx *ctx, void *state, roomd_call *call, const char *params, size_t len)
{
    int64_t initial = 0;
    int err;
    bool set;
    if (int_param(ctx, call, params, len, "init", "initial", &initial) < 0)
        return;
    int64_t value = load(ctx, &err, &set);
    if (err >= 0 && !set && (err = store(ctx, initial)) == 0)
        value = initial;
    if (err < 0)
        roomd_rpc_error(ctx, call, ROOMD_RPC_INTERNAL_ERROR, "storage unavailable");
    else
        result_int(ctx, call, value);
}

static void rpc_watch(roomd_ctx *ctx, void *state, roomd_call *call, const char *params, size_t len)
{
    int err;
    int64_t value = load(ctx, &err, NULL);
    if (err < 0) {
        roomd_rpc_error(ctx, call, ROOMD_RPC_INTERNAL_ERROR, "storage unavailable");
        return;
    }
    roomd_stream *s = roomd_rpc_stream(ctx, call);
    if (!s)
        return; /* refused (limit): the call was answered with the reason */
    char out[24];
    int n = snprintf(out, sizeof out, "%" PRId64, value);
    roomd_stream_emit(ctx, s, out, (size_t)n);
}

static void counter_http(roomd_ctx *ctx, void *state, const roomd_request *req)
{
    int err;
    int64_t value = load(ctx, &err, NULL);
    char out[64];
    int n = snprintf(out, sizeof out, "%" PRId64 "\n", value);
    if (err < 0)
        roomd_http_reply(ctx, 503, NULL, "storage unavailable\n", 20);
    else
        roomd_http_reply(ctx, 200, NULL, out, (size_t)n);
}

static const roomd_method counter_methods[] = {
    { "increment", rpc_increment, 0 },
    { "getCount", rpc_get_count, 0 },
    { "init", rpc_init, 0 },
    { "watch", rpc_watch, ROOMD_METHOD_STREAM },
    { NULL, NULL, 0 },
};

const roomd_class cls_counter = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "counter",
    .create = counter_create,
    .message = counter_message,
    .http = counter_http,
    .methods = counter_methods,
};
