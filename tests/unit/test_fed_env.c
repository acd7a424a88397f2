/* Unit tests for shard/sh_fed_env.c: the federation envelope that shards
 * and backends PUBLISH (README "Federation"), JSON and msgpack. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "pr_mp.h"
#include "rd_buf.h"
#include "rd_test.h"
#include "roomd_module.h"
#include "sh_fed_env.h"

static int dec(const char *s, sh_fed_env *e)
{
    return sh_fed_env_decode((const uint8_t *)s, strlen(s), e);
}

static void test_json_text_binary_federate(void)
{
    sh_fed_env e;
    RD_CHECK_EQ_INT(dec(" {\"type\":\"text\",\"data\":\"h\\u00e9\"}", &e), 0);
    RD_CHECK_EQ_INT(e.type, ROOMD_TEXT);
    RD_CHECK_STR(e.data, e.len, "h\xc3\xa9");
    RD_CHECK(e.origin == NULL && e.seq == 0 && e.from == NULL);
    sh_fed_env_free(&e);

    /* base64, standard or URL-safe, padding optional */
    RD_CHECK_EQ_INT(dec("{\"type\":\"binary\",\"data\":\"AP8=\"}", &e), 0);
    RD_CHECK_EQ_INT(e.type, ROOMD_BINARY);
    RD_CHECK_MEM(e.data, e.len, "\x00\xff", 2);
    sh_fed_env_free(&e);
    RD_CHECK_EQ_INT(dec("{\"type\":\"binary\",\"data\":\"-_8\"}", &e), 0);
    RD_CHECK_MEM(e.data, e.len, "\xfb\xff", 2);
    sh_fed_env_free(&e);
    RD_CHECK_EQ_INT(dec("{\"type\":\"binary\",\"data\":\"\"}", &e), 0);
    RD_CHECK_EQ_INT(e.len, 0);
    sh_fed_env_free(&e);

    RD_CHECK_EQ_INT(dec("{\"type\":\"federate\",\"data\":\"x y\",\"from\":\"billing\",\"origin\":\"o\","
                        "\"seq\":5}", &e), 0);
    RD_CHECK_EQ_INT(e.type, SH_FED_FEDERATE);
    RD_CHECK_STR(e.data, e.len, "x y");
    RD_CHECK_STR(e.from, e.from_len, "billing");
    RD_CHECK_STR(e.origin, e.origin_len, "o");
    RD_CHECK_EQ_INT(e.seq, 0); /* not sequenced */
    sh_fed_env_free(&e);
}

static void test_origin_needs_seq_on_broadcasts(void)
{
    sh_fed_env e;
    RD_CHECK_EQ_INT(dec("{\"type\":\"text\",\"data\":\"a\",\"origin\":\"abc\",\"seq\":7}", &e), 0);
    RD_CHECK_STR(e.origin, e.origin_len, "abc");
    RD_CHECK_EQ_INT(e.seq, 7);
    sh_fed_env_free(&e);
    RD_CHECK_EQ_INT(dec("{\"type\":\"text\",\"data\":\"a\",\"origin\":\"abc\"}", &e), 0);
    RD_CHECK(e.origin == NULL && e.seq == 0);
    sh_fed_env_free(&e);
    RD_CHECK_EQ_INT(dec("{\"type\":\"text\",\"data\":\"a\",\"origin\":\"abc\",\"seq\":0}", &e), 0);
    RD_CHECK(e.origin == NULL && e.seq == 0);
    sh_fed_env_free(&e);
    /* "from" means nothing on a broadcast */
    RD_CHECK_EQ_INT(dec("{\"type\":\"text\",\"data\":\"a\",\"from\":\"x\"}", &e), 0);
    RD_CHECK(e.from == NULL);
    sh_fed_env_free(&e);
}

static void test_rejected(void)
{
    static const char *const bad[] = {
        "", "   ", "garbage", "[]", "{}", "{\"type\":\"text\"}", "{\"data\":\"a\"}",
        "{\"type\":\"close\",\"data\":\"a\"}", "{\"type\":\"text\",\"data\":5}",
        "{\"type\":\"binary\",\"data\":\"A\"}",       /* one base64 digit */
        "{\"type\":\"binary\",\"data\":\"AB*D\"}",    /* not base64 */
        "{\"type\":\"federate\",\"data\":\"a\",\"from\":7}",
        "{\"type\":\"text\",\"data\":\"a\"", /* truncated */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sh_fed_env e;
        rd_test_current = bad[i];
        RD_CHECK_EQ_INT(dec(bad[i], &e), -EBADMSG);
        sh_fed_env_free(&e);
    }
    rd_test_current = "test_rejected";
    /* text must be UTF-8 (msgpack can carry any bytes in a str) */
    rd_buf b = RD_BUF_INIT;
    sh_fed_env_encode(&b, &(sh_fed_env){ .type = ROOMD_TEXT, .data = (const uint8_t *)"\xc0\xaf", .len = 2 });
    sh_fed_env e;
    RD_CHECK_EQ_INT(sh_fed_env_decode(rd_buf_data(&b), rd_buf_avail(&b), &e), -EBADMSG);
    sh_fed_env_free(&e);
    rd_buf_free(&b);
    /* federate: from without NUL, within SH_FED_MAX_FROM; data within SH_FED_MAX_FEDERATE */
    sh_fed_env_encode(&b, &(sh_fed_env){ .type = SH_FED_FEDERATE, .data = (const uint8_t *)"d",
                                         .len = 1, .from = "a\0b", .from_len = 3 });
    RD_CHECK_EQ_INT(sh_fed_env_decode(rd_buf_data(&b), rd_buf_avail(&b), &e), -EBADMSG);
    sh_fed_env_free(&e);
    rd_buf_free(&b);
    static char big[SH_FED_MAX_FEDERATE + 1];
    memset(big, 'k', sizeof big);
    sh_fed_env_encode(&b, &(sh_fed_env){ .type = SH_FED_FEDERATE, .data = (const uint8_t *)"d",
                                         .len = 1, .from = big, .from_len = SH_FED_MAX_FROM + 1 });
    RD_CHECK_EQ_INT(sh_fed_env_decode(rd_buf_data(&b), rd_buf_avail(&b), &e), -EBADMSG);
    sh_fed_env_free(&e);
    rd_buf_free(&b);
    sh_fed_env_encode(&b, &(sh_fed_env){ .type = SH_FED_FEDERATE, .data = (const uint8_t *)big,
                                         .len = sizeof big });
    RD_CHECK_EQ_INT(sh_fed_env_decode(rd_buf_data(&b), rd_buf_avail(&b), &e), -EBADMSG);
    sh_fed_env_free(&e);
    rd_buf_free(&b);
    sh_fed_env_encode(&b, &(sh_fed_env){ .type = SH_FED_FEDERATE, .data = (const uint8_t *)big,
                                         .len = SH_FED_MAX_FEDERATE, .from = big,
                                         .from_len = SH_FED_MAX_FROM });
    RD_CHECK_EQ_INT(sh_fed_env_decode(rd_buf_data(&b), rd_buf_avail(&b), &e), 0);
    sh_fed_env_free(&e);
    rd_buf_free(&b);
}

/* What a shard publishes decodes to what it encoded. */
static void test_msgpack_round_trip(void)
{
    const sh_fed_env in[] = {
        { .type = ROOMD_TEXT, .data = (const uint8_t *)"hello", .len = 5, .origin = "0123", .origin_len = 4, .seq = 42 },
        { .type = ROOMD_BINARY, .data = (const uint8_t *)"\x00\x01", .len = 2 },
        { .type = SH_FED_FEDERATE, .data = (const uint8_t *)"", .len = 0, .origin = "o", .origin_len = 1,
          .from = "fed/x", .from_len = 5 },
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        rd_buf b = RD_BUF_INIT;
        sh_fed_env_encode(&b, &in[i]);
        sh_fed_env e;
        RD_CHECK_EQ_INT(sh_fed_env_decode(rd_buf_data(&b), rd_buf_avail(&b), &e), 0);
        RD_CHECK_EQ_INT(e.type, in[i].type);
        RD_CHECK_MEM(e.data, e.len, in[i].data, in[i].len);
        RD_CHECK_EQ_INT(e.seq, in[i].seq);
        RD_CHECK_MEM(e.origin ? e.origin : "", e.origin_len, in[i].origin ? in[i].origin : "", in[i].origin_len);
        RD_CHECK_MEM(e.from ? e.from : "", e.from_len, in[i].from ? in[i].from : "", in[i].from_len);
        sh_fed_env_free(&e);
        rd_buf_free(&b);
    }
    /* A backend's msgpack: data as str, unknown keys skipped. */
    rd_buf b = RD_BUF_INIT;
    pr_mp_put_map(&b, 3);
    pr_mp_put_str(&b, "note", 4);
    pr_mp_put_uint(&b, 1);
    pr_mp_put_str(&b, "type", 4);
    pr_mp_put_str(&b, "text", 4);
    pr_mp_put_str(&b, "data", 4);
    pr_mp_put_str(&b, "as str", 6);
    sh_fed_env e;
    RD_CHECK_EQ_INT(sh_fed_env_decode(rd_buf_data(&b), rd_buf_avail(&b), &e), 0);
    RD_CHECK_STR(e.data, e.len, "as str");
    sh_fed_env_free(&e);
    rd_buf_free(&b);
}

static void test_utf8(void)
{
    RD_CHECK(sh_fed_utf8_valid((const uint8_t *)"", 0));
    RD_CHECK(sh_fed_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4));
    RD_CHECK(!sh_fed_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));  /* surrogate */
    RD_CHECK(!sh_fed_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));  /* overlong */
    RD_CHECK(!sh_fed_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    RD_CHECK(!sh_fed_utf8_valid((const uint8_t *)"\xe2\x82", 2));      /* truncated */
}

int main(void)
{
    RD_RUN(test_json_text_binary_federate);
    RD_RUN(test_origin_needs_seq_on_broadcasts);
    RD_RUN(test_rejected);
    RD_RUN(test_msgpack_round_trip);
    RD_RUN(test_utf8);
    return rd_test_summary();
}
