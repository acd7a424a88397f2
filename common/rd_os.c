#include "rd_os.h"

#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>

int rd_mkdir_p(const char *path)
{
    char tmp[512];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int64_t rd_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    /* With CAP_SYS_RESOURCE the hard limit itself can go up to fs.nr_open;
     * a realtime server holds one descriptor per client. */
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    unsigned long long nr_open = 0;
    if (f) {
        if (fscanf(f, "%llu", &nr_open) != 1)
            nr_open = 0;
        fclose(f);
    }
    if (nr_open > 1048576)
        nr_open = 1048576;
    if (nr_open > rl.rlim_max) {
        struct rlimit want = { (rlim_t)nr_open, (rlim_t)nr_open };
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? INT64_MAX : (int64_t)rl.rlim_cur;
}
