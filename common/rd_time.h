/* rd_time: clocks. Monotonic for intervals, realtime for timestamps a user
 * sees (connectedAt, log lines). */
#ifndef RD_TIME_H
#define RD_TIME_H

#include <stdint.h>

uint64_t rd_mono_ns(void);
uint64_t rd_mono_ms(void);
uint64_t rd_wall_ms(void);  /* milliseconds since the Unix epoch */
/* RFC 3339 UTC with milliseconds: "2026-11-24T14:20:00.123Z" (24 chars + NUL). */
void rd_wall_format(uint64_t wall_ms, char out[32]);

#endif
