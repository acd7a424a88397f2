/* A test module for the browser-side features. Class "whoami": shows the
 * JWT claims a connection or request came with ("anonymous" without), and
 * refuses connections whose claims say "banned":true (the connect callback
 * deciding from the claims). */
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

int roomd_module_init(roomd_loader *ld);

int roomd_module_init(roomd_loader *ld)
{
    return roomd_class_register(ld, &whoami);
}
