/*
 * The manager's side of the cloud link (PROTOCOL.md section 7), used by
 * otpca-manager and by the tests: a ZeroMQ DEALER with CURVE to the cloud,
 * requests signed with the manager CA key (a callback: the key stays in
 * its token), and every answer checked against the pinned cloud signing
 * key and the request (nonce, window id) before the caller sees it.
 *
 * A request without an answer within the timeout is sent again on a fresh
 * socket (the cloud handles every request idempotently), up to `retries`
 * times; a refused CURVE handshake is reported at once (OTPCA_ERR_AUTH).
 * No secrets are logged. One client per thread.
 *
 * Several stateless cloud instances on one database: `endpoint` and
 * `notices` may each be a comma-separated list (up to
 * OTPCA_CLOUD_ENDPOINTS_MAX). The DEALER connects to every instance and
 * ZeroMQ spreads the requests over those whose CURVE handshake is done
 * (ZMQ_IMMEDIATE, so nothing waits in the queue of an instance that is
 * down); a request lost with an instance that died is sent again after
 * the timeout on a fresh socket, which reaches the live ones. The SUB
 * listens to every instance: each publishes every change, so a notice
 * usually arrives once per instance (apply them idempotently).
 */
#ifndef OTPCA_CLOUD_CLIENT_H
#define OTPCA_CLOUD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"
#include "otpca/proto/msg.h"

typedef struct otpca_cloud_client otpca_cloud_client;

/* Instances one client connects to; each endpoint below 256 bytes. */
#define OTPCA_CLOUD_ENDPOINTS_MAX 8

typedef struct otpca_cloud_client_config {
    const char *endpoint;        /* the cloud's ROUTER, e.g. tcp://127.0.0.1:7400, or a list a,b,... */
    const char *notices;         /* its PUB endpoint (or a list), or NULL */
    uint8_t server_key[32];      /* the cloud's CURVE public key */
    uint8_t public_key[32];      /* this manager's CURVE key pair */
    uint8_t secret_key[32];      /* (copied into locked memory) */
    uint8_t cloud_sign_pub[65];  /* the pinned cloud signing key (uncompressed) */
    const char *manager_id;
    otpca_signer signer;         /* the manager CA key */
    int timeout_ms;              /* per attempt; 0: 5000 */
    int retries;                 /* further attempts; 0: 2, negative: none */
} otpca_cloud_client_config;

/* OTPCA_ERR_INVALID_ARG for a bad configuration: among others an
 * endpoint list with an empty item, more than OTPCA_CLOUD_ENDPOINTS_MAX
 * items or an item of 256 bytes or more (logged). */
otpca_err otpca_cloud_client_new(const otpca_cloud_client_config *cfg, otpca_cloud_client **out)
    __attribute__((warn_unused_result));
void otpca_cloud_client_destroy(otpca_cloud_client **c);

/* After OTPCA_ERR_REFUSED: the cloud's wire error code (PROTOCOL.md
 * section 8.1) and its detail text ("" if none). */
unsigned otpca_cloud_client_error(const otpca_cloud_client *c, const char **detail);

typedef struct otpca_cloud_lease {
    uint8_t window[16];
    char operator_[65];
    uint64_t not_before, not_after, max_enroll;
    char scope[64 * 65]; /* batch ids joined by ','; "" = all */
    int offline;
    uint8_t raw[4096];   /* the signed WindowLease as received (to cache) */
    size_t raw_len;
} otpca_cloud_lease;

/* Checks a signed WindowLease (as received, or from a lease file): the
 * signature with cloud_pub, manager id, and nonce (NULL: not checked). */
otpca_err otpca_cloud_lease_check(const uint8_t cloud_pub[65], const char *manager_id, const uint8_t *nonce,
                                  const uint8_t *in, size_t len, otpca_cloud_lease *out)
    __attribute__((warn_unused_result));

/* WindowOpen with the operator's TOTP; the verified lease in *out.
 * max_enroll 0 and nscope 0 ask for the cloud's defaults. */
otpca_err otpca_cloud_window_open(otpca_cloud_client *c, const char *operator_id, uint32_t totp,
                                  uint64_t duration, uint64_t max_enroll, const char *const *scope, size_t nscope,
                                  otpca_cloud_lease *out) __attribute__((warn_unused_result));

/* Checks a signed SyncBatch: signature with cloud_pub, the window id, and
 * decodes it into *out (entries point into in). OTPCA_ERR_SIGNATURE for
 * a batch changed after signing, PROTO_VALUE for another window's. */
otpca_err otpca_cloud_batch_check(const uint8_t cloud_pub[65], const uint8_t window[16], const uint8_t *in,
                                  size_t len, otpca_sync_batch *out) __attribute__((warn_unused_result));

/* Called with each verified batch (and its signed bytes, for the cache);
 * a non-OK return stops the sync with that error. */
typedef otpca_err (*otpca_cloud_batch_fn)(void *arg, const otpca_sync_batch *b, const uint8_t *raw, size_t len);

/* Syncs from sequence since (0: a snapshot) until the cloud has no more:
 * deltas, or the chunks of a snapshot followed by the deltas after it.
 * max: entries per batch (0: the cloud's default). *to: the sequence
 * the manager is at afterwards. */
otpca_err otpca_cloud_sync(otpca_cloud_client *c, const uint8_t window[16], uint64_t since, uint64_t max,
                           otpca_cloud_batch_fn fn, void *arg, uint64_t *to) __attribute__((warn_unused_result));

/* Uploads up to 256 records (signed RecordUpload); on OK the cloud has
 * committed them: acked[i] = 1 for each record it acknowledged, flagged[i]
 * = 1 for each it flagged (double enrollment). */
otpca_err otpca_cloud_upload(otpca_cloud_client *c, const uint8_t window[16], const otpca_record *records, size_t n,
                             uint8_t *acked, uint8_t *flagged) __attribute__((warn_unused_result));

/* WindowClose with the window's counts. */
otpca_err otpca_cloud_window_close(otpca_cloud_client *c, const uint8_t window[16], uint64_t enrolled,
                                   uint64_t rejected) __attribute__((warn_unused_result));

/* CrlPublish (PROTOCOL.md 7.7): the manager's CRL (DER, cRLNumber number)
 * for the cloud to keep. OTPCA_ERR_REFUSED if the cloud found it wrong. */
otpca_err otpca_cloud_crl_publish(otpca_cloud_client *c, const uint8_t window[16], uint64_t number,
                                  const uint8_t *der, size_t len) __attribute__((warn_unused_result));

/* Waits up to timeout_ms for the next Notice on the notices endpoint that
 * verifies with the pinned key (others are dropped and counted in
 * *dropped if not NULL). OTPCA_ERR_TIMEOUT if none came. The first call
 * subscribes; call it once early so that no notice is missed. */
otpca_err otpca_cloud_notice_wait(otpca_cloud_client *c, int timeout_ms, otpca_notice *out, char *serial,
                                  size_t serial_cap, unsigned *dropped) __attribute__((warn_unused_result));

/* Sends raw bytes as one request and returns the raw answer (tests: bad
 * input at the server). */
otpca_err otpca_cloud_raw(otpca_cloud_client *c, const uint8_t *req, size_t len, uint8_t *ans, size_t cap,
                          size_t *ans_len) __attribute__((warn_unused_result));

#endif
