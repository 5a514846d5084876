/*
 * P-256 on wolfCrypt: key checks, key ids, ECDSA verify, and software keys.
 * Every import of a public key is followed by an on-curve check because
 * wc_ecc_import_x963 does not do one (measured on wolfSSL 5.5.4).
 */
#include "otpca/proto/p256.h"

#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>

#include "otpca/common/secmem.h"

void otpca_sha256(const uint8_t *p, size_t len, uint8_t out[32])
{
    /* Cannot fail for in-memory input with a software hash. */
    (void)wc_Sha256Hash(p, (word32)len, out);
}

otpca_err otpca_random(uint8_t *p, size_t len)
{
    WC_RNG rng;
    if (wc_InitRng(&rng) != 0)
        return OTPCA_ERR_CRYPTO;
    otpca_err ret = wc_RNG_GenerateBlock(&rng, p, (word32)len) == 0 ? OTPCA_ERR_OK : OTPCA_ERR_CRYPTO;
    wc_FreeRng(&rng);
    return ret;
}

/* P-256's p, a = p - 3 and b (SEC 2), big-endian. */
static const uint8_t P256_P[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t P256_A[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc};
static const uint8_t P256_B[32] = {0x5a, 0xc6, 0x35, 0xd8, 0xaa, 0x3a, 0x93, 0xe7, 0xb3, 0xeb, 0xbd,
                                   0x55, 0x76, 0x98, 0x86, 0xbc, 0x65, 0x1d, 0x06, 0xb0, 0xcc, 0x53,
                                   0xb0, 0xf6, 0x3b, 0xce, 0x3c, 0x3e, 0x27, 0xd2, 0x60, 0x4b};

/* Whether a 65-byte uncompressed key is a point of P-256: x and y below p,
 * y^2 = x^3 + ax + b (wc_ecc_is_point). wc_ecc_point_is_on_curve checks
 * the same after an import, but reads the curve from its hex strings at
 * every call; with the import, the ecc_key and the export, that was three
 * quarters of the check (perf: a first sync of 100,000 devices, one check
 * per key). Here p, a and b are read from bytes. */
static otpca_err check_uncompressed(const uint8_t pub[OTPCA_P256_PUB_LEN])
{
    mp_int p, a, b;
    ecc_point *pt = wc_ecc_new_point();
    otpca_err ret = OTPCA_ERR_BAD_KEY;
    if (!pt)
        return OTPCA_ERR_NOMEM;
    if (pub[0] != 0x04 || mp_init_multi(&p, &a, &b, NULL, NULL, NULL) != MP_OKAY) {
        wc_ecc_del_point(pt);
        return pub[0] != 0x04 ? OTPCA_ERR_BAD_KEY : OTPCA_ERR_CRYPTO;
    }
    if (mp_read_unsigned_bin(&p, P256_P, 32) == MP_OKAY && mp_read_unsigned_bin(&a, P256_A, 32) == MP_OKAY &&
        mp_read_unsigned_bin(&b, P256_B, 32) == MP_OKAY && mp_read_unsigned_bin(pt->x, pub + 1, 32) == MP_OKAY &&
        mp_read_unsigned_bin(pt->y, pub + 33, 32) == MP_OKAY && mp_set(pt->z, 1) == MP_OKAY &&
        mp_cmp(pt->x, &p) == MP_LT && mp_cmp(pt->y, &p) == MP_LT && wc_ecc_is_point(pt, &a, &b, &p) == MP_OKAY)
        ret = OTPCA_ERR_OK;
    mp_clear(&p);
    mp_clear(&a);
    mp_clear(&b);
    wc_ecc_del_point(pt);
    return ret;
}

/* Imports a SEC1 public key (33 or 65 bytes) into an initialised key and
 * checks the point. */
static otpca_err import_pub(const uint8_t *pub, size_t len, ecc_key *k)
{
    if (!pub || !((len == OTPCA_P256_PUB_LEN && pub[0] == 0x04) ||
                  (len == OTPCA_P256_PUB_C_LEN && (pub[0] == 0x02 || pub[0] == 0x03))))
        return OTPCA_ERR_BAD_KEY;
    if (wc_ecc_import_x963_ex(pub, (word32)len, k, ECC_SECP256R1) != 0 ||
        wc_ecc_point_is_on_curve(&k->pubkey, k->idx) != 0)
        return OTPCA_ERR_BAD_KEY;
    return OTPCA_ERR_OK;
}

static otpca_err export_pub(ecc_key *k, uint8_t *out, size_t len, int compressed)
{
    word32 n = (word32)len;
    if (wc_ecc_export_x963_ex(k, out, &n, compressed) != 0 || n != len)
        return OTPCA_ERR_CRYPTO;
    return OTPCA_ERR_OK;
}

/* Checks a SEC1 key and writes it again in the requested form. */
static otpca_err reencode(const uint8_t *pub, size_t len, uint8_t *out, size_t out_len, int compressed)
{
    ecc_key k;
    if (wc_ecc_init(&k) != 0)
        return OTPCA_ERR_CRYPTO;
    otpca_err ret = import_pub(pub, len, &k);
    if (!ret)
        ret = export_pub(&k, out, out_len, compressed);
    wc_ecc_free(&k);
    return ret;
}

otpca_err otpca_p256_pub_normalize(const uint8_t *pub, size_t len, uint8_t out[OTPCA_P256_PUB_LEN])
{
    if (pub && len == OTPCA_P256_PUB_LEN) { /* already in the form asked for: only the check */
        otpca_err ret = check_uncompressed(pub);
        if (!ret)
            memcpy(out, pub, OTPCA_P256_PUB_LEN);
        return ret;
    }
    return reencode(pub, len, out, OTPCA_P256_PUB_LEN, 0);
}

otpca_err otpca_p256_pub_compress(const uint8_t pub[OTPCA_P256_PUB_LEN],
                                  uint8_t out[OTPCA_P256_PUB_C_LEN])
{
    return reencode(pub, OTPCA_P256_PUB_LEN, out, OTPCA_P256_PUB_C_LEN, 1);
}

void otpca_p256_kid(const uint8_t pub[OTPCA_P256_PUB_LEN], uint8_t kid[OTPCA_KID_LEN])
{
    uint8_t d[32];
    otpca_sha256(pub, OTPCA_P256_PUB_LEN, d);
    memcpy(kid, d, OTPCA_KID_LEN);
}

otpca_err otpca_p256_verify(const uint8_t *pub, size_t publen, const uint8_t digest[32],
                            const uint8_t sig[OTPCA_P256_SIG_LEN])
{
    ecc_key k;
    byte der[80];
    word32 der_len = sizeof der;
    int res = 0;
    if (wc_ecc_init(&k) != 0)
        return OTPCA_ERR_CRYPTO;
    otpca_err ret = import_pub(pub, publen, &k);
    if (ret)
        goto out;
    ret = OTPCA_ERR_SIGNATURE;
    if (wc_ecc_rs_raw_to_sig(sig, 32, sig + 32, 32, der, &der_len) != 0)
        goto out;
    /* A failing call (r or s zero or out of range) is a bad signature. */
    if (wc_ecc_verify_hash(der, der_len, digest, 32, &res, &k) == 0 && res == 1)
        ret = OTPCA_ERR_OK;
out:
    wc_ecc_free(&k);
    return ret;
}

/* ---- software keys ------------------------------------------------------ */

static otpca_err soft_load(const otpca_p256_soft *key, ecc_key *k)
{
    if (wc_ecc_import_private_key_ex(key->priv, OTPCA_P256_PRIV_LEN, key->pub, OTPCA_P256_PUB_LEN, k,
                                     ECC_SECP256R1) != 0)
        return OTPCA_ERR_BAD_KEY;
    return OTPCA_ERR_OK;
}

otpca_err otpca_p256_soft_generate(otpca_p256_soft *key)
{
    WC_RNG rng;
    ecc_key k;
    word32 n = OTPCA_P256_PRIV_LEN;
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (wc_InitRng(&rng) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_ecc_init(&k) != 0) {
        wc_FreeRng(&rng);
        return OTPCA_ERR_CRYPTO;
    }
    if (wc_ecc_make_key_ex(&rng, 32, &k, ECC_SECP256R1) != 0)
        goto out;
    if (wc_ecc_export_private_only(&k, key->priv, &n) != 0 || n != OTPCA_P256_PRIV_LEN)
        goto out;
    ret = export_pub(&k, key->pub, OTPCA_P256_PUB_LEN, 0);
out:
    wc_ecc_free(&k);
    wc_FreeRng(&rng);
    if (ret)
        otpca_p256_soft_wipe(key);
    return ret;
}

otpca_err otpca_p256_soft_import(otpca_p256_soft *key, const uint8_t priv[32])
{
    ecc_key k;
    otpca_err ret = OTPCA_ERR_BAD_KEY;
    if (wc_ecc_init(&k) != 0)
        return OTPCA_ERR_CRYPTO;
    memcpy(key->priv, priv, OTPCA_P256_PRIV_LEN);
    if (wc_ecc_import_private_key_ex(priv, OTPCA_P256_PRIV_LEN, NULL, 0, &k, ECC_SECP256R1) != 0 ||
        wc_ecc_make_pub(&k, NULL) != 0)
        goto out;
    ret = export_pub(&k, key->pub, OTPCA_P256_PUB_LEN, 0);
out:
    wc_ecc_free(&k);
    if (ret)
        otpca_p256_soft_wipe(key);
    return ret;
}

void otpca_p256_soft_wipe(otpca_p256_soft *key) { otpca_memzero(key, sizeof *key); }

otpca_err otpca_p256_soft_sign(void *ctx, const uint8_t digest[32], uint8_t sig[OTPCA_P256_SIG_LEN])
{
    const otpca_p256_soft *key = ctx;
    WC_RNG rng;
    ecc_key k;
    byte der[80];
    word32 der_len = sizeof der, rlen = 32, slen = 32;
    byte r[32], s[32];
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (wc_InitRng(&rng) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_ecc_init(&k) != 0) {
        wc_FreeRng(&rng);
        return OTPCA_ERR_CRYPTO;
    }
    if ((ret = soft_load(key, &k)))
        goto out;
    ret = OTPCA_ERR_CRYPTO;
    if (wc_ecc_sign_hash(digest, 32, der, &der_len, &rng, &k) != 0)
        goto out;
    if (wc_ecc_sig_to_rs(der, der_len, r, &rlen, s, &slen) != 0 || rlen > 32 || slen > 32)
        goto out;
    /* r and s come out without leading zeros; the raw form is fixed width. */
    memset(sig, 0, OTPCA_P256_SIG_LEN);
    memcpy(sig + 32 - rlen, r, rlen);
    memcpy(sig + 64 - slen, s, slen);
    ret = OTPCA_ERR_OK;
out:
    wc_ecc_free(&k);
    wc_FreeRng(&rng);
    return ret;
}

otpca_err otpca_p256_soft_ecdh(void *ctx, const uint8_t peer[OTPCA_P256_PUB_LEN], uint8_t z[32])
{
    const otpca_p256_soft *key = ctx;
    WC_RNG rng;
    ecc_key priv, pub;
    word32 zlen = 32;
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (wc_InitRng(&rng) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_ecc_init(&priv) != 0) {
        wc_FreeRng(&rng);
        return OTPCA_ERR_CRYPTO;
    }
    if (wc_ecc_init(&pub) != 0) {
        wc_ecc_free(&priv);
        wc_FreeRng(&rng);
        return OTPCA_ERR_CRYPTO;
    }
    if ((ret = soft_load(key, &priv)) || (ret = import_pub(peer, OTPCA_P256_PUB_LEN, &pub)))
        goto out;
    ret = OTPCA_ERR_CRYPTO;
    /* Timing-resistant builds need an RNG for blinding. */
    if (wc_ecc_set_rng(&priv, &rng) != 0)
        goto out;
    if (wc_ecc_shared_secret(&priv, &pub, z, &zlen) != 0 || zlen != 32)
        goto out;
    ret = OTPCA_ERR_OK;
out:
    wc_ecc_free(&pub);
    wc_ecc_free(&priv);
    wc_FreeRng(&rng);
    return ret;
}

otpca_err otpca_p256_ecdh_ephemeral(const uint8_t *peer, size_t peer_len, uint8_t eph_pub[OTPCA_P256_PUB_LEN],
                                    uint8_t peer_full[OTPCA_P256_PUB_LEN], uint8_t z[32])
{
    /* One RNG, one import and one check of the peer: sealing an envelope
     * per enrollment is on the manager's hot path. */
    WC_RNG rng;
    ecc_key eph, pub;
    word32 zlen = 32;
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (wc_InitRng(&rng) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_ecc_init(&eph) != 0) {
        wc_FreeRng(&rng);
        return OTPCA_ERR_CRYPTO;
    }
    if (wc_ecc_init(&pub) != 0) {
        wc_ecc_free(&eph);
        wc_FreeRng(&rng);
        return OTPCA_ERR_CRYPTO;
    }
    if ((ret = import_pub(peer, peer_len, &pub)) || (ret = export_pub(&pub, peer_full, OTPCA_P256_PUB_LEN, 0)))
        goto out;
    ret = OTPCA_ERR_CRYPTO;
    if (wc_ecc_make_key_ex(&rng, 32, &eph, ECC_SECP256R1) != 0 || wc_ecc_set_rng(&eph, &rng) != 0)
        goto out;
    if (wc_ecc_shared_secret(&eph, &pub, z, &zlen) != 0 || zlen != 32)
        goto out;
    ret = export_pub(&eph, eph_pub, OTPCA_P256_PUB_LEN, 0);
out:
    if (ret)
        otpca_memzero(z, 32);
    wc_ecc_free(&pub);
    wc_ecc_free(&eph); /* wipes the ephemeral private key */
    wc_FreeRng(&rng);
    return ret;
}
