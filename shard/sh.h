/* Shard internals shared by the shard's files. Not a public API. */
#ifndef SH_H
#define SH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "pr_msg.h"
#include "rd_buf.h"
#include "rd_hist.h"
#include "rd_map.h"
#include "rd_uuid.h"
#include "roomd_module.h"
#include "sh_store.h"

typedef struct sh_object sh_object;

/* One gateway's stream. */
typedef struct sh_link {
    uint64_t id;
    int fd;
    struct event *ev_read;
    struct event *ev_write;
    rd_buf in;
    rd_buf out;
    char peer[64];              /* gateway name from HELLO */
    bool hello;                 /* gateway's HELLO received */
    bool closing;               /* stop; free in the deferred pass */
    bool flush_pending;         /* on the pending-flush list */
    bool write_armed;
    rd_map conns;               /* conn id -> roomd_conn */
    uint32_t scratch;           /* recipients counted during a broadcast */
    struct sh_link *next, *prev;        /* all links */
    struct sh_link *flush_next;         /* pending-flush list */
} sh_link;

struct roomd_conn {
    sh_link *link;
    uint64_t id;
    sh_object *obj;
    size_t index;               /* position in obj->conns */
    uint64_t connected_at;
    bool closing;               /* the class closed it; waiting for the gateway */
    uint8_t ntags;
    uint32_t attachment_len;
    uint8_t *attachment;
    char **tags;
    uint64_t autoresp_at;
    char *claims;               /* verified JWT payload (JSON), NULL: none */
    size_t claims_len;
    char client_id[RD_UUID_STR_LEN + 1];
};

/* An object's open RPC streams (sh_rpc.c), allocated with the first one. */
typedef struct sh_streams {
    uint32_t n, cap;
    roomd_stream *s[];
} sh_streams;

/* Kept small: a hibernated object is this record (its key inline) and its
 * slot in sh.objects; an object with one connection needs no member array. */
struct sh_object {
    const roomd_class *cls;
    void *state;
    roomd_conn **conns;         /* open connections, join order: &one, or an array */
    roomd_conn *one;            /* the member array while there is at most one */
    sh_store *store;            /* opened on first storage use; closed when evicted */
    char *ar_request;           /* auto-response pair, NULL: none */
    char *ar_response;
    struct sh_fed_obj *fed;     /* sh_fed.c's state (subscription, sequences); NULL without --redis */
    struct sh_streams *streams; /* open RPC streams, oldest first (sh_rpc.c); NULL: none */
    uint32_t last_event_ms;     /* monotonic, truncated: only differences are used */
    uint32_t nconns, cap;
    uint16_t key_len;           /* keys are at most 2048 bytes + class */
    uint16_t name_off;          /* the name (resourceId) starts at key + name_off */
    uint16_t busy;              /* callbacks running: never evict inside one */
    bool hibernated;            /* destroy ran; state is gone; conns are kept */
    bool dirty;                 /* writes wait for the end of the loop turn's commit */
    char key[];                 /* "class/name", NUL-terminated */
};

struct roomd_ctx {
    sh_object *obj;
    /* connect */
    int reject_status;
    char *reject_reason;
    const char *offered;        /* raw Sec-WebSocket-Protocol value */
    size_t offered_len;
    char protocol[128];
    bool protocol_set;
    /* storage: values handed out during this callback */
    void **allocs;
    size_t nallocs;
    char err[RD_ERR_LEN];
    /* connect, http: the request's verified JWT claims (borrowed) */
    const char *claims;
    size_t claims_len;
    /* http */
    sh_link *http_link;
    uint64_t http_req;
    bool replied;
};

typedef struct sh_config {
    char *name;
    char *run_dir;
    char *data_dir;
    char *log_level;
    char *log_format;
    char *config;
    uint64_t max_frame;         /* proto frame cap from gateways */
    uint64_t link_high;         /* output queued to one gateway before all input pauses */
    char **modules;             /* --module, repeatable */
    uint64_t hibernate_after;   /* ms without events before an object with connections is evicted */
    char *durability;           /* "normal" or "full" */
    char *redis;                /* federation (sh_fed.c): redis://... or NULL */
    uint64_t redis_timeout;     /* ms a Redis reply may take before the connection counts as hung */
} sh_config;

typedef struct sh_server {
    sh_config cfg;
    struct event_base *base;
    int listen_fd;
    struct event *ev_listen;
    char sock_path[256];
    sh_link *links;
    sh_link *flush_list;
    uint64_t next_link_id;
    rd_map objects;             /* key -> sh_object */
    bool stopping;
    bool input_paused;          /* a gateway link is over the high watermark */
    size_t hibernated;          /* objects hibernating now */
    sh_object **dirty;          /* objects with a commit pending this loop turn */
    size_t ndirty, dirty_cap;
    sh_store *alarm_index;      /* <data-dir>/_alarms/<name>: object key -> due time */
    struct sh_alarm *alarms;    /* min-heap by due time */
    size_t nalarms, alarms_cap;
    uint64_t alarms_fired;
    uint64_t hibernations, wakes;
    uint64_t input_pauses;
    rd_hist commit_hist;        /* storage commits that wrote something */
    rd_hist event_hist;         /* handling one client message (the class's callback) */
} sh_server;

extern sh_server sh;

/* sh_link.c */
void sh_link_accept_cb(evutil_socket_t fd, short what, void *arg);
void sh_link_want_flush(sh_link *l);
void sh_link_flush_all(void);
void sh_link_close(sh_link *l, const char *why);
void sh_link_reap(void);
/* Pause reading every gateway while one of them is not taking our output. */
void sh_link_backpressure(void);

/* sh_object.c */
void sh_object_handle(sh_link *l, const pr_msg *m);
void sh_object_link_gone(sh_link *l);
void sh_object_shutdown(void);
size_t sh_object_hibernated_bytes(void);
/* Periodic: hibernate objects idle for --hibernate-after. */
void sh_object_tick(void);
/* A gateway joined: tell it every auto-response in force. */
void sh_object_link_hello(sh_link *l);
void sh_conn_free_meta(roomd_conn *c);
/* Send an object's auto-response pair (or its absence) to every gateway. */
void sh_autoresp_publish(sh_object *o);

/* sh_module.c */
void sh_module_register_builtins(void);
/* The end of a callback: commit the object's storage transaction (the
 * output gate: nothing is flushed before this) and free what the callback
 * was handed. A failed commit stops the shard. */
void sh_event_end(roomd_ctx *ctx);
/* roomd_broadcast's local half: one BROADCAST per gateway, nothing published
 * (sh_fed.c delivers what arrives from Redis with it). */
size_t sh_broadcast_local(sh_object *o, int opcode, const void *data, size_t len,
                          const roomd_conn *except);

/* sh_alarm.c: the shard's alarm schedule. The index (a store of its own)
 * lists every object with an alarm so a restarted shard finds them; each
 * object's own store holds the authoritative time. */
typedef struct sh_alarm {
    uint64_t at;                /* ms since the epoch */
    unsigned retries;
    char *key;
} sh_alarm;
int sh_alarm_init(char err[RD_ERR_LEN]);
void sh_alarm_shutdown(void);
/* Record in the index (before the object's own commit) and schedule. */
int sh_alarm_schedule(const char *key, size_t klen, uint64_t at, unsigned retries);
/* Drop an object from the index (its alarm is gone). */
void sh_alarm_forget(const char *key);
/* The routing set (SET from a gateway): offer the alarms of objects other
 * shards own to them. */
void sh_alarm_set_members(const pr_msg *m);
/* Alarms held for objects this shard does not own (for INFO). */
size_t sh_alarm_foreign(void);
/* ALARM_MOVE: record an alarm given to us, confirm with ALARM_MOVED. */
void sh_alarm_take(sh_link *l, const pr_msg *m);
/* ALARM_MOVED: the owner has it; drop ours. */
void sh_alarm_given(const pr_msg *m);
/* Fire what is due (from the tick). */
void sh_alarm_tick(void);
/* sh_object.c, for sh_federate.c and sh_fed.c: run the class's federate
 * callback on o (woken first if hibernated; evicted after if nobody is
 * connected). 0, -EOPNOTSUPP (no such callback), -EIO (the class refused
 * to wake it). */
int sh_object_federate(sh_object *o, const char *from, const uint8_t *data, size_t len);
/* Hand a roomd_federate call's results to its caller, built again if it was
 * evicted meanwhile. */
void sh_object_federate_result(const char *key, size_t klen, uint64_t id,
                               const roomd_federate_result *res, size_t n);
/* sh_federate.c: the calls awaiting results; free them unanswered at exit. */
void sh_federate_shutdown(void);

/* sh_object.c: run one due alarm; returns < 0 when it must be retried. */
int sh_object_fire_alarm(const char *key, size_t klen, uint64_t at, unsigned retries);
/* Group commit: every object's events of one loop turn share one commit
 * (one fsync with --durability full), done here before any output leaves.
 * sh_commit_object commits one object now (before it is closed, or before
 * an alarm attempt that may have to roll back only its own writes). */
void sh_commit_dirty(void);
void sh_commit_object(sh_object *o);
/* Take o off the pending list without committing (its store is being
 * rolled back and closed). */
void sh_dirty_forget(sh_object *o);
/* dlopen a module and run its roomd_module_init(). 0 or negative errno. */
int sh_module_load(const char *path, char err[RD_ERR_LEN]);
const roomd_class *sh_module_find(const char *name, size_t len);
size_t sh_module_names(const char **out, size_t max);
/* Every class's methods as "class.method" (malloc'd: the caller frees each)
 * and their kinds ("call" or "stream"). */
size_t sh_module_methods(char **names, const char **kinds, size_t max);
void sh_module_shutdown(void);

/* sh_rpc.c: JSON-RPC over WebSockets and HTTP. */
/* The class's method table (NULL for version 1 classes, which have none). */
static inline const roomd_method *sh_class_methods(const roomd_class *cls)
{
    return cls->version >= 2 ? cls->methods : NULL;
}
const roomd_method *sh_rpc_find(const roomd_class *cls, const char *name);
/* A text message that is a JSON-RPC request (rpc_codec.h sh_rpc_is_request). */
void sh_rpc_frame(roomd_ctx *ctx, roomd_conn *c, const uint8_t *p, size_t n);
/* Run m; conn NULL answers the HTTP request in ctx. */
void sh_rpc_invoke(roomd_ctx *ctx, roomd_conn *conn, const roomd_method *m, const char *id, bool notify,
                   const char *params, size_t plen);
/* The connection is gone: drop its streams. */
void sh_rpc_conn_gone(sh_object *o, roomd_conn *c);

/* built-in classes */
extern const roomd_class cls_echo;
extern const roomd_class cls_chat;
extern const roomd_class cls_mirror;
extern const roomd_class cls_counter;
extern const roomd_class cls_kv;

#endif
