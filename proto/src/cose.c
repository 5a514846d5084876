/*
 * COSE_Sign1 with ES256. The Sig_structure
 *   ["Signature1", protected, h'', payload]
 * is never built in memory: its encoding is fed to SHA-256 piece by piece,
 * so signing and verifying need no scratch buffer of the payload's size.
 */
#include "otpca/proto/cose.h"

#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

/* {1: -7}, the only protected header otpca writes or accepts. */
static const uint8_t PROTECTED[] = {0xa1, 0x01, 0x26};

/* Hashes the Sig_structure for a protected header and payload. */
static otpca_err sig_structure_hash(otpca_buf prot, otpca_buf payload, uint8_t digest[32])
{
    uint8_t head[32];
    otpca_cbor_enc e;
    otpca_cbor_enc_init(&e, head, sizeof head);
    otpca_cbor_put_array(&e, 4);
    otpca_cbor_put_text(&e, "Signature1", 10);
    otpca_cbor_put_bytes_head(&e, prot.len);
    size_t n1;
    otpca_err ret = otpca_cbor_enc_finish(&e, &n1);
    if (ret)
        return ret;
    uint8_t mid[16];
    otpca_cbor_enc_init(&e, mid, sizeof mid);
    otpca_cbor_put_bytes(&e, NULL, 0); /* external_aad */
    otpca_cbor_put_bytes_head(&e, payload.len);
    size_t n2;
    if ((ret = otpca_cbor_enc_finish(&e, &n2)))
        return ret;

    wc_Sha256 sha;
    if (wc_InitSha256(&sha) != 0)
        return OTPCA_ERR_CRYPTO;
    int rc = wc_Sha256Update(&sha, head, (word32)n1);
    if (!rc)
        rc = wc_Sha256Update(&sha, prot.p, (word32)prot.len);
    if (!rc)
        rc = wc_Sha256Update(&sha, mid, (word32)n2);
    if (!rc && payload.len)
        rc = wc_Sha256Update(&sha, payload.p, (word32)payload.len);
    if (!rc)
        rc = wc_Sha256Final(&sha, digest);
    wc_Sha256Free(&sha);
    return rc ? OTPCA_ERR_CRYPTO : OTPCA_ERR_OK;
}

void otpca_cose_sign1_begin(otpca_cbor_enc *e, const otpca_signer *s, otpca_buf x5chain,
                            size_t payload_len, size_t *payload_off)
{
    otpca_cbor_put_tag(e, OTPCA_COSE_TAG_SIGN1);
    otpca_cbor_put_array(e, 4);
    otpca_cbor_put_bytes(e, PROTECTED, sizeof PROTECTED);
    otpca_cbor_put_map(e, x5chain.p ? 2 : 1);
    otpca_cbor_put_uint(e, OTPCA_COSE_HDR_KID);
    otpca_cbor_put_bytes(e, s->kid, OTPCA_KID_LEN);
    if (x5chain.p) {
        otpca_cbor_put_uint(e, OTPCA_COSE_HDR_X5CHAIN);
        otpca_cbor_put_bytes(e, x5chain.p, x5chain.len);
    }
    otpca_cbor_put_bytes_head(e, payload_len);
    *payload_off = e->len;
}

otpca_err otpca_cose_sign1_end(otpca_cbor_enc *e, const otpca_signer *s, size_t payload_off,
                               size_t payload_len)
{
    size_t end;
    otpca_err ret = otpca_cbor_enc_finish(e, &end);
    if (ret)
        return ret;
    if (!e->buf || end - payload_off != payload_len)
        return OTPCA_ERR_INVALID_ARG;
    uint8_t digest[32], sig[OTPCA_P256_SIG_LEN];
    otpca_buf prot = {PROTECTED, sizeof PROTECTED};
    otpca_buf payload = {e->buf + payload_off, payload_len};
    if ((ret = sig_structure_hash(prot, payload, digest)))
        return ret;
    if ((ret = s->sign(s->ctx, digest, sig)))
        return ret;
    otpca_cbor_put_bytes(e, sig, sizeof sig);
    return otpca_cbor_enc_finish(e, &end);
}

otpca_err otpca_cose_sign1_encode(const otpca_signer *s, otpca_buf x5chain, const uint8_t *payload,
                                  size_t payload_len, uint8_t *out, size_t cap, size_t *out_len)
{
    otpca_cbor_enc e;
    size_t off;
    if (!out)
        return OTPCA_ERR_INVALID_ARG;
    otpca_cbor_enc_init(&e, out, cap);
    otpca_cose_sign1_begin(&e, s, x5chain, payload_len, &off);
    otpca_cbor_put_raw(&e, payload, payload_len);
    otpca_err ret = otpca_cose_sign1_end(&e, s, off, payload_len);
    if (ret)
        return ret;
    return otpca_cbor_enc_finish(&e, out_len);
}

/* The unprotected header: kid required, x5chain optional (one certificate
 * as a byte string, or an array holding exactly one), other labels
 * skipped; labels are integers in deterministic order. */
static otpca_err decode_unprotected(otpca_cbor_dec *d, otpca_cose_sign1 *m)
{
    size_t pairs;
    otpca_err ret = otpca_cbor_get_map(d, 16, &pairs);
    if (ret)
        return ret;
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (size_t i = 0; i < pairs; i++) {
        size_t kstart = d->pos;
        int64_t label;
        if ((ret = otpca_cbor_get_int(d, &label)))
            return ret == OTPCA_ERR_CBOR_TYPE ? OTPCA_ERR_COSE_HEADER : ret;
        size_t klen = d->pos - kstart;
        if (prev) {
            /* Bytewise order of the encodings (RFC 8949 section 4.2.1). */
            int c = memcmp(prev, d->buf + kstart, klen < prev_len ? klen : prev_len);
            if (c > 0 || (c == 0 && prev_len >= klen))
                return OTPCA_ERR_CBOR_KEY_ORDER;
        }
        prev = d->buf + kstart;
        prev_len = klen;
        if (label == OTPCA_COSE_HDR_KID) {
            ret = otpca_cbor_get_bytes(d, OTPCA_KID_LEN, OTPCA_KID_LEN, &m->kid);
        } else if (label == OTPCA_COSE_HDR_X5CHAIN) {
            otpca_cbor_item it;
            if ((ret = otpca_cbor_peek(d, &it)))
                return ret;
            if (it.type == OTPCA_CBOR_ARRAY) {
                size_t n;
                if ((ret = otpca_cbor_get_array(d, 1, &n)))
                    return ret == OTPCA_ERR_CBOR_LIMIT ? OTPCA_ERR_COSE_HEADER : ret;
                if (n != 1)
                    return OTPCA_ERR_COSE_HEADER;
            }
            ret = otpca_cbor_get_bytes(d, 1, OTPCA_COSE_MAX_CERT, &m->x5chain);
        } else if (label == OTPCA_COSE_HDR_ALG) {
            return OTPCA_ERR_COSE_HEADER; /* alg belongs in the protected header */
        } else {
            ret = otpca_cbor_skip(d);
        }
        if (ret)
            return ret;
    }
    return m->kid.p ? OTPCA_ERR_OK : OTPCA_ERR_COSE_HEADER;
}

otpca_err otpca_cose_sign1_decode(const uint8_t *in, size_t len, otpca_cose_sign1 *m)
{
    otpca_cbor_dec d;
    size_t n;
    memset(m, 0, sizeof *m);
    otpca_cbor_dec_init(&d, in, len);
    otpca_err ret = otpca_cbor_get_tag(&d, OTPCA_COSE_TAG_SIGN1);
    if (!ret)
        ret = otpca_cbor_get_array(&d, 4, &n);
    if (!ret && n != 4)
        ret = OTPCA_ERR_CBOR_LIMIT;
    if (!ret)
        ret = otpca_cbor_get_bytes(&d, 0, 64, &m->protected_hdr);
    if (ret)
        return ret;
    if (m->protected_hdr.len != sizeof PROTECTED ||
        memcmp(m->protected_hdr.p, PROTECTED, sizeof PROTECTED) != 0)
        return OTPCA_ERR_COSE_HEADER;
    if ((ret = decode_unprotected(&d, m)))
        return ret;
    if ((ret = otpca_cbor_get_bytes(&d, 0, SIZE_MAX, &m->payload)))
        return ret;
    if ((ret = otpca_cbor_get_bytes(&d, OTPCA_P256_SIG_LEN, OTPCA_P256_SIG_LEN, &m->sig)))
        return ret;
    return otpca_cbor_dec_finish(&d);
}

otpca_err otpca_cose_sign1_verify(const otpca_cose_sign1 *m, const uint8_t *pub, size_t publen)
{
    uint8_t full[OTPCA_P256_PUB_LEN], kid[OTPCA_KID_LEN], digest[32];
    otpca_err ret = otpca_p256_pub_normalize(pub, publen, full);
    if (ret)
        return ret;
    otpca_p256_kid(full, kid);
    if (!m->kid.p || m->kid.len != OTPCA_KID_LEN || memcmp(kid, m->kid.p, OTPCA_KID_LEN) != 0)
        return OTPCA_ERR_COSE_HEADER;
    if (!m->sig.p || m->sig.len != OTPCA_P256_SIG_LEN)
        return OTPCA_ERR_SIGNATURE;
    if ((ret = sig_structure_hash(m->protected_hdr, m->payload, digest)))
        return ret;
    return otpca_p256_verify(full, sizeof full, digest, m->sig.p);
}
