/*
 * benchca: what otpca-bench-crypto and otpca-bench-enroll share on the CA
 * side, beside benchutil's scaffolding: the throw-away SoftHSM rig made for
 * them (root, cloud, one manager), its root and manager tokens with their
 * keys and the chain root -> manager the node certificates hang from, the
 * check that a node certificate chains to it, and the "wolfssl" member of
 * their JSON, which names the wolfSSL build (OTPCA_WOLFSSL_BUILD, _SP,
 * _VERSION, _PREFIX from bench/CMakeLists.txt). Including this header also
 * checks at compile time that the wolfSSL headers agree with CMake.
 */
#ifndef OTPCA_BENCH_BENCHCA_H
#define OTPCA_BENCH_BENCHCA_H

#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>

#include "otpca/token/token.h"
#include "otpca/token/wolf.h"

#include "benchutil.h"

/* What CMake found (CMakeLists.txt); the headers must agree. */
#ifndef OTPCA_WOLFSSL_BUILD
#error "OTPCA_WOLFSSL_BUILD, OTPCA_WOLFSSL_SP and OTPCA_WOLFSSL_VERSION come from bench/CMakeLists.txt"
#endif
#if defined(WOLFSSL_HAVE_SP_ECC) != OTPCA_WOLFSSL_SP
#error "OTPCA_WOLFSSL_SP disagrees with WOLFSSL_HAVE_SP_ECC in the wolfssl/options.h compiled against"
#endif
#ifndef OTPCA_WOLFSSL_PREFIX
#define OTPCA_WOLFSSL_PREFIX "?"
#endif

/* What both benchmarks' reports start from: the command line (extra:
 * --rig), the PKCS#11 module, the rig, the machine and bench_ecc_config's
 * text. */
struct bench_ca_env {
    struct bench_args args;
    const char *module;
    struct bench_rig rig;
    struct bench_host host;
    char ecc[256];
};

/* The manager token of the rig both benchmarks use. */
#define BENCH_CA_MGR_LABEL "otpca-mgr-01"

/* The tokens and the CA chain; zeroed before bench_ca_open. */
struct bench_ca {
    otpca_p11_t *p11;
    otpca_token_t *root_tok, *mgr_tok;
    otpca_obj_t root_key, mgr_key;
    uint8_t mgr_pub[OTPCA_EC_P256_SEC1_LEN];
    unsigned char root_der[OTPCA_CERT_DER_MAX], mgr_der[OTPCA_CERT_DER_MAX];
    size_t root_der_len, mgr_der_len;
};

/* bench_rig_open, and for a throw-away rig otpca_rig_create (root, cloud,
 * one manager; it sets SOFTHSM2_CONF) with module. Returns 0, or -1 after
 * a message starting with prog. */
int bench_ca_rig_open(struct bench_rig *r, const char *prog, const char *path, const char *module,
                      int quiet);

/* Load module, open the root and manager tokens of the rig in directory rig
 * (PINs from rig/pins/<label>.pin), find their keys and issue the chain
 * root -> manager. Returns 0, or -1 with the failure in *f (what, of
 * what_cap bytes, holds the text *f may point to). */
int bench_ca_open(struct bench_ca *ca, const char *module, const char *rig,
                  struct bench_failure *f, char *what, size_t what_cap);

/* Close the tokens and the module; safe on a zeroed or half-open ca. */
void bench_ca_close(struct bench_ca *ca);

/* 1 when der chains root -> manager -> der, 0 when it does not, -1 when
 * wolfSSL_CertManagerNew failed. */
int bench_ca_verify(const struct bench_ca *ca, const unsigned char *der, size_t der_len);

/* Undo wolfSSL_Init: the FP_ECC cache (when built with it), then
 * wolfSSL_Cleanup. */
void bench_ca_wolf_cleanup(void);

/* "SP ECC on|off" of the build: "on" or "off". */
const char *bench_ca_sp_word(void);

/* On stdout, with no brace around: "wolfssl":{version, build, sp_ecc,
 * prefix, the library's own version, ecc}, the host (bench_json_host),
 * "module", "rig", "throwaway_rig". */
void bench_ca_json_env(const struct bench_ca_env *c);

#endif
