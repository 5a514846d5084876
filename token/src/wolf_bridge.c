/*
 * wolfCrypt crypto-callback device for token keys. wolfSSL 5.5.4 has no
 * wc_SignCert_cb; instead an ecc_key initialised with a device id routes
 * wc_ecc_sign_hash() (which wc_SignCert uses) to this callback, which asks
 * the token for a raw r||s signature and returns it DER-encoded.
 */
#include <stdatomic.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/cryptocb.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "otpca/common/log.h"
#include "otpca/token/wolf.h"

/* Device ids are process-wide; start well above wolfSSL's own. */
static atomic_int next_dev_id = 0x07ca0000;

static int token_device(int dev_id, wc_CryptoInfo *info, void *ctx)
{
    otpca_wolf_signer *s = ctx;
    (void)dev_id;
    if (info->algo_type != WC_ALGO_TYPE_PK || info->pk.type != WC_PK_TYPE_ECDSA_SIGN)
        return CRYPTOCB_UNAVAILABLE; /* everything else: wolfCrypt in software */
    unsigned char raw[OTPCA_SIG_RAW_LEN];
    size_t raw_len = sizeof raw;
    otpca_err e = otpca_token_sign_digest(s->tok, s->key, info->pk.eccsign.in, info->pk.eccsign.inlen,
                                          OTPCA_SIG_RAW, raw, &raw_len);
    if (e) {
        log_error("token signature for wolfCrypt failed: %s", otpca_strerror(e));
        return WC_HW_E;
    }
    if (wc_ecc_rs_raw_to_sig(raw, 32, raw + 32, 32, info->pk.eccsign.out, info->pk.eccsign.outlen) != 0)
        return BUFFER_E;
    s->signatures++;
    return 0;
}

otpca_err otpca_wolf_signer_init(otpca_wolf_signer *s, otpca_token_t *tok, otpca_obj_t key)
{
    unsigned char sec1[OTPCA_EC_P256_SEC1_LEN];
    memset(s, 0, sizeof *s);
    otpca_err ret = otpca_token_pubkey_sec1(tok, key, sec1);
    if (ret)
        return ret;
    if (wolfCrypt_Init() != 0)
        return OTPCA_ERR_CRYPTO;
    s->tok = tok;
    s->key = key;
    s->dev_id = atomic_fetch_add(&next_dev_id, 1);
    if (wc_ecc_init_ex(&s->ecc, NULL, s->dev_id) != 0) {
        wolfCrypt_Cleanup();
        return OTPCA_ERR_CRYPTO;
    }
    if (wc_ecc_import_x963_ex(sec1, sizeof sec1, &s->ecc, ECC_SECP256R1) != 0 ||
        wc_CryptoCb_RegisterDevice(s->dev_id, token_device, s) != 0) {
        wc_ecc_free(&s->ecc);
        wolfCrypt_Cleanup();
        return OTPCA_ERR_CRYPTO;
    }
    return OTPCA_ERR_OK;
}

void otpca_wolf_signer_free(otpca_wolf_signer *s)
{
    if (!s || !s->tok)
        return;
    wc_CryptoCb_UnRegisterDevice(s->dev_id);
    wc_ecc_free(&s->ecc);
    wolfCrypt_Cleanup();
    memset(s, 0, sizeof *s);
}
