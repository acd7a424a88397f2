/* rd_config: one declarative table per program drives the command line,
 * the environment (ROOMD_<NAME>, dashes as underscores), the config file
 * (`name = value` lines, '#' comments) and --help (Redis config.c, nginx
 * ngx_command_t). Precedence: defaults < config file < environment < flags.
 *
 * Types: STR (char *, owned by the config struct; free with rd_cfg_free),
 * INT (int64_t, bounded), SIZE (uint64_t bytes; suffixes k, m, g = KiB,
 * MiB, GiB), MS (uint64_t milliseconds; suffixes ms, s, m, h; bare = ms),
 * BOOL (bool; "--name" alone means true, "--no-name" false), LIST (a
 * repeatable STR: char ** NULL-terminated, each use appends).
 */
#ifndef RD_CONFIG_H
#define RD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rd_buf.h"

typedef enum rd_cfg_type { RD_CFG_STR, RD_CFG_INT, RD_CFG_SIZE, RD_CFG_MS, RD_CFG_BOOL, RD_CFG_LIST } rd_cfg_type;

typedef struct rd_cfg_opt {
    const char *name;     /* long flag without dashes, e.g. "max-message" */
    rd_cfg_type type;
    size_t offset;        /* offsetof(struct your_config, field) */
    const char *def;      /* default as text (NULL: none / false / empty) */
    int64_t min, max;     /* bounds for INT, SIZE, MS (0, 0: unbounded) */
    const char *metavar;  /* for --help, e.g. "HOST:PORT" */
    const char *help;
} rd_cfg_opt;

/* Apply the defaults. 0 or -EINVAL (a bad default: a bug). */
int rd_cfg_defaults(const rd_cfg_opt *tab, void *cfg, char err[RD_ERR_LEN]);
/* Set one option by name from text. 0, -ENOENT (unknown name) or -EINVAL. */
int rd_cfg_set(const rd_cfg_opt *tab, void *cfg, const char *name, const char *value,
               char err[RD_ERR_LEN]);
/* Read ROOMD_* variables that name options. */
int rd_cfg_env(const rd_cfg_opt *tab, void *cfg, char err[RD_ERR_LEN]);
/* Read a config file. */
int rd_cfg_file(const rd_cfg_opt *tab, void *cfg, const char *path, char err[RD_ERR_LEN]);
/* Parse --name value, --name=value, --flag, --no-flag. Stops at "--" or the
 * first non-option; *ret_optind is the index of the first unparsed argument.
 * Names in `actions` (NULL-terminated, e.g. "help") are not options: they
 * are reported through *ret_action (the first one seen) and skipped. */
int rd_cfg_argv(const rd_cfg_opt *tab, void *cfg, int argc, char **argv,
                const char *const *actions, const char **ret_action, int *ret_optind,
                char err[RD_ERR_LEN]);
/* The whole sequence a program runs at start: defaults, then the file named
 * by --config / ROOMD_CONFIG (tab must have a STR option "config"), then the
 * environment, then argv. A leftover positional argument is an error.
 * *ret_action as for rd_cfg_argv. */
int rd_cfg_load(const rd_cfg_opt *tab, void *cfg, int argc, char **argv,
                const char *const *actions, const char **ret_action, char err[RD_ERR_LEN]);
/* Print every option with its metavar, help and default. */
void rd_cfg_help(const rd_cfg_opt *tab, FILE *f);
void rd_cfg_free(const rd_cfg_opt *tab, void *cfg);

/* Parsers shared with other code. 0 or -EINVAL. */
int rd_parse_size(const char *s, uint64_t *ret);
int rd_parse_ms(const char *s, uint64_t *ret);

#endif
