/* mirror: every message comes back unchanged, text as text, binary as
 * binary. The endpoint conformance suites run against. */
#include "roomd_module.h"

static int mirror_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

static void mirror_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                           const uint8_t *data, size_t len)
{
    roomd_send(ctx, conn, opcode, data, len);
}

const roomd_class cls_mirror = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "mirror",
    .create = mirror_create,
    .message = mirror_message,
};
