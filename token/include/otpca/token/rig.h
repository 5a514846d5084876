/*
 * The SoftHSM test rig: one directory holding a SoftHSM configuration and
 * tokens for an offline root, the cloud, M managers with their operator
 * tokens, and N nodes (device key + TOTP seed each), plus the factory
 * manifest the cloud imports; the cloud token also holds the AES-256 key
 * that seals the TOTP seeds it stores. Layout (all secrets 0600):
 *
 *   DIR/softhsm2.conf     SoftHSM config (export SOFTHSM2_CONF=DIR/softhsm2.conf)
 *   DIR/tokens/           SoftHSM token store
 *   DIR/pins/LABEL.pin    user PIN of each token (pin-source=file:...)
 *   DIR/manifest.csv      serial,mac,public_key,seed,algorithm,digits,period
 *   DIR/operators.csv     operator,token,seed,algorithm,digits,period
 *   DIR/rig.conf          key = value summary (labels, counts, module)
 *
 * Token labels: otpca-root, otpca-cloud, otpca-mgr-01.., otpca-op-01..,
 * node-000001..; key labels are the OTPCA_RIG_* constants below.
 */
#ifndef OTPCA_TOKEN_RIG_H
#define OTPCA_TOKEN_RIG_H

#include "otpca/common/err.h"

#define OTPCA_RIG_ROOT_TOKEN "otpca-root"
#define OTPCA_RIG_CLOUD_TOKEN "otpca-cloud"
#define OTPCA_RIG_MANAGER_FMT "otpca-mgr-%02u"
#define OTPCA_RIG_OPERATOR_FMT "otpca-op-%02u"
#define OTPCA_RIG_NODE_FMT "node-%06u"
#define OTPCA_RIG_ROOT_KEY "root-key"
#define OTPCA_RIG_CLOUD_KEY "cloud-sign"
#define OTPCA_RIG_CLOUD_WRAP "seed-wrap" /* AES-256: the cloud's TOTP seeds at rest */
#define OTPCA_RIG_MANAGER_KEY "ca-key"
#define OTPCA_RIG_OPERATOR_SEED "op-totp"
#define OTPCA_RIG_DEVICE_KEY "device-key"
#define OTPCA_RIG_DEVICE_SEED "totp"
#define OTPCA_RIG_MAX_NODES 999999u
#define OTPCA_RIG_MAX_MANAGERS 99u

/* Called after each token is ready (done of total). */
typedef void (*otpca_rig_progress)(unsigned done, unsigned total, void *arg);

/* Create the rig in dir (created if missing; must not already hold
 * tokens). Sets SOFTHSM2_CONF for this process and loads the module at
 * module_path (NULL = default), so no PKCS#11 module may be loaded yet.
 * Errors: EXISTS (dir already has a rig), IO, STATE, and token errors. */
otpca_err otpca_rig_create(const char *dir, const char *module_path, unsigned nodes,
                           unsigned managers, otpca_rig_progress progress, void *arg)
    __attribute__((warn_unused_result));

#endif
