#include "rpc_codec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool sh_rpc_is_request(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i < n && (p[i] == '{' || p[i] == '[') && memmem(p + i, n - i, "\"jsonrpc\"", 9) != NULL;
}

__attribute__((format(printf, 3, 4)))
static int bad(sh_rpc_req *r, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    r->kind = SH_RPC_BAD;
    r->code = code;
    return -EBADMSG;
}

/* An id is a string, a number or null (JSON-RPC 2.0 §4). */
static char *id_text(json_t *id)
{
    if (json_is_string(id) && json_string_length(id) > SH_RPC_MAX_ID)
        return NULL;
    if (!json_is_string(id) && !json_is_number(id) && !json_is_null(id))
        return NULL;
    return json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
}

int sh_rpc_parse(const uint8_t *p, size_t n, sh_rpc_req *r)
{
    memset(r, 0, sizeof *r);
    json_error_t je;
    json_t *req = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &je);
    int ret;
    if (!req)
        return bad(r, -32700, "parse error: %s (at byte %d)", je.text, je.position);
    if (json_is_array(req)) {
        ret = bad(r, -32600, "batch requests are not supported: send one request per message");
        goto out;
    }
    if (!json_is_object(req)) {
        ret = bad(r, -32600, "a request is a JSON object");
        goto out;
    }
    json_t *id = json_object_get(req, "id");
    if (id && !(r->id = id_text(id))) {
        ret = bad(r, -32600, "\"id\" must be a string (at most %d bytes), a number or null", SH_RPC_MAX_ID);
        goto out;
    }
    const char *v = json_string_value(json_object_get(req, "jsonrpc"));
    if (!v || strcmp(v, "2.0") != 0) {
        ret = bad(r, -32600, "\"jsonrpc\" must be \"2.0\"");
        goto out;
    }
    json_t *m = json_object_get(req, "method");
    if (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) > SH_RPC_MAX_METHOD ||
        strlen(json_string_value(m)) != json_string_length(m)) {
        ret = bad(r, -32600, "\"method\" must be a string of 1..%d bytes", SH_RPC_MAX_METHOD);
        goto out;
    }
    r->method = strdup(json_string_value(m));
    json_t *params = json_object_get(req, "params");
    if (params && !json_is_array(params) && !json_is_object(params)) {
        ret = bad(r, -32602, "\"params\" must be an array or an object");
        goto out;
    }
    if (strcmp(r->method, "rpc.cancel") == 0) {
        json_t *target = params ? sh_rpc_param(params, 0, "id") : NULL;
        if (!target || !(r->cancel_id = id_text(target))) {
            ret = bad(r, -32602, "rpc.cancel takes the id of the stream to cancel: [id] or {\"id\": id}");
            goto out;
        }
        r->kind = SH_RPC_CANCEL;
        ret = 0;
        goto out;
    }
    if (strncmp(r->method, "rpc.", 4) == 0) {
        ret = bad(r, -32601, "method not found: names starting with \"rpc.\" are reserved");
        goto out;
    }
    r->params = params ? json_dumps(params, JSON_COMPACT) : strdup("[]");
    r->params_len = strlen(r->params);
    r->kind = id ? SH_RPC_CALL : SH_RPC_NOTIFY;
    ret = 0;
out:
    json_decref(req);
    return ret;
}

void sh_rpc_req_free(sh_rpc_req *r)
{
    free(r->id);
    free(r->method);
    free(r->params);
    free(r->cancel_id);
    memset(r, 0, sizeof *r);
}

static void put(rd_buf *b, const char *s, size_t n)
{
    rd_buf_append(b, s, n);
}

#define PUT_LIT(b, lit) put(b, lit, sizeof lit - 1)

static void put_id(rd_buf *b, const char *id)
{
    if (id)
        put(b, id, strlen(id));
    else
        PUT_LIT(b, "null");
}

/* head, the id, mid, the JSON value, tail: results and stream values. */
static void put_around(rd_buf *b, const char *head, const char *id, const char *mid, const char *json,
                       size_t len, const char *tail)
{
    put(b, head, strlen(head));
    put_id(b, id);
    put(b, mid, strlen(mid));
    put(b, json, len);
    put(b, tail, strlen(tail));
}

void sh_rpc_put_result(rd_buf *b, const char *id, const char *json, size_t len)
{
    put_around(b, "{\"jsonrpc\":\"2.0\",\"id\":", id, ",\"result\":", json, len, "}");
}

void sh_rpc_put_error(rd_buf *b, const char *id, int code, const char *message)
{
    char head[96];
    PUT_LIT(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    put_id(b, id);
    int n = snprintf(head, sizeof head, ",\"error\":{\"code\":%d,\"message\":", code);
    put(b, head, (size_t)n);
    json_t *s = json_stringn(message, strlen(message));
    char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    if (q)
        put(b, q, strlen(q));
    else
        PUT_LIT(b, "\"(message not UTF-8)\"");
    free(q);
    json_decref(s);
    PUT_LIT(b, "}}");
}

void sh_rpc_put_stream(rd_buf *b, const char *id, const char *json, size_t len)
{
    put_around(b, "{\"jsonrpc\":\"2.0\",\"method\":\"rpc.stream\",\"params\":{\"id\":", id, ",\"value\":",
               json, len, "}}");
}

bool sh_rpc_json_valid(const char *p, size_t n)
{
    json_error_t je;
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY, &je);
    json_decref(v);
    return v != NULL;
}

json_t *sh_rpc_param(json_t *params, size_t index, const char *name)
{
    if (json_is_array(params))
        return json_array_get(params, index);
    if (json_is_object(params))
        return json_object_get(params, name);
    return NULL;
}
