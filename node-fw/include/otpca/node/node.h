/*
 * The node firmware core: the device side of PROTOCOL.md section 6 as a
 * sans-I/O engine (after BearSSL's): the caller owns the context and every
 * buffer, hands in the bytes that arrived and the time, sends the bytes
 * the core puts out, and sleeps until the deadline the core returns. No
 * malloc, no socket, no clock inside; the token (sign, HMAC for TOTP,
 * ECDH, keygen), the RNG and the credential store's flash are reached
 * through the HAL (hal.h, slots.h).
 *
 * Flows: signed time (TimeRequest), enrollment (EnrollRequest ->
 * EnrollResponse -> commit to flash -> EnrollConfirm -> ConfirmAck), a
 * confirm left pending by a reboot, Rejoin, KeyUpdate (new key generated
 * in the token, request signed by the new then the old key), and batch
 * Claim (new unique key, signed by it then by the product key). Every
 * response is checked before anything in it is used: the manager
 * certificate chains to the pinned root (root -> manager, CA:true,
 * pathLen 0, keyCertSign, valid at the node's time), the COSE signature is
 * that certificate's key, the nonce is the request's, the node certificate
 * names the serial, certifies exactly the key asked for and is signed by
 * the manager, and the network-key envelope opens with that key. A
 * response that fails is dropped (the error is returned and kept) and the
 * node keeps waiting for the genuine one until its deadline.
 *
 * Use:
 *   otpca_node_init(&n, &cfg, out, sizeof out, work, sizeof work);
 *   otpca_node_start(&n, OTPCA_NODE_FLOW_ENROLL, now);
 *   loop: while ((p = otpca_node_output_buf(&n, &len))) { send(p, len); otpca_node_output_ack(&n, now); }
 *         st = otpca_node_step(&n, now, &deadline); if (st == DONE || st == FAILED) break;
 *         if (receive(buf, &len, deadline - now)) otpca_node_handle_input(&n, buf, len, now);
 *
 * C99.
 */
#ifndef OTPCA_NODE_NODE_H
#define OTPCA_NODE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otpca/node/hal.h"
#include "otpca/node/slots.h"

/* Buffers the caller gives otpca_node_init(). */
#define OTPCA_NODE_OUT_SIZE 2048  /* one request: the node link's frame limit */
#define OTPCA_NODE_WORK_SIZE 4096 /* the manager certificate held + an inner signature */
/* Largest message the core accepts (larger input is dropped undecoded). */
#define OTPCA_NODE_IN_MAX 2048
#define OTPCA_NODE_DEADLINE_NONE UINT64_MAX

typedef enum otpca_node_flow {
    OTPCA_NODE_FLOW_NONE = 0,
    OTPCA_NODE_FLOW_TIME,      /* TimeRequest: learn time and the manager certificate */
    OTPCA_NODE_FLOW_ENROLL,    /* EnrollRequest ... ConfirmAck */
    OTPCA_NODE_FLOW_CONFIRM,   /* EnrollConfirm for the current, unconfirmed credential */
    OTPCA_NODE_FLOW_REJOIN,    /* Rejoin: a fresh network key for the current certificate */
    OTPCA_NODE_FLOW_KEYUPDATE, /* KeyUpdate: new key, new certificate */
    OTPCA_NODE_FLOW_CLAIM      /* Claim: product key proves, new unique key certified */
} otpca_node_flow;

typedef enum otpca_node_state {
    OTPCA_NODE_IDLE = 0, /* no flow started */
    OTPCA_NODE_SEND,     /* a message waits in otpca_node_output_buf() */
    OTPCA_NODE_WAIT,     /* waiting for the answer until the deadline */
    OTPCA_NODE_BACKOFF,  /* the manager said BUSY/INTERNAL: a fresh request at the deadline */
    OTPCA_NODE_DONE,     /* the flow succeeded */
    OTPCA_NODE_FAILED    /* the flow failed: otpca_node_last_error() */
} otpca_node_state;

/* A certificate serial number: big-endian magnitude, no leading zero
 * byte (as OpenSSL's BN_bn2bin gives it). */
typedef struct otpca_node_serial {
    uint8_t len; /* 1..20 */
    uint8_t v[20];
} otpca_node_serial;

typedef struct otpca_node_config {
    const otpca_node_hal *hal;  /* token, RNG, log (flash through store) */
    otpca_node_slots *store;    /* the credential store, initialised; NULL: time flow only */
    const char *serial;         /* the device serial, 1..64 of [A-Za-z0-9._:-] */
    const uint8_t *mac;         /* EUI-48 or EUI-64 */
    size_t mac_len;
    const char *fw;             /* firmware version, 1..32 bytes */
    const uint8_t *root_der;    /* the pinned root certificate (DER); must outlive the context */
    size_t root_len;
    uint8_t factory_pub[OTPCA_NODE_PUB_LEN]; /* device key from manufacture; Claim: the product key */
    unsigned totp_digits;       /* 6..8 (0: 6) */
    unsigned totp_period;       /* seconds (0: 30) */
    bool has_clock;             /* now is Unix time in ms; else a TIME flow must come first */
    uint32_t timeout_ms;        /* first wait for an answer (0: 3000); doubles per resend */
    unsigned max_tries;         /* sends of one request before TIMEOUT (0: 4) */
    uint32_t backoff_max_ms;    /* cap of waits and retry-after (0: 60000) */
    /* Manager certificates the root has revoked (from the root's CRL, which
     * the caller checked against the pinned root): a manager showing one of
     * these serials is refused like one from another root. NULL/0: none.
     * Must outlive the context. */
    const otpca_node_serial *revoked;
    size_t n_revoked;
} otpca_node_config;

/* The engine. Caller-owned (static or stack); fields are private. */
typedef struct otpca_node_ctx {
    otpca_node_config cfg;
    uint8_t *out, *work;
    size_t out_cap, work_cap, out_len;
    otpca_node_flow flow;
    otpca_node_state state;
    int phase; /* 0 request, 1 confirm */
    otpca_err last_err;
    unsigned wire_code;
    uint64_t deadline;
    unsigned tries;
    uint32_t wait_ms;
    int64_t time_offset_ms;
    bool time_valid;
    uint8_t root_pub[OTPCA_NODE_PUB_LEN];
    const uint8_t *root_subject;
    size_t root_subject_len;
    uint8_t mgr_pub[OTPCA_NODE_PUB_LEN];
    uint8_t mgr_kid[OTPCA_NODE_KID_LEN];
    size_t mgr_len; /* the held manager certificate, work[0 .. mgr_len); 0: none */
    uint8_t nonce[16];
    uint8_t signer_pub[OTPCA_NODE_PUB_LEN]; /* the key that signs the request (outer) */
    uint8_t key_pub[OTPCA_NODE_PUB_LEN];    /* the key the answer certifies */
    bool have_cur;
    otpca_node_cred cur;  /* the current credential (a copy of the store's) */
    otpca_node_cred next; /* the one being built */
    uint64_t bytes_out, bytes_in, msgs_out, msgs_in;
} otpca_node_ctx;

/* Binds the engine to its configuration and buffers (out: at least
 * OTPCA_NODE_OUT_SIZE, work: at least OTPCA_NODE_WORK_SIZE bytes), checks
 * and pins the root, and reads the current credential from the store.
 * OTPCA_ERR_INVALID_ARG for a bad configuration, OTPCA_ERR_CERT for a root
 * that is not a P-256 ECDSA-SHA256 CA certificate. */
__attribute__((warn_unused_result)) otpca_err otpca_node_init(otpca_node_ctx *n, const otpca_node_config *cfg,
                                                              uint8_t *out, size_t out_cap, uint8_t *work,
                                                              size_t work_cap);
/* Starts a flow (any earlier one must be finished: OTPCA_ERR_STATE) and
 * puts its first message out. OTPCA_ERR_STATE also without trusted time
 * (start FLOW_TIME first) or for a confirm with nothing to confirm;
 * OTPCA_ERR_NOT_FOUND for Rejoin/KeyUpdate without a credential; token
 * errors as the HAL reports them. */
__attribute__((warn_unused_result)) otpca_err otpca_node_start(otpca_node_ctx *n, otpca_node_flow flow,
                                                               uint64_t now);
/* The message to send now, or NULL. */
const uint8_t *otpca_node_output_buf(const otpca_node_ctx *n, size_t *len);
/* The message was sent at now: the wait for its answer starts. */
void otpca_node_output_ack(otpca_node_ctx *n, uint64_t now);
/* One message from the manager. OTPCA_ERR_OK if it advanced the flow;
 * otherwise the reason it was dropped (OTPCA_ERR_STATE: nothing awaited;
 * OTPCA_ERR_CERT: chain or certificate; OTPCA_ERR_SIGNATURE /
 * OTPCA_ERR_COSE_HEADER: signature or kid; OTPCA_ERR_PROTO_VALUE: not our
 * nonce or record (a replay); OTPCA_ERR_DECRYPT: the envelope; decoder
 * errors), and the flow keeps waiting. An Error from the manager returns
 * OTPCA_ERR_REFUSED and fails the flow (or backs off for BUSY/INTERNAL). */
__attribute__((warn_unused_result)) otpca_err otpca_node_handle_input(otpca_node_ctx *n, const uint8_t *in,
                                                                      size_t len, uint64_t now);
/* Timers: resends after a timeout, gives up after max_tries, rebuilds the
 * request after a back-off. Returns the state; *next_deadline the time at
 * which to call again (OTPCA_NODE_DEADLINE_NONE if no timer runs). */
otpca_node_state otpca_node_step(otpca_node_ctx *n, uint64_t now, uint64_t *next_deadline);

otpca_node_state otpca_node_get_state(const otpca_node_ctx *n);
/* The last error, and the manager's wire code if it was an Error (else 0). */
otpca_err otpca_node_last_error(const otpca_node_ctx *n, unsigned *wire_code);
/* The current credential, or NULL if the node has none. */
const otpca_node_cred *otpca_node_credential(const otpca_node_ctx *n);
/* Protocol time (Unix seconds) at now; 0 if the node has no trusted time. */
uint64_t otpca_node_time(const otpca_node_ctx *n, uint64_t now);
/* Ends any flow and wipes the context (network key copies included). */
void otpca_node_free(otpca_node_ctx *n);

#endif
