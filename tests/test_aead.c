/*
 * AES keys and AES-GCM in the token (SoftHSM rig): the cloud's seed-wrap
 * key seals and opens; every truncation, flipped byte or wrong aad fails
 * with DECRYPT and a wiped output; the layout iv || ciphertext || tag
 * agrees with the GCM spec's test case 16 and with wolfCrypt; generated
 * keys are sensitive, never extractable and usable for nothing else.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "otpca/token/rig.h"
#include "otpca/token/token.h"
#include "testrig.h"

#define IV OTPCA_TOKEN_AEAD_IV_LEN
#define TAG OTPCA_TOKEN_AEAD_TAG_LEN
#define OVER OTPCA_TOKEN_AEAD_OVERHEAD

static otpca_p11_t *p11;
static otpca_token_t *tok;
static otpca_obj_t wrap;

static void open_cloud(void)
{
    cr_assert_eq(otpca_p11_new(NULL, &p11), OTPCA_ERR_OK);
    tok = testrig_open(p11, OTPCA_RIG_CLOUD_TOKEN);
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_SECRET_KEY, OTPCA_RIG_CLOUD_WRAP, NULL, 0, &wrap),
                 OTPCA_ERR_OK, "the rig's cloud token has its seed-wrap key");
}

static void close_cloud(void)
{
    otpca_token_destroy(&tok);
    otpca_p11_destroy(&p11);
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static const unsigned char seed64[64] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const unsigned char aad[] = "node-000001/totp";

Test(aead, round_trip_with_and_without_aad, .init = open_cloud, .fini = close_cloud)
{
    static const size_t sizes[] = {0, 20, 64};
    for (size_t s = 0; s < 3; s++) {
        for (int with_aad = 0; with_aad < 2; with_aad++) {
            size_t n = sizes[s], len = 0, got = 99;
            const unsigned char *a = with_aad ? aad : NULL;
            size_t a_len = with_aad ? sizeof aad : 0;
            unsigned char out[64 + OVER], pt[64 + TAG];
            cr_assert_eq(otpca_token_aead_seal(tok, wrap, a, a_len, seed64, n, out, n + OVER, &len),
                         OTPCA_ERR_OK, "seal %zu bytes, aad %d", n, with_aad);
            cr_expect_eq(len, n + OVER);
            /* Exactly the plaintext's room, and room to spare. */
            cr_assert_eq(otpca_token_aead_open(tok, wrap, a, a_len, out, len, pt, n, &got), OTPCA_ERR_OK,
                         "open %zu bytes, aad %d", n, with_aad);
            cr_expect_eq(got, n);
            cr_expect_arr_eq(pt, seed64, n);
            got = 99;
            cr_assert_eq(otpca_token_aead_open(tok, wrap, a, a_len, out, len, pt, sizeof pt, &got),
                         OTPCA_ERR_OK);
            cr_expect_eq(got, n);
            cr_expect_arr_eq(pt, seed64, n);
        }
    }
}

Test(aead, fresh_iv_every_time, .init = open_cloud, .fini = close_cloud)
{
    unsigned char a[20 + OVER], b[20 + OVER];
    size_t la, lb;
    cr_assert_eq(otpca_token_aead_seal(tok, wrap, aad, sizeof aad, seed64, 20, a, sizeof a, &la), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_aead_seal(tok, wrap, aad, sizeof aad, seed64, 20, b, sizeof b, &lb), OTPCA_ERR_OK);
    cr_assert_eq(la, lb);
    cr_expect_arr_neq(a, b, IV, "a new IV for each seal");
    cr_expect_arr_neq(a + IV, b + IV, 20, "so a new ciphertext");
    cr_expect_arr_neq(a + IV + 20, b + IV + 20, TAG, "and a new tag");
}

Test(aead, every_flipped_byte_fails_and_wipes, .init = open_cloud, .fini = close_cloud)
{
    unsigned char out[20 + OVER], bad[20 + OVER], pt[40];
    size_t len, got;
    cr_assert_eq(otpca_token_aead_seal(tok, wrap, aad, sizeof aad, seed64, 20, out, sizeof out, &len),
                 OTPCA_ERR_OK);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(bad, out, len);
            bad[i] ^= (unsigned char)(1u << bit);
            memset(pt, 0xAA, sizeof pt);
            got = 99;
            cr_expect_eq(otpca_token_aead_open(tok, wrap, aad, sizeof aad, bad, len, pt, sizeof pt, &got),
                         OTPCA_ERR_DECRYPT, "byte %zu (%s) bit %d", i,
                         i < IV ? "iv" : i < IV + 20 ? "ciphertext" : "tag", bit);
            cr_expect_eq(got, 0);
            cr_expect(all_zero(pt, sizeof pt), "byte %zu: output wiped", i);
        }
    }
    /* The failures left no operation active: the original still opens. */
    cr_assert_eq(otpca_token_aead_open(tok, wrap, aad, sizeof aad, out, len, pt, sizeof pt, &got), OTPCA_ERR_OK);
    cr_expect_arr_eq(pt, seed64, 20);
}

Test(aead, wrong_aad_fails, .init = open_cloud, .fini = close_cloud)
{
    static const unsigned char other[] = "node-000002/totp";
    unsigned char with[20 + OVER], without[20 + OVER], pt[20];
    size_t len, got;
    cr_assert_eq(otpca_token_aead_seal(tok, wrap, aad, sizeof aad, seed64, 20, with, sizeof with, &len),
                 OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_aead_seal(tok, wrap, NULL, 0, seed64, 20, without, sizeof without, &len),
                 OTPCA_ERR_OK);
    memset(pt, 0xAA, sizeof pt);
    cr_expect_eq(otpca_token_aead_open(tok, wrap, other, sizeof other, with, len, pt, sizeof pt, &got),
                 OTPCA_ERR_DECRYPT, "another node's aad");
    cr_expect(all_zero(pt, sizeof pt));
    cr_expect_eq(otpca_token_aead_open(tok, wrap, aad, sizeof aad - 1, with, len, pt, sizeof pt, &got),
                 OTPCA_ERR_DECRYPT, "aad one byte short");
    cr_expect_eq(otpca_token_aead_open(tok, wrap, NULL, 0, with, len, pt, sizeof pt, &got),
                 OTPCA_ERR_DECRYPT, "aad missing");
    cr_expect_eq(otpca_token_aead_open(tok, wrap, aad, sizeof aad, without, len, pt, sizeof pt, &got),
                 OTPCA_ERR_DECRYPT, "aad where there was none");
    cr_expect(all_zero(pt, sizeof pt));
}

Test(aead, truncated_or_extended_input_fails, .init = open_cloud, .fini = close_cloud)
{
    unsigned char out[20 + OVER + 1], pt[64];
    size_t len, got;
    cr_assert_eq(otpca_token_aead_seal(tok, wrap, aad, sizeof aad, seed64, 20, out, sizeof out, &len),
                 OTPCA_ERR_OK);
    for (size_t cut = 0; cut < len; cut++) {
        memset(pt, 0xAA, sizeof pt);
        cr_expect_eq(otpca_token_aead_open(tok, wrap, aad, sizeof aad, out, cut, pt, sizeof pt, &got),
                     OTPCA_ERR_DECRYPT, "%zu of %zu bytes", cut, len);
        cr_expect(all_zero(pt, sizeof pt));
    }
    out[len] = 0;
    cr_expect_eq(otpca_token_aead_open(tok, wrap, aad, sizeof aad, out, len + 1, pt, sizeof pt, &got),
                 OTPCA_ERR_DECRYPT, "one byte appended");
    cr_expect_eq(otpca_token_aead_open(tok, wrap, aad, sizeof aad, NULL, 0, pt, sizeof pt, &got),
                 OTPCA_ERR_DECRYPT, "nothing at all");
}

Test(aead, small_buffers_are_refused, .init = open_cloud, .fini = close_cloud)
{
    unsigned char out[20 + OVER], pt[20];
    size_t len = 99, got = 99;
    cr_expect_eq(otpca_token_aead_seal(tok, wrap, aad, sizeof aad, seed64, 20, out, 20 + OVER - 1, &len),
                 OTPCA_ERR_BUFFER_TOO_SMALL);
    cr_expect_eq(len, 0);
    cr_assert_eq(otpca_token_aead_seal(tok, wrap, aad, sizeof aad, seed64, 20, out, sizeof out, &len),
                 OTPCA_ERR_OK);
    memset(pt, 0xAA, sizeof pt);
    cr_expect_eq(otpca_token_aead_open(tok, wrap, aad, sizeof aad, out, len, pt, 19, &got),
                 OTPCA_ERR_BUFFER_TOO_SMALL);
    cr_expect_eq(got, 0);
    cr_expect(all_zero(pt, 19), "wiped on failure");
    cr_expect_eq(pt[19], 0xAA, "but only within cap");
    /* Nothing was left half done in the session. */
    cr_assert_eq(otpca_token_aead_open(tok, wrap, aad, sizeof aad, out, len, pt, 20, &got), OTPCA_ERR_OK);
    cr_expect_arr_eq(pt, seed64, 20);
}

Test(aead, seed_wrap_key_is_protected, .init = open_cloud, .fini = close_cloud)
{
    int sensitive, extractable, refused;
    cr_assert_eq(otpca_token_obj_protection(tok, wrap, &sensitive, &extractable, &refused), OTPCA_ERR_OK);
    cr_expect_eq(sensitive, 1);
    cr_expect_eq(extractable, 0);
    cr_expect_eq(refused, 1, "CKA_VALUE cannot be read");
    /* Encrypt and decrypt only: no HMAC with it. */
    unsigned char mac[OTPCA_HMAC_MAX];
    size_t mac_len = sizeof mac;
    cr_expect_neq(otpca_token_hmac(tok, wrap, OTPCA_OTP_SHA256, aad, sizeof aad, mac, &mac_len), OTPCA_ERR_OK);
    /* A signing key cannot seal, and a failed open still wipes. */
    otpca_obj_t sign_key;
    unsigned char out[20 + OVER], pt[20];
    size_t len, got;
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_CLOUD_KEY, NULL, 0, &sign_key),
                 OTPCA_ERR_OK);
    cr_expect_neq(otpca_token_aead_seal(tok, sign_key, NULL, 0, seed64, 20, out, sizeof out, &len), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_aead_seal(tok, wrap, NULL, 0, seed64, 20, out, sizeof out, &len), OTPCA_ERR_OK);
    memset(pt, 0xAA, sizeof pt);
    cr_expect_neq(otpca_token_aead_open(tok, sign_key, NULL, 0, out, len, pt, sizeof pt, &got), OTPCA_ERR_OK);
    cr_expect(all_zero(pt, sizeof pt));
}

/* The GCM specification (McGrew and Viega), test case 16: AES-256, 96-bit
 * IV, 20 bytes of aad, 60 bytes of plaintext. */
static const unsigned char tc16_key[32] = {
    0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08,
    0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08};
static const unsigned char tc16_aad[20] = {0xfe, 0xed, 0xfa, 0xce, 0xde, 0xad, 0xbe, 0xef, 0xfe, 0xed,
                                           0xfa, 0xce, 0xde, 0xad, 0xbe, 0xef, 0xab, 0xad, 0xda, 0xd2};
static const unsigned char tc16_pt[60] = {
    0xd9, 0x31, 0x32, 0x25, 0xf8, 0x84, 0x06, 0xe5, 0xa5, 0x59, 0x09, 0xc5, 0xaf, 0xf5, 0x26, 0x9a,
    0x86, 0xa7, 0xa9, 0x53, 0x15, 0x34, 0xf7, 0xda, 0x2e, 0x4c, 0x30, 0x3d, 0x8a, 0x31, 0x8a, 0x72,
    0x1c, 0x3c, 0x0c, 0x95, 0x95, 0x68, 0x09, 0x53, 0x2f, 0xcf, 0x0e, 0x24, 0x49, 0xa6, 0xb5, 0x25,
    0xb1, 0x6a, 0xed, 0xf5, 0xaa, 0x0d, 0xe6, 0x57, 0xba, 0x63, 0x7b, 0x39};
/* iv || ciphertext || tag, the layout otpca_token_aead_seal() writes. */
static const unsigned char tc16_sealed[12 + 60 + 16] = {
    0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce, 0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88,
    0x52, 0x2d, 0xc1, 0xf0, 0x99, 0x56, 0x7d, 0x07, 0xf4, 0x7f, 0x37, 0xa3, 0x2a, 0x84, 0x42, 0x7d,
    0x64, 0x3a, 0x8c, 0xdc, 0xbf, 0xe5, 0xc0, 0xc9, 0x75, 0x98, 0xa2, 0xbd, 0x25, 0x55, 0xd1, 0xaa,
    0x8c, 0xb0, 0x8e, 0x48, 0x59, 0x0d, 0xbb, 0x3d, 0xa7, 0xb0, 0x8b, 0x10, 0x56, 0x82, 0x88, 0x38,
    0xc5, 0xf6, 0x1e, 0x63, 0x93, 0xba, 0x7a, 0x0a, 0xbc, 0xc9, 0xf6, 0x62,
    0x76, 0xfc, 0x6e, 0xce, 0x0f, 0x4e, 0x17, 0x68, 0xcd, 0xdf, 0x88, 0x53, 0xbb, 0x2d, 0x55, 0x1b};

Test(aead, layout_matches_the_gcm_spec_and_wolfcrypt, .init = open_cloud, .fini = close_cloud)
{
    otpca_obj_t kat;
    unsigned char pt[60 + TAG], out[60 + OVER], check[60];
    size_t len, got;
    cr_assert_eq(otpca_token_aes_import(tok, testrig_unique("kat"), tc16_key, sizeof tc16_key, &kat),
                 OTPCA_ERR_OK);
    int sensitive, extractable, refused;
    cr_assert_eq(otpca_token_obj_protection(tok, kat, &sensitive, &extractable, &refused), OTPCA_ERR_OK);
    cr_expect(sensitive == 1 && extractable == 0 && refused == 1, "an imported key is as protected");

    /* The known answer opens in the token, and only with its key. */
    cr_assert_eq(otpca_token_aead_open(tok, kat, tc16_aad, sizeof tc16_aad, tc16_sealed, sizeof tc16_sealed,
                                       pt, sizeof pt, &got),
                 OTPCA_ERR_OK);
    cr_expect_eq(got, sizeof tc16_pt);
    cr_expect_arr_eq(pt, tc16_pt, sizeof tc16_pt);
    cr_expect_eq(otpca_token_aead_open(tok, wrap, tc16_aad, sizeof tc16_aad, tc16_sealed, sizeof tc16_sealed,
                                       pt, sizeof pt, &got),
                 OTPCA_ERR_DECRYPT, "another key");

    /* What the token seals, wolfCrypt opens with the IV from the output. */
    Aes aes;
    cr_assert_eq(wc_AesInit(&aes, NULL, INVALID_DEVID), 0);
    cr_assert_eq(wc_AesGcmSetKey(&aes, tc16_key, sizeof tc16_key), 0);
    cr_assert_eq(otpca_token_aead_seal(tok, kat, tc16_aad, sizeof tc16_aad, tc16_pt, sizeof tc16_pt, out,
                                       sizeof out, &len),
                 OTPCA_ERR_OK);
    cr_assert_eq(len, sizeof tc16_sealed);
    cr_expect_eq(wc_AesGcmDecrypt(&aes, check, out + IV, sizeof check, out, IV, out + IV + 60, TAG, tc16_aad,
                                  sizeof tc16_aad),
                 0);
    cr_expect_arr_eq(check, tc16_pt, sizeof tc16_pt);
    /* And wolfCrypt agrees with the vector itself. */
    unsigned char ct[60], tag[TAG];
    cr_assert_eq(wc_AesGcmEncrypt(&aes, ct, tc16_pt, sizeof ct, tc16_sealed, IV, tag, TAG, tc16_aad,
                                  sizeof tc16_aad),
                 0);
    cr_expect_arr_eq(ct, tc16_sealed + IV, sizeof ct);
    cr_expect_arr_eq(tag, tc16_sealed + IV + 60, TAG);
    wc_AesFree(&aes);

    /* A session object: gone with the session. */
    cr_expect_eq(otpca_token_aes_import(tok, testrig_unique("kat"), tc16_key, 16, NULL), OTPCA_ERR_EXISTS);
    otpca_token_destroy(&tok);
    tok = testrig_open(p11, OTPCA_RIG_CLOUD_TOKEN);
    cr_expect_eq(otpca_token_find(tok, OTPCA_OBJ_SECRET_KEY, testrig_unique("kat"), NULL, 0, &kat),
                 OTPCA_ERR_OBJECT_NOT_FOUND);
}

Test(aead, keygen_makes_protected_aes_keys)
{
    char label[64], label128[80];
    otpca_obj_t k256, k128, found;
    cr_assert_eq(otpca_p11_new(NULL, &p11), OTPCA_ERR_OK);
    tok = testrig_open(p11, "node-000008");
    snprintf(label, sizeof label, "%s", testrig_unique("aes"));
    snprintf(label128, sizeof label128, "%s-128", label);

    cr_assert_eq(otpca_token_keygen_aes(tok, label, 256, &k256), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_keygen_aes(tok, label128, 128, &k128), OTPCA_ERR_OK);
    cr_expect_eq(otpca_token_keygen_aes(tok, label, 256, NULL), OTPCA_ERR_EXISTS);
    cr_expect_eq(otpca_token_keygen_aes(tok, "totp", 256, NULL), OTPCA_ERR_EXISTS,
                 "any secret key with the label counts");
    cr_expect_eq(otpca_token_keygen_aes(tok, "aes-192", 192, NULL), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_token_find(tok, OTPCA_OBJ_SECRET_KEY, "aes-192", NULL, 0, &found),
                 OTPCA_ERR_OBJECT_NOT_FOUND);

    otpca_obj_t keys[2] = {k256, k128};
    for (int i = 0; i < 2; i++) {
        int sensitive, extractable, refused;
        cr_assert_eq(otpca_token_obj_protection(tok, keys[i], &sensitive, &extractable, &refused), OTPCA_ERR_OK);
        cr_expect_eq(sensitive, 1);
        cr_expect_eq(extractable, 0);
        cr_expect_eq(refused, 1);
        unsigned char out[20 + OVER], pt[20];
        size_t len, got;
        cr_assert_eq(otpca_token_aead_seal(tok, keys[i], aad, sizeof aad, seed64, 20, out, sizeof out, &len),
                     OTPCA_ERR_OK);
        cr_assert_eq(otpca_token_aead_open(tok, keys[i], aad, sizeof aad, out, len, pt, sizeof pt, &got),
                     OTPCA_ERR_OK);
        cr_expect_arr_eq(pt, seed64, 20);
        cr_expect_eq(otpca_token_aead_open(tok, keys[1 - i], aad, sizeof aad, out, len, pt, sizeof pt, &got),
                     OTPCA_ERR_DECRYPT, "the other key");
    }

    cr_expect_eq(otpca_token_destroy_object(tok, k256), OTPCA_ERR_OK);
    cr_expect_eq(otpca_token_destroy_object(tok, k128), OTPCA_ERR_OK);
    cr_expect_eq(otpca_token_find(tok, OTPCA_OBJ_SECRET_KEY, label, NULL, 0, &found), OTPCA_ERR_OBJECT_NOT_FOUND);
    cr_expect_eq(otpca_token_find(tok, OTPCA_OBJ_SECRET_KEY, label128, NULL, 0, &found),
                 OTPCA_ERR_OBJECT_NOT_FOUND);
    cr_expect_eq(otpca_token_destroy_object(tok, k256), OTPCA_ERR_OBJECT_NOT_FOUND, "already gone");
    close_cloud();
}

/* Private data objects on the cloud token (how daemons keep their CURVE
 * secret): stored once, read back exactly, refused when too big for the
 * buffer; a second put under the same label is refused. */
Test(aead, private_data_objects_round_trip, .init = open_cloud, .fini = close_cloud)
{
    unsigned char v[32], back[64];
    size_t len = 0;
    char label[48];
    for (size_t i = 0; i < sizeof v; i++)
        v[i] = (unsigned char)(i * 29 + 3);
    snprintf(label, sizeof label, "test-data-%ld", (long)getpid());
    cr_expect_eq(otpca_token_data_get(tok, label, back, sizeof back, &len), OTPCA_ERR_OBJECT_NOT_FOUND);
    cr_assert_eq(otpca_token_data_put(tok, label, v, sizeof v), OTPCA_ERR_OK);
    cr_expect_eq(otpca_token_data_put(tok, label, v, sizeof v), OTPCA_ERR_EXISTS);
    cr_assert_eq(otpca_token_data_get(tok, label, back, sizeof back, &len), OTPCA_ERR_OK);
    cr_expect_eq(len, sizeof v);
    cr_expect_arr_eq(back, v, sizeof v);
    cr_expect_eq(otpca_token_data_get(tok, label, back, 16, &len), OTPCA_ERR_BUFFER_TOO_SMALL);
    cr_expect_eq(otpca_token_data_put(tok, "", v, sizeof v), OTPCA_ERR_INVALID_ARG);
    otpca_obj_t h;
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_DATA, label, NULL, 0, &h), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_destroy_object(tok, h), OTPCA_ERR_OK);
    cr_expect_eq(otpca_token_data_get(tok, label, back, sizeof back, &len), OTPCA_ERR_OBJECT_NOT_FOUND);
}
