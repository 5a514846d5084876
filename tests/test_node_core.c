/*
 * The node firmware core (node-fw node.h) against the manager's own
 * sans-I/O checks and issuer (otpca-manager-core) with the rig's root and
 * manager tokens: the node's keys and TOTP seed are software here (a HAL
 * in this file), its flash is RAM. Enrollment end to end (signed time,
 * request, checks, issuance, commit, confirm, ack); a response from a
 * manager certified by another root, a replayed response, a tampered or
 * re-signed envelope, and a forged signature are dropped while the node
 * keeps waiting; resends, time-outs and manager Errors; and the request
 * encodings and signatures of Rejoin, KeyUpdate (new key then old key)
 * and Claim (new key then product key), each answered by a manager-side
 * response built here and committed by the node.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "otpca/manager/enroll.h"
#include "otpca/node/node.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/ecies.h"
#include "otpca/proto/msg.h"
#include "otpca/token/rig.h"
#include "otpca/token/token.h"
#include "otpca/token/wolf.h"
#include "testrig.h"

#define SERIAL "node-000003"
static const uint8_t MAC[6] = {2, 0, 0, 0, 0, 3};
static const uint8_t SEED[20] = "0123456789abcdefghij";
static const uint8_t NETKEY[16] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

/* ---- the manager side: rig tokens, certificates, issuer ---- */

static otpca_p11_t *p11;
static otpca_token_t *root_tok, *mgr_tok, *evil_tok;
static otpca_obj_t root_key, mgr_key, evil_key;
static otpca_wolf_signer root_ws, mgr_ws, evil_ws;
static uint8_t root_der[OTPCA_CERT_DER_MAX], mgr_der[OTPCA_CERT_DER_MAX], evil_root_der[OTPCA_CERT_DER_MAX],
    evil_mgr_der[OTPCA_CERT_DER_MAX];
static size_t root_len, mgr_len, evil_root_len, evil_mgr_len;
static uint8_t mgr_pub[65];
static otpca_mgr_profile profile;
static otpca_mgr_issuer issuer;

static otpca_err mgr_sign(void *ctx, const uint8_t d[32], uint8_t sig[64])
{
    (void)ctx;
    size_t len = 64;
    return otpca_token_sign_digest(mgr_tok, mgr_key, d, 32, OTPCA_SIG_RAW, sig, &len);
}

static void issue_ca(otpca_wolf_signer *by, const uint8_t *issuer_der, size_t issuer_len, const uint8_t *subject,
                     const char *cn, int path_len, uint8_t *der, size_t *len)
{
    otpca_cert_req r;
    memset(&r, 0, sizeof r);
    r.common_name = cn;
    r.subject_sec1 = subject;
    r.issuer_der = issuer_der;
    r.issuer_der_len = issuer_len;
    r.is_ca = 1;
    r.path_len = path_len;
    r.days = 30;
    cr_assert_eq(otpca_cert_issue(by, &r, der, len), OTPCA_ERR_OK, "certificate %s", cn);
}

/* ---- the node side: software keys and seed, RAM flash ---- */

typedef struct softnode {
    otpca_p256_soft keys[4];
    size_t n;
    int destroyed;
    uint8_t flash[2 * OTPCA_NODE_SLOT_SIZE];
} softnode;

static softnode sn;

static otpca_p256_soft *find(const uint8_t kid[8])
{
    uint8_t k[8];
    for (size_t i = 0; i < sn.n; i++) {
        otpca_p256_kid(sn.keys[i].pub, k);
        if (!memcmp(k, kid, 8))
            return &sn.keys[i];
    }
    return NULL;
}

static otpca_err n_sign(void *ctx, const uint8_t kid[8], const uint8_t d[32], uint8_t sig[64])
{
    (void)ctx;
    otpca_p256_soft *k = find(kid);
    return k ? otpca_p256_soft_sign(k, d, sig) : OTPCA_ERR_OBJECT_NOT_FOUND;
}

static otpca_err n_ecdh(void *ctx, const uint8_t kid[8], const uint8_t peer[65], uint8_t z[32])
{
    (void)ctx;
    otpca_p256_soft *k = find(kid);
    return k ? otpca_p256_soft_ecdh(k, peer, z) : OTPCA_ERR_OBJECT_NOT_FOUND;
}

static otpca_err n_hmac(void *ctx, const uint8_t *msg, size_t len, uint8_t *mac, size_t *mac_len)
{
    (void)ctx;
    Hmac h;
    cr_assert_eq(wc_HmacInit(&h, NULL, INVALID_DEVID), 0);
    cr_assert_eq(wc_HmacSetKey(&h, WC_SHA, SEED, sizeof SEED), 0);
    cr_assert_eq(wc_HmacUpdate(&h, msg, (word32)len), 0);
    cr_assert_eq(wc_HmacFinal(&h, mac), 0);
    wc_HmacFree(&h);
    *mac_len = 20;
    return OTPCA_ERR_OK;
}

static otpca_err n_keygen(void *ctx, uint8_t pub[65])
{
    (void)ctx;
    cr_assert_lt(sn.n, 4);
    cr_assert_eq(otpca_p256_soft_generate(&sn.keys[sn.n]), OTPCA_ERR_OK);
    memcpy(pub, sn.keys[sn.n++].pub, 65);
    return OTPCA_ERR_OK;
}

static otpca_err n_destroy(void *ctx, const uint8_t kid[8])
{
    (void)ctx;
    otpca_p256_soft *k = find(kid);
    if (!k)
        return OTPCA_ERR_OBJECT_NOT_FOUND;
    memset(k, 0, sizeof *k);
    sn.destroyed++;
    return OTPCA_ERR_OK;
}

static otpca_err n_random(void *ctx, uint8_t *p, size_t len)
{
    (void)ctx;
    return otpca_random(p, len);
}

static otpca_err f_read(void *ctx, uint32_t off, uint8_t *p, size_t len)
{
    (void)ctx;
    memcpy(p, sn.flash + off, len);
    return OTPCA_ERR_OK;
}

static otpca_err f_write(void *ctx, uint32_t off, const uint8_t *p, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++)
        sn.flash[off + i] &= p[i];
    return OTPCA_ERR_OK;
}

static otpca_err f_erase(void *ctx, uint32_t off, size_t len)
{
    (void)ctx;
    memset(sn.flash + off, 0xff, len);
    return OTPCA_ERR_OK;
}

static const otpca_node_hal hal = {.sign = n_sign,
                                   .ecdh = n_ecdh,
                                   .hmac = n_hmac,
                                   .keygen = n_keygen,
                                   .key_destroy = n_destroy,
                                   .random = n_random,
                                   .flash_read = f_read,
                                   .flash_write = f_write,
                                   .flash_erase = f_erase};

static otpca_node_slots slots;
static uint8_t scratch[OTPCA_NODE_SLOT_SIZE], nout[OTPCA_NODE_OUT_SIZE], nwork[OTPCA_NODE_WORK_SIZE];
static otpca_node_ctx node;
static uint64_t now_ms;
static int64_t node_offset_ms; /* the node's clock minus the manager's */

/* The manager's clock, seconds. */
static uint64_t mgr_now(void)
{
    return (uint64_t)((int64_t)now_ms - node_offset_ms) / 1000u;
}

/* The node (re)booted: store and core from the flash as it is. */
/* The root's revocations node_boot hands the node (none by default). */
static const otpca_node_serial *boot_revoked;
static size_t boot_n_revoked;

static void node_boot(const uint8_t *root, size_t rlen)
{
    otpca_node_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cr_assert_eq(otpca_node_slots_init(&slots, &hal, 0, OTPCA_NODE_SLOT_SIZE, scratch), OTPCA_ERR_OK);
    cfg.hal = &hal;
    cfg.store = &slots;
    cfg.serial = SERIAL;
    cfg.mac = MAC;
    cfg.mac_len = sizeof MAC;
    cfg.fw = "fw-test";
    cfg.root_der = root;
    cfg.root_len = rlen;
    memcpy(cfg.factory_pub, sn.keys[0].pub, 65);
    cfg.has_clock = true;
    cfg.timeout_ms = 1000;
    cfg.max_tries = 3;
    cfg.revoked = boot_revoked;
    cfg.n_revoked = boot_n_revoked;
    otpca_err e = otpca_node_init(&node, &cfg, nout, sizeof nout, nwork, sizeof nwork);
    cr_assert_eq(e, OTPCA_ERR_OK, "node init: %s", otpca_errname(e));
}

static void setup(void)
{
    uint8_t pub[65];
    size_t len = 0;
    memset(&sn, 0, sizeof sn);
    memset(sn.flash, 0xff, sizeof sn.flash);
    cr_assert_eq(otpca_p256_soft_generate(&sn.keys[0]), OTPCA_ERR_OK);
    sn.n = 1;
    cr_assert_eq(otpca_p11_new(NULL, &p11), OTPCA_ERR_OK);
    root_tok = testrig_open(p11, OTPCA_RIG_ROOT_TOKEN);
    mgr_tok = testrig_open(p11, "otpca-mgr-01");
    evil_tok = testrig_open(p11, OTPCA_RIG_CLOUD_TOKEN);
    cr_assert_eq(otpca_token_find(root_tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_ROOT_KEY, NULL, 0, &root_key), 0);
    cr_assert_eq(otpca_token_find(mgr_tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_MANAGER_KEY, NULL, 0, &mgr_key), 0);
    cr_assert_eq(otpca_token_find(evil_tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_CLOUD_KEY, NULL, 0, &evil_key), 0);
    cr_assert_eq(otpca_wolf_signer_init(&root_ws, root_tok, root_key), 0);
    cr_assert_eq(otpca_wolf_signer_init(&mgr_ws, mgr_tok, mgr_key), 0);
    cr_assert_eq(otpca_wolf_signer_init(&evil_ws, evil_tok, evil_key), 0);
    cr_assert_eq(otpca_token_pubkey_sec1(mgr_tok, mgr_key, mgr_pub), 0);
    root_len = evil_root_len = mgr_len = evil_mgr_len = OTPCA_CERT_DER_MAX;
    issue_ca(&root_ws, NULL, 0, NULL, "test root", 1, root_der, &root_len);
    issue_ca(&root_ws, root_der, root_len, mgr_pub, "mgr-01", 0, mgr_der, &mgr_len);
    /* Another root, with the same manager key certified by it. */
    issue_ca(&evil_ws, NULL, 0, NULL, "test root", 1, evil_root_der, &evil_root_len);
    issue_ca(&evil_ws, evil_root_der, evil_root_len, mgr_pub, "mgr-01", 0, evil_mgr_der, &evil_mgr_len);
    (void)pub;
    (void)len;
    otpca_mgr_profile_default(&profile);
    memset(&issuer, 0, sizeof issuer);
    issuer.ca = &mgr_ws;
    issuer.cose.sign = mgr_sign;
    otpca_p256_kid(mgr_pub, issuer.cose.kid);
    issuer.ca_der = mgr_der;
    issuer.ca_len = mgr_len;
    issuer.profile = &profile;
    issuer.netkey = NETKEY;
    issuer.netkey_len = sizeof NETKEY;
    issuer.netkey_epoch = 7;
    now_ms = (uint64_t)time(NULL) * 1000u;
    node_offset_ms = 0;
    node_boot(root_der, root_len);
}

static void teardown(void)
{
    otpca_wolf_signer_free(&root_ws);
    otpca_wolf_signer_free(&mgr_ws);
    otpca_wolf_signer_free(&evil_ws);
    otpca_token_destroy(&root_tok);
    otpca_token_destroy(&mgr_tok);
    otpca_token_destroy(&evil_tok);
    otpca_p11_destroy(&p11);
}

TestSuite(node_core, .init = setup, .fini = teardown, .timeout = 120);

/* ---- manager-side hooks for otpca_mgr_check_enroll/confirm ---- */

static otpca_mgr_issued last_issued;

static otpca_err h_device(void *arg, const char *serial, otpca_mgr_device *d)
{
    (void)arg;
    if (strcmp(serial, SERIAL))
        return OTPCA_ERR_NOT_FOUND;
    memset(d, 0, sizeof *d);
    d->state = OTPCA_DEV_APPROVED;
    d->in_scope = 1;
    memcpy(d->pubkey, sn.keys[0].pub, 65);
    d->pubkey_len = 65;
    d->seed = SEED;
    d->seed_len = sizeof SEED;
    d->digits = 6;
    d->period = 30;
    d->algorithm = 1;
    return OTPCA_ERR_OK;
}

static int h_nonce(void *arg, const uint8_t nonce[16], uint64_t t)
{
    (void)arg;
    (void)nonce;
    (void)t;
    return 0;
}

static otpca_err h_record(void *arg, const uint8_t id[16], otpca_mgr_issued *out)
{
    (void)arg;
    (void)id;
    *out = last_issued;
    return OTPCA_ERR_OK;
}

static const otpca_mgr_hooks hooks = {h_device, h_nonce, NULL, h_record};

/* What the node puts out now (asserts there is something), acknowledged. */
static size_t take(uint8_t *buf)
{
    size_t len = 0;
    const uint8_t *p = otpca_node_output_buf(&node, &len);
    cr_assert_not_null(p, "the node has a message to send");
    memcpy(buf, p, len);
    otpca_node_output_ack(&node, now_ms);
    cr_assert_eq(otpca_node_get_state(&node), OTPCA_NODE_WAIT);
    return len;
}

/* The manager's EnrollResponse to the node's EnrollRequest in req. */
static size_t manager_enroll(const uint8_t *req, size_t len, uint8_t *ans, size_t cap)
{
    otpca_mgr_window w = {1, 0, UINT64_MAX, 1000, 0};
    otpca_mgr_verdict v;
    uint8_t record[16], cert[OTPCA_CERT_DER_MAX];
    size_t cert_len = sizeof cert, out_len = 0;
    otpca_mgr_check_enroll(&w, mgr_now(), 90, &hooks, req, len, &v);
    cr_assert_eq(v.reason, OTPCA_MGR_OK, "the manager accepts the node's request: %s", otpca_mgr_reason_name(v.reason));
    cr_assert_eq(otpca_mgr_issue(&issuer, &v, MAC, sizeof MAC, mgr_now(), record, cert, &cert_len, ans, cap,
                                 &out_len),
                 OTPCA_ERR_OK);
    memset(&last_issued, 0, sizeof last_issued);
    strcpy(last_issued.serial, SERIAL);
    otpca_sha256(cert, cert_len, last_issued.cert_hash);
    memcpy(last_issued.pub, v.pub, 65);
    return out_len;
}

/* The manager's ConfirmAck to the node's EnrollConfirm. */
static size_t manager_confirm(const uint8_t *req, size_t len, uint8_t *ans, size_t cap)
{
    otpca_enroll_confirm c;
    otpca_mgr_issued rec;
    size_t out_len = 0;
    cr_assert_eq(otpca_mgr_check_confirm(&hooks, req, len, &c, &rec), OTPCA_MGR_OK, "the manager accepts the confirm");
    cr_assert_eq(otpca_mgr_confirm_ack(&issuer, &c, ans, cap, &out_len), OTPCA_ERR_OK);
    return out_len;
}

/* The whole enrollment; the response's bytes in resp (for replays). */
static void enroll(uint8_t *resp, size_t *resp_len)
{
    static uint8_t req[OTPCA_NODE_OUT_SIZE], ans[4096];
    size_t len, n;
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_ENROLL, now_ms), OTPCA_ERR_OK);
    len = take(req);
    n = manager_enroll(req, len, ans, sizeof ans);
    if (resp) {
        memcpy(resp, ans, n);
        *resp_len = n;
    }
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_get_state(&node), OTPCA_NODE_SEND, "committed; the confirm waits");
    const otpca_node_cred *c = otpca_node_credential(&node);
    cr_assert_not_null(c);
    cr_expect_eq(c->flags & OTPCA_NODE_CRED_CONFIRMED, 0, "not confirmed before the ack");
    len = take(req);
    n = manager_confirm(req, len, ans, sizeof ans);
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_get_state(&node), OTPCA_NODE_DONE);
}

Test(node_core, time_then_enrollment_against_the_manager_core)
{
    static uint8_t req[OTPCA_NODE_OUT_SIZE], ans[4096];
    size_t len, n = 0;
    /* A node without a clock: signed time first. */
    node.cfg.has_clock = false;
    node.time_valid = false;
    cr_expect_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_ENROLL, 5000), OTPCA_ERR_STATE, "no time, no enrollment");
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_TIME, 5000), OTPCA_ERR_OK);
    len = take(req);
    cr_assert_eq(otpca_mgr_time_response(&issuer, req, len, mgr_now(), ans, sizeof ans, &n), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, 5000), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_get_state(&node), OTPCA_NODE_DONE);
    cr_expect_eq(otpca_node_time(&node, 5000), mgr_now());
    node_offset_ms = 5000 - (int64_t)now_ms;
    now_ms = 5000; /* the node's monotonic clock from here on */

    enroll(NULL, NULL);
    const otpca_node_cred *c = otpca_node_credential(&node);
    cr_assert_not_null(c);
    cr_expect_eq(c->flags & OTPCA_NODE_CRED_CONFIRMED, OTPCA_NODE_CRED_CONFIRMED);
    cr_expect_eq(c->netkey_len, sizeof NETKEY);
    cr_expect_arr_eq(c->netkey, NETKEY, sizeof NETKEY);
    cr_expect_eq(c->netkey_epoch, 7);
    cr_expect_arr_eq(c->pub, sn.keys[0].pub, 65);
    cr_expect_eq(c->generation, 2, "committed, then rewritten confirmed");
    cr_expect_gt(node.bytes_out + node.bytes_in, 0u);
    /* After a reboot the credential is there, confirmed. */
    node_boot(root_der, root_len);
    c = otpca_node_credential(&node);
    cr_assert_not_null(c);
    cr_expect_eq(c->flags & OTPCA_NODE_CRED_CONFIRMED, OTPCA_NODE_CRED_CONFIRMED);
    cr_expect_arr_eq(c->netkey, NETKEY, sizeof NETKEY);
}

Test(node_core, a_manager_certified_by_another_root_is_refused)
{
    static uint8_t req[OTPCA_NODE_OUT_SIZE], ans[4096];
    size_t len, n;
    /* The manager signs with its real key but shows a certificate from another root. */
    issuer.ca_der = evil_mgr_der;
    issuer.ca_len = evil_mgr_len;
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_ENROLL, now_ms), OTPCA_ERR_OK);
    len = take(req);
    n = manager_enroll(req, len, ans, sizeof ans);
    cr_expect_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_CERT);
    cr_expect_eq(otpca_node_get_state(&node), OTPCA_NODE_WAIT, "still waiting for a genuine answer");
    cr_expect_null(otpca_node_credential(&node), "nothing committed");
    /* A node pinned to that other root refuses the genuine manager the same way. */
    issuer.ca_der = mgr_der;
    issuer.ca_len = mgr_len;
    node_boot(evil_root_der, evil_root_len);
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_ENROLL, now_ms), OTPCA_ERR_OK);
    now_ms += 30000; /* the next TOTP step */
    len = take(req);
    n = manager_enroll(req, len, ans, sizeof ans);
    cr_expect_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_CERT);
    /* Not a CA with pathLen 0: the root itself posing as the manager is not one. */
    cr_expect_null(otpca_node_credential(&node));
}

/* The serial number of a DER certificate, as a CRL lists it. */
static otpca_node_serial serial_of(const uint8_t *der, size_t len)
{
    DecodedCert dc;
    otpca_node_serial sn_;
    memset(&sn_, 0, sizeof sn_);
    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    cr_assert_eq(wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL), 0);
    const byte *p = dc.serial;
    int n = dc.serialSz;
    while (n > 1 && p[0] == 0)
        p++, n--;
    cr_assert(n >= 1 && n <= 20);
    memcpy(sn_.v, p, (size_t)n);
    sn_.len = (uint8_t)n;
    wc_FreeDecodedCert(&dc);
    return sn_;
}

/* A manager whose certificate the root revoked (its serial in the list
 * the node was given from the root's CRL) is refused like a stranger;
 * another serial in the list changes nothing. */
Test(node_core, a_manager_the_root_revoked_is_refused)
{
    static uint8_t req[OTPCA_NODE_OUT_SIZE], ans[4096];
    size_t len, n;
    otpca_node_serial list[2] = {{1, {0x42}}, serial_of(mgr_der, mgr_len)};
    boot_revoked = list;
    boot_n_revoked = 2;
    node_boot(root_der, root_len);
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_ENROLL, now_ms), OTPCA_ERR_OK);
    len = take(req);
    n = manager_enroll(req, len, ans, sizeof ans);
    cr_expect_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_CERT, "the revoked manager is refused");
    cr_expect_null(otpca_node_credential(&node), "nothing committed");
    /* Only the other serial: the same manager is accepted. */
    boot_n_revoked = 1;
    node_boot(root_der, root_len);
    now_ms += 30000; /* the next TOTP step */
    enroll(NULL, NULL);
    cr_expect_not_null(otpca_node_credential(&node));
    /* A bad list is refused at init. */
    otpca_node_config cfg = node.cfg;
    otpca_node_serial bad = {0, {0}};
    cfg.revoked = &bad;
    cfg.n_revoked = 1;
    cr_expect_eq(otpca_node_init(&node, &cfg, nout, sizeof nout, nwork, sizeof nwork), OTPCA_ERR_INVALID_ARG);
    boot_revoked = NULL;
    boot_n_revoked = 0;
}

Test(node_core, a_replayed_response_is_refused)
{
    static uint8_t old[4096], req[OTPCA_NODE_OUT_SIZE];
    size_t old_len = 0;
    enroll(old, &old_len);
    uint32_t gen = otpca_node_credential(&node)->generation;
    /* A new enrollment; the old response comes back. */
    now_ms += 30000;
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_ENROLL, now_ms), OTPCA_ERR_OK);
    take(req);
    cr_expect_eq(otpca_node_handle_input(&node, old, old_len, now_ms), OTPCA_ERR_PROTO_VALUE);
    cr_expect_eq(otpca_node_get_state(&node), OTPCA_NODE_WAIT);
    cr_expect_eq(otpca_node_credential(&node)->generation, gen, "nothing committed");
    /* After the flow, a late answer is not even looked at. */
    cr_assert_eq(otpca_node_handle_input(&node, old, old_len, now_ms), OTPCA_ERR_PROTO_VALUE);
}

/* The EnrollResponse in ans (signed), changed by f and signed again by the manager. */
static size_t resign(const uint8_t *ans, size_t n, void (*f)(otpca_enroll_response *, uint8_t *), uint8_t *out,
                     size_t cap)
{
    otpca_cose_sign1 c;
    otpca_enroll_response r;
    static uint8_t env[512];
    size_t len = 0;
    cr_assert_eq(otpca_cose_sign1_decode(ans, n, &c), OTPCA_ERR_OK);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r), OTPCA_ERR_OK);
    memcpy(env, r.netkey.p, r.netkey.len);
    r.netkey.p = env;
    f(&r, env);
    cr_assert_eq(otpca_msg_sign(&otpca_desc_enroll_response, &r, &issuer.cose, (otpca_buf){mgr_der, mgr_len}, out, cap,
                                &len),
                 OTPCA_ERR_OK);
    return len;
}

static void flip_ciphertext(otpca_enroll_response *r, uint8_t *env)
{
    env[1 + 65 + 3] ^= 0x40;
    (void)r;
}

static void flip_ephemeral(otpca_enroll_response *r, uint8_t *env)
{
    env[10] ^= 0x01;
    (void)r;
}

Test(node_core, a_tampered_envelope_is_refused)
{
    static uint8_t req[OTPCA_NODE_OUT_SIZE], ans[4096], bad[4096];
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_ENROLL, now_ms), OTPCA_ERR_OK);
    size_t len = take(req);
    size_t n = manager_enroll(req, len, ans, sizeof ans);
    /* Any flipped byte breaks the manager's signature. */
    memcpy(bad, ans, n);
    bad[n - 70] ^= 0x01;
    cr_expect_neq(otpca_node_handle_input(&node, bad, n, now_ms), OTPCA_ERR_OK);
    /* Signed again by the manager itself: the envelope still does not open. */
    size_t m = resign(ans, n, flip_ciphertext, bad, sizeof bad);
    cr_expect_eq(otpca_node_handle_input(&node, bad, m, now_ms), OTPCA_ERR_DECRYPT);
    m = resign(ans, n, flip_ephemeral, bad, sizeof bad);
    otpca_err e = otpca_node_handle_input(&node, bad, m, now_ms);
    cr_expect(e == OTPCA_ERR_DECRYPT || e == OTPCA_ERR_PROTO_VALUE, "bad ephemeral key: %s", otpca_errname(e));
    cr_expect_eq(otpca_node_get_state(&node), OTPCA_NODE_WAIT);
    cr_expect_null(otpca_node_credential(&node));
    /* The genuine answer still works. */
    cr_expect_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    cr_expect_not_null(otpca_node_credential(&node));
}

Test(node_core, resends_the_same_request_then_times_out)
{
    static uint8_t a[OTPCA_NODE_OUT_SIZE], b[OTPCA_NODE_OUT_SIZE];
    uint64_t dl = 0;
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_ENROLL, now_ms), OTPCA_ERR_OK);
    size_t la = take(a);
    cr_assert_eq(otpca_node_step(&node, now_ms + 999, &dl), OTPCA_NODE_WAIT);
    cr_expect_eq(dl, now_ms + 1000);
    cr_assert_eq(otpca_node_step(&node, now_ms + 1000, &dl), OTPCA_NODE_SEND);
    now_ms += 1000;
    size_t lb = take(b);
    cr_expect_eq(la, lb);
    cr_expect_arr_eq(a, b, la, "a resend is the same request (the manager answers it idempotently)");
    cr_assert_eq(otpca_node_step(&node, now_ms, &dl), OTPCA_NODE_WAIT);
    cr_expect_eq(dl, now_ms + 2000, "the wait doubles");
    now_ms = dl;
    cr_assert_eq(otpca_node_step(&node, now_ms, &dl), OTPCA_NODE_SEND);
    take(b);
    otpca_node_step(&node, now_ms, &dl);
    now_ms = dl;
    cr_assert_eq(otpca_node_step(&node, now_ms, &dl), OTPCA_NODE_FAILED, "three sends, then give up");
    cr_expect_eq(otpca_node_last_error(&node, NULL), OTPCA_ERR_TIMEOUT);
    cr_expect_eq(dl, OTPCA_NODE_DEADLINE_NONE);
}

Test(node_core, manager_errors_back_off_or_fail)
{
    static uint8_t req[OTPCA_NODE_OUT_SIZE], err[64];
    otpca_cose_sign1 c;
    otpca_enroll_request m;
    size_t n = 0;
    uint64_t dl = 0;
    unsigned wire = 0;
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_ENROLL, now_ms), OTPCA_ERR_OK);
    size_t len = take(req);
    cr_assert_eq(otpca_cose_sign1_decode(req, len, &c), OTPCA_ERR_OK);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_enroll_request, c.payload.p, c.payload.len, &m), OTPCA_ERR_OK);
    uint8_t nonce[16];
    memcpy(nonce, m.nonce.p, 16);
    /* BUSY: a fresh request after the wait. */
    cr_assert_eq(otpca_mgr_error(OTPCA_WIRE_BUSY, nonce, err, sizeof err, &n), OTPCA_ERR_OK);
    cr_expect_eq(otpca_node_handle_input(&node, err, n, now_ms), OTPCA_ERR_REFUSED);
    cr_assert_eq(otpca_node_step(&node, now_ms, &dl), OTPCA_NODE_BACKOFF);
    cr_assert_eq(otpca_node_step(&node, dl, &dl), OTPCA_NODE_SEND);
    static uint8_t again[OTPCA_NODE_OUT_SIZE];
    size_t l2 = take(again);
    cr_expect(l2 != len || memcmp(again, req, len) != 0, "a new nonce");
    /* An Error for another request's nonce is ignored. */
    cr_assert_eq(otpca_mgr_error(OTPCA_WIRE_AUTH_FAILED, nonce, err, sizeof err, &n), OTPCA_ERR_OK);
    cr_expect_eq(otpca_node_handle_input(&node, err, n, now_ms), OTPCA_ERR_PROTO_VALUE);
    cr_expect_eq(otpca_node_get_state(&node), OTPCA_NODE_WAIT);
    /* AUTH_FAILED (no nonce): the flow fails, nothing committed. */
    cr_assert_eq(otpca_mgr_error(OTPCA_WIRE_AUTH_FAILED, NULL, err, sizeof err, &n), OTPCA_ERR_OK);
    cr_expect_eq(otpca_node_handle_input(&node, err, n, now_ms), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_node_get_state(&node), OTPCA_NODE_FAILED);
    cr_expect_eq(otpca_node_last_error(&node, &wire), OTPCA_ERR_REFUSED);
    cr_expect_eq(wire, OTPCA_WIRE_AUTH_FAILED);
    cr_expect_null(otpca_node_credential(&node));
    /* Garbage is refused without effect. */
    uint8_t junk[3] = {0xff, 0x00, 0x01};
    cr_expect_neq(otpca_node_handle_input(&node, junk, sizeof junk, now_ms), OTPCA_ERR_OK);
}

/* An EnrollResponse for nonce, built here as the manager would answer
 * Rejoin (cert NULL) or KeyUpdate/Claim (a certificate for pub). */
static size_t manager_answer(const uint8_t nonce[16], const uint8_t pub[65], bool with_cert, uint8_t *out, size_t cap)
{
    static uint8_t cert[OTPCA_CERT_DER_MAX], env[256], rec[16];
    size_t cert_len = sizeof cert, env_len = 0, len = 0;
    uint8_t aad[64];
    otpca_enroll_response r;
    memset(&r, 0, sizeof r);
    if (with_cert) {
        cr_assert_eq(otpca_mgr_node_cert(&mgr_ws, NULL, mgr_der, mgr_len, &profile, SERIAL, MAC, sizeof MAC, pub, cert,
                                         &cert_len),
                     OTPCA_ERR_OK);
        r.cert = (otpca_buf){cert, cert_len};
        otpca_sha256(cert, cert_len, last_issued.cert_hash);
        memcpy(last_issued.pub, pub, 65);
    }
    memcpy(aad, SERIAL, strlen(SERIAL));
    memcpy(aad + strlen(SERIAL), nonce, 16);
    cr_assert_eq(otpca_ecies_seal(pub, 65, OTPCA_ECIES_LABEL_NETKEY, aad, strlen(SERIAL) + 16, NETKEY, sizeof NETKEY,
                                  env, sizeof env, &env_len),
                 OTPCA_ERR_OK);
    cr_assert_eq(otpca_random(rec, 16), OTPCA_ERR_OK);
    r.nonce = (otpca_buf){nonce, 16};
    r.record = (otpca_buf){rec, 16};
    r.time = mgr_now();
    r.netkey = (otpca_buf){env, env_len};
    r.netkey_epoch = 8;
    cr_assert_eq(otpca_msg_sign(&otpca_desc_enroll_response, &r, &issuer.cose, (otpca_buf){mgr_der, mgr_len}, out, cap,
                                &len),
                 OTPCA_ERR_OK);
    return len;
}

/* Verifies a double signature (PROTOCOL.md 4.3); the inner payload. */
static otpca_buf double_signed(const uint8_t *msg, size_t len, const uint8_t outer_pub[65], const otpca_msg_desc *d,
                               void *m)
{
    otpca_cose_sign1 outer, inner;
    cr_assert_eq(otpca_cose_sign1_decode(msg, len, &outer), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cose_sign1_verify(&outer, outer_pub, 65), OTPCA_ERR_OK, "outer: signed by the old key");
    cr_assert_eq(otpca_cose_sign1_decode(outer.payload.p, outer.payload.len, &inner), OTPCA_ERR_OK);
    cr_assert_eq(otpca_msg_decode(d, inner.payload.p, inner.payload.len, m), OTPCA_ERR_OK);
    return inner.payload;
}

Test(node_core, rejoin_request_and_answer)
{
    static uint8_t req[OTPCA_NODE_OUT_SIZE], ans[4096];
    otpca_cose_sign1 c;
    otpca_rejoin m;
    uint8_t hash[32];
    enroll(NULL, NULL);
    const otpca_node_cred *cur = otpca_node_credential(&node);
    otpca_sha256(cur->cert, cur->cert_len, hash);
    now_ms += 30000;
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_REJOIN, now_ms), OTPCA_ERR_OK);
    size_t len = take(req);
    cr_assert_eq(otpca_cose_sign1_decode(req, len, &c), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cose_sign1_verify(&c, sn.keys[0].pub, 65), OTPCA_ERR_OK, "signed by the certified key");
    cr_assert_eq(otpca_msg_decode(&otpca_desc_rejoin, c.payload.p, c.payload.len, &m), OTPCA_ERR_OK);
    cr_expect_arr_eq(m.cert_hash.p, hash, 32);
    cr_expect_eq(m.serial.len, strlen(SERIAL));
    uint32_t code = 0;
    cr_assert_eq(otpca_mgr_totp_at(SEED, sizeof SEED, 6, 1, m.time / 30, &code), OTPCA_ERR_OK);
    cr_expect_eq(m.totp, code, "the TOTP of the request's time");
    /* A response with a certificate is not a Rejoin answer. */
    size_t n = manager_answer(m.nonce.p, sn.keys[0].pub, true, ans, sizeof ans);
    cr_expect_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_PROTO_VALUE);
    n = manager_answer(m.nonce.p, sn.keys[0].pub, false, ans, sizeof ans);
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_get_state(&node), OTPCA_NODE_DONE, "no confirm for a Rejoin");
    cur = otpca_node_credential(&node);
    cr_expect_eq(cur->netkey_epoch, 8);
    cr_expect_eq(cur->flags & OTPCA_NODE_CRED_CONFIRMED, OTPCA_NODE_CRED_CONFIRMED);
    uint8_t h2[32];
    otpca_sha256(cur->cert, cur->cert_len, h2);
    cr_expect_arr_eq(h2, hash, 32, "the same certificate");
}

Test(node_core, key_update_signed_by_new_then_old_key)
{
    static uint8_t req[OTPCA_NODE_OUT_SIZE], ans[4096];
    otpca_key_update m;
    uint8_t hash[32], newpub[65];
    enroll(NULL, NULL);
    const otpca_node_cred *cur = otpca_node_credential(&node);
    otpca_sha256(cur->cert, cur->cert_len, hash);
    now_ms += 30000;
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_KEYUPDATE, now_ms), OTPCA_ERR_OK);
    cr_assert_eq(sn.n, 2, "a new key in the token");
    size_t len = take(req);
    double_signed(req, len, sn.keys[0].pub, &otpca_desc_key_update, &m);
    cr_expect_arr_eq(m.cert_hash.p, hash, 32, "names the certificate being replaced");
    cr_assert_eq(otpca_p256_pub_normalize(m.pubkey.p, m.pubkey.len, newpub), OTPCA_ERR_OK);
    cr_expect_arr_eq(newpub, sn.keys[1].pub, 65, "the new key");
    /* Inner signature by the new key. */
    otpca_cose_sign1 outer, inner;
    cr_assert_eq(otpca_cose_sign1_decode(req, len, &outer), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cose_sign1_decode(outer.payload.p, outer.payload.len, &inner), OTPCA_ERR_OK);
    cr_expect_eq(otpca_cose_sign1_verify(&inner, newpub, 65), OTPCA_ERR_OK, "inner: signed by the new key");
    cr_expect_neq(otpca_cose_sign1_verify(&inner, sn.keys[0].pub, 65), OTPCA_ERR_OK);
    /* A certificate for the old key is refused; for the new one accepted. */
    size_t n = manager_answer(m.nonce.p, sn.keys[0].pub, true, ans, sizeof ans);
    cr_expect_neq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    n = manager_answer(m.nonce.p, newpub, true, ans, sizeof ans);
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    cur = otpca_node_credential(&node);
    cr_expect_arr_eq(cur->pub, newpub, 65, "committed for the new key");
    /* The previous credential (old key) is still in the other slot until the ack. */
    static otpca_node_cred prev;
    cr_assert_eq(otpca_node_slots_load_previous(&slots, &prev), OTPCA_ERR_OK);
    cr_expect_arr_eq(prev.pub, sn.keys[0].pub, 65);
    /* The confirm is signed by the new key. */
    len = take(req);
    otpca_cose_sign1 cc;
    cr_assert_eq(otpca_cose_sign1_decode(req, len, &cc), OTPCA_ERR_OK);
    cr_expect_eq(otpca_cose_sign1_verify(&cc, newpub, 65), OTPCA_ERR_OK);
    n = manager_confirm(req, len, ans, sizeof ans);
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    cr_expect_eq(otpca_node_get_state(&node), OTPCA_NODE_DONE);
    cr_expect_eq(sn.destroyed, 1, "the old key is destroyed after the confirm");
}

Test(node_core, claim_signed_by_new_then_product_key)
{
    static uint8_t req[OTPCA_NODE_OUT_SIZE], ans[4096];
    otpca_enroll_request m;
    uint8_t newpub[65];
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_CLAIM, now_ms), OTPCA_ERR_OK);
    size_t len = take(req);
    double_signed(req, len, sn.keys[0].pub, &otpca_desc_claim, &m);
    cr_assert_eq(otpca_p256_pub_normalize(m.pubkey.p, m.pubkey.len, newpub), OTPCA_ERR_OK);
    cr_expect_arr_eq(newpub, sn.keys[1].pub, 65, "the new unique key");
    cr_expect_eq(m.mac.len, 6);
    size_t n = manager_answer(m.nonce.p, newpub, true, ans, sizeof ans);
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    len = take(req);
    n = manager_confirm(req, len, ans, sizeof ans);
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    cr_expect_arr_eq(otpca_node_credential(&node)->pub, newpub, 65);
}

Test(node_core, a_confirm_left_pending_by_a_reboot_is_sent_again)
{
    static uint8_t req[OTPCA_NODE_OUT_SIZE], ans[4096];
    size_t n = 0;
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_ENROLL, now_ms), OTPCA_ERR_OK);
    size_t len = take(req);
    n = manager_enroll(req, len, ans, sizeof ans);
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    /* Power lost before the confirm left. */
    node_boot(root_der, root_len);
    const otpca_node_cred *c = otpca_node_credential(&node);
    cr_assert_not_null(c, "the committed credential survived");
    cr_expect_eq(c->flags & OTPCA_NODE_CRED_CONFIRMED, 0);
    cr_expect_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_CONFIRM, now_ms), OTPCA_ERR_STATE,
                 "the manager certificate is needed first");
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_TIME, now_ms), OTPCA_ERR_OK);
    len = take(req);
    cr_assert_eq(otpca_mgr_time_response(&issuer, req, len, mgr_now(), ans, sizeof ans, &n), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_start(&node, OTPCA_NODE_FLOW_CONFIRM, now_ms), OTPCA_ERR_OK);
    len = take(req);
    n = manager_confirm(req, len, ans, sizeof ans);
    cr_assert_eq(otpca_node_handle_input(&node, ans, n, now_ms), OTPCA_ERR_OK);
    cr_expect_eq(otpca_node_credential(&node)->flags & OTPCA_NODE_CRED_CONFIRMED, OTPCA_NODE_CRED_CONFIRMED);
}
