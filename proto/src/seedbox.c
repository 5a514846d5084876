/*
 * Seed boxes (seedbox.h, PROTOCOL.md section 5.1): the ECDH and
 * HKDF-Extract of an ECIES envelope done once per SyncBatch, then one
 * HKDF-Expand and one AES-128-GCM per seed. The expensive half (about
 * 100 us of P-256 per envelope) is what made one envelope per seed too
 * slow for a snapshot of a million devices; what is left per seed is a
 * few microseconds of HMAC and AES. seal and open only read the box and
 * keep their keys on the stack, so threads may share a box; the one write
 * wolfCrypt makes behind them is its AES-NI probe on the first key setup,
 * which stores the same flag from whichever thread gets there.
 */
#include "otpca/proto/seedbox.h"

#include <string.h>

#include "otpca/common/secmem.h"

#include "hkdf_gcm.h"

static int serial_ok(const uint8_t *serial, size_t len)
{
    return serial && len >= 1 && len <= OTPCA_SEEDBOX_SERIAL_MAX;
}

/* b->prk from Z and b->eph (already set) and the recipient's key R. */
static otpca_err finish(otpca_seedbox *b, const uint8_t z[32], const uint8_t r[OTPCA_P256_PUB_LEN])
{
    return otpca_hg_extract(z, b->eph, r, b->prk);
}

otpca_err otpca_seedbox_sender(otpca_seedbox *b, const uint8_t *recipient, size_t recipient_len)
{
    uint8_t r[OTPCA_P256_PUB_LEN], z[32];
    if (!b)
        return OTPCA_ERR_INVALID_ARG;
    otpca_memzero(b, sizeof *b);
    otpca_err ret = otpca_p256_ecdh_ephemeral(recipient, recipient_len, b->eph, r, z);
    if (!ret)
        ret = finish(b, z, r);
    otpca_memzero(z, sizeof z);
    if (ret)
        otpca_seedbox_wipe(b);
    return ret;
}

otpca_err otpca_seedbox_sender_kat(otpca_seedbox *b, const uint8_t eph_priv[OTPCA_P256_PRIV_LEN],
                                   const uint8_t *recipient, size_t recipient_len)
{
    otpca_p256_soft e;
    uint8_t r[OTPCA_P256_PUB_LEN], z[32];
    otpca_err ret;
    if (!b || !eph_priv)
        return OTPCA_ERR_INVALID_ARG;
    otpca_memzero(b, sizeof *b);
    if ((ret = otpca_p256_pub_normalize(recipient, recipient_len, r)))
        return ret;
    if ((ret = otpca_p256_soft_import(&e, eph_priv)))
        return ret;
    memcpy(b->eph, e.pub, OTPCA_P256_PUB_LEN);
    ret = otpca_p256_soft_ecdh(&e, r, z);
    if (!ret)
        ret = finish(b, z, r);
    otpca_p256_soft_wipe(&e);
    otpca_memzero(z, sizeof z);
    if (ret)
        otpca_seedbox_wipe(b);
    return ret;
}

otpca_err otpca_seedbox_receiver(otpca_seedbox *b, const uint8_t eph[OTPCA_P256_PUB_LEN],
                                 const uint8_t recipient[OTPCA_P256_PUB_LEN], otpca_ecdh_fn ecdh,
                                 void *ctx)
{
    uint8_t r[OTPCA_P256_PUB_LEN], z[32];
    otpca_err ret;
    if (!b || !eph || !recipient || !ecdh)
        return OTPCA_ERR_INVALID_ARG;
    otpca_memzero(b, sizeof *b);
    /* Uncompressed and on the curve, both: the salt takes them as they are. */
    if (eph[0] != 0x04 || recipient[0] != 0x04 ||
        otpca_p256_pub_normalize(eph, OTPCA_P256_PUB_LEN, b->eph) != OTPCA_ERR_OK ||
        otpca_p256_pub_normalize(recipient, OTPCA_P256_PUB_LEN, r) != OTPCA_ERR_OK) {
        otpca_seedbox_wipe(b);
        return OTPCA_ERR_BAD_KEY;
    }
    ret = ecdh(ctx, b->eph, z);
    if (!ret)
        ret = finish(b, z, r);
    otpca_memzero(z, sizeof z);
    if (ret)
        otpca_seedbox_wipe(b);
    return ret;
}

/* K || N for one serial. */
static otpca_err entry_key(const otpca_seedbox *b, const uint8_t *serial, size_t serial_len,
                           uint8_t okm[OTPCA_HG_OKM_LEN])
{
    return otpca_hg_expand(b->prk, OTPCA_SEEDBOX_INFO_PREFIX, sizeof OTPCA_SEEDBOX_INFO_PREFIX - 1,
                           serial, serial_len, okm);
}

otpca_err otpca_seedbox_seal(const otpca_seedbox *b, const uint8_t *serial, size_t serial_len,
                             const uint8_t *seed, size_t seed_len, uint8_t *out, size_t cap,
                             size_t *out_len)
{
    uint8_t okm[OTPCA_HG_OKM_LEN];
    if (!b || !seed || !out || !out_len || !serial_ok(serial, serial_len) ||
        seed_len < OTPCA_SEEDBOX_SEED_MIN || seed_len > OTPCA_SEEDBOX_SEED_MAX)
        return OTPCA_ERR_INVALID_ARG;
    if (cap < OTPCA_SEEDBOX_SEALED_LEN(seed_len))
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    otpca_err ret = entry_key(b, serial, serial_len, okm);
    if (!ret)
        ret = otpca_hg_seal(okm, serial, serial_len, seed, seed_len, out, out + seed_len);
    otpca_memzero(okm, sizeof okm);
    if (ret)
        otpca_memzero(out, OTPCA_SEEDBOX_SEALED_LEN(seed_len)); /* no half-sealed seed */
    else
        *out_len = OTPCA_SEEDBOX_SEALED_LEN(seed_len);
    return ret;
}

otpca_err otpca_seedbox_open(const otpca_seedbox *b, const uint8_t *serial, size_t serial_len,
                             const uint8_t *in, size_t in_len, uint8_t *seed, size_t cap,
                             size_t *seed_len)
{
    uint8_t okm[OTPCA_HG_OKM_LEN];
    if (!b || !in || !seed_len || !serial_ok(serial, serial_len))
        return OTPCA_ERR_INVALID_ARG;
    if (in_len < OTPCA_SEEDBOX_SEALED_MIN || in_len > OTPCA_SEEDBOX_SEALED_MAX)
        return OTPCA_ERR_PROTO_VALUE;
    size_t n = in_len - OTPCA_SEEDBOX_TAG_LEN;
    if (!seed || cap < n)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    /* Whatever fails from here on, the output holds no stale bytes. */
    otpca_memzero(seed, n);
    otpca_err ret = entry_key(b, serial, serial_len, okm);
    if (!ret)
        ret = otpca_hg_open(okm, serial, serial_len, in, n, in + n, seed);
    otpca_memzero(okm, sizeof okm);
    if (!ret)
        *seed_len = n;
    return ret;
}

void otpca_seedbox_wipe(otpca_seedbox *b)
{
    if (b)
        otpca_memzero(b, sizeof *b);
}
