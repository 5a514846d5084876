/*
 * otpca-bench-enroll: how many enrollments per second the manager's
 * enrollment engine (manager/src/enroll.c) does, with 1 and 2 threads,
 * against the crypto bound measured in the same run: the raw cost of the
 * crypto one enrollment cannot do without. Engine only: no window daemon,
 * no journal, no node link (those are measured when they exist).
 *
 * Per enrollment the timed manager work is exactly
 *
 *   otpca_mgr_check_enroll   a signed EnrollRequest: window, skew, nonce
 *                            (a bounded hash set), registry (an in-memory
 *                            table behind the hooks), key, TOTP via liboath
 *                            (3 candidate steps), COSE signature
 *   otpca_mgr_issue          node certificate signed in the manager's token
 *                            through the wolfCrypt bridge, network key sealed
 *                            to the device key (ECIES), signed EnrollResponse
 *                            (+ the SHA-256 of the certificate for the
 *                            issuance record, which the confirm is checked
 *                            against)
 *   otpca_mgr_check_confirm  the node's EnrollConfirm: the issued record
 *                            (record hook), the certificate hash, the COSE
 *                            signature by the certified device key
 *
 * The node's side (building and signing the EnrollConfirm with its
 * software key) runs between the timed sections and is not counted; the
 * ConfirmAck (otpca_mgr_confirm_ack, a third token signature) is not part
 * of it either.
 *
 * The bound, per enrollment: 2 x otpca_p256_verify (request and confirm; a
 * different 65-byte key each op), 2 x otpca_token_sign_digest with the
 * manager key (certificate and response), 1 x otpca_p256_ecdh_ephemeral
 * (the network key's envelope) and 1 x three liboath TOTPs (the candidate
 * steps). Each is timed alone with the same threads; bound/s = 1 / the sum
 * of their per-enrollment seconds; ratio = engine / bound.
 *
 * Set-up: a throw-away SoftHSM rig (root, cloud, one manager; no nodes) or
 * --rig DIR; the root key issues root and manager CA certificates; 256
 * simulated devices (otpca_p256_soft_generate, random 20-byte seeds, TOTP
 * SHA-1 6 digits 30 s) and 4096 signed EnrollRequests (16 per device, a
 * valid TOTP at the run's fixed `now`) are made before timing. Each thread
 * has its own token session (otpca_token_clone), otpca_wolf_signer, WC_RNG
 * and issuer; the registry, the nonce set (behind a mutex) and the request
 * pool are shared, each thread taking every second request.
 *
 * Then, for attribution and as prototypes of improvements (not part of the
 * bound, measured in the same rounds): key_3uses (the engine's three uses
 * of one device key, in its order: wolfSSL's FP_ECC cache builds a table
 * for a point at its second use), cert_engine (the node certificate alone),
 * cert_template (the same certificate from a per-thread template: issuer
 * parsed once), issue_steps (otpca_mgr_issue's steps, each timed),
 * pub_normalize and init_rng (two per-call costs of the proto helpers).
 *
 * Timing: per thread count, every operation is warmed up, then run in N
 * rounds of S/N seconds each, the order rotating every round; all threads
 * run the same operation at once. Rates are by the wall clock, summed over
 * the threads (the throughput); the per-CPU-second rates, the CPU share and
 * the machine's other load (/proc/stat minus this process) are reported
 * beside them.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <liboath/oath.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "otpca/common/log.h"
#include "otpca/common/secmem.h"
#include "otpca/manager/enroll.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/ecies.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "otpca/token/rig.h"
#include "otpca/token/token.h"
#include "otpca/token/wolf.h"

#include "benchca.h"
#include "benchutil.h"

#define PROG "otpca-bench-enroll"
#define DEFAULT_SECONDS 1.5
#define DEFAULT_ROUNDS 10u
#define TARGET_RATIO 0.80
#define MAX_THREADS 2u
#define DEVICES 256u
#define REQUESTS 4096u /* REQUESTS / MAX_THREADS must exceed what the nonce set remembers */
#define REQ_MAX 384
#define CONFIRM_MAX 256
#define RESP_MAX 4096
#define RECORDS 16u /* the issuance records a thread remembers */
#define SKEW 90u
#define PERIOD 30u
#define DIGITS 6u
#define SEED_LEN 20u
#define MGR_LABEL BENCH_CA_MGR_LABEL
#define ENGINE_NOTE                                                                                \
    "engine only; the window daemon, its journal and the node link are measured when they exist"

/* The nonce memory: two generations of an open-addressing set; a lookup
 * checks both, an insert goes to the current one, which becomes the old
 * one after NONCE_GEN inserts. It remembers the last NONCE_GEN..2*NONCE_GEN
 * nonces (a daemon's must cover the skew window; this one forgets so that
 * the pooled requests can come round again). */
#define NONCE_SLOTS 2048u /* per generation, a power of two */
#define NONCE_GEN 512u

/* ---- state -------------------------------------------------------------- */

struct device {
    otpca_mgr_verdict verdict; /* for issue_steps: what check_enroll makes of its first request */
    char serial[16];
    uint8_t mac[6];
    otpca_p256_soft key;
    uint8_t pubc[OTPCA_P256_PUB_C_LEN];
    uint8_t kid[OTPCA_KID_LEN];
    uint8_t seed[SEED_LEN];
    otpca_mgr_device reg; /* what the registry hook hands out */
    uint8_t digest[32];   /* for the bound's verify: a digest and its signature */
    uint8_t sig[OTPCA_P256_SIG_LEN];
};

struct request {
    uint8_t buf[REQ_MAX];
    size_t len;
    uint32_t dev;
};

struct nonce_gen {
    uint8_t key[NONCE_SLOTS][OTPCA_NONCE_LEN];
    uint8_t used[NONCE_SLOTS];
    unsigned count;
};

enum { SEC_CHECK, SEC_ISSUE, SEC_CONFIRM, NSEC };

/* What one thread did in one operation, summed over the rounds. secs is
 * the time the rate is per (wall: the timed sections, or the whole loop);
 * cpu the thread's CPU time of the same work; wall the loop's wall time. */
struct tally {
    uint64_t ops;
    double secs, cpu, wall;
    double sec[NSEC]; /* engine, issue_steps: wall seconds per section */
};

struct bench;

struct worker {
    struct bench *b;
    unsigned id;
    pthread_t th;
    otpca_mgr_hooks hooks; /* arg: this worker */
    struct issued_rec {
        uint8_t id[16];
        otpca_mgr_issued rec;
    } records[RECORDS]; /* the journal's index of issued records, here the last few */
    unsigned n_records;
    otpca_token_t *tok;
    otpca_wolf_signer signer;
    int signer_ok;
    WC_RNG rng, node_rng;
    int rng_ok, node_rng_ok;
    otpca_mgr_issuer issuer;
    uint64_t next;    /* the next request of this thread: next, next + T, ... */
    uint64_t op_i;    /* the bound operations' device counter */
    struct tally cur; /* the phase under way */
    struct bench_failure fail;
    char what[160];
    uint32_t sink;
    uint8_t cert[OTPCA_CERT_DER_MAX], resp[RESP_MAX], confirm[CONFIRM_MAX];
    size_t resp_len;      /* issue_steps' last response */
    Cert *tmpl, *scratch; /* the cert_template prototype's */
};

struct bench {
    /* tokens and the CA */
    struct bench_ca ca;
    otpca_mgr_profile profile;
    uint8_t netkey[16];

    /* devices, registry, requests, nonces */
    struct device *dev;         /* DEVICES */
    int16_t table[4 * DEVICES]; /* serial hash -> device index + 1 */
    struct request *req;        /* REQUESTS */
    uint64_t now;
    otpca_mgr_window window;
    pthread_mutex_t nonce_mu;
    struct nonce_gen *gen[2]; /* [0] current */

    /* threads */
    struct worker w[MAX_THREADS];
    unsigned threads; /* running now */
    pthread_barrier_t start, done;
    int phase_op, quit;
    double phase_slice;
    atomic_int abort;
    uint64_t cursor; /* the first request not used yet (they come round again) */

    struct bench_failure fail; /* set-up failures */
    char what[160];
};

static int lib_fail(struct bench_failure *f, otpca_err err, const char *what)
{
    return bench_lib_fail(f, err, what);
}

static int wc_fail(struct bench_failure *f, int rc, const char *what)
{
    return bench_wc_fail(f, rc ? rc : -1, what);
}

/* ---- registry and nonce memory (the hooks) ----------------------------- */

static uint32_t fnv1a(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

#define TABLE_SLOTS (sizeof((struct bench *)0)->table / sizeof((struct bench *)0)->table[0])

static void registry_add(struct bench *b, uint32_t idx)
{
    const char *s = b->dev[idx].serial;
    for (uint32_t h = fnv1a(s, strlen(s));; h++)
        if (!b->table[h % TABLE_SLOTS]) {
            b->table[h % TABLE_SLOTS] = (int16_t)(idx + 1);
            return;
        }
}

static otpca_err hook_device(void *arg, const char *serial, otpca_mgr_device *d)
{
    const struct bench *b = ((const struct worker *)arg)->b;
    for (uint32_t h = fnv1a(serial, strlen(serial));; h++) {
        int16_t k = b->table[h % TABLE_SLOTS];
        if (!k)
            return OTPCA_ERR_NOT_FOUND;
        if (!strcmp(b->dev[k - 1].serial, serial)) {
            *d = b->dev[k - 1].reg;
            return OTPCA_ERR_OK;
        }
    }
}

static int gen_has(const struct nonce_gen *g, const uint8_t n[16], uint32_t h)
{
    for (uint32_t i = h;; i++) {
        uint32_t s = i & (NONCE_SLOTS - 1);
        if (!g->used[s])
            return 0;
        if (!memcmp(g->key[s], n, 16))
            return 1;
    }
}

static int hook_nonce(void *arg, const uint8_t nonce[16], uint64_t t)
{
    struct bench *b = ((struct worker *)arg)->b;
    uint32_t h;
    int seen;
    (void)t;
    memcpy(&h, nonce, sizeof h); /* nonces are random */
    pthread_mutex_lock(&b->nonce_mu);
    seen = gen_has(b->gen[0], nonce, h) || gen_has(b->gen[1], nonce, h);
    if (!seen) {
        if (b->gen[0]->count >= NONCE_GEN) { /* the current generation is full: age it */
            struct nonce_gen *old = b->gen[1];
            memset(old->used, 0, sizeof old->used);
            old->count = 0;
            b->gen[1] = b->gen[0];
            b->gen[0] = old;
        }
        struct nonce_gen *g = b->gen[0];
        uint32_t i = h;
        while (g->used[i & (NONCE_SLOTS - 1)])
            i++;
        memcpy(g->key[i & (NONCE_SLOTS - 1)], nonce, 16);
        g->used[i & (NONCE_SLOTS - 1)] = 1;
        g->count++;
    }
    pthread_mutex_unlock(&b->nonce_mu);
    return seen;
}

static otpca_err hook_record(void *arg, const uint8_t id[16], otpca_mgr_issued *out)
{
    const struct worker *w = arg;
    for (unsigned k = 0; k < RECORDS && k < w->n_records; k++)
        if (!memcmp(w->records[k].id, id, 16)) {
            *out = w->records[k].rec;
            return OTPCA_ERR_OK;
        }
    return OTPCA_ERR_NOT_FOUND;
}

/* What the journal keeps of an issued certificate. */
static void record_issue(struct worker *w, const uint8_t id[16], const char *serial,
                         const uint8_t pub[65], const uint8_t *cert, size_t cert_len)
{
    struct issued_rec *r = &w->records[w->n_records++ % RECORDS];
    memcpy(r->id, id, 16);
    snprintf(r->rec.serial, sizeof r->rec.serial, "%s", serial);
    otpca_sha256(cert, cert_len, r->rec.cert_hash);
    memcpy(r->rec.pub, pub, 65);
}

/* ---- the node side (untimed) ------------------------------------------- */

static otpca_err totp_code(const uint8_t *seed, uint64_t step, uint32_t *code)
{
    char otp[16];
    if (oath_totp_generate2((const char *)seed, SEED_LEN, (time_t)step, 1, 0, DIGITS, 0, otp) !=
        OATH_OK)
        return OTPCA_ERR_CRYPTO;
    *code = (uint32_t)strtoul(otp, NULL, 10);
    return OTPCA_ERR_OK;
}

/* A signed EnrollRequest from device d at b->now: TOTP of the current step
 * plus totp_off, compressed device key, no manager kid (a first enrollment:
 * the response carries x5chain). */
static otpca_err make_request(struct bench *b, const struct device *d, int totp_off, uint8_t *out,
                              size_t cap, size_t *len)
{
    uint8_t nonce[OTPCA_NONCE_LEN];
    uint32_t code = 0;
    otpca_err err = otpca_random(nonce, sizeof nonce);
    if (!err)
        err = totp_code(d->seed, b->now / PERIOD, &code);
    if (err)
        return err;
    otpca_enroll_request m;
    memset(&m, 0, sizeof m);
    m.nonce = (otpca_buf){nonce, sizeof nonce};
    m.time = b->now;
    m.serial = (otpca_buf){(const uint8_t *)d->serial, strlen(d->serial)};
    m.mac = (otpca_buf){d->mac, sizeof d->mac};
    m.pubkey = (otpca_buf){d->pubc, sizeof d->pubc};
    m.totp = (code + (uint32_t)totp_off) % 1000000u;
    m.fw = (otpca_buf){(const uint8_t *)"bench-fw-1", 10};
    otpca_signer s = {otpca_p256_soft_sign, (void *)&d->key, {0}};
    memcpy(s.kid, d->kid, OTPCA_KID_LEN);
    return otpca_msg_sign(&otpca_desc_enroll_request, &m, &s, (otpca_buf){NULL, 0}, out, cap, len);
}

/* The node's EnrollConfirm for the certificate it got. */
static otpca_err make_confirm(struct worker *w, const struct device *d, const uint8_t record[16],
                              const uint8_t *cert, size_t cert_len, size_t *len)
{
    uint8_t nonce[OTPCA_NONCE_LEN], hash[32];
    if (wc_RNG_GenerateBlock(&w->node_rng, nonce, sizeof nonce) != 0)
        return OTPCA_ERR_CRYPTO;
    otpca_sha256(cert, cert_len, hash);
    otpca_enroll_confirm m;
    memset(&m, 0, sizeof m);
    m.nonce = (otpca_buf){nonce, sizeof nonce};
    m.record = (otpca_buf){record, 16};
    m.time = w->b->now;
    m.cert_hash = (otpca_buf){hash, sizeof hash};
    otpca_signer s = {otpca_p256_soft_sign, (void *)&d->key, {0}};
    memcpy(s.kid, d->kid, OTPCA_KID_LEN);
    return otpca_msg_sign(&otpca_desc_enroll_confirm, &m, &s, (otpca_buf){NULL, 0}, w->confirm,
                          sizeof w->confirm, len);
}

/* ---- the manager side ---------------------------------------------------- */

static otpca_err mgr_cose_sign(void *ctx, const uint8_t digest[32], uint8_t sig[OTPCA_P256_SIG_LEN])
{
    struct worker *w = ctx;
    size_t len = OTPCA_P256_SIG_LEN;
    return otpca_token_sign_digest(w->tok, w->b->ca.mgr_key, digest, 32, OTPCA_SIG_RAW, sig, &len);
}

/* ---- the operations ------------------------------------------------------ */

enum {
    OP_ENGINE,
    OP_VERIFY,
    OP_TOKEN_SIGN,
    OP_ECDH,
    OP_TOTP,
    OP_KEY3,
    OP_CERT,
    OP_CERT_TMPL,
    OP_ISSUE_STEPS,
    OP_NORMALIZE,
    OP_INIT_RNG,
    NOPS,
    OP_FIRST_PROTO = OP_KEY3
};

static const struct op {
    const char *name, *desc;
    unsigned per_enroll; /* in the bound; 0: not part of it */
} ops[NOPS] = {
    {"engine",
     "otpca_mgr_check_enroll + otpca_mgr_issue (+ SHA-256 of the certificate for the record) + "
     "otpca_mgr_check_confirm",
     0},
    {"ecdsa_verify", "otpca_p256_verify, 65-byte key, a different device each op", 2},
    {"token_sign", "otpca_token_sign_digest(RAW), manager key in SoftHSM, the thread's session", 2},
    {"ecdh_ephemeral", "otpca_p256_ecdh_ephemeral to the 65-byte device key", 1},
    {"totp_3steps", "3 x oath_totp_generate2 (SHA-1, 6 digits): the candidate steps", 1},
    /* attribution and prototypes, not part of the bound */
    {"key_3uses",
     "otpca_p256_verify + otpca_p256_ecdh_ephemeral + otpca_p256_verify on the same device key "
     "(the engine's order); compare: 2 ecdsa_verify + ecdh_ephemeral on different keys",
     0},
    {"cert_engine",
     "otpca_mgr_node_cert as otpca_mgr_issue calls it (thread's RNG); compare: token_sign", 0},
    {"cert_template",
     "prototype: the same certificate from a per-thread Cert template (issuer name, AKI, key "
     "usages set once), then subject, serial, SAN, SKI, wc_MakeCert, wc_SignCert; compare: "
     "token_sign",
     0},
    {"issue_steps",
     "otpca_mgr_issue's steps one by one, each timed: otpca_mgr_node_cert, otpca_ecies_seal, "
     "record id + otpca_msg_sign(EnrollResponse, x5chain); compare: 2 token_sign + ecdh_ephemeral",
     0},
    {"pub_normalize",
     "otpca_p256_pub_normalize of a 65-byte device key (import, on-curve check, export): what "
     "otpca_cose_sign1_verify does before otpca_p256_verify imports and checks the key again",
     0},
    {"init_rng", "wc_InitRng + wc_FreeRng: what otpca_p256_ecdh_ephemeral does per call", 0},
};

struct sections {
    double sec[NSEC];
    double node_cpu; /* CPU time of the untimed node work */
};

/* One enrollment: request i of this thread through the engine, the node's
 * confirm (untimed), the manager's confirm check. Returns the verdict's
 * failure as an error: every pooled request must be accepted. */
static int one_enrollment(struct worker *w, int with_clock, struct sections *s)
{
    struct bench *b = w->b;
    const struct request *r = &b->req[w->next % REQUESTS];
    const struct device *d = &b->dev[r->dev];
    otpca_mgr_verdict v;
    uint8_t record[16];
    size_t cert_len = sizeof w->cert, resp_len = 0, conf_len = 0;
    double t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, c2 = 0, c3 = 0;
    w->next += b->threads;

    if (with_clock)
        t0 = bench_now_s();
    otpca_mgr_check_enroll(&b->window, b->now, SKEW, &w->hooks, r->buf, r->len, &v);
    if (v.reason != OTPCA_MGR_OK) {
        snprintf(w->what, sizeof w->what, "otpca_mgr_check_enroll(%s): %s", d->serial,
                 otpca_mgr_reason_name(v.reason));
        return lib_fail(&w->fail, OTPCA_ERR_AUTH, w->what);
    }
    if (with_clock)
        t1 = bench_now_s();
    otpca_err err = otpca_mgr_issue(&w->issuer, &v, d->mac, sizeof d->mac, b->now, record, w->cert,
                                    &cert_len, w->resp, sizeof w->resp, &resp_len);
    if (err)
        return lib_fail(&w->fail, err, "otpca_mgr_issue");
    record_issue(w, record, v.serial, v.pub, w->cert, cert_len);
    if (with_clock) {
        t2 = bench_now_s();
        c2 = bench_cpu_s();
    }
    if ((err = make_confirm(w, d, record, w->cert, cert_len, &conf_len)))
        return lib_fail(&w->fail, err, "node: EnrollConfirm");
    if (with_clock) {
        c3 = bench_cpu_s();
        t3 = bench_now_s();
    }
    otpca_enroll_confirm creq;
    otpca_mgr_issued rec;
    int reason = otpca_mgr_check_confirm(&w->hooks, w->confirm, conf_len, &creq, &rec);
    if (reason != OTPCA_MGR_OK) {
        snprintf(w->what, sizeof w->what, "EnrollConfirm check(%s): %s", d->serial,
                 otpca_mgr_reason_name(reason));
        return lib_fail(&w->fail, OTPCA_ERR_AUTH, w->what);
    }
    if (with_clock) {
        t4 = bench_now_s();
        s->sec[SEC_CHECK] += t1 - t0;
        s->sec[SEC_ISSUE] += t2 - t1;
        s->sec[SEC_CONFIRM] += t4 - t3;
        s->node_cpu += c3 - c2;
    }
    w->sink += w->resp[resp_len - 1];
    return 0;
}

static int op_verify(struct worker *w, uint64_t i)
{
    const struct device *d = &w->b->dev[i % DEVICES];
    otpca_err err = otpca_p256_verify(d->reg.pubkey, 65, d->digest, d->sig);
    if (err)
        return lib_fail(&w->fail, err, "otpca_p256_verify");
    w->sink++;
    return 0;
}

static int op_token_sign(struct worker *w, uint64_t i)
{
    uint8_t sig[OTPCA_SIG_RAW_LEN];
    size_t len = sizeof sig;
    otpca_err err = otpca_token_sign_digest(w->tok, w->b->ca.mgr_key, w->b->dev[i % DEVICES].digest,
                                            32, OTPCA_SIG_RAW, sig, &len);
    if (err)
        return lib_fail(&w->fail, err, "otpca_token_sign_digest");
    w->sink += sig[0];
    return 0;
}

static int op_ecdh(struct worker *w, uint64_t i)
{
    uint8_t eph[OTPCA_P256_PUB_LEN], full[OTPCA_P256_PUB_LEN], z[32];
    otpca_err err = otpca_p256_ecdh_ephemeral(w->b->dev[i % DEVICES].reg.pubkey, 65, eph, full, z);
    if (err)
        return lib_fail(&w->fail, err, "otpca_p256_ecdh_ephemeral");
    w->sink += z[0];
    return 0;
}

static int op_totp(struct worker *w, uint64_t i)
{
    const struct device *d = &w->b->dev[i % DEVICES];
    uint64_t at = w->b->now / PERIOD;
    char otp[16];
    for (uint64_t s = at - 1; s <= at + 1; s++) {
        if (oath_totp_generate2((const char *)d->seed, SEED_LEN, (time_t)s, 1, 0, DIGITS, 0, otp) !=
            OATH_OK)
            return lib_fail(&w->fail, OTPCA_ERR_CRYPTO, "oath_totp_generate2");
        w->sink += (uint32_t)otp[0];
    }
    return 0;
}

/* The engine's three uses of one device key, in its order: the request's
 * verify, the envelope's ECDH, the confirm's verify. With FP_ECC, wolfSSL
 * caches a point on first use and builds a table for it on the second. */
static int op_key3(struct worker *w, uint64_t i)
{
    if (op_verify(w, i) != 0 || op_ecdh(w, i) != 0 || op_verify(w, i) != 0)
        return -1;
    return 0;
}

static int op_cert(struct worker *w, uint64_t i)
{
    const struct device *d = &w->b->dev[i % DEVICES];
    size_t len = sizeof w->cert;
    otpca_err err =
        otpca_mgr_node_cert(&w->signer, &w->rng, w->b->ca.mgr_der, w->b->ca.mgr_der_len, &w->b->profile,
                            d->serial, d->mac, sizeof d->mac, d->reg.pubkey, w->cert, &len);
    if (err)
        return lib_fail(&w->fail, err, "otpca_mgr_node_cert");
    w->sink += w->cert[len - 1];
    return 0;
}

/* subjectAltName URIs as Cert.altNames wants them (GeneralNames DER), as
 * token/src/certgen.c writes them; two short URIs. */
static int san_uris_der(const char *a, const char *b2, uint8_t *out, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b2), body = 2 + la + 2 + lb, pos = 0;
    if (la > 127 || lb > 127 || body > 255 || body + 3 > cap)
        return -1;
    out[pos++] = 0x30;
    if (body >= 128)
        out[pos++] = 0x81;
    out[pos++] = (uint8_t)body;
    out[pos++] = 0x86;
    out[pos++] = (uint8_t)la;
    memcpy(out + pos, a, la);
    pos += la;
    out[pos++] = 0x86;
    out[pos++] = (uint8_t)lb;
    memcpy(out + pos, b2, lb);
    pos += lb;
    return (int)pos;
}

/* The prototype's once-per-thread part: everything of a node certificate
 * that does not depend on the node. */
static int cert_template_init(struct worker *w)
{
    const struct bench *b = w->b;
    Cert *c = w->tmpl;
    int rc;
    if ((rc = wc_InitCert(c)) != 0)
        return wc_fail(&w->fail, rc, "wc_InitCert");
    c->sigType = CTC_SHA256wECDSA;
    c->daysValid = (int)b->profile.days;
    if (b->profile.organization)
        snprintf(c->subject.org, CTC_NAME_SIZE, "%s", b->profile.organization);
    if ((rc = wc_SetKeyUsage(c, "digitalSignature,keyAgreement")) != 0 ||
        (rc = wc_SetExtKeyUsage(c, b->profile.ext_key_usage)) != 0 ||
        (rc = wc_SetAuthKeyIdFromPublicKey(c, NULL, &w->signer.ecc)) != 0 ||
        (rc = wc_SetIssuerBuffer(c, b->ca.mgr_der, (int)b->ca.mgr_der_len)) != 0)
        return wc_fail(&w->fail, rc, "certificate template");
    return 0;
}

/* The same certificate as otpca_mgr_node_cert makes, from the template:
 * copy it, then only what depends on the node (the subject key is
 * imported and checked on the curve, as otpca_cert_issue does). */
static int cert_from_template(struct worker *w, const struct device *d, uint8_t *der, size_t *len)
{
    Cert *c = w->scratch;
    ecc_key k;
    char os[OTPCA_MGR_URN_MAX], mac_urn[OTPCA_MGR_URN_MAX];
    int rc, n;
    otpca_err err =
        otpca_mgr_device_urns(w->b->profile.pen, d->serial, d->mac, sizeof d->mac, os, mac_urn);
    if (err)
        return lib_fail(&w->fail, err, "otpca_mgr_device_urns");
    memcpy(c, w->tmpl, sizeof *c);
    snprintf(c->subject.commonName, CTC_NAME_SIZE, "%s", d->serial);
    if ((n = san_uris_der(os, mac_urn, c->altNames, sizeof c->altNames)) < 0)
        return lib_fail(&w->fail, OTPCA_ERR_INVALID_ARG, "subjectAltName");
    c->altNamesSz = n;
    if ((rc = wc_RNG_GenerateBlock(&w->rng, c->serial, 16)) != 0)
        return wc_fail(&w->fail, rc, "wc_RNG_GenerateBlock");
    c->serial[0] = (uint8_t)((c->serial[0] & 0x7f) | 0x01);
    c->serialSz = 16;
    if ((rc = wc_ecc_init(&k)) != 0)
        return wc_fail(&w->fail, rc, "wc_ecc_init");
    rc = wc_ecc_import_x963_ex(d->reg.pubkey, 65, &k, ECC_SECP256R1);
    if (rc == 0)
        rc = wc_ecc_point_is_on_curve(&k.pubkey, k.idx);
    if (rc == 0)
        rc = wc_SetSubjectKeyIdFromPublicKey(c, NULL, &k);
    if (rc == 0 && (n = wc_MakeCert(c, der, OTPCA_CERT_DER_MAX, NULL, &k, &w->rng)) <= 0)
        rc = n ? n : -1;
    wc_ecc_free(&k);
    if (rc != 0)
        return wc_fail(&w->fail, rc, "wc_MakeCert(template)");
    n = wc_SignCert(c->bodySz, c->sigType, der, OTPCA_CERT_DER_MAX, NULL, &w->signer.ecc, &w->rng);
    if (n <= 0)
        return wc_fail(&w->fail, n, "wc_SignCert(template)");
    *len = (size_t)n;
    return 0;
}

static int op_normalize(struct worker *w, uint64_t i)
{
    uint8_t out[OTPCA_P256_PUB_LEN];
    otpca_err err = otpca_p256_pub_normalize(w->b->dev[i % DEVICES].reg.pubkey, 65, out);
    if (err)
        return lib_fail(&w->fail, err, "otpca_p256_pub_normalize");
    w->sink += out[1];
    return 0;
}

static int op_init_rng(struct worker *w, uint64_t i)
{
    WC_RNG rng;
    int rc = wc_InitRng(&rng);
    (void)i;
    if (rc != 0)
        return wc_fail(&w->fail, rc, "wc_InitRng");
    wc_FreeRng(&rng);
    w->sink++;
    return 0;
}

static int op_cert_tmpl(struct worker *w, uint64_t i)
{
    size_t len = 0;
    if (cert_from_template(w, &w->b->dev[i % DEVICES], w->cert, &len) != 0)
        return -1;
    w->sink += w->cert[len - 1];
    return 0;
}

/* otpca_mgr_issue's steps (manager/src/enroll.c) with the same calls, each
 * timed: the certificate, the envelope, the record id and the signed
 * response. Its sections: SEC_CHECK = cert, SEC_ISSUE = seal,
 * SEC_CONFIRM = record id + sign. */
static int issue_steps(struct worker *w, uint64_t i, struct sections *s)
{
    const struct bench *b = w->b;
    const struct device *d = &b->dev[i % DEVICES];
    const otpca_mgr_verdict *v = &d->verdict;
    uint8_t aad[64 + OTPCA_NONCE_LEN], env[64 + OTPCA_ECIES_OVERHEAD], record[16];
    size_t cert_len = sizeof w->cert, env_len = 0, out_len = 0, sl = strlen(v->serial);
    double t0 = bench_now_s(), t1, t2, t3;
    otpca_err err =
        otpca_mgr_node_cert(&w->signer, &w->rng, b->ca.mgr_der, b->ca.mgr_der_len, &b->profile, v->serial,
                            d->mac, sizeof d->mac, v->pub, w->cert, &cert_len);
    if (err)
        return lib_fail(&w->fail, err, "otpca_mgr_node_cert");
    t1 = bench_now_s();
    memcpy(aad, v->serial, sl);
    memcpy(aad + sl, v->req.nonce.p, OTPCA_NONCE_LEN);
    if ((err = otpca_ecies_seal(v->pub, 65, OTPCA_ECIES_LABEL_NETKEY, aad, sl + OTPCA_NONCE_LEN,
                                b->netkey, sizeof b->netkey, env, sizeof env, &env_len)))
        return lib_fail(&w->fail, err, "otpca_ecies_seal");
    t2 = bench_now_s();
    if (wc_RNG_GenerateBlock(&w->rng, record, sizeof record) != 0)
        return lib_fail(&w->fail, OTPCA_ERR_CRYPTO, "wc_RNG_GenerateBlock");
    otpca_enroll_response r;
    memset(&r, 0, sizeof r);
    r.nonce = v->req.nonce;
    r.record = (otpca_buf){record, 16};
    r.time = b->now;
    r.cert = (otpca_buf){w->cert, cert_len};
    r.netkey = (otpca_buf){env, env_len};
    r.netkey_epoch = w->issuer.netkey_epoch;
    if ((err = otpca_msg_sign(&otpca_desc_enroll_response, &r, &w->issuer.cose,
                              (otpca_buf){b->ca.mgr_der, b->ca.mgr_der_len}, w->resp, sizeof w->resp,
                              &out_len)))
        return lib_fail(&w->fail, err, "otpca_msg_sign(EnrollResponse)");
    t3 = bench_now_s();
    s->sec[SEC_CHECK] += t1 - t0;
    s->sec[SEC_ISSUE] += t2 - t1;
    s->sec[SEC_CONFIRM] += t3 - t2;
    w->resp_len = out_len;
    w->sink += w->resp[out_len - 1];
    return 0;
}

/* ---- threads and phases ---------------------------------------------------- */

/* Run ops[op] until the slice (wall seconds) is over, adding to w->cur. */
static int run_phase(struct worker *w, int op, double slice)
{
    struct bench *b = w->b;
    struct tally *t = &w->cur;
    struct sections s;
    uint64_t n = 0, i = w->op_i;
    memset(&s, 0, sizeof s);
    double c0 = bench_cpu_s(), w0 = bench_now_s(), end = w0 + slice, now = w0;
    int rc = 0;
    while (n < BENCH_MAX_OPS_PER_SLICE && !bench_stop && !atomic_load(&b->abort)) {
        switch (op) {
        case OP_ENGINE:
            rc = one_enrollment(w, 1, &s);
            break;
        case OP_ISSUE_STEPS:
            rc = issue_steps(w, i++, &s);
            break;
        case OP_VERIFY:
            rc = op_verify(w, i++);
            break;
        case OP_TOKEN_SIGN:
            rc = op_token_sign(w, i++);
            break;
        case OP_ECDH:
            rc = op_ecdh(w, i++);
            break;
        case OP_TOTP:
            rc = op_totp(w, i++);
            break;
        case OP_KEY3:
            rc = op_key3(w, i++);
            break;
        case OP_CERT:
            rc = op_cert(w, i++);
            break;
        case OP_CERT_TMPL:
            rc = op_cert_tmpl(w, i++);
            break;
        case OP_NORMALIZE:
            rc = op_normalize(w, i++);
            break;
        default:
            rc = op_init_rng(w, i++);
            break;
        }
        if (rc != 0)
            break;
        n++;
        if ((now = bench_now_s()) >= end)
            break;
    }
    double cpu = bench_cpu_s() - c0, wall = bench_now_s() - w0;
    w->op_i = i;
    t->ops += n;
    t->wall += wall;
    if (op == OP_ENGINE || op == OP_ISSUE_STEPS) {
        for (int k = 0; k < NSEC; k++) {
            t->sec[k] += s.sec[k];
            t->secs += s.sec[k];
        }
        t->cpu += cpu - s.node_cpu;
    } else {
        t->secs += wall;
        t->cpu += cpu;
    }
    if (rc != 0)
        atomic_store(&b->abort, 1);
    return rc;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;
    for (;;) {
        pthread_barrier_wait(&b->start);
        if (b->quit)
            break;
        memset(&w->cur, 0, sizeof w->cur);
        (void)run_phase(w, b->phase_op, b->phase_slice);
        pthread_barrier_wait(&b->done);
    }
#ifdef FP_ECC
    wc_ecc_fp_free(); /* this thread's fixed-point cache */
#endif
    return NULL;
}

/* Results per operation and thread count. */
struct result {
    struct tally t[MAX_THREADS]; /* per thread, summed over the rounds */
    double rate_min, rate_max;   /* of the rounds */
};

static double tally_rate(const struct tally *t, unsigned n, int cpu)
{
    double r = 0;
    for (unsigned k = 0; k < n; k++) {
        double s = cpu ? t[k].cpu : t[k].secs;
        r += s > 0 ? (double)t[k].ops / s : 0;
    }
    return r;
}

/* One phase on all threads of this thread count; per-thread tallies into
 * out (added when add is set). Returns -1 when a worker failed or a signal
 * stopped the run. */
static int phase(struct bench *b, int op, double slice, struct result *res, int add)
{
    b->phase_op = op;
    b->phase_slice = slice;
    pthread_barrier_wait(&b->start);
    pthread_barrier_wait(&b->done);
    if (atomic_load(&b->abort) || bench_stop)
        return -1;
    if (add) {
        struct tally cur[MAX_THREADS];
        for (unsigned k = 0; k < b->threads; k++) {
            cur[k] = b->w[k].cur;
            struct tally *t = &res->t[k];
            t->ops += cur[k].ops;
            t->secs += cur[k].secs;
            t->cpu += cur[k].cpu;
            t->wall += cur[k].wall;
            for (int s = 0; s < NSEC; s++)
                t->sec[s] += cur[k].sec[s];
        }
        bench_range(tally_rate(cur, b->threads, 0), &res->rate_min, &res->rate_max);
    }
    return 0;
}

/* The machine's other load: CPU time all processes used (/proc/stat) minus
 * ours (getrusage), between two probes, in cores. */
struct load_probe {
    double wall, busy, own;
};

static void load_probe(struct load_probe *p)
{
    unsigned long long v[8] = {0};
    struct rusage ru;
    long hz = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");
    p->busy = -1;
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8 &&
            hz > 0) /* idle v[3] and iowait v[4] left out */
            p->busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)hz;
        fclose(f);
    }
    getrusage(RUSAGE_SELF, &ru);
    p->own = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    p->wall = bench_now_s();
}

/* Cores' worth of CPU time other processes used between a and b; -1 when
 * /proc/stat could not be read. */
static double load_other(const struct load_probe *a, const struct load_probe *b)
{
    if (a->busy < 0 || b->busy < 0 || b->wall <= a->wall)
        return -1;
    double o = ((b->busy - a->busy) - (b->own - a->own)) / (b->wall - a->wall);
    return o > 0 ? o : 0;
}

/* Start n workers, warm every operation up, run the rounds (the order
 * rotating by one every round), stop the workers. */
static int measure(struct bench *b, unsigned n, double seconds, unsigned rounds, struct result *res,
                   double *other_load)
{
    double slice = seconds / rounds, warm = bench_warmup(seconds);
    unsigned started = 0;
    int ret = -1;
    struct load_probe p0, p1;
    load_probe(&p0);
    memset(res, 0, NOPS * sizeof *res);
    for (int k = 0; k < NOPS; k++)
        res[k].rate_min = INFINITY;
    b->threads = n;
    b->quit = 0;
    if (pthread_barrier_init(&b->start, NULL, n + 1) != 0)
        return lib_fail(&b->fail, OTPCA_ERR_INTERNAL, "pthread_barrier_init");
    if (pthread_barrier_init(&b->done, NULL, n + 1) != 0) {
        pthread_barrier_destroy(&b->start);
        return lib_fail(&b->fail, OTPCA_ERR_INTERNAL, "pthread_barrier_init");
    }
    for (; started < n; started++) {
        b->w[started].next = b->cursor + started;
        if (pthread_create(&b->w[started].th, NULL, worker_main, &b->w[started]) != 0) {
            lib_fail(&b->fail, OTPCA_ERR_INTERNAL, "pthread_create");
            break;
        }
    }
    if (started == n) {
        ret = 0;
        for (int k = 0; k < NOPS && ret == 0; k++)
            ret = phase(b, k, warm, &res[k], 0);
        for (unsigned r = 0; r < rounds && ret == 0; r++)
            for (int j = 0; j < NOPS && ret == 0; j++) {
                int k = (int)((r + (unsigned)j) % NOPS);
                ret = phase(b, k, slice, &res[k], 1);
            }
    }
    /* Stop the workers: with the start barrier sized for n, a partial start
     * cannot be released, so only a full start gets here with threads. */
    if (started == n) {
        b->quit = 1;
        pthread_barrier_wait(&b->start);
        for (unsigned k = 0; k < n; k++) {
            pthread_join(b->w[k].th, NULL);
            if (b->w[k].next > b->cursor)
                b->cursor = b->w[k].next;
        }
    }
    pthread_barrier_destroy(&b->start);
    pthread_barrier_destroy(&b->done);
    load_probe(&p1);
    *other_load = load_other(&p0, &p1);
    return ret;
}

/* ---- setup ------------------------------------------------------------------ */

/* The root and manager tokens and the chain root -> manager CA. */
static int setup_tokens(struct bench *b, const char *module, const char *rig)
{
    if (bench_ca_open(&b->ca, module, rig, &b->fail, b->what, sizeof b->what) != 0)
        return -1;
    otpca_mgr_profile_default(&b->profile);
    b->profile.organization = "otpca";
    return 0;
}

/* Each worker: its own session, signer, RNGs and issuer. */
static int setup_workers(struct bench *b)
{
    otpca_err err;
    int rc;
    uint8_t kid[OTPCA_KID_LEN];
    otpca_p256_kid(b->ca.mgr_pub, kid);
    for (unsigned k = 0; k < MAX_THREADS; k++) {
        struct worker *w = &b->w[k];
        w->b = b;
        w->id = k;
        w->hooks = (otpca_mgr_hooks){
            .device = hook_device, .nonce = hook_nonce, .arg = w, .record = hook_record};
        if ((err = otpca_token_clone(b->ca.mgr_tok, &w->tok)))
            return lib_fail(&b->fail, err, "otpca_token_clone");
        if ((err = otpca_wolf_signer_init(&w->signer, w->tok, b->ca.mgr_key)))
            return lib_fail(&b->fail, err, "otpca_wolf_signer_init(manager)");
        w->signer_ok = 1;
        if ((rc = wc_InitRng(&w->rng)) != 0)
            return wc_fail(&b->fail, rc, "wc_InitRng");
        w->rng_ok = 1;
        if ((rc = wc_InitRng(&w->node_rng)) != 0)
            return wc_fail(&b->fail, rc, "wc_InitRng");
        w->node_rng_ok = 1;
        otpca_mgr_issuer *is = &w->issuer;
        memset(is, 0, sizeof *is);
        is->ca = &w->signer;
        is->rng = &w->rng;
        is->cose.sign = mgr_cose_sign;
        is->cose.ctx = w;
        memcpy(is->cose.kid, kid, OTPCA_KID_LEN);
        is->ca_der = b->ca.mgr_der;
        is->ca_len = b->ca.mgr_der_len;
        is->profile = &b->profile;
        is->netkey = b->netkey;
        is->netkey_len = sizeof b->netkey;
        is->netkey_epoch = 1;
        w->tmpl = calloc(1, sizeof *w->tmpl);
        w->scratch = calloc(1, sizeof *w->scratch);
        if (!w->tmpl || !w->scratch)
            return lib_fail(&b->fail, OTPCA_ERR_NOMEM, "calloc");
        if (cert_template_init(w) != 0) {
            b->fail = w->fail;
            return -1;
        }
    }
    return 0;
}

/* Devices, registry and the signed requests. */
static int setup_devices(struct bench *b, int quiet)
{
    otpca_err err;
    b->now = (uint64_t)time(NULL);
    b->window = (otpca_mgr_window){.open = 1,
                                   .not_before = b->now - 60,
                                   .not_after = b->now + 86400,
                                   .max_enroll = UINT64_MAX};
    b->dev = calloc(DEVICES, sizeof *b->dev);
    b->req = calloc(REQUESTS, sizeof *b->req);
    b->gen[0] = calloc(1, sizeof *b->gen[0]);
    b->gen[1] = calloc(1, sizeof *b->gen[1]);
    if (!b->dev || !b->req || !b->gen[0] || !b->gen[1])
        return lib_fail(&b->fail, OTPCA_ERR_NOMEM, "calloc");
    if ((err = otpca_random(b->netkey, sizeof b->netkey)))
        return lib_fail(&b->fail, err, "otpca_random");
    for (uint32_t i = 0; i < DEVICES; i++) {
        struct device *d = &b->dev[i];
        snprintf(d->serial, sizeof d->serial, "bench-%06u", i + 1);
        memcpy(d->mac, (uint8_t[]){0x02, 0x00, 0x5e, 0x00, (uint8_t)(i >> 8), (uint8_t)i}, 6);
        if ((err = otpca_p256_soft_generate(&d->key)) ||
            (err = otpca_p256_pub_compress(d->key.pub, d->pubc)) ||
            (err = otpca_random(d->seed, sizeof d->seed)) ||
            (err = otpca_random(d->digest, sizeof d->digest)) ||
            (err = otpca_p256_soft_sign(&d->key, d->digest, d->sig)))
            return lib_fail(&b->fail, err, "device keys");
        otpca_p256_kid(d->key.pub, d->kid);
        otpca_mgr_device *r = &d->reg;
        r->state = OTPCA_DEV_APPROVED;
        r->in_scope = 1;
        memcpy(r->pubkey, d->key.pub, 65);
        r->pubkey_len = 65;
        r->seed = d->seed;
        r->seed_len = sizeof d->seed;
        r->digits = DIGITS;
        r->period = PERIOD;
        r->algorithm = 1;
        r->last_step = 0; /* never enrolled: every request may come round again */
        registry_add(b, i);
    }
    if (!quiet)
        fprintf(stderr, "signing %u EnrollRequests ...\n", REQUESTS);
    for (uint32_t i = 0; i < REQUESTS && !bench_stop; i++) {
        struct request *r = &b->req[i];
        r->dev = i % DEVICES;
        if ((err = make_request(b, &b->dev[r->dev], 0, r->buf, sizeof r->buf, &r->len)))
            return lib_fail(&b->fail, err, "EnrollRequest");
    }
    /* issue_steps' verdicts: each device's first request, decoded (what
     * check_enroll hands otpca_mgr_issue when it accepts it). */
    for (uint32_t i = 0; i < DEVICES && i < REQUESTS; i++) {
        struct device *d = &b->dev[b->req[i].dev];
        otpca_mgr_verdict *v = &d->verdict;
        otpca_cose_sign1 c;
        memset(v, 0, sizeof *v);
        if ((err = otpca_cose_sign1_decode(b->req[i].buf, b->req[i].len, &c)) ||
            (err =
                 otpca_msg_decode(&otpca_desc_enroll_request, c.payload.p, c.payload.len, &v->req)))
            return lib_fail(&b->fail, err, "EnrollRequest decode");
        v->reason = OTPCA_MGR_OK;
        snprintf(v->serial, sizeof v->serial, "%s", d->serial);
        memcpy(v->pub, d->reg.pubkey, 65);
    }
    return bench_stop ? -1 : 0;
}

static void teardown(struct bench *b)
{
    for (unsigned k = 0; k < MAX_THREADS; k++) {
        struct worker *w = &b->w[k];
        if (w->signer_ok)
            otpca_wolf_signer_free(&w->signer);
        if (w->rng_ok)
            wc_FreeRng(&w->rng);
        if (w->node_rng_ok)
            wc_FreeRng(&w->node_rng);
        w->signer_ok = w->rng_ok = w->node_rng_ok = 0;
        otpca_token_destroy(&w->tok);
        free(w->tmpl);
        free(w->scratch);
        w->tmpl = w->scratch = NULL;
    }
    bench_ca_close(&b->ca);
    if (b->dev)
        for (uint32_t i = 0; i < DEVICES; i++)
            otpca_p256_soft_wipe(&b->dev[i].key);
    free(b->dev);
    free(b->req);
    free(b->gen[0]);
    free(b->gen[1]);
    b->dev = NULL;
    b->req = NULL;
    b->gen[0] = b->gen[1] = NULL;
    otpca_memzero(b->netkey, sizeof b->netkey);
}

/* ---- sanity: the engine accepts, answers correctly and refuses ------------- */

static int sanity_fail(const char *what)
{
    fprintf(stderr, PROG ": sanity check failed: %s\n", what);
    return -1;
}

static int sanity(struct bench *b, size_t *cert_bytes, size_t *resp_bytes)
{
    struct worker *w = &b->w[0];
    struct sections s;
    otpca_mgr_verdict v;
    uint8_t buf[REQ_MAX], record[16], pt[64];
    size_t len = 0, cert_len = sizeof w->cert, resp_len = 0, pt_len = 0;
    const struct device *d = &b->dev[0];
    otpca_err err;
    b->threads = 1;

    /* A fresh request: accepted, answered; the response verifies under the
     * manager key, carries the certificate, the envelope opens with the
     * device key; the certificate chains root -> manager -> node. */
    if ((err = make_request(b, d, 0, buf, sizeof buf, &len)))
        return lib_fail(&b->fail, err, "EnrollRequest");
    otpca_mgr_check_enroll(&b->window, b->now, SKEW, &w->hooks, buf, len, &v);
    if (v.reason != OTPCA_MGR_OK)
        return sanity_fail(otpca_mgr_reason_name(v.reason));
    if ((err = otpca_mgr_issue(&w->issuer, &v, d->mac, 6, b->now, record, w->cert, &cert_len,
                               w->resp, sizeof w->resp, &resp_len)))
        return lib_fail(&b->fail, err, "otpca_mgr_issue");
    otpca_cose_sign1 c;
    otpca_enroll_response r;
    if (otpca_cose_sign1_decode(w->resp, resp_len, &c) != OTPCA_ERR_OK ||
        otpca_cose_sign1_verify(&c, b->ca.mgr_pub, 65) != OTPCA_ERR_OK ||
        otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r) !=
            OTPCA_ERR_OK)
        return sanity_fail("the EnrollResponse does not verify under the manager key");
    if (!c.x5chain.p || r.cert.len != cert_len || memcmp(r.cert.p, w->cert, cert_len) != 0 ||
        memcmp(r.nonce.p, v.req.nonce.p, 16) != 0)
        return sanity_fail("the EnrollResponse does not carry the certificate, x5chain and nonce");
    uint8_t aad[64 + OTPCA_NONCE_LEN];
    size_t sl = strlen(d->serial);
    memcpy(aad, d->serial, sl);
    memcpy(aad + sl, v.req.nonce.p, OTPCA_NONCE_LEN);
    if (otpca_ecies_open(otpca_p256_soft_ecdh, (void *)&d->key, d->key.pub,
                         OTPCA_ECIES_LABEL_NETKEY, aad, sl + OTPCA_NONCE_LEN, r.netkey.p,
                         r.netkey.len, pt, sizeof pt, &pt_len) != OTPCA_ERR_OK ||
        pt_len != sizeof b->netkey || memcmp(pt, b->netkey, pt_len) != 0)
        return sanity_fail("the network key does not open with the device key");
    int ok = bench_ca_verify(&b->ca, w->cert, cert_len);
    if (ok < 0)
        return sanity_fail("wolfSSL_CertManagerNew");
    if (!ok)
        return sanity_fail("root -> manager -> node certificate does not verify");
    *cert_bytes = cert_len;
    *resp_bytes = resp_len;

    /* The confirm: the node's is accepted; one for another certificate
     * (a changed byte), or for a record never issued, is not. */
    size_t conf_len = 0;
    otpca_enroll_confirm creq;
    otpca_mgr_issued rec;
    record_issue(w, record, v.serial, v.pub, w->cert, cert_len);
    if ((err = make_confirm(w, d, record, w->cert, cert_len, &conf_len)))
        return lib_fail(&b->fail, err, "EnrollConfirm");
    if (otpca_mgr_check_confirm(&w->hooks, w->confirm, conf_len, &creq, &rec) != OTPCA_MGR_OK ||
        strcmp(rec.serial, d->serial) != 0)
        return sanity_fail("the node's EnrollConfirm is refused");
    w->cert[cert_len / 2] ^= 1;
    err = make_confirm(w, d, record, w->cert, cert_len, &conf_len);
    w->cert[cert_len / 2] ^= 1;
    if (err)
        return lib_fail(&b->fail, err, "EnrollConfirm");
    if (otpca_mgr_check_confirm(&w->hooks, w->confirm, conf_len, &creq, &rec) != OTPCA_MGR_CERT)
        return sanity_fail("an EnrollConfirm for another certificate is accepted");
    record[0] ^= 1;
    err = make_confirm(w, d, record, w->cert, cert_len, &conf_len);
    record[0] ^= 1;
    if (err)
        return lib_fail(&b->fail, err, "EnrollConfirm");
    if (otpca_mgr_check_confirm(&w->hooks, w->confirm, conf_len, &creq, &rec) != OTPCA_MGR_CERT)
        return sanity_fail("an EnrollConfirm for an unknown record is accepted");

    /* Refusals: the same request again, a wrong TOTP, a changed signature. */
    otpca_mgr_check_enroll(&b->window, b->now, SKEW, &w->hooks, buf, len, &v);
    if (v.reason != OTPCA_MGR_REPLAY)
        return sanity_fail("a replayed request is not refused as a replay");
    if ((err = make_request(b, d, 1, buf, sizeof buf, &len)))
        return lib_fail(&b->fail, err, "EnrollRequest");
    otpca_mgr_check_enroll(&b->window, b->now, SKEW, &w->hooks, buf, len, &v);
    if (v.reason != OTPCA_MGR_TOTP || !v.count_failure)
        return sanity_fail("a wrong TOTP is not refused (or not counted)");
    if ((err = make_request(b, d, 0, buf, sizeof buf, &len)))
        return lib_fail(&b->fail, err, "EnrollRequest");
    buf[len - 3] ^= 1; /* inside the signature */
    otpca_mgr_check_enroll(&b->window, b->now, SKEW, &w->hooks, buf, len, &v);
    if (v.reason != OTPCA_MGR_SIGNATURE)
        return sanity_fail("a request with a changed signature is not refused");

    /* Every pooled request of the first device goes through, and each
     * bound operation runs once on every device. */
    memset(&s, 0, sizeof s);
    w->next = b->cursor;
    for (unsigned i = 0; i < 3; i++)
        if (one_enrollment(w, 0, &s) != 0)
            return -1;
    for (uint64_t i = 0; i < DEVICES; i++)
        if (op_verify(w, i) != 0 || op_ecdh(w, i) != 0 || op_totp(w, i) != 0)
            return -1;
    if (op_token_sign(w, 0) != 0 || op_key3(w, 1) != 0 || op_cert(w, 2) != 0 ||
        issue_steps(w, 3, &s) != 0 || op_normalize(w, 4) != 0 || op_init_rng(w, 5) != 0)
        return -1;
    /* issue_steps' response is a valid one too. */
    if (otpca_cose_sign1_decode(w->resp, w->resp_len, &c) != OTPCA_ERR_OK ||
        otpca_cose_sign1_verify(&c, b->ca.mgr_pub, 65) != OTPCA_ERR_OK ||
        otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r) !=
            OTPCA_ERR_OK)
        return sanity_fail("issue_steps: the EnrollResponse does not verify");
    /* The template prototype's certificate: as long as the engine's,
     * signed by the token, chains to the manager, names the device. */
    size_t proto_len = 0;
    unsigned long before = w->signer.signatures;
    if (cert_from_template(w, d, w->cert, &proto_len) != 0) {
        b->fail = w->fail;
        return -1;
    }
    /* (the signatures' DER lengths may differ by a byte or two) */
    if (w->signer.signatures != before + 1 || proto_len + 2 < cert_len || proto_len > cert_len + 2)
        return sanity_fail("the template prototype's certificate differs in size or signer");
    ok = bench_ca_verify(&b->ca, w->cert, proto_len);
    if (ok < 0)
        return sanity_fail("wolfSSL_CertManagerNew");
    if (!ok)
        return sanity_fail("the template prototype's certificate does not verify");
    /* The token's signature verifies under the manager key. */
    uint8_t sig[OTPCA_SIG_RAW_LEN];
    size_t sig_len = sizeof sig;
    if ((err = otpca_token_sign_digest(b->w[1].tok, b->ca.mgr_key, d->digest, 32, OTPCA_SIG_RAW,
                                       sig, &sig_len)))
        return lib_fail(&b->fail, err, "otpca_token_sign_digest");
    if (otpca_p256_verify(b->ca.mgr_pub, 65, d->digest, sig) != OTPCA_ERR_OK)
        return sanity_fail("the second session's signature does not verify");
    b->cursor = w->next;
    return 0;
}

/* ---- output ------------------------------------------------------------------- */

struct env {
    struct bench_ca_env c;
    size_t cert_bytes, resp_bytes, ca_bytes;
};

/* Everything the tables and the JSON print, per thread count. */
struct summary {
    unsigned threads;
    double op_rate[NOPS], op_cpu_rate[NOPS];
    double engine, engine_cpu, bound, bound_cpu, ratio, ratio_cpu;
    double sec_us[NSEC];   /* engine: per enrollment per thread */
    double steps_us[NSEC]; /* issue_steps: per op per thread */
    double cpu_share;
    double other_load; /* cores other processes used meanwhile; -1: unknown */
    uint64_t engine_ops;
};

static void summarize(const struct result *res, unsigned n, struct summary *s)
{
    double sum = 0, sum_cpu = 0, cpu = 0, secs = 0;
    memset(s, 0, sizeof *s);
    s->threads = n;
    for (int k = 0; k < NOPS; k++) {
        s->op_rate[k] = tally_rate(res[k].t, n, 0);
        s->op_cpu_rate[k] = tally_rate(res[k].t, n, 1);
        if (ops[k].per_enroll) {
            sum += s->op_rate[k] > 0 ? ops[k].per_enroll / s->op_rate[k] : INFINITY;
            sum_cpu += s->op_cpu_rate[k] > 0 ? ops[k].per_enroll / s->op_cpu_rate[k] : INFINITY;
        }
        for (unsigned t = 0; t < n; t++) {
            cpu += res[k].t[t].cpu;
            secs += res[k].t[t].secs;
        }
    }
    s->engine = s->op_rate[OP_ENGINE];
    s->engine_cpu = s->op_cpu_rate[OP_ENGINE];
    s->bound = sum > 0 ? 1 / sum : 0;
    s->bound_cpu = sum_cpu > 0 ? 1 / sum_cpu : 0;
    s->ratio = s->bound > 0 ? s->engine / s->bound : 0;
    s->ratio_cpu = s->bound_cpu > 0 ? s->engine_cpu / s->bound_cpu : 0;
    s->cpu_share = secs > 0 ? cpu / secs : 0;
    for (unsigned t = 0; t < n; t++) {
        s->engine_ops += res[OP_ENGINE].t[t].ops;
        for (int k = 0; k < NSEC; k++)
            s->sec_us[k] += res[OP_ENGINE].t[t].sec[k];
    }
    for (int k = 0; k < NSEC; k++)
        s->sec_us[k] = s->engine_ops ? 1e6 * s->sec_us[k] / (double)s->engine_ops : 0;
    uint64_t steps_ops = 0;
    for (unsigned t = 0; t < n; t++) {
        steps_ops += res[OP_ISSUE_STEPS].t[t].ops;
        for (int k = 0; k < NSEC; k++)
            s->steps_us[k] += res[OP_ISSUE_STEPS].t[t].sec[k];
    }
    for (int k = 0; k < NSEC; k++)
        s->steps_us[k] = steps_ops ? 1e6 * s->steps_us[k] / (double)steps_ops : 0;
}

static const char *const sec_name[NSEC] = {"check_enroll", "issue", "confirm"};

/* The bound operations a section cannot do without, in us per thread. */
static double sec_bound_us(const struct summary *s, int k)
{
    double v = s->op_rate[OP_VERIFY], t = s->op_rate[OP_TOKEN_SIGN], e = s->op_rate[OP_ECDH],
           o = s->op_rate[OP_TOTP], n = 1e6 * s->threads;
    switch (k) {
    case SEC_CHECK:
        return n / v + n / o;
    case SEC_ISSUE:
        return 2 * n / t + n / e;
    default:
        return n / v;
    }
}

/* What a prototype or attribution row is compared with, in us per op and
 * thread (bound operations of the same run). */
static double proto_compare_us(const struct summary *s, int k)
{
    double n = 1e6 * s->threads;
    if (k == OP_KEY3)
        return 2 * n / s->op_rate[OP_VERIFY] + n / s->op_rate[OP_ECDH];
    if (k == OP_ISSUE_STEPS)
        return 2 * n / s->op_rate[OP_TOKEN_SIGN] + n / s->op_rate[OP_ECDH];
    if (k == OP_NORMALIZE || k == OP_INIT_RNG)
        return 0;
    return n / s->op_rate[OP_TOKEN_SIGN];
}

static const char *const proto_compare_name[NOPS] = {
    [OP_KEY3] = "2 ecdsa_verify + ecdh_ephemeral",
    [OP_CERT] = "token_sign",
    [OP_CERT_TMPL] = "token_sign",
    [OP_ISSUE_STEPS] = "2 token_sign + ecdh_ephemeral",
    [OP_NORMALIZE] = "(nothing)",
    [OP_INIT_RNG] = "(nothing)",
};

static const char *const sec_bound_name[NSEC] = {"ecdsa_verify + totp_3steps",
                                                 "2 token_sign + ecdh_ephemeral", "ecdsa_verify"};

static void print_header(const struct env *e)
{
    printf(PROG ": the manager's enrollment engine against its crypto bound, 1 and %u threads\n",
           MAX_THREADS);
    printf("  scope    %s\n", ENGINE_NOTE);
    printf("  wolfSSL  %s, %s (%s), SP ECC %s; linked library %s; %s\n", OTPCA_WOLFSSL_VERSION,
           OTPCA_WOLFSSL_BUILD, OTPCA_WOLFSSL_PREFIX, bench_ca_sp_word(), wolfSSL_lib_version(), e->c.ecc);
    bench_print_host(stdout, &e->c.host, 1);
    printf("  token    %s key %s (root %s), module %s, rig %s%s; a session per thread\n", MGR_LABEL,
           OTPCA_RIG_MANAGER_KEY, OTPCA_RIG_ROOT_TOKEN, e->c.module, e->c.rig.dir,
           e->c.rig.throwaway ? " (throw-away)" : "");
    printf("  devices  %u software keys, %u-byte seeds (TOTP SHA-1, %u digits, %u s); %u signed "
           "EnrollRequests (compressed key, no manager kid: x5chain in every response); "
           "certificate %zu B, response %zu B (manager certificate %zu B)\n",
           DEVICES, SEED_LEN, DIGITS, PERIOD, REQUESTS, e->cert_bytes, e->resp_bytes, e->ca_bytes);
    printf(
        "  engine   otpca_mgr_check_enroll + otpca_mgr_issue (+ the certificate's SHA-256 for the "
        "record) + otpca_mgr_check_confirm; not timed: the node signing its EnrollConfirm; not "
        "included: the ConfirmAck\n");
    printf(
        "  timing   %.2f s wall per operation and thread count in %u rounds, the order rotating, "
        "warm-up first; ops/s by the wall clock, summed over the threads; us/op per thread\n\n",
        e->c.args.seconds, e->c.args.rounds);
    fflush(stdout);
}

static void print_tables(const struct summary *s, unsigned nt)
{
    int low_share = 0;
    printf("%-20s", "per enrollment");
    for (unsigned t = 0; t < nt; t++)
        printf(" | %u thread%s %9s %8s %10s", s[t].threads, s[t].threads > 1 ? "s" : " ", "ops/s",
               "us/op", "ops/CPU-s");
    printf("\n%-20s", "engine");
    for (unsigned t = 0; t < nt; t++)
        printf(" | %9s %9.1f %8.1f %10.1f", "", s[t].engine,
               bench_us_per(s[t].engine) * s[t].threads, s[t].engine_cpu);
    printf("\n%-20s", "crypto bound");
    for (unsigned t = 0; t < nt; t++)
        printf(" | %9s %9.1f %8.1f %10.1f", "", s[t].bound, bench_us_per(s[t].bound) * s[t].threads,
               s[t].bound_cpu);
    printf("\n%-20s", "ratio engine/bound");
    for (unsigned t = 0; t < nt; t++)
        printf(" | %9s %9.3f %8s %10.3f", "", s[t].ratio,
               s[t].ratio >= TARGET_RATIO ? "ok" : "BELOW", s[t].ratio_cpu);
    printf("\n%-20s", "CPU share");
    for (unsigned t = 0; t < nt; t++) {
        printf(" | %9s %8.1f%% %8s %10s", "", 100 * s[t].cpu_share, "", "");
        low_share |= s[t].cpu_share < 0.9;
    }
    printf("\n%-20s", "other load, cores");
    for (unsigned t = 0; t < nt; t++) {
        if (s[t].other_load < 0)
            printf(" | %9s %9s %8s %10s", "", "?", "", "");
        else
            printf(" | %9s %9.2f %8s %10s", "", s[t].other_load, "", "");
    }
    printf("\n\nops/s: by the wall clock, summed over the threads (the throughput); us/op: per "
           "thread;\nops/CPU-s: per CPU-second of each thread, summed; target ratio >= %.2f\n",
           TARGET_RATIO);
    if (low_share)
        printf(
            "CPU share below 90 %%: other processes (or waiting) took the cores part of the time; "
            "the\nwall-clock rates and ratios are then noisy, the per-CPU-second ones less so\n");
    printf("\nthe bound, each operation alone\n");
    printf("%-16s %4s", "operation", "x");
    for (unsigned t = 0; t < nt; t++)
        printf(" %12s %9s %u thread%s", "ops/s", "us/op", s[t].threads,
               s[t].threads > 1 ? "s" : " ");
    printf("  what\n");
    for (int k = 1; k < OP_FIRST_PROTO; k++) {
        printf("%-16s %4u", ops[k].name, ops[k].per_enroll);
        for (unsigned t = 0; t < nt; t++)
            printf(" %12.1f %9.1f %10s", s[t].op_rate[k],
                   bench_us_per(s[t].op_rate[k]) * s[t].threads, "");
        printf("  %s\n", ops[k].desc);
    }
    printf("\nwhere the engine's time goes: us per enrollment and thread, and beyond the bound\n");
    printf("%-14s", "section");
    for (unsigned t = 0; t < nt; t++)
        printf(" %9s %8s %8s %u thr", "us", "bound", "extra", s[t].threads);
    printf("  bound operations\n");
    double tot[MAX_THREADS] = {0}, tb[MAX_THREADS] = {0};
    for (int k = 0; k < NSEC; k++) {
        printf("%-14s", sec_name[k]);
        for (unsigned t = 0; t < nt; t++) {
            double bu = sec_bound_us(&s[t], k);
            tot[t] += s[t].sec_us[k];
            tb[t] += bu;
            printf(" %9.1f %8.1f %8.1f %5s", s[t].sec_us[k], bu, s[t].sec_us[k] - bu, "");
        }
        printf("  %s\n", sec_bound_name[k]);
    }
    printf("%-14s", "total");
    for (unsigned t = 0; t < nt; t++)
        printf(" %9.1f %8.1f %8.1f %5s", tot[t], tb[t], tot[t] - tb[t], "");
    printf(
        "\n\nattribution and prototypes (not in the bound): us per op and thread, and beyond the "
        "compared operations\n");
    printf("%-14s", "operation");
    for (unsigned t = 0; t < nt; t++)
        printf(" %9s %8s %8s %u thr", "us", "compare", "extra", s[t].threads);
    printf("  compared with\n");
    static const char *const step_name[NSEC] = {"  cert", "  seal", "  sign"};
    static const char *const step_cmp[NSEC] = {"token_sign", "ecdh_ephemeral", "token_sign"};
    for (int k = OP_FIRST_PROTO; k < NOPS; k++) {
        printf("%-14s", ops[k].name);
        for (unsigned t = 0; t < nt; t++) {
            double us = bench_us_per(s[t].op_rate[k]) * s[t].threads,
                   cu = proto_compare_us(&s[t], k);
            printf(" %9.1f %8.1f %8.1f %5s", us, cu, us - cu, "");
        }
        printf("  %s\n", proto_compare_name[k]);
        if (k != OP_ISSUE_STEPS)
            continue;
        for (int j = 0; j < NSEC; j++) {
            printf("%-14s", step_name[j]);
            for (unsigned t = 0; t < nt; t++) {
                double n = 1e6 * s[t].threads,
                       cu = n / s[t].op_rate[j == 1 ? OP_ECDH : OP_TOKEN_SIGN];
                printf(" %9.1f %8.1f %8.1f %5s", s[t].steps_us[j], cu, s[t].steps_us[j] - cu, "");
            }
            printf("  %s\n", step_cmp[j]);
        }
    }
    for (int k = OP_FIRST_PROTO; k < NOPS; k++)
        printf("  %-13s %s\n", ops[k].name, ops[k].desc);
    fflush(stdout);
}

static void json_rate_fields(const struct result *r, unsigned n, int k, const struct summary *s)
{
    printf("\"ops\":%llu,\"ops_per_s\":%.1f,\"us_per_op\":%.3f,\"rate_min\":%.1f,\"rate_max\":%.1f,"
           "\"cpu_ops_per_s\":%.1f",
           (unsigned long long)(r->t[0].ops + (n > 1 ? r->t[1].ops : 0)), s->op_rate[k],
           bench_us_per(s->op_rate[k]) * n, isfinite(r->rate_min) ? r->rate_min : 0, r->rate_max,
           s->op_cpu_rate[k]);
}

static void print_json(const struct env *e, const struct result res[MAX_THREADS][NOPS],
                       const struct summary *s, unsigned nt)
{
    int pass = 1;
    printf("{\"benchmark\":\"enroll\",\"scope\":");
    bench_json_str(stdout, ENGINE_NOTE);
    printf(",");
    bench_ca_json_env(&e->c);
    printf(",\"devices\":%u,\"requests\":%u,\"confirm_included\":true,"
           "\"cert_bytes\":%zu,\"response_bytes\":%zu,\"manager_cert_bytes\":%zu,"
           "\"seconds\":%.3f,\"rounds\":%u,\"timing\":\"wall\",\"target_ratio\":%.2f,\"summary\":{",
           DEVICES, REQUESTS, e->cert_bytes, e->resp_bytes,
           e->ca_bytes, e->c.args.seconds, e->c.args.rounds, TARGET_RATIO);
    for (unsigned t = 0; t < nt; t++) {
        unsigned n = s[t].threads;
        printf("%s\"engine_%u\":%.1f,\"bound_%u\":%.1f,\"ratio_%u\":%.4f,\"token_sign_%u\":%.1f,"
               "\"engine_cpu_%u\":%.1f,\"bound_cpu_%u\":%.1f,\"ratio_cpu_%u\":%.4f,"
               "\"cpu_share_%u\":%.4f,\"other_load_%u\":%.3f,\"key3_extra_us_%u\":%.1f",
               t ? "," : "", n, s[t].engine, n, s[t].bound, n, s[t].ratio, n,
               s[t].op_rate[OP_TOKEN_SIGN], n, s[t].engine_cpu, n, s[t].bound_cpu, n,
               s[t].ratio_cpu, n, s[t].cpu_share, n, s[t].other_load, n,
               bench_us_per(s[t].op_rate[OP_KEY3]) * n - proto_compare_us(&s[t], OP_KEY3));
    }
    printf("},\"threads\":[");
    for (unsigned t = 0; t < nt; t++) {
        const struct summary *q = &s[t];
        unsigned n = q->threads;
        pass &= q->ratio >= TARGET_RATIO;
        printf("%s{\"threads\":%u,\"engine\":{", t ? "," : "", n);
        json_rate_fields(&res[t][OP_ENGINE], n, OP_ENGINE, q);
        printf(",\"sections_us\":{");
        for (int k = 0; k < NSEC; k++)
            printf("%s\"%s\":%.3f", k ? "," : "", sec_name[k], q->sec_us[k]);
        printf("},\"sections_bound_us\":{");
        for (int k = 0; k < NSEC; k++)
            printf("%s\"%s\":%.3f", k ? "," : "", sec_name[k], sec_bound_us(q, k));
        printf("}},\"bound\":{\"ops_per_s\":%.1f,\"us_per_op\":%.3f,\"cpu_ops_per_s\":%.1f},"
               "\"ratio\":%.4f,\"ratio_cpu\":%.4f,\"pass\":%s,\"cpu_share\":%.4f,"
               "\"other_load\":%.3f,\"ops\":[",
               q->bound, bench_us_per(q->bound) * n, q->bound_cpu, q->ratio, q->ratio_cpu,
               q->ratio >= TARGET_RATIO ? "true" : "false", q->cpu_share, q->other_load);
        for (int k = 1; k < NOPS; k++) {
            printf("%s{\"name\":\"%s\",\"what\":", k > 1 ? "," : "", ops[k].name);
            bench_json_str(stdout, ops[k].desc);
            printf(",\"in_bound\":%s,\"per_enrollment\":%u,", ops[k].per_enroll ? "true" : "false",
                   ops[k].per_enroll);
            json_rate_fields(&res[t][k], n, k, q);
            if (k >= OP_FIRST_PROTO) {
                printf(",\"compare\":");
                bench_json_str(stdout, proto_compare_name[k]);
                printf(",\"compare_us\":%.3f", proto_compare_us(q, k));
            }
            if (k == OP_ISSUE_STEPS)
                printf(",\"steps_us\":{\"cert\":%.3f,\"seal\":%.3f,\"sign\":%.3f}", q->steps_us[0],
                       q->steps_us[1], q->steps_us[2]);
            printf("}");
        }
        printf("]}");
    }
    printf("],\"pass\":%s}\n", pass ? "true" : "false");
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [--seconds S] [--rounds N] [--json] [--rig DIR]\n"
            "  Enrollments per second of the manager's engine (otpca_mgr_check_enroll +\n"
            "  otpca_mgr_issue + otpca_mgr_check_confirm) with 1 and %u threads, against the\n"
            "  crypto bound measured in the same run (2 ECDSA verifies, 2 token signatures,\n"
            "  1 ephemeral ECDH, 3 TOTPs per enrollment); target ratio >= %.2f. Then rows\n"
            "  that attribute the rest (FP_ECC, certificate, issuance steps) and prototypes.\n"
            "  Scope: %s.\n"
            "  Built against wolfSSL %s, %s, SP ECC %s.\n"
            "  --seconds S  wall time per operation and thread count (default %.1f)\n"
            "  --rounds N   rounds, the order of the operations rotating (default %u)\n"
            "  --json       one JSON object on stdout instead of the tables\n"
            "  --rig DIR    use tokens %s and %s of an existing rig (default: a\n"
            "               throw-away rig in a temporary directory, removed at the end)\n"
            "  The module is OTPCA_PKCS11_MODULE or %s.\n"
            "  bench/enroll.sh runs the SP and the packaged build side by side.\n",
            MAX_THREADS, TARGET_RATIO, ENGINE_NOTE, OTPCA_WOLFSSL_VERSION, OTPCA_WOLFSSL_BUILD,
            bench_ca_sp_word(), DEFAULT_SECONDS, DEFAULT_ROUNDS, OTPCA_RIG_ROOT_TOKEN, MGR_LABEL,
            otpca_p11_default_module());
}

int main(int argc, char **argv)
{
    static struct bench b;
    static struct result res[MAX_THREADS][NOPS];
    struct summary sum[MAX_THREADS];
    struct env e = {.c.args = {DEFAULT_SECONDS, DEFAULT_ROUNDS, 0, NULL}};
    int ret = EXIT_FAILURE, wolf_ok = 0, oath_ok = 0, mu_ok = 0;

    otpca_log_init(PROG, OTPCA_LOG_WARN, OTPCA_LOG_TEXT);
    int rc = bench_start(argc, argv, PROG, "rig", usage, &e.c.args, &e.c.host);
    if (rc >= 0)
        return rc;
    const int json = e.c.args.json;
    e.c.module = bench_pkcs11_module(otpca_p11_default_module());
    bench_ecc_config(e.c.ecc, sizeof e.c.ecc, 1);

    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        fprintf(stderr, PROG ": wolfSSL_Init failed\n");
        return EXIT_FAILURE;
    }
    wolf_ok = 1;
    if (oath_init() != OATH_OK) {
        fprintf(stderr, PROG ": oath_init failed\n");
        goto out;
    }
    oath_ok = 1;
    if (pthread_mutex_init(&b.nonce_mu, NULL) != 0) {
        fprintf(stderr, PROG ": pthread_mutex_init failed\n");
        goto out;
    }
    mu_ok = 1;

    if (bench_ca_rig_open(&e.c.rig, PROG, e.c.args.extra, e.c.module, json) != 0)
        goto out;
    if (bench_stop)
        goto fail;
    if (!json)
        fprintf(stderr,
                "preparing %u devices, the root -> manager chain and the sanity checks ...\n",
                DEVICES);
    if (setup_tokens(&b, e.c.module, e.c.rig.dir) != 0 || setup_workers(&b) != 0 ||
        setup_devices(&b, json) != 0 || sanity(&b, &e.cert_bytes, &e.resp_bytes) != 0)
        goto fail;
    e.ca_bytes = b.ca.mgr_der_len;

    if (!json)
        print_header(&e);
    for (unsigned t = 0; t < MAX_THREADS; t++) {
        if (!json)
            fprintf(stderr, "measuring with %u thread%s ...\n", t + 1, t ? "s" : "");
        double other = -1;
        if (measure(&b, t + 1, e.c.args.seconds, e.c.args.rounds, res[t], &other) != 0)
            goto fail;
        summarize(res[t], t + 1, &sum[t]);
        sum[t].other_load = other;
    }
    if (json)
        print_json(&e, res, sum, MAX_THREADS);
    else
        print_tables(sum, MAX_THREADS);
    ret = EXIT_SUCCESS;
    goto out;

fail:
    for (unsigned k = 0; k < MAX_THREADS && !b.fail.what; k++)
        if (b.w[k].fail.what)
            b.fail = b.w[k].fail;
    ret = bench_fail_wc(PROG, &b.fail, otpca_strerror(b.fail.err));
out:
    teardown(&b);
    if (mu_ok)
        pthread_mutex_destroy(&b.nonce_mu);
    if (oath_ok)
        oath_done();
    if (wolf_ok)
        bench_ca_wolf_cleanup();
    bench_rig_close(&e.c.rig);
    return ret;
}
