/*
 * Certificate facts for the node core (x509.h) from wolfCrypt's parser
 * (wc_ParseCert without verification: the node checks dates against its
 * own time, not the host clock, and signatures against keys it chose),
 * plus the issuer check: names compared as raw DER, the signature over the
 * TBSCertificate verified with the issuer's key through libotpca-proto.
 * wolfCrypt's DecodedCert (a few kilobytes) lives on the caller's stack
 * for the one call. The parser may allocate for some extensions (e.g.
 * wolfSSL's DNS_entry list for subjectAltName); node-fw/README.md says
 * what was measured.
 */
#include "x509.h"

#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "otpca/proto/p256.h"

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const uint8_t *p, size_t n, unsigned *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        *v = *v * 10 + (unsigned)(p[i] - '0');
    }
    return 0;
}

/* UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ to Unix time. */
static otpca_err asn_time(const uint8_t *raw, int raw_len, uint64_t *out)
{
    const byte *d = NULL;
    byte fmt = 0;
    int len = 0;
    unsigned y, mo, da, h, mi, s;
    if (!raw || wc_GetDateInfo(raw, raw_len, &d, &fmt, &len) != 0 || !d)
        return OTPCA_ERR_CERT;
    size_t yl = fmt == ASN_UTC_TIME ? 2 : fmt == ASN_GENERALIZED_TIME ? 4 : 0;
    if (yl == 0 || (size_t)len != yl + 11 || d[yl + 10] != 'Z' || digits(d, yl, &y) || digits(d + yl, 2, &mo) ||
        digits(d + yl + 2, 2, &da) || digits(d + yl + 4, 2, &h) || digits(d + yl + 6, 2, &mi) ||
        digits(d + yl + 8, 2, &s) || mo < 1 || mo > 12 || da < 1 || da > 31 || h > 23 || mi > 59 || s > 60)
        return OTPCA_ERR_CERT;
    if (yl == 2)
        y += y >= 50 ? 1900 : 2000; /* RFC 5280 4.1.2.5.1 */
    int64_t days = days_from_civil(y, mo, da);
    if (days < 0)
        return OTPCA_ERR_CERT;
    *out = (uint64_t)days * 86400u + h * 3600u + mi * 60u + s;
    return OTPCA_ERR_OK;
}

otpca_err otpca_node_x509_parse(const uint8_t *der, size_t len, otpca_node_x509 *out)
{
    DecodedCert dc;
    otpca_err ret = OTPCA_ERR_CERT;
    byte r[32], s[32];
    word32 rl = sizeof r, sl = sizeof s;
    memset(out, 0, sizeof *out);
    if (!der || len == 0 || len > 0xffffu)
        return OTPCA_ERR_CERT;
    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    if (wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) != 0)
        goto out;
    if (dc.signatureOID != CTC_SHA256wECDSA || dc.keyOID != ECDSAk || dc.pkCurveOID != ECC_SECP256R1_OID ||
        dc.sigIndex <= dc.certBegin || dc.sigIndex > len || !dc.signature || !dc.publicKey)
        goto out;
    /* publicKey is the SubjectPublicKeyInfo; its BIT STRING ends with the SEC1 point. */
    if (dc.pubKeySize < OTPCA_P256_PUB_LEN + 3 || dc.publicKey[dc.pubKeySize - 68] != 0x03 ||
        dc.publicKey[dc.pubKeySize - 67] != 0x42 || dc.publicKey[dc.pubKeySize - 66] != 0x00 ||
        otpca_p256_pub_normalize(dc.publicKey + dc.pubKeySize - OTPCA_P256_PUB_LEN, OTPCA_P256_PUB_LEN, out->pub) !=
            OTPCA_ERR_OK)
        goto out;
    if (wc_ecc_sig_to_rs(dc.signature, dc.sigLength, r, &rl, s, &sl) != 0 || rl > 32 || sl > 32)
        goto out;
    memcpy(out->sig + 32 - rl, r, rl);
    memcpy(out->sig + 64 - sl, s, sl);
    out->tbs = der + dc.certBegin;
    out->tbs_len = dc.sigIndex - dc.certBegin;
    if (!dc.issuerRaw || !dc.subjectRaw || dc.issuerRawLen <= 0 || dc.subjectRawLen <= 0)
        goto out;
    out->issuer = dc.issuerRaw;
    out->issuer_len = (size_t)dc.issuerRawLen;
    out->subject = dc.subjectRaw;
    out->subject_len = (size_t)dc.subjectRawLen;
    {
        /* As OpenSSL's BN_bn2bin gives it from a CRL: no sign byte. */
        const byte *sp = dc.serial;
        int sn = dc.serialSz;
        while (sn > 1 && sp[0] == 0) {
            sp++;
            sn--;
        }
        if (sn <= 0 || sn > (int)sizeof out->serial)
            goto out;
        memcpy(out->serial, sp, (size_t)sn);
        out->serial_len = (size_t)sn;
    }
    out->is_ca = dc.isCA;
    out->path_len_set = dc.pathLengthSet;
    out->path_len = dc.pathLength;
    out->key_usage_set = dc.extKeyUsageSet;
    out->key_usage = dc.extKeyUsage;
    if (asn_time(dc.beforeDate, dc.beforeDateLen, &out->not_before) != OTPCA_ERR_OK ||
        asn_time(dc.afterDate, dc.afterDateLen, &out->not_after) != OTPCA_ERR_OK)
        goto out;
    if (dc.subjectCN && dc.subjectCNLen > 0) {
        if (dc.subjectCNLen > OTPCA_NODE_X509_CN_MAX)
            goto out;
        memcpy(out->cn, dc.subjectCN, (size_t)dc.subjectCNLen);
    }
    ret = OTPCA_ERR_OK;
out:
    wc_FreeDecodedCert(&dc);
    if (ret != OTPCA_ERR_OK)
        memset(out, 0, sizeof *out);
    return ret;
}

otpca_err otpca_node_x509_signed_by(const otpca_node_x509 *child, const otpca_node_x509 *issuer)
{
    uint8_t h[32];
    if (child->issuer_len != issuer->subject_len || memcmp(child->issuer, issuer->subject, child->issuer_len) != 0)
        return OTPCA_ERR_CERT;
    otpca_sha256(child->tbs, child->tbs_len, h);
    return otpca_p256_verify(issuer->pub, OTPCA_P256_PUB_LEN, h, child->sig) == OTPCA_ERR_OK ? OTPCA_ERR_OK
                                                                                            : OTPCA_ERR_SIGNATURE;
}
