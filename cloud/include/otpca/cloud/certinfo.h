/*
 * What the cloud needs to know about a manager's intermediate CA
 * certificate when it is registered: its P-256 public key and whether it
 * is a CA (basicConstraints CA:TRUE). Parsed with wolfSSL; this header
 * itself pulls in no wolfSSL (or OpenSSL) header.
 */
#ifndef OTPCA_CLOUD_CERTINFO_H
#define OTPCA_CLOUD_CERTINFO_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"

/* Parses a DER certificate (not its signature: nothing is verified) and
 * writes its subject public key in uncompressed SEC1 form, checked to be
 * on P-256, and *is_ca = 1 if it carries basicConstraints CA:TRUE.
 * OTPCA_ERR_CERT if it does not parse, OTPCA_ERR_BAD_KEY if its key is not
 * a P-256 point. */
otpca_err otpca_cert_info(const uint8_t *der, size_t len, uint8_t pub[65], int *is_ca)
    __attribute__((warn_unused_result));

#endif
