/* rd_uuid: UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit
 * counter that keeps ids from one process strictly increasing within a
 * millisecond (method 1), then 62 random bits. Not thread-safe: each of our
 * processes is single-threaded. */
#ifndef RD_UUID_H
#define RD_UUID_H

#include <stdint.h>

#define RD_UUID_STR_LEN 36

void rd_uuid7(uint8_t out[16]);
/* Lower-case hex, 8-4-4-4-12, NUL-terminated. */
void rd_uuid_format(const uint8_t u[16], char out[RD_UUID_STR_LEN + 1]);
void rd_uuid7_str(char out[RD_UUID_STR_LEN + 1]);

#endif
