/* sh_fed_env: the federation envelope (README "Federation"), what shards
 * and backends PUBLISH to roomd:o:<key>. Decoding takes JSON (when the first
 * non-blank byte is '{') or a msgpack map; shards encode msgpack.
 *
 *   {"type": "text"|"binary"|"federate", "data": ...,
 *    "origin": "...", "seq": N,   (broadcasts from shards: both, seq >= 1)
 *    "from": "..."}               (federate: the sender's key, optional)
 *
 * JSON data is a string: as is for text and federate, base64 (standard or
 * URL-safe, padding optional) for binary. msgpack data is bin or str.
 * Unknown keys are skipped. Pure code, no I/O: unit-tested and fuzzed. */
#ifndef SH_FED_ENV_H
#define SH_FED_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rd_buf.h"

#define SH_FED_FEDERATE 3           /* type of a federate envelope (ROOMD_TEXT 1, ROOMD_BINARY 2) */
#define SH_FED_MAX_FROM 512         /* bytes of a federate envelope's "from" */
#define SH_FED_MAX_FEDERATE (64 * 1024) /* bytes of a federate envelope's data */

struct json_t;

typedef struct sh_fed_env {
    int type;                   /* ROOMD_TEXT, ROOMD_BINARY or SH_FED_FEDERATE */
    const uint8_t *data;
    size_t len;
    const char *origin;         /* NULL: none (a backend's message) */
    size_t origin_len;
    uint64_t seq;               /* 0 unless a broadcast with an origin */
    const char *from;           /* federate only; NULL: none */
    size_t from_len;
    /* What the pointers may point into: freed by sh_fed_env_free. */
    struct json_t *root;
    rd_buf bin;
} sh_fed_env;

/* Decode p[0..n) into e (pointers into p or into e itself). Checked: a
 * known type, data present, text valid UTF-8, a federate's data at most
 * SH_FED_MAX_FEDERATE bytes, "from" at most SH_FED_MAX_FROM bytes of UTF-8
 * without NUL. A broadcast's origin counts only with a seq >= 1; a
 * federate's origin needs none (it only marks the shard's own echo).
 * 0 or -EBADMSG; call sh_fed_env_free either way. */
int sh_fed_env_decode(const uint8_t *p, size_t n, sh_fed_env *e);
void sh_fed_env_free(sh_fed_env *e);
/* Append e as a msgpack map (origin and seq when set, from for federate). */
void sh_fed_env_encode(rd_buf *b, const sh_fed_env *e);
/* RFC 3629 UTF-8 (no overlongs, no surrogates). */
bool sh_fed_utf8_valid(const uint8_t *s, size_t n);

#endif
