/*
 * The manager's store: one SQLite file (the path comes from the manager's
 * config) that holds what a manager must not lose between two requests or
 * two windows. The trust list, built only from SyncBatches whose signature
 * the caller has verified: devices, and the seed boxes (PROTOCOL.md 5.1)
 * their sealed seeds belong to; the store keeps sealed seeds and each
 * batch's ephemeral key E, never a plaintext seed. The nonces seen in the
 * current window (replay protection that survives a restart). The journal
 * of records (PROTOCOL.md 7.3) until the cloud acknowledges them. The
 * manager's own audit chain (PROTOCOL.md 7.6). Named blobs (the lease, the
 * manager certificate).
 *
 * Durability: WAL with synchronous=FULL, so a commit that returned survives
 * kill -9 and power loss: commit the record of an issuance before its
 * response leaves. Group commit: begin, many calls, one commit (one fsync).
 *
 * Threads: one otpca_mstore per thread (open the same path again); WAL
 * lets the others read while one writes, and writers take turns (a busy
 * timeout). A snapshot is received by one handle, from begin to commit.
 */
#ifndef OTPCA_MANAGER_MSTORE_H
#define OTPCA_MANAGER_MSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "otpca/proto/seedbox.h"

typedef struct otpca_mstore otpca_mstore;

#define OTPCA_MSTORE_ID_MAX 64       /* serials, batch ids, audit actors */
#define OTPCA_MSTORE_CERT_MAX 2048   /* a record's DER certificate */
#define OTPCA_MSTORE_META_MAX 16384  /* a meta value */
#define OTPCA_MSTORE_DETAIL_MAX 512  /* an audit entry's detail */

/* ---- open, close, transactions ---- */

/* Opens (creating it mode 0600, and migrating it to the current schema)
 * the store at path. *out is NULL on failure: OTPCA_ERR_UNSUPPORTED for a
 * file at a newer schema than this build knows, OTPCA_ERR_CONFIG for a
 * file that is not a manager store (another SQLite database, the cloud's
 * store, not a database at all), OTPCA_ERR_IO if it cannot be created or
 * opened. ":memory:" gives a private in-memory store (tests). */
otpca_err otpca_mstore_open(const char *path, otpca_mstore **out) __attribute__((warn_unused_result));
/* Closes the handle (NULL and *p == NULL are accepted). A transaction
 * still open on it is rolled back; a snapshot not committed is never
 * applied (its staged rows wait for the next snapshot_begin). */
void otpca_mstore_destroy(otpca_mstore **p);
unsigned otpca_mstore_schema_version(otpca_mstore *st);

/* A transaction groups calls into one commit (one fsync): the manager
 * journals a run of issuances and sends their responses after the commit.
 * Every call outside one is its own transaction. begin takes the write
 * lock (other handles' writes wait, reads go on); no nesting
 * (OTPCA_ERR_STATE). A call that fails on its input leaves the transaction
 * as it was; one that fails half-way from below (I/O) spoils it: later
 * writes and the commit return OTPCA_ERR_STATE and it is rolled back. */
otpca_err otpca_mstore_begin(otpca_mstore *st) __attribute__((warn_unused_result));
otpca_err otpca_mstore_commit(otpca_mstore *st) __attribute__((warn_unused_result));
void otpca_mstore_rollback(otpca_mstore *st);

/* ---- trust list ---- */

/* A device as the manager knows it. Cloud fields come from the latest
 * batch or Notice; last_step, failures, cert_hash and enrolled_here are
 * also written by the manager itself (accept, fail, enrolled). */
typedef struct otpca_mdevice {
    char serial[OTPCA_MSTORE_ID_MAX + 1];
    uint64_t seq;            /* the cloud's change-log sequence of this state */
    int state;               /* OTPCA_DEV_APPROVED .. OTPCA_DEV_LOCKED */
    uint8_t mac[8];
    size_t mac_len;          /* 6, 8, or 0 if the batch had none */
    uint8_t pubkey[OTPCA_P256_PUB_LEN]; /* uncompressed; the product key of an unclaimed batch device */
    size_t pubkey_len;       /* 65, or 0 if none */
    char batch[OTPCA_MSTORE_ID_MAX + 1]; /* "" if none */
    uint8_t seed[OTPCA_SEEDBOX_SEALED_MAX]; /* the sealed seed (C || T), opened with the box's PRK */
    size_t seed_len;         /* 32..80, or 0: no seed (e.g. revoked) */
    uint64_t box;            /* the seed's box id (otpca_mstore_boxes); 0 if no seed */
    uint8_t eph[OTPCA_P256_PUB_LEN]; /* the box's E (seedkey) when seed_len != 0 */
    unsigned digits, period, algorithm; /* TOTP: 6..8, seconds, 1 SHA-1 / 2 SHA-256 */
    uint64_t last_step;      /* last accepted TOTP time step (0: none) */
    uint32_t failures;
    uint8_t cert_hash[OTPCA_HASH_LEN]; /* SHA-256 of the current certificate */
    int has_cert;
    int enrolled_here;       /* this manager issued the current certificate and it was confirmed */
    uint64_t revoked_at;     /* state revoked: when the cloud revoked it (0: not said) */
    unsigned revoke_reason;  /* state revoked: RFC 5280 CRLReason */
    int unclaimed;           /* a batch device not claimed yet: pubkey is its batch's product key */
} otpca_mdevice;

/* Applies a verified delta (kind OTPCA_SYNC_DELTA) in one transaction (or
 * the caller's): the batch's seed box (if it carries a seedkey), every
 * entry upserted in its latest state (state 5, deleted, removes the
 * device), sync_seq = b->to. Entries come from b->entries.items (an array
 * of otpca_device_entry) or, if NULL, its decoded raw array; 33-byte keys
 * are stored uncompressed.
 *
 * Merging an entry into the device the manager holds:
 *  - last_step = max(stored, entry): a sync never re-opens a TOTP step the
 *    manager accepted (the cloud may not have its record yet);
 *  - failures = max(stored, entry), except when the cloud unlocked the
 *    device (stored locked, entry approved or enrolled, and this journal
 *    holds no unacknowledged LOCKED record for it): then the cloud's;
 *  - an entry older than the stored state (entry seq < device seq, e.g.
 *    after a Notice) changes nothing but the two maxima above;
 *  - revoked or locked from the cloud always wins; a device locked here
 *    stays locked while its LOCKED record is unacknowledged (the cloud
 *    will lock it when that arrives), so journal that record in the same
 *    transaction as the lock; a device enrolled here stays enrolled, and
 *    keeps the certificate hash issued here, while the entry's last_step
 *    is older than the manager's (the cloud has not seen the issuance).
 *
 * OTPCA_ERR_STATE if b->from is not the current sync_seq (nothing is
 * applied: ask again from sync_seq), or a snapshot is open on the handle;
 * OTPCA_ERR_INVALID_ARG for another kind, to < from, an entry out of
 * range (seq outside (from, to], a bad serial, a seed without seedkey);
 * OTPCA_ERR_BAD_KEY for a seedkey or device key that is not on P-256. */
otpca_err otpca_mstore_apply_delta(otpca_mstore *st, const otpca_sync_batch *b) __attribute__((warn_unused_result));

/* A snapshot arrives in chunks and is applied only when complete: begin
 * clears the staging area, each chunk (kind OTPCA_SYNC_SNAPSHOT) goes
 * there (and its seed box into the boxes), commit replaces the trust list
 * with the staging area in one transaction and sets sync_seq = to. Devices
 * absent from the snapshot are removed; those present are merged as for a
 * delta, except that a snapshot that goes back (to < sync_seq: another
 * registry) replaces their cloud fields whatever their seq. Until commit
 * the old trust list stays in force, also across a crash or a handle
 * destroyed mid-way. A first snapshot (empty trust list, no caller
 * transaction) skips the staging area: begin opens a transaction, the
 * chunks write the devices in it and commit commits it (a crash or an
 * abort rolls it back), so other handles see all of it or none; a chunk
 * that fails ends it (rolled back: chunk and commit then answer
 * OTPCA_ERR_STATE); begin again restarts a snapshot. chunk and commit without begin on this
 * handle: OTPCA_ERR_STATE. Entries in state 5 are skipped. */
otpca_err otpca_mstore_snapshot_begin(otpca_mstore *st) __attribute__((warn_unused_result));
otpca_err otpca_mstore_snapshot_chunk(otpca_mstore *st, const otpca_sync_batch *b) __attribute__((warn_unused_result));
otpca_err otpca_mstore_snapshot_commit(otpca_mstore *st, uint64_t to) __attribute__((warn_unused_result));
void otpca_mstore_snapshot_abort(otpca_mstore *st);

/* The change-log sequence the trust list is at (0: never synced). */
otpca_err otpca_mstore_sync_seq(otpca_mstore *st, uint64_t *seq) __attribute__((warn_unused_result));
/* OTPCA_ERR_NOT_FOUND if the serial is not in the trust list. */
otpca_err otpca_mstore_device_get(otpca_mstore *st, const char *serial, otpca_mdevice *d)
    __attribute__((warn_unused_result));
/* Device counts per state: counts[OTPCA_DEV_APPROVED..OTPCA_DEV_LOCKED],
 * counts[0] = total. */
otpca_err otpca_mstore_device_count(otpca_mstore *st, uint64_t counts[5]) __attribute__((warn_unused_result));

/* Calls fn for every seed box a device refers to, in id order (the manager
 * derives each box's PRK once per window, by ECDH in its token); fn
 * returning non-zero stops. Ids are never reused. */
typedef int (*otpca_mstore_box_fn)(uint64_t id, const uint8_t eph[OTPCA_P256_PUB_LEN], void *arg);
otpca_err otpca_mstore_boxes(otpca_mstore *st, otpca_mstore_box_fn fn, void *arg) __attribute__((warn_unused_result));

/* Accepts TOTP step `step` for the device only if it is newer than the
 * last accepted one and the device is approved or enrolled (one
 * conditional write: two requests with the same code race on the row and
 * one wins): OTPCA_ERR_STATE if not, NOT_FOUND if unknown. cert_hash (may
 * be NULL: a Rejoin issues none) becomes the device's certificate hash. */
otpca_err otpca_mstore_device_accept(otpca_mstore *st, const char *serial, uint64_t step,
                                     const uint8_t cert_hash[OTPCA_HASH_LEN]) __attribute__((warn_unused_result));
/* Counts one failure: *failures = the new count; an approved or enrolled
 * device whose count reaches lockout (>= 1) becomes locked, and *locked = 1
 * (only for the call that locked it: journal a LOCKED record then, in the
 * same transaction). NOT_FOUND if unknown. */
otpca_err otpca_mstore_device_fail(otpca_mstore *st, const char *serial, uint32_t lockout, uint32_t *failures,
                                   int *locked) __attribute__((warn_unused_result));
/* A verified EnrollConfirm: the device becomes enrolled with this
 * certificate, by this manager. OTPCA_ERR_STATE unless it is approved or
 * enrolled; NOT_FOUND if unknown. */
otpca_err otpca_mstore_device_enrolled(otpca_mstore *st, const char *serial, const uint8_t cert_hash[OTPCA_HASH_LEN])
    __attribute__((warn_unused_result));
/* A verified EnrollConfirm of a KeyUpdate: as enrolled, and the device key
 * becomes pubkey (65 bytes, uncompressed); the old key and certificate are
 * no longer accepted. */
otpca_err otpca_mstore_device_key_updated(otpca_mstore *st, const char *serial, const uint8_t cert_hash[OTPCA_HASH_LEN],
                                          const uint8_t pubkey[OTPCA_P256_PUB_LEN]) __attribute__((warn_unused_result));
/* A verified Notice: state (OTPCA_DEV_APPROVED .. OTPCA_DEV_LOCKED) as of
 * change-log sequence seq (the Notice's key 1); for a revocation also its
 * time (0: not said) and CRLReason (the Notice's keys 4 and 5). Leaving locked for
 * approved or enrolled is an unlock: failures restart from 0. Refused with
 * OTPCA_ERR_STATE (nothing changes): a stale Notice (seq older than the
 * device's), an unlock while this journal holds an unacknowledged LOCKED
 * record for the device. NOT_FOUND if unknown (the next delta has it). */
otpca_err otpca_mstore_device_set_state(otpca_mstore *st, const char *serial, int state, uint64_t seq,
                                        uint64_t revoked_at, unsigned reason) __attribute__((warn_unused_result));

/* ---- the manager's CRL ---- */

/* A certificate this journal holds (an issuance, record kind 1 or 4) of a
 * device the trust list says is revoked: once listed it stays listed,
 * whatever later syncs or scopes say (the caller drops it from a CRL once
 * the certificate has expired). */
typedef struct otpca_mcrl_entry {
    char serial[OTPCA_MSTORE_ID_MAX + 1]; /* the device */
    uint8_t cert[OTPCA_MSTORE_CERT_MAX];
    size_t cert_len;
    uint64_t revoked_at;
    unsigned reason; /* RFC 5280 CRLReason */
} otpca_mcrl_entry;
typedef int (*otpca_mcrl_fn)(const otpca_mcrl_entry *e, void *arg);
/* Calls fn for each, in journal order; fn returning non-zero stops. */
otpca_err otpca_mstore_crl_scan(otpca_mstore *st, otpca_mcrl_fn fn, void *arg) __attribute__((warn_unused_result));
otpca_err otpca_mstore_crl_count(otpca_mstore *st, uint64_t *n) __attribute__((warn_unused_result));

/* ---- nonces seen in this window ---- */

/* OTPCA_ERR_OK for a new nonce (now remembered with time), OTPCA_ERR_EXISTS
 * if seen before. */
otpca_err otpca_mstore_nonce_add(otpca_mstore *st, const uint8_t nonce[OTPCA_NONCE_LEN], uint64_t time)
    __attribute__((warn_unused_result));
/* Calls fn for every nonce remembered with a time from `since` on (a
 * window starting again loads them); fn returning non-zero stops. */
typedef int (*otpca_mstore_nonce_fn)(const uint8_t nonce[OTPCA_NONCE_LEN], uint64_t time, void *arg);
otpca_err otpca_mstore_nonces(otpca_mstore *st, uint64_t since, otpca_mstore_nonce_fn fn, void *arg)
    __attribute__((warn_unused_result));
/* Forgets nonces remembered with a time before `before`. */
otpca_err otpca_mstore_nonce_prune(otpca_mstore *st, uint64_t before) __attribute__((warn_unused_result));

/* ---- journal of records ---- */

/* A record (PROTOCOL.md 7.3 Record) and where it stands. */
typedef struct otpca_mrecord {
    uint8_t id[OTPCA_ID16_LEN];
    uint8_t window[OTPCA_ID16_LEN];
    int kind;                /* OTPCA_REC_ISSUED .. OTPCA_REC_LOCKED */
    char serial[OTPCA_MSTORE_ID_MAX + 1];
    uint64_t time;
    uint8_t cert[OTPCA_MSTORE_CERT_MAX]; /* DER, issued and key updated */
    size_t cert_len;         /* 0: none */
    int has_step;
    uint64_t step;           /* the TOTP step accepted */
    int has_reason;
    unsigned reason;         /* rejected: 0..255 (PROTOCOL.md 8.2) */
    int has_audit;
    uint8_t audit[OTPCA_HASH_LEN]; /* hash of the manager's audit entry for the record */
    uint8_t pubkey[OTPCA_P256_PUB_LEN]; /* the new key (key updated, claim); stored uncompressed */
    size_t pubkey_len;       /* 0, 33 or 65 on add; 0 or 65 as read */
    /* Read only (filled in by get and the pending walk; ignored on add): */
    uint8_t cert_hash[OTPCA_HASH_LEN]; /* SHA-256 of cert, if cert_len */
    int uploaded;            /* the cloud acknowledged it */
    uint64_t seq;            /* journal order */
} otpca_mrecord;

/* Journals a record, idempotent by id: OTPCA_ERR_OK for a new one or an
 * exact repeat (*dup = 1; dup may be NULL), OTPCA_ERR_EXISTS for an id
 * journalled with other content. Durable when the enclosing transaction
 * commits. */
otpca_err otpca_mstore_record_add(otpca_mstore *st, const otpca_mrecord *r, int *dup) __attribute__((warn_unused_result));
/* OTPCA_ERR_NOT_FOUND if no record has this id. */
otpca_err otpca_mstore_record_get(otpca_mstore *st, const uint8_t id[OTPCA_ID16_LEN], otpca_mrecord *r)
    __attribute__((warn_unused_result));
/* Calls fn for the records the cloud has not acknowledged, oldest first,
 * at most limit; fn returning non-zero stops after that record. */
typedef int (*otpca_mrecord_fn)(const otpca_mrecord *r, void *arg);
otpca_err otpca_mstore_records_pending(otpca_mstore *st, size_t limit, otpca_mrecord_fn fn, void *arg)
    __attribute__((warn_unused_result));
/* Marks records acknowledged (a RecordAck's ids); unknown ids are ignored.
 * Records stay journalled (a late EnrollConfirm needs its record). */
otpca_err otpca_mstore_records_acked(otpca_mstore *st, const uint8_t (*ids)[OTPCA_ID16_LEN], size_t n)
    __attribute__((warn_unused_result));

/* ---- audit chain ---- */

/* Appends an AuditEntry: seq = previous + 1, prev = the previous entry's
 * hash; hash (may be NULL) = its own (otpca_audit_entry_hash), what the
 * record it concerns carries as key 7. subject, detail and window may be
 * NULL. OTPCA_ERR_INVALID_ARG if the entry would not encode (actor or
 * subject not an id, event 0, detail too long or not UTF-8). */
otpca_err otpca_mstore_audit_append(otpca_mstore *st, uint64_t time, const char *actor, unsigned event,
                                    const char *subject, const char *detail, const uint8_t window[OTPCA_ID16_LEN],
                                    uint8_t hash[OTPCA_HASH_LEN]) __attribute__((warn_unused_result));
/* Recomputes the whole chain: OTPCA_ERR_OK, or OTPCA_ERR_SIGNATURE with
 * *bad_seq = the first entry that does not match (changed, removed,
 * reordered, or cut off the end). entries and bad_seq may be NULL. */
otpca_err otpca_mstore_audit_verify(otpca_mstore *st, uint64_t *entries, uint64_t *bad_seq)
    __attribute__((warn_unused_result));

/* ---- meta: named blobs (the lease, the manager certificate) ---- */

/* key: 1..64 bytes. NOT_FOUND if absent; BUFFER_TOO_SMALL if the value is
 * longer than cap (*len = its length then); INVALID_ARG for a reserved
 * key (schema_version, sync_seq, audit_head: the store's own). */
otpca_err otpca_mstore_meta_get(otpca_mstore *st, const char *key, uint8_t *buf, size_t cap, size_t *len)
    __attribute__((warn_unused_result));
/* Sets or replaces a value (1..OTPCA_MSTORE_META_MAX bytes). */
otpca_err otpca_mstore_meta_put(otpca_mstore *st, const char *key, const uint8_t *val, size_t len)
    __attribute__((warn_unused_result));

#endif
