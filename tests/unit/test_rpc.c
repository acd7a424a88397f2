/* rpc_codec: JSON-RPC 2.0 request parsing and response encoding. */
#include <string.h>

#include "rd_test.h"
#include "rpc_codec.h"

static int parse(const char *s, sh_rpc_req *r)
{
    return sh_rpc_parse((const uint8_t *)s, strlen(s), r);
}

static void test_detect(void)
{
    RD_CHECK(sh_rpc_is_request((const uint8_t *)"{\"jsonrpc\":\"2.0\"}", 17));
    RD_CHECK(sh_rpc_is_request((const uint8_t *)" \n[{\"jsonrpc\"", 13));
    RD_CHECK(!sh_rpc_is_request((const uint8_t *)"{\"op\":\"get\"}", 12));
    RD_CHECK(!sh_rpc_is_request((const uint8_t *)"say \"jsonrpc\"", 13));
    RD_CHECK(!sh_rpc_is_request((const uint8_t *)"", 0));
}

static void test_calls(void)
{
    sh_rpc_req r;
    RD_CHECK_EQ_INT(parse("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"inc\",\"params\":[1, 2]}", &r), 0);
    RD_CHECK_EQ_INT(r.kind, SH_RPC_CALL);
    RD_CHECK(strcmp(r.id, "7") == 0 && strcmp(r.method, "inc") == 0);
    RD_CHECK_STR(r.params, r.params_len, "[1,2]");
    sh_rpc_req_free(&r);
    RD_CHECK_EQ_INT(parse("{\"method\":\"m\",\"jsonrpc\":\"2.0\",\"id\":\"x\\\"y\",\"params\":{\"a\":null}}", &r), 0);
    RD_CHECK(strcmp(r.id, "\"x\\\"y\"") == 0);
    RD_CHECK_STR(r.params, r.params_len, "{\"a\":null}");
    sh_rpc_req_free(&r);
    RD_CHECK_EQ_INT(parse("{\"jsonrpc\":\"2.0\",\"method\":\"m\"}", &r), 0);
    RD_CHECK_EQ_INT(r.kind, SH_RPC_NOTIFY);
    RD_CHECK(r.id == NULL);
    RD_CHECK_STR(r.params, r.params_len, "[]");
    sh_rpc_req_free(&r);
    RD_CHECK_EQ_INT(parse("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"m\"}", &r), 0);
    RD_CHECK_EQ_INT(r.kind, SH_RPC_CALL);
    RD_CHECK(strcmp(r.id, "null") == 0);
    sh_rpc_req_free(&r);
    RD_CHECK_EQ_INT(parse("{\"jsonrpc\":\"2.0\",\"method\":\"rpc.cancel\",\"params\":[3]}", &r), 0);
    RD_CHECK_EQ_INT(r.kind, SH_RPC_CANCEL);
    RD_CHECK(strcmp(r.cancel_id, "3") == 0);
    sh_rpc_req_free(&r);
    RD_CHECK_EQ_INT(parse("{\"jsonrpc\":\"2.0\",\"method\":\"rpc.cancel\",\"params\":{\"id\":\"s\"}}", &r), 0);
    RD_CHECK(strcmp(r.cancel_id, "\"s\"") == 0);
    sh_rpc_req_free(&r);
}

static void test_errors(void)
{
    static const struct { const char *in; int code; const char *id; } cases[] = {
        { "{\"jsonrpc\":\"2.0\",", -32700, NULL },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"} x", -32700, NULL },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"m\"}", -32700, NULL },
        { "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"}]", -32600, NULL },
        { "[]", -32600, NULL },
        { "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"m\"}", -32600, "1" },
        { "{\"id\":1,\"method\":\"m\"}", -32600, "1" },
        { "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"m\"}", -32600, NULL },
        { "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"m\"}", -32600, NULL },
        { "{\"jsonrpc\":\"2.0\",\"id\":1}", -32600, "1" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}", -32600, "1" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\\u0000b\"}", -32700, NULL },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":3}", -32602, "1" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.x\"}", -32601, "1" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.cancel\"}", -32602, "1" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.cancel\",\"params\":[{}]}", -32602, "1" },
        { NULL, 0, NULL },
    };
    for (int i = 0; cases[i].in; i++) {
        sh_rpc_req r;
        int ret = parse(cases[i].in, &r);
        RD_CHECK(ret < 0);
        RD_CHECK_EQ_INT(r.kind, SH_RPC_BAD);
        if (r.code != cases[i].code)
            fprintf(stderr, "case %d: code %d (%s)\n", i, r.code, r.message);
        RD_CHECK_EQ_INT(r.code, cases[i].code);
        RD_CHECK(r.message[0] != '\0');
        RD_CHECK(cases[i].id ? r.id && strcmp(r.id, cases[i].id) == 0 : r.id == NULL);
        sh_rpc_req_free(&r);
    }
    char big[400];
    int n = snprintf(big, sizeof big, "{\"jsonrpc\":\"2.0\",\"id\":\"%0300d\",\"method\":\"m\"}", 0);
    sh_rpc_req r;
    RD_CHECK(sh_rpc_parse((const uint8_t *)big, (size_t)n, &r) < 0);
    RD_CHECK_EQ_INT(r.code, -32600);
    sh_rpc_req_free(&r);
}

static void test_encode(void)
{
    rd_buf b = RD_BUF_INIT;
    sh_rpc_put_result(&b, "1", "{\"a\":2}", 7);
    RD_CHECK_STR(rd_buf_data(&b), rd_buf_avail(&b), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":2}}");
    rd_buf_free(&b);
    sh_rpc_put_error(&b, NULL, -32601, "no \"x\"\n");
    RD_CHECK_STR(rd_buf_data(&b), rd_buf_avail(&b),
                 "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32601,\"message\":\"no \\\"x\\\"\\n\"}}");
    rd_buf_free(&b);
    sh_rpc_put_stream(&b, "\"s\"", "5", 1);
    RD_CHECK_STR(rd_buf_data(&b), rd_buf_avail(&b),
                 "{\"jsonrpc\":\"2.0\",\"method\":\"rpc.stream\",\"params\":{\"id\":\"s\",\"value\":5}}");
    rd_buf_free(&b);
    RD_CHECK(sh_rpc_json_valid("5", 1));
    RD_CHECK(sh_rpc_json_valid("\"s\"", 3));
    RD_CHECK(!sh_rpc_json_valid("5 5", 3));
    RD_CHECK(!sh_rpc_json_valid("{", 1));
    RD_CHECK(!sh_rpc_json_valid("", 0));
}

static void test_params(void)
{
    json_error_t je;
    json_t *a = json_loads("[1, \"x\"]", 0, &je), *o = json_loads("{\"by\": 3}", 0, &je);
    RD_CHECK(json_integer_value(sh_rpc_param(a, 0, "by")) == 1);
    RD_CHECK(sh_rpc_param(a, 2, "z") == NULL);
    RD_CHECK(json_integer_value(sh_rpc_param(o, 0, "by")) == 3);
    RD_CHECK(sh_rpc_param(o, 0, "other") == NULL);
    json_decref(a);
    json_decref(o);
}

int main(void)
{
    RD_RUN(test_detect);
    RD_RUN(test_calls);
    RD_RUN(test_errors);
    RD_RUN(test_encode);
    RD_RUN(test_params);
    return rd_test_summary();
}
