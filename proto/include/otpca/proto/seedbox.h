/*
 * Seed boxes: the TOTP seeds of one SyncBatch sealed to the manager's
 * P-256 CA key with one ephemeral key and one ECDH for the whole batch
 * (PROTOCOL.md section 5.1), instead of one ECIES envelope per seed.
 *
 *   per batch  (e, E) fresh; R = the recipient's key, uncompressed
 *              Z   = x-coordinate of ECDH(e, R)                   (32 bytes)
 *              PRK = HKDF-Extract(SHA-256, salt = E || R, IKM = Z)
 *   per entry  K || N = HKDF-Expand(PRK, "otpca-seed-v1 " || serial, 28)
 *              sealed = C || T = AES-128-GCM(K, N, AAD = serial, seed)
 *
 * E travels once, in the SyncBatch (key 9, seedkey); each DeviceEntry
 * carries only its sealed seed (key 6, seed length + 16 bytes). A box
 * holds PRK: it opens every seed of its batch, so keep it as secret as the
 * seeds (locked memory in a daemon) and wipe it when the batch is done.
 * Serials must be unique within one box: two seeds sealed under the same
 * serial in one box share (K, N).
 *
 * seal and open keep all their state on the stack: several threads may
 * seal or open with one (const) box at the same time.
 */
#ifndef OTPCA_PROTO_SEEDBOX_H
#define OTPCA_PROTO_SEEDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/proto/p256.h"

/* The HKDF-Expand info prefix (ASCII, with its trailing space). */
#define OTPCA_SEEDBOX_INFO_PREFIX "otpca-seed-v1 "
#define OTPCA_SEEDBOX_PRK_LEN 32
#define OTPCA_SEEDBOX_TAG_LEN 16
#define OTPCA_SEEDBOX_SEED_MIN 16
#define OTPCA_SEEDBOX_SEED_MAX 64
#define OTPCA_SEEDBOX_SERIAL_MAX 64 /* serials are 1..64 bytes */
/* Bytes a sealed seed of seed_len bytes takes (the out buffer of seal). */
#define OTPCA_SEEDBOX_SEALED_LEN(seed_len) ((seed_len) + OTPCA_SEEDBOX_TAG_LEN)
#define OTPCA_SEEDBOX_SEALED_MIN OTPCA_SEEDBOX_SEALED_LEN(OTPCA_SEEDBOX_SEED_MIN) /* 32 */
#define OTPCA_SEEDBOX_SEALED_MAX OTPCA_SEEDBOX_SEALED_LEN(OTPCA_SEEDBOX_SEED_MAX) /* 80 */

/* One batch's keys: PRK (secret) and E (public, SEC1 uncompressed). */
typedef struct otpca_seedbox {
    uint8_t prk[OTPCA_SEEDBOX_PRK_LEN];
    uint8_t eph[OTPCA_P256_PUB_LEN];
} otpca_seedbox;

/* The sender's box (the cloud, once per SyncBatch that carries a seed): a
 * fresh ephemeral key, ECDH with recipient (33 or 65 bytes SEC1, checked
 * on the curve), PRK. b->eph is then the batch's seedkey (key 9). The
 * ephemeral private key is gone when this returns. OTPCA_ERR_BAD_KEY for
 * a bad recipient key; after any failure *b is zero. */
__attribute__((warn_unused_result)) otpca_err otpca_seedbox_sender(otpca_seedbox *b,
                                                                   const uint8_t *recipient,
                                                                   size_t recipient_len);

/* The receiver's box (the manager, once per SyncBatch): eph is the
 * batch's seedkey (65 bytes, must be a point on P-256), recipient the
 * receiver's own public key (65 bytes), ecdh the receiver's ECDH with its
 * private key (a token callback or otpca_p256_soft_ecdh). OTPCA_ERR_BAD_KEY
 * if eph or recipient is not a valid uncompressed point; an error of ecdh
 * is returned as it is. After any failure *b is zero. */
__attribute__((warn_unused_result)) otpca_err otpca_seedbox_receiver(
    otpca_seedbox *b, const uint8_t eph[OTPCA_P256_PUB_LEN],
    const uint8_t recipient[OTPCA_P256_PUB_LEN], otpca_ecdh_fn ecdh, void *ctx);

/* Seals seed (16..64 bytes) for the device serial (1..64 bytes, the
 * DeviceEntry's key 0) into out: OTPCA_SEEDBOX_SEALED_LEN(seed_len) bytes,
 * C || T. Deterministic: the same box, serial and seed give the same
 * bytes. OTPCA_ERR_INVALID_ARG for lengths out of range or NULL pointers,
 * OTPCA_ERR_BUFFER_TOO_SMALL if cap is short. */
__attribute__((warn_unused_result)) otpca_err otpca_seedbox_seal(
    const otpca_seedbox *b, const uint8_t *serial, size_t serial_len, const uint8_t *seed,
    size_t seed_len, uint8_t *out, size_t cap, size_t *out_len);

/* Opens a sealed seed (in_len 32..80 bytes) of the device serial into
 * seed (at least in_len - 16 bytes of room): *seed_len = in_len - 16.
 * OTPCA_ERR_DECRYPT for a wrong box or serial or any tampering (including
 * a cut that leaves 32 bytes or more), and then the first in_len - 16
 * bytes of seed are zero. Refused before anything is written:
 * OTPCA_ERR_INVALID_ARG (NULL pointers, serial length out of range),
 * OTPCA_ERR_PROTO_VALUE (in_len outside 32..80: not a sealed seed, as
 * otpca_ecies_open answers a malformed envelope), OTPCA_ERR_BUFFER_TOO_SMALL.
 * *seed_len is written only on success. */
__attribute__((warn_unused_result)) otpca_err otpca_seedbox_open(
    const otpca_seedbox *b, const uint8_t *serial, size_t serial_len, const uint8_t *in,
    size_t in_len, uint8_t *seed, size_t cap, size_t *seed_len);

/* Wipes *b (NULL is accepted). */
void otpca_seedbox_wipe(otpca_seedbox *b);

/* ---- known-answer tests only ------------------------------------------
 * otpca_seedbox_sender with the ephemeral private scalar given instead of
 * drawn: the one way to reproduce a box, for test vectors and the corpus
 * of the fuzz targets. Two batches sealed with the same scalar to the same
 * recipient share every (K, N): never call it outside tests.
 * OTPCA_ERR_BAD_KEY for a scalar outside [1, n-1] or a bad recipient. */
__attribute__((warn_unused_result)) otpca_err otpca_seedbox_sender_kat(
    otpca_seedbox *b, const uint8_t eph_priv[OTPCA_P256_PRIV_LEN], const uint8_t *recipient,
    size_t recipient_len);

#endif
