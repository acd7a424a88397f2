/* Fuzz the RFC 6455 frame reader and the UTF-8 validator.
 *
 * Input: byte 0 picks the limits, pmd and the chunking pattern, byte 1 seeds
 * the chunk sizes; the rest is the client byte stream. Besides "no crash, no
 * leak" it checks the reader's promises: delivered text is valid UTF-8,
 * sizes respect the limits, errors carry a legal close code and are sticky. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"
#include "ws_utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_ASSERT(c) do { if (!(c)) abort(); } while (0)

static const uint64_t frame_limits[4] = { 16, 200, 4096, UINT64_MAX };
static const uint64_t message_limits[4] = { 16, 300, 8192, UINT64_MAX };

static uint32_t fz_next(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

static size_t fz_chunk(unsigned pattern, uint32_t *seed, uint8_t arg, size_t left)
{
    size_t n;
    switch (pattern) {
    case 0: n = left; break;
    case 1: n = 1; break;
    case 2: n = (size_t)arg + 1; break;
    case 3: n = fz_next(seed) % 17 + 1; break;
    case 4: n = fz_next(seed) % 300 + 1; break;
    case 5: n = (fz_next(seed) & 1) ? 1 : (size_t)arg + 1; break;
    case 6: n = fz_next(seed) % 3 + 1; break;
    default: n = fz_next(seed) % 8 == 0 ? 0 : fz_next(seed) % 64 + 1; break;
    }
    return n < left ? n : left;
}

static volatile uint8_t fz_sink;

static void fz_touch(const uint8_t *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= p[i];
    fz_sink = x;
}

static void fz_check_event(const ws_reader *r, const ws_event *ev)
{
    switch (ev->type) {
    case WS_EV_MESSAGE:
        FZ_ASSERT(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
        FZ_ASSERT(ev->data != NULL);
        FZ_ASSERT(ev->len <= r->max_message);
        FZ_ASSERT(r->pmd || !ev->compressed);
        fz_touch(ev->data, ev->len);
        if (ev->opcode == WS_OP_TEXT && !ev->compressed)
            FZ_ASSERT(ws_utf8_valid(ev->data, ev->len));
        break;
    case WS_EV_PING:
    case WS_EV_PONG:
        FZ_ASSERT(ev->len <= 125);
        fz_touch(ev->data, ev->len);
        break;
    case WS_EV_CLOSE:
        FZ_ASSERT(ev->close_code == WS_CLOSE_NO_STATUS || ws_close_code_valid(ev->close_code));
        FZ_ASSERT(ev->reason_len <= 123);
        FZ_ASSERT(ws_utf8_valid((const uint8_t *)ev->reason, ev->reason_len));
        break;
    case WS_EV_ERROR:
        FZ_ASSERT(ev->close_code == WS_CLOSE_PROTOCOL || ev->close_code == WS_CLOSE_INVALID_DATA ||
                  ev->close_code == WS_CLOSE_TOO_BIG);
        FZ_ASSERT(ev->reason && strlen(ev->reason) == ev->reason_len && ev->reason_len > 0);
        break;
    default:
        break;
    }
}

static void fz_reader(const uint8_t *in, size_t n, uint8_t cfg, uint8_t arg)
{
    ws_reader r;
    uint8_t *buf = malloc(n ? n : 1);
    uint32_t seed = arg * 2654435761u + cfg;
    unsigned pattern = cfg >> 5;
    size_t off = 0, stalls = 0;

    memcpy(buf, in, n);
    ws_reader_init(&r, frame_limits[cfg & 3], message_limits[(cfg >> 2) & 3]);
    r.pmd = (cfg & 0x10) != 0;
    while (off < n) {
        size_t end = off + fz_chunk(pattern, &seed, arg, n - off);
        ws_event ev;
        size_t got;

        if (end == off) {
            got = ws_reader_feed(&r, buf + off, 0, &ev);
            FZ_ASSERT(got == 0 && ev.type == WS_EV_NONE);
            FZ_ASSERT(++stalls < 1000000);
            continue;
        }
        do {
            got = ws_reader_feed(&r, buf + off, end - off, &ev);
            FZ_ASSERT(got <= end - off);
            off += got;
            fz_check_event(&r, &ev);
            if (r.max_message != UINT64_MAX)
                FZ_ASSERT(ws_reader_memory(&r) <= r.max_message);
            if (ev.type == WS_EV_ERROR) {
                ws_event again;
                FZ_ASSERT(ws_reader_feed(&r, buf + off, n - off, &again) == 0);
                FZ_ASSERT(again.type == WS_EV_ERROR && again.close_code == ev.close_code);
                goto done;
            }
            if (ev.type == WS_EV_CLOSE)
                goto done;
            FZ_ASSERT(got > 0 || ev.type != WS_EV_NONE);
        } while (off < end);
        if (arg & 0x80)
            ws_reader_trim(&r);
    }
done:
    ws_reader_free(&r);
    free(buf);
}

/* The validator: any split gives the same answer as the whole-buffer check,
 * and ws_close_payload keeps valid reasons valid. */
static void fz_utf8(const uint8_t *in, size_t n, uint8_t arg)
{
    bool whole = ws_utf8_valid(in, n);
    size_t cut = n ? (size_t)arg % (n + 1) : 0;
    ws_utf8 u;
    ws_utf8_init(&u);
    int a = ws_utf8_feed(&u, in, cut);
    int b = a < 0 ? -1 : ws_utf8_feed(&u, in + cut, n - cut);
    FZ_ASSERT(whole == (a == 0 && b == 0 && ws_utf8_complete(&u)));

    uint8_t out[125];
    size_t len = ws_close_payload(out, 1000, (const char *)in, n);
    FZ_ASSERT(len >= 2 && len <= 125);
    if (whole)
        FZ_ASSERT(ws_utf8_valid(out + 2, len - 2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fz_reader(data + 2, size - 2, data[0], data[1]);
    if (size <= 4096)
        fz_utf8(data + 2, size - 2, data[1]);
    return 0;
}
