/* game.c: an example roomd module. Class "game" is a small multiplayer room
 * on a 20x20 grid: players join a team (red or blue), walk around, chat with
 * their team, and score a point every second they stand on the goal (the
 * four centre cells). It shows every part of the class API a real room
 * needs:
 *
 *   - connect: validating the query, refusing with a status, tags and an
 *     attachment per connection, a welcome message, a broadcast to the others;
 *   - message: a JSON protocol with clear errors, team-only messages with
 *     roomd_broadcast_tag();
 *   - storage: every player's position and score, and the tick number, in the
 *     room's durable key/value store;
 *   - alarm: a one-second game tick that survives hibernation and restarts;
 *   - auto-response: "ping" is answered "pong" by the gateway itself;
 *   - http: GET /game/<room> answers the scoreboard, even for a room that
 *     is asleep.
 *
 * The rule that makes it survive hibernation and shard restarts: storage is
 * the truth and memory is a cache of it. create() loads the room from
 * storage, every change is written through, and who is online comes from the
 * connections' attachments (the gateway keeps those across restarts), never
 * from memory alone.
 *
 * Build: cc -shared -fPIC -I shard examples/game.c -ljansson -o game.so
 * Load:  roomd-gateway --module ./game.so   (the gateway passes it to its shards)
 * The protocol is described in examples/README.md.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "roomd_module.h"

#define GRID 20              /* the board is GRID x GRID cells, 0..GRID-1 each way */
#define NAME_MAX_LEN 24      /* player names: 1..24 of [A-Za-z0-9_-] */
#define CHAT_MAX_LEN 280     /* bytes of chat text */
#define TICK_MS 1000         /* one game tick per second */
#define MAX_PLAYERS_ONLINE 64 /* the class's max_connections: the 65th join gets 503 */
/* After a shard restart the tick alarm can fire before the gateway has
 * re-opened the room's connections on the new process, so for a moment the
 * room looks empty although its players are about to come back. While the
 * room had players this recently, an empty tick waits instead of stopping.
 * 30 s is the gateway's default --resume-timeout. */
#define RESUME_GRACE_MS 30000
#define LIST_PAGE 1000       /* roomd_storage_list's largest page */

/* Storage keys:
 *   "meta"      {"tick":N,"active_at":MS}  the last tick number; when the room
 *                                          last had players (ms since epoch)
 *   "p:<name>"  {"team":"red","x":3,"y":4,"score":7}  one per player ever seen */
#define META_KEY "meta"
#define PLAYER_PREFIX "p:"

typedef struct player {
    char name[NAME_MAX_LEN + 1];
    char team[5]; /* "red" or "blue" */
    int x, y;
    long long score;
} player;

/* The in-memory copy of the room's storage. */
typedef struct game {
    player *players; /* every player this room has seen, online or not */
    size_t n, cap;
    uint64_t tick;
    uint64_t active_at;
    /* A storage write failed (or an alarm attempt was rolled back), so memory
     * may be ahead of storage: reload before the next use. */
    bool stale;
    /* This incarnation has checked that the tick alarm is set. */
    bool ticking;
} game;

static uint64_t now_ms(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC); /* alarms are wall-clock times; this is C11's clock_gettime */
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool valid_team(const char *s, size_t n)
{
    return (n == 3 && memcmp(s, "red", 3) == 0) || (n == 4 && memcmp(s, "blue", 4) == 0);
}

static bool on_goal(const player *p)
{
    int lo = GRID / 2 - 1, hi = GRID / 2; /* cells 9 and 10 on a 20-cell side */
    return p->x >= lo && p->x <= hi && p->y >= lo && p->y <= hi;
}

static void spawn(player *p)
{
    /* Opposite corners, so the teams race each other to the centre. */
    bool red = strcmp(p->team, "red") == 0;
    p->x = red ? 0 : GRID - 1;
    p->y = red ? 0 : GRID - 1;
}

static int clamp(int v)
{
    return v < 0 ? 0 : v >= GRID ? GRID - 1 : v;
}

/* --- the player table ----------------------------------------------------- */

static player *game_find(game *g, const char *name)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->players[i].name, name) == 0)
            return &g->players[i];
    return NULL;
}

static player *game_add(game *g, const char *name, const char *team)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        player *p = realloc(g->players, cap * sizeof *p);
        if (!p)
            return NULL;
        g->players = p;
        g->cap = cap;
    }
    player *p = &g->players[g->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->team, sizeof p->team, "%s", team);
    spawn(p);
    return p;
}

/* --- storage: load and write through -------------------------------------- */

static int player_save(roomd_ctx *ctx, game *g, const player *p)
{
    char key[sizeof PLAYER_PREFIX + NAME_MAX_LEN];
    int kl = snprintf(key, sizeof key, PLAYER_PREFIX "%s", p->name);
    char *val = NULL;
    json_t *v = json_pack("{s:s, s:i, s:i, s:I}", "team", p->team, "x", p->x, "y", p->y, "score",
                          (json_int_t)p->score);
    if (v)
        val = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    int r = val ? roomd_storage_put(ctx, key, (size_t)kl, val, strlen(val)) : -ENOMEM;
    free(val);
    if (r < 0) {
        g->stale = true;
        roomd_log(ctx, ROOMD_LOG_ERROR, "cannot save player %s: %s", p->name,
                  r == -ENOMEM ? "out of memory" : roomd_storage_error(ctx));
    }
    return r;
}

static int meta_save(roomd_ctx *ctx, game *g)
{
    char val[64];
    int n = snprintf(val, sizeof val, "{\"tick\":%llu,\"active_at\":%llu}",
                     (unsigned long long)g->tick, (unsigned long long)g->active_at);
    int r = roomd_storage_put(ctx, META_KEY, strlen(META_KEY), val, (size_t)n);
    if (r < 0) {
        g->stale = true;
        roomd_log(ctx, ROOMD_LOG_ERROR, "cannot save the room: %s", roomd_storage_error(ctx));
    }
    return r;
}

struct load {
    roomd_ctx *ctx;
    game *g;
    char last[sizeof PLAYER_PREFIX + NAME_MAX_LEN]; /* the last key seen: where the next page starts */
    size_t last_len;
};

static int load_player(void *ud, const uint8_t *key, size_t klen, const uint8_t *value, size_t vlen)
{
    struct load *l = ud;
    const char *name = (const char *)key + strlen(PLAYER_PREFIX);
    size_t nlen = klen - strlen(PLAYER_PREFIX);
    if (klen <= sizeof l->last) {
        memcpy(l->last, key, klen);
        l->last_len = klen;
    }
    json_t *v = json_loadb((const char *)value, vlen, 0, NULL);
    const char *team = json_string_value(json_object_get(v, "team"));
    if (!valid_name(name, nlen) || !team || !valid_team(team, strlen(team))) {
        roomd_log(l->ctx, ROOMD_LOG_WARN, "skipping a malformed player record (%zu bytes)", vlen);
        json_decref(v);
        return 0;
    }
    char nbuf[NAME_MAX_LEN + 1];
    memcpy(nbuf, name, nlen);
    nbuf[nlen] = '\0';
    player *p = game_add(l->g, nbuf, team);
    if (!p) {
        json_decref(v);
        return -ENOMEM;
    }
    p->x = clamp((int)json_integer_value(json_object_get(v, "x")));
    p->y = clamp((int)json_integer_value(json_object_get(v, "y")));
    p->score = (long long)json_integer_value(json_object_get(v, "score"));
    json_decref(v);
    return 0;
}

/* Rebuild memory from storage: in create (a new object, or one waking from
 * hibernation or starting on a restarted shard) and after a failed write. */
static int game_load(roomd_ctx *ctx, game *g)
{
    g->n = 0;
    g->tick = 0;
    g->active_at = 0;
    g->ticking = false;

    const void *val;
    size_t vlen;
    int r = roomd_storage_get(ctx, META_KEY, strlen(META_KEY), &val, &vlen);
    if (r == 0) {
        json_t *m = json_loadb(val, vlen, 0, NULL);
        g->tick = (uint64_t)json_integer_value(json_object_get(m, "tick"));
        g->active_at = (uint64_t)json_integer_value(json_object_get(m, "active_at"));
        json_decref(m);
    } else if (r != -ENOENT) { /* -ENOENT: a brand-new room */
        roomd_log(ctx, ROOMD_LOG_ERROR, "cannot load the room: %s", roomd_storage_error(ctx));
        return r;
    }

    /* Page through "p:*". A list has no cursor: the next page starts at the
     * smallest key after the last one, which is that key plus a NUL byte. */
    struct load l = { .ctx = ctx, .g = g };
    char start[sizeof l.last + 1];
    size_t start_len = 0;
    for (;;) {
        roomd_range range = {
            .prefix = PLAYER_PREFIX, .prefix_len = strlen(PLAYER_PREFIX),
            .start = start_len ? start : NULL, .start_len = start_len, .limit = LIST_PAGE,
        };
        int got = roomd_storage_list(ctx, &range, load_player, &l);
        if (got < 0) {
            roomd_log(ctx, ROOMD_LOG_ERROR, "cannot load the players: %s",
                      got == -ENOMEM ? "out of memory" : roomd_storage_error(ctx));
            return got;
        }
        if (got < LIST_PAGE)
            break;
        memcpy(start, l.last, l.last_len);
        start[l.last_len] = '\0';
        start_len = l.last_len + 1;
    }
    g->stale = false;
    return 0;
}

/* Every callback starts here: memory must match storage before it is used. */
static int game_refresh(roomd_ctx *ctx, game *g)
{
    return g->stale ? game_load(ctx, g) : 0;
}

/* The tick alarm must be set whenever players are in the room. It is stored
 * with the room, so one check per incarnation is enough. */
static int ensure_ticking(roomd_ctx *ctx, game *g)
{
    if (g->ticking)
        return 0;
    uint64_t at = 0;
    int r = roomd_alarm_get(ctx, &at);
    if (r == 0 && at == 0)
        r = roomd_alarm_set(ctx, now_ms() + TICK_MS);
    if (r < 0) {
        roomd_log(ctx, ROOMD_LOG_ERROR, "cannot set the tick alarm: %s", roomd_storage_error(ctx));
        return r;
    }
    g->ticking = true;
    return 0;
}

/* --- connections ---------------------------------------------------------- */

/* Who a connection is, from its attachment {"name":...,"team":...}. The
 * attachment, not memory, is the record: it comes back with the connection
 * after hibernation and after a shard restart. */
static player *conn_player(game *g, const roomd_conn *conn)
{
    size_t len;
    const void *att = roomd_conn_attachment(conn, &len);
    if (!att || !len)
        return NULL;
    json_t *a = json_loadb(att, len, 0, NULL);
    const char *name = json_string_value(json_object_get(a, "name"));
    player *p = name ? game_find(g, name) : NULL;
    json_decref(a);
    return p;
}

/* --- messages out --------------------------------------------------------- */

static json_t *player_json(const player *p)
{
    return json_pack("{s:s, s:i, s:i, s:I}", "team", p->team, "x", p->x, "y", p->y, "score",
                     (json_int_t)p->score);
}

/* The online players: {"ada": {"team":"red","x":0,"y":0,"score":0}, ...} */
static json_t *board_json(roomd_ctx *ctx, game *g)
{
    json_t *board = json_object();
    roomd_conn *c;
    for (size_t i = 0; (c = roomd_conn_at(ctx, i)); i++) {
        const player *p = conn_player(g, c);
        if (p)
            json_object_set_new(board, p->name, player_json(p));
    }
    return board;
}

/* Each of these takes ownership of msg. jansson returns NULL when out of
 * memory; then nothing is sent. */
static void send_json(roomd_ctx *ctx, roomd_conn *conn, json_t *msg)
{
    char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    if (s)
        roomd_send(ctx, conn, ROOMD_TEXT, s, strlen(s));
    free(s);
    json_decref(msg);
}

static void broadcast_json(roomd_ctx *ctx, json_t *msg, const roomd_conn *except)
{
    char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    if (s)
        roomd_broadcast(ctx, ROOMD_TEXT, s, strlen(s), except);
    free(s);
    json_decref(msg);
}

static void send_error(roomd_ctx *ctx, roomd_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void send_error(roomd_ctx *ctx, roomd_conn *conn, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    send_json(ctx, conn, json_pack("{s:s, s:s}", "type", "error", "error", why));
}

/* --- callbacks ------------------------------------------------------------ */

static int game_create(roomd_ctx *ctx, void **ret_state)
{
    game *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    int r = game_load(ctx, g);
    if (r < 0) {
        free(g->players);
        free(g);
        return r; /* the request that needed the room gets 500 */
    }
    /* Clients' keep-alive pings are answered by the gateway: a sleeping room
     * is not woken (nor billed a wake-up) for them. */
    roomd_set_auto_response(ctx, "ping", "pong");
    *ret_state = g;
    return 0;
}

static void game_destroy(roomd_ctx *ctx, void *state)
{
    (void)ctx;
    game *g = state;
    free(g->players);
    free(g);
}

/* The value of key in a query string ("name=ada&team=red"), not decoded:
 * the characters a valid name or team may hold never need escaping. */
static bool query_param(const char *q, size_t qlen, const char *key, const char **ret, size_t *ret_len)
{
    size_t kl = strlen(key);
    const char *end = q + qlen;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) > kl && memcmp(q, key, kl) == 0 && q[kl] == '=') {
            *ret = q + kl + 1;
            *ret_len = (size_t)(stop - *ret);
            return true;
        }
        q = amp ? amp + 1 : end;
    }
    return false;
}

static int game_connect(roomd_ctx *ctx, void *state, roomd_conn *conn, const roomd_request *req)
{
    game *g = state;
    const char *nv = NULL, *tv = NULL;
    size_t nl = 0, tl = 0;
    if (!query_param(req->query, req->query_len, "name", &nv, &nl) || !valid_name(nv, nl)) {
        roomd_reject(ctx, 400, "name must be 1-24 characters of A-Z a-z 0-9 _ - (?name=...&team=red)");
        return -1;
    }
    if (!query_param(req->query, req->query_len, "team", &tv, &tl) || !valid_team(tv, tl)) {
        roomd_reject(ctx, 400, "team must be red or blue (?name=...&team=red)");
        return -1;
    }
    char name[NAME_MAX_LEN + 1], team[5];
    memcpy(name, nv, nl);
    name[nl] = '\0';
    memcpy(team, tv, tl);
    team[tl] = '\0';

    if (game_refresh(ctx, g) < 0) {
        roomd_reject(ctx, 503, "the room's storage is unavailable; try again");
        return -1;
    }
    /* The joining connection is not in the room's list yet: the others are. */
    roomd_conn *c;
    for (size_t i = 0; (c = roomd_conn_at(ctx, i)); i++) {
        const player *other = conn_player(g, c);
        if (other && strcmp(other->name, name) == 0) {
            roomd_reject(ctx, 409, "that name is already playing in this room");
            return -1;
        }
    }

    /* A returning player keeps position and score; a new one spawns. */
    player *p = game_find(g, name);
    if (!p && !(p = game_add(g, name, team))) {
        roomd_reject(ctx, 503, "out of memory");
        return -1;
    }
    if (strcmp(p->team, team) != 0) {
        snprintf(p->team, sizeof p->team, "%s", team);
        spawn(p); /* a player who changes sides starts at the new team's corner */
    }
    g->active_at = now_ms();
    if (player_save(ctx, g, p) < 0 || meta_save(ctx, g) < 0 || ensure_ticking(ctx, g) < 0) {
        roomd_reject(ctx, 503, "the room's storage is unavailable; try again");
        return -1;
    }

    /* Tags route team chat (roomd_broadcast_tag); the attachment says who
     * this is. Both survive hibernation and restarts with the connection. */
    const char *tags[] = { team, "player" };
    char att[96]; /* name and team were validated: nothing in them needs JSON escaping */
    int al = snprintf(att, sizeof att, "{\"name\":\"%s\",\"team\":\"%s\"}", name, team);
    if (roomd_conn_set_tags(ctx, conn, tags, 2) < 0 ||
        roomd_conn_set_attachment(ctx, conn, att, (size_t)al) < 0) {
        roomd_reject(ctx, 500, "could not register the connection");
        return -1;
    }

    json_t *board = board_json(ctx, g);
    json_object_set_new(board, p->name, player_json(p)); /* not in the list yet, see above */
    send_json(ctx, conn,
              json_pack("{s:s, s:s, s:s, s:i, s:[[i,i],[i,i],[i,i],[i,i]], s:I, s:o}", "type",
                        "welcome", "you", p->name, "team", p->team, "grid", GRID, "goal",
                        GRID / 2 - 1, GRID / 2 - 1, GRID / 2, GRID / 2 - 1, GRID / 2 - 1, GRID / 2,
                        GRID / 2, GRID / 2, "tick", (json_int_t)g->tick, "players", board));
    broadcast_json(ctx,
                   json_pack("{s:s, s:s, s:s, s:i, s:i, s:I}", "type", "joined", "name", p->name,
                             "team", p->team, "x", p->x, "y", p->y, "score", (json_int_t)p->score),
                   conn);
    return 0;
}

/* One step of a move: absent means 0, else an integer -1..1. */
static bool move_step(const json_t *msg, const char *key, int *ret)
{
    const json_t *v = json_object_get(msg, key);
    if (!v) {
        *ret = 0;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) > 1)
        return false;
    *ret = (int)json_integer_value(v);
    return true;
}

static void on_move(roomd_ctx *ctx, game *g, roomd_conn *conn, player *p, json_t *msg)
{
    int dx, dy;
    if (!move_step(msg, "dx", &dx) || !move_step(msg, "dy", &dy)) {
        send_error(ctx, conn, "move: dx and dy must be integers from -1 to 1");
        return;
    }
    p->x = clamp(p->x + dx); /* walking into the edge is not an error: you stay put */
    p->y = clamp(p->y + dy);
    if (player_save(ctx, g, p) < 0) {
        send_error(ctx, conn, "move: could not save your position; try again");
        return;
    }
    /* Everyone sees every move, the mover included: that is its confirmation. */
    broadcast_json(ctx,
                   json_pack("{s:s, s:s, s:i, s:i}", "type", "moved", "name", p->name, "x", p->x,
                             "y", p->y),
                   NULL);
}

static void on_chat(roomd_ctx *ctx, roomd_conn *conn, const player *p, json_t *msg)
{
    json_t *text = json_object_get(msg, "text");
    if (!json_is_string(text) || json_string_length(text) == 0 ||
        json_string_length(text) > CHAT_MAX_LEN) {
        send_error(ctx, conn, "chat: text must be a string of 1 to %d bytes", CHAT_MAX_LEN);
        return;
    }
    json_t *out = json_pack("{s:s, s:s, s:s, s:O}", "type", "chat", "from", p->name, "team",
                            p->team, "text", text);
    char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;
    /* The team tag reaches the sender's teammates, the sender included. */
    if (s)
        roomd_broadcast_tag(ctx, p->team, ROOMD_TEXT, s, strlen(s), NULL);
    free(s);
    json_decref(out);
}

static void game_message(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                         const uint8_t *data, size_t len)
{
    game *g = state;
    if (opcode != ROOMD_TEXT) {
        send_error(ctx, conn, "messages are JSON text, not binary");
        return;
    }
    /* The gateway answers "ping" itself once it knows the pair; in the short
     * window before that (right after a shard restart) it reaches us. */
    if (len == 4 && memcmp(data, "ping", 4) == 0) {
        roomd_send(ctx, conn, ROOMD_TEXT, "pong", 4);
        return;
    }
    if (game_refresh(ctx, g) < 0) {
        send_error(ctx, conn, "the room's storage is unavailable; try again");
        return;
    }
    player *p = conn_player(g, conn);
    if (!p) {
        send_error(ctx, conn, "this connection has no player; reconnect with ?name=...&team=...");
        return;
    }
    /* Self-healing: if the tick stopped (see RESUME_GRACE_MS), a player's
     * message starts it again. */
    ensure_ticking(ctx, g);

    json_error_t jerr;
    json_t *msg = json_loadb((const char *)data, len, 0, &jerr);
    if (!msg) {
        send_error(ctx, conn, "invalid JSON: %s", jerr.text);
        return;
    }
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!json_is_object(msg) || !type)
        send_error(ctx, conn, "a message is a JSON object with a string \"type\"");
    else if (strcmp(type, "move") == 0)
        on_move(ctx, g, conn, p, msg);
    else if (strcmp(type, "chat") == 0)
        on_chat(ctx, conn, p, msg);
    else if (strcmp(type, "state") == 0)
        send_json(ctx, conn,
                  json_pack("{s:s, s:I, s:o}", "type", "state", "tick", (json_int_t)g->tick,
                            "players", board_json(ctx, g)));
    else
        send_error(ctx, conn, "unknown type \"%.32s\" (move, chat or state)", type);
    json_decref(msg);
}

static void game_close(roomd_ctx *ctx, void *state, roomd_conn *conn, int code,
                       const char *reason, size_t reason_len)
{
    (void)code;
    (void)reason;
    (void)reason_len;
    game *g = state;
    game_refresh(ctx, g); /* best effort: "left" needs only the attachment */
    const player *p = conn_player(g, conn);
    if (p)
        broadcast_json(ctx, json_pack("{s:s, s:s}", "type", "left", "name", p->name), conn);
    /* The last player left: stop ticking now. (An empty room is evicted;
     * the alarm would otherwise wake it once more for nothing.) */
    if (roomd_conn_count(ctx) == 0) {
        roomd_alarm_set(ctx, 0);
        g->ticking = false;
    }
}

static int game_alarm(roomd_ctx *ctx, void *state, unsigned retries)
{
    (void)retries;
    game *g = state;
    if (game_refresh(ctx, g) < 0)
        return -EIO; /* retried with backoff */
    uint64_t now = now_ms();
    g->ticking = false; /* this alarm is spent; set again below or not at all */

    if (roomd_conn_count(ctx) == 0) {
        /* Nobody here, but nobody left either (close stops the tick): the
         * shard restarted and the players' connections are still being
         * resumed. Wait for them a while, then let the room sleep. */
        if (now < g->active_at + RESUME_GRACE_MS) {
            if (roomd_alarm_set(ctx, now + TICK_MS) < 0)
                return -EIO;
            g->ticking = true;
        } else {
            roomd_log(ctx, ROOMD_LOG_INFO, "room is empty; the tick stops at %llu",
                      (unsigned long long)g->tick);
        }
        return 0;
    }

    g->tick++;
    g->active_at = now;
    json_t *scores = json_object();
    roomd_conn *c;
    for (size_t i = 0; (c = roomd_conn_at(ctx, i)); i++) {
        player *p = conn_player(g, c);
        if (!p)
            continue;
        if (on_goal(p)) {
            p->score++;
            if (player_save(ctx, g, p) < 0)
                goto failed;
        }
        json_object_set_new(scores, p->name, json_integer((json_int_t)p->score));
    }
    if (meta_save(ctx, g) < 0 || roomd_alarm_set(ctx, now + TICK_MS) < 0)
        goto failed;
    g->ticking = true;
    /* Sent only now that every write succeeded: a failed attempt is rolled
     * back and retried, and must not have told anyone about this tick. */
    broadcast_json(ctx,
                   json_pack("{s:s, s:I, s:o}", "type", "tick", "n", (json_int_t)g->tick, "scores",
                             scores),
                   NULL);
    return 0;

failed:
    json_decref(scores);
    g->stale = true; /* memory ran ahead of the rolled-back storage */
    return -EIO;
}

/* GET /game/<room>: the scoreboard, straight from the room's state (loaded
 * from storage by create, so a sleeping or evicted room answers too):
 * {"room":"r1","tick":12,"players":{"ada":{"team":"red","score":3,"online":true}},
 *  "teams":{"red":3,"blue":0}} */
static void game_http(roomd_ctx *ctx, void *state, const roomd_request *req)
{
    game *g = state;
    if (req->path_len != 0)
        return; /* no reply: 404 */
    if (strcmp(req->method, "GET") != 0) {
        static const char msg[] = "use GET /game/<room> for the scoreboard, or a WebSocket to play\n";
        roomd_http_reply(ctx, 405, NULL, msg, sizeof msg - 1);
        return;
    }
    if (game_refresh(ctx, g) < 0) {
        static const char msg[] = "the room's storage is unavailable; try again\n";
        roomd_http_reply(ctx, 503, NULL, msg, sizeof msg - 1);
        return;
    }
    json_t *online = board_json(ctx, g); /* used only to mark who is online */
    json_t *players = json_object();
    long long red = 0, blue = 0;
    for (size_t i = 0; i < g->n; i++) {
        const player *p = &g->players[i];
        json_object_set_new(players, p->name,
                            json_pack("{s:s, s:I, s:b}", "team", p->team, "score",
                                      (json_int_t)p->score, "online",
                                      json_object_get(online, p->name) != NULL));
        if (strcmp(p->team, "red") == 0)
            red += p->score;
        else
            blue += p->score;
    }
    json_decref(online);
    json_t *sb = json_pack("{s:s, s:I, s:o, s:{s:I, s:I}}", "room", roomd_object_name(ctx), "tick",
                           (json_int_t)g->tick, "players", players, "teams", "red",
                           (json_int_t)red, "blue", (json_int_t)blue);
    char *body = sb ? json_dumps(sb, JSON_COMPACT) : NULL;
    json_decref(sb);
    if (!body) {
        static const char msg[] = "out of memory\n";
        roomd_http_reply(ctx, 503, NULL, msg, sizeof msg - 1);
        return;
    }
    roomd_http_reply(ctx, 200, "application/json", body, strlen(body));
    free(body);
}

static const roomd_class game_class = {
    .version = ROOMD_MODULE_API_VERSION,
    .name = "game",
    .max_connections = MAX_PLAYERS_ONLINE,
    .create = game_create,
    .connect = game_connect,
    .message = game_message,
    .close = game_close,
    .http = game_http,
    .destroy = game_destroy,
    .alarm = game_alarm,
};

int roomd_module_init(roomd_loader *ld);

int roomd_module_init(roomd_loader *ld)
{
    return roomd_class_register(ld, &game_class);
}
