/*
 * The store's backend interface: one table of functions per backend
 * (SQLite: store_sqlite.c; PostgreSQL: store_pg.c). store.c parses the URL, checks
 * every argument a caller hands in (ids, lengths, ranges) and forwards the
 * call to the backend, so a backend only stores and fetches: it may assume
 * its arguments are valid and must keep the contracts of store.h (change
 * log gap-free and in the same transaction as the device, idempotent
 * records, the audit chain's hashes).
 */
#ifndef OTPCA_CLOUD_STORE_INTERNAL_H
#define OTPCA_CLOUD_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/cloud/store.h"

/* A backend's own handle, defined in its .c file. */
typedef struct otpca_store_impl otpca_store_impl;

typedef struct otpca_store_backend {
    const char *name;
    /* target: what follows the URL's scheme for SQLite (a path), the
     * whole URL for PostgreSQL. */
    otpca_err (*open)(const char *target, otpca_store_impl **out);
    void (*destroy)(otpca_store_impl **impl);
    unsigned (*schema_version)(otpca_store_impl *impl);

    otpca_err (*begin)(otpca_store_impl *impl);
    otpca_err (*commit)(otpca_store_impl *impl);
    void (*rollback)(otpca_store_impl *impl);

    otpca_err (*device_add)(otpca_store_impl *impl, otpca_device *d);
    /* Optional (NULL: store.c calls device_add n times). On entry res[i]
     * is OK for a valid device (no serial twice among them) and
     * OTPCA_ERR_INVALID_ARG for one to skip; on return as store.h says. */
    otpca_err (*device_add_many)(otpca_store_impl *impl, otpca_device *d, size_t n, otpca_err *res);
    otpca_err (*device_get)(otpca_store_impl *impl, const char *serial, otpca_device *d);
    otpca_err (*device_update)(otpca_store_impl *impl, otpca_device *d);
    otpca_err (*device_scan)(otpca_store_impl *impl, const char *after, size_t limit, otpca_device_fn fn,
                             void *arg);
    otpca_err (*changes)(otpca_store_impl *impl, uint64_t since, size_t limit, otpca_device_fn fn, void *arg,
                         uint64_t *next);
    otpca_err (*seq)(otpca_store_impl *impl, uint64_t *head, uint64_t *oldest);
    otpca_err (*device_counts)(otpca_store_impl *impl, uint64_t counts[7]);

    otpca_err (*batch_add)(otpca_store_impl *impl, const otpca_batch *b);
    otpca_err (*batch_get)(otpca_store_impl *impl, const char *id, otpca_batch *b);
    otpca_err (*manager_add)(otpca_store_impl *impl, const otpca_manager *m);
    otpca_err (*manager_get)(otpca_store_impl *impl, const char *id, otpca_manager *m);
    otpca_err (*manager_by_curve)(otpca_store_impl *impl, const uint8_t curve_pub[32], otpca_manager *m);
    otpca_err (*manager_revoke)(otpca_store_impl *impl, const char *id);
    otpca_err (*manager_scan)(otpca_store_impl *impl, otpca_manager_fn fn, void *arg);
    otpca_err (*operator_add)(otpca_store_impl *impl, const otpca_operator *o);
    otpca_err (*operator_get)(otpca_store_impl *impl, const char *id, otpca_operator *o);
    otpca_err (*operator_accept_step)(otpca_store_impl *impl, const char *id, uint64_t step);
    otpca_err (*operator_grant)(otpca_store_impl *impl, const char *op, const char *manager);
    otpca_err (*operator_may)(otpca_store_impl *impl, const char *op, const char *manager);

    otpca_err (*lease_add)(otpca_store_impl *impl, const otpca_lease *l);
    otpca_err (*lease_get)(otpca_store_impl *impl, const uint8_t window[16], otpca_lease *l);
    otpca_err (*lease_by_nonce)(otpca_store_impl *impl, const uint8_t nonce[16], otpca_lease *l);
    otpca_err (*lease_close)(otpca_store_impl *impl, const uint8_t window[16], uint64_t when);

    otpca_err (*meta_get)(otpca_store_impl *impl, const char *key, uint8_t *buf, size_t cap, size_t *len);
    otpca_err (*meta_add)(otpca_store_impl *impl, const char *key, const uint8_t *val, size_t len);
    otpca_err (*meta_replace)(otpca_store_impl *impl, const char *key, const uint8_t *old, size_t old_len,
                              const uint8_t *val, size_t len);

    otpca_err (*record_put)(otpca_store_impl *impl, otpca_stored_record *r, int *dup);
    otpca_err (*record_count)(otpca_store_impl *impl, uint64_t *n);
    otpca_err (*record_confirmed)(otpca_store_impl *impl, const char *serial, const char *manager,
                                  const uint8_t confirm_id[16], uint8_t cert_hash[32], uint8_t pubkey[65],
                                  int *has_pubkey);

    otpca_err (*crl_put)(otpca_store_impl *impl, const char *manager, uint64_t number, uint64_t this_update,
                         uint64_t next_update, const uint8_t *der, size_t len, int *stored);
    otpca_err (*crl_get)(otpca_store_impl *impl, const char *manager, uint64_t *number, uint64_t *this_update,
                         uint64_t *next_update, uint8_t *der, size_t cap, size_t *len);

    /* a has been checked to encode as an AuditEntry once seq/prev are set. */
    otpca_err (*audit_append)(otpca_store_impl *impl, otpca_audit *a);
    otpca_err (*audit_verify)(otpca_store_impl *impl, uint64_t *entries, uint64_t *bad_seq);
} otpca_store_backend;

extern const otpca_store_backend otpca_store_sqlite_backend;
extern const otpca_store_backend otpca_store_pg_backend;

/* Shared by the backends: the audit chain's hash of an entry (seq, prev
 * and the fields set): SHA-256 of its PROTOCOL.md AuditEntry encoding. An
 * empty subject or detail is left out of the encoding. OTPCA_ERR_INVALID_ARG
 * if the entry does not encode (bad id, time or UTF-8). */
otpca_err otpca_store_audit_hash(const otpca_audit *a, uint8_t hash[32]) __attribute__((warn_unused_result));

#endif
