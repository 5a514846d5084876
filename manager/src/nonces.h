/*
 * The request nonces a window has seen, in memory (internal to the
 * manager). The check must be atomic across workers and cost nothing next
 * to the crypto; the journal keeps a durable copy (written with the group
 * commit, read back when a window starts) so replays stay refused across
 * a restart. Thread-safe.
 */
#ifndef OTPCA_MANAGER_NONCES_H
#define OTPCA_MANAGER_NONCES_H

#include <stddef.h>
#include <stdint.h>

typedef struct mgr_nonces mgr_nonces;

mgr_nonces *mgr_nonces_new(void);
void mgr_nonces_destroy(mgr_nonces **p);
/* 0: new (now remembered with time t), 1: seen before, -1: out of memory
 * (treat as seen: refuse rather than risk a replay). */
int mgr_nonces_add(mgr_nonces *s, const uint8_t nonce[16], uint64_t t);
/* Forgets the nonces remembered with a time before `before` (a request
 * that old fails the skew check anyway). */
void mgr_nonces_prune(mgr_nonces *s, uint64_t before);
size_t mgr_nonces_count(mgr_nonces *s);

#endif
