/* otpca-manager's configuration keys and defaults (config.h). */
#include "otpca/manager/config.h"

#include <stdio.h>

#include "otpca/common/config.h"

#define K(f, d) OTPCA_CONFIG_KEY(otpca_mgr_config, f, d)
static const otpca_config_key keys[] = {
    K(id, NULL),
    K(token, NULL),
    K(ca_key, "ca-key"),
    K(ca_cert, NULL),
    K(curve_key, "curve-secret"),
    K(store, "otpca-manager.db"),
    K(cloud, "tcp://127.0.0.1:7400"),
    K(cloud_notices, "tcp://127.0.0.1:7401"),
    K(cloud_curve_key, NULL),
    K(cloud_sign_key, NULL),
    K(listen, "tcp://127.0.0.1:7500"),
    {"operator", offsetof(otpca_mgr_config, operator_), sizeof(((otpca_mgr_config *)0)->operator_), NULL},
    K(operator_token, NULL),
    K(netkey_file, NULL),
    K(netkey_epoch, "1"),
    K(workers, "2"),
    K(max_skew, "90"),
    K(lockout, "10"),
    K(cert_days, "365"),
    K(pen, "32473"),
    K(window_seconds, "3600"),
    K(max_enroll, "0"),
    /* The time to the next window plus a margin: a week of windows, a day. */
    K(crl_days, "8"),
    K(crl_file, ""),
    K(log_level, "info"),
    K(log_format, "text"),
};

otpca_err otpca_mgr_config_load(const char *path, otpca_mgr_config *cfg, char *err, size_t err_len)
{
    return otpca_config_load(path, "OTPCA_MANAGER_", keys, sizeof keys / sizeof keys[0], cfg, sizeof *cfg, err,
                             err_len);
}

otpca_err otpca_mgr_config_numbers(const otpca_mgr_config *cfg, otpca_mgr_numbers *n, char *err, size_t err_len)
{
    const struct {
        const char *name, *value;
        unsigned long min, max, *out;
    } t[] = {
        {"netkey_epoch", cfg->netkey_epoch, 0, 4294967295ul, &n->netkey_epoch},
        {"workers", cfg->workers, 1, 16, &n->workers},
        {"max_skew", cfg->max_skew, 0, 3600, &n->max_skew},
        {"lockout", cfg->lockout, 1, 1000, &n->lockout},
        {"cert_days", cfg->cert_days, 1, 36500, &n->cert_days},
        {"pen", cfg->pen, 1, 4294967295ul, &n->pen},
        {"window_seconds", cfg->window_seconds, 1, 2592000, &n->window_seconds},
        {"max_enroll", cfg->max_enroll, 0, 100000000, &n->max_enroll},
        {"crl_days", cfg->crl_days, 1, 3650, &n->crl_days},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (otpca_config_uint(t[i].value, t[i].min, t[i].max, t[i].out)) {
            snprintf(err, err_len, "%s must be a number from %lu to %lu", t[i].name, t[i].min, t[i].max);
            return OTPCA_ERR_CONFIG;
        }
    return OTPCA_ERR_OK;
}
