/* The files the gateway serves from its own binary (client/, embedded at
 * build time): each kept plain and gzip-compressed, with a strong ETag
 * from its bytes, made once at startup. */
#include <string.h>

#include <zlib.h>

#include "gw.h"
#include "rd_hash.h"

extern const unsigned char gw_asset_client_js[];
extern const size_t gw_asset_client_js_len;
extern const unsigned char gw_asset_client_d_ts[];
extern const size_t gw_asset_client_d_ts_len;
extern const unsigned char gw_asset_index_html[];
extern const size_t gw_asset_index_html_len;

static gw_asset assets[] = {
    { "/client.js", "text/javascript; charset=utf-8", gw_asset_client_js, 0, NULL, 0, "" },
    { "/client.d.ts", "application/typescript; charset=utf-8", gw_asset_client_d_ts, 0, NULL, 0, "" },
    { "/", "text/html; charset=utf-8", gw_asset_index_html, 0, NULL, 0, "" },
};

static const size_t *const lens[] = { &gw_asset_client_js_len, &gw_asset_client_d_ts_len,
                                      &gw_asset_index_html_len };

/* gzip (not raw deflate: Content-Encoding: gzip) at the best level; the
 * cost is paid once per start. */
static void gzip_asset(gw_asset *a)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return;
    uLong cap = deflateBound(&z, (uLong)a->len);
    a->gz = rd_xmalloc(cap);
    z.next_in = (Bytef *)a->body;
    z.avail_in = (uInt)a->len;
    z.next_out = a->gz;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) == Z_STREAM_END) {
        a->gz_len = z.total_out;
    } else {
        free(a->gz);
        a->gz = NULL;
    }
    deflateEnd(&z);
}

void gw_assets_init(void)
{
    for (size_t i = 0; i < sizeof assets / sizeof *assets; i++) {
        gw_asset *a = &assets[i];
        a->len = *lens[i];
        snprintf(a->etag, sizeof a->etag, "\"%016llx\"", (unsigned long long)rd_hash64(a->body, a->len));
        gzip_asset(a);
    }
}

void gw_assets_free(void)
{
    for (size_t i = 0; i < sizeof assets / sizeof *assets; i++) {
        free(assets[i].gz);
        assets[i].gz = NULL;
    }
}

const gw_asset *gw_asset_find(const char *path, size_t len)
{
    for (size_t i = 0; i < sizeof assets / sizeof *assets; i++)
        if (strlen(assets[i].path) == len && memcmp(assets[i].path, path, len) == 0)
            return &assets[i];
    return NULL;
}
