/*
 * An enrollment window end to end, every part real: the cloud (cloudtest.h)
 * with the rig's devices; the ceremony with `otpca-manager ca init-root` and
 * `ca certify` (the manager's CURVE key made in its token) and the manager
 * registered with `otpca-cloud manager add`; `otpca-manager window open`
 * (lease with the operator token's TOTP, trust-list sync) serving on
 * loopback; a node whose key and TOTP are in its rig token enrolls over
 * ZeroMQ; `openssl verify` accepts root -> manager -> node; a reused code is
 * refused; `window close` closes it, the records reach the cloud, and the
 * cloud shows the device enrolled by this manager.
 */
#include "cloudtest.h"

#include "otpca/proto/cose.h"
#include "otpca/proto/ecies.h"

static void window_teardown(void);
TestSuite(window, .init = ct_setup, .fini = window_teardown, .timeout = 180);

#define NODE "node-000004"

static char mgr_conf[256];
static pid_t mgr_pid = -1;

/* A test that failed half-way leaves its manager running: stop it, or it
 * outlives the test (and holds ctest's output pipe). */
static void window_teardown(void)
{
    if (mgr_pid > 0) {
        kill(mgr_pid, SIGKILL);
        ct_wait_exit(mgr_pid, 5000);
        mgr_pid = -1;
    }
    ct_teardown();
}
static char mgr_listen[256];
static otpca_token_t *node_tok;
static otpca_obj_t node_key, node_seed;
static uint8_t node_pub[65];

static otpca_err node_sign(void *ctx, const uint8_t d[32], uint8_t sig[64])
{
    (void)ctx;
    size_t len = 64;
    return otpca_token_sign_digest(node_tok, node_key, d, 32, OTPCA_SIG_RAW, sig, &len);
}

static otpca_err node_ecdh(void *ctx, const uint8_t peer[65], uint8_t z[32])
{
    (void)ctx;
    return otpca_token_ecdh(node_tok, node_key, peer, 65, z);
}

static void write_config(void);

/* Ceremony, registration at the cloud, and the manager's configuration. */
static void manager_setup(void)
{
    const char *rig = testrig_dir();
    char path[512], z85[64];
    cr_assert_eq(ct_sh("'%s/otpca-manager' ca init-root --key 'pkcs11:token=otpca-root;object=root-key?pin-source=file:"
                       "%s/pins/otpca-root.pin' --cn 'test root' --out '%s/root'",
                       ct_bin(), rig, ct.dir),
                 0, "ca init-root");
    snprintf(path, sizeof path, "%s/certify.out", ct.dir);
    cr_assert_eq(ct_sh("'%s/otpca-manager' ca certify --root 'pkcs11:token=otpca-root;object=root-key?pin-source=file:"
                       "%s/pins/otpca-root.pin' --root-cert '%s/root.pem' --key 'pkcs11:token=otpca-mgr-01;object=ca-key"
                       "?pin-source=file:%s/pins/otpca-mgr-01.pin' --id mgr-07 --out '%s/mgr-07' >'%s'",
                       ct_bin(), rig, ct.dir, rig, ct.dir, path),
                 0, "ca certify");
    cr_assert_eq(ct_sh("sed -n \"s/.*--curve-key '\\(.\\{40\\}\\)'.*/curve = \\1/p\" '%s' >'%s.kv'", path, path), 0);
    char kv[600];
    snprintf(kv, sizeof kv, "%s.kv", path);
    cr_assert(ct_file_value(kv, "curve", z85, sizeof z85), "ca certify printed the CURVE key");
    cr_assert_eq(CT_CLOUD("manager add mgr-07 --ca-cert '%s/mgr-07.pem' --curve-key '%s'", ct.dir, z85), 0);
    cr_assert_eq(CT_CLOUD("operator allow otpca-op-01 --manager mgr-07"), 0);
    write_config();
}

/* The manager's configuration, pointing at the cloud as it runs now. */
static void write_config(void)
{
    const char *rig = testrig_dir();
    char path[512], hex[131];
    snprintf(path, sizeof path, "%s/netkey.hex", ct.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "00112233445566778899aabbccddeeff\n");
    fclose(f);
    char zc[41], cloud[600], notices[600];
    zmq_z85_encode(zc, ct.cloud_curve, 32);
    /* With a second cloud instance running: both, as lists. */
    snprintf(cloud, sizeof cloud, "%s%s%s", ct.listen, ct.server2 > 0 ? "," : "", ct.server2 > 0 ? ct.listen2 : "");
    snprintf(notices, sizeof notices, "%s%s%s", ct.notices, ct.server2 > 0 ? "," : "",
             ct.server2 > 0 ? ct.notices2 : "");
    for (size_t i = 0; i < 65; i++)
        snprintf(hex + 2 * i, 3, "%02x", ct.cloud_pub[i]);
    snprintf(mgr_conf, sizeof mgr_conf, "%s/manager.conf", ct.dir);
    f = fopen(mgr_conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "id = mgr-07\ntoken = pkcs11:token=otpca-mgr-01?pin-source=file:%s/pins/otpca-mgr-01.pin\n"
            "ca_cert = %s/mgr-07.pem\nstore = %s/manager.db\ncloud = %s\ncloud_notices = %s\n"
            "cloud_curve_key = %s\ncloud_sign_key = %s\nlisten = tcp://127.0.0.1:*\noperator = otpca-op-01\n"
            "operator_token = pkcs11:token=otpca-op-01;object=op-totp?pin-source=file:%s/pins/otpca-op-01.pin\n"
            "netkey_file = %s/netkey.hex\nwindow_seconds = 600\nworkers = 2\ncrl_file = %s/mgr.crl\n",
            rig, ct.dir, ct.dir, cloud, notices, zc, hex, rig, ct.dir, ct.dir);
    fclose(f);
}

static void manager_start_lease(const char *lease)
{
    char line[600], out[256];
    const char *args[] = {"window", "open", "--config", mgr_conf, lease ? "--lease" : NULL, lease, NULL};
    /* The rest of stdout (the summary) goes to a file read at the end. */
    snprintf(out, sizeof out, "%s/manager.out", ct.dir);
    mgr_pid = ct_spawn("otpca-manager", args, "manager.log", out, 30000, line, sizeof line);
    cr_assert(sscanf(line, "serving %255s", mgr_listen) == 1, "manager did not open a window: '%s' (see %s/manager.log)",
              line, ct.dir);
}

static void manager_start(void)
{
    manager_start_lease(NULL);
}

static int manager_wait(void)
{
    int rc = ct_wait_exit(mgr_pid, 20000);
    mgr_pid = -1;
    return rc;
}

/* One request to the manager over a DEALER; the answer's length. */
static size_t node_call(void *sock, const uint8_t *req, size_t len, uint8_t *ans, size_t cap)
{
    cr_assert_eq(zmq_send(sock, req, len, 0), (int)len);
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    cr_assert_eq(zmq_poll(&it, 1, 10000), 1, "the manager answers within 10 s");
    int n = zmq_recv(sock, ans, cap, 0);
    cr_assert(n > 0 && (size_t)n <= cap);
    return (size_t)n;
}

static size_t enroll_request(time_t at, uint8_t *out, size_t cap, uint8_t nonce[16])
{
    uint32_t totp = 0;
    size_t len = 0;
    uint8_t mac[6] = {2, 0, 0, 0, 0, 4};
    cr_assert_eq(otpca_random(nonce, 16), 0);
    cr_assert_eq(otpca_token_totp(node_tok, node_seed, OTPCA_OTP_SHA1, at, 30, 6, &totp), 0);
    otpca_enroll_request m;
    memset(&m, 0, sizeof m);
    m.nonce = (otpca_buf){nonce, 16};
    m.time = (uint64_t)time(NULL);
    m.serial = (otpca_buf){(const uint8_t *)NODE, strlen(NODE)};
    m.mac = (otpca_buf){mac, 6};
    m.pubkey = (otpca_buf){node_pub, 65};
    m.totp = totp;
    m.fw = (otpca_buf){(const uint8_t *)"fw-1", 4};
    otpca_signer s = {node_sign, NULL, {0}};
    otpca_p256_kid(node_pub, s.kid);
    cr_assert_eq(otpca_msg_sign(&otpca_desc_enroll_request, &m, &s, (otpca_buf){NULL, 0}, out, cap, &len), 0);
    return len;
}

/* Writes a DER certificate to DIR/NAME.der and .pem; openssl verify's exit
 * status for root -> manager -> it. */
static int openssl_verify_der(otpca_buf cert, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.der", ct.dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(cert.p, 1, cert.len, f), cert.len);
    fclose(f);
    return ct_sh("openssl x509 -inform DER -in '%s/%s.der' -out '%s/%s.pem' && openssl verify -CAfile '%s/root.pem' "
                 "-untrusted '%s/mgr-07.pem' '%s/%s.pem'",
                 ct.dir, name, ct.dir, name, ct.dir, ct.dir, ct.dir, name);
}

static size_t expect_response(void *sock, const uint8_t *req, size_t len, uint8_t *ans, size_t cap,
                              otpca_enroll_response *r, const uint8_t nonce[16], otpca_ecdh_fn ecdh, void *ctx,
                              const uint8_t pub[65]);
static size_t confirm_request(const otpca_enroll_response *r, const otpca_signer *s, uint8_t *out, size_t cap);

/* Opens NODE's token (key, seed, public key) and a DEALER to the manager
 * now serving; *zctx for zmq_ctx_term. */
static void *node_connect(void **zctx)
{
    node_tok = testrig_open(ct.p11, NODE);
    cr_assert_eq(otpca_token_find(node_tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_DEVICE_KEY, NULL, 0, &node_key), 0);
    cr_assert_eq(otpca_token_find(node_tok, OTPCA_OBJ_SECRET_KEY, OTPCA_RIG_DEVICE_SEED, NULL, 0, &node_seed), 0);
    cr_assert_eq(otpca_token_pubkey_sec1(node_tok, node_key, node_pub), 0);
    *zctx = zmq_ctx_new();
    void *sock = zmq_socket(*zctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_connect(sock, mgr_listen), 0);
    return sock;
}

Test(window, a_node_enrolls_in_a_window_and_the_cloud_hears_of_it)
{
    manager_setup();
    /* A pid file left by a killed window, naming a process that lives
     * (ours: as if the pid had been given out again): not a window. */
    char pidfile[300];
    snprintf(pidfile, sizeof pidfile, "%s/manager.db.window", ct.dir);
    FILE *pf = fopen(pidfile, "w");
    cr_assert_not_null(pf);
    fprintf(pf, "%ld\n", (long)getpid());
    fclose(pf);
    cr_expect_eq(ct_sh("'%s/otpca-manager' window status --config '%s' | grep -q '^window *closed'", ct_bin(), mgr_conf),
                 0, "a stale pid file is no open window");
    manager_start();
    cr_expect_eq(ct_sh("'%s/otpca-manager' window status --config '%s' | grep -q '^window *open'", ct_bin(), mgr_conf),
                 0, "the window that runs is");
    void *zctx = NULL, *sock = node_connect(&zctx);

    /* Enroll: the response is the manager's, for this node, with its key. */
    static uint8_t req[2048], ans[4096];
    uint8_t nonce[16];
    time_t step_at = time(NULL); /* both requests below use this TOTP step */
    size_t len = enroll_request(step_at, req, sizeof req, nonce);
    size_t n = node_call(sock, req, len, ans, sizeof ans);
    otpca_cose_sign1 c;
    otpca_enroll_response r;
    cr_assert_eq(otpca_cose_sign1_decode(ans, n, &c), 0, "an EnrollResponse, not an Error (see manager.log)");
    cr_assert_eq(otpca_cose_sign1_verify(&c, ct.mgr_pub, 65), 0, "signed by the manager token's key");
    cr_assert_eq(otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r), 0);
    cr_expect_arr_eq(r.nonce.p, nonce, 16);
    uint8_t aad[64 + 16], pt[64];
    size_t pt_len = 0, sl = strlen(NODE);
    memcpy(aad, NODE, sl);
    memcpy(aad + sl, nonce, 16);
    cr_assert_eq(otpca_ecies_open(node_ecdh, NULL, node_pub, OTPCA_ECIES_LABEL_NETKEY, aad, sl + 16, r.netkey.p,
                                  r.netkey.len, pt, sizeof pt, &pt_len),
                 0, "the network key opens in the node token");
    cr_expect_eq(pt_len, 16);
    cr_expect_eq(pt[15], 0xff);

    /* openssl, independently: root -> manager -> node. */
    cr_expect_eq(openssl_verify_der(r.cert, "node"), 0, "openssl verify: root -> manager -> node");
    cr_expect_eq(ct_sh("openssl x509 -in '%s/node.pem' -noout -ext subjectAltName | grep -q 'urn:dev:mac:020000000004'",
                       ct.dir),
                 0);

    /* The same TOTP step again (fresh nonce): refused, generically. */
    len = enroll_request(step_at, req, sizeof req, nonce);
    n = node_call(sock, req, len, ans, sizeof ans);
    otpca_error_msg e;
    cr_assert_eq(otpca_msg_decode(&otpca_desc_error, ans, n, &e), 0);
    cr_expect_eq(e.code, OTPCA_WIRE_AUTH_FAILED);
    cr_expect_null(e.detail.p);

    /* Confirm: the device is enrolled. */
    uint8_t hash[32], cnonce[16];
    otpca_sha256(r.cert.p, r.cert.len, hash);
    cr_assert_eq(otpca_random(cnonce, 16), 0);
    otpca_enroll_confirm cm = {.nonce = {cnonce, 16}, .record = r.record, .time = (uint64_t)time(NULL),
                               .cert_hash = {hash, 32}};
    otpca_signer s = {node_sign, NULL, {0}};
    otpca_p256_kid(node_pub, s.kid);
    static uint8_t creq[512];
    cr_assert_eq(otpca_msg_sign(&otpca_desc_enroll_confirm, &cm, &s, (otpca_buf){NULL, 0}, creq, sizeof creq, &len), 0);
    n = node_call(sock, creq, len, ans, sizeof ans);
    otpca_confirm_ack ack;
    cr_assert_eq(otpca_cose_sign1_decode(ans, n, &c), 0, "a ConfirmAck");
    cr_expect_eq(otpca_cose_sign1_verify(&c, ct.mgr_pub, 65), 0);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_confirm_ack, c.payload.p, c.payload.len, &ack), 0);
    cr_expect_arr_eq(ack.nonce.p, cnonce, 16);
    zmq_close(sock);
    zmq_ctx_term(zctx);

    /* Close; the summary; the records at the cloud. */
    cr_assert_eq(ct_sh("'%s/otpca-manager' window close --config '%s'", ct_bin(), mgr_conf), 0);
    cr_expect_eq(manager_wait(), 0, "the window closes with exit 0");
    cr_expect_eq(ct_sh("grep -q 'window closed (signal): 1 issued, 1 confirmed, 1 rejected' '%s/manager.out'", ct.dir), 0,
                 "the summary");
    cr_expect_eq(ct_sh("grep -q '0 pending' '%s/manager.out'", ct.dir), 0, "every record uploaded");
    cr_expect_eq(ct_sh("'%s/otpca-cloud' --config '%s' device show " NODE " | grep -q '^state *enrolled'", ct_bin(),
                       ct.conf),
                 0, "the cloud has the device enrolled");
    cr_expect_eq(ct_sh("'%s/otpca-cloud' --config '%s' device show " NODE " | grep -q '^manager *mgr-07'", ct_bin(),
                       ct.conf),
                 0, "by this manager");
    cr_expect_eq(ct_sh("'%s/otpca-manager' window status --config '%s' | grep -q '^window *closed'", ct_bin(), mgr_conf),
                 0);
    otpca_token_destroy(&node_tok);
}

/* Opens the node token and enrolls NODE (request and confirm) at the
 * manager now serving; asserts every step. */
static void enroll_node(void)
{
    static uint8_t req[2048], ans[4096], creq[512], ack[512];
    uint8_t nonce[16];
    otpca_enroll_response r;
    otpca_cose_sign1 c;
    void *zctx = NULL, *sock = node_connect(&zctx);
    size_t len = enroll_request(time(NULL), req, sizeof req, nonce);
    expect_response(sock, req, len, ans, sizeof ans, &r, nonce, node_ecdh, NULL, node_pub);
    otpca_signer s = {node_sign, NULL, {0}};
    otpca_p256_kid(node_pub, s.kid);
    len = confirm_request(&r, &s, creq, sizeof creq);
    size_t n = node_call(sock, creq, len, ack, sizeof ack);
    cr_assert_eq(otpca_cose_sign1_decode(ack, n, &c), 0, "a ConfirmAck");
    zmq_close(sock);
    zmq_ctx_term(zctx);
    otpca_token_destroy(&node_tok);
}

/* The cloud down: the window opens on an offline lease and the trust list
 * the journal synced before; the node enrolls; the records wait in the
 * journal and reach the cloud with `records upload` once it is back. */
Test(window, offline_window_on_a_lease_file_and_records_uploaded_later)
{
    manager_setup();
    manager_start(); /* online: syncs the trust list into the journal */
    cr_assert_eq(ct_sh("'%s/otpca-manager' window close --config '%s'", ct_bin(), mgr_conf), 0);
    cr_assert_eq(manager_wait(), 0);
    cr_assert_eq(CT_CLOUD("lease issue --manager mgr-07 --operator otpca-op-01 --duration 600 --out '%s/offline.lease'",
                          ct.dir),
                 0);
    cr_assert_eq(ct_server_stop(SIGTERM), 0, "the cloud stops");

    char lease[256];
    snprintf(lease, sizeof lease, "%s/offline.lease", ct.dir);
    manager_start_lease(lease);
    enroll_node();
    cr_assert_eq(ct_sh("'%s/otpca-manager' window close --config '%s'", ct_bin(), mgr_conf), 0);
    cr_expect_eq(manager_wait(), 0);
    cr_expect_eq(ct_sh("grep -q 'window closed (signal, offline): 1 issued, 1 confirmed' '%s/manager.out'", ct.dir), 0,
                 "the offline summary");
    cr_expect_eq(ct_sh("grep -q '0 records uploaded, 2 pending' '%s/manager.out'", ct.dir), 0, "records kept");
    cr_expect_neq(ct_sh("'%s/otpca-manager' records upload --config '%s'", ct_bin(), mgr_conf), 0,
                  "no upload while the cloud is down");

    ct_server_start(); /* back, on new ports */
    write_config();
    cr_assert_eq(ct_sh("'%s/otpca-manager' records upload --config '%s' >'%s/upload.out'", ct_bin(), mgr_conf, ct.dir), 0);
    cr_expect_eq(ct_sh("grep -q '2 records uploaded, 0 pending' '%s/upload.out'", ct.dir), 0);
    cr_expect_eq(ct_sh("'%s/otpca-cloud' --config '%s' device show " NODE " | grep -q '^state *enrolled'", ct_bin(),
                       ct.conf),
                 0, "the cloud has the offline enrollment");
    cr_assert_eq(ct_sh("'%s/otpca-manager' records upload --config '%s' >'%s/upload.out'", ct_bin(), mgr_conf, ct.dir), 0);
    cr_expect_eq(ct_sh("grep -q '0 records uploaded, 0 pending' '%s/upload.out'", ct.dir), 0, "nothing twice");
}

/* One signed request of the node, answered by an EnrollResponse: decoded
 * into *r (spans into ans), the envelope opened with ecdh/pub. */
static size_t expect_response(void *sock, const uint8_t *req, size_t len, uint8_t *ans, size_t cap,
                              otpca_enroll_response *r, const uint8_t nonce[16], otpca_ecdh_fn ecdh, void *ctx,
                              const uint8_t pub[65])
{
    otpca_cose_sign1 c;
    size_t n = node_call(sock, req, len, ans, cap);
    otpca_error_msg e;
    cr_assert_eq(otpca_cose_sign1_decode(ans, n, &c), 0, "an EnrollResponse, not an Error %d (see manager.log)",
                 otpca_msg_decode(&otpca_desc_error, ans, n, &e) ? -1 : (int)e.code);
    cr_assert_eq(otpca_cose_sign1_verify(&c, ct.mgr_pub, 65), 0);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, r), 0);
    cr_expect_arr_eq(r->nonce.p, nonce, 16);
    uint8_t aad[64 + 16], pt[64];
    size_t pt_len = 0, sl = strlen(NODE);
    memcpy(aad, NODE, sl);
    memcpy(aad + sl, nonce, 16);
    cr_expect_eq(otpca_ecies_open(ecdh, ctx, pub, OTPCA_ECIES_LABEL_NETKEY, aad, sl + 16, r->netkey.p, r->netkey.len,
                                  pt, sizeof pt, &pt_len),
                 0, "the network key opens with the key it was sealed to");
    return n;
}

static void expect_auth_failed(void *sock, const uint8_t *req, size_t len, const char *why)
{
    uint8_t ans[512];
    otpca_error_msg e;
    size_t n = node_call(sock, req, len, ans, sizeof ans);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_error, ans, n, &e), 0, "%s: an Error", why);
    cr_expect_eq(e.code, OTPCA_WIRE_AUTH_FAILED, "%s", why);
}

static size_t confirm_request(const otpca_enroll_response *r, const otpca_signer *s, uint8_t *out, size_t cap)
{
    uint8_t hash[32], cnonce[16];
    size_t len = 0;
    otpca_sha256(r->cert.p, r->cert.len, hash);
    cr_assert_eq(otpca_random(cnonce, 16), 0);
    otpca_enroll_confirm cm = {.nonce = {cnonce, 16}, .record = r->record, .time = (uint64_t)time(NULL),
                               .cert_hash = {hash, 32}};
    cr_assert_eq(otpca_msg_sign(&otpca_desc_enroll_confirm, &cm, s, (otpca_buf){NULL, 0}, out, cap, &len), 0);
    return len;
}

static size_t rejoin_request(time_t totp_at, const uint8_t hash[32], const otpca_signer *s, uint8_t *out, size_t cap,
                             uint8_t nonce[16])
{
    uint32_t totp = 0;
    size_t len = 0;
    cr_assert_eq(otpca_random(nonce, 16), 0);
    cr_assert_eq(otpca_token_totp(node_tok, node_seed, OTPCA_OTP_SHA1, totp_at, 30, 6, &totp), 0);
    otpca_rejoin m = {.nonce = {nonce, 16}, .time = (uint64_t)time(NULL),
                      .serial = {(const uint8_t *)NODE, strlen(NODE)}, .cert_hash = {hash, 32}, .totp = totp};
    cr_assert_eq(otpca_msg_sign(&otpca_desc_rejoin, &m, s, (otpca_buf){NULL, 0}, out, cap, &len), 0);
    return len;
}

/* Ceremony, a window, the node connected; then waits (for the wall clock,
 * not for another process) until at most 20 s of the current TOTP step are
 * gone, so that requests on the steps now-1 .. now+1 stay inside the
 * tolerance for the seconds a test takes. Returns that moment. */
static time_t window_and_node_early_in_a_step(void **zctx, void **sock)
{
    manager_setup();
    manager_start();
    *sock = node_connect(zctx);
    for (int i = 0; i < 200 && time(NULL) % 30 > 20; i++)
        usleep(100000);
    return time(NULL);
}

/* Rejoin and KeyUpdate against the real window (PROTOCOL.md 6.5, 6.6):
 * enrolled, the node rejoins (network key, no certificate), then moves to
 * a new key (double signature; the certificate for the new key chains to
 * the root with openssl), confirms with the new key; from then on the old
 * certificate and the old key are refused. A TOTP step is accepted once
 * per device, so the three requests use the steps now-1, now and now+1
 * (all within the ±1 tolerance), started early enough in a step. */
Test(window, rejoin_and_key_update_then_the_old_certificate_is_refused)
{
    void *zctx = NULL, *sock = NULL;
    time_t t0 = window_and_node_early_in_a_step(&zctx, &sock);

    static uint8_t req[2048], ans[4096], ans2[4096], creq[512];
    uint8_t nonce[16], old_hash[32], new_hash[32];
    otpca_enroll_response r, rj, ku;
    otpca_signer old_s = {node_sign, NULL, {0}};
    otpca_p256_kid(node_pub, old_s.kid);
    size_t len = enroll_request(t0 - 30, req, sizeof req, nonce);
    size_t first = expect_response(sock, req, len, ans, sizeof ans, &r, nonce, node_ecdh, NULL, node_pub);
    cr_assert_not_null(r.cert.p);
    /* The same request again (its answer lost, say): the same answer again,
     * not a second certificate (PROTOCOL.md 6.8). */
    size_t again = node_call(sock, req, len, ans2, sizeof ans2);
    cr_expect(again == first && !memcmp(ans2, ans, first), "a repeated request gets the same answer");
    cr_expect_eq(ct_sh("grep -c 'certificate issued to " NODE "' '%s/manager.log' | grep -qx 1", ct.dir), 0,
                 "one certificate issued");
    otpca_sha256(r.cert.p, r.cert.len, old_hash);
    len = confirm_request(&r, &old_s, creq, sizeof creq);
    cr_assert_gt(node_call(sock, creq, len, ans2, sizeof ans2), 20, "a ConfirmAck");

    /* Rejoin: the network key again, no certificate. */
    len = rejoin_request(t0, old_hash, &old_s, req, sizeof req, nonce);
    expect_response(sock, req, len, ans2, sizeof ans2, &rj, nonce, node_ecdh, NULL, node_pub);
    cr_expect_null(rj.cert.p, "no certificate in answer to a Rejoin");

    /* KeyUpdate: a new key (software here: the rig's token stays as it is
     * for the other tests), inner signature by it, outer by the old key. */
    otpca_p256_soft nk;
    cr_assert_eq(otpca_p256_soft_generate(&nk), 0);
    uint32_t totp = 0;
    cr_assert_eq(otpca_token_totp(node_tok, node_seed, OTPCA_OTP_SHA1, t0 + 30, 30, 6, &totp), 0);
    cr_assert_eq(otpca_random(nonce, 16), 0);
    otpca_key_update k = {.nonce = {nonce, 16}, .time = (uint64_t)time(NULL),
                          .serial = {(const uint8_t *)NODE, strlen(NODE)}, .cert_hash = {old_hash, 32},
                          .pubkey = {nk.pub, 65}, .totp = totp};
    otpca_signer new_s = {otpca_p256_soft_sign, &nk, {0}};
    otpca_p256_kid(nk.pub, new_s.kid);
    uint8_t inner[1024];
    size_t inner_len = 0;
    cr_assert_eq(otpca_msg_sign(&otpca_desc_key_update, &k, &new_s, (otpca_buf){NULL, 0}, inner, sizeof inner,
                                &inner_len),
                 0);
    cr_assert_eq(otpca_cose_sign1_encode(&old_s, (otpca_buf){NULL, 0}, inner, inner_len, req, sizeof req, &len), 0);
    static uint8_t ans3[4096];
    expect_response(sock, req, len, ans3, sizeof ans3, &ku, nonce, otpca_p256_soft_ecdh, &nk, nk.pub);
    cr_assert_not_null(ku.cert.p, "a certificate for the new key");
    otpca_sha256(ku.cert.p, ku.cert.len, new_hash);
    cr_expect_eq(openssl_verify_der(ku.cert, "rekeyed"), 0,
                 "openssl verify: root -> manager -> the new key's certificate");

    /* Before the confirm the old certificate still rejoins... (its step
     * is used up, so the refusal names the step, not the certificate; the
     * certificate check comes first and passes.) */
    len = rejoin_request(t0, old_hash, &old_s, req, sizeof req, nonce);
    expect_auth_failed(sock, req, len, "a used TOTP step");
    cr_expect_eq(ct_sh("grep -q 'rejoin of " NODE " rejected: TOTP time step already used' '%s/manager.log'", ct.dir), 0,
                 "the old certificate is still current before the confirm");

    /* The confirm, signed by the new key. */
    len = confirm_request(&ku, &new_s, creq, sizeof creq);
    otpca_cose_sign1 c;
    size_t n = node_call(sock, creq, len, ans2, sizeof ans2);
    cr_assert_eq(otpca_cose_sign1_decode(ans2, n, &c), 0, "a ConfirmAck for the new key's certificate");

    /* After it: the old key and certificate are refused, for the
     * certificate or the key. */
    len = rejoin_request(t0, old_hash, &old_s, req, sizeof req, nonce);
    expect_auth_failed(sock, req, len, "the old certificate after the key update");
    cr_expect_eq(ct_sh("grep -q 'rejoin of " NODE " rejected: public key or kid does not match' '%s/manager.log'",
                       ct.dir),
                 0, "refused: the registered key is now the new one");
    len = rejoin_request(t0, old_hash, &new_s, req, sizeof req, nonce);
    expect_auth_failed(sock, req, len, "the old certificate, signed by the new key");
    cr_expect_eq(ct_sh("grep -q 'rejoin of " NODE " rejected: certificate hash unknown or superseded' '%s/manager.log'",
                       ct.dir),
                 0, "refused: the old certificate is superseded");
    zmq_close(sock);
    zmq_ctx_term(zctx);

    cr_assert_eq(ct_sh("'%s/otpca-manager' window close --config '%s'", ct_bin(), mgr_conf), 0);
    cr_expect_eq(manager_wait(), 0);
    cr_expect_eq(ct_sh("grep -q '0 pending' '%s/manager.out'", ct.dir), 0, "every record uploaded");
    /* The cloud binds the new key and its certificate to the serial. */
    char hex[131], hhex[65];
    for (size_t i = 0; i < 65; i++)
        snprintf(hex + 2 * i, 3, "%02x", nk.pub[i]);
    for (size_t i = 0; i < 32; i++)
        snprintf(hhex + 2 * i, 3, "%02x", new_hash[i]);
    cr_expect_eq(ct_sh("'%s/otpca-cloud' --config '%s' device show " NODE " | grep -q '^public key *%s'", ct_bin(),
                       ct.conf, hex),
                 0, "the cloud has the new key");
    cr_expect_eq(ct_sh("'%s/otpca-cloud' --config '%s' device show " NODE " | grep -q '^certificate *%s'", ct_bin(),
                       ct.conf, hhex),
                 0, "and the new certificate");
    otpca_p256_soft_wipe(&nk);
    otpca_token_destroy(&node_tok);
}

/* Revocation end to end (issue #10): a node enrolls; `otpca-cloud device
 * revoke` reaches the open window through the notice channel (the time it
 * took is printed); the node's Rejoin is refused; at close the manager
 * signs its CRL in the token with the node's certificate in it, reason
 * and all, publishes it, and `otpca-cloud crl get` hands out the same
 * bytes the manager wrote to its crl_file; openssl accepts the CRL
 * under the manager certificate and refuses the node certificate with
 * -crl_check. */
Test(window, a_revocation_reaches_the_open_window_and_the_managers_crl)
{
    void *zctx = NULL, *sock = NULL;
    time_t t0 = window_and_node_early_in_a_step(&zctx, &sock);
    static uint8_t req[2048], ans[4096], creq[512];
    uint8_t nonce[16], hash[32];
    otpca_enroll_response r;
    otpca_signer s = {node_sign, NULL, {0}};
    otpca_p256_kid(node_pub, s.kid);
    size_t len = enroll_request(t0, req, sizeof req, nonce);
    expect_response(sock, req, len, ans, sizeof ans, &r, nonce, node_ecdh, NULL, node_pub);
    cr_assert_eq(openssl_verify_der(r.cert, "node"), 0);
    otpca_sha256(r.cert.p, r.cert.len, hash);
    len = confirm_request(&r, &s, creq, sizeof creq);
    cr_assert_gt(node_call(sock, creq, len, ans, sizeof ans), 20, "a ConfirmAck");
    cr_expect_eq(ct_sh("grep -q 'crl: CRL 1: 0 entries.*published' '%s/manager.log'", ct.dir), 0,
                 "an empty CRL signed and published when the window opened");

    /* Revoke at the cloud; the window hears of it through a Notice. */
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(CT_CLOUD("device revoke " NODE " --reason keyCompromise"), 0);
    int heard = 0;
    for (int i = 0; i < 100 && !heard; i++) {
        heard = ct_sh("grep -q 'notice: " NODE " is now revoked' '%s/manager.log'", ct.dir) == 0;
        if (!heard)
            usleep(20000);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert(heard, "the revocation reached the open window");
    fprintf(stderr, "revocation reached the window %.3f s after `device revoke` started\n", took);
    cr_expect_lt(took, 1.0, "a revocation reaches the open window within 1 s (%.3f s)", took);

    /* A revoked node is refused, whatever it holds. */
    len = rejoin_request(t0 + 30, hash, &s, req, sizeof req, nonce);
    expect_auth_failed(sock, req, len, "the rejoin of a revoked device");
    cr_expect_eq(ct_sh("grep -q 'rejoin of " NODE " rejected: device revoked' '%s/manager.log'", ct.dir), 0,
                 "logged as revoked");
    zmq_close(sock);
    zmq_ctx_term(zctx);

    cr_assert_eq(ct_sh("'%s/otpca-manager' window close --config '%s'", ct_bin(), mgr_conf), 0);
    cr_expect_eq(manager_wait(), 0);
    cr_expect_eq(ct_sh("grep -q 'CRL 2 signed: 1 entries, published to the cloud' '%s/manager.out'", ct.dir), 0,
                 "a second CRL at close, with the node in it");

    /* The cloud's copy, PEM and DER; the DER is the manager's own file. */
    cr_assert_eq(CT_CLOUD("crl get --manager mgr-07 --out '%s/cloud.crl.pem'", ct.dir), 0);
    cr_assert_eq(CT_CLOUD("crl get --manager mgr-07 --der --out '%s/cloud.crl'", ct.dir), 0);
    cr_expect_eq(ct_sh("cmp -s '%s/cloud.crl' '%s/mgr.crl'", ct.dir, ct.dir), 0, "the cloud has the manager's CRL");
    cr_expect_eq(ct_sh("openssl crl -in '%s/cloud.crl.pem' -CAfile '%s/mgr-07.pem' -noout -text >'%s/crl.txt' 2>&1 && "
                       "grep -q 'verify OK' '%s/crl.txt'",
                       ct.dir, ct.dir, ct.dir, ct.dir),
                 0, "openssl crl -verify under the manager certificate");
    cr_expect_eq(ct_sh("s=$(openssl x509 -in '%s/node.pem' -noout -serial | cut -d= -f2) && "
                       "grep -A4 \"Serial Number: $s\" '%s/crl.txt' | grep -q 'Key Compromise'",
                       ct.dir, ct.dir),
                 0, "the node certificate's serial, with its reason");
    cr_expect_eq(ct_sh("grep -A1 'X509v3 CRL Number' '%s/crl.txt' | grep -qx ' *2'", ct.dir), 0, "cRLNumber 2");
    cr_expect_eq(ct_sh("openssl verify -crl_check -CAfile '%s/root.pem' -untrusted '%s/mgr-07.pem' -CRLfile "
                       "'%s/cloud.crl.pem' '%s/node.pem' 2>&1 | grep -q 'certificate revoked'",
                       ct.dir, ct.dir, ct.dir, ct.dir),
                 0, "openssl verify -crl_check refuses the revoked node");
    /* A manager that never published: a clear refusal. */
    cr_expect_eq(CT_CLOUD("crl get --manager mgr-nobody"), 1);
    otpca_token_destroy(&node_tok);
}

/* The real manager given two cloud instances on one PostgreSQL database
 * (`cloud` and `cloud_notices` as lists): the window opens and syncs;
 * then one instance is killed (SIGKILL) and the window goes on with the
 * other: a node enrolls, a revocation made by the CLI reaches the window
 * as a notice, and at close its records and CRL reach the store, each
 * record once. */
Test(window, two_cloud_instances_one_killed_during_the_window)
{
    if (!ct.pg_base[0]) {
        ct_teardown(); /* a skipped test does not reach the suite's fini */
        cr_skip_test("several cloud instances share a PostgreSQL store; this run's store is SQLite "
                     "(unit.window_pg runs it)");
    }
    ct_server2_start();
    manager_setup();
    cr_assert_eq(ct_sh("grep -q '^cloud = tcp://[^,]*,tcp://' '%s'", mgr_conf), 0, "the manager is given both");
    manager_start(); /* lease and trust list from either instance */

    /* The first instance dies with the window open: the node's records
     * and the close go to the other. */
    cr_expect_eq(ct_server_stop(SIGKILL), 128 + SIGKILL, "the first instance killed");
    enroll_node();
    cr_assert_eq(CT_CLOUD("device revoke " NODE " --reason keyCompromise"), 0);
    int heard = 0;
    for (int i = 0; i < 150 && !heard; i++) {
        heard = ct_sh("grep -q 'notice: " NODE " is now revoked' '%s/manager.log'", ct.dir) == 0;
        if (!heard)
            usleep(20000);
    }
    cr_expect(heard, "the revocation reached the open window from the surviving instance");

    cr_assert_eq(ct_sh("'%s/otpca-manager' window close --config '%s'", ct_bin(), mgr_conf), 0);
    cr_expect_eq(manager_wait(), 0, "the window closes with exit 0");
    cr_expect_eq(ct_sh("grep -q '1 issued, 1 confirmed' '%s/manager.out'", ct.dir), 0, "the summary");
    cr_expect_eq(ct_sh("grep -q 'published to the cloud' '%s/manager.out'", ct.dir), 0, "the CRL published");
    cr_expect_eq(ct_sh("grep -q '2 records uploaded, 0 pending' '%s/manager.out'", ct.dir), 0, "both uploaded");
    cr_expect_eq(ct_db_int("SELECT count(*) FROM records", NULL, 0), 2, "the issuance and its confirmation");
    cr_expect_eq(ct_db_int("SELECT count(DISTINCT id) FROM records", NULL, 0), 2, "each once");
    /* The confirmation made the certificate current at the cloud (the
     * revocation since then shows as the state). */
    cr_expect_eq(ct_sh("'%s/otpca-cloud' --config '%s' device show " NODE " >'%s/show.out' && grep -q '^state *revoked' "
                       "'%s/show.out' && grep -Eq '^certificate *[0-9a-f]{64}$' '%s/show.out'",
                       ct_bin(), ct.conf, ct.dir, ct.dir, ct.dir),
                 0, "the cloud has the certificate and the revocation");
    cr_expect_eq(CT_CLOUD("audit verify"), 0);
}
