/*
 * The SQLite backend of the cloud store: one database file (created mode
 * 0600) in WAL mode with synchronous=FULL, so that a commit that returned
 * survives kill -9 and power loss; foreign keys on; a busy timeout so that
 * several handles (one per thread or process) take turns at writing. The
 * schema is built by an ordered list of migrations, each applied in one
 * transaction and recorded in the meta table; a file at a newer schema
 * than this build knows is refused. Every statement is prepared once per
 * handle and kept. That plumbing is otpca-sqlite's (common/sqlite.h, the
 * manager's store's too); the schema, the statements and what they mean
 * are this file's.
 *
 * A mutation that takes more than one statement (a device and its change
 * log row, an audit entry and the chain head) runs in its own IMMEDIATE
 * transaction, or inside the caller's. It never leaves half of itself
 * behind, in particular no gap in the change log: see
 * otpca_sqlite_write_enter().
 */
#include <stdlib.h>
#include <string.h>

#include "otpca/common/log.h"
#include "otpca/common/sqlite.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "store_internal.h"

#define CACHE_KIB 32768 /* page cache per handle, at most (grows as used) */

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
/* Version 3: which operator may open windows on which manager. */
static const char SCHEMA_V3[] =
    "CREATE TABLE operator_grants ("
    "  operator_id TEXT NOT NULL REFERENCES operators(id),"
    "  manager TEXT NOT NULL REFERENCES managers(id),"
    "  PRIMARY KEY (operator_id, manager)"
    ") WITHOUT ROWID;";

/* Version 4: a KeyUpdate's new key kept with its record, applied when the
 * CONFIRMED record for it arrives. */
static const char SCHEMA_V4[] =
    "ALTER TABLE records ADD COLUMN pubkey BLOB CHECK (pubkey IS NULL OR length(pubkey) = 65);";

/* Version 5: when and why a device was revoked (its certificates' CRL
 * entries), and each manager's latest CRL as it published it. */
static const char SCHEMA_V5[] =
    "ALTER TABLE devices ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN revoke_reason INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE crls ("
    "  manager TEXT PRIMARY KEY NOT NULL REFERENCES managers(id),"
    "  number INTEGER NOT NULL,"
    "  this_update INTEGER NOT NULL,"
    "  next_update INTEGER NOT NULL,"
    "  der BLOB NOT NULL"
    ") WITHOUT ROWID;";

static const char *const MIGRATIONS[] = {SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5};
#define SCHEMA_VERSION ((unsigned)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* ------------------------------------------------------------ statements */

#define DEV_COLS                                                                                             \
    "serial, mac, pubkey, batch, state, seed_env, digits, period, algorithm, last_step, failures, cert_hash, " \
    "manager, flagged, seq, revoked_at, revoke_reason"
#define MGR_COLS "id, curve_pub, ca_pub, ca_cert, revoked"
#define OP_COLS "id, seed_env, digits, period, algorithm, last_step"
#define LEASE_COLS \
    "window_id, manager, operator_id, not_before, not_after, max_enroll, scope, offline, open_nonce, closed_at"
#define REC_COLS "id, window_id, manager, kind, serial, time, cert, step, reason, flagged, pubkey"
#define AUDIT_COLS "seq, prev, hash, time, actor, event, subject, detail"

enum st_id {
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
    ST_GRANT_ADD,
    ST_GRANT_GET,
    ST_LEASE_ADD,
    ST_LEASE_GET,
    ST_LEASE_BY_NONCE,
    ST_LEASE_CLOSE,
    ST_META_GET,
    ST_META_ADD,
    ST_META_REPLACE,
    ST_RECORD_ADD,
    ST_RECORD_GET,
    ST_RECORD_COUNT,
    ST_RECORD_ISSUES,
    ST_AUDIT_ADD,
    ST_AUDIT_SCAN,
    ST_CRL_PUT,
    ST_CRL_GET,
    ST_COUNT
};

static const char *const SQL[ST_COUNT] = {
    [ST_CHANGE_ADD] = "INSERT INTO changes(seq, serial, state) VALUES (?1, ?2, ?3)",
    [ST_DEVICE_ADD] = "INSERT INTO devices(" DEV_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                      "?12, ?13, ?14, ?15, ?16, ?17)",
    [ST_DEVICE_UPDATE] = "UPDATE devices SET mac = ?2, pubkey = ?3, batch = ?4, state = ?5, seed_env = ?6, "
                         "digits = ?7, period = ?8, algorithm = ?9, last_step = ?10, failures = ?11, "
                         "cert_hash = ?12, manager = ?13, flagged = ?14, seq = ?15, revoked_at = ?16, "
                         "revoke_reason = ?17 WHERE serial = ?1",
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
    [ST_GRANT_ADD] = "INSERT INTO operator_grants(operator_id, manager) VALUES (?1, ?2)",
    [ST_GRANT_GET] = "SELECT 1 FROM operator_grants WHERE operator_id = ?1 AND manager = ?2",
    [ST_LEASE_ADD] = "INSERT INTO leases(" LEASE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_LEASE_GET] = "SELECT " LEASE_COLS " FROM leases WHERE window_id = ?1",
    [ST_LEASE_BY_NONCE] = "SELECT " LEASE_COLS " FROM leases WHERE open_nonce = ?1",
    [ST_LEASE_CLOSE] = "UPDATE leases SET closed_at = ?2 WHERE window_id = ?1 AND closed_at = 0",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_ADD] = "INSERT INTO meta(key, value) VALUES (?1, ?2)",
    [ST_META_REPLACE] = "UPDATE meta SET value = ?3 WHERE key = ?1 AND value = ?2",
    [ST_RECORD_ADD] = "INSERT INTO records(" REC_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
                      "ON CONFLICT(id) DO NOTHING",
    [ST_RECORD_GET] = "SELECT " REC_COLS " FROM records WHERE id = ?1",
    [ST_RECORD_COUNT] = "SELECT count(*) FROM records",
    [ST_RECORD_ISSUES] = "SELECT id, cert, pubkey FROM records WHERE serial = ?1 AND manager = ?2 AND kind IN (1, 4) "
                         "ORDER BY rowid DESC",
    [ST_AUDIT_ADD] = "INSERT INTO audit(" AUDIT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_AUDIT_SCAN] = "SELECT " AUDIT_COLS " FROM audit ORDER BY seq",
    /* Only a newer CRL replaces the one kept. */
    [ST_CRL_PUT] = "INSERT INTO crls(manager, number, this_update, next_update, der) VALUES (?1, ?2, ?3, ?4, ?5) "
                   "ON CONFLICT(manager) DO UPDATE SET number = excluded.number, this_update = excluded.this_update, "
                   "next_update = excluded.next_update, der = excluded.der WHERE excluded.number > crls.number",
    [ST_CRL_GET] = "SELECT number, this_update, next_update, der FROM crls WHERE manager = ?1",
};

static const otpca_sqlite_schema SCHEMA = {
    .tag = "store",
    .kind = "an otpca store",
    .migrations = MIGRATIONS,
    .versions = SCHEMA_VERSION,
    .sql = SQL,
    .statements = ST_COUNT,
    .cache_kib = CACHE_KIB,
    .fk_unknown = "an unknown batch, manager or operator",
};

struct otpca_store_impl {
    otpca_sqlite q;    /* in_tx: the caller's transaction (otpca_store_begin) is open */
    uint64_t next_seq; /* the change log's next number in the caller's transaction; 0: unknown */
};

/* --------------------------------------------------------------- helpers */

static otpca_err unreadable(const char *what)
{
    log_error("store: a stored %s does not fit its fields", what);
    return OTPCA_ERR_INTERNAL;
}

/* ------------------------------------------------------------------ open */

static void sq_destroy(otpca_store_impl **p)
{
    if (!p || !*p)
        return;
    otpca_sqlite_close(&(*p)->q);
    free(*p);
    *p = NULL;
}

static otpca_err sq_open(const char *path, otpca_store_impl **out)
{
    otpca_store_impl *s = calloc(1, sizeof *s);
    otpca_err ret = s ? otpca_sqlite_open(&s->q, &SCHEMA, path) : OTPCA_ERR_NOMEM;
    if (ret)
        free(s);
    else
        *out = s;
    return ret;
}

static unsigned sq_schema_version(otpca_store_impl *s)
{
    return s->q.version;
}

/* ---------------------------------------------------------- transactions */

/* The change log's counter is read once per caller's transaction. */
static otpca_err sq_begin(otpca_store_impl *s)
{
    otpca_err ret = otpca_sqlite_begin(&s->q);
    if (!ret)
        s->next_seq = 0;
    return ret;
}

static otpca_err sq_commit(otpca_store_impl *s)
{
    s->next_seq = 0;
    return otpca_sqlite_commit(&s->q);
}

static void sq_rollback(otpca_store_impl *s)
{
    s->next_seq = 0;
    otpca_sqlite_rollback(&s->q);
}

/* --------------------------------------------------------------- devices */

/* Parameters ?1..?17 of ST_DEVICE_ADD and ST_DEVICE_UPDATE. */
static void bind_device(sqlite3_stmt *st, const otpca_device *d, uint64_t seq, int *rc)
{
    otpca_sqlite_bind_text(st, 1, d->serial, rc);
    otpca_sqlite_bind_blob(st, 2, d->mac, d->mac_len, rc);
    otpca_sqlite_bind_blob_opt(st, 3, d->pubkey, d->pubkey_len, rc);
    otpca_sqlite_bind_text(st, 4, d->batch, rc);
    otpca_sqlite_bind_int(st, 5, (uint64_t)d->state, rc);
    otpca_sqlite_bind_blob(st, 6, d->seed_env, d->seed_env_len, rc);
    otpca_sqlite_bind_int(st, 7, d->digits, rc);
    otpca_sqlite_bind_int(st, 8, d->period, rc);
    otpca_sqlite_bind_int(st, 9, d->algorithm, rc);
    otpca_sqlite_bind_int(st, 10, d->last_step, rc);
    otpca_sqlite_bind_int(st, 11, d->failures, rc);
    otpca_sqlite_bind_blob_opt(st, 12, d->cert_hash, d->has_cert ? sizeof d->cert_hash : 0, rc);
    otpca_sqlite_bind_text(st, 13, d->manager, rc);
    otpca_sqlite_bind_int(st, 14, d->flagged ? 1 : 0, rc);
    otpca_sqlite_bind_int(st, 15, seq, rc);
    otpca_sqlite_bind_int(st, 16, d->revoked_at, rc);
    otpca_sqlite_bind_int(st, 17, d->revoke_reason, rc);
}

static otpca_err device_from_row(sqlite3_stmt *st, otpca_device *d)
{
    memset(d, 0, sizeof *d);
    if (otpca_sqlite_col_text(st, 0, d->serial, sizeof d->serial) ||
        otpca_sqlite_col_blob(st, 1, d->mac, sizeof d->mac, &d->mac_len) ||
        otpca_sqlite_col_blob(st, 2, d->pubkey, sizeof d->pubkey, &d->pubkey_len) ||
        otpca_sqlite_col_text(st, 3, d->batch, sizeof d->batch) ||
        otpca_sqlite_col_blob(st, 5, d->seed_env, sizeof d->seed_env, &d->seed_env_len) ||
        otpca_sqlite_col_text(st, 12, d->manager, sizeof d->manager))
        return unreadable("device");
    d->state = sqlite3_column_int(st, 4);
    d->digits = (unsigned)sqlite3_column_int64(st, 6);
    d->period = (unsigned)sqlite3_column_int64(st, 7);
    d->algorithm = (unsigned)sqlite3_column_int64(st, 8);
    d->last_step = otpca_sqlite_col_u64(st, 9);
    d->failures = (uint32_t)sqlite3_column_int64(st, 10);
    if (sqlite3_column_type(st, 11) != SQLITE_NULL) {
        if (otpca_sqlite_col_blob_exact(st, 11, d->cert_hash, sizeof d->cert_hash))
            return unreadable("device");
        d->has_cert = 1;
    }
    d->flagged = sqlite3_column_int(st, 13) != 0;
    d->seq = otpca_sqlite_col_u64(st, 14);
    d->revoked_at = otpca_sqlite_col_u64(st, 15);
    d->revoke_reason = (unsigned)sqlite3_column_int(st, 16);
    return OTPCA_ERR_OK;
}

/* The change log's next number: AUTOINCREMENT's counter (never reused,
 * even once the oldest rows are pruned) plus one. Read once per caller's
 * transaction, which holds the write lock, and counted on from there. */
static otpca_err next_seq(otpca_store_impl *s, uint64_t *seq)
{
    if (s->q.in_tx && s->next_seq) {
        *seq = s->next_seq;
        return OTPCA_ERR_OK;
    }
    otpca_err ret = otpca_sqlite_query_u64(&s->q, ST_NEXT_SEQ, seq, "read the change log's counter");
    if (!ret && s->q.in_tx)
        s->next_seq = *seq;
    return ret;
}

/* Writes the device row (insert or update) numbered seq: the one statement
 * of a device call that can fail on its input. */
static otpca_err device_write(otpca_store_impl *s, enum st_id id, const otpca_device *d, uint64_t seq)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, id, &st);
    if (ret)
        return ret;
    bind_device(st, d, seq, &rc);
    ret = otpca_sqlite_step_done(&s->q, st, rc, id == ST_DEVICE_ADD ? "add a device" : "update a device");
    if (!ret && id == ST_DEVICE_UPDATE && sqlite3_changes(s->q.db) == 0)
        ret = OTPCA_ERR_NOT_FOUND;
    return ret;
}

/* The change-log row for d's new state, numbered seq. */
static otpca_err change_log(otpca_store_impl *s, const otpca_device *d, uint64_t seq)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_CHANGE_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_int(st, 1, seq, &rc);
    otpca_sqlite_bind_text(st, 2, d->serial, &rc);
    otpca_sqlite_bind_int(st, 3, (uint64_t)d->state, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "append to the change log");
}

/* Add and update: the device row takes the next number, then the change
 * log records it (which moves AUTOINCREMENT's counter on). */
static otpca_err device_put(otpca_store_impl *s, enum st_id id, otpca_device *d)
{
    uint64_t seq = 0;
    int own = 0, partial = 0;
    otpca_err ret = otpca_sqlite_write_enter(&s->q, &own);
    if (ret)
        return ret;
    ret = next_seq(s, &seq);
    if (!ret)
        ret = device_write(s, id, d, seq);
    if (!ret) {
        partial = 1;
        ret = change_log(s, d, seq);
    }
    if (!ret && s->q.in_tx)
        s->next_seq = seq + 1;
    ret = otpca_sqlite_write_leave(&s->q, own, ret, partial);
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
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_DEVICE_GET, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, serial, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = device_from_row(st, d);
    else if (rc == SQLITE_DONE)
        ret = OTPCA_ERR_NOT_FOUND;
    else
        ret = otpca_sqlite_err(&s->q, rc, "read a device");
    otpca_sqlite_reset(st);
    return ret;
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
        ret = otpca_sqlite_err(&s->q, rc, "read devices");
    otpca_sqlite_reset(st);
    return ret;
}

static otpca_err sq_device_scan(otpca_store_impl *s, const char *after, size_t limit, otpca_device_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_DEVICE_SCAN, &st);
    if (ret)
        return ret;
    /* Not b_text: "" must stay a string here ('' sorts before every serial). */
    rc = sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, otpca_sqlite_limit(limit));
    return device_walk(s, st, rc, fn, arg, NULL);
}

static otpca_err sq_changes(otpca_store_impl *s, uint64_t since, size_t limit, otpca_device_fn fn, void *arg,
                            uint64_t *next)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    uint64_t last = since;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_CHANGES, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_int(st, 1, since, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, otpca_sqlite_limit(limit));
    ret = device_walk(s, st, rc, fn, arg, &last);
    if (!ret)
        *next = last;
    return ret;
}

static otpca_err sq_seq(otpca_store_impl *s, uint64_t *head, uint64_t *oldest)
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_SEQ, &st);
    if (ret)
        return ret;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        /* An empty log: both NULL, read as 0. */
        *head = otpca_sqlite_col_u64(st, 0);
        *oldest = otpca_sqlite_col_u64(st, 1);
    } else {
        ret = otpca_sqlite_err(&s->q, rc, "read the change log");
    }
    otpca_sqlite_reset(st);
    return ret;
}

static otpca_err sq_device_counts(otpca_store_impl *s, uint64_t counts[7])
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_COUNTS, &st);
    int rc;
    if (ret)
        return ret;
    memset(counts, 0, 7 * sizeof counts[0]);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        uint64_t n = otpca_sqlite_col_u64(st, 1);
        if (state >= 1 && state <= 6)
            counts[state] = n;
        counts[0] += n;
    }
    if (rc != SQLITE_DONE)
        ret = otpca_sqlite_err(&s->q, rc, "count devices");
    otpca_sqlite_reset(st);
    return ret;
}

/* ---------------------------------------------- batches, managers, operators */

static otpca_err sq_batch_add(otpca_store_impl *s, const otpca_batch *b)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_BATCH_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, b->id, &rc);
    otpca_sqlite_bind_blob(st, 2, b->product_pub, sizeof b->product_pub, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "add a batch");
}

static otpca_err sq_batch_get(otpca_store_impl *s, const char *id, otpca_batch *b)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_BATCH_GET, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, id, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(b, 0, sizeof *b);
        ret = (otpca_sqlite_col_text(st, 0, b->id, sizeof b->id) ||
               otpca_sqlite_col_blob_exact(st, 1, b->product_pub, sizeof b->product_pub))
                  ? unreadable("batch")
                  : OTPCA_ERR_OK;
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : otpca_sqlite_err(&s->q, rc, "read a batch");
    }
    otpca_sqlite_reset(st);
    return ret;
}

static otpca_err sq_manager_add(otpca_store_impl *s, const otpca_manager *m)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_MANAGER_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, m->id, &rc);
    otpca_sqlite_bind_blob(st, 2, m->curve_pub, sizeof m->curve_pub, &rc);
    otpca_sqlite_bind_blob(st, 3, m->ca_pub, sizeof m->ca_pub, &rc);
    otpca_sqlite_bind_blob(st, 4, m->ca_cert, m->ca_cert_len, &rc);
    otpca_sqlite_bind_int(st, 5, m->revoked ? 1 : 0, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "add a manager");
}

static otpca_err manager_from_row(sqlite3_stmt *st, otpca_manager *m)
{
    memset(m, 0, sizeof *m);
    if (otpca_sqlite_col_text(st, 0, m->id, sizeof m->id) ||
        otpca_sqlite_col_blob_exact(st, 1, m->curve_pub, sizeof m->curve_pub) ||
        otpca_sqlite_col_blob_exact(st, 2, m->ca_pub, sizeof m->ca_pub) ||
        otpca_sqlite_col_blob(st, 3, m->ca_cert, sizeof m->ca_cert, &m->ca_cert_len))
        return unreadable("manager");
    m->revoked = sqlite3_column_int(st, 4) != 0;
    return OTPCA_ERR_OK;
}

static otpca_err manager_one(otpca_store_impl *s, enum st_id id, const void *key, size_t key_len,
                             otpca_manager *m)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, id, &st);
    if (ret)
        return ret;
    if (key_len)
        otpca_sqlite_bind_blob(st, 1, key, key_len, &rc);
    else
        otpca_sqlite_bind_text(st, 1, key, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = manager_from_row(st, m);
    else
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : otpca_sqlite_err(&s->q, rc, "read a manager");
    otpca_sqlite_reset(st);
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
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_MANAGER_REVOKE, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, id, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "revoke a manager")))
        return ret;
    return sqlite3_changes(s->q.db) ? OTPCA_ERR_OK : OTPCA_ERR_NOT_FOUND;
}

static otpca_err sq_manager_scan(otpca_store_impl *s, otpca_manager_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    otpca_manager m;
    int rc;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_MANAGER_SCAN, &st);
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
        ret = otpca_sqlite_err(&s->q, rc, "read managers");
    otpca_sqlite_reset(st);
    return ret;
}

static otpca_err sq_operator_add(otpca_store_impl *s, const otpca_operator *o)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_OPERATOR_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, o->id, &rc);
    otpca_sqlite_bind_blob(st, 2, o->seed_env, o->seed_env_len, &rc);
    otpca_sqlite_bind_int(st, 3, o->digits, &rc);
    otpca_sqlite_bind_int(st, 4, o->period, &rc);
    otpca_sqlite_bind_int(st, 5, o->algorithm, &rc);
    otpca_sqlite_bind_int(st, 6, o->last_step, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "add an operator");
}

static otpca_err sq_operator_get(otpca_store_impl *s, const char *id, otpca_operator *o)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_OPERATOR_GET, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, id, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(o, 0, sizeof *o);
        if (otpca_sqlite_col_text(st, 0, o->id, sizeof o->id) ||
            otpca_sqlite_col_blob(st, 1, o->seed_env, sizeof o->seed_env, &o->seed_env_len)) {
            ret = unreadable("operator");
        } else {
            o->digits = (unsigned)sqlite3_column_int64(st, 2);
            o->period = (unsigned)sqlite3_column_int64(st, 3);
            o->algorithm = (unsigned)sqlite3_column_int64(st, 4);
            o->last_step = otpca_sqlite_col_u64(st, 5);
        }
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : otpca_sqlite_err(&s->q, rc, "read an operator");
    }
    otpca_sqlite_reset(st);
    return ret;
}

/* One conditional UPDATE: two windows opened with the same code race on
 * the row, and only one of them moves last_step forward. */
static otpca_err sq_operator_accept_step(otpca_store_impl *s, const char *id, uint64_t step)
{
    sqlite3_stmt *st = NULL;
    otpca_operator o;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_OPERATOR_STEP, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, id, &rc);
    otpca_sqlite_bind_int(st, 2, step, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "accept an operator's step")))
        return ret;
    if (sqlite3_changes(s->q.db))
        return OTPCA_ERR_OK;
    /* Nothing changed: unknown operator, or the step is not newer. */
    ret = sq_operator_get(s, id, &o);
    return ret ? ret : OTPCA_ERR_STATE;
}

static otpca_err sq_operator_grant(otpca_store_impl *s, const char *op, const char *manager)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_GRANT_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, op, &rc);
    otpca_sqlite_bind_text(st, 2, manager, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "grant an operator a manager");
}

static otpca_err sq_operator_may(otpca_store_impl *s, const char *op, const char *manager)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_GRANT_GET, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, op, &rc);
    otpca_sqlite_bind_text(st, 2, manager, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    ret = rc == SQLITE_ROW    ? OTPCA_ERR_OK
          : rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND
                              : otpca_sqlite_err(&s->q, rc, "read an operator's grants");
    otpca_sqlite_reset(st);
    return ret;
}

/* ---------------------------------------------------------------- leases */

static otpca_err sq_lease_add(otpca_store_impl *s, const otpca_lease *l)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_LEASE_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_blob(st, 1, l->window, sizeof l->window, &rc);
    otpca_sqlite_bind_text(st, 2, l->manager, &rc);
    otpca_sqlite_bind_text(st, 3, l->operator_, &rc);
    otpca_sqlite_bind_int(st, 4, l->not_before, &rc);
    otpca_sqlite_bind_int(st, 5, l->not_after, &rc);
    otpca_sqlite_bind_int(st, 6, l->max_enroll, &rc);
    /* scope "" means everything: keep it as an empty string, not NULL. */
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 7, l->scope, -1, SQLITE_STATIC);
    otpca_sqlite_bind_int(st, 8, l->offline ? 1 : 0, &rc);
    otpca_sqlite_bind_blob_opt(st, 9, l->nonce, l->has_nonce ? sizeof l->nonce : 0, &rc);
    otpca_sqlite_bind_int(st, 10, l->closed_at, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "add a lease");
}

static otpca_err lease_one(otpca_store_impl *s, enum st_id id, const uint8_t key[16], otpca_lease *l)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, id, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_blob(st, 1, key, 16, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(l, 0, sizeof *l);
        size_t nonce_len = 0;
        if (otpca_sqlite_col_blob_exact(st, 0, l->window, sizeof l->window) ||
            otpca_sqlite_col_text(st, 1, l->manager, sizeof l->manager) ||
            otpca_sqlite_col_text(st, 2, l->operator_, sizeof l->operator_) ||
            otpca_sqlite_col_text(st, 6, l->scope, sizeof l->scope) ||
            otpca_sqlite_col_blob(st, 8, l->nonce, sizeof l->nonce, &nonce_len) ||
            (nonce_len && nonce_len != sizeof l->nonce)) {
            ret = unreadable("lease");
        } else {
            l->not_before = otpca_sqlite_col_u64(st, 3);
            l->not_after = otpca_sqlite_col_u64(st, 4);
            l->max_enroll = otpca_sqlite_col_u64(st, 5);
            l->offline = sqlite3_column_int(st, 7) != 0;
            l->has_nonce = nonce_len != 0;
            l->closed_at = otpca_sqlite_col_u64(st, 9);
        }
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : otpca_sqlite_err(&s->q, rc, "read a lease");
    }
    otpca_sqlite_reset(st);
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
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_LEASE_CLOSE, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_blob(st, 1, window, 16, &rc);
    otpca_sqlite_bind_int(st, 2, when, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "close a lease")))
        return ret;
    if (sqlite3_changes(s->q.db))
        return OTPCA_ERR_OK;
    ret = sq_lease_get(s, window, &l);
    return ret ? ret : OTPCA_ERR_STATE;
}

/* ------------------------------------------------------------------ meta */

static otpca_err sq_meta_get(otpca_store_impl *s, const char *key, uint8_t *buf, size_t cap, size_t *len)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_META_GET, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, key, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_BLOB || otpca_sqlite_col_blob(st, 0, buf, cap, len))
            ret = unreadable("meta value");
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : otpca_sqlite_err(&s->q, rc, "read meta");
    }
    otpca_sqlite_reset(st);
    return ret;
}

static otpca_err sq_meta_add(otpca_store_impl *s, const char *key, const uint8_t *val, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_META_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, key, &rc);
    otpca_sqlite_bind_blob(st, 2, val, len, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "add a meta value");
}

static otpca_err sq_meta_replace(otpca_store_impl *s, const char *key, const uint8_t *old, size_t old_len,
                                 const uint8_t *val, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_META_REPLACE, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, key, &rc);
    otpca_sqlite_bind_blob(st, 2, old, old_len, &rc);
    otpca_sqlite_bind_blob(st, 3, val, len, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "replace a meta value")))
        return ret;
    return sqlite3_changes(s->q.db) ? OTPCA_ERR_OK : OTPCA_ERR_STATE;
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
    if (otpca_sqlite_col_blob_exact(st, 1, window, sizeof window) || memcmp(window, r->window, sizeof window) != 0)
        return 0;
    if (otpca_sqlite_col_text(st, 2, text, sizeof text) || strcmp(text, r->manager) != 0)
        return 0;
    if (otpca_sqlite_col_text(st, 4, text, sizeof text) || strcmp(text, r->serial) != 0)
        return 0;
    if (sqlite3_column_int64(st, 3) != r->kind || otpca_sqlite_col_u64(st, 5) != r->time ||
        otpca_sqlite_col_u64(st, 7) != r->step || sqlite3_column_int64(st, 8) != r->reason)
        return 0;
    if (cert_len != (r->cert ? r->cert_len : 0))
        return 0;
    const void *pub = sqlite3_column_blob(st, 10);
    if ((pub != NULL) != (r->pubkey != NULL) || (pub && (sqlite3_column_bytes(st, 10) != 65 || memcmp(pub, r->pubkey, 65))))
        return 0;
    return cert_len == 0 || memcmp(cert, r->cert, cert_len) == 0;
}

/* Insert-or-nothing first (one statement for a new record, the common
 * case); only a repeat reads the stored row back to compare. */
static otpca_err sq_record_put(otpca_store_impl *s, otpca_stored_record *r, int *dup)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_RECORD_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_blob(st, 1, r->id, sizeof r->id, &rc);
    otpca_sqlite_bind_blob(st, 2, r->window, sizeof r->window, &rc);
    otpca_sqlite_bind_text(st, 3, r->manager, &rc);
    otpca_sqlite_bind_int(st, 4, (uint64_t)r->kind, &rc);
    otpca_sqlite_bind_text(st, 5, r->serial, &rc);
    otpca_sqlite_bind_int(st, 6, r->time, &rc);
    otpca_sqlite_bind_blob_opt(st, 7, r->cert, r->cert_len, &rc);
    otpca_sqlite_bind_int(st, 8, r->step, &rc);
    otpca_sqlite_bind_int(st, 9, (uint64_t)r->reason, &rc);
    otpca_sqlite_bind_int(st, 10, r->flagged ? 1 : 0, &rc);
    otpca_sqlite_bind_blob_opt(st, 11, r->pubkey, r->pubkey ? 65 : 0, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "store a record")))
        return ret;
    if (sqlite3_changes(s->q.db)) {
        *dup = 0;
        return OTPCA_ERR_OK;
    }

    rc = SQLITE_OK;
    if ((ret = otpca_sqlite_stmt(&s->q, ST_RECORD_GET, &st)))
        return ret;
    otpca_sqlite_bind_blob(st, 1, r->id, sizeof r->id, &rc);
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
        ret = otpca_sqlite_err(&s->q, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, "read a record back");
    }
    otpca_sqlite_reset(st);
    return ret;
}

static otpca_err sq_record_count(otpca_store_impl *s, uint64_t *n)
{
    return otpca_sqlite_query_u64(&s->q, ST_RECORD_COUNT, n, "count records");
}

/* A device has few issuances: each one's confirmation id is computed and
 * compared (the id cannot be turned back into the issuance's). */
static otpca_err sq_record_confirmed(otpca_store_impl *s, const char *serial, const char *manager,
                                     const uint8_t confirm_id[16], uint8_t cert_hash[32], uint8_t pubkey[65],
                                     int *has_pubkey)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_RECORD_ISSUES, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, serial, &rc);
    otpca_sqlite_bind_text(st, 2, manager, &rc);
    ret = OTPCA_ERR_NOT_FOUND;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint8_t id[16], want[16];
        rc = SQLITE_OK;
        if (otpca_sqlite_col_blob_exact(st, 0, id, sizeof id))
            continue;
        otpca_record_confirm_id(id, want);
        if (memcmp(want, confirm_id, 16) != 0)
            continue;
        const void *cert = sqlite3_column_blob(st, 1);
        int cert_len = sqlite3_column_bytes(st, 1);
        if (!cert || cert_len <= 0)
            break; /* an issuance without a certificate confirms nothing */
        otpca_sha256(cert, (size_t)cert_len, cert_hash);
        *has_pubkey = otpca_sqlite_col_blob_exact(st, 2, pubkey, 65) == 0;
        ret = OTPCA_ERR_OK;
        rc = SQLITE_DONE;
        break;
    }
    if (ret == OTPCA_ERR_NOT_FOUND && rc != SQLITE_DONE && rc != SQLITE_OK)
        ret = otpca_sqlite_err(&s->q, rc, "read a device's issuances");
    otpca_sqlite_reset(st);
    return ret;
}

/* ----------------------------------------------------------------- audit */

/* The entry, then the head; *partial once the entry is written. */
static otpca_err audit_insert(otpca_store_impl *s, const otpca_audit *a, int *partial)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_AUDIT_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_int(st, 1, a->seq, &rc);
    otpca_sqlite_bind_blob(st, 2, a->prev, sizeof a->prev, &rc);
    otpca_sqlite_bind_blob(st, 3, a->hash, sizeof a->hash, &rc);
    otpca_sqlite_bind_int(st, 4, a->time, &rc);
    otpca_sqlite_bind_text(st, 5, a->actor, &rc);
    otpca_sqlite_bind_int(st, 6, a->event, &rc);
    otpca_sqlite_bind_text(st, 7, a->subject, &rc);
    otpca_sqlite_bind_text(st, 8, a->detail, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "append to the audit chain")))
        return ret;
    *partial = 1;
    return otpca_sqlite_chain_head_set(&s->q, a->seq);
}

static otpca_err sq_audit_append(otpca_store_impl *s, otpca_audit *a)
{
    otpca_audit e = *a;
    uint64_t last = 0;
    int own = 0, partial = 0;
    otpca_err ret = otpca_sqlite_write_enter(&s->q, &own);
    if (ret)
        return ret;
    ret = otpca_sqlite_chain_tail(&s->q, &last, e.prev);
    if (!ret) {
        e.seq = last + 1;
        ret = otpca_store_audit_hash(&e, e.hash);
    }
    if (!ret)
        ret = audit_insert(s, &e, &partial);
    ret = otpca_sqlite_write_leave(&s->q, own, ret, partial);
    if (!ret) {
        a->seq = e.seq;
        memcpy(a->prev, e.prev, sizeof a->prev);
        memcpy(a->hash, e.hash, sizeof a->hash);
    }
    return ret;
}

/* A row of the chain (AUDIT_COLS) for otpca_sqlite_chain_verify. */
static int audit_link(sqlite3_stmt *st, otpca_sqlite_link *l)
{
    otpca_audit a;
    memset(&a, 0, sizeof a);
    if (otpca_sqlite_col_blob_exact(st, 1, a.prev, sizeof a.prev) ||
        otpca_sqlite_col_blob_exact(st, 2, a.hash, sizeof a.hash) ||
        otpca_sqlite_col_text(st, 4, a.actor, sizeof a.actor) ||
        otpca_sqlite_col_text(st, 6, a.subject, sizeof a.subject) ||
        otpca_sqlite_col_text(st, 7, a.detail, sizeof a.detail))
        return -1;
    a.seq = otpca_sqlite_col_u64(st, 0);
    a.time = otpca_sqlite_col_u64(st, 3);
    a.event = (unsigned)sqlite3_column_int64(st, 5);
    l->seq = a.seq;
    memcpy(l->prev, a.prev, sizeof l->prev);
    memcpy(l->hash, a.hash, sizeof l->hash);
    return otpca_store_audit_hash(&a, l->recomputed) ? 1 : 0;
}

static otpca_err sq_audit_verify(otpca_store_impl *s, uint64_t *entries, uint64_t *bad_seq)
{
    return otpca_sqlite_chain_verify(&s->q, ST_AUDIT_SCAN, audit_link, entries, bad_seq);
}

/* ------------------------------------------------------------------ CRLs */

static otpca_err sq_crl_put(otpca_store_impl *s, const char *manager, uint64_t number, uint64_t this_update,
                            uint64_t next_update, const uint8_t *der, size_t len, int *stored)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_CRL_PUT, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, manager, &rc);
    otpca_sqlite_bind_int(st, 2, number, &rc);
    otpca_sqlite_bind_int(st, 3, this_update, &rc);
    otpca_sqlite_bind_int(st, 4, next_update, &rc);
    otpca_sqlite_bind_blob(st, 5, der, len, &rc);
    ret = otpca_sqlite_step_done(&s->q, st, rc, "keep a CRL");
    if (!ret)
        *stored = sqlite3_changes(s->q.db) > 0;
    return ret;
}

static otpca_err sq_crl_get(otpca_store_impl *s, const char *manager, uint64_t *number, uint64_t *this_update,
                            uint64_t *next_update, uint8_t *der, size_t cap, size_t *len)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_CRL_GET, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, manager, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *number = otpca_sqlite_col_u64(st, 0);
        *this_update = otpca_sqlite_col_u64(st, 1);
        *next_update = otpca_sqlite_col_u64(st, 2);
        size_t n = (size_t)sqlite3_column_bytes(st, 3);
        ret = n > cap ? OTPCA_ERR_BUFFER_TOO_SMALL
              : otpca_sqlite_col_blob(st, 3, der, cap, len) ? unreadable("CRL")
                                                             : OTPCA_ERR_OK;
    } else if (rc == SQLITE_DONE) {
        ret = OTPCA_ERR_NOT_FOUND;
    } else {
        ret = otpca_sqlite_err(&s->q, rc, "read a CRL");
    }
    otpca_sqlite_reset(st);
    return ret;
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
    .operator_grant = sq_operator_grant,
    .operator_may = sq_operator_may,
    .lease_add = sq_lease_add,
    .lease_get = sq_lease_get,
    .lease_by_nonce = sq_lease_by_nonce,
    .lease_close = sq_lease_close,
    .meta_get = sq_meta_get,
    .meta_add = sq_meta_add,
    .meta_replace = sq_meta_replace,
    .record_put = sq_record_put,
    .record_count = sq_record_count,
    .crl_put = sq_crl_put,
    .crl_get = sq_crl_get,
    .record_confirmed = sq_record_confirmed,
    .audit_append = sq_audit_append,
    .audit_verify = sq_audit_verify,
};
