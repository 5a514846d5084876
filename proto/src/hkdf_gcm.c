/*
 * HKDF-SHA256 and AES-128-GCM for envelopes and seed boxes (hkdf_gcm.h).
 * HKDF is written on wolfCrypt's HMAC rather than wc_HKDF_Extract /
 * wc_HKDF_Expand because those leave the HMAC state (keyed with the PRK)
 * and T(1) (the output key) on their stacks; here both are wiped. With
 * L = 28 <= 32, HKDF-Expand is the single block T(1) = HMAC(PRK, info ||
 * 0x01) of RFC 5869 section 2.3, truncated.
 */
#include "hkdf_gcm.h"

#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "otpca/common/secmem.h"

/* out = HMAC-SHA256(key, a || b || c); any part may be empty. */
static otpca_err hmac3(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                       const uint8_t *b, size_t b_len, const uint8_t *c, size_t c_len,
                       uint8_t out[WC_SHA256_DIGEST_SIZE])
{
    Hmac h;
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_HmacSetKey(&h, WC_SHA256, key, (word32)key_len) == 0 &&
        (a_len == 0 || wc_HmacUpdate(&h, a, (word32)a_len) == 0) &&
        (b_len == 0 || wc_HmacUpdate(&h, b, (word32)b_len) == 0) &&
        (c_len == 0 || wc_HmacUpdate(&h, c, (word32)c_len) == 0) && wc_HmacFinal(&h, out) == 0)
        ret = OTPCA_ERR_OK;
    wc_HmacFree(&h);
    otpca_memzero(&h, sizeof h); /* the inner and outer states are keyed */
    return ret;
}

otpca_err otpca_hg_extract(const uint8_t z[32], const uint8_t e[OTPCA_P256_PUB_LEN],
                           const uint8_t r[OTPCA_P256_PUB_LEN], uint8_t prk[OTPCA_HG_PRK_LEN])
{
    uint8_t salt[2 * OTPCA_P256_PUB_LEN];
    memcpy(salt, e, OTPCA_P256_PUB_LEN);
    memcpy(salt + OTPCA_P256_PUB_LEN, r, OTPCA_P256_PUB_LEN);
    otpca_err ret = hmac3(salt, sizeof salt, z, 32, NULL, 0, NULL, 0, prk);
    if (ret)
        otpca_memzero(prk, OTPCA_HG_PRK_LEN);
    return ret;
}

otpca_err otpca_hg_expand(const uint8_t prk[OTPCA_HG_PRK_LEN], const char *prefix, size_t prefix_len,
                          const uint8_t *suffix, size_t suffix_len, uint8_t okm[OTPCA_HG_OKM_LEN])
{
    static const uint8_t one = 0x01;
    uint8_t t[WC_SHA256_DIGEST_SIZE];
    if (prefix_len + suffix_len > OTPCA_HG_INFO_MAX)
        return OTPCA_ERR_INVALID_ARG;
    otpca_err ret = hmac3(prk, OTPCA_HG_PRK_LEN, (const uint8_t *)prefix, prefix_len, suffix,
                          suffix_len, &one, 1, t);
    if (!ret)
        memcpy(okm, t, OTPCA_HG_OKM_LEN);
    otpca_memzero(t, sizeof t);
    return ret;
}

otpca_err otpca_hg_seal(const uint8_t okm[OTPCA_HG_OKM_LEN], const uint8_t *aad, size_t aad_len,
                        const uint8_t *pt, size_t len, uint8_t *ct, uint8_t tag[OTPCA_HG_TAG_LEN])
{
    Aes aes;
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_AesGcmSetKey(&aes, okm, OTPCA_HG_KEY_LEN) == 0 &&
        wc_AesGcmEncrypt(&aes, ct, pt, (word32)len, okm + OTPCA_HG_KEY_LEN, OTPCA_HG_IV_LEN, tag,
                         OTPCA_HG_TAG_LEN, aad, (word32)aad_len) == 0)
        ret = OTPCA_ERR_OK;
    wc_AesFree(&aes);
    otpca_memzero(&aes, sizeof aes); /* the key schedule and GCM's H table */
    return ret;
}

otpca_err otpca_hg_open(const uint8_t okm[OTPCA_HG_OKM_LEN], const uint8_t *aad, size_t aad_len,
                        const uint8_t *ct, size_t len, const uint8_t tag[OTPCA_HG_TAG_LEN], uint8_t *pt)
{
    Aes aes;
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) == 0) {
        if (wc_AesGcmSetKey(&aes, okm, OTPCA_HG_KEY_LEN) == 0)
            ret = wc_AesGcmDecrypt(&aes, pt, ct, (word32)len, okm + OTPCA_HG_KEY_LEN, OTPCA_HG_IV_LEN,
                                   tag, OTPCA_HG_TAG_LEN, aad, (word32)aad_len) == 0
                      ? OTPCA_ERR_OK
                      : OTPCA_ERR_DECRYPT;
        wc_AesFree(&aes);
        otpca_memzero(&aes, sizeof aes);
    }
    /* wolfCrypt may have written plaintext before it compared the tag. */
    if (ret && len)
        otpca_memzero(pt, len);
    return ret;
}
