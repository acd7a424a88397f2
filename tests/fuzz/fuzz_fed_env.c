/* Fuzz target for shard/sh_fed_env.c, the federation envelope anyone with
 * access to Redis can PUBLISH. Beyond "no crash, no leak": what decodes
 * keeps the documented invariants (known type, UTF-8 text, a federate's
 * bounds, an origin only with a seq on broadcasts), and re-encoding it as a
 * shard would decodes to the same envelope. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rd_buf.h"
#include "roomd_module.h"
#include "sh_fed_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static int same(const void *a, size_t an, const void *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sh_fed_env e;
    if (sh_fed_env_decode(data, size, &e) == 0) {
        CHECK(e.type == ROOMD_TEXT || e.type == ROOMD_BINARY || e.type == SH_FED_FEDERATE);
        CHECK(e.data != NULL);
        if (e.type == ROOMD_TEXT)
            CHECK(sh_fed_utf8_valid(e.data, e.len));
        if (e.type == SH_FED_FEDERATE) {
            CHECK(e.len <= SH_FED_MAX_FEDERATE && e.seq == 0);
            CHECK(!e.from || e.from_len <= SH_FED_MAX_FROM);
        } else {
            CHECK(!e.from && (e.origin != NULL) == (e.seq != 0));
        }
        rd_buf b = RD_BUF_INIT;
        sh_fed_env_encode(&b, &e);
        sh_fed_env r;
        CHECK(sh_fed_env_decode(rd_buf_data(&b), rd_buf_avail(&b), &r) == 0);
        CHECK(r.type == e.type && r.seq == e.seq);
        CHECK(same(r.data, r.len, e.data, e.len));
        CHECK((r.origin == NULL) == (e.origin == NULL) && same(r.origin, r.origin_len, e.origin, e.origin_len));
        CHECK((r.from == NULL) == (e.from == NULL) && same(r.from, r.from_len, e.from, e.from_len));
        sh_fed_env_free(&r);
        rd_buf_free(&b);
    }
    sh_fed_env_free(&e);
    return 0;
}
