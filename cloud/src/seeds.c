/* Seeds sealed at rest under the store's seed key (seeds.h). */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "otpca/cloud/seeds.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "otpca/common/log.h"
#include "otpca/common/secmem.h"

#define AAD_PREFIX "otpca-seed "
#define AAD_MAX (sizeof AAD_PREFIX - 1 + 64)
#define VERSION 0x01
#define IV_LEN 12
#define TAG_LEN 16
#define KEY_LEN 32
#define META_KEY "seed_key"
/* The label of the token key that wraps it, once `key rewrap` moved it
 * (absent: the key init made, whatever its label). Only for messages: the
 * wrapped key opens with the right token key or not at all. */
#define META_LABEL "seed_key_wrap_label"
/* AAD of the wrapped seed key: it opens only as what it is. */
#define WRAP_AAD "otpca-seed-key-v1"

struct otpca_seed_key {
    uint8_t key[KEY_LEN];
};

void otpca_seed_key_destroy(otpca_seed_key **k)
{
    if (k && *k) {
        otpca_secmem_free(*k, sizeof **k);
        *k = NULL;
    }
}

/* Why the wrapped seed key did not open: re-wrapped under another label,
 * or a store of another token. */
static void explain_wrong_wrap(otpca_store *st)
{
    char label[OTPCA_STORE_META_MAX / 8 + 1];
    size_t n = 0;
    if (!otpca_store_meta_get(st, META_LABEL, (uint8_t *)label, sizeof label - 1, &n)) {
        label[n] = '\0';
        log_error("seeds: the store's seed key does not open with this seed-wrap key: it was re-wrapped "
                  "(otpca-cloud key rewrap) under the token key '%s'; set wrap_key = %s",
                  label, label);
    } else {
        log_error("seeds: the store's seed key does not open with this token's seed-wrap key "
                  "(a store made with another cloud token, or wrap_key names another key?)");
    }
}

otpca_err otpca_seed_key_load(otpca_token_t *tok, otpca_obj_t wrap, otpca_store *st, int create,
                              otpca_seed_key **out)
{
    uint8_t wrapped[KEY_LEN + OTPCA_TOKEN_AEAD_OVERHEAD];
    size_t wlen = 0, klen = 0;
    *out = NULL;
    otpca_seed_key *k = otpca_secmem_alloc(sizeof *k);
    if (!k)
        return OTPCA_ERR_NOMEM;
    otpca_err ret = otpca_store_meta_get(st, META_KEY, wrapped, sizeof wrapped, &wlen);
    if (ret == OTPCA_ERR_NOT_FOUND && create) {
        /* New store: a fresh key from the token's generator, wrapped in the
         * token. Two processes racing here: the loser's add fails EXISTS
         * and it loads the winner's key. */
        ret = otpca_token_random(tok, k->key, sizeof k->key);
        if (!ret)
            ret = otpca_token_aead_seal(tok, wrap, (const uint8_t *)WRAP_AAD, sizeof WRAP_AAD - 1, k->key,
                                        sizeof k->key, wrapped, sizeof wrapped, &wlen);
        if (!ret)
            ret = otpca_store_meta_add(st, META_KEY, wrapped, wlen);
        if (ret == OTPCA_ERR_EXISTS)
            ret = otpca_store_meta_get(st, META_KEY, wrapped, sizeof wrapped, &wlen);
        else if (!ret) {
            log_info("seeds: created the store's seed key, wrapped by the token's seed-wrap key");
            *out = k;
            return OTPCA_ERR_OK;
        }
    }
    if (ret == OTPCA_ERR_NOT_FOUND)
        log_error("seeds: the store has no seed key yet (run otpca-cloud init)");
    if (!ret) {
        ret = otpca_token_aead_open(tok, wrap, (const uint8_t *)WRAP_AAD, sizeof WRAP_AAD - 1, wrapped, wlen,
                                    k->key, sizeof k->key, &klen);
        if (ret == OTPCA_ERR_DECRYPT)
            explain_wrong_wrap(st);
        else if (!ret && klen != sizeof k->key)
            ret = OTPCA_ERR_DECRYPT;
    }
    if (ret) {
        otpca_seed_key_destroy(&k);
        return ret;
    }
    *out = k;
    return OTPCA_ERR_OK;
}

otpca_err otpca_seed_key_rewrap(otpca_token_t *tok, otpca_obj_t from, otpca_obj_t to, const char *to_label,
                                otpca_store *st)
{
    uint8_t old[KEY_LEN + OTPCA_TOKEN_AEAD_OVERHEAD], wrapped[KEY_LEN + OTPCA_TOKEN_AEAD_OVERHEAD];
    size_t olen = 0, wlen = 0, klen = 0, n = to_label ? strlen(to_label) : 0;
    if (n == 0 || n > OTPCA_STORE_META_MAX / 8)
        return OTPCA_ERR_INVALID_ARG;
    otpca_seed_key *k = otpca_secmem_alloc(sizeof *k);
    if (!k)
        return OTPCA_ERR_NOMEM;
    otpca_err ret = otpca_store_meta_get(st, META_KEY, old, sizeof old, &olen);
    if (ret == OTPCA_ERR_NOT_FOUND)
        log_error("seeds: the store has no seed key yet (run otpca-cloud init)");
    if (!ret) {
        ret = otpca_token_aead_open(tok, from, (const uint8_t *)WRAP_AAD, sizeof WRAP_AAD - 1, old, olen, k->key,
                                    sizeof k->key, &klen);
        if (ret == OTPCA_ERR_DECRYPT)
            explain_wrong_wrap(st);
        else if (!ret && klen != sizeof k->key)
            ret = OTPCA_ERR_DECRYPT;
    }
    if (!ret)
        ret = otpca_token_aead_seal(tok, to, (const uint8_t *)WRAP_AAD, sizeof WRAP_AAD - 1, k->key, sizeof k->key,
                                    wrapped, sizeof wrapped, &wlen);
    /* Only what opens again under the new key replaces the old. */
    if (!ret)
        ret = otpca_token_aead_open(tok, to, (const uint8_t *)WRAP_AAD, sizeof WRAP_AAD - 1, wrapped, wlen, k->key,
                                    sizeof k->key, &klen);
    if (!ret && klen != sizeof k->key)
        ret = OTPCA_ERR_CRYPTO;
    otpca_seed_key_destroy(&k);
    /* Compare and swap: a rewrap that ran meanwhile makes this one fail
     * (OTPCA_ERR_STATE) rather than be overwritten. */
    if (!ret)
        ret = otpca_store_meta_replace(st, META_KEY, old, olen, wrapped, wlen);
    if (!ret) {
        uint8_t prev[OTPCA_STORE_META_MAX / 8];
        size_t plen = 0;
        ret = otpca_store_meta_get(st, META_LABEL, prev, sizeof prev, &plen);
        if (ret == OTPCA_ERR_NOT_FOUND)
            ret = otpca_store_meta_add(st, META_LABEL, (const uint8_t *)to_label, n);
        else if (!ret)
            ret = otpca_store_meta_replace(st, META_LABEL, prev, plen, (const uint8_t *)to_label, n);
    }
    return ret;
}

static otpca_err make_aad(const char *serial, uint8_t aad[AAD_MAX], size_t *len)
{
    size_t n = serial ? strnlen(serial, 65) : 0;
    if (n == 0 || n > 64)
        return OTPCA_ERR_INVALID_ARG;
    memcpy(aad, AAD_PREFIX, sizeof AAD_PREFIX - 1);
    memcpy(aad + sizeof AAD_PREFIX - 1, serial, n);
    *len = sizeof AAD_PREFIX - 1 + n;
    return OTPCA_ERR_OK;
}

otpca_err otpca_seed_seal(const otpca_seed_key *k, const char *serial, const uint8_t *seed, size_t len,
                          uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t aad[AAD_MAX];
    size_t aad_len;
    Aes aes;
    if (!k || !seed || len < 16 || len > OTPCA_SEED_MAX)
        return OTPCA_ERR_INVALID_ARG;
    otpca_err ret = make_aad(serial, aad, &aad_len);
    if (ret)
        return ret;
    if (cap < len + OTPCA_SEED_ENV_OVERHEAD)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    /* A random 96-bit IV per seal from the kernel (one system call, no
     * DRBG set-up per call): at 2^32 seals under one key the chance of a
     * repeat stays below 2^-32, as SP 800-38D section 8.3 asks. */
    out[0] = VERSION;
    if (getrandom(out + 1, IV_LEN, 0) != IV_LEN)
        return OTPCA_ERR_IO;
    ret = OTPCA_ERR_CRYPTO;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) == 0) {
        if (wc_AesGcmSetKey(&aes, k->key, KEY_LEN) == 0 &&
            wc_AesGcmEncrypt(&aes, out + 1 + IV_LEN, seed, (word32)len, out + 1, IV_LEN, out + 1 + IV_LEN + len,
                             TAG_LEN, aad, (word32)aad_len) == 0) {
            *out_len = len + OTPCA_SEED_ENV_OVERHEAD;
            ret = OTPCA_ERR_OK;
        }
        wc_AesFree(&aes);
    }
    otpca_memzero(&aes, sizeof aes);
    return ret;
}

otpca_err otpca_seed_open(const otpca_seed_key *k, const char *serial, const uint8_t *env, size_t env_len,
                          uint8_t *seed, size_t cap, size_t *len)
{
    uint8_t aad[AAD_MAX];
    size_t aad_len;
    Aes aes;
    if (!k || !env || !seed || !len)
        return OTPCA_ERR_INVALID_ARG;
    otpca_err ret = make_aad(serial, aad, &aad_len);
    if (ret)
        return ret;
    if (env_len < OTPCA_SEED_ENV_OVERHEAD + 16 || env_len > OTPCA_SEED_ENV_OVERHEAD + OTPCA_SEED_MAX ||
        env[0] != VERSION) {
        otpca_memzero(seed, cap);
        return OTPCA_ERR_DECRYPT;
    }
    size_t n = env_len - OTPCA_SEED_ENV_OVERHEAD;
    if (cap < n)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    ret = OTPCA_ERR_DECRYPT;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) == 0) {
        if (wc_AesGcmSetKey(&aes, k->key, KEY_LEN) == 0 &&
            wc_AesGcmDecrypt(&aes, seed, env + 1 + IV_LEN, (word32)n, env + 1, IV_LEN, env + 1 + IV_LEN + n,
                             TAG_LEN, aad, (word32)aad_len) == 0) {
            *len = n;
            ret = OTPCA_ERR_OK;
        }
        wc_AesFree(&aes);
    }
    otpca_memzero(&aes, sizeof aes);
    if (ret)
        otpca_memzero(seed, cap);
    return ret;
}
