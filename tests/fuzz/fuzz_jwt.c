/* Fuzz target for the JWT verifier: the whole input is a token checked
 * against an HS256 secret (the corpus holds tokens signed with it, so the
 * claim reader behind the signature is reached), then fed to the
 * subprotocol splitter and the base64url decoder. Invariants: a refusal
 * leaves the result untouched and says why; an accepted token's claims are
 * NUL-terminated text of the stated length; outputs stay in bounds. */
#include "gw_jwt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond) do { if (!(cond)) abort(); } while (0)

static const char secret[] = "a-test-secret-of-at-least-32-bytes!!";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * GW_JWT_MAX_LEN)
        return 0;
    const char *in = (const char *)data;
    gw_jwt_keys keys = { (const uint8_t *)secret, sizeof secret - 1, NULL };
    gw_jwt j;
    memset(&j, 0xA5, sizeof j);
    char err[RD_ERR_LEN] = "";
    int r = gw_jwt_verify(&keys, in, size, 1900000000, 30, &j, err);
    if (r == 0) {
        INVARIANT(j.claims && strlen(j.claims) == j.claims_len && j.claims_len < size);
        INVARIANT(j.nobjects <= GW_JWT_MAX_OBJECTS);
        INVARIANT(strcmp(j.alg, "HS256") == 0);
        gw_jwt_allows(&j, in, size);
        gw_jwt_free(&j);
    } else {
        INVARIANT(r >= GW_JWT_NOT_YET && r <= GW_JWT_MALFORMED);
        INVARIANT(err[0] != '\0');
        uint8_t pat[sizeof j];
        memset(pat, 0xA5, sizeof pat);
        INVARIANT(memcmp(&j, pat, sizeof j) == 0);
    }
    char *out = malloc(size + 1);
    const char *tok;
    size_t tl;
    size_t n = gw_jwt_protocols_strip(in, size, out, &tok, &tl);
    INVARIANT(n <= size);
    INVARIANT(!tok || (tok >= in && tok + tl <= in + size));
    uint8_t *dec = malloc(size + 1);
    int d = gw_b64url_decode(in, size, dec);
    INVARIANT(d < 0 || (size_t)d <= size * 3 / 4);
    free(dec);
    free(out);
    return 0;
}
