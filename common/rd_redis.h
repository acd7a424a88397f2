/* rd_redis: the --redis URL, shared by the gateway (which checks the
 * password at startup) and the shards (which federate through it). */
#ifndef RD_REDIS_H
#define RD_REDIS_H

#include "rd_buf.h"

typedef struct rd_redis_url {
    char host[256];
    int port;
    char *user;       /* NULL: none; owned */
    char *password;   /* NULL: none; owned */
} rd_redis_url;

/* redis://[[user]:password@]host[:port][/db] (the last '@' ends the
 * credentials; [v6] hosts; /db is accepted and ignored, Pub/Sub is the same
 * in every database). 0, or -EINVAL with err naming the option. */
int rd_redis_url_parse(const char *url, rd_redis_url *ret, char err[RD_ERR_LEN]);
void rd_redis_url_free(rd_redis_url *u);

/* Connect (blocking, bounded by timeout_ms) and, when the URL has a
 * password, AUTH. 0: reachable and accepted; -EACCES: the password was
 * refused (err has Redis's answer); another negative errno: unreachable. */
int rd_redis_check(const rd_redis_url *u, int timeout_ms, char err[RD_ERR_LEN]);

#endif
