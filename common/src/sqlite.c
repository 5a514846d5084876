/*
 * SQLite under the daemons' stores: creating the file, opening and
 * configuring the connection, the migrations, the statement cache, the
 * caller's transaction and the write scope, the audit chain's tail, head
 * and walk (sqlite.h). Every message carries the store's own tag, so a
 * log reads as it did when each store had its own copy.
 */
#include "otpca/common/sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "otpca/common/log.h"

#define BUSY_TIMEOUT_MS 10000
#define WAL_LIMIT (64 * 1024 * 1024) /* WAL file size kept after a checkpoint */

/* The statements of this file's own, in otpca_sqlite.own. */
enum { TX_BEGIN, TX_COMMIT, TX_ROLLBACK, CHAIN_TAIL, CHAIN_HEAD_SET, CHAIN_HEAD_GET, OWN_COUNT };
static const char *const OWN_SQL[OWN_COUNT] = {
    [TX_BEGIN] = "BEGIN IMMEDIATE",
    [TX_COMMIT] = "COMMIT",
    [TX_ROLLBACK] = "ROLLBACK",
    [CHAIN_TAIL] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [CHAIN_HEAD_SET] = ("INSERT INTO meta(key, value) VALUES ('audit_head', ?1) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
    [CHAIN_HEAD_GET] = "SELECT value FROM meta WHERE key = 'audit_head'",
};
_Static_assert(sizeof ((otpca_sqlite *)0)->own / sizeof(sqlite3_stmt *) == OWN_COUNT, "otpca_sqlite.own");

/* ------------------------------------------------------------ statements */

otpca_err otpca_sqlite_err(otpca_sqlite *q, int rc, const char *what)
{
    const char *tag = q->schema->tag;
    switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        log_debug("%s: %s: already exists", tag, what);
        return OTPCA_ERR_EXISTS;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        if (q->schema->fk_unknown) {
            log_debug("%s: %s: refers to %s", tag, what, q->schema->fk_unknown);
            return OTPCA_ERR_NOT_FOUND;
        }
        break;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        log_debug("%s: %s: %s", tag, what, sqlite3_errmsg(q->db));
        return OTPCA_ERR_INVALID_ARG;
    case SQLITE_NOMEM:
        return OTPCA_ERR_NOMEM;
    case SQLITE_NOTADB:
        log_error("%s: %s: %s is not an SQLite database", tag, what, q->path);
        return OTPCA_ERR_CONFIG;
    default:
        log_error("%s: %s: %s (%s)", tag, what, sqlite3_errmsg(q->db), sqlite3_errstr(rc));
        return OTPCA_ERR_IO;
    }
}

/* The statement in *slot, prepared from sql on first use. */
static otpca_err stmt_in(otpca_sqlite *q, sqlite3_stmt **slot, const char *sql, sqlite3_stmt **out)
{
    sqlite3_stmt *st = *slot;
    if (!st) {
        int rc = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK)
            return otpca_sqlite_err(q, rc, "prepare");
        *slot = st;
    } else if (sqlite3_stmt_busy(st)) {
        log_error("%s: a callback called the same walk again", q->schema->tag);
        return OTPCA_ERR_STATE;
    }
    *out = st;
    return OTPCA_ERR_OK;
}

otpca_err otpca_sqlite_stmt(otpca_sqlite *q, size_t id, sqlite3_stmt **out)
{
    return stmt_in(q, &q->st[id], q->schema->sql[id], out);
}

void otpca_sqlite_reset(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

static otpca_err run_in(otpca_sqlite *q, sqlite3_stmt **slot, const char *sql)
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = stmt_in(q, slot, sql, &st);
    if (ret)
        return ret;
    int rc = sqlite3_step(st);
    ret = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? OTPCA_ERR_OK : otpca_sqlite_err(q, rc, sql);
    otpca_sqlite_reset(st);
    return ret;
}

otpca_err otpca_sqlite_run(otpca_sqlite *q, size_t id)
{
    return run_in(q, &q->st[id], q->schema->sql[id]);
}

static otpca_err tx_run(otpca_sqlite *q, int which)
{
    return run_in(q, &q->own[which], OWN_SQL[which]);
}

otpca_err otpca_sqlite_step_done(otpca_sqlite *q, sqlite3_stmt *st, int rc, const char *what)
{
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    otpca_err ret = rc == SQLITE_DONE ? OTPCA_ERR_OK : otpca_sqlite_err(q, rc, what);
    otpca_sqlite_reset(st);
    return ret;
}

sqlite3_int64 otpca_sqlite_limit(size_t limit)
{
    return limit > (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)limit;
}

static otpca_err query_u64_in(otpca_sqlite *q, sqlite3_stmt **slot, const char *sql, uint64_t *v, const char *what)
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = stmt_in(q, slot, sql, &st);
    if (ret)
        return ret;
    *v = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = otpca_sqlite_col_u64(st, 0);
    else if (rc != SQLITE_DONE)
        ret = otpca_sqlite_err(q, rc, what);
    otpca_sqlite_reset(st);
    return ret;
}

otpca_err otpca_sqlite_query_u64(otpca_sqlite *q, size_t id, uint64_t *v, const char *what)
{
    return query_u64_in(q, &q->st[id], q->schema->sql[id], v, what);
}

static otpca_err run_u64_in(otpca_sqlite *q, sqlite3_stmt **slot, const char *sql, uint64_t v, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    otpca_err ret = stmt_in(q, slot, sql, &st);
    if (ret)
        return ret;
    otpca_sqlite_bind_int(st, 1, v, &rc);
    return otpca_sqlite_step_done(q, st, rc, what);
}

otpca_err otpca_sqlite_run_u64(otpca_sqlite *q, size_t id, uint64_t v, const char *what)
{
    return run_u64_in(q, &q->st[id], q->schema->sql[id], v, what);
}

void otpca_sqlite_bind_int(sqlite3_stmt *st, int i, uint64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

void otpca_sqlite_bind_int_opt(sqlite3_stmt *st, int i, int has, uint64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = has ? sqlite3_bind_int64(st, i, (sqlite3_int64)v) : sqlite3_bind_null(st, i);
}

void otpca_sqlite_bind_text(sqlite3_stmt *st, int i, const char *v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = (v && v[0]) ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

void otpca_sqlite_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_blob(st, i, n ? p : "", (int)n, SQLITE_STATIC);
}

void otpca_sqlite_bind_blob_opt(sqlite3_stmt *st, int i, const void *p, size_t n, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = (p && n) ? sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

int otpca_sqlite_col_blob(sqlite3_stmt *st, int i, void *dst, size_t cap, size_t *len)
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

int otpca_sqlite_col_blob_exact(sqlite3_stmt *st, int i, void *dst, size_t n)
{
    size_t len = 0;
    return (otpca_sqlite_col_blob(st, i, dst, n, &len) || len != n) ? -1 : 0;
}

int otpca_sqlite_col_blob_opt(sqlite3_stmt *st, int i, void *dst, size_t n, int *has)
{
    *has = sqlite3_column_type(st, i) != SQLITE_NULL;
    return *has ? otpca_sqlite_col_blob_exact(st, i, dst, n) : 0;
}

int otpca_sqlite_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
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

uint64_t otpca_sqlite_col_u64(sqlite3_stmt *st, int i)
{
    return (uint64_t)sqlite3_column_int64(st, i);
}

/* ----------------------------------------------------------- audit chain */

otpca_err otpca_sqlite_chain_tail(otpca_sqlite *q, uint64_t *seq, uint8_t hash[32])
{
    sqlite3_stmt *st = NULL;
    otpca_err ret = stmt_in(q, &q->own[CHAIN_TAIL], OWN_SQL[CHAIN_TAIL], &st);
    if (ret)
        return ret;
    *seq = 0;
    memset(hash, 0, 32);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *seq = otpca_sqlite_col_u64(st, 0);
        if (otpca_sqlite_col_blob_exact(st, 1, hash, 32)) {
            log_error("%s: a stored audit entry does not fit its fields", q->schema->tag);
            ret = OTPCA_ERR_INTERNAL;
        }
    } else if (rc != SQLITE_DONE) {
        ret = otpca_sqlite_err(q, rc, "read the audit chain");
    }
    otpca_sqlite_reset(st);
    return ret;
}

otpca_err otpca_sqlite_chain_head_set(otpca_sqlite *q, uint64_t seq)
{
    return run_u64_in(q, &q->own[CHAIN_HEAD_SET], OWN_SQL[CHAIN_HEAD_SET], seq, "record the audit head");
}

otpca_err otpca_sqlite_chain_verify(otpca_sqlite *q, size_t scan, otpca_sqlite_link_fn fn, uint64_t *entries,
                                    uint64_t *bad_seq)
{
    sqlite3_stmt *st = NULL;
    otpca_sqlite_link l;
    uint8_t prev[32] = {0};
    uint64_t expect = 1, last = 0, bad = 0;
    int rc;
    otpca_err ret = query_u64_in(q, &q->own[CHAIN_HEAD_GET], OWN_SQL[CHAIN_HEAD_GET], &last, "read the audit head");
    if (ret)
        return ret;
    if ((ret = otpca_sqlite_stmt(q, scan, &st)))
        return ret;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int r = fn(st, &l);
        if (r < 0 || l.seq != expect) {
            bad = expect;
            break;
        }
        if (memcmp(l.prev, prev, sizeof prev) != 0 || r > 0 || memcmp(l.recomputed, l.hash, sizeof l.hash) != 0) {
            bad = l.seq;
            break;
        }
        memcpy(prev, l.recomputed, sizeof prev);
        expect++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = otpca_sqlite_err(q, rc, "read the audit chain");
    otpca_sqlite_reset(st);
    if (ret)
        return ret;
    if (!bad && expect - 1 < last)
        bad = expect;
    if (entries)
        *entries = expect - 1;
    if (bad_seq)
        *bad_seq = bad;
    if (bad) {
        log_error("%s: audit chain broken at entry %llu", q->schema->tag, (unsigned long long)bad);
        return OTPCA_ERR_SIGNATURE;
    }
    return OTPCA_ERR_OK;
}

/* ---------------------------------------------------------- transactions */

static otpca_err spoiled(otpca_sqlite *q)
{
    log_error("%s: an earlier call failed half-way through this transaction; roll it back", q->schema->tag);
    return OTPCA_ERR_STATE;
}

otpca_err otpca_sqlite_begin(otpca_sqlite *q)
{
    if (q->in_tx) {
        log_error("%s: a transaction is already open on this handle", q->schema->tag);
        return OTPCA_ERR_STATE;
    }
    otpca_err ret = tx_run(q, TX_BEGIN);
    if (!ret) {
        q->in_tx = 1;
        q->spoiled = 0;
    }
    return ret;
}

void otpca_sqlite_rollback(otpca_sqlite *q)
{
    if (!sqlite3_get_autocommit(q->db))
        (void)tx_run(q, TX_ROLLBACK);
    q->in_tx = 0;
    q->spoiled = 0;
}

otpca_err otpca_sqlite_commit(otpca_sqlite *q)
{
    if (!q->in_tx) {
        log_error("%s: commit without a transaction", q->schema->tag);
        return OTPCA_ERR_STATE;
    }
    if (q->spoiled || sqlite3_get_autocommit(q->db)) {
        otpca_sqlite_rollback(q);
        return spoiled(q);
    }
    q->in_tx = 0;
    otpca_err ret = tx_run(q, TX_COMMIT);
    if (ret && !sqlite3_get_autocommit(q->db))
        (void)tx_run(q, TX_ROLLBACK);
    return ret;
}

otpca_err otpca_sqlite_write_ok(otpca_sqlite *q)
{
    if (q->in_tx && (q->spoiled || sqlite3_get_autocommit(q->db)))
        return spoiled(q);
    return OTPCA_ERR_OK;
}

otpca_err otpca_sqlite_write_stmt(otpca_sqlite *q, size_t id, sqlite3_stmt **out)
{
    otpca_err ret = otpca_sqlite_write_ok(q);
    return ret ? ret : otpca_sqlite_stmt(q, id, out);
}

otpca_err otpca_sqlite_write_enter(otpca_sqlite *q, int *own)
{
    *own = !q->in_tx;
    return *own ? tx_run(q, TX_BEGIN) : otpca_sqlite_write_ok(q);
}

otpca_err otpca_sqlite_write_leave(otpca_sqlite *q, int own, otpca_err ret, int partial)
{
    if (!own) {
        if (ret && partial)
            q->spoiled = 1;
        return ret;
    }
    if (!ret)
        ret = tx_run(q, TX_COMMIT);
    if (ret && !sqlite3_get_autocommit(q->db))
        (void)tx_run(q, TX_ROLLBACK);
    return ret;
}

/* ------------------------------------------------------ open and migrate */

/* fsync of a new file (fd, closed here) and of its directory entry. */
static otpca_err sync_new_file(const char *tag, int fd, const char *path)
{
    otpca_err ret = OTPCA_ERR_OK;
    char *dir = NULL;
    int dfd = -1;
    if (fsync(fd) != 0) {
        log_error("%s: cannot sync %s: %s", tag, path, strerror(errno));
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
        log_error("%s: cannot sync the directory of %s: %s", tag, path, strerror(errno));
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

/* Creates the file 0600 and makes the new name durable; an existing one
 * must be a regular file (a warning if others may read it). */
static otpca_err create_file(const char *tag, const char *path)
{
    struct stat sb;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        return sync_new_file(tag, fd, path);
    if (errno != EEXIST) {
        log_error("%s: cannot create %s: %s", tag, path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    if (stat(path, &sb) != 0) {
        log_error("%s: cannot open %s: %s", tag, path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    if (!S_ISREG(sb.st_mode)) {
        log_error("%s: %s is not a regular file", tag, path);
        return OTPCA_ERR_CONFIG;
    }
    if (sb.st_mode & 077)
        log_warn("%s: %s is accessible to group or others (mode %03o); chmod 600 it", tag, path,
                 (unsigned)(sb.st_mode & 0777));
    return OTPCA_ERR_OK;
}

/* One-off query for one integer (NULL or no row reads as absent). */
static otpca_err query_int(otpca_sqlite *q, const char *sql, int64_t *v, int *found)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    otpca_err ret;
    *found = 0;
    if (rc != SQLITE_OK) {
        ret = otpca_sqlite_err(q, rc, "read the schema");
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
        *v = sqlite3_column_int64(st, 0);
        *found = 1;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = otpca_sqlite_err(q, rc, "read the schema");
        goto out;
    }
    ret = OTPCA_ERR_OK;
out:
    sqlite3_finalize(st);
    return ret;
}

/* The schema version recorded in the file: 0 for an empty database. A
 * store with an application id knows its files by it (an empty file with
 * the id is one it began); one without, by the meta table. */
static otpca_err read_version(otpca_sqlite *q, unsigned *version)
{
    const otpca_sqlite_schema *sc = q->schema;
    int64_t tables = 0, mark = 0, v = 0;
    int found = 0, empty, ours;
    otpca_err ret = query_int(q, "SELECT count(*) FROM sqlite_master", &tables, &found);
    if (!ret)
        ret = query_int(q,
                        sc->app_id ? "PRAGMA application_id"
                                   : "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                        &mark, &found);
    if (ret)
        return ret;
    if (sc->app_id) {
        empty = tables == 0 && (mark == 0 || mark == sc->app_id);
        ours = mark == sc->app_id;
    } else {
        empty = tables == 0;
        ours = mark != 0;
    }
    if (empty) {
        *version = 0;
        return OTPCA_ERR_OK;
    }
    if (!ours) {
        log_error("%s: %s is an SQLite database but not %s", sc->tag, q->path, sc->kind);
        return OTPCA_ERR_CONFIG;
    }
    if ((ret = query_int(q, "SELECT value FROM meta WHERE key = 'schema_version'", &v, &found)))
        return ret;
    if (!found || v < 1 || v > UINT_MAX) {
        log_error("%s: %s has no valid schema version", sc->tag, q->path);
        return OTPCA_ERR_CONFIG;
    }
    *version = (unsigned)v;
    return OTPCA_ERR_OK;
}

static otpca_err too_new(otpca_sqlite *q, unsigned v)
{
    log_error("%s: %s is at schema version %u; this build knows up to %u (upgrade otpca)", q->schema->tag, q->path,
              v, q->schema->versions);
    return OTPCA_ERR_UNSUPPORTED;
}

static otpca_err exec_sql(otpca_sqlite *q, const char *sql, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return OTPCA_ERR_OK;
    log_error("%s: %s: %s", q->schema->tag, what, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return (rc & 0xff) == SQLITE_NOTADB ? OTPCA_ERR_CONFIG : OTPCA_ERR_IO;
}

/* One step towards the build's version under the write lock: the version
 * is read again there, since another handle or process may have migrated
 * meanwhile. */
static otpca_err migrate_one(otpca_sqlite *q, unsigned *v)
{
    const unsigned latest = q->schema->versions;
    char sql[96];
    unsigned from = 0;
    otpca_err ret = exec_sql(q, "BEGIN IMMEDIATE", "start a migration");
    if (ret)
        return ret;
    if ((ret = read_version(q, &from)))
        goto out;
    if (from > latest) {
        ret = too_new(q, from);
        goto out;
    }
    if (from < latest) {
        if ((ret = exec_sql(q, q->schema->migrations[from], "migrate the schema")))
            goto out;
        snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', %u)",
                 from + 1);
        if ((ret = exec_sql(q, sql, "record the schema version")))
            goto out;
    }
    if ((ret = exec_sql(q, "COMMIT", "commit a migration")))
        goto out;
    *v = from < latest ? from + 1 : from;
    if (from < latest)
        log_info("%s: %s migrated to schema version %u", q->schema->tag, q->path, *v);
    ret = OTPCA_ERR_OK;
out:
    if (ret && !sqlite3_get_autocommit(q->db))
        (void)exec_sql(q, "ROLLBACK", "roll back a migration");
    return ret;
}

/* Brings the file to the build's version, one migration per transaction. */
static otpca_err migrate(otpca_sqlite *q)
{
    unsigned v = 0;
    otpca_err ret = read_version(q, &v);
    if (ret)
        return ret;
    if (v > q->schema->versions)
        return too_new(q, v);
    while (v < q->schema->versions)
        if ((ret = migrate_one(q, &v)))
            return ret;
    q->version = v;
    return OTPCA_ERR_OK;
}

void otpca_sqlite_close(otpca_sqlite *q)
{
    if (!q || !q->schema)
        return;
    if (q->db && !sqlite3_get_autocommit(q->db))
        (void)exec_sql(q, "ROLLBACK", "roll back at close");
    for (size_t i = 0; q->st && i < q->schema->statements; i++)
        sqlite3_finalize(q->st[i]);
    for (size_t i = 0; i < OWN_COUNT; i++)
        sqlite3_finalize(q->own[i]);
    if (q->db && sqlite3_close(q->db) != SQLITE_OK)
        log_error("%s: closing %s: %s", q->schema->tag, q->path, sqlite3_errmsg(q->db));
    free(q->st);
    free(q->path);
    memset(q, 0, sizeof *q);
}

/* SQLite's memory statistics (on in Debian's build) take a global mutex
 * around every allocation: 6-9 % of a manager's first sync of 100,000
 * devices went to that mutex alone. Nothing here reads the statistics.
 * sqlite3_config works only before SQLite is first used in the process;
 * later (SQLITE_MISUSE) the statistics simply stay on. */
static void sqlite_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

otpca_err otpca_sqlite_open(otpca_sqlite *q, const otpca_sqlite_schema *schema, const char *path)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&once, sqlite_setup);
    const char *tag = schema->tag;
    sqlite3_stmt *st = NULL;
    int memory = strcmp(path, ":memory:") == 0;
    otpca_err ret;
    int rc;

    memset(q, 0, sizeof *q);
    q->schema = schema;
    if (!(q->path = strdup(path)) || !(q->st = calloc(schema->statements, sizeof *q->st))) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    if (!memory && (ret = create_file(tag, path)))
        goto out;
    rc = sqlite3_open_v2(path, &q->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                         NULL);
    if (rc != SQLITE_OK) {
        log_error("%s: cannot open %s: %s", tag, path, q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
        ret = OTPCA_ERR_IO;
        goto out;
    }
    sqlite3_extended_result_codes(q->db, 1);
    sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);

    /* journal_mode answers with the mode it is in: insist on WAL. */
    rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = otpca_sqlite_err(q, rc, "set WAL mode");
        goto out;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (!mode || strcmp(mode, memory ? "memory" : "wal") != 0) {
        log_error("%s: %s: cannot switch to WAL mode (%s)", tag, path, mode ? mode : "?");
        ret = OTPCA_ERR_IO;
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* temp_store: statement journals (an upsert with triggers inside a
     * transaction keeps one, to undo the statement alone) in memory, not
     * in a file under /var/tmp: they held database pages outside the
     * store's directory, and the first sync of 100,000 devices wrote
     * 530,000 times to one. */
    char pragmas[192];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -%d; "
             "PRAGMA journal_size_limit = %d; PRAGMA temp_store = MEMORY;",
             schema->cache_kib, WAL_LIMIT);
    if ((ret = exec_sql(q, pragmas, "configure the connection")))
        goto out;
    ret = migrate(q);
out:
    sqlite3_finalize(st);
    if (ret)
        otpca_sqlite_close(q);
    return ret;
}
