/* TLS context: TLS 1.2+ only, certificate chain and key from files, ALPN
 * http/1.1, small idle footprint. */
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "gw.h"
#include "gw_tls13.h"
#include "rd_log.h"

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no overlap: carry on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *gw_tls_ctx_new(const char *cert, const char *key, char err[RD_ERR_LEN])
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, RD_ERR_LEN, "SSL_CTX_new failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_ENABLE_PARTIAL_WRITE);
    /* Forward-secret AEAD suites only for TLS 1.2 (TLS 1.3's defaults are fine). */
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    /* Resumption: session tickets (stateless, OpenSSL's default keys) plus a
     * bounded server-side cache for TLS 1.2 clients that use session ids. */
    static const unsigned char sid_ctx[] = "roomd";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    SSL_CTX_set_num_tickets(ctx, 1);
    if (gw.cfg.tls_offload && gw_tls13_ctx_setup(ctx) < 0) {
        snprintf(err, RD_ERR_LEN, "cannot set up the TLS 1.3 record layer");
        goto fail;
    }
    ERR_clear_error();
    if (access(cert, R_OK) != 0 || access(key, R_OK) != 0) {
        const char *which = access(cert, R_OK) != 0 ? cert : key;
        snprintf(err, RD_ERR_LEN, "cannot read %s: %s", which, strerror(errno));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        unsigned long e = ERR_get_error();
        snprintf(err, RD_ERR_LEN, "cannot load certificate %s: %s", cert, ERR_reason_error_string(e));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_get_error();
        snprintf(err, RD_ERR_LEN, "cannot load key %s: %s", key, ERR_reason_error_string(e));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, RD_ERR_LEN, "key %s does not match certificate %s", key, cert);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

void gw_tls_log_errors(const char *what)
{
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        rd_debug("msg=\"tls error\" during=%s err=\"%s\"", what, buf);
    }
}
