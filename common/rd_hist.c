#include "rd_hist.h"

#include <inttypes.h>
#include <stdio.h>

const uint64_t rd_hist_bounds_us[RD_HIST_BOUNDS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
    2500000,
};

void rd_hist_observe(rd_hist *h, uint64_t us)
{
    size_t i = 0;
    while (i < RD_HIST_BOUNDS && us > rd_hist_bounds_us[i])
        i++;
    h->counts[i]++;
    h->sum_us += us;
}

uint64_t rd_hist_count(const rd_hist *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= RD_HIST_BOUNDS; i++)
        n += h->counts[i];
    return n;
}

void rd_hist_render(rd_buf *b, const char *name, const char *help, bool header, const char *labels,
                    const rd_hist *h)
{
    char line[512];
    int n;
    const char *sep = labels[0] ? "," : "";
    if (header) {
        n = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
        rd_buf_append(b, line, (size_t)n);
    }
    uint64_t cum = 0;
    for (size_t i = 0; i <= RD_HIST_BOUNDS; i++) {
        cum += h->counts[i];
        char le[32];
        if (i < RD_HIST_BOUNDS)
            snprintf(le, sizeof le, "%g", (double)rd_hist_bounds_us[i] / 1e6);
        else
            snprintf(le, sizeof le, "+Inf");
        n = snprintf(line, sizeof line, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name, labels, sep, le,
                     cum);
        rd_buf_append(b, line, (size_t)n);
    }
    const char *lo = labels[0] ? "{" : "", *lc = labels[0] ? "}" : "";
    n = snprintf(line, sizeof line, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %" PRIu64 "\n", name, lo, labels,
                 lc, (double)h->sum_us / 1e6, name, lo, labels, lc, cum);
    rd_buf_append(b, line, (size_t)n);
}
