/* rd_os: process set-up both programs share. */
#ifndef RD_OS_H
#define RD_OS_H

#include <stdint.h>

/* mkdir -p. 0 or -errno. */
int rd_mkdir_p(const char *path);
/* Raise RLIMIT_NOFILE as far as allowed (the hard limit too, up to
 * fs.nr_open capped at 2^20, when privileged); returns the soft limit now
 * in force (INT64_MAX when unlimited). */
int64_t rd_raise_nofile(void);

#endif
