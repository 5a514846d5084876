/*
 * COSE_Sign1 (RFC 9052 section 4.2) as otpca uses it: tagged (18), ES256
 * only, protected header exactly {1: -7}, unprotected header with the
 * signer's key id (label 4, 8 bytes) and optionally one certificate
 * (x5chain, label 33, RFC 9360), payload embedded, empty external AAD.
 * Signing goes through a callback so the key may live in a token.
 */
#ifndef OTPCA_PROTO_COSE_H
#define OTPCA_PROTO_COSE_H

#include "otpca/proto/cbor.h"
#include "otpca/proto/p256.h"

#define OTPCA_COSE_TAG_SIGN1 18
#define OTPCA_COSE_HDR_ALG 1
#define OTPCA_COSE_HDR_KID 4
#define OTPCA_COSE_HDR_X5CHAIN 33
#define OTPCA_COSE_ALG_ES256 (-7)
/* Largest certificate carried in x5chain. */
#define OTPCA_COSE_MAX_CERT 2048
/* Bytes a COSE_Sign1 adds around a payload of up to 65535 bytes, without
 * x5chain (tag, array, headers, payload head, signature). */
#define OTPCA_COSE_OVERHEAD 86

typedef struct otpca_signer {
    otpca_sign_fn sign;
    void *ctx;
    uint8_t kid[OTPCA_KID_LEN];
} otpca_signer;

/* A decoded COSE_Sign1; every span points into the input. */
typedef struct otpca_cose_sign1 {
    otpca_buf protected_hdr; /* the encoded protected header */
    otpca_buf kid;
    otpca_buf x5chain; /* one DER certificate, or p == NULL */
    otpca_buf payload;
    otpca_buf sig;
} otpca_cose_sign1;

/*
 * Two-step signing that writes the payload in place (no copy, no malloc):
 * begin() writes everything up to the payload for a payload of exactly
 * payload_len bytes; the caller then writes the payload into e; end()
 * hashes the Sig_structure, signs and appends the signature.
 * x5chain may be {NULL, 0}.
 */
void otpca_cose_sign1_begin(otpca_cbor_enc *e, const otpca_signer *s, otpca_buf x5chain,
                            size_t payload_len, size_t *payload_off);
__attribute__((warn_unused_result)) otpca_err otpca_cose_sign1_end(otpca_cbor_enc *e,
                                                                   const otpca_signer *s,
                                                                   size_t payload_off,
                                                                   size_t payload_len);
/* One-call form with the payload in a buffer. */
__attribute__((warn_unused_result)) otpca_err otpca_cose_sign1_encode(
    const otpca_signer *s, otpca_buf x5chain, const uint8_t *payload, size_t payload_len,
    uint8_t *out, size_t cap, size_t *out_len);

/* Structural decode (no signature check): tag 18, four elements, protected
 * header {1: -7}, kid of 8 bytes, x5chain at most one certificate, 64-byte
 * signature, nothing after. Unknown unprotected labels are skipped. */
__attribute__((warn_unused_result)) otpca_err otpca_cose_sign1_decode(const uint8_t *in, size_t len,
                                                                      otpca_cose_sign1 *out);
/* Checks the signature with a SEC1 public key (33 or 65 bytes) and that the
 * kid names that key (OTPCA_ERR_COSE_HEADER if not). */
__attribute__((warn_unused_result)) otpca_err otpca_cose_sign1_verify(const otpca_cose_sign1 *m,
                                                                      const uint8_t *pub,
                                                                      size_t publen);

#endif
