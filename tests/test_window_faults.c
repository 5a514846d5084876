/*
 * Faults during an enrollment window, every part real: the cloud
 * (cloudtest.h), the ceremony, `otpca-manager window open` as a child
 * process, and nodes played by hand with rig node tokens (TOTP computed in
 * the token, requests signed by the device key) over ZeroMQ DEALERs. The
 * manager is killed with SIGKILL while requests are in flight and
 * restarted on the same journal: every certificate a node received is
 * journaled and reaches the cloud exactly once. Its token is pulled out
 * mid-window: it closes within a second and issues nothing after. A device
 * is locked after `lockout` failures signed by its key, while replays do
 * not count; a replayed request stays refused across a kill -9 and
 * restart; and every rejection reason the real binaries can be driven to
 * is logged precisely while the node hears only the generic error. The
 * last test checks that rejections the manager does not count (forgeries,
 * replays) are not counted by the cloud either and come back with no
 * count after a sync. Each test runs on a SoftHSM rig of its own, made in .init (each
 * Criterion test is a process of its own), because pulling a token out of
 * the rig ctest shares would break the tests beside it.
 */
#define _GNU_SOURCE /* memmem */
#include "cloudtest.h"

#include <dirent.h>
#include <pthread.h>

#include "otpca/proto/cose.h"

#define NODES 4
#define MGR "mgr-07"
#define MGR_TOKEN "otpca-mgr-01"
#define SOCKS_MAX 16
#define LOAD_MAX 32

/* The manager's rejection reasons (PROTOCOL.md 8.2), as its log names
 * them (manager/src/enroll.c). */
enum { R_WINDOW = 1, R_SKEW, R_REPLAY, R_UNKNOWN, R_REVOKED, R_LOCKED, R_KEY, R_TOTP, R_STEP, R_SIGNATURE };
static const char *const reason_text[] = {"accepted",
                                          "window closed or enrollment limit reached",
                                          "timestamp outside the allowed skew",
                                          "nonce replayed",
                                          "serial unknown or outside the lease's scope",
                                          "device revoked",
                                          "device locked",
                                          "public key or kid does not match the registry",
                                          "TOTP wrong",
                                          "TOTP time step already used",
                                          "signature invalid"};

typedef struct node {
    char serial[16];
    uint8_t mac[6];
    otpca_token_t *tok;
    otpca_obj_t key, seed;
    uint8_t pub[65];
} node;

/* What a node received in an EnrollResponse. */
typedef struct issued {
    char serial[16];
    uint8_t record[16];
    uint8_t cert[2048];
    size_t cert_len;
    int confirmed; /* a ConfirmAck came back for it */
} issued;

static char rig[64];
static node nodes[NODES];
static char mgr_conf[256], mgr_listen[256], mgr_db[256], mgr_log[256], mgr_out[256];
static pid_t mgr_pid = -1;
static void *zctx;
static void *socks[SOCKS_MAX];
static size_t nsocks;
static volatile int load_stop; /* tells the load thread (test 1) to stop at once */

static void faults_init(void);
static void faults_fini(void);

TestSuite(window_faults, .init = faults_init, .fini = faults_fini, .timeout = 60);

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------- rig, fixture */

/* A rig of this test's own, made before anything loads PKCS#11:
 * otpca_rig_create writes DIR/softhsm2.conf, points SOFTHSM2_CONF at it
 * and only then loads the module (SoftHSM reads the file at C_Initialize),
 * and unloads it when done, so that ct_setup can load it again (one owner
 * per process). The children (otpca-cloud, otpca-manager, otpca-token)
 * inherit both variables. */
static void faults_init(void)
{
    char conf[128];
    snprintf(rig, sizeof rig, "/tmp/otpca-faults-XXXXXX");
    cr_assert_not_null(mkdtemp(rig));
    snprintf(conf, sizeof conf, "%s/softhsm2.conf", rig);
    cr_assert_eq(setenv("SOFTHSM2_CONF", conf, 1), 0);
    otpca_err e = otpca_rig_create(rig, NULL, NODES, 1, NULL, NULL);
    cr_assert_eq(e, OTPCA_ERR_OK, "rig in %s: %s", rig, otpca_strerror(e));
    cr_assert_str_eq(getenv("SOFTHSM2_CONF"), conf);
    cr_assert_eq(setenv("OTPCA_TEST_RIG", rig, 1), 0); /* testrig_dir() */
    ct_setup();
    snprintf(mgr_db, sizeof mgr_db, "%s/manager.db", ct.dir);
    snprintf(mgr_log, sizeof mgr_log, "%s/manager.log", ct.dir);
    snprintf(mgr_out, sizeof mgr_out, "%s/manager.out", ct.dir);
}

static void faults_fini(void)
{
    load_stop = 1;
    if (mgr_pid > 0) {
        kill(mgr_pid, SIGKILL);
        waitpid(mgr_pid, NULL, 0);
        mgr_pid = -1;
    }
    for (size_t i = 0; i < nsocks; i++)
        zmq_close(socks[i]);
    nsocks = 0;
    if (zctx)
        zmq_ctx_term(zctx);
    zctx = NULL;
    for (int i = 0; i < NODES; i++)
        otpca_token_destroy(&nodes[i].tok);
    if (ct.dir[0])
        ct_teardown();
    if (rig[0] && !getenv("OTPCA_TEST_KEEP")) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", rig);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", rig);
    }
}

/* --------------------------------------------------------------- manager */

static void write_config(const char *extra);

/* Ceremony, registration at the cloud, the manager's configuration (as
 * test_window.c does). */
static void manager_setup(const char *extra)
{
    const char *r = testrig_dir();
    char path[512], kv[600], z85[64];
    cr_assert_eq(ct_sh("'%s/otpca-manager' ca init-root --key 'pkcs11:token=otpca-root;object=root-key?pin-source=file:"
                       "%s/pins/otpca-root.pin' --cn 'test root' --out '%s/root'",
                       ct_bin(), r, ct.dir),
                 0, "ca init-root");
    snprintf(path, sizeof path, "%s/certify.out", ct.dir);
    cr_assert_eq(ct_sh("'%s/otpca-manager' ca certify --root 'pkcs11:token=otpca-root;object=root-key?pin-source=file:"
                       "%s/pins/otpca-root.pin' --root-cert '%s/root.pem' --key 'pkcs11:token=" MGR_TOKEN
                       ";object=ca-key?pin-source=file:%s/pins/" MGR_TOKEN ".pin' --id " MGR " --out '%s/" MGR
                       "' >'%s'",
                       ct_bin(), r, ct.dir, r, ct.dir, path),
                 0, "ca certify");
    cr_assert_eq(ct_sh("sed -n \"s/.*--curve-key '\\(.\\{40\\}\\)'.*/curve = \\1/p\" '%s' >'%s.kv'", path, path), 0);
    snprintf(kv, sizeof kv, "%s.kv", path);
    cr_assert(ct_file_value(kv, "curve", z85, sizeof z85), "ca certify printed the CURVE key");
    cr_assert_eq(CT_CLOUD("manager add " MGR " --ca-cert '%s/" MGR ".pem' --curve-key '%s'", ct.dir, z85), 0);
    cr_assert_eq(CT_CLOUD("operator allow otpca-op-01 --manager " MGR), 0);
    write_config(extra);
}

static void write_config(const char *extra)
{
    const char *r = testrig_dir();
    char path[512], hex[131], zc[41];
    snprintf(path, sizeof path, "%s/netkey.hex", ct.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "00112233445566778899aabbccddeeff\n");
    fclose(f);
    zmq_z85_encode(zc, ct.cloud_curve, 32);
    for (size_t i = 0; i < 65; i++)
        snprintf(hex + 2 * i, 3, "%02x", ct.cloud_pub[i]);
    snprintf(mgr_conf, sizeof mgr_conf, "%s/manager.conf", ct.dir);
    f = fopen(mgr_conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "id = " MGR "\ntoken = pkcs11:token=" MGR_TOKEN "?pin-source=file:%s/pins/" MGR_TOKEN ".pin\n"
            "ca_cert = %s/" MGR ".pem\nstore = %s\ncloud = %s\ncloud_notices = %s\n"
            "cloud_curve_key = %s\ncloud_sign_key = %s\nlisten = tcp://127.0.0.1:*\noperator = otpca-op-01\n"
            "operator_token = pkcs11:token=otpca-op-01;object=op-totp?pin-source=file:%s/pins/otpca-op-01.pin\n"
            "netkey_file = %s/netkey.hex\nwindow_seconds = 600\nworkers = 2\n%s",
            r, ct.dir, mgr_db, ct.listen, ct.notices, zc, hex, r, ct.dir, extra ? extra : "");
    fclose(f);
}

/* `otpca-manager window open` (as ct_spawn, plus stdin): the operator's
 * code from the operator token, or, if totp >= 0, typed on stdin
 * (--totp-stdin). Waits for its "serving" line. */
static void manager_start(int64_t totp)
{
    char exe[512], code_path[256], line[600];
    char *argv[] = {exe, "window", "open", "--config", mgr_conf, totp >= 0 ? "--totp-stdin" : NULL, NULL};
    snprintf(exe, sizeof exe, "%s/otpca-manager", ct_bin());
    snprintf(code_path, sizeof code_path, "%s/operator.code", ct.dir);
    if (totp >= 0) {
        FILE *f = fopen(code_path, "w");
        cr_assert_not_null(f);
        fprintf(f, "%06u\n", (unsigned)totp);
        fclose(f);
    }
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int lf = open(mgr_log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int in = open(totp >= 0 ? code_path : "/dev/null", O_RDONLY);
        dup2(fds[1], 1);
        if (lf >= 0)
            dup2(lf, 2);
        if (in >= 0)
            dup2(in, 0);
        close(fds[0]);
        execv(exe, argv);
        _exit(127);
    }
    close(fds[1]);
    mgr_pid = pid;
    size_t used = 0;
    struct pollfd p = {fds[0], POLLIN, 0};
    line[0] = '\0';
    while (used < sizeof line - 1 && !strchr(line, '\n') && poll(&p, 1, 30000) == 1) {
        ssize_t n = read(fds[0], line + used, sizeof line - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        line[used] = '\0';
    }
    /* The rest (the summary) into manager.out, by a child that ends when
     * the manager does. */
    if (fork() == 0) {
        int of = open(mgr_out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        char buf[4096];
        ssize_t n;
        while (of >= 0 && (n = read(fds[0], buf, sizeof buf)) > 0)
            if (write(of, buf, (size_t)n) != n)
                break;
        _exit(0);
    }
    close(fds[0]);
    cr_assert(sscanf(line, "serving %255s", mgr_listen) == 1, "manager did not open a window: '%s' (see %s)", line,
              mgr_log);
}

/* SIGTERM (what `window close` sends) and wait: the exit status. */
static int manager_close(void)
{
    kill(mgr_pid, SIGTERM);
    int rc = ct_wait_exit(mgr_pid, 30000);
    mgr_pid = -1;
    return rc;
}

/* How many lines of the file hold text. */
static int file_count(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    fclose(f);
    return n;
}

/* Polls (up to ms) until at least n lines of the file hold text; the
 * count then. */
static int file_wait(const char *path, const char *text, int n, int ms)
{
    uint64_t until = mono_ms() + (uint64_t)ms;
    int c = file_count(path, text);
    while (c < n && mono_ms() < until) {
        usleep(20000);
        c = file_count(path, text);
    }
    return c;
}

/* How often the manager logged that the enrollment of serial was
 * rejected for reason (reason_text), polling up to 2 s for at
 * least n. */
static int rejected_logged(const char *serial, int reason, int n)
{
    char text[256];
    snprintf(text, sizeof text, "enrollment of %s rejected: %s", serial, reason_text[reason]);
    return file_wait(mgr_log, text, n, 2000);
}

/* --------------------------------------------------------------- stores */

/* sql's first column of its first row as an integer (-1: no row), with ?1
 * bound to text or blob if given; the store opened read-only. */
static int64_t db_int(const char *path, const char *sql, const char *text, const void *blob, size_t blob_len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "open %s", path);
    sqlite3_busy_timeout(db, 10000);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    else if (blob)
        sqlite3_bind_blob(st, 1, blob, (int)blob_len, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: sqlite error %d", sql, rc);
    return v;
}

/* sql's first column of its first row as bytes, ?1 bound to key: the
 * length (SIZE_MAX: no row). */
static size_t db_blob(const char *path, const char *sql, const void *key, size_t key_len, uint8_t *out, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    size_t n = SIZE_MAX;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "open %s", path);
    sqlite3_busy_timeout(db, 10000);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_bind_blob(st, 1, key, (int)key_len, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        n = (size_t)sqlite3_column_bytes(st, 0);
        if (n <= cap && n)
            memcpy(out, sqlite3_column_blob(st, 0), n);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* ----------------------------------------------------------------- nodes */

static otpca_err node_sign(void *ctx, const uint8_t d[32], uint8_t sig[64])
{
    node *n = ctx;
    size_t len = 64;
    return otpca_token_sign_digest(n->tok, n->key, d, 32, OTPCA_SIG_RAW, sig, &len);
}

static void nodes_open(void)
{
    for (unsigned i = 0; i < NODES; i++) {
        node *n = &nodes[i];
        snprintf(n->serial, sizeof n->serial, OTPCA_RIG_NODE_FMT, i + 1);
        uint8_t mac[6] = {2, 0, 0, 0, 0, (uint8_t)(i + 1)}; /* as the rig's manifest */
        memcpy(n->mac, mac, 6);
        n->tok = testrig_open(ct.p11, n->serial);
        cr_assert_eq(otpca_token_find(n->tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_DEVICE_KEY, NULL, 0, &n->key), 0);
        cr_assert_eq(otpca_token_find(n->tok, OTPCA_OBJ_SECRET_KEY, OTPCA_RIG_DEVICE_SEED, NULL, 0, &n->seed), 0);
        cr_assert_eq(otpca_token_pubkey_sec1(n->tok, n->key, n->pub), 0);
    }
}

static uint64_t step_now(void)
{
    return (uint64_t)time(NULL) / 30;
}

/* The node's TOTP for a time step, computed in its token (no assertion:
 * the load thread uses it). */
static int totp_at(node *n, uint64_t step, uint32_t *code)
{
    return otpca_token_totp(n->tok, n->seed, OTPCA_OTP_SHA1, (time_t)(step * 30), 30, 6, code) ? -1 : 0;
}

static uint32_t totp(node *n, uint64_t step)
{
    uint32_t code = 0;
    cr_assert_eq(totp_at(n, step, &code), 0);
    return code;
}

/* A code that is none of the node's codes around now. */
static uint32_t wrong_totp(node *n)
{
    uint64_t s = step_now();
    uint32_t near[4] = {totp(n, s - 1), totp(n, s), totp(n, s + 1), totp(n, s + 2)};
    uint32_t c = (near[1] + 500000) % 1000000;
    for (int tries = 0; tries < 8 && (c == near[0] || c == near[1] || c == near[2] || c == near[3]); tries++)
        c = (c + 1) % 1000000;
    return c;
}

/* An EnrollRequest naming serial, carrying the device key of k and signed
 * by it, with code and the time now + dt: its length, 0 if it could not
 * be made (no assertion: the load thread uses it); its nonce in nonce. */
/* An EnrollRequest with the given nonce (enroll_req: a fresh one). */
static size_t enroll_req_nonce(node *k, const char *serial, uint32_t code, int64_t dt, uint8_t *out, size_t cap,
                               const uint8_t nonce[16])
{
    size_t len = 0;
    otpca_enroll_request m;
    memset(&m, 0, sizeof m);
    m.nonce = (otpca_buf){nonce, 16};
    m.time = (uint64_t)((int64_t)time(NULL) + dt);
    m.serial = (otpca_buf){(const uint8_t *)serial, strlen(serial)};
    m.mac = (otpca_buf){k->mac, 6};
    m.pubkey = (otpca_buf){k->pub, 65};
    m.totp = code;
    m.fw = (otpca_buf){(const uint8_t *)"fw-1", 4};
    otpca_signer s = {node_sign, k, {0}};
    otpca_p256_kid(k->pub, s.kid);
    return otpca_msg_sign(&otpca_desc_enroll_request, &m, &s, (otpca_buf){NULL, 0}, out, cap, &len) ? 0 : len;
}

static size_t enroll_req(node *k, const char *serial, uint32_t code, int64_t dt, uint8_t *out, size_t cap,
                         uint8_t nonce[16])
{
    if (otpca_random(nonce, 16) != OTPCA_ERR_OK)
        return 0;
    return enroll_req_nonce(k, serial, code, dt, out, cap, nonce);
}

/* An EnrollConfirm for what the node received; 0 if it could not be made. */
static size_t confirm_req(node *n, const issued *is, uint8_t *out, size_t cap, uint8_t nonce[16])
{
    uint8_t hash[32];
    size_t len = 0;
    if (otpca_random(nonce, 16) != OTPCA_ERR_OK)
        return 0;
    otpca_sha256(is->cert, is->cert_len, hash);
    otpca_enroll_confirm m = {.nonce = {nonce, 16}, .record = {is->record, 16}, .time = (uint64_t)time(NULL),
                              .cert_hash = {hash, 32}};
    otpca_signer s = {node_sign, n, {0}};
    otpca_p256_kid(n->pub, s.kid);
    return otpca_msg_sign(&otpca_desc_enroll_confirm, &m, &s, (otpca_buf){NULL, 0}, out, cap, &len) ? 0 : len;
}

/* An EnrollResponse to nonce, signed by the manager's key: 0 and what it
 * carries in out; -1 if ans is anything else. */
static int take_response(const uint8_t *ans, size_t n, const uint8_t nonce[16], issued *out)
{
    otpca_cose_sign1 c;
    otpca_enroll_response r;
    if (!n || otpca_cose_sign1_decode(ans, n, &c) != OTPCA_ERR_OK ||
        otpca_cose_sign1_verify(&c, ct.mgr_pub, 65) != OTPCA_ERR_OK ||
        otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r) != OTPCA_ERR_OK ||
        r.nonce.len != 16 || memcmp(r.nonce.p, nonce, 16) != 0 || r.record.len != 16 || !r.cert.p ||
        r.cert.len > sizeof out->cert)
        return -1;
    memcpy(out->record, r.record.p, 16);
    memcpy(out->cert, r.cert.p, r.cert.len);
    out->cert_len = r.cert.len;
    return 0;
}

/* A ConfirmAck to nonce for record, signed by the manager: 0, else -1. */
static int take_ack(const uint8_t *ans, size_t n, const uint8_t nonce[16], const uint8_t record[16])
{
    otpca_cose_sign1 c;
    otpca_confirm_ack a;
    if (!n || otpca_cose_sign1_decode(ans, n, &c) != OTPCA_ERR_OK ||
        otpca_cose_sign1_verify(&c, ct.mgr_pub, 65) != OTPCA_ERR_OK ||
        otpca_msg_decode(&otpca_desc_confirm_ack, c.payload.p, c.payload.len, &a) != OTPCA_ERR_OK ||
        a.nonce.len != 16 || memcmp(a.nonce.p, nonce, 16) != 0 || a.record.len != 16 ||
        memcmp(a.record.p, record, 16) != 0)
        return -1;
    return 0;
}

static void *node_socket(void)
{
    int linger = 0;
    if (!zctx)
        zctx = zmq_ctx_new();
    cr_assert_not_null(zctx);
    cr_assert_lt(nsocks, SOCKS_MAX);
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    cr_assert_not_null(s);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_connect(s, mgr_listen), 0);
    socks[nsocks++] = s;
    return s;
}

/* Waits up to ms for one message: its length, 0 if none came. */
static size_t recv_within(void *sock, uint8_t *ans, size_t cap, int ms)
{
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) != 1)
        return 0;
    int n = zmq_recv(sock, ans, cap, ZMQ_DONTWAIT);
    return n > 0 && (size_t)n <= cap ? (size_t)n : 0;
}

static size_t call(void *sock, const uint8_t *req, size_t len, uint8_t *ans, size_t cap, int ms)
{
    cr_assert_eq(zmq_send(sock, req, len, 0), (int)len);
    return recv_within(sock, ans, cap, ms);
}

/* The answer to req must be an Error with code, echoing nonce (or none if
 * nonce is NULL) and without detail (a node never hears why). */
static void expect_error(void *sock, const uint8_t *req, size_t len, unsigned code, const uint8_t *nonce,
                         const char *what)
{
    static uint8_t ans[4096];
    otpca_error_msg e;
    size_t n = call(sock, req, len, ans, sizeof ans, 10000);
    cr_assert_gt(n, 0, "%s: the manager answers within 10 s", what);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_error, ans, n, &e), 0, "%s: the answer is an Error", what);
    cr_expect_eq(e.code, code, "%s: Error %u expected, got %u", what, code, (unsigned)e.code);
    cr_expect_null(e.detail.p, "%s: no detail for a node", what);
    if (nonce)
        cr_expect(e.nonce.p && e.nonce.len == 16 && !memcmp(e.nonce.p, nonce, 16), "%s: the nonce echoed", what);
    else
        cr_expect_null(e.nonce.p, "%s: no nonce", what);
}

/* n enrolls with its code for step (and confirms if asked). */
static void enroll(void *sock, node *n, uint64_t step, int confirm, issued *out)
{
    static uint8_t req[2048], ans[4096];
    uint8_t nonce[16];
    size_t len = enroll_req(n, n->serial, totp(n, step), 0, req, sizeof req, nonce);
    cr_assert_gt(len, 0);
    size_t got = call(sock, req, len, ans, sizeof ans, 10000);
    cr_assert_eq(take_response(ans, got, nonce, out), 0, "%s: an EnrollResponse (see %s)", n->serial, mgr_log);
    snprintf(out->serial, sizeof out->serial, "%s", n->serial);
    if (confirm) {
        len = confirm_req(n, out, req, sizeof req, nonce);
        cr_assert_gt(len, 0);
        got = call(sock, req, len, ans, sizeof ans, 10000);
        cr_assert_eq(take_ack(ans, got, nonce, out->record), 0, "%s: a ConfirmAck", n->serial);
        out->confirmed = 1;
    }
}

/* ------------------------------------------------ 1. kill -9 and restart */

/* The load: the four nodes enroll and confirm over and over (each with
 * its own DEALER, one request outstanding per node, so up to four in
 * flight), each time on the next TOTP step the manager still accepts
 * (now - 1 .. now + 1), until they run out of steps, the manager dies or
 * 30 s pass. Every EnrollResponse and ConfirmAck is kept. */
static struct load {
    pthread_mutex_t mu;
    volatile int dead; /* the manager was killed: take what is on its way, then stop */
    int sent, outstanding, answers, acks, broken;
    issued got[LOAD_MAX];
    int ngot;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *load_main(void *arg)
{
    (void)arg;
    void *s[NODES];
    struct {
        int waiting, confirming, done, cur;
        uint64_t step, next_step;
        uint8_t nonce[16];
    } st[NODES];
    static uint8_t req[2048], ans[4096];
    int linger = 0;
    memset(st, 0, sizeof st);
    for (int i = 0; i < NODES; i++) {
        s[i] = zmq_socket(zctx, ZMQ_DEALER);
        zmq_setsockopt(s[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_connect(s[i], mgr_listen);
        st[i].next_step = step_now() - 1;
    }
    uint64_t start = mono_ms(), dead_at = 0;
    for (int round = 0; round < 1000000 && !load_stop; round++) {
        uint64_t t = mono_ms();
        if (t - start > 30000 || (dead_at && t - dead_at > 500))
            break;
        if (L.dead && !dead_at)
            dead_at = t;
        int busy = 0;
        for (int i = 0; i < NODES; i++) {
            if (!dead_at && !st[i].waiting && !st[i].done) {
                size_t len = 0;
                if (st[i].confirming) {
                    len = confirm_req(&nodes[i], &L.got[st[i].cur], req, sizeof req, st[i].nonce);
                } else {
                    uint64_t now = step_now();
                    uint32_t code = 0;
                    st[i].step = st[i].next_step > now - 1 ? st[i].next_step : now - 1;
                    if (st[i].step > now + 1 || L.ngot >= LOAD_MAX) {
                        st[i].done = 1;
                        continue;
                    }
                    if (totp_at(&nodes[i], st[i].step, &code) == 0)
                        len = enroll_req(&nodes[i], nodes[i].serial, code, 0, req, sizeof req, st[i].nonce);
                }
                pthread_mutex_lock(&L.mu);
                if (len && zmq_send(s[i], req, len, 0) == (int)len) {
                    st[i].waiting = 1;
                    L.sent++;
                    L.outstanding++;
                } else {
                    st[i].done = 1;
                    L.broken++;
                }
                pthread_mutex_unlock(&L.mu);
            }
            busy += st[i].waiting || !st[i].done;
        }
        if (!busy)
            break;
        zmq_pollitem_t it[NODES];
        for (int i = 0; i < NODES; i++)
            it[i] = (zmq_pollitem_t){s[i], 0, ZMQ_POLLIN, 0};
        if (zmq_poll(it, NODES, 50) <= 0)
            continue;
        for (int i = 0; i < NODES; i++) {
            if (!(it[i].revents & ZMQ_POLLIN))
                continue;
            int n = zmq_recv(s[i], ans, sizeof ans, ZMQ_DONTWAIT);
            if (n <= 0 || !st[i].waiting)
                continue;
            pthread_mutex_lock(&L.mu);
            L.outstanding--;
            L.answers++;
            st[i].waiting = 0;
            if (st[i].confirming) {
                if (take_ack(ans, (size_t)n, st[i].nonce, L.got[st[i].cur].record) == 0) {
                    L.got[st[i].cur].confirmed = 1;
                    L.acks++;
                }
                st[i].confirming = 0;
            } else {
                issued *g = &L.got[L.ngot];
                if (L.ngot < LOAD_MAX && take_response(ans, (size_t)n, st[i].nonce, g) == 0) {
                    memcpy(g->serial, nodes[i].serial, sizeof g->serial);
                    st[i].cur = L.ngot++;
                    st[i].confirming = 1;
                }
                st[i].next_step = st[i].step + 1; /* an Error (a step taken): the next one */
            }
            pthread_mutex_unlock(&L.mu);
        }
    }
    for (int i = 0; i < NODES; i++)
        zmq_close(s[i]);
    return NULL;
}

Test(window_faults, kill9_mid_window_then_restart_every_received_certificate_reaches_the_cloud_once)
{
    manager_setup(NULL);
    manager_start(-1);
    nodes_open();
    if (!zctx)
        zctx = zmq_ctx_new();
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, load_main, NULL), 0);

    /* Kill -9 once a handful of certificates came back, at a moment when
     * requests are in flight (sent, not answered) and the nodes go on
     * sending. */
    int have = 0, in_flight = -1;
    uint64_t until = mono_ms() + 20000;
    while (mono_ms() < until) {
        pthread_mutex_lock(&L.mu);
        have = L.ngot;
        if (have >= 5 && L.outstanding >= 1) {
            in_flight = L.outstanding;
            kill(mgr_pid, SIGKILL);
        }
        pthread_mutex_unlock(&L.mu);
        if (in_flight >= 0)
            break;
        usleep(1000);
    }
    cr_assert_geq(in_flight, 1, "the nodes got only %d certificates in 20 s (see %s)", have, mgr_log);
    int status = 0;
    cr_assert_eq(waitpid(mgr_pid, &status, 0), mgr_pid);
    mgr_pid = -1;
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    L.dead = 1;
    pthread_join(th, NULL);
    cr_assert_eq(L.broken, 0, "the load thread could make and send every request");
    fprintf(stderr, "kill -9: %d requests sent, %d answered, %d certificates, %d confirmed; %d in flight at the kill\n",
            L.sent, L.answers, L.ngot, L.acks, in_flight);

    /* Journal before response: what a node received survived the kill. */
    for (int i = 0; i < L.ngot; i++)
        cr_expect_eq(db_int(mgr_db, "SELECT count(*) FROM records WHERE id = ?1 AND kind = 1", NULL, L.got[i].record, 16),
                     1, "%s's certificate %d is in the journal after kill -9", L.got[i].serial, i);

    /* Restart on the same journal: a new lease needs a new operator code
     * (the cloud takes a step once), typed for the next step. */
    manager_start(ct_totp(time(NULL) + 30));
    cr_assert_eq(manager_close(), 0, "the restarted window closes with exit 0 (see %s)", mgr_log);
    cr_expect_eq(file_wait(mgr_out, "window closed (signal)", 1, 5000), 1, "the summary");
    cr_expect_eq(file_count(mgr_out, " 0 pending"), 1, "every record uploaded (see %s)", mgr_out);

    static uint8_t cert[4096];
    for (int i = 0; i < L.ngot; i++) {
        const issued *g = &L.got[i];
        cr_expect_eq(db_int(mgr_db, "SELECT count(*) FROM records WHERE id = ?1", NULL, g->record, 16), 1);
        size_t n = db_blob(mgr_db, "SELECT cert FROM records WHERE id = ?1", g->record, 16, cert, sizeof cert);
        cr_expect(n == g->cert_len && !memcmp(cert, g->cert, n), "%s: the journal has the certificate %d it got",
                  g->serial, i);
        cr_expect_eq(db_int(mgr_db, "SELECT uploaded FROM records WHERE id = ?1", NULL, g->record, 16), 1);
        cr_expect_eq(db_int(ct.db, "SELECT count(*) FROM records WHERE id = ?1", NULL, g->record, 16), 1,
                     "%s: certificate %d at the cloud exactly once", g->serial, i);
        n = db_blob(ct.db, "SELECT cert FROM records WHERE id = ?1 AND kind = 1", g->record, 16, cert, sizeof cert);
        cr_expect(n == g->cert_len && !memcmp(cert, g->cert, n), "%s: the cloud has the certificate %d it got",
                  g->serial, i);
        if (g->confirmed)
            cr_expect_eq(db_int(ct.db, "SELECT state FROM devices WHERE serial = ?1", g->serial, NULL, 0), 2,
                         "%s got a ConfirmAck: enrolled at the cloud", g->serial);
    }
    cr_expect_eq(db_int(mgr_db, "SELECT count(*) FROM records WHERE uploaded = 0", NULL, NULL, 0), 0);
    cr_expect_eq(db_int(ct.db, "SELECT count(*) FROM records", NULL, NULL, 0),
                 db_int(mgr_db, "SELECT count(*) FROM records", NULL, NULL, 0),
                 "the cloud holds each journaled record once");
    for (int i = 0; i < NODES; i++)
        if (db_int(ct.db, "SELECT state FROM devices WHERE serial = ?1", nodes[i].serial, NULL, 0) == 2)
            cr_expect_geq(db_int(ct.db, "SELECT count(*) FROM records WHERE serial = ?1 AND kind = 2", nodes[i].serial,
                                 NULL, 0),
                          1, "%s enrolled at the cloud only with its CONFIRMED record", nodes[i].serial);
}

/* ---------------------------------------------------- 2. token removed */

/* The directory of the SoftHSM token labelled label (file backend), as
 * tests/test_token.c finds it. */
static int token_dir(const char *label, char *out, size_t cap)
{
    char tokens[512];
    snprintf(tokens, sizeof tokens, "%s/tokens", rig);
    DIR *d = opendir(tokens);
    struct dirent *e;
    int found = -1;
    if (!d)
        return -1;
    while (found < 0 && (e = readdir(d))) {
        char path[1024], buf[4096];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/token.object", tokens, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (memmem(buf, n, label, strlen(label))) {
            snprintf(out, cap, "%s/%s", tokens, e->d_name);
            found = 0;
        }
    }
    closedir(d);
    return found;
}

/* Removes a token's directory (files only, as SoftHSM writes them) in
 * this process, so that the time measured is the manager's. */
static int remove_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int ok = d != NULL;
    while (ok && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            ok = unlinkat(dirfd(d), e->d_name, 0) == 0;
    if (d)
        closedir(d);
    return ok && rmdir(path) == 0 ? 0 : -1;
}

Test(window_faults, token_removed_mid_window_closes_within_a_second_and_issues_nothing_after)
{
    manager_setup(NULL);
    manager_start(-1);
    nodes_open();
    void *sock = node_socket();
    issued first;
    memset(&first, 0, sizeof first);
    enroll(sock, &nodes[0], step_now(), 1, &first);

    char dir[1200];
    cr_assert_eq(token_dir(MGR_TOKEN, dir, sizeof dir), 0, "the manager token's directory in %s/tokens", rig);
    static uint8_t req[2048], ans[4096];
    uint8_t nonce[16];
    size_t len = enroll_req(&nodes[1], nodes[1].serial, totp(&nodes[1], step_now()), 0, req, sizeof req, nonce);
    cr_assert_gt(len, 0);

    uint64_t t0 = mono_ms();
    cr_assert_eq(remove_dir(dir), 0, "remove %s", dir);
    /* A node asks right after the token went. */
    cr_assert_eq(zmq_send(sock, req, len, 0), (int)len);
    size_t got = 0;
    int status = 0, exited = 0;
    uint64_t t_exit = 0, until = t0 + 5000;
    for (uint64_t t = mono_ms(); t < until && !(exited && (got || t > t_exit + 300)); t = mono_ms()) {
        if (!got)
            got = recv_within(sock, ans, sizeof ans, 10);
        else
            usleep(10000);
        if (!exited && waitpid(mgr_pid, &status, WNOHANG) == mgr_pid) {
            exited = 1;
            t_exit = mono_ms();
        }
    }
    cr_assert(exited, "the manager still runs 5 s after its token was removed");
    mgr_pid = -1;
    uint64_t took = t_exit - t0;
    otpca_error_msg e;
    int is_error = got && otpca_msg_decode(&otpca_desc_error, ans, got, &e) == OTPCA_ERR_OK;
    fprintf(stderr, "token removal -> manager exit: %llu ms; the request sent after it: %s %u\n",
            (unsigned long long)took, !got ? "no answer" : is_error ? "Error" : "answer", is_error ? (unsigned)e.code : 0);
    cr_expect_leq(took, 2000, "the manager exits within 2 s of the removal (took %llu ms)", (unsigned long long)took);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit 0 (status 0x%x; see %s)", status, mgr_log);
    cr_expect_eq(file_wait(mgr_out, "window closed (token removed): 1 issued, 1 confirmed", 1, 5000), 1,
                 "the summary says the token removal closed it (see %s)", mgr_out);

    issued late;
    cr_expect_neq(take_response(ans, got, nonce, &late), 0, "no certificate after the token was removed");
    if (got)
        cr_expect(is_error, "an answer after the removal is an Error");
    cr_expect_eq(db_int(mgr_db, "SELECT count(*) FROM records WHERE kind = 1", NULL, NULL, 0), 1,
                 "the journal has the one issuance before the removal, none after");
    cr_expect_eq(db_int(mgr_db, "SELECT count(*) FROM records WHERE serial = ?1 AND kind = 1", nodes[1].serial, NULL, 0),
                 0);
}

/* ------------------------------------------------------------ 3. lockout */

Test(window_faults, lockout_after_n_signed_failures_and_a_replay_does_not_count)
{
    static uint8_t req[2048], bad1[2048];
    uint8_t nonce[16], nonce1[16];
    manager_setup("lockout = 3\n");
    manager_start(-1);
    nodes_open();
    void *sock = node_socket();
    node *a = &nodes[0], *b = &nodes[1];

    /* a: wrong codes in requests its key signs. */
    for (int i = 1; i <= 3; i++) {
        size_t len = enroll_req(a, a->serial, wrong_totp(a), 0, req, sizeof req, nonce);
        cr_assert_gt(len, 0);
        expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "a wrong code");
        cr_expect_eq(rejected_logged(a->serial, R_TOTP, i), i);
        int64_t locked = db_int(mgr_db, "SELECT count(*) FROM records WHERE serial = ?1 AND kind = 6", a->serial, NULL, 0);
        cr_expect_eq(locked, i == 3, "after %d signed failures: %s", i, i == 3 ? "locked" : "not locked yet");
        cr_expect_eq(db_int(mgr_db, "SELECT state FROM devices WHERE serial = ?1", a->serial, NULL, 0), i == 3 ? 4 : 1);
    }
    cr_expect_eq(file_wait(mgr_log, "] node-000001 locked after 3 failures", 1, 2000), 1);
    /* Locked: the right code is refused too. */
    size_t len = enroll_req(a, a->serial, totp(a, step_now()), 0, req, sizeof req, nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "the right code, locked");
    cr_expect_eq(rejected_logged(a->serial, R_LOCKED, 1), 1, "the log names the lock");

    /* b: two signed failures, then one of them replayed (the same bytes)
     * three times: replays, which do not count. */
    size_t len1 = enroll_req(b, b->serial, wrong_totp(b), 0, bad1, sizeof bad1, nonce1);
    expect_error(sock, bad1, len1, OTPCA_WIRE_AUTH_FAILED, nonce1, "b: a wrong code");
    len = enroll_req(b, b->serial, wrong_totp(b), 0, req, sizeof req, nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "b: a second wrong code");
    for (int i = 1; i <= 3; i++) {
        expect_error(sock, bad1, len1, OTPCA_WIRE_AUTH_FAILED, nonce1, "b: a replay");
        cr_expect_eq(rejected_logged(b->serial, R_REPLAY, i), i, "the log names replay %d", i);
    }
    cr_expect_eq(rejected_logged(b->serial, R_TOTP, 2), 2);
    cr_expect_eq(db_int(mgr_db, "SELECT failures FROM devices WHERE serial = ?1", b->serial, NULL, 0), 2,
                 "only the two signed failures count");
    cr_expect_eq(db_int(mgr_db, "SELECT state FROM devices WHERE serial = ?1", b->serial, NULL, 0), 1, "b not locked");
    issued ok;
    memset(&ok, 0, sizeof ok);
    enroll(sock, b, step_now(), 1, &ok); /* and it enrolls */

    cr_assert_eq(manager_close(), 0);
    cr_expect_eq(file_wait(mgr_out, " 0 pending", 1, 5000), 1, "every record uploaded (see %s)", mgr_out);
    cr_expect_eq(ct_sh("'%s/otpca-cloud' --config '%s' device show %s | grep -q '^state *locked'", ct_bin(), ct.conf,
                       a->serial),
                 0, "the cloud has the device locked");
    cr_expect_eq(db_int(ct.db, "SELECT state FROM devices WHERE serial = ?1", b->serial, NULL, 0), 2,
                 "b enrolled at the cloud");
}

/* -------------------------------------------- 4. replay after a restart */

Test(window_faults, replayed_request_after_a_restart_is_refused)
{
    static uint8_t good[2048], bad[2048], ans[4096];
    uint8_t nonce[16], bad_nonce[16];
    manager_setup(NULL);
    manager_start(-1);
    nodes_open();
    void *sock = node_socket();
    node *a = &nodes[0];

    size_t len = enroll_req(a, a->serial, totp(a, step_now()), 0, good, sizeof good, nonce);
    size_t got = call(sock, good, len, ans, sizeof ans, 10000);
    issued is;
    cr_assert_eq(take_response(ans, got, nonce, &is), 0, "an EnrollResponse (see %s)", mgr_log);
    /* A rejected request's nonce is kept as well (it went with the
     * rejection's group). */
    size_t bad_len = enroll_req(&nodes[1], nodes[1].serial, wrong_totp(&nodes[1]), 0, bad, sizeof bad, bad_nonce);
    expect_error(sock, bad, bad_len, OTPCA_WIRE_AUTH_FAILED, bad_nonce, "a wrong code");

    kill(mgr_pid, SIGKILL);
    cr_assert_eq(ct_wait_exit(mgr_pid, 10000), 128 + SIGKILL);
    mgr_pid = -1;
    cr_assert_eq(file_count(mgr_log, "nonce replayed"), 0);
    manager_start(ct_totp(time(NULL) + 30));
    void *sock2 = node_socket();
    expect_error(sock2, good, len, OTPCA_WIRE_AUTH_FAILED, nonce, "the answered request again");
    cr_expect_eq(rejected_logged(a->serial, R_REPLAY, 1), 1, "refused as a replay (see %s)", mgr_log);
    expect_error(sock2, bad, bad_len, OTPCA_WIRE_AUTH_FAILED, bad_nonce, "the rejected request again");
    cr_expect_eq(rejected_logged(nodes[1].serial, R_REPLAY, 1), 1, "refused as a replay (see %s)", mgr_log);
    cr_expect_eq(file_count(mgr_log, "TOTP time step already used"), 0, "not a mere reused step");
    cr_assert_eq(manager_close(), 0);
}

/* ------------------------------------------------ 5. rejection reasons */

/* Each reason the real binaries can be driven to. The "window closed"
 * reason: the lease allows 2 enrollments (max_enroll = 2); after one,
 * node-000004 sends two requests for the same step at once from two
 * DEALERs: one is issued (the last place) and the other finds the limit
 * reached whichever order the workers take them in (the window check
 * comes first, and a place is reserved before issuing). A closed socket
 * could not be tested: once closed, the window stops reading requests. */
Test(window_faults, each_rejection_reason_is_logged_and_the_node_hears_the_generic_error)
{
    static uint8_t req[2048], first[2048], ans[4096];
    uint8_t nonce[16], first_nonce[16];
    size_t len;
    manager_setup("max_enroll = 2\n");
    cr_assert_eq(CT_CLOUD("device revoke node-000003 --reason 1"), 0);
    manager_start(-1);
    nodes_open();
    void *sock = node_socket();
    node *a = &nodes[0], *b = &nodes[1], *revoked = &nodes[2], *d = &nodes[3];
    uint64_t s = step_now();

    len = enroll_req(a, a->serial, wrong_totp(a), 0, req, sizeof req, nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "bad OTP");
    cr_expect_eq(rejected_logged(a->serial, R_TOTP, 1), 1);

    len = enroll_req(a, a->serial, totp(a, s), 600, req, sizeof req, nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "time +10 minutes");
    cr_expect_eq(rejected_logged(a->serial, R_SKEW, 1), 1);

    len = enroll_req(b, a->serial, totp(a, s), 0, req, sizeof req, nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "another node's key");
    cr_expect_eq(rejected_logged(a->serial, R_KEY, 1), 1);

    len = enroll_req(a, "node-999999", totp(a, s), 0, req, sizeof req, nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "unknown serial");
    cr_expect_eq(rejected_logged("node-999999", R_UNKNOWN, 1), 1);

    len = enroll_req(a, a->serial, totp(a, s), 0, req, sizeof req, nonce);
    req[len - 1] ^= 0x01; /* the signature's last byte */
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "bad signature");
    cr_expect_eq(rejected_logged(a->serial, R_SIGNATURE, 1), 1);

    len = enroll_req(revoked, revoked->serial, totp(revoked, s), 0, req, sizeof req, nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "revoked");
    cr_expect_eq(rejected_logged(revoked->serial, R_REVOKED, 1), 1);

    /* Accepted; then the same step with a fresh nonce; then the same bytes. */
    size_t first_len = enroll_req(a, a->serial, totp(a, s), 0, first, sizeof first, first_nonce);
    issued is;
    size_t first_ans = call(sock, first, first_len, ans, sizeof ans, 10000);
    cr_assert_eq(take_response(ans, first_ans, first_nonce, &is), 0, "an EnrollResponse (see %s)", mgr_log);
    len = enroll_req(a, a->serial, totp(a, s), 0, req, sizeof req, nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "reused OTP step");
    cr_expect_eq(rejected_logged(a->serial, R_STEP, 1), 1);
    /* The same bytes again: the same answer again (PROTOCOL.md 6.8), no
     * second certificate; the same nonce with other content: a replay. */
    static uint8_t again[4096];
    size_t again_len = call(sock, first, first_len, again, sizeof again, 10000);
    cr_expect(again_len == first_ans && !memcmp(again, ans, first_ans), "a repeated request gets the same answer");
    len = enroll_req_nonce(a, a->serial, totp(a, s), 0, req, sizeof req, first_nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, first_nonce, "replayed nonce");
    cr_expect_eq(rejected_logged(a->serial, R_REPLAY, 1), 1);

    /* A request of type 3 that does not decode: BAD_REQUEST, no nonce. */
    static const uint8_t bare[] = {0xa1, 0x00, 0x03}; /* {0: 3} */
    otpca_signer sg = {node_sign, a, {0}};
    otpca_p256_kid(a->pub, sg.kid);
    cr_assert_eq(otpca_cose_sign1_encode(&sg, (otpca_buf){NULL, 0}, bare, sizeof bare, req, sizeof req, &len), 0);
    expect_error(sock, req, len, OTPCA_WIRE_BAD_REQUEST, NULL, "malformed");
    cr_expect_eq(file_wait(mgr_log, "node request rejected: message malformed", 1, 2000), 1);

    /* A confirmation of a record the manager never issued. */
    issued fake = is;
    fake.record[0] ^= 0xff;
    len = confirm_req(a, &fake, req, sizeof req, nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "unknown record");
    cr_expect_eq(file_wait(mgr_log, "confirmation rejected: certificate hash unknown or superseded", 1, 2000), 1);

    /* The enrollment limit: two requests at once for the last place. */
    void *s1 = node_socket(), *s2 = node_socket();
    static uint8_t r1[2048], r2[2048], a1[4096], a2[4096];
    uint8_t n1[16], n2[16];
    uint32_t code = totp(d, step_now());
    size_t l1 = enroll_req(d, d->serial, code, 0, r1, sizeof r1, n1);
    size_t l2 = enroll_req(d, d->serial, code, 0, r2, sizeof r2, n2);
    cr_assert_eq(zmq_send(s1, r1, l1, 0), (int)l1);
    cr_assert_eq(zmq_send(s2, r2, l2, 0), (int)l2);
    size_t g1 = recv_within(s1, a1, sizeof a1, 10000), g2 = recv_within(s2, a2, sizeof a2, 10000);
    cr_assert(g1 && g2, "both answered (see %s)", mgr_log);
    issued i1, i2;
    int ok1 = take_response(a1, g1, n1, &i1) == 0, ok2 = take_response(a2, g2, n2, &i2) == 0;
    cr_expect_eq(ok1 + ok2, 1, "exactly one gets the last place");
    otpca_error_msg e;
    cr_assert_eq(otpca_msg_decode(&otpca_desc_error, ok1 ? a2 : a1, ok1 ? g2 : g1, &e), 0, "the other an Error");
    cr_expect_eq(e.code, OTPCA_WIRE_WINDOW_CLOSED);
    cr_expect_null(e.detail.p);
    cr_expect(e.nonce.p && !memcmp(e.nonce.p, ok1 ? n2 : n1, 16), "its nonce echoed");
    cr_expect_eq(rejected_logged(d->serial, R_WINDOW, 1), 1);

    /* At the limit the window closes by itself. */
    cr_expect_eq(ct_wait_exit(mgr_pid, 10000), 0, "closed at the limit, exit 0");
    mgr_pid = -1;
    cr_expect_eq(file_wait(mgr_out, "window closed (enrollment limit): 2 issued", 1, 5000), 1, "the summary (see %s)",
                 mgr_out);
    /* Journaled with their reasons (PROTOCOL.md 8.2 codes) and uploaded. */
    for (int r = R_WINDOW; r <= R_SIGNATURE; r++) {
        if (r == R_LOCKED)
            continue; /* test 3 */
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM records WHERE kind = 5 AND reason = %d", r);
        cr_expect_eq(db_int(mgr_db, sql, NULL, NULL, 0), 1, "one REJECTED record with reason %d in the journal", r);
        cr_expect_eq(db_int(ct.db, sql, NULL, NULL, 0), 1, "and at the cloud");
    }
}

/* ---------------------------- 6. uncounted failures, counted after a sync */

/* The cloud counts a REJECTED record towards the lockout only for reasons
 * 8 and 9 (PROTOCOL.md 8.2: what the device signed), as the manager does;
 * counting every rejection there (as it once did) came back with the next
 * window's trust-list sync (mstore keeps the larger count) and locked the
 * device by forgeries. Here with lockout = 3: window 1, three forgeries
 * (node-000002's serial, another node's key) and one signed wrong code:
 * both count 1; window 2, one more signed wrong code makes 2, not a lock;
 * the right code then enrolls. */
Test(window_faults, uncounted_rejections_stay_uncounted_after_the_cloud_syncs_the_count_back)
{
    static uint8_t req[2048], ans[4096];
    uint8_t nonce[16];
    size_t len;
    manager_setup("lockout = 3\n");
    manager_start(-1);
    nodes_open();
    void *sock = node_socket();
    node *a = &nodes[0], *b = &nodes[1];
    for (int i = 0; i < 3; i++) {
        len = enroll_req(a, b->serial, totp(b, step_now()), 0, req, sizeof req, nonce);
        expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "a forgery");
    }
    cr_expect_eq(rejected_logged(b->serial, R_KEY, 3), 3);
    len = enroll_req(b, b->serial, wrong_totp(b), 0, req, sizeof req, nonce);
    expect_error(sock, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "a wrong code");
    cr_expect_eq(db_int(mgr_db, "SELECT failures FROM devices WHERE serial = ?1", b->serial, NULL, 0), 1,
                 "the manager counts the one signed failure");
    cr_assert_eq(manager_close(), 0);
    cr_expect_eq(file_wait(mgr_out, " 0 pending", 1, 5000), 1, "every record uploaded (see %s)", mgr_out);
    cr_expect_eq(db_int(ct.db, "SELECT failures FROM devices WHERE serial = ?1", b->serial, NULL, 0), 1,
                 "the cloud counts only the signed failure");

    manager_start(ct_totp(time(NULL) + 30));
    void *sock2 = node_socket();
    len = enroll_req(b, b->serial, wrong_totp(b), 0, req, sizeof req, nonce);
    expect_error(sock2, req, len, OTPCA_WIRE_AUTH_FAILED, nonce, "a second wrong code");
    cr_expect_eq(db_int(mgr_db, "SELECT failures FROM devices WHERE serial = ?1", b->serial, NULL, 0), 2,
                 "two signed failures, and no more after the sync");
    cr_expect_eq(db_int(mgr_db, "SELECT state FROM devices WHERE serial = ?1", b->serial, NULL, 0), 1,
                 "not locked by forgeries it did not sign");
    issued is;
    len = enroll_req(b, b->serial, totp(b, step_now()), 0, req, sizeof req, nonce);
    cr_expect_eq(take_response(ans, call(sock2, req, len, ans, sizeof ans, 10000), nonce, &is), 0,
                 "its right code enrolls (see %s)", mgr_log);
    cr_assert_eq(manager_close(), 0);
}
