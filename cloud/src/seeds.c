/* Seeds sealed at rest in the cloud's token, re-sealed per manager (seeds.h). */
#include "otpca/cloud/seeds.h"

#include <string.h>

#include "otpca/common/secmem.h"
#include "otpca/proto/ecies.h"

#define AAD_PREFIX "otpca-seed "
#define AAD_MAX (sizeof AAD_PREFIX - 1 + 64)

static otpca_err make_aad(const char *serial, uint8_t aad[AAD_MAX], size_t *len)
{
    size_t n = serial ? strlen(serial) : 0;
    if (n == 0 || n > 64)
        return OTPCA_ERR_INVALID_ARG;
    memcpy(aad, AAD_PREFIX, sizeof AAD_PREFIX - 1);
    memcpy(aad + sizeof AAD_PREFIX - 1, serial, n);
    *len = sizeof AAD_PREFIX - 1 + n;
    return OTPCA_ERR_OK;
}

otpca_err otpca_seed_seal(otpca_token_t *tok, otpca_obj_t wrap, const char *serial, const uint8_t *seed,
                          size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t aad[AAD_MAX];
    size_t aad_len;
    if (len < 16 || len > OTPCA_SEED_MAX)
        return OTPCA_ERR_INVALID_ARG;
    otpca_err ret = make_aad(serial, aad, &aad_len);
    if (ret)
        return ret;
    return otpca_token_aead_seal(tok, wrap, aad, aad_len, seed, len, out, cap, out_len);
}

otpca_err otpca_seed_open(otpca_token_t *tok, otpca_obj_t wrap, const char *serial, const uint8_t *env,
                          size_t env_len, uint8_t *seed, size_t cap, size_t *len)
{
    uint8_t aad[AAD_MAX];
    size_t aad_len;
    otpca_err ret = make_aad(serial, aad, &aad_len);
    if (ret)
        return ret;
    return otpca_token_aead_open(tok, wrap, aad, aad_len, env, env_len, seed, cap, len);
}

otpca_err otpca_seed_reseal(otpca_token_t *tok, otpca_obj_t wrap, const char *serial, const uint8_t *env,
                            size_t env_len, const uint8_t manager_pub[65], uint8_t *out, size_t cap,
                            size_t *out_len)
{
    uint8_t *seed = otpca_secmem_alloc(OTPCA_SEED_MAX);
    size_t len = 0;
    if (!seed)
        return OTPCA_ERR_NOMEM;
    otpca_err ret = otpca_seed_open(tok, wrap, serial, env, env_len, seed, OTPCA_SEED_MAX, &len);
    if (!ret)
        ret = otpca_ecies_seal(manager_pub, 65, OTPCA_ECIES_LABEL_SEED, (const uint8_t *)serial, strlen(serial),
                               seed, len, out, cap, out_len);
    otpca_secmem_free(seed, OTPCA_SEED_MAX);
    return ret;
}
