/*
 * Test helpers for running a test's store on PostgreSQL (test_store.c,
 * cloudtest.h): the server comes from OTPCA_TEST_STORE_URL (a
 * postgresql:// URL) or OTPCA_TEST_STORE_URL_FILE (a file holding one, as
 * deploy/postgres.sh writes it; ctest's pg fixture); each test makes a
 * database of its own on it, named after its process, and drops it
 * afterwards; statements run behind the store's back through libpq.
 */
#ifndef OTPCA_TESTS_PGTEST_H
#define OTPCA_TESTS_PGTEST_H

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The server's URL into base (cap bytes): 1, or 0 if none is configured. */
static inline int pgtest_base(char *base, size_t cap)
{
    const char *url = getenv("OTPCA_TEST_STORE_URL");
    const char *file = getenv("OTPCA_TEST_STORE_URL_FILE");
    base[0] = '\0';
    if (url && *url) {
        snprintf(base, cap, "%s", url);
    } else if (file && *file) {
        FILE *f = fopen(file, "r");
        cr_assert_not_null(f, "OTPCA_TEST_STORE_URL_FILE %s cannot be read", file);
        cr_assert_not_null(fgets(base, (int)cap, f), "%s is empty", file);
        fclose(f);
        base[strcspn(base, "\r\n")] = '\0';
    }
    if (!base[0])
        return 0;
    cr_assert(strncmp(base, "postgresql://", 13) == 0 || strncmp(base, "postgres://", 11) == 0,
              "the test store URL must be postgresql://...: %s", base);
    return 1;
}

/* url with its database name replaced by db. */
static inline void pgtest_url_with_db(const char *url, const char *db, char *out, size_t cap)
{
    const char *body = strstr(url, "://");
    cr_assert_not_null(body, "not a URL: %s", url);
    const char *path = strchr(body + 3, '/');
    const char *query = strchr(body + 3, '?');
    if (!path || (query && query < path))
        path = query ? query : url + strlen(url);
    const char *rest = path + strcspn(path, "?");
    int n = snprintf(out, cap, "%.*s/%s%s", (int)(path - url), url, db, rest);
    cr_assert(n > 0 && (size_t)n < cap);
}

/* A connection to database db on the server base names. */
static inline PGconn *pgtest_connect(const char *base, const char *db)
{
    char url[1200];
    pgtest_url_with_db(base, db, url, sizeof url);
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect %s: %s", url, PQerrorMessage(c));
    return c;
}

/* Runs sql in database db; the result (status want), which the caller clears. */
static inline PGresult *pgtest_run(const char *base, const char *db, const char *sql, ExecStatusType want)
{
    PGconn *c = pgtest_connect(base, db);
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), want, "%s: %s", sql, PQresultErrorMessage(r));
    PQfinish(c);
    return r;
}

/* A fresh database for this test: its name into db, its URL into url. */
static inline void pgtest_create_db(const char *base, char *db, size_t db_cap, char *url, size_t url_cap)
{
    char sql[128];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(db, db_cap, "otpca_t%ld_%ld", (long)getpid(), (long)(ts.tv_nsec % 1000000));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    PQclear(pgtest_run(base, "postgres", sql, PGRES_COMMAND_OK));
    pgtest_url_with_db(base, db, url, url_cap);
}

/* Drops it, whoever is still connected. */
static inline void pgtest_drop_db(const char *base, const char *db)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    PQclear(pgtest_run(base, "postgres", sql, PGRES_COMMAND_OK));
}

#endif
