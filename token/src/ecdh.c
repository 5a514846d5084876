/*
 * ECDH with a private key that stays in the token (CKM_ECDH1_DERIVE, no
 * KDF): the token derives the shared x-coordinate into a session object,
 * which is read once and destroyed. The ECIES layer (proto) runs its own
 * HKDF over it, so the token needs no KDF support.
 */
#include "internal.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"

otpca_err otpca_token_ecdh(otpca_token_t *tok, otpca_obj_t key, const unsigned char *peer,
                           size_t peer_len, unsigned char z[32])
{
    CK_FUNCTION_LIST *fn = tok->p11->fn;
    if (!peer || peer_len != OTPCA_EC_P256_SEC1_LEN || peer[0] != 0x04 || !z)
        return OTPCA_ERR_INVALID_ARG;
    CK_ECDH1_DERIVE_PARAMS params = {CKD_NULL, 0, NULL, peer_len, (CK_BYTE *)peer};
    CK_MECHANISM mech = {CKM_ECDH1_DERIVE, &params, sizeof params};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    /* A session object that may be read: it lives for the next two calls. */
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},       {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_VALUE_LEN, &len, sizeof len},   {CKA_TOKEN, &no, sizeof no},
        {CKA_SENSITIVE, &no, sizeof no},     {CKA_EXTRACTABLE, &yes, sizeof yes},
    };
    CK_OBJECT_HANDLE derived = CK_INVALID_HANDLE;
    otpca_err ret = otpca_ckr(fn->C_DeriveKey(tok->sess, &mech, key, tmpl, sizeof tmpl / sizeof tmpl[0],
                                              &derived),
                              "C_DeriveKey(ECDH1)");
    if (ret)
        return ret;
    CK_ATTRIBUTE get = {CKA_VALUE, z, 32};
    ret = otpca_ckr(fn->C_GetAttributeValue(tok->sess, derived, &get, 1), "C_GetAttributeValue(ECDH)");
    if (!ret && get.ulValueLen != 32)
        ret = OTPCA_ERR_UNSUPPORTED; /* not a P-256 key */
    fn->C_DestroyObject(tok->sess, derived);
    if (ret)
        otpca_memzero(z, 32);
    return ret;
}
