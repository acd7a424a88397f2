/* http_parser: strict HTTP/1.1 request-head parser. No I/O, no allocation.
 *
 * The caller accumulates bytes and calls gw_http_parse() with everything it
 * has; the parser either finds a complete head (terminated by CRLF CRLF) and
 * fills *req with pointers INTO the caller's buffer (valid while that buffer
 * is unchanged), says it needs more, or rejects the request with the HTTP
 * status the server should answer and a one-line reason.
 *
 * Rules enforced (anything else is 400 unless stated):
 *  - request line: METHOD SP request-target SP HTTP/1.x CRLF; method is a
 *    token; the target is origin-form ("/..."), or "*" for OPTIONS; visible
 *    ASCII only; versions other than HTTP/1.0 and HTTP/1.1 -> 505.
 *  - lines end with CRLF (a bare LF or CR is 400); no obs-fold; header name is
 *    a token immediately followed by ':'; value has no CTLs except HTAB;
 *    leading/trailing OWS is trimmed from values.
 *  - more than max_headers headers -> 431; no complete head within max_head
 *    bytes -> 431.
 *  - HTTP/1.1 requires exactly one Host header.
 *  - Content-Length: digits only, repeated values must agree, at most 2^53;
 *    Transfer-Encoding together with Content-Length -> 400; a
 *    Transfer-Encoding other than exactly "chunked" -> 501.
 */
#ifndef GW_HTTP_PARSER_H
#define GW_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "rd_buf.h" /* RD_ERR_LEN */

#define GW_HTTP_MAX_HEADERS 100 /* hard upper bound for max_headers */

typedef struct gw_http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} gw_http_header;

typedef struct gw_http_request {
    const char *method;
    size_t method_len;
    const char *target;          /* as sent, including any "?query" */
    size_t target_len;
    int minor_version;           /* 0 or 1 */
    size_t num_headers;
    gw_http_header headers[GW_HTTP_MAX_HEADERS];
    size_t head_len;             /* bytes of the head, final CRLF CRLF included */
    int64_t content_length;      /* -1 when absent */
    bool chunked;                /* Transfer-Encoding: chunked */
    bool keep_alive;             /* per version default and Connection tokens */
    bool conn_upgrade;           /* Connection contains the token "upgrade" */
} gw_http_request;

/* Returns head_len (> 0) when a complete head was parsed into *req, 0 when
 * more bytes are needed (and len < max_head), or -EBADMSG when the request
 * must be refused: *ret_status is set to 400, 431, 501 or 505 and err to a
 * one-line reason without trailing newline. *req is unspecified unless the
 * return is > 0. max_headers is clamped to GW_HTTP_MAX_HEADERS. */
int gw_http_parse(const char *buf, size_t len, size_t max_head, size_t max_headers,
                  gw_http_request *req, int *ret_status, char err[RD_ERR_LEN]);

/* First header with this name (ASCII case-insensitive), or NULL. */
const gw_http_header *gw_http_header_find(const gw_http_request *req, const char *name);
/* Number of headers with this name. */
size_t gw_http_header_count(const gw_http_request *req, const char *name);

/* Does the comma-separated list value contain token (ASCII case-insensitive,
 * OWS around elements ignored)? Used for Connection and Upgrade. */
bool gw_http_token_list_has(const char *value, size_t len, const char *token);

/* Percent-decode in[0..len) into out (capacity cap). Fails with -EINVAL on a
 * malformed escape, an encoded NUL (%00), or (when decoding a path) no
 * room; "+" is left as is. On success *ret_len is the decoded length. */
int gw_http_percent_decode(const char *in, size_t len, char *out, size_t cap, size_t *ret_len);

/* Find parameter name in a query string (without '?'): 1 and *ret_v /
 * *ret_vl pointing at its raw (still percent-encoded) value, empty for a
 * bare "name" or "name="; 0 when absent. The first occurrence wins. */
int gw_http_query_param(const char *q, size_t qlen, const char *name, const char **ret_v,
                        size_t *ret_vl);

/* Reason phrase for a status code ("Bad Request"), "Unknown" if unknown. */
const char *gw_http_reason(int status);

#endif
