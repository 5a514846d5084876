/*
 * Unit tests for the ECIES envelope (proto/src/ecies.c) and the P-256
 * helpers under it (proto/src/p256.c). Envelopes are opened and sealed a
 * second way here, with wolfCrypt's ECDH, HKDF and AES-GCM called directly
 * on the layout written in ecies.h, so a change to the byte layout or the
 * key schedule fails even if seal and open change together. The P-256
 * helpers are checked against the RFC 6979 A.2.5 key and signatures.
 */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>

#include "otpca/common/hex.h"
#include "otpca/proto/ecies.h"
#include "otpca/proto/p256.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static void unhex(const char *h, uint8_t *out, size_t len)
{
    cr_assert_eq(strlen(h), 2 * len, "hex length");
    for (size_t i = 0; i < len; i++) {
        int hi = otpca_hex_digit(h[2 * i]), lo = otpca_hex_digit(h[2 * i + 1]);
        cr_assert(hi >= 0 && lo >= 0);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 31);
}

/* A label of the envelope format other than the protocol's "netkey" (seeds
 * had it before they moved to seed boxes, PROTOCOL.md section 5.1). */
#define LABEL "seed"
#define MAX_ENV (OTPCA_ECIES_MAX_PLAINTEXT + OTPCA_ECIES_OVERHEAD)
#define PRE 0xa5 /* what output buffers hold before a call */

static const uint8_t AAD[] = "node-000001 enrolment";
#define AAD_LEN (sizeof AAD - 1)

typedef struct env_fixture {
    otpca_p256_soft rcpt;
    uint8_t pt[64];
    uint8_t env[64 + OTPCA_ECIES_OVERHEAD];
    size_t env_len;
} env_fixture;

/* A recipient key and one 64-byte envelope to it (label "seed", AAD). */
static void make_env(env_fixture *f)
{
    cr_assert_eq(otpca_p256_soft_generate(&f->rcpt), OTPCA_ERR_OK);
    fill(f->pt, sizeof f->pt, 7);
    cr_assert_eq(otpca_ecies_seal(f->rcpt.pub, sizeof f->rcpt.pub, LABEL, AAD, AAD_LEN, f->pt,
                                  sizeof f->pt, f->env, sizeof f->env, &f->env_len),
                 OTPCA_ERR_OK);
    cr_assert_eq(f->env_len, sizeof f->env);
}

/* Opens env into a PRE-filled buffer with the fixture's key. */
static otpca_err open_env(env_fixture *f, const char *label, const uint8_t *aad, size_t aad_len,
                          const uint8_t *env, size_t env_len, uint8_t *out, size_t cap,
                          size_t *n)
{
    memset(out, PRE, cap);
    return otpca_ecies_open(otpca_p256_soft_ecdh, &f->rcpt, f->rcpt.pub, label, aad, aad_len, env,
                            env_len, out, cap, n);
}

/* An open that must fail with DECRYPT after the tag check: the plaintext
 * area is all zero afterwards, not PRE and not unauthenticated plaintext. */
static void expect_decrypt_wiped(env_fixture *f, const char *label, const uint8_t *aad,
                                 size_t aad_len, const uint8_t *env, size_t env_len,
                                 const char *what)
{
    uint8_t out[MAX_ENV];
    size_t n = 999;
    otpca_err ret = open_env(f, label, aad, aad_len, env, env_len, out, sizeof out, &n);
    cr_expect_eq(ret, OTPCA_ERR_DECRYPT, "%s: %s", what, otpca_errname(ret));
    size_t ptlen = env_len >= OTPCA_ECIES_OVERHEAD ? env_len - OTPCA_ECIES_OVERHEAD : 0;
    cr_expect(all_zero(out, ptlen), "%s: output not wiped", what);
    cr_expect_eq(n, 999, "%s: length written on failure", what);
}

/* ------------------------------------------------------------ round trips */

Test(ecies, seal_open_round_trip_all_sizes_keys_and_aad)
{
    otpca_p256_soft r;
    uint8_t rc[OTPCA_P256_PUB_C_LEN];
    cr_assert_eq(otpca_p256_soft_generate(&r), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_pub_compress(r.pub, rc), OTPCA_ERR_OK);
    size_t sizes[] = {0, 1, 16, 20, 32, 64, 1000, OTPCA_ECIES_MAX_PLAINTEXT};
    static uint8_t pt[OTPCA_ECIES_MAX_PLAINTEXT], env[MAX_ENV], out[OTPCA_ECIES_MAX_PLAINTEXT];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int with_aad = 0; with_aad < 2; with_aad++)
            for (int compressed = 0; compressed < 2; compressed++) {
                size_t len = sizes[si], env_len = 0, n = 0;
                fill(pt, len, (uint8_t)(si + 1));
                const uint8_t *aad = with_aad ? AAD : NULL;
                size_t aad_len = with_aad ? AAD_LEN : 0;
                cr_assert_eq(otpca_ecies_seal(compressed ? rc : r.pub,
                                              compressed ? sizeof rc : sizeof r.pub, LABEL, aad,
                                              aad_len, pt, len, env, sizeof env, &env_len),
                             OTPCA_ERR_OK, "seal %zu aad %d compressed %d", len, with_aad,
                             compressed);
                cr_expect_eq(env_len, len + OTPCA_ECIES_OVERHEAD);
                cr_expect_eq(env[0], 0x01);
                cr_expect_eq(env[1], 0x04, "ephemeral key uncompressed");
                memset(out, PRE, sizeof out);
                cr_assert_eq(otpca_ecies_open(otpca_p256_soft_ecdh, &r, r.pub, LABEL, aad, aad_len,
                                              env, env_len, out, sizeof out, &n),
                             OTPCA_ERR_OK, "open %zu aad %d compressed %d", len, with_aad,
                             compressed);
                cr_expect_eq(n, len);
                cr_expect_arr_eq(out, pt, len);
                /* A 1-byte ciphertext equals its plaintext once in 256
                 * runs; from 16 bytes on, never in practice. */
                if (len >= 16)
                    cr_expect_arr_neq(env + 1 + OTPCA_P256_PUB_LEN, pt, len,
                                      "ciphertext is not the plaintext");
                if (len < sizeof out)
                    cr_expect_eq(out[len], PRE, "nothing written past the plaintext");
            }
    otpca_p256_soft_wipe(&r);
}

Test(ecies, open_into_exactly_sized_buffer)
{
    env_fixture f;
    make_env(&f);
    uint8_t *out = malloc(sizeof f.pt); /* exact, so ASan sees any overrun */
    size_t n;
    cr_assert_not_null(out);
    cr_expect_eq(open_env(&f, LABEL, AAD, AAD_LEN, f.env, f.env_len, out, sizeof f.pt, &n),
                 OTPCA_ERR_OK);
    cr_expect_eq(n, sizeof f.pt);
    cr_expect_arr_eq(out, f.pt, sizeof f.pt);
    free(out);
    otpca_p256_soft_wipe(&f.rcpt);
}

Test(ecies, two_seals_of_the_same_plaintext_differ)
{
    env_fixture f;
    make_env(&f);
    uint8_t env2[sizeof f.env];
    size_t n;
    cr_assert_eq(otpca_ecies_seal(f.rcpt.pub, sizeof f.rcpt.pub, LABEL, AAD, AAD_LEN, f.pt,
                                  sizeof f.pt, env2, sizeof env2, &n),
                 OTPCA_ERR_OK);
    cr_assert_eq(n, f.env_len);
    cr_expect_arr_neq(env2, f.env, n);
    cr_expect_arr_neq(env2 + 1, f.env + 1, OTPCA_P256_PUB_LEN, "fresh ephemeral key");
    cr_expect_arr_neq(env2 + 1 + OTPCA_P256_PUB_LEN, f.env + 1 + OTPCA_P256_PUB_LEN, n - 66,
                      "ciphertext and tag differ");
    otpca_p256_soft_wipe(&f.rcpt);
}

Test(ecies, empty_plaintext_with_null_buffers)
{
    otpca_p256_soft r;
    uint8_t env[OTPCA_ECIES_OVERHEAD];
    size_t env_len = 0, n = 999;
    cr_assert_eq(otpca_p256_soft_generate(&r), OTPCA_ERR_OK);
    cr_assert_eq(otpca_ecies_seal(r.pub, 65, LABEL, NULL, 0, NULL, 0, env, sizeof env, &env_len),
                 OTPCA_ERR_OK);
    cr_expect_eq(env_len, OTPCA_ECIES_OVERHEAD);
    cr_expect_eq(otpca_ecies_open(otpca_p256_soft_ecdh, &r, r.pub, LABEL, NULL, 0, env, env_len,
                                  NULL, 0, &n),
                 OTPCA_ERR_OK);
    cr_expect_eq(n, 0);
    /* the tag still authenticates an empty plaintext */
    env[env_len - 1] ^= 1;
    n = 999;
    cr_expect_eq(otpca_ecies_open(otpca_p256_soft_ecdh, &r, r.pub, LABEL, NULL, 0, env, env_len,
                                  NULL, 0, &n),
                 OTPCA_ERR_DECRYPT);
    cr_expect_eq(n, 999);
    otpca_p256_soft_wipe(&r);
}

/* ------------------------------------------------- independent wolfCrypt */

/* Z = x(d * P) with wolfCrypt directly. */
static void wolf_ecdh(const uint8_t priv[32], const uint8_t priv_pub[65], const uint8_t peer[65],
                      uint8_t z[32])
{
    ecc_key d, p;
    WC_RNG rng;
    word32 zl = 32;
    cr_assert_eq(wc_InitRng(&rng), 0);
    cr_assert_eq(wc_ecc_init(&d), 0);
    cr_assert_eq(wc_ecc_init(&p), 0);
    cr_assert_eq(wc_ecc_import_private_key_ex(priv, 32, priv_pub, 65, &d, ECC_SECP256R1), 0);
    cr_assert_eq(wc_ecc_import_x963_ex(peer, 65, &p, ECC_SECP256R1), 0);
    cr_assert_eq(wc_ecc_set_rng(&d, &rng), 0);
    cr_assert_eq(wc_ecc_shared_secret(&d, &p, z, &zl), 0);
    cr_assert_eq(zl, 32);
    wc_ecc_free(&p);
    wc_ecc_free(&d);
    wc_FreeRng(&rng);
}

/* K || IV = HKDF-SHA256(salt = E || R, IKM = Z, info = "otpca-ecies-v1 " || label, 28). */
static void wolf_kdf(const uint8_t z[32], const uint8_t e[65], const uint8_t r[65],
                     const char *label, uint8_t okm[28])
{
    uint8_t salt[130], info[64];
    static const char prefix[] = "otpca-ecies-v1 ";
    size_t pl = strlen(prefix), ll = strlen(label);
    memcpy(salt, e, 65);
    memcpy(salt + 65, r, 65);
    memcpy(info, prefix, pl);
    memcpy(info + pl, label, ll);
    cr_assert_eq(wc_HKDF(WC_SHA256, z, 32, salt, sizeof salt, info, (word32)(pl + ll), okm, 28), 0);
}

/* Opens an envelope by the spec in ecies.h with wolfCrypt only. */
static int wolf_open(const otpca_p256_soft *r, const char *label, const uint8_t *aad,
                     size_t aad_len, const uint8_t *env, size_t env_len, uint8_t *pt)
{
    uint8_t z[32], okm[28], full_aad[300];
    Aes aes;
    cr_assert_geq(env_len, 82);
    cr_assert_eq(env[0], 0x01);
    size_t n = env_len - 82;
    wolf_ecdh(r->priv, r->pub, env + 1, z);
    wolf_kdf(z, env + 1, r->pub, label, okm);
    full_aad[0] = 0x01;
    memcpy(full_aad + 1, aad, aad_len);
    cr_assert_eq(wc_AesInit(&aes, NULL, INVALID_DEVID), 0);
    cr_assert_eq(wc_AesGcmSetKey(&aes, okm, 16), 0);
    int rc = wc_AesGcmDecrypt(&aes, pt, env + 66, (word32)n, okm + 16, 12, env + 66 + n, 16,
                              full_aad, (word32)(1 + aad_len));
    wc_AesFree(&aes);
    return rc;
}

Test(ecies, envelope_opens_with_wolfcrypt_by_the_spec)
{
    otpca_p256_soft r;
    uint8_t rc[OTPCA_P256_PUB_C_LEN];
    cr_assert_eq(otpca_p256_soft_generate(&r), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_pub_compress(r.pub, rc), OTPCA_ERR_OK);
    size_t sizes[] = {0, 16, 20, 32, 64};
    const char *labels[] = {LABEL, OTPCA_ECIES_LABEL_NETKEY};
    uint8_t pt[64], env[64 + OTPCA_ECIES_OVERHEAD], out[64];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int li = 0; li < 2; li++)
            for (int with_aad = 0; with_aad < 2; with_aad++) {
                size_t len = sizes[si], env_len;
                const uint8_t *aad = with_aad ? AAD : NULL;
                size_t aad_len = with_aad ? AAD_LEN : 0;
                fill(pt, len, (uint8_t)(3 * si + li));
                /* sealed to the compressed form: R in the salt is still
                 * the uncompressed key */
                cr_assert_eq(otpca_ecies_seal(li ? rc : r.pub, li ? sizeof rc : sizeof r.pub,
                                              labels[li], aad, aad_len, pt, len, env, sizeof env,
                                              &env_len),
                             OTPCA_ERR_OK);
                memset(out, PRE, sizeof out);
                cr_expect_eq(wolf_open(&r, labels[li], AAD, aad_len, env, env_len, out), 0,
                             "size %zu label %s aad %d", len, labels[li], with_aad);
                cr_expect_arr_eq(out, pt, len);
                /* and the independent open also refuses the other label */
                cr_expect_neq(wolf_open(&r, labels[!li], AAD, aad_len, env, env_len, out), 0);
            }
    otpca_p256_soft_wipe(&r);
}

Test(ecies, envelope_sealed_with_wolfcrypt_by_the_spec_opens)
{
    otpca_p256_soft r, e;
    uint8_t pt[40], env[40 + OTPCA_ECIES_OVERHEAD], z[32], okm[28], full_aad[1 + AAD_LEN],
        out[40];
    Aes aes;
    size_t n;
    cr_assert_eq(otpca_p256_soft_generate(&r), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_soft_generate(&e), OTPCA_ERR_OK);
    fill(pt, sizeof pt, 99);
    wolf_ecdh(e.priv, e.pub, r.pub, z);
    wolf_kdf(z, e.pub, r.pub, OTPCA_ECIES_LABEL_NETKEY, okm);
    full_aad[0] = 0x01;
    memcpy(full_aad + 1, AAD, AAD_LEN);
    env[0] = 0x01;
    memcpy(env + 1, e.pub, 65);
    cr_assert_eq(wc_AesInit(&aes, NULL, INVALID_DEVID), 0);
    cr_assert_eq(wc_AesGcmSetKey(&aes, okm, 16), 0);
    cr_assert_eq(wc_AesGcmEncrypt(&aes, env + 66, pt, sizeof pt, okm + 16, 12, env + 66 + sizeof pt,
                                  16, full_aad, sizeof full_aad),
                 0);
    wc_AesFree(&aes);

    memset(out, PRE, sizeof out);
    cr_expect_eq(otpca_ecies_open(otpca_p256_soft_ecdh, &r, r.pub, OTPCA_ECIES_LABEL_NETKEY, AAD,
                                  AAD_LEN, env, sizeof env, out, sizeof out, &n),
                 OTPCA_ERR_OK);
    cr_expect_eq(n, sizeof pt);
    cr_expect_arr_eq(out, pt, sizeof pt);

    /* otpca's ECDH callback gives the same Z as wolfCrypt's */
    uint8_t z2[32];
    cr_assert_eq(otpca_p256_soft_ecdh(&r, e.pub, z2), OTPCA_ERR_OK);
    cr_expect_arr_eq(z2, z, 32);
    otpca_p256_soft_wipe(&r);
    otpca_p256_soft_wipe(&e);
}

/* ------------------------------------------------------------ failures */

Test(ecies, tampered_tag_or_ciphertext_is_decrypt_and_wiped)
{
    env_fixture f;
    make_env(&f);
    uint8_t env[sizeof f.env];
    for (size_t i = 1 + OTPCA_P256_PUB_LEN; i < f.env_len; i++) {
        memcpy(env, f.env, f.env_len);
        env[i] ^= (uint8_t)(1u << (i % 8));
        expect_decrypt_wiped(&f, LABEL, AAD, AAD_LEN, env, f.env_len,
                             i < f.env_len - 16 ? "ciphertext" : "tag");
    }
    /* untouched copy still opens */
    uint8_t out[64];
    size_t n;
    cr_expect_eq(open_env(&f, LABEL, AAD, AAD_LEN, f.env, f.env_len, out, sizeof out, &n),
                 OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&f.rcpt);
}

Test(ecies, tampered_ephemeral_key_is_decrypt)
{
    env_fixture f;
    make_env(&f);
    uint8_t env[sizeof f.env], out[64];
    size_t n;

    /* Another valid point: ECDH works, the tag check fails, output wiped. */
    otpca_p256_soft other;
    cr_assert_eq(otpca_p256_soft_generate(&other), OTPCA_ERR_OK);
    memcpy(env, f.env, f.env_len);
    memcpy(env + 1, other.pub, OTPCA_P256_PUB_LEN);
    expect_decrypt_wiped(&f, LABEL, AAD, AAD_LEN, env, f.env_len, "other valid E");
    /* The recipient's own key as E */
    memcpy(env + 1, f.rcpt.pub, OTPCA_P256_PUB_LEN);
    expect_decrypt_wiped(&f, LABEL, AAD, AAD_LEN, env, f.env_len, "E = R");

    /*
     * Not a valid uncompressed point: refused before ECDH, so no plaintext
     * is ever produced into out; it is left as it was (PRE).
     */
    struct {
        size_t byte;
        uint8_t xor_;
        const char *what;
    } bad[] = {
        {1, 0x01, "prefix 05"},  {1, 0x06, "prefix 02"}, {1, 0x07, "prefix 03"},
        {1, 0x04, "prefix 00"},  {2, 0x01, "x changed"}, {65, 0x01, "y changed"},
        {40, 0x80, "y changed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(env, f.env, f.env_len);
        env[bad[i].byte] ^= bad[i].xor_;
        otpca_err ret = open_env(&f, LABEL, AAD, AAD_LEN, env, f.env_len, out, sizeof out, &n);
        cr_expect_eq(ret, OTPCA_ERR_DECRYPT, "%s: %s", bad[i].what, otpca_errname(ret));
        for (size_t j = 0; j < sizeof out; j++)
            cr_expect(out[j] == PRE || out[j] == 0, "%s: output byte %zu written", bad[i].what, j);
    }
    /* all-zero E (the "point at infinity" encoding is one byte, not this) */
    memcpy(env, f.env, f.env_len);
    memset(env + 1, 0, OTPCA_P256_PUB_LEN);
    env[1] = 0x04;
    cr_expect_eq(open_env(&f, LABEL, AAD, AAD_LEN, env, f.env_len, out, sizeof out, &n),
                 OTPCA_ERR_DECRYPT);
    otpca_p256_soft_wipe(&other);
    otpca_p256_soft_wipe(&f.rcpt);
}

Test(ecies, wrong_recipient_key_is_decrypt)
{
    env_fixture f;
    make_env(&f);
    otpca_p256_soft other;
    cr_assert_eq(otpca_p256_soft_generate(&other), OTPCA_ERR_OK);
    uint8_t out[64];
    size_t n = 999;

    /* the other key, its own public key */
    memset(out, PRE, sizeof out);
    cr_expect_eq(otpca_ecies_open(otpca_p256_soft_ecdh, &other, other.pub, LABEL, AAD, AAD_LEN,
                                  f.env, f.env_len, out, sizeof out, &n),
                 OTPCA_ERR_DECRYPT);
    cr_expect(all_zero(out, sizeof out));
    /* the other key claiming to be the recipient (right salt, wrong Z) */
    memset(out, PRE, sizeof out);
    cr_expect_eq(otpca_ecies_open(otpca_p256_soft_ecdh, &other, f.rcpt.pub, LABEL, AAD, AAD_LEN,
                                  f.env, f.env_len, out, sizeof out, &n),
                 OTPCA_ERR_DECRYPT);
    cr_expect(all_zero(out, sizeof out));
    /* the right key with a wrong R in the salt (right Z, wrong salt) */
    memset(out, PRE, sizeof out);
    cr_expect_eq(otpca_ecies_open(otpca_p256_soft_ecdh, &f.rcpt, other.pub, LABEL, AAD, AAD_LEN,
                                  f.env, f.env_len, out, sizeof out, &n),
                 OTPCA_ERR_DECRYPT);
    cr_expect(all_zero(out, sizeof out));
    cr_expect_eq(n, 999);
    otpca_p256_soft_wipe(&other);
    otpca_p256_soft_wipe(&f.rcpt);
}

Test(ecies, wrong_label_or_aad_is_decrypt)
{
    env_fixture f;
    make_env(&f);
    expect_decrypt_wiped(&f, OTPCA_ECIES_LABEL_NETKEY, AAD, AAD_LEN, f.env, f.env_len, "netkey");
    expect_decrypt_wiped(&f, "see", AAD, AAD_LEN, f.env, f.env_len, "prefix of label");
    expect_decrypt_wiped(&f, "seed ", AAD, AAD_LEN, f.env, f.env_len, "label + space");
    expect_decrypt_wiped(&f, "Seed", AAD, AAD_LEN, f.env, f.env_len, "case");
    expect_decrypt_wiped(&f, LABEL, NULL, 0, f.env, f.env_len, "no aad");
    expect_decrypt_wiped(&f, LABEL, AAD, AAD_LEN - 1, f.env, f.env_len, "shorter aad");
    expect_decrypt_wiped(&f, LABEL, AAD, AAD_LEN + 1, f.env, f.env_len, "longer aad");
    uint8_t aad2[AAD_LEN];
    memcpy(aad2, AAD, AAD_LEN);
    aad2[AAD_LEN - 1] ^= 1;
    expect_decrypt_wiped(&f, LABEL, aad2, AAD_LEN, f.env, f.env_len, "changed aad");

    /* sealed without aad: any aad fails, an empty one opens */
    uint8_t env[sizeof f.env], out[64];
    size_t n;
    cr_assert_eq(otpca_ecies_seal(f.rcpt.pub, 65, LABEL, NULL, 0, f.pt, sizeof f.pt, env,
                                  sizeof env, &n),
                 OTPCA_ERR_OK);
    expect_decrypt_wiped(&f, LABEL, (const uint8_t *)"", 1, env, n, "aad 00 vs none");
    cr_expect_eq(open_env(&f, LABEL, (const uint8_t *)"x", 0, env, n, out, sizeof out, &n),
                 OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&f.rcpt);
}

Test(ecies, truncated_or_extended_envelope_fails)
{
    env_fixture f;
    make_env(&f);
    uint8_t out[MAX_ENV];
    for (size_t len = 0; len < f.env_len; len++) {
        uint8_t *copy = malloc(len ? len : 1); /* exact size for ASan */
        cr_assert_not_null(copy);
        memcpy(copy, f.env, len);
        size_t n = 999;
        otpca_err ret = open_env(&f, LABEL, AAD, AAD_LEN, copy, len, out, sizeof out, &n);
        if (len < OTPCA_ECIES_OVERHEAD) {
            cr_expect_eq(ret, OTPCA_ERR_PROTO_VALUE, "length %zu: %s", len, otpca_errname(ret));
        } else {
            cr_expect_eq(ret, OTPCA_ERR_DECRYPT, "length %zu: %s", len, otpca_errname(ret));
            cr_expect(all_zero(out, len - OTPCA_ECIES_OVERHEAD), "length %zu not wiped", len);
        }
        cr_expect_eq(n, 999);
        free(copy);
    }
    /* NULL envelope of length 0 */
    size_t n;
    cr_expect_eq(open_env(&f, LABEL, AAD, AAD_LEN, NULL, 0, out, sizeof out, &n),
                 OTPCA_ERR_PROTO_VALUE);
    /* one byte more */
    uint8_t longer[sizeof f.env + 1];
    memcpy(longer, f.env, f.env_len);
    longer[f.env_len] = 0;
    expect_decrypt_wiped(&f, LABEL, AAD, AAD_LEN, longer, f.env_len + 1, "one byte appended");
    /* longer than the largest plaintext allows */
    static uint8_t huge[MAX_ENV + 1];
    memcpy(huge, f.env, f.env_len);
    cr_expect_eq(open_env(&f, LABEL, AAD, AAD_LEN, huge, sizeof huge, out, sizeof out, &n),
                 OTPCA_ERR_PROTO_VALUE);
    otpca_p256_soft_wipe(&f.rcpt);
}

Test(ecies, wrong_version_byte_is_proto_value)
{
    env_fixture f;
    make_env(&f);
    uint8_t env[sizeof f.env], out[64];
    uint8_t versions[] = {0x00, 0x02, 0x04, 0x81, 0xff};
    for (size_t i = 0; i < sizeof versions; i++) {
        memcpy(env, f.env, f.env_len);
        env[0] = versions[i];
        size_t n = 999;
        cr_expect_eq(open_env(&f, LABEL, AAD, AAD_LEN, env, f.env_len, out, sizeof out, &n),
                     OTPCA_ERR_PROTO_VALUE, "version %02x", versions[i]);
        cr_expect_eq(n, 999);
    }
    otpca_p256_soft_wipe(&f.rcpt);
}

Test(ecies, too_small_buffers_are_buffer_too_small)
{
    env_fixture f;
    make_env(&f);
    uint8_t env[sizeof f.env], out[64];
    size_t n = 999;
    for (size_t cap = 0; cap < sizeof f.pt + OTPCA_ECIES_OVERHEAD; cap++)
        cr_expect_eq(otpca_ecies_seal(f.rcpt.pub, 65, LABEL, AAD, AAD_LEN, f.pt, sizeof f.pt, env,
                                      cap, &n),
                     OTPCA_ERR_BUFFER_TOO_SMALL, "seal cap %zu", cap);
    cr_expect_eq(n, 999);
    for (size_t cap = 0; cap < sizeof f.pt; cap++)
        cr_expect_eq(open_env(&f, LABEL, AAD, AAD_LEN, f.env, f.env_len, out, cap, &n),
                     OTPCA_ERR_BUFFER_TOO_SMALL, "open cap %zu", cap);
    cr_expect_eq(n, 999);
    /* a non-empty plaintext into NULL */
    cr_expect_eq(otpca_ecies_open(otpca_p256_soft_ecdh, &f.rcpt, f.rcpt.pub, LABEL, AAD, AAD_LEN,
                                  f.env, f.env_len, NULL, 64, &n),
                 OTPCA_ERR_BUFFER_TOO_SMALL);
    otpca_p256_soft_wipe(&f.rcpt);
}

Test(ecies, bad_arguments_are_refused)
{
    env_fixture f;
    make_env(&f);
    static uint8_t big[OTPCA_ECIES_MAX_PLAINTEXT + 1], env[sizeof big + OTPCA_ECIES_OVERHEAD],
        aad[257];
    uint8_t bad[OTPCA_P256_PUB_LEN];
    size_t n;
    char label32[33], label33[34];
    memset(label32, 'a', 32);
    label32[32] = 0;
    memset(label33, 'a', 33);
    label33[33] = 0;

    cr_expect_eq(otpca_ecies_seal(f.rcpt.pub, 65, LABEL, NULL, 0, big, sizeof big, env, sizeof env,
                                  &n),
                 OTPCA_ERR_INVALID_ARG, "plaintext over the maximum");
    cr_expect_eq(otpca_ecies_seal(f.rcpt.pub, 65, "", NULL, 0, big, 16, env, sizeof env, &n),
                 OTPCA_ERR_INVALID_ARG, "empty label");
    cr_expect_eq(otpca_ecies_seal(f.rcpt.pub, 65, label33, NULL, 0, big, 16, env, sizeof env, &n),
                 OTPCA_ERR_INVALID_ARG, "label of 33");
    cr_expect_eq(otpca_ecies_seal(f.rcpt.pub, 65, NULL, NULL, 0, big, 16, env, sizeof env, &n),
                 OTPCA_ERR_INVALID_ARG, "NULL label");
    cr_expect_eq(otpca_ecies_seal(f.rcpt.pub, 65, LABEL, aad, sizeof aad, big, 16, env, sizeof env,
                                  &n),
                 OTPCA_ERR_INVALID_ARG, "aad of 257");
    cr_expect_eq(otpca_ecies_seal(f.rcpt.pub, 65, LABEL, NULL, 5, big, 16, env, sizeof env, &n),
                 OTPCA_ERR_INVALID_ARG, "NULL aad of 5");
    cr_expect_eq(otpca_ecies_seal(f.rcpt.pub, 65, LABEL, NULL, 0, NULL, 16, env, sizeof env, &n),
                 OTPCA_ERR_INVALID_ARG, "NULL plaintext of 16");
    memcpy(bad, f.rcpt.pub, sizeof bad);
    bad[64] ^= 1;
    cr_expect_eq(otpca_ecies_seal(bad, 65, LABEL, NULL, 0, big, 16, env, sizeof env, &n),
                 OTPCA_ERR_BAD_KEY, "recipient off the curve");
    cr_expect_eq(otpca_ecies_seal(f.rcpt.pub, 64, LABEL, NULL, 0, big, 16, env, sizeof env, &n),
                 OTPCA_ERR_BAD_KEY, "recipient of 64 bytes");

    /* the limits themselves are fine: label of 32, aad of 256 */
    uint8_t out[64];
    cr_assert_eq(otpca_ecies_seal(f.rcpt.pub, 65, label32, aad, 256, f.pt, sizeof f.pt, env,
                                  sizeof env, &n),
                 OTPCA_ERR_OK);
    cr_expect_eq(open_env(&f, label32, aad, 256, env, n, out, sizeof out, &n), OTPCA_ERR_OK);
    cr_expect_arr_eq(out, f.pt, sizeof f.pt);

    cr_expect_eq(open_env(&f, label33, AAD, AAD_LEN, f.env, f.env_len, out, sizeof out, &n),
                 OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(open_env(&f, "", AAD, AAD_LEN, f.env, f.env_len, out, sizeof out, &n),
                 OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(open_env(&f, LABEL, aad, sizeof aad, f.env, f.env_len, out, sizeof out, &n),
                 OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_ecies_open(NULL, &f.rcpt, f.rcpt.pub, LABEL, AAD, AAD_LEN, f.env, f.env_len,
                                  out, sizeof out, &n),
                 OTPCA_ERR_INVALID_ARG);
    otpca_p256_soft_wipe(&f.rcpt);
}

static otpca_err failing_ecdh(void *ctx, const uint8_t peer[OTPCA_P256_PUB_LEN], uint8_t z[32])
{
    int *calls = ctx;
    (*calls)++;
    (void)peer;
    memset(z, 0x77, 32);
    return OTPCA_ERR_PKCS11;
}

Test(ecies, ecdh_callback_error_is_propagated)
{
    env_fixture f;
    make_env(&f);
    uint8_t out[64];
    size_t n = 999;
    int calls = 0;
    memset(out, PRE, sizeof out);
    cr_expect_eq(otpca_ecies_open(failing_ecdh, &calls, f.rcpt.pub, LABEL, AAD, AAD_LEN, f.env,
                                  f.env_len, out, sizeof out, &n),
                 OTPCA_ERR_PKCS11);
    cr_expect_eq(calls, 1);
    cr_expect_eq(n, 999);
    otpca_p256_soft_wipe(&f.rcpt);
}

/* ------------------------------------------------------------ p256 */

/* RFC 6979 A.2.5: P-256 key and the deterministic SHA-256 signatures. */
static const char RFC6979_D[] = "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721";
static const char RFC6979_UX[] = "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6";
static const char RFC6979_UY[] = "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299";
static const char SAMPLE_R[] = "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716";
static const char SAMPLE_S[] = "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8";
static const char TEST_R[] = "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367";
static const char TEST_S[] = "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083";
/* The field prime p and group order n. */
static const char P256_P[] = "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF";
static const char P256_N[] = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";

static void rfc6979_pub(uint8_t pub[65])
{
    pub[0] = 0x04;
    unhex(RFC6979_UX, pub + 1, 32);
    unhex(RFC6979_UY, pub + 33, 32);
}

Test(ecies, p256_soft_import_of_rfc6979_key_gives_its_public_key)
{
    uint8_t d[32], pub[65];
    otpca_p256_soft k;
    unhex(RFC6979_D, d, 32);
    rfc6979_pub(pub);
    cr_assert_eq(otpca_p256_soft_import(&k, d), OTPCA_ERR_OK);
    cr_expect_arr_eq(k.priv, d, 32);
    cr_expect_arr_eq(k.pub, pub, 65);

    /* and the imported key signs what verifies under the known key */
    uint8_t digest[32], sig[64];
    otpca_sha256((const uint8_t *)"sample", 6, digest);
    cr_assert_eq(otpca_p256_soft_sign(&k, digest, sig), OTPCA_ERR_OK);
    cr_expect_eq(otpca_p256_verify(pub, 65, digest, sig), OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&k);
}

Test(ecies, p256_soft_import_refuses_out_of_range_scalars)
{
    uint8_t d[32];
    otpca_p256_soft k;
    memset(d, 0, 32);
    memset(&k, PRE, sizeof k);
    cr_expect_neq(otpca_p256_soft_import(&k, d), OTPCA_ERR_OK, "d = 0");
    cr_expect(all_zero(&k, sizeof k), "key wiped after a failed import");
    unhex(P256_N, d, 32);
    cr_expect_neq(otpca_p256_soft_import(&k, d), OTPCA_ERR_OK, "d = n");
    cr_expect(all_zero(&k, sizeof k));
    memset(d, 0xff, 32);
    cr_expect_neq(otpca_p256_soft_import(&k, d), OTPCA_ERR_OK, "d = 2^256 - 1");
    cr_expect(all_zero(&k, sizeof k));
}

Test(ecies, p256_verify_rfc6979_signatures)
{
    uint8_t pub[65], pubc[33], sig_sample[64], sig_test[64], d_sample[32], d_test[32];
    rfc6979_pub(pub);
    cr_assert_eq(otpca_p256_pub_compress(pub, pubc), OTPCA_ERR_OK);
    cr_expect_eq(pubc[0], 0x02 | (pub[64] & 1));
    unhex(SAMPLE_R, sig_sample, 32);
    unhex(SAMPLE_S, sig_sample + 32, 32);
    unhex(TEST_R, sig_test, 32);
    unhex(TEST_S, sig_test + 32, 32);
    otpca_sha256((const uint8_t *)"sample", 6, d_sample);
    otpca_sha256((const uint8_t *)"test", 4, d_test);

    cr_expect_eq(otpca_p256_verify(pub, 65, d_sample, sig_sample), OTPCA_ERR_OK);
    cr_expect_eq(otpca_p256_verify(pubc, 33, d_sample, sig_sample), OTPCA_ERR_OK);
    cr_expect_eq(otpca_p256_verify(pub, 65, d_test, sig_sample), OTPCA_ERR_SIGNATURE);
    cr_expect_eq(otpca_p256_verify(pubc, 33, d_test, sig_sample), OTPCA_ERR_SIGNATURE);
    /* the "test" signature (its s has a leading zero byte) the other way */
    cr_expect_eq(otpca_p256_verify(pub, 65, d_test, sig_test), OTPCA_ERR_OK);
    cr_expect_eq(otpca_p256_verify(pub, 65, d_sample, sig_test), OTPCA_ERR_SIGNATURE);
    /* r and s swapped */
    uint8_t swapped[64];
    memcpy(swapped, sig_sample + 32, 32);
    memcpy(swapped + 32, sig_sample, 32);
    cr_expect_eq(otpca_p256_verify(pub, 65, d_sample, swapped), OTPCA_ERR_SIGNATURE);
    /* another key */
    otpca_p256_soft other;
    cr_assert_eq(otpca_p256_soft_generate(&other), OTPCA_ERR_OK);
    cr_expect_eq(otpca_p256_verify(other.pub, 65, d_sample, sig_sample), OTPCA_ERR_SIGNATURE);
    otpca_p256_soft_wipe(&other);
    /* a bad key is BAD_KEY, not SIGNATURE */
    pub[64] ^= 1;
    cr_expect_eq(otpca_p256_verify(pub, 65, d_sample, sig_sample), OTPCA_ERR_BAD_KEY);
}

Test(ecies, p256_soft_sign_verifies_and_fixes_the_width)
{
    /* 200 signatures: some r or s below 2^248 (probability ~1/128 each)
     * have to be left-padded to 32 bytes; all must verify. */
    otpca_p256_soft k;
    uint8_t digest[32], sig[64];
    cr_assert_eq(otpca_p256_soft_generate(&k), OTPCA_ERR_OK);
    for (int i = 0; i < 200; i++) {
        digest[0] = (uint8_t)i;
        otpca_sha256(digest, 1, digest);
        cr_assert_eq(otpca_p256_soft_sign(&k, digest, sig), OTPCA_ERR_OK);
        cr_expect_eq(otpca_p256_verify(k.pub, 65, digest, sig), OTPCA_ERR_OK, "signature %d", i);
        digest[31] ^= 1;
        cr_expect_eq(otpca_p256_verify(k.pub, 65, digest, sig), OTPCA_ERR_SIGNATURE);
    }
    otpca_p256_soft_wipe(&k);
}

Test(ecies, p256_pub_normalize_refuses_bad_lengths_and_prefixes)
{
    otpca_p256_soft k;
    uint8_t buf[70], out[65], c[33];
    cr_assert_eq(otpca_p256_soft_generate(&k), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_pub_compress(k.pub, c), OTPCA_ERR_OK);
    size_t lens[] = {0, 1, 32, 34, 64, 66, 69};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        memset(buf, 0, sizeof buf);
        memcpy(buf, k.pub, 65);
        cr_expect_eq(otpca_p256_pub_normalize(buf, lens[i], out), OTPCA_ERR_BAD_KEY, "len %zu",
                     lens[i]);
        buf[0] = c[0];
        memcpy(buf + 1, c + 1, 32);
        cr_expect_eq(otpca_p256_pub_normalize(buf, lens[i], out), OTPCA_ERR_BAD_KEY,
                     "compressed, len %zu", lens[i]);
    }
    cr_expect_eq(otpca_p256_pub_normalize(NULL, 65, out), OTPCA_ERR_BAD_KEY);
    /* uncompressed with other prefixes (including hybrid 06/07) */
    uint8_t prefixes[] = {0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x07, 0x44, 0xff};
    for (size_t i = 0; i < sizeof prefixes; i++) {
        memcpy(buf, k.pub, 65);
        buf[0] = prefixes[i];
        cr_expect_eq(otpca_p256_pub_normalize(buf, 65, out), OTPCA_ERR_BAD_KEY, "65 prefix %02x",
                     prefixes[i]);
        memcpy(buf, c, 33);
        buf[0] = prefixes[i];
        if (prefixes[i] != 0x02 && prefixes[i] != 0x03)
            cr_expect_eq(otpca_p256_pub_normalize(buf, 33, out), OTPCA_ERR_BAD_KEY,
                         "33 prefix %02x", prefixes[i]);
    }
    /* the one-byte point at infinity */
    buf[0] = 0x00;
    cr_expect_eq(otpca_p256_pub_normalize(buf, 1, out), OTPCA_ERR_BAD_KEY);
    otpca_p256_soft_wipe(&k);
}

Test(ecies, p256_pub_normalize_refuses_points_off_the_curve)
{
    otpca_p256_soft k;
    uint8_t buf[65], out[65];
    cr_assert_eq(otpca_p256_soft_generate(&k), OTPCA_ERR_OK);
    for (size_t i = 1; i < 65; i++) {
        memcpy(buf, k.pub, 65);
        buf[i] ^= 0x10;
        cr_expect_eq(otpca_p256_pub_normalize(buf, 65, out), OTPCA_ERR_BAD_KEY, "byte %zu", i);
    }
    memset(buf, 0, 65);
    buf[0] = 0x04;
    cr_expect_eq(otpca_p256_pub_normalize(buf, 65, out), OTPCA_ERR_BAD_KEY, "(0, 0)");
    /* compressed x = 1 and x = 2: x^3 - 3x + b is not a square mod p */
    uint8_t c[33] = {0x02};
    for (uint8_t x = 1; x <= 2; x++) {
        memset(c + 1, 0, 32);
        c[32] = x;
        c[0] = 0x02;
        cr_expect_eq(otpca_p256_pub_normalize(c, 33, out), OTPCA_ERR_BAD_KEY, "x = %u", x);
        c[0] = 0x03;
        cr_expect_eq(otpca_p256_pub_normalize(c, 33, out), OTPCA_ERR_BAD_KEY, "x = %u", x);
    }
    /* compress refuses an off-curve key too */
    memcpy(buf, k.pub, 65);
    buf[64] ^= 1;
    cr_expect_eq(otpca_p256_pub_compress(buf, c), OTPCA_ERR_BAD_KEY);
    otpca_p256_soft_wipe(&k);
}

Test(ecies, p256_pub_normalize_refuses_coordinates_not_below_p)
{
    /*
     * SEC1 2.3.4: the coordinates of an encoded point are field elements,
     * integers in [0, p-1]. (0, y0) with y0 below is on P-256 (b is a
     * square), so (p, y0) is the same point with x written unreduced; an
     * encoding check must refuse it, or one point would have two encodings
     * (and two kids).
     */
    static const char Y0[] = "66485C780E2F83D72433BD5D84A06BB6541C2AF31DAE871728BF856A174F93F4";
    uint8_t pt[65], out[65], c[33];
    pt[0] = 0x04;
    memset(pt + 1, 0, 32);
    unhex(Y0, pt + 33, 32);
    cr_assert_eq(otpca_p256_pub_normalize(pt, 65, out), OTPCA_ERR_OK, "(0, y0) is on the curve");
    cr_expect_arr_eq(out, pt, 65);

    unhex(P256_P, pt + 1, 32);
    cr_expect_eq(otpca_p256_pub_normalize(pt, 65, out), OTPCA_ERR_BAD_KEY, "x = p");
    c[0] = 0x02;
    unhex(P256_P, c + 1, 32);
    cr_expect_eq(otpca_p256_pub_normalize(c, 33, out), OTPCA_ERR_BAD_KEY, "compressed x = p");
    c[0] = 0x03;
    cr_expect_eq(otpca_p256_pub_normalize(c, 33, out), OTPCA_ERR_BAD_KEY, "compressed x = p");
}

Test(ecies, p256_compress_and_normalize_round_trip)
{
    int parity_seen[2] = {0, 0};
    for (int i = 0; i < 64 && !(parity_seen[0] && parity_seen[1] && i >= 8); i++) {
        otpca_p256_soft k;
        uint8_t c[33], u[65], u2[65];
        cr_assert_eq(otpca_p256_soft_generate(&k), OTPCA_ERR_OK);
        cr_assert_eq(otpca_p256_pub_compress(k.pub, c), OTPCA_ERR_OK);
        cr_expect_eq(c[0], 0x02 | (k.pub[64] & 1), "prefix is the parity of y");
        cr_expect_arr_eq(c + 1, k.pub + 1, 32, "x kept");
        parity_seen[c[0] & 1] = 1;
        memset(u, 0, sizeof u);
        cr_assert_eq(otpca_p256_pub_normalize(c, 33, u), OTPCA_ERR_OK);
        cr_expect_arr_eq(u, k.pub, 65);
        cr_assert_eq(otpca_p256_pub_normalize(k.pub, 65, u2), OTPCA_ERR_OK);
        cr_expect_arr_eq(u2, k.pub, 65);
        /* the other parity is the negated point, also valid, not the key */
        c[0] ^= 1;
        cr_assert_eq(otpca_p256_pub_normalize(c, 33, u), OTPCA_ERR_OK);
        cr_expect_arr_eq(u + 1, k.pub + 1, 32);
        cr_expect_arr_neq(u + 33, k.pub + 33, 32);
        otpca_p256_soft_wipe(&k);
    }
    cr_expect(parity_seen[0] && parity_seen[1], "both 02 and 03 keys seen");
}

Test(ecies, p256_kid_is_sha256_prefix_of_uncompressed_key)
{
    uint8_t pub[65], kid[8], d[32];
    rfc6979_pub(pub);
    otpca_p256_kid(pub, kid);
    cr_assert_eq(wc_Sha256Hash(pub, 65, d), 0);
    cr_expect_arr_eq(kid, d, 8);
    /* and otpca_sha256 is SHA-256: FIPS 180-2 "abc" */
    uint8_t abc[32], want[32];
    otpca_sha256((const uint8_t *)"abc", 3, abc);
    unhex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", want, 32);
    cr_expect_arr_eq(abc, want, 32);
}

Test(ecies, p256_soft_ecdh_is_symmetric)
{
    otpca_p256_soft a, b;
    uint8_t zab[32], zba[32], bad[65];
    cr_assert_eq(otpca_p256_soft_generate(&a), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_soft_generate(&b), OTPCA_ERR_OK);
    cr_expect_arr_neq(a.priv, b.priv, 32);
    cr_assert_eq(otpca_p256_soft_ecdh(&a, b.pub, zab), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_soft_ecdh(&b, a.pub, zba), OTPCA_ERR_OK);
    cr_expect_arr_eq(zab, zba, 32);
    cr_expect(!all_zero(zab, 32));
    /* Z is the x-coordinate of the shared point, independently computed */
    uint8_t zw[32];
    wolf_ecdh(a.priv, a.pub, b.pub, zw);
    cr_expect_arr_eq(zab, zw, 32);
    /* an off-curve peer is refused */
    memcpy(bad, b.pub, 65);
    bad[64] ^= 1;
    cr_expect_eq(otpca_p256_soft_ecdh(&a, bad, zab), OTPCA_ERR_BAD_KEY);
    otpca_p256_soft_wipe(&a);
    otpca_p256_soft_wipe(&b);
}

Test(ecies, p256_soft_generate_gives_a_consistent_fresh_key_and_wipe_zeroes)
{
    otpca_p256_soft a, b, c;
    cr_assert_eq(otpca_p256_soft_generate(&a), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_soft_generate(&b), OTPCA_ERR_OK);
    cr_expect_arr_neq(a.priv, b.priv, 32);
    cr_expect_eq(a.pub[0], 0x04);
    cr_assert_eq(otpca_p256_soft_import(&c, a.priv), OTPCA_ERR_OK);
    cr_expect_arr_eq(c.pub, a.pub, 65, "the public key belongs to the private key");
    cr_expect(!all_zero(&a, sizeof a));
    otpca_p256_soft_wipe(&a);
    cr_expect(all_zero(&a, sizeof a), "wipe leaves zeros");
    otpca_p256_soft_wipe(&b);
    otpca_p256_soft_wipe(&c);
    cr_expect(all_zero(&b, sizeof b) && all_zero(&c, sizeof c));

    uint8_t r1[32], r2[32];
    cr_assert_eq(otpca_random(r1, sizeof r1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_random(r2, sizeof r2), OTPCA_ERR_OK);
    cr_expect_arr_neq(r1, r2, 32);
}
