/*
 * The manager's store on SQLite: one file (created mode 0600) in WAL mode
 * with synchronous=FULL, so that a commit that returned survives kill -9
 * and power loss; foreign keys on; a busy timeout so that several handles
 * (one per thread) take turns at writing. The schema is built by an
 * ordered list of migrations, each applied in one transaction and recorded
 * in the meta table; the file carries its own application id, so neither
 * a newer schema nor another program's database (the cloud's store
 * included) is taken for ours. Every statement is prepared once per
 * handle and kept.
 *
 * A call that writes more than one row runs in its own IMMEDIATE
 * transaction, or inside the caller's. A batch (a delta, a snapshot chunk
 * or commit) takes a savepoint inside the caller's transaction, so that a
 * bad entry half-way undoes the batch and nothing else; a per-request call
 * (accept, fail, a record) does its one write that can fail on its input
 * first, and a failure after that, from below, spoils the caller's
 * transaction (it can only roll back), as in the cloud's store.
 */
#include "otpca/manager/mstore.h"

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

#define BUSY_TIMEOUT_MS 10000
#define CACHE_KIB 16384 /* page cache per handle, at most */
#define WAL_LIMIT (64 * 1024 * 1024) /* WAL file size kept after a checkpoint */
#define APP_ID 1869901933 /* 0x6f74706d, "otpm": the PRAGMA application_id of a manager store */
#define STR_(x) #x
#define STR(x) STR_(x)
#define TIME_MAX UINT64_C(0xffffffffff) /* PROTOCOL.md `time` */

/* ---------------------------------------------------------------- schema */

/* Version 1.
 *
 * devices: the trust list, one row per serial, WITHOUT ROWID (the serial
 * is the one key an enrollment looks up). A sealed seed and its box come
 * and go together. staging: a snapshot being received, same columns.
 * boxes: one row per batch that carried seeds, its ephemeral key E; ids
 * are never reused (AUTOINCREMENT), so a PRK cached by id cannot open the
 * wrong box; a box no device or staged device refers to is deleted.
 *
 * records: the journal, in insertion order (seq, the rowid); the partial
 * index holds exactly the records still to upload. nonces: this window's
 * request nonces. audit: the chain; meta: schema_version, sync_seq,
 * audit_head (the store's own) and the caller's named blobs. */
#define DEVICE_TABLE(name)                                                                  \
    "CREATE TABLE " name " ("                                                               \
    "  serial TEXT PRIMARY KEY NOT NULL,"                                                   \
    "  seq INTEGER NOT NULL,"                                                               \
    "  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 4),"                               \
    "  mac BLOB CHECK (mac IS NULL OR length(mac) IN (6, 8)),"                              \
    "  pubkey BLOB CHECK (pubkey IS NULL OR length(pubkey) = 65),"                          \
    "  batch TEXT,"                                                                         \
    "  seed BLOB CHECK (seed IS NULL OR length(seed) BETWEEN 32 AND 80),"                   \
    "  box INTEGER REFERENCES boxes(id),"                                                   \
    "  digits INTEGER NOT NULL,"                                                            \
    "  period INTEGER NOT NULL,"                                                            \
    "  algorithm INTEGER NOT NULL,"                                                         \
    "  last_step INTEGER NOT NULL,"                                                         \
    "  failures INTEGER NOT NULL,"                                                          \
    "  cert_hash BLOB CHECK (cert_hash IS NULL OR length(cert_hash) = 32),"                 \
    "  enrolled_here INTEGER NOT NULL CHECK (enrolled_here IN (0, 1)),"                     \
    "  CHECK ((seed IS NULL) = (box IS NULL))"                                              \
    ") WITHOUT ROWID;"                                                                      \
    "CREATE INDEX " name "_box ON " name "(box) WHERE box IS NOT NULL;"

static const char SCHEMA_V1[] =
    "PRAGMA application_id = " STR(APP_ID) ";"
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID;"
    "CREATE TABLE boxes ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  eph BLOB NOT NULL UNIQUE CHECK (length(eph) = 65)"
    ");" DEVICE_TABLE("devices") DEVICE_TABLE("staging")
    "CREATE TABLE nonces ("
    "  nonce BLOB PRIMARY KEY NOT NULL CHECK (length(nonce) = 16),"
    "  time INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX nonces_time ON nonces(time);"
    "CREATE TABLE records ("
    "  seq INTEGER PRIMARY KEY,"
    "  id BLOB NOT NULL UNIQUE CHECK (length(id) = 16),"
    "  window_id BLOB NOT NULL CHECK (length(window_id) = 16),"
    "  kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 6),"
    "  serial TEXT NOT NULL,"
    "  time INTEGER NOT NULL,"
    "  cert BLOB,"
    "  cert_hash BLOB CHECK ((cert IS NULL) = (cert_hash IS NULL)),"
    "  step INTEGER,"
    "  reason INTEGER CHECK (reason IS NULL OR reason BETWEEN 0 AND 255),"
    "  audit BLOB CHECK (audit IS NULL OR length(audit) = 32),"
    "  pubkey BLOB CHECK (pubkey IS NULL OR length(pubkey) = 65),"
    "  uploaded INTEGER NOT NULL CHECK (uploaded IN (0, 1))"
    ");"
    "CREATE INDEX records_pending ON records(uploaded) WHERE uploaded = 0;"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY,"
    "  prev BLOB NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  time INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  event INTEGER NOT NULL,"
    "  subject TEXT,"
    "  detail TEXT,"
    "  window_id BLOB"
    ");";

/* Migration i takes the schema from version i to i + 1. Append only. */
static const char *const MIGRATIONS[] = {SCHEMA_V1};
#define SCHEMA_VERSION ((unsigned)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* ------------------------------------------------------------ statements */

#define DEV_COLS                                                                                          \
    "serial, seq, state, mac, pubkey, batch, seed, box, digits, period, algorithm, last_step, failures, " \
    "cert_hash, enrolled_here"
#define DEV_VALUES "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15"
#define REC_COLS "seq, id, window_id, kind, serial, time, cert, cert_hash, step, reason, audit, pubkey, uploaded"
#define AUDIT_COLS "seq, prev, hash, time, actor, event, subject, detail, window_id"

/*
 * Merging a batch's entry (excluded) into the device the manager holds
 * (devices), for a delta's upsert and a snapshot's commit alike; mstore.h
 * states the rules. ?20 is 1 where the cloud's sequence numbers order the
 * two (a delta; a snapshot that moves forward), 0 where they do not (a
 * snapshot from another registry). Every expression reads the old row.
 */
#define M_STALE "(?20 AND excluded.seq < devices.seq)"
#define M_LOCK_PENDING \
    "EXISTS (SELECT 1 FROM records r WHERE r.uploaded = 0 AND r.serial = devices.serial AND r.kind = 6)"
#define M_LOCAL_NEWER "(devices.last_step > excluded.last_step)"
#define M_KEEP_CERT "(" M_STALE " OR (" M_LOCAL_NEWER " AND devices.cert_hash IS NOT NULL))"
#define M_CLOUD(c) c " = CASE WHEN " M_STALE " THEN devices." c " ELSE excluded." c " END, "
#define MERGE_SET                                                                                        \
    "seq = CASE WHEN ?20 THEN max(devices.seq, excluded.seq) ELSE excluded.seq END, " M_CLOUD("mac")      \
    M_CLOUD("pubkey") M_CLOUD("batch") M_CLOUD("seed") M_CLOUD("box") M_CLOUD("digits") M_CLOUD("period") \
    M_CLOUD("algorithm")                                                                                 \
    "state = CASE WHEN " M_STALE " THEN devices.state"                                                   \
    " WHEN excluded.state IN (3, 4) THEN excluded.state"                                                 \
    " WHEN devices.state = 4 AND " M_LOCK_PENDING " THEN 4"                                              \
    " WHEN devices.state = 2 AND excluded.state = 1 AND " M_LOCAL_NEWER " THEN 2"                        \
    " ELSE excluded.state END, "                                                                         \
    "failures = CASE WHEN NOT " M_STALE " AND devices.state = 4 AND excluded.state IN (1, 2)"            \
    " AND NOT " M_LOCK_PENDING " THEN excluded.failures"                                                 \
    " ELSE max(devices.failures, excluded.failures) END, "                                               \
    "last_step = max(devices.last_step, excluded.last_step), "                                           \
    "cert_hash = CASE WHEN " M_KEEP_CERT " THEN devices.cert_hash ELSE excluded.cert_hash END, "         \
    "enrolled_here = CASE WHEN " M_KEEP_CERT " OR excluded.cert_hash IS devices.cert_hash"               \
    " THEN devices.enrolled_here ELSE 0 END"

enum st_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_META_GET,
    ST_META_PUT,
    ST_SYNC_GET,
    ST_SYNC_SET,
    ST_BOX_ADD,
    ST_BOX_ID,
    ST_BOX_GC,
    ST_BOX_SCAN,
    ST_DEVICE_UPSERT,
    ST_DEVICE_DELETE,
    ST_DEVICE_GET,
    ST_DEVICE_BRIEF,
    ST_COUNTS,
    ST_STAGE_CLEAR,
    ST_STAGE_PUT,
    ST_SNAP_PRUNE,
    ST_SNAP_MERGE,
    ST_ACCEPT,
    ST_FAIL_SET,
    ST_ENROLLED,
    ST_SET_STATE,
    ST_LOCK_PENDING,
    ST_NONCE_ADD,
    ST_NONCE_PRUNE,
    ST_RECORD_ADD,
    ST_RECORD_GET,
    ST_RECORD_PENDING,
    ST_RECORD_ACK,
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
    [ST_SAVEPOINT] = "SAVEPOINT mstore_batch",
    [ST_RELEASE] = "RELEASE mstore_batch",
    [ST_ROLLBACK_TO] = "ROLLBACK TO mstore_batch",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_PUT] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_SYNC_GET] = "SELECT value FROM meta WHERE key = 'sync_seq'",
    [ST_SYNC_SET] = "INSERT INTO meta(key, value) VALUES ('sync_seq', ?1) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_BOX_ADD] = "INSERT INTO boxes(eph) VALUES (?1) ON CONFLICT(eph) DO NOTHING",
    [ST_BOX_ID] = "SELECT id FROM boxes WHERE eph = ?1",
    [ST_BOX_GC] = "DELETE FROM boxes WHERE NOT EXISTS (SELECT 1 FROM devices WHERE box = boxes.id) "
                  "AND NOT EXISTS (SELECT 1 FROM staging WHERE box = boxes.id)",
    [ST_BOX_SCAN] = "SELECT id, eph FROM boxes b WHERE EXISTS (SELECT 1 FROM devices WHERE box = b.id) "
                    "ORDER BY id",
    [ST_DEVICE_UPSERT] = "INSERT INTO devices(" DEV_COLS ") VALUES (" DEV_VALUES ") "
                         "ON CONFLICT(serial) DO UPDATE SET " MERGE_SET,
    [ST_DEVICE_DELETE] = "DELETE FROM devices WHERE serial = ?1",
    [ST_DEVICE_GET] = "SELECT d.serial, d.seq, d.state, d.mac, d.pubkey, d.batch, d.seed, d.box, d.digits, "
                      "d.period, d.algorithm, d.last_step, d.failures, d.cert_hash, d.enrolled_here, b.eph "
                      "FROM devices d LEFT JOIN boxes b ON b.id = d.box WHERE d.serial = ?1",
    [ST_DEVICE_BRIEF] = "SELECT state, seq, failures FROM devices WHERE serial = ?1",
    [ST_COUNTS] = "SELECT state, count(*) FROM devices GROUP BY state",
    [ST_STAGE_CLEAR] = "DELETE FROM staging",
    [ST_STAGE_PUT] = "INSERT OR REPLACE INTO staging(" DEV_COLS ") VALUES (" DEV_VALUES ")",
    [ST_SNAP_PRUNE] = "DELETE FROM devices WHERE NOT EXISTS (SELECT 1 FROM staging s WHERE s.serial = devices.serial)",
    [ST_SNAP_MERGE] = "INSERT INTO devices(" DEV_COLS ") SELECT " DEV_COLS " FROM staging WHERE true "
                      "ON CONFLICT(serial) DO UPDATE SET " MERGE_SET,
    [ST_ACCEPT] = "UPDATE devices SET last_step = ?2, cert_hash = coalesce(?3, cert_hash) "
                  "WHERE serial = ?1 AND last_step < ?2 AND state IN (1, 2)",
    [ST_FAIL_SET] = "UPDATE devices SET failures = ?2, state = ?3 WHERE serial = ?1",
    [ST_ENROLLED] = "UPDATE devices SET state = 2, cert_hash = ?2, enrolled_here = 1 "
                    "WHERE serial = ?1 AND state IN (1, 2)",
    [ST_SET_STATE] = "UPDATE devices SET state = ?2, seq = max(seq, ?3), "
                     "failures = CASE WHEN ?4 THEN 0 ELSE failures END WHERE serial = ?1",
    [ST_LOCK_PENDING] = "SELECT 1 FROM records WHERE uploaded = 0 AND serial = ?1 AND kind = 6 LIMIT 1",
    [ST_NONCE_ADD] = "INSERT INTO nonces(nonce, time) VALUES (?1, ?2) ON CONFLICT(nonce) DO NOTHING",
    [ST_NONCE_PRUNE] = "DELETE FROM nonces WHERE time < ?1",
    [ST_RECORD_ADD] = "INSERT INTO records(id, window_id, kind, serial, time, cert, cert_hash, step, reason, "
                      "audit, pubkey, uploaded) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0) "
                      "ON CONFLICT(id) DO NOTHING",
    [ST_RECORD_GET] = "SELECT " REC_COLS " FROM records WHERE id = ?1",
    [ST_RECORD_PENDING] = "SELECT " REC_COLS " FROM records WHERE uploaded = 0 ORDER BY seq LIMIT ?1",
    [ST_RECORD_ACK] = "UPDATE records SET uploaded = 1 WHERE id = ?1 AND uploaded = 0",
    [ST_AUDIT_TAIL] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [ST_AUDIT_ADD] = "INSERT INTO audit(" AUDIT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_AUDIT_HEAD_SET] = "INSERT INTO meta(key, value) VALUES ('audit_head', ?1) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_AUDIT_HEAD_GET] = "SELECT value FROM meta WHERE key = 'audit_head'",
    [ST_AUDIT_SCAN] = "SELECT " AUDIT_COLS " FROM audit ORDER BY seq",
};

struct otpca_mstore {
    sqlite3 *db;
    char *path;
    unsigned version;
    int in_tx;    /* the caller's transaction (otpca_mstore_begin) is open */
    int spoiled;  /* ... and a call failed half-way in it: it can only roll back */
    int snapshot; /* snapshot_begin was called and neither commit nor abort since */
    sqlite3_stmt *st[ST_COUNT];
};

/* --------------------------------------------------------------- helpers */

static otpca_err sq_err(otpca_mstore *s, int rc, const char *what)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        log_debug("mstore: %s: already exists", what);
        return OTPCA_ERR_EXISTS;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        log_debug("mstore: %s: %s", what, sqlite3_errmsg(s->db));
        return OTPCA_ERR_INVALID_ARG;
    case SQLITE_NOMEM:
        return OTPCA_ERR_NOMEM;
    case SQLITE_NOTADB:
        log_error("mstore: %s: %s is not an SQLite database", what, s->path);
        return OTPCA_ERR_CONFIG;
    default:
        log_error("mstore: %s: %s (%s)", what, sqlite3_errmsg(s->db), sqlite3_errstr(rc));
        return OTPCA_ERR_IO;
    }
}

/* The handle's prepared statement id, prepared on first use. A statement
 * still stepping means a callback re-entered the call that runs it. */
static otpca_err st_get(otpca_mstore *s, enum st_id id, sqlite3_stmt **out)
{
    sqlite3_stmt *st = s->st[id];
    if (!st) {
        int rc = sqlite3_prepare_v3(s->db, SQL[id], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK)
            return sq_err(s, rc, "prepare");
        s->st[id] = st;
    } else if (sqlite3_stmt_busy(st)) {
        log_error("mstore: a walk's callback called the same walk again");
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
static otpca_err st_exec(otpca_mstore *s, enum st_id id)
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

/* Steps a bound statement that returns no rows (rc: the binders' result). */
static otpca_err step_done(otpca_mstore *s, sqlite3_stmt *st, int rc, const char *what)
{
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    otpca_err ret = rc == SQLITE_DONE ? OTPCA_ERR_OK : sq_err(s, rc, what);
    st_done(st);
    return ret;
}

/* Binders: the first failure sticks in *rc. NULL or empty optional values
 * are stored as NULL. */
static void b_int(sqlite3_stmt *st, int i, uint64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static void b_int_opt(sqlite3_stmt *st, int i, int has, uint64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = has ? sqlite3_bind_int64(st, i, (sqlite3_int64)v) : sqlite3_bind_null(st, i);
}

static void b_text(sqlite3_stmt *st, int i, const char *v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = (v && v[0]) ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static void b_blob(sqlite3_stmt *st, int i, const void *p, size_t n, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = (p && n) ? sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* Column readers: -1 when the stored value does not fit its field (a file
 * written by something else, or tampered with). */
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

/* A blob of exactly n bytes or NULL: *has says which. */
static int c_blob_opt(sqlite3_stmt *st, int i, void *dst, size_t n, int *has)
{
    *has = sqlite3_column_type(st, i) != SQLITE_NULL;
    return *has ? c_blob_exact(st, i, dst, n) : 0;
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
    log_error("mstore: a stored %s does not fit its fields", what);
    return OTPCA_ERR_INTERNAL;
}

static otpca_err bad_arg(const char *what)
{
    log_debug("mstore: invalid %s", what);
    return OTPCA_ERR_INVALID_ARG;
}

/* PROTOCOL.md `id`: [A-Za-z0-9._:-]{1,64}. */
static int id_ok_n(const uint8_t *p, size_t n)
{
    if (!p || n == 0 || n > OTPCA_MSTORE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

static int id_ok(const char *id)
{
    return id && id_ok_n((const uint8_t *)id, strnlen(id, OTPCA_MSTORE_ID_MAX + 1));
}

/* ----------------------------------------------------------- write scope */

static otpca_err spoiled(void)
{
    log_error("mstore: an earlier call failed half-way through this transaction; roll it back");
    return OTPCA_ERR_STATE;
}

/* The caller's transaction is usable (or there is none). */
static otpca_err w_ok(otpca_mstore *s)
{
    if (s->in_tx && (s->spoiled || sqlite3_get_autocommit(s->db)))
        return spoiled();
    return OTPCA_ERR_OK;
}

/* A write statement, once the transaction is known to be usable. */
static otpca_err w_stmt(otpca_mstore *s, enum st_id which, sqlite3_stmt **st)
{
    otpca_err ret = w_ok(s);
    return ret ? ret : st_get(s, which, st);
}

/* Scope of a per-request call: its own IMMEDIATE transaction, or the
 * caller's as it is. */
static otpca_err w_enter(otpca_mstore *s, int *own)
{
    *own = !s->in_tx;
    return *own ? st_exec(s, ST_BEGIN) : w_ok(s);
}

/* Ends the scope: keeps its work if ret is OK. partial: the call had
 * written something before it failed. */
static otpca_err w_leave(otpca_mstore *s, int own, otpca_err ret, int partial)
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

/* Scope of a batch: its own transaction, or a savepoint in the caller's,
 * so a failure half-way undoes the batch and leaves the rest usable. */
static otpca_err b_enter(otpca_mstore *s, int *own)
{
    otpca_err ret = w_enter(s, own);
    if (!ret && !*own)
        ret = st_exec(s, ST_SAVEPOINT);
    return ret;
}

static otpca_err b_leave(otpca_mstore *s, int own, otpca_err ret)
{
    if (own)
        return w_leave(s, own, ret, 1);
    if (ret) {
        if (st_exec(s, ST_ROLLBACK_TO) || st_exec(s, ST_RELEASE))
            s->spoiled = 1;
        return ret;
    }
    ret = st_exec(s, ST_RELEASE);
    if (ret)
        s->spoiled = 1;
    return ret;
}

/* ------------------------------------------------------ open and migrate */

/* fsync of a new file (fd, closed here) and of its directory entry. */
static otpca_err sync_new_file(int fd, const char *path)
{
    otpca_err ret = OTPCA_ERR_OK;
    char *dir = NULL;
    int dfd = -1;
    if (fsync(fd) != 0) {
        log_error("mstore: cannot sync %s: %s", path, strerror(errno));
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
        log_error("mstore: cannot sync the directory of %s: %s", path, strerror(errno));
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

/* Creates the file 0600 (SQLite would use 0644 & ~umask; its -wal and -shm
 * files copy the database's mode) and makes the new name durable. */
static otpca_err create_file(const char *path)
{
    struct stat sb;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        return sync_new_file(fd, path);
    if (errno != EEXIST) {
        log_error("mstore: cannot create %s: %s", path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    if (stat(path, &sb) != 0) {
        log_error("mstore: cannot open %s: %s", path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    if (!S_ISREG(sb.st_mode)) {
        log_error("mstore: %s is not a regular file", path);
        return OTPCA_ERR_CONFIG;
    }
    if (sb.st_mode & 077)
        log_warn("mstore: %s is accessible to group or others (mode %03o); chmod 600 it", path,
                 (unsigned)(sb.st_mode & 0777));
    return OTPCA_ERR_OK;
}

/* One-off query for one integer (NULL or no row reads as absent). */
static otpca_err query_int(otpca_mstore *s, const char *sql, int64_t *v, int *found)
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
static otpca_err read_version(otpca_mstore *s, unsigned *version)
{
    int64_t tables = 0, app = 0, v = 0;
    int found = 0;
    otpca_err ret = query_int(s, "SELECT count(*) FROM sqlite_master", &tables, &found);
    if (!ret)
        ret = query_int(s, "PRAGMA application_id", &app, &found);
    if (ret)
        return ret;
    if (tables == 0 && (app == 0 || app == APP_ID)) {
        *version = 0;
        return OTPCA_ERR_OK;
    }
    if (app != APP_ID) {
        log_error("mstore: %s is an SQLite database but not an otpca manager store", s->path);
        return OTPCA_ERR_CONFIG;
    }
    if ((ret = query_int(s, "SELECT value FROM meta WHERE key = 'schema_version'", &v, &found)))
        return ret;
    if (!found || v < 1 || v > UINT_MAX) {
        log_error("mstore: %s has no valid schema version", s->path);
        return OTPCA_ERR_CONFIG;
    }
    *version = (unsigned)v;
    return OTPCA_ERR_OK;
}

static otpca_err too_new(otpca_mstore *s, unsigned v)
{
    log_error("mstore: %s is at schema version %u; this build knows up to %u (upgrade otpca)", s->path, v,
              SCHEMA_VERSION);
    return OTPCA_ERR_UNSUPPORTED;
}

static otpca_err exec_sql(otpca_mstore *s, const char *sql, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return OTPCA_ERR_OK;
    log_error("mstore: %s: %s", what, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return (rc & 0xff) == SQLITE_NOTADB ? OTPCA_ERR_CONFIG : OTPCA_ERR_IO;
}

/* One step towards SCHEMA_VERSION under the write lock: the version is
 * read again there, since another handle may have migrated meanwhile. */
static otpca_err migrate_one(otpca_mstore *s, unsigned *v)
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
        log_info("mstore: %s migrated to schema version %u", s->path, *v);
    ret = OTPCA_ERR_OK;
out:
    if (ret && !sqlite3_get_autocommit(s->db))
        (void)exec_sql(s, "ROLLBACK", "roll back a migration");
    return ret;
}

/* Brings the file to SCHEMA_VERSION, one migration per transaction. */
static otpca_err migrate(otpca_mstore *s)
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

void otpca_mstore_destroy(otpca_mstore **p)
{
    if (!p || !*p)
        return;
    otpca_mstore *s = *p;
    if (s->db && !sqlite3_get_autocommit(s->db))
        (void)exec_sql(s, "ROLLBACK", "roll back at close");
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        log_error("mstore: closing %s: %s", s->path, sqlite3_errmsg(s->db));
    free(s->path);
    free(s);
    *p = NULL;
}

otpca_err otpca_mstore_open(const char *path, otpca_mstore **out)
{
    otpca_mstore *s = NULL;
    sqlite3_stmt *st = NULL;
    otpca_err ret;
    int rc;

    if (!out)
        return OTPCA_ERR_INVALID_ARG;
    *out = NULL;
    if (!path || !*path) {
        log_error("mstore: no store path given");
        return OTPCA_ERR_CONFIG;
    }
    int memory = strcmp(path, ":memory:") == 0;
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
        log_error("mstore: cannot open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
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
        log_error("mstore: %s: cannot switch to WAL mode (%s)", path, mode ? mode : "?");
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
    otpca_mstore_destroy(&s);
    return ret;
}

unsigned otpca_mstore_schema_version(otpca_mstore *s)
{
    return s->version;
}

/* ---------------------------------------------------------- transactions */

otpca_err otpca_mstore_begin(otpca_mstore *s)
{
    if (s->in_tx) {
        log_error("mstore: a transaction is already open on this handle");
        return OTPCA_ERR_STATE;
    }
    otpca_err ret = st_exec(s, ST_BEGIN);
    if (!ret) {
        s->in_tx = 1;
        s->spoiled = 0;
    }
    return ret;
}

void otpca_mstore_rollback(otpca_mstore *s)
{
    if (!sqlite3_get_autocommit(s->db))
        (void)st_exec(s, ST_ROLLBACK);
    s->in_tx = 0;
    s->spoiled = 0;
}

otpca_err otpca_mstore_commit(otpca_mstore *s)
{
    if (!s->in_tx) {
        log_error("mstore: commit without a transaction");
        return OTPCA_ERR_STATE;
    }
    if (s->spoiled || sqlite3_get_autocommit(s->db)) {
        otpca_mstore_rollback(s);
        return spoiled();
    }
    s->in_tx = 0;
    otpca_err ret = st_exec(s, ST_COMMIT);
    if (ret && !sqlite3_get_autocommit(s->db))
        (void)st_exec(s, ST_ROLLBACK);
    return ret;
}

/* ------------------------------------------------------------------ meta */

static int meta_key_ok(const char *key)
{
    size_t n = key ? strnlen(key, 65) : 0;
    return n >= 1 && n <= 64 && strcmp(key, "schema_version") != 0 && strcmp(key, "sync_seq") != 0 &&
           strcmp(key, "audit_head") != 0;
}

otpca_err otpca_mstore_meta_get(otpca_mstore *s, const char *key, uint8_t *buf, size_t cap, size_t *len)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!meta_key_ok(key) || (!buf && cap) || !len)
        return bad_arg("meta key");
    otpca_err ret = st_get(s, ST_META_GET, &st);
    if (ret)
        return ret;
    rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        if (sqlite3_column_type(st, 0) != SQLITE_BLOB || n < 0) {
            ret = unreadable("meta value");
        } else if ((size_t)n > cap) {
            *len = (size_t)n;
            ret = OTPCA_ERR_BUFFER_TOO_SMALL;
        } else if (c_blob(st, 0, buf, cap, len)) {
            ret = unreadable("meta value");
        }
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : sq_err(s, rc, "read meta");
    }
    st_done(st);
    return ret;
}

otpca_err otpca_mstore_meta_put(otpca_mstore *s, const char *key, const uint8_t *val, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!meta_key_ok(key) || !val || len == 0 || len > OTPCA_MSTORE_META_MAX)
        return bad_arg("meta value");
    otpca_err ret = w_stmt(s, ST_META_PUT, &st);
    if (ret)
        return ret;
    b_text(st, 1, key, &rc);
    b_blob(st, 2, val, len, &rc);
    return step_done(s, st, rc, "store a meta value");
}

static otpca_err sync_seq_read(otpca_mstore *s, uint64_t *seq)
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = st_get(s, ST_SYNC_GET, &st);
    if (ret)
        return ret;
    *seq = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *seq = c_u64(st, 0);
    else if (rc != SQLITE_DONE)
        ret = sq_err(s, rc, "read the sync sequence");
    st_done(st);
    return ret;
}

static otpca_err sync_seq_write(otpca_mstore *s, uint64_t seq)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_SYNC_SET, &st);
    if (ret)
        return ret;
    b_int(st, 1, seq, &rc);
    return step_done(s, st, rc, "record the sync sequence");
}

otpca_err otpca_mstore_sync_seq(otpca_mstore *s, uint64_t *seq)
{
    if (!seq)
        return bad_arg("sync sequence pointer");
    return sync_seq_read(s, seq);
}

/* ------------------------------------------------------------ trust list */

/* A DeviceEntry checked and put in the form its row takes. */
struct mrow {
    char serial[OTPCA_MSTORE_ID_MAX + 1];
    char batch[OTPCA_MSTORE_ID_MAX + 1];
    uint64_t seq, box, last_step;
    int state;
    const uint8_t *mac;
    size_t mac_len;
    uint8_t pub[OTPCA_P256_PUB_LEN];
    size_t pub_len;
    const uint8_t *seed;
    size_t seed_len;
    unsigned digits, period, algorithm;
    uint32_t failures;
    const uint8_t *cert_hash;
};

/* Checks an entry the way the decoder does (a caller may hand in a batch
 * it built itself) and the store's own limits; keys are stored
 * uncompressed, and checked to be on the curve. */
static otpca_err entry_row(const otpca_device_entry *e, uint64_t box, struct mrow *r)
{
    memset(r, 0, sizeof *r);
    if (!id_ok_n(e->serial.p, e->serial.len))
        return bad_arg("entry serial");
    memcpy(r->serial, e->serial.p, e->serial.len);
    if (e->seq > INT64_MAX || e->state < OTPCA_DEV_APPROVED || e->state > OTPCA_DEV_DELETED)
        return bad_arg("entry seq or state");
    r->seq = e->seq;
    r->state = (int)e->state;
    if (e->mac.p) {
        if (e->mac.len != 6 && e->mac.len != 8)
            return bad_arg("entry MAC");
        r->mac = e->mac.p;
        r->mac_len = e->mac.len;
    }
    if (e->pubkey.p) {
        otpca_err ret = otpca_p256_pub_normalize(e->pubkey.p, e->pubkey.len, r->pub);
        if (ret) {
            log_warn("mstore: device %s: its key is not a P-256 point", r->serial);
            return ret;
        }
        r->pub_len = sizeof r->pub;
    }
    if (e->batch.p) {
        if (!id_ok_n(e->batch.p, e->batch.len))
            return bad_arg("entry batch");
        memcpy(r->batch, e->batch.p, e->batch.len);
    }
    if (e->seed.p) {
        if (e->seed.len < OTPCA_SEEDBOX_SEALED_MIN || e->seed.len > OTPCA_SEEDBOX_SEALED_MAX)
            return bad_arg("entry sealed seed");
        if (!box)
            return bad_arg("entry: a sealed seed in a batch without seedkey");
        r->seed = e->seed.p;
        r->seed_len = e->seed.len;
        r->box = box;
    }
    r->digits = (e->present & OTPCA_MSG_BIT(7)) ? (unsigned)e->digits : 6;
    r->period = (e->present & OTPCA_MSG_BIT(8)) ? (unsigned)e->period : 30;
    r->algorithm = (e->present & OTPCA_MSG_BIT(9)) ? (unsigned)e->algorithm : 1;
    if (((e->present & OTPCA_MSG_BIT(7)) && (e->digits < 6 || e->digits > 8)) ||
        ((e->present & OTPCA_MSG_BIT(8)) && (e->period < 1 || e->period > 3600)) ||
        ((e->present & OTPCA_MSG_BIT(9)) && (e->algorithm < 1 || e->algorithm > 2)))
        return bad_arg("entry TOTP parameters");
    if (e->present & OTPCA_MSG_BIT(10)) {
        if (e->last_step > INT64_MAX)
            return bad_arg("entry last step");
        r->last_step = e->last_step;
    }
    if (e->present & OTPCA_MSG_BIT(11))
        r->failures = e->failures > UINT32_MAX ? UINT32_MAX : (uint32_t)e->failures;
    if (e->cert_hash.p) {
        if (e->cert_hash.len != OTPCA_HASH_LEN)
            return bad_arg("entry certificate hash");
        r->cert_hash = e->cert_hash.p;
    }
    return OTPCA_ERR_OK;
}

/* Parameters ?1..?15 of DEV_COLS (and ?20 of the merge). */
static void bind_row(sqlite3_stmt *st, const struct mrow *r, int *rc)
{
    b_text(st, 1, r->serial, rc);
    b_int(st, 2, r->seq, rc);
    b_int(st, 3, (uint64_t)r->state, rc);
    b_blob(st, 4, r->mac, r->mac_len, rc);
    b_blob(st, 5, r->pub, r->pub_len, rc);
    b_text(st, 6, r->batch, rc);
    b_blob(st, 7, r->seed, r->seed_len, rc);
    b_int_opt(st, 8, r->seed != NULL, r->box, rc);
    b_int(st, 9, r->digits, rc);
    b_int(st, 10, r->period, rc);
    b_int(st, 11, r->algorithm, rc);
    b_int(st, 12, r->last_step, rc);
    b_int(st, 13, r->failures, rc);
    b_blob(st, 14, r->cert_hash, r->cert_hash ? OTPCA_HASH_LEN : 0, rc);
    b_int(st, 15, 0, rc);
}

/* The entries of a batch, from the caller's array or the decoded one. */
typedef struct entry_iter {
    const otpca_sync_batch *b;
    size_t i;
    otpca_list_iter it;
} entry_iter;

static void ents_init(entry_iter *x, const otpca_sync_batch *b)
{
    x->b = b;
    x->i = 0;
    if (!b->entries.items)
        otpca_list_iter_init(&x->it, &b->entries);
}

/* OTPCA_ERR_NOT_FOUND at the end. */
static otpca_err ents_next(entry_iter *x, otpca_device_entry *e)
{
    const otpca_list *l = &x->b->entries;
    if (l->items) {
        if (x->i >= l->count)
            return OTPCA_ERR_NOT_FOUND;
        *e = ((const otpca_device_entry *)l->items)[x->i++];
        return OTPCA_ERR_OK;
    }
    if (!l->raw.p)
        return OTPCA_ERR_NOT_FOUND;
    otpca_err ret = otpca_list_next(&x->it, &otpca_desc_device_entry, e);
    if (ret && ret != OTPCA_ERR_NOT_FOUND)
        log_warn("mstore: a batch entry does not decode: %s", otpca_errname(ret));
    return ret;
}

/* The id of the batch's seed box (0 if it has no seedkey), added if new. */
static otpca_err box_of(otpca_mstore *s, const otpca_sync_batch *b, uint64_t *id)
{
    uint8_t eph[OTPCA_P256_PUB_LEN];
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    *id = 0;
    if (!b->seedkey.p)
        return OTPCA_ERR_OK;
    if (b->seedkey.len != OTPCA_P256_PUB_LEN || b->seedkey.p[0] != 0x04 ||
        otpca_p256_pub_normalize(b->seedkey.p, b->seedkey.len, eph) != OTPCA_ERR_OK) {
        log_warn("mstore: a batch's seedkey is not an uncompressed P-256 point");
        return OTPCA_ERR_BAD_KEY;
    }
    otpca_err ret = st_get(s, ST_BOX_ADD, &st);
    if (ret)
        return ret;
    b_blob(st, 1, eph, sizeof eph, &rc);
    if ((ret = step_done(s, st, rc, "add a seed box")))
        return ret;
    if ((ret = st_get(s, ST_BOX_ID, &st)))
        return ret;
    rc = SQLITE_OK;
    b_blob(st, 1, eph, sizeof eph, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = c_u64(st, 0);
    else
        ret = sq_err(s, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, "find a seed box");
    st_done(st);
    return ret;
}

/* Writes one checked entry: st is ST_DEVICE_UPSERT or ST_STAGE_PUT. */
static otpca_err row_write(otpca_mstore *s, enum st_id id, const struct mrow *r, int honour_seq)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, id, &st);
    if (ret)
        return ret;
    bind_row(st, r, &rc);
    if (id == ST_DEVICE_UPSERT)
        b_int(st, 20, honour_seq ? 1 : 0, &rc);
    return step_done(s, st, rc, "write a device");
}

static otpca_err device_delete(otpca_mstore *s, const char *serial)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_DEVICE_DELETE, &st);
    if (ret)
        return ret;
    b_text(st, 1, serial, &rc);
    return step_done(s, st, rc, "delete a device");
}

/* Applies the entries of b: a delta into devices, a snapshot chunk into
 * staging. */
static otpca_err apply_entries(otpca_mstore *s, const otpca_sync_batch *b, int snapshot)
{
    otpca_device_entry e;
    struct mrow r;
    entry_iter x;
    uint64_t box = 0;
    otpca_err ret = box_of(s, b, &box);
    if (ret)
        return ret;
    ents_init(&x, b);
    while ((ret = ents_next(&x, &e)) == OTPCA_ERR_OK) {
        if ((ret = entry_row(&e, box, &r)))
            return ret;
        if (r.seq > b->to || (!snapshot && r.seq <= b->from)) {
            log_warn("mstore: device %s: change %llu outside the batch's range", r.serial,
                     (unsigned long long)r.seq);
            return OTPCA_ERR_INVALID_ARG;
        }
        if (r.state == OTPCA_DEV_DELETED)
            ret = snapshot ? OTPCA_ERR_OK : device_delete(s, r.serial);
        else
            ret = row_write(s, snapshot ? ST_STAGE_PUT : ST_DEVICE_UPSERT, &r, 1);
        if (ret)
            return ret;
    }
    if (ret != OTPCA_ERR_NOT_FOUND)
        return ret ? ret : OTPCA_ERR_INTERNAL;
    return OTPCA_ERR_OK;
}

static otpca_err batch_ok(const otpca_sync_batch *b, uint64_t kind)
{
    if (!b || b->kind != kind || b->from > b->to || b->to > INT64_MAX ||
        (b->entries.items == NULL && b->entries.count && !b->entries.raw.p))
        return bad_arg(kind == OTPCA_SYNC_DELTA ? "delta" : "snapshot chunk");
    return OTPCA_ERR_OK;
}

otpca_err otpca_mstore_apply_delta(otpca_mstore *s, const otpca_sync_batch *b)
{
    uint64_t seq = 0;
    int own = 0;
    otpca_err ret = batch_ok(b, OTPCA_SYNC_DELTA);
    if (ret)
        return ret;
    if (s->snapshot) {
        log_error("mstore: a delta while a snapshot is being received; commit or abort it first");
        return OTPCA_ERR_STATE;
    }
    if ((ret = b_enter(s, &own)))
        return ret;
    /* Read under the write lock: another handle may have applied it. */
    ret = sync_seq_read(s, &seq);
    if (!ret && seq != b->from) {
        log_warn("mstore: a delta from %llu, the trust list is at %llu", (unsigned long long)b->from,
                 (unsigned long long)seq);
        ret = OTPCA_ERR_STATE;
    }
    if (!ret)
        ret = apply_entries(s, b, 0);
    if (!ret)
        ret = st_exec(s, ST_BOX_GC);
    if (!ret)
        ret = sync_seq_write(s, b->to);
    return b_leave(s, own, ret);
}

otpca_err otpca_mstore_snapshot_begin(otpca_mstore *s)
{
    int own = 0;
    otpca_err ret = b_enter(s, &own);
    if (ret)
        return ret;
    ret = st_exec(s, ST_STAGE_CLEAR);
    if (!ret)
        ret = st_exec(s, ST_BOX_GC);
    ret = b_leave(s, own, ret);
    if (!ret)
        s->snapshot = 1;
    return ret;
}

otpca_err otpca_mstore_snapshot_chunk(otpca_mstore *s, const otpca_sync_batch *b)
{
    int own = 0;
    otpca_err ret = batch_ok(b, OTPCA_SYNC_SNAPSHOT);
    if (ret)
        return ret;
    if (!s->snapshot) {
        log_error("mstore: a snapshot chunk without snapshot_begin");
        return OTPCA_ERR_STATE;
    }
    if ((ret = b_enter(s, &own)))
        return ret;
    ret = apply_entries(s, b, 1);
    return b_leave(s, own, ret);
}

otpca_err otpca_mstore_snapshot_commit(otpca_mstore *s, uint64_t to)
{
    sqlite3_stmt *st = NULL;
    uint64_t seq = 0;
    int own = 0, rc = SQLITE_OK;
    if (to > INT64_MAX)
        return bad_arg("snapshot sequence");
    if (!s->snapshot) {
        log_error("mstore: snapshot commit without snapshot_begin");
        return OTPCA_ERR_STATE;
    }
    otpca_err ret = b_enter(s, &own);
    if (ret)
        return ret;
    ret = sync_seq_read(s, &seq);
    if (!ret)
        ret = st_exec(s, ST_SNAP_PRUNE);
    if (!ret)
        ret = st_get(s, ST_SNAP_MERGE, &st);
    if (!ret) {
        /* A snapshot that goes back comes from another registry: its
         * sequence numbers say nothing about ours. */
        b_int(st, 20, to >= seq ? 1 : 0, &rc);
        ret = step_done(s, st, rc, "replace the trust list");
    }
    if (!ret)
        ret = st_exec(s, ST_STAGE_CLEAR);
    if (!ret)
        ret = st_exec(s, ST_BOX_GC);
    if (!ret)
        ret = sync_seq_write(s, to);
    ret = b_leave(s, own, ret);
    if (!ret) {
        s->snapshot = 0;
        if (to < seq)
            log_warn("mstore: the trust list went back from %llu to %llu (another registry?)",
                     (unsigned long long)seq, (unsigned long long)to);
    }
    return ret;
}

void otpca_mstore_snapshot_abort(otpca_mstore *s)
{
    int own = 0;
    otpca_err ret;
    s->snapshot = 0;
    if ((ret = b_enter(s, &own)))
        return;
    ret = st_exec(s, ST_STAGE_CLEAR);
    if (!ret)
        ret = st_exec(s, ST_BOX_GC);
    (void)b_leave(s, own, ret);
}

static otpca_err device_from_row(sqlite3_stmt *st, otpca_mdevice *d)
{
    int has_box = 0;
    memset(d, 0, sizeof *d);
    if (c_text(st, 0, d->serial, sizeof d->serial) || c_blob(st, 3, d->mac, sizeof d->mac, &d->mac_len) ||
        c_blob(st, 4, d->pubkey, sizeof d->pubkey, &d->pubkey_len) || c_text(st, 5, d->batch, sizeof d->batch) ||
        c_blob(st, 6, d->seed, sizeof d->seed, &d->seed_len) ||
        c_blob_opt(st, 13, d->cert_hash, sizeof d->cert_hash, &d->has_cert) ||
        c_blob_opt(st, 15, d->eph, sizeof d->eph, &has_box) || (d->seed_len != 0) != has_box)
        return unreadable("device");
    d->seq = c_u64(st, 1);
    d->state = sqlite3_column_int(st, 2);
    d->box = c_u64(st, 7);
    d->digits = (unsigned)sqlite3_column_int64(st, 8);
    d->period = (unsigned)sqlite3_column_int64(st, 9);
    d->algorithm = (unsigned)sqlite3_column_int64(st, 10);
    d->last_step = c_u64(st, 11);
    d->failures = (uint32_t)sqlite3_column_int64(st, 12);
    d->enrolled_here = sqlite3_column_int(st, 14) != 0;
    return OTPCA_ERR_OK;
}

otpca_err otpca_mstore_device_get(otpca_mstore *s, const char *serial, otpca_mdevice *d)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!id_ok(serial) || !d)
        return bad_arg("serial");
    otpca_err ret = st_get(s, ST_DEVICE_GET, &st);
    if (ret)
        return ret;
    b_text(st, 1, serial, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = device_from_row(st, d);
    else
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : sq_err(s, rc, "read a device");
    st_done(st);
    return ret;
}

otpca_err otpca_mstore_device_count(otpca_mstore *s, uint64_t counts[5])
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (!counts)
        return bad_arg("counts");
    otpca_err ret = st_get(s, ST_COUNTS, &st);
    if (ret)
        return ret;
    memset(counts, 0, 5 * sizeof counts[0]);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        uint64_t n = c_u64(st, 1);
        if (state >= OTPCA_DEV_APPROVED && state <= OTPCA_DEV_LOCKED)
            counts[state] = n;
        counts[0] += n;
    }
    if (rc != SQLITE_DONE)
        ret = sq_err(s, rc, "count devices");
    st_done(st);
    return ret;
}

otpca_err otpca_mstore_boxes(otpca_mstore *s, otpca_mstore_box_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    uint8_t eph[OTPCA_P256_PUB_LEN];
    int rc;
    if (!fn)
        return bad_arg("box callback");
    otpca_err ret = st_get(s, ST_BOX_SCAN, &st);
    if (ret)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (c_blob_exact(st, 1, eph, sizeof eph)) {
            ret = unreadable("seed box");
            break;
        }
        if (fn(c_u64(st, 0), eph, arg)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE)
        ret = sq_err(s, rc, "read seed boxes");
    st_done(st);
    return ret;
}

/* state, seq and failures of one device; NOT_FOUND if unknown. */
static otpca_err device_brief(otpca_mstore *s, const char *serial, int *state, uint64_t *seq, uint32_t *failures)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_DEVICE_BRIEF, &st);
    if (ret)
        return ret;
    b_text(st, 1, serial, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *state = sqlite3_column_int(st, 0);
        *seq = c_u64(st, 1);
        *failures = (uint32_t)sqlite3_column_int64(st, 2);
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : sq_err(s, rc, "read a device");
    }
    st_done(st);
    return ret;
}

/* After a conditional update changed nothing: NOT_FOUND or STATE. */
static otpca_err why_unchanged(otpca_mstore *s, const char *serial)
{
    int state = 0;
    uint64_t seq = 0;
    uint32_t failures = 0;
    otpca_err ret = device_brief(s, serial, &state, &seq, &failures);
    return ret ? ret : OTPCA_ERR_STATE;
}

otpca_err otpca_mstore_device_accept(otpca_mstore *s, const char *serial, uint64_t step,
                                     const uint8_t cert_hash[OTPCA_HASH_LEN])
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!id_ok(serial) || step > INT64_MAX)
        return bad_arg("accept arguments");
    otpca_err ret = w_stmt(s, ST_ACCEPT, &st);
    if (ret)
        return ret;
    b_text(st, 1, serial, &rc);
    b_int(st, 2, step, &rc);
    b_blob(st, 3, cert_hash, cert_hash ? OTPCA_HASH_LEN : 0, &rc);
    if ((ret = step_done(s, st, rc, "accept a TOTP step")))
        return ret;
    return sqlite3_changes(s->db) ? OTPCA_ERR_OK : why_unchanged(s, serial);
}

otpca_err otpca_mstore_device_fail(otpca_mstore *s, const char *serial, uint32_t lockout, uint32_t *failures,
                                   int *locked)
{
    sqlite3_stmt *st = NULL;
    int own = 0, state = 0, rc = SQLITE_OK, lock = 0;
    uint64_t seq = 0;
    uint32_t n = 0;
    if (!id_ok(serial) || lockout == 0)
        return bad_arg("failure arguments");
    otpca_err ret = w_enter(s, &own);
    if (ret)
        return ret;
    ret = device_brief(s, serial, &state, &seq, &n);
    if (!ret) {
        if (n < UINT32_MAX)
            n++;
        lock = n >= lockout && (state == OTPCA_DEV_APPROVED || state == OTPCA_DEV_ENROLLED);
        ret = st_get(s, ST_FAIL_SET, &st);
    }
    if (!ret) {
        b_text(st, 1, serial, &rc);
        b_int(st, 2, n, &rc);
        b_int(st, 3, (uint64_t)(lock ? OTPCA_DEV_LOCKED : state), &rc);
        ret = step_done(s, st, rc, "count a failure");
    }
    ret = w_leave(s, own, ret, 0);
    if (!ret) {
        if (failures)
            *failures = n;
        if (locked)
            *locked = lock;
        if (lock)
            log_warn("mstore: device %s locked after %u failures", serial, (unsigned)n);
    }
    return ret;
}

otpca_err otpca_mstore_device_enrolled(otpca_mstore *s, const char *serial, const uint8_t cert_hash[OTPCA_HASH_LEN])
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!id_ok(serial) || !cert_hash)
        return bad_arg("enrolled arguments");
    otpca_err ret = w_stmt(s, ST_ENROLLED, &st);
    if (ret)
        return ret;
    b_text(st, 1, serial, &rc);
    b_blob(st, 2, cert_hash, OTPCA_HASH_LEN, &rc);
    if ((ret = step_done(s, st, rc, "mark a device enrolled")))
        return ret;
    return sqlite3_changes(s->db) ? OTPCA_ERR_OK : why_unchanged(s, serial);
}

/* 1 if the journal holds a LOCKED record for serial the cloud has not
 * acknowledged (the cloud will lock the device when it gets it). */
static otpca_err lock_pending(otpca_mstore *s, const char *serial, int *pending)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_LOCK_PENDING, &st);
    if (ret)
        return ret;
    b_text(st, 1, serial, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *pending = rc == SQLITE_ROW;
    else
        ret = sq_err(s, rc, "read the journal");
    st_done(st);
    return ret;
}

otpca_err otpca_mstore_device_set_state(otpca_mstore *s, const char *serial, int state, uint64_t seq)
{
    sqlite3_stmt *st = NULL;
    int own = 0, cur = 0, pending = 0, unlock = 0, rc = SQLITE_OK;
    uint64_t cur_seq = 0;
    uint32_t failures = 0;
    if (!id_ok(serial) || state < OTPCA_DEV_APPROVED || state > OTPCA_DEV_LOCKED || seq > INT64_MAX)
        return bad_arg("state arguments");
    otpca_err ret = w_enter(s, &own);
    if (ret)
        return ret;
    ret = device_brief(s, serial, &cur, &cur_seq, &failures);
    if (!ret && seq < cur_seq) {
        log_info("mstore: device %s: a notice of change %llu, older than its state (%llu): ignored", serial,
                 (unsigned long long)seq, (unsigned long long)cur_seq);
        ret = OTPCA_ERR_STATE;
    }
    if (!ret) {
        unlock = cur == OTPCA_DEV_LOCKED && (state == OTPCA_DEV_APPROVED || state == OTPCA_DEV_ENROLLED);
        if (unlock)
            ret = lock_pending(s, serial, &pending);
    }
    if (!ret && pending) {
        log_info("mstore: device %s: unlock before the cloud has its lock record: stays locked", serial);
        ret = OTPCA_ERR_STATE;
    }
    if (!ret)
        ret = st_get(s, ST_SET_STATE, &st);
    if (!ret) {
        b_text(st, 1, serial, &rc);
        b_int(st, 2, (uint64_t)state, &rc);
        b_int(st, 3, seq, &rc);
        b_int(st, 4, unlock ? 1 : 0, &rc);
        ret = step_done(s, st, rc, "set a device's state");
    }
    return w_leave(s, own, ret, 0);
}

/* ---------------------------------------------------------------- nonces */

otpca_err otpca_mstore_nonce_add(otpca_mstore *s, const uint8_t nonce[OTPCA_NONCE_LEN], uint64_t time)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!nonce || time > TIME_MAX)
        return bad_arg("nonce");
    otpca_err ret = w_stmt(s, ST_NONCE_ADD, &st);
    if (ret)
        return ret;
    b_blob(st, 1, nonce, OTPCA_NONCE_LEN, &rc);
    b_int(st, 2, time, &rc);
    if ((ret = step_done(s, st, rc, "remember a nonce")))
        return ret;
    return sqlite3_changes(s->db) ? OTPCA_ERR_OK : OTPCA_ERR_EXISTS;
}

otpca_err otpca_mstore_nonce_prune(otpca_mstore *s, uint64_t before)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = w_stmt(s, ST_NONCE_PRUNE, &st);
    if (ret)
        return ret;
    b_int(st, 1, before > INT64_MAX ? INT64_MAX : before, &rc);
    return step_done(s, st, rc, "prune nonces");
}

/* --------------------------------------------------------------- records */

static otpca_err record_from_row(sqlite3_stmt *st, otpca_mrecord *r)
{
    int has_hash = 0;
    memset(r, 0, sizeof *r);
    if (c_blob_exact(st, 1, r->id, sizeof r->id) || c_blob_exact(st, 2, r->window, sizeof r->window) ||
        c_text(st, 4, r->serial, sizeof r->serial) || c_blob(st, 6, r->cert, sizeof r->cert, &r->cert_len) ||
        c_blob_opt(st, 7, r->cert_hash, sizeof r->cert_hash, &has_hash) || has_hash != (r->cert_len != 0) ||
        c_blob_opt(st, 10, r->audit, sizeof r->audit, &r->has_audit) ||
        c_blob(st, 11, r->pubkey, sizeof r->pubkey, &r->pubkey_len))
        return unreadable("record");
    r->seq = c_u64(st, 0);
    r->kind = sqlite3_column_int(st, 3);
    r->time = c_u64(st, 5);
    r->has_step = sqlite3_column_type(st, 8) != SQLITE_NULL;
    r->step = c_u64(st, 8);
    r->has_reason = sqlite3_column_type(st, 9) != SQLITE_NULL;
    r->reason = (unsigned)sqlite3_column_int(st, 9);
    r->uploaded = sqlite3_column_int(st, 12) != 0;
    return OTPCA_ERR_OK;
}

/* 1 if the stored record (row) holds exactly the content of r (pub: r's
 * key uncompressed). */
static int record_same(const otpca_mrecord *row, const otpca_mrecord *r, const uint8_t *pub, size_t pub_len)
{
    return memcmp(row->window, r->window, sizeof r->window) == 0 && row->kind == r->kind &&
           strcmp(row->serial, r->serial) == 0 && row->time == r->time && row->cert_len == r->cert_len &&
           memcmp(row->cert, r->cert, r->cert_len) == 0 && row->has_step == (r->has_step != 0) &&
           (!r->has_step || row->step == r->step) && row->has_reason == (r->has_reason != 0) &&
           (!r->has_reason || row->reason == r->reason) && row->has_audit == (r->has_audit != 0) &&
           (!r->has_audit || memcmp(row->audit, r->audit, sizeof r->audit) == 0) && row->pubkey_len == pub_len &&
           memcmp(row->pubkey, pub, pub_len) == 0;
}

static otpca_err record_one(otpca_mstore *s, const uint8_t id[OTPCA_ID16_LEN], otpca_mrecord *r)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = st_get(s, ST_RECORD_GET, &st);
    if (ret)
        return ret;
    b_blob(st, 1, id, OTPCA_ID16_LEN, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = record_from_row(st, r);
    else
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : sq_err(s, rc, "read a record");
    st_done(st);
    return ret;
}

otpca_err otpca_mstore_record_add(otpca_mstore *s, const otpca_mrecord *r, int *dup)
{
    sqlite3_stmt *st = NULL;
    otpca_mrecord *row = NULL;
    uint8_t pub[OTPCA_P256_PUB_LEN], cert_hash[OTPCA_HASH_LEN];
    size_t pub_len = 0;
    int rc = SQLITE_OK;
    otpca_err ret;
    if (dup)
        *dup = 0;
    if (!r || !id_ok(r->serial) || r->kind < OTPCA_REC_ISSUED || r->kind > OTPCA_REC_LOCKED ||
        r->time > TIME_MAX || r->cert_len > sizeof r->cert || (r->has_step && r->step > INT64_MAX) ||
        (r->has_reason && r->reason > 255) || (r->pubkey_len != 0 && r->pubkey_len != 33 && r->pubkey_len != 65))
        return bad_arg("record");
    if (r->pubkey_len) {
        if ((ret = otpca_p256_pub_normalize(r->pubkey, r->pubkey_len, pub)))
            return ret;
        pub_len = sizeof pub;
    }
    if (r->cert_len)
        otpca_sha256(r->cert, r->cert_len, cert_hash);
    if ((ret = w_stmt(s, ST_RECORD_ADD, &st)))
        return ret;
    b_blob(st, 1, r->id, sizeof r->id, &rc);
    b_blob(st, 2, r->window, sizeof r->window, &rc);
    b_int(st, 3, (uint64_t)r->kind, &rc);
    b_text(st, 4, r->serial, &rc);
    b_int(st, 5, r->time, &rc);
    b_blob(st, 6, r->cert, r->cert_len, &rc);
    b_blob(st, 7, cert_hash, r->cert_len ? sizeof cert_hash : 0, &rc);
    b_int_opt(st, 8, r->has_step, r->step, &rc);
    b_int_opt(st, 9, r->has_reason, r->reason, &rc);
    b_blob(st, 10, r->audit, r->has_audit ? sizeof r->audit : 0, &rc);
    b_blob(st, 11, pub, pub_len, &rc);
    if ((ret = step_done(s, st, rc, "journal a record")))
        return ret;
    if (sqlite3_changes(s->db))
        return OTPCA_ERR_OK;

    /* The id is journalled: a repeat, or an id reused. */
    if (!(row = malloc(sizeof *row)))
        return OTPCA_ERR_NOMEM;
    ret = record_one(s, r->id, row);
    if (ret == OTPCA_ERR_NOT_FOUND)
        ret = OTPCA_ERR_INTERNAL;
    if (!ret) {
        if (record_same(row, r, pub, pub_len)) {
            if (dup)
                *dup = 1;
        } else {
            log_warn("mstore: record id reused with different content (serial %s)", r->serial);
            ret = OTPCA_ERR_EXISTS;
        }
    }
    free(row);
    return ret;
}

otpca_err otpca_mstore_record_get(otpca_mstore *s, const uint8_t id[OTPCA_ID16_LEN], otpca_mrecord *r)
{
    if (!id || !r)
        return bad_arg("record id");
    return record_one(s, id, r);
}

otpca_err otpca_mstore_records_pending(otpca_mstore *s, size_t limit, otpca_mrecord_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    otpca_mrecord *r = NULL;
    int rc = SQLITE_OK;
    if (!fn)
        return bad_arg("record callback");
    otpca_err ret = st_get(s, ST_RECORD_PENDING, &st);
    if (ret)
        return ret;
    if (!(r = malloc(sizeof *r))) {
        st_done(st);
        return OTPCA_ERR_NOMEM;
    }
    rc = sqlite3_bind_int64(st, 1, limit > (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if ((ret = record_from_row(st, r)))
            break;
        if (fn(r, arg)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE)
        ret = sq_err(s, rc, "read pending records");
    st_done(st);
    free(r);
    return ret;
}

otpca_err otpca_mstore_records_acked(otpca_mstore *s, const uint8_t (*ids)[OTPCA_ID16_LEN], size_t n)
{
    sqlite3_stmt *st = NULL;
    int own = 0, partial = 0;
    if (!ids && n)
        return bad_arg("record ids");
    otpca_err ret = w_enter(s, &own);
    if (ret)
        return ret;
    for (size_t i = 0; i < n && !ret; i++) {
        int rc = SQLITE_OK;
        if ((ret = st_get(s, ST_RECORD_ACK, &st)))
            break;
        b_blob(st, 1, ids[i], OTPCA_ID16_LEN, &rc);
        ret = step_done(s, st, rc, "mark a record acknowledged");
        partial = 1;
    }
    return w_leave(s, own, ret, partial);
}

/* ----------------------------------------------------------------- audit */

/* The stored form of an entry, and the protocol's view of it. */
struct audit_row {
    uint64_t seq, time;
    uint8_t prev[OTPCA_HASH_LEN], hash[OTPCA_HASH_LEN], window[OTPCA_ID16_LEN];
    int has_window;
    unsigned event;
    char actor[OTPCA_MSTORE_ID_MAX + 1], subject[OTPCA_MSTORE_ID_MAX + 1];
    char detail[OTPCA_MSTORE_DETAIL_MAX + 1];
};

static otpca_err audit_hash(const struct audit_row *a, uint8_t hash[OTPCA_HASH_LEN])
{
    otpca_audit_entry e;
    memset(&e, 0, sizeof e);
    e.seq = a->seq;
    e.prev = (otpca_buf){a->prev, sizeof a->prev};
    e.time = a->time;
    e.actor = (otpca_buf){(const uint8_t *)a->actor, strlen(a->actor)};
    e.event = a->event;
    if (a->subject[0])
        e.subject = (otpca_buf){(const uint8_t *)a->subject, strlen(a->subject)};
    if (a->detail[0])
        e.detail = (otpca_buf){(const uint8_t *)a->detail, strlen(a->detail)};
    if (a->has_window)
        e.window = (otpca_buf){a->window, sizeof a->window};
    return otpca_audit_entry_hash(&e, hash);
}

/* The chain's last entry: seq and hash (0 and zeros when empty). */
static otpca_err audit_tail(otpca_mstore *s, uint64_t *seq, uint8_t hash[OTPCA_HASH_LEN])
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = st_get(s, ST_AUDIT_TAIL, &st);
    if (ret)
        return ret;
    *seq = 0;
    memset(hash, 0, OTPCA_HASH_LEN);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *seq = c_u64(st, 0);
        if (c_blob_exact(st, 1, hash, OTPCA_HASH_LEN))
            ret = unreadable("audit entry");
    } else if (rc != SQLITE_DONE) {
        ret = sq_err(s, rc, "read the audit chain");
    }
    st_done(st);
    return ret;
}

/* The entry, then the head; *partial once the entry is written. */
static otpca_err audit_insert(otpca_mstore *s, const struct audit_row *a, int *partial)
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
    b_blob(st, 9, a->window, a->has_window ? sizeof a->window : 0, &rc);
    if ((ret = step_done(s, st, rc, "append to the audit chain")))
        return ret;
    *partial = 1;
    rc = SQLITE_OK;
    if ((ret = st_get(s, ST_AUDIT_HEAD_SET, &st)))
        return ret;
    b_int(st, 1, a->seq, &rc);
    return step_done(s, st, rc, "record the audit head");
}

otpca_err otpca_mstore_audit_append(otpca_mstore *s, uint64_t time, const char *actor, unsigned event,
                                    const char *subject, const char *detail, const uint8_t window[OTPCA_ID16_LEN],
                                    uint8_t hash[OTPCA_HASH_LEN])
{
    struct audit_row a;
    int own = 0, partial = 0;
    memset(&a, 0, sizeof a);
    if (!actor || strnlen(actor, sizeof a.actor) == sizeof a.actor ||
        (subject && strnlen(subject, sizeof a.subject) == sizeof a.subject) ||
        (detail && strnlen(detail, sizeof a.detail) == sizeof a.detail))
        return bad_arg("audit entry");
    memcpy(a.actor, actor, strlen(actor));
    if (subject)
        memcpy(a.subject, subject, strlen(subject));
    if (detail)
        memcpy(a.detail, detail, strlen(detail));
    if (window) {
        memcpy(a.window, window, sizeof a.window);
        a.has_window = 1;
    }
    a.time = time;
    a.event = event;
    /* Check the entry encodes before it gets a seq: seq and prev cannot
     * make an encodable entry unencodable. */
    a.seq = 1;
    if (audit_hash(&a, a.hash) != OTPCA_ERR_OK)
        return bad_arg("audit entry");

    otpca_err ret = w_enter(s, &own);
    if (ret)
        return ret;
    ret = audit_tail(s, &a.seq, a.prev);
    if (!ret) {
        a.seq++;
        ret = audit_hash(&a, a.hash);
    }
    if (!ret)
        ret = audit_insert(s, &a, &partial);
    ret = w_leave(s, own, ret, partial);
    if (!ret && hash)
        memcpy(hash, a.hash, sizeof a.hash);
    return ret;
}

static int audit_from_row(sqlite3_stmt *st, struct audit_row *a)
{
    memset(a, 0, sizeof *a);
    if (c_blob_exact(st, 1, a->prev, sizeof a->prev) || c_blob_exact(st, 2, a->hash, sizeof a->hash) ||
        c_text(st, 4, a->actor, sizeof a->actor) || c_text(st, 6, a->subject, sizeof a->subject) ||
        c_text(st, 7, a->detail, sizeof a->detail) ||
        c_blob_opt(st, 8, a->window, sizeof a->window, &a->has_window))
        return -1;
    a->seq = c_u64(st, 0);
    a->time = c_u64(st, 3);
    a->event = (unsigned)sqlite3_column_int64(st, 5);
    return 0;
}

/* Walks the chain from entry 1: each seq the next one, each prev the
 * previous entry's recomputed hash, each hash the entry's own. The head
 * recorded with every append also catches a chain cut short at its end. */
otpca_err otpca_mstore_audit_verify(otpca_mstore *s, uint64_t *entries, uint64_t *bad_seq)
{
    sqlite3_stmt *st = NULL;
    struct audit_row a;
    uint8_t prev[OTPCA_HASH_LEN] = {0}, h[OTPCA_HASH_LEN];
    uint64_t expect = 1, head = 0, bad = 0;
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

    if ((ret = st_get(s, ST_AUDIT_SCAN, &st)))
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (audit_from_row(st, &a) || a.seq != expect) {
            bad = expect;
            break;
        }
        if (memcmp(a.prev, prev, sizeof prev) != 0 || audit_hash(&a, h) != OTPCA_ERR_OK ||
            memcmp(h, a.hash, sizeof h) != 0) {
            bad = a.seq;
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
    if (!bad && expect - 1 < head)
        bad = expect;
    if (entries)
        *entries = expect - 1;
    if (bad_seq)
        *bad_seq = bad;
    if (bad) {
        log_error("mstore: audit chain broken at entry %llu", (unsigned long long)bad);
        return OTPCA_ERR_SIGNATURE;
    }
    return OTPCA_ERR_OK;
}
