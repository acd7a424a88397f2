#include "ws_handshake.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h> /* SHA_DIGEST_LENGTH */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool ws_handshake_requested(const gw_http_request *req)
{
    const gw_http_header *h = gw_http_header_find(req, "upgrade");
    return h && gw_http_token_list_has(h->value, h->value_len, "websocket");
}

void ws_handshake_accept(const char *key, size_t len, char accept[WS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char buf[128 + sizeof ws_guid];
    if (len > 128)
        len = 128; /* keys are 24 bytes; callers validate before asking */
    memcpy(buf, key, len);
    memcpy(buf + len, ws_guid, sizeof ws_guid - 1);
    EVP_Digest(buf, len + sizeof ws_guid - 1, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)accept, md, SHA_DIGEST_LENGTH);
    accept[WS_ACCEPT_LEN] = '\0';
}

static int b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* A 16-byte value in base64 is 22 alphabet characters and "==". The last
 * character must leave the unused low bits zero (canonical encoding). */
static bool key_valid(const char *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return false;
    for (int i = 0; i < 22; i++)
        if (!b64_char(k[i]))
            return false;
    return strchr("AQgw", k[21]) != NULL;
}

int ws_handshake_check(const gw_http_request *req, char accept[WS_ACCEPT_LEN + 1],
                       const char **ret_protocols, size_t *ret_protocols_len,
                       int *ret_status, char err[RD_ERR_LEN])
{
    *ret_status = 400;
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {
        snprintf(err, RD_ERR_LEN, "WebSocket handshake requires GET");
        return -EINVAL;
    }
    if (req->minor_version != 1) {
        snprintf(err, RD_ERR_LEN, "WebSocket handshake requires HTTP/1.1");
        return -EINVAL;
    }
    if (!req->conn_upgrade) {
        snprintf(err, RD_ERR_LEN, "missing 'Connection: Upgrade'");
        return -EINVAL;
    }
    if (!ws_handshake_requested(req)) {
        snprintf(err, RD_ERR_LEN, "missing 'Upgrade: websocket'");
        return -EINVAL;
    }
    if (gw_http_header_count(req, "sec-websocket-key") != 1) {
        snprintf(err, RD_ERR_LEN, "expected exactly one Sec-WebSocket-Key header");
        return -EINVAL;
    }
    const gw_http_header *key = gw_http_header_find(req, "sec-websocket-key");
    if (!key_valid(key->value, key->value_len)) {
        snprintf(err, RD_ERR_LEN, "Sec-WebSocket-Key is not a base64-encoded 16-byte value");
        return -EINVAL;
    }
    const gw_http_header *ver = gw_http_header_find(req, "sec-websocket-version");
    if (!ver) {
        snprintf(err, RD_ERR_LEN, "missing Sec-WebSocket-Version");
        return -EINVAL;
    }
    if (gw_http_header_count(req, "sec-websocket-version") != 1 || ver->value_len != 2 ||
        memcmp(ver->value, "13", 2) != 0) {
        *ret_status = 426;
        snprintf(err, RD_ERR_LEN, "unsupported Sec-WebSocket-Version (this server speaks 13)");
        return -EINVAL;
    }
    /* Several Sec-WebSocket-Protocol headers are legal but rare; the first is
     * what the class sees. */
    const gw_http_header *proto = gw_http_header_find(req, "sec-websocket-protocol");
    *ret_protocols = proto ? proto->value : NULL;
    *ret_protocols_len = proto ? proto->value_len : 0;
    ws_handshake_accept(key->value, key->value_len, accept);
    return 0;
}
