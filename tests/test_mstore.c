/*
 * Unit tests for the manager's store (manager/include/otpca/manager/mstore.h):
 * opening (file mode, schema version recorded, a newer schema and foreign
 * databases refused), deltas (upsert, delete, the sequence check, a bad
 * entry undoes its whole batch, manager-local fields never go back, unlocks,
 * stale entries), snapshots (atomic: an abort, a destroyed handle and a
 * killed process all leave the old trust list), seed boxes (real batches
 * sealed with otpca_seedbox_sender to a software key, opened again from
 * what the store kept), nonces, the journal (idempotent, conflicts, pending
 * and acknowledged), TOTP steps, lockout, the audit chain (hashes recomputed
 * here from the protocol encoder; a row changed behind the store's back is
 * found), meta, transactions, and two threads writing at once. Each test
 * works in a fresh temporary directory, removed afterwards (tmpstore.h).
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "otpca/common/err.h"
#include "otpca/manager/mstore.h"
#include "otpca/token/crl.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "otpca/proto/seedbox.h"

/* ------------------------------------------------------------- fixtures */

#define TMPSTORE_PREFIX "otpca-mstore"
#define TMPSTORE_FILE "manager.db"
#include "tmpstore.h"

TestSuite(mstore, .init = tmp_setup, .fini = tmp_teardown);

static otpca_mstore *open_mstore(void)
{
    otpca_mstore *s = NULL;
    otpca_err ret = otpca_mstore_open(g_path, &s);
    cr_assert_eq(ret, OTPCA_ERR_OK, "open %s: %s", g_path, otpca_errname(ret));
    cr_assert_not_null(s);
    return s;
}

/* A DeviceEntry; serial must outlive it (a literal or a static buffer). */
static otpca_device_entry entry(const char *serial, uint64_t seq, int state)
{
    otpca_device_entry e;
    memset(&e, 0, sizeof e);
    e.serial = (otpca_buf){(const uint8_t *)serial, strlen(serial)};
    e.seq = seq;
    e.state = (uint64_t)state;
    return e;
}

static void entry_local(otpca_device_entry *e, uint64_t last_step, uint64_t failures)
{
    e->last_step = last_step;
    e->failures = failures;
    e->present |= OTPCA_MSG_BIT(10) | OTPCA_MSG_BIT(11);
}

static otpca_sync_batch batch(int kind, uint64_t from, uint64_t to, const otpca_device_entry *e, size_t n)
{
    otpca_sync_batch b;
    memset(&b, 0, sizeof b);
    b.kind = (uint64_t)kind;
    b.from = from;
    b.to = to;
    b.entries.items = e;
    b.entries.count = n;
    return b;
}

static otpca_err delta(otpca_mstore *s, uint64_t from, uint64_t to, const otpca_device_entry *e, size_t n)
{
    otpca_sync_batch b = batch(OTPCA_SYNC_DELTA, from, to, e, n);
    return otpca_mstore_apply_delta(s, &b);
}

static otpca_mdevice get(otpca_mstore *s, const char *serial)
{
    otpca_mdevice d;
    otpca_err ret = otpca_mstore_device_get(s, serial, &d);
    cr_assert_eq(ret, OTPCA_ERR_OK, "get %s: %s", serial, otpca_errname(ret));
    return d;
}

static uint64_t sync_seq(otpca_mstore *s)
{
    uint64_t seq = 99999;
    cr_assert_eq(otpca_mstore_sync_seq(s, &seq), OTPCA_ERR_OK);
    return seq;
}

static void hash_of(const char *text, uint8_t h[32])
{
    otpca_sha256((const uint8_t *)text, strlen(text), h);
}

/* A LOCKED record for serial (what the manager journals when it locks). */
static void journal_lock(otpca_mstore *s, uint8_t id, const char *serial)
{
    otpca_mrecord r;
    memset(&r, 0, sizeof r);
    memset(r.id, id, sizeof r.id);
    r.kind = OTPCA_REC_LOCKED;
    snprintf(r.serial, sizeof r.serial, "%s", serial);
    r.time = 1700000000;
    cr_assert_eq(otpca_mstore_record_add(s, &r, NULL), OTPCA_ERR_OK);
}

/* ------------------------------------------------------------- opening */

Test(mstore, open_creates_0600_file_at_current_schema)
{
    otpca_mstore *s = open_mstore();
    struct stat sb;
    cr_assert_eq(stat(g_path, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0600, "mode %o", (unsigned)(sb.st_mode & 0777));
    cr_expect_eq(otpca_mstore_schema_version(s), 3);
    cr_expect_eq(sync_seq(s), 0);
    uint8_t v[4] = {1, 2, 3, 4};
    cr_assert_eq(otpca_mstore_meta_put(s, "lease", v, sizeof v), OTPCA_ERR_OK);
    otpca_mstore_destroy(&s);
    cr_expect_null(s);
    otpca_mstore_destroy(&s); /* NULL is accepted */

    /* The migration is recorded once, with the file's application id, in
     * WAL mode; reopening migrates nothing and keeps the data. */
    cr_expect_eq(raw_int("SELECT value FROM meta WHERE key = 'schema_version'"), 3);
    cr_expect_eq(raw_int("SELECT count(*) FROM meta WHERE key = 'schema_version'"), 1);
    cr_expect_eq(raw_int("PRAGMA application_id"), 0x6f74706d);
    /* version 3 dropped it: the statements that write devices do its work */
    cr_expect_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE name = 'crl_device_added'"), 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE name IN "
                         "('devices', 'staging', 'boxes', 'nonces', 'records', 'audit', 'meta')"),
                 7);
    s = open_mstore();
    cr_expect_eq(otpca_mstore_schema_version(s), 3);
    uint8_t buf[8];
    size_t len = 0;
    cr_assert_eq(otpca_mstore_meta_get(s, "lease", buf, sizeof buf, &len), OTPCA_ERR_OK);
    cr_expect_eq(len, 4);
    cr_expect_arr_eq(buf, v, 4);
    otpca_mstore_destroy(&s);
    cr_expect_eq(raw_int("SELECT count(*) FROM meta WHERE key = 'schema_version'"), 1);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open(g_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_expect_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(mstore, open_refuses_a_newer_schema)
{
    otpca_mstore *s = open_mstore();
    otpca_mstore_destroy(&s);
    raw_sql("UPDATE meta SET value = 4 WHERE key = 'schema_version'");
    cr_expect_eq(otpca_mstore_open(g_path, &s), OTPCA_ERR_UNSUPPORTED);
    cr_expect_null(s);
    raw_sql("UPDATE meta SET value = 3 WHERE key = 'schema_version'");
    s = open_mstore();
    otpca_mstore_destroy(&s);
}

Test(mstore, open_refuses_foreign_files)
{
    otpca_mstore *s = NULL;
    /* Another program's database, even one shaped like ours (the cloud's
     * store has a meta table with a schema_version too). */
    raw_sql("CREATE TABLE meta (key TEXT PRIMARY KEY, value); INSERT INTO meta VALUES ('schema_version', 1)");
    cr_expect_eq(otpca_mstore_open(g_path, &s), OTPCA_ERR_CONFIG);
    cr_expect_null(s);
    unlink(g_path);
    /* Not a database at all. */
    FILE *f = fopen(g_path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 64; i++)
        fputs("this is not an SQLite database, just text. ", f);
    fclose(f);
    cr_expect_eq(otpca_mstore_open(g_path, &s), OTPCA_ERR_CONFIG);
    cr_expect_null(s);
    /* A directory, and no path. */
    cr_expect_eq(otpca_mstore_open(g_dir, &s), OTPCA_ERR_CONFIG);
    cr_expect_eq(otpca_mstore_open("", &s), OTPCA_ERR_CONFIG);
}

/* --------------------------------------------------------------- deltas */

Test(mstore, delta_upserts_deletes_and_moves_sync_seq)
{
    otpca_mstore *s = open_mstore();
    otpca_p256_soft k;
    uint8_t kc[33], mac[6] = {2, 0, 0, 0, 0, 1}, h[32];
    cr_assert_eq(otpca_p256_soft_generate(&k), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_pub_compress(k.pub, kc), OTPCA_ERR_OK);
    hash_of("cert-b", h);

    otpca_device_entry e[3] = {entry("dev-a", 1, OTPCA_DEV_APPROVED), entry("dev-b", 2, OTPCA_DEV_ENROLLED),
                               entry("dev-c", 3, OTPCA_DEV_APPROVED)};
    e[0].mac = (otpca_buf){mac, sizeof mac};
    e[0].pubkey = (otpca_buf){kc, sizeof kc}; /* compressed: stored uncompressed */
    e[0].batch = (otpca_buf){(const uint8_t *)"batch-7", 7};
    e[1].pubkey = (otpca_buf){k.pub, sizeof k.pub};
    e[1].digits = 8;
    e[1].period = 60;
    e[1].algorithm = 2;
    e[1].present |= OTPCA_MSG_BIT(7) | OTPCA_MSG_BIT(8) | OTPCA_MSG_BIT(9);
    entry_local(&e[1], 55, 2);
    e[1].cert_hash = (otpca_buf){h, 32};
    cr_assert_eq(delta(s, 0, 3, e, 3), OTPCA_ERR_OK);
    cr_expect_eq(sync_seq(s), 3);

    otpca_mdevice d = get(s, "dev-a");
    cr_expect_str_eq(d.serial, "dev-a");
    cr_expect_eq(d.seq, 1);
    cr_expect_eq(d.state, OTPCA_DEV_APPROVED);
    cr_expect_eq(d.mac_len, 6);
    cr_expect_arr_eq(d.mac, mac, 6);
    cr_expect_eq(d.pubkey_len, 65);
    cr_expect_arr_eq(d.pubkey, k.pub, 65);
    cr_expect_str_eq(d.batch, "batch-7");
    cr_expect_eq(d.digits, 6); /* the protocol's defaults */
    cr_expect_eq(d.period, 30);
    cr_expect_eq(d.algorithm, 1);
    cr_expect_eq(d.seed_len, 0);
    cr_expect_eq(d.box, 0);
    cr_expect_eq(d.has_cert, 0);
    cr_expect_eq(d.enrolled_here, 0);
    d = get(s, "dev-b");
    cr_expect_eq(d.state, OTPCA_DEV_ENROLLED);
    cr_expect_arr_eq(d.pubkey, k.pub, 65);
    cr_expect_eq(d.mac_len, 0);
    cr_expect_str_eq(d.batch, "");
    cr_expect_eq(d.digits, 8);
    cr_expect_eq(d.period, 60);
    cr_expect_eq(d.algorithm, 2);
    cr_expect_eq(d.last_step, 55);
    cr_expect_eq(d.failures, 2);
    cr_expect_eq(d.has_cert, 1);
    cr_expect_arr_eq(d.cert_hash, h, 32);

    /* The next delta: dev-a revoked (its key stays, it has no seed), dev-c
     * deleted, dev-d new; an unknown serial deleted is no error. */
    otpca_device_entry f[4] = {entry("dev-a", 5, OTPCA_DEV_REVOKED), entry("dev-c", 4, OTPCA_DEV_DELETED),
                               entry("dev-d", 6, OTPCA_DEV_APPROVED), entry("dev-x", 6, OTPCA_DEV_DELETED)};
    f[0].pubkey = (otpca_buf){k.pub, 65};
    cr_assert_eq(delta(s, 3, 6, f, 4), OTPCA_ERR_OK);
    cr_expect_eq(sync_seq(s), 6);
    d = get(s, "dev-a");
    cr_expect_eq(d.state, OTPCA_DEV_REVOKED);
    cr_expect_eq(d.seq, 5);
    cr_expect_eq(d.mac_len, 0, "an entry carries the whole state");
    cr_expect_eq(otpca_mstore_device_get(s, "dev-c", &d), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_mstore_device_get(s, "dev-x", &d), OTPCA_ERR_NOT_FOUND);
    get(s, "dev-d");
    uint64_t counts[5];
    cr_assert_eq(otpca_mstore_device_count(s, counts), OTPCA_ERR_OK);
    cr_expect_eq(counts[0], 3);
    cr_expect_eq(counts[OTPCA_DEV_APPROVED], 1);
    cr_expect_eq(counts[OTPCA_DEV_ENROLLED], 1);
    cr_expect_eq(counts[OTPCA_DEV_REVOKED], 1);
    cr_expect_eq(counts[OTPCA_DEV_LOCKED], 0);

    /* An empty delta moves sync_seq on. */
    cr_assert_eq(delta(s, 6, 9, NULL, 0), OTPCA_ERR_OK);
    cr_expect_eq(sync_seq(s), 9);
    otpca_p256_soft_wipe(&k);
    otpca_mstore_destroy(&s);
}

Test(mstore, delta_refused_unless_it_follows_and_is_whole)
{
    otpca_mstore *s = open_mstore();
    otpca_device_entry e[1] = {entry("dev-a", 3, OTPCA_DEV_APPROVED)};
    cr_assert_eq(delta(s, 0, 3, e, 1), OTPCA_ERR_OK);

    /* from must be where the trust list is. */
    otpca_device_entry f[1] = {entry("dev-b", 8, OTPCA_DEV_APPROVED)};
    cr_expect_eq(delta(s, 2, 8, f, 1), OTPCA_ERR_STATE);
    cr_expect_eq(delta(s, 4, 8, f, 1), OTPCA_ERR_STATE);
    cr_expect_eq(delta(s, 0, 8, f, 1), OTPCA_ERR_STATE);
    otpca_mdevice d;
    cr_expect_eq(otpca_mstore_device_get(s, "dev-b", &d), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(sync_seq(s), 3);

    /* A bad entry after a good one undoes the whole batch. */
    otpca_device_entry g[3] = {entry("dev-b", 4, OTPCA_DEV_APPROVED), entry("dev-a", 5, OTPCA_DEV_REVOKED),
                               entry("bad serial", 6, OTPCA_DEV_APPROVED)};
    cr_expect_eq(delta(s, 3, 6, g, 3), OTPCA_ERR_INVALID_ARG);
    g[2] = entry("dev-c", 9, OTPCA_DEV_APPROVED); /* seq beyond `to` */
    cr_expect_eq(delta(s, 3, 6, g, 3), OTPCA_ERR_INVALID_ARG);
    g[2] = entry("dev-c", 3, OTPCA_DEV_APPROVED); /* seq not after `from` */
    cr_expect_eq(delta(s, 3, 6, g, 3), OTPCA_ERR_INVALID_ARG);
    g[2] = entry("dev-c", 6, 6); /* no such state */
    cr_expect_eq(delta(s, 3, 6, g, 3), OTPCA_ERR_INVALID_ARG);
    uint8_t bad_key[65];
    memset(bad_key, 0x11, sizeof bad_key);
    bad_key[0] = 0x04;
    g[2] = entry("dev-c", 6, OTPCA_DEV_APPROVED);
    g[2].pubkey = (otpca_buf){bad_key, 65};
    cr_expect_eq(delta(s, 3, 6, g, 3), OTPCA_ERR_BAD_KEY);
    uint8_t sealed[40] = {0};
    g[2] = entry("dev-c", 6, OTPCA_DEV_APPROVED);
    g[2].seed = (otpca_buf){sealed, sizeof sealed}; /* a seed, and the batch has no seedkey */
    cr_expect_eq(delta(s, 3, 6, g, 3), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_mstore_device_get(s, "dev-b", &d), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(get(s, "dev-a").state, OTPCA_DEV_APPROVED);
    cr_expect_eq(sync_seq(s), 3);

    /* Not a delta, or a range that goes back. */
    otpca_sync_batch b = batch(OTPCA_SYNC_SNAPSHOT, 3, 6, g, 2);
    cr_expect_eq(otpca_mstore_apply_delta(s, &b), OTPCA_ERR_INVALID_ARG);
    b = batch(OTPCA_SYNC_DELTA, 3, 2, NULL, 0);
    cr_expect_eq(otpca_mstore_apply_delta(s, &b), OTPCA_ERR_INVALID_ARG);

    /* The same inside the caller's transaction: the failed batch is undone,
     * the transaction goes on and commits what else it holds. */
    uint8_t nonce[16] = {7};
    cr_assert_eq(otpca_mstore_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_nonce_add(s, nonce, 100), OTPCA_ERR_OK);
    cr_expect_eq(delta(s, 3, 6, g, 3), OTPCA_ERR_INVALID_ARG);
    cr_assert_eq(delta(s, 3, 6, g, 2), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_commit(s), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_nonce_add(s, nonce, 100), OTPCA_ERR_EXISTS);
    cr_expect_eq(get(s, "dev-a").state, OTPCA_DEV_REVOKED);
    get(s, "dev-b");
    cr_expect_eq(otpca_mstore_device_get(s, "dev-c", &d), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(sync_seq(s), 6);
    otpca_mstore_destroy(&s);
}

Test(mstore, delta_never_moves_local_fields_back)
{
    otpca_mstore *s = open_mstore();
    otpca_device_entry e[1] = {entry("dev-a", 1, OTPCA_DEV_APPROVED)};
    entry_local(&e[0], 40, 0);
    cr_assert_eq(delta(s, 0, 1, e, 1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_device_accept(s, "dev-a", 100, NULL), OTPCA_ERR_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(otpca_mstore_device_fail(s, "dev-a", 10, NULL, NULL), OTPCA_ERR_OK);

    /* The cloud has not heard of step 100 nor of the failures yet. */
    otpca_device_entry f[1] = {entry("dev-a", 2, OTPCA_DEV_APPROVED)};
    entry_local(&f[0], 50, 1);
    cr_assert_eq(delta(s, 1, 2, f, 1), OTPCA_ERR_OK);
    otpca_mdevice d = get(s, "dev-a");
    cr_expect_eq(d.last_step, 100);
    cr_expect_eq(d.failures, 3);
    cr_expect_eq(d.seq, 2);
    /* So the step accepted before the sync is still spent. */
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-a", 100, NULL), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-a", 99, NULL), OTPCA_ERR_STATE);

    /* Newer values from the cloud (another manager) are taken. */
    otpca_device_entry g[1] = {entry("dev-a", 3, OTPCA_DEV_APPROVED)};
    entry_local(&g[0], 200, 7);
    cr_assert_eq(delta(s, 2, 3, g, 1), OTPCA_ERR_OK);
    d = get(s, "dev-a");
    cr_expect_eq(d.last_step, 200);
    cr_expect_eq(d.failures, 7);
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-a", 150, NULL), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-a", 201, NULL), OTPCA_ERR_OK);
    otpca_mstore_destroy(&s);
}

Test(mstore, delta_unlocks_only_a_lock_the_cloud_has)
{
    otpca_mstore *s = open_mstore();
    otpca_device_entry e[1] = {entry("dev-a", 1, OTPCA_DEV_APPROVED)};
    cr_assert_eq(delta(s, 0, 1, e, 1), OTPCA_ERR_OK);
    int locked = 0;
    uint32_t n = 0;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(otpca_mstore_device_fail(s, "dev-a", 3, &n, &locked), OTPCA_ERR_OK);
    cr_assert_eq(locked, 1);
    journal_lock(s, 0xa1, "dev-a");

    /* The cloud does not know of the lock yet: its approved state is not an
     * unlock, and its lower count does not win. */
    otpca_device_entry f[1] = {entry("dev-a", 2, OTPCA_DEV_APPROVED)};
    entry_local(&f[0], 0, 1);
    cr_assert_eq(delta(s, 1, 2, f, 1), OTPCA_ERR_OK);
    otpca_mdevice d = get(s, "dev-a");
    cr_expect_eq(d.state, OTPCA_DEV_LOCKED);
    cr_expect_eq(d.failures, 3);

    /* The record reaches the cloud, which locks the device, then an
     * operator unlocks it there (count back to 0). */
    uint8_t id[1][16];
    memset(id[0], 0xa1, 16);
    cr_assert_eq(otpca_mstore_records_acked(s, (const uint8_t(*)[16])id, 1), OTPCA_ERR_OK);
    otpca_device_entry g[1] = {entry("dev-a", 3, OTPCA_DEV_LOCKED)};
    entry_local(&g[0], 0, 3);
    cr_assert_eq(delta(s, 2, 3, g, 1), OTPCA_ERR_OK);
    cr_expect_eq(get(s, "dev-a").state, OTPCA_DEV_LOCKED);
    otpca_device_entry h[1] = {entry("dev-a", 4, OTPCA_DEV_APPROVED)};
    entry_local(&h[0], 0, 0);
    cr_assert_eq(delta(s, 3, 4, h, 1), OTPCA_ERR_OK);
    d = get(s, "dev-a");
    cr_expect_eq(d.state, OTPCA_DEV_APPROVED);
    cr_expect_eq(d.failures, 0);
    cr_assert_eq(otpca_mstore_device_fail(s, "dev-a", 3, &n, &locked), OTPCA_ERR_OK);
    cr_expect_eq(n, 1);
    cr_expect_eq(locked, 0);

    /* Revoked or locked by the cloud always wins. */
    otpca_device_entry r[1] = {entry("dev-a", 5, OTPCA_DEV_REVOKED)};
    cr_assert_eq(delta(s, 4, 5, r, 1), OTPCA_ERR_OK);
    cr_expect_eq(get(s, "dev-a").state, OTPCA_DEV_REVOKED);
    otpca_mstore_destroy(&s);
}

Test(mstore, delta_older_than_a_notice_changes_nothing)
{
    otpca_mstore *s = open_mstore();
    otpca_device_entry e[1] = {entry("dev-a", 1, OTPCA_DEV_APPROVED)};
    cr_assert_eq(delta(s, 0, 1, e, 1), OTPCA_ERR_OK);
    /* A Notice of revocation (change 10) arrives before the delta that
     * was computed at change 8. */
    cr_assert_eq(otpca_mstore_device_set_state(s, "dev-a", OTPCA_DEV_REVOKED, 10, 0, 0), OTPCA_ERR_OK);
    otpca_device_entry f[1] = {entry("dev-a", 8, OTPCA_DEV_APPROVED)};
    entry_local(&f[0], 30, 0);
    cr_assert_eq(delta(s, 1, 8, f, 1), OTPCA_ERR_OK);
    otpca_mdevice d = get(s, "dev-a");
    cr_expect_eq(d.state, OTPCA_DEV_REVOKED);
    cr_expect_eq(d.seq, 10);
    cr_expect_eq(d.last_step, 30, "the maxima still apply");
    /* The Notice again, or an older one: stale. */
    cr_expect_eq(otpca_mstore_device_set_state(s, "dev-a", OTPCA_DEV_APPROVED, 9, 0, 0), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_mstore_device_set_state(s, "dev-a", OTPCA_DEV_REVOKED, 10, 0, 0), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_device_set_state(s, "dev-x", OTPCA_DEV_REVOKED, 10, 0, 0), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_mstore_device_set_state(s, "dev-a", OTPCA_DEV_DELETED, 11, 0, 0), OTPCA_ERR_INVALID_ARG);
    /* The delta that carries the change itself, or a later one, applies. */
    otpca_device_entry g[1] = {entry("dev-a", 12, OTPCA_DEV_APPROVED)};
    cr_assert_eq(delta(s, 8, 12, g, 1), OTPCA_ERR_OK);
    cr_expect_eq(get(s, "dev-a").state, OTPCA_DEV_APPROVED);
    otpca_mstore_destroy(&s);
}

Test(mstore, enrolled_here_survives_a_sync_that_has_not_seen_it)
{
    otpca_mstore *s = open_mstore();
    uint8_t h1[32], h2[32];
    hash_of("cert issued here", h1);
    hash_of("cert issued by mgr-02", h2);
    otpca_device_entry e[1] = {entry("dev-a", 1, OTPCA_DEV_APPROVED)};
    entry_local(&e[0], 50, 0);
    cr_assert_eq(delta(s, 0, 1, e, 1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_device_accept(s, "dev-a", 60, h1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_device_enrolled(s, "dev-a", h1), OTPCA_ERR_OK);

    /* A change at the cloud (its MAC) from before the issuance. */
    uint8_t mac[6] = {2, 0, 0, 0, 0, 9};
    otpca_device_entry f[1] = {entry("dev-a", 2, OTPCA_DEV_APPROVED)};
    f[0].mac = (otpca_buf){mac, 6};
    entry_local(&f[0], 50, 0);
    cr_assert_eq(delta(s, 1, 2, f, 1), OTPCA_ERR_OK);
    otpca_mdevice d = get(s, "dev-a");
    cr_expect_eq(d.state, OTPCA_DEV_ENROLLED);
    cr_expect_eq(d.has_cert, 1);
    cr_expect_arr_eq(d.cert_hash, h1, 32);
    cr_expect_eq(d.enrolled_here, 1);
    cr_expect_eq(d.mac_len, 6);

    /* The cloud caught up. */
    otpca_device_entry g[1] = {entry("dev-a", 3, OTPCA_DEV_ENROLLED)};
    g[0].cert_hash = (otpca_buf){h1, 32};
    entry_local(&g[0], 60, 0);
    cr_assert_eq(delta(s, 2, 3, g, 1), OTPCA_ERR_OK);
    d = get(s, "dev-a");
    cr_expect_arr_eq(d.cert_hash, h1, 32);
    cr_expect_eq(d.enrolled_here, 1);

    /* Another manager issued a newer certificate. */
    otpca_device_entry k[1] = {entry("dev-a", 4, OTPCA_DEV_ENROLLED)};
    k[0].cert_hash = (otpca_buf){h2, 32};
    entry_local(&k[0], 70, 0);
    cr_assert_eq(delta(s, 3, 4, k, 1), OTPCA_ERR_OK);
    d = get(s, "dev-a");
    cr_expect_arr_eq(d.cert_hash, h2, 32);
    cr_expect_eq(d.enrolled_here, 0);
    cr_expect_eq(d.last_step, 70);

    /* device_enrolled only for an approved or enrolled device. */
    cr_assert_eq(otpca_mstore_device_set_state(s, "dev-a", OTPCA_DEV_REVOKED, 5, 0, 0), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_device_enrolled(s, "dev-a", h1), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_mstore_device_enrolled(s, "dev-x", h1), OTPCA_ERR_NOT_FOUND);
    otpca_mstore_destroy(&s);
}

/* ------------------------------------------------------------ snapshots */

static otpca_err snap_chunk(otpca_mstore *s, uint64_t to, const otpca_device_entry *e, size_t n)
{
    otpca_sync_batch b = batch(OTPCA_SYNC_SNAPSHOT, 0, to, e, n);
    return otpca_mstore_snapshot_chunk(s, &b);
}

/* The trust list of seq 5: dev-a and dev-b approved. */
static void old_list(otpca_mstore *s)
{
    otpca_device_entry e[2] = {entry("dev-a", 4, OTPCA_DEV_APPROVED), entry("dev-b", 5, OTPCA_DEV_APPROVED)};
    cr_assert_eq(delta(s, 0, 5, e, 2), OTPCA_ERR_OK);
}

static void expect_old_list(otpca_mstore *s)
{
    otpca_mdevice d;
    uint64_t counts[5];
    cr_expect_eq(sync_seq(s), 5);
    cr_assert_eq(otpca_mstore_device_count(s, counts), OTPCA_ERR_OK);
    cr_expect_eq(counts[0], 2);
    cr_expect_eq(get(s, "dev-a").state, OTPCA_DEV_APPROVED);
    cr_expect_eq(get(s, "dev-b").state, OTPCA_DEV_APPROVED);
    cr_expect_eq(otpca_mstore_device_get(s, "dev-c", &d), OTPCA_ERR_NOT_FOUND);
}

Test(mstore, snapshot_applies_whole_or_not_at_all)
{
    otpca_mstore *s = open_mstore();
    old_list(s);
    otpca_device_entry e[3] = {entry("dev-b", 18, OTPCA_DEV_REVOKED), entry("dev-c", 19, OTPCA_DEV_APPROVED),
                               entry("dev-z", 20, OTPCA_DEV_DELETED)};

    /* No chunk or commit without begin. */
    cr_expect_eq(snap_chunk(s, 20, e, 2), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_mstore_snapshot_commit(s, 20), OTPCA_ERR_STATE);

    /* Aborted. */
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 20, e, 2), OTPCA_ERR_OK);
    expect_old_list(s);
    cr_expect_eq(delta(s, 5, 6, NULL, 0), OTPCA_ERR_STATE, "no delta in the middle of a snapshot");
    otpca_mstore_snapshot_abort(s);
    expect_old_list(s);
    cr_expect_eq(otpca_mstore_snapshot_commit(s, 20), OTPCA_ERR_STATE);
    cr_expect_eq(raw_int("SELECT count(*) FROM staging"), 0);

    /* The handle goes away before commit. */
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 20, e, 2), OTPCA_ERR_OK);
    otpca_mstore_destroy(&s);
    s = open_mstore();
    expect_old_list(s);
    cr_expect_eq(otpca_mstore_snapshot_commit(s, 20), OTPCA_ERR_STATE, "a snapshot belongs to its handle");

    /* A bad chunk is refused and leaves the chunks before it. */
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 20, &e[0], 1), OTPCA_ERR_OK);
    otpca_device_entry bad[2] = {entry("dev-q", 7, OTPCA_DEV_APPROVED), entry("dev-r", 21, OTPCA_DEV_APPROVED)};
    cr_expect_eq(snap_chunk(s, 20, bad, 2), OTPCA_ERR_INVALID_ARG);
    /* Whole: in two chunks, then commit. */
    cr_assert_eq(snap_chunk(s, 20, &e[1], 2), OTPCA_ERR_OK);
    expect_old_list(s);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 20), OTPCA_ERR_OK);
    otpca_mdevice d;
    cr_expect_eq(sync_seq(s), 20);
    cr_expect_eq(otpca_mstore_device_get(s, "dev-a", &d), OTPCA_ERR_NOT_FOUND, "absent from the snapshot");
    cr_expect_eq(get(s, "dev-b").state, OTPCA_DEV_REVOKED);
    cr_expect_eq(get(s, "dev-c").state, OTPCA_DEV_APPROVED);
    cr_expect_eq(otpca_mstore_device_get(s, "dev-q", &d), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_mstore_device_get(s, "dev-z", &d), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(raw_int("SELECT count(*) FROM staging"), 0);
    cr_expect_eq(otpca_mstore_snapshot_commit(s, 20), OTPCA_ERR_STATE);
    /* Deltas continue from the snapshot's `to`. */
    cr_expect_eq(delta(s, 5, 21, NULL, 0), OTPCA_ERR_STATE);
    cr_expect_eq(delta(s, 20, 21, NULL, 0), OTPCA_ERR_OK);
    otpca_mstore_destroy(&s);
}

/* A first snapshot (empty trust list) is written straight into the trust
 * list in one transaction: nothing of it shows before its commit, nothing
 * stays after a handle lost mid-way, all of it after the commit. */
Test(mstore, a_first_snapshot_is_whole_or_nothing)
{
    otpca_mstore *s = open_mstore(), *r = open_mstore();
    otpca_device_entry e[3] = {entry("dev-a", 4, OTPCA_DEV_APPROVED), entry("dev-b", 5, OTPCA_DEV_APPROVED),
                               entry("dev-c", 6, OTPCA_DEV_REVOKED)};
    otpca_mdevice d;
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 6, e, 2), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_device_get(r, "dev-a", &d), OTPCA_ERR_NOT_FOUND, "not visible before the commit");
    otpca_mstore_destroy(&s); /* lost mid-way */
    s = open_mstore();
    cr_expect_eq(otpca_mstore_device_get(s, "dev-a", &d), OTPCA_ERR_NOT_FOUND, "nothing stays");
    cr_expect_eq(sync_seq(s), 0);
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 6, e, 2), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK); /* begun again: the first chunk goes */
    cr_assert_eq(snap_chunk(s, 6, e + 1, 2), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 6), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_device_get(r, "dev-a", &d), OTPCA_ERR_NOT_FOUND, "only the second attempt's");
    cr_expect_eq(get(r, "dev-b").state, OTPCA_DEV_APPROVED);
    cr_expect_eq(get(r, "dev-c").state, OTPCA_DEV_REVOKED);
    cr_expect_eq(sync_seq(r), 6);
    /* A delta follows on the same handle; an abort of a direct one rolls back. */
    otpca_device_entry f = entry("dev-d", 7, OTPCA_DEV_APPROVED);
    cr_expect_eq(delta(s, 6, 7, &f, 1), OTPCA_ERR_OK);
    otpca_mstore_destroy(&s);
    otpca_mstore_destroy(&r);
}


/* A first snapshot goes into devices several rows per statement: every
 * row keeps its own values, whichever statement carried it. */
Test(mstore, a_first_snapshot_of_many_devices_keeps_each_row)
{
    enum { N = 75 };
    otpca_mstore *s = open_mstore();
    otpca_device_entry e[N];
    char serials[N][16];
    uint8_t macs[N][6], h[32];
    otpca_p256_soft k[3];
    hash_of("cert", h);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(otpca_p256_soft_generate(&k[i]), OTPCA_ERR_OK);
    for (size_t i = 0; i < N; i++) {
        snprintf(serials[i], sizeof serials[i], "dev-%03zu", i);
        e[i] = entry(serials[i], 10 + i, i % 7 == 3 ? OTPCA_DEV_REVOKED : OTPCA_DEV_APPROVED);
        memset(macs[i], (int)i, 6);
        e[i].mac = (otpca_buf){macs[i], 6};
        e[i].pubkey = (otpca_buf){k[i % 3].pub, 65};
        entry_local(&e[i], 100 + i, i % 4);
        if (i % 5 == 0)
            e[i].cert_hash = (otpca_buf){h, 32};
    }
    e[40].state = OTPCA_DEV_DELETED; /* skipped */
    e[74] = e[2]; /* dev-002 again, later: the last one holds */
    e[74].seq = 90;
    e[74].state = OTPCA_DEV_ENROLLED;
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 90, e, 70), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 90, e + 70, N - 70), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 90), OTPCA_ERR_OK);
    uint64_t counts[5];
    cr_assert_eq(otpca_mstore_device_count(s, counts), OTPCA_ERR_OK);
    cr_expect_eq(counts[0], N - 2, "all but the deleted one and the repeat: %llu", (unsigned long long)counts[0]);
    otpca_mdevice d;
    cr_expect_eq(otpca_mstore_device_get(s, "dev-040", &d), OTPCA_ERR_NOT_FOUND);
    for (size_t i = 0; i < N - 1; i++) {
        if (i == 40)
            continue;
        d = get(s, serials[i]);
        const otpca_device_entry *x = i == 2 ? &e[74] : &e[i];
        cr_expect_eq(d.seq, x->seq, "%s", serials[i]);
        cr_expect_eq(d.state, (int)x->state, "%s", serials[i]);
        cr_expect_arr_eq(d.mac, macs[i], 6, "%s", serials[i]);
        cr_expect_arr_eq(d.pubkey, k[i % 3].pub, 65, "%s", serials[i]);
        cr_expect_eq(d.last_step, 100 + i, "%s", serials[i]);
        cr_expect_eq(d.failures, i % 4, "%s", serials[i]);
        cr_expect_eq(d.has_cert, i % 5 == 0, "%s", serials[i]);
    }
    cr_expect_eq(sync_seq(s), 90);
    otpca_mstore_destroy(&s);
}

Test(mstore, a_failed_chunk_ends_a_first_snapshot)
{
    otpca_mstore *s = open_mstore(), *r = open_mstore();
    otpca_device_entry e[3] = {entry("dev-a", 4, OTPCA_DEV_APPROVED), entry("dev-b", 5, OTPCA_DEV_APPROVED),
                               entry("dev-c", 6, OTPCA_DEV_APPROVED)};
    otpca_p256_soft k;
    uint8_t bad[65];
    cr_assert_eq(otpca_p256_soft_generate(&k), OTPCA_ERR_OK);
    e[1].pubkey = (otpca_buf){k.pub, 65};
    memcpy(bad, k.pub, 65);
    bad[64] ^= 1; /* off the curve */
    e[2].pubkey = (otpca_buf){bad, 65};
    otpca_mdevice d;
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 6, e, 1), OTPCA_ERR_OK);
    cr_expect_eq(snap_chunk(s, 6, e + 1, 2), OTPCA_ERR_BAD_KEY, "dev-b is written before dev-c fails");
    /* The snapshot is over: dev-a and dev-b are rolled back with it. */
    cr_expect_eq(snap_chunk(s, 6, e, 1), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_mstore_snapshot_commit(s, 6), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_mstore_device_get(s, "dev-a", &d), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_mstore_device_get(r, "dev-b", &d), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(sync_seq(r), 0);
    /* The handle is usable: the next attempt applies. */
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 6, e, 2), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 6), OTPCA_ERR_OK);
    cr_expect_eq(get(r, "dev-b").state, OTPCA_DEV_APPROVED);
    cr_expect_eq(sync_seq(r), 6);
    otpca_mstore_destroy(&s);
    otpca_mstore_destroy(&r);
}
Test(mstore, snapshot_survives_a_killed_process)
{
    otpca_mstore *s = open_mstore();
    old_list(s);
    otpca_mstore_destroy(&s);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        otpca_mstore *c = NULL;
        otpca_device_entry e[1] = {entry("dev-c", 19, OTPCA_DEV_APPROVED)};
        otpca_sync_batch b = batch(OTPCA_SYNC_SNAPSHOT, 0, 20, e, 1);
        if (otpca_mstore_open(g_path, &c) || otpca_mstore_snapshot_begin(c) || otpca_mstore_snapshot_chunk(c, &b))
            _exit(1);
        /* Killed with the new trust list merged in a transaction that never
         * committed. */
        if (otpca_mstore_begin(c) || otpca_mstore_snapshot_commit(c, 20))
            _exit(1);
        kill(getpid(), SIGKILL);
        _exit(1);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    s = open_mstore();
    expect_old_list(s);
    otpca_mstore_destroy(&s);
}

Test(mstore, snapshot_keeps_local_fields_and_newer_notices)
{
    otpca_mstore *s = open_mstore();
    old_list(s);
    cr_assert_eq(otpca_mstore_device_accept(s, "dev-a", 100, NULL), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_device_set_state(s, "dev-b", OTPCA_DEV_REVOKED, 30, 0, 0), OTPCA_ERR_OK);
    otpca_device_entry e[2] = {entry("dev-a", 10, OTPCA_DEV_APPROVED), entry("dev-b", 12, OTPCA_DEV_APPROVED)};
    entry_local(&e[0], 10, 0);
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 25, e, 2), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 25), OTPCA_ERR_OK);
    cr_expect_eq(get(s, "dev-a").last_step, 100);
    cr_expect_eq(get(s, "dev-b").state, OTPCA_DEV_REVOKED, "the Notice (30) is newer than the snapshot (25)");

    /* A snapshot that goes back (another registry) replaces the cloud's
     * fields whatever their seq; the local maxima stay. */
    otpca_device_entry f[2] = {entry("dev-a", 2, OTPCA_DEV_APPROVED), entry("dev-b", 3, OTPCA_DEV_APPROVED)};
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 4, f, 2), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 4), OTPCA_ERR_OK);
    cr_expect_eq(sync_seq(s), 4);
    otpca_mdevice d = get(s, "dev-b");
    cr_expect_eq(d.state, OTPCA_DEV_APPROVED);
    cr_expect_eq(d.seq, 3);
    cr_expect_eq(get(s, "dev-a").last_step, 100);
    otpca_mstore_destroy(&s);
}

/* ------------------------------------------------------------ seed boxes */

struct box_walk {
    uint64_t ids[8];
    uint8_t eph[8][65];
    size_t n;
};

static int on_box(uint64_t id, const uint8_t eph[65], void *arg)
{
    struct box_walk *w = arg;
    if (w->n < 8) {
        w->ids[w->n] = id;
        memcpy(w->eph[w->n], eph, 65);
    }
    w->n++;
    return 0;
}

/* A batch's entries with seeds sealed in box b (seeds: 20 bytes each). */
static void seal(const otpca_seedbox *b, otpca_device_entry *e, uint8_t sealed[][80], const uint8_t seeds[][20],
                 size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        cr_assert_eq(otpca_seedbox_seal(b, e[i].serial.p, e[i].serial.len, seeds[i], 20, sealed[i], 80, &len),
                     OTPCA_ERR_OK);
        e[i].seed = (otpca_buf){sealed[i], len};
    }
}

/* Opens the stored seed of serial as the manager does: box from the stored
 * E and the recipient's ECDH, then the entry's serial. */
static void expect_seed(otpca_mstore *s, otpca_p256_soft *k, const char *serial, const uint8_t want[20])
{
    otpca_mdevice d = get(s, serial);
    otpca_seedbox box;
    uint8_t seed[64];
    size_t len = 0;
    cr_assert_eq(d.seed_len, OTPCA_SEEDBOX_SEALED_LEN(20), "%s", serial);
    cr_assert_neq(d.box, 0);
    cr_assert_eq(otpca_seedbox_receiver(&box, d.eph, k->pub, otpca_p256_soft_ecdh, k), OTPCA_ERR_OK);
    cr_assert_eq(otpca_seedbox_open(&box, (const uint8_t *)d.serial, strlen(d.serial), d.seed, d.seed_len, seed,
                                    sizeof seed, &len),
                 OTPCA_ERR_OK, "%s", serial);
    cr_expect_eq(len, 20);
    cr_expect_arr_eq(seed, want, 20, "%s", serial);
    otpca_seedbox_wipe(&box);
}

Test(mstore, boxes_keep_sealed_seeds_openable)
{
    otpca_mstore *s = open_mstore();
    otpca_p256_soft k;
    otpca_seedbox b1, b2, b3;
    uint8_t seeds[4][20], sealed[4][80];
    cr_assert_eq(otpca_p256_soft_generate(&k), OTPCA_ERR_OK);
    for (int i = 0; i < 4; i++)
        memset(seeds[i], 0x30 + i, 20);

    /* Batch 1: dev-a and dev-b in box 1. */
    cr_assert_eq(otpca_seedbox_sender(&b1, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    otpca_device_entry e[2] = {entry("dev-a", 1, OTPCA_DEV_APPROVED), entry("dev-b", 2, OTPCA_DEV_APPROVED)};
    seal(&b1, e, sealed, (const uint8_t(*)[20])seeds, 2);
    otpca_sync_batch b = batch(OTPCA_SYNC_DELTA, 0, 2, e, 2);
    b.seedkey = (otpca_buf){b1.eph, 65};
    cr_assert_eq(otpca_mstore_apply_delta(s, &b), OTPCA_ERR_OK);
    expect_seed(s, &k, "dev-a", seeds[0]);
    expect_seed(s, &k, "dev-b", seeds[1]);
    cr_expect_arr_eq(get(s, "dev-a").eph, b1.eph, 65);

    /* Batch 2: dev-b again (new seed) and dev-c, in box 2; dev-a stays in
     * box 1. */
    uint8_t seeds2[2][20], sealed2[2][80];
    memset(seeds2[0], 0x41, 20);
    memset(seeds2[1], 0x42, 20);
    cr_assert_eq(otpca_seedbox_sender(&b2, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    otpca_device_entry f[2] = {entry("dev-b", 3, OTPCA_DEV_APPROVED), entry("dev-c", 4, OTPCA_DEV_APPROVED)};
    seal(&b2, f, sealed2, (const uint8_t(*)[20])seeds2, 2);
    b = batch(OTPCA_SYNC_DELTA, 2, 4, f, 2);
    b.seedkey = (otpca_buf){b2.eph, 65};
    cr_assert_eq(otpca_mstore_apply_delta(s, &b), OTPCA_ERR_OK);
    expect_seed(s, &k, "dev-a", seeds[0]);
    expect_seed(s, &k, "dev-b", seeds2[0]);
    expect_seed(s, &k, "dev-c", seeds2[1]);
    struct box_walk w = {0};
    cr_assert_eq(otpca_mstore_boxes(s, on_box, &w), OTPCA_ERR_OK);
    cr_assert_eq(w.n, 2);
    cr_expect_arr_eq(w.eph[0], b1.eph, 65);
    cr_expect_arr_eq(w.eph[1], b2.eph, 65);
    cr_expect_eq(get(s, "dev-a").box, w.ids[0]);
    cr_expect_eq(get(s, "dev-c").box, w.ids[1]);
    uint64_t first = w.ids[0], second = w.ids[1];

    /* Batch 3: dev-a moves to box 3 and dev-c is revoked (its seed goes):
     * box 1 is referenced by no one and is gone; ids are not reused. */
    cr_assert_eq(otpca_seedbox_sender(&b3, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    otpca_device_entry g[2] = {entry("dev-a", 5, OTPCA_DEV_APPROVED), entry("dev-c", 6, OTPCA_DEV_REVOKED)};
    seal(&b3, g, &sealed[2], (const uint8_t(*)[20])&seeds[2], 1);
    b = batch(OTPCA_SYNC_DELTA, 4, 6, g, 2);
    b.seedkey = (otpca_buf){b3.eph, 65};
    cr_assert_eq(otpca_mstore_apply_delta(s, &b), OTPCA_ERR_OK);
    expect_seed(s, &k, "dev-a", seeds[2]);
    otpca_mdevice d = get(s, "dev-c");
    cr_expect_eq(d.seed_len, 0);
    cr_expect_eq(d.box, 0);
    memset(&w, 0, sizeof w);
    cr_assert_eq(otpca_mstore_boxes(s, on_box, &w), OTPCA_ERR_OK);
    cr_assert_eq(w.n, 2);
    cr_expect_eq(w.ids[0], second);
    cr_expect_gt(w.ids[1], second);
    cr_expect_neq(w.ids[1], first);
    cr_expect_arr_eq(w.eph[1], b3.eph, 65);
    cr_expect_eq(raw_int("SELECT count(*) FROM boxes"), 2);

    /* A sealed seed moved to another serial does not open (the serial is
     * bound in), and a seedkey off the curve is refused. */
    otpca_device_entry x[1] = {entry("dev-d", 7, OTPCA_DEV_APPROVED)};
    x[0].seed = (otpca_buf){sealed[2], OTPCA_SEEDBOX_SEALED_LEN(20)};
    b = batch(OTPCA_SYNC_DELTA, 6, 7, x, 1);
    b.seedkey = (otpca_buf){b3.eph, 65};
    cr_assert_eq(otpca_mstore_apply_delta(s, &b), OTPCA_ERR_OK);
    d = get(s, "dev-d");
    otpca_seedbox rb;
    uint8_t seed[64];
    size_t len = 0;
    cr_assert_eq(otpca_seedbox_receiver(&rb, d.eph, k.pub, otpca_p256_soft_ecdh, &k), OTPCA_ERR_OK);
    cr_expect_eq(otpca_seedbox_open(&rb, (const uint8_t *)"dev-d", 5, d.seed, d.seed_len, seed, sizeof seed, &len),
                 OTPCA_ERR_DECRYPT);
    otpca_seedbox_wipe(&rb);
    uint8_t off[65];
    memcpy(off, b3.eph, 65);
    off[64] ^= 1;
    b = batch(OTPCA_SYNC_DELTA, 7, 8, NULL, 0);
    b.seedkey = (otpca_buf){off, 65};
    cr_expect_eq(otpca_mstore_apply_delta(s, &b), OTPCA_ERR_BAD_KEY);
    cr_expect_eq(sync_seq(s), 7);

    /* A snapshot's boxes: referenced once it commits. */
    otpca_seedbox b4;
    cr_assert_eq(otpca_seedbox_sender(&b4, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    otpca_device_entry y[1] = {entry("dev-e", 9, OTPCA_DEV_APPROVED)};
    seal(&b4, y, &sealed[3], (const uint8_t(*)[20])&seeds[3], 1);
    b = batch(OTPCA_SYNC_SNAPSHOT, 0, 9, y, 1);
    b.seedkey = (otpca_buf){b4.eph, 65};
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_chunk(s, &b), OTPCA_ERR_OK);
    memset(&w, 0, sizeof w);
    cr_assert_eq(otpca_mstore_boxes(s, on_box, &w), OTPCA_ERR_OK);
    cr_expect_eq(w.n, 2, "a staged box is not walked");
    /* Another handle's delta meanwhile keeps the staged box. */
    otpca_mstore *s2 = open_mstore();
    cr_assert_eq(delta(s2, 7, 8, NULL, 0), OTPCA_ERR_OK);
    otpca_mstore_destroy(&s2);
    cr_expect_eq(raw_int("SELECT count(*) FROM boxes"), 3);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 9), OTPCA_ERR_OK);
    expect_seed(s, &k, "dev-e", seeds[3]);
    memset(&w, 0, sizeof w);
    cr_assert_eq(otpca_mstore_boxes(s, on_box, &w), OTPCA_ERR_OK);
    cr_expect_eq(w.n, 1);
    cr_expect_arr_eq(w.eph[0], b4.eph, 65);
    cr_expect_eq(raw_int("SELECT count(*) FROM boxes"), 1);

    otpca_seedbox_wipe(&b1);
    otpca_seedbox_wipe(&b2);
    otpca_seedbox_wipe(&b3);
    otpca_seedbox_wipe(&b4);
    otpca_p256_soft_wipe(&k);
    otpca_mstore_destroy(&s);
}

Test(mstore, decoded_batch_applies_like_a_built_one)
{
    otpca_mstore *s = open_mstore();
    otpca_p256_soft k;
    otpca_seedbox box;
    uint8_t seeds[2][20], sealed[2][80], window[16] = {9}, buf[4096];
    size_t len = 0;
    cr_assert_eq(otpca_p256_soft_generate(&k), OTPCA_ERR_OK);
    cr_assert_eq(otpca_seedbox_sender(&box, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    memset(seeds[0], 0x51, 20);
    memset(seeds[1], 0x52, 20);
    otpca_device_entry e[2] = {entry("dev-a", 1, OTPCA_DEV_APPROVED), entry("dev-b", 2, OTPCA_DEV_APPROVED)};
    seal(&box, e, sealed, (const uint8_t(*)[20])seeds, 2);
    otpca_sync_batch b = batch(OTPCA_SYNC_DELTA, 0, 2, e, 2);
    b.window = (otpca_buf){window, 16};
    b.seedkey = (otpca_buf){box.eph, 65};
    cr_assert_eq(otpca_msg_encode(&otpca_desc_sync_batch, &b, buf, sizeof buf, &len), OTPCA_ERR_OK);
    otpca_sync_batch dec;
    cr_assert_eq(otpca_msg_decode(&otpca_desc_sync_batch, buf, len, &dec), OTPCA_ERR_OK);
    cr_assert_null(dec.entries.items);
    cr_assert_eq(otpca_mstore_apply_delta(s, &dec), OTPCA_ERR_OK);
    expect_seed(s, &k, "dev-a", seeds[0]);
    expect_seed(s, &k, "dev-b", seeds[1]);
    cr_expect_eq(sync_seq(s), 2);
    otpca_seedbox_wipe(&box);
    otpca_p256_soft_wipe(&k);
    otpca_mstore_destroy(&s);
}

/* ---------------------------------------------------------------- nonces */

Test(mstore, nonces_refuse_replay_and_survive_a_restart)
{
    otpca_mstore *s = open_mstore();
    uint8_t n1[16], n2[16];
    memset(n1, 1, 16);
    memset(n2, 2, 16);
    cr_expect_eq(otpca_mstore_nonce_add(s, n1, 1000), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_nonce_add(s, n1, 1000), OTPCA_ERR_EXISTS);
    cr_expect_eq(otpca_mstore_nonce_add(s, n1, 2000), OTPCA_ERR_EXISTS);
    cr_expect_eq(otpca_mstore_nonce_add(s, n2, 2000), OTPCA_ERR_OK);
    otpca_mstore_destroy(&s);
    s = open_mstore();
    cr_expect_eq(otpca_mstore_nonce_add(s, n1, 3000), OTPCA_ERR_EXISTS, "kept across a restart");
    cr_expect_eq(otpca_mstore_nonce_prune(s, 1500), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_nonce_add(s, n2, 3000), OTPCA_ERR_EXISTS);
    cr_expect_eq(otpca_mstore_nonce_add(s, n1, 3000), OTPCA_ERR_OK, "pruned");
    cr_expect_eq(otpca_mstore_nonce_prune(s, UINT64_MAX), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_nonce_add(s, n2, 3000), OTPCA_ERR_OK);
    otpca_mstore_destroy(&s);
}

struct seen {
    uint8_t nonce[4][16];
    uint64_t time[4];
    int n;
};

static int collect_nonce(const uint8_t nonce[16], uint64_t t, void *arg)
{
    struct seen *v = arg;
    if (v->n == 4)
        return 1;
    memcpy(v->nonce[v->n], nonce, 16);
    v->time[v->n++] = t;
    return 0;
}

/* A window starting again reads back the nonces still worth refusing. */
Test(mstore, nonces_are_read_back_from_a_time_on)
{
    otpca_mstore *s = open_mstore();
    uint8_t n[3][16];
    for (int i = 0; i < 3; i++) {
        memset(n[i], 0x30 + i, 16);
        cr_assert_eq(otpca_mstore_nonce_add(s, n[i], 1000 + 1000 * (uint64_t)i), OTPCA_ERR_OK);
    }
    struct seen v = {0};
    cr_assert_eq(otpca_mstore_nonces(s, 2000, collect_nonce, &v), OTPCA_ERR_OK);
    cr_assert_eq(v.n, 2, "the nonces from time 2000 on");
    for (int i = 0; i < v.n; i++) {
        cr_expect_geq(v.time[i], 2000);
        cr_expect(!memcmp(v.nonce[i], n[v.time[i] / 1000 - 1], 16), "each with its own time");
    }
    memset(&v, 0, sizeof v);
    cr_assert_eq(otpca_mstore_nonces(s, 0, collect_nonce, &v), OTPCA_ERR_OK);
    cr_expect_eq(v.n, 3);
    cr_expect_eq(otpca_mstore_nonces(s, 0, NULL, NULL), OTPCA_ERR_INVALID_ARG);
    otpca_mstore_destroy(&s);
}

/* --------------------------------------------------------------- records */

static void issued(otpca_mrecord *r, uint8_t id, const char *serial)
{
    memset(r, 0, sizeof *r);
    memset(r->id, id, sizeof r->id);
    memset(r->window, 0xee, sizeof r->window);
    r->kind = OTPCA_REC_ISSUED;
    snprintf(r->serial, sizeof r->serial, "%s", serial);
    r->time = 1700000000u + id;
    r->cert_len = 300 + id;
    for (size_t i = 0; i < r->cert_len; i++)
        r->cert[i] = (uint8_t)(i * 7 + id);
    r->has_step = 1;
    r->step = 56666666u + id;
    r->has_audit = 1;
    memset(r->audit, 0xab, sizeof r->audit);
}

struct crl_seen {
    size_t n;
    char serial[8][65];
    size_t cert_len[8];
    uint64_t at[8];
    unsigned reason[8];
};

static int on_crl(const otpca_mcrl_entry *e, void *arg)
{
    struct crl_seen *c = arg;
    if (c->n < 8) {
        snprintf(c->serial[c->n], sizeof c->serial[0], "%s", e->serial);
        c->cert_len[c->n] = e->cert_len;
        c->at[c->n] = e->revoked_at;
        c->reason[c->n] = e->reason;
    }
    c->n++;
    return 0;
}

static struct crl_seen crl_of(otpca_mstore *s)
{
    struct crl_seen c;
    memset(&c, 0, sizeof c);
    cr_assert_eq(otpca_mstore_crl_scan(s, on_crl, &c), OTPCA_ERR_OK);
    uint64_t n = 0;
    cr_assert_eq(otpca_mstore_crl_count(s, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, c.n);
    return c;
}

/* The CRL's entries: every issuance of a revoked device, whichever came
 * first (revocation by delta or Notice, or the record), with the cloud's
 * time and reason; they stay when a snapshot drops the device; a
 * rejection or a device that was never revoked adds none. */
Test(mstore, crl_entries_follow_revocations_and_stay)
{
    otpca_mstore *s = open_mstore();
    otpca_device_entry e[3] = {entry("dev-a", 1, OTPCA_DEV_APPROVED), entry("dev-b", 2, OTPCA_DEV_APPROVED),
                               entry("dev-c", 3, OTPCA_DEV_APPROVED)};
    cr_assert_eq(delta(s, 0, 3, e, 3), OTPCA_ERR_OK);
    otpca_mrecord r;
    issued(&r, 1, "dev-a");
    cr_assert_eq(otpca_mstore_record_add(s, &r, NULL), OTPCA_ERR_OK);
    issued(&r, 2, "dev-b");
    cr_assert_eq(otpca_mstore_record_add(s, &r, NULL), OTPCA_ERR_OK);
    issued(&r, 3, "dev-c");
    cr_assert_eq(otpca_mstore_record_add(s, &r, NULL), OTPCA_ERR_OK);
    journal_lock(s, 4, "dev-a"); /* no certificate: never listed */
    cr_expect_eq(crl_of(s).n, 0);

    /* dev-a by a delta with keys 13 and 14. */
    otpca_device_entry ra = entry("dev-a", 4, OTPCA_DEV_REVOKED);
    ra.revoked_at = 1790000001;
    ra.revoke_reason = OTPCA_CRL_KEY_COMPROMISE;
    ra.present |= OTPCA_MSG_BIT(13) | OTPCA_MSG_BIT(14);
    cr_assert_eq(delta(s, 3, 4, &ra, 1), OTPCA_ERR_OK);
    /* dev-b by a Notice. */
    cr_assert_eq(otpca_mstore_device_set_state(s, "dev-b", OTPCA_DEV_REVOKED, 5, 1790000002, OTPCA_CRL_SUPERSEDED),
                 OTPCA_ERR_OK);
    otpca_mdevice d = get(s, "dev-b");
    cr_expect(d.state == OTPCA_DEV_REVOKED && d.revoked_at == 1790000002 && d.revoke_reason == OTPCA_CRL_SUPERSEDED);
    /* An issuance of dev-b journaled after its revocation (in flight). */
    issued(&r, 5, "dev-b");
    cr_assert_eq(otpca_mstore_record_add(s, &r, NULL), OTPCA_ERR_OK);
    struct crl_seen c = crl_of(s);
    cr_assert_eq(c.n, 3);
    cr_expect(!strcmp(c.serial[0], "dev-a") && c.at[0] == 1790000001 && c.reason[0] == 1 && c.cert_len[0] == 301);
    cr_expect(!strcmp(c.serial[1], "dev-b") && c.at[1] == 1790000002 && c.reason[1] == 4 && c.cert_len[1] == 302);
    cr_expect(!strcmp(c.serial[2], "dev-b") && c.at[2] == 1790000002 && c.cert_len[2] == 305);
    /* Revoked again (a repeated Notice): listed once. */
    cr_assert_eq(otpca_mstore_device_set_state(s, "dev-b", OTPCA_DEV_REVOKED, 6, 1790000009, 0), OTPCA_ERR_OK);
    cr_expect_eq(crl_of(s).n, 3);

    /* A snapshot without dev-a and dev-b (another scope): they stay listed. */
    otpca_device_entry only_c = entry("dev-c", 3, OTPCA_DEV_APPROVED);
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 9, &only_c, 1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 9), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_device_get(s, "dev-a", &d), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(crl_of(s).n, 3);

    /* Bad reasons are refused, in a Notice and in an entry. */
    cr_expect_eq(otpca_mstore_device_set_state(s, "dev-c", OTPCA_DEV_REVOKED, 10, 1, 7), OTPCA_ERR_INVALID_ARG);
    otpca_device_entry rc = entry("dev-c", 10, OTPCA_DEV_REVOKED);
    rc.revoke_reason = 8;
    rc.present |= OTPCA_MSG_BIT(14);
    cr_expect_eq(delta(s, 9, 10, &rc, 1), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(get(s, "dev-c").state, OTPCA_DEV_APPROVED);
    /* dev-c revoked by a snapshot, with no time: the time it was learnt. */
    rc.present = 0;
    rc.revoke_reason = 0;
    uint64_t before = (uint64_t)time(NULL);
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 11, &rc, 1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 11), OTPCA_ERR_OK);
    c = crl_of(s);
    cr_assert_eq(c.n, 4);
    /* in journal order: dev-c's issuance (record 3) before dev-b's second (record 5) */
    cr_expect(!strcmp(c.serial[2], "dev-c") && c.at[2] >= before && c.at[2] <= (uint64_t)time(NULL) + 1 &&
                  c.reason[2] == 0,
              "%s %llu %llu", c.serial[2], (unsigned long long)c.at[2], (unsigned long long)before);
    cr_expect(!strcmp(c.serial[3], "dev-b") && c.cert_len[3] == 305);
    otpca_mstore_destroy(&s);

    /* And after a reopen. */
    s = open_mstore();
    cr_expect_eq(crl_of(s).n, 4);
    otpca_mstore_destroy(&s);
}

/* A device that arrives revoked, not one that becomes revoked: its
 * journaled certificates are listed too, whichever way it is written. */
Test(mstore, crl_entries_of_devices_written_revoked)
{
    otpca_mstore *s = open_mstore();
    otpca_mrecord r;
    otpca_device_entry e[40];
    char serials[40][16];
    /* Journaled before the trust list had them (another scope, say). */
    const char *had[] = {"dev-05", "dev-33", "dev-34", "dev-x", "dev-y"};
    for (uint8_t i = 0; i < 5; i++) {
        issued(&r, (uint8_t)(i + 1), had[i]);
        cr_assert_eq(otpca_mstore_record_add(s, &r, NULL), OTPCA_ERR_OK);
    }
    /* A first snapshot (direct) of 40, a full statement and 8 rows on
     * their own: dev-05 and dev-34 revoked, dev-33 not. */
    for (size_t i = 0; i < 40; i++) {
        snprintf(serials[i], sizeof serials[i], "dev-%02zu", i);
        e[i] = entry(serials[i], 1 + i, i == 5 || i == 34 ? OTPCA_DEV_REVOKED : OTPCA_DEV_APPROVED);
    }
    e[34].revoked_at = 1790000034;
    e[34].present |= OTPCA_MSG_BIT(13);
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 40, e, 40), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 40), OTPCA_ERR_OK);
    struct crl_seen c = crl_of(s);
    cr_assert_eq(c.n, 2);
    cr_expect_str_eq(c.serial[0], "dev-05");
    cr_expect_str_eq(c.serial[1], "dev-34");
    cr_expect_eq(c.at[1], 1790000034);
    /* A delta that adds dev-x revoked. */
    otpca_device_entry x = entry("dev-x", 41, OTPCA_DEV_REVOKED);
    cr_assert_eq(delta(s, 40, 41, &x, 1), OTPCA_ERR_OK);
    cr_expect_eq(crl_of(s).n, 3);
    /* A staged snapshot that adds dev-y revoked (and keeps dev-x). */
    otpca_device_entry y[2] = {entry("dev-x", 41, OTPCA_DEV_REVOKED), entry("dev-y", 42, OTPCA_DEV_REVOKED)};
    cr_assert_eq(otpca_mstore_snapshot_begin(s), OTPCA_ERR_OK);
    cr_assert_eq(snap_chunk(s, 42, y, 2), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_snapshot_commit(s, 42), OTPCA_ERR_OK);
    c = crl_of(s);
    cr_assert_eq(c.n, 4, "%zu entries", c.n);
    cr_expect_str_eq(c.serial[2], "dev-x");
    cr_expect_str_eq(c.serial[3], "dev-y");
    otpca_mstore_destroy(&s);
}

Test(mstore, records_are_idempotent_by_id)
{
    otpca_mstore *s = open_mstore();
    otpca_mrecord r, g;
    otpca_p256_soft k;
    int dup = 7;
    cr_assert_eq(otpca_p256_soft_generate(&k), OTPCA_ERR_OK);
    issued(&r, 1, "dev-a");
    r.kind = OTPCA_REC_KEY_UPDATED;
    cr_assert_eq(otpca_p256_pub_compress(k.pub, r.pubkey), OTPCA_ERR_OK);
    r.pubkey_len = 33;
    cr_assert_eq(otpca_mstore_record_add(s, &r, &dup), OTPCA_ERR_OK);
    cr_expect_eq(dup, 0);
    cr_assert_eq(otpca_mstore_record_add(s, &r, &dup), OTPCA_ERR_OK);
    cr_expect_eq(dup, 1);

    cr_assert_eq(otpca_mstore_record_get(s, r.id, &g), OTPCA_ERR_OK);
    cr_expect_arr_eq(g.id, r.id, 16);
    cr_expect_arr_eq(g.window, r.window, 16);
    cr_expect_eq(g.kind, OTPCA_REC_KEY_UPDATED);
    cr_expect_str_eq(g.serial, "dev-a");
    cr_expect_eq(g.time, r.time);
    cr_expect_eq(g.cert_len, r.cert_len);
    cr_expect_arr_eq(g.cert, r.cert, r.cert_len);
    uint8_t h[32];
    otpca_sha256(r.cert, r.cert_len, h);
    cr_expect_arr_eq(g.cert_hash, h, 32);
    cr_expect_eq(g.has_step, 1);
    cr_expect_eq(g.step, r.step);
    cr_expect_eq(g.has_reason, 0);
    cr_expect_eq(g.has_audit, 1);
    cr_expect_arr_eq(g.audit, r.audit, 32);
    cr_expect_eq(g.pubkey_len, 65);
    cr_expect_arr_eq(g.pubkey, k.pub, 65);
    cr_expect_eq(g.uploaded, 0);

    /* The uncompressed form of the same key is the same content. */
    otpca_mrecord u = r;
    memcpy(u.pubkey, k.pub, 65);
    u.pubkey_len = 65;
    cr_expect_eq(otpca_mstore_record_add(s, &u, &dup), OTPCA_ERR_OK);
    cr_expect_eq(dup, 1);

    /* The same id with other content, field by field. */
    otpca_mrecord c;
    c = r; snprintf(c.serial, sizeof c.serial, "dev-b");
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);
    c = r; c.cert[10] ^= 1;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);
    c = r; c.cert_len--;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);
    c = r; c.step++;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);
    c = r; c.has_step = 0;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);
    c = r; c.has_reason = 1; c.reason = 0;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);
    c = r; c.time++;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);
    c = r; c.window[0] ^= 1;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);
    c = r; c.audit[31] ^= 1;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);
    c = r; c.pubkey_len = 0;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);
    c = r; c.kind = OTPCA_REC_ISSUED;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_EXISTS);

    /* Bad input. */
    c = r; c.kind = 7;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_INVALID_ARG);
    c = r; c.has_reason = 1; c.reason = 256;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_INVALID_ARG);
    c = r; snprintf(c.serial, sizeof c.serial, "a b");
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_INVALID_ARG);
    c = r; c.cert_len = OTPCA_MSTORE_CERT_MAX + 1;
    cr_expect_eq(otpca_mstore_record_add(s, &c, &dup), OTPCA_ERR_INVALID_ARG);
    uint8_t none[16] = {0};
    cr_expect_eq(otpca_mstore_record_get(s, none, &g), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(raw_int("SELECT count(*) FROM records"), 1);
    otpca_p256_soft_wipe(&k);
    otpca_mstore_destroy(&s);
}

struct pend {
    uint8_t first[16][16];
    size_t n, stop_after;
};

static int on_pending(const otpca_mrecord *r, void *arg)
{
    struct pend *p = arg;
    if (p->n < 16)
        memcpy(p->first[p->n], r->id, 16);
    p->n++;
    return p->stop_after && p->n >= p->stop_after;
}

Test(mstore, records_pending_oldest_first_until_acked)
{
    otpca_mstore *s = open_mstore();
    otpca_mrecord r;
    /* Ids out of order, so journal order is not id order. */
    static const uint8_t order[10] = {9, 3, 7, 1, 5, 8, 2, 6, 4, 10};
    for (int i = 0; i < 10; i++) {
        issued(&r, order[i], "dev-a");
        if (i % 2) {
            r.kind = OTPCA_REC_REJECTED;
            r.cert_len = 0;
            r.has_step = 0;
            r.has_reason = 1;
            r.reason = 3;
        }
        cr_assert_eq(otpca_mstore_record_add(s, &r, NULL), OTPCA_ERR_OK);
    }
    struct pend p = {0};
    cr_assert_eq(otpca_mstore_records_pending(s, 4, on_pending, &p), OTPCA_ERR_OK);
    cr_assert_eq(p.n, 4);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(p.first[i][0], order[i], "pending %d", i);

    /* Acknowledge the 1st and 3rd journalled, and an unknown id. */
    uint8_t ids[3][16];
    memset(ids[0], order[0], 16);
    memset(ids[1], order[2], 16);
    memset(ids[2], 0x77, 16);
    cr_assert_eq(otpca_mstore_records_acked(s, (const uint8_t(*)[16])ids, 3), OTPCA_ERR_OK);
    memset(&p, 0, sizeof p);
    cr_assert_eq(otpca_mstore_records_pending(s, 100, on_pending, &p), OTPCA_ERR_OK);
    cr_assert_eq(p.n, 8);
    static const uint8_t left[8] = {3, 1, 5, 8, 2, 6, 4, 10};
    for (int i = 0; i < 8; i++)
        cr_expect_eq(p.first[i][0], left[i], "pending %d", i);
    /* fn stops the walk. */
    memset(&p, 0, sizeof p);
    p.stop_after = 2;
    cr_assert_eq(otpca_mstore_records_pending(s, 100, on_pending, &p), OTPCA_ERR_OK);
    cr_expect_eq(p.n, 2);

    /* Acknowledged records stay journalled, marked; a repeat is still a
     * duplicate and does not come back as pending. */
    otpca_mrecord g;
    cr_assert_eq(otpca_mstore_record_get(s, ids[0], &g), OTPCA_ERR_OK);
    cr_expect_eq(g.uploaded, 1);
    cr_expect_eq(g.kind, OTPCA_REC_ISSUED);
    issued(&r, order[0], "dev-a");
    int dup = 0;
    cr_assert_eq(otpca_mstore_record_add(s, &r, &dup), OTPCA_ERR_OK);
    cr_expect_eq(dup, 1);
    cr_assert_eq(otpca_mstore_record_get(s, ids[1], &g), OTPCA_ERR_OK);
    cr_expect_eq(g.uploaded, 1);
    cr_expect_eq(g.kind, OTPCA_REC_ISSUED);
    cr_assert_eq(otpca_mstore_record_get(s, (const uint8_t *)"\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03"
                                                           "\x03\x03\x03",
                                         &g),
                 OTPCA_ERR_OK);
    cr_expect_eq(g.kind, OTPCA_REC_REJECTED);
    cr_expect_eq(g.has_reason, 1);
    cr_expect_eq(g.reason, 3);
    cr_expect_eq(g.cert_len, 0);
    cr_expect_eq(g.uploaded, 0);
    memset(&p, 0, sizeof p);
    cr_assert_eq(otpca_mstore_records_pending(s, 100, on_pending, &p), OTPCA_ERR_OK);
    cr_expect_eq(p.n, 8);
    otpca_mstore_destroy(&s);
}

/* ------------------------------------------------- steps and lockout */

Test(mstore, accept_takes_only_a_newer_step)
{
    otpca_mstore *s = open_mstore();
    uint8_t h1[32], h2[32];
    hash_of("one", h1);
    hash_of("two", h2);
    otpca_device_entry e[2] = {entry("dev-a", 1, OTPCA_DEV_APPROVED), entry("dev-r", 2, OTPCA_DEV_REVOKED)};
    cr_assert_eq(delta(s, 0, 2, e, 2), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-a", 10, h1), OTPCA_ERR_OK);
    otpca_mdevice d = get(s, "dev-a");
    cr_expect_eq(d.last_step, 10);
    cr_expect_eq(d.has_cert, 1);
    cr_expect_arr_eq(d.cert_hash, h1, 32);
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-a", 10, h2), OTPCA_ERR_STATE);
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-a", 9, h2), OTPCA_ERR_STATE);
    cr_expect_arr_eq(get(s, "dev-a").cert_hash, h1, 32, "a refused step changes nothing");
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-a", 11, NULL), OTPCA_ERR_OK);
    d = get(s, "dev-a");
    cr_expect_eq(d.last_step, 11);
    cr_expect_arr_eq(d.cert_hash, h1, 32, "a Rejoin keeps the certificate");
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-r", 50, h2), OTPCA_ERR_STATE, "revoked");
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-x", 50, h2), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_mstore_device_accept(s, "bad serial", 50, h2), OTPCA_ERR_INVALID_ARG);
    otpca_mstore_destroy(&s);
}

Test(mstore, lockout_at_the_threshold)
{
    otpca_mstore *s = open_mstore();
    otpca_device_entry e[2] = {entry("dev-a", 1, OTPCA_DEV_ENROLLED), entry("dev-r", 2, OTPCA_DEV_REVOKED)};
    cr_assert_eq(delta(s, 0, 2, e, 2), OTPCA_ERR_OK);
    uint32_t n = 0;
    int locked = 0;
    for (uint32_t i = 1; i <= 4; i++) {
        cr_assert_eq(otpca_mstore_device_fail(s, "dev-a", 4, &n, &locked), OTPCA_ERR_OK);
        cr_expect_eq(n, i);
        cr_expect_eq(locked, i == 4, "failure %u", i);
        cr_expect_eq(get(s, "dev-a").state, i < 4 ? OTPCA_DEV_ENROLLED : OTPCA_DEV_LOCKED);
    }
    cr_assert_eq(otpca_mstore_device_fail(s, "dev-a", 4, &n, &locked), OTPCA_ERR_OK);
    cr_expect_eq(n, 5);
    cr_expect_eq(locked, 0, "locked once");
    cr_expect_eq(otpca_mstore_device_accept(s, "dev-a", 99, NULL), OTPCA_ERR_STATE, "a locked device");
    /* A revoked device counts failures but does not become locked. */
    cr_assert_eq(otpca_mstore_device_fail(s, "dev-r", 1, &n, &locked), OTPCA_ERR_OK);
    cr_expect_eq(locked, 0);
    cr_expect_eq(get(s, "dev-r").state, OTPCA_DEV_REVOKED);
    cr_expect_eq(otpca_mstore_device_fail(s, "dev-x", 4, &n, &locked), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_mstore_device_fail(s, "dev-a", 0, &n, &locked), OTPCA_ERR_INVALID_ARG);

    /* An unlock Notice while this manager's LOCKED record is unacknowledged
     * is refused; once acknowledged it clears the count. */
    journal_lock(s, 0x5a, "dev-a");
    cr_expect_eq(otpca_mstore_device_set_state(s, "dev-a", OTPCA_DEV_ENROLLED, 3, 0, 0), OTPCA_ERR_STATE);
    cr_expect_eq(get(s, "dev-a").state, OTPCA_DEV_LOCKED);
    uint8_t id[1][16];
    memset(id[0], 0x5a, 16);
    cr_assert_eq(otpca_mstore_records_acked(s, (const uint8_t(*)[16])id, 1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_device_set_state(s, "dev-a", OTPCA_DEV_ENROLLED, 3, 0, 0), OTPCA_ERR_OK);
    otpca_mdevice d = get(s, "dev-a");
    cr_expect_eq(d.state, OTPCA_DEV_ENROLLED);
    cr_expect_eq(d.failures, 0);
    cr_expect_eq(d.seq, 3);
    /* A lock Notice. */
    cr_assert_eq(otpca_mstore_device_set_state(s, "dev-a", OTPCA_DEV_LOCKED, 4, 0, 0), OTPCA_ERR_OK);
    cr_expect_eq(get(s, "dev-a").state, OTPCA_DEV_LOCKED);
    otpca_mstore_destroy(&s);
}

/* ----------------------------------------------------------------- audit */

/* The hash recomputed here from the protocol encoder. */
static void audit_hash_here(const otpca_audit_entry *e, uint8_t out[32])
{
    uint8_t buf[1024];
    size_t len = 0;
    cr_assert_eq(otpca_msg_encode(&otpca_desc_audit_entry, e, buf, sizeof buf, &len), OTPCA_ERR_OK);
    otpca_sha256(buf, len, out);
}

Test(mstore, audit_entry_hash_is_the_encoding_hashed)
{
    char actor[65], subject[65], detail[513];
    uint8_t prev[32], window[16], h[32], want[32];
    memset(actor, 'a', 64);
    actor[64] = '\0';
    memset(subject, 's', 64);
    subject[64] = '\0';
    memset(detail, 'd', 512);
    detail[512] = '\0';
    memset(prev, 0x11, 32);
    memset(window, 0x22, 16);
    otpca_audit_entry e;
    memset(&e, 0, sizeof e);
    e.seq = INT64_MAX;
    e.prev = (otpca_buf){prev, 32};
    e.time = UINT64_C(0xffffffffff);
    e.actor = (otpca_buf){(const uint8_t *)actor, 64};
    e.event = 65535;
    e.subject = (otpca_buf){(const uint8_t *)subject, 64};
    e.detail = (otpca_buf){(const uint8_t *)detail, 512};
    e.window = (otpca_buf){window, 16};
    cr_assert_eq(otpca_audit_entry_hash(&e, h), OTPCA_ERR_OK, "the largest entry");
    audit_hash_here(&e, want);
    cr_expect_arr_eq(h, want, 32);
    e.window = (otpca_buf){NULL, 0};
    e.subject = (otpca_buf){NULL, 0};
    cr_assert_eq(otpca_audit_entry_hash(&e, h), OTPCA_ERR_OK);
    audit_hash_here(&e, want);
    cr_expect_arr_eq(h, want, 32);
    uint8_t keep[32];
    memcpy(keep, h, 32);
    e.event = 0;
    cr_expect_neq(otpca_audit_entry_hash(&e, h), OTPCA_ERR_OK);
    cr_expect_arr_eq(h, keep, 32, "untouched on failure");
}

static void append_n(otpca_mstore *s, unsigned n, uint8_t hashes[][32])
{
    uint8_t prev[32] = {0}, window[16];
    memset(window, 0x42, 16);
    for (unsigned i = 0; i < n; i++) {
        char subject[32], detail[64];
        snprintf(subject, sizeof subject, "dev-%04u", i);
        snprintf(detail, sizeof detail, "entry %u: caf\xc3\xa9", i);
        const uint8_t *w = i % 3 ? window : NULL;
        uint8_t h[32], want[32];
        cr_assert_eq(otpca_mstore_audit_append(s, 1700000000u + i, "mgr-01", 1 + i % 19, i % 4 ? subject : NULL,
                                               i % 5 ? detail : NULL, w, h),
                     OTPCA_ERR_OK, "entry %u", i);
        otpca_audit_entry e;
        memset(&e, 0, sizeof e);
        e.seq = i + 1;
        e.prev = (otpca_buf){prev, 32};
        e.time = 1700000000u + i;
        e.actor = (otpca_buf){(const uint8_t *)"mgr-01", 6};
        e.event = 1 + i % 19;
        if (i % 4)
            e.subject = (otpca_buf){(const uint8_t *)subject, strlen(subject)};
        if (i % 5)
            e.detail = (otpca_buf){(const uint8_t *)detail, strlen(detail)};
        if (w)
            e.window = (otpca_buf){w, 16};
        audit_hash_here(&e, want);
        cr_expect_arr_eq(h, want, 32, "entry %u", i);
        memcpy(prev, h, 32);
        if (hashes)
            memcpy(hashes[i], h, 32);
    }
}

Test(mstore, audit_chain_verifies_and_finds_a_changed_row)
{
    otpca_mstore *s = open_mstore();
    uint64_t entries = 99, bad = 99;
    cr_assert_eq(otpca_mstore_audit_verify(s, &entries, &bad), OTPCA_ERR_OK);
    cr_expect_eq(entries, 0);
    cr_expect_eq(bad, 0);
    append_n(s, 30, NULL);
    cr_assert_eq(otpca_mstore_audit_verify(s, &entries, &bad), OTPCA_ERR_OK);
    cr_expect_eq(entries, 30);
    cr_expect_eq(bad, 0);
    cr_expect_eq(otpca_mstore_audit_append(s, 1, "bad actor", 1, NULL, NULL, NULL, NULL), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_mstore_audit_append(s, 1, "mgr-01", 0, NULL, NULL, NULL, NULL), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_mstore_audit_append(s, 1, "mgr-01", 1, NULL, "bad utf-8 \xff", NULL, NULL),
                 OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_mstore_audit_append(s, 1, "mgr-01", 1, "a b", NULL, NULL, NULL), OTPCA_ERR_INVALID_ARG);
    otpca_mstore_destroy(&s);

    /* Change one detail through the sqlite3 C API. */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open(g_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "UPDATE audit SET detail = ?1 WHERE seq = 17", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_bind_text(st, 1, "nothing to see here", -1, SQLITE_STATIC), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    cr_assert_eq(sqlite3_changes(db), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    s = open_mstore();
    cr_expect_eq(otpca_mstore_audit_verify(s, &entries, &bad), OTPCA_ERR_SIGNATURE);
    cr_expect_eq(bad, 17);
    otpca_mstore_destroy(&s);
}

/* A fresh store with a chain of 10 entries, sql run on its file behind
 * its back: the chain is found broken at entry bad; the entries before. */
static uint64_t chain_tampered(const char *sql, uint64_t bad)
{
    uint64_t entries = 0, got = 0;
    tmp_teardown();
    tmp_setup();
    otpca_mstore *s = open_mstore();
    append_n(s, 10, NULL);
    otpca_mstore_destroy(&s);
    raw_sql(sql);
    s = open_mstore();
    cr_expect_eq(otpca_mstore_audit_verify(s, &entries, &got), OTPCA_ERR_SIGNATURE, "%s", sql);
    cr_expect_eq(got, bad, "%s", sql);
    otpca_mstore_destroy(&s);
    return entries;
}

Test(mstore, audit_chain_finds_removed_and_reordered_rows)
{
    (void)chain_tampered("UPDATE audit SET window_id = NULL WHERE seq = 5", 5); /* drop an optional field */
    cr_expect_eq(chain_tampered("DELETE FROM audit WHERE seq = 10", 10), 9); /* cut off the end */
    (void)chain_tampered("UPDATE audit SET seq = 100 WHERE seq = 5; UPDATE audit SET seq = 5 WHERE seq = 6; "
                         "UPDATE audit SET seq = 6 WHERE seq = 100", /* swap two */
                         5);
}

/* ------------------------------------------------------------------ meta */

Test(mstore, meta_replaces_and_guards_its_own_keys)
{
    otpca_mstore *s = open_mstore();
    uint8_t a[3] = {1, 2, 3}, b[5] = {9, 8, 7, 6, 5}, buf[8];
    size_t len = 0;
    cr_expect_eq(otpca_mstore_meta_get(s, "cert", buf, sizeof buf, &len), OTPCA_ERR_NOT_FOUND);
    cr_assert_eq(otpca_mstore_meta_put(s, "cert", a, sizeof a), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_meta_put(s, "cert", b, sizeof b), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_meta_get(s, "cert", buf, sizeof buf, &len), OTPCA_ERR_OK);
    cr_expect_eq(len, 5);
    cr_expect_arr_eq(buf, b, 5);
    cr_expect_eq(otpca_mstore_meta_get(s, "cert", buf, 4, &len), OTPCA_ERR_BUFFER_TOO_SMALL);
    cr_expect_eq(len, 5);
    cr_expect_eq(otpca_mstore_meta_put(s, "sync_seq", a, sizeof a), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_mstore_meta_put(s, "schema_version", a, sizeof a), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_mstore_meta_put(s, "audit_head", a, sizeof a), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_mstore_meta_get(s, "sync_seq", buf, sizeof buf, &len), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_mstore_meta_put(s, "", a, sizeof a), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_mstore_meta_put(s, "empty", a, 0), OTPCA_ERR_INVALID_ARG);
    static uint8_t big[OTPCA_MSTORE_META_MAX + 1];
    cr_expect_eq(otpca_mstore_meta_put(s, "big", big, OTPCA_MSTORE_META_MAX), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_meta_put(s, "big", big, sizeof big), OTPCA_ERR_INVALID_ARG);
    otpca_mstore_destroy(&s);
}

/* --------------------------------------------------------- transactions */

Test(mstore, transactions_group_and_roll_back)
{
    otpca_mstore *s = open_mstore();
    otpca_mrecord r;
    uint8_t n1[16] = {1};
    cr_expect_eq(otpca_mstore_commit(s), OTPCA_ERR_STATE);
    cr_assert_eq(otpca_mstore_begin(s), OTPCA_ERR_OK);
    cr_expect_eq(otpca_mstore_begin(s), OTPCA_ERR_STATE);
    issued(&r, 1, "dev-a");
    cr_assert_eq(otpca_mstore_record_add(s, &r, NULL), OTPCA_ERR_OK);
    cr_assert_eq(otpca_mstore_nonce_add(s, n1, 5), OTPCA_ERR_OK);
    otpca_mstore_rollback(s);
    cr_expect_eq(otpca_mstore_record_get(s, r.id, &r), OTPCA_ERR_NOT_FOUND);
    cr_expect_eq(otpca_mstore_nonce_add(s, n1, 5), OTPCA_ERR_OK);

    /* A group commit of 64 issuances: all durable together. */
    cr_assert_eq(otpca_mstore_begin(s), OTPCA_ERR_OK);
    for (uint8_t i = 1; i <= 64; i++) {
        issued(&r, i, "dev-a");
        cr_assert_eq(otpca_mstore_record_add(s, &r, NULL), OTPCA_ERR_OK);
    }
    /* A failed call on its input leaves the transaction usable. */
    issued(&r, 1, "dev-b");
    cr_expect_eq(otpca_mstore_record_add(s, &r, NULL), OTPCA_ERR_EXISTS);
    cr_assert_eq(otpca_mstore_commit(s), OTPCA_ERR_OK);
    otpca_mstore_destroy(&s);
    cr_expect_eq(raw_int("SELECT count(*) FROM records WHERE uploaded = 0"), 64);
    s = open_mstore();
    struct pend p = {0};
    cr_assert_eq(otpca_mstore_records_pending(s, 1000, on_pending, &p), OTPCA_ERR_OK);
    cr_expect_eq(p.n, 64);
    otpca_mstore_destroy(&s);
}

/* -------------------------------------------------------------- threads */

#define THREAD_TX 150

struct writer {
    uint8_t tag;
    otpca_err err;
    unsigned done;
};

/* A request thread: its own handle; each transaction journals 4 records,
 * remembers a nonce, counts a failure and appends an audit entry; then one
 * more failure and one more entry, each on its own. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    otpca_mstore *s = NULL;
    otpca_mrecord *r = calloc(1, sizeof *r);
    if (!r) {
        w->err = OTPCA_ERR_NOMEM;
        return NULL;
    }
    if ((w->err = otpca_mstore_open(g_path, &s)))
        goto out;
    for (unsigned t = 0; t < THREAD_TX; t++) {
        if ((w->err = otpca_mstore_begin(s)))
            goto out;
        for (unsigned i = 0; i < 4; i++) {
            memset(r, 0, sizeof *r);
            r->id[0] = w->tag;
            r->id[1] = (uint8_t)(t >> 8);
            r->id[2] = (uint8_t)t;
            r->id[3] = (uint8_t)i;
            r->kind = OTPCA_REC_REJECTED;
            snprintf(r->serial, sizeof r->serial, "dev-a");
            r->time = 1700000000u + t;
            if ((w->err = otpca_mstore_record_add(s, r, NULL)))
                goto out;
        }
        uint8_t nonce[16] = {w->tag, (uint8_t)(t >> 8), (uint8_t)t};
        if ((w->err = otpca_mstore_nonce_add(s, nonce, t)) ||
            (w->err = otpca_mstore_device_fail(s, "dev-a", 1000000, NULL, NULL)) ||
            (w->err = otpca_mstore_audit_append(s, t, w->tag == 1 ? "thread-1" : "thread-2", 5, "dev-a", NULL,
                                                NULL, NULL)) ||
            (w->err = otpca_mstore_commit(s)))
            goto out;
        /* Read-then-write calls in their own transactions, racing the
         * other thread's. */
        if ((w->err = otpca_mstore_device_fail(s, "dev-a", 1000000, NULL, NULL)) ||
            (w->err = otpca_mstore_audit_append(s, t, "solo", 7, NULL, NULL, NULL, NULL)))
            goto out;
        w->done++;
    }
out:
    otpca_mstore_destroy(&s);
    free(r);
    return NULL;
}

Test(mstore, two_handles_write_at_once)
{
    otpca_mstore *s = open_mstore();
    otpca_device_entry e[1] = {entry("dev-a", 1, OTPCA_DEV_APPROVED)};
    cr_assert_eq(delta(s, 0, 1, e, 1), OTPCA_ERR_OK);
    struct writer w[2] = {{.tag = 1}, {.tag = 2}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    /* This handle reads meanwhile (WAL: readers do not wait). */
    uint64_t counts[5];
    for (int i = 0; i < 50; i++)
        cr_assert_eq(otpca_mstore_device_count(s, counts), OTPCA_ERR_OK);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(w[i].err, OTPCA_ERR_OK, "writer %d: %s", i, otpca_errname(w[i].err));
        cr_expect_eq(w[i].done, THREAD_TX, "writer %d", i);
    }
    struct pend p = {0};
    cr_assert_eq(otpca_mstore_records_pending(s, 100000, on_pending, &p), OTPCA_ERR_OK);
    cr_expect_eq(p.n, 2 * 4 * THREAD_TX);
    cr_expect_eq(get(s, "dev-a").failures, 2 * 2 * THREAD_TX, "no lost update");
    uint64_t entries = 0, bad = 0;
    cr_expect_eq(otpca_mstore_audit_verify(s, &entries, &bad), OTPCA_ERR_OK);
    cr_expect_eq(entries, 2 * 2 * THREAD_TX, "one chain, no fork");
    cr_expect_eq(raw_int("SELECT count(*) FROM nonces"), 2 * THREAD_TX);
    otpca_mstore_destroy(&s);
}
