/* rd_log: one line per event, logfmt:
 *   ts=2026-11-24T14:20:00.123Z level=info proc=gateway msg="shard up" shard=shard-0
 * Callers format the tail ("msg=... key=value ...") themselves; RD_LOG checks
 * the level before any formatting happens. Only the processes log: common/
 * and proto/ return errors and let the caller log once. */
#ifndef RD_LOG_H
#define RD_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum rd_log_level { RD_LOG_ERROR = 0, RD_LOG_WARN = 1, RD_LOG_INFO = 2, RD_LOG_DEBUG = 3 };

extern int rd_log_level;

/* proc: "gateway" or the shard's name; copied. json: write each line as a
 * JSON object instead (the same keys; every value a string). */
void rd_log_init(const char *proc, int level, bool json);
/* "error", "warn", "info", "debug" -> level, or -1. */
int rd_log_level_parse(const char *s);
void rd_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define RD_LOG(level, ...) do { \
    if ((level) <= rd_log_level) rd_log_write((level), __VA_ARGS__); \
} while (0)
#define rd_err(...) RD_LOG(RD_LOG_ERROR, __VA_ARGS__)
#define rd_warn(...) RD_LOG(RD_LOG_WARN, __VA_ARGS__)
#define rd_info(...) RD_LOG(RD_LOG_INFO, __VA_ARGS__)
#define rd_debug(...) RD_LOG(RD_LOG_DEBUG, __VA_ARGS__)

/* Write s[0..n) as a logfmt value: bare when safe, else quoted with escapes,
 * truncated to max bytes. Returns bytes written to out (cap >= 8). */
size_t rd_log_quote(char *out, size_t cap, const char *s, size_t n);
/* Convert one logfmt line (key=value key="quoted \"value\"" ...) into a JSON
 * object in out (cap >= 16). Returns its length. Exposed for tests. */
size_t rd_log_logfmt_to_json(const char *in, size_t n, char *out, size_t cap);

#endif
