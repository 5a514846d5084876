/*
 * Unit tests for COSE_Sign1 (proto/src/cose.c): a published ES256 example
 * from the cose-wg Examples repository checked against our Sig_structure
 * and P-256 verification, sign/verify round trips with a software key (with
 * and without x5chain, 65- and 33-byte keys), the strict structural decoder
 * (every header, tag, array, signature and truncation case it must refuse),
 * and the encoder's buffer handling and signing-callback errors.
 *
 * Malformed messages are built here with the CBOR encoder and a correct
 * signature over their own Sig_structure, so a refusal is due to the one
 * thing that is wrong and not to a bad signature.
 */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otpca/common/hex.h"
#include "otpca/proto/cbor.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/p256.h"

/* ------------------------------------------------------------ helpers */

/* Hex to bytes; asserts the text is well formed and fits. */
static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = strlen(h);
    cr_assert_eq(n % 2, 0, "odd hex length");
    cr_assert_leq(n / 2, cap, "hex does not fit");
    for (size_t i = 0; i < n / 2; i++) {
        int hi = otpca_hex_digit(h[2 * i]), lo = otpca_hex_digit(h[2 * i + 1]);
        cr_assert(hi >= 0 && lo >= 0, "bad hex digit at %zu", 2 * i);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return n / 2;
}

/* base64url without padding (RFC 7515 appendix C), as in JWK. */
static size_t b64url_decode(const char *s, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (const char *c = s; *c; c++) {
        int v = 0;
        if (*c >= 'A' && *c <= 'Z')
            v = *c - 'A';
        else if (*c >= 'a' && *c <= 'z')
            v = *c - 'a' + 26;
        else if (*c >= '0' && *c <= '9')
            v = *c - '0' + 52;
        else if (*c == '-')
            v = 62;
        else if (*c == '_')
            v = 63;
        else
            cr_assert_fail("bad base64url character '%c'", *c);
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            cr_assert_lt(n, cap);
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

static void new_key(otpca_p256_soft *k, otpca_signer *s)
{
    cr_assert_eq(otpca_p256_soft_generate(k), OTPCA_ERR_OK);
    s->sign = otpca_p256_soft_sign;
    s->ctx = k;
    otpca_p256_kid(k->pub, s->kid);
}

/* The Sig_structure ["Signature1", protected, h'', payload], built here
 * independently of cose.c. */
static size_t sig_structure(otpca_buf prot, otpca_buf payload, uint8_t *out, size_t cap)
{
    otpca_cbor_enc e;
    size_t n;
    otpca_cbor_enc_init(&e, out, cap);
    otpca_cbor_put_array(&e, 4);
    otpca_cbor_put_text(&e, "Signature1", 10);
    otpca_cbor_put_bytes(&e, prot.p, prot.len);
    otpca_cbor_put_bytes(&e, NULL, 0);
    otpca_cbor_put_bytes(&e, payload.p, payload.len);
    cr_assert_eq(otpca_cbor_enc_finish(&e, &n), OTPCA_ERR_OK);
    return n;
}

static const uint8_t PROT_ES256[] = {0xa1, 0x01, 0x26};
static const uint8_t PAYLOAD[] = "a payload for COSE_Sign1 tests";
#define PAYLOAD_LEN (sizeof PAYLOAD - 1)

/* A COSE_Sign1 described field by field, for building malformed ones. */
typedef struct msgspec {
    bool tagged;
    uint64_t tag;
    size_t nelem;   /* array count written; elements beyond 4 are nulls */
    otpca_buf prot; /* bytes of the protected header */
    uint8_t unprot[4096];
    size_t unprot_len; /* the encoded unprotected map, copied raw */
    otpca_buf payload;
    size_t sig_len; /* 64, or shorter/longer (zero-padded) */
    bool zero_r, zero_s;
    bool trailing;
} msgspec;

/* Unprotected map {4: kid} with the given kid bytes. */
static void unprot_kid(msgspec *m, const uint8_t *kid, size_t kid_len)
{
    otpca_cbor_enc e;
    otpca_cbor_enc_init(&e, m->unprot, sizeof m->unprot);
    otpca_cbor_put_map(&e, 1);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_KID);
    otpca_cbor_put_bytes(&e, kid, kid_len);
    cr_assert_eq(otpca_cbor_enc_finish(&e, &m->unprot_len), OTPCA_ERR_OK);
}

static void spec_default(msgspec *m, const otpca_signer *s)
{
    memset(m, 0, sizeof *m);
    m->tagged = true;
    m->tag = OTPCA_COSE_TAG_SIGN1;
    m->nelem = 4;
    m->prot = (otpca_buf){PROT_ES256, sizeof PROT_ES256};
    unprot_kid(m, s->kid, OTPCA_KID_LEN);
    m->payload = (otpca_buf){PAYLOAD, PAYLOAD_LEN};
    m->sig_len = 64;
}

/* Encodes m, signed by s over m's own protected header and payload. */
static size_t build(const msgspec *m, const otpca_signer *s, uint8_t *out, size_t cap)
{
    uint8_t tbs[8192], digest[32], sig[80] = {0};
    otpca_sha256(tbs, sig_structure(m->prot, m->payload, tbs, sizeof tbs), digest);
    cr_assert_eq(s->sign(s->ctx, digest, sig), OTPCA_ERR_OK);
    if (m->zero_r)
        memset(sig, 0, 32);
    if (m->zero_s)
        memset(sig + 32, 0, 32);
    otpca_cbor_enc e;
    size_t n;
    otpca_cbor_enc_init(&e, out, cap);
    if (m->tagged)
        otpca_cbor_put_tag(&e, m->tag);
    otpca_cbor_put_array(&e, m->nelem);
    for (size_t i = 0; i < m->nelem; i++) {
        switch (i) {
        case 0: otpca_cbor_put_bytes(&e, m->prot.p, m->prot.len); break;
        case 1: otpca_cbor_put_raw(&e, m->unprot, m->unprot_len); break;
        case 2: otpca_cbor_put_bytes(&e, m->payload.p, m->payload.len); break;
        case 3: otpca_cbor_put_bytes(&e, sig, m->sig_len); break;
        default: otpca_cbor_put_null(&e); break;
        }
    }
    if (m->trailing)
        otpca_cbor_put_uint(&e, 0);
    cr_assert_eq(otpca_cbor_enc_finish(&e, &n), OTPCA_ERR_OK);
    return n;
}

/* decode, then verify with pub; the first error. */
static otpca_err check(const uint8_t *msg, size_t len, const uint8_t *pub, size_t publen)
{
    otpca_cose_sign1 m;
    otpca_err ret = otpca_cose_sign1_decode(msg, len, &m);
    if (ret)
        return ret;
    return otpca_cose_sign1_verify(&m, pub, publen);
}

static size_t sign_default(const otpca_signer *s, otpca_buf x5c, uint8_t *out, size_t cap)
{
    size_t n = 0;
    cr_assert_eq(otpca_cose_sign1_encode(s, x5c, PAYLOAD, PAYLOAD_LEN, out, cap, &n), OTPCA_ERR_OK);
    return n;
}

/* ------------------------------------------- published example (cose-wg) */

/*
 * cose-wg/Examples, ecdsa-examples/ecdsa-sig-01.json ("ECDSA-01: ECDSA -
 * P-256 - sign0"; repository snapshot 53c9d634333bb4f529d78f5980fffa2667ee2c12):
 *   18([h'A201260300', {4: h'3131'}, h'5468...2E', h'6520...0B'])
 * output.cbor, intermediates.ToBeSign_hex and the JWK key (x, y, d) as
 * published.
 */
static const char EX1_CBOR[] =
    "D28445A201260300A10442313154546869732069732074686520636F6E74656E742E5840"
    "6520BBAF2081D7E0ED0F95F76EB0733D667005F7467CEC4B87B9381A6BA1EDE8E00DF29F"
    "32A37230F39A842A54821FDD223092819D7728EFB9D3A0080B75380B";
static const char EX1_TBS[] =
    "846A5369676E61747572653145A2012603004054546869732069732074686520636F6E74"
    "656E742E";
/*
 * cose-wg/Examples, sign1-tests/sign-pass-03.json ("sign-pass-03: Remove
 * CBOR Tag"), same key and snapshot: protected exactly {1: -7}, untagged.
 */
static const char EX3_CBOR[] =
    "8443A10126A10442313154546869732069732074686520636F6E74656E742E58408EB33E"
    "4CA31D1C465AB05AAC34CC6B23D58FEF5C083106C4D25A91AEF0B0117E2AF9A291AA32E1"
    "4AB834DC56ED2A223444547E01F11D3B0916E5A4C345CACB36";
static const char EX3_TBS[] =
    "846A5369676E61747572653143A101264054546869732069732074686520636F6E74656E"
    "742E";
/* The key "11" of both files (JWK, base64url). */
static const char EX_X[] = "usWxHK2PmfnHKwXPS54m0kTcGJ90UiglWiGahtagnv8";
static const char EX_Y[] = "IBOL-C3BttVivg-lSreASjpkttcsz-1rb7btKLv8EX4";
static const char EX_D[] = "V8kgd2ZBRuh2dgyVINBUqpPDr7BOMGcF22CQMIUHtNM";
static const char EX_CONTENT[] = "This is the content.";

static void example_pub(uint8_t pub[OTPCA_P256_PUB_LEN])
{
    pub[0] = 0x04;
    cr_assert_eq(b64url_decode(EX_X, pub + 1, 32), 32);
    cr_assert_eq(b64url_decode(EX_Y, pub + 33, 32), 32);
}

typedef struct ex_parts {
    otpca_buf prot, kid, payload, sig;
} ex_parts;

/* Pulls the four fields out of an example with the plain CBOR decoder. */
static void example_parts(const uint8_t *msg, size_t len, bool tagged, ex_parts *p)
{
    otpca_cbor_dec d;
    size_t n, pairs;
    memset(p, 0, sizeof *p);
    otpca_cbor_dec_init(&d, msg, len);
    if (tagged)
        cr_assert_eq(otpca_cbor_get_tag(&d, OTPCA_COSE_TAG_SIGN1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cbor_get_array(&d, 4, &n), OTPCA_ERR_OK);
    cr_assert_eq(n, 4);
    cr_assert_eq(otpca_cbor_get_bytes(&d, 0, 64, &p->prot), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cbor_get_map(&d, 8, &pairs), OTPCA_ERR_OK);
    for (size_t i = 0; i < pairs; i++) {
        int64_t label;
        cr_assert_eq(otpca_cbor_get_int(&d, &label), OTPCA_ERR_OK);
        if (label == OTPCA_COSE_HDR_KID)
            cr_assert_eq(otpca_cbor_get_bytes(&d, 0, 64, &p->kid), OTPCA_ERR_OK);
        else
            cr_assert_eq(otpca_cbor_skip(&d), OTPCA_ERR_OK);
    }
    cr_assert_eq(otpca_cbor_get_bytes(&d, 0, 4096, &p->payload), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cbor_get_bytes(&d, 64, 64, &p->sig), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK);
}

/* Our Sig_structure, hashed, must match the published ToBeSign and the
 * published signature must verify under the published key. */
static void check_example(const char *cbor_hex, const char *tbs_hex, bool tagged)
{
    uint8_t msg[256], want_tbs[128], tbs[256], digest[32], pub[OTPCA_P256_PUB_LEN],
        pubc[OTPCA_P256_PUB_C_LEN], sig[64];
    size_t len = unhex(cbor_hex, msg, sizeof msg);
    size_t want_len = unhex(tbs_hex, want_tbs, sizeof want_tbs);
    ex_parts p;
    example_parts(msg, len, tagged, &p);
    cr_assert_eq(p.payload.len, strlen(EX_CONTENT));
    cr_assert_arr_eq(p.payload.p, EX_CONTENT, p.payload.len);
    cr_assert_eq(p.kid.len, 2);
    cr_assert_arr_eq(p.kid.p, "11", 2);

    size_t tbs_len = sig_structure(p.prot, p.payload, tbs, sizeof tbs);
    cr_assert_eq(tbs_len, want_len);
    cr_assert_arr_eq(tbs, want_tbs, want_len, "Sig_structure differs from the published ToBeSign");
    otpca_sha256(tbs, tbs_len, digest);
    example_pub(pub);
    cr_expect_eq(otpca_p256_verify(pub, sizeof pub, digest, p.sig.p), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_pub_compress(pub, pubc), OTPCA_ERR_OK);
    cr_expect_eq(otpca_p256_verify(pubc, sizeof pubc, digest, p.sig.p), OTPCA_ERR_OK);

    /* The same signature with one payload byte changed does not verify. */
    tbs[tbs_len - 1] ^= 0x01;
    otpca_sha256(tbs, tbs_len, digest);
    cr_expect_eq(otpca_p256_verify(pub, sizeof pub, digest, p.sig.p), OTPCA_ERR_SIGNATURE);
    tbs[tbs_len - 1] ^= 0x01;
    otpca_sha256(tbs, tbs_len, digest);
    memcpy(sig, p.sig.p, 64);
    sig[10] ^= 0x80;
    cr_expect_eq(otpca_p256_verify(pub, sizeof pub, digest, sig), OTPCA_ERR_SIGNATURE);
}

Test(cose, published_example_ecdsa_sig_01_verifies_with_our_sig_structure)
{
    check_example(EX1_CBOR, EX1_TBS, true);

    /*
     * Our strict decoder refuses this message, and must: its protected
     * header is {1: -7, 3: 0} (content type 0 added), not exactly {1: -7},
     * and its kid "11" is 2 bytes where otpca kids are 8. The protected
     * header is checked first, so the error is COSE_HEADER.
     */
    uint8_t msg[256];
    size_t len = unhex(EX1_CBOR, msg, sizeof msg);
    otpca_cose_sign1 m;
    cr_expect_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_COSE_HEADER);
}

Test(cose, published_example_sign_pass_03_verifies_with_our_sig_structure)
{
    check_example(EX3_CBOR, EX3_TBS, false);

    /* Untagged, so the decoder refuses it at the tag (CBOR_TYPE). With the
     * tag 18 put in front the protected header {1: -7} passes and the
     * 2-byte kid "11" is refused (otpca kids are 8 bytes). */
    uint8_t msg[256];
    size_t len = unhex(EX3_CBOR, msg + 1, sizeof msg - 1);
    otpca_cose_sign1 m;
    cr_expect_eq(otpca_cose_sign1_decode(msg + 1, len, &m), OTPCA_ERR_CBOR_TYPE);
    msg[0] = 0xd2;
    otpca_err ret = otpca_cose_sign1_decode(msg, len + 1, &m);
    cr_expect_eq(ret, OTPCA_ERR_CBOR_LIMIT, "2-byte kid: %s", otpca_errname(ret));
}

Test(cose, published_example_key_is_the_jwk_private_key)
{
    /* The JWK's d gives the JWK's x, y through our import. */
    uint8_t d[32], pub[OTPCA_P256_PUB_LEN];
    otpca_p256_soft k;
    cr_assert_eq(b64url_decode(EX_D, d, sizeof d), 32);
    example_pub(pub);
    cr_assert_eq(otpca_p256_soft_import(&k, d), OTPCA_ERR_OK);
    cr_expect_arr_eq(k.pub, pub, sizeof pub);
    otpca_p256_soft_wipe(&k);
}

/* ------------------------------------------------------------ round trips */

static void round_trip(otpca_buf x5c)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[4096], pubc[OTPCA_P256_PUB_C_LEN], kid[OTPCA_KID_LEN];
    new_key(&k, &s);
    size_t len = sign_default(&s, x5c, msg, sizeof msg);

    otpca_cose_sign1 m;
    cr_assert_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_OK);
    otpca_p256_kid(k.pub, kid);
    cr_assert_not_null(m.kid.p);
    cr_expect_eq(m.kid.len, OTPCA_KID_LEN);
    cr_expect_arr_eq(m.kid.p, kid, OTPCA_KID_LEN);
    cr_expect_eq(m.payload.len, PAYLOAD_LEN);
    cr_expect_arr_eq(m.payload.p, PAYLOAD, PAYLOAD_LEN);
    cr_expect_eq(m.protected_hdr.len, sizeof PROT_ES256);
    cr_expect_arr_eq(m.protected_hdr.p, PROT_ES256, sizeof PROT_ES256);
    cr_expect_eq(m.sig.len, OTPCA_P256_SIG_LEN);
    /* Every span points into the input. */
    cr_expect(m.payload.p >= msg && m.payload.p + m.payload.len <= msg + len);
    cr_expect(m.sig.p + m.sig.len == msg + len, "signature is the last element");
    if (x5c.p) {
        cr_assert_not_null(m.x5chain.p);
        cr_expect_eq(m.x5chain.len, x5c.len);
        cr_expect_arr_eq(m.x5chain.p, x5c.p, x5c.len);
        cr_expect(m.x5chain.p >= msg && m.x5chain.p + m.x5chain.len <= msg + len);
    } else {
        cr_expect_null(m.x5chain.p);
    }

    cr_expect_eq(otpca_cose_sign1_verify(&m, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p256_pub_compress(k.pub, pubc), OTPCA_ERR_OK);
    cr_expect_eq(otpca_cose_sign1_verify(&m, pubc, sizeof pubc), OTPCA_ERR_OK);

    /* The signature is over our independently built Sig_structure. */
    uint8_t tbs[256], digest[32];
    otpca_sha256(tbs, sig_structure(m.protected_hdr, m.payload, tbs, sizeof tbs), digest);
    cr_expect_eq(otpca_p256_verify(k.pub, sizeof k.pub, digest, m.sig.p), OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&k);
}

Test(cose, round_trip_without_x5chain) { round_trip((otpca_buf){NULL, 0}); }

Test(cose, round_trip_with_x5chain)
{
    uint8_t cert[700];
    for (size_t i = 0; i < sizeof cert; i++)
        cert[i] = (uint8_t)(i * 7 + 3);
    cert[0] = 0x30; /* looks like DER; the decoder does not parse it */
    round_trip((otpca_buf){cert, sizeof cert});
}

Test(cose, round_trip_with_largest_x5chain)
{
    static uint8_t cert[OTPCA_COSE_MAX_CERT];
    memset(cert, 0x5a, sizeof cert);
    round_trip((otpca_buf){cert, sizeof cert});
}

Test(cose, encoding_is_byte_exact_and_within_the_overhead)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[4096], ours[4096];
    new_key(&k, &s);
    /* The library's encoding equals the one built here field by field, up
     * to the (randomised) signature bytes. */
    size_t len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    msgspec ms;
    spec_default(&ms, &s);
    size_t olen = build(&ms, &s, ours, sizeof ours);
    cr_assert_eq(len, olen);
    cr_expect_arr_eq(msg, ours, len - 64);
    cr_expect_eq(check(ours, olen, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    cr_expect_leq(len, PAYLOAD_LEN + OTPCA_COSE_OVERHEAD);

    /* A payload whose length needs a 3-byte head meets the overhead exactly;
     * one of 65535 bytes too. */
    static uint8_t big[65535], out[65535 + 200];
    size_t n;
    for (size_t plen = 256; plen <= 65535; plen += 65279) {
        cr_assert_eq(otpca_cose_sign1_encode(&s, (otpca_buf){NULL, 0}, big, plen, out, sizeof out, &n),
                     OTPCA_ERR_OK);
        cr_expect_eq(n, plen + OTPCA_COSE_OVERHEAD, "payload %zu", plen);
        cr_expect_eq(check(out, n, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    }
    otpca_p256_soft_wipe(&k);
}

Test(cose, empty_payload_round_trip)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[256];
    size_t n;
    new_key(&k, &s);
    cr_assert_eq(otpca_cose_sign1_encode(&s, (otpca_buf){NULL, 0}, NULL, 0, msg, sizeof msg, &n),
                 OTPCA_ERR_OK);
    otpca_cose_sign1 m;
    cr_assert_eq(otpca_cose_sign1_decode(msg, n, &m), OTPCA_ERR_OK);
    cr_expect_eq(m.payload.len, 0);
    cr_expect_eq(otpca_cose_sign1_verify(&m, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&k);
}

Test(cose, begin_end_writes_the_payload_in_place)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[512], cert[40];
    memset(cert, 0xc3, sizeof cert);
    new_key(&k, &s);
    otpca_cbor_enc e;
    size_t off, n;
    otpca_cbor_enc_init(&e, msg, sizeof msg);
    otpca_cose_sign1_begin(&e, &s, (otpca_buf){cert, sizeof cert}, PAYLOAD_LEN, &off);
    cr_assert_leq(off + PAYLOAD_LEN, sizeof msg);
    memcpy(msg + off, PAYLOAD, PAYLOAD_LEN);
    e.len += PAYLOAD_LEN;
    cr_assert_eq(otpca_cose_sign1_end(&e, &s, off, PAYLOAD_LEN), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cbor_enc_finish(&e, &n), OTPCA_ERR_OK);
    otpca_cose_sign1 m;
    cr_assert_eq(otpca_cose_sign1_decode(msg, n, &m), OTPCA_ERR_OK);
    cr_expect_eq(m.payload.p, msg + off);
    cr_expect_arr_eq(m.payload.p, PAYLOAD, PAYLOAD_LEN);
    cr_expect_eq(m.x5chain.len, sizeof cert);
    cr_expect_eq(otpca_cose_sign1_verify(&m, k.pub, sizeof k.pub), OTPCA_ERR_OK);

    /* A payload of another length than announced is refused. */
    otpca_cbor_enc_init(&e, msg, sizeof msg);
    otpca_cose_sign1_begin(&e, &s, (otpca_buf){NULL, 0}, PAYLOAD_LEN, &off);
    e.len += PAYLOAD_LEN - 1;
    cr_expect_eq(otpca_cose_sign1_end(&e, &s, off, PAYLOAD_LEN), OTPCA_ERR_INVALID_ARG);
    otpca_p256_soft_wipe(&k);
}

/* ------------------------------------------------------------ tampering */

Test(cose, any_flipped_bit_in_signature_or_payload_fails)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[256];
    new_key(&k, &s);
    size_t len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    otpca_cose_sign1 m;
    cr_assert_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_OK);
    size_t sig_off = (size_t)(m.sig.p - msg), pay_off = (size_t)(m.payload.p - msg);
    for (size_t i = 0; i < 64; i++)
        for (int b = 0; b < 8; b++) {
            msg[sig_off + i] ^= (uint8_t)(1u << b);
            cr_expect_eq(check(msg, len, k.pub, sizeof k.pub), OTPCA_ERR_SIGNATURE,
                         "signature byte %zu bit %d", i, b);
            msg[sig_off + i] ^= (uint8_t)(1u << b);
        }
    for (size_t i = 0; i < PAYLOAD_LEN; i++)
        for (int b = 0; b < 8; b++) {
            msg[pay_off + i] ^= (uint8_t)(1u << b);
            cr_expect_eq(check(msg, len, k.pub, sizeof k.pub), OTPCA_ERR_SIGNATURE,
                         "payload byte %zu bit %d", i, b);
            msg[pay_off + i] ^= (uint8_t)(1u << b);
        }
    cr_expect_eq(check(msg, len, k.pub, sizeof k.pub), OTPCA_ERR_OK, "restored message verifies");
    otpca_p256_soft_wipe(&k);
}

Test(cose, any_flipped_bit_in_protected_header_fails)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[256];
    new_key(&k, &s);
    size_t len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    otpca_cose_sign1 m;
    cr_assert_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_OK);
    size_t off = (size_t)(m.protected_hdr.p - msg);
    cr_assert_eq(off, 3, "tag, array, bstr head");
    for (size_t i = 0; i < sizeof PROT_ES256; i++)
        for (int b = 0; b < 8; b++) {
            msg[off + i] ^= (uint8_t)(1u << b);
            cr_expect_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_COSE_HEADER,
                         "protected byte %zu bit %d", i, b);
            msg[off + i] ^= (uint8_t)(1u << b);
        }
    otpca_p256_soft_wipe(&k);
}

Test(cose, any_flipped_bit_anywhere_fails)
{
    /* Without x5chain every byte is covered: the tag, array and string
     * heads by the strict decoder, the kid by the kid check, the protected
     * header, payload and signature by the signature. */
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[256];
    new_key(&k, &s);
    size_t len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    for (size_t i = 0; i < len; i++)
        for (int b = 0; b < 8; b++) {
            msg[i] ^= (uint8_t)(1u << b);
            cr_expect_neq(check(msg, len, k.pub, sizeof k.pub), OTPCA_ERR_OK, "byte %zu bit %d", i, b);
            msg[i] ^= (uint8_t)(1u << b);
        }
    cr_expect_eq(check(msg, len, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&k);
}

Test(cose, wrong_key_is_a_kid_mismatch)
{
    otpca_p256_soft k, other;
    otpca_signer s, so;
    uint8_t msg[256], pubc[OTPCA_P256_PUB_C_LEN];
    new_key(&k, &s);
    new_key(&other, &so);
    size_t len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    cr_expect_eq(check(msg, len, other.pub, sizeof other.pub), OTPCA_ERR_COSE_HEADER);
    cr_assert_eq(otpca_p256_pub_compress(other.pub, pubc), OTPCA_ERR_OK);
    cr_expect_eq(check(msg, len, pubc, sizeof pubc), OTPCA_ERR_COSE_HEADER);

    /* A message that claims other's kid but is signed by k: the kid check
     * passes for other, the signature does not. */
    s.sign = otpca_p256_soft_sign;
    memcpy(s.kid, so.kid, OTPCA_KID_LEN);
    len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    cr_expect_eq(check(msg, len, other.pub, sizeof other.pub), OTPCA_ERR_SIGNATURE);
    cr_expect_eq(check(msg, len, k.pub, sizeof k.pub), OTPCA_ERR_COSE_HEADER);
    otpca_p256_soft_wipe(&k);
    otpca_p256_soft_wipe(&other);
}

Test(cose, key_not_on_the_curve_is_bad_key)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[256], bad[OTPCA_P256_PUB_LEN], badc[OTPCA_P256_PUB_C_LEN];
    new_key(&k, &s);
    size_t len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    memcpy(bad, k.pub, sizeof bad);
    bad[64] ^= 0x01;
    cr_expect_eq(check(msg, len, bad, sizeof bad), OTPCA_ERR_BAD_KEY);
    bad[64] ^= 0x01;
    bad[0] = 0x05;
    cr_expect_eq(check(msg, len, bad, sizeof bad), OTPCA_ERR_BAD_KEY);
    cr_expect_eq(check(msg, len, k.pub, 64), OTPCA_ERR_BAD_KEY);
    cr_expect_eq(check(msg, len, NULL, 0), OTPCA_ERR_BAD_KEY);
    /* x = 1 is not the x-coordinate of any P-256 point (x^3 - 3x + b is a
     * non-residue mod p). */
    memset(badc, 0, sizeof badc);
    badc[0] = 0x02;
    badc[32] = 0x01;
    cr_expect_eq(check(msg, len, badc, sizeof badc), OTPCA_ERR_BAD_KEY);
    otpca_p256_soft_wipe(&k);
}

/* ------------------------------------------------------------ headers */

static void expect_build(const msgspec *ms, const otpca_signer *s, const otpca_p256_soft *k,
                         otpca_err want, const char *what)
{
    static uint8_t msg[8192];
    size_t len = build(ms, s, msg, sizeof msg);
    otpca_cose_sign1 m;
    otpca_err ret = otpca_cose_sign1_decode(msg, len, &m);
    cr_expect_eq(ret, want, "%s: got %s, want %s", what, otpca_errname(ret), otpca_errname(want));
    /* Whatever decoding says, the message never verifies unless accepted. */
    if (ret == OTPCA_ERR_OK)
        cr_expect_eq(otpca_cose_sign1_verify(&m, k->pub, sizeof k->pub), OTPCA_ERR_OK, "%s", what);
}

Test(cose, built_default_message_is_accepted)
{
    /* The builder itself makes acceptable messages, so the refusals below
     * are due to the one field each changes. */
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[512];
    new_key(&k, &s);
    msgspec ms;
    spec_default(&ms, &s);
    size_t len = build(&ms, &s, msg, sizeof msg);
    cr_expect_eq(check(msg, len, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&k);
}

Test(cose, protected_header_other_than_alg_es256_is_refused)
{
    otpca_p256_soft k;
    otpca_signer s;
    new_key(&k, &s);
    msgspec ms;
    static const uint8_t es512[] = {0xa1, 0x01, 0x38, 0x22};     /* {1: -35} */
    static const uint8_t noncanon[] = {0xa1, 0x01, 0x38, 0x06};  /* -7 in two bytes */
    static const uint8_t es256_ct[] = {0xa2, 0x01, 0x26, 0x03, 0x00}; /* {1:-7, 3:0} */
    static const uint8_t empty_map[] = {0xa0};
    static const uint8_t eddsa[] = {0xa1, 0x01, 0x27};           /* {1: -8} */
    static const uint8_t text_alg[] = {0xa1, 0x01, 0x65, 'E', 'S', '2', '5', '6'};
    struct {
        const uint8_t *p;
        size_t len;
        const char *what;
    } cases[] = {
        {es512, sizeof es512, "{1: -35}"},
        {noncanon, sizeof noncanon, "{1: -7} non-canonical"},
        {es256_ct, sizeof es256_ct, "{1: -7, 3: 0}"},
        {empty_map, sizeof empty_map, "{}"},
        {eddsa, sizeof eddsa, "{1: -8}"},
        {text_alg, sizeof text_alg, "{1: \"ES256\"}"},
        {NULL, 0, "h''"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spec_default(&ms, &s);
        ms.prot = (otpca_buf){cases[i].p, cases[i].len};
        expect_build(&ms, &s, &k, OTPCA_ERR_COSE_HEADER, cases[i].what);
    }
    otpca_p256_soft_wipe(&k);
}

/* Sets the unprotected header to the given raw CBOR. */
static void set_unprot(msgspec *ms, const uint8_t *p, size_t len)
{
    cr_assert_leq(len, sizeof ms->unprot);
    memcpy(ms->unprot, p, len);
    ms->unprot_len = len;
}

Test(cose, alg_in_unprotected_header_is_refused)
{
    otpca_p256_soft k;
    otpca_signer s;
    new_key(&k, &s);
    msgspec ms;
    spec_default(&ms, &s);
    uint8_t u[16] = {0xa2, 0x01, 0x26, 0x04, 0x48};
    memcpy(u + 5, s.kid, 8);
    set_unprot(&ms, u, 13);
    expect_build(&ms, &s, &k, OTPCA_ERR_COSE_HEADER, "{1: -7, 4: kid}");
    otpca_p256_soft_wipe(&k);
}

Test(cose, missing_or_malformed_kid_is_refused)
{
    otpca_p256_soft k;
    otpca_signer s;
    new_key(&k, &s);
    msgspec ms;
    uint8_t kid9[9];
    memcpy(kid9, s.kid, 8);
    kid9[8] = 0;

    spec_default(&ms, &s);
    set_unprot(&ms, (const uint8_t[]){0xa0}, 1);
    expect_build(&ms, &s, &k, OTPCA_ERR_COSE_HEADER, "{}");

    /* Only an unknown label: skipped, and then kid is missing. */
    spec_default(&ms, &s);
    set_unprot(&ms, (const uint8_t[]){0xa1, 0x03, 0x00}, 3);
    expect_build(&ms, &s, &k, OTPCA_ERR_COSE_HEADER, "{3: 0}");

    spec_default(&ms, &s);
    unprot_kid(&ms, s.kid, 7);
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_LIMIT, "7-byte kid");
    spec_default(&ms, &s);
    unprot_kid(&ms, kid9, 9);
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_LIMIT, "9-byte kid");
    spec_default(&ms, &s);
    unprot_kid(&ms, NULL, 0);
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_LIMIT, "empty kid");

    /* kid as a text string */
    spec_default(&ms, &s);
    set_unprot(&ms, (const uint8_t[]){0xa1, 0x04, 0x68, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}, 11);
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_TYPE, "text kid");

    /* kid twice */
    spec_default(&ms, &s);
    uint8_t u[32] = {0xa2, 0x04, 0x48};
    memcpy(u + 3, s.kid, 8);
    u[11] = 0x04;
    u[12] = 0x48;
    memcpy(u + 13, s.kid, 8);
    set_unprot(&ms, u, 21);
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_KEY_ORDER, "kid twice");

    /* a text label */
    spec_default(&ms, &s);
    uint8_t t[32] = {0xa2, 0x04, 0x48};
    memcpy(t + 3, s.kid, 8);
    t[11] = 0x61;
    t[12] = 'x';
    t[13] = 0x00;
    set_unprot(&ms, t, 14);
    expect_build(&ms, &s, &k, OTPCA_ERR_COSE_HEADER, "text label");

    /* the unprotected header not a map */
    spec_default(&ms, &s);
    set_unprot(&ms, (const uint8_t[]){0x80}, 1);
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_TYPE, "unprotected is an array");
    otpca_p256_soft_wipe(&k);
}

Test(cose, unprotected_labels_in_order_unknown_ones_skipped)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[512];
    new_key(&k, &s);
    msgspec ms;
    otpca_cbor_enc e;

    /* {3: 0, 4: kid, 33: cert, -1: "x"}: deterministic order, the unknown
     * labels 3 and -1 are skipped, the message verifies. */
    uint8_t cert[5] = {1, 2, 3, 4, 5};
    spec_default(&ms, &s);
    otpca_cbor_enc_init(&e, ms.unprot, sizeof ms.unprot);
    otpca_cbor_put_map(&e, 4);
    otpca_cbor_put_uint(&e, 3);
    otpca_cbor_put_uint(&e, 0);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_KID);
    otpca_cbor_put_bytes(&e, s.kid, OTPCA_KID_LEN);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_X5CHAIN);
    otpca_cbor_put_bytes(&e, cert, sizeof cert);
    otpca_cbor_put_int(&e, -1);
    otpca_cbor_put_text(&e, "x", 1);
    cr_assert_eq(otpca_cbor_enc_finish(&e, &ms.unprot_len), OTPCA_ERR_OK);
    size_t len = build(&ms, &s, msg, sizeof msg);
    otpca_cose_sign1 m;
    cr_assert_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_OK);
    cr_expect_eq(m.x5chain.len, sizeof cert);
    cr_expect_arr_eq(m.x5chain.p, cert, sizeof cert);
    cr_expect_eq(otpca_cose_sign1_verify(&m, k.pub, sizeof k.pub), OTPCA_ERR_OK);

    /* {33: cert, 4: kid}: out of order */
    spec_default(&ms, &s);
    otpca_cbor_enc_init(&e, ms.unprot, sizeof ms.unprot);
    otpca_cbor_put_map(&e, 2);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_X5CHAIN);
    otpca_cbor_put_bytes(&e, cert, sizeof cert);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_KID);
    otpca_cbor_put_bytes(&e, s.kid, OTPCA_KID_LEN);
    cr_assert_eq(otpca_cbor_enc_finish(&e, &ms.unprot_len), OTPCA_ERR_OK);
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_KEY_ORDER, "x5chain before kid");
    otpca_p256_soft_wipe(&k);
}

/* {4: kid, 33: <x5chain written by put>} */
typedef void (*x5_put)(otpca_cbor_enc *e, const uint8_t *cert, size_t len);
static void x5_array1(otpca_cbor_enc *e, const uint8_t *c, size_t n)
{
    otpca_cbor_put_array(e, 1);
    otpca_cbor_put_bytes(e, c, n);
}
static void x5_array2(otpca_cbor_enc *e, const uint8_t *c, size_t n)
{
    otpca_cbor_put_array(e, 2);
    otpca_cbor_put_bytes(e, c, n);
    otpca_cbor_put_bytes(e, c, n);
}
static void x5_array0(otpca_cbor_enc *e, const uint8_t *c, size_t n)
{
    (void)c;
    (void)n;
    otpca_cbor_put_array(e, 0);
}
static void x5_bytes(otpca_cbor_enc *e, const uint8_t *c, size_t n) { otpca_cbor_put_bytes(e, c, n); }
static void x5_text(otpca_cbor_enc *e, const uint8_t *c, size_t n)
{
    (void)c;
    (void)n;
    otpca_cbor_put_text(e, "cert", 4);
}

static void spec_x5(msgspec *ms, const otpca_signer *s, x5_put put, const uint8_t *c, size_t n)
{
    otpca_cbor_enc e;
    spec_default(ms, s);
    otpca_cbor_enc_init(&e, ms->unprot, sizeof ms->unprot);
    otpca_cbor_put_map(&e, 2);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_KID);
    otpca_cbor_put_bytes(&e, s->kid, OTPCA_KID_LEN);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_X5CHAIN);
    put(&e, c, n);
    cr_assert_eq(otpca_cbor_enc_finish(&e, &ms->unprot_len), OTPCA_ERR_OK);
}

Test(cose, x5chain_forms)
{
    otpca_p256_soft k;
    otpca_signer s;
    static uint8_t msg[8192], cert[OTPCA_COSE_MAX_CERT + 1];
    memset(cert, 0x42, sizeof cert);
    new_key(&k, &s);
    msgspec ms;
    otpca_cose_sign1 m;

    /* An array holding exactly one certificate is accepted (RFC 9360). */
    spec_x5(&ms, &s, x5_array1, cert, 100);
    size_t len = build(&ms, &s, msg, sizeof msg);
    cr_assert_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_OK);
    cr_expect_eq(m.x5chain.len, 100);
    cr_expect_eq(otpca_cose_sign1_verify(&m, k.pub, sizeof k.pub), OTPCA_ERR_OK);

    spec_x5(&ms, &s, x5_array2, cert, 100);
    expect_build(&ms, &s, &k, OTPCA_ERR_COSE_HEADER, "x5chain of two certificates");
    spec_x5(&ms, &s, x5_array0, cert, 0);
    expect_build(&ms, &s, &k, OTPCA_ERR_COSE_HEADER, "x5chain empty array");
    spec_x5(&ms, &s, x5_bytes, cert, 0);
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_LIMIT, "x5chain empty bytes");
    spec_x5(&ms, &s, x5_bytes, cert, OTPCA_COSE_MAX_CERT + 1);
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_LIMIT, "x5chain too big");
    spec_x5(&ms, &s, x5_bytes, cert, OTPCA_COSE_MAX_CERT);
    expect_build(&ms, &s, &k, OTPCA_ERR_OK, "x5chain of the largest size");
    spec_x5(&ms, &s, x5_text, cert, 0);
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_TYPE, "x5chain text");
    otpca_p256_soft_wipe(&k);
}

/* ------------------------------------------------------------ structure */

Test(cose, untagged_or_wrong_tag_is_cbor_type)
{
    otpca_p256_soft k;
    otpca_signer s;
    new_key(&k, &s);
    msgspec ms;
    spec_default(&ms, &s);
    ms.tagged = false;
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_TYPE, "untagged");
    uint64_t tags[] = {17, 19, 98, 96, 61, 1018};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        spec_default(&ms, &s);
        ms.tag = tags[i];
        expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_TYPE, "wrong tag");
    }
    otpca_p256_soft_wipe(&k);
}

Test(cose, array_of_other_than_four_is_refused)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[512];
    new_key(&k, &s);
    msgspec ms;
    size_t counts[] = {0, 1, 2, 3, 5, 6};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        spec_default(&ms, &s);
        ms.nelem = counts[i];
        size_t len = build(&ms, &s, msg, sizeof msg);
        otpca_cose_sign1 m;
        otpca_err ret = otpca_cose_sign1_decode(msg, len, &m);
        cr_expect_neq(ret, OTPCA_ERR_OK, "array of %zu accepted", counts[i]);
        cr_expect_eq(ret, OTPCA_ERR_CBOR_LIMIT, "array of %zu: %s", counts[i], otpca_errname(ret));
    }
    /* A map where the array belongs */
    spec_default(&ms, &s);
    size_t len = build(&ms, &s, msg, sizeof msg);
    msg[1] = 0xa2; /* 0x84 -> map of 2 pairs, same 4 items */
    otpca_cose_sign1 m;
    cr_expect_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_CBOR_TYPE);
    otpca_p256_soft_wipe(&k);
}

Test(cose, signature_of_wrong_length_is_refused)
{
    otpca_p256_soft k;
    otpca_signer s;
    new_key(&k, &s);
    msgspec ms;
    size_t lens[] = {0, 32, 63, 65, 72};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        spec_default(&ms, &s);
        ms.sig_len = lens[i];
        expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_LIMIT, "signature length");
    }
    otpca_p256_soft_wipe(&k);
}

Test(cose, payload_or_protected_of_wrong_type_is_refused)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[512];
    new_key(&k, &s);
    msgspec ms;
    spec_default(&ms, &s);
    size_t len = build(&ms, &s, msg, sizeof msg);
    otpca_cose_sign1 m;
    /* the protected header as a text string (43 a1 01 26 -> 63 a1 01 26;
     * not UTF-8 either, 0xa1 is a continuation byte) */
    cr_assert_eq(msg[2], 0x43);
    msg[2] = 0x63;
    cr_expect_neq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_OK);
    msg[2] = 0x43;
    /* detached payload (nil), which otpca does not use */
    otpca_cbor_enc e;
    uint8_t det[512];
    size_t dlen;
    otpca_cbor_enc_init(&e, det, sizeof det);
    otpca_cbor_put_tag(&e, OTPCA_COSE_TAG_SIGN1);
    otpca_cbor_put_array(&e, 4);
    otpca_cbor_put_bytes(&e, PROT_ES256, sizeof PROT_ES256);
    otpca_cbor_put_map(&e, 1);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_KID);
    otpca_cbor_put_bytes(&e, s.kid, OTPCA_KID_LEN);
    otpca_cbor_put_null(&e);
    otpca_cbor_put_bytes(&e, msg + len - 64, 64);
    cr_assert_eq(otpca_cbor_enc_finish(&e, &dlen), OTPCA_ERR_OK);
    cr_expect_eq(otpca_cose_sign1_decode(det, dlen, &m), OTPCA_ERR_CBOR_TYPE);
    otpca_p256_soft_wipe(&k);
}

Test(cose, trailing_byte_is_cbor_trailing)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[512];
    new_key(&k, &s);
    size_t len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    msg[len] = 0x00;
    otpca_cose_sign1 m;
    cr_expect_eq(otpca_cose_sign1_decode(msg, len + 1, &m), OTPCA_ERR_CBOR_TRAILING);
    msgspec ms;
    spec_default(&ms, &s);
    ms.trailing = true;
    expect_build(&ms, &s, &k, OTPCA_ERR_CBOR_TRAILING, "built with a trailing 0");
    otpca_p256_soft_wipe(&k);
}

Test(cose, length_claims_beyond_the_input_fail)
{
    /* A payload head claiming 2^32 - 1 or 2^64 - 1 bytes, the signature
     * after it: refused, no read past the input (ASan build). */
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[256];
    new_key(&k, &s);
    size_t len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    otpca_cose_sign1 m;
    cr_assert_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_OK);
    size_t head = (size_t)(m.payload.p - msg) - 2;
    cr_assert(msg[head] == 0x58 && msg[head + 1] == PAYLOAD_LEN, "two-byte payload head");
    static const uint8_t claims[][9] = {
        {0x5a, 0xff, 0xff, 0xff, 0xff},
        {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
        {0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
    };
    static const size_t claim_len[] = {5, 9, 9};
    for (size_t i = 0; i < 3; i++) {
        uint8_t *bad = malloc(len + 8);
        cr_assert_not_null(bad);
        memcpy(bad, msg, head);
        memcpy(bad + head, claims[i], claim_len[i]);
        memcpy(bad + head + claim_len[i], msg + head + 2, len - head - 2);
        size_t blen = len - 2 + claim_len[i];
        cr_expect_neq(otpca_cose_sign1_decode(bad, blen, &m), OTPCA_ERR_OK, "claim %zu", i);
        free(bad);
    }
    otpca_p256_soft_wipe(&k);
}

Test(cose, truncation_at_every_offset_fails)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[1024], cert[300];
    memset(cert, 0x11, sizeof cert);
    new_key(&k, &s);
    otpca_buf x5[2] = {{NULL, 0}, {cert, sizeof cert}};
    for (int w = 0; w < 2; w++) {
        size_t len = sign_default(&s, x5[w], msg, sizeof msg);
        for (size_t cut = 0; cut < len; cut++) {
            /* A fresh heap copy of exactly cut bytes, so that a read past
             * the end is caught by ASan. */
            uint8_t *copy = malloc(cut ? cut : 1);
            cr_assert_not_null(copy);
            memcpy(copy, msg, cut);
            otpca_cose_sign1 m;
            otpca_err ret = otpca_cose_sign1_decode(copy, cut, &m);
            cr_expect_neq(ret, OTPCA_ERR_OK, "accepted at %zu of %zu bytes", cut, len);
            free(copy);
        }
        otpca_cose_sign1 m;
        cr_expect_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_OK);
    }
    otpca_p256_soft_wipe(&k);
}

Test(cose, zero_r_or_s_is_signature)
{
    otpca_p256_soft k;
    otpca_signer s;
    new_key(&k, &s);
    msgspec ms;
    uint8_t msg[512];
    for (int which = 0; which < 3; which++) {
        spec_default(&ms, &s);
        ms.zero_r = which != 1;
        ms.zero_s = which != 0;
        size_t len = build(&ms, &s, msg, sizeof msg);
        otpca_cose_sign1 m;
        cr_assert_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_OK);
        cr_expect_eq(otpca_cose_sign1_verify(&m, k.pub, sizeof k.pub), OTPCA_ERR_SIGNATURE,
                     "zero r %d zero s %d", ms.zero_r, ms.zero_s);
    }
    otpca_p256_soft_wipe(&k);
}

Test(cose, r_or_s_not_below_the_order_is_signature)
{
    /* r or s >= n (the group order) is out of range for ECDSA. */
    static const char N[] = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[512], n[32];
    new_key(&k, &s);
    unhex(N, n, sizeof n);
    size_t len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    otpca_cose_sign1 m;
    for (int half = 0; half < 2; half++) {
        uint8_t save[32];
        uint8_t *p = msg + len - 64 + 32 * half;
        memcpy(save, p, 32);
        memcpy(p, n, 32);
        cr_assert_eq(otpca_cose_sign1_decode(msg, len, &m), OTPCA_ERR_OK);
        cr_expect_eq(otpca_cose_sign1_verify(&m, k.pub, sizeof k.pub), OTPCA_ERR_SIGNATURE, "= n");
        memset(p, 0xff, 32);
        cr_expect_eq(otpca_cose_sign1_verify(&m, k.pub, sizeof k.pub), OTPCA_ERR_SIGNATURE, "all ff");
        memcpy(p, save, 32);
    }
    cr_expect_eq(check(msg, len, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&k);
}

/* ------------------------------------------------------------ encoding */

Test(cose, encode_into_too_small_buffer_is_buffer_too_small)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[1024], cert[200];
    memset(cert, 0x22, sizeof cert);
    new_key(&k, &s);
    otpca_buf x5[2] = {{NULL, 0}, {cert, sizeof cert}};
    for (int w = 0; w < 2; w++) {
        size_t full = sign_default(&s, x5[w], msg, sizeof msg);
        for (size_t cap = 0; cap < full; cap++) {
            uint8_t *out = malloc(cap ? cap : 1);
            cr_assert_not_null(out);
            size_t n = 12345;
            cr_expect_eq(otpca_cose_sign1_encode(&s, x5[w], PAYLOAD, PAYLOAD_LEN, out, cap, &n),
                         OTPCA_ERR_BUFFER_TOO_SMALL, "cap %zu of %zu", cap, full);
            free(out);
        }
        size_t n;
        cr_expect_eq(otpca_cose_sign1_encode(&s, x5[w], PAYLOAD, PAYLOAD_LEN, msg, full, &n),
                     OTPCA_ERR_OK);
        cr_expect_eq(n, full);
    }
    size_t n;
    cr_expect_eq(otpca_cose_sign1_encode(&s, x5[0], PAYLOAD, PAYLOAD_LEN, NULL, 100, &n),
                 OTPCA_ERR_INVALID_ARG);
    otpca_p256_soft_wipe(&k);
}

typedef struct fake_signer {
    otpca_err ret;
    int calls;
    uint8_t digest[32];
    otpca_p256_soft *key;
} fake_signer;

static otpca_err fake_sign(void *ctx, const uint8_t digest[32], uint8_t sig[OTPCA_P256_SIG_LEN])
{
    fake_signer *f = ctx;
    f->calls++;
    memcpy(f->digest, digest, 32);
    if (f->ret)
        return f->ret;
    return otpca_p256_soft_sign(f->key, digest, sig);
}

Test(cose, signing_callback_gets_the_sig_structure_digest)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[512], tbs[256], want[32];
    new_key(&k, &s);
    fake_signer f = {OTPCA_ERR_OK, 0, {0}, &k};
    s.sign = fake_sign;
    s.ctx = &f;
    size_t len = sign_default(&s, (otpca_buf){NULL, 0}, msg, sizeof msg);
    cr_expect_eq(f.calls, 1);
    otpca_sha256(tbs,
                 sig_structure((otpca_buf){PROT_ES256, sizeof PROT_ES256},
                               (otpca_buf){PAYLOAD, PAYLOAD_LEN}, tbs, sizeof tbs),
                 want);
    cr_expect_arr_eq(f.digest, want, 32);
    cr_expect_eq(check(msg, len, k.pub, sizeof k.pub), OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&k);
}

Test(cose, signing_callback_error_is_propagated)
{
    otpca_p256_soft k;
    otpca_signer s;
    uint8_t msg[512];
    new_key(&k, &s);
    otpca_err errs[] = {OTPCA_ERR_PKCS11, OTPCA_ERR_NOT_LOGGED_IN, OTPCA_ERR_CRYPTO,
                        OTPCA_ERR_TOKEN_REMOVED};
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        fake_signer f = {errs[i], 0, {0}, &k};
        s.sign = fake_sign;
        s.ctx = &f;
        size_t n = 0;
        cr_expect_eq(otpca_cose_sign1_encode(&s, (otpca_buf){NULL, 0}, PAYLOAD, PAYLOAD_LEN, msg,
                                             sizeof msg, &n),
                     errs[i], "%s", otpca_errname(errs[i]));
        cr_expect_eq(f.calls, 1);

        /* two-step form too */
        otpca_cbor_enc e;
        size_t off;
        otpca_cbor_enc_init(&e, msg, sizeof msg);
        otpca_cose_sign1_begin(&e, &s, (otpca_buf){NULL, 0}, PAYLOAD_LEN, &off);
        otpca_cbor_put_raw(&e, PAYLOAD, PAYLOAD_LEN);
        cr_expect_eq(otpca_cose_sign1_end(&e, &s, off, PAYLOAD_LEN), errs[i]);
        cr_expect_eq(f.calls, 2);
    }
    /* A token key (software here) that cannot be loaded: the soft signer's
     * own error comes through. */
    otpca_p256_soft broken;
    memset(&broken, 0, sizeof broken);
    s.sign = otpca_p256_soft_sign;
    s.ctx = &broken;
    size_t n;
    cr_expect_neq(otpca_cose_sign1_encode(&s, (otpca_buf){NULL, 0}, PAYLOAD, PAYLOAD_LEN, msg,
                                          sizeof msg, &n),
                  OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&k);
}
