/*
 * The symmetric half that ECIES envelopes (ecies.c) and seed boxes
 * (seedbox.c) share, internal to libotpca-proto: HKDF-SHA256 (RFC 5869)
 * from an ECDH secret with the salt E || R both use, then AES-128-GCM
 * whose 16-byte key and 12-byte nonce are the 28 bytes of one HKDF-Expand
 * output, with a 16-byte tag. Every intermediate key is wiped before these
 * functions return; none keeps state, so they are safe to call from
 * several threads at once.
 */
#ifndef OTPCA_PROTO_HKDF_GCM_H
#define OTPCA_PROTO_HKDF_GCM_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/proto/p256.h"

#define OTPCA_HG_PRK_LEN 32 /* SHA-256 */
#define OTPCA_HG_KEY_LEN 16 /* AES-128 */
#define OTPCA_HG_IV_LEN 12
#define OTPCA_HG_OKM_LEN (OTPCA_HG_KEY_LEN + OTPCA_HG_IV_LEN)
#define OTPCA_HG_TAG_LEN 16
/* The longest info (prefix + suffix) otpca_hg_expand takes. */
#define OTPCA_HG_INFO_MAX 128

/* PRK = HKDF-Extract(salt = e || r (130 bytes), IKM = z). */
__attribute__((warn_unused_result)) otpca_err otpca_hg_extract(const uint8_t z[32],
                                                               const uint8_t e[OTPCA_P256_PUB_LEN],
                                                               const uint8_t r[OTPCA_P256_PUB_LEN],
                                                               uint8_t prk[OTPCA_HG_PRK_LEN]);

/* OKM = HKDF-Expand(prk, info = prefix || suffix, L = 28), i.e. K || IV.
 * OTPCA_ERR_INVALID_ARG if the info is longer than OTPCA_HG_INFO_MAX. */
__attribute__((warn_unused_result)) otpca_err otpca_hg_expand(const uint8_t prk[OTPCA_HG_PRK_LEN],
                                                              const char *prefix, size_t prefix_len,
                                                              const uint8_t *suffix, size_t suffix_len,
                                                              uint8_t okm[OTPCA_HG_OKM_LEN]);

/* ct || tag = AES-128-GCM-Encrypt(K = okm[0..16), IV = okm[16..28), aad, pt).
 * ct may be pt; len and aad_len may be 0. OTPCA_ERR_CRYPTO if wolfCrypt
 * fails. */
__attribute__((warn_unused_result)) otpca_err otpca_hg_seal(const uint8_t okm[OTPCA_HG_OKM_LEN],
                                                            const uint8_t *aad, size_t aad_len,
                                                            const uint8_t *pt, size_t len, uint8_t *ct,
                                                            uint8_t tag[OTPCA_HG_TAG_LEN]);

/* The reverse: OTPCA_ERR_DECRYPT if the tag does not verify, and then the
 * len bytes at pt are zero; OTPCA_ERR_CRYPTO if wolfCrypt fails (pt zero
 * too). */
__attribute__((warn_unused_result)) otpca_err otpca_hg_open(const uint8_t okm[OTPCA_HG_OKM_LEN],
                                                            const uint8_t *aad, size_t aad_len,
                                                            const uint8_t *ct, size_t len,
                                                            const uint8_t tag[OTPCA_HG_TAG_LEN],
                                                            uint8_t *pt);

#endif
