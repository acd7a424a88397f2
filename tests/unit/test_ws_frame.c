#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_buf.h"
#include "rd_test.h"
#include "ws_frame.h"
#include "ws_utf8.h"

#define NOLIMIT UINT64_MAX

/* ---- helpers ---------------------------------------------------------- */

static unsigned key_seq;

/* Append one masked client frame; b0 is the raw first byte (FIN, RSV, opcode). */
static void sb_frame(rd_buf *s, unsigned b0, const void *payload, size_t n)
{
    uint8_t hdr[14];
    uint8_t key[4] = { (uint8_t)(0x37 + key_seq), 0xFA, (uint8_t)(0x21 * key_seq), 0x3D };
    key_seq++;
    size_t h = ws_frame_header(hdr, (b0 & 0x80) != 0, (b0 & 0x40) != 0, (int)(b0 & 0x0F), n, key);
    hdr[0] = (uint8_t)b0;
    rd_buf_append(s, hdr, h);
    uint8_t *p = rd_buf_reserve(s, n ? n : 1);
    if (n)
        memcpy(p, payload, n);
    ws_mask(p, n, key, 0);
    rd_buf_commit(s, n);
}

static void sb_raw(rd_buf *s, const void *p, size_t n)
{
    rd_buf_append(s, p, n);
}

typedef struct rec {
    ws_event_type type;
    int opcode;
    bool compressed;
    uint8_t *data;
    size_t len;
    bool zero_copy;        /* data pointed into the fed buffer */
    uint16_t close_code;
    char reason[130];
    size_t reason_len;
    size_t at;             /* bytes consumed when the event completed */
} rec;

#define MAX_REC 64

typedef struct run {
    rec ev[MAX_REC];
    int n;
    size_t consumed;
    size_t max_memory;
} run;

static void run_free(run *o)
{
    for (int i = 0; i < o->n; i++)
        free(o->ev[i].data);
    o->n = 0;
}

typedef struct cfg {
    uint64_t max_frame, max_message;
    bool pmd;
} cfg;

static const cfg cfg_default = { NOLIMIT, NOLIMIT, false };

/* Feed a stream in chunks of `chunk` bytes (0: all at once), recording every
 * event with a private copy of its data. Stops at an error or close. */
static void run_stream(const uint8_t *stream, size_t len, size_t chunk, cfg c, run *o)
{
    uint8_t *buf = malloc(len ? len : 1);
    ws_reader r;
    size_t off = 0;

    memcpy(buf, stream, len);
    memset(o, 0, sizeof *o);
    ws_reader_init(&r, c.max_frame, c.max_message);
    r.pmd = c.pmd;
    while (off < len) {
        size_t end = chunk ? (off + chunk < len ? off + chunk : len) : len;
        while (off < end) {
            ws_event ev;
            size_t start = off;
            size_t got = ws_reader_feed(&r, buf + off, end - off, &ev);
            RD_CHECK(got <= end - off);
            off += got;
            if (ws_reader_memory(&r) > o->max_memory)
                o->max_memory = ws_reader_memory(&r);
            if (ev.type != WS_EV_NONE && o->n < MAX_REC) {
                rec *e = &o->ev[o->n++];
                e->type = ev.type;
                e->opcode = ev.opcode;
                e->compressed = ev.compressed;
                e->len = ev.len;
                e->data = malloc(ev.len ? ev.len : 1);
                if (ev.len) {
                    RD_CHECK(ev.data != NULL);
                    memcpy(e->data, ev.data, ev.len);
                }
                if (ev.type == WS_EV_MESSAGE)
                    RD_CHECK(ev.data != NULL);
                e->zero_copy = ev.data >= buf + start && ev.data < buf + end && ev.len > 0;
                e->close_code = ev.close_code;
                e->reason_len = ev.reason_len;
                if (ev.reason_len && ev.reason_len < sizeof e->reason)
                    memcpy(e->reason, ev.reason, ev.reason_len);
                e->at = off;
                if (ev.type == WS_EV_ERROR) {
                    RD_CHECK(ev.reason != NULL && strlen(ev.reason) == ev.reason_len);
                    /* sticky */
                    ws_event ev2;
                    size_t again = ws_reader_feed(&r, buf + off, len - off, &ev2);
                    RD_CHECK_EQ_INT(again, 0);
                    RD_CHECK_EQ_INT(ev2.type, WS_EV_ERROR);
                    RD_CHECK_EQ_INT(ev2.close_code, ev.close_code);
                    RD_CHECK(ev2.reason && strcmp(ev2.reason, ev.reason) == 0);
                }
            }
            if (ev.type == WS_EV_ERROR || ev.type == WS_EV_CLOSE)
                goto done;
            if (got == 0) {
                RD_CHECK(got != 0); /* feed made no progress */
                goto done;
            }
        }
    }
done:
    o->consumed = off;
    ws_reader_free(&r);
    RD_CHECK_EQ_INT(ws_reader_memory(&r), 0);
    free(buf);
}

typedef struct expect {
    ws_event_type type;
    int opcode;          /* messages */
    const void *data;    /* messages, pings, pongs; close: reason */
    size_t len;
    uint16_t code;       /* close/error */
    const char *reason;  /* error */
    bool compressed;
} expect;

#define EX_MSG(op, s, n) { WS_EV_MESSAGE, (op), (s), (n), 0, NULL, false }
#define EX_TEXT(s) EX_MSG(WS_OP_TEXT, (s), strlen(s))
#define EX_PING(s, n) { WS_EV_PING, 0, (s), (n), 0, NULL, false }
#define EX_PONG(s, n) { WS_EV_PONG, 0, (s), (n), 0, NULL, false }
#define EX_CLOSE(code, s, n) { WS_EV_CLOSE, 0, (s), (n), (code), NULL, false }
#define EX_ERR(code, why) { WS_EV_ERROR, 0, NULL, 0, (code), (why), false }

static const size_t chunkings[] = { 0, 1, 2, 3, 5, 7, 13, 64, 1000 };
#define NCHUNKINGS (sizeof chunkings / sizeof chunkings[0])

/* Check a stream yields exactly the expected events under every chunking.
 * fail_at > 0: when fed one byte at a time the last event (an error) must
 * appear after exactly that many bytes. */
static void check_stream_cfg(int line, const uint8_t *stream, size_t len, cfg c,
                             const expect *exp, int nexp, size_t fail_at)
{
    for (size_t k = 0; k < NCHUNKINGS; k++) {
        int before = rd_test_failures;
        run o;
        run_stream(stream, len, chunkings[k], c, &o);
        RD_CHECK_EQ_INT(o.n, nexp);
        for (int i = 0; i < nexp && i < o.n; i++) {
            const rec *e = &o.ev[i];
            const expect *x = &exp[i];
            RD_CHECK_EQ_INT(e->type, x->type);
            switch (x->type) {
            case WS_EV_MESSAGE:
                RD_CHECK_EQ_INT(e->opcode, x->opcode);
                RD_CHECK_EQ_INT(e->compressed, x->compressed);
                RD_CHECK_MEM(e->data, e->len, x->data, x->len);
                break;
            case WS_EV_PING:
            case WS_EV_PONG:
                RD_CHECK_MEM(e->data, e->len, x->data, x->len);
                break;
            case WS_EV_CLOSE:
                RD_CHECK_EQ_INT(e->close_code, x->code);
                RD_CHECK_MEM(e->reason, e->reason_len, x->data, x->len);
                break;
            case WS_EV_ERROR:
                RD_CHECK_EQ_INT(e->close_code, x->code);
                RD_CHECK_STR(e->reason, e->reason_len, x->reason);
                break;
            default:
                break;
            }
        }
        if (fail_at && chunkings[k] == 1 && o.n > 0)
            RD_CHECK_EQ_INT(o.ev[o.n - 1].at, fail_at);
        if (nexp > 0 && exp[nexp - 1].type != WS_EV_ERROR && exp[nexp - 1].type != WS_EV_CLOSE)
            RD_CHECK_EQ_INT(o.consumed, len);
        if (rd_test_failures != before)
            fprintf(stderr, "  (stream at line %d, chunk size %zu)\n", line, chunkings[k]);
        run_free(&o);
    }
}

#define CHECK_STREAM(s, exp, n) \
    check_stream_cfg(__LINE__, (s)->p, (s)->len, cfg_default, (exp), (n), 0)
#define CHECK_STREAM_CFG(s, c, exp, n, at) \
    check_stream_cfg(__LINE__, (s)->p, (s)->len, (c), (exp), (n), (at))

/* ---- UTF-8 ------------------------------------------------------------ */

/* Reference: index of the first byte that makes b[0..n) impossible as a
 * prefix of valid UTF-8, or -1. Works on code point intervals rather than
 * byte tables so it shares nothing with the DFA. *complete: ends on a
 * boundary. */
static long ref_utf8(const uint8_t *b, size_t n, bool *complete)
{
    size_t i = 0;
    *complete = true;
    while (i < n) {
        uint8_t c = b[i];
        size_t need;
        uint32_t lo, hi, cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC0 && c < 0xE0) {
            need = 2; lo = 0x80; hi = 0x7FF; cp = c & 0x1F;
        } else if (c >= 0xE0 && c < 0xF0) {
            need = 3; lo = 0x800; hi = 0xFFFF; cp = c & 0x0F;
        } else if (c >= 0xF0 && c < 0xF8) {
            need = 4; lo = 0x10000; hi = 0x10FFFF; cp = c & 0x07;
        } else {
            return (long)i;
        }
        for (size_t j = 0; j < need; j++) {
            if (j > 0) {
                if (i + j >= n) {
                    *complete = false;
                    return -1;
                }
                if ((b[i + j] & 0xC0) != 0x80)
                    return (long)(i + j);
                cp = cp << 6 | (b[i + j] & 0x3F);
            }
            unsigned rem = (unsigned)(need - 1 - j) * 6;
            uint32_t mn = cp << rem, mx = (cp << rem) | ((1u << rem) - 1);
            if (mx < lo || mn > hi || (mn >= 0xD800 && mx <= 0xDFFF))
                return (long)(i + j);
        }
        i += need;
    }
    return -1;
}

/* Index where ws_utf8 fails feeding byte by byte (-1: never). */
static long dfa_fail_at(const uint8_t *b, size_t n, bool *complete)
{
    ws_utf8 u;
    ws_utf8_init(&u);
    for (size_t i = 0; i < n; i++)
        if (ws_utf8_feed(&u, b + i, 1) < 0) {
            if (ws_utf8_feed(&u, (const uint8_t *)"a", 1) == 0 || ws_utf8_complete(&u))
                return -2; /* must stay failed */
            return (long)i;
        }
    *complete = ws_utf8_complete(&u);
    return -1;
}

typedef struct u8case {
    const char *s;
    size_t n;       /* 0: strlen */
    long fail_at;   /* -1: valid prefix */
    bool complete;
} u8case;

static void test_utf8_kuhn(void)
{
    static const u8case cases[] = {
        { "", 0, -1, true },
        { "hello world", 0, -1, true },
        { "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 0, -1, true }, /* κόσμε */
        /* first possible sequence of each length */
        { "\x00", 1, -1, true },
        { "\xc2\x80", 0, -1, true },
        { "\xe0\xa0\x80", 0, -1, true },
        { "\xf0\x90\x80\x80", 0, -1, true },
        /* last possible sequence of each length */
        { "\x7f", 0, -1, true },
        { "\xdf\xbf", 0, -1, true },
        { "\xef\xbf\xbf", 0, -1, true },
        { "\xf4\x8f\xbf\xbf", 0, -1, true },        /* U+10FFFF */
        /* other boundaries */
        { "\xed\x9f\xbf", 0, -1, true },            /* U+D7FF */
        { "\xee\x80\x80", 0, -1, true },            /* U+E000 */
        { "\xef\xbf\xbd", 0, -1, true },            /* U+FFFD */
        { "\xef\xbf\xbe", 0, -1, true },            /* U+FFFE: noncharacter, still valid */
        { "\xf4\x90\x80\x80", 0, 1, false },        /* U+110000 */
        { "\xf7\xbf\xbf\xbf", 0, 0, false },
        { "\xf5", 0, 0, false },
        { "\xfe", 0, 0, false },
        { "\xff", 0, 0, false },
        { "\xf8\x88\x80\x80\x80", 0, 0, false },   /* 5-byte form */
        { "\xfc\x84\x80\x80\x80\x80", 0, 0, false },/* 6-byte form */
        /* unexpected continuation bytes */
        { "\x80", 0, 0, false },
        { "\xbf", 0, 0, false },
        { "a\x80\xbf", 0, 1, false },
        { "\xc2\x80\x80", 0, 2, false },
        /* lonely start characters */
        { "\xc2 ", 0, 1, false },
        { "\xe1 ", 0, 1, false },
        { "\xe1\x80 ", 0, 2, false },
        { "\xf1\x80\x80 ", 0, 3, false },
        /* truncated sequences: valid prefixes, not complete */
        { "\xc2", 0, -1, false },
        { "\xe0\xa0", 0, -1, false },
        { "\xf0\x90\x80", 0, -1, false },
        { "\xf4\x8f", 0, -1, false },
        { "\xed", 0, -1, false },
        /* overlongs */
        { "\xc0\xaf", 0, 0, false },
        { "\xc1\xbf", 0, 0, false },
        { "\xe0\x80\xaf", 0, 1, false },
        { "\xe0\x9f\xbf", 0, 1, false },
        { "\xf0\x80\x80\xaf", 0, 1, false },
        { "\xf0\x8f\xbf\xbf", 0, 1, false },
        { "\xc0\x80", 0, 0, false },
        { "\xe0\x80\x80", 0, 1, false },
        /* surrogates */
        { "\xed\xa0\x80", 0, 1, false },            /* U+D800 */
        { "\xed\xad\xbf", 0, 1, false },
        { "\xed\xae\x80", 0, 1, false },
        { "\xed\xaf\xbf", 0, 1, false },
        { "\xed\xb0\x80", 0, 1, false },
        { "\xed\xbe\x80", 0, 1, false },
        { "\xed\xbf\xbf", 0, 1, false },            /* U+DFFF */
        { "\xed\xa0\x80\xed\xb0\x80", 0, 1, false },/* paired */
        /* fast path: the bad byte is deep in ASCII words */
        { "0123456789abcdef0123456789abcdef01234\xff", 0, 37, false },
        { "0123456789abcdef0123456789abcdef\xc3\xa9" "0123456789abcdef", 0, -1, true },
        { "0123456789abcdef0123\xe9" "abcdefgh0123456789", 0, 21, false },
        { "\xce\xba\xce\xba\xce\xba\xce\xba" "abcdefgh" "\xce\xba" "abcdefghijklmnop\xce", 0, -1, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const u8case *c = &cases[i];
        size_t n = c->n ? c->n : strlen(c->s);
        const uint8_t *b = (const uint8_t *)c->s;
        int before = rd_test_failures;
        bool complete = false, rcomplete = false;
        long got = dfa_fail_at(b, n, &complete);
        long ref = ref_utf8(b, n, &rcomplete);
        RD_CHECK_EQ_INT(got, c->fail_at);
        RD_CHECK_EQ_INT(ref, c->fail_at);
        if (c->fail_at < 0) {
            RD_CHECK_EQ_INT(complete, c->complete);
            RD_CHECK_EQ_INT(rcomplete, c->complete);
        }
        RD_CHECK_EQ_INT(ws_utf8_valid(b, n), c->fail_at < 0 && c->complete);
        ws_utf8 u;
        ws_utf8_init(&u);
        RD_CHECK_EQ_INT(ws_utf8_feed(&u, b, n), c->fail_at < 0 ? 0 : -1);
        if (rd_test_failures != before)
            fprintf(stderr, "  (utf8 case %zu)\n", i);
    }
}

/* Exhaustive over short sequences against the interval reference. */
static void test_utf8_exhaustive(void)
{
    static const uint8_t pick[] = { 0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                    0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF };
    const size_t np = sizeof pick;
    int bad = 0;
    uint8_t b[4];

    for (unsigned a = 0; a < 256; a++)
        for (unsigned c = 0; c < 256; c++) {
            b[0] = (uint8_t)a;
            b[1] = (uint8_t)c;
            for (size_t k = 0; k < np; k++) {
                b[2] = pick[k];
                for (size_t m = 0; m < np; m++) {
                    if (a < 0xC0 && (k || m))
                        continue;
                    if (a < 0xF0 && m)
                        continue;
                    b[3] = pick[m];
                    size_t n = a < 0xC0 ? 2 : a < 0xF0 ? 3 : 4;
                    bool c1 = false, c2 = false;
                    long x = dfa_fail_at(b, n, &c1), y = ref_utf8(b, n, &c2);
                    if (x != y || (x < 0 && c1 != c2))
                        bad++;
                    if (ws_utf8_valid(b, n) != (y < 0 && c2))
                        bad++;
                }
            }
        }
    RD_CHECK_EQ_INT(bad, 0);
}

static void test_utf8_incremental_chunks(void)
{
    /* Every split of a mixed string into two feeds gives the same answer. */
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z0123456789\xf4\x8f\xbf\xbf!";
    size_t n = strlen(s);
    for (size_t i = 0; i <= n; i++) {
        ws_utf8 u;
        ws_utf8_init(&u);
        RD_CHECK_EQ_INT(ws_utf8_feed(&u, (const uint8_t *)s, i), 0);
        RD_CHECK_EQ_INT(ws_utf8_feed(&u, (const uint8_t *)s + i, n - i), 0);
        RD_CHECK(ws_utf8_complete(&u));
    }
}

/* ---- close codes and payloads ------------------------------------------ */

static void test_close_code_valid(void)
{
    static const unsigned ok[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                   1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999 };
    static const unsigned no[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100,
                                   2000, 2999, 5000, 65535 };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        RD_CHECK(ws_close_code_valid(ok[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        RD_CHECK(!ws_close_code_valid(no[i]));
    int nvalid = 0;
    for (unsigned c = 0; c < 70000; c++)
        nvalid += ws_close_code_valid(c);
    RD_CHECK_EQ_INT(nvalid, 4 + 8 + 2000);

    /* and through the reader: valid ones are reported, invalid ones fail 1002 */
    for (unsigned c = 0; c < 5100; c++) {
        if (c > 1020 && c < 2990 && c % 97)
            continue;
        rd_buf s = RD_BUF_INIT;
        uint8_t pl[2] = { (uint8_t)(c >> 8), (uint8_t)c };
        sb_frame(&s, 0x88, pl, 2);
        run o;
        run_stream(s.p, s.len, 0, cfg_default, &o);
        RD_CHECK_EQ_INT(o.n, 1);
        if (ws_close_code_valid(c)) {
            RD_CHECK_EQ_INT(o.ev[0].type, WS_EV_CLOSE);
            RD_CHECK_EQ_INT(o.ev[0].close_code, c);
            RD_CHECK_EQ_INT(o.ev[0].reason_len, 0);
        } else {
            RD_CHECK_EQ_INT(o.ev[0].type, WS_EV_ERROR);
            RD_CHECK_EQ_INT(o.ev[0].close_code, 1002);
            RD_CHECK_STR(o.ev[0].reason, o.ev[0].reason_len, "invalid close code");
        }
        run_free(&o);
        rd_buf_free(&s);
    }
}

static void check_close_payload(const char *reason, size_t expect_reason_len)
{
    uint8_t out[125];
    size_t n = ws_close_payload(out, 1001, reason, strlen(reason));
    RD_CHECK_EQ_INT(n, 2 + expect_reason_len);
    RD_CHECK(n <= 125);
    RD_CHECK_EQ_INT(out[0], 1001 >> 8);
    RD_CHECK_EQ_INT(out[1], 1001 & 0xFF);
    RD_CHECK_MEM(out + 2, n - 2, reason, expect_reason_len);
    RD_CHECK(ws_utf8_valid(out + 2, n - 2));

    /* the payload we build is one our reader accepts */
    rd_buf s = RD_BUF_INIT;
    sb_frame(&s, 0x88, out, n);
    expect x[] = { EX_CLOSE(1001, reason, expect_reason_len) };
    CHECK_STREAM(&s, x, 1);
    rd_buf_free(&s);
}

static void test_close_payload(void)
{
    uint8_t out[125];
    char big[400];

    RD_CHECK_EQ_INT(ws_close_payload(out, 0, "ignored", 7), 0);
    RD_CHECK_EQ_INT(ws_close_payload(out, 1000, NULL, 0), 2);
    RD_CHECK_EQ_INT(out[0], 0x03);
    RD_CHECK_EQ_INT(out[1], 0xE8);
    check_close_payload("", 0);
    check_close_payload("bye", 3);

    memset(big, 'x', 123);
    big[123] = 0;
    check_close_payload(big, 123);
    memset(big, 'x', 200);
    big[200] = 0;
    check_close_payload(big, 123);

    /* 2-byte characters: byte 123 is a continuation byte, cut before it */
    big[0] = 0;
    for (int i = 0; i < 100; i++)
        strcat(big, "\xc3\xa9");
    check_close_payload(big, 122);
    /* shifted by one: the cut falls on a boundary */
    big[0] = 0;
    strcat(big, "a");
    for (int i = 0; i < 100; i++)
        strcat(big, "\xc3\xa9");
    check_close_payload(big, 123);
    /* 3- and 4-byte characters */
    big[0] = 0;
    for (int i = 0; i < 60; i++)
        strcat(big, "\xe2\x82\xac");
    check_close_payload(big, 123);
    big[0] = 0;
    strcat(big, "ab");
    for (int i = 0; i < 60; i++)
        strcat(big, "\xe2\x82\xac");
    check_close_payload(big, 122);
    big[0] = 0;
    for (int i = 0; i < 40; i++)
        strcat(big, "\xf0\x9f\x98\x80");
    check_close_payload(big, 120);
    big[0] = 0;
    strcat(big, "abc");
    for (int i = 0; i < 40; i++)
        strcat(big, "\xf0\x9f\x98\x80");
    check_close_payload(big, 123);
}

/* ---- header writer, mask ---------------------------------------------- */

static void test_frame_header_roundtrip(void)
{
    static const uint64_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 1u << 20,
                                     UINT64_C(1) << 32, (UINT64_C(1) << 63) - 1 };
    static const int ops[] = { WS_OP_CONT, WS_OP_TEXT, WS_OP_BINARY, WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG };
    const uint8_t key[4] = { 1, 2, 3, 4 };

    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
            for (int m = 0; m < 2; m++)
                for (int f = 0; f < 4; f++) {
                    uint8_t h[14];
                    bool fin = f & 1, rsv1 = (f & 2) != 0;
                    uint64_t len = lens[i];
                    size_t n = ws_frame_header(h, fin, rsv1, ops[o], len, m ? key : NULL);
                    size_t ext = len < 126 ? 0 : len <= 0xFFFF ? 2 : 8;
                    RD_CHECK_EQ_INT(n, 2 + ext + (m ? 4 : 0));
                    RD_CHECK_EQ_INT(h[0] >> 7, fin);
                    RD_CHECK_EQ_INT((h[0] >> 6) & 1, rsv1);
                    RD_CHECK_EQ_INT(h[0] & 0x30, 0);
                    RD_CHECK_EQ_INT(h[0] & 0x0F, ops[o]);
                    RD_CHECK_EQ_INT(h[1] >> 7, m);
                    uint64_t got = h[1] & 0x7F;
                    if (got == 126)
                        got = (uint64_t)h[2] << 8 | h[3];
                    else if (got == 127) {
                        got = 0;
                        for (int b = 0; b < 8; b++)
                            got = got << 8 | h[2 + b];
                    }
                    RD_CHECK(got == len);
                    if (m)
                        RD_CHECK_MEM(h + 2 + ext, 4, key, 4);
                }

    /* the reader parses what the writer writes */
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t h[14];
        size_t n = ws_frame_header(h, true, false, WS_OP_BINARY, lens[i], key);
        for (size_t step = 1; step <= n; step = step == 1 ? n : n + 1) {
            ws_reader r;
            ws_event ev;
            ws_reader_init(&r, NOLIMIT, NOLIMIT);
            size_t off = 0;
            while (off < n) {
                size_t k = n - off < step ? n - off : step;
                size_t got = ws_reader_feed(&r, h + off, k, &ev);
                off += got;
                if (lens[i] == 0) {
                    if (off == n)
                        RD_CHECK_EQ_INT(ev.type, WS_EV_MESSAGE);
                } else {
                    RD_CHECK_EQ_INT(ev.type, WS_EV_NONE);
                }
                if (got == 0)
                    break;
            }
            RD_CHECK_EQ_INT(off, n);
            if (lens[i])
                RD_CHECK(r.frame_left == lens[i]);
            ws_reader_free(&r);
        }
    }
}

static void test_mask(void)
{
    uint8_t data[300], ref[300];
    const uint8_t key[4] = { 0x12, 0x34, 0x56, 0x78 };
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len < 140; len++)
            for (size_t pos = 0; pos < 4; pos++) {
                for (size_t i = 0; i < sizeof data; i++)
                    data[i] = ref[i] = (uint8_t)(i * 7 + 3);
                for (size_t i = 0; i < len; i++)
                    ref[off + i] ^= key[(pos + i) & 3];
                ws_mask(data + off, len, key, pos);
                RD_CHECK(memcmp(data, ref, sizeof data) == 0);
            }
    /* masking in two pieces equals masking at once */
    for (size_t split = 0; split <= 100; split++) {
        for (size_t i = 0; i < 100; i++)
            data[i] = ref[i] = (uint8_t)i;
        ws_mask(ref, 100, key, 0);
        ws_mask(data, split, key, 0);
        ws_mask(data + split, 100 - split, key, split & 3);
        RD_CHECK(memcmp(data, ref, 100) == 0);
    }
}

/* ---- reader: messages ------------------------------------------------- */

static uint8_t *pattern(size_t n, bool text)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = text ? (uint8_t)('a' + i % 26) : (uint8_t)(i * 131 + (i >> 8));
    return p;
}

static void test_lengths(void)
{
    static const size_t lens[] = { 0, 1, 5, 124, 125, 126, 127, 1000, 65535, 65536, 70001 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (int text = 0; text < 2; text++) {
            size_t n = lens[i];
            uint8_t *p = pattern(n, text);
            rd_buf s = RD_BUF_INIT;
            sb_frame(&s, 0x80 | (text ? WS_OP_TEXT : WS_OP_BINARY), p, n);
            RD_CHECK_EQ_INT(s.len, n + 2 + 4 + (n < 126 ? 0 : n <= 0xFFFF ? 2 : 8));
            /* two messages back to back */
            sb_frame(&s, 0x82, "end", 3);
            expect x[] = { EX_MSG(text ? WS_OP_TEXT : WS_OP_BINARY, p, n),
                           EX_MSG(WS_OP_BINARY, "end", 3) };
            if (n > 2000) {
                /* chunkings are costly on big frames: whole and 1000-byte pieces */
                for (size_t k = 0; k < 2; k++) {
                    run o;
                    run_stream(s.p, s.len, k ? 1000 : 0, cfg_default, &o);
                    RD_CHECK_EQ_INT(o.n, 2);
                    RD_CHECK_MEM(o.ev[0].data, o.ev[0].len, p, n);
                    RD_CHECK_EQ_INT(o.ev[0].zero_copy, k == 0);
                    RD_CHECK_MEM(o.ev[1].data, o.ev[1].len, "end", 3);
                    run_free(&o);
                }
            } else {
                CHECK_STREAM(&s, x, 2);
            }
            free(p);
            rd_buf_free(&s);
        }
}

static void test_non_minimal_length(void)
{
    /* RFC 6455 asks senders for the minimal form; readers accept others. */
    rd_buf s = RD_BUF_INIT;
    const uint8_t hdr16[] = { 0x82, 0x80 | 126, 0x00, 0x03, 0, 0, 0, 0 };
    const uint8_t hdr64[] = { 0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0 };
    sb_raw(&s, hdr16, sizeof hdr16);
    sb_raw(&s, "abc", 3);
    sb_raw(&s, hdr64, sizeof hdr64);
    sb_raw(&s, "def", 3);
    expect x[] = { EX_MSG(WS_OP_BINARY, "abc", 3), EX_MSG(WS_OP_BINARY, "def", 3) };
    CHECK_STREAM(&s, x, 2);
    rd_buf_free(&s);
}

static void test_masking_keys(void)
{
    /* every key byte position matters; a zero key is legal */
    static const uint8_t keys[][4] = { { 0, 0, 0, 0 }, { 0xFF, 0xFF, 0xFF, 0xFF },
                                       { 1, 0, 0, 0 }, { 0, 0, 0, 0x80 } };
    uint8_t *p = pattern(77, true);
    for (size_t k = 0; k < 4; k++) {
        rd_buf s = RD_BUF_INIT;
        uint8_t h[14], body[77];
        size_t n = ws_frame_header(h, true, false, WS_OP_TEXT, 77, keys[k]);
        memcpy(body, p, 77);
        ws_mask(body, 77, keys[k], 0);
        sb_raw(&s, h, n);
        sb_raw(&s, body, 77);
        expect x[] = { EX_MSG(WS_OP_TEXT, p, 77) };
        CHECK_STREAM(&s, x, 1);
        rd_buf_free(&s);
    }
    free(p);
}

static void test_zero_copy(void)
{
    rd_buf s = RD_BUF_INIT;
    run o;
    sb_frame(&s, 0x81, "hello", 5);
    run_stream(s.p, s.len, 0, cfg_default, &o);
    RD_CHECK_EQ_INT(o.n, 1);
    RD_CHECK(o.ev[0].zero_copy);
    RD_CHECK_EQ_INT(o.max_memory, 0);   /* nothing allocated */
    run_free(&o);
    /* split: assembled in the reader */
    run_stream(s.p, s.len, 8, cfg_default, &o);
    RD_CHECK_EQ_INT(o.n, 1);
    RD_CHECK(!o.ev[0].zero_copy);
    run_free(&o);
    rd_buf_free(&s);

    /* fragmented: assembled even when all in one buffer */
    sb_frame(&s, 0x01, "hel", 3);
    sb_frame(&s, 0x80, "lo", 2);
    run_stream(s.p, s.len, 0, cfg_default, &o);
    RD_CHECK_EQ_INT(o.n, 1);
    RD_CHECK(!o.ev[0].zero_copy);
    RD_CHECK_MEM(o.ev[0].data, o.ev[0].len, "hello", 5);
    run_free(&o);
    rd_buf_free(&s);

    /* feed returns right after each event; the data points into the buffer */
    uint8_t buf[64];
    size_t n = 0;
    ws_reader r;
    ws_event ev;
    sb_frame(&s, 0x82, "one", 3);
    sb_frame(&s, 0x81, "two", 3);
    sb_frame(&s, 0x89, "p", 1);
    memcpy(buf, s.p, s.len);
    n = s.len;
    ws_reader_init(&r, NOLIMIT, NOLIMIT);
    size_t off = ws_reader_feed(&r, buf, n, &ev);
    RD_CHECK_EQ_INT(off, 9);
    RD_CHECK_EQ_INT(ev.type, WS_EV_MESSAGE);
    RD_CHECK(ev.data == buf + 6);
    RD_CHECK_STR(ev.data, ev.len, "one");
    off += ws_reader_feed(&r, buf + off, n - off, &ev);
    RD_CHECK_EQ_INT(off, 18);
    RD_CHECK(ev.data == buf + 15);
    RD_CHECK_EQ_INT(ev.opcode, WS_OP_TEXT);
    RD_CHECK_STR(ev.data, ev.len, "two");
    off += ws_reader_feed(&r, buf + off, n - off, &ev);
    RD_CHECK_EQ_INT(off, n);
    RD_CHECK_EQ_INT(ev.type, WS_EV_PING);
    RD_CHECK_STR(ev.data, ev.len, "p");
    RD_CHECK_EQ_INT(ws_reader_feed(&r, buf + off, 0, &ev), 0);
    RD_CHECK_EQ_INT(ev.type, WS_EV_NONE);
    RD_CHECK_EQ_INT(ws_reader_memory(&r), 0);
    ws_reader_free(&r);
    rd_buf_free(&s);
}

static void test_fragmentation_interleaved(void)
{
    rd_buf s = RD_BUF_INIT;
    sb_frame(&s, 0x01, "Hel", 3);
    sb_frame(&s, 0x89, "ping!", 5);
    sb_frame(&s, 0x00, "lo, ", 4);
    sb_frame(&s, 0x8A, "", 0);
    sb_frame(&s, 0x00, "", 0);
    sb_frame(&s, 0x89, "x", 1);
    sb_frame(&s, 0x80, "world", 5);
    sb_frame(&s, 0x02, "\x00\x01", 2);
    sb_frame(&s, 0x8A, "pong", 4);
    sb_frame(&s, 0x80, "\xff", 1);
    sb_frame(&s, 0x88, "\x03\xe8" "done", 6);
    expect x[] = {
        EX_PING("ping!", 5),
        EX_PONG("", 0),
        EX_PING("x", 1),
        EX_TEXT("Hello, world"),
        EX_PONG("pong", 4),
        EX_MSG(WS_OP_BINARY, "\x00\x01\xff", 3),
        EX_CLOSE(1000, "done", 4),
    };
    CHECK_STREAM(&s, x, 7);
    rd_buf_free(&s);

    /* many fragments, pings between each */
    uint8_t *p = pattern(3000, true);
    for (size_t i = 0; i < 3000; i += 100) {
        sb_frame(&s, i == 0 ? WS_OP_TEXT : WS_OP_CONT | (i + 100 == 3000 ? 0x80 : 0), p + i, 100);
        sb_frame(&s, 0x89, "", 0);
    }
    expect y[61];
    for (int i = 0; i < 30; i++) {
        expect pe = EX_PING("", 0);
        y[i] = pe;
    }
    expect me = EX_MSG(WS_OP_TEXT, p, 3000);
    y[29] = me;
    expect pe = EX_PING("", 0);
    y[30] = pe;
    CHECK_STREAM(&s, y, 31);
    free(p);
    rd_buf_free(&s);
}

static void test_after_close(void)
{
    rd_buf s = RD_BUF_INIT;
    ws_reader r;
    ws_event ev;
    sb_frame(&s, 0x88, "", 0);
    sb_frame(&s, 0x81, "late", 4);
    ws_reader_init(&r, NOLIMIT, NOLIMIT);
    size_t n = ws_reader_feed(&r, s.p, s.len, &ev);
    RD_CHECK_EQ_INT(n, 6);
    RD_CHECK_EQ_INT(ev.type, WS_EV_CLOSE);
    RD_CHECK_EQ_INT(ev.close_code, 1005);
    RD_CHECK_EQ_INT(ev.reason_len, 0);
    /* anything after a close is discarded */
    RD_CHECK_EQ_INT(ws_reader_feed(&r, s.p + n, s.len - n, &ev), s.len - n);
    RD_CHECK_EQ_INT(ev.type, WS_EV_NONE);
    ws_reader_free(&r);
    rd_buf_free(&s);
}

static void test_zero_length(void)
{
    rd_buf s = RD_BUF_INIT;
    sb_frame(&s, 0x81, "", 0);
    sb_frame(&s, 0x82, "", 0);
    sb_frame(&s, 0x89, "", 0);
    sb_frame(&s, 0x8A, "", 0);
    sb_frame(&s, 0x01, "", 0);
    sb_frame(&s, 0x00, "", 0);
    sb_frame(&s, 0x89, "", 0);
    sb_frame(&s, 0x80, "", 0);
    sb_frame(&s, 0x02, "", 0);
    sb_frame(&s, 0x80, "", 0);
    sb_frame(&s, 0x01, "", 0);
    sb_frame(&s, 0x80, "ok", 2);
    sb_frame(&s, 0x88, "", 0);
    expect x[] = {
        EX_TEXT(""), EX_MSG(WS_OP_BINARY, "", 0), EX_PING("", 0), EX_PONG("", 0),
        EX_PING("", 0), EX_TEXT(""), EX_MSG(WS_OP_BINARY, "", 0), EX_TEXT("ok"),
        EX_CLOSE(1005, "", 0),
    };
    CHECK_STREAM(&s, x, 9);
    rd_buf_free(&s);
}

static void test_control_max(void)
{
    uint8_t p[125];
    memset(p, 'z', sizeof p);
    rd_buf s = RD_BUF_INIT;
    sb_frame(&s, 0x89, p, 125);
    sb_frame(&s, 0x8A, p, 125);
    memcpy(p, "\x0f\xa0", 2);
    sb_frame(&s, 0x88, p, 125);
    expect x[] = { EX_PING(p + 2, 0), EX_PONG(p + 2, 0), EX_CLOSE(4000, p + 2, 123) };
    uint8_t z[125];
    memset(z, 'z', sizeof z);
    x[0].data = z;
    x[0].len = 125;
    x[1].data = z;
    x[1].len = 125;
    CHECK_STREAM(&s, x, 3);
    rd_buf_free(&s);
}

static void test_pmd(void)
{
    cfg c = cfg_default;
    c.pmd = true;
    rd_buf s = RD_BUF_INIT;
    /* compressed text: not validated here, flagged compressed */
    sb_frame(&s, 0xC1, "\xff\xfe\x00", 3);
    sb_frame(&s, 0x41, "\xc0", 1);
    sb_frame(&s, 0x89, "", 0);
    sb_frame(&s, 0x80, "\xed\xa0", 2);
    sb_frame(&s, 0xC2, "bin", 3);
    sb_frame(&s, 0x81, "plain", 5);
    expect x[] = {
        { WS_EV_MESSAGE, WS_OP_TEXT, "\xff\xfe\x00", 3, 0, NULL, true },
        EX_PING("", 0),
        { WS_EV_MESSAGE, WS_OP_TEXT, "\xc0\xed\xa0", 3, 0, NULL, true },
        { WS_EV_MESSAGE, WS_OP_BINARY, "bin", 3, 0, NULL, true },
        EX_TEXT("plain"),
    };
    CHECK_STREAM_CFG(&s, c, x, 5, 0);
    rd_buf_free(&s);

    /* uncompressed messages are still validated with pmd on */
    sb_frame(&s, 0x81, "\xff", 1);
    expect y[] = { EX_ERR(1007, "invalid UTF-8 in text message") };
    CHECK_STREAM_CFG(&s, c, y, 1, 7);
    rd_buf_free(&s);

    /* RSV1 only on the first frame of a data message */
    size_t at;
    sb_frame(&s, 0x41, "a", 1);
    at = s.len + 1;
    sb_frame(&s, 0xC0, "b", 1);
    expect z[] = { EX_ERR(1002, "reserved bits set") };
    CHECK_STREAM_CFG(&s, c, z, 1, at);
    rd_buf_free(&s);
    sb_frame(&s, 0xC9, "", 0);
    CHECK_STREAM_CFG(&s, c, z, 1, 1);
    rd_buf_free(&s);
    sb_frame(&s, 0xC8, "", 0);
    CHECK_STREAM_CFG(&s, c, z, 1, 1);
    rd_buf_free(&s);
    /* without pmd, RSV1 is an error */
    sb_frame(&s, 0xC1, "a", 1);
    CHECK_STREAM_CFG(&s, cfg_default, z, 1, 1);
    rd_buf_free(&s);
}

/* ---- reader: errors --------------------------------------------------- */

static void check_error(int line, const rd_buf *s, cfg c, uint16_t code, const char *why, size_t at)
{
    expect x = EX_ERR(code, why);
    check_stream_cfg(line, s->p, s->len, c, &x, 1, at);
}

#define CHECK_ERR(s, c, code, why, at) check_error(__LINE__, (s), (c), (code), (why), (at))

static void test_errors_header(void)
{
    rd_buf s = RD_BUF_INIT;
    const cfg d = cfg_default;

    /* unmasked client frame: fails at the second byte */
    sb_raw(&s, "\x81\x05hello", 7);
    CHECK_ERR(&s, d, 1002, "unmasked client frame", 2);
    rd_buf_free(&s);
    sb_raw(&s, "\x89\x00", 2);
    CHECK_ERR(&s, d, 1002, "unmasked client frame", 2);
    rd_buf_free(&s);

    /* reserved bits */
    static const unsigned rsv[] = { 0xA1, 0x91, 0xB2, 0xC1, 0xE1, 0xF1, 0xA9, 0x98 };
    for (size_t i = 0; i < sizeof rsv / sizeof rsv[0]; i++) {
        sb_frame(&s, rsv[i], "x", 1);
        CHECK_ERR(&s, d, 1002, "reserved bits set", 1);
        rd_buf_free(&s);
    }

    /* unknown opcodes */
    static const unsigned ops[] = { 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        sb_frame(&s, 0x80 | ops[i], "x", 1);
        CHECK_ERR(&s, d, 1002, "unknown opcode", 1);
        rd_buf_free(&s);
        sb_frame(&s, ops[i], "x", 1);
        CHECK_ERR(&s, d, 1002, "unknown opcode", 1);
        rd_buf_free(&s);
    }

    /* control frames */
    static const unsigned ctl[] = { 0x08, 0x09, 0x0A };
    for (size_t i = 0; i < 3; i++) {
        sb_frame(&s, ctl[i], "", 0);
        CHECK_ERR(&s, d, 1002, "fragmented control frame", 1);
        rd_buf_free(&s);
        uint8_t big[126];
        memset(big, 'a', sizeof big);
        big[0] = 0x03;
        big[1] = 0xE8;
        sb_frame(&s, 0x80 | ctl[i], big, 126);
        CHECK_ERR(&s, d, 1002, "control frame too long", 2);
        rd_buf_free(&s);
        /* 7-bit length 127 (64-bit form) is too long too */
        sb_raw(&s, (uint8_t[]){ (uint8_t)(0x80 | ctl[i]), 0xFF }, 2);
        CHECK_ERR(&s, d, 1002, "control frame too long", 2);
        rd_buf_free(&s);
        /* a control frame inside a fragmented message still must be FIN */
        sb_frame(&s, 0x01, "a", 1);
        size_t at = s.len + 1;
        sb_frame(&s, ctl[i], "", 0);
        CHECK_ERR(&s, d, 1002, "fragmented control frame", at);
        rd_buf_free(&s);
    }

    /* sequencing */
    sb_frame(&s, 0x80, "x", 1);
    CHECK_ERR(&s, d, 1002, "continuation without message", 1);
    rd_buf_free(&s);
    sb_frame(&s, 0x00, "x", 1);
    CHECK_ERR(&s, d, 1002, "continuation without message", 1);
    rd_buf_free(&s);
    sb_frame(&s, 0x81, "a", 1);
    size_t at = s.len + 1;
    sb_frame(&s, 0x80, "x", 1);   /* the message before was complete */
    {
        expect x[] = { EX_TEXT("a"), EX_ERR(1002, "continuation without message") };
        check_stream_cfg(__LINE__, s.p, s.len, d, x, 2, at);
    }
    rd_buf_free(&s);
    static const unsigned starts[] = { 0x01, 0x81, 0x02, 0x82 };
    for (size_t i = 0; i < 4; i++) {
        sb_frame(&s, 0x01, "a", 1);
        sb_frame(&s, 0x89, "", 0);
        at = s.len + 1;
        sb_frame(&s, starts[i], "b", 1);
        expect x[] = { EX_PING("", 0), EX_ERR(1002, "expected continuation frame") };
        check_stream_cfg(__LINE__, s.p, s.len, d, x, 2, at);
        rd_buf_free(&s);
    }

    /* 64-bit length with the top bit set */
    const uint8_t top[] = { 0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
    sb_raw(&s, top, sizeof top);
    CHECK_ERR(&s, d, 1002, "invalid frame length", 10);
    rd_buf_free(&s);
    const uint8_t top2[] = { 0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
    sb_raw(&s, top2, sizeof top2);
    CHECK_ERR(&s, d, 1002, "invalid frame length", 10);
    rd_buf_free(&s);
}

static void test_errors_limits(void)
{
    rd_buf s = RD_BUF_INIT;
    uint8_t *p = pattern(70000, false);
    cfg c = { 100, 250, false };

    /* frame limit: equal passes, one more fails as soon as the length is known */
    sb_frame(&s, 0x82, p, 100);
    {
        expect x[] = { EX_MSG(WS_OP_BINARY, p, 100) };
        CHECK_STREAM_CFG(&s, c, x, 1, 0);
    }
    rd_buf_free(&s);
    sb_frame(&s, 0x82, p, 101);
    CHECK_ERR(&s, c, 1009, "frame too large", 2);
    rd_buf_free(&s);
    c.max_frame = 1000;
    c.max_message = 100000;
    sb_frame(&s, 0x82, p, 1001);
    CHECK_ERR(&s, c, 1009, "frame too large", 4);
    rd_buf_free(&s);
    c.max_frame = 65535;
    sb_frame(&s, 0x82, p, 65536);
    CHECK_ERR(&s, c, 1009, "frame too large", 10);
    rd_buf_free(&s);

    /* message limit across fragments, checked at each fragment's header */
    c.max_frame = 100;
    c.max_message = 250;
    sb_frame(&s, 0x02, p, 100);
    sb_frame(&s, 0x89, "", 0);
    sb_frame(&s, 0x00, p + 100, 100);
    sb_frame(&s, 0x80, p + 200, 50);
    {
        expect x[] = { EX_PING("", 0), EX_MSG(WS_OP_BINARY, p, 250) };
        CHECK_STREAM_CFG(&s, c, x, 2, 0);
        run o;
        run_stream(s.p, s.len, 1, c, &o);
        RD_CHECK(o.max_memory <= 250);   /* never beyond max_message */
        run_free(&o);
    }
    rd_buf_free(&s);
    sb_frame(&s, 0x02, p, 100);
    sb_frame(&s, 0x00, p + 100, 100);
    size_t at = s.len + 2;
    sb_frame(&s, 0x80, p + 200, 51);
    CHECK_ERR(&s, c, 1009, "message too large", at);
    rd_buf_free(&s);
    /* a single frame larger than the message limit */
    c.max_frame = 1000;
    sb_frame(&s, 0x81, p, 251);
    CHECK_ERR(&s, c, 1009, "message too large", 4);
    rd_buf_free(&s);
    /* control frames do not count against the message */
    c.max_frame = 100;
    sb_frame(&s, 0x01, "aaaaaaaaaa", 10);
    uint8_t pl[125];
    memset(pl, 'p', sizeof pl);
    for (int i = 0; i < 10; i++)
        sb_frame(&s, 0x89, pl, 125);
    sb_frame(&s, 0x80, "b", 1);
    {
        run o;
        run_stream(s.p, s.len, 0, c, &o);
        RD_CHECK_EQ_INT(o.n, 11);
        RD_CHECK_EQ_INT(o.ev[10].type, WS_EV_MESSAGE);
        RD_CHECK_STR(o.ev[10].data, o.ev[10].len, "aaaaaaaaaab");
        run_free(&o);
    }
    rd_buf_free(&s);

    /* the assembly buffer grows geometrically and never beyond max_message */
    c.max_frame = 70000;
    c.max_message = 70000;
    for (size_t i = 0; i < 70000; i += 1000)
        sb_frame(&s, i == 0 ? 0x02 : i + 1000 == 70000 ? 0x80 : 0x00, p + i, 1000);
    {
        expect x[] = { EX_MSG(WS_OP_BINARY, p, 70000) };
        CHECK_STREAM_CFG(&s, c, x, 1, 0);
        run o;
        run_stream(s.p, s.len, 0, c, &o);
        RD_CHECK_EQ_INT(o.max_memory, 70000);
        run_free(&o);
    }
    rd_buf_free(&s);

    /* trim: only when idle */
    {
        ws_reader r;
        ws_event ev;
        ws_reader_init(&r, NOLIMIT, NOLIMIT);
        sb_frame(&s, 0x02, p, 10);
        sb_frame(&s, 0x80, p, 10);
        size_t n = ws_reader_feed(&r, s.p, 16, &ev);
        RD_CHECK_EQ_INT(n, 16);
        RD_CHECK_EQ_INT(ev.type, WS_EV_NONE);
        RD_CHECK(ws_reader_memory(&r) >= 10);
        ws_reader_trim(&r);
        RD_CHECK(ws_reader_memory(&r) >= 10);
        n += ws_reader_feed(&r, s.p + n, s.len - n, &ev);
        RD_CHECK_EQ_INT(n, s.len);
        RD_CHECK_EQ_INT(ev.type, WS_EV_MESSAGE);
        RD_CHECK_EQ_INT(ev.len, 20);
        RD_CHECK_MEM(ev.data, 10, p, 10);
        RD_CHECK_MEM(ev.data + 10, 10, p, 10);
        ws_reader_trim(&r);
        RD_CHECK_EQ_INT(ws_reader_memory(&r), 0);
        /* reusable after trim, free and re-init */
        rd_buf_free(&s);
        sb_frame(&s, 0x01, "ab", 2);
        sb_frame(&s, 0x80, "cd", 2);
        n = 0;
        while (n < s.len) {
            size_t got = ws_reader_feed(&r, s.p + n, 1, &ev);
            n += got;
        }
        RD_CHECK_EQ_INT(ev.type, WS_EV_MESSAGE);
        RD_CHECK_STR(ev.data, ev.len, "abcd");
        ws_reader_free(&r);
        ws_reader_init(&r, 1, 1);
        rd_buf_free(&s);
        sb_frame(&s, 0x81, "ab", 2);
        ws_reader_feed(&r, s.p, s.len, &ev);
        RD_CHECK_EQ_INT(ev.type, WS_EV_ERROR);
        RD_CHECK_EQ_INT(ev.close_code, 1009);
        ws_reader_free(&r);
        rd_buf_free(&s);
    }
    free(p);
}

static void test_errors_close(void)
{
    rd_buf s = RD_BUF_INIT;
    const cfg d = cfg_default;

    sb_frame(&s, 0x88, "\x03", 1);
    CHECK_ERR(&s, d, 1002, "invalid close payload", 7);
    rd_buf_free(&s);
    static const unsigned bad[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t pl[5] = { (uint8_t)(bad[i] >> 8), (uint8_t)bad[i], 'b', 'y', 'e' };
        sb_frame(&s, 0x88, pl, 5);
        CHECK_ERR(&s, d, 1002, "invalid close code", s.len);
        rd_buf_free(&s);
    }
    sb_frame(&s, 0x88, "\x03\xe8\xff", 3);
    CHECK_ERR(&s, d, 1007, "invalid UTF-8 in close reason", 9);
    rd_buf_free(&s);
    sb_frame(&s, 0x88, "\x03\xe8" "ab\xce", 5);
    CHECK_ERR(&s, d, 1007, "invalid UTF-8 in close reason", 11);
    rd_buf_free(&s);
    sb_frame(&s, 0x88, "\x03\xe8" "\xed\xa0\x80", 5);
    CHECK_ERR(&s, d, 1007, "invalid UTF-8 in close reason", 11);
    rd_buf_free(&s);

    /* valid closes, including inside a fragmented message */
    sb_frame(&s, 0x88, "\x0b\xb8" "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 13);
    {
        expect x[] = { EX_CLOSE(3000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11) };
        CHECK_STREAM(&s, x, 1);
    }
    rd_buf_free(&s);
    sb_frame(&s, 0x01, "partial", 7);
    sb_frame(&s, 0x88, "\x03\xe9", 2);
    {
        expect x[] = { EX_CLOSE(1001, "", 0) };
        CHECK_STREAM(&s, x, 1);
    }
    rd_buf_free(&s);
    sb_frame(&s, 0x88, "", 0);
    {
        expect x[] = { EX_CLOSE(1005, "", 0) };
        CHECK_STREAM(&s, x, 1);
    }
    rd_buf_free(&s);
}

static void test_errors_utf8(void)
{
    rd_buf s = RD_BUF_INIT;
    const cfg d = cfg_default;
    const char *why = "invalid UTF-8 in text message";

    /* single frame: fails at the bad byte, not at the end of the frame */
    uint8_t *p = pattern(100, true);
    p[10] = 0xFF;
    sb_frame(&s, 0x81, p, 100);
    CHECK_ERR(&s, d, 1007, why, 6 + 11);
    rd_buf_free(&s);
    p[10] = 0xED;
    p[11] = 0xA0;
    sb_frame(&s, 0x81, p, 100);
    CHECK_ERR(&s, d, 1007, why, 6 + 12);
    rd_buf_free(&s);
    free(p);

    /* incomplete sequence at the end of the message */
    sb_frame(&s, 0x81, "ab\xce", 3);
    CHECK_ERR(&s, d, 1007, why, 9);
    rd_buf_free(&s);
    sb_frame(&s, 0x01, "ab\xce", 3);
    sb_frame(&s, 0x80, "", 0);
    CHECK_ERR(&s, d, 1007, why, 15);
    rd_buf_free(&s);
    sb_frame(&s, 0x01, "ab\xf0\x90", 4);
    sb_frame(&s, 0x89, "", 0);
    sb_frame(&s, 0x80, "\x80", 1);
    {
        expect x[] = { EX_PING("", 0), EX_ERR(1007, why) };
        check_stream_cfg(__LINE__, s.p, s.len, d, x, 2, s.len);
    }
    rd_buf_free(&s);

    /* split across fragments: fails on the first impossible byte, before the
     * final fragment arrives */
    static const struct { const char *a, *b; } splits[] = {
        { "ok\xce", "\xff" },
        { "ok\xed", "\xa0\x80" },        /* surrogate */
        { "ok\xf4", "\x90\x80\x80" },    /* > U+10FFFF */
        { "ok\xe0", "\x80\x80" },        /* overlong */
        { "ok\xf0\x90", "a" },
        { "ok", "\xc0\x80" },
        { "ok\xe2\x82", "\xe2" },
    };
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
        sb_frame(&s, 0x01, splits[i].a, strlen(splits[i].a));
        sb_frame(&s, 0x89, "", 0);
        size_t at = s.len + 6 + 1;
        sb_frame(&s, 0x00, splits[i].b, strlen(splits[i].b));
        size_t final = s.len;
        sb_frame(&s, 0x80, "tail", 4);
        expect x[] = { EX_PING("", 0), EX_ERR(1007, why) };
        check_stream_cfg(__LINE__, s.p, s.len, d, x, 2, at);
        RD_CHECK(at <= final);
        rd_buf_free(&s);
    }
    /* the bad byte is the first of a fragment, then more fragments follow */
    sb_frame(&s, 0x01, "\xce", 1);
    size_t at = s.len + 7;
    sb_frame(&s, 0x00, "\x41", 1);
    sb_frame(&s, 0x00, "more", 4);
    sb_frame(&s, 0x80, "end", 3);
    CHECK_ERR(&s, d, 1007, why, at);
    rd_buf_free(&s);

    /* binary messages are not validated */
    sb_frame(&s, 0x82, "\xff\xfe", 2);
    sb_frame(&s, 0x02, "\xce", 1);
    sb_frame(&s, 0x80, "\xff", 1);
    {
        expect x[] = { EX_MSG(WS_OP_BINARY, "\xff\xfe", 2), EX_MSG(WS_OP_BINARY, "\xce\xff", 2) };
        CHECK_STREAM(&s, x, 2);
    }
    rd_buf_free(&s);
}

static void test_utf8_split_every_position(void)
{
    const char *str = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z\xf4\x8f\xbf\xbf";
    size_t n = strlen(str);
    expect x[] = { EX_TEXT(str) };
    for (size_t i = 0; i <= n; i++) {
        rd_buf s = RD_BUF_INIT;
        sb_frame(&s, 0x01, str, i);
        sb_frame(&s, 0x80, str + i, n - i);
        CHECK_STREAM(&s, x, 1);
        rd_buf_free(&s);
        for (size_t j = i; j <= n; j++) {
            sb_frame(&s, 0x01, str, i);
            sb_frame(&s, 0x89, "", 0);
            sb_frame(&s, 0x00, str + i, j - i);
            sb_frame(&s, 0x80, str + j, n - j);
            run o;
            for (size_t k = 0; k < 2; k++) {
                run_stream(s.p, s.len, k, cfg_default, &o);
                RD_CHECK_EQ_INT(o.n, 2);
                RD_CHECK_EQ_INT(o.ev[1].type, WS_EV_MESSAGE);
                RD_CHECK_STR(o.ev[1].data, o.ev[1].len, str);
                run_free(&o);
            }
            rd_buf_free(&s);
        }
    }
}

int main(void)
{
    RD_RUN(test_utf8_kuhn);
    RD_RUN(test_utf8_exhaustive);
    RD_RUN(test_utf8_incremental_chunks);
    RD_RUN(test_close_code_valid);
    RD_RUN(test_close_payload);
    RD_RUN(test_frame_header_roundtrip);
    RD_RUN(test_mask);
    RD_RUN(test_lengths);
    RD_RUN(test_non_minimal_length);
    RD_RUN(test_masking_keys);
    RD_RUN(test_zero_copy);
    RD_RUN(test_fragmentation_interleaved);
    RD_RUN(test_after_close);
    RD_RUN(test_zero_length);
    RD_RUN(test_control_max);
    RD_RUN(test_pmd);
    RD_RUN(test_errors_header);
    RD_RUN(test_errors_limits);
    RD_RUN(test_errors_close);
    RD_RUN(test_errors_utf8);
    RD_RUN(test_utf8_split_every_position);
    return rd_test_summary();
}
