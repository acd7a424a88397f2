#include "rd_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void *field(void *cfg, const rd_cfg_opt *o)
{
    return (char *)cfg + o->offset;
}

static const rd_cfg_opt *find(const rd_cfg_opt *tab, const char *name, size_t n)
{
    for (const rd_cfg_opt *o = tab; o->name; o++)
        if (strlen(o->name) == n && strncmp(o->name, name, n) == 0)
            return o;
    return NULL;
}

static int parse_u64_suffix(const char *s, uint64_t *ret, const char *const *sfx,
                            const uint64_t *mult, size_t nsfx)
{
    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    uint64_t m = 1;
    if (*end) {
        size_t i;
        for (i = 0; i < nsfx; i++)
            if (strcasecmp(end, sfx[i]) == 0)
                break;
        if (i == nsfx)
            return -EINVAL;
        m = mult[i];
    }
    if (m && v > UINT64_MAX / m)
        return -EINVAL;
    *ret = (uint64_t)v * m;
    return 0;
}

int rd_parse_size(const char *s, uint64_t *ret)
{
    static const char *const sfx[] = { "b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib" };
    static const uint64_t mult[] = { 1, 1u << 10, 1u << 10, 1u << 10, 1u << 20, 1u << 20,
                                     1u << 20, 1u << 30, 1u << 30, 1u << 30 };
    return parse_u64_suffix(s, ret, sfx, mult, sizeof mult / sizeof mult[0]);
}

int rd_parse_ms(const char *s, uint64_t *ret)
{
    static const char *const sfx[] = { "ms", "s", "m", "h" };
    static const uint64_t mult[] = { 1, 1000, 60000, 3600000 };
    return parse_u64_suffix(s, ret, sfx, mult, 4);
}

static int parse_bool(const char *s, bool *ret)
{
    if (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
        *ret = true;
    else if (!strcasecmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
        *ret = false;
    else
        return -EINVAL;
    return 0;
}

static int check_bounds(const rd_cfg_opt *o, int64_t v, char err[RD_ERR_LEN])
{
    if ((o->min || o->max) && (v < o->min || v > o->max)) {
        snprintf(err, RD_ERR_LEN, "--%s: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                 o->name, v, o->min, o->max);
        return -EINVAL;
    }
    return 0;
}

static int set_opt(const rd_cfg_opt *o, void *cfg, const char *value, char err[RD_ERR_LEN])
{
    void *f = field(cfg, o);
    uint64_t u;
    switch (o->type) {
    case RD_CFG_STR: {
        char **p = f;
        free(*p);
        *p = value ? strdup(value) : NULL;
        return 0;
    }
    case RD_CFG_LIST: {
        char ***p = f;
        size_t n = 0;
        if (!value)
            return 0;
        while (*p && (*p)[n])
            n++;
        *p = rd_xrealloc(*p, (n + 2) * sizeof **p);
        (*p)[n] = strdup(value);
        (*p)[n + 1] = NULL;
        return 0;
    }
    case RD_CFG_INT: {
        char *end;
        errno = 0;
        long long v = value ? strtoll(value, &end, 10) : 0;
        if (!value || errno || end == value || *end) {
            snprintf(err, RD_ERR_LEN, "--%s: '%s' is not an integer", o->name, value ? value : "");
            return -EINVAL;
        }
        if (check_bounds(o, v, err) < 0)
            return -EINVAL;
        *(int64_t *)f = v;
        return 0;
    }
    case RD_CFG_SIZE:
    case RD_CFG_MS: {
        int r = o->type == RD_CFG_SIZE ? rd_parse_size(value, &u) : rd_parse_ms(value, &u);
        if (r < 0 || u > INT64_MAX) {
            snprintf(err, RD_ERR_LEN, "--%s: '%s' is not a valid %s", o->name, value ? value : "",
                     o->type == RD_CFG_SIZE ? "size (e.g. 64k, 1m)" : "duration (e.g. 500ms, 10s)");
            return -EINVAL;
        }
        if (check_bounds(o, (int64_t)u, err) < 0)
            return -EINVAL;
        *(uint64_t *)f = u;
        return 0;
    }
    case RD_CFG_BOOL:
        if (!value || parse_bool(value, f) < 0) {
            snprintf(err, RD_ERR_LEN, "--%s: '%s' is not a boolean", o->name, value ? value : "");
            return -EINVAL;
        }
        return 0;
    }
    return -EINVAL;
}

int rd_cfg_defaults(const rd_cfg_opt *tab, void *cfg, char err[RD_ERR_LEN])
{
    for (const rd_cfg_opt *o = tab; o->name; o++) {
        if (!o->def) {
            if (o->type == RD_CFG_BOOL)
                *(bool *)field(cfg, o) = false;
            continue;
        }
        int r = set_opt(o, cfg, o->def, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int rd_cfg_set(const rd_cfg_opt *tab, void *cfg, const char *name, const char *value,
               char err[RD_ERR_LEN])
{
    const rd_cfg_opt *o = find(tab, name, strlen(name));
    if (!o) {
        snprintf(err, RD_ERR_LEN, "unknown option '%s'", name);
        return -ENOENT;
    }
    return set_opt(o, cfg, value, err);
}

int rd_cfg_env(const rd_cfg_opt *tab, void *cfg, char err[RD_ERR_LEN])
{
    for (const rd_cfg_opt *o = tab; o->name; o++) {
        char var[96] = "ROOMD_";
        size_t n = 6;
        for (const char *p = o->name; *p && n < sizeof var - 1; p++)
            var[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        var[n] = '\0';
        const char *v = getenv(var);
        if (!v)
            continue;
        int r = set_opt(o, cfg, v, err);
        if (r < 0) {
            size_t l = strlen(err);
            snprintf(err + l, RD_ERR_LEN - l, " (from %s)", var);
            return r;
        }
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int rd_cfg_file(const rd_cfg_opt *tab, void *cfg, const char *path, char err[RD_ERR_LEN])
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, RD_ERR_LEN, "%s: %s", path, strerror(e));
        return -e;
    }
    char line[4096];
    int lineno = 0, r = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, RD_ERR_LEN, "%s:%d: expected 'name = value'", path, lineno);
            r = -EINVAL;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = '\0';
            value++;
        }
        char e2[RD_ERR_LEN];
        if ((r = rd_cfg_set(tab, cfg, name, value, e2)) < 0) {
            snprintf(err, RD_ERR_LEN, "%s:%d: %s", path, lineno, e2);
            break;
        }
    }
    fclose(f);
    return r;
}

int rd_cfg_argv(const rd_cfg_opt *tab, void *cfg, int argc, char **argv,
                const char *const *actions, const char **ret_action, int *ret_optind,
                char err[RD_ERR_LEN])
{
    int i;
    *ret_action = NULL;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strncmp(a, "--", 2) != 0)
            break;
        a += 2;
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        int is_action = 0;
        for (const char *const *act = actions; act && *act; act++) {
            if (strlen(*act) == n && strncmp(*act, a, n) == 0) {
                if (!*ret_action)
                    *ret_action = *act;
                is_action = 1;
            }
        }
        if (is_action)
            continue;
        const rd_cfg_opt *o = find(tab, a, n);
        const char *value = eq ? eq + 1 : NULL;
        if (!o && n > 3 && strncmp(a, "no-", 3) == 0) {
            o = find(tab, a + 3, n - 3);
            if (o && o->type == RD_CFG_BOOL && !eq) {
                *(bool *)field(cfg, o) = false;
                continue;
            }
            o = NULL;
        }
        if (!o) {
            snprintf(err, RD_ERR_LEN, "unknown option '--%.*s' (see --help)", (int)n, a);
            return -ENOENT;
        }
        if (!value) {
            if (o->type == RD_CFG_BOOL) {
                *(bool *)field(cfg, o) = true;
                continue;
            }
            if (i + 1 >= argc) {
                snprintf(err, RD_ERR_LEN, "option '--%s' needs a value", o->name);
                return -EINVAL;
            }
            value = argv[++i];
        }
        int r = set_opt(o, cfg, value, err);
        if (r < 0)
            return r;
    }
    *ret_optind = i;
    return 0;
}

int rd_cfg_load(const rd_cfg_opt *tab, void *cfg, int argc, char **argv,
                const char *const *actions, const char **ret_action, char err[RD_ERR_LEN])
{
    int r, optind_ = 0;
    const char *file = getenv("ROOMD_CONFIG");
    *ret_action = NULL;
    if ((r = rd_cfg_defaults(tab, cfg, err)) < 0)
        return r;
    /* Find the file first, so the environment and flags override what it sets. */
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
    }
    if (file && *file && (r = rd_cfg_file(tab, cfg, file, err)) < 0)
        return r;
    if ((r = rd_cfg_env(tab, cfg, err)) < 0 ||
        (r = rd_cfg_argv(tab, cfg, argc, argv, actions, ret_action, &optind_, err)) < 0)
        return r;
    if (optind_ < argc) {
        snprintf(err, RD_ERR_LEN, "unexpected argument '%s' (see --help)", argv[optind_]);
        return -EINVAL;
    }
    return 0;
}

void rd_cfg_help(const rd_cfg_opt *tab, FILE *f)
{
    for (const rd_cfg_opt *o = tab; o->name; o++) {
        char lhs[64];
        if (o->type == RD_CFG_BOOL)
            snprintf(lhs, sizeof lhs, "--%s", o->name);
        else
            snprintf(lhs, sizeof lhs, "--%s %s", o->name, o->metavar ? o->metavar : "VALUE");
        fprintf(f, "  %-28s %s", lhs, o->help);
        if (o->type == RD_CFG_BOOL)
            fprintf(f, " (default: %s)", o->def && parse_bool(o->def, &(bool){ 0 }) == 0 &&
                    strcasecmp(o->def, "true") == 0 ? "on" : "off");
        else if (o->type == RD_CFG_LIST)
            fprintf(f, " (repeatable)");
        else if (o->def)
            fprintf(f, " (default: %s)", o->def);
        else
            fprintf(f, " (default: none)");
        fputc('\n', f);
    }
}

void rd_cfg_free(const rd_cfg_opt *tab, void *cfg)
{
    for (const rd_cfg_opt *o = tab; o->name; o++) {
        if (o->type == RD_CFG_STR) {
            char **p = field(cfg, o);
            free(*p);
            *p = NULL;
        } else if (o->type == RD_CFG_LIST) {
            char ***p = field(cfg, o);
            for (size_t i = 0; *p && (*p)[i]; i++)
                free((*p)[i]);
            free(*p);
            *p = NULL;
        }
    }
}
