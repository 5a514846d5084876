/*
 * otpca-bench-token: what libotpca-token costs over raw PKCS#11. On one
 * SoftHSM token it times ECDSA P-256 signing of a 32-byte digest and
 * HMAC-SHA1 (the TOTP primitive) twice each: through the library
 * (otpca_token_sign_digest, otpca_token_hmac, otpca_token_hotp) and by
 * calling C_SignInit + C_Sign on the module's function list directly, with
 * the same key handles, in a session of our own on the same slot. The
 * library stays the one PKCS#11 owner of the process: the function list is
 * taken from the already-loaded module (dlopen RTLD_NOLOAD), never a second
 * C_Initialize. Wrapper and direct runs alternate in rounds (A B, B A, ...)
 * so drift hits both alike; the report is ops/s and wrapper/direct.
 */
#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "p11.h" /* token/src: <p11-kit/pkcs11.h> without its lower-case macros */

#include "otpca/common/log.h"
#include "otpca/token/rig.h"
#include "otpca/token/token.h"

#include "benchutil.h"

#define TARGET_RATIO 0.95
#define DEFAULT_SECONDS 2.0
#define DEFAULT_ROUNDS 10u
#define CLOCK_EVERY 8u /* ops between clock reads */

/* ---- what is measured ------------------------------------------------- */

struct bench {
    otpca_token_t *tok;     /* the library's session */
    CK_FUNCTION_LIST *fn;   /* the loaded module's function list */
    CK_SESSION_HANDLE sess; /* our own session, same slot, shared login */
    otpca_obj_t key;        /* device-key, private */
    otpca_obj_t seed;       /* totp, secret */
    unsigned char digest[32];
    otpca_err err; /* last library failure */
    CK_RV rv;      /* last PKCS#11 failure */
    const char *failed;
    uint32_t sink; /* keeps results observable */
};

static void counter_msg(unsigned char msg[8], uint64_t counter)
{
    for (int k = 7; k >= 0; k--, counter >>= 8)
        msg[k] = (unsigned char)counter;
}

static int lib_fail(struct bench *b, otpca_err err, const char *what)
{
    b->err = err;
    b->failed = what;
    return -1;
}

static int p11_fail(struct bench *b, CK_RV rv, const char *what)
{
    b->rv = rv;
    b->failed = what;
    return -1;
}

static int op_sign_lib(struct bench *b, uint64_t i)
{
    unsigned char sig[OTPCA_SIG_RAW_LEN];
    size_t sig_len = sizeof sig;
    (void)i;
    otpca_err err = otpca_token_sign_digest(b->tok, b->key, b->digest, sizeof b->digest,
                                            OTPCA_SIG_RAW, sig, &sig_len);
    if (err)
        return lib_fail(b, err, "otpca_token_sign_digest");
    b->sink += sig[0];
    return 0;
}

static int op_sign_p11(struct bench *b, uint64_t i)
{
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    unsigned char sig[OTPCA_SIG_RAW_LEN];
    CK_ULONG sig_len = sizeof sig;
    (void)i;
    CK_RV rv = b->fn->C_SignInit(b->sess, &mech, b->key);
    if (rv != CKR_OK)
        return p11_fail(b, rv, "C_SignInit(CKM_ECDSA)");
    rv = b->fn->C_Sign(b->sess, b->digest, sizeof b->digest, sig, &sig_len);
    if (rv != CKR_OK)
        return p11_fail(b, rv, "C_Sign(CKM_ECDSA)");
    b->sink += sig[0];
    return 0;
}

static int op_hmac_lib(struct bench *b, uint64_t i)
{
    unsigned char msg[8], mac[OTPCA_HMAC_MAX];
    size_t mac_len = sizeof mac;
    counter_msg(msg, i);
    otpca_err err = otpca_token_hmac(b->tok, b->seed, OTPCA_OTP_SHA1, msg, sizeof msg, mac, &mac_len);
    if (err)
        return lib_fail(b, err, "otpca_token_hmac");
    b->sink += mac[0];
    return 0;
}

static int op_hotp_lib(struct bench *b, uint64_t i)
{
    uint32_t code;
    otpca_err err = otpca_token_hotp(b->tok, b->seed, OTPCA_OTP_SHA1, i, 6, &code);
    if (err)
        return lib_fail(b, err, "otpca_token_hotp");
    b->sink += code;
    return 0;
}

static int op_hmac_p11(struct bench *b, uint64_t i)
{
    CK_MECHANISM mech = {CKM_SHA_1_HMAC, NULL, 0};
    unsigned char msg[8], mac[OTPCA_HMAC_MAX];
    CK_ULONG mac_len = sizeof mac;
    counter_msg(msg, i);
    CK_RV rv = b->fn->C_SignInit(b->sess, &mech, b->seed);
    if (rv != CKR_OK)
        return p11_fail(b, rv, "C_SignInit(CKM_SHA_1_HMAC)");
    rv = b->fn->C_Sign(b->sess, msg, sizeof msg, mac, &mac_len);
    if (rv != CKR_OK)
        return p11_fail(b, rv, "C_Sign(CKM_SHA_1_HMAC)");
    b->sink += mac[0];
    return 0;
}

static const struct pair {
    const char *name, *lib_desc, *p11_desc;
    bench_op lib, p11;
} pairs[] = {
    {"ecdsa_p256_sign", "otpca_token_sign_digest(RAW)", "C_SignInit(CKM_ECDSA)+C_Sign", op_sign_lib,
     op_sign_p11},
    {"hmac_sha1", "otpca_token_hmac(SHA1)", "C_SignInit(CKM_SHA_1_HMAC)+C_Sign", op_hmac_lib,
     op_hmac_p11},
    {"hotp_sha1", "otpca_token_hotp(SHA1,6)", "C_SignInit(CKM_SHA_1_HMAC)+C_Sign", op_hotp_lib,
     op_hmac_p11},
};
#define NPAIRS (sizeof pairs / sizeof pairs[0])

/* The tallies' secs are wall time here (wall stays 0). */
struct result {
    struct bench_tally lib, p11;
    double ratio, ratio_min, ratio_max;
};

/* Run f for slice seconds of wall time or max_ops calls, whichever ends
 * first. */
static int run_slice(struct bench *b, bench_op f, double slice, uint64_t max_ops, uint64_t *counter,
                     struct bench_tally *t)
{
    uint64_t n = 0;
    double t0 = bench_now_s(), t1 = t0;
    while (n < max_ops && !bench_stop) {
        if (f(b, (*counter)++) != 0)
            return -1;
        n++;
        if (n % CLOCK_EVERY == 0 && bench_now_s() - t0 >= slice)
            break;
    }
    t1 = bench_now_s();
    t->ops += n;
    t->secs += t1 - t0;
    return bench_stop ? -1 : 0;
}

/* Warm up both sides, then `rounds` rounds of seconds/rounds each side,
 * the order flipping every round (A B, B A, ...). */
static int measure(struct bench *b, const struct pair *p, double seconds, unsigned rounds,
                   struct result *r)
{
    double slice = seconds / rounds;
    double warm = bench_warmup(seconds);
    uint64_t counter = 0;
    struct bench_tally scratch = {0, 0, 0};
    memset(r, 0, sizeof *r);
    if (run_slice(b, p->lib, warm, BENCH_MAX_OPS_PER_SLICE, &counter, &scratch) != 0 ||
        run_slice(b, p->p11, warm, BENCH_MAX_OPS_PER_SLICE, &counter, &scratch) != 0)
        return -1;
    r->ratio_min = INFINITY;
    r->ratio_max = 0;
    for (unsigned k = 0; k < rounds; k++) {
        struct bench_tally a = {0, 0, 0}, d = {0, 0, 0};
        int lib_first = k % 2 == 0;
        if (run_slice(b, lib_first ? p->lib : p->p11, slice, BENCH_MAX_OPS_PER_SLICE, &counter,
                      lib_first ? &a : &d) != 0 ||
            run_slice(b, lib_first ? p->p11 : p->lib, slice, BENCH_MAX_OPS_PER_SLICE, &counter,
                      lib_first ? &d : &a) != 0)
            return -1;
        double q = bench_rate(&d) > 0 ? bench_rate(&a) / bench_rate(&d) : 0.0;
        bench_range(q, &r->ratio_min, &r->ratio_max);
        bench_tally_add(&r->lib, &a);
        bench_tally_add(&r->p11, &d);
    }
    r->ratio = bench_rate(&r->p11) > 0 ? bench_rate(&r->lib) / bench_rate(&r->p11) : 0.0;
    return 0;
}

/* ---- sanity: both paths compute the same thing ------------------------- */

static int check_same(struct bench *b, otpca_obj_t pub)
{
    unsigned char msg[8], mac_lib[OTPCA_HMAC_MAX], mac_p11[OTPCA_HMAC_MAX];
    size_t lib_len = sizeof mac_lib;
    CK_ULONG p11_len = sizeof mac_p11;
    CK_MECHANISM hmac = {CKM_SHA_1_HMAC, NULL, 0}, ecdsa = {CKM_ECDSA, NULL, 0};
    const uint64_t counter = 0x0123456789abcdefull;
    uint32_t code = 0;
    CK_RV rv;

    counter_msg(msg, counter);
    otpca_err err = otpca_token_hmac(b->tok, b->seed, OTPCA_OTP_SHA1, msg, sizeof msg, mac_lib,
                                     &lib_len);
    if (err)
        return lib_fail(b, err, "otpca_token_hmac");
    err = otpca_token_hotp(b->tok, b->seed, OTPCA_OTP_SHA1, counter, 6, &code);
    if (err)
        return lib_fail(b, err, "otpca_token_hotp");
    if ((rv = b->fn->C_SignInit(b->sess, &hmac, b->seed)) != CKR_OK ||
        (rv = b->fn->C_Sign(b->sess, msg, sizeof msg, mac_p11, &p11_len)) != CKR_OK)
        return p11_fail(b, rv, "C_Sign(CKM_SHA_1_HMAC)");
    if (lib_len != 20 || p11_len != 20 || memcmp(mac_lib, mac_p11, 20) != 0 ||
        code != otpca_otp_truncate(mac_p11, p11_len, 6)) {
        fprintf(stderr, "otpca-bench-token: wrapper and direct HMAC-SHA1 disagree\n");
        return -1;
    }

    /* Each path's signature must verify under the device public key. */
    unsigned char sig_lib[OTPCA_SIG_RAW_LEN], sig_p11[OTPCA_SIG_RAW_LEN];
    size_t slib = sizeof sig_lib;
    CK_ULONG sp11 = sizeof sig_p11;
    err = otpca_token_sign_digest(b->tok, b->key, b->digest, sizeof b->digest, OTPCA_SIG_RAW, sig_lib,
                                  &slib);
    if (err)
        return lib_fail(b, err, "otpca_token_sign_digest");
    if ((rv = b->fn->C_SignInit(b->sess, &ecdsa, b->key)) != CKR_OK ||
        (rv = b->fn->C_Sign(b->sess, b->digest, sizeof b->digest, sig_p11, &sp11)) != CKR_OK)
        return p11_fail(b, rv, "C_Sign(CKM_ECDSA)");
    const unsigned char *sigs[2] = {sig_lib, sig_p11};
    const CK_ULONG lens[2] = {(CK_ULONG)slib, sp11};
    for (int k = 0; k < 2; k++) {
        if ((rv = b->fn->C_VerifyInit(b->sess, &ecdsa, pub)) != CKR_OK)
            return p11_fail(b, rv, "C_VerifyInit(CKM_ECDSA)");
        rv = b->fn->C_Verify(b->sess, b->digest, sizeof b->digest, (CK_BYTE *)sigs[k], lens[k]);
        if (rv != CKR_OK) {
            fprintf(stderr, "otpca-bench-token: %s signature does not verify (CKR 0x%lx)\n",
                    k == 0 ? "wrapper" : "direct", (unsigned long)rv);
            return -1;
        }
    }
    return 0;
}

/* ---- setup: rig, module, slot, session -------------------------------- */

static void unpad(char *dst, const unsigned char *src, size_t n)
{
    while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\0'))
        n--;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The slot of the token labelled label, as the library lists it. */
static int find_slot(otpca_p11_t *p11, const char *label, CK_SLOT_ID *out)
{
    otpca_token_info infos[64];
    size_t n = 0;
    unsigned found = 0;
    otpca_err err = otpca_p11_list(p11, infos, 64, &n);
    if (err) {
        fprintf(stderr, "otpca-bench-token: list tokens: %s\n", otpca_strerror(err));
        return -1;
    }
    for (size_t k = 0; k < n && k < 64; k++)
        if (infos[k].initialized && strcmp(infos[k].label, label) == 0 && found++ == 0)
            *out = infos[k].slot_id;
    if (found != 1) {
        fprintf(stderr, "otpca-bench-token: %u tokens labelled %s\n", found, label);
        return -1;
    }
    return 0;
}

/* ---- output ----------------------------------------------------------- */

struct env {
    struct bench_args args; /* extra: --rig */
    const char *module, *label;
    struct bench_rig rig;
    char library[128];
    struct bench_host host;
    CK_SLOT_ID slot;
};

static void print_header(const struct env *e)
{
    printf("otpca-bench-token: libotpca-token vs direct PKCS#11 on one token\n");
    printf("  module   %s (%s)\n", e->module, e->library);
    printf("  token    %s, slot %lu, rig %s%s\n", e->label, (unsigned long)e->slot, e->rig.dir,
           e->rig.throwaway ? " (throw-away)" : "");
    bench_print_host(stdout, &e->host, 0);
    printf("  timing   %.2f s per measurement in %u interleaved rounds (A B, B A, ...), "
           "warm-up first; target wrapper/direct >= %.2f\n\n",
           e->args.seconds, e->args.rounds, TARGET_RATIO);
    printf("%-16s %-30s %12s %12s %7s %15s %s\n", "operation", "wrapper", "wrapper/s", "direct/s",
           "ratio", "rounds min..max", "target");
    fflush(stdout);
}

static void print_row(const struct pair *p, const struct result *r)
{
    printf("%-16s %-30s %12.1f %12.1f %7.3f %7.3f..%-6.3f %s\n", p->name, p->lib_desc,
           bench_rate(&r->lib), bench_rate(&r->p11), r->ratio, r->ratio_min, r->ratio_max,
           r->ratio >= TARGET_RATIO ? "ok" : "BELOW");
    fflush(stdout);
}

static void print_json(const struct env *e, const struct result *res)
{
    int all = 1;
    printf("{\"benchmark\":\"token\",\"module\":");
    bench_json_str(stdout, e->module);
    printf(",\"library\":");
    bench_json_str(stdout, e->library);
    printf(",\"token\":");
    bench_json_str(stdout, e->label);
    printf(",\"slot\":%lu,\"rig\":", (unsigned long)e->slot);
    bench_json_str(stdout, e->rig.dir);
    printf(",\"throwaway_rig\":%s,", e->rig.throwaway ? "true" : "false");
    bench_json_host(stdout, &e->host, 0);
    printf(",\"seconds\":%.3f,\"rounds\":%u,\"target_ratio\":%.2f,\"results\":[", e->args.seconds,
           e->args.rounds, TARGET_RATIO);
    for (size_t k = 0; k < NPAIRS; k++) {
        const struct result *r = &res[k];
        int pass = r->ratio >= TARGET_RATIO;
        all = all && pass;
        printf("%s{\"name\":\"%s\",\"wrapper\":\"%s\",\"direct\":\"%s\","
               "\"wrapper_ops\":%llu,\"wrapper_seconds\":%.6f,\"wrapper_ops_per_s\":%.1f,"
               "\"direct_ops\":%llu,\"direct_seconds\":%.6f,\"direct_ops_per_s\":%.1f,"
               "\"ratio\":%.4f,\"ratio_min\":%.4f,\"ratio_max\":%.4f,\"pass\":%s}",
               k ? "," : "", pairs[k].name, pairs[k].lib_desc, pairs[k].p11_desc,
               (unsigned long long)r->lib.ops, r->lib.secs, bench_rate(&r->lib),
               (unsigned long long)r->p11.ops, r->p11.secs, bench_rate(&r->p11), r->ratio,
               r->ratio_min, r->ratio_max, pass ? "true" : "false");
    }
    printf("],\"pass\":%s}\n", all ? "true" : "false");
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: otpca-bench-token [--seconds S] [--rounds N] [--json] [--rig DIR]\n"
            "  Time ECDSA P-256 signing and HMAC-SHA1 (TOTP) on one SoftHSM token, through\n"
            "  libotpca-token and by direct PKCS#11 calls, and report ops/s and the ratio\n"
            "  wrapper/direct (target >= %.2f).\n"
            "  --seconds S  time per measurement and side (default %.0f)\n"
            "  --rounds N   interleaved rounds per measurement (default %u)\n"
            "  --json       one JSON object on stdout instead of the table\n"
            "  --rig DIR    use token %s of an existing rig (default: a throw-away\n"
            "               rig in a temporary directory, removed at the end)\n"
            "  The module is OTPCA_PKCS11_MODULE or %s.\n",
            TARGET_RATIO, DEFAULT_SECONDS, DEFAULT_ROUNDS, "node-000001",
            otpca_p11_default_module());
}

int main(int argc, char **argv)
{
    struct env e = {.args = {DEFAULT_SECONDS, DEFAULT_ROUNDS, 0, NULL}};
    struct bench b;
    struct result res[NPAIRS];
    char path[PATH_MAX], label[OTPCA_P11_LABEL_MAX + 1];
    int ret = EXIT_FAILURE;
    otpca_p11_t *p11 = NULL;
    otpca_p11_uri uri;
    void *dl = NULL;
    otpca_err err;

    memset(&b, 0, sizeof b);
    memset(&uri, 0, sizeof uri);
    b.sess = CK_INVALID_HANDLE;
    otpca_log_init("otpca-bench-token", OTPCA_LOG_WARN, OTPCA_LOG_TEXT);

    int rc = bench_start(argc, argv, "otpca-bench-token", "rig", usage, &e.args, &e.host);
    if (rc >= 0)
        return rc;
    const int json = e.args.json;
    e.module = bench_pkcs11_module(otpca_p11_default_module());
    snprintf(label, sizeof label, OTPCA_RIG_NODE_FMT, 1u);
    e.label = label;

    /* The rig: a throw-away one (otpca_rig_create sets SOFTHSM2_CONF and
     * loads/unloads the module), or an existing one. */
    if (bench_rig_open(&e.rig, "otpca-bench-token", e.args.extra, "", json) != 0)
        goto out;
    if (e.rig.throwaway && (err = otpca_rig_create(e.rig.dir, e.module, 1, 0, NULL, NULL))) {
        fprintf(stderr, "otpca-bench-token: rig: %s\n", otpca_strerror(err));
        goto out;
    }

    /* The library owns the module; open the node token with its PIN file. */
    err = otpca_p11_new(e.module, &p11);
    if (err) {
        fprintf(stderr, "otpca-bench-token: %s: %s\n", e.module, otpca_strerror(err));
        goto out;
    }
    snprintf(path, sizeof path, "pkcs11:token=%s", label);
    err = otpca_p11_uri_parse(path, &uri);
    if (!err) {
        otpca_pin_src pin = {.kind = OTPCA_PIN_FILE};
        char pin_path[PATH_MAX];
        if (snprintf(pin_path, sizeof pin_path, "%s/pins/%s.pin", e.rig.dir, label) >=
            (int)sizeof pin_path) {
            err = OTPCA_ERR_INVALID_ARG;
        } else {
            pin.path = pin_path;
            err = otpca_token_open_uri(p11, &uri, &pin, &b.tok);
        }
    }
    if (err) {
        fprintf(stderr, "otpca-bench-token: token %s: %s\n", label, otpca_strerror(err));
        goto out;
    }
    otpca_obj_t pub;
    if ((err = otpca_token_find(b.tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_DEVICE_KEY, NULL, 0,
                                &b.key)) != OTPCA_ERR_OK ||
        (err = otpca_token_find(b.tok, OTPCA_OBJ_PUBLIC_KEY, OTPCA_RIG_DEVICE_KEY, NULL, 0,
                                &pub)) != OTPCA_ERR_OK ||
        (err = otpca_token_find(b.tok, OTPCA_OBJ_SECRET_KEY, OTPCA_RIG_DEVICE_SEED, NULL, 0,
                                &b.seed)) != OTPCA_ERR_OK) {
        fprintf(stderr, "otpca-bench-token: objects %s/%s: %s\n", OTPCA_RIG_DEVICE_KEY,
                OTPCA_RIG_DEVICE_SEED, otpca_strerror(err));
        goto out;
    }

    /* The same, already initialised module instance: no C_Initialize. */
    dl = dlopen(e.module, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    CK_C_GetFunctionList gfl = dl ? (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList") : NULL;
    if (!gfl || gfl(&b.fn) != CKR_OK || !b.fn) {
        fprintf(stderr, "otpca-bench-token: %s is not loaded or has no function list\n",
                e.module);
        goto out;
    }
    CK_INFO info;
    if (b.fn->C_GetInfo(&info) == CKR_OK) {
        char man[sizeof info.manufacturerID + 1], desc[sizeof info.libraryDescription + 1];
        unpad(man, info.manufacturerID, sizeof info.manufacturerID);
        unpad(desc, info.libraryDescription, sizeof info.libraryDescription);
        snprintf(e.library, sizeof e.library, "%s %u.%u, %s", man,
                 (unsigned)info.libraryVersion.major, (unsigned)info.libraryVersion.minor, desc);
    } else {
        snprintf(e.library, sizeof e.library, "?");
    }
    if (find_slot(p11, label, &e.slot) != 0)
        goto out;
    CK_RV rv = b.fn->C_OpenSession(e.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &b.sess);
    if (rv != CKR_OK) {
        b.sess = CK_INVALID_HANDLE;
        fprintf(stderr, "otpca-bench-token: C_OpenSession: CKR 0x%lx\n", (unsigned long)rv);
        goto out;
    }
    CK_SESSION_INFO si;
    if (b.fn->C_GetSessionInfo(b.sess, &si) != CKR_OK || si.state != CKS_RW_USER_FUNCTIONS) {
        fprintf(stderr, "otpca-bench-token: our session is not logged in\n");
        goto out;
    }

    if (getrandom(b.digest, sizeof b.digest, 0) != (ssize_t)sizeof b.digest) {
        perror("otpca-bench-token: getrandom");
        goto out;
    }
    if (check_same(&b, pub) != 0)
        goto fail;

    if (!json)
        print_header(&e);
    for (size_t k = 0; k < NPAIRS; k++) {
        if (measure(&b, &pairs[k], e.args.seconds, e.args.rounds, &res[k]) != 0)
            goto fail;
        if (!json)
            print_row(&pairs[k], &res[k]);
    }
    if (json)
        print_json(&e, res);
    ret = EXIT_SUCCESS;
    goto out;

fail: {
    char ckr[32];
    snprintf(ckr, sizeof ckr, "CKR 0x%lx", (unsigned long)b.rv);
    ret = bench_fail("otpca-bench-token", b.failed, b.err ? otpca_strerror(b.err) : ckr);
}
out:
    if (b.sess != CK_INVALID_HANDLE)
        b.fn->C_CloseSession(b.sess);
    if (dl)
        dlclose(dl);
    otpca_token_destroy(&b.tok);
    otpca_p11_destroy(&p11);
    otpca_p11_uri_clear(&uri);
    bench_rig_close(&e.rig);
    return ret;
}
