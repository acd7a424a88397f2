#include "rd_hash.h"

#include <string.h>

uint64_t rd_fnv1a64(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t rd_fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t rd_hash64(const void *p, size_t n)
{
    return rd_fmix64(rd_fnv1a64(p, n, RD_FNV_BASIS));
}

uint64_t rd_hrw_score(const char *key, size_t klen, const char *shard, size_t slen)
{
    static const uint8_t sep = 0;
    uint64_t h = rd_fnv1a64(key, klen, RD_FNV_BASIS);
    h = rd_fnv1a64(&sep, 1, h);
    h = rd_fnv1a64(shard, slen, h);
    return rd_fmix64(h);
}

int rd_hrw_pick(const char *key, size_t klen, const char *const *names, size_t n)
{
    int best = -1;
    uint64_t best_score = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = rd_hrw_score(key, klen, names[i], strlen(names[i]));
        if (best < 0 || s > best_score ||
            (s == best_score && strcmp(names[i], names[best]) < 0)) {
            best = (int)i;
            best_score = s;
        }
    }
    return best;
}
