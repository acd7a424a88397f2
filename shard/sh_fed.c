/* Federation through Redis: see sh_fed.h for the contract, README
 * "Federation" for the envelope.
 *
 * Each of the two connections (pub, sub) runs this cycle on its own:
 *
 *   IDLE --connect--> CONNECTING --TCP up--> HELLO (AUTH or PING sent)
 *     ^                   |                     | OK: READY (sub: SUBSCRIBE all)
 *     |                   | refused             | error
 *     +--retry timer <----+---------------------+-- disconnect (from READY too)
 *
 * The retry delay doubles from 100 ms to 1 s and is drawn in [d/2, d]
 * (jitter), so shards of many cells do not reconnect in lockstep when Redis
 * comes back. READY resets it.
 *
 * The subscriber also holds "roomd:origin:<origin>" for its whole life, so
 * its subscription count never falls to zero: hiredis 0.14 leaves
 * subscribed mode when it does, which races with a SUBSCRIBE in flight.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "pr_mp.h"
#include "rd_log.h"
#include "rd_time.h"
#include "sh.h"
#include "sh_fed.h"
#include "rd_redis.h"

#define FED_PREFIX "roomd:o:"
#define FED_PREFIX_LEN 8
#define FED_ORIGIN_LEN 32          /* hex of 16 random bytes */
#define FED_MAX_ORIGINS 32         /* origins tracked per object */
#define FED_BACKOFF_MIN_MS 100
#define FED_BACKOFF_MAX_MS 1000
#define FED_MAX_INFLIGHT 100000    /* publishes awaiting Redis' reply before we drop */
#define FED_MAX_INFLIGHT_BYTES (64u << 20) /* and their bytes */
#define FED_SUB_BATCH 512          /* channels per SUBSCRIBE on resubscription */

typedef struct fed_origin {
    char id[FED_ORIGIN_LEN + 1];
    uint64_t last;
} fed_origin;

/* Per object, hung on sh_object.fed. */
typedef struct sh_fed_obj {
    uint64_t pub_seq;           /* last sequence number this process published */
    bool watched;               /* has connections: wants its channel */
    bool subscribed;            /* Redis confirmed the channel on this connection */
    fed_origin origins[FED_MAX_ORIGINS];
    size_t norigins, next_slot;
} sh_fed_obj;

typedef struct fed_link {
    const char *role;           /* "pub" or "sub" */
    redisAsyncContext *ac;
    bool ready;
    bool was_up;                /* connected at least once: log the loss */
    uint64_t backoff_ms;
    uint64_t fails;             /* connection attempts failed since the last READY */
    struct event *ev_retry;
} fed_link;

static struct {
    bool on, stopping;
    char host[256];
    int port;
    char *user, *password;
    char origin[FED_ORIGIN_LEN + 1];
    char ctl[64];               /* roomd:origin:<origin> */
    fed_link pub, sub;
    uint64_t rng;
    size_t inflight, inflight_bytes;
    size_t subscribed;          /* object channels confirmed */
    uint64_t published, dropped, unconfirmed, received, delivered, echoes, gaps, bad;
    rd_buf scratch;
    /* Federation lag, sampled: one publish at a time is timed until its own
     * echo comes back through Redis (what every other cell sees at about
     * the same time). A sample whose echo never comes (its object stopped
     * listening, Redis lost it) is replaced after FED_LAG_GIVE_UP publishes. */
    const sh_fed_obj *lag_obj;
    uint64_t lag_seq, lag_start_ns, lag_published;
    rd_hist lag;
} fed;

#define FED_LAG_GIVE_UP 10000

static void link_connect(fed_link *l);

static uint64_t rng_next(void)
{
    /* xorshift64*: jitter only, no security */
    fed.rng ^= fed.rng >> 12;
    fed.rng ^= fed.rng << 25;
    fed.rng ^= fed.rng >> 27;
    return fed.rng * 2685821657736338717ULL;
}

/* --- URL ------------------------------------------------------------------ */

static int parse_url(const char *url, char err[RD_ERR_LEN])
{
    rd_redis_url u;
    int r = rd_redis_url_parse(url, &u, err);
    if (r < 0)
        return r;
    snprintf(fed.host, sizeof fed.host, "%s", u.host);
    fed.port = u.port;
    fed.user = u.user;         /* ownership moves to fed */
    fed.password = u.password;
    return 0;
}

/* --- envelope ------------------------------------------------------------- */

typedef struct fed_env {
    int opcode;
    const uint8_t *data;
    size_t len;
    const char *origin;         /* NULL: a backend's message, not sequenced */
    size_t origin_len;
    uint64_t seq;
} fed_env;

static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; }
        else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; }
        else return false;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static int b64_val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Standard or URL-safe alphabet, padding optional. Appends to out. */
static int b64_decode(const char *s, size_t n, rd_buf *out)
{
    while (n && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -EBADMSG;
    uint8_t *w = rd_buf_reserve(out, n / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((uint8_t)s[i]);
        if (v < 0)
            return -EBADMSG;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            w[o++] = (uint8_t)(acc >> bits);
        }
    }
    rd_buf_commit(out, o);
    return 0;
}

static int env_type(const char *t, size_t n)
{
    if (n == 4 && memcmp(t, "text", 4) == 0)
        return ROOMD_TEXT;
    if (n == 6 && memcmp(t, "binary", 6) == 0)
        return ROOMD_BINARY;
    return -1;
}

/* JSON: {"type":"text"|"binary","data":"..." (base64 for binary),
 * "origin":"...","seq":N (both optional)}. Binary data lands in bin. */
static int env_decode_json(const uint8_t *p, size_t n, fed_env *e, json_t **ret_root, rd_buf *bin)
{
    json_t *root = json_loadb((const char *)p, n, 0, NULL);
    if (!json_is_object(root))
        goto bad;
    json_t *t = json_object_get(root, "type"), *d = json_object_get(root, "data");
    json_t *o = json_object_get(root, "origin"), *s = json_object_get(root, "seq");
    if (!json_is_string(t) || !json_is_string(d))
        goto bad;
    e->opcode = env_type(json_string_value(t), json_string_length(t));
    if (e->opcode < 0)
        goto bad;
    if (e->opcode == ROOMD_TEXT) {
        e->data = (const uint8_t *)json_string_value(d);
        e->len = json_string_length(d);
    } else {
        if (b64_decode(json_string_value(d), json_string_length(d), bin) < 0)
            goto bad;
        e->data = rd_buf_data(bin) ? rd_buf_data(bin) : (const uint8_t *)"";
        e->len = rd_buf_avail(bin);
    }
    if (json_is_string(o) && json_is_integer(s) && json_integer_value(s) > 0) {
        e->origin = json_string_value(o);
        e->origin_len = json_string_length(o);
        e->seq = (uint64_t)json_integer_value(s);
    }
    *ret_root = root;
    return 0;
bad:
    json_decref(root);
    return -EBADMSG;
}

/* msgpack: a map with the same keys; data is bin or str. */
static int env_decode_mp(const uint8_t *p, size_t n, fed_env *e)
{
    pr_mp_cur c;
    pr_mp_cur_init(&c, p, n);
    uint32_t nk;
    if (pr_mp_get_map(&c, &nk) < 0)
        return -EBADMSG;
    bool have_data = false;
    e->opcode = -1;
    for (uint32_t i = 0; i < nk; i++) {
        const char *k, *v;
        size_t kl, vl;
        if (pr_mp_get_str(&c, &k, &kl) < 0)
            return -EBADMSG;
        if (kl == 4 && memcmp(k, "type", 4) == 0) {
            if (pr_mp_get_str(&c, &v, &vl) < 0)
                return -EBADMSG;
            e->opcode = env_type(v, vl);
        } else if (kl == 4 && memcmp(k, "data", 4) == 0) {
            if (pr_mp_get_bin(&c, &e->data, &e->len) < 0)
                return -EBADMSG;
            have_data = true;
        } else if (kl == 6 && memcmp(k, "origin", 6) == 0) {
            if (pr_mp_get_str(&c, &e->origin, &e->origin_len) < 0)
                return -EBADMSG;
        } else if (kl == 3 && memcmp(k, "seq", 3) == 0) {
            if (pr_mp_get_uint(&c, &e->seq) < 0)
                return -EBADMSG;
        } else if (pr_mp_skip(&c) < 0) {
            return -EBADMSG;
        }
    }
    if (e->opcode < 0 || !have_data)
        return -EBADMSG;
    if (!e->origin || e->seq == 0) {
        e->origin = NULL;
        e->seq = 0;
    }
    if (!e->data)
        e->data = (const uint8_t *)"";
    return 0;
}

/* --- per-object state ------------------------------------------------------ */

static sh_fed_obj *obj_fed(sh_object *o)
{
    if (!o->fed)
        o->fed = rd_xcalloc(1, sizeof(sh_fed_obj));
    return o->fed;
}

static const char *channel_of(const char *key, size_t klen, size_t *ret_len)
{
    rd_buf_reset(&fed.scratch, 1 << 16);
    rd_buf_append(&fed.scratch, FED_PREFIX, FED_PREFIX_LEN);
    rd_buf_append(&fed.scratch, key, klen);
    *ret_len = rd_buf_avail(&fed.scratch);
    return (const char *)rd_buf_data(&fed.scratch);
}

static void sub_cb(redisAsyncContext *ac, void *r, void *priv);

static void channel_cmd(const char *cmd, sh_object *o)
{
    size_t cl;
    const char *ch = channel_of(o->key, o->key_len, &cl);
    const char *argv[2] = { cmd, ch };
    size_t lens[2] = { strlen(cmd), cl };
    redisAsyncCommandArgv(fed.sub.ac, sub_cb, NULL, 2, argv, lens);
}

void sh_fed_stats_get(sh_fed_stats *ret)
{
    *ret = (sh_fed_stats){ fed.published, fed.dropped, fed.received, fed.gaps, fed.lag };
}

int sh_fed_state(void)
{
    if (!fed.on)
        return SH_FED_OFF;
    if (!fed.pub.ready || !fed.sub.ready)
        return SH_FED_DEGRADED;
    size_t watched = 0;
    sh_object *o;
    size_t it = 0;
    while ((o = rd_map_next(&sh.objects, &it)))
        watched += o->fed && o->fed->watched;
    return fed.subscribed >= watched ? SH_FED_OK : SH_FED_DEGRADED;
}

void sh_fed_watch(sh_object *o)
{
    if (!fed.on)
        return;
    sh_fed_obj *f = obj_fed(o);
    f->watched = true;
    if (fed.sub.ready)
        channel_cmd("SUBSCRIBE", o);
}

void sh_fed_unwatch(sh_object *o)
{
    if (!fed.on || !o->fed)
        return;
    sh_fed_obj *f = o->fed;
    f->watched = false;
    if (fed.lag_obj == f)
        fed.lag_obj = NULL;
    /* Whoever joins later starts from what arrives then: no gaps across the
     * time nobody was here. */
    f->norigins = f->next_slot = 0;
    if (fed.sub.ready)
        channel_cmd("UNSUBSCRIBE", o);
}

void sh_fed_forget(sh_object *o)
{
    sh_fed_obj *f = o->fed;
    if (!f)
        return;
    if (fed.lag_obj == f)
        fed.lag_obj = NULL;
    if (f->subscribed)
        fed.subscribed--;
    free(f);
    o->fed = NULL;
}

/* --- publishing ----------------------------------------------------------- */

static void pub_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    size_t bytes = (size_t)(uintptr_t)priv;
    if (fed.inflight)
        fed.inflight--;
    fed.inflight_bytes -= bytes < fed.inflight_bytes ? bytes : fed.inflight_bytes;
    if (!reply)
        fed.unconfirmed++; /* the connection went down first: maybe delivered */
    else if (reply->type == REDIS_REPLY_ERROR)
        rd_warn("msg=\"redis refused a publish\" err=\"%s\"", reply->str);
}

void sh_fed_publish(sh_object *o, int opcode, const void *data, size_t len)
{
    if (!fed.on)
        return;
    sh_fed_obj *f = obj_fed(o);
    /* Consumed even when dropped: receivers then see exactly what is missing. */
    uint64_t seq = ++f->pub_seq;
    if (!fed.pub.ready || fed.inflight >= FED_MAX_INFLIGHT ||
        fed.inflight_bytes + len > FED_MAX_INFLIGHT_BYTES) {
        if (fed.dropped++ % 1000 == 0)
            rd_warn("msg=\"federation publish dropped\" object=%s redis=%s dropped_total=%" PRIu64,
                    o->key, fed.pub.ready ? "backlogged" : "down", fed.dropped);
        return;
    }
    rd_buf env = RD_BUF_INIT;
    pr_mp_put_map(&env, 4);
    pr_mp_put_str(&env, "origin", 6);
    pr_mp_put_str(&env, fed.origin, FED_ORIGIN_LEN);
    pr_mp_put_str(&env, "seq", 3);
    pr_mp_put_uint(&env, seq);
    pr_mp_put_str(&env, "type", 4);
    if (opcode == ROOMD_TEXT)
        pr_mp_put_str(&env, "text", 4);
    else
        pr_mp_put_str(&env, "binary", 6);
    pr_mp_put_str(&env, "data", 4);
    pr_mp_put_bin_header(&env, (uint32_t)len);
    rd_buf_append(&env, data, len);
    size_t cl;
    const char *ch = channel_of(o->key, o->key_len, &cl);
    const char *argv[3] = { "PUBLISH", ch, (const char *)rd_buf_data(&env) };
    size_t lens[3] = { 7, cl, rd_buf_avail(&env) };
    /* hiredis queues it; the write happens on a later loop turn, batched with
     * every other publish of this turn (pipelined). */
    if (redisAsyncCommandArgv(fed.pub.ac, pub_cb, (void *)(uintptr_t)lens[2], 3, argv, lens) == REDIS_OK) {
        fed.inflight++;
        fed.inflight_bytes += lens[2];
        fed.published++;
        if (!fed.lag_obj || fed.published - fed.lag_published > FED_LAG_GIVE_UP) {
            fed.lag_obj = f;
            fed.lag_seq = seq;
            fed.lag_start_ns = rd_mono_ns();
            fed.lag_published = fed.published;
        }
    } else {
        fed.dropped++;
    }
    rd_buf_free(&env);
}

/* --- receiving ------------------------------------------------------------ */

static void track_seq(sh_object *o, const fed_env *e)
{
    sh_fed_obj *f = obj_fed(o);
    size_t n = e->origin_len < FED_ORIGIN_LEN ? e->origin_len : FED_ORIGIN_LEN;
    fed_origin *t = NULL;
    for (size_t i = 0; i < f->norigins; i++)
        if (strlen(f->origins[i].id) == n && memcmp(f->origins[i].id, e->origin, n) == 0) {
            t = &f->origins[i];
            break;
        }
    if (!t) {
        /* First message from this origin since we joined: the baseline. */
        if (f->norigins < FED_MAX_ORIGINS)
            t = &f->origins[f->norigins++];
        else
            t = &f->origins[f->next_slot++ % FED_MAX_ORIGINS];
        memcpy(t->id, e->origin, n);
        t->id[n] = '\0';
        t->last = e->seq;
        return;
    }
    if (e->seq > t->last + 1) {
        uint64_t missing = e->seq - t->last - 1;
        fed.gaps += missing;
        rd_info("msg=\"federation gap\" object=%s origin=%s missing=%" PRIu64 " after_seq=%" PRIu64
                " gaps_total=%" PRIu64, o->key, t->id, missing, t->last, fed.gaps);
    } else if (e->seq <= t->last) {
        rd_debug("msg=\"federation sequence restarted\" object=%s origin=%s seq=%" PRIu64
                 " last=%" PRIu64, o->key, t->id, e->seq, t->last);
    }
    t->last = e->seq;
}

static void on_message(const char *ch, size_t chl, const uint8_t *p, size_t n)
{
    if (chl <= FED_PREFIX_LEN || memcmp(ch, FED_PREFIX, FED_PREFIX_LEN) != 0)
        return; /* our own control channel */
    fed.received++;
    sh_object *o = rd_smap_get(&sh.objects, ch + FED_PREFIX_LEN, chl - FED_PREFIX_LEN);
    if (!o || !o->nconns || !o->fed || !o->fed->watched)
        return; /* nobody here any more: an UNSUBSCRIBE is on its way */
    fed_env e = { 0 };
    json_t *root = NULL;
    rd_buf bin = RD_BUF_INIT;
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    int r = i < n && p[i] == '{' ? env_decode_json(p, n, &e, &root, &bin) : env_decode_mp(p, n, &e);
    if (r < 0 || (e.opcode == ROOMD_TEXT && !utf8_valid(e.data, e.len))) {
        if (fed.bad++ % 100 == 0)
            rd_warn("msg=\"bad federation envelope\" object=%s bytes=%zu bad_total=%" PRIu64, o->key,
                    n, fed.bad);
        goto out;
    }
    if (e.origin && e.origin_len == FED_ORIGIN_LEN && memcmp(e.origin, fed.origin, FED_ORIGIN_LEN) == 0) {
        fed.echoes++;
        if (o->fed == fed.lag_obj && e.seq == fed.lag_seq) {
            rd_hist_observe(&fed.lag, (rd_mono_ns() - fed.lag_start_ns) / 1000);
            fed.lag_obj = NULL;
        }
        goto out;
    }
    if (e.origin)
        track_seq(o, &e);
    sh_broadcast_local(o, e.opcode, e.data, e.len, NULL);
    fed.delivered++;
out:
    json_decref(root);
    rd_buf_free(&bin);
}

static void sub_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *type = reply->element[0]->str;
    const char *ch = reply->element[1]->str;
    size_t chl = reply->element[1]->len;
    if (strcmp(type, "message") == 0) {
        if (reply->element[2]->type == REDIS_REPLY_STRING)
            on_message(ch, chl, (const uint8_t *)reply->element[2]->str, reply->element[2]->len);
        return;
    }
    if (chl <= FED_PREFIX_LEN || memcmp(ch, FED_PREFIX, FED_PREFIX_LEN) != 0)
        return;
    sh_object *o = rd_smap_get(&sh.objects, ch + FED_PREFIX_LEN, chl - FED_PREFIX_LEN);
    sh_fed_obj *f = o ? o->fed : NULL;
    if (strcmp(type, "subscribe") == 0) {
        if (f && !f->subscribed) {
            f->subscribed = true;
            fed.subscribed++;
        }
    } else if (strcmp(type, "unsubscribe") == 0) {
        if (f && f->subscribed) {
            f->subscribed = false;
            fed.subscribed--;
        }
        /* Someone joined again while the UNSUBSCRIBE was in flight: hiredis
         * forgot the channel with this reply, so ask again. */
        if (f && f->watched && fed.sub.ready)
            channel_cmd("SUBSCRIBE", o);
    }
}

/* --- connections ------------------------------------------------------------ */

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    link_connect(arg);
}

static void link_retry(fed_link *l)
{
    if (fed.stopping)
        return;
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : FED_BACKOFF_MIN_MS;
    if (l->backoff_ms > FED_BACKOFF_MAX_MS)
        l->backoff_ms = FED_BACKOFF_MAX_MS;
    uint64_t d = l->backoff_ms / 2 + rng_next() % (l->backoff_ms / 2 + 1);
    struct timeval tv = { (time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000 };
    evtimer_add(l->ev_retry, &tv);
    rd_debug("msg=\"redis reconnect scheduled\" role=%s in_ms=%" PRIu64, l->role, d);
}

static void resubscribe(void)
{
    const char *argv[FED_SUB_BATCH + 1];
    size_t lens[FED_SUB_BATCH + 1];
    char *chans[FED_SUB_BATCH];
    size_t n = 0, total = 0;
    sh_object *o;
    size_t it = 0;
    argv[0] = "SUBSCRIBE";
    lens[0] = 9;
    argv[1] = fed.ctl;
    lens[1] = strlen(fed.ctl);
    redisAsyncCommandArgv(fed.sub.ac, sub_cb, NULL, 2, argv, lens);
    for (;;) {
        o = rd_map_next(&sh.objects, &it);
        if (o && o->fed && o->fed->watched) {
            size_t cl;
            const char *ch = channel_of(o->key, o->key_len, &cl);
            chans[n] = rd_xstrndup(ch, cl);
            argv[n + 1] = chans[n];
            lens[n + 1] = cl;
            n++;
            total++;
        }
        if (n && (n == FED_SUB_BATCH || !o)) {
            redisAsyncCommandArgv(fed.sub.ac, sub_cb, NULL, (int)n + 1, argv, lens);
            for (size_t i = 0; i < n; i++)
                free(chans[i]);
            n = 0;
        }
        if (!o)
            break;
    }
    rd_info("msg=\"redis resubscribed\" channels=%zu", total);
}

static void hello_cb(redisAsyncContext *ac, void *r, void *priv)
{
    fed_link *l = priv;
    redisReply *reply = r;
    if (!reply || l->ac != ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        rd_err("msg=\"redis refused us\" role=%s redis=%s:%d err=\"%s\"", l->role, fed.host, fed.port,
               reply->str);
        redisAsyncDisconnect(ac); /* the disconnect callback schedules a retry */
        return;
    }
    l->ready = true;
    l->backoff_ms = 0;
    l->fails = 0;
    rd_info("msg=\"redis connected\" role=%s redis=%s:%d origin=%s dropped_total=%" PRIu64
            " gaps_total=%" PRIu64, l->role, fed.host, fed.port, fed.origin, fed.dropped, fed.gaps);
    l->was_up = true;
    if (l == &fed.sub)
        resubscribe();
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    fed_link *l = ac->data;
    if (status == REDIS_OK)
        return;
    /* hiredis frees the context after this callback. */
    if (l->fails++ == 0)
        rd_warn("msg=\"redis unreachable\" role=%s redis=%s:%d err=\"%s\"", l->role, fed.host,
                fed.port, ac->errstr);
    l->ac = NULL;
    l->ready = false;
    link_retry(l);
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    fed_link *l = ac->data;
    bool was_ready = l->ready;
    l->ac = NULL;
    l->ready = false;
    if (l == &fed.sub) {
        sh_object *o;
        size_t it = 0;
        while ((o = rd_map_next(&sh.objects, &it)))
            if (o->fed)
                o->fed->subscribed = false;
        fed.subscribed = 0;
    }
    if (fed.stopping)
        return;
    if (was_ready)
        rd_warn("msg=\"redis disconnected\" role=%s redis=%s:%d err=\"%s\"", l->role, fed.host,
                fed.port, status == REDIS_OK ? "closed" : ac->errstr);
    link_retry(l);
}

static void link_connect(fed_link *l)
{
    if (fed.stopping || l->ac)
        return;
    redisAsyncContext *ac = redisAsyncConnect(fed.host, fed.port);
    if (!ac || ac->err) {
        if (l->fails++ == 0)
            rd_warn("msg=\"redis unreachable\" role=%s redis=%s:%d err=\"%s\"", l->role, fed.host,
                    fed.port, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        link_retry(l);
        return;
    }
    ac->data = l;
    l->ac = ac;
    redisLibeventAttach(ac, sh.base);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    if (fed.password) {
        const char *argv[3] = { "AUTH", fed.user ? fed.user : fed.password, fed.password };
        size_t lens[3] = { 4, strlen(argv[1]), strlen(fed.password) };
        redisAsyncCommandArgv(ac, hello_cb, l, fed.user ? 3 : 2, argv, lens);
    } else {
        redisAsyncCommand(ac, hello_cb, l, "PING");
    }
}

/* At startup, when Redis answers: a refused password is a configuration
 * error worth stopping for; an unreachable Redis is only retried later. */
static int check_auth(char err[RD_ERR_LEN])
{
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectWithTimeout(fed.host, fed.port, tv);
    if (!c || c->err) {
        rd_warn("msg=\"redis unreachable at startup; federation will retry\" redis=%s:%d err=\"%s\"",
                fed.host, fed.port, c ? c->errstr : "out of memory");
        redisFree(c);
        return 0;
    }
    redisReply *reply;
    if (fed.password && fed.user)
        reply = redisCommand(c, "AUTH %s %s", fed.user, fed.password);
    else if (fed.password)
        reply = redisCommand(c, "AUTH %s", fed.password);
    else
        reply = redisCommand(c, "PING");
    int r = 0;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        bool auth = strstr(reply->str, "AUTH") || strstr(reply->str, "WRONGPASS") ||
                    strstr(reply->str, "password");
        snprintf(err, RD_ERR_LEN, "--redis: %s:%d %s: %s", fed.host, fed.port,
                 !auth ? "refused the connection"
                 : fed.password ? "refused the password" : "requires a password",
                 reply->str);
        r = auth ? -EACCES : -EPROTO;
    }
    freeReplyObject(reply);
    redisFree(c);
    return r;
}

int sh_fed_start(const char *url, char err[RD_ERR_LEN])
{
    if (!url || !*url)
        return 0;
    int r = parse_url(url, err);
    if (r < 0)
        return r;
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        snprintf(err, RD_ERR_LEN, "getrandom failed");
        return -EIO;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(fed.origin + 2 * i, 3, "%02x", rnd[i]);
    memcpy(&fed.rng, rnd, sizeof fed.rng);
    fed.rng |= 1;
    snprintf(fed.ctl, sizeof fed.ctl, "roomd:origin:%s", fed.origin);
    if ((r = check_auth(err)) < 0)
        return r;
    fed.on = true;
    fed.pub.role = "pub";
    fed.sub.role = "sub";
    fed.pub.ev_retry = evtimer_new(sh.base, retry_cb, &fed.pub);
    fed.sub.ev_retry = evtimer_new(sh.base, retry_cb, &fed.sub);
    rd_info("msg=\"federation on\" redis=%s:%d origin=%s", fed.host, fed.port, fed.origin);
    link_connect(&fed.pub);
    link_connect(&fed.sub);
    return 0;
}

void sh_fed_stop(void)
{
    if (fed.on) {
        fed.stopping = true;
        rd_info("msg=\"federation stats\" published=%" PRIu64 " dropped=%" PRIu64 " unconfirmed=%" PRIu64
                " received=%" PRIu64 " delivered=%" PRIu64 " echoes=%" PRIu64 " gaps=%" PRIu64
                " bad=%" PRIu64, fed.published, fed.dropped, fed.unconfirmed, fed.received,
                fed.delivered, fed.echoes, fed.gaps, fed.bad);
        fed_link *links[2] = { &fed.pub, &fed.sub };
        for (size_t i = 0; i < 2; i++) {
            redisAsyncContext *ac = links[i]->ac;
            links[i]->ac = NULL;
            links[i]->ready = false;
            if (ac)
                redisAsyncFree(ac);
            if (links[i]->ev_retry)
                event_free(links[i]->ev_retry);
            links[i]->ev_retry = NULL;
        }
        fed.on = false;
    }
    free(fed.user);
    free(fed.password);
    fed.user = fed.password = NULL;
    rd_buf_free(&fed.scratch);
}
