/*
 * The SQLite backend of the cloud store: one database file (created mode
 * 0600) in WAL mode with synchronous=FULL, so that a commit that returned
 * survives kill -9 and power loss; foreign keys on; a busy timeout so that
 * several handles (one per thread or process) take turns at writing. The
 * schema is built by an ordered list of migrations, each applied in one
 * transaction and recorded in the meta table; a file at a newer schema
 * than this build knows is refused. Every statement is prepared once per
 * handle and kept.
 *
 * A mutation that takes more than one statement (a device and its change
 * log row, an audit entry and the chain head) runs in its own IMMEDIATE
 * transaction, or inside the caller's. It never leaves half of itself
 * behind, in particular no gap in the change log: see w_enter().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "otpca/common/log.h"
#include "store_internal.h"

#define BUSY_TIMEOUT_MS 10000
#define CACHE_KIB 32768 /* page cache per handle, at most (grows as used) */
#define WAL_LIMIT (64 * 1024 * 1024) /* WAL file size kept after a checkpoint */

/* ---------------------------------------------------------------- schema */

/* Version 1. A device row carries the sequence number of its latest change
 * as its rowid, so "changed after N, each once, in its latest state" is a
 * range scan of the table itself, and an insert or an update always writes
 * at the table's end whatever order serials come in (an import touches few
 * pages per chunk); the serial is a unique index. The change log keeps one
 * row per mutation (seq, serial, new state). */
static const char SCHEMA_V1[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID;"
    "CREATE TABLE batches ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  product_pub BLOB NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE managers ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  curve_pub BLOB NOT NULL UNIQUE CHECK (length(curve_pub) = 32),"
    "  ca_pub BLOB NOT NULL,"
    "  ca_cert BLOB NOT NULL,"
    "  revoked INTEGER NOT NULL CHECK (revoked IN (0, 1))"
    ");"
    "CREATE TABLE operators ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  seed_env BLOB NOT NULL,"
    "  digits INTEGER NOT NULL,"
    "  period INTEGER NOT NULL,"
    "  algorithm INTEGER NOT NULL,"
    "  last_step INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE devices ("
    "  seq INTEGER PRIMARY KEY,"
    "  serial TEXT NOT NULL UNIQUE,"
    "  mac BLOB NOT NULL,"
    "  pubkey BLOB,"
    "  batch TEXT REFERENCES batches(id),"
    "  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 6),"
    "  seed_env BLOB NOT NULL,"
    "  digits INTEGER NOT NULL,"
    "  period INTEGER NOT NULL,"
    "  algorithm INTEGER NOT NULL,"
    "  last_step INTEGER NOT NULL,"
    "  failures INTEGER NOT NULL,"
    "  cert_hash BLOB,"
    "  manager TEXT REFERENCES managers(id),"
    "  flagged INTEGER NOT NULL"
    ");"
    "CREATE TABLE changes ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  serial TEXT NOT NULL,"
    "  state INTEGER NOT NULL"
    ");"
    "CREATE TABLE leases ("
    "  window_id BLOB PRIMARY KEY NOT NULL CHECK (length(window_id) = 16),"
    "  manager TEXT NOT NULL REFERENCES managers(id),"
    "  operator_id TEXT NOT NULL REFERENCES operators(id),"
    "  not_before INTEGER NOT NULL,"
    "  not_after INTEGER NOT NULL,"
    "  max_enroll INTEGER NOT NULL,"
    "  scope TEXT NOT NULL,"
    "  offline INTEGER NOT NULL"
    ");"
    "CREATE TABLE records ("
    "  id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),"
    "  window_id BLOB NOT NULL,"
    "  manager TEXT NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  serial TEXT NOT NULL,"
    "  time INTEGER NOT NULL,"
    "  cert BLOB,"
    "  step INTEGER NOT NULL,"
    "  reason INTEGER NOT NULL"
    ");"
    "CREATE INDEX records_serial ON records(serial);"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY,"
    "  prev BLOB NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  time INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  event INTEGER NOT NULL,"
    "  subject TEXT,"
    "  detail TEXT"
    ");";

/* Version 2: a lease remembers the nonce of the WindowOpen that made it
 * (a retried request gets the same lease back) and when it was closed; a
 * record remembers whether the cloud flagged it (a retried upload hears
 * the same answer); meta holds named blobs (the wrapped seed key). */
static const char SCHEMA_V2[] =
    "ALTER TABLE leases ADD COLUMN open_nonce BLOB CHECK (open_nonce IS NULL OR length(open_nonce) = 16);"
    "CREATE UNIQUE INDEX leases_open_nonce ON leases(open_nonce) WHERE open_nonce IS NOT NULL;"
    "ALTER TABLE leases ADD COLUMN closed_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE records ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0 CHECK (flagged IN (0, 1));";

/* Migration i takes the schema from version i to i + 1. Append only. */
static const char *const MIGRATIONS[] = {SCHEMA_V1, SCHEMA_V2};
#define SCHEMA_VERSION ((unsigned)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* ------------------------------------------------------------ statements */

#define DEV_COLS                                                                                             \
    "serial, mac, pubkey, batch, state, seed_env, digits, period, algorithm, last_step, failures, cert_hash, " \
    "manager, flagged, seq"
#define MGR_COLS "id, curve_pub, ca_pub, ca_cert, revoked"
#define OP_COLS "id, seed_env, digits, period, algorithm, last_step"
#define LEASE_COLS \
    "window_id, manager, operator_id, not_before, not_after, max_enroll, scope, offline, open_nonce, closed_at"
#define REC_COLS "id, window_id, manager, kind, serial, time, cert, step, reason, flagged"
#define AUDIT_COLS "seq, prev, hash, time, actor, event, subject, detail"

enum st_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_CHANGE_ADD,
    ST_DEVICE_ADD,
    ST_DEVICE_UPDATE,
    ST_NEXT_SEQ,
    ST_DEVICE_GET,
    ST_DEVICE_SCAN,
    ST_CHANGES,
    ST_SEQ,
    ST_COUNTS,
    ST_BATCH_ADD,
    ST_BATCH_GET,
    ST_MANAGER_ADD,
    ST_MANAGER_GET,
    ST_MANAGER_BY_CURVE,
    ST_MANAGER_REVOKE,
    ST_MANAGER_SCAN,
    ST_OPERATOR_ADD,
    ST_OPERATOR_GET,
    ST_OPERATOR_STEP,
    ST_LEASE_ADD,
    ST_LEASE_GET,
    ST_LEASE_BY_NONCE,
    ST_LEASE_CLOSE,
    ST_META_GET,
    ST_META_ADD,
    ST_RECORD_ADD,
    ST_RECORD_GET,
    ST_RECORD_COUNT,
    ST_AUDIT_TAIL,
    ST_AUDIT_ADD,
    ST_AUDIT_HEAD_SET,
    ST_AUDIT_HEAD_GET,
    ST_AUDIT_SCAN,
    ST_COUNT
};

static const char *const SQL[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_CHANGE_ADD] = "INSERT INTO changes(seq, serial, state) VALUES (?1, ?2, ?3)",
    [ST_DEVICE_ADD] = "INSERT INTO devices(" DEV_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                      "?12, ?13, ?14, ?15)",
    [ST_DEVICE_UPDATE] = "UPDATE devices SET mac = ?2, pubkey = ?3, batch = ?4, state = ?5, seed_env = ?6, "
                         "digits = ?7, period = ?8, algorithm = ?9, last_step = ?10, failures = ?11, "
                         "cert_hash = ?12, manager = ?13, flagged = ?14, seq = ?15 WHERE serial = ?1",
    [ST_NEXT_SEQ] = "SELECT ifnull((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0) + 1",
    [ST_DEVICE_GET] = "SELECT " DEV_COLS " FROM devices WHERE serial = ?1",
    [ST_DEVICE_SCAN] = "SELECT " DEV_COLS " FROM devices WHERE serial > ?1 ORDER BY serial LIMIT ?2",
    [ST_CHANGES] = "SELECT " DEV_COLS " FROM devices WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    /* Two subqueries: SQLite answers a lone MIN or MAX from the index. */
    [ST_SEQ] = "SELECT (SELECT max(seq) FROM changes), (SELECT min(seq) FROM changes)",
    [ST_COUNTS] = "SELECT state, count(*) FROM devices GROUP BY state",
    [ST_BATCH_ADD] = "INSERT INTO batches(id, product_pub) VALUES (?1, ?2)",
    [ST_BATCH_GET] = "SELECT id, product_pub FROM batches WHERE id = ?1",
    [ST_MANAGER_ADD] = "INSERT INTO managers(" MGR_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_MANAGER_GET] = "SELECT " MGR_COLS " FROM managers WHERE id = ?1",
    [ST_MANAGER_BY_CURVE] = "SELECT " MGR_COLS " FROM managers WHERE curve_pub = ?1",
    [ST_MANAGER_REVOKE] = "UPDATE managers SET revoked = 1 WHERE id = ?1",
    [ST_MANAGER_SCAN] = "SELECT " MGR_COLS " FROM managers ORDER BY id",
    [ST_OPERATOR_ADD] = "INSERT INTO operators(" OP_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_OPERATOR_GET] = "SELECT " OP_COLS " FROM operators WHERE id = ?1",
    [ST_OPERATOR_STEP] = "UPDATE operators SET last_step = ?2 WHERE id = ?1 AND last_step < ?2",
    [ST_LEASE_ADD] = "INSERT INTO leases(" LEASE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_LEASE_GET] = "SELECT " LEASE_COLS " FROM leases WHERE window_id = ?1",
    [ST_LEASE_BY_NONCE] = "SELECT " LEASE_COLS " FROM leases WHERE open_nonce = ?1",
    [ST_LEASE_CLOSE] = "UPDATE leases SET closed_at = ?2 WHERE window_id = ?1 AND closed_at = 0",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_ADD] = "INSERT INTO meta(key, value) VALUES (?1, ?2)",
    [ST_RECORD_ADD] = "INSERT INTO records(" REC_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
                      "ON CONFLICT(id) DO NOTHING",
    [ST_RECORD_GET] = "SELECT " REC_COLS " FROM records WHERE id = ?1",
    [ST_RECORD_COUNT] = "SELECT count(*) FROM records",
    [ST_AUDIT_TAIL] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [ST_AUDIT_ADD] = "INSERT INTO audit(" AUDIT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_AUDIT_HEAD_SET] = "INSERT INTO meta(key, value) VALUES ('audit_head', ?1) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_AUDIT_HEAD_GET] = "SELECT value FROM meta WHERE key = 'audit_head'",
    [ST_AUDIT_SCAN] = "SELECT " AUDIT_COLS " FROM audit ORDER BY seq",
};

struct otpca_store_impl {
    sqlite3 *db;
    char *path;
    unsigned version;
    int in_tx;   /* the caller's transaction (otpca_store_begin) is open */
    int spoiled; /* ... and a call failed half-way in it: it can only roll back */
    uint64_t next_seq; /* the change log's next number in the caller's transaction; 0: unknown */
    sqlite3_stmt *st[ST_COUNT];
};

/* --------------------------------------------------------------- helpers */

static otpca_err sq_err(otpca_store_impl *s, int rc, const char *what)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        log_debug("store: %s: already exists", what);
        return OTPCA_ERR_EXISTS;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        log_debug("store: %s: refers to an unknown batch, manager or operator", what);
        return OTPCA_ERR_NOT_FOUND;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        log_debug("store: %s: %s", what, sqlite3_errmsg(s->db));
        return OTPCA_ERR_INVALID_ARG;
    case SQLITE_NOMEM:
        return OTPCA_ERR_NOMEM;
    case SQLITE_NOTADB:
        log_error("store: %s: %s is not an SQLite database", what, s->path);
        return OTPCA_ERR_CONFIG;
    default:
        log_error("store: %s: %s (%s)", what, sqlite3_errmsg(s->db), sqlite3_errstr(rc));
        return OTPCA_ERR_IO;
    }
}

/* The handle's prepared statement id, prepared on first use. A statement
 * still stepping means a callback re-entered the call that runs it. */
static otpca_err st_get(otpca_store_impl *s, enum st_id id, sqlite3_stmt **out)
{
    sqlite3_stmt *st = s->st[id];
    if (!st) {
        int rc = sqlite3_prepare_v3(s->db, SQL[id], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK)
            return sq_err(s, rc, "prepare");
        s->st[id] = st;
    } else if (sqlite3_stmt_busy(st)) {
        log_error("store: a scan callback called the same scan again");
        return OTPCA_ERR_STATE;
    }
    *out = st;
    return OTPCA_ERR_OK;
}

static void st_done(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* Runs a statement that takes no parameters and returns no rows. */
static otpca_err st_exec(otpca_store_impl *s, enum st_id id)
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = st_get(s, id, &st);
    if (ret)
        return ret;
    int rc = sqlite3_step(st);
    ret = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? OTPCA_ERR_OK : sq_err(s, rc, SQL[id]);
    st_done(st);
    return ret;
}

/* Runs a bound statement that returns no rows. */
static otpca_err step_done(otpca_store_impl *s, sqlite3_stmt *st, int rc, const char *what)
{
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    otpca_err ret = rc == SQLITE_DONE ? OTPCA_ERR_OK : sq_err(s, rc, what);
    st_done(st);
    return ret;
}

/* Binders: the first failure sticks in *rc. Empty text and zero-length
 * optional blobs are stored as NULL (foreign keys, "none"). */
static void b_int(sqlite3_stmt *st, int i, uint64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static void b_text(sqlite3_stmt *st, int i, const char *v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = v[0] ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static void b_blob(sqlite3_stmt *st, int i, const void *p, size_t n, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_blob(st, i, n ? p : "", (int)n, SQLITE_STATIC);
}

static void b_blob_opt(sqlite3_stmt *st, int i, const void *p, size_t n, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = (p && n) ? sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* Column readers: -1 when the stored value does not fit its field (a
 * database written by something else, or tampered with). */
static int c_blob(sqlite3_stmt *st, int i, void *dst, size_t cap, size_t *len)
{
    const void *p = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    if (n < 0 || (size_t)n > cap)
        return -1;
    if (n)
        memcpy(dst, p, (size_t)n);
    if (len)
        *len = (size_t)n;
    return 0;
}

static int c_blob_exact(sqlite3_stmt *st, int i, void *dst, size_t n)
{
    size_t len = 0;
    return (c_blob(st, i, dst, n, &len) || len != n) ? -1 : 0;
}

static int c_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *p = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    if (!p) {
        dst[0] = '\0';
        return 0;
    }
    if (n < 0 || (size_t)n >= cap)
        return -1;
    memcpy(dst, p, (size_t)n);
    dst[n] = '\0';
    return 0;
}

static uint64_t c_u64(sqlite3_stmt *st, int i)
{
    return (uint64_t)sqlite3_column_int64(st, i);
}

static otpca_err unreadable(const char *what)
{
    log_error("store: a stored %s does not fit its fields", what);
    return OTPCA_ERR_INTERNAL;
}

/* ----------------------------------------------------------- write scope */

/*
 * Outside the caller's transaction, a call runs in its own IMMEDIATE one
 * (taking the write lock first: a read that later wants to write could
 * find its snapshot stale and fail at once). Inside the caller's, no
 * savepoint is taken (they cost a quarter of an import's time); instead
 * every call does first the one write that can fail on its input (a
 * duplicate, an unknown reference, an unknown row), which SQLite undoes on
 * its own, and what follows can fail only from below (I/O, memory, a lock).
 * Such a late failure spoils the caller's transaction: further writes are
 * refused and its commit rolls back.
 */
static otpca_err spoiled(void)
{
    log_error("store: an earlier call failed half-way through this transaction; roll it back");
    return OTPCA_ERR_STATE;
}

/* For a call that writes with one statement. */
static otpca_err w_ok(otpca_store_impl *s)
{
    if (s->in_tx && (s->spoiled || sqlite3_get_autocommit(s->db)))
        return spoiled();
    return OTPCA_ERR_OK;
}

/* A write statement, once the transaction is known to be usable. */
static otpca_err w_stmt(otpca_store_impl *s, enum st_id which, sqlite3_stmt **st)
{
    otpca_err ret = w_ok(s);
    return ret ? ret : st_get(s, which, st);
}

static otpca_err w_enter(otpca_store_impl *s, int *own)
{
    *own = !s->in_tx;
    return *own ? st_exec(s, ST_BEGIN) : w_ok(s);
}

/* Ends the scope: keeps its work if ret is OK. partial: the call had
 * written something before it failed. */
static otpca_err w_leave(otpca_store_impl *s, int own, otpca_err ret, int partial)
{
    if (!own) {
        if (ret && partial)
            s->spoiled = 1;
        return ret;
    }
    if (!ret)
        ret = st_exec(s, ST_COMMIT);
    if (ret && !sqlite3_get_autocommit(s->db))
        (void)st_exec(s, ST_ROLLBACK);
    return ret;
}

/* ------------------------------------------------------ open and migrate */

/* Creates the file 0600 (SQLite would use 0644 & ~umask; its -wal and -shm
 * files copy the database's mode) and makes the new name durable. */
/* fsync of a new file (fd, closed here) and of its directory entry. */
static otpca_err sync_new_file(int fd, const char *path)
{
    otpca_err ret = OTPCA_ERR_OK;
    char *dir = NULL;
    int dfd = -1;
    if (fsync(fd) != 0) {
        log_error("store: cannot sync %s: %s", path, strerror(errno));
        ret = OTPCA_ERR_IO;
        goto out;
    }
    dir = strdup(path);
    if (!dir) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = '\0';
    dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        log_error("store: cannot sync the directory of %s: %s", path, strerror(errno));
        ret = OTPCA_ERR_IO;
        goto out;
    }
    ret = OTPCA_ERR_OK;
out:
    if (dfd >= 0)
        close(dfd);
    free(dir);
    close(fd);
    return ret;
}

static otpca_err create_file(const char *path)
{
    struct stat sb;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        return sync_new_file(fd, path);
    if (errno != EEXIST) {
        log_error("store: cannot create %s: %s", path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    if (stat(path, &sb) != 0) {
        log_error("store: cannot open %s: %s", path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    if (!S_ISREG(sb.st_mode)) {
        log_error("store: %s is not a regular file", path);
        return OTPCA_ERR_CONFIG;
    }
    if (sb.st_mode & 077)
        log_warn("store: %s is accessible to group or others (mode %03o); chmod 600 it", path,
                 (unsigned)(sb.st_mode & 0777));
    return OTPCA_ERR_OK;
}

/* One-off query for one integer (NULL reads as absent). */
static otpca_err query_int(otpca_store_impl *s, const char *sql, int64_t *v, int *found)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    otpca_err ret;
    *found = 0;
    if (rc != SQLITE_OK) {
        ret = sq_err(s, rc, "read the schema");
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
        *v = sqlite3_column_int64(st, 0);
        *found = 1;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = sq_err(s, rc, "read the schema");
        goto out;
    }
    ret = OTPCA_ERR_OK;
out:
    sqlite3_finalize(st);
    return ret;
}

/* The schema version recorded in the file: 0 for an empty database. */
static otpca_err read_version(otpca_store_impl *s, unsigned *version)
{
    int64_t v = 0, tables = 0;
    int found = 0;
    otpca_err ret = query_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'", &v,
                              &found);
    if (ret)
        return ret;
    if (v == 0) {
        if ((ret = query_int(s, "SELECT count(*) FROM sqlite_master", &tables, &found)))
            return ret;
        if (tables != 0) {
            log_error("store: %s is an SQLite database but not an otpca store", s->path);
            return OTPCA_ERR_CONFIG;
        }
        *version = 0;
        return OTPCA_ERR_OK;
    }
    if ((ret = query_int(s, "SELECT value FROM meta WHERE key = 'schema_version'", &v, &found)))
        return ret;
    if (!found || v < 1 || v > UINT_MAX) {
        log_error("store: %s has no valid schema version", s->path);
        return OTPCA_ERR_CONFIG;
    }
    *version = (unsigned)v;
    return OTPCA_ERR_OK;
}

static otpca_err too_new(otpca_store_impl *s, unsigned v)
{
    log_error("store: %s is at schema version %u; this build knows up to %u (upgrade otpca)", s->path, v,
              SCHEMA_VERSION);
    return OTPCA_ERR_UNSUPPORTED;
}

static otpca_err exec_sql(otpca_store_impl *s, const char *sql, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return OTPCA_ERR_OK;
    log_error("store: %s: %s", what, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return (rc & 0xff) == SQLITE_NOTADB ? OTPCA_ERR_CONFIG : OTPCA_ERR_IO;
}

/* One step towards SCHEMA_VERSION under the write lock: the version is
 * read again there, since another process may have migrated meanwhile. */
static otpca_err migrate_one(otpca_store_impl *s, unsigned *v)
{
    char sql[96];
    unsigned from = 0;
    otpca_err ret = exec_sql(s, "BEGIN IMMEDIATE", "start a migration");
    if (ret)
        return ret;
    if ((ret = read_version(s, &from)))
        goto out;
    if (from > SCHEMA_VERSION) {
        ret = too_new(s, from);
        goto out;
    }
    if (from < SCHEMA_VERSION) {
        if ((ret = exec_sql(s, MIGRATIONS[from], "migrate the schema")))
            goto out;
        snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', %u)",
                 from + 1);
        if ((ret = exec_sql(s, sql, "record the schema version")))
            goto out;
    }
    if ((ret = exec_sql(s, "COMMIT", "commit a migration")))
        goto out;
    *v = from < SCHEMA_VERSION ? from + 1 : from;
    if (from < SCHEMA_VERSION)
        log_info("store: %s migrated to schema version %u", s->path, *v);
    ret = OTPCA_ERR_OK;
out:
    if (ret && !sqlite3_get_autocommit(s->db))
        (void)exec_sql(s, "ROLLBACK", "roll back a migration");
    return ret;
}

/* Brings the file to SCHEMA_VERSION, one migration per transaction. */
static otpca_err migrate(otpca_store_impl *s)
{
    unsigned v = 0;
    otpca_err ret = read_version(s, &v);
    if (ret)
        return ret;
    if (v > SCHEMA_VERSION)
        return too_new(s, v);
    while (v < SCHEMA_VERSION)
        if ((ret = migrate_one(s, &v)))
            return ret;
    s->version = v;
    return OTPCA_ERR_OK;
}

static void sq_destroy(otpca_store_impl **p)
{
    if (!p || !*p)
        return;
    otpca_store_impl *s = *p;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        log_error("store: closing %s: %s", s->path, sqlite3_errmsg(s->db));
    free(s->path);
    free(s);
    *p = NULL;
}

static otpca_err sq_open(const char *path, otpca_store_impl **out)
{
    otpca_store_impl *s = NULL;
    sqlite3_stmt *st = NULL;
    int memory = strcmp(path, ":memory:") == 0;
    otpca_err ret;
    int rc;

    s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    if (!memory && (ret = create_file(path)))
        goto out;
    rc = sqlite3_open_v2(path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                         NULL);
    if (rc != SQLITE_OK) {
        log_error("store: cannot open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        ret = OTPCA_ERR_IO;
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    /* journal_mode answers with the mode it is in: insist on WAL. */
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = sq_err(s, rc, "set WAL mode");
        goto out;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (!mode || strcmp(mode, memory ? "memory" : "wal") != 0) {
        log_error("store: %s: cannot switch to WAL mode (%s)", path, mode ? mode : "?");
        ret = OTPCA_ERR_IO;
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -%d; "
             "PRAGMA journal_size_limit = %d;",
             CACHE_KIB, WAL_LIMIT);
    if ((ret = exec_sql(s, pragmas, "configure the connection")))
        goto out;
    if ((ret = migrate(s)))
        goto out;
    *out = s;
    s = NULL;
    ret = OTPCA_ERR_OK;
out:
    sqlite3_finalize(st);
    sq_destroy(&s);
    return ret;
}

static unsigned sq_schema_version(otpca_store_impl *s)
{
    return s->version;
}

/* ---------------------------------------------------------- transactions */

static otpca_err sq_begin(otpca_store_impl *s)
{
    if (s->in_tx) {
        log_error("store: a transaction is already open on this handle");
        return OTPCA_ERR_STATE;
    }
    otpca_err ret = st_exec(s, ST_BEGIN);
    if (!ret) {
        s->in_tx = 1;
        s->next_seq = 0;
    }
    return ret;
}

static void sq_rollback(otpca_store_impl *s);

static otpca_err sq_commit(otpca_store_impl *s)
{
    otpca_err ret;
    if (!s->in_tx) {
        log_error("store: commit without a transaction");
        return OTPCA_ERR_STATE;
    }
    s->in_tx = 0;
    s->next_seq = 0;
    if (s->spoiled || sqlite3_get_autocommit(s->db)) {
        sq_rollback(s);
        return spoiled();
    }
    ret = st_exec(s, ST_COMMIT);
    if (ret && !sqlite3_get_autocommit(s->db))
        (void)st_exec(s, ST_ROLLBACK);
    return ret;
}

static void sq_rollback(otpca_store_impl *s)
{
    if (!sqlite3_get_autocommit(s->db))
        (void)st_exec(s, ST_ROLLBACK);
    s->in_tx = 0;
    s->spoiled = 0;
    s->next_seq = 0;
}

/* --------------------------------------------------------------- devices */

/* Parameters ?1..?15 of ST_DEVICE_ADD and ST_DEVICE_UPDATE. */
static void bind_device(sqlite3_stmt *st, const otpca_device *d, uint64_t seq, int *rc)
{
    b_text(st, 1, d->serial, rc);
    b_blob(st, 2, d->mac, d->mac_len, rc);
    b_blob_opt(st, 3, d->pubkey, d->pubkey_len, rc);
    b_text(st, 4, d->batch, rc);
    b_int(st, 5, (uint64_t)d->state, rc);
    b_blob(st, 6, d->seed_env, d->seed_env_len, rc);
    b_int(st, 7, d->digits, rc);
    b_int(st, 8, d->period, rc);
    b_int(st, 9, d->algorithm, rc);
    b_int(st, 10, d->last_step, rc);
    b_int(st, 11, d->failures, rc);
    b_blob_opt(st, 12, d->cert_hash, d->has_cert ? sizeof d->cert_hash : 0, rc);
    b_text(st, 13, d->manager, rc);
    b_int(st, 14, d->flagged ? 1 : 0, rc);
    b_int(st, 15, seq, rc);
}

static otpca_err device_from_row(sqlite3_stmt *st, otpca_device *d)
{
    memset(d, 0, sizeof *d);
    if (c_text(st, 0, d->serial, sizeof d->serial) || c_blob(st, 1, d->mac, sizeof d->mac, &d->mac_len) ||
        c_blob(st, 2, d->pubkey, sizeof d->pubkey, &d->pubkey_len) || c_text(st, 3, d->batch, sizeof d->batch) ||
        c_blob(st, 5, d->seed_env, sizeof d->seed_env, &d->seed_env_len) ||
        c_text(st, 12, d->manager, sizeof d->manager))
        return unreadable("device");
    d->state = sqlite3_column_int(st, 4);
    d->digits = (unsigned)sqlite3_column_int64(st, 6);
    d->period = (unsigned)sqlite3_column_int64(st, 7);
    d->algorithm = (unsigned)sqlite3_column_int64(st, 8);
    d->last_step = c_u64(st, 9);
    d->failures = (uint32_t)sqlite3_column_int64(st, 10);
    if (sqlite3_column_type(st, 11) != SQLITE_NULL) {
        if (c_blob_exact(st, 11, d->cert_hash, sizeof d->cert_hash))
            return unreadable("device");
        d->has_cert = 1;
    }
    d->flagged = sqlite3_column_int(st, 13) != 0;
    d->seq = c_u64(st, 14);
    return OTPCA_ERR_OK;
}

/* The change log's next number: AUTOINCREMENT's counter (never reused,
 * even once the oldest rows are pruned) plus one. Read once per caller's
 * transaction, which holds the write lock, and counted on from there. */
static otpca_err next_seq(otpca_store_impl *s, uint64_t *seq)
{
    sqlite3_stmt *st = NULL;
    if (s->in_tx && s->next_seq) {
        *seq = s->next_seq;
        return OTPCA_ERR_OK;
    }
    otpca_err ret = st_get(s, ST_NEXT_SEQ, &st);
    if (ret)
        return ret;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *seq = c_u64(st, 0);
    else
        ret = sq_err(s, rc, "read the change log's counter");
    st_done(st);
    if (!ret && s->in_tx)
        s->next_seq = *seq;
    return ret;
}

/* Writes the device row (insert or update) numbered seq: the one statement
 * of a device call that can fail on its input. */
static otpca_err device_write(otpca_store_impl *s, enum st_id id, const otpca_device *d, uint64_t seq)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, id, &st);
    if (ret)
        return ret;
    bind_device(st, d, seq, &rc);
    ret = step_done(s, st, rc, id == ST_DEVICE_ADD ? "add a device" : "update a device");
    if (!ret && id == ST_DEVICE_UPDATE && sqlite3_changes(s->db) == 0)
        ret = OTPCA_ERR_NOT_FOUND;
    return ret;
}

/* The change-log row for d's new state, numbered seq. */
static otpca_err change_log(otpca_store_impl *s, const otpca_device *d, uint64_t seq)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_CHANGE_ADD, &st);
    if (ret)
        return ret;
    b_int(st, 1, seq, &rc);
    b_text(st, 2, d->serial, &rc);
    b_int(st, 3, (uint64_t)d->state, &rc);
    return step_done(s, st, rc, "append to the change log");
}

/* Add and update: the device row takes the next number, then the change
 * log records it (which moves AUTOINCREMENT's counter on). */
static otpca_err device_put(otpca_store_impl *s, enum st_id id, otpca_device *d)
{
    uint64_t seq = 0;
    int own = 0, partial = 0;
    otpca_err ret = w_enter(s, &own);
    if (ret)
        return ret;
    ret = next_seq(s, &seq);
    if (!ret)
        ret = device_write(s, id, d, seq);
    if (!ret) {
        partial = 1;
        ret = change_log(s, d, seq);
    }
    if (!ret && s->in_tx)
        s->next_seq = seq + 1;
    ret = w_leave(s, own, ret, partial);
    if (!ret)
        d->seq = seq;
    return ret;
}

static otpca_err sq_device_add(otpca_store_impl *s, otpca_device *d)
{
    return device_put(s, ST_DEVICE_ADD, d);
}

static otpca_err sq_device_update(otpca_store_impl *s, otpca_device *d)
{
    return device_put(s, ST_DEVICE_UPDATE, d);
}

static otpca_err sq_device_get(otpca_store_impl *s, const char *serial, otpca_device *d)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_DEVICE_GET, &st);
    if (ret)
        return ret;
    b_text(st, 1, serial, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = device_from_row(st, d);
    else if (rc == SQLITE_DONE)
        ret = OTPCA_ERR_NOT_FOUND;
    else
        ret = sq_err(s, rc, "read a device");
    st_done(st);
    return ret;
}

static sqlite3_int64 sql_limit(size_t limit)
{
    return limit > (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)limit;
}

/* Runs a bound device query, handing each row to fn until it returns
 * non-zero (that device counts as handed over). *last: its seq. */
static otpca_err device_walk(otpca_store_impl *s, sqlite3_stmt *st, int rc, otpca_device_fn fn, void *arg,
                             uint64_t *last)
{
    otpca_device d;
    otpca_err ret = OTPCA_ERR_OK;
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if ((ret = device_from_row(st, &d)))
            break;
        if (last)
            *last = d.seq;
        if (fn(&d, arg)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE)
        ret = sq_err(s, rc, "read devices");
    st_done(st);
    return ret;
}

static otpca_err sq_device_scan(otpca_store_impl *s, const char *after, size_t limit, otpca_device_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_DEVICE_SCAN, &st);
    if (ret)
        return ret;
    /* Not b_text: "" must stay a string here ('' sorts before every serial). */
    rc = sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, sql_limit(limit));
    return device_walk(s, st, rc, fn, arg, NULL);
}

static otpca_err sq_changes(otpca_store_impl *s, uint64_t since, size_t limit, otpca_device_fn fn, void *arg,
                            uint64_t *next)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    uint64_t last = since;
    otpca_err ret = st_get(s, ST_CHANGES, &st);
    if (ret)
        return ret;
    b_int(st, 1, since, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, sql_limit(limit));
    ret = device_walk(s, st, rc, fn, arg, &last);
    if (!ret)
        *next = last;
    return ret;
}

static otpca_err sq_seq(otpca_store_impl *s, uint64_t *head, uint64_t *oldest)
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = st_get(s, ST_SEQ, &st);
    if (ret)
        return ret;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        /* An empty log: both NULL, read as 0. */
        *head = c_u64(st, 0);
        *oldest = c_u64(st, 1);
    } else {
        ret = sq_err(s, rc, "read the change log");
    }
    st_done(st);
    return ret;
}

static otpca_err sq_device_counts(otpca_store_impl *s, uint64_t counts[7])
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = st_get(s, ST_COUNTS, &st);
    int rc;
    if (ret)
        return ret;
    memset(counts, 0, 7 * sizeof counts[0]);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        uint64_t n = c_u64(st, 1);
        if (state >= 1 && state <= 6)
            counts[state] = n;
        counts[0] += n;
    }
    if (rc != SQLITE_DONE)
        ret = sq_err(s, rc, "count devices");
    st_done(st);
    return ret;
}

/* ---------------------------------------------- batches, managers, operators */

static otpca_err sq_batch_add(otpca_store_impl *s, const otpca_batch *b)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = w_stmt(s, ST_BATCH_ADD, &st);
    if (ret)
        return ret;
    b_text(st, 1, b->id, &rc);
    b_blob(st, 2, b->product_pub, sizeof b->product_pub, &rc);
    return step_done(s, st, rc, "add a batch");
}

static otpca_err sq_batch_get(otpca_store_impl *s, const char *id, otpca_batch *b)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_BATCH_GET, &st);
    if (ret)
        return ret;
    b_text(st, 1, id, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(b, 0, sizeof *b);
        ret = (c_text(st, 0, b->id, sizeof b->id) || c_blob_exact(st, 1, b->product_pub, sizeof b->product_pub))
                  ? unreadable("batch")
                  : OTPCA_ERR_OK;
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : sq_err(s, rc, "read a batch");
    }
    st_done(st);
    return ret;
}

static otpca_err sq_manager_add(otpca_store_impl *s, const otpca_manager *m)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = w_stmt(s, ST_MANAGER_ADD, &st);
    if (ret)
        return ret;
    b_text(st, 1, m->id, &rc);
    b_blob(st, 2, m->curve_pub, sizeof m->curve_pub, &rc);
    b_blob(st, 3, m->ca_pub, sizeof m->ca_pub, &rc);
    b_blob(st, 4, m->ca_cert, m->ca_cert_len, &rc);
    b_int(st, 5, m->revoked ? 1 : 0, &rc);
    return step_done(s, st, rc, "add a manager");
}

static otpca_err manager_from_row(sqlite3_stmt *st, otpca_manager *m)
{
    memset(m, 0, sizeof *m);
    if (c_text(st, 0, m->id, sizeof m->id) || c_blob_exact(st, 1, m->curve_pub, sizeof m->curve_pub) ||
        c_blob_exact(st, 2, m->ca_pub, sizeof m->ca_pub) ||
        c_blob(st, 3, m->ca_cert, sizeof m->ca_cert, &m->ca_cert_len))
        return unreadable("manager");
    m->revoked = sqlite3_column_int(st, 4) != 0;
    return OTPCA_ERR_OK;
}

static otpca_err manager_one(otpca_store_impl *s, enum st_id id, const void *key, size_t key_len,
                             otpca_manager *m)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, id, &st);
    if (ret)
        return ret;
    if (key_len)
        b_blob(st, 1, key, key_len, &rc);
    else
        b_text(st, 1, key, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = manager_from_row(st, m);
    else
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : sq_err(s, rc, "read a manager");
    st_done(st);
    return ret;
}

static otpca_err sq_manager_get(otpca_store_impl *s, const char *id, otpca_manager *m)
{
    return manager_one(s, ST_MANAGER_GET, id, 0, m);
}

static otpca_err sq_manager_by_curve(otpca_store_impl *s, const uint8_t curve_pub[32], otpca_manager *m)
{
    return manager_one(s, ST_MANAGER_BY_CURVE, curve_pub, 32, m);
}

static otpca_err sq_manager_revoke(otpca_store_impl *s, const char *id)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = w_stmt(s, ST_MANAGER_REVOKE, &st);
    if (ret)
        return ret;
    b_text(st, 1, id, &rc);
    if ((ret = step_done(s, st, rc, "revoke a manager")))
        return ret;
    return sqlite3_changes(s->db) ? OTPCA_ERR_OK : OTPCA_ERR_NOT_FOUND;
}

static otpca_err sq_manager_scan(otpca_store_impl *s, otpca_manager_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    otpca_manager m;
    int rc;
    otpca_err ret = st_get(s, ST_MANAGER_SCAN, &st);
    if (ret)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((ret = manager_from_row(st, &m)))
            break;
        if (fn(&m, arg)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE)
        ret = sq_err(s, rc, "read managers");
    st_done(st);
    return ret;
}

static otpca_err sq_operator_add(otpca_store_impl *s, const otpca_operator *o)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = w_stmt(s, ST_OPERATOR_ADD, &st);
    if (ret)
        return ret;
    b_text(st, 1, o->id, &rc);
    b_blob(st, 2, o->seed_env, o->seed_env_len, &rc);
    b_int(st, 3, o->digits, &rc);
    b_int(st, 4, o->period, &rc);
    b_int(st, 5, o->algorithm, &rc);
    b_int(st, 6, o->last_step, &rc);
    return step_done(s, st, rc, "add an operator");
}

static otpca_err sq_operator_get(otpca_store_impl *s, const char *id, otpca_operator *o)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_OPERATOR_GET, &st);
    if (ret)
        return ret;
    b_text(st, 1, id, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(o, 0, sizeof *o);
        if (c_text(st, 0, o->id, sizeof o->id) || c_blob(st, 1, o->seed_env, sizeof o->seed_env, &o->seed_env_len)) {
            ret = unreadable("operator");
        } else {
            o->digits = (unsigned)sqlite3_column_int64(st, 2);
            o->period = (unsigned)sqlite3_column_int64(st, 3);
            o->algorithm = (unsigned)sqlite3_column_int64(st, 4);
            o->last_step = c_u64(st, 5);
        }
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : sq_err(s, rc, "read an operator");
    }
    st_done(st);
    return ret;
}

/* One conditional UPDATE: two windows opened with the same code race on
 * the row, and only one of them moves last_step forward. */
static otpca_err sq_operator_accept_step(otpca_store_impl *s, const char *id, uint64_t step)
{
    sqlite3_stmt *st = NULL;
    otpca_operator o;
    int rc = SQLITE_OK;
    otpca_err ret = w_stmt(s, ST_OPERATOR_STEP, &st);
    if (ret)
        return ret;
    b_text(st, 1, id, &rc);
    b_int(st, 2, step, &rc);
    if ((ret = step_done(s, st, rc, "accept an operator's step")))
        return ret;
    if (sqlite3_changes(s->db))
        return OTPCA_ERR_OK;
    /* Nothing changed: unknown operator, or the step is not newer. */
    ret = sq_operator_get(s, id, &o);
    return ret ? ret : OTPCA_ERR_STATE;
}

/* ---------------------------------------------------------------- leases */

static otpca_err sq_lease_add(otpca_store_impl *s, const otpca_lease *l)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = w_stmt(s, ST_LEASE_ADD, &st);
    if (ret)
        return ret;
    b_blob(st, 1, l->window, sizeof l->window, &rc);
    b_text(st, 2, l->manager, &rc);
    b_text(st, 3, l->operator_, &rc);
    b_int(st, 4, l->not_before, &rc);
    b_int(st, 5, l->not_after, &rc);
    b_int(st, 6, l->max_enroll, &rc);
    /* scope "" means everything: keep it as an empty string, not NULL. */
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 7, l->scope, -1, SQLITE_STATIC);
    b_int(st, 8, l->offline ? 1 : 0, &rc);
    b_blob_opt(st, 9, l->nonce, l->has_nonce ? sizeof l->nonce : 0, &rc);
    b_int(st, 10, l->closed_at, &rc);
    return step_done(s, st, rc, "add a lease");
}

static otpca_err lease_one(otpca_store_impl *s, enum st_id id, const uint8_t key[16], otpca_lease *l)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, id, &st);
    if (ret)
        return ret;
    b_blob(st, 1, key, 16, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(l, 0, sizeof *l);
        size_t nonce_len = 0;
        if (c_blob_exact(st, 0, l->window, sizeof l->window) || c_text(st, 1, l->manager, sizeof l->manager) ||
            c_text(st, 2, l->operator_, sizeof l->operator_) || c_text(st, 6, l->scope, sizeof l->scope) ||
            c_blob(st, 8, l->nonce, sizeof l->nonce, &nonce_len) || (nonce_len && nonce_len != sizeof l->nonce)) {
            ret = unreadable("lease");
        } else {
            l->not_before = c_u64(st, 3);
            l->not_after = c_u64(st, 4);
            l->max_enroll = c_u64(st, 5);
            l->offline = sqlite3_column_int(st, 7) != 0;
            l->has_nonce = nonce_len != 0;
            l->closed_at = c_u64(st, 9);
        }
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : sq_err(s, rc, "read a lease");
    }
    st_done(st);
    return ret;
}

static otpca_err sq_lease_get(otpca_store_impl *s, const uint8_t window[16], otpca_lease *l)
{
    return lease_one(s, ST_LEASE_GET, window, l);
}

static otpca_err sq_lease_by_nonce(otpca_store_impl *s, const uint8_t nonce[16], otpca_lease *l)
{
    return lease_one(s, ST_LEASE_BY_NONCE, nonce, l);
}

/* OTPCA_ERR_OK the first time; STATE if it was closed already. */
static otpca_err sq_lease_close(otpca_store_impl *s, const uint8_t window[16], uint64_t when)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_lease l;
    otpca_err ret = w_stmt(s, ST_LEASE_CLOSE, &st);
    if (ret)
        return ret;
    b_blob(st, 1, window, 16, &rc);
    b_int(st, 2, when, &rc);
    if ((ret = step_done(s, st, rc, "close a lease")))
        return ret;
    if (sqlite3_changes(s->db))
        return OTPCA_ERR_OK;
    ret = sq_lease_get(s, window, &l);
    return ret ? ret : OTPCA_ERR_STATE;
}

/* ------------------------------------------------------------------ meta */

static otpca_err sq_meta_get(otpca_store_impl *s, const char *key, uint8_t *buf, size_t cap, size_t *len)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_META_GET, &st);
    if (ret)
        return ret;
    b_text(st, 1, key, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_BLOB || c_blob(st, 0, buf, cap, len))
            ret = unreadable("meta value");
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : sq_err(s, rc, "read meta");
    }
    st_done(st);
    return ret;
}

static otpca_err sq_meta_add(otpca_store_impl *s, const char *key, const uint8_t *val, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = w_stmt(s, ST_META_ADD, &st);
    if (ret)
        return ret;
    b_text(st, 1, key, &rc);
    b_blob(st, 2, val, len, &rc);
    return step_done(s, st, rc, "add a meta value");
}

/* --------------------------------------------------------------- records */

/* 1 if the stored row (REC_COLS) holds exactly r; flagged (column 9) is
 * the cloud's verdict, not content. */
static int record_same(sqlite3_stmt *st, const otpca_stored_record *r)
{
    char text[OTPCA_STORE_ID_MAX + 1];
    uint8_t window[16];
    const void *cert = sqlite3_column_blob(st, 6);
    size_t cert_len = (size_t)sqlite3_column_bytes(st, 6);
    if (c_blob_exact(st, 1, window, sizeof window) || memcmp(window, r->window, sizeof window) != 0)
        return 0;
    if (c_text(st, 2, text, sizeof text) || strcmp(text, r->manager) != 0)
        return 0;
    if (c_text(st, 4, text, sizeof text) || strcmp(text, r->serial) != 0)
        return 0;
    if (sqlite3_column_int64(st, 3) != r->kind || c_u64(st, 5) != r->time || c_u64(st, 7) != r->step ||
        sqlite3_column_int64(st, 8) != r->reason)
        return 0;
    if (cert_len != (r->cert ? r->cert_len : 0))
        return 0;
    return cert_len == 0 || memcmp(cert, r->cert, cert_len) == 0;
}

/* Insert-or-nothing first (one statement for a new record, the common
 * case); only a repeat reads the stored row back to compare. */
static otpca_err sq_record_put(otpca_store_impl *s, otpca_stored_record *r, int *dup)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = w_stmt(s, ST_RECORD_ADD, &st);
    if (ret)
        return ret;
    b_blob(st, 1, r->id, sizeof r->id, &rc);
    b_blob(st, 2, r->window, sizeof r->window, &rc);
    b_text(st, 3, r->manager, &rc);
    b_int(st, 4, (uint64_t)r->kind, &rc);
    b_text(st, 5, r->serial, &rc);
    b_int(st, 6, r->time, &rc);
    b_blob_opt(st, 7, r->cert, r->cert_len, &rc);
    b_int(st, 8, r->step, &rc);
    b_int(st, 9, (uint64_t)r->reason, &rc);
    b_int(st, 10, r->flagged ? 1 : 0, &rc);
    if ((ret = step_done(s, st, rc, "store a record")))
        return ret;
    if (sqlite3_changes(s->db)) {
        *dup = 0;
        return OTPCA_ERR_OK;
    }

    rc = SQLITE_OK;
    if ((ret = st_get(s, ST_RECORD_GET, &st)))
        return ret;
    b_blob(st, 1, r->id, sizeof r->id, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (record_same(st, r)) {
            *dup = 1;
            r->flagged = sqlite3_column_int(st, 9) != 0;
            ret = OTPCA_ERR_OK;
        } else {
            log_warn("store: record id reused with different content (serial %s, manager %s)", r->serial,
                     r->manager);
            ret = OTPCA_ERR_EXISTS;
        }
    } else {
        ret = sq_err(s, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, "read a record back");
    }
    st_done(st);
    return ret;
}

static otpca_err sq_record_count(otpca_store_impl *s, uint64_t *n)
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = st_get(s, ST_RECORD_COUNT, &st);
    if (ret)
        return ret;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *n = c_u64(st, 0);
    else
        ret = sq_err(s, rc, "count records");
    st_done(st);
    return ret;
}

/* ----------------------------------------------------------------- audit */

/* The entry, then the head; *partial once the entry is written. */
static otpca_err audit_insert(otpca_store_impl *s, const otpca_audit *a, int *partial)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_AUDIT_ADD, &st);
    if (ret)
        return ret;
    b_int(st, 1, a->seq, &rc);
    b_blob(st, 2, a->prev, sizeof a->prev, &rc);
    b_blob(st, 3, a->hash, sizeof a->hash, &rc);
    b_int(st, 4, a->time, &rc);
    b_text(st, 5, a->actor, &rc);
    b_int(st, 6, a->event, &rc);
    b_text(st, 7, a->subject, &rc);
    b_text(st, 8, a->detail, &rc);
    if ((ret = step_done(s, st, rc, "append to the audit chain")))
        return ret;
    *partial = 1;
    rc = SQLITE_OK;
    if ((ret = st_get(s, ST_AUDIT_HEAD_SET, &st)))
        return ret;
    b_int(st, 1, a->seq, &rc);
    return step_done(s, st, rc, "record the audit head");
}

/* The chain's last entry: seq and hash (0 and zeros when empty). */
static otpca_err audit_tail(otpca_store_impl *s, uint64_t *seq, uint8_t hash[32])
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = st_get(s, ST_AUDIT_TAIL, &st);
    if (ret)
        return ret;
    *seq = 0;
    memset(hash, 0, 32);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *seq = c_u64(st, 0);
        if (c_blob_exact(st, 1, hash, 32))
            ret = unreadable("audit entry");
    } else if (rc != SQLITE_DONE) {
        ret = sq_err(s, rc, "read the audit chain");
    }
    st_done(st);
    return ret;
}

static otpca_err sq_audit_append(otpca_store_impl *s, otpca_audit *a)
{
    otpca_audit e = *a;
    uint64_t last = 0;
    int own = 0, partial = 0;
    otpca_err ret = w_enter(s, &own);
    if (ret)
        return ret;
    ret = audit_tail(s, &last, e.prev);
    if (!ret) {
        e.seq = last + 1;
        ret = otpca_store_audit_hash(&e, e.hash);
    }
    if (!ret)
        ret = audit_insert(s, &e, &partial);
    ret = w_leave(s, own, ret, partial);
    if (!ret) {
        a->seq = e.seq;
        memcpy(a->prev, e.prev, sizeof a->prev);
        memcpy(a->hash, e.hash, sizeof a->hash);
    }
    return ret;
}

static otpca_err audit_from_row(sqlite3_stmt *st, otpca_audit *a)
{
    memset(a, 0, sizeof *a);
    if (c_blob_exact(st, 1, a->prev, sizeof a->prev) || c_blob_exact(st, 2, a->hash, sizeof a->hash) ||
        c_text(st, 4, a->actor, sizeof a->actor) || c_text(st, 6, a->subject, sizeof a->subject) ||
        c_text(st, 7, a->detail, sizeof a->detail))
        return OTPCA_ERR_SIGNATURE;
    a->seq = c_u64(st, 0);
    a->time = c_u64(st, 3);
    a->event = (unsigned)sqlite3_column_int64(st, 5);
    return OTPCA_ERR_OK;
}

/* Walks the chain from entry 1: each seq the next one, each prev the
 * previous entry's recomputed hash, each hash the entry's own. The head
 * recorded with every append also catches a chain cut short at its end. */
static otpca_err sq_audit_verify(otpca_store_impl *s, uint64_t *entries, uint64_t *bad_seq)
{
    sqlite3_stmt *st = NULL;
    otpca_audit a;
    uint8_t prev[32] = {0}, h[32];
    uint64_t expect = 1, head = 0;
    int rc;
    otpca_err ret = st_get(s, ST_AUDIT_HEAD_GET, &st);
    if (ret)
        return ret;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        head = c_u64(st, 0);
    else if (rc != SQLITE_DONE)
        ret = sq_err(s, rc, "read the audit head");
    st_done(st);
    if (ret)
        return ret;

    *bad_seq = 0;
    if ((ret = st_get(s, ST_AUDIT_SCAN, &st)))
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (audit_from_row(st, &a) || a.seq != expect) {
            *bad_seq = expect;
            break;
        }
        if (memcmp(a.prev, prev, sizeof prev) != 0 || otpca_store_audit_hash(&a, h) ||
            memcmp(h, a.hash, sizeof h) != 0) {
            *bad_seq = a.seq;
            break;
        }
        memcpy(prev, h, sizeof prev);
        expect++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = sq_err(s, rc, "read the audit chain");
    st_done(st);
    if (ret)
        return ret;
    if (!*bad_seq && expect - 1 < head)
        *bad_seq = expect;
    *entries = expect - 1;
    if (*bad_seq) {
        log_error("store: audit chain broken at entry %llu", (unsigned long long)*bad_seq);
        return OTPCA_ERR_SIGNATURE;
    }
    return OTPCA_ERR_OK;
}

const otpca_store_backend otpca_store_sqlite_backend = {
    .name = "sqlite",
    .open = sq_open,
    .destroy = sq_destroy,
    .schema_version = sq_schema_version,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .device_add = sq_device_add,
    .device_get = sq_device_get,
    .device_update = sq_device_update,
    .device_scan = sq_device_scan,
    .changes = sq_changes,
    .seq = sq_seq,
    .device_counts = sq_device_counts,
    .batch_add = sq_batch_add,
    .batch_get = sq_batch_get,
    .manager_add = sq_manager_add,
    .manager_get = sq_manager_get,
    .manager_by_curve = sq_manager_by_curve,
    .manager_revoke = sq_manager_revoke,
    .manager_scan = sq_manager_scan,
    .operator_add = sq_operator_add,
    .operator_get = sq_operator_get,
    .operator_accept_step = sq_operator_accept_step,
    .lease_add = sq_lease_add,
    .lease_get = sq_lease_get,
    .lease_by_nonce = sq_lease_by_nonce,
    .lease_close = sq_lease_close,
    .meta_get = sq_meta_get,
    .meta_add = sq_meta_add,
    .record_put = sq_record_put,
    .record_count = sq_record_count,
    .audit_append = sq_audit_append,
    .audit_verify = sq_audit_verify,
};
