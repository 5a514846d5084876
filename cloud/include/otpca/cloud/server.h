/*
 * otpca-cloud serve: the registry's ZeroMQ server (PROTOCOL.md section 7).
 *
 *   managers --DEALER--> ROUTER `listen` (CURVE; ZAP admits registered,
 *                         non-revoked manager keys and names the manager)
 *                           | load-balancing broker (main thread)
 *                           v
 *                        N worker threads, each with its own store handle
 *                        and token session: WindowOpen -> WindowLease,
 *                        SyncRequest -> SyncBatch, RecordUpload ->
 *                        RecordAck, WindowClose -> RecordAck
 *   managers <--SUB----- PUB `notices` (CURVE, same ZAP): signed Notices
 *                        for devices revoked, approved or locked, found
 *                        by polling the change log (so changes made by
 *                        the admin CLI or another instance reach them).
 *
 * Every answer is signed by the cloud key inside the cloud token; seeds
 * are opened with the store's seed key (seeds.h) and sealed to the
 * requesting manager per batch (seedbox, PROTOCOL.md section 5.1). A
 * RecordAck is sent only after the records are committed (SQLite
 * synchronous=FULL), so kill -9 never loses an acknowledged record.
 */
#ifndef OTPCA_CLOUD_SERVER_H
#define OTPCA_CLOUD_SERVER_H

#include <signal.h>
#include <stdio.h>

#include "otpca/cloud/config.h"
#include "otpca/common/err.h"

/* Runs until *stop becomes non-zero (a signal handler sets it), then
 * stops taking requests, lets the workers finish what they hold (bounded),
 * and returns OTPCA_ERR_OK. Once both sockets are bound it writes one line
 * to ready (if not NULL), "listening ENDPOINT notices ENDPOINT", with the
 * endpoints as bound (a `tcp://127.0.0.1:*` port is resolved). Errors:
 * CONFIG (bad settings), NOT_FOUND (no seed key: run init), token and
 * store errors, IO (an endpoint cannot be bound). */
otpca_err otpca_cloud_serve(const otpca_cloud_config *cfg, volatile sig_atomic_t *stop, FILE *ready)
    __attribute__((warn_unused_result));

#endif
