#include "ws_deflate.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ZLIB_CONST
#include <zlib.h>

#include "rd_buf.h"

/* zlib counts in uInt; longer inputs and outputs go through in slices. */
#define WS_Z_MAX ((size_t)UINT_MAX)

/* Sizes of zlib's internal deflate_state and inflate_state on LP64 (zlib
 * 1.2.13: 5.9 KB and 7.2 KB), rounded up; only used for the estimates. */
#define WS_ZDEFLATE_STATE 6144
#define WS_ZINFLATE_STATE 7424

/* First output step of the inflater; later steps double what is out. */
#define WS_INFLATE_STEP_MIN 1024
#define WS_INFLATE_STEP_FIRST_MAX 65536

static const uint8_t ws_pmd_tail[4] = { 0x00, 0x00, 0xff, 0xff };

__attribute__((format(printf, 2, 3)))
static void ws_pmd_err(char err[RD_ERR_LEN], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, RD_ERR_LEN, fmt, ap);
    va_end(ap);
}

/* zlib allocates through the project allocator so OOM aborts like
 * everywhere else instead of surfacing as Z_MEM_ERROR mid-message. */
static voidpf ws_zalloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return rd_xcalloc(items, size);
}

static void ws_zfree(voidpf opaque, voidpf p)
{
    (void)opaque;
    free(p);
}

/* ---- policy ----------------------------------------------------------- */

static uint8_t ws_pmd_cap(const ws_pmd_policy *pol)
{
    if (pol->max_window_bits < 9)
        return 9;
    return pol->max_window_bits > 15 ? 15 : pol->max_window_bits;
}

static int ws_pmd_mem_level(const ws_pmd_policy *pol)
{
    if (pol->mem_level < 1)
        return 1;
    return pol->mem_level > 9 ? 9 : pol->mem_level;
}

static int ws_pmd_level(const ws_pmd_policy *pol)
{
    if (pol->level < -1)
        return -1;
    return pol->level > 9 ? 9 : pol->level;
}

int ws_pmd_policy_check(const ws_pmd_policy *pol, char err[RD_ERR_LEN])
{
    if (pol->max_window_bits < 9 || pol->max_window_bits > 15) {
        ws_pmd_err(err, "permessage-deflate max_window_bits %u not in 9..15",
                   (unsigned)pol->max_window_bits);
        return -EINVAL;
    }
    if (pol->mem_level < 1 || pol->mem_level > 9) {
        ws_pmd_err(err, "permessage-deflate mem_level %d not in 1..9", pol->mem_level);
        return -EINVAL;
    }
    if (pol->level < -1 || pol->level > 9) {
        ws_pmd_err(err, "permessage-deflate level %d not in -1..9", pol->level);
        return -EINVAL;
    }
    return 0;
}

/* ---- negotiation ------------------------------------------------------ */

/* Sec-WebSocket-Extensions (RFC 6455 §9.1, list rules of RFC 7230 §7):
 *
 *   list      = [ element ] *( OWS "," OWS [ element ] )   empty elements ok
 *   element   = token *( OWS ";" OWS param )
 *   param     = token [ OWS "=" OWS ( token / quoted-string ) ]
 *
 * The whole value is parsed before answering, so a broken element anywhere
 * gives -EINVAL even after an acceptable offer. Names compare
 * case-insensitively. */

typedef struct pmd_cur {
    const char *s;
    size_t pos, len;
} pmd_cur;

enum {
    PMD_SNCT = 1 << 0,
    PMD_CNCT = 1 << 1,
    PMD_SMWB = 1 << 2,
    PMD_CMWB = 1 << 3,
};

typedef struct pmd_offer {
    unsigned seen;
    int smwb;          /* 0: absent, else 8..15 */
    int cmwb;          /* 0: absent, -1: present without value, else 8..15 */
    char why[80];      /* non-empty: the offer is declined */
} pmd_offer;

/* A parameter value after unquoting; only short ones can be valid. */
typedef struct pmd_value {
    bool present;
    char v[4];
    size_t len;        /* full length, may exceed sizeof v */
} pmd_value;

static bool pmd_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int pmd_peek(const pmd_cur *c)
{
    return c->pos < c->len ? (unsigned char)c->s[c->pos] : -1;
}

static void pmd_ows(pmd_cur *c)
{
    while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t'))
        c->pos++;
}

static size_t pmd_token(pmd_cur *c, const char **ret)
{
    size_t start = c->pos;
    while (c->pos < c->len && pmd_tchar((unsigned char)c->s[c->pos]))
        c->pos++;
    *ret = c->s + start;
    return c->pos - start;
}

static bool pmd_name_is(const char *p, size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(p, name, n) == 0;
}

static void pmd_value_add(pmd_value *v, char ch)
{
    if (v->len < sizeof v->v)
        v->v[v->len] = ch;
    v->len++;
}

/* quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE; the cursor is on
 * the opening quote. */
static int pmd_quoted(pmd_cur *c, pmd_value *v, char err[RD_ERR_LEN])
{
    size_t open = c->pos++;
    while (c->pos < c->len) {
        unsigned char ch = (unsigned char)c->s[c->pos++];
        if (ch == '"')
            return 0;
        if (ch == '\\') {
            if (c->pos == c->len)
                break;
            ch = (unsigned char)c->s[c->pos++];
        }
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            ws_pmd_err(err, "extensions: control character in quoted string at %zu", c->pos - 1);
            return -EINVAL;
        }
        pmd_value_add(v, (char)ch);
    }
    ws_pmd_err(err, "extensions: unterminated quoted string at %zu", open);
    return -EINVAL;
}

/* "8".."15", no leading zero, no sign (RFC 7692 §7.1.2.1). */
static int pmd_bits(const pmd_value *v)
{
    if (v->len == 1 && v->v[0] >= '8' && v->v[0] <= '9')
        return v->v[0] - '0';
    if (v->len == 2 && v->v[0] == '1' && v->v[1] >= '0' && v->v[1] <= '5')
        return 10 + v->v[1] - '0';
    return 0;
}

static void pmd_decline(pmd_offer *o, const char *name, size_t n, const char *problem)
{
    if (o->why[0])
        return;
    if (n > 40)
        n = 40;
    snprintf(o->why, sizeof o->why, "parameter %.*s %s", (int)n, name, problem);
}

static void pmd_param(pmd_offer *o, const char *name, size_t n, const pmd_value *v)
{
    unsigned bit;

    if (pmd_name_is(name, n, "server_no_context_takeover"))
        bit = PMD_SNCT;
    else if (pmd_name_is(name, n, "client_no_context_takeover"))
        bit = PMD_CNCT;
    else if (pmd_name_is(name, n, "server_max_window_bits"))
        bit = PMD_SMWB;
    else if (pmd_name_is(name, n, "client_max_window_bits"))
        bit = PMD_CMWB;
    else {
        pmd_decline(o, name, n, "unknown");
        return;
    }
    if (o->seen & bit) {
        pmd_decline(o, name, n, "repeated");
        return;
    }
    o->seen |= bit;
    switch (bit) {
    case PMD_SNCT:
    case PMD_CNCT:
        if (v->present)
            pmd_decline(o, name, n, "takes no value");
        break;
    case PMD_SMWB:
        if (!v->present || !(o->smwb = pmd_bits(v)))
            pmd_decline(o, name, n, "needs a value in 8..15");
        break;
    default:
        if (!v->present)
            o->cmwb = -1;
        else if (!(o->cmwb = pmd_bits(v)))
            pmd_decline(o, name, n, "value not in 8..15");
        break;
    }
}

static uint8_t pmd_min(int a, uint8_t b)
{
    return a < b ? (uint8_t)a : b;
}

/* Turn an acceptable offer into params and the response value. */
static void pmd_accept(const pmd_offer *o, const ws_pmd_policy *pol, ws_pmd_params *p,
                       char *resp, size_t resp_cap)
{
    uint8_t cap = ws_pmd_cap(pol);
    int n;

    p->server_no_context_takeover = (o->seen & PMD_SNCT) || !pol->server_context_takeover;
    p->client_no_context_takeover = (o->seen & PMD_CNCT) || !pol->client_context_takeover ||
                                    (o->cmwb == 0 && cap < 15);
    p->server_max_window_bits = o->smwb ? pmd_min(o->smwb, cap) : cap;
    if (o->cmwb == 0)
        p->client_max_window_bits = 15;
    else
        p->client_max_window_bits = pmd_min(o->cmwb > 0 ? o->cmwb : 15, cap);

    n = snprintf(resp, resp_cap, "permessage-deflate%s%s",
                 p->server_no_context_takeover ? "; server_no_context_takeover" : "",
                 p->client_no_context_takeover ? "; client_no_context_takeover" : "");
    if (o->smwb)
        n += snprintf(resp + n, resp_cap - (size_t)n, "; server_max_window_bits=%u",
                      (unsigned)p->server_max_window_bits);
    if (o->cmwb > 0 || (o->cmwb < 0 && p->client_max_window_bits < 15))
        snprintf(resp + n, resp_cap - (size_t)n, "; client_max_window_bits=%u",
                 (unsigned)p->client_max_window_bits);
}

int ws_pmd_negotiate(const char *value, size_t len, const ws_pmd_policy *policy,
                     ws_pmd_params *ret, char *resp, size_t resp_cap, char err[RD_ERR_LEN])
{
    pmd_cur c = { value, 0, len };
    pmd_offer chosen = { 0, 0, 0, "" };
    bool found = false;
    char first_why[RD_ERR_LEN] = "";

    err[0] = '\0';
    if (resp_cap < WS_PMD_RESP_MAX) {
        ws_pmd_err(err, "permessage-deflate response buffer too small");
        return -ENOBUFS;
    }
    if (!policy->enabled)
        return 0;

    for (;;) {
        const char *name;
        size_t n;
        bool pmd;
        pmd_offer o;

        pmd_ows(&c);
        if (pmd_peek(&c) < 0)
            break;
        if (pmd_peek(&c) == ',') {
            c.pos++;
            continue;
        }
        n = pmd_token(&c, &name);
        if (n == 0) {
            ws_pmd_err(err, "extensions: expected an extension name at %zu", c.pos);
            return -EINVAL;
        }
        pmd = pmd_name_is(name, n, "permessage-deflate");
        memset(&o, 0, sizeof o);
        pmd_ows(&c);
        while (pmd_peek(&c) == ';') {
            const char *pname;
            size_t pn;
            pmd_value v = { false, { 0 }, 0 };

            c.pos++;
            pmd_ows(&c);
            pn = pmd_token(&c, &pname);
            if (pn == 0) {
                ws_pmd_err(err, "extensions: expected a parameter name at %zu", c.pos);
                return -EINVAL;
            }
            pmd_ows(&c);
            if (pmd_peek(&c) == '=') {
                c.pos++;
                pmd_ows(&c);
                v.present = true;
                if (pmd_peek(&c) == '"') {
                    int r = pmd_quoted(&c, &v, err);
                    if (r < 0)
                        return r;
                } else {
                    const char *t;
                    size_t tn = pmd_token(&c, &t);
                    if (tn == 0) {
                        ws_pmd_err(err, "extensions: expected a parameter value at %zu", c.pos);
                        return -EINVAL;
                    }
                    for (size_t k = 0; k < tn; k++)
                        pmd_value_add(&v, t[k]);
                }
                pmd_ows(&c);
            }
            if (pmd)
                pmd_param(&o, pname, pn, &v);
        }
        if (pmd_peek(&c) >= 0 && pmd_peek(&c) != ',') {
            ws_pmd_err(err, "extensions: unexpected character at %zu", c.pos);
            return -EINVAL;
        }
        if (!pmd || found)
            continue;
        if (o.why[0]) {
            if (!first_why[0])
                snprintf(first_why, sizeof first_why, "permessage-deflate offer declined: %s",
                         o.why);
            continue;
        }
        chosen = o;
        found = true;
    }
    if (!found) {
        memcpy(err, first_why, sizeof first_why);
        return 0;
    }
    pmd_accept(&chosen, policy, ret, resp, resp_cap);
    return 1;
}

/* ---- deflater --------------------------------------------------------- */

struct ws_deflater {
    z_stream zs;
    bool stateless;
    int wbits;          /* as given to zlib: 9..15 */
    int mem_level;
    int level;
};

static int ws_zlib_bits(uint8_t negotiated)
{
    if (negotiated < 9)
        return 9;   /* see "Window bits 8" in the header */
    return negotiated > 15 ? 15 : negotiated;
}

ws_deflater *ws_deflater_new(const ws_pmd_params *p, const ws_pmd_policy *pol)
{
    ws_deflater *d = rd_xcalloc(1, sizeof *d);

    d->stateless = p->server_no_context_takeover;
    d->wbits = ws_zlib_bits(p->server_max_window_bits);
    d->mem_level = ws_pmd_mem_level(pol);
    d->level = ws_pmd_level(pol);
    d->zs.zalloc = ws_zalloc;
    d->zs.zfree = ws_zfree;
    /* Negative windowBits: raw deflate, no zlib header or checksum. */
    if (deflateInit2(&d->zs, d->level, Z_DEFLATED, -d->wbits, d->mem_level,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        abort();   /* only bad arguments, which the clamps above rule out */
    return d;
}

void ws_deflater_free(ws_deflater *d)
{
    if (!d)
        return;
    deflateEnd(&d->zs);
    free(d);
}

bool ws_deflater_stateless(const ws_deflater *d)
{
    return d->stateless;
}

unsigned ws_deflater_key(const ws_pmd_params *p, const ws_pmd_policy *pol)
{
    return (unsigned)ws_zlib_bits(p->server_max_window_bits) << 8 |
           (unsigned)ws_pmd_mem_level(pol) << 4 | (unsigned)(ws_pmd_level(pol) + 1);
}

size_t ws_deflater_memory(const ws_deflater *d)
{
    return sizeof *d + WS_ZDEFLATE_STATE + ((size_t)1 << (d->wbits + 2)) +
           ((size_t)1 << (d->mem_level + 9));
}

int ws_deflater_message(ws_deflater *d, const uint8_t *in, size_t len, rd_buf *out)
{
    size_t produced = 0, left = len;
    size_t step = len / 2 + 64;
    int rc;

    /* Every message ends byte-aligned after its sync flush, so an empty
     * message is always one empty stored block, 00 once stripped. zlib would
     * refuse a second flush in a row with no input (Z_BUF_ERROR). */
    if (len == 0) {
        rd_buf_append_u8(out, 0x00);
        return 0;
    }
    if (step > 65536)
        step = 65536;
    d->zs.next_in = in;
    do {
        size_t take = left < WS_Z_MAX ? left : WS_Z_MAX;
        int flush = take == left ? Z_SYNC_FLUSH : Z_NO_FLUSH;

        d->zs.avail_in = (uInt)take;
        left -= take;
        /* deflate() returning with output space left means it consumed all
         * input and, for Z_SYNC_FLUSH, completed the flush. */
        do {
            uint8_t *w = rd_buf_reserve(out, step);
            size_t room = out->cap - out->len;

            if (room > WS_Z_MAX)
                room = WS_Z_MAX;
            d->zs.next_out = w;
            d->zs.avail_out = (uInt)room;
            rc = deflate(&d->zs, flush);
            rd_buf_commit(out, room - d->zs.avail_out);
            produced += room - d->zs.avail_out;
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                goto fail;
        } while (d->zs.avail_out == 0);
    } while (left > 0);

    /* The sync flush ends in an empty stored block, 00 00 ff ff after the
     * byte-aligned header bits; RFC 7692 §7.2.1 strips those 4 bytes. */
    if (produced < 4 || memcmp(out->p + out->len - 4, ws_pmd_tail, 4) != 0)
        goto fail;
    out->len -= 4;
    if (d->stateless)
        deflateReset(&d->zs);
    d->zs.next_in = NULL;
    return 0;

fail:
    out->len -= produced;
    deflateReset(&d->zs);
    d->zs.next_in = NULL;
    return -EIO;
}

/* ---- inflater --------------------------------------------------------- */

struct ws_inflater {
    z_stream zs;
    bool stateless;
    int wbits;          /* as given to zlib: 9..15 */
};

ws_inflater *ws_inflater_new(const ws_pmd_params *p)
{
    ws_inflater *i = rd_xcalloc(1, sizeof *i);

    i->stateless = p->client_no_context_takeover;
    i->wbits = ws_zlib_bits(p->client_max_window_bits);
    i->zs.zalloc = ws_zalloc;
    i->zs.zfree = ws_zfree;
    if (inflateInit2(&i->zs, -i->wbits) != Z_OK)
        abort();   /* only bad arguments */
    return i;
}

void ws_inflater_free(ws_inflater *i)
{
    if (!i)
        return;
    inflateEnd(&i->zs);
    free(i);
}

bool ws_inflater_stateless(const ws_inflater *i)
{
    return i->stateless;
}

unsigned ws_inflater_key(const ws_pmd_params *p)
{
    return (unsigned)ws_zlib_bits(p->client_max_window_bits);
}

size_t ws_inflater_memory(const ws_inflater *i)
{
    return sizeof *i + WS_ZINFLATE_STATE + ((size_t)1 << i->wbits);
}

/* Spare capacity of at least want, by growing to exactly that: rd_buf's
 * doubling could otherwise allocate twice the decompression limit. */
static void ws_buf_grow(rd_buf *out, size_t want)
{
    if (out->cap - out->len >= want)
        return;
    out->p = rd_xrealloc(out->p, out->len + want);
    out->cap = out->len + want;
}

/* A final block ended the zlib stream but the context must live on: carry
 * the window into a fresh stream as a preset dictionary (raw inflate takes
 * one at any time). */
static void ws_inflater_restart(ws_inflater *i)
{
    uInt n = 0;
    Bytef *win = NULL;

    if (!i->stateless) {
        win = rd_xmalloc((size_t)1 << i->wbits);
        if (inflateGetDictionary(&i->zs, win, &n) != Z_OK)
            n = 0;
    }
    inflateReset(&i->zs);
    if (n)
        inflateSetDictionary(&i->zs, win, n);
    free(win);
}

/*   in[0..len) --> tail 00 00 ff ff --> end on a block boundary: message done
 *        |               |
 *        +---------------+--> final block (Z_STREAM_END): message done,
 *                             rest ignored, window carried over
 * Any zlib error or output past max_out fails the message and resets. */
int ws_inflater_message(ws_inflater *i, const uint8_t *in, size_t len, size_t max_out,
                        rd_buf *out, char err[RD_ERR_LEN])
{
    size_t produced = 0;
    size_t step = len > WS_INFLATE_STEP_FIRST_MAX / 4 ? WS_INFLATE_STEP_FIRST_MAX : len * 4;
    bool ended = false, drained = true;
    int rc, ret;

    /* An empty payload is an empty message (as zlib-based peers treat it);
     * feeding the tail alone would leave a stored block half read. */
    if (len == 0)
        return 0;
    if (step < WS_INFLATE_STEP_MIN)
        step = WS_INFLATE_STEP_MIN;

    for (int part = 0; part < 2 && !ended; part++) {
        const uint8_t *src = part == 0 ? in : ws_pmd_tail;
        size_t src_left = part == 0 ? len : sizeof ws_pmd_tail;

        while (!ended) {
            size_t limit, room;

            if (i->zs.avail_in == 0 && src_left > 0) {
                size_t take = src_left < WS_Z_MAX ? src_left : WS_Z_MAX;
                i->zs.next_in = src;
                i->zs.avail_in = (uInt)take;
                src += take;
                src_left -= take;
            }
            /* Done with this part once its input is in and the last call
             * left output space, i.e. zlib had nothing more to write. */
            if (i->zs.avail_in == 0 && drained)
                break;
            /* One byte past the limit tells "exactly max_out" from "more". */
            limit = max_out - produced < SIZE_MAX ? max_out - produced + 1 : SIZE_MAX;
            if (out->cap - out->len == 0) {
                size_t want = produced > step ? produced : step;
                ws_buf_grow(out, want < limit ? want : limit);
            }
            room = out->cap - out->len;
            if (room > limit)
                room = limit;
            if (room > WS_Z_MAX)
                room = WS_Z_MAX;
            i->zs.next_out = out->p + out->len;
            i->zs.avail_out = (uInt)room;
            rc = inflate(&i->zs, Z_NO_FLUSH);
            rd_buf_commit(out, room - i->zs.avail_out);
            produced += room - i->zs.avail_out;
            drained = i->zs.avail_out != 0;
            if (produced > max_out) {
                ws_pmd_err(err, "decompressed message larger than %zu bytes", max_out);
                ret = -EMSGSIZE;
                goto fail;
            }
            if (rc == Z_STREAM_END)
                ended = true;
            else if (rc == Z_BUF_ERROR && i->zs.avail_in == 0)
                continue;   /* wants input: the next turn brings it or ends the part */
            else if (rc != Z_OK) {
                ws_pmd_err(err, "invalid compressed data: %s",
                           i->zs.msg ? i->zs.msg : "zlib error");
                ret = rc == Z_DATA_ERROR ? -EBADMSG : -EIO;
                goto fail;
            }
        }
    }
    /* Without a final block the tail's empty stored block must have been
     * read whole, leaving zlib between blocks (data_type bit 128); otherwise
     * the message was cut short and the contexts would drift apart. */
    if (!ended && !(i->zs.data_type & 128)) {
        ws_pmd_err(err, "invalid compressed data: truncated deflate stream");
        ret = -EBADMSG;
        goto fail;
    }
    i->zs.next_in = NULL;
    i->zs.avail_in = 0;
    if (ended)
        ws_inflater_restart(i);
    else if (i->stateless)
        inflateReset(&i->zs);
    return 0;

fail:
    out->len -= produced;
    i->zs.next_in = NULL;
    i->zs.avail_in = 0;
    inflateReset(&i->zs);
    return ret;
}
