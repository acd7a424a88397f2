/* gw_exports: the Shared Exports module, GET /exports.js?shared&room=R
 * (DESIGN §3, §8). A renderer: no I/O.
 *
 * The module exports one class per server class that declares methods
 * (PascalCase of its name: counter -> Counter, my_game -> MyGame). Each
 * instance is a /client.js connection to one object:
 *
 *   const c = await new Counter(0);   // connect; then init(0) if the class has init
 *   await c.increment();              // JSON-RPC call
 *   for await (const v of c.watch()) ...   // streaming methods: async iterators
 *   c.close();
 *
 * With ?shared every importer of the same room reaches the same object,
 * <class>/<room> (room defaults to "default"); without it each instance
 * gets an object of its own, <class>/~<32 random hex digits>. The module
 * embeds the gateway's origin, so it works from any page or from Node >= 20
 * importing it by URL.
 */
#ifndef GW_EXPORTS_H
#define GW_EXPORTS_H

#include <stdbool.h>
#include <stddef.h>

#include "rd_buf.h"

#define GW_EXPORTS_MAX_ROOM 128

typedef struct gw_exports_req {
    bool shared;
    char room[GW_EXPORTS_MAX_ROOM + 1]; /* percent-decoded, NUL-terminated */
    size_t room_len;
} gw_exports_req;

/* Read ?shared and room=R (percent-encoded; 1..128 bytes of UTF-8 without
 * control characters or '/'). 0, or -EINVAL with err. */
int gw_exports_query(const char *q, size_t qlen, gw_exports_req *ret, char err[RD_ERR_LEN]);

/* The origin ("https://host:port") the module points at: public_url when
 * set (trailing '/' dropped), else the scheme of the connection and the
 * request's Host. 0, or -EINVAL with err (no or bad Host). */
int gw_exports_origin(bool tls, const char *host, size_t host_len, const char *public_url, char *out,
                      size_t cap, char err[RD_ERR_LEN]);

/* Append the module. methods[i] is "class.method", stream[i] whether it
 * streams; a class's methods must be adjacent (as HELLO lists them). */
void gw_exports_render(rd_buf *b, const char *origin, const gw_exports_req *req,
                       const char *const *methods, const bool *stream, size_t n);

#endif
