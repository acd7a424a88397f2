/* sh_store: one object's durable storage — a SQLite database per object.
 *
 * Layout. The object key "<class>/<name>" maps to
 *
 *   <data-dir>/<class>/<hh>/<escaped-name>-<hash>.db        the database
 *   <data-dir>/<class>/<hh>/<escaped-name>-<hash>.db.lock   the owner lock
 *   <data-dir>/<class>/<hh>/<escaped-name>-<hash>.db-wal    SQLite's WAL
 *
 * where hash = rd_hash64(key) as 16 lower-case hex digits, hh its first two,
 * and escaped-name keeps [A-Za-z0-9._-] (except a leading '.') and writes
 * every other byte as %XX, cut at a character boundary to at most
 * SH_STORE_ESCAPED_MAX bytes. The hash makes truncated names unique; the
 * database also records its key and open refuses a file holding another key,
 * so even a 64-bit collision is detected, never shared. Lock files are left
 * in place after close (unlinking them would race with a new owner).
 *
 * Ownership. Exactly one sh_store may be open per object across all
 * processes on the host: open takes flock(LOCK_EX|LOCK_NB) on the .lock
 * file and holds it until sh_store_close(). flock belongs to the open file
 * description, so a second open in the same process fails too, and a fork()
 * without exec shares the parent's lock (all descriptors are O_CLOEXEC).
 * Do not fork while a store is open unless the child only calls _exit/exec.
 * SQLite runs in locking_mode=EXCLUSIVE (no -shm file, no per-transaction
 * file locks), so while the store is open no other program can read the
 * database either; operators inspect a copy, or the file once the object
 * is closed (sqlite3 <file>).
 *
 * Threads. Single-threaded, like the shard: a store and everything it hands
 * out belong to the thread that opened it. Calls are not reentrant: from a
 * list or SQL row callback, every call on the same store fails with -EBUSY.
 *
 * Event transactions (the output gate of DESIGN.md §6):
 *
 *   sh_store_begin(st)            the event starts; nothing runs yet
 *   get/put/del/list/sql/alarm    the first one runs BEGIN (lazily, so an
 *                                 event that never touches storage costs
 *                                 nothing); all see and make one transaction
 *   sh_store_commit(st)           COMMIT; release the event's output only
 *                                 after this returns 0
 *   sh_store_rollback(st)         or throw the event's writes away
 *
 * Outside begin/commit every call runs in its own implicit transaction
 * (autocommit), e.g. reading the alarm at start-up.
 *
 * If SQLite rolls the whole transaction back by itself (disk full, I/O error,
 * an interrupted write), the event is "failed": every later call in it
 * returns the same error without touching the database, and commit returns
 * it too, so writes made after the failure can never be committed without
 * the ones before it.
 *
 * Durability. normal (synchronous=NORMAL in WAL mode): a committed event
 * survives a crash of the process (kill -9), not a power loss; COMMIT does
 * no fsync. full (synchronous=FULL): COMMIT fsyncs the WAL, so a committed
 * event survives power loss. Group commit: begin/commit may bracket several
 * events. Under full durability the shard should call sh_store_begin()
 * before the first event it runs for an object in a loop turn, run every
 * ready event of that object (holding their output), and sh_store_commit()
 * once after the last one (or after a cap of events or bytes), then release
 * all held output: one fsync per object per loop turn instead of one per
 * event. If that commit fails, the output of every event in the batch is
 * dropped; treat it like a failed single event (the object's state in memory
 * no longer matches its storage: evict it).
 *
 * Errors. Every fallible call returns 0 (or a count) on success and a
 * negative errno on failure; `err` (RD_ERR_LEN bytes, may be NULL) then gets
 * a one-line reason, with SQLite's message where SQLite failed. ret_*
 * parameters are untouched on failure. SQLite result codes map to: busy or
 * locked -EBUSY, full -ENOSPC, I/O -EIO, corrupt or not a database -EBADMSG,
 * no memory -ENOMEM, too big -E2BIG, read-only -EROFS, cannot open -EACCES,
 * unique/primary-key constraint -EEXIST, refused by the SQL rules -EPERM,
 * over the SQL time limit -ETIMEDOUT, anything else (syntax...) -EINVAL.
 */
#ifndef SH_STORE_H
#define SH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rd_buf.h"

#define SH_STORE_CLASS_MAX 32          /* class: [a-z0-9_-]{1,32} */
#define SH_STORE_NAME_MAX 256          /* name: 1..256 bytes of UTF-8 */
#define SH_STORE_ESCAPED_MAX 160       /* escaped name in the file name */
#define SH_STORE_KEY_MAX 2048          /* KV key: 1..2048 bytes */
#define SH_STORE_VALUE_MAX (128 * 1024) /* KV value: 0..128 KiB */
#define SH_STORE_LIST_MAX 1000         /* rows per sh_store_list call */
#define SH_STORE_SQL_COLUMNS_MAX 100   /* columns, bound parameters */
#define SH_STORE_SQL_LENGTH_MAX 100000 /* bytes of SQL text */
#define SH_STORE_SQL_VALUE_MAX 2000000 /* string, blob or row in user SQL */
#define SH_STORE_SQL_TIME_MS 1000      /* default time limit of one SQL call */
#define SH_STORE_CACHE_KIB 512         /* SQLite page cache ceiling per object */

typedef struct sh_store sh_store;

typedef enum sh_store_durability {
    SH_STORE_NORMAL = 0, /* commit survives a process crash */
    SH_STORE_FULL = 1,   /* commit survives a power loss: fsync per commit */
} sh_store_durability;

/* --- keys and files ------------------------------------------------------ */

/* Check an object key: "<class>/<name>", class [a-z0-9_-]{1,32}, name 1..256
 * bytes of valid UTF-8 without control characters (< 0x20, 0x7f) or '/'.
 * "." and ".." are accepted (the file mapping makes them harmless; the
 * gateway refuses them earlier). 0 or -EINVAL with a reason in err. */
int sh_store_key_check(const char *key, size_t klen, char err[RD_ERR_LEN]);

/* Write the database path of `key` (see the layout above) into out[cap],
 * NUL-terminated. Trailing '/' of data_dir are dropped. Pure: no I/O.
 * Returns the path's length, -EINVAL for a bad key or empty data_dir, or
 * -ENAMETOOLONG when it does not fit in cap (out is then unspecified).
 * A path fits in strlen(data_dir) + 64 + SH_STORE_ESCAPED_MAX bytes. */
int sh_store_path(const char *data_dir, const char *key, size_t klen, char *out, size_t cap);

/* --- open and close -------------------------------------------------------- */

/* Open (creating directories and the database as needed) the store of
 * `key` under data_dir and become its owner. On success *ret_store is a new
 * store the caller owns and frees with sh_store_close(). Errors:
 *   -EINVAL       bad key (err says why)
 *   -EWOULDBLOCK  another process, or another open in this process, owns it:
 *                 "object chat/x is owned by another process"
 *   -EEXIST       the file belongs to another key (a hash collision)
 *   -EPROTONOSUPPORT  the database was made by a newer roomd
 *   others        from mkdir/open/SQLite, with the path or SQLite's message.
 * Nothing is left open on failure (directories and the lock file may have
 * been created). data_dir and key are copied. */
int sh_store_open(const char *data_dir, const char *key, size_t klen, sh_store_durability durability,
                  sh_store **ret_store, char err[RD_ERR_LEN]);

/* Roll back an open transaction, close the database and release the lock.
 * NULL is a no-op. Not from inside a callback of this store. */
void sh_store_close(sh_store *st);

/* The object key and the database path (NUL-terminated; valid until close). */
const char *sh_store_key(const sh_store *st);
const char *sh_store_file(const sh_store *st);

/* Bytes of memory the store holds: SQLite's page cache, schema and prepared
 * statements for this connection, plus our own structure. An estimate. */
size_t sh_store_memory(const sh_store *st);

/* Limit the wall time of one sh_store_exec_sql() call (ms, 0: no limit;
 * default SH_STORE_SQL_TIME_MS). A runaway query would stall the shard. */
void sh_store_set_sql_time_limit(sh_store *st, uint32_t ms);

/* --- event transactions --------------------------------------------------- */

/* Start an event (or a batch of events, see group commit above). No SQL
 * runs until the first storage call. 0, -EALREADY if one is already open,
 * -EBUSY from a callback. */
int sh_store_begin(sh_store *st);

/* End the event, making its writes durable as chosen at open. 0 (also when
 * the event never touched storage or no event is open), or a negative errno:
 * the writes are then rolled back and the event's output must be dropped.
 * The event is over either way. */
int sh_store_commit(sh_store *st, char err[RD_ERR_LEN]);

/* End the event, throwing its writes away. No-op when none is open. */
void sh_store_rollback(sh_store *st);

/* True between a storage call that ran BEGIN and commit/rollback: the
 * event has something for commit to do. */
bool sh_store_pending(const sh_store *st);

/* --- key-value API -------------------------------------------------------- */

/* Keys are byte strings of 1..SH_STORE_KEY_MAX bytes, ordered byte-wise
 * (memcmp, a shorter prefix first); values 0..SH_STORE_VALUE_MAX bytes. Too
 * long: -E2BIG; empty key: -EINVAL. */

/* Append the value of `key` to *ret_value (the caller owns the buffer and
 * resets it if it wants only this value). 0, -ENOENT when absent. */
int sh_store_get(sh_store *st, const void *key, size_t klen, rd_buf *ret_value,
                 char err[RD_ERR_LEN]);

/* Insert or replace. Both buffers are only read during the call. */
int sh_store_put(sh_store *st, const void *key, size_t klen, const void *value, size_t vlen,
                 char err[RD_ERR_LEN]);

/* Delete. 0, or -ENOENT when the key was absent. */
int sh_store_del(sh_store *st, const void *key, size_t klen, char err[RD_ERR_LEN]);

/* Which keys sh_store_list() visits: those in [start, end) that begin with
 * prefix, each bound optional (NULL pointer: unbounded; a zero-length prefix
 * is no prefix). Bounds may be up to SH_STORE_KEY_MAX + 1 bytes, so the next
 * page of a forward listing starts at last_key + "\0"; the next page of a
 * reverse one ends at last_key. limit: 1..SH_STORE_LIST_MAX, 0 means
 * SH_STORE_LIST_MAX, more is -E2BIG. Zero-initialise and fill what you need. */
typedef struct sh_store_range {
    const void *prefix;
    size_t prefix_len;
    const void *start; /* inclusive */
    size_t start_len;
    const void *end;   /* exclusive */
    size_t end_len;
    uint32_t limit;
    bool reverse;      /* descending key order */
} sh_store_range;

/* Called once per pair, in order. key and value are borrowed, valid only
 * during the call (value is never NULL, even when vlen is 0). Return 0 to
 * go on, > 0 to stop (the list returns the count so far, this pair
 * included), < 0 to abort (the list returns that value). */
typedef int (*sh_store_list_cb)(void *ud, const uint8_t *key, size_t klen, const uint8_t *value,
                                size_t vlen);

/* Visit the pairs of `range` (NULL: everything, up to the limit). Returns
 * the number of pairs visited, or a negative errno. */
int sh_store_list(sh_store *st, const sh_store_range *range, sh_store_list_cb cb, void *ud,
                  char err[RD_ERR_LEN]);

/* --- alarm ---------------------------------------------------------------- */

/* The object's alarm time (ms since the epoch), part of the event's
 * transaction like the KV calls. get: *ret_ms = 0 when none is set.
 * set: ms = 0 clears it. */
int sh_store_alarm_get(sh_store *st, uint64_t *ret_ms, char err[RD_ERR_LEN]);
int sh_store_alarm_set(sh_store *st, uint64_t ms, char err[RD_ERR_LEN]);

/* --- SQL ------------------------------------------------------------------ */

typedef enum sh_store_sql_type {
    SH_STORE_SQL_NULL = 0,
    SH_STORE_SQL_INT,
    SH_STORE_SQL_FLOAT,
    SH_STORE_SQL_TEXT,
    SH_STORE_SQL_BLOB,
} sh_store_sql_type;

/* A parameter or a result column. For TEXT and BLOB, p/n hold the bytes
 * (TEXT results are also NUL-terminated at p[n]); name is the column name
 * in results and ignored in parameters. */
typedef struct sh_store_sql_value {
    sh_store_sql_type type;
    int64_t i;
    double f;
    const void *p;
    size_t n;
    const char *name;
} sh_store_sql_value;

/* One result row: cols[0..ncols), borrowed, valid only during the call.
 * Return as for sh_store_list_cb. */
typedef int (*sh_store_row_cb)(void *ud, const sh_store_sql_value *cols, size_t ncols);

/* Run the SQL text `sql` (NUL-terminated) inside the event's transaction.
 * With nparams > 0 it must be one statement, its ?1..?N bound to params[]
 * in order; without parameters it may be several statements separated by
 * ';', run in order (a schema migration), and an error stops at the
 * failing one (the earlier ones stay applied in the transaction). cb (may
 * be NULL) gets each result row. Returns the number of rows handed to cb
 * (or produced, when cb is NULL), or a negative errno.
 *
 * Refused with -EPERM and a clear err: ATTACH, DETACH, PRAGMA, VACUUM,
 * BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE (the event is the transaction),
 * writing, altering, dropping or indexing the reserved tables `kv` and
 * `meta` (reading `kv` is allowed; `meta` not at all), load_extension.
 * Foreign keys are enforced. Limits: SH_STORE_SQL_LENGTH_MAX of SQL,
 * SH_STORE_SQL_COLUMNS_MAX columns and parameters, SH_STORE_SQL_VALUE_MAX
 * per string or blob, and the time limit (-ETIMEDOUT). Frequently used
 * single statements are kept prepared (keyed by their exact text). */
int sh_store_exec_sql(sh_store *st, const char *sql, const sh_store_sql_value *params,
                      size_t nparams, sh_store_row_cb cb, void *ud, char err[RD_ERR_LEN]);

/* Rows inserted, updated or deleted by the last sh_store_exec_sql() call,
 * including those of triggers and foreign-key actions (0 after a failure
 * that changed nothing). */
int64_t sh_store_sql_changes(const sh_store *st);

#endif
