/*
 * Objects in a token: find by label/id/type, generate P-256 key pairs,
 * import OTP seeds as non-extractable HMAC keys, read public keys,
 * report how well an object is protected, and destroy objects.
 */
#include <string.h>

#include "internal.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"

/* DER of the P-256 OID (1.2.840.10045.3.1.7): the key's CKA_EC_PARAMS. */
static const unsigned char p256_params[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

static CK_OBJECT_CLASS class_of(otpca_obj_type t)
{
    switch (t) {
    case OTPCA_OBJ_PRIVATE_KEY: return CKO_PRIVATE_KEY;
    case OTPCA_OBJ_PUBLIC_KEY: return CKO_PUBLIC_KEY;
    case OTPCA_OBJ_SECRET_KEY: return CKO_SECRET_KEY;
    case OTPCA_OBJ_CERT: return CKO_CERTIFICATE;
    case OTPCA_OBJ_DATA: return CKO_DATA;
    case OTPCA_OBJ_ANY:
    default: return (CK_OBJECT_CLASS)-1;
    }
}

/* Up to two matches, to tell "one" from "several". */
static otpca_err find_raw(otpca_token_t *tok, CK_OBJECT_CLASS cls, const char *label,
                          const unsigned char *id, size_t id_len, CK_OBJECT_HANDLE *out,
                          CK_ULONG *found)
{
    CK_FUNCTION_LIST *fn = tok->p11->fn;
    CK_ATTRIBUTE tmpl[3];
    CK_ULONG n = 0;
    if (cls != (CK_OBJECT_CLASS)-1)
        tmpl[n++] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof cls};
    if (label && *label)
        tmpl[n++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)label, strlen(label)};
    if (id && id_len)
        tmpl[n++] = (CK_ATTRIBUTE){CKA_ID, (void *)id, id_len};
    otpca_err ret = otpca_ckr(fn->C_FindObjectsInit(tok->sess, tmpl, n), "C_FindObjectsInit");
    if (ret)
        return ret;
    CK_OBJECT_HANDLE h[2];
    *found = 0;
    ret = otpca_ckr(fn->C_FindObjects(tok->sess, h, 2, found), "C_FindObjects");
    fn->C_FindObjectsFinal(tok->sess);
    if (ret == OTPCA_ERR_OK && *found > 0)
        *out = h[0];
    return ret;
}

otpca_err otpca_token_find(otpca_token_t *tok, otpca_obj_type type, const char *label,
                           const unsigned char *id, size_t id_len, otpca_obj_t *out)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG found = 0;
    otpca_err ret = find_raw(tok, class_of(type), label, id, id_len, &h, &found);
    if (ret)
        return ret;
    if (found == 0)
        return OTPCA_ERR_OBJECT_NOT_FOUND;
    if (found > 1)
        return OTPCA_ERR_OBJECT_AMBIGUOUS;
    *out = h;
    return OTPCA_ERR_OK;
}

otpca_err otpca_token_find_uri(otpca_token_t *tok, const otpca_p11_uri *uri, otpca_obj_type dflt,
                               otpca_obj_t *out)
{
    if (!uri->object[0] && !uri->has_id) {
        log_error("the URI names no object (object=LABEL or id=...)");
        return OTPCA_ERR_INVALID_ARG;
    }
    otpca_err ret = otpca_token_find(tok, uri->type != OTPCA_OBJ_ANY ? uri->type : dflt, uri->object,
                                     uri->has_id ? uri->id : NULL, uri->id_len, out);
    if (ret)
        log_error("token %s: object %s: %s", tok->label, uri->object[0] ? uri->object : "(by id)",
                  otpca_strerror(ret));
    return ret;
}

static otpca_err get_attr(otpca_token_t *tok, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, void *buf,
                          CK_ULONG *len)
{
    CK_ATTRIBUTE a = {type, buf, *len};
    otpca_err ret = otpca_ckr(tok->p11->fn->C_GetAttributeValue(tok->sess, h, &a, 1),
                              "C_GetAttributeValue");
    *len = a.ulValueLen;
    return ret;
}

otpca_err otpca_token_pubkey_sec1(otpca_token_t *tok, otpca_obj_t key,
                                  unsigned char out[OTPCA_EC_P256_SEC1_LEN])
{
    CK_OBJECT_CLASS cls;
    CK_ULONG len = sizeof cls;
    CK_OBJECT_HANDLE pub = key;
    otpca_err ret = get_attr(tok, key, CKA_CLASS, &cls, &len);
    if (ret)
        return ret;
    if (cls == CKO_PRIVATE_KEY) {
        /* The public half is the public-key object with the same id. */
        unsigned char id[OTPCA_P11_ID_MAX];
        len = sizeof id;
        ret = get_attr(tok, key, CKA_ID, id, &len);
        if (ret)
            return ret;
        CK_ULONG found = 0;
        ret = find_raw(tok, CKO_PUBLIC_KEY, NULL, id, len, &pub, &found);
        if (ret)
            return ret;
        if (found != 1)
            return found ? OTPCA_ERR_OBJECT_AMBIGUOUS : OTPCA_ERR_OBJECT_NOT_FOUND;
    } else if (cls != CKO_PUBLIC_KEY) {
        return OTPCA_ERR_INVALID_ARG;
    }
    unsigned char point[80];
    len = sizeof point;
    ret = get_attr(tok, pub, CKA_EC_POINT, point, &len);
    if (ret)
        return ret;
    /* CKA_EC_POINT is a DER OCTET STRING (04 41 04 X Y); some tokens give
     * the bare point. Accept both, P-256 uncompressed only. */
    const unsigned char *p = point;
    if (len == OTPCA_EC_P256_SEC1_LEN + 2 && point[0] == 0x04 && point[1] == OTPCA_EC_P256_SEC1_LEN)
        p += 2, len -= 2;
    if (len != OTPCA_EC_P256_SEC1_LEN || p[0] != 0x04)
        return OTPCA_ERR_UNSUPPORTED;
    memcpy(out, p, OTPCA_EC_P256_SEC1_LEN);
    return OTPCA_ERR_OK;
}

otpca_err otpca_token_keygen_p256(otpca_token_t *tok, const char *label, const unsigned char *id,
                                  size_t id_len, otpca_obj_t *priv, otpca_obj_t *pub)
{
    CK_FUNCTION_LIST *fn = tok->p11->fn;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
    unsigned char sec1[OTPCA_EC_P256_SEC1_LEN], digest[32], tmp_id[8];
    CK_ULONG dlen = sizeof digest, found = 0;
    otpca_err ret;

    if (!label || !*label || id_len > OTPCA_P11_ID_MAX)
        return OTPCA_ERR_INVALID_ARG;
    CK_OBJECT_HANDLE h;
    ret = find_raw(tok, CKO_PRIVATE_KEY, label, NULL, 0, &h, &found);
    if (ret)
        return ret;
    if (found) {
        log_error("token %s: a key labelled %s already exists", tok->label, label);
        return OTPCA_ERR_EXISTS;
    }
    /* Without a caller id, generate under a random one, then set the id to
     * the first 8 bytes of SHA-256(SEC1 public key) (the protocol's kid). */
    if (!id || !id_len) {
        ret = otpca_token_random(tok, tmp_id, sizeof tmp_id);
        if (ret)
            return ret;
        id = tmp_id;
        id_len = sizeof tmp_id;
    }
    CK_ATTRIBUTE pub_t[] = {
        {CKA_TOKEN, &yes, sizeof yes},       {CKA_PRIVATE, &no, sizeof no},
        {CKA_VERIFY, &yes, sizeof yes},      {CKA_EC_PARAMS, (void *)p256_params, sizeof p256_params},
        {CKA_ENCRYPT, &no, sizeof no},       {CKA_WRAP, &no, sizeof no},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, (void *)id, id_len},
    };
    CK_ATTRIBUTE priv_t[] = {
        {CKA_TOKEN, &yes, sizeof yes},        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},    {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},         {CKA_DERIVE, &yes, sizeof yes},
        {CKA_DECRYPT, &no, sizeof no},        {CKA_UNWRAP, &no, sizeof no},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, (void *)id, id_len},
    };
    ret = otpca_ckr(fn->C_GenerateKeyPair(tok->sess, &mech, pub_t, sizeof pub_t / sizeof pub_t[0],
                                          priv_t, sizeof priv_t / sizeof priv_t[0], &hpub, &hpriv),
                    "C_GenerateKeyPair");
    if (ret) {
        log_error("token %s: key generation failed: %s", tok->label, otpca_strerror(ret));
        return ret;
    }
    if (id == tmp_id) {
        CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
        ret = otpca_token_pubkey_sec1(tok, hpub, sec1);
        if (!ret)
            ret = otpca_ckr(fn->C_DigestInit(tok->sess, &sha), "C_DigestInit");
        if (!ret)
            ret = otpca_ckr(fn->C_Digest(tok->sess, sec1, sizeof sec1, digest, &dlen), "C_Digest");
        CK_ATTRIBUTE set_id = {CKA_ID, digest, 8};
        if (!ret)
            ret = otpca_ckr(fn->C_SetAttributeValue(tok->sess, hpub, &set_id, 1), "C_SetAttributeValue");
        if (!ret)
            ret = otpca_ckr(fn->C_SetAttributeValue(tok->sess, hpriv, &set_id, 1), "C_SetAttributeValue");
        if (ret) {
            fn->C_DestroyObject(tok->sess, hpub);
            fn->C_DestroyObject(tok->sess, hpriv);
            return ret;
        }
    }
    if (priv)
        *priv = hpriv;
    if (pub)
        *pub = hpub;
    return OTPCA_ERR_OK;
}

otpca_err otpca_token_seed_import(otpca_token_t *tok, const char *label, const unsigned char *id,
                                  size_t id_len, const unsigned char *seed, size_t seed_len,
                                  otpca_obj_t *out)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG found = 0;
    unsigned char value[OTPCA_SEED_MAX];
    otpca_err ret;

    if (!label || !*label || !seed || seed_len < OTPCA_SEED_MIN || seed_len > OTPCA_SEED_MAX ||
        id_len > OTPCA_P11_ID_MAX)
        return OTPCA_ERR_INVALID_ARG;
    ret = find_raw(tok, CKO_SECRET_KEY, label, NULL, 0, &h, &found);
    if (ret)
        return ret;
    if (found) {
        log_error("token %s: a secret labelled %s already exists", tok->label, label);
        return OTPCA_ERR_EXISTS;
    }
    /* SoftHSM refuses HMAC keys under 20 bytes; zero padding keeps the MAC
     * (RFC 2104 pads the key with zeros to the block size anyway). */
    size_t vlen = seed_len < 20 ? 20 : seed_len;
    memset(value, 0, sizeof value);
    memcpy(value, seed, seed_len);
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},           {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_TOKEN, &yes, sizeof yes},           {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},       {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},            {CKA_VERIFY, &no, sizeof no},
        {CKA_ENCRYPT, &no, sizeof no},           {CKA_DECRYPT, &no, sizeof no},
        {CKA_WRAP, &no, sizeof no},              {CKA_UNWRAP, &no, sizeof no},
        {CKA_DERIVE, &no, sizeof no},            {CKA_VALUE, value, vlen},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, (void *)id, id ? id_len : 0},
    };
    CK_ULONG nt = sizeof t / sizeof t[0] - (id && id_len ? 0 : 1);
    ret = otpca_ckr(tok->p11->fn->C_CreateObject(tok->sess, t, nt, &h), "C_CreateObject");
    otpca_memzero(value, sizeof value);
    if (ret) {
        log_error("token %s: seed import failed: %s", tok->label, otpca_strerror(ret));
        return ret;
    }
    if (out)
        *out = h;
    return OTPCA_ERR_OK;
}

static int bool_attr(otpca_token_t *tok, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL b = CK_FALSE;
    CK_ULONG len = sizeof b;
    if (get_attr(tok, h, type, &b, &len) != OTPCA_ERR_OK || len != sizeof b)
        return -1;
    return b == CK_TRUE;
}

otpca_err otpca_token_obj_protection(otpca_token_t *tok, otpca_obj_t obj, int *sensitive,
                                     int *extractable, int *value_refused)
{
    CK_OBJECT_CLASS cls;
    CK_ULONG len = sizeof cls;
    otpca_err ret = get_attr(tok, obj, CKA_CLASS, &cls, &len);
    if (ret)
        return ret;
    *sensitive = bool_attr(tok, obj, CKA_SENSITIVE);
    *extractable = bool_attr(tok, obj, CKA_EXTRACTABLE);
    /* Ask for the size of CKA_VALUE only: a protected key answers
     * CKR_ATTRIBUTE_SENSITIVE and never a length. */
    CK_ATTRIBUTE a = {CKA_VALUE, NULL, 0};
    CK_RV rv = tok->p11->fn->C_GetAttributeValue(tok->sess, obj, &a, 1);
    *value_refused = rv == CKR_ATTRIBUTE_SENSITIVE || a.ulValueLen == CK_UNAVAILABLE_INFORMATION;
    return OTPCA_ERR_OK;
}

otpca_err otpca_token_destroy_object(otpca_token_t *tok, otpca_obj_t obj)
{
    return otpca_ckr(tok->p11->fn->C_DestroyObject(tok->sess, obj), "C_DestroyObject");
}

otpca_err otpca_token_random(otpca_token_t *tok, unsigned char *buf, size_t len)
{
    return otpca_ckr(tok->p11->fn->C_GenerateRandom(tok->sess, buf, len), "C_GenerateRandom");
}

/* Private data objects (CKO_DATA, CKA_PRIVATE): readable only after login,
 * e.g. a ZeroMQ CURVE secret key. PKCS#11 has no key type for Curve25519
 * that SoftHSM 2.6 can use with ZeroMQ, so the secret is a data object
 * and is read into locked memory when the daemon starts. */
otpca_err otpca_token_data_put(otpca_token_t *tok, const char *label, const unsigned char *value, size_t len)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG found = 0;
    if (!label || !*label || !value || len == 0 || len > OTPCA_TOKEN_DATA_MAX)
        return OTPCA_ERR_INVALID_ARG;
    otpca_err ret = find_raw(tok, CKO_DATA, label, NULL, 0, &h, &found);
    if (ret)
        return ret;
    if (found) {
        log_error("token %s: a data object labelled %s already exists", tok->label, label);
        return OTPCA_ERR_EXISTS;
    }
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},          {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},        {CKA_MODIFIABLE, &no, sizeof no},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_VALUE, (void *)value, len},
    };
    ret = otpca_ckr(tok->p11->fn->C_CreateObject(tok->sess, t, sizeof t / sizeof t[0], &h), "C_CreateObject(data)");
    if (ret)
        log_error("token %s: storing %s failed: %s", tok->label, label, otpca_strerror(ret));
    return ret;
}

otpca_err otpca_token_data_get(otpca_token_t *tok, const char *label, unsigned char *buf, size_t cap, size_t *len)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG found = 0;
    if (!label || !*label || !buf || !len)
        return OTPCA_ERR_INVALID_ARG;
    otpca_err ret = find_raw(tok, CKO_DATA, label, NULL, 0, &h, &found);
    if (ret)
        return ret;
    if (found == 0)
        return OTPCA_ERR_OBJECT_NOT_FOUND;
    if (found > 1)
        return OTPCA_ERR_OBJECT_AMBIGUOUS;
    CK_ULONG n = 0;
    if ((ret = get_attr(tok, h, CKA_VALUE, NULL, &n)))
        return ret;
    if (n > cap)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    n = cap;
    if ((ret = get_attr(tok, h, CKA_VALUE, buf, &n)))
        return ret;
    *len = n;
    return OTPCA_ERR_OK;
}
