/*
 * otpca-manager's configuration: one `key = value` file with environment
 * overrides OTPCA_MANAGER_<KEY> (common/config.h). Numbers are checked by
 * otpca_mgr_config_check, which also names what is missing.
 */
#ifndef OTPCA_MANAGER_CONFIG_H
#define OTPCA_MANAGER_CONFIG_H

#include <stddef.h>

#include "otpca/common/err.h"

#define OTPCA_MGR_CONFIG_VALUE_MAX 1024

typedef struct otpca_mgr_config {
    char id[72];                                  /* manager id, as registered at the cloud */
    char token[OTPCA_MGR_CONFIG_VALUE_MAX];       /* the manager token's PKCS#11 URI (pin-source included) */
    char ca_key[128];                             /* label of the CA key in it */
    char ca_cert[OTPCA_MGR_CONFIG_VALUE_MAX];     /* the manager certificate (PEM or DER) */
    char curve_key[128];                          /* label of the CURVE secret in the token */
    char store[OTPCA_MGR_CONFIG_VALUE_MAX];       /* the journal and trust list (SQLite) */
    char cloud[OTPCA_MGR_CONFIG_VALUE_MAX];       /* the cloud's ROUTER endpoint, or a,b,... (up to 8 instances) */
    char cloud_notices[OTPCA_MGR_CONFIG_VALUE_MAX]; /* its PUB endpoint(s), one per instance */
    char cloud_curve_key[64];                     /* the cloud's CURVE public key, Z85 */
    char cloud_sign_key[160];                     /* the cloud's signing key, SEC1 hex */
    char listen[OTPCA_MGR_CONFIG_VALUE_MAX];      /* the node endpoint (ROUTER) */
    char operator_[72];                           /* the operator id that opens windows */
    char operator_token[OTPCA_MGR_CONFIG_VALUE_MAX]; /* the operator token's URI (TOTP computed in it) */
    char netkey_file[OTPCA_MGR_CONFIG_VALUE_MAX]; /* the network key handed to nodes (hex, 16-64 bytes) */
    char netkey_epoch[16];
    char workers[16], max_skew[16], lockout[16], cert_days[16], pen[16];
    char window_seconds[16], max_enroll[16];
    char crl_days[16];                            /* CRL nextUpdate: thisUpdate + this many days */
    char crl_file[OTPCA_MGR_CONFIG_VALUE_MAX];    /* where each signed CRL is also written (DER), or "" */
    char log_level[32], log_format[32];
} otpca_mgr_config;

otpca_err otpca_mgr_config_load(const char *path, otpca_mgr_config *cfg, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The numbers, checked. */
typedef struct otpca_mgr_numbers {
    unsigned long netkey_epoch, workers, max_skew, lockout, cert_days, pen, window_seconds, max_enroll, crl_days;
} otpca_mgr_numbers;
otpca_err otpca_mgr_config_numbers(const otpca_mgr_config *cfg, otpca_mgr_numbers *n, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
