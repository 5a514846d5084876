/*
 * otpca-bench-proto: is the protocol code, rather than the crypto, the
 * limit? Each protocol operation of the manager's and the node's hot paths
 * (libotpca-proto) is timed against the raw wolfCrypt calls it cannot do
 * without, in the same run, the two sides alternating (rounds A B, B A,
 * ..., and within a round turns of at most 20 ms, A B B A ...) so that a
 * change of machine speed hits both alike; the report is ops/s of both,
 * the ratio protocol/raw (1.000 = no overhead) and the extra microseconds
 * per operation. Then the codec alone (no crypto: messages/s, MB/s, ns per
 * message) and, for attribution, the wolfCrypt building blocks one by one.
 *
 *   enroll_verify      cose_sign1_decode + msg_decode(EnrollRequest) +
 *                      cose_sign1_verify with the 33-byte device key, a
 *                      different key each op (pool of 256)
 *                      vs wc_ecc_import_x963_ex(33 bytes) + wc_ecc_verify_hash
 *                      over a precomputed digest, same keys
 *   seal_netkey[_65]   otpca_ecies_seal of a 16-byte network key to the
 *                      33-byte (65-byte) device key vs wc_ecc_make_key_ex +
 *                      wc_ecc_shared_secret (device key imported beforehand)
 *   sign_resp_*        otpca_msg_sign(EnrollResponse, 520-byte certificate)
 *                      with otpca_p256_soft_sign (soft) or with a signer that
 *                      holds an imported ecc_key and one WC_RNG (preload)
 *                      vs wc_ecc_sign_hash with a preloaded key
 *   enroll_response_*  seal + sign together vs make_key + shared_secret +
 *                      sign_hash
 *   open_netkey_*      otpca_ecies_open with otpca_p256_soft_ecdh (soft) or
 *                      with a preloaded-key callback (preload) vs
 *                      wc_ecc_shared_secret with both keys imported
 *
 * Then the seeds of a SyncBatch (PROTOCOL.md section 5.1), per DeviceEntry:
 * a seed box (one ECDH per batch, then HKDF-Expand + AES-GCM per seed)
 * against one ECIES envelope per seed, the scheme it replaced, in the same
 * alternating rounds (ratio = seed box / ECIES ops/s), the once-per-batch
 * cost of a box on both sides, and what that makes of a snapshot of a
 * million devices on one core:
 *
 *   seal_seed          otpca_seedbox_seal(20-byte seed, the entry's serial)
 *                      vs otpca_ecies_seal(65-byte manager key, 20 bytes)
 *   open_seed          otpca_seedbox_open vs otpca_ecies_open with a
 *                      preloaded-key ECDH callback (the fastest ECDH a
 *                      manager could have; a token's is slower)
 *   seedbox_sender     otpca_seedbox_sender (once per SyncBatch)
 *   seedbox_receiver   otpca_seedbox_receiver, preloaded-key ECDH
 *
 * Rates are per CPU-second of the benchmark thread (CLOCK_THREAD_CPUTIME_ID):
 * on shared cores, time the thread spends descheduled counts for neither
 * side. Single-threaded: the numbers are per core.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "otpca/proto/cbor.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/ecies.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "otpca/proto/seedbox.h"

#include "benchutil.h"

#define DEFAULT_SECONDS 1.0
#define DEFAULT_ROUNDS 5u
#define CHUNK_SECONDS 0.02 /* turns within a round (see measure_pair) */
#define MAX_TURNS 1000000u

#define POOL 256        /* device keys, signed requests, envelopes */
#define NETKEY_LEN 16   /* the network key sealed in EnrollResponse */
#define CERT_LEN 520    /* certificate placeholder in EnrollResponse */
#define BATCH_N 1024    /* DeviceEntry elements in the SyncBatch */
#define SEED_LEN 20     /* a TOTP seed (RFC 6238's SHA-1 seed length) */
#define SEED_ENV_LEN (OTPCA_ECIES_OVERHEAD + SEED_LEN)
#define SEALED_SEED_LEN OTPCA_SEEDBOX_SEALED_LEN(SEED_LEN)
#define SNAPSHOT_DEVICES 1000000.0 /* the snapshot the seed box is sized for */
#define SNAPSHOT_BATCH 4096.0      /* entries per SyncBatch (the most a batch holds) */
#define NETKEY_ENV_LEN (OTPCA_ECIES_OVERHEAD + NETKEY_LEN)
#define SERIAL_LEN 11   /* "node-000001" */
#define AAD_LEN (SERIAL_LEN + OTPCA_NONCE_LEN)

static const char *only; /* --only: rows whose name contains this */

static int selected(const char *name) { return !only || strstr(name, only) != NULL; }

/* ---- state ------------------------------------------------------------- */

/* A key held the way a daemon would hold it: imported once, one RNG. */
struct preloaded {
    ecc_key key;
    WC_RNG rng;
    int key_ok, rng_ok;
};

struct dev {
    otpca_p256_soft soft; /* the device key */
    uint8_t pub_c[OTPCA_P256_PUB_C_LEN];
    char serial[SERIAL_LEN + 1];
    uint8_t nonce[OTPCA_NONCE_LEN], mac[6], ca[OTPCA_KID_LEN];
    uint8_t aad[AAD_LEN]; /* serial || nonce: the netkey envelope's aad */
    otpca_enroll_request req;
    uint8_t msg[512]; /* the signed EnrollRequest */
    size_t msg_len;
    otpca_buf payload;  /* inside msg */
    uint8_t digest[32]; /* of its Sig_structure (the raw side verifies this) */
    uint8_t der[80];    /* its signature, DER */
    word32 der_len;
};

struct bench {
    struct dev *dev;  /* POOL */
    ecc_key *dev_pub; /* POOL, device public keys imported (raw ECDH, components) */
    size_t dev_pub_n;
    WC_RNG rng; /* the raw side's RNG */
    int rng_ok;

    /* manager */
    otpca_p256_soft mgr;
    struct preloaded raw_mgr, pre_mgr; /* raw side's key; the preload signer's */
    otpca_signer signer_soft, signer_pre;
    uint8_t netkey[NETKEY_LEN], cert[CERT_LEN], record[OTPCA_ID16_LEN];
    uint8_t env0[NETKEY_ENV_LEN]; /* a netkey envelope to dev[0] (codec, sign rows) */
    otpca_enroll_response resp;
    uint8_t resp_digest[32];

    /* node */
    otpca_p256_soft node;
    struct preloaded raw_node, pre_node;
    uint8_t node_aad[AAD_LEN];
    uint8_t (*env)[NETKEY_ENV_LEN]; /* POOL envelopes to the node key */
    ecc_key *eph_pub;               /* POOL, their ephemeral keys imported (raw side) */
    size_t eph_pub_n;

    /* codec */
    uint8_t resp_plain[2048];
    size_t resp_plain_len;
    otpca_device_entry *ents; /* BATCH_N */
    char (*ent_serial)[SERIAL_LEN + 1];
    uint8_t (*ent_sealed)[SEALED_SEED_LEN]; /* BATCH_N seeds sealed in seed_tx */
    uint8_t window[OTPCA_ID16_LEN];

    /* seeds to the manager: a seed box, and one ECIES envelope per seed */
    otpca_seedbox seed_tx, seed_rx;
    uint8_t seed[SEED_LEN];
    uint8_t (*seed_env)[SEED_ENV_LEN]; /* POOL, to the manager key, aad = dev serial */
    uint8_t *batch; /* the encoded SyncBatch */
    size_t batch_len;

    /* failures */
    struct bench_failure fail;
    uint32_t sink; /* keeps results observable */
};

static int lib_fail(struct bench *b, otpca_err err, const char *what)
{
    return bench_lib_fail(&b->fail, err, what);
}

static int wc_fail(struct bench *b, int rc, const char *what)
{
    return bench_wc_fail(&b->fail, rc, what);
}

static struct dev *dev_at(struct bench *b, uint64_t i) { return &b->dev[i % POOL]; }

/* ---- the preloaded callbacks (what a daemon with a software key would do) */

/* otpca_sign_fn over an already imported key and one long-lived WC_RNG. */
static otpca_err preloaded_sign(void *ctx, const uint8_t digest[32], uint8_t sig[OTPCA_P256_SIG_LEN])
{
    struct preloaded *p = ctx;
    byte der[80], r[32], s[32];
    word32 der_len = sizeof der, rlen = sizeof r, slen = sizeof s;
    if (wc_ecc_sign_hash(digest, 32, der, &der_len, &p->rng, &p->key) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_ecc_sig_to_rs(der, der_len, r, &rlen, s, &slen) != 0 || rlen > 32 || slen > 32)
        return OTPCA_ERR_CRYPTO;
    memset(sig, 0, OTPCA_P256_SIG_LEN);
    memcpy(sig + 32 - rlen, r, rlen);
    memcpy(sig + 64 - slen, s, slen);
    return OTPCA_ERR_OK;
}

/* otpca_ecdh_fn over an already imported key. The peer is imported without
 * an on-curve check of its own: otpca_ecies_open has checked it just before
 * (otpca_p256_pub_normalize) and is the only caller here. */
static otpca_err preloaded_ecdh(void *ctx, const uint8_t peer[OTPCA_P256_PUB_LEN], uint8_t z[32])
{
    struct preloaded *p = ctx;
    ecc_key pub;
    word32 zlen = 32;
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (wc_ecc_init(&pub) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_ecc_import_x963_ex(peer, OTPCA_P256_PUB_LEN, &pub, ECC_SECP256R1) == 0 &&
        wc_ecc_shared_secret(&p->key, &pub, z, &zlen) == 0 && zlen == 32)
        ret = OTPCA_ERR_OK;
    wc_ecc_free(&pub);
    return ret;
}

static int preloaded_init(struct preloaded *p, const otpca_p256_soft *soft)
{
    memset(p, 0, sizeof *p);
    if (wc_InitRng(&p->rng) != 0)
        return -1;
    p->rng_ok = 1;
    if (wc_ecc_init(&p->key) != 0)
        return -1;
    p->key_ok = 1;
    if (wc_ecc_import_private_key_ex(soft->priv, OTPCA_P256_PRIV_LEN, soft->pub, OTPCA_P256_PUB_LEN,
                                     &p->key, ECC_SECP256R1) != 0 ||
        wc_ecc_set_rng(&p->key, &p->rng) != 0) /* ECDH blinding needs it */
        return -1;
    return 0;
}

static void preloaded_free(struct preloaded *p)
{
    if (p->key_ok)
        wc_ecc_free(&p->key);
    if (p->rng_ok)
        wc_FreeRng(&p->rng);
    p->key_ok = p->rng_ok = 0;
}

/* ---- 1. manager, verify side -------------------------------------------- */

static int op_verify_proto(struct bench *b, uint64_t i)
{
    const struct dev *d = dev_at(b, i);
    otpca_cose_sign1 m;
    otpca_enroll_request req;
    otpca_err err = otpca_cose_sign1_decode(d->msg, d->msg_len, &m);
    if (err)
        return lib_fail(b, err, "otpca_cose_sign1_decode");
    if ((err = otpca_msg_decode(&otpca_desc_enroll_request, m.payload.p, m.payload.len, &req)))
        return lib_fail(b, err, "otpca_msg_decode(EnrollRequest)");
    if ((err = otpca_cose_sign1_verify(&m, d->pub_c, sizeof d->pub_c)))
        return lib_fail(b, err, "otpca_cose_sign1_verify");
    b->sink += (uint32_t)req.totp;
    return 0;
}

static int op_verify_raw(struct bench *b, uint64_t i)
{
    const struct dev *d = dev_at(b, i);
    ecc_key k;
    int res = 0, rc;
    if ((rc = wc_ecc_init(&k)) != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    rc = wc_ecc_import_x963_ex(d->pub_c, sizeof d->pub_c, &k, ECC_SECP256R1);
    if (rc == 0)
        rc = wc_ecc_verify_hash(d->der, d->der_len, d->digest, 32, &res, &k);
    wc_ecc_free(&k);
    if (rc != 0 || res != 1)
        return wc_fail(b, rc ? rc : -1, "wc_ecc_import_x963_ex+wc_ecc_verify_hash");
    b->sink += (uint32_t)res;
    return 0;
}

/* ---- 2. manager, response side ------------------------------------------ */

static int seal(struct bench *b, const struct dev *d, uint8_t env[NETKEY_ENV_LEN])
{
    size_t len = 0;
    otpca_err err = otpca_ecies_seal(d->pub_c, sizeof d->pub_c, OTPCA_ECIES_LABEL_NETKEY, d->aad,
                                     sizeof d->aad, b->netkey, sizeof b->netkey, env,
                                     NETKEY_ENV_LEN, &len);
    if (err)
        return lib_fail(b, err, "otpca_ecies_seal");
    if (len != NETKEY_ENV_LEN)
        return lib_fail(b, OTPCA_ERR_INTERNAL, "otpca_ecies_seal (length)");
    b->sink += env[1 + 64];
    return 0;
}

static int sign_response(struct bench *b, const otpca_signer *s, const uint8_t *env,
                         const uint8_t *nonce)
{
    uint8_t out[OTPCA_MSG_NODE_MAX];
    size_t len = 0;
    otpca_enroll_response r = b->resp;
    otpca_buf none = {NULL, 0};
    r.netkey.p = env;
    r.nonce.p = nonce;
    otpca_err err = otpca_msg_sign(&otpca_desc_enroll_response, &r, s, none, out, sizeof out, &len);
    if (err)
        return lib_fail(b, err, "otpca_msg_sign(EnrollResponse)");
    b->sink += out[len - 1];
    return 0;
}

static int op_seal_proto(struct bench *b, uint64_t i)
{
    uint8_t env[NETKEY_ENV_LEN];
    return seal(b, dev_at(b, i), env);
}

/* The same seal to the uncompressed (65-byte) form of the device key: what
 * a manager that keeps the registered key normalised would pass. */
static int op_seal65_proto(struct bench *b, uint64_t i)
{
    const struct dev *d = dev_at(b, i);
    uint8_t env[NETKEY_ENV_LEN];
    size_t len = 0;
    otpca_err err = otpca_ecies_seal(d->soft.pub, OTPCA_P256_PUB_LEN, OTPCA_ECIES_LABEL_NETKEY, d->aad,
                                     sizeof d->aad, b->netkey, sizeof b->netkey, env, sizeof env, &len);
    if (err)
        return lib_fail(b, err, "otpca_ecies_seal(65-byte key)");
    b->sink += env[len - 1];
    return 0;
}

/* make_key + shared_secret: the ECDH half of a seal. */
static int raw_ecdh_eph(struct bench *b, uint64_t i)
{
    ecc_key eph;
    uint8_t z[32];
    word32 zlen = sizeof z;
    int rc;
    if ((rc = wc_ecc_init(&eph)) != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    rc = wc_ecc_make_key_ex(&b->rng, 32, &eph, ECC_SECP256R1);
    if (rc == 0)
        rc = wc_ecc_set_rng(&eph, &b->rng);
    if (rc == 0)
        rc = wc_ecc_shared_secret(&eph, &b->dev_pub[i % POOL], z, &zlen);
    wc_ecc_free(&eph);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_make_key_ex+wc_ecc_shared_secret");
    b->sink += z[0];
    return 0;
}

static int raw_sign(struct bench *b)
{
    byte der[80];
    word32 der_len = sizeof der;
    int rc = wc_ecc_sign_hash(b->resp_digest, 32, der, &der_len, &b->rng, &b->raw_mgr.key);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_sign_hash");
    b->sink += der[der_len - 1];
    return 0;
}

static int op_seal_raw(struct bench *b, uint64_t i) { return raw_ecdh_eph(b, i); }

static int op_sign_soft(struct bench *b, uint64_t i)
{
    return sign_response(b, &b->signer_soft, b->env0, dev_at(b, i)->nonce);
}

static int op_sign_pre(struct bench *b, uint64_t i)
{
    return sign_response(b, &b->signer_pre, b->env0, dev_at(b, i)->nonce);
}

static int op_sign_raw(struct bench *b, uint64_t i)
{
    (void)i;
    return raw_sign(b);
}

static int op_response_soft(struct bench *b, uint64_t i)
{
    uint8_t env[NETKEY_ENV_LEN];
    const struct dev *d = dev_at(b, i);
    if (seal(b, d, env) != 0)
        return -1;
    return sign_response(b, &b->signer_soft, env, d->nonce);
}

static int op_response_pre(struct bench *b, uint64_t i)
{
    uint8_t env[NETKEY_ENV_LEN];
    const struct dev *d = dev_at(b, i);
    if (seal(b, d, env) != 0)
        return -1;
    return sign_response(b, &b->signer_pre, env, d->nonce);
}

static int op_response_raw(struct bench *b, uint64_t i)
{
    if (raw_ecdh_eph(b, i) != 0)
        return -1;
    return raw_sign(b);
}

/* ---- 4. node side --------------------------------------------------------- */

static int open_env(struct bench *b, uint64_t i, otpca_ecdh_fn fn, void *ctx)
{
    uint8_t pt[64];
    size_t len = 0;
    otpca_err err = otpca_ecies_open(fn, ctx, b->node.pub, OTPCA_ECIES_LABEL_NETKEY, b->node_aad,
                                     sizeof b->node_aad, b->env[i % POOL], NETKEY_ENV_LEN, pt,
                                     sizeof pt, &len);
    if (err)
        return lib_fail(b, err, "otpca_ecies_open");
    if (len != NETKEY_LEN)
        return lib_fail(b, OTPCA_ERR_INTERNAL, "otpca_ecies_open (length)");
    b->sink += pt[0];
    return 0;
}

static int op_open_soft(struct bench *b, uint64_t i)
{
    return open_env(b, i, otpca_p256_soft_ecdh, &b->node);
}

static int op_open_pre(struct bench *b, uint64_t i) { return open_env(b, i, preloaded_ecdh, &b->pre_node); }

static int op_open_raw(struct bench *b, uint64_t i)
{
    uint8_t z[32];
    word32 zlen = sizeof z;
    int rc = wc_ecc_shared_secret(&b->raw_node.key, &b->eph_pub[i % POOL], z, &zlen);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_shared_secret");
    b->sink += z[0];
    return 0;
}

/* ---- 5. seeds of a SyncBatch: seed box vs ECIES per seed ----------------- */

static int op_seal_seed_box(struct bench *b, uint64_t i)
{
    const struct dev *d = dev_at(b, i);
    uint8_t out[SEALED_SEED_LEN];
    size_t len = 0;
    otpca_err err = otpca_seedbox_seal(&b->seed_tx, (const uint8_t *)d->serial, SERIAL_LEN, b->seed,
                                       SEED_LEN, out, sizeof out, &len);
    if (err)
        return lib_fail(b, err, "otpca_seedbox_seal");
    b->sink += out[len - 1];
    return 0;
}

static int op_seal_seed_ecies(struct bench *b, uint64_t i)
{
    const struct dev *d = dev_at(b, i);
    uint8_t env[SEED_ENV_LEN];
    size_t len = 0;
    /* The label seeds had before seed boxes. */
    otpca_err err = otpca_ecies_seal(b->mgr.pub, OTPCA_P256_PUB_LEN, "seed", (const uint8_t *)d->serial,
                                     SERIAL_LEN, b->seed, SEED_LEN, env, sizeof env, &len);
    if (err)
        return lib_fail(b, err, "otpca_ecies_seal(seed)");
    b->sink += env[len - 1];
    return 0;
}

static int op_open_seed_box(struct bench *b, uint64_t i)
{
    const struct dev *d = dev_at(b, i);
    uint8_t seed[SEED_LEN];
    size_t len = 0;
    otpca_err err = otpca_seedbox_open(&b->seed_rx, (const uint8_t *)d->serial, SERIAL_LEN,
                                       b->ent_sealed[i % POOL], SEALED_SEED_LEN, seed, sizeof seed, &len);
    if (err)
        return lib_fail(b, err, "otpca_seedbox_open");
    b->sink += seed[0];
    return 0;
}

static int op_open_seed_ecies(struct bench *b, uint64_t i)
{
    const struct dev *d = dev_at(b, i);
    uint8_t seed[SEED_LEN];
    size_t len = 0;
    otpca_err err = otpca_ecies_open(preloaded_ecdh, &b->pre_mgr, b->mgr.pub, "seed",
                                     (const uint8_t *)d->serial, SERIAL_LEN, b->seed_env[i % POOL],
                                     SEED_ENV_LEN, seed, sizeof seed, &len);
    if (err)
        return lib_fail(b, err, "otpca_ecies_open(seed)");
    b->sink += seed[0];
    return 0;
}

static int op_seedbox_sender(struct bench *b, uint64_t i)
{
    otpca_seedbox box;
    (void)i;
    otpca_err err = otpca_seedbox_sender(&box, b->mgr.pub, OTPCA_P256_PUB_LEN);
    if (err)
        return lib_fail(b, err, "otpca_seedbox_sender");
    b->sink += box.eph[64];
    otpca_seedbox_wipe(&box);
    return 0;
}

static int op_seedbox_receiver(struct bench *b, uint64_t i)
{
    otpca_seedbox box;
    (void)i;
    otpca_err err = otpca_seedbox_receiver(&box, b->seed_tx.eph, b->mgr.pub, preloaded_ecdh, &b->pre_mgr);
    if (err)
        return lib_fail(b, err, "otpca_seedbox_receiver");
    b->sink += box.prk[0];
    otpca_seedbox_wipe(&box);
    return 0;
}

/* ---- 3. codec only -------------------------------------------------------- */

static int op_enc_req(struct bench *b, uint64_t i)
{
    uint8_t out[512];
    size_t len = 0;
    otpca_err err = otpca_msg_encode(&otpca_desc_enroll_request, &dev_at(b, i)->req, out, sizeof out, &len);
    if (err)
        return lib_fail(b, err, "otpca_msg_encode(EnrollRequest)");
    b->sink += out[len - 1];
    return 0;
}

static int op_dec_req(struct bench *b, uint64_t i)
{
    const struct dev *d = dev_at(b, i);
    otpca_enroll_request req;
    otpca_err err = otpca_msg_decode(&otpca_desc_enroll_request, d->payload.p, d->payload.len, &req);
    if (err)
        return lib_fail(b, err, "otpca_msg_decode(EnrollRequest)");
    b->sink += (uint32_t)req.totp;
    return 0;
}

static int op_cose_dec_req(struct bench *b, uint64_t i)
{
    const struct dev *d = dev_at(b, i);
    otpca_cose_sign1 m;
    otpca_enroll_request req;
    otpca_err err = otpca_cose_sign1_decode(d->msg, d->msg_len, &m);
    if (!err)
        err = otpca_msg_decode(&otpca_desc_enroll_request, m.payload.p, m.payload.len, &req);
    if (err)
        return lib_fail(b, err, "otpca_cose_sign1_decode+otpca_msg_decode");
    b->sink += (uint32_t)req.totp;
    return 0;
}

static int op_enc_resp(struct bench *b, uint64_t i)
{
    uint8_t out[2048];
    size_t len = 0;
    otpca_enroll_response r = b->resp;
    r.nonce.p = dev_at(b, i)->nonce;
    otpca_err err = otpca_msg_encode(&otpca_desc_enroll_response, &r, out, sizeof out, &len);
    if (err)
        return lib_fail(b, err, "otpca_msg_encode(EnrollResponse)");
    b->sink += out[len - 1];
    return 0;
}

static int op_dec_resp(struct bench *b, uint64_t i)
{
    otpca_enroll_response r;
    (void)i;
    otpca_err err = otpca_msg_decode(&otpca_desc_enroll_response, b->resp_plain, b->resp_plain_len, &r);
    if (err)
        return lib_fail(b, err, "otpca_msg_decode(EnrollResponse)");
    b->sink += (uint32_t)r.netkey_epoch;
    return 0;
}

static int op_batch_dec(struct bench *b, uint64_t i)
{
    otpca_sync_batch sb;
    (void)i;
    otpca_err err = otpca_msg_decode(&otpca_desc_sync_batch, b->batch, b->batch_len, &sb);
    if (err)
        return lib_fail(b, err, "otpca_msg_decode(SyncBatch)");
    if (sb.entries.count != BATCH_N)
        return lib_fail(b, OTPCA_ERR_INTERNAL, "SyncBatch entry count");
    b->sink += (uint32_t)sb.to;
    return 0;
}

static int op_batch_walk(struct bench *b, uint64_t i)
{
    otpca_sync_batch sb;
    otpca_list_iter it;
    otpca_device_entry e;
    size_t n = 0;
    (void)i;
    otpca_err err = otpca_msg_decode(&otpca_desc_sync_batch, b->batch, b->batch_len, &sb);
    if (err)
        return lib_fail(b, err, "otpca_msg_decode(SyncBatch)");
    otpca_list_iter_init(&it, &sb.entries);
    for (; n <= BATCH_N && (err = otpca_list_next(&it, &otpca_desc_device_entry, &e)) == OTPCA_ERR_OK; n++)
        b->sink += (uint32_t)e.seq;
    if (err != OTPCA_ERR_NOT_FOUND)
        return lib_fail(b, err, "otpca_list_next(DeviceEntry)");
    if (n != BATCH_N)
        return lib_fail(b, OTPCA_ERR_INTERNAL, "SyncBatch walk count");
    return 0;
}

/* ---- building blocks (attribution) --------------------------------------- */

static int op_c_rng(struct bench *b, uint64_t i)
{
    WC_RNG r;
    (void)i;
    int rc = wc_InitRng(&r);
    if (rc != 0)
        return wc_fail(b, rc, "wc_InitRng");
    wc_FreeRng(&r);
    return 0;
}

static int op_c_ecc_init(struct bench *b, uint64_t i)
{
    ecc_key k;
    (void)i;
    int rc = wc_ecc_init(&k);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    wc_ecc_free(&k);
    return 0;
}

static int import_pub(struct bench *b, const uint8_t *p, size_t len)
{
    ecc_key k;
    int rc = wc_ecc_init(&k);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    rc = wc_ecc_import_x963_ex(p, (word32)len, &k, ECC_SECP256R1);
    wc_ecc_free(&k);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_import_x963_ex");
    return 0;
}

static int op_c_import33(struct bench *b, uint64_t i)
{
    return import_pub(b, dev_at(b, i)->pub_c, OTPCA_P256_PUB_C_LEN);
}

static int op_c_import65(struct bench *b, uint64_t i)
{
    return import_pub(b, dev_at(b, i)->soft.pub, OTPCA_P256_PUB_LEN);
}

static int op_c_on_curve(struct bench *b, uint64_t i)
{
    ecc_key *k = &b->dev_pub[i % POOL];
    int rc = wc_ecc_point_is_on_curve(&k->pubkey, k->idx);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_point_is_on_curve");
    return 0;
}

static int op_c_normalize33(struct bench *b, uint64_t i)
{
    uint8_t full[OTPCA_P256_PUB_LEN];
    otpca_err err = otpca_p256_pub_normalize(dev_at(b, i)->pub_c, OTPCA_P256_PUB_C_LEN, full);
    if (err)
        return lib_fail(b, err, "otpca_p256_pub_normalize");
    b->sink += full[64];
    return 0;
}

static int op_c_import_priv(struct bench *b, uint64_t i)
{
    ecc_key k;
    (void)i;
    int rc = wc_ecc_init(&k);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    rc = wc_ecc_import_private_key_ex(b->mgr.priv, OTPCA_P256_PRIV_LEN, b->mgr.pub, OTPCA_P256_PUB_LEN,
                                      &k, ECC_SECP256R1);
    wc_ecc_free(&k);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_import_private_key_ex");
    return 0;
}

static int op_c_make_key(struct bench *b, uint64_t i)
{
    ecc_key k;
    (void)i;
    int rc = wc_ecc_init(&k);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    rc = wc_ecc_make_key_ex(&b->rng, 32, &k, ECC_SECP256R1);
    wc_ecc_free(&k);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_make_key_ex");
    return 0;
}

static int op_c_verify(struct bench *b, uint64_t i)
{
    const struct dev *d = dev_at(b, i);
    int res = 0;
    int rc = wc_ecc_verify_hash(d->der, d->der_len, d->digest, 32, &res, &b->dev_pub[i % POOL]);
    if (rc != 0 || res != 1)
        return wc_fail(b, rc ? rc : -1, "wc_ecc_verify_hash");
    return 0;
}

static int op_c_hkdf(struct bench *b, uint64_t i)
{
    uint8_t salt[2 * OTPCA_P256_PUB_LEN], okm[28];
    static const uint8_t info[] = "otpca-ecies-v1 netkey";
    memcpy(salt, dev_at(b, i)->soft.pub, OTPCA_P256_PUB_LEN);
    memcpy(salt + OTPCA_P256_PUB_LEN, b->node.pub, OTPCA_P256_PUB_LEN);
    int rc = wc_HKDF(WC_SHA256, b->netkey, sizeof b->netkey, salt, sizeof salt, info,
                     (word32)(sizeof info - 1), okm, sizeof okm);
    if (rc != 0)
        return wc_fail(b, rc, "wc_HKDF");
    b->sink += okm[0];
    return 0;
}

static int op_c_gcm(struct bench *b, uint64_t i)
{
    Aes aes;
    uint8_t ct[NETKEY_LEN], tag[16], aad[1 + AAD_LEN];
    static const uint8_t iv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    aad[0] = OTPCA_ECIES_VERSION;
    memcpy(aad + 1, dev_at(b, i)->aad, AAD_LEN);
    int rc = wc_AesInit(&aes, NULL, INVALID_DEVID);
    if (rc != 0)
        return wc_fail(b, rc, "wc_AesInit");
    rc = wc_AesGcmSetKey(&aes, b->netkey, 16);
    if (rc == 0)
        rc = wc_AesGcmEncrypt(&aes, ct, b->netkey, sizeof b->netkey, iv, sizeof iv, tag, sizeof tag,
                              aad, sizeof aad);
    wc_AesFree(&aes);
    if (rc != 0)
        return wc_fail(b, rc, "wc_AesGcmSetKey+wc_AesGcmEncrypt");
    b->sink += tag[0];
    return 0;
}

static int op_c_sha_resp(struct bench *b, uint64_t i)
{
    uint8_t d[32];
    (void)i;
    int rc = wc_Sha256Hash(b->resp_plain, (word32)b->resp_plain_len, d);
    if (rc != 0)
        return wc_fail(b, rc, "wc_Sha256Hash");
    b->sink += d[0];
    return 0;
}

static int op_c_max_size(struct bench *b, uint64_t i)
{
    (void)i;
    b->sink += (uint32_t)otpca_msg_max_size(&otpca_desc_enroll_request);
    return 0;
}

static int op_c_soft_sign(struct bench *b, uint64_t i)
{
    uint8_t sig[OTPCA_P256_SIG_LEN];
    (void)i;
    otpca_err err = otpca_p256_soft_sign(&b->mgr, b->resp_digest, sig);
    if (err)
        return lib_fail(b, err, "otpca_p256_soft_sign");
    b->sink += sig[0];
    return 0;
}

static int op_c_soft_ecdh(struct bench *b, uint64_t i)
{
    uint8_t z[32];
    otpca_err err = otpca_p256_soft_ecdh(&b->node, b->env[i % POOL] + 1, z);
    if (err)
        return lib_fail(b, err, "otpca_p256_soft_ecdh");
    b->sink += z[0];
    return 0;
}

static int op_c_soft_generate(struct bench *b, uint64_t i)
{
    otpca_p256_soft k;
    (void)i;
    otpca_err err = otpca_p256_soft_generate(&k);
    if (err)
        return lib_fail(b, err, "otpca_p256_soft_generate");
    b->sink += k.pub[1];
    otpca_p256_soft_wipe(&k);
    return 0;
}

/* ---- the tables of measurements ------------------------------------------ */

static const struct pair {
    const char *name, *proto_desc, *raw_desc;
    bench_op proto, raw;
} pairs[] = {
    {"enroll_verify",
     "otpca_cose_sign1_decode + otpca_msg_decode(EnrollRequest) + otpca_cose_sign1_verify(33-byte key)",
     "wc_ecc_import_x963_ex(33 bytes) + wc_ecc_verify_hash(precomputed digest)", op_verify_proto,
     op_verify_raw},
    {"seal_netkey", "otpca_ecies_seal(33-byte key, 16-byte network key)",
     "wc_ecc_make_key_ex + wc_ecc_shared_secret(peer imported beforehand)", op_seal_proto,
     op_seal_raw},
    {"seal_netkey_65", "otpca_ecies_seal(65-byte key, 16-byte network key)",
     "wc_ecc_make_key_ex + wc_ecc_shared_secret(peer imported beforehand)", op_seal65_proto,
     op_seal_raw},
    {"sign_resp_soft", "otpca_msg_sign(EnrollResponse) with otpca_p256_soft_sign",
     "wc_ecc_sign_hash(preloaded key)", op_sign_soft, op_sign_raw},
    {"sign_resp_preload", "otpca_msg_sign(EnrollResponse) with a preloaded-key signer",
     "wc_ecc_sign_hash(preloaded key)", op_sign_pre, op_sign_raw},
    {"enroll_response_soft", "otpca_ecies_seal + otpca_msg_sign(EnrollResponse), soft signer",
     "wc_ecc_make_key_ex + wc_ecc_shared_secret + wc_ecc_sign_hash", op_response_soft,
     op_response_raw},
    {"enroll_response_preload", "otpca_ecies_seal + otpca_msg_sign(EnrollResponse), preloaded signer",
     "wc_ecc_make_key_ex + wc_ecc_shared_secret + wc_ecc_sign_hash", op_response_pre,
     op_response_raw},
    {"open_netkey_soft", "otpca_ecies_open with otpca_p256_soft_ecdh",
     "wc_ecc_shared_secret(both keys imported beforehand)", op_open_soft, op_open_raw},
    {"open_netkey_preload", "otpca_ecies_open with a preloaded-key ECDH callback",
     "wc_ecc_shared_secret(both keys imported beforehand)", op_open_pre, op_open_raw},
};
#define NPAIRS (sizeof pairs / sizeof pairs[0])

/* Seed box (the "proto" side) vs one ECIES envelope per seed ("raw"). */
static const struct pair seed_pairs[] = {
    {"seal_seed", "otpca_seedbox_seal(20-byte seed, its serial): HKDF-Expand + AES-128-GCM",
     "otpca_ecies_seal(65-byte manager key, 20-byte seed): ephemeral key + ECDH + HKDF + AES-128-GCM",
     op_seal_seed_box, op_seal_seed_ecies},
    {"open_seed", "otpca_seedbox_open(its serial)",
     "otpca_ecies_open with a preloaded-key ECDH callback", op_open_seed_box, op_open_seed_ecies},
};
#define NSEEDPAIRS (sizeof seed_pairs / sizeof seed_pairs[0])
enum { S_SEAL, S_OPEN };

enum { C_ENC_REQ, C_DEC_REQ, C_COSE_DEC_REQ, C_ENC_RESP, C_DEC_RESP, C_BATCH_DEC, C_BATCH_WALK, NCODEC };

static const struct single {
    const char *name, *desc;
    bench_op op;
    unsigned clock_every; /* ops between clock reads */
} codec[NCODEC] = {
    [C_ENC_REQ] = {"enc_enroll_request", "otpca_msg_encode(EnrollRequest)", op_enc_req, 64},
    [C_DEC_REQ] = {"dec_enroll_request", "otpca_msg_decode(EnrollRequest)", op_dec_req, 64},
    [C_COSE_DEC_REQ] = {"dec_signed_enroll_request",
                        "otpca_cose_sign1_decode + otpca_msg_decode(EnrollRequest)",
                        op_cose_dec_req, 64},
    [C_ENC_RESP] = {"enc_enroll_response", "otpca_msg_encode(EnrollResponse)", op_enc_resp, 64},
    [C_DEC_RESP] = {"dec_enroll_response", "otpca_msg_decode(EnrollResponse)", op_dec_resp, 64},
    [C_BATCH_DEC] = {"dec_sync_batch_1024", "otpca_msg_decode(SyncBatch, 1024 DeviceEntry)",
                     op_batch_dec, 1},
    [C_BATCH_WALK] = {"dec_walk_sync_batch_1024",
                      "otpca_msg_decode(SyncBatch) + otpca_list_next over all 1024 entries",
                      op_batch_walk, 1},
};

static const struct single components[] = {
    {"wc_InitRng+wc_FreeRng", "seed from /dev/urandom + DRBG health test + instantiation", op_c_rng, 16},
    {"wc_ecc_init+wc_ecc_free", "an ecc_key on the stack", op_c_ecc_init, 16},
    {"import_x963(33)", "wc_ecc_init + wc_ecc_import_x963_ex(compressed: square root) + free",
     op_c_import33, 16},
    {"import_x963(65)", "wc_ecc_init + wc_ecc_import_x963_ex(uncompressed) + free", op_c_import65, 16},
    {"point_is_on_curve", "wc_ecc_point_is_on_curve", op_c_on_curve, 16},
    {"otpca_p256_pub_normalize(33)", "import(33) + on-curve check + export(65)", op_c_normalize33, 16},
    {"import_private_key", "wc_ecc_init + wc_ecc_import_private_key_ex(d, Q) + free", op_c_import_priv,
     16},
    {"wc_ecc_make_key_ex", "wc_ecc_init + make_key + free (shared RNG)", op_c_make_key, 1},
    {"wc_ecc_shared_secret", "both keys imported", op_open_raw, 1},
    {"wc_ecc_sign_hash", "preloaded key, shared RNG", op_sign_raw, 1},
    {"wc_ecc_verify_hash", "public key imported", op_c_verify, 1},
    {"wc_HKDF(SHA-256, 28 B)", "the ECIES key derivation", op_c_hkdf, 16},
    {"AES-128-GCM(16 B)", "wc_AesInit + wc_AesGcmSetKey + wc_AesGcmEncrypt + wc_AesFree", op_c_gcm, 16},
    {"wc_Sha256Hash(EnrollResponse)", "SHA-256 over the ~0.7 KB payload (Sig_structure hash)",
     op_c_sha_resp, 16},
    {"otpca_msg_max_size(EnrollRequest)", "recomputed by every otpca_msg_decode", op_c_max_size, 64},
    {"otpca_p256_soft_sign", "InitRng + import d,Q + sign_hash + DER->r||s + FreeRng", op_c_soft_sign, 1},
    {"otpca_p256_soft_ecdh", "InitRng + import d,Q + import peer + on-curve + ECDH + FreeRng",
     op_c_soft_ecdh, 1},
    {"otpca_p256_soft_generate", "InitRng + make_key + export d, Q + FreeRng", op_c_soft_generate, 1},
};
#define NCOMP (sizeof components / sizeof components[0])

enum { B_SENDER, B_RECEIVER, NBOX };
static const struct single box_ops[NBOX] = {
    [B_SENDER] = {"seedbox_sender", "otpca_seedbox_sender: fresh key + ECDH + HKDF-Extract (per batch)",
                  op_seedbox_sender, 1},
    [B_RECEIVER] = {"seedbox_receiver",
                    "otpca_seedbox_receiver: 2 point checks + preloaded ECDH + HKDF-Extract (per batch)",
                    op_seedbox_receiver, 1},
};


/* ---- timing ---------------------------------------------------------------- */

/* The tallies' secs are CPU time of this thread (bench_run_slice): other
 * processes on the shared cores then slow neither side; the wall time is
 * kept to report it, and bench_run_slice bounds every slice by it. */
struct pair_result {
    struct bench_tally proto, raw;
    double ratio, ratio_min, ratio_max;
};

struct single_result {
    struct bench_tally t;
    double rate_min, rate_max;
    size_t bytes, items; /* per op (codec rows) */
};

/* Warm-up, then `rounds` rounds of seconds/rounds of CPU time per side.
 * Within a round the sides take turns in chunks of at most CHUNK_SECONDS,
 * the order flipping at every turn (A B B A A B ...; odd rounds start with
 * B), so that a change of machine speed in the middle of a round hits both
 * sides alike. Each side walks the key pool from its start. */
static int measure_pair(struct bench *b, const struct pair *p, double seconds, unsigned rounds,
                        struct pair_result *r)
{
    double slice = seconds / rounds, warm = bench_warmup(seconds);
    double chunk = slice < CHUNK_SECONDS ? slice : CHUNK_SECONDS;
    uint64_t counter[2] = {0, 0};
    struct bench_tally scratch = {0, 0, 0};
    bench_op fn[2] = {p->proto, p->raw};
    memset(r, 0, sizeof *r);
    if (bench_run_slice(b, p->proto, warm, 1, &counter[0], &scratch) != 0 ||
        bench_run_slice(b, p->raw, warm, 1, &counter[1], &scratch) != 0)
        return -1;
    counter[0] = counter[1] = 0;
    r->ratio_min = INFINITY;
    r->ratio_max = 0;
    for (unsigned k = 0; k < rounds; k++) {
        struct bench_tally t[2] = {{0, 0, 0}, {0, 0, 0}};
        double w0 = bench_now_s();
        unsigned first = k % 2;
        /* Bounded: at most MAX_TURNS turns and BENCH_WALL_FACTOR x the round's
         * CPU time in wall time. */
        for (unsigned turn = 0; turn < MAX_TURNS && (t[0].secs < slice || t[1].secs < slice); turn++) {
            for (unsigned h = 0; h < 2; h++) {
                unsigned side = (first + turn + h) % 2; /* A B, B A, A B, ... */
                double left = slice - t[side].secs;
                if (left <= 0)
                    continue;
                if (bench_run_slice(b, fn[side], left < chunk ? left : chunk, 1, &counter[side],
                                    &t[side]) != 0)
                    return -1;
            }
            if (bench_now_s() - w0 >= BENCH_WALL_FACTOR * 2 * slice)
                break;
        }
        double q = bench_rate(&t[1]) > 0 ? bench_rate(&t[0]) / bench_rate(&t[1]) : 0.0;
        bench_range(q, &r->ratio_min, &r->ratio_max);
        bench_tally_add(&r->proto, &t[0]);
        bench_tally_add(&r->raw, &t[1]);
    }
    r->ratio = bench_rate(&r->raw) > 0 ? bench_rate(&r->proto) / bench_rate(&r->raw) : 0.0;
    return 0;
}

static int measure_single(struct bench *b, const struct single *s, double seconds, unsigned rounds,
                          struct single_result *r)
{
    double slice = seconds / rounds;
    uint64_t counter = 0;
    struct bench_tally scratch = {0, 0, 0};
    size_t bytes = r->bytes, items = r->items;
    memset(r, 0, sizeof *r);
    r->bytes = bytes;
    r->items = items;
    if (bench_run_slice(b, s->op, bench_warmup(seconds), s->clock_every, &counter, &scratch) != 0)
        return -1;
    r->rate_min = INFINITY;
    for (unsigned k = 0; k < rounds; k++) {
        struct bench_tally t = {0, 0, 0};
        if (bench_run_slice(b, s->op, slice, s->clock_every, &counter, &t) != 0)
            return -1;
        bench_range(bench_rate(&t), &r->rate_min, &r->rate_max);
        bench_tally_add(&r->t, &t);
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------------ */

/* SHA-256 of the Sig_structure ["Signature1", protected, h'', payload],
 * built here independently of cose.c (the sanity check compares). */
static int sig_structure_digest(const otpca_cose_sign1 *m, uint8_t digest[32])
{
    static uint8_t buf[4096];
    otpca_cbor_enc e;
    size_t len;
    otpca_cbor_enc_init(&e, buf, sizeof buf);
    otpca_cbor_put_array(&e, 4);
    otpca_cbor_put_text(&e, "Signature1", 10);
    otpca_cbor_put_bytes(&e, m->protected_hdr.p, m->protected_hdr.len);
    otpca_cbor_put_bytes(&e, NULL, 0);
    otpca_cbor_put_bytes(&e, m->payload.p, m->payload.len);
    if (otpca_cbor_enc_finish(&e, &len) != OTPCA_ERR_OK)
        return -1;
    otpca_sha256(buf, len, digest);
    return 0;
}

static int fill_random(struct bench *b, uint8_t *p, size_t n)
{
    int rc = wc_RNG_GenerateBlock(&b->rng, p, (word32)n);
    return rc ? wc_fail(b, rc, "wc_RNG_GenerateBlock") : 0;
}

static int setup(struct bench *b)
{
    otpca_err err;
    int rc;
    uint64_t now = (uint64_t)time(NULL);

    if ((rc = wc_InitRng(&b->rng)) != 0)
        return wc_fail(b, rc, "wc_InitRng");
    b->rng_ok = 1;
    b->dev = calloc(POOL, sizeof *b->dev);
    b->dev_pub = calloc(POOL, sizeof *b->dev_pub);
    b->env = calloc(POOL, sizeof *b->env);
    b->eph_pub = calloc(POOL, sizeof *b->eph_pub);
    b->ents = calloc(BATCH_N, sizeof *b->ents);
    b->ent_serial = calloc(BATCH_N, sizeof *b->ent_serial);
    b->ent_sealed = calloc(BATCH_N, sizeof *b->ent_sealed);
    b->seed_env = calloc(POOL, sizeof *b->seed_env);
    if (!b->dev || !b->dev_pub || !b->env || !b->eph_pub || !b->ents || !b->ent_serial ||
        !b->ent_sealed || !b->seed_env)
        return lib_fail(b, OTPCA_ERR_NOMEM, "calloc");

    /* The manager key, its signers, and the response template. */
    if ((err = otpca_p256_soft_generate(&b->mgr)))
        return lib_fail(b, err, "otpca_p256_soft_generate(manager)");
    if (preloaded_init(&b->raw_mgr, &b->mgr) != 0 || preloaded_init(&b->pre_mgr, &b->mgr) != 0)
        return wc_fail(b, -1, "preloaded manager key");
    b->signer_soft.sign = otpca_p256_soft_sign;
    b->signer_soft.ctx = &b->mgr;
    otpca_p256_kid(b->mgr.pub, b->signer_soft.kid);
    b->signer_pre = b->signer_soft;
    b->signer_pre.sign = preloaded_sign;
    b->signer_pre.ctx = &b->pre_mgr;
    if (fill_random(b, b->netkey, sizeof b->netkey) || fill_random(b, b->cert, sizeof b->cert) ||
        fill_random(b, b->record, sizeof b->record) || fill_random(b, b->window, sizeof b->window))
        return -1;
    b->cert[0] = 0x30; /* looks like DER; nothing parses it */

    /* The device pool: keys, signed EnrollRequests, raw-side digests. */
    static const char fw[] = "1.4.2";
    for (size_t i = 0; i < POOL; i++) {
        struct dev *d = &b->dev[i];
        otpca_signer ds;
        otpca_cose_sign1 m;
        if ((err = otpca_p256_soft_generate(&d->soft)))
            return lib_fail(b, err, "otpca_p256_soft_generate(device)");
        if ((err = otpca_p256_pub_compress(d->soft.pub, d->pub_c)))
            return lib_fail(b, err, "otpca_p256_pub_compress");
        snprintf(d->serial, sizeof d->serial, "node-%06zu", i + 1);
        if (fill_random(b, d->nonce, sizeof d->nonce) || fill_random(b, d->mac, sizeof d->mac))
            return -1;
        otpca_p256_kid(b->mgr.pub, d->ca);
        memcpy(d->aad, d->serial, SERIAL_LEN);
        memcpy(d->aad + SERIAL_LEN, d->nonce, OTPCA_NONCE_LEN);
        d->req = (otpca_enroll_request){
            .present = OTPCA_MSG_BIT(8),
            .nonce = {d->nonce, sizeof d->nonce},
            .time = now,
            .serial = {(const uint8_t *)d->serial, SERIAL_LEN},
            .mac = {d->mac, sizeof d->mac},
            .pubkey = {d->pub_c, sizeof d->pub_c},
            .totp = 100000 + (uint64_t)i * 3517 % 900000,
            .fw = {(const uint8_t *)fw, sizeof fw - 1},
            .ca = {d->ca, sizeof d->ca},
        };
        ds.sign = otpca_p256_soft_sign;
        ds.ctx = &d->soft;
        otpca_p256_kid(d->soft.pub, ds.kid);
        otpca_buf none = {NULL, 0};
        if ((err = otpca_msg_sign(&otpca_desc_enroll_request, &d->req, &ds, none, d->msg,
                                  sizeof d->msg, &d->msg_len)))
            return lib_fail(b, err, "otpca_msg_sign(EnrollRequest)");
        if ((err = otpca_cose_sign1_decode(d->msg, d->msg_len, &m)))
            return lib_fail(b, err, "otpca_cose_sign1_decode(EnrollRequest)");
        d->payload = m.payload;
        if (sig_structure_digest(&m, d->digest) != 0)
            return lib_fail(b, OTPCA_ERR_INTERNAL, "Sig_structure");
        d->der_len = sizeof d->der;
        if ((rc = wc_ecc_rs_raw_to_sig(m.sig.p, 32, m.sig.p + 32, 32, d->der, &d->der_len)) != 0)
            return wc_fail(b, rc, "wc_ecc_rs_raw_to_sig");
        if ((rc = wc_ecc_init(&b->dev_pub[i])) != 0)
            return wc_fail(b, rc, "wc_ecc_init");
        b->dev_pub_n = i + 1;
        if ((rc = wc_ecc_import_x963_ex(d->pub_c, sizeof d->pub_c, &b->dev_pub[i], ECC_SECP256R1)) != 0)
            return wc_fail(b, rc, "wc_ecc_import_x963_ex(device)");
    }

    /* One envelope to dev[0] for the template; the response template. */
    if (seal(b, &b->dev[0], b->env0) != 0)
        return -1;
    b->resp = (otpca_enroll_response){
        .nonce = {b->dev[0].nonce, OTPCA_NONCE_LEN},
        .record = {b->record, sizeof b->record},
        .time = now,
        .cert = {b->cert, sizeof b->cert},
        .netkey = {b->env0, sizeof b->env0},
        .netkey_epoch = 7,
    };
    if ((err = otpca_msg_encode(&otpca_desc_enroll_response, &b->resp, b->resp_plain,
                                sizeof b->resp_plain, &b->resp_plain_len)))
        return lib_fail(b, err, "otpca_msg_encode(EnrollResponse)");
    otpca_sha256(b->resp_plain, b->resp_plain_len, b->resp_digest);

    /* The node key and POOL envelopes sealed to it. */
    if ((err = otpca_p256_soft_generate(&b->node)))
        return lib_fail(b, err, "otpca_p256_soft_generate(node)");
    if (preloaded_init(&b->raw_node, &b->node) != 0 || preloaded_init(&b->pre_node, &b->node) != 0)
        return wc_fail(b, -1, "preloaded node key");
    memcpy(b->node_aad, "node-000000", SERIAL_LEN);
    if (fill_random(b, b->node_aad + SERIAL_LEN, OTPCA_NONCE_LEN))
        return -1;
    for (size_t i = 0; i < POOL; i++) {
        size_t len = 0;
        if ((err = otpca_ecies_seal(b->node.pub, sizeof b->node.pub, OTPCA_ECIES_LABEL_NETKEY,
                                    b->node_aad, sizeof b->node_aad, b->netkey, sizeof b->netkey,
                                    b->env[i], NETKEY_ENV_LEN, &len)))
            return lib_fail(b, err, "otpca_ecies_seal(node)");
        if ((rc = wc_ecc_init(&b->eph_pub[i])) != 0)
            return wc_fail(b, rc, "wc_ecc_init");
        b->eph_pub_n = i + 1;
        if ((rc = wc_ecc_import_x963_ex(b->env[i] + 1, OTPCA_P256_PUB_LEN, &b->eph_pub[i],
                                        ECC_SECP256R1)) != 0)
            return wc_fail(b, rc, "wc_ecc_import_x963_ex(ephemeral)");
    }

    /* Seeds: a seed box to the manager (both sides), ECIES envelopes. */
    if (fill_random(b, b->seed, sizeof b->seed))
        return -1;
    if ((err = otpca_seedbox_sender(&b->seed_tx, b->mgr.pub, OTPCA_P256_PUB_LEN)))
        return lib_fail(b, err, "otpca_seedbox_sender");
    if ((err = otpca_seedbox_receiver(&b->seed_rx, b->seed_tx.eph, b->mgr.pub, otpca_p256_soft_ecdh,
                                      &b->mgr)))
        return lib_fail(b, err, "otpca_seedbox_receiver");
    for (size_t i = 0; i < POOL; i++) {
        size_t len = 0;
        if ((err = otpca_ecies_seal(b->mgr.pub, OTPCA_P256_PUB_LEN, "seed", (const uint8_t *)b->dev[i].serial,
                                    SERIAL_LEN, b->seed, SEED_LEN, b->seed_env[i], SEED_ENV_LEN, &len)))
            return lib_fail(b, err, "otpca_ecies_seal(seed)");
    }

    /* The SyncBatch: 1024 entries as otpca-proto sizes builds them, each
     * seed sealed in the box under its serial (entry i < POOL has the
     * serial of dev[i]). */
    for (size_t i = 0; i < BATCH_N; i++) {
        const struct dev *d = &b->dev[i % POOL];
        size_t len = 0;
        snprintf(b->ent_serial[i], sizeof b->ent_serial[i], "node-%06zu", i + 1);
        if ((err = otpca_seedbox_seal(&b->seed_tx, (const uint8_t *)b->ent_serial[i], SERIAL_LEN, b->seed,
                                      SEED_LEN, b->ent_sealed[i], SEALED_SEED_LEN, &len)))
            return lib_fail(b, err, "otpca_seedbox_seal");
        b->ents[i] = (otpca_device_entry){
            .present = OTPCA_MSG_BIT(7) | OTPCA_MSG_BIT(8) | OTPCA_MSG_BIT(9) | OTPCA_MSG_BIT(10) |
                       OTPCA_MSG_BIT(11),
            .serial = {(const uint8_t *)b->ent_serial[i], SERIAL_LEN},
            .seq = 1000 + i,
            .state = OTPCA_DEV_APPROVED,
            .mac = {d->mac, sizeof d->mac},
            .pubkey = {d->soft.pub, OTPCA_P256_PUB_LEN},
            .seed = {b->ent_sealed[i], SEALED_SEED_LEN},
            .digits = 6,
            .period = 30,
            .algorithm = 1,
            .last_step = now / 30,
            .failures = 0,
        };
    }
    otpca_sync_batch sb = {
        .window = {b->window, sizeof b->window},
        .kind = OTPCA_SYNC_DELTA,
        .from = 999,
        .to = 999 + BATCH_N,
        .entries = {b->ents, BATCH_N, {NULL, 0}},
        .more = false,
        .seedkey = {b->seed_tx.eph, OTPCA_P256_PUB_LEN},
    };
    if ((err = otpca_msg_encode(&otpca_desc_sync_batch, &sb, NULL, 0, &b->batch_len)))
        return lib_fail(b, err, "otpca_msg_encode(SyncBatch, count)");
    if (!(b->batch = malloc(b->batch_len)))
        return lib_fail(b, OTPCA_ERR_NOMEM, "malloc");
    if ((err = otpca_msg_encode(&otpca_desc_sync_batch, &sb, b->batch, b->batch_len, &b->batch_len)))
        return lib_fail(b, err, "otpca_msg_encode(SyncBatch)");
    return 0;
}

static void teardown(struct bench *b)
{
    for (size_t i = 0; i < b->dev_pub_n; i++)
        wc_ecc_free(&b->dev_pub[i]);
    for (size_t i = 0; i < b->eph_pub_n; i++)
        wc_ecc_free(&b->eph_pub[i]);
    preloaded_free(&b->raw_mgr);
    preloaded_free(&b->pre_mgr);
    preloaded_free(&b->raw_node);
    preloaded_free(&b->pre_node);
    if (b->dev)
        for (size_t i = 0; i < POOL; i++)
            otpca_p256_soft_wipe(&b->dev[i].soft);
    otpca_p256_soft_wipe(&b->mgr);
    otpca_p256_soft_wipe(&b->node);
    otpca_seedbox_wipe(&b->seed_tx);
    otpca_seedbox_wipe(&b->seed_rx);
    if (b->rng_ok)
        wc_FreeRng(&b->rng);
    free(b->dev);
    free(b->dev_pub);
    free(b->env);
    free(b->eph_pub);
    free(b->ents);
    free(b->ent_serial);
    free(b->ent_sealed);
    free(b->seed_env);
    free(b->batch);
}

/* ---- sanity: both sides do the same work, and it is right ----------------- */

static int sanity_fail(const char *what)
{
    fprintf(stderr, "otpca-bench-proto: sanity: %s\n", what);
    return -1;
}

static int check_response(struct bench *b, const otpca_signer *s, const struct dev *d)
{
    uint8_t env[NETKEY_ENV_LEN], out[OTPCA_MSG_NODE_MAX], pt[64], digest[32];
    size_t len = 0, ptlen = 0;
    otpca_enroll_response r = b->resp;
    otpca_cose_sign1 m;
    otpca_enroll_response got;
    otpca_buf none = {NULL, 0};
    otpca_err err;
    if (seal(b, d, env) != 0)
        return -1;
    r.netkey.p = env;
    r.nonce.p = d->nonce;
    if ((err = otpca_msg_sign(&otpca_desc_enroll_response, &r, s, none, out, sizeof out, &len)) ||
        (err = otpca_cose_sign1_decode(out, len, &m)) ||
        (err = otpca_msg_decode(&otpca_desc_enroll_response, m.payload.p, m.payload.len, &got)) ||
        (err = otpca_cose_sign1_verify(&m, b->mgr.pub, sizeof b->mgr.pub)))
        return lib_fail(b, err, "EnrollResponse round trip");
    /* The raw side's digest recipe must be the one cose.c signs. */
    uint8_t der[80];
    word32 der_len = sizeof der;
    int res = 0;
    if (sig_structure_digest(&m, digest) != 0 ||
        wc_ecc_rs_raw_to_sig(m.sig.p, 32, m.sig.p + 32, 32, der, &der_len) != 0 ||
        wc_ecc_verify_hash(der, der_len, digest, 32, &res, &b->raw_mgr.key) != 0 || res != 1)
        return sanity_fail("EnrollResponse signature does not verify with the raw recipe");
    if (got.netkey.len != NETKEY_ENV_LEN || got.cert.len != CERT_LEN)
        return sanity_fail("EnrollResponse fields");
    if ((err = otpca_ecies_open(otpca_p256_soft_ecdh, (void *)&d->soft, d->soft.pub,
                                OTPCA_ECIES_LABEL_NETKEY, d->aad, sizeof d->aad, got.netkey.p,
                                got.netkey.len, pt, sizeof pt, &ptlen)))
        return lib_fail(b, err, "otpca_ecies_open(device)");
    if (ptlen != NETKEY_LEN || memcmp(pt, b->netkey, NETKEY_LEN) != 0)
        return sanity_fail("the device does not recover the network key");
    return 0;
}

static int sanity(struct bench *b)
{
    otpca_cose_sign1 m;
    otpca_err err;
    /* Every pooled request verifies both ways. */
    for (uint64_t i = 0; i < POOL; i++)
        if (op_verify_proto(b, i) != 0 || op_verify_raw(b, i) != 0 || op_c_verify(b, i) != 0)
            return -1;
    /* ... and fails both ways with the wrong key, or a changed signature. */
    if ((err = otpca_cose_sign1_decode(b->dev[0].msg, b->dev[0].msg_len, &m)))
        return lib_fail(b, err, "otpca_cose_sign1_decode");
    if (otpca_cose_sign1_verify(&m, b->dev[1].pub_c, OTPCA_P256_PUB_C_LEN) != OTPCA_ERR_COSE_HEADER)
        return sanity_fail("a request verified under another device's key");
    uint8_t copy[512];
    memcpy(copy, b->dev[0].msg, b->dev[0].msg_len);
    copy[b->dev[0].msg_len - 5] ^= 0x40; /* inside the signature */
    if ((err = otpca_cose_sign1_decode(copy, b->dev[0].msg_len, &m)))
        return lib_fail(b, err, "otpca_cose_sign1_decode(tampered)");
    if (otpca_cose_sign1_verify(&m, b->dev[0].pub_c, OTPCA_P256_PUB_C_LEN) != OTPCA_ERR_SIGNATURE)
        return sanity_fail("a changed signature verified");
    int res = 1;
    if (wc_ecc_verify_hash(b->dev[0].der, b->dev[0].der_len, b->dev[1].digest, 32, &res,
                           &b->dev_pub[0]) == 0 && res == 1)
        return sanity_fail("raw verify accepted another digest");

    /* Responses from both signers verify and their envelopes open. */
    if (check_response(b, &b->signer_soft, &b->dev[3]) != 0 ||
        check_response(b, &b->signer_pre, &b->dev[4]) != 0)
        return -1;

    /* Node side: soft, preloaded and raw ECDH agree; envelopes open. */
    for (uint64_t i = 0; i < POOL; i++)
        if (op_open_soft(b, i) != 0 || op_open_pre(b, i) != 0)
            return -1;
    uint8_t z1[32], z2[32], z3[32];
    word32 zlen = sizeof z3;
    if ((err = otpca_p256_soft_ecdh(&b->node, b->env[5] + 1, z1)) ||
        (err = preloaded_ecdh(&b->pre_node, b->env[5] + 1, z2)))
        return lib_fail(b, err, "ECDH");
    if (wc_ecc_shared_secret(&b->raw_node.key, &b->eph_pub[5], z3, &zlen) != 0 || zlen != 32 ||
        memcmp(z1, z2, 32) != 0 || memcmp(z1, z3, 32) != 0)
        return sanity_fail("soft, preloaded and raw ECDH disagree");

    /* Seeds: both boxes agree, every pooled seed opens both ways and is
     * the seed; a seed sealed under one serial does not open under another. */
    if (memcmp(&b->seed_tx, &b->seed_rx, sizeof b->seed_tx) != 0)
        return sanity_fail("the sender's and the receiver's seed boxes differ");
    for (uint64_t i = 0; i < POOL; i++) {
        uint8_t s1[SEED_LEN], s2[SEED_LEN];
        size_t l1 = 0, l2 = 0;
        const struct dev *d = dev_at(b, i);
        if ((err = otpca_seedbox_open(&b->seed_rx, (const uint8_t *)d->serial, SERIAL_LEN, b->ent_sealed[i],
                                      SEALED_SEED_LEN, s1, sizeof s1, &l1)) ||
            (err = otpca_ecies_open(preloaded_ecdh, &b->pre_mgr, b->mgr.pub, "seed", (const uint8_t *)d->serial,
                                    SERIAL_LEN, b->seed_env[i], SEED_ENV_LEN, s2, sizeof s2, &l2)))
            return lib_fail(b, err, "opening a pooled seed");
        if (l1 != SEED_LEN || l2 != SEED_LEN || memcmp(s1, b->seed, SEED_LEN) != 0 ||
            memcmp(s2, b->seed, SEED_LEN) != 0)
            return sanity_fail("a pooled seed does not open to the seed");
        if (op_seal_seed_box(b, i) != 0 || op_seal_seed_ecies(b, i) != 0 || op_open_seed_box(b, i) != 0 ||
            op_open_seed_ecies(b, i) != 0)
            return -1;
    }
    {
        uint8_t s1[SEED_LEN];
        size_t l1 = 0;
        if (otpca_seedbox_open(&b->seed_rx, (const uint8_t *)b->dev[1].serial, SERIAL_LEN, b->ent_sealed[0],
                               SEALED_SEED_LEN, s1, sizeof s1, &l1) != OTPCA_ERR_DECRYPT)
            return sanity_fail("a sealed seed opened under another serial");
    }
    if (op_seedbox_sender(b, 0) != 0 || op_seedbox_receiver(b, 0) != 0)
        return -1;

    /* Codec: round trips, and the batch walks to 1024 entries. */
    for (size_t k = 0; k < NCODEC; k++)
        if (codec[k].op(b, 0) != 0)
            return -1;
    otpca_enroll_request req;
    uint8_t enc[512];
    size_t enc_len = 0;
    if ((err = otpca_msg_decode(&otpca_desc_enroll_request, b->dev[2].payload.p, b->dev[2].payload.len,
                                &req)) ||
        (err = otpca_msg_encode(&otpca_desc_enroll_request, &req, enc, sizeof enc, &enc_len)))
        return lib_fail(b, err, "EnrollRequest round trip");
    if (enc_len != b->dev[2].payload.len || memcmp(enc, b->dev[2].payload.p, enc_len) != 0)
        return sanity_fail("EnrollRequest does not re-encode byte for byte");
    return 0;
}

/* ---- output ------------------------------------------------------------------ */

struct env {
    struct bench_args args; /* extra: --only */
    struct bench_host host;
    char ecc[256];
    size_t req_len, req_payload_len, resp_len, resp_payload_len;
    double cpu_share; /* CPU time / wall time over all measurements */
};

static void print_header(const struct env *e)
{
    printf("otpca-bench-proto: libotpca-proto vs the raw wolfCrypt calls it needs\n");
    bench_print_host(stdout, &e->host, 1);
    printf("  wolfSSL  %s (headers); %s\n", LIBWOLFSSL_VERSION_STRING, e->ecc);
    printf("  timing   %.2f s CPU time per measurement and side in %u interleaved rounds (A B, B A, "
           "...), warm-up first; rates per CPU-second; single-threaded\n",
           e->args.seconds, e->args.rounds);
    printf("  data     %u device keys (33-byte compressed), one per op in turn; EnrollRequest %zu B "
           "signed (%zu B payload); EnrollResponse %zu B signed (%zu B payload, %u-byte certificate, "
           "%u-byte network key)\n\n",
           POOL, e->req_len, e->req_payload_len, e->resp_len, e->resp_payload_len, CERT_LEN,
           NETKEY_LEN);
    printf("protocol vs raw wolfCrypt (ratio = protocol/raw ops/s; 1.000 = no overhead)\n");
    printf("%-24s %11s %11s %7s %15s %9s %9s %9s\n", "operation", "protocol/s", "raw/s", "ratio",
           "rounds min..max", "proto us", "raw us", "extra us");
    fflush(stdout);
}

static void print_pair(const struct pair *p, const struct pair_result *r)
{
    double up = bench_us_per(bench_rate(&r->proto)), ur = bench_us_per(bench_rate(&r->raw));
    printf("%-24s %11.1f %11.1f %7.3f %7.3f..%-7.3f %9.1f %9.1f %9.1f\n", p->name,
           bench_rate(&r->proto), bench_rate(&r->raw), r->ratio, r->ratio_min, r->ratio_max, up, ur,
           up - ur);
    fflush(stdout);
}

static void print_legend(void)
{
    printf("\n");
    for (size_t k = 0; k < NPAIRS; k++)
        if (selected(pairs[k].name))
            printf("  %-24s protocol: %s\n  %-24s raw:      %s\n", pairs[k].name, pairs[k].proto_desc,
                   "", pairs[k].raw_desc);
    printf("\n");
}

static void print_seed_header(void)
{
    printf("seeds of a SyncBatch, per DeviceEntry: seed box (PROTOCOL.md 5.1) vs one ECIES envelope per seed\n");
    printf("(ratio = seed box/ECIES ops/s)\n");
    printf("%-24s %11s %11s %7s %15s %9s %9s %9s\n", "operation", "seedbox/s", "ecies/s", "ratio",
           "rounds min..max", "box us", "ecies us", "saved us");
    fflush(stdout);
}

static void print_seed_pair(const struct pair *p, const struct pair_result *r)
{
    double ub = bench_us_per(bench_rate(&r->proto)), ue = bench_us_per(bench_rate(&r->raw));
    printf("%-24s %11.1f %11.1f %7.1f %7.1f..%-7.1f %9.2f %9.2f %9.2f\n", p->name, bench_rate(&r->proto),
           bench_rate(&r->raw), r->ratio, r->ratio_min, r->ratio_max, ub, ue, ue - ub);
    fflush(stdout);
}

/* Seconds of one core for the seeds of a snapshot of SNAPSHOT_DEVICES
 * devices in batches of SNAPSHOT_BATCH: per-seed cost times the devices,
 * plus one box per batch (seed box), or the per-seed cost alone (ECIES). */
struct snapshot_estimate {
    double box_s, ecies_s, open_box_s, open_ecies_s;
};

static struct snapshot_estimate snapshot_estimate(const struct pair_result *pr, const struct single_result *br)
{
    struct snapshot_estimate e;
    double batches = SNAPSHOT_DEVICES / SNAPSHOT_BATCH;
    double sender = bench_rate(&br[B_SENDER].t), receiver = bench_rate(&br[B_RECEIVER].t);
    double seal_box = bench_rate(&pr[S_SEAL].proto), seal_ecies = bench_rate(&pr[S_SEAL].raw);
    double open_box = bench_rate(&pr[S_OPEN].proto), open_ecies = bench_rate(&pr[S_OPEN].raw);
    e.box_s = seal_box > 0 && sender > 0 ? SNAPSHOT_DEVICES / seal_box + batches / sender : 0;
    e.ecies_s = seal_ecies > 0 ? SNAPSHOT_DEVICES / seal_ecies : 0;
    e.open_box_s = open_box > 0 && receiver > 0 ? SNAPSHOT_DEVICES / open_box + batches / receiver : 0;
    e.open_ecies_s = open_ecies > 0 ? SNAPSHOT_DEVICES / open_ecies : 0;
    return e;
}

static void print_seed_summary(const struct pair_result *pr, const struct single_result *br)
{
    for (size_t k = 0; k < NSEEDPAIRS; k++)
        if (selected(seed_pairs[k].name))
            printf("  %-22s seed box: %s\n  %-22s ECIES:    %s\n", seed_pairs[k].name, seed_pairs[k].proto_desc,
                   "", seed_pairs[k].raw_desc);
    for (size_t k = 0; k < NBOX; k++) {
        double q = bench_rate(&br[k].t);
        printf("%-24s %11.1f ops/s %9.1f us  %s\n", box_ops[k].name, q, bench_us_per(q), box_ops[k].desc);
    }
    struct snapshot_estimate e = snapshot_estimate(pr, br);
    printf("snapshot of %.0f devices (%.0f-entry batches), seeds only, one core:\n", SNAPSHOT_DEVICES,
           SNAPSHOT_BATCH);
    printf("  cloud seals    seed box %7.2f s   ECIES per seed %7.2f s   (target <= 10 s)\n", e.box_s, e.ecies_s);
    printf("  manager opens  seed box %7.2f s   ECIES per seed %7.2f s   (preloaded ECDH)\n\n", e.open_box_s,
           e.open_ecies_s);
    fflush(stdout);
}

static void print_codec_header(void)
{
    printf("codec only, no crypto\n");
    printf("%-26s %12s %10s %8s %8s %12s %17s\n", "operation", "msgs/s", "ns/msg", "MB/s", "bytes",
           "entries/s", "rounds min..max/s");
    fflush(stdout);
}

static void print_codec(const struct single *s, const struct single_result *r)
{
    double q = bench_rate(&r->t);
    printf("%-26s %12.1f %10.1f %8.1f %8zu ", s->name, q, q > 0 ? 1e9 / q : 0.0,
           q * (double)r->bytes / 1e6, r->bytes);
    if (r->items > 1)
        printf("%12.1f ", q * (double)r->items);
    else
        printf("%12s ", "-");
    printf("%8.0f..%-8.0f\n", r->rate_min, r->rate_max);
    fflush(stdout);
}

static void print_comp_header(void)
{
    printf("\nbuilding blocks, one at a time (for attribution; S/2 each)\n");
    printf("%-34s %11s %9s  %s\n", "operation", "ops/s", "us/op", "what");
    fflush(stdout);
}

static void print_comp(const struct single *s, const struct single_result *r)
{
    double q = bench_rate(&r->t);
    printf("%-34s %11.1f %9.2f  %s\n", s->name, q, bench_us_per(q), s->desc);
    fflush(stdout);
}

static void print_json(const struct env *e, const struct pair_result *pr, const struct single_result *cr,
                       const struct single_result *kr, const struct pair_result *sr,
                       const struct single_result *br)
{
    printf("{\"benchmark\":\"proto\",");
    bench_json_host(stdout, &e->host, 1);
    printf(",\"wolfssl\":");
    bench_json_str(stdout, LIBWOLFSSL_VERSION_STRING);
    printf(",\"ecc\":");
    bench_json_str(stdout, e->ecc);
    printf(",\"threads\":1,\"seconds\":%.3f,\"rounds\":%u,\"pool\":%u,"
           "\"enroll_request_bytes\":%zu,\"enroll_response_bytes\":%zu,\"pairs\":[",
           e->args.seconds, e->args.rounds, POOL, e->req_len, e->resp_len);
    const char *sep = "";
    for (size_t k = 0; k < NPAIRS; k++) {
        const struct pair_result *r = &pr[k];
        if (!selected(pairs[k].name))
            continue;
        printf("%s{\"name\":\"%s\",\"protocol\":", sep, pairs[k].name);
        sep = ",";
        bench_json_str(stdout, pairs[k].proto_desc);
        printf(",\"raw\":");
        bench_json_str(stdout, pairs[k].raw_desc);
        printf(",\"protocol_ops\":%llu,\"protocol_seconds\":%.6f,\"protocol_ops_per_s\":%.1f,"
               "\"protocol_wall_seconds\":%.6f,"
               "\"raw_ops\":%llu,\"raw_seconds\":%.6f,\"raw_ops_per_s\":%.1f,\"raw_wall_seconds\":%.6f,"
               "\"ratio\":%.4f,\"ratio_min\":%.4f,\"ratio_max\":%.4f,\"extra_us\":%.2f}",
               (unsigned long long)r->proto.ops, r->proto.secs, bench_rate(&r->proto),
               r->proto.wall, (unsigned long long)r->raw.ops, r->raw.secs, bench_rate(&r->raw),
               r->raw.wall, r->ratio, r->ratio_min, r->ratio_max,
               bench_us_per(bench_rate(&r->proto)) - bench_us_per(bench_rate(&r->raw)));
    }
    printf("],\"codec\":[");
    sep = "";
    for (size_t k = 0; k < NCODEC; k++) {
        const struct single_result *r = &cr[k];
        double q = bench_rate(&r->t);
        if (!selected(codec[k].name))
            continue;
        printf("%s{\"name\":\"%s\",\"what\":", sep, codec[k].name);
        sep = ",";
        bench_json_str(stdout, codec[k].desc);
        printf(",\"ops\":%llu,\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"ns_per_msg\":%.1f,"
               "\"bytes\":%zu,\"mb_per_s\":%.2f,\"entries\":%zu,\"entries_per_s\":%.1f}",
               (unsigned long long)r->t.ops, r->t.secs, q, q > 0 ? 1e9 / q : 0.0, r->bytes,
               q * (double)r->bytes / 1e6, r->items, q * (double)r->items);
    }
    printf("],\"seeds\":[");
    sep = "";
    for (size_t k = 0; k < NSEEDPAIRS; k++) {
        const struct pair_result *r = &sr[k];
        if (!selected(seed_pairs[k].name))
            continue;
        printf("%s{\"name\":\"%s\",\"seedbox\":", sep, seed_pairs[k].name);
        sep = ",";
        bench_json_str(stdout, seed_pairs[k].proto_desc);
        printf(",\"ecies\":");
        bench_json_str(stdout, seed_pairs[k].raw_desc);
        printf(",\"seedbox_ops_per_s\":%.1f,\"ecies_ops_per_s\":%.1f,\"ratio\":%.2f,\"ratio_min\":%.2f,"
               "\"ratio_max\":%.2f,\"seedbox_us\":%.3f,\"ecies_us\":%.3f}",
               bench_rate(&r->proto), bench_rate(&r->raw), r->ratio, r->ratio_min, r->ratio_max,
               bench_us_per(bench_rate(&r->proto)), bench_us_per(bench_rate(&r->raw)));
    }
    for (size_t k = 0; k < NBOX; k++) {
        double q = bench_rate(&br[k].t);
        if (!selected(box_ops[k].name))
            continue;
        printf("%s{\"name\":\"%s\",\"ops_per_s\":%.1f,\"us_per_op\":%.2f}", sep, box_ops[k].name, q,
               bench_us_per(q));
        sep = ",";
    }
    if (selected("seal_seed") && selected("open_seed") && selected("seedbox_")) {
        struct snapshot_estimate se = snapshot_estimate(sr, br);
        printf("%s{\"name\":\"snapshot_1m\",\"devices\":%.0f,\"batch\":%.0f,\"seal_seedbox_s\":%.3f,"
               "\"seal_ecies_s\":%.3f,\"open_seedbox_s\":%.3f,\"open_ecies_s\":%.3f}",
               sep, SNAPSHOT_DEVICES, SNAPSHOT_BATCH, se.box_s, se.ecies_s, se.open_box_s, se.open_ecies_s);
    }
    printf("],\"components\":[");
    sep = "";
    for (size_t k = 0; k < NCOMP; k++) {
        double q = bench_rate(&kr[k].t);
        if (!selected(components[k].name))
            continue;
        printf("%s{\"name\":", sep);
        sep = ",";
        bench_json_str(stdout, components[k].name);
        printf(",\"ops_per_s\":%.1f,\"us_per_op\":%.3f}", q, bench_us_per(q));
    }
    bench_json_end_cpu_share(e->cpu_share);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: otpca-bench-proto [--seconds S] [--rounds N] [--json] [--only TEXT]\n"
            "  Time the manager's and the node's protocol operations (libotpca-proto)\n"
            "  against the raw wolfCrypt calls they need, alternating in rounds, and\n"
            "  report ops/s of both and the ratio protocol/raw (1.0 = no overhead);\n"
            "  then the codec alone and the wolfCrypt building blocks. Single-threaded.\n"
            "  --seconds S  time per measurement and side (default %.0f)\n"
            "  --rounds N   interleaved rounds per measurement (default %u)\n"
            "  --json       one JSON object on stdout instead of the tables\n"
            "  --only TEXT  run only the rows whose name contains TEXT\n"
            "  Rates are per CPU-second of the benchmark thread (CLOCK_THREAD_CPUTIME_ID),\n"
            "  so that other processes on shared cores do not skew one side.\n",
            DEFAULT_SECONDS, DEFAULT_ROUNDS);
}

int main(int argc, char **argv)
{
    static struct bench b;
    struct env e = {.args = {DEFAULT_SECONDS, DEFAULT_ROUNDS, 0, NULL}};
    struct pair_result pres[NPAIRS], sres[NSEEDPAIRS];
    struct single_result cres[NCODEC], kres[NCOMP], bres[NBOX];
    int ret = EXIT_FAILURE;

    memset(sres, 0, sizeof sres);
    memset(bres, 0, sizeof bres);
    memset(pres, 0, sizeof pres);
    memset(cres, 0, sizeof cres);
    memset(kres, 0, sizeof kres);
    int rc = bench_start(argc, argv, "otpca-bench-proto", "only", usage, &e.args, &e.host);
    if (rc >= 0)
        return rc;
    const int json = e.args.json;
    only = e.args.extra;
    bench_ecc_config(e.ecc, sizeof e.ecc, 0);

    if (wolfCrypt_Init() != 0) {
        fprintf(stderr, "otpca-bench-proto: wolfCrypt_Init failed\n");
        return EXIT_FAILURE;
    }
    if (!json)
        fprintf(stderr, "preparing %u device keys, signed requests and envelopes ...\n", POOL);
    if (setup(&b) != 0 || sanity(&b) != 0)
        goto fail;
    e.req_len = b.dev[0].msg_len;
    e.req_payload_len = b.dev[0].payload.len;
    e.resp_payload_len = b.resp_plain_len;
    {
        uint8_t out[OTPCA_MSG_NODE_MAX];
        otpca_buf none = {NULL, 0};
        otpca_err err = otpca_msg_sign(&otpca_desc_enroll_response, &b.resp, &b.signer_pre, none, out,
                                       sizeof out, &e.resp_len);
        if (err) {
            lib_fail(&b, err, "otpca_msg_sign(EnrollResponse)");
            goto fail;
        }
    }
    cres[C_ENC_REQ].bytes = cres[C_DEC_REQ].bytes = b.dev[0].payload.len;
    cres[C_COSE_DEC_REQ].bytes = b.dev[0].msg_len;
    cres[C_ENC_RESP].bytes = cres[C_DEC_RESP].bytes = b.resp_plain_len;
    cres[C_BATCH_DEC].bytes = cres[C_BATCH_WALK].bytes = b.batch_len;
    for (size_t k = 0; k < NCODEC; k++)
        cres[k].items = 1;
    cres[C_BATCH_DEC].items = cres[C_BATCH_WALK].items = BATCH_N;

    struct bench_tally all = {0, 0, 0}; /* for the CPU share */
    if (!json)
        print_header(&e);
    for (size_t k = 0; k < NPAIRS; k++) {
        if (!selected(pairs[k].name))
            continue;
        if (measure_pair(&b, &pairs[k], e.args.seconds, e.args.rounds, &pres[k]) != 0)
            goto fail;
        bench_tally_add(&all, &pres[k].proto);
        bench_tally_add(&all, &pres[k].raw);
        if (!json)
            print_pair(&pairs[k], &pres[k]);
    }
    if (!json) {
        print_legend();
        print_seed_header();
    }
    for (size_t k = 0; k < NSEEDPAIRS; k++) {
        if (!selected(seed_pairs[k].name))
            continue;
        if (measure_pair(&b, &seed_pairs[k], e.args.seconds, e.args.rounds, &sres[k]) != 0)
            goto fail;
        bench_tally_add(&all, &sres[k].proto);
        bench_tally_add(&all, &sres[k].raw);
        if (!json)
            print_seed_pair(&seed_pairs[k], &sres[k]);
    }
    for (size_t k = 0; k < NBOX; k++) {
        if (!selected(box_ops[k].name))
            continue;
        if (measure_single(&b, &box_ops[k], e.args.seconds / 2, e.args.rounds, &bres[k]) != 0)
            goto fail;
        bench_tally_add(&all, &bres[k].t);
    }
    if (!json) {
        print_seed_summary(sres, bres);
        print_codec_header();
    }
    for (size_t k = 0; k < NCODEC; k++) {
        if (!selected(codec[k].name))
            continue;
        if (measure_single(&b, &codec[k], e.args.seconds, e.args.rounds, &cres[k]) != 0)
            goto fail;
        bench_tally_add(&all, &cres[k].t);
        if (!json)
            print_codec(&codec[k], &cres[k]);
    }
    if (!json)
        print_comp_header();
    for (size_t k = 0; k < NCOMP; k++) {
        if (!selected(components[k].name))
            continue;
        if (measure_single(&b, &components[k], e.args.seconds / 2, e.args.rounds, &kres[k]) != 0)
            goto fail;
        bench_tally_add(&all, &kres[k].t);
        if (!json)
            print_comp(&components[k], &kres[k]);
    }
    e.cpu_share = bench_cpu_share(&all);
    if (json)
        print_json(&e, pres, cres, kres, sres, bres);
    else
        bench_print_cpu_share(e.cpu_share);
    ret = EXIT_SUCCESS;
    goto out;

fail:
    ret = bench_fail_wc("otpca-bench-proto", &b.fail, otpca_strerror(b.fail.err));
out:
    teardown(&b);
#ifdef FP_ECC
    wc_ecc_fp_free();
#endif
    wolfCrypt_Cleanup();
    return ret;
}
