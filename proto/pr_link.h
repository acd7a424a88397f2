/* pr_link: the read side of a gateway<->shard stream, shared by both
 * processes: read what the socket has (a bounded number of chunks, so one
 * busy link cannot starve the loop), split it into frames and hand each
 * frame body to a callback, keeping a partial frame for the next call. */
#ifndef PR_LINK_H
#define PR_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "rd_buf.h"

/* Called once per complete frame; body is valid during the call only.
 * Return 0 to go on, nonzero to stop at once (the link was torn down and
 * `in` may be gone). */
typedef int (*pr_link_frame_fn)(void *arg, const uint8_t *body, size_t len);

/* 0: everything available was read and dispatched (or the callback stopped);
 * -1: the link must be closed, *ret_why says why ("peer closed the link", a
 * strerror text, "frame exceeds the size cap"). */
int pr_link_read(int fd, rd_buf *in, size_t chunk, size_t max_frame, pr_link_frame_fn fn, void *arg,
                 const char **ret_why);

#endif
