/* gw_jwt: HS256/RS256/ES256 tokens made with the openssl CLI
 * (gen_jwt_vectors.py), good and bad, and the rules around them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_jwt.h"
#include "jwt_vectors.h"
#include "rd_test.h"

#define NOW 1900000000 /* before the vectors' exp (2000000000) */

static EVP_PKEY *load_pem(const char *pem)
{
    char path[] = "/tmp/test_jwt_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    ssize_t w = write(fd, pem, strlen(pem));
    close(fd);
    EVP_PKEY *k = NULL;
    char err[RD_ERR_LEN];
    if (w == (ssize_t)strlen(pem) && gw_jwt_key_load(path, &k, err) < 0)
        fprintf(stderr, "load: %s\n", err);
    unlink(path);
    return k;
}

static int verify(const gw_jwt_keys *k, const char *tok, int64_t now, gw_jwt *j, char *err)
{
    return gw_jwt_verify(k, tok, strlen(tok), now, 0, j, err);
}

static const gw_jwt_keys hs = { (const uint8_t *)V_SECRET, sizeof V_SECRET - 1, NULL };

static void test_hs256(void)
{
    gw_jwt j;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(verify(&hs, V_HS_GOOD, NOW, &j, err), 0);
    RD_CHECK(strstr(j.claims, "\"sub\":\"ada\"") != NULL);
    RD_CHECK_EQ_INT(j.exp, 2000000000);
    RD_CHECK_EQ_INT(j.nobjects, 2);
    RD_CHECK(strcmp(j.alg, "HS256") == 0);
    gw_jwt_free(&j);
    RD_CHECK_EQ_INT(verify(&hs, V_HS_WRONG_SECRET, NOW, &j, err), GW_JWT_SIGNATURE);
    RD_CHECK(strcmp(err, "bad signature") == 0);
    /* One flipped signature character. */
    char t[sizeof V_HS_GOOD];
    memcpy(t, V_HS_GOOD, sizeof t);
    t[sizeof t - 3] = t[sizeof t - 3] == 'A' ? 'B' : 'A';
    RD_CHECK_EQ_INT(verify(&hs, t, NOW, &j, err), GW_JWT_SIGNATURE);
    /* A changed payload with the old signature. */
    memcpy(t, V_HS_GOOD, sizeof t);
    char *dot = strchr(t, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    RD_CHECK(verify(&hs, t, NOW, &j, err) < 0);
}

static void test_rs256_es256(void)
{
    gw_jwt j;
    char err[RD_ERR_LEN];
    gw_jwt_keys rs = { NULL, 0, load_pem(V_RSA_PUB) }, es = { NULL, 0, load_pem(V_EC_PUB) };
    RD_CHECK(rs.pub && es.pub);
    RD_CHECK_EQ_INT(verify(&rs, V_RS_GOOD, NOW, &j, err), 0);
    RD_CHECK(strcmp(j.alg, "RS256") == 0);
    gw_jwt_free(&j);
    RD_CHECK_EQ_INT(verify(&rs, V_RS_OTHER_KEY, NOW, &j, err), GW_JWT_SIGNATURE);
    RD_CHECK_EQ_INT(verify(&es, V_ES_GOOD, NOW, &j, err), 0);
    RD_CHECK(strcmp(j.alg, "ES256") == 0);
    gw_jwt_free(&j);
    RD_CHECK_EQ_INT(verify(&es, V_ES_OTHER_KEY, NOW, &j, err), GW_JWT_SIGNATURE);
    /* JOSE wants raw r||s; a DER signature is refused. */
    RD_CHECK_EQ_INT(verify(&es, V_ES_DER_SIG, NOW, &j, err), GW_JWT_SIGNATURE);
    /* Each key enables only its own algorithm. */
    RD_CHECK_EQ_INT(verify(&rs, V_ES_GOOD, NOW, &j, err), GW_JWT_ALG);
    RD_CHECK_EQ_INT(verify(&es, V_RS_GOOD, NOW, &j, err), GW_JWT_ALG);
    RD_CHECK_EQ_INT(verify(&rs, V_HS_GOOD, NOW, &j, err), GW_JWT_ALG);
    RD_CHECK(strcmp(err, "algorithm not allowed: HS256") == 0);
    /* Algorithm confusion: HS256 keyed with the public key's PEM. */
    RD_CHECK_EQ_INT(verify(&rs, V_CONFUSED, NOW, &j, err), GW_JWT_ALG);
    /* Both configured: each token verifies with its own key. */
    gw_jwt_keys both = { (const uint8_t *)V_SECRET, sizeof V_SECRET - 1, rs.pub };
    RD_CHECK_EQ_INT(verify(&both, V_HS_GOOD, NOW, &j, err), 0);
    gw_jwt_free(&j);
    RD_CHECK_EQ_INT(verify(&both, V_RS_GOOD, NOW, &j, err), 0);
    gw_jwt_free(&j);
    RD_CHECK_EQ_INT(verify(&both, V_CONFUSED, NOW, &j, err), GW_JWT_SIGNATURE);
    EVP_PKEY_free(rs.pub);
    EVP_PKEY_free(es.pub);
}

static void test_alg_refused(void)
{
    gw_jwt j;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(verify(&hs, V_ALG_NONE, NOW, &j, err), GW_JWT_ALG);
    RD_CHECK(strcmp(err, "algorithm not allowed: none") == 0);
    RD_CHECK_EQ_INT(verify(&hs, V_ALG_HS512, NOW, &j, err), GW_JWT_ALG);
    RD_CHECK_EQ_INT(verify(&hs, V_HS_CRIT, NOW, &j, err), GW_JWT_MALFORMED);
}

static void test_times(void)
{
    gw_jwt j;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(verify(&hs, V_HS_TIMED, 1700, &j, err), 0);
    gw_jwt_free(&j);
    RD_CHECK_EQ_INT(verify(&hs, V_HS_TIMED, 2000, &j, err), GW_JWT_EXPIRED);
    RD_CHECK(strcmp(err, "expired") == 0);
    RD_CHECK_EQ_INT(verify(&hs, V_HS_TIMED, 1499, &j, err), GW_JWT_NOT_YET);
    /* Leeway on both ends. */
    RD_CHECK_EQ_INT(gw_jwt_verify(&hs, V_HS_TIMED, strlen(V_HS_TIMED), 2029, 30, &j, err), 0);
    gw_jwt_free(&j);
    RD_CHECK_EQ_INT(gw_jwt_verify(&hs, V_HS_TIMED, strlen(V_HS_TIMED), 2030, 30, &j, err), GW_JWT_EXPIRED);
    RD_CHECK_EQ_INT(gw_jwt_verify(&hs, V_HS_TIMED, strlen(V_HS_TIMED), 1470, 30, &j, err), 0);
    gw_jwt_free(&j);
    /* No exp: never expires. */
    RD_CHECK_EQ_INT(verify(&hs, V_HS_PLAIN, 4000000000, &j, err), 0);
    RD_CHECK(j.objects == NULL);
    gw_jwt_free(&j);
}

static void test_malformed(void)
{
    gw_jwt j;
    char err[RD_ERR_LEN];
    static const char *const bad[] = {
        "", "abc", "a.b", "a.b.c.d", ".e30.", "e30..", "e30.e30.", "e30.e30.=",
        "eyJhbGciOiJIUzI1NiJ9=.e30.AAAA", /* padding */
        "eyJhbGciOiJIUzI1NiJ9.e30+.AAAA", /* standard base64 */
        "bm90IGpzb24.e30.AAAA",           /* "not json" */
        "W10.e30.AAAA",                   /* [] */
        "eyJhbGciOjF9.e30.AAAA",          /* alg: 1 */
        "eyJ9.e30.AAAA",                  /* bad length/bits */
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        int r = verify(&hs, bad[i], NOW, &j, err);
        if (r != GW_JWT_MALFORMED)
            fprintf(stderr, "token %d: %d %s\n", i, r, err);
        RD_CHECK_EQ_INT(r, GW_JWT_MALFORMED);
    }
    RD_CHECK_EQ_INT(verify(&hs, "", NOW, &j, err), GW_JWT_MALFORMED);
    RD_CHECK(strcmp(err, "missing token") == 0);
    /* Claims of the wrong type are refused after the signature. */
    RD_CHECK_EQ_INT(verify(&hs, V_HS_EXP_STRING, NOW, &j, err), GW_JWT_MALFORMED);
    RD_CHECK(strstr(err, "\"exp\" is not a number") != NULL);
    RD_CHECK_EQ_INT(verify(&hs, V_HS_OBJECTS_BAD, NOW, &j, err), GW_JWT_MALFORMED);
    char big[GW_JWT_MAX_LEN + 2];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    RD_CHECK_EQ_INT(verify(&hs, big, NOW, &j, err), GW_JWT_MALFORMED);
}

static void test_base64url(void)
{
    uint8_t out[16];
    RD_CHECK_EQ_INT(gw_b64url_decode("", 0, out), 0);
    RD_CHECK_EQ_INT(gw_b64url_decode("TWE", 3, out), 2);
    RD_CHECK_MEM(out, 2, "Ma", 2);
    RD_CHECK_EQ_INT(gw_b64url_decode("TWFu", 4, out), 3);
    RD_CHECK_EQ_INT(gw_b64url_decode("-_8", 3, out), 2);
    RD_CHECK(out[0] == 0xfb && out[1] == 0xff);
    RD_CHECK(gw_b64url_decode("TWF", 3, out) < 0);   /* unused bits set */
    RD_CHECK(gw_b64url_decode("T", 1, out) < 0);     /* impossible length */
    RD_CHECK(gw_b64url_decode("TW==", 4, out) < 0);  /* padding */
    RD_CHECK(gw_b64url_decode("TW/+", 4, out) < 0);  /* standard alphabet */
}

static void test_objects(void)
{
    gw_jwt j;
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(verify(&hs, V_HS_GOOD, NOW, &j, err), 0);
    RD_CHECK(gw_jwt_allows(&j, "chat/lobby", 10));
    RD_CHECK(gw_jwt_allows(&j, "chat/", 5));
    RD_CHECK(gw_jwt_allows(&j, "counter/main", 12));
    RD_CHECK(!gw_jwt_allows(&j, "counter/other", 13));
    RD_CHECK(!gw_jwt_allows(&j, "counter/mai", 11));
    RD_CHECK(!gw_jwt_allows(&j, "chatx/a", 7));
    gw_jwt_free(&j);
    gw_jwt none = { 0 };
    RD_CHECK(gw_jwt_allows(&none, "anything/x", 10));
}

static void test_protocols(void)
{
    char out[128];
    const char *tok;
    size_t tl;
    const char *in = "chat, bearer.aaa.bbb.ccc,json";
    size_t n = gw_jwt_protocols_strip(in, strlen(in), out, &tok, &tl);
    RD_CHECK_MEM(out, n, "chat,json", 9);
    RD_CHECK_MEM(tok, tl, "aaa.bbb.ccc", 11);
    in = "bearer.x";
    n = gw_jwt_protocols_strip(in, strlen(in), out, &tok, &tl);
    RD_CHECK_EQ_INT(n, 0);
    RD_CHECK_MEM(tok, tl, "x", 1);
    in = "a,b";
    n = gw_jwt_protocols_strip(in, strlen(in), out, &tok, &tl);
    RD_CHECK_MEM(out, n, "a,b", 3);
    RD_CHECK(tok == NULL);
    in = "bearer.";  /* no token: an ordinary (odd) protocol name */
    n = gw_jwt_protocols_strip(in, strlen(in), out, &tok, &tl);
    RD_CHECK_MEM(out, n, "bearer.", 7);
}

int main(void)
{
    RD_RUN(test_hs256);
    RD_RUN(test_rs256_es256);
    RD_RUN(test_alg_refused);
    RD_RUN(test_times);
    RD_RUN(test_malformed);
    RD_RUN(test_base64url);
    RD_RUN(test_objects);
    RD_RUN(test_protocols);
    return rd_test_summary();
}
