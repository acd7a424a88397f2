/* rd_hist: latency histograms with fixed bucket bounds, shared by the
 * gateway and the shards (shards send theirs in PONG, the gateway renders
 * them in /metrics), so bounds never need to travel. */
#ifndef RD_HIST_H
#define RD_HIST_H

#include <stdbool.h>
#include <stdint.h>

#include "rd_buf.h"

/* Upper bounds, microseconds: 50 us .. 2.5 s; one more bucket for +Inf. */
#define RD_HIST_BOUNDS 15
extern const uint64_t rd_hist_bounds_us[RD_HIST_BOUNDS];

typedef struct rd_hist {
    uint64_t counts[RD_HIST_BOUNDS + 1]; /* per bucket (not cumulative), last: +Inf */
    uint64_t sum_us;
} rd_hist;

void rd_hist_observe(rd_hist *h, uint64_t us);
uint64_t rd_hist_count(const rd_hist *h);
/* Prometheus text format: name_bucket{labels,le=...} (cumulative), name_sum
 * (seconds), name_count. labels: "" or 'a="b",c="d"' (already escaped).
 * With header, the # HELP and # TYPE lines first. */
void rd_hist_render(rd_buf *b, const char *name, const char *help, bool header, const char *labels,
                    const rd_hist *h);

#endif
