/*
 * ECIES envelopes (layout in ecies.h and PROTOCOL.md). Built from
 * wolfCrypt's ECDH, HMAC and AES-GCM (through hkdf_gcm.c, shared with the
 * seed boxes) rather than wc_ecc_encrypt, whose format (X9.63 KDF, AES-CBC
 * + HMAC) is not what the protocol specifies.
 */
#include "otpca/proto/ecies.h"

#include <string.h>

#include "otpca/common/secmem.h"

#include "hkdf_gcm.h"

#define INFO_PREFIX "otpca-ecies-v1 "
#define MAX_AAD 256

/* K || IV from Z, E and R. */
static otpca_err derive(const uint8_t z[32], const uint8_t e[OTPCA_P256_PUB_LEN],
                        const uint8_t r[OTPCA_P256_PUB_LEN], const char *label,
                        uint8_t okm[OTPCA_HG_OKM_LEN])
{
    uint8_t prk[OTPCA_HG_PRK_LEN];
    size_t label_len = strlen(label);
    if (label_len == 0 || label_len > OTPCA_ECIES_MAX_LABEL)
        return OTPCA_ERR_INVALID_ARG;
    otpca_err ret = otpca_hg_extract(z, e, r, prk);
    if (!ret)
        ret = otpca_hg_expand(prk, INFO_PREFIX, sizeof INFO_PREFIX - 1, (const uint8_t *)label,
                              label_len, okm);
    otpca_memzero(prk, sizeof prk);
    return ret;
}

static otpca_err make_aad(const uint8_t *aad, size_t aad_len, uint8_t out[1 + MAX_AAD])
{
    if (aad_len > MAX_AAD || (aad_len && !aad))
        return OTPCA_ERR_INVALID_ARG;
    out[0] = OTPCA_ECIES_VERSION;
    if (aad_len)
        memcpy(out + 1, aad, aad_len);
    return OTPCA_ERR_OK;
}

otpca_err otpca_ecies_seal(const uint8_t *recipient, size_t recipient_len, const char *label,
                           const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
                           uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t r[OTPCA_P256_PUB_LEN], e[OTPCA_P256_PUB_LEN], z[32], okm[OTPCA_HG_OKM_LEN],
        full_aad[1 + MAX_AAD];
    otpca_err ret;
    if (!label || !out || !out_len || (pt_len && !pt) || pt_len > OTPCA_ECIES_MAX_PLAINTEXT)
        return OTPCA_ERR_INVALID_ARG;
    if (cap < pt_len + OTPCA_ECIES_OVERHEAD)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    if ((ret = make_aad(aad, aad_len, full_aad)))
        return ret;
    if ((ret = otpca_p256_ecdh_ephemeral(recipient, recipient_len, e, r, z)))
        return ret;
    if ((ret = derive(z, e, r, label, okm)))
        goto out;
    out[0] = OTPCA_ECIES_VERSION;
    memcpy(out + 1, e, OTPCA_P256_PUB_LEN);
    uint8_t *ct = out + 1 + OTPCA_P256_PUB_LEN;
    if ((ret = otpca_hg_seal(okm, full_aad, 1 + aad_len, pt, pt_len, ct, ct + pt_len)))
        goto out;
    *out_len = pt_len + OTPCA_ECIES_OVERHEAD;
out:
    otpca_memzero(z, sizeof z);
    otpca_memzero(okm, sizeof okm);
    return ret;
}

otpca_err otpca_ecies_open(otpca_ecdh_fn ecdh, void *ctx, const uint8_t recipient[OTPCA_P256_PUB_LEN],
                           const char *label, const uint8_t *aad, size_t aad_len, const uint8_t *env,
                           size_t env_len, uint8_t *pt, size_t cap, size_t *pt_len)
{
    uint8_t z[32], okm[OTPCA_HG_OKM_LEN], full_aad[1 + MAX_AAD], e[OTPCA_P256_PUB_LEN];
    otpca_err ret;
    if (!ecdh || !label || !pt_len || !recipient || (!env && env_len))
        return OTPCA_ERR_INVALID_ARG;
    if (env_len < OTPCA_ECIES_OVERHEAD || env[0] != OTPCA_ECIES_VERSION ||
        env_len - OTPCA_ECIES_OVERHEAD > OTPCA_ECIES_MAX_PLAINTEXT)
        return OTPCA_ERR_PROTO_VALUE;
    size_t n = env_len - OTPCA_ECIES_OVERHEAD;
    if (cap < n || (n && !pt))
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    if ((ret = make_aad(aad, aad_len, full_aad)))
        return ret;
    /* Whatever fails from here on, the output holds no stale bytes. */
    if (n)
        otpca_memzero(pt, n);
    /* The ephemeral key must be a valid point in uncompressed form. */
    if (env[1] != 0x04 || otpca_p256_pub_normalize(env + 1, OTPCA_P256_PUB_LEN, e) != OTPCA_ERR_OK)
        return OTPCA_ERR_DECRYPT;
    if ((ret = ecdh(ctx, e, z)))
        return ret;
    if ((ret = derive(z, e, recipient, label, okm)))
        goto out;
    const uint8_t *ct = env + 1 + OTPCA_P256_PUB_LEN;
    if ((ret = otpca_hg_open(okm, full_aad, 1 + aad_len, ct, n, ct + n, pt)))
        goto out;
    *pt_len = n;
out:
    otpca_memzero(z, sizeof z);
    otpca_memzero(okm, sizeof okm);
    return ret;
}
