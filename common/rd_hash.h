/* rd_hash: the routing hash. Documented and fixed forever, because every
 * gateway must map a key to the same shard, across versions and restarts.
 *
 *   rd_hash64(b)          = fmix64(FNV-1a-64(b))
 *   rd_hrw_score(key, s)  = fmix64(FNV-1a-64(key || 0x00 || s))
 *
 * FNV-1a-64: offset basis 0xcbf29ce484222325, prime 0x100000001b3, over the
 * bytes in order. fmix64 is MurmurHash3's 64-bit finalizer:
 *   h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33;
 *   h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33.
 * Rendezvous (highest random weight) routing: a key belongs to the shard
 * name with the highest score; ties (never seen in practice) go to the
 * byte-wise smaller name. Adding or removing one of N shards moves only the
 * keys whose winner changed: about 1/N of them.
 */
#ifndef RD_HASH_H
#define RD_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t rd_fnv1a64(const void *p, size_t n, uint64_t h);
uint64_t rd_fmix64(uint64_t h);
uint64_t rd_hash64(const void *p, size_t n);
uint64_t rd_hrw_score(const char *key, size_t klen, const char *shard, size_t slen);
/* Index of the owning name among names[0..n), or -1 when n == 0. */
int rd_hrw_pick(const char *key, size_t klen, const char *const *names, size_t n);

#define RD_FNV_BASIS 0xcbf29ce484222325ULL

#endif
