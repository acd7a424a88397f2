/* Unit tests for proto/: the msgpack subset (pr_mp) and the gateway<->shard
 * messages (pr_msg). Byte vectors marked "packb" were produced by Python's
 * msgpack 1.0 (use_bin_type=True unless noted) and pasted verbatim. */
#include <errno.h>
#include <stdint.h>

#include "pr_mp.h"
#include "pr_msg.h"
#include "rd_buf.h"
#include "rd_test.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- interop vectors (packb) ------------------------------------------ */

/* packb([6, 1, 1, b"hi"]) */
static const uint8_t py_frame[] = { 0x94, 0x06, 0x01, 0x01, 0xc4, 0x02, 0x68, 0x69 };
/* packb([6, 1, 2, b"hi"], use_bin_type=False): payload arrives as a str */
static const uint8_t py_frame_str[] = { 0x94, 0x06, 0x01, 0x02, 0xa2, 0x68, 0x69 };
/* packb([1, 1, "gateway", "gw-1", ["echo", "chat"]]) */
static const uint8_t py_hello[] = {
    0x95, 0x01, 0x01, 0xa7, 0x67, 0x61, 0x74, 0x65, 0x77, 0x61, 0x79, 0xa4, 0x67, 0x77, 0x2d,
    0x31, 0x92, 0xa4, 0x65, 0x63, 0x68, 0x6f, 0xa4, 0x63, 0x68, 0x61, 0x74 };
/* packb([2, 7, "room", "cid", 1700000000000, 1, "chat", "127.0.0.1", "a=1",
 *        {"host": "x", "origin": "y"}]) */
static const uint8_t py_open[] = {
    0x9a, 0x02, 0x07, 0xa4, 0x72, 0x6f, 0x6f, 0x6d, 0xa3, 0x63, 0x69, 0x64, 0xcf, 0x00, 0x00,
    0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x01, 0xa4, 0x63, 0x68, 0x61, 0x74, 0xa9, 0x31, 0x32,
    0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0xa3, 0x61, 0x3d, 0x31, 0x82, 0xa4, 0x68, 0x6f,
    0x73, 0x74, 0xa1, 0x78, 0xa6, 0x6f, 0x72, 0x69, 0x67, 0x69, 0x6e, 0xa1, 0x79 };
/* packb([3, 5, None]) */
static const uint8_t py_accept_nil[] = { 0x93, 0x03, 0x05, 0xc0 };
/* packb([3, 5, "chat"]) */
static const uint8_t py_accept[] = { 0x93, 0x03, 0x05, 0xa4, 0x63, 0x68, 0x61, 0x74 };
/* packb([4, 9, 403, "forbidden"]) */
static const uint8_t py_reject[] = {
    0x94, 0x04, 0x09, 0xcd, 0x01, 0x93, 0xa9, 0x66, 0x6f, 0x72, 0x62, 0x69, 0x64, 0x64, 0x65,
    0x6e };
/* packb([5, 9, 1000, ""]) */
static const uint8_t py_close[] = { 0x94, 0x05, 0x09, 0xcd, 0x03, 0xe8, 0xa0 };
/* packb([7, 70000, 2, b"\x00\xff"]) */
static const uint8_t py_send[] = {
    0x94, 0x07, 0xce, 0x00, 0x01, 0x11, 0x70, 0x02, 0xc4, 0x02, 0x00, 0xff };
/* packb([8, 1, b"yo", [1, 200, 70000, 2**33]]) */
static const uint8_t py_broadcast[] = {
    0x94, 0x08, 0x01, 0xc4, 0x02, 0x79, 0x6f, 0x94, 0x01, 0xcc, 0xc8, 0xce, 0x00, 0x01, 0x11,
    0x70, 0xcf, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00 };
/* packb([9, 3, "k", "GET", "/echo/x", "", {"a": "b"}, b"", "1.2.3.4"]) */
static const uint8_t py_http_req[] = {
    0x99, 0x09, 0x03, 0xa1, 0x6b, 0xa3, 0x47, 0x45, 0x54, 0xa7, 0x2f, 0x65, 0x63, 0x68, 0x6f,
    0x2f, 0x78, 0xa0, 0x81, 0xa1, 0x61, 0xa1, 0x62, 0xc4, 0x00, 0xa7, 0x31, 0x2e, 0x32, 0x2e,
    0x33, 0x2e, 0x34 };
/* packb([10, 3, 200, {"content-type": "text/plain"}, b"ok"]) */
static const uint8_t py_http_res[] = {
    0x95, 0x0a, 0x03, 0xcc, 0xc8, 0x81, 0xac, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2d,
    0x74, 0x79, 0x70, 0x65, 0xaa, 0x74, 0x65, 0x78, 0x74, 0x2f, 0x70, 0x6c, 0x61, 0x69, 0x6e,
    0xc4, 0x02, 0x6f, 0x6b };
/* packb([11, 2**64 - 1]) */
static const uint8_t py_ping[] = {
    0x92, 0x0b, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
/* packb([12, 0]) */
static const uint8_t py_pong[] = { 0x92, 0x0c, 0x00 };
/* packb([11, 1, 1.5, {"x": [None, True]}, ExtType(5, b"ab"), ExtType(1, b"abc"),
 *        -2**63, 2.5e300]): trailing fields of types we never write */
static const uint8_t py_ping_extra[] = {
    0x98, 0x0b, 0x01, 0xcb, 0x3f, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x81, 0xa1, 0x78,
    0x92, 0xc0, 0xc3, 0xd5, 0x05, 0x61, 0x62, 0xc7, 0x03, 0x01, 0x61, 0x62, 0x63, 0xd3, 0x80,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xcb, 0x7e, 0x4d, 0xdd, 0x4b, 0xaa, 0x00, 0x93,
    0x03 };
/* packb([11, 1, 1.5], use_single_float=True) */
static const uint8_t py_ping_f32[] = { 0x93, 0x0b, 0x01, 0xca, 0x3f, 0xc0, 0x00, 0x00 };

/* ---- helpers ---------------------------------------------------------- */

static bool bytes_eq(const rd_buf *b, const void *p, size_t n)
{
    return rd_buf_avail(b) == n && memcmp(rd_buf_data(b), p, n) == 0;
}

static bool str_eq(pr_str s, const char *z)
{
    return s.p && s.n == strlen(z) && memcmp(s.p, z, s.n) == 0;
}

/* Split the one frame in b and decode it; the frame must fill b exactly. */
/* A msgpack array of n unsigned integers. */
static void put_uint_array(rd_buf *b, const uint64_t *v, size_t n)
{
    pr_mp_put_array(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        pr_mp_put_uint(b, v[i]);
}

/* The decoded list holds exactly want[0..n), in order. */
static void check_uint_list(pr_list *l, const uint64_t *want, size_t n)
{
    uint64_t c;
    for (size_t i = 0; i < n; i++) {
        RD_CHECK_EQ_INT(pr_list_next_uint(l, &c), 0);
        RD_CHECK(c == want[i]);
    }
    RD_CHECK_EQ_INT(pr_list_next_uint(l, &c), -ENOENT);
}

static int decode_buf(const rd_buf *b, pr_msg *m)
{
    const uint8_t *body = NULL;
    size_t len = 0;
    char err[RD_ERR_LEN] = "";
    int r = pr_frame_next(rd_buf_data(b), rd_buf_avail(b), PR_FRAME_MAX, &body, &len);
    RD_CHECK_EQ_INT(r, rd_buf_avail(b));
    if (r <= 0)
        return -1;
    r = pr_msg_decode(body, len, m, err);
    if (r < 0)
        fprintf(stderr, "decode failed: %s\n", err);
    return r;
}

static int decode_raw(const uint8_t *p, size_t n, pr_msg *m, char *err)
{
    err[0] = '\0';
    return pr_msg_decode(p, n, m, err);
}

/* Decoding must fail with -EBADMSG and the given message, leaving ret alone. */
static void expect_error(const uint8_t *p, size_t n, const char *want, int line)
{
    char err[RD_ERR_LEN] = "";
    pr_msg m;
    memset(&m, 0xa5, sizeof m);
    int r = pr_msg_decode(p, n, &m, err);
    rd_test_checks++;
    if (r != -EBADMSG || (want && strcmp(err, want) != 0)) {
        rd_test_failures++;
        fprintf(stderr, "%s:%d: %s: decode gave %d \"%s\", expected -EBADMSG \"%s\"\n", __FILE__,
                line, rd_test_current, r, err, want ? want : "(any)");
    }
    RD_CHECK(err[0] != '\0');
    RD_CHECK(m.type == (int)0xa5a5a5a5);
}
#define EXPECT_ERR(arr, want) expect_error((arr), sizeof(arr), (want), __LINE__)

/* ---- integers --------------------------------------------------------- */

static const struct int_vec {
    int64_t v; /* bit pattern; see is_uint */
    bool is_uint;
    size_t n;
    uint8_t b[9];
} int_vecs[] = {
    /* packb(v) for each boundary */
    { 0, true, 1, { 0x00 } },
    { 1, true, 1, { 0x01 } },
    { 127, true, 1, { 0x7f } },
    { 128, true, 2, { 0xcc, 0x80 } },
    { 255, true, 2, { 0xcc, 0xff } },
    { 256, true, 3, { 0xcd, 0x01, 0x00 } },
    { 65535, true, 3, { 0xcd, 0xff, 0xff } },
    { 65536, true, 5, { 0xce, 0x00, 0x01, 0x00, 0x00 } },
    { INT64_C(4294967295), true, 5, { 0xce, 0xff, 0xff, 0xff, 0xff } },
    { INT64_C(4294967296), true, 9, { 0xcf, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00 } },
    { INT64_MAX, true, 9, { 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
    { INT64_MIN, true, 9, { 0xcf, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 } }, /* 2^63 */
    { -1, true, 9, { 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },       /* 2^64-1 */
    { -1, false, 1, { 0xff } },
    { -32, false, 1, { 0xe0 } },
    { -33, false, 2, { 0xd0, 0xdf } },
    { -128, false, 2, { 0xd0, 0x80 } },
    { -129, false, 3, { 0xd1, 0xff, 0x7f } },
    { -32768, false, 3, { 0xd1, 0x80, 0x00 } },
    { -32769, false, 5, { 0xd2, 0xff, 0xff, 0x7f, 0xff } },
    { INT32_MIN, false, 5, { 0xd2, 0x80, 0x00, 0x00, 0x00 } },
    { INT64_C(-2147483649), false, 9, { 0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff } },
    { INT64_MIN, false, 9, { 0xd3, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 } },
};

static uint64_t vec_u(const struct int_vec *v)
{
    uint64_t u;
    memcpy(&u, &v->v, sizeof u);
    return u;
}

static void test_int_encode(void)
{
    for (size_t i = 0; i < N(int_vecs); i++) {
        const struct int_vec *v = &int_vecs[i];
        rd_buf b = RD_BUF_INIT;
        if (v->is_uint)
            pr_mp_put_uint(&b, vec_u(v));
        else
            pr_mp_put_int(&b, v->v);
        RD_CHECK_MEM(rd_buf_data(&b), rd_buf_avail(&b), v->b, v->n);
        /* put_int of a non-negative value is the uint encoding */
        if (v->is_uint && v->v >= 0) {
            rd_buf c = RD_BUF_INIT;
            pr_mp_put_int(&c, v->v);
            RD_CHECK(bytes_eq(&c, v->b, v->n));
            rd_buf_free(&c);
        }
        rd_buf_free(&b);
    }
}

static void test_int_decode(void)
{
    for (size_t i = 0; i < N(int_vecs); i++) {
        const struct int_vec *v = &int_vecs[i];
        pr_mp_cur c;
        uint64_t u = 42;
        int64_t s = 42;

        pr_mp_cur_init(&c, v->b, v->n);
        if (v->is_uint) {
            RD_CHECK_EQ_INT(pr_mp_peek(&c), PR_MP_UINT);
            RD_CHECK_EQ_INT(pr_mp_get_uint(&c, &u), 0);
            RD_CHECK(u == vec_u(v));
            RD_CHECK(pr_mp_at_end(&c));
            pr_mp_cur_init(&c, v->b, v->n);
            if (vec_u(v) <= INT64_MAX) {
                RD_CHECK_EQ_INT(pr_mp_get_int(&c, &s), 0);
                RD_CHECK(s == v->v);
                RD_CHECK(pr_mp_at_end(&c));
            } else {
                RD_CHECK_EQ_INT(pr_mp_get_int(&c, &s), -EBADMSG);
                RD_CHECK(c.p == v->b && s == 42);
            }
        } else {
            RD_CHECK_EQ_INT(pr_mp_peek(&c), PR_MP_INT);
            RD_CHECK_EQ_INT(pr_mp_get_int(&c, &s), 0);
            RD_CHECK(s == v->v);
            RD_CHECK(pr_mp_at_end(&c));
            pr_mp_cur_init(&c, v->b, v->n);
            RD_CHECK_EQ_INT(pr_mp_get_uint(&c, &u), -EBADMSG);
            RD_CHECK(c.p == v->b && u == 42);
        }
        /* every truncation fails and leaves the cursor alone */
        for (size_t k = 0; k < v->n; k++) {
            uint8_t tmp[9];
            memcpy(tmp, v->b, k);
            pr_mp_cur_init(&c, tmp, k);
            RD_CHECK_EQ_INT(pr_mp_get_uint(&c, &u), -EBADMSG);
            RD_CHECK_EQ_INT(pr_mp_get_int(&c, &s), -EBADMSG);
            RD_CHECK_EQ_INT(pr_mp_skip(&c), -EBADMSG);
            RD_CHECK(c.p == tmp);
        }
        pr_mp_cur_init(&c, v->b, v->n);
        RD_CHECK_EQ_INT(pr_mp_skip(&c), 0);
        RD_CHECK(pr_mp_at_end(&c));
    }
}

/* Readers accept every valid encoding, not just the shortest. */
static void test_int_any_encoding(void)
{
    static const struct { uint8_t b[9]; size_t n; int64_t v; bool as_uint, as_int; } t[] = {
        { { 0xcc, 0x05 }, 2, 5, true, true },
        { { 0xcd, 0x00, 0x05 }, 3, 5, true, true },
        { { 0xce, 0x00, 0x00, 0x00, 0x05 }, 5, 5, true, true },
        { { 0xcf, 0, 0, 0, 0, 0, 0, 0, 0x05 }, 9, 5, true, true },
        { { 0xd0, 0x05 }, 2, 5, true, true },
        { { 0xd0, 0x7f }, 2, 127, true, true },
        { { 0xd1, 0x00, 0x05 }, 3, 5, true, true },
        { { 0xd2, 0x7f, 0xff, 0xff, 0xff }, 5, INT32_MAX, true, true },
        { { 0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 9, INT64_MAX, true, true },
        { { 0xd3, 0, 0, 0, 0, 0, 0, 0, 0 }, 9, 0, true, true },
        { { 0xd0, 0xff }, 2, -1, false, true },
        { { 0xd1, 0xff, 0xff }, 3, -1, false, true },
        { { 0xd2, 0xff, 0xff, 0xff, 0xff }, 5, -1, false, true },
        { { 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 9, -1, false, true },
        { { 0xd1, 0x00, 0x7f }, 3, 127, true, true },
        { { 0xd1, 0xff, 0x80 }, 3, -128, false, true },
        { { 0xd2, 0xff, 0xff, 0xff, 0xe0 }, 5, -32, false, true },
        { { 0xcc, 0xff }, 2, 255, true, true },
        { { 0xcd, 0xff, 0xff }, 3, 65535, true, true },
    };
    for (size_t i = 0; i < N(t); i++) {
        pr_mp_cur c;
        uint64_t u;
        int64_t s;
        pr_mp_cur_init(&c, t[i].b, t[i].n);
        RD_CHECK_EQ_INT(pr_mp_peek(&c), t[i].as_uint ? PR_MP_UINT : PR_MP_INT);
        RD_CHECK_EQ_INT(pr_mp_get_uint(&c, &u), t[i].as_uint ? 0 : -EBADMSG);
        if (t[i].as_uint)
            RD_CHECK(u == (uint64_t)t[i].v && pr_mp_at_end(&c));
        else
            RD_CHECK(c.p == t[i].b);
        pr_mp_cur_init(&c, t[i].b, t[i].n);
        RD_CHECK_EQ_INT(pr_mp_get_int(&c, &s), 0);
        RD_CHECK(s == t[i].v && pr_mp_at_end(&c));
    }
}

static void test_int_roundtrip_sweep(void)
{
    /* powers of two and their neighbours, both signs */
    rd_buf b = RD_BUF_INIT;
    for (int sh = 0; sh < 64; sh++) {
        uint64_t base = UINT64_C(1) << sh;
        for (int d = -1; d <= 1; d++) {
            uint64_t u = base + (uint64_t)(int64_t)d;
            pr_mp_put_uint(&b, u);
            int64_t s = sh < 63 ? -(int64_t)base + d : INT64_MIN + 1 + d;
            pr_mp_put_int(&b, s);
        }
    }
    pr_mp_cur c;
    pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
    for (int sh = 0; sh < 64; sh++) {
        uint64_t base = UINT64_C(1) << sh;
        for (int d = -1; d <= 1; d++) {
            uint64_t u = 0;
            int64_t s = 0;
            RD_CHECK_EQ_INT(pr_mp_get_uint(&c, &u), 0);
            RD_CHECK(u == base + (uint64_t)(int64_t)d);
            RD_CHECK_EQ_INT(pr_mp_get_int(&c, &s), 0);
            RD_CHECK(s == (sh < 63 ? -(int64_t)base + d : INT64_MIN + 1 + d));
        }
    }
    RD_CHECK(pr_mp_at_end(&c));
    rd_buf_free(&b);
}

/* ---- nil, bool, strings, binaries, containers ------------------------- */

static void test_nil_bool(void)
{
    rd_buf b = RD_BUF_INIT;
    pr_mp_put_nil(&b);
    pr_mp_put_bool(&b, true);
    pr_mp_put_bool(&b, false);
    static const uint8_t want[] = { 0xc0, 0xc3, 0xc2 };
    RD_CHECK(bytes_eq(&b, want, sizeof want));
    pr_mp_cur c;
    bool v = false;
    pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
    RD_CHECK_EQ_INT(pr_mp_peek(&c), PR_MP_NIL);
    RD_CHECK_EQ_INT(pr_mp_get_bool(&c, &v), -EBADMSG);
    RD_CHECK_EQ_INT(pr_mp_get_nil(&c), 0);
    RD_CHECK_EQ_INT(pr_mp_peek(&c), PR_MP_BOOL);
    RD_CHECK_EQ_INT(pr_mp_get_nil(&c), -EBADMSG);
    RD_CHECK_EQ_INT(pr_mp_get_bool(&c, &v), 0);
    RD_CHECK(v);
    RD_CHECK_EQ_INT(pr_mp_get_bool(&c, &v), 0);
    RD_CHECK(!v);
    RD_CHECK(pr_mp_at_end(&c));
    RD_CHECK_EQ_INT(pr_mp_get_nil(&c), -EBADMSG);
    RD_CHECK_EQ_INT(pr_mp_get_bool(&c, &v), -EBADMSG);
    RD_CHECK_EQ_INT(pr_mp_peek(&c), PR_MP_INVALID);
    rd_buf_free(&b);
}

static void test_str_bin_lengths(void)
{
    /* header bytes as packb writes them for "a"*n and b"a"*n */
    static const struct { size_t n; uint8_t sh[5], bh[5]; size_t shn, bhn; } t[] = {
        { 0, { 0xa0 }, { 0xc4, 0x00 }, 1, 2 },
        { 1, { 0xa1 }, { 0xc4, 0x01 }, 1, 2 },
        { 31, { 0xbf }, { 0xc4, 0x1f }, 1, 2 },
        { 32, { 0xd9, 0x20 }, { 0xc4, 0x20 }, 2, 2 },
        { 255, { 0xd9, 0xff }, { 0xc4, 0xff }, 2, 2 },
        { 256, { 0xda, 0x01, 0x00 }, { 0xc5, 0x01, 0x00 }, 3, 3 },
        { 65535, { 0xda, 0xff, 0xff }, { 0xc5, 0xff, 0xff }, 3, 3 },
        { 65536, { 0xdb, 0x00, 0x01, 0x00, 0x00 }, { 0xc6, 0x00, 0x01, 0x00, 0x00 }, 5, 5 },
    };
    char *src = malloc(65536);
    memset(src, 'a', 65536);
    for (size_t i = 0; i < N(t); i++) {
        size_t n = t[i].n;
        for (int bin = 0; bin <= 1; bin++) {
            rd_buf b = RD_BUF_INIT;
            size_t hn = bin ? t[i].bhn : t[i].shn;
            if (bin)
                pr_mp_put_bin(&b, src, n);
            else
                pr_mp_put_str(&b, src, n);
            RD_CHECK_EQ_INT(rd_buf_avail(&b), hn + n);
            RD_CHECK_MEM(rd_buf_data(&b), hn, bin ? t[i].bh : t[i].sh, hn);
            RD_CHECK(memcmp(rd_buf_data(&b) + hn, src, n) == 0);

            pr_mp_cur c;
            const char *s = NULL;
            const uint8_t *p = NULL;
            size_t len = 7;
            pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
            RD_CHECK_EQ_INT(pr_mp_peek(&c), bin ? PR_MP_BIN : PR_MP_STR);
            /* get_bin takes both; get_str only str */
            RD_CHECK_EQ_INT(pr_mp_get_str(&c, &s, &len), bin ? -EBADMSG : 0);
            if (!bin)
                RD_CHECK(s == (const char *)rd_buf_data(&b) + hn && len == n && pr_mp_at_end(&c));
            pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
            RD_CHECK_EQ_INT(pr_mp_get_bin(&c, &p, &len), 0);
            RD_CHECK(p == rd_buf_data(&b) + hn && len == n && pr_mp_at_end(&c));
            pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
            RD_CHECK_EQ_INT(pr_mp_skip(&c), 0);
            RD_CHECK(pr_mp_at_end(&c));

            /* one byte short, and every header truncation */
            size_t cuts[] = { hn + n - 1, hn - 1, hn > 1 ? 1 : 0, 0 };
            for (size_t k = 0; k < N(cuts); k++) {
                if (cuts[k] >= hn + n)
                    continue;
                pr_mp_cur_init(&c, rd_buf_data(&b), cuts[k]);
                RD_CHECK_EQ_INT(pr_mp_get_str(&c, &s, &len), -EBADMSG);
                RD_CHECK_EQ_INT(pr_mp_get_bin(&c, &p, &len), -EBADMSG);
                RD_CHECK_EQ_INT(pr_mp_get_str_or_nil(&c, &s, &len), -EBADMSG);
                RD_CHECK_EQ_INT(pr_mp_skip(&c), -EBADMSG);
                RD_CHECK(c.p == rd_buf_data(&b));
            }
            rd_buf_free(&b);
        }
    }
    free(src);
}

static void test_bin_header(void)
{
    rd_buf b = RD_BUF_INIT;
    pr_mp_put_bin_header(&b, 3);
    rd_buf_append(&b, "xyz", 3);
    pr_mp_put_bin_header(&b, 300);
    static const uint8_t want[] = { 0xc4, 0x03, 'x', 'y', 'z', 0xc5, 0x01, 0x2c };
    RD_CHECK(bytes_eq(&b, want, sizeof want));
    pr_mp_cur c;
    const uint8_t *p;
    size_t n;
    pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
    RD_CHECK_EQ_INT(pr_mp_get_bin(&c, &p, &n), 0);
    RD_CHECK_MEM(p, n, "xyz", 3);
    RD_CHECK_EQ_INT(pr_mp_get_bin(&c, &p, &n), -EBADMSG); /* 300 bytes missing */
    rd_buf_free(&b);
}

static void test_str_or_nil(void)
{
    static const uint8_t in[] = { 0xc0, 0xa2, 'h', 'i', 0x01 };
    pr_mp_cur c;
    const char *s = "x";
    size_t n = 9;
    pr_mp_cur_init(&c, in, sizeof in);
    RD_CHECK_EQ_INT(pr_mp_get_str(&c, &s, &n), -EBADMSG);
    RD_CHECK_EQ_INT(pr_mp_get_str_or_nil(&c, &s, &n), 0);
    RD_CHECK(s == NULL && n == 0);
    RD_CHECK_EQ_INT(pr_mp_get_str_or_nil(&c, &s, &n), 0);
    RD_CHECK_MEM(s, n, "hi", 2);
    RD_CHECK_EQ_INT(pr_mp_get_str_or_nil(&c, &s, &n), -EBADMSG);
    RD_CHECK(c.p == in + 4);
}

static void test_array_map_headers(void)
{
    static const struct { uint32_t n; uint8_t ah[5], mh[5]; size_t hn; } t[] = {
        { 0, { 0x90 }, { 0x80 }, 1 },
        { 15, { 0x9f }, { 0x8f }, 1 },
        { 16, { 0xdc, 0x00, 0x10 }, { 0xde, 0x00, 0x10 }, 3 },
        { 65535, { 0xdc, 0xff, 0xff }, { 0xde, 0xff, 0xff }, 3 },
        { 65536, { 0xdd, 0x00, 0x01, 0x00, 0x00 }, { 0xdf, 0x00, 0x01, 0x00, 0x00 }, 5 },
    };
    for (size_t i = 0; i < N(t); i++) {
        for (int map = 0; map <= 1; map++) {
            rd_buf b = RD_BUF_INIT;
            if (map)
                pr_mp_put_map(&b, t[i].n);
            else
                pr_mp_put_array(&b, t[i].n);
            RD_CHECK(bytes_eq(&b, map ? t[i].mh : t[i].ah, t[i].hn));
            size_t vals = (size_t)t[i].n * (map ? 2 : 1);
            pr_mp_cur c;
            uint32_t n = 99;
            /* the header alone claims more values than bytes remain */
            if (vals > 0) {
                pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
                RD_CHECK_EQ_INT(map ? pr_mp_get_map(&c, &n) : pr_mp_get_array(&c, &n), -EBADMSG);
                RD_CHECK(c.p == rd_buf_data(&b) && n == 99);
                RD_CHECK_EQ_INT(pr_mp_skip(&c), -EBADMSG);
            }
            /* fill with positive fixints */
            memset(rd_buf_reserve(&b, vals), 0x01, vals);
            rd_buf_commit(&b, vals);
            pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
            RD_CHECK_EQ_INT(pr_mp_peek(&c), map ? PR_MP_MAP : PR_MP_ARRAY);
            RD_CHECK_EQ_INT(map ? pr_mp_get_array(&c, &n) : pr_mp_get_map(&c, &n), -EBADMSG);
            RD_CHECK_EQ_INT(map ? pr_mp_get_map(&c, &n) : pr_mp_get_array(&c, &n), 0);
            RD_CHECK(n == t[i].n && c.p == rd_buf_data(&b) + t[i].hn);
            pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
            RD_CHECK_EQ_INT(pr_mp_skip(&c), 0);
            RD_CHECK(pr_mp_at_end(&c));
            /* header truncations */
            for (size_t k = 0; k < t[i].hn; k++) {
                pr_mp_cur_init(&c, rd_buf_data(&b), k);
                RD_CHECK_EQ_INT(map ? pr_mp_get_map(&c, &n) : pr_mp_get_array(&c, &n), -EBADMSG);
                RD_CHECK(c.p == rd_buf_data(&b));
            }
            rd_buf_free(&b);
        }
    }
}

/* One of every msgpack type; each row is one complete value. */
static const struct { uint8_t b[24]; size_t n; enum pr_mp_type type; } every_type[] = {
    { { 0x05 }, 1, PR_MP_UINT },
    { { 0xf0 }, 1, PR_MP_INT },
    { { 0xc0 }, 1, PR_MP_NIL },
    { { 0xc2 }, 1, PR_MP_BOOL },
    { { 0xc3 }, 1, PR_MP_BOOL },
    { { 0xca, 0x3f, 0xc0, 0, 0 }, 5, PR_MP_FLOAT },
    { { 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0 }, 9, PR_MP_FLOAT },
    { { 0xcc, 0x80 }, 2, PR_MP_UINT },
    { { 0xcd, 1, 0 }, 3, PR_MP_UINT },
    { { 0xce, 0, 1, 0, 0 }, 5, PR_MP_UINT },
    { { 0xcf, 0, 0, 0, 1, 0, 0, 0, 0 }, 9, PR_MP_UINT },
    { { 0xd0, 0x80 }, 2, PR_MP_INT },
    { { 0xd1, 0x80, 0 }, 3, PR_MP_INT },
    { { 0xd2, 0x80, 0, 0, 0 }, 5, PR_MP_INT },
    { { 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0 }, 9, PR_MP_INT },
    { { 0xa3, 'a', 'b', 'c' }, 4, PR_MP_STR },
    { { 0xd9, 2, 'a', 'b' }, 4, PR_MP_STR },
    { { 0xda, 0, 2, 'a', 'b' }, 5, PR_MP_STR },
    { { 0xdb, 0, 0, 0, 2, 'a', 'b' }, 7, PR_MP_STR },
    { { 0xc4, 1, 9 }, 3, PR_MP_BIN },
    { { 0xc5, 0, 1, 9 }, 4, PR_MP_BIN },
    { { 0xc6, 0, 0, 0, 1, 9 }, 6, PR_MP_BIN },
    { { 0xd4, 1, 9 }, 3, PR_MP_EXT },
    { { 0xd5, 1, 9, 9 }, 4, PR_MP_EXT },
    { { 0xd6, 1, 9, 9, 9, 9 }, 6, PR_MP_EXT },
    { { 0xd7, 1, 9, 9, 9, 9, 9, 9, 9, 9 }, 10, PR_MP_EXT },
    { { 0xd8, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9 }, 18, PR_MP_EXT },
    { { 0xc7, 2, 1, 9, 9 }, 5, PR_MP_EXT },
    { { 0xc7, 0, 1 }, 3, PR_MP_EXT },
    { { 0xc8, 0, 2, 1, 9, 9 }, 6, PR_MP_EXT },
    { { 0xc9, 0, 0, 0, 2, 1, 9, 9 }, 8, PR_MP_EXT },
    { { 0x92, 0x01, 0xa1, 'x' }, 4, PR_MP_ARRAY },
    { { 0xdc, 0, 2, 0xc0, 0xc0 }, 5, PR_MP_ARRAY },
    { { 0xdd, 0, 0, 0, 1, 0x90 }, 6, PR_MP_ARRAY },
    { { 0x81, 0xa1, 'k', 0x80 }, 4, PR_MP_MAP },
    { { 0xde, 0, 1, 0x01, 0x02 }, 5, PR_MP_MAP },
    { { 0xdf, 0, 0, 0, 1, 0x01, 0xd4, 0, 0 }, 9, PR_MP_MAP },
};

static void test_skip_every_type(void)
{
    rd_buf all = RD_BUF_INIT;
    for (size_t i = 0; i < N(every_type); i++) {
        const uint8_t *v = every_type[i].b;
        size_t n = every_type[i].n;
        pr_mp_cur c;
        pr_mp_cur_init(&c, v, n);
        RD_CHECK_EQ_INT(pr_mp_peek(&c), every_type[i].type);
        RD_CHECK_EQ_INT(pr_mp_skip(&c), 0);
        if (!pr_mp_at_end(&c))
            fprintf(stderr, "row %zu\n", i);
        RD_CHECK(pr_mp_at_end(&c));
        for (size_t k = 0; k < n; k++) {
            uint8_t *tmp = malloc(k ? k : 1); /* exact size: ASan sees overreads */
            memcpy(tmp, v, k);
            pr_mp_cur_init(&c, tmp, k);
            RD_CHECK_EQ_INT(pr_mp_skip(&c), -EBADMSG);
            RD_CHECK(c.p == tmp);
            free(tmp);
        }
        rd_buf_append(&all, v, n);
    }
    /* all of them back to back, inside one array and one map */
    pr_mp_cur c;
    pr_mp_cur_init(&c, rd_buf_data(&all), rd_buf_avail(&all));
    for (size_t i = 0; i < N(every_type); i++)
        RD_CHECK_EQ_INT(pr_mp_skip(&c), 0);
    RD_CHECK(pr_mp_at_end(&c));
    rd_buf wrap = RD_BUF_INIT;
    pr_mp_put_array(&wrap, (uint32_t)N(every_type));
    rd_buf_append(&wrap, rd_buf_data(&all), rd_buf_avail(&all));
    pr_mp_put_map(&wrap, 1);
    pr_mp_put_str(&wrap, "k", 1);
    pr_mp_put_array(&wrap, (uint32_t)N(every_type));
    rd_buf_append(&wrap, rd_buf_data(&all), rd_buf_avail(&all));
    pr_mp_cur_init(&c, rd_buf_data(&wrap), rd_buf_avail(&wrap));
    RD_CHECK_EQ_INT(pr_mp_skip(&c), 0);
    RD_CHECK_EQ_INT(pr_mp_skip(&c), 0);
    RD_CHECK(pr_mp_at_end(&c));
    RD_CHECK_EQ_INT(pr_mp_skip(&c), -EBADMSG);
    rd_buf_free(&wrap);
    rd_buf_free(&all);

    static const uint8_t reserved[] = { 0xc1 };
    pr_mp_cur_init(&c, reserved, 1);
    RD_CHECK_EQ_INT(pr_mp_peek(&c), PR_MP_INVALID);
    RD_CHECK_EQ_INT(pr_mp_skip(&c), -EBADMSG);
    RD_CHECK(c.p == reserved);
    pr_mp_cur_init(&c, reserved, 0);
    RD_CHECK_EQ_INT(pr_mp_skip(&c), -EBADMSG);
}

/* Every getter refuses every type it does not take, cursor unchanged. */
static void test_type_mismatch(void)
{
    for (size_t i = 0; i < N(every_type); i++) {
        enum pr_mp_type t = every_type[i].type;
        const uint8_t *v = every_type[i].b;
        pr_mp_cur c;
        uint64_t u;
        int64_t s;
        bool bo;
        const char *sp;
        const uint8_t *bp;
        size_t n;
        uint32_t cnt;
        bool is_int = t == PR_MP_UINT || t == PR_MP_INT;
#define TRY(call, ok) do { \
        pr_mp_cur_init(&c, v, every_type[i].n); \
        int r_ = (call); \
        RD_CHECK_EQ_INT(r_, (ok) ? 0 : -EBADMSG); \
        if (r_ < 0) \
            RD_CHECK(c.p == v); \
    } while (0)
        TRY(pr_mp_get_nil(&c), t == PR_MP_NIL);
        TRY(pr_mp_get_bool(&c, &bo), t == PR_MP_BOOL);
        TRY(pr_mp_get_uint(&c, &u), t == PR_MP_UINT);
        TRY(pr_mp_get_int(&c, &s), is_int);
        TRY(pr_mp_get_str(&c, &sp, &n), t == PR_MP_STR);
        TRY(pr_mp_get_str_or_nil(&c, &sp, &n), t == PR_MP_STR || t == PR_MP_NIL);
        TRY(pr_mp_get_bin(&c, &bp, &n), t == PR_MP_STR || t == PR_MP_BIN);
        TRY(pr_mp_get_array(&c, &cnt), t == PR_MP_ARRAY);
        TRY(pr_mp_get_map(&c, &cnt), t == PR_MP_MAP);
#undef TRY
    }
}

/* depth nested containers around 1; with map, every other level is a map
 * {7: ...}; with empty, the innermost container is empty instead. */
static void nest(rd_buf *b, int depth, bool map, bool empty)
{
    for (int i = 0; i < depth; i++) {
        bool last = i == depth - 1;
        if (map && i % 2) {
            pr_mp_put_map(b, empty && last ? 0 : 1);
            if (!(empty && last))
                pr_mp_put_uint(b, 7);
        } else {
            pr_mp_put_array(b, empty && last ? 0 : 1);
        }
    }
    if (!empty)
        pr_mp_put_uint(b, 1);
}

static void test_skip_depth(void)
{
    for (int variant = 0; variant < 4; variant++) {
        bool map = variant & 1, empty = variant & 2;
        for (int depth = 1; depth <= PR_MP_MAX_DEPTH + 2; depth++) {
            rd_buf b = RD_BUF_INIT;
            nest(&b, depth, map, empty);
            pr_mp_cur c;
            pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
            int r = pr_mp_skip(&c);
            RD_CHECK_EQ_INT(r, depth <= PR_MP_MAX_DEPTH ? 0 : -EBADMSG);
            RD_CHECK(r == 0 ? pr_mp_at_end(&c) : c.p == rd_buf_data(&b));
            rd_buf_free(&b);
        }
    }
    /* siblings do not add up: 16 levels, then back out and down 16 again */
    rd_buf b = RD_BUF_INIT;
    pr_mp_put_array(&b, 2);
    nest(&b, PR_MP_MAX_DEPTH - 1, false, false);
    nest(&b, PR_MP_MAX_DEPTH - 1, true, false);
    pr_mp_cur c;
    pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
    RD_CHECK_EQ_INT(pr_mp_skip(&c), 0);
    RD_CHECK(pr_mp_at_end(&c));
    rd_buf_free(&b);
}

/* A few bytes that claim billions of elements must fail at once. */
static void test_skip_huge_counts(void)
{
    static const uint8_t arr[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02 };
    static const uint8_t map[] = { 0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01, 0x02 };
    static const uint8_t str[] = { 0xdb, 0xff, 0xff, 0xff, 0xff, 0x01 };
    static const uint8_t bin[] = { 0xc6, 0xff, 0xff, 0xff, 0xff, 0x01 };
    static const uint8_t ext[] = { 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02 };
    /* every nested array claims as many elements as bytes remain */
    uint8_t nested[64];
    for (size_t i = 0; i < sizeof nested; i++)
        nested[i] = 0x9f;
    const struct { const uint8_t *p; size_t n; } t[] = {
        { arr, sizeof arr }, { map, sizeof map }, { str, sizeof str }, { bin, sizeof bin },
        { ext, sizeof ext }, { nested, sizeof nested },
    };
    for (size_t i = 0; i < N(t); i++) {
        pr_mp_cur c;
        pr_mp_cur_init(&c, t[i].p, t[i].n);
        RD_CHECK_EQ_INT(pr_mp_skip(&c), -EBADMSG);
        RD_CHECK(c.p == t[i].p);
    }
    /* wide but shallow: 20000 nils skip fine */
    rd_buf b = RD_BUF_INIT;
    pr_mp_put_array(&b, 20000);
    memset(rd_buf_reserve(&b, 20000), 0xc0, 20000);
    rd_buf_commit(&b, 20000);
    pr_mp_cur c;
    pr_mp_cur_init(&c, rd_buf_data(&b), rd_buf_avail(&b));
    RD_CHECK_EQ_INT(pr_mp_skip(&c), 0);
    RD_CHECK(pr_mp_at_end(&c));
    rd_buf_free(&b);
}

static void test_put_empty(void)
{
    rd_buf b = RD_BUF_INIT;
    pr_mp_put_str(&b, NULL, 0);
    pr_mp_put_bin(&b, NULL, 0);
    static const uint8_t want[] = { 0xa0, 0xc4, 0x00 };
    RD_CHECK(bytes_eq(&b, want, sizeof want));
    rd_buf_free(&b);
}

/* ---- framing ---------------------------------------------------------- */

static void test_frame_next(void)
{
    static const uint8_t two[] = { 0, 0, 0, 3, 0x91, 0x0c, 0x00,  0, 0, 0, 2, 0x91, 0x0b };
    const uint8_t *body = (const uint8_t *)"unchanged";
    size_t len = 12345;
    for (size_t k = 0; k < 7; k++) {
        RD_CHECK_EQ_INT(pr_frame_next(two, k, 64, &body, &len), 0);
        RD_CHECK(len == 12345);
    }
    RD_CHECK_EQ_INT(pr_frame_next(two, sizeof two, 64, &body, &len), 7);
    RD_CHECK(body == two + 4 && len == 3);
    for (size_t k = 7; k < sizeof two; k++) {
        len = 1;
        RD_CHECK_EQ_INT(pr_frame_next(two + 7, k - 7, 64, &body, &len), 0);
        RD_CHECK(len == 1);
    }
    RD_CHECK_EQ_INT(pr_frame_next(two + 7, 6, 64, &body, &len), 6);
    RD_CHECK(body == two + 11 && len == 2);
    /* exactly max is fine, one more is refused before the body arrives */
    RD_CHECK_EQ_INT(pr_frame_next(two, sizeof two, 3, &body, &len), 7);
    RD_CHECK_EQ_INT(pr_frame_next(two, 4, 2, &body, &len), -EMSGSIZE);
    static const uint8_t zero[] = { 0, 0, 0, 0, 0x90 };
    RD_CHECK_EQ_INT(pr_frame_next(zero, sizeof zero, 64, &body, &len), -EMSGSIZE);
    static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff };
    RD_CHECK_EQ_INT(pr_frame_next(huge, 4, PR_FRAME_MAX, &body, &len), -EMSGSIZE);
    RD_CHECK_EQ_INT(pr_frame_next(huge, 4, SIZE_MAX, &body, &len), -EMSGSIZE);
    static const uint8_t big[] = { 0x01, 0x00, 0x00, 0x01 }; /* PR_FRAME_MAX + 1 */
    RD_CHECK_EQ_INT(pr_frame_next(big, 4, PR_FRAME_MAX, &body, &len), -EMSGSIZE);
    static const uint8_t max[] = { 0x01, 0x00, 0x00, 0x00 };
    RD_CHECK_EQ_INT(pr_frame_next(max, 4, PR_FRAME_MAX, &body, &len), 0); /* needs more */
}

/* A stream of frames delivered in two reads split at every byte. */
static void test_frame_stream_split(void)
{
    rd_buf out = RD_BUF_INIT;
    RD_CHECK_EQ_INT(pr_enc_ping(&out, PR_PING, 1), 0);
    RD_CHECK_EQ_INT(pr_enc_frame(&out, PR_FRAME, 300, 1, "hello", 5), 0);
    RD_CHECK_EQ_INT(pr_enc_close(&out, 300, 1000, "bye", 3), 0);
    RD_CHECK_EQ_INT(pr_enc_ping(&out, PR_PONG, 70000), 0);
    size_t total = rd_buf_avail(&out);
    for (size_t cut = 0; cut <= total; cut++) {
        rd_buf in = RD_BUF_INIT;
        rd_buf_reserve(&in, 1); /* rd_buf_data() of a never-allocated buffer is NULL + 0 */
        int types[8], nt = 0;
        size_t chunks[2][2] = { { 0, cut }, { cut, total } };
        for (int ch = 0; ch < 2; ch++) {
            rd_buf_append(&in, rd_buf_data(&out) + chunks[ch][0], chunks[ch][1] - chunks[ch][0]);
            for (;;) {
                const uint8_t *body;
                size_t len;
                int r = pr_frame_next(rd_buf_data(&in), rd_buf_avail(&in), 1024, &body, &len);
                RD_CHECK(r >= 0);
                if (r <= 0)
                    break;
                pr_msg m;
                char err[RD_ERR_LEN];
                RD_CHECK_EQ_INT(pr_msg_decode(body, len, &m, err), 0);
                if (nt < 8)
                    types[nt++] = m.type;
                rd_buf_consume(&in, (size_t)r);
            }
        }
        RD_CHECK_EQ_INT(nt, 4);
        RD_CHECK(nt == 4 && types[0] == PR_PING && types[1] == PR_FRAME && types[2] == PR_CLOSE &&
                 types[3] == PR_PONG);
        RD_CHECK_EQ_INT(rd_buf_avail(&in), 0);
        rd_buf_free(&in);
    }
    rd_buf_free(&out);
}

static void test_frame_end_oversize(void)
{
    rd_buf b = RD_BUF_INIT;
    rd_buf_append(&b, "keep", 4);
    size_t fixed = 9; /* [6, conn<128, op<128, bin32 header] */
    size_t n = PR_FRAME_MAX - fixed;
    uint8_t *payload = calloc(1, PR_FRAME_MAX + 1);
    RD_CHECK_EQ_INT(pr_enc_frame(&b, PR_FRAME, 1, 2, payload, n), 0);
    RD_CHECK_EQ_INT(rd_buf_avail(&b), 4 + PR_FRAME_HDR + PR_FRAME_MAX);
    pr_msg m;
    const uint8_t *body;
    size_t len;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(pr_frame_next(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, PR_FRAME_MAX, &body,
                                  &len), PR_FRAME_HDR + PR_FRAME_MAX);
    RD_CHECK_EQ_INT(pr_msg_decode(body, len, &m, err), 0);
    RD_CHECK(m.u.frame.payload.n == n);

    /* one byte more: refused, the buffer is back to what it was */
    b.len = 4;
    RD_CHECK_EQ_INT(pr_enc_frame(&b, PR_FRAME, 1, 2, payload, n + 1), -EMSGSIZE);
    RD_CHECK(bytes_eq(&b, "keep", 4));
    RD_CHECK_EQ_INT(pr_enc_frame(&b, PR_SEND, 1, 2, payload, PR_FRAME_MAX + 1), -EMSGSIZE);
    RD_CHECK(bytes_eq(&b, "keep", 4));
    RD_CHECK_EQ_INT(pr_enc_close(&b, 1, 1000, (const char *)payload, PR_FRAME_MAX), -EMSGSIZE);
    RD_CHECK(bytes_eq(&b, "keep", 4));

    /* a hand-built frame too */
    size_t start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 4);
    pr_mp_put_uint(&b, PR_SEND);
    pr_mp_put_uint(&b, 1);
    pr_mp_put_uint(&b, 2);
    pr_mp_put_bin(&b, payload, PR_FRAME_MAX);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), -EMSGSIZE);
    RD_CHECK(bytes_eq(&b, "keep", 4));

    /* an empty body is not a frame */
    start = pr_frame_begin(&b);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), -EINVAL);
    RD_CHECK(bytes_eq(&b, "keep", 4));
    free(payload);
    rd_buf_free(&b);
}

/* pr_frame_begin's offset must survive the buffer compacting mid-frame. */
static void test_frame_begin_compaction(void)
{
    rd_buf b = RD_BUF_INIT;
    uint8_t junk[200];
    memset(junk, 'j', sizeof junk);
    rd_buf_append(&b, junk, sizeof junk); /* cap 256 */
    rd_buf_consume(&b, 190);              /* off 190, 10 unread */
    size_t start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 4);
    pr_mp_put_uint(&b, PR_FRAME);
    pr_mp_put_uint(&b, 9);
    pr_mp_put_uint(&b, 2);
    pr_mp_put_bin(&b, junk, 100); /* no room at the end: rd_buf compacts */
    RD_CHECK_EQ_INT(b.off, 0);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK_EQ_INT(rd_buf_avail(&b), 10 + 4 + 106);
    const uint8_t *body;
    size_t len;
    RD_CHECK_EQ_INT(pr_frame_next(rd_buf_data(&b) + 10, rd_buf_avail(&b) - 10, 1024, &body, &len),
                    110);
    pr_msg m;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(pr_msg_decode(body, len, &m, err), 0);
    RD_CHECK(m.type == PR_FRAME && m.u.frame.conn == 9 && m.u.frame.payload.n == 100);
    rd_buf_free(&b);
}

/* ---- messages --------------------------------------------------------- */

static void test_hello_roundtrip(void)
{
    rd_buf b = RD_BUF_INIT;
    const char *classes[] = { "echo", "chat", "counter" };
    RD_CHECK_EQ_INT(pr_enc_hello(&b, "shard", "shard-0", classes, 3), 0);
    pr_msg m;
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK_EQ_INT(m.type, PR_HELLO);
    RD_CHECK(m.u.hello.version == PR_VERSION);
    RD_CHECK(str_eq(m.u.hello.role, "shard"));
    RD_CHECK(str_eq(m.u.hello.name, "shard-0"));
    RD_CHECK_EQ_INT(m.u.hello.classes.n, 3);
    pr_str s;
    for (int i = 0; i < 3; i++) {
        RD_CHECK_EQ_INT(pr_list_next_str(&m.u.hello.classes, &s), 0);
        RD_CHECK(str_eq(s, classes[i]));
    }
    RD_CHECK_EQ_INT(pr_list_next_str(&m.u.hello.classes, &s), -ENOENT);
    RD_CHECK_EQ_INT(pr_list_next_str(&m.u.hello.classes, &s), -ENOENT);

    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_hello(&b, "gateway", "gw", NULL, 0), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK_EQ_INT(m.u.hello.classes.n, 0);
    RD_CHECK_EQ_INT(pr_list_next_str(&m.u.hello.classes, &s), -ENOENT);

    /* byte-exact with packb */
    rd_buf_reset(&b, 0);
    const char *pyc[] = { "echo", "chat" };
    RD_CHECK_EQ_INT(pr_enc_hello(&b, "gateway", "gw-1", pyc, 2), 0);
    RD_CHECK_MEM(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, py_hello, sizeof py_hello);
    static const uint8_t hdr[] = { 0, 0, 0, sizeof py_hello };
    RD_CHECK_MEM(rd_buf_data(&b), 4, hdr, 4);

    /* 40 classes: array16 */
    rd_buf_reset(&b, 0);
    const char *many[40];
    for (int i = 0; i < 40; i++)
        many[i] = i % 2 ? "odd" : "even-class-name-longer-than-31-bytes";
    RD_CHECK_EQ_INT(pr_enc_hello(&b, "shard", "s", many, 40), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK_EQ_INT(m.u.hello.classes.n, 40);
    int cnt = 0;
    while (pr_list_next_str(&m.u.hello.classes, &s) == 0)
        RD_CHECK(str_eq(s, many[cnt++]));
    RD_CHECK_EQ_INT(cnt, 40);
    rd_buf_free(&b);
}

static void test_accept_reject_close(void)
{
    rd_buf b = RD_BUF_INIT;
    pr_msg m;
    RD_CHECK_EQ_INT(pr_enc_accept(&b, 5, "chat", 4), 0);
    RD_CHECK_MEM(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, py_accept, sizeof py_accept);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_ACCEPT && m.u.accept.conn == 5 && str_eq(m.u.accept.subprotocol, "chat"));

    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_accept(&b, 5, NULL, 0), 0);
    RD_CHECK_MEM(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, py_accept_nil, sizeof py_accept_nil);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.u.accept.subprotocol.p == NULL && m.u.accept.subprotocol.n == 0);

    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_reject(&b, 9, 403, "forbidden", 9), 0);
    RD_CHECK_MEM(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, py_reject, sizeof py_reject);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_REJECT && m.u.reject.conn == 9 && m.u.reject.status == 403 &&
             str_eq(m.u.reject.body, "forbidden"));

    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_reject(&b, UINT64_MAX, 500, NULL, 0), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.u.reject.conn == UINT64_MAX && m.u.reject.body.p == NULL);

    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_close(&b, 9, 1000, "", 0), 0);
    RD_CHECK_MEM(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, py_close, sizeof py_close);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_CLOSE && m.u.close.code == 1000 && m.u.close.reason.n == 0 &&
             m.u.close.reason.p != NULL);

    rd_buf_reset(&b, 0);
    char reason[123];
    memset(reason, 'r', sizeof reason);
    RD_CHECK_EQ_INT(pr_enc_close(&b, 1ull << 40, 4000, reason, sizeof reason), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.u.close.conn == 1ull << 40 && m.u.close.code == 4000);
    RD_CHECK_MEM(m.u.close.reason.p, m.u.close.reason.n, reason, sizeof reason);

    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_close(&b, 3, 1001, NULL, 0), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.u.close.reason.p == NULL);
    rd_buf_free(&b);
}

static void test_frame_send_ping(void)
{
    rd_buf b = RD_BUF_INIT;
    pr_msg m;
    RD_CHECK_EQ_INT(pr_enc_frame(&b, PR_FRAME, 1, 1, "hi", 2), 0);
    RD_CHECK_MEM(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, py_frame, sizeof py_frame);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_FRAME && m.u.frame.conn == 1 && m.u.frame.opcode == 1);
    RD_CHECK_MEM(m.u.frame.payload.p, m.u.frame.payload.n, "hi", 2);

    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_frame(&b, PR_SEND, 70000, 2, "\x00\xff", 2), 0);
    RD_CHECK_MEM(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, py_send, sizeof py_send);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_SEND && m.u.frame.conn == 70000 && m.u.frame.opcode == 2);

    /* empty payload, and payload sizes around the bin8/16/32 steps */
    size_t sizes[] = { 0, 255, 256, 65535, 65536, 100000 };
    uint8_t *pl = malloc(100000);
    for (size_t i = 0; i < 100000; i++)
        pl[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < N(sizes); i++) {
        rd_buf_reset(&b, 0);
        RD_CHECK_EQ_INT(pr_enc_frame(&b, PR_FRAME, 2, 2, sizes[i] ? pl : NULL, sizes[i]), 0);
        RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
        RD_CHECK(m.u.frame.payload.n == sizes[i]);
        if (sizes[i])
            RD_CHECK(memcmp(m.u.frame.payload.p, pl, sizes[i]) == 0);
    }
    free(pl);
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_frame(&b, PR_PING, 1, 1, "x", 1), -EINVAL);
    RD_CHECK_EQ_INT(pr_enc_ping(&b, PR_FRAME, 1), -EINVAL);
    RD_CHECK_EQ_INT(rd_buf_avail(&b), 0);

    RD_CHECK_EQ_INT(pr_enc_ping(&b, PR_PING, UINT64_MAX), 0);
    RD_CHECK_MEM(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, py_ping, sizeof py_ping);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_PING && m.u.ping.token == UINT64_MAX);
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_ping(&b, PR_PONG, 0), 0);
    RD_CHECK_MEM(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, py_pong, sizeof py_pong);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_PONG && m.u.ping.token == 0);
    rd_buf_free(&b);
}

static void put_s(rd_buf *b, const char *s)
{
    pr_mp_put_str(b, s, strlen(s));
}

static void enc_open(rd_buf *b, uint32_t nheaders)
{
    size_t start = pr_frame_begin(b);
    pr_mp_put_array(b, 10);
    pr_mp_put_uint(b, PR_OPEN);
    pr_mp_put_uint(b, 42);
    put_s(b, "room-1");
    put_s(b, "client-abc");
    pr_mp_put_uint(b, UINT64_C(1700000000123));
    pr_mp_put_uint(b, PR_OPEN_RESUMED);
    put_s(b, "chat, json");
    put_s(b, "[::1]:5555");
    put_s(b, "a=1&b=2");
    pr_mp_put_map(b, nheaders);
    for (uint32_t i = 0; i < nheaders; i++) {
        char k[32], v[64];
        snprintf(k, sizeof k, "x-h%u", i);
        snprintf(v, sizeof v, "value %u", i * 1000);
        put_s(b, k);
        put_s(b, v);
    }
    RD_CHECK_EQ_INT(pr_frame_end(b, start), 0);
}

static void test_open_roundtrip(void)
{
    uint32_t counts[] = { 0, 1, 15, 16, 300 };
    for (size_t ci = 0; ci < N(counts); ci++) {
        rd_buf b = RD_BUF_INIT;
        enc_open(&b, counts[ci]);
        pr_msg m;
        RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
        RD_CHECK_EQ_INT(m.type, PR_OPEN);
        RD_CHECK(m.u.open.conn == 42);
        RD_CHECK(str_eq(m.u.open.key, "room-1"));
        RD_CHECK(str_eq(m.u.open.client_id, "client-abc"));
        RD_CHECK(m.u.open.connected_at == UINT64_C(1700000000123));
        RD_CHECK(m.u.open.flags == PR_OPEN_RESUMED);
        RD_CHECK(str_eq(m.u.open.subprotocols, "chat, json"));
        RD_CHECK(str_eq(m.u.open.remote, "[::1]:5555"));
        RD_CHECK(str_eq(m.u.open.query, "a=1&b=2"));
        RD_CHECK_EQ_INT(m.u.open.headers.n, counts[ci]);
        pr_str k, v;
        uint32_t i = 0;
        while (pr_list_next_kv(&m.u.open.headers, &k, &v) == 0) {
            char ek[32], ev[64];
            snprintf(ek, sizeof ek, "x-h%u", i);
            snprintf(ev, sizeof ev, "value %u", i * 1000);
            RD_CHECK(str_eq(k, ek) && str_eq(v, ev));
            i++;
        }
        RD_CHECK_EQ_INT(i, counts[ci]);
        RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.open.headers, &k, &v), -ENOENT);
        rd_buf_free(&b);
    }
}

static void test_broadcast_roundtrip(void)
{
    static const uint64_t conns[] = { 0, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
                                      UINT64_C(1) << 32, UINT64_MAX };
    rd_buf b = RD_BUF_INIT;
    size_t start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 4);
    pr_mp_put_uint(&b, PR_BROADCAST);
    pr_mp_put_uint(&b, 1);
    pr_mp_put_bin(&b, "{\"t\":1}", 7);
    put_uint_array(&b, conns, N(conns));
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    pr_msg m;
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_BROADCAST && m.u.broadcast.opcode == 1);
    RD_CHECK_MEM(m.u.broadcast.payload.p, m.u.broadcast.payload.n, "{\"t\":1}", 7);
    RD_CHECK_EQ_INT(m.u.broadcast.conns.n, N(conns));
    check_uint_list(&m.u.broadcast.conns, conns, N(conns));

    /* packb vector */
    RD_CHECK_EQ_INT(decode_raw(py_broadcast, sizeof py_broadcast, &m, (char[RD_ERR_LEN]){0}), 0);
    static const uint64_t want[] = { 1, 200, 70000, UINT64_C(1) << 33 };
    check_uint_list(&m.u.broadcast.conns, want, N(want));
    rd_buf_free(&b);
}

static void test_handoff_messages(void)
{
    static const uint64_t conns[] = { 1, 2, 70000 };
    rd_buf b = RD_BUF_INIT;
    size_t start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 3);
    pr_mp_put_uint(&b, PR_DETACH);
    pr_mp_put_str(&b, "chat/r\xc3\xa9", 8);
    put_uint_array(&b, conns, N(conns));
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    pr_msg m;
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_DETACH);
    RD_CHECK_MEM(m.u.detach.key.p, m.u.detach.key.n, "chat/r\xc3\xa9", 8);
    check_uint_list(&m.u.detach.conns, conns, N(conns));
    rd_buf_reset(&b, 0);

    start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 3);
    pr_mp_put_uint(&b, PR_DETACHED);
    pr_mp_put_str(&b, "echo/x", 6);
    pr_mp_put_array(&b, 0);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_DETACHED && m.u.detach.conns.n == 0);
    RD_CHECK_MEM(m.u.detach.key.p, m.u.detach.key.n, "echo/x", 6);
    rd_buf_reset(&b, 0);

    RD_CHECK_EQ_INT(pr_enc_info_req(&b, 9, "", 0), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_INFO && m.u.info.req == 9 && m.u.info.key.n == 0);
    rd_buf_reset(&b, 0);

    const uint64_t counts[7] = { 10, 4, 300, 1, 0, UINT64_MAX, 2 };
    RD_CHECK_EQ_INT(pr_enc_info_res(&b, 9, counts), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_INFO_RES && m.u.info_res.req == 9 && m.u.info_res.objects == 10 &&
             m.u.info_res.hibernated == 4 && m.u.info_res.conns == 300 && m.u.info_res.found == 1 &&
             m.u.info_res.key_hibernated == 0 && m.u.info_res.key_conns == UINT64_MAX &&
             m.u.info_res.alarms == 2);
    rd_buf_reset(&b, 0);

    /* INFO_RES from a shard without the alarms field */
    start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 8);
    pr_mp_put_uint(&b, PR_INFO_RES);
    for (int i = 0; i < 7; i++)
        pr_mp_put_uint(&b, 1);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_INFO_RES && m.u.info_res.key_conns == 1 && m.u.info_res.alarms == 0);
    rd_buf_reset(&b, 0);

    start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 2);
    pr_mp_put_uint(&b, PR_SET);
    pr_mp_put_array(&b, 2);
    pr_mp_put_str(&b, "shard-0", 7);
    pr_mp_put_str(&b, "shard-1", 7);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    pr_str sn;
    RD_CHECK(m.type == PR_SET && m.u.set.members.n == 2);
    RD_CHECK_EQ_INT(pr_list_next_str(&m.u.set.members, &sn), 0);
    RD_CHECK(str_eq(sn, "shard-0"));
    rd_buf_reset(&b, 0);

    RD_CHECK_EQ_INT(pr_enc_alarm(&b, PR_ALARM_MOVE, "meta/a", 6, 1234, 2, "shard-3", 7), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_ALARM_MOVE && str_eq(m.u.alarm.key, "meta/a") && m.u.alarm.at == 1234 &&
             m.u.alarm.retries == 2 && str_eq(m.u.alarm.shard, "shard-3"));
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_alarm(&b, PR_ALARM_MOVED, "meta/a", 6, 1234, 0, "shard-3", 7), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_ALARM_MOVED && m.u.alarm.at == 1234 && str_eq(m.u.alarm.shard, "shard-3"));
    RD_CHECK_EQ_INT(pr_enc_alarm(&b, PR_PING, "k", 1, 0, 0, "s", 1), -EINVAL);
    rd_buf_reset(&b, 0);

    /* the reserved numbers between them are unknown types */
    for (uint64_t t = 19; t <= 24; t++) {
        if (t == PR_CALL)
            continue;
        char err[RD_ERR_LEN];
        start = pr_frame_begin(&b);
        pr_mp_put_array(&b, 1);
        pr_mp_put_uint(&b, t);
        RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
        RD_CHECK_EQ_INT(pr_msg_decode(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, &m, err), -EBADMSG);
        RD_CHECK(strstr(err, "unknown message type") != NULL);
        rd_buf_reset(&b, 0);
    }
    rd_buf_free(&b);
}

static void test_http_roundtrip(void)
{
    rd_buf b = RD_BUF_INIT;
    size_t start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 9);
    pr_mp_put_uint(&b, PR_HTTP_REQ);
    pr_mp_put_uint(&b, 77);
    put_s(&b, "echo/room");
    put_s(&b, "POST");
    put_s(&b, "/echo/room/publish");
    put_s(&b, "");
    pr_mp_put_map(&b, 2);
    put_s(&b, "content-type");
    put_s(&b, "application/json");
    put_s(&b, "x-empty");
    put_s(&b, "");
    pr_mp_put_bin(&b, "{}", 2);
    put_s(&b, "10.0.0.1");
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    pr_msg m;
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_HTTP_REQ && m.u.http_req.req == 77);
    RD_CHECK(str_eq(m.u.http_req.key, "echo/room"));
    RD_CHECK(str_eq(m.u.http_req.method, "POST"));
    RD_CHECK(str_eq(m.u.http_req.path, "/echo/room/publish"));
    RD_CHECK(str_eq(m.u.http_req.query, ""));
    RD_CHECK(str_eq(m.u.http_req.remote, "10.0.0.1"));
    RD_CHECK_MEM(m.u.http_req.body.p, m.u.http_req.body.n, "{}", 2);
    pr_str k, v;
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.http_req.headers, &k, &v), 0);
    RD_CHECK(str_eq(k, "content-type") && str_eq(v, "application/json"));
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.http_req.headers, &k, &v), 0);
    RD_CHECK(str_eq(k, "x-empty") && str_eq(v, ""));
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.http_req.headers, &k, &v), -ENOENT);

    rd_buf_reset(&b, 0);
    start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 5);
    pr_mp_put_uint(&b, PR_HTTP_RES);
    pr_mp_put_uint(&b, 77);
    pr_mp_put_uint(&b, 204);
    pr_mp_put_map(&b, 0);
    pr_mp_put_bin(&b, NULL, 0);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_HTTP_RES && m.u.http_res.req == 77 && m.u.http_res.status == 204);
    RD_CHECK(m.u.http_res.headers.n == 0 && m.u.http_res.body.n == 0);
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.http_res.headers, &k, &v), -ENOENT);
    rd_buf_free(&b);
}

static void test_interop_vectors(void)
{
    pr_msg m;
    char err[RD_ERR_LEN];
    pr_str k, v, s;

    RD_CHECK_EQ_INT(decode_raw(py_frame, sizeof py_frame, &m, err), 0);
    RD_CHECK(m.type == PR_FRAME && m.u.frame.conn == 1 && m.u.frame.opcode == 1);
    RD_CHECK_MEM(m.u.frame.payload.p, m.u.frame.payload.n, "hi", 2);

    RD_CHECK_EQ_INT(decode_raw(py_frame_str, sizeof py_frame_str, &m, err), 0);
    RD_CHECK(m.type == PR_FRAME && m.u.frame.opcode == 2);
    RD_CHECK_MEM(m.u.frame.payload.p, m.u.frame.payload.n, "hi", 2);

    RD_CHECK_EQ_INT(decode_raw(py_hello, sizeof py_hello, &m, err), 0);
    RD_CHECK(m.type == PR_HELLO && str_eq(m.u.hello.role, "gateway") &&
             str_eq(m.u.hello.name, "gw-1"));
    RD_CHECK_EQ_INT(pr_list_next_str(&m.u.hello.classes, &s), 0);
    RD_CHECK(str_eq(s, "echo"));
    RD_CHECK_EQ_INT(pr_list_next_str(&m.u.hello.classes, &s), 0);
    RD_CHECK(str_eq(s, "chat"));
    RD_CHECK_EQ_INT(pr_list_next_str(&m.u.hello.classes, &s), -ENOENT);

    RD_CHECK_EQ_INT(decode_raw(py_open, sizeof py_open, &m, err), 0);
    RD_CHECK(m.type == PR_OPEN && m.u.open.conn == 7 && str_eq(m.u.open.key, "room") &&
             str_eq(m.u.open.client_id, "cid") &&
             m.u.open.connected_at == UINT64_C(1700000000000) &&
             m.u.open.flags == 1 && str_eq(m.u.open.subprotocols, "chat") &&
             str_eq(m.u.open.remote, "127.0.0.1") && str_eq(m.u.open.query, "a=1"));
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.open.headers, &k, &v), 0);
    RD_CHECK(str_eq(k, "host") && str_eq(v, "x"));
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.open.headers, &k, &v), 0);
    RD_CHECK(str_eq(k, "origin") && str_eq(v, "y"));
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.open.headers, &k, &v), -ENOENT);

    RD_CHECK_EQ_INT(decode_raw(py_accept_nil, sizeof py_accept_nil, &m, err), 0);
    RD_CHECK(m.type == PR_ACCEPT && m.u.accept.subprotocol.p == NULL);
    RD_CHECK_EQ_INT(decode_raw(py_accept, sizeof py_accept, &m, err), 0);
    RD_CHECK(str_eq(m.u.accept.subprotocol, "chat"));
    RD_CHECK_EQ_INT(decode_raw(py_reject, sizeof py_reject, &m, err), 0);
    RD_CHECK(m.type == PR_REJECT && m.u.reject.status == 403);
    RD_CHECK_EQ_INT(decode_raw(py_close, sizeof py_close, &m, err), 0);
    RD_CHECK(m.type == PR_CLOSE && m.u.close.code == 1000 && m.u.close.reason.n == 0);
    RD_CHECK_EQ_INT(decode_raw(py_send, sizeof py_send, &m, err), 0);
    RD_CHECK(m.type == PR_SEND && m.u.frame.conn == 70000);
    RD_CHECK_MEM(m.u.frame.payload.p, m.u.frame.payload.n, "\x00\xff", 2);

    RD_CHECK_EQ_INT(decode_raw(py_http_req, sizeof py_http_req, &m, err), 0);
    RD_CHECK(m.type == PR_HTTP_REQ && m.u.http_req.req == 3 && str_eq(m.u.http_req.key, "k") &&
             str_eq(m.u.http_req.method, "GET") && str_eq(m.u.http_req.path, "/echo/x") &&
             m.u.http_req.query.n == 0 && m.u.http_req.body.n == 0 &&
             str_eq(m.u.http_req.remote, "1.2.3.4"));
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.http_req.headers, &k, &v), 0);
    RD_CHECK(str_eq(k, "a") && str_eq(v, "b"));

    RD_CHECK_EQ_INT(decode_raw(py_http_res, sizeof py_http_res, &m, err), 0);
    RD_CHECK(m.type == PR_HTTP_RES && m.u.http_res.status == 200);
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.http_res.headers, &k, &v), 0);
    RD_CHECK(str_eq(k, "content-type") && str_eq(v, "text/plain"));
    RD_CHECK_MEM(m.u.http_res.body.p, m.u.http_res.body.n, "ok", 2);

    RD_CHECK_EQ_INT(decode_raw(py_ping, sizeof py_ping, &m, err), 0);
    RD_CHECK(m.type == PR_PING && m.u.ping.token == UINT64_MAX);
    RD_CHECK_EQ_INT(decode_raw(py_pong, sizeof py_pong, &m, err), 0);
    RD_CHECK(m.type == PR_PONG && m.u.ping.token == 0);
    /* unknown trailing fields of every kind are ignored */
    RD_CHECK_EQ_INT(decode_raw(py_ping_extra, sizeof py_ping_extra, &m, err), 0);
    RD_CHECK(m.type == PR_PING && m.u.ping.token == 1);
    RD_CHECK_EQ_INT(decode_raw(py_ping_f32, sizeof py_ping_f32, &m, err), 0);
    RD_CHECK(m.type == PR_PING && m.u.ping.token == 1);
}

/* Every proper prefix of a valid body fails cleanly (-EBADMSG, err set),
 * and so does every prefix of the framed bytes as a stream. */
static void check_all_truncations(const uint8_t *body, size_t n)
{
    pr_msg m;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(decode_raw(body, n, &m, err), 0);
    for (size_t k = 0; k < n; k++) {
        uint8_t *tmp = malloc(k ? k : 1);
        memcpy(tmp, body, k);
        err[0] = '\0';
        int r = pr_msg_decode(tmp, k, &m, err);
        RD_CHECK_EQ_INT(r, -EBADMSG);
        RD_CHECK(err[0] != '\0');
        free(tmp);
    }
    rd_buf f = RD_BUF_INIT;
    size_t start = pr_frame_begin(&f);
    rd_buf_append(&f, body, n);
    RD_CHECK_EQ_INT(pr_frame_end(&f, start), 0);
    const uint8_t *bp;
    size_t bl;
    for (size_t k = 0; k < rd_buf_avail(&f); k++)
        RD_CHECK_EQ_INT(pr_frame_next(rd_buf_data(&f), k, PR_FRAME_MAX, &bp, &bl), 0);
    RD_CHECK_EQ_INT(pr_frame_next(rd_buf_data(&f), rd_buf_avail(&f), PR_FRAME_MAX, &bp, &bl),
                    rd_buf_avail(&f));
    rd_buf_free(&f);
}

static void test_truncation_everywhere(void)
{
    check_all_truncations(py_frame, sizeof py_frame);
    check_all_truncations(py_hello, sizeof py_hello);
    check_all_truncations(py_open, sizeof py_open);
    check_all_truncations(py_accept_nil, sizeof py_accept_nil);
    check_all_truncations(py_reject, sizeof py_reject);
    check_all_truncations(py_close, sizeof py_close);
    check_all_truncations(py_broadcast, sizeof py_broadcast);
    check_all_truncations(py_http_req, sizeof py_http_req);
    check_all_truncations(py_http_res, sizeof py_http_res);
    check_all_truncations(py_ping, sizeof py_ping);
    check_all_truncations(py_ping_extra, sizeof py_ping_extra);
    rd_buf b = RD_BUF_INIT;
    enc_open(&b, 20);
    check_all_truncations(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4);
    rd_buf_free(&b);
}

static void test_decode_errors(void)
{
    static const uint8_t not_array[] = { 0x81, 0x01, 0x02 };
    EXPECT_ERR(not_array, "frame body is not an array");
    static const uint8_t nil[] = { 0xc0 };
    EXPECT_ERR(nil, "frame body is not an array");
    static const uint8_t short_array[] = { 0x93, 0x0b, 0x01 };
    EXPECT_ERR(short_array, "frame body is a truncated array");
    static const uint8_t empty[] = { 0x90 };
    EXPECT_ERR(empty, "frame body is an empty array");
    static const uint8_t type_str[] = { 0x92, 0xa1, 'x', 0x01 };
    EXPECT_ERR(type_str, "message type is not an unsigned integer");
    static const uint8_t type_neg[] = { 0x92, 0xff, 0x01 };
    EXPECT_ERR(type_neg, "message type is not an unsigned integer");
    static const uint8_t type0[] = { 0x92, 0x00, 0x01 };
    EXPECT_ERR(type0, "unknown message type 0");
    static const uint8_t type19[] = { 0x92, 0x13, 0x01 };
    EXPECT_ERR(type19, "unknown message type 19");
    static const uint8_t type30[] = { 0x92, 0x1e, 0x01 };
    EXPECT_ERR(type30, "unknown message type 30");
    static const uint8_t type42[] = { 0x92, 0x2a, 0x01 };
    EXPECT_ERR(type42, "unknown message type 42");
    static const uint8_t type_big[] = { 0x92, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0x01 };
    EXPECT_ERR(type_big, "unknown message type 18446744073709551615");
    static const uint8_t ping_short[] = { 0x91, 0x0b };
    EXPECT_ERR(ping_short, "PING: missing field 2 (token)");
    static const uint8_t open_short[] = { 0x93, 0x02, 0x01, 0xa1, 'k' };
    EXPECT_ERR(open_short, "OPEN: missing field 4 (client_id)");
    static const uint8_t open_key_int[] = { 0x9a, 0x02, 0x01, 0x05, 0xa0, 0x00, 0x00, 0xa0, 0xa0,
                                            0xa0, 0x80 };
    EXPECT_ERR(open_key_int, "OPEN: field 3 (key) is not a string");
    static const uint8_t open_hdr_arr[] = { 0x9a, 0x02, 0x01, 0xa0, 0xa0, 0x00, 0x00, 0xa0, 0xa0,
                                            0xa0, 0x90 };
    EXPECT_ERR(open_hdr_arr, "OPEN: field 10 (headers) is not a map");
    static const uint8_t open_hdr_val[] = { 0x9a, 0x02, 0x01, 0xa0, 0xa0, 0x00, 0x00, 0xa0, 0xa0,
                                            0xa0, 0x82, 0xa1, 'a', 0xa1, 'b', 0xa1, 'c', 0x01 };
    EXPECT_ERR(open_hdr_val, "OPEN: field 10 (headers) value 2 is not a string");
    static const uint8_t open_hdr_key[] = { 0x9a, 0x02, 0x01, 0xa0, 0xa0, 0x00, 0x00, 0xa0, 0xa0,
                                            0xa0, 0x81, 0xc0, 0xa1, 'b' };
    EXPECT_ERR(open_hdr_key, "OPEN: field 10 (headers) key 1 is not a string");
    static const uint8_t open_flags_neg[] = { 0x9a, 0x02, 0x01, 0xa0, 0xa0, 0x00, 0xff, 0xa0, 0xa0,
                                              0xa0, 0x80 };
    EXPECT_ERR(open_flags_neg, "OPEN: field 6 (flags) is not an unsigned integer");
    static const uint8_t open_nil_key[] = { 0x9a, 0x02, 0x01, 0xc0, 0xa0, 0x00, 0x00, 0xa0, 0xa0,
                                            0xa0, 0x80 };
    EXPECT_ERR(open_nil_key, "OPEN: field 3 (key) is not a string");
    static const uint8_t hello_cls[] = { 0x95, 0x01, 0x01, 0xa1, 'g', 0xa1, 'n', 0x92, 0xa1, 'e',
                                         0x07 };
    EXPECT_ERR(hello_cls, "HELLO: field 5 (classes) element 2 is not a string");
    static const uint8_t hello_cls_map[] = { 0x95, 0x01, 0x01, 0xa1, 'g', 0xa1, 'n', 0x80 };
    EXPECT_ERR(hello_cls_map, "HELLO: field 5 (classes) is not an array");
    static const uint8_t bc_conn[] = { 0x94, 0x08, 0x01, 0xc4, 0x00, 0x92, 0x01, 0xd0, 0x80 };
    EXPECT_ERR(bc_conn, "BROADCAST: field 4 (conns) element 2 is not an unsigned integer");
    static const uint8_t bc_payload[] = { 0x94, 0x08, 0x01, 0x90, 0x90 };
    EXPECT_ERR(bc_payload, "BROADCAST: field 3 (payload) is not binary");
    static const uint8_t accept_int[] = { 0x93, 0x03, 0x01, 0x01 };
    EXPECT_ERR(accept_int, "ACCEPT: field 3 (subprotocol) is not a string or nil");
    static const uint8_t frame_nil[] = { 0x94, 0x06, 0x01, 0x01, 0xc0 };
    EXPECT_ERR(frame_nil, "FRAME: field 4 (payload) is not binary");
    static const uint8_t send_neg_conn[] = { 0x94, 0x07, 0xff, 0x01, 0xc4, 0x00 };
    EXPECT_ERR(send_neg_conn, "SEND: field 2 (conn) is not an unsigned integer");
    static const uint8_t res_status[] = { 0x95, 0x0a, 0x01, 0xcb, 0x40, 0x69, 0, 0, 0, 0, 0, 0,
                                          0x80, 0xc4, 0x00 };
    EXPECT_ERR(res_status, "HTTP_RES: field 3 (status) is not an unsigned integer");
    static const uint8_t req_remote[] = { 0x99, 0x09, 0x01, 0xa0, 0xa0, 0xa0, 0xa0, 0x80, 0xc4,
                                          0x00, 0xc2 };
    EXPECT_ERR(req_remote, "HTTP_REQ: field 9 (remote) is not a string");
    /* bytes after the outer array */
    static const uint8_t after[] = { 0x92, 0x0b, 0x01, 0x00 };
    EXPECT_ERR(after, "PING: 1 bytes after the message");
    /* a trailing extra field must itself be well-formed */
    static const uint8_t bad_extra[] = { 0x93, 0x0b, 0x01, 0xc1 };
    EXPECT_ERR(bad_extra, "PING: extra field 3 is malformed");
    uint8_t deep_extra[3 + PR_MP_MAX_DEPTH + 1];
    deep_extra[0] = 0x93;
    deep_extra[1] = 0x0b;
    deep_extra[2] = 0x01;
    for (size_t i = 3; i < sizeof deep_extra - 1; i++)
        deep_extra[i] = 0x91;
    deep_extra[sizeof deep_extra - 1] = 0x90;
    EXPECT_ERR(deep_extra, "PING: extra field 3 is malformed");
    /* PR_MP_MAX_DEPTH levels in an extra field are fine */
    pr_msg m;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(decode_raw(deep_extra, sizeof deep_extra - 1, &m, err), -EBADMSG);
    deep_extra[sizeof deep_extra - 2] = 0x90;
    RD_CHECK_EQ_INT(decode_raw(deep_extra, sizeof deep_extra - 1, &m, err), 0);
    /* nil where only str is allowed, nil where nil is allowed */
    static const uint8_t reject_nil[] = { 0x94, 0x04, 0x01, 0xcd, 0x01, 0xf4, 0xc0 };
    RD_CHECK_EQ_INT(decode_raw(reject_nil, sizeof reject_nil, &m, err), 0);
    RD_CHECK(m.u.reject.status == 500 && m.u.reject.body.p == NULL);
    static const uint8_t hello_nil_role[] = { 0x95, 0x01, 0x01, 0xc0, 0xa1, 'n', 0x90 };
    EXPECT_ERR(hello_nil_role, "HELLO: field 3 (role) is not a string");
    /* empty input */
    RD_CHECK_EQ_INT(pr_msg_decode(py_frame, 0, &m, err), -EBADMSG);
    /* err may be NULL */
    RD_CHECK_EQ_INT(pr_msg_decode(not_array, sizeof not_array, &m, NULL), -EBADMSG);
}

static void test_noncanonical_message(void)
{
    /* [6, conn, op, payload] with every header in its widest form */
    static const uint8_t wide[] = {
        0xdd, 0x00, 0x00, 0x00, 0x04,
        0xcf, 0, 0, 0, 0, 0, 0, 0, 0x06,
        0xd3, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
        0xd0, 0x02,
        0xc6, 0, 0, 0, 0x02, 'o', 'k' };
    pr_msg m;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(decode_raw(wide, sizeof wide, &m, err), 0);
    RD_CHECK(m.type == PR_FRAME && m.u.frame.conn == 256 && m.u.frame.opcode == 2);
    RD_CHECK_MEM(m.u.frame.payload.p, m.u.frame.payload.n, "ok", 2);
    static const uint8_t wide_hdrs[] = {
        0xdc, 0x00, 0x05, 0x0a, 0x01, 0xcc, 0xc8,
        0xdf, 0, 0, 0, 1, 0xdb, 0, 0, 0, 1, 'k', 0xda, 0, 1, 'v',
        0xdb, 0, 0, 0, 0 };
    RD_CHECK_EQ_INT(decode_raw(wide_hdrs, sizeof wide_hdrs, &m, err), 0);
    RD_CHECK(m.type == PR_HTTP_RES && m.u.http_res.status == 200 && m.u.http_res.body.n == 0);
    pr_str k, v;
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.http_res.headers, &k, &v), 0);
    RD_CHECK(str_eq(k, "k") && str_eq(v, "v"));
}

static void test_decode_leaves_ret_on_failure(void)
{
    pr_msg m;
    memset(&m, 0x5a, sizeof m);
    pr_msg copy = m;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(decode_raw(py_open, sizeof py_open - 1, &m, err), -EBADMSG);
    RD_CHECK(memcmp(&m, &copy, sizeof m) == 0);
}

/* OPEN's attachment and tags are optional: absent they read as empty;
 * present they are checked like any field. */
static void test_open_optional_fields(void)
{
    pr_msg m;
    char err[RD_ERR_LEN];
    rd_buf b = RD_BUF_INIT;
    size_t start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 12);
    pr_mp_put_uint(&b, PR_OPEN);
    pr_mp_put_uint(&b, 7);
    pr_mp_put_str(&b, "chat/x", 6);
    pr_mp_put_str(&b, "id", 2);
    pr_mp_put_uint(&b, 1);
    pr_mp_put_uint(&b, PR_OPEN_RESUMED);
    pr_mp_put_str(&b, "", 0);
    pr_mp_put_str(&b, "r", 1);
    pr_mp_put_str(&b, "", 0);
    pr_mp_put_map(&b, 0);
    pr_mp_put_bin(&b, "att", 3);
    pr_mp_put_array(&b, 2);
    pr_mp_put_str(&b, "red", 3);
    pr_mp_put_str(&b, "blue", 4);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK_EQ_INT(pr_msg_decode(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, &m, err), 0);
    RD_CHECK(m.type == PR_OPEN && m.u.open.attachment.n == 3 && m.u.open.tags.n == 2);
    pr_str t;
    RD_CHECK_EQ_INT(pr_list_next_str(&m.u.open.tags, &t), 0);
    RD_CHECK(str_eq(t, "red"));
    rd_buf_free(&b);
    /* Ten fields: no attachment, no tags. */
    start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 10);
    pr_mp_put_uint(&b, PR_OPEN);
    pr_mp_put_uint(&b, 7);
    pr_mp_put_str(&b, "chat/x", 6);
    pr_mp_put_str(&b, "id", 2);
    pr_mp_put_uint(&b, 1);
    pr_mp_put_uint(&b, 0);
    pr_mp_put_str(&b, "", 0);
    pr_mp_put_str(&b, "r", 1);
    pr_mp_put_str(&b, "", 0);
    pr_mp_put_map(&b, 0);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK_EQ_INT(pr_msg_decode(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, &m, err), 0);
    RD_CHECK(m.u.open.attachment.n == 0 && m.u.open.attachment.p == NULL && m.u.open.tags.n == 0);
    RD_CHECK_EQ_INT(pr_list_next_str(&m.u.open.tags, &t), -ENOENT);
    rd_buf_free(&b);
}

/* Issue 7's additions: HELLO's methods map, CALL, claims on OPEN and
 * HTTP_REQ, and the numbers reserved for other branches staying unknown. */
static void test_web_messages(void)
{
    pr_msg m;
    char err[RD_ERR_LEN];
    rd_buf b = RD_BUF_INIT;
    const char *classes[] = { "counter" };
    const char *names[] = { "counter.increment", "counter.watch" }, *kinds[] = { "call", "stream" };
    RD_CHECK_EQ_INT(pr_enc_hello_methods(&b, "shard", "s", classes, 1, names, kinds, 2), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    pr_str k, v;
    RD_CHECK_EQ_INT(m.u.hello.methods.n, 2);
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.hello.methods, &k, &v), 0);
    RD_CHECK(str_eq(k, "counter.increment") && str_eq(v, "call"));
    RD_CHECK_EQ_INT(pr_list_next_kv(&m.u.hello.methods, &k, &v), 0);
    RD_CHECK(str_eq(k, "counter.watch") && str_eq(v, "stream"));
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(pr_enc_hello(&b, "gateway", "g", NULL, 0), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK_EQ_INT(m.u.hello.methods.n, 0); /* absent: empty */

    rd_buf_reset(&b, 0);
    size_t start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 5);
    pr_mp_put_uint(&b, PR_CALL);
    pr_mp_put_uint(&b, 3);
    put_s(&b, "counter/a");
    put_s(&b, "increment");
    pr_mp_put_bin(&b, "[5]", 3);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(m.type == PR_CALL && m.u.call.req == 3 && str_eq(m.u.call.key, "counter/a") &&
             str_eq(m.u.call.method, "increment") && m.u.call.params.n == 3);
    RD_CHECK(strcmp(pr_type_name(PR_CALL), "CALL") == 0);
    /* CALL with the method as a number is malformed. */
    rd_buf_reset(&b, 0);
    start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 5);
    pr_mp_put_uint(&b, PR_CALL);
    pr_mp_put_uint(&b, 3);
    put_s(&b, "counter/a");
    pr_mp_put_uint(&b, 1);
    pr_mp_put_bin(&b, "", 0);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK(decode_buf(&b, &m) < 0);

    /* OPEN with claims after empty attachment and tags. */
    rd_buf_reset(&b, 0);
    start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 13);
    pr_mp_put_uint(&b, PR_OPEN);
    pr_mp_put_uint(&b, 7);
    put_s(&b, "chat/x");
    put_s(&b, "id");
    pr_mp_put_uint(&b, 1);
    pr_mp_put_uint(&b, 0);
    put_s(&b, "");
    put_s(&b, "r");
    put_s(&b, "");
    pr_mp_put_map(&b, 0);
    pr_mp_put_bin(&b, NULL, 0);
    pr_mp_put_array(&b, 0);
    put_s(&b, "{\"sub\":\"ada\"}");
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK(str_eq(m.u.open.claims, "{\"sub\":\"ada\"}") && m.u.open.tags.n == 0);
    rd_buf_reset(&b, 0);
    enc_open(&b, 0);
    RD_CHECK_EQ_INT(decode_buf(&b, &m), 0);
    RD_CHECK_EQ_INT(m.u.open.claims.n, 0);

    /* Reserved numbers around CALL are unknown types. */
    for (unsigned t = 19; t <= 24; t++) {
        if (t == PR_CALL)
            continue;
        rd_buf_reset(&b, 0);
        start = pr_frame_begin(&b);
        pr_mp_put_array(&b, 1);
        pr_mp_put_uint(&b, t);
        RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
        RD_CHECK(pr_msg_decode(rd_buf_data(&b) + 4, rd_buf_avail(&b) - 4, &m, err) < 0);
        RD_CHECK(strstr(err, "unknown message type") != NULL);
    }
    rd_buf_free(&b);
}

static void test_type_name(void)
{
    static const char *const names[] = { "UNKNOWN", "HELLO", "OPEN", "ACCEPT", "REJECT", "CLOSE",
                                         "FRAME", "SEND", "BROADCAST", "HTTP_REQ", "HTTP_RES",
                                         "PING", "PONG", "META", "AUTORESP", "AUTOHIT",
                                         "PUBLISH", "DETACH", "DETACHED", "UNKNOWN", "UNKNOWN",
                                         "CALL", "UNKNOWN", "UNKNOWN", "UNKNOWN", "INFO",
                                         "INFO_RES", "SET", "ALARM_MOVE", "ALARM_MOVED", "UNKNOWN" };
    for (int i = 0; i < (int)N(names); i++)
        RD_CHECK(strcmp(pr_type_name(i), names[i]) == 0);
    RD_CHECK(strcmp(pr_type_name(-1), "UNKNOWN") == 0);
    RD_CHECK(strcmp(pr_type_name(1000), "UNKNOWN") == 0);
}

static void test_misuse(void)
{
    rd_buf b = RD_BUF_INIT;
    rd_buf_append(&b, "abc", 3);
    RD_CHECK_EQ_INT(pr_frame_end(&b, 1000), -EINVAL);
    RD_CHECK_EQ_INT(pr_frame_end(&b, 1), -EINVAL);
    RD_CHECK(bytes_eq(&b, "abc", 3));
    /* oversized strings are refused before anything is copied */
    RD_CHECK_EQ_INT(pr_enc_accept(&b, 1, "x", PR_FRAME_MAX + 1), -EMSGSIZE);
    RD_CHECK_EQ_INT(pr_enc_reject(&b, 1, 400, "x", PR_FRAME_MAX + 1), -EMSGSIZE);
    RD_CHECK_EQ_INT(pr_enc_close(&b, 1, 1000, "x", SIZE_MAX), -EMSGSIZE);
    RD_CHECK_EQ_INT(pr_enc_frame(&b, PR_SEND, 1, 2, "x", SIZE_MAX), -EMSGSIZE);
    RD_CHECK(bytes_eq(&b, "abc", 3));
    rd_buf_free(&b);

    /* a list the caller built by hand over bad bytes fails without moving */
    static const uint8_t junk[] = { 0xc1, 0xc1 };
    pr_list l = { { junk, junk + sizeof junk }, 1 };
    pr_str k, v;
    uint64_t u;
    RD_CHECK_EQ_INT(pr_list_next_str(&l, &k), -EBADMSG);
    RD_CHECK_EQ_INT(pr_list_next_kv(&l, &k, &v), -EBADMSG);
    RD_CHECK_EQ_INT(pr_list_next_uint(&l, &u), -EBADMSG);
    RD_CHECK(l.n == 1 && l.cur.p == junk);
    /* a key without its value */
    static const uint8_t half[] = { 0xa1, 'k' };
    pr_list h = { { half, half + sizeof half }, 1 };
    RD_CHECK_EQ_INT(pr_list_next_kv(&h, &k, &v), -EBADMSG);
    RD_CHECK(h.n == 1 && h.cur.p == half);
}

static void test_list_zero_value(void)
{
    pr_list l;
    memset(&l, 0, sizeof l);
    pr_str k, v;
    uint64_t u;
    RD_CHECK_EQ_INT(pr_list_next_str(&l, &k), -ENOENT);
    RD_CHECK_EQ_INT(pr_list_next_kv(&l, &k, &v), -ENOENT);
    RD_CHECK_EQ_INT(pr_list_next_uint(&l, &u), -ENOENT);
}

/* PONG's optional statistics: objects and three histograms, each a uint
 * array of the bucket counts then the sum; an older PONG (token only) reads
 * as zeros and empty histograms; a list of another length is refused. */
static void test_pong_stats(void)
{
    rd_hist h = { { 0 }, 0 }, got;
    rd_hist_observe(&h, 70);
    rd_hist_observe(&h, 3000000);
    rd_buf b = RD_BUF_INIT;
    size_t start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 13);
    pr_mp_put_uint(&b, PR_PONG);
    for (uint64_t v = 1; v <= 9; v++)
        pr_mp_put_uint(&b, v);
    pr_put_hist(&b, &h);
    pr_mp_put_array(&b, 3);
    for (int i = 0; i < 3; i++)
        pr_mp_put_uint(&b, 1);
    pr_mp_put_array(&b, 0);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    pr_msg m;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(pr_msg_decode(rd_buf_data(&b) + PR_FRAME_HDR, rd_buf_avail(&b) - PR_FRAME_HDR, &m, err), 0);
    RD_CHECK(m.type == PR_PONG && m.u.ping.token == 1 && m.u.ping.gaps == 6 && m.u.ping.hangs == 7 &&
             m.u.ping.live == 8 && m.u.ping.hibernated == 9);
    RD_CHECK_EQ_INT(pr_get_hist(&m.u.ping.commit_hist, &got), 0);
    RD_CHECK(memcmp(&got, &h, sizeof h) == 0);
    RD_CHECK_EQ_INT(pr_get_hist(&m.u.ping.event_hist, &got), -EINVAL);
    RD_CHECK_EQ_INT(rd_hist_count(&got), 0);
    RD_CHECK_EQ_INT(pr_get_hist(&m.u.ping.fed_lag_hist, &got), -EINVAL);
    rd_buf_free(&b);

    RD_CHECK_EQ_INT(pr_enc_ping(&b, PR_PONG, 9), 0);
    RD_CHECK_EQ_INT(pr_msg_decode(rd_buf_data(&b) + PR_FRAME_HDR, rd_buf_avail(&b) - PR_FRAME_HDR, &m, err), 0);
    RD_CHECK(m.u.ping.token == 9 && m.u.ping.live == 0 && m.u.ping.hibernated == 0);
    RD_CHECK_EQ_INT(pr_get_hist(&m.u.ping.commit_hist, &got), -EINVAL);
    rd_buf_free(&b);

    /* A histogram element that is not an unsigned integer fails the decode. */
    start = pr_frame_begin(&b);
    pr_mp_put_array(&b, 11);
    pr_mp_put_uint(&b, PR_PONG);
    for (uint64_t v = 1; v <= 9; v++)
        pr_mp_put_uint(&b, v);
    pr_mp_put_array(&b, RD_HIST_BOUNDS + 2);
    for (int i = 0; i < RD_HIST_BOUNDS + 1; i++)
        pr_mp_put_uint(&b, 0);
    pr_mp_put_str(&b, "x", 1);
    RD_CHECK_EQ_INT(pr_frame_end(&b, start), 0);
    RD_CHECK_EQ_INT(pr_msg_decode(rd_buf_data(&b) + PR_FRAME_HDR, rd_buf_avail(&b) - PR_FRAME_HDR, &m, err),
                    -EBADMSG);
    RD_CHECK(strstr(err, "commit_hist") != NULL);
    rd_buf_free(&b);
}

int main(void)
{
    RD_RUN(test_pong_stats);
    RD_RUN(test_int_encode);
    RD_RUN(test_int_decode);
    RD_RUN(test_int_any_encoding);
    RD_RUN(test_int_roundtrip_sweep);
    RD_RUN(test_nil_bool);
    RD_RUN(test_str_bin_lengths);
    RD_RUN(test_bin_header);
    RD_RUN(test_str_or_nil);
    RD_RUN(test_array_map_headers);
    RD_RUN(test_skip_every_type);
    RD_RUN(test_type_mismatch);
    RD_RUN(test_skip_depth);
    RD_RUN(test_skip_huge_counts);
    RD_RUN(test_put_empty);
    RD_RUN(test_frame_next);
    RD_RUN(test_frame_stream_split);
    RD_RUN(test_frame_end_oversize);
    RD_RUN(test_frame_begin_compaction);
    RD_RUN(test_hello_roundtrip);
    RD_RUN(test_accept_reject_close);
    RD_RUN(test_frame_send_ping);
    RD_RUN(test_open_roundtrip);
    RD_RUN(test_broadcast_roundtrip);
    RD_RUN(test_http_roundtrip);
    RD_RUN(test_handoff_messages);
    RD_RUN(test_interop_vectors);
    RD_RUN(test_truncation_everywhere);
    RD_RUN(test_decode_errors);
    RD_RUN(test_noncanonical_message);
    RD_RUN(test_decode_leaves_ret_on_failure);
    RD_RUN(test_type_name);
    RD_RUN(test_web_messages);
    RD_RUN(test_open_optional_fields);
    RD_RUN(test_misuse);
    RD_RUN(test_list_zero_value);
    return rd_test_summary();
}
