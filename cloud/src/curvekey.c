/* CURVE key pairs kept in a token (curvekey.h). */
#include "otpca/cloud/curvekey.h"

#include <zmq.h>

#include "otpca/common/log.h"
#include "otpca/common/secmem.h"

otpca_err otpca_curve_key(otpca_token_t *tok, const char *label, int create, unsigned char pub[32],
                          unsigned char secret[32])
{
    char *z = otpca_secmem_alloc(128); /* Z85 secret at [0..41), public at [64..105) */
    size_t len = 0;
    if (!z)
        return OTPCA_ERR_NOMEM;
    otpca_err ret = otpca_token_data_get(tok, label, secret, 32, &len);
    if (ret == OTPCA_ERR_OBJECT_NOT_FOUND && create) {
        if (zmq_curve_keypair(z + 64, z) != 0 || !zmq_z85_decode(secret, z)) {
            ret = OTPCA_ERR_CRYPTO;
        } else {
            ret = otpca_token_data_put(tok, label, secret, 32);
            len = 32;
            if (!ret)
                log_info("created the CURVE key '%s' in token %s", label, otpca_token_label(tok));
        }
    } else if (ret == OTPCA_ERR_OBJECT_NOT_FOUND) {
        log_error("token %s has no CURVE key '%s'", otpca_token_label(tok), label);
    }
    if (!ret && len != 32)
        ret = OTPCA_ERR_CONFIG;
    /* The public key from the secret: zmq_curve_public works on Z85. */
    if (!ret && (!zmq_z85_encode(z, secret, 32) || zmq_curve_public(z + 64, z) != 0 || !zmq_z85_decode(pub, z + 64)))
        ret = OTPCA_ERR_CRYPTO;
    otpca_secmem_free(z, 128);
    if (ret)
        otpca_memzero(secret, 32);
    return ret;
}
