#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ZLIB_CONST
#include <zlib.h>

#include "rd_buf.h"
#include "rd_test.h"
#include "ws_deflate.h"

/* ---- helpers ---------------------------------------------------------- */

static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };

static uint32_t rng_state = 0x9e3779b9u;

static uint32_t rng(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

/* Chat-like text: words from a small vocabulary, so LZ77 finds matches at
 * every distance, and so the window size shows. */
static void gen_text(uint8_t *p, size_t n)
{
    static const char *words[] = {
        "room", "message", "hello", "world", "deflate", "window", "context", "takeover",
        "{\"type\":\"chat\",", "\"user\":", "\"text\":", "}", "lorem", "ipsum", "gateway",
        "shard", "broadcast", "0123456789", "ABCDEFGH", "permessage",
    };
    size_t i = 0;
    while (i < n) {
        const char *w = words[rng() % (sizeof words / sizeof words[0])];
        size_t l = strlen(w);
        for (size_t k = 0; k < l && i < n; k++)
            p[i++] = (uint8_t)w[k];
        if (i < n)
            p[i++] = (rng() & 7) ? ' ' : (uint8_t)('a' + rng() % 26);
    }
}

static void gen_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng();
}

static ws_pmd_params params(bool snct, bool cnct, int sbits, int cbits)
{
    ws_pmd_params p = { snct, cnct, (uint8_t)sbits, (uint8_t)cbits };
    return p;
}

static const ws_pmd_policy pol_default = WS_PMD_POLICY_INIT;

/* A client-side reference: plain zlib, used the way RFC 7692 peers do. */
typedef struct zpeer {
    z_stream zs;
    bool deflate;
} zpeer;

static void zpeer_deflate(zpeer *z, int bits, int level)
{
    memset(z, 0, sizeof *z);
    z->deflate = true;
    RD_CHECK_EQ_INT(deflateInit2(&z->zs, level, Z_DEFLATED, -(bits < 9 ? 9 : bits), 8,
                                 Z_DEFAULT_STRATEGY), Z_OK);
}

static void zpeer_inflate(zpeer *z, int bits)
{
    memset(z, 0, sizeof *z);
    RD_CHECK_EQ_INT(inflateInit2(&z->zs, -bits), Z_OK);
}

static void zpeer_end(zpeer *z)
{
    if (z->deflate)
        deflateEnd(&z->zs);
    else
        inflateEnd(&z->zs);
}

/* Client compresses one message: sync flush, tail stripped. */
static void zpeer_compress(zpeer *z, const uint8_t *in, size_t n, rd_buf *out, bool reset)
{
    size_t bound = deflateBound(&z->zs, n) + 64;
    uint8_t *w = rd_buf_reserve(out, bound);
    z->zs.next_in = in;
    z->zs.avail_in = (uInt)n;
    z->zs.next_out = w;
    z->zs.avail_out = (uInt)bound;
    RD_CHECK_EQ_INT(deflate(&z->zs, Z_SYNC_FLUSH), Z_OK);
    RD_CHECK(z->zs.avail_out > 0 && z->zs.avail_in == 0);
    size_t got = bound - z->zs.avail_out;
    RD_CHECK(got >= 4 && memcmp(w + got - 4, tail, 4) == 0);
    rd_buf_commit(out, got - 4);
    if (reset)
        deflateReset(&z->zs);
}

/* Client decompresses one of our messages; returns 0 or the zlib error. */
static int zpeer_decompress(zpeer *z, const uint8_t *in, size_t n, rd_buf *out)
{
    int rc = Z_OK;
    for (int part = 0; part < 2; part++) {
        z->zs.next_in = part ? tail : in;
        z->zs.avail_in = (uInt)(part ? 4 : n);
        do {
            uint8_t *w = rd_buf_reserve(out, 4096);
            z->zs.next_out = w;
            z->zs.avail_out = 4096;
            rc = inflate(&z->zs, Z_SYNC_FLUSH);
            rd_buf_commit(out, 4096 - z->zs.avail_out);
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return rc;
        } while (z->zs.avail_in > 0 || z->zs.avail_out == 0);
    }
    return 0;
}

static int inflate_msg(ws_inflater *i, const uint8_t *in, size_t n, size_t max_out, rd_buf *out)
{
    char err[RD_ERR_LEN] = "";
    int rc = ws_inflater_message(i, in, n, max_out, out, err);
    if (rc < 0)
        RD_CHECK(err[0] != '\0');
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- negotiation ------------------------------------------------------ */

enum { P_DEF, P_TAKE, P_CAP10, P_CAP10_NT, P_OFF };

static ws_pmd_policy policy(int which)
{
    ws_pmd_policy p = WS_PMD_POLICY_INIT;
    switch (which) {
    case P_TAKE:
        p.server_context_takeover = p.client_context_takeover = true;
        break;
    case P_CAP10:
        p.server_context_takeover = p.client_context_takeover = true;
        p.max_window_bits = 10;
        break;
    case P_CAP10_NT:
        p.max_window_bits = 10;
        break;
    case P_OFF:
        p.enabled = false;
        break;
    default:
        break;
    }
    return p;
}

typedef struct nego_case {
    const char *offer;
    int pol;
    int rc;
    const char *resp;           /* when rc == 1 */
    ws_pmd_params want;         /* when rc == 1 */
} nego_case;

#define NT "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
#define ACC(snct, cnct, s, c) { snct, cnct, s, c }
#define NONE { false, false, 0, 0 }

static const nego_case nego_cases[] = {
    /* Browsers and libraries. */
    /* Firefox */
    { "permessage-deflate", P_DEF, 1, NT, ACC(true, true, 15, 15) },
    /* Chrome, Python websockets, Node ws */
    { "permessage-deflate; client_max_window_bits", P_DEF, 1, NT, ACC(true, true, 15, 15) },
    { "permessage-deflate", P_TAKE, 1, "permessage-deflate", ACC(false, false, 15, 15) },
    { "permessage-deflate; client_max_window_bits", P_TAKE, 1, "permessage-deflate",
      ACC(false, false, 15, 15) },
    { "permessage-deflate; client_max_window_bits", P_CAP10, 1,
      "permessage-deflate; client_max_window_bits=10", ACC(false, false, 10, 10) },
    /* Firefox under a cap: the client's 15-bit window cannot be capped, so
     * at least it is not kept per connection. */
    { "permessage-deflate", P_CAP10, 1, "permessage-deflate; client_no_context_takeover",
      ACC(false, true, 10, 15) },
    { "permessage-deflate; client_max_window_bits", P_CAP10_NT, 1,
      NT "; client_max_window_bits=10", ACC(true, true, 10, 10) },
    /* RFC 7692 §7.1 examples. */
    { "permessage-deflate; client_max_window_bits; server_max_window_bits=10", P_TAKE, 1,
      "permessage-deflate; server_max_window_bits=10", ACC(false, false, 10, 15) },
    { "permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
      "permessage-deflate; client_max_window_bits", P_TAKE, 1,
      "permessage-deflate; server_max_window_bits=10", ACC(false, false, 10, 15) },
    { "permessage-deflate; server_no_context_takeover", P_TAKE, 1,
      "permessage-deflate; server_no_context_takeover", ACC(true, false, 15, 15) },
    { "permessage-deflate; client_no_context_takeover", P_TAKE, 1,
      "permessage-deflate; client_no_context_takeover", ACC(false, true, 15, 15) },
    { "permessage-deflate; client_max_window_bits=10", P_TAKE, 1,
      "permessage-deflate; client_max_window_bits=10", ACC(false, false, 15, 10) },
    { "permessage-deflate; client_max_window_bits=12", P_CAP10, 1,
      "permessage-deflate; client_max_window_bits=10", ACC(false, false, 10, 10) },
    { "permessage-deflate; client_max_window_bits=8", P_CAP10, 1,
      "permessage-deflate; client_max_window_bits=8", ACC(false, false, 10, 8) },
    { "permessage-deflate; server_max_window_bits=8", P_TAKE, 1,
      "permessage-deflate; server_max_window_bits=8", ACC(false, false, 8, 15) },
    { "permessage-deflate; server_max_window_bits=15", P_CAP10, 1,
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=10",
      ACC(false, true, 10, 15) },
    /* The longest response. */
    { "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
      "server_max_window_bits=15; client_max_window_bits=15", P_CAP10, 1,
      NT "; server_max_window_bits=10; client_max_window_bits=10", ACC(true, true, 10, 10) },
    /* Several offers: a declined one is skipped. */
    { "permessage-deflate; server_max_window_bits=7, "
      "permessage-deflate; server_max_window_bits=9", P_TAKE, 1,
      "permessage-deflate; server_max_window_bits=9", ACC(false, false, 9, 15) },
    { "permessage-deflate; foo, permessage-deflate; bar, permessage-deflate", P_DEF, 1, NT,
      ACC(true, true, 15, 15) },
    { "permessage-deflate; client_max_window_bits=8; client_no_context_takeover, "
      "permessage-deflate", P_TAKE, 1,
      "permessage-deflate; client_no_context_takeover; client_max_window_bits=8",
      ACC(false, true, 15, 8) },
    /* Other extensions are ignored. */
    { "x-webkit-deflate-frame, permessage-deflate", P_DEF, 1, NT, ACC(true, true, 15, 15) },
    { "foo; bar=baz; q=\"a b,c;d\", permessage-deflate; client_max_window_bits", P_DEF, 1, NT,
      ACC(true, true, 15, 15) },
    { "x-webkit-deflate-frame", P_DEF, 0, NULL, NONE },
    { "deflate-frame; foo=1", P_TAKE, 0, NULL, NONE },
    /* Syntax latitude: OWS, empty list elements, case, quoted values. */
    { "  permessage-deflate ;\tclient_max_window_bits = 12 , foo", P_CAP10, 1,
      "permessage-deflate; client_max_window_bits=10", ACC(false, false, 10, 10) },
    { ", ,permessage-deflate,,", P_DEF, 1, NT, ACC(true, true, 15, 15) },
    { "PerMessage-Deflate; Client_Max_Window_Bits=9", P_TAKE, 1,
      "permessage-deflate; client_max_window_bits=9", ACC(false, false, 15, 9) },
    { "permessage-deflate; client_max_window_bits=\"10\"", P_TAKE, 1,
      "permessage-deflate; client_max_window_bits=10", ACC(false, false, 15, 10) },
    { "permessage-deflate; server_max_window_bits=\"1\\1\"", P_TAKE, 1,
      "permessage-deflate; server_max_window_bits=11", ACC(false, false, 11, 15) },
    /* Declined offers (RFC 7692 §7: bad parameters decline the offer). */
    { "", P_DEF, 0, NULL, NONE },
    { " , ,", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_no_context_takeover; server_no_context_takeover", P_DEF, 0,
      NULL, NONE },
    { "permessage-deflate; client_max_window_bits; client_max_window_bits=10", P_DEF, 0, NULL,
      NONE },
    { "permessage-deflate; foo", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; foo=1", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=7", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=16", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=abc", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=\"abc\"", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=010", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=09", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=+9", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=\"\"", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=\" 9\"", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; client_max_window_bits=7", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; client_max_window_bits=16", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; client_max_window_bits=0", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; client_max_window_bits=-9", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; client_max_window_bits=123456789012345678901234567890", P_DEF, 0,
      NULL, NONE },
    { "permessage-deflate; server_no_context_takeover=1", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; client_no_context_takeover=\"\"", P_DEF, 0, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=7, x-foo", P_DEF, 0, NULL, NONE },
    /* Disabled: nothing is even parsed. */
    { "permessage-deflate", P_OFF, 0, NULL, NONE },
    { ";;;", P_OFF, 0, NULL, NONE },
    /* Broken header syntax: 400. */
    { "permessage-deflate;", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate; ", P_DEF, -EINVAL, NULL, NONE },
    { "; permessage-deflate", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate;;client_max_window_bits", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate; server_max_window_bits=,", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate; client_max_window_bits=\"10", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate; client_max_window_bits=\"10\\", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate server_no_context_takeover", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate; client_max_window_bits=1 0", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate; client_max_window_bits=\"10\"x", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate; =10", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate; a==10", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate, @", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate\x01", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate; a=\"x\x01\"", P_DEF, -EINVAL, NULL, NONE },
    { "perm\xc3\xa9ssage-deflate", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate\r\n", P_DEF, -EINVAL, NULL, NONE },
    /* ... even after an acceptable offer: the whole value is checked. */
    { "permessage-deflate, foo;", P_DEF, -EINVAL, NULL, NONE },
    { "permessage-deflate, \"quoted\"", P_DEF, -EINVAL, NULL, NONE },
};

static void test_negotiate_table(void)
{
    for (size_t k = 0; k < sizeof nego_cases / sizeof nego_cases[0]; k++) {
        const nego_case *c = &nego_cases[k];
        ws_pmd_policy pol = policy(c->pol);
        ws_pmd_params got = params(false, false, 77, 77);
        char resp[WS_PMD_RESP_MAX];
        char err[RD_ERR_LEN] = "junk";
        int rc;

        memset(resp, 'X', sizeof resp);
        resp[sizeof resp - 1] = '\0';
        rc = ws_pmd_negotiate(c->offer, strlen(c->offer), &pol, &got, resp, sizeof resp, err);
        if (rc != c->rc)
            fprintf(stderr, "case %zu: %s -> %d (%s)\n", k, c->offer, rc, err);
        RD_CHECK_EQ_INT(rc, c->rc);
        if (rc == 1) {
            if (strcmp(resp, c->resp) != 0)
                fprintf(stderr, "case %zu: %s -> \"%s\"\n", k, c->offer, resp);
            RD_CHECK_STR(resp, strlen(resp), c->resp);
            RD_CHECK_EQ_INT(got.server_no_context_takeover, c->want.server_no_context_takeover);
            RD_CHECK_EQ_INT(got.client_no_context_takeover, c->want.client_no_context_takeover);
            RD_CHECK_EQ_INT(got.server_max_window_bits, c->want.server_max_window_bits);
            RD_CHECK_EQ_INT(got.client_max_window_bits, c->want.client_max_window_bits);
            RD_CHECK(strlen(resp) < WS_PMD_RESP_MAX);
        } else {
            /* Output parameters untouched. */
            RD_CHECK_EQ_INT(got.server_max_window_bits, 77);
            RD_CHECK(resp[0] == 'X');
        }
        if (rc < 0)
            RD_CHECK(err[0] != '\0');
        if (rc == 0 && strstr(c->offer, "permessage-deflate;") && c->pol != P_OFF)
            RD_CHECK(strstr(err, "declined") != NULL);
        if (rc == 1)
            RD_CHECK(err[0] == '\0');
    }
}

static void test_negotiate_misc(void)
{
    ws_pmd_policy pol = WS_PMD_POLICY_INIT;
    ws_pmd_params p;
    char resp[WS_PMD_RESP_MAX];
    char small[WS_PMD_RESP_MAX - 1];
    char err[RD_ERR_LEN];
    const char *v = "permessage-deflate";

    RD_CHECK_EQ_INT(ws_pmd_negotiate(v, strlen(v), &pol, &p, small, sizeof small, err), -ENOBUFS);
    /* Not NUL-terminated input: only len bytes are read. */
    const char *longer = "permessage-deflate; server_max_window_bits=7";
    RD_CHECK_EQ_INT(ws_pmd_negotiate(longer, strlen(v), &pol, &p, resp, sizeof resp, err), 1);
    const char *cut = "permessage-deflate; server_max_window_bits=99";
    RD_CHECK_EQ_INT(ws_pmd_negotiate(cut, strlen(cut) - 1, &pol, &p, resp, sizeof resp, err), 1);
    RD_CHECK_EQ_INT(p.server_max_window_bits, 9);
    /* An embedded NUL is a broken header. */
    RD_CHECK_EQ_INT(ws_pmd_negotiate("permessage-deflate\0", 19, &pol, &p, resp, sizeof resp, err),
                    -EINVAL);

    /* Policy checks for the config loader. */
    RD_CHECK_EQ_INT(ws_pmd_policy_check(&pol, err), 0);
    pol.max_window_bits = 8;
    RD_CHECK_EQ_INT(ws_pmd_policy_check(&pol, err), -EINVAL);
    RD_CHECK(strstr(err, "max_window_bits") != NULL);
    pol.max_window_bits = 16;
    RD_CHECK_EQ_INT(ws_pmd_policy_check(&pol, err), -EINVAL);
    pol.max_window_bits = 12;
    pol.mem_level = 0;
    RD_CHECK_EQ_INT(ws_pmd_policy_check(&pol, err), -EINVAL);
    pol.mem_level = 10;
    RD_CHECK_EQ_INT(ws_pmd_policy_check(&pol, err), -EINVAL);
    pol.mem_level = 9;
    pol.level = 10;
    RD_CHECK_EQ_INT(ws_pmd_policy_check(&pol, err), -EINVAL);
    pol.level = -1;
    RD_CHECK_EQ_INT(ws_pmd_policy_check(&pol, err), 0);
    /* Out-of-range policies are clamped, not trusted. */
    pol.max_window_bits = 40;
    RD_CHECK_EQ_INT(ws_pmd_negotiate(v, strlen(v), &pol, &p, resp, sizeof resp, err), 1);
    RD_CHECK_EQ_INT(p.server_max_window_bits, 15);
    pol.max_window_bits = 3;
    RD_CHECK_EQ_INT(ws_pmd_negotiate(v, strlen(v), &pol, &p, resp, sizeof resp, err), 1);
    RD_CHECK_EQ_INT(p.server_max_window_bits, 9);
}

/* Parse our own response as a client would (RFC 7692 §7.1) and check it
 * states exactly the agreed params. */
static void check_response(const char *resp, const ws_pmd_params *p, int smwb_offer,
                           int cmwb_offer)
{
    char buf[WS_PMD_RESP_MAX];
    bool snct = false, cnct = false;
    int smwb = 0, cmwb = 0;
    char *save = NULL, *tok;

    snprintf(buf, sizeof buf, "%s", resp);
    tok = strtok_r(buf, ";", &save);
    RD_CHECK(tok && strcmp(tok, "permessage-deflate") == 0);
    while ((tok = strtok_r(NULL, ";", &save))) {
        while (*tok == ' ')
            tok++;
        if (strcmp(tok, "server_no_context_takeover") == 0)
            snct = true;
        else if (strcmp(tok, "client_no_context_takeover") == 0)
            cnct = true;
        else if (sscanf(tok, "server_max_window_bits=%d", &smwb) == 1)
            RD_CHECK(smwb >= 8 && smwb <= 15);
        else if (sscanf(tok, "client_max_window_bits=%d", &cmwb) == 1)
            RD_CHECK(cmwb >= 8 && cmwb <= 15);
        else
            RD_CHECK(!"unexpected response parameter");
    }
    RD_CHECK_EQ_INT(snct, p->server_no_context_takeover);
    RD_CHECK_EQ_INT(cnct, p->client_no_context_takeover);
    /* §7.1.2.1: an offered server_max_window_bits is answered, <= offer. */
    if (smwb_offer) {
        RD_CHECK(smwb != 0 && smwb <= smwb_offer);
        RD_CHECK_EQ_INT(smwb, p->server_max_window_bits);
    } else {
        RD_CHECK_EQ_INT(smwb, 0);
    }
    /* §7.1.2.2: never answered when not offered; <= the offered value. */
    if (cmwb_offer == 0)
        RD_CHECK_EQ_INT(cmwb, 0);
    if (cmwb_offer > 0)
        RD_CHECK(cmwb != 0 && cmwb <= cmwb_offer);
    RD_CHECK_EQ_INT(cmwb ? cmwb : 15, p->client_max_window_bits);
}

/* Real traffic both ways for a negotiated param set: our deflater against a
 * zlib client inflating with the server window it asked for, a zlib client
 * compressing with the client window against our inflater. */
static void exchange(const ws_pmd_params *p, const ws_pmd_policy *pol)
{
    ws_deflater *d = ws_deflater_new(p, pol);
    ws_inflater *inf = ws_inflater_new(p);
    zpeer cin, cout;
    uint8_t msg[3][1500];

    zpeer_inflate(&cin, p->server_max_window_bits);
    zpeer_deflate(&cout, p->client_max_window_bits, 6);
    for (int k = 0; k < 3; k++)
        gen_text(msg[k], sizeof msg[k]);
    memcpy(msg[2], msg[0], 700);   /* a match 3000 bytes back with takeover */
    for (int k = 0; k < 3; k++) {
        rd_buf c = RD_BUF_INIT, plain = RD_BUF_INIT;

        RD_CHECK_EQ_INT(ws_deflater_message(d, msg[k], sizeof msg[k], &c), 0);
        RD_CHECK_EQ_INT(zpeer_decompress(&cin, c.p, c.len, &plain), 0);
        RD_CHECK_MEM(plain.p, plain.len, msg[k], sizeof msg[k]);
        if (p->server_no_context_takeover)
            inflateReset(&cin.zs);
        rd_buf_reset(&c, 0);
        rd_buf_reset(&plain, 0);

        zpeer_compress(&cout, msg[k], sizeof msg[k], &c, p->client_no_context_takeover);
        RD_CHECK_EQ_INT(inflate_msg(inf, c.p, c.len, sizeof msg[k], &plain), 0);
        RD_CHECK_MEM(plain.p, plain.len, msg[k], sizeof msg[k]);
        rd_buf_free(&c);
        rd_buf_free(&plain);
    }
    zpeer_end(&cin);
    zpeer_end(&cout);
    ws_deflater_free(d);
    ws_inflater_free(inf);
}

/* Autobahn 12.x/13.x style: every combination of the four parameters with
 * window bits 8..15, against several policies, then traffic. */
static void test_negotiate_matrix(void)
{
    static const int pols[] = { P_DEF, P_TAKE, P_CAP10, P_CAP10_NT };
    int accepted = 0;

    for (size_t pi = 0; pi < sizeof pols / sizeof pols[0]; pi++) {
        ws_pmd_policy pol = policy(pols[pi]);
        int cap = pol.max_window_bits;
        for (int flags = 0; flags < 4; flags++) {
            for (int smwb = 7; smwb <= 15; smwb++) {       /* 7: absent */
                for (int cmwb = 6; cmwb <= 15; cmwb++) {   /* 6: absent, 7: no value */
                    char offer[256], resp[WS_PMD_RESP_MAX], err[RD_ERR_LEN];
                    int n = snprintf(offer, sizeof offer, "permessage-deflate");
                    ws_pmd_params p;
                    int cmwb_offer = cmwb == 6 ? 0 : cmwb == 7 ? -1 : cmwb;
                    int smwb_offer = smwb == 7 ? 0 : smwb;

                    if (flags & 1)
                        n += snprintf(offer + n, sizeof offer - (size_t)n,
                                      "; server_no_context_takeover");
                    if (flags & 2)
                        n += snprintf(offer + n, sizeof offer - (size_t)n,
                                      "; client_no_context_takeover");
                    if (smwb_offer)
                        n += snprintf(offer + n, sizeof offer - (size_t)n,
                                      "; server_max_window_bits=%d", smwb);
                    if (cmwb_offer < 0)
                        n += snprintf(offer + n, sizeof offer - (size_t)n,
                                      "; client_max_window_bits");
                    else if (cmwb_offer > 0)
                        n += snprintf(offer + n, sizeof offer - (size_t)n,
                                      "; client_max_window_bits=%d", cmwb);
                    RD_CHECK_EQ_INT(ws_pmd_negotiate(offer, (size_t)n, &pol, &p, resp,
                                                     sizeof resp, err), 1);
                    accepted++;
                    check_response(resp, &p, smwb_offer, cmwb_offer);
                    RD_CHECK(p.server_max_window_bits <= cap);
                    if (smwb_offer)
                        RD_CHECK(p.server_max_window_bits <= smwb_offer);
                    if (cmwb_offer != 0)
                        RD_CHECK(p.client_max_window_bits <= cap);
                    if (cmwb_offer > 0)
                        RD_CHECK(p.client_max_window_bits <= cmwb_offer);
                    /* Per-connection state only where the policy allows it,
                     * and a client window above the cap is never kept. */
                    if (!pol.server_context_takeover || (flags & 1))
                        RD_CHECK(p.server_no_context_takeover);
                    else
                        RD_CHECK(!p.server_no_context_takeover);
                    if (!pol.client_context_takeover || (flags & 2))
                        RD_CHECK(p.client_no_context_takeover);
                    if (!p.client_no_context_takeover)
                        RD_CHECK(p.client_max_window_bits <= cap);
                    /* Traffic for a sample (all of it would be slow under ASan). */
                    if ((smwb + cmwb + flags) % 5 == 0 || smwb == 8 || cmwb == 8)
                        exchange(&p, &pol);
                }
            }
        }
    }
    RD_CHECK_EQ_INT(accepted, 4 * 4 * 9 * 10);
}

/* ---- compression ------------------------------------------------------ */

static void test_rfc_examples(void)
{
    static const uint8_t hello1[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
    static const uint8_t hello2[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };
    static const uint8_t bfinal[] = { 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00 };
    static const uint8_t stored[] = { 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f,
                                      0x00 };
    static const uint8_t two_blocks[] = { 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca,
                                          0xc9, 0xc9, 0x07, 0x00 };
    /* zlib: "Hello, Hello" with "Hello" as the window, tail stripped. */
    static const uint8_t after_bfinal[] = { 0xf2, 0x00, 0x11, 0x3a, 0x0a, 0x60, 0x0a, 0x00 };
    ws_pmd_params nt = params(true, true, 15, 15), take = params(false, false, 15, 15);
    ws_deflater *d;
    ws_inflater *i;
    rd_buf b = RD_BUF_INIT;

    /* §7.2.3.1 / §7.2.3.2: compression. */
    d = ws_deflater_new(&nt, &pol_default);
    RD_CHECK_EQ_INT(ws_deflater_message(d, (const uint8_t *)"Hello", 5, &b), 0);
    RD_CHECK_MEM(b.p, b.len, hello1, sizeof hello1);
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(ws_deflater_message(d, (const uint8_t *)"Hello", 5, &b), 0);
    RD_CHECK_MEM(b.p, b.len, hello1, sizeof hello1);
    ws_deflater_free(d);

    d = ws_deflater_new(&take, &pol_default);
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(ws_deflater_message(d, (const uint8_t *)"Hello", 5, &b), 0);
    RD_CHECK_MEM(b.p, b.len, hello1, sizeof hello1);
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(ws_deflater_message(d, (const uint8_t *)"Hello", 5, &b), 0);
    RD_CHECK_MEM(b.p, b.len, hello2, sizeof hello2);
    ws_deflater_free(d);

    /* Decompression of every example. */
    i = ws_inflater_new(&take);
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(inflate_msg(i, hello1, sizeof hello1, 100, &b), 0);
    RD_CHECK_STR(b.p, b.len, "Hello");
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(inflate_msg(i, hello2, sizeof hello2, 100, &b), 0);
    RD_CHECK_STR(b.p, b.len, "Hello");
    /* §7.2.3.3 BFINAL, then a message using the window it left. */
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(inflate_msg(i, bfinal, sizeof bfinal, 100, &b), 0);
    RD_CHECK_STR(b.p, b.len, "Hello");
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(inflate_msg(i, after_bfinal, sizeof after_bfinal, 100, &b), 0);
    RD_CHECK_STR(b.p, b.len, "Hello, Hello");
    /* BFINAL without the trailing 00, and with garbage after it: ignored. */
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(inflate_msg(i, bfinal, sizeof bfinal - 1, 100, &b), 0);
    RD_CHECK_STR(b.p, b.len, "Hello");
    ws_inflater_free(i);

    i = ws_inflater_new(&nt);
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(inflate_msg(i, stored, sizeof stored, 100, &b), 0);   /* §7.2.3.4 */
    RD_CHECK_STR(b.p, b.len, "Hello");
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(inflate_msg(i, two_blocks, sizeof two_blocks, 100, &b), 0); /* §7.2.3.5 */
    RD_CHECK_STR(b.p, b.len, "Hello");
    uint8_t junk_after[sizeof bfinal + 3];
    memcpy(junk_after, bfinal, sizeof bfinal);
    memcpy(junk_after + sizeof bfinal, "\x12\x34\x56", 3);
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(inflate_msg(i, junk_after, sizeof junk_after, 100, &b), 0);
    RD_CHECK_STR(b.p, b.len, "Hello");
    /* Context takeover data through a stateless inflater: distance too far. */
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(inflate_msg(i, hello2, sizeof hello2, 100, &b), -EBADMSG);
    RD_CHECK_EQ_INT(b.len, 0);
    ws_inflater_free(i);
    rd_buf_free(&b);
}

static void test_empty_messages(void)
{
    ws_pmd_params take = params(false, false, 15, 15), nt = params(true, true, 15, 15);
    ws_deflater *d = ws_deflater_new(&take, &pol_default);
    ws_inflater *i = ws_inflater_new(&take);
    rd_buf b = RD_BUF_INIT, o = RD_BUF_INIT;
    const uint8_t *hello = (const uint8_t *)"Hello";

    /* §7.2.3.6: an empty message is the single byte 00, fresh or not. */
    RD_CHECK_EQ_INT(ws_deflater_message(d, NULL, 0, &b), 0);
    RD_CHECK_MEM(b.p, b.len, "\x00", 1);
    RD_CHECK_EQ_INT(inflate_msg(i, b.p, b.len, 0, &o), 0);
    RD_CHECK_EQ_INT(o.len, 0);
    for (int k = 0; k < 3; k++) {
        rd_buf_reset(&b, 0);
        rd_buf_reset(&o, 0);
        RD_CHECK_EQ_INT(ws_deflater_message(d, hello, 5, &b), 0);
        RD_CHECK_EQ_INT(inflate_msg(i, b.p, b.len, 5, &o), 0);
        RD_CHECK_STR(o.p, o.len, "Hello");
        rd_buf_reset(&b, 0);
        rd_buf_reset(&o, 0);
        RD_CHECK_EQ_INT(ws_deflater_message(d, hello, 0, &b), 0);
        RD_CHECK_MEM(b.p, b.len, "\x00", 1);
        RD_CHECK_EQ_INT(inflate_msg(i, b.p, b.len, 0, &o), 0);
        RD_CHECK_EQ_INT(o.len, 0);
    }
    /* An empty payload with RSV1 is an empty message and leaves the
     * context alone (zlib-based peers accept it too). */
    rd_buf_reset(&b, 0);
    rd_buf_reset(&o, 0);
    RD_CHECK_EQ_INT(inflate_msg(i, NULL, 0, 0, &o), 0);
    RD_CHECK_EQ_INT(o.len, 0);
    RD_CHECK_EQ_INT(ws_deflater_message(d, hello, 5, &b), 0);
    RD_CHECK(b.len < 7);   /* still taking the context over */
    RD_CHECK_EQ_INT(inflate_msg(i, b.p, b.len, 5, &o), 0);
    RD_CHECK_STR(o.p, o.len, "Hello");
    ws_deflater_free(d);
    ws_inflater_free(i);

    d = ws_deflater_new(&nt, &pol_default);
    rd_buf_reset(&b, 0);
    RD_CHECK_EQ_INT(ws_deflater_message(d, NULL, 0, &b), 0);
    RD_CHECK_MEM(b.p, b.len, "\x00", 1);
    ws_deflater_free(d);
    rd_buf_free(&b);
    rd_buf_free(&o);
}

/* Round trips at every window size, with and without context takeover,
 * over a sequence where takeover matters: each message repeats a chunk of
 * the previous one. Also checks the window limit is real: the deflater's
 * output inflates with a plain zlib stream of exactly that window. */
static void test_round_trips(void)
{
    enum { NMSG = 6, MLEN = 3000 };
    uint8_t *msgs = malloc((size_t)NMSG * MLEN);

    gen_text(msgs, MLEN);
    for (int k = 1; k < NMSG; k++) {
        gen_text(msgs + (size_t)k * MLEN, MLEN);
        /* Repeat 1000 bytes of the previous message at varying distances. */
        memcpy(msgs + (size_t)k * MLEN + (size_t)(k * 300), msgs + (size_t)(k - 1) * MLEN + 500,
               1000);
    }
    for (int bits = 8; bits <= 15; bits++) {
        size_t total[2] = { 0, 0 };
        for (int take = 0; take < 2; take++) {
            ws_pmd_params p = params(!take, !take, bits, bits);
            ws_deflater *d = ws_deflater_new(&p, &pol_default);
            ws_inflater *i = ws_inflater_new(&p);
            zpeer ref;

            RD_CHECK_EQ_INT(ws_deflater_stateless(d), !take);
            RD_CHECK_EQ_INT(ws_inflater_stateless(i), !take);
            zpeer_inflate(&ref, bits);   /* window 8 too: zlib inflate accepts it */
            for (int k = 0; k < NMSG; k++) {
                const uint8_t *m = msgs + (size_t)k * MLEN;
                rd_buf c = RD_BUF_INIT, o = RD_BUF_INIT, r = RD_BUF_INIT;

                RD_CHECK_EQ_INT(ws_deflater_message(d, m, MLEN, &c), 0);
                total[take] += c.len;
                RD_CHECK_EQ_INT(inflate_msg(i, c.p, c.len, MLEN, &o), 0);
                RD_CHECK_MEM(o.p, o.len, m, MLEN);
                RD_CHECK_EQ_INT(zpeer_decompress(&ref, c.p, c.len, &r), 0);
                RD_CHECK_MEM(r.p, r.len, m, MLEN);
                if (!take)
                    inflateReset(&ref.zs);
                /* One byte less room fails cleanly, and the inflater (reset)
                 * still decodes the next stateless message. */
                if (!take) {
                    rd_buf_reset(&o, 0);
                    RD_CHECK_EQ_INT(inflate_msg(i, c.p, c.len, MLEN - 1, &o), -EMSGSIZE);
                    RD_CHECK_EQ_INT(o.len, 0);
                }
                rd_buf_free(&c);
                rd_buf_free(&o);
                rd_buf_free(&r);
            }
            zpeer_end(&ref);
            ws_deflater_free(d);
            ws_inflater_free(i);
        }
        /* Takeover pays off once the window reaches the repeats. */
        if (bits >= 12)
            RD_CHECK(total[1] + 500 < total[0]);
        else
            RD_CHECK(total[1] <= total[0]);
    }
    free(msgs);
}

/* Messages from a zlib client using context takeover, through our
 * inflater, at every client window; our inflater with 8 takes 8. */
static void test_client_takeover(void)
{
    uint8_t m[2][2000];

    gen_text(m[0], sizeof m[0]);
    memcpy(m[1], m[0], sizeof m[1]);   /* second message: all back-references */
    for (int bits = 8; bits <= 15; bits++) {
        ws_pmd_params p = params(true, false, 15, bits);
        ws_inflater *i = ws_inflater_new(&p);
        ws_pmd_params pn = params(true, true, 15, bits);
        ws_inflater *fresh = ws_inflater_new(&pn);
        zpeer z;
        rd_buf c0 = RD_BUF_INIT, c1 = RD_BUF_INIT, o = RD_BUF_INIT;

        zpeer_deflate(&z, bits, 9);
        zpeer_compress(&z, m[0], sizeof m[0], &c0, false);
        zpeer_compress(&z, m[1], sizeof m[1], &c1, false);
        RD_CHECK(c1.len < c0.len);
        RD_CHECK_EQ_INT(inflate_msg(i, c0.p, c0.len, 4000, &o), 0);
        RD_CHECK_MEM(o.p, o.len, m[0], sizeof m[0]);
        rd_buf_reset(&o, 0);
        RD_CHECK_EQ_INT(inflate_msg(i, c1.p, c1.len, 4000, &o), 0);
        RD_CHECK_MEM(o.p, o.len, m[1], sizeof m[1]);
        /* The same second message without the context cannot decode. */
        rd_buf_reset(&o, 0);
        RD_CHECK_EQ_INT(inflate_msg(fresh, c1.p, c1.len, 4000, &o), -EBADMSG);
        RD_CHECK_EQ_INT(o.len, 0);
        zpeer_end(&z);
        ws_inflater_free(i);
        ws_inflater_free(fresh);
        rd_buf_free(&c0);
        rd_buf_free(&c1);
        rd_buf_free(&o);
    }
}

/* One stateless deflater serves every connection with the same key: the
 * bytes for a message do not depend on what it compressed before. */
static void test_shared_deflater(void)
{
    ws_pmd_policy pol = WS_PMD_POLICY_INIT;
    ws_pmd_params a = params(true, true, 15, 15), b = params(true, false, 15, 12);
    ws_pmd_params c = params(true, true, 12, 15), e8 = params(true, true, 8, 15),
                  e9 = params(true, true, 9, 15);
    uint8_t msg[5000], other[3000];
    rd_buf first = RD_BUF_INIT, again = RD_BUF_INIT, fresh_out = RD_BUF_INIT;

    RD_CHECK_EQ_INT(ws_deflater_key(&a, &pol), ws_deflater_key(&b, &pol));
    RD_CHECK(ws_deflater_key(&a, &pol) != ws_deflater_key(&c, &pol));
    RD_CHECK_EQ_INT(ws_deflater_key(&e8, &pol), ws_deflater_key(&e9, &pol));
    RD_CHECK_EQ_INT(ws_inflater_key(&e8), ws_inflater_key(&e9));
    RD_CHECK(ws_inflater_key(&a) != ws_inflater_key(&b));

    gen_text(msg, sizeof msg);
    gen_text(other, sizeof other);
    memcpy(other, msg, 1000);
    ws_deflater *shared = ws_deflater_new(&a, &pol);
    ws_deflater *fresh = ws_deflater_new(&b, &pol);
    RD_CHECK(ws_deflater_stateless(shared));
    RD_CHECK_EQ_INT(ws_deflater_message(shared, msg, sizeof msg, &first), 0);
    for (int k = 0; k < 5; k++) {
        rd_buf tmp = RD_BUF_INIT;
        RD_CHECK_EQ_INT(ws_deflater_message(shared, other, sizeof other - (size_t)k, &tmp), 0);
        rd_buf_free(&tmp);
    }
    RD_CHECK_EQ_INT(ws_deflater_message(shared, msg, sizeof msg, &again), 0);
    RD_CHECK_EQ_INT(ws_deflater_message(fresh, msg, sizeof msg, &fresh_out), 0);
    RD_CHECK_MEM(again.p, again.len, first.p, first.len);
    RD_CHECK_MEM(fresh_out.p, fresh_out.len, first.p, first.len);

    /* Appending keeps what out held, wherever its read offset is. */
    rd_buf pre = RD_BUF_INIT;
    rd_buf_append(&pre, "xyzw", 4);
    rd_buf_consume(&pre, 2);
    RD_CHECK_EQ_INT(ws_deflater_message(shared, msg, sizeof msg, &pre), 0);
    RD_CHECK_EQ_INT(rd_buf_avail(&pre), 2 + first.len);
    RD_CHECK_MEM(rd_buf_data(&pre), 2, "zw", 2);
    RD_CHECK_MEM(rd_buf_data(&pre) + 2, first.len, first.p, first.len);

    /* A shared stateless inflater decodes interleaved connections. */
    ws_inflater *si = ws_inflater_new(&a);
    for (int k = 0; k < 4; k++) {
        rd_buf o = RD_BUF_INIT;
        const rd_buf *src = (k & 1) ? &fresh_out : &first;
        RD_CHECK_EQ_INT(inflate_msg(si, src->p, src->len, sizeof msg, &o), 0);
        RD_CHECK_MEM(o.p, o.len, msg, sizeof msg);
        rd_buf_free(&o);
    }
    ws_inflater_free(si);
    ws_deflater_free(shared);
    ws_deflater_free(fresh);
    rd_buf_free(&first);
    rd_buf_free(&again);
    rd_buf_free(&fresh_out);
    rd_buf_free(&pre);
}

/* Levels and memory levels of the policy reach zlib; every level round trips. */
static void test_levels(void)
{
    uint8_t msg[20000];
    size_t size[11];

    gen_text(msg, sizeof msg);
    for (int level = -1; level <= 9; level++) {
        ws_pmd_policy pol = WS_PMD_POLICY_INIT;
        ws_pmd_params p = params(true, true, 15, 15);
        rd_buf c = RD_BUF_INIT, o = RD_BUF_INIT;

        pol.level = level;
        pol.mem_level = level < 1 ? 1 : level;
        ws_deflater *d = ws_deflater_new(&p, &pol);
        ws_inflater *i = ws_inflater_new(&p);
        RD_CHECK_EQ_INT(ws_deflater_message(d, msg, sizeof msg, &c), 0);
        size[level + 1] = c.len;
        RD_CHECK_EQ_INT(inflate_msg(i, c.p, c.len, sizeof msg, &o), 0);
        RD_CHECK_MEM(o.p, o.len, msg, sizeof msg);
        ws_deflater_free(d);
        ws_inflater_free(i);
        rd_buf_free(&c);
        rd_buf_free(&o);
    }
    RD_CHECK(size[1] > sizeof msg);          /* level 0 stores */
    RD_CHECK(size[10] < size[2]);            /* 9 beats 1 on text */
}

static void test_big_and_random(void)
{
    size_t n = (size_t)3 << 20;
    uint8_t *big = malloc(n);
    ws_pmd_params p = params(false, false, 15, 15);
    ws_deflater *d = ws_deflater_new(&p, &pol_default);
    ws_inflater *i = ws_inflater_new(&p);
    rd_buf c = RD_BUF_INIT, o = RD_BUF_INIT;

    /* Incompressible data grows by a few bytes per stored block. */
    gen_random(big, n);
    RD_CHECK_EQ_INT(ws_deflater_message(d, big, n, &c), 0);
    RD_CHECK(c.len > n && c.len < n + n / 100);
    RD_CHECK_EQ_INT(inflate_msg(i, c.p, c.len, n, &o), 0);
    RD_CHECK_MEM(o.p, o.len, big, n);
    rd_buf_reset(&c, 0);
    rd_buf_reset(&o, 0);
    gen_text(big, n);
    RD_CHECK_EQ_INT(ws_deflater_message(d, big, n, &c), 0);
    RD_CHECK(c.len < n / 2);
    RD_CHECK_EQ_INT(inflate_msg(i, c.p, c.len, n, &o), 0);
    RD_CHECK_MEM(o.p, o.len, big, n);
    /* Exactly max_out: the limit is inclusive and out holds no more than it. */
    RD_CHECK(o.cap <= n + 1);
    ws_deflater_free(d);
    ws_inflater_free(i);
    rd_buf_free(&c);
    rd_buf_free(&o);
    free(big);
}

/* ---- bombs and corrupt input ------------------------------------------ */

static void test_bomb(void)
{
    size_t n = (size_t)100 << 20, max_out = (size_t)1 << 20;
    uint8_t *zeros = calloc(n, 1);
    ws_pmd_params p = params(true, true, 15, 15);
    ws_pmd_policy best = WS_PMD_POLICY_INIT;
    ws_deflater *d;
    ws_inflater *i = ws_inflater_new(&p);
    rd_buf c = RD_BUF_INIT, o = RD_BUF_INIT;
    char err[RD_ERR_LEN] = "";
    double t0;

    best.level = 9;
    d = ws_deflater_new(&p, &best);

    RD_CHECK_EQ_INT(ws_deflater_message(d, zeros, n, &c), 0);
    free(zeros);
    RD_CHECK(c.len > 90000 && c.len < 110000);   /* deflate's ~1030:1 at best */
    t0 = now_s();
    RD_CHECK_EQ_INT(ws_inflater_message(i, c.p, c.len, max_out, &o, err), -EMSGSIZE);
    RD_CHECK(now_s() - t0 < 0.5);
    RD_CHECK(strstr(err, "larger") != NULL);
    RD_CHECK_EQ_INT(o.len, 0);
    RD_CHECK(o.cap <= max_out + 1);
    /* The shared inflater is usable right after. */
    rd_buf_reset(&c, 0);
    RD_CHECK_EQ_INT(ws_deflater_message(d, (const uint8_t *)"Hello", 5, &c), 0);
    RD_CHECK_EQ_INT(inflate_msg(i, c.p, c.len, 5, &o), 0);
    RD_CHECK_STR(o.p, o.len, "Hello");

    /* The limit counts this message only, not what out already held. */
    RD_CHECK_EQ_INT(inflate_msg(i, c.p, c.len, 5, &o), 0);
    RD_CHECK_STR(o.p, o.len, "HelloHello");
    RD_CHECK_EQ_INT(inflate_msg(i, c.p, c.len, 4, &o), -EMSGSIZE);
    RD_CHECK_STR(o.p, o.len, "HelloHello");
    RD_CHECK_EQ_INT(inflate_msg(i, c.p, c.len, 0, &o), -EMSGSIZE);
    /* max_out = SIZE_MAX is "no limit". */
    RD_CHECK_EQ_INT(inflate_msg(i, c.p, c.len, SIZE_MAX, &o), 0);
    RD_CHECK_STR(o.p, o.len, "HelloHelloHello");

    /* A takeover stream's bomb: the context is lost (reset) but nothing leaks. */
    ws_pmd_params pt = params(false, false, 15, 15);
    ws_inflater *it = ws_inflater_new(&pt);
    zeros = calloc((size_t)4 << 20, 1);
    rd_buf_reset(&c, 0);
    rd_buf_reset(&o, 0);
    RD_CHECK_EQ_INT(ws_deflater_message(d, zeros, (size_t)4 << 20, &c), 0);
    RD_CHECK_EQ_INT(inflate_msg(it, c.p, c.len, ((size_t)4 << 20) - 1, &o), -EMSGSIZE);
    RD_CHECK(o.cap <= (size_t)4 << 20);
    RD_CHECK_EQ_INT(inflate_msg(it, c.p, c.len, (size_t)4 << 20, &o), 0);
    RD_CHECK_MEM(o.p, o.len, zeros, (size_t)4 << 20);
    free(zeros);
    ws_inflater_free(it);
    ws_deflater_free(d);
    ws_inflater_free(i);
    rd_buf_free(&c);
    rd_buf_free(&o);
}

static void test_corrupt(void)
{
    static const uint8_t bad_type[] = { 0x06, 0x00 };               /* BTYPE 11 */
    static const uint8_t bad_stored[] = { 0x00, 0x05, 0x00, 0x00, 0x00, 'H' }; /* NLEN wrong */
    static const uint8_t cut_hello[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07 };
    static const uint8_t cut_hello2[] = { 0xf2, 0x48, 0xcd };
    static const uint8_t stored_short[] = { 0x00, 0x05, 0x00, 0xfa, 0xff, 'H', 'e' }; /* 2 of 5 */
    static const uint8_t far[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };    /* match before start */
    ws_pmd_params p = params(true, true, 15, 15), pt = params(false, false, 15, 15);
    ws_inflater *i = ws_inflater_new(&p);
    ws_inflater *it = ws_inflater_new(&pt);
    const struct { const uint8_t *p; size_t n; } cases[] = {
        { bad_type, sizeof bad_type },
        { bad_stored, sizeof bad_stored },
        { cut_hello, sizeof cut_hello },
        { cut_hello2, sizeof cut_hello2 },
        { stored_short, sizeof stored_short },
        { far, sizeof far },
    };
    rd_buf o = RD_BUF_INIT;
    char err[RD_ERR_LEN];

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        err[0] = '\0';
        RD_CHECK_EQ_INT(ws_inflater_message(i, cases[k].p, cases[k].n, 1000, &o, err), -EBADMSG);
        if (cases[k].p == far)
            RD_CHECK(strstr(err, "too far back") != NULL);
        RD_CHECK(strncmp(err, "invalid compressed data", 23) == 0);
        RD_CHECK_EQ_INT(o.len, 0);
        RD_CHECK_EQ_INT(ws_inflater_message(it, cases[k].p, cases[k].n, 1000, &o, err), -EBADMSG);
        RD_CHECK_EQ_INT(o.len, 0);
    }
    /* Random garbage never crashes and errors leave out alone; after each
     * failure the inflater decodes a good message. */
    static const uint8_t hello1[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
    int bad = 0;
    for (int k = 0; k < 2000; k++) {
        uint8_t junk[64];
        size_t n = 1 + rng() % sizeof junk;
        gen_random(junk, n);
        rd_buf_reset(&o, 0);
        rd_buf_append(&o, "ab", 2);
        int rc = inflate_msg(i, junk, n, 256, &o);
        RD_CHECK(rc == 0 || rc == -EBADMSG || rc == -EMSGSIZE);
        if (rc < 0) {
            bad++;
            RD_CHECK_STR(o.p, o.len, "ab");
        }
        RD_CHECK(o.len <= 2 + 256);
        rd_buf_reset(&o, 0);
        RD_CHECK_EQ_INT(inflate_msg(i, hello1, sizeof hello1, 5, &o), 0);
        RD_CHECK_STR(o.p, o.len, "Hello");
    }
    RD_CHECK(bad > 1000);
    ws_inflater_free(i);
    ws_inflater_free(it);
    rd_buf_free(&o);
}

/* ---- memory ----------------------------------------------------------- */

static void test_memory(void)
{
    ws_pmd_policy pol = WS_PMD_POLICY_INIT;
    size_t prev_d = 0, prev_i = 0;

    for (int bits = 8; bits <= 15; bits++) {
        ws_pmd_params p = params(false, false, bits, bits);
        ws_deflater *d = ws_deflater_new(&p, &pol);
        ws_inflater *i = ws_inflater_new(&p);
        size_t md = ws_deflater_memory(d), mi = ws_inflater_memory(i);
        int zb = bits < 9 ? 9 : bits;

        RD_CHECK(md >= ((size_t)1 << (zb + 2)) + ((size_t)1 << (8 + 9)) + 5952);
        RD_CHECK(md < ((size_t)1 << (zb + 2)) + ((size_t)1 << (8 + 9)) + 8192);
        RD_CHECK(mi >= ((size_t)1 << zb) + 7160);
        RD_CHECK(mi < ((size_t)1 << zb) + 8192);
        RD_CHECK(md >= prev_d && mi >= prev_i);
        prev_d = md;
        prev_i = mi;
        ws_deflater_free(d);
        ws_inflater_free(i);
    }
    pol.mem_level = 1;
    ws_pmd_params p = params(true, true, 15, 15);
    ws_deflater *small = ws_deflater_new(&p, &pol);
    RD_CHECK(ws_deflater_memory(small) < prev_d - 60000);
    ws_deflater_free(small);
    ws_deflater_free(NULL);
    ws_inflater_free(NULL);
}

int main(void)
{
    RD_RUN(test_negotiate_table);
    RD_RUN(test_negotiate_misc);
    RD_RUN(test_negotiate_matrix);
    RD_RUN(test_rfc_examples);
    RD_RUN(test_empty_messages);
    RD_RUN(test_round_trips);
    RD_RUN(test_client_takeover);
    RD_RUN(test_shared_deflater);
    RD_RUN(test_levels);
    RD_RUN(test_big_and_random);
    RD_RUN(test_bomb);
    RD_RUN(test_corrupt);
    RD_RUN(test_memory);
    return rd_test_summary();
}
