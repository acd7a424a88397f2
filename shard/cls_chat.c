/* chat: every message a member sends goes to every other member of the
 * room; the sender gets no copy. The last 100 messages are kept in the
 * room's storage and replayed, oldest first, to a member who joins. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roomd_module.h"

#define CHAT_HISTORY 100

static int chat_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

/* Keys: "seq" -> the last sequence number; "m:<20 digits>" -> opcode byte + payload. */
static uint64_t last_seq(roomd_ctx *ctx)
{
    const void *v;
    size_t n;
    uint64_t seq = 0;
    if (roomd_storage_get(ctx, "seq", 3, &v, &n) == 0 && n == sizeof seq)
        memcpy(&seq, v, sizeof seq);
    return seq;
}

static void chat_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                         const uint8_t *data, size_t len)
{
    roomd_broadcast(ctx, opcode, data, len, conn);
    if (len + 1 > 128 * 1024)
        return; /* too big to keep; still relayed */
    uint64_t seq = last_seq(ctx) + 1;
    char key[32];
    int kl = snprintf(key, sizeof key, "m:%020" PRIu64, seq);
    uint8_t *rec = malloc(len + 1);
    if (!rec)
        return;
    rec[0] = (uint8_t)opcode;
    memcpy(rec + 1, data, len);
    roomd_storage_put(ctx, key, (size_t)kl, rec, len + 1);
    free(rec);
    roomd_storage_put(ctx, "seq", 3, &seq, sizeof seq);
    if (seq > CHAT_HISTORY) {
        kl = snprintf(key, sizeof key, "m:%020" PRIu64, seq - CHAT_HISTORY);
        roomd_storage_delete(ctx, key, (size_t)kl);
    }
}

struct replay {
    uint8_t *recs[CHAT_HISTORY];
    size_t lens[CHAT_HISTORY];
    size_t n;
};

static int collect(void *ud, const uint8_t *key, size_t klen, const uint8_t *value, size_t vlen)
{
    struct replay *r = ud;
    if (vlen < 1 || r->n == CHAT_HISTORY)
        return 1;
    r->recs[r->n] = malloc(vlen);
    if (!r->recs[r->n])
        return -ENOMEM;
    memcpy(r->recs[r->n], value, vlen);
    r->lens[r->n++] = vlen;
    return 0;
}

static int chat_connect(roomd_ctx *ctx, void *state, roomd_conn *conn, const roomd_request *req)
{
    /* Newest first from storage, sent oldest first. */
    struct replay r = { .n = 0 };
    roomd_range range = { .prefix = "m:", .prefix_len = 2, .limit = CHAT_HISTORY, .reverse = 1 };
    roomd_storage_list(ctx, &range, collect, &r);
    for (size_t i = r.n; i-- > 0;) {
        roomd_send(ctx, conn, r.recs[i][0], r.recs[i] + 1, r.lens[i] - 1);
        free(r.recs[i]);
    }
    return 0;
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
    .connect = chat_connect,
    .message = chat_message,
    .http = chat_http,
};
