/*
 * The node's credential store on flash: two slots, A and B, each one erase
 * unit (or more) long. A slot holds one credential (certificate, the key
 * it certifies, the network key, the issuance record, whether the manager
 * confirmed it) behind a header with a generation counter, and ends with
 * a SHA-256 over everything before it. The current credential is the
 * valid slot with the highest generation. A new credential is written to
 * the other slot (erase, then program, the hash last) with generation + 1:
 * it becomes current only when its last byte is on flash, and the previous
 * credential stays intact in its slot until the next write. So a power cut
 * at any byte of an erase or a write leaves the old credential or the new
 * one current, never none.
 *
 * Slot layout (little-endian):
 *   0  magic "OTPS"   4  version 1   5  flags (bit 0: confirmed)   6  reserved (2)
 *   8  generation (4)   12 payload length (4)   16 payload   16+len  SHA-256(0 .. 16+len)
 *
 * C99, no malloc; flash through the HAL.
 */
#ifndef OTPCA_NODE_SLOTS_H
#define OTPCA_NODE_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otpca/node/hal.h"

#define OTPCA_NODE_CERT_MAX 2048
#define OTPCA_NODE_NETKEY_MAX 64
/* Bytes one credential takes in a slot (header, largest payload, hash). */
#define OTPCA_NODE_SLOT_MIN (16 + 2 + OTPCA_NODE_CERT_MAX + 65 + 8 + 16 + 1 + OTPCA_NODE_NETKEY_MAX + 4 + 32)
/* A slot size that fits OTPCA_NODE_SLOT_MIN and common erase units. */
#define OTPCA_NODE_SLOT_SIZE 4096

#define OTPCA_NODE_CRED_CONFIRMED 0x01u

/* One credential as the core uses it. */
typedef struct otpca_node_cred {
    uint32_t generation;
    uint8_t flags;                         /* OTPCA_NODE_CRED_* */
    uint8_t pub[OTPCA_NODE_PUB_LEN];       /* the device key the certificate certifies */
    uint8_t mgr_kid[OTPCA_NODE_KID_LEN];   /* key id of the manager that issued it */
    uint8_t record[16];                    /* issuance record id (for EnrollConfirm) */
    uint8_t netkey[OTPCA_NODE_NETKEY_MAX]; /* the network key (secret) */
    uint8_t netkey_len;
    uint32_t netkey_epoch;
    uint16_t cert_len;
    uint8_t cert[OTPCA_NODE_CERT_MAX]; /* the node certificate, DER */
} otpca_node_cred;

typedef struct otpca_node_slots {
    const otpca_node_hal *hal;
    uint32_t base;      /* flash offset of slot A; slot B follows at base + slot_size */
    uint32_t slot_size; /* >= OTPCA_NODE_SLOT_MIN, a multiple of the erase unit */
    uint8_t *scratch;   /* slot_size bytes of caller memory */
    int current;        /* 0 (A), 1 (B), or -1: no valid slot */
    uint32_t generation; /* of the current slot */
} otpca_node_slots;

/* Binds the store to its flash range and scratch memory (slot_size bytes)
 * and finds the current slot. OTPCA_ERR_INVALID_ARG for a slot too small;
 * flash errors as the HAL reports them. No valid slot is not an error. */
__attribute__((warn_unused_result)) otpca_err otpca_node_slots_init(otpca_node_slots *s, const otpca_node_hal *hal,
                                                                    uint32_t base, uint32_t slot_size,
                                                                    uint8_t *scratch);
/* Reads the current credential into *out (OTPCA_ERR_NOT_FOUND if none). */
__attribute__((warn_unused_result)) otpca_err otpca_node_slots_load(otpca_node_slots *s, otpca_node_cred *out);
/* Reads the other slot's credential, if it is valid (the previous one,
 * usable until the manager confirms the current one). */
__attribute__((warn_unused_result)) otpca_err otpca_node_slots_load_previous(otpca_node_slots *s,
                                                                             otpca_node_cred *out);
/* Writes c to the inactive slot with the next generation (c->generation is
 * set) and makes it current. On error the previous current stays current. */
__attribute__((warn_unused_result)) otpca_err otpca_node_slots_commit(otpca_node_slots *s, otpca_node_cred *c);
/* Erases both slots (factory reset). */
__attribute__((warn_unused_result)) otpca_err otpca_node_slots_wipe(otpca_node_slots *s);

#endif
