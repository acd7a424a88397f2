/* ws_frame: the RFC 6455 frame codec, server side. No I/O.
 *
 * ws_reader turns the bytes a client sent into events: complete data
 * messages, pings, pongs, a close, or a protocol error carrying the close code
 * the server must send. It enforces every rule a server must:
 *   - client frames must be masked (1002); RSV bits must be 0 unless
 *     permessage-deflate was negotiated, and then only RSV1 on the first
 *     frame of a data message (1002); unknown opcodes (1002);
 *   - control frames: FIN set, payload <= 125 (1002); they may arrive between
 *     the fragments of a data message;
 *   - continuation without a message in progress, or a new data frame while
 *     one is in progress (1002); 64-bit length with the top bit set (1002);
 *   - frame payload > max_frame or message > max_message (1009);
 *   - text messages (uncompressed ones) are valid UTF-8, validated as bytes
 *     arrive so an invalid sequence fails at once, even split across frames
 *     and fragments (1007);
 *   - close payload: empty, or >= 2 bytes with a valid code (1002 otherwise)
 *     and a UTF-8 reason (1007).
 *
 *         +--------+  2..14 bytes   +---------+  len bytes  +------------+
 *  ---->  | HEADER | ------------>  | PAYLOAD | ----------> | FRAME DONE | --+
 *         +--------+                +---------+             +------------+   |
 *             ^                                                              |
 *             +---------------------- next frame ----------------------------+
 *  Any rule broken -> ERROR (sticky: every later feed returns the same error).
 */
#ifndef WS_FRAME_H
#define WS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "ws_utf8.h"

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005,   /* never sent; reported when a close had no code */
    WS_CLOSE_ABNORMAL = 1006,    /* never sent */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_EXTENSION = 1010,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_RESTART = 1012,
    WS_CLOSE_TRY_AGAIN = 1013,
};

typedef enum ws_event_type {
    WS_EV_NONE = 0,   /* consumed input, no event complete yet */
    WS_EV_MESSAGE,    /* data message complete: opcode, data, len, compressed */
    WS_EV_PING,       /* data/len: ping payload (<= 125 bytes) */
    WS_EV_PONG,
    WS_EV_CLOSE,      /* close_code (1005 when the frame had none), reason */
    WS_EV_ERROR,      /* close_code to send, reason: short ASCII text */
} ws_event_type;

typedef struct ws_event {
    ws_event_type type;
    int opcode;                 /* WS_OP_TEXT or WS_OP_BINARY for messages */
    bool compressed;            /* RSV1 was set on the message's first frame */
    const uint8_t *data;        /* valid until the next feed/free */
    size_t len;
    uint16_t close_code;
    const char *reason;         /* CLOSE: peer's reason (UTF-8, not NUL-terminated); ERROR: ours (NUL-terminated) */
    size_t reason_len;
} ws_event;

typedef struct ws_reader {
    /* configuration, set by ws_reader_init; pmd may be flipped before the first feed */
    uint64_t max_frame;
    uint64_t max_message;
    bool pmd;                   /* permessage-deflate negotiated: RSV1 allowed */
    /* private state */
    int state;
    uint8_t hdr[14];
    uint8_t hdr_have;
    uint8_t frame_op;
    bool frame_fin;
    bool frame_rsv1;
    uint8_t mask[4];
    uint8_t mask_pos;
    uint64_t frame_left;
    int msg_op;                 /* 0: no data message in progress */
    bool msg_compressed;
    ws_utf8 utf8;
    uint8_t *msg;               /* assembled fragments (owned) */
    size_t msg_len, msg_cap;
    uint8_t ctl[125];
    uint8_t ctl_len;
    uint16_t err_code;
    char err_reason[64];
} ws_reader;

void ws_reader_init(ws_reader *r, uint64_t max_frame, uint64_t max_message);
void ws_reader_free(ws_reader *r);  /* releases the message buffer; r can be re-inited */

/* Consume bytes from buf[0..len). The buffer is modified in place (unmasked).
 * Returns how many bytes were consumed and stops right after completing an
 * event, which is stored in *ev (WS_EV_NONE if it consumed all of len
 * without completing one). A message whose single frame lies wholly in buf
 * is delivered pointing into buf without a copy; fragmented or partially
 * received messages are assembled in the reader's own buffer. After
 * WS_EV_ERROR the reader is failed: later calls return 0 with the same
 * error. After WS_EV_CLOSE the caller must stop feeding. */
size_t ws_reader_feed(ws_reader *r, uint8_t *buf, size_t len, ws_event *ev);

/* Bytes of memory the reader holds beyond sizeof(ws_reader). */
size_t ws_reader_memory(const ws_reader *r);
/* Release the assembly buffer when no message is in progress (idle trim). */
void ws_reader_trim(ws_reader *r);

/* Write a frame header into out (at most 14 bytes) and return its length.
 * mask == NULL writes an unmasked (server) frame; otherwise the 4-byte key is
 * written and the caller masks the payload (ws_mask). */
size_t ws_frame_header(uint8_t out[14], bool fin, bool rsv1, int opcode, uint64_t len,
                       const uint8_t *mask);
/* XOR data with the key, starting at key offset pos (0..3). */
void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t pos);

/* Codes a peer may put in a close frame: 1000-1003, 1007-1014, 3000-4999. */
bool ws_close_code_valid(unsigned code);
/* Build a close payload (code + reason truncated to fit 125 bytes on a UTF-8
 * boundary); code 0 builds the empty payload. Returns its length. */
size_t ws_close_payload(uint8_t out[125], uint16_t code, const char *reason, size_t reason_len);

#endif
