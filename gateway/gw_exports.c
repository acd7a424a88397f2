#include "gw_exports.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http_parser.h"
#include "ws_utf8.h"

int gw_exports_query(const char *q, size_t qlen, gw_exports_req *ret, char err[RD_ERR_LEN])
{
    const char *v;
    size_t vl;
    gw_exports_req r = { .shared = gw_http_query_param(q, qlen, "shared", &v, &vl) == 1 };
    if (gw_http_query_param(q, qlen, "room", &v, &vl) != 1) {
        v = "default";
        vl = 7;
    }
    if (vl == 0 || gw_http_percent_decode(v, vl, r.room, GW_EXPORTS_MAX_ROOM, &r.room_len) < 0) {
        snprintf(err, RD_ERR_LEN, "room must be 1..%d bytes, percent-encoded", GW_EXPORTS_MAX_ROOM);
        return -EINVAL;
    }
    r.room[r.room_len] = '\0';
    bool ok = ws_utf8_valid((const uint8_t *)r.room, r.room_len) && r.room[0] != '~' &&
              !(r.room_len <= 2 && r.room[0] == '.' && (r.room_len == 1 || r.room[1] == '.'));
    for (size_t i = 0; ok && i < r.room_len; i++)
        ok = (unsigned char)r.room[i] >= 0x20 && r.room[i] != 0x7f && r.room[i] != '/';
    if (!ok) {
        snprintf(err, RD_ERR_LEN, "room must be UTF-8 without control characters or '/', "
                 "not '.', '..' or starting with '~'");
        return -EINVAL;
    }
    *ret = r;
    return 0;
}

int gw_exports_origin(bool tls, const char *host, size_t host_len, const char *public_url, char *out,
                      size_t cap, char err[RD_ERR_LEN])
{
    if (public_url && public_url[0]) {
        size_t n = strlen(public_url);
        while (n && public_url[n - 1] == '/')
            n--;
        snprintf(out, cap, "%.*s", (int)n, public_url);
        return 0;
    }
    /* The Host goes into JavaScript source: only what a host[:port] holds. */
    bool ok = host && host_len > 0 && host_len < 256;
    for (size_t i = 0; ok && i < host_len; i++) {
        char ch = host[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
             ch == '-' || ch == ':' || ch == '[' || ch == ']';
    }
    if (!ok) {
        snprintf(err, RD_ERR_LEN, "/exports.js needs a Host header of the form host[:port] "
                 "(or start the gateway with --public-url)");
        return -EINVAL;
    }
    snprintf(out, cap, "%s://%.*s", tls ? "https" : "http", (int)host_len, host);
    return 0;
}

static void put(rd_buf *b, const char *s)
{
    rd_buf_append(b, s, strlen(s));
}

static void put_json_string(rd_buf *b, const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    put(b, t ? t : "\"\"");
    free(t);
    json_decref(j);
}

/* counter -> Counter, my_game / my-game -> MyGame, 2d -> _2d. */
static void export_name(const char *cls, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    bool up = true;
    if (n && cls[0] >= '0' && cls[0] <= '9')
        out[o++] = '_';
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        char ch = cls[i];
        if (ch == '_' || ch == '-') {
            up = true;
            continue;
        }
        out[o++] = up && ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
        up = false;
    }
    out[o] = '\0';
}

/* Names come from the shards' HELLO (already checked by the shard's
 * registry); checked again because they are written into JavaScript. */
static bool ident(const char *s, size_t n, bool dash)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              (dash && ch == '-')))
            return false;
    }
    return true;
}

void gw_exports_render(rd_buf *b, const char *origin, const gw_exports_req *req,
                       const char *const *methods, const bool *stream, size_t n)
{
    put(b, "// roomd Shared Exports, generated for this origin and query. Every export is\n"
           "// a class whose instances are RPC proxies of one object: `await new X(...)`.\n");
    put(b, "import { connect } from ");
    char url[600];
    snprintf(url, sizeof url, "%s/client.js", origin);
    put_json_string(b, url, strlen(url));
    put(b, ";\nconst WS = ");
    snprintf(url, sizeof url, "%s%s", strncmp(origin, "https:", 6) == 0 ? "wss:" : "ws:",
             strchr(origin, ':') ? strchr(origin, ':') + 1 : origin);
    put_json_string(b, url, strlen(url));
    put(b, ", SHARED = ");
    put(b, req->shared ? "true" : "false");
    put(b, ", ROOM = ");
    put_json_string(b, req->room, req->room_len);
    put(b, ";\n"
           "function own() {\n"
           "  const r = new Uint8Array(16);\n"
           "  crypto.getRandomValues(r);\n"
           "  return \"~\" + Array.from(r, (x) => x.toString(16).padStart(2, \"0\")).join(\"\");\n"
           "}\n"
           "function open(self, cls, args, init) {\n"
           "  self.$name = SHARED ? ROOM : own();\n"
           "  self.$client = connect(`${WS}/${cls}/${encodeURIComponent(self.$name)}`);\n"
           "  return self.$client.ready.then(() => (init ? self.$client.call(\"init\", args) : null)).then(() => self);\n"
           "}\n");
    char seen[64][72];
    size_t nseen = 0;
    for (size_t i = 0; i < n;) {
        const char *dot = strchr(methods[i], '.');
        if (!dot) {
            i++;
            continue;
        }
        size_t cl = (size_t)(dot - methods[i]);
        size_t j = i;
        bool init = false;
        while (j < n && strncmp(methods[j], methods[i], cl + 1) == 0) {
            init |= strcmp(methods[j] + cl + 1, "init") == 0;
            j++;
        }
        char name[72], cls[40];
        export_name(methods[i], cl < 32 ? cl : 32, name, sizeof name);
        snprintf(cls, sizeof cls, "%.*s", (int)(cl < 32 ? cl : 32), methods[i]);
        bool dup = nseen == 64;
        for (size_t k = 0; k < nseen && !dup; k++)
            dup = strcmp(seen[k], name) == 0;
        if (dup || !ident(methods[i], cl, true)) {
            i = j;
            continue; /* two classes with one export name: the first keeps it */
        }
        snprintf(seen[nseen++], sizeof seen[0], "%s", name);
        char line[256];
        snprintf(line, sizeof line, "export class %s {\n  constructor(...a) { return open(this, \"%s\", a, %s); }\n",
                 name, cls, init ? "true" : "false");
        put(b, line);
        for (; i < j; i++) {
            const char *m = methods[i] + cl + 1;
            if (!ident(m, strlen(m), false) || strlen(m) > 64 || (m[0] >= '0' && m[0] <= '9'))
                continue;
            snprintf(line, sizeof line, "  %s(...a) { return this.$client.%s(\"%s\", a); }\n", m,
                     stream[i] ? "stream" : "call", m);
            put(b, line);
        }
        put(b, "  close() { this.$client.close(); }\n}\n");
    }
}
