/* An enrollment window: open, serve, close (window.h). */
#include "otpca/manager/window.h"

#include <errno.h>
#include <stdint.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "otpca/cloud/broker.h"
#include "otpca/cloud/client.h"
#include "otpca/cloud/curvekey.h"
#include "otpca/common/files.h"
#include "otpca/common/hex.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"
#include "otpca/manager/enroll.h"
#include "otpca/manager/mstore.h"
#include "otpca/proto/seedbox.h"
#include "otpca/token/crl.h"
#include "otpca/token/uri.h"

#include <wolfssl/wolfcrypt/asn.h>

#include "answers.h"
#include "journal.h"
#include "nonces.h"

#define BACKEND "inproc://otpca-manager-workers"
#define ANSWERS "inproc://otpca-manager-answers"
#define POLL_MS 100
#define CHECK_MS 500   /* token present, deadline */
#define UPLOAD_MS 1000 /* background record upload */
#define NOTICE_SLICE_MS 100 /* the uplink's wait for a notice, between looks at its stop flag */
#define DRAIN_MS 10000 /* workers finishing at close */
#define FLUSH_MS 10000 /* uploading at close */
#define OUT_MAX 4096
#define ACTOR_MAX 65

/* Audit events of the window itself (the writer's are in journal.c). */
enum { EV_OPENED = MGR_EV_OPENED, EV_CLOSED = MGR_EV_CLOSED, EV_TRUST_LIST = MGR_EV_TRUST_LIST,
       EV_ACKED = MGR_EV_ACKED, EV_CRL = MGR_EV_CRL };

struct box {
    uint64_t id;
    otpca_seedbox sb;
};

struct mgr {
    const otpca_mgr_config *cfg;
    otpca_mgr_numbers n;
    otpca_p11_t *p11;
    otpca_token_t *tok;
    otpca_obj_t key;
    uint8_t ca_pub[65];
    uint8_t ca_der[OTPCA_CERT_DER_MAX];
    size_t ca_len;
    uint8_t *netkey; /* locked, 64 */
    size_t netkey_len;
    uint8_t curve_pub[32];
    uint8_t *curve_sec; /* locked, 32 */
    uint8_t cloud_curve[32], cloud_pub[65];
    otpca_mstore *st;
    otpca_cloud_client *cc;
    int online;
    otpca_cloud_lease lease;
    char scope[64][65];
    size_t nscope;
    pthread_rwlock_t boxes_lock;
    struct box *boxes; /* locked memory, sorted by id */
    size_t nboxes, boxes_cap;
    pthread_mutex_t mu; /* win and sum */
    otpca_mgr_window win;
    otpca_mgr_summary *sum;
    otpca_mgr_profile profile;
    void *zctx;
    mgr_nonces *nonces;
    mgr_answers *answers; /* PROTOCOL.md 6.8 */
    mgr_journal *journal;
    pthread_t uplink;
    int uplink_started, uplink_stop; /* uplink_stop under mu */
};

struct worker {
    struct mgr *m;
    unsigned idx;
    pthread_t th;
    int started;
    otpca_token_t *tok;
    otpca_wolf_signer signer;
    int have_signer;
    WC_RNG rng;
    int have_rng;
    otpca_mstore *st;
    otpca_mgr_issuer is;
    void *sock;
    uint8_t *seed; /* locked, OTPCA_SEEDBOX_SEED_MAX */
    otpca_mdevice dev; /* the device the last check looked up (issue needs its MAC) */
    zmq_msg_t *client; /* the request being handled: a deferred answer takes it */
    uint8_t nonce[16]; /* the nonce the last check remembered */
    uint64_t nonce_time;
    int have_nonce;
    uint8_t out[OUT_MAX];
};

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static otpca_err token_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
    struct worker *w = ctx;
    size_t len = 64;
    return otpca_token_sign_digest(w->tok, w->m->key, digest, 32, OTPCA_SIG_RAW, sig, &len);
}

static otpca_err main_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
    struct mgr *m = ctx;
    size_t len = 64;
    return otpca_token_sign_digest(m->tok, m->key, digest, 32, OTPCA_SIG_RAW, sig, &len);
}

static otpca_err main_ecdh(void *ctx, const uint8_t peer[65], uint8_t z[32])
{
    struct mgr *m = ctx;
    return otpca_token_ecdh(m->tok, m->key, peer, 65, z);
}

static void audit(otpca_mstore *st, const struct mgr *m, unsigned event, const char *subject, const char *detail,
                  uint8_t hash[32])
{
    otpca_err ret = otpca_mstore_audit_append(st, now_s(), m->cfg->id, event, subject, detail, m->lease.window, hash);
    if (ret)
        log_error("audit: event %u for %s: %s", event, subject ? subject : "-", otpca_strerror(ret));
}

/* ------------------------------------------------------------ seed boxes */

static int add_box(uint64_t id, const uint8_t eph[65], void *arg)
{
    struct mgr *m = arg;
    for (size_t i = 0; i < m->nboxes; i++)
        if (m->boxes[i].id == id)
            return 0;
    if (m->nboxes == m->boxes_cap) {
        size_t cap = m->boxes_cap ? 2 * m->boxes_cap : 256;
        struct box *nb = otpca_secmem_alloc(cap * sizeof *nb);
        if (!nb)
            return 1;
        if (m->nboxes)
            memcpy(nb, m->boxes, m->nboxes * sizeof *nb);
        otpca_secmem_free(m->boxes, m->boxes_cap * sizeof *m->boxes);
        m->boxes = nb;
        m->boxes_cap = cap;
    }
    struct box *b = &m->boxes[m->nboxes];
    if (otpca_seedbox_receiver(&b->sb, eph, m->ca_pub, main_ecdh, m) != OTPCA_ERR_OK) {
        log_error("seed box %" PRIu64 " does not open with this manager's key", id);
        return 0; /* its devices will fail their TOTP check; the others go on */
    }
    b->id = id;
    m->nboxes++;
    return 0;
}

/* Every box the trust list refers to, each key derived once (ECDH in the
 * token). Ids only grow, so the array stays sorted. */
static otpca_err derive_boxes(struct mgr *m)
{
    pthread_rwlock_wrlock(&m->boxes_lock);
    otpca_err ret = otpca_mstore_boxes(m->st, add_box, m);
    pthread_rwlock_unlock(&m->boxes_lock);
    return ret;
}

static int open_seed(struct mgr *m, const otpca_mdevice *d, uint8_t *seed, size_t *len)
{
    int ok = -1;
    pthread_rwlock_rdlock(&m->boxes_lock);
    size_t lo = 0, hi = m->nboxes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->boxes[mid].id < d->box)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->nboxes && m->boxes[lo].id == d->box &&
        otpca_seedbox_open(&m->boxes[lo].sb, (const uint8_t *)d->serial, strlen(d->serial), d->seed, d->seed_len, seed,
                           OTPCA_SEEDBOX_SEED_MAX, len) == OTPCA_ERR_OK)
        ok = 0;
    pthread_rwlock_unlock(&m->boxes_lock);
    return ok;
}

/* ----------------------------------------------------------------- hooks */

static otpca_err hook_device(void *arg, const char *serial, otpca_mgr_device *out)
{
    struct worker *w = arg;
    const otpca_mdevice *d = &w->dev; /* kept for otpca_mgr_issue */
    otpca_err ret = otpca_mstore_device_get(w->st, serial, &w->dev);
    if (ret)
        return ret;
    memset(out, 0, sizeof *out);
    out->state = d->state;
    out->in_scope = w->m->nscope == 0;
    for (size_t i = 0; i < w->m->nscope && !out->in_scope; i++)
        out->in_scope = !strcmp(w->m->scope[i], d->batch);
    memcpy(out->pubkey, d->pubkey, d->pubkey_len);
    out->pubkey_len = d->pubkey_len;
    size_t len = 0;
    if (d->seed_len && open_seed(w->m, d, w->seed, &len) == 0) {
        out->seed = w->seed;
        out->seed_len = len;
    }
    out->digits = d->digits;
    out->period = d->period;
    out->algorithm = d->algorithm;
    out->last_step = d->last_step;
    out->has_cert = d->has_cert;
    memcpy(out->cert_hash, d->cert_hash, 32);
    out->claimable = d->unclaimed;
    return OTPCA_ERR_OK;
}

/* In memory at once (atomic across workers); durably with the job's
 * group commit. */
static int hook_nonce(void *arg, const uint8_t nonce[16], uint64_t t)
{
    struct worker *w = arg;
    if (mgr_nonces_add(w->m->nonces, nonce, t))
        return 1;
    memcpy(w->nonce, nonce, 16);
    w->nonce_time = t;
    w->have_nonce = 1;
    return 0;
}

static otpca_err hook_record(void *arg, const uint8_t id[16], otpca_mgr_issued *out)
{
    struct worker *w = arg;
    otpca_mrecord *r = malloc(sizeof *r);
    otpca_mdevice d;
    if (!r)
        return OTPCA_ERR_NOMEM;
    otpca_err ret = otpca_mstore_record_get(w->st, id, r);
    if (!ret && ((r->kind != OTPCA_REC_ISSUED && r->kind != OTPCA_REC_KEY_UPDATED) || !r->cert_len))
        ret = OTPCA_ERR_NOT_FOUND;
    /* A KeyUpdate's record, or an issuance with a new key (a Claim). */
    out->key_update = !ret && (r->kind == OTPCA_REC_KEY_UPDATED || r->pubkey_len == 65);
    if (!ret && out->key_update && r->pubkey_len != 65)
        ret = OTPCA_ERR_NOT_FOUND;
    if (!ret && !out->key_update)
        ret = otpca_mstore_device_get(w->st, r->serial, &d);
    if (!ret && !out->key_update && d.pubkey_len != 65)
        ret = OTPCA_ERR_NOT_FOUND;
    if (!ret) { /* the key the certificate certifies signs the confirmation */
        snprintf(out->serial, sizeof out->serial, "%s", r->serial);
        memcpy(out->cert_hash, r->cert_hash, 32);
        memcpy(out->pub, out->key_update ? r->pubkey : d.pubkey, 65);
    }
    free(r);
    return ret;
}

/* --------------------------------------------------------------- requests */

static size_t node_error(struct worker *w, unsigned code, const uint8_t *nonce)
{
    size_t len = 0;
    return otpca_mgr_error(code, nonce, w->out, sizeof w->out, &len) ? 0 : len;
}

static void count_reject(struct mgr *m, int reason)
{
    pthread_mutex_lock(&m->mu);
    m->sum->rejected++;
    if (reason >= 0 && reason < 13)
        m->sum->rejected_by[reason]++;
    pthread_mutex_unlock(&m->mu);
}

/* Hands a job to the journal writer: its answer leaves after the group
 * commit. The job takes the request's client id and the nonce the check
 * remembered. */
static size_t defer(struct worker *w, mgr_job *job, const uint8_t *nonce)
{
    zmq_msg_move(&job->client, w->client);
    if (w->have_nonce) {
        job->has_nonce = 1;
        memcpy(job->nonce, w->nonce, 16);
        job->nonce_time = w->nonce_time;
    }
    if (nonce) {
        job->has_req_nonce = 1;
        memcpy(job->req_nonce, nonce, 16);
    }
    if (!job->fail_code)
        job->fail_code = OTPCA_WIRE_INTERNAL;
    mgr_journal_submit(w->m->journal, job);
    return OTPCA_BROKER_DEFERRED;
}

static mgr_job *job_with_answer(struct worker *w, int kind, size_t len)
{
    mgr_job *job = mgr_journal_job_new(kind);
    if (job && len && (job->answer = malloc(len))) {
        memcpy(job->answer, w->out, len);
        job->answer_len = len;
    } else if (job && len) {
        mgr_journal_job_free(job);
        job = NULL;
    }
    return job;
}

/* A rejection: the precise reason in the log, the audit chain and a
 * journaled record; a lockout if it counts; the node hears only the
 * generic code. */
static size_t reject(struct worker *w, const otpca_mgr_verdict *v)
{
    const uint8_t *nonce = v->req.nonce.p;
    count_reject(w->m, v->reason);
    if (v->reason == OTPCA_MGR_MALFORMED) {
        log_warn("node request rejected: %s", otpca_mgr_reason_name(v->reason));
        return node_error(w, OTPCA_WIRE_BAD_REQUEST, NULL);
    }
    log_warn("%s of %s rejected: %s",
             v->type == OTPCA_MSG_REJOIN       ? "rejoin"
             : v->type == OTPCA_MSG_KEY_UPDATE ? "key update"
             : v->type == OTPCA_MSG_CLAIM      ? "claim"
                                               : "enrollment",
             v->serial, otpca_mgr_reason_name(v->reason));
    unsigned code = v->reason == OTPCA_MGR_WINDOW ? OTPCA_WIRE_WINDOW_CLOSED : OTPCA_WIRE_AUTH_FAILED;
    size_t len = node_error(w, code, nonce);
    mgr_job *job = job_with_answer(w, MGR_JOB_REJECTED, len);
    if (!job) {
        log_error("journal: rejection of %s not recorded: out of memory", v->serial);
        return len;
    }
    snprintf(job->serial, sizeof job->serial, "%s", v->serial);
    job->reason = v->reason;
    job->count_failure = v->count_failure;
    job->fail_code = code; /* the same answer if the journal fails */
    return defer(w, job, nonce);
}

/* EnrollRequest, Rejoin, KeyUpdate and Claim: the same checks but for the key
 * (enroll.h), the same issuance but for the certificate (none for a
 * Rejoin) and the record's kind. */
static size_t on_request(struct worker *w, unsigned type, const uint8_t *in, size_t len)
{
    struct mgr *m = w->m;
    otpca_mgr_verdict v;
    otpca_mgr_window win;
    otpca_mgr_hooks h = {hook_device, hook_nonce, w, hook_record};
    pthread_mutex_lock(&m->mu);
    win = m->win;
    pthread_mutex_unlock(&m->mu);
    if (type == OTPCA_MSG_REJOIN)
        otpca_mgr_check_rejoin(&win, now_s(), m->n.max_skew, &h, in, len, &v);
    else if (type == OTPCA_MSG_KEY_UPDATE)
        otpca_mgr_check_key_update(&win, now_s(), m->n.max_skew, &h, in, len, &v);
    else if (type == OTPCA_MSG_CLAIM)
        otpca_mgr_check_claim(&win, now_s(), m->n.max_skew, &h, in, len, &v);
    else
        otpca_mgr_check_enroll(&win, now_s(), m->n.max_skew, &h, in, len, &v);
    if (v.reason == OTPCA_MGR_REPLAY) { /* the same request again: the same answer (PROTOCOL.md 6.8) */
        uint8_t rh[32];
        otpca_sha256(in, len, rh);
        size_t n = mgr_answers_get(m->answers, v.serial, rh, w->out, sizeof w->out);
        if (n) {
            log_info("%s sent the same request again: the same answer again", v.serial);
            return n;
        }
    }
    otpca_memzero(w->seed, OTPCA_SEEDBOX_SEED_MAX);
    if (v.reason != OTPCA_MGR_OK)
        return reject(w, &v);

    /* w->dev: the device the accepted check looked up (no second read). */
    mgr_job *job = mgr_journal_job_new(MGR_JOB_ISSUED);
    otpca_mrecord *r = job ? (job->rec = calloc(1, sizeof *job->rec)) : NULL;
    size_t out_len = 0;
    otpca_err ret = r ? OTPCA_ERR_OK : OTPCA_ERR_NOMEM;
    if (!ret) { /* a place under the window's limit, given back if the journal refuses */
        pthread_mutex_lock(&m->mu);
        if (m->win.issued >= m->win.max_enroll)
            ret = OTPCA_ERR_STATE;
        else
            m->win.issued++;
        pthread_mutex_unlock(&m->mu);
        if (ret) {
            mgr_journal_job_free(job);
            v.reason = OTPCA_MGR_WINDOW;
            return reject(w, &v);
        }
    }
    if (!ret) {
        r->cert_len = sizeof r->cert;
        ret = otpca_mgr_issue(&w->is, &v, w->dev.mac, w->dev.mac_len, now_s(), r->id, r->cert, &r->cert_len, w->out,
                              sizeof w->out, &out_len);
        if (ret) {
            pthread_mutex_lock(&m->mu);
            m->win.issued--;
            pthread_mutex_unlock(&m->mu);
        }
    }
    if (!ret && !(job->answer = malloc(out_len)))
        ret = OTPCA_ERR_NOMEM;
    if (ret) {
        mgr_journal_job_free(job);
        log_error("issuance for %s failed, nothing sent: %s", v.serial, otpca_strerror(ret));
        return node_error(w, OTPCA_WIRE_INTERNAL, v.req.nonce.p);
    }
    memcpy(job->answer, w->out, out_len);
    job->answer_len = out_len;
    /* Journaled (fsync) before the response leaves, with the step accepted
     * in the same transaction, so a code is good once even across workers. */
    if (r->cert_len)
        otpca_sha256(r->cert, r->cert_len, job->cert_hash);
    r->kind = type == OTPCA_MSG_REJOIN       ? OTPCA_REC_REJOINED
              : type == OTPCA_MSG_KEY_UPDATE ? OTPCA_REC_KEY_UPDATED
                                             : OTPCA_REC_ISSUED;
    if (r->kind == OTPCA_REC_KEY_UPDATED || type == OTPCA_MSG_CLAIM) { /* a Claim: an issuance with its new key */
        memcpy(r->pubkey, v.pub, 65);
        r->pubkey_len = 65;
    }
    snprintf(job->serial, sizeof job->serial, "%s", v.serial);
    snprintf(r->serial, sizeof r->serial, "%s", v.serial);
    r->time = now_s();
    r->has_step = 1;
    r->step = v.step;
    otpca_sha256(in, len, job->req_hash);
    return defer(w, job, v.req.nonce.p);
}

static size_t on_confirm(struct worker *w, const uint8_t *in, size_t len)
{
    struct mgr *m = w->m;
    otpca_mgr_hooks h = {hook_device, hook_nonce, w, hook_record};
    otpca_enroll_confirm req;
    otpca_mgr_issued rec;
    size_t out_len = 0;
    int reason = otpca_mgr_check_confirm(&h, in, len, &req, &rec);
    if (reason) {
        count_reject(m, reason);
        log_warn("confirmation rejected: %s", otpca_mgr_reason_name(reason));
        return node_error(w, reason == OTPCA_MGR_MALFORMED ? OTPCA_WIRE_BAD_REQUEST : OTPCA_WIRE_AUTH_FAILED,
                          reason == OTPCA_MGR_MALFORMED ? NULL : req.nonce.p);
    }
    if (otpca_mgr_confirm_ack(&w->is, &req, w->out, sizeof w->out, &out_len))
        return node_error(w, OTPCA_WIRE_INTERNAL, NULL);
    mgr_job *job = job_with_answer(w, MGR_JOB_CONFIRMED, out_len);
    if (!job)
        return node_error(w, OTPCA_WIRE_INTERNAL, req.nonce.p);
    /* The CONFIRMED record's id follows from the issuance's, so a repeated
     * confirmation is journaled once (and the cloud finds the issuance). */
    otpca_record_confirm_id(req.record.p, job->confirm_id);
    memcpy(job->cert_hash, rec.cert_hash, 32);
    job->key_update = rec.key_update;
    memcpy(job->pubkey, rec.pub, 65);
    snprintf(job->serial, sizeof job->serial, "%s", rec.serial);
    return defer(w, job, req.nonce.p);
}

static size_t handle(void *arg, const char *user, zmq_msg_t *client, const uint8_t *in, size_t len,
                     const uint8_t **out)
{
    struct worker *w = arg;
    w->client = client;
    w->have_nonce = 0;
    otpca_cose_sign1 c;
    const uint8_t *p = in;
    size_t n = len, out_len = 0;
    unsigned type = 0;
    (void)user;
    *out = w->out;
    if (len > OTPCA_MSG_NODE_MAX)
        return node_error(w, OTPCA_WIRE_BAD_REQUEST, NULL);
    /* Signed messages: the type is in the payload; a double-signed one
     * (KeyUpdate, Claim) has a COSE_Sign1 there, and the type in its. */
    for (int depth = 0; depth < 2 && n && p[0] == 0xd2 && otpca_cose_sign1_decode(p, n, &c) == OTPCA_ERR_OK; depth++) {
        p = c.payload.p;
        n = c.payload.len;
    }
    if (otpca_msg_peek_type(p, n, &type))
        return node_error(w, OTPCA_WIRE_BAD_REQUEST, NULL);
    switch (type) {
    case OTPCA_MSG_TIME_REQUEST:
        return otpca_mgr_time_response(&w->is, in, len, now_s(), w->out, sizeof w->out, &out_len)
                   ? node_error(w, OTPCA_WIRE_BAD_REQUEST, NULL)
                   : out_len;
    case OTPCA_MSG_ENROLL_REQUEST:
    case OTPCA_MSG_REJOIN:
    case OTPCA_MSG_KEY_UPDATE:
    case OTPCA_MSG_CLAIM:
        return on_request(w, type, in, len);
    case OTPCA_MSG_ENROLL_CONFIRM:
        return on_confirm(w, in, len);
    default:
        return node_error(w, OTPCA_WIRE_BAD_REQUEST, NULL);
    }
}

/* The journal writer's report on each job, after its group. */
static void job_done(void *arg, const mgr_job *job)
{
    struct mgr *m = arg;
    pthread_mutex_lock(&m->mu);
    if (job->kind == MGR_JOB_ISSUED && job->outcome != 0)
        m->win.issued--; /* the place reserved under the limit */
    if (job->kind == MGR_JOB_ISSUED && job->outcome == 0)
        m->sum->issued++;
    if (job->kind == MGR_JOB_ISSUED && job->outcome == 1) {
        m->sum->rejected++;
        if (job->reason >= 0 && job->reason < 13)
            m->sum->rejected_by[job->reason]++;
    }
    if (job->kind == MGR_JOB_CONFIRMED && job->outcome == 0)
        m->sum->confirmed++;
    pthread_mutex_unlock(&m->mu);
    if (job->kind == MGR_JOB_ISSUED && job->outcome == 0) {
        log_info("certificate issued to %s", job->serial);
        if (job->answer && mgr_answers_put(m->answers, job->serial, job->req_hash, job->answer, job->answer_len))
            log_warn("the answer to %s is not kept: a repeated request will be refused", job->serial);
    }
    if (job->kind == MGR_JOB_CONFIRMED && job->outcome == 0)
        log_info("%s enrolled", job->serial);
}

static int load_nonce(const uint8_t nonce[16], uint64_t t, void *arg)
{
    return mgr_nonces_add(arg, nonce, t) < 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "mgr-worker-%u", w->idx % 100);
    prctl(PR_SET_NAME, name); /* top -H, /proc/PID/task/TID/comm; the bench's CPU by thread */
    otpca_broker_worker(w->sock, handle, w);
    return NULL;
}

static otpca_err worker_init(struct mgr *m, struct worker *w, unsigned idx)
{
    memset(w, 0, sizeof *w);
    w->m = m;
    w->idx = idx;
    if (!(w->seed = otpca_secmem_alloc(OTPCA_SEEDBOX_SEED_MAX)))
        return OTPCA_ERR_NOMEM;
    otpca_err ret = otpca_token_clone(m->tok, &w->tok);
    if (!ret)
        ret = otpca_wolf_signer_init(&w->signer, w->tok, m->key);
    w->have_signer = !ret;
    if (!ret && wc_InitRng(&w->rng) != 0)
        ret = OTPCA_ERR_CRYPTO;
    w->have_rng = !ret;
    if (!ret)
        ret = otpca_mstore_open(m->cfg->store, &w->st);
    w->is.ca = &w->signer;
    w->is.rng = &w->rng;
    w->is.cose.sign = token_sign;
    w->is.cose.ctx = w;
    otpca_p256_kid(m->ca_pub, w->is.cose.kid);
    w->is.ca_der = m->ca_der;
    w->is.ca_len = m->ca_len;
    w->is.profile = &m->profile;
    w->is.netkey = m->netkey;
    w->is.netkey_len = m->netkey_len;
    w->is.netkey_epoch = m->n.netkey_epoch;
    return ret;
}

static void worker_free(struct worker *w)
{
    otpca_mstore_destroy(&w->st);
    if (w->have_rng)
        wc_FreeRng(&w->rng);
    if (w->have_signer)
        otpca_wolf_signer_free(&w->signer);
    otpca_token_destroy(&w->tok);
    if (w->seed)
        otpca_secmem_free(w->seed, OTPCA_SEEDBOX_SEED_MAX);
    w->seed = NULL;
}

/* ------------------------------------------------------------ open steps */

static otpca_err read_text(const char *path, char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        log_error("%s: %s", path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    *len = fread(buf, 1, cap - 1, f);
    int bad = ferror(f) || !feof(f);
    fclose(f);
    if (bad) {
        log_error("%s: unreadable or too large", path);
        return OTPCA_ERR_IO;
    }
    while (*len && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r' || buf[*len - 1] == ' '))
        (*len)--;
    buf[*len] = '\0';
    return OTPCA_ERR_OK;
}

/* The manager certificate, which must certify the token's key. */
static otpca_err load_ca(struct mgr *m)
{
    static char file[8192];
    size_t n = 0;
    m->ca_len = sizeof m->ca_der;
    otpca_err ret = read_text(m->cfg->ca_cert, file, sizeof file, &n);
    if (!ret && otpca_cert_to_der((const unsigned char *)file, n, m->ca_der, &m->ca_len))
        ret = OTPCA_ERR_CERT;
    if (ret) {
        log_error("ca_cert %s: not a certificate", m->cfg->ca_cert);
        return ret;
    }
    DecodedCert dc;
    uint8_t spki[128];
    word32 spki_len = sizeof spki;
    wc_InitDecodedCert(&dc, m->ca_der, (word32)m->ca_len, NULL);
    int ok = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) == 0 && dc.isCA &&
             wc_GetPubKeyDerFromCert(&dc, spki, &spki_len) == 0 && spki_len >= 65 &&
             !memcmp(spki + spki_len - 65, m->ca_pub, 65);
    wc_FreeDecodedCert(&dc);
    if (!ok) {
        log_error("ca_cert %s is not a CA certificate for the token's key '%s'", m->cfg->ca_cert, m->cfg->ca_key);
        return OTPCA_ERR_CERT;
    }
    return OTPCA_ERR_OK;
}

static otpca_err load_keys(struct mgr *m)
{
    char *text = otpca_secmem_alloc(512);
    size_t n = 0, len = 0;
    otpca_err ret = text ? OTPCA_ERR_OK : OTPCA_ERR_NOMEM;
    if (!ret && !m->cfg->netkey_file[0]) {
        log_error("config: netkey_file (the network key handed to nodes, hex) is required");
        ret = OTPCA_ERR_CONFIG;
    }
    if (!ret)
        ret = read_text(m->cfg->netkey_file, text, 512, &n);
    if (!ret && (otpca_hex_decode(text, n, m->netkey, 64, &m->netkey_len) || m->netkey_len < 16)) {
        log_error("netkey_file %s: 16 to 64 bytes in hex", m->cfg->netkey_file);
        ret = OTPCA_ERR_CONFIG;
    }
    if (text)
        otpca_secmem_free(text, 512);
    if (!ret && (strlen(m->cfg->cloud_curve_key) != 40 || !zmq_z85_decode(m->cloud_curve, m->cfg->cloud_curve_key))) {
        log_error("config: cloud_curve_key must be the cloud's CURVE key (40 Z85 characters, from otpca-cloud init)");
        ret = OTPCA_ERR_CONFIG;
    }
    if (!ret && (otpca_hex_decode(m->cfg->cloud_sign_key, strlen(m->cfg->cloud_sign_key), m->cloud_pub, 65, &len) ||
                 len != 65 || otpca_p256_pub_normalize(m->cloud_pub, 65, m->cloud_pub))) {
        log_error("config: cloud_sign_key must be the cloud's signing key (65 bytes hex, from otpca-cloud init)");
        ret = OTPCA_ERR_CONFIG;
    }
    return ret;
}

static otpca_err open_token(struct mgr *m, const otpca_mgr_open_opts *o)
{
    otpca_p11_uri uri;
    otpca_err ret = otpca_p11_uri_parse(m->cfg->token, &uri);
    if (ret) {
        log_error("config: token is not a PKCS#11 URI");
        return OTPCA_ERR_CONFIG;
    }
    ret = otpca_p11_new(uri.module_path[0] ? uri.module_path : NULL, &m->p11);
    if (!ret)
        ret = otpca_token_open_uri(m->p11, &uri, uri.pin_source[0] ? NULL : o->pin, &m->tok);
    otpca_p11_uri_clear(&uri);
    if (!ret && (ret = otpca_token_find(m->tok, OTPCA_OBJ_PRIVATE_KEY, m->cfg->ca_key, NULL, 0, &m->key)))
        log_error("token: no CA key '%s'", m->cfg->ca_key);
    if (!ret)
        ret = otpca_token_pubkey_sec1(m->tok, m->key, m->ca_pub);
    if (!ret && (ret = otpca_curve_key(m->tok, m->cfg->curve_key, 0, m->curve_pub, m->curve_sec)))
        log_error("token: no CURVE key '%s' (otpca-manager ca certify makes it)", m->cfg->curve_key);
    return ret;
}

/* The operator's TOTP now, computed in the operator token (SHA-1, 6
 * digits, 30 s: the rig's and most tokens' profile). */
static otpca_err operator_totp(struct mgr *m, uint32_t *code)
{
    otpca_p11_uri uri;
    otpca_token_t *op = NULL;
    otpca_obj_t seed;
    if (!m->cfg->operator_token[0]) {
        log_error("config: operator_token (or a typed code) is needed to open a window");
        return OTPCA_ERR_CONFIG;
    }
    otpca_err ret = otpca_p11_uri_parse(m->cfg->operator_token, &uri);
    if (!ret)
        ret = otpca_token_open_uri(m->p11, &uri, NULL, &op);
    if (!ret)
        ret = otpca_token_find_uri(op, &uri, OTPCA_OBJ_SECRET_KEY, &seed);
    if (!ret)
        ret = otpca_token_totp(op, seed, OTPCA_OTP_SHA1, time(NULL), 30, 6, code);
    otpca_token_destroy(&op);
    otpca_p11_uri_clear(&uri);
    if (ret)
        log_error("operator token: %s", otpca_strerror(ret));
    return ret;
}

/* Applies verified batches to the journal's trust list. */
struct sync_ctx {
    struct mgr *m;
    int in_snapshot;
    uint64_t entries;
    uint64_t apply_ms; /* of the sync's time, spent applying batches here */
};

static otpca_err apply_batch_timed(struct sync_ctx *s, const otpca_sync_batch *b);

static otpca_err apply_batch(void *arg, const otpca_sync_batch *b, const uint8_t *raw, size_t len)
{
    struct sync_ctx *s = arg;
    uint64_t t0 = mono_ms();
    (void)raw, (void)len;
    otpca_err ret = apply_batch_timed(s, b);
    s->apply_ms += mono_ms() - t0;
    return ret;
}

static otpca_err apply_batch_timed(struct sync_ctx *s, const otpca_sync_batch *b)
{
    otpca_err ret;
    s->entries += b->entries.count;
    if (b->kind == OTPCA_SYNC_DELTA)
        return otpca_mstore_apply_delta(s->m->st, b);
    if (!s->in_snapshot) {
        if ((ret = otpca_mstore_snapshot_begin(s->m->st)))
            return ret;
        s->in_snapshot = 1;
    }
    if ((ret = otpca_mstore_snapshot_chunk(s->m->st, b)))
        return ret;
    if (!b->cursor.p) { /* the last chunk */
        s->in_snapshot = 0;
        return otpca_mstore_snapshot_commit(s->m->st, b->to);
    }
    return OTPCA_ERR_OK;
}

static otpca_err sync_trust_list(struct mgr *m)
{
    struct sync_ctx s = {m, 0, 0, 0};
    uint64_t since = 0, to = 0, t0 = mono_ms();
    otpca_err ret = otpca_mstore_sync_seq(m->st, &since);
    if (!ret)
        ret = otpca_cloud_sync(m->cc, m->lease.window, since, 0, apply_batch, &s, &to);
    if (s.in_snapshot)
        otpca_mstore_snapshot_abort(m->st);
    if (ret) {
        log_error("trust-list sync failed: %s", otpca_strerror(ret));
        return ret;
    }
    char detail[96];
    snprintf(detail, sizeof detail, "sequence %" PRIu64 " -> %" PRIu64 ", %" PRIu64 " entries", since, to, s.entries);
    audit(m->st, m, EV_TRUST_LIST, NULL, detail, NULL);
    log_info("trust list synced: %s, in %" PRIu64 " ms (%" PRIu64 " ms applying them)", detail, mono_ms() - t0,
             s.apply_ms);
    return OTPCA_ERR_OK;
}

static otpca_err load_offline_lease(struct mgr *m, const char *path)
{
    static uint8_t buf[8192];
    FILE *f = fopen(path, "rb");
    if (!f) {
        log_error("%s: %s", path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    otpca_err ret = otpca_cloud_lease_check(m->cloud_pub, m->cfg->id, NULL, buf, n, &m->lease);
    if (ret)
        log_error("%s: not a lease for %s signed by the cloud: %s", path, m->cfg->id, otpca_strerror(ret));
    else if (!m->lease.offline)
        log_warn("%s is an online lease; using it offline", path);
    return ret;
}

static otpca_err connect_cloud(struct mgr *m)
{
    otpca_cloud_client_config cc;
    memset(&cc, 0, sizeof cc);
    /* Each may list several instances (client.h): requests go to any of
     * them, notices come from all of them. */
    cc.endpoint = m->cfg->cloud;
    cc.notices = m->cfg->cloud_notices;
    memcpy(cc.server_key, m->cloud_curve, 32);
    memcpy(cc.public_key, m->curve_pub, 32);
    memcpy(cc.secret_key, m->curve_sec, 32);
    memcpy(cc.cloud_sign_pub, m->cloud_pub, 65);
    cc.manager_id = m->cfg->id;
    cc.signer.sign = main_sign;
    cc.signer.ctx = m;
    otpca_p256_kid(m->ca_pub, cc.signer.kid);
    cc.timeout_ms = 3000;
    cc.retries = 1;
    otpca_err ret = otpca_cloud_client_new(&cc, &m->cc);
    otpca_memzero(cc.secret_key, 32);
    return ret;
}

static otpca_err open_lease(struct mgr *m, const otpca_mgr_open_opts *o)
{
    otpca_err ret = connect_cloud(m);
    if (ret)
        return ret;
    uint32_t totp = o->totp;
    if (!o->have_totp && (ret = operator_totp(m, &totp)))
        return ret;
    ret = otpca_cloud_window_open(m->cc, m->cfg->operator_, totp, m->n.window_seconds, m->n.max_enroll, NULL, 0,
                                  &m->lease);
    otpca_memzero(&totp, sizeof totp);
    if (ret == OTPCA_ERR_OK) {
        m->online = 1;
        return otpca_mstore_meta_put(m->st, "lease", m->lease.raw, m->lease.raw_len);
    }
    if ((ret == OTPCA_ERR_TIMEOUT || ret == OTPCA_ERR_IO) && o->lease_file) {
        log_warn("the cloud does not answer: opening on the offline lease %s and the cached trust list", o->lease_file);
        ret = load_offline_lease(m, o->lease_file);
        /* Kept, so that `records upload` can send this window's records later. */
        return ret ? ret : otpca_mstore_meta_put(m->st, "lease", m->lease.raw, m->lease.raw_len);
    }
    const char *detail = "";
    if (ret == OTPCA_ERR_REFUSED)
        otpca_cloud_client_error(m->cc, &detail);
    log_error("no lease from the cloud: %s%s%s", otpca_strerror(ret), detail[0] ? ": " : "", detail);
    return ret;
}

/* ------------------------------------------------------ background work */

struct upload {
    otpca_mrecord r[256];
    otpca_record w[256];
    uint8_t acked[256], flagged[256], ids[256][16];
    size_t n;
};

static int collect(const otpca_mrecord *r, void *arg)
{
    struct upload *u = arg;
    u->r[u->n++] = *r;
    return u->n == 256;
}

/* Uploads up to 256 journaled records: how many the cloud acknowledged,
 * or -1 if it could not be reached. */
static long upload_some(struct mgr *m)
{
    struct upload *u = calloc(1, sizeof *u);
    long acked = -1;
    if (!u)
        return -1;
    if (otpca_mstore_records_pending(m->st, 256, collect, u) != OTPCA_ERR_OK || u->n == 0) {
        free(u);
        return 0;
    }
    for (size_t i = 0; i < u->n; i++) {
        const otpca_mrecord *r = &u->r[i];
        otpca_record *w = &u->w[i];
        memset(w, 0, sizeof *w);
        w->id = (otpca_buf){r->id, 16};
        w->kind = (uint64_t)r->kind;
        w->serial = (otpca_buf){(const uint8_t *)r->serial, strlen(r->serial)};
        w->time = r->time;
        if (r->cert_len)
            w->cert = (otpca_buf){r->cert, r->cert_len};
        if (r->has_step) {
            w->step = r->step;
            w->present |= OTPCA_MSG_BIT(5);
        }
        if (r->has_reason) {
            w->reason = r->reason;
            w->present |= OTPCA_MSG_BIT(6);
        }
        if (r->has_audit)
            w->audit = (otpca_buf){r->audit, 32};
        if (r->pubkey_len)
            w->pubkey = (otpca_buf){r->pubkey, r->pubkey_len};
    }
    otpca_err ret = otpca_cloud_upload(m->cc, m->lease.window, u->w, u->n, u->acked, u->flagged);
    if (!ret) {
        size_t k = 0;
        for (size_t i = 0; i < u->n; i++)
            if (u->acked[i]) {
                memcpy(u->ids[k++], u->r[i].id, 16);
                if (u->flagged[i])
                    log_warn("the cloud flagged the record for %s (enrolled by another manager)", u->r[i].serial);
            }
        if (!(ret = otpca_mstore_records_acked(m->st, (const uint8_t(*)[16])u->ids, k))) {
            acked = (long)k;
            if (k)
                audit(m->st, m, EV_ACKED, NULL, "records acknowledged by the cloud", NULL);
        }
    } else {
        log_warn("record upload: %s (they stay journaled)", otpca_strerror(ret));
    }
    free(u);
    return acked;
}

static int count_pending(const otpca_mrecord *r, void *arg)
{
    (void)r;
    (*(uint64_t *)arg)++;
    return 0;
}

/* Notices from the cloud, applied at once (a revocation takes effect for
 * the next request): waits up to wait_ms for the first, then takes what
 * else has arrived.
 *
 * With several cloud instances (cloud_notices a list) every instance
 * publishes every change, so the same notice usually comes once per
 * instance, in any order with the others. That is harmless: a notice
 * carries the change's sequence, otpca_mstore_device_set_state refuses
 * one older than the device's state (OTPCA_ERR_STATE, logged) and a
 * repeat of the same sequence writes the same state again; an approval
 * seen twice at most syncs a delta twice. */
static otpca_err apply_notices(struct mgr *m, int wait_ms)
{
    otpca_notice nt;
    char serial[65];
    otpca_err got = OTPCA_ERR_OK;
    for (int i = 0; i < 1000 && (got = otpca_cloud_notice_wait(m->cc, i ? 0 : wait_ms, &nt, serial, sizeof serial,
                                                                NULL)) == OTPCA_ERR_OK;
         i++) {
        int state = nt.kind == OTPCA_NOTICE_REVOKED ? OTPCA_DEV_REVOKED
                    : nt.kind == OTPCA_NOTICE_LOCKED ? OTPCA_DEV_LOCKED
                                                     : OTPCA_DEV_APPROVED;
        otpca_mdevice d;
        if (nt.kind == OTPCA_NOTICE_UNLOCKED && otpca_mstore_device_get(m->st, serial, &d) == OTPCA_ERR_OK &&
            d.has_cert)
            state = OTPCA_DEV_ENROLLED; /* as the cloud does on unlock */
        int revoked = state == OTPCA_DEV_REVOKED;
        unsigned reason = revoked && (nt.present & OTPCA_MSG_BIT(5)) && nt.reason <= 10 &&
                                  otpca_crl_reason_ok((int)nt.reason)
                              ? (unsigned)nt.reason
                              : 0;
        otpca_err ret =
            otpca_mstore_device_set_state(m->st, serial, state, nt.seq, revoked ? nt.time : 0, reason);
        if (ret == OTPCA_ERR_NOT_FOUND && state == OTPCA_DEV_APPROVED) {
            /* A device approved during the window: bring it in now. */
            if (sync_trust_list(m) == OTPCA_ERR_OK && derive_boxes(m) != OTPCA_ERR_OK)
                log_warn("seed boxes of the new devices not derived");
        } else if (!ret) {
            log_info("notice: %s is now %s", serial,
                     state == OTPCA_DEV_REVOKED ? "revoked" : state == OTPCA_DEV_LOCKED ? "locked" : "approved");
        }
    }
    return got;
}

/* The uplink of an online window, a thread of its own: records up as
 * fast as they are journaled (a backlog in batches of 256), notices in.
 * While it runs it alone uses m->st and m->cc, so a slow cloud never holds
 * up the main loop that passes the nodes' requests and answers on. */
static void *uplink_main(void *arg)
{
    struct mgr *m = arg;
    prctl(PR_SET_NAME, "mgr-uplink");
    for (;;) {
        uint64_t total = 0;
        long k = 0;
        for (int i = 0; i < 64 && (k = upload_some(m)) > 0; i++) {
            total += (uint64_t)k;
            if (k < 256)
                break;
        }
        apply_notices(m, 0);
        pthread_mutex_lock(&m->mu);
        m->sum->uploaded += total;
        int stop = m->uplink_stop;
        pthread_mutex_unlock(&m->mu);
        /* Caught up (or the cloud is away): wait a while for more records,
         * listening for notices meanwhile, so a revocation is applied as
         * soon as it arrives, and looking at the stop flag every slice. */
        uint64_t until = mono_ms() + UPLOAD_MS;
        while (!stop && k != 256 && mono_ms() < until) {
            otpca_err got = apply_notices(m, NOTICE_SLICE_MS);
            if (got != OTPCA_ERR_OK && got != OTPCA_ERR_TIMEOUT) /* no notices endpoint: no waiting there */
                usleep(NOTICE_SLICE_MS * 1000);
            pthread_mutex_lock(&m->mu);
            stop = m->uplink_stop;
            pthread_mutex_unlock(&m->mu);
        }
        if (stop)
            return NULL;
    }
}

static void uplink_join(struct mgr *m)
{
    if (!m->uplink_started)
        return;
    pthread_mutex_lock(&m->mu);
    m->uplink_stop = 1;
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->uplink, NULL);
    m->uplink_started = 0;
}

/* ------------------------------------------------------------------ CRL */

struct crl_build {
    otpca_crl_entry *e;
    size_t n, cap, expired;
    int64_t now;
    int failed;
};

static int crl_collect(const otpca_mcrl_entry *me, void *arg)
{
    struct crl_build *b = arg;
    otpca_crl_entry e = {.revoked_at = (int64_t)me->revoked_at, .reason = (int)me->reason};
    int64_t not_after = 0;
    if (otpca_crl_cert_serial(me->cert, me->cert_len, &e, &not_after)) {
        log_warn("crl: a journaled certificate of %s does not parse; left out", me->serial);
        return 0;
    }
    if (not_after < b->now) { /* RFC 5280 3.3: an expired certificate may leave the CRL */
        b->expired++;
        return 0;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        otpca_crl_entry *p = realloc(b->e, cap * sizeof *p);
        if (!p) {
            b->failed = 1;
            return 1;
        }
        b->e = p;
        b->cap = cap;
    }
    b->e[b->n++] = e;
    return 0;
}

/* The number of the last CRL signed, from the journal (0: none yet). */
static uint64_t crl_number(struct mgr *m)
{
    uint8_t v[8];
    size_t len = 0;
    uint64_t n = 0;
    if (otpca_mstore_meta_get(m->st, "crl_number", v, sizeof v, &len) == OTPCA_ERR_OK && len == sizeof v)
        for (size_t i = 0; i < sizeof v; i++)
            n = n << 8 | v[i];
    return n;
}

/* Signs the manager's CRL in the token (PROTOCOL.md 7.7): every unexpired
 * certificate of the journal's crl_entries, cRLNumber one more than the
 * last, nextUpdate crl_days on. The number is journaled before the CRL
 * leaves, so no two CRLs share one; the CRL goes to crl_file (if set) and,
 * online, to the cloud. A failure is logged and leaves the window open:
 * revoked devices are refused by the trust list either way. */
static void publish_crl(struct mgr *m, const char *when)
{
    struct crl_build b = {.now = (int64_t)now_s()};
    unsigned char *der = NULL;
    size_t der_len = 0;
    uint64_t number = crl_number(m) + 1;
    uint8_t v[8];
    otpca_err ret = otpca_mstore_crl_scan(m->st, crl_collect, &b);
    if (!ret && b.failed)
        ret = OTPCA_ERR_NOMEM;
    if (!ret)
        ret = otpca_crl_sign(m->tok, m->key, m->ca_der, m->ca_len, number, b.now,
                             b.now + 86400 * (int64_t)m->n.crl_days, b.e, b.n, &der, &der_len);
    for (size_t i = 0; i < sizeof v; i++)
        v[i] = (uint8_t)(number >> (56 - 8 * i));
    if (!ret)
        ret = otpca_mstore_meta_put(m->st, "crl_number", v, sizeof v);
    free(b.e);
    if (ret) {
        log_error("crl: not signed at %s: %s", when, otpca_strerror(ret));
        free(der);
        return;
    }
    char detail[96];
    snprintf(detail, sizeof detail, "CRL %" PRIu64 ": %zu entries (%zu expired left out)", number, b.n, b.expired);
    audit(m->st, m, EV_CRL, NULL, detail, NULL);
    pthread_mutex_lock(&m->mu);
    m->sum->crl_number = number;
    m->sum->crl_entries = b.n;
    m->sum->crl_published = 0;
    pthread_mutex_unlock(&m->mu);
    if (m->cfg->crl_file[0] && otpca_file_replace(m->cfg->crl_file, der, der_len))
        log_error("crl: %s: %s", m->cfg->crl_file, strerror(errno));
    if (m->online) {
        if ((ret = otpca_cloud_crl_publish(m->cc, m->lease.window, number, der, der_len)))
            log_warn("crl: the cloud did not take CRL %" PRIu64 " (%s); the next one will carry its entries",
                     number, otpca_strerror(ret));
        else
            m->sum->crl_published = 1;
    }
    log_info("crl: %s at %s (%zu bytes)%s", detail, when, der_len, m->online && !ret ? ", published" : "");
    free(der);
}

/* ------------------------------------------------------------------ run */

/* What a window and an upload both need: numbers, keys, token, manager
 * certificate, journal. */
static otpca_err setup(struct mgr *m, const otpca_pin_src *pin)
{
    char err[256] = "";
    otpca_mgr_open_opts o;
    memset(&o, 0, sizeof o);
    o.pin = pin;
    otpca_err ret = otpca_mgr_config_numbers(m->cfg, &m->n, err, sizeof err);
    if (ret)
        log_error("config: %s", err);
    if (!ret && (!m->cfg->id[0] || !m->cfg->token[0] || !m->cfg->ca_cert[0])) {
        log_error("config: id, token and ca_cert are required");
        ret = OTPCA_ERR_CONFIG;
    }
    if (!ret && (!(m->netkey = otpca_secmem_alloc(64)) || !(m->curve_sec = otpca_secmem_alloc(32))))
        ret = OTPCA_ERR_NOMEM;
    if (!ret)
        ret = load_keys(m);
    if (!ret)
        ret = open_token(m, &o);
    if (!ret)
        ret = load_ca(m);
    if (!ret)
        ret = otpca_mstore_open(m->cfg->store, &m->st);
    return ret;
}

static void teardown(struct mgr *m)
{
    otpca_cloud_client_destroy(&m->cc);
    otpca_mstore_destroy(&m->st);
    if (m->boxes)
        otpca_secmem_free(m->boxes, m->boxes_cap * sizeof *m->boxes); /* wipes the box keys */
    if (m->netkey)
        otpca_secmem_free(m->netkey, 64);
    if (m->curve_sec)
        otpca_secmem_free(m->curve_sec, 32);
    otpca_token_destroy(&m->tok);
    otpca_p11_destroy(&m->p11);
    pthread_rwlock_destroy(&m->boxes_lock);
    pthread_mutex_destroy(&m->mu);
    otpca_memzero(m, sizeof *m);
    free(m);
}

otpca_err otpca_mgr_upload(const otpca_mgr_config *cfg, const otpca_pin_src *pin, uint64_t *uploaded,
                           uint64_t *pending)
{
    struct mgr *m = calloc(1, sizeof *m);
    otpca_mgr_summary sum;
    size_t len = 0;
    *uploaded = *pending = 0;
    if (!m)
        return OTPCA_ERR_NOMEM;
    memset(&sum, 0, sizeof sum);
    m->cfg = cfg;
    m->sum = &sum;
    pthread_mutex_init(&m->mu, NULL);
    pthread_rwlock_init(&m->boxes_lock, NULL);
    otpca_err ret = setup(m, pin);
    /* The records go up under the last lease this journal had (the cloud
     * accepts a manager's records under any lease of its own). */
    uint8_t raw[sizeof m->lease.raw]; /* lease_check clears its output first: not in place */
    if (!ret && (ret = otpca_mstore_meta_get(m->st, "lease", raw, sizeof raw, &len)))
        log_error("the journal has no lease yet: open a window first");
    if (!ret && (ret = otpca_cloud_lease_check(m->cloud_pub, cfg->id, NULL, raw, len, &m->lease)))
        log_error("the journal's lease does not verify: %s", otpca_strerror(ret));
    if (!ret)
        ret = connect_cloud(m);
    long k = 0;
    for (int i = 0; !ret && i < 100000 && (k = upload_some(m)) > 0; i++)
        *uploaded += (uint64_t)k;
    if (!ret && k < 0)
        ret = OTPCA_ERR_TIMEOUT;
    if (m->st && otpca_mstore_records_pending(m->st, SIZE_MAX, count_pending, pending) != OTPCA_ERR_OK)
        log_warn("journal: could not count the records still to upload");
    teardown(m);
    return ret;
}

static void *zsock(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    int linger = 1000;
    if (s)
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    return s;
}

otpca_err otpca_mgr_window_run(const otpca_mgr_config *cfg, const otpca_mgr_open_opts *o, volatile sig_atomic_t *stop,
                               FILE *ready, otpca_mgr_summary *sum)
{
    struct mgr *m = calloc(1, sizeof *m);
    struct worker *w = NULL;
    otpca_broker b;
    void *frontend = NULL, *backend = NULL, *answers = NULL;
    char bound[OTPCA_MGR_CONFIG_VALUE_MAX];
    uint64_t crl_at_open = 0;
    memset(sum, 0, sizeof *sum);
    memset(&b, 0, sizeof b);
    if (!m)
        return OTPCA_ERR_NOMEM;
    m->cfg = cfg;
    m->sum = sum;
    pthread_mutex_init(&m->mu, NULL);
    pthread_rwlock_init(&m->boxes_lock, NULL);
    otpca_err ret = setup(m, o->pin);
    if (!ret && !cfg->operator_[0]) {
        log_error("config: operator is required to open a window");
        ret = OTPCA_ERR_CONFIG;
    }
    if (!ret)
        ret = open_lease(m, o);
    if (!ret && m->online)
        ret = sync_trust_list(m);
    if (!ret)
        ret = derive_boxes(m);
    if (ret)
        goto out;
    otpca_mgr_profile_default(&m->profile);
    m->profile.days = (unsigned)m->n.cert_days;
    m->profile.pen = (unsigned)m->n.pen;
    if (m->lease.scope[0]) {
        char copy[sizeof m->lease.scope];
        snprintf(copy, sizeof copy, "%s", m->lease.scope);
        for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && m->nscope < 64; t = strtok_r(NULL, ",", &save))
            snprintf(m->scope[m->nscope++], sizeof m->scope[0], "%s", t);
    }
    m->win.open = 1;
    m->win.not_before = m->lease.not_before;
    m->win.not_after = m->lease.not_after;
    m->win.max_enroll = m->lease.max_enroll;
    sum->offline = !m->online;
    /* Replays stay refused across a restart: the nonces a request could
     * still be replayed with (2 x skew) come back from the journal. */
    uint64_t keep_s = 2 * m->n.max_skew + 2;
    if (!(m->nonces = mgr_nonces_new()) || !(m->answers = mgr_answers_new()))
        ret = OTPCA_ERR_NOMEM;
    if (!ret && (ret = otpca_mstore_nonce_prune(m->st, now_s() - keep_s)) == OTPCA_ERR_OK)
        ret = otpca_mstore_nonces(m->st, now_s() - keep_s, load_nonce, m->nonces);
    if (ret)
        goto out;
    {
        char detail[128];
        snprintf(detail, sizeof detail, "%s window until %" PRIu64 ", up to %" PRIu64 " enrollments",
                 m->online ? "online" : "offline", m->lease.not_after, m->lease.max_enroll);
        audit(m->st, m, EV_OPENED, NULL, detail, NULL);
        /* Before the uplink starts: until then m->st and m->cc are ours. */
        publish_crl(m, "open");
        if (otpca_mstore_crl_count(m->st, &crl_at_open) != OTPCA_ERR_OK)
            crl_at_open = UINT64_MAX;
    }

    m->zctx = zmq_ctx_new();
    backend = zsock(m->zctx, ZMQ_ROUTER);
    frontend = zsock(m->zctx, ZMQ_ROUTER);
    answers = zsock(m->zctx, ZMQ_PAIR);
    int64_t max = OTPCA_MSG_NODE_MAX;
    if (!backend || !frontend || !answers || zmq_bind(backend, BACKEND) != 0 || zmq_bind(answers, ANSWERS) != 0 ||
        zmq_setsockopt(frontend, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0) {
        ret = OTPCA_ERR_IO;
        goto out;
    }
    mgr_journal_config jc = {.store = cfg->store, .actor = cfg->id, .window = m->lease.window,
                             .lockout = (uint32_t)m->n.lockout, .zctx = m->zctx, .answers = ANSWERS,
                             .queue_max = 256, .done = job_done, .arg = m};
    if ((ret = mgr_journal_new(&jc, &m->journal)))
        goto out;
    if (!(w = calloc(m->n.workers, sizeof *w))) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    for (unsigned i = 0; i < m->n.workers; i++) {
        if ((ret = worker_init(m, &w[i], i)))
            goto out;
        w[i].sock = zmq_socket(m->zctx, ZMQ_DEALER);
        if (!w[i].sock || zmq_connect(w[i].sock, BACKEND) != 0 || pthread_create(&w[i].th, NULL, worker_main, &w[i])) {
            ret = OTPCA_ERR_IO;
            goto out;
        }
        w[i].started = 1;
    }
    if (zmq_bind(frontend, cfg->listen) != 0) {
        log_error("cannot listen on %s: %s", cfg->listen, zmq_strerror(zmq_errno()));
        ret = OTPCA_ERR_IO;
        goto out;
    }
    size_t bl = sizeof bound;
    if (zmq_getsockopt(frontend, ZMQ_LAST_ENDPOINT, bound, &bl) != 0)
        snprintf(bound, sizeof bound, "%s", cfg->listen);
    log_info("window open (%s) until %" PRIu64 ": serving nodes on %s with %lu workers",
             m->online ? "online" : "offline", m->lease.not_after, bound, m->n.workers);
    if (ready) {
        fprintf(ready, "serving %s\n", bound);
        fflush(ready);
    }

    if (m->online) {
        if (pthread_create(&m->uplink, NULL, uplink_main, m)) {
            ret = OTPCA_ERR_NOMEM;
            goto out;
        }
        m->uplink_started = 1;
    }
    uint64_t next_check = 0, drain_until = 0;
    for (;;) {
        uint64_t t = mono_ms();
        /* A signal is seen at the next turn (POLL_MS at most), the rest
         * every CHECK_MS: the idle close took 0.6 s, most of it waiting
         * for this check. */
        if (!drain_until && (t >= next_check || *stop)) {
            next_check = t + CHECK_MS;
            mgr_nonces_prune(m->nonces, now_s() - keep_s);
            const char *why = NULL;
            pthread_mutex_lock(&m->mu);
            if (*stop)
                why = "signal";
            else if (now_s() > m->win.not_after)
                why = "lease end";
            else if (m->win.issued >= m->win.max_enroll)
                why = "enrollment limit";
            else if (otpca_token_present(m->tok) != OTPCA_ERR_OK)
                why = "token removed";
            if (why)
                m->win.open = 0; /* from now on every request hears WINDOW_CLOSED */
            pthread_mutex_unlock(&m->mu);
            if (why) {
                snprintf(sum->closed_by, sizeof sum->closed_by, "%s", why);
                log_info("closing the window (%s)", why);
                drain_until = t + DRAIN_MS;
            }
        }
        if (drain_until && ((b.nidle == m->n.workers && mgr_journal_idle(m->journal)) || t > drain_until))
            break;
        zmq_pollitem_t items[] = {{backend, 0, ZMQ_POLLIN, 0}, {answers, 0, ZMQ_POLLIN, 0},
                                  {frontend, 0, ZMQ_POLLIN, 0}};
        int nitems = b.nidle && !drain_until ? 3 : 2;
        int rc = zmq_poll(items, nitems, POLL_MS);
        if (rc < 0 && zmq_errno() != EINTR)
            break;
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN) && otpca_broker_backend_in(&b, backend, frontend) < 0)
            break;
        /* Answers the journal writer has committed: a batch at a time. */
        for (int i = 0; rc > 0 && (items[1].revents & ZMQ_POLLIN) && i < 256; i++) {
            int k = otpca_broker_forward(answers, frontend, ZMQ_DONTWAIT);
            if (k <= 0)
                break;
        }
        if (rc > 0 && nitems == 3 && (items[2].revents & ZMQ_POLLIN) &&
            otpca_broker_frontend_in(&b, frontend, backend) < 0)
            break;
    }
    /* The last answers the writer sent before it went idle. */
    for (int i = 0; i < 100000 && otpca_broker_forward(answers, frontend, ZMQ_DONTWAIT) > 0; i++)
        ;
    /* Flush: upload what is journaled (bounded), then tell the cloud. */
    uplink_join(m);
    {
        uint64_t crl_now = 0;
        if (otpca_mstore_crl_count(m->st, &crl_now) != OTPCA_ERR_OK || crl_now != crl_at_open)
            publish_crl(m, "close"); /* revocations came in during the window */
    }
    if (m->online) {
        uint64_t until = mono_ms() + FLUSH_MS;
        long k;
        while (mono_ms() < until && (k = upload_some(m)) > 0)
            sum->uploaded += (uint64_t)k;
        if (otpca_cloud_window_close(m->cc, m->lease.window, sum->confirmed, sum->rejected) != OTPCA_ERR_OK)
            log_warn("the cloud did not acknowledge the close; the lease ends by itself");
    }
    {
        char detail[160];
        snprintf(detail, sizeof detail, "closed by %s: %" PRIu64 " issued, %" PRIu64 " confirmed, %" PRIu64 " rejected",
                 sum->closed_by, sum->issued, sum->confirmed, sum->rejected);
        audit(m->st, m, EV_CLOSED, NULL, detail, NULL);
    }
    ret = OTPCA_ERR_OK;
out:
    uplink_join(m);
    otpca_broker_clear(&b);
    if (frontend)
        zmq_close(frontend);
    if (backend)
        zmq_close(backend);
    if (m->zctx)
        zmq_ctx_shutdown(m->zctx);
    for (unsigned i = 0; w && i < m->n.workers; i++) {
        if (w[i].started)
            pthread_join(w[i].th, NULL);
        if (w[i].sock)
            zmq_close(w[i].sock);
        worker_free(&w[i]);
    }
    free(w);
    mgr_journal_destroy(&m->journal); /* after the workers: what they handed over is written */
    if (answers)
        zmq_close(answers);
    mgr_nonces_destroy(&m->nonces);
    mgr_answers_destroy(&m->answers);
    if (m->zctx)
        zmq_ctx_term(m->zctx);
    if (m->st)
        if (otpca_mstore_records_pending(m->st, SIZE_MAX, count_pending, &sum->pending) != OTPCA_ERR_OK)
            log_warn("journal: could not count the records still to upload");
    teardown(m);
    return ret;
}
