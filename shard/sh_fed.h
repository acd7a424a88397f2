/* sh_fed: federation through Redis (DESIGN §7).
 *
 * With --redis, a shard keeps two hiredis async connections on its event
 * loop: one publishes, one subscribes. Every object with connections
 * (hibernated or not) is subscribed to "roomd:o:<key>"; every
 * roomd_broadcast is delivered locally and published there once, as an
 * envelope carrying this process's origin id and a per-object sequence
 * number. Envelopes from other origins (other cells, or a backend's PUBLISH)
 * are delivered to the object's local connections only: never re-published,
 * and the class's message callback does not run. Own echoes are dropped;
 * gaps in an origin's sequence are counted and logged.
 *
 * Redis down: local delivery is unaffected, publishes are counted as
 * dropped (their sequence numbers are still consumed, so receivers see the
 * gap), and both connections come back by themselves with exponential
 * backoff and jitter; the subscriber resubscribes every channel.
 *
 * Redis hung (answers nothing, e.g. SIGSTOPped or in DEBUG SLEEP): found by
 * a reply deadline, counted (hangs), and handled like a lost connection.
 *
 * Without --redis every function here is a no-op. Single-threaded: call
 * from the shard's loop only.
 */
#ifndef SH_FED_H
#define SH_FED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rd_buf.h"
#include "rd_hist.h"

struct sh_object;

/* Parse url (redis://[[user]:password@]host[:port][/db]; NULL or "": off),
 * check a password synchronously when Redis answers (a refused password is
 * an error: -EACCES with err filled; an unreachable Redis is not, it is
 * retried in the background), and start connecting on base. 0 or a
 * negative errno with err filled. */
int sh_fed_start(const char *url, char err[RD_ERR_LEN]);
/* A connection whose command (or, connecting, whose handshake) has waited
 * longer than timeout_ms for Redis' reply counts as hung: it is dropped and
 * reconnected like a lost one. Each connection is probed (PING, or a
 * SUBSCRIBE of its own control channel) when nothing else is pending, so
 * an idle hang is found too. Call before sh_fed_start; default 2000. */
void sh_fed_set_timeout(uint64_t timeout_ms);
/* Close both connections (pending publishes are abandoned). Call before the
 * event base is freed. */
void sh_fed_stop(void);

/* The object got its first connection / lost its last one. */
void sh_fed_watch(struct sh_object *o);
void sh_fed_unwatch(struct sh_object *o);
/* The object is being freed: drop its federation state (o->fed). */
void sh_fed_forget(struct sh_object *o);
/* Publish one broadcast of the object (after its local delivery). The
 * payload is copied; nothing leaves before the event loop runs again, so the
 * storage output gate holds. */
void sh_fed_publish(struct sh_object *o, int opcode, const void *data, size_t len);

/* roomd_federate's Redis half: PUBLISH a federate envelope (from: the
 * sender's key) to key's channel. done(ud, n) follows on a later loop turn
 * with the number of subscribers Redis reached, or -ENOTCONN if the
 * connection went down (or hung) first. Returns 0 when queued, -ENOTCONN
 * (Redis down) or -EAGAIN (too much awaiting Redis) when not: done then
 * never runs. */
typedef void (*sh_fed_done_fn)(void *ud, long long reached);
int sh_fed_federate(const char *key, size_t klen, const char *from, size_t flen, const void *data,
                    size_t len, sh_fed_done_fn done, void *ud);
/* Whether Redis confirmed this shard's subscription to o's channel (it is
 * then one of the subscribers a PUBLISH reaches). */
bool sh_fed_subscribed(const struct sh_object *o);
bool sh_fed_on(void);

/* For health reports: SH_FED_OFF without --redis, SH_FED_OK when both
 * connections are up and every watched object's channel is confirmed,
 * SH_FED_DEGRADED otherwise. */
enum { SH_FED_OFF = 0, SH_FED_OK = 1, SH_FED_DEGRADED = 2 };
int sh_fed_state(void);
/* Counters since start, for the gateway's /metrics. */
typedef struct sh_fed_stats {
    uint64_t published, dropped, received, gaps;
    uint64_t hangs;             /* connections dropped for missing their reply deadline */
    rd_hist lag;                /* sampled publish -> own echo round trips through Redis */
} sh_fed_stats;
void sh_fed_stats_get(sh_fed_stats *ret);

#endif
