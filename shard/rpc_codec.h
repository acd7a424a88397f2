/* rpc_codec: JSON-RPC 2.0 (https://www.jsonrpc.org/specification) request
 * parsing and response encoding for the shard's RPC dispatch. A codec: no
 * I/O, no logging; unit-tested and fuzzed on its own.
 *
 * Streams (roomd's extension, README "RPC"): values go out as server
 * notifications {"jsonrpc":"2.0","method":"rpc.stream","params":{"id":ID,"value":V}};
 * the end is the call's ordinary response; a client cancels with the
 * notification {"jsonrpc":"2.0","method":"rpc.cancel","params":[ID]} (or
 * {"id":ID}), answered by an error response with code -32800.
 */
#ifndef RPC_CODEC_H
#define RPC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rd_buf.h"

#define SH_RPC_MAX_ID 256         /* bytes of a string id */
#define SH_RPC_MAX_METHOD 64

enum sh_rpc_kind {
    SH_RPC_BAD = 0,               /* answer error code/message to id (NULL: null) */
    SH_RPC_CALL,                  /* a request with an id */
    SH_RPC_NOTIFY,                /* a request without one: run it, answer nothing */
    SH_RPC_CANCEL,                /* rpc.cancel of the stream cancel_id */
};

typedef struct sh_rpc_req {
    int kind;
    char *id;                     /* the id as JSON text; NULL: none (notification, or unknown) */
    char *method;                 /* NUL-terminated */
    char *params;                 /* JSON text of an array or object; "[]" when absent */
    size_t params_len;
    char *cancel_id;              /* SH_RPC_CANCEL: the id to cancel, as JSON text */
    int code;                     /* SH_RPC_BAD: JSON-RPC error code */
    char message[RD_ERR_LEN];     /* SH_RPC_BAD: why */
} sh_rpc_req;

/* Is this text message meant as JSON-RPC? '{' or '[' first (after
 * whitespace) and "jsonrpc" somewhere: everything else goes to the class's
 * message handler. */
bool sh_rpc_is_request(const uint8_t *p, size_t n);

/* Parse one request. Always fills *ret (free with sh_rpc_req_free); returns
 * 0 for CALL/NOTIFY/CANCEL, -EBADMSG for BAD. */
int sh_rpc_parse(const uint8_t *p, size_t n, sh_rpc_req *ret);
void sh_rpc_req_free(sh_rpc_req *r);

/* Responses, appended to b as JSON text. id NULL encodes null. json must
 * be valid JSON text (sh_rpc_json_valid); message is escaped here. */
void sh_rpc_put_result(rd_buf *b, const char *id, const char *json, size_t len);
void sh_rpc_put_error(rd_buf *b, const char *id, int code, const char *message);
void sh_rpc_put_stream(rd_buf *b, const char *id, const char *json, size_t len);
/* One JSON value (any type), nothing after it. */
bool sh_rpc_json_valid(const char *p, size_t n);

/* A parameter by position (params an array) or by name (an object); NULL
 * when absent. Borrowed from params. */
json_t *sh_rpc_param(json_t *params, size_t index, const char *name);

#endif
