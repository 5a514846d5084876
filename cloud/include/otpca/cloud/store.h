/*
 * The cloud registry's store: devices, batches, managers, operators, the
 * change log that trust-list sync reads, ingested records, leases and the
 * audit chain. One interface; backends are chosen by URL (`sqlite:PATH`
 * or a plain path: SQLite, WAL, one file; `postgresql://...` or
 * `postgres://...`: PostgreSQL through libpq, the URL as libpq reads it),
 * so callers never see which one.
 *
 * Seeds are stored only as sealed blobs (the caller seals them with the
 * store's seed key, seeds.h, before they get here); the store never sees a
 * plaintext seed. Every mutation of a device appends to the change log in
 * the same transaction, so `seq` is gap-free and monotonic and a sync from
 * sequence N sees every change after N exactly once (in its latest state).
 *
 * Threads: one otpca_store per thread (open the same URL again); SQLite's
 * WAL, and PostgreSQL, let them read while one writes.
 */
#ifndef OTPCA_CLOUD_STORE_H
#define OTPCA_CLOUD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"

typedef struct otpca_store otpca_store;

#define OTPCA_STORE_ID_MAX 64      /* serials, manager, operator, batch ids */
#define OTPCA_STORE_SEED_ENV_MAX 128 /* a sealed seed */
#define OTPCA_STORE_CERT_MAX 2048

/* Device states: the values of PROTOCOL.md's DeviceEntry key 2. */
enum { OTPCA_STORE_APPROVED = 1, OTPCA_STORE_ENROLLED = 2, OTPCA_STORE_REVOKED = 3,
       OTPCA_STORE_LOCKED = 4, OTPCA_STORE_DELETED = 5, OTPCA_STORE_PENDING = 6 };

typedef struct otpca_device {
    char serial[OTPCA_STORE_ID_MAX + 1];
    uint8_t mac[8];
    size_t mac_len;          /* 6 or 8 */
    uint8_t pubkey[65];      /* uncompressed SEC1; pubkey_len 0 for a batch device */
    size_t pubkey_len;
    char batch[OTPCA_STORE_ID_MAX + 1]; /* "" if none */
    int state;               /* OTPCA_STORE_*; PENDING = imported, not yet approved */
    uint8_t seed_env[OTPCA_STORE_SEED_ENV_MAX]; /* sealed TOTP seed */
    size_t seed_env_len;
    unsigned digits, period, algorithm; /* algorithm: 1 SHA-1, 2 SHA-256 */
    uint64_t last_step;      /* last accepted TOTP time step (0: none) */
    uint32_t failures;
    uint8_t cert_hash[32];   /* SHA-256 of the current certificate */
    int has_cert;
    char manager[OTPCA_STORE_ID_MAX + 1]; /* enrolling manager, "" if none */
    int flagged;             /* enrolled twice by different managers */
    uint64_t seq;            /* change-log sequence of this state */
    uint64_t revoked_at;     /* state REVOKED: when (seconds since the epoch), else 0 */
    unsigned revoke_reason;  /* state REVOKED: RFC 5280 CRLReason (0..10, not 7 or 8), else 0 */
} otpca_device;

typedef struct otpca_manager {
    char id[OTPCA_STORE_ID_MAX + 1];
    uint8_t curve_pub[32];   /* ZeroMQ CURVE public key */
    uint8_t ca_pub[65];      /* the manager CA key (uncompressed), signs its requests */
    uint8_t ca_cert[OTPCA_STORE_CERT_MAX];
    size_t ca_cert_len;
    int revoked;
} otpca_manager;

typedef struct otpca_operator {
    char id[OTPCA_STORE_ID_MAX + 1];
    uint8_t seed_env[OTPCA_STORE_SEED_ENV_MAX];
    size_t seed_env_len;
    unsigned digits, period, algorithm;
    uint64_t last_step;
} otpca_operator;

typedef struct otpca_batch {
    char id[OTPCA_STORE_ID_MAX + 1];
    uint8_t product_pub[65];
} otpca_batch;

/* An ingested record (PROTOCOL.md Record plus where it came from). */
typedef struct otpca_stored_record {
    uint8_t id[16];
    uint8_t window[16];
    char manager[OTPCA_STORE_ID_MAX + 1];
    int kind;
    char serial[OTPCA_STORE_ID_MAX + 1];
    uint64_t time;
    const uint8_t *cert; /* may be NULL */
    size_t cert_len;
    uint64_t step;
    int reason;
    int flagged; /* the cloud flagged it (double enrollment) */
    const uint8_t *pubkey; /* a KeyUpdate's new key, 65 bytes uncompressed, or NULL */
} otpca_stored_record;

typedef struct otpca_audit {
    uint64_t seq;
    uint8_t prev[32], hash[32];
    uint64_t time;
    char actor[OTPCA_STORE_ID_MAX + 1];
    unsigned event;
    char subject[OTPCA_STORE_ID_MAX + 1];
    char detail[513];
} otpca_audit;

/* Opens (creating and migrating to the current schema) the store at url.
 * *out is NULL on failure: OTPCA_ERR_UNSUPPORTED for a file or database at
 * a newer schema than this build knows, OTPCA_ERR_CONFIG for another
 * scheme, a malformed URL, or a file or database that is not an otpca
 * store, OTPCA_ERR_IO if the file cannot be created or opened or the
 * server cannot be reached. */
otpca_err otpca_store_open(const char *url, otpca_store **out) __attribute__((warn_unused_result));
void otpca_store_destroy(otpca_store **s);
/* The store URL as it may be shown (logs, errors): a URL's password
 * replaced by *** and its query string left out; a path as it is. Always
 * NUL-terminated (cut short to cap). */
void otpca_store_url_redact(const char *url, char *out, size_t cap) __attribute__((nonnull));
/* The schema version the store is at. */
unsigned otpca_store_schema_version(otpca_store *s);

/* Transactions group many calls (an import of a million rows is one
 * transaction per chunk); every call outside one is its own. begin takes
 * the write lock (other handles' writes wait, their reads go on); no
 * nesting (OTPCA_ERR_STATE). A call that fails on its input leaves the
 * transaction as it was; one that fails half-way from below (I/O) spoils
 * it: later writes and the commit return OTPCA_ERR_STATE, and it is rolled
 * back. */
otpca_err otpca_store_begin(otpca_store *s) __attribute__((warn_unused_result));
otpca_err otpca_store_commit(otpca_store *s) __attribute__((warn_unused_result));
void otpca_store_rollback(otpca_store *s);

/* ---- devices ---- */
/* Inserts a new device (OTPCA_ERR_EXISTS if the serial is known) and logs
 * the change; d->seq is set. */
otpca_err otpca_store_device_add(otpca_store *s, otpca_device *d) __attribute__((warn_unused_result));
/* Bulk import: the n devices added as n otpca_store_device_add calls in
 * order would add them (each d[i].seq set, the same change-log numbers),
 * with res[i] = what that call would have returned: OK, OTPCA_ERR_EXISTS,
 * OTPCA_ERR_NOT_FOUND (an unknown batch or manager) or
 * OTPCA_ERR_INVALID_ARG. On PostgreSQL a few round trips carry all of them
 * (COPY into a session table, then one statement), instead of one per
 * device. Outside a transaction they may commit together or one by one
 * (the backend's choice): a caller that needs all or none opens one.
 * Returns OK once every res[i] is set; any other value is a failure
 * from below (the res[] are then meaningless, and a transaction of the
 * caller's is spoiled). n at most OTPCA_STORE_ADD_MANY_MAX. */
#define OTPCA_STORE_ADD_MANY_MAX 10000
otpca_err otpca_store_device_add_many(otpca_store *s, otpca_device *d, size_t n, otpca_err *res)
    __attribute__((warn_unused_result));
otpca_err otpca_store_device_get(otpca_store *s, const char *serial, otpca_device *d)
    __attribute__((warn_unused_result));
/* Writes every field of d back (state, failures, last_step, cert, ...)
 * and logs the change; d->seq is set. OTPCA_ERR_NOT_FOUND if unknown. */
otpca_err otpca_store_device_update(otpca_store *s, otpca_device *d) __attribute__((warn_unused_result));
/* Calls fn for every device in serial order from `after` (exclusive; ""
 * for the start), at most limit devices; fn returning non-zero stops. */
typedef int (*otpca_device_fn)(const otpca_device *d, void *arg);
otpca_err otpca_store_device_scan(otpca_store *s, const char *after, size_t limit, otpca_device_fn fn,
                                  void *arg) __attribute__((warn_unused_result));
/* The devices changed after sequence since, in sequence order, each once
 * in its latest state, at most limit; *next = the sequence to ask from
 * next time (the last one returned, or since if none). fn returning
 * non-zero stops after that device (it counts as returned). */
otpca_err otpca_store_changes(otpca_store *s, uint64_t since, size_t limit, otpca_device_fn fn, void *arg,
                              uint64_t *next) __attribute__((warn_unused_result));
/* Highest sequence number so far, and the oldest one still in the change
 * log (older deltas need a snapshot); both 0 while the log is empty. */
otpca_err otpca_store_seq(otpca_store *s, uint64_t *head, uint64_t *oldest) __attribute__((warn_unused_result));
/* Device counts per state (index = OTPCA_STORE_*; [0] = total). */
otpca_err otpca_store_device_counts(otpca_store *s, uint64_t counts[7]) __attribute__((warn_unused_result));

/* ---- batches, managers, operators ---- */
otpca_err otpca_store_batch_add(otpca_store *s, const otpca_batch *b) __attribute__((warn_unused_result));
otpca_err otpca_store_batch_get(otpca_store *s, const char *id, otpca_batch *b) __attribute__((warn_unused_result));
otpca_err otpca_store_manager_add(otpca_store *s, const otpca_manager *m) __attribute__((warn_unused_result));
otpca_err otpca_store_manager_get(otpca_store *s, const char *id, otpca_manager *m)
    __attribute__((warn_unused_result));
/* By CURVE public key (the ZAP handler's question). */
otpca_err otpca_store_manager_by_curve(otpca_store *s, const uint8_t curve_pub[32], otpca_manager *m)
    __attribute__((warn_unused_result));
otpca_err otpca_store_manager_revoke(otpca_store *s, const char *id) __attribute__((warn_unused_result));
typedef int (*otpca_manager_fn)(const otpca_manager *m, void *arg);
otpca_err otpca_store_manager_scan(otpca_store *s, otpca_manager_fn fn, void *arg) __attribute__((warn_unused_result));
otpca_err otpca_store_operator_add(otpca_store *s, const otpca_operator *o) __attribute__((warn_unused_result));
otpca_err otpca_store_operator_get(otpca_store *s, const char *id, otpca_operator *o)
    __attribute__((warn_unused_result));
/* Accepts TOTP step `step` for the operator only if it is newer than the
 * last accepted one (atomically): OTPCA_ERR_STATE if not. */
otpca_err otpca_store_operator_accept_step(otpca_store *s, const char *id, uint64_t step)
    __attribute__((warn_unused_result));

/* Which managers an operator may open windows on (none until granted):
 * grant gives EXISTS if already granted, NOT_FOUND for an unknown operator
 * or manager; may answers OTPCA_ERR_OK or NOT_FOUND. */
otpca_err otpca_store_operator_grant(otpca_store *s, const char *op, const char *manager)
    __attribute__((warn_unused_result));
otpca_err otpca_store_operator_may(otpca_store *s, const char *op, const char *manager)
    __attribute__((warn_unused_result));

/* ---- leases ---- */
typedef struct otpca_lease {
    uint8_t window[16];
    char manager[OTPCA_STORE_ID_MAX + 1];
    char operator_[OTPCA_STORE_ID_MAX + 1];
    uint64_t not_before, not_after, max_enroll;
    char scope[64 * (OTPCA_STORE_ID_MAX + 1)]; /* batch ids joined by ','; "" = all */
    int offline;
    uint8_t nonce[16]; /* the WindowOpen's nonce (has_nonce 0 for an offline lease) */
    int has_nonce;
    uint64_t closed_at; /* 0 while open */
} otpca_lease;
otpca_err otpca_store_lease_add(otpca_store *s, const otpca_lease *l) __attribute__((warn_unused_result));
otpca_err otpca_store_lease_get(otpca_store *s, const uint8_t window[16], otpca_lease *l)
    __attribute__((warn_unused_result));
/* The lease a WindowOpen with this nonce made (a retried request is
 * answered with it); nonces are unique among leases (EXISTS on add). */
otpca_err otpca_store_lease_by_nonce(otpca_store *s, const uint8_t nonce[16], otpca_lease *l)
    __attribute__((warn_unused_result));
/* Marks a lease closed at `when`: OTPCA_ERR_STATE if it already was,
 * NOT_FOUND if unknown. */
otpca_err otpca_store_lease_close(otpca_store *s, const uint8_t window[16], uint64_t when)
    __attribute__((warn_unused_result));

/* ---- meta: named blobs (e.g. the wrapped seed key) ---- */
#define OTPCA_STORE_META_MAX 4096
/* NOT_FOUND if absent; INVALID_ARG for reserved keys (schema_version,
 * audit_head) or a value larger than cap. */
otpca_err otpca_store_meta_get(otpca_store *s, const char *key, uint8_t *buf, size_t cap, size_t *len)
    __attribute__((warn_unused_result));
/* Adds a value once: OTPCA_ERR_EXISTS if the key has one (never replaced). */
otpca_err otpca_store_meta_add(otpca_store *s, const char *key, const uint8_t *val, size_t len)
    __attribute__((warn_unused_result));
/* Replaces a value only if it still is old (compare and swap: of two
 * processes replacing the same value, one wins): OTPCA_ERR_STATE if the
 * key has another value or none. Durable when the enclosing transaction
 * commits. */
otpca_err otpca_store_meta_replace(otpca_store *s, const char *key, const uint8_t *old, size_t old_len,
                                   const uint8_t *val, size_t len) __attribute__((warn_unused_result));

/* ---- records ---- */
/* Ingests a record, idempotent by id: OTPCA_ERR_OK for a new one or an
 * exact repeat (*dup = 1, and r->flagged set to the stored verdict),
 * OTPCA_ERR_EXISTS for an id already stored with other content (flagged
 * is not content). Durable when the enclosing transaction commits. */
otpca_err otpca_store_record_put(otpca_store *s, otpca_stored_record *r, int *dup)
    __attribute__((warn_unused_result));
otpca_err otpca_store_record_count(otpca_store *s, uint64_t *n) __attribute__((warn_unused_result));
/* The issuance (kind 1 or 4) of serial by manager that the CONFIRMED
 * record confirm_id confirms (otpca_record_confirm_id): the SHA-256 of its
 * certificate, and for a KeyUpdate (*has_pubkey = 1) the new key.
 * OTPCA_ERR_NOT_FOUND if this store holds none. */
otpca_err otpca_store_record_confirmed(otpca_store *s, const char *serial, const char *manager,
                                       const uint8_t confirm_id[16], uint8_t cert_hash[32], uint8_t pubkey[65],
                                       int *has_pubkey) __attribute__((warn_unused_result));

/* ---- CRLs ---- */
#define OTPCA_STORE_CRL_MAX (512 * 1024)
/* Each manager's latest CRL (DER, already verified by the caller against
 * the manager's certificate). A CRL replaces the one kept only if its
 * number is higher: *stored = 1 then, 0 for an older or equal number (a
 * retry is not an error). OTPCA_ERR_NOT_FOUND-free: the manager must be
 * registered (else OTPCA_ERR_INVALID_ARG from the foreign key). */
otpca_err otpca_store_crl_put(otpca_store *s, const char *manager, uint64_t number, uint64_t this_update,
                              uint64_t next_update, const uint8_t *der, size_t len, int *stored)
    __attribute__((warn_unused_result));
/* The latest CRL of manager into der (cap bytes); OTPCA_ERR_NOT_FOUND if it
 * never published one, OTPCA_ERR_BUFFER_TOO_SMALL if cap is short. */
otpca_err otpca_store_crl_get(otpca_store *s, const char *manager, uint64_t *number, uint64_t *this_update,
                              uint64_t *next_update, uint8_t *der, size_t cap, size_t *len)
    __attribute__((warn_unused_result));

/* ---- audit chain ---- */
/* Appends an entry: seq = previous + 1, prev = previous hash, hash =
 * SHA-256 of the entry's PROTOCOL.md AuditEntry encoding. a->seq, a->prev
 * and a->hash are filled in. */
otpca_err otpca_store_audit_append(otpca_store *s, otpca_audit *a) __attribute__((warn_unused_result));
/* Recomputes the whole chain: OTPCA_ERR_OK, or OTPCA_ERR_SIGNATURE with
 * *bad_seq = the first entry that does not match. */
otpca_err otpca_store_audit_verify(otpca_store *s, uint64_t *entries, uint64_t *bad_seq)
    __attribute__((warn_unused_result));

#endif
