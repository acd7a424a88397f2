/* Fuzz target for /exports.js's request side: the input is "query\nhost".
 * A room that passes is valid UTF-8 of 1..128 bytes without controls or
 * '/'; an origin that passes holds only host characters; rendering with
 * them never leaves a quote unescaped (the module text stays one
 * JavaScript string per value). */
#include "gw_exports.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t ql = nl ? (size_t)(nl - in) : size;
    const char *host = nl ? nl + 1 : "";
    size_t hl = nl ? size - ql - 1 : 0;
    gw_exports_req r;
    char err[RD_ERR_LEN], origin[300];
    if (gw_exports_query(in, ql, &r, err) < 0)
        return 0;
    INVARIANT(r.room_len >= 1 && r.room_len <= GW_EXPORTS_MAX_ROOM && strlen(r.room) == r.room_len);
    INVARIANT(ws_utf8_valid((const uint8_t *)r.room, r.room_len) && !strchr(r.room, '/'));
    if (gw_exports_origin(size & 1, host, hl, NULL, origin, sizeof origin, err) < 0)
        return 0;
    INVARIANT(strcspn(origin, "\"\\\n'`") == strlen(origin));
    const char *methods[] = { "counter.increment", "counter.watch" };
    bool stream[] = { false, true };
    rd_buf b = RD_BUF_INIT;
    gw_exports_render(&b, origin, &r, methods, stream, 2);
    INVARIANT(rd_buf_avail(&b) > 0);
    rd_buf_free(&b);
    return 0;
}
