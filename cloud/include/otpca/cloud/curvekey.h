/*
 * A daemon's ZeroMQ CURVE key pair, kept in its token: the secret is a
 * private data object (otpca_token_data_put), so the cloud or a manager
 * has no transport identity without its token. Library otpca-curvekey.
 */
#ifndef OTPCA_CLOUD_CURVEKEY_H
#define OTPCA_CLOUD_CURVEKEY_H

#include "otpca/common/err.h"
#include "otpca/token/token.h"

/* Loads the secret labelled `label` from tok, or (create) generates a key
 * pair with libzmq and stores the secret first; pub is derived from it.
 * secret must be locked memory the caller wipes. OBJECT_NOT_FOUND without
 * create if the token has none. */
otpca_err otpca_curve_key(otpca_token_t *tok, const char *label, int create, unsigned char pub[32],
                          unsigned char secret[32]) __attribute__((warn_unused_result));

#endif
