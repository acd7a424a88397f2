/* rd_buf: a growable byte buffer with a read offset.
 *
 * Bytes live in p[off .. len). Writers append at len; readers consume from
 * off. rd_buf_compact() moves the unread bytes to the front. The buffer owns
 * p; rd_buf_free() releases it and leaves an empty, reusable buffer.
 * Allocation failure aborts the process (rd_xmalloc), as in Redis' zmalloc:
 * a half-applied append is worse than a crash we can see.
 */
#ifndef RD_BUF_H
#define RD_BUF_H

#include <stddef.h>
#include <stdint.h>

#define RD_ERR_LEN 128

typedef struct rd_buf {
    uint8_t *p;
    size_t off;  /* first unread byte */
    size_t len;  /* end of written bytes */
    size_t cap;
} rd_buf;

#define RD_BUF_INIT { NULL, 0, 0, 0 }

void *rd_xmalloc(size_t n);
void *rd_xcalloc(size_t n, size_t m);
void *rd_xrealloc(void *p, size_t n);
char *rd_xstrndup(const char *s, size_t n);

void rd_buf_free(rd_buf *b);
/* Make room for n more bytes at the end; returns the write pointer. */
uint8_t *rd_buf_reserve(rd_buf *b, size_t n);
void rd_buf_append(rd_buf *b, const void *data, size_t n);
void rd_buf_append_u8(rd_buf *b, uint8_t v);
/* Append formatted text (no NUL). */
__attribute__((format(printf, 2, 3))) void rd_buf_printf(rd_buf *b, const char *fmt, ...);
/* Mark n more bytes after len as written (after rd_buf_reserve). */
static inline void rd_buf_commit(rd_buf *b, size_t n) { b->len += n; }
static inline size_t rd_buf_avail(const rd_buf *b) { return b->len - b->off; }
static inline uint8_t *rd_buf_data(const rd_buf *b) { return b->p ? b->p + b->off : NULL; }
/* Consume n unread bytes; resets offsets to 0 when the buffer empties. */
void rd_buf_consume(rd_buf *b, size_t n);
void rd_buf_compact(rd_buf *b);
/* Drop everything; with shrink_above > 0 also free storage larger than it. */
void rd_buf_reset(rd_buf *b, size_t shrink_above);

#endif
