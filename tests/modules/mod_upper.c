/* A test module loaded with `roomd-shard --module`: class "upper" answers
 * every text message upper-cased. Its HTTP answer shows its connections,
 * the messages this instance has seen (in memory: gone when it hibernates)
 * and how many times create ran in this process. */
#include <stdio.h>
#include <stdlib.h>

#include "roomd_module.h"

static unsigned long creates;

static int upper_create(roomd_ctx *ctx, void **ret_state)
{
    unsigned long *msgs = calloc(1, sizeof *msgs);
    if (!msgs)
        return -12; /* -ENOMEM */
    creates++;
    *ret_state = msgs;
    return 0;
}

static void upper_destroy(roomd_ctx *ctx, void *state)
{
    free(state);
}

static void upper_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                          const uint8_t *data, size_t len)
{
    ++*(unsigned long *)state;
    char *out = malloc(len ? len : 1);
    if (!out)
        return;
    for (size_t i = 0; i < len; i++)
        out[i] = data[i] >= 'a' && data[i] <= 'z' ? (char)(data[i] - 32) : (char)data[i];
    roomd_send(ctx, conn, opcode, out, len);
    free(out);
}

static void upper_http(roomd_ctx *ctx, void *state, const roomd_request *req)
{
    char body[128];
    int n = snprintf(body, sizeof body, "conns=%zu msgs=%lu creates=%lu\n", roomd_conn_count(ctx),
                     *(unsigned long *)state, creates);
    roomd_http_reply(ctx, 200, NULL, body, (size_t)n);
}

static const roomd_class upper = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "upper",
    .create = upper_create,
    .message = upper_message,
    .http = upper_http,
    .destroy = upper_destroy,
};

int roomd_module_init(roomd_loader *ld);

int roomd_module_init(roomd_loader *ld)
{
    return roomd_class_register(ld, &upper);
}
