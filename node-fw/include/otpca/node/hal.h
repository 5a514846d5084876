/*
 * The node's hardware abstraction layer: everything the firmware core and
 * the credential store need from the platform, as function pointers with
 * one-line contracts. The core calls only the token, RNG and log entries
 * (and the flash entries through slots.h); the clock and the transport are
 * for the platform's main loop, which feeds the core bytes and time. Each
 * platform implements it in its own file (node-fw/hal/posix/ for hosts).
 * Keys in the token are named by their key id (PROTOCOL.md 4.2: the first
 * 8 bytes of SHA-256 over the uncompressed public key), so a node can hold
 * its current key and the one a KeyUpdate or Claim generated side by side.
 *
 * C99; no I/O of its own.
 */
#ifndef OTPCA_NODE_HAL_H
#define OTPCA_NODE_HAL_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"

#define OTPCA_NODE_KID_LEN 8
#define OTPCA_NODE_PUB_LEN 65

typedef enum otpca_node_log_level {
    OTPCA_NODE_LOG_DEBUG = 0,
    OTPCA_NODE_LOG_INFO = 1,
    OTPCA_NODE_LOG_WARN = 2,
    OTPCA_NODE_LOG_ERROR = 3
} otpca_node_log_level;

typedef struct otpca_node_hal {
    void *ctx; /* passed as the first argument of every entry */

    /* ---- token (secure element) ---- */
    /* ECDSA P-256 over a SHA-256 digest with the key named kid, raw r || s. */
    otpca_err (*sign)(void *ctx, const uint8_t kid[OTPCA_NODE_KID_LEN], const uint8_t digest[32], uint8_t sig[64]);
    /* ECDH with the key named kid: z = x-coordinate of d * peer (65-byte SEC1 point). */
    otpca_err (*ecdh)(void *ctx, const uint8_t kid[OTPCA_NODE_KID_LEN], const uint8_t peer[OTPCA_NODE_PUB_LEN],
                      uint8_t z[32]);
    /* HMAC of msg with the token's TOTP seed (SHA-1 or SHA-256, its choice); *mac_len in: room (>= 32), out: length. */
    otpca_err (*hmac)(void *ctx, const uint8_t *msg, size_t msg_len, uint8_t *mac, size_t *mac_len);
    /* Generates a new P-256 key pair inside the token (never leaves it); its public key, uncompressed. */
    otpca_err (*keygen)(void *ctx, uint8_t pub[OTPCA_NODE_PUB_LEN]);
    /* Destroys the key named kid (an old key after a confirmed KeyUpdate or Claim); may be NULL. */
    otpca_err (*key_destroy)(void *ctx, const uint8_t kid[OTPCA_NODE_KID_LEN]);

    /* ---- RNG ---- */
    /* len cryptographically random bytes (nonces). */
    otpca_err (*random)(void *ctx, uint8_t *p, size_t len);

    /* ---- clock (main loop only; the core takes time as an argument) ---- */
    /* Milliseconds: Unix time if the node has a trusted clock, else any monotonic count. */
    uint64_t (*now_ms)(void *ctx);

    /* ---- flash (the credential store, slots.h) ---- */
    /* Reads len bytes at offset off. */
    otpca_err (*flash_read)(void *ctx, uint32_t off, uint8_t *p, size_t len);
    /* Programs len bytes at off (bits only go 1 -> 0; the range was erased first). */
    otpca_err (*flash_write)(void *ctx, uint32_t off, const uint8_t *p, size_t len);
    /* Erases [off, off + len) to 0xFF; off and len are multiples of the erase unit. */
    otpca_err (*flash_erase)(void *ctx, uint32_t off, size_t len);

    /* ---- transport (main loop only) ---- */
    /* Sends one message (one frame) to the manager. */
    otpca_err (*send)(void *ctx, const uint8_t *p, size_t len);
    /* Receives one message, waiting at most timeout_ms; OTPCA_ERR_TIMEOUT if none came. */
    otpca_err (*recv)(void *ctx, uint8_t *p, size_t cap, size_t *len, int timeout_ms);

    /* ---- log (may be NULL; never given keys, seeds, PINs or codes) ---- */
    /* One line of text at a level. */
    void (*log)(void *ctx, otpca_node_log_level level, const char *msg);
} otpca_node_hal;

#endif
