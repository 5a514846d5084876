/*
 * The `key = value` configuration files of the otpca daemons: one file
 * (# comments, blank lines) with environment overrides PREFIX<KEY> (the
 * key in upper case), over defaults. Unknown keys are errors, so a typo
 * never goes unnoticed. Each daemon describes its keys in a table of
 * fixed-size string fields of its own config struct.
 */
#ifndef OTPCA_COMMON_CONFIG_H
#define OTPCA_COMMON_CONFIG_H

#include <stddef.h>

#include "otpca/common/err.h"

typedef struct otpca_config_key {
    const char *name;
    size_t off, len;    /* the field: offset in the struct and its size */
    const char *dflt;   /* default value, or NULL for "" */
} otpca_config_key;

/* A table row for field `f` of struct type `T`. */
#define OTPCA_CONFIG_KEY(T, f, d) {#f, offsetof(T, f), sizeof(((T *)0)->f), d}

/* Zeroes cfg, sets the defaults, reads the file at path (NULL or "": none;
 * a missing file named explicitly is an error), then the environment
 * (env_prefix, e.g. "OTPCA_CLOUD_"). On OTPCA_ERR_CONFIG, err (if not
 * NULL) holds a sentence naming the file, line and key. */
otpca_err otpca_config_load(const char *path, const char *env_prefix, const otpca_config_key *keys, size_t nkeys,
                            void *cfg, size_t cfg_size, char *err, size_t err_len) __attribute__((warn_unused_result));

/* A number in [min, max] (decimal, nothing else): OTPCA_ERR_CONFIG if not. */
otpca_err otpca_config_uint(const char *value, unsigned long min, unsigned long max, unsigned long *out)
    __attribute__((warn_unused_result));

/* The same rule for a command-line option value, into a long (max at
 * most LONG_MAX): 0, or -1 if it is not a number in [min, max]. */
int otpca_option_long(const char *text, unsigned long min, unsigned long max, long *out)
    __attribute__((warn_unused_result));

#endif
