/*
 * The manager's store on SQLite: one file (created mode 0600) in WAL mode
 * with synchronous=FULL, so that a commit that returned survives kill -9
 * and power loss; foreign keys on; a busy timeout so that several handles
 * (one per thread) take turns at writing. The schema is built by an
 * ordered list of migrations, each applied in one transaction and recorded
 * in the meta table; the file carries its own application id, so neither
 * a newer schema nor another program's database (the cloud's store
 * included) is taken for ours. Every statement is prepared once per
 * handle and kept. That plumbing is otpca-sqlite's (common/sqlite.h, the
 * cloud's store's too); the schema, the statements and what they mean are
 * this file's.
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

#include <stdlib.h>
#include <string.h>

#include "otpca/common/log.h"
#include "otpca/common/sqlite.h"
#include "otpca/token/crl.h"

#define CACHE_KIB 16384 /* page cache per handle, at most */
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

/* Version 2: unclaimed batch devices (below), and revocations for the
 * manager's CRL (PROTOCOL.md 7.7). A
 * device carries when and why the cloud revoked it; crl_entries lists
 * every journaled certificate (records of kind 1 and 4) of a revoked
 * device, filled by triggers whichever comes first, the revocation or the
 * record (an issuance in flight when a Notice arrives), and never emptied
 * by a snapshot or a narrower scope: what this manager issued stays
 * revoked in its CRL until the certificate expires. A revocation without
 * a time (an older cloud) takes the moment the manager learned of it. */
#define CRL_TIME(t) "CASE WHEN " t " > 0 THEN " t " ELSE unixepoch() END"
#define CRL_OF_DEVICE                                                                                    \
    " BEGIN INSERT OR IGNORE INTO crl_entries(record, revoked_at, reason)"                              \
    " SELECT r.seq, " CRL_TIME("NEW.revoked_at") ", NEW.revoke_reason FROM records r"                  \
    " WHERE r.serial = NEW.serial AND r.kind IN (1, 4) AND r.cert IS NOT NULL; END;"
static const char SCHEMA_V2[] =
    "ALTER TABLE devices ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN revoke_reason INTEGER NOT NULL DEFAULT 0 "
    "  CHECK (revoke_reason BETWEEN 0 AND 10 AND revoke_reason NOT IN (7, 8));"
    "ALTER TABLE staging ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE staging ADD COLUMN revoke_reason INTEGER NOT NULL DEFAULT 0;"
    /* and whether its key is its batch's product key (PROTOCOL.md 6.7) */
    "ALTER TABLE devices ADD COLUMN unclaimed INTEGER NOT NULL DEFAULT 0 CHECK (unclaimed IN (0, 1));"
    "ALTER TABLE staging ADD COLUMN unclaimed INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE crl_entries ("
    "  record INTEGER PRIMARY KEY REFERENCES records(seq),"
    "  revoked_at INTEGER NOT NULL,"
    "  reason INTEGER NOT NULL"
    ");"
    "CREATE TRIGGER crl_device_added AFTER INSERT ON devices WHEN NEW.state = 3" CRL_OF_DEVICE
    "CREATE TRIGGER crl_device_revoked AFTER UPDATE OF state ON devices WHEN NEW.state = 3 AND OLD.state <> 3"
    CRL_OF_DEVICE
    "CREATE TRIGGER crl_record_added AFTER INSERT ON records WHEN NEW.kind IN (1, 4) AND NEW.cert IS NOT NULL"
    " BEGIN INSERT OR IGNORE INTO crl_entries(record, revoked_at, reason)"
    " SELECT NEW.seq, " CRL_TIME("d.revoked_at") ", d.revoke_reason FROM devices d"
    " WHERE d.serial = NEW.serial AND d.state = 3; END;"
    "INSERT OR IGNORE INTO crl_entries(record, revoked_at, reason) SELECT r.seq, unixepoch(), 0 FROM records r"
    " JOIN devices d ON d.serial = r.serial WHERE d.state = 3 AND r.kind IN (1, 4) AND r.cert IS NOT NULL;";

/* Version 3: a device written revoked gets its CRL entries from the
 * statements that write devices (ST_CRL_DEVICE, ST_CRL_STAGED), no longer
 * from an AFTER INSERT trigger: for every device inserted, revoked or not,
 * that trigger made SQLite run a sub-program, and a multi-row INSERT go
 * through a temporary table (measured: a fifth of the time a first
 * snapshot of 100,000 devices spent in SQLite). The UPDATE trigger stays. */
static const char SCHEMA_V3[] = "DROP TRIGGER crl_device_added;";

/* Migration i takes the schema from version i to i + 1. Append only. */
static const char *const MIGRATIONS[] = {SCHEMA_V1, SCHEMA_V2, SCHEMA_V3};
#define SCHEMA_VERSION ((unsigned)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* ------------------------------------------------------------ statements */

#define DEV_COLS                                                                                          \
    "serial, seq, state, mac, pubkey, batch, seed, box, digits, period, algorithm, last_step, failures, " \
    "cert_hash, enrolled_here, revoked_at, revoke_reason, unclaimed"
#define DEV_VALUES "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18"
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
    M_CLOUD("algorithm") M_CLOUD("revoked_at") M_CLOUD("revoke_reason") M_CLOUD("unclaimed")                                 \
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

/* A first snapshot's devices (direct, see otpca_mstore_snapshot_begin) go
 * into the empty devices table DIRECT_ROWS at a time, by one multi-row
 * INSERT: SQLite's cost per statement (its statement journal, step and
 * reset) is paid once per DIRECT_ROWS devices. Measured, applying 100,000
 * devices: 0.54-0.84 s of CPU instead of 0.80-1.21 s (32 rows; 128 were
 * no better). With the table empty at begin, INSERT OR REPLACE does what
 * staging and merging would: of a serial sent twice in one snapshot the
 * last one holds. */
#define DIRECT_ROWS 32
#define DEV_Q "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define DEV_Q2(r) r ", " r
#define DEV_Q_DIRECT DEV_Q2(DEV_Q2(DEV_Q2(DEV_Q2(DEV_Q2(DEV_Q))))) /* DIRECT_ROWS of them */
#define DEV_NCOLS 18

enum st_id {
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
    ST_DIRECT_PUT,
    ST_DIRECT_PUT1,
    ST_SNAP_PRUNE,
    ST_SNAP_MERGE,
    ST_ACCEPT,
    ST_FAIL_SET,
    ST_ENROLLED,
    ST_SET_STATE,
    ST_LOCK_PENDING,
    ST_NONCE_ADD,
    ST_NONCE_PRUNE,
    ST_NONCE_SCAN,
    ST_RECORD_ADD,
    ST_RECORD_GET,
    ST_RECORD_PENDING,
    ST_RECORD_ACK,
    ST_AUDIT_ADD,
    ST_AUDIT_SCAN,
    ST_CRL_SCAN,
    ST_CRL_COUNT,
    ST_CRL_DEVICE,
    ST_CRL_STAGED,
    ST_DEVICES_ANY,
    ST_COUNT
};

static const char *const SQL[ST_COUNT] = {
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
                      "d.period, d.algorithm, d.last_step, d.failures, d.cert_hash, d.enrolled_here, b.eph, "
                      "d.revoked_at, d.revoke_reason, d.unclaimed "
                      "FROM devices d LEFT JOIN boxes b ON b.id = d.box WHERE d.serial = ?1",
    [ST_DEVICE_BRIEF] = "SELECT state, seq, failures FROM devices WHERE serial = ?1",
    [ST_COUNTS] = "SELECT state, count(*) FROM devices GROUP BY state",
    [ST_STAGE_CLEAR] = "DELETE FROM staging",
    [ST_STAGE_PUT] = "INSERT OR REPLACE INTO staging(" DEV_COLS ") VALUES (" DEV_VALUES ")",
    [ST_DIRECT_PUT] = "INSERT OR REPLACE INTO devices(" DEV_COLS ") VALUES " DEV_Q_DIRECT,
    [ST_DIRECT_PUT1] = "INSERT OR REPLACE INTO devices(" DEV_COLS ") VALUES (" DEV_VALUES ")",
    [ST_SNAP_PRUNE] = "DELETE FROM devices WHERE NOT EXISTS (SELECT 1 FROM staging s WHERE s.serial = devices.serial)",
    [ST_SNAP_MERGE] = "INSERT INTO devices(" DEV_COLS ") SELECT " DEV_COLS " FROM staging WHERE true "
                      "ON CONFLICT(serial) DO UPDATE SET " MERGE_SET,
    [ST_ACCEPT] = "UPDATE devices SET last_step = ?2, cert_hash = coalesce(?3, cert_hash) "
                  "WHERE serial = ?1 AND last_step < ?2 AND state IN (1, 2)",
    [ST_FAIL_SET] = "UPDATE devices SET failures = ?2, state = ?3 WHERE serial = ?1",
    [ST_ENROLLED] = "UPDATE devices SET state = 2, cert_hash = ?2, enrolled_here = 1, pubkey = coalesce(?3, pubkey), "
                    "unclaimed = CASE WHEN ?3 IS NULL THEN unclaimed ELSE 0 END WHERE serial = ?1 AND state IN (1, 2)",
    [ST_SET_STATE] = "UPDATE devices SET state = ?2, seq = max(seq, ?3), "
                     "failures = CASE WHEN ?4 THEN 0 ELSE failures END, "
                     "revoked_at = CASE WHEN ?2 = 3 THEN ?5 ELSE revoked_at END, "
                     "revoke_reason = CASE WHEN ?2 = 3 THEN ?6 ELSE revoke_reason END WHERE serial = ?1",
    [ST_LOCK_PENDING] = "SELECT 1 FROM records WHERE uploaded = 0 AND serial = ?1 AND kind = 6 LIMIT 1",
    [ST_NONCE_ADD] = "INSERT INTO nonces(nonce, time) VALUES (?1, ?2) ON CONFLICT(nonce) DO NOTHING",
    [ST_NONCE_PRUNE] = "DELETE FROM nonces WHERE time < ?1",
    [ST_NONCE_SCAN] = "SELECT nonce, time FROM nonces WHERE time >= ?1",
    [ST_RECORD_ADD] = "INSERT INTO records(id, window_id, kind, serial, time, cert, cert_hash, step, reason, "
                      "audit, pubkey, uploaded) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0) "
                      "ON CONFLICT(id) DO NOTHING",
    [ST_RECORD_GET] = "SELECT " REC_COLS " FROM records WHERE id = ?1",
    [ST_RECORD_PENDING] = "SELECT " REC_COLS " FROM records WHERE uploaded = 0 ORDER BY seq LIMIT ?1",
    [ST_RECORD_ACK] = "UPDATE records SET uploaded = 1 WHERE id = ?1 AND uploaded = 0",
    [ST_AUDIT_ADD] = "INSERT INTO audit(" AUDIT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_AUDIT_SCAN] = "SELECT " AUDIT_COLS " FROM audit ORDER BY seq",
    [ST_CRL_SCAN] = "SELECT r.serial, r.cert, c.revoked_at, c.reason FROM crl_entries c "
                    "JOIN records r ON r.seq = c.record ORDER BY c.record",
    [ST_CRL_COUNT] = "SELECT count(*) FROM crl_entries",
    /* What the crl_device_added trigger did for one device written (the
     * device ?1 if revoked), and for the devices a staged snapshot wrote. */
    [ST_CRL_DEVICE] = "INSERT OR IGNORE INTO crl_entries(record, revoked_at, reason) SELECT r.seq, "
                      CRL_TIME("d.revoked_at") ", d.revoke_reason FROM devices d CROSS JOIN records r "
                      "WHERE d.serial = ?1 AND d.state = 3 AND r.serial = d.serial AND r.kind IN (1, 4) "
                      "AND r.cert IS NOT NULL",
    [ST_CRL_STAGED] = "INSERT OR IGNORE INTO crl_entries(record, revoked_at, reason) SELECT r.seq, "
                      CRL_TIME("d.revoked_at") ", d.revoke_reason FROM staging s CROSS JOIN devices d "
                      "CROSS JOIN records r WHERE s.state = 3 AND d.serial = s.serial AND d.state = 3 "
                      "AND r.serial = d.serial AND r.kind IN (1, 4) AND r.cert IS NOT NULL",
    [ST_DEVICES_ANY] = "SELECT EXISTS (SELECT 1 FROM devices)",
};

static const otpca_sqlite_schema SCHEMA = {
    .tag = "mstore",
    .kind = "an otpca manager store",
    .app_id = APP_ID,
    .migrations = MIGRATIONS,
    .versions = SCHEMA_VERSION,
    .sql = SQL,
    .statements = ST_COUNT,
    .cache_kib = CACHE_KIB,
};

struct otpca_mstore {
    otpca_sqlite q; /* in_tx: the caller's transaction (otpca_mstore_begin) is open */
    int snapshot;   /* snapshot_begin was called and neither commit nor abort since */
    int direct;     /* ... into an empty trust list: straight into devices, one transaction */
};

/* --------------------------------------------------------------- helpers */

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

/* A per-request call's scope is otpca_sqlite_write_enter/leave's. A
 * batch's: its own transaction, or a savepoint in the caller's, so a
 * failure half-way undoes the batch and leaves the rest usable. */
static otpca_err b_enter(otpca_mstore *s, int *own)
{
    otpca_err ret = otpca_sqlite_write_enter(&s->q, own);
    if (!ret && !*own)
        ret = otpca_sqlite_run(&s->q, ST_SAVEPOINT);
    return ret;
}

static otpca_err b_leave(otpca_mstore *s, int own, otpca_err ret)
{
    if (own)
        return otpca_sqlite_write_leave(&s->q, own, ret, 1);
    if (ret) {
        if (otpca_sqlite_run(&s->q, ST_ROLLBACK_TO) || otpca_sqlite_run(&s->q, ST_RELEASE))
            s->q.spoiled = 1;
        return ret;
    }
    ret = otpca_sqlite_run(&s->q, ST_RELEASE);
    if (ret)
        s->q.spoiled = 1;
    return ret;
}

/* ------------------------------------------------------------------ open */

void otpca_mstore_destroy(otpca_mstore **p)
{
    if (!p || !*p)
        return;
    otpca_sqlite_close(&(*p)->q);
    free(*p);
    *p = NULL;
}

otpca_err otpca_mstore_open(const char *path, otpca_mstore **out)
{
    if (!out)
        return OTPCA_ERR_INVALID_ARG;
    *out = NULL;
    if (!path || !*path) {
        log_error("mstore: no store path given");
        return OTPCA_ERR_CONFIG;
    }
    otpca_mstore *s = calloc(1, sizeof *s);
    otpca_err ret = s ? otpca_sqlite_open(&s->q, &SCHEMA, path) : OTPCA_ERR_NOMEM;
    if (ret)
        free(s);
    else
        *out = s;
    return ret;
}

unsigned otpca_mstore_schema_version(otpca_mstore *s)
{
    return s->q.version;
}

/* ---------------------------------------------------------- transactions */

otpca_err otpca_mstore_begin(otpca_mstore *s)
{
    return otpca_sqlite_begin(&s->q);
}

void otpca_mstore_rollback(otpca_mstore *s)
{
    otpca_sqlite_rollback(&s->q);
}

otpca_err otpca_mstore_commit(otpca_mstore *s)
{
    return otpca_sqlite_commit(&s->q);
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
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_META_GET, &st);
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
        } else if (otpca_sqlite_col_blob(st, 0, buf, cap, len)) {
            ret = unreadable("meta value");
        }
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : otpca_sqlite_err(&s->q, rc, "read meta");
    }
    otpca_sqlite_reset(st);
    return ret;
}

otpca_err otpca_mstore_meta_put(otpca_mstore *s, const char *key, const uint8_t *val, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!meta_key_ok(key) || !val || len == 0 || len > OTPCA_MSTORE_META_MAX)
        return bad_arg("meta value");
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_META_PUT, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, key, &rc);
    otpca_sqlite_bind_blob_opt(st, 2, val, len, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "store a meta value");
}

static otpca_err sync_seq_read(otpca_mstore *s, uint64_t *seq)
{
    return otpca_sqlite_query_u64(&s->q, ST_SYNC_GET, seq, "read the sync sequence");
}

static otpca_err sync_seq_write(otpca_mstore *s, uint64_t seq)
{
    return otpca_sqlite_run_u64(&s->q, ST_SYNC_SET, seq, "record the sync sequence");
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
    uint64_t revoked_at;
    unsigned revoke_reason;
    int unclaimed;
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
    r->unclaimed = (e->present & OTPCA_MSG_BIT(15)) && e->unclaimed;
    if (r->unclaimed && !r->pub_len)
        return bad_arg("entry: an unclaimed device without its product key");
    if (r->state == OTPCA_DEV_REVOKED && (e->present & OTPCA_MSG_BIT(13))) {
        if (e->revoked_at > TIME_MAX)
            return bad_arg("entry revocation time");
        r->revoked_at = e->revoked_at;
    }
    if (r->state == OTPCA_DEV_REVOKED && (e->present & OTPCA_MSG_BIT(14))) {
        if (e->revoke_reason > 10 || !otpca_crl_reason_ok((int)e->revoke_reason))
            return bad_arg("entry revocation reason");
        r->revoke_reason = (unsigned)e->revoke_reason;
    }
    return OTPCA_ERR_OK;
}

/* Parameters ?1..?18 of DEV_COLS, from ?(o + 1) on (a row of a
 * multi-row statement). */
static void bind_row(sqlite3_stmt *st, int o, const struct mrow *r, int *rc)
{
    otpca_sqlite_bind_text(st, o + 1, r->serial, rc);
    otpca_sqlite_bind_int(st, o + 2, r->seq, rc);
    otpca_sqlite_bind_int(st, o + 3, (uint64_t)r->state, rc);
    otpca_sqlite_bind_blob_opt(st, o + 4, r->mac, r->mac_len, rc);
    otpca_sqlite_bind_blob_opt(st, o + 5, r->pub, r->pub_len, rc);
    otpca_sqlite_bind_text(st, o + 6, r->batch, rc);
    otpca_sqlite_bind_blob_opt(st, o + 7, r->seed, r->seed_len, rc);
    otpca_sqlite_bind_int_opt(st, o + 8, r->seed != NULL, r->box, rc);
    otpca_sqlite_bind_int(st, o + 9, r->digits, rc);
    otpca_sqlite_bind_int(st, o + 10, r->period, rc);
    otpca_sqlite_bind_int(st, o + 11, r->algorithm, rc);
    otpca_sqlite_bind_int(st, o + 12, r->last_step, rc);
    otpca_sqlite_bind_int(st, o + 13, r->failures, rc);
    otpca_sqlite_bind_blob_opt(st, o + 14, r->cert_hash, r->cert_hash ? OTPCA_HASH_LEN : 0, rc);
    otpca_sqlite_bind_int(st, o + 15, 0, rc);
    otpca_sqlite_bind_int(st, o + 16, r->revoked_at, rc);
    otpca_sqlite_bind_int(st, o + 17, r->revoke_reason, rc);
    otpca_sqlite_bind_int(st, o + 18, r->unclaimed ? 1 : 0, rc);
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
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_BOX_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_blob(st, 1, eph, sizeof eph, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "add a seed box")))
        return ret;
    if ((ret = otpca_sqlite_stmt(&s->q, ST_BOX_ID, &st)))
        return ret;
    rc = SQLITE_OK;
    otpca_sqlite_bind_blob(st, 1, eph, sizeof eph, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = otpca_sqlite_col_u64(st, 0);
    else
        ret = otpca_sqlite_err(&s->q, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, "find a seed box");
    otpca_sqlite_reset(st);
    return ret;
}

/* Writes one checked entry: id is ST_DEVICE_UPSERT, ST_STAGE_PUT or ST_DIRECT_PUT1. */
static otpca_err row_write(otpca_mstore *s, enum st_id id, const struct mrow *r, int honour_seq)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, id, &st);
    if (ret)
        return ret;
    bind_row(st, 0, r, &rc);
    if (id == ST_DEVICE_UPSERT)
        otpca_sqlite_bind_int(st, 20, honour_seq ? 1 : 0, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "write a device");
}

static otpca_err device_delete(otpca_mstore *s, const char *serial)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_DEVICE_DELETE, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, serial, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "delete a device");
}

/* The CRL entries of a device just written revoked (ST_CRL_DEVICE). */
static otpca_err crl_of_device(otpca_mstore *s, const struct mrow *r)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (r->state != OTPCA_DEV_REVOKED)
        return OTPCA_ERR_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_CRL_DEVICE, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, r->serial, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "list a revoked device's certificates");
}

/* Writes n checked rows of a first snapshot: DIRECT_ROWS by one
 * statement, fewer one by one. */
static otpca_err direct_write(otpca_mstore *s, const struct mrow *rows, size_t n)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = OTPCA_ERR_OK;
    if (n != DIRECT_ROWS) {
        for (size_t i = 0; i < n && !ret; i++)
            ret = row_write(s, ST_DIRECT_PUT1, &rows[i], 1);
    } else if (!(ret = otpca_sqlite_stmt(&s->q, ST_DIRECT_PUT, &st))) {
        for (size_t i = 0; i < n; i++)
            bind_row(st, (int)(i * DEV_NCOLS), &rows[i], &rc);
        ret = otpca_sqlite_step_done(&s->q, st, rc, "write devices");
    }
    for (size_t i = 0; i < n && !ret; i++)
        ret = crl_of_device(s, &rows[i]);
    return ret;
}

/* Applies the entries of b: a delta into devices, a snapshot chunk into
 * staging, or into devices when s->direct. */
static otpca_err apply_entries(otpca_mstore *s, const otpca_sync_batch *b, int snapshot)
{
    otpca_device_entry e;
    struct mrow rows[DIRECT_ROWS];
    size_t n = 0; /* rows held for direct_write */
    int direct = snapshot && s->direct;
    entry_iter x;
    uint64_t box = 0;
    otpca_err ret = box_of(s, b, &box);
    if (ret)
        return ret;
    ents_init(&x, b);
    while ((ret = ents_next(&x, &e)) == OTPCA_ERR_OK) {
        struct mrow *r = &rows[n];
        if ((ret = entry_row(&e, box, r)))
            return ret;
        if (r->seq > b->to || (!snapshot && r->seq <= b->from)) {
            log_warn("mstore: device %s: change %llu outside the batch's range", r->serial,
                     (unsigned long long)r->seq);
            return OTPCA_ERR_INVALID_ARG;
        }
        if (r->state == OTPCA_DEV_DELETED)
            ret = snapshot ? OTPCA_ERR_OK : device_delete(s, r->serial);
        else if (direct) { /* held until DIRECT_ROWS are */
            if (++n == DIRECT_ROWS) {
                ret = direct_write(s, rows, n);
                n = 0;
            }
        } else if (snapshot)
            ret = row_write(s, ST_STAGE_PUT, r, 1);
        else if (!(ret = row_write(s, ST_DEVICE_UPSERT, r, 1)))
            ret = crl_of_device(s, r);
        if (ret)
            return ret;
    }
    if (ret != OTPCA_ERR_NOT_FOUND)
        return ret ? ret : OTPCA_ERR_INTERNAL;
    return direct_write(s, rows, n);
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
        ret = otpca_sqlite_run(&s->q, ST_BOX_GC);
    if (!ret)
        ret = sync_seq_write(s, b->to);
    return b_leave(s, own, ret);
}

/* A manager's first sync (an empty trust list, no caller transaction)
 * goes straight into devices inside one transaction that commit ends: all
 * or nothing as with staging (a crash or an abort rolls it back), but
 * each device is written once instead of twice and the chunks cost no
 * fsync of their own (measured: the first open of 100,000 devices spent
 * most of its time in SQLite). Otherwise chunks are staged. */
otpca_err otpca_mstore_snapshot_begin(otpca_mstore *s)
{
    int own = 0;
    uint64_t any = 1;
    if (s->snapshot) /* begun again: what was received so far goes */
        otpca_mstore_snapshot_abort(s);
    otpca_err ret = OTPCA_ERR_OK;
    if (!s->q.in_tx && (ret = otpca_sqlite_begin(&s->q)) == OTPCA_ERR_OK) {
        ret = otpca_sqlite_query_u64(&s->q, ST_DEVICES_ANY, &any, "look at the trust list");
        if (!ret && !any) {
            s->direct = 1;
            s->snapshot = 1;
            return OTPCA_ERR_OK;
        }
        otpca_sqlite_rollback(&s->q);
    }
    if (ret)
        return ret;
    if ((ret = b_enter(s, &own)))
        return ret;
    ret = otpca_sqlite_run(&s->q, ST_STAGE_CLEAR);
    if (!ret)
        ret = otpca_sqlite_run(&s->q, ST_BOX_GC);
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
    if (s->direct) {
        /* No savepoint around the chunk: inside one, SQLite keeps every
         * page the chunk changed in the in-memory sub-journal, and each
         * statement's end truncates that journal to the savepoint's start
         * by walking its chunk list from the head (SQLite 3.40's
         * memjrnlTruncate), so a chunk cost grew with its square (perf:
         * a fifth of a 100,000-device first open). A failed chunk ends
         * the snapshot instead: the transaction is rolled back. */
        ret = apply_entries(s, b, 1);
        if (ret)
            otpca_mstore_snapshot_abort(s);
        return ret;
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
    if (s->direct) { /* the devices are in place: the sequence, then the one commit */
        otpca_err ret = otpca_sqlite_run(&s->q, ST_BOX_GC);
        if (!ret)
            ret = sync_seq_write(s, to);
        if (!ret)
            ret = otpca_sqlite_commit(&s->q);
        else
            otpca_sqlite_rollback(&s->q);
        s->direct = s->snapshot = 0;
        return ret;
    }
    otpca_err ret = b_enter(s, &own);
    if (ret)
        return ret;
    ret = sync_seq_read(s, &seq);
    if (!ret)
        ret = otpca_sqlite_run(&s->q, ST_SNAP_PRUNE);
    if (!ret)
        ret = otpca_sqlite_stmt(&s->q, ST_SNAP_MERGE, &st);
    if (!ret) {
        /* A snapshot that goes back comes from another registry: its
         * sequence numbers say nothing about ours. */
        otpca_sqlite_bind_int(st, 20, to >= seq ? 1 : 0, &rc);
        ret = otpca_sqlite_step_done(&s->q, st, rc, "replace the trust list");
    }
    if (!ret)
        ret = otpca_sqlite_run(&s->q, ST_CRL_STAGED);
    if (!ret)
        ret = otpca_sqlite_run(&s->q, ST_STAGE_CLEAR);
    if (!ret)
        ret = otpca_sqlite_run(&s->q, ST_BOX_GC);
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
    if (s->direct) {
        otpca_sqlite_rollback(&s->q);
        s->direct = s->snapshot = 0;
        return;
    }
    s->snapshot = 0;
    if ((ret = b_enter(s, &own)))
        return;
    ret = otpca_sqlite_run(&s->q, ST_STAGE_CLEAR);
    if (!ret)
        ret = otpca_sqlite_run(&s->q, ST_BOX_GC);
    (void)b_leave(s, own, ret);
}

static otpca_err device_from_row(sqlite3_stmt *st, otpca_mdevice *d)
{
    int has_box = 0;
    memset(d, 0, sizeof *d);
    if (otpca_sqlite_col_text(st, 0, d->serial, sizeof d->serial) ||
        otpca_sqlite_col_blob(st, 3, d->mac, sizeof d->mac, &d->mac_len) ||
        otpca_sqlite_col_blob(st, 4, d->pubkey, sizeof d->pubkey, &d->pubkey_len) ||
        otpca_sqlite_col_text(st, 5, d->batch, sizeof d->batch) ||
        otpca_sqlite_col_blob(st, 6, d->seed, sizeof d->seed, &d->seed_len) ||
        otpca_sqlite_col_blob_opt(st, 13, d->cert_hash, sizeof d->cert_hash, &d->has_cert) ||
        otpca_sqlite_col_blob_opt(st, 15, d->eph, sizeof d->eph, &has_box) || (d->seed_len != 0) != has_box)
        return unreadable("device");
    d->seq = otpca_sqlite_col_u64(st, 1);
    d->state = sqlite3_column_int(st, 2);
    d->box = otpca_sqlite_col_u64(st, 7);
    d->digits = (unsigned)sqlite3_column_int64(st, 8);
    d->period = (unsigned)sqlite3_column_int64(st, 9);
    d->algorithm = (unsigned)sqlite3_column_int64(st, 10);
    d->last_step = otpca_sqlite_col_u64(st, 11);
    d->failures = (uint32_t)sqlite3_column_int64(st, 12);
    d->enrolled_here = sqlite3_column_int(st, 14) != 0;
    d->revoked_at = otpca_sqlite_col_u64(st, 16);
    d->revoke_reason = (unsigned)sqlite3_column_int(st, 17);
    d->unclaimed = sqlite3_column_int(st, 18) != 0;
    return OTPCA_ERR_OK;
}

otpca_err otpca_mstore_device_get(otpca_mstore *s, const char *serial, otpca_mdevice *d)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!id_ok(serial) || !d)
        return bad_arg("serial");
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_DEVICE_GET, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, serial, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = device_from_row(st, d);
    else
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : otpca_sqlite_err(&s->q, rc, "read a device");
    otpca_sqlite_reset(st);
    return ret;
}

otpca_err otpca_mstore_device_count(otpca_mstore *s, uint64_t counts[5])
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (!counts)
        return bad_arg("counts");
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_COUNTS, &st);
    if (ret)
        return ret;
    memset(counts, 0, 5 * sizeof counts[0]);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        uint64_t n = otpca_sqlite_col_u64(st, 1);
        if (state >= OTPCA_DEV_APPROVED && state <= OTPCA_DEV_LOCKED)
            counts[state] = n;
        counts[0] += n;
    }
    if (rc != SQLITE_DONE)
        ret = otpca_sqlite_err(&s->q, rc, "count devices");
    otpca_sqlite_reset(st);
    return ret;
}

otpca_err otpca_mstore_boxes(otpca_mstore *s, otpca_mstore_box_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    uint8_t eph[OTPCA_P256_PUB_LEN];
    int rc;
    if (!fn)
        return bad_arg("box callback");
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_BOX_SCAN, &st);
    if (ret)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (otpca_sqlite_col_blob_exact(st, 1, eph, sizeof eph)) {
            ret = unreadable("seed box");
            break;
        }
        if (fn(otpca_sqlite_col_u64(st, 0), eph, arg)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE)
        ret = otpca_sqlite_err(&s->q, rc, "read seed boxes");
    otpca_sqlite_reset(st);
    return ret;
}

/* state, seq and failures of one device; NOT_FOUND if unknown. */
static otpca_err device_brief(otpca_mstore *s, const char *serial, int *state, uint64_t *seq, uint32_t *failures)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_DEVICE_BRIEF, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, serial, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *state = sqlite3_column_int(st, 0);
        *seq = otpca_sqlite_col_u64(st, 1);
        *failures = (uint32_t)sqlite3_column_int64(st, 2);
    } else {
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : otpca_sqlite_err(&s->q, rc, "read a device");
    }
    otpca_sqlite_reset(st);
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
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_ACCEPT, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, serial, &rc);
    otpca_sqlite_bind_int(st, 2, step, &rc);
    otpca_sqlite_bind_blob_opt(st, 3, cert_hash, cert_hash ? OTPCA_HASH_LEN : 0, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "accept a TOTP step")))
        return ret;
    return sqlite3_changes(s->q.db) ? OTPCA_ERR_OK : why_unchanged(s, serial);
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
    otpca_err ret = otpca_sqlite_write_enter(&s->q, &own);
    if (ret)
        return ret;
    ret = device_brief(s, serial, &state, &seq, &n);
    if (!ret) {
        if (n < UINT32_MAX)
            n++;
        lock = n >= lockout && (state == OTPCA_DEV_APPROVED || state == OTPCA_DEV_ENROLLED);
        ret = otpca_sqlite_stmt(&s->q, ST_FAIL_SET, &st);
    }
    if (!ret) {
        otpca_sqlite_bind_text(st, 1, serial, &rc);
        otpca_sqlite_bind_int(st, 2, n, &rc);
        otpca_sqlite_bind_int(st, 3, (uint64_t)(lock ? OTPCA_DEV_LOCKED : state), &rc);
        ret = otpca_sqlite_step_done(&s->q, st, rc, "count a failure");
    }
    ret = otpca_sqlite_write_leave(&s->q, own, ret, 0);
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

static otpca_err enrolled(otpca_mstore *s, const char *serial, const uint8_t cert_hash[OTPCA_HASH_LEN],
                          const uint8_t *pubkey)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!id_ok(serial) || !cert_hash)
        return bad_arg("enrolled arguments");
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_ENROLLED, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, serial, &rc);
    otpca_sqlite_bind_blob(st, 2, cert_hash, OTPCA_HASH_LEN, &rc);
    otpca_sqlite_bind_blob_opt(st, 3, pubkey, pubkey ? OTPCA_P256_PUB_LEN : 0, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "mark a device enrolled")))
        return ret;
    return sqlite3_changes(s->q.db) ? OTPCA_ERR_OK : why_unchanged(s, serial);
}

otpca_err otpca_mstore_device_enrolled(otpca_mstore *s, const char *serial, const uint8_t cert_hash[OTPCA_HASH_LEN])
{
    return enrolled(s, serial, cert_hash, NULL);
}

otpca_err otpca_mstore_device_key_updated(otpca_mstore *s, const char *serial, const uint8_t cert_hash[OTPCA_HASH_LEN],
                                          const uint8_t pubkey[OTPCA_P256_PUB_LEN])
{
    if (!pubkey || pubkey[0] != 0x04)
        return bad_arg("new device key");
    return enrolled(s, serial, cert_hash, pubkey);
}

/* 1 if the journal holds a LOCKED record for serial the cloud has not
 * acknowledged (the cloud will lock the device when it gets it). */
static otpca_err lock_pending(otpca_mstore *s, const char *serial, int *pending)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_LOCK_PENDING, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_text(st, 1, serial, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *pending = rc == SQLITE_ROW;
    else
        ret = otpca_sqlite_err(&s->q, rc, "read the journal");
    otpca_sqlite_reset(st);
    return ret;
}

otpca_err otpca_mstore_device_set_state(otpca_mstore *s, const char *serial, int state, uint64_t seq,
                                        uint64_t revoked_at, unsigned reason)
{
    sqlite3_stmt *st = NULL;
    int own = 0, cur = 0, pending = 0, unlock = 0, rc = SQLITE_OK;
    uint64_t cur_seq = 0;
    uint32_t failures = 0;
    if (!id_ok(serial) || state < OTPCA_DEV_APPROVED || state > OTPCA_DEV_LOCKED || seq > INT64_MAX ||
        revoked_at > TIME_MAX || reason > 10 || !otpca_crl_reason_ok((int)reason))
        return bad_arg("state arguments");
    otpca_err ret = otpca_sqlite_write_enter(&s->q, &own);
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
        ret = otpca_sqlite_stmt(&s->q, ST_SET_STATE, &st);
    if (!ret) {
        otpca_sqlite_bind_text(st, 1, serial, &rc);
        otpca_sqlite_bind_int(st, 2, (uint64_t)state, &rc);
        otpca_sqlite_bind_int(st, 3, seq, &rc);
        otpca_sqlite_bind_int(st, 4, unlock ? 1 : 0, &rc);
        otpca_sqlite_bind_int(st, 5, revoked_at, &rc);
        otpca_sqlite_bind_int(st, 6, reason, &rc);
        ret = otpca_sqlite_step_done(&s->q, st, rc, "set a device's state");
    }
    return otpca_sqlite_write_leave(&s->q, own, ret, 0);
}

/* ------------------------------------------------------------------ CRL */

otpca_err otpca_mstore_crl_scan(otpca_mstore *s, otpca_mcrl_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!fn)
        return bad_arg("CRL scan");
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_CRL_SCAN, &st);
    if (ret)
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        otpca_mcrl_entry e;
        memset(&e, 0, sizeof e);
        if (otpca_sqlite_col_text(st, 0, e.serial, sizeof e.serial) ||
            otpca_sqlite_col_blob(st, 1, e.cert, sizeof e.cert, &e.cert_len)) {
            ret = unreadable("CRL entry");
            break;
        }
        e.revoked_at = otpca_sqlite_col_u64(st, 2);
        e.reason = (unsigned)sqlite3_column_int(st, 3);
        if (fn(&e, arg)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE)
        ret = otpca_sqlite_err(&s->q, rc, "read the CRL entries");
    otpca_sqlite_reset(st);
    return ret;
}

otpca_err otpca_mstore_crl_count(otpca_mstore *s, uint64_t *n)
{
    return otpca_sqlite_query_u64(&s->q, ST_CRL_COUNT, n, "count the CRL entries");
}

/* ---------------------------------------------------------------- nonces */

otpca_err otpca_mstore_nonce_add(otpca_mstore *s, const uint8_t nonce[OTPCA_NONCE_LEN], uint64_t time)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (!nonce || time > TIME_MAX)
        return bad_arg("nonce");
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_NONCE_ADD, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_blob(st, 1, nonce, OTPCA_NONCE_LEN, &rc);
    otpca_sqlite_bind_int(st, 2, time, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "remember a nonce")))
        return ret;
    return sqlite3_changes(s->q.db) ? OTPCA_ERR_OK : OTPCA_ERR_EXISTS;
}

otpca_err otpca_mstore_nonce_prune(otpca_mstore *s, uint64_t before)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = otpca_sqlite_write_stmt(&s->q, ST_NONCE_PRUNE, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_int(st, 1, before > INT64_MAX ? INT64_MAX : before, &rc);
    return otpca_sqlite_step_done(&s->q, st, rc, "prune nonces");
}

otpca_err otpca_mstore_nonces(otpca_mstore *s, uint64_t since, otpca_mstore_nonce_fn fn, void *arg)
{
    sqlite3_stmt *st = NULL;
    uint8_t nonce[OTPCA_NONCE_LEN];
    int rc = SQLITE_OK;
    if (!fn)
        return bad_arg("nonce callback");
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_NONCE_SCAN, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_int(st, 1, since > INT64_MAX ? INT64_MAX : since, &rc);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (otpca_sqlite_col_blob_exact(st, 0, nonce, sizeof nonce)) {
            ret = unreadable("nonce");
            break;
        }
        if (fn(nonce, otpca_sqlite_col_u64(st, 1), arg)) {
            rc = SQLITE_DONE;
            break;
        }
        rc = SQLITE_OK;
    }
    if (!ret && rc != SQLITE_DONE)
        ret = otpca_sqlite_err(&s->q, rc, "read nonces");
    otpca_sqlite_reset(st);
    return ret;
}

/* --------------------------------------------------------------- records */

static otpca_err record_from_row(sqlite3_stmt *st, otpca_mrecord *r)
{
    int has_hash = 0;
    memset(r, 0, sizeof *r);
    if (otpca_sqlite_col_blob_exact(st, 1, r->id, sizeof r->id) ||
        otpca_sqlite_col_blob_exact(st, 2, r->window, sizeof r->window) ||
        otpca_sqlite_col_text(st, 4, r->serial, sizeof r->serial) ||
        otpca_sqlite_col_blob(st, 6, r->cert, sizeof r->cert, &r->cert_len) ||
        otpca_sqlite_col_blob_opt(st, 7, r->cert_hash, sizeof r->cert_hash, &has_hash) ||
        has_hash != (r->cert_len != 0) || otpca_sqlite_col_blob_opt(st, 10, r->audit, sizeof r->audit, &r->has_audit) ||
        otpca_sqlite_col_blob(st, 11, r->pubkey, sizeof r->pubkey, &r->pubkey_len))
        return unreadable("record");
    r->seq = otpca_sqlite_col_u64(st, 0);
    r->kind = sqlite3_column_int(st, 3);
    r->time = otpca_sqlite_col_u64(st, 5);
    r->has_step = sqlite3_column_type(st, 8) != SQLITE_NULL;
    r->step = otpca_sqlite_col_u64(st, 8);
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
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_RECORD_GET, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_blob(st, 1, id, OTPCA_ID16_LEN, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        ret = record_from_row(st, r);
    else
        ret = rc == SQLITE_DONE ? OTPCA_ERR_NOT_FOUND : otpca_sqlite_err(&s->q, rc, "read a record");
    otpca_sqlite_reset(st);
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
    if ((ret = otpca_sqlite_write_stmt(&s->q, ST_RECORD_ADD, &st)))
        return ret;
    otpca_sqlite_bind_blob(st, 1, r->id, sizeof r->id, &rc);
    otpca_sqlite_bind_blob(st, 2, r->window, sizeof r->window, &rc);
    otpca_sqlite_bind_int(st, 3, (uint64_t)r->kind, &rc);
    otpca_sqlite_bind_text(st, 4, r->serial, &rc);
    otpca_sqlite_bind_int(st, 5, r->time, &rc);
    otpca_sqlite_bind_blob_opt(st, 6, r->cert, r->cert_len, &rc);
    otpca_sqlite_bind_blob_opt(st, 7, cert_hash, r->cert_len ? sizeof cert_hash : 0, &rc);
    otpca_sqlite_bind_int_opt(st, 8, r->has_step, r->step, &rc);
    otpca_sqlite_bind_int_opt(st, 9, r->has_reason, r->reason, &rc);
    otpca_sqlite_bind_blob_opt(st, 10, r->audit, r->has_audit ? sizeof r->audit : 0, &rc);
    otpca_sqlite_bind_blob_opt(st, 11, pub, pub_len, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "journal a record")))
        return ret;
    if (sqlite3_changes(s->q.db))
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
    otpca_err ret = otpca_sqlite_stmt(&s->q, ST_RECORD_PENDING, &st);
    if (ret)
        return ret;
    if (!(r = malloc(sizeof *r))) {
        otpca_sqlite_reset(st);
        return OTPCA_ERR_NOMEM;
    }
    rc = sqlite3_bind_int64(st, 1, otpca_sqlite_limit(limit));
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
        ret = otpca_sqlite_err(&s->q, rc, "read pending records");
    otpca_sqlite_reset(st);
    free(r);
    return ret;
}

otpca_err otpca_mstore_records_acked(otpca_mstore *s, const uint8_t (*ids)[OTPCA_ID16_LEN], size_t n)
{
    sqlite3_stmt *st = NULL;
    int own = 0, partial = 0;
    if (!ids && n)
        return bad_arg("record ids");
    otpca_err ret = otpca_sqlite_write_enter(&s->q, &own);
    if (ret)
        return ret;
    for (size_t i = 0; i < n && !ret; i++) {
        int rc = SQLITE_OK;
        if ((ret = otpca_sqlite_stmt(&s->q, ST_RECORD_ACK, &st)))
            break;
        otpca_sqlite_bind_blob(st, 1, ids[i], OTPCA_ID16_LEN, &rc);
        ret = otpca_sqlite_step_done(&s->q, st, rc, "mark a record acknowledged");
        partial = 1;
    }
    return otpca_sqlite_write_leave(&s->q, own, ret, partial);
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

/* The entry, then the head; *partial once the entry is written. */
static otpca_err audit_insert(otpca_mstore *s, const struct audit_row *a, int *partial)
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
    otpca_sqlite_bind_blob_opt(st, 9, a->window, a->has_window ? sizeof a->window : 0, &rc);
    if ((ret = otpca_sqlite_step_done(&s->q, st, rc, "append to the audit chain")))
        return ret;
    *partial = 1;
    return otpca_sqlite_chain_head_set(&s->q, a->seq);
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

    otpca_err ret = otpca_sqlite_write_enter(&s->q, &own);
    if (ret)
        return ret;
    ret = otpca_sqlite_chain_tail(&s->q, &a.seq, a.prev);
    if (!ret) {
        a.seq++;
        ret = audit_hash(&a, a.hash);
    }
    if (!ret)
        ret = audit_insert(s, &a, &partial);
    ret = otpca_sqlite_write_leave(&s->q, own, ret, partial);
    if (!ret && hash)
        memcpy(hash, a.hash, sizeof a.hash);
    return ret;
}

/* A row of the chain (AUDIT_COLS) for otpca_sqlite_chain_verify. */
static int audit_link(sqlite3_stmt *st, otpca_sqlite_link *l)
{
    struct audit_row a;
    memset(&a, 0, sizeof a);
    if (otpca_sqlite_col_blob_exact(st, 1, a.prev, sizeof a.prev) ||
        otpca_sqlite_col_blob_exact(st, 2, a.hash, sizeof a.hash) ||
        otpca_sqlite_col_text(st, 4, a.actor, sizeof a.actor) ||
        otpca_sqlite_col_text(st, 6, a.subject, sizeof a.subject) ||
        otpca_sqlite_col_text(st, 7, a.detail, sizeof a.detail) ||
        otpca_sqlite_col_blob_opt(st, 8, a.window, sizeof a.window, &a.has_window))
        return -1;
    a.seq = otpca_sqlite_col_u64(st, 0);
    a.time = otpca_sqlite_col_u64(st, 3);
    a.event = (unsigned)sqlite3_column_int64(st, 5);
    l->seq = a.seq;
    memcpy(l->prev, a.prev, sizeof l->prev);
    memcpy(l->hash, a.hash, sizeof l->hash);
    return audit_hash(&a, l->recomputed) != OTPCA_ERR_OK ? 1 : 0;
}

otpca_err otpca_mstore_audit_verify(otpca_mstore *s, uint64_t *entries, uint64_t *bad_seq)
{
    return otpca_sqlite_chain_verify(&s->q, ST_AUDIT_SCAN, audit_link, entries, bad_seq);
}
