#include "rd_redis.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int rd_redis_url_parse(const char *url, rd_redis_url *ret, char err[RD_ERR_LEN])
{
    rd_redis_url u = { .port = 6379 };
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0) {
        snprintf(err, RD_ERR_LEN, "--redis: '%s' is not redis://[[user]:password@]host[:port][/db]", url);
        return -EINVAL;
    }
    p += 8;
    const char *end = p + strcspn(p, "/");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q; /* the last '@': a password may contain one */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                u.user = rd_xstrndup(p, (size_t)(colon - p));
            u.password = rd_xstrndup(colon + 1, (size_t)(at - colon - 1));
        } else {
            u.password = rd_xstrndup(p, (size_t)(at - p)); /* redis://password@host */
        }
        p = at + 1;
    }
    const char *hs = p, *he;
    if (*p == '[') {
        hs = p + 1;
        he = memchr(hs, ']', (size_t)(end - hs));
        if (!he)
            goto bad;
        p = he + 1;
    } else {
        he = memchr(p, ':', (size_t)(end - p));
        if (!he)
            he = end;
        p = he;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof u.host)
        goto bad;
    memcpy(u.host, hs, (size_t)(he - hs));
    u.host[he - hs] = '\0';
    if (p < end && *p == ':') {
        char *e;
        long port = strtol(p + 1, &e, 10);
        if (e != end || port < 1 || port > 65535)
            goto bad;
        u.port = (int)port;
    } else if (p != end) {
        goto bad;
    }
    *ret = u;
    return 0;
bad:
    rd_redis_url_free(&u);
    snprintf(err, RD_ERR_LEN, "--redis: cannot parse host[:port] in '%s'", url);
    return -EINVAL;
}

void rd_redis_url_free(rd_redis_url *u)
{
    free(u->user);
    free(u->password);
    u->user = u->password = NULL;
}

static void put_bulk(rd_buf *b, const char *s)
{
    char hdr[32];
    int n = snprintf(hdr, sizeof hdr, "$%zu\r\n", strlen(s));
    rd_buf_append(b, hdr, (size_t)n);
    rd_buf_append(b, s, strlen(s));
    rd_buf_append(b, "\r\n", 2);
}

int rd_redis_check(const rd_redis_url *u, int timeout_ms, char err[RD_ERR_LEN])
{
    char port[16];
    snprintf(port, sizeof port, "%d", u->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    int r = getaddrinfo(u->host, port, &hints, &res);
    if (r != 0) {
        snprintf(err, RD_ERR_LEN, "--redis: cannot resolve %s: %s", u->host, gai_strerror(r));
        return -EHOSTUNREACH;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, RD_ERR_LEN, "--redis: %s:%d is unreachable", u->host, u->port);
        return -ECONNREFUSED;
    }
    /* AUTH [user] password, or PING without a password. */
    rd_buf cmd = RD_BUF_INIT;
    if (u->password) {
        rd_buf_append(&cmd, u->user ? "*3\r\n" : "*2\r\n", 4);
        put_bulk(&cmd, "AUTH");
        if (u->user)
            put_bulk(&cmd, u->user);
        put_bulk(&cmd, u->password);
    } else {
        rd_buf_append(&cmd, "*1\r\n", 4);
        put_bulk(&cmd, "PING");
    }
    char reply[256] = "";
    ssize_t n = send(fd, rd_buf_data(&cmd), rd_buf_avail(&cmd), MSG_NOSIGNAL);
    rd_buf_free(&cmd);
    if (n > 0)
        n = recv(fd, reply, sizeof reply - 1, 0);
    close(fd);
    if (n <= 0) {
        snprintf(err, RD_ERR_LEN, "--redis: %s:%d did not answer", u->host, u->port);
        return -ETIMEDOUT;
    }
    reply[n] = '\0';
    reply[strcspn(reply, "\r\n")] = '\0';
    if (reply[0] == '+')
        return 0;
    snprintf(err, RD_ERR_LEN, "--redis: %s:%d %s: %s", u->host, u->port,
             u->password ? "refused the password" : "requires a password", reply + 1);
    return -EACCES;
}
