/* Gateway internals shared by the gateway's files. Not a public API. */
#ifndef GW_H
#define GW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>

#include "gw_jwt.h"
#include "http_parser.h"
#include "pr_msg.h"
#include "rd_buf.h"
#include "rd_hist.h"
#include "rd_map.h"
#include "ws_deflate.h"
#include "ws_frame.h"

/* Bytes queued for clients. A broadcast is framed once into one blob and
 * every recipient's queue references it. */
typedef struct gw_blob {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
} gw_blob;

typedef struct gw_out {
    struct gw_out *next;
    gw_blob *blob;
    uint32_t off;
    bool droppable;           /* a data message the slow-consumer policy may drop */
} gw_out;

gw_blob *gw_blob_new(size_t len);
void gw_blob_unref(gw_blob *b);

/* Connection states:
 *
 *  TLS_HS --> HTTP --(upgrade)--> WAIT_OPEN --ACCEPT--> WS --close--> CLOSING --> LINGER --> freed
 *                                                         |                ^
 *                                  client's close frame   +-> CLOSE_WAIT --+ shard's CLOSE ack:
 *                                                                            its replies are out
 *              |  ^                   |REJECT               (flush, then shutdown(WR), drain)
 *              |  +--keep-alive--+    v
 *              +--(object HTTP)--> WAIT_HTTP --HTTP_RES--> HTTP or CLOSING
 */
enum gw_conn_state {
    GW_C_TLS_HS,
    GW_C_HTTP,
    GW_C_WAIT_OPEN,
    GW_C_WAIT_HTTP,
    GW_C_WS,
    GW_C_CLOSE_WAIT,          /* client sent close; shard output still draining */
    GW_C_CLOSING,
    GW_C_LINGER,
    GW_C_DEAD,
};

typedef struct gw_shard gw_shard;

/* An object's auto-response: a text message equal to request is answered
 * with the pre-framed response without involving the shard. */
typedef struct gw_autoresp {
    char *key;
    size_t key_len;
    char *request;
    size_t request_len;
    struct gw_blob *response;
} gw_autoresp;

/* Per client address, for --max-per-ip. */
typedef struct gw_ip {
    char addr[48];
    uint32_t conns;
} gw_ip;

typedef struct gw_conn {
    uint64_t id;
    int fd;
    uint8_t state;
    bool tls;
    bool write_armed;         /* waiting for EV_WRITE */
    bool read_paused;
    bool flush_pending;       /* on the flush list */
    bool close_after_flush;
    bool shard_open;          /* the shard holds a connection record for us */
    bool tls_read_wants_write;
    bool tls_write_wants_read;
    int tls_write_len;        /* OpenSSL wants a retried SSL_write repeated with this length */
    SSL *ssl;                 /* during the handshake, and after it if OpenSSL keeps the records */
    struct gw_tls13 *t13;     /* TLS 1.3 records protected by us (gw_tls13.h); NULL otherwise */
    struct event ev_read;
    struct event ev_write;
    rd_buf in;                /* unprocessed input (partial head or frame) */
    gw_out *out_head, *out_tail;
    size_t out_bytes;
    ws_reader *ws;
    gw_shard *shard;
    uint32_t shard_gen;       /* the link generation the shard record belongs to */
    char *key;                /* object key "class/name" (upgrade, object HTTP) */
    bool keep_alive;          /* for the HTTP request being answered */
    bool head_request;
    bool ping_sent;           /* idle probe outstanding */
    bool resume_wait;         /* its shard restarted: reading paused until OPEN{resumed} is accepted */
    bool handoff;             /* its object is moving to another shard: reading paused */
    bool move_queued;         /* its object's move waits for its turn (--handoff-concurrency) */
    uint64_t handoff_us;      /* when the move began (monotonic µs), for the pause histogram */
    struct gw_admin *admin;   /* an admin request waiting for the shards' INFO answers */
    uint8_t client_id[16];    /* UUIDv7, the same across shard restarts */
    uint64_t connected_at;    /* ms since the epoch */
    uint8_t ntags;
    uint32_t attachment_len;
    uint32_t tags_len;
    uint8_t *attachment;      /* the class's, kept for resumes */
    uint8_t *tags;            /* msgpack strings, ntags of them, kept for resumes */
    uint16_t close_echo;      /* CLOSE_WAIT: the code to answer with (0: empty close) */
    const char *close_reason; /* CLOSE_WAIT: static or the reader's, NULL for none */
    bool over_ip_limit;       /* answer the first request with 429 */
    bool link_paused;         /* reading stopped: the shard link is full */
    uint32_t tokens;          /* message-rate bucket, in thousandths of a message */
    uint64_t tokens_ms;
    gw_ip *ip;
    bool pmd;                 /* permessage-deflate negotiated */
    uint8_t pmd_key;          /* index into gw.deflaters / gw.inflaters when shared */
    ws_pmd_params pmd_params;
    ws_deflater *deflater;    /* own, only with server context takeover */
    ws_inflater *inflater;    /* own, only with client context takeover */
    struct gw_conn *pause_next; /* on the shard's paused list */
    uint64_t deadline_ms;     /* for the timeout list it is on */
    struct gw_conn *tq_next, *tq_prev;
    int tq;                   /* which timeout list, -1 none */
    struct gw_conn *flush_next;
    struct gw_conn *reap_next;
    char *claims;             /* verified JWT claims (JSON), NULL: none; kept for resumes */
    uint32_t claims_len;
    char remote[56];
    uint64_t sent_ns;         /* OPEN or HTTP_REQ handed to the shard at (for /metrics) */
} gw_conn;

struct gw_shard {
    int index;
    char name[64];
    char path[256];
    int fd;
    bool up;                  /* HELLO exchanged */
    bool member;              /* in the routing set (rendezvous hashing is over members) */
    bool present;             /* discovery mode: its socket is in --shard-dir */
    uint32_t seen_scan;       /* discovery mode: the last directory scan that found its socket */
    bool retiring;            /* spawn mode: removed by a resize; stopped once nothing uses it */
    bool stop_sent;           /* retiring: SIGTERM sent */
    bool joining;             /* spawn mode: added by a resize, not up yet */
    bool listed;              /* --workers: in the parent's members file */
    bool drained;             /* retiring: the shard reports no connection from any gateway */
    bool flush_pending;
    bool write_armed;
    uint32_t gen;             /* bumped on every link loss */
    struct event ev_read;
    struct event ev_write;
    struct event ev_retry;
    uint64_t retry_ms;
    rd_buf in;
    rd_buf out;
    gw_shard *flush_next;
    bool full;                /* out above the high watermark: feeding clients paused */
    uint64_t down_since_ms;   /* link lost at (monotonic); 0 while up */
    uint8_t fed;              /* federation state from the last PONG: 0 off, 1 ok, 2 degraded */
    uint64_t fed_published, fed_dropped, fed_received, fed_gaps, fed_hangs; /* from the last PONG */
    uint64_t objects_live, objects_hibernated;                  /* from the last PONG */
    rd_hist commit_hist, event_hist, fed_lag_hist;              /* from the last PONG */
    struct gw_conn *paused;   /* clients waiting for this link to drain */
    char **classes;
    size_t nclasses;
    char **methods;           /* "class.method" from HELLO */
    bool *method_stream;      /* per method: a streaming one */
    size_t nmethods;
    /* spawn mode */
    pid_t pid;
    struct event ev_restart;
    uint64_t restart_ms;
    uint64_t started_mono_ms;
    unsigned restarts;
};

typedef struct gw_config {
    char *shard_dir;          /* discovery mode: follow the shard sockets in this directory */
    uint64_t shard_timeout;   /* discovery mode: a member unreachable this long leaves the set */
    char *admin_key;          /* /admin/... bearer key; NULL: admin API off */
    int64_t workers;          /* gateway processes on the same ports (SO_REUSEPORT) */
    bool reuseport;           /* set SO_REUSEPORT on the listeners */
    int64_t worker;           /* internal: this process is worker N (> 0) of a --workers parent */
    uint64_t handoff_timeout; /* give up waiting for the old owner's DETACHED */
    int64_t handoff_concurrency; /* objects moving at once from live shards */
    char *listen;
    char *tls_listen;
    char *cert;
    char *key;
    int64_t shards;
    char *shard_bin;
    char *run_dir;
    char *data_dir;
    char *name;
    char *log_level;
    char *log_format;
    char *publish_key;
    char *public_url;
    char *jwt_secret;
    char *jwt_key;
    uint64_t jwt_leeway;
    char **jwt_classes;
    char *config;
    char *route;
    uint64_t max_head;
    int64_t max_headers;
    uint64_t max_body;
    uint64_t max_frame;
    uint64_t max_message;
    uint64_t handshake_timeout;
    uint64_t close_timeout;
    int64_t max_connections;
    uint64_t max_key;
    uint64_t resume_timeout;
    char **modules;
    char *hibernate_after;    /* passed to shards as text */
    char *durability;
    char *redis;              /* spawn mode: passed to shards (federation), NULL: off */
    char *redis_timeout;      /* passed to shards as text */
    int64_t max_per_ip;
    uint64_t idle_timeout;
    int64_t msg_rate;
    int64_t msg_burst;
    uint64_t max_write_turn;
    uint64_t max_outbound;
    char *slow_policy;
    uint64_t link_high;
    char *allowed_origins;
    uint64_t drain_timeout;
    bool compression;
    bool compression_takeover;
    bool tls_offload;
    int64_t compression_level;
    int64_t compression_window;
    int64_t compression_mem_level;
    uint64_t compression_min;
} gw_config;

/* Why a WebSocket handshake failed, for /metrics. */
enum gw_hs_fail {
    GW_HSF_BAD_REQUEST,       /* not a valid RFC 6455 upgrade (400, 426) */
    GW_HSF_ORIGIN,            /* --allowed-origins (403) */
    GW_HSF_UNKNOWN_CLASS,     /* 404 */
    GW_HSF_UNAVAILABLE,       /* no shard, or the owning shard is down (503) */
    GW_HSF_REJECTED,          /* the object refused it (REJECT: maxConnections, the class) */
    GW_HSF_COUNT,
};

/* Counters for /metrics. */
typedef struct gw_stats {
    uint64_t accepted;
    uint64_t handshakes_ok;
    uint64_t http_requests;
    uint64_t refused_per_ip;
    uint64_t refused_origin;
    uint64_t msgs_in, bytes_in;
    uint64_t msgs_out, bytes_out;
    uint64_t broadcasts, deliveries;
    uint64_t closed_rate;
    uint64_t closed_slow;
    uint64_t closed_idle;
    uint64_t closed_protocol;
    uint64_t dropped_slow;          /* messages dropped by the drop-oldest policy */
    uint64_t dropped_slow_bytes;
    uint64_t link_pauses;           /* clients paused because their shard link was full */
    uint64_t accept_pauses;
    uint64_t pings_sent;
    uint64_t resumed;               /* connections re-opened on a restarted shard */
    uint64_t auto_responses;
    uint64_t resume_failed;
    uint64_t auth_refused;          /* 401/403 from JWT authentication */
    uint64_t heartbeats;            /* /client.js heartbeats answered */
    uint64_t compressed_out;        /* messages sent compressed (per compression, not per recipient) */
    uint64_t compressed_in;
    uint64_t pmd_conns;             /* connections with per-connection zlib state now */
    uint64_t pmd_conn_memory;       /* their estimated zlib memory */
    uint64_t hs_failed[GW_HSF_COUNT];
    uint64_t tls_failed;            /* TLS handshakes that failed */
    uint64_t tls_offloaded;         /* TLS 1.3 connections whose records we protect (gw_tls13) */
    uint64_t tls_record_errors;     /* connections ended by a bad record or an alert (gw_tls13) */
    uint64_t dropped_closed;        /* shard messages for a connection no longer open */
    rd_hist open_hist;              /* OPEN -> ACCEPT/REJECT */
    rd_hist http_hist;              /* HTTP_REQ -> HTTP_RES */
    uint64_t set_changes;           /* routing set changes */
    uint64_t handoffs;              /* objects moved between shards */
    uint64_t handoff_conns;         /* connections moved */
    uint64_t handoff_timeouts;      /* moves completed without the old owner's answer */
    uint64_t handoff_pause_us[8];   /* pause per moved connection: <=1,2,5,10,50,250,1000 ms, more */
    uint64_t handoff_pause_sum_us;
} gw_stats;

#define GW_PMD_SHARED 16


enum { GW_TQ_HANDSHAKE = 0, GW_TQ_CLOSE = 1, GW_TQ_IDLE = 2, GW_TQ_COUNT = 3 };

typedef struct gw_server {
    gw_config cfg;
    char name[96];
    struct event_base *base;
    SSL_CTX *ssl_ctx;
    int listen_fd[2];         /* plaintext, TLS */
    struct event ev_listen[2];
    struct event ev_accept_retry;
    struct event ev_tick;
    bool accept_paused;
    gw_shard **shards;        /* every shard ever known; never freed before exit */
    size_t nshards, shards_cap;
    const char **route_names; /* the members' names, for rendezvous hashing */
    gw_shard **route;         /* the members */
    size_t nroute;
    rd_map handoffs;          /* object key -> gw_handoff: moves waiting for DETACHED */
    int inotify_fd;           /* discovery mode */
    struct event ev_inotify;
    rd_map conns;             /* id -> gw_conn */
    uint64_t next_conn_id;
    size_t nconns;
    gw_conn *flush_list;
    gw_shard *shard_flush_list;
    gw_stats stats;
    rd_map ips;               /* address -> gw_ip */
    ws_pmd_policy pmd_policy;
    /* Stateless (no context takeover) deflaters and inflaters, one per
     * sharing key: a broadcast is compressed once per key. */
    unsigned deflater_keys[GW_PMD_SHARED];
    ws_deflater *deflaters[GW_PMD_SHARED];
    size_t ndeflaters;
    unsigned inflater_keys[GW_PMD_SHARED];
    ws_inflater *inflaters[GW_PMD_SHARED];
    size_t ninflaters;
    rd_map autoresp;          /* object key -> gw_autoresp */
    rd_buf inflated;          /* scratch for one decompressed message */
    rd_buf deflated;          /* scratch for one compressed message */
    char **origins;           /* --allowed-origins, split; NULL: any */
    size_t norigins;
    gw_conn *reap_list;
    gw_conn *tq_head[GW_TQ_COUNT], *tq_tail[GW_TQ_COUNT];
    uint8_t *scratch;         /* read buffer shared by all connections */
    bool stopping;
    char self_dir[512];
    gw_jwt_keys jwt;          /* --jwt-secret / --jwt-key; both empty: tokens are ignored */
} gw_server;

extern gw_server gw;

#define GW_SCRATCH (64 * 1024)

/* gw_conn.c */
void gw_accept_cb(evutil_socket_t fd, short what, void *arg);
void gw_accept_retry_cb(evutil_socket_t fd, short what, void *arg);
void gw_conn_flush_all(void);
void gw_conn_reap(void);
void gw_conn_tick(void);
void gw_conn_on_accept(gw_conn *c, const pr_msg *m);
void gw_conn_on_reject(gw_conn *c, const pr_msg *m);
void gw_conn_on_send(gw_conn *c, const pr_msg *m);
void gw_conn_on_broadcast(gw_shard *s, const pr_msg *m);
void gw_conn_on_close(gw_conn *c, const pr_msg *m);
void gw_conn_on_http_res(gw_conn *c, const pr_msg *m);
void gw_conn_on_meta(gw_conn *c, const pr_msg *m);
void gw_autoresp_set(const pr_msg *m);
void gw_autoresp_free_all(void);
/* The shard's link went down: fail everything routed to it. */
void gw_conn_shard_lost(gw_shard *s);
/* The shard's link is up again: re-open its connections, resumed. */
void gw_conn_shard_up(gw_shard *s);
void gw_conn_close_all(uint16_t code, const char *reason);
void gw_conn_kill_all(void);
void gw_metrics_render(rd_buf *b);
/* The shard link drained below its low watermark: resume paused clients. */
void gw_conn_link_drained(gw_shard *s);
/* The routing set changed: move every connection whose object has a new owner. */
void gw_conn_rebalance(void);
void gw_conn_on_detached(gw_shard *s, const pr_msg *m);
void gw_conn_on_info(gw_shard *s, const pr_msg *m);
/* Outstanding moves and admin requests that ran out of time. */
void gw_conn_handoff_tick(void);
void gw_conn_handoff_free_all(void);
/* Connections and moves that still reference s. */
bool gw_conn_shard_in_use(const gw_shard *s);
bool gw_conn_flush_pending(void);

/* gw_link.c */
int gw_link_init(void);
void gw_link_connect(gw_shard *s);
void gw_link_want_flush(gw_shard *s);
void gw_link_flush_all(void);
void gw_link_poll_all(void);
bool gw_class_known(const char *cls, size_t len);
/* The shard whose HELLO lists the classes' methods (the first one up), or NULL. */
const gw_shard *gw_methods_source(void);
bool gw_any_shard_up(void);
void gw_link_shutdown(void);
/* Ask every shard that is up how it is (PING; the PONG carries federation state). */
void gw_link_ping_all(void);
/* The shard named name (created, not connected, when new). */
gw_shard *gw_shard_get(const char *name, bool create);
/* Recompute the routing set from the members; rebalance when it changed. */
void gw_route_update(void);
/* Discovery mode (--shard-dir): watch the directory; rescan on the tick. */
int gw_discover_init(char err[RD_ERR_LEN]);
void gw_discover_scan(void);
/* Discovery mode: drop members unreachable for --shard-timeout. */
void gw_link_tick(void);

/* gw_route.c */
typedef struct gw_target {
    const char *cls;          /* into the request target */
    size_t cls_len;
    char name[1024];          /* percent-decoded object name */
    size_t name_len;
    const char *rest;         /* path after /<class>/<name>, "" or "/..." */
    size_t rest_len;
    const char *query;        /* after '?', without it */
    size_t query_len;
} gw_target;
/* 1: an object path; 0: not one (gateway routes or 404); -EINVAL: an object
 * path that is malformed (400, err says why). */
int gw_route_parse(const char *target, size_t len, size_t max_name, gw_target *ret,
                   char err[RD_ERR_LEN]);
gw_shard *gw_route_pick(const char *key, size_t len);

/* gw_assets.c: files embedded at build time (client/). */
typedef struct gw_asset {
    const char *path;         /* "/client.js" */
    const char *ctype;
    const unsigned char *body;
    size_t len;
    unsigned char *gz;        /* gzip of body, NULL if compression failed */
    size_t gz_len;
    char etag[24];            /* "\"<16 hex digits>\"" */
} gw_asset;
void gw_assets_init(void);
void gw_assets_free(void);
const gw_asset *gw_asset_find(const char *path, size_t len);

/* gw_spawn.c */
/* --workers: the parent starts workers 1..N-1 (this binary again, following
 * the shard sockets in --run-dir, on the same ports) and restarts them. */
int gw_spawn_workers(int argc, char **argv);
int gw_spawn_start(void);
void gw_spawn_stop(void);
void gw_spawn_stop_workers(void);
/* A worker hands a resize to its parent (a file in --run-dir and SIGUSR1);
 * the parent applies it in gw_spawn_resize_requested(). */
int gw_spawn_forward_resize(size_t n, char err[RD_ERR_LEN]);
void gw_spawn_resize_requested(void);
/* Change the number of spawned shards: new ones join the routing set when
 * they are up; removed ones leave it at once and are stopped once their
 * connections have moved. */
int gw_spawn_resize(size_t n, char err[RD_ERR_LEN]);
void gw_spawn_tick(void);
void gw_spawn_restart_cb(evutil_socket_t fd, short what, void *arg);
/* Shards added by one resize join the set together, once all are up (or
 * after 10 s, those that are), so each object moves at most once. */
void gw_spawn_admit(bool force);

/* gw_tls.c */
SSL_CTX *gw_tls_ctx_new(const char *cert, const char *key, char err[RD_ERR_LEN]);
void gw_tls_log_errors(const char *what);

/* ws_handshake.c */
#include "ws_handshake.h"

#endif
