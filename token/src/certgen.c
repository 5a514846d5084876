/*
 * X.509 certificates and public keys with wolfCrypt: issue a certificate
 * signed through a token signer (wc_MakeCert + wc_SignCert), and convert
 * keys and certificates between SEC1, DER and PEM.
 */
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "otpca/common/log.h"
#include "otpca/token/wolf.h"

otpca_err otpca_pubkey_sec1_to_pem(const unsigned char sec1[OTPCA_EC_P256_SEC1_LEN], char *pem,
                                   size_t *pem_len)
{
    ecc_key k;
    unsigned char der[128];
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (wc_ecc_init(&k) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_ecc_import_x963_ex(sec1, OTPCA_EC_P256_SEC1_LEN, &k, ECC_SECP256R1) != 0)
        goto out;
    int n = wc_EccPublicKeyToDer(&k, der, sizeof der, 1);
    if (n <= 0)
        goto out;
    int m = wc_DerToPem(der, (word32)n, (byte *)pem, (word32)(*pem_len > 0 ? *pem_len - 1 : 0),
                        PUBLICKEY_TYPE);
    if (m <= 0) {
        ret = OTPCA_ERR_BUFFER_TOO_SMALL;
        goto out;
    }
    pem[m] = '\0';
    *pem_len = (size_t)m;
    ret = OTPCA_ERR_OK;
out:
    wc_ecc_free(&k);
    return ret;
}

otpca_err otpca_pubkey_parse(const unsigned char *in, size_t len,
                             unsigned char sec1[OTPCA_EC_P256_SEC1_LEN])
{
    unsigned char der[256];
    const unsigned char *d = in;
    word32 dlen = (word32)len, idx = 0, outlen = OTPCA_EC_P256_SEC1_LEN;
    ecc_key k;
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (len > 5 && memcmp(in, "-----", 5) == 0) {
        int n = wc_PubKeyPemToDer(in, (int)len, der, sizeof der);
        if (n <= 0)
            return OTPCA_ERR_INVALID_ARG;
        d = der;
        dlen = (word32)n;
    }
    if (wc_ecc_init(&k) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_EccPublicKeyDecode(d, &idx, &k, dlen) != 0 || wc_ecc_get_curve_id(k.idx) != ECC_SECP256R1 ||
        wc_ecc_point_is_on_curve(&k.pubkey, k.idx) != 0) {
        ret = OTPCA_ERR_INVALID_ARG;
        goto out;
    }
    if (wc_ecc_export_x963(&k, sec1, &outlen) != 0 || outlen != OTPCA_EC_P256_SEC1_LEN)
        goto out;
    ret = OTPCA_ERR_OK;
out:
    wc_ecc_free(&k);
    return ret;
}

/* subjectAltName as wolfSSL wants it in Cert.altNames: the DER of
 * GeneralNames, SEQUENCE OF uniformResourceIdentifier [6] IA5String.
 * Written by hand because wolfSSL 5.5.4 has no API that builds it (its
 * wc_SetAltNames* copy the names of an existing certificate). */
static int san_der(const char *const *uris, size_t n, unsigned char *out, size_t cap)
{
    size_t body = 0, pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(uris[i]);
        if (l == 0 || l > OTPCA_CERT_SAN_URI_MAX)
            return -1;
        for (size_t k = 0; k < l; k++)
            if ((unsigned char)uris[i][k] < 0x21 || (unsigned char)uris[i][k] > 0x7e)
                return -1; /* IA5String, and a URI has no spaces */
        body += (l < 128 ? 2 : 3) + l;
    }
    size_t head = body < 128 ? 2 : body < 256 ? 3 : 4;
    if (head + body > cap)
        return -1;
    out[pos++] = 0x30;
    if (body >= 256) {
        out[pos++] = 0x82;
        out[pos++] = (unsigned char)(body >> 8);
    } else if (body >= 128) {
        out[pos++] = 0x81;
    }
    out[pos++] = (unsigned char)body;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(uris[i]);
        out[pos++] = 0x86; /* [6] IMPLICIT IA5String */
        if (l >= 128)
            out[pos++] = 0x81;
        out[pos++] = (unsigned char)l;
        memcpy(out + pos, uris[i], l);
        pos += l;
    }
    return (int)pos;
}

otpca_err otpca_cert_issue(otpca_wolf_signer *signer, const otpca_cert_req *req, unsigned char *der,
                           size_t *der_len)
{
    Cert cert;
    WC_RNG rng;
    ecc_key subject;
    ecc_key *subj = &signer->ecc;
    int have_subject = 0, have_rng = 0, n;
    otpca_err ret = OTPCA_ERR_CERT;

    if (!req->common_name || !*req->common_name || strlen(req->common_name) >= CTC_NAME_SIZE ||
        (req->organization && strlen(req->organization) >= CTC_NAME_SIZE) || req->days == 0 ||
        *der_len < OTPCA_CERT_DER_MAX || req->n_san > OTPCA_CERT_SAN_MAX || (req->n_san && !req->san_uris))
        return OTPCA_ERR_INVALID_ARG;
    WC_RNG *r = req->rng;
    if (wc_InitCert(&cert) != 0 || (!r && wc_InitRng(&rng) != 0))
        return OTPCA_ERR_CRYPTO;
    if (!r) {
        r = &rng;
        have_rng = 1;
    }
    if (req->subject_sec1) {
        if (wc_ecc_init(&subject) != 0)
            goto out;
        have_subject = 1;
        /* Import does not check the point; a certificate must never carry
         * a key that is not on the curve. */
        if (wc_ecc_import_x963_ex(req->subject_sec1, OTPCA_EC_P256_SEC1_LEN, &subject, ECC_SECP256R1) != 0 ||
            wc_ecc_point_is_on_curve(&subject.pubkey, subject.idx) != 0) {
            ret = OTPCA_ERR_INVALID_ARG;
            goto out;
        }
        subj = &subject;
    }
    cert.sigType = CTC_SHA256wECDSA;
    cert.daysValid = (int)req->days;
    strncpy(cert.subject.commonName, req->common_name, CTC_NAME_SIZE - 1);
    if (req->organization)
        strncpy(cert.subject.org, req->organization, CTC_NAME_SIZE - 1);
    /* RFC 5280 §4.1.2.2: positive, at most 20 octets; 16 random bytes with
     * the top bit cleared. */
    if (wc_RNG_GenerateBlock(r, cert.serial, 16) != 0)
        goto out;
    cert.serial[0] &= 0x7f;
    cert.serial[0] |= 0x01;
    cert.serialSz = 16;
    if (req->is_ca) {
        cert.isCA = 1;
        if (req->path_len >= 0) {
            cert.pathLen = (byte)req->path_len;
            cert.pathLenSet = 1;
        }
        n = wc_SetKeyUsage(&cert, "keyCertSign,cRLSign");
    } else {
        n = wc_SetKeyUsage(&cert, "digitalSignature,keyAgreement");
        if (n == 0 && req->ext_key_usage)
            n = wc_SetExtKeyUsage(&cert, req->ext_key_usage);
        if (n == 0 && req->n_san) {
            int m = san_der(req->san_uris, req->n_san, cert.altNames, sizeof cert.altNames);
            if (m < 0) {
                ret = OTPCA_ERR_INVALID_ARG;
                goto out;
            }
            cert.altNamesSz = m;
        }
    }
    if (n != 0)
        goto out;
    if (wc_SetSubjectKeyIdFromPublicKey(&cert, NULL, subj) != 0 ||
        wc_SetAuthKeyIdFromPublicKey(&cert, NULL, &signer->ecc) != 0)
        goto out;
    if (req->issuer_der) {
        if (wc_SetIssuerBuffer(&cert, req->issuer_der, (int)req->issuer_der_len) != 0) {
            log_error("issuer certificate could not be parsed");
            ret = OTPCA_ERR_INVALID_ARG;
            goto out;
        }
    } else {
        cert.selfSigned = 1;
    }
    n = wc_MakeCert(&cert, der, (word32)*der_len, NULL, subj, r);
    if (n <= 0) {
        log_error("wc_MakeCert: %d", n);
        goto out;
    }
    n = wc_SignCert(cert.bodySz, cert.sigType, der, (word32)*der_len, NULL, &signer->ecc, r);
    if (n <= 0) {
        log_error("wc_SignCert: %d", n);
        ret = n == WC_HW_E ? OTPCA_ERR_PKCS11 : OTPCA_ERR_CERT;
        goto out;
    }
    *der_len = (size_t)n;
    ret = OTPCA_ERR_OK;
out:
    if (have_subject)
        wc_ecc_free(&subject);
    if (have_rng)
        wc_FreeRng(&rng);
    return ret;
}

otpca_err otpca_cert_der_to_pem(const unsigned char *der, size_t der_len, char *pem, size_t *pem_len)
{
    if (*pem_len == 0)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    int m = wc_DerToPem(der, (word32)der_len, (byte *)pem, (word32)(*pem_len - 1), CERT_TYPE);
    if (m <= 0)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    pem[m] = '\0';
    *pem_len = (size_t)m;
    return OTPCA_ERR_OK;
}

otpca_err otpca_cert_to_der(const unsigned char *in, size_t len, unsigned char *der, size_t *der_len)
{
    if (len > 5 && memcmp(in, "-----", 5) == 0) {
        int n = wc_CertPemToDer(in, (int)len, der, (int)*der_len, CERT_TYPE);
        if (n <= 0)
            return OTPCA_ERR_CERT;
        *der_len = (size_t)n;
        return OTPCA_ERR_OK;
    }
    if (len > *der_len)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    memcpy(der, in, len);
    *der_len = len;
    return OTPCA_ERR_OK;
}
