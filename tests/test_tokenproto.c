/*
 * The protocol with keys that never leave a token: COSE_Sign1 signed by a
 * SoftHSM device key verifies with libotpca-proto, and an ECIES envelope
 * sealed to that key opens through the token's ECDH (CKM_ECDH1_DERIVE),
 * agreeing with a software computation of the same shared secret.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "otpca/proto/cose.h"
#include "otpca/proto/ecies.h"
#include "otpca/proto/msg.h"
#include "otpca/token/token.h"
#include "testrig.h"

static otpca_p11_t *p11;
static otpca_token_t *tok;
static otpca_obj_t key;
static unsigned char pub[OTPCA_EC_P256_SEC1_LEN];

static void setup(void)
{
    cr_assert_eq(otpca_p11_new(NULL, &p11), OTPCA_ERR_OK);
    tok = testrig_open(p11, "node-000008");
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_PRIVATE_KEY, "device-key", NULL, 0, &key), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_pubkey_sec1(tok, key, pub), OTPCA_ERR_OK);
}

static void teardown(void)
{
    otpca_token_destroy(&tok);
    otpca_p11_destroy(&p11);
}

static int token_signs;
static otpca_err token_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
    (void)ctx;
    size_t len = 64;
    token_signs++;
    return otpca_token_sign_digest(tok, key, digest, 32, OTPCA_SIG_RAW, sig, &len);
}

static int token_ecdhs;
static otpca_err token_ecdh(void *ctx, const uint8_t peer[65], uint8_t z[32])
{
    (void)ctx;
    token_ecdhs++;
    return otpca_token_ecdh(tok, key, peer, 65, z);
}

Test(tokenproto, cose_signed_in_the_token_verifies, .init = setup, .fini = teardown)
{
    otpca_signer s = {token_sign, NULL, {0}};
    otpca_p256_kid(pub, s.kid);
    uint8_t nonce[16] = {7}, mac[6] = {1, 2, 3, 4, 5, 6}, buf[512];
    otpca_enroll_request m = {.nonce = {nonce, 16}, .time = 1800000000, .serial = {(const uint8_t *)"node-000008", 11},
                              .mac = {mac, 6}, .pubkey = {pub, 65}, .totp = 42, .fw = {(const uint8_t *)"t", 1}};
    size_t len;
    token_signs = 0;
    cr_assert_eq(otpca_msg_sign(&otpca_desc_enroll_request, &m, &s, (otpca_buf){NULL, 0}, buf, sizeof buf, &len),
                 OTPCA_ERR_OK);
    cr_expect_eq(token_signs, 1);
    otpca_cose_sign1 c;
    cr_assert_eq(otpca_cose_sign1_decode(buf, len, &c), OTPCA_ERR_OK);
    cr_expect_eq(otpca_cose_sign1_verify(&c, pub, sizeof pub), OTPCA_ERR_OK);
    /* The token's CKA_ID is the protocol's kid. */
    cr_expect_eq(memcmp(c.kid.p, s.kid, 8), 0);
    otpca_enroll_request d;
    cr_assert_eq(otpca_msg_decode(&otpca_desc_enroll_request, c.payload.p, c.payload.len, &d), OTPCA_ERR_OK);
    cr_expect_eq(d.totp, 42);
}

Test(tokenproto, ecies_opens_with_the_token_ecdh, .init = setup, .fini = teardown)
{
    uint8_t netkey[16], env[128], out[64], aad[4] = {'a', 'b', 'c', 'd'};
    size_t env_len, out_len;
    for (size_t i = 0; i < sizeof netkey; i++)
        netkey[i] = (uint8_t)(i * 7 + 1);
    cr_assert_eq(otpca_ecies_seal(pub, sizeof pub, OTPCA_ECIES_LABEL_NETKEY, aad, sizeof aad, netkey, sizeof netkey,
                                  env, sizeof env, &env_len),
                 OTPCA_ERR_OK);
    token_ecdhs = 0;
    cr_assert_eq(otpca_ecies_open(token_ecdh, NULL, pub, OTPCA_ECIES_LABEL_NETKEY, aad, sizeof aad, env, env_len,
                                  out, sizeof out, &out_len),
                 OTPCA_ERR_OK);
    cr_expect_eq(token_ecdhs, 1);
    cr_assert_eq(out_len, sizeof netkey);
    cr_expect_eq(memcmp(out, netkey, sizeof netkey), 0);
    /* Tampering is still caught when the token does the ECDH. */
    env[env_len - 1] ^= 1;
    cr_expect_eq(otpca_ecies_open(token_ecdh, NULL, pub, OTPCA_ECIES_LABEL_NETKEY, aad, sizeof aad, env, env_len,
                                  out, sizeof out, &out_len),
                 OTPCA_ERR_DECRYPT);
}

Test(tokenproto, token_ecdh_matches_software, .init = setup, .fini = teardown)
{
    otpca_p256_soft peer;
    uint8_t z_token[32], z_soft[32];
    cr_assert_eq(otpca_p256_soft_generate(&peer), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_ecdh(tok, key, peer.pub, sizeof peer.pub, z_token), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_soft_ecdh(&peer, pub, z_soft), OTPCA_ERR_OK);
    cr_expect_eq(memcmp(z_token, z_soft, 32), 0, "both sides derive the same x-coordinate");
    /* Bad peer points are refused before the token sees them, or by it. */
    uint8_t bad[65];
    memcpy(bad, peer.pub, 65);
    bad[0] = 0x02;
    cr_expect_eq(otpca_token_ecdh(tok, key, bad, 65, z_token), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_token_ecdh(tok, key, peer.pub, 33, z_token), OTPCA_ERR_INVALID_ARG);
    memcpy(bad, peer.pub, 65);
    bad[64] ^= 1; /* off the curve */
    cr_expect_neq(otpca_token_ecdh(tok, key, bad, 65, z_token), OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&peer);
}
