/* Fuzz permessage-deflate: negotiation, decompression, round trips.
 *
 * Input: byte 0 picks the params —
 *   bits 0-2  window bits 8..15 (both directions)
 *   bit 3     client context takeover (inflater keeps its window)
 *   bit 4     server context takeover (deflater keeps its window)
 *   bits 5-6  max_out: 0, 64, 1024 or 65536
 *   bit 7     policy for negotiation: takeover allowed and cap 10, else defaults
 * and the rest is, at once:
 *   - a Sec-WebSocket-Extensions value: negotiate, and check that our own
 *     response, offered back, is a fixpoint (same params, same response);
 *   - a compressed message, decompressed twice with a small max_out and
 *     compared with plain zlib on the same bytes + tail;
 *   - plain text cut into up to three messages, compressed and decompressed
 *     (equality), also through plain zlib at the negotiated window (8 too),
 *     and for a stateless deflater, compressed again to identical bytes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST
#include <zlib.h>

#include "rd_buf.h"
#include "ws_deflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_ASSERT(c) do { if (!(c)) abort(); } while (0)

static const size_t max_outs[4] = { 0, 64, 1024, 65536 };
static const uint8_t fz_tail[4] = { 0x00, 0x00, 0xff, 0xff };

static void fz_negotiate(const uint8_t *in, size_t n, bool loose)
{
    ws_pmd_policy pol = WS_PMD_POLICY_INIT;
    ws_pmd_params p, q;
    char resp[WS_PMD_RESP_MAX], resp2[WS_PMD_RESP_MAX], err[RD_ERR_LEN];
    int rc;

    if (loose) {
        pol.server_context_takeover = pol.client_context_takeover = true;
        pol.max_window_bits = 10;
    }
    rc = ws_pmd_negotiate((const char *)in, n, &pol, &p, resp, sizeof resp, err);
    FZ_ASSERT(rc == 1 || rc == 0 || rc == -EINVAL);
    FZ_ASSERT(strlen(err) < RD_ERR_LEN);
    if (rc == -EINVAL)
        FZ_ASSERT(err[0] != '\0');
    if (rc != 1)
        return;
    FZ_ASSERT(strncmp(resp, "permessage-deflate", 18) == 0);
    FZ_ASSERT(p.server_max_window_bits >= 8 && p.server_max_window_bits <= pol.max_window_bits);
    FZ_ASSERT(p.client_max_window_bits >= 8 && p.client_max_window_bits <= 15);
    FZ_ASSERT(p.server_no_context_takeover || pol.server_context_takeover);
    FZ_ASSERT(p.client_no_context_takeover || pol.client_context_takeover);
    FZ_ASSERT(p.client_no_context_takeover || p.client_max_window_bits <= pol.max_window_bits);
    rc = ws_pmd_negotiate(resp, strlen(resp), &pol, &q, resp2, sizeof resp2, err);
    FZ_ASSERT(rc == 1);
    FZ_ASSERT(strcmp(resp, resp2) == 0);
    FZ_ASSERT(memcmp(&p, &q, sizeof p) == 0);
}

/* Plain zlib on in + tail, output capped at cap bytes; returns the length
 * or -1 on a zlib error. */
static long fz_zlib_inflate(int bits, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream zs;
    int rc = Z_OK;

    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -bits) != Z_OK)
        abort();
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    for (int part = 0; part < 2 && rc == Z_OK; part++) {
        zs.next_in = part ? fz_tail : in;
        zs.avail_in = (uInt)(part ? 4 : n);
        rc = inflate(&zs, Z_SYNC_FLUSH);
        if (rc == Z_BUF_ERROR)
            rc = Z_OK;
    }
    long got = rc == Z_OK || rc == Z_STREAM_END ? (long)(cap - zs.avail_out) : -1;
    inflateEnd(&zs);
    return got;
}

static void fz_inflate(const ws_pmd_params *p, const uint8_t *in, size_t n, size_t max_out)
{
    ws_inflater *inf = ws_inflater_new(p);
    uint8_t *ref = malloc(max_out + 1);
    int bits = p->client_max_window_bits < 9 ? 9 : p->client_max_window_bits;

    for (int round = 0; round < 2; round++) {
        rd_buf out = RD_BUF_INIT;
        char err[RD_ERR_LEN] = "";
        int rc = ws_inflater_message(inf, in, n, max_out, &out, err);

        FZ_ASSERT(rc == 0 || rc == -EMSGSIZE || rc == -EBADMSG);
        FZ_ASSERT(out.cap <= max_out + 1);
        if (rc < 0) {
            FZ_ASSERT(out.len == 0 && err[0] != '\0');
        } else {
            FZ_ASSERT(out.len <= max_out);
            /* Whatever we accept, zlib decodes to the same bytes (the first
             * round: the second may depend on the first's window). */
            if (round == 0 && n > 0) {
                long got = fz_zlib_inflate(bits, in, n, ref, max_out + 1);
                FZ_ASSERT(got == (long)out.len);
                FZ_ASSERT(out.len == 0 || memcmp(ref, out.p, out.len) == 0);
            }
        }
        rd_buf_free(&out);
    }
    free(ref);
    ws_inflater_free(inf);
}

static void fz_round_trip(const ws_pmd_params *p, uint8_t cfg, const uint8_t *in, size_t n)
{
    ws_pmd_policy pol = WS_PMD_POLICY_INIT;
    /* Our inflater standing in for the client: it gets the server's side. */
    ws_pmd_params mirror = { true, p->server_no_context_takeover, 15, p->server_max_window_bits };
    ws_deflater *d;
    ws_inflater *inf = ws_inflater_new(&mirror);
    z_stream ref;
    size_t cut[4] = { 0, n / 3, n - n / 4, n };

    pol.level = cfg & 0x80 ? 9 : 1;
    pol.mem_level = (cfg >> 5) + 1;
    d = ws_deflater_new(p, &pol);
    /* The client's view: a zlib inflater with exactly the window we
     * promised, 8 included. */
    memset(&ref, 0, sizeof ref);
    if (inflateInit2(&ref, -(int)p->server_max_window_bits) != Z_OK)
        abort();
    if (cut[1] > cut[2])
        cut[1] = cut[2];
    for (int k = 0; k < 3; k++) {
        const uint8_t *m = in + cut[k];
        size_t len = cut[k + 1] - cut[k];
        rd_buf c = RD_BUF_INIT, o = RD_BUF_INIT;
        char err[RD_ERR_LEN];
        uint8_t *plain = malloc(len + 1);

        FZ_ASSERT(ws_deflater_message(d, m, len, &c) == 0);
        FZ_ASSERT(c.len >= 1);
        FZ_ASSERT(ws_inflater_message(inf, c.p, c.len, len, &o, err) == 0);
        FZ_ASSERT(o.len == len && (len == 0 || memcmp(o.p, m, len) == 0));

        ref.next_out = plain;
        ref.avail_out = (uInt)(len + 1);
        for (int part = 0; part < 2; part++) {
            ref.next_in = part ? fz_tail : c.p;
            ref.avail_in = (uInt)(part ? 4 : c.len);
            int rc = inflate(&ref, Z_SYNC_FLUSH);
            FZ_ASSERT(rc == Z_OK || rc == Z_BUF_ERROR);
            FZ_ASSERT(ref.avail_in == 0);
        }
        FZ_ASSERT(ref.avail_out == 1 && (len == 0 || memcmp(plain, m, len) == 0));
        if (p->server_no_context_takeover)
            inflateReset(&ref);

        if (ws_deflater_stateless(d)) {
            rd_buf again = RD_BUF_INIT;
            FZ_ASSERT(ws_deflater_message(d, m, len, &again) == 0);
            FZ_ASSERT(again.len == c.len && memcmp(again.p, c.p, c.len) == 0);
            rd_buf_free(&again);
        }
        free(plain);
        rd_buf_free(&c);
        rd_buf_free(&o);
    }
    inflateEnd(&ref);
    ws_deflater_free(d);
    ws_inflater_free(inf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    ws_pmd_params p;

    p.server_max_window_bits = p.client_max_window_bits = (uint8_t)(8 + (cfg & 7));
    p.client_no_context_takeover = !(cfg & 0x08);
    p.server_no_context_takeover = !(cfg & 0x10);

    fz_negotiate(in, n, (cfg & 0x80) != 0);
    fz_inflate(&p, in, n, max_outs[(cfg >> 5) & 3]);
    fz_round_trip(&p, cfg, in, n);
    return 0;
}
