/*
 * TOTP seeds at the cloud, sealed at rest by envelope encryption: each
 * seed is AES-256-GCM-sealed under the store's seed key, and the seed key
 * itself is stored in the store only wrapped (AES-GCM) by the seed-wrap
 * key inside the cloud's token, which never leaves it. A copy of the
 * store without the token reveals no seed.
 *
 * Why not seal every seed in the token: a PKCS#11 AES-GCM call costs about
 * 33 us on SoftHSM (measured: 20.8k imported rows/s, 70% of it in the
 * token), which caps an import at about 30k seeds/s per core and a 1M-device
 * snapshot sync at over 30 s; the targets are 30 s and 10 s. With the seed
 * key unwrapped once into locked memory, a seal or open is about 1 us.
 * This is the usual key-management-service pattern; the token still holds
 * the root of it, and the unwrapped key lives only in locked, non-dumpable
 * memory of the process that uses it and is wiped at the end.
 *
 * A plaintext seed exists only in locked memory, between opening and
 * re-sealing it for a manager (seedbox, PROTOCOL.md section 5.1), and is
 * wiped at once.
 */
#ifndef OTPCA_CLOUD_SEEDS_H
#define OTPCA_CLOUD_SEEDS_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/cloud/store.h"
#include "otpca/common/err.h"
#include "otpca/token/token.h"

#define OTPCA_SEED_MAX 64 /* bytes of a TOTP seed */
/* A sealed seed: version 0x01 || IV (12) || ciphertext || tag (16). */
#define OTPCA_SEED_ENV_OVERHEAD 29

typedef struct otpca_seed_key otpca_seed_key;

/* Loads the store's seed key, unwrapping it with the token's seed-wrap key
 * (wrap). With create, a store without one gets a fresh key (random from
 * the token), wrapped and added; without, OTPCA_ERR_NOT_FOUND ("run
 * init"). OTPCA_ERR_DECRYPT if the wrapped key does not open with this
 * token's key (a store from another cloud token). */
otpca_err otpca_seed_key_load(otpca_token_t *tok, otpca_obj_t wrap, otpca_store *st, int create,
                              otpca_seed_key **out) __attribute__((warn_unused_result));
void otpca_seed_key_destroy(otpca_seed_key **k);

/* Re-wraps the store's seed key: unwrapped with the token key from,
 * wrapped with to (whose label, to_label, is recorded for the message a
 * process with the old wrap_key gets), and replaced in the store only if
 * nobody replaced it meanwhile (OTPCA_ERR_STATE then). The seed key
 * itself, and so every sealed seed, stays the same. Run it inside a store
 * transaction: the key and its label change together or not at all.
 * DECRYPT if from does not open it. */
otpca_err otpca_seed_key_rewrap(otpca_token_t *tok, otpca_obj_t from, otpca_obj_t to, const char *to_label,
                                otpca_store *st) __attribute__((warn_unused_result));

/* Seals seed (16..64 bytes) for device serial: AAD = "otpca-seed " ||
 * serial, so a sealed seed cannot be moved to another device. out needs
 * len + OTPCA_SEED_ENV_OVERHEAD bytes. Thread-safe on one key. */
otpca_err otpca_seed_seal(const otpca_seed_key *k, const char *serial, const uint8_t *seed, size_t len,
                          uint8_t *out, size_t cap, size_t *out_len) __attribute__((warn_unused_result));
/* Opens a sealed seed into memory the caller locks and wipes; DECRYPT
 * (with seed wiped) for a wrong serial, key or tampered input. */
otpca_err otpca_seed_open(const otpca_seed_key *k, const char *serial, const uint8_t *env, size_t env_len,
                          uint8_t *seed, size_t cap, size_t *len) __attribute__((warn_unused_result));

#endif
