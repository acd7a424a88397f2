#include "rd_log.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rd_time.h"

int rd_log_level = RD_LOG_INFO;
static char log_proc[64] = "roomd";
static bool log_json;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void rd_log_init(const char *proc, int level, bool json)
{
    snprintf(log_proc, sizeof log_proc, "%s", proc);
    rd_log_level = level;
    log_json = json;
}

static size_t json_put(char *out, size_t o, size_t cap, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

size_t rd_log_logfmt_to_json(const char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0, i = 0;
    out[o++] = '{';
    bool first = true;
    while (i < n && o + 16 < cap) {
        while (i < n && in[i] == ' ')
            i++;
        size_t ks = i;
        while (i < n && in[i] != '=' && in[i] != ' ')
            i++;
        if (i == ks)
            break;
        size_t kl = i - ks;
        char val[2048];
        size_t vl = 0;
        if (i < n && in[i] == '=') {
            i++;
            if (i < n && in[i] == '"') {
                /* Undo rd_log_quote: \" \\ and \xNN. */
                for (i++; i < n && in[i] != '"' && vl < sizeof val - 1; i++) {
                    if (in[i] == '\\' && i + 1 < n) {
                        if (in[i + 1] == 'x' && i + 3 < n) {
                            unsigned v;
                            if (sscanf(in + i + 2, "%2x", &v) == 1)
                                val[vl++] = (char)v;
                            i += 3;
                        } else {
                            val[vl++] = in[++i];
                        }
                    } else {
                        val[vl++] = in[i];
                    }
                }
                i++;
            } else {
                while (i < n && in[i] != ' ' && vl < sizeof val - 1)
                    val[vl++] = in[i++];
            }
        }
        if (!first)
            out[o++] = ',';
        first = false;
        out[o++] = '"';
        o = json_put(out, o, cap, in + ks, kl);
        out[o++] = '"';
        out[o++] = ':';
        out[o++] = '"';
        o = json_put(out, o, cap, val, vl);
        out[o++] = '"';
    }
    out[o++] = '}';
    return o;
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
    if (log_json) {
        char js[4096];
        size_t jl = rd_log_logfmt_to_json(line, len, js, sizeof js - 1);
        js[jl++] = '\n';
        ssize_t wj = write(STDERR_FILENO, js, jl);
        (void)wj;
        return;
    }
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
