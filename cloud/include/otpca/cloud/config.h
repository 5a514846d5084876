/*
 * otpca-cloud's configuration: one `key = value` file (# comments, blank
 * lines) with environment overrides OTPCA_CLOUD_<KEY> (upper case), then
 * defaults. Unknown keys are errors, so a typo never goes unnoticed.
 */
#ifndef OTPCA_CLOUD_CONFIG_H
#define OTPCA_CLOUD_CONFIG_H

#include <stddef.h>

#include "otpca/common/err.h"

#define OTPCA_CLOUD_CONFIG_VALUE_MAX 1024

typedef struct otpca_cloud_config {
    char store[OTPCA_CLOUD_CONFIG_VALUE_MAX];    /* store URL or SQLite path */
    char token[OTPCA_CLOUD_CONFIG_VALUE_MAX];    /* PKCS#11 URI of the cloud token, pin-source included */
    char sign_key[OTPCA_CLOUD_CONFIG_VALUE_MAX]; /* label of the signing key */
    char wrap_key[OTPCA_CLOUD_CONFIG_VALUE_MAX]; /* label of the seed-wrapping AES key */
    char curve_key[OTPCA_CLOUD_CONFIG_VALUE_MAX]; /* label of the CURVE secret (private data object) */
    char listen[OTPCA_CLOUD_CONFIG_VALUE_MAX];   /* ROUTER endpoint for managers */
    char notices[OTPCA_CLOUD_CONFIG_VALUE_MAX];  /* PUB endpoint for notices */
    char workers[16];                            /* request worker threads */
    char max_skew[16];                           /* seconds a request's time may be off */
    char lease_max_seconds[16];                  /* longest window a lease grants */
    char lease_max_enroll[16];                   /* most enrollments a lease grants */
    char log_level[32];
    char log_format[32];
} otpca_cloud_config;

/* Defaults, then the file at path (NULL or "": none; a missing file named
 * explicitly is an error), then the environment. On OTPCA_ERR_CONFIG, err
 * (if not NULL) holds a sentence naming the file, line and key. */
otpca_err otpca_cloud_config_load(const char *path, otpca_cloud_config *cfg, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* A number in [min, max] (decimal, nothing else): OTPCA_ERR_CONFIG if not. */
otpca_err otpca_cloud_config_uint(const char *value, unsigned long min, unsigned long max, unsigned long *out)
    __attribute__((warn_unused_result));

#endif
