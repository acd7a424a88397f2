/* gw_tls13 against a real TLS 1.3 client (OpenSSL's, over a socketpair):
 * the server runs OpenSSL's handshake with the gateway's callbacks, then
 * hands the record layer to gw_tls13; the client must read what we seal and
 * we must open what it writes, with each suite, through KeyUpdates both
 * ways, with records split across reads and a full socket, and every kind
 * of bad input must end in the right error. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "gw_tls13.h"
#include "rd_test.h"

static SSL_CTX *server_ctx, *client_ctx;

static void make_contexts(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                               -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, key, EVP_sha256());
    server_ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(server_ctx, x);
    SSL_CTX_use_PrivateKey(server_ctx, key);
    SSL_CTX_set_num_tickets(server_ctx, 1); /* as the gateway: one ticket after the handshake */
    SSL_CTX_set_mode(server_ctx, SSL_MODE_RELEASE_BUFFERS);
    RD_CHECK(gw_tls13_ctx_setup(server_ctx) == 0);
    client_ctx = SSL_CTX_new(TLS_client_method());
    X509_free(x);
    EVP_PKEY_free(key);
}

typedef struct pair {
    int sfd, cfd;
    SSL *server, *client;
    gw_tls13 *t; /* the server's record layer once taken */
} pair;

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Handshake to completion, then the server hands over. Returns what
 * gw_tls13_take() said. */
static int pair_open(pair *p, const char *suites, int max_version)
{
    int sv[2];
    memset(p, 0, sizeof *p);
    RD_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    p->sfd = sv[0];
    p->cfd = sv[1];
    nonblock(p->sfd);
    nonblock(p->cfd);
    p->server = SSL_new(server_ctx);
    p->client = SSL_new(client_ctx);
    SSL_set_fd(p->server, p->sfd);
    SSL_set_fd(p->client, p->cfd);
    SSL_set_accept_state(p->server);
    SSL_set_connect_state(p->client);
    if (suites)
        SSL_set_ciphersuites(p->client, suites);
    if (max_version)
        SSL_set_max_proto_version(p->client, max_version);
    gw_tls13_attach(p->server, &p->t);
    RD_CHECK(p->t != NULL);
    int sdone = 0, cdone = 0;
    for (int i = 0; i < 100 && !(sdone && cdone); i++) {
        if (!cdone)
            cdone = SSL_do_handshake(p->client) == 1;
        if (!sdone)
            sdone = SSL_do_handshake(p->server) == 1;
    }
    RD_CHECK(sdone && cdone);
    int took = gw_tls13_take(p->server, p->t);
    if (took) {
        SSL_free(p->server);
        p->server = NULL;
    } else {
        gw_tls13_detach(p->server);
        gw_tls13_free(p->t);
        p->t = NULL;
    }
    return took;
}

static void pair_close(pair *p)
{
    gw_tls13_free(p->t);
    SSL_free(p->server);
    SSL_free(p->client);
    close(p->sfd);
    close(p->cfd);
}

/* The client reads exactly n bytes (bounded tries; the data is already in
 * the socket, or the server flushes between tries). */
static size_t client_read(pair *p, uint8_t *buf, size_t n)
{
    size_t got = 0;
    for (int i = 0; i < 10000 && got < n; i++) {
        int r = SSL_read(p->client, buf + got, (int)(n - got));
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        int e = SSL_get_error(p->client, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            break;
        if (p->t && gw_tls13_pending(p->t))
            gw_tls13_flush(p->t, p->sfd);
    }
    return got;
}

/* The server reads until it has n bytes or an error/EOF (returned). */
static ssize_t server_read(pair *p, uint8_t *buf, size_t n)
{
    size_t got = 0;
    for (int i = 0; i < 10000 && got < n; i++) {
        bool more;
        ssize_t r = gw_tls13_read(p->t, p->sfd, buf + got, GW_TLS13_IO_MAX, &more);
        if (r == -EAGAIN)
            continue;
        if (r <= 0)
            return r;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static void client_write(pair *p, const uint8_t *b, size_t n)
{
    size_t put = 0;
    for (int i = 0; i < 10000 && put < n; i++) {
        int r = SSL_write(p->client, b + put, (int)(n - put));
        if (r > 0)
            put += (size_t)r;
    }
    RD_CHECK_EQ_INT(put, n);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 31 + seed);
}

static uint8_t big_out[200000], big_in[200000 + GW_TLS13_IO_MAX];

/* Data both ways, small and larger than a record and than one write. */
static void exchange(pair *p)
{
    static const char hello[] = "GET / HTTP/1.1\r\n\r\n";
    client_write(p, (const uint8_t *)hello, sizeof hello - 1);
    RD_CHECK_EQ_INT(server_read(p, big_in, sizeof hello - 1), sizeof hello - 1);
    RD_CHECK_MEM(big_in, sizeof hello - 1, hello, sizeof hello - 1);

    RD_CHECK_EQ_INT(gw_tls13_write(p->t, p->sfd, (const uint8_t *)"pong", 4), 4);
    uint8_t b4[4];
    RD_CHECK_EQ_INT(client_read(p, b4, 4), 4);
    RD_CHECK_MEM(b4, 4, "pong", 4);

    fill(big_out, 100000, 7);
    client_write(p, big_out, 100000);
    RD_CHECK_EQ_INT(server_read(p, big_in, 100000), 100000);
    RD_CHECK_MEM(big_in, 100000, big_out, 100000);

    fill(big_out, GW_TLS13_IO_MAX, 9);
    RD_CHECK_EQ_INT(gw_tls13_write(p->t, p->sfd, big_out, GW_TLS13_IO_MAX), GW_TLS13_IO_MAX);
    RD_CHECK(!gw_tls13_pending(p->t));
    RD_CHECK_EQ_INT(client_read(p, big_in, GW_TLS13_IO_MAX), GW_TLS13_IO_MAX);
    RD_CHECK_MEM(big_in, GW_TLS13_IO_MAX, big_out, GW_TLS13_IO_MAX);
}

static void test_each_suite(void)
{
    static const char *const suites[] = { "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                          "TLS_CHACHA20_POLY1305_SHA256" };
    for (size_t i = 0; i < 3; i++) {
        pair p;
        RD_CHECK_EQ_INT(pair_open(&p, suites[i], 0), 1);
        RD_CHECK(strcmp(SSL_get_cipher_name(p.client), suites[i]) == 0);
        /* The session ticket went out under the application key first. */
        RD_CHECK_EQ_INT(p.t->wr.seq, 1);
        exchange(&p);
        pair_close(&p);
    }
}

/* The client updates its key (asking for ours too, then not); we keep
 * reading, answer once, and the client reads what we seal afterwards. */
static void test_key_update(void)
{
    pair p;
    RD_CHECK_EQ_INT(pair_open(&p, NULL, 0), 1);
    RD_CHECK(SSL_key_update(p.client, SSL_KEY_UPDATE_REQUESTED) == 1);
    client_write(&p, (const uint8_t *)"one", 3);
    uint8_t b[8];
    RD_CHECK_EQ_INT(server_read(&p, b, 3), 3);
    RD_CHECK_MEM(b, 3, "one", 3);
    RD_CHECK_EQ_INT(p.t->rd.seq, 1); /* the new key counts from zero */
    RD_CHECK(gw_tls13_pending(&*p.t));
    RD_CHECK_EQ_INT(gw_tls13_write(p.t, p.sfd, (const uint8_t *)"two", 3), 3);
    RD_CHECK(!gw_tls13_pending(p.t));
    RD_CHECK_EQ_INT(client_read(&p, b, 3), 3);
    RD_CHECK_MEM(b, 3, "two", 3);

    RD_CHECK(SSL_key_update(p.client, SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
    client_write(&p, (const uint8_t *)"three", 5);
    RD_CHECK_EQ_INT(server_read(&p, b, 5), 5);
    RD_CHECK(!gw_tls13_pending(p.t));

    /* Asked for while we have nothing to say: the flush alone answers. */
    RD_CHECK(SSL_key_update(p.client, SSL_KEY_UPDATE_REQUESTED) == 1);
    client_write(&p, (const uint8_t *)"four", 4);
    RD_CHECK_EQ_INT(server_read(&p, b, 4), 4);
    RD_CHECK_EQ_INT(gw_tls13_flush(p.t, p.sfd), 1);
    RD_CHECK_EQ_INT(gw_tls13_write(p.t, p.sfd, (const uint8_t *)"five", 4), 4);
    RD_CHECK_EQ_INT(client_read(&p, b, 4), 4);
    RD_CHECK_MEM(b, 4, "five", 4);
    exchange(&p);
    pair_close(&p);
}

/* Near a key's record limit we update our key ourselves. */
static void test_own_key_update(void)
{
    pair p;
    RD_CHECK_EQ_INT(pair_open(&p, NULL, 0), 1);
    p.t->wr.seq = (1ull << 24) + 5; /* as if that many records had gone out */
    /* The client needs the real sequence: re-key both ends from here by
     * letting the client update first is not possible, so check on the
     * wire instead: the record after the limit is a KeyUpdate. */
    uint8_t secret_before[48];
    memcpy(secret_before, p.t->wr.secret, sizeof secret_before);
    RD_CHECK_EQ_INT(gw_tls13_write(p.t, p.sfd, (const uint8_t *)"x", 1), 1);
    RD_CHECK(memcmp(secret_before, p.t->wr.secret, sizeof secret_before) != 0);
    RD_CHECK_EQ_INT(p.t->wr.seq, 1); /* "x" went out under the new key */
    /* On the wire after the session ticket: a KeyUpdate record
     * (5 + 5 + 1 + 16) then "x" (5 + 1 + 1 + 16). */
    uint8_t wire[4096];
    ssize_t n = recv(p.cfd, wire, sizeof wire, 0);
    size_t lens[4], nrec = 0;
    for (ssize_t off = 0; off + 5 <= n && nrec < 4; nrec++) {
        lens[nrec] = 5 + ((size_t)wire[off + 3] << 8 | wire[off + 4]);
        off += (ssize_t)lens[nrec];
    }
    RD_CHECK_EQ_INT(nrec, 3);
    RD_CHECK_EQ_INT(lens[1], 27);
    RD_CHECK_EQ_INT(lens[2], 23);
    pair_close(&p);
}

/* The client's records arrive a few bytes at a time: partial records are
 * carried over between reads. */
static void test_split_records(void)
{
    pair p;
    RD_CHECK_EQ_INT(pair_open(&p, NULL, 0), 1);
    /* Let the client write into a memory BIO so we control delivery. */
    BIO *mem = BIO_new(BIO_s_mem());
    SSL_set0_wbio(p.client, mem);
    fill(big_out, 40000, 3);
    RD_CHECK_EQ_INT(SSL_write(p.client, big_out, 40000), 40000);
    RD_CHECK_EQ_INT(SSL_write(p.client, (const uint8_t *)"tail", 4), 4);
    char *wire;
    long wlen = BIO_get_mem_data(mem, &wire);
    RD_CHECK(wlen > 40000);
    size_t got = 0;
    for (long off = 0; off < wlen;) {
        long k = off % 3 == 0 ? 7 : 1501; /* odd sizes: headers split too */
        if (k > wlen - off)
            k = wlen - off;
        RD_CHECK_EQ_INT(send(p.cfd, wire + off, (size_t)k, 0), k);
        off += k;
        for (;;) {
            bool more;
            ssize_t r = gw_tls13_read(p.t, p.sfd, big_in + got, GW_TLS13_IO_MAX, &more);
            if (r <= 0) {
                RD_CHECK_EQ_INT(r, -EAGAIN);
                break;
            }
            got += (size_t)r;
        }
    }
    RD_CHECK_EQ_INT(got, 40004);
    RD_CHECK_MEM(big_in, 40000, big_out, 40000);
    RD_CHECK_MEM(big_in + 40000, 4, "tail", 4);
    RD_CHECK_EQ_INT(p.t->rlen, 0);
    RD_CHECK(p.t->rbuf == NULL);
    pair_close(&p);
}

/* A full socket: ciphertext waits in the record layer and goes first. */
static void test_full_socket(void)
{
    pair p;
    RD_CHECK_EQ_INT(pair_open(&p, NULL, 0), 1);
    size_t sent = 0;
    int rounds = 0;
    fill(big_out, GW_TLS13_IO_MAX, 5);
    while (!gw_tls13_pending(p.t) && rounds < 1000) {
        RD_CHECK_EQ_INT(gw_tls13_write(p.t, p.sfd, big_out, GW_TLS13_IO_MAX), GW_TLS13_IO_MAX);
        sent += GW_TLS13_IO_MAX;
        rounds++;
    }
    RD_CHECK(gw_tls13_pending(p.t));
    RD_CHECK_EQ_INT(gw_tls13_write(p.t, p.sfd, big_out, 1), -EINVAL); /* flush first */
    RD_CHECK_EQ_INT(gw_tls13_flush(p.t, p.sfd), 0);
    /* The client drains; the server flushes between its reads. */
    size_t got = 0;
    for (int i = 0; i < 100000 && got < sent; i++) {
        size_t k = client_read(&p, big_in, GW_TLS13_IO_MAX);
        RD_CHECK(k == GW_TLS13_IO_MAX);
        RD_CHECK_MEM(big_in, k, big_out, k);
        got += k;
        if (gw_tls13_pending(p.t))
            gw_tls13_flush(p.t, p.sfd);
    }
    RD_CHECK_EQ_INT(got, sent);
    RD_CHECK(!gw_tls13_pending(p.t));
    pair_close(&p);
}

static void test_close_notify(void)
{
    pair p;
    RD_CHECK_EQ_INT(pair_open(&p, NULL, 0), 1);
    /* Ours: the client sees a clean end. */
    gw_tls13_close_notify(p.t, p.sfd);
    uint8_t b[8];
    int r = SSL_read(p.client, b, sizeof b);
    RD_CHECK(r <= 0 && SSL_get_error(p.client, r) == SSL_ERROR_ZERO_RETURN);
    /* Theirs, after some data: the data first, then 0, then 0 again. */
    client_write(&p, (const uint8_t *)"last", 4);
    RD_CHECK(SSL_shutdown(p.client) >= 0);
    bool more;
    RD_CHECK_EQ_INT(gw_tls13_read(p.t, p.sfd, big_in, GW_TLS13_IO_MAX, &more), 4);
    RD_CHECK_EQ_INT(gw_tls13_read(p.t, p.sfd, big_in, GW_TLS13_IO_MAX, &more), 0);
    RD_CHECK_EQ_INT(gw_tls13_read(p.t, p.sfd, big_in, GW_TLS13_IO_MAX, &more), 0);
    pair_close(&p);
}

/* Sends raw bytes from the client's side and returns the server's verdict. */
static ssize_t inject(pair *p, const uint8_t *b, size_t n, bool close_after)
{
    RD_CHECK_EQ_INT(send(p->cfd, b, n, 0), n);
    if (close_after)
        shutdown(p->cfd, SHUT_WR);
    return server_read(p, big_in, 1);
}

static void test_bad_input(void)
{
    pair p;
    /* A record that fails authentication (one bit flipped). */
    RD_CHECK_EQ_INT(pair_open(&p, NULL, 0), 1);
    BIO *mem = BIO_new(BIO_s_mem());
    SSL_set0_wbio(p.client, mem);
    RD_CHECK_EQ_INT(SSL_write(p.client, "secret", 6), 6);
    char *wire;
    long wlen = BIO_get_mem_data(mem, &wire);
    uint8_t rec[64];
    RD_CHECK(wlen > 0 && (size_t)wlen <= sizeof rec);
    memcpy(rec, wire, (size_t)wlen);
    rec[wlen - 1] ^= 1;
    RD_CHECK_EQ_INT(inject(&p, rec, (size_t)wlen, false), -EBADMSG);
    /* The client is told why. */
    uint8_t b[8];
    ERR_clear_error();
    int r = -1;
    for (int i = 0; i < 100 && r <= 0; i++) {
        r = SSL_read(p.client, b, sizeof b);
        if (SSL_get_error(p.client, r) != SSL_ERROR_WANT_READ)
            break;
    }
    RD_CHECK(r <= 0 && SSL_get_error(p.client, r) == SSL_ERROR_SSL);
    RD_CHECK_EQ_INT(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
    ERR_clear_error();
    pair_close(&p);

    /* A plaintext record type after the handshake. */
    RD_CHECK_EQ_INT(pair_open(&p, NULL, 0), 1);
    static const uint8_t ccs[] = { 20, 3, 3, 0, 1, 1 };
    RD_CHECK_EQ_INT(inject(&p, ccs, sizeof ccs, false), -EPROTO);
    pair_close(&p);

    /* A length over 2^14 + 256. */
    RD_CHECK_EQ_INT(pair_open(&p, NULL, 0), 1);
    static const uint8_t huge[] = { 23, 3, 3, 0x41, 0x01 };
    RD_CHECK_EQ_INT(inject(&p, huge, sizeof huge, false), -EMSGSIZE);
    pair_close(&p);

    /* The stream ends inside a record. */
    RD_CHECK_EQ_INT(pair_open(&p, NULL, 0), 1);
    static const uint8_t cut[] = { 23, 3, 3, 0, 40, 1, 2, 3 };
    RD_CHECK_EQ_INT(inject(&p, cut, sizeof cut, true), -EPROTO);
    pair_close(&p);
}

/* The client's side played by a second gw_tls13 with the secrets swapped:
 * inner content a real client would not send gets its error. */
static void test_peer_errors(void)
{
    static const uint8_t s1[32] = { 1 }, s2[32] = { 2 };
    static const struct {
        uint8_t type;
        uint8_t body[8];
        size_t len, pad;
        ssize_t want;
    } cases[] = {
        { 23, "ok", 2, 0, 2 },
        { 23, "padded", 6, 40, 6 },
        { 21, { 2, 40 }, 2, 0, -ECONNRESET },       /* fatal handshake_failure */
        { 21, { 1 }, 1, 0, -EPROTO },               /* short alert */
        { 22, { 24, 0, 0, 1, 2 }, 5, 0, -EPROTO },  /* KeyUpdate with a bad request value */
        { 22, { 4, 0, 0, 1, 0 }, 5, 0, -EPROTO },   /* NewSessionTicket from a client */
        { 22, { 24, 0, 0, 1, 0, 24 }, 6, 0, -EPROTO }, /* KeyUpdate not ending its record */
        { 20, { 1 }, 1, 0, -EPROTO },               /* change_cipher_spec inside a record */
        { 0, { 0 }, 0, 8, -EPROTO },                /* all padding, no content type */
        { 21, { 1, 0 }, 2, 3, 0 },                  /* close_notify */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int sv[2];
        RD_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        nonblock(sv[0]);
        gw_tls13 *srv = calloc(1, sizeof *srv), *cli = calloc(1, sizeof *cli);
        RD_CHECK(gw_tls13_init(srv, 0x1303, s1, s2, 32, 0, 0) == 0);
        RD_CHECK(gw_tls13_init(cli, 0x1303, s2, s1, 32, 0, 0) == 0);
        uint8_t rec[128];
        int n = gw_tls13_seal_record(cli, cases[i].type, cases[i].body, cases[i].len, cases[i].pad, rec);
        RD_CHECK(n > 0);
        RD_CHECK_EQ_INT(send(sv[1], rec, (size_t)n, 0), n);
        bool more;
        uint8_t out[GW_TLS13_RECORD_MAX];
        ssize_t r = gw_tls13_read(srv, sv[0], out, sizeof out, &more);
        RD_CHECK_EQ_INT(r, cases[i].want);
        if (r > 0)
            RD_CHECK_MEM(out, (size_t)r, cases[i].body, cases[i].len);
        gw_tls13_free(srv);
        gw_tls13_free(cli);
        close(sv[0]);
        close(sv[1]);
    }
}

/* TLS 1.2 stays with OpenSSL. */
static void test_tls12_stays(void)
{
    pair p;
    RD_CHECK_EQ_INT(pair_open(&p, NULL, TLS1_2_VERSION), 0);
    RD_CHECK(p.t == NULL && p.server != NULL);
    pair_close(&p);
}

int main(void)
{
    make_contexts();
    RD_RUN(test_each_suite);
    RD_RUN(test_key_update);
    RD_RUN(test_own_key_update);
    RD_RUN(test_split_records);
    RD_RUN(test_full_socket);
    RD_RUN(test_close_notify);
    RD_RUN(test_bad_input);
    RD_RUN(test_peer_errors);
    RD_RUN(test_tls12_stays);
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    return rd_test_summary();
}
