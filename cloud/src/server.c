/*
 * otpca-cloud serve (server.h): sockets, the ZAP handler, the broker, the
 * workers' request handlers and the notice publisher.
 */
#include "otpca/cloud/server.h"

#include <errno.h>
#include <inttypes.h>
#include <liboath/oath.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "otpca/cloud/broker.h"
#include "otpca/cloud/curvekey.h"
#include "otpca/cloud/seeds.h"
#include "otpca/cloud/store.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "otpca/proto/seedbox.h"
#include "otpca/token/crl.h"
#include "otpca/token/uri.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN "otpca"
#define WORKERS_ENDPOINT "inproc://otpca-workers"
#define WORKERS_MAX OTPCA_BROKER_WORKERS_MAX
/* Entries per SyncBatch: a DeviceEntry takes at most ~380 bytes, so 2048
 * of them stay well inside the 1 MiB frame limit. */
#define SYNC_MAX 2048
#define SCOPE_MAX 64
#define POLL_MS 100
#define NOTICE_POLL_MS 100 /* a revocation reaches the open windows within about this */
#define DRAIN_MS 10000
#define ACTOR "cloud"
#define OPERATOR_PREFIX "op:" /* operators' seeds are sealed under op:ID (otpca_cloud.c) */

/* Audit events (PROTOCOL.md section 7.6). */
enum { EV_WINDOW_OPENED = 1, EV_WINDOW_CLOSED = 2, EV_REJECTED = 5, EV_RECORDS_ACKED = 8, EV_FLAGGED = 14,
       EV_LEASE_ISSUED = 15, EV_CRL_PUBLISHED = 21 };

struct server {
    const otpca_cloud_config *cfg;
    unsigned long workers, skew, lease_max_seconds, lease_max_enroll;
    void *zctx;
    otpca_p11_t *p11;
    otpca_token_t *tok;
    otpca_obj_t sign;
    uint8_t sign_kid[OTPCA_KID_LEN]; /* read once: not from the token per reply */
    otpca_obj_t wrap;
    otpca_seed_key *seeds;
    uint8_t curve_pub[32];
    uint8_t *curve_sec; /* locked memory */
    otpca_store *st;    /* the main thread's: notices */
};

/* The bytes a SyncBatch entry (worker.elist[i]) points to. */
struct entry {
    char serial[OTPCA_STORE_ID_MAX + 1];
    char batch[OTPCA_STORE_ID_MAX + 1];
    uint8_t mac[8], pub[65], cert_hash[32];
    uint8_t seed[OTPCA_SEED_MAX + 16];
};

struct worker {
    struct server *srv;
    unsigned idx;
    pthread_t th;
    int started;
    otpca_token_t *tok;
    otpca_store *st;
    void *sock;
    uint8_t *out; /* OTPCA_MSG_CLOUD_MAX */
    otpca_device_entry *elist; /* SYNC_MAX */
    struct entry *entries;     /* SYNC_MAX */
    otpca_err setup; /* what went wrong before the loop, if anything */
};

/* ---------------------------------------------------------------- helpers */

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

static otpca_err token_sign(void *ctx, const uint8_t digest[32], uint8_t sig[OTPCA_P256_SIG_LEN])
{
    struct worker *w = ctx;
    size_t len = OTPCA_P256_SIG_LEN;
    return otpca_token_sign_digest(w->tok, w->srv->sign, digest, 32, OTPCA_SIG_RAW, sig, &len);
}

static otpca_err make_signer(struct worker *w, otpca_signer *s)
{
    s->sign = token_sign;
    s->ctx = w;
    memcpy(s->kid, w->srv->sign_kid, sizeof s->kid);
    return OTPCA_ERR_OK;
}

static int buf_is(otpca_buf b, const char *s)
{
    size_t n = strlen(s);
    return b.p && b.len == n && memcmp(b.p, s, n) == 0;
}

static void buf_to_str(otpca_buf b, char *out, size_t cap)
{
    size_t n = b.p ? (b.len < cap - 1 ? b.len : cap - 1) : 0;
    if (n)
        memcpy(out, b.p, n);
    out[n] = '\0';
}

static otpca_buf str_buf(const char *s)
{
    return (otpca_buf){(const uint8_t *)s, strlen(s)};
}

static void audit(otpca_store *st, unsigned event, const char *actor, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void audit(otpca_store *st, unsigned event, const char *actor, const char *subject, const char *fmt, ...)
{
    otpca_audit a;
    va_list ap;
    memset(&a, 0, sizeof a);
    a.time = now_s();
    snprintf(a.actor, sizeof a.actor, "%s", actor);
    a.event = event;
    if (subject)
        snprintf(a.subject, sizeof a.subject, "%s", subject);
    va_start(ap, fmt);
    vsnprintf(a.detail, sizeof a.detail, fmt, ap);
    va_end(ap);
    otpca_err ret = otpca_store_audit_append(st, &a);
    if (ret)
        log_error("audit: event %u for %s: %s", event, subject ? subject : "-", otpca_strerror(ret));
}

/* ------------------------------------------------------------------ ZAP */

/* The ZAP handler (RFC 27): admits a CURVE client whose public key belongs
 * to a registered, non-revoked manager, and names it (User-Id = manager
 * id), so that every request arrives tagged with who sent it. */
struct zap {
    struct server *srv;
    void *sock;
    otpca_store *st;
    pthread_t th;
    int started;
};

static int zap_reply(void *sock, const char *req_id, size_t req_id_len, const char *status, const char *text,
                     const char *user)
{
    if (zmq_send(sock, "1.0", 3, ZMQ_SNDMORE) < 0 || zmq_send(sock, req_id, req_id_len, ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, status, strlen(status), ZMQ_SNDMORE) < 0 || zmq_send(sock, text, strlen(text), ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, user, strlen(user), ZMQ_SNDMORE) < 0 || zmq_send(sock, "", 0, 0) < 0)
        return -1;
    return 0;
}

static void *zap_main(void *arg)
{
    struct zap *z = arg;
    for (;;) {
        /* version, request id, domain, address, identity, mechanism, key */
        char frames[7][256];
        size_t lens[7] = {0};
        int n = 0, more = 1, bad = 0;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, z->sock, 0) < 0) {
                zmq_msg_close(&m);
                return NULL; /* context terminated */
            }
            if (n < 7 && zmq_msg_size(&m) <= sizeof frames[0]) {
                memcpy(frames[n], zmq_msg_data(&m), zmq_msg_size(&m));
                lens[n] = zmq_msg_size(&m);
            } else {
                bad = 1;
            }
            n++;
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (bad || n != 7 || lens[0] != 3 || memcmp(frames[0], "1.0", 3) != 0) {
            log_warn("zap: malformed request ignored");
            continue;
        }
        char addr[64];
        snprintf(addr, sizeof addr, "%.*s", (int)(lens[3] < 63 ? lens[3] : 63), frames[3]);
        otpca_manager m;
        const char *status = "400", *text = "unknown manager key", *user = "";
        if (lens[5] != 5 || memcmp(frames[5], "CURVE", 5) != 0 || lens[6] != 32) {
            text = "CURVE only";
        } else {
            otpca_err ret = otpca_store_manager_by_curve(z->st, (const uint8_t *)frames[6], &m);
            if (ret == OTPCA_ERR_OK && !m.revoked) {
                status = "200";
                text = "OK";
                user = m.id;
            } else if (ret == OTPCA_ERR_OK) {
                text = "manager revoked";
            } else if (ret != OTPCA_ERR_NOT_FOUND) {
                status = "500";
                text = "registry unavailable";
            }
        }
        if (status[0] == '2')
            log_info("zap: manager %s connected from %s", user, addr);
        else
            log_warn("zap: refused a connection from %s: %s", addr, text);
        if (zap_reply(z->sock, frames[1], lens[1], status, text, user) < 0)
            return NULL;
    }
}

/* --------------------------------------------------------------- replies */

/* An Error (unsigned) into w->out. */
static size_t error_reply(struct worker *w, unsigned code, otpca_buf nonce, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t error_reply(struct worker *w, unsigned code, otpca_buf nonce, const char *fmt, ...)
{
    char detail[257];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    otpca_error_msg e;
    memset(&e, 0, sizeof e);
    e.code = code;
    if (nonce.p && nonce.len == OTPCA_NONCE_LEN)
        e.nonce = nonce;
    e.detail = str_buf(detail);
    size_t len = 0;
    if (otpca_msg_encode(&otpca_desc_error, &e, w->out, OTPCA_MSG_CLOUD_MAX, &len))
        return 0;
    return len;
}

static size_t signed_reply(struct worker *w, const otpca_msg_desc *d, const void *m)
{
    otpca_signer s;
    size_t len = 0;
    otpca_err ret = make_signer(w, &s);
    if (!ret)
        ret = otpca_msg_sign(d, m, &s, (otpca_buf){NULL, 0}, w->out, OTPCA_MSG_CLOUD_MAX, &len);
    if (ret) {
        log_error("worker %u: signing a %s failed: %s", w->idx, otpca_msg_name(d), otpca_strerror(ret));
        return error_reply(w, OTPCA_WIRE_INTERNAL, (otpca_buf){NULL, 0}, "signing failed");
    }
    return len;
}

/* -------------------------------------------------------- signed requests */

/* Decodes a COSE_Sign1 from manager `who` and checks it: the manager is
 * registered and not revoked, the signature verifies with its CA key, the
 * payload is a message of descriptor d. On failure *reply_len is set. */
static int open_signed(struct worker *w, const char *who, const uint8_t *in, size_t len, const otpca_msg_desc *d,
                       void *msg, otpca_manager *m, size_t *reply_len)
{
    otpca_cose_sign1 c;
    otpca_buf none = {NULL, 0};
    if (otpca_cose_sign1_decode(in, len, &c)) {
        *reply_len = error_reply(w, OTPCA_WIRE_BAD_REQUEST, none, "%s must be a COSE_Sign1", otpca_msg_name(d));
        return -1;
    }
    otpca_err ret = otpca_store_manager_get(w->st, who, m);
    if (ret || m->revoked) {
        *reply_len = error_reply(w, OTPCA_WIRE_UNKNOWN_MANAGER, none, "manager %s is %s", who,
                                 ret ? "not registered" : "revoked");
        return -1;
    }
    if ((ret = otpca_cose_sign1_verify(&c, m->ca_pub, sizeof m->ca_pub))) {
        log_warn("worker %u: %s from %s: signature does not verify (%s)", w->idx, otpca_msg_name(d), who,
                 otpca_errname(ret));
        *reply_len = error_reply(w, OTPCA_WIRE_SIGNATURE, none, "signature does not verify with the CA key of %s",
                                 who);
        return -1;
    }
    if ((ret = otpca_msg_decode(d, c.payload.p, c.payload.len, msg))) {
        *reply_len = error_reply(w, OTPCA_WIRE_BAD_REQUEST, none, "malformed %s: %s", otpca_msg_name(d),
                                 otpca_strerror(ret));
        return -1;
    }
    return 0;
}

/* The lease `window` if it belongs to manager who; else an error reply. */
static int find_lease(struct worker *w, const char *who, otpca_buf window, otpca_lease *l, size_t *reply_len)
{
    otpca_buf none = {NULL, 0};
    otpca_err ret = window.len == 16 ? otpca_store_lease_get(w->st, window.p, l) : OTPCA_ERR_NOT_FOUND;
    if (ret == OTPCA_ERR_OK && strcmp(l->manager, who) != 0)
        ret = OTPCA_ERR_NOT_FOUND; /* another manager's window: as if unknown */
    if (ret) {
        *reply_len = ret == OTPCA_ERR_NOT_FOUND
                         ? error_reply(w, OTPCA_WIRE_LEASE_INVALID, none, "no lease of %s has this window id", who)
                         : error_reply(w, OTPCA_WIRE_INTERNAL, none, "registry unavailable");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ WindowOpen */

/* The operator's TOTP (liboath, +-1 step) for operator o at time t: the
 * matched time step in *step, or -1. */
static int check_operator_totp(struct worker *w, const otpca_operator *o, uint64_t totp, uint64_t t, uint64_t *step)
{
    char serial[OTPCA_STORE_ID_MAX + 4], code[16];
    uint8_t *seed = otpca_secmem_alloc(OTPCA_SEED_MAX);
    size_t len = 0;
    int ok = -1;
    if (!seed)
        return -1;
    snprintf(serial, sizeof serial, "%s%s", OPERATOR_PREFIX, o->id);
    otpca_err ret = otpca_seed_open(w->srv->seeds, serial, o->seed_env, o->seed_env_len, seed, OTPCA_SEED_MAX, &len);
    if (ret) {
        log_error("worker %u: operator %s: sealed seed does not open: %s", w->idx, o->id, otpca_strerror(ret));
    } else if (totp < 100000000) {
        int pos = 0;
        uint64_t counter = 0;
        snprintf(code, sizeof code, "%0*" PRIu64, (int)o->digits, totp);
        if (strlen(code) == o->digits &&
            oath_totp_validate4((const char *)seed, len, (time_t)t, o->period, 0, 1, &pos, &counter,
                                o->algorithm == 2 ? OATH_TOTP_HMAC_SHA256 : 0, code) >= 0) {
            *step = counter;
            ok = 0;
        }
        otpca_memzero(code, sizeof code);
    }
    otpca_secmem_free(seed, OTPCA_SEED_MAX);
    return ok;
}

static size_t lease_reply(struct worker *w, const otpca_lease *l, otpca_buf nonce)
{
    otpca_window_lease r;
    otpca_buf scope[SCOPE_MAX];
    char copy[sizeof l->scope];
    size_t n = 0;
    memset(&r, 0, sizeof r);
    r.nonce = nonce;
    r.window = (otpca_buf){l->window, 16};
    r.manager = str_buf(l->manager);
    r.operator_ = str_buf(l->operator_);
    r.not_before = l->not_before;
    r.not_after = l->not_after;
    r.max_enroll = l->max_enroll;
    if (l->scope[0]) {
        snprintf(copy, sizeof copy, "%s", l->scope);
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && n < SCOPE_MAX; t = strtok_r(NULL, ",", &save))
            scope[n++] = str_buf(t);
        r.scope.items = scope;
        r.scope.count = n;
    }
    if (l->offline) {
        r.offline = true;
        r.present |= OTPCA_MSG_BIT(9);
    }
    return signed_reply(w, &otpca_desc_window_lease, &r);
}

static size_t on_window_open(struct worker *w, const char *who, const uint8_t *in, size_t len)
{
    otpca_window_open req;
    otpca_manager m;
    otpca_operator op;
    otpca_lease l;
    size_t reply = 0;
    char op_id[OTPCA_STORE_ID_MAX + 1];
    if (open_signed(w, who, in, len, &otpca_desc_window_open, &req, &m, &reply))
        return reply;
    otpca_buf nonce = req.nonce;
    uint64_t t = now_s();
    if (!buf_is(req.manager, who)) {
        log_warn("worker %u: WindowOpen from %s names manager %.*s", w->idx, who, (int)req.manager.len,
                 (const char *)req.manager.p);
        return error_reply(w, OTPCA_WIRE_AUTH_FAILED, nonce, "the request names another manager");
    }
    /* A retry of a request already answered gets the same lease again. */
    otpca_err ret = otpca_store_lease_by_nonce(w->st, nonce.p, &l);
    if (ret == OTPCA_ERR_OK && !strcmp(l.manager, who))
        return lease_reply(w, &l, nonce);
    if (ret == OTPCA_ERR_OK)
        return error_reply(w, OTPCA_WIRE_AUTH_FAILED, nonce, "nonce already used");
    if (req.time + w->srv->skew < t || req.time > t + w->srv->skew)
        return error_reply(w, OTPCA_WIRE_AUTH_FAILED, nonce, "request time is %+" PRId64 " s off the cloud's clock",
                           (int64_t)(req.time - t));
    buf_to_str(req.operator_, op_id, sizeof op_id);
    uint64_t step = 0;
    ret = otpca_store_operator_get(w->st, op_id, &op);
    if (!ret && otpca_store_operator_may(w->st, op_id, who)) {
        log_warn("worker %u: WindowOpen from %s: operator %s may not open its windows", w->idx, who, op_id);
        audit(w->st, EV_REJECTED, ACTOR, who, "window open refused: operator %s not granted this manager", op_id);
        return error_reply(w, OTPCA_WIRE_OPERATOR_REJECTED, nonce, "operator %s may not open windows on %s", op_id, who);
    }
    if (ret || check_operator_totp(w, &op, req.totp, t, &step)) {
        log_warn("worker %u: WindowOpen from %s: operator %s %s", w->idx, who, op_id,
                 ret ? "unknown" : "TOTP wrong");
        audit(w->st, EV_REJECTED, ACTOR, who, "window open refused: operator %s %s", op_id,
              ret ? "unknown" : "TOTP wrong");
        return error_reply(w, OTPCA_WIRE_OPERATOR_REJECTED, nonce, "operator unknown or TOTP wrong");
    }

    memset(&l, 0, sizeof l);
    snprintf(l.manager, sizeof l.manager, "%s", who);
    snprintf(l.operator_, sizeof l.operator_, "%s", op_id);
    if (otpca_random(l.window, sizeof l.window))
        return error_reply(w, OTPCA_WIRE_INTERNAL, nonce, "no randomness");
    memcpy(l.nonce, nonce.p, sizeof l.nonce);
    l.has_nonce = 1;
    l.not_before = t;
    l.not_after = t + (req.duration < w->srv->lease_max_seconds ? req.duration : w->srv->lease_max_seconds);
    l.max_enroll = w->srv->lease_max_enroll;
    if ((req.present & OTPCA_MSG_BIT(7)) && req.max_enroll < l.max_enroll)
        l.max_enroll = req.max_enroll;
    if (req.scope.raw.p || req.scope.items) {
        otpca_list_iter it;
        otpca_buf id;
        size_t used = 0;
        otpca_list_iter_init(&it, &req.scope);
        while (otpca_list_next(&it, NULL, &id) == OTPCA_ERR_OK) {
            char bid[OTPCA_STORE_ID_MAX + 1];
            otpca_batch b;
            buf_to_str(id, bid, sizeof bid);
            if (otpca_store_batch_get(w->st, bid, &b))
                return error_reply(w, OTPCA_WIRE_NOT_FOUND, nonce, "scope names unknown batch %s", bid);
            used += (size_t)snprintf(l.scope + used, sizeof l.scope - used, "%s%s", used ? "," : "", bid);
        }
    }
    /* The step, the lease and the audit entry in one transaction: a step is
     * accepted once even when two instances race. */
    if ((ret = otpca_store_begin(w->st)))
        return error_reply(w, OTPCA_WIRE_INTERNAL, nonce, "registry busy");
    ret = otpca_store_operator_accept_step(w->st, op_id, step);
    if (ret == OTPCA_ERR_STATE) {
        otpca_store_rollback(w->st);
        log_warn("worker %u: WindowOpen from %s: operator %s reused TOTP step %" PRIu64, w->idx, who, op_id, step);
        audit(w->st, EV_REJECTED, ACTOR, who, "window open refused: operator %s TOTP step reused", op_id);
        return error_reply(w, OTPCA_WIRE_OPERATOR_REJECTED, nonce, "operator TOTP already used");
    }
    if (!ret)
        ret = otpca_store_lease_add(w->st, &l);
    if (!ret) {
        audit(w->st, EV_WINDOW_OPENED, ACTOR, who, "operator %s, %" PRIu64 " s, up to %" PRIu64 " enrollments%s%s",
              op_id, l.not_after - l.not_before, l.max_enroll, l.scope[0] ? ", scope " : "", l.scope);
        ret = otpca_store_commit(w->st);
    } else {
        otpca_store_rollback(w->st);
    }
    if (ret) {
        log_error("worker %u: lease for %s not stored: %s", w->idx, who, otpca_strerror(ret));
        return error_reply(w, OTPCA_WIRE_INTERNAL, nonce, "lease not stored");
    }
    log_info("lease for %s (operator %s) until %" PRIu64, who, op_id, l.not_after);
    return lease_reply(w, &l, nonce);
}

/* ------------------------------------------------------------------ sync */

struct sync_ctx {
    struct worker *w;
    const otpca_lease *lease;
    const uint8_t *manager_pub;
    char scope[SCOPE_MAX][OTPCA_STORE_ID_MAX + 1];
    size_t nscope;
    uint64_t to;        /* snapshot: stop after this sequence */
    size_t count;       /* entries */
    size_t rows;        /* rows looked at */
    uint64_t last;      /* last sequence looked at */
    int have_box, failed;
    otpca_seedbox box;
    char pk_batch[OTPCA_STORE_ID_MAX + 1]; /* the last batch whose product key was read */
    uint8_t pk[65];
};

static int in_scope(const struct sync_ctx *c, const char *batch)
{
    if (!c->nscope)
        return 1;
    for (size_t i = 0; i < c->nscope; i++)
        if (!strcmp(c->scope[i], batch))
            return 1;
    return 0;
}

static int add_entry(const otpca_device *d, void *arg)
{
    struct sync_ctx *c = arg;
    if (c->to && d->seq > c->to)
        return 1; /* changed after the snapshot began: the next delta has it */
    c->rows++;
    c->last = d->seq;
    if (d->state == OTPCA_STORE_PENDING || !in_scope(c, d->batch))
        return 0;
    struct entry *x = &c->w->entries[c->count];
    otpca_device_entry *e = &c->w->elist[c->count];
    memset(e, 0, sizeof *e);
    snprintf(x->serial, sizeof x->serial, "%s", d->serial);
    e->serial = str_buf(x->serial);
    e->seq = d->seq;
    e->state = (uint64_t)d->state;
    memcpy(x->mac, d->mac, d->mac_len);
    e->mac = (otpca_buf){x->mac, d->mac_len};
    if (d->pubkey_len) {
        memcpy(x->pub, d->pubkey, d->pubkey_len);
        e->pubkey = (otpca_buf){x->pub, d->pubkey_len};
    } else if (d->batch[0]) {
        /* Unclaimed: the batch's product key is the key it proves (PROTOCOL.md 6.7). */
        if (strcmp(c->pk_batch, d->batch)) {
            otpca_batch bt;
            if (otpca_store_batch_get(c->w->st, d->batch, &bt)) {
                log_error("sync: batch %s of %s cannot be read", d->batch, d->serial);
                c->failed = 1;
                return 1;
            }
            memcpy(c->pk, bt.product_pub, 65);
            snprintf(c->pk_batch, sizeof c->pk_batch, "%s", d->batch);
        }
        memcpy(x->pub, c->pk, 65);
        e->pubkey = (otpca_buf){x->pub, 65};
        e->unclaimed = true;
        e->present |= OTPCA_MSG_BIT(15);
    }
    if (d->batch[0]) {
        snprintf(x->batch, sizeof x->batch, "%s", d->batch);
        e->batch = str_buf(x->batch);
    }
    if (d->state != OTPCA_STORE_REVOKED && d->state != OTPCA_STORE_DELETED) {
        uint8_t seed[OTPCA_SEED_MAX];
        size_t len = 0, sealed = 0;
        otpca_err ret = OTPCA_ERR_OK;
        if (!c->have_box) {
            ret = otpca_seedbox_sender(&c->box, c->manager_pub, 65);
            c->have_box = ret == OTPCA_ERR_OK;
        }
        if (!ret)
            ret = otpca_seed_open(c->w->srv->seeds, d->serial, d->seed_env, d->seed_env_len, seed, sizeof seed, &len);
        if (!ret)
            ret = otpca_seedbox_seal(&c->box, (const uint8_t *)x->serial, strlen(x->serial), seed, len, x->seed,
                                     sizeof x->seed, &sealed);
        otpca_memzero(seed, sizeof seed);
        if (ret) {
            log_error("sync: seed of %s: %s", d->serial, otpca_strerror(ret));
            c->failed = 1;
            return 1;
        }
        e->seed = (otpca_buf){x->seed, sealed};
        e->digits = d->digits;
        e->period = d->period;
        e->algorithm = d->algorithm;
        e->present |= OTPCA_MSG_BIT(7) | OTPCA_MSG_BIT(8) | OTPCA_MSG_BIT(9);
        e->last_step = d->last_step;
        e->failures = d->failures;
        e->present |= OTPCA_MSG_BIT(10) | OTPCA_MSG_BIT(11);
    }
    if (d->has_cert) {
        memcpy(x->cert_hash, d->cert_hash, 32);
        e->cert_hash = (otpca_buf){x->cert_hash, 32};
    }
    if (d->state == OTPCA_STORE_REVOKED && d->revoked_at) {
        e->revoked_at = d->revoked_at;
        e->revoke_reason = d->revoke_reason;
        e->present |= OTPCA_MSG_BIT(13) | OTPCA_MSG_BIT(14);
    }
    c->count++;
    return 0;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static size_t on_sync(struct worker *w, const char *who, const uint8_t *in, size_t len)
{
    otpca_sync_request req;
    otpca_lease l;
    otpca_manager m;
    otpca_buf none = {NULL, 0};
    size_t reply = 0;
    otpca_err ret = otpca_msg_decode(&otpca_desc_sync_request, in, len, &req);
    if (ret)
        return error_reply(w, OTPCA_WIRE_BAD_REQUEST, none, "malformed SyncRequest: %s", otpca_strerror(ret));
    if (find_lease(w, who, req.window, &l, &reply))
        return reply;
    uint64_t t = now_s();
    if (l.closed_at || t > l.not_after || t + w->srv->skew < l.not_before)
        return error_reply(w, OTPCA_WIRE_LEASE_INVALID, none, "the lease is %s",
                           l.closed_at ? "closed" : "outside its time");
    if ((ret = otpca_store_manager_get(w->st, who, &m)) || m.revoked)
        return error_reply(w, OTPCA_WIRE_UNKNOWN_MANAGER, none, "manager %s is not registered or revoked", who);

    struct sync_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return error_reply(w, OTPCA_WIRE_INTERNAL, none, "out of memory");
    c->w = w;
    c->lease = &l;
    c->manager_pub = m.ca_pub;
    if (l.scope[0]) {
        char copy[sizeof l.scope];
        snprintf(copy, sizeof copy, "%s", l.scope);
        for (char *save = NULL, *s = strtok_r(copy, ",", &save); s && c->nscope < SCOPE_MAX;
             s = strtok_r(NULL, ",", &save))
            snprintf(c->scope[c->nscope++], sizeof c->scope[0], "%s", s);
    }
    size_t limit = (req.present & OTPCA_MSG_BIT(3)) && req.max < SYNC_MAX ? (size_t)req.max : SYNC_MAX;
    uint64_t head = 0, oldest = 0, next = 0, chunk = 0;
    otpca_sync_batch b;
    uint8_t cursor[20];
    memset(&b, 0, sizeof b);
    b.window = req.window;
    b.from = req.since;
    if ((ret = otpca_store_seq(w->st, &head, &oldest)))
        goto internal;

    if (req.cursor.p) {
        /* Next snapshot chunk: cursor = last sequence sent || snapshot's
         * `to` || chunk index, as this server wrote it. */
        if (req.cursor.len != sizeof cursor) {
            reply = error_reply(w, OTPCA_WIRE_BAD_REQUEST, none, "cursor is not one of ours");
            goto out;
        }
        next = get_be64(req.cursor.p);
        c->to = get_be64(req.cursor.p + 8);
        chunk = (uint64_t)req.cursor.p[16] << 24 | (uint64_t)req.cursor.p[17] << 16 |
                (uint64_t)req.cursor.p[18] << 8 | req.cursor.p[19];
        if (c->to > head || next > c->to) {
            reply = error_reply(w, OTPCA_WIRE_BAD_REQUEST, none, "cursor is not one of ours");
            goto out;
        }
    }
    if (req.cursor.p || req.since == 0 || req.since > head || (oldest && req.since + 1 < oldest)) {
        /* Snapshot: every device in scope up to the head at its start, in
         * chunks in sequence order (a device changed meanwhile moves past
         * `to` and comes with the next delta instead). */
        if (!req.cursor.p) {
            c->to = head;
            next = 0;
        }
        b.kind = OTPCA_SYNC_SNAPSHOT;
        b.to = c->to;
        uint64_t ignored;
        if (c->to > next && (ret = otpca_store_changes(w->st, next, limit, add_entry, c, &ignored)))
            goto internal;
        b.more = c->rows == limit && c->last < c->to;
        b.chunk = chunk;
        b.present |= OTPCA_MSG_BIT(8);
        if (b.more) {
            put_be64(cursor, c->last);
            put_be64(cursor + 8, c->to);
            cursor[16] = (uint8_t)((chunk + 1) >> 24);
            cursor[17] = (uint8_t)((chunk + 1) >> 16);
            cursor[18] = (uint8_t)((chunk + 1) >> 8);
            cursor[19] = (uint8_t)(chunk + 1);
            b.cursor = (otpca_buf){cursor, sizeof cursor};
        } else if (head > c->to) {
            /* The last chunk, but devices changed while the snapshot was
             * sent: more without a cursor asks again with `to` (a delta). */
            b.more = true;
        }
    } else {
        b.kind = OTPCA_SYNC_DELTA;
        if ((ret = otpca_store_changes(w->st, req.since, limit, add_entry, c, &next)))
            goto internal;
        b.to = c->rows ? c->last : req.since;
        b.more = c->rows == limit;
    }
    if (c->failed)
        goto internal;
    b.entries.items = w->elist;
    b.entries.count = c->count;
    if (c->have_box)
        b.seedkey = (otpca_buf){c->box.eph, sizeof c->box.eph};
    reply = signed_reply(w, &otpca_desc_sync_batch, &b);
    log_debug("sync %s: %s %" PRIu64 "..%" PRIu64 ", %zu entries%s", who,
              b.kind == OTPCA_SYNC_DELTA ? "delta" : "snapshot", b.from, b.to, c->count, b.more ? ", more" : "");
    goto out;
internal:
    log_error("worker %u: sync for %s failed: %s", w->idx, who, ret ? otpca_strerror(ret) : "seed sealing");
    reply = error_reply(w, OTPCA_WIRE_INTERNAL, none, "sync failed");
out:
    if (c->have_box)
        otpca_seedbox_wipe(&c->box);
    for (size_t i = 0; i < c->count; i++)
        otpca_memzero(w->entries[i].seed, sizeof w->entries[i].seed);
    free(c);
    return reply;
}

/* ---------------------------------------------------------- RecordUpload */

/* The device record r is about (*found 0 if the registry has none) and
 * whether r shows it enrolled by two managers (*flag). */
static otpca_err look_record(struct worker *w, const char *who, const otpca_record *r, otpca_device *d, int *found,
                             int *flag)
{
    char serial[OTPCA_STORE_ID_MAX + 1];
    buf_to_str(r->serial, serial, sizeof serial);
    *found = *flag = 0;
    otpca_err ret = otpca_store_device_get(w->st, serial, d);
    if (ret == OTPCA_ERR_NOT_FOUND)
        return OTPCA_ERR_OK; /* e.g. a rejected request for an unknown serial: kept as a record only */
    if (ret)
        return ret;
    *found = 1;
    int enrolling = r->kind == OTPCA_REC_ISSUED || r->kind == OTPCA_REC_CONFIRMED || r->kind == OTPCA_REC_KEY_UPDATED;
    *flag = enrolling && d->state == OTPCA_STORE_ENROLLED && d->manager[0] && strcmp(d->manager, who) != 0;
    return OTPCA_ERR_OK;
}

/* The device's state after a new record r of manager who. */
static otpca_err apply_record(struct worker *w, const char *who, const otpca_record *r, otpca_device *d, int flag)
{
    int changed = 0;
    if (flag) {
        audit(w->st, EV_FLAGGED, ACTOR, d->serial, "enrolled by %s, now also by %s", d->manager, who);
        log_warn("double enrollment: %s enrolled by %s and by %s", d->serial, d->manager, who);
        if (!d->flagged) {
            d->flagged = 1;
            changed = 1;
        }
    }
    if ((r->present & OTPCA_MSG_BIT(5)) && r->step > d->last_step) {
        d->last_step = r->step;
        changed = 1;
    }
    switch (r->kind) {
    case OTPCA_REC_CONFIRMED: {
        /* The certificate the node committed becomes the device's (and a
         * KeyUpdate's key its key) now, not at issuance (PROTOCOL.md 7.3). */
        uint8_t hash[32], key[65];
        int has_key = 0;
        otpca_err ret = otpca_store_record_confirmed(w->st, d->serial, who, r->id.p, hash, key, &has_key);
        if (ret && ret != OTPCA_ERR_NOT_FOUND)
            return ret;
        if (!ret) {
            memcpy(d->cert_hash, hash, 32);
            d->has_cert = 1;
            if (has_key) {
                memcpy(d->pubkey, key, 65);
                d->pubkey_len = 65;
            }
            changed = 1;
        } else {
            log_warn("%s: a confirmation from %s for an issuance this registry does not hold", d->serial, who);
        }
        if (d->state != OTPCA_STORE_REVOKED && d->state != OTPCA_STORE_LOCKED && d->state != OTPCA_STORE_DELETED) {
            d->state = OTPCA_STORE_ENROLLED;
            snprintf(d->manager, sizeof d->manager, "%s", who);
            changed = 1;
        }
        break;
    }
    case OTPCA_REC_REJECTED:
        /* Only what the device signed counts (PROTOCOL.md 8.2): a wrong or
         * reused TOTP; not replays, forgeries or unknown keys. */
        if ((r->present & OTPCA_MSG_BIT(6)) && (r->reason == 8 || r->reason == 9)) {
            d->failures++;
            changed = 1;
        }
        break;
    case OTPCA_REC_LOCKED:
        if (d->state != OTPCA_STORE_REVOKED && d->state != OTPCA_STORE_DELETED) {
            d->state = OTPCA_STORE_LOCKED;
            changed = 1;
        }
        break;
    default:
        break;
    }
    return changed ? otpca_store_device_update(w->st, d) : OTPCA_ERR_OK;
}

static size_t on_record_upload(struct worker *w, const char *who, const uint8_t *in, size_t len)
{
    otpca_record_upload req;
    otpca_manager m;
    otpca_lease l;
    otpca_buf none = {NULL, 0};
    size_t reply = 0, n = 0, nflag = 0, fresh = 0;
    static const uint8_t empty[1];
    if (open_signed(w, who, in, len, &otpca_desc_record_upload, &req, &m, &reply))
        return reply;
    if (!buf_is(req.manager, who))
        return error_reply(w, OTPCA_WIRE_AUTH_FAILED, none, "the upload names another manager");
    if (find_lease(w, who, req.window, &l, &reply))
        return reply;
    otpca_buf ids[256], flagged[256];
    otpca_list_iter it;
    otpca_record r;
    otpca_err ret = otpca_store_begin(w->st);
    if (ret)
        return error_reply(w, OTPCA_WIRE_BUSY, none, "registry busy");
    otpca_list_iter_init(&it, &req.records);
    while (n < 256 && (ret = otpca_list_next(&it, &otpca_desc_record, &r)) == OTPCA_ERR_OK) {
        otpca_stored_record sr;
        otpca_device d;
        int dup = 0, flag = 0, found = 0;
        memset(&sr, 0, sizeof sr);
        memcpy(sr.id, r.id.p, 16);
        memcpy(sr.window, req.window.p, 16);
        snprintf(sr.manager, sizeof sr.manager, "%s", who);
        sr.kind = (int)r.kind;
        buf_to_str(r.serial, sr.serial, sizeof sr.serial);
        sr.time = r.time;
        sr.cert = r.cert.p;
        sr.cert_len = r.cert.p ? r.cert.len : 0;
        sr.step = r.step;
        sr.reason = (int)r.reason;
        uint8_t newkey[65];
        if ((r.kind == OTPCA_REC_KEY_UPDATED || r.kind == OTPCA_REC_ISSUED) && r.pubkey.p && /* a claim's key */
            otpca_p256_pub_normalize(r.pubkey.p, r.pubkey.len, newkey) == OTPCA_ERR_OK)
            sr.pubkey = newkey;
        /* Look (the flag is stored with the record, so a retry hears the
         * same verdict), store, and apply only for a new id: a repeat's
         * effects were applied the first time. */
        ret = look_record(w, who, &r, &d, &found, &flag);
        sr.flagged = flag;
        if (!ret)
            ret = otpca_store_record_put(w->st, &sr, &dup);
        if (!ret && dup) {
            flag = sr.flagged;
        } else if (!ret) {
            if (found)
                ret = apply_record(w, who, &r, &d, flag);
            fresh++;
        }
        if (ret)
            break;
        ids[n] = r.id;
        if (flag)
            flagged[nflag++] = r.id;
        n++;
    }
    if (ret == OTPCA_ERR_NOT_FOUND)
        ret = OTPCA_ERR_OK; /* end of the list */
    if (ret == OTPCA_ERR_EXISTS) {
        otpca_store_rollback(w->st);
        log_warn("worker %u: %s reused a record id with other content", w->idx, who);
        return error_reply(w, OTPCA_WIRE_CONFLICT, none, "record %zu: id already stored with other content", n);
    }
    if (!ret && fresh)
        audit(w->st, EV_RECORDS_ACKED, ACTOR, who, "%zu records (%zu new)", n, fresh);
    if (!ret)
        ret = otpca_store_commit(w->st);
    else
        otpca_store_rollback(w->st);
    if (ret) {
        log_error("worker %u: records of %s not stored: %s", w->idx, who, otpca_strerror(ret));
        return error_reply(w, ret == OTPCA_ERR_INVALID_ARG ? OTPCA_WIRE_BAD_REQUEST : OTPCA_WIRE_INTERNAL, none,
                           "records not stored");
    }
    /* Durable now (committed with synchronous=FULL): acknowledge. */
    otpca_record_ack ack;
    memset(&ack, 0, sizeof ack);
    ack.window = req.window;
    ack.ids.items = n ? (const void *)ids : (const void *)empty;
    ack.ids.count = n;
    if (nflag) {
        ack.flagged.items = flagged;
        ack.flagged.count = nflag;
    }
    return signed_reply(w, &otpca_desc_record_ack, &ack);
}

/* ----------------------------------------------------------- WindowClose */

static size_t on_window_close(struct worker *w, const char *who, const uint8_t *in, size_t len)
{
    otpca_window_close req;
    otpca_manager m;
    otpca_lease l;
    otpca_buf none = {NULL, 0};
    size_t reply = 0;
    static const uint8_t empty[1];
    if (open_signed(w, who, in, len, &otpca_desc_window_close, &req, &m, &reply))
        return reply;
    if (find_lease(w, who, req.window, &l, &reply))
        return reply;
    otpca_err ret = otpca_store_begin(w->st);
    if (!ret) {
        ret = otpca_store_lease_close(w->st, l.window, now_s());
        if (ret == OTPCA_ERR_OK) {
            audit(w->st, EV_WINDOW_CLOSED, ACTOR, who, "%" PRIu64 " enrolled, %" PRIu64 " rejected", req.enrolled,
                  req.rejected);
            ret = otpca_store_commit(w->st);
            if (!ret)
                log_info("window of %s closed: %" PRIu64 " enrolled, %" PRIu64 " rejected", who, req.enrolled,
                         req.rejected);
        } else {
            otpca_store_rollback(w->st);
            if (ret == OTPCA_ERR_STATE)
                ret = OTPCA_ERR_OK; /* closed before: a retry */
        }
    }
    if (ret)
        return error_reply(w, OTPCA_WIRE_INTERNAL, none, "close not stored");
    otpca_record_ack ack;
    memset(&ack, 0, sizeof ack);
    ack.window = req.window;
    ack.ids.items = empty;
    ack.ids.count = 0;
    return signed_reply(w, &otpca_desc_record_ack, &ack);
}

/* ------------------------------------------------------------ CrlPublish */

/* Kept only after its checks (PROTOCOL.md 7.7): signed by the key of the
 * manager's registered certificate, issued in its name, numbered as the
 * message says. */
static size_t on_crl_publish(struct worker *w, const char *who, const uint8_t *in, size_t len)
{
    otpca_crl_publish req;
    otpca_manager m;
    otpca_lease l;
    otpca_crl_info info;
    otpca_buf none = {NULL, 0};
    size_t reply = 0;
    int stored = 0;
    static const uint8_t empty[1];
    if (open_signed(w, who, in, len, &otpca_desc_crl_publish, &req, &m, &reply))
        return reply;
    if (!buf_is(req.manager, who))
        return error_reply(w, OTPCA_WIRE_AUTH_FAILED, none, "the CRL names another manager");
    if (find_lease(w, who, req.window, &l, &reply))
        return reply;
    otpca_err ret = otpca_crl_read(req.crl.p, req.crl.len, m.ca_cert, m.ca_cert_len, &info, NULL);
    if (ret)
        return error_reply(w, OTPCA_WIRE_BAD_REQUEST, none, "the CRL is not one of %s (%s)", who,
                           otpca_strerror(ret));
    if (info.number != req.number)
        return error_reply(w, OTPCA_WIRE_BAD_REQUEST, none, "CRL number %" PRIu64 ", the message says %" PRIu64,
                           info.number, req.number);
    if (!(ret = otpca_store_begin(w->st))) {
        ret = otpca_store_crl_put(w->st, who, info.number, (uint64_t)info.this_update, (uint64_t)info.next_update,
                                  req.crl.p, req.crl.len, &stored);
        if (!ret && stored)
            audit(w->st, EV_CRL_PUBLISHED, ACTOR, who, "CRL %" PRIu64 ", %zu entries", info.number, info.entries);
        if (!ret)
            ret = otpca_store_commit(w->st);
        else
            otpca_store_rollback(w->st);
    }
    if (ret)
        return error_reply(w, OTPCA_WIRE_INTERNAL, none, "CRL not stored");
    if (stored)
        log_info("CRL %" PRIu64 " of %s kept: %zu entries, next update %" PRId64, info.number, who, info.entries,
                 info.next_update);
    otpca_record_ack ack;
    memset(&ack, 0, sizeof ack);
    ack.window = req.window;
    ack.ids.items = empty;
    return signed_reply(w, &otpca_desc_record_ack, &ack);
}

/* ------------------------------------------------------------- dispatch */

static size_t handle(struct worker *w, const char *who, const uint8_t *in, size_t len)
{
    otpca_cose_sign1 c;
    const uint8_t *p = in;
    size_t n = len;
    unsigned type = 0;
    otpca_buf none = {NULL, 0};
    if (len && in[0] == 0xd2 && otpca_cose_sign1_decode(in, len, &c) == OTPCA_ERR_OK) {
        p = c.payload.p;
        n = c.payload.len;
    }
    if (otpca_msg_peek_type(p, n, &type))
        return error_reply(w, OTPCA_WIRE_BAD_REQUEST, none, "not an otpca message");
    switch (type) {
    case OTPCA_MSG_WINDOW_OPEN:
        return on_window_open(w, who, in, len);
    case OTPCA_MSG_SYNC_REQUEST:
        return on_sync(w, who, in, len);
    case OTPCA_MSG_RECORD_UPLOAD:
        return on_record_upload(w, who, in, len);
    case OTPCA_MSG_WINDOW_CLOSE:
        return on_window_close(w, who, in, len);
    case OTPCA_MSG_CRL_PUBLISH:
        return on_crl_publish(w, who, in, len);
    default:
        /* PROTOCOL.md section 9: on the cloud link an unknown type (a later
         * version's message) is UNSUPPORTED, as is a known message that is
         * no request to the cloud. */
        if (otpca_msg_desc_of(type))
            return error_reply(w, OTPCA_WIRE_UNSUPPORTED, none, "%s is not a request to the cloud",
                               otpca_msg_name(otpca_msg_desc_of(type)));
        return error_reply(w, OTPCA_WIRE_UNSUPPORTED, none, "unknown message type %u", type);
    }
}

/* A worker thread: the broker's worker loop with this file's handler. */
static size_t worker_handle(void *arg, const char *who, zmq_msg_t *client, const uint8_t *in, size_t len,
                            const uint8_t **out)
{
    struct worker *w = arg;
    (void)client;
    *out = w->out;
    return handle(w, who, in, len);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    otpca_broker_worker(w->sock, worker_handle, w);
    return NULL;
}

/* --------------------------------------------------------------- notices */

struct notice_ctx {
    struct worker *w; /* the main thread's signing context */
    void *pub;
    unsigned sent;
};

/* A signed Notice for a change managers should act on before their next
 * sync: revoked, locked, or approved for a first enrollment (never used:
 * no certificate, no accepted step, no failure). Other changes travel
 * with deltas. */
static int publish_one(const otpca_device *d, void *arg)
{
    struct notice_ctx *c = arg;
    otpca_notice n;
    memset(&n, 0, sizeof n);
    if (d->state == OTPCA_STORE_REVOKED)
        n.kind = OTPCA_NOTICE_REVOKED;
    else if (d->state == OTPCA_STORE_LOCKED)
        n.kind = OTPCA_NOTICE_LOCKED;
    else if (d->state == OTPCA_STORE_APPROVED && !d->has_cert && d->last_step == 0 && d->failures == 0)
        n.kind = OTPCA_NOTICE_APPROVED; /* a record that only counts a failure is no approval */
    else
        return 0;
    n.seq = d->seq;
    n.serial = str_buf(d->serial);
    n.time = now_s();
    if (n.kind == OTPCA_NOTICE_REVOKED && d->revoked_at) {
        n.time = d->revoked_at;
        n.reason = d->revoke_reason;
        n.present |= OTPCA_MSG_BIT(5);
    }
    size_t len = signed_reply(c->w, &otpca_desc_notice, &n);
    if (len && zmq_send(c->pub, c->w->out, len, ZMQ_DONTWAIT) >= 0)
        c->sent++;
    return 0;
}

static void publish_notices(struct server *srv, struct worker *mw, void *pub, uint64_t *last)
{
    uint64_t head = 0, oldest = 0, next = *last;
    if (otpca_store_seq(srv->st, &head, &oldest) || head <= *last)
        return;
    struct notice_ctx c = {mw, pub, 0};
    /* Bounded per tick; the rest goes out on the next ones. */
    if (otpca_store_changes(srv->st, *last, 4096, publish_one, &c, &next) == OTPCA_ERR_OK)
        *last = next;
    if (c.sent)
        log_debug("notices: %u published (up to sequence %" PRIu64 ")", c.sent, *last);
}

/* ---------------------------------------------------------------- serve */

static otpca_err worker_init(struct server *srv, struct worker *w, unsigned idx)
{
    memset(w, 0, sizeof *w);
    w->srv = srv;
    w->idx = idx;
    w->out = malloc(OTPCA_MSG_CLOUD_MAX);
    w->elist = calloc(SYNC_MAX, sizeof *w->elist);
    w->entries = otpca_secmem_alloc(SYNC_MAX * sizeof *w->entries); /* sealed seeds only, but cheap to lock */
    if (!w->out || !w->elist || !w->entries)
        return OTPCA_ERR_NOMEM;
    otpca_err ret = otpca_token_clone(srv->tok, &w->tok);
    if (!ret)
        ret = otpca_store_open(srv->cfg->store, &w->st);
    return ret;
}

static void worker_free(struct worker *w)
{
    otpca_store_destroy(&w->st);
    otpca_token_destroy(&w->tok);
    free(w->out);
    free(w->elist);
    if (w->entries)
        otpca_secmem_free(w->entries, SYNC_MAX * sizeof *w->entries);
    w->out = NULL;
    w->elist = NULL;
    w->entries = NULL;
}

static void *zsock(struct server *srv, int type, int curve)
{
    void *s = zmq_socket(srv->zctx, type);
    int one = 1, linger = 1000;
    int64_t max = OTPCA_MSG_CLOUD_MAX;
    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (curve && (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one) ||
                  zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, srv->curve_sec, 32) ||
                  zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) ||
                  zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max))) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

static otpca_err bind_to(void *s, const char *endpoint, char *bound, size_t cap)
{
    if (zmq_bind(s, endpoint) != 0) {
        log_error("cannot listen on %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return OTPCA_ERR_IO;
    }
    size_t n = cap;
    if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, bound, &n) != 0)
        snprintf(bound, cap, "%s", endpoint);
    return OTPCA_ERR_OK;
}

static otpca_err load_numbers(struct server *srv, const otpca_cloud_config *cfg)
{
    struct {
        const char *name, *value;
        unsigned long min, max, *out;
    } n[] = {
        {"workers", cfg->workers, 1, WORKERS_MAX, &srv->workers},
        {"max_skew", cfg->max_skew, 0, 3600, &srv->skew},
        {"lease_max_seconds", cfg->lease_max_seconds, 1, 2592000, &srv->lease_max_seconds},
        {"lease_max_enroll", cfg->lease_max_enroll, 1, 100000000, &srv->lease_max_enroll},
    };
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        if (otpca_cloud_config_uint(n[i].value, n[i].min, n[i].max, n[i].out)) {
            log_error("config: %s must be a number from %lu to %lu", n[i].name, n[i].min, n[i].max);
            return OTPCA_ERR_CONFIG;
        }
    return OTPCA_ERR_OK;
}

static otpca_err open_token(struct server *srv)
{
    otpca_p11_uri uri;
    if (!srv->cfg->token[0]) {
        log_error("config: no cloud token (token = pkcs11:...)");
        return OTPCA_ERR_CONFIG;
    }
    otpca_err ret = otpca_p11_uri_parse(srv->cfg->token, &uri);
    if (ret)
        return ret;
    ret = otpca_p11_new(uri.module_path[0] ? uri.module_path : NULL, &srv->p11);
    if (!ret)
        ret = otpca_token_open_uri(srv->p11, &uri, NULL, &srv->tok);
    otpca_p11_uri_clear(&uri);
    uint8_t pub[65];
    if (!ret && (ret = otpca_token_find(srv->tok, OTPCA_OBJ_PRIVATE_KEY, srv->cfg->sign_key, NULL, 0, &srv->sign)))
        log_error("token: no signing key '%s'", srv->cfg->sign_key);
    if (!ret && !(ret = otpca_token_pubkey_sec1(srv->tok, srv->sign, pub)))
        otpca_p256_kid(pub, srv->sign_kid);
    if (!ret && (ret = otpca_token_find(srv->tok, OTPCA_OBJ_SECRET_KEY, srv->cfg->wrap_key, NULL, 0, &srv->wrap)))
        log_error("token: no seed-wrap key '%s' (run otpca-cloud init)", srv->cfg->wrap_key);
    if (!ret)
        ret = otpca_seed_key_load(srv->tok, srv->wrap, srv->st, 0, &srv->seeds);
    if (!ret && !(srv->curve_sec = otpca_secmem_alloc(32)))
        ret = OTPCA_ERR_NOMEM;
    if (!ret)
        ret = otpca_curve_key(srv->tok, srv->cfg->curve_key, 0, srv->curve_pub, srv->curve_sec);
    if (ret == OTPCA_ERR_OBJECT_NOT_FOUND)
        log_error("run otpca-cloud init: it makes the CURVE key");
    return ret;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

otpca_err otpca_cloud_serve(const otpca_cloud_config *cfg, volatile sig_atomic_t *stop, FILE *ready)
{
    struct server srv;
    struct worker *w = NULL, mw;
    struct zap zap;
    otpca_broker b;
    void *frontend = NULL, *backend = NULL, *pub = NULL;
    char bound[OTPCA_CLOUD_CONFIG_VALUE_MAX], nbound[OTPCA_CLOUD_CONFIG_VALUE_MAX];
    memset(&srv, 0, sizeof srv);
    memset(&mw, 0, sizeof mw);
    memset(&zap, 0, sizeof zap);
    memset(&b, 0, sizeof b);
    srv.cfg = cfg;
    otpca_err ret = load_numbers(&srv, cfg);
    if (!ret)
        ret = otpca_store_open(cfg->store, &srv.st);
    if (!ret)
        ret = open_token(&srv);
    if (!ret && !(w = calloc(srv.workers, sizeof *w)))
        ret = OTPCA_ERR_NOMEM;
    for (unsigned i = 0; !ret && i < srv.workers; i++)
        ret = worker_init(&srv, &w[i], i);
    if (!ret) {
        mw.srv = &srv;
        mw.tok = srv.tok;
        if (!(mw.out = malloc(OTPCA_MSG_CLOUD_MAX)))
            ret = OTPCA_ERR_NOMEM;
    }
    if (!ret)
        ret = otpca_store_open(cfg->store, &zap.st);
    if (ret)
        goto out;

    oath_init();
    srv.zctx = zmq_ctx_new();
    zap.srv = &srv;
    zap.sock = zmq_socket(srv.zctx, ZMQ_REP);
    backend = zsock(&srv, ZMQ_ROUTER, 0);
    frontend = zsock(&srv, ZMQ_ROUTER, 1);
    pub = zsock(&srv, ZMQ_PUB, 1);
    if (!zap.sock || !backend || !frontend || !pub || zmq_bind(zap.sock, ZAP_ENDPOINT) != 0 ||
        zmq_bind(backend, WORKERS_ENDPOINT) != 0) {
        log_error("zeromq set-up failed: %s", zmq_strerror(zmq_errno()));
        ret = OTPCA_ERR_IO;
        goto out;
    }
    if (pthread_create(&zap.th, NULL, zap_main, &zap) == 0)
        zap.started = 1;
    for (unsigned i = 0; i < srv.workers; i++) {
        w[i].sock = zmq_socket(srv.zctx, ZMQ_DEALER);
        if (!w[i].sock || zmq_connect(w[i].sock, WORKERS_ENDPOINT) != 0 ||
            pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0) {
            ret = OTPCA_ERR_IO;
            goto out;
        }
        w[i].started = 1;
    }
    if (!zap.started || (ret = bind_to(frontend, cfg->listen, bound, sizeof bound)) ||
        (ret = bind_to(pub, cfg->notices, nbound, sizeof nbound))) {
        ret = ret ? ret : OTPCA_ERR_IO;
        goto out;
    }
    char z85[41], kid[2 * OTPCA_KID_LEN + 1];
    zmq_z85_encode(z85, srv.curve_pub, 32);
    for (size_t i = 0; i < OTPCA_KID_LEN; i++)
        snprintf(kid + 2 * i, 3, "%02x", srv.sign_kid[i]);
    /* Which keys this instance uses: during a key rotation two run side by side. */
    log_info("serving managers on %s, notices on %s (CURVE key '%s' %s, signing key '%s' kid %s, seed-wrap key "
             "'%s', %lu workers)",
             bound, nbound, cfg->curve_key, z85, cfg->sign_key, kid, cfg->wrap_key, srv.workers);
    if (ready) {
        fprintf(ready, "listening %s notices %s\n", bound, nbound);
        fflush(ready);
    }

    uint64_t last_seq = 0, oldest = 0, next_notice = 0;
    if (otpca_store_seq(srv.st, &last_seq, &oldest))
        last_seq = 0;
    uint64_t drain_until = 0;
    for (;;) {
        if (*stop && !drain_until) {
            log_info("stopping: no new requests; waiting for the workers");
            drain_until = mono_ms() + DRAIN_MS;
        }
        if (drain_until && (b.nidle == srv.workers || mono_ms() > drain_until))
            break;
        zmq_pollitem_t items[] = {{backend, 0, ZMQ_POLLIN, 0}, {frontend, 0, ZMQ_POLLIN, 0}};
        int nitems = b.nidle && !drain_until ? 2 : 1;
        int rc = zmq_poll(items, nitems, POLL_MS);
        if (rc < 0 && zmq_errno() != EINTR)
            break;
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN) && otpca_broker_backend_in(&b, backend, frontend) < 0)
            break;
        if (rc > 0 && nitems == 2 && (items[1].revents & ZMQ_POLLIN) && b.nidle &&
            otpca_broker_frontend_in(&b, frontend, backend) < 0)
            break;
        if (mono_ms() >= next_notice) {
            publish_notices(&srv, &mw, pub, &last_seq);
            next_notice = mono_ms() + NOTICE_POLL_MS;
        }
    }
    ret = OTPCA_ERR_OK;
    log_info("stopped");
out:
    otpca_broker_clear(&b);
    if (frontend)
        zmq_close(frontend);
    if (pub)
        zmq_close(pub);
    if (backend)
        zmq_close(backend);
    if (srv.zctx)
        zmq_ctx_shutdown(srv.zctx); /* blocked receives in the threads return ETERM */
    for (unsigned i = 0; w && i < srv.workers; i++) {
        if (w[i].started)
            pthread_join(w[i].th, NULL);
        if (w[i].sock)
            zmq_close(w[i].sock);
        worker_free(&w[i]);
    }
    if (zap.started)
        pthread_join(zap.th, NULL);
    if (zap.sock)
        zmq_close(zap.sock);
    if (srv.zctx)
        zmq_ctx_term(srv.zctx);
    otpca_store_destroy(&zap.st);
    free(w);
    free(mw.out);
    otpca_seed_key_destroy(&srv.seeds);
    if (srv.curve_sec)
        otpca_secmem_free(srv.curve_sec, 32);
    otpca_token_destroy(&srv.tok);
    otpca_p11_destroy(&srv.p11);
    otpca_store_destroy(&srv.st);
    return ret;
}
