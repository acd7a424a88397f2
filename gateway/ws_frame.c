#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>

#include "rd_buf.h"

enum {
    RS_HEADER = 0,
    RS_PAYLOAD,
    RS_CLOSED,
    RS_ERROR,
};

#define WS_MSG_MIN_CAP 1024

/* Data pointer for empty messages that were never assembled. */
static const uint8_t ws_empty[1];

void ws_reader_init(ws_reader *r, uint64_t max_frame, uint64_t max_message)
{
    memset(r, 0, sizeof *r);
    r->max_frame = max_frame;
    r->max_message = max_message;
    r->state = RS_HEADER;
}

void ws_reader_free(ws_reader *r)
{
    free(r->msg);
    r->msg = NULL;
    r->msg_len = 0;
    r->msg_cap = 0;
}

size_t ws_reader_memory(const ws_reader *r)
{
    return r->msg_cap;
}

void ws_reader_trim(ws_reader *r)
{
    if (r->msg_op != 0)
        return;
    ws_reader_free(r);
}

void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t pos)
{
    uint8_t k[8];
    uint64_t k64;
    size_t i = 0;

    for (size_t j = 0; j < 8; j++)
        k[j] = key[(pos + j) & 3];
    memcpy(&k64, k, 8);
    while (len - i >= 32) {
        uint64_t a, b, c, d;
        memcpy(&a, data + i, 8);
        memcpy(&b, data + i + 8, 8);
        memcpy(&c, data + i + 16, 8);
        memcpy(&d, data + i + 24, 8);
        a ^= k64;
        b ^= k64;
        c ^= k64;
        d ^= k64;
        memcpy(data + i, &a, 8);
        memcpy(data + i + 8, &b, 8);
        memcpy(data + i + 16, &c, 8);
        memcpy(data + i + 24, &d, 8);
        i += 32;
    }
    while (len - i >= 8) {
        uint64_t a;
        memcpy(&a, data + i, 8);
        a ^= k64;
        memcpy(data + i, &a, 8);
        i += 8;
    }
    for (; i < len; i++)
        data[i] ^= k[i & 7];
}

bool ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

size_t ws_close_payload(uint8_t out[125], uint16_t code, const char *reason, size_t reason_len)
{
    if (code == 0)
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (!reason)
        reason_len = 0;
    if (reason_len > 123) {
        /* Back up to a code point start so the peer gets valid UTF-8. */
        reason_len = 123;
        while (reason_len > 0 && ((uint8_t)reason[reason_len] & 0xC0) == 0x80)
            reason_len--;
    }
    if (reason_len)
        memcpy(out + 2, reason, reason_len);
    return 2 + reason_len;
}

size_t ws_frame_header(uint8_t out[14], bool fin, bool rsv1, int opcode, uint64_t len,
                       const uint8_t *mask)
{
    size_t n = 2;
    uint8_t maskbit = mask ? 0x80 : 0;

    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)(maskbit | len);
    } else if (len <= 0xFFFF) {
        out[1] = maskbit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = maskbit | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

static void ws_set_error(ws_reader *r, uint16_t code, const char *reason, ws_event *ev)
{
    size_t n = strlen(reason);
    if (n >= sizeof r->err_reason)
        n = sizeof r->err_reason - 1;
    memcpy(r->err_reason, reason, n);
    r->err_reason[n] = '\0';
    r->err_code = code;
    r->state = RS_ERROR;
    ev->type = WS_EV_ERROR;
    ev->close_code = code;
    ev->reason = r->err_reason;
    ev->reason_len = n;
}

static bool ws_is_control(unsigned op)
{
    return (op & 0x08) != 0;
}

/* Header length once the first two bytes are known. */
static size_t ws_hdr_len(uint8_t b1)
{
    uint8_t l = b1 & 0x7F;
    return 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) + 4;
}

static size_t ws_hdr_ext(uint8_t b1)
{
    uint8_t l = b1 & 0x7F;
    return l == 126 ? 2 : l == 127 ? 8 : 0;
}

static const char *ws_check_b0(ws_reader *r, uint8_t b0)
{
    unsigned op = b0 & 0x0F;
    bool fin = (b0 & 0x80) != 0, rsv1 = (b0 & 0x40) != 0;

    if (b0 & 0x30)
        return "reserved bits set";
    switch (op) {
    case WS_OP_CONT:
    case WS_OP_TEXT:
    case WS_OP_BINARY:
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        break;
    default:
        return "unknown opcode";
    }
    if (ws_is_control(op)) {
        if (rsv1)
            return "reserved bits set";
        if (!fin)
            return "fragmented control frame";
    } else if (op == WS_OP_CONT) {
        if (r->msg_op == 0)
            return "continuation without message";
        if (rsv1)
            return "reserved bits set";
    } else {
        if (r->msg_op != 0)
            return "expected continuation frame";
        if (rsv1 && !r->pmd)
            return "reserved bits set";
    }
    r->frame_op = (uint8_t)op;
    r->frame_fin = fin;
    r->frame_rsv1 = rsv1;
    return NULL;
}

static const char *ws_check_b1(const ws_reader *r, uint8_t b1)
{
    if (!(b1 & 0x80))
        return "unmasked client frame";
    if (ws_is_control(r->frame_op) && (b1 & 0x7F) > 125)
        return "control frame too long";
    return NULL;
}

/* h points at a header whose length bytes are all present. Returns the close
 * code of a violation (reason in *why), 0 when the length is acceptable. */
static uint16_t ws_check_len(ws_reader *r, const uint8_t *h, const char **why)
{
    uint64_t len = h[1] & 0x7F;

    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        if (len >> 63) {
            *why = "invalid frame length";
            return WS_CLOSE_PROTOCOL;
        }
    }
    if (!ws_is_control(r->frame_op)) {
        size_t have = r->frame_op == WS_OP_CONT ? r->msg_len : 0;
        if (len > r->max_frame) {
            *why = "frame too large";
            return WS_CLOSE_TOO_BIG;
        }
        if (have > r->max_message || len > r->max_message - have || len > SIZE_MAX - have) {
            *why = "message too large";
            return WS_CLOSE_TOO_BIG;
        }
    }
    r->frame_left = len;
    return 0;
}

/* Frame header complete: payload follows. */
static void ws_start_frame(ws_reader *r, const uint8_t *h)
{
    memcpy(r->mask, h + ws_hdr_len(h[1]) - 4, 4);
    r->mask_pos = 0;
    r->hdr_have = 0;
    if (ws_is_control(r->frame_op)) {
        r->ctl_len = 0;
    } else if (r->frame_op != WS_OP_CONT) {
        r->msg_op = r->frame_op;
        r->msg_compressed = r->frame_rsv1;
        r->msg_len = 0;
        ws_utf8_init(&r->utf8);
    }
}

static bool ws_validating(const ws_reader *r)
{
    return r->msg_op == WS_OP_TEXT && !r->msg_compressed;
}

static void ws_msg_append(ws_reader *r, const uint8_t *p, size_t n)
{
    size_t need = r->msg_len + n;
    if (need > r->msg_cap) {
        /* Grow with the bytes actually received, not the declared length, so
         * a peer cannot make us allocate max_message by announcing it. */
        size_t cap = r->msg_cap > SIZE_MAX / 2 ? SIZE_MAX : r->msg_cap * 2;
        if (cap < WS_MSG_MIN_CAP)
            cap = WS_MSG_MIN_CAP;
        if (cap > r->max_message)
            cap = (size_t)r->max_message;
        if (cap < need)
            cap = need;
        r->msg = rd_xrealloc(r->msg, cap);
        r->msg_cap = cap;
    }
    memcpy(r->msg + r->msg_len, p, n);
    r->msg_len = need;
}

static void ws_message_event(ws_reader *r, const uint8_t *data, size_t len, ws_event *ev)
{
    ev->type = WS_EV_MESSAGE;
    ev->opcode = r->msg_op;
    ev->compressed = r->msg_compressed;
    ev->data = data ? data : ws_empty;
    ev->len = len;
    r->msg_op = 0;
    r->msg_compressed = false;
    r->msg_len = 0;
}

/* The current frame's payload is complete. Returns true when it completed an
 * event (possibly an error). */
static bool ws_frame_done(ws_reader *r, ws_event *ev)
{
    r->state = RS_HEADER;
    switch (r->frame_op) {
    case WS_OP_PING:
    case WS_OP_PONG:
        ev->type = r->frame_op == WS_OP_PING ? WS_EV_PING : WS_EV_PONG;
        ev->data = r->ctl;
        ev->len = r->ctl_len;
        return true;
    case WS_OP_CLOSE:
        if (r->ctl_len == 0) {
            ev->close_code = WS_CLOSE_NO_STATUS;
        } else {
            unsigned code;
            if (r->ctl_len == 1) {
                ws_set_error(r, WS_CLOSE_PROTOCOL, "invalid close payload", ev);
                return true;
            }
            code = (unsigned)r->ctl[0] << 8 | r->ctl[1];
            if (!ws_close_code_valid(code)) {
                ws_set_error(r, WS_CLOSE_PROTOCOL, "invalid close code", ev);
                return true;
            }
            if (!ws_utf8_valid(r->ctl + 2, r->ctl_len - 2u)) {
                ws_set_error(r, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason", ev);
                return true;
            }
            ev->close_code = (uint16_t)code;
            ev->reason = (const char *)r->ctl + 2;
            ev->reason_len = r->ctl_len - 2u;
        }
        ev->type = WS_EV_CLOSE;
        ev->data = r->ctl;
        ev->len = r->ctl_len;
        r->state = RS_CLOSED;
        return true;
    default:
        break;
    }
    if (!r->frame_fin)
        return false;
    if (ws_validating(r) && !ws_utf8_complete(&r->utf8)) {
        ws_set_error(r, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message", ev);
        return true;
    }
    ws_message_event(r, r->msg, r->msg_len, ev);
    return true;
}

size_t ws_reader_feed(ws_reader *r, uint8_t *buf, size_t len, ws_event *ev)
{
    size_t pos = 0;

    memset(ev, 0, sizeof *ev);
    ev->type = WS_EV_NONE;
    if (r->state == RS_ERROR) {
        ev->type = WS_EV_ERROR;
        ev->close_code = r->err_code;
        ev->reason = r->err_reason;
        ev->reason_len = strlen(r->err_reason);
        return 0;
    }
    if (r->state == RS_CLOSED)
        return len; /* nothing after a close has meaning (RFC 6455 5.5.1) */

    while (pos < len) {
        if (r->state == RS_HEADER) {
            const uint8_t *h;
            const char *why;
            uint16_t code;

            if (r->hdr_have == 0 && len - pos >= 2 && len - pos >= ws_hdr_len(buf[pos + 1])) {
                /* Whole header in buf: check it in place. */
                h = buf + pos;
                if ((why = ws_check_b0(r, h[0]))) {
                    ws_set_error(r, WS_CLOSE_PROTOCOL, why, ev);
                    return pos + 1;
                }
                if ((why = ws_check_b1(r, h[1]))) {
                    ws_set_error(r, WS_CLOSE_PROTOCOL, why, ev);
                    return pos + 2;
                }
                if ((code = ws_check_len(r, h, &why))) {
                    ws_set_error(r, code, why, ev);
                    return pos + 2 + ws_hdr_ext(h[1]);
                }
                pos += ws_hdr_len(h[1]);
            } else {
                /* Byte by byte through the stages, checking each part as
                 * soon as it is complete so a bad frame fails early. */
                size_t need, take;
                uint8_t have = r->hdr_have;

                if (have < 1)
                    need = 1;
                else if (have < 2)
                    need = 2;
                else if (have < 2 + ws_hdr_ext(r->hdr[1]))
                    need = 2 + ws_hdr_ext(r->hdr[1]);
                else
                    need = ws_hdr_len(r->hdr[1]);
                take = need - have;
                if (take > len - pos)
                    take = len - pos;
                memcpy(r->hdr + have, buf + pos, take);
                pos += take;
                have = (uint8_t)(have + take);
                r->hdr_have = have;
                if (have < need)
                    break;
                if (have == 1) {
                    if ((why = ws_check_b0(r, r->hdr[0]))) {
                        ws_set_error(r, WS_CLOSE_PROTOCOL, why, ev);
                        return pos;
                    }
                    continue;
                }
                if (have == 2 && (why = ws_check_b1(r, r->hdr[1]))) {
                    ws_set_error(r, WS_CLOSE_PROTOCOL, why, ev);
                    return pos;
                }
                if (have == 2 + ws_hdr_ext(r->hdr[1]) && (code = ws_check_len(r, r->hdr, &why))) {
                    ws_set_error(r, code, why, ev);
                    return pos;
                }
                if (have < ws_hdr_len(r->hdr[1]))
                    continue;
                h = r->hdr;
            }
            ws_start_frame(r, h);
            if (r->frame_left == 0) {
                if (ws_frame_done(r, ev))
                    return pos;
                continue;
            }
            if (r->frame_fin && r->frame_op != WS_OP_CONT && !ws_is_control(r->frame_op) &&
                len - pos >= r->frame_left) {
                /* The whole single-frame message is here: deliver it in place. */
                uint8_t *p = buf + pos;
                size_t n = (size_t)r->frame_left;
                ws_mask(p, n, r->mask, 0);
                pos += n;
                r->frame_left = 0;
                if (ws_validating(r) && !ws_utf8_valid(p, n)) {
                    ws_set_error(r, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message", ev);
                    return pos;
                }
                ws_message_event(r, p, n, ev);
                return pos;
            }
            r->state = RS_PAYLOAD;
            continue;
        }

        /* RS_PAYLOAD */
        {
            size_t n = len - pos;
            uint8_t *p = buf + pos;

            if (n > r->frame_left)
                n = (size_t)r->frame_left;
            ws_mask(p, n, r->mask, r->mask_pos);
            r->mask_pos = (uint8_t)((r->mask_pos + n) & 3);
            r->frame_left -= n;
            pos += n;
            if (ws_is_control(r->frame_op)) {
                memcpy(r->ctl + r->ctl_len, p, n);
                r->ctl_len = (uint8_t)(r->ctl_len + n);
            } else {
                if (ws_validating(r) && ws_utf8_feed(&r->utf8, p, n) < 0) {
                    ws_set_error(r, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message", ev);
                    return pos;
                }
                ws_msg_append(r, p, n);
            }
            if (r->frame_left == 0 && ws_frame_done(r, ev))
                return pos;
        }
    }
    return pos;
}
