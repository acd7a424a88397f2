/*
 * roomd-limit-server - the "C limit reference" for roomd benchmarks.
 *
 * A minimal single-threaded epoll WebSocket server (plaintext ws://, libc
 * only, own SHA-1/base64 for the handshake) with the two behaviours roomd's
 * benchmarks exercise and no routing hops:
 *   /echo/<anything>  replies to every message with "[Durable Object]: " + msg
 *                     (same opcode)
 *   /chat/<name>      relays every message to every OTHER member of the room
 *
 * Techniques: non-blocking sockets, TCP_NODELAY, one shared 64 KiB read
 * buffer with many frames parsed per read (a connection keeps only the bytes
 * of an incomplete frame), a broadcast is framed once into a refcounted
 * buffer shared by all recipients, per-connection output queues of buffer
 * references flushed once per epoll_wait iteration with writev, and pooled
 * buffers (no malloc per message in steady state).
 *
 * Not a product: no TLS, no UTF-8 validation, no timeouts, loopback only.
 * Binds 127.0.0.1:--port (default 8090).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_SIZE   (64u * 1024u)
#define MAX_FRAME   (16u * 1024u * 1024u) /* larger frame/message: close 1009 */
#define MAX_HEAD    8192u                 /* larger HTTP request head: 431 */
#define MAX_QUEUED  (64u * 1024u * 1024u) /* slower reader than this: dropped */
#define SMALL_CAP   224u                  /* buffer pool size classes */
#define BIG_CAP     16384u
#define IOV_N       1024
#define MAX_EVENTS  1024
#define ROOM_BUCKETS 4096u

static const char echo_prefix[] = "[Durable Object]: ";
#define PREFIX_LEN (sizeof echo_prefix - 1)

/* ---- refcounted output buffers ------------------------------------------ */
struct buf {
    struct buf *next_free;
    uint32_t refs, len, cap;
    uint8_t cls, priv; /* cls 0/1 pooled, 2 malloc; priv: one owner, appendable */
    uint8_t data[];
};

static struct buf *g_pool[2];

static void *xrealloc(void *p, size_t n)
{
    void *r = realloc(p, n);
    if (!r)
        perror("realloc"), exit(1);
    return r;
}

static struct buf *buf_get(size_t need)
{
    int cls = need <= SMALL_CAP ? 0 : need <= BIG_CAP ? 1 : 2;
    struct buf *b = cls < 2 ? g_pool[cls] : NULL;
    if (b) {
        g_pool[cls] = b->next_free;
    } else {
        size_t cap = cls == 0 ? SMALL_CAP : cls == 1 ? BIG_CAP : need;
        b = xrealloc(NULL, sizeof *b + cap);
        b->cap = (uint32_t)cap, b->cls = (uint8_t)cls;
    }
    b->refs = 0, b->len = 0, b->priv = 0;
    return b;
}

static void buf_unref(struct buf *b)
{
    if (--b->refs)
        return;
    if (b->cls == 2)
        free(b);
    else
        b->next_free = g_pool[b->cls], g_pool[b->cls] = b;
}

static size_t ws_hdr_len(size_t len)
{
    return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

/* Server frame header (unmasked, FIN set). Returns its length (2, 4 or 10). */
static size_t ws_hdr(uint8_t *p, int opcode, size_t len)
{
    p[0] = (uint8_t)(0x80 | opcode);
    size_t h = ws_hdr_len(len);
    p[1] = h == 2 ? (uint8_t)len : h == 4 ? 126 : 127;
    for (size_t i = 2; i < h; i++) /* big-endian 16 or 64-bit length */
        p[i] = (uint8_t)((uint64_t)len >> (8 * (h - 1 - i)));
    return h;
}

/* ---- connections and rooms ---------------------------------------------- */
enum { ST_HTTP, ST_WS, ST_CLOSING };
enum { K_NONE, K_ECHO, K_CHAT };

struct conn {
    int fd;
    uint8_t state, kind, dead, kill, in_dirty, want_out;
    int fragop;
    uint32_t qcap, qhead, qlen, qoff, room_idx;
    struct buf **q; /* ring of queued output buffers, qbytes in all */
    uint8_t *in;    /* bytes of an incomplete frame / request head */
    uint8_t *frag;  /* fragmented message being assembled (rare) */
    size_t qbytes, inlen, incap, fraglen, fragcap;
    struct room *room;
    struct conn *next_dead;
};

struct room {
    struct room *next;
    struct conn **m;
    uint32_t n, cap;
    size_t namelen;
    char name[];
};

static int g_ep;
static uint8_t g_rbuf[READ_SIZE];
static struct room *g_rooms[ROOM_BUCKETS];
static struct conn **g_dirty;
static size_t g_ndirty, g_dirtycap;
static struct conn *g_dead;

static void mark_dirty(struct conn *c)
{
    if (c->in_dirty)
        return;
    if (g_ndirty == g_dirtycap) {
        g_dirtycap = g_dirtycap ? g_dirtycap * 2 : 256;
        g_dirty = xrealloc(g_dirty, g_dirtycap * sizeof *g_dirty);
    }
    g_dirty[g_ndirty++] = c, c->in_dirty = 1;
}

static void q_push(struct conn *c, struct buf *b, size_t bytes)
{
    if (c->qlen == c->qcap) {
        uint32_t ncap = c->qcap ? c->qcap * 2 : 16;
        struct buf **nq = xrealloc(NULL, ncap * sizeof *nq);
        for (uint32_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) & (c->qcap - 1)];
        free(c->q);
        c->q = nq, c->qcap = ncap, c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen++) & (c->qcap - 1)] = b;
    b->refs++;
    c->qbytes += bytes;
    if (c->qbytes > MAX_QUEUED)
        c->kill = 1;
    mark_dirty(c);
}

/* Reserves n bytes at the end of the connection's own (unshared) tail buffer,
 * or of a new one: consecutive replies to one connection share one buffer. */
static uint8_t *q_reserve(struct conn *c, size_t n)
{
    if (c->qlen) {
        struct buf *t = c->q[(c->qhead + c->qlen - 1) & (c->qcap - 1)];
        if (t->priv && t->cap - t->len >= n) {
            t->len += (uint32_t)n;
            c->qbytes += n;
            mark_dirty(c);
            return t->data + t->len - n;
        }
    }
    struct buf *b = buf_get(n);
    b->priv = 1, b->len = (uint32_t)n;
    q_push(c, b, n);
    return b->data;
}

static void send_frame(struct conn *c, int opcode, const void *pre, size_t prelen,
                       const void *data, size_t len)
{
    size_t tot = prelen + len, h = ws_hdr_len(tot);
    uint8_t *p = q_reserve(c, h + tot);
    ws_hdr(p, opcode, tot);
    if (prelen)
        memcpy(p + h, pre, prelen);
    if (len)
        memcpy(p + h + prelen, data, len);
}

static void send_close(struct conn *c, unsigned code)
{
    uint8_t cc[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    send_frame(c, 8, NULL, 0, cc, code ? 2 : 0);
    c->state = ST_CLOSING;
}

static uint32_t hash_name(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h & (ROOM_BUCKETS - 1);
}

static void room_join(struct conn *c, const char *name, size_t n)
{
    uint32_t h = hash_name(name, n);
    struct room *r = g_rooms[h];
    while (r && !(r->namelen == n && memcmp(r->name, name, n) == 0))
        r = r->next;
    if (!r) {
        r = xrealloc(NULL, sizeof *r + n + 1);
        memset(r, 0, sizeof *r);
        memcpy(r->name, name, n);
        r->name[n] = 0, r->namelen = n;
        r->next = g_rooms[h], g_rooms[h] = r;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->m = xrealloc(r->m, r->cap * sizeof *r->m);
    }
    c->room = r, c->room_idx = r->n;
    r->m[r->n++] = c;
}

static void room_leave(struct conn *c)
{
    struct room *r = c->room;
    r->m[c->room_idx] = r->m[--r->n];
    r->m[c->room_idx]->room_idx = c->room_idx;
    c->room = NULL;
    if (r->n)
        return;
    struct room **pp = &g_rooms[hash_name(r->name, r->namelen)];
    while (*pp != r)
        pp = &(*pp)->next;
    *pp = r->next;
    free(r->m), free(r);
}

/* Closes the socket now; the struct is freed after this loop iteration, as
 * pending epoll events and the dirty list may still point to it. */
static void conn_kill(struct conn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    if (c->room)
        room_leave(c);
    close(c->fd);
    for (uint32_t i = 0; i < c->qlen; i++)
        buf_unref(c->q[(c->qhead + i) & (c->qcap - 1)]);
    c->qlen = 0;
    c->next_dead = g_dead, g_dead = c;
}

/* ---- SHA-1 and base64 (handshake only) ---------------------------------- */
static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f = i < 20 ? (b & c) | (~b & d) : i < 40 ? b ^ c ^ d
                   : i < 60 ? (b & c) | (b & d) | (c & d) : b ^ c ^ d;
        uint32_t k = i < 20 ? 0x5a827999 : i < 40 ? 0x6ed9eba1 : i < 60 ? 0x8f1bbcdc : 0xca62c1d6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    uint8_t blk[128] = {0};
    size_t full = len & ~(size_t)63, rest = len - full;
    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, msg + i);
    memcpy(blk, msg + full, rest);
    blk[rest] = 0x80;
    size_t tot = rest + 9 <= 64 ? 64 : 128;
    for (int i = 0; i < 8; i++) /* message length in bits, big-endian */
        blk[tot - 1 - i] = (uint8_t)((uint64_t)len * 8 >> (8 * i));
    for (size_t i = 0; i < tot; i += 64)
        sha1_block(h, blk + i);
    for (int i = 0; i < 20; i++)
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void b64(const uint8_t *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        *out++ = t[v >> 18];
        *out++ = t[(v >> 12) & 63];
        *out++ = i + 1 < n ? t[(v >> 6) & 63] : '=';
        *out++ = i + 2 < n ? t[v & 63] : '=';
    }
    *out = 0;
}

/* ---- HTTP upgrade -------------------------------------------------------- */
static void http_fail(struct conn *c, const char *status)
{
    char r[160];
    int n = snprintf(r, sizeof r, "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     status);
    memcpy(q_reserve(c, (size_t)n), r, (size_t)n);
    c->state = ST_CLOSING;
}

/* Returns the bytes consumed: 0 while the head is incomplete. */
static size_t http_consume(struct conn *c, uint8_t *p, size_t n)
{
    uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end) {
        if (n > MAX_HEAD)
            http_fail(c, "431 Request Header Fields Too Large");
        return n > MAX_HEAD ? n : 0;
    }
    size_t used = (size_t)(end - p) + 4, keylen = 0;
    *end = 0;
    if (used < 9 || strncmp((char *)p, "GET /", 5) != 0) {
        http_fail(c, "400 Bad Request");
        return used;
    }
    char *path = (char *)memchr(p, '/', used), *key = NULL;
    char *pe = strpbrk(path, " ?\r"), *line = strstr(path, "\r\n");
    if (strncmp((char *)p, "GET /", 5) != 0 || !pe || !line) {
        http_fail(c, "400 Bad Request");
        return used;
    }
    size_t plen = (size_t)(pe - path);
    while (line) {
        line += 2;
        char *next = strstr(line, "\r\n");
        if (strncasecmp(line, "sec-websocket-key:", 18) == 0) {
            key = line + 18;
            key += strspn(key, " \t");
            keylen = strcspn(key, " \t\r");
        }
        line = next;
    }
    int echo = plen >= 6 && memcmp(path, "/echo/", 6) == 0;
    int chat = plen > 6 && plen <= 6 + 256 && memcmp(path, "/chat/", 6) == 0;
    if (!key || keylen == 0 || keylen > 64 || !(echo || chat)) {
        http_fail(c, !key || keylen == 0 || keylen > 64 ? "400 Bad Request" : "404 Not Found");
        return used;
    }
    c->kind = echo ? K_ECHO : K_CHAT;
    if (chat)
        room_join(c, path + 6, plen - 6);
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t kg[64 + sizeof guid], dig[20];
    char acc[32], r[256];
    memcpy(kg, key, keylen);
    memcpy(kg + keylen, guid, sizeof guid - 1);
    sha1(kg, keylen + sizeof guid - 1, dig);
    b64(dig, 20, acc);
    int rn = snprintf(r, sizeof r,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
    memcpy(q_reserve(c, (size_t)rn), r, (size_t)rn);
    c->state = ST_WS;
    return used;
}

/* ---- WebSocket frames ---------------------------------------------------- */
static void unmask(uint8_t *d, size_t n, const uint8_t mk[4])
{
    uint32_t m32;
    memcpy(&m32, mk, 4);
    uint64_t m64 = (uint64_t)m32 << 32 | m32, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, d + i, 8);
        w ^= m64;
        memcpy(d + i, &w, 8);
    }
    for (; i < n; i++)
        d[i] ^= mk[i & 3];
}

static void deliver(struct conn *c, int op, const uint8_t *d, size_t n)
{
    if (c->kind == K_ECHO) {
        send_frame(c, op, echo_prefix, PREFIX_LEN, d, n);
        return;
    }
    struct room *r = c->room;
    if (r->n < 2)
        return;
    size_t h = ws_hdr_len(n);
    struct buf *b = buf_get(h + n);
    ws_hdr(b->data, op, n);
    memcpy(b->data + h, d, n);
    b->len = (uint32_t)(h + n), b->refs = 1; /* ref held during the loop */
    for (uint32_t i = 0; i < r->n; i++) {
        struct conn *m = r->m[i];
        if (m != c && m->state == ST_WS)
            q_push(m, b, h + n);
    }
    buf_unref(b);
}

static void on_frame(struct conn *c, int fin, int op, uint8_t *d, size_t n)
{
    switch (op) {
    case 8: /* close: echo the status code */
        send_close(c, n >= 2 ? (unsigned)d[0] << 8 | d[1] : 0);
        return;
    case 9:
        if (!fin || n > 125)
            break;
        send_frame(c, 10, NULL, 0, d, n);
        return;
    case 10:
        return;
    case 1:
    case 2:
        if (c->fragop)
            break;
        if (fin) {
            deliver(c, op, d, n);
            return;
        }
        c->fragop = op, c->fraglen = 0;
        /* fall through */
    case 0:
        if (!c->fragop)
            break;
        if (c->fraglen + n > MAX_FRAME) {
            send_close(c, 1009);
            return;
        }
        if (c->fraglen + n > c->fragcap)
            c->frag = xrealloc(c->frag, c->fragcap = c->fraglen + n + 4096);
        memcpy(c->frag + c->fraglen, d, n);
        c->fraglen += n;
        if (fin) {
            int fop = c->fragop;
            c->fragop = 0;
            deliver(c, fop, c->frag, c->fraglen);
        }
        return;
    default:
        break;
    }
    send_close(c, 1002);
}

/* Parses complete frames; returns the bytes consumed. */
static size_t ws_consume(struct conn *c, uint8_t *p, size_t n)
{
    size_t pos = 0;
    while (c->state == ST_WS && n - pos >= 2) {
        uint8_t b0 = p[pos], b1 = p[pos + 1];
        size_t hl = 2;
        uint64_t len = b1 & 0x7f;
        if (len >= 126) { /* 16 or 64-bit big-endian extended length */
            hl = len == 126 ? 4 : 10;
            if (n - pos < hl)
                break;
            len = 0;
            for (size_t i = 2; i < hl; i++)
                len = len << 8 | p[pos + i];
        }
        if (!(b1 & 0x80) || (b0 & 0x70)) {
            send_close(c, 1002);
            break;
        }
        if (len > MAX_FRAME) {
            send_close(c, 1009);
            break;
        }
        hl += 4;
        if (n - pos < hl + len)
            break;
        uint8_t *d = p + pos + hl;
        unmask(d, (size_t)len, d - 4);
        pos += hl + (size_t)len;
        on_frame(c, b0 >> 7, b0 & 0x0f, d, (size_t)len);
    }
    return c->state == ST_WS ? pos : n; /* closing: input is discarded */
}

static size_t consume(struct conn *c, uint8_t *p, size_t n)
{
    size_t used = 0;
    if (c->state == ST_HTTP)
        used = http_consume(c, p, n);
    if (c->state == ST_WS)
        used += ws_consume(c, p + used, n - used);
    else if (c->state == ST_CLOSING)
        used = n;
    return used;
}

static void on_readable(struct conn *c)
{
    uint8_t *base;
    ssize_t r;
    if (c->inlen) { /* continue an incomplete frame in the connection's buffer */
        if (c->incap < c->inlen + READ_SIZE)
            c->in = xrealloc(c->in, c->incap = c->inlen + READ_SIZE);
        base = c->in;
        r = read(c->fd, c->in + c->inlen, READ_SIZE);
    } else {
        base = g_rbuf;
        r = read(c->fd, g_rbuf, READ_SIZE);
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        conn_kill(c);
        return;
    }
    size_t have = c->inlen + (size_t)r, used = consume(c, base, have), rest = have - used;
    if (c->dead)
        return;
    if (rest && base == c->in) {
        memmove(c->in, c->in + used, rest);
    } else if (rest) {
        if (c->incap < rest + READ_SIZE)
            c->in = xrealloc(c->in, c->incap = rest + READ_SIZE);
        memcpy(c->in, base + used, rest);
    } else if (c->incap > 1024 * 1024) { /* drop a buffer grown for a big frame */
        free(c->in);
        c->in = NULL, c->incap = 0;
    }
    c->inlen = rest;
}

/* Writes the output queue with writev until it is empty or the socket is full. */
static void flush(struct conn *c)
{
    struct iovec iov[IOV_N];
    while (c->qlen) {
        int n = 0;
        size_t want = 0;
        for (uint32_t i = 0; i < c->qlen && n < IOV_N; i++, n++) {
            struct buf *b = c->q[(c->qhead + i) & (c->qcap - 1)];
            uint32_t off = i ? 0 : c->qoff;
            iov[n] = (struct iovec){.iov_base = b->data + off, .iov_len = b->len - off};
            want += b->len - off;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                conn_kill(c);
            break;
        }
        size_t left = (size_t)w;
        c->qbytes -= left;
        while (left) {
            struct buf *b = c->q[c->qhead];
            size_t rem = b->len - c->qoff;
            if (left < rem) {
                c->qoff += (uint32_t)left;
                break;
            }
            left -= rem;
            c->qoff = 0, c->qhead = (c->qhead + 1) & (c->qcap - 1), c->qlen--;
            buf_unref(b);
        }
        if ((size_t)w < want)
            break;
    }
    if (c->dead)
        return;
    if (!c->qlen && c->state == ST_CLOSING) {
        conn_kill(c);
        return;
    }
    uint8_t want_out = c->qlen != 0;
    if (want_out != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want_out;
    }
}

static void on_accept(int lfd)
{
    for (int i = 0; i < 256; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                perror("accept4");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (!c || (c->fd = fd, epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev)) < 0)
            close(fd), free(c);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: roomd-limit-server [--port N]\n\n"
               "Minimal single-threaded epoll WebSocket server (the C limit reference for\n"
               "roomd benchmarks) on ws://127.0.0.1:PORT:\n"
               "  /echo/<any>   replies \"[Durable Object]: \" + message (same opcode)\n"
               "  /chat/<name>  relays each message to every other member of the room\n\n"
               "  --port N   TCP port to listen on (default: 8090)\n"
               "  --help     show this help\n");
}

int main(int argc, char **argv)
{
    long port = 8090;
    for (int i = 1; i < argc; i++) {
        char *e = NULL;
        if (strcmp(argv[i], "--help") == 0)
            return usage(stdout), 0;
        if (strcmp(argv[i], "--port") != 0 || i + 1 == argc ||
            (port = strtol(argv[++i], &e, 10), *e || port < 1 || port > 65535))
            return usage(stderr), 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN); /* SIGTERM/SIGINT: default action, no cleanup needed */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
        perror("roomd-limit-server: listen");
        return 1;
    }
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (g_ep < 0 || epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        perror("roomd-limit-server: epoll");
        return 1;
    }
    static struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(g_ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                on_accept(lfd);
                continue;
            }
            if (c->dead)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c); /* EOF or error: read() reports it */
            if (!c->dead && (evs[i].events & EPOLLOUT))
                mark_dirty(c);
        }
        /* one flush per connection per iteration: all its output in one writev */
        for (size_t i = 0; i < g_ndirty; i++) {
            struct conn *c = g_dirty[i];
            c->in_dirty = 0;
            if (c->dead)
                continue;
            if (c->kill)
                conn_kill(c);
            else
                flush(c);
        }
        g_ndirty = 0;
        while (g_dead) {
            struct conn *c = g_dead;
            g_dead = c->next_dead;
            free(c->q), free(c->in), free(c->frag), free(c);
        }
    }
}
