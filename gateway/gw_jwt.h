/* gw_jwt: JSON Web Token verification (RFC 7519, JWS compact form RFC 7515)
 * for the gateway's authentication. A codec: no I/O, no logging.
 *
 * Accepted algorithms follow from the configured keys, never from the token:
 * a secret enables HS256; a PEM public key enables RS256 (an RSA key of at
 * least 2048 bits) or ES256 (an EC P-256 key). "none", any other algorithm,
 * and an algorithm whose key is not configured are refused ("algorithm
 * confusion": an RS256 public key is never used as an HMAC secret).
 *
 * Claims read: exp and nbf (NumericDate, checked with a leeway) and the
 * optional roomd.objects, a list of object keys the token opens:
 *
 *     {"sub": "ada", "exp": 1767225600, "roomd": {"objects": ["chat/lobby", "counter/main"]}}
 *
 * An entry is an exact key ("counter/main") or a prefix ending with '*'
 * ("chat/" followed by '*': every chat object; "*" alone: everything). Without roomd.objects the
 * token opens every object. Everything else in the payload is passed on
 * untouched to the class (roomd_ctx_claims).
 */
#ifndef GW_JWT_H
#define GW_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "rd_buf.h"

#define GW_JWT_MAX_LEN 8192       /* longest token accepted */
#define GW_JWT_MAX_OBJECTS 64     /* roomd.objects entries */
#define GW_JWT_MAX_PATTERN 256    /* bytes per entry */

typedef struct gw_jwt_keys {
    const uint8_t *secret;        /* HS256 secret; NULL: HS256 refused */
    size_t secret_len;
    EVP_PKEY *pub;                /* RS256 or ES256 public key; NULL: none (borrowed) */
} gw_jwt_keys;

typedef struct gw_jwt {
    char *claims;                 /* the payload's JSON text, NUL-terminated (owned) */
    size_t claims_len;
    char alg[8];                  /* "HS256", "RS256" or "ES256" */
    int64_t exp, nbf;             /* 0: absent */
    char **objects;               /* roomd.objects; NULL: unrestricted (owned) */
    size_t nobjects;
} gw_jwt;

/* Why a token was refused; gw_jwt_verify's err holds the details. */
enum {
    GW_JWT_MALFORMED = -1,        /* not a JWS compact token, bad base64url or JSON, bad claim types */
    GW_JWT_ALG = -2,              /* algorithm not allowed */
    GW_JWT_SIGNATURE = -3,        /* bad signature */
    GW_JWT_EXPIRED = -4,          /* now >= exp + leeway */
    GW_JWT_NOT_YET = -5,          /* now + leeway < nbf */
};

/* Load a PEM public key (SubjectPublicKeyInfo, or an X.509 certificate's)
 * for RS256/ES256. 0 and *ret (free with EVP_PKEY_free), or -EINVAL with err. */
int gw_jwt_key_load(const char *path, EVP_PKEY **ret, char err[RD_ERR_LEN]);

/* Verify token (len bytes, not NUL-terminated) at time now (seconds since
 * the epoch) with leeway seconds of clock skew allowed. 0 and *ret filled
 * (release with gw_jwt_free), or one of GW_JWT_* with err saying why; *ret
 * is then untouched. */
int gw_jwt_verify(const gw_jwt_keys *keys, const char *token, size_t len, int64_t now,
                  int64_t leeway, gw_jwt *ret, char err[RD_ERR_LEN]);
void gw_jwt_free(gw_jwt *j);

/* Does the token open the object key (klen bytes)? */
bool gw_jwt_allows(const gw_jwt *j, const char *key, size_t klen);

/* Strict base64url without padding (RFC 7515 §2): out needs len*3/4 + 1
 * bytes. Returns the decoded length, or -EINVAL (a character outside the
 * alphabet, '=' padding, an impossible length, or non-zero unused bits). */
int gw_b64url_decode(const char *in, size_t len, uint8_t *out);

/* Sec-WebSocket-Protocol carries a token as the entry "bearer.<jwt>"
 * (browsers cannot set Authorization on a WebSocket). Copy the offered list
 * (n bytes) to out (n bytes of room) without such entries, and point
 * *ret_token / *ret_tlen at the first one's token (NULL: none). Returns the
 * length written to out. */
size_t gw_jwt_protocols_strip(const char *in, size_t n, char *out, const char **ret_token,
                              size_t *ret_tlen);

#endif
