/* ws_utf8: incremental UTF-8 validation (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), usable across frame and fragment
 * boundaries, failing on the first byte that can no longer start or continue
 * a valid sequence ("fail fast", as the conformance suites require). */
#ifndef WS_UTF8_H
#define WS_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct ws_utf8 {
    uint32_t state; /* 0: at a code point boundary; internal otherwise */
} ws_utf8;

static inline void ws_utf8_init(ws_utf8 *u) { u->state = 0; }
/* Returns 0 if all bytes fed so far are a valid prefix, -1 as soon as they
 * cannot be (the validator then stays failed). */
int ws_utf8_feed(ws_utf8 *u, const uint8_t *p, size_t n);
/* True when the bytes fed so far end on a code point boundary. */
static inline bool ws_utf8_complete(const ws_utf8 *u) { return u->state == 0; }
/* Whole-buffer check. */
bool ws_utf8_valid(const uint8_t *p, size_t n);

#endif
