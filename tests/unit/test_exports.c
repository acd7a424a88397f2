/* gw_exports: the /exports.js query, origin and module text. */
#include <string.h>

#include "gw_exports.h"
#include "rd_test.h"

static int query(const char *q, gw_exports_req *r)
{
    char err[RD_ERR_LEN];
    return gw_exports_query(q, strlen(q), r, err);
}

static void test_query(void)
{
    gw_exports_req r;
    RD_CHECK_EQ_INT(query("", &r), 0);
    RD_CHECK(!r.shared && strcmp(r.room, "default") == 0);
    RD_CHECK_EQ_INT(query("shared&room=t", &r), 0);
    RD_CHECK(r.shared && strcmp(r.room, "t") == 0);
    RD_CHECK_EQ_INT(query("room=a%20b&shared=", &r), 0);
    RD_CHECK(r.shared && strcmp(r.room, "a b") == 0);
    RD_CHECK_EQ_INT(query("sharedx&room=caf%C3%A9", &r), 0);
    RD_CHECK(!r.shared && strcmp(r.room, "caf\xc3\xa9") == 0);
    static const char *const bad[] = { "room=", "room=a%2Fb", "room=%00", "room=%zz", "room=~x", "room=.",
                                       "room=..", "room=%FF", "room=%0A", NULL };
    for (int i = 0; bad[i]; i++)
        RD_CHECK(query(bad[i], &r) < 0);
    char big[300] = "room=";
    memset(big + 5, 'x', 129);
    RD_CHECK(query(big, &r) < 0);
    big[5 + 128] = '\0';
    RD_CHECK_EQ_INT(query(big, &r), 0);
}

static void test_origin(void)
{
    char out[300], err[RD_ERR_LEN];
    RD_CHECK_EQ_INT(gw_exports_origin(true, "a.example:8443", 14, NULL, out, sizeof out, err), 0);
    RD_CHECK(strcmp(out, "https://a.example:8443") == 0);
    RD_CHECK_EQ_INT(gw_exports_origin(false, "[::1]:80", 8, "", out, sizeof out, err), 0);
    RD_CHECK(strcmp(out, "http://[::1]:80") == 0);
    RD_CHECK_EQ_INT(gw_exports_origin(false, "x", 1, "https://pub.example//", out, sizeof out, err), 0);
    RD_CHECK(strcmp(out, "https://pub.example") == 0);
    RD_CHECK(gw_exports_origin(false, NULL, 0, NULL, out, sizeof out, err) < 0);
    RD_CHECK(gw_exports_origin(false, "a\"b", 3, NULL, out, sizeof out, err) < 0);
    RD_CHECK(gw_exports_origin(false, "a/b", 3, NULL, out, sizeof out, err) < 0);
}

static void test_render(void)
{
    const char *methods[] = { "counter.increment", "counter.init", "counter.watch", "my-game.move",
                              "my_game.other", "bad.no-dash", "2d.draw" };
    bool stream[] = { false, false, true, false, false, false, false };
    gw_exports_req r;
    query("shared&room=r\"x", &r);
    rd_buf b = RD_BUF_INIT;
    gw_exports_render(&b, "https://h:1", &r, methods, stream, 7);
    rd_buf_append(&b, "", 1);
    const char *js = (const char *)rd_buf_data(&b);
    RD_CHECK(strstr(js, "import { connect } from \"https://h:1/client.js\";") != NULL);
    RD_CHECK(strstr(js, "const WS = \"wss://h:1\", SHARED = true, ROOM = \"r\\\"x\";") != NULL);
    RD_CHECK(strstr(js, "export class Counter {\n  constructor(...a) { return open(this, \"counter\", a, true); }") != NULL);
    RD_CHECK(strstr(js, "watch(...a) { return this.$client.stream(\"watch\", a); }") != NULL);
    RD_CHECK(strstr(js, "export class MyGame {\n  constructor(...a) { return open(this, \"my-game\", a, false); }") != NULL);
    /* my_game maps to the same export name: the first class keeps it. */
    RD_CHECK(strstr(js, "\"my_game\"") == NULL);
    RD_CHECK(strstr(js, "no-dash") == NULL);
    RD_CHECK(strstr(js, "export class _2d {") != NULL);
    rd_buf_free(&b);
}

int main(void)
{
    RD_RUN(test_query);
    RD_RUN(test_origin);
    RD_RUN(test_render);
    return rd_test_summary();
}
