/*
 * P-256 helpers on wolfCrypt for the protocol: public-key checks and
 * forms, key ids, signature verification, the ephemeral ECDH of envelopes
 * and seed boxes, and a software key (for tests and tools, and for nodes
 * built without a secure element). Keys that live in a token are used
 * through the otpca_sign_fn / otpca_ecdh_fn callbacks instead.
 */
#ifndef OTPCA_PROTO_P256_H
#define OTPCA_PROTO_P256_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"

#define OTPCA_P256_PUB_LEN 65   /* SEC1 uncompressed: 04 || X || Y */
#define OTPCA_P256_PUB_C_LEN 33 /* SEC1 compressed: 02/03 || X */
#define OTPCA_P256_PRIV_LEN 32
#define OTPCA_P256_SIG_LEN 64 /* r || s, 32 bytes each */
#define OTPCA_KID_LEN 8

/* Signs a SHA-256 digest, raw r || s. A token key or a software key. */
typedef otpca_err (*otpca_sign_fn)(void *ctx, const uint8_t digest[32],
                                   uint8_t sig[OTPCA_P256_SIG_LEN]);
/* ECDH with the caller's private key: the x-coordinate of d * peer. */
typedef otpca_err (*otpca_ecdh_fn)(void *ctx, const uint8_t peer[OTPCA_P256_PUB_LEN],
                                   uint8_t z[32]);

/* Checks a SEC1 public key (33 or 65 bytes) is a point on P-256 and writes
 * its uncompressed form. OTPCA_ERR_BAD_KEY otherwise. */
__attribute__((warn_unused_result)) otpca_err otpca_p256_pub_normalize(const uint8_t *pub,
                                                                       size_t len,
                                                                       uint8_t out[OTPCA_P256_PUB_LEN]);
/* Compressed form of a valid uncompressed key. */
__attribute__((warn_unused_result)) otpca_err otpca_p256_pub_compress(
    const uint8_t pub[OTPCA_P256_PUB_LEN], uint8_t out[OTPCA_P256_PUB_C_LEN]);
/* Key id: the first 8 bytes of SHA-256 over the uncompressed SEC1 key
 * (the same value the token module stores as CKA_ID). */
void otpca_p256_kid(const uint8_t pub[OTPCA_P256_PUB_LEN], uint8_t kid[OTPCA_KID_LEN]);
/* OTPCA_ERR_OK if sig is a valid ECDSA signature of digest by pub (33 or 65
 * bytes); OTPCA_ERR_SIGNATURE if not; OTPCA_ERR_BAD_KEY for a bad key. */
__attribute__((warn_unused_result)) otpca_err otpca_p256_verify(const uint8_t *pub, size_t publen,
                                                                const uint8_t digest[32],
                                                                const uint8_t sig[OTPCA_P256_SIG_LEN]);
/* SHA-256 of a buffer. */
void otpca_sha256(const uint8_t *p, size_t len, uint8_t out[32]);
/* Cryptographic random bytes (wolfCrypt's DRBG). */
__attribute__((warn_unused_result)) otpca_err otpca_random(uint8_t *p, size_t len);

/* ECDH with a fresh ephemeral key (the sender's half of ECIES): checks the
 * peer's key (33 or 65 bytes) and writes its uncompressed form, the
 * ephemeral public key and the shared x-coordinate. The ephemeral private
 * key is gone when this returns. */
__attribute__((warn_unused_result)) otpca_err otpca_p256_ecdh_ephemeral(
    const uint8_t *peer, size_t peer_len, uint8_t eph_pub[OTPCA_P256_PUB_LEN],
    uint8_t peer_full[OTPCA_P256_PUB_LEN], uint8_t z[32]);

/* A software key. Wipe with otpca_p256_soft_wipe() when done. Each call
 * sets up its own wolfCrypt RNG (about 25 us): fine for tests and nodes,
 * not meant for a daemon's hot path, where keys live in tokens. */
typedef struct otpca_p256_soft {
    uint8_t priv[OTPCA_P256_PRIV_LEN];
    uint8_t pub[OTPCA_P256_PUB_LEN];
} otpca_p256_soft;

__attribute__((warn_unused_result)) otpca_err otpca_p256_soft_generate(otpca_p256_soft *key);
/* From a 32-byte private scalar (the public key is derived). */
__attribute__((warn_unused_result)) otpca_err otpca_p256_soft_import(otpca_p256_soft *key,
                                                                     const uint8_t priv[32]);
void otpca_p256_soft_wipe(otpca_p256_soft *key);
/* otpca_sign_fn and otpca_ecdh_fn for a software key (ctx = otpca_p256_soft *). */
otpca_err otpca_p256_soft_sign(void *ctx, const uint8_t digest[32], uint8_t sig[OTPCA_P256_SIG_LEN]);
otpca_err otpca_p256_soft_ecdh(void *ctx, const uint8_t peer[OTPCA_P256_PUB_LEN], uint8_t z[32]);

#endif
