/* pr_msg: the gateway <-> shard wire protocol (DESIGN §4), version 1.
 *
 * Stream framing: a 4-byte big-endian length, then that many bytes holding
 * exactly one msgpack array [type, fields...]. Frames larger than the
 * receiver's cap (PR_FRAME_MAX by default) are a protocol error that closes
 * the link. Unknown trailing array elements are ignored (forward compatible);
 * missing or mistyped ones are errors.
 *
 *  HELLO       [1, version, role, name, classes[str],      role: "gateway"|"shard"
 *                 methods{str:str}]                        methods (optional, shard ->
 *                                                          gateway): "class.method" ->
 *                                                          "call" | "stream"
 *  OPEN        [2, conn, key, client_id, connected_at_ms, flags, subprotocols,
 *                 remote, query, headers{str:str}, attachment(bin), tags[str], claims]
 *                                                          flags: PR_OPEN_RESUMED; the last
 *                                                          three are optional (empty):
 *                                                          attachment and tags come with
 *                                                          resumed connections, claims
 *                                                          (the verified JWT payload, JSON)
 *                                                          with authenticated ones
 *  ACCEPT      [3, conn, subprotocol|nil]
 *  REJECT      [4, conn, status, body]
 *  CLOSE       [5, conn, code, reason]                     either direction; the shard
 *                                                          answers every gateway CLOSE
 *                                                          with one (an acknowledgement
 *                                                          that follows all its output
 *                                                          for that connection)
 *  FRAME       [6, conn, opcode, payload(bin)]             gateway -> shard
 *  SEND        [7, conn, opcode, payload(bin)]             shard -> gateway
 *  BROADCAST   [8, opcode, payload(bin), conns[uint]]      shard -> gateway, one per gateway
 *  HTTP_REQ    [9, req, key, method, path, query, headers{str:str}, body(bin), remote,
 *                 claims]                                  claims optional, as in OPEN
 *  HTTP_RES    [10, req, status, headers{str:str}, body(bin)]
 *  PING        [11, token]
 *  PONG        [12, token, status, published, dropped,    the rest optional (shard ->
 *                 received, gaps, hangs, live, hibernated, gateway): federation state
 *                 commit_hist[uint], event_hist[uint],     0 off, 1 ok, 2 degraded, and
 *                 fed_lag_hist[uint]]                      its counters; objects in
 *                                                          memory and hibernated now;
 *                                                          histograms (pr_put_hist) of
 *                                                          storage commits, message
 *                                                          events and the federation
 *                                                          round trip through Redis
 *  META        [13, conn, what, attachment(bin), tags[str]]  shard -> gateway: the class set
 *                                                          a connection's attachment (what
 *                                                          bit 1) and/or tags (bit 2); the
 *                                                          gateway keeps them for resumes
 *  AUTORESP    [14, key, request, response]               shard -> gateway: the object's
 *                                                          auto-response pair (empty
 *                                                          request: none)
 *  AUTOHIT     [15, conn, at_ms]                          gateway -> shard: the gateway
 *                                                          answered an auto-response
 *  PUBLISH     [16, req, key, opcode, payload(bin)]       gateway -> shard: a backend's
 *                                                          POST .../publish; answered
 *                                                          with HTTP_RES for req
 *  DETACH      [17, key, conns[uint]]                      gateway -> shard: hand these
 *                                                          connections of key to another
 *                                                          shard: dropped without a close
 *                                                          event; the object hibernates
 *                                                          (state destroyed, storage
 *                                                          committed and closed: its lock
 *                                                          released) and is forgotten once
 *                                                          no connection is left here
 *  DETACHED    [18, key, conns[uint]]                      shard -> gateway: DETACH done
 *                                                          (the same list); follows all the
 *                                                          shard sent those connections
 *  INFO        [25, req, key]                              gateway -> shard: counts, and
 *                                                          key's state ("" for none)
 *  INFO_RES    [26, req, objects, hibernated, conns,       shard -> gateway: objects held,
 *                 found, key_hibernated, key_conns]        hibernating, connections; then
 *                                                          whether key is held, hibernating,
 *                                                          and its connections
 *  SET         [27, members[str]]                          gateway -> shard: the routing set
 *                                                          (after HELLO and on every change)
 *  ALARM_MOVE  [28, key, at_ms, retries, shard]            shard -> gateway -> shard: key's
 *                                                          owner should keep this alarm;
 *                                                          shard: the one giving it up
 *  ALARM_MOVED [29, key, at_ms, shard]                     shard -> gateway -> shard: the
 *                                                          owner has it; shard (the giver)
 *                                                          may forget it
 *  INFO_RES also has an optional 8th field: alarms the shard holds for
 *  objects it does not own (being moved).
 *  CALL        [21, req, key, method, params(bin)]        gateway -> shard: a backend's
 *                                                          POST .../rpc/<method> (params:
 *                                                          JSON text); answered with
 *                                                          HTTP_RES for req (a JSON-RPC
 *                                                          response as the body)
 *  (19, 20 and 22-24 are reserved.)
 *
 * Strings that may be nil: ACCEPT subprotocol, REJECT body, CLOSE reason.
 * Every other string field must be a string (possibly empty).
 *
 * conn and req ids are chosen by the gateway and unique per gateway link.
 * Decoded messages point into the frame they were decoded from and are valid
 * while that frame's bytes are.
 */
#ifndef PR_MSG_H
#define PR_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "pr_mp.h"
#include "rd_buf.h"
#include "rd_hist.h"

#define PR_VERSION 1
#define PR_FRAME_MAX (16u * 1024 * 1024)
#define PR_FRAME_HDR 4

enum pr_type {
    PR_HELLO = 1,
    PR_OPEN = 2,
    PR_ACCEPT = 3,
    PR_REJECT = 4,
    PR_CLOSE = 5,
    PR_FRAME = 6,
    PR_SEND = 7,
    PR_BROADCAST = 8,
    PR_HTTP_REQ = 9,
    PR_HTTP_RES = 10,
    PR_PING = 11,
    PR_PONG = 12,
    PR_META = 13,
    PR_AUTORESP = 14,
    PR_AUTOHIT = 15,
    PR_PUBLISH = 16,
    PR_DETACH = 17,
    PR_DETACHED = 18,
    /* 19, 20, 22..24: reserved */
    PR_CALL = 21,
    PR_INFO = 25,
    PR_INFO_RES = 26,
    PR_SET = 27,
    PR_ALARM_MOVE = 28,
    PR_ALARM_MOVED = 29,
    PR_TYPE_MAX_ = 29,
};

#define PR_OPEN_RESUMED 0x1u
#define PR_META_ATTACHMENT 0x1u
#define PR_META_TAGS 0x2u
#define PR_MAX_TAGS 10
#define PR_MAX_TAG_LEN 256
#define PR_MAX_ATTACHMENT (16u * 1024)

typedef struct pr_str {
    const char *p;
    size_t n;
} pr_str;

typedef struct pr_bytes {
    const uint8_t *p;
    size_t n;
} pr_bytes;

/* A lazily walked list (string map or uint array) inside a decoded frame;
 * the decoder has already validated every element. */
typedef struct pr_list {
    pr_mp_cur cur;
    uint32_t n;
} pr_list;

typedef struct pr_msg {
    int type;
    union {
        struct { uint64_t version; pr_str role, name; pr_list classes, methods; } hello;
        struct { uint64_t conn; pr_str key, client_id; uint64_t connected_at; uint64_t flags;
                 pr_str subprotocols, remote, query; pr_list headers; pr_bytes attachment;
                 pr_list tags; pr_str claims; } open;
        struct { uint64_t conn; pr_str subprotocol; /* p == NULL: none */ } accept;
        struct { uint64_t conn; uint64_t status; pr_str body; } reject;
        struct { uint64_t conn; uint64_t code; pr_str reason; } close;
        struct { uint64_t conn; uint64_t opcode; pr_bytes payload; } frame; /* FRAME and SEND */
        struct { uint64_t opcode; pr_bytes payload; pr_list conns; } broadcast;
        struct { uint64_t req; pr_str key, method, path, query; pr_list headers; pr_bytes body;
                 pr_str remote, claims; } http_req;
        struct { uint64_t req; uint64_t status; pr_list headers; pr_bytes body; } http_res;
        struct { uint64_t token; uint64_t status, published, dropped, received, gaps, hangs;
                 uint64_t live, hibernated; pr_list commit_hist, event_hist, fed_lag_hist; } ping; /* PING, PONG */
        struct { uint64_t conn; uint64_t what; pr_bytes attachment; pr_list tags; } meta;
        struct { pr_str key, request, response; } autoresp;
        struct { uint64_t conn; uint64_t at; } autohit;
        struct { uint64_t req; pr_str key; uint64_t opcode; pr_bytes payload; } publish;
        struct { pr_str key; pr_list conns; } detach;               /* DETACH, DETACHED */
        struct { uint64_t req; pr_str key; } info;
        struct { uint64_t req, objects, hibernated, conns, found, key_hibernated, key_conns, alarms; } info_res;
        struct { pr_list members; } set;
        struct { pr_str key; uint64_t at, retries; pr_str shard; } alarm;   /* ALARM_MOVE, ALARM_MOVED */
        struct { uint64_t req; pr_str key, method; pr_bytes params; } call;
    } u;
} pr_msg;

/* Split the next frame off a stream buffer. Returns the total bytes the frame
 * occupies (> 0) and sets *ret_body and *ret_len to its msgpack body, 0 when more
 * bytes are needed, or -EMSGSIZE when the announced length exceeds max (or is
 * zero). */
int pr_frame_next(const uint8_t *buf, size_t len, size_t max,
                  const uint8_t **ret_body, size_t *ret_len);

/* Decode one frame body. 0 on success; -EBADMSG with err filled otherwise. */
int pr_msg_decode(const uint8_t *body, size_t len, pr_msg *ret, char err[RD_ERR_LEN]);
const char *pr_type_name(int type);

/* Walk a string list (HELLO classes) or string map (headers): 0 and the next
 * element, or -ENOENT when exhausted. For maps ret_v receives the value. */
int pr_list_next_str(pr_list *l, pr_str *ret);
int pr_list_next_kv(pr_list *l, pr_str *ret_k, pr_str *ret_v);
int pr_list_next_uint(pr_list *l, uint64_t *ret);

/* Encoding. pr_frame_begin reserves the length prefix and returns a token
 * for pr_frame_end (a position relative to the unread data, so it survives
 * the buffer compacting itself while growing); the caller appends one msgpack array with pr_mp_put_*;
 * pr_frame_end patches the length. pr_frame_end returns -EMSGSIZE (and
 * removes the frame) when the body exceeds PR_FRAME_MAX. */
size_t pr_frame_begin(rd_buf *b);
int pr_frame_end(rd_buf *b, size_t start);

/* One-call encoders for the fixed-shape messages; each appends a whole frame.
 * Return 0 or -EMSGSIZE. Strings with p == NULL are encoded as nil. */
int pr_enc_hello(rd_buf *b, const char *role, const char *name,
                 const char *const *classes, size_t nclasses);
/* HELLO with the methods map: names[i] ("class.method") -> kinds[i]. */
int pr_enc_hello_methods(rd_buf *b, const char *role, const char *name,
                         const char *const *classes, size_t nclasses,
                         const char *const *names, const char *const *kinds, size_t nmethods);
int pr_enc_accept(rd_buf *b, uint64_t conn, const char *subprotocol, size_t len);
int pr_enc_reject(rd_buf *b, uint64_t conn, unsigned status, const char *body, size_t len);
int pr_enc_close(rd_buf *b, uint64_t conn, unsigned code, const char *reason, size_t len);
int pr_enc_frame(rd_buf *b, int type /* PR_FRAME or PR_SEND */, uint64_t conn, unsigned opcode,
                 const void *payload, size_t len);
int pr_enc_ping(rd_buf *b, int type /* PR_PING or PR_PONG */, uint64_t token);
int pr_enc_info_req(rd_buf *b, uint64_t req, const char *key, size_t len);
/* counts: objects, hibernated, conns, found, key_hibernated, key_conns, alarms */
int pr_enc_info_res(rd_buf *b, uint64_t req, const uint64_t counts[7]);
/* ALARM_MOVE (with retries) or ALARM_MOVED (retries unused). */
int pr_enc_alarm(rd_buf *b, int type, const char *key, size_t klen, uint64_t at, uint64_t retries,
                 const char *shard, size_t slen);

/* A histogram as a uint array: its RD_HIST_BOUNDS + 1 bucket counts, then
 * the sum in microseconds. pr_get_hist fills h from such a list: -EINVAL
 * (h zeroed) when the list is empty or of another length (a peer built with
 * other bounds), -EBADMSG when an element is not an unsigned integer. */
void pr_put_hist(rd_buf *b, const rd_hist *h);
int pr_get_hist(pr_list *l, rd_hist *h);

#endif
