#include "pr_link.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "pr_msg.h"

int pr_link_read(int fd, rd_buf *in, size_t chunk, size_t max_frame, pr_link_frame_fn fn, void *arg,
                 const char **ret_why)
{
    for (int rounds = 0; rounds < 4; rounds++) {
        uint8_t *w = rd_buf_reserve(in, chunk);
        ssize_t n = recv(fd, w, chunk, 0);
        if (n == 0) {
            *ret_why = "peer closed the link";
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            *ret_why = strerror(errno);
            return -1;
        }
        rd_buf_commit(in, (size_t)n);
        for (;;) {
            const uint8_t *body;
            size_t blen;
            int r = pr_frame_next(rd_buf_data(in), rd_buf_avail(in), max_frame, &body, &blen);
            if (r == 0)
                break;
            if (r < 0) {
                *ret_why = "frame exceeds the size cap";
                return -1;
            }
            if (fn(arg, body, blen))
                return 0;
            rd_buf_consume(in, (size_t)r);
        }
        if ((size_t)n < chunk)
            break;
    }
    return 0;
}
