/*
 * The store's front: picks the backend from the URL, checks what callers
 * hand in (ids, lengths, ranges: bad input is an error, never a crash or a
 * row that later fails to encode) and forwards every call to the backend
 * through its function table (store_internal.h). The audit chain's hash is
 * taken here too (proto's otpca_audit_entry_hash, the manager's as well),
 * so that every backend chains the same bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "otpca/common/log.h"
#include "otpca/proto/msg.h"
#include "store_internal.h"

struct otpca_store {
    const otpca_store_backend *be;
    otpca_store_impl *impl;
};

#define TIME_MAX UINT64_C(0xffffffffff) /* PROTOCOL.md `time` */

/* ---- argument checks ---- */

/* PROTOCOL.md `id`: [A-Za-z0-9._:-]{1,64}, NUL-terminated inside its array. */
static int id_ok(const char *id)
{
    size_t n = strnlen(id, OTPCA_STORE_ID_MAX + 1);
    if (n == 0 || n > OTPCA_STORE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

static int id_or_empty_ok(const char *id)
{
    return id[0] == '\0' || id_ok(id);
}

static int device_ok(const otpca_device *d)
{
    if (!id_ok(d->serial) || !id_or_empty_ok(d->batch) || !id_or_empty_ok(d->manager))
        return 0;
    if (d->mac_len != 6 && d->mac_len != 8)
        return 0;
    if (d->pubkey_len != 0 && d->pubkey_len != sizeof d->pubkey)
        return 0;
    if (d->seed_env_len > sizeof d->seed_env)
        return 0;
    if (d->state < OTPCA_STORE_APPROVED || d->state > OTPCA_STORE_PENDING)
        return 0;
    /* The TOTP parameters are stored as given (the importer checks them);
     * only keep them inside what the columns and DeviceEntry can carry. */
    if (d->digits > 255 || d->period > 86400 || d->algorithm > 255)
        return 0;
    /* RFC 5280 CRLReason without 7 (unused) and 8 (delta CRLs only). */
    if (d->revoke_reason > 10 || d->revoke_reason == 7 || d->revoke_reason == 8 || d->revoked_at > INT64_MAX)
        return 0;
    return 1;
}

static otpca_err bad_arg(const char *what)
{
    log_debug("store: invalid %s", what);
    return OTPCA_ERR_INVALID_ARG;
}

/* ---- open, close, transactions ---- */

/* The scheme of a URL ("sqlite" in "sqlite:x.db"), or 0 for a plain path. */
static size_t scheme_len(const char *url)
{
    size_t i = 0;
    if (!((url[0] >= 'A' && url[0] <= 'Z') || (url[0] >= 'a' && url[0] <= 'z')))
        return 0;
    for (i = 1; url[i] && url[i] != ':'; i++) {
        char c = url[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '-' || c == '.'))
            return 0;
    }
    return url[i] == ':' ? i : 0;
}

static int scheme_is(const char *url, size_t n, const char *scheme)
{
    return strlen(scheme) == n && strncasecmp(url, scheme, n) == 0;
}

otpca_err otpca_store_open(const char *url, otpca_store **out)
{
    otpca_store *s = NULL;
    const otpca_store_backend *be = NULL;
    const char *target = url;
    otpca_err ret;
    if (!out)
        return OTPCA_ERR_INVALID_ARG;
    *out = NULL;
    if (!url || !*url) {
        log_error("store: no store URL given");
        return OTPCA_ERR_CONFIG;
    }
    size_t n = scheme_len(url);
    if (n == 0) {
        be = &otpca_store_sqlite_backend;
    } else if (scheme_is(url, n, "sqlite")) {
        be = &otpca_store_sqlite_backend;
        target = url + n + 1;
    } else if (scheme_is(url, n, "postgresql") || scheme_is(url, n, "postgres")) {
        be = &otpca_store_pg_backend; /* libpq reads the whole URL */
    } else {
        log_error("store: unknown store URL scheme '%.*s' (use sqlite:PATH, a path, or postgresql://)", (int)n,
                  url);
        return OTPCA_ERR_CONFIG;
    }
    if (!*target) {
        log_error("store: the store URL names no database");
        return OTPCA_ERR_CONFIG;
    }

    s = calloc(1, sizeof *s);
    if (!s)
        return OTPCA_ERR_NOMEM;
    s->be = be;
    ret = be->open(target, &s->impl);
    if (ret)
        goto out;
    *out = s;
    s = NULL;
    ret = OTPCA_ERR_OK;
out:
    free(s);
    return ret;
}

void otpca_store_url_redact(const char *url, char *out, size_t cap)
{
    const char *body = strstr(url, "://");
    if (!cap)
        return;
    if (!body) {
        snprintf(out, cap, "%s", url);
        return;
    }
    const char *start = body + 3;
    size_t host_len = strcspn(start, "/?");
    const char *at = memchr(start, '@', host_len);
    const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
    if (colon)
        snprintf(out, cap, "%.*s:***%.*s", (int)(colon - url), url, (int)strcspn(at, "?"), at);
    else
        snprintf(out, cap, "%.*s", (int)strcspn(url, "?"), url);
}

void otpca_store_destroy(otpca_store **p)
{
    if (!p || !*p)
        return;
    otpca_store *s = *p;
    s->be->destroy(&s->impl);
    free(s);
    *p = NULL;
}

unsigned otpca_store_schema_version(otpca_store *s)
{
    return s->be->schema_version(s->impl);
}

otpca_err otpca_store_begin(otpca_store *s)
{
    return s->be->begin(s->impl);
}

otpca_err otpca_store_commit(otpca_store *s)
{
    return s->be->commit(s->impl);
}

void otpca_store_rollback(otpca_store *s)
{
    s->be->rollback(s->impl);
}

/* ---- devices ---- */

otpca_err otpca_store_device_add(otpca_store *s, otpca_device *d)
{
    if (!device_ok(d))
        return bad_arg("device");
    return s->be->device_add(s->impl, d);
}

static int cmp_serial(const void *a, const void *b)
{
    return strcmp((*(const otpca_device *const *)a)->serial, (*(const otpca_device *const *)b)->serial);
}

/* Whether a serial appears twice among the valid devices (res[i] OK). */
static otpca_err has_twice(otpca_device *d, size_t n, const otpca_err *res, int *twice)
{
    otpca_device **v = malloc((n ? n : 1) * sizeof *v);
    size_t m = 0;
    *twice = 0;
    if (!v)
        return OTPCA_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (!res[i])
            v[m++] = &d[i];
    qsort(v, m, sizeof *v, cmp_serial);
    for (size_t i = 1; i < m && !*twice; i++)
        *twice = !strcmp(v[i - 1]->serial, v[i]->serial);
    free(v);
    return OTPCA_ERR_OK;
}

otpca_err otpca_store_device_add_many(otpca_store *s, otpca_device *d, size_t n, otpca_err *res)
{
    if ((n && (!d || !res)) || n > OTPCA_STORE_ADD_MANY_MAX)
        return bad_arg("device batch");
    for (size_t i = 0; i < n; i++)
        res[i] = device_ok(&d[i]) ? OTPCA_ERR_OK : bad_arg("device");
    int twice = 0;
    otpca_err ret = s->be->device_add_many ? has_twice(d, n, res, &twice) : OTPCA_ERR_OK;
    if (ret)
        return ret;
    /* A serial twice: the later add's answer depends on how the earlier
     * one fared, so the calls are made one at a time, as the contract
     * promises (rare: a manifest with a repeated row). */
    if (s->be->device_add_many && !twice)
        return s->be->device_add_many(s->impl, d, n, res);
    for (size_t i = 0; i < n; i++) {
        if (res[i])
            continue;
        res[i] = s->be->device_add(s->impl, &d[i]);
        if (res[i] != OTPCA_ERR_OK && res[i] != OTPCA_ERR_EXISTS && res[i] != OTPCA_ERR_NOT_FOUND)
            return res[i];
    }
    return OTPCA_ERR_OK;
}

otpca_err otpca_store_device_get(otpca_store *s, const char *serial, otpca_device *d)
{
    if (!serial || !id_ok(serial))
        return bad_arg("serial");
    return s->be->device_get(s->impl, serial, d);
}

otpca_err otpca_store_device_update(otpca_store *s, otpca_device *d)
{
    if (!device_ok(d))
        return bad_arg("device");
    return s->be->device_update(s->impl, d);
}

otpca_err otpca_store_device_scan(otpca_store *s, const char *after, size_t limit, otpca_device_fn fn, void *arg)
{
    if (!fn || (after && !id_or_empty_ok(after)))
        return bad_arg("scan arguments");
    return s->be->device_scan(s->impl, after ? after : "", limit, fn, arg);
}

otpca_err otpca_store_changes(otpca_store *s, uint64_t since, size_t limit, otpca_device_fn fn, void *arg,
                              uint64_t *next)
{
    if (!fn || !next || since > INT64_MAX)
        return bad_arg("changes arguments");
    return s->be->changes(s->impl, since, limit, fn, arg, next);
}

otpca_err otpca_store_seq(otpca_store *s, uint64_t *head, uint64_t *oldest)
{
    uint64_t h, o;
    otpca_err ret = s->be->seq(s->impl, &h, &o);
    if (ret)
        return ret;
    if (head)
        *head = h;
    if (oldest)
        *oldest = o;
    return OTPCA_ERR_OK;
}

otpca_err otpca_store_device_counts(otpca_store *s, uint64_t counts[7])
{
    return s->be->device_counts(s->impl, counts);
}

/* ---- batches, managers, operators ---- */

otpca_err otpca_store_batch_add(otpca_store *s, const otpca_batch *b)
{
    if (!id_ok(b->id))
        return bad_arg("batch id");
    return s->be->batch_add(s->impl, b);
}

otpca_err otpca_store_batch_get(otpca_store *s, const char *id, otpca_batch *b)
{
    if (!id || !id_ok(id))
        return bad_arg("batch id");
    return s->be->batch_get(s->impl, id, b);
}

otpca_err otpca_store_manager_add(otpca_store *s, const otpca_manager *m)
{
    if (!id_ok(m->id) || m->ca_cert_len > sizeof m->ca_cert || (m->revoked != 0 && m->revoked != 1))
        return bad_arg("manager");
    return s->be->manager_add(s->impl, m);
}

otpca_err otpca_store_manager_get(otpca_store *s, const char *id, otpca_manager *m)
{
    if (!id || !id_ok(id))
        return bad_arg("manager id");
    return s->be->manager_get(s->impl, id, m);
}

otpca_err otpca_store_manager_by_curve(otpca_store *s, const uint8_t curve_pub[32], otpca_manager *m)
{
    if (!curve_pub)
        return bad_arg("CURVE key");
    return s->be->manager_by_curve(s->impl, curve_pub, m);
}

otpca_err otpca_store_manager_revoke(otpca_store *s, const char *id)
{
    if (!id || !id_ok(id))
        return bad_arg("manager id");
    return s->be->manager_revoke(s->impl, id);
}

otpca_err otpca_store_manager_scan(otpca_store *s, otpca_manager_fn fn, void *arg)
{
    if (!fn)
        return bad_arg("scan callback");
    return s->be->manager_scan(s->impl, fn, arg);
}

otpca_err otpca_store_operator_add(otpca_store *s, const otpca_operator *o)
{
    if (!id_ok(o->id) || o->seed_env_len > sizeof o->seed_env || o->digits > 255 || o->period > 86400 ||
        o->algorithm > 255)
        return bad_arg("operator");
    return s->be->operator_add(s->impl, o);
}

otpca_err otpca_store_operator_get(otpca_store *s, const char *id, otpca_operator *o)
{
    if (!id || !id_ok(id))
        return bad_arg("operator id");
    return s->be->operator_get(s->impl, id, o);
}

otpca_err otpca_store_operator_accept_step(otpca_store *s, const char *id, uint64_t step)
{
    if (!id || !id_ok(id) || step > INT64_MAX)
        return bad_arg("operator step");
    return s->be->operator_accept_step(s->impl, id, step);
}

otpca_err otpca_store_operator_grant(otpca_store *s, const char *op, const char *manager)
{
    if (!op || !manager || !id_ok(op) || !id_ok(manager))
        return bad_arg("operator grant");
    return s->be->operator_grant(s->impl, op, manager);
}

otpca_err otpca_store_operator_may(otpca_store *s, const char *op, const char *manager)
{
    if (!op || !manager || !id_ok(op) || !id_ok(manager))
        return bad_arg("operator grant");
    return s->be->operator_may(s->impl, op, manager);
}

/* ---- leases ---- */

otpca_err otpca_store_lease_add(otpca_store *s, const otpca_lease *l)
{
    if (!id_ok(l->manager) || !id_ok(l->operator_) || l->not_before > l->not_after || l->closed_at > TIME_MAX ||
        (l->has_nonce != 0 && l->has_nonce != 1) ||
        strnlen(l->scope, sizeof l->scope) == sizeof l->scope || (l->offline != 0 && l->offline != 1))
        return bad_arg("lease");
    return s->be->lease_add(s->impl, l);
}

otpca_err otpca_store_lease_get(otpca_store *s, const uint8_t window[16], otpca_lease *l)
{
    if (!window)
        return bad_arg("window id");
    return s->be->lease_get(s->impl, window, l);
}

otpca_err otpca_store_lease_by_nonce(otpca_store *s, const uint8_t nonce[16], otpca_lease *l)
{
    if (!nonce)
        return bad_arg("nonce");
    return s->be->lease_by_nonce(s->impl, nonce, l);
}

otpca_err otpca_store_lease_close(otpca_store *s, const uint8_t window[16], uint64_t when)
{
    if (!window || when == 0 || when > TIME_MAX)
        return bad_arg("lease close");
    return s->be->lease_close(s->impl, window, when);
}

/* ---- meta ---- */

static int meta_key_ok(const char *key)
{
    size_t n = key ? strnlen(key, 65) : 0;
    return n >= 1 && n <= 64 && strcmp(key, "schema_version") != 0 && strcmp(key, "audit_head") != 0;
}

otpca_err otpca_store_meta_get(otpca_store *s, const char *key, uint8_t *buf, size_t cap, size_t *len)
{
    if (!meta_key_ok(key) || !buf || !len)
        return bad_arg("meta key");
    return s->be->meta_get(s->impl, key, buf, cap, len);
}

otpca_err otpca_store_meta_add(otpca_store *s, const char *key, const uint8_t *val, size_t len)
{
    if (!meta_key_ok(key) || !val || len == 0 || len > OTPCA_STORE_META_MAX)
        return bad_arg("meta value");
    return s->be->meta_add(s->impl, key, val, len);
}

otpca_err otpca_store_meta_replace(otpca_store *s, const char *key, const uint8_t *old, size_t old_len,
                                   const uint8_t *val, size_t len)
{
    if (!meta_key_ok(key) || !old || old_len == 0 || old_len > OTPCA_STORE_META_MAX || !val || len == 0 ||
        len > OTPCA_STORE_META_MAX)
        return bad_arg("meta value");
    return s->be->meta_replace(s->impl, key, old, old_len, val, len);
}

/* ---- records ---- */

otpca_err otpca_store_record_put(otpca_store *s, otpca_stored_record *r, int *dup)
{
    if (!dup || !id_ok(r->manager) || !id_ok(r->serial) || r->kind < OTPCA_REC_ISSUED ||
        r->kind > OTPCA_REC_LOCKED || r->reason < 0 || r->reason > 255 || r->time > TIME_MAX ||
        r->step > INT64_MAX || r->cert_len > OTPCA_STORE_CERT_MAX || (!r->cert && r->cert_len) ||
        (r->pubkey && r->pubkey[0] != 0x04) ||
        (r->flagged != 0 && r->flagged != 1))
        return bad_arg("record");
    *dup = 0;
    return s->be->record_put(s->impl, r, dup);
}

otpca_err otpca_store_record_count(otpca_store *s, uint64_t *n)
{
    return s->be->record_count(s->impl, n);
}

otpca_err otpca_store_record_confirmed(otpca_store *s, const char *serial, const char *manager,
                                       const uint8_t confirm_id[16], uint8_t cert_hash[32], uint8_t pubkey[65],
                                       int *has_pubkey)
{
    if (!id_ok(serial) || !id_ok(manager) || !confirm_id || !cert_hash || !pubkey || !has_pubkey)
        return bad_arg("confirmed record");
    *has_pubkey = 0;
    return s->be->record_confirmed(s->impl, serial, manager, confirm_id, cert_hash, pubkey, has_pubkey);
}

/* ---- CRLs ---- */

otpca_err otpca_store_crl_put(otpca_store *s, const char *manager, uint64_t number, uint64_t this_update,
                              uint64_t next_update, const uint8_t *der, size_t len, int *stored)
{
    if (!manager || !id_ok(manager) || !der || !len || len > OTPCA_STORE_CRL_MAX || !stored ||
        number > INT64_MAX || this_update > INT64_MAX || next_update > INT64_MAX)
        return bad_arg("CRL");
    *stored = 0;
    return s->be->crl_put(s->impl, manager, number, this_update, next_update, der, len, stored);
}

otpca_err otpca_store_crl_get(otpca_store *s, const char *manager, uint64_t *number, uint64_t *this_update,
                              uint64_t *next_update, uint8_t *der, size_t cap, size_t *len)
{
    if (!manager || !id_ok(manager) || !number || !this_update || !next_update || !der || !len)
        return bad_arg("CRL query");
    return s->be->crl_get(s->impl, manager, number, this_update, next_update, der, cap, len);
}

/* ---- audit chain ---- */

otpca_err otpca_store_audit_hash(const otpca_audit *a, uint8_t hash[32])
{
    otpca_audit_entry e;
    memset(&e, 0, sizeof e);
    if (strnlen(a->actor, sizeof a->actor) == sizeof a->actor ||
        strnlen(a->subject, sizeof a->subject) == sizeof a->subject ||
        strnlen(a->detail, sizeof a->detail) == sizeof a->detail)
        return OTPCA_ERR_INVALID_ARG;
    e.seq = a->seq;
    e.prev.p = a->prev;
    e.prev.len = sizeof a->prev;
    e.time = a->time;
    e.actor.p = (const uint8_t *)a->actor;
    e.actor.len = strlen(a->actor);
    e.event = a->event;
    if (a->subject[0]) {
        e.subject.p = (const uint8_t *)a->subject;
        e.subject.len = strlen(a->subject);
    }
    if (a->detail[0]) {
        e.detail.p = (const uint8_t *)a->detail;
        e.detail.len = strlen(a->detail);
    }
    otpca_err ret = otpca_audit_entry_hash(&e, hash);
    if (ret) {
        log_debug("store: audit entry does not encode: %s", otpca_errname(ret));
        return OTPCA_ERR_INVALID_ARG;
    }
    return OTPCA_ERR_OK;
}

otpca_err otpca_store_audit_append(otpca_store *s, otpca_audit *a)
{
    /* Check the fields encode before the backend picks seq and prev (they
     * cannot make an encodable entry unencodable). */
    uint8_t h[32];
    otpca_audit probe = *a;
    probe.seq = 1;
    memset(probe.prev, 0, sizeof probe.prev);
    if (!id_ok(a->actor) || !id_or_empty_ok(a->subject) || a->event < 1 || a->event > 65535 ||
        a->time > TIME_MAX || otpca_store_audit_hash(&probe, h) != OTPCA_ERR_OK)
        return bad_arg("audit entry");
    return s->be->audit_append(s->impl, a);
}

otpca_err otpca_store_audit_verify(otpca_store *s, uint64_t *entries, uint64_t *bad_seq)
{
    uint64_t n = 0, bad = 0;
    otpca_err ret = s->be->audit_verify(s->impl, &n, &bad);
    if (entries)
        *entries = n;
    if (bad_seq)
        *bad_seq = bad;
    return ret;
}
