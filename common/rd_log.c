#include "rd_log.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rd_time.h"

int rd_log_level = RD_LOG_INFO;
static char log_proc[64] = "roomd";

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void rd_log_init(const char *proc, int level)
{
    snprintf(log_proc, sizeof log_proc, "%s", proc);
    rd_log_level = level;
}

int rd_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void rd_log_write(int level, const char *fmt, ...)
{
    char line[2048];
    char ts[32];
    rd_wall_format(rd_wall_ms(), ts);
    int n = snprintf(line, sizeof line, "ts=%s level=%s proc=%s ", ts,
                     level_names[level < 0 ? 0 : level > 3 ? 3 : level], log_proc);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    /* One write per line so concurrent processes sharing stderr do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

size_t rd_log_quote(char *out, size_t cap, const char *s, size_t n)
{
    int bare = n > 0;
    for (size_t i = 0; i < n && bare; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            bare = 0;
    }
    size_t o = 0;
    if (bare && n < cap) {
        memcpy(out, s, n);
        return n;
    }
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < ' ' || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    return o;
}
