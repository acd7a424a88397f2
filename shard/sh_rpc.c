/* JSON-RPC dispatch: requests from WebSockets and from the gateway's
 * POST .../rpc/<method>, the RPC services of roomd_module.h, and streams.
 *
 * A stream's life:  call --roomd_rpc_stream--> open --emit*--> open
 *                     open --roomd_stream_end--> ended (response sent)
 *                     open --client rpc.cancel--> ended (error -32800 sent)
 *                     open --connection gone--> dropped (nothing to send to)
 * Streams hang off the object (not the class's state), like connections,
 * so they outlive hibernation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_log.h"
#include "rpc_codec.h"
#include "sh.h"

#define SH_RPC_MAX_STREAMS_PER_CONN 16

struct roomd_call {
    sh_object *obj;
    roomd_conn *conn;         /* NULL: HTTP */
    const roomd_method *m;
    const char *id;           /* JSON text; NULL with notify, or over HTTP */
    const char *params;       /* JSON text */
    size_t params_len;
    bool notify;
    bool answered;            /* or turned into a stream */
};

struct roomd_stream {
    roomd_conn *conn;
    const roomd_method *m;
    char *id;
    char *params;
    size_t params_len;
};

const roomd_method *sh_rpc_find(const roomd_class *cls, const char *name)
{
    const roomd_method *m = sh_class_methods(cls);
    for (; m && m->name; m++)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

/* Send one JSON-RPC message (built in b) to a connection. */
static void send_text(roomd_ctx *ctx, roomd_conn *conn, rd_buf *b)
{
    roomd_send(ctx, conn, ROOMD_TEXT, rd_buf_data(b), rd_buf_avail(b));
    rd_buf_free(b);
}

/* HTTP status for a JSON-RPC answer to a backend. */
static int http_status(int code)
{
    switch (code) {
    case 0: return 200;
    case ROOMD_RPC_METHOD_NOT_FOUND: return 404;
    case ROOMD_RPC_PARSE_ERROR:
    case ROOMD_RPC_INVALID_REQUEST:
    case ROOMD_RPC_INVALID_PARAMS: return 400;
    case ROOMD_RPC_INTERNAL_ERROR: return 500;
    default: return 422; /* the class refused: an application error */
    }
}

static void answer(roomd_ctx *ctx, roomd_call *call, rd_buf *b, int code)
{
    if (call->conn)
        send_text(ctx, call->conn, b);
    else {
        rd_buf_append(b, "\n", 1);
        roomd_http_reply(ctx, http_status(code), "application/json", rd_buf_data(b), rd_buf_avail(b));
        rd_buf_free(b);
    }
}

int roomd_rpc_result(roomd_ctx *ctx, roomd_call *call, const char *json, size_t len)
{
    if (call->answered)
        return -EALREADY;
    if (!sh_rpc_json_valid(json, len))
        return -EINVAL;
    call->answered = true;
    if (call->notify)
        return 0;
    rd_buf b = RD_BUF_INIT;
    sh_rpc_put_result(&b, call->id, json, len);
    answer(ctx, call, &b, 0);
    return 0;
}

int roomd_rpc_error(roomd_ctx *ctx, roomd_call *call, int code, const char *message)
{
    if (call->answered)
        return -EALREADY;
    call->answered = true;
    if (call->notify)
        return 0;
    rd_buf b = RD_BUF_INIT;
    sh_rpc_put_error(&b, call->id, code, message ? message : "");
    answer(ctx, call, &b, code);
    return 0;
}

roomd_conn *roomd_call_conn(const roomd_call *call) { return call->conn; }

static size_t nstreams(const sh_object *o)
{
    return o->streams ? o->streams->n : 0;
}

static size_t conn_streams(const sh_object *o, const roomd_conn *c)
{
    size_t n = 0;
    for (size_t i = 0; i < nstreams(o); i++)
        n += o->streams->s[i]->conn == c;
    return n;
}

roomd_stream *roomd_rpc_stream(roomd_ctx *ctx, roomd_call *call)
{
    if (call->answered || call->notify || !call->conn || !(call->m->flags & ROOMD_METHOD_STREAM))
        return NULL;
    sh_object *o = call->obj;
    if (conn_streams(o, call->conn) >= SH_RPC_MAX_STREAMS_PER_CONN) {
        char why[96];
        snprintf(why, sizeof why, "too many open streams on this connection (%d)",
                 SH_RPC_MAX_STREAMS_PER_CONN);
        roomd_rpc_error(ctx, call, ROOMD_RPC_SERVER_ERROR, why);
        return NULL;
    }
    call->answered = true;
    roomd_stream *s = rd_xcalloc(1, sizeof *s);
    s->conn = call->conn;
    s->m = call->m;
    s->id = rd_xstrndup(call->id, strlen(call->id));
    s->params = rd_xstrndup(call->params, call->params_len);
    s->params_len = call->params_len;
    /* The list lives outside the object record, so a hibernated object
     * without streams pays one pointer for them. */
    sh_streams *l = o->streams;
    if (!l || l->n == l->cap) {
        uint32_t cap = l ? l->cap * 2 : 4;
        l = rd_xrealloc(l, sizeof *l + cap * sizeof *l->s);
        if (!o->streams)
            l->n = 0;
        l->cap = cap;
        o->streams = l;
    }
    l->s[l->n++] = s;
    return s;
}

size_t roomd_streams(roomd_ctx *ctx, const char *method, roomd_stream **out, size_t max)
{
    sh_object *o = ctx->obj;
    size_t n = 0;
    for (size_t i = 0; i < nstreams(o); i++) {
        if (method && strcmp(o->streams->s[i]->m->name, method) != 0)
            continue;
        if (n < max)
            out[n] = o->streams->s[i];
        n++;
    }
    return n;
}

const char *roomd_stream_params(const roomd_stream *s, size_t *ret_len)
{
    *ret_len = s->params_len;
    return s->params;
}

roomd_conn *roomd_stream_conn(const roomd_stream *s) { return s->conn; }

int roomd_stream_emit(roomd_ctx *ctx, roomd_stream *s, const char *json, size_t len)
{
    if (!sh_rpc_json_valid(json, len))
        return -EINVAL;
    rd_buf b = RD_BUF_INIT;
    sh_rpc_put_stream(&b, s->id, json, len);
    send_text(ctx, s->conn, &b);
    return 0;
}

size_t roomd_stream_emit_all(roomd_ctx *ctx, const char *method, const char *json, size_t len)
{
    sh_object *o = ctx->obj;
    size_t n = 0;
    if (!nstreams(o) || !sh_rpc_json_valid(json, len))
        return 0;
    for (size_t i = 0; i < nstreams(o); i++) {
        roomd_stream *s = o->streams->s[i];
        if (method && strcmp(s->m->name, method) != 0)
            continue;
        rd_buf b = RD_BUF_INIT;
        sh_rpc_put_stream(&b, s->id, json, len);
        send_text(ctx, s->conn, &b);
        n++;
    }
    return n;
}

static void stream_free(roomd_stream *s)
{
    free(s->id);
    free(s->params);
    free(s);
}

/* Take s off its object's list (order kept: roomd_streams is oldest first). */
static void stream_remove(sh_object *o, roomd_stream *s)
{
    for (size_t i = 0; i < nstreams(o); i++)
        if (o->streams->s[i] == s) {
            memmove(&o->streams->s[i], &o->streams->s[i + 1], (nstreams(o) - i - 1) * sizeof *o->streams->s);
            o->streams->n--;
            break;
        }
    stream_free(s);
}

int roomd_stream_end(roomd_ctx *ctx, roomd_stream *s, const char *json, size_t len)
{
    if (json && !sh_rpc_json_valid(json, len))
        return -EINVAL;
    rd_buf b = RD_BUF_INIT;
    sh_rpc_put_result(&b, s->id, json ? json : "null", json ? len : 4);
    send_text(ctx, s->conn, &b);
    stream_remove(ctx->obj, s);
    return 0;
}

void sh_rpc_conn_gone(sh_object *o, roomd_conn *c)
{
    for (size_t i = nstreams(o); i-- > 0;)
        if (o->streams->s[i]->conn == c)
            stream_remove(o, o->streams->s[i]);
    if (!nstreams(o)) {
        free(o->streams);
        o->streams = NULL;
    }
}

/* Run a method: conn NULL for HTTP (id NULL then answers with id null). */
void sh_rpc_invoke(roomd_ctx *ctx, roomd_conn *conn, const roomd_method *m, const char *id, bool notify,
                   const char *params, size_t plen)
{
    sh_object *o = ctx->obj;
    roomd_call call = { .obj = o, .conn = conn, .m = m, .id = id, .params = params, .params_len = plen,
                        .notify = notify };
    m->call(ctx, o->state, &call, params, plen);
    if (!call.answered)
        roomd_rpc_result(ctx, &call, "null", 4);
}

void sh_rpc_frame(roomd_ctx *ctx, roomd_conn *c, const uint8_t *p, size_t n)
{
    sh_object *o = ctx->obj;
    sh_rpc_req req;
    rd_buf b = RD_BUF_INIT;
    if (sh_rpc_parse(p, n, &req) < 0) {
        sh_rpc_put_error(&b, req.id, req.code, req.message);
        send_text(ctx, c, &b);
        sh_rpc_req_free(&req);
        return;
    }
    if (req.kind == SH_RPC_CANCEL) {
        for (size_t i = 0; i < nstreams(o); i++) {
            roomd_stream *s = o->streams->s[i];
            if (s->conn == c && strcmp(s->id, req.cancel_id) == 0) {
                sh_rpc_put_error(&b, s->id, ROOMD_RPC_CANCELLED, "cancelled");
                send_text(ctx, c, &b);
                stream_remove(o, s);
                break;
            }
        }
        /* An unknown id: the stream ended meanwhile; a notification gets no answer. */
        sh_rpc_req_free(&req);
        return;
    }
    const roomd_method *m = sh_rpc_find(o->cls, req.method);
    if (!m) {
        if (req.kind == SH_RPC_CALL) {
            char why[160];
            snprintf(why, sizeof why, "method not found: %s has no method \"%s\"", o->cls->name, req.method);
            sh_rpc_put_error(&b, req.id, ROOMD_RPC_METHOD_NOT_FOUND, why);
            send_text(ctx, c, &b);
        }
        sh_rpc_req_free(&req);
        return;
    }
    sh_rpc_invoke(ctx, c, m, req.id, req.kind == SH_RPC_NOTIFY, req.params, req.params_len);
    sh_rpc_req_free(&req);
}
