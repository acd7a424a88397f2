#include "rd_map.h"

#include <stdlib.h>
#include <string.h>

#include "rd_buf.h"
#include "rd_hash.h"

void rd_map_init(rd_map *m, int strkeys)
{
    memset(m, 0, sizeof *m);
    m->strkeys = strkeys;
}

void rd_map_free(rd_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

static uint64_t str_hash(const char *k, size_t n)
{
    uint64_t h = rd_hash64(k, n);
    return h ? h : 1;
}

static size_t slot_of(const rd_map *m, uint64_t h)
{
    return (size_t)rd_fmix64(h) & (m->cap - 1);
}

static int slot_match(const rd_map *m, const rd_map_slot *s, uint64_t h, const char *k, size_t n)
{
    if (s->hash != h)
        return 0;
    return !m->strkeys || (s->klen == n && memcmp(s->key, k, n) == 0);
}

static void grow(rd_map *m)
{
    rd_map_slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap = oldcap ? oldcap * 2 : 16;
    m->slots = rd_xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].hash)
            continue;
        size_t j = slot_of(m, old[i].hash);
        while (m->slots[j].hash)
            j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

static void *lookup(const rd_map *m, uint64_t h, const char *k, size_t n)
{
    if (!m->cap)
        return NULL;
    for (size_t i = slot_of(m, h);; i = (i + 1) & (m->cap - 1)) {
        const rd_map_slot *s = &m->slots[i];
        if (!s->hash)
            return NULL;
        if (slot_match(m, s, h, k, n))
            return s->val;
    }
}

static void insert(rd_map *m, uint64_t h, const char *k, size_t n, void *val)
{
    if ((m->count + 1) * 4 > m->cap * 3)
        grow(m);
    size_t i = slot_of(m, h);
    for (;; i = (i + 1) & (m->cap - 1)) {
        rd_map_slot *s = &m->slots[i];
        if (!s->hash)
            break;
        if (slot_match(m, s, h, k, n)) {
            s->val = val;
            s->key = k;
            return;
        }
    }
    m->slots[i] = (rd_map_slot){ h, k, n, val };
    m->count++;
}

static void *remove_key(rd_map *m, uint64_t h, const char *k, size_t n)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1, i = slot_of(m, h);
    for (;; i = (i + 1) & mask) {
        if (!m->slots[i].hash)
            return NULL;
        if (slot_match(m, &m->slots[i], h, k, n))
            break;
    }
    void *val = m->slots[i].val;
    /* Backward shift: pull later entries of the probe run into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
        size_t home = slot_of(m, m->slots[j].hash);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    memset(&m->slots[hole], 0, sizeof m->slots[hole]);
    m->count--;
    return val;
}

void *rd_map_get(const rd_map *m, uint64_t key) { return lookup(m, key, NULL, 0); }
void rd_map_put(rd_map *m, uint64_t key, void *val) { insert(m, key, NULL, 0, val); }
void *rd_map_del(rd_map *m, uint64_t key) { return remove_key(m, key, NULL, 0); }

void *rd_smap_get(const rd_map *m, const char *key, size_t klen)
{
    return lookup(m, str_hash(key, klen), key, klen);
}

void rd_smap_put(rd_map *m, const char *key, size_t klen, void *val)
{
    insert(m, str_hash(key, klen), key, klen, val);
}

void *rd_smap_del(rd_map *m, const char *key, size_t klen)
{
    return remove_key(m, str_hash(key, klen), key, klen);
}

void *rd_map_next(const rd_map *m, size_t *iter)
{
    for (size_t i = *iter; i < m->cap; i++) {
        if (m->slots[i].hash) {
            *iter = i + 1;
            return m->slots[i].val;
        }
    }
    *iter = m->cap;
    return NULL;
}
