/* Fuzz target for the gateway's TLS 1.3 record layer (gateway/gw_tls13.c).
 * The input is a script played over a socketpair between the server's
 * record layer and a client's (a second gw_tls13 with the secrets swapped),
 * so both garbage and well-sealed records with any inner content reach the
 * reader:
 *
 *   byte 0: the suite (0x1301 + byte % 3)
 *   then ops, each [op][len][len bytes]:
 *     op % 5 == 0  raw bytes from the client
 *     op % 5 == 1  a record sealed by the client: inner type = first byte,
 *                  content = the rest, op / 5 % 32 zero bytes of padding
 *     op % 5 == 2  the client updates its key (a KeyUpdate record, not
 *                  requested; a requested one can be sealed with op 1)
 *     op % 5 == 3  the server reads now
 *     op % 5 == 4  the server writes the bytes; the client must read them
 *                  back exactly
 *   at the end the client shuts its side down and the server reads to the end.
 *
 * Invariants: reads stay in bounds and return what the client sealed as
 * application data; once the server's reader reports an error or the end it
 * is not driven again; what the server writes, the client opens unchanged. */
#include "gw_tls13.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond) do { if (!(cond)) abort(); } while (0)

static uint8_t rbuf[GW_TLS13_IO_MAX];
static uint8_t cbuf[GW_TLS13_IO_MAX];

typedef struct run {
    gw_tls13 *srv, *cli;
    int sfd, cfd;
    bool done; /* the server's reader ended (error or end of stream) */
} run;

static void server_read(run *r)
{
    for (int i = 0; i < 64 && !r->done; i++) {
        bool more;
        ssize_t n = gw_tls13_read(r->srv, r->sfd, rbuf, sizeof rbuf, &more);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            INVARIANT(n == 0 || n == -EBADMSG || n == -EPROTO || n == -EMSGSIZE || n == -ECONNRESET);
            r->done = true;
            return;
        }
        INVARIANT((size_t)n <= sizeof rbuf);
        if (gw_tls13_pending(r->srv))
            INVARIANT(gw_tls13_flush(r->srv, r->sfd) >= 0);
    }
}

/* The client reads back exactly what the server wrote. The server's
 * KeyUpdate answers may come first: the client's reader follows them. */
static void echo_check(run *r, const uint8_t *p, size_t len)
{
    if (gw_tls13_pending(r->srv) && gw_tls13_flush(r->srv, r->sfd) != 1)
        return;
    INVARIANT(gw_tls13_write(r->srv, r->sfd, p, len) == (ssize_t)len);
    INVARIANT(!gw_tls13_pending(r->srv)); /* small writes fit the socket */
    size_t got = 0;
    for (int i = 0; i < 64 && got < len; i++) {
        bool more;
        ssize_t n = gw_tls13_read(r->cli, r->cfd, cbuf + got, sizeof cbuf - got, &more);
        INVARIANT(n > 0 || n == -EAGAIN);
        if (n > 0)
            got += (size_t)n;
    }
    INVARIANT(got == len && memcmp(cbuf, p, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t s1[48] = { 1, 2, 3 }, s2[48] = { 4, 5, 6 };
    if (size < 1 || size > 32768)
        return 0;
    uint16_t suite = (uint16_t)(0x1301 + data[0] % 3);
    size_t slen = suite == 0x1302 ? 48 : 32;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 0;
    for (int i = 0; i < 2; i++)
        fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
    run r = { calloc(1, sizeof(gw_tls13)), calloc(1, sizeof(gw_tls13)), sv[0], sv[1], false };
    INVARIANT(r.srv && r.cli);
    INVARIANT(gw_tls13_init(r.srv, suite, s1, s2, slen, 0, 0) == 0);
    INVARIANT(gw_tls13_init(r.cli, suite, s2, s1, slen, 0, 0) == 0);

    size_t off = 1;
    while (off + 2 <= size && !r.done) {
        uint8_t op = data[off];
        size_t len = data[off + 1];
        off += 2;
        if (len > size - off)
            len = size - off;
        const uint8_t *p = data + off;
        off += len;
        switch (op % 5) {
        case 0:
            if (send(r.cfd, p, len, 0) != (ssize_t)len)
                r.done = true; /* the socket is full: stop here */
            break;
        case 1: {
            uint8_t rec[5 + 256 + 1 + 32 + 16];
            int n = gw_tls13_seal_record(r.cli, len ? p[0] : 0, p + (len ? 1 : 0), len ? len - 1 : 0,
                                         (size_t)(op / 5 % 32), rec);
            INVARIANT(n > 0);
            if (send(r.cfd, rec, (size_t)n, 0) != n)
                r.done = true;
            break;
        }
        case 2: {
            r.cli->update_due = true;
            int f = gw_tls13_flush(r.cli, r.cfd);
            INVARIANT(f >= 0);
            if (f == 0)
                r.done = true; /* the socket is full: stop here */
            break;
        }
        case 3:
            server_read(&r);
            break;
        case 4:
            echo_check(&r, p, len);
            break;
        }
    }
    shutdown(r.cfd, SHUT_WR);
    server_read(&r);
    gw_tls13_free(r.srv);
    gw_tls13_free(r.cli);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
