/* http_parser: strict HTTP/1.1 request-head parser (contract in http_parser.h).
 *
 *   start ──CRLF──▶ start                       (stray empty lines, RFC 9112 §2.2)
 *     │
 *     ▼
 *   method ──SP──▶ target ──SP──▶ version ──CRLF──▶ line-start
 *                                                      │   ▲
 *                                   name ':' OWS value │   │ CRLF
 *                                                      ▼   │
 *                                                    header
 *   line-start ──CRLF──▶ done ──▶ semantic checks (Host, framing, Connection)
 *
 * The parser keeps no state between calls: every call rescans the buffer from
 * its first byte. Syntax errors are reported in byte order, so a prefix of a
 * buffer parses to "need more" or to the very error the whole buffer gives;
 * the caller can thus refuse garbage as soon as it arrives.
 */
#include "http_parser.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

enum { SCAN_NEED_MORE = 0, SCAN_DONE = 1, SCAN_ERROR = -1 };

typedef struct scan_error {
    int status;
    const char *why;
} scan_error;

/* RFC 9110 tchar. */
static const uint8_t tchar_map[256] = {
    /* 0x00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x20  ' '!  "  #  $  %  &  '  (  )  *  +  ,  -  .  / */
               0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,
    /* 0x30   0-9                          :  ;  <  =  >  ? */
               1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    /* 0x40   @  A-O */
               0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x50   P-Z                             [  \  ]  ^  _ */
               1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    /* 0x60   `  a-o */
               1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x70   p-z                             {  |  }  ~ DEL */
               1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
    /* 0x80-0xff: 0 */
};

#define SWAR_ONES  UINT64_C(0x0101010101010101)
#define SWAR_HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t swar_load(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Nonzero iff some byte of w is below n (n <= 128). Exact as a yes/no answer
 * whatever the byte order, which is all the scanners need. */
static inline uint64_t swar_has_less(uint64_t w, unsigned n)
{
    return (w - SWAR_ONES * n) & ~w & SWAR_HIGHS;
}

static inline uint64_t swar_has_byte(uint64_t w, unsigned b)
{
    uint64_t x = w ^ (SWAR_ONES * b);
    return (x - SWAR_ONES) & ~x & SWAR_HIGHS;
}

static inline bool is_target_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

static inline bool is_value_byte(unsigned char c)
{
    return c >= 0x20 ? c != 0x7f : c == '\t';
}

static inline char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

static bool ascii_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

static bool name_is(const gw_http_header *h, const char *name, size_t len)
{
    return h->name_len == len && ascii_ieq(h->name, name, len);
}

/* Visible ASCII only: stops at the first byte that is not. */
static const char *scan_target(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t w = swar_load(p);
        if (swar_has_less(w, 0x21) | swar_has_byte(w, 0x7f) | (w & SWAR_HIGHS))
            break;
        p += 8;
    }
    while (p < end && is_target_byte((unsigned char)*p))
        p++;
    return p;
}

/* Stops at the first CTL other than HTAB (normally the CR ending the line). */
static const char *scan_value(const char *p, const char *end)
{
    for (;;) {
        while (end - p >= 8) {
            uint64_t w = swar_load(p);
            if (swar_has_less(w, 0x20) | swar_has_byte(w, 0x7f))
                break;
            p += 8;
        }
        /* The word holds a CTL, or an HTAB we step over before going fast again. */
        const char *stop = end - p >= 8 ? p + 8 : end;
        for (; p < stop; p++)
            if (!is_value_byte((unsigned char)*p))
                return p;
        if (p == end)
            return p;
    }
}

static const char *scan_token(const char *p, const char *end)
{
    while (p < end && tchar_map[(unsigned char)*p])
        p++;
    return p;
}

/* p points at a CR or LF where a line must end: SCAN_DONE when it is CRLF. */
static int expect_crlf(const char *p, const char *end, scan_error *e)
{
    if (*p == '\n') {
        e->why = "bare LF in request head";
        return SCAN_ERROR;
    }
    if (p + 1 >= end)
        return SCAN_NEED_MORE;
    if (p[1] != '\n') {
        e->why = "bare CR in request head";
        return SCAN_ERROR;
    }
    return SCAN_DONE;
}

static int scan_request_line(const char **pp, const char *end, gw_http_request *req,
                             scan_error *e)
{
    const char *p = *pp;
    int r;

    while (p < end && (*p == '\r' || *p == '\n')) {
        if ((r = expect_crlf(p, end, e)) != SCAN_DONE)
            return r;
        p += 2;
    }

    const char *method = p;
    p = scan_token(p, end);
    if (p == end)
        return SCAN_NEED_MORE;
    if (*p != ' ' || p == method) {
        e->why = *p == '\r' || *p == '\n' ? "malformed request line" : "invalid request method";
        return SCAN_ERROR;
    }
    req->method = method;
    req->method_len = (size_t)(p - method);
    p++;

    const char *target = p;
    p = scan_target(p, end);
    if (p == end)
        return SCAN_NEED_MORE;
    if (*p != ' ') {
        e->why = *p == '\r' || *p == '\n' ? "missing HTTP version" : "invalid byte in request target";
        return SCAN_ERROR;
    }
    if (p == target) {
        e->why = "empty request target";
        return SCAN_ERROR;
    }
    req->target = target;
    req->target_len = (size_t)(p - target);
    if (target[0] == '*') {
        if (req->target_len != 1 || req->method_len != 7 || memcmp(method, "OPTIONS", 7) != 0) {
            e->why = "asterisk target outside OPTIONS";
            return SCAN_ERROR;
        }
    } else if (target[0] != '/') {
        e->why = "request target not in origin form";
        return SCAN_ERROR;
    }
    p++;

    static const char shape[] = "HTTP/0.0";
    for (size_t i = 0; i < sizeof shape - 1; i++, p++) {
        if (p == end)
            return SCAN_NEED_MORE;
        if (shape[i] == '0' ? (*p < '0' || *p > '9') : *p != shape[i]) {
            e->why = "malformed HTTP version";
            return SCAN_ERROR;
        }
    }
    if (p == end)
        return SCAN_NEED_MORE;
    if (*p != '\r' && *p != '\n') {
        e->why = "malformed HTTP version";
        return SCAN_ERROR;
    }
    if ((r = expect_crlf(p, end, e)) != SCAN_DONE)
        return r;
    if (p[-3] != '1' || p[-1] > '1') {
        e->status = 505;
        e->why = "unsupported HTTP version";
        return SCAN_ERROR;
    }
    req->minor_version = p[-1] - '0';
    *pp = p + 2;
    return SCAN_DONE;
}

static int scan_headers(const char **pp, const char *end, size_t max_headers,
                        gw_http_request *req, scan_error *e)
{
    const char *p = *pp;
    int r;

    req->num_headers = 0;
    for (;;) {
        if (p == end)
            return SCAN_NEED_MORE;
        if (*p == '\r' || *p == '\n') {
            if ((r = expect_crlf(p, end, e)) != SCAN_DONE)
                return r;
            *pp = p + 2;
            return SCAN_DONE;
        }
        if (*p == ' ' || *p == '\t') {
            e->why = req->num_headers ? "obs-fold in header" : "whitespace before first header";
            return SCAN_ERROR;
        }
        if (req->num_headers >= max_headers) {
            e->status = 431;
            e->why = "too many headers";
            return SCAN_ERROR;
        }

        const char *name = p;
        p = scan_token(p, end);
        if (p == end)
            return SCAN_NEED_MORE;
        if (*p != ':' || p == name) {
            if (p == name)
                e->why = "invalid header name";
            else if (*p == ' ' || *p == '\t')
                e->why = "whitespace before colon in header";
            else if (*p == '\r' || *p == '\n')
                e->why = "header line without colon";
            else
                e->why = "invalid header name";
            return SCAN_ERROR;
        }
        const char *name_end = p++;

        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *value = p;
        p = scan_value(p, end);
        if (p == end)
            return SCAN_NEED_MORE;
        if (*p != '\r' && *p != '\n') {
            e->why = "control character in header value";
            return SCAN_ERROR;
        }
        if ((r = expect_crlf(p, end, e)) != SCAN_DONE)
            return r;
        const char *value_end = p;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;

        gw_http_header *h = &req->headers[req->num_headers++];
        h->name = name;
        h->name_len = (size_t)(name_end - name);
        h->value = value;
        h->value_len = (size_t)(value_end - value);
        p += 2;
    }
}

/* uri-host [ ":" port ] characters; the structure is left to whoever routes. */
static bool host_value_ok(const char *v, size_t len)
{
    static const char extra[] = "-._~!$&'()*+,;=%:[]";
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (c == '\0' || !strchr(extra, c))
            return false;
    }
    return true;
}

#define CONTENT_LENGTH_MAX (INT64_C(1) << 53)

static bool parse_content_length(const char *v, size_t len, int64_t *ret)
{
    int64_t n = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        n = n * 10 + (v[i] - '0');
        if (n > CONTENT_LENGTH_MAX)
            return false;
    }
    *ret = n;
    return true;
}

static int check_semantics(gw_http_request *req, scan_error *e)
{
    size_t hosts = 0, tes = 0;
    const gw_http_header *te = NULL;
    int64_t cl = -1;
    bool conn_close = false, keep_alive = false, upgrade = false;

    for (size_t i = 0; i < req->num_headers; i++) {
        const gw_http_header *h = &req->headers[i];
        if (name_is(h, "host", 4)) {
            hosts++;
            if (!host_value_ok(h->value, h->value_len)) {
                e->why = "invalid Host header";
                return SCAN_ERROR;
            }
        } else if (name_is(h, "content-length", 14)) {
            int64_t n;
            if (!parse_content_length(h->value, h->value_len, &n)) {
                e->why = "invalid Content-Length";
                return SCAN_ERROR;
            }
            if (cl >= 0 && cl != n) {
                e->why = "conflicting Content-Length values";
                return SCAN_ERROR;
            }
            cl = n;
        } else if (name_is(h, "transfer-encoding", 17)) {
            tes++;
            te = h;
        } else if (name_is(h, "connection", 10)) {
            conn_close |= gw_http_token_list_has(h->value, h->value_len, "close");
            keep_alive |= gw_http_token_list_has(h->value, h->value_len, "keep-alive");
            upgrade |= gw_http_token_list_has(h->value, h->value_len, "upgrade");
        }
    }

    if (hosts > 1) {
        e->why = "duplicate Host header";
        return SCAN_ERROR;
    }
    if (hosts == 0 && req->minor_version == 1) {
        e->why = "missing Host header";
        return SCAN_ERROR;
    }
    req->chunked = false;
    if (te) {
        /* RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
         * framing, and TE with CL is the classic request-smuggling vector. */
        if (req->minor_version == 0) {
            e->why = "Transfer-Encoding in HTTP/1.0 request";
            return SCAN_ERROR;
        }
        if (cl >= 0) {
            e->why = "both Content-Length and Transfer-Encoding";
            return SCAN_ERROR;
        }
        if (tes > 1 || te->value_len != 7 || !ascii_ieq(te->value, "chunked", 7)) {
            e->status = 501;
            e->why = "unsupported Transfer-Encoding";
            return SCAN_ERROR;
        }
        req->chunked = true;
    }
    req->content_length = cl;
    req->keep_alive = !conn_close && (req->minor_version == 1 || keep_alive);
    req->conn_upgrade = upgrade;
    return SCAN_DONE;
}

int gw_http_parse(const char *buf, size_t len, size_t max_head, size_t max_headers,
                  gw_http_request *req, int *ret_status, char err[RD_ERR_LEN])
{
    scan_error e = { 400, NULL };
    int r = SCAN_NEED_MORE;

    /* head_len travels back as an int. */
    if (max_head > INT_MAX)
        max_head = INT_MAX;
    if (max_headers > GW_HTTP_MAX_HEADERS)
        max_headers = GW_HTTP_MAX_HEADERS;

    size_t limit = len < max_head ? len : max_head;
    if (buf && limit > 0) {
        const char *p = buf, *end = buf + limit;
        r = scan_request_line(&p, end, req, &e);
        if (r == SCAN_DONE)
            r = scan_headers(&p, end, max_headers, req, &e);
        if (r == SCAN_DONE) {
            req->head_len = (size_t)(p - buf);
            r = check_semantics(req, &e);
        }
    }

    if (r == SCAN_NEED_MORE) {
        if (len < max_head)
            return 0;
        e.status = 431;
        e.why = "request head too large";
        r = SCAN_ERROR;
    }
    if (r == SCAN_ERROR) {
        if (ret_status)
            *ret_status = e.status;
        if (err)
            snprintf(err, RD_ERR_LEN, "%s", e.why ? e.why : "malformed request head");
        return -EBADMSG;
    }
    return (int)req->head_len;
}

const gw_http_header *gw_http_header_find(const gw_http_request *req, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++)
        if (name_is(&req->headers[i], name, len))
            return &req->headers[i];
    return NULL;
}

size_t gw_http_header_count(const gw_http_request *req, const char *name)
{
    size_t len = strlen(name), n = 0;
    for (size_t i = 0; i < req->num_headers; i++)
        n += name_is(&req->headers[i], name, len);
    return n;
}

bool gw_http_token_list_has(const char *value, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;

    if (tlen == 0)
        return false;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t'))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t stop = i;
        while (stop > start && (value[stop - 1] == ' ' || value[stop - 1] == '\t'))
            stop--;
        if (stop - start == tlen && ascii_ieq(value + start, token, tlen))
            return true;
        i++;
    }
    return false;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int gw_http_percent_decode(const char *in, size_t len, char *out, size_t cap, size_t *ret_len)
{
    size_t o = 0;

    /* Each output byte is written after its input is read and o never passes
     * i, so decoding in place (out == in) works. */
    for (size_t i = 0; i < len; ) {
        char c = in[i];
        if (c == '%') {
            if (len - i < 3)
                return -EINVAL;
            int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            i += 3;
        } else {
            i++;
        }
        /* Decoded text ends up in C strings and object names: no NUL, however spelled. */
        if (c == '\0')
            return -EINVAL;
        if (o >= cap)
            return -EINVAL;
        out[o++] = c;
    }
    if (ret_len)
        *ret_len = o;
    return 0;
}

const char *gw_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

int gw_http_query_param(const char *q, size_t qlen, const char *name, const char **ret_v,
                        size_t *ret_vl)
{
    size_t nl = strlen(name);
    const char *p = q, *end = q + qlen;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *ke = eq ? eq : e;
        if ((size_t)(ke - p) == nl && memcmp(p, name, nl) == 0) {
            *ret_v = eq ? eq + 1 : e;
            *ret_vl = eq ? (size_t)(e - eq - 1) : 0;
            return 1;
        }
        p = e + (amp != NULL);
    }
    return 0;
}
