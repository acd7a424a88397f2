/* A test module loaded with `roomd-shard --module`: class "upper" answers
 * every text message upper-cased. Its HTTP answer shows its connections,
 * the messages this instance has seen (in memory: gone when it hibernates)
 * and how many times create ran in this process. */
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

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

/* Class "meta": drives attachments, tags and auto-responses from text
 * commands, for the integration tests.
 *   connect with ?tags=a,b    -> tags a and b, attachment "joined:<query>"
 *   "whoami"                  -> "att=<attachment> tags=<t1>,<t2>"
 *   "settag <t>"              -> tags replaced by <t>
 *   "tagged <t> <text>"       -> <text> to every connection tagged <t>
 *   "autoresp <req> <resp>"   -> the object's auto-response pair
 *   "autoat"                  -> "yes" if the gateway auto-responded on this connection
 *   "alarm <ms>"              -> sets the object's alarm <ms> from now; replies "alarm set"
 *   "alarmfail <ms>"          -> the same, and the next attempt fails once (a retry follows)
 * The alarm handler counts its runs in storage and broadcasts
 * "alarm fired <count> retries=<n>". GET answers "alarms=<count>". */
static int fail_next;
static int meta_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

static int meta_connect(roomd_ctx *ctx, void *state, roomd_conn *conn, const roomd_request *req)
{
    char att[300], q[256];
    snprintf(q, sizeof q, "%.*s", (int)req->query_len, req->query);
    int n = snprintf(att, sizeof att, "joined:%s", q);
    roomd_conn_set_attachment(ctx, conn, att, (size_t)n);
    if (strncmp(q, "tags=", 5) == 0) {
        const char *tags[10];
        size_t nt = 0;
        char *save = NULL;
        for (char *t = strtok_r(q + 5, ",", &save); t && nt < 10; t = strtok_r(NULL, ",", &save))
            tags[nt++] = t;
        roomd_conn_set_tags(ctx, conn, tags, nt);
    }
    return 0;
}

static void meta_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                         const uint8_t *data, size_t len)
{
    char cmd[512], out[1024];
    snprintf(cmd, sizeof cmd, "%.*s", (int)len, (const char *)data);
    if (strcmp(cmd, "whoami") == 0) {
        size_t al;
        const char *a = roomd_conn_attachment(conn, &al);
        int n = snprintf(out, sizeof out, "att=%.*s tags=", (int)al, a ? a : "");
        for (size_t i = 0; i < roomd_conn_tag_count(conn); i++)
            n += snprintf(out + n, sizeof out - (size_t)n, "%s%s", i ? "," : "", roomd_conn_tag(conn, i));
        roomd_send(ctx, conn, ROOMD_TEXT, out, (size_t)n);
    } else if (strncmp(cmd, "settag ", 7) == 0) {
        const char *t = cmd + 7;
        roomd_conn_set_tags(ctx, conn, &t, 1);
    } else if (strncmp(cmd, "tagged ", 7) == 0) {
        char *sp = strchr(cmd + 7, ' ');
        if (sp) {
            *sp = '\0';
            roomd_broadcast_tag(ctx, cmd + 7, ROOMD_TEXT, sp + 1, strlen(sp + 1), NULL);
        }
    } else if (strncmp(cmd, "autoresp ", 9) == 0) {
        char *sp = strchr(cmd + 9, ' ');
        if (sp) {
            *sp = '\0';
            roomd_set_auto_response(ctx, cmd + 9, sp + 1);
        }
    } else if (strncmp(cmd, "alarm ", 6) == 0 || strncmp(cmd, "alarmfail ", 10) == 0) {
        bool failing = cmd[5] == 'f';
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        uint64_t ms = strtoull(cmd + (failing ? 10 : 6), NULL, 10);
        if (failing)
            fail_next = 1;
        int r = roomd_alarm_set(ctx, now + ms);
        const char *out2 = r == 0 ? "alarm set" : "alarm error";
        roomd_send(ctx, conn, ROOMD_TEXT, out2, strlen(out2));
    } else if (strcmp(cmd, "autoat") == 0) {
        const char *yes = roomd_conn_auto_response_at(conn) ? "yes" : "no";
        roomd_send(ctx, conn, ROOMD_TEXT, yes, strlen(yes));
    }
}

static uint64_t alarm_count(roomd_ctx *ctx)
{
    const void *v;
    size_t n;
    uint64_t c = 0;
    if (roomd_storage_get(ctx, "alarms", 6, &v, &n) == 0 && n == sizeof c)
        memcpy(&c, v, sizeof c);
    return c;
}

static int meta_alarm(roomd_ctx *ctx, void *state, unsigned retries)
{
    if (fail_next > 0) {
        fail_next--;
        return -5; /* -EIO: try again */
    }
    uint64_t c = alarm_count(ctx) + 1;
    roomd_storage_put(ctx, "alarms", 6, &c, sizeof c);
    char out[96];
    int n = snprintf(out, sizeof out, "alarm fired %llu retries=%u", (unsigned long long)c, retries);
    roomd_broadcast(ctx, ROOMD_TEXT, out, (size_t)n, NULL);
    return 0;
}

static void meta_http(roomd_ctx *ctx, void *state, const roomd_request *req)
{
    char out[64];
    int n = snprintf(out, sizeof out, "alarms=%llu\n", (unsigned long long)alarm_count(ctx));
    roomd_http_reply(ctx, 200, NULL, out, (size_t)n);
}

static const roomd_class meta = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "meta",
    .create = meta_create,
    .connect = meta_connect,
    .message = meta_message,
    .http = meta_http,
    .alarm = meta_alarm,
};

/* Class "fed": drives roomd_federate from text commands, for the tests.
 *   "fed <k1>,<k2>,... <text>"           -> federate <text> to the keys; replies "id <id>"
 *                                           (or "err <errno>")
 *   "fedf <prefix> <k1>,<k2>,... <text>" -> the same, only to keys starting with <prefix>
 * Its federate callback sends "got from=<from_key> <text>" to its members;
 * its federate_result sends them "result id=<id> <key>=<status>:<holders> ..."
 * and keeps it in storage. GET answers the last result; POST with the body
 * "<k1>,<k2>,... <text>" federates from an object without members (its
 * result then arrives after it was evicted: it is built again for it). */
static int fed_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

static int has_prefix(void *ud, const char *key)
{
    return strncmp(key, ud, strlen(ud)) == 0;
}

/* "<keys> <text>": federate text to the comma-separated keys. */
static int64_t fed_run(roomd_ctx *ctx, char *cmd, const char *prefix)
{
    char *sp = strchr(cmd, ' ');
    const char *text = sp ? sp + 1 : "";
    if (sp)
        *sp = '\0';
    const char *keys[64];
    size_t n = 0;
    char *save = NULL;
    for (char *k = strtok_r(cmd, ",", &save); k && n < 64; k = strtok_r(NULL, ",", &save))
        keys[n++] = k;
    return roomd_federate(ctx, keys, n, text, strlen(text), prefix ? has_prefix : NULL, (void *)prefix);
}

static void fed_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                        const uint8_t *data, size_t len)
{
    char cmd[4096], out[64];
    snprintf(cmd, sizeof cmd, "%.*s", (int)len, (const char *)data);
    int64_t id;
    if (strncmp(cmd, "fed ", 4) == 0) {
        id = fed_run(ctx, cmd + 4, NULL);
    } else if (strncmp(cmd, "fedf ", 5) == 0) {
        char *sp = strchr(cmd + 5, ' ');
        if (!sp)
            return;
        *sp = '\0';
        id = fed_run(ctx, sp + 1, cmd + 5);
    } else {
        return;
    }
    int n = snprintf(out, sizeof out, id > 0 ? "id %lld" : "err %lld", (long long)id);
    roomd_send(ctx, conn, ROOMD_TEXT, out, (size_t)n);
}

/* This instance's members only: every instance holding the key gets its own
 * federate call (roomd_broadcast would reach the other cells' members too). */
static void send_local(roomd_ctx *ctx, const char *text, size_t len)
{
    roomd_conn *c;
    for (size_t i = 0; (c = roomd_conn_at(ctx, i)); i++)
        roomd_send(ctx, c, ROOMD_TEXT, text, len);
}

static void fed_federate(roomd_ctx *ctx, void *state, const char *from_key, const uint8_t *data,
                         size_t len)
{
    char out[4200];
    int n = snprintf(out, sizeof out, "got from=%s %.*s", from_key, (int)len, (const char *)data);
    send_local(ctx, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
}

static void fed_result(roomd_ctx *ctx, void *state, uint64_t id, const roomd_federate_result *res,
                       size_t nres)
{
    char out[8192];
    size_t n = (size_t)snprintf(out, sizeof out, "result id=%llu", (unsigned long long)id);
    for (size_t i = 0; i < nres && n < sizeof out; i++)
        n += (size_t)snprintf(out + n, sizeof out - n, " %s=%d:%u", res[i].key, res[i].status,
                              res[i].holders);
    if (n >= sizeof out)
        n = sizeof out - 1;
    roomd_storage_put(ctx, "last", 4, out, n);
    send_local(ctx, out, n);
}

static void fed_http(roomd_ctx *ctx, void *state, const roomd_request *req)
{
    char out[8192];
    if (strcmp(req->method, "POST") == 0) {
        snprintf(out, sizeof out, "%.*s", (int)req->body_len, (const char *)req->body);
        int64_t id = fed_run(ctx, out, NULL);
        int n = snprintf(out, sizeof out, "%lld\n", (long long)id);
        roomd_http_reply(ctx, id > 0 ? 202 : 400, NULL, out, (size_t)n);
        return;
    }
    const void *v;
    size_t vl;
    if (roomd_storage_get(ctx, "last", 4, &v, &vl) < 0)
        vl = 0;
    roomd_http_reply(ctx, 200, NULL, vl ? v : "", vl);
}

static const roomd_class fed = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "fed",
    .create = fed_create,
    .message = fed_message,
    .http = fed_http,
    .federate = fed_federate,
    .federate_result = fed_result,
};

/* Class "relay": every message goes unchanged to every other member, and
 * a durable count of the messages the object took ("n" in its storage) is
 * committed with it. GET answers "n=<count>". For the scaling tests: what
 * moves between shards must keep both the members and the count exact. */
static int relay_create(roomd_ctx *ctx, void **ret_state)
{
    *ret_state = NULL;
    return 0;
}

static unsigned long long relay_count(roomd_ctx *ctx)
{
    const void *v;
    size_t vl;
    char buf[32];
    if (roomd_storage_get(ctx, "n", 1, &v, &vl) < 0 || vl >= sizeof buf)
        return 0;
    memcpy(buf, v, vl);
    buf[vl] = '\0';
    return strtoull(buf, NULL, 10);
}

static void relay_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                          const uint8_t *data, size_t len)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%llu", relay_count(ctx) + 1);
    if (roomd_storage_put(ctx, "n", 1, buf, (size_t)n) < 0) {
        roomd_conn_close(ctx, conn, 1011, "storage failed");
        return;
    }
    roomd_broadcast(ctx, opcode, data, len, conn);
}

static void relay_http(roomd_ctx *ctx, void *state, const roomd_request *req)
{
    char body[64];
    int n = snprintf(body, sizeof body, "n=%llu\n", relay_count(ctx));
    roomd_http_reply(ctx, 200, NULL, body, (size_t)n);
}

static const roomd_class relay = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "relay",
    .create = relay_create,
    .message = relay_message,
    .http = relay_http,
};

int roomd_module_init(roomd_loader *ld);

int roomd_module_init(roomd_loader *ld)
{
    int r = roomd_class_register(ld, &upper);
    if (r == 0)
        r = roomd_class_register(ld, &meta);
    if (r == 0)
        r = roomd_class_register(ld, &fed);
    return r < 0 ? r : roomd_class_register(ld, &relay);
}
