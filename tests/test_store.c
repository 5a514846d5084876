/*
 * Unit tests for the cloud store (cloud/include/otpca/cloud/store.h), run
 * whole against either backend: opening (file mode, schema version,
 * refusing a newer schema, a foreign database, URLs), devices (every field round
 * trip, duplicates, unknowns, bad input), the change log (gap-free and
 * monotonic, each device once in its latest state, limits and paging),
 * scans and counts, managers, operators (TOTP steps only move forward),
 * batches, leases, idempotent records, transactions, the audit chain
 * (hashes recomputed here from the protocol encoder; an entry changed or
 * removed behind the store's back is found) and durability across a
 * SIGKILL right after commit. Each test works in a fresh temporary
 * directory, removed afterwards; the file is poked at directly with the
 * sqlite3 API where a test needs to tamper with it (tmpstore.h).
 *
 * With OTPCA_TEST_STORE_URL set to a postgresql:// URL (or
 * OTPCA_TEST_STORE_URL_FILE naming a file that holds one, as
 * deploy/postgres.sh writes it), the same tests run on PostgreSQL: each
 * test gets a database of its own (CREATE DATABASE, dropped afterwards) and
 * tampers with it through libpq; the few that are about SQLite's file
 * skip, and PostgreSQL's own checks skip on SQLite.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "otpca/cloud/store.h"
#include "otpca/common/err.h"
#include "otpca/common/log.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"

/* ------------------------------------------------------------- fixtures */

#define TMPSTORE_PREFIX "otpca-store"
#define TMPSTORE_FILE "store.db"
#include "tmpstore.h"
#include "pgtest.h"

/* The store under test: g_path (SQLite), or a database of this test's own
 * on the PostgreSQL server g_pg_base names (pgtest.h). */
static char g_url[1200];
static char g_pg_base[1000]; /* "" on SQLite */
static char g_pg_db[64];

static void store_setup(void)
{
    tmp_setup();
    if (pgtest_base(g_pg_base, sizeof g_pg_base))
        pgtest_create_db(g_pg_base, g_pg_db, sizeof g_pg_db, g_url, sizeof g_url);
    else
        snprintf(g_url, sizeof g_url, "%s", g_path);
}

/* Also called by a test that skips itself: Criterion runs no fini then. */
static void store_teardown(void)
{
    if (g_pg_base[0] && g_pg_db[0])
        pgtest_drop_db(g_pg_base, g_pg_db);
    g_pg_db[0] = '\0';
    tmp_teardown();
}

TestSuite(store, .init = store_setup, .fini = store_teardown);

/* Runs SQL on the store behind its back (raw_sql, or libpq on PostgreSQL). */
static void store_sql(const char *sql)
{
    if (!g_pg_base[0]) {
        raw_sql(sql);
        return;
    }
    PQclear(pgtest_run(g_pg_base, g_pg_db, sql, PGRES_COMMAND_OK));
}

/* One integer from the store, read behind its back. */
static int64_t store_int(const char *sql)
{
    if (!g_pg_base[0])
        return raw_int(sql);
    PGresult *r = pgtest_run(g_pg_base, g_pg_db, sql, PGRES_TUPLES_OK);
    cr_assert_eq(PQntuples(r), 1, "%s", sql);
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

#define SKIP_ON_PG(why)              \
    do {                             \
        if (g_pg_base[0]) {          \
            store_teardown();        \
            cr_skip_test("%s", why); \
        }                            \
    } while (0)
#define SKIP_ON_SQLITE(why)          \
    do {                             \
        if (!g_pg_base[0]) {         \
            store_teardown();        \
            cr_skip_test("%s", why); \
        }                            \
    } while (0)

static otpca_store *open_store(void)
{
    otpca_store *s = NULL;
    otpca_err ret = otpca_store_open(g_url, &s);
    cr_assert_eq(ret, OTPCA_ERR_OK, "open %s: %s", g_url, otpca_errname(ret));
    cr_assert_not_null(s);
    return s;
}

/* --------------------------------------------------------------- data */

static void make_device(otpca_device *d, unsigned i)
{
    memset(d, 0, sizeof *d);
    snprintf(d->serial, sizeof d->serial, "dev-%08u", i);
    d->mac_len = 6;
    for (size_t k = 0; k < 6; k++)
        d->mac[k] = (uint8_t)(i >> (8 * (k % 4)));
    d->pubkey_len = 65;
    d->pubkey[0] = 0x04;
    for (size_t k = 1; k < 65; k++)
        d->pubkey[k] = (uint8_t)(i * 31 + k);
    d->state = OTPCA_STORE_APPROVED;
    d->seed_env_len = 60;
    for (size_t k = 0; k < d->seed_env_len; k++)
        d->seed_env[k] = (uint8_t)(i + k * 7);
    d->digits = 6;
    d->period = 30;
    d->algorithm = 1;
}

static void expect_device_eq(const otpca_device *a, const otpca_device *b)
{
    cr_expect_str_eq(a->serial, b->serial);
    cr_expect_eq(a->mac_len, b->mac_len, "%s mac_len", a->serial);
    cr_expect_arr_eq(a->mac, b->mac, a->mac_len);
    cr_expect_eq(a->pubkey_len, b->pubkey_len, "%s pubkey_len", a->serial);
    cr_expect_arr_eq(a->pubkey, b->pubkey, a->pubkey_len);
    cr_expect_str_eq(a->batch, b->batch);
    cr_expect_eq(a->state, b->state, "%s state", a->serial);
    cr_expect_eq(a->seed_env_len, b->seed_env_len);
    cr_expect_arr_eq(a->seed_env, b->seed_env, a->seed_env_len);
    cr_expect_eq(a->digits, b->digits);
    cr_expect_eq(a->period, b->period);
    cr_expect_eq(a->algorithm, b->algorithm);
    cr_expect_eq(a->last_step, b->last_step);
    cr_expect_eq(a->failures, b->failures);
    cr_expect_eq(a->has_cert, b->has_cert);
    if (a->has_cert && b->has_cert)
        cr_expect_arr_eq(a->cert_hash, b->cert_hash, 32);
    cr_expect_str_eq(a->manager, b->manager);
    cr_expect_eq(a->flagged, b->flagged);
    cr_expect_eq(a->revoked_at, b->revoked_at, "%s revoked_at", a->serial);
    cr_expect_eq(a->revoke_reason, b->revoke_reason, "%s revoke_reason", a->serial);
    cr_expect_eq(a->seq, b->seq, "%s seq %llu != %llu", a->serial, (unsigned long long)a->seq,
                 (unsigned long long)b->seq);
}

static void make_manager(otpca_manager *m, unsigned i)
{
    memset(m, 0, sizeof *m);
    snprintf(m->id, sizeof m->id, "mgr-%02u", i);
    for (size_t k = 0; k < 32; k++)
        m->curve_pub[k] = (uint8_t)(i * 17 + k);
    m->ca_pub[0] = 0x04;
    for (size_t k = 1; k < 65; k++)
        m->ca_pub[k] = (uint8_t)(i + 3 * k);
    m->ca_cert_len = 300 + i;
    for (size_t k = 0; k < m->ca_cert_len; k++)
        m->ca_cert[k] = (uint8_t)(k ^ i);
}

static void make_record(otpca_stored_record *r, unsigned i, const uint8_t *cert, size_t cert_len)
{
    memset(r, 0, sizeof *r);
    for (size_t k = 0; k < 16; k++) {
        r->id[k] = (uint8_t)(i >> (8 * (k % 4)));
        r->window[k] = (uint8_t)(0xa0 + k);
    }
    r->id[15] = 0x5a;
    snprintf(r->manager, sizeof r->manager, "mgr-01");
    r->kind = 1;
    snprintf(r->serial, sizeof r->serial, "dev-%08u", i);
    r->time = 1700000000u + i;
    r->cert = cert;
    r->cert_len = cert_len;
    r->step = 56666666u + i;
    r->reason = 0;
}

struct collect {
    otpca_device *v;
    size_t n, cap;
    size_t stop_after; /* 0: never */
};

static int collect_fn(const otpca_device *d, void *arg)
{
    struct collect *c = arg;
    if (c->n < c->cap)
        c->v[c->n] = *d;
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static struct collect collect_new(size_t cap)
{
    struct collect c = {calloc(cap, sizeof(otpca_device)), 0, cap, 0};
    cr_assert_not_null(c.v);
    return c;
}

static uint64_t head_seq(otpca_store *s)
{
    uint64_t head = 99, oldest = 99;
    cr_assert_eq(otpca_store_seq(s, &head, &oldest), OTPCA_ERR_OK);
    return head;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- open */

Test(store, open_creates_a_0600_file_at_the_current_schema_version)
{
    SKIP_ON_PG("about SQLite's file (mode, WAL); see open_creates_the_schema_in_an_empty_database");
    struct stat sb;
    umask(0); /* SQLite on its own would create 0644 & ~umask */
    cr_assert_neq(stat(g_path, &sb), 0, "no file before open");
    otpca_store *s = open_store();
    cr_expect_eq(otpca_store_schema_version(s), 5);
    cr_assert_eq(stat(g_path, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0600, "mode %03o", (unsigned)(sb.st_mode & 0777));

    otpca_device d;
    make_device(&d, 1);
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    char wal[700];
    snprintf(wal, sizeof wal, "%s-wal", g_path);
    cr_assert_eq(stat(wal, &sb), 0, "WAL mode leaves a -wal file while open");
    cr_expect_eq(sb.st_mode & 0777, 0600, "WAL mode %03o", (unsigned)(sb.st_mode & 0777));
    otpca_store_destroy(&s);
    cr_expect_null(s);
    otpca_store_destroy(&s); /* NULL is fine */
    otpca_store_destroy(NULL);

    /* The schema version is in the meta table, and journal_mode is WAL. */
    cr_expect_eq(store_int("SELECT value FROM meta WHERE key = 'schema_version'"), 5);
    cr_expect_eq(store_int("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
}

Test(store, open_creates_the_schema_in_an_empty_database)
{
    SKIP_ON_SQLITE("a PostgreSQL test (OTPCA_TEST_STORE_URL)");
    cr_expect_eq(store_int("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"), 0);
    otpca_store *s = open_store();
    cr_expect_eq(otpca_store_schema_version(s), 5);
    otpca_device d;
    make_device(&d, 1);
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    otpca_store_destroy(&s);
    cr_expect_null(s);
    otpca_store_destroy(&s);
    otpca_store_destroy(NULL);
    cr_expect_eq(store_int("SELECT num FROM meta WHERE key = 'schema_version'"), 5);
    cr_expect_eq(store_int("SELECT last FROM change_counter"), 1);
    /* The same tables as SQLite's, plus the change log's counter. */
    cr_expect_eq(store_int("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename IN "
                           "('meta', 'change_counter', 'batches', 'managers', 'operators', 'devices', 'changes', "
                           "'leases', 'records', 'audit', 'operator_grants', 'crls')"),
                 12);
    /* Opening again migrates nothing and keeps the data. */
    s = open_store();
    cr_expect_eq(otpca_store_schema_version(s), 5);
    cr_expect_eq(otpca_store_device_get(s, d.serial, &d), OTPCA_ERR_OK);
    otpca_store_destroy(&s);
}

/* The server drops the connection (a restart, a failover): the call that
 * finds out fails, the next one outside a transaction connects again; in
 * a transaction the loss spoils it. */
Test(store, a_lost_connection_is_made_again_at_the_next_call)
{
    SKIP_ON_SQLITE("a PostgreSQL test (OTPCA_TEST_STORE_URL)");
    otpca_store *s = open_store();
    otpca_device d, got;
    make_device(&d, 1);
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s' "
             "AND pid <> pg_backend_pid()", g_pg_db);
    cr_assert_eq(store_int(sql), 1);
    otpca_err ret = otpca_store_device_get(s, d.serial, &got);
    cr_expect(ret == OTPCA_ERR_IO || ret == OTPCA_ERR_OK, "%s", otpca_errname(ret));
    cr_expect_eq(otpca_store_device_get(s, d.serial, &got), OTPCA_ERR_OK);
    make_device(&d, 2);
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);

    cr_assert_eq(otpca_store_begin(s), OTPCA_ERR_OK);
    make_device(&d, 3);
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    cr_assert_eq(store_int(sql), 1);
    make_device(&d, 4);
    cr_expect_neq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_commit(s), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_store_device_get(s, "dev-00000003", &got), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(head_seq(s), 2);
    otpca_store_destroy(&s);
}

Test(store, reopening_keeps_the_data_and_the_sqlite_scheme_names_the_same_file)
{
    otpca_store *s = open_store();
    otpca_device d, got;
    make_device(&d, 7);
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    otpca_store_destroy(&s);

    /* The other spelling of the same store: sqlite:PATH for a path,
     * postgres:// for postgresql://. */
    char url[1300];
    if (g_pg_base[0])
        snprintf(url, sizeof url, "postgres://%s", strstr(g_url, "://") + 3);
    else
        snprintf(url, sizeof url, "sqlite:%s", g_path);
    cr_assert_eq(otpca_store_open(url, &s), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_schema_version(s), 5);
    cr_assert_eq(otpca_store_device_get(s, d.serial, &got), OTPCA_ERR_OK);
    expect_device_eq(&got, &d);
    cr_expect_eq(head_seq(s), 1);
    otpca_store_destroy(&s);
}

Test(store, a_version_1_file_is_migrated_to_the_current_version_with_its_data)
{
    otpca_store *s = open_store();
    otpca_device d, got;
    make_device(&d, 3);
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    otpca_store_destroy(&s);
    /* Take the file back to version 1 (what an older build wrote). */
    store_sql(g_pg_base[0] ? "DROP INDEX leases_open_nonce; ALTER TABLE leases DROP COLUMN open_nonce;"
                             "ALTER TABLE leases DROP COLUMN closed_at; ALTER TABLE records DROP COLUMN flagged;"
                             "ALTER TABLE records DROP COLUMN pubkey;"
                             "ALTER TABLE devices DROP COLUMN revoked_at; ALTER TABLE devices DROP COLUMN revoke_reason;"
                             "DROP TABLE crls; DROP TABLE operator_grants; UPDATE meta SET num = 1 WHERE key = 'schema_version'"
                           : "DROP INDEX leases_open_nonce; ALTER TABLE leases DROP COLUMN open_nonce;"
                             "ALTER TABLE leases DROP COLUMN closed_at; ALTER TABLE records DROP COLUMN flagged;"
                             "ALTER TABLE records DROP COLUMN pubkey;"
                             "ALTER TABLE devices DROP COLUMN revoked_at; ALTER TABLE devices DROP COLUMN revoke_reason;"
                             "DROP TABLE crls; DROP TABLE operator_grants; UPDATE meta SET value = 1 WHERE key = 'schema_version'");
    cr_assert_eq(otpca_store_open(g_url, &s), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_schema_version(s), 5);
    cr_assert_eq(otpca_store_device_get(s, d.serial, &got), OTPCA_ERR_OK);
    expect_device_eq(&got, &d);
    uint8_t v[4] = {1, 2, 3, 4}, back[4];
    size_t len = 0;
    cr_expect_eq(otpca_store_meta_add(s, "k", v, sizeof v), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_meta_get(s, "k", back, sizeof back, &len), OTPCA_ERR_OK);
    otpca_store_destroy(&s);
}

Test(store, a_database_at_a_future_schema_version_is_refused)
{
    otpca_store *s = open_store();
    otpca_store_destroy(&s);
    store_sql(g_pg_base[0] ? "UPDATE meta SET num = 999 WHERE key = 'schema_version'"
                           : "UPDATE meta SET value = 999 WHERE key = 'schema_version'");
    s = (otpca_store *)&s; /* must be cleared on failure */
    cr_expect_eq(otpca_store_open(g_url, &s), OTPCA_ERR_UNSUPPORTED);
    cr_expect_null(s);
}

Test(store, a_foreign_database_or_file_is_refused)
{
    otpca_store *s = NULL;
    store_sql(g_pg_base[0] ? "CREATE TABLE something(x integer)" : "CREATE TABLE something(x)");
    cr_expect_eq(otpca_store_open(g_url, &s), OTPCA_ERR_CONFIG);
    cr_expect_null(s);
    if (g_pg_base[0]) {
        /* Another program's meta table, or ours without a version. */
        store_sql("DROP TABLE something; CREATE TABLE meta (k text)");
        cr_expect_eq(otpca_store_open(g_url, &s), OTPCA_ERR_CONFIG);
        store_sql("DROP TABLE meta; CREATE TABLE meta (key text, value bytea, num bigint)");
        cr_expect_eq(otpca_store_open(g_url, &s), OTPCA_ERR_CONFIG);
        cr_expect_null(s);
        return;
    }

    char junk[700];
    snprintf(junk, sizeof junk, "%s/junk.db", g_dir);
    FILE *f = fopen(junk, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database. ", f);
    fclose(f);
    cr_expect_eq(otpca_store_open(junk, &s), OTPCA_ERR_CONFIG);
    cr_expect_null(s);
}

Test(store, urls_pick_the_backend)
{
    otpca_store *s = NULL;
    char *logbuf = NULL;
    size_t loglen = 0;
    FILE *log = open_memstream(&logbuf, &loglen);
    cr_assert_not_null(log);
    otpca_log_set_stream(log);
    /* A PostgreSQL URL goes to libpq: nothing listens on port 1. The
     * password stays out of the log. */
    cr_expect_eq(otpca_store_open("postgresql://otpca:s3cret@127.0.0.1:1/otpca?connect_timeout=5", &s),
                 OTPCA_ERR_IO);
    cr_expect_eq(otpca_store_open("postgres://127.0.0.1:1/otpca", &s), OTPCA_ERR_IO);
    cr_expect_eq(otpca_store_open("postgresql://127.0.0.1:99999999/otpca", &s), OTPCA_ERR_IO);
    cr_expect_eq(otpca_store_open("postgresql://host/db?no_such_option=1", &s), OTPCA_ERR_CONFIG);
    cr_expect_eq(otpca_store_open("postgresql:", &s), OTPCA_ERR_CONFIG);
    otpca_log_set_stream(NULL);
    fclose(log);
    cr_expect_not_null(strstr(logbuf, "cannot connect to PostgreSQL"), "log: %s", logbuf);
    cr_expect_null(strstr(logbuf, "s3cret"), "log: %s", logbuf);
    free(logbuf);
    cr_expect_null(s);
    cr_expect_eq(otpca_store_open("mysql://localhost/otpca", &s), OTPCA_ERR_CONFIG);
    cr_expect_eq(otpca_store_open("file:x.db", &s), OTPCA_ERR_CONFIG);
    cr_expect_eq(otpca_store_open("", &s), OTPCA_ERR_CONFIG);
    cr_expect_eq(otpca_store_open("sqlite:", &s), OTPCA_ERR_CONFIG);
    cr_expect_null(s);
    cr_assert_eq(otpca_store_open("sqlite::memory:", &s), OTPCA_ERR_OK);
    otpca_device d;
    make_device(&d, 1);
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    otpca_store_destroy(&s);

    /* What may be shown of a URL: no password, no query string. */
    char shown[64];
    otpca_store_url_redact("postgresql://otpca:s3cret@db.example:5432/otpca?sslmode=require", shown, sizeof shown);
    cr_expect_str_eq(shown, "postgresql://otpca:***@db.example:5432/otpca");
    otpca_store_url_redact("postgres://otpca@db/otpca?password=s3cret", shown, sizeof shown);
    cr_expect_str_eq(shown, "postgres://otpca@db/otpca");
    otpca_store_url_redact("sqlite:/var/lib/otpca/cloud.db", shown, sizeof shown);
    cr_expect_str_eq(shown, "sqlite:/var/lib/otpca/cloud.db");
    otpca_store_url_redact("postgresql://u:p@h/" "0123456789012345678901234567890123456789012345678901234567890123", shown, 20);
    cr_expect_str_eq(shown, "postgresql://u:***@");
}

/* ------------------------------------------------------------- devices */

/* A device with every field set away from its default . */
static void make_full_device(otpca_device *d, unsigned i)
{
    make_device(d, i);
    d->mac_len = 8;
    memcpy(d->mac, "\x02\x00\x5e\xff\xfe\x10\x20\x30", 8);
    snprintf(d->batch, sizeof d->batch, "batch-A");
    d->state = OTPCA_STORE_REVOKED;
    d->seed_env_len = OTPCA_STORE_SEED_ENV_MAX;
    for (size_t k = 0; k < d->seed_env_len; k++)
        d->seed_env[k] = (uint8_t)(255 - k - i);
    d->digits = 8;
    d->period = 60;
    d->algorithm = 2;
    d->last_step = UINT64_MAX; /* through the signed column */
    d->failures = UINT32_MAX;
    d->has_cert = 1;
    for (size_t k = 0; k < 32; k++)
        d->cert_hash[k] = (uint8_t)(k * 5 + i);
    snprintf(d->manager, sizeof d->manager, "mgr-01");
    d->flagged = 1;
    d->revoked_at = UINT64_C(1790000000);
    d->revoke_reason = 9;
}

static void add_batch_and_manager(otpca_store *s)
{
    otpca_batch b = {.id = "batch-A"};
    b.product_pub[0] = 0x04;
    otpca_manager m;
    make_manager(&m, 1);
    cr_assert_eq(otpca_store_batch_add(s, &b), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_manager_add(s, &m), OTPCA_ERR_OK);
}

Test(store, device_add_get_update_round_trips_every_field)
{
    otpca_store *s = open_store();
    add_batch_and_manager(s);
    otpca_device d, got;
    make_full_device(&d, 42);
    d.state = OTPCA_STORE_PENDING;
    d.last_step = UINT64_C(0x123456789a);
    d.failures = 7;
    d.seq = 12345; /* set by the store */
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    cr_expect_eq(d.seq, 1);
    memset(&got, 0xee, sizeof got);
    cr_assert_eq(otpca_store_device_get(s, d.serial, &got), OTPCA_ERR_OK);
    expect_device_eq(&got, &d);

    /* Every field changes, including to "none". */
    d.mac_len = 6;
    memcpy(d.mac, "\x02\x00\x5e\x10\x20\x31", 6);
    d.pubkey_len = 0;
    d.batch[0] = '\0';
    d.state = OTPCA_STORE_LOCKED;
    d.seed_env_len = 0;
    d.digits = 6;
    d.period = 30;
    d.algorithm = 1;
    d.last_step = 0;
    d.failures = 10;
    d.has_cert = 0;
    d.manager[0] = '\0';
    d.flagged = 0;
    d.revoked_at = 0;
    d.revoke_reason = 0;
    cr_assert_eq(otpca_store_device_update(s, &d), OTPCA_ERR_OK);
    cr_expect_eq(d.seq, 2);
    memset(&got, 0xee, sizeof got);
    cr_assert_eq(otpca_store_device_get(s, d.serial, &got), OTPCA_ERR_OK);
    expect_device_eq(&got, &d);

    /* And back, after a reopen. */
    d.pubkey_len = 65;
    d.pubkey[0] = 0x04;
    snprintf(d.batch, sizeof d.batch, "batch-A");
    snprintf(d.manager, sizeof d.manager, "mgr-01");
    d.state = OTPCA_STORE_ENROLLED;
    d.has_cert = 1;
    d.last_step = UINT64_MAX; /* round-trips through the signed column */
    d.failures = UINT32_MAX;
    cr_assert_eq(otpca_store_device_update(s, &d), OTPCA_ERR_OK);
    otpca_store_destroy(&s);
    s = open_store();
    cr_assert_eq(otpca_store_device_get(s, d.serial, &got), OTPCA_ERR_OK);
    expect_device_eq(&got, &d);
    otpca_store_destroy(&s);
}

Test(store, duplicate_serial_is_exists_and_unknown_is_not_found)
{
    otpca_store *s = open_store();
    otpca_device d, got;
    make_device(&d, 1);
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    otpca_device again = d;
    again.state = OTPCA_STORE_REVOKED;
    cr_expect_eq(otpca_store_device_add(s, &again), OTPCA_ERR_EXISTS);
    cr_expect_eq(again.seq, d.seq, "seq untouched on failure");
    cr_assert_eq(otpca_store_device_get(s, d.serial, &got), OTPCA_ERR_OK);
    cr_expect_eq(got.state, OTPCA_STORE_APPROVED);

    cr_expect_eq(otpca_store_device_get(s, "no-such-device", &got), OTPCA_ERR_NOT_FOUND);
    otpca_device ghost;
    make_device(&ghost, 2);
    cr_expect_eq(otpca_store_device_update(s, &ghost), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_store_device_get(s, ghost.serial, &got), OTPCA_ERR_NOT_FOUND);
    /* A device in an unknown batch or enrolled by an unknown manager. */
    snprintf(ghost.batch, sizeof ghost.batch, "no-batch");
    cr_expect_eq(otpca_store_device_add(s, &ghost), OTPCA_ERR_NOT_FOUND);
    ghost.batch[0] = '\0';
    snprintf(ghost.manager, sizeof ghost.manager, "no-manager");
    cr_expect_eq(otpca_store_device_add(s, &ghost), OTPCA_ERR_NOT_FOUND);
    /* None of the failures used a sequence number. */
    cr_expect_eq(head_seq(s), 1);
    otpca_store_destroy(&s);
}

Test(store, device_add_many_answers_as_device_add_one_by_one)
{
    otpca_store *s = open_store();
    add_batch_and_manager(s);
    otpca_device d[7], got;
    otpca_err res[7];
    make_device(&d[0], 1);
    cr_assert_eq(otpca_store_device_add(s, &d[0]), OTPCA_ERR_OK);
    uint64_t head = head_seq(s);

    make_full_device(&d[0], 10);                            /* new, every field set */
    make_device(&d[1], 1);                                  /* known serial */
    make_device(&d[2], 12);                                 /* unknown batch */
    snprintf(d[2].batch, sizeof d[2].batch, "no-batch");
    make_device(&d[3], 13);                                 /* bad input */
    d[3].mac_len = 7;
    make_device(&d[4], 14);                                 /* new, every "none" */
    d[4].pubkey_len = 0;
    d[4].seed_env_len = 0;
    make_device(&d[5], 15);                                 /* unknown manager */
    snprintf(d[5].manager, sizeof d[5].manager, "no-manager");
    make_device(&d[6], 16);                                 /* new, after the failures */
    for (size_t i = 0; i < 7; i++) {
        d[i].seq = 777;
        res[i] = OTPCA_ERR_INTERNAL;
    }
    cr_assert_eq(otpca_store_device_add_many(s, d, 7, res), OTPCA_ERR_OK);
    const otpca_err want[7] = {OTPCA_ERR_OK,  OTPCA_ERR_EXISTS,      OTPCA_ERR_NOT_FOUND, OTPCA_ERR_INVALID_ARG,
                               OTPCA_ERR_OK, OTPCA_ERR_NOT_FOUND, OTPCA_ERR_OK};
    for (size_t i = 0; i < 7; i++)
        cr_expect_eq(res[i], want[i], "device %zu: %s, not %s", i, otpca_errname(res[i]), otpca_errname(want[i]));
    /* Numbered in call order, gap-free, as three device_add calls would. */
    cr_expect_eq(d[0].seq, head + 1);
    cr_expect_eq(d[4].seq, head + 2);
    cr_expect_eq(d[6].seq, head + 3);
    cr_expect_eq(head_seq(s), head + 3);
    for (size_t i = 0; i < 7; i += (i == 0 ? 4 : 2)) {
        memset(&got, 0xee, sizeof got);
        cr_assert_eq(otpca_store_device_get(s, d[i].serial, &got), OTPCA_ERR_OK);
        expect_device_eq(&got, &d[i]);
    }
    cr_expect_eq(otpca_store_device_get(s, d[2].serial, &got), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_store_device_get(s, d[5].serial, &got), OTPCA_ERR_NOT_FOUND);
    cr_assert_eq(otpca_store_device_get(s, d[1].serial, &got), OTPCA_ERR_OK);
    cr_expect_eq(got.seq, 1, "the known device is untouched");

    /* The change log has the three, in order. */
    struct collect c = collect_new(8);
    uint64_t next = 0;
    cr_assert_eq(otpca_store_changes(s, head, 100, collect_fn, &c, &next), OTPCA_ERR_OK);
    cr_assert_eq(c.n, 3);
    cr_expect_str_eq(c.v[0].serial, d[0].serial);
    cr_expect_str_eq(c.v[1].serial, d[4].serial);
    cr_expect_str_eq(c.v[2].serial, d[6].serial);
    free(c.v);

    /* Again: nothing new, no number used. */
    cr_assert_eq(otpca_store_device_add_many(s, d, 7, res), OTPCA_ERR_OK);
    for (size_t i = 0; i < 7; i++)
        cr_expect_eq(res[i], i == 3 ? OTPCA_ERR_INVALID_ARG : want[i] ? want[i] : OTPCA_ERR_EXISTS, "again %zu", i);
    cr_expect_eq(head_seq(s), head + 3);
    cr_expect_eq(otpca_store_device_add_many(s, d, 0, res), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_device_add_many(s, d, OTPCA_STORE_ADD_MANY_MAX + 1, res), OTPCA_ERR_INVALID_ARG);
    otpca_store_destroy(&s);
}

Test(store, device_add_many_with_a_serial_twice_answers_in_order)
{
    otpca_store *s = open_store();
    add_batch_and_manager(s);
    otpca_device d[4];
    otpca_err res[4];
    make_device(&d[0], 5); /* unknown batch: not added ... */
    snprintf(d[0].batch, sizeof d[0].batch, "no-batch");
    make_device(&d[1], 5); /* ... so this one is */
    d[1].state = OTPCA_STORE_PENDING;
    make_device(&d[2], 5); /* ... and this one exists */
    make_device(&d[3], 6);
    cr_assert_eq(otpca_store_device_add_many(s, d, 4, res), OTPCA_ERR_OK);
    cr_expect_eq(res[0], OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(res[1], OTPCA_ERR_OK);
    cr_expect_eq(res[2], OTPCA_ERR_EXISTS);
    cr_expect_eq(res[3], OTPCA_ERR_OK);
    cr_expect_eq(d[1].seq, 1);
    cr_expect_eq(d[3].seq, 2);
    otpca_device got;
    cr_assert_eq(otpca_store_device_get(s, d[1].serial, &got), OTPCA_ERR_OK);
    cr_expect_eq(got.state, OTPCA_STORE_PENDING);
    otpca_store_destroy(&s);
}

Test(store, device_add_many_follows_the_callers_transaction)
{
    enum { N = 300 };
    otpca_store *s = open_store();
    otpca_device *d = calloc(N, sizeof *d), one;
    otpca_err res[N];
    cr_assert_not_null(d);
    for (unsigned i = 0; i < N; i++)
        make_device(&d[i], i);
    cr_assert_eq(otpca_store_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_device_add_many(s, d, N, res), OTPCA_ERR_OK);
    otpca_store_rollback(s);
    cr_expect_eq(head_seq(s), 0);
    cr_expect_eq(otpca_store_device_get(s, d[0].serial, &one), OTPCA_ERR_NOT_FOUND);

    /* Mixed with single adds in one transaction: one gap-free sequence. */
    cr_assert_eq(otpca_store_begin(s), OTPCA_ERR_OK);
    make_device(&one, N + 1);
    cr_assert_eq(otpca_store_device_add(s, &one), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_device_add_many(s, d, N / 2, res), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_device_add_many(s, d + N / 2, N - N / 2, res + N / 2), OTPCA_ERR_OK);
    make_device(&one, N + 2);
    cr_assert_eq(otpca_store_device_add(s, &one), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_commit(s), OTPCA_ERR_OK);
    for (unsigned i = 0; i < N; i++) {
        cr_expect_eq(res[i], OTPCA_ERR_OK, "%u", i);
        cr_expect_eq(d[i].seq, i + 2, "%u: seq %llu", i, (unsigned long long)d[i].seq);
    }
    cr_expect_eq(one.seq, N + 2);
    cr_expect_eq(head_seq(s), N + 2);
    free(d);
    otpca_store_destroy(&s);
}

Test(store, bad_device_input_is_invalid_arg)
{
    otpca_store *s = open_store();
    otpca_device d;
    make_device(&d, 1);
    snprintf(d.serial, sizeof d.serial, "bad serial");
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_INVALID_ARG);
    d.serial[0] = '\0';
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_INVALID_ARG);
    memset(d.serial, 'a', sizeof d.serial); /* not terminated */
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_INVALID_ARG);
    make_device(&d, 1);
    d.mac_len = 7;
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_INVALID_ARG);
    make_device(&d, 1);
    d.state = 0;
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_INVALID_ARG);
    d.state = 7;
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_INVALID_ARG);
    make_device(&d, 1);
    d.seed_env_len = OTPCA_STORE_SEED_ENV_MAX + 1;
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_INVALID_ARG);
    make_device(&d, 1);
    d.pubkey_len = 33;
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_INVALID_ARG);
    static const unsigned bad_reasons[] = {7, 8, 11, 255};
    for (size_t i = 0; i < sizeof bad_reasons / sizeof bad_reasons[0]; i++) {
        make_device(&d, 1);
        d.revoke_reason = bad_reasons[i];
        cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_INVALID_ARG, "reason %u", bad_reasons[i]);
    }
    cr_expect_eq(head_seq(s), 0);
    otpca_store_destroy(&s);
}

/* ---------------------------------------------------------- change log */

Test(store, change_log_is_gap_free_and_monotonic_over_adds_and_updates)
{
    otpca_store *s = open_store();
    uint64_t head = 99, oldest = 99;
    cr_assert_eq(otpca_store_seq(s, &head, &oldest), OTPCA_ERR_OK);
    cr_expect_eq(head, 0);
    cr_expect_eq(oldest, 0);

    otpca_device d[10];
    uint64_t expect = 0;
    for (unsigned i = 0; i < 10; i++) {
        make_device(&d[i], i);
        cr_assert_eq(otpca_store_device_add(s, &d[i]), OTPCA_ERR_OK);
        cr_expect_eq(d[i].seq, ++expect);
    }
    for (unsigned round = 0; round < 5; round++)
        for (unsigned i = round; i < 10; i += 3) {
            d[i].failures++;
            d[i].state = (int)(1 + (i + round) % 5);
            cr_assert_eq(otpca_store_device_update(s, &d[i]), OTPCA_ERR_OK);
            cr_expect_eq(d[i].seq, ++expect);
        }
    cr_assert_eq(otpca_store_seq(s, &head, &oldest), OTPCA_ERR_OK);
    cr_expect_eq(head, expect);
    cr_expect_eq(oldest, 1);

    /* The log holds one row per mutation, numbered 1..head. */
    otpca_store_destroy(&s);
    cr_expect_eq((uint64_t)store_int("SELECT count(*) FROM changes"), expect);
    cr_expect_eq(store_int("SELECT min(seq) FROM changes"), 1);
    cr_expect_eq((uint64_t)store_int("SELECT max(seq) FROM changes"), expect);
}

Test(store, changes_returns_each_device_once_in_its_latest_state_in_seq_order)
{
    otpca_store *s = open_store();
    enum { N = 20 };
    otpca_device d[N];
    for (unsigned i = 0; i < N; i++) {
        make_device(&d[i], i);
        cr_assert_eq(otpca_store_device_add(s, &d[i]), OTPCA_ERR_OK);
    }
    /* Devices 3, 7 and 11 change twice; 3 once more at the end. */
    unsigned touch[] = {3, 7, 11, 7, 3, 11, 3};
    for (size_t k = 0; k < sizeof touch / sizeof touch[0]; k++) {
        otpca_device *x = &d[touch[k]];
        x->failures += 1;
        x->last_step += 100;
        cr_assert_eq(otpca_store_device_update(s, x), OTPCA_ERR_OK);
    }
    uint64_t head = head_seq(s);
    cr_assert_eq(head, N + 7);

    struct collect c = collect_new(64);
    uint64_t next = 0;
    cr_assert_eq(otpca_store_changes(s, 0, 4096, collect_fn, &c, &next), OTPCA_ERR_OK);
    cr_assert_eq(c.n, N, "each device once");
    cr_expect_eq(next, head);
    for (size_t i = 0; i < c.n; i++) {
        if (i)
            cr_expect_gt(c.v[i].seq, c.v[i - 1].seq, "seq order");
        otpca_device got;
        cr_assert_eq(otpca_store_device_get(s, c.v[i].serial, &got), OTPCA_ERR_OK);
        expect_device_eq(&c.v[i], &got); /* latest state */
    }
    /* The last three are 7, 11, 3 (their last changes). */
    cr_expect_str_eq(c.v[N - 3].serial, d[7].serial);
    cr_expect_str_eq(c.v[N - 2].serial, d[11].serial);
    cr_expect_str_eq(c.v[N - 1].serial, d[3].serial);
    expect_device_eq(&c.v[N - 1], &d[3]);

    /* Only changes after `since`: from seq 20 on, devices 7, 11, 3 (seqs
     * 24, 26, 27) and the device added at 20 is excluded. */
    c.n = 0;
    cr_assert_eq(otpca_store_changes(s, 20, 4096, collect_fn, &c, &next), OTPCA_ERR_OK);
    cr_assert_eq(c.n, 3);
    cr_expect_eq(c.v[0].seq, 24);
    cr_expect_eq(c.v[1].seq, 26);
    cr_expect_eq(c.v[2].seq, 27);
    cr_expect_eq(next, 27);

    /* Nothing new: next stays at since. */
    c.n = 0;
    cr_assert_eq(otpca_store_changes(s, head, 4096, collect_fn, &c, &next), OTPCA_ERR_OK);
    cr_expect_eq(c.n, 0);
    cr_expect_eq(next, head);

    /* Limit, and a callback that stops early. */
    c.n = 0;
    cr_assert_eq(otpca_store_changes(s, 0, 5, collect_fn, &c, &next), OTPCA_ERR_OK);
    cr_expect_eq(c.n, 5);
    cr_expect_eq(next, c.v[4].seq);
    c.n = 0;
    c.stop_after = 2;
    cr_assert_eq(otpca_store_changes(s, 0, 10, collect_fn, &c, &next), OTPCA_ERR_OK);
    cr_expect_eq(c.n, 2);
    cr_expect_eq(next, c.v[1].seq);
    free(c.v);
    otpca_store_destroy(&s);
}

Test(store, paging_changes_by_seven_equals_one_big_call)
{
    otpca_store *s = open_store();
    enum { N = 60 };
    otpca_device d;
    for (unsigned i = 0; i < N; i++) {
        make_device(&d, i * 7919 % 1000);
        cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    }
    for (unsigned i = 0; i < 40; i++) {
        make_device(&d, (i * 13) % N * 7919 % 1000);
        cr_assert_eq(otpca_store_device_get(s, d.serial, &d), OTPCA_ERR_OK);
        d.failures = i;
        cr_assert_eq(otpca_store_device_update(s, &d), OTPCA_ERR_OK);
    }

    struct collect all = collect_new(N), paged = collect_new(N);
    uint64_t next = 0, since = 0;
    cr_assert_eq(otpca_store_changes(s, 0, SIZE_MAX, collect_fn, &all, &next), OTPCA_ERR_OK);
    cr_assert_eq(all.n, N);
    cr_expect_eq(next, head_seq(s));
    size_t calls = 0;
    for (;;) {
        size_t before = paged.n;
        cr_assert_eq(otpca_store_changes(s, since, 7, collect_fn, &paged, &next), OTPCA_ERR_OK);
        cr_assert_leq(paged.n - before, 7);
        calls++;
        if (paged.n == before) {
            cr_expect_eq(next, since);
            break;
        }
        cr_expect_gt(next, since);
        since = next;
        cr_assert_lt(calls, 100);
    }
    cr_expect_eq(calls, N / 7 + (N % 7 ? 1 : 0) + 1, "full pages, the rest, one empty call");
    cr_assert_eq(paged.n, all.n);
    for (size_t i = 0; i < all.n; i++)
        expect_device_eq(&paged.v[i], &all.v[i]);
    free(all.v);
    free(paged.v);
    otpca_store_destroy(&s);
}

Test(store, device_scan_pages_by_serial)
{
    otpca_store *s = open_store();
    enum { N = 25 };
    otpca_device d;
    for (unsigned i = 0; i < N; i++) {
        make_device(&d, (i * 11) % N); /* not in serial order */
        cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    }
    struct collect c = collect_new(N);
    char after[OTPCA_STORE_ID_MAX + 1] = "";
    size_t pages = 0;
    for (;;) {
        size_t before = c.n;
        cr_assert_eq(otpca_store_device_scan(s, after, 10, collect_fn, &c), OTPCA_ERR_OK);
        cr_assert_leq(c.n - before, 10);
        if (c.n == before)
            break;
        pages++;
        snprintf(after, sizeof after, "%s", c.v[c.n - 1].serial);
    }
    cr_expect_eq(pages, 3);
    cr_assert_eq(c.n, N);
    for (unsigned i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "dev-%08u", i);
        cr_expect_str_eq(c.v[i].serial, want);
    }
    /* From the middle, NULL as the start, and stopping early. */
    c.n = 0;
    cr_assert_eq(otpca_store_device_scan(s, "dev-00000019", 100, collect_fn, &c), OTPCA_ERR_OK);
    cr_expect_eq(c.n, 5);
    cr_expect_str_eq(c.v[0].serial, "dev-00000020");
    c.n = 0;
    c.stop_after = 4;
    cr_assert_eq(otpca_store_device_scan(s, NULL, 100, collect_fn, &c), OTPCA_ERR_OK);
    cr_expect_eq(c.n, 4);
    free(c.v);
    otpca_store_destroy(&s);
}

Test(store, device_counts_per_state)
{
    otpca_store *s = open_store();
    uint64_t counts[7];
    cr_assert_eq(otpca_store_device_counts(s, counts), OTPCA_ERR_OK);
    for (int i = 0; i < 7; i++)
        cr_expect_eq(counts[i], 0);
    /* state k gets k devices */
    unsigned n = 0;
    for (int state = 1; state <= 6; state++)
        for (int k = 0; k < state; k++) {
            otpca_device d;
            make_device(&d, n++);
            d.state = state;
            cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
        }
    cr_assert_eq(otpca_store_device_counts(s, counts), OTPCA_ERR_OK);
    cr_expect_eq(counts[0], 21);
    for (int state = 1; state <= 6; state++)
        cr_expect_eq(counts[state], (uint64_t)state, "state %d: %llu", state, (unsigned long long)counts[state]);
    /* Moving a device moves its count. */
    otpca_device d;
    cr_assert_eq(otpca_store_device_get(s, "dev-00000000", &d), OTPCA_ERR_OK);
    d.state = OTPCA_STORE_REVOKED;
    cr_assert_eq(otpca_store_device_update(s, &d), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_device_counts(s, counts), OTPCA_ERR_OK);
    cr_expect_eq(counts[OTPCA_STORE_APPROVED], 0);
    cr_expect_eq(counts[OTPCA_STORE_REVOKED], 4);
    cr_expect_eq(counts[0], 21);
    otpca_store_destroy(&s);
}

/* ------------------------------------------- managers, operators, batches */

struct mgr_list {
    otpca_manager v[8];
    size_t n;
};

static int mgr_fn(const otpca_manager *m, void *arg)
{
    struct mgr_list *l = arg;
    if (l->n < 8)
        l->v[l->n] = *m;
    l->n++;
    return 0;
}

Test(store, managers_add_get_by_curve_revoke_scan)
{
    otpca_store *s = open_store();
    otpca_manager m[3], got;
    for (unsigned i = 0; i < 3; i++) {
        make_manager(&m[2 - i], 2 - i); /* added out of id order */
        cr_assert_eq(otpca_store_manager_add(s, &m[2 - i]), OTPCA_ERR_OK);
    }
    cr_assert_eq(otpca_store_manager_get(s, "mgr-01", &got), OTPCA_ERR_OK);
    cr_expect_str_eq(got.id, "mgr-01");
    cr_expect_arr_eq(got.curve_pub, m[1].curve_pub, 32);
    cr_expect_arr_eq(got.ca_pub, m[1].ca_pub, 65);
    cr_expect_eq(got.ca_cert_len, m[1].ca_cert_len);
    cr_expect_arr_eq(got.ca_cert, m[1].ca_cert, m[1].ca_cert_len);
    cr_expect_eq(got.revoked, 0);

    cr_assert_eq(otpca_store_manager_by_curve(s, m[2].curve_pub, &got), OTPCA_ERR_OK);
    cr_expect_str_eq(got.id, "mgr-02");
    uint8_t unknown[32] = {0xff};
    cr_expect_eq(otpca_store_manager_by_curve(s, unknown, &got), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_store_manager_get(s, "mgr-99", &got), OTPCA_ERR_NOT_FOUND);

    /* Same id, or another id with a CURVE key already taken. */
    cr_expect_eq(otpca_store_manager_add(s, &m[0]), OTPCA_ERR_EXISTS);
    otpca_manager clash = m[0];
    snprintf(clash.id, sizeof clash.id, "mgr-50");
    cr_expect_eq(otpca_store_manager_add(s, &clash), OTPCA_ERR_EXISTS);

    cr_assert_eq(otpca_store_manager_revoke(s, "mgr-01"), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_manager_revoke(s, "mgr-01"), OTPCA_ERR_OK, "revoking twice is fine");
    cr_expect_eq(otpca_store_manager_revoke(s, "mgr-99"), OTPCA_ERR_NOT_FOUND);
    cr_assert_eq(otpca_store_manager_by_curve(s, m[1].curve_pub, &got), OTPCA_ERR_OK);
    cr_expect_eq(got.revoked, 1);

    struct mgr_list l = {.n = 0};
    cr_assert_eq(otpca_store_manager_scan(s, mgr_fn, &l), OTPCA_ERR_OK);
    cr_assert_eq(l.n, 3);
    cr_expect_str_eq(l.v[0].id, "mgr-00");
    cr_expect_str_eq(l.v[1].id, "mgr-01");
    cr_expect_str_eq(l.v[2].id, "mgr-02");
    cr_expect_eq(l.v[0].revoked, 0);
    cr_expect_eq(l.v[1].revoked, 1);
    otpca_store_destroy(&s);
}

Test(store, operators_accept_only_strictly_newer_steps)
{
    otpca_store *s = open_store();
    otpca_operator o = {.id = "alice", .digits = 6, .period = 30, .algorithm = 1, .last_step = 100};
    o.seed_env_len = 90;
    for (size_t k = 0; k < o.seed_env_len; k++)
        o.seed_env[k] = (uint8_t)(k * 3);
    cr_assert_eq(otpca_store_operator_add(s, &o), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_operator_add(s, &o), OTPCA_ERR_EXISTS);

    otpca_operator got;
    cr_assert_eq(otpca_store_operator_get(s, "alice", &got), OTPCA_ERR_OK);
    cr_expect_str_eq(got.id, "alice");
    cr_expect_eq(got.seed_env_len, 90);
    cr_expect_arr_eq(got.seed_env, o.seed_env, 90);
    cr_expect_eq(got.digits, 6);
    cr_expect_eq(got.period, 30);
    cr_expect_eq(got.algorithm, 1);
    cr_expect_eq(got.last_step, 100);

    cr_expect_eq(otpca_store_operator_accept_step(s, "alice", 99), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_store_operator_accept_step(s, "alice", 100), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_store_operator_accept_step(s, "alice", 101), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_operator_accept_step(s, "alice", 101), OTPCA_ERR_STATE, "a step is accepted once");
    cr_expect_eq(otpca_store_operator_accept_step(s, "alice", 150), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_operator_accept_step(s, "alice", 120), OTPCA_ERR_STATE);
    cr_assert_eq(otpca_store_operator_get(s, "alice", &got), OTPCA_ERR_OK);
    cr_expect_eq(got.last_step, 150);
    cr_expect_eq(otpca_store_operator_accept_step(s, "bob", 1), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_store_operator_get(s, "bob", &got), OTPCA_ERR_NOT_FOUND);
    otpca_store_destroy(&s);
}

Test(store, batches_add_get)
{
    otpca_store *s = open_store();
    otpca_batch b = {.id = "lot-2024.07"}, got;
    b.product_pub[0] = 0x04;
    for (size_t k = 1; k < 65; k++)
        b.product_pub[k] = (uint8_t)(k * 9);
    cr_assert_eq(otpca_store_batch_add(s, &b), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_batch_add(s, &b), OTPCA_ERR_EXISTS);
    cr_assert_eq(otpca_store_batch_get(s, "lot-2024.07", &got), OTPCA_ERR_OK);
    cr_expect_str_eq(got.id, b.id);
    cr_expect_arr_eq(got.product_pub, b.product_pub, 65);
    cr_expect_eq(otpca_store_batch_get(s, "lot-1999", &got), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_store_batch_get(s, "bad id", &got), OTPCA_ERR_INVALID_ARG);

    otpca_device d;
    make_device(&d, 1);
    d.pubkey_len = 0; /* a batch device carries the product key */
    snprintf(d.batch, sizeof d.batch, "lot-2024.07");
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    otpca_device gd;
    cr_assert_eq(otpca_store_device_get(s, d.serial, &gd), OTPCA_ERR_OK);
    cr_expect_str_eq(gd.batch, "lot-2024.07");
    cr_expect_eq(gd.pubkey_len, 0);
    otpca_store_destroy(&s);
}

/* ---------------------------------------------------------------- leases */

Test(store, leases_add_get)
{
    otpca_store *s = open_store();
    otpca_manager m;
    make_manager(&m, 1);
    otpca_operator o = {.id = "alice", .digits = 6, .period = 30, .algorithm = 1};
    cr_assert_eq(otpca_store_manager_add(s, &m), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_operator_add(s, &o), OTPCA_ERR_OK);

    otpca_lease l, got;
    memset(&l, 0, sizeof l);
    for (size_t k = 0; k < 16; k++)
        l.window[k] = (uint8_t)(0x30 + k);
    snprintf(l.manager, sizeof l.manager, "mgr-01");
    snprintf(l.operator_, sizeof l.operator_, "alice");
    l.not_before = 1700000000;
    l.not_after = 1700003600;
    l.max_enroll = 5000;
    snprintf(l.scope, sizeof l.scope, "lot-1,lot-2,lot-3");
    l.offline = 1;
    cr_assert_eq(otpca_store_lease_add(s, &l), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_lease_add(s, &l), OTPCA_ERR_EXISTS);
    memset(&got, 0xee, sizeof got);
    cr_assert_eq(otpca_store_lease_get(s, l.window, &got), OTPCA_ERR_OK);
    cr_expect_arr_eq(got.window, l.window, 16);
    cr_expect_str_eq(got.manager, l.manager);
    cr_expect_str_eq(got.operator_, l.operator_);
    cr_expect_eq(got.not_before, l.not_before);
    cr_expect_eq(got.not_after, l.not_after);
    cr_expect_eq(got.max_enroll, l.max_enroll);
    cr_expect_str_eq(got.scope, l.scope);
    cr_expect_eq(got.offline, 1);

    /* "" scope (everything) stays "", and an unknown window is not found. */
    l.window[0] ^= 1;
    l.scope[0] = '\0';
    l.offline = 0;
    cr_assert_eq(otpca_store_lease_add(s, &l), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_lease_get(s, l.window, &got), OTPCA_ERR_OK);
    cr_expect_str_eq(got.scope, "");
    cr_expect_eq(got.offline, 0);
    l.window[0] ^= 2;
    cr_expect_eq(otpca_store_lease_get(s, l.window, &got), OTPCA_ERR_NOT_FOUND);
    /* For a manager the store does not know. */
    snprintf(l.manager, sizeof l.manager, "mgr-77");
    cr_expect_eq(otpca_store_lease_add(s, &l), OTPCA_ERR_NOT_FOUND);

    /* A lease made by a WindowOpen is found again by its nonce, which no
     * other lease may share; closing works once. */
    snprintf(l.manager, sizeof l.manager, "mgr-01");
    l.window[1] ^= 0x40;
    memset(l.nonce, 0xa5, sizeof l.nonce);
    l.has_nonce = 1;
    cr_assert_eq(otpca_store_lease_add(s, &l), OTPCA_ERR_OK);
    memset(&got, 0, sizeof got);
    cr_assert_eq(otpca_store_lease_by_nonce(s, l.nonce, &got), OTPCA_ERR_OK);
    cr_expect_arr_eq(got.window, l.window, 16);
    cr_expect_eq(got.has_nonce, 1);
    cr_expect_eq(got.closed_at, 0);
    l.window[1] ^= 0x20;
    cr_expect_eq(otpca_store_lease_add(s, &l), OTPCA_ERR_EXISTS, "a second lease with the same nonce");
    l.nonce[0] ^= 1;
    cr_expect_eq(otpca_store_lease_by_nonce(s, l.nonce, &got), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_store_lease_close(s, got.window, 1700000100), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_lease_close(s, got.window, 1700000200), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_store_lease_close(s, l.window, 1700000200), OTPCA_ERR_NOT_FOUND);
    cr_assert_eq(otpca_store_lease_get(s, got.window, &got), OTPCA_ERR_OK);
    cr_expect_eq(got.closed_at, 1700000100);
    otpca_store_destroy(&s);
}

Test(store, meta_values_are_added_once_and_read_back)
{
    otpca_store *s = open_store();
    uint8_t v[40], back[64];
    size_t len = 0;
    for (size_t k = 0; k < sizeof v; k++)
        v[k] = (uint8_t)(k * 7 + 1);
    cr_expect_eq(otpca_store_meta_get(s, "seed_key", back, sizeof back, &len), OTPCA_ERR_NOT_FOUND);
    cr_assert_eq(otpca_store_meta_add(s, "seed_key", v, sizeof v), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_meta_get(s, "seed_key", back, sizeof back, &len), OTPCA_ERR_OK);
    cr_expect_eq(len, sizeof v);
    cr_expect_arr_eq(back, v, sizeof v);
    v[0] ^= 1;
    cr_expect_eq(otpca_store_meta_add(s, "seed_key", v, sizeof v), OTPCA_ERR_EXISTS, "never replaced");
    cr_assert_eq(otpca_store_meta_get(s, "seed_key", back, sizeof back, &len), OTPCA_ERR_OK);
    cr_expect_neq(back[0], v[0]);
    cr_expect_neq(otpca_store_meta_get(s, "seed_key", back, 8, &len), OTPCA_ERR_OK, "too small a buffer");
    cr_expect_eq(otpca_store_meta_add(s, "schema_version", v, 1), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_store_meta_add(s, "audit_head", v, 1), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_store_meta_add(s, "", v, 1), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_store_meta_add(s, "x", v, 0), OTPCA_ERR_INVALID_ARG);
    otpca_store_destroy(&s);
}

Test(store, meta_replace_swaps_only_the_value_it_was_given)
{
    otpca_store *s = open_store();
    uint8_t a[40], b[48], back[64];
    size_t len = 0;
    memset(a, 0xa5, sizeof a);
    memset(b, 0x5b, sizeof b);
    cr_expect_eq(otpca_store_meta_replace(s, "seed_key", a, sizeof a, b, sizeof b), OTPCA_ERR_STATE, "absent");
    cr_assert_eq(otpca_store_meta_add(s, "seed_key", a, sizeof a), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_begin(s), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_meta_replace(s, "seed_key", a, sizeof a, b, sizeof b), OTPCA_ERR_OK);
    otpca_store_rollback(s);
    cr_assert_eq(otpca_store_meta_get(s, "seed_key", back, sizeof back, &len), OTPCA_ERR_OK);
    cr_expect(len == sizeof a && !memcmp(back, a, sizeof a), "rolled back: the old value");
    cr_expect_eq(otpca_store_meta_replace(s, "seed_key", a, sizeof a, b, sizeof b), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_meta_get(s, "seed_key", back, sizeof back, &len), OTPCA_ERR_OK);
    cr_expect(len == sizeof b && !memcmp(back, b, sizeof b), "replaced");
    cr_expect_eq(otpca_store_meta_replace(s, "seed_key", a, sizeof a, a, sizeof a), OTPCA_ERR_STATE,
                 "a stale old value (another process replaced it first) changes nothing");
    cr_assert_eq(otpca_store_meta_get(s, "seed_key", back, sizeof back, &len), OTPCA_ERR_OK);
    cr_expect(len == sizeof b && !memcmp(back, b, sizeof b));
    cr_expect_eq(otpca_store_meta_replace(s, "audit_head", b, 1, a, 1), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_store_meta_replace(s, "seed_key", b, sizeof b, a, 0), OTPCA_ERR_INVALID_ARG);
    otpca_store_destroy(&s);
}

/* --------------------------------------------------------------- records */

Test(store, records_are_idempotent_by_id)
{
    otpca_store *s = open_store();
    uint8_t cert[600];
    for (size_t k = 0; k < sizeof cert; k++)
        cert[k] = (uint8_t)(k * 13);
    otpca_stored_record r;
    int dup = -1;
    uint64_t n = 99;
    cr_assert_eq(otpca_store_record_count(s, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, 0);
    for (unsigned i = 0; i < 10; i++) {
        make_record(&r, i, i % 2 ? cert : NULL, i % 2 ? sizeof cert : 0);
        cr_assert_eq(otpca_store_record_put(s, &r, &dup), OTPCA_ERR_OK);
        cr_expect_eq(dup, 0);
    }
    /* Exact repeats: OK, dup = 1, nothing added. */
    for (unsigned i = 0; i < 10; i++) {
        uint8_t copy[sizeof cert];
        memcpy(copy, cert, sizeof copy); /* same content, other buffer */
        make_record(&r, i, i % 2 ? copy : NULL, i % 2 ? sizeof copy : 0);
        dup = -1;
        cr_assert_eq(otpca_store_record_put(s, &r, &dup), OTPCA_ERR_OK);
        cr_expect_eq(dup, 1, "record %u", i);
    }
    cr_assert_eq(otpca_store_record_count(s, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, 10);

    /* The flag is the cloud's verdict: kept with a new record, reported
     * back on a repeat whatever the repeat says. */
    make_record(&r, 30, NULL, 0);
    r.flagged = 1;
    cr_assert_eq(otpca_store_record_put(s, &r, &dup), OTPCA_ERR_OK);
    make_record(&r, 30, NULL, 0);
    cr_assert_eq(otpca_store_record_put(s, &r, &dup), OTPCA_ERR_OK);
    cr_expect_eq(dup, 1);
    cr_expect_eq(r.flagged, 1, "a repeat hears the stored flag");
    make_record(&r, 1, cert, sizeof cert);
    r.flagged = 1;
    cr_assert_eq(otpca_store_record_put(s, &r, &dup), OTPCA_ERR_OK);
    cr_expect_eq(r.flagged, 0, "record 1 was stored unflagged");
    n = 0;
    cr_assert_eq(otpca_store_record_count(s, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, 11);

    /* Same id, any field different: EXISTS. */
    uint8_t other[sizeof cert];
    memcpy(other, cert, sizeof other);
    other[100] ^= 1;
    for (int field = 0; field < 10; field++) {
        make_record(&r, 1, cert, sizeof cert);
        switch (field) {
        case 0: r.window[3] ^= 1; break;
        case 1: snprintf(r.manager, sizeof r.manager, "mgr-02"); break;
        case 2: r.kind = 2; break;
        case 3: snprintf(r.serial, sizeof r.serial, "dev-x"); break;
        case 4: r.time++; break;
        case 5: r.cert = other; break;
        case 6: r.cert_len--; break;
        case 7: r.cert = NULL; r.cert_len = 0; break;
        case 8: r.step++; break;
        case 9: r.reason = 3; break;
        }
        dup = -1;
        cr_expect_eq(otpca_store_record_put(s, &r, &dup), OTPCA_ERR_EXISTS, "field %d", field);
    }
    cr_assert_eq(otpca_store_record_count(s, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, 11);

    make_record(&r, 20, NULL, 0);
    r.kind = 7;
    cr_expect_eq(otpca_store_record_put(s, &r, &dup), OTPCA_ERR_INVALID_ARG);
    otpca_store_destroy(&s);
}

/* ---------------------------------------------------------- transactions */

Test(store, rollback_discards_and_commit_keeps)
{
    otpca_store *s = open_store();
    otpca_device d, got;
    otpca_stored_record r;
    int dup;
    uint64_t n;

    cr_assert_eq(otpca_store_begin(s), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_begin(s), OTPCA_ERR_STATE, "no nesting");
    make_device(&d, 1);
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    make_record(&r, 1, NULL, 0);
    cr_assert_eq(otpca_store_record_put(s, &r, &dup), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_device_get(s, d.serial, &got), OTPCA_ERR_OK, "visible inside");
    otpca_store_rollback(s);
    cr_expect_eq(otpca_store_device_get(s, d.serial, &got), OTPCA_ERR_NOT_FOUND);
    cr_assert_eq(otpca_store_record_count(s, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, 0);
    cr_expect_eq(head_seq(s), 0);
    cr_expect_eq(otpca_store_commit(s), OTPCA_ERR_STATE, "nothing to commit");

    /* A failed call inside a transaction leaves the rest of it alone, and
     * the numbers stay gap-free. */
    cr_assert_eq(otpca_store_begin(s), OTPCA_ERR_OK);
    make_device(&d, 1);
    cr_assert_eq(otpca_store_device_add(s, &d), OTPCA_ERR_OK);
    cr_expect_eq(d.seq, 1);
    cr_expect_eq(otpca_store_device_add(s, &d), OTPCA_ERR_EXISTS);
    otpca_device d2;
    make_device(&d2, 2);
    cr_assert_eq(otpca_store_device_add(s, &d2), OTPCA_ERR_OK);
    cr_expect_eq(d2.seq, 2);
    cr_assert_eq(otpca_store_record_put(s, &r, &dup), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_commit(s), OTPCA_ERR_OK);
    otpca_store_destroy(&s);

    s = open_store();
    cr_expect_eq(otpca_store_device_get(s, d.serial, &got), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_device_get(s, d2.serial, &got), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_record_count(s, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, 1);
    cr_expect_eq(head_seq(s), 2);
    otpca_store_destroy(&s);
}

Test(store, a_second_handle_sees_only_committed_work)
{
    otpca_store *a = open_store(), *b = open_store();
    otpca_device d, got;
    make_device(&d, 1);
    cr_assert_eq(otpca_store_begin(a), OTPCA_ERR_OK);
    cr_assert_eq(otpca_store_device_add(a, &d), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_device_get(b, d.serial, &got), OTPCA_ERR_NOT_FOUND);
    cr_assert_eq(otpca_store_commit(a), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_device_get(b, d.serial, &got), OTPCA_ERR_OK);
    /* b writes after a: the sequence continues. */
    make_device(&d, 2);
    cr_assert_eq(otpca_store_device_add(b, &d), OTPCA_ERR_OK);
    cr_expect_eq(d.seq, 2);
    otpca_store_destroy(&a);
    otpca_store_destroy(&b);
}

/* Two processes add devices at once, one call at a time and in small
 * transactions: the write lock serialises them and the numbers stay
 * gap-free, each device once. */
/* Two writer processes at once on the store, each with a handle of its
 * own running body(handle, writer number): its exit status is 0 when the
 * body returns 0, the body's code otherwise (2: the store did not open).
 * Asserts that both exited 0. */
static void two_writers(int (*body)(otpca_store *c, unsigned w))
{
    otpca_store *s = open_store(); /* create the schema before the race */
    otpca_store_destroy(&s);
    pid_t pids[2];
    fflush(NULL);
    for (unsigned w = 0; w < 2; w++) {
        pids[w] = fork();
        cr_assert_neq(pids[w], -1);
        if (pids[w] == 0) {
            otpca_store *c = NULL;
            if (otpca_store_open(g_url, &c) != OTPCA_ERR_OK)
                _exit(2);
            int rc = body(c, w);
            otpca_store_destroy(&c);
            _exit(rc);
        }
    }
    for (unsigned w = 0; w < 2; w++) {
        int status = 0;
        cr_assert_eq(waitpid(pids[w], &status, 0), pids[w]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %u: status %#x", w, status);
    }
}

enum { PER = 300, ROUNDS = 60 };

/* PER devices, each added then updated, in runs of 5 that alternate
 * between one transaction and a call each. */
static int add_and_update(otpca_store *c, unsigned w)
{
    otpca_device d;
    for (unsigned i = 0; i < PER; i += 5) {
        int tx = (i / 5) % 2;
        if (tx && otpca_store_begin(c) != OTPCA_ERR_OK)
            return 3;
        for (unsigned k = i; k < i + 5; k++) {
            make_device(&d, w * 100000 + k);
            if (otpca_store_device_add(c, &d) != OTPCA_ERR_OK)
                return 4;
            d.failures = 1;
            if (otpca_store_device_update(c, &d) != OTPCA_ERR_OK)
                return 5;
        }
        if (tx && otpca_store_commit(c) != OTPCA_ERR_OK)
            return 6;
    }
    return 0;
}

Test(store, two_writers_at_once_keep_the_change_log_gap_free)
{
    two_writers(add_and_update);
    otpca_store *s = open_store();
    uint64_t head = 0, oldest = 0;
    cr_assert_eq(otpca_store_seq(s, &head, &oldest), OTPCA_ERR_OK);
    cr_expect_eq(head, 4 * PER, "an add and an update per device");
    cr_expect_eq(oldest, 1);
    struct collect c = collect_new(2 * PER);
    uint64_t next = 0;
    cr_assert_eq(otpca_store_changes(s, 0, SIZE_MAX, collect_fn, &c, &next), OTPCA_ERR_OK);
    cr_expect_eq(c.n, 2 * PER);
    for (size_t i = 0; i < c.n && i < c.cap; i++) {
        cr_expect_eq(c.v[i].failures, 1);
        if (i)
            cr_expect_gt(c.v[i].seq, c.v[i - 1].seq);
    }
    free(c.v);
    otpca_store_destroy(&s);

    cr_expect_eq(store_int("SELECT count(*) FROM changes"), 4 * PER);
    cr_expect_eq(store_int("SELECT min(seq) FROM changes"), 1);
    cr_expect_eq(store_int("SELECT max(seq) FROM changes"), 4 * PER);
}

/* ROUNDS transactions of 3 devices, each also added a second time
 * (EXISTS); every third transaction rolls back. */
static int add_twice_some_rolled_back(otpca_store *c, unsigned w)
{
    otpca_device d;
    for (unsigned i = 0; i < ROUNDS; i++) {
        if (otpca_store_begin(c) != OTPCA_ERR_OK)
            return 3;
        for (unsigned k = 0; k < 3; k++) {
            make_device(&d, w * 100000 + i * 3 + k);
            if (otpca_store_device_add(c, &d) != OTPCA_ERR_OK)
                return 4;
            if (otpca_store_device_add(c, &d) != OTPCA_ERR_EXISTS)
                return 5;
        }
        if (i % 3 == 1) {
            otpca_store_rollback(c);
            continue;
        }
        if (otpca_store_commit(c) != OTPCA_ERR_OK)
            return 6;
        make_device(&d, w * 100000 + i * 3);
        if (otpca_store_device_add(c, &d) != OTPCA_ERR_EXISTS)
            return 7;
    }
    return 0;
}

/* Two writers at once again, but a third of their transactions roll back
 * and every device is also added a second time (EXISTS): numbers handed
 * out to work that did not happen are given back, so the log still runs
 * 1..head without a hole (a database sequence would leave one). */
Test(store, writers_that_roll_back_or_fail_leave_no_hole_in_the_change_log)
{
    two_writers(add_twice_some_rolled_back);
    const int64_t kept = 2 * (ROUNDS - ROUNDS / 3) * 3;
    otpca_store *s = open_store();
    cr_expect_eq(head_seq(s), (uint64_t)kept);
    uint64_t counts[7];
    cr_assert_eq(otpca_store_device_counts(s, counts), OTPCA_ERR_OK);
    cr_expect_eq(counts[0], (uint64_t)kept);
    otpca_store_destroy(&s);
    cr_expect_eq(store_int("SELECT count(*) FROM changes"), kept);
    cr_expect_eq(store_int("SELECT min(seq) FROM changes"), 1);
    cr_expect_eq(store_int("SELECT max(seq) FROM changes"), kept);
}

/* ----------------------------------------------------------------- audit */

/* The chain's hash, recomputed here from the protocol encoder. */
static void audit_hash_here(const otpca_audit *a, uint8_t out[32])
{
    otpca_audit_entry e;
    uint8_t buf[1024];
    size_t len = 0;
    memset(&e, 0, sizeof e);
    e.seq = a->seq;
    e.prev = (otpca_buf){a->prev, 32};
    e.time = a->time;
    e.actor = (otpca_buf){(const uint8_t *)a->actor, strlen(a->actor)};
    e.event = a->event;
    if (a->subject[0])
        e.subject = (otpca_buf){(const uint8_t *)a->subject, strlen(a->subject)};
    if (a->detail[0])
        e.detail = (otpca_buf){(const uint8_t *)a->detail, strlen(a->detail)};
    cr_assert_eq(otpca_msg_encode(&otpca_desc_audit_entry, &e, buf, sizeof buf, &len), OTPCA_ERR_OK);
    otpca_sha256(buf, len, out);
}

static void append_100(otpca_store *s)
{
    uint8_t prev[32] = {0}, h[32];
    for (unsigned i = 0; i < 100; i++) {
        otpca_audit a;
        memset(&a, 0, sizeof a);
        a.time = 1700000000u + i;
        snprintf(a.actor, sizeof a.actor, i % 3 ? "cloud" : "mgr-01");
        a.event = 1 + i % 15;
        if (i % 4)
            snprintf(a.subject, sizeof a.subject, "dev-%08u", i);
        if (i % 5)
            snprintf(a.detail, sizeof a.detail, "entry %u: caf\xc3\xa9 %s", i, i == 7 ? "" : "detail");
        if (i == 99)
            memset(a.detail, 'x', 512);
        cr_assert_eq(otpca_store_audit_append(s, &a), OTPCA_ERR_OK, "entry %u", i);
        cr_expect_eq(a.seq, i + 1);
        cr_expect_arr_eq(a.prev, prev, 32, "entry %u prev", i);
        audit_hash_here(&a, h);
        cr_expect_arr_eq(a.hash, h, 32, "entry %u hash", i);
        memcpy(prev, a.hash, 32);
    }
}

Test(store, a_crl_is_kept_per_manager_and_only_a_newer_number_replaces_it)
{
    otpca_store *s = open_store();
    otpca_manager m;
    make_manager(&m, 1);
    cr_assert_eq(otpca_store_manager_add(s, &m), OTPCA_ERR_OK);
    uint8_t a[300], b[700], got[1024];
    memset(a, 0xa1, sizeof a);
    memset(b, 0xb2, sizeof b);
    uint64_t num = 0, t0 = 0, t1 = 0;
    size_t len = 0;
    int stored = -1;
    cr_expect_eq(otpca_store_crl_get(s, m.id, &num, &t0, &t1, got, sizeof got, &len), OTPCA_ERR_NOT_FOUND);
    cr_assert_eq(otpca_store_crl_put(s, m.id, 2, 1000, 2000, a, sizeof a, &stored), OTPCA_ERR_OK);
    cr_expect_eq(stored, 1);
    /* An older number, and the same one again, are not stored (no error). */
    cr_assert_eq(otpca_store_crl_put(s, m.id, 1, 1500, 2500, b, sizeof b, &stored), OTPCA_ERR_OK);
    cr_expect_eq(stored, 0);
    cr_assert_eq(otpca_store_crl_put(s, m.id, 2, 1500, 2500, b, sizeof b, &stored), OTPCA_ERR_OK);
    cr_expect_eq(stored, 0);
    cr_assert_eq(otpca_store_crl_get(s, m.id, &num, &t0, &t1, got, sizeof got, &len), OTPCA_ERR_OK);
    cr_expect(num == 2 && t0 == 1000 && t1 == 2000 && len == sizeof a && !memcmp(got, a, sizeof a));
    cr_assert_eq(otpca_store_crl_put(s, m.id, 3, 1500, 2500, b, sizeof b, &stored), OTPCA_ERR_OK);
    cr_expect_eq(stored, 1);
    cr_assert_eq(otpca_store_crl_get(s, m.id, &num, &t0, &t1, got, sizeof got, &len), OTPCA_ERR_OK);
    cr_expect(num == 3 && t0 == 1500 && t1 == 2500 && len == sizeof b && !memcmp(got, b, sizeof b));
    cr_expect_eq(otpca_store_crl_get(s, m.id, &num, &t0, &t1, got, 100, &len), OTPCA_ERR_BUFFER_TOO_SMALL);
    /* Only registered managers; bad arguments. */
    cr_expect_neq(otpca_store_crl_put(s, "mgr-nobody", 1, 1, 2, a, sizeof a, &stored), OTPCA_ERR_OK);
    cr_expect_eq(otpca_store_crl_put(s, m.id, 4, 1, 2, a, 0, &stored), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_store_crl_put(s, "bad id", 4, 1, 2, a, sizeof a, &stored), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_store_crl_get(s, "mgr-nobody", &num, &t0, &t1, got, sizeof got, &len), OTPCA_ERR_NOT_FOUND);
    otpca_store_destroy(&s);
}

Test(store, audit_chain_appends_and_verifies)
{
    otpca_store *s = open_store();
    uint64_t entries = 99, bad = 99;
    cr_assert_eq(otpca_store_audit_verify(s, &entries, &bad), OTPCA_ERR_OK);
    cr_expect_eq(entries, 0);
    cr_expect_eq(bad, 0);
    append_100(s);
    cr_assert_eq(otpca_store_audit_verify(s, &entries, &bad), OTPCA_ERR_OK);
    cr_expect_eq(entries, 100);
    cr_expect_eq(bad, 0);

    /* Entries that would not encode are refused before they get a seq. */
    otpca_audit a;
    memset(&a, 0, sizeof a);
    snprintf(a.actor, sizeof a.actor, "cloud");
    a.event = 0;
    cr_expect_eq(otpca_store_audit_append(s, &a), OTPCA_ERR_INVALID_ARG);
    a.event = 1;
    snprintf(a.detail, sizeof a.detail, "bad utf-8 \xff");
    cr_expect_eq(otpca_store_audit_append(s, &a), OTPCA_ERR_INVALID_ARG);
    a.detail[0] = '\0';
    snprintf(a.actor, sizeof a.actor, "no spaces");
    cr_expect_eq(otpca_store_audit_append(s, &a), OTPCA_ERR_INVALID_ARG);
    cr_assert_eq(otpca_store_audit_verify(s, &entries, &bad), OTPCA_ERR_OK);
    cr_expect_eq(entries, 100);
    otpca_store_destroy(&s);
}

Test(store, audit_verify_finds_a_changed_entry)
{
    otpca_store *s = open_store();
    append_100(s);
    otpca_store_destroy(&s);
    store_sql("UPDATE audit SET detail = 'nothing happened here' WHERE seq = 37");
    s = open_store();
    uint64_t entries = 0, bad = 0;
    cr_expect_eq(otpca_store_audit_verify(s, &entries, &bad), OTPCA_ERR_SIGNATURE);
    cr_expect_eq(bad, 37);
    cr_expect_eq(entries, 36);
    otpca_store_destroy(&s);

    /* Fixing up the entry's own hash only moves the break to the next. */
    store_sql("UPDATE audit SET detail = 'entry 36: caf\xc3\xa9 detail' WHERE seq = 37");
    s = open_store();
    cr_expect_eq(otpca_store_audit_verify(s, &entries, &bad), OTPCA_ERR_OK, "restored");
    otpca_store_destroy(&s);
    store_sql("UPDATE audit SET time = time + 1 WHERE seq = 60");
    s = open_store();
    cr_expect_eq(otpca_store_audit_verify(s, &entries, &bad), OTPCA_ERR_SIGNATURE);
    cr_expect_eq(bad, 60);
    otpca_store_destroy(&s);
}

Test(store, audit_verify_finds_a_removed_entry)
{
    otpca_store *s = open_store();
    append_100(s);
    otpca_store_destroy(&s);
    store_sql("DELETE FROM audit WHERE seq = 50");
    s = open_store();
    uint64_t entries = 0, bad = 0;
    cr_expect_eq(otpca_store_audit_verify(s, &entries, &bad), OTPCA_ERR_SIGNATURE);
    cr_expect_eq(bad, 50);
    otpca_store_destroy(&s);

    /* Renumbering the rest does not help: entry 50's prev is 49's hash. */
    store_sql("UPDATE audit SET seq = seq - 1 WHERE seq > 50");
    s = open_store();
    cr_expect_eq(otpca_store_audit_verify(s, &entries, &bad), OTPCA_ERR_SIGNATURE);
    cr_expect_eq(bad, 50);
    otpca_store_destroy(&s);
}

Test(store, audit_verify_finds_a_cut_off_tail)
{
    otpca_store *s = open_store();
    append_100(s);
    otpca_store_destroy(&s);
    store_sql("DELETE FROM audit WHERE seq > 97");
    s = open_store();
    uint64_t entries = 0, bad = 0;
    cr_expect_eq(otpca_store_audit_verify(s, &entries, &bad), OTPCA_ERR_SIGNATURE);
    cr_expect_eq(entries, 97);
    cr_expect_eq(bad, 98);
    otpca_store_destroy(&s);
}

/* ------------------------------------------------------------ durability */

Test(store, committed_records_survive_sigkill_right_after_commit)
{
    enum { COMMITTED = 300, UNCOMMITTED = 50 };
    uint8_t cert[256];
    memset(cert, 0xc5, sizeof cert);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        otpca_store *s = NULL;
        otpca_stored_record r;
        int dup;
        if (otpca_store_open(g_url, &s) != OTPCA_ERR_OK)
            _exit(2);
        /* Ten on their own (autocommit), the rest in one transaction. */
        for (unsigned i = 0; i < 10; i++) {
            make_record(&r, i, cert, sizeof cert);
            if (otpca_store_record_put(s, &r, &dup) != OTPCA_ERR_OK)
                _exit(3);
        }
        if (otpca_store_begin(s) != OTPCA_ERR_OK)
            _exit(4);
        for (unsigned i = 10; i < COMMITTED; i++) {
            make_record(&r, i, cert, sizeof cert);
            if (otpca_store_record_put(s, &r, &dup) != OTPCA_ERR_OK)
                _exit(5);
        }
        if (otpca_store_commit(s) != OTPCA_ERR_OK)
            _exit(6);
        if (otpca_store_begin(s) != OTPCA_ERR_OK)
            _exit(7);
        for (unsigned i = COMMITTED; i < COMMITTED + UNCOMMITTED; i++) {
            make_record(&r, i, cert, sizeof cert);
            if (otpca_store_record_put(s, &r, &dup) != OTPCA_ERR_OK)
                _exit(8);
        }
        kill(getpid(), SIGKILL);
        _exit(9);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child ended with status %#x", status);

    otpca_store *s = open_store();
    uint64_t n = 0;
    cr_assert_eq(otpca_store_record_count(s, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, COMMITTED);
    for (unsigned i = 0; i < COMMITTED; i++) {
        otpca_stored_record r;
        int dup = -1;
        make_record(&r, i, cert, sizeof cert);
        cr_assert_eq(otpca_store_record_put(s, &r, &dup), OTPCA_ERR_OK);
        cr_expect_eq(dup, 1, "record %u survived", i);
    }
    cr_assert_eq(otpca_store_record_count(s, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, COMMITTED);
    otpca_store_destroy(&s);
}

/* ------------------------------------------------------------------ bulk */

struct walk {
    uint64_t n, last;
    int ordered;
};

static int walk_fn(const otpca_device *d, void *arg)
{
    struct walk *w = arg;
    if (d->seq <= w->last)
        w->ordered = 0;
    w->last = d->seq;
    w->n++;
    return 0;
}

Test(store, bulk_100k_devices_added_many_at_a_time, .timeout = 240)
{
    enum { N = 100000, CHUNK = 10000, CALL = 1000 };
    otpca_store *s = open_store();
    add_batch_and_manager(s);
    otpca_device *d = calloc(CALL, sizeof *d);
    otpca_err res[CALL];
    cr_assert_not_null(d);
    double t0 = now_s();
    for (unsigned i = 0; i < N; i += CHUNK) {
        cr_assert_eq(otpca_store_begin(s), OTPCA_ERR_OK);
        for (unsigned k = i; k < i + CHUNK; k += CALL) {
            for (unsigned j = 0; j < CALL; j++)
                make_full_device(&d[j], k + j);
            cr_assert_eq(otpca_store_device_add_many(s, d, CALL, res), OTPCA_ERR_OK);
            for (unsigned j = 0; j < CALL; j++)
                if (res[j] != OTPCA_ERR_OK || d[j].seq != k + j + 1)
                    cr_assert_fail("device %u: %s, seq %llu", k + j, otpca_errname(res[j]),
                                   (unsigned long long)d[j].seq);
        }
        cr_assert_eq(otpca_store_commit(s), OTPCA_ERR_OK);
    }
    double t1 = now_s();
    cr_expect_eq(head_seq(s), N);
    otpca_device got;
    make_full_device(&d[0], N - 1);
    d[0].seq = N;
    cr_assert_eq(otpca_store_device_get(s, d[0].serial, &got), OTPCA_ERR_OK);
    expect_device_eq(&got, &d[0]);
    fprintf(stderr, "store bulk: %d devices added %d per call in %.2f s (%.0f/s)\n", N, CALL, t1 - t0,
            N / (t1 - t0));
    free(d);
    otpca_store_destroy(&s);
}

Test(store, bulk_100k_devices_then_a_changes_walk, .timeout = 240)
{
    enum { N = 100000, CHUNK = 10000 };
    otpca_store *s = open_store();
    otpca_device d;
    double t0 = now_s();
    for (unsigned i = 0; i < N; i += CHUNK) {
        cr_assert_eq(otpca_store_begin(s), OTPCA_ERR_OK);
        for (unsigned k = i; k < i + CHUNK; k++) {
            make_device(&d, k);
            otpca_err ret = otpca_store_device_add(s, &d);
            if (ret != OTPCA_ERR_OK)
                cr_assert_fail("device %u: %s", k, otpca_errname(ret));
        }
        cr_assert_eq(otpca_store_commit(s), OTPCA_ERR_OK);
    }
    double t1 = now_s();

    struct walk w = {0, 0, 1};
    uint64_t since = 0, next = 0;
    size_t calls = 0;
    do {
        uint64_t before = w.n;
        cr_assert_eq(otpca_store_changes(s, since, 4096, walk_fn, &w, &next), OTPCA_ERR_OK);
        calls++;
        if (w.n == before)
            break;
        since = next;
    } while (calls < 1000);
    double t2 = now_s();
    cr_expect_eq(w.n, N);
    cr_expect(w.ordered);
    cr_expect_eq(next, N);
    cr_expect_eq(head_seq(s), N);
    uint64_t counts[7];
    cr_assert_eq(otpca_store_device_counts(s, counts), OTPCA_ERR_OK);
    cr_expect_eq(counts[0], N);
    cr_expect_eq(counts[OTPCA_STORE_APPROVED], N);
    double t3 = now_s();
    fprintf(stderr, "store bulk: %d devices added in %.2f s (%.0f/s); changes walk %.2f s in %zu calls; "
                    "counts %.3f s\n",
            N, t1 - t0, N / (t1 - t0), t2 - t1, calls, t3 - t2);
    otpca_store_destroy(&s);
}
