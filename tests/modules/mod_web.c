/* A test module for the browser-side features.
 * Class "whoami": shows the JWT claims a connection or request came with
 * ("anonymous" without), and refuses connections whose claims say
 * "banned":true (the connect callback deciding from the claims).
 * Class "greeter": a user class with RPC methods, built against the header
 * alone (no JSON library): hello(name) -> "hello, <name>"; countdown(n) ->
 * a stream of n, n-1, ..., 1 that the class itself ends with "liftoff".
 * Class "legacy": a version 1 table (no methods), which must still load. */
#include <stdio.h>
#include <string.h>

#include "roomd_module.h"

static int whoami_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

static int whoami_connect(roomd_ctx *ctx, void *state, roomd_conn *conn, const roomd_request *req)
{
    size_t n;
    const char *claims = roomd_ctx_claims(ctx, &n);
    if (claims && memmem(claims, n, "\"banned\":true", 13)) {
        roomd_reject(ctx, 403, "banned by the whoami class");
        return -1;
    }
    return 0;
}

static void whoami_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                           const uint8_t *data, size_t len)
{
    size_t n;
    const char *claims = roomd_conn_claims(conn, &n);
    roomd_send(ctx, conn, ROOMD_TEXT, claims ? claims : "anonymous", claims ? n : 9);
}

static void whoami_http(roomd_ctx *ctx, void *state, const roomd_request *req)
{
    size_t n;
    const char *claims = roomd_ctx_claims(ctx, &n);
    roomd_http_reply(ctx, 200, "application/json", claims ? claims : "\"anonymous\"", claims ? n : 11);
}

static const roomd_class whoami = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "whoami",
    .create = whoami_create,
    .connect = whoami_connect,
    .message = whoami_message,
    .http = whoami_http,
};

static int greeter_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

/* The first string in params (["x"] or {"name":"x"}): crude but enough for
 * a test module without a JSON parser. */
static int first_string(const char *p, size_t n, char *out, size_t cap)
{
    const char *q = memchr(p, '"', n);
    if (q && p[0] == '{') { /* skip the key */
        const char *colon = memchr(q, ':', n - (size_t)(q - p));
        q = colon ? memchr(colon, '"', n - (size_t)(colon - p)) : NULL;
    }
    if (!q)
        return -1;
    const char *e = memchr(q + 1, '"', n - (size_t)(q + 1 - p));
    if (!e || (size_t)(e - q - 1) >= cap)
        return -1;
    memcpy(out, q + 1, (size_t)(e - q - 1));
    out[e - q - 1] = '\0';
    return 0;
}

static void greeter_hello(roomd_ctx *ctx, void *state, roomd_call *call, const char *params, size_t len)
{
    char name[64], out[96];
    if (first_string(params, len, name, sizeof name) < 0 || strchr(name, '\\')) {
        roomd_rpc_error(ctx, call, ROOMD_RPC_INVALID_PARAMS, "hello(name): name must be a short string");
        return;
    }
    int n = snprintf(out, sizeof out, "\"hello, %s\"", name);
    roomd_rpc_result(ctx, call, out, (size_t)n);
}

static void greeter_countdown(roomd_ctx *ctx, void *state, roomd_call *call, const char *params, size_t len)
{
    int n = 0;
    if (sscanf(params, "[%d]", &n) != 1 || n < 0 || n > 100) {
        roomd_rpc_error(ctx, call, 4000, "countdown(n): n must be 0..100");
        return;
    }
    roomd_stream *s = roomd_rpc_stream(ctx, call);
    if (!s)
        return;
    for (int i = n; i > 0; i--) {
        char v[16];
        int vl = snprintf(v, sizeof v, "%d", i);
        roomd_stream_emit(ctx, s, v, (size_t)vl);
    }
    roomd_stream_end(ctx, s, "\"liftoff\"", 9);
}

static const roomd_method greeter_methods[] = {
    { "hello", greeter_hello, 0 },
    { "countdown", greeter_countdown, ROOMD_METHOD_STREAM },
    { NULL, NULL, 0 },
};

static const roomd_class greeter = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "greeter",
    .create = greeter_create,
    .methods = greeter_methods,
};

static void legacy_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                           const uint8_t *data, size_t len)
{
    roomd_send(ctx, conn, opcode, data, len);
}

static const roomd_class legacy = {
    .version = 1,
    .name = "legacy",
    .create = greeter_create,
    .message = legacy_message,
};

int roomd_module_init(roomd_loader *ld);

int roomd_module_init(roomd_loader *ld)
{
    int r = roomd_class_register(ld, &whoami);
    if (r == 0)
        r = roomd_class_register(ld, &greeter);
    if (r == 0)
        r = roomd_class_register(ld, &legacy);
    return r;
}
