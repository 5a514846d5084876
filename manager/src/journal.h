/*
 * The journal writer of an open window (internal to the manager): group
 * commit. Workers check and sign in parallel, then hand each outcome
 * (an issuance, a rejection, a confirmation) to one writer thread as a
 * job and take the next request. The writer commits every job waiting,
 * in one transaction and one fsync, and only then sends their answers.
 * So nothing a node receives is missing from the journal after a crash,
 * and durability costs one fsync per group, not per enrollment.
 *
 * The writer also keeps, in the same transactions: the accepted TOTP
 * step (a code is good once, across workers: the first job to commit a
 * step wins, a later one becomes a rejection), the audit chain, the
 * lockout count, and the durable copy of the nonces.
 */
#ifndef OTPCA_MANAGER_JOURNAL_H
#define OTPCA_MANAGER_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "otpca/common/err.h"
#include "otpca/manager/mstore.h"

enum { MGR_JOB_ISSUED = 1, MGR_JOB_REJECTED, MGR_JOB_CONFIRMED };

/* Audit events (PROTOCOL.md section 7.6). */
enum { MGR_EV_OPENED = 1, MGR_EV_CLOSED = 2, MGR_EV_ISSUED = 3, MGR_EV_CONFIRMED = 4, MGR_EV_REJECTED = 5,
       MGR_EV_LOCKED = 6, MGR_EV_TRUST_LIST = 7, MGR_EV_ACKED = 8, MGR_EV_CRL = 21 };

typedef struct mgr_job {
    int kind;
    zmq_msg_t client;           /* who gets the answer (moved in by the worker) */
    int has_nonce;
    uint8_t nonce[16];          /* remembered durably with nonce_time */
    uint64_t nonce_time;
    char serial[OTPCA_MSTORE_ID_MAX + 1];
    /* ISSUED: the record (kind ISSUED, REJOINED or KEY_UPDATED; cert, step,
     * id, pubkey; window and audit filled in here) */
    otpca_mrecord *rec;
    uint8_t cert_hash[32];      /* ISSUED: the device's certificate from now on */
    uint8_t req_hash[32];       /* ISSUED: SHA-256 of the request (answered again if repeated) */
    /* REJECTED */
    int reason;
    int count_failure;
    const char *reason_name;
    /* CONFIRMED: the CONFIRMED record's id, the certificate's hash; for a
     * KeyUpdate's certificate, the new device key */
    uint8_t confirm_id[16];
    int key_update;
    uint8_t pubkey[65];
    /* The answer sent after the commit, and the error code sent instead if
     * the commit fails (with the request's nonce, if it had one). */
    uint8_t *answer;
    size_t answer_len;
    unsigned fail_code;
    int has_req_nonce;
    uint8_t req_nonce[16];
    /* Filled in by the writer for done(): 0 committed as asked; 1 turned
     * into a rejection (a step taken first, a device gone); 2 refused (a
     * confirmation for a device no longer approved); 3 a repeated
     * confirmation; -1 not journaled (nothing but an error was sent). */
    int outcome;
} mgr_job;

typedef struct mgr_journal_config {
    const char *store;       /* path of the manager's store */
    const char *actor;       /* the manager's id, for the audit chain */
    const uint8_t *window;   /* 16 bytes: the lease's window id */
    uint32_t lockout;        /* failures that lock a device */
    void *zctx;              /* answers go out on a ZMQ_PAIR connected to ... */
    const char *answers;     /* ... this endpoint (bound by the caller) */
    size_t queue_max;        /* jobs waiting before submit blocks (back pressure) */
    /* Called by the writer thread after each group's commit, for each job
     * (counts, logs, the answer kept), before the group's answers go out. */
    void (*done)(void *arg, const mgr_job *job);
    void *arg;
} mgr_journal_config;

typedef struct mgr_journal mgr_journal;

/* Starts the writer (its own store handle, RNG and answer socket). */
otpca_err mgr_journal_new(const mgr_journal_config *cfg, mgr_journal **out) __attribute__((warn_unused_result));
/* Hands a heap job (mgr_journal_job_new) over; blocks while queue_max jobs
 * wait. After destroy began, the job is answered with its error. */
void mgr_journal_submit(mgr_journal *j, mgr_job *job);
/* Nothing waiting and nothing being written: every answer is out. */
int mgr_journal_idle(mgr_journal *j);
/* Writes what is waiting, stops the writer, closes its store. */
void mgr_journal_destroy(mgr_journal **p);

/* A zeroed job whose client id the caller moves in; NULL without memory. */
mgr_job *mgr_journal_job_new(int kind);
void mgr_journal_job_free(mgr_job *job);

#endif
