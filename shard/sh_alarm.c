/* The alarm schedule: a min-heap in memory, an index on disk.
 *
 * Alarms follow their objects: once a gateway tells the shard the routing
 * set (SET), an alarm for an object another shard owns is offered to that
 * shard through the gateway (ALARM_MOVE) until the owner confirms it has
 * recorded it in its own index (ALARM_MOVED); only then is it dropped here.
 * A due alarm this shard does not own is offered again instead of fired. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_hash.h"
#include "rd_log.h"
#include "rd_time.h"
#include "sh.h"

#define SH_ALARM_MOVE_RETRY_MS 2000

static char **members; /* the routing set from the last SET; none: we own every key */
static size_t nmembers;

#define SH_ALARM_MAX_RETRIES 10

static bool before(const sh_alarm *a, const sh_alarm *b)
{
    return a->at < b->at;
}

static void heap_push(sh_alarm a)
{
    if (sh.nalarms == sh.alarms_cap) {
        sh.alarms_cap = sh.alarms_cap ? sh.alarms_cap * 2 : 64;
        sh.alarms = rd_xrealloc(sh.alarms, sh.alarms_cap * sizeof *sh.alarms);
    }
    size_t i = sh.nalarms++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&a, &sh.alarms[p]))
            break;
        sh.alarms[i] = sh.alarms[p];
        i = p;
    }
    sh.alarms[i] = a;
}

static sh_alarm heap_pop(void)
{
    sh_alarm top = sh.alarms[0];
    sh_alarm last = sh.alarms[--sh.nalarms];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const sh_alarm *mv = &last;
        if (l < sh.nalarms && before(&sh.alarms[l], mv))
            m = l, mv = &sh.alarms[l];
        if (r < sh.nalarms && before(&sh.alarms[r], mv))
            m = r;
        if (m == i)
            break;
        sh.alarms[i] = sh.alarms[m];
        i = m;
    }
    if (sh.nalarms)
        sh.alarms[i] = last;
    return top;
}

static int load_one(void *ud, const uint8_t *key, size_t klen, const uint8_t *value, size_t vlen)
{
    uint64_t at;
    if (vlen != sizeof at)
        return 0;
    memcpy(&at, value, sizeof at);
    heap_push((sh_alarm){ at, 0, rd_xstrndup((const char *)key, klen) });
    return 0;
}

int sh_alarm_init(char err[RD_ERR_LEN])
{
    char key[128];
    int n = snprintf(key, sizeof key, "_alarms/%s", sh.cfg.name);
    if (sh_store_open(sh.cfg.data_dir, key, (size_t)n, SH_STORE_NORMAL, &sh.alarm_index, err) < 0)
        return -EIO;
    /* Everything the index lists; stale entries are checked when they fire. */
    uint8_t after[2049];
    size_t after_len = 0;
    for (;;) {
        sh_store_range r = { .start = after_len ? after : NULL, .start_len = after_len, .limit = 1000 };
        size_t before_n = sh.nalarms;
        sh_store_begin(sh.alarm_index);
        int got = sh_store_list(sh.alarm_index, &r, load_one, NULL, err);
        sh_store_commit(sh.alarm_index, NULL);
        if (got < 0)
            return got;
        if (got < 1000)
            break;
        /* Next page starts right after the last key loaded. */
        const char *last = NULL;
        for (size_t i = before_n; i < sh.nalarms; i++)
            if (!last || strcmp(sh.alarms[i].key, last) > 0)
                last = sh.alarms[i].key;
        after_len = strlen(last);
        memcpy(after, last, after_len);
        after[after_len++] = '\0';
    }
    if (sh.nalarms)
        rd_info("msg=\"alarms loaded\" count=%zu", sh.nalarms);
    return 0;
}

static bool owns(const char *key)
{
    if (!nmembers)
        return true;
    int i = rd_hrw_pick(key, strlen(key), (const char *const *)members, nmembers);
    return i >= 0 && strcmp(members[i], sh.cfg.name) == 0;
}

/* Still in our index (not fired, not moved away). */
static bool indexed(const char *key)
{
    char err[RD_ERR_LEN];
    rd_buf v = RD_BUF_INIT;
    sh_store_begin(sh.alarm_index);
    int r = sh_store_get(sh.alarm_index, key, strlen(key), &v, err);
    sh_store_commit(sh.alarm_index, NULL);
    rd_buf_free(&v);
    return r == 0;
}

static void offer(const sh_alarm *a)
{
    for (sh_link *l = sh.links; l; l = l->next) {
        if (!l->hello || l->closing)
            continue;
        pr_enc_alarm(&l->out, PR_ALARM_MOVE, a->key, strlen(a->key), a->at, a->retries, sh.cfg.name,
                     strlen(sh.cfg.name));
        sh_link_want_flush(l);
        return;
    }
}

void sh_alarm_set_members(const pr_msg *m)
{
    for (size_t i = 0; i < nmembers; i++)
        free(members[i]);
    free(members);
    pr_list l = m->u.set.members;
    members = rd_xcalloc(l.n ? l.n : 1, sizeof *members);
    nmembers = 0;
    pr_str s;
    while (pr_list_next_str(&l, &s) == 0)
        members[nmembers++] = rd_xstrndup(s.p, s.n);
    size_t offered = 0;
    for (size_t i = 0; i < sh.nalarms; i++)
        if (!owns(sh.alarms[i].key) && indexed(sh.alarms[i].key)) {
            offer(&sh.alarms[i]);
            offered++;
        }
    if (offered)
        rd_info("msg=\"offering alarms to their objects' new shards\" count=%zu", offered);
}

size_t sh_alarm_foreign(void)
{
    size_t n = 0;
    for (size_t i = 0; i < sh.nalarms; i++)
        n += !owns(sh.alarms[i].key) && indexed(sh.alarms[i].key);
    return n;
}

void sh_alarm_take(sh_link *l, const pr_msg *m)
{
    pr_str k = m->u.alarm.key;
    if (k.n == 0 || k.n > 2048 || sh_alarm_schedule(k.p, k.n, m->u.alarm.at, (unsigned)m->u.alarm.retries) < 0)
        return; /* not confirmed: the giver offers it again */
    rd_debug("msg=\"alarm taken over\" object=%.*s from=%.*s", (int)k.n, k.p, (int)m->u.alarm.shard.n,
             m->u.alarm.shard.p);
    pr_enc_alarm(&l->out, PR_ALARM_MOVED, k.p, k.n, m->u.alarm.at, 0, m->u.alarm.shard.p,
                 m->u.alarm.shard.n);
    sh_link_want_flush(l);
}

void sh_alarm_given(const pr_msg *m)
{
    char key[2049];
    if (m->u.alarm.key.n >= sizeof key)
        return;
    memcpy(key, m->u.alarm.key.p, m->u.alarm.key.n);
    key[m->u.alarm.key.n] = '\0';
    if (owns(key))
        return; /* the set changed back meanwhile: keep it */
    sh_alarm_forget(key);
    rd_debug("msg=\"alarm handed over\" object=%s", key);
}

void sh_alarm_shutdown(void)
{
    for (size_t i = 0; i < nmembers; i++)
        free(members[i]);
    free(members);
    members = NULL;
    nmembers = 0;
    while (sh.nalarms)
        free(heap_pop().key);
    free(sh.alarms);
    sh.alarms = NULL;
    sh.alarms_cap = 0;
    sh_store_close(sh.alarm_index);
    sh.alarm_index = NULL;
}

int sh_alarm_schedule(const char *key, size_t klen, uint64_t at, unsigned retries)
{
    char err[RD_ERR_LEN];
    sh_store_begin(sh.alarm_index);
    int r = sh_store_put(sh.alarm_index, key, klen, &at, sizeof at, err);
    if (r == 0)
        r = sh_store_commit(sh.alarm_index, err);
    else
        sh_store_rollback(sh.alarm_index);
    if (r < 0) {
        rd_err("msg=\"alarm index write failed\" object=%.*s err=\"%s\"", (int)klen, key, err);
        return r;
    }
    heap_push((sh_alarm){ at, retries, rd_xstrndup(key, klen) });
    return 0;
}

void sh_alarm_forget(const char *key)
{
    char err[RD_ERR_LEN];
    sh_store_begin(sh.alarm_index);
    sh_store_del(sh.alarm_index, key, strlen(key), err);
    sh_store_commit(sh.alarm_index, err);
}

void sh_alarm_tick(void)
{
    uint64_t now = rd_wall_ms();
    /* A bounded number per tick, so a backlog does not stall the loop. */
    for (int n = 0; n < 1000 && sh.nalarms && sh.alarms[0].at <= now; n++) {
        sh_alarm a = heap_pop();
        if (nmembers && !indexed(a.key)) {
            free(a.key); /* handed over, or fired by an earlier entry */
            continue;
        }
        if (!owns(a.key)) {
            /* Another shard's object: offer it again until it is taken. */
            offer(&a);
            a.at = now + SH_ALARM_MOVE_RETRY_MS;
            heap_push(a);
            continue;
        }
        int r = sh_object_fire_alarm(a.key, strlen(a.key), a.at, a.retries);
        if (r == -EAGAIN) {
            /* Not due any more (moved) or not ours to fire now: the object's
             * store knows; nothing to do for this entry. */
        } else if (r == -ENOENT) {
            sh_alarm_forget(a.key); /* no alarm in the object: stale entry */
        } else if (r < 0) {
            if (a.retries + 1 >= SH_ALARM_MAX_RETRIES) {
                rd_err("msg=\"alarm failed; giving up\" object=%s tries=%u", a.key, a.retries + 1);
            } else {
                uint64_t delay = 1000ull << a.retries;
                rd_warn("msg=\"alarm failed; will retry\" object=%s retry_in_ms=%llu", a.key,
                        (unsigned long long)delay);
                heap_push((sh_alarm){ now + delay, a.retries + 1, a.key });
                continue;
            }
        } else {
            sh.alarms_fired++;
        }
        free(a.key);
    }
}
