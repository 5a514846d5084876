/*
 * The last answer each device got in this window (internal to the
 * manager; PROTOCOL.md 6.8): a node whose answer was lost sends the same
 * request again (same nonce, same bytes) and gets the same answer again
 * rather than a second certificate or an AUTH_FAILED. Kept per serial, so
 * the memory is bounded by the trust list, only until the window closes.
 * Thread-safe.
 */
#ifndef OTPCA_MANAGER_ANSWERS_H
#define OTPCA_MANAGER_ANSWERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct mgr_answers mgr_answers;

mgr_answers *mgr_answers_new(void);
void mgr_answers_destroy(mgr_answers **p);
/* Remembers answer as serial's last, for the request whose SHA-256 is
 * req_hash (replacing the one before). 0, or -1 without memory (then the
 * request just cannot be answered again). */
int mgr_answers_put(mgr_answers *a, const char *serial, const uint8_t req_hash[32], const uint8_t *answer, size_t len);
/* The answer to the exact request req_hash, copied into out (cap bytes):
 * its length, or 0 if serial's last answer was to another request. */
size_t mgr_answers_get(mgr_answers *a, const char *serial, const uint8_t req_hash[32], uint8_t *out, size_t cap);

#endif
