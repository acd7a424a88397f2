/* echo: Cloudflare's "Build a WebSocket server" Durable Object, exactly
 * (seeds/do-websocket-server.txt). Its counter is the number of open
 * connections of this object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roomd_module.h"

static const char prefix[] = "[Durable Object]: ";
static const char usage[] =
    "\n"
    "This Durable Object supports the following endpoints:\n"
    "/websocket\n"
    "- Creates a WebSocket connection. Any messages sent to it are echoed with a prefix.\n"
    "/getCurrentConnections\n"
    "- A regular HTTP GET endpoint that returns the number of currently connected WebSocket clients.\n";

static int echo_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

static void echo_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                         const uint8_t *data, size_t len)
{
    /* Small messages are assembled on the stack; the rest on the heap. */
    uint8_t stackbuf[4096];
    size_t n = sizeof prefix - 1 + len;
    uint8_t *out = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!out)
        return;
    memcpy(out, prefix, sizeof prefix - 1);
    memcpy(out + sizeof prefix - 1, data, len);
    roomd_send(ctx, conn, opcode, out, n);
    if (out != stackbuf)
        free(out);
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static void echo_http(roomd_ctx *ctx, void *state, const roomd_request *req)
{
    if (req->path_len == 0 || ends_with(req->path, req->path_len, "/websocket")) {
        /* A WebSocket request would not be here: the gateway upgrades those. */
        static const char msg[] = "Durable Object expected Upgrade: websocket";
        roomd_http_reply(ctx, 426, NULL, msg, sizeof msg - 1);
        return;
    }
    if (ends_with(req->path, req->path_len, "/getCurrentConnections")) {
        char body[160];
        size_t n = roomd_conn_count(ctx);
        int len = n == 1
            ? snprintf(body, sizeof body,
                       "There is %zu WebSocket client connected to this Durable Object instance.", n)
            : snprintf(body, sizeof body,
                       "There are %zu WebSocket clients connected to this Durable Object instance.", n);
        roomd_http_reply(ctx, 200, NULL, body, (size_t)len);
        return;
    }
    roomd_http_reply(ctx, 200, NULL, usage, sizeof usage - 1);
}

const roomd_class cls_echo = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "echo",
    .create = echo_create,
    .message = echo_message,
    .http = echo_http,
};
