/*
 * The node HAL on POSIX hosts: the token through libotpca-token (the
 * node's own PKCS#11 token: device key, TOTP seed, keys generated for
 * KeyUpdate/Claim) or a software key file for builds without a secure
 * element; flash as a file image (pread/pwrite, fsync after each write);
 * ZeroMQ DEALER transport with a receive timeout; the clock from
 * CLOCK_REALTIME; the log through otpca's common log with the node's
 * serial as its tag. Also the driver loop that runs one core flow over
 * this HAL, bounded by the core's own timers.
 */
#ifndef OTPCA_NODE_POSIX_H
#define OTPCA_NODE_POSIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otpca/node/hal.h"
#include "otpca/node/node.h"
#include "otpca/token/token.h"

typedef struct otpca_node_posix otpca_node_posix;

typedef struct otpca_node_posix_config {
    const char *serial;     /* the node (log tag; soft key file and flash names) */
    /* The token: a PKCS#11 URI (pin-source in it) on the process's module, */
    otpca_p11_t *p11;
    const char *token_uri;
    /* or a software key file (lines "seed = HEX", "key = HEX" 32-byte scalars), created if missing. */
    const char *soft_key_file;
    bool hmac_sha256;        /* TOTP HMAC algorithm (default SHA-1) */
    const char *flash_path;  /* file image, created (0600, erased) if missing */
    uint32_t flash_size;     /* bytes: two slots of OTPCA_NODE_SLOT_SIZE at least */
    const char *endpoint;    /* the manager's node endpoint (tcp://...) */
    void *zmq_ctx;           /* a ZeroMQ context to share (NULL: one of its own) */
} otpca_node_posix_config;

/* Opens the token (or soft key), the flash image and the socket, and
 * fills *hal. Errors: token errors, OTPCA_ERR_IO, OTPCA_ERR_INVALID_ARG. */
__attribute__((warn_unused_result)) otpca_err otpca_node_posix_new(const otpca_node_posix_config *cfg,
                                                                   otpca_node_posix **out);
void otpca_node_posix_destroy(otpca_node_posix **p);
/* The HAL bound to this port (valid until destroy). */
const otpca_node_hal *otpca_node_posix_hal(otpca_node_posix *p);
/* The factory device key: the token's "device-key" (or the soft file's first key). */
__attribute__((warn_unused_result)) otpca_err otpca_node_posix_factory_pub(otpca_node_posix *p,
                                                                           uint8_t pub[OTPCA_NODE_PUB_LEN]);

/* Runs one flow of n to DONE or FAILED over p's transport and clock:
 * sends, waits until the core's deadline, hands answers in. Bounded by
 * the core's resends and timeouts. The final error (OTPCA_ERR_OK on DONE). */
otpca_err otpca_node_posix_run(otpca_node_posix *p, otpca_node_ctx *n, otpca_node_flow flow);

/* Unix time in ms (the host clock). */
uint64_t otpca_node_posix_now(void);

#endif
