/*
 * wolfCrypt bridge: lets wolfSSL sign (wc_SignCert, wc_ecc_sign_hash)
 * with a P-256 private key that stays inside a PKCS#11 token. Each signer
 * registers a wolfCrypt crypto-callback device; its ecc_key carries only
 * the public key and the device id, and every ECDSA signature it makes is
 * computed by the token. Also the certificate helpers that use it.
 *
 * Includes wolfSSL headers: never include it beside OpenSSL/libp11 ones.
 */
#ifndef OTPCA_TOKEN_WOLF_H
#define OTPCA_TOKEN_WOLF_H

#include <stddef.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "otpca/token/token.h"

typedef struct otpca_wolf_signer {
    otpca_token_t *tok; /* not owned; one signer per token session/thread */
    otpca_obj_t key;
    int dev_id;
    ecc_key ecc; /* public key + dev_id; pass to wolfCrypt as the signing key */
    unsigned long signatures;
} otpca_wolf_signer;

/* Bind a token private key to wolfCrypt under a fresh device id. The
 * signer must stay at the same address until otpca_wolf_signer_free(). */
otpca_err otpca_wolf_signer_init(otpca_wolf_signer *s, otpca_token_t *tok, otpca_obj_t key)
    __attribute__((warn_unused_result));
void otpca_wolf_signer_free(otpca_wolf_signer *s);

/* PEM "PUBLIC KEY" (SubjectPublicKeyInfo) for a SEC1 P-256 point; *pem_len
 * is the room in, the length (without NUL, which is written) out. */
otpca_err otpca_pubkey_sec1_to_pem(const unsigned char sec1[OTPCA_EC_P256_SEC1_LEN], char *pem,
                                   size_t *pem_len) __attribute__((warn_unused_result));
/* Parse PEM or DER SubjectPublicKeyInfo (P-256) into SEC1. */
otpca_err otpca_pubkey_parse(const unsigned char *in, size_t len,
                             unsigned char sec1[OTPCA_EC_P256_SEC1_LEN])
    __attribute__((warn_unused_result));

#define OTPCA_CERT_DER_MAX 2048
#define OTPCA_CERT_PEM_MAX 3072

typedef struct otpca_cert_req {
    const char *common_name;  /* subject CN (required) */
    const char *organization; /* subject O, optional */
    const unsigned char *subject_sec1; /* subject public key; NULL = signer's (self-signed) */
    const unsigned char *issuer_der;   /* issuer certificate; NULL = self-signed */
    size_t issuer_der_len;
    int is_ca;
    int path_len; /* for CAs; < 0 = no limit */
    unsigned days; /* validity; wolfSSL starts it one day in the past (clock skew) */
    /* End-entity profile (ignored for CAs): keyUsage is digitalSignature,
     * keyAgreement; ext_key_usage a wc_SetExtKeyUsage list ("clientAuth",
     * "serverAuth,clientAuth"; NULL: none); san_uris the subjectAltName
     * URIs (e.g. RFC 9039 "urn:dev:mac:..."), at most OTPCA_CERT_SAN_MAX. */
    const char *ext_key_usage;
    const char *const *san_uris;
    size_t n_san;
    WC_RNG *rng; /* a caller's generator to reuse (hot path); NULL: one per call */
} otpca_cert_req;
#define OTPCA_CERT_SAN_MAX 8
#define OTPCA_CERT_SAN_URI_MAX 255

/* Build and sign an X.509 v3 certificate (ECDSA-SHA256, random 16-byte
 * serial, SKI, AKI, basicConstraints, keyUsage) with the signer's token
 * key. der must hold OTPCA_CERT_DER_MAX bytes; *der_len out. */
otpca_err otpca_cert_issue(otpca_wolf_signer *signer, const otpca_cert_req *req, unsigned char *der,
                           size_t *der_len) __attribute__((warn_unused_result));
/* DER certificate to PEM (NUL-terminated); *pem_len room in, length out. */
otpca_err otpca_cert_der_to_pem(const unsigned char *der, size_t der_len, char *pem, size_t *pem_len)
    __attribute__((warn_unused_result));
/* PEM or DER certificate to DER. */
otpca_err otpca_cert_to_der(const unsigned char *in, size_t len, unsigned char *der, size_t *der_len)
    __attribute__((warn_unused_result));

#endif
