/*
 * Hybrid authentication and issuance, without I/O: the manager's window
 * loop hands in the bytes a node sent and gets back the bytes to answer,
 * the decision and what to journal. Trust-list look-ups and the nonce
 * memory are hooks, so this file never touches a socket, a file or a
 * clock of its own (`now` is passed in), and the same checks run in the
 * tests against rig tokens.
 *
 * EnrollRequest checks (PROTOCOL.md section 6.2), in order, first failure
 * wins: 1 window open and under its limit, 2 time within the skew, 3 nonce
 * unseen, 4 serial known (and in scope), 5 not revoked, 6 not locked, 7 the
 * request's key and kid are the registered device key, 8/9 TOTP valid (±1
 * step, compared in constant time) with a step newer than the last one
 * accepted, 10 the COSE signature. The node only ever hears AUTH_FAILED
 * (WINDOW_CLOSED for 1, BAD_REQUEST for 11); the reason is for the log.
 *
 * Lockout: a failure counts towards the device's lockout only when the
 * request is signed by the registered device key (checked even when an
 * earlier step failed), so nobody without the device key can lock a
 * device out by sending it wrong codes.
 *
 * Includes wolfSSL headers (through profile.h): never beside OpenSSL ones.
 */
#ifndef OTPCA_MANAGER_ENROLL_H
#define OTPCA_MANAGER_ENROLL_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/manager/profile.h"
#include "otpca/proto/msg.h"

/* Reasons of PROTOCOL.md section 8.2 (0: accepted). */
enum {
    OTPCA_MGR_OK = 0,
    OTPCA_MGR_WINDOW = 1,
    OTPCA_MGR_SKEW = 2,
    OTPCA_MGR_REPLAY = 3,
    OTPCA_MGR_UNKNOWN = 4,
    OTPCA_MGR_REVOKED = 5,
    OTPCA_MGR_LOCKED = 6,
    OTPCA_MGR_KEY = 7,
    OTPCA_MGR_TOTP = 8,
    OTPCA_MGR_STEP = 9,
    OTPCA_MGR_SIGNATURE = 10,
    OTPCA_MGR_MALFORMED = 11,
    OTPCA_MGR_CERT = 12
};
/* "totp wrong", ... (never NULL). */
const char *otpca_mgr_reason_name(int reason);

typedef struct otpca_mgr_window {
    int open;
    uint64_t not_before, not_after, max_enroll;
    uint64_t issued; /* certificates issued so far in this window */
} otpca_mgr_window;

/* What the checks need to know about a device (from the trust list). */
typedef struct otpca_mgr_device {
    int state;            /* OTPCA_DEV_* (proto/msg.h) */
    int in_scope;
    uint8_t pubkey[65];   /* uncompressed; pubkey_len 0: an unclaimed batch device */
    size_t pubkey_len;
    const uint8_t *seed;  /* the opened TOTP seed, in the caller's locked memory */
    size_t seed_len;
    unsigned digits, period, algorithm; /* algorithm 1 SHA-1, 2 SHA-256 */
    uint64_t last_step;
    int has_cert;
    uint8_t cert_hash[32]; /* the current certificate (Rejoin and KeyUpdate must name it) */
    int claimable;         /* a batch device not claimed yet: pubkey is its batch's product key */
} otpca_mgr_device;

/* What the journal knows about an issued certificate. */
typedef struct otpca_mgr_issued {
    char serial[65];
    uint8_t cert_hash[32]; /* SHA-256 of the DER certificate */
    uint8_t pub[65];       /* the key it certifies */
    int key_update;        /* issued for a KeyUpdate or a Claim: pub is the new key */
} otpca_mgr_issued;

typedef struct otpca_mgr_hooks {
    /* The device `serial` (NUL-terminated), its seed opened: OTPCA_ERR_OK,
     * OTPCA_ERR_NOT_FOUND, or another error (counted as unknown). */
    otpca_err (*device)(void *arg, const char *serial, otpca_mgr_device *d);
    /* Remembers a nonce: 0 if it is new, 1 if it was seen before. */
    int (*nonce)(void *arg, const uint8_t nonce[16], uint64_t time);
    void *arg;
    /* The issuance record `id` (for EnrollConfirm): OTPCA_ERR_OK and *out,
     * or OTPCA_ERR_NOT_FOUND. */
    otpca_err (*record)(void *arg, const uint8_t id[16], otpca_mgr_issued *out);
} otpca_mgr_hooks;

typedef struct otpca_mgr_verdict {
    int type;               /* OTPCA_MSG_ENROLL_REQUEST, _REJOIN, _KEY_UPDATE or _CLAIM */
    int reason;             /* OTPCA_MGR_* */
    int count_failure;      /* 1: count towards the device's lockout */
    char serial[65];        /* the request's serial ("" if it did not decode) */
    uint64_t step;          /* the TOTP step to record as accepted (reason 0) */
    /* Decoded; spans point into the input. A Rejoin or KeyUpdate fills in
     * the fields it shares with an EnrollRequest (nonce, time, serial,
     * totp; pubkey: a KeyUpdate's new key). */
    otpca_enroll_request req;
    otpca_buf cert_hash;    /* Rejoin, KeyUpdate: the certificate named */
    /* reason 0: the key the answer certifies and seals the network key to:
     * the registered device key, or the new key of a KeyUpdate or Claim. */
    uint8_t pub[65];
} otpca_mgr_verdict;

/* Runs the checks on a signed EnrollRequest `in`. */
void otpca_mgr_check_enroll(const otpca_mgr_window *w, uint64_t now, uint64_t skew, const otpca_mgr_hooks *h,
                            const uint8_t *in, size_t len, otpca_mgr_verdict *v);
/* Rejoin (PROTOCOL.md 6.5): the same checks, with the key check replaced
 * by: signed by the registered device key, and the certificate hash is the
 * device's current certificate (reason 12 if not). */
void otpca_mgr_check_rejoin(const otpca_mgr_window *w, uint64_t now, uint64_t skew, const otpca_mgr_hooks *h,
                            const uint8_t *in, size_t len, otpca_mgr_verdict *v);
/* KeyUpdate (PROTOCOL.md 6.6, double signature 4.3): outer signature by
 * the registered device key, the current certificate named, the new key a
 * point other than the old one, inner signature (and kid) by the new key. */
void otpca_mgr_check_key_update(const otpca_mgr_window *w, uint64_t now, uint64_t skew, const otpca_mgr_hooks *h,
                                const uint8_t *in, size_t len, otpca_mgr_verdict *v);

/* Claim (PROTOCOL.md 6.7, double signature 4.3): the device is an
 * unclaimed batch device (claimable), the outer signature is by its
 * registered key (the batch's product key), the new key is a point other
 * than it and signs the inner layer. An EnrollRequest from a claimable
 * device is refused (reason 7): a product key is never certified. */
void otpca_mgr_check_claim(const otpca_mgr_window *w, uint64_t now, uint64_t skew, const otpca_mgr_hooks *h,
                           const uint8_t *in, size_t len, otpca_mgr_verdict *v);

/* TOTP of seed at step (liboath), as a number. For the tests and the
 * simulator; the checks use it too. */
otpca_err otpca_mgr_totp_at(const uint8_t *seed, size_t seed_len, unsigned digits, unsigned algorithm,
                            uint64_t step, uint32_t *code) __attribute__((warn_unused_result));

/* One worker's issuing kit: the manager key in its token (bound to
 * wolfCrypt for certificates, and as a COSE signer), its certificate,
 * the profile, and the network key handed to nodes. */
typedef struct otpca_mgr_issuer {
    otpca_wolf_signer *ca;
    WC_RNG *rng;
    otpca_signer cose;
    const uint8_t *ca_der;
    size_t ca_len;
    const otpca_mgr_profile *profile;
    const uint8_t *netkey;
    size_t netkey_len;
    uint64_t netkey_epoch;
} otpca_mgr_issuer;

/* The signed EnrollResponse for an accepted verdict: a new certificate
 * for v->pub (into cert, OTPCA_CERT_DER_MAX bytes; none for a Rejoin:
 * *cert_len = 0), the network
 * key sealed to it (ECIES, label "netkey", aad serial || nonce), a fresh
 * record id, x5chain unless the request named this manager's kid. mac
 * is the registered MAC. */
otpca_err otpca_mgr_issue(const otpca_mgr_issuer *is, const otpca_mgr_verdict *v, const uint8_t *mac,
                          size_t mac_len, uint64_t now, uint8_t record[16], uint8_t *cert, size_t *cert_len,
                          uint8_t *out, size_t cap, size_t *out_len) __attribute__((warn_unused_result));

/* EnrollConfirm (PROTOCOL.md 6.4): the record it names was issued here,
 * the hash is that certificate's, and the signature is by the key it
 * certifies. reason 0 (and *rec, the record), 12 (record unknown or hash
 * not the issued certificate's), 10 (signature), 11 (malformed). *req
 * points into in. A repeat is accepted again: the caller answers it with
 * the same ConfirmAck and records the confirmation once. */
int otpca_mgr_check_confirm(const otpca_mgr_hooks *h, const uint8_t *in, size_t len, otpca_enroll_confirm *req,
                            otpca_mgr_issued *rec);
/* The signed ConfirmAck for an accepted EnrollConfirm. */
otpca_err otpca_mgr_confirm_ack(const otpca_mgr_issuer *is, const otpca_enroll_confirm *req, uint8_t *out,
                                size_t cap, size_t *out_len) __attribute__((warn_unused_result));

/* A signed TimeResponse to a TimeRequest (x5chain always), or
 * OTPCA_ERR_PROTO_* for a request that does not decode. */
otpca_err otpca_mgr_time_response(const otpca_mgr_issuer *is, const uint8_t *in, size_t len, uint64_t now,
                                  uint8_t *out, size_t cap, size_t *out_len) __attribute__((warn_unused_result));

/* An Error for the node link (no detail: never an oracle). nonce may be
 * NULL. */
otpca_err otpca_mgr_error(unsigned code, const uint8_t *nonce, uint8_t *out, size_t cap, size_t *out_len)
    __attribute__((warn_unused_result));

#endif
