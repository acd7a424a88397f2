#include "rd_uuid.h"

#include <string.h>
#include <sys/random.h>

#include "rd_time.h"

static uint64_t rng_state[2];
static uint64_t last_ms;
static uint16_t seq;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoroshiro128+: ids need to be unpredictable enough not to collide, not to
 * be secret; the seed comes from the kernel. */
static uint64_t rng_next(void)
{
    if (rng_state[0] == 0 && rng_state[1] == 0) {
        if (getrandom(rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state ||
            (rng_state[0] == 0 && rng_state[1] == 0)) {
            rng_state[0] = rd_mono_ns() | 1;
            rng_state[1] = rd_wall_ms() ^ 0x9e3779b97f4a7c15ULL;
        }
    }
    uint64_t s0 = rng_state[0], s1 = rng_state[1];
    uint64_t r = s0 + s1;
    s1 ^= s0;
    rng_state[0] = rotl(s0, 24) ^ s1 ^ (s1 << 16);
    rng_state[1] = rotl(s1, 37);
    return r;
}

void rd_uuid7(uint8_t out[16])
{
    uint64_t ms = rd_wall_ms();
    if (ms > last_ms) {
        last_ms = ms;
        seq = (uint16_t)(rng_next() & 0x1ff); /* random start, room to count */
    } else {
        ms = last_ms;
        if (++seq > 0xfff) { /* counter exhausted: borrow the next millisecond */
            last_ms = ++ms;
            seq = 0;
        }
    }
    uint64_t r = rng_next();
    out[0] = (uint8_t)(ms >> 40);
    out[1] = (uint8_t)(ms >> 32);
    out[2] = (uint8_t)(ms >> 24);
    out[3] = (uint8_t)(ms >> 16);
    out[4] = (uint8_t)(ms >> 8);
    out[5] = (uint8_t)ms;
    out[6] = (uint8_t)(0x70 | ((seq >> 8) & 0x0f));
    out[7] = (uint8_t)seq;
    memcpy(out + 8, &r, 8);
    out[8] = (uint8_t)(0x80 | (out[8] & 0x3f));
}

void rd_uuid_format(const uint8_t u[16], char out[RD_UUID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[u[i] >> 4];
        *o++ = hex[u[i] & 15];
    }
    *o = '\0';
}

void rd_uuid7_str(char out[RD_UUID_STR_LEN + 1])
{
    uint8_t u[16];
    rd_uuid7(u);
    rd_uuid_format(u, out);
}
