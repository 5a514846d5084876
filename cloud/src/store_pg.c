/*
 * The PostgreSQL backend of the cloud store (libpq), for when one machine
 * is not enough: the same tables as the SQLite backend (store_sqlite.c),
 * built by the same ordered list of migrations (schema version 4, kept in
 * the meta table; a database at a newer version is refused), with the same
 * meaning. Statements are prepared once per connection and run with
 * binary parameters and results (bytea, int8), so no value is ever quoted
 * into SQL; ids and text columns sort with the "C" collation, as SQLite's
 * byte order does. Errors map to otpca_err by SQLSTATE (a duplicate
 * EXISTS, an unknown reference NOT_FOUND, another constraint INVALID_ARG,
 * the rest IO) and are logged with the server's primary message only: its
 * DETAIL can quote a row, and rows hold sealed seeds.
 *
 * Writers are serialised the way SQLite serialises them, and for the same
 * reason: the change log's `seq` must be gap-free and monotonic, and a
 * reader must never see seq N+1 before N. A PostgreSQL SEQUENCE is
 * neither (nextval is not rolled back, and a later number can commit
 * first). Instead the last number lives in a one-row table,
 * change_counter, and every device write moves it on in the same statement
 * that writes the device and its change-log row (one statement: it cannot
 * half-happen). The row lock that UPDATE takes is held until commit, so a
 * second writer waits, then reads the committed number: numbers are
 * handed out in commit order and a rollback gives its number back. The
 * caller's transaction (begin) and the audit chain's append (read the
 * tail, then insert) take `LOCK TABLE change_counter IN EXCLUSIVE MODE`
 * first: that is SQLite's BEGIN IMMEDIATE — other handles' device writes,
 * appends and transactions wait, their reads go on — and one lock taken
 * first in every writer cannot deadlock. A table lock in the store's own
 * schema rather than an advisory lock, so that two stores in two schemas
 * of one database do not wait for each other and no other program's
 * advisory-lock numbers can collide with ours. Other writes are single
 * statements whose row locks and constraints already make them atomic
 * (a TOTP step is accepted once: the conditional UPDATE re-checks its
 * condition after waiting for a concurrent one).
 *
 * In the caller's transaction every write runs inside a savepoint, so that
 * one that fails on its input leaves the transaction as it was (the
 * contract of store.h; PostgreSQL would otherwise abort the whole
 * transaction). A walk longer than one page reads its pages in one
 * REPEATABLE READ snapshot, as SQLite's single statement does.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otpca/common/log.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "store_internal.h"

#define PAGE 4096                 /* rows fetched per statement by a walk */
#define LOCK_TIMEOUT "10s"        /* as SQLite's busy timeout: then OTPCA_ERR_IO */
#define MIGRATION_LOCK "7308895157133423415" /* pg_advisory_xact_lock key while migrating */
#define MAX_PARAMS 16

/* ---------------------------------------------------------------- schema */

/* Version 1 (store_sqlite.c's, column for column): integers are BIGINT
 * (an unsigned 64-bit value is stored by its bit pattern, as SQLite does),
 * blobs BYTEA. meta keeps blobs in value and the schema version and the
 * audit head in num. change_counter holds the change log's last number
 * (SQLite's AUTOINCREMENT counter: never reused, even once old rows are
 * pruned). records.ord is the insertion order SQLite's rowid gives. */
static const char SCHEMA_V1[] =
    "CREATE TABLE meta (key TEXT COLLATE \"C\" PRIMARY KEY, value BYTEA, num BIGINT);"
    "CREATE TABLE change_counter (id INTEGER PRIMARY KEY CHECK (id = 1), last BIGINT NOT NULL);"
    "INSERT INTO change_counter(id, last) VALUES (1, 0);"
    "CREATE TABLE batches ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY,"
    "  product_pub BYTEA NOT NULL"
    ");"
    "CREATE TABLE managers ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY,"
    "  curve_pub BYTEA NOT NULL UNIQUE CHECK (length(curve_pub) = 32),"
    "  ca_pub BYTEA NOT NULL,"
    "  ca_cert BYTEA NOT NULL,"
    "  revoked BIGINT NOT NULL CHECK (revoked IN (0, 1))"
    ");"
    "CREATE TABLE operators ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY,"
    "  seed_env BYTEA NOT NULL,"
    "  digits BIGINT NOT NULL,"
    "  period BIGINT NOT NULL,"
    "  algorithm BIGINT NOT NULL,"
    "  last_step BIGINT NOT NULL"
    ");"
    "CREATE TABLE devices ("
    "  seq BIGINT PRIMARY KEY,"
    "  serial TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    "  mac BYTEA NOT NULL,"
    "  pubkey BYTEA,"
    "  batch TEXT COLLATE \"C\" REFERENCES batches(id),"
    "  state BIGINT NOT NULL CHECK (state BETWEEN 1 AND 6),"
    "  seed_env BYTEA NOT NULL,"
    "  digits BIGINT NOT NULL,"
    "  period BIGINT NOT NULL,"
    "  algorithm BIGINT NOT NULL,"
    "  last_step BIGINT NOT NULL,"
    "  failures BIGINT NOT NULL,"
    "  cert_hash BYTEA,"
    "  manager TEXT COLLATE \"C\" REFERENCES managers(id),"
    "  flagged BIGINT NOT NULL"
    ");"
    "CREATE TABLE changes ("
    "  seq BIGINT PRIMARY KEY,"
    "  serial TEXT COLLATE \"C\" NOT NULL,"
    "  state BIGINT NOT NULL"
    ");"
    "CREATE TABLE leases ("
    "  window_id BYTEA PRIMARY KEY CHECK (length(window_id) = 16),"
    "  manager TEXT COLLATE \"C\" NOT NULL REFERENCES managers(id),"
    "  operator_id TEXT COLLATE \"C\" NOT NULL REFERENCES operators(id),"
    "  not_before BIGINT NOT NULL,"
    "  not_after BIGINT NOT NULL,"
    "  max_enroll BIGINT NOT NULL,"
    "  scope TEXT NOT NULL,"
    "  offline BIGINT NOT NULL"
    ");"
    "CREATE TABLE records ("
    "  id BYTEA PRIMARY KEY CHECK (length(id) = 16),"
    "  ord BIGINT GENERATED ALWAYS AS IDENTITY,"
    "  window_id BYTEA NOT NULL,"
    "  manager TEXT COLLATE \"C\" NOT NULL,"
    "  kind BIGINT NOT NULL,"
    "  serial TEXT COLLATE \"C\" NOT NULL,"
    "  time BIGINT NOT NULL,"
    "  cert BYTEA,"
    "  step BIGINT NOT NULL,"
    "  reason BIGINT NOT NULL"
    ");"
    "CREATE INDEX records_serial ON records(serial);"
    "CREATE TABLE audit ("
    "  seq BIGINT PRIMARY KEY,"
    "  prev BYTEA NOT NULL,"
    "  hash BYTEA NOT NULL,"
    "  time BIGINT NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  event BIGINT NOT NULL,"
    "  subject TEXT,"
    "  detail TEXT"
    ");";

/* Version 2: a lease's WindowOpen nonce and closing time; a record's flag. */
static const char SCHEMA_V2[] =
    "ALTER TABLE leases ADD COLUMN open_nonce BYTEA CHECK (open_nonce IS NULL OR length(open_nonce) = 16);"
    "CREATE UNIQUE INDEX leases_open_nonce ON leases(open_nonce) WHERE open_nonce IS NOT NULL;"
    "ALTER TABLE leases ADD COLUMN closed_at BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE records ADD COLUMN flagged BIGINT NOT NULL DEFAULT 0 CHECK (flagged IN (0, 1));";

/* Version 3: which operator may open windows on which manager. */
static const char SCHEMA_V3[] =
    "CREATE TABLE operator_grants ("
    "  operator_id TEXT COLLATE \"C\" NOT NULL REFERENCES operators(id),"
    "  manager TEXT COLLATE \"C\" NOT NULL REFERENCES managers(id),"
    "  PRIMARY KEY (operator_id, manager)"
    ");";

/* Version 4: a KeyUpdate's new key kept with its record. */
static const char SCHEMA_V4[] =
    "ALTER TABLE records ADD COLUMN pubkey BYTEA CHECK (pubkey IS NULL OR length(pubkey) = 65);";

/* Version 5: when and why a device was revoked; each manager's latest CRL. */
static const char SCHEMA_V5[] =
    "ALTER TABLE devices ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN revoke_reason BIGINT NOT NULL DEFAULT 0;"
    "CREATE TABLE crls ("
    "  manager TEXT COLLATE \"C\" PRIMARY KEY REFERENCES managers(id),"
    "  number BIGINT NOT NULL,"
    "  this_update BIGINT NOT NULL,"
    "  next_update BIGINT NOT NULL,"
    "  der BYTEA NOT NULL"
    ");";

/* Migration i takes the schema from version i to i + 1. Append only, in
 * step with store_sqlite.c. */
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

/* The session's stage table for device_add_many: a device's columns as
 * COPY's text format brings them, and its place in the caller's array. */
#define STAGE "otpca_stage"
#define STAGE_SETUP                                                                                             \
    "CREATE TEMP TABLE IF NOT EXISTS " STAGE " (ord BIGINT NOT NULL, serial TEXT COLLATE \"C\" NOT NULL, "      \
    "mac BYTEA NOT NULL, pubkey BYTEA, batch TEXT COLLATE \"C\", state BIGINT NOT NULL, seed_env BYTEA NOT NULL, " \
    "digits BIGINT NOT NULL, period BIGINT NOT NULL, algorithm BIGINT NOT NULL, last_step BIGINT NOT NULL, "      \
    "failures BIGINT NOT NULL, cert_hash BYTEA, manager TEXT COLLATE \"C\", flagged BIGINT NOT NULL, "           \
    "revoked_at BIGINT NOT NULL, revoke_reason BIGINT NOT NULL); TRUNCATE pg_temp." STAGE

/* A device write and its change-log row, numbered by change_counter, in
 * one statement (see the top of this file) that answers one row: the new
 * seq (NULL if nothing was written), whether the serial was new (add) or
 * known (update), and whether the batch and manager it names exist. It
 * checks those first instead of letting a constraint fail, so that a
 * duplicate or an unknown reference in the caller's transaction needs no
 * savepoint (thousands of savepoints in one transaction slow PostgreSQL
 * down); the writers' lock keeps the checks true until commit. */
#define DEVICE_CHECKS(serial_test)                                                                     \
    "WITH ok AS (SELECT " serial_test " AS serial_ok, "                                               \
    "($4::text IS NULL OR EXISTS (SELECT 1 FROM batches WHERE id = $4)) AND "                         \
    "($13::text IS NULL OR EXISTS (SELECT 1 FROM managers WHERE id = $13)) AS refs_ok), "             \
    "c AS (UPDATE change_counter SET last = last + 1 WHERE (SELECT serial_ok AND refs_ok FROM ok) " \
    "RETURNING last), "
#define CHANGE_LOG_TAIL " RETURNING seq, serial, state), x AS (INSERT INTO changes(seq, serial, state) " \
                        "SELECT seq, serial, state FROM d RETURNING seq) "                              \
                        "SELECT (SELECT seq FROM x), serial_ok, refs_ok FROM ok"

enum st_id {
    ST_DEVICE_ADD,
    ST_DEVICE_UPDATE,
    ST_DEVICE_ADD_STAGED,
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
    ST_AUDIT_TAIL,
    ST_AUDIT_ADD,
    ST_AUDIT_HEAD,
    ST_AUDIT_SCAN,
    ST_CRL_PUT,
    ST_CRL_GET,
    ST_COUNT
};

/* Each statement's SQL and its parameters' types: t text, b bytea, i int8;
 * replan: planned at every call instead of once per connection. */
static const struct {
    const char *sql;
    const char *types;
    int replan;
} SQL[ST_COUNT] = {
    [ST_DEVICE_ADD] = {DEVICE_CHECKS("NOT EXISTS (SELECT 1 FROM devices WHERE serial = $1)")
                       "d AS (INSERT INTO devices(" DEV_COLS ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                       "$11, $12, $13, $14, last, $15, $16 FROM c" CHANGE_LOG_TAIL,
                       "tbbtibiiiiibtiii"},
    [ST_DEVICE_UPDATE] = {DEVICE_CHECKS("EXISTS (SELECT 1 FROM devices WHERE serial = $1)")
                          "d AS (UPDATE devices SET mac = $2, pubkey = $3, batch = $4, state = $5, seed_env = $6, "
                          "digits = $7, period = $8, algorithm = $9, last_step = $10, failures = $11, "
                          "cert_hash = $12, manager = $13, flagged = $14, seq = c.last, revoked_at = $15, "
                          "revoke_reason = $16 FROM c WHERE serial = $1" CHANGE_LOG_TAIL,
                          "tbbtibiiiiibtiii"},
    /* device_add for every row of the session's stage table (COPY has
     * filled it): the same checks, in ord order, numbered from one move of
     * the change counter; one row per staged device answers ord, the two
     * checks and the seq given (NULL if none). `s` is read in the
     * statement's snapshot, so it does not see the devices d inserts; a
     * serial is never staged twice (store.c). Planned at every call: a
     * plan made while devices was small probes it by a hash of the whole
     * table, which a plan kept for the rest of a million-row import would
     * go on doing (quadratic). */
    [ST_DEVICE_ADD_STAGED] =
        {"WITH s AS MATERIALIZED (SELECT i.*, k.known IS NULL AS serial_ok, "
         "(i.batch IS NULL OR EXISTS (SELECT 1 FROM batches WHERE batches.id = i.batch)) AND "
         "(i.manager IS NULL OR EXISTS (SELECT 1 FROM managers WHERE managers.id = i.manager)) AS refs_ok "
         "FROM pg_temp." STAGE " i LEFT JOIN LATERAL "
         "(SELECT true AS known FROM devices WHERE devices.serial = i.serial LIMIT 1) k ON true), "
         "n AS (SELECT s.*, row_number() OVER (ORDER BY s.ord) AS k FROM s WHERE s.serial_ok AND s.refs_ok), "
         "c AS (UPDATE change_counter SET last = last + (SELECT count(*) FROM n) "
         "RETURNING last - (SELECT count(*) FROM n) AS base), "
         "d AS (INSERT INTO devices(" DEV_COLS ") SELECT n.serial, n.mac, n.pubkey, n.batch, n.state, n.seed_env, "
         "n.digits, n.period, n.algorithm, n.last_step, n.failures, n.cert_hash, n.manager, n.flagged, c.base + n.k, "
         "n.revoked_at, n.revoke_reason FROM n, c RETURNING seq, serial, state), "
         "x AS (INSERT INTO changes(seq, serial, state) SELECT seq, serial, state FROM d) "
         "SELECT s.ord, s.serial_ok, s.refs_ok, c.base + n.k FROM s LEFT JOIN n ON n.ord = s.ord CROSS JOIN c "
         "ORDER BY s.ord",
         "", 1},
    [ST_DEVICE_GET] = {"SELECT " DEV_COLS " FROM devices WHERE serial = $1", "t"},
    [ST_DEVICE_SCAN] = {"SELECT " DEV_COLS " FROM devices WHERE serial > $1 ORDER BY serial LIMIT $2", "ti"},
    [ST_CHANGES] = {"SELECT " DEV_COLS " FROM devices WHERE seq > $1 ORDER BY seq LIMIT $2", "ii"},
    [ST_SEQ] = {"SELECT (SELECT max(seq) FROM changes), (SELECT min(seq) FROM changes)", ""},
    [ST_COUNTS] = {"SELECT state, count(*) FROM devices GROUP BY state", ""},
    [ST_BATCH_ADD] = {"INSERT INTO batches(id, product_pub) VALUES ($1, $2)", "tb"},
    [ST_BATCH_GET] = {"SELECT id, product_pub FROM batches WHERE id = $1", "t"},
    [ST_MANAGER_ADD] = {"INSERT INTO managers(" MGR_COLS ") VALUES ($1, $2, $3, $4, $5)", "tbbbi"},
    [ST_MANAGER_GET] = {"SELECT " MGR_COLS " FROM managers WHERE id = $1", "t"},
    [ST_MANAGER_BY_CURVE] = {"SELECT " MGR_COLS " FROM managers WHERE curve_pub = $1", "b"},
    [ST_MANAGER_REVOKE] = {"UPDATE managers SET revoked = 1 WHERE id = $1", "t"},
    [ST_MANAGER_SCAN] = {"SELECT " MGR_COLS " FROM managers ORDER BY id", ""},
    [ST_OPERATOR_ADD] = {"INSERT INTO operators(" OP_COLS ") VALUES ($1, $2, $3, $4, $5, $6)", "tbiiii"},
    [ST_OPERATOR_GET] = {"SELECT " OP_COLS " FROM operators WHERE id = $1", "t"},
    [ST_OPERATOR_STEP] = {"UPDATE operators SET last_step = $2 WHERE id = $1 AND last_step < $2", "ti"},
    [ST_GRANT_ADD] = {"INSERT INTO operator_grants(operator_id, manager) VALUES ($1, $2)", "tt"},
    [ST_GRANT_GET] = {"SELECT 1 FROM operator_grants WHERE operator_id = $1 AND manager = $2", "tt"},
    [ST_LEASE_ADD] = {"INSERT INTO leases(" LEASE_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                      "bttiiitibi"},
    [ST_LEASE_GET] = {"SELECT " LEASE_COLS " FROM leases WHERE window_id = $1", "b"},
    [ST_LEASE_BY_NONCE] = {"SELECT " LEASE_COLS " FROM leases WHERE open_nonce = $1", "b"},
    [ST_LEASE_CLOSE] = {"UPDATE leases SET closed_at = $2 WHERE window_id = $1 AND closed_at = 0", "bi"},
    [ST_META_GET] = {"SELECT value FROM meta WHERE key = $1", "t"},
    [ST_META_ADD] = {"INSERT INTO meta(key, value) VALUES ($1, $2)", "tb"},
    [ST_META_REPLACE] = {"UPDATE meta SET value = $3 WHERE key = $1 AND value = $2", "tbb"},
    [ST_RECORD_ADD] = {"INSERT INTO records(" REC_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                       "ON CONFLICT (id) DO NOTHING",
                       "bbtitibiiib"},
    [ST_RECORD_GET] = {"SELECT " REC_COLS " FROM records WHERE id = $1", "b"},
    [ST_RECORD_COUNT] = {"SELECT count(*) FROM records", ""},
    [ST_RECORD_ISSUES] = {"SELECT id, cert, pubkey FROM records WHERE serial = $1 AND manager = $2 "
                          "AND kind IN (1, 4) ORDER BY ord DESC",
                          "tt"},
    [ST_AUDIT_TAIL] = {"SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", ""},
    /* The entry and the head (meta 'audit_head', so that a chain cut short
     * at its end shows) in one statement. */
    [ST_AUDIT_ADD] = {"WITH a AS (INSERT INTO audit(" AUDIT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                      "RETURNING seq) INSERT INTO meta(key, num) SELECT 'audit_head', seq FROM a "
                      "ON CONFLICT (key) DO UPDATE SET num = excluded.num",
                      "ibbititt"},
    [ST_AUDIT_HEAD] = {"SELECT num FROM meta WHERE key = 'audit_head'", ""},
    [ST_AUDIT_SCAN] = {"SELECT " AUDIT_COLS " FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2", "ii"},
    /* Only a newer CRL replaces the one kept. */
    [ST_CRL_PUT] = {"INSERT INTO crls(manager, number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (manager) DO UPDATE SET number = excluded.number, this_update = "
                    "excluded.this_update, next_update = excluded.next_update, der = excluded.der "
                    "WHERE excluded.number > crls.number",
                    "tiiib"},
    [ST_CRL_GET] = {"SELECT number, this_update, next_update, der FROM crls WHERE manager = $1", "t"},
};

struct otpca_store_impl {
    PGconn *conn;
    char where[160];               /* postgresql://host:port/db, for logs (never a password) */
    unsigned version;              /* the schema version once open */
    int in_tx;                     /* the caller's transaction (begin) is open */
    int spoiled;                   /* ... and a call failed in it in a way a savepoint could not undo */
    int snap;                      /* a walk's own read snapshot is open */
    unsigned char prepared[ST_COUNT]; /* on this connection */
};

/* --------------------------------------------------------------- helpers */

static otpca_err unreadable(const char *what)
{
    log_error("store: a stored %s does not fit its fields", what);
    return OTPCA_ERR_INTERNAL;
}

/* A libpq message on one line: its line breaks and tabs as spaces, the
 * trailing ones dropped, cut short to fit buf. */
static const char *one_line(const char *m, char *buf, size_t cap)
{
    size_t n = 0;
    for (; m && *m && n + 1 < cap; m++)
        buf[n++] = (*m == '\n' || *m == '\r' || *m == '\t') ? ' ' : *m;
    while (n && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return buf;
}

/* A failed result (or a connection failure: r NULL) as an otpca_err. Only
 * the primary message is logged: DETAIL may quote a row's values. */
static otpca_err pg_err(otpca_store_impl *s, const PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char line[512];
    if (!msg)
        msg = PQerrorMessage(s->conn);
    if (state) {
        if (strcmp(state, "23505") == 0) {
            log_debug("store: %s: already exists", what);
            return OTPCA_ERR_EXISTS;
        }
        if (strcmp(state, "23503") == 0) {
            log_debug("store: %s: refers to an unknown batch, manager or operator", what);
            return OTPCA_ERR_NOT_FOUND;
        }
        if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0) {
            log_debug("store: %s: %s", what, one_line(msg, line, sizeof line));
            return OTPCA_ERR_INVALID_ARG;
        }
        if (strcmp(state, "53200") == 0) {
            log_error("store: %s: the PostgreSQL server is out of memory", what);
            return OTPCA_ERR_NOMEM;
        }
        if (strcmp(state, "55P03") == 0) {
            log_error("store: %s: busy (another writer held the lock for more than %s)", what, LOCK_TIMEOUT);
            return OTPCA_ERR_IO;
        }
    }
    log_error("store: %s: %s: %s%s%s%s", what, s->where, one_line(msg, line, sizeof line), state ? " (SQLSTATE " : "",
              state ? state : "", state ? ")" : "");
    return OTPCA_ERR_IO;
}

/* ---- parameters: values that outlive the call, binary unless text ---- */

typedef struct params {
    int n;
    const char *val[MAX_PARAMS];
    int len[MAX_PARAMS];
    int fmt[MAX_PARAMS];
    unsigned char ints[MAX_PARAMS][8];
} params;

static void p_int(params *p, uint64_t v)
{
    unsigned char *b = p->ints[p->n];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (56 - 8 * i));
    p->val[p->n] = (const char *)b;
    p->len[p->n] = 8;
    p->fmt[p->n++] = 1;
}

/* Text kept as given ("" stays ""). */
static void p_str(params *p, const char *v)
{
    p->val[p->n] = v;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

/* Text, NULL for "" (foreign keys, "none"), as the SQLite backend binds it. */
static void p_text(params *p, const char *v)
{
    p_str(p, v && *v ? v : NULL);
}

/* A blob, empty (not NULL) if n is 0. */
static void p_blob(params *p, const void *v, size_t n)
{
    p->val[p->n] = n ? (const char *)v : "";
    p->len[p->n] = (int)n;
    p->fmt[p->n++] = 1;
}

/* A blob, or NULL if v is NULL or n is 0. */
static void p_blob_opt(params *p, const void *v, size_t n)
{
    if (v && n) {
        p_blob(p, v, n);
    } else {
        p->val[p->n] = NULL;
        p->len[p->n] = 0;
        p->fmt[p->n++] = 1;
    }
}

/* ---- binary columns: -1 when the stored value does not fit its field ---- */

static int col_u64(const PGresult *r, int row, int col, uint64_t *v)
{
    *v = 0;
    if (PQgetisnull(r, row, col))
        return 0;
    if (PQgetlength(r, row, col) != 8)
        return -1;
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
    for (int i = 0; i < 8; i++)
        *v = *v << 8 | b[i];
    return 0;
}

static uint64_t col_int(const PGresult *r, int row, int col, int *bad)
{
    uint64_t v = 0;
    if (col_u64(r, row, col, &v))
        *bad = 1;
    return v;
}

/* NUL-terminated text shorter than cap; NULL reads as "". */
static int col_text(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    int n = PQgetlength(r, row, col);
    dst[0] = '\0';
    if (PQgetisnull(r, row, col))
        return 0;
    if (n < 0 || (size_t)n >= cap)
        return -1;
    memcpy(dst, PQgetvalue(r, row, col), (size_t)n);
    dst[n] = '\0';
    return strlen(dst) == (size_t)n ? 0 : -1;
}

/* At most cap bytes; NULL reads as empty. */
static int col_blob(const PGresult *r, int row, int col, void *dst, size_t cap, size_t *len)
{
    int n = PQgetisnull(r, row, col) ? 0 : PQgetlength(r, row, col);
    if (n < 0 || (size_t)n > cap)
        return -1;
    if (n)
        memcpy(dst, PQgetvalue(r, row, col), (size_t)n);
    if (len)
        *len = (size_t)n;
    return 0;
}

static int col_blob_exact(const PGresult *r, int row, int col, void *dst, size_t n)
{
    size_t len = 0;
    return (col_blob(r, row, col, dst, n, &len) || len != n) ? -1 : 0;
}

/* A boolean (binary: one byte); NULL and anything else read as false. */
static int col_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetlength(r, row, col) == 1 && PQgetvalue(r, row, col)[0] == 1;
}

/* ------------------------------------------------------------ connection */

static void notice_to_log(void *arg, const char *msg)
{
    (void)arg;
    char line[512];
    log_debug("store: PostgreSQL says: %s", one_line(msg, line, sizeof line));
}

/* What every connection (and reconnection) sets: notices to the debug
 * log, UTF-8, how long a writer waits for the lock, no JIT. */
static otpca_err session_setup(otpca_store_impl *s)
{
    PQsetNoticeProcessor(s->conn, notice_to_log, NULL);
    if (PQsetClientEncoding(s->conn, "UTF8") != 0)
        return pg_err(s, NULL, "set the client encoding");
    /* No JIT: the bulk add's statement costs enough to be compiled, which
     * took 40 of its 60 ms per 1,000 devices; nothing here runs long
     * enough to win it back. */
    PGresult *r = PQexec(s->conn, "SET client_min_messages = warning; SET lock_timeout = '" LOCK_TIMEOUT "'; "
                                  "SET jit = off");
    otpca_err ret = PQresultStatus(r) == PGRES_COMMAND_OK ? OTPCA_ERR_OK : pg_err(s, r, "configure the session");
    PQclear(r);
    memset(s->prepared, 0, sizeof s->prepared);
    return ret;
}

/* Outside any transaction, a connection that broke (a server restart) is
 * made again once; inside one, the failure stands (it spoils the
 * transaction, as it would have anyway). */
static otpca_err conn_ready(otpca_store_impl *s)
{
    if (PQstatus(s->conn) == CONNECTION_OK)
        return OTPCA_ERR_OK;
    if (s->in_tx || s->snap)
        return pg_err(s, NULL, "the connection to the server was lost");
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK)
        return pg_err(s, NULL, "reconnect");
    log_warn("store: reconnected to %s", s->where);
    return session_setup(s);
}

/* A statement without parameters, in text (transaction control, DDL). */
static otpca_err simple(otpca_store_impl *s, const char *sql, const char *what)
{
    otpca_err ret = conn_ready(s);
    if (ret)
        return ret;
    PGresult *r = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    ret = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? OTPCA_ERR_OK : pg_err(s, r, what);
    PQclear(r);
    return ret;
}

/* Runs statement id with p; *out (if not NULL) gets the result, which the
 * caller clears. */
static otpca_err exec_st(otpca_store_impl *s, enum st_id id, const params *p, PGresult **out, const char *what)
{
    static const params none;
    char name[24];
    otpca_err ret = conn_ready(s);
    if (ret)
        return ret;
    if (!p)
        p = &none;
    snprintf(name, sizeof name, "otpca_store_%d", (int)id);
    Oid types[MAX_PARAMS];
    int n = (int)strlen(SQL[id].types);
    if (n != p->n) {
        log_error("store: statement %d takes %d parameters, not %d", (int)id, n, p->n);
        return OTPCA_ERR_INTERNAL;
    }
    for (int i = 0; i < n; i++)
        types[i] = SQL[id].types[i] == 'b' ? 17 : SQL[id].types[i] == 'i' ? 20 : 25;
    PGresult *r;
    if (SQL[id].replan) {
        r = PQexecParams(s->conn, SQL[id].sql, n, types, p->val, p->len, p->fmt, 1);
    } else {
        if (!s->prepared[id]) {
            r = PQprepare(s->conn, name, SQL[id].sql, n, types);
            ret = PQresultStatus(r) == PGRES_COMMAND_OK ? OTPCA_ERR_OK : pg_err(s, r, "prepare a statement");
            PQclear(r);
            if (ret)
                return ret;
            s->prepared[id] = 1;
        }
        r = PQexecPrepared(s->conn, name, p->n, p->val, p->len, p->fmt, 1);
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out)
            *out = r;
        else
            PQclear(r);
        return OTPCA_ERR_OK;
    }
    ret = pg_err(s, r, what);
    PQclear(r);
    return ret;
}

/* Rows a statement without a RETURNING clause touched. */
static int changed(const PGresult *r)
{
    return atoi(PQcmdTuples((PGresult *)r));
}

/* ---------------------------------------------------------- transactions */

static otpca_err spoiled(void)
{
    log_error("store: an earlier call failed half-way through this transaction; roll it back");
    return OTPCA_ERR_STATE;
}

static int tx_broken(otpca_store_impl *s)
{
    return s->spoiled || PQtransactionStatus(s->conn) != PQTRANS_INTRANS;
}

/* Rolls back whatever transaction the connection is in. */
static void abort_tx(otpca_store_impl *s)
{
    PGTransactionStatusType t = PQtransactionStatus(s->conn);
    if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR) {
        PGresult *r = PQexec(s->conn, "ROLLBACK");
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            (void)pg_err(s, r, "roll back");
        PQclear(r);
    }
}

static otpca_err pg_begin(otpca_store_impl *s)
{
    if (s->in_tx || s->snap) {
        log_error("store: a transaction is already open on this handle");
        return OTPCA_ERR_STATE;
    }
    otpca_err ret = simple(s, "BEGIN; LOCK TABLE change_counter IN EXCLUSIVE MODE", "begin a transaction");
    if (ret) {
        abort_tx(s);
        return ret;
    }
    s->in_tx = 1;
    s->spoiled = 0;
    return OTPCA_ERR_OK;
}

static void pg_rollback(otpca_store_impl *s)
{
    if (s->in_tx)
        abort_tx(s);
    s->in_tx = 0;
    s->spoiled = 0;
}

static otpca_err pg_commit(otpca_store_impl *s)
{
    if (!s->in_tx) {
        log_error("store: commit without a transaction");
        return OTPCA_ERR_STATE;
    }
    if (tx_broken(s)) {
        pg_rollback(s);
        return spoiled();
    }
    s->in_tx = 0;
    PGresult *r = PQexec(s->conn, "COMMIT");
    otpca_err ret = OTPCA_ERR_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        ret = pg_err(s, r, "commit");
    else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) /* the server rolled back instead */
        ret = spoiled();
    PQclear(r);
    if (ret)
        abort_tx(s);
    return ret;
}

/*
 * The scope of one call that writes. In the caller's transaction: a
 * savepoint if the call can fail on its input with an error (a
 * constraint), so that the failure undoes the call alone; a call that
 * cannot (it checks first, or cannot conflict) runs bare, and if it fails
 * from below the server aborts the transaction, which spoils it. Outside:
 * either nothing (one statement is its own transaction) or, for a call
 * that needs the writers' lock over several statements (lock), a
 * transaction of its own that takes it.
 */
enum scope { SCOPE_NONE, SCOPE_OWN, SCOPE_SAVEPOINT };
enum { NO_LOCK = 0, LOCK = 1 };
enum { BARE = 0, SAVEPOINT = 1 };

static otpca_err write_enter(otpca_store_impl *s, int lock, int savepoint, enum scope *sc)
{
    otpca_err ret;
    *sc = SCOPE_NONE;
    if (s->snap) {
        log_error("store: a walk's callback may not write");
        return OTPCA_ERR_STATE;
    }
    if (s->in_tx) {
        if (tx_broken(s))
            return spoiled();
        if (!savepoint)
            return OTPCA_ERR_OK;
        if ((ret = simple(s, "SAVEPOINT otpca_call", "start a write")))
            return ret;
        *sc = SCOPE_SAVEPOINT;
        return OTPCA_ERR_OK;
    }
    if (!lock)
        return OTPCA_ERR_OK;
    if ((ret = simple(s, "BEGIN; LOCK TABLE change_counter IN EXCLUSIVE MODE", "start a write"))) {
        abort_tx(s);
        return ret;
    }
    *sc = SCOPE_OWN;
    return OTPCA_ERR_OK;
}

/* Ends the scope, keeping the call's work if ret is OK. Returns ret, or
 * the failure to keep it. */
static otpca_err write_leave(otpca_store_impl *s, enum scope sc, otpca_err ret)
{
    otpca_err r2;
    switch (sc) {
    case SCOPE_NONE:
        break;
    case SCOPE_OWN:
        if (!ret)
            ret = simple(s, "COMMIT", "commit");
        if (ret)
            abort_tx(s);
        break;
    case SCOPE_SAVEPOINT:
        r2 = simple(s, ret ? "ROLLBACK TO SAVEPOINT otpca_call; RELEASE SAVEPOINT otpca_call"
                           : "RELEASE SAVEPOINT otpca_call",
                    "end a write");
        if (r2) {
            s->spoiled = 1;
            if (!ret)
                ret = r2;
        }
        break;
    }
    return ret;
}

/* A walk of more than one page outside any transaction reads all its
 * pages in one snapshot (*own: this walk opened it). */
static otpca_err snap_enter(otpca_store_impl *s, size_t limit, int *own)
{
    *own = 0;
    if (s->in_tx || s->snap || limit <= PAGE)
        return OTPCA_ERR_OK;
    otpca_err ret = simple(s, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", "start a read");
    if (ret) {
        abort_tx(s);
        return ret;
    }
    s->snap = *own = 1;
    return OTPCA_ERR_OK;
}

static otpca_err snap_leave(otpca_store_impl *s, int own, otpca_err ret)
{
    if (!own)
        return ret;
    s->snap = 0;
    otpca_err r2 = simple(s, "COMMIT", "end a read");
    if (r2)
        abort_tx(s);
    return ret ? ret : r2;
}

/* ------------------------------------------------------ open and migrate */

static otpca_err too_new(otpca_store_impl *s, unsigned v)
{
    log_error("store: %s is at schema version %u; this build knows up to %u (upgrade otpca)", s->where, v,
              SCHEMA_VERSION);
    return OTPCA_ERR_UNSUPPORTED;
}

/* One integer from a text-format query's first row (found 0: no row or NULL). */
static otpca_err query_int(otpca_store_impl *s, const char *sql, long long *v, int *found, PGresult **failed)
{
    PGresult *r = PQexec(s->conn, sql);
    *found = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        *failed = r;
        return OTPCA_ERR_IO;
    }
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        *v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *found = 1;
    }
    PQclear(r);
    return OTPCA_ERR_OK;
}

/* The schema version of the store in the connection's current schema: 0
 * for one with no tables at all; CONFIG for another program's tables. */
static otpca_err read_version(otpca_store_impl *s, unsigned *version)
{
    long long tables = 0, meta = 0, v = 0;
    int found = 0;
    PGresult *r = NULL;
    otpca_err ret = query_int(s,
                              "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                              "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                              "AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                              &tables, &found, &r);
    if (!ret)
        ret = query_int(s,
                        "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
                        "AND tablename = 'meta'",
                        &meta, &found, &r);
    if (ret) {
        ret = pg_err(s, r, "read the schema");
        PQclear(r);
        return ret;
    }
    if (tables == 0) {
        *version = 0;
        return OTPCA_ERR_OK;
    }
    if (meta == 0 || query_int(s, "SELECT num FROM meta WHERE key = 'schema_version'", &v, &found, &r)) {
        PQclear(r);
        log_error("store: %s holds tables but is not an otpca store", s->where);
        return OTPCA_ERR_CONFIG;
    }
    if (!found || v < 1 || v > 0xffffff) {
        log_error("store: %s has no valid schema version", s->where);
        return OTPCA_ERR_CONFIG;
    }
    *version = (unsigned)v;
    return OTPCA_ERR_OK;
}

/* One step towards the build's version, in one transaction under an
 * advisory lock (the tables may not exist yet): the version is read again
 * there, since another handle may have migrated meanwhile. */
static otpca_err migrate_one(otpca_store_impl *s, unsigned *v)
{
    char sql[160];
    unsigned from = 0;
    otpca_err ret = simple(s, "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", "start a migration");
    if (ret)
        goto out;
    if ((ret = read_version(s, &from)))
        goto out;
    if (from > SCHEMA_VERSION) {
        ret = too_new(s, from);
        goto out;
    }
    if (from < SCHEMA_VERSION) {
        if ((ret = simple(s, MIGRATIONS[from], "migrate the schema")))
            goto out;
        snprintf(sql, sizeof sql,
                 "INSERT INTO meta(key, num) VALUES ('schema_version', %u) "
                 "ON CONFLICT (key) DO UPDATE SET num = excluded.num",
                 from + 1);
        if ((ret = simple(s, sql, "record the schema version")))
            goto out;
    }
    if ((ret = simple(s, "COMMIT", "commit a migration")))
        goto out;
    *v = from < SCHEMA_VERSION ? from + 1 : from;
    if (from < SCHEMA_VERSION)
        log_info("store: %s migrated to schema version %u", s->where, *v);
    ret = OTPCA_ERR_OK;
out:
    if (ret)
        abort_tx(s);
    return ret;
}

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

static void pg_destroy(otpca_store_impl **p)
{
    if (!p || !*p)
        return;
    otpca_store_impl *s = *p;
    if (s->conn) {
        if (s->in_tx || s->snap)
            abort_tx(s);
        PQfinish(s->conn);
    }
    free(s);
    *p = NULL;
}

/* url: the whole postgresql:// (or postgres://) URL, which libpq reads. */
static otpca_err pg_open(const char *url, otpca_store_impl **out)
{
    otpca_store_impl *s = NULL;
    PQconninfoOption *opts = NULL;
    char *err = NULL, line[512];
    otpca_err ret;

    s = calloc(1, sizeof *s);
    if (!s) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    otpca_store_url_redact(url, s->where, sizeof s->where);
    opts = PQconninfoParse(url, &err);
    if (!opts) {
        log_error("store: %s is not a valid PostgreSQL URL: %s", s->where, one_line(err, line, sizeof line));
        ret = err ? OTPCA_ERR_CONFIG : OTPCA_ERR_NOMEM;
        goto out;
    }
    /* Later keywords win: the URL may set its own application name. */
    const char *const keys[] = {"application_name", "connect_timeout", "dbname", NULL};
    const char *const vals[] = {"otpca", "10", url, NULL};
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conn) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        const char *m = PQerrorMessage(s->conn);
        log_error("store: cannot connect to PostgreSQL at %s: %s", s->where, one_line(m, line, sizeof line));
        ret = OTPCA_ERR_IO;
        goto out;
    }
    snprintf(s->where, sizeof s->where, "postgresql://%s:%s/%s", PQhost(s->conn), PQport(s->conn),
             PQdb(s->conn));
    if ((ret = session_setup(s)))
        goto out;
    if ((ret = migrate(s)))
        goto out;
    *out = s;
    s = NULL;
    ret = OTPCA_ERR_OK;
out:
    PQconninfoFree(opts);
    PQfreemem(err);
    pg_destroy(&s);
    return ret;
}

static unsigned pg_schema_version(otpca_store_impl *s)
{
    return s->version;
}

/* --------------------------------------------------------------- devices */

static void bind_device(params *p, const otpca_device *d)
{
    p_str(p, d->serial);
    p_blob(p, d->mac, d->mac_len);
    p_blob_opt(p, d->pubkey, d->pubkey_len);
    p_text(p, d->batch);
    p_int(p, (uint64_t)d->state);
    p_blob(p, d->seed_env, d->seed_env_len);
    p_int(p, d->digits);
    p_int(p, d->period);
    p_int(p, d->algorithm);
    p_int(p, d->last_step);
    p_int(p, d->failures);
    p_blob_opt(p, d->cert_hash, d->has_cert ? sizeof d->cert_hash : 0);
    p_text(p, d->manager);
    p_int(p, d->flagged ? 1 : 0);
    p_int(p, d->revoked_at);
    p_int(p, d->revoke_reason);
}

static otpca_err device_from_row(const PGresult *r, int row, otpca_device *d)
{
    int bad = 0;
    memset(d, 0, sizeof *d);
    if (col_text(r, row, 0, d->serial, sizeof d->serial) ||
        col_blob(r, row, 1, d->mac, sizeof d->mac, &d->mac_len) ||
        col_blob(r, row, 2, d->pubkey, sizeof d->pubkey, &d->pubkey_len) ||
        col_text(r, row, 3, d->batch, sizeof d->batch) ||
        col_blob(r, row, 5, d->seed_env, sizeof d->seed_env, &d->seed_env_len) ||
        col_text(r, row, 12, d->manager, sizeof d->manager))
        return unreadable("device");
    d->state = (int)col_int(r, row, 4, &bad);
    d->digits = (unsigned)col_int(r, row, 6, &bad);
    d->period = (unsigned)col_int(r, row, 7, &bad);
    d->algorithm = (unsigned)col_int(r, row, 8, &bad);
    d->last_step = col_int(r, row, 9, &bad);
    d->failures = (uint32_t)col_int(r, row, 10, &bad);
    if (!PQgetisnull(r, row, 11)) {
        if (col_blob_exact(r, row, 11, d->cert_hash, sizeof d->cert_hash))
            bad = 1;
        d->has_cert = 1;
    }
    d->flagged = col_int(r, row, 13, &bad) != 0;
    d->seq = col_int(r, row, 14, &bad);
    d->revoked_at = col_int(r, row, 15, &bad);
    d->revoke_reason = (unsigned)col_int(r, row, 16, &bad);
    return bad ? unreadable("device") : OTPCA_ERR_OK;
}

/* Add and update: one statement writes the device, numbered by the
 * change counter, and its change-log row (see the top of the file). */
static otpca_err device_put(otpca_store_impl *s, enum st_id id, otpca_device *d)
{
    const char *what = id == ST_DEVICE_ADD ? "add a device" : "update a device";
    params p = {0};
    PGresult *r = NULL;
    uint64_t seq = 0;
    enum scope sc;
    otpca_err ret = write_enter(s, NO_LOCK, BARE, &sc);
    if (ret)
        return ret;
    bind_device(&p, d);
    ret = exec_st(s, id, &p, &r, what);
    if (!ret) {
        if (PQntuples(r) != 1) {
            ret = unreadable("change-log number");
        } else if (!col_bool(r, 0, 1)) {
            log_debug("store: %s: %s", what, id == ST_DEVICE_ADD ? "already exists" : "unknown serial");
            ret = id == ST_DEVICE_ADD ? OTPCA_ERR_EXISTS : OTPCA_ERR_NOT_FOUND;
        } else if (!col_bool(r, 0, 2)) {
            log_debug("store: %s: refers to an unknown batch or manager", what);
            ret = OTPCA_ERR_NOT_FOUND;
        } else if (PQgetisnull(r, 0, 0) || col_u64(r, 0, 0, &seq)) {
            ret = unreadable("change-log number");
        }
    }
    PQclear(r);
    ret = write_leave(s, sc, ret);
    if (!ret)
        d->seq = seq;
    return ret;
}

static otpca_err pg_device_add(otpca_store_impl *s, otpca_device *d)
{
    return device_put(s, ST_DEVICE_ADD, d);
}

static otpca_err pg_device_update(otpca_store_impl *s, otpca_device *d)
{
    return device_put(s, ST_DEVICE_UPDATE, d);
}

/* ---- bulk add: COPY into the stage table, then one statement ---- */

struct copy_buf {
    char data[64 * 1024];
    size_t len;
};

/* Sends what buf holds; 0, or -1 if libpq refused it. */
static int copy_flush(otpca_store_impl *s, struct copy_buf *b)
{
    int ok = !b->len || PQputCopyData(s->conn, b->data, (int)b->len) == 1;
    b->len = 0;
    return ok ? 0 : -1;
}

/* COPY's text format by hand (libpq has no row encoder): fields split by
 * tabs, \N for NULL, a bytea as \\x and hex (the backslash doubled for
 * COPY). Text needs no escapes: ids are [A-Za-z0-9._:-] (store.c). */
static void copy_text(struct copy_buf *b, const char *v)
{
    b->len += (size_t)snprintf(b->data + b->len, sizeof b->data - b->len, "%s\t", v && *v ? v : "\\N");
}

static void copy_int(struct copy_buf *b, uint64_t v)
{
    /* the bit pattern as BIGINT, as p_int binds it */
    b->len += (size_t)snprintf(b->data + b->len, sizeof b->data - b->len, "%lld\t", (long long)(int64_t)v);
}

static void copy_blob(struct copy_buf *b, const uint8_t *v, size_t n, int null_if_empty)
{
    static const char hex[] = "0123456789abcdef";
    if (!n && null_if_empty) {
        copy_text(b, NULL);
        return;
    }
    memcpy(b->data + b->len, "\\\\x", 3);
    b->len += 3;
    for (size_t i = 0; i < n; i++) {
        b->data[b->len++] = hex[v[i] >> 4];
        b->data[b->len++] = hex[v[i] & 15];
    }
    b->data[b->len++] = '\t';
}

/* Room for one row: every field at its largest (ids 64, blobs in hex,
 * 20 digits a number) and the separators. */
#define COPY_ROW_MAX (4 * (OTPCA_STORE_ID_MAX + 4) + 2 * (8 + 65 + OTPCA_STORE_SEED_ENV_MAX + 32) + 4 * 4 + 12 * 22)

static void copy_device(struct copy_buf *b, size_t ord, const otpca_device *d)
{
    copy_int(b, ord);
    copy_text(b, d->serial);
    copy_blob(b, d->mac, d->mac_len, 0);
    copy_blob(b, d->pubkey, d->pubkey_len, 1);
    copy_text(b, d->batch);
    copy_int(b, (uint64_t)d->state);
    copy_blob(b, d->seed_env, d->seed_env_len, 0);
    copy_int(b, d->digits);
    copy_int(b, d->period);
    copy_int(b, d->algorithm);
    copy_int(b, d->last_step);
    copy_int(b, d->failures);
    copy_blob(b, d->cert_hash, d->has_cert ? sizeof d->cert_hash : 0, 1);
    copy_text(b, d->manager);
    copy_int(b, d->flagged ? 1 : 0);
    copy_int(b, d->revoked_at);
    copy_int(b, d->revoke_reason);
    b->data[b->len - 1] = '\n'; /* the last tab ends the row */
}

/* Stages the devices whose res[] is OK. */
static otpca_err stage_devices(otpca_store_impl *s, const otpca_device *d, size_t n, const otpca_err *res)
{
    otpca_err ret = simple(s, STAGE_SETUP, "make the import's stage table");
    if (ret)
        return ret;
    PGresult *r = PQexec(s->conn, "COPY pg_temp." STAGE " FROM STDIN");
    ret = PQresultStatus(r) == PGRES_COPY_IN ? OTPCA_ERR_OK : pg_err(s, r, "start the import's COPY");
    PQclear(r);
    if (ret)
        return ret;
    struct copy_buf *b = malloc(sizeof *b);
    int bad = !b;
    if (b) {
        b->len = 0;
        for (size_t i = 0; i < n && !bad; i++) {
            if (res[i])
                continue;
            if (sizeof b->data - b->len < COPY_ROW_MAX)
                bad = copy_flush(s, b);
            copy_device(b, i, &d[i]);
        }
        if (!bad)
            bad = copy_flush(s, b);
        free(b);
    }
    /* Ending the COPY with an error message makes the server abort it. */
    if (PQputCopyEnd(s->conn, bad ? "otpca: out of memory or connection lost" : NULL) != 1)
        bad = 1;
    while ((r = PQgetResult(s->conn))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !ret)
            ret = pg_err(s, r, "copy the import's rows");
        PQclear(r);
    }
    if (bad && !ret)
        ret = pg_err(s, NULL, "copy the import's rows");
    return ret;
}

/* The staged statement's answer into res[] and d[].seq. */
static otpca_err staged_results(const PGresult *r, otpca_device *d, size_t n, otpca_err *res, size_t staged)
{
    uint64_t next = 0; /* rows come in ord order, one per staged device */
    if ((size_t)PQntuples(r) != staged)
        return unreadable("import answer");
    for (int row = 0; row < PQntuples(r); row++) {
        uint64_t ord = 0, seq = 0;
        if (col_u64(r, row, 0, &ord) || ord < next || ord >= n || res[ord] != OTPCA_ERR_OK)
            return unreadable("import answer");
        next = ord + 1;
        if (!col_bool(r, row, 1))
            res[ord] = OTPCA_ERR_EXISTS;
        else if (!col_bool(r, row, 2))
            res[ord] = OTPCA_ERR_NOT_FOUND;
        else if (PQgetisnull(r, row, 3) || col_u64(r, row, 3, &seq))
            return unreadable("change-log number");
        d[ord].seq = seq;
    }
    return OTPCA_ERR_OK;
}

static otpca_err pg_device_add_many(otpca_store_impl *s, otpca_device *d, size_t n, otpca_err *res)
{
    size_t staged = 0;
    for (size_t i = 0; i < n; i++) {
        d[i].seq = 0;
        staged += res[i] == OTPCA_ERR_OK;
    }
    if (!staged)
        return OTPCA_ERR_OK;
    enum scope sc;
    PGresult *r = NULL;
    otpca_err ret = write_enter(s, LOCK, BARE, &sc);
    if (ret)
        return ret;
    if (!(ret = stage_devices(s, d, n, res)) && !(ret = exec_st(s, ST_DEVICE_ADD_STAGED, NULL, &r, "add devices")))
        ret = staged_results(r, d, n, res, staged);
    PQclear(r);
    if (ret && sc == SCOPE_NONE)
        s->spoiled = 1; /* the caller's transaction has some of the rows, or none: it cannot go on */
    return write_leave(s, sc, ret);
}

static otpca_err pg_device_get(otpca_store_impl *s, const char *serial, otpca_device *d)
{
    params p = {0};
    PGresult *r = NULL;
    p_str(&p, serial);
    otpca_err ret = exec_st(s, ST_DEVICE_GET, &p, &r, "read a device");
    if (ret)
        return ret;
    ret = PQntuples(r) == 1 ? device_from_row(r, 0, d) : OTPCA_ERR_NOT_FOUND;
    PQclear(r);
    return ret;
}

/* Runs a device query page by page (keyset: after the last serial or
 * seq), handing each row to fn until it returns non-zero (that device
 * counts as handed over) or limit rows went by. *last: its seq. A page is
 * fetched whole before fn sees it, so fn may call the store (but not
 * write while the walk holds its snapshot). */
static otpca_err device_walk(otpca_store_impl *s, enum st_id id, const char *after, uint64_t since, size_t limit,
                             otpca_device_fn fn, void *arg, uint64_t *last)
{
    char key[OTPCA_STORE_ID_MAX + 1];
    otpca_device d;
    size_t done = 0;
    int own = 0, stop = 0;
    snprintf(key, sizeof key, "%s", after ? after : "");
    otpca_err ret = snap_enter(s, limit, &own);
    while (!ret && !stop && done < limit) {
        size_t want = limit - done < PAGE ? limit - done : PAGE;
        params p = {0};
        PGresult *r = NULL;
        if (id == ST_DEVICE_SCAN)
            p_str(&p, key);
        else
            p_int(&p, since);
        p_int(&p, want);
        if ((ret = exec_st(s, id, &p, &r, "read devices")))
            break;
        int n = PQntuples(r);
        for (int i = 0; i < n && !stop; i++) {
            if ((ret = device_from_row(r, i, &d)))
                break;
            done++;
            since = d.seq;
            memcpy(key, d.serial, sizeof key);
            if (last)
                *last = d.seq;
            stop = fn(&d, arg) != 0;
        }
        PQclear(r);
        if ((size_t)n < want)
            break;
    }
    return snap_leave(s, own, ret);
}

static otpca_err pg_device_scan(otpca_store_impl *s, const char *after, size_t limit, otpca_device_fn fn, void *arg)
{
    return device_walk(s, ST_DEVICE_SCAN, after, 0, limit, fn, arg, NULL);
}

static otpca_err pg_changes(otpca_store_impl *s, uint64_t since, size_t limit, otpca_device_fn fn, void *arg,
                            uint64_t *next)
{
    uint64_t last = since;
    otpca_err ret = device_walk(s, ST_CHANGES, NULL, since, limit, fn, arg, &last);
    if (!ret)
        *next = last;
    return ret;
}

static otpca_err pg_seq(otpca_store_impl *s, uint64_t *head, uint64_t *oldest)
{
    PGresult *r = NULL;
    otpca_err ret = exec_st(s, ST_SEQ, NULL, &r, "read the change log");
    if (ret)
        return ret;
    /* An empty log: both NULL, read as 0. */
    if (PQntuples(r) != 1 || col_u64(r, 0, 0, head) || col_u64(r, 0, 1, oldest))
        ret = unreadable("change-log number");
    PQclear(r);
    return ret;
}

static otpca_err pg_device_counts(otpca_store_impl *s, uint64_t counts[7])
{
    PGresult *r = NULL;
    otpca_err ret = exec_st(s, ST_COUNTS, NULL, &r, "count devices");
    if (ret)
        return ret;
    memset(counts, 0, 7 * sizeof counts[0]);
    for (int i = 0; i < PQntuples(r); i++) {
        uint64_t state = 0, n = 0;
        if (col_u64(r, i, 0, &state) || col_u64(r, i, 1, &n)) {
            ret = unreadable("device count");
            break;
        }
        if (state >= 1 && state <= 6)
            counts[state] = n;
        counts[0] += n;
    }
    PQclear(r);
    return ret;
}

/* ---------------------------------------------- batches, managers, operators */

/* A write of one statement; *n (if not NULL): the rows it touched.
 * savepoint: it can fail on its input (see write_enter). */
static otpca_err write1(otpca_store_impl *s, enum st_id id, const params *p, int savepoint, int *n,
                        const char *what)
{
    PGresult *r = NULL;
    enum scope sc;
    otpca_err ret = write_enter(s, NO_LOCK, savepoint, &sc);
    if (ret)
        return ret;
    ret = exec_st(s, id, p, &r, what);
    if (!ret && n)
        *n = changed(r);
    PQclear(r);
    return write_leave(s, sc, ret);
}

static otpca_err pg_batch_add(otpca_store_impl *s, const otpca_batch *b)
{
    params p = {0};
    p_str(&p, b->id);
    p_blob(&p, b->product_pub, sizeof b->product_pub);
    return write1(s, ST_BATCH_ADD, &p, SAVEPOINT, NULL, "add a batch");
}

static otpca_err pg_batch_get(otpca_store_impl *s, const char *id, otpca_batch *b)
{
    params p = {0};
    PGresult *r = NULL;
    p_str(&p, id);
    otpca_err ret = exec_st(s, ST_BATCH_GET, &p, &r, "read a batch");
    if (ret)
        return ret;
    if (PQntuples(r) != 1) {
        ret = OTPCA_ERR_NOT_FOUND;
    } else {
        memset(b, 0, sizeof *b);
        if (col_text(r, 0, 0, b->id, sizeof b->id) || col_blob_exact(r, 0, 1, b->product_pub, sizeof b->product_pub))
            ret = unreadable("batch");
    }
    PQclear(r);
    return ret;
}

static otpca_err pg_manager_add(otpca_store_impl *s, const otpca_manager *m)
{
    params p = {0};
    p_str(&p, m->id);
    p_blob(&p, m->curve_pub, sizeof m->curve_pub);
    p_blob(&p, m->ca_pub, sizeof m->ca_pub);
    p_blob(&p, m->ca_cert, m->ca_cert_len);
    p_int(&p, m->revoked ? 1 : 0);
    return write1(s, ST_MANAGER_ADD, &p, SAVEPOINT, NULL, "add a manager");
}

static otpca_err manager_from_row(const PGresult *r, int row, otpca_manager *m)
{
    int bad = 0;
    memset(m, 0, sizeof *m);
    if (col_text(r, row, 0, m->id, sizeof m->id) || col_blob_exact(r, row, 1, m->curve_pub, sizeof m->curve_pub) ||
        col_blob_exact(r, row, 2, m->ca_pub, sizeof m->ca_pub) ||
        col_blob(r, row, 3, m->ca_cert, sizeof m->ca_cert, &m->ca_cert_len))
        return unreadable("manager");
    m->revoked = col_int(r, row, 4, &bad) != 0;
    return bad ? unreadable("manager") : OTPCA_ERR_OK;
}

static otpca_err manager_one(otpca_store_impl *s, enum st_id id, const params *p, otpca_manager *m)
{
    PGresult *r = NULL;
    otpca_err ret = exec_st(s, id, p, &r, "read a manager");
    if (ret)
        return ret;
    ret = PQntuples(r) == 1 ? manager_from_row(r, 0, m) : OTPCA_ERR_NOT_FOUND;
    PQclear(r);
    return ret;
}

static otpca_err pg_manager_get(otpca_store_impl *s, const char *id, otpca_manager *m)
{
    params p = {0};
    p_str(&p, id);
    return manager_one(s, ST_MANAGER_GET, &p, m);
}

static otpca_err pg_manager_by_curve(otpca_store_impl *s, const uint8_t curve_pub[32], otpca_manager *m)
{
    params p = {0};
    p_blob(&p, curve_pub, 32);
    return manager_one(s, ST_MANAGER_BY_CURVE, &p, m);
}

static otpca_err pg_manager_revoke(otpca_store_impl *s, const char *id)
{
    params p = {0};
    int n = 0;
    p_str(&p, id);
    otpca_err ret = write1(s, ST_MANAGER_REVOKE, &p, BARE, &n, "revoke a manager");
    return ret ? ret : n ? OTPCA_ERR_OK : OTPCA_ERR_NOT_FOUND;
}

/* Managers are few: one statement, every row. */
static otpca_err pg_manager_scan(otpca_store_impl *s, otpca_manager_fn fn, void *arg)
{
    PGresult *r = NULL;
    otpca_manager m;
    otpca_err ret = exec_st(s, ST_MANAGER_SCAN, NULL, &r, "read managers");
    if (ret)
        return ret;
    for (int i = 0; i < PQntuples(r); i++) {
        if ((ret = manager_from_row(r, i, &m)) || fn(&m, arg))
            break;
    }
    PQclear(r);
    return ret;
}

static otpca_err pg_operator_add(otpca_store_impl *s, const otpca_operator *o)
{
    params p = {0};
    p_str(&p, o->id);
    p_blob(&p, o->seed_env, o->seed_env_len);
    p_int(&p, o->digits);
    p_int(&p, o->period);
    p_int(&p, o->algorithm);
    p_int(&p, o->last_step);
    return write1(s, ST_OPERATOR_ADD, &p, SAVEPOINT, NULL, "add an operator");
}

static otpca_err pg_operator_get(otpca_store_impl *s, const char *id, otpca_operator *o)
{
    params p = {0};
    PGresult *r = NULL;
    int bad = 0;
    p_str(&p, id);
    otpca_err ret = exec_st(s, ST_OPERATOR_GET, &p, &r, "read an operator");
    if (ret)
        return ret;
    if (PQntuples(r) != 1) {
        ret = OTPCA_ERR_NOT_FOUND;
    } else {
        memset(o, 0, sizeof *o);
        if (col_text(r, 0, 0, o->id, sizeof o->id) ||
            col_blob(r, 0, 1, o->seed_env, sizeof o->seed_env, &o->seed_env_len)) {
            ret = unreadable("operator");
        } else {
            o->digits = (unsigned)col_int(r, 0, 2, &bad);
            o->period = (unsigned)col_int(r, 0, 3, &bad);
            o->algorithm = (unsigned)col_int(r, 0, 4, &bad);
            o->last_step = col_int(r, 0, 5, &bad);
            if (bad)
                ret = unreadable("operator");
        }
    }
    PQclear(r);
    return ret;
}

/* One conditional UPDATE: two windows opened with the same code race on
 * the row; the second waits for the first, re-checks the condition on the
 * row it committed, and changes nothing. */
static otpca_err pg_operator_accept_step(otpca_store_impl *s, const char *id, uint64_t step)
{
    params p = {0};
    otpca_operator o;
    int n = 0;
    p_str(&p, id);
    p_int(&p, step);
    otpca_err ret = write1(s, ST_OPERATOR_STEP, &p, BARE, &n, "accept an operator's step");
    if (ret || n)
        return ret;
    /* Nothing changed: unknown operator, or the step is not newer. */
    ret = pg_operator_get(s, id, &o);
    return ret ? ret : OTPCA_ERR_STATE;
}

static otpca_err pg_operator_grant(otpca_store_impl *s, const char *op, const char *manager)
{
    params p = {0};
    p_str(&p, op);
    p_str(&p, manager);
    return write1(s, ST_GRANT_ADD, &p, SAVEPOINT, NULL, "grant an operator a manager");
}

static otpca_err pg_operator_may(otpca_store_impl *s, const char *op, const char *manager)
{
    params p = {0};
    PGresult *r = NULL;
    p_str(&p, op);
    p_str(&p, manager);
    otpca_err ret = exec_st(s, ST_GRANT_GET, &p, &r, "read an operator's grants");
    if (ret)
        return ret;
    ret = PQntuples(r) > 0 ? OTPCA_ERR_OK : OTPCA_ERR_NOT_FOUND;
    PQclear(r);
    return ret;
}

/* ---------------------------------------------------------------- leases */

static otpca_err pg_lease_add(otpca_store_impl *s, const otpca_lease *l)
{
    params p = {0};
    p_blob(&p, l->window, sizeof l->window);
    p_str(&p, l->manager);
    p_str(&p, l->operator_);
    p_int(&p, l->not_before);
    p_int(&p, l->not_after);
    p_int(&p, l->max_enroll);
    p_str(&p, l->scope); /* "" means everything: an empty string, not NULL */
    p_int(&p, l->offline ? 1 : 0);
    p_blob_opt(&p, l->nonce, l->has_nonce ? sizeof l->nonce : 0);
    p_int(&p, l->closed_at);
    return write1(s, ST_LEASE_ADD, &p, SAVEPOINT, NULL, "add a lease");
}

static otpca_err lease_one(otpca_store_impl *s, enum st_id id, const uint8_t key[16], otpca_lease *l)
{
    params p = {0};
    PGresult *r = NULL;
    int bad = 0;
    size_t nonce_len = 0;
    p_blob(&p, key, 16);
    otpca_err ret = exec_st(s, id, &p, &r, "read a lease");
    if (ret)
        return ret;
    if (PQntuples(r) != 1) {
        ret = OTPCA_ERR_NOT_FOUND;
        goto out;
    }
    memset(l, 0, sizeof *l);
    if (col_blob_exact(r, 0, 0, l->window, sizeof l->window) || col_text(r, 0, 1, l->manager, sizeof l->manager) ||
        col_text(r, 0, 2, l->operator_, sizeof l->operator_) || col_text(r, 0, 6, l->scope, sizeof l->scope) ||
        col_blob(r, 0, 8, l->nonce, sizeof l->nonce, &nonce_len) || (nonce_len && nonce_len != sizeof l->nonce)) {
        ret = unreadable("lease");
        goto out;
    }
    l->not_before = col_int(r, 0, 3, &bad);
    l->not_after = col_int(r, 0, 4, &bad);
    l->max_enroll = col_int(r, 0, 5, &bad);
    l->offline = col_int(r, 0, 7, &bad) != 0;
    l->has_nonce = nonce_len != 0;
    l->closed_at = col_int(r, 0, 9, &bad);
    ret = bad ? unreadable("lease") : OTPCA_ERR_OK;
out:
    PQclear(r);
    return ret;
}

static otpca_err pg_lease_get(otpca_store_impl *s, const uint8_t window[16], otpca_lease *l)
{
    return lease_one(s, ST_LEASE_GET, window, l);
}

static otpca_err pg_lease_by_nonce(otpca_store_impl *s, const uint8_t nonce[16], otpca_lease *l)
{
    return lease_one(s, ST_LEASE_BY_NONCE, nonce, l);
}

/* OTPCA_ERR_OK the first time; STATE if it was closed already. */
static otpca_err pg_lease_close(otpca_store_impl *s, const uint8_t window[16], uint64_t when)
{
    params p = {0};
    otpca_lease l;
    int n = 0;
    p_blob(&p, window, 16);
    p_int(&p, when);
    otpca_err ret = write1(s, ST_LEASE_CLOSE, &p, BARE, &n, "close a lease");
    if (ret || n)
        return ret;
    ret = pg_lease_get(s, window, &l);
    return ret ? ret : OTPCA_ERR_STATE;
}

/* ------------------------------------------------------------------ meta */

static otpca_err pg_meta_get(otpca_store_impl *s, const char *key, uint8_t *buf, size_t cap, size_t *len)
{
    params p = {0};
    PGresult *r = NULL;
    p_str(&p, key);
    otpca_err ret = exec_st(s, ST_META_GET, &p, &r, "read meta");
    if (ret)
        return ret;
    if (PQntuples(r) != 1)
        ret = OTPCA_ERR_NOT_FOUND;
    else if (PQgetisnull(r, 0, 0) || col_blob(r, 0, 0, buf, cap, len))
        ret = unreadable("meta value");
    PQclear(r);
    return ret;
}

static otpca_err pg_meta_add(otpca_store_impl *s, const char *key, const uint8_t *val, size_t len)
{
    params p = {0};
    p_str(&p, key);
    p_blob(&p, val, len);
    return write1(s, ST_META_ADD, &p, SAVEPOINT, NULL, "add a meta value");
}

static otpca_err pg_meta_replace(otpca_store_impl *s, const char *key, const uint8_t *old, size_t old_len,
                                 const uint8_t *val, size_t len)
{
    params p = {0};
    int n = 0;
    p_str(&p, key);
    p_blob(&p, old, old_len);
    p_blob(&p, val, len);
    otpca_err ret = write1(s, ST_META_REPLACE, &p, BARE, &n, "replace a meta value");
    return ret || n ? ret : OTPCA_ERR_STATE;
}

/* --------------------------------------------------------------- records */

/* 1 if the stored row (REC_COLS) holds exactly r; flagged (column 9) is
 * the cloud's verdict, not content. */
static int record_same(const PGresult *res, const otpca_stored_record *r)
{
    char text[OTPCA_STORE_ID_MAX + 1];
    uint8_t window[16];
    uint64_t kind, time, step, reason;
    if (col_blob_exact(res, 0, 1, window, sizeof window) || memcmp(window, r->window, sizeof window) != 0)
        return 0;
    if (col_text(res, 0, 2, text, sizeof text) || strcmp(text, r->manager) != 0)
        return 0;
    if (col_text(res, 0, 4, text, sizeof text) || strcmp(text, r->serial) != 0)
        return 0;
    if (col_u64(res, 0, 3, &kind) || col_u64(res, 0, 5, &time) || col_u64(res, 0, 7, &step) ||
        col_u64(res, 0, 8, &reason))
        return 0;
    if (kind != (uint64_t)r->kind || time != r->time || step != r->step || reason != (uint64_t)r->reason)
        return 0;
    size_t cert_len = PQgetisnull(res, 0, 6) ? 0 : (size_t)PQgetlength(res, 0, 6);
    if (cert_len != (r->cert ? r->cert_len : 0))
        return 0;
    if (cert_len && memcmp(PQgetvalue(res, 0, 6), r->cert, cert_len) != 0)
        return 0;
    int has_pub = !PQgetisnull(res, 0, 10);
    if (has_pub != (r->pubkey != NULL))
        return 0;
    return !has_pub || (PQgetlength(res, 0, 10) == 65 && memcmp(PQgetvalue(res, 0, 10), r->pubkey, 65) == 0);
}

/* Insert-or-nothing first (one statement for a new record, the common
 * case); only a repeat reads the stored row back to compare. */
static otpca_err pg_record_put(otpca_store_impl *s, otpca_stored_record *r, int *dup)
{
    params p = {0};
    PGresult *res = NULL;
    enum scope sc;
    int n = 0;
    uint64_t flagged = 0;
    /* Bare: a repeated id does nothing, and records refer to nothing. */
    otpca_err ret = write_enter(s, NO_LOCK, BARE, &sc);
    if (ret)
        return ret;
    p_blob(&p, r->id, sizeof r->id);
    p_blob(&p, r->window, sizeof r->window);
    p_str(&p, r->manager);
    p_int(&p, (uint64_t)r->kind);
    p_str(&p, r->serial);
    p_int(&p, r->time);
    p_blob_opt(&p, r->cert, r->cert_len);
    p_int(&p, r->step);
    p_int(&p, (uint64_t)r->reason);
    p_int(&p, r->flagged ? 1 : 0);
    p_blob_opt(&p, r->pubkey, r->pubkey ? 65 : 0);
    if ((ret = exec_st(s, ST_RECORD_ADD, &p, &res, "store a record")))
        goto out;
    n = changed(res);
    PQclear(res);
    res = NULL;
    if (n) {
        *dup = 0;
        goto out;
    }
    memset(&p, 0, sizeof p);
    p_blob(&p, r->id, sizeof r->id);
    if ((ret = exec_st(s, ST_RECORD_GET, &p, &res, "read a record back")))
        goto out;
    if (PQntuples(res) != 1) {
        ret = unreadable("record");
    } else if (record_same(res, r) && col_u64(res, 0, 9, &flagged) == 0) {
        *dup = 1;
        r->flagged = flagged != 0;
    } else {
        log_warn("store: record id reused with different content (serial %s, manager %s)", r->serial, r->manager);
        ret = OTPCA_ERR_EXISTS;
    }
out:
    PQclear(res);
    return write_leave(s, sc, ret);
}

static otpca_err pg_record_count(otpca_store_impl *s, uint64_t *n)
{
    PGresult *r = NULL;
    otpca_err ret = exec_st(s, ST_RECORD_COUNT, NULL, &r, "count records");
    if (ret)
        return ret;
    if (PQntuples(r) != 1 || col_u64(r, 0, 0, n))
        ret = unreadable("record count");
    PQclear(r);
    return ret;
}

/* ------------------------------------------------------------------ CRLs */

static otpca_err pg_crl_put(otpca_store_impl *s, const char *manager, uint64_t number, uint64_t this_update,
                            uint64_t next_update, const uint8_t *der, size_t len, int *stored)
{
    params p = {0};
    int n = 0;
    p_str(&p, manager);
    p_int(&p, number);
    p_int(&p, this_update);
    p_int(&p, next_update);
    p_blob(&p, der, len);
    otpca_err ret = write1(s, ST_CRL_PUT, &p, SAVEPOINT, &n, "keep a CRL");
    if (!ret)
        *stored = n > 0;
    return ret;
}

static otpca_err pg_crl_get(otpca_store_impl *s, const char *manager, uint64_t *number, uint64_t *this_update,
                            uint64_t *next_update, uint8_t *der, size_t cap, size_t *len)
{
    params p = {0};
    PGresult *r = NULL;
    int bad = 0;
    p_str(&p, manager);
    otpca_err ret = exec_st(s, ST_CRL_GET, &p, &r, "read a CRL");
    if (ret)
        return ret;
    if (PQntuples(r) != 1) {
        ret = OTPCA_ERR_NOT_FOUND;
    } else {
        *number = col_int(r, 0, 0, &bad);
        *this_update = col_int(r, 0, 1, &bad);
        *next_update = col_int(r, 0, 2, &bad);
        if ((size_t)PQgetlength(r, 0, 3) > cap)
            ret = OTPCA_ERR_BUFFER_TOO_SMALL;
        else if (bad || col_blob(r, 0, 3, der, cap, len))
            ret = unreadable("CRL");
    }
    PQclear(r);
    return ret;
}

/* A device has few issuances: each one's confirmation id is computed and
 * compared (the id cannot be turned back into the issuance's). */
static otpca_err pg_record_confirmed(otpca_store_impl *s, const char *serial, const char *manager,
                                     const uint8_t confirm_id[16], uint8_t cert_hash[32], uint8_t pubkey[65],
                                     int *has_pubkey)
{
    params p = {0};
    PGresult *r = NULL;
    p_str(&p, serial);
    p_str(&p, manager);
    otpca_err ret = exec_st(s, ST_RECORD_ISSUES, &p, &r, "read a device's issuances");
    if (ret)
        return ret;
    ret = OTPCA_ERR_NOT_FOUND;
    for (int i = 0; i < PQntuples(r); i++) {
        uint8_t id[16], want[16];
        if (col_blob_exact(r, i, 0, id, sizeof id))
            continue;
        otpca_record_confirm_id(id, want);
        if (memcmp(want, confirm_id, 16) != 0)
            continue;
        int cert_len = PQgetisnull(r, i, 1) ? 0 : PQgetlength(r, i, 1);
        if (cert_len <= 0)
            break; /* an issuance without a certificate confirms nothing */
        otpca_sha256((const uint8_t *)PQgetvalue(r, i, 1), (size_t)cert_len, cert_hash);
        *has_pubkey = col_blob_exact(r, i, 2, pubkey, 65) == 0;
        ret = OTPCA_ERR_OK;
        break;
    }
    PQclear(r);
    return ret;
}

/* ----------------------------------------------------------------- audit */

/* The chain's last entry: seq and hash, 0 and zeros when it is empty. */
static otpca_err audit_tail(otpca_store_impl *s, uint64_t *seq, uint8_t hash[32])
{
    PGresult *r = NULL;
    otpca_err ret = exec_st(s, ST_AUDIT_TAIL, NULL, &r, "read the audit chain");
    if (ret)
        return ret;
    *seq = 0;
    memset(hash, 0, 32);
    if (PQntuples(r) == 1 && (col_u64(r, 0, 0, seq) || col_blob_exact(r, 0, 1, hash, 32)))
        ret = unreadable("audit entry");
    PQclear(r);
    return ret;
}

/* Under the writers' lock: the tail, then the entry and the head. */
static otpca_err pg_audit_append(otpca_store_impl *s, otpca_audit *a)
{
    otpca_audit e = *a;
    params p = {0};
    uint64_t last = 0;
    enum scope sc;
    /* Bare: under the lock the next seq is free, and nothing else checks. */
    otpca_err ret = write_enter(s, LOCK, BARE, &sc);
    if (ret)
        return ret;
    ret = audit_tail(s, &last, e.prev);
    if (!ret) {
        e.seq = last + 1;
        ret = otpca_store_audit_hash(&e, e.hash);
    }
    if (!ret) {
        p_int(&p, e.seq);
        p_blob(&p, e.prev, sizeof e.prev);
        p_blob(&p, e.hash, sizeof e.hash);
        p_int(&p, e.time);
        p_str(&p, e.actor);
        p_int(&p, e.event);
        p_text(&p, e.subject);
        p_text(&p, e.detail);
        ret = exec_st(s, ST_AUDIT_ADD, &p, NULL, "append to the audit chain");
    }
    ret = write_leave(s, sc, ret);
    if (!ret) {
        a->seq = e.seq;
        memcpy(a->prev, e.prev, sizeof a->prev);
        memcpy(a->hash, e.hash, sizeof a->hash);
    }
    return ret;
}

/* One row of the chain (AUDIT_COLS): 0, -1 if it does not fit its fields,
 * 1 if it has no hash (it does not encode). */
static int audit_link(const PGresult *r, int row, otpca_audit *a, uint8_t recomputed[32])
{
    int bad = 0;
    memset(a, 0, sizeof *a);
    if (col_blob_exact(r, row, 1, a->prev, sizeof a->prev) || col_blob_exact(r, row, 2, a->hash, sizeof a->hash) ||
        col_text(r, row, 4, a->actor, sizeof a->actor) || col_text(r, row, 6, a->subject, sizeof a->subject) ||
        col_text(r, row, 7, a->detail, sizeof a->detail))
        return -1;
    a->seq = col_int(r, row, 0, &bad);
    a->time = col_int(r, row, 3, &bad);
    a->event = (unsigned)col_int(r, row, 5, &bad);
    if (bad)
        return -1;
    return otpca_store_audit_hash(a, recomputed) ? 1 : 0;
}

/* Walks the chain page by page in one snapshot and checks it against the
 * head, as otpca_sqlite_chain_verify does for SQLite. */
static otpca_err pg_audit_verify(otpca_store_impl *s, uint64_t *entries, uint64_t *bad_seq)
{
    PGresult *r = NULL;
    otpca_audit a;
    uint8_t prev[32] = {0}, recomputed[32];
    uint64_t expect = 1, head = 0, bad = 0, after = 0;
    int own = 0;
    otpca_err ret = snap_enter(s, SIZE_MAX, &own);
    if (!ret && !(ret = exec_st(s, ST_AUDIT_HEAD, NULL, &r, "read the audit head"))) {
        if (PQntuples(r) == 1 && col_u64(r, 0, 0, &head))
            ret = unreadable("audit head");
        PQclear(r);
        r = NULL;
    }
    while (!ret && !bad) {
        params p = {0};
        p_int(&p, after);
        p_int(&p, PAGE);
        if ((ret = exec_st(s, ST_AUDIT_SCAN, &p, &r, "read the audit chain")))
            break;
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            int k = audit_link(r, i, &a, recomputed);
            if (k < 0 || a.seq != expect) {
                bad = expect;
                break;
            }
            if (memcmp(a.prev, prev, sizeof prev) != 0 || k > 0 || memcmp(recomputed, a.hash, sizeof a.hash) != 0) {
                bad = a.seq;
                break;
            }
            memcpy(prev, recomputed, sizeof prev);
            after = a.seq;
            expect++;
        }
        PQclear(r);
        r = NULL;
        if (n < PAGE)
            break;
    }
    ret = snap_leave(s, own, ret);
    if (ret)
        return ret;
    if (!bad && expect - 1 < head)
        bad = expect;
    *entries = expect - 1;
    *bad_seq = bad;
    if (bad) {
        log_error("store: audit chain broken at entry %llu", (unsigned long long)bad);
        return OTPCA_ERR_SIGNATURE;
    }
    return OTPCA_ERR_OK;
}

const otpca_store_backend otpca_store_pg_backend = {
    .name = "postgresql",
    .open = pg_open,
    .destroy = pg_destroy,
    .schema_version = pg_schema_version,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .device_add = pg_device_add,
    .device_add_many = pg_device_add_many,
    .device_get = pg_device_get,
    .device_update = pg_device_update,
    .device_scan = pg_device_scan,
    .changes = pg_changes,
    .seq = pg_seq,
    .device_counts = pg_device_counts,
    .batch_add = pg_batch_add,
    .batch_get = pg_batch_get,
    .manager_add = pg_manager_add,
    .manager_get = pg_manager_get,
    .manager_by_curve = pg_manager_by_curve,
    .manager_revoke = pg_manager_revoke,
    .manager_scan = pg_manager_scan,
    .operator_add = pg_operator_add,
    .operator_get = pg_operator_get,
    .operator_accept_step = pg_operator_accept_step,
    .operator_grant = pg_operator_grant,
    .operator_may = pg_operator_may,
    .lease_add = pg_lease_add,
    .lease_get = pg_lease_get,
    .lease_by_nonce = pg_lease_by_nonce,
    .lease_close = pg_lease_close,
    .meta_get = pg_meta_get,
    .meta_add = pg_meta_add,
    .meta_replace = pg_meta_replace,
    .record_put = pg_record_put,
    .record_count = pg_record_count,
    .crl_put = pg_crl_put,
    .crl_get = pg_crl_get,
    .record_confirmed = pg_record_confirmed,
    .audit_append = pg_audit_append,
    .audit_verify = pg_audit_verify,
};
