/*
 * otpca protocol messages (PROTOCOL.md is normative; this header mirrors
 * it). Every message is a CBOR map with unsigned integer keys; key 0 holds
 * the message type. Each message has a C struct and a descriptor (a table
 * of its fields with their types and limits) that drives one generic
 * encoder and one generic, strict decoder.
 *
 * Field conventions in the structs:
 *   - otpca_buf fields (byte and text strings) are present iff p != NULL;
 *     decoded ones point into the input buffer, which must outlive them.
 *   - uint64_t and bool fields are present iff their bit is set in
 *     `present` (OTPCA_MSG_BIT(key)); required fields are always written.
 *   - otpca_list fields (arrays) are present iff items or raw.p is set; the
 *     decoder fills raw (the whole encoded array) and count, and
 *     otpca_list_next() walks the elements.
 * Decoders check everything a descriptor says (types, lengths, ranges,
 * counts, key order, required fields, no trailing bytes) and skip unknown
 * keys (at most OTPCA_MSG_UNKNOWN_KEYS of them and OTPCA_MSG_UNKNOWN_MAX bytes
 * of their values per map). One rule spans a message and its list: a
 * SyncBatch with an entry that carries a sealed seed (DeviceEntry key 6)
 * must carry the batch's seedkey (key 9); the decoder refuses one without
 * it and the encoder will not write one (both OTPCA_ERR_PROTO_MISSING), so
 * a decoded batch needs no second check before its seeds are opened.
 * Nothing here allocates memory.
 */
#ifndef OTPCA_PROTO_MSG_H
#define OTPCA_PROTO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otpca/proto/cbor.h"
#include "otpca/proto/cose.h"

/* Largest message on the node link and on the cloud link. */
#define OTPCA_MSG_NODE_MAX 2048
#define OTPCA_MSG_CLOUD_MAX (1024 * 1024)

/* Unknown keys a map may carry, and the bytes their values may take. */
#define OTPCA_MSG_UNKNOWN_KEYS 16
#define OTPCA_MSG_UNKNOWN_MAX 512

#define OTPCA_NONCE_LEN 16
#define OTPCA_ID16_LEN 16 /* window ids, record ids */
#define OTPCA_HASH_LEN 32
#define OTPCA_MSG_BIT(key) (UINT32_C(1) << (key))

typedef enum otpca_msg_type {
    /* node <-> manager */
    OTPCA_MSG_TIME_REQUEST = 1,
    OTPCA_MSG_TIME_RESPONSE = 2,
    OTPCA_MSG_ENROLL_REQUEST = 3,
    OTPCA_MSG_ENROLL_RESPONSE = 4,
    OTPCA_MSG_ENROLL_CONFIRM = 5,
    OTPCA_MSG_CONFIRM_ACK = 6,
    OTPCA_MSG_REJOIN = 7,
    OTPCA_MSG_KEY_UPDATE = 8,
    OTPCA_MSG_CLAIM = 9,
    OTPCA_MSG_ERROR = 15,
    /* manager <-> cloud */
    OTPCA_MSG_WINDOW_OPEN = 20,
    OTPCA_MSG_WINDOW_LEASE = 21,
    OTPCA_MSG_SYNC_REQUEST = 22,
    OTPCA_MSG_SYNC_BATCH = 23,
    OTPCA_MSG_RECORD_UPLOAD = 24,
    OTPCA_MSG_RECORD_ACK = 25,
    OTPCA_MSG_NOTICE = 26,
    OTPCA_MSG_AUDIT_ENTRY = 27,
    OTPCA_MSG_WINDOW_CLOSE = 28,
    OTPCA_MSG_CRL_PUBLISH = 29
} otpca_msg_type;

/* Error codes on the wire (Error message, key 1). */
typedef enum otpca_wire_err {
    OTPCA_WIRE_BAD_REQUEST = 1,   /* malformed, oversize; an unknown type on the node link */
    OTPCA_WIRE_AUTH_FAILED = 2,   /* any authentication or authorisation failure */
    OTPCA_WIRE_WINDOW_CLOSED = 3, /* no enrollment window is open */
    OTPCA_WIRE_BUSY = 4,          /* try again after retry_after seconds */
    OTPCA_WIRE_UNSUPPORTED = 5,   /* understood but not offered here */
    OTPCA_WIRE_INTERNAL = 6,      /* the server failed; try again later */
    /* cloud link only: precise, because both ends are authenticated */
    OTPCA_WIRE_UNKNOWN_MANAGER = 16,
    OTPCA_WIRE_OPERATOR_REJECTED = 17,
    OTPCA_WIRE_LEASE_INVALID = 18,
    OTPCA_WIRE_SIGNATURE = 19,
    OTPCA_WIRE_NOT_FOUND = 20,
    OTPCA_WIRE_CONFLICT = 21
} otpca_wire_err;

/* Device states in the trust list. */
typedef enum otpca_dev_state {
    OTPCA_DEV_APPROVED = 1,
    OTPCA_DEV_ENROLLED = 2,
    OTPCA_DEV_REVOKED = 3,
    OTPCA_DEV_LOCKED = 4,
    OTPCA_DEV_DELETED = 5
} otpca_dev_state;

typedef enum otpca_record_kind {
    OTPCA_REC_ISSUED = 1,
    OTPCA_REC_CONFIRMED = 2,
    OTPCA_REC_REJOINED = 3,
    OTPCA_REC_KEY_UPDATED = 4,
    OTPCA_REC_REJECTED = 5,
    OTPCA_REC_LOCKED = 6
} otpca_record_kind;

typedef enum otpca_notice_kind {
    OTPCA_NOTICE_REVOKED = 1,
    OTPCA_NOTICE_APPROVED = 2,
    OTPCA_NOTICE_LOCKED = 3,
    OTPCA_NOTICE_UNLOCKED = 4
} otpca_notice_kind;

typedef enum otpca_sync_kind { OTPCA_SYNC_DELTA = 1, OTPCA_SYNC_SNAPSHOT = 2 } otpca_sync_kind;

typedef struct otpca_list {
    const void *items; /* encode: array of element structs or otpca_buf */
    size_t count;
    otpca_buf raw; /* decode: the encoded array; encode: used if items == NULL */
} otpca_list;

/* ---- node <-> manager ---- */

typedef struct otpca_time_request {
    uint32_t present;
    otpca_buf nonce; /* 1 */
} otpca_time_request;

typedef struct otpca_time_response {
    uint32_t present;
    otpca_buf nonce; /* 1 */
    uint64_t time;   /* 2 */
} otpca_time_response;

/* EnrollRequest (3) and Claim (9). */
typedef struct otpca_enroll_request {
    uint32_t present;
    otpca_buf nonce;  /* 1 */
    uint64_t time;    /* 2 */
    otpca_buf serial; /* 3 */
    otpca_buf mac;    /* 4 */
    otpca_buf pubkey; /* 5 */
    uint64_t totp;    /* 6 */
    otpca_buf fw;     /* 7 */
    otpca_buf ca;     /* 8, optional: kid of the manager certificate held */
} otpca_enroll_request;

typedef struct otpca_enroll_response {
    uint32_t present;
    otpca_buf nonce;       /* 1 */
    otpca_buf record;      /* 2 */
    uint64_t time;         /* 3 */
    otpca_buf cert;        /* 4, optional (absent for Rejoin) */
    otpca_buf netkey;      /* 5: ECIES envelope */
    uint64_t netkey_epoch; /* 6 */
} otpca_enroll_response;

typedef struct otpca_enroll_confirm {
    uint32_t present;
    otpca_buf nonce;     /* 1 */
    otpca_buf record;    /* 2 */
    uint64_t time;       /* 3 */
    otpca_buf cert_hash; /* 4 */
} otpca_enroll_confirm;

typedef struct otpca_confirm_ack {
    uint32_t present;
    otpca_buf nonce;  /* 1 */
    otpca_buf record; /* 2 */
} otpca_confirm_ack;

typedef struct otpca_rejoin {
    uint32_t present;
    otpca_buf nonce;     /* 1 */
    uint64_t time;       /* 2 */
    otpca_buf serial;    /* 3 */
    otpca_buf cert_hash; /* 4 */
    uint64_t totp;       /* 5 */
} otpca_rejoin;

typedef struct otpca_key_update {
    uint32_t present;
    otpca_buf nonce;     /* 1 */
    uint64_t time;       /* 2 */
    otpca_buf serial;    /* 3 */
    otpca_buf cert_hash; /* 4: of the certificate being replaced */
    otpca_buf pubkey;    /* 5: the new key */
    uint64_t totp;       /* 6 */
} otpca_key_update;

typedef struct otpca_error_msg {
    uint32_t present;
    uint64_t code;        /* 1 */
    otpca_buf nonce;      /* 2, optional */
    uint64_t retry_after; /* 3, optional, seconds */
    otpca_buf detail;     /* 4, optional; cloud link only */
} otpca_error_msg;

/* ---- manager <-> cloud ---- */

typedef struct otpca_window_open {
    uint32_t present;
    otpca_buf nonce;      /* 1 */
    uint64_t time;        /* 2 */
    otpca_buf manager;    /* 3 */
    otpca_buf operator_;  /* 4 */
    uint64_t totp;        /* 5 */
    uint64_t duration;    /* 6, seconds */
    uint64_t max_enroll;  /* 7, optional */
    otpca_list scope;     /* 8, optional: batch ids */
} otpca_window_open;

typedef struct otpca_window_lease {
    uint32_t present;
    otpca_buf nonce;     /* 1 */
    otpca_buf window;    /* 2 */
    otpca_buf manager;   /* 3 */
    otpca_buf operator_; /* 4 */
    uint64_t not_before; /* 5 */
    uint64_t not_after;  /* 6 */
    uint64_t max_enroll; /* 7 */
    otpca_list scope;    /* 8, optional */
    bool offline;        /* 9, optional */
} otpca_window_lease;

typedef struct otpca_sync_request {
    uint32_t present;
    otpca_buf window; /* 1 */
    uint64_t since;   /* 2 */
    uint64_t max;     /* 3, optional */
    otpca_buf cursor; /* 4, optional */
} otpca_sync_request;

typedef struct otpca_device_entry {
    uint32_t present;
    otpca_buf serial;    /* 0 */
    uint64_t seq;        /* 1 */
    uint64_t state;      /* 2 */
    otpca_buf mac;       /* 3 */
    otpca_buf pubkey;    /* 4 */
    otpca_buf batch;     /* 5 */
    otpca_buf seed;      /* 6: sealed seed, 32..80 bytes (seedbox.h; needs the batch's seedkey) */
    uint64_t digits;     /* 7 */
    uint64_t period;     /* 8 */
    uint64_t algorithm;  /* 9: 1 SHA-1, 2 SHA-256 */
    uint64_t last_step;  /* 10 */
    uint64_t failures;   /* 11 */
    otpca_buf cert_hash; /* 12 */
    uint64_t revoked_at; /* 13: state 3, when the registry revoked it */
    uint64_t revoke_reason; /* 14: state 3, RFC 5280 CRLReason */
    bool unclaimed;      /* 15: key 4 is the batch's product key (6.7) */
} otpca_device_entry;

typedef struct otpca_sync_batch {
    uint32_t present;
    otpca_buf window;   /* 1 */
    uint64_t kind;      /* 2 */
    uint64_t from;      /* 3 */
    uint64_t to;        /* 4 */
    otpca_list entries; /* 5: otpca_device_entry */
    bool more;          /* 6 */
    otpca_buf cursor;   /* 7, optional */
    uint64_t chunk;     /* 8, optional */
    otpca_buf seedkey;  /* 9: E of the batch's seed box, 65 bytes; required if an entry has key 6 */
} otpca_sync_batch;

typedef struct otpca_record {
    uint32_t present;
    otpca_buf id;     /* 0 */
    uint64_t kind;    /* 1 */
    otpca_buf serial; /* 2 */
    uint64_t time;    /* 3 */
    otpca_buf cert;   /* 4 */
    uint64_t step;    /* 5 */
    uint64_t reason;  /* 6 */
    otpca_buf audit;  /* 7 */
    otpca_buf pubkey; /* 8 */
} otpca_record;

typedef struct otpca_record_upload {
    uint32_t present;
    otpca_buf window;   /* 1 */
    otpca_buf manager;  /* 2 */
    otpca_list records; /* 3: otpca_record */
} otpca_record_upload;

typedef struct otpca_record_ack {
    uint32_t present;
    otpca_buf window;   /* 1 */
    otpca_list ids;     /* 2: otpca_buf, 16 bytes each */
    otpca_list flagged; /* 3, optional */
} otpca_record_ack;

typedef struct otpca_notice {
    uint32_t present;
    uint64_t seq;     /* 1 */
    uint64_t kind;    /* 2 */
    otpca_buf serial; /* 3 */
    uint64_t time;    /* 4 */
    uint64_t reason;  /* 5, optional */
} otpca_notice;

typedef struct otpca_audit_entry {
    uint32_t present;
    uint64_t seq;      /* 1 */
    otpca_buf prev;    /* 2 */
    uint64_t time;     /* 3 */
    otpca_buf actor;   /* 4 */
    uint64_t event;    /* 5 */
    otpca_buf subject; /* 6, optional */
    otpca_buf detail;  /* 7, optional */
    otpca_buf window;  /* 8, optional */
} otpca_audit_entry;

typedef struct otpca_window_close {
    uint32_t present;
    otpca_buf window;  /* 1 */
    uint64_t time;     /* 2 */
    uint64_t enrolled; /* 3 */
    uint64_t rejected; /* 4 */
} otpca_window_close;

#define OTPCA_CRL_DER_MAX (512 * 1024)

typedef struct otpca_crl_publish {
    uint32_t present;
    otpca_buf window;  /* 1 */
    otpca_buf manager; /* 2 */
    uint64_t number;   /* 3: the CRL's cRLNumber */
    otpca_buf crl;     /* 4: DER, 1..OTPCA_CRL_DER_MAX bytes */
} otpca_crl_publish;

/* ---- descriptors and the generic codec ---- */

typedef struct otpca_msg_desc otpca_msg_desc;

extern const otpca_msg_desc otpca_desc_time_request, otpca_desc_time_response,
    otpca_desc_enroll_request, otpca_desc_enroll_response, otpca_desc_enroll_confirm,
    otpca_desc_confirm_ack, otpca_desc_rejoin, otpca_desc_key_update, otpca_desc_claim,
    otpca_desc_error, otpca_desc_window_open, otpca_desc_window_lease, otpca_desc_sync_request,
    otpca_desc_sync_batch, otpca_desc_record_upload, otpca_desc_record_ack, otpca_desc_notice,
    otpca_desc_audit_entry, otpca_desc_window_close, otpca_desc_crl_publish, otpca_desc_device_entry,
    otpca_desc_record;

/* The descriptor of a message type, or NULL. */
const otpca_msg_desc *otpca_msg_desc_of(unsigned type);
/* Its name ("EnrollRequest") and its largest encoded size. */
const char *otpca_msg_name(const otpca_msg_desc *d);
size_t otpca_msg_max_size(const otpca_msg_desc *d);

/* Encodes m (the struct of d) as a plain CBOR map. buf == NULL counts. */
__attribute__((warn_unused_result)) otpca_err otpca_msg_encode(const otpca_msg_desc *d,
                                                               const void *m, uint8_t *buf,
                                                               size_t cap, size_t *len);
/* Decodes exactly one message of descriptor d from in[0..len) into m; on
 * any failure m is all zero. */
__attribute__((warn_unused_result)) otpca_err otpca_msg_decode(const otpca_msg_desc *d,
                                                               const uint8_t *in, size_t len,
                                                               void *m);
/* The type (key 0) of an encoded message map, checked only that far. */
__attribute__((warn_unused_result)) otpca_err otpca_msg_peek_type(const uint8_t *in, size_t len,
                                                                  unsigned *type);
/* Encodes m as the payload of a COSE_Sign1 signed by s, in one pass. */
__attribute__((warn_unused_result)) otpca_err otpca_msg_sign(const otpca_msg_desc *d,
                                                             const void *m, const otpca_signer *s,
                                                             otpca_buf x5chain, uint8_t *buf,
                                                             size_t cap, size_t *len);

/* The audit chain's link (PROTOCOL.md 7.6): SHA-256 of e's complete
 * AuditEntry encoding (key 0 = 27 included), the value the next entry
 * carries in its key 2. Both the cloud's and the manager's chains use it,
 * so they hash the same bytes. Errors of the encoder (a field out of its
 * range, an actor that is not an id, a detail that is not UTF-8) are
 * returned as they are, and hash is then untouched. */
/* The id of the CONFIRMED record for the issuance record `issued`
 * (PROTOCOL.md 7.3): the first 16 bytes of SHA-256("otpca-confirmed-
 * record-id-v1" padded with '.' to 32 bytes || issued). A confirmation
 * repeated is the same record, and the cloud finds the issuance a
 * confirmation is for. */
void otpca_record_confirm_id(const uint8_t issued[OTPCA_ID16_LEN], uint8_t out[OTPCA_ID16_LEN]);

__attribute__((warn_unused_result)) otpca_err otpca_audit_entry_hash(const otpca_audit_entry *e,
                                                                     uint8_t hash[OTPCA_HASH_LEN]);

/* Iterating a decoded list. */
typedef struct otpca_list_iter {
    otpca_cbor_dec dec;
    size_t left;
} otpca_list_iter;

void otpca_list_iter_init(otpca_list_iter *it, const otpca_list *l);
/* Next element into *out (otpca_buf for string lists, the element struct
 * for map lists, decoded with elem). OTPCA_ERR_NOT_FOUND at the end. */
__attribute__((warn_unused_result)) otpca_err otpca_list_next(otpca_list_iter *it,
                                                              const otpca_msg_desc *elem,
                                                              void *out);

#endif
