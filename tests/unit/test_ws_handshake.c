/* Unit tests for the RFC 6455 §4.2.1 handshake checks and the accept key. */
#include <string.h>

#include "http_parser.h"
#include "rd_test.h"
#include "ws_handshake.h"

static int check(const char *raw, int *status, char accept[WS_ACCEPT_LEN + 1], const char **protos,
                 size_t *plen, char err[RD_ERR_LEN])
{
    static gw_http_request req;
    int st = 0;
    int r = gw_http_parse(raw, strlen(raw), 8192, 64, &req, &st, err);
    if (r <= 0)
        return -1000;
    return ws_handshake_check(&req, accept, protos, plen, status, err);
}

#define BASE "GET /chat/x HTTP/1.1\r\nHost: x\r\n"
#define GOOD_REST "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

static void test_accept_key_rfc_example(void)
{
    char accept[WS_ACCEPT_LEN + 1];
    ws_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
    RD_CHECK(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
}

static void test_valid(void)
{
    char accept[WS_ACCEPT_LEN + 1], err[RD_ERR_LEN];
    const char *protos;
    size_t plen;
    int status;
    RD_CHECK_EQ_INT(check(BASE GOOD_REST "\r\n", &status, accept, &protos, &plen, err), 0);
    RD_CHECK(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    RD_CHECK(protos == NULL && plen == 0);
    RD_CHECK_EQ_INT(check(BASE "upgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
                          "sec-websocket-key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nsec-websocket-version: 13\r\n"
                          "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n",
                          &status, accept, &protos, &plen, err), 0);
    RD_CHECK_STR(protos, plen, "chat, superchat");
}

static void test_refusals(void)
{
    static const struct {
        const char *raw;
        int status;
        const char *reason;
    } cases[] = {
        { "POST /chat/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" GOOD_REST "\r\n", 400, "requires GET" },
        { "GET /chat/x HTTP/1.0\r\n" GOOD_REST "\r\n", 400, "HTTP/1.1" },
        { BASE "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "Connection: Upgrade" },
        { BASE "Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "Upgrade: websocket" },
        { BASE "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "Sec-WebSocket-Key" },
        { BASE "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "Sec-WebSocket-Key" },
        /* 17 bytes encoded: too long */
        { BASE "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEBE=\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "Sec-WebSocket-Key" },
        /* non-canonical last character */
        { BASE "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "Sec-WebSocket-Key" },
        { BASE "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "exactly one" },
        { BASE "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 400, "Sec-WebSocket-Version" },
        { BASE "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426, "13" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char accept[WS_ACCEPT_LEN + 1], err[RD_ERR_LEN] = "";
        const char *protos;
        size_t plen;
        int status = 0;
        int r = check(cases[i].raw, &status, accept, &protos, &plen, err);
        RD_CHECK(r < 0 && r != -1000);
        RD_CHECK_EQ_INT(status, cases[i].status);
        if (!strstr(err, cases[i].reason)) {
            fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, err, cases[i].reason);
            RD_CHECK(0);
        }
    }
}

int main(void)
{
    RD_RUN(test_accept_key_rfc_example);
    RD_RUN(test_valid);
    RD_RUN(test_refusals);
    return rd_test_summary();
}
