/* JWT verification: split, decode, check the algorithm against the
 * configured keys, verify the signature, then read the claims.
 *
 *   token --split(2 dots)--> header . payload . signature
 *         --base64url------> bytes (strict: no padding, zero unused bits)
 *         --header JSON----> alg (must be enabled by a configured key), no crit
 *         --signature------> HMAC / RSA PKCS#1 v1.5 / ECDSA (r||s -> DER)
 *         --payload JSON---> exp, nbf, roomd.objects
 *
 * The signature is checked before the payload is parsed, so unauthenticated
 * bytes never reach the claim reader beyond base64url. */
#include "gw_jwt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

__attribute__((format(printf, 3, 4)))
static int fail(char *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, RD_ERR_LEN, fmt, ap);
    va_end(ap);
    return code;
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

int gw_b64url_decode(const char *in, size_t len, uint8_t *out)
{
    if (len % 4 == 1 || len > (size_t)INT32_MAX)
        return -EINVAL;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero: one encoding per byte string, so a token
     * cannot be altered without changing its decoded bytes. */
    if (bits && (acc & ((1u << bits) - 1)))
        return -EINVAL;
    return (int)o;
}

int gw_jwt_key_load(const char *path, EVP_PKEY **ret, char err[RD_ERR_LEN])
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, RD_ERR_LEN, "cannot open %s: %s", path, strerror(errno));
        return -EINVAL;
    }
    EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    if (!k) {
        /* Also accept a certificate: its public key is the one that verifies. */
        rewind(f);
        X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
        if (x) {
            k = X509_get_pubkey(x);
            X509_free(x);
        }
    }
    fclose(f);
    ERR_clear_error();
    if (!k) {
        snprintf(err, RD_ERR_LEN, "%s holds no PEM public key or certificate", path);
        return -EINVAL;
    }
    if (EVP_PKEY_is_a(k, "RSA")) {
        if (EVP_PKEY_get_bits(k) < 2048) {
            snprintf(err, RD_ERR_LEN, "%s: RSA keys for RS256 need at least 2048 bits", path);
            EVP_PKEY_free(k);
            return -EINVAL;
        }
    } else if (EVP_PKEY_is_a(k, "EC")) {
        char group[64] = "";
        size_t gl = 0;
        if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &gl) ||
            strcmp(group, "prime256v1") != 0) {
            snprintf(err, RD_ERR_LEN, "%s: EC keys for ES256 must be on P-256 (prime256v1), not '%s'",
                     path, group);
            EVP_PKEY_free(k);
            return -EINVAL;
        }
    } else {
        snprintf(err, RD_ERR_LEN, "%s: only RSA (RS256) and EC P-256 (ES256) keys are supported", path);
        EVP_PKEY_free(k);
        return -EINVAL;
    }
    *ret = k;
    return 0;
}

/* RS256/ES256 over data with the public key; sig in JOSE form. */
static bool verify_pkey(EVP_PKEY *k, bool ecdsa, const uint8_t *data, size_t n, const uint8_t *sig,
                        size_t sl)
{
    uint8_t der[80];
    const uint8_t *vsig = sig;
    size_t vl = sl;
    if (ecdsa) {
        /* JOSE carries r||s, 32 bytes each; EVP wants a DER ECDSA-Sig-Value. */
        if (sl != 64)
            return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
        if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return false;
        }
        int dl = i2d_ECDSA_SIG(es, NULL);
        uint8_t *dp = der;
        if (dl <= 0 || (size_t)dl > sizeof der || i2d_ECDSA_SIG(es, &dp) != dl) {
            ECDSA_SIG_free(es);
            return false;
        }
        ECDSA_SIG_free(es);
        vsig = der;
        vl = (size_t)dl;
    } else if (sl != (size_t)EVP_PKEY_get_size(k)) {
        return false;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
              EVP_DigestVerify(md, vsig, vl, data, n) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

static int read_numeric_date(json_t *claims, const char *name, int64_t *ret, char *err)
{
    json_t *v = json_object_get(claims, name);
    *ret = 0;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *ret = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d > -9.2e18 && d < 9.2e18))
            return fail(err, GW_JWT_MALFORMED, "malformed token: \"%s\" is out of range", name);
        *ret = (int64_t)d;
    } else {
        return fail(err, GW_JWT_MALFORMED, "malformed token: \"%s\" is not a number", name);
    }
    return 0;
}

static int read_objects(json_t *claims, gw_jwt *j, char *err)
{
    json_t *r = json_object_get(claims, "roomd");
    if (!r)
        return 0;
    if (!json_is_object(r))
        return fail(err, GW_JWT_MALFORMED, "malformed token: \"roomd\" is not an object");
    json_t *objs = json_object_get(r, "objects");
    if (!objs)
        return 0;
    if (!json_is_array(objs) || json_array_size(objs) > GW_JWT_MAX_OBJECTS)
        return fail(err, GW_JWT_MALFORMED, "malformed token: \"roomd.objects\" is not an array of "
                    "at most %d strings", GW_JWT_MAX_OBJECTS);
    size_t n = json_array_size(objs);
    j->objects = rd_xcalloc(n ? n : 1, sizeof *j->objects);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(objs, i);
        size_t sl = json_string_length(s);
        if (!json_is_string(s) || sl == 0 || sl > GW_JWT_MAX_PATTERN ||
            memchr(json_string_value(s), '\0', sl))
            return fail(err, GW_JWT_MALFORMED, "malformed token: \"roomd.objects\" entry %zu is not "
                        "a string of 1..%d bytes", i + 1, GW_JWT_MAX_PATTERN);
        j->objects[j->nobjects++] = rd_xstrndup(json_string_value(s), sl);
    }
    return 0;
}

int gw_jwt_verify(const gw_jwt_keys *keys, const char *token, size_t len, int64_t now,
                  int64_t leeway, gw_jwt *ret, char err[RD_ERR_LEN])
{
    if (len == 0)
        return fail(err, GW_JWT_MALFORMED, "missing token");
    if (len > GW_JWT_MAX_LEN)
        return fail(err, GW_JWT_MALFORMED, "malformed token: longer than %d bytes", GW_JWT_MAX_LEN);
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(token + len - d1 - 1)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', (size_t)(token + len - d2 - 1)))
        return fail(err, GW_JWT_MALFORMED, "malformed token: not three dot-separated parts");
    size_t hl = (size_t)(d1 - token), pl = (size_t)(d2 - d1 - 1), sl = (size_t)(token + len - d2 - 1);
    if (!hl || !pl)
        return fail(err, GW_JWT_MALFORMED, "malformed token: empty header or payload");
    uint8_t *buf = rd_xmalloc(len); /* every part decodes to less than its text */
    uint8_t *hdr = buf, *pay = buf + hl, *sig = pay + pl;
    json_t *h = NULL, *claims = NULL;
    gw_jwt j = { 0 };
    int r;
    int hn = gw_b64url_decode(token, hl, hdr);
    int pn = gw_b64url_decode(d1 + 1, pl, pay);
    int sn = gw_b64url_decode(d2 + 1, sl, sig);
    if (hn < 0 || pn < 0 || sn < 0) {
        r = fail(err, GW_JWT_MALFORMED, "malformed token: the %s is not base64url",
                 hn < 0 ? "header" : pn < 0 ? "payload" : "signature");
        goto out;
    }
    json_error_t je;
    h = json_loadb((const char *)hdr, (size_t)hn, JSON_REJECT_DUPLICATES, &je);
    if (!h || !json_is_object(h)) {
        r = fail(err, GW_JWT_MALFORMED, "malformed token: the header is not a JSON object");
        goto out;
    }
    const char *alg = json_string_value(json_object_get(h, "alg"));
    if (!alg) {
        r = fail(err, GW_JWT_MALFORMED, "malformed token: the header has no \"alg\"");
        goto out;
    }
    if (json_object_get(h, "crit")) {
        r = fail(err, GW_JWT_MALFORMED, "malformed token: critical header extensions are not supported");
        goto out;
    }
    bool hs = strcmp(alg, "HS256") == 0, rs = strcmp(alg, "RS256") == 0, es = strcmp(alg, "ES256") == 0;
    if ((hs && !keys->secret) || (rs && !(keys->pub && EVP_PKEY_is_a(keys->pub, "RSA"))) ||
        (es && !(keys->pub && EVP_PKEY_is_a(keys->pub, "EC"))) || (!hs && !rs && !es)) {
        char a[24];
        snprintf(a, sizeof a, "%s", alg);
        r = fail(err, GW_JWT_ALG, "algorithm not allowed: %s", a);
        goto out;
    }
    snprintf(j.alg, sizeof j.alg, "%s", alg);
    size_t signed_len = (size_t)(d2 - token);
    bool ok;
    if (hs) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned ml = 0;
        ok = HMAC(EVP_sha256(), keys->secret, (int)keys->secret_len, (const uint8_t *)token, signed_len,
                  mac, &ml) != NULL &&
             ml == 32 && sn == 32 && CRYPTO_memcmp(mac, sig, 32) == 0;
    } else {
        ok = verify_pkey(keys->pub, es, (const uint8_t *)token, signed_len, sig, (size_t)sn);
    }
    if (!ok) {
        r = fail(err, GW_JWT_SIGNATURE, "bad signature");
        goto out;
    }
    claims = json_loadb((const char *)pay, (size_t)pn, JSON_REJECT_DUPLICATES, &je);
    if (!claims || !json_is_object(claims)) {
        r = fail(err, GW_JWT_MALFORMED, "malformed token: the payload is not a JSON object");
        goto out;
    }
    if ((r = read_numeric_date(claims, "exp", &j.exp, err)) < 0 ||
        (r = read_numeric_date(claims, "nbf", &j.nbf, err)) < 0 || (r = read_objects(claims, &j, err)) < 0)
        goto out;
    if (json_object_get(claims, "exp") && now >= j.exp + leeway) {
        r = fail(err, GW_JWT_EXPIRED, "expired");
        goto out;
    }
    if (json_object_get(claims, "nbf") && now + leeway < j.nbf) {
        r = fail(err, GW_JWT_NOT_YET, "not yet valid (nbf)");
        goto out;
    }
    j.claims = rd_xstrndup((const char *)pay, (size_t)pn);
    j.claims_len = (size_t)pn;
    *ret = j;
    memset(&j, 0, sizeof j);
    r = 0;
out:
    gw_jwt_free(&j);
    json_decref(h);
    json_decref(claims);
    free(buf);
    return r;
}

void gw_jwt_free(gw_jwt *j)
{
    if (!j)
        return;
    free(j->claims);
    for (size_t i = 0; i < j->nobjects; i++)
        free(j->objects[i]);
    free(j->objects);
    memset(j, 0, sizeof *j);
}

bool gw_jwt_allows(const gw_jwt *j, const char *key, size_t klen)
{
    if (!j->objects)
        return true;
    for (size_t i = 0; i < j->nobjects; i++) {
        const char *p = j->objects[i];
        size_t pl = strlen(p);
        if (p[pl - 1] == '*') {
            if (klen >= pl - 1 && memcmp(key, p, pl - 1) == 0)
                return true;
        } else if (pl == klen && memcmp(key, p, pl) == 0) {
            return true;
        }
    }
    return false;
}

size_t gw_jwt_protocols_strip(const char *in, size_t n, char *out, const char **ret_token,
                              size_t *ret_tlen)
{
    size_t o = 0;
    const char *p = in, *end = in + n;
    *ret_token = NULL;
    *ret_tlen = 0;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t l = (size_t)(p - s);
        if (!l)
            continue;
        if (l > 7 && strncasecmp(s, "bearer.", 7) == 0) {
            if (!*ret_token) {
                *ret_token = s + 7;
                *ret_tlen = l - 7;
            }
            continue;
        }
        if (o)
            out[o++] = ','; /* one byte: the input had at least one between entries */
        memcpy(out + o, s, l);
        o += l;
    }
    return o;
}
