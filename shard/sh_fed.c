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
 *
 * Hangs: a Redis that keeps the TCP connection but answers nothing
 * (SIGSTOP, DEBUG SLEEP, a stuck host) would otherwise leave us "ready"
 * forever while publishes pile up unanswered. A timer keeps one probe in
 * flight per connection (PING on pub; on sub, a SUBSCRIBE of the control
 * channel it already holds, which Redis answers even in subscribed mode
 * and hiredis routes to that channel's callback). A probe unanswered for
 * --redis-timeout, or a connection not READY that long after connecting,
 * is a hang: counted, and the connection is freed (its pending callbacks
 * run with no reply) and retried like a lost one. The probe queues behind
 * the publishes already sent, so it measures the reply latency they see.
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

#include "pr_mp.h"
#include "rd_log.h"
#include "rd_time.h"
#include "sh.h"
#include "sh_fed.h"
#include "sh_fed_env.h"
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
    uint64_t hung;              /* hangs found since the last READY */
    struct event *ev_retry;
    uint64_t connect_at;        /* monotonic ms: connection attempt began */
    uint64_t probe_at;          /* monotonic ms: probe in flight since; 0: none */
} fed_link;

static struct {
    bool on, stopping;
    char host[256];
    int port;
    char *user, *password;
    char origin[FED_ORIGIN_LEN + 1];
    char ctl[64];               /* roomd:origin:<origin> */
    fed_link pub, sub;
    uint64_t timeout_ms;        /* --redis-timeout: reply deadline */
    struct event *ev_probe;
    uint64_t rng;
    size_t inflight, inflight_bytes;
    size_t subscribed;          /* object channels confirmed */
    uint64_t published, dropped, unconfirmed, received, delivered, echoes, gaps, bad, hangs;
    uint64_t federated, federate_in;
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
    *ret = (sh_fed_stats){ fed.published, fed.dropped, fed.received, fed.gaps, fed.hangs, fed.lag };
}

bool sh_fed_on(void)
{
    return fed.on;
}

bool sh_fed_subscribed(const sh_object *o)
{
    return fed.on && o->fed && o->fed->subscribed;
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

static void inflight_done(size_t bytes)
{
    if (fed.inflight)
        fed.inflight--;
    fed.inflight_bytes -= bytes < fed.inflight_bytes ? bytes : fed.inflight_bytes;
}

static void pub_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    inflight_done((size_t)(uintptr_t)priv);
    if (!reply)
        fed.unconfirmed++; /* the connection went down first: maybe delivered */
    else if (reply->type == REDIS_REPLY_ERROR)
        rd_warn("msg=\"redis refused a publish\" err=\"%s\"", reply->str);
}

/* Queue "PUBLISH roomd:o:<key> <env>". hiredis writes it on a later loop
 * turn, batched with every other command of this turn (pipelined). cb gets
 * priv; bytes is what the in-flight budget is charged. 0, -ENOTCONN (Redis
 * down), -EAGAIN (too much already awaiting Redis). */
static int queue_publish(const char *key, size_t klen, const rd_buf *env, redisCallbackFn *cb,
                         void *priv)
{
    size_t bytes = rd_buf_avail(env);
    if (!fed.pub.ready)
        return -ENOTCONN;
    if (fed.inflight >= FED_MAX_INFLIGHT || fed.inflight_bytes + bytes > FED_MAX_INFLIGHT_BYTES)
        return -EAGAIN;
    size_t cl;
    const char *ch = channel_of(key, klen, &cl);
    const char *argv[3] = { "PUBLISH", ch, (const char *)rd_buf_data(env) };
    size_t lens[3] = { 7, cl, bytes };
    if (redisAsyncCommandArgv(fed.pub.ac, cb, priv, 3, argv, lens) != REDIS_OK)
        return -ENOTCONN;
    fed.inflight++;
    fed.inflight_bytes += bytes;
    return 0;
}

void sh_fed_publish(sh_object *o, int opcode, const void *data, size_t len)
{
    if (!fed.on)
        return;
    sh_fed_obj *f = obj_fed(o);
    /* Consumed even when dropped: receivers then see exactly what is missing. */
    uint64_t seq = ++f->pub_seq;
    rd_buf env = RD_BUF_INIT;
    sh_fed_env_encode(&env, &(sh_fed_env){ .type = opcode, .data = data, .len = len,
                                           .origin = fed.origin, .origin_len = FED_ORIGIN_LEN,
                                           .seq = seq });
    int r = queue_publish(o->key, o->key_len, &env, pub_cb, (void *)(uintptr_t)rd_buf_avail(&env));
    if (r == 0) {
        fed.published++;
        if (!fed.lag_obj || fed.published - fed.lag_published > FED_LAG_GIVE_UP) {
            fed.lag_obj = f;
            fed.lag_seq = seq;
            fed.lag_start_ns = rd_mono_ns();
            fed.lag_published = fed.published;
        }
    } else if (fed.dropped++ % 1000 == 0) {
        rd_warn("msg=\"federation publish dropped\" object=%s redis=%s dropped_total=%" PRIu64,
                o->key, r == -EAGAIN ? "backlogged" : "down", fed.dropped);
    }
    rd_buf_free(&env);
}

typedef struct fed_waiter {
    size_t bytes;
    sh_fed_done_fn done;
    void *ud;
} fed_waiter;

static void federate_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    fed_waiter *w = priv;
    inflight_done(w->bytes);
    long long n;
    if (!reply) {
        n = -ENOTCONN; /* the connection went down (or hung) first */
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        n = reply->integer;
    } else {
        rd_warn("msg=\"redis refused a federate publish\" err=\"%s\"",
                reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        n = -EPROTO;
    }
    w->done(w->ud, n);
    free(w);
}

int sh_fed_federate(const char *key, size_t klen, const char *from, size_t flen, const void *data,
                    size_t len, sh_fed_done_fn done, void *ud)
{
    if (!fed.on)
        return -ENOTCONN;
    rd_buf env = RD_BUF_INIT;
    sh_fed_env_encode(&env, &(sh_fed_env){ .type = SH_FED_FEDERATE, .data = data, .len = len,
                                           .origin = fed.origin, .origin_len = FED_ORIGIN_LEN,
                                           .from = from, .from_len = flen });
    fed_waiter *w = rd_xmalloc(sizeof *w);
    *w = (fed_waiter){ rd_buf_avail(&env), done, ud };
    int r = queue_publish(key, klen, &env, federate_cb, w);
    rd_buf_free(&env);
    if (r < 0)
        free(w);
    else
        fed.federated++;
    return r;
}

/* --- receiving ------------------------------------------------------------ */

static void track_seq(sh_object *o, const sh_fed_env *e)
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
    sh_fed_env e;
    if (sh_fed_env_decode(p, n, &e) < 0) {
        if (fed.bad++ % 100 == 0)
            rd_warn("msg=\"bad federation envelope\" object=%s bytes=%zu bad_total=%" PRIu64, o->key,
                    n, fed.bad);
        goto out;
    }
    if (e.origin && e.origin_len == FED_ORIGIN_LEN && memcmp(e.origin, fed.origin, FED_ORIGIN_LEN) == 0) {
        fed.echoes++; /* a federate too: roomd_federate delivered it here directly */
        if (o->fed == fed.lag_obj && e.seq == fed.lag_seq) {
            rd_hist_observe(&fed.lag, (rd_mono_ns() - fed.lag_start_ns) / 1000);
            fed.lag_obj = NULL;
        }
        goto out;
    }
    if (e.type == SH_FED_FEDERATE) {
        char from[SH_FED_MAX_FROM + 1];
        size_t fl = e.from ? e.from_len : 0;
        memcpy(from, fl ? e.from : "", fl);
        from[fl] = '\0';
        fed.federate_in++;
        sh_object_federate(o, from, e.data, e.len);
        goto out;
    }
    if (e.origin)
        track_seq(o, &e);
    sh_broadcast_local(o, e.type, e.data, e.len, NULL);
    fed.delivered++;
out:
    sh_fed_env_free(&e);
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
    if (chl <= FED_PREFIX_LEN || memcmp(ch, FED_PREFIX, FED_PREFIX_LEN) != 0) {
        if (strcmp(type, "subscribe") == 0 && chl == strlen(fed.ctl) && memcmp(ch, fed.ctl, chl) == 0)
            fed.sub.probe_at = 0; /* the probe's answer: the subscriber is alive */
        return;
    }
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
    l->hung = 0;
    l->probe_at = 0;
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
    l->connect_at = rd_mono_ms();
    l->probe_at = 0;
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

/* --- hang detection ---------------------------------------------------------- */

static void probe_cb(redisAsyncContext *ac, void *r, void *priv)
{
    fed_link *l = priv;
    if (r && l->ac == ac)
        l->probe_at = 0;
}

/* Free a connection Redis stopped answering and retry it. redisAsyncFree
 * runs every pending callback with no reply (publishes count as
 * unconfirmed, federate calls as not delivered) and, if it was connected,
 * disconnect_cb, which schedules the retry; otherwise we do. */
static void link_hung(fed_link *l, uint64_t waited_ms, const char *what)
{
    fed.hangs++;
    if (l->hung++ == 0)
        rd_warn("msg=\"redis not answering; reconnecting\" role=%s redis=%s:%d waiting_for=%s "
                "waited_ms=%" PRIu64 " hangs_total=%" PRIu64, l->role, fed.host, fed.port, what,
                waited_ms, fed.hangs);
    else
        rd_debug("msg=\"redis still not answering\" role=%s waiting_for=%s hangs_total=%" PRIu64,
                 l->role, what, fed.hangs);
    redisAsyncContext *ac = l->ac;
    redisAsyncFree(ac);
    if (l->ac == ac) {
        l->ac = NULL;
        l->ready = false;
        link_retry(l);
    }
}

static void probe_tick(evutil_socket_t fd, short what, void *arg)
{
    uint64_t now = rd_mono_ms();
    fed_link *links[2] = { &fed.pub, &fed.sub };
    for (size_t i = 0; i < 2; i++) {
        fed_link *l = links[i];
        if (!l->ac)
            continue;
        if (!l->ready) {
            if (now - l->connect_at > fed.timeout_ms)
                link_hung(l, now - l->connect_at, "handshake");
            continue;
        }
        if (l->probe_at) {
            if (now - l->probe_at > fed.timeout_ms)
                link_hung(l, now - l->probe_at, "reply");
            continue;
        }
        l->probe_at = now ? now : 1;
        if (l == &fed.pub) {
            redisAsyncCommand(l->ac, probe_cb, l, "PING");
        } else {
            const char *argv[2] = { "SUBSCRIBE", fed.ctl };
            size_t lens[2] = { 9, strlen(fed.ctl) };
            redisAsyncCommandArgv(l->ac, sub_cb, NULL, 2, argv, lens);
        }
    }
}

void sh_fed_set_timeout(uint64_t timeout_ms)
{
    fed.timeout_ms = timeout_ms;
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
    if (!fed.timeout_ms)
        fed.timeout_ms = 2000;
    /* Probe a few times per deadline: a hang is found within about 1.25x it. */
    uint64_t every = fed.timeout_ms / 4 ? fed.timeout_ms / 4 : 1;
    struct timeval tv = { (time_t)(every / 1000), (suseconds_t)(every % 1000) * 1000 };
    fed.ev_probe = event_new(sh.base, -1, EV_PERSIST, probe_tick, NULL);
    event_add(fed.ev_probe, &tv);
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
                " bad=%" PRIu64 " hangs=%" PRIu64 " federated=%" PRIu64 " federate_in=%" PRIu64,
                fed.published, fed.dropped, fed.unconfirmed, fed.received, fed.delivered, fed.echoes,
                fed.gaps, fed.bad, fed.hangs, fed.federated, fed.federate_in);
        if (fed.ev_probe)
            event_free(fed.ev_probe);
        fed.ev_probe = NULL;
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
