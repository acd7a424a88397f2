/* TLS 1.3 record protection after OpenSSL's handshake: see gw_tls13.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gw_tls13.h"

#define CT_ALERT 21
#define CT_HANDSHAKE 22
#define CT_APPDATA 23
#define HS_FINISHED 20
#define HS_KEY_UPDATE 24
#define TAG_LEN 16
#define PLAIN_MAX 16384
/* A KeyUpdate record: header, the message (type, 3 length bytes, request), content type, tag. */
#define KEY_UPDATE_RECORD (5 + 5 + 1 + TAG_LEN)
/* Sealing switches to a fresh key well before AES-GCM's limit of 2^24.5
 * full records per key (RFC 8446 5.5). */
#define WRITE_RECORDS_PER_KEY (1ull << 24)

static const struct suite {
    uint16_t id;
    uint8_t key_len, hash_len;
    const char *cipher, *md;
} suites[] = {
    { 0x1301, 16, 32, "AES-128-GCM", "SHA256" },
    { 0x1302, 32, 48, "AES-256-GCM", "SHA384" },
    { 0x1303, 32, 32, "ChaCha20-Poly1305", "SHA256" },
};
#define NSUITES (sizeof suites / sizeof suites[0])

/* Fetched once: an implicit fetch per context would look the cipher up again. */
static EVP_CIPHER *ciphers[NSUITES];
static EVP_MD *mds[NSUITES];

static int slot_index = -1;

/* One connection is served at a time, so records are built and opened in
 * shared buffers; only leftovers (a partial record, unsent ciphertext) are
 * copied into memory of the connection's own. */
static uint8_t rscratch[GW_TLS13_IO_MAX];
static uint8_t wscratch[GW_TLS13_IO_MAX + 8 * (5 + 1 + TAG_LEN) + KEY_UPDATE_RECORD];

static int suite_fetch(unsigned i)
{
    if (!ciphers[i] && !(ciphers[i] = EVP_CIPHER_fetch(NULL, suites[i].cipher, NULL)))
        return -1;
    if (!mds[i] && !(mds[i] = EVP_MD_fetch(NULL, suites[i].md, NULL)))
        return -1;
    return 0;
}

/* HKDF-Expand-Label(secret, label, "", len) (RFC 8446 7.1). Every output we
 * need is at most one hash long, so HKDF-Expand is its first block:
 * HMAC(secret, HkdfLabel || 0x01). */
static int expand_label(unsigned s, const uint8_t *secret, const char *label, uint8_t *out, size_t len)
{
    uint8_t info[2 + 1 + 6 + 16 + 1 + 1];
    size_t ll = strlen(label), n = 0;
    info[n++] = (uint8_t)(len >> 8);
    info[n++] = (uint8_t)len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0; /* empty context */
    info[n++] = 1; /* T(1) */
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!HMAC(mds[s], secret, suites[s].hash_len, info, n, md, &mdlen) || mdlen < len)
        return -1;
    memcpy(out, md, len);
    OPENSSL_cleanse(md, sizeof md);
    return 0;
}

/* Keys the direction from its secret; sequence numbers restart. */
static int dir_key(gw_tls13_dir *d, unsigned s, int enc)
{
    uint8_t key[32];
    if (expand_label(s, d->secret, "key", key, suites[s].key_len) < 0 ||
        expand_label(s, d->secret, "iv", d->iv, sizeof d->iv) < 0)
        return -1;
    if (!d->ctx && !(d->ctx = EVP_CIPHER_CTX_new())) {
        OPENSSL_cleanse(key, sizeof key);
        return -1;
    }
    int ok = EVP_CipherInit_ex(d->ctx, ciphers[s], NULL, key, NULL, enc);
    OPENSSL_cleanse(key, sizeof key);
    d->seq = 0;
    return ok == 1 ? 0 : -1;
}

/* The next traffic secret (RFC 8446 7.2), then keys from it. */
static int dir_update(gw_tls13_dir *d, unsigned s, int enc)
{
    uint8_t next[48];
    if (expand_label(s, d->secret, "traffic upd", next, suites[s].hash_len) < 0)
        return -1;
    memcpy(d->secret, next, suites[s].hash_len);
    OPENSSL_cleanse(next, sizeof next);
    return dir_key(d, s, enc);
}

static void nonce(const gw_tls13_dir *d, uint8_t n[12])
{
    memcpy(n, d->iv, 12);
    for (int i = 0; i < 8; i++)
        n[11 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

/* One record of content type `type` from p[0..len) and `pad` zero bytes
 * (len + pad <= 16 KiB) into out (5 + len + 1 + pad + 16 bytes). Returns
 * its length or -1. */
static int seal_padded(gw_tls13_dir *d, uint8_t type, const uint8_t *p, size_t len, size_t pad, uint8_t *out)
{
    static const uint8_t zeros[64];
    if (len + pad > PLAIN_MAX || pad > sizeof zeros)
        return -1;
    size_t clen = len + 1 + pad + TAG_LEN;
    out[0] = CT_APPDATA;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(clen >> 8);
    out[4] = (uint8_t)clen;
    uint8_t n[12];
    nonce(d, n);
    int l;
    if (EVP_EncryptInit_ex(d->ctx, NULL, NULL, NULL, n) != 1 || EVP_EncryptUpdate(d->ctx, NULL, &l, out, 5) != 1 ||
        (len && EVP_EncryptUpdate(d->ctx, out + 5, &l, p, (int)len) != 1) ||
        EVP_EncryptUpdate(d->ctx, out + 5 + len, &l, &type, 1) != 1 ||
        (pad && EVP_EncryptUpdate(d->ctx, out + 5 + len + 1, &l, zeros, (int)pad) != 1) ||
        EVP_EncryptFinal_ex(d->ctx, out + 5 + len + 1 + pad, &l) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, out + 5 + len + 1 + pad) != 1)
        return -1;
    d->seq++;
    return (int)(5 + clen);
}

static int seal(gw_tls13_dir *d, uint8_t type, const uint8_t *p, size_t len, uint8_t *out)
{
    return seal_padded(d, type, p, len, 0, out);
}

int gw_tls13_seal_record(gw_tls13 *t, uint8_t type, const uint8_t *p, size_t len, size_t pad, uint8_t *out)
{
    return seal_padded(&t->wr, type, p, len, pad, out);
}

/* Opens the record rec[0..5+clen) into out; *type and *plen give the inner
 * content. 0, or -EBADMSG (authentication failed), -EPROTO (no content type). */
static int open_record(gw_tls13_dir *d, uint8_t *rec, size_t clen, uint8_t *out, uint8_t *type, size_t *plen)
{
    if (clen < 1 + TAG_LEN)
        return -EBADMSG;
    size_t n = clen - TAG_LEN;
    uint8_t nc[12];
    nonce(d, nc);
    int l;
    if (EVP_DecryptInit_ex(d->ctx, NULL, NULL, NULL, nc) != 1 || EVP_DecryptUpdate(d->ctx, NULL, &l, rec, 5) != 1 ||
        EVP_DecryptUpdate(d->ctx, out, &l, rec + 5, (int)n) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, rec + 5 + n) != 1 ||
        EVP_DecryptFinal_ex(d->ctx, out + n, &l) != 1)
        return -EBADMSG;
    d->seq++;
    if (n > PLAIN_MAX + 1) /* TLSInnerPlaintext, padding included (RFC 8446 5.4) */
        return -EMSGSIZE;
    while (n > 0 && out[n - 1] == 0) /* padding */
        n--;
    if (n == 0)
        return -EPROTO;
    *type = out[n - 1];
    *plen = n - 1;
    return 0;
}

/* Our KeyUpdate (update_not_requested) sealed with the current key, then
 * the next key. Returns the record's length or -1. */
static int seal_key_update(gw_tls13 *t, uint8_t *out)
{
    static const uint8_t msg[5] = { HS_KEY_UPDATE, 0, 0, 1, 0 };
    int n = seal(&t->wr, CT_HANDSHAKE, msg, sizeof msg, out);
    if (n < 0 || dir_update(&t->wr, t->suite, 1) < 0)
        return -1;
    t->update_due = false;
    return n;
}

/* Post-handshake messages from the client: only KeyUpdate is allowed (we
 * never ask for post-handshake authentication), and it must end its record
 * (RFC 8446 5.1: no handshake message spans a key change). */
static int client_handshake(gw_tls13 *t, const uint8_t *p, size_t n)
{
    if (n != 5 || p[0] != HS_KEY_UPDATE || p[1] || p[2] || p[3] != 1 || p[4] > 1)
        return -EPROTO;
    if (dir_update(&t->rd, t->suite, 0) < 0)
        return -EPROTO;
    if (p[4] == 1) /* update_requested: ours goes before our next record */
        t->update_due = true;
    return 0;
}

static ssize_t recv_some(int fd, uint8_t *p, size_t n)
{
    for (;;) {
        ssize_t r = recv(fd, p, n, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* Tells the client why we end the connection (RFC 8446 6.2), best effort:
 * bad_record_mac, record_overflow or unexpected_message. None after the
 * client's own alert. */
static void fatal_alert(gw_tls13 *t, int fd, int err)
{
    if (err == -ECONNRESET)
        return;
    uint8_t alert[2] = { 2, err == -EBADMSG ? 20 : err == -EMSGSIZE ? 22 : 10 };
    uint8_t rec[5 + sizeof alert + 1 + TAG_LEN];
    if (t->olen) /* what came before must go first, and does not fit now */
        return;
    int n = seal(&t->wr, CT_ALERT, alert, sizeof alert, rec);
    if (n > 0)
        (void)send(fd, rec, (size_t)n, MSG_NOSIGNAL);
}

ssize_t gw_tls13_read(gw_tls13 *t, int fd, uint8_t *buf, size_t cap, bool *more)
{
    *more = false;
    if (t->eof)
        return 0;
    if (cap > sizeof rscratch)
        cap = sizeof rscratch;
    /* Bounded: a client streaming records with nothing in them must not
     * hold the loop (the socket stays readable; we come back next turn). */
    for (int round = 0; round < 8; round++) {
        size_t have = t->rlen;
        if (have) {
            memcpy(rscratch, t->rbuf, have);
            free(t->rbuf);
            t->rbuf = NULL;
            t->rlen = 0;
        }
        /* All complete records' plaintext fits in buf: it is shorter than
         * the ciphertext, which is at most cap. */
        size_t want = cap - have;
        ssize_t n = recv_some(fd, rscratch + have, want);
        bool eof = n == 0;
        if (n == -EAGAIN)
            n = 0;
        else if (n < 0)
            return n;
        *more = (size_t)n == want;
        have += (size_t)n;

        size_t off = 0, out = 0;
        int rc = 0;
        while (have - off >= 5) {
            uint8_t *rec = rscratch + off;
            size_t clen = (size_t)rec[3] << 8 | rec[4];
            if (rec[0] != CT_APPDATA) { /* after the handshake every record is protected */
                rc = -EPROTO;
                break;
            }
            if (clen > GW_TLS13_RECORD_MAX - 5) {
                rc = -EMSGSIZE;
                break;
            }
            if (have - off < 5 + clen)
                break;
            uint8_t type;
            size_t plen;
            if ((rc = open_record(&t->rd, rec, clen, buf + out, &type, &plen)) < 0)
                break;
            off += 5 + clen;
            if (type == CT_APPDATA) {
                out += plen;
            } else if (type == CT_ALERT) {
                if (plen != 2)
                    rc = -EPROTO;
                else if (buf[out + 1] == 0) /* close_notify */
                    t->eof = true;
                else
                    rc = -ECONNRESET;
                break;
            } else if (type == CT_HANDSHAKE) {
                if ((rc = client_handshake(t, buf + out, plen)) < 0)
                    break;
            } else {
                rc = -EPROTO;
                break;
            }
        }
        if (rc < 0) {
            fatal_alert(t, fd, rc);
            return rc;
        }
        if (t->eof)
            return (ssize_t)out;
        if (have > off) {
            if (eof)
                return -EPROTO; /* the stream ended inside a record */
            if (!(t->rbuf = malloc(have - off)))
                return -ENOMEM;
            memcpy(t->rbuf, rscratch + off, have - off);
            t->rlen = (uint32_t)(have - off);
        }
        if (out)
            return (ssize_t)out;
        if (eof) {
            t->eof = true;
            return 0;
        }
        if (!*more)
            return -EAGAIN;
        /* Only a partial record, a KeyUpdate or empty records so far, and
         * the socket has more: read on. */
    }
    *more = false;
    return -EAGAIN;
}

bool gw_tls13_pending(const gw_tls13 *t)
{
    return t->olen > t->ooff || t->update_due;
}

/* Sends out[0..n); keeps what the socket does not take. */
static int send_or_keep(gw_tls13 *t, int fd, const uint8_t *out, size_t n)
{
    size_t sent = 0;
    while (sent < n) {
        ssize_t w = send(fd, out + sent, n - sent, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -errno;
        }
        sent += (size_t)w;
    }
    if (sent < n) {
        if (!(t->obuf = malloc(n - sent)))
            return -ENOMEM;
        memcpy(t->obuf, out + sent, n - sent);
        t->olen = (uint32_t)(n - sent);
        t->ooff = 0;
    }
    return 0;
}

ssize_t gw_tls13_write(gw_tls13 *t, int fd, const uint8_t *p, size_t len)
{
    if (len > GW_TLS13_IO_MAX || t->olen)
        return -EINVAL;
    size_t o = 0;
    if (t->wr.seq >= WRITE_RECORDS_PER_KEY)
        t->update_due = true;
    if (t->update_due) {
        int n = seal_key_update(t, wscratch);
        if (n < 0)
            return -EPROTO;
        o += (size_t)n;
    }
    for (size_t i = 0; i < len; i += PLAIN_MAX) {
        size_t k = len - i < PLAIN_MAX ? len - i : PLAIN_MAX;
        int n = seal(&t->wr, CT_APPDATA, p + i, k, wscratch + o);
        if (n < 0)
            return -EPROTO;
        o += (size_t)n;
    }
    int r = send_or_keep(t, fd, wscratch, o);
    return r < 0 ? r : (ssize_t)len;
}

int gw_tls13_flush(gw_tls13 *t, int fd)
{
    if (!t->olen && t->update_due) {
        int n = seal_key_update(t, wscratch);
        if (n < 0)
            return -EPROTO;
        int r = send_or_keep(t, fd, wscratch, (size_t)n);
        if (r < 0)
            return r;
    }
    while (t->ooff < t->olen) {
        ssize_t w = send(fd, t->obuf + t->ooff, t->olen - t->ooff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        t->ooff += (uint32_t)w;
    }
    free(t->obuf);
    t->obuf = NULL;
    t->olen = t->ooff = 0;
    return 1;
}

void gw_tls13_close_notify(gw_tls13 *t, int fd)
{
    static const uint8_t alert[2] = { 1, 0 }; /* warning, close_notify */
    if (gw_tls13_flush(t, fd) != 1)
        return; /* not even what came before fits: the peer will see EOF */
    uint8_t rec[5 + sizeof alert + 1 + TAG_LEN];
    int n = seal(&t->wr, CT_ALERT, alert, sizeof alert, rec);
    if (n > 0)
        (void)send(fd, rec, (size_t)n, MSG_NOSIGNAL);
}

void gw_tls13_free(gw_tls13 *t)
{
    if (!t)
        return;
    EVP_CIPHER_CTX_free(t->rd.ctx);
    EVP_CIPHER_CTX_free(t->wr.ctx);
    free(t->rbuf);
    free(t->obuf);
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
}

/* Keys both directions from the secrets already in t->rd and t->wr. */
static int key_both(gw_tls13 *t, uint16_t suite_id, size_t secret_len, uint64_t read_seq, uint64_t write_seq)
{
    unsigned s = 0;
    while (s < NSUITES && suites[s].id != suite_id)
        s++;
    if (s == NSUITES || secret_len != suites[s].hash_len || suite_fetch(s) < 0)
        return -1;
    t->suite = (uint8_t)s;
    if (dir_key(&t->rd, s, 0) < 0 || dir_key(&t->wr, s, 1) < 0)
        return -1;
    t->rd.seq = read_seq;
    t->wr.seq = write_seq;
    return 0;
}

int gw_tls13_init(gw_tls13 *t, uint16_t suite_id, const uint8_t *read_secret, const uint8_t *write_secret,
                  size_t secret_len, uint64_t read_seq, uint64_t write_seq)
{
    if (secret_len > sizeof t->rd.secret)
        return -1;
    memcpy(t->rd.secret, read_secret, secret_len);
    memcpy(t->wr.secret, write_secret, secret_len);
    return key_both(t, suite_id, secret_len, read_seq, write_seq);
}

/* --- following OpenSSL's handshake ---------------------------------------- */

static gw_tls13 *slot_get(const SSL *ssl)
{
    gw_tls13 **slot = slot_index >= 0 ? SSL_get_ex_data(ssl, slot_index) : NULL;
    return slot ? *slot : NULL;
}

/* "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>" and the SERVER_ one
 * (NSS key log format): the first application traffic secrets. */
static void keylog_cb(const SSL *ssl, const char *line)
{
    gw_tls13 *t = slot_get(ssl);
    if (!t)
        return;
    static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ", sv[] = "SERVER_TRAFFIC_SECRET_0 ";
    uint8_t *dst;
    uint8_t bit;
    if (!strncmp(line, cl, sizeof cl - 1)) {
        dst = t->rd.secret;
        bit = 1;
    } else if (!strncmp(line, sv, sizeof sv - 1)) {
        dst = t->wr.secret;
        bit = 2;
    } else {
        return;
    }
    const char *hex = strchr(line + sizeof cl - 1, ' ');
    if (!hex)
        return;
    hex++;
    size_t n = strlen(hex);
    if ((n != 64 && n != 96) || (t->secret_len && t->secret_len != n / 2)) {
        t->keep_openssl = true;
        return;
    }
    size_t got = 0;
    if (OPENSSL_hexstr2buf_ex(dst, 48, &got, hex, '\0') != 1 || got != n / 2) {
        t->keep_openssl = true;
        return;
    }
    t->secret_len = (uint8_t)got;
    t->secrets |= bit;
}

/* Counts the records protected with the application keys before we take
 * over: ours after our Finished (the session tickets), the client's after
 * its Finished. OpenSSL reports a record's header before the handshake
 * message it carries, so Finished's own record is not counted. */
static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)arg;
    gw_tls13 *t = slot_get(ssl);
    if (!t)
        return;
    const uint8_t *p = buf;
    if (content_type == SSL3_RT_HANDSHAKE && len >= 1) {
        if (p[0] == HS_FINISHED) {
            if (write_p)
                t->srv_finished = true;
            else
                t->cli_finished = true;
        } else if (p[0] == HS_KEY_UPDATE) {
            t->keep_openssl = true;
        }
    } else if (content_type == SSL3_RT_HEADER) {
        if (write_p && t->srv_finished)
            t->wrecs++;
        else if (!write_p && t->cli_finished)
            t->rrecs++;
    }
}

int gw_tls13_ctx_setup(SSL_CTX *ctx)
{
    if (slot_index < 0 && (slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL)) < 0)
        return -1;
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    SSL_CTX_set_msg_callback(ctx, msg_cb);
    return 0;
}

void gw_tls13_attach(SSL *ssl, gw_tls13 **slot)
{
    *slot = calloc(1, sizeof **slot);
    if (*slot && SSL_set_ex_data(ssl, slot_index, slot) != 1) {
        free(*slot);
        *slot = NULL;
    }
}

void gw_tls13_detach(SSL *ssl)
{
    SSL_set_ex_data(ssl, slot_index, NULL);
}

int gw_tls13_take(SSL *ssl, gw_tls13 *t)
{
    if (!t || t->keep_openssl || SSL_version(ssl) != TLS1_3_VERSION || t->secrets != 3 || !t->srv_finished ||
        !t->cli_finished)
        return 0;
    /* OpenSSL holds input (or output) we could not hand over. */
    if (SSL_has_pending(ssl) || t->rrecs || BIO_wpending(SSL_get_wbio(ssl)) > 0)
        return 0;
    /* A negotiated max_fragment_length (RFC 6066) caps our records below
     * 16 KiB: such rare clients keep OpenSSL, which honours it. */
    SSL_SESSION *sess = SSL_get_session(ssl);
    if (!sess || SSL_SESSION_get_max_fragment_length(sess) != TLSEXT_max_fragment_length_DISABLED)
        return 0;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    if (!c)
        return 0;
    /* The key log callback put the secrets in place. */
    if (key_both(t, SSL_CIPHER_get_protocol_id(c), t->secret_len, t->rrecs, t->wrecs) < 0)
        return 0;
    SSL_set_ex_data(ssl, slot_index, NULL);
    return 1;
}
