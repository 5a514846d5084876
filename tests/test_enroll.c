/*
 * Hybrid authentication and issuance (manager/src/enroll.c) with rig
 * tokens: node-000002 signs its EnrollRequest and computes its TOTP inside
 * its token; the manager token's CA key signs the certificate and the
 * response. An accepted request gets a certificate that wolfSSL verifies
 * under the manager certificate, for exactly the device key, and a network
 * key that opens only with the node token's ECDH; each rejection gives its
 * own reason, and only failures signed by the device key count towards a
 * lockout.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>

#include "otpca/common/hex.h"
#include "otpca/manager/enroll.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/ecies.h"
#include "otpca/proto/p256.h"
#include "otpca/token/rig.h"
#include "otpca/token/token.h"
#include "testrig.h"

#define NODE "node-000002"

static otpca_p11_t *p11;
static otpca_token_t *node_tok, *mgr_tok;
static otpca_obj_t dev_key, dev_seed, ca_key;
static uint8_t dev_pub[65], ca_pub[65], seed[64], mac[6];
static size_t seed_len;
static uint8_t ca_der[OTPCA_CERT_DER_MAX];
static size_t ca_len;
static otpca_wolf_signer ca;
static WC_RNG rng;
static otpca_mgr_profile profile;
static otpca_mgr_issuer issuer;
static const uint8_t netkey[16] = {0x6e, 0x65, 0x74, 0x6b, 0x65, 0x79, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

/* The registry and the nonce memory, as the hooks see them. */
static otpca_mgr_device reg;
static int reg_found;
static uint8_t nonces[64][16];
static size_t n_nonces;

static otpca_err hook_device(void *arg, const char *serial, otpca_mgr_device *d)
{
    (void)arg;
    if (!reg_found || strcmp(serial, NODE) != 0)
        return OTPCA_ERR_NOT_FOUND;
    *d = reg;
    return OTPCA_ERR_OK;
}

static int hook_nonce(void *arg, const uint8_t nonce[16], uint64_t t)
{
    (void)arg, (void)t;
    for (size_t i = 0; i < n_nonces; i++)
        if (!memcmp(nonces[i], nonce, 16))
            return 1;
    cr_assert_lt(n_nonces, 64);
    memcpy(nonces[n_nonces++], nonce, 16);
    return 0;
}

/* The journal's one issued record. */
static uint8_t issued_id[16];
static otpca_mgr_issued issued;
static int have_issued;

static otpca_err hook_record(void *arg, const uint8_t id[16], otpca_mgr_issued *out)
{
    (void)arg;
    if (!have_issued || memcmp(id, issued_id, 16) != 0)
        return OTPCA_ERR_NOT_FOUND;
    *out = issued;
    return OTPCA_ERR_OK;
}

static const otpca_mgr_hooks hooks = {hook_device, hook_nonce, NULL, hook_record};

static otpca_err sign_with(otpca_token_t *t, otpca_obj_t k, const uint8_t digest[32], uint8_t sig[64])
{
    size_t len = 64;
    return otpca_token_sign_digest(t, k, digest, 32, OTPCA_SIG_RAW, sig, &len);
}
static otpca_err node_sign(void *ctx, const uint8_t d[32], uint8_t sig[64])
{
    (void)ctx;
    return sign_with(node_tok, dev_key, d, sig);
}
static otpca_err mgr_sign(void *ctx, const uint8_t d[32], uint8_t sig[64])
{
    (void)ctx;
    return sign_with(mgr_tok, ca_key, d, sig);
}
static otpca_err node_ecdh(void *ctx, const uint8_t peer[65], uint8_t z[32])
{
    (void)ctx;
    return otpca_token_ecdh(node_tok, dev_key, peer, 65, z);
}

/* The manifest row of NODE: its seed (the registry's copy). */
static void manifest_seed(void)
{
    char path[512], line[1024];
    snprintf(path, sizeof path, "%s/manifest.csv", testrig_dir());
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, NODE ",", sizeof NODE))
            continue;
        char *save = NULL, *fld[8];
        size_t n = 0;
        for (char *t = strtok_r(line, ",\n", &save); t && n < 8; t = strtok_r(NULL, ",\n", &save))
            fld[n++] = t;
        cr_assert_geq(n, 4);
        cr_assert_eq(otpca_hex_decode(fld[3], strlen(fld[3]), seed, sizeof seed, &seed_len), OTPCA_ERR_OK);
    }
    fclose(f);
    cr_assert_gt(seed_len, 0);
}

static void setup(void)
{
    cr_assert_eq(otpca_p11_new(NULL, &p11), OTPCA_ERR_OK);
    node_tok = testrig_open(p11, NODE);
    mgr_tok = testrig_open(p11, "otpca-mgr-01");
    cr_assert_eq(otpca_token_find(node_tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_DEVICE_KEY, NULL, 0, &dev_key), 0);
    cr_assert_eq(otpca_token_find(node_tok, OTPCA_OBJ_SECRET_KEY, OTPCA_RIG_DEVICE_SEED, NULL, 0, &dev_seed), 0);
    cr_assert_eq(otpca_token_pubkey_sec1(node_tok, dev_key, dev_pub), 0);
    cr_assert_eq(otpca_token_find(mgr_tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_MANAGER_KEY, NULL, 0, &ca_key), 0);
    cr_assert_eq(otpca_token_pubkey_sec1(mgr_tok, ca_key, ca_pub), 0);
    cr_assert_eq(otpca_wolf_signer_init(&ca, mgr_tok, ca_key), 0);
    cr_assert_eq(wc_InitRng(&rng), 0);
    otpca_cert_req req = {.common_name = "mgr-01", .is_ca = 1, .path_len = 0, .days = 30};
    ca_len = sizeof ca_der;
    cr_assert_eq(otpca_cert_issue(&ca, &req, ca_der, &ca_len), 0);
    manifest_seed();
    memcpy(mac, (uint8_t[]){2, 0, 0, 0, 0, 2}, 6);

    otpca_mgr_profile_default(&profile);
    memset(&issuer, 0, sizeof issuer);
    issuer.ca = &ca;
    issuer.rng = &rng;
    issuer.cose.sign = mgr_sign;
    otpca_p256_kid(ca_pub, issuer.cose.kid);
    issuer.ca_der = ca_der;
    issuer.ca_len = ca_len;
    issuer.profile = &profile;
    issuer.netkey = netkey;
    issuer.netkey_len = sizeof netkey;
    issuer.netkey_epoch = 7;

    memset(&reg, 0, sizeof reg);
    reg.state = OTPCA_DEV_APPROVED;
    reg.in_scope = 1;
    memcpy(reg.pubkey, dev_pub, 65);
    reg.pubkey_len = 65;
    reg.seed = seed;
    reg.seed_len = seed_len;
    reg.digits = 6;
    reg.period = 30;
    reg.algorithm = 1;
    reg_found = 1;
    n_nonces = 0;
}

static void teardown(void)
{
    wc_FreeRng(&rng);
    otpca_wolf_signer_free(&ca);
    otpca_token_destroy(&node_tok);
    otpca_token_destroy(&mgr_tok);
    otpca_p11_destroy(&p11);
}

TestSuite(enroll, .init = setup, .fini = teardown);

static otpca_mgr_window open_window(uint64_t now)
{
    otpca_mgr_window w = {.open = 1, .not_before = now - 10, .not_after = now + 3600, .max_enroll = 100};
    return w;
}

struct req_opts {
    int64_t time_off;
    int totp_off;
    int compressed;
    const uint8_t *ca_kid;
    int forge; /* sign with a software key under the device's kid */
};

/* The fields of an EnrollRequest (and a Claim) for NODE: a fresh nonce,
 * the TOTP of `now` computed in the node token, the key given. */
static void enroll_fields(uint64_t now, otpca_buf pubkey, uint8_t nonce[16], otpca_enroll_request *m)
{
    uint32_t totp = 0;
    cr_assert_eq(otpca_random(nonce, 16), 0);
    cr_assert_eq(otpca_token_totp(node_tok, dev_seed, OTPCA_OTP_SHA1, (time_t)now, 30, 6, &totp), 0);
    memset(m, 0, sizeof *m);
    m->nonce = (otpca_buf){nonce, 16};
    m->time = now;
    m->serial = (otpca_buf){(const uint8_t *)NODE, strlen(NODE)};
    m->mac = (otpca_buf){mac, 6};
    m->pubkey = pubkey;
    m->totp = totp;
    m->fw = (otpca_buf){(const uint8_t *)"fw-1.0", 6};
}

/* A signed EnrollRequest from the node token (TOTP computed in it). */
static size_t make_request(uint64_t now, const struct req_opts *o, uint8_t *out, size_t cap)
{
    uint8_t nonce[16], pubc[33];
    size_t len = 0;
    cr_assert_eq(otpca_p256_pub_compress(dev_pub, pubc), 0);
    otpca_enroll_request m;
    enroll_fields(now, o->compressed ? (otpca_buf){pubc, 33} : (otpca_buf){dev_pub, 65}, nonce, &m);
    m.time = (uint64_t)((int64_t)now + o->time_off);
    m.totp = (m.totp + (uint32_t)o->totp_off) % 1000000u;
    if (o->ca_kid)
        m.ca = (otpca_buf){o->ca_kid, OTPCA_KID_LEN};
    otpca_signer s = {node_sign, NULL, {0}};
    otpca_p256_soft soft;
    if (o->forge) {
        cr_assert_eq(otpca_p256_soft_generate(&soft), 0);
        s.sign = otpca_p256_soft_sign;
        s.ctx = &soft;
    }
    otpca_p256_kid(dev_pub, s.kid);
    cr_assert_eq(otpca_msg_sign(&otpca_desc_enroll_request, &m, &s, (otpca_buf){NULL, 0}, out, cap, &len), 0);
    if (o->forge)
        otpca_p256_soft_wipe(&soft);
    return len;
}

Test(enroll, an_accepted_request_gets_a_certificate_and_the_network_key)
{
    uint64_t now = (uint64_t)time(NULL);
    otpca_mgr_window w = open_window(now);
    uint8_t in[1024], out[4096], cert[OTPCA_CERT_DER_MAX], record[16];
    size_t cert_len = sizeof cert, out_len = 0;
    struct req_opts o = {.compressed = 1};
    size_t len = make_request(now, &o, in, sizeof in);
    otpca_mgr_verdict v;
    otpca_mgr_check_enroll(&w, now, 90, &hooks, in, len, &v);
    cr_assert_eq(v.reason, OTPCA_MGR_OK, "%s", otpca_mgr_reason_name(v.reason));
    cr_expect_str_eq(v.serial, NODE);
    cr_expect_eq(v.step, now / 30);
    cr_assert_eq(otpca_mgr_issue(&issuer, &v, mac, 6, now, record, cert, &cert_len, out, sizeof out, &out_len), 0);

    /* The response: signed by the manager key, x5chain carried, nonce echoed. */
    otpca_cose_sign1 c;
    otpca_enroll_response r;
    cr_assert_eq(otpca_cose_sign1_decode(out, out_len, &c), 0);
    cr_expect_eq(otpca_cose_sign1_verify(&c, ca_pub, 65), 0);
    cr_assert_not_null(c.x5chain.p, "x5chain when the node holds no manager certificate");
    cr_expect_eq(c.x5chain.len, ca_len);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r), 0);
    cr_expect_arr_eq(r.nonce.p, v.req.nonce.p, 16);
    cr_expect_arr_eq(r.record.p, record, 16);
    cr_expect_eq(r.netkey_epoch, 7);
    cr_assert_eq(r.cert.len, cert_len);
    cr_expect_arr_eq(r.cert.p, cert, cert_len);

    /* The certificate chains to the manager certificate and certifies the device key. */
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    cr_assert_not_null(cm);
    cr_expect_eq(wolfSSL_CertManagerLoadCABuffer(cm, ca_der, (long)ca_len, WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
    cr_expect_eq(wolfSSL_CertManagerVerifyBuffer(cm, cert, (long)cert_len, WOLFSSL_FILETYPE_ASN1), WOLFSSL_SUCCESS);
    wolfSSL_CertManagerFree(cm);
    DecodedCert dc;
    wc_InitDecodedCert(&dc, cert, (word32)cert_len, NULL);
    cr_assert_eq(wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL), 0);
    cr_expect_str_eq(dc.subjectCN, NODE);
    cr_expect_eq(dc.pubKeySize > 0, 1);
    wc_FreeDecodedCert(&dc);
    uint8_t spki[128];
    word32 spki_len = sizeof spki;
    wc_InitDecodedCert(&dc, cert, (word32)cert_len, NULL);
    cr_assert_eq(wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL), 0);
    cr_assert_eq(wc_GetPubKeyDerFromCert(&dc, spki, &spki_len), 0);
    wc_FreeDecodedCert(&dc);
    cr_expect(spki_len >= 65 && !memcmp(spki + spki_len - 65, dev_pub, 65), "the certificate holds the device key");

    /* The network key opens with the node token (aad serial || nonce) and
     * with nothing else. */
    uint8_t aad[64 + 16], pt[64];
    size_t pt_len = 0, sl = strlen(NODE);
    memcpy(aad, NODE, sl);
    memcpy(aad + sl, v.req.nonce.p, 16);
    cr_assert_eq(otpca_ecies_open(node_ecdh, NULL, dev_pub, OTPCA_ECIES_LABEL_NETKEY, aad, sl + 16, r.netkey.p,
                                  r.netkey.len, pt, sizeof pt, &pt_len),
                 0);
    cr_expect_eq(pt_len, sizeof netkey);
    cr_expect_arr_eq(pt, netkey, sizeof netkey);
    aad[0] ^= 1;
    cr_expect_neq(otpca_ecies_open(node_ecdh, NULL, dev_pub, OTPCA_ECIES_LABEL_NETKEY, aad, sl + 16, r.netkey.p,
                                   r.netkey.len, pt, sizeof pt, &pt_len),
                  0, "another serial's envelope does not open");

    /* The same request again: a replay. */
    otpca_mgr_check_enroll(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_REPLAY);
    cr_expect_eq(v.count_failure, 0, "a replay must not lock a device out");
}

Test(enroll, no_x5chain_when_the_node_holds_the_managers_certificate)
{
    uint64_t now = (uint64_t)time(NULL);
    otpca_mgr_window w = open_window(now);
    uint8_t in[1024], out[4096], cert[OTPCA_CERT_DER_MAX], record[16], kid[8];
    size_t cert_len = sizeof cert, out_len = 0;
    otpca_p256_kid(ca_pub, kid);
    struct req_opts o = {.ca_kid = kid};
    size_t len = make_request(now, &o, in, sizeof in);
    otpca_mgr_verdict v;
    otpca_mgr_check_enroll(&w, now, 90, &hooks, in, len, &v);
    cr_assert_eq(v.reason, OTPCA_MGR_OK, "%s", otpca_mgr_reason_name(v.reason));
    cr_assert_eq(otpca_mgr_issue(&issuer, &v, mac, 6, now, record, cert, &cert_len, out, sizeof out, &out_len), 0);
    otpca_cose_sign1 c;
    cr_assert_eq(otpca_cose_sign1_decode(out, out_len, &c), 0);
    cr_expect_null(c.x5chain.p);
    cr_expect_eq(otpca_cose_sign1_verify(&c, ca_pub, 65), 0);
}

/* One request with options o against registry/window changes; its reason. */
static int reason_of(const struct req_opts *o, otpca_mgr_window *w, uint64_t now, int *count)
{
    uint8_t in[1024];
    size_t len = make_request(now, o, in, sizeof in);
    otpca_mgr_verdict v;
    otpca_mgr_check_enroll(w, now, 90, &hooks, in, len, &v);
    if (count)
        *count = v.count_failure;
    return v.reason;
}

Test(enroll, each_check_has_its_reason)
{
    uint64_t now = (uint64_t)time(NULL);
    struct req_opts plain = {0};
    otpca_mgr_window w = open_window(now);
    int count = -1;

    w.open = 0;
    cr_expect_eq(reason_of(&plain, &w, now, NULL), OTPCA_MGR_WINDOW, "closed");
    w = open_window(now);
    w.issued = w.max_enroll;
    cr_expect_eq(reason_of(&plain, &w, now, NULL), OTPCA_MGR_WINDOW, "limit reached");
    w = open_window(now);
    w.not_after = now - 1;
    cr_expect_eq(reason_of(&plain, &w, now, NULL), OTPCA_MGR_WINDOW, "lease expired");
    w = open_window(now);

    struct req_opts skewed = {.time_off = -200};
    cr_expect_eq(reason_of(&skewed, &w, now, &count), OTPCA_MGR_SKEW);
    cr_expect_eq(count, 0);
    skewed.time_off = 91;
    cr_expect_eq(reason_of(&skewed, &w, now, NULL), OTPCA_MGR_SKEW, "from the future");
    skewed.time_off = 89;
    cr_expect_eq(reason_of(&skewed, &w, now, NULL), OTPCA_MGR_OK, "inside the skew");

    reg_found = 0;
    cr_expect_eq(reason_of(&plain, &w, now, NULL), OTPCA_MGR_UNKNOWN, "unknown serial");
    reg_found = 1;
    reg.in_scope = 0;
    cr_expect_eq(reason_of(&plain, &w, now, NULL), OTPCA_MGR_UNKNOWN, "outside the scope");
    reg.in_scope = 1;
    reg.state = OTPCA_DEV_REVOKED;
    cr_expect_eq(reason_of(&plain, &w, now, NULL), OTPCA_MGR_REVOKED);
    reg.state = OTPCA_DEV_LOCKED;
    cr_expect_eq(reason_of(&plain, &w, now, NULL), OTPCA_MGR_LOCKED);
    reg.state = OTPCA_DEV_ENROLLED;
    cr_expect_eq(reason_of(&plain, &w, now, NULL), OTPCA_MGR_OK, "an enrolled device may enroll again");
    reg.state = OTPCA_DEV_APPROVED;

    /* Another device's key in the registry. */
    otpca_p256_soft other;
    cr_assert_eq(otpca_p256_soft_generate(&other), 0);
    memcpy(reg.pubkey, other.pub, 65);
    cr_expect_eq(reason_of(&plain, &w, now, &count), OTPCA_MGR_KEY);
    cr_expect_eq(count, 0);
    memcpy(reg.pubkey, dev_pub, 65);
    reg.pubkey_len = 0; /* an unclaimed batch device: Claim, not EnrollRequest */
    cr_expect_eq(reason_of(&plain, &w, now, NULL), OTPCA_MGR_KEY);
    reg.pubkey_len = 65;
    otpca_p256_soft_wipe(&other);

    struct req_opts wrong = {.totp_off = 1};
    cr_expect_eq(reason_of(&wrong, &w, now, &count), OTPCA_MGR_TOTP);
    cr_expect_eq(count, 1, "a wrong code signed by the device counts");
    wrong.forge = 1;
    cr_expect_eq(reason_of(&wrong, &w, now, &count), OTPCA_MGR_SIGNATURE,
                 "reasons 8 and 9 only for what the device signed (PROTOCOL.md 8.2)");
    cr_expect_eq(count, 0, "a wrong code signed by someone else does not count");

    reg.last_step = now / 30 + 1; /* every step of the window used */
    cr_expect_eq(reason_of(&plain, &w, now, &count), OTPCA_MGR_STEP);
    cr_expect_eq(count, 1);
    reg.last_step = now / 30 - 2;
    cr_expect_eq(reason_of(&plain, &w, now, NULL), OTPCA_MGR_OK, "an older step is no obstacle");
    reg.last_step = 0;

    /* The TOTP of the previous and the next step are accepted; two away not. */
    uint8_t in[1024];
    otpca_mgr_verdict v;
    size_t len = make_request(now - 30, &(struct req_opts){.time_off = 30}, in, sizeof in);
    otpca_mgr_check_enroll(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_OK);
    cr_expect_eq(v.step, now / 30 - 1);
    len = make_request(now - 60, &(struct req_opts){.time_off = 60}, in, sizeof in);
    otpca_mgr_check_enroll(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_TOTP, "two steps away");

    struct req_opts forged = {.forge = 1};
    cr_expect_eq(reason_of(&forged, &w, now, &count), OTPCA_MGR_SIGNATURE);
    cr_expect_eq(count, 0);

    otpca_mgr_check_enroll(&w, now, 90, &hooks, (const uint8_t *)"\xd2\x84", 2, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_MALFORMED);
    cr_expect_str_eq(v.serial, "");
    /* A flipped byte of a good request: malformed, or a signature failure. */
    len = make_request(now, &plain, in, sizeof in);
    in[len - 10] ^= 0x20;
    otpca_mgr_check_enroll(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_SIGNATURE);
}

Test(enroll, time_responses_and_errors)
{
    uint8_t nonce[16] = {1, 2, 3}, req[64], out[4096];
    size_t len = 0, out_len = 0;
    otpca_time_request q = {.nonce = {nonce, 16}};
    cr_assert_eq(otpca_msg_encode(&otpca_desc_time_request, &q, req, sizeof req, &len), 0);
    cr_assert_eq(otpca_mgr_time_response(&issuer, req, len, 1800000000, out, sizeof out, &out_len), 0);
    otpca_cose_sign1 c;
    otpca_time_response r;
    cr_assert_eq(otpca_cose_sign1_decode(out, out_len, &c), 0);
    cr_expect_eq(otpca_cose_sign1_verify(&c, ca_pub, 65), 0);
    cr_expect_not_null(c.x5chain.p);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_time_response, c.payload.p, c.payload.len, &r), 0);
    cr_expect_eq(r.time, 1800000000);
    cr_expect_arr_eq(r.nonce.p, nonce, 16);
    cr_expect_neq(otpca_mgr_time_response(&issuer, req, len - 1, 1, out, sizeof out, &out_len), 0);

    otpca_error_msg e;
    cr_assert_eq(otpca_mgr_error(OTPCA_WIRE_AUTH_FAILED, nonce, out, sizeof out, &out_len), 0);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_error, out, out_len, &e), 0);
    cr_expect_eq(e.code, OTPCA_WIRE_AUTH_FAILED);
    cr_expect_null(e.detail.p, "no detail on the node link");
    cr_expect_arr_eq(e.nonce.p, nonce, 16);
}

Test(enroll, totp_agrees_with_the_token)
{
    uint64_t now = (uint64_t)time(NULL);
    for (uint64_t s = now / 30 - 3; s <= now / 30 + 3; s++) {
        uint32_t mine = 0, tok = 0;
        cr_assert_eq(otpca_mgr_totp_at(seed, seed_len, 6, 1, s, &mine), 0);
        cr_assert_eq(otpca_token_totp(node_tok, dev_seed, OTPCA_OTP_SHA1, (time_t)(s * 30), 30, 6, &tok), 0);
        cr_expect_eq(mine, tok, "step %llu", (unsigned long long)s);
    }
    uint32_t code;
    cr_expect_eq(otpca_mgr_totp_at(seed, seed_len, 5, 1, 1, &code), OTPCA_ERR_INVALID_ARG);
}

/* A signed EnrollConfirm from the node token for record id and hash. */
static size_t make_confirm(const uint8_t id[16], const uint8_t hash[32], int forge, uint8_t *out, size_t cap)
{
    uint8_t nonce[16];
    size_t len = 0;
    cr_assert_eq(otpca_random(nonce, sizeof nonce), 0);
    otpca_enroll_confirm m;
    memset(&m, 0, sizeof m);
    m.nonce = (otpca_buf){nonce, 16};
    m.record = (otpca_buf){id, 16};
    m.time = (uint64_t)time(NULL);
    m.cert_hash = (otpca_buf){hash, 32};
    otpca_signer s = {node_sign, NULL, {0}};
    otpca_p256_soft soft;
    if (forge) {
        cr_assert_eq(otpca_p256_soft_generate(&soft), 0);
        s.sign = otpca_p256_soft_sign;
        s.ctx = &soft;
    }
    otpca_p256_kid(dev_pub, s.kid);
    cr_assert_eq(otpca_msg_sign(&otpca_desc_enroll_confirm, &m, &s, (otpca_buf){NULL, 0}, out, cap, &len), 0);
    if (forge)
        otpca_p256_soft_wipe(&soft);
    return len;
}

Test(enroll, confirm_needs_the_issued_certificate_and_the_device_key)
{
    uint64_t now = (uint64_t)time(NULL);
    otpca_mgr_window w = open_window(now);
    uint8_t in[1024], out[4096], cert[OTPCA_CERT_DER_MAX];
    size_t cert_len = sizeof cert, out_len = 0;
    struct req_opts o = {0};
    size_t len = make_request(now, &o, in, sizeof in);
    otpca_mgr_verdict v;
    otpca_mgr_check_enroll(&w, now, 90, &hooks, in, len, &v);
    cr_assert_eq(v.reason, OTPCA_MGR_OK);
    cr_assert_eq(otpca_mgr_issue(&issuer, &v, mac, 6, now, issued_id, cert, &cert_len, out, sizeof out, &out_len), 0);
    snprintf(issued.serial, sizeof issued.serial, "%s", NODE);
    otpca_sha256(cert, cert_len, issued.cert_hash);
    memcpy(issued.pub, v.pub, 65);
    have_issued = 1;

    otpca_enroll_confirm req;
    otpca_mgr_issued rec;
    len = make_confirm(issued_id, issued.cert_hash, 0, in, sizeof in);
    cr_expect_eq(otpca_mgr_check_confirm(&hooks, in, len, &req, &rec), OTPCA_MGR_OK);
    cr_expect_str_eq(rec.serial, NODE);
    cr_assert_eq(otpca_mgr_confirm_ack(&issuer, &req, out, sizeof out, &out_len), 0);
    otpca_cose_sign1 c;
    otpca_confirm_ack a;
    cr_assert_eq(otpca_cose_sign1_decode(out, out_len, &c), 0);
    cr_expect_eq(otpca_cose_sign1_verify(&c, ca_pub, 65), 0);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_confirm_ack, c.payload.p, c.payload.len, &a), 0);
    cr_expect_arr_eq(a.record.p, issued_id, 16);
    cr_expect_arr_eq(a.nonce.p, req.nonce.p, 16);
    cr_expect_eq(otpca_mgr_check_confirm(&hooks, in, len, &req, &rec), OTPCA_MGR_OK, "a repeat is accepted again");

    uint8_t other_hash[32], other_id[16];
    memcpy(other_hash, issued.cert_hash, 32);
    other_hash[5] ^= 1;
    len = make_confirm(issued_id, other_hash, 0, in, sizeof in);
    cr_expect_eq(otpca_mgr_check_confirm(&hooks, in, len, &req, &rec), OTPCA_MGR_CERT, "another certificate");
    memcpy(other_id, issued_id, 16);
    other_id[0] ^= 1;
    len = make_confirm(other_id, issued.cert_hash, 0, in, sizeof in);
    cr_expect_eq(otpca_mgr_check_confirm(&hooks, in, len, &req, &rec), OTPCA_MGR_CERT, "unknown record");
    len = make_confirm(issued_id, issued.cert_hash, 1, in, sizeof in);
    cr_expect_eq(otpca_mgr_check_confirm(&hooks, in, len, &req, &rec), OTPCA_MGR_SIGNATURE, "not the device key");
    cr_expect_eq(otpca_mgr_check_confirm(&hooks, in, 10, &req, &rec), OTPCA_MGR_MALFORMED);
    have_issued = 0;
}

/* ------------------------------------------------------ Rejoin, KeyUpdate */

static const uint8_t current_hash[32] = {0xc0, 0xff, 0xee, 1, 2, 3};

/* The node holds a certificate whose hash the registry records. */
static void enrolled_with_current_cert(void)
{
    reg.state = OTPCA_DEV_ENROLLED;
    reg.has_cert = 1;
    memcpy(reg.cert_hash, current_hash, 32);
}

static size_t make_rejoin(uint64_t now, const uint8_t hash[32], int forge, uint8_t *out, size_t cap)
{
    uint8_t nonce[16];
    uint32_t totp = 0;
    size_t len = 0;
    cr_assert_eq(otpca_random(nonce, sizeof nonce), 0);
    cr_assert_eq(otpca_token_totp(node_tok, dev_seed, OTPCA_OTP_SHA1, (time_t)now, 30, 6, &totp), 0);
    otpca_rejoin m;
    memset(&m, 0, sizeof m);
    m.nonce = (otpca_buf){nonce, 16};
    m.time = now;
    m.serial = (otpca_buf){(const uint8_t *)NODE, strlen(NODE)};
    m.cert_hash = (otpca_buf){hash, 32};
    m.totp = totp;
    otpca_signer s = {node_sign, NULL, {0}};
    otpca_p256_soft soft;
    if (forge) {
        cr_assert_eq(otpca_p256_soft_generate(&soft), 0);
        s.sign = otpca_p256_soft_sign;
        s.ctx = &soft;
    }
    otpca_p256_kid(dev_pub, s.kid);
    cr_assert_eq(otpca_msg_sign(&otpca_desc_rejoin, &m, &s, (otpca_buf){NULL, 0}, out, cap, &len), 0);
    if (forge)
        otpca_p256_soft_wipe(&soft);
    return len;
}

struct ku_opts {
    const uint8_t *hash;
    const uint8_t *new_pub;       /* the key the message carries (65) */
    otpca_p256_soft *inner;       /* signs the inner layer (under new_pub's kid) */
    int forge_outer;              /* the outer layer by a software key under the device's kid */
};

/* Signs message m of descriptor d with the new key (inner layer), then
 * wraps that in a COSE_Sign1 by the node token's current key (or by a
 * forger under its kid): a double signature (PROTOCOL.md 4.3). */
static size_t double_sign(const otpca_msg_desc *d, const void *m, const uint8_t *new_pub, otpca_p256_soft *inner,
                          int forge_outer, uint8_t *out, size_t cap)
{
    uint8_t in[1024];
    size_t in_len = 0, len = 0;
    otpca_signer in_s = {otpca_p256_soft_sign, inner, {0}};
    otpca_p256_kid(new_pub, in_s.kid);
    cr_assert_eq(otpca_msg_sign(d, m, &in_s, (otpca_buf){NULL, 0}, in, sizeof in, &in_len), 0);
    otpca_signer out_s = {node_sign, NULL, {0}};
    otpca_p256_soft forged;
    if (forge_outer) {
        cr_assert_eq(otpca_p256_soft_generate(&forged), 0);
        out_s.sign = otpca_p256_soft_sign;
        out_s.ctx = &forged;
    }
    otpca_p256_kid(dev_pub, out_s.kid);
    cr_assert_eq(otpca_cose_sign1_encode(&out_s, (otpca_buf){NULL, 0}, in, in_len, out, cap, &len), 0);
    if (forge_outer)
        otpca_p256_soft_wipe(&forged);
    return len;
}

/* A double-signed KeyUpdate (PROTOCOL.md 4.3): inner by the new key,
 * outer by the node token's current device key. */
static size_t make_key_update(uint64_t now, const struct ku_opts *o, uint8_t *out, size_t cap)
{
    uint8_t nonce[16], pubc[33];
    uint32_t totp = 0;
    cr_assert_eq(otpca_random(nonce, sizeof nonce), 0);
    cr_assert_eq(otpca_token_totp(node_tok, dev_seed, OTPCA_OTP_SHA1, (time_t)now, 30, 6, &totp), 0);
    cr_assert_eq(otpca_p256_pub_compress(o->new_pub, pubc), 0);
    otpca_key_update m;
    memset(&m, 0, sizeof m);
    m.nonce = (otpca_buf){nonce, 16};
    m.time = now;
    m.serial = (otpca_buf){(const uint8_t *)NODE, strlen(NODE)};
    m.cert_hash = (otpca_buf){o->hash, 32};
    m.pubkey = (otpca_buf){pubc, 33};
    m.totp = totp;
    return double_sign(&otpca_desc_key_update, &m, o->new_pub, o->inner, o->forge_outer, out, cap);
}

/* A KeyUpdate's or a Claim's answer: the certificate holds the new key
 * and the network key opens with it. */
static void expect_issued_to_new_key(const uint8_t *cert, size_t cert_len, const uint8_t *out, size_t out_len,
                                     const otpca_mgr_verdict *v, otpca_p256_soft *nk)
{
    DecodedCert dc;
    uint8_t spki[128];
    word32 spki_len = sizeof spki;
    wc_InitDecodedCert(&dc, cert, (word32)cert_len, NULL);
    cr_assert_eq(wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL), 0);
    cr_assert_eq(wc_GetPubKeyDerFromCert(&dc, spki, &spki_len), 0);
    wc_FreeDecodedCert(&dc);
    cr_expect(spki_len >= 65 && !memcmp(spki + spki_len - 65, nk->pub, 65), "the certificate holds the new key");
    otpca_cose_sign1 c;
    otpca_enroll_response r;
    cr_assert_eq(otpca_cose_sign1_decode(out, out_len, &c), 0);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r), 0);
    uint8_t aad[64 + 16], pt[64];
    size_t pt_len = 0, sl = strlen(NODE);
    memcpy(aad, NODE, sl);
    memcpy(aad + sl, v->req.nonce.p, 16);
    cr_expect_eq(otpca_ecies_open(otpca_p256_soft_ecdh, nk, nk->pub, OTPCA_ECIES_LABEL_NETKEY, aad, sl + 16,
                                  r.netkey.p, r.netkey.len, pt, sizeof pt, &pt_len),
                 0, "the network key is sealed to the new key");
}

Test(enroll, a_rejoin_naming_the_current_certificate_gets_the_network_key_and_no_certificate)
{
    uint64_t now = (uint64_t)time(NULL);
    otpca_mgr_window w = open_window(now);
    uint8_t in[1024], out[4096], cert[OTPCA_CERT_DER_MAX], record[16];
    size_t cert_len = sizeof cert, out_len = 0;
    enrolled_with_current_cert();
    size_t len = make_rejoin(now, current_hash, 0, in, sizeof in);
    otpca_mgr_verdict v;
    otpca_mgr_check_rejoin(&w, now, 90, &hooks, in, len, &v);
    cr_assert_eq(v.reason, OTPCA_MGR_OK, "%s", otpca_mgr_reason_name(v.reason));
    cr_expect_eq(v.type, OTPCA_MSG_REJOIN);
    cr_expect_str_eq(v.serial, NODE);
    cr_expect_arr_eq(v.pub, dev_pub, 65, "the network key goes to the registered key");
    cr_assert_eq(otpca_mgr_issue(&issuer, &v, mac, 6, now, record, cert, &cert_len, out, sizeof out, &out_len), 0);
    cr_expect_eq(cert_len, 0, "a rejoin issues no certificate");
    otpca_cose_sign1 c;
    otpca_enroll_response r;
    cr_assert_eq(otpca_cose_sign1_decode(out, out_len, &c), 0);
    cr_expect_eq(otpca_cose_sign1_verify(&c, ca_pub, 65), 0);
    cr_assert_eq(otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r), 0);
    cr_expect_null(r.cert.p, "EnrollResponse without key 4");
    uint8_t aad[64 + 16], pt[64];
    size_t pt_len = 0, sl = strlen(NODE);
    memcpy(aad, NODE, sl);
    memcpy(aad + sl, v.req.nonce.p, 16);
    cr_assert_eq(otpca_ecies_open(node_ecdh, NULL, dev_pub, OTPCA_ECIES_LABEL_NETKEY, aad, sl + 16, r.netkey.p,
                                  r.netkey.len, pt, sizeof pt, &pt_len),
                 0);
    cr_expect_arr_eq(pt, netkey, sizeof netkey);

    /* Another certificate (superseded, or never issued), none recorded, a forgery. */
    uint8_t other[32] = {0xc0, 0xff, 0xef};
    len = make_rejoin(now, other, 0, in, sizeof in);
    otpca_mgr_check_rejoin(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_CERT, "%s", otpca_mgr_reason_name(v.reason));
    reg.has_cert = 0;
    len = make_rejoin(now, current_hash, 0, in, sizeof in);
    otpca_mgr_check_rejoin(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_CERT, "no certificate recorded: nothing to rejoin with");
    reg.has_cert = 1;
    len = make_rejoin(now, current_hash, 1, in, sizeof in);
    otpca_mgr_check_rejoin(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_SIGNATURE, "%s", otpca_mgr_reason_name(v.reason));
    reg.state = OTPCA_DEV_REVOKED;
    len = make_rejoin(now, current_hash, 0, in, sizeof in);
    otpca_mgr_check_rejoin(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_REVOKED);
    /* An EnrollRequest is not a Rejoin. */
    struct req_opts o = {0};
    reg.state = OTPCA_DEV_ENROLLED;
    len = make_request(now, &o, in, sizeof in);
    otpca_mgr_check_rejoin(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_MALFORMED);
}

Test(enroll, a_key_update_signed_by_old_and_new_key_certifies_the_new_key)
{
    uint64_t now = (uint64_t)time(NULL);
    otpca_mgr_window w = open_window(now);
    uint8_t in[2048], out[4096], cert[OTPCA_CERT_DER_MAX], record[16];
    size_t cert_len = sizeof cert, out_len = 0;
    enrolled_with_current_cert();
    otpca_p256_soft nk, other;
    cr_assert_eq(otpca_p256_soft_generate(&nk), 0);
    cr_assert_eq(otpca_p256_soft_generate(&other), 0);
    struct ku_opts o = {.hash = current_hash, .new_pub = nk.pub, .inner = &nk};
    size_t len = make_key_update(now, &o, in, sizeof in);
    otpca_mgr_verdict v;
    otpca_mgr_check_key_update(&w, now, 90, &hooks, in, len, &v);
    cr_assert_eq(v.reason, OTPCA_MGR_OK, "%s", otpca_mgr_reason_name(v.reason));
    cr_expect_eq(v.type, OTPCA_MSG_KEY_UPDATE);
    cr_expect_arr_eq(v.pub, nk.pub, 65, "the new key, uncompressed");
    cr_assert_eq(otpca_mgr_issue(&issuer, &v, mac, 6, now, record, cert, &cert_len, out, sizeof out, &out_len), 0);
    expect_issued_to_new_key(cert, cert_len, out, out_len, &v, &nk);

    /* Inner layer by a key other than the one carried; outer by a forger;
     * the old key again; another certificate; a plain single signature. */
    o.inner = &other;
    len = make_key_update(now, &o, in, sizeof in);
    otpca_mgr_check_key_update(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_SIGNATURE, "inner: %s", otpca_mgr_reason_name(v.reason));
    o.inner = &nk;
    o.forge_outer = 1;
    len = make_key_update(now, &o, in, sizeof in);
    otpca_mgr_check_key_update(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_SIGNATURE, "outer: %s", otpca_mgr_reason_name(v.reason));
    cr_expect_eq(v.count_failure, 0);
    o.forge_outer = 0;
    o.new_pub = dev_pub; /* (the inner signature is not reached) */
    len = make_key_update(now, &o, in, sizeof in);
    otpca_mgr_check_key_update(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_KEY, "the same key again: %s", otpca_mgr_reason_name(v.reason));
    o.new_pub = nk.pub;
    uint8_t other_hash[32] = {1};
    o.hash = other_hash;
    len = make_key_update(now, &o, in, sizeof in);
    otpca_mgr_check_key_update(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_CERT, "%s", otpca_mgr_reason_name(v.reason));
    len = make_rejoin(now, current_hash, 0, in, sizeof in);
    otpca_mgr_check_key_update(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_MALFORMED, "a Rejoin is not a KeyUpdate");
    o.hash = current_hash;
    reg.state = OTPCA_DEV_REVOKED;
    len = make_key_update(now, &o, in, sizeof in);
    otpca_mgr_check_key_update(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_REVOKED, "a revoked device's KeyUpdate: %s", otpca_mgr_reason_name(v.reason));
    otpca_p256_soft_wipe(&nk);
    otpca_p256_soft_wipe(&other);
}

/* A double-signed Claim (PROTOCOL.md 6.7): enroll fields with the new key,
 * inner by `inner` (under new_pub's kid), outer by the node token's key,
 * which plays the batch's product key here (or a forger under its kid). */
static size_t make_claim(uint64_t now, const uint8_t *new_pub, otpca_p256_soft *inner, int forge_outer, uint8_t *out,
                         size_t cap)
{
    uint8_t nonce[16], pubc[33];
    cr_assert_eq(otpca_p256_pub_compress(new_pub, pubc), 0);
    otpca_enroll_request m;
    enroll_fields(now, (otpca_buf){pubc, 33}, nonce, &m);
    return double_sign(&otpca_desc_claim, &m, new_pub, inner, forge_outer, out, cap);
}

/* Batch claim: an unclaimed device proves its batch's product key and its
 * TOTP and gets a certificate for a new key of its own (the network key
 * sealed to it); the product key is never certified by an EnrollRequest;
 * a claimed device, a forged outer layer, an inner layer by another key
 * and the product key as the "new" key are refused. */
Test(enroll, a_claim_with_the_product_key_certifies_a_new_unique_key)
{
    uint64_t now = (uint64_t)time(NULL);
    otpca_mgr_window w = open_window(now);
    uint8_t in[2048], out[4096], cert[OTPCA_CERT_DER_MAX], record[16];
    size_t cert_len = sizeof cert, out_len = 0;
    reg.claimable = 1; /* dev_pub stands for the batch's product key */
    otpca_p256_soft nk, other;
    cr_assert_eq(otpca_p256_soft_generate(&nk), 0);
    cr_assert_eq(otpca_p256_soft_generate(&other), 0);
    size_t len = make_claim(now, nk.pub, &nk, 0, in, sizeof in);
    otpca_mgr_verdict v;
    otpca_mgr_check_claim(&w, now, 90, &hooks, in, len, &v);
    cr_assert_eq(v.reason, OTPCA_MGR_OK, "%s", otpca_mgr_reason_name(v.reason));
    cr_expect_eq(v.type, OTPCA_MSG_CLAIM);
    cr_expect_arr_eq(v.pub, nk.pub, 65, "the new key, uncompressed");
    cr_assert_eq(otpca_mgr_issue(&issuer, &v, mac, 6, now, record, cert, &cert_len, out, sizeof out, &out_len), 0);
    expect_issued_to_new_key(cert, cert_len, out, out_len, &v, &nk);

    struct req_opts ro = {0};
    len = make_request(now, &ro, in, sizeof in);
    otpca_mgr_check_enroll(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_KEY, "an EnrollRequest with the product key: %s", otpca_mgr_reason_name(v.reason));
    len = make_claim(now, nk.pub, &other, 0, in, sizeof in);
    otpca_mgr_check_claim(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_SIGNATURE, "inner by another key: %s", otpca_mgr_reason_name(v.reason));
    len = make_claim(now, nk.pub, &nk, 1, in, sizeof in);
    otpca_mgr_check_claim(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_SIGNATURE, "outer forged: %s", otpca_mgr_reason_name(v.reason));
    cr_expect_eq(v.count_failure, 0);
    len = make_claim(now, dev_pub, &nk, 0, in, sizeof in);
    otpca_mgr_check_claim(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_KEY, "the product key as the new key: %s", otpca_mgr_reason_name(v.reason));
    reg.claimable = 0; /* claimed (or never a batch device) */
    len = make_claim(now, nk.pub, &nk, 0, in, sizeof in);
    otpca_mgr_check_claim(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_KEY, "a claimed device: %s", otpca_mgr_reason_name(v.reason));
    len = make_request(now, &ro, in, sizeof in);
    otpca_mgr_check_claim(&w, now, 90, &hooks, in, len, &v);
    cr_expect_eq(v.reason, OTPCA_MGR_MALFORMED, "an EnrollRequest is not a Claim");
    otpca_p256_soft_wipe(&nk);
    otpca_p256_soft_wipe(&other);
}
