/*
 * Test fixture for the cloud server: a throw-away store made with the real
 * otpca-cloud CLI (init, the rig's manifest imported and approved,
 * manager mgr-01 with a fresh CURVE key and a certificate for the rig
 * manager token's CA key, operator otpca-op-01 from the rig), the real
 * `otpca-cloud serve` on loopback (ports picked by the kernel), and a
 * client signing with the manager token and computing the operator's TOTP
 * in the operator token. A second manager (mgr-02, signing with the rig's
 * root key) and read access to the store's SQLite file are there for the
 * tests that need them. With OTPCA_TEST_STORE_URL(_FILE) set (pgtest.h),
 * the store is a PostgreSQL database of the test's own instead, read
 * through libpq.
 */
#ifndef OTPCA_TESTS_CLOUDTEST_H
#define OTPCA_TESTS_CLOUDTEST_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "otpca/cloud/client.h"
#include "otpca/common/hex.h"
#include "otpca/common/secmem.h"
#include "otpca/proto/p256.h"
#include "otpca/token/rig.h"
#include "otpca/token/token.h"
#include "pgtest.h"
#include "testrig.h"

typedef struct cloudtest {
    char dir[64], conf[128], db[128];
    char store[1200];                /* the store URL: db, or a PostgreSQL database's */
    char pg_base[1000], pg_db[64];   /* "" on SQLite */
    char listen[256], notices[256];
    pid_t server;
    /* A second `otpca-cloud serve` on the same store (ct_server2_start). */
    char listen2[256], notices2[256];
    pid_t server2;
    otpca_p11_t *p11;
    otpca_token_t *mgr, *op;
    otpca_obj_t mgr_key, op_seed;
    uint8_t mgr_pub[65];
    uint8_t cloud_pub[65], cloud_curve[32];
    uint8_t curve_pub[32], curve_sec[32];
    /* mgr-02 (ct_add_mgr2): the rig's root key is its CA key. */
    otpca_token_t *root;
    otpca_obj_t root_key;
    uint8_t root_pub[65];
    uint8_t curve2_pub[32], curve2_sec[32];
} cloudtest;

static cloudtest ct;

static inline const char *ct_bin(void)
{
    const char *b = getenv("OTPCA_BIN");
    cr_assert(b && *b, "OTPCA_BIN is not set: run through ctest");
    return b;
}

/* Runs a shell command (output to DIR/cmd.log); its exit status. */
static int ct_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int ct_sh(const char *fmt, ...)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "exec >>'%s/cmd.log' 2>&1; ", ct.dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* otpca-cloud --config CONF ARGS; its exit status. */
#define ct_cloud(...) ct_sh("'%s/otpca-cloud' --config '%s' " __VA_ARGS__)
#define CT_CLOUD(fmt, ...) ct_cloud(fmt, ct_bin(), ct.conf, ##__VA_ARGS__)

/* The value after "key = " in a file of key = value lines. */
static inline int ct_file_value(const char *path, const char *key, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    char line[512];
    size_t kl = strlen(key);
    int found = 0;
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && !strncmp(line + kl, " = ", 3)) {
            line[strcspn(line, "\n")] = '\0';
            size_t vl = strlen(line + kl + 3);
            if (vl >= cap)
                break;
            memcpy(out, line + kl + 3, vl + 1);
            found = 1;
        }
    fclose(f);
    return found;
}

static inline otpca_err ct_mgr_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
    (void)ctx;
    size_t len = 64;
    return otpca_token_sign_digest(ct.mgr, ct.mgr_key, digest, 32, OTPCA_SIG_RAW, sig, &len);
}

/* The manager token's ECDH (opens seed boxes). */
static inline otpca_err ct_mgr_ecdh(void *ctx, const uint8_t peer[65], uint8_t z[32])
{
    (void)ctx;
    return otpca_token_ecdh(ct.mgr, ct.mgr_key, peer, 65, z);
}

/* mgr-02's CA key: the rig's root key. */
static inline otpca_err ct_mgr2_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
    (void)ctx;
    size_t len = 64;
    return otpca_token_sign_digest(ct.root, ct.root_key, digest, 32, OTPCA_SIG_RAW, sig, &len);
}

/* A signer for mgr-01's requests (the manager token's CA key). */
static inline otpca_signer ct_signer(void)
{
    otpca_signer s;
    memset(&s, 0, sizeof s);
    s.sign = ct_mgr_sign;
    otpca_p256_kid(ct.mgr_pub, s.kid);
    return s;
}

/* Starts $OTPCA_BIN/<bin> with args (NULL-terminated), its stderr
 * appended to DIR/<log>, and reads the first line it prints on stdout
 * into line (waiting up to timeout_ms; "" if none came). The rest of its
 * stdout is copied into the file rest, or dropped if rest is NULL. Its pid. */
static inline pid_t ct_spawn(const char *bin, const char *const *args, const char *log, const char *rest,
                             int timeout_ms, char *line, size_t cap)
{
    char exe[512], logpath[256];
    char *argv[16];
    size_t argc = 0;
    snprintf(exe, sizeof exe, "%s/%s", ct_bin(), bin);
    snprintf(logpath, sizeof logpath, "%s/%s", ct.dir, log);
    argv[argc++] = exe;
    while (*args && argc < sizeof argv / sizeof argv[0] - 1)
        argv[argc++] = (char *)*args++;
    cr_assert_null(*args, "too many arguments for %s", bin);
    argv[argc] = NULL;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int lf = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fds[1], 1);
        if (lf >= 0)
            dup2(lf, 2);
        close(fds[0]);
        execv(exe, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    struct pollfd p = {fds[0], POLLIN, 0};
    line[0] = '\0';
    while (used < cap - 1 && !strchr(line, '\n') && poll(&p, 1, timeout_ms) == 1) {
        ssize_t n = read(fds[0], line + used, cap - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        line[used] = '\0';
    }
    if (rest && fork() == 0) {
        int of = open(rest, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        char buf[4096];
        ssize_t n;
        while (of >= 0 && (n = read(fds[0], buf, sizeof buf)) > 0)
            if (write(of, buf, (size_t)n) != n)
                break;
        _exit(0);
    }
    close(fds[0]);
    return pid;
}

/* Waits up to timeout_ms for pid to exit (SIGKILL after that): its exit
 * status, 128 + the signal that ended it, or -2 if it had to be killed. */
static inline int ct_wait_exit(pid_t pid, int timeout_ms)
{
    int status = 0;
    for (int i = 0; i < timeout_ms / 50; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -2;
}

/* Starts an `otpca-cloud serve` with ct.conf, logging to log, and waits
 * for its "listening" line: its endpoints into listen and notices (256
 * bytes each), its pid. */
static inline pid_t ct_serve(const char *log, char *listen, char *notices)
{
    char line[600];
    const char *args[] = {"--config", ct.conf, "serve", NULL};
    pid_t pid = ct_spawn("otpca-cloud", args, log, NULL, 20000, line, sizeof line);
    cr_assert(sscanf(line, "listening %255s notices %255s", listen, notices) == 2,
              "server did not start: '%s' (see %s/%s)", line, ct.dir, log);
    return pid;
}

/* Starts `otpca-cloud serve`. */
static inline void ct_server_start(void)
{
    ct.server = ct_serve("server.log", ct.listen, ct.notices);
}

/* Starts a second `otpca-cloud serve` with the same configuration (so on
 * the same store; its own ports); ct_teardown stops it. */
static inline void ct_server2_start(void)
{
    ct.server2 = ct_serve("server2.log", ct.listen2, ct.notices2);
}

/* SIGTERM (or SIGKILL) and wait; the exit status, or 128 + signal; -2 if
 * it did not stop within 10 s. */
static inline int ct_server_stop(int sig)
{
    if (ct.server <= 0)
        return -1;
    kill(ct.server, sig);
    int rc = ct_wait_exit(ct.server, 10000);
    ct.server = -1;
    return rc;
}

static inline void ct_setup(void)
{
    char path[256], z85pub[41], z85sec[41], value[256];
    size_t len = 0;
    memset(&ct, 0, sizeof ct);
    snprintf(ct.dir, sizeof ct.dir, "/tmp/otpca-cloudtest-XXXXXX");
    cr_assert_not_null(mkdtemp(ct.dir));
    snprintf(ct.conf, sizeof ct.conf, "%s/cloud.conf", ct.dir);
    snprintf(ct.db, sizeof ct.db, "%s/cloud.db", ct.dir);
    if (pgtest_base(ct.pg_base, sizeof ct.pg_base))
        pgtest_create_db(ct.pg_base, ct.pg_db, sizeof ct.pg_db, ct.store, sizeof ct.store);
    else
        snprintf(ct.store, sizeof ct.store, "%s", ct.db);
    const char *rig = testrig_dir();
    FILE *f = fopen(ct.conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "store = %s\ntoken = pkcs11:token=%s?pin-source=file:%s/pins/%s.pin\n"
            "listen = tcp://127.0.0.1:*\nnotices = tcp://127.0.0.1:*\nworkers = 2\nlog_level = info\n",
            ct.store, OTPCA_RIG_CLOUD_TOKEN, rig, OTPCA_RIG_CLOUD_TOKEN);
    fclose(f);

    snprintf(path, sizeof path, "%s/init.out", ct.dir);
    cr_assert_eq(ct_sh("'%s/otpca-cloud' --config '%s' init >'%s'", ct_bin(), ct.conf, path), 0, "init");
    cr_assert(ct_file_value(path, "cloud_curve_key", value, sizeof value) && strlen(value) == 40);
    cr_assert_not_null(zmq_z85_decode(ct.cloud_curve, value));
    cr_assert(ct_file_value(path, "cloud_sign_key", value, sizeof value));
    cr_assert_eq(otpca_hex_decode(value, strlen(value), ct.cloud_pub, sizeof ct.cloud_pub, &len), OTPCA_ERR_OK);
    cr_assert_eq(len, 65);

    cr_assert_eq(CT_CLOUD("device import '%s/manifest.csv' --approve", rig), 0, "import");
    /* mgr-01: a fresh CURVE key pair and a CA certificate for the rig's manager key. */
    cr_assert_eq(zmq_curve_keypair(z85pub, z85sec), 0);
    cr_assert_not_null(zmq_z85_decode(ct.curve_pub, z85pub));
    cr_assert_not_null(zmq_z85_decode(ct.curve_sec, z85sec));
    cr_assert_eq(ct_sh("'%s/otpca-token' cert selfsign 'pkcs11:token=otpca-mgr-01;object=ca-key?pin-source=file:"
                       "%s/pins/otpca-mgr-01.pin' --cn mgr-01 --ca --out '%s/mgr-01.pem'",
                       ct_bin(), rig, ct.dir),
                 0, "manager certificate");
    cr_assert_eq(CT_CLOUD("manager add mgr-01 --ca-cert '%s/mgr-01.pem' --curve-key '%s'", ct.dir, z85pub), 0);
    /* The rig's operator. */
    cr_assert_eq(ct_sh("awk -F, 'NR == 2 { print $3 }' '%s/operators.csv' >'%s/op.seed'", rig, ct.dir), 0);
    cr_assert_eq(CT_CLOUD("operator add otpca-op-01 --seed-file '%s/op.seed'", ct.dir), 0);
    cr_assert_eq(CT_CLOUD("operator allow otpca-op-01 --manager mgr-01"), 0);

    cr_assert_eq(otpca_p11_new(NULL, &ct.p11), OTPCA_ERR_OK);
    ct.mgr = testrig_open(ct.p11, "otpca-mgr-01");
    ct.op = testrig_open(ct.p11, "otpca-op-01");
    cr_assert_eq(otpca_token_find(ct.mgr, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_MANAGER_KEY, NULL, 0, &ct.mgr_key),
                 OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_pubkey_sec1(ct.mgr, ct.mgr_key, ct.mgr_pub), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_find(ct.op, OTPCA_OBJ_SECRET_KEY, OTPCA_RIG_OPERATOR_SEED, NULL, 0, &ct.op_seed),
                 OTPCA_ERR_OK);
    ct_server_start();
}

/* Read access to the store's SQLite file beside a running server (the
 * store is in WAL mode); one connection per test, closed by ct_teardown. */
static sqlite3 *ct_sql;
static PGconn *ct_pg;

/* ct_db_int on PostgreSQL: ?1 becomes $1, the blob a bytea. */
static inline int64_t ct_pg_int(const char *sql, const void *blob, size_t blob_len)
{
    char q[512];
    snprintf(q, sizeof q, "%s", sql);
    for (char *p = strstr(q, "?1"); p; p = strstr(p, "?1"))
        *p = '$';
    if (!ct_pg)
        ct_pg = pgtest_connect(ct.pg_base, ct.pg_db);
    const char *vals[1] = {blob};
    int lens[1] = {(int)blob_len}, fmts[1] = {1};
    PGresult *r = PQexecParams(ct_pg, q, blob ? 1 : 0, NULL, vals, lens, fmts, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", q, PQresultErrorMessage(r));
    int64_t v = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return v;
}

/* The first column of the first row of sql as an integer, with blob (if
 * not NULL) bound to its one parameter; -1 if there is no row. */
static inline int64_t ct_db_int(const char *sql, const void *blob, size_t blob_len)
{
    if (ct.pg_base[0])
        return ct_pg_int(sql, blob, blob_len);
    if (!ct_sql) {
        cr_assert_eq(sqlite3_open_v2(ct.db, &ct_sql, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "open %s", ct.db);
        sqlite3_busy_timeout(ct_sql, 10000);
    }
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    cr_assert_eq(sqlite3_prepare_v2(ct_sql, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    if (blob)
        cr_assert_eq(sqlite3_bind_blob(st, 1, blob, (int)blob_len, SQLITE_TRANSIENT), SQLITE_OK);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: sqlite error %d", sql, rc);
    return v;
}

static inline void ct_db_close(void)
{
    if (ct_sql)
        sqlite3_close(ct_sql);
    ct_sql = NULL;
    if (ct_pg)
        PQfinish(ct_pg);
    ct_pg = NULL;
}

static inline void ct_teardown(void)
{
    ct_db_close();
    if (ct.server > 0)
        cr_expect_eq(ct_server_stop(SIGTERM), 0, "SIGTERM stops the server cleanly");
    if (ct.server2 > 0) {
        kill(ct.server2, SIGTERM);
        cr_expect_eq(ct_wait_exit(ct.server2, 10000), 0, "SIGTERM stops the second server cleanly");
        ct.server2 = -1;
    }
    otpca_token_destroy(&ct.mgr);
    otpca_token_destroy(&ct.op);
    otpca_token_destroy(&ct.root);
    otpca_p11_destroy(&ct.p11);
    if (ct.pg_db[0] && !getenv("OTPCA_TEST_KEEP"))
        pgtest_drop_db(ct.pg_base, ct.pg_db);
    if (!getenv("OTPCA_TEST_KEEP"))
        ct_sh("rm -rf '%s'", ct.dir);
}

/* A client configuration for manager `id` (no assertions: threads use it
 * too); curve_pub/sec NULL = mgr-01's. */
static inline void ct_client_config(otpca_cloud_client_config *cfg, const char *id, otpca_signer signer,
                             const uint8_t *curve_pub, const uint8_t *curve_sec, int timeout_ms)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->endpoint = ct.listen;
    cfg->notices = ct.notices;
    memcpy(cfg->server_key, ct.cloud_curve, 32);
    memcpy(cfg->public_key, curve_pub ? curve_pub : ct.curve_pub, 32);
    memcpy(cfg->secret_key, curve_sec ? curve_sec : ct.curve_sec, 32);
    memcpy(cfg->cloud_sign_pub, ct.cloud_pub, 65);
    cfg->manager_id = id;
    cfg->signer = signer;
    cfg->timeout_ms = timeout_ms;
    cfg->retries = -1;
}

/* A client for mgr-01 (or with other CURVE keys: curve_pub/sec NULL = mgr-01's). */
static inline otpca_cloud_client *ct_client_keys(const uint8_t *curve_pub, const uint8_t *curve_sec, int timeout_ms)
{
    otpca_cloud_client_config cfg;
    otpca_cloud_client *c = NULL;
    ct_client_config(&cfg, "mgr-01", ct_signer(), curve_pub, curve_sec, timeout_ms);
    cr_assert_eq(otpca_cloud_client_new(&cfg, &c), OTPCA_ERR_OK);
    otpca_memzero(cfg.secret_key, sizeof cfg.secret_key);
    return c;
}

static inline otpca_cloud_client *ct_client(void)
{
    return ct_client_keys(NULL, NULL, 10000);
}

/* Registers mgr-02: a fresh CURVE key pair and a CA certificate for the
 * rig's root key (which then signs its requests). */
static inline void ct_add_mgr2(void)
{
    char z85pub[41], z85sec[41];
    const char *rig = testrig_dir();
    cr_assert_eq(zmq_curve_keypair(z85pub, z85sec), 0);
    cr_assert_not_null(zmq_z85_decode(ct.curve2_pub, z85pub));
    cr_assert_not_null(zmq_z85_decode(ct.curve2_sec, z85sec));
    cr_assert_eq(ct_sh("'%s/otpca-token' cert selfsign 'pkcs11:token=%s;object=%s?pin-source=file:"
                       "%s/pins/%s.pin' --cn mgr-02 --ca --out '%s/mgr-02.pem'",
                       ct_bin(), OTPCA_RIG_ROOT_TOKEN, OTPCA_RIG_ROOT_KEY, rig, OTPCA_RIG_ROOT_TOKEN, ct.dir),
                 0, "mgr-02 certificate");
    cr_assert_eq(CT_CLOUD("manager add mgr-02 --ca-cert '%s/mgr-02.pem' --curve-key '%s'", ct.dir, z85pub), 0);
    cr_assert_eq(CT_CLOUD("operator allow otpca-op-01 --manager mgr-02"), 0);
    ct.root = testrig_open(ct.p11, OTPCA_RIG_ROOT_TOKEN);
    cr_assert_eq(otpca_token_find(ct.root, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_ROOT_KEY, NULL, 0, &ct.root_key),
                 OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_pubkey_sec1(ct.root, ct.root_key, ct.root_pub), OTPCA_ERR_OK);
}

/* A client for mgr-02 (after ct_add_mgr2). */
static inline otpca_cloud_client *ct_client_mgr2(void)
{
    otpca_cloud_client_config cfg;
    otpca_cloud_client *c = NULL;
    otpca_signer s;
    memset(&s, 0, sizeof s);
    s.sign = ct_mgr2_sign;
    otpca_p256_kid(ct.root_pub, s.kid);
    ct_client_config(&cfg, "mgr-02", s, ct.curve2_pub, ct.curve2_sec, 10000);
    cr_assert_eq(otpca_cloud_client_new(&cfg, &c), OTPCA_ERR_OK);
    otpca_memzero(cfg.secret_key, sizeof cfg.secret_key);
    return c;
}

/* The operator's TOTP now, computed in the operator token. */
static inline uint32_t ct_totp(time_t at)
{
    uint32_t code = 0;
    cr_assert_eq(otpca_token_totp(ct.op, ct.op_seed, OTPCA_OTP_SHA1, at, 30, 6, &code), OTPCA_ERR_OK);
    return code;
}

/* Opens a window (operator TOTP of the current step). */
static inline void ct_open(otpca_cloud_client *c, otpca_cloud_lease *l)
{
    otpca_err e = otpca_cloud_window_open(c, "otpca-op-01", ct_totp(time(NULL)), 3600, 0, NULL, 0, l);
    const char *detail = "";
    cr_assert_eq(e, OTPCA_ERR_OK, "window open: %s (%u %s)", otpca_strerror(e), otpca_cloud_client_error(c, &detail),
                 detail);
}

#endif
