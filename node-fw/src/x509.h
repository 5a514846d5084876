/*
 * Internal: the few facts the node core needs from an X.509 certificate
 * (names as raw DER, key, CA constraints, key usage, validity, CN, the
 * signed part and its signature), read with wolfCrypt's certificate
 * parser, and the check that one certificate signed another.
 */
#ifndef OTPCA_NODE_X509_H
#define OTPCA_NODE_X509_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"

#define OTPCA_NODE_X509_NAME_MAX 256
#define OTPCA_NODE_X509_CN_MAX 64

typedef struct otpca_node_x509 {
    const uint8_t *tbs; /* the signed part, inside the input */
    size_t tbs_len;
    uint8_t sig[64]; /* ECDSA-SHA256 signature, r || s */
    uint8_t pub[65]; /* the subject's P-256 key, uncompressed */
    const uint8_t *issuer, *subject; /* raw DER names, inside the input */
    size_t issuer_len, subject_len;
    int is_ca, path_len_set, key_usage_set;
    unsigned path_len, key_usage;
    uint64_t not_before, not_after; /* Unix time */
    char cn[OTPCA_NODE_X509_CN_MAX + 1];
    uint8_t serial[20]; /* the serial number's magnitude, big-endian, no leading zero byte */
    size_t serial_len;
} otpca_node_x509;

/* Parses a DER certificate with an ECDSA-SHA256 signature and a P-256
 * subject key; spans point into der. OTPCA_ERR_CERT for anything else. */
__attribute__((warn_unused_result)) otpca_err otpca_node_x509_parse(const uint8_t *der, size_t len,
                                                                    otpca_node_x509 *out);
/* OTPCA_ERR_OK if issuer's subject is child's issuer and issuer's key signed child. */
__attribute__((warn_unused_result)) otpca_err otpca_node_x509_signed_by(const otpca_node_x509 *child,
                                                                        const otpca_node_x509 *issuer);
/* keyCertSign in the keyUsage bits. */
#define OTPCA_NODE_KU_CERT_SIGN 0x0004u

#endif
