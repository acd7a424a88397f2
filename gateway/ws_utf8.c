#include "ws_utf8.h"

#include <string.h>

/* A DFA in the style of Bjoern Hoehrmann's decoder: bytes map to classes,
 * (state + class) indexes the next state. States are premultiplied by the
 * number of classes so one add replaces a multiply. Every lead byte that
 * restricts its first continuation (E0, ED, F0, F4) gets a state of its own,
 * which is what makes the validator fail on the first impossible byte. */
enum {
    C_ASCII,  /* 00..7F */
    C_80_8F,
    C_90_9F,
    C_A0_BF,
    C_L2,     /* C2..DF */
    C_E0,
    C_L3,     /* E1..EC, EE..EF */
    C_ED,
    C_F0,
    C_L4,     /* F1..F3 */
    C_F4,
    C_BAD,    /* C0, C1, F5..FF */
    C_COUNT
};

enum {
    S_ACCEPT = 0 * C_COUNT,
    S_REJECT = 1 * C_COUNT,
    S_CONT1 = 2 * C_COUNT,   /* one continuation byte left */
    S_CONT2 = 3 * C_COUNT,   /* two left */
    S_E0 = 4 * C_COUNT,      /* A0..BF then one more */
    S_ED = 5 * C_COUNT,      /* 80..9F (no surrogates) then one more */
    S_F0 = 6 * C_COUNT,      /* 90..BF then two more */
    S_CONT3 = 7 * C_COUNT,   /* three left */
    S_F4 = 8 * C_COUNT,      /* 80..8F (<= U+10FFFF) then two more */
};

static const uint8_t ws_utf8_class[256] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F, 90..9F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* A0..BF */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0..DF */
    11, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    /* E0..EF */
    5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 6, 6,
    /* F0..FF */
    8, 9, 9, 9, 10, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11,
};

#define R S_REJECT
static const uint8_t ws_utf8_trans[9 * C_COUNT] = {
    /*          ASCII    80..8F   90..9F   A0..BF   L2       E0    L3       ED    F0    L4       F4    BAD */
    /* ACCEPT */ S_ACCEPT, R,       R,       R,       S_CONT1, S_E0, S_CONT2, S_ED, S_F0, S_CONT3, S_F4, R,
    /* REJECT */ R,        R,       R,       R,       R,       R,    R,       R,    R,    R,       R,    R,
    /* CONT1 */  R,        S_ACCEPT, S_ACCEPT, S_ACCEPT, R,     R,    R,       R,    R,    R,       R,    R,
    /* CONT2 */  R,        S_CONT1, S_CONT1, S_CONT1, R,       R,    R,       R,    R,    R,       R,    R,
    /* E0 */     R,        R,       R,       S_CONT1, R,       R,    R,       R,    R,    R,       R,    R,
    /* ED */     R,        S_CONT1, S_CONT1, R,       R,       R,    R,       R,    R,    R,       R,    R,
    /* F0 */     R,        R,       S_CONT2, S_CONT2, R,       R,    R,       R,    R,    R,       R,    R,
    /* CONT3 */  R,        S_CONT2, S_CONT2, S_CONT2, R,       R,    R,       R,    R,    R,       R,    R,
    /* F4 */     R,        S_CONT2, R,       R,       R,       R,    R,       R,    R,    R,       R,    R,
};
#undef R

#define WS_HI8 UINT64_C(0x8080808080808080)

int ws_utf8_feed(ws_utf8 *u, const uint8_t *p, size_t n)
{
    uint32_t s = u->state;
    size_t i = 0;

    if (s == S_REJECT)
        return -1;
    while (i < n) {
        if (s == S_ACCEPT && p[i] < 0x80) {
            /* Text is mostly ASCII: skip it a word at a time, and on a word
             * with a high byte jump straight to that byte. */
            while (n - i >= 16) {
                uint64_t a, b;
                memcpy(&a, p + i, 8);
                memcpy(&b, p + i + 8, 8);
                if ((a | b) & WS_HI8)
                    break;
                i += 16;
            }
            while (n - i >= 8) {
                uint64_t a;
                memcpy(&a, p + i, 8);
                a &= WS_HI8;
                if (a) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                    i += (size_t)__builtin_ctzll(a) >> 3;
#endif
                    break;
                }
                i += 8;
            }
            while (i < n && p[i] < 0x80)
                i++;
            if (i == n)
                break;
        }
        s = ws_utf8_trans[s + ws_utf8_class[p[i++]]];
        if (s == S_REJECT) {
            u->state = s;
            return -1;
        }
    }
    u->state = s;
    return 0;
}

bool ws_utf8_valid(const uint8_t *p, size_t n)
{
    ws_utf8 u;
    ws_utf8_init(&u);
    return ws_utf8_feed(&u, p, n) == 0 && ws_utf8_complete(&u);
}
