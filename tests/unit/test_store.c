/* Unit tests for shard/sh_store: key -> file mapping against hostile names,
 * single ownership (in-process and across fork), crash safety (children
 * killed with SIGKILL mid-flight: also keeps valgrind/LSan from reporting
 * their deliberately unclosed stores), event
 * transactions, KV ordering and limits, the SQL rules, alarms, and a small
 * put+commit benchmark (ROOMD_STORE_BENCH=N scales its counts by N). All
 * databases live under a mkdtemp directory that is removed at the end. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "rd_buf.h"
#include "rd_hash.h"
#include "rd_test.h"
#include "sh_store.h"

static char g_dir[256];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static sh_store *xopen(const char *key, sh_store_durability d)
{
    char err[RD_ERR_LEN] = "";
    sh_store *st = NULL;
    int r = sh_store_open(g_dir, key, strlen(key), d, &st, err);
    if (r < 0)
        fprintf(stderr, "open %s: %d %s\n", key, r, err);
    RD_CHECK_EQ_INT(r, 0);
    return st;
}

static int put_s(sh_store *st, const char *k, const char *v)
{
    return sh_store_put(st, k, strlen(k), v, strlen(v), NULL);
}

/* 0 and the value in *out (reset first), or the error. */
static int get_s(sh_store *st, const char *k, rd_buf *out)
{
    rd_buf_reset(out, 0);
    return sh_store_get(st, k, strlen(k), out, NULL);
}

static void path_of(const char *key, size_t klen, char *out, size_t cap)
{
    int r = sh_store_path(g_dir, key, klen, out, cap);
    RD_CHECK(r > 0);
}

/* --- mapping -------------------------------------------------------------- */

static void test_key_check(void)
{
    char err[RD_ERR_LEN];
    static const char *good[] = { "chat/lobby", "a/b", "counter-1/x_y", "chat/..", "chat/.",
                                  "chat/a b", "chat/\xc3\xa9t\xc3\xa9", "chat/\xf0\x9f\x98\x80",
                                  "chat/%2F", "chat/a\\b" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        RD_CHECK_EQ_INT(sh_store_key_check(good[i], strlen(good[i]), err), 0);
    static const char *bad[] = { "", "lobby", "/lobby", "chat/", "Chat/x", "ch.at/x", "ch at/x",
                                 "chat/a/b", "chat/a\tb", "chat/a\x7f", "chat/\xc3",
                                 "chat/\xc0\xaf", /* overlong '/' */
                                 "chat/\xed\xa0\x80", /* surrogate */
                                 "chat/\xf4\x90\x80\x80", /* > U+10FFFF */
                                 "chat/\xff" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        RD_CHECK_EQ_INT(sh_store_key_check(bad[i], strlen(bad[i]), err), -EINVAL);
        RD_CHECK(err[0] != '\0');
    }
    /* NUL inside the name: the length says it is there. */
    RD_CHECK_EQ_INT(sh_store_key_check("chat/a\0b", 8, err), -EINVAL);
    char key[400];
    memcpy(key, "chat/", 5);
    memset(key + 5, 'n', 256);
    RD_CHECK_EQ_INT(sh_store_key_check(key, 5 + 256, err), 0);
    memset(key + 5, 'n', 257);
    RD_CHECK_EQ_INT(sh_store_key_check(key, 5 + 257, err), -EINVAL);
    memset(key, 'c', 33);
    memcpy(key + 33, "/x", 2);
    RD_CHECK_EQ_INT(sh_store_key_check(key, 35, err), -EINVAL);
    RD_CHECK_EQ_INT(sh_store_key_check(key + 1, 34, err), 0); /* 32-byte class */
    RD_CHECK_EQ_INT(sh_store_key_check(NULL, 0, err), -EINVAL);
}

/* Everything after "<dir>/": "<class>/<hh>/<file>" with a safe file name. */
static void check_shape(const char *key, size_t klen, const char *path)
{
    size_t dl = strlen(g_dir);
    RD_CHECK(strncmp(path, g_dir, dl) == 0 && path[dl] == '/');
    const char *rest = path + dl + 1;
    const char *slash = memchr(key, '/', klen);
    size_t cl = (size_t)(slash - key);
    RD_CHECK(strncmp(rest, key, cl) == 0 && rest[cl] == '/');
    const char *hh = rest + cl + 1;
    uint64_t h = rd_hash64(key, klen);
    char want[32];
    snprintf(want, sizeof want, "%02x/", (unsigned)(h >> 56));
    RD_CHECK(strncmp(hh, want, 3) == 0);
    const char *file = hh + 3;
    RD_CHECK(strchr(file, '/') == NULL);
    size_t fl = strlen(file);
    RD_CHECK(fl < 200);
    RD_CHECK(fl + strlen(".lock") < 200);
    RD_CHECK(file[0] != '.');
    snprintf(want, sizeof want, "-%016" PRIx64 ".db", h);
    RD_CHECK(fl > 20 && strcmp(file + fl - 20, want) == 0);
    for (size_t i = 0; i + 20 < fl; i++) {
        char c = file[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-' || c == '%';
        RD_CHECK(ok);
        if (c == '%') { /* never a cut escape */
            RD_CHECK(i + 2 < fl - 20);
            RD_CHECK(strchr("0123456789ABCDEF", file[i + 1]) && file[i + 1]);
            RD_CHECK(strchr("0123456789ABCDEF", file[i + 2]) && file[i + 2]);
        }
    }
    RD_CHECK(strstr(path, "/../") == NULL && strstr(path, "/./") == NULL);
}

/* The file-name part before "-<hash>.db". */
static void name_part(const char *path, char *out, size_t cap)
{
    const char *file = strrchr(path, '/') + 1;
    size_t n = strlen(file) - 20;
    snprintf(out, cap, "%.*s", (int)n, file);
}

static void test_path(void)
{
    char p[1024], q[1024], n[512];
    uint64_t h = rd_hash64("chat/lobby", 10);
    char want[1024];
    snprintf(want, sizeof want, "%s/chat/%02x/lobby-%016" PRIx64 ".db", g_dir, (unsigned)(h >> 56), h);
    RD_CHECK_EQ_INT(sh_store_path(g_dir, "chat/lobby", 10, p, sizeof p), (int)strlen(want));
    RD_CHECK(strcmp(p, want) == 0);
    /* Trailing slashes of the data dir do not double up. */
    char dir2[300];
    snprintf(dir2, sizeof dir2, "%s///", g_dir);
    RD_CHECK(sh_store_path(dir2, "chat/lobby", 10, q, sizeof q) > 0);
    RD_CHECK(strcmp(p, q) == 0);
    RD_CHECK_EQ_INT(sh_store_path("", "chat/lobby", 10, q, sizeof q), -EINVAL);
    RD_CHECK_EQ_INT(sh_store_path(g_dir, "chat/lobby", 10, q, strlen(want)), -ENAMETOOLONG);
    RD_CHECK_EQ_INT(sh_store_path(g_dir, "chat/lobby", 10, q, strlen(want) + 1), (int)strlen(want));
    RD_CHECK_EQ_INT(sh_store_path(g_dir, "chat/a/../../x", 14, q, sizeof q), -EINVAL);
    RD_CHECK_EQ_INT(sh_store_path(g_dir, "chat/a\0b", 8, q, sizeof q), -EINVAL);
    RD_CHECK_EQ_INT(sh_store_path(g_dir, "../x/y", 6, q, sizeof q), -EINVAL);

    struct { const char *key; const char *name; } cases[] = {
        { "chat/..", "%2E." },
        { "chat/.", "%2E" },
        { "chat/.hidden", "%2Ehidden" },
        { "chat/a.b", "a.b" },
        { "chat/a\\b", "a%5Cb" },
        { "chat/%2F", "%252F" },
        { "chat/%2e%2e", "%252e%252e" },
        { "chat/a b", "a%20b" },
        { "chat/Room", "Room" },
        { "chat/\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9" },
        { "chat/x:y*?\"<>|", "x%3Ay%2A%3F%22%3C%3E%7C" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t kl = strlen(cases[i].key);
        path_of(cases[i].key, kl, p, sizeof p);
        check_shape(cases[i].key, kl, p);
        name_part(p, n, sizeof n);
        if (strcmp(n, cases[i].name) != 0)
            fprintf(stderr, "  %s -> %s, expected %s\n", cases[i].key, n, cases[i].name);
        RD_CHECK(strcmp(n, cases[i].name) == 0);
    }
    /* Case matters, both in the name and on disk. */
    path_of("chat/Room", 9, p, sizeof p);
    path_of("chat/room", 9, q, sizeof q);
    RD_CHECK(strcmp(p, q) != 0);
    /* "%2F" as text and an escaped '/'-lookalike stay distinct from "a%2Fb"-ish names. */
    path_of("chat/a%2Fb", 10, p, sizeof p);
    path_of("chat/a\\b", 8, q, sizeof q);
    RD_CHECK(strcmp(p, q) != 0);

    /* 256-byte names: cut to the escaped maximum; same prefix, other files. */
    char key[300];
    memcpy(key, "chat/", 5);
    memset(key + 5, 'a', 256);
    path_of(key, 261, p, sizeof p);
    check_shape(key, 261, p);
    name_part(p, n, sizeof n);
    RD_CHECK_EQ_INT(strlen(n), SH_STORE_ESCAPED_MAX);
    key[260] = 'b';
    path_of(key, 261, q, sizeof q);
    check_shape(key, 261, q);
    RD_CHECK(strcmp(p, q) != 0);
    char n2[512];
    name_part(q, n2, sizeof n2);
    RD_CHECK(strcmp(n, n2) == 0);

    /* 256 bytes of spaces: every byte escapes to 3, cut at 53 whole escapes. */
    memset(key + 5, ' ', 256);
    path_of(key, 261, p, sizeof p);
    check_shape(key, 261, p);
    name_part(p, n, sizeof n);
    RD_CHECK_EQ_INT(strlen(n), 159);

    /* Long UTF-8: 85 x U+20AC (3 bytes, 9 escaped) = 255 bytes; cut on a
     * character boundary: 17 characters = 153 bytes. */
    size_t kl = 5;
    for (int i = 0; i < 85; i++) {
        memcpy(key + kl, "\xe2\x82\xac", 3);
        kl += 3;
    }
    path_of(key, kl, p, sizeof p);
    check_shape(key, kl, p);
    name_part(p, n, sizeof n);
    RD_CHECK_EQ_INT(strlen(n), 153);
    RD_CHECK(strncmp(n + 144, "%E2%82%AC", 9) == 0);
    /* A 4-byte character after 39 ASCII letters... and mixed lengths. */
    kl = 5;
    memset(key + kl, 'x', 150);
    kl += 150;
    memcpy(key + kl, "\xf0\x9f\x98\x80", 4); /* 12 escaped bytes: does not fit */
    kl += 4;
    path_of(key, kl, p, sizeof p);
    name_part(p, n, sizeof n);
    RD_CHECK_EQ_INT(strlen(n), 150);

    /* Many names, no two files alike (the hash would hide a bad escape). */
    char (*seen)[256] = calloc(4096, sizeof *seen), (*keys)[300] = calloc(4096, sizeof *keys);
    int nseen = 0;
    static const char *parts[] = { "a", "A", ".", "%", "%25", "2F", " ", "\\", "\xc3\xa9", "-", "_", "%2E" };
    const size_t np = sizeof parts / sizeof parts[0];
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < np; j++)
            for (size_t k = 0; k < np; k++) {
                int l = snprintf(key, sizeof key, "chat/%s%s%s", parts[i], parts[j], parts[k]);
                path_of(key, (size_t)l, p, sizeof p);
                name_part(p, seen[nseen], sizeof seen[nseen]);
                snprintf(keys[nseen], sizeof keys[nseen], "%s", key);
                nseen++;
            }
    int dup = 0;
    for (int i = 0; i < nseen; i++)
        for (int j = i + 1; j < nseen; j++)
            if (strcmp(seen[i], seen[j]) == 0 && strcmp(keys[i], keys[j]) != 0)
                dup++;
    /* Different keys may share an escaped name only when it was cut; these
     * were not: the escaped names alone must differ. */
    RD_CHECK_EQ_INT(dup, 0);
    free(seen);
    free(keys);
}

/* --- ownership and lifetime ----------------------------------------------- */

/* All descriptors on our files are close-on-exec. */
static void check_cloexec(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct dirent *e;
    int seen = 0;
    size_t dl = strlen(g_dir);
    while ((e = readdir(d))) {
        char link[300], target[1024];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strncmp(target, g_dir, dl) != 0)
            continue;
        int fd = atoi(e->d_name);
        int flags = fcntl(fd, F_GETFD);
        RD_CHECK(flags >= 0 && (flags & FD_CLOEXEC));
        seen++;
    }
    closedir(d);
    RD_CHECK(seen >= 2); /* at least the lock and the database */
}

static void test_open_lock(void)
{
    char err[RD_ERR_LEN] = "";
    sh_store *a = xopen("chat/x", SH_STORE_NORMAL), *b = NULL;
    if (!a)
        return;
    RD_CHECK(strcmp(sh_store_key(a), "chat/x") == 0);
    char p[1024];
    path_of("chat/x", 6, p, sizeof p);
    RD_CHECK(strcmp(sh_store_file(a), p) == 0);
    struct stat sb;
    RD_CHECK(stat(p, &sb) == 0);
    char lock[1100];
    snprintf(lock, sizeof lock, "%s.lock", p);
    RD_CHECK(stat(lock, &sb) == 0);
    check_cloexec();

    RD_CHECK_EQ_INT(sh_store_open(g_dir, "chat/x", 6, SH_STORE_NORMAL, &b, err), -EWOULDBLOCK);
    RD_CHECK(b == NULL);
    RD_CHECK(strcmp(err, "object chat/x is owned by another process") == 0);
    /* the failed attempt closed only its own descriptor: still locked */
    RD_CHECK_EQ_INT(sh_store_open(g_dir, "chat/x", 6, SH_STORE_FULL, &b, err), -EWOULDBLOCK);
    RD_CHECK_EQ_INT(put_s(a, "still", "mine"), 0);
    /* Another object is independent. */
    sh_store *c = xopen("chat/y", SH_STORE_NORMAL);
    sh_store_close(c);
    sh_store_close(a);
    b = xopen("chat/x", SH_STORE_NORMAL);
    RD_CHECK(b != NULL);
    sh_store_close(b);
    sh_store_close(NULL);

    b = NULL;
    RD_CHECK_EQ_INT(sh_store_open(g_dir, "chat/a/b", 8, SH_STORE_NORMAL, &b, err), -EINVAL);
    RD_CHECK(b == NULL);
}

static void test_lock_fork(void)
{
    int up[2], down[2];
    RD_CHECK(pipe(up) == 0 && pipe(down) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        sh_store *st = NULL;
        char c = sh_store_open(g_dir, "chat/forked", 11, SH_STORE_NORMAL, &st, NULL) == 0 ? 'y' : 'n';
        if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) < 0)
            _exit(2);
        kill(getpid(), SIGKILL); /* dies holding the lock: the kernel releases it */
        _exit(4);
    }
    char c = 0;
    RD_CHECK(read(up[0], &c, 1) == 1 && c == 'y');
    char err[RD_ERR_LEN] = "";
    sh_store *st = NULL;
    RD_CHECK_EQ_INT(sh_store_open(g_dir, "chat/forked", 11, SH_STORE_NORMAL, &st, err), -EWOULDBLOCK);
    RD_CHECK(strstr(err, "chat/forked is owned by another process") != NULL);
    RD_CHECK(write(down[1], "x", 1) == 1);
    int status = 0;
    waitpid(pid, &status, 0);
    RD_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    st = xopen("chat/forked", SH_STORE_NORMAL);
    sh_store_close(st);
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
}

/* A child writes and is killed (kill -9) without closing: commit => kept,
 * none => gone. Exit codes 2 and 3 report a failure before the kill. */
static void crash_child(const char *key, sh_store_durability d, int commits)
{
    pid_t pid = fork();
    if (pid == 0) {
        sh_store *st = NULL;
        if (sh_store_open(g_dir, key, strlen(key), d, &st, NULL) < 0)
            _exit(2);
        sh_store_begin(st);
        put_s(st, "first", "1");
        sh_store_alarm_set(st, 42, NULL);
        if (commits >= 1 && sh_store_commit(st, NULL) < 0)
            _exit(3);
        sh_store_begin(st);
        put_s(st, "second", "2");
        if (commits >= 2 && sh_store_commit(st, NULL) < 0)
            _exit(3);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    RD_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_crash(void)
{
    rd_buf v = RD_BUF_INIT;
    uint64_t ms = 1;
    crash_child("chat/crash-commit", SH_STORE_NORMAL, 1);
    sh_store *st = xopen("chat/crash-commit", SH_STORE_NORMAL);
    if (st) {
        RD_CHECK_EQ_INT(get_s(st, "first", &v), 0);
        RD_CHECK_STR(v.p, v.len, "1");
        RD_CHECK_EQ_INT(get_s(st, "second", &v), -ENOENT);
        RD_CHECK_EQ_INT(sh_store_alarm_get(st, &ms, NULL), 0);
        RD_CHECK_EQ_INT(ms, 42);
        sh_store_close(st);
    }
    crash_child("chat/crash-full", SH_STORE_FULL, 2);
    st = xopen("chat/crash-full", SH_STORE_FULL);
    if (st) {
        RD_CHECK_EQ_INT(get_s(st, "first", &v), 0);
        RD_CHECK_EQ_INT(get_s(st, "second", &v), 0);
        RD_CHECK_STR(v.p, v.len, "2");
        sh_store_close(st);
    }
    crash_child("chat/crash-none", SH_STORE_NORMAL, 0);
    st = xopen("chat/crash-none", SH_STORE_NORMAL);
    if (st) {
        RD_CHECK_EQ_INT(get_s(st, "first", &v), -ENOENT);
        RD_CHECK_EQ_INT(sh_store_alarm_get(st, &ms, NULL), 0);
        RD_CHECK_EQ_INT(ms, 0);
        sh_store_close(st);
    }
    rd_buf_free(&v);
}

/* Rename a closed database with its write-ahead log: a store closes
 * without a checkpoint, so recent commits may live in the -wal file. */
static int move_db(const char *from, const char *to)
{
    char fw[1100], tw[1100];
    snprintf(fw, sizeof fw, "%s-wal", from);
    snprintf(tw, sizeof tw, "%s-wal", to);
    unlink(tw);
    if (rename(fw, tw) < 0 && errno != ENOENT)
        return -1;
    return rename(from, to);
}

static void test_reopen_and_guards(void)
{
    char err[RD_ERR_LEN] = "";
    rd_buf v = RD_BUF_INIT;
    sh_store *st = xopen("counter/main", SH_STORE_NORMAL);
    if (!st)
        return;
    RD_CHECK_EQ_INT(put_s(st, "n", "41"), 0); /* outside an event: autocommit */
    sh_store_close(st);
    st = xopen("counter/main", SH_STORE_FULL);
    RD_CHECK_EQ_INT(get_s(st, "n", &v), 0);
    RD_CHECK_STR(v.p, v.len, "41");
    sh_store_close(st);

    /* A file that holds another key (as after a hash collision) is refused. */
    char a[1024], b[1024];
    path_of("counter/main", 12, a, sizeof a);
    st = xopen("counter/other", SH_STORE_NORMAL);
    sh_store_close(st);
    path_of("counter/other", 13, b, sizeof b);
    RD_CHECK(move_db(a, b) == 0);
    st = NULL;
    RD_CHECK_EQ_INT(sh_store_open(g_dir, "counter/other", 13, SH_STORE_NORMAL, &st, err), -EEXIST);
    RD_CHECK(strstr(err, "belongs to object counter/main") != NULL);
    RD_CHECK(st == NULL);

    /* A database from a newer roomd. */
    sqlite3 *db = NULL;
    RD_CHECK(sqlite3_open(b, &db) == SQLITE_OK);
    RD_CHECK(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    RD_CHECK_EQ_INT(sh_store_open(g_dir, "counter/main", 12, SH_STORE_NORMAL, &st, err), 0);
    sh_store_close(st); /* the renamed-away file was recreated empty: fine */
    RD_CHECK(move_db(b, a) == 0);
    RD_CHECK_EQ_INT(sh_store_open(g_dir, "counter/main", 12, SH_STORE_NORMAL, &st, err),
                    -EPROTONOSUPPORT);
    RD_CHECK(strstr(err, "version 7") != NULL);

    /* Not a database at all. */
    char junk[1024];
    path_of("counter/junk", 12, junk, sizeof junk);
    st = xopen("counter/junk", SH_STORE_NORMAL);
    sh_store_close(st);
    FILE *f = fopen(junk, "w");
    if (f) {
        for (int i = 0; i < 512; i++)
            fputs("this is not a database ", f);
        fclose(f);
    }
    char wal[1100];
    snprintf(wal, sizeof wal, "%s-wal", junk);
    unlink(wal);
    st = NULL;
    RD_CHECK_EQ_INT(sh_store_open(g_dir, "counter/junk", 12, SH_STORE_NORMAL, &st, err), -EBADMSG);
    RD_CHECK(err[0] != '\0');
    RD_CHECK(st == NULL);
    rd_buf_free(&v);
}

/* --- KV and transactions ---------------------------------------------------- */

static void test_kv(void)
{
    char err[RD_ERR_LEN] = "";
    rd_buf v = RD_BUF_INIT;
    sh_store *st = xopen("kv/basic", SH_STORE_NORMAL);
    if (!st)
        return;
    RD_CHECK_EQ_INT(get_s(st, "k", &v), -ENOENT);
    RD_CHECK_EQ_INT(v.len, 0);
    RD_CHECK_EQ_INT(put_s(st, "k", "v1"), 0);
    RD_CHECK_EQ_INT(put_s(st, "k", "v2"), 0);
    RD_CHECK_EQ_INT(get_s(st, "k", &v), 0);
    RD_CHECK_STR(v.p, v.len, "v2");
    /* get appends */
    RD_CHECK_EQ_INT(sh_store_get(st, "k", 1, &v, NULL), 0);
    RD_CHECK_STR(v.p, v.len, "v2v2");
    RD_CHECK_EQ_INT(sh_store_del(st, "k", 1, err), 0);
    RD_CHECK_EQ_INT(sh_store_del(st, "k", 1, err), -ENOENT);
    RD_CHECK_EQ_INT(get_s(st, "k", &v), -ENOENT);
    /* empty values and binary keys */
    RD_CHECK_EQ_INT(sh_store_put(st, "e", 1, NULL, 0, err), 0);
    RD_CHECK_EQ_INT(get_s(st, "e", &v), 0);
    RD_CHECK_EQ_INT(v.len, 0);
    static const uint8_t bk[] = { 0, 1, 0, 0xff };
    static const uint8_t bv[] = { 0xff, 0, 0 };
    RD_CHECK_EQ_INT(sh_store_put(st, bk, sizeof bk, bv, sizeof bv, err), 0);
    rd_buf_reset(&v, 0);
    RD_CHECK_EQ_INT(sh_store_get(st, bk, sizeof bk, &v, err), 0);
    RD_CHECK_MEM(v.p, v.len, bv, sizeof bv);
    RD_CHECK_EQ_INT(sh_store_get(st, bk, 3, &v, err), -ENOENT);

    /* limits */
    uint8_t *big = calloc(1, SH_STORE_VALUE_MAX + 1);
    memset(big, 'k', SH_STORE_KEY_MAX + 1);
    RD_CHECK_EQ_INT(sh_store_put(st, big, SH_STORE_KEY_MAX, "x", 1, err), 0);
    RD_CHECK_EQ_INT(sh_store_put(st, big, SH_STORE_KEY_MAX + 1, "x", 1, err), -E2BIG);
    RD_CHECK(strstr(err, "2049") != NULL);
    RD_CHECK_EQ_INT(sh_store_get(st, big, SH_STORE_KEY_MAX + 1, &v, err), -E2BIG);
    RD_CHECK_EQ_INT(sh_store_del(st, big, SH_STORE_KEY_MAX + 1, err), -E2BIG);
    RD_CHECK_EQ_INT(sh_store_put(st, "big", 3, big, SH_STORE_VALUE_MAX, err), 0);
    rd_buf_reset(&v, 0);
    RD_CHECK_EQ_INT(sh_store_get(st, "big", 3, &v, err), 0);
    RD_CHECK_EQ_INT(v.len, SH_STORE_VALUE_MAX);
    RD_CHECK_EQ_INT(sh_store_put(st, "big", 3, big, SH_STORE_VALUE_MAX + 1, err), -E2BIG);
    RD_CHECK_EQ_INT(sh_store_put(st, "", 0, "x", 1, err), -EINVAL);
    RD_CHECK_EQ_INT(sh_store_put(st, "x", 1, NULL, 1, err), -EINVAL);
    free(big);
    RD_CHECK(sh_store_memory(st) > 1000);
    sh_store_close(st);
    rd_buf_free(&v);
}

static void test_txn(void)
{
    char err[RD_ERR_LEN] = "";
    rd_buf v = RD_BUF_INIT;
    sh_store *st = xopen("kv/txn", SH_STORE_NORMAL);
    if (!st)
        return;
    /* An event that never touches storage: no transaction at all. */
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    RD_CHECK_EQ_INT(sh_store_begin(st), -EALREADY);
    RD_CHECK(!sh_store_pending(st));
    RD_CHECK_EQ_INT(sh_store_commit(st, err), 0);
    /* A read starts it (lazily). */
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    RD_CHECK_EQ_INT(get_s(st, "a", &v), -ENOENT);
    RD_CHECK(sh_store_pending(st));
    RD_CHECK_EQ_INT(sh_store_commit(st, err), 0);
    RD_CHECK(!sh_store_pending(st));
    /* rollback discards, commit keeps, a batch is all or nothing */
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    RD_CHECK_EQ_INT(put_s(st, "a", "1"), 0);
    RD_CHECK_EQ_INT(get_s(st, "a", &v), 0); /* sees its own write */
    sh_store_rollback(st);
    RD_CHECK(!sh_store_pending(st));
    RD_CHECK_EQ_INT(get_s(st, "a", &v), -ENOENT);
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    RD_CHECK_EQ_INT(put_s(st, "a", "1"), 0);
    RD_CHECK_EQ_INT(put_s(st, "b", "2"), 0);
    RD_CHECK_EQ_INT(sh_store_del(st, "a", 1, err), 0);
    RD_CHECK_EQ_INT(sh_store_commit(st, err), 0);
    RD_CHECK_EQ_INT(get_s(st, "a", &v), -ENOENT);
    RD_CHECK_EQ_INT(get_s(st, "b", &v), 0);
    sh_store_rollback(st); /* nothing open: no-op */
    RD_CHECK_EQ_INT(sh_store_commit(st, err), 0);
    /* close rolls back an open event */
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    RD_CHECK_EQ_INT(put_s(st, "c", "3"), 0);
    sh_store_close(st);
    st = xopen("kv/txn", SH_STORE_NORMAL);
    RD_CHECK_EQ_INT(get_s(st, "c", &v), -ENOENT);
    RD_CHECK_EQ_INT(get_s(st, "b", &v), 0);
    sh_store_close(st);
    rd_buf_free(&v);
}

/* --- list ------------------------------------------------------------------ */

typedef struct collect {
    int n;
    int stop_after;    /* > 0: return 1 at that row; < 0: return -EIO there */
    uint8_t keys[32][16];
    size_t lens[32];
    sh_store *st;      /* set: try a reentrant call */
    int reentrant_rc;
} collect;

static int collect_cb(void *ud, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    collect *c = ud;
    (void)v;
    (void)vn;
    if (c->n < 32 && kn <= 16) {
        memcpy(c->keys[c->n], k, kn);
        c->lens[c->n] = kn;
    }
    c->n++;
    if (c->st) {
        rd_buf b = RD_BUF_INIT;
        c->reentrant_rc = sh_store_get(c->st, "a", 1, &b, NULL);
        rd_buf_free(&b);
    }
    if (c->stop_after > 0 && c->n == c->stop_after)
        return 1;
    if (c->stop_after < 0 && c->n == -c->stop_after)
        return -EIO;
    return 0;
}

/* The keys in byte order; some look out of order as text. */
static const struct { const char *k; size_t n; } sorted_keys[] = {
    { "B", 1 },   { "a", 1 },     { "a\0", 2 },      { "a\x01", 2 }, { "ab", 2 },
    { "abc", 3 }, { "b", 1 },     { "\xc3\xa9", 2 }, { "\xff", 1 },  { "\xff\xff", 2 },
};
#define NSORTED (sizeof sorted_keys / sizeof sorted_keys[0])

static int list(sh_store *st, sh_store_range *rg, collect *c)
{
    memset(c->keys, 0, sizeof c->keys);
    c->n = 0;
    return sh_store_list(st, rg, collect_cb, c, NULL);
}

/* c holds sorted_keys[from..from+n) (reversed when rev). */
static void check_keys(const collect *c, int r, size_t from, size_t n, int rev)
{
    RD_CHECK_EQ_INT(r, (int)n);
    RD_CHECK_EQ_INT(c->n, (int)n);
    for (size_t i = 0; i < n && i < (size_t)c->n; i++) {
        size_t j = rev ? from + n - 1 - i : from + i;
        RD_CHECK_MEM(c->keys[i], c->lens[i], sorted_keys[j].k, sorted_keys[j].n);
    }
}

static void test_list(void)
{
    char err[RD_ERR_LEN] = "";
    sh_store *st = xopen("kv/list", SH_STORE_NORMAL);
    if (!st)
        return;
    /* insert in a scrambled order */
    for (size_t i = 0; i < NSORTED; i++) {
        size_t j = (i * 7) % NSORTED;
        RD_CHECK_EQ_INT(sh_store_put(st, sorted_keys[j].k, sorted_keys[j].n, "v", 1, err), 0);
    }
    collect c = { 0 };
    sh_store_range rg = { 0 };
    check_keys(&c, list(st, NULL, &c), 0, NSORTED, 0);
    rg.reverse = true;
    check_keys(&c, list(st, &rg, &c), 0, NSORTED, 1);

    memset(&rg, 0, sizeof rg);
    rg.prefix = "a";
    rg.prefix_len = 1;
    check_keys(&c, list(st, &rg, &c), 1, 5, 0);
    rg.reverse = true;
    check_keys(&c, list(st, &rg, &c), 1, 5, 1);
    rg.limit = 2;
    check_keys(&c, list(st, &rg, &c), 4, 2, 1);
    rg.reverse = false;
    check_keys(&c, list(st, &rg, &c), 1, 2, 0);
    /* a prefix of 0xff has no successor: up to the end */
    memset(&rg, 0, sizeof rg);
    rg.prefix = "\xff";
    rg.prefix_len = 1;
    check_keys(&c, list(st, &rg, &c), 8, 2, 0);
    rg.prefix = "ab";
    rg.prefix_len = 2;
    check_keys(&c, list(st, &rg, &c), 4, 2, 0);
    rg.prefix = "zz";
    check_keys(&c, list(st, &rg, &c), 0, 0, 0);

    /* ranges: [a\0, b) then intersected with a prefix */
    memset(&rg, 0, sizeof rg);
    rg.start = "a\0";
    rg.start_len = 2;
    rg.end = "b";
    rg.end_len = 1;
    check_keys(&c, list(st, &rg, &c), 2, 4, 0);
    rg.reverse = true;
    check_keys(&c, list(st, &rg, &c), 2, 4, 1);
    rg.reverse = false;
    rg.prefix = "ab";
    rg.prefix_len = 2;
    check_keys(&c, list(st, &rg, &c), 4, 2, 0);
    rg.end = "abc";
    rg.end_len = 3;
    check_keys(&c, list(st, &rg, &c), 4, 1, 0);
    /* start only, end only, empty and inverted ranges */
    memset(&rg, 0, sizeof rg);
    rg.start = "b";
    rg.start_len = 1;
    check_keys(&c, list(st, &rg, &c), 6, 4, 0);
    memset(&rg, 0, sizeof rg);
    rg.end = "a";
    rg.end_len = 1;
    check_keys(&c, list(st, &rg, &c), 0, 1, 0);
    rg.start = "a";
    rg.start_len = 1;
    check_keys(&c, list(st, &rg, &c), 0, 0, 0);
    rg.start = "b";
    check_keys(&c, list(st, &rg, &c), 0, 0, 0);

    /* pagination: forward from last + "\0", reverse up to last */
    memset(&rg, 0, sizeof rg);
    rg.limit = 3;
    size_t seen = 0;
    uint8_t next[20];
    for (int page = 0; page < 5; page++) {
        int r = list(st, &rg, &c);
        for (int i = 0; i < r; i++) {
            RD_CHECK_MEM(c.keys[i], c.lens[i], sorted_keys[seen].k, sorted_keys[seen].n);
            seen++;
        }
        if (r < 3)
            break;
        memcpy(next, c.keys[r - 1], c.lens[r - 1]);
        next[c.lens[r - 1]] = 0;
        rg.start = next;
        rg.start_len = c.lens[r - 1] + 1;
    }
    RD_CHECK_EQ_INT(seen, NSORTED);
    memset(&rg, 0, sizeof rg);
    rg.limit = 4;
    rg.reverse = true;
    seen = 0;
    for (int page = 0; page < 5; page++) {
        int r = list(st, &rg, &c);
        for (int i = 0; i < r; i++) {
            size_t j = NSORTED - 1 - seen;
            RD_CHECK_MEM(c.keys[i], c.lens[i], sorted_keys[j].k, sorted_keys[j].n);
            seen++;
        }
        if (r < 4)
            break;
        memcpy(next, c.keys[r - 1], c.lens[r - 1]);
        rg.end = next;
        rg.end_len = c.lens[r - 1];
    }
    RD_CHECK_EQ_INT(seen, NSORTED);

    /* the callback stops (count includes that row) or aborts */
    c.stop_after = 3;
    RD_CHECK_EQ_INT(list(st, NULL, &c), 3);
    c.stop_after = -2;
    RD_CHECK_EQ_INT(list(st, NULL, &c), -EIO);
    c.stop_after = 0;
    /* no reentrant calls from the callback */
    c.st = st;
    c.reentrant_rc = 0;
    RD_CHECK_EQ_INT(list(st, NULL, &c), (int)NSORTED);
    RD_CHECK_EQ_INT(c.reentrant_rc, -EBUSY);
    c.st = NULL;

    /* bad ranges */
    memset(&rg, 0, sizeof rg);
    rg.limit = SH_STORE_LIST_MAX + 1;
    RD_CHECK_EQ_INT(sh_store_list(st, &rg, collect_cb, &c, err), -E2BIG);
    RD_CHECK(strstr(err, "1001") != NULL);
    rg.limit = 0;
    rg.prefix_len = 1;
    RD_CHECK_EQ_INT(sh_store_list(st, &rg, collect_cb, &c, err), -EINVAL);
    RD_CHECK_EQ_INT(sh_store_list(st, NULL, NULL, NULL, err), -EINVAL);

    /* the per-call cap */
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    char k[16];
    for (int i = 0; i < 1005; i++) {
        int n = snprintf(k, sizeof k, "m%05d", i);
        sh_store_put(st, k, (size_t)n, "", 0, NULL);
    }
    RD_CHECK_EQ_INT(sh_store_commit(st, err), 0);
    memset(&rg, 0, sizeof rg);
    rg.prefix = "m";
    rg.prefix_len = 1;
    RD_CHECK_EQ_INT(list(st, &rg, &c), SH_STORE_LIST_MAX);
    rg.limit = SH_STORE_LIST_MAX;
    rg.reverse = true;
    RD_CHECK_EQ_INT(list(st, &rg, &c), SH_STORE_LIST_MAX);
    RD_CHECK_STR(c.keys[0], c.lens[0], "m01004");
    sh_store_close(st);
}

/* --- SQL ------------------------------------------------------------------- */

typedef struct rows {
    int n;
    char text[512];     /* "a|b;a|b;" */
} rows;

static int rows_cb(void *ud, const sh_store_sql_value *cols, size_t ncols)
{
    rows *r = ud;
    size_t o = strlen(r->text);
    for (size_t i = 0; i < ncols; i++) {
        const sh_store_sql_value *v = &cols[i];
        char one[128];
        switch (v->type) {
        case SH_STORE_SQL_INT:
            snprintf(one, sizeof one, "%" PRId64, v->i);
            break;
        case SH_STORE_SQL_FLOAT:
            snprintf(one, sizeof one, "%.2f", v->f);
            break;
        case SH_STORE_SQL_TEXT:
            snprintf(one, sizeof one, "'%.*s'", (int)v->n, (const char *)v->p);
            break;
        case SH_STORE_SQL_BLOB:
            snprintf(one, sizeof one, "x%zu", v->n);
            break;
        default:
            snprintf(one, sizeof one, "null");
            break;
        }
        o += (size_t)snprintf(r->text + o, sizeof r->text - o, "%s%s", i ? "|" : "", one);
        if (o >= sizeof r->text)
            o = sizeof r->text - 1;
    }
    if (o + 1 < sizeof r->text) {
        r->text[o] = ';';
        r->text[o + 1] = '\0';
    }
    r->n++;
    return 0;
}

static int sql(sh_store *st, const char *q, rows *r, char *err)
{
    if (r)
        memset(r, 0, sizeof *r);
    return sh_store_exec_sql(st, q, NULL, 0, r ? rows_cb : NULL, r, err);
}

static void test_sql(void)
{
    char err[RD_ERR_LEN] = "";
    rows r;
    sh_store *st = xopen("sql/main", SH_STORE_NORMAL);
    if (!st)
        return;
    RD_CHECK_EQ_INT(sql(st, "CREATE TABLE msgs(id INTEGER PRIMARY KEY, who TEXT NOT NULL UNIQUE,"
                            " body BLOB, score REAL);"
                            "-- a comment\n CREATE INDEX msgs_score ON msgs(score);;",
                        NULL, err), 0);
    sh_store_sql_value p[4] = {
        { .type = SH_STORE_SQL_TEXT, .p = "ann", .n = 3 },
        { .type = SH_STORE_SQL_BLOB, .p = "\0\1\2", .n = 3 },
        { .type = SH_STORE_SQL_FLOAT, .f = 2.5 },
        { .type = SH_STORE_SQL_INT, .i = 7 },
    };
    const char *ins = "INSERT INTO msgs(who, body, score, id) VALUES (?1, ?2, ?3, ?4)";
    RD_CHECK_EQ_INT(sh_store_exec_sql(st, ins, p, 4, NULL, NULL, err), 0);
    RD_CHECK_EQ_INT(sh_store_sql_changes(st), 1);
    p[0].p = "bob";
    p[1].type = SH_STORE_SQL_NULL;
    p[3].i = 8;
    RD_CHECK_EQ_INT(sh_store_exec_sql(st, ins, p, 4, NULL, NULL, err), 0);
    RD_CHECK_EQ_INT(sh_store_exec_sql(st, ins, p, 4, NULL, NULL, err), -EEXIST); /* UNIQUE */
    RD_CHECK(strstr(err, "UNIQUE") != NULL);
    RD_CHECK_EQ_INT(sh_store_exec_sql(st, ins, p, 3, NULL, NULL, err), -EINVAL);
    RD_CHECK(strstr(err, "4 parameters, 3 given") != NULL);
    RD_CHECK_EQ_INT(sh_store_exec_sql(st, "SELECT ?1; SELECT 2", p, 1, NULL, NULL, err), -EINVAL);
    RD_CHECK_EQ_INT(sql(st, "SELECT id, who, body, score FROM msgs ORDER BY id", &r, err), 2);
    RD_CHECK(strcmp(r.text, "7|'ann'|x3|2.50;8|'bob'|null|2.50;") == 0);
    RD_CHECK_EQ_INT(sql(st, "UPDATE msgs SET score = score + 1", NULL, err), 0);
    RD_CHECK_EQ_INT(sh_store_sql_changes(st), 2);
    RD_CHECK_EQ_INT(sql(st, "SELECT 1; SELECT 2, 'x'", &r, err), 2);
    RD_CHECK(strcmp(r.text, "1;2|'x';") == 0);
    RD_CHECK_EQ_INT(sql(st, "SELEC 1", &r, err), -EINVAL);
    RD_CHECK(strstr(err, "syntax error") != NULL);
    RD_CHECK_EQ_INT(sql(st, "  -- nothing\n", &r, err), 0);
    /* the same text again and again runs from the statement cache */
    for (int i = 0; i < 40; i++) {
        char q[64];
        snprintf(q, sizeof q, "SELECT %d", i % 20);
        RD_CHECK_EQ_INT(sql(st, q, NULL, err), 1);
    }

    /* reading kv is fine; the KV API's writes show */
    RD_CHECK_EQ_INT(put_s(st, "hello", "world"), 0);
    RD_CHECK_EQ_INT(sql(st, "SELECT CAST(key AS TEXT), CAST(value AS TEXT) FROM kv", &r, err), 1);
    RD_CHECK(strcmp(r.text, "'hello'|'world';") == 0);
    RD_CHECK_EQ_INT(sql(st, "CREATE TABLE z(a)", NULL, err), 0);
    RD_CHECK_EQ_INT(sh_store_sql_changes(st), 0); /* not the put's count */
    RD_CHECK_EQ_INT(sql(st, "INSERT INTO z VALUES (1), (2), (3); DELETE FROM z WHERE a > 1", NULL,
                        err), 0);
    RD_CHECK_EQ_INT(sh_store_sql_changes(st), 5);

    /* refused, with a reason naming what */
    static const struct { const char *q; const char *why; } refused[] = {
        { "ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH" },
        { "DETACH DATABASE x", "DETACH" },
        { "PRAGMA journal_mode = DELETE", "PRAGMA" },
        { "pragma synchronous", "PRAGMA" },
        { "VACUUM", "VACUUM" },
        { " /* hi */ vacuum", "VACUUM" },
        { "VACUUM INTO '/tmp/roomd-stolen.db'", "VACUUM" },
        { "SELECT 1; VACUUM", "VACUUM" },
        { "BEGIN", "BEGIN" },
        { "COMMIT", "BEGIN/COMMIT" },
        { "ROLLBACK", "BEGIN/COMMIT" },
        { "SAVEPOINT s", "SAVEPOINT" },
        { "RELEASE s", "SAVEPOINT" },
        { "INSERT INTO kv VALUES (x'01', x'02')", "kv is reserved" },
        { "UPDATE kv SET value = x'00'", "kv is reserved" },
        { "DELETE FROM kv", "kv is reserved" },
        { "DROP TABLE kv", "kv is reserved" },
        { "ALTER TABLE kv ADD COLUMN z", "kv is reserved" },
        { "CREATE INDEX kv_v ON kv(value)", "kv is reserved" },
        { "CREATE TRIGGER t AFTER INSERT ON KV BEGIN SELECT 1; END", "kv is reserved" },
        { "CREATE TEMP TABLE kv(a)", "kv is reserved" },
        { "SELECT * FROM meta", "meta is reserved" },
        { "INSERT INTO meta VALUES ('alarm', 1)", "meta is reserved" },
        { "SELECT load_extension('/tmp/x.so')", "load_extension" },
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        err[0] = '\0';
        int rc = sql(st, refused[i].q, NULL, err);
        if (rc != -EPERM || !strstr(err, refused[i].why))
            fprintf(stderr, "  %s -> %d %s\n", refused[i].q, rc, err);
        RD_CHECK_EQ_INT(rc, -EPERM);
        RD_CHECK(strstr(err, refused[i].why) != NULL);
    }
    struct stat sb;
    RD_CHECK(stat("/tmp/roomd-stolen.db", &sb) < 0);
    /* A trigger on a user table may not write kv either: refused when it
     * would fire. */
    RD_CHECK_EQ_INT(sql(st, "CREATE TABLE t(a); CREATE TRIGGER tt AFTER INSERT ON t BEGIN "
                            "INSERT INTO kv VALUES (x'01', x'01'); END",
                        NULL, err), 0);
    RD_CHECK_EQ_INT(sql(st, "INSERT INTO t VALUES (1)", NULL, err), -EPERM);
    RD_CHECK(strstr(err, "kv is reserved") != NULL);
    /* Nothing refused left a trace. */
    rd_buf v = RD_BUF_INIT;
    RD_CHECK_EQ_INT(get_s(st, "hello", &v), 0);
    RD_CHECK_EQ_INT(sh_store_get(st, "\x01", 1, &v, NULL), -ENOENT);
    /* Foreign keys are on. */
    RD_CHECK_EQ_INT(sql(st, "CREATE TABLE parent(id INTEGER PRIMARY KEY);"
                            "CREATE TABLE child(p INTEGER REFERENCES parent(id))", NULL, err), 0);
    RD_CHECK_EQ_INT(sql(st, "INSERT INTO child VALUES (5)", NULL, err), -EINVAL);
    RD_CHECK(strstr(err, "FOREIGN KEY") != NULL);

    /* SQL is part of the event */
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    RD_CHECK_EQ_INT(sql(st, "INSERT INTO parent(id) VALUES (1)", NULL, err), 0);
    RD_CHECK_EQ_INT(sql(st, "CREATE TABLE gone(x)", NULL, err), 0);
    RD_CHECK_EQ_INT(sql(st, "SELECT id FROM parent", &r, err), 1);
    sh_store_rollback(st);
    RD_CHECK_EQ_INT(sql(st, "SELECT id FROM parent", &r, err), 0);
    RD_CHECK_EQ_INT(sql(st, "SELECT * FROM gone", NULL, err), -EINVAL);
    RD_CHECK(strstr(err, "no such table") != NULL);
    /* internal statements survive the user's schema changes, and a TEMP
     * table cannot shadow them */
    RD_CHECK_EQ_INT(sql(st, "CREATE TEMP TABLE other(a); DROP TABLE t", NULL, err), 0);
    RD_CHECK_EQ_INT(put_s(st, "after", "schema"), 0);
    RD_CHECK_EQ_INT(get_s(st, "after", &v), 0);

    /* row callback: stop, abort, no reentrance */
    RD_CHECK_EQ_INT(sql(st, "SELECT 1 UNION ALL SELECT 2", &r, err), 2);
    rd_buf_free(&v);
    sh_store_close(st);
}

static int stop_row_cb(void *ud, const sh_store_sql_value *cols, size_t ncols)
{
    sh_store *st = ud;
    (void)cols;
    (void)ncols;
    rd_buf b = RD_BUF_INIT;
    int rc = sh_store_get(st, "x", 1, &b, NULL);
    rd_buf_free(&b);
    return rc == -EBUSY ? 1 : -EINVAL;
}

/* A runaway query stops at the time limit. Interrupting a write rolls the
 * whole transaction back in SQLite: the event fails as a whole. */
static void test_sql_time_and_failed_event(void)
{
    char err[RD_ERR_LEN] = "";
    rd_buf v = RD_BUF_INIT;
    sh_store *st = xopen("sql/slow", SH_STORE_NORMAL);
    if (!st)
        return;
    RD_CHECK_EQ_INT(sh_store_exec_sql(st, "SELECT 1 UNION ALL SELECT 2", NULL, 0, stop_row_cb, st,
                                      err), 1);
    sh_store_set_sql_time_limit(st, 50);
    static const char forever[] =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    RD_CHECK_EQ_INT(sql(st, forever, NULL, err), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    RD_CHECK(ms >= 45 && ms < 10000);
    RD_CHECK(strstr(err, "longer than 50 ms") != NULL);

    RD_CHECK_EQ_INT(sql(st, "CREATE TABLE t(a)", NULL, err), 0);
    RD_CHECK_EQ_INT(put_s(st, "before", "1"), 0);
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    RD_CHECK_EQ_INT(put_s(st, "k1", "1"), 0);
    RD_CHECK_EQ_INT(sql(st, "INSERT INTO t SELECT x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION "
                            "ALL SELECT x + 1 FROM c) SELECT x FROM c)", NULL, err), -ETIMEDOUT);
    /* every later call in this event fails the same way... */
    RD_CHECK_EQ_INT(put_s(st, "k2", "2"), -ETIMEDOUT);
    RD_CHECK_EQ_INT(sh_store_get(st, "before", 6, &v, err), -ETIMEDOUT);
    RD_CHECK(strstr(err, "rolled back") != NULL);
    /* ...and so does the commit: the event's output must be dropped */
    RD_CHECK_EQ_INT(sh_store_commit(st, err), -ETIMEDOUT);
    RD_CHECK_EQ_INT(get_s(st, "k1", &v), -ENOENT);
    RD_CHECK_EQ_INT(get_s(st, "k2", &v), -ENOENT);
    RD_CHECK_EQ_INT(get_s(st, "before", &v), 0);
    /* the next event is healthy */
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    RD_CHECK_EQ_INT(put_s(st, "k3", "3"), 0);
    RD_CHECK_EQ_INT(sh_store_commit(st, err), 0);
    RD_CHECK_EQ_INT(get_s(st, "k3", &v), 0);
    sh_store_close(st);
    rd_buf_free(&v);
}

/* --- alarm ----------------------------------------------------------------- */

static void test_alarm(void)
{
    char err[RD_ERR_LEN] = "";
    uint64_t ms = 99;
    sh_store *st = xopen("timer/a", SH_STORE_NORMAL);
    if (!st)
        return;
    RD_CHECK_EQ_INT(sh_store_alarm_get(st, &ms, err), 0);
    RD_CHECK_EQ_INT(ms, 0);
    RD_CHECK_EQ_INT(sh_store_alarm_set(st, 1700000000123ULL, err), 0);
    RD_CHECK_EQ_INT(sh_store_alarm_get(st, &ms, err), 0);
    RD_CHECK(ms == 1700000000123ULL);
    /* in an event: rolled back with it */
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    RD_CHECK_EQ_INT(sh_store_alarm_set(st, 5, err), 0);
    RD_CHECK_EQ_INT(sh_store_alarm_get(st, &ms, err), 0);
    RD_CHECK_EQ_INT(ms, 5);
    sh_store_rollback(st);
    RD_CHECK_EQ_INT(sh_store_alarm_get(st, &ms, err), 0);
    RD_CHECK(ms == 1700000000123ULL);
    RD_CHECK_EQ_INT(sh_store_alarm_set(st, UINT64_MAX, err), -ERANGE);
    sh_store_close(st);
    st = xopen("timer/a", SH_STORE_NORMAL);
    RD_CHECK_EQ_INT(sh_store_alarm_get(st, &ms, err), 0);
    RD_CHECK(ms == 1700000000123ULL);
    RD_CHECK_EQ_INT(sh_store_begin(st), 0);
    RD_CHECK_EQ_INT(sh_store_alarm_set(st, 0, err), 0);
    RD_CHECK_EQ_INT(sh_store_commit(st, err), 0);
    RD_CHECK_EQ_INT(sh_store_alarm_get(st, &ms, err), 0);
    RD_CHECK_EQ_INT(ms, 0);
    RD_CHECK_EQ_INT(sh_store_alarm_set(st, 0, err), 0); /* clearing nothing is fine */
    sh_store_close(st);
}

/* --- benchmark ------------------------------------------------------------- */

/* put+commit per second: `events` commits of `batch` puts each. */
static double bench(const char *key, sh_store_durability d, int events, int batch)
{
    sh_store *st = xopen(key, d);
    if (!st)
        return 0;
    char k[32], val[100];
    memset(val, 'v', sizeof val);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = 0;
    for (int e = 0; e < events; e++) {
        sh_store_begin(st);
        for (int b = 0; b < batch; b++) {
            int kl = snprintf(k, sizeof k, "counter-%d", n++ % 1000);
            RD_CHECK_EQ_INT(sh_store_put(st, k, (size_t)kl, val, sizeof val, NULL), 0);
        }
        RD_CHECK_EQ_INT(sh_store_commit(st, NULL), 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sh_store_close(st);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return s > 0 ? n / s : 0;
}

static void test_bench(void)
{
    const char *env = getenv("ROOMD_STORE_BENCH");
    int scale = env ? atoi(env) : 1;
    if (scale < 1)
        scale = 1;
    double normal = bench("bench/normal", SH_STORE_NORMAL, 300 * scale, 1);
    double full = bench("bench/full", SH_STORE_FULL, 30 * scale, 1);
    double full32 = bench("bench/full32", SH_STORE_FULL, 10 * scale, 32);
    fprintf(stderr,
            "  bench (100-byte values, one put per commit unless noted):\n"
            "    normal        %8.0f put+commit/s\n"
            "    full          %8.0f put+commit/s\n"
            "    full, 32/commit %6.0f puts/s (group commit)\n",
            normal, full, full32);
    RD_CHECK(normal > 0 && full > 0 && full32 > 0);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/roomd-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RD_RUN(test_key_check);
    RD_RUN(test_path);
    RD_RUN(test_open_lock);
    RD_RUN(test_lock_fork);
    RD_RUN(test_crash);
    RD_RUN(test_reopen_and_guards);
    RD_RUN(test_kv);
    RD_RUN(test_txn);
    RD_RUN(test_list);
    RD_RUN(test_sql);
    RD_RUN(test_sql_time_and_failed_event);
    RD_RUN(test_alarm);
    RD_RUN(test_bench);
    rm_rf(g_dir);
    return rd_test_summary();
}
