/*
 * TOTP seeds at the cloud: sealed at rest with AES-GCM inside the cloud's
 * token (the seed-wrap key never leaves it), and re-sealed for one manager
 * (ECIES to its CA key, PROTOCOL.md section 5, label "seed") when a trust
 * list is synced. A plaintext seed exists only in locked memory, for the
 * moment between the two, and is wiped at once.
 */
#ifndef OTPCA_CLOUD_SEEDS_H
#define OTPCA_CLOUD_SEEDS_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"
#include "otpca/token/token.h"

#define OTPCA_SEED_MAX 64 /* bytes of a TOTP seed */

/* Seals seed (16..64 bytes) for device serial at rest: AAD = "otpca-seed " ||
 * serial, so a sealed seed cannot be moved to another device. out needs
 * len + OTPCA_TOKEN_AEAD_OVERHEAD bytes. */
otpca_err otpca_seed_seal(otpca_token_t *tok, otpca_obj_t wrap, const char *serial, const uint8_t *seed,
                          size_t len, uint8_t *out, size_t cap, size_t *out_len) __attribute__((warn_unused_result));
/* Opens a sealed seed into locked memory the caller wipes (otpca_memzero). */
otpca_err otpca_seed_open(otpca_token_t *tok, otpca_obj_t wrap, const char *serial, const uint8_t *env,
                          size_t env_len, uint8_t *seed, size_t cap, size_t *len) __attribute__((warn_unused_result));
/* Re-seals a seed sealed at rest for the manager whose CA public key is
 * manager_pub (65 bytes): ECIES, label "seed", aad = serial. */
otpca_err otpca_seed_reseal(otpca_token_t *tok, otpca_obj_t wrap, const char *serial, const uint8_t *env,
                            size_t env_len, const uint8_t manager_pub[65], uint8_t *out, size_t cap,
                            size_t *out_len) __attribute__((warn_unused_result));

#endif
