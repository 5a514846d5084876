/*
 * otpca-bench-crypto: what the wolfSSL build otpca links (a source build
 * with SP ECC, or Debian's packaged library without it) does for P-256, and
 * what a SoftHSM token does beside it. Single-threaded, ops/s of:
 *
 *   ecdsa_sign    wc_ecc_sign_hash with a preloaded key and one WC_RNG
 *   ecdsa_verify  wc_ecc_init + wc_ecc_import_x963_ex(65 bytes) +
 *                 wc_ecc_verify_hash + wc_ecc_free, a different key of a
 *                 pool of 256 each op (what a manager checking enrollment
 *                 requests does)
 *   ecdh          wc_ecc_init + import_x963(65 bytes) + on-curve check +
 *                 wc_ecc_shared_secret with a preloaded key + free, a
 *                 different peer of the pool each op
 *   keygen        wc_ecc_init + wc_ecc_make_key_ex + export_x963 + free
 *   token_sign    otpca_token_sign_digest(RAW) with the manager's CA key in
 *                 SoftHSM: SoftHSM's crypto (OpenSSL), not wolfSSL's, so it
 *                 should read the same with either build (a control)
 *   cert_issue    otpca_cert_issue of a node certificate (subject one of the
 *                 pool's keys in turn, issuer the manager's CA certificate)
 *                 signed by the manager's token key through the wolfCrypt
 *                 bridge (otpca_wolf_signer): wolfCrypt builds and hashes
 *                 the certificate, the token signs
 *
 * Which wolfSSL it was built against comes from CMake (OTPCA_WOLFSSL_BUILD,
 * OTPCA_WOLFSSL_SP, OTPCA_WOLFSSL_VERSION) and is checked against the
 * headers at compile time. The token side is a throw-away SoftHSM rig (one
 * manager, no nodes) made in a temporary directory and removed at the end,
 * or an existing rig (--rig DIR). All operations are measured in the same
 * rounds, the order rotating every round, so drift hits all of them alike;
 * rates are per CPU-second of the thread (CLOCK_THREAD_CPUTIME_ID).
 * bench/crypto.sh runs the two builds side by side.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "otpca/common/log.h"
#include "otpca/token/rig.h"
#include "otpca/token/token.h"
#include "otpca/token/wolf.h"

#include "benchca.h"
#include "benchutil.h"

#define DEFAULT_SECONDS 1.0
#define DEFAULT_ROUNDS 5u
#define POOL 256        /* peer / device keys, digests, signatures */
#define MGR_LABEL BENCH_CA_MGR_LABEL

/* ---- state -------------------------------------------------------------- */

struct peer {
    uint8_t pub[OTPCA_EC_P256_SEC1_LEN]; /* 0x04 || X || Y */
    uint8_t digest[32];
    uint8_t der[80]; /* its signature of digest, DER */
    word32 der_len;
};

struct bench {
    WC_RNG rng;
    int rng_ok;
    ecc_key own; /* preloaded: signs (ecdsa_sign), derives (ecdh) */
    int own_ok;
    ecc_key peer0; /* the private half of peer[0], for the ECDH sanity check */
    int peer0_ok;
    uint8_t own_pub[OTPCA_EC_P256_SEC1_LEN];
    struct peer *peer; /* POOL */

    /* token side */
    struct bench_ca ca;
    otpca_wolf_signer signer; /* the manager's CA key for wolfCrypt */
    int signer_ok;
    size_t node_der_len;

    /* failures */
    char what[160]; /* room for a failure message that names something */
    struct bench_failure fail;
    uint32_t sink; /* keeps results observable */
};

static int lib_fail(struct bench *b, otpca_err err, const char *what)
{
    return bench_lib_fail(&b->fail, err, what);
}

/* rc 0 (a check failed, not a call) is reported as wolfCrypt error -1. */
static int wc_fail(struct bench *b, int rc, const char *what)
{
    return bench_wc_fail(&b->fail, rc ? rc : -1, what);
}

static const struct peer *peer_at(const struct bench *b, uint64_t i) { return &b->peer[i % POOL]; }

/* ---- the operations ------------------------------------------------------ */

static int op_sign(struct bench *b, uint64_t i)
{
    byte der[80];
    word32 der_len = sizeof der;
    int rc = wc_ecc_sign_hash(peer_at(b, i)->digest, 32, der, &der_len, &b->rng, &b->own);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_sign_hash");
    b->sink += der[der_len - 1];
    return 0;
}

static int op_verify(struct bench *b, uint64_t i)
{
    const struct peer *p = peer_at(b, i);
    ecc_key k;
    int res = 0;
    int rc = wc_ecc_init(&k);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    rc = wc_ecc_import_x963_ex(p->pub, sizeof p->pub, &k, ECC_SECP256R1);
    if (rc == 0)
        rc = wc_ecc_verify_hash(p->der, p->der_len, p->digest, 32, &res, &k);
    wc_ecc_free(&k);
    if (rc != 0 || res != 1)
        return wc_fail(b, rc, "wc_ecc_import_x963_ex+wc_ecc_verify_hash");
    b->sink += (uint32_t)res;
    return 0;
}

static int ecdh_with(struct bench *b, const uint8_t pub[OTPCA_EC_P256_SEC1_LEN], uint8_t z[32])
{
    ecc_key k;
    word32 zlen = 32;
    int rc = wc_ecc_init(&k);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    rc = wc_ecc_import_x963_ex(pub, OTPCA_EC_P256_SEC1_LEN, &k, ECC_SECP256R1);
    if (rc == 0)
        rc = wc_ecc_point_is_on_curve(&k.pubkey, k.idx);
    if (rc == 0)
        rc = wc_ecc_shared_secret(&b->own, &k, z, &zlen);
    wc_ecc_free(&k);
    if (rc != 0 || zlen != 32)
        return wc_fail(b, rc, "wc_ecc_import_x963_ex+wc_ecc_point_is_on_curve+wc_ecc_shared_secret");
    return 0;
}

static int op_ecdh(struct bench *b, uint64_t i)
{
    uint8_t z[32];
    if (ecdh_with(b, peer_at(b, i)->pub, z) != 0)
        return -1;
    b->sink += z[0];
    return 0;
}

static int op_keygen(struct bench *b, uint64_t i)
{
    ecc_key k;
    uint8_t pub[OTPCA_EC_P256_SEC1_LEN];
    word32 len = sizeof pub;
    (void)i;
    int rc = wc_ecc_init(&k);
    if (rc != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    rc = wc_ecc_make_key_ex(&b->rng, 32, &k, ECC_SECP256R1);
    if (rc == 0)
        rc = wc_ecc_export_x963(&k, pub, &len);
    wc_ecc_free(&k);
    if (rc != 0 || len != sizeof pub)
        return wc_fail(b, rc, "wc_ecc_make_key_ex+wc_ecc_export_x963");
    b->sink += pub[1];
    return 0;
}

static int op_token_sign(struct bench *b, uint64_t i)
{
    unsigned char sig[OTPCA_SIG_RAW_LEN];
    size_t sig_len = sizeof sig;
    otpca_err err = otpca_token_sign_digest(b->ca.mgr_tok, b->ca.mgr_key, peer_at(b, i)->digest, 32,
                                            OTPCA_SIG_RAW, sig, &sig_len);
    if (err)
        return lib_fail(b, err, "otpca_token_sign_digest");
    b->sink += sig[0];
    return 0;
}

static int issue_node(struct bench *b, uint64_t i, unsigned char *der, size_t *der_len)
{
    char cn[32];
    snprintf(cn, sizeof cn, OTPCA_RIG_NODE_FMT, (unsigned)(i % OTPCA_RIG_MAX_NODES) + 1u);
    otpca_cert_req req = {.common_name = cn,
                          .organization = "otpca",
                          .subject_sec1 = peer_at(b, i)->pub,
                          .issuer_der = b->ca.mgr_der,
                          .issuer_der_len = b->ca.mgr_der_len,
                          .is_ca = 0,
                          .path_len = -1,
                          .days = 365};
    *der_len = OTPCA_CERT_DER_MAX;
    otpca_err err = otpca_cert_issue(&b->signer, &req, der, der_len);
    if (err)
        return lib_fail(b, err, "otpca_cert_issue(node)");
    return 0;
}

static int op_cert_issue(struct bench *b, uint64_t i)
{
    unsigned char der[OTPCA_CERT_DER_MAX];
    size_t der_len;
    if (issue_node(b, i, der, &der_len) != 0)
        return -1;
    b->sink += der[der_len - 1];
    return 0;
}

static const struct op {
    const char *name, *desc;
    bench_op fn;
    unsigned clock_every; /* ops between clock reads */
    int wolfcrypt;        /* 1: wolfCrypt does all of it; 0: a token is involved */
} ops[] = {
    {"ecdsa_sign", "wc_ecc_sign_hash, preloaded key, one WC_RNG", op_sign, 4, 1},
    {"ecdsa_verify",
     "wc_ecc_init + wc_ecc_import_x963_ex(65 B) + wc_ecc_verify_hash + free, 256 keys in turn",
     op_verify, 4, 1},
    {"ecdh",
     "wc_ecc_init + import_x963(65 B) + wc_ecc_point_is_on_curve + wc_ecc_shared_secret(preloaded "
     "key) + free, 256 peers in turn",
     op_ecdh, 4, 1},
    {"keygen", "wc_ecc_init + wc_ecc_make_key_ex + wc_ecc_export_x963 + free, one WC_RNG", op_keygen,
     4, 1},
    {"token_sign", "otpca_token_sign_digest(RAW), manager CA key in SoftHSM (SoftHSM's crypto)",
     op_token_sign, 1, 0},
    {"cert_issue",
     "otpca_cert_issue(node certificate, 256 subject keys in turn) signed by the manager's token key "
     "through otpca_wolf_signer",
     op_cert_issue, 1, 0},
};
#define NOPS (sizeof ops / sizeof ops[0])

/* ---- timing ----------------------------------------------------------------- */

struct result {
    struct bench_tally t; /* secs: CPU time of this thread */
    double rate_min, rate_max; /* over the rounds */
};

/* One slice of ops[k] (bench_run_slice: by CPU time, bounded in wall time). */
static int run_slice(struct bench *b, size_t k, double slice, uint64_t *counter,
                     struct bench_tally *t)
{
    return bench_run_slice(b, ops[k].fn, slice, ops[k].clock_every, counter, t);
}

/* Warm every operation up (S/4, at most 0.5 s each), then `rounds` rounds
 * in which every operation runs seconds/rounds of CPU time, the order
 * rotating by one each round (0 1 2 3 4 5, 1 2 3 4 5 0, ...), so that a
 * change of machine speed is spread over all of them. */
static int measure(struct bench *b, double seconds, unsigned rounds, struct result *res)
{
    double slice = seconds / rounds, warm = bench_warmup(seconds);
    uint64_t counter[NOPS];
    struct bench_tally scratch = {0, 0, 0};
    memset(res, 0, NOPS * sizeof *res);
    for (size_t k = 0; k < NOPS; k++) {
        counter[k] = 0;
        if (run_slice(b, k, warm, &counter[k], &scratch) != 0)
            return -1;
        counter[k] = 0;
        res[k].rate_min = INFINITY;
    }
    for (unsigned r = 0; r < rounds; r++) {
        for (size_t j = 0; j < NOPS; j++) {
            size_t k = (r + j) % NOPS;
            struct bench_tally t = {0, 0, 0};
            if (run_slice(b, k, slice, &counter[k], &t) != 0)
                return -1;
            bench_range(bench_rate(&t), &res[k].rate_min, &res[k].rate_max);
            bench_tally_add(&res[k].t, &t);
        }
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------------ */

static int setup_wolf(struct bench *b)
{
    int rc;
    word32 len;
    if ((rc = wc_InitRng(&b->rng)) != 0)
        return wc_fail(b, rc, "wc_InitRng");
    b->rng_ok = 1;
    if ((rc = wc_ecc_init(&b->own)) != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    b->own_ok = 1;
    len = sizeof b->own_pub;
    if ((rc = wc_ecc_make_key_ex(&b->rng, 32, &b->own, ECC_SECP256R1)) != 0 ||
        (rc = wc_ecc_set_rng(&b->own, &b->rng)) != 0 || /* ECDH blinding wants it */
        (rc = wc_ecc_export_x963(&b->own, b->own_pub, &len)) != 0)
        return wc_fail(b, rc, "own key");

    b->peer = calloc(POOL, sizeof *b->peer);
    if (!b->peer)
        return lib_fail(b, OTPCA_ERR_NOMEM, "calloc");
    for (size_t i = 0; i < POOL; i++) {
        struct peer *p = &b->peer[i];
        ecc_key k, *kp = i == 0 ? &b->peer0 : &k;
        if ((rc = wc_ecc_init(kp)) != 0)
            return wc_fail(b, rc, "wc_ecc_init");
        if (i == 0)
            b->peer0_ok = 1;
        len = sizeof p->pub;
        p->der_len = sizeof p->der;
        rc = wc_ecc_make_key_ex(&b->rng, 32, kp, ECC_SECP256R1);
        if (rc == 0)
            rc = wc_ecc_export_x963(kp, p->pub, &len);
        if (rc == 0)
            rc = wc_RNG_GenerateBlock(&b->rng, p->digest, sizeof p->digest);
        if (rc == 0)
            rc = wc_ecc_sign_hash(p->digest, sizeof p->digest, p->der, &p->der_len, &b->rng, kp);
        if (rc == 0 && i == 0)
            rc = wc_ecc_set_rng(kp, &b->rng);
        if (i != 0)
            wc_ecc_free(kp);
        if (rc != 0 || len != sizeof p->pub)
            return wc_fail(b, rc, "pool key");
    }
    return 0;
}

/* The root and manager tokens, the chain root -> manager the node
 * certificates hang from, and the manager's CA key bound to wolfCrypt. */
static int setup_tokens(struct bench *b, const char *module, const char *rig)
{
    otpca_err err;
    if (bench_ca_open(&b->ca, module, rig, &b->fail, b->what, sizeof b->what) != 0)
        return -1;
    if ((err = otpca_wolf_signer_init(&b->signer, b->ca.mgr_tok, b->ca.mgr_key)))
        return lib_fail(b, err, "otpca_wolf_signer_init(manager)");
    b->signer_ok = 1;
    return 0;
}

static void teardown(struct bench *b)
{
    if (b->signer_ok)
        otpca_wolf_signer_free(&b->signer);
    b->signer_ok = 0;
    bench_ca_close(&b->ca);
    if (b->peer0_ok)
        wc_ecc_free(&b->peer0);
    if (b->own_ok)
        wc_ecc_free(&b->own);
    if (b->rng_ok)
        wc_FreeRng(&b->rng);
    b->peer0_ok = b->own_ok = b->rng_ok = 0;
    free(b->peer);
    b->peer = NULL;
}

/* ---- sanity: every operation computes what it should ------------------------- */

static int sanity_fail(const char *what)
{
    fprintf(stderr, "otpca-bench-crypto: sanity check failed: %s\n", what);
    return -1;
}

static int verify_der(const uint8_t pub[OTPCA_EC_P256_SEC1_LEN], const uint8_t *der, word32 der_len,
                      const uint8_t digest[32])
{
    ecc_key k;
    int res = 0;
    if (wc_ecc_init(&k) != 0)
        return 0;
    if (wc_ecc_import_x963_ex(pub, OTPCA_EC_P256_SEC1_LEN, &k, ECC_SECP256R1) != 0 ||
        wc_ecc_verify_hash(der, der_len, digest, 32, &res, &k) != 0)
        res = 0;
    wc_ecc_free(&k);
    return res == 1;
}

static int sanity(struct bench *b)
{
    /* Signatures: ours verify under our key, not for another digest. */
    byte der[80];
    word32 der_len = sizeof der;
    if (wc_ecc_sign_hash(b->peer[0].digest, 32, der, &der_len, &b->rng, &b->own) != 0 ||
        !verify_der(b->own_pub, der, der_len, b->peer[0].digest))
        return sanity_fail("a preloaded-key signature does not verify");
    if (verify_der(b->own_pub, der, der_len, b->peer[1].digest))
        return sanity_fail("a signature verified for another digest");
    /* Every pooled signature verifies (the timed path), and not under
     * another key. */
    for (uint64_t i = 0; i < POOL; i++)
        if (op_verify(b, i) != 0)
            return -1;
    if (verify_der(b->peer[1].pub, b->peer[0].der, b->peer[0].der_len, b->peer[0].digest))
        return sanity_fail("a signature verified under another key");
    /* ECDH: both ends get the same secret; an off-curve point is refused. */
    uint8_t z1[32], z2[32], bad[OTPCA_EC_P256_SEC1_LEN];
    word32 zlen = sizeof z2;
    ecc_key own_pub;
    int rc;
    if (ecdh_with(b, b->peer[0].pub, z1) != 0)
        return -1;
    if ((rc = wc_ecc_init(&own_pub)) != 0)
        return wc_fail(b, rc, "wc_ecc_init");
    rc = wc_ecc_import_x963_ex(b->own_pub, sizeof b->own_pub, &own_pub, ECC_SECP256R1);
    if (rc == 0)
        rc = wc_ecc_shared_secret(&b->peer0, &own_pub, z2, &zlen);
    wc_ecc_free(&own_pub);
    if (rc != 0 || zlen != 32 || memcmp(z1, z2, 32) != 0)
        return sanity_fail("the two ends of an ECDH disagree");
    memcpy(bad, b->peer[0].pub, sizeof bad);
    bad[64] ^= 0x01;
    {
        const char *saved = b->fail.what;
        if (ecdh_with(b, bad, z2) == 0)
            return sanity_fail("ECDH accepted a point off the curve");
        b->fail.what = saved;
    }
    if (op_keygen(b, 0) != 0)
        return -1;

    /* Token: its signature verifies under the manager's public key. */
    unsigned char raw[OTPCA_SIG_RAW_LEN];
    size_t raw_len = sizeof raw;
    otpca_err err = otpca_token_sign_digest(b->ca.mgr_tok, b->ca.mgr_key, b->peer[2].digest, 32,
                                            OTPCA_SIG_RAW, raw, &raw_len);
    if (err)
        return lib_fail(b, err, "otpca_token_sign_digest");
    der_len = sizeof der;
    if (wc_ecc_rs_raw_to_sig(raw, 32, raw + 32, 32, der, &der_len) != 0 ||
        !verify_der(b->ca.mgr_pub, der, der_len, b->peer[2].digest))
        return sanity_fail("the token's signature does not verify under the manager key");

    /* Certificates: the token signs them (the signer counts), and root ->
     * manager -> node verifies with wolfSSL's certificate manager. */
    unsigned char node[OTPCA_CERT_DER_MAX];
    unsigned long before = b->signer.signatures;
    if (issue_node(b, 3, node, &b->node_der_len) != 0)
        return -1;
    if (b->signer.signatures != before + 1)
        return sanity_fail("the node certificate was not signed by the token");
    int ok = bench_ca_verify(&b->ca, node, b->node_der_len);
    if (ok < 0)
        return sanity_fail("wolfSSL_CertManagerNew");
    node[b->node_der_len - 5] ^= 0x01; /* inside the signature */
    int tampered = bench_ca_verify(&b->ca, node, b->node_der_len) == 1;
    if (!ok)
        return sanity_fail("root -> manager -> node does not verify");
    if (tampered)
        return sanity_fail("a node certificate with a changed signature verified");
    return 0;
}

/* ---- output ------------------------------------------------------------------- */

struct env {
    struct bench_ca_env c;
    size_t node_cert_len;
    double cpu_share;
};

static void print_header(const struct env *e)
{
    printf("otpca-bench-crypto: P-256 with wolfCrypt and with a SoftHSM token, single-threaded\n");
    printf("  wolfSSL  %s, %s (%s), SP ECC %s; linked library %s; %s\n", OTPCA_WOLFSSL_VERSION,
           OTPCA_WOLFSSL_BUILD, OTPCA_WOLFSSL_PREFIX, bench_ca_sp_word(), wolfSSL_lib_version(), e->c.ecc);
    bench_print_host(stdout, &e->c.host, 1);
    printf("  token    %s key %s (root %s), module %s, rig %s%s\n", MGR_LABEL, OTPCA_RIG_MANAGER_KEY,
           OTPCA_RIG_ROOT_TOKEN, e->c.module, e->c.rig.dir, e->c.rig.throwaway ? " (throw-away)" : "");
    printf("  timing   %.2f s CPU time per operation in %u rounds, the order rotating every round, "
           "warm-up first; rates per CPU-second; %u keys in the pool; node certificate %zu B\n\n",
           e->c.args.seconds, e->c.args.rounds, POOL, e->node_cert_len);
    printf("%-14s %11s %10s %21s  %s\n", "operation", "ops/s", "us/op", "rounds min..max/s", "what");
    fflush(stdout);
}

static void print_row(const struct op *o, const struct result *r)
{
    double q = bench_rate(&r->t);
    printf("%-14s %11.1f %10.1f %10.1f..%-10.1f  %s\n", o->name, q, bench_us_per(q), r->rate_min,
           r->rate_max, o->desc);
    fflush(stdout);
}

static void print_json(const struct env *e, const struct result *res)
{
    printf("{\"benchmark\":\"crypto\",");
    bench_ca_json_env(&e->c);
    printf(",\"threads\":1,\"seconds\":%.3f,\"rounds\":%u,\"pool\":%u,"
           "\"node_cert_bytes\":%zu,\"results\":[",
           e->c.args.seconds, e->c.args.rounds, POOL,
           e->node_cert_len);
    for (size_t k = 0; k < NOPS; k++) {
        const struct result *r = &res[k];
        double q = bench_rate(&r->t);
        printf("%s{\"name\":\"%s\",\"what\":", k ? "," : "", ops[k].name);
        bench_json_str(stdout, ops[k].desc);
        printf(",\"wolfcrypt_only\":%s,\"ops\":%llu,\"seconds\":%.6f,\"wall_seconds\":%.6f,"
               "\"ops_per_s\":%.1f,\"us_per_op\":%.3f,\"rate_min\":%.1f,\"rate_max\":%.1f}",
               ops[k].wolfcrypt ? "true" : "false", (unsigned long long)r->t.ops, r->t.secs,
               r->t.wall, q, bench_us_per(q), r->rate_min, r->rate_max);
    }
    bench_json_end_cpu_share(e->cpu_share);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: otpca-bench-crypto [--seconds S] [--rounds N] [--json] [--rig DIR]\n"
            "  Time P-256 with the wolfSSL this binary was built against (ECDSA sign with a\n"
            "  preloaded key, verify and ECDH with a different key each op, key generation)\n"
            "  and with a SoftHSM token (ECDSA sign; node certificate issuance through the\n"
            "  wolfCrypt bridge), single-threaded, and report ops/s.\n"
            "  Built against wolfSSL %s, %s, SP ECC %s.\n"
            "  --seconds S  CPU time per operation (default %.0f)\n"
            "  --rounds N   rounds per operation, the order rotating (default %u)\n"
            "  --json       one JSON object on stdout instead of the table\n"
            "  --rig DIR    use tokens %s and %s of an existing rig (default: a\n"
            "               throw-away rig in a temporary directory, removed at the end)\n"
            "  The module is OTPCA_PKCS11_MODULE or %s.\n"
            "  bench/crypto.sh runs the SP and the packaged build side by side.\n",
            OTPCA_WOLFSSL_VERSION, OTPCA_WOLFSSL_BUILD, bench_ca_sp_word(), DEFAULT_SECONDS, DEFAULT_ROUNDS,
            OTPCA_RIG_ROOT_TOKEN, MGR_LABEL, otpca_p11_default_module());
}

int main(int argc, char **argv)
{
    static struct bench b;
    struct env e = {.c.args = {DEFAULT_SECONDS, DEFAULT_ROUNDS, 0, NULL}};
    struct result res[NOPS];
    int ret = EXIT_FAILURE, wolf_ok = 0;

    memset(res, 0, sizeof res);
    otpca_log_init("otpca-bench-crypto", OTPCA_LOG_WARN, OTPCA_LOG_TEXT);

    int rc = bench_start(argc, argv, "otpca-bench-crypto", "rig", usage, &e.c.args, &e.c.host);
    if (rc >= 0)
        return rc;
    const int json = e.c.args.json;
    e.c.module = bench_pkcs11_module(otpca_p11_default_module());
    bench_ecc_config(e.c.ecc, sizeof e.c.ecc, 1);

    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        fprintf(stderr, "otpca-bench-crypto: wolfSSL_Init failed\n");
        return EXIT_FAILURE;
    }
    wolf_ok = 1;

    /* The rig: a throw-away one (otpca_rig_create sets SOFTHSM2_CONF and
     * loads/unloads the module), or an existing one. */
    if (bench_ca_rig_open(&e.c.rig, "otpca-bench-crypto", e.c.args.extra, e.c.module, json) != 0)
        goto out;
    if (bench_stop)
        goto fail;

    if (!json)
        fprintf(stderr, "preparing %u keys, the root -> manager chain and the sanity checks ...\n",
                POOL);
    if (setup_wolf(&b) != 0 || setup_tokens(&b, e.c.module, e.c.rig.dir) != 0 || sanity(&b) != 0)
        goto fail;
    e.node_cert_len = b.node_der_len;

    if (!json)
        print_header(&e);
    if (measure(&b, e.c.args.seconds, e.c.args.rounds, res) != 0)
        goto fail;
    struct bench_tally all = {0, 0, 0};
    for (size_t k = 0; k < NOPS; k++)
        bench_tally_add(&all, &res[k].t);
    e.cpu_share = bench_cpu_share(&all);
    if (json) {
        print_json(&e, res);
    } else {
        for (size_t k = 0; k < NOPS; k++)
            print_row(&ops[k], &res[k]);
        bench_print_cpu_share(e.cpu_share);
    }
    ret = EXIT_SUCCESS;
    goto out;

fail:
    ret = bench_fail_wc("otpca-bench-crypto", &b.fail, otpca_strerror(b.fail.err));
out:
    teardown(&b);
    if (wolf_ok)
        bench_ca_wolf_cleanup();
    bench_rig_close(&e.c.rig);
    return ret;
}
