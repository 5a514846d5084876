/* A manager CA certificate's key and CA flag, read with wolfSSL (certinfo.h). */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include "otpca/cloud/certinfo.h"

#include <stdlib.h>
#include <string.h>

#include "otpca/proto/p256.h"
#include "otpca/token/wolf.h"

otpca_err otpca_cert_info(const uint8_t *der, size_t len, uint8_t pub[65], int *is_ca)
{
    uint8_t spki[256];
    word32 spki_len = sizeof spki;
    otpca_err ret = OTPCA_ERR_CERT;
    if (!der || !len || len > 0xffffffffu || !pub || !is_ca)
        return OTPCA_ERR_INVALID_ARG;
    /* DecodedCert is a few kilobytes: off the stack. */
    DecodedCert *c = calloc(1, sizeof *c);
    if (!c)
        return OTPCA_ERR_NOMEM;
    wc_InitDecodedCert(c, der, (word32)len, NULL);
    if (wc_ParseCert(c, CERT_TYPE, NO_VERIFY, NULL) != 0)
        goto out;
    ret = OTPCA_ERR_BAD_KEY;
    if (c->keyOID != ECDSAk || wc_GetPubKeyDerFromCert(c, spki, &spki_len) != 0)
        goto out;
    /* wolfSSL keeps an EC key as its whole SubjectPublicKeyInfo; accept a
     * bare point too, in case a version keeps only that. */
    if (otpca_pubkey_parse(spki, spki_len, pub) != OTPCA_ERR_OK &&
        otpca_p256_pub_normalize(spki, spki_len, pub) != OTPCA_ERR_OK)
        goto out;
    *is_ca = c->extBasicConstSet && c->isCA;
    ret = OTPCA_ERR_OK;
out:
    wc_FreeDecodedCert(c);
    free(c);
    return ret;
}
