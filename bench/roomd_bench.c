/*
 * roomd-bench - load generator for roomd (plaintext ws://; churn also wss://).
 *
 * Self-contained: a minimal RFC 6455 client (handshake with SHA-1/base64
 * accept check, masked client frames, server frame parsing with ping/pong and
 * close), non-blocking sockets, one epoll loop, one thread.
 *
 *   roomd-bench echo   --url ws://127.0.0.1:8080/echo/bench --conns C --duration S
 *   roomd-bench fanout --url ws://127.0.0.1:8080/chat/room --rooms R --members M
 *                      --publishers P --rate N --duration S
 *   roomd-bench churn  --url ws[s]://127.0.0.1:8080/echo/churn --conns C --duration S
 *                      [--cross-url ws://127.0.0.1:8081]
 *
 * --cross-url (federation): every other non-publishing member connects to a
 * second server (another cell sharing the first one's Redis) and its
 * deliveries go to a histogram of their own, so in-cell and cross-cell
 * latency come from the same run under the same load.
 *
 * Hot path design: one shared 64 KiB read buffer (a connection only keeps the
 * bytes of an incomplete frame between reads), many frames parsed per read,
 * one clock read per read() call, frames appended to reusable per-connection
 * write buffers and flushed once per loop iteration. Buffers only grow
 * (amortised), so there is no allocation per message.
 *
 * Message payload (text, ASCII, --size bytes, >= PL_HDR):
 *   "RB" <kind E|F> ":" <id 8 hex> ":" <seq 16 hex> ":" <ts 16 hex> ";" <'x' padding>
 * ts is CLOCK_MONOTONIC in ns. Receivers find the payload with memmem() on the
 * marker, so servers may add a prefix (the echo class does).
 * --payload json: a chat-like JSON object of --size bytes (default 300) with
 * that header as the value of its first field ("id"); the rest comes from one
 * of TMPL_N templates built at startup from a fixed seed (names, words, ids),
 * picked by (id + seq) % TMPL_N, so receivers check every byte of the body.
 *
 * --deflate (RFC 7692 permessage-deflate): offers
 * "permessage-deflate; client_max_window_bits", requires the server to answer
 * with server_no_context_takeover (each message is compressed alone), inflates
 * RSV1 messages with one process-wide z_stream (inflateReset per message; the
 * output goes to one shared, growing buffer) and compresses our own data
 * messages with one process-wide deflate stream (deflateReset per message, raw
 * deflate, Z_SYNC_FLUSH, trailing 00 00 ff ff stripped, RSV1 set).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ZLIB_CONST
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <zlib.h>

#define RBUF_SIZE        (64u * 1024u)        /* bytes per recv() */
#define DIRECT_THRESHOLD (16u * 1024u)        /* partial frame this big: recv into conn buffer */
#define MAX_FRAME        (64u * 1024u * 1024u)
#define WBUF_LIMIT       (8u * 1024u * 1024u) /* publisher backlog cap before skipping sends */
#define HS_MAX           8191u                /* max HTTP response header size */
#define MAX_EVENTS       1024
#define MAX_READS        8                    /* recv() calls per readiness event */
#define TIMER_TAG        UINT64_MAX
#define MAX_ERRS         8
#define NS_PER_S         1000000000ull

#define PL_HDR     47u /* "RBx:" + 8 + ":" + 16 + ":" + 16 + ";" */
#define PL_ID      4u
#define PL_SEQ     13u
#define PL_TS      30u
#define MAX_SIZE   (16u * 1024u * 1024u)
#define TMPL_N     64u  /* --payload json: body templates */
#define JSON_HDR   7u   /* the header starts after '{"id":"' */
#define JSON_DEFAULT_SIZE 300u
#define MAX_CPU_PIDS 32u

/* Our own compression (client -> server): fast level; a small hash table since
 * deflateReset clears it for every message and messages are small. */
#define CLIENT_Z_LEVEL    1
#define CLIENT_Z_MEMLEVEL 4

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ------------------------------------------------------------------------ */
/* Histogram: log-linear (HDR style), ns values, 128 sub-buckets per octave  */
/* (<0.8% relative error), exact below 256 ns, clamps at 60 s.                */

#define H_SUB_BITS 7u
#define H_SUB      (1u << H_SUB_BITS)
#define H_LINEAR   (2u * H_SUB)
#define H_MAX_NS   (60ull * NS_PER_S)
#define H_BUCKETS  (H_LINEAR + 28u * H_SUB) /* up to 2^36 ns > 60 s */

typedef struct {
    uint64_t counts[H_BUCKETS];
    uint64_t total, min, max;
    double sum;
} hist;

static unsigned h_index(uint64_t v)
{
    if (v > H_MAX_NS)
        v = H_MAX_NS;
    if (v < H_LINEAR)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - H_SUB_BITS;
    unsigned sub = (unsigned)(v >> shift); /* [128, 255] */
    return H_LINEAR + (shift - 1u) * H_SUB + (sub - H_SUB);
}

static void h_bounds(unsigned idx, uint64_t *lo, uint64_t *hi)
{
    if (idx < H_LINEAR) {
        *lo = *hi = idx;
        return;
    }
    unsigned k = idx - H_LINEAR;
    unsigned shift = k / H_SUB + 1u;
    uint64_t sub = k % H_SUB + H_SUB;
    *lo = sub << shift;
    *hi = ((sub + 1u) << shift) - 1u;
}

static void h_record(hist *h, uint64_t v)
{
    h->counts[h_index(v)]++;
    if (h->total == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->total++;
    h->sum += (double)v;
}

static uint64_t h_percentile(const hist *h, double pct)
{
    if (h->total == 0)
        return 0;
    uint64_t target = (uint64_t)ceil(pct / 100.0 * (double)h->total);
    if (target < 1)
        target = 1;
    if (target > h->total)
        target = h->total;
    uint64_t cum = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        cum += h->counts[i];
        if (cum >= target) {
            uint64_t lo, hi;
            h_bounds(i, &lo, &hi);
            uint64_t v = lo + (hi - lo) / 2u;
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}

static double h_mean(const hist *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}

/* ------------------------------------------------------------------------ */
/* SHA-1 + base64 (only used for the handshake)                              */

static uint32_t rol32(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32u - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80];
    for (unsigned i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (unsigned i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (unsigned i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const uint8_t *data, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    size_t full = len / 64u * 64u;
    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, data + i);
    uint8_t tail[128];
    memset(tail, 0, sizeof tail);
    size_t rem = len - full;
    memcpy(tail, data + full, rem);
    tail[rem] = 0x80;
    size_t tl = rem + 1u + 8u <= 64u ? 64u : 128u;
    uint64_t bits = (uint64_t)len * 8u;
    for (unsigned i = 0; i < 8; i++)
        tail[tl - 1u - i] = (uint8_t)(bits >> (8u * i));
    sha1_block(h, tail);
    if (tl == 128u)
        sha1_block(h, tail + 64);
    for (unsigned i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

static void b64_encode(const uint8_t *in, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
}

/* key: 24 chars base64; out: 29 bytes */
static void ws_accept_for(const char *key, char out[29])
{
    char buf[64];
    size_t kl = strlen(key);
    memcpy(buf, key, kl);
    memcpy(buf + kl, WS_GUID, sizeof WS_GUID - 1u);
    uint8_t dig[20];
    sha1((const uint8_t *)buf, kl + sizeof WS_GUID - 1u, dig);
    b64_encode(dig, sizeof dig, out);
}

/* ------------------------------------------------------------------------ */
/* State                                                                     */

enum { MODE_ECHO, MODE_FANOUT, MODE_CHURN, MODE_SINK };
enum { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_DONE, ST_FAILED, ST_LOST };

struct trk { /* per (receiver, publisher) order tracking */
    uint64_t max; /* highest seq seen */
    uint64_t win; /* bit d set: seq (max - d) seen */
};

typedef struct {
    int fd;
    uint32_t id;
    uint8_t state;
    bool dirty, ev_out, outstanding, is_pub, in_frag;
    bool cross;    /* connected to --cross-url */
    bool pmd;      /* permessage-deflate negotiated */
    bool frag_z;   /* the message being reassembled is compressed (RSV1) */
    uint8_t pmd_cwb; /* client_max_window_bits the server allows us (9..15) */
    uint32_t room, member;
    uint8_t *wbuf;
    size_t wlen, woff, wcap;
    uint8_t *pend; /* handshake bytes / incomplete frame */
    size_t plen, pcap;
    uint8_t *frag; /* fragmented message reassembly */
    size_t flen, fcap;
    uint64_t seq, sent_ts;
    struct trk *trk;
    char key[32];
} conn;

/* Where connections go: --url, and --cross-url for the cross-cell members. */
typedef struct {
    char host[256], port[16], authority[300], path[1024];
    struct sockaddr_storage addr;
    socklen_t addrlen;
} endpoint;

static struct {
    /* config */
    int mode;
    const char *url, *cross_url;
    const char *message; /* echo --message: fixed request, any reply counts */
    endpoint ep0, epx;
    uint32_t conns, rooms, members, publishers, size, max_hs;
    uint32_t batch;             /* sink: messages per send() per connection */
    int sender_cpu;             /* sink: pin the sender child here (-1: no) */
    uint32_t objects;           /* echo: spread over this many objects (0: one) */
    double duration, warmup, settle, rate, connect_timeout, drain_timeout;
    bool json, quiet;
    bool tls;          /* churn: wss:// */
    bool deflate;      /* offer permessage-deflate */
    bool deflate_send; /* and compress our own data messages when negotiated */
    bool payload_json;
    pid_t cpu_pids[MAX_CPU_PIDS];
    uint32_t ncpu_pids;

    /* runtime */
    int ep, tfd;
    conn *c;
    uint32_t *dirty, ndirty;
    uint8_t *rbuf;
    uint8_t *tmpl;      /* ntmpl payload templates of size bytes each */
    uint32_t ntmpl, hdr_off; /* hdr_off: where the RB header sits in a payload */
    z_stream zin, zout;
    bool zin_init, zout_init;
    int zout_wbits;
    uint8_t *ibuf, *sbuf, *zbuf; /* inflated message; plain and deflated outgoing payload */
    size_t icap, zcap;
    struct trk *trk;
    uint32_t *pubs, npubs;
    uint64_t now, rng;
    uint32_t next_start, inflight, n_opened, n_failed, n_lost, n_closing, n_close_timeout;
    bool connecting, sending, publishing;
    uint64_t t_conn0, t_conn_last, t_run0, warm_end, run_end, total_msgs, sched;
    double measured_s, pub_s;

    /* stats */
    hist h;
    hist hx;             /* deliveries to --cross-url members */
    uint64_t delivered_x;
    uint64_t rt_count, outstanding, mismatched, corrupt, malformed;
    uint64_t sent, send_skipped, expected, delivered, delivered_win, dups, reordered, unexpected;
    uint64_t proto_errors, pings, bytes_in, bytes_out;
    uint64_t recvs, waits; /* recv() calls that returned data; epoll_wait() calls */
    uint32_t n_pmd;                     /* connections that negotiated deflate */
    uint64_t msgs_in, msgs_z_in;        /* data messages received; of those compressed */
    uint64_t z_in_bytes, z_infl_bytes;  /* compressed payload bytes in; after inflating */
    uint64_t msgs_z_out, z_out_plain, z_out_bytes; /* compressed messages sent; bytes before/after */
    /* measured window: server CPU (--cpu-pids), client CPU, wire bytes */
    bool win_started, win_done;
    uint64_t win_t0, win_t1, win_ccpu0, win_ccpu1;
    uint64_t win_bin0, win_bout0, win_bin1, win_bout1;
    uint64_t win_rc0, win_rc1, win_msg0, win_msg1; /* recv() calls, data messages */
    uint64_t win_rq0, win_rq1; /* time runnable but waiting for a CPU (/proc/self/schedstat) */
    uint64_t cpu0[MAX_CPU_PIDS], cpu1[MAX_CPU_PIDS]; /* utime+stime, clock ticks */
    bool cpu_ok[MAX_CPU_PIDS];
    uint64_t prog_a, prog_b;
    char errs[MAX_ERRS][240];
    uint32_t nerrs;
} G;

static volatile sig_atomic_t g_stop;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(void)
{
    uint64_t x = G.rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    G.rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("roomd-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q)
        die("out of memory (%zu bytes)", n);
    return q;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *q = calloc(n ? n : 1u, sz ? sz : 1u);
    if (!q)
        die("out of memory");
    return q;
}

static void grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 4096u;
    while (n < need)
        n *= 2u;
    *buf = xrealloc(*buf, n);
    *cap = n;
}

__attribute__((format(printf, 2, 3))) static void note_error(const conn *c, const char *fmt, ...)
{
    if (G.nerrs < MAX_ERRS) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (c)
            snprintf(G.errs[G.nerrs], sizeof G.errs[0], "conn %" PRIu32 ": %s", c->id, msg);
        else
            snprintf(G.errs[G.nerrs], sizeof G.errs[0], "%s", msg);
    }
    G.nerrs++;
}

/* ------------------------------------------------------------------------ */
/* Connection teardown                                                       */

static void conn_close_fd(conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->outstanding) {
        c->outstanding = false;
        G.outstanding--;
    }
    c->wlen = c->woff = 0;
    c->plen = 0;
}

/* The connection ended. Classifies it by the state it was in. */
static void conn_end(conn *c, const char *why)
{
    switch (c->state) {
    case ST_CONNECTING:
    case ST_HANDSHAKE:
        G.inflight--;
        /* fallthrough */
    case ST_IDLE:
        G.n_failed++;
        c->state = ST_FAILED;
        note_error(c, "connect failed: %s", why);
        break;
    case ST_OPEN:
        G.n_lost++;
        c->state = ST_LOST;
        note_error(c, "closed unexpectedly: %s", why);
        break;
    case ST_CLOSING:
        G.n_closing--;
        c->state = ST_DONE;
        break;
    default:
        break;
    }
    conn_close_fd(c);
}

static void conn_errno(conn *c, const char *what, int err)
{
    char buf[160];
    snprintf(buf, sizeof buf, "%s: %s", what, strerror(err));
    conn_end(c, buf);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

static void mark_dirty(conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        G.dirty[G.ndirty++] = c->id;
    }
}

static void conn_set_out(conn *c, bool on)
{
    if (c->ev_out == on || c->fd < 0)
        return;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.u64 = c->id;
    if (epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        conn_errno(c, "epoll_ctl", errno);
        return;
    }
    c->ev_out = on;
}

static void conn_flush(conn *c)
{
    while (c->fd >= 0 && c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
            G.bytes_out += (uint64_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_set_out(c, true);
            return;
        } else {
            conn_errno(c, "send", n < 0 ? errno : EPIPE);
            return;
        }
    }
    if (c->fd >= 0) {
        c->woff = c->wlen = 0;
        conn_set_out(c, false);
    }
}

static void flush_dirty(void)
{
    for (uint32_t i = 0; i < G.ndirty; i++) {
        conn *c = &G.c[G.dirty[i]];
        c->dirty = false;
        if (c->fd >= 0 && !c->ev_out)
            conn_flush(c);
    }
    G.ndirty = 0;
}

static uint8_t *wbuf_reserve(conn *c, size_t need)
{
    if (c->woff == c->wlen)
        c->woff = c->wlen = 0;
    if (c->wlen + need > c->wcap && c->woff) {
        memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
        c->wlen -= c->woff;
        c->woff = 0;
    }
    grow(&c->wbuf, &c->wcap, c->wlen + need);
    return c->wbuf + c->wlen;
}

/* Starts a masked frame (rsv: 0, or 0x40 = RSV1 for a compressed message);
 * returns where the payload goes. */
static uint8_t *frame_begin(conn *c, unsigned op, unsigned rsv, size_t len, uint8_t key[4])
{
    uint8_t *p = wbuf_reserve(c, 14u + len);
    size_t n = 0;
    p[n++] = (uint8_t)(0x80u | rsv | op);
    if (len < 126u) {
        p[n++] = (uint8_t)(0x80u | len);
    } else if (len <= 0xffffu) {
        p[n++] = 0x80u | 126u;
        p[n++] = (uint8_t)(len >> 8);
        p[n++] = (uint8_t)len;
    } else {
        p[n++] = 0x80u | 127u;
        for (int i = 7; i >= 0; i--)
            p[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t k = (uint32_t)(rng_next() >> 32);
    memcpy(key, &k, 4);
    memcpy(p + n, key, 4);
    return p + n + 4;
}

static void frame_end(conn *c, uint8_t *payload, size_t len, const uint8_t key[4])
{
    uint8_t k8[8];
    memcpy(k8, key, 4);
    memcpy(k8 + 4, key, 4);
    uint64_t k;
    memcpy(&k, k8, 8);
    size_t i = 0;
    for (; i + 8u <= len; i += 8u) {
        uint64_t x;
        memcpy(&x, payload + i, 8);
        x ^= k;
        memcpy(payload + i, &x, 8);
    }
    for (; i < len; i++)
        payload[i] ^= key[i & 3u];
    c->wlen = (size_t)(payload - c->wbuf) + len;
    mark_dirty(c);
}

static void ws_send(conn *c, unsigned op, const uint8_t *data, size_t len)
{
    uint8_t key[4];
    uint8_t *p = frame_begin(c, op, 0u, len, key);
    if (len)
        memcpy(p, data, len);
    frame_end(c, p, len, key);
}

static void ws_send_close(conn *c, unsigned code)
{
    uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    ws_send(c, 0x8u, b, code ? 2u : 0u);
}

static const char hexdig[] = "0123456789abcdef";

static void put_hex(uint8_t *p, uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = (uint8_t)hexdig[v & 15u];
        v >>= 4;
    }
}

static bool get_hex(const uint8_t *p, int digits, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        unsigned d = p[i];
        if (d - '0' < 10u)
            d -= '0';
        else if (d - 'a' < 6u)
            d = d - 'a' + 10u;
        else
            return false;
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

/* The body template of message (id, seq): G.size bytes, header not filled. */
static const uint8_t *tmpl_for(uint64_t id, uint64_t seq)
{
    return G.tmpl + (size_t)((id + seq) % G.ntmpl) * G.size;
}

/* Writes the G.size payload bytes of one benchmark message to p. */
static void build_payload(uint8_t *p, char kind, uint32_t id, uint64_t seq, uint64_t ts)
{
    memcpy(p, tmpl_for(id, seq), G.size);
    uint8_t *h = p + G.hdr_off;
    h[0] = 'R';
    h[1] = 'B';
    h[2] = (uint8_t)kind;
    h[3] = ':';
    put_hex(h + PL_ID, id, 8);
    h[PL_SEQ - 1] = ':';
    put_hex(h + PL_SEQ, seq, 16);
    h[PL_TS - 1] = ':';
    put_hex(h + PL_TS, ts, 16);
    h[PL_HDR - 1] = ';';
}

static const uint8_t pmd_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* Raw-deflates G.sbuf[0..n) into G.zbuf as one permessage-deflate message
 * (deflateReset first: no context takeover; the trailing 00 00 ff ff of the
 * sync flush stripped). Returns the compressed length. */
static size_t deflate_msg(int wbits, size_t n)
{
    z_stream *z = &G.zout;
    if (G.zout_init && G.zout_wbits != wbits) { /* only if servers differ; never per message */
        deflateEnd(z);
        G.zout_init = false;
    }
    if (!G.zout_init) {
        memset(z, 0, sizeof *z);
        if (deflateInit2(z, CLIENT_Z_LEVEL, Z_DEFLATED, -wbits, CLIENT_Z_MEMLEVEL,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            die("deflateInit2 failed");
        G.zout_init = true;
        G.zout_wbits = wbits;
    } else if (deflateReset(z) != Z_OK) {
        die("deflateReset failed");
    }
    z->next_in = G.sbuf;
    z->avail_in = (uInt)n;
    size_t have = 0;
    for (;;) {
        if (G.zcap - have < 64u)
            grow(&G.zbuf, &G.zcap, have + 64u);
        size_t room = G.zcap - have;
        if (room > UINT_MAX)
            room = UINT_MAX;
        z->next_out = G.zbuf + have;
        z->avail_out = (uInt)room;
        int r = deflate(z, Z_SYNC_FLUSH);
        if (r != Z_OK && r != Z_BUF_ERROR)
            die("deflate failed (%d)", r);
        have += room - z->avail_out;
        if (z->avail_out != 0) /* all input consumed and the flush completed */
            break;
    }
    if (have < 4u || memcmp(G.zbuf + have - 4u, pmd_tail, 4) != 0)
        die("deflate output does not end in 00 00 ff ff");
    return have - 4u;
}

/* Appends one benchmark message frame (compressed if negotiated and
 * --deflate sends compressed). */
static void send_bench_msg(conn *c, char kind, uint32_t id, uint64_t seq, uint64_t ts)
{
    uint8_t key[4];
    if (c->pmd && G.deflate_send) {
        build_payload(G.sbuf, kind, id, seq, ts);
        size_t zn = deflate_msg(c->pmd_cwb, G.size);
        uint8_t *p = frame_begin(c, 0x1u, 0x40u, zn, key);
        memcpy(p, G.zbuf, zn);
        frame_end(c, p, zn, key);
        G.msgs_z_out++;
        G.z_out_plain += G.size;
        G.z_out_bytes += zn;
        return;
    }
    uint8_t *p = frame_begin(c, 0x1u, 0u, G.size, key);
    build_payload(p, kind, id, seq, ts);
    frame_end(c, p, G.size, key);
}

/* Finds and decodes a benchmark payload inside a received message; *pl_out
 * is where the payload starts (G.hdr_off bytes before the header). */
static bool parse_bench_msg(const uint8_t *m, size_t n, char kind, uint64_t *id, uint64_t *seq,
                            uint64_t *ts, const uint8_t **pl_out)
{
    const char mark[4] = {'R', 'B', kind, ':'};
    const uint8_t *p = memmem(m, n, mark, 4);
    if (!p || (size_t)(p - m) < G.hdr_off || (size_t)(m + n - p) < G.size - G.hdr_off)
        return false;
    if (p[PL_SEQ - 1] != ':' || p[PL_TS - 1] != ':' || p[PL_HDR - 1] != ';')
        return false;
    if (!get_hex(p + PL_ID, 8, id) || !get_hex(p + PL_SEQ, 16, seq) || !get_hex(p + PL_TS, 16, ts))
        return false;
    *pl_out = p - G.hdr_off;
    return true;
}

/* The payload at pl (found by parse_bench_msg) matches its template outside
 * the header. */
static bool body_ok(const uint8_t *pl, uint64_t id, uint64_t seq)
{
    const uint8_t *t = tmpl_for(id, seq);
    size_t tail = G.hdr_off + PL_HDR;
    return memcmp(pl, t, G.hdr_off) == 0 && memcmp(pl + tail, t + tail, G.size - tail) == 0;
}

/* ------------------------------------------------------------------------ */
/* Benchmark logic                                                           */

static void echo_send(conn *c)
{
    if (c->state != ST_OPEN || c->outstanding)
        return;
    c->seq++;
    c->sent_ts = G.now;
    c->outstanding = true;
    G.outstanding++;
    G.sent++;
    if (G.message) {
        /* Request/response against an object (e.g. {"op":"increment"} to a
         * counter): a fixed message, and any reply completes the round trip. */
        size_t len = strlen(G.message);
        uint8_t key[4];
        uint8_t *p = frame_begin(c, 0x1u, 0u, len, key);
        memcpy(p, G.message, len);
        frame_end(c, p, len, key);
        return;
    }
    send_bench_msg(c, 'E', c->id, c->seq, c->sent_ts);
}

static void on_echo_msg(conn *c, const uint8_t *m, size_t n)
{
    uint64_t id, seq, ts;
    const uint8_t *p;
    if (G.message) {
        if (!c->outstanding) {
            G.mismatched++;
            return;
        }
        ts = c->sent_ts;
        c->outstanding = false;
        G.outstanding--;
        if (ts >= G.warm_end && G.now <= G.run_end) {
            h_record(&G.h, G.now - ts);
            G.rt_count++;
        }
        if (G.sending)
            echo_send(c);
        return;
    }
    if (!parse_bench_msg(m, n, 'E', &id, &seq, &ts, &p)) {
        G.malformed++;
        return;
    }
    if (id != c->id || !c->outstanding || seq != c->seq || ts != c->sent_ts) {
        G.mismatched++;
        return;
    }
    if (!body_ok(p, id, seq))
        G.corrupt++;
    c->outstanding = false;
    G.outstanding--;
    if (ts >= G.warm_end && G.now <= G.run_end) {
        h_record(&G.h, G.now - ts);
        G.rt_count++;
    }
    if (G.sending)
        echo_send(c);
}

static void on_fanout_msg(conn *c, const uint8_t *m, size_t n)
{
    uint64_t pub, seq, ts;
    const uint8_t *p;
    if (!parse_bench_msg(m, n, 'F', &pub, &seq, &ts, &p)) {
        G.malformed++;
        return;
    }
    uint32_t np = G.publishers;
    if (pub >= (uint64_t)G.rooms * np || pub / np != c->room || seq == 0 ||
        (c->is_pub && pub % np == c->member)) {
        G.unexpected++; /* wrong room, or our own message echoed back */
        return;
    }
    if (!body_ok(p, pub, seq))
        G.corrupt++; /* still counted below: the header identifies it */
    struct trk *t = &c->trk[pub % np];
    if (seq > t->max) {
        uint64_t sh = seq - t->max;
        t->win = (sh >= 64u ? 0u : t->win << sh) | 1u;
        t->max = seq;
    } else {
        uint64_t d = t->max - seq;
        if (d < 64u) {
            uint64_t bit = 1ull << d;
            if (t->win & bit) {
                G.dups++;
                return;
            }
            t->win |= bit;
        }
        G.reordered++; /* arrived after a higher seq (older than 64: assumed unique) */
    }
    G.delivered++;
    G.delivered_x += c->cross;
    if (ts >= G.warm_end) {
        h_record(c->cross ? &G.hx : &G.h, G.now > ts ? G.now - ts : 0u);
        if (G.now <= G.run_end)
            G.delivered_win++;
    }
}

static void on_message(conn *c, const uint8_t *m, size_t n)
{
    if (c->state != ST_OPEN)
        return; /* late data after we sent close */
    if (G.mode == MODE_ECHO)
        on_echo_msg(c, m, n);
    else
        on_fanout_msg(c, m, n);
}

static void fanout_publish(conn *c, uint32_t pubid)
{
    if (c->state != ST_OPEN || c->wlen - c->woff > WBUF_LIMIT) {
        G.send_skipped++;
        return;
    }
    c->seq++;
    G.sent++;
    G.expected += G.members - 1u;
    send_bench_msg(c, 'F', pubid, c->seq, G.now);
}

/* Arms the timer for the next scheduled message (absolute, one-shot), so
 * sends follow the schedule t0 + k/rate instead of a drifting tick. */
static void arm_timer(void)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (G.publishing && G.sched < G.total_msgs) {
        uint64_t due = G.t_run0 + (uint64_t)ceil((double)G.sched * 1e9 / G.rate);
        uint64_t min = G.now + 20000u; /* never spin faster than 50k wakeups/s */
        if (due < min)
            due = min;
        its.it_value.tv_sec = (time_t)(due / NS_PER_S);
        its.it_value.tv_nsec = (long)(due % NS_PER_S);
    }
    if (timerfd_settime(G.tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        die("timerfd_settime: %s", strerror(errno));
}

static void publish_due(void)
{
    if (!G.publishing)
        return;
    uint64_t t = G.now < G.run_end ? G.now : G.run_end;
    uint64_t due = (uint64_t)((double)(t - G.t_run0) * G.rate / 1e9) + 1u;
    if (due > G.total_msgs)
        due = G.total_msgs;
    while (G.sched < due) {
        uint32_t q = (uint32_t)(G.sched % G.npubs);
        G.sched++;
        /* interleave rooms: q -> room q % R, publisher q / R */
        uint32_t room = q % G.rooms, j = q / G.rooms;
        fanout_publish(&G.c[G.pubs[room * G.publishers + j]], room * G.publishers + j);
    }
}

/* ------------------------------------------------------------------------ */
/* Frame parsing                                                             */

static void proto_error(conn *c, const char *what)
{
    G.proto_errors++;
    if (c->state == ST_OPEN) {
        ws_send_close(c, 1002);
        conn_flush(c);
    }
    char buf[160];
    snprintf(buf, sizeof buf, "protocol error: %s", what);
    if (c->state == ST_CLOSING) /* still an error worth reporting */
        note_error(c, "%s", buf);
    conn_end(c, buf);
}

static void on_close_frame(conn *c, const uint8_t *p, size_t len)
{
    if (c->state == ST_CLOSING) {
        conn_end(c, "closed");
        return;
    }
    unsigned code = len >= 2u ? (unsigned)p[0] << 8 | p[1] : 1005u;
    int rl = len > 2u ? (int)(len - 2u > 80u ? 80u : len - 2u) : 0;
    char buf[160];
    snprintf(buf, sizeof buf, "server sent close (code %u%s%.*s)", code, rl ? ", " : "", rl,
             rl ? (const char *)p + 2 : "");
    ws_send_close(c, len >= 2u ? code : 1000u);
    conn_flush(c);
    conn_end(c, buf);
}

/* Inflates one permessage-deflate message (payload + 00 00 ff ff) into
 * G.ibuf with the shared z_stream (no context takeover: inflateReset first).
 * Returns NULL and the length in *out_len, or an error. */
static const char *inflate_msg(const uint8_t *in, size_t n, size_t *out_len)
{
    z_stream *z = &G.zin;
    if (inflateReset(z) != Z_OK)
        return "inflateReset failed";
    z->next_in = in;
    z->avail_in = (uInt)n; /* n <= MAX_FRAME */
    bool tail = false;
    size_t have = 0;
    for (;;) {
        if (z->avail_in == 0 && !tail) {
            z->next_in = pmd_tail;
            z->avail_in = 4;
            tail = true;
        }
        if (have == G.icap) {
            if (G.icap >= MAX_FRAME)
                return "inflated message too large";
            grow(&G.ibuf, &G.icap, G.icap + 1u);
        }
        size_t room = G.icap - have;
        if (room > MAX_FRAME - have)
            room = MAX_FRAME - have;
        z->next_out = G.ibuf + have;
        z->avail_out = (uInt)room;
        uInt in_before = z->avail_in;
        int r = inflate(z, Z_SYNC_FLUSH);
        have += room - z->avail_out;
        if (r == Z_STREAM_END) /* a final block: the message ends here */
            break;
        if (r == Z_DATA_ERROR || r == Z_NEED_DICT)
            return "invalid deflate data";
        if (r != Z_OK && r != Z_BUF_ERROR)
            return "inflate failed";
        if (tail && z->avail_in == 0 && z->avail_out != 0)
            break; /* all input consumed, all output flushed */
        if (z->avail_out == room && z->avail_in == in_before)
            return "inflate made no progress"; /* avail_in > 0 here: truncated data */
        if (have >= MAX_FRAME && z->avail_out == 0)
            return "inflated message too large";
    }
    *out_len = have;
    return NULL;
}

/* A complete data message arrived (payload as received). */
static void on_data(conn *c, const uint8_t *m, size_t n, bool compressed)
{
    G.msgs_in++;
    if (!compressed) {
        on_message(c, m, n);
        return;
    }
    size_t out;
    const char *err = inflate_msg(m, n, &out);
    if (err) {
        proto_error(c, err);
        return;
    }
    G.msgs_z_in++;
    G.z_in_bytes += n;
    G.z_infl_bytes += out;
    on_message(c, G.ibuf, out);
}

static size_t ws_parse(conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= 2u) {
        uint8_t b0 = p[off], b1 = p[off + 1];
        size_t hdr = 2;
        uint64_t len = b1 & 0x7fu;
        if (b1 & 0x80u) {
            proto_error(c, "masked server frame");
            return off;
        }
        if (b0 & 0x30u) {
            proto_error(c, "RSV2/RSV3 set");
            return off;
        }
        if (len == 126u) {
            if (n - off < 4u)
                break;
            len = (uint64_t)p[off + 2] << 8 | p[off + 3];
            hdr = 4;
        } else if (len == 127u) {
            if (n - off < 10u)
                break;
            len = 0;
            for (unsigned i = 0; i < 8; i++)
                len = len << 8 | p[off + 2 + i];
            hdr = 10;
        }
        if (len > MAX_FRAME) {
            proto_error(c, "frame too large");
            return off;
        }
        if (n - off - hdr < len)
            break;
        uint8_t *pl = p + off + hdr;
        unsigned op = b0 & 0x0fu;
        bool fin = (b0 & 0x80u) != 0;
        off += hdr + (size_t)len;
        if (op >= 0x8u && (!fin || len > 125u)) {
            proto_error(c, "bad control frame");
            return off;
        }
        bool rsv1 = (b0 & 0x40u) != 0;
        if (rsv1 && (!c->pmd || (op != 0x1u && op != 0x2u))) {
            proto_error(c, !c->pmd ? "RSV1 set without permessage-deflate"
                                   : "RSV1 set on a control or continuation frame");
            return off;
        }
        switch (op) {
        case 0x1:
        case 0x2:
            if (c->in_frag) {
                proto_error(c, "data frame inside fragmented message");
                return off;
            }
            if (fin) {
                on_data(c, pl, (size_t)len, rsv1);
            } else {
                c->in_frag = true;
                c->frag_z = rsv1;
                c->flen = 0;
                grow(&c->frag, &c->fcap, (size_t)len);
                memcpy(c->frag, pl, (size_t)len);
                c->flen = (size_t)len;
            }
            break;
        case 0x0:
            if (!c->in_frag) {
                proto_error(c, "unexpected continuation frame");
                return off;
            }
            if (c->flen + len > MAX_FRAME) {
                proto_error(c, "message too large");
                return off;
            }
            grow(&c->frag, &c->fcap, c->flen + (size_t)len);
            memcpy(c->frag + c->flen, pl, (size_t)len);
            c->flen += (size_t)len;
            if (fin) {
                c->in_frag = false;
                on_data(c, c->frag, c->flen, c->frag_z);
            }
            break;
        case 0x8:
            on_close_frame(c, pl, (size_t)len);
            return off;
        case 0x9:
            G.pings++;
            if (c->state == ST_OPEN)
                ws_send(c, 0xAu, pl, (size_t)len);
            break;
        case 0xA:
            break;
        default:
            proto_error(c, "unknown opcode");
            return off;
        }
        if (c->fd < 0)
            return off;
    }
    return off;
}

/* ------------------------------------------------------------------------ */
/* Connecting and handshake                                                  */

static void conn_start(conn *c)
{
    c->state = ST_CONNECTING;
    G.inflight++;
    const endpoint *e = c->cross ? &G.epx : &G.ep0;
    int fd = socket(e->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_errno(c, "socket", errno);
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = c->id;
    if (epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        conn_errno(c, "epoll_ctl", errno);
        return;
    }
    c->ev_out = true;
    if (connect(fd, (const struct sockaddr *)&e->addr, e->addrlen) < 0 && errno != EINPROGRESS)
        conn_errno(c, "connect", errno);
}

static void start_more(void)
{
    while (G.connecting && G.inflight < G.max_hs && G.next_start < G.conns)
        conn_start(&G.c[G.next_start++]);
}

static void conn_on_connect(conn *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        err = errno;
    if (err) {
        conn_errno(c, "connect", err);
        return;
    }
    uint8_t raw[16];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        uint64_t a = rng_next(), b = rng_next();
        memcpy(raw, &a, 8);
        memcpy(raw + 8, &b, 8);
    }
    b64_encode(raw, sizeof raw, c->key);
    char path[1100];
    if (G.mode == MODE_FANOUT || G.mode == MODE_SINK)
        snprintf(path, sizeof path, "%s-%" PRIu32, G.ep0.path, c->room);
    else if (G.objects)
        snprintf(path, sizeof path, "%s-%" PRIu32, G.ep0.path, c->id % G.objects);
    else
        snprintf(path, sizeof path, "%s", G.ep0.path);
    uint8_t *p = wbuf_reserve(c, 2048);
    int n = snprintf((char *)p, 2048,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s"
                     "User-Agent: roomd-bench\r\n"
                     "\r\n",
                     path, (c->cross ? &G.epx : &G.ep0)->authority, c->key,
                     G.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                               : "");
    if (n < 0 || n >= 2048) {
        conn_end(c, "request too long");
        return;
    }
    c->wlen += (size_t)n;
    c->state = ST_HANDSHAKE;
    conn_flush(c); /* clears EPOLLOUT once written */
}

static bool header_has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',')
            e++;
        const char *te = e;
        while (te > v && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if ((size_t)(te - v) == tl && strncasecmp(v, tok, tl) == 0)
            return true;
        v = e;
    }
    return false;
}

static char *trim(char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        v[--n] = '\0';
    return v;
}

/* Checks the server's Sec-WebSocket-Extensions answer to our offer
 * "permessage-deflate; client_max_window_bits" and sets c->pmd and
 * c->pmd_cwb. NULL if ok. */
static const char *pmd_check(conn *c, char *v, char *err, size_t errlen)
{
    if (!G.deflate)
        return "server negotiated an extension we did not offer";
    if (c->pmd)
        return "more than one Sec-WebSocket-Extensions header";
    if (strchr(v, ','))
        return "server accepted more than one extension";
    char *save = NULL;
    char *tok = strtok_r(v, ";", &save);
    if (!tok || strcasecmp(trim(tok), "permessage-deflate") != 0) {
        snprintf(err, errlen, "server negotiated an extension we did not offer: '%.60s'",
                 tok ? tok : "");
        return err;
    }
    bool snct = false, cnct = false, smwb = false, cmwb = false;
    unsigned cwb = 15;
    while ((tok = strtok_r(NULL, ";", &save)) != NULL) {
        char *val = strchr(tok, '=');
        if (val) {
            *val++ = '\0';
            val = trim(val);
            size_t vl = strlen(val);
            if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
                val[vl - 1] = '\0';
                val++;
            }
        }
        char *name = trim(tok);
        bool *seen = NULL;
        if (strcasecmp(name, "server_no_context_takeover") == 0)
            seen = &snct;
        else if (strcasecmp(name, "client_no_context_takeover") == 0)
            seen = &cnct;
        else if (strcasecmp(name, "server_max_window_bits") == 0)
            seen = &smwb;
        else if (strcasecmp(name, "client_max_window_bits") == 0)
            seen = &cmwb;
        if (!seen) {
            snprintf(err, errlen, "unknown permessage-deflate parameter '%.40s'", name);
            return err;
        }
        if (*seen) {
            snprintf(err, errlen, "repeated permessage-deflate parameter '%.40s'", name);
            return err;
        }
        *seen = true;
        bool takes_value = seen == &smwb || seen == &cmwb;
        if (!takes_value) {
            if (val) {
                snprintf(err, errlen, "permessage-deflate parameter '%.40s' takes no value", name);
                return err;
            }
            continue;
        }
        char *end;
        unsigned long b = val ? strtoul(val, &end, 10) : 0;
        if (!val || end == val || *end || b < 8 || b > 15) {
            snprintf(err, errlen, "permessage-deflate %.40s needs a value in 8..15", name);
            return err;
        }
        if (seen == &cmwb)
            cwb = (unsigned)b;
    }
    /* One inflate stream serves every connection only if each message
     * stands alone. */
    if (!snct)
        return "server kept server context takeover; roomd-bench needs server_no_context_takeover";
    (void)cnct; /* we compress every message alone either way */
    if (cwb < 9 && G.deflate_send) /* zlib's raw deflate has no 256-byte window */
        return "server asked for client_max_window_bits=8, which zlib cannot produce";
    c->pmd = true;
    c->pmd_cwb = (uint8_t)cwb;
    return NULL;
}

/* Validates the HTTP response (NUL-terminated header block). NULL if ok. */
static const char *hs_check(conn *c, char *hdr, char *err, size_t errlen)
{
    char *save = NULL;
    char *line = strtok_r(hdr, "\r\n", &save);
    if (!line)
        return "empty response";
    if (strncmp(line, "HTTP/1.1 101", 12) != 0 || (line[12] != ' ' && line[12] != '\0')) {
        snprintf(err, errlen, "expected 101, got '%.80s'", line);
        return err;
    }
    bool up = false, co = false, acc = false;
    char want[29];
    ws_accept_for(c->key, want);
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            v[--vl] = '\0';
        if (strcasecmp(line, "upgrade") == 0) {
            up = strcasecmp(v, "websocket") == 0;
        } else if (strcasecmp(line, "connection") == 0) {
            co = header_has_token(v, "upgrade");
        } else if (strcasecmp(line, "sec-websocket-accept") == 0) {
            acc = strcmp(v, want) == 0;
            if (!acc) {
                snprintf(err, errlen, "bad Sec-WebSocket-Accept '%.40s' (want %s)", v, want);
                return err;
            }
        } else if (strcasecmp(line, "sec-websocket-extensions") == 0 && vl) {
            const char *bad = pmd_check(c, v, err, errlen);
            if (bad)
                return bad;
        } else if (strcasecmp(line, "sec-websocket-protocol") == 0 && vl) {
            return "server selected a subprotocol we did not offer";
        }
    }
    if (!up)
        return "missing 'Upgrade: websocket'";
    if (!co)
        return "missing 'Connection: Upgrade'";
    if (!acc)
        return "missing Sec-WebSocket-Accept";
    return NULL;
}

static void conn_read_handshake(conn *c)
{
    grow(&c->pend, &c->pcap, HS_MAX + 1u);
    ssize_t n;
    do
        n = recv(c->fd, c->pend + c->plen, HS_MAX - c->plen, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_errno(c, "recv", errno);
        return;
    }
    if (n == 0) {
        conn_end(c, "connection closed during handshake");
        return;
    }
    G.now = now_ns();
    c->plen += (size_t)n;
    uint8_t *end = memmem(c->pend, c->plen, "\r\n\r\n", 4);
    if (!end) {
        if (c->plen >= HS_MAX)
            conn_end(c, "response headers too large");
        return;
    }
    size_t hl = (size_t)(end - c->pend) + 4u;
    uint8_t save = c->pend[hl];
    c->pend[hl] = '\0';
    char err[200];
    const char *bad = hs_check(c, (char *)c->pend, err, sizeof err);
    c->pend[hl] = save;
    if (bad) {
        char why[240];
        snprintf(why, sizeof why, "handshake: %s", bad);
        conn_end(c, why);
        return;
    }
    c->state = ST_OPEN;
    G.inflight--;
    G.n_opened++;
    if (c->pmd)
        G.n_pmd++;
    G.t_conn_last = G.now;
    size_t rest = c->plen - hl;
    c->plen = 0;
    if (!rest) { /* release the handshake buffer; frames use the shared one */
        free(c->pend);
        c->pend = NULL;
        c->pcap = 0;
        return;
    }
    memmove(c->pend, c->pend + hl, rest);
    {
        size_t used = ws_parse(c, c->pend, rest);
        if (c->fd >= 0) {
            memmove(c->pend, c->pend + used, rest - used);
            c->plen = rest - used;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

static void conn_read(conn *c)
{
    for (int iter = 0; iter < MAX_READS; iter++) {
        size_t have = c->plen;
        bool direct = have >= DIRECT_THRESHOLD;
        uint8_t *base;
        if (direct) {
            grow(&c->pend, &c->pcap, have + RBUF_SIZE);
            base = c->pend;
        } else {
            if (have)
                memcpy(G.rbuf, c->pend, have);
            base = G.rbuf;
        }
        ssize_t n = recv(c->fd, base + have, RBUF_SIZE, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_errno(c, "recv", errno);
            return;
        }
        if (n == 0) {
            conn_end(c, "server closed TCP connection without close frame");
            return;
        }
        G.now = now_ns();
        G.bytes_in += (uint64_t)n;
        G.recvs++;
        size_t total = have + (size_t)n;
        size_t used = ws_parse(c, base, total);
        if (c->fd < 0)
            return;
        size_t left = total - used;
        if (direct) {
            if (used && left)
                memmove(c->pend, c->pend + used, left);
        } else if (left) {
            grow(&c->pend, &c->pcap, left);
            memcpy(c->pend, base + used, left);
        }
        c->plen = left;
        if ((size_t)n < RBUF_SIZE)
            return;
    }
}

/* ------------------------------------------------------------------------ */
/* Event loop                                                                */

/* Waits for events until deadline (at most 100 ms at a time, so the
 * callers' periodic checks run); G.now is the time it returned. */
static int wait_events(uint64_t deadline, struct epoll_event evs[MAX_EVENTS])
{
    uint64_t t = now_ns();
    int timeout = 0;
    if (deadline > t) {
        uint64_t ms = (deadline - t + 999999u) / 1000000u;
        timeout = ms > 100u ? 100 : (int)ms;
    }
    int n = epoll_wait(G.ep, evs, MAX_EVENTS, timeout);
    G.waits++;
    if (n < 0) {
        if (errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        n = 0;
    }
    G.now = now_ns();
    return n;
}

static void loop_once(uint64_t deadline)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = wait_events(deadline, evs);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == TIMER_TAG) {
            uint64_t exp;
            if (read(G.tfd, &exp, sizeof exp) < 0) {
                /* EAGAIN: spurious wakeup; nothing to do */
            }
            continue;
        }
        conn *c = &G.c[evs[i].data.u64];
        if (c->fd < 0)
            continue;
        uint32_t e = evs[i].events;
        if (c->state == ST_CONNECTING) {
            conn_on_connect(c);
            continue;
        }
        if (e & EPOLLOUT) {
            conn_flush(c);
            if (c->fd < 0)
                continue;
        }
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
            if (c->state == ST_HANDSHAKE)
                conn_read_handshake(c);
            else
                conn_read(c);
        }
    }
    if (G.publishing) {
        G.now = now_ns();
        publish_due();
        arm_timer();
    }
    flush_dirty();
    start_more();
}

static bool timed_out(uint64_t deadline)
{
    return now_ns() >= deadline;
}

static uint64_t s_to_ns(double s)
{
    return (uint64_t)(s * 1e9);
}

static void progress(uint64_t *next, uint64_t t0)
{
    if (G.quiet || G.now < *next)
        return;
    double el = (double)(G.now - t0) / 1e9;
    if (G.mode == MODE_ECHO) {
        fprintf(stderr, "[%6.1fs] %" PRIu64 " round trips/s, %u open\n", el, G.sent - G.prog_a,
                G.n_opened - G.n_lost);
        G.prog_a = G.sent;
    } else if (G.mode == MODE_SINK) {
        fprintf(stderr, "[%6.1fs] received %" PRIu64 " msg/s\n", el, G.delivered - G.prog_b);
        G.prog_b = G.delivered;
    } else {
        fprintf(stderr, "[%6.1fs] sent %" PRIu64 "/s, delivered %" PRIu64 "/s\n", el,
                G.sent - G.prog_a, G.delivered - G.prog_b);
        G.prog_a = G.sent;
        G.prog_b = G.delivered;
    }
    *next += NS_PER_S;
}

/* ------------------------------------------------------------------------ */
/* Measured window: CPU of --cpu-pids (utime + stime from /proc/PID/stat, all */
/* threads), our own CPU, bytes on the wire                                   */

static bool proc_cpu_ticks(pid_t pid, uint64_t *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1u);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may contain spaces and ')' */
    if (!p)
        return false;
    /* after "pid (comm)": field 3 is state; utime is field 14, stime 15 */
    unsigned long long ut = 0, st = 0;
    unsigned field = 3;
    char *save = NULL;
    for (char *t = strtok_r(p + 1, " ", &save); t; t = strtok_r(NULL, " ", &save), field++) {
        if (field == 14) {
            ut = strtoull(t, NULL, 10);
        } else if (field == 15) {
            st = strtoull(t, NULL, 10);
            *ticks = ut + st;
            return true;
        }
    }
    return false;
}

/* ns this process has spent runnable but waiting for a CPU (the second field
 * of /proc/self/schedstat); 0 if the kernel does not say. The window minus
 * our CPU time minus this is the time we were blocked with nothing to do. */
static uint64_t self_runq_ns(void)
{
    char buf[128];
    int fd = open("/proc/self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1u);
    close(fd);
    unsigned long long run, wait;
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return sscanf(buf, "%llu %llu", &run, &wait) == 2 ? (uint64_t)wait : 0;
}

static uint64_t self_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Opens the measured window once G.now reaches warm_end. */
static void window_check(void)
{
    if (G.win_started || G.now < G.warm_end)
        return;
    G.win_started = true;
    for (uint32_t i = 0; i < G.ncpu_pids; i++)
        G.cpu_ok[i] = proc_cpu_ticks(G.cpu_pids[i], &G.cpu0[i]);
    G.win_ccpu0 = self_cpu_ns();
    G.win_rq0 = self_runq_ns();
    G.win_bin0 = G.bytes_in;
    G.win_bout0 = G.bytes_out;
    G.win_rc0 = G.recvs;
    G.win_msg0 = G.msgs_in;
    G.win_t0 = now_ns();
}

static void window_close(void)
{
    if (!G.win_started || G.win_done)
        return;
    G.win_done = true;
    G.win_t1 = now_ns();
    G.win_bin1 = G.bytes_in;
    G.win_bout1 = G.bytes_out;
    G.win_rc1 = G.recvs;
    G.win_msg1 = G.msgs_in;
    G.win_ccpu1 = self_cpu_ns();
    G.win_rq1 = self_runq_ns();
    for (uint32_t i = 0; i < G.ncpu_pids; i++)
        G.cpu_ok[i] = G.cpu_ok[i] && proc_cpu_ticks(G.cpu_pids[i], &G.cpu1[i]);
}

/* CPU seconds of --cpu-pids[i] in the window; -1 if unknown. */
static double window_cpu_s(uint32_t i)
{
    static long tck;
    if (!tck)
        tck = sysconf(_SC_CLK_TCK);
    if (!G.win_done || !G.cpu_ok[i] || G.cpu1[i] < G.cpu0[i] || tck <= 0)
        return -1.0;
    return (double)(G.cpu1[i] - G.cpu0[i]) / (double)tck;
}

/* ------------------------------------------------------------------------ */
/* Phases                                                                    */

/* The run starts now: warmup, then the measured --duration. */
static void start_run_clock(void)
{
    G.now = G.t_run0 = now_ns();
    G.warm_end = G.t_run0 + s_to_ns(G.warmup);
    G.run_end = G.warm_end + s_to_ns(G.duration);
}

/* The loop until the run's end: opens the measured window at warm_end,
 * progress once a second. */
static void run_until_end(void)
{
    uint64_t next = G.t_run0 + NS_PER_S;
    while (!g_stop && !timed_out(G.run_end)) {
        loop_once(G.run_end);
        window_check();
        progress(&next, G.t_run0);
    }
}

static void phase_connect(void)
{
    G.connecting = true;
    G.t_conn0 = G.t_conn_last = now_ns();
    uint64_t deadline = G.t_conn0 + s_to_ns(G.connect_timeout);
    start_more();
    while (G.n_opened + G.n_failed < G.conns && !g_stop && !timed_out(deadline))
        loop_once(deadline);
    G.connecting = false;
    for (uint32_t i = 0; i < G.conns; i++) {
        conn *c = &G.c[i];
        if (c->state == ST_IDLE || c->state == ST_CONNECTING || c->state == ST_HANDSHAKE)
            conn_end(c, g_stop ? "interrupted" : "connect timeout");
    }
}

static void phase_echo(void)
{
    start_run_clock();
    G.sending = true;
    for (uint32_t i = 0; i < G.conns; i++)
        echo_send(&G.c[i]);
    flush_dirty();
    run_until_end();
    window_close();
    G.sending = false;
    G.now = now_ns();
    uint64_t end = G.now < G.run_end ? G.now : G.run_end;
    G.measured_s = end > G.warm_end ? (double)(end - G.warm_end) / 1e9 : 0.0;
    uint64_t dl = now_ns() + s_to_ns(G.drain_timeout);
    while (G.outstanding && !timed_out(dl))
        loop_once(dl);
}

static void phase_fanout(void)
{
    uint64_t settle_end = now_ns() + s_to_ns(G.settle);
    while (!g_stop && !timed_out(settle_end))
        loop_once(settle_end);
    start_run_clock();
    G.total_msgs = (uint64_t)llround((G.warmup + G.duration) * G.rate);
    G.sched = 0;

    G.publishing = true;
    window_check(); /* with --warmup 0 the window starts with message 0 */
    publish_due(); /* message 0 goes out at t=0 */
    arm_timer();
    flush_dirty();
    run_until_end();
    G.now = now_ns();
    if (!g_stop)
        publish_due(); /* whatever is still due up to run_end */
    window_close();
    G.publishing = false;
    arm_timer(); /* disarms */
    flush_dirty();
    uint64_t end = G.now < G.run_end ? G.now : G.run_end;
    G.pub_s = end > G.t_run0 ? (double)(end - G.t_run0) / 1e9 : 0.0;
    G.measured_s = end > G.warm_end ? (double)(end - G.warm_end) / 1e9 : 0.0;

    uint64_t dl = now_ns() + s_to_ns(G.drain_timeout);
    while (G.delivered < G.expected && !timed_out(dl))
        loop_once(dl);
}

static void phase_close(void)
{
    for (uint32_t i = 0; i < G.conns; i++) {
        conn *c = &G.c[i];
        if (c->state != ST_OPEN)
            continue;
        c->state = ST_CLOSING;
        G.n_closing++;
        ws_send_close(c, 1000);
    }
    flush_dirty();
    uint64_t dl = now_ns() + s_to_ns(G.drain_timeout);
    while (G.n_closing && !timed_out(dl))
        loop_once(dl);
    for (uint32_t i = 0; i < G.conns; i++) {
        conn *c = &G.c[i];
        if (c->state == ST_CLOSING) {
            G.n_close_timeout++;
            G.n_closing--;
            c->state = ST_DONE;
        }
        conn_close_fd(c);
    }
}

/* ------------------------------------------------------------------------ */
/* sink: the client's own receive capacity                                   */
/*                                                                           */
/* A forked child plays the server: it listens on an ephemeral loopback port, */
/* answers the upgrades (path <prefix>-<room>), and then writes pre-framed    */
/* fan-out messages as fast as it can: per room it builds one batch of        */
/* --batch messages (publishers of the room interleaved, one clock read per   */
/* batch) and writes that same batch to every member, as a fan-out server     */
/* would, with blocking send()s. This process receives them on the real       */
/* fanout path (ws_parse -> on_fanout_msg: order, loss, duplicate and body    */
/* checks, latency histogram) and reports messages/s. The sender's CPU is     */
/* reported too: a sender below 100 % of its core means the receiver is the   */
/* limit. Pin the two apart, e.g. taskset -c 1 roomd-bench sink               */
/* --sender-cpu 0.                                                            */

typedef struct { /* child -> parent after the sending phase */
    uint64_t ok, cpu_ns, active_ns, sends, msgs, expected, bytes;
} sink_result;

static struct {
    pid_t pid;
    int go_fd, res_fd; /* parent ends of the two pipes */
    sink_result res;
    size_t res_have;
} SK;

/* Server frame header (unmasked, FIN, text) for a payload of len bytes;
 * returns its length. */
static size_t server_frame_hdr(uint8_t *p, size_t len)
{
    p[0] = 0x81u;
    if (len < 126u) {
        p[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffffu) {
        p[1] = 126u;
        p[2] = (uint8_t)(len >> 8);
        p[3] = (uint8_t)len;
        return 4;
    }
    p[1] = 127u;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (uint8_t)((uint64_t)len >> (8 * (7 - i)));
    return 10;
}

/* Reads (out: sends, fd is a socket) exactly n bytes on a blocking fd;
 * SO_RCVTIMEO/SO_SNDTIMEO bound each call. */
static bool io_full(int fd, void *buf, size_t n, bool out)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = out ? send(fd, p, n, MSG_NOSIGNAL) : read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static bool read_full(int fd, void *buf, size_t n)
{
    return io_full(fd, buf, n, false);
}

static bool write_full(int fd, const void *buf, size_t n)
{
    return io_full(fd, (void *)buf, n, true); /* only read from when out */
}

/* Child: answers one upgrade request on fd; returns the room or -1. */
static int sink_accept_one(int fd)
{
    char req[HS_MAX + 1];
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have == HS_MAX)
            return -1;
        ssize_t r = read(fd, req + have, HS_MAX - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        have += (size_t)r;
        req[have] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    /* "GET <prefix>-<room> HTTP/1.1": the room is the number after the last '-' */
    char *sp = strstr(req, " HTTP/1.1\r\n");
    char *key = strcasestr(req, "\r\nSec-WebSocket-Key: ");
    if (!sp || !key || strncmp(req, "GET /", 5) != 0)
        return -1;
    *sp = '\0';
    char *dash = strrchr(req, '-');
    char *rend;
    errno = 0;
    unsigned long room = dash ? strtoul(dash + 1, &rend, 10) : 0;
    if (!dash || errno || rend == dash + 1 || *rend || room >= G.rooms)
        return -1;
    key += 21;
    char *kend = strstr(key, "\r\n");
    if (!kend || kend - key >= 32)
        return -1;
    *kend = '\0';
    char acc[29], resp[256];
    ws_accept_for(key, acc);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    return write_full(fd, resp, (size_t)n) ? (int)room : -1;
}

/* Child: waits for the client's close frame on fd, answers it and closes.
 * The client sends nothing else here but control frames (<= 125 bytes,
 * masked), so anything longer ends the wait. */
static void sink_close_one(int fd)
{
    uint8_t h[6], skip[125];
    while (read_full(fd, h, 6)) { /* 2 header bytes + mask key */
        size_t len = h[1] & 0x7fu;
        if (len > 125u || !read_full(fd, skip, len))
            break;
        if ((h[0] & 0x0fu) == 0x8u) {
            static const uint8_t bye[4] = {0x88u, 0x02u, 0x03u, 0xe8u}; /* close 1000 */
            write_full(fd, bye, sizeof bye);
            break;
        }
    }
    close(fd);
}

/* Child: the whole sender. Never returns. */
__attribute__((noreturn)) static void sink_child(int lfd, int go_fd, int res_fd, int cpu)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* bounded by the parent's life */
    if (getppid() == 1)
        _exit(3);
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0) {
            fprintf(stderr, "roomd-bench: sink sender: sched_setaffinity(%d): %s\n", cpu,
                    strerror(errno));
            _exit(3);
        }
    }
    uint32_t n = G.conns;
    int *fds = xcalloc(n, sizeof *fds);
    uint32_t *nroom = xcalloc(G.rooms, sizeof *nroom);
    uint32_t *room_of = xcalloc(n, sizeof *room_of);
    struct timeval tv = {5, 0};
    uint64_t deadline = now_ns() + s_to_ns(G.connect_timeout);
    uint32_t got = 0;
    while (got < n) {
        struct pollfd pf = {lfd, POLLIN, 0};
        uint64_t t = now_ns();
        if (t >= deadline || poll(&pf, 1, (int)((deadline - t) / 1000000u) + 1) <= 0)
            break;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int room = sink_accept_one(fd);
        if (room < 0) {
            close(fd);
            continue;
        }
        fds[got] = fd;
        room_of[got++] = (uint32_t)room;
        nroom[room]++;
    }
    close(lfd);
    /* the member fds of each room, contiguous */
    uint32_t *start = xcalloc(G.rooms + 1u, sizeof *start);
    for (uint32_t r = 0; r < G.rooms; r++)
        start[r + 1] = start[r] + nroom[r];
    int *byroom = xcalloc(n, sizeof *byroom);
    uint32_t *fill = xcalloc(G.rooms, sizeof *fill);
    for (uint32_t i = 0; i < got; i++) {
        uint32_t r = room_of[i];
        byroom[start[r] + fill[r]++] = fds[i];
    }

    uint64_t end_ns;
    if (!read_full(go_fd, &end_ns, sizeof end_ns))
        _exit(0); /* the parent gave up before the run */

    size_t hl = G.size < 126u ? 2u : G.size <= 0xffffu ? 4u : 10u;
    size_t fl = hl + G.size, blen = fl * G.batch;
    uint8_t *batch = xcalloc(blen, 1);
    for (uint32_t k = 0; k < G.batch; k++)
        server_frame_hdr(batch + k * fl, G.size);
    uint64_t *seq = xcalloc((size_t)G.rooms * G.publishers, sizeof *seq);
    sink_result res;
    memset(&res, 0, sizeof res);
    res.ok = 1;
    uint64_t cpu0 = self_cpu_ns(), t0 = now_ns(), t = t0;
    while (t < end_ns && res.ok) {
        for (uint32_t r = 0; r < G.rooms && res.ok; r++) {
            for (uint32_t k = 0; k < G.batch; k++) {
                uint32_t j = k % G.publishers, pub = r * G.publishers + j;
                build_payload(batch + k * fl + hl, 'F', pub, ++seq[pub], t);
            }
            res.msgs += G.batch;
            res.expected += (uint64_t)G.batch * nroom[r];
            for (uint32_t i = start[r]; i < start[r + 1]; i++) {
                if (!write_full(byroom[i], batch, blen)) {
                    fprintf(stderr, "roomd-bench: sink sender: send: %s\n", strerror(errno));
                    res.ok = 0; /* a partial batch: the receiver will count the loss */
                    break;
                }
                res.sends++;
                res.bytes += blen;
            }
            t = now_ns();
        }
    }
    res.active_ns = t - t0;
    res.cpu_ns = self_cpu_ns() - cpu0;
    if (write(res_fd, &res, sizeof res) != (ssize_t)sizeof res)
        _exit(3);
    for (uint32_t i = 0; i < got; i++)
        sink_close_one(byroom[i]);
    _exit(res.ok ? 0 : 1);
}

/* Parent: the listener, the child, the pipes; the clients then connect to
 * the child through the ordinary connect phase. */
static void sink_start(int cpu)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
        die("sink listener: %s", strerror(errno));
    memcpy(&G.ep0.addr, &a, sizeof a);
    G.ep0.addrlen = sizeof a;
    snprintf(G.ep0.host, sizeof G.ep0.host, "127.0.0.1");
    snprintf(G.ep0.port, sizeof G.ep0.port, "%u", (unsigned)ntohs(a.sin_port));
    snprintf(G.ep0.authority, sizeof G.ep0.authority, "127.0.0.1:%s", G.ep0.port);
    snprintf(G.ep0.path, sizeof G.ep0.path, "/sink/room");
    int go[2], res[2];
    if (pipe2(go, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0)
        die("pipe2: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(go[1]);
        close(res[0]);
        close(G.ep);
        close(G.tfd);
        sink_child(lfd, go[0], res[1], cpu);
    }
    close(lfd);
    close(go[0]);
    close(res[1]);
    if (fcntl(res[0], F_SETFL, O_NONBLOCK) < 0)
        die("fcntl: %s", strerror(errno));
    SK.pid = pid;
    SK.go_fd = go[1];
    SK.res_fd = res[0];
}

/* Parent: collects the child's result without blocking; true once whole. */
static bool sink_poll_result(void)
{
    while (SK.res_have < sizeof SK.res) {
        ssize_t r = read(SK.res_fd, (uint8_t *)&SK.res + SK.res_have, sizeof SK.res - SK.res_have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        SK.res_have += (size_t)r;
    }
    return true;
}

static void phase_sink(void)
{
    start_run_clock();
    if (write(SK.go_fd, &G.run_end, sizeof G.run_end) != (ssize_t)sizeof G.run_end)
        die("sink: the sender is gone");
    window_check();
    run_until_end();
    G.now = now_ns();
    window_close();
    uint64_t end = G.now < G.run_end ? G.now : G.run_end;
    G.pub_s = end > G.t_run0 ? (double)(end - G.t_run0) / 1e9 : 0.0;
    G.measured_s = end > G.warm_end ? (double)(end - G.warm_end) / 1e9 : 0.0;
    /* the sender finishes the batch it is in: keep reading until it reports */
    uint64_t dl = now_ns() + s_to_ns(G.drain_timeout);
    while (!sink_poll_result() && !timed_out(dl))
        loop_once(now_ns() + 1000000u);
    if (SK.res_have < sizeof SK.res) {
        note_error(NULL, "sink: no result from the sender within --drain-timeout");
        return;
    }
    if (!SK.res.ok)
        note_error(NULL, "sink: the sender failed (see its error above)");
    G.sent = SK.res.msgs;
    G.expected = SK.res.expected;
    while (G.delivered < G.expected && !timed_out(dl))
        loop_once(dl);
}

/* Parent: after the close phase, reaps the child (SIGKILL if it hangs). */
static bool sink_finish(void)
{
    close(SK.go_fd);
    close(SK.res_fd);
    int st = 0;
    uint64_t dl = now_ns() + s_to_ns(G.drain_timeout) + NS_PER_S;
    for (;;) {
        pid_t r = waitpid(SK.pid, &st, WNOHANG);
        if (r == SK.pid)
            break;
        if (r < 0 || timed_out(dl)) {
            kill(SK.pid, SIGKILL);
            waitpid(SK.pid, &st, 0);
            note_error(NULL, "sink: the sender did not exit; killed");
            return false;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 && SK.res_have == sizeof SK.res && SK.res.ok;
}

/* ------------------------------------------------------------------------ */
/* churn: connection set-up rate                                             */
/*                                                                           */
/* --conns slots each run connect -> [TLS handshake] -> WebSocket upgrade ->  */
/* check the 101 -> close frame -> wait for the server to end the TCP        */
/* connection -> start over. A handshake counts when its 101 is verified      */
/* inside the measured window; its time (connect() to verified 101) goes to  */
/* the histogram. The TLS client never resumes a session and does not verify */
/* the server's certificate: every handshake is a full one, and the client's */
/* CPU goes into the handshake itself, not into certificate checks.          */

enum { CS_IDLE, CS_CONNECT, CS_TLS, CS_REQ, CS_RESP, CS_CLOSE };

typedef struct {
    int fd;
    uint8_t st;
    bool want_out;
    SSL *ssl;
    uint64_t t0, deadline;
    uint32_t rlen, wlen, woff;
    char key[32];
    char rbuf[HS_MAX + 1];
    char wbuf[1536];
} cslot;

static struct {
    cslot *s;
    SSL_CTX *ctx;
    bool running;
    uint32_t active;
    uint64_t started, handshakes, failed, close_timeouts, tls_failed;
    char tls_desc[160]; /* what the first TLS handshake negotiated */
    int key_bits, key_rsa;
} CH;

static void ch_fail(cslot *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ch_release(cslot *s)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd); /* also removes it from the epoll set */
        s->fd = -1;
    }
    if (s->st != CS_IDLE)
        CH.active--;
    s->st = CS_IDLE;
}

static void ch_fail(cslot *s, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    note_error(NULL, "churn slot %td: %s", s - CH.s, msg);
    CH.failed++;
    ch_release(s);
}

static void ch_interest(cslot *s, bool out)
{
    if (s->want_out == out)
        return;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
    ev.data.u64 = (uint64_t)(s - CH.s);
    if (epoll_ctl(G.ep, EPOLL_CTL_MOD, s->fd, &ev) == 0)
        s->want_out = out;
}

/* SSL_ERROR_WANT_* -> epoll interest; false: the connection failed. */
static bool ch_ssl_wait(cslot *s, int rc, const char *what)
{
    int e = SSL_get_error(s->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        ch_interest(s, false);
        return true;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        ch_interest(s, true);
        return true;
    }
    char buf[120] = "";
    unsigned long le = ERR_get_error();
    if (le)
        ERR_error_string_n(le, buf, sizeof buf);
    ERR_clear_error();
    if (s->st == CS_TLS)
        CH.tls_failed++;
    ch_fail(s, "%s: SSL error %d%s%s%s", what, e, buf[0] ? " (" : "", buf, buf[0] ? ")" : "");
    return false;
}

static void ch_start(cslot *s)
{
    s->fd = socket(G.ep0.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    s->st = CS_CONNECT;
    CH.active++;
    CH.started++;
    s->t0 = G.now;
    s->deadline = G.now + s_to_ns(G.connect_timeout);
    s->rlen = s->wlen = s->woff = 0;
    if (s->fd < 0) {
        ch_fail(s, "socket: %s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = (uint64_t)(s - CH.s);
    s->want_out = true;
    if (epoll_ctl(G.ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        ch_fail(s, "epoll_ctl: %s", strerror(errno));
        return;
    }
    if (connect(s->fd, (const struct sockaddr *)&G.ep0.addr, G.ep0.addrlen) < 0 && errno != EINPROGRESS)
        ch_fail(s, "connect: %s", strerror(errno));
}

/* Notes what the first full handshake negotiated, for the report. The
 * handshake rate depends on the server certificate's key above all: with
 * OpenSSL 3.0 an RSA-2048 signature costs the server ~15x an ECDSA P-256
 * one, while the client's verification costs ~1/4 of an ECDSA verify, so the
 * same run measures a different side depending on the key. */
static void ch_note_tls(SSL *ssl)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    EVP_PKEY *pk = cert ? X509_get0_pubkey(cert) : NULL;
    int group = SSL_get_negotiated_group(ssl);
    CH.key_bits = pk ? EVP_PKEY_get_bits(pk) : 0;
    CH.key_rsa = pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA;
    const char *gn = group > 0 ? OBJ_nid2sn(group) : NULL;
    const char *kn = pk ? OBJ_nid2sn(EVP_PKEY_get_base_id(pk)) : NULL;
    snprintf(CH.tls_desc, sizeof CH.tls_desc, "%s %s, key exchange %s, server key %s %d bits",
             SSL_get_version(ssl), SSL_get_cipher_name(ssl), gn ? gn : "?", kn ? kn : "?",
             CH.key_bits);
    X509_free(cert);
}

static void ch_request(cslot *s)
{
    uint8_t raw[16];
    for (unsigned i = 0; i < 2; i++) {
        uint64_t r = rng_next();
        memcpy(raw + 8u * i, &r, 8);
    }
    b64_encode(raw, sizeof raw, s->key);
    int n = snprintf(s->wbuf, sizeof s->wbuf,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                     "User-Agent: roomd-bench\r\n\r\n",
                     G.ep0.path, G.ep0.authority, s->key);
    s->wlen = n > 0 && (size_t)n < sizeof s->wbuf ? (uint32_t)n : 0;
    s->woff = 0;
    s->st = CS_REQ;
}

/* Writes what is left of wbuf; true once all of it is out. */
static bool ch_write(cslot *s)
{
    while (s->woff < s->wlen) {
        if (s->ssl) {
            int rc = SSL_write(s->ssl, s->wbuf + s->woff, (int)(s->wlen - s->woff));
            if (rc <= 0) {
                ch_ssl_wait(s, rc, "SSL_write");
                return false;
            }
            s->woff += (uint32_t)rc;
        } else {
            ssize_t n = send(s->fd, s->wbuf + s->woff, s->wlen - s->woff, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    ch_interest(s, true);
                } else {
                    ch_fail(s, "send: %s", strerror(errno));
                }
                return false;
            }
            s->woff += (uint32_t)n;
        }
    }
    ch_interest(s, false);
    return true;
}

/* Reads into rbuf from rlen. >0 bytes read, 0 EOF, -1 nothing yet, -2 failed. */
static int ch_read(cslot *s, char *buf, size_t cap)
{
    if (s->ssl) {
        int rc = SSL_read(s->ssl, buf, (int)cap);
        if (rc > 0)
            return rc;
        int e = SSL_get_error(s->ssl, rc);
        if (e == SSL_ERROR_ZERO_RETURN || (s->st == CS_CLOSE && e != SSL_ERROR_WANT_READ &&
                                           e != SSL_ERROR_WANT_WRITE)) {
            /* close_notify, or the server ended the TCP connection (even with a
             * reset) after the handshake was done: that is the end we wait for */
            ERR_clear_error();
            return 0;
        }
        return ch_ssl_wait(s, rc, "SSL_read") ? -1 : -2;
    }
    ssize_t n = recv(s->fd, buf, cap, 0);
    if (n > 0)
        return (int)n;
    if (n == 0)
        return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return -1;
    if (s->st == CS_CLOSE) /* e.g. ECONNRESET: the server is gone, as wanted */
        return 0;
    ch_fail(s, "recv: %s", strerror(errno));
    return -2;
}

static void ch_finish(cslot *s)
{
    if (s->ssl)
        SSL_shutdown(s->ssl); /* our close_notify; the server has gone already */
    ch_release(s);
}

static void ch_event(cslot *s)
{
    switch (s->st) {
    case CS_CONNECT: {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            err = errno;
        if (err) {
            ch_fail(s, "connect: %s", strerror(err));
            return;
        }
        if (CH.ctx) {
            s->ssl = SSL_new(CH.ctx);
            if (!s->ssl || !SSL_set_fd(s->ssl, s->fd) ||
                !SSL_set_tlsext_host_name(s->ssl, G.ep0.host)) {
                ch_fail(s, "SSL_new/SSL_set_fd failed");
                return;
            }
            SSL_set_connect_state(s->ssl);
            s->st = CS_TLS;
        } else {
            ch_request(s);
        }
        ch_event(s);
        return;
    }
    case CS_TLS: {
        int rc = SSL_do_handshake(s->ssl);
        if (rc != 1) {
            ch_ssl_wait(s, rc, "TLS handshake");
            return;
        }
        if (SSL_session_reused(s->ssl)) {
            ch_fail(s, "TLS session resumed (every handshake must be a full one)");
            return;
        }
        if (!CH.tls_desc[0])
            ch_note_tls(s->ssl);
        ch_request(s);
    }
        /* fall through */
    case CS_REQ:
        if (!ch_write(s))
            return;
        s->st = CS_RESP;
        return;
    case CS_RESP: {
        for (;;) {
            int n = ch_read(s, s->rbuf + s->rlen, HS_MAX - s->rlen);
            if (n == -1 || n == -2)
                return;
            if (n == 0) {
                ch_fail(s, "connection closed before the 101");
                return;
            }
            s->rlen += (uint32_t)n;
            s->rbuf[s->rlen] = '\0';
            char *end = strstr(s->rbuf, "\r\n\r\n");
            if (!end) {
                if (s->rlen >= HS_MAX) {
                    ch_fail(s, "response headers too large");
                    return;
                }
                continue;
            }
            end[2] = '\0';
            conn tmp;
            memset(&tmp, 0, sizeof tmp);
            memcpy(tmp.key, s->key, sizeof tmp.key);
            char err[200];
            const char *bad = hs_check(&tmp, s->rbuf, err, sizeof err);
            if (bad) {
                ch_fail(s, "handshake: %s", bad);
                return;
            }
            G.now = now_ns();
            if (G.now >= G.warm_end && G.now < G.run_end) {
                CH.handshakes++;
                h_record(&G.h, G.now - s->t0);
            }
            /* Close frame, code 1000, masked with a zero key (any key is valid). */
            static const char close_frame[] = {'\x88', '\x82', 0, 0, 0, 0, '\x03', '\xe8'};
            memcpy(s->wbuf, close_frame, sizeof close_frame);
            s->wlen = sizeof close_frame;
            s->woff = 0;
            s->st = CS_CLOSE;
            s->deadline = G.now + s_to_ns(G.drain_timeout);
            if (!ch_write(s))
                return;
            break;
        }
    }
        /* fall through */
    case CS_CLOSE: {
        if (s->woff < s->wlen && !ch_write(s))
            return;
        char sink[512];
        for (;;) {
            int n = ch_read(s, sink, sizeof sink);
            if (n == -1 || n == -2)
                return;
            if (n == 0) {
                ch_finish(s);
                return;
            }
        }
    }
    default:
        return;
    }
}

static void ch_loop_once(uint64_t deadline)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = wait_events(deadline, evs);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == TIMER_TAG)
            continue;
        cslot *s = &CH.s[evs[i].data.u64];
        if (s->fd >= 0)
            ch_event(s);
    }
    G.now = now_ns();
    for (uint32_t i = 0; i < G.conns; i++) {
        cslot *s = &CH.s[i];
        if (s->st != CS_IDLE && G.now >= s->deadline) {
            if (s->st == CS_CLOSE) {
                CH.close_timeouts++;
                ch_release(s);
            } else {
                ch_fail(s, "no 101 within %.3f s", G.connect_timeout);
            }
        }
        if (s->st == CS_IDLE && CH.running)
            ch_start(s);
    }
}

static void phase_churn(void)
{
    CH.s = xcalloc(G.conns, sizeof *CH.s);
    for (uint32_t i = 0; i < G.conns; i++)
        CH.s[i].fd = -1;
    if (G.tls) {
        CH.ctx = SSL_CTX_new(TLS_client_method());
        if (!CH.ctx)
            die("SSL_CTX_new failed");
        SSL_CTX_set_verify(CH.ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(CH.ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_mode(CH.ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    }
    start_run_clock();
    CH.running = true;
    uint64_t next = G.t_run0 + NS_PER_S;
    uint64_t prev = 0;
    while (!g_stop && !timed_out(G.run_end)) {
        ch_loop_once(G.run_end);
        window_check();
        if (!G.quiet && G.now >= next) {
            fprintf(stderr, "[%6.1fs] %" PRIu64 " handshakes/s, %" PRIu64 " failed\n",
                    (double)(G.now - G.t_run0) / 1e9, CH.handshakes - prev, CH.failed);
            prev = CH.handshakes;
            next += NS_PER_S;
        }
    }
    window_close();
    CH.running = false;
    G.now = now_ns();
    uint64_t end = G.now < G.run_end ? G.now : G.run_end;
    G.measured_s = end > G.warm_end ? (double)(end - G.warm_end) / 1e9 : 0.0;
    uint64_t dl = now_ns() + s_to_ns(G.drain_timeout);
    while (CH.active && !timed_out(dl))
        ch_loop_once(dl);
    for (uint32_t i = 0; i < G.conns; i++)
        if (CH.s[i].st != CS_IDLE)
            ch_release(&CH.s[i]); /* still connecting at the end: not counted either way */
    free(CH.s);
    SSL_CTX_free(CH.ctx);
}

static void report_churn(FILE *out, bool json, bool ok)
{
    const hist *h = &G.h;
    double ms = G.measured_s > 0 ? G.measured_s : 1.0;
    if (json) {
        fprintf(out,
                "{\"ok\":%d,\"interrupted\":%d,\"tls\":%d,\"conns\":%" PRIu32
                ",\"duration_s\":%.6f,\"warmup_s\":%.3f,\"started\":%" PRIu64
                ",\"handshakes\":%" PRIu64 ",\"handshakes_per_s\":%.3f,\"failed\":%" PRIu64
                ",\"tls_failed\":%" PRIu64 ",\"close_timeouts\":%" PRIu64
                ",\"hs_ms_p50\":%.3f,\"hs_ms_p90\":%.3f,\"hs_ms_p99\":%.3f,\"hs_ms_p999\":%.3f"
                ",\"hs_ms_max\":%.3f,\"hs_ms_mean\":%.3f",
                ok ? 1 : 0, g_stop ? 1 : 0, G.tls ? 1 : 0, G.conns, G.measured_s, G.warmup,
                CH.started, CH.handshakes, (double)CH.handshakes / ms, CH.failed, CH.tls_failed,
                CH.close_timeouts, (double)h_percentile(h, 50) / 1e6,
                (double)h_percentile(h, 90) / 1e6, (double)h_percentile(h, 99) / 1e6,
                (double)h_percentile(h, 99.9) / 1e6, (double)h->max / 1e6, h_mean(h) / 1e6);
        if (G.tls)
            fprintf(out, ",\"tls_key_bits\":%d,\"tls_key_rsa\":%d", CH.key_bits, CH.key_rsa);
        if (G.win_done) {
            fprintf(out, ",\"window_s\":%.6f,\"client_cpu_s\":%.6f",
                    (double)(G.win_t1 - G.win_t0) / 1e9, (double)(G.win_ccpu1 - G.win_ccpu0) / 1e9);
            double tot = 0;
            bool all = true;
            for (uint32_t i = 0; i < G.ncpu_pids; i++) {
                double cs = window_cpu_s(i);
                fprintf(out, ",\"cpu_s_%" PRIu32 "\":%.3f", i, cs);
                if (cs < 0)
                    all = false;
                else
                    tot += cs;
            }
            if (G.ncpu_pids)
                fprintf(out, ",\"cpu_s_total\":%.3f", all ? tot : -1.0);
        }
        fputs("}\n", out);
        return;
    }
    fprintf(out, "roomd-bench churn  %s\n", G.url);
    fprintf(out, "  %-22s %" PRIu32 " in parallel, %s\n", "connections", G.conns,
            G.tls ? "TLS (full handshakes, no resumption)" : "plaintext");
    if (G.tls)
        fprintf(out, "  %-22s %s\n", "tls", CH.tls_desc[0] ? CH.tls_desc : "no handshake completed");
    fprintf(out, "  %-22s %.3f s (warmup %.3f s)\n", "measured", G.measured_s, G.warmup);
    fprintf(out, "  %-22s %" PRIu64 "\n", "handshakes", CH.handshakes);
    fprintf(out, "  %-22s %.1f\n", "handshakes/s", (double)CH.handshakes / ms);
    fprintf(out, "  %-22s %" PRIu64 " (%" PRIu64 " in TLS), %" PRIu64 " close timeouts\n",
            "failed", CH.failed, CH.tls_failed, CH.close_timeouts);
    static const double pc[] = {50.0, 90.0, 99.0, 99.9};
    static const char *const pn[] = {"setup p50", "setup p90", "setup p99", "setup p99.9"};
    for (unsigned i = 0; i < 4; i++)
        fprintf(out, "  %-22s %.3f ms\n", pn[i], (double)h_percentile(h, pc[i]) / 1e6);
    fprintf(out, "  %-22s %.3f ms\n", "setup max", (double)h->max / 1e6);
    if (G.win_done) {
        double ws = (double)(G.win_t1 - G.win_t0) / 1e9;
        double cc = (double)(G.win_ccpu1 - G.win_ccpu0) / 1e9;
        fprintf(out, "  %-22s %.3f s: client cpu %.3f s (%.0f %% of one CPU", "cpu window", ws, cc,
                ws > 0 ? 100.0 * cc / ws : 0.0);
        if (CH.handshakes)
            fprintf(out, ", %.0f us per handshake", cc * 1e6 / (double)CH.handshakes);
        fputs(")\n", out);
        double tot = 0;
        for (uint32_t i = 0; i < G.ncpu_pids; i++) {
            double cs = window_cpu_s(i);
            tot += cs > 0 ? cs : 0.0;
            fprintf(out, "  %-22s pid %ld: %.2f s\n", i ? "" : "server cpu", (long)G.cpu_pids[i], cs);
        }
        if (G.ncpu_pids && ws > 0)
            fprintf(out, "  %-22s %.2f s (%.0f %% of one CPU%s)\n", "server cpu total", tot,
                    100.0 * tot / ws, CH.handshakes ? "" : "; no handshakes");
    }
}

/* ------------------------------------------------------------------------ */
/* Report                                                                    */

static void report(FILE *out)
{
    const hist *h = &G.h;
    double ct = (double)(G.t_conn_last - G.t_conn0) / 1e9;
    double ms = G.measured_s > 0 ? G.measured_s : 1.0;
    fprintf(out, "roomd-bench %s  %s\n",
            G.mode == MODE_ECHO ? "echo" : G.mode == MODE_SINK ? "sink" : "fanout",
            G.mode == MODE_SINK ? "(forked loopback sender)" : G.url);
    fprintf(out, "  %-22s %" PRIu32 " requested, %" PRIu32 " connected, %" PRIu32
                 " failed, %" PRIu32 " closed unexpectedly\n",
            "connections", G.conns, G.n_opened, G.n_failed, G.n_lost);
    fprintf(out, "  %-22s %.3f s\n", "connect time", ct);
    fprintf(out, "  %-22s %.3f s (warmup %.3f s), size %" PRIu32 " B\n", "measured", G.measured_s,
            G.warmup, G.size);
    if (G.mode == MODE_ECHO) {
        fprintf(out, "  %-22s %" PRIu64 "\n", "round trips", G.rt_count);
        fprintf(out, "  %-22s %.1f\n", "round trips/s", (double)G.rt_count / ms);
        static const double pc[] = {50.0, 90.0, 99.0, 99.9};
        static const char *const pn[] = {"rtt p50", "rtt p90", "rtt p99", "rtt p99.9"};
        for (unsigned i = 0; i < 4; i++)
            fprintf(out, "  %-22s %.1f us\n", pn[i], (double)h_percentile(h, pc[i]) / 1e3);
        fprintf(out, "  %-22s %.1f us\n", "rtt max", (double)h->max / 1e3);
        fprintf(out, "  %-22s %.1f us\n", "rtt mean", h_mean(h) / 1e3);
        fprintf(out, "  %-22s %" PRIu64 " mismatched, %" PRIu64 " corrupt, %" PRIu64 " malformed\n",
                "bad replies", G.mismatched, G.corrupt, G.malformed);
    } else {
        uint64_t lost = G.expected > G.delivered ? G.expected - G.delivered : 0;
        fprintf(out, "  %-22s %" PRIu32 " x %" PRIu32 " members, %" PRIu32 " publishers/room\n",
                "rooms", G.rooms, G.members, G.publishers);
        if (G.mode == MODE_SINK) {
            const sink_result *r = &SK.res;
            double act = (double)r->active_ns / 1e9;
            fprintf(out, "  %-22s %" PRIu64 " messages in %" PRIu64 " send()s of %" PRIu32
                         " messages (%.1f MB), active %.3f s\n",
                    "sender", r->msgs, r->sends, G.batch, (double)r->bytes / 1e6, act);
            fprintf(out, "  %-22s %.3f s (%.1f %% of one CPU)\n",
                    "sender cpu", (double)r->cpu_ns / 1e9,
                    act > 0 ? 100.0 * (double)r->cpu_ns / 1e9 / act : 0.0);
        } else {
            fprintf(out, "  %-22s %.1f msg/s\n", "target rate", G.rate);
            fprintf(out, "  %-22s %" PRIu64 " (%.1f msg/s), %" PRIu64 " skipped\n", "sent", G.sent,
                    G.pub_s > 0 ? (double)G.sent / G.pub_s : 0.0, G.send_skipped);
        }
        fprintf(out, "  %-22s %" PRIu64 "\n", "expected deliveries", G.expected);
        fprintf(out, "  %-22s %" PRIu64 "\n", "delivered", G.delivered);
        fprintf(out, "  %-22s %.1f\n", "deliveries/s", (double)G.delivered_win / ms);
        uint64_t wrc = G.win_rc1 - G.win_rc0;
        fprintf(out, "  %-22s %" PRIu64 " (in the window %" PRIu64 ", %.2f messages per recv), %" PRIu64
                     " epoll_wait()s\n",
                "recv calls", G.recvs, wrc, wrc ? (double)(G.win_msg1 - G.win_msg0) / (double)wrc : 0.0,
                G.waits);
        fprintf(out, "  %-22s %" PRIu64 "\n", "lost", lost);
        fprintf(out, "  %-22s %" PRIu64 "\n", "duplicated", G.dups);
        fprintf(out, "  %-22s %" PRIu64 "\n", "reordered", G.reordered);
        fprintf(out, "  %-22s %" PRIu64 " unexpected, %" PRIu64 " malformed, %" PRIu64 " corrupt\n",
                "bad deliveries", G.unexpected, G.malformed, G.corrupt);
        static const double pc[] = {50.0, 90.0, 99.0, 99.9};
        static const char *const pn[] = {"latency p50", "latency p90", "latency p99",
                                         "latency p99.9"};
        for (unsigned i = 0; i < 4; i++)
            fprintf(out, "  %-22s %.3f ms\n", pn[i], (double)h_percentile(h, pc[i]) / 1e6);
        fprintf(out, "  %-22s %.3f ms\n", "latency max", (double)h->max / 1e6);
        fprintf(out, "  %-22s %.3f ms\n", "latency mean", h_mean(h) / 1e6);
        if (G.cross_url) {
            fprintf(out, "  %-22s %" PRIu64 " of the deliveries, via %s\n", "cross-cell", G.delivered_x,
                    G.cross_url);
            static const char *const xn[] = {"x-cell latency p50", "x-cell latency p90",
                                             "x-cell latency p99", "x-cell latency p99.9"};
            for (unsigned i = 0; i < 4; i++)
                fprintf(out, "  %-22s %.3f ms\n", xn[i], (double)h_percentile(&G.hx, pc[i]) / 1e6);
            fprintf(out, "  %-22s %.3f ms\n", "x-cell latency max", (double)G.hx.max / 1e6);
            fprintf(out, "  %-22s %.3f ms\n", "x-cell latency mean", h_mean(&G.hx) / 1e6);
        }
    }
    fprintf(out, "  %-22s %" PRIu64 " protocol errors, %" PRIu32 " close timeouts, %" PRIu64
                 " pings\n",
            "other", G.proto_errors, G.n_close_timeout, G.pings);
    fprintf(out, "  %-22s %.1f MB in, %.1f MB out\n", "traffic", (double)G.bytes_in / 1e6,
            (double)G.bytes_out / 1e6);
    fprintf(out, "  %-22s %s, %" PRIu32 " B\n", "payload", G.payload_json ? "json" : "plain",
            G.size);
    if (!G.deflate) {
        fprintf(out, "  %-22s not offered\n", "permessage-deflate");
    } else {
        fprintf(out, "  %-22s offered, negotiated on %" PRIu32 " of %" PRIu32 " connections%s\n",
                "permessage-deflate", G.n_pmd, G.n_opened,
                G.deflate_send ? "" : " (receive only)");
        fprintf(out, "  %-22s %" PRIu64 " of %" PRIu64 " data messages", "compressed in",
                G.msgs_z_in, G.msgs_in);
        if (G.z_infl_bytes)
            fprintf(out, ", payload %.1f MB -> %.1f MB inflated (%.3f)",
                    (double)G.z_in_bytes / 1e6, (double)G.z_infl_bytes / 1e6,
                    (double)G.z_in_bytes / (double)G.z_infl_bytes);
        fputc('\n', out);
        fprintf(out, "  %-22s %" PRIu64 " messages", "compressed out", G.msgs_z_out);
        if (G.z_out_plain)
            fprintf(out, ", %.3f of their size", (double)G.z_out_bytes / (double)G.z_out_plain);
        fputc('\n', out);
    }
    if (G.win_done) {
        double ws = (double)(G.win_t1 - G.win_t0) / 1e9;
        double ccpu = (double)(G.win_ccpu1 - G.win_ccpu0) / 1e9;
        fprintf(out, "  %-22s %.3f s: client cpu %.3f s, %.1f MB in, %.1f MB out\n",
                "cpu/traffic window", ws, ccpu, (double)(G.win_bin1 - G.win_bin0) / 1e6,
                (double)(G.win_bout1 - G.win_bout0) / 1e6);
        double rq = (double)(G.win_rq1 - G.win_rq0) / 1e9, idle = ws - ccpu - rq;
        fprintf(out, "  %-22s %.1f %% of the window (%.1f %% waiting for a CPU; near 0 idle: the\n"
                     "  %-22s client was the bottleneck)\n",
                "client idle", ws > 0 ? 100.0 * (idle > 0 ? idle : 0.0) / ws : 0.0,
                ws > 0 ? 100.0 * rq / ws : 0.0, "");
        if (G.mode != MODE_ECHO && G.delivered_win && ccpu > 0)
            fprintf(out, "  %-22s %.0f ns per delivery (%.2fM deliveries per client CPU second)\n",
                    "client cpu cost", ccpu * 1e9 / (double)G.delivered_win,
                    (double)G.delivered_win / ccpu / 1e6);
        double tot = 0;
        bool all = true;
        for (uint32_t i = 0; i < G.ncpu_pids; i++) {
            double cs = window_cpu_s(i);
            if (cs < 0) {
                all = false;
                fprintf(out, "  %-22s pid %ld: unknown (gone?)\n", i ? "" : "server cpu",
                        (long)G.cpu_pids[i]);
            } else {
                tot += cs;
                fprintf(out, "  %-22s pid %ld: %.2f s (%.1f %% of one CPU)\n", i ? "" : "server cpu",
                        (long)G.cpu_pids[i], cs, ws > 0 ? 100.0 * cs / ws : 0.0);
            }
        }
        if (G.ncpu_pids > 1)
            fprintf(out, "  %-22s total %.2f s%s\n", "", tot, all ? "" : " (incomplete)");
    }
}

static void report_json(FILE *out, bool ok)
{
    const hist *h = &G.h;
    double ct = (double)(G.t_conn_last - G.t_conn0) / 1e9;
    double ms = G.measured_s > 0 ? G.measured_s : 1.0;
    fprintf(out,
            "{\"ok\":%d,\"interrupted\":%d,\"conns\":%" PRIu32 ",\"connected\":%" PRIu32 ",\"connect_failed\":%" PRIu32
            ",\"closed_unexpectedly\":%" PRIu32 ",\"protocol_errors\":%" PRIu64
            ",\"close_timeouts\":%" PRIu32 ",\"connect_time_s\":%.6f,\"duration_s\":%.6f"
            ",\"warmup_s\":%.3f,\"size\":%" PRIu32,
            ok ? 1 : 0, g_stop ? 1 : 0, G.conns, G.n_opened, G.n_failed, G.n_lost, G.proto_errors,
            G.n_close_timeout, ct, G.measured_s, G.warmup, G.size);
    fprintf(out,
            ",\"payload_json\":%d,\"deflate_offered\":%d,\"deflate_send\":%d"
            ",\"deflate_negotiated\":%d,\"deflate_conns\":%" PRIu32 ",\"msgs_in\":%" PRIu64
            ",\"msgs_in_compressed\":%" PRIu64 ",\"compressed_payload_bytes_in\":%" PRIu64
            ",\"inflated_payload_bytes_in\":%" PRIu64 ",\"msgs_out_compressed\":%" PRIu64
            ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64,
            G.payload_json ? 1 : 0, G.deflate ? 1 : 0, G.deflate && G.deflate_send ? 1 : 0,
            G.n_pmd ? 1 : 0, G.n_pmd, G.msgs_in, G.msgs_z_in, G.z_in_bytes, G.z_infl_bytes,
            G.msgs_z_out, G.bytes_in, G.bytes_out);
    if (G.win_done) {
        fprintf(out,
                ",\"window_s\":%.6f,\"window_bytes_in\":%" PRIu64 ",\"window_bytes_out\":%" PRIu64
                ",\"client_cpu_s\":%.6f,\"client_runq_s\":%.6f,\"window_recv_calls\":%" PRIu64
                ",\"window_msgs_in\":%" PRIu64,
                (double)(G.win_t1 - G.win_t0) / 1e9, G.win_bin1 - G.win_bin0, G.win_bout1 - G.win_bout0,
                (double)(G.win_ccpu1 - G.win_ccpu0) / 1e9, (double)(G.win_rq1 - G.win_rq0) / 1e9,
                G.win_rc1 - G.win_rc0, G.win_msg1 - G.win_msg0);
        double tot = 0;
        bool all = true;
        for (uint32_t i = 0; i < G.ncpu_pids; i++) {
            double cs = window_cpu_s(i);
            fprintf(out, ",\"cpu_s_%" PRIu32 "\":%.3f", i, cs);
            if (cs < 0)
                all = false;
            else
                tot += cs;
        }
        if (G.ncpu_pids)
            fprintf(out, ",\"cpu_s_total\":%.3f", all ? tot : -1.0);
    }
    if (G.mode == MODE_ECHO) {
        fprintf(out,
                ",\"round_trips\":%" PRIu64 ",\"round_trips_per_s\":%.3f,\"rtt_us_p50\":%.3f"
                ",\"rtt_us_p90\":%.3f,\"rtt_us_p99\":%.3f,\"rtt_us_p999\":%.3f"
                ",\"rtt_us_max\":%.3f,\"rtt_us_mean\":%.3f,\"mismatched\":%" PRIu64
                ",\"corrupt\":%" PRIu64 ",\"malformed\":%" PRIu64 "}\n",
                G.rt_count, (double)G.rt_count / ms, (double)h_percentile(h, 50) / 1e3,
                (double)h_percentile(h, 90) / 1e3, (double)h_percentile(h, 99) / 1e3,
                (double)h_percentile(h, 99.9) / 1e3, (double)h->max / 1e3, h_mean(h) / 1e3,
                G.mismatched, G.corrupt, G.malformed);
    } else {
        uint64_t lost = G.expected > G.delivered ? G.expected - G.delivered : 0;
        fprintf(out,
                ",\"rooms\":%" PRIu32 ",\"members\":%" PRIu32 ",\"publishers\":%" PRIu32
                ",\"rate_target\":%.3f,\"sent\":%" PRIu64 ",\"send_rate\":%.3f"
                ",\"send_skipped\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"delivered\":%" PRIu64
                ",\"deliveries_per_s\":%.3f,\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64
                ",\"reordered\":%" PRIu64 ",\"unexpected\":%" PRIu64 ",\"malformed\":%" PRIu64
                ",\"corrupt\":%" PRIu64 ",\"latency_ms_p50\":%.3f,\"latency_ms_p90\":%.3f,\"latency_ms_p99\":%.3f"
                ",\"latency_ms_p999\":%.3f,\"latency_ms_max\":%.3f,\"latency_ms_mean\":%.3f"
                ",\"recv_calls\":%" PRIu64 ",\"epoll_waits\":%" PRIu64 ",\"client_ns_per_delivery\":%.1f",
                G.rooms, G.members, G.publishers, G.rate, G.sent,
                G.pub_s > 0 ? (double)G.sent / G.pub_s : 0.0, G.send_skipped,
                G.expected, G.delivered, (double)G.delivered_win / ms, lost, G.dups, G.reordered,
                G.unexpected, G.malformed, G.corrupt, (double)h_percentile(h, 50) / 1e6,
                (double)h_percentile(h, 90) / 1e6, (double)h_percentile(h, 99) / 1e6,
                (double)h_percentile(h, 99.9) / 1e6, (double)h->max / 1e6, h_mean(h) / 1e6,
                G.recvs, G.waits,
                G.win_done && G.delivered_win ? (double)(G.win_ccpu1 - G.win_ccpu0) / (double)G.delivered_win
                                              : 0.0);
        if (G.mode == MODE_SINK)
            fprintf(out,
                    ",\"batch\":%" PRIu32 ",\"sender_ok\":%d,\"sender_sends\":%" PRIu64
                    ",\"sender_active_s\":%.6f,\"sender_cpu_s\":%.6f",
                    G.batch, SK.res_have == sizeof SK.res && SK.res.ok ? 1 : 0, SK.res.sends,
                    (double)SK.res.active_ns / 1e9, (double)SK.res.cpu_ns / 1e9);
        if (G.cross_url) {
            const hist *x = &G.hx;
            fprintf(out,
                    ",\"delivered_x\":%" PRIu64 ",\"xlatency_ms_p50\":%.3f"
                    ",\"xlatency_ms_p90\":%.3f,\"xlatency_ms_p99\":%.3f,\"xlatency_ms_p999\":%.3f"
                    ",\"xlatency_ms_max\":%.3f,\"xlatency_ms_mean\":%.3f",
                    G.delivered_x, (double)h_percentile(x, 50) / 1e6, (double)h_percentile(x, 90) / 1e6,
                    (double)h_percentile(x, 99) / 1e6, (double)h_percentile(x, 99.9) / 1e6,
                    (double)x->max / 1e6, h_mean(x) / 1e6);
        }
        fputs("}\n", out);
    }
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                     */

static const char *const tm_first[] = {"Maria", "James", "Aiko", "Lukas", "Priya", "Omar",
                                       "Sofia", "Chen", "Emma", "Mateo", "Nora", "Ivan",
                                       "Fatima", "Leo", "Hannah", "Kwame"};
static const char *const tm_last[] = {"Schmidt", "Garcia", "Tanaka", "Novak", "Sharma", "Haddad",
                                      "Rossi", "Wei", "Johnson", "Silva", "Berg", "Petrov",
                                      "Okafor", "Dubois", "Kowalski", "Mensah"};
static const char *const tm_role[] = {"member", "member", "member", "moderator", "guest", "admin"};
static const char *const tm_words[] = {
    "the", "we", "should", "ship", "release", "today", "after", "lunch", "can", "you", "check",
    "build", "logs", "again", "i", "think", "it", "is", "fixed", "now", "thanks", "for", "quick",
    "review", "meeting", "moved", "to", "three", "pm", "does", "anyone", "have", "link", "deploy",
    "dashboard", "looks", "good", "me", "let's", "wait", "until", "tests", "pass", "on", "main",
    "sounds", "great", "will", "update", "ticket", "a", "few", "minutes", "coffee", "break",
    "back", "in", "ten", "who", "owns", "this", "service", "please", "rebase", "your", "branch",
    "merged", "and", "tagged", "customer", "reported", "same", "issue", "yesterday", "latency",
    "spike", "around", "noon", "rolled", "it", "back", "ok", "nice", "work", "everyone"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t tm_next(uint64_t *r)
{
    uint64_t x = *r; /* xorshift64*, fixed seed: the same templates on every run */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *r = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* The JSON object up to and including the opening quote of "text" (the
 * header is a placeholder); returns its length. */
static int tm_head(char *out, size_t cap, uint64_t *r)
{
    unsigned uid = (unsigned)(tm_next(r) % 90000u) + 10000u;
    const char *fn = tm_first[tm_next(r) % NELEM(tm_first)];
    const char *ln = tm_last[tm_next(r) % NELEM(tm_last)];
    const char *role = tm_role[tm_next(r) % NELEM(tm_role)];
    unsigned h = (unsigned)(tm_next(r) % 24u), mi = (unsigned)(tm_next(r) % 60u),
             se = (unsigned)(tm_next(r) % 60u), ms = (unsigned)(tm_next(r) % 1000u);
    char reply[32];
    if (tm_next(r) % 3u == 0)
        snprintf(reply, sizeof reply, "\"m_%08" PRIx32 "\"", (uint32_t)tm_next(r));
    else
        snprintf(reply, sizeof reply, "null");
    return snprintf(out, cap,
                    "{\"id\":\"%.*s\",\"type\":\"chat.message\",\"room\":\"general\","
                    "\"user\":{\"id\":\"u_%u\",\"name\":\"%s %s\","
                    "\"avatar\":\"https://cdn.example.com/avatars/%u.png\",\"role\":\"%s\"},"
                    "\"sent_at\":\"2026-11-24T%02u:%02u:%02u.%03uZ\",\"reply_to\":%s,\"text\":\"",
                    (int)PL_HDR, "RBF:00000000:0000000000000000:0000000000000000;", uid, fn, ln,
                    uid, role, h, mi, se, ms, reply);
}

/* Payload templates: plain = the header then 'x' padding; json = TMPL_N
 * chat-message objects of exactly G.size bytes, the text filling the rest. */
static void build_templates(void)
{
    if (!G.payload_json) {
        G.ntmpl = 1;
        G.hdr_off = 0;
        G.tmpl = xcalloc(G.size, 1);
        memset(G.tmpl, 'x', G.size);
        return;
    }
    G.ntmpl = TMPL_N;
    G.hdr_off = JSON_HDR;
    char head[512];
    uint64_t r = 0x9E3779B97F4A7C15ull;
    size_t need = 0;
    for (uint32_t i = 0; i < TMPL_N; i++) {
        size_t hl = (size_t)tm_head(head, sizeof head, &r) + 2u + 16u; /* '"}' + some text */
        if (hl > need)
            need = hl;
    }
    if (G.size < need)
        die("--payload json needs --size >= %zu", need);
    G.tmpl = xcalloc(TMPL_N, G.size);
    r = 0x9E3779B97F4A7C15ull;
    for (uint32_t i = 0; i < TMPL_N; i++) {
        uint8_t *t = G.tmpl + (size_t)i * G.size;
        size_t hl = (size_t)tm_head(head, sizeof head, &r);
        memcpy(t, head, hl);
        size_t tl = G.size - hl - 2u, n = 0;
        uint8_t *txt = t + hl;
        while (n < tl) {
            const char *w = tm_words[tm_next(&r) % NELEM(tm_words)];
            for (size_t k = 0; w[k] && n < tl; k++)
                txt[n++] = (uint8_t)w[k];
            if (n < tl) {
                uint64_t pu = tm_next(&r) % 16u;
                txt[n++] = pu == 0 ? (uint8_t)',' : pu == 1 ? (uint8_t)'.' : (uint8_t)' ';
                if (pu <= 1 && n < tl)
                    txt[n++] = ' ';
            }
        }
        if (txt[0] >= 'a' && txt[0] <= 'z')
            txt[0] = (uint8_t)(txt[0] - 'a' + 'A');
        if (txt[tl - 1] == ' ' || txt[tl - 1] == ',')
            txt[tl - 1] = '.';
        t[G.size - 2] = '"';
        t[G.size - 1] = '}';
    }
}

static void parse_pids(const char *s)
{
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v <= 0 || v > INT_MAX || (*end && *end != ','))
            die("invalid --cpu-pids '%s' (comma-separated process ids)", s);
        if (G.ncpu_pids == MAX_CPU_PIDS)
            die("--cpu-pids: at most %u processes", MAX_CPU_PIDS);
        G.cpu_pids[G.ncpu_pids++] = (pid_t)v;
        p = *end ? end + 1 : end;
    }
    if (!G.ncpu_pids)
        die("--cpu-pids needs at least one process id");
}

static void usage(FILE *out)
{
    fputs("usage: roomd-bench echo   [options]\n"
          "       roomd-bench fanout [options]\n"
          "       roomd-bench churn  [options]\n"
          "       roomd-bench sink   [options]\n"
          "\n"
          "modes:\n"
          "  echo     closed loop: every connection sends a text message, waits for the\n"
          "           reply (the echo class returns \"[Durable Object]: \" + message),\n"
          "           records the round trip time and sends the next one.\n"
          "  fanout   R rooms (<url-path>-0 .. -<R-1>) of M member connections; P members\n"
          "           of each room publish, paced evenly at --rate msg/s in total; every\n"
          "           other member records delivery latency, loss, duplicates, reordering.\n"
          "  churn    connection set-up rate: --conns connections at a time each connect,\n"
          "           (wss://: full TLS handshake, no session resumption, certificate\n"
          "           not verified), upgrade, check the 101, send a close frame, wait\n"
          "           for the server to end the connection, and start over. Reports\n"
          "           handshakes/s (101s verified in the measured window) and set-up\n"
          "           time (connect() to verified 101) percentiles.\n"
          "  sink     the client's own receive capacity, without a server: a forked child\n"
          "           listens on loopback, accepts R x M connections and writes pre-framed\n"
          "           fan-out messages to them as fast as it can (--batch messages per\n"
          "           send(), the same batch to every member of a room); this process\n"
          "           receives them on the fanout path (order, loss, duplicate and body\n"
          "           checks, latency) and reports messages/s, its CPU per message and\n"
          "           the sender's CPU. Pin the two apart: taskset -c 1 roomd-bench sink\n"
          "           --sender-cpu 0.\n"
          "\n"
          "common options:\n"
          "  --url URL              ws:// URL to connect to (only this host:port is used;\n"
          "                         churn also takes wss://)\n"
          "                         (default: echo, churn ws://127.0.0.1:8080/echo/bench,\n"
          "                                   fanout ws://127.0.0.1:8080/chat/room)\n"
          "  --duration S           measured run time in seconds (default: 10)\n"
          "  --warmup S             run before measuring starts; not in the stats\n"
          "                         (default: 1 for echo, 0 for fanout, 0.5 for churn)\n"
          "  --size BYTES           message payload size, >= 47 (default: 64)\n"
          "  --connect-timeout S    every connection must be up within S seconds of the\n"
          "                         start; churn: of its own connect() (default: 10)\n"
          "  --drain-timeout S      max wait at the end for in-flight messages, and again\n"
          "                         for the close handshakes (default: 5)\n"
          "  --max-handshakes N     max connects/handshakes in flight (default: 200)\n"
          "  --payload plain|json   plain: the header then 'x' padding (compresses\n"
          "                         unrealistically well); json: a chat-message JSON object\n"
          "                         (user, timestamps, words; 64 variants, checked byte by\n"
          "                         byte on receipt) (default: plain; json sets the default\n"
          "                         --size to 300)\n"
          "  --deflate              offer permessage-deflate (RFC 7692) as browsers do\n"
          "                         (\"permessage-deflate; client_max_window_bits\"); if the\n"
          "                         server accepts (it must answer server_no_context_takeover)\n"
          "                         inflate compressed messages and compress ours (zlib\n"
          "                         level 1, each message alone) (default: off)\n"
          "  --deflate-recv-only    like --deflate, but send our messages uncompressed\n"
          "  --cpu-pids PID,...     report the CPU time (utime+stime, /proc/PID/stat) these\n"
          "                         processes use during the measured window, e.g. the\n"
          "                         server's; JSON: cpu_s_0.., cpu_s_total (default: none)\n"
          "  --json                 print one JSON object line (numbers only) on stdout;\n"
          "                         the human table then goes to stderr (default: off)\n"
          "  --quiet                no per-second progress lines on stderr (default: off)\n"
          "  --help                 show this help\n"
          "\n"
          "echo options:\n"
          "  --conns C              number of connections (default: 10)\n"
          "  --objects K            spread the connections over K objects: connection i\n"
          "                         uses <url-path>-<i mod K> (default: all on <url-path>)\n"
          "  --message TEXT         send this fixed text message instead of the bench\n"
          "                         payload; any reply completes the round trip (for\n"
          "                         request/response objects, e.g. {\"op\":\"increment\"}\n"
          "                         to /counter/NAME)\n"
          "\n"
          "churn options:\n"
          "  --conns C              connections set up at a time (default: 32)\n"
          "\n"
          "fanout options:\n"
          "  --rooms R              number of rooms (default: 1)\n"
          "  --members M            member connections per room, >= 2 (default: 10)\n"
          "  --publishers P         publishing members per room, 1..M (default: 1)\n"
          "  --rate N               messages/s in total across all publishers (default: 1000)\n"
          "  --settle S             pause between all-connected and publishing (default: 0.5)\n"
          "  --cross-url URL        federation: every other non-publishing member connects\n"
          "                         to this ws:// host:port instead (another cell on the\n"
          "                         same Redis; same path); their latency is reported\n"
          "                         apart (\"cross-cell\"; JSON: xlatency_ms_*) (default: none)\n"
          "\n"
          "sink options (and --rooms, --members, --publishers, --size, --payload):\n"
          "  --batch K              messages per send() per connection, 1..4096 (default: 16)\n"
          "  --sender-cpu N         pin the sender child to CPU N (default: not pinned)\n"
          "\n"
          "exit status: 0 ok; 1 a connection failed to connect, closed unexpectedly or\n"
          "hit a protocol error (churn: any set-up failed; sink: the sender failed), or\n"
          "the run was interrupted\n"
          "(SIGINT/SIGTERM) - the\n"
          "report is still printed; 2 usage/setup error.\n",
          out);
}

static double parse_double(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        die("invalid value '%s' for --%s (allowed %g .. %g)", s, opt, lo, hi);
    return v;
}

static uint32_t parse_u32(const char *opt, const char *s, uint32_t lo, uint32_t hi)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
        die("invalid value '%s' for --%s (allowed %" PRIu32 " .. %" PRIu32 ")", s, opt, lo, hi);
    return (uint32_t)v;
}

static void parse_url(const char *url, endpoint *e)
{
    G.tls = strncmp(url, "wss://", 6) == 0;
    if (G.tls && G.mode != MODE_CHURN)
        die("wss:// is only supported by churn (echo and fanout are plaintext ws:// only)");
    if (!G.tls && strncmp(url, "ws://", 5) != 0)
        die("URL must start with ws://%s: %s", G.mode == MODE_CHURN ? " or wss://" : "", url);
    const char *a = url + (G.tls ? 6 : 5);
    const char *slash = strchr(a, '/');
    size_t al = slash ? (size_t)(slash - a) : strlen(a);
    if (al == 0 || al >= sizeof e->authority)
        die("bad host in URL: %s", url);
    memcpy(e->authority, a, al);
    e->authority[al] = '\0';
    const char *path = slash ? slash : "/";
    if (strlen(path) >= sizeof e->path - 16u)
        die("URL path too long");
    snprintf(e->path, sizeof e->path, "%s", path);

    const char *portp = NULL;
    size_t hl;
    if (e->authority[0] == '[') {
        const char *rb = strchr(e->authority, ']');
        if (!rb)
            die("bad IPv6 host in URL: %s", url);
        hl = (size_t)(rb - e->authority - 1);
        memcpy(e->host, e->authority + 1, hl);
        if (rb[1] == ':')
            portp = rb + 2;
        else if (rb[1])
            die("bad host in URL: %s", url);
    } else {
        const char *colon = strchr(e->authority, ':');
        hl = colon ? (size_t)(colon - e->authority) : al;
        memcpy(e->host, e->authority, hl);
        if (colon)
            portp = colon + 1;
    }
    e->host[hl] = '\0';
    snprintf(e->port, sizeof e->port, "%s", portp && *portp ? portp : G.tls ? "443" : "80");
    if (!e->host[0])
        die("bad host in URL: %s", url);

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(e->host, e->port, &hints, &res);
    if (rc != 0 || !res)
        die("cannot resolve %s:%s: %s", e->host, e->port, gai_strerror(rc));
    memcpy(&e->addr, res->ai_addr, res->ai_addrlen);
    e->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}

static void raise_nofile(uint32_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur >= need)
        return;
    if (rl.rlim_max < need) {
        struct rlimit r2 = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &r2) == 0)
            return;
        die("need %" PRIu32 " file descriptors but the hard limit is %llu (raise ulimit -n)", need,
            (unsigned long long)rl.rlim_max);
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("setrlimit(RLIMIT_NOFILE, %" PRIu32 "): %s", need, strerror(errno));
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static bool self_test(void)
{
    char acc[29];
    ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", acc); /* RFC 6455 section 1.3 */
    if (strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0)
        return false;
    static const uint64_t vals[] = {0, 1, 255, 256, 1000, 123456, 999999999, 60000000000ull};
    for (unsigned i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint64_t lo, hi;
        h_bounds(h_index(vals[i]), &lo, &hi);
        if (vals[i] < lo || vals[i] > hi || (double)(hi - lo) > (double)lo / 120.0 + 1.0)
            return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "echo") == 0)
        G.mode = MODE_ECHO;
    else if (strcmp(argv[1], "fanout") == 0)
        G.mode = MODE_FANOUT;
    else if (strcmp(argv[1], "churn") == 0)
        G.mode = MODE_CHURN;
    else if (strcmp(argv[1], "sink") == 0)
        G.mode = MODE_SINK;
    else
        die("unknown mode '%s' (expected echo, fanout, churn or sink; see --help)", argv[1]);

    G.url = G.mode == MODE_FANOUT ? "ws://127.0.0.1:8080/chat/room" : "ws://127.0.0.1:8080/echo/bench";
    G.conns = G.mode == MODE_CHURN ? 32 : 10;
    G.rooms = 1;
    G.members = 10;
    G.publishers = 1;
    G.rate = 1000;
    G.duration = 10;
    G.warmup = G.mode == MODE_ECHO ? 1.0 : G.mode == MODE_CHURN ? 0.5 : 0.0;
    G.settle = 0.5;
    G.size = 64;
    G.connect_timeout = 10;
    G.drain_timeout = 5;
    G.max_hs = 200;
    G.batch = 16;
    G.sender_cpu = -1;

    enum { O_URL = 256, O_CONNS, O_DUR, O_SIZE, O_WARM, O_ROOMS, O_MEMB, O_PUBS, O_RATE, O_SETTLE,
           O_CTO, O_DTO, O_MAXHS, O_JSON, O_QUIET, O_HELP, O_PAYLOAD, O_DEFLATE, O_DEFLATE_RO,
           O_CPU_PIDS, O_MESSAGE, O_OBJECTS, O_CROSS, O_BATCH, O_SENDER_CPU };
    static const struct option opts[] = {
        {"url", required_argument, NULL, O_URL},
        {"conns", required_argument, NULL, O_CONNS},
        {"duration", required_argument, NULL, O_DUR},
        {"size", required_argument, NULL, O_SIZE},
        {"warmup", required_argument, NULL, O_WARM},
        {"rooms", required_argument, NULL, O_ROOMS},
        {"members", required_argument, NULL, O_MEMB},
        {"publishers", required_argument, NULL, O_PUBS},
        {"rate", required_argument, NULL, O_RATE},
        {"settle", required_argument, NULL, O_SETTLE},
        {"connect-timeout", required_argument, NULL, O_CTO},
        {"drain-timeout", required_argument, NULL, O_DTO},
        {"max-handshakes", required_argument, NULL, O_MAXHS},
        {"json", no_argument, NULL, O_JSON},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {"payload", required_argument, NULL, O_PAYLOAD},
        {"deflate", no_argument, NULL, O_DEFLATE},
        {"deflate-recv-only", no_argument, NULL, O_DEFLATE_RO},
        {"cpu-pids", required_argument, NULL, O_CPU_PIDS},
        {"message", required_argument, NULL, O_MESSAGE},
        {"objects", required_argument, NULL, O_OBJECTS},
        {"cross-url", required_argument, NULL, O_CROSS},
        {"batch", required_argument, NULL, O_BATCH},
        {"sender-cpu", required_argument, NULL, O_SENDER_CPU},
        {NULL, 0, NULL, 0},
    };
    bool echo_opt = false, fan_opt = false, size_set = false, msg_opt = false;
    bool url_set = false, pace_opt = false, sink_opt = false;
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_URL: G.url = optarg; url_set = true; break;
        case O_MESSAGE: G.message = optarg; echo_opt = msg_opt = true; break;
        case O_OBJECTS: G.objects = parse_u32("objects", optarg, 1, 1000000); echo_opt = msg_opt = true; break;
        case O_CROSS: G.cross_url = optarg; fan_opt = pace_opt = true; break;
        case O_CONNS: G.conns = parse_u32("conns", optarg, 1, 1000000); echo_opt = true; break;
        case O_DUR: G.duration = parse_double("duration", optarg, 0.001, 86400); break;
        case O_SIZE: G.size = parse_u32("size", optarg, PL_HDR, MAX_SIZE); size_set = msg_opt = true; break;
        case O_WARM: G.warmup = parse_double("warmup", optarg, 0, 3600); break;
        case O_ROOMS: G.rooms = parse_u32("rooms", optarg, 1, 1000000); fan_opt = true; break;
        case O_MEMB: G.members = parse_u32("members", optarg, 2, 1000000); fan_opt = true; break;
        case O_PUBS: G.publishers = parse_u32("publishers", optarg, 1, 1000000); fan_opt = true; break;
        case O_RATE: G.rate = parse_double("rate", optarg, 0.001, 1e8); fan_opt = pace_opt = true; break;
        case O_SETTLE: G.settle = parse_double("settle", optarg, 0, 60); fan_opt = pace_opt = true; break;
        case O_BATCH: G.batch = parse_u32("batch", optarg, 1, 4096); sink_opt = true; break;
        case O_SENDER_CPU:
            G.sender_cpu = (int)parse_u32("sender-cpu", optarg, 0, CPU_SETSIZE - 1);
            sink_opt = true;
            break;
        case O_CTO: G.connect_timeout = parse_double("connect-timeout", optarg, 0.001, 3600); break;
        case O_DTO: G.drain_timeout = parse_double("drain-timeout", optarg, 0, 3600); break;
        case O_MAXHS: G.max_hs = parse_u32("max-handshakes", optarg, 1, 1000000); break;
        case O_JSON: G.json = true; break;
        case O_QUIET: G.quiet = true; break;
        case O_HELP: usage(stdout); return 0;
        case O_PAYLOAD:
            if (strcmp(optarg, "json") == 0)
                G.payload_json = true;
            else if (strcmp(optarg, "plain") == 0)
                G.payload_json = false;
            else
                die("invalid --payload '%s' (plain or json)", optarg);
            msg_opt = true;
            break;
        case O_DEFLATE: G.deflate = G.deflate_send = msg_opt = true; break;
        case O_DEFLATE_RO: G.deflate = msg_opt = true; G.deflate_send = false; break;
        case O_CPU_PIDS: parse_pids(optarg); break;
        default: fputs("see roomd-bench --help\n", stderr); return 2;
        }
    }
    if (optind < argc)
        die("unexpected argument '%s'", argv[optind]);
    if (G.payload_json && !size_set)
        G.size = JSON_DEFAULT_SIZE;
    bool fan_like = G.mode == MODE_FANOUT || G.mode == MODE_SINK;
    if (!fan_like && fan_opt)
        die("--rooms/--members/--publishers/--rate/--settle only apply to fanout");
    if (G.mode != MODE_SINK && sink_opt)
        die("--batch/--sender-cpu only apply to sink");
    if (G.mode == MODE_SINK && (pace_opt || url_set || G.deflate || G.ncpu_pids))
        die("sink runs its own sender as fast as it can: --url/--rate/--settle/--cross-url/"
            "--deflate/--cpu-pids do not apply");
    if (G.mode == MODE_CHURN && msg_opt)
        die("churn sends no messages: --message/--objects/--size/--payload/--deflate do not apply");
    if (fan_like && echo_opt)
        die("--conns/--objects/--message only apply to echo (fanout uses --rooms x --members)");
    if (G.mode == MODE_SINK && G.batch * (uint64_t)(G.size + 14u) > 64u * 1024u * 1024u)
        die("--batch x --size must stay under 64 MiB");
    if (fan_like) {
        if (G.publishers > G.members)
            die("--publishers (%" PRIu32 ") must be <= --members (%" PRIu32 ")", G.publishers,
                G.members);
        uint64_t total = (uint64_t)G.rooms * G.members;
        if (total > 1000000u)
            die("--rooms x --members must be <= 1000000");
        G.conns = (uint32_t)total;
    }
    if (!self_test())
        die("internal self-test failed (SHA-1/base64/histogram)");
    if (G.mode != MODE_SINK)
        parse_url(G.url, &G.ep0);
    if (G.cross_url) {
        parse_url(G.cross_url, &G.epx);
        if (G.mode != MODE_FANOUT)
            die("--cross-url only applies to fanout");
        if (G.members < G.publishers + 2)
            die("--cross-url needs --members >= --publishers + 2 (receivers in both cells)");
    }
    raise_nofile(G.conns + 64u);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = (int)SA_RESETHAND; /* a second ^C kills */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = now_ns() ^ (uint64_t)getpid() << 32;
    G.rng = seed | 1u;

    G.ep = epoll_create1(EPOLL_CLOEXEC);
    if (G.ep < 0)
        die("epoll_create1: %s", strerror(errno));
    G.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (G.tfd < 0)
        die("timerfd_create: %s", strerror(errno));
    struct epoll_event tev;
    memset(&tev, 0, sizeof tev);
    tev.events = EPOLLIN;
    tev.data.u64 = TIMER_TAG;
    if (epoll_ctl(G.ep, EPOLL_CTL_ADD, G.tfd, &tev) < 0)
        die("epoll_ctl(timerfd): %s", strerror(errno));

    if (G.mode == MODE_CHURN) {
        if (!G.quiet)
            fprintf(stderr, "roomd-bench: churn: %" PRIu32 " connections at a time to %s:%s%s ...\n",
                    G.conns, G.ep0.host, G.ep0.port, G.tls ? " (TLS)" : "");
        phase_churn();
        bool cok = CH.failed == 0 && !g_stop;
        for (uint32_t i = 0; i < G.nerrs && i < MAX_ERRS; i++)
            fprintf(stderr, "roomd-bench: error: %s\n", G.errs[i]);
        if (G.nerrs > MAX_ERRS)
            fprintf(stderr, "roomd-bench: ... and %" PRIu32 " more errors\n", G.nerrs - MAX_ERRS);
        if (g_stop)
            fprintf(stderr, "roomd-bench: interrupted; partial results (exit status 1)\n");
        if (G.json) {
            report_churn(stderr, false, cok);
            report_churn(stdout, true, cok);
        } else {
            report_churn(stdout, false, cok);
        }
        fflush(stdout);
        close(G.tfd);
        close(G.ep);
        return cok ? 0 : 1;
    }

    G.c = xcalloc(G.conns, sizeof *G.c);
    G.dirty = xcalloc(G.conns, sizeof *G.dirty);
    G.rbuf = xcalloc(DIRECT_THRESHOLD + RBUF_SIZE, 1);
    build_templates();
    if (G.deflate) {
        memset(&G.zin, 0, sizeof G.zin);
        if (inflateInit2(&G.zin, -15) != Z_OK) /* 15: any window the server may use */
            die("inflateInit2 failed");
        G.zin_init = true;
        G.icap = RBUF_SIZE > 2u * G.size ? RBUF_SIZE : 2u * (size_t)G.size;
        G.ibuf = xrealloc(NULL, G.icap);
        if (G.deflate_send) {
            G.sbuf = xcalloc(G.size, 1);
            G.zcap = (size_t)G.size + G.size / 8u + 256u; /* > deflateBound + flush marker */
            G.zbuf = xrealloc(NULL, G.zcap);
        }
    }
    if (fan_like) {
        G.trk = xcalloc((size_t)G.conns * G.publishers, sizeof *G.trk);
        G.npubs = G.rooms * G.publishers;
        G.pubs = xcalloc(G.npubs, sizeof *G.pubs);
    }
    for (uint32_t i = 0; i < G.conns; i++) {
        conn *c = &G.c[i];
        c->fd = -1;
        c->id = i;
        c->state = ST_IDLE;
        if (fan_like) {
            c->room = i / G.members;
            c->member = i % G.members;
            c->is_pub = G.mode == MODE_FANOUT && c->member < G.publishers; /* sink: the child publishes */
            c->cross = G.cross_url && !c->is_pub && (c->member - G.publishers) % 2 == 1;
            c->trk = G.trk + (size_t)i * G.publishers;
            if (c->is_pub)
                G.pubs[c->room * G.publishers + c->member] = i;
        }
    }
    if (G.mode == MODE_SINK) {
        sink_start(G.sender_cpu);
        if (!G.quiet)
            fprintf(stderr, "roomd-bench: sink: sender pid %ld%s, batches of %" PRIu32 " messages\n",
                    (long)SK.pid, G.sender_cpu >= 0 ? " (pinned)" : "", G.batch);
    }

    if (!G.quiet)
        fprintf(stderr, "roomd-bench: connecting %" PRIu32 " connections to %s:%s ...\n", G.conns,
                G.ep0.host, G.ep0.port);
    phase_connect();
    if (G.n_opened > G.n_lost && !g_stop) {
        if (!G.quiet)
            fprintf(stderr, "roomd-bench: %" PRIu32 " connected in %.3f s%s\n", G.n_opened,
                    (double)(G.t_conn_last - G.t_conn0) / 1e9,
                    G.n_failed ? " (some failed; running with the rest)" : "");
        if (G.mode == MODE_ECHO)
            phase_echo();
        else if (G.mode == MODE_SINK)
            phase_sink();
        else
            phase_fanout();
    }
    phase_close();
    bool sink_ok = G.mode != MODE_SINK || sink_finish();

    bool ok = G.n_failed == 0 && G.n_lost == 0 && G.proto_errors == 0 && !g_stop && sink_ok;
    for (uint32_t i = 0; i < G.nerrs && i < MAX_ERRS; i++)
        fprintf(stderr, "roomd-bench: error: %s\n", G.errs[i]);
    if (G.nerrs > MAX_ERRS)
        fprintf(stderr, "roomd-bench: ... and %" PRIu32 " more errors\n", G.nerrs - MAX_ERRS);
    if (g_stop)
        fprintf(stderr, "roomd-bench: interrupted; partial results (exit status 1)\n");
    if (G.json) {
        report(stderr);
        report_json(stdout, ok);
    } else {
        report(stdout);
    }
    if (!ok && !(g_stop && G.n_failed == 0 && G.n_lost == 0 && G.proto_errors == 0))
        fprintf(stderr,
                "roomd-bench: FAILED: %" PRIu32 " of %" PRIu32 " connections failed to connect, %" PRIu32
                " closed unexpectedly, %" PRIu64 " protocol errors\n",
                G.n_failed, G.conns, G.n_lost, G.proto_errors);
    fflush(stdout);

    for (uint32_t i = 0; i < G.conns; i++) {
        free(G.c[i].wbuf);
        free(G.c[i].pend);
        free(G.c[i].frag);
    }
    free(G.c);
    free(G.dirty);
    free(G.rbuf);
    free(G.tmpl);
    free(G.ibuf);
    free(G.sbuf);
    free(G.zbuf);
    if (G.zin_init)
        inflateEnd(&G.zin);
    if (G.zout_init)
        deflateEnd(&G.zout);
    free(G.trk);
    free(G.pubs);
    close(G.tfd);
    close(G.ep);
    return ok ? 0 : 1;
}
