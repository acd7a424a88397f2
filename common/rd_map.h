/* rd_map: open-addressing hash maps for the two lookups on every message:
 * u64 id -> pointer (connections by id) and string -> pointer (objects by
 * key). Linear probing with backward-shift deletion, so there are no
 * tombstones and lookups stay short under churn. Values are borrowed
 * pointers; string keys are borrowed too (the value usually owns them) and
 * must stay valid while present. */
#ifndef RD_MAP_H
#define RD_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rd_map_slot {
    uint64_t hash;    /* u64 maps: the key itself; 0 marks an empty slot in both kinds */
    const char *key;  /* string maps only */
    size_t klen;
    void *val;
} rd_map_slot;

typedef struct rd_map {
    rd_map_slot *slots;
    size_t cap;       /* power of two */
    size_t count;
    int strkeys;
} rd_map;

void rd_map_init(rd_map *m, int strkeys);
void rd_map_free(rd_map *m);

/* u64 keys; key 0 is reserved (ids start at 1). put replaces; del returns the old value. */
void *rd_map_get(const rd_map *m, uint64_t key);
void rd_map_put(rd_map *m, uint64_t key, void *val);
void *rd_map_del(rd_map *m, uint64_t key);

void *rd_smap_get(const rd_map *m, const char *key, size_t klen);
void rd_smap_put(rd_map *m, const char *key, size_t klen, void *val);
void *rd_smap_del(rd_map *m, const char *key, size_t klen);

/* Iterate: for (size_t i = 0; (v = rd_map_next(m, &i)); ) — not while mutating. */
void *rd_map_next(const rd_map *m, size_t *iter);

#endif
