/* otpca-cloud's configuration keys and defaults (config.h); the parser is
 * common/config.c. */
#include "otpca/cloud/config.h"

#include <stddef.h>

#include "otpca/common/config.h"

#define K(f, d) OTPCA_CONFIG_KEY(otpca_cloud_config, f, d)
static const otpca_config_key keys[] = {
    K(store, "otpca-cloud.db"),
    K(token, NULL),
    K(sign_key, "cloud-sign"),
    K(wrap_key, "seed-wrap"),
    K(curve_key, "curve-secret"),
    K(listen, "tcp://127.0.0.1:7400"),
    K(notices, "tcp://127.0.0.1:7401"),
    K(workers, "2"),
    K(max_skew, "90"),
    K(lease_max_seconds, "86400"),
    K(lease_max_enroll, "100000"),
    K(log_level, "info"),
    K(log_format, "text"),
};

otpca_err otpca_cloud_config_load(const char *path, otpca_cloud_config *cfg, char *err, size_t err_len)
{
    return otpca_config_load(path, "OTPCA_CLOUD_", keys, sizeof keys / sizeof keys[0], cfg, sizeof *cfg, err, err_len);
}

otpca_err otpca_cloud_config_uint(const char *value, unsigned long min, unsigned long max, unsigned long *out)
{
    return otpca_config_uint(value, min, max, out);
}
