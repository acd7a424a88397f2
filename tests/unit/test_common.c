/* Unit tests for common/: the routing hash (fixed vectors: every gateway
 * must agree forever), HRW movement, UUIDv7, maps, config, buffers. */
#include <stdint.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include <fcntl.h>
#include <unistd.h>

#include "rd_buf.h"
#include "rd_hist.h"
#include "rd_log.h"
#include "rd_config.h"
#include "rd_hash.h"
#include "rd_map.h"
#include "rd_test.h"
#include "rd_uuid.h"

static void test_hash_vectors(void)
{
    RD_CHECK(rd_fnv1a64("", 0, RD_FNV_BASIS) == 0xcbf29ce484222325ULL);
    RD_CHECK(rd_fnv1a64("a", 1, RD_FNV_BASIS) == 0xaf63dc4c8601ec8cULL);
    RD_CHECK(rd_hash64("", 0) == 0xefd01f60ba992926ULL);
    RD_CHECK(rd_hash64("chat/lobby", 10) == 0x61efb462935a1530ULL);
    RD_CHECK(rd_hrw_score("chat/lobby", 10, "shard-0", 7) == 0xd1b291d1939a9e26ULL);
    const char *names[] = { "shard-0", "shard-1", "shard-2", "shard-3" };
    RD_CHECK_EQ_INT(rd_hrw_pick("echo/foo", 8, names, 4), 0);
    RD_CHECK_EQ_INT(rd_hrw_pick("counter/main", 12, names, 4), 2);
    RD_CHECK_EQ_INT(rd_hrw_pick("x", 1, names, 0), -1);
}

/* Adding a fifth shard moves about 1/5 of the keys, and only to the new one. */
static void test_hrw_movement(void)
{
    const char *four[] = { "shard-0", "shard-1", "shard-2", "shard-3" };
    const char *five[] = { "shard-0", "shard-1", "shard-2", "shard-3", "shard-4" };
    int moved = 0, wrong = 0, per[4] = { 0 };
    char key[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof key, "chat/room-%d", i);
        int a = rd_hrw_pick(key, (size_t)n, four, 4), b = rd_hrw_pick(key, (size_t)n, five, 5);
        per[a]++;
        if (a != b) {
            moved++;
            wrong += b != 4;
        }
    }
    RD_CHECK_EQ_INT(wrong, 0);
    RD_CHECK(moved > 1700 && moved < 2300);
    for (int i = 0; i < 4; i++)
        RD_CHECK(per[i] > 2200 && per[i] < 2800);
}

static void test_uuid7(void)
{
    char a[RD_UUID_STR_LEN + 1], b[RD_UUID_STR_LEN + 1];
    rd_uuid7_str(a);
    RD_CHECK_EQ_INT(strlen(a), 36);
    RD_CHECK(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
    RD_CHECK(a[14] == '7');
    RD_CHECK(strchr("89ab", a[19]) != NULL);
    for (int i = 0; i < 10000; i++) {
        rd_uuid7_str(b);
        RD_CHECK(strcmp(a, b) < 0); /* strictly increasing within a process */
        memcpy(a, b, sizeof a);
    }
}

static void test_map_u64(void)
{
    rd_map m;
    rd_map_init(&m, 0);
    for (uintptr_t i = 1; i <= 5000; i++)
        rd_map_put(&m, i, (void *)(i * 2));
    RD_CHECK_EQ_INT(m.count, 5000);
    for (uintptr_t i = 1; i <= 5000; i += 2)
        RD_CHECK((uintptr_t)rd_map_del(&m, i) == i * 2);
    RD_CHECK_EQ_INT(m.count, 2500);
    int bad = 0;
    for (uintptr_t i = 1; i <= 5000; i++) {
        void *v = rd_map_get(&m, i);
        bad += (i % 2) ? v != NULL : (uintptr_t)v != i * 2;
    }
    RD_CHECK_EQ_INT(bad, 0);
    size_t it = 0, seen = 0;
    while (rd_map_next(&m, &it))
        seen++;
    RD_CHECK_EQ_INT(seen, 2500);
    RD_CHECK(rd_map_del(&m, 999999) == NULL);
    rd_map_free(&m);
}

static void test_map_str(void)
{
    rd_map m;
    rd_map_init(&m, 1);
    static char keys[300][16];
    for (int i = 0; i < 300; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        rd_smap_put(&m, keys[i], strlen(keys[i]), keys[i]);
    }
    RD_CHECK(rd_smap_get(&m, "k7", 2) == keys[7]);
    RD_CHECK(rd_smap_get(&m, "k7x", 3) == NULL);
    RD_CHECK(rd_smap_del(&m, "k7", 2) == keys[7]);
    RD_CHECK(rd_smap_get(&m, "k7", 2) == NULL);
    RD_CHECK(rd_smap_get(&m, "k299", 4) == keys[299]);
    rd_map_free(&m);
}

typedef struct cfg {
    char *s;
    int64_t i;
    uint64_t size, ms;
    bool b;
    char **list;
} cfg;

static const rd_cfg_opt opts[] = {
    { "str", RD_CFG_STR, offsetof(cfg, s), "dflt", 0, 0, "S", "a string" },
    { "int", RD_CFG_INT, offsetof(cfg, i), "4", 1, 10, "N", "an int" },
    { "size", RD_CFG_SIZE, offsetof(cfg, size), "1m", 0, 0, "B", "a size" },
    { "ms", RD_CFG_MS, offsetof(cfg, ms), "10s", 0, 0, "D", "a duration" },
    { "flag", RD_CFG_BOOL, offsetof(cfg, b), NULL, 0, 0, NULL, "a flag" },
    { "item", RD_CFG_LIST, offsetof(cfg, list), NULL, 0, 0, "X", "items" },
    { NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static void test_config(void)
{
    cfg c = { 0 };
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(rd_cfg_defaults(opts, &c, err), 0);
    RD_CHECK(strcmp(c.s, "dflt") == 0 && c.i == 4 && c.size == 1048576 && c.ms == 10000 && !c.b);
    char *argv[] = { "prog", "--str", "x", "--int=7", "--size", "64k", "--ms", "250ms", "--flag",
                     "--item", "a", "--item=b", "--help", "rest", NULL };
    const char *const actions[] = { "help", NULL };
    const char *action;
    int optind_;
    RD_CHECK_EQ_INT(rd_cfg_argv(opts, &c, 14, argv, actions, &action, &optind_, err), 0);
    RD_CHECK(strcmp(c.s, "x") == 0 && c.i == 7 && c.size == 65536 && c.ms == 250 && c.b);
    RD_CHECK(c.list && strcmp(c.list[0], "a") == 0 && strcmp(c.list[1], "b") == 0 && !c.list[2]);
    RD_CHECK(action && strcmp(action, "help") == 0);
    RD_CHECK_EQ_INT(optind_, 13);
    char *bad1[] = { "prog", "--int", "11", NULL };
    RD_CHECK(rd_cfg_argv(opts, &c, 3, bad1, NULL, &action, &optind_, err) < 0);
    RD_CHECK(strstr(err, "out of range") != NULL);
    char *bad2[] = { "prog", "--nope", NULL };
    RD_CHECK(rd_cfg_argv(opts, &c, 2, bad2, NULL, &action, &optind_, err) == -ENOENT);
    char *bad3[] = { "prog", "--size", "12q", NULL };
    RD_CHECK(rd_cfg_argv(opts, &c, 3, bad3, NULL, &action, &optind_, err) < 0);
    char *neg[] = { "prog", "--no-flag", NULL };
    RD_CHECK_EQ_INT(rd_cfg_argv(opts, &c, 2, neg, NULL, &action, &optind_, err), 0);
    RD_CHECK(!c.b);
    setenv("ROOMD_INT", "9", 1);
    RD_CHECK_EQ_INT(rd_cfg_env(opts, &c, err), 0);
    RD_CHECK_EQ_INT(c.i, 9);
    unsetenv("ROOMD_INT");
    rd_cfg_free(opts, &c);
}

static void test_config_file(void)
{
    char path[] = "/tmp/roomd-test-cfg-XXXXXX";
    int fd = mkstemp(path);
    RD_CHECK(fd >= 0);
    const char text[] = "# comment\n\nstr = \"quoted value\"\nint=8\n  flag = yes  \nitem = one\n";
    RD_CHECK(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(fd);
    cfg c = { 0 };
    char err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(rd_cfg_defaults(opts, &c, err), 0);
    RD_CHECK_EQ_INT(rd_cfg_file(opts, &c, path, err), 0);
    RD_CHECK(strcmp(c.s, "quoted value") == 0 && c.i == 8 && c.b && c.list && strcmp(c.list[0], "one") == 0);
    fd = open(path, O_WRONLY | O_TRUNC);
    const char bad[] = "int = 99\n";
    RD_CHECK(write(fd, bad, sizeof bad - 1) == (ssize_t)(sizeof bad - 1));
    close(fd);
    RD_CHECK(rd_cfg_file(opts, &c, path, err) < 0);
    RD_CHECK(strstr(err, ":1:") != NULL && strstr(err, "out of range") != NULL);
    fd = open(path, O_WRONLY | O_TRUNC);
    const char junk[] = "no equals sign here\n";
    RD_CHECK(write(fd, junk, sizeof junk - 1) == (ssize_t)(sizeof junk - 1));
    close(fd);
    RD_CHECK(rd_cfg_file(opts, &c, path, err) < 0 && strstr(err, "expected 'name = value'"));
    unlink(path);
    RD_CHECK(rd_cfg_file(opts, &c, path, err) < 0); /* missing file */
    rd_cfg_free(opts, &c);
}

static void test_log_quote(void)
{
    char out[64];
    size_t n = rd_log_quote(out, sizeof out, "plain", 5);
    RD_CHECK_MEM(out, n, "plain", 5);
    n = rd_log_quote(out, sizeof out, "two words", 9);
    RD_CHECK_STR(out, n, "\"two words\"");
    n = rd_log_quote(out, sizeof out, "a\"b\\c\n", 6);
    RD_CHECK_STR(out, n, "\"a\\\"b\\\\c\\x0a\"");
    n = rd_log_quote(out, sizeof out, "", 0);
    RD_CHECK_STR(out, n, "\"\"");
    char big[200];
    memset(big, 'x', sizeof big);
    big[0] = ' ';
    n = rd_log_quote(out, sizeof out, big, sizeof big);
    RD_CHECK(n <= sizeof out && out[0] == '"' && out[n - 1] == '"');
}

static void test_logfmt_to_json(void)
{
    char out[512];
    const char *in = "ts=2026-01-01T00:00:00.000Z level=info proc=gw msg=\"two \\\"words\\\"\" n=3 path=/a\\x0ab";
    size_t n = rd_log_logfmt_to_json(in, strlen(in), out, sizeof out);
    RD_CHECK_STR(out, n, "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"level\":\"info\",\"proc\":\"gw\","
                         "\"msg\":\"two \\\"words\\\"\",\"n\":\"3\",\"path\":\"/a\\\\x0ab\"}");
    const char *quoted = "msg=\"line\\x0abreak\"";
    n = rd_log_logfmt_to_json(quoted, strlen(quoted), out, sizeof out);
    RD_CHECK_STR(out, n, "{\"msg\":\"line\\u000abreak\"}");
    n = rd_log_logfmt_to_json("", 0, out, sizeof out);
    RD_CHECK_STR(out, n, "{}");
}

static void test_buf(void)
{
    rd_buf b = RD_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        rd_buf_append(&b, "abcd", 4);
    RD_CHECK_EQ_INT(rd_buf_avail(&b), 4000);
    rd_buf_consume(&b, 3998);
    RD_CHECK_MEM(rd_buf_data(&b), rd_buf_avail(&b), "cd", 2);
    rd_buf_compact(&b);
    RD_CHECK_EQ_INT(b.off, 0);
    rd_buf_consume(&b, 2);
    RD_CHECK_EQ_INT(b.len, 0);
    rd_buf_free(&b);
    rd_buf_free(&b); /* freeing twice is fine */
}

/* Buckets are upper-inclusive (Prometheus' le), the text is cumulative,
 * and the sum is in seconds. */
static void test_hist(void)
{
    rd_hist h = { { 0 }, 0 };
    rd_hist_observe(&h, 0);
    rd_hist_observe(&h, 50);       /* le 5e-05 */
    rd_hist_observe(&h, 51);       /* le 0.0001 */
    rd_hist_observe(&h, 2500000);  /* the last bound */
    rd_hist_observe(&h, 9000000);  /* +Inf */
    RD_CHECK_EQ_INT(h.counts[0], 2);
    RD_CHECK_EQ_INT(h.counts[1], 1);
    RD_CHECK_EQ_INT(h.counts[RD_HIST_BOUNDS - 1], 1);
    RD_CHECK_EQ_INT(h.counts[RD_HIST_BOUNDS], 1);
    RD_CHECK_EQ_INT(rd_hist_count(&h), 5);
    RD_CHECK_EQ_INT(h.sum_us, 11500101);
    rd_buf b = RD_BUF_INIT;
    rd_hist_render(&b, "x_seconds", "Help.", true, "shard=\"a\"", &h);
    rd_buf_append(&b, "", 1);
    const char *t = (const char *)rd_buf_data(&b);
    const char *head = "# HELP x_seconds Help.\n# TYPE x_seconds histogram\n";
    RD_CHECK(strncmp(t, head, strlen(head)) == 0);
    RD_CHECK(strstr(t, "\nx_seconds_bucket{shard=\"a\",le=\"5e-05\"} 2\n") != NULL);
    RD_CHECK(strstr(t, "\nx_seconds_bucket{shard=\"a\",le=\"0.0001\"} 3\n") != NULL);
    RD_CHECK(strstr(t, "\nx_seconds_bucket{shard=\"a\",le=\"2.5\"} 4\n") != NULL);
    RD_CHECK(strstr(t, "\nx_seconds_bucket{shard=\"a\",le=\"+Inf\"} 5\n") != NULL);
    RD_CHECK(strstr(t, "\nx_seconds_sum{shard=\"a\"} 11.500101\nx_seconds_count{shard=\"a\"} 5\n") != NULL);
    rd_buf_free(&b);
    /* Without labels or header: no braces, no HELP. */
    rd_hist_render(&b, "y", NULL, false, "", &h);
    rd_buf_append(&b, "", 1);
    t = (const char *)rd_buf_data(&b);
    head = "y_bucket{le=\"5e-05\"} 2\n";
    RD_CHECK(strncmp(t, head, strlen(head)) == 0);
    RD_CHECK(strstr(t, "\ny_sum 11.500101\ny_count 5\n") != NULL);
    rd_buf_free(&b);
}

int main(void)
{
    RD_RUN(test_hist);
    RD_RUN(test_hash_vectors);
    RD_RUN(test_hrw_movement);
    RD_RUN(test_uuid7);
    RD_RUN(test_map_u64);
    RD_RUN(test_map_str);
    RD_RUN(test_config);
    RD_RUN(test_buf);
    RD_RUN(test_config_file);
    RD_RUN(test_log_quote);
    RD_RUN(test_logfmt_to_json);
    return rd_test_summary();
}
