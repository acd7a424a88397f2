/* Object paths and rendezvous routing (rd_hash.h documents the hash). */
#include <errno.h>
#include <string.h>

#include "gw.h"
#include "rd_hash.h"
#include "ws_utf8.h"

static bool class_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int gw_route_parse(const char *target, size_t len, size_t max_name, gw_target *ret,
                   char err[RD_ERR_LEN])
{
    memset(ret, 0, sizeof *ret);
    const char *q = memchr(target, '?', len);
    size_t plen = q ? (size_t)(q - target) : len;
    ret->query = q ? q + 1 : "";
    ret->query_len = q ? len - plen - 1 : 0;
    if (plen < 2 || target[0] != '/')
        return 0;
    const char *p = target + 1, *end = target + plen;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (!slash)
        return 0; /* "/healthz" and friends */
    for (const char *c = p; c < slash; c++)
        if (!class_char(*c))
            return 0; /* not a class name: not an object path */
    if (slash == p || slash - p > 32)
        return 0;
    ret->cls = p;
    ret->cls_len = (size_t)(slash - p);
    const char *n = slash + 1;
    const char *nend = memchr(n, '/', (size_t)(end - n));
    if (!nend)
        nend = end;
    if (nend == n) {
        snprintf(err, RD_ERR_LEN, "missing object name: use /%.*s/<name>", (int)ret->cls_len, ret->cls);
        return -EINVAL;
    }
    size_t cap = max_name < sizeof ret->name ? max_name : sizeof ret->name;
    if (gw_http_percent_decode(n, (size_t)(nend - n), ret->name, cap, &ret->name_len) < 0) {
        /* Distinguish "too long" from "malformed" for a clear answer. */
        size_t dl;
        char big[3 * sizeof ret->name];
        if ((size_t)(nend - n) <= sizeof big &&
            gw_http_percent_decode(n, (size_t)(nend - n), big, sizeof big, &dl) == 0)
            snprintf(err, RD_ERR_LEN, "object name longer than %zu bytes", cap);
        else
            snprintf(err, RD_ERR_LEN, "object name has a malformed percent-escape");
        return -EINVAL;
    }
    if (ret->name_len > max_name) {
        snprintf(err, RD_ERR_LEN, "object name longer than %zu bytes", max_name);
        return -EINVAL;
    }
    if (!ws_utf8_valid((const uint8_t *)ret->name, ret->name_len)) {
        snprintf(err, RD_ERR_LEN, "object name is not valid UTF-8");
        return -EINVAL;
    }
    for (size_t i = 0; i < ret->name_len; i++) {
        unsigned char c = (unsigned char)ret->name[i];
        if (c < 0x20 || c == 0x7f || c == '/') {
            snprintf(err, RD_ERR_LEN, "object name contains a control character or '/'");
            return -EINVAL;
        }
    }
    if ((ret->name_len == 1 && ret->name[0] == '.') ||
        (ret->name_len == 2 && ret->name[0] == '.' && ret->name[1] == '.')) {
        snprintf(err, RD_ERR_LEN, "object name cannot be '.' or '..'");
        return -EINVAL;
    }
    ret->rest = nend;
    ret->rest_len = (size_t)(end - nend);
    return 1;
}

gw_shard *gw_route_pick(const char *key, size_t len)
{
    int i = rd_hrw_pick(key, len, gw.route_names, gw.nroute);
    return i < 0 ? NULL : gw.route[i];
}
