/*
 * Certificate revocation lists (RFC 5280 section 5) signed by a CA key
 * that stays inside a PKCS#11 token: a manager's CRL of the node
 * certificates it issued, and the root's CRL of revoked managers. Built
 * and read with OpenSSL's X509_CRL, because wolfSSL 5.5 can read CRLs but
 * not make them; the signature itself is made by the token
 * (otpca_token_sign_digest), through an EC key method, so the private key
 * never leaves it. The API has no OpenSSL types: include it anywhere (the
 * OpenSSL headers stay in crl.c, away from wolfSSL's).
 */
#ifndef OTPCA_TOKEN_CRL_H
#define OTPCA_TOKEN_CRL_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"
#include "otpca/token/token.h"

#define OTPCA_CRL_SERIAL_MAX 20 /* RFC 5280 4.1.2.2: serial numbers up to 20 octets */

/* RFC 5280 5.3.1 CRLReason values (7 is not used). */
enum {
    OTPCA_CRL_UNSPECIFIED = 0, OTPCA_CRL_KEY_COMPROMISE = 1, OTPCA_CRL_CA_COMPROMISE = 2,
    OTPCA_CRL_AFFILIATION_CHANGED = 3, OTPCA_CRL_SUPERSEDED = 4, OTPCA_CRL_CESSATION = 5,
    OTPCA_CRL_CERTIFICATE_HOLD = 6, OTPCA_CRL_REMOVE_FROM_CRL = 8, OTPCA_CRL_PRIVILEGE_WITHDRAWN = 9,
    OTPCA_CRL_AA_COMPROMISE = 10,
};

typedef struct otpca_crl_entry {
    unsigned char serial[OTPCA_CRL_SERIAL_MAX]; /* big-endian, as in the certificate */
    size_t serial_len;
    int64_t revoked_at; /* seconds since the epoch */
    int reason;         /* OTPCA_CRL_*; 0 writes no reasonCode extension (5.3.1) */
} otpca_crl_entry;

typedef struct otpca_crl_info {
    uint64_t number;     /* cRLNumber */
    int64_t this_update;
    int64_t next_update;
    size_t entries;
} otpca_crl_info;

/* 1 if reason is a CRLReason a CRL may carry here (0..10 without 7 and 8:
 * removeFromCRL belongs to delta CRLs, which otpca does not make). */
int otpca_crl_reason_ok(int reason);
/* A reason from the command line: its number, or its RFC 5280 name as
 * `openssl ca -crl_reason` spells it (keyCompromise, CACompromise,
 * affiliationChanged, superseded, cessationOfOperation, certificateHold,
 * privilegeWithdrawn, AACompromise, unspecified; case-insensitive). -1 if
 * it is neither or otpca_crl_reason_ok() refuses it. */
int otpca_crl_reason_parse(const char *s);

/* The serial number and notAfter of a certificate (DER or PEM), to revoke
 * it: e->serial/serial_len set, the rest left alone. OTPCA_ERR_CERT if it
 * does not parse or its serial is longer than 20 octets. */
otpca_err otpca_crl_cert_serial(const unsigned char *cert, size_t len, otpca_crl_entry *e, int64_t *not_after)
    __attribute__((warn_unused_result));

/* OTPCA_ERR_OK if cert (DER or PEM) names issuer_cert's subject as its
 * issuer and carries its signature; OTPCA_ERR_SIGNATURE if not,
 * OTPCA_ERR_CERT if either does not parse. */
otpca_err otpca_crl_cert_issued_by(const unsigned char *cert, size_t len, const unsigned char *issuer_cert,
                                   size_t issuer_len) __attribute__((warn_unused_result));

/* Builds a v2 CRL for the CA whose certificate is issuer_cert (DER or
 * PEM): issuer = its subject, authorityKeyIdentifier = its
 * subjectKeyIdentifier, cRLNumber = number, thisUpdate/nextUpdate, one
 * entry per e[i] (reasonCode when non-zero), signed ecdsa-with-SHA256 by
 * key in tok; then verifies the result under the certificate's key
 * (OTPCA_ERR_SIGNATURE if key is not that certificate's). *der is
 * malloc'ed, owned by the caller. OTPCA_ERR_INVALID_ARG for next_update <=
 * this_update, a bad reason or serial; OTPCA_ERR_CERT for an issuer that
 * does not parse or is not a CA; token errors as they come. */
otpca_err otpca_crl_sign(otpca_token_t *tok, otpca_obj_t key, const unsigned char *issuer_cert, size_t issuer_len,
                         uint64_t number, int64_t this_update, int64_t next_update, const otpca_crl_entry *e,
                         size_t n, unsigned char **der, size_t *der_len) __attribute__((warn_unused_result));

/* Reads a CRL (DER or PEM) and checks it was issued by issuer_cert (DER
 * or PEM): issuer name and signature. info filled; if entries is not
 * NULL, *entries is a malloc'ed array of info->entries items (NULL when
 * there are none), owned by the caller. OTPCA_ERR_CERT if either does not
 * parse or the CRL has no cRLNumber, OTPCA_ERR_SIGNATURE if the issuer or
 * the signature does not match. */
otpca_err otpca_crl_read(const unsigned char *crl, size_t len, const unsigned char *issuer_cert, size_t issuer_len,
                         otpca_crl_info *info, otpca_crl_entry **entries) __attribute__((warn_unused_result));

/* The CRL (DER) as PEM "X509 CRL", NUL-terminated, malloc'ed. */
otpca_err otpca_crl_to_pem(const unsigned char *der, size_t len, char **pem, size_t *pem_len)
    __attribute__((warn_unused_result));

#endif
