/* The journal writer of an open window: group commit (journal.h). */
#include "journal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "otpca/common/log.h"
#include "otpca/manager/enroll.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/random.h>

/* At most this many jobs in one transaction: a group this size already
 * makes the fsync a small part of each job's cost, and a bigger one only
 * holds the first answers back longer. */
#define GROUP_MAX 128
/* A group of fewer than GROUP_FILL jobs waits up to GATHER_US for more:
 * a transaction costs about the same for 1 job as for 16 (the same
 * B-tree pages go to the WAL, one fdatasync), and without the wait two
 * workers hand over jobs one or two at a time (measured with
 * bench/window.sh: 1.5 jobs per group, the writer a fifth of the
 * manager's CPU). The wait adds at most GATHER_US to an answer. */
#define GROUP_FILL 16
#define GATHER_US 2000

struct mgr_journal {
    mgr_journal_config cfg;
    uint8_t window[16];
    char actor[OTPCA_MSTORE_ID_MAX + 1];
    otpca_mstore *st;
    WC_RNG rng;
    int have_rng;
    void *answers;
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t nonempty, notfull;
    mgr_job **q; /* ring of queue_max */
    size_t head, n;
    int busy, stopping;
};

mgr_job *mgr_journal_job_new(int kind)
{
    mgr_job *job = calloc(1, sizeof *job);
    if (job) {
        job->kind = kind;
        zmq_msg_init(&job->client);
    }
    return job;
}

void mgr_journal_job_free(mgr_job *job)
{
    if (!job)
        return;
    zmq_msg_close(&job->client);
    free(job->rec);
    free(job->answer);
    free(job);
}

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

static otpca_err audit(mgr_journal *j, unsigned event, const char *subject, const char *detail, uint8_t hash[32])
{
    return otpca_mstore_audit_append(j->st, now_s(), j->actor, event, subject, detail, j->window, hash);
}

static otpca_err new_id(mgr_journal *j, uint8_t id[16])
{
    return wc_RNG_GenerateBlock(&j->rng, id, 16) == 0 ? OTPCA_ERR_OK : OTPCA_ERR_CRYPTO;
}

/* A rejection: a REJECTED record and its audit entry; a failure counted
 * if it counts, and a LOCKED record if that locked the device. Errors
 * returned are the store's (they spoil the group). */
static otpca_err reject(mgr_journal *j, const char *serial, int reason, int count)
{
    otpca_mrecord *r = calloc(1, sizeof *r);
    uint32_t failures = 0;
    int locked = 0;
    otpca_err ret = r ? new_id(j, r->id) : OTPCA_ERR_NOMEM;
    if (!ret) {
        memcpy(r->window, j->window, 16);
        r->kind = OTPCA_REC_REJECTED;
        snprintf(r->serial, sizeof r->serial, "%s", serial);
        r->time = now_s();
        r->has_reason = 1;
        r->reason = (unsigned)reason;
        r->has_audit = 1;
        ret = audit(j, MGR_EV_REJECTED, serial, otpca_mgr_reason_name(reason), r->audit);
    }
    if (!ret)
        ret = otpca_mstore_record_add(j->st, r, NULL);
    if (!ret && count) {
        ret = otpca_mstore_device_fail(j->st, serial, j->cfg.lockout, &failures, &locked);
        if (ret == OTPCA_ERR_NOT_FOUND) /* gone from the trust list since the check */
            ret = OTPCA_ERR_OK;
        else if (!ret && locked) {
            /* A LOCKED record of its own, in the same transaction as the
             * lock (mstore.h: the lock holds until the cloud has it). */
            ret = new_id(j, r->id);
            r->kind = OTPCA_REC_LOCKED;
            r->has_reason = 0;
            if (!ret)
                ret = audit(j, MGR_EV_LOCKED, serial, "too many failures", r->audit);
            if (!ret)
                ret = otpca_mstore_record_add(j->st, r, NULL);
            if (!ret)
                log_warn("%s locked after %u failures", serial, (unsigned)failures);
        }
    }
    free(r);
    return ret;
}

/* Replaces a job's answer with the generic error (the precise reason is in
 * the log and the journal). */
static void answer_error(mgr_job *job, unsigned code)
{
    uint8_t buf[64];
    size_t len = 0;
    free(job->answer);
    job->answer = NULL;
    job->answer_len = 0;
    if (otpca_mgr_error(code, job->has_req_nonce ? job->req_nonce : NULL, buf, sizeof buf, &len) == OTPCA_ERR_OK &&
        (job->answer = malloc(len))) {
        memcpy(job->answer, buf, len);
        job->answer_len = len;
    }
}

static otpca_err write_issued(mgr_journal *j, mgr_job *job)
{
    otpca_mrecord *r = job->rec;
    /* A certificate becomes the device's at its confirmation, when the
     * node has committed it (PROTOCOL.md 6.3, 7.3); a Rejoin issues none. */
    otpca_err ret = otpca_mstore_device_accept(j->st, job->serial, r->step, NULL);
    if (ret == OTPCA_ERR_STATE || ret == OTPCA_ERR_NOT_FOUND) {
        /* Another request took this step first (or the device went):
         * nothing is issued; a rejection instead. */
        int reason = ret == OTPCA_ERR_STATE ? OTPCA_MGR_STEP : OTPCA_MGR_UNKNOWN;
        log_warn("enrollment of %s rejected: %s", job->serial, otpca_mgr_reason_name(reason));
        job->outcome = 1;
        job->reason = reason;
        answer_error(job, OTPCA_WIRE_AUTH_FAILED);
        return reject(j, job->serial, reason, 0);
    }
    memcpy(r->window, j->window, 16);
    r->has_audit = 1;
    if (!ret)
        ret = audit(j, MGR_EV_ISSUED, job->serial,
                    r->kind == OTPCA_REC_REJOINED       ? "network key sent (rejoin)"
                    : r->kind == OTPCA_REC_KEY_UPDATED ? "certificate issued for a new key"
                    : r->pubkey_len                    ? "certificate issued for a claimed key"
                                                       : "certificate issued",
                    r->audit);
    if (!ret)
        ret = otpca_mstore_record_add(j->st, r, NULL);
    return ret;
}

static otpca_err write_confirmed(mgr_journal *j, mgr_job *job)
{
    otpca_mrecord *r = calloc(1, sizeof *r);
    otpca_err ret = r ? otpca_mstore_record_get(j->st, job->confirm_id, r) : OTPCA_ERR_NOMEM;
    if (!ret) { /* confirmed before: the same ConfirmAck again */
        job->outcome = 3;
        free(r);
        return OTPCA_ERR_OK;
    }
    if (ret == OTPCA_ERR_NOT_FOUND)
        ret = job->key_update ? otpca_mstore_device_key_updated(j->st, job->serial, job->cert_hash, job->pubkey)
                              : otpca_mstore_device_enrolled(j->st, job->serial, job->cert_hash);
    if (ret == OTPCA_ERR_STATE || ret == OTPCA_ERR_NOT_FOUND) {
        log_warn("confirmation of %s refused: the device is no longer approved", job->serial);
        job->outcome = 2;
        answer_error(job, OTPCA_WIRE_AUTH_FAILED);
        free(r);
        return OTPCA_ERR_OK;
    }
    if (!ret) {
        memset(r, 0, sizeof *r);
        memcpy(r->id, job->confirm_id, 16);
        memcpy(r->window, j->window, 16);
        r->kind = OTPCA_REC_CONFIRMED;
        snprintf(r->serial, sizeof r->serial, "%s", job->serial);
        r->time = 0; /* no time: a repeat must be the same record */
        ret = otpca_mstore_record_add(j->st, r, NULL);
    }
    if (!ret)
        ret = audit(j, MGR_EV_CONFIRMED, job->serial, "enrollment confirmed", NULL);
    free(r);
    return ret;
}

/* One transaction for the group; then the answers. */
static void write_group(mgr_journal *j, mgr_job **jobs, size_t n)
{
    otpca_err ret = otpca_mstore_begin(j->st);
    for (size_t i = 0; i < n && !ret; i++) {
        mgr_job *job = jobs[i];
        job->outcome = 0;
        if (job->has_nonce && (ret = otpca_mstore_nonce_add(j->st, job->nonce, job->nonce_time)) == OTPCA_ERR_EXISTS)
            ret = OTPCA_ERR_OK; /* known already (loaded at the start) */
        if (ret)
            break;
        switch (job->kind) {
        case MGR_JOB_ISSUED:
            ret = write_issued(j, job);
            break;
        case MGR_JOB_REJECTED:
            ret = reject(j, job->serial, job->reason, job->count_failure);
            break;
        case MGR_JOB_CONFIRMED:
            ret = write_confirmed(j, job);
            break;
        default:
            ret = OTPCA_ERR_INTERNAL;
        }
    }
    if (!ret)
        ret = otpca_mstore_commit(j->st);
    else
        otpca_mstore_rollback(j->st);
    if (ret) {
        log_error("journal: a group of %zu not written, nothing of it sent: %s", n, otpca_strerror(ret));
        for (size_t i = 0; i < n; i++) {
            jobs[i]->outcome = -1;
            answer_error(jobs[i], jobs[i]->fail_code);
        }
    }
    /* done() first: what it records (the answer kept for a repeat) must be
     * there before the node can hear the answer and send again. */
    for (size_t i = 0; i < n && j->cfg.done; i++)
        j->cfg.done(j->cfg.arg, jobs[i]);
    for (size_t i = 0; i < n; i++) {
        mgr_job *job = jobs[i];
        if (job->answer && (zmq_msg_send(&job->client, j->answers, ZMQ_SNDMORE) < 0 ||
                            zmq_send(j->answers, job->answer, job->answer_len, 0) < 0))
            log_warn("an answer for %s was not sent: %s", job->serial[0] ? job->serial : "a node",
                     zmq_strerror(zmq_errno()));
        mgr_journal_job_free(job);
    }
}

static void *writer(void *arg)
{
    mgr_journal *j = arg;
    prctl(PR_SET_NAME, "mgr-journal");
    mgr_job *group[GROUP_MAX];
    for (;;) {
        pthread_mutex_lock(&j->mu);
        while (!j->n && !j->stopping)
            pthread_cond_wait(&j->nonempty, &j->mu);
        if (!j->n) { /* stopping, and nothing left */
            pthread_mutex_unlock(&j->mu);
            break;
        }
        if (j->n < GROUP_FILL && !j->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += GATHER_US * 1000L;
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            while (j->n < GROUP_FILL && !j->stopping &&
                   pthread_cond_timedwait(&j->nonempty, &j->mu, &until) == 0)
                ;
        }
        size_t n = 0;
        while (j->n && n < GROUP_MAX) {
            group[n++] = j->q[j->head];
            j->head = (j->head + 1) % j->cfg.queue_max;
            j->n--;
        }
        j->busy = 1;
        pthread_cond_broadcast(&j->notfull);
        pthread_mutex_unlock(&j->mu);
        write_group(j, group, n);
        pthread_mutex_lock(&j->mu);
        j->busy = 0;
        pthread_mutex_unlock(&j->mu);
    }
    return NULL;
}

otpca_err mgr_journal_new(const mgr_journal_config *cfg, mgr_journal **out)
{
    mgr_journal *j = calloc(1, sizeof *j);
    *out = NULL;
    if (!j)
        return OTPCA_ERR_NOMEM;
    j->cfg = *cfg;
    if (!j->cfg.queue_max)
        j->cfg.queue_max = 256;
    memcpy(j->window, cfg->window, 16);
    snprintf(j->actor, sizeof j->actor, "%s", cfg->actor);
    j->cfg.window = j->window;
    j->cfg.actor = j->actor;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->nonempty, NULL);
    pthread_cond_init(&j->notfull, NULL);
    otpca_err ret = (j->q = calloc(j->cfg.queue_max, sizeof *j->q)) ? OTPCA_ERR_OK : OTPCA_ERR_NOMEM;
    if (!ret)
        ret = otpca_mstore_open(cfg->store, &j->st);
    if (!ret && wc_InitRng(&j->rng) != 0)
        ret = OTPCA_ERR_CRYPTO;
    j->have_rng = !ret;
    if (!ret) {
        int linger = 1000;
        j->answers = zmq_socket(cfg->zctx, ZMQ_PAIR);
        if (!j->answers || zmq_setsockopt(j->answers, ZMQ_LINGER, &linger, sizeof linger) ||
            zmq_connect(j->answers, cfg->answers))
            ret = OTPCA_ERR_IO;
    }
    if (!ret && pthread_create(&j->th, NULL, writer, j))
        ret = OTPCA_ERR_NOMEM;
    j->started = !ret;
    if (ret) {
        mgr_journal_destroy(&j);
        return ret;
    }
    *out = j;
    return OTPCA_ERR_OK;
}

void mgr_journal_submit(mgr_journal *j, mgr_job *job)
{
    pthread_mutex_lock(&j->mu);
    while (j->n == j->cfg.queue_max && !j->stopping)
        pthread_cond_wait(&j->notfull, &j->mu);
    if (j->stopping) { /* a programming error: workers stop first */
        pthread_mutex_unlock(&j->mu);
        log_error("journal: a job arrived after the window closed; dropped");
        mgr_journal_job_free(job);
        return;
    }
    j->q[(j->head + j->n) % j->cfg.queue_max] = job;
    j->n++;
    pthread_cond_signal(&j->nonempty);
    pthread_mutex_unlock(&j->mu);
}

int mgr_journal_idle(mgr_journal *j)
{
    pthread_mutex_lock(&j->mu);
    int idle = !j->n && !j->busy;
    pthread_mutex_unlock(&j->mu);
    return idle;
}

void mgr_journal_destroy(mgr_journal **p)
{
    if (!p || !*p)
        return;
    mgr_journal *j = *p;
    if (j->started) {
        pthread_mutex_lock(&j->mu);
        j->stopping = 1;
        pthread_cond_broadcast(&j->nonempty);
        pthread_cond_broadcast(&j->notfull);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->th, NULL);
    }
    if (j->answers)
        zmq_close(j->answers);
    if (j->have_rng)
        wc_FreeRng(&j->rng);
    otpca_mstore_destroy(&j->st);
    free(j->q);
    pthread_cond_destroy(&j->notfull);
    pthread_cond_destroy(&j->nonempty);
    pthread_mutex_destroy(&j->mu);
    free(j);
    *p = NULL;
}
