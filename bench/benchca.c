/* benchca: see benchca.h. */
#include "benchca.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "otpca/token/rig.h"

int bench_ca_rig_open(struct bench_rig *r, const char *prog, const char *path, const char *module,
                      int quiet)
{
    if (bench_rig_open(r, prog, path, " (root, cloud, one manager)", quiet) != 0)
        return -1;
    if (r->throwaway) {
        otpca_err err = otpca_rig_create(r->dir, module, 0, 1, NULL, NULL);
        if (err) {
            fprintf(stderr, "%s: rig: %s\n", prog, otpca_strerror(err));
            return -1;
        }
    }
    return 0;
}

static int open_token(struct bench_ca *ca, const char *rig, const char *label,
                      otpca_token_t **tok, struct bench_failure *f, char *what, size_t what_cap)
{
    char uri_s[128], pin_path[PATH_MAX];
    otpca_p11_uri uri;
    memset(&uri, 0, sizeof uri);
    snprintf(uri_s, sizeof uri_s, "pkcs11:token=%s", label);
    if (snprintf(pin_path, sizeof pin_path, "%s/pins/%s.pin", rig, label) >= (int)sizeof pin_path)
        return bench_lib_fail(f, OTPCA_ERR_INVALID_ARG, "PIN file path");
    otpca_err err = otpca_p11_uri_parse(uri_s, &uri);
    if (!err) {
        otpca_pin_src pin = {.kind = OTPCA_PIN_FILE, .path = pin_path};
        err = otpca_token_open_uri(ca->p11, &uri, &pin, tok);
    }
    otpca_p11_uri_clear(&uri);
    if (err) {
        snprintf(what, what_cap, "token %s of rig %s", label, rig);
        return bench_lib_fail(f, err, what);
    }
    return 0;
}

int bench_ca_open(struct bench_ca *ca, const char *module, const char *rig,
                  struct bench_failure *f, char *what, size_t what_cap)
{
    otpca_err err;
    otpca_wolf_signer root_signer;
    err = otpca_p11_new(module, &ca->p11);
    if (err) {
        snprintf(what, what_cap, "PKCS#11 module %s", module);
        return bench_lib_fail(f, err, what);
    }
    if (open_token(ca, rig, OTPCA_RIG_ROOT_TOKEN, &ca->root_tok, f, what, what_cap) != 0 ||
        open_token(ca, rig, BENCH_CA_MGR_LABEL, &ca->mgr_tok, f, what, what_cap) != 0)
        return -1;
    if ((err = otpca_token_find(ca->root_tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_ROOT_KEY, NULL, 0,
                                &ca->root_key)) ||
        (err = otpca_token_find(ca->mgr_tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_MANAGER_KEY, NULL, 0,
                                &ca->mgr_key)) ||
        (err = otpca_token_pubkey_sec1(ca->mgr_tok, ca->mgr_key, ca->mgr_pub)))
        return bench_lib_fail(f, err, "token keys " OTPCA_RIG_ROOT_KEY "/" OTPCA_RIG_MANAGER_KEY);
    if ((err = otpca_wolf_signer_init(&root_signer, ca->root_tok, ca->root_key)))
        return bench_lib_fail(f, err, "otpca_wolf_signer_init(root)");
    otpca_cert_req root = {.common_name = "otpca bench root",
                           .organization = "otpca",
                           .is_ca = 1,
                           .path_len = 1,
                           .days = 30};
    otpca_cert_req mgr = {.common_name = "otpca bench manager 01",
                          .organization = "otpca",
                          .subject_sec1 = ca->mgr_pub,
                          .is_ca = 1,
                          .path_len = 0,
                          .days = 30};
    ca->root_der_len = sizeof ca->root_der;
    err = otpca_cert_issue(&root_signer, &root, ca->root_der, &ca->root_der_len);
    if (!err) {
        mgr.issuer_der = ca->root_der;
        mgr.issuer_der_len = ca->root_der_len;
        ca->mgr_der_len = sizeof ca->mgr_der;
        err = otpca_cert_issue(&root_signer, &mgr, ca->mgr_der, &ca->mgr_der_len);
    }
    otpca_wolf_signer_free(&root_signer);
    if (err)
        return bench_lib_fail(f, err, "otpca_cert_issue(root, manager)");
    return 0;
}

void bench_ca_close(struct bench_ca *ca)
{
    otpca_token_destroy(&ca->mgr_tok);
    otpca_token_destroy(&ca->root_tok);
    otpca_p11_destroy(&ca->p11);
}

int bench_ca_verify(const struct bench_ca *ca, const unsigned char *der, size_t der_len)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    if (!cm)
        return -1;
    int ok = wolfSSL_CertManagerLoadCABuffer(cm, ca->root_der, (long)ca->root_der_len,
                                             WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS &&
             wolfSSL_CertManagerLoadCABuffer(cm, ca->mgr_der, (long)ca->mgr_der_len,
                                             WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS &&
             wolfSSL_CertManagerVerifyBuffer(cm, der, (long)der_len, WOLFSSL_FILETYPE_ASN1) ==
                 WOLFSSL_SUCCESS;
    wolfSSL_CertManagerFree(cm);
    return ok;
}

void bench_ca_wolf_cleanup(void)
{
#ifdef FP_ECC
    wc_ecc_fp_free();
#endif
    wolfSSL_Cleanup();
}

const char *bench_ca_sp_word(void) { return OTPCA_WOLFSSL_SP ? "on" : "off"; }

void bench_ca_json_env(const struct bench_ca_env *c)
{
    printf("\"wolfssl\":{\"version\":");
    bench_json_str(stdout, OTPCA_WOLFSSL_VERSION);
    printf(",\"build\":");
    bench_json_str(stdout, OTPCA_WOLFSSL_BUILD);
    printf(",\"sp_ecc\":%s,\"prefix\":", OTPCA_WOLFSSL_SP ? "true" : "false");
    bench_json_str(stdout, OTPCA_WOLFSSL_PREFIX);
    printf(",\"library_version\":");
    bench_json_str(stdout, wolfSSL_lib_version());
    printf(",\"ecc\":");
    bench_json_str(stdout, c->ecc);
    printf("},");
    bench_json_host(stdout, &c->host, 1);
    printf(",\"module\":");
    bench_json_str(stdout, c->module);
    printf(",\"rig\":");
    bench_json_str(stdout, c->rig.dir);
    printf(",\"throwaway_rig\":%s", c->rig.throwaway ? "true" : "false");
}
