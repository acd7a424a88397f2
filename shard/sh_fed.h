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
 * Without --redis every function here is a no-op. Single-threaded: call
 * from the shard's loop only.
 */
#ifndef SH_FED_H
#define SH_FED_H

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

/* For health reports: SH_FED_OFF without --redis, SH_FED_OK when both
 * connections are up and every watched object's channel is confirmed,
 * SH_FED_DEGRADED otherwise. */
enum { SH_FED_OFF = 0, SH_FED_OK = 1, SH_FED_DEGRADED = 2 };
int sh_fed_state(void);
/* Counters since start, for the gateway's /metrics. */
typedef struct sh_fed_stats {
    uint64_t published, dropped, received, gaps;
    rd_hist lag;                /* sampled publish -> own echo round trips through Redis */
} sh_fed_stats;
void sh_fed_stats_get(sh_fed_stats *ret);

#endif
