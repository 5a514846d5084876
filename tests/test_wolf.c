/*
 * The wolfCrypt bridge: signatures made through a crypto-callback device
 * come from the token key (wolfCrypt holds only the public key) and verify
 * with wolfCrypt; certificates issued through it parse and chain; public
 * key conversions round-trip.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "otpca/token/token.h"
#include "otpca/token/wolf.h"
#include "testrig.h"

static otpca_p11_t *p11;
static otpca_token_t *tok;
static otpca_obj_t key;

static void setup(void)
{
    cr_assert_eq(otpca_p11_new(NULL, &p11), OTPCA_ERR_OK);
    tok = testrig_open(p11, "node-000006");
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_PRIVATE_KEY, "device-key", NULL, 0, &key), OTPCA_ERR_OK);
}

static void teardown(void)
{
    otpca_token_destroy(&tok);
    otpca_p11_destroy(&p11);
}

static int verify(const unsigned char *sig, size_t sig_len, const unsigned char *digest,
                  const unsigned char sec1[OTPCA_EC_P256_SEC1_LEN])
{
    ecc_key pub;
    int ok = 0;
    cr_assert_eq(wc_ecc_init(&pub), 0);
    cr_assert_eq(wc_ecc_import_x963_ex(sec1, OTPCA_EC_P256_SEC1_LEN, &pub, ECC_SECP256R1), 0);
    int rc = wc_ecc_verify_hash(sig, (word32)sig_len, digest, 32, &ok, &pub);
    wc_ecc_free(&pub);
    return rc == 0 && ok == 1;
}

Test(wolf, callback_signature_comes_from_the_token, .init = setup, .fini = teardown)
{
    otpca_wolf_signer s;
    unsigned char sec1[OTPCA_EC_P256_SEC1_LEN], digest[32], sig[OTPCA_SIG_DER_MAX];
    word32 len = sizeof sig;
    WC_RNG rng;
    cr_assert_eq(otpca_token_pubkey_sec1(tok, key, sec1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_wolf_signer_init(&s, tok, key), OTPCA_ERR_OK);
    cr_assert_eq(wc_Sha256Hash((const byte *)"hello", 5, digest), 0);
    cr_assert_eq(wc_InitRng(&rng), 0);
    cr_assert_eq(wc_ecc_sign_hash(digest, 32, sig, &len, &rng, &s.ecc), 0);
    cr_expect_eq(s.signatures, 1, "the token made the signature");
    cr_expect(verify(sig, len, digest, sec1));
    digest[0] ^= 1;
    cr_expect_not(verify(sig, len, digest, sec1), "a different digest must not verify");

    /* Without the device, wolfCrypt has no private key to sign with. */
    ecc_key bare;
    cr_assert_eq(wc_ecc_init(&bare), 0);
    cr_assert_eq(wc_ecc_import_x963_ex(sec1, sizeof sec1, &bare, ECC_SECP256R1), 0);
    len = sizeof sig;
    cr_expect_neq(wc_ecc_sign_hash(digest, 32, sig, &len, &rng, &bare), 0);
    wc_ecc_free(&bare);
    wc_FreeRng(&rng);
    otpca_wolf_signer_free(&s);
}

Test(wolf, token_der_and_raw_signatures_verify, .init = setup, .fini = teardown)
{
    unsigned char sec1[OTPCA_EC_P256_SEC1_LEN], digest[32], sig[OTPCA_SIG_DER_MAX], der[OTPCA_SIG_DER_MAX];
    size_t len = sizeof sig;
    word32 der_len = sizeof der;
    cr_assert_eq(otpca_token_pubkey_sec1(tok, key, sec1), OTPCA_ERR_OK);
    cr_assert_eq(wc_Sha256Hash((const byte *)"otpca", 5, digest), 0);
    cr_assert_eq(otpca_token_sign_digest(tok, key, digest, 32, OTPCA_SIG_DER, sig, &len), OTPCA_ERR_OK);
    cr_expect(verify(sig, len, digest, sec1));
    len = sizeof sig;
    cr_assert_eq(otpca_token_sign_digest(tok, key, digest, 32, OTPCA_SIG_RAW, sig, &len), OTPCA_ERR_OK);
    cr_assert_eq(wc_ecc_rs_raw_to_sig(sig, 32, sig + 32, 32, der, &der_len), 0);
    cr_expect(verify(der, der_len, digest, sec1));
}

Test(wolf, issued_chain_verifies_with_wolfssl, .init = setup, .fini = teardown)
{
    static unsigned char root[OTPCA_CERT_DER_MAX], leaf[OTPCA_CERT_DER_MAX];
    size_t root_len = sizeof root, leaf_len = sizeof leaf;
    otpca_wolf_signer s;
    unsigned char leaf_pub[OTPCA_EC_P256_SEC1_LEN];
    otpca_obj_t other;
    cr_assert_eq(otpca_token_keygen_p256(tok, testrig_unique("leaf"), NULL, 0, &other, NULL), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_pubkey_sec1(tok, other, leaf_pub), OTPCA_ERR_OK);
    cr_assert_eq(otpca_wolf_signer_init(&s, tok, key), OTPCA_ERR_OK);
    otpca_cert_req ca = {.common_name = "test root", .is_ca = 1, .path_len = 0, .days = 30};
    cr_assert_eq(otpca_cert_issue(&s, &ca, root, &root_len), OTPCA_ERR_OK);
    otpca_cert_req node = {.common_name = "node", .subject_sec1 = leaf_pub, .issuer_der = root,
                           .issuer_der_len = root_len, .path_len = -1, .days = 30};
    cr_assert_eq(otpca_cert_issue(&s, &node, leaf, &leaf_len), OTPCA_ERR_OK);
    cr_expect_eq(s.signatures, 2);
    otpca_wolf_signer_free(&s);

    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    cr_assert_not_null(cm);
    cr_expect_eq(wolfSSL_CertManagerLoadCABuffer(cm, root, (long)root_len, WOLFSSL_FILETYPE_ASN1),
                 WOLFSSL_SUCCESS);
    cr_expect_eq(wolfSSL_CertManagerVerifyBuffer(cm, leaf, (long)leaf_len, WOLFSSL_FILETYPE_ASN1),
                 WOLFSSL_SUCCESS);
    leaf[leaf_len - 5] ^= 0x01; /* inside the signature */
    cr_expect_neq(wolfSSL_CertManagerVerifyBuffer(cm, leaf, (long)leaf_len, WOLFSSL_FILETYPE_ASN1),
                  WOLFSSL_SUCCESS);
    wolfSSL_CertManagerFree(cm);

    char pem[OTPCA_CERT_PEM_MAX];
    size_t pem_len = sizeof pem;
    unsigned char back[OTPCA_CERT_DER_MAX];
    size_t back_len = sizeof back;
    cr_assert_eq(otpca_cert_der_to_pem(root, root_len, pem, &pem_len), OTPCA_ERR_OK);
    cr_expect(strncmp(pem, "-----BEGIN CERTIFICATE-----", 27) == 0);
    cr_assert_eq(otpca_cert_to_der((unsigned char *)pem, pem_len, back, &back_len), OTPCA_ERR_OK);
    cr_expect_eq(back_len, root_len);
    cr_expect_arr_eq(back, root, root_len);
}

Test(wolf, cert_request_is_validated, .init = setup, .fini = teardown)
{
    static unsigned char der[OTPCA_CERT_DER_MAX];
    size_t len = sizeof der;
    otpca_wolf_signer s;
    cr_assert_eq(otpca_wolf_signer_init(&s, tok, key), OTPCA_ERR_OK);
    otpca_cert_req no_cn = {.days = 1};
    cr_expect_eq(otpca_cert_issue(&s, &no_cn, der, &len), OTPCA_ERR_INVALID_ARG);
    unsigned char bad_point[OTPCA_EC_P256_SEC1_LEN] = {0x04, 1, 2, 3};
    otpca_cert_req bad = {.common_name = "x", .subject_sec1 = bad_point, .days = 1};
    cr_expect_eq(otpca_cert_issue(&s, &bad, der, &len), OTPCA_ERR_INVALID_ARG);
    unsigned char junk[16] = {0x30, 0x03, 1, 2, 3};
    otpca_cert_req bad_issuer = {.common_name = "x", .issuer_der = junk, .issuer_der_len = sizeof junk,
                                 .days = 1};
    cr_expect_neq(otpca_cert_issue(&s, &bad_issuer, der, &len), OTPCA_ERR_OK);
    /* subjectAltName URIs: printable ASCII without spaces, at most 8. */
    const char *spaced[] = {"urn:dev:mac:0200 00000001"};
    otpca_cert_req bad_san = {.common_name = "x", .days = 1, .san_uris = spaced, .n_san = 1};
    len = sizeof der;
    cr_expect_eq(otpca_cert_issue(&s, &bad_san, der, &len), OTPCA_ERR_INVALID_ARG);
    const char *many[OTPCA_CERT_SAN_MAX + 1];
    for (size_t i = 0; i < OTPCA_CERT_SAN_MAX + 1; i++)
        many[i] = "urn:dev:mac:020000000001";
    otpca_cert_req too_many = {.common_name = "x", .days = 1, .san_uris = many, .n_san = OTPCA_CERT_SAN_MAX + 1};
    len = sizeof der;
    cr_expect_eq(otpca_cert_issue(&s, &too_many, der, &len), OTPCA_ERR_INVALID_ARG);
    /* 8 URIs of 200 characters: the long-form lengths of the SAN DER. */
    static char longuri[201];
    memset(longuri, 'a', 200);
    memcpy(longuri, "urn:dev:os:32473-", 17);
    for (size_t i = 0; i < OTPCA_CERT_SAN_MAX; i++)
        many[i] = longuri;
    otpca_cert_req long_san = {.common_name = "x", .days = 1, .san_uris = many, .n_san = OTPCA_CERT_SAN_MAX,
                               .ext_key_usage = "clientAuth"};
    len = sizeof der;
    cr_expect_eq(otpca_cert_issue(&s, &long_san, der, &len), OTPCA_ERR_OK);
    DecodedCert dc;
    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    cr_expect_eq(wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL), 0, "wolfSSL parses its own long SAN");
    wc_FreeDecodedCert(&dc);
    otpca_wolf_signer_free(&s);
}

Test(wolf, public_key_pem_round_trip, .init = setup, .fini = teardown)
{
    unsigned char sec1[OTPCA_EC_P256_SEC1_LEN], back[OTPCA_EC_P256_SEC1_LEN];
    char pem[256];
    size_t len = sizeof pem;
    cr_assert_eq(otpca_token_pubkey_sec1(tok, key, sec1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_pubkey_sec1_to_pem(sec1, pem, &len), OTPCA_ERR_OK);
    cr_expect(strncmp(pem, "-----BEGIN PUBLIC KEY-----", 26) == 0);
    cr_assert_eq(otpca_pubkey_parse((unsigned char *)pem, len, back), OTPCA_ERR_OK);
    cr_expect_arr_eq(back, sec1, sizeof sec1);
    cr_expect_neq(otpca_pubkey_parse((const unsigned char *)"-----BEGIN junk", 15, back), OTPCA_ERR_OK);
}
