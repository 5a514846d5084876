/*
 * ECIES to a P-256 key, as PROTOCOL.md section 5 specifies (the network
 * key; seeds use the batched form of seedbox.h):
 * ephemeral P-256 key, ECDH, HKDF-SHA256, AES-128-GCM.
 *
 *   envelope = 0x01 || E (65 bytes, SEC1 uncompressed) || C || T (16 bytes)
 *   Z        = x-coordinate of ECDH(e, R)                       (32 bytes)
 *   PRK      = HKDF-Extract(salt = E || R, IKM = Z)
 *   K || IV  = HKDF-Expand(PRK, "otpca-ecies-v1 " || label, 28)  (16 + 12)
 *   C || T   = AES-128-GCM(K, IV, AAD = 0x01 || aad, plaintext)
 *
 * R is the recipient's uncompressed public key. Opening needs only an ECDH
 * callback, so the recipient's key may stay in its token.
 */
#ifndef OTPCA_PROTO_ECIES_H
#define OTPCA_PROTO_ECIES_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/proto/p256.h"

#define OTPCA_ECIES_VERSION 0x01
#define OTPCA_ECIES_TAG_LEN 16
#define OTPCA_ECIES_OVERHEAD (1 + OTPCA_P256_PUB_LEN + OTPCA_ECIES_TAG_LEN)
#define OTPCA_ECIES_MAX_PLAINTEXT 1024
#define OTPCA_ECIES_MAX_LABEL 32
/* The label the protocol uses: the network key in EnrollResponse. (TOTP
 * seeds, once label "seed", travel in seed boxes: seedbox.h.) */
#define OTPCA_ECIES_LABEL_NETKEY "netkey"

/* Seals pt to recipient (33 or 65 bytes SEC1) into out (at least
 * ptlen + OTPCA_ECIES_OVERHEAD bytes). Pass the 65-byte form when you have
 * it: decompressing a key costs about 75 us on P-256. */
__attribute__((warn_unused_result)) otpca_err otpca_ecies_seal(
    const uint8_t *recipient, size_t recipient_len, const char *label, const uint8_t *aad,
    size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap, size_t *out_len);

/* Opens an envelope with the recipient's ECDH callback; recipient is the
 * recipient's own public key (uncompressed). OTPCA_ERR_DECRYPT for a wrong
 * key, a wrong label or aad, or any tampering; OTPCA_ERR_PROTO_VALUE for a
 * malformed envelope. After any failure past the argument checks the first
 * plaintext-length bytes of pt are zero. */
__attribute__((warn_unused_result)) otpca_err otpca_ecies_open(
    otpca_ecdh_fn ecdh, void *ctx, const uint8_t recipient[OTPCA_P256_PUB_LEN], const char *label,
    const uint8_t *aad, size_t aad_len, const uint8_t *env, size_t env_len, uint8_t *pt,
    size_t cap, size_t *pt_len);

#endif
