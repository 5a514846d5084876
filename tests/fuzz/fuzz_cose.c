/*
 * fuzz_cose: COSE_Sign1 decoding and verification (proto/src/cose.c).
 *
 * Every input goes to otpca_cose_sign1_decode(). When it decodes:
 *   - every span points into the input and has the sizes cose.h promises;
 *   - rebuilt from the decoded parts (x5chain as a byte string or as an
 *     array of one), the message is byte-identical to the input whenever
 *     the unprotected header has no labels other than kid and x5chain;
 *   - otpca_cose_sign1_verify() against the fixed key, given uncompressed
 *     and compressed, returns the same, one of OK / SIGNATURE /
 *     COSE_HEADER, and COSE_HEADER exactly when the kid is not the key's.
 * The seeds are signed by the fixed key, so mutations of the payload or
 * the signature reach the ECDSA verification.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "otpca/proto/cose.h"

static bool inside(const uint8_t *data, size_t size, otpca_buf b)
{
    return b.p >= data && b.len <= size && (size_t)(b.p - data) <= size - b.len;
}

/* Pairs in the unprotected header of an input that decoded. */
static size_t unprotected_pairs(const uint8_t *data, size_t size)
{
    otpca_cbor_dec d;
    otpca_cbor_item it;
    otpca_cbor_dec_init(&d, data, size);
    FUZZ_CHECK(otpca_cbor_next(&d, &it) == OTPCA_ERR_OK && it.type == OTPCA_CBOR_TAG);
    FUZZ_CHECK(otpca_cbor_next(&d, &it) == OTPCA_ERR_OK && it.type == OTPCA_CBOR_ARRAY);
    FUZZ_CHECK(otpca_cbor_next(&d, &it) == OTPCA_ERR_OK && it.type == OTPCA_CBOR_BYTES);
    FUZZ_CHECK(otpca_cbor_next(&d, &it) == OTPCA_ERR_OK && it.type == OTPCA_CBOR_MAP);
    return (size_t)it.u;
}

static bool rebuilt_equals(const otpca_cose_sign1 *m, bool x5_array, const uint8_t *data,
                           size_t size)
{
    uint8_t *out = malloc(size);
    FUZZ_CHECK(out != NULL);
    otpca_cbor_enc e;
    otpca_cbor_enc_init(&e, out, size);
    otpca_cbor_put_tag(&e, OTPCA_COSE_TAG_SIGN1);
    otpca_cbor_put_array(&e, 4);
    otpca_cbor_put_bytes(&e, m->protected_hdr.p, m->protected_hdr.len);
    otpca_cbor_put_map(&e, m->x5chain.p ? 2 : 1);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_KID);
    otpca_cbor_put_bytes(&e, m->kid.p, m->kid.len);
    if (m->x5chain.p) {
        otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_X5CHAIN);
        if (x5_array)
            otpca_cbor_put_array(&e, 1);
        otpca_cbor_put_bytes(&e, m->x5chain.p, m->x5chain.len);
    }
    otpca_cbor_put_bytes(&e, m->payload.p, m->payload.len);
    otpca_cbor_put_bytes(&e, m->sig.p, m->sig.len);
    size_t len;
    bool same = otpca_cbor_enc_finish(&e, &len) == OTPCA_ERR_OK && len == size &&
                memcmp(out, data, size) == 0;
    free(out);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t protected_hdr[] = {0xa1, 0x01, 0x26};
    const otpca_p256_soft *key = fuzz_key();
    otpca_cose_sign1 m;
    if (otpca_cose_sign1_decode(data, size, &m) != OTPCA_ERR_OK)
        return 0;

    FUZZ_CHECK(inside(data, size, m.protected_hdr) &&
               m.protected_hdr.len == sizeof protected_hdr &&
               memcmp(m.protected_hdr.p, protected_hdr, sizeof protected_hdr) == 0);
    FUZZ_CHECK(m.kid.p && inside(data, size, m.kid) && m.kid.len == OTPCA_KID_LEN);
    FUZZ_CHECK(m.payload.p && inside(data, size, m.payload));
    FUZZ_CHECK(m.sig.p && inside(data, size, m.sig) && m.sig.len == OTPCA_P256_SIG_LEN);
    FUZZ_CHECK(m.sig.p + m.sig.len == data + size);
    if (m.x5chain.p)
        FUZZ_CHECK(inside(data, size, m.x5chain) && m.x5chain.len >= 1 &&
                   m.x5chain.len <= OTPCA_COSE_MAX_CERT);

    if (unprotected_pairs(data, size) == (m.x5chain.p ? 2u : 1u))
        FUZZ_CHECK(rebuilt_equals(&m, false, data, size) ||
                   (m.x5chain.p && rebuilt_equals(&m, true, data, size)));

    uint8_t kid[OTPCA_KID_LEN], pubc[OTPCA_P256_PUB_C_LEN];
    otpca_p256_kid(key->pub, kid);
    FUZZ_CHECK(otpca_p256_pub_compress(key->pub, pubc) == OTPCA_ERR_OK);
    otpca_err v = otpca_cose_sign1_verify(&m, key->pub, sizeof key->pub);
    FUZZ_CHECK(v == OTPCA_ERR_OK || v == OTPCA_ERR_SIGNATURE || v == OTPCA_ERR_COSE_HEADER);
    FUZZ_CHECK((v == OTPCA_ERR_COSE_HEADER) == (memcmp(m.kid.p, kid, OTPCA_KID_LEN) != 0));
    if (v != OTPCA_ERR_COSE_HEADER)
        FUZZ_CHECK(otpca_cose_sign1_verify(&m, pubc, sizeof pubc) == v);
    return 0;
}
