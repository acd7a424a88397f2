/* chat: ws-kit's chat example on ws-kit's envelope {"type","meta","payload"}.
 * The object is the room (chat/<room>).
 *
 *   in   JOIN_ROOM     {"room": R, "user"?: NAME}  become a member (R must be
 *                                                  this room; user defaults to
 *                                                  the connection's clientId)
 *   in   SEND_MESSAGE  {"text": T}                 1..4096 bytes, members only
 *   out  ROOM:LIST     {"users": [...]}            to everyone, on every join and
 *                                                  every member's leave
 *   out  ROOM:MESSAGE  {"user": U, "text": T}      to everyone (sender included)
 *   out  ERROR         {"message": why}            to the sender of a bad message
 *
 * The last 100 ROOM:MESSAGEs are kept in the room's storage and replayed,
 * oldest first, to a member when it joins. Members are tagged "member" and
 * their name is the connection's attachment, so both survive hibernation
 * and shard restarts.
 *
 * Any other message is relayed unchanged to every other connection (raw
 * mode: the room as a plain fan-out, which load tests and older clients
 * use); the last 100 of those are replayed to every new connection. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "roomd_module.h"

#define CHAT_HISTORY 100
#define CHAT_MAX_TEXT 4096
#define CHAT_MAX_USER 64
#define CHAT_MEMBER "member"

/* meta.timestamp: wall-clock ms, as ws-kit stamps its messages. */
static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int chat_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

/* --- history: "<prefix><20 digits>" -> record, "<seqkey>" -> last sequence --- */

static void history_add(roomd_ctx *ctx, const char *prefix, const char *seqkey, const void *rec, size_t len)
{
    if (len > 128 * 1024)
        return; /* too big to keep; still delivered */
    const void *v;
    size_t n;
    uint64_t seq = 0;
    if (roomd_storage_get(ctx, seqkey, strlen(seqkey), &v, &n) == 0 && n == sizeof seq)
        memcpy(&seq, v, sizeof seq);
    seq++;
    char key[32];
    int kl = snprintf(key, sizeof key, "%s%020" PRIu64, prefix, seq);
    roomd_storage_put(ctx, key, (size_t)kl, rec, len);
    roomd_storage_put(ctx, seqkey, strlen(seqkey), &seq, sizeof seq);
    if (seq > CHAT_HISTORY) {
        kl = snprintf(key, sizeof key, "%s%020" PRIu64, prefix, seq - CHAT_HISTORY);
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

/* Newest first from storage, handed to send oldest first. */
static void history_replay(roomd_ctx *ctx, roomd_conn *conn, const char *prefix, bool raw)
{
    struct replay r = { .n = 0 };
    roomd_range range = { .prefix = prefix, .prefix_len = strlen(prefix), .limit = CHAT_HISTORY, .reverse = 1 };
    roomd_storage_list(ctx, &range, collect, &r);
    for (size_t i = r.n; i-- > 0;) {
        if (raw)
            roomd_send(ctx, conn, r.recs[i][0], r.recs[i] + 1, r.lens[i] - 1);
        else
            roomd_send(ctx, conn, ROOMD_TEXT, r.recs[i], r.lens[i]);
        free(r.recs[i]);
    }
}

/* --- the envelope ----------------------------------------------------------- */

/* Encode {"type", "meta": {"timestamp"}, "payload"}; takes payload. */
static char *envelope(roomd_ctx *ctx, const char *type, json_t *payload, uint64_t now_ms)
{
    json_t *m = json_pack("{s:s,s:{s:I},s:o}", "type", type, "meta", "timestamp", (json_int_t)now_ms,
                          "payload", payload);
    char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    return text;
}

static void send_error(roomd_ctx *ctx, roomd_conn *conn, uint64_t now, const char *why)
{
    char *t = envelope(ctx, "ERROR", json_pack("{s:s}", "message", why), now);
    if (t)
        roomd_send(ctx, conn, ROOMD_TEXT, t, strlen(t));
    free(t);
}

static const char *member_name(const roomd_conn *c, char *buf, size_t cap)
{
    size_t n;
    const void *a = roomd_conn_attachment(c, &n);
    if (!a || !n || n >= cap)
        return roomd_conn_client_id(c);
    memcpy(buf, a, n);
    buf[n] = '\0';
    return buf;
}

static void broadcast_list(roomd_ctx *ctx, uint64_t now)
{
    roomd_conn *members[1000];
    size_t n = roomd_conns_with_tag(ctx, CHAT_MEMBER, members, 1000);
    json_t *users = json_array();
    for (size_t i = 0; i < n && i < 1000; i++) {
        char buf[CHAT_MAX_USER + 1];
        json_array_append_new(users, json_string(member_name(members[i], buf, sizeof buf)));
    }
    char *t = envelope(ctx, "ROOM:LIST", json_pack("{s:o}", "users", users), now);
    if (t)
        roomd_broadcast(ctx, ROOMD_TEXT, t, strlen(t), NULL);
    free(t);
}

static bool is_member(const roomd_conn *c)
{
    for (size_t i = 0; i < roomd_conn_tag_count(c); i++)
        if (strcmp(roomd_conn_tag(c, i), CHAT_MEMBER) == 0)
            return true;
    return false;
}

static void join_room(roomd_ctx *ctx, roomd_conn *conn, json_t *payload, uint64_t now)
{
    const char *room = json_string_value(json_object_get(payload, "room"));
    json_t *user = json_object_get(payload, "user");
    const char *name = roomd_object_name(ctx);
    char why[160];
    if (!room) {
        send_error(ctx, conn, now, "JOIN_ROOM needs payload.room (a string)");
        return;
    }
    if (strcmp(room, name) != 0) {
        snprintf(why, sizeof why, "this connection is room \"%.40s\"; connect to /chat/<room> to join another",
                 name);
        send_error(ctx, conn, now, why);
        return;
    }
    if (user && (!json_is_string(user) || json_string_length(user) == 0 ||
                 json_string_length(user) > CHAT_MAX_USER)) {
        snprintf(why, sizeof why, "payload.user must be a string of 1..%d bytes", CHAT_MAX_USER);
        send_error(ctx, conn, now, why);
        return;
    }
    if (!is_member(conn)) {
        const char *tags[] = { CHAT_MEMBER };
        roomd_conn_set_tags(ctx, conn, tags, 1);
        history_replay(ctx, conn, "e:", false);
    }
    if (user)
        roomd_conn_set_attachment(ctx, conn, json_string_value(user), json_string_length(user));
    broadcast_list(ctx, now);
}

static void send_message(roomd_ctx *ctx, roomd_conn *conn, json_t *payload, uint64_t now)
{
    json_t *text = json_object_get(payload, "text");
    char why[96];
    if (!is_member(conn)) {
        send_error(ctx, conn, now, "send JOIN_ROOM before SEND_MESSAGE");
        return;
    }
    if (!json_is_string(text) || json_string_length(text) == 0 || json_string_length(text) > CHAT_MAX_TEXT) {
        snprintf(why, sizeof why, "SEND_MESSAGE needs payload.text: a string of 1..%d bytes", CHAT_MAX_TEXT);
        send_error(ctx, conn, now, why);
        return;
    }
    char buf[CHAT_MAX_USER + 1];
    char *t = envelope(ctx, "ROOM:MESSAGE",
                       json_pack("{s:s,s:O}", "user", member_name(conn, buf, sizeof buf), "text", text), now);
    if (!t)
        return;
    roomd_broadcast(ctx, ROOMD_TEXT, t, strlen(t), NULL);
    history_add(ctx, "e:", "eseq", t, strlen(t));
    free(t);
}

/* JOIN_ROOM / SEND_MESSAGE envelopes: true when handled (or answered with
 * ERROR); false for anything else, which is relayed raw. */
static bool envelope_message(roomd_ctx *ctx, roomd_conn *conn, const uint8_t *data, size_t len)
{
    if (!len || data[0] != '{' || !memmem(data, len, "\"type\"", 6))
        return false;
    json_error_t je;
    json_t *m = json_loadb((const char *)data, len, 0, &je);
    const char *type = json_string_value(json_object_get(m, "type"));
    bool join = type && strcmp(type, "JOIN_ROOM") == 0, send = type && strcmp(type, "SEND_MESSAGE") == 0;
    if (join || send) {
        json_t *payload = json_object_get(m, "payload");
        uint64_t now = now_ms();
        if (!json_is_object(payload))
            send_error(ctx, conn, now, "payload must be an object");
        else if (join)
            join_room(ctx, conn, payload, now);
        else
            send_message(ctx, conn, payload, now);
    }
    json_decref(m);
    return join || send;
}

static void chat_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                         const uint8_t *data, size_t len)
{
    if (opcode == ROOMD_TEXT && envelope_message(ctx, conn, data, len))
        return;
    roomd_broadcast(ctx, opcode, data, len, conn);
    uint8_t *rec = malloc(len + 1);
    if (!rec)
        return;
    rec[0] = (uint8_t)opcode;
    memcpy(rec + 1, data, len);
    history_add(ctx, "m:", "seq", rec, len + 1);
    free(rec);
}

static int chat_connect(roomd_ctx *ctx, void *state, roomd_conn *conn, const roomd_request *req)
{
    history_replay(ctx, conn, "m:", true);
    return 0;
}

static void chat_close(roomd_ctx *ctx, void *state, roomd_conn *conn, int code, const char *reason,
                       size_t reason_len)
{
    if (is_member(conn))
        broadcast_list(ctx, now_ms());
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
    .close = chat_close,
    .http = chat_http,
};
