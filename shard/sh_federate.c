/* roomd_federate: a message from one object to the `federate` callback of
 * others, wherever they live (roomd_module.h has the contract).
 *
 * A call is split per key into parts: a local one when this shard holds the
 * key now (delivered directly, never through Redis), and with --redis a
 * PUBLISH of a federate envelope to the key's channel, whose reply says how
 * many subscribers (shards holding the key live, in any cell) it reached.
 * Our own subscriber is among them when we hold the key; it drops its echo,
 * so it is taken off the count. A key is done when its parts are; the call
 * is done when its keys are, and then its results go to the caller's
 * `federate_result`.
 *
 * Nothing runs inside roomd_federate itself: local deliveries and the
 * results wait for a zero timer, so the caller's callback has returned (no
 * reentrancy into an object that is mid-callback), and the event loop polls
 * in between (two objects federating back and forth do not starve I/O).
 * Redis replies only record their outcome and queue the call, so no class
 * code runs inside hiredis while a connection is being freed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rd_log.h"
#include "sh.h"
#include "sh_fed.h"
#include "sh_fed_env.h"

#define FED_MAX_CALLS 4096          /* calls awaiting results per shard */
#define FED_MAX_NAME 256            /* the gateway's --max-key ceiling */

_Static_assert(ROOMD_FEDERATE_MAX_BYTES == SH_FED_MAX_FEDERATE, "receivers take what senders may send");

typedef struct fed_call fed_call;

typedef struct fed_part_ref {
    fed_call *call;
    size_t i;
} fed_part_ref;

typedef struct fed_key {
    char *key;
    size_t len;
    bool local;                 /* deliver here directly */
    bool own;                   /* our own subscriber is in PUBLISH's count */
    int err;                    /* the first failure of a part; 0: none */
    uint32_t holders;
    fed_part_ref ref;           /* Redis' reply finds its key through this */
} fed_key;

struct fed_call {
    uint64_t id;
    char *caller;
    size_t caller_len;
    uint8_t *data;
    size_t len;
    fed_key *keys;
    size_t n;
    size_t pending;             /* parts outstanding over all keys */
    bool locals_done;
    bool queued;
    bool want_result;
    fed_call *next;             /* run queue */
    fed_call *all_next, *all_prev;
};

static struct {
    uint64_t next_id;
    size_t ncalls;
    fed_call *all;              /* every call not yet finished */
    fed_call *head, *tail;      /* waiting for the timer */
    struct event *ev_run;
} fc;

static void run_cb(evutil_socket_t fd, short what, void *arg);

static void enqueue(fed_call *c)
{
    if (c->queued)
        return;
    c->queued = true;
    c->next = NULL;
    if (fc.tail)
        fc.tail->next = c;
    else
        fc.head = c;
    fc.tail = c;
    if (!fc.ev_run)
        fc.ev_run = evtimer_new(sh.base, run_cb, NULL);
    static const struct timeval now = { 0, 0 };
    evtimer_add(fc.ev_run, &now);
}

static void call_free(fed_call *c)
{
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        fc.all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    fc.ncalls--;
    for (size_t i = 0; i < c->n; i++)
        free(c->keys[i].key);
    free(c->keys);
    free(c->caller);
    free(c->data);
    free(c);
}

static const char *status_text(int status)
{
    switch (status) {
    case 0: return "";
    case -EHOSTUNREACH: return "no live holder: no shard in any cell holds this object with connections";
    case -ENETUNREACH: return "not held by this shard; other shards and cells are reached only with --redis";
    case -ENOTCONN: return "redis unreachable or not answering: not sent, or lost before redis replied";
    case -EAGAIN: return "too much awaiting redis: not sent";
    case -EPROTO: return "redis refused the publish";
    case -ECANCELED: return "filtered out";
    case -EINVAL: return "not an object key (class/name)";
    case -ENOENT: return "no such class on this shard";
    case -EOPNOTSUPP: return "the class takes no federate messages";
    case -EIO: return "the object could not be woken";
    default: return "error";
    }
}

static void part_done(fed_call *c, size_t i, uint32_t holders, int err)
{
    fed_key *k = &c->keys[i];
    k->holders += holders;
    if (err && !k->err)
        k->err = err;
    if (--c->pending == 0 && c->locals_done)
        enqueue(c);
}

/* Redis answered the PUBLISH (or the connection went first). */
static void redis_done(void *ud, long long reached)
{
    fed_part_ref *ref = ud;
    fed_key *k = &ref->call->keys[ref->i];
    if (reached < 0) {
        part_done(ref->call, ref->i, 0, (int)reached);
        return;
    }
    if (k->own && reached > 0)
        reached--;
    part_done(ref->call, ref->i, reached > UINT32_MAX ? UINT32_MAX : (uint32_t)reached, 0);
}

static void finish(fed_call *c)
{
    uint64_t delivered = 0;
    roomd_federate_result *res = rd_xcalloc(c->n, sizeof *res);
    for (size_t i = 0; i < c->n; i++) {
        fed_key *k = &c->keys[i];
        int st = k->holders ? 0 : k->err ? k->err : -EHOSTUNREACH;
        res[i] = (roomd_federate_result){ k->key, st, k->holders, status_text(st) };
        delivered += st == 0;
    }
    rd_debug("msg=\"federate done\" object=%s id=%" PRIu64 " keys=%zu delivered=%" PRIu64, c->caller,
             c->id, c->n, delivered);
    if (c->want_result && !sh.stopping)
        sh_object_federate_result(c->caller, c->caller_len, c->id, res, c->n);
    free(res);
    call_free(c);
}

static void run_cb(evutil_socket_t fd, short what, void *arg)
{
    /* Take the queue: what this turn's callbacks federate waits for the next. */
    fed_call *c = fc.head;
    fc.head = fc.tail = NULL;
    while (c) {
        fed_call *next = c->next;
        c->queued = false;
        if (!c->locals_done) {
            c->locals_done = true;
            for (size_t i = 0; i < c->n; i++) {
                fed_key *k = &c->keys[i];
                if (!k->local)
                    continue;
                /* Gone since the call (its last member left): not live here any more. */
                sh_object *o = rd_smap_get(&sh.objects, k->key, k->len);
                int r = o ? sh_object_federate(o, c->caller, c->data, c->len) : -EHOSTUNREACH;
                c->pending--;
                if (r == 0)
                    k->holders++;
                else if (!k->err && r != -EHOSTUNREACH)
                    k->err = r;
            }
        }
        if (c->pending == 0)
            finish(c);
        c = next;
    }
}

/* "class/name" as the gateway routes it: the class must be loaded here. */
static int key_check(const char *key, size_t n, const roomd_class **ret_cls)
{
    const char *slash = memchr(key, '/', n);
    if (!slash || slash == key || slash - key > 32 || (size_t)(key + n - slash - 1) > FED_MAX_NAME ||
        slash + 1 == key + n)
        return -EINVAL;
    const char *name = slash + 1;
    size_t nl = (size_t)(key + n - name);
    for (size_t i = 0; i < nl; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f || ch == '/')
            return -EINVAL;
    }
    if ((nl == 1 && name[0] == '.') || (nl == 2 && name[0] == '.' && name[1] == '.'))
        return -EINVAL;
    *ret_cls = sh_module_find(key, (size_t)(slash - key));
    if (!*ret_cls) {
        for (const char *p = key; p < slash; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
                return -EINVAL;
        return -ENOENT;
    }
    return 0;
}

int64_t roomd_federate(roomd_ctx *ctx, const char *const *keys, size_t nkeys, const void *data,
                       size_t len, roomd_federate_filter filter, void *ud)
{
    if (!ctx || !ctx->obj || !keys || nkeys == 0 || nkeys > ROOMD_FEDERATE_MAX_KEYS || (len && !data))
        return -EINVAL;
    for (size_t i = 0; i < nkeys; i++)
        if (!keys[i])
            return -EINVAL;
    if (len > ROOMD_FEDERATE_MAX_BYTES)
        return -E2BIG;
    if (fc.ncalls >= FED_MAX_CALLS)
        return -EAGAIN;
    sh_object *from = ctx->obj;
    fed_call *c = rd_xcalloc(1, sizeof *c);
    c->id = ++fc.next_id;
    c->caller = rd_xstrndup(from->key, from->key_len);
    c->caller_len = from->key_len;
    c->data = rd_xmalloc(len ? len : 1);
    if (len)
        memcpy(c->data, data, len);
    c->len = len;
    c->n = nkeys;
    c->keys = rd_xcalloc(nkeys, sizeof *c->keys);
    c->want_result = from->cls->federate_result != NULL;
    c->all_next = fc.all;
    if (fc.all)
        fc.all->all_prev = c;
    fc.all = c;
    fc.ncalls++;
    for (size_t i = 0; i < nkeys; i++) {
        fed_key *k = &c->keys[i];
        k->len = strlen(keys[i]);
        k->key = rd_xstrndup(keys[i], k->len);
        k->ref = (fed_part_ref){ c, i };
        const roomd_class *cls = NULL;
        int r = key_check(k->key, k->len, &cls);
        if (r == 0 && !cls->federate)
            r = -EOPNOTSUPP;
        if (r == 0 && filter && !filter(ud, k->key))
            r = -ECANCELED;
        if (r < 0) {
            k->err = r;
            continue;
        }
        sh_object *o = rd_smap_get(&sh.objects, k->key, k->len);
        if (o) {
            k->local = true;
            k->own = sh_fed_subscribed(o);
            c->pending++;
        }
        if (!sh_fed_on()) {
            if (!o)
                k->err = -ENETUNREACH;
            continue;
        }
        /* Other cells may hold it too (a room with members everywhere). */
        r = sh_fed_federate(k->key, k->len, c->caller, c->caller_len, c->data, c->len, redis_done,
                            &k->ref);
        if (r < 0) {
            if (!k->err)
                k->err = r;
            continue;
        }
        c->pending++;
    }
    enqueue(c);
    return (int64_t)c->id;
}

void sh_federate_shutdown(void)
{
    /* After sh_fed_stop: no Redis reply can still name a call. */
    while (fc.all)
        call_free(fc.all);
    fc.head = fc.tail = NULL;
    if (fc.ev_run)
        event_free(fc.ev_run);
    fc.ev_run = NULL;
}
