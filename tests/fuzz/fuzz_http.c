/* Fuzz target for the HTTP request-head parser. Besides "no crash", it checks
 * the contract's invariants and aborts when one breaks, so the fuzzer reports
 * logic errors too: results stay inside the input, limits hold, and a prefix
 * of the input never contradicts the whole (byte-order errors). */
#include "http_parser.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_HEAD 16384

#define INVARIANT(cond) do { if (!(cond)) abort(); } while (0)

/* Static: the struct holds 100 headers and fuzzers run one input at a time. */
static gw_http_request req;
static char scratch[FUZZ_MAX_HEAD];

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void check_result(int r, int status, const char *err, const char *buf, size_t len,
                         size_t max_head, size_t max_headers)
{
    if (r == -EBADMSG) {
        INVARIANT(status == 400 || status == 431 || status == 501 || status == 505);
        size_t n = strnlen(err, RD_ERR_LEN);
        INVARIANT(n > 0 && n < RD_ERR_LEN && !memchr(err, '\n', n));
        return;
    }
    if (r == 0) {
        INVARIANT(len < max_head);
        return;
    }
    INVARIANT(r > 0 && (size_t)r == req.head_len && req.head_len <= len && req.head_len <= max_head);
    INVARIANT(req.head_len >= 4 && memcmp(buf + req.head_len - 4, "\r\n\r\n", 4) == 0);
    INVARIANT(req.minor_version == 0 || req.minor_version == 1);
    INVARIANT(req.num_headers <= max_headers && req.num_headers <= GW_HTTP_MAX_HEADERS);
    INVARIANT(req.method_len > 0 && inside(req.method, req.method_len, buf, req.head_len));
    INVARIANT(req.target_len > 0 && inside(req.target, req.target_len, buf, req.head_len));
    INVARIANT(req.target[0] == '/' || (req.target[0] == '*' && req.target_len == 1));
    for (size_t i = 0; i < req.target_len; i++)
        INVARIANT((unsigned char)req.target[i] > 0x20 && (unsigned char)req.target[i] < 0x7f);
    INVARIANT(req.content_length >= -1 && req.content_length <= (INT64_C(1) << 53));
    INVARIANT(!(req.chunked && req.content_length >= 0));
    for (size_t i = 0; i < req.num_headers; i++) {
        const gw_http_header *h = &req.headers[i];
        INVARIANT(h->name_len > 0 && inside(h->name, h->name_len, buf, req.head_len));
        INVARIANT(inside(h->value, h->value_len, buf, req.head_len));
        INVARIANT(!memchr(h->name, ':', h->name_len));
        INVARIANT(!memchr(h->value, '\r', h->value_len) && !memchr(h->value, '\n', h->value_len));
        if (h->value_len) {
            char first = h->value[0], last = h->value[h->value_len - 1];
            INVARIANT(first != ' ' && first != '\t' && last != ' ' && last != '\t');
        }
    }
}

static void exercise(const char *buf)
{
    char name[64];
    size_t n;

    for (size_t i = 0; i < req.num_headers; i++) {
        const gw_http_header *h = &req.headers[i];
        size_t len = h->name_len < sizeof name - 1 ? h->name_len : sizeof name - 1;
        memcpy(name, h->name, len);
        name[len] = '\0';
        const gw_http_header *f = gw_http_header_find(&req, name);
        size_t count = gw_http_header_count(&req, name);
        INVARIANT(len < h->name_len || (f && f <= h && count >= 1));
        INVARIANT(!f || count >= 1);

        gw_http_token_list_has(h->value, h->value_len, "close");
        gw_http_token_list_has(h->value, h->value_len, "upgrade");
        gw_http_token_list_has(h->value, h->value_len, name);
        if (gw_http_percent_decode(h->value, h->value_len, scratch, sizeof scratch, &n) == 0)
            INVARIANT(n <= h->value_len && !memchr(scratch, '\0', n));
    }

    const gw_http_header *c = gw_http_header_find(&req, "connection");
    if (c && gw_http_header_count(&req, "connection") == 1)
        INVARIANT(req.conn_upgrade == gw_http_token_list_has(c->value, c->value_len, "upgrade"));
    INVARIANT(req.minor_version == 0 || gw_http_header_count(&req, "host") == 1);

    n = SIZE_MAX;
    int r = gw_http_percent_decode(req.target, req.target_len, scratch, sizeof scratch, &n);
    if (r == 0)
        INVARIANT(n <= req.target_len);
    else
        INVARIANT(r == -EINVAL && n == SIZE_MAX);
    /* Too little room must fail cleanly, never write past cap. */
    gw_http_percent_decode(req.target, req.target_len, scratch, req.target_len / 2, &n);
    (void)buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char err[RD_ERR_LEN];
    int status = 0;

    int r = gw_http_parse(buf, size, FUZZ_MAX_HEAD, GW_HTTP_MAX_HEADERS, &req, &status, err);
    check_result(r, status, err, buf, size, FUZZ_MAX_HEAD, GW_HTTP_MAX_HEADERS);
    int full_r = r, full_status = status;
    char full_err[RD_ERR_LEN];
    memcpy(full_err, err, sizeof full_err);
    if (r > 0) {
        exercise(buf);
        /* The head alone parses the same. */
        INVARIANT(gw_http_parse(buf, (size_t)r, FUZZ_MAX_HEAD, GW_HTTP_MAX_HEADERS, &req,
                                &status, err) == r);
    }

    /* Prefixes: "need more" or the same verdict, never a different one. */
    size_t cut[2] = { size / 2, full_r > 0 ? (size_t)full_r - 1 : size ? size - 1 : 0 };
    for (int i = 0; i < 2; i++) {
        if (cut[i] >= size)
            continue;
        r = gw_http_parse(buf, cut[i], FUZZ_MAX_HEAD, GW_HTTP_MAX_HEADERS, &req, &status, err);
        check_result(r, status, err, buf, cut[i], FUZZ_MAX_HEAD, GW_HTTP_MAX_HEADERS);
        if (full_r > 0 && cut[i] < (size_t)full_r)
            INVARIANT(r == 0);
        else if (full_r < 0 && r != 0)
            INVARIANT(r == full_r && status == full_status && strcmp(err, full_err) == 0);
    }

    /* Tight limits reach the 431 paths. */
    size_t small_head = size / 2 + 1, small_headers = size % 5;
    r = gw_http_parse(buf, size, small_head, small_headers, &req, &status, err);
    check_result(r, status, err, buf, size, small_head, small_headers);
    if (r > 0)
        exercise(buf);
    return 0;
}
