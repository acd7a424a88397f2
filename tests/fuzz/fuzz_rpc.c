/* Fuzz target for the JSON-RPC request parser: any input gives exactly one
 * of the four kinds; a refusal carries a JSON-RPC error code and a message;
 * every text handed out (id, params, cancel id) is valid JSON, and encoding
 * the answer to it produces valid JSON too. */
#include "rpc_codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond) do { if (!(cond)) abort(); } while (0)

static bool valid(const char *s)
{
    return s && sh_rpc_json_valid(s, strlen(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    sh_rpc_is_request(data, size);
    sh_rpc_req r;
    int ret = sh_rpc_parse(data, size, &r);
    rd_buf b = RD_BUF_INIT;
    if (ret < 0) {
        INVARIANT(r.kind == SH_RPC_BAD);
        INVARIANT(r.code == -32700 || r.code == -32600 || r.code == -32601 || r.code == -32602);
        INVARIANT(r.message[0]);
        INVARIANT(!r.id || valid(r.id));
        sh_rpc_put_error(&b, r.id, r.code, r.message);
    } else if (r.kind == SH_RPC_CANCEL) {
        INVARIANT(valid(r.cancel_id));
    } else {
        INVARIANT(r.kind == SH_RPC_CALL || r.kind == SH_RPC_NOTIFY);
        INVARIANT((r.kind == SH_RPC_CALL) == (r.id != NULL));
        INVARIANT(r.method && strlen(r.method) <= SH_RPC_MAX_METHOD);
        INVARIANT(valid(r.params) && (r.params[0] == '[' || r.params[0] == '{'));
        sh_rpc_put_result(&b, r.id, r.params, r.params_len);
        INVARIANT(sh_rpc_json_valid((const char *)rd_buf_data(&b), rd_buf_avail(&b)));
        rd_buf_free(&b);
        sh_rpc_put_stream(&b, r.id, r.params, r.params_len);
    }
    INVARIANT(!rd_buf_avail(&b) || sh_rpc_json_valid((const char *)rd_buf_data(&b), rd_buf_avail(&b)));
    rd_buf_free(&b);
    sh_rpc_req_free(&r);
    return 0;
}
