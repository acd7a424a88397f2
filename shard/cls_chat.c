/* chat: every message a member sends goes to every other member of the
 * room; the sender gets no copy. */
#include "roomd_module.h"

static int chat_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

static void chat_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                         const uint8_t *data, size_t len)
{
    roomd_broadcast(ctx, opcode, data, len, conn);
}

static void chat_http(roomd_ctx *ctx, void *state, const roomd_request *req)
{
    static const char msg[] = "chat rooms are WebSocket endpoints: connect with Upgrade: websocket";
    roomd_http_reply(ctx, 426, NULL, msg, sizeof msg - 1);
}

const roomd_class cls_chat = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "chat",
    .create = chat_create,
    .message = chat_message,
    .http = chat_http,
};
