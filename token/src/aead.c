/*
 * AES keys and AES-GCM inside the token: the cloud keeps TOTP seeds at
 * rest only as iv || ciphertext || tag under a key that never leaves its
 * token. The IV is 96 bits from the token's generator (SP 800-38D §8.2.2:
 * random IVs are safe for up to 2^32 messages per key); the tag is the
 * full 128 bits.
 */
#include <string.h>

#include "internal.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"

/* A new AES key labelled label: generated in the token as a token object
 * (value NULL, len = key bytes), or the given value as a session object.
 * Either way sensitive, never extractable, encrypt and decrypt only. */
static otpca_err aes_key(otpca_token_t *tok, const char *label, const unsigned char *value, size_t len,
                         otpca_obj_t *out)
{
    CK_FUNCTION_LIST *fn = tok->p11->fn;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE, on_token = value ? CK_FALSE : CK_TRUE;
    CK_ULONG value_len = len;
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    otpca_obj_t other;

    otpca_err ret = otpca_token_find(tok, OTPCA_OBJ_SECRET_KEY, label, NULL, 0, &other);
    if (ret == OTPCA_ERR_OK || ret == OTPCA_ERR_OBJECT_AMBIGUOUS) {
        log_error("token %s: a secret labelled %s already exists", tok->label, label);
        return OTPCA_ERR_EXISTS;
    }
    if (ret != OTPCA_ERR_OBJECT_NOT_FOUND)
        return ret;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},          {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_TOKEN, &on_token, sizeof on_token}, {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},      {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_ENCRYPT, &yes, sizeof yes},        {CKA_DECRYPT, &yes, sizeof yes},
        {CKA_SIGN, &no, sizeof no},             {CKA_VERIFY, &no, sizeof no},
        {CKA_WRAP, &no, sizeof no},             {CKA_UNWRAP, &no, sizeof no},
        {CKA_DERIVE, &no, sizeof no},           {CKA_LABEL, (void *)label, strlen(label)},
        value ? (CK_ATTRIBUTE){CKA_VALUE, (void *)value, len}
              : (CK_ATTRIBUTE){CKA_VALUE_LEN, &value_len, sizeof value_len},
    };
    CK_ULONG n = sizeof t / sizeof t[0];
    ret = value ? otpca_ckr(fn->C_CreateObject(tok->sess, t, n, &h), "C_CreateObject(AES)")
                : otpca_ckr(fn->C_GenerateKey(tok->sess, &mech, t, n, &h), "C_GenerateKey(AES)");
    if (ret) {
        log_error("token %s: AES key %s: %s", tok->label, label, otpca_strerror(ret));
        return ret;
    }
    if (out)
        *out = h;
    return OTPCA_ERR_OK;
}

otpca_err otpca_token_keygen_aes(otpca_token_t *tok, const char *label, unsigned bits, otpca_obj_t *out)
{
    if (!label || !*label || (bits != 128 && bits != 256))
        return OTPCA_ERR_INVALID_ARG;
    return aes_key(tok, label, NULL, bits / 8, out);
}

otpca_err otpca_token_aes_import(otpca_token_t *tok, const char *label, const unsigned char *value,
                                 size_t len, otpca_obj_t *out)
{
    if (!label || !*label || !value || (len != 16 && len != 32))
        return OTPCA_ERR_INVALID_ARG;
    return aes_key(tok, label, value, len, out);
}

static CK_GCM_PARAMS gcm_params(const unsigned char *iv, const unsigned char *aad, size_t aad_len)
{
    /* SoftHSM 2.6 reads ulIvLen and ignores ulIvBits; tokens that follow
     * the v2.40 errata read ulIvBits: set both. */
    return (CK_GCM_PARAMS){(CK_BYTE *)iv, OTPCA_TOKEN_AEAD_IV_LEN, 8 * OTPCA_TOKEN_AEAD_IV_LEN,
                           (CK_BYTE *)aad, aad_len, 8 * OTPCA_TOKEN_AEAD_TAG_LEN};
}

otpca_err otpca_token_aead_seal(otpca_token_t *tok, otpca_obj_t key, const unsigned char *aad,
                                size_t aad_len, const unsigned char *pt, size_t pt_len,
                                unsigned char *out, size_t cap, size_t *out_len)
{
    CK_FUNCTION_LIST *fn = tok->p11->fn;
    static const unsigned char none[1];
    otpca_err ret;

    if ((!aad && aad_len) || (!pt && pt_len) || !out || !out_len)
        return OTPCA_ERR_INVALID_ARG;
    *out_len = 0;
    if (pt_len > (size_t)-1 - OTPCA_TOKEN_AEAD_OVERHEAD || cap < pt_len + OTPCA_TOKEN_AEAD_OVERHEAD)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    ret = otpca_token_random(tok, out, OTPCA_TOKEN_AEAD_IV_LEN);
    if (ret)
        return ret;
    CK_GCM_PARAMS params = gcm_params(out, aad, aad_len);
    CK_MECHANISM mech = {CKM_AES_GCM, &params, sizeof params};
    ret = otpca_ckr(fn->C_EncryptInit(tok->sess, &mech, key), "C_EncryptInit(AES-GCM)");
    if (ret)
        return ret;
    /* SoftHSM answers a NULL pData, even for an empty plaintext, with
     * CKR_ARGUMENTS_BAD and leaves the operation active. The room given
     * is exactly ct || tag, never too small (which would do the same). */
    CK_ULONG n = pt_len + OTPCA_TOKEN_AEAD_TAG_LEN;
    ret = otpca_ckr(fn->C_Encrypt(tok->sess, (CK_BYTE *)(pt_len ? pt : none), pt_len,
                                  out + OTPCA_TOKEN_AEAD_IV_LEN, &n),
                    "C_Encrypt(AES-GCM)");
    if (!ret && n != pt_len + OTPCA_TOKEN_AEAD_TAG_LEN)
        ret = OTPCA_ERR_UNSUPPORTED;
    if (ret) {
        otpca_memzero(out, cap);
        return ret;
    }
    *out_len = pt_len + OTPCA_TOKEN_AEAD_OVERHEAD;
    return OTPCA_ERR_OK;
}

otpca_err otpca_token_aead_open(otpca_token_t *tok, otpca_obj_t key, const unsigned char *aad,
                                size_t aad_len, const unsigned char *in, size_t in_len,
                                unsigned char *pt, size_t cap, size_t *pt_len)
{
    CK_FUNCTION_LIST *fn = tok->p11->fn;
    unsigned char *buf = NULL;
    size_t n = 0, buf_len = 0;
    CK_GCM_PARAMS params = gcm_params(in, aad, aad_len);
    CK_MECHANISM mech = {CKM_AES_GCM, &params, sizeof params};
    CK_ULONG got = 0;
    CK_RV rv;
    otpca_err ret;

    if ((!aad && aad_len) || (!in && in_len) || (!pt && cap) || !pt_len)
        return OTPCA_ERR_INVALID_ARG;
    *pt_len = 0;
    if (in_len < OTPCA_TOKEN_AEAD_OVERHEAD) {
        ret = OTPCA_ERR_DECRYPT;
        goto out;
    }
    n = in_len - OTPCA_TOKEN_AEAD_OVERHEAD;
    if (cap < n) {
        ret = OTPCA_ERR_BUFFER_TOO_SMALL;
        goto out;
    }
    /* SoftHSM asks for room for ciphertext || tag, not just the
     * plaintext; a smaller buffer answers CKR_BUFFER_TOO_SMALL and leaves
     * the operation active. Decrypt in place when the caller gave that
     * much room, else into secret memory. */
    buf_len = n + OTPCA_TOKEN_AEAD_TAG_LEN;
    buf = cap >= buf_len ? pt : otpca_secmem_alloc(buf_len);
    if (!buf) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    ret = otpca_ckr(fn->C_DecryptInit(tok->sess, &mech, key), "C_DecryptInit(AES-GCM)");
    if (ret)
        goto out;
    got = buf_len;
    rv = fn->C_Decrypt(tok->sess, (CK_BYTE *)in + OTPCA_TOKEN_AEAD_IV_LEN,
                       in_len - OTPCA_TOKEN_AEAD_IV_LEN, buf, &got);
    ret = otpca_ckr(rv, "C_Decrypt(AES-GCM)");
    /* A bad tag is CKR_ENCRYPTED_DATA_INVALID, or CKR_GENERAL_ERROR from
     * SoftHSM: every failure here means the input is not ours, except a
     * token that went away or forgot the login. */
    if (ret && ret != OTPCA_ERR_TOKEN_REMOVED && ret != OTPCA_ERR_NOT_LOGGED_IN && ret != OTPCA_ERR_NOMEM)
        ret = OTPCA_ERR_DECRYPT;
    if (!ret && got != n)
        ret = OTPCA_ERR_DECRYPT;
    if (!ret && buf != pt)
        memcpy(pt, buf, n);
    if (!ret)
        *pt_len = n;
out:
    if (buf && buf != pt)
        otpca_secmem_free(buf, buf_len);
    if (ret && pt)
        otpca_memzero(pt, cap);
    return ret;
}
