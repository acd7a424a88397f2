/* TLS 1.3 record protection after the handshake ("user-space kTLS").
 *
 * After a TLS 1.3 handshake OpenSSL 3.0 keeps ~14.7 KB per connection (a
 * bare SSL object is 8.5 KB): more than everything else an idle WebSocket
 * costs the gateway and its shards together. Linux kTLS would take over the
 * record layer after the handshake, but not every kernel has the "tls" ULP
 * (this one does not). So the gateway does in user space what kTLS does:
 * OpenSSL runs the handshake; the traffic secrets (from the key log
 * callback) and the number of records already protected with them (from
 * the message callback) then let us free the SSL and protect records
 * ourselves as RFC 8446 section 5 says, with libcrypto's AEAD ciphers. What
 * stays per connection is a gw_tls13 and two cipher contexts.
 *
 * Covered: the three TLS 1.3 suites OpenSSL enables by default (AES-128-GCM,
 * AES-256-GCM, ChaCha20-Poly1305), KeyUpdate in both directions (answered
 * when the peer asks, and sent by us before a key's record limit), alerts
 * (close_notify ends the stream; any other ends the connection), padding.
 * Anything else (TLS 1.2, another suite, a negotiated max_fragment_length,
 * input OpenSSL already buffered) stays with OpenSSL: gw_tls13_take() says
 * no. */
#ifndef GW_TLS13_H
#define GW_TLS13_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/* Largest TLSCiphertext (header + 2^14 + 256, RFC 8446 5.2). */
#define GW_TLS13_RECORD_MAX (5 + 16384 + 256)
/* gw_tls13_read() fills at most this much; gw_tls13_write() takes at most this much. */
#define GW_TLS13_IO_MAX (64 * 1024)

typedef struct gw_tls13_dir {
    EVP_CIPHER_CTX *ctx; /* keyed; the nonce is set per record */
    uint64_t seq;
    uint8_t secret[48];  /* the current traffic secret, for KeyUpdate */
    uint8_t iv[12];
} gw_tls13_dir;

typedef struct gw_tls13 {
    gw_tls13_dir rd, wr; /* rd: the client's traffic keys, wr: ours */
    uint8_t suite;       /* index into the suite table */
    uint8_t secrets;     /* handshake: 1 client secret seen, 2 server secret seen */
    uint8_t secret_len;
    bool srv_finished;   /* handshake: our Finished went out */
    bool cli_finished;   /* handshake: the client's Finished came in */
    bool keep_openssl;   /* handshake: something we do not follow happened */
    bool update_due;     /* a KeyUpdate of ours must precede the next record */
    bool eof;            /* close_notify or end of stream seen: reads return 0 */
    uint32_t wrecs;      /* handshake: records we sent after our Finished */
    uint32_t rrecs;      /* handshake: records read after the client's Finished */
    uint32_t rlen;       /* bytes of a partial record carried over */
    uint32_t olen, ooff; /* ciphertext the socket did not take yet */
    uint8_t *rbuf;
    uint8_t *obuf;
} gw_tls13;

/* Installs the key log and message callbacks on a server context. */
int gw_tls13_ctx_setup(SSL_CTX *ctx);

/* Follows a connection's handshake: *slot gets a gw_tls13 (NULL if memory
 * is short; the connection then simply stays with OpenSSL). The slot must
 * outlive the SSL or be detached with gw_tls13_detach(). */
void gw_tls13_attach(SSL *ssl, gw_tls13 **slot);
void gw_tls13_detach(SSL *ssl);

/* After SSL_do_handshake() returned 1: 1 if the record layer is now ours
 * (the caller frees the SSL; reads and writes go through the calls below),
 * 0 if the connection must stay with OpenSSL (the caller frees t). */
int gw_tls13_take(SSL *ssl, gw_tls13 *t);

/* Reads and decrypts into buf (cap >= GW_TLS13_RECORD_MAX). Returns > 0
 * plaintext bytes, 0 at the end of the stream (close_notify or EOF), -EAGAIN
 * when the socket has nothing, or a fatal error: -EBADMSG (record failed
 * authentication), -EPROTO (malformed or unexpected), -EMSGSIZE (record too
 * large), -ECONNRESET (the peer sent an alert), -errno from recv(); for
 * the first three the client is sent the matching fatal alert. *more is
 * set when the socket may hold more right now. After it returns, check
 * gw_tls13_pending(): answering a KeyUpdate may have queued a record. */
ssize_t gw_tls13_read(gw_tls13 *t, int fd, uint8_t *buf, size_t cap, bool *more);

/* Seals p[0..len) (len <= GW_TLS13_IO_MAX) as records of at most 16 KiB and
 * sends them; what the socket does not take is kept and goes first on the
 * next gw_tls13_flush(). Call only when !gw_tls13_pending(t). Returns len,
 * or < 0 (-errno) if the connection failed. */
ssize_t gw_tls13_write(gw_tls13 *t, int fd, const uint8_t *p, size_t len);

/* Ciphertext or a KeyUpdate waits to be sent. */
bool gw_tls13_pending(const gw_tls13 *t);

/* Sends what is pending: 1 all sent, 0 the socket is full, < 0 (-errno) failed. */
int gw_tls13_flush(gw_tls13 *t, int fd);

/* Best effort close_notify (the caller then shuts the socket down). */
void gw_tls13_close_notify(gw_tls13 *t, int fd);

void gw_tls13_free(gw_tls13 *t);

/* Both directions keyed from explicit secrets, as gw_tls13_take() does;
 * for tests and fuzzing. suite_id is the TLS code (0x1301..0x1303). */
int gw_tls13_init(gw_tls13 *t, uint16_t suite_id, const uint8_t *read_secret,
                  const uint8_t *write_secret, size_t secret_len, uint64_t read_seq, uint64_t write_seq);

/* One record with any inner content type and `pad` (<= 64) zero bytes of
 * padding, sealed with the write key, into out (5 + len + 1 + pad + 16
 * bytes); returns its length or -1. For tests and fuzzing: playing the
 * client's side takes a gw_tls13 initialised with the secrets swapped. */
int gw_tls13_seal_record(gw_tls13 *t, uint8_t type, const uint8_t *p, size_t len, size_t pad, uint8_t *out);

#endif
