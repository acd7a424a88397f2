#include "http_parser.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "rd_test.h"

static gw_http_request req;
static int status;
static char err[RD_ERR_LEN];
/* Each input is parsed from an exact-size heap copy so ASan sees any read
 * past its end; the copy lives until the next parse because req points in. */
static char *copy;

static int parse_lim(const char *s, size_t len, size_t max_head, size_t max_headers)
{
    free(copy);
    copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    status = 0;
    memset(err, 'x', sizeof err);
    err[0] = '\0';
    return gw_http_parse(copy, len, max_head, max_headers, &req, &status, err);
}

static int parse_n(const char *s, size_t len)
{
    return parse_lim(s, len, 8192, 64);
}

static int parse(const char *s)
{
    return parse_n(s, strlen(s));
}

static bool err_is_one_line(void)
{
    size_t n = strnlen(err, sizeof err);
    return n > 0 && n < sizeof err && !memchr(err, '\n', n) && !memchr(err, '\r', n);
}

#define EXPECT_FAIL(s, st, why) do { \
    RD_CHECK_EQ_INT(parse(s), -EBADMSG); \
    RD_CHECK_EQ_INT(status, st); \
    RD_CHECK(err_is_one_line()); \
    if (why) RD_CHECK_STR(err, strlen(err), (const char *)(why)); \
} while (0)

#define EXPECT_FAIL_N(s, n, st, why) do { \
    RD_CHECK_EQ_INT(parse_n(s, n), -EBADMSG); \
    RD_CHECK_EQ_INT(status, st); \
    RD_CHECK(err_is_one_line()); \
    if (why) RD_CHECK_STR(err, strlen(err), (const char *)(why)); \
} while (0)

#define EXPECT_OK(s) RD_CHECK_EQ_INT(parse(s), (int)strlen(s))

static const gw_http_header *hdr(const char *name)
{
    return gw_http_header_find(&req, name);
}

#define CHECK_HDR(name, want) do { \
    const gw_http_header *h_ = hdr(name); \
    RD_CHECK(h_ != NULL); \
    if (h_) RD_CHECK_STR(h_->value, h_->value_len, want); \
} while (0)

static void test_simple_get(void)
{
    const char *s = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    RD_CHECK_EQ_INT(parse(s), strlen(s));
    RD_CHECK_STR(req.method, req.method_len, "GET");
    RD_CHECK_STR(req.target, req.target_len, "/index.html?x=1");
    RD_CHECK_EQ_INT(req.minor_version, 1);
    RD_CHECK_EQ_INT(req.num_headers, 2);
    RD_CHECK_STR(req.headers[0].name, req.headers[0].name_len, "Host");
    RD_CHECK_STR(req.headers[0].value, req.headers[0].value_len, "example.com");
    RD_CHECK_STR(req.headers[1].name, req.headers[1].name_len, "Accept");
    RD_CHECK_STR(req.headers[1].value, req.headers[1].value_len, "*/*");
    RD_CHECK_EQ_INT(req.head_len, strlen(s));
    RD_CHECK_EQ_INT(req.content_length, -1);
    RD_CHECK(!req.chunked);
    RD_CHECK(req.keep_alive);
    RD_CHECK(!req.conn_upgrade);
    /* Pointers go into the caller's buffer. */
    RD_CHECK(req.method == copy);
    RD_CHECK(req.target == copy + 4);
}

static void test_websocket_upgrade(void)
{
    const char *s =
        "GET /chat/lobby HTTP/1.1\r\n"
        "Host: localhost:8443\r\n"
        "Upgrade: websocket\r\n"
        "Connection: keep-alive, Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        "Origin: https://localhost:8443\r\n"
        "\r\n";
    EXPECT_OK(s);
    RD_CHECK(req.conn_upgrade);
    RD_CHECK(req.keep_alive);
    RD_CHECK_EQ_INT(req.num_headers, 7);
    CHECK_HDR("upgrade", "websocket");
    CHECK_HDR("SEC-WEBSOCKET-KEY", "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK_HDR("sec-websocket-version", "13");
    CHECK_HDR("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits");
    const gw_http_header *u = hdr("Upgrade");
    RD_CHECK(u && gw_http_token_list_has(u->value, u->value_len, "WebSocket"));
}

static void test_post_with_body_and_pipelining(void)
{
    const char *head = "POST /echo/foo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    char s[256];
    snprintf(s, sizeof s, "%shelloGET / HTTP/1.1\r\nHost: h\r\n\r\n", head);
    RD_CHECK_EQ_INT(parse(s), strlen(head));
    RD_CHECK_EQ_INT(req.content_length, 5);
    RD_CHECK_STR(req.method, req.method_len, "POST");
    RD_CHECK_EQ_INT(parse(s + strlen(head) + 5), strlen(s) - strlen(head) - 5);
}

static void test_every_prefix_needs_more(void)
{
    const char *s = "\r\nPUT /a%20b?q HTTP/1.0\r\nHost: [::1]:80\r\nX-A:\t v \t\r\n"
                    "Transfer-Encoding-Not: x\r\nContent-Length: 0\r\n\r\n";
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        int r = parse_n(s, i);
        RD_CHECK_EQ_INT(r, 0);
        if (r != 0)
            fprintf(stderr, "  prefix %zu: %s\n", i, err);
    }
    RD_CHECK_EQ_INT(parse_n(s, n), n);
    RD_CHECK_EQ_INT(req.minor_version, 0);
    RD_CHECK(!req.keep_alive);
    CHECK_HDR("x-a", "v");
}

/* Errors come in byte order: every prefix of a bad request needs more bytes
 * or already fails the same way. */
static void test_prefix_errors_consistent(void)
{
    static const char *bad[] = {
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n X: folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
        "GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        size_t n = strlen(bad[k]);
        RD_CHECK_EQ_INT(parse_lim(bad[k], n, 8192, 3), -EBADMSG);
        int full_status = status;
        char full_err[RD_ERR_LEN];
        memcpy(full_err, err, sizeof err);
        for (size_t i = 0; i < n; i++) {
            int r = parse_lim(bad[k], i, 8192, 3);
            RD_CHECK(r == 0 || r == -EBADMSG);
            if (r == -EBADMSG) {
                RD_CHECK_EQ_INT(status, full_status);
                RD_CHECK(strcmp(err, full_err) == 0);
            }
        }
    }
}

static void test_leading_empty_lines(void)
{
    const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    EXPECT_OK(s);
    RD_CHECK_STR(req.method, req.method_len, "GET");
    EXPECT_FAIL("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare LF in request head");
    EXPECT_FAIL("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare CR in request head");
    RD_CHECK_EQ_INT(parse("\r\n\r\n\r"), 0);
}

static void test_bare_lf_and_cr(void)
{
    EXPECT_FAIL("GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF in request head");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "bare LF in request head");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "bare LF in request head");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\r\nX: 1\n\r\n", 400, "bare LF in request head");
    EXPECT_FAIL("GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "bare CR in request head");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, "bare CR in request head");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400, "bare CR in request head");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, "bare CR in request head");
    EXPECT_FAIL("GET /\n HTTP/1.1\r\nHost: a\r\n\r\n", 400, "missing HTTP version");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost\n: a\r\n\r\n", 400, "header line without colon");
}

static void test_obs_fold_and_whitespace(void)
{
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, "obs-fold in header");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400, "obs-fold in header");
    EXPECT_FAIL("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "whitespace before first header");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "whitespace before colon in header");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "whitespace before colon in header");
    EXPECT_FAIL("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", 400, "invalid header name");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, "header line without colon");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", 400, "invalid header name");
    EXPECT_FAIL("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "empty request target");
    EXPECT_FAIL("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
    EXPECT_FAIL("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
    EXPECT_FAIL(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request method");
    EXPECT_FAIL("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request method");
}

static bool is_tchar(int c)
{
    static const char tchars[] = "!#$%&'*+-.^_`|~";
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr(tchars, c));
}

static void test_header_name_charset(void)
{
    for (int c = 0; c < 256; c++) {
        char s[] = "GET / HTTP/1.0\r\nX?Y: v\r\n\r\n";
        int n = (int)sizeof s - 1;
        s[17] = (char)c;
        int r = parse_n(s, (size_t)n);
        if (c == ':') {
            RD_CHECK_EQ_INT(r, n);
            CHECK_HDR("x", "Y: v");
        } else if (is_tchar(c)) {
            RD_CHECK_EQ_INT(r, n);
            RD_CHECK_EQ_INT(req.headers[0].name_len, 3);
        } else {
            RD_CHECK_EQ_INT(r, -EBADMSG);
            RD_CHECK_EQ_INT(status, 400);
        }
        if ((r == n) != (is_tchar(c) || c == ':'))
            fprintf(stderr, "  byte 0x%02x\n", c);
    }
}

static void test_method_charset(void)
{
    EXPECT_OK("get / HTTP/1.0\r\n\r\n");
    RD_CHECK_STR(req.method, req.method_len, "get");
    EXPECT_OK("M-SEARCH / HTTP/1.0\r\n\r\n");
    EXPECT_OK("X / HTTP/1.0\r\n\r\n");
    EXPECT_FAIL("GE(T / HTTP/1.0\r\n\r\n", 400, "invalid request method");
    EXPECT_FAIL("GET\r\n\r\n", 400, "malformed request line");
    EXPECT_FAIL("GET\n", 400, "malformed request line");
    for (int c = 0; c < 256; c++) {
        char s[] = "G?T / HTTP/1.0\r\n\r\n";
        int n = (int)sizeof s - 1;
        s[1] = (char)c;
        int r = parse_n(s, (size_t)n);
        RD_CHECK_EQ_INT(r, is_tchar(c) ? n : -EBADMSG);
        if (c == ' ')
            RD_CHECK(strcmp(err, "request target not in origin form") == 0);
    }
}

static void test_header_values(void)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nEmpty:\r\nSpaces:   \t \r\n"
                    "Inner: a \t b\r\nUtf8: caf\xc3\xa9\r\nTrail: x  \r\n\r\n";
    EXPECT_OK(s);
    CHECK_HDR("empty", "");
    CHECK_HDR("spaces", "");
    CHECK_HDR("inner", "a \t b");
    CHECK_HDR("utf8", "caf\xc3\xa9");
    CHECK_HDR("trail", "x");

    static const char nul_value[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    EXPECT_FAIL_N(nul_value, sizeof nul_value - 1, 400, "control character in header value");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400,
                "control character in header value");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", 400,
                "control character in header value");
    /* A CTL far into a long value goes through the word-at-a-time scanner. */
    char longv[512];
    snprintf(longv, sizeof longv, "GET / HTTP/1.1\r\nHost: a\r\nX: %s\x1b%s\r\n\r\n",
             "0123456789abcdef0123456789abcdef0123456789", "tail");
    EXPECT_FAIL(longv, 400, "control character in header value");
    snprintf(longv, sizeof longv, "GET / HTTP/1.1\r\nHost: a\r\nX: %s\t%s\t\r\n\r\n",
             "0123456789abcdef0123456789abcdef0123456789", "\xff\xfe" "0123456789abcdef");
    EXPECT_OK(longv);
    CHECK_HDR("x", "0123456789abcdef0123456789abcdef0123456789\t\xff\xfe" "0123456789abcdef");
}

static void test_target(void)
{
    EXPECT_OK("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    RD_CHECK_STR(req.target, req.target_len, "*");
    EXPECT_FAIL("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk target outside OPTIONS");
    EXPECT_FAIL("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk target outside OPTIONS");
    EXPECT_FAIL("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk target outside OPTIONS");
    EXPECT_FAIL("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target not in origin form");
    EXPECT_FAIL("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target not in origin form");
    EXPECT_FAIL("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid byte in request target");
    EXPECT_FAIL("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid byte in request target");
    EXPECT_FAIL("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid byte in request target");
    static const char nul_target[] = "GET /a\0 HTTP/1.1\r\nHost: a\r\n\r\n";
    EXPECT_FAIL_N(nul_target, sizeof nul_target - 1, 400, "invalid byte in request target");
    EXPECT_FAIL("GET /0123456789abcdef0123456789abcdef\x80xyz HTTP/1.1\r\nHost: a\r\n\r\n", 400,
                "invalid byte in request target");
    const char *s = "GET /0123456789abcdef/0123456789abcdef/~!$&'()*+,;=:@%41?q=a&b=c HTTP/1.1\r\n"
                    "Host: a\r\n\r\n";
    EXPECT_OK(s);
    RD_CHECK_STR(req.target, req.target_len,
                 "/0123456789abcdef/0123456789abcdef/~!$&'()*+,;=:@%41?q=a&b=c");
    EXPECT_FAIL("GET /\r\n\r\n", 400, "missing HTTP version");
}

static void test_versions(void)
{
    EXPECT_OK("GET / HTTP/1.0\r\n\r\n");
    RD_CHECK_EQ_INT(req.minor_version, 0);
    RD_CHECK_EQ_INT(req.num_headers, 0);
    EXPECT_FAIL("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "unsupported HTTP version");
    EXPECT_FAIL("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported HTTP version");
    EXPECT_FAIL("GET / HTTP/0.9\r\n\r\n", 505, "unsupported HTTP version");
    EXPECT_FAIL("GET / HTTP/9.9\r\n\r\n", 505, "unsupported HTTP version");
    EXPECT_FAIL("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
    EXPECT_FAIL("GET / HTTP/11\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
    EXPECT_FAIL("GET / http/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
    EXPECT_FAIL("GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
    EXPECT_FAIL("GET / HTTP/1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
    EXPECT_FAIL("GET / HTTP/2\r\n\r\n", 400, "malformed HTTP version");
    EXPECT_FAIL("GET / HTTPS/1.1\r\n\r\n", 400, "malformed HTTP version");
    RD_CHECK_EQ_INT(parse("GET / HTTP/1.1\r"), 0);
    RD_CHECK_EQ_INT(parse("GET / HTTP/2.0"), 0);
}

static void test_too_many_headers(void)
{
    char s[8192];
    size_t n = (size_t)snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < 3; i++)
        n += (size_t)snprintf(s + n, sizeof s - n, "X-%d: %d\r\n", i, i);
    memcpy(s + n, "\r\n", 3);
    RD_CHECK_EQ_INT(parse_lim(s, strlen(s), 8192, 3), strlen(s));
    RD_CHECK_EQ_INT(req.num_headers, 3);
    RD_CHECK_EQ_INT(parse_lim(s, strlen(s), 8192, 2), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);
    RD_CHECK_STR(err, strlen(err), "too many headers");
    /* Refused as soon as the extra header starts. */
    RD_CHECK_EQ_INT(parse_lim(s, 32, 8192, 1), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);
    RD_CHECK_EQ_INT(parse_lim("GET / HTTP/1.0\r\nA: b\r\n\r\n", 24, 8192, 0), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);
    RD_CHECK_EQ_INT(parse_lim("GET / HTTP/1.0\r\n\r\n", 18, 8192, 0), 18);

    /* max_headers is clamped to GW_HTTP_MAX_HEADERS. */
    n = (size_t)snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < GW_HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(s + n, sizeof s - n, "X-%d: %d\r\n", i, i);
    memcpy(s + n, "\r\n", 3);
    RD_CHECK_EQ_INT(parse_lim(s, strlen(s), sizeof s, 100000), strlen(s));
    RD_CHECK_EQ_INT(req.num_headers, GW_HTTP_MAX_HEADERS);
    RD_CHECK_EQ_INT(gw_http_header_count(&req, "host"), 1);
    CHECK_HDR("x-99", "99");
    n += (size_t)snprintf(s + n, sizeof s - n, "X-100: 100\r\n\r\n");
    RD_CHECK_EQ_INT(parse_lim(s, strlen(s), sizeof s, 100000), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);
}

static void test_head_size_limit(void)
{
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n = strlen(s);
    RD_CHECK_EQ_INT(parse_lim(s, n, n, 64), n);
    RD_CHECK_EQ_INT(parse_lim(s, n, n - 1, 64), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);
    RD_CHECK_STR(err, strlen(err), "request head too large");
    /* Incomplete with fewer than max_head bytes: wait; with max_head or more: refuse. */
    RD_CHECK_EQ_INT(parse_lim(s, n - 1, n, 64), 0);
    RD_CHECK_EQ_INT(parse_lim(s, n - 1, n - 1, 64), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);
    RD_CHECK_EQ_INT(parse_lim(s, n - 2, n - 1, 64), 0);

    char big[300];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
    RD_CHECK_EQ_INT(parse_lim(big, sizeof big, 100, 64), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);
    RD_CHECK_EQ_INT(parse_lim(big, 99, 100, 64), 0);
    RD_CHECK_EQ_INT(parse_lim(big, 100, 100, 64), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);
    /* Within the limit, a syntax error still wins (it comes first). */
    big[40] = '\x01';
    RD_CHECK_EQ_INT(parse_lim(big, sizeof big, 100, 64), -EBADMSG);
    RD_CHECK_EQ_INT(status, 400);
    big[40] = 'a';
    /* A complete head past the limit is refused even though the CRLFCRLF is there. */
    memcpy(big + 200, "\r\n\r\n", 4);
    RD_CHECK_EQ_INT(parse_lim(big, sizeof big, 100, 64), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);
    RD_CHECK_EQ_INT(parse_lim(big, sizeof big, 204, 64), 204);
    RD_CHECK_EQ_INT(parse_lim(big, sizeof big, 203, 64), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);

    RD_CHECK_EQ_INT(parse_lim("", 0, 0, 64), -EBADMSG);
    RD_CHECK_EQ_INT(status, 431);
    RD_CHECK_EQ_INT(parse_lim("", 0, 1, 64), 0);
    RD_CHECK_EQ_INT(gw_http_parse(NULL, 0, 8192, 64, &req, &status, err), 0);
    RD_CHECK_EQ_INT(parse_lim(s, n, SIZE_MAX, 64), n);
}

static void test_host(void)
{
    EXPECT_FAIL("GET / HTTP/1.1\r\n\r\n", 400, "missing Host header");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400, "duplicate Host header");
    EXPECT_FAIL("GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n", 400, "duplicate Host header");
    EXPECT_OK("GET / HTTP/1.0\r\n\r\n");
    EXPECT_OK("GET / HTTP/1.1\r\nhOsT: example.com:8443\r\n\r\n");
    EXPECT_OK("GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n");
    EXPECT_OK("GET / HTTP/1.1\r\nHost:\r\n\r\n");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host header");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host header");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400, "invalid Host header");
    EXPECT_FAIL("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", 400, "invalid Host header");
    EXPECT_FAIL("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", 400, "missing Host header");
}

static void test_content_length(void)
{
    EXPECT_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    RD_CHECK_EQ_INT(req.content_length, 0);
    EXPECT_OK("POST / HTTP/1.1\r\nHost: a\r\ncontent-length:  0042 \r\n\r\n");
    RD_CHECK_EQ_INT(req.content_length, 42);
    EXPECT_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9007199254740992\r\n\r\n");
    RD_CHECK_EQ_INT(req.content_length, INT64_C(9007199254740992));
    EXPECT_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 007\r\n\r\n");
    RD_CHECK_EQ_INT(req.content_length, 7);

    static const char *bad[] = {
        "9007199254740993", "99999999999999999999999999999", "-1", "+1", "1 2", "1,1", "1, 1",
        "", "0x10", "1.0", "abc",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char s[256];
        snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", bad[i]);
        EXPECT_FAIL(s, 400, "invalid Content-Length");
    }
    EXPECT_FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                400, "conflicting Content-Length values");
    EXPECT_FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: x\r\n\r\n",
                400, "invalid Content-Length");
}

static void test_transfer_encoding(void)
{
    EXPECT_OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    RD_CHECK(req.chunked);
    RD_CHECK_EQ_INT(req.content_length, -1);
    EXPECT_OK("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  Chunked \r\n\r\n");
    RD_CHECK(req.chunked);
    EXPECT_FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                "Content-Length: 5\r\n\r\n", 400, "both Content-Length and Transfer-Encoding");
    EXPECT_FAIL("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                "Transfer-Encoding: gzip\r\n\r\n", 400, "both Content-Length and Transfer-Encoding");
    EXPECT_FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501, "unsupported Transfer-Encoding");
    EXPECT_FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                501, "unsupported Transfer-Encoding");
    EXPECT_FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                "Transfer-Encoding: chunked\r\n\r\n", 501, "unsupported Transfer-Encoding");
    EXPECT_FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                501, "unsupported Transfer-Encoding");
    EXPECT_FAIL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
                501, "unsupported Transfer-Encoding");
    EXPECT_FAIL("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                400, "Transfer-Encoding in HTTP/1.0 request");
}

static void test_keep_alive_and_upgrade(void)
{
    static const struct {
        const char *req;
        bool keep_alive, upgrade;
    } cases[] = {
        { "GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, false },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", false, false },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true, false },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", false, false },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n", true, true },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade,close\r\n\r\n", false, true },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: upgrade\r\n\r\n", true, true },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrades, closed\r\n\r\n", true, false },
        { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", true, false },
        { "GET / HTTP/1.0\r\n\r\n", false, false },
        { "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, false },
        { "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false, false },
        { "GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n", false, true },
        { "GET / HTTP/1.0\r\nX-Connection: keep-alive\r\n\r\n", false, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        EXPECT_OK(cases[i].req);
        RD_CHECK_EQ_INT(req.keep_alive, cases[i].keep_alive);
        RD_CHECK_EQ_INT(req.conn_upgrade, cases[i].upgrade);
        if (req.keep_alive != cases[i].keep_alive || req.conn_upgrade != cases[i].upgrade)
            fprintf(stderr, "  case %zu\n", i);
    }
}

static void test_header_find_count(void)
{
    EXPECT_OK("GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\nX-DUP: 3\r\nX-Du: 4\r\n\r\n");
    CHECK_HDR("x-dup", "1");
    RD_CHECK_EQ_INT(gw_http_header_count(&req, "X-Dup"), 3);
    RD_CHECK_EQ_INT(gw_http_header_count(&req, "x-du"), 1);
    RD_CHECK_EQ_INT(gw_http_header_count(&req, "x-d"), 0);
    RD_CHECK_EQ_INT(gw_http_header_count(&req, "nope"), 0);
    RD_CHECK(hdr("nope") == NULL);
    RD_CHECK(hdr("") == NULL);
    RD_CHECK(hdr("X-Dupe") == NULL);
    /* Case folding is ASCII only: '@' and '`' are not letters. */
    EXPECT_OK("GET / HTTP/1.0\r\nA`: 1\r\n\r\n");
    RD_CHECK(hdr("a`") != NULL);
    RD_CHECK(hdr("A@") == NULL);
}

static void test_token_list(void)
{
    const char *v = " keep-alive ,\tUpgrade\t, ,,x-y  ";
    size_t n = strlen(v);
    RD_CHECK(gw_http_token_list_has(v, n, "upgrade"));
    RD_CHECK(gw_http_token_list_has(v, n, "UPGRADE"));
    RD_CHECK(gw_http_token_list_has(v, n, "keep-alive"));
    RD_CHECK(gw_http_token_list_has(v, n, "x-y"));
    RD_CHECK(!gw_http_token_list_has(v, n, "x"));
    RD_CHECK(!gw_http_token_list_has(v, n, "upgrad"));
    RD_CHECK(!gw_http_token_list_has(v, n, "keep-alive ,"));
    RD_CHECK(!gw_http_token_list_has(v, n, ""));
    RD_CHECK(!gw_http_token_list_has("", 0, "close"));
    RD_CHECK(!gw_http_token_list_has(",,,", 3, "close"));
    RD_CHECK(gw_http_token_list_has("close", 5, "close"));
    /* Only len bytes count. */
    RD_CHECK(!gw_http_token_list_has("clos", 4, "close"));
    RD_CHECK(gw_http_token_list_has("a, closed", 8, "close"));
    RD_CHECK(!gw_http_token_list_has("a, closed", 9, "close"));
    RD_CHECK(!gw_http_token_list_has("upgrade2", 8, "upgrade"));
    RD_CHECK(!gw_http_token_list_has("websocket/13", 12, "websocket"));
}

static void test_percent_decode(void)
{
    char out[64];
    size_t n = 99;
    RD_CHECK_EQ_INT(gw_http_percent_decode("a%20b%2Fc%2fd+e", 15, out, sizeof out, &n), 0);
    RD_CHECK_STR(out, n, "a b/c/d+e");
    RD_CHECK_EQ_INT(gw_http_percent_decode("%C3%A9%e2%82%AC", 15, out, sizeof out, &n), 0);
    RD_CHECK_STR(out, n, "\xc3\xa9\xe2\x82\xac");
    RD_CHECK_EQ_INT(gw_http_percent_decode("", 0, out, sizeof out, &n), 0);
    RD_CHECK_EQ_INT(n, 0);
    RD_CHECK_EQ_INT(gw_http_percent_decode("", 0, NULL, 0, &n), 0);

    static const char *bad[] = { "%", "a%", "%4", "a%4", "%zz", "%4g", "%g4", "%00", "x%00y", "%-1", "% 1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = 99;
        RD_CHECK_EQ_INT(gw_http_percent_decode(bad[i], strlen(bad[i]), out, sizeof out, &n), -EINVAL);
        RD_CHECK_EQ_INT(n, 99);
    }
    RD_CHECK_EQ_INT(gw_http_percent_decode("a\0b", 3, out, sizeof out, &n), -EINVAL);
    /* The escape must lie within len, even if the string goes on. */
    RD_CHECK_EQ_INT(gw_http_percent_decode("ab%41", 4, out, sizeof out, &n), -EINVAL);

    /* Output capacity. */
    RD_CHECK_EQ_INT(gw_http_percent_decode("abc", 3, out, 3, &n), 0);
    RD_CHECK_STR(out, n, "abc");
    RD_CHECK_EQ_INT(gw_http_percent_decode("abc", 3, out, 2, &n), -EINVAL);
    RD_CHECK_EQ_INT(gw_http_percent_decode("%41%42", 6, out, 2, &n), 0);
    RD_CHECK_STR(out, n, "AB");
    RD_CHECK_EQ_INT(gw_http_percent_decode("%41%42", 6, out, 1, &n), -EINVAL);
    RD_CHECK_EQ_INT(gw_http_percent_decode("a", 1, NULL, 0, &n), -EINVAL);

    /* In place. */
    char buf[] = "/chat/l%6Fbby%20%231";
    RD_CHECK_EQ_INT(gw_http_percent_decode(buf, strlen(buf), buf, sizeof buf, &n), 0);
    RD_CHECK_STR(buf, n, "/chat/lobby #1");

    /* Every byte value except NUL survives a round trip. */
    char enc[3 * 256], dec[256];
    for (int c = 1; c < 256; c++)
        snprintf(enc + 3 * (c - 1), 4, "%%%02X", c);
    RD_CHECK_EQ_INT(gw_http_percent_decode(enc, 3 * 255, dec, sizeof dec, &n), 0);
    RD_CHECK_EQ_INT(n, 255);
    for (int c = 1; c < 256; c++)
        RD_CHECK_EQ_INT((unsigned char)dec[c - 1], c);
}

static void test_reason(void)
{
    static const int codes[] = { 101, 200, 204, 400, 401, 403, 404, 405, 408, 411, 413, 426,
                                 429, 431, 500, 501, 502, 503, 504, 505 };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *r = gw_http_reason(codes[i]);
        RD_CHECK(r && strcmp(r, "Unknown") != 0 && r[0]);
    }
    RD_CHECK(strcmp(gw_http_reason(101), "Switching Protocols") == 0);
    RD_CHECK(strcmp(gw_http_reason(200), "OK") == 0);
    RD_CHECK(strcmp(gw_http_reason(400), "Bad Request") == 0);
    RD_CHECK(strcmp(gw_http_reason(426), "Upgrade Required") == 0);
    RD_CHECK(strcmp(gw_http_reason(431), "Request Header Fields Too Large") == 0);
    RD_CHECK(strcmp(gw_http_reason(505), "HTTP Version Not Supported") == 0);
    RD_CHECK(strcmp(gw_http_reason(0), "Unknown") == 0);
    RD_CHECK(strcmp(gw_http_reason(-1), "Unknown") == 0);
    RD_CHECK(strcmp(gw_http_reason(299), "Unknown") == 0);
}

static void test_null_outputs(void)
{
    const char *s = "GET / HTTP/9.9\r\n\r\n";
    RD_CHECK_EQ_INT(gw_http_parse(s, strlen(s), 8192, 64, &req, NULL, NULL), -EBADMSG);
    /* Status and err are only written on failure. */
    status = 12345;
    strcpy(err, "untouched");
    s = "GET / HTTP/1.0\r\n\r\n";
    RD_CHECK_EQ_INT(gw_http_parse(s, strlen(s), 8192, 64, &req, &status, err), (int)strlen(s));
    RD_CHECK_EQ_INT(status, 12345);
    RD_CHECK(strcmp(err, "untouched") == 0);
}

int main(void)
{
    RD_RUN(test_simple_get);
    RD_RUN(test_websocket_upgrade);
    RD_RUN(test_post_with_body_and_pipelining);
    RD_RUN(test_every_prefix_needs_more);
    RD_RUN(test_prefix_errors_consistent);
    RD_RUN(test_leading_empty_lines);
    RD_RUN(test_bare_lf_and_cr);
    RD_RUN(test_obs_fold_and_whitespace);
    RD_RUN(test_header_name_charset);
    RD_RUN(test_method_charset);
    RD_RUN(test_header_values);
    RD_RUN(test_target);
    RD_RUN(test_versions);
    RD_RUN(test_too_many_headers);
    RD_RUN(test_head_size_limit);
    RD_RUN(test_host);
    RD_RUN(test_content_length);
    RD_RUN(test_transfer_encoding);
    RD_RUN(test_keep_alive_and_upgrade);
    RD_RUN(test_header_find_count);
    RD_RUN(test_token_list);
    RD_RUN(test_percent_decode);
    RD_RUN(test_reason);
    RD_RUN(test_null_outputs);
    free(copy);
    return rd_test_summary();
}
