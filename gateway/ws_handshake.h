/* ws_handshake: checks an HTTP request against RFC 6455 §4.2.1 and computes
 * the accept key. No I/O. */
#ifndef WS_HANDSHAKE_H
#define WS_HANDSHAKE_H

#include <stddef.h>
#include <stdbool.h>

#include "http_parser.h"

#define WS_ACCEPT_LEN 28

/* Does the request ask for a WebSocket (an Upgrade header naming websocket)? */
bool ws_handshake_requested(const gw_http_request *req);

/* Validate the upgrade: GET, HTTP/1.1, Connection: upgrade, Upgrade:
 * websocket, exactly one Sec-WebSocket-Key that decodes to 16 bytes,
 * Sec-WebSocket-Version: 13. On success fills accept (NUL-terminated) and
 * the raw Sec-WebSocket-Protocol value (NULL when absent) and returns 0.
 * Otherwise returns -EINVAL with *ret_status 400 (or 426 for an unsupported
 * version, with the response needing "Sec-WebSocket-Version: 13") and err. */
int ws_handshake_check(const gw_http_request *req, char accept[WS_ACCEPT_LEN + 1],
                       const char **ret_protocols, size_t *ret_protocols_len,
                       int *ret_status, char err[RD_ERR_LEN]);

/* base64(SHA-1(key + GUID)). */
void ws_handshake_accept(const char *key, size_t len, char accept[WS_ACCEPT_LEN + 1]);

#endif
