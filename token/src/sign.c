/*
 * ECDSA signatures by a token key. SoftHSM has no CKM_ECDSA_SHA256, so
 * callers hash and the token signs the digest with CKM_ECDSA (raw r||s);
 * DER conversion is wolfCrypt's.
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "internal.h"
#include "otpca/common/log.h"

otpca_err otpca_token_sign_digest(otpca_token_t *tok, otpca_obj_t key, const unsigned char *digest,
                                  size_t digest_len, otpca_sig_format fmt, unsigned char *sig,
                                  size_t *sig_len)
{
    CK_FUNCTION_LIST *fn = tok->p11->fn;
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    unsigned char raw[OTPCA_SIG_RAW_LEN];
    CK_ULONG raw_len = sizeof raw;
    if (!digest || digest_len == 0 || digest_len > 64 || !sig || !sig_len)
        return OTPCA_ERR_INVALID_ARG;
    if (fmt == OTPCA_SIG_RAW && *sig_len < OTPCA_SIG_RAW_LEN)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    otpca_err ret = otpca_ckr(fn->C_SignInit(tok->sess, &mech, key), "C_SignInit(ECDSA)");
    if (ret)
        return ret;
    ret = otpca_ckr(fn->C_Sign(tok->sess, (CK_BYTE *)digest, digest_len, raw, &raw_len),
                    "C_Sign(ECDSA)");
    if (ret)
        return ret;
    if (raw_len != OTPCA_SIG_RAW_LEN)
        return OTPCA_ERR_UNSUPPORTED; /* not a P-256 key */
    if (fmt == OTPCA_SIG_RAW) {
        memcpy(sig, raw, OTPCA_SIG_RAW_LEN);
        *sig_len = OTPCA_SIG_RAW_LEN;
        return OTPCA_ERR_OK;
    }
    word32 out_len = (word32)*sig_len;
    if (wc_ecc_rs_raw_to_sig(raw, 32, raw + 32, 32, sig, &out_len) != 0)
        return *sig_len < OTPCA_SIG_DER_MAX ? OTPCA_ERR_BUFFER_TOO_SMALL : OTPCA_ERR_CRYPTO;
    *sig_len = out_len;
    return OTPCA_ERR_OK;
}
