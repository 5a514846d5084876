/*
 * HOTP (RFC 4226) and TOTP (RFC 6238) with the HMAC computed inside the
 * token: the seed never leaves it. Only the dynamic truncation (RFC 4226
 * §5.3) runs here; liboath has no entry point for "truncate this MAC", so
 * those few lines are ours.
 */
#include <string.h>

#include "internal.h"
#include "otpca/common/secmem.h"

otpca_err otpca_token_hmac(otpca_token_t *tok, otpca_obj_t key, otpca_otp_alg alg,
                           const unsigned char *msg, size_t msg_len, unsigned char *mac,
                           size_t *mac_len)
{
    CK_FUNCTION_LIST *fn = tok->p11->fn;
    CK_MECHANISM mech = {alg == OTPCA_OTP_SHA256 ? CKM_SHA256_HMAC : CKM_SHA_1_HMAC, NULL, 0};
    CK_ULONG len = *mac_len;
    otpca_err ret = otpca_ckr(fn->C_SignInit(tok->sess, &mech, key), "C_SignInit(HMAC)");
    if (ret)
        return ret;
    ret = otpca_ckr(fn->C_Sign(tok->sess, (CK_BYTE *)msg, msg_len, mac, &len), "C_Sign(HMAC)");
    *mac_len = len;
    return ret;
}

uint32_t otpca_otp_truncate(const unsigned char *mac, size_t mac_len, unsigned digits)
{
    static const uint32_t mod[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};
    unsigned off = mac[mac_len - 1] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
    return bin % mod[digits];
}

otpca_err otpca_token_hotp(otpca_token_t *tok, otpca_obj_t key, otpca_otp_alg alg,
                           uint64_t counter, unsigned digits, uint32_t *code)
{
    unsigned char msg[8], mac[OTPCA_HMAC_MAX];
    size_t mac_len = sizeof mac;
    if (digits < 6 || digits > 8 || (alg != OTPCA_OTP_SHA1 && alg != OTPCA_OTP_SHA256))
        return OTPCA_ERR_INVALID_ARG;
    for (int i = 7; i >= 0; i--, counter >>= 8)
        msg[i] = (unsigned char)counter;
    otpca_err ret = otpca_token_hmac(tok, key, alg, msg, sizeof msg, mac, &mac_len);
    if (ret == OTPCA_ERR_OK && mac_len < 20)
        ret = OTPCA_ERR_CRYPTO;
    if (ret == OTPCA_ERR_OK)
        *code = otpca_otp_truncate(mac, mac_len, digits);
    otpca_memzero(mac, sizeof mac);
    return ret;
}

otpca_err otpca_token_totp(otpca_token_t *tok, otpca_obj_t key, otpca_otp_alg alg, time_t now,
                           unsigned period, unsigned digits, uint32_t *code)
{
    if (period == 0 || now < 0)
        return OTPCA_ERR_INVALID_ARG;
    return otpca_token_hotp(tok, key, alg, (uint64_t)now / period, digits, code);
}
