#include "pr_mp.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

/* Loads and stores go through memcpy: msgpack fields sit at any offset. */
static inline uint16_t ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return be16toh(v);
}

static inline uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return be32toh(v);
}

static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return be64toh(v);
}

static inline size_t avail(const pr_mp_cur *c)
{
    return c->p < c->end ? (size_t)(c->end - c->p) : 0;
}

/* ---- writers ---------------------------------------------------------- */

/* width is 1, 2, 4 or 8 */
static void put_hdr(rd_buf *b, uint8_t tag, unsigned width, uint64_t v)
{
    uint8_t *w = rd_buf_reserve(b, 9);
    w[0] = tag;
    switch (width) {
    case 1:
        w[1] = (uint8_t)v;
        break;
    case 2: {
        uint16_t x = htobe16((uint16_t)v);
        memcpy(w + 1, &x, 2);
        break;
    }
    case 4: {
        uint32_t x = htobe32((uint32_t)v);
        memcpy(w + 1, &x, 4);
        break;
    }
    default: {
        uint64_t x = htobe64(v);
        memcpy(w + 1, &x, 8);
        break;
    }
    }
    rd_buf_commit(b, 1 + width);
}

void pr_mp_put_nil(rd_buf *b)
{
    rd_buf_append_u8(b, 0xc0);
}

void pr_mp_put_bool(rd_buf *b, bool v)
{
    rd_buf_append_u8(b, v ? 0xc3 : 0xc2);
}

void pr_mp_put_uint(rd_buf *b, uint64_t v)
{
    if (v < 0x80)
        rd_buf_append_u8(b, (uint8_t)v);
    else if (v <= UINT8_MAX)
        put_hdr(b, 0xcc, 1, v);
    else if (v <= UINT16_MAX)
        put_hdr(b, 0xcd, 2, v);
    else if (v <= UINT32_MAX)
        put_hdr(b, 0xce, 4, v);
    else
        put_hdr(b, 0xcf, 8, v);
}

void pr_mp_put_int(rd_buf *b, int64_t v)
{
    /* Conversions of negative values to unsigned types are defined (mod 2^N)
     * and give exactly the two's complement bytes msgpack wants. */
    if (v >= 0)
        pr_mp_put_uint(b, (uint64_t)v);
    else if (v >= -32)
        rd_buf_append_u8(b, (uint8_t)v);
    else if (v >= INT8_MIN)
        put_hdr(b, 0xd0, 1, (uint8_t)v);
    else if (v >= INT16_MIN)
        put_hdr(b, 0xd1, 2, (uint16_t)v);
    else if (v >= INT32_MIN)
        put_hdr(b, 0xd2, 4, (uint32_t)v);
    else
        put_hdr(b, 0xd3, 8, (uint64_t)v);
}

/* Lengths past 32 bits cannot be expressed; 0xc1 (never used) makes such a
 * value undecodable instead of misparsed, and the body itself still goes in
 * so pr_frame_end sees the size and refuses the frame. */
static bool len_ok(rd_buf *b, size_t n)
{
#if SIZE_MAX > UINT32_MAX
    if (n > UINT32_MAX) {
        rd_buf_append_u8(b, 0xc1);
        return false;
    }
#else
    (void)b;
    (void)n;
#endif
    return true;
}

void pr_mp_put_str(rd_buf *b, const char *s, size_t n)
{
    if (n < 32)
        rd_buf_append_u8(b, (uint8_t)(0xa0 | n));
    else if (n <= UINT8_MAX)
        put_hdr(b, 0xd9, 1, n);
    else if (n <= UINT16_MAX)
        put_hdr(b, 0xda, 2, n);
    else if (len_ok(b, n))
        put_hdr(b, 0xdb, 4, n);
    rd_buf_append(b, s, n);
}

void pr_mp_put_bin_header(rd_buf *b, uint32_t n)
{
    if (n <= UINT8_MAX)
        put_hdr(b, 0xc4, 1, n);
    else if (n <= UINT16_MAX)
        put_hdr(b, 0xc5, 2, n);
    else
        put_hdr(b, 0xc6, 4, n);
}

void pr_mp_put_bin(rd_buf *b, const void *p, size_t n)
{
    if (len_ok(b, n))
        pr_mp_put_bin_header(b, (uint32_t)n);
    rd_buf_append(b, p, n);
}

void pr_mp_put_array(rd_buf *b, uint32_t n)
{
    if (n < 16)
        rd_buf_append_u8(b, (uint8_t)(0x90 | n));
    else if (n <= UINT16_MAX)
        put_hdr(b, 0xdc, 2, n);
    else
        put_hdr(b, 0xdd, 4, n);
}

void pr_mp_put_map(rd_buf *b, uint32_t n)
{
    if (n < 16)
        rd_buf_append_u8(b, (uint8_t)(0x80 | n));
    else if (n <= UINT16_MAX)
        put_hdr(b, 0xde, 2, n);
    else
        put_hdr(b, 0xdf, 4, n);
}

/* ---- readers ---------------------------------------------------------- */

enum pr_mp_type pr_mp_peek(const pr_mp_cur *c)
{
    size_t a = avail(c);
    if (a == 0)
        return PR_MP_INVALID;
    uint8_t t = c->p[0];
    if (t <= 0x7f)
        return PR_MP_UINT;
    if (t <= 0x8f)
        return PR_MP_MAP;
    if (t <= 0x9f)
        return PR_MP_ARRAY;
    if (t <= 0xbf)
        return PR_MP_STR;
    if (t >= 0xe0)
        return PR_MP_INT;
    switch (t) {
    case 0xc0:
        return PR_MP_NIL;
    case 0xc2: case 0xc3:
        return PR_MP_BOOL;
    case 0xc4: case 0xc5: case 0xc6:
        return PR_MP_BIN;
    case 0xc7: case 0xc8: case 0xc9:
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        return PR_MP_EXT;
    case 0xca: case 0xcb:
        return PR_MP_FLOAT;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        return PR_MP_UINT;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        /* The sign lives in the first payload byte (big-endian). */
        return a >= 2 && c->p[1] < 0x80 ? PR_MP_UINT : PR_MP_INT;
    case 0xd9: case 0xda: case 0xdb:
        return PR_MP_STR;
    case 0xdc: case 0xdd:
        return PR_MP_ARRAY;
    case 0xde: case 0xdf:
        return PR_MP_MAP;
    default:
        return PR_MP_INVALID;
    }
}

/* Any integer encoding. *neg tells whether the value is negative; *u then
 * holds its 64-bit two's complement. Returns bytes used, 0 on failure. */
static size_t read_int(const uint8_t *p, size_t a, uint64_t *u, bool *neg)
{
    if (a == 0)
        return 0;
    uint8_t t = p[0];
    if (t <= 0x7f) {
        *u = t;
        *neg = false;
        return 1;
    }
    if (t >= 0xe0) {
        *u = UINT64_C(0xffffffffffffff00) | t;
        *neg = true;
        return 1;
    }
    uint64_t x;
    size_t w;
    switch (t) {
    case 0xcc: case 0xd0: w = 1; break;
    case 0xcd: case 0xd1: w = 2; break;
    case 0xce: case 0xd2: w = 4; break;
    case 0xcf: case 0xd3: w = 8; break;
    default: return 0;
    }
    if (a < 1 + w)
        return 0;
    switch (w) {
    case 1: x = p[1]; break;
    case 2: x = ld16(p + 1); break;
    case 4: x = ld32(p + 1); break;
    default: x = ld64(p + 1); break;
    }
    *neg = false;
    if (t >= 0xd0) {
        uint64_t sign = UINT64_C(1) << (8 * w - 1);
        if (x & sign) {
            *neg = true;
            if (w < 8)
                x |= ~((sign << 1) - 1);
        }
    }
    *u = x;
    return 1 + w;
}

int pr_mp_get_nil(pr_mp_cur *c)
{
    if (avail(c) < 1 || c->p[0] != 0xc0)
        return -EBADMSG;
    c->p++;
    return 0;
}

int pr_mp_get_bool(pr_mp_cur *c, bool *ret)
{
    if (avail(c) < 1 || (c->p[0] | 1) != 0xc3)
        return -EBADMSG;
    *ret = c->p[0] == 0xc3;
    c->p++;
    return 0;
}

int pr_mp_get_uint(pr_mp_cur *c, uint64_t *ret)
{
    const uint8_t *p = c->p;
    /* Fast path: small ids, opcodes and types are positive fixints. */
    if (p < c->end && *p <= 0x7f) {
        *ret = *p;
        c->p = p + 1;
        return 0;
    }
    uint64_t u;
    bool neg;
    size_t n = read_int(p, avail(c), &u, &neg);
    if (n == 0 || neg)
        return -EBADMSG;
    *ret = u;
    c->p = p + n;
    return 0;
}

int pr_mp_get_int(pr_mp_cur *c, int64_t *ret)
{
    uint64_t u;
    bool neg;
    size_t n = read_int(c->p, avail(c), &u, &neg);
    if (n == 0 || (!neg && u > INT64_MAX))
        return -EBADMSG;
    /* Two's complement back to int64 without implementation-defined casts. */
    *ret = neg ? -(int64_t)~u - 1 : (int64_t)u;
    c->p += n;
    return 0;
}

/* Header of a str (or, with bin, of a bin or a str): returns the header
 * bytes, 0 if the tag does not match or the value is truncated. */
static size_t read_strhdr(const uint8_t *p, size_t a, bool bin, size_t *ret_len)
{
    if (a == 0)
        return 0;
    uint8_t t = p[0];
    size_t h, n;
    if (t >= 0xa0 && t <= 0xbf) {
        h = 1;
        n = t & 0x1f;
    } else {
        switch (t) {
        case 0xd9: h = 2; break;
        case 0xda: h = 3; break;
        case 0xdb: h = 5; break;
        case 0xc4: h = bin ? 2 : 0; break;
        case 0xc5: h = bin ? 3 : 0; break;
        case 0xc6: h = bin ? 5 : 0; break;
        default: h = 0; break;
        }
        if (h == 0 || a < h)
            return 0;
        n = h == 2 ? p[1] : h == 3 ? ld16(p + 1) : ld32(p + 1);
    }
    if (n > a - h)
        return 0;
    *ret_len = n;
    return h;
}

int pr_mp_get_str(pr_mp_cur *c, const char **ret, size_t *ret_len)
{
    size_t n, h = read_strhdr(c->p, avail(c), false, &n);
    if (h == 0)
        return -EBADMSG;
    *ret = (const char *)(c->p + h);
    *ret_len = n;
    c->p += h + n;
    return 0;
}

int pr_mp_get_str_or_nil(pr_mp_cur *c, const char **ret, size_t *ret_len)
{
    if (c->p < c->end && c->p[0] == 0xc0) {
        *ret = NULL;
        *ret_len = 0;
        c->p++;
        return 0;
    }
    return pr_mp_get_str(c, ret, ret_len);
}

int pr_mp_get_bin(pr_mp_cur *c, const uint8_t **ret, size_t *ret_len)
{
    size_t n, h = read_strhdr(c->p, avail(c), true, &n);
    if (h == 0)
        return -EBADMSG;
    *ret = c->p + h;
    *ret_len = n;
    c->p += h + n;
    return 0;
}

/* Container header: returns header bytes (0 on mismatch or truncation) and
 * the number of values that follow (2 per map entry). A count larger than
 * the bytes left cannot be valid, since every value takes at least one. */
static size_t read_container(const uint8_t *p, size_t a, bool map, uint64_t *ret_vals,
                           uint32_t *ret_n)
{
    if (a == 0)
        return 0;
    uint8_t t = p[0];
    uint8_t fix = map ? 0x80 : 0x90;
    size_t h;
    uint32_t n;
    if ((t & 0xf0) == fix) {
        h = 1;
        n = t & 0x0f;
    } else if (t == (map ? 0xde : 0xdc)) {
        if (a < 3)
            return 0;
        h = 3;
        n = ld16(p + 1);
    } else if (t == (map ? 0xdf : 0xdd)) {
        if (a < 5)
            return 0;
        h = 5;
        n = ld32(p + 1);
    } else {
        return 0;
    }
    uint64_t vals = map ? 2 * (uint64_t)n : n;
    if (vals > a - h)
        return 0;
    *ret_vals = vals;
    *ret_n = n;
    return h;
}

int pr_mp_get_array(pr_mp_cur *c, uint32_t *ret_n)
{
    uint64_t vals;
    size_t h = read_container(c->p, avail(c), false, &vals, ret_n);
    if (h == 0)
        return -EBADMSG;
    c->p += h;
    return 0;
}

int pr_mp_get_map(pr_mp_cur *c, uint32_t *ret_n)
{
    uint64_t vals;
    size_t h = read_container(c->p, avail(c), true, &vals, ret_n);
    if (h == 0)
        return -EBADMSG;
    c->p += h;
    return 0;
}

/* Iterative, with one pending-value counter per open container: every loop
 * turn consumes at least one input byte, so the work is bounded by the
 * input size whatever the headers claim. */
int pr_mp_skip(pr_mp_cur *c)
{
    uint64_t left[PR_MP_MAX_DEPTH + 1];
    int depth = 0;
    const uint8_t *p = c->p;
    const uint8_t *end = c->end;
    if (p >= end)
        return -EBADMSG;
    left[0] = 1;
    for (;;) {
        while (left[depth] == 0) {
            if (depth == 0) {
                c->p = p;
                return 0;
            }
            depth--;
        }
        left[depth]--;
        size_t a = (size_t)(end - p);
        if (a == 0)
            return -EBADMSG;
        uint8_t t = p[0];
        size_t h;          /* header bytes */
        uint64_t body = 0; /* payload bytes after the header */
        if (t <= 0x7f || t >= 0xe0) {
            h = 1;
        } else if (t <= 0x9f || t == 0xdc || t == 0xdd || t == 0xde || t == 0xdf) {
            uint64_t vals;
            uint32_t n;
            bool map = t <= 0x8f || t >= 0xde;
            h = read_container(p, a, map, &vals, &n);
            if (h == 0 || depth == PR_MP_MAX_DEPTH)
                return -EBADMSG;
            p += h;
            if (vals)
                left[++depth] = vals;
            continue;
        } else if (t <= 0xbf) {
            h = 1;
            body = t & 0x1f;
        } else {
            size_t lw = 0; /* width of a length field following the tag */
            switch (t) {
            case 0xc0: case 0xc2: case 0xc3: h = 1; break;
            case 0xc4: case 0xd9: lw = 1; h = 2; break;
            case 0xc5: case 0xda: lw = 2; h = 3; break;
            case 0xc6: case 0xdb: lw = 4; h = 5; break;
            case 0xc7: lw = 1; h = 3; break; /* ext: length, then a type byte */
            case 0xc8: lw = 2; h = 4; break;
            case 0xc9: lw = 4; h = 6; break;
            case 0xca: h = 5; break;
            case 0xcb: h = 9; break;
            case 0xcc: case 0xd0: h = 2; break;
            case 0xcd: case 0xd1: h = 3; break;
            case 0xce: case 0xd2: h = 5; break;
            case 0xcf: case 0xd3: h = 9; break;
            case 0xd4: h = 3; break; /* fixext: type byte, then 1..16 bytes */
            case 0xd5: h = 4; break;
            case 0xd6: h = 6; break;
            case 0xd7: h = 10; break;
            case 0xd8: h = 18; break;
            default: return -EBADMSG; /* 0xc1 */
            }
            if (a < h)
                return -EBADMSG;
            if (lw == 1)
                body = p[1];
            else if (lw == 2)
                body = ld16(p + 1);
            else if (lw == 4)
                body = ld32(p + 1);
        }
        if (body > a - h)
            return -EBADMSG;
        p += h + body;
    }
}
