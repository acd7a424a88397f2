/* sh_store: one SQLite database per object; sh_store.h has the contract.
 *
 * Event transaction states:
 *
 *   idle --begin--> event --first call: BEGIN--> txn --commit/rollback--> idle
 *                     |                           |
 *                     +----commit/rollback--------+ (nothing to do)
 *                                                 |
 *                        SQLite rolled back itself v
 *                                               failed --commit (error)/rollback--> idle
 */
#include "sh_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "rd_hash.h"

#define SCHEMA_VERSION 1
#define SQL_CACHE_SLOTS 16
#define SQL_CACHE_TEXT_MAX 4096

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_GET,
    Q_PUT,
    Q_DEL,
    Q_LIST_FWD,     /* [lo, +inf) */
    Q_LIST_REV,
    Q_LIST_FWD_HI,  /* [lo, hi) */
    Q_LIST_REV_HI,
    Q_META_GET,
    Q_META_PUT,
    Q_META_DEL,
    Q_COUNT
};

/* Internal statements name main.* so a user's TEMP table cannot shadow them
 * when SQLite re-prepares them after a schema change. */
static const char *const q_text[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_GET] = "SELECT value FROM main.kv WHERE key = ?1",
    [Q_PUT] = "INSERT OR REPLACE INTO main.kv(key, value) VALUES (?1, ?2)",
    [Q_DEL] = "DELETE FROM main.kv WHERE key = ?1",
    [Q_LIST_FWD] = "SELECT key, value FROM main.kv WHERE key >= ?1 ORDER BY key LIMIT ?3",
    [Q_LIST_REV] = "SELECT key, value FROM main.kv WHERE key >= ?1 ORDER BY key DESC LIMIT ?3",
    [Q_LIST_FWD_HI] = "SELECT key, value FROM main.kv WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3",
    [Q_LIST_REV_HI] =
        "SELECT key, value FROM main.kv WHERE key >= ?1 AND key < ?2 ORDER BY key DESC LIMIT ?3",
    [Q_META_GET] = "SELECT v FROM main.meta WHERE k = ?1",
    [Q_META_PUT] = "INSERT OR REPLACE INTO main.meta(k, v) VALUES (?1, ?2)",
    [Q_META_DEL] = "DELETE FROM main.meta WHERE k = ?1",
};

typedef struct sql_slot {
    char *text;             /* NULL: free */
    sqlite3_stmt *stmt;
    uint64_t used;          /* LRU tick */
} sql_slot;

struct sh_store {
    sqlite3 *db;
    int lock_fd;
    sqlite3_stmt *q[Q_COUNT];
    sql_slot cache[SQL_CACHE_SLOTS];
    uint64_t tick;
    char *key;
    size_t key_len;
    char *file;
    bool event;             /* between begin and commit/rollback */
    bool txn;               /* BEGIN ran */
    bool busy;              /* inside a list/row callback */
    bool user_sql;          /* the authorizer applies the rules */
    int failed;             /* errno of a rollback SQLite did on its own */
    char failed_msg[RD_ERR_LEN + 48]; /* a prefix + a message; cut to RD_ERR_LEN when reported */
    char auth_msg[RD_ERR_LEN];
    uint32_t sql_ms;
    struct timespec deadline;
    int64_t sql_changes;
};

static void seterr(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(char *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, RD_ERR_LEN, fmt, ap);
    va_end(ap);
}

/* --- keys and files ------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, <= U+10FFFF), or 0. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
        return 0;
    return len;
}

static bool class_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int sh_store_key_check(const char *key, size_t klen, char err[RD_ERR_LEN])
{
    if (!key) {
        seterr(err, "no object key");
        return -EINVAL;
    }
    const char *slash = memchr(key, '/', klen);
    if (!slash) {
        seterr(err, "object key has no '/': expected <class>/<name>");
        return -EINVAL;
    }
    size_t clen = (size_t)(slash - key), nlen = klen - clen - 1;
    if (clen == 0 || clen > SH_STORE_CLASS_MAX) {
        seterr(err, "object class must be 1 to %d bytes", SH_STORE_CLASS_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < clen; i++) {
        if (!class_char(key[i])) {
            seterr(err, "object class may only hold [a-z0-9_-]");
            return -EINVAL;
        }
    }
    if (nlen == 0 || nlen > SH_STORE_NAME_MAX) {
        seterr(err, "object name must be 1 to %d bytes", SH_STORE_NAME_MAX);
        return -EINVAL;
    }
    const uint8_t *n = (const uint8_t *)slash + 1;
    for (size_t i = 0; i < nlen;) {
        if (n[i] < 0x20 || n[i] == 0x7f || n[i] == '/') {
            seterr(err, "object name contains a control character or '/'");
            return -EINVAL;
        }
        size_t l = utf8_seq(n + i, nlen - i);
        if (l == 0) {
            seterr(err, "object name is not valid UTF-8");
            return -EINVAL;
        }
        i += l;
    }
    return 0;
}

static bool name_keep(uint8_t c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || (c == '.' && !first);
}

/* Escape a checked name into out[SH_STORE_ESCAPED_MAX + 1], stopping at the
 * last whole character that fits so no %XX (nor a character) is cut. A
 * leading '.' is escaped: no hidden files, and "." / ".." stay plain names. */
static void name_escape(const uint8_t *n, size_t len, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t l = utf8_seq(n + i, len - i), need = 0;
        if (l == 0)
            l = 1; /* unreachable after sh_store_key_check; never loop forever */
        for (size_t j = 0; j < l; j++)
            need += name_keep(n[i + j], i + j == 0) ? 1 : 3;
        if (o + need > SH_STORE_ESCAPED_MAX)
            break;
        for (size_t j = 0; j < l; j++) {
            uint8_t c = n[i + j];
            if (name_keep(c, i + j == 0)) {
                out[o++] = (char)c;
            } else {
                out[o++] = '%';
                out[o++] = hex[c >> 4];
                out[o++] = hex[c & 15];
            }
        }
        i += l;
    }
    out[o] = '\0';
}

int sh_store_path(const char *data_dir, const char *key, size_t klen, char *out, size_t cap)
{
    if (!data_dir || !*data_dir || sh_store_key_check(key, klen, NULL) < 0)
        return -EINVAL;
    size_t dlen = strlen(data_dir);
    while (dlen > 0 && data_dir[dlen - 1] == '/')
        dlen--;
    if (dlen > PATH_MAX)
        return -ENAMETOOLONG;
    const char *slash = memchr(key, '/', klen);
    size_t clen = (size_t)(slash - key);
    char esc[SH_STORE_ESCAPED_MAX + 1];
    name_escape((const uint8_t *)slash + 1, klen - clen - 1, esc);
    uint64_t h = rd_hash64(key, klen);
    int n = snprintf(out, cap, "%.*s/%.*s/%02x/%s-%016" PRIx64 ".db", (int)dlen, data_dir, (int)clen,
                     key, (unsigned)(h >> 56), esc, h);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    return n;
}

/* --- SQLite plumbing -------------------------------------------------------- */

static int sql_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_IOERR:
        return -EIO;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EBADMSG;
    case SQLITE_TOOBIG:
        return -E2BIG;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_CANTOPEN:
        return -EACCES;
    case SQLITE_CONSTRAINT:
        return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ? -EEXIST
                                                                                     : -EINVAL;
    case SQLITE_AUTH:
    case SQLITE_PERM:
        return -EPERM;
    case SQLITE_INTERRUPT:
        return -ETIMEDOUT; /* only our time limit interrupts */
    default:
        return -EINVAL;
    }
}

/* Report a failed SQLite call (rc) on `what`. If it was inside the event's
 * transaction and SQLite rolled that back, the event is failed from now
 * on: see the header. Call before resetting the statement, so that
 * sqlite3_errmsg still describes this failure. */
static int st_sqlfail(sh_store *st, int rc, const char *what, char *err)
{
    int e = sql_errno(rc);
    char msg[RD_ERR_LEN];
    if (st->user_sql && st->auth_msg[0]) {
        e = -EPERM; /* SQLite reports some denials (functions) as SQLITE_ERROR */
        snprintf(msg, sizeof msg, "%s", st->auth_msg);
    } else if ((rc & 0xff) == SQLITE_INTERRUPT) {
        snprintf(msg, sizeof msg, "%s: SQL ran longer than %" PRIu32 " ms", what, st->sql_ms);
    } else {
        snprintf(msg, sizeof msg, "%s: %s", what, sqlite3_errmsg(st->db));
    }
    seterr(err, "%s", msg);
    if (st->txn && sqlite3_get_autocommit(st->db)) {
        st->txn = false;
        st->failed = e;
        snprintf(st->failed_msg, sizeof st->failed_msg, "this event's writes were rolled back: %s",
                 msg);
    }
    return e;
}

/* Every entry point that touches the database starts here: refuse
 * reentrant calls and calls in a failed event, and run the event's BEGIN. */
static int st_enter(sh_store *st, char *err)
{
    if (st->busy) {
        seterr(err, "storage called from inside a storage callback");
        return -EBUSY;
    }
    if (st->failed) {
        seterr(err, "%s", st->failed_msg);
        return st->failed;
    }
    if (st->event && !st->txn) {
        sqlite3_stmt *s = st->q[Q_BEGIN];
        int rc = sqlite3_step(s);
        if (rc != SQLITE_DONE) {
            int e = st_sqlfail(st, rc, "begin", err);
            sqlite3_reset(s);
            return e;
        }
        sqlite3_reset(s);
        st->txn = true;
    }
    return 0;
}

/* Step an internal statement that returns no rows, then reset it. */
static int st_exec(sh_store *st, sqlite3_stmt *s, const char *what, char *err)
{
    int rc = sqlite3_step(s), e = 0;
    if (rc != SQLITE_DONE)
        e = st_sqlfail(st, rc, what, err);
    sqlite3_reset(s);
    return e;
}

/* Plain statements for open: no event, no authorizer yet. */
static int db_exec(sqlite3 *db, const char *sql, char *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        seterr(err, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return sql_errno(rc);
    }
    return 0;
}

static bool reserved_table(const char *name)
{
    return name && (strcasecmp(name, "kv") == 0 || strcasecmp(name, "meta") == 0);
}

/* The rules for user SQL (sh_store.h). Internal statements, including
 * their re-preparation after a user's schema change, run with user_sql
 * false and pass. VACUUM never reaches an authorizer: exec_sql refuses it
 * by its text. */
static int st_authorize(void *ud, int action, const char *a1, const char *a2, const char *db,
                        const char *trigger)
{
    sh_store *st = ud;
    (void)db;
    (void)trigger;
    if (!st->user_sql)
        return SQLITE_OK;
    const char *why = NULL, *table = NULL;
    switch (action) {
    case SQLITE_ATTACH:
        why = "ATTACH";
        break;
    case SQLITE_DETACH:
        why = "DETACH";
        break;
    case SQLITE_PRAGMA:
        why = "PRAGMA";
        break;
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
        snprintf(st->auth_msg, sizeof st->auth_msg,
                 "%s is not allowed in object SQL: each event is one transaction",
                 action == SQLITE_SAVEPOINT ? "SAVEPOINT/RELEASE" : "BEGIN/COMMIT/ROLLBACK");
        return SQLITE_DENY;
    case SQLITE_FUNCTION:
        if (a2 && strcasecmp(a2, "load_extension") == 0)
            why = "load_extension()";
        break;
    case SQLITE_READ:
        if (a1 && strcasecmp(a1, "meta") == 0)
            table = a1;
        break;
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TEMP_VIEW:
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
    case SQLITE_ANALYZE:
        table = reserved_table(a1) ? a1 : NULL;
        break;
    case SQLITE_CREATE_VTABLE:
    case SQLITE_DROP_VTABLE:
        table = reserved_table(a1) ? a1 : NULL;
        break;
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TRIGGER:
    case SQLITE_ALTER_TABLE:
        table = reserved_table(a2) ? a2 : NULL;
        break;
    default:
        break;
    }
    if (why) {
        snprintf(st->auth_msg, sizeof st->auth_msg, "%s is not allowed in object SQL", why);
        return SQLITE_DENY;
    }
    if (table) {
        snprintf(st->auth_msg, sizeof st->auth_msg, "table %s is reserved: %s", table,
                 strcasecmp(table, "kv") == 0 ? "change it with the storage API (put/delete)"
                                              : "the shard keeps the alarm there");
        return SQLITE_DENY;
    }
    return SQLITE_OK;
}

static int st_progress(void *ud)
{
    sh_store *st = ud;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > st->deadline.tv_sec ||
           (now.tv_sec == st->deadline.tv_sec && now.tv_nsec >= st->deadline.tv_nsec);
}

/* --- open and close ------------------------------------------------------- */

/* mkdir -p of the directories leading to `file`. Returns the number of
 * directories created (so open knows what to fsync), or -errno. */
static int mkdirs_for(const char *file, char *err)
{
    char tmp[PATH_MAX];
    size_t len = strlen(file);
    if (len >= sizeof tmp)
        return -ENAMETOOLONG;
    memcpy(tmp, file, len + 1);
    char *last = strrchr(tmp, '/');
    if (!last || last == tmp)
        return 0;
    *last = '\0';
    int made = 0;
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0750) == 0) {
                made++;
            } else if (errno != EEXIST) {
                int e = -errno;
                seterr(err, "cannot create %s: %s", tmp, strerror(errno));
                return e;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return made;
}

/* fsync the directory holding `path`, and `depth - 1` more above it: a new
 * file's name must be durable too under full durability. */
static int fsync_dirs(const char *path, int depth, char *err)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (int i = 0; i < depth; i++) {
        char *slash = strrchr(tmp, '/');
        if (!slash)
            break;
        if (slash == tmp)
            slash[1] = '\0';
        else
            *slash = '\0';
        int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0) {
            int e = -errno;
            seterr(err, "cannot sync directory %s: %s", tmp, strerror(errno));
            if (fd >= 0)
                close(fd);
            return e;
        }
        close(fd);
        if (slash == tmp)
            break;
    }
    return 0;
}

/* Create the schema on first open; check the version and the owner key. */
static int st_schema(sh_store *st, char *err)
{
    int r;
    sqlite3_stmt *s = NULL;
    if ((r = db_exec(st->db, "BEGIN IMMEDIATE", err)) < 0)
        return r;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
        seterr(err, "read schema version: %s", sqlite3_errmsg(st->db));
        r = sql_errno(sqlite3_errcode(st->db));
        goto fail;
    }
    int version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    s = NULL;
    if (version > SCHEMA_VERSION) {
        seterr(err, "%s has storage version %d, newer than this roomd's %d", st->file, version,
               SCHEMA_VERSION);
        r = -EPROTONOSUPPORT;
        goto fail;
    }
    if (version == 0) {
        r = db_exec(st->db,
                    "CREATE TABLE IF NOT EXISTS main.kv(key BLOB PRIMARY KEY, value BLOB NOT NULL) "
                    "WITHOUT ROWID;"
                    "CREATE TABLE IF NOT EXISTS main.meta(k TEXT PRIMARY KEY, v BLOB);"
                    "PRAGMA user_version = 1",
                    err);
        if (r < 0)
            goto fail;
    }
    rc = sqlite3_prepare_v2(st->db, "SELECT v FROM main.meta WHERE k = 'key'", -1, &s, NULL);
    if (rc != SQLITE_OK) {
        seterr(err, "read owner key: %s", sqlite3_errmsg(st->db));
        r = sql_errno(rc);
        goto fail;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const void *k = sqlite3_column_blob(s, 0);
        size_t kn = (size_t)sqlite3_column_bytes(s, 0);
        if (kn != st->key_len || (kn && memcmp(k, st->key, kn) != 0)) {
            seterr(err, "%s belongs to object %.*s, not %s", st->file, (int)(kn > 64 ? 64 : kn),
                   k ? (const char *)k : "", st->key);
            r = -EEXIST;
            goto fail;
        }
    } else if (rc == SQLITE_DONE) {
        sqlite3_finalize(s);
        s = NULL;
        rc = sqlite3_prepare_v2(st->db, "INSERT INTO main.meta(k, v) VALUES ('key', ?1)", -1, &s,
                                NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_blob(s, 1, st->key, (int)st->key_len, SQLITE_STATIC);
            rc = sqlite3_step(s);
        }
        if (rc != SQLITE_DONE) {
            seterr(err, "record owner key: %s", sqlite3_errmsg(st->db));
            r = sql_errno(rc);
            goto fail;
        }
    } else {
        seterr(err, "read owner key: %s", sqlite3_errmsg(st->db));
        r = sql_errno(rc);
        goto fail;
    }
    sqlite3_finalize(s);
    s = NULL;
    return db_exec(st->db, "COMMIT", err);
fail:
    sqlite3_finalize(s);
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

int sh_store_open(const char *data_dir, const char *key, size_t klen, sh_store_durability durability,
                  sh_store **ret_store, char err[RD_ERR_LEN])
{
    char path[PATH_MAX], lock[PATH_MAX + 8];
    int r = sh_store_key_check(key, klen, err);
    if (r < 0)
        return r;
    if ((r = sh_store_path(data_dir, key, klen, path, sizeof path)) < 0) {
        seterr(err, "no usable path for %.*s under %s", (int)klen, key, data_dir ? data_dir : "");
        return r;
    }
    snprintf(lock, sizeof lock, "%s.lock", path);

    sh_store *st = rd_xcalloc(1, sizeof *st);
    st->lock_fd = -1;
    st->key = rd_xstrndup(key, klen);
    st->key_len = klen;
    st->file = rd_xstrndup(path, strlen(path));
    st->sql_ms = SH_STORE_SQL_TIME_MS;

    int made = mkdirs_for(path, err);
    if (made < 0) {
        r = made;
        goto fail;
    }
    st->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (st->lock_fd < 0) {
        r = -errno;
        seterr(err, "cannot open %s: %s", lock, strerror(errno));
        goto fail;
    }
    while ((r = flock(st->lock_fd, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
        ;
    if (r < 0) {
        r = -errno;
        if (r == -EWOULDBLOCK)
            seterr(err, "object %s is owned by another process", st->key);
        else
            seterr(err, "cannot lock %s: %s", lock, strerror(errno));
        goto fail;
    }

    struct stat sb;
    bool created = stat(path, &sb) < 0;
    int rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_PRIVATECACHE | SQLITE_OPEN_NOFOLLOW |
                                 SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK) {
        seterr(err, "cannot open %s: %s", path, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        r = sql_errno(rc);
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 0);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    sqlite3_limit(st->db, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, SH_STORE_SQL_VALUE_MAX);
    sqlite3_limit(st->db, SQLITE_LIMIT_SQL_LENGTH, SH_STORE_SQL_LENGTH_MAX);
    sqlite3_limit(st->db, SQLITE_LIMIT_COLUMN, SH_STORE_SQL_COLUMNS_MAX);
    sqlite3_limit(st->db, SQLITE_LIMIT_VARIABLE_NUMBER, SH_STORE_SQL_COLUMNS_MAX);
    sqlite3_limit(st->db, SQLITE_LIMIT_TRIGGER_DEPTH, 32);

    /* We are the only owner (the flock), so SQLite may keep its locks for
     * the connection's lifetime: no fcntl locking per transaction and, set
     * before WAL is entered, a WAL index on the heap instead of a -shm
     * file. put+commit runs about 1.7x faster. journal_mode answers with
     * the mode in force; anything but "wal" is refused rather than silently
     * running with other durability. */
    if ((r = db_exec(st->db, "PRAGMA locking_mode = EXCLUSIVE", err)) < 0)
        goto fail;
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        seterr(err, "%s: %s", path, sqlite3_errmsg(st->db));
        r = sql_errno(rc);
        sqlite3_finalize(s);
        goto fail;
    }
    const char *mode = (const char *)sqlite3_column_text(s, 0);
    if (!mode || strcmp(mode, "wal") != 0) {
        seterr(err, "%s: journal_mode is %s, WAL is required", path, mode ? mode : "unknown");
        r = -EIO;
        sqlite3_finalize(s);
        goto fail;
    }
    sqlite3_finalize(s);
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA synchronous = %s; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -%d;"
             "PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = 1048576",
             durability == SH_STORE_FULL ? "FULL" : "NORMAL", SH_STORE_CACHE_KIB);
    if ((r = db_exec(st->db, pragmas, err)) < 0)
        goto fail;
    if ((r = st_schema(st, err)) < 0)
        goto fail;
    if (created && durability == SH_STORE_FULL && (r = fsync_dirs(path, made + 1, err)) < 0)
        goto fail;

    for (int i = 0; i < Q_COUNT; i++) {
        rc = sqlite3_prepare_v3(st->db, q_text[i], -1, SQLITE_PREPARE_PERSISTENT, &st->q[i], NULL);
        if (rc != SQLITE_OK) {
            seterr(err, "prepare %s: %s", q_text[i], sqlite3_errmsg(st->db));
            r = sql_errno(rc);
            goto fail;
        }
    }
    sqlite3_set_authorizer(st->db, st_authorize, st);
    *ret_store = st;
    return 0;
fail:
    sh_store_close(st);
    return r;
}

static void cache_drop(sql_slot *slot)
{
    sqlite3_finalize(slot->stmt);
    free(slot->text);
    slot->stmt = NULL;
    slot->text = NULL;
}

void sh_store_close(sh_store *st)
{
    if (!st)
        return;
    if (st->db) {
        for (size_t i = 0; i < SQL_CACHE_SLOTS; i++)
            cache_drop(&st->cache[i]);
        if (st->txn && !sqlite3_get_autocommit(st->db))
            sqlite3_step(st->q[Q_ROLLBACK]);
        for (int i = 0; i < Q_COUNT; i++)
            sqlite3_finalize(st->q[i]);
        /* No checkpoint on close: it would write and fsync the database
         * file, and closing is on the path of hibernation and of handing an
         * object to another shard. The WAL stays and the next open (here
         * or on the new owner) reads it; SQLite checkpoints it as it grows. */
        sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        sqlite3_close_v2(st->db);
    }
    /* The database is closed before the lock goes, so a new owner never
     * overlaps with us. */
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    free(st->key);
    free(st->file);
    free(st);
}

const char *sh_store_key(const sh_store *st)
{
    return st->key;
}

const char *sh_store_file(const sh_store *st)
{
    return st->file;
}

size_t sh_store_memory(const sh_store *st)
{
    size_t total = sizeof *st + st->key_len + 1 + strlen(st->file) + 1;
    static const int ops[] = { SQLITE_DBSTATUS_CACHE_USED, SQLITE_DBSTATUS_SCHEMA_USED,
                               SQLITE_DBSTATUS_STMT_USED };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        int cur = 0, hi = 0;
        if (sqlite3_db_status(st->db, ops[i], &cur, &hi, 0) == SQLITE_OK && cur > 0)
            total += (size_t)cur;
    }
    for (size_t i = 0; i < SQL_CACHE_SLOTS; i++)
        if (st->cache[i].text)
            total += strlen(st->cache[i].text) + 1;
    return total;
}

void sh_store_set_sql_time_limit(sh_store *st, uint32_t ms)
{
    st->sql_ms = ms;
}

/* --- event transactions --------------------------------------------------- */

int sh_store_begin(sh_store *st)
{
    if (st->busy)
        return -EBUSY;
    if (st->event)
        return -EALREADY;
    st->event = true;
    return 0;
}

int sh_store_commit(sh_store *st, char err[RD_ERR_LEN])
{
    if (st->busy) {
        seterr(err, "storage called from inside a storage callback");
        return -EBUSY;
    }
    st->event = false;
    if (st->failed) {
        int e = st->failed;
        seterr(err, "%s", st->failed_msg);
        st->failed = 0;
        return e;
    }
    if (!st->txn)
        return 0;
    st->txn = false;
    sqlite3_stmt *s = st->q[Q_COMMIT];
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return 0;
    }
    int e = sql_errno(rc);
    seterr(err, "commit: %s", sqlite3_errmsg(st->db));
    sqlite3_reset(s);
    /* A failed COMMIT may leave the transaction open (e.g. busy): the
     * event's writes must not ride along with the next event. */
    if (!sqlite3_get_autocommit(st->db)) {
        sqlite3_step(st->q[Q_ROLLBACK]);
        sqlite3_reset(st->q[Q_ROLLBACK]);
    }
    return e;
}

void sh_store_rollback(sh_store *st)
{
    if (st->busy)
        return;
    st->event = false;
    st->failed = 0;
    if (!st->txn)
        return;
    st->txn = false;
    if (!sqlite3_get_autocommit(st->db)) {
        sqlite3_step(st->q[Q_ROLLBACK]);
        sqlite3_reset(st->q[Q_ROLLBACK]);
    }
}

bool sh_store_pending(const sh_store *st)
{
    return st->txn;
}

/* --- key-value API -------------------------------------------------------- */

static int key_check(const void *key, size_t klen, size_t max, const char *what, char *err)
{
    if (!key || klen == 0) {
        seterr(err, "empty %s", what);
        return -EINVAL;
    }
    if (klen > max) {
        seterr(err, "%s is %zu bytes, more than %zu", what, klen, max);
        return -E2BIG;
    }
    return 0;
}

/* Bind bytes as a BLOB: a NULL pointer would bind SQL NULL. */
static void bind_bytes(sqlite3_stmt *s, int i, const void *p, size_t n)
{
    sqlite3_bind_blob(s, i, n ? p : "", (int)n, SQLITE_STATIC);
}

int sh_store_get(sh_store *st, const void *key, size_t klen, rd_buf *ret_value,
                 char err[RD_ERR_LEN])
{
    int r = key_check(key, klen, SH_STORE_KEY_MAX, "key", err);
    if (r < 0 || (r = st_enter(st, err)) < 0)
        return r;
    sqlite3_stmt *s = st->q[Q_GET];
    bind_bytes(s, 1, key, klen);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        rd_buf_append(ret_value, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
        r = 0;
    } else if (rc == SQLITE_DONE) {
        seterr(err, "no such key");
        r = -ENOENT;
    } else {
        r = st_sqlfail(st, rc, "get", err);
    }
    sqlite3_reset(s);
    return r;
}

int sh_store_put(sh_store *st, const void *key, size_t klen, const void *value, size_t vlen,
                 char err[RD_ERR_LEN])
{
    int r = key_check(key, klen, SH_STORE_KEY_MAX, "key", err);
    if (r < 0)
        return r;
    if (vlen > SH_STORE_VALUE_MAX) {
        seterr(err, "value is %zu bytes, more than %d", vlen, SH_STORE_VALUE_MAX);
        return -E2BIG;
    }
    if (!value && vlen) {
        seterr(err, "no value");
        return -EINVAL;
    }
    if ((r = st_enter(st, err)) < 0)
        return r;
    sqlite3_stmt *s = st->q[Q_PUT];
    bind_bytes(s, 1, key, klen);
    bind_bytes(s, 2, value, vlen);
    return st_exec(st, s, "put", err);
}

int sh_store_del(sh_store *st, const void *key, size_t klen, char err[RD_ERR_LEN])
{
    int r = key_check(key, klen, SH_STORE_KEY_MAX, "key", err);
    if (r < 0 || (r = st_enter(st, err)) < 0)
        return r;
    sqlite3_stmt *s = st->q[Q_DEL];
    bind_bytes(s, 1, key, klen);
    if ((r = st_exec(st, s, "delete", err)) < 0)
        return r;
    if (sqlite3_changes(st->db) == 0) {
        seterr(err, "no such key");
        return -ENOENT;
    }
    return 0;
}

/* SQLite's BLOB order: memcmp, then the shorter first. */
static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = an && bn ? memcmp(a, b, an < bn ? an : bn) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

int sh_store_list(sh_store *st, const sh_store_range *range, sh_store_list_cb cb, void *ud,
                  char err[RD_ERR_LEN])
{
    static const sh_store_range all = { 0 };
    const sh_store_range *rg = range ? range : &all;
    const size_t bound_max = SH_STORE_KEY_MAX + 1;
    if ((rg->prefix_len && !rg->prefix) || (rg->start_len && !rg->start) ||
        (rg->end_len && !rg->end) || !cb) {
        seterr(err, "list: a bound has a length but no bytes, or no callback");
        return -EINVAL;
    }
    if (rg->prefix_len > bound_max || rg->start_len > bound_max || rg->end_len > bound_max) {
        seterr(err, "list: a bound is longer than %zu bytes", bound_max);
        return -E2BIG;
    }
    if (rg->limit > SH_STORE_LIST_MAX) {
        seterr(err, "list limit %" PRIu32 " is more than %d", rg->limit, SH_STORE_LIST_MAX);
        return -E2BIG;
    }
    uint32_t limit = rg->limit ? rg->limit : SH_STORE_LIST_MAX;

    /* Fold prefix into [lo, hi): keys with the prefix are those in
     * [prefix, successor(prefix)), the successor being the prefix without
     * its trailing 0xff bytes and the last byte incremented (none when all
     * bytes are 0xff). */
    const uint8_t *lo = rg->start ? rg->start : (const uint8_t *)"";
    size_t lo_n = rg->start ? rg->start_len : 0;
    const uint8_t *hi = rg->end;
    size_t hi_n = rg->end_len;
    uint8_t succ[SH_STORE_KEY_MAX + 1];
    if (rg->prefix && rg->prefix_len) {
        const uint8_t *p = rg->prefix;
        size_t pn = rg->prefix_len;
        if (bytes_cmp(p, pn, lo, lo_n) > 0) {
            lo = p;
            lo_n = pn;
        }
        size_t sn = pn;
        while (sn > 0 && p[sn - 1] == 0xff)
            sn--;
        if (sn > 0) {
            memcpy(succ, p, sn);
            succ[sn - 1]++;
            if (!hi || bytes_cmp(succ, sn, hi, hi_n) < 0) {
                hi = succ;
                hi_n = sn;
            }
        }
    }
    if (hi && bytes_cmp(lo, lo_n, hi, hi_n) >= 0)
        return 0;

    int r = st_enter(st, err);
    if (r < 0)
        return r;
    sqlite3_stmt *s = st->q[hi ? (rg->reverse ? Q_LIST_REV_HI : Q_LIST_FWD_HI)
                               : (rg->reverse ? Q_LIST_REV : Q_LIST_FWD)];
    bind_bytes(s, 1, lo, lo_n);
    if (hi)
        bind_bytes(s, 2, hi, hi_n);
    sqlite3_bind_int(s, 3, (int)limit);
    int count = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const uint8_t *k = sqlite3_column_blob(s, 0);
        size_t kn = (size_t)sqlite3_column_bytes(s, 0);
        const uint8_t *v = sqlite3_column_blob(s, 1);
        size_t vn = (size_t)sqlite3_column_bytes(s, 1);
        count++;
        st->busy = true;
        int c = cb(ud, k, kn, v ? v : (const uint8_t *)"", vn);
        st->busy = false;
        if (c != 0) {
            sqlite3_reset(s);
            if (c < 0)
                seterr(err, "list stopped by its callback");
            return c < 0 ? c : count;
        }
    }
    if (rc != SQLITE_DONE)
        count = st_sqlfail(st, rc, "list", err);
    sqlite3_reset(s);
    return count;
}

/* --- alarm ---------------------------------------------------------------- */

int sh_store_alarm_get(sh_store *st, uint64_t *ret_ms, char err[RD_ERR_LEN])
{
    int r = st_enter(st, err);
    if (r < 0)
        return r;
    sqlite3_stmt *s = st->q[Q_META_GET];
    sqlite3_bind_text(s, 1, "alarm", 5, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        int64_t v = sqlite3_column_int64(s, 0);
        *ret_ms = v > 0 ? (uint64_t)v : 0;
    } else if (rc == SQLITE_DONE) {
        *ret_ms = 0;
    } else {
        r = st_sqlfail(st, rc, "read alarm", err);
    }
    sqlite3_reset(s);
    return r;
}

int sh_store_alarm_set(sh_store *st, uint64_t ms, char err[RD_ERR_LEN])
{
    if (ms > (uint64_t)INT64_MAX) {
        seterr(err, "alarm time %" PRIu64 " out of range", ms);
        return -ERANGE;
    }
    int r = st_enter(st, err);
    if (r < 0)
        return r;
    sqlite3_stmt *s = st->q[ms ? Q_META_PUT : Q_META_DEL];
    sqlite3_bind_text(s, 1, "alarm", 5, SQLITE_STATIC);
    if (ms)
        sqlite3_bind_int64(s, 2, (int64_t)ms);
    return st_exec(st, s, "set alarm", err);
}

/* --- SQL ------------------------------------------------------------------ */

/* Skip white space, comments and empty statements. */
static const char *sql_skip(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == ';')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            p += strcspn(p, "\n");
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            return p;
        }
    }
}

/* VACUUM, the one statement no authorizer action covers (VACUUM INTO
 * would write any file). */
static bool sql_is_vacuum(const char *stmt_text)
{
    const char *p = sql_skip(stmt_text);
    return strncasecmp(p, "vacuum", 6) == 0 &&
           !((p[6] >= 'a' && p[6] <= 'z') || (p[6] >= 'A' && p[6] <= 'Z') ||
             (p[6] >= '0' && p[6] <= '9') || p[6] == '_');
}

static sql_slot *cache_find(sh_store *st, const char *sql)
{
    for (size_t i = 0; i < SQL_CACHE_SLOTS; i++)
        if (st->cache[i].text && strcmp(st->cache[i].text, sql) == 0)
            return &st->cache[i];
    return NULL;
}

static void cache_put(sh_store *st, const char *sql, sqlite3_stmt *s)
{
    sql_slot *victim = &st->cache[0];
    for (size_t i = 0; i < SQL_CACHE_SLOTS; i++) {
        if (!st->cache[i].text) {
            victim = &st->cache[i];
            break;
        }
        if (st->cache[i].used < victim->used)
            victim = &st->cache[i];
    }
    cache_drop(victim);
    victim->text = rd_xstrndup(sql, strlen(sql));
    victim->stmt = s;
    victim->used = ++st->tick;
}

static int bind_param(sh_store *st, sqlite3_stmt *s, int i, const sh_store_sql_value *v, char *err)
{
    int rc;
    switch (v->type) {
    case SH_STORE_SQL_NULL:
        rc = sqlite3_bind_null(s, i);
        break;
    case SH_STORE_SQL_INT:
        rc = sqlite3_bind_int64(s, i, v->i);
        break;
    case SH_STORE_SQL_FLOAT:
        rc = sqlite3_bind_double(s, i, v->f);
        break;
    case SH_STORE_SQL_TEXT:
    case SH_STORE_SQL_BLOB:
        if ((!v->p && v->n) || v->n > SH_STORE_SQL_VALUE_MAX) {
            seterr(err, "parameter %d: %s", i, v->p ? "too long" : "no bytes");
            return v->p ? -E2BIG : -EINVAL;
        }
        if (v->type == SH_STORE_SQL_TEXT)
            rc = sqlite3_bind_text(s, i, v->p ? v->p : "", (int)v->n, SQLITE_STATIC);
        else
            rc = sqlite3_bind_blob(s, i, v->p ? v->p : "", (int)v->n, SQLITE_STATIC);
        break;
    default:
        seterr(err, "parameter %d: unknown type %d", i, (int)v->type);
        return -EINVAL;
    }
    if (rc != SQLITE_OK) {
        seterr(err, "parameter %d: %s", i, sqlite3_errmsg(st->db));
        return sql_errno(rc);
    }
    return 0;
}

/* Step one prepared user statement to its end, handing rows to cb. Adds
 * the rows to *rows; returns 0, > 0 when cb stopped, or a negative errno. */
static int sql_run(sh_store *st, sqlite3_stmt *s, sh_store_row_cb cb, void *ud, int *rows,
                   char *err)
{
    sh_store_sql_value cols[SH_STORE_SQL_COLUMNS_MAX];
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ++*rows;
        if (!cb)
            continue;
        int n = sqlite3_column_count(s);
        if (n > SH_STORE_SQL_COLUMNS_MAX)
            n = SH_STORE_SQL_COLUMNS_MAX;
        for (int c = 0; c < n; c++) {
            sh_store_sql_value *v = &cols[c];
            memset(v, 0, sizeof *v);
            v->name = sqlite3_column_name(s, c);
            switch (sqlite3_column_type(s, c)) {
            case SQLITE_INTEGER:
                v->type = SH_STORE_SQL_INT;
                v->i = sqlite3_column_int64(s, c);
                break;
            case SQLITE_FLOAT:
                v->type = SH_STORE_SQL_FLOAT;
                v->f = sqlite3_column_double(s, c);
                break;
            case SQLITE_TEXT:
                v->type = SH_STORE_SQL_TEXT;
                v->p = sqlite3_column_text(s, c);
                v->n = (size_t)sqlite3_column_bytes(s, c);
                break;
            case SQLITE_BLOB:
                v->type = SH_STORE_SQL_BLOB;
                v->p = sqlite3_column_blob(s, c);
                v->n = (size_t)sqlite3_column_bytes(s, c);
                if (!v->p)
                    v->p = "";
                break;
            default:
                v->type = SH_STORE_SQL_NULL;
                break;
            }
        }
        st->busy = true;
        int c = cb(ud, cols, (size_t)n);
        st->busy = false;
        if (c != 0) {
            if (c < 0)
                seterr(err, "SQL stopped by its row callback");
            return c;
        }
    }
    if (rc != SQLITE_DONE)
        return st_sqlfail(st, rc, "sql", err);
    return 0;
}

int sh_store_exec_sql(sh_store *st, const char *sql, const sh_store_sql_value *params,
                      size_t nparams, sh_store_row_cb cb, void *ud, char err[RD_ERR_LEN])
{
    if (!sql || (nparams && !params)) {
        seterr(err, "no SQL, or parameters missing");
        return -EINVAL;
    }
    if (nparams > SH_STORE_SQL_COLUMNS_MAX) {
        seterr(err, "%zu parameters, more than %d", nparams, SH_STORE_SQL_COLUMNS_MAX);
        return -E2BIG;
    }
    size_t len = strlen(sql);
    if (len > SH_STORE_SQL_LENGTH_MAX) {
        seterr(err, "SQL is %zu bytes, more than %d", len, SH_STORE_SQL_LENGTH_MAX);
        return -E2BIG;
    }
    int r = st_enter(st, err);
    if (r < 0)
        return r;

    st->user_sql = true;
    st->auth_msg[0] = '\0';
    int64_t changes0 = sqlite3_total_changes64(st->db);
    if (st->sql_ms) {
        clock_gettime(CLOCK_MONOTONIC, &st->deadline);
        st->deadline.tv_sec += st->sql_ms / 1000;
        st->deadline.tv_nsec += (long)(st->sql_ms % 1000) * 1000000L;
        if (st->deadline.tv_nsec >= 1000000000L) {
            st->deadline.tv_sec++;
            st->deadline.tv_nsec -= 1000000000L;
        }
        sqlite3_progress_handler(st->db, 1000, st_progress, st);
    }

    int rows = 0;
    const char *p = sql;
    while (*(p = sql_skip(p))) {
        sqlite3_stmt *s = NULL;
        const char *tail = p;
        sql_slot *slot = cache_find(st, p);
        if (slot) {
            s = slot->stmt;
            slot->used = ++st->tick;
            tail = p + strlen(p);
        } else {
            int rc = sqlite3_prepare_v3(st->db, p, -1, 0, &s, &tail);
            if (rc != SQLITE_OK) {
                r = st_sqlfail(st, rc, "sql", err);
                break;
            }
            if (!s) { /* only a comment */
                p = tail;
                continue;
            }
        }
        bool single = *sql_skip(tail) == '\0';
        bool cacheable = !slot && single && strlen(p) < SQL_CACHE_TEXT_MAX;
        int want = sqlite3_bind_parameter_count(s);
        if (sql_is_vacuum(sqlite3_sql(s))) {
            seterr(err, "VACUUM is not allowed in object SQL");
            r = -EPERM;
        } else if (nparams && !single) {
            seterr(err, "SQL with parameters must be a single statement");
            r = -EINVAL;
        } else if ((size_t)want != nparams) {
            seterr(err, "statement has %d parameters, %zu given", want, nparams);
            r = -EINVAL;
        } else {
            for (size_t i = 0; i < nparams && r == 0; i++)
                r = bind_param(st, s, (int)i + 1, &params[i], err);
            if (r == 0)
                r = sql_run(st, s, cb, ud, &rows, err);
        }
        if (slot || cacheable) {
            sqlite3_reset(s);
            sqlite3_clear_bindings(s);
            if (cacheable && r >= 0)
                cache_put(st, p, s);
            else if (cacheable)
                sqlite3_finalize(s);
        } else {
            sqlite3_finalize(s);
        }
        if (r != 0)
            break;
        p = tail;
    }

    st->user_sql = false;
    st->sql_changes = sqlite3_total_changes64(st->db) - changes0;
    if (st->sql_ms)
        sqlite3_progress_handler(st->db, 0, NULL, NULL);
    if (r < 0)
        return r;
    return rows;
}

int64_t sh_store_sql_changes(const sh_store *st)
{
    return st->sql_changes;
}
