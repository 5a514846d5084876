/*
 * Test fixture for the stores' unit tests (test_store.c, test_mstore.c):
 * each test works in a fresh temporary directory, removed afterwards, with
 * the store's file g_path in it, and pokes at that file behind the store's
 * back with the sqlite3 API where it needs to tamper with it. The test
 * defines TMPSTORE_PREFIX (the directory's name before its random part)
 * and TMPSTORE_FILE (the file's name) before including this header.
 */
#ifndef OTPCA_TESTS_TMPSTORE_H
#define OTPCA_TESTS_TMPSTORE_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(TMPSTORE_PREFIX) || !defined(TMPSTORE_FILE)
#error "define TMPSTORE_PREFIX and TMPSTORE_FILE before including tmpstore.h"
#endif

static char g_dir[512];
static char g_path[600];

static inline void tmp_setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/" TMPSTORE_PREFIX "-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp");
    snprintf(g_path, sizeof g_path, "%s/" TMPSTORE_FILE, g_dir);
}

static inline void tmp_teardown(void)
{
    DIR *d = opendir(g_dir);
    if (!d)
        return;
    struct dirent *e;
    char p[1200];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(g_dir);
}

/* Runs SQL on the file behind the store's back. */
static inline void raw_sql(const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    cr_assert_eq(sqlite3_open(g_path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
}

/* One integer from the file, read behind the store's back. */
static inline int64_t raw_int(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open(g_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

#endif
