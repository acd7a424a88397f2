/* pr_mp: the subset of msgpack the gateway<->shard protocol uses.
 *
 * Writers append the shortest encoding to an rd_buf. Readers walk a
 * bounded cursor without copying: strings and binaries come back as
 * pointers into the input. Every reader returns 0 on success or -EBADMSG on
 * truncated input, a type mismatch or a value out of range, and then leaves
 * the cursor unchanged. Nesting in pr_mp_skip is limited to PR_MP_MAX_DEPTH.
 */
#ifndef PR_MP_H
#define PR_MP_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "rd_buf.h"

#define PR_MP_MAX_DEPTH 16

void pr_mp_put_nil(rd_buf *b);
void pr_mp_put_bool(rd_buf *b, bool v);
void pr_mp_put_uint(rd_buf *b, uint64_t v);
void pr_mp_put_int(rd_buf *b, int64_t v);
void pr_mp_put_str(rd_buf *b, const char *s, size_t n);
void pr_mp_put_bin(rd_buf *b, const void *p, size_t n);
void pr_mp_put_array(rd_buf *b, uint32_t n);
void pr_mp_put_map(rd_buf *b, uint32_t n);
/* Write only the bin header for n bytes; the caller appends the n bytes. */
void pr_mp_put_bin_header(rd_buf *b, uint32_t n);

typedef struct pr_mp_cur {
    const uint8_t *p;
    const uint8_t *end;
} pr_mp_cur;

static inline void pr_mp_cur_init(pr_mp_cur *c, const void *p, size_t n)
{
    c->p = (const uint8_t *)p;
    c->end = c->p + n;
}
static inline bool pr_mp_at_end(const pr_mp_cur *c) { return c->p >= c->end; }

enum pr_mp_type { PR_MP_NIL, PR_MP_BOOL, PR_MP_UINT, PR_MP_INT, PR_MP_FLOAT,
                  PR_MP_STR, PR_MP_BIN, PR_MP_ARRAY, PR_MP_MAP, PR_MP_EXT, PR_MP_INVALID };
/* Type of the next value without consuming it (PR_MP_INVALID at end or on a
 * reserved byte). Non-negative ints report PR_MP_UINT. */
enum pr_mp_type pr_mp_peek(const pr_mp_cur *c);

int pr_mp_get_nil(pr_mp_cur *c);
int pr_mp_get_bool(pr_mp_cur *c, bool *ret);
int pr_mp_get_uint(pr_mp_cur *c, uint64_t *ret);          /* any non-negative int */
int pr_mp_get_int(pr_mp_cur *c, int64_t *ret);            /* any int fitting int64 */
int pr_mp_get_str(pr_mp_cur *c, const char **ret, size_t *ret_len);
/* Optional string: nil gives *ret = NULL, *ret_len = 0. */
int pr_mp_get_str_or_nil(pr_mp_cur *c, const char **ret, size_t *ret_len);
/* bin, or str for interoperability with encoders that only know str */
int pr_mp_get_bin(pr_mp_cur *c, const uint8_t **ret, size_t *ret_len);
int pr_mp_get_array(pr_mp_cur *c, uint32_t *ret_n);
int pr_mp_get_map(pr_mp_cur *c, uint32_t *ret_n);
/* Skip one complete value of any type (nested up to PR_MP_MAX_DEPTH). */
int pr_mp_skip(pr_mp_cur *c);

#endif
