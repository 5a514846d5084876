/*
 * An enrollment window (`otpca-manager window open`): the manager is a CA
 * from the lease to the close, and nothing is issued outside.
 *
 *   open   the manager token (CA key, CURVE key), the journal, the cloud:
 *          WindowOpen with the operator's TOTP (computed on the operator
 *          token, or typed) -> signed lease; trust-list sync (snapshot or
 *          delta, every batch verified); each seed box's key derived once
 *          by ECDH in the token. With an offline lease (`--lease FILE`,
 *          from `otpca-cloud lease issue`) the window opens on the cached
 *          trust list when the cloud is out of reach.
 *   serve  node ROUTER -> broker -> workers (each with its own token
 *          session, wolfCrypt signer and journal handle): TimeRequest,
 *          EnrollRequest (enroll.h checks; the issuance is committed to the
 *          journal before the response leaves), EnrollConfirm. Records go
 *          to the cloud in the background; Notices are applied at once.
 *   close  at the lease's end, the enrollment limit, SIGTERM/SIGINT, or the
 *          token's removal (checked every 500 ms): stop taking requests,
 *          let the workers finish, upload what is journaled (bounded; the
 *          rest stays for the next window), WindowClose, log out, wipe.
 */
#ifndef OTPCA_MANAGER_WINDOW_H
#define OTPCA_MANAGER_WINDOW_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "otpca/common/err.h"
#include "otpca/manager/config.h"
#include "otpca/token/pin.h"

typedef struct otpca_mgr_open_opts {
    const char *lease_file;      /* an offline lease, used when the cloud does not answer */
    int have_totp;               /* a typed operator TOTP instead of the operator token */
    uint32_t totp;
    const otpca_pin_src *pin;    /* the manager token's PIN if its URI has no pin-source */
} otpca_mgr_open_opts;

typedef struct otpca_mgr_summary {
    uint64_t issued, confirmed, rejected, uploaded, pending;
    uint64_t rejected_by[13];    /* by reason (enroll.h) */
    uint64_t crl_number;         /* the last CRL this window signed (0: none) */
    uint64_t crl_entries;        /* its entries */
    int crl_published;           /* the cloud took it */
    int offline;
    char closed_by[64];          /* "lease end", "signal", "enrollment limit", "token removed" */
} otpca_mgr_summary;

/* Opens a window, serves it until it closes, and fills *sum. ready (may be
 * NULL) gets one line once the node endpoint is bound: "serving ENDPOINT".
 * Errors before serving: CONFIG, token and store errors, AUTH/REFUSED/
 * TIMEOUT from the cloud (no lease), NOT_FOUND (no CURVE key: run `ca
 * certify`). */
otpca_err otpca_mgr_window_run(const otpca_mgr_config *cfg, const otpca_mgr_open_opts *o,
                               volatile sig_atomic_t *stop, FILE *ready, otpca_mgr_summary *sum)
    __attribute__((warn_unused_result));

/* Uploads what the journal holds that the cloud has not acknowledged,
 * outside a window (e.g. after an offline one), under the journal's last
 * lease. *uploaded, *pending: records sent now and still waiting.
 * TIMEOUT if the cloud does not answer (the records stay journaled). */
otpca_err otpca_mgr_upload(const otpca_mgr_config *cfg, const otpca_pin_src *pin, uint64_t *uploaded,
                           uint64_t *pending) __attribute__((warn_unused_result));

#endif
