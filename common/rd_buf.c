#include "rd_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void rd_oom(size_t n)
{
    fprintf(stderr, "roomd: out of memory allocating %zu bytes\n", n);
    abort();
}

void *rd_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        rd_oom(n);
    return p;
}

void *rd_xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        rd_oom(n * m);
    return p;
}

void *rd_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        rd_oom(n);
    return q;
}

char *rd_xstrndup(const char *s, size_t n)
{
    char *d = rd_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void rd_buf_free(rd_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->off = b->len = b->cap = 0;
}

uint8_t *rd_buf_reserve(rd_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return b->p + b->len;
    /* Reuse the consumed prefix before growing. */
    if (b->off > 0 && b->cap - (b->len - b->off) >= n) {
        rd_buf_compact(b);
        return b->p + b->len;
    }
    size_t need = b->len + n;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->p = rd_xrealloc(b->p, cap);
    b->cap = cap;
    return b->p + b->len;
}

void rd_buf_append(rd_buf *b, const void *data, size_t n)
{
    if (n == 0)
        return;
    memcpy(rd_buf_reserve(b, n), data, n);
    b->len += n;
}

void rd_buf_append_u8(rd_buf *b, uint8_t v)
{
    *rd_buf_reserve(b, 1) = v;
    b->len++;
}

void rd_buf_consume(rd_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void rd_buf_compact(rd_buf *b)
{
    if (b->off == 0)
        return;
    size_t n = b->len - b->off;
    if (n)
        memmove(b->p, b->p + b->off, n);
    b->off = 0;
    b->len = n;
}

void rd_buf_reset(rd_buf *b, size_t shrink_above)
{
    b->off = b->len = 0;
    if (shrink_above && b->cap > shrink_above)
        rd_buf_free(b);
}

void rd_buf_printf(rd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *w = (char *)rd_buf_reserve(b, 256);
    int n = vsnprintf(w, 256, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n >= 256) {
        w = (char *)rd_buf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(w, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    rd_buf_commit(b, (size_t)n);
}
