/* roomd_module.h: the object-class API, version 2 (version 1 tables, without
 * `methods`, still load).
 *
 * A class is C code behind a versioned method table (the Redis module API's
 * shape: an opaque context on every call). A shard runs each object's
 * callbacks strictly one at a time on its single thread, so class code needs
 * no locking. Every callback gets the context of the event being handled;
 * services are only valid during a callback, with the context passed to it.
 *
 * Lifetime: `create` runs when an object is first needed (first connection
 * or HTTP request); `destroy` runs when the shard evicts it (currently: when
 * its last connection has closed and the event is over). Connection
 * pointers are valid from `connect` until the end of the `close` callback
 * for that connection; never keep one across an eviction.
 *
 * Strings handed to callbacks (request fields, message data, reasons) are
 * borrowed and valid only during the callback; copy what you keep.
 */
#ifndef ROOMD_MODULE_H
#define ROOMD_MODULE_H

#include <stddef.h>
#include <stdint.h>

#define ROOMD_MODULE_API_VERSION 2
/* Tables built against version 1 end before `methods`; still accepted. */
#define ROOMD_MODULE_API_VERSION_MIN 1

#define ROOMD_TEXT 1
#define ROOMD_BINARY 2

typedef struct roomd_ctx roomd_ctx;
typedef struct roomd_conn roomd_conn;

typedef struct roomd_header {
    const char *name;   /* lower-case */
    size_t name_len;
    const char *value;
    size_t value_len;
} roomd_header;

/* An HTTP request routed to an object (`http`), or the upgrade request of a
 * new connection (`connect`). path is what follows /<class>/<name> ("" when
 * nothing, else starting with "/"); query excludes the '?'. */
typedef struct roomd_request {
    const char *method;
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
    const roomd_header *headers;
    size_t nheaders;
    const uint8_t *body;
    size_t body_len;
    const char *remote;  /* client address "ip:port" as the gateway saw it */
} roomd_request;

/* The outcome of roomd_federate() for one key (see "federation" below). */
typedef struct roomd_federate_result {
    const char *key;     /* as given */
    int status;          /* 0: delivered; else a negative errno, see roomd_federate */
    uint32_t holders;    /* instances whose handler got it (one per cell holding the key) */
    const char *error;   /* why not, in words; "" when delivered */
} roomd_federate_result;

/* --- RPC (JSON-RPC 2.0) ---------------------------------------------------
 *
 * A class declares methods; clients call them over the object's WebSocket
 * with JSON-RPC 2.0 text messages, backends with
 * POST /<class>/<name>/rpc/<method> (the body is the params). A text message
 * to a class with methods is a call when it starts with '{' or '[' (after
 * whitespace) and contains "jsonrpc"; any other message goes to `message`.
 *
 * The handler gets params as JSON text (an array or object; "[]" when the
 * request had none) and answers once with roomd_rpc_result() or
 * roomd_rpc_error() during the callback; no answer means result null.
 * A method flagged ROOMD_METHOD_STREAM may instead turn the call into a
 * stream with roomd_rpc_stream() (WebSocket only): the class emits values
 * to it in this or later callbacks, and ends it; the client may cancel it
 * (README, "RPC"). Streams belong to the shard, not to the class's state:
 * they survive hibernation; they end with their connection. */
typedef struct roomd_call roomd_call;
typedef struct roomd_stream roomd_stream;

#define ROOMD_METHOD_STREAM 0x1u

typedef struct roomd_method {
    const char *name;         /* [A-Za-z_][A-Za-z0-9_]{0,63}: a JavaScript identifier */
    void (*call)(roomd_ctx *ctx, void *state, roomd_call *call, const char *params, size_t len);
    uint32_t flags;           /* ROOMD_METHOD_STREAM */
} roomd_method;

/* Error codes (JSON-RPC 2.0 §5.1); classes may use their own others. */
#define ROOMD_RPC_PARSE_ERROR (-32700)
#define ROOMD_RPC_INVALID_REQUEST (-32600)
#define ROOMD_RPC_METHOD_NOT_FOUND (-32601)
#define ROOMD_RPC_INVALID_PARAMS (-32602)
#define ROOMD_RPC_INTERNAL_ERROR (-32603)
#define ROOMD_RPC_SERVER_ERROR (-32000)   /* -32000..-32099: roomd's own (limits) */
#define ROOMD_RPC_CANCELLED (-32800)      /* a stream the client cancelled */

typedef struct roomd_class {
    uint32_t version;         /* ROOMD_MODULE_API_VERSION */
    const char *name;         /* [a-z0-9_-]{1,32}: the first path segment */
    uint32_t max_connections; /* per object; 0 means the default (1000) */
    /* Build the object's in-memory state. Return 0, or a negative errno to
     * refuse the object (the request gets 500). */
    int (*create)(roomd_ctx *ctx, void **ret_state);
    /* A WebSocket wants in. Return 0 to accept; to refuse, call
     * roomd_reject() and return -1. Optional: absent means accept. */
    int (*connect)(roomd_ctx *ctx, void *state, roomd_conn *conn, const roomd_request *req);
    /* A complete message; opcode is ROOMD_TEXT (valid UTF-8) or ROOMD_BINARY. */
    void (*message)(roomd_ctx *ctx, void *state, roomd_conn *conn, int opcode,
                    const uint8_t *data, size_t len);
    /* The connection is gone (code 1005: the client sent none; 1006: the
     * transport died). It is no longer counted or broadcast to. */
    void (*close)(roomd_ctx *ctx, void *state, roomd_conn *conn, int code,
                  const char *reason, size_t reason_len);
    /* A plain HTTP request. Answer with roomd_http_reply(); no answer means
     * 404. Optional. */
    void (*http)(roomd_ctx *ctx, void *state, const roomd_request *req);
    /* Free the state. Optional. */
    void (*destroy)(roomd_ctx *ctx, void *state);
    /* The object's alarm is due (set with roomd_alarm_set). It runs even if
     * the object was evicted or the shard restarted since. Return 0 when
     * handled: the alarm is then cleared (unless the handler set a new one).
     * Return a negative errno to have it retried (1 s, 2 s, 4 s ... up to 10
     * tries; retries counts the earlier attempts); that attempt's storage
     * writes are rolled back. Optional. */
    int (*alarm)(roomd_ctx *ctx, void *state, unsigned retries);
    /* Added to API v1 after the fields above: a table built against this
     * header that does not set them has them NULL; a module built against
     * an older copy of the header (its table ends before them) must be
     * rebuilt. */
    /* A message sent to this object with roomd_federate() by another (or
     * the same) object, from this shard, another shard or another cell;
     * from_key is the sender's key ("" when a backend PUBLISHed it). A
     * hibernated object is woken for it. Optional: without it the class
     * takes no federate messages (senders get -EOPNOTSUPP). */
    void (*federate)(roomd_ctx *ctx, void *state, const char *from_key, const uint8_t *data,
                     size_t len);
    /* What became of this object's roomd_federate() call `id`: one result
     * per key, in the order given. Runs on a later loop turn, after every
     * key was delivered or failed; the object is woken (or built again if it
     * was evicted meanwhile) for it. Optional: without it federate is
     * fire-and-forget (the seed's federate()). */
    void (*federate_result)(roomd_ctx *ctx, void *state, uint64_t id,
                            const roomd_federate_result *results, size_t n);
    /* Version 2: the methods clients may call, ended by an entry with a NULL
     * name; NULL: none. Also listed by /exports.js. */
    const roomd_method *methods;
} roomd_class;

/* --- storage -------------------------------------------------------------
 *
 * Each object has its own durable store: one SQLite database under the
 * shard's --data-dir, opened on first use under an exclusive lock (a second
 * process that wants the same object gets -EWOULDBLOCK). The writes of a
 * callback are committed before anything it sent is released to clients
 * (the output gate); the callbacks of one object in one loop turn share a
 * commit (group commit: one fsync with --durability full). A callback sees
 * its own and earlier writes. If a commit fails the shard stops
 * (crash-only): nothing it had not yet released was acknowledged, and the
 * gateway restarts it with every client still connected.
 *
 * Keys are 1..2048 bytes, ordered byte-wise; values up to 128 KiB. Errors
 * are negative errno; roomd_storage_error() has the text of the last one.
 * Values handed out are valid until the callback returns. */
int roomd_storage_get(roomd_ctx *ctx, const void *key, size_t klen, const void **ret_value,
                      size_t *ret_len);  /* 0, -ENOENT when absent */
int roomd_storage_put(roomd_ctx *ctx, const void *key, size_t klen, const void *value, size_t vlen);
int roomd_storage_delete(roomd_ctx *ctx, const void *key, size_t klen); /* 0, -ENOENT */

/* Which keys a list visits: those in [start, end) beginning with prefix
 * (NULL: unbounded / no prefix); limit 1..1000 (0: 1000); reverse order on
 * request. The callback returns 0 to go on, > 0 to stop, < 0 to abort. */
typedef struct roomd_range {
    const void *prefix;
    size_t prefix_len;
    const void *start;
    size_t start_len;
    const void *end;
    size_t end_len;
    uint32_t limit;
    _Bool reverse;
} roomd_range;
typedef int (*roomd_list_cb)(void *ud, const uint8_t *key, size_t klen, const uint8_t *value,
                             size_t vlen);
/* Returns the number of pairs visited, or a negative errno. */
int roomd_storage_list(roomd_ctx *ctx, const roomd_range *range, roomd_list_cb cb, void *ud);

/* SQL for classes that want tables of their own, in the same transaction.
 * With parameters: one statement, ?1..?N bound in order. Refused (-EPERM):
 * ATTACH, PRAGMA, VACUUM, transaction control, the reserved tables kv/meta
 * (kv may be read). Returns the rows handed to cb, or a negative errno. */
enum { ROOMD_SQL_NULL = 0, ROOMD_SQL_INT, ROOMD_SQL_FLOAT, ROOMD_SQL_TEXT, ROOMD_SQL_BLOB };
typedef struct roomd_sql_value {
    int type;             /* ROOMD_SQL_* */
    int64_t i;
    double f;
    const void *p;        /* TEXT, BLOB (results: TEXT is NUL-terminated) */
    size_t n;
    const char *name;     /* column name in results */
} roomd_sql_value;
typedef int (*roomd_row_cb)(void *ud, const roomd_sql_value *cols, size_t ncols);
int roomd_sql(roomd_ctx *ctx, const char *sql, const roomd_sql_value *params, size_t nparams,
              roomd_row_cb cb, void *ud);

const char *roomd_storage_error(roomd_ctx *ctx);

/* The object's one alarm: a wake-up time in ms since the epoch, stored
 * durably with the object (part of the callback's transaction). at_ms 0
 * deletes it. The shard fires it at-least-once, after evictions and
 * restarts too. 0 or a negative errno. */
int roomd_alarm_set(roomd_ctx *ctx, uint64_t at_ms);
int roomd_alarm_get(roomd_ctx *ctx, uint64_t *ret_at_ms); /* 0 in *ret_at_ms: none */

/* --- loadable modules ---------------------------------------------------- */

/* A module is a shared object (`roomd-shard --module path.so`, repeatable)
 * that exports
 *
 *     int roomd_module_init(roomd_loader *ld);
 *
 * which registers its classes with roomd_class_register() and returns 0 (or
 * a negative errno to refuse loading; the shard then exits with an error).
 * The class tables must stay valid while the shard runs (static storage).
 * Build a module against this header alone: `cc -shared -fPIC`. */
typedef struct roomd_loader roomd_loader;
#define ROOMD_MODULE_INIT "roomd_module_init"
typedef int (*roomd_module_init_fn)(roomd_loader *ld);

/* 0, -EINVAL (bad version, name or missing create), -EEXIST (a class with
 * that name is already loaded), -ENOSPC (too many classes). */
int roomd_class_register(roomd_loader *ld, const roomd_class *cls);

/* --- services ------------------------------------------------------------ */

/* Send one message to one connection. 0, or -ENOTCONN if it is closing. */
int roomd_send(roomd_ctx *ctx, roomd_conn *conn, int opcode, const void *data, size_t len);
/* Send to every open connection of this object except `except` (may be NULL).
 * The payload is sent once per gateway, not once per member. Returns the
 * number of recipients. */
size_t roomd_broadcast(roomd_ctx *ctx, int opcode, const void *data, size_t len,
                       const roomd_conn *except);
/* Close a connection with a code (1000, or 3000-4999) and a reason (<= 123
 * bytes). The class's close callback follows when the gateway confirms. */
int roomd_conn_close(roomd_ctx *ctx, roomd_conn *conn, int code, const char *reason);

/* Open connections of this object: count, and iteration in join order
 * (first: index 0). Returns NULL past the end. */
size_t roomd_conn_count(roomd_ctx *ctx);
roomd_conn *roomd_conn_at(roomd_ctx *ctx, size_t index);

/* Connection metadata (the seeds' clientId, resourceId, connectedAt). */
const char *roomd_conn_client_id(const roomd_conn *conn);   /* UUIDv7 text */
uint64_t roomd_conn_connected_at(const roomd_conn *conn);   /* ms since epoch */
const char *roomd_object_name(roomd_ctx *ctx);              /* resourceId: "lobby" */
const char *roomd_object_key(roomd_ctx *ctx);               /* "chat/lobby" */

/* Attachment: up to 16 KiB of bytes the class keeps with a connection
 * (the Hibernation API's serializeAttachment). It survives hibernation and
 * shard restarts: the gateway holds a copy and hands it back. len 0 clears.
 * 0, -E2BIG, -ENOTCONN. The pointer returned by roomd_conn_attachment is
 * valid until the next set or the end of the close callback. */
int roomd_conn_set_attachment(roomd_ctx *ctx, roomd_conn *conn, const void *data, size_t len);
const void *roomd_conn_attachment(const roomd_conn *conn, size_t *ret_len);

/* Tags: up to 10 per connection, each 1-256 bytes of text; they survive
 * hibernation and shard restarts like attachments. Setting replaces all.
 * 0, -EINVAL, -ENOTCONN. */
int roomd_conn_set_tags(roomd_ctx *ctx, roomd_conn *conn, const char *const *tags, size_t n);
size_t roomd_conn_tag_count(const roomd_conn *conn);
const char *roomd_conn_tag(const roomd_conn *conn, size_t i);
/* Open connections carrying tag: the count, and the first `max` of them in out. */
size_t roomd_conns_with_tag(roomd_ctx *ctx, const char *tag, roomd_conn **out, size_t max);
/* Broadcast to the open connections carrying tag (except `except`). */
size_t roomd_broadcast_tag(roomd_ctx *ctx, const char *tag, int opcode, const void *data, size_t len,
                           const roomd_conn *except);

/* Auto-response: a text message exactly equal to request is answered with
 * response by the gateway itself, without waking the object (the
 * Hibernation API's setWebSocketAutoResponse). NULL request clears; each
 * string at most 2048 bytes. The object keeps the pair while it has
 * connections, hibernated or not. 0 or -EINVAL. */
int roomd_set_auto_response(roomd_ctx *ctx, const char *request, const char *response);
/* When the gateway last auto-responded on this connection (ms since the
 * epoch), 0 if never. */
uint64_t roomd_conn_auto_response_at(const roomd_conn *conn);

/* In `connect`: refuse with an HTTP status (400-599) and a short text. */
int roomd_reject(roomd_ctx *ctx, int status, const char *reason);
/* In `connect`: choose the subprotocol to answer with (must be one the client
 * offered). Without a call the first offered one is echoed. */
int roomd_select_protocol(roomd_ctx *ctx, const char *protocol);

/* RPC answers (see roomd_method). result: one JSON value as text, checked
 * (-EINVAL when it is not JSON). message: short text. Each returns 0, or
 * -EALREADY when the call was already answered or turned into a stream.
 * A call made as a JSON-RPC notification (no id) gets no answer sent. */
int roomd_rpc_result(roomd_ctx *ctx, roomd_call *call, const char *json, size_t len);
int roomd_rpc_error(roomd_ctx *ctx, roomd_call *call, int code, const char *message);
/* The connection the call came on; NULL over HTTP. */
roomd_conn *roomd_call_conn(const roomd_call *call);
/* Turn the call into a stream. NULL (and nothing sent) when the method is
 * not flagged ROOMD_METHOD_STREAM, the call came over HTTP or as a
 * notification, it was answered, or the connection has 16 open streams
 * (the client then gets error -32000 saying so). */
roomd_stream *roomd_rpc_stream(roomd_ctx *ctx, roomd_call *call);
/* This object's open streams of one method (NULL: all): the count, and the
 * first `max` in out, oldest first. Handles are valid during the callback. */
size_t roomd_streams(roomd_ctx *ctx, const char *method, roomd_stream **out, size_t max);
/* The params the stream was opened with (JSON text) and its connection. */
const char *roomd_stream_params(const roomd_stream *s, size_t *ret_len);
roomd_conn *roomd_stream_conn(const roomd_stream *s);
/* Send one value (JSON text, checked) to the stream's client. 0, -EINVAL. */
int roomd_stream_emit(roomd_ctx *ctx, roomd_stream *s, const char *json, size_t len);
/* Emit to every open stream of `method`; returns how many got it. */
size_t roomd_stream_emit_all(roomd_ctx *ctx, const char *method, const char *json, size_t len);
/* End a stream: the client's call resolves with result (JSON text; NULL:
 * null). The handle is invalid afterwards. */
int roomd_stream_end(roomd_ctx *ctx, roomd_stream *s, const char *json, size_t len);

/* Authentication (the gateway's --jwt-secret / --jwt-key): the verified
 * JWT payload as JSON text (not NUL-terminated; *ret_len bytes), or NULL
 * when the client presented no token. roomd_ctx_claims is the claims of the
 * request being handled (in `connect` and `http`); roomd_conn_claims those
 * the connection was opened with (valid as long as the connection, across
 * hibernation and shard restarts). `connect` may refuse based on them with
 * roomd_reject(ctx, 403, ...). */
const char *roomd_ctx_claims(roomd_ctx *ctx, size_t *ret_len);
const char *roomd_conn_claims(const roomd_conn *conn, size_t *ret_len);

/* In `http`: answer. content_type NULL means text/plain; charset=utf-8. */
int roomd_http_reply(roomd_ctx *ctx, int status, const char *content_type,
                     const void *body, size_t len);

/* --- federation: messages to other objects ------------------------------
 *
 * roomd_federate sends data to the `federate` callback of each object in
 * keys ("class/name"), wherever it lives: this shard directly, and with
 * --redis every shard of every cell that holds it live (has connections,
 * hibernated or not), through one Redis PUBLISH per key. An object held
 * nowhere is not built for it: that key reports -EHOSTUNREACH. Keys for
 * which filter(ud, key) returns 0 are not sent (-ECANCELED; filter NULL:
 * all keys), as with the seed's federateWithFilter.
 *
 * Returns the call's id (> 0), or a negative errno for the whole call
 * (-EINVAL: no keys or more than ROOMD_FEDERATE_MAX_KEYS, a NULL key;
 * -E2BIG: data over ROOMD_FEDERATE_MAX_BYTES; -EAGAIN: too many calls
 * awaiting their results on this shard). The per-key outcome reaches the
 * caller's `federate_result` (the seed's federateWithErrors):
 *   0             delivered; holders says to how many instances
 *   -EHOSTUNREACH no live holder (Redis reached no subscriber)
 *   -ENETUNREACH  not on this shard, and without --redis nothing else is reachable
 *   -ENOTCONN     Redis is down or hung: not sent (or lost before its reply)
 *   -EAGAIN       too much already awaiting Redis: not sent
 *   -EPROTO       Redis refused the PUBLISH
 *   -ECANCELED    filtered out
 *   -EINVAL       not a valid key
 *   -ENOENT       no such class on this shard
 *   -EOPNOTSUPP   the class has no federate callback
 *   -EIO          the class refused to wake the (local) object
 * Delivery is at most once per instance; there is no ordering between keys.
 * Each instance of a key (one per cell holding it) runs its own `federate`:
 * to reach every member once, a handler sends to its own connections
 * (roomd_send), since roomd_broadcast also reaches the other cells' members.
 * holders counts Redis subscribers: it can be one too high while an
 * instance is joining or leaving. */
#define ROOMD_FEDERATE_MAX_KEYS 1000
#define ROOMD_FEDERATE_MAX_BYTES (64 * 1024)
typedef int (*roomd_federate_filter)(void *ud, const char *key);
int64_t roomd_federate(roomd_ctx *ctx, const char *const *keys, size_t nkeys, const void *data,
                       size_t len, roomd_federate_filter filter, void *ud);

/* Log through the shard's logger (logfmt, with the object key attached). */
void roomd_log(roomd_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define ROOMD_LOG_ERROR 0
#define ROOMD_LOG_WARN 1
#define ROOMD_LOG_INFO 2
#define ROOMD_LOG_DEBUG 3

#endif
