/*
 * Unit tests for the deterministic CBOR codec (otpca/proto/cbor.h):
 *
 * - the RFC 8949 Appendix A vectors of the subset we use, written by the
 *   encoder byte for byte and read back by the decoder (otpca_cbor_next,
 *   the typed getters, otpca_cbor_validate);
 * - what the decoder refuses and with which code: floats, undefined and
 *   the other simple values, every indefinite form of Appendix A,
 *   non-shortest heads, reserved additional information, invalid UTF-8,
 *   truncation at every offset, trailing bytes, unsorted or repeated map
 *   keys, nesting beyond OTPCA_CBOR_MAX_DEPTH, absurd counts and lengths;
 * - the encoder: sticky buffer-too-small with a canary past cap, counting
 *   mode, otpca_cbor_head_size at every width boundary;
 * - the typed getters (wrong type keeps the position, limits), skip, and
 *   otpca_utf8_valid.
 *
 * Every input the decoder sees is copied to a heap block of exactly its
 * length, so that a sanitizer build catches any read past the end.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otpca/common/hex.h"
#include "otpca/common/err.h"
#include "otpca/proto/cbor.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* --------------------------------------------------------------- helpers */

/* Bytes on the heap with no slack around them. */
typedef struct blob {
    uint8_t *p;
    size_t len;
} blob;

static blob blob_of(const void *p, size_t len)
{
    blob b = {malloc(len ? len : 1), len};
    cr_assert_not_null(b.p);
    if (len)
        memcpy(b.p, p, len);
    return b;
}

/* Hex digits; spaces between bytes are ignored. */
static blob blob_hex(const char *hex)
{
    size_t digits = 0;
    for (const char *c = hex; *c; c++)
        digits += *c != ' ';
    cr_assert_eq(digits % 2, 0, "odd-length hex in the test: %s", hex);
    blob b = {malloc(digits / 2 ? digits / 2 : 1), digits / 2};
    cr_assert_not_null(b.p);
    const char *c = hex;
    for (size_t i = 0; i < b.len; i++) {
        while (*c == ' ')
            c++;
        int hi = otpca_hex_digit(c[0]);
        while (c[1] == ' ')
            c++;
        int lo = otpca_hex_digit(c[1]);
        cr_assert(hi >= 0 && lo >= 0, "bad hex in the test: %s", hex);
        b.p[i] = (uint8_t)(hi << 4 | lo);
        c += 2;
    }
    return b;
}

static void blob_free(blob *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
}

/* Hex of p[0..n) for messages (one use per message: static buffer). */
static const char *hexstr(const uint8_t *p, size_t n)
{
    static char s[2 * 96 + 4];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 2 < sizeof s - 3; i++)
        k += (size_t)snprintf(s + k, sizeof s - k, "%02x", p[i]);
    if (n > 96)
        snprintf(s + k, sizeof s - k, "...");
    return s;
}

static void expect_err(otpca_err got, otpca_err want, const char *what)
{
    cr_expect_eq(got, want, "%s: got %s, want %s", what, otpca_errname(got),
                 otpca_errname(want));
}

static otpca_err validate_hex(const char *hex)
{
    blob b = blob_hex(hex);
    otpca_err ret = otpca_cbor_validate(b.p, b.len);
    blob_free(&b);
    return ret;
}

/* The head of a major-type item with argument v, in the width given by ai
 * (24..27), or the shortest one when ai is 0; returns its length. */
static size_t make_head(uint8_t *out, unsigned major, uint64_t v, unsigned ai)
{
    if (ai == 0) {
        if (v < 24) {
            out[0] = (uint8_t)(major << 5 | v);
            return 1;
        }
        ai = v <= UINT8_MAX ? 24 : v <= UINT16_MAX ? 25 : v <= UINT32_MAX ? 26 : 27;
    }
    size_t w = (size_t)1 << (ai - 24);
    out[0] = (uint8_t)(major << 5 | ai);
    for (size_t i = 0; i < w; i++)
        out[1 + i] = (uint8_t)(v >> (8 * (w - 1 - i)));
    return 1 + w;
}

/* One decoder position check after a refused read. */
static void expect_refused_in_place(const char *hex, otpca_err want)
{
    blob b = blob_hex(hex);
    otpca_cbor_dec d;
    otpca_cbor_item it;
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_peek(&d, &it), want, hex);
    expect_err(otpca_cbor_next(&d, &it), want, hex);
    cr_expect_eq(d.pos, 0, "%s: position moved to %zu on error", hex, d.pos);
    expect_err(otpca_cbor_validate(b.p, b.len), want, hex);
    blob_free(&b);
}

/* ---------------------------------------------- RFC 8949 Appendix A: ints */

static const struct {
    uint64_t v;
    const char *hex;
} uint_vectors[] = {
    {0, "00"},
    {1, "01"},
    {10, "0a"},
    {23, "17"},
    {24, "1818"},
    {25, "1819"},
    {100, "1864"},
    {1000, "1903e8"},
    {1000000, "1a000f4240"},
    {1000000000000ULL, "1b000000e8d4a51000"},
    {18446744073709551615ULL, "1bffffffffffffffff"},
    /* width boundaries */
    {255, "18ff"},
    {256, "190100"},
    {65535, "19ffff"},
    {65536, "1a00010000"},
    {4294967295ULL, "1affffffff"},
    {4294967296ULL, "1b0000000100000000"},
    {(uint64_t)INT64_MAX, "1b7fffffffffffffff"},
    {(uint64_t)INT64_MAX + 1, "1b8000000000000000"},
};

Test(cbor, rfc_unsigned_ints_encode_exactly)
{
    for (size_t i = 0; i < N_OF(uint_vectors); i++) {
        blob want = blob_hex(uint_vectors[i].hex);
        uint8_t buf[16];
        size_t len = 0;
        otpca_cbor_enc e;
        otpca_cbor_enc_init(&e, buf, sizeof buf);
        otpca_cbor_put_uint(&e, uint_vectors[i].v);
        expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, uint_vectors[i].hex);
        cr_expect_eq(len, want.len, "put_uint(%" PRIu64 "): %zu bytes, want %zu",
                     uint_vectors[i].v, len, want.len);
        cr_expect_eq(memcmp(buf, want.p, want.len), 0, "put_uint(%" PRIu64 ") = %s, want %s",
                     uint_vectors[i].v, hexstr(buf, len), uint_vectors[i].hex);
        if (uint_vectors[i].v <= (uint64_t)INT64_MAX) {
            otpca_cbor_enc_init(&e, buf, sizeof buf);
            otpca_cbor_put_int(&e, (int64_t)uint_vectors[i].v);
            expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, uint_vectors[i].hex);
            cr_expect(len == want.len && memcmp(buf, want.p, len) == 0,
                      "put_int(%" PRIu64 ") = %s, want %s", uint_vectors[i].v, hexstr(buf, len),
                      uint_vectors[i].hex);
        }
        blob_free(&want);
    }
}

Test(cbor, rfc_unsigned_ints_decode_with_their_values)
{
    for (size_t i = 0; i < N_OF(uint_vectors); i++) {
        const char *hex = uint_vectors[i].hex;
        uint64_t v = uint_vectors[i].v;
        blob b = blob_hex(hex);
        otpca_cbor_dec d;
        otpca_cbor_item it, pk;

        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_peek(&d, &pk), OTPCA_ERR_OK, hex);
        cr_expect_eq(d.pos, 0, "%s: peek moved", hex);
        expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, hex);
        cr_expect_eq(it.type, OTPCA_CBOR_UINT, "%s: type %d", hex, (int)it.type);
        cr_expect_eq(it.u, v, "%s: value %" PRIu64, hex, it.u);
        cr_expect_eq(pk.type, it.type, "%s", hex);
        cr_expect_eq(pk.u, it.u, "%s", hex);
        cr_expect_eq(d.pos, b.len, "%s: consumed %zu", hex, d.pos);
        expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, hex);

        uint64_t got = ~v;
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_get_uint(&d, UINT64_MAX, &got), OTPCA_ERR_OK, hex);
        cr_expect_eq(got, v, "%s: get_uint %" PRIu64, hex, got);
        /* max is inclusive */
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_get_uint(&d, v, &got), OTPCA_ERR_OK, hex);
        if (v > 0) {
            otpca_cbor_dec_init(&d, b.p, b.len);
            expect_err(otpca_cbor_get_uint(&d, v - 1, &got), OTPCA_ERR_CBOR_LIMIT, hex);
        }

        int64_t s = 0;
        otpca_cbor_dec_init(&d, b.p, b.len);
        if (v <= (uint64_t)INT64_MAX) {
            expect_err(otpca_cbor_get_int(&d, &s), OTPCA_ERR_OK, hex);
            cr_expect_eq(s, (int64_t)v, "%s: get_int %" PRId64, hex, s);
        } else {
            expect_err(otpca_cbor_get_int(&d, &s), OTPCA_ERR_CBOR_LIMIT, hex);
            cr_expect_eq(d.pos, 0, "%s: get_int moved on LIMIT", hex);
        }
        expect_err(otpca_cbor_validate(b.p, b.len), OTPCA_ERR_OK, hex);
        blob_free(&b);
    }
}

static const struct {
    int64_t v;
    const char *hex;
} nint_vectors[] = {
    {-1, "20"},
    {-10, "29"},
    {-100, "3863"},
    {-1000, "3903e7"},
    /* width boundaries and the int64 extreme */
    {-24, "37"},
    {-25, "3818"},
    {-256, "38ff"},
    {-257, "390100"},
    {-65536, "39ffff"},
    {-65537, "3a00010000"},
    {-4294967296LL, "3affffffff"},
    {-4294967297LL, "3b0000000100000000"},
    {INT64_MIN, "3b7fffffffffffffff"},
};

Test(cbor, rfc_negative_ints_encode_and_decode)
{
    for (size_t i = 0; i < N_OF(nint_vectors); i++) {
        const char *hex = nint_vectors[i].hex;
        int64_t v = nint_vectors[i].v;
        uint64_t arg = (uint64_t)(-(v + 1));
        blob want = blob_hex(hex);
        uint8_t buf[16];
        size_t len = 0;
        otpca_cbor_enc e;
        otpca_cbor_enc_init(&e, buf, sizeof buf);
        otpca_cbor_put_int(&e, v);
        expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, hex);
        cr_expect(len == want.len && memcmp(buf, want.p, len) == 0,
                  "put_int(%" PRId64 ") = %s, want %s", v, hexstr(buf, len), hex);

        otpca_cbor_dec d;
        otpca_cbor_item it;
        otpca_cbor_dec_init(&d, want.p, want.len);
        expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, hex);
        cr_expect_eq(it.type, OTPCA_CBOR_NINT, "%s: type %d", hex, (int)it.type);
        cr_expect_eq(it.u, arg, "%s: argument %" PRIu64 ", want %" PRIu64, hex, it.u, arg);
        cr_expect_eq(d.pos, want.len, "%s", hex);

        int64_t s = 0;
        otpca_cbor_dec_init(&d, want.p, want.len);
        expect_err(otpca_cbor_get_int(&d, &s), OTPCA_ERR_OK, hex);
        cr_expect_eq(s, v, "%s: get_int %" PRId64 ", want %" PRId64, hex, s, v);
        cr_expect_eq(d.pos, want.len, "%s", hex);

        uint64_t u = 0;
        otpca_cbor_dec_init(&d, want.p, want.len);
        expect_err(otpca_cbor_get_uint(&d, UINT64_MAX, &u), OTPCA_ERR_CBOR_TYPE, hex);
        cr_expect_eq(d.pos, 0, "%s: get_uint moved on TYPE", hex);
        expect_err(otpca_cbor_validate(want.p, want.len), OTPCA_ERR_OK, hex);
        blob_free(&want);
    }
}

/* -18446744073709551616 (RFC) and -2^63-1: valid CBOR, beyond int64. */
Test(cbor, negative_ints_beyond_int64_decode_but_get_int_refuses)
{
    static const struct {
        const char *hex;
        uint64_t arg;
    } cases[] = {{"3bffffffffffffffff", UINT64_MAX}, {"3b8000000000000000", (uint64_t)INT64_MAX + 1}};
    for (size_t i = 0; i < N_OF(cases); i++) {
        blob b = blob_hex(cases[i].hex);
        otpca_cbor_dec d;
        otpca_cbor_item it;
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, cases[i].hex);
        cr_expect_eq(it.type, OTPCA_CBOR_NINT);
        cr_expect_eq(it.u, cases[i].arg, "%s: %" PRIu64, cases[i].hex, it.u);
        int64_t s = 0;
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_get_int(&d, &s), OTPCA_ERR_CBOR_LIMIT, cases[i].hex);
        cr_expect_eq(d.pos, 0, "%s: get_int moved on LIMIT", cases[i].hex);
        expect_err(otpca_cbor_validate(b.p, b.len), OTPCA_ERR_OK, cases[i].hex);
        blob_free(&b);
    }
}

/* ------------------------------------------- Appendix A: byte/text strings */

Test(cbor, rfc_byte_strings_encode_and_decode_pointing_into_the_input)
{
    static const struct {
        const char *content;
        const char *hex;
    } cases[] = {{"", "40"}, {"01020304", "4401020304"}};
    for (size_t i = 0; i < N_OF(cases); i++) {
        blob content = blob_hex(cases[i].content);
        blob want = blob_hex(cases[i].hex);
        uint8_t buf[16];
        size_t len = 0;
        otpca_cbor_enc e;
        otpca_cbor_enc_init(&e, buf, sizeof buf);
        otpca_cbor_put_bytes(&e, content.p, content.len);
        expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, cases[i].hex);
        cr_expect(len == want.len && memcmp(buf, want.p, len) == 0, "put_bytes = %s, want %s",
                  hexstr(buf, len), cases[i].hex);

        otpca_cbor_dec d;
        otpca_cbor_item it;
        otpca_cbor_dec_init(&d, want.p, want.len);
        expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, cases[i].hex);
        cr_expect_eq(it.type, OTPCA_CBOR_BYTES);
        cr_expect_eq(it.u, content.len);
        cr_expect_eq(it.str.len, content.len);
        cr_expect_eq(it.str.p, want.p + 1, "%s: content not read in place", cases[i].hex);
        cr_expect_eq(d.pos, want.len);

        otpca_buf out = {0};
        otpca_cbor_dec_init(&d, want.p, want.len);
        expect_err(otpca_cbor_get_bytes(&d, 0, SIZE_MAX, &out), OTPCA_ERR_OK, cases[i].hex);
        cr_expect_eq(out.len, content.len);
        cr_expect_eq(out.p, want.p + 1);
        if (out.len == content.len && content.len)
            cr_expect_eq(memcmp(out.p, content.p, content.len), 0);
        expect_err(otpca_cbor_validate(want.p, want.len), OTPCA_ERR_OK, cases[i].hex);
        blob_free(&content);
        blob_free(&want);
    }
}

#define STR(s) {s, sizeof(s) - 1}

Test(cbor, rfc_text_strings_encode_and_decode)
{
    static const struct {
        const char *s;
        size_t len;
        const char *hex;
    } cases[] = {
        {"", 0, "60"},
        {"a", 1, "6161"},
        {"IETF", 4, "6449455446"},
        {"\"\\", 2, "62225c"},
        {"\xc3\xbc", 2, "62c3bc"},              /* U+00FC */
        {"\xe6\xb0\xb4", 3, "63e6b0b4"},        /* U+6C34 */
        {"\xf0\x90\x85\x91", 4, "64f0908591"}, /* U+10151 */
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        const char *hex = cases[i].hex;
        blob want = blob_hex(hex);
        uint8_t buf[16];
        size_t len = 0;
        otpca_cbor_enc e;
        otpca_cbor_enc_init(&e, buf, sizeof buf);
        otpca_cbor_put_text(&e, cases[i].s, cases[i].len);
        expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, hex);
        cr_expect(len == want.len && memcmp(buf, want.p, len) == 0, "put_text = %s, want %s",
                  hexstr(buf, len), hex);

        otpca_cbor_dec d;
        otpca_cbor_item it;
        otpca_cbor_dec_init(&d, want.p, want.len);
        expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, hex);
        cr_expect_eq(it.type, OTPCA_CBOR_TEXT, "%s: type %d", hex, (int)it.type);
        cr_expect_eq(it.u, cases[i].len);
        cr_expect_eq(it.str.len, cases[i].len);
        cr_expect_eq(it.str.p, want.p + 1);
        cr_expect_eq(d.pos, want.len);

        otpca_buf out = {0};
        otpca_cbor_dec_init(&d, want.p, want.len);
        expect_err(otpca_cbor_get_text(&d, cases[i].len, cases[i].len, &out), OTPCA_ERR_OK, hex);
        cr_expect(out.len == cases[i].len && memcmp(out.p, cases[i].s, out.len) == 0,
                  "%s: get_text content", hex);
        expect_err(otpca_cbor_validate(want.p, want.len), OTPCA_ERR_OK, hex);
        blob_free(&want);
    }
}

/* Strings whose length sits on each head-width boundary, both ways. */
Test(cbor, strings_at_length_boundaries_round_trip)
{
    static const size_t lens[] = {0, 1, 23, 24, 255, 256, 65535, 65536};
    for (size_t i = 0; i < N_OF(lens); i++) {
        for (int text = 0; text <= 1; text++) {
            size_t n = lens[i];
            uint8_t *content = malloc(n ? n : 1);
            cr_assert_not_null(content);
            memset(content, text ? 'x' : 0xa5, n);
            size_t cap = otpca_cbor_head_size(n) + n;
            uint8_t *buf = malloc(cap);
            cr_assert_not_null(buf);
            otpca_cbor_enc e;
            otpca_cbor_enc_init(&e, buf, cap);
            if (text)
                otpca_cbor_put_text(&e, (const char *)content, n);
            else
                otpca_cbor_put_bytes(&e, content, n);
            size_t len = 0;
            expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, "put string");
            cr_expect_eq(len, cap, "length %zu: %zu bytes", n, len);
            uint8_t head[9];
            size_t hl = make_head(head, text ? 3 : 2, n, 0);
            cr_expect_eq(memcmp(buf, head, hl), 0, "length %zu: head %s", n, hexstr(buf, hl));
            cr_expect_eq(memcmp(buf + hl, content, n), 0, "length %zu: content", n);

            otpca_cbor_dec d;
            otpca_buf out = {0};
            otpca_cbor_dec_init(&d, buf, len);
            otpca_err ret = text ? otpca_cbor_get_text(&d, n, n, &out)
                                 : otpca_cbor_get_bytes(&d, n, n, &out);
            expect_err(ret, OTPCA_ERR_OK, "get string");
            cr_expect_eq(out.p, buf + hl, "length %zu", n);
            cr_expect_eq(out.len, n);
            expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "string consumed");
            /* One byte short: truncated, never a shorter string. */
            expect_err(otpca_cbor_validate(buf, len - 1), OTPCA_ERR_CBOR_TRUNCATED,
                       "string one byte short");
            free(buf);
            free(content);
        }
    }
}

/* --------------------------------------- Appendix A: arrays, maps, tags */

static const uint8_t bytes_01020304[] = {1, 2, 3, 4};
static const uint8_t bytes_6449455446[] = {0x64, 0x49, 0x45, 0x54, 0x46};
static const uint8_t bignum_content[] = {1, 0, 0, 0, 0, 0, 0, 0, 0};

static void put_cstr(otpca_cbor_enc *e, const char *s) { otpca_cbor_put_text(e, s, strlen(s)); }

static void enc_false(otpca_cbor_enc *e) { otpca_cbor_put_bool(e, false); }
static void enc_true(otpca_cbor_enc *e) { otpca_cbor_put_bool(e, true); }
static void enc_null(otpca_cbor_enc *e) { otpca_cbor_put_null(e); }
static void enc_bytes_empty(otpca_cbor_enc *e) { otpca_cbor_put_bytes(e, bytes_01020304, 0); }
static void enc_bytes_1234(otpca_cbor_enc *e)
{
    otpca_cbor_put_bytes(e, bytes_01020304, sizeof bytes_01020304);
}
static void enc_bytes_head_raw(otpca_cbor_enc *e)
{
    otpca_cbor_put_bytes_head(e, sizeof bytes_01020304);
    otpca_cbor_put_raw(e, bytes_01020304, sizeof bytes_01020304);
}
static void enc_text_ietf(otpca_cbor_enc *e) { put_cstr(e, "IETF"); }
static void enc_array_empty(otpca_cbor_enc *e) { otpca_cbor_put_array(e, 0); }
static void enc_array_123(otpca_cbor_enc *e)
{
    otpca_cbor_put_array(e, 3);
    for (uint64_t i = 1; i <= 3; i++)
        otpca_cbor_put_uint(e, i);
}
static void enc_array_nested(otpca_cbor_enc *e)
{
    otpca_cbor_put_array(e, 3);
    otpca_cbor_put_uint(e, 1);
    otpca_cbor_put_array(e, 2);
    otpca_cbor_put_uint(e, 2);
    otpca_cbor_put_uint(e, 3);
    otpca_cbor_put_array(e, 2);
    otpca_cbor_put_uint(e, 4);
    otpca_cbor_put_uint(e, 5);
}
static void enc_array_25(otpca_cbor_enc *e)
{
    otpca_cbor_put_array(e, 25);
    for (uint64_t i = 1; i <= 25; i++)
        otpca_cbor_put_uint(e, i);
}
static void enc_map_empty(otpca_cbor_enc *e) { otpca_cbor_put_map(e, 0); }
static void enc_map_1234(otpca_cbor_enc *e)
{
    otpca_cbor_put_map(e, 2);
    for (uint64_t i = 1; i <= 4; i++)
        otpca_cbor_put_uint(e, i);
}
static void enc_map_ab(otpca_cbor_enc *e)
{
    otpca_cbor_put_map(e, 2);
    put_cstr(e, "a");
    otpca_cbor_put_uint(e, 1);
    put_cstr(e, "b");
    otpca_cbor_put_array(e, 2);
    otpca_cbor_put_uint(e, 2);
    otpca_cbor_put_uint(e, 3);
}
static void enc_array_a_map(otpca_cbor_enc *e)
{
    otpca_cbor_put_array(e, 2);
    put_cstr(e, "a");
    otpca_cbor_put_map(e, 1);
    put_cstr(e, "b");
    put_cstr(e, "c");
}
static void enc_map_5(otpca_cbor_enc *e)
{
    static const char *const kv[] = {"a", "A", "b", "B", "c", "C", "d", "D", "e", "E"};
    otpca_cbor_put_map(e, 5);
    for (size_t i = 0; i < N_OF(kv); i++)
        put_cstr(e, kv[i]);
}
static void enc_tag0(otpca_cbor_enc *e)
{
    otpca_cbor_put_tag(e, 0);
    put_cstr(e, "2013-03-21T20:04:00Z");
}
static void enc_tag1(otpca_cbor_enc *e)
{
    otpca_cbor_put_tag(e, 1);
    otpca_cbor_put_uint(e, 1363896240);
}
static void enc_tag23(otpca_cbor_enc *e)
{
    otpca_cbor_put_tag(e, 23);
    otpca_cbor_put_bytes(e, bytes_01020304, sizeof bytes_01020304);
}
static void enc_tag24(otpca_cbor_enc *e)
{
    otpca_cbor_put_tag(e, 24);
    otpca_cbor_put_bytes(e, bytes_6449455446, sizeof bytes_6449455446);
}
static void enc_tag32(otpca_cbor_enc *e)
{
    otpca_cbor_put_tag(e, 32);
    put_cstr(e, "http://www.example.com");
}
static void enc_bignum(otpca_cbor_enc *e)
{
    otpca_cbor_put_tag(e, 2);
    otpca_cbor_put_bytes(e, bignum_content, sizeof bignum_content);
}
static void enc_negbignum(otpca_cbor_enc *e)
{
    otpca_cbor_put_tag(e, 3);
    otpca_cbor_put_bytes(e, bignum_content, sizeof bignum_content);
}
static void enc_raw_nested(otpca_cbor_enc *e)
{
    static const uint8_t raw[] = {0x82, 0x02, 0x03};
    otpca_cbor_put_array(e, 3);
    otpca_cbor_put_uint(e, 1);
    otpca_cbor_put_raw(e, raw, sizeof raw);
    otpca_cbor_put_raw(e, raw, 0);
    otpca_cbor_put_array(e, 2);
    otpca_cbor_put_int(e, 4);
    otpca_cbor_put_int(e, 5);
}

typedef void (*enc_fn)(otpca_cbor_enc *);

static const struct {
    const char *hex;
    enc_fn fn;
} enc_vectors[] = {
    {"f4", enc_false},
    {"f5", enc_true},
    {"f6", enc_null},
    {"40", enc_bytes_empty},
    {"4401020304", enc_bytes_1234},
    {"4401020304", enc_bytes_head_raw},
    {"6449455446", enc_text_ietf},
    {"80", enc_array_empty},
    {"83010203", enc_array_123},
    {"8301820203820405", enc_array_nested},
    {"8301820203820405", enc_raw_nested},
    {"98190102030405060708090a0b0c0d0e0f101112131415161718181819", enc_array_25},
    {"a0", enc_map_empty},
    {"a201020304", enc_map_1234},
    {"a26161016162820203", enc_map_ab},
    {"826161a161626163", enc_array_a_map},
    {"a56161614161626142616361436164614461656145", enc_map_5},
    {"c074323031332d30332d32315432303a30343a30305a", enc_tag0},
    {"c11a514b67b0", enc_tag1},
    {"d74401020304", enc_tag23},
    {"d818456449455446", enc_tag24},
    {"d82076687474703a2f2f7777772e6578616d706c652e636f6d", enc_tag32},
    {"c249010000000000000000", enc_bignum},
    {"c349010000000000000000", enc_negbignum},
};

#define CANARY_LEN 16
#define CANARY 0xa5

/* Exact bytes, the same length when only counting, and for every cap
 * short of the need: BUFFER_TOO_SMALL and nothing written at or past cap. */
Test(cbor, rfc_composites_encode_exactly_count_the_same_and_never_overflow)
{
    for (size_t i = 0; i < N_OF(enc_vectors); i++) {
        const char *hex = enc_vectors[i].hex;
        blob want = blob_hex(hex);
        size_t total = want.len + CANARY_LEN;
        uint8_t *buf = malloc(total);
        cr_assert_not_null(buf);
        otpca_cbor_enc e;
        size_t len = 0;

        memset(buf, CANARY, total);
        otpca_cbor_enc_init(&e, buf, want.len);
        enc_vectors[i].fn(&e);
        expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, hex);
        cr_expect(len == want.len && memcmp(buf, want.p, len) == 0, "vector %zu: %s, want %s", i,
                  hexstr(buf, len), hex);

        otpca_cbor_enc_init(&e, NULL, 0);
        enc_vectors[i].fn(&e);
        len = 0;
        expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, hex);
        cr_expect_eq(len, want.len, "%s: counted %zu", hex, len);

        for (size_t cap = 0; cap < want.len; cap++) {
            memset(buf, CANARY, total);
            otpca_cbor_enc_init(&e, buf, cap);
            enc_vectors[i].fn(&e);
            expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_BUFFER_TOO_SMALL, hex);
            cr_expect_leq(e.len, cap, "%s cap %zu: len %zu", hex, cap, e.len);
            for (size_t k = cap; k < total; k++)
                cr_expect_eq(buf[k], CANARY, "%s cap %zu: byte %zu written", hex, cap, k);
            /* What did get written is a prefix of the right encoding. */
            for (size_t k = 0; k < cap; k++)
                cr_expect(buf[k] == CANARY || buf[k] == want.p[k], "%s cap %zu: byte %zu = %02x",
                          hex, cap, k, buf[k]);
        }
        free(buf);
        blob_free(&want);
    }
}

Test(cbor, rfc_arrays_decode_with_getters)
{
    otpca_cbor_dec d;
    size_t n = 99;
    uint64_t v = 0;

    blob b = blob_hex("80");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_array(&d, 0, &n), OTPCA_ERR_OK, "[]");
    cr_expect_eq(n, 0);
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "[]");
    blob_free(&b);

    b = blob_hex("83010203");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_array(&d, 3, &n), OTPCA_ERR_OK, "[1,2,3]");
    cr_expect_eq(n, 3);
    for (uint64_t i = 1; i <= 3; i++) {
        expect_err(otpca_cbor_get_uint(&d, 3, &v), OTPCA_ERR_OK, "[1,2,3] element");
        cr_expect_eq(v, i);
    }
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "[1,2,3]");
    blob_free(&b);

    b = blob_hex("8301820203820405");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_array(&d, 3, &n), OTPCA_ERR_OK, "[1,[2,3],[4,5]]");
    cr_expect_eq(n, 3);
    expect_err(otpca_cbor_get_uint(&d, 10, &v), OTPCA_ERR_OK, "1");
    cr_expect_eq(v, 1);
    for (uint64_t k = 2; k <= 4; k += 2) {
        expect_err(otpca_cbor_get_array(&d, 2, &n), OTPCA_ERR_OK, "inner array");
        cr_expect_eq(n, 2);
        expect_err(otpca_cbor_get_uint(&d, 10, &v), OTPCA_ERR_OK, "inner 1");
        cr_expect_eq(v, k);
        expect_err(otpca_cbor_get_uint(&d, 10, &v), OTPCA_ERR_OK, "inner 2");
        cr_expect_eq(v, k + 1);
    }
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "[1,[2,3],[4,5]]");
    blob_free(&b);

    b = blob_hex("98190102030405060708090a0b0c0d0e0f101112131415161718181819");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_array(&d, 24, &n), OTPCA_ERR_CBOR_LIMIT, "25 > max 24");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_array(&d, 25, &n), OTPCA_ERR_OK, "[1..25]");
    cr_expect_eq(n, 25);
    cr_expect_eq(d.pos, 2, "the 25-element head is 2 bytes");
    for (uint64_t i = 1; i <= 25; i++) {
        expect_err(otpca_cbor_get_uint(&d, 25, &v), OTPCA_ERR_OK, "[1..25] element");
        cr_expect_eq(v, i);
    }
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "[1..25]");
    blob_free(&b);
}

static void expect_text(otpca_cbor_dec *d, const char *want)
{
    otpca_buf out = {0};
    expect_err(otpca_cbor_get_text(d, 0, 64, &out), OTPCA_ERR_OK, want);
    cr_expect(out.len == strlen(want) && memcmp(out.p, want, out.len) == 0, "text, want \"%s\"",
              want);
}

Test(cbor, rfc_maps_decode_with_getters)
{
    otpca_cbor_dec d;
    size_t n = 99;
    uint64_t v = 0;

    blob b = blob_hex("a0");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_map(&d, 0, &n), OTPCA_ERR_OK, "{}");
    cr_expect_eq(n, 0);
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "{}");
    blob_free(&b);

    b = blob_hex("a201020304");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_map(&d, 1, &n), OTPCA_ERR_CBOR_LIMIT, "2 pairs > max 1");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_map(&d, 2, &n), OTPCA_ERR_OK, "{1:2,3:4}");
    cr_expect_eq(n, 2);
    for (uint64_t i = 1; i <= 4; i++) {
        expect_err(otpca_cbor_get_uint(&d, 4, &v), OTPCA_ERR_OK, "{1:2,3:4} key/value");
        cr_expect_eq(v, i);
    }
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "{1:2,3:4}");
    blob_free(&b);

    b = blob_hex("a26161016162820203");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_map(&d, 2, &n), OTPCA_ERR_OK, "{\"a\":1,\"b\":[2,3]}");
    cr_expect_eq(n, 2);
    expect_text(&d, "a");
    expect_err(otpca_cbor_get_uint(&d, 9, &v), OTPCA_ERR_OK, "1");
    cr_expect_eq(v, 1);
    expect_text(&d, "b");
    expect_err(otpca_cbor_get_array(&d, 2, &n), OTPCA_ERR_OK, "[2,3]");
    cr_expect_eq(n, 2);
    expect_err(otpca_cbor_get_uint(&d, 9, &v), OTPCA_ERR_OK, "2");
    cr_expect_eq(v, 2);
    expect_err(otpca_cbor_get_uint(&d, 9, &v), OTPCA_ERR_OK, "3");
    cr_expect_eq(v, 3);
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "{\"a\":1,\"b\":[2,3]}");
    blob_free(&b);

    b = blob_hex("826161a161626163");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_array(&d, 2, &n), OTPCA_ERR_OK, "[\"a\",{\"b\":\"c\"}]");
    expect_text(&d, "a");
    expect_err(otpca_cbor_get_map(&d, 1, &n), OTPCA_ERR_OK, "{\"b\":\"c\"}");
    cr_expect_eq(n, 1);
    expect_text(&d, "b");
    expect_text(&d, "c");
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "[\"a\",{\"b\":\"c\"}]");
    blob_free(&b);
}

Test(cbor, rfc_tags_decode_with_getters)
{
    otpca_cbor_dec d;
    uint64_t v = 0;
    otpca_buf out = {0};

    blob b = blob_hex("c11a514b67b0");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_tag(&d, 1), OTPCA_ERR_OK, "1(1363896240)");
    cr_expect_eq(d.pos, 1);
    expect_err(otpca_cbor_get_uint(&d, UINT32_MAX, &v), OTPCA_ERR_OK, "1363896240");
    cr_expect_eq(v, 1363896240);
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "1(1363896240)");
    blob_free(&b);

    b = blob_hex("c074323031332d30332d32315432303a30343a30305a");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_tag(&d, 0), OTPCA_ERR_OK, "0(...)");
    expect_text(&d, "2013-03-21T20:04:00Z");
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "0(...)");
    blob_free(&b);

    b = blob_hex("d74401020304");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_tag(&d, 23), OTPCA_ERR_OK, "23(h'01020304')");
    expect_err(otpca_cbor_get_bytes(&d, 4, 4, &out), OTPCA_ERR_OK, "h'01020304'");
    cr_expect(out.len == 4 && memcmp(out.p, bytes_01020304, 4) == 0);
    blob_free(&b);

    b = blob_hex("d818456449455446");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_tag(&d, 24), OTPCA_ERR_OK, "24(h'6449455446')");
    cr_expect_eq(d.pos, 2);
    expect_err(otpca_cbor_get_bytes(&d, 5, 5, &out), OTPCA_ERR_OK, "h'6449455446'");
    /* the content is itself CBOR ("IETF") */
    expect_err(otpca_cbor_validate(out.p, out.len), OTPCA_ERR_OK, "embedded \"IETF\"");
    blob_free(&b);

    b = blob_hex("d82076687474703a2f2f7777772e6578616d706c652e636f6d");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_tag(&d, 32), OTPCA_ERR_OK, "32(url)");
    expect_text(&d, "http://www.example.com");
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "32(url)");
    blob_free(&b);

    static const char *const bignums[] = {"c249010000000000000000", "c349010000000000000000"};
    for (unsigned i = 0; i < 2; i++) {
        b = blob_hex(bignums[i]);
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_get_tag(&d, 2 + i), OTPCA_ERR_OK, bignums[i]);
        expect_err(otpca_cbor_get_bytes(&d, 9, 9, &out), OTPCA_ERR_OK, bignums[i]);
        cr_expect(out.len == 9 && memcmp(out.p, bignum_content, 9) == 0);
        expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, bignums[i]);
        blob_free(&b);
    }
}

/* Every one-byte tag head 0xc0..0xd7 (COSE_Sign1 is 18, one of those
 * libcbor 0.8 calls unassigned), and tags past 23 in their shortest form. */
Test(cbor, every_small_tag_number_round_trips)
{
    static const uint64_t tags[] = {0,   1,     2,     3,      4,      5,      6,
                                    7,   8,     9,     10,     11,     12,     13,
                                    14,  15,    16,    17,     18,     19,     20,
                                    21,  22,    23,    24,     98,     255,    256,
                                    65535, 65536, 55799, UINT32_MAX, 1ULL << 32, UINT64_MAX};
    for (size_t i = 0; i < N_OF(tags); i++) {
        uint8_t buf[16];
        otpca_cbor_enc e;
        size_t len = 0;
        otpca_cbor_enc_init(&e, buf, sizeof buf);
        otpca_cbor_put_tag(&e, tags[i]);
        otpca_cbor_put_uint(&e, 0);
        expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, "put_tag");
        uint8_t want[16];
        size_t wl = make_head(want, 6, tags[i], 0);
        want[wl++] = 0x00;
        cr_expect(len == wl && memcmp(buf, want, wl) == 0, "tag %" PRIu64 ": %s", tags[i],
                  hexstr(buf, len));

        blob b = blob_of(buf, len);
        otpca_cbor_dec d;
        otpca_cbor_item it;
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, "tag head");
        cr_expect_eq(it.type, OTPCA_CBOR_TAG, "tag %" PRIu64 ": type %d", tags[i], (int)it.type);
        cr_expect_eq(it.u, tags[i], "tag %" PRIu64 ": number %" PRIu64, tags[i], it.u);
        cr_expect_eq(d.pos, otpca_cbor_head_size(tags[i]));
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_get_tag(&d, tags[i]), OTPCA_ERR_OK, "get_tag");
        expect_err(otpca_cbor_validate(b.p, b.len), OTPCA_ERR_OK, "tag(0)");
        blob_free(&b);
    }
}

Test(cbor, rfc_false_true_null_decode)
{
    static const struct {
        const char *hex;
        otpca_cbor_type type;
        uint64_t u;
    } cases[] = {{"f4", OTPCA_CBOR_BOOL, 0}, {"f5", OTPCA_CBOR_BOOL, 1}, {"f6", OTPCA_CBOR_NULL, 0}};
    for (size_t i = 0; i < N_OF(cases); i++) {
        blob b = blob_hex(cases[i].hex);
        otpca_cbor_dec d;
        otpca_cbor_item it;
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, cases[i].hex);
        cr_expect_eq(it.type, cases[i].type, "%s: type %d", cases[i].hex, (int)it.type);
        cr_expect_eq(it.u, cases[i].u, "%s", cases[i].hex);
        cr_expect_eq(d.pos, 1);
        bool bv = !cases[i].u;
        otpca_cbor_dec_init(&d, b.p, b.len);
        if (cases[i].type == OTPCA_CBOR_BOOL) {
            expect_err(otpca_cbor_get_bool(&d, &bv), OTPCA_ERR_OK, cases[i].hex);
            cr_expect_eq(bv, cases[i].u != 0, "%s", cases[i].hex);
        } else {
            expect_err(otpca_cbor_get_bool(&d, &bv), OTPCA_ERR_CBOR_TYPE, "get_bool(null)");
            cr_expect_eq(d.pos, 0);
        }
        expect_err(otpca_cbor_validate(b.p, b.len), OTPCA_ERR_OK, cases[i].hex);
        blob_free(&b);
    }
}

/* Every valid vector: validate accepts it, and walking it item by item and
 * encoding each item again gives back the same bytes. */
static const char *const valid_vectors[] = {
    "00", "01", "0a", "17", "1818", "1819", "1864", "1903e8", "1a000f4240",
    "1b000000e8d4a51000", "1bffffffffffffffff", "c249010000000000000000",
    "3bffffffffffffffff", "c349010000000000000000", "20", "29", "3863", "3903e7", "f4",
    "f5", "f6", "c074323031332d30332d32315432303a30343a30305a", "c11a514b67b0",
    "d74401020304", "d818456449455446",
    "d82076687474703a2f2f7777772e6578616d706c652e636f6d", "40", "4401020304", "60", "6161",
    "6449455446", "62225c", "62c3bc", "63e6b0b4", "64f0908591", "80", "83010203",
    "8301820203820405", "98190102030405060708090a0b0c0d0e0f101112131415161718181819", "a0",
    "a201020304", "a26161016162820203", "826161a161626163",
    "a56161614161626142616361436164614461656145",
};

Test(cbor, rfc_valid_vectors_validate_and_reencode_identically)
{
    for (size_t i = 0; i < N_OF(valid_vectors); i++) {
        const char *hex = valid_vectors[i];
        blob b = blob_hex(hex);
        expect_err(otpca_cbor_validate(b.p, b.len), OTPCA_ERR_OK, hex);

        uint8_t out[64];
        otpca_cbor_enc e;
        otpca_cbor_dec d;
        otpca_cbor_item it;
        otpca_cbor_enc_init(&e, out, sizeof out);
        otpca_cbor_dec_init(&d, b.p, b.len);
        size_t items = 0;
        while (d.pos < d.len && items++ < 64) {
            size_t start = d.pos;
            otpca_err ret = otpca_cbor_next(&d, &it);
            expect_err(ret, OTPCA_ERR_OK, hex);
            if (ret)
                break;
            switch (it.type) {
            case OTPCA_CBOR_UINT:
                otpca_cbor_put_uint(&e, it.u);
                break;
            case OTPCA_CBOR_NINT:
                if (it.u <= (uint64_t)INT64_MAX)
                    otpca_cbor_put_int(&e, -1 - (int64_t)it.u);
                else /* no put for it: copy */
                    otpca_cbor_put_raw(&e, b.p + start, d.pos - start);
                break;
            case OTPCA_CBOR_BYTES:
                cr_expect(it.str.p >= b.p && it.str.p + it.str.len <= b.p + b.len);
                otpca_cbor_put_bytes(&e, it.str.p, it.str.len);
                break;
            case OTPCA_CBOR_TEXT:
                cr_expect(it.str.p >= b.p && it.str.p + it.str.len <= b.p + b.len);
                otpca_cbor_put_text(&e, (const char *)it.str.p, it.str.len);
                break;
            case OTPCA_CBOR_ARRAY:
                otpca_cbor_put_array(&e, (size_t)it.u);
                break;
            case OTPCA_CBOR_MAP:
                otpca_cbor_put_map(&e, (size_t)it.u);
                break;
            case OTPCA_CBOR_TAG:
                otpca_cbor_put_tag(&e, it.u);
                break;
            case OTPCA_CBOR_BOOL:
                otpca_cbor_put_bool(&e, it.u != 0);
                break;
            case OTPCA_CBOR_NULL:
                otpca_cbor_put_null(&e);
                break;
            default:
                cr_expect_fail("%s: unknown type %d", hex, (int)it.type);
            }
        }
        size_t len = 0;
        expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, hex);
        cr_expect(len == b.len && memcmp(out, b.p, len) == 0, "%s re-encoded as %s", hex,
                  hexstr(out, len));
        blob_free(&b);
    }
}

/* ------------------------------------------------------------ refusals */

Test(cbor, rfc_floats_are_refused_as_wrong_type)
{
    static const char *const floats[] = {
        "f90000",             "f98000",             "f93c00",     "fb3ff199999999999a",
        "f93e00",             "f97bff",             "fa47c35000", "fa7f7fffff",
        "fb7e37e43c8800759c", "f90001",             "f90400",     "f9c400",
        "fbc010666666666666", "f97c00",             "f97e00",     "f9fc00",
        "fa7f800000",         "fa7fc00000",         "faff800000", "fb7ff0000000000000",
        "fb7ff8000000000000", "fbfff0000000000000",
    };
    for (size_t i = 0; i < N_OF(floats); i++) {
        expect_refused_in_place(floats[i], OTPCA_ERR_CBOR_TYPE);
        blob b = blob_hex(floats[i]);
        otpca_cbor_dec d;
        uint64_t v;
        int64_t s;
        bool bv;
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_get_uint(&d, UINT64_MAX, &v), OTPCA_ERR_CBOR_TYPE, floats[i]);
        expect_err(otpca_cbor_get_int(&d, &s), OTPCA_ERR_CBOR_TYPE, floats[i]);
        expect_err(otpca_cbor_get_bool(&d, &bv), OTPCA_ERR_CBOR_TYPE, floats[i]);
        cr_expect_eq(d.pos, 0);
        expect_err(otpca_cbor_skip(&d), OTPCA_ERR_CBOR_TYPE, floats[i]);
        blob_free(&b);
    }
    /* inside other items too: 1(1363896240.5) and [1, 1.5] */
    expect_err(validate_hex("c1fb41d452d9ec200000"), OTPCA_ERR_CBOR_TYPE, "1(1363896240.5)");
    expect_err(validate_hex("8201f93e00"), OTPCA_ERR_CBOR_TYPE, "[1, 1.5]");
    expect_err(validate_hex("a1f93e0001"), OTPCA_ERR_CBOR_TYPE, "{1.5: 1}");
}

/* undefined, simple(0..19), simple(24..255) and the two-byte forms of
 * false/true/null: not in the subset. */
Test(cbor, undefined_and_other_simple_values_are_refused)
{
    static const char *const simple[] = {"f7",   "e0",   "e1",   "f0",   "f3",   "f8ff",
                                         "f818", "f820", "f814", "f815", "f816", "f800"};
    for (size_t i = 0; i < N_OF(simple); i++)
        expect_refused_in_place(simple[i], OTPCA_ERR_CBOR_MALFORMED);
    for (unsigned ib = 0xe0; ib <= 0xf8; ib++) {
        if (ib >= 0xf4 && ib <= 0xf6)
            continue;
        uint8_t in[2] = {(uint8_t)ib, 0x40};
        blob b = blob_of(in, sizeof in);
        otpca_cbor_dec d;
        otpca_cbor_item it;
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_CBOR_MALFORMED, "simple value head");
        cr_expect_eq(d.pos, 0, "0x%02x moved", ib);
        blob_free(&b);
    }
    expect_err(validate_hex("8201f7"), OTPCA_ERR_CBOR_MALFORMED, "[1, undefined]");
    /* A lone break is no item at all. */
    cr_expect_neq(validate_hex("ff"), OTPCA_ERR_OK, "lone break accepted");
    cr_expect_neq(validate_hex("8201ff"), OTPCA_ERR_OK, "break in a definite array accepted");
}

Test(cbor, rfc_indefinite_lengths_are_noncanonical)
{
    static const char *const indef[] = {
        "5f42010243030405ff",
        "7f657374726561646d696e67ff",
        "9fff",
        "9f018202039f0405ffff",
        "9f01820203820405ff",
        "83018202039f0405ff",
        "83019f0203ff820405",
        "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
        "bf61610161629f0203ffff",
        "826161bf61626163ff",
        "bf6346756ef563416d7421ff",
        /* empty ones and a bare start byte */
        "5fff",
        "7fff",
        "bfff",
        "5f",
        "7f",
        "9f",
        "bf",
    };
    for (size_t i = 0; i < N_OF(indef); i++)
        expect_err(validate_hex(indef[i]), OTPCA_ERR_CBOR_NONCANONICAL, indef[i]);
    /* otpca_cbor_next refuses the start byte itself and stays put */
    static const char *const starts[] = {"5f42010243030405ff", "7f657374726561646d696e67ff",
                                         "9f01820203820405ff", "bf6346756ef563416d7421ff"};
    for (size_t i = 0; i < N_OF(starts); i++)
        expect_refused_in_place(starts[i], OTPCA_ERR_CBOR_NONCANONICAL);
}

/* Non-shortest heads, the ones named in RFC 8949 4.2.1 and some more. */
Test(cbor, non_shortest_heads_are_noncanonical)
{
    static const char *const cases[] = {
        "1805", "1817", "190010", "1900ff", "1a0000ffff", "1a00000010", "1b00000000ffffffff",
        "1b0000000000000000", "3800", "3817", "3900ff", "3a0000ffff", "3b00000000ffffffff",
        "580100", "58017a", "5900017a", "5a000000017a", "5b00000000000000017a", "5800", "780161",
        "79000161", "7a0000000161", "7b000000000000000161", "7800", "980101", "9800",
        "9900020102", "9a000000010a", "9b00000000000000010a", "b800", "b8010102", "b900010102",
        "d80100", "d81200", "d90001 00", "d9001200", "da0000001200", "db000000000000001200",
    };
    for (size_t i = 0; i < N_OF(cases); i++)
        expect_refused_in_place(cases[i], OTPCA_ERR_CBOR_NONCANONICAL);
    /* ... also when nested */
    expect_err(validate_hex("811805"), OTPCA_ERR_CBOR_NONCANONICAL, "[0x18 0x05]");
    expect_err(validate_hex("a1011805"), OTPCA_ERR_CBOR_NONCANONICAL, "{1: 0x18 0x05}");
    expect_err(validate_hex("a1180501"), OTPCA_ERR_CBOR_NONCANONICAL, "{0x18 0x05: 1}");
    expect_err(validate_hex("c1190010"), OTPCA_ERR_CBOR_NONCANONICAL, "1(0x19 0x0010)");
}

/* Every major type, every wider width than needed, at and around the
 * boundaries: NONCANONICAL; the shortest form of the same: accepted. */
Test(cbor, every_wider_head_width_is_noncanonical)
{
    static const uint64_t vals[] = {0, 1, 23, 24, 255, 256, 65535, 65536, UINT32_MAX};
    for (unsigned major = 0; major <= 6; major++) {
        for (size_t vi = 0; vi < N_OF(vals); vi++) {
            uint64_t v = vals[vi];
            /* strings and containers need their content: keep those small */
            if (major >= 2 && major <= 5 && v > 24)
                continue;
            uint8_t head[9];
            size_t shortest = make_head(head, major, v, 0);
            for (unsigned ai = 0; ai <= 27; ai = ai ? ai + 1 : 24) {
                uint8_t buf[128];
                size_t hl = make_head(buf, major, v, ai);
                if (ai && hl <= shortest)
                    continue;
                size_t n = hl;
                if (major == 2 || major == 3)
                    for (uint64_t k = 0; k < v; k++)
                        buf[n++] = 'q';
                else if (major == 4)
                    for (uint64_t k = 0; k < v; k++)
                        buf[n++] = 0x00;
                else if (major == 5)
                    for (uint64_t k = 0; k < v; k++) {
                        buf[n++] = (uint8_t)k; /* keys 0..23, sorted */
                        buf[n++] = 0xf6;
                    }
                else if (major == 6)
                    buf[n++] = 0x00;
                blob b = blob_of(buf, n);
                otpca_err want = ai ? OTPCA_ERR_CBOR_NONCANONICAL : OTPCA_ERR_OK;
                otpca_err got = otpca_cbor_validate(b.p, b.len);
                cr_expect_eq(got, want, "major %u value %" PRIu64 " ai %u (0: shortest) %s: got %s",
                             major, v, ai, hexstr(b.p, b.len), otpca_errname(got));
                otpca_cbor_dec d;
                otpca_cbor_item it;
                otpca_cbor_dec_init(&d, b.p, b.len);
                got = otpca_cbor_next(&d, &it);
                cr_expect_eq(got, want, "next: major %u value %" PRIu64 ": got %s", major, v,
                             otpca_errname(got));
                blob_free(&b);
            }
        }
    }
}

/* Additional information 28, 29, 30 in every major type, 31 where no
 * indefinite form exists (ints, tags). */
Test(cbor, reserved_additional_information_is_malformed)
{
    for (unsigned major = 0; major <= 7; major++) {
        for (unsigned ai = 28; ai <= 31; ai++) {
            if (ai == 31 && major != 0 && major != 1 && major != 6)
                continue;
            uint8_t in[10] = {(uint8_t)(major << 5 | ai), 0, 0, 0, 0, 0, 0, 0, 1, 0};
            blob b = blob_of(in, sizeof in);
            otpca_cbor_dec d;
            otpca_cbor_item it;
            otpca_cbor_dec_init(&d, b.p, b.len);
            otpca_err got = otpca_cbor_next(&d, &it);
            cr_expect_eq(got, OTPCA_ERR_CBOR_MALFORMED, "0x%02x: got %s", in[0],
                         otpca_errname(got));
            cr_expect_eq(d.pos, 0);
            got = otpca_cbor_validate(b.p, b.len);
            cr_expect_eq(got, OTPCA_ERR_CBOR_MALFORMED, "validate 0x%02x: got %s", in[0],
                         otpca_errname(got));
            /* alone, too: refused on sight, not TRUNCATED */
            got = otpca_cbor_validate(b.p, 1);
            cr_expect_eq(got, OTPCA_ERR_CBOR_MALFORMED, "0x%02x alone: got %s", in[0],
                         otpca_errname(got));
            blob_free(&b);
        }
    }
}

/* ------------------------------------------------------------- UTF-8 */

static const struct {
    const char *s;
    size_t len;
} utf8_good[] = {
    STR(""),
    STR("a"),
    STR("IETF"),
    STR("\x00"),
    STR("\x7f"),
    STR("\xc2\x80"),         /* U+0080 */
    STR("\xdf\xbf"),         /* U+07FF */
    STR("\xe0\xa0\x80"),     /* U+0800 */
    STR("\xed\x9f\xbf"),     /* U+D7FF */
    STR("\xee\x80\x80"),     /* U+E000 */
    STR("\xef\xbf\xbf"),     /* U+FFFF */
    STR("\xf0\x90\x80\x80"), /* U+10000 */
    STR("\xf4\x8f\xbf\xbf"), /* U+10FFFF */
    STR("\xc3\xbc\xe6\xb0\xb4\xf0\x90\x85\x91" "a"),
};

static const struct {
    const char *s;
    size_t len;
} utf8_bad[] = {
    STR("\x80"),                     /* lone continuation */
    STR("\xbf"),
    STR("a\x80" "b"),
    STR("\xc0\x80"),                 /* overlong NUL */
    STR("\xc1\xbf"),                 /* overlong U+007F */
    STR("\xe0\x80\x80"),             /* overlong */
    STR("\xe0\x9f\xbf"),             /* overlong U+07FF */
    STR("\xf0\x80\x80\x80"),         /* overlong */
    STR("\xf0\x8f\xbf\xbf"),         /* overlong U+FFFF */
    STR("\xed\xa0\x80"),             /* U+D800 */
    STR("\xed\xbf\xbf"),             /* U+DFFF */
    STR("\xed\xa0\xbd\xed\xb2\xa9"), /* CESU-8 surrogate pair */
    STR("\xc3"),                     /* truncated sequences */
    STR("\xe6\xb0"),
    STR("\xf0\x90\x85"),
    STR("a\xc3"),
    STR("\xc3" "a"),
    STR("\xe6\x41\xb4"),
    STR("\xe6\xb0\x41"),
    STR("\xf0\x90\x85\x41"),
    STR("\xc2\xc2\x80"),
    STR("\xf4\x90\x80\x80"),     /* U+110000 */
    STR("\xf5\x80\x80\x80"),     /* beyond any code point */
    STR("\xf7\xbf\xbf\xbf"),
    STR("\xf8\x88\x80\x80\x80"), /* 5-byte form */
    STR("\xfc\x84\x80\x80\x80\x80"),
    STR("\xfe"),
    STR("\xff"),
};

Test(cbor, utf8_valid_edge_cases)
{
    for (size_t i = 0; i < N_OF(utf8_good); i++) {
        blob b = blob_of(utf8_good[i].s, utf8_good[i].len);
        cr_expect(otpca_utf8_valid(b.p, b.len), "good #%zu (%s) refused", i,
                  hexstr(b.p, b.len));
        blob_free(&b);
    }
    for (size_t i = 0; i < N_OF(utf8_bad); i++) {
        blob b = blob_of(utf8_bad[i].s, utf8_bad[i].len);
        cr_expect(!otpca_utf8_valid(b.p, b.len), "bad #%zu (%s) accepted", i,
                  hexstr(b.p, b.len));
        blob_free(&b);
    }
    /* The length is respected: a valid prefix of an invalid buffer. */
    static const uint8_t s[] = {'o', 'k', 0xff};
    cr_expect(otpca_utf8_valid(s, 2));
    cr_expect(!otpca_utf8_valid(s, 3));
}

Test(cbor, invalid_utf8_in_text_is_malformed_but_fine_in_bytes)
{
    for (size_t i = 0; i < N_OF(utf8_bad); i++) {
        uint8_t buf[32];
        size_t hl = make_head(buf, 3, utf8_bad[i].len, 0);
        memcpy(buf + hl, utf8_bad[i].s, utf8_bad[i].len);
        size_t n = hl + utf8_bad[i].len;
        blob b = blob_of(buf, n);
        otpca_cbor_dec d;
        otpca_cbor_item it;
        otpca_buf out;
        otpca_cbor_dec_init(&d, b.p, b.len);
        otpca_err got = otpca_cbor_next(&d, &it);
        cr_expect_eq(got, OTPCA_ERR_CBOR_MALFORMED, "text %s: got %s", hexstr(b.p, b.len),
                     otpca_errname(got));
        cr_expect_eq(d.pos, 0);
        got = otpca_cbor_get_text(&d, 0, SIZE_MAX, &out);
        cr_expect_eq(got, OTPCA_ERR_CBOR_MALFORMED, "get_text: got %s", otpca_errname(got));
        cr_expect_eq(d.pos, 0);
        got = otpca_cbor_validate(b.p, b.len);
        cr_expect_eq(got, OTPCA_ERR_CBOR_MALFORMED, "validate: got %s", otpca_errname(got));
        blob_free(&b);

        /* inside an array, and as a map key */
        uint8_t nest[34] = {0xa1};
        memcpy(nest + 1, buf, n);
        nest[n + 1] = 0x00;
        b = blob_of(nest, n + 2);
        got = otpca_cbor_validate(b.p, b.len);
        cr_expect_eq(got, OTPCA_ERR_CBOR_MALFORMED, "as a key: got %s", otpca_errname(got));
        b.p[0] = 0x82;
        got = otpca_cbor_validate(b.p, b.len);
        cr_expect_eq(got, OTPCA_ERR_CBOR_MALFORMED, "in an array: got %s", otpca_errname(got));
        blob_free(&b);

        buf[0] = (uint8_t)(buf[0] - 0x20); /* the same as a byte string */
        b = blob_of(buf, n);
        otpca_cbor_dec_init(&d, b.p, b.len);
        got = otpca_cbor_get_bytes(&d, 0, SIZE_MAX, &out);
        cr_expect_eq(got, OTPCA_ERR_OK, "bytes %s: got %s", hexstr(b.p, b.len),
                     otpca_errname(got));
        blob_free(&b);
    }
    for (size_t i = 0; i < N_OF(utf8_good); i++) {
        uint8_t buf[32];
        size_t hl = make_head(buf, 3, utf8_good[i].len, 0);
        memcpy(buf + hl, utf8_good[i].s, utf8_good[i].len);
        blob b = blob_of(buf, hl + utf8_good[i].len);
        expect_err(otpca_cbor_validate(b.p, b.len), OTPCA_ERR_OK, "valid UTF-8 text");
        blob_free(&b);
    }
}

/* ----------------------------------------------------- truncation, trailing */

Test(cbor, truncation_at_every_offset_is_truncated)
{
    static const char *const items[] = {
        "1818",
        "1903e8",
        "1a000f4240",
        "1b000000e8d4a51000",
        "3903e7",
        "3b7fffffffffffffff",
        "4401020304",
        "5818 000102030405060708090a0b0c0d0e0f1011121314151617",
        "6449455446",
        "63e6b0b4",
        "64f0908591",
        "8301820203820405",
        "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
        "a26161016162820203",
        "a56161614161626142616361436164614461656145",
        "826161a161626163",
        "c11a514b67b0",
        "d818456449455446",
        "c249010000000000000000",
        "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
    };
    for (size_t i = 0; i < N_OF(items); i++) {
        blob full = blob_hex(items[i]);
        expect_err(otpca_cbor_validate(full.p, full.len), OTPCA_ERR_OK, items[i]);
        for (size_t k = 0; k < full.len; k++) {
            blob b = blob_of(full.p, k);
            otpca_err got = otpca_cbor_validate(b.p, b.len);
            cr_expect_eq(got, OTPCA_ERR_CBOR_TRUNCATED, "%s cut at %zu: got %s", items[i], k,
                         otpca_errname(got));
            otpca_cbor_dec d;
            otpca_cbor_dec_init(&d, b.p, b.len);
            got = otpca_cbor_skip(&d);
            cr_expect_eq(got, OTPCA_ERR_CBOR_TRUNCATED, "skip %s cut at %zu: got %s", items[i],
                         k, otpca_errname(got));
            blob_free(&b);
        }
        blob_free(&full);
    }
}

/* A single item cut inside its head or content: next/peek/getters say
 * TRUNCATED and do not move. */
Test(cbor, truncated_scalars_refused_by_next_and_getters_in_place)
{
    static const char *const cut[] = {"18", "19e8", "1a000f42", "1b000000e8d4a510", "39",
                                      "3b7fffffffffffff", "44010203", "5818", "63e6b0",
                                      "64f09085", "d8", "d9", "f9", "fa7f80", "fb7ff8"};
    for (size_t i = 0; i < N_OF(cut); i++)
        expect_refused_in_place(cut[i], OTPCA_ERR_CBOR_TRUNCATED);

    blob b = blob_hex("1903");
    otpca_cbor_dec d;
    uint64_t v;
    int64_t s;
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_uint(&d, UINT64_MAX, &v), OTPCA_ERR_CBOR_TRUNCATED, "get_uint");
    expect_err(otpca_cbor_get_int(&d, &s), OTPCA_ERR_CBOR_TRUNCATED, "get_int");
    cr_expect_eq(d.pos, 0);
    blob_free(&b);

    /* nothing at all */
    otpca_cbor_item it;
    static const uint8_t one[1] = {0};
    otpca_cbor_dec_init(&d, one, 0);
    expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_CBOR_TRUNCATED, "empty input");
    expect_err(otpca_cbor_validate(one, 0), OTPCA_ERR_CBOR_TRUNCATED, "validate empty");
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "finish on empty input");
}

Test(cbor, trailing_bytes_after_one_item)
{
    static const char *const cases[] = {"0000", "0100", "8301020304", "f6f6", "a0ff", "4001",
                                        "6161 61", "c10000", "8301820203820405 00"};
    for (size_t i = 0; i < N_OF(cases); i++)
        expect_err(validate_hex(cases[i]), OTPCA_ERR_CBOR_TRAILING, cases[i]);

    blob b = blob_hex("0102");
    otpca_cbor_dec d;
    uint64_t v = 0;
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_CBOR_TRAILING, "nothing read");
    expect_err(otpca_cbor_get_uint(&d, 9, &v), OTPCA_ERR_OK, "first");
    cr_expect_eq(v, 1);
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_CBOR_TRAILING, "one of two read");
    expect_err(otpca_cbor_get_uint(&d, 9, &v), OTPCA_ERR_OK, "second");
    cr_expect_eq(v, 2);
    expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "both read");
    blob_free(&b);
}

/* ----------------------------------------------------------- map keys */

Test(cbor, map_keys_must_be_sorted_bytewise_and_unique)
{
    static const struct {
        const char *hex;
        otpca_err want;
        const char *what;
    } cases[] = {
        {"a201020304", OTPCA_ERR_OK, "{1:2, 3:4}"},
        {"a203040102", OTPCA_ERR_CBOR_KEY_ORDER, "{3:4, 1:2}"},
        {"a201020103", OTPCA_ERR_CBOR_KEY_ORDER, "{1:2, 1:3}"},
        /* 10 < 100 < -1 (0x0a < 0x1864 < 0x20) */
        {"a3 0a00 186400 2000", OTPCA_ERR_OK, "{10, 100, -1}"},
        {"a3 186400 0a00 2000", OTPCA_ERR_CBOR_KEY_ORDER, "{100, 10, -1}"},
        {"a30a002000186400", OTPCA_ERR_CBOR_KEY_ORDER, "{10, -1, 100}"},
        {"a220000a00", OTPCA_ERR_CBOR_KEY_ORDER, "{-1, 10}"},
        /* "z" < "aa" (shorter encoding first) */
        {"a2617a0062616100", OTPCA_ERR_OK, "{\"z\", \"aa\"}"},
        {"a2626161 00617a00", OTPCA_ERR_CBOR_KEY_ORDER, "{\"aa\", \"z\"}"},
        {"a2616101616102", OTPCA_ERR_CBOR_KEY_ORDER, "{\"a\":1, \"a\":2}"},
        {"a2616101616202", OTPCA_ERR_OK, "{\"a\":1, \"b\":2}"},
        {"a2616201616102", OTPCA_ERR_CBOR_KEY_ORDER, "{\"b\":1, \"a\":2}"},
        /* a key that is a prefix of the next sorts first */
        {"a2416100426161 00", OTPCA_ERR_OK, "{h'61', h'6161'}"},
        {"a2426161004161 00", OTPCA_ERR_CBOR_KEY_ORDER, "{h'6161', h'61'}"},
        /* one key of every kind, in major-type order */
        {"aa000020004000600080 00a000c00000f400f500f600", OTPCA_ERR_OK, "mixed keys sorted"},
        {"aa000040002000600080 00a000c00000f400f500f600", OTPCA_ERR_CBOR_KEY_ORDER,
         "h'' before -1"},
        {"aa000020004000600080 00a000c00000f500f400f600", OTPCA_ERR_CBOR_KEY_ORDER,
         "true before false"},
        /* container keys compare by their whole encoding */
        {"a28101008102 00", OTPCA_ERR_OK, "{[1], [2]}"},
        {"a281010081 0100", OTPCA_ERR_CBOR_KEY_ORDER, "{[1], [1]}"},
        /* at every level */
        {"81a203040102", OTPCA_ERR_CBOR_KEY_ORDER, "[{3:4, 1:2}]"},
        {"a101a203040102", OTPCA_ERR_CBOR_KEY_ORDER, "{1: {3:4, 1:2}}"},
        {"a1a20304010200", OTPCA_ERR_CBOR_KEY_ORDER, "{{3:4, 1:2}: 0}"},
        {"c1a201000100", OTPCA_ERR_CBOR_KEY_ORDER, "1({1:0, 1:0})"},
        {"a101a201020304", OTPCA_ERR_OK, "{1: {1:2, 3:4}}"},
    };
    for (size_t i = 0; i < N_OF(cases); i++)
        expect_err(validate_hex(cases[i].hex), cases[i].want, cases[i].what);

    /* skip checks the order as well */
    blob b = blob_hex("a203040102");
    otpca_cbor_dec d;
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_skip(&d), OTPCA_ERR_CBOR_KEY_ORDER, "skip {3:4, 1:2}");
    blob_free(&b);
}

/* ------------------------------------------------------ depth and limits */

/* levels times open, then one 0x00. */
static blob nested(const char *open_hex, size_t levels)
{
    blob open = blob_hex(open_hex);
    size_t n = open.len * levels + 1;
    uint8_t *buf = malloc(n);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < levels; i++)
        memcpy(buf + i * open.len, open.p, open.len);
    buf[n - 1] = 0x00;
    blob b = {buf, n};
    blob_free(&open);
    return b;
}

Test(cbor, nesting_beyond_max_depth_is_limit)
{
    cr_assert_eq(OTPCA_CBOR_MAX_DEPTH, 8);
    /* levels containers around one 0x00: the 0x00 sits at depth levels
     * (the outermost item at depth 0), and depth MAX_DEPTH is the deepest
     * accepted. Arrays, map values, tags, and [0, ...]. */
    static const char *const opens[] = {"81", "a100", "c1", "8200"};
    for (size_t i = 0; i < N_OF(opens); i++) {
        for (size_t levels = 0; levels <= OTPCA_CBOR_MAX_DEPTH + 2; levels++) {
            blob b = nested(opens[i], levels);
            otpca_err want =
                levels <= OTPCA_CBOR_MAX_DEPTH ? OTPCA_ERR_OK : OTPCA_ERR_CBOR_LIMIT;
            otpca_err got = otpca_cbor_validate(b.p, b.len);
            cr_expect_eq(got, want, "%zu x %s: got %s", levels, opens[i], otpca_errname(got));
            otpca_cbor_dec d;
            otpca_cbor_dec_init(&d, b.p, b.len);
            got = otpca_cbor_skip(&d);
            cr_expect_eq(got, want, "skip %zu x %s: got %s", levels, opens[i],
                         otpca_errname(got));
            blob_free(&b);
        }
    }
    /* mixed containers, 9 deep */
    expect_err(validate_hex("81 a100 c1 81 a100 81 c1 a100 81 00"),
               OTPCA_ERR_CBOR_LIMIT, "mixed 9");
    expect_err(validate_hex("81 a100 c1 81 a100 81 c1 a100 00"), OTPCA_ERR_OK,
               "mixed 8");
    /* depth through a map key */
    expect_err(validate_hex("a1 8181818181818181 00 00"), OTPCA_ERR_CBOR_LIMIT,
               "key 9 deep");
    expect_err(validate_hex("a1 81818181818181 00 00"), OTPCA_ERR_OK, "key 8 deep");
}

Test(cbor, very_deep_nesting_fails_fast, .timeout = 10)
{
    blob b = nested("81", 100000);
    expect_err(otpca_cbor_validate(b.p, b.len), OTPCA_ERR_CBOR_LIMIT, "100000 x [");
    blob_free(&b);
    b = nested("c1", 100000);
    expect_err(otpca_cbor_validate(b.p, b.len), OTPCA_ERR_CBOR_LIMIT, "100000 x tag");
    blob_free(&b);
}

/* Counts that the input cannot hold: refused at once, not looped over. */
Test(cbor, huge_array_and_map_counts_fail_fast, .timeout = 10)
{
    static const char *const cases[] = {
        "9b0000000100000000",     /* 2^32 elements, nothing follows */
        "9b000000010000000000",   /* ... one element present */
        "9affffffff00000000",     /* 2^32 - 1 */
        "9bffffffffffffffff0000", /* 2^64 - 1 */
        "bb0000000100000000",     /* 2^32 pairs */
        "bb00000001000000000001", /* ... one pair present */
        "baffffffff0000",
        "bbffffffffffffffff0001",
        "8281 9bffffffffffffffff 00", /* nested */
        "a101 bb0000000100000000 0102",
        "c1 9affffffff 000102",
        "84010203",                             /* 4 elements, 3 present */
        "a3 0102 0304",                     /* 3 pairs, 2 present */
        "a2 0102 03",                       /* half a pair missing */
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        blob b = blob_hex(cases[i]);
        otpca_err got = otpca_cbor_validate(b.p, b.len);
        cr_expect_eq(got, OTPCA_ERR_CBOR_TRUNCATED, "%s: got %s", cases[i], otpca_errname(got));
        otpca_cbor_dec d;
        otpca_cbor_dec_init(&d, b.p, b.len);
        got = otpca_cbor_skip(&d);
        cr_expect_eq(got, OTPCA_ERR_CBOR_TRUNCATED, "skip %s: got %s", cases[i],
                     otpca_errname(got));
        blob_free(&b);
    }
    /* The head itself reads fine: the count is the caller's to bound. */
    blob b = blob_hex("9b0000000100000000");
    otpca_cbor_dec d;
    otpca_cbor_item it;
    size_t n = 0;
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, "2^32 head");
    cr_expect_eq(it.type, OTPCA_CBOR_ARRAY);
    cr_expect_eq(it.u, 1ULL << 32);
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_array(&d, 1000, &n), OTPCA_ERR_CBOR_LIMIT, "2^32 > max 1000");
    blob_free(&b);
}

/* Lengths far past the input, up to ones whose sum with the head size
 * wraps around: TRUNCATED, with no read past the buffer (sanitizer). */
Test(cbor, huge_string_lengths_are_truncated)
{
    static const char *const cases[] = {
        "5bffffffffffffffff",
        "5bffffffffffffffff00",
        "5bfffffffffffffff7",   /* 9 + length wraps to 0 */
        "5bfffffffffffffff8 00", /* ... to 1 */
        "5bfffffffffffffff0 0102030405060708",
        "5b8000000000000000 00",
        "5b0000000100000000 00",
        "5affffffff 01020304",
        "59ffff 0102",
        "58ff 01",
        "7bffffffffffffffff 61",
        "7bfffffffffffffff7",
        "7bfffffffffffffff8 61",
        "7affffffff 61626364",
        "8201 5bfffffffffffffff7",
        "a1 7bfffffffffffffff8 61 00",
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        blob b = blob_hex(cases[i]);
        otpca_err got = otpca_cbor_validate(b.p, b.len);
        cr_expect_eq(got, OTPCA_ERR_CBOR_TRUNCATED, "%s: got %s", cases[i], otpca_errname(got));
        otpca_cbor_dec d;
        otpca_cbor_item it;
        otpca_buf out = {0};
        otpca_cbor_dec_init(&d, b.p, b.len);
        if (b.p[0] >= 0x40 && b.p[0] < 0x80) {
            got = otpca_cbor_next(&d, &it);
            cr_expect_eq(got, OTPCA_ERR_CBOR_TRUNCATED, "next %s: got %s", cases[i],
                         otpca_errname(got));
            got = b.p[0] < 0x60 ? otpca_cbor_get_bytes(&d, 0, SIZE_MAX, &out)
                                : otpca_cbor_get_text(&d, 0, SIZE_MAX, &out);
            cr_expect_eq(got, OTPCA_ERR_CBOR_TRUNCATED, "get %s: got %s", cases[i],
                         otpca_errname(got));
            cr_expect_eq(d.pos, 0);
        }
        blob_free(&b);
    }
}

/* ------------------------------------------------------------- encoder */

Test(cbor, head_size_at_every_width_boundary)
{
    static const struct {
        uint64_t v;
        size_t size;
    } cases[] = {
        {0, 1},     {23, 1},         {24, 2},          {255, 2},
        {256, 3},   {65535, 3},      {65536, 5},       {4294967295ULL, 5},
        {4294967296ULL, 9}, {UINT64_MAX, 9},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        uint64_t v = cases[i].v;
        cr_expect_eq(otpca_cbor_head_size(v), cases[i].size, "head_size(%" PRIu64 ") = %zu", v,
                     otpca_cbor_head_size(v));
        /* and every head the encoder writes has that size and decodes back */
        static const otpca_cbor_type types[] = {OTPCA_CBOR_UINT, OTPCA_CBOR_ARRAY,
                                                OTPCA_CBOR_MAP, OTPCA_CBOR_TAG,
                                                OTPCA_CBOR_BYTES};
        static const unsigned majors[] = {0, 4, 5, 6, 2};
        for (size_t t = 0; t < N_OF(types); t++) {
            uint8_t buf[16], want[9];
            otpca_cbor_enc e;
            size_t len = 0;
            otpca_cbor_enc_init(&e, buf, sizeof buf);
            switch (types[t]) {
            case OTPCA_CBOR_UINT: otpca_cbor_put_uint(&e, v); break;
            case OTPCA_CBOR_ARRAY: otpca_cbor_put_array(&e, (size_t)v); break;
            case OTPCA_CBOR_MAP: otpca_cbor_put_map(&e, (size_t)v); break;
            case OTPCA_CBOR_TAG: otpca_cbor_put_tag(&e, v); break;
            default: otpca_cbor_put_bytes_head(&e, (size_t)v); break;
            }
            expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, "head");
            size_t wl = make_head(want, majors[t], v, 0);
            cr_expect(len == cases[i].size && len == wl && memcmp(buf, want, wl) == 0,
                      "major %u %" PRIu64 ": %s", majors[t], v, hexstr(buf, len));
            if (types[t] == OTPCA_CBOR_BYTES)
                continue; /* content missing: would be TRUNCATED */
            blob b = blob_of(buf, len);
            otpca_cbor_dec d;
            otpca_cbor_item it;
            otpca_cbor_dec_init(&d, b.p, b.len);
            expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, "head back");
            cr_expect_eq(it.type, types[t]);
            cr_expect_eq(it.u, v, "major %u: %" PRIu64 " back as %" PRIu64, majors[t], v, it.u);
            cr_expect_eq(d.pos, cases[i].size);
            blob_free(&b);
        }
    }
}

Test(cbor, buffer_too_small_is_sticky_and_writes_nothing_past_cap)
{
    uint8_t buf[2 + CANARY_LEN];
    memset(buf, CANARY, sizeof buf);
    otpca_cbor_enc e;
    size_t len = 12345;
    otpca_cbor_enc_init(&e, buf, 2);
    otpca_cbor_put_uint(&e, 1);    /* 1 byte: fits */
    otpca_cbor_put_uint(&e, 1000); /* 3 bytes: does not */
    otpca_cbor_put_null(&e);       /* 1 byte would fit: must not be written */
    otpca_cbor_put_bool(&e, true);
    otpca_cbor_put_raw(&e, (const uint8_t *)"x", 1);
    expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_BUFFER_TOO_SMALL, "sticky");
    expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_BUFFER_TOO_SMALL, "finish twice");
    expect_err(otpca_cbor_enc_finish(&e, NULL), OTPCA_ERR_BUFFER_TOO_SMALL, "finish, no len");
    cr_expect_eq(buf[0], 0x01);
    cr_expect_eq(buf[1], CANARY, "a put after the error wrote 0x%02x", buf[1]);
    for (size_t k = 2; k < sizeof buf; k++)
        cr_expect_eq(buf[k], CANARY, "byte %zu past cap written", k);

    /* a string whose head fits and whose content does not */
    uint8_t big[3 + CANARY_LEN];
    memset(big, CANARY, sizeof big);
    otpca_cbor_enc_init(&e, big, 3);
    otpca_cbor_put_bytes(&e, bytes_01020304, sizeof bytes_01020304);
    otpca_cbor_put_uint(&e, 0);
    expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_BUFFER_TOO_SMALL, "content too big");
    for (size_t k = 3; k < sizeof big; k++)
        cr_expect_eq(big[k], CANARY, "byte %zu past cap written", k);

    /* cap 0 */
    memset(big, CANARY, sizeof big);
    otpca_cbor_enc_init(&e, big, 0);
    otpca_cbor_put_bool(&e, false);
    expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_BUFFER_TOO_SMALL, "cap 0");
    cr_expect_eq(big[0], CANARY);

    /* exactly full is fine, one more byte is not */
    otpca_cbor_enc_init(&e, big, 3);
    otpca_cbor_put_uint(&e, 1000);
    expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_OK, "exactly full");
    cr_expect_eq(len, 3);
    otpca_cbor_put_null(&e);
    expect_err(otpca_cbor_enc_finish(&e, &len), OTPCA_ERR_BUFFER_TOO_SMALL, "one past full");
    cr_expect_eq(big[3], CANARY);
}

/* A message-shaped item with every kind of put, including a long string:
 * 18([{1: -7, 4: h'01020304', 1000000: true}, null, h'5a5a...', "\u6c34"]). */
static uint8_t payload[70000];

static void put_message(otpca_cbor_enc *e)
{
    otpca_cbor_put_tag(e, 18);
    otpca_cbor_put_array(e, 4);
    otpca_cbor_put_map(e, 3);
    otpca_cbor_put_int(e, 1);
    otpca_cbor_put_int(e, -7);
    otpca_cbor_put_int(e, 4);
    otpca_cbor_put_bytes(e, bytes_01020304, 4);
    otpca_cbor_put_uint(e, 1000000);
    otpca_cbor_put_bool(e, true);
    otpca_cbor_put_null(e);
    otpca_cbor_put_bytes(e, payload, sizeof payload);
    put_cstr(e, "\xe6\xb0\xb4");
}

Test(cbor, counting_mode_gives_the_length_of_a_real_encode)
{
    memset(payload, 0x5a, sizeof payload);
    otpca_cbor_enc counter, real;
    size_t need = 0, len = 0;
    otpca_cbor_enc_init(&counter, NULL, 0);
    put_message(&counter);
    expect_err(otpca_cbor_enc_finish(&counter, &need), OTPCA_ERR_OK, "counting");
    cr_expect_eq(need, 1 + 1 + 1 + 1 + 1 + 1 + 5 + 5 + 1 + 1 + 5 + sizeof payload + 4,
                 "counted %zu", need);

    uint8_t *buf = malloc(need + CANARY_LEN);
    cr_assert_not_null(buf);
    memset(buf, CANARY, need + CANARY_LEN);
    otpca_cbor_enc_init(&real, buf, need);
    put_message(&real);
    expect_err(otpca_cbor_enc_finish(&real, &len), OTPCA_ERR_OK, "real encode into need");
    cr_expect_eq(len, need, "counted %zu, wrote %zu", need, len);
    for (size_t k = need; k < need + CANARY_LEN; k++)
        cr_expect_eq(buf[k], CANARY);
    expect_err(otpca_cbor_validate(buf, len), OTPCA_ERR_OK, "the message");
    /* one byte less does not fit */
    otpca_cbor_enc_init(&real, buf, need - 1);
    put_message(&real);
    expect_err(otpca_cbor_enc_finish(&real, &len), OTPCA_ERR_BUFFER_TOO_SMALL, "need - 1");
    free(buf);

    /* counting never runs out, even for sizes no buffer could hold */
    otpca_cbor_enc_init(&counter, NULL, 0);
    otpca_cbor_put_bytes_head(&counter, (size_t)1 << 40);
    otpca_cbor_put_array(&counter, SIZE_MAX);
    expect_err(otpca_cbor_enc_finish(&counter, &need), OTPCA_ERR_OK, "counting huge heads");
    cr_expect_eq(need, 9 + 9);

    otpca_cbor_enc_init(&counter, NULL, 0);
    expect_err(otpca_cbor_enc_finish(&counter, &need), OTPCA_ERR_OK, "nothing counted");
    cr_expect_eq(need, 0);
}

/* ------------------------------------------------------- typed getters */

Test(cbor, getters_on_the_wrong_type_refuse_and_keep_the_position)
{
    static const struct {
        const char *hex;
        otpca_cbor_type type;
    } items[] = {
        {"17", OTPCA_CBOR_UINT},   {"3863", OTPCA_CBOR_NINT}, {"4101", OTPCA_CBOR_BYTES},
        {"6161", OTPCA_CBOR_TEXT}, {"8100", OTPCA_CBOR_ARRAY}, {"a10000", OTPCA_CBOR_MAP},
        {"c100", OTPCA_CBOR_TAG},  {"f5", OTPCA_CBOR_BOOL},    {"f6", OTPCA_CBOR_NULL},
    };
    enum { G_UINT, G_INT, G_BYTES, G_TEXT, G_ARRAY, G_MAP, G_TAG, G_BOOL, N_GETTERS };
    static const char *const gname[] = {"get_uint", "get_int",  "get_bytes", "get_text",
                                        "get_array", "get_map", "get_tag",   "get_bool"};
    for (size_t i = 0; i < N_OF(items); i++) {
        blob b = blob_hex(items[i].hex);
        otpca_cbor_item it;
        otpca_cbor_dec d;
        otpca_cbor_dec_init(&d, b.p, b.len);
        expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, items[i].hex);
        size_t head_len = d.pos;
        for (int g = 0; g < N_GETTERS; g++) {
            otpca_cbor_type t = items[i].type;
            bool ok = (g == G_UINT && t == OTPCA_CBOR_UINT) ||
                      (g == G_INT && (t == OTPCA_CBOR_UINT || t == OTPCA_CBOR_NINT)) ||
                      (g == G_BYTES && t == OTPCA_CBOR_BYTES) ||
                      (g == G_TEXT && t == OTPCA_CBOR_TEXT) ||
                      (g == G_ARRAY && t == OTPCA_CBOR_ARRAY) ||
                      (g == G_MAP && t == OTPCA_CBOR_MAP) || (g == G_TAG && t == OTPCA_CBOR_TAG) ||
                      (g == G_BOOL && t == OTPCA_CBOR_BOOL);
            uint64_t u;
            int64_t s;
            otpca_buf out;
            size_t n;
            bool bv;
            otpca_err got = OTPCA_ERR_INTERNAL;
            otpca_cbor_dec_init(&d, b.p, b.len);
            switch (g) {
            case G_UINT: got = otpca_cbor_get_uint(&d, UINT64_MAX, &u); break;
            case G_INT: got = otpca_cbor_get_int(&d, &s); break;
            case G_BYTES: got = otpca_cbor_get_bytes(&d, 0, SIZE_MAX, &out); break;
            case G_TEXT: got = otpca_cbor_get_text(&d, 0, SIZE_MAX, &out); break;
            case G_ARRAY: got = otpca_cbor_get_array(&d, SIZE_MAX, &n); break;
            case G_MAP: got = otpca_cbor_get_map(&d, SIZE_MAX, &n); break;
            case G_TAG: got = otpca_cbor_get_tag(&d, 1); break;
            case G_BOOL: got = otpca_cbor_get_bool(&d, &bv); break;
            }
            cr_expect_eq(got, ok ? OTPCA_ERR_OK : OTPCA_ERR_CBOR_TYPE, "%s on %s: got %s",
                         gname[g], items[i].hex, otpca_errname(got));
            cr_expect_eq(d.pos, ok ? head_len : 0, "%s on %s: position %zu", gname[g],
                         items[i].hex, d.pos);
        }
        blob_free(&b);
    }
}

/* get_tag with another tag number answers CBOR_TYPE, like a wrong type;
 * the position must stay put as it does for a wrong type (so that a caller
 * may try another tag, and never reads the content as if it had matched). */
Test(cbor, get_tag_with_another_number_keeps_the_position)
{
    blob b = blob_hex("d86280"); /* 98([]) */
    otpca_cbor_dec d;
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_tag(&d, 18), OTPCA_ERR_CBOR_TYPE, "98 read as 18");
    cr_expect_eq(d.pos, 0, "get_tag(18) on tag 98 moved to %zu", d.pos);
    expect_err(otpca_cbor_get_tag(&d, 98), OTPCA_ERR_OK, "then 98");
    cr_expect_eq(d.pos, 2);
    blob_free(&b);

    b = blob_hex("d200");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_tag(&d, 17), OTPCA_ERR_CBOR_TYPE, "18 read as 17");
    cr_expect_eq(d.pos, 0, "get_tag(17) on tag 18 moved to %zu", d.pos);
    blob_free(&b);
}

Test(cbor, getter_limits_are_inclusive_and_refuse_outside)
{
    otpca_cbor_dec d;
    otpca_buf out = {0};
    uint64_t v = 0;
    size_t n = 0;

    blob b = blob_hex("4401020304");
    static const struct {
        size_t min, max;
        otpca_err want;
    } lim[] = {{0, SIZE_MAX, OTPCA_ERR_OK},        {4, 4, OTPCA_ERR_OK},
               {0, 4, OTPCA_ERR_OK},               {4, SIZE_MAX, OTPCA_ERR_OK},
               {5, SIZE_MAX, OTPCA_ERR_CBOR_LIMIT}, {0, 3, OTPCA_ERR_CBOR_LIMIT},
               {5, 3, OTPCA_ERR_CBOR_LIMIT}};
    for (size_t i = 0; i < N_OF(lim); i++) {
        otpca_cbor_dec_init(&d, b.p, b.len);
        otpca_err got = otpca_cbor_get_bytes(&d, lim[i].min, lim[i].max, &out);
        cr_expect_eq(got, lim[i].want, "bytes len 4 in [%zu, %zu]: got %s", lim[i].min,
                     lim[i].max, otpca_errname(got));
    }
    blob_free(&b);

    b = blob_hex("6449455446");
    for (size_t i = 0; i < N_OF(lim); i++) {
        otpca_cbor_dec_init(&d, b.p, b.len);
        otpca_err got = otpca_cbor_get_text(&d, lim[i].min, lim[i].max, &out);
        cr_expect_eq(got, lim[i].want, "text len 4 in [%zu, %zu]: got %s", lim[i].min,
                     lim[i].max, otpca_errname(got));
    }
    blob_free(&b);

    b = blob_hex("40");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_bytes(&d, 1, 10, &out), OTPCA_ERR_CBOR_LIMIT, "empty, min 1");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_bytes(&d, 0, 0, &out), OTPCA_ERR_OK, "empty, max 0");
    cr_expect_eq(out.len, 0);
    blob_free(&b);

    b = blob_hex("1818");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_uint(&d, 23, &v), OTPCA_ERR_CBOR_LIMIT, "24 > 23");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_uint(&d, 0, &v), OTPCA_ERR_CBOR_LIMIT, "24 > 0");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_uint(&d, 24, &v), OTPCA_ERR_OK, "24 <= 24");
    cr_expect_eq(v, 24);
    blob_free(&b);

    b = blob_hex("83010203");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_array(&d, 2, &n), OTPCA_ERR_CBOR_LIMIT, "3 > 2");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_array(&d, 3, &n), OTPCA_ERR_OK, "3 <= 3");
    blob_free(&b);

    b = blob_hex("a201020304");
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_get_map(&d, 0, &n), OTPCA_ERR_CBOR_LIMIT, "2 > 0");
    blob_free(&b);
}

Test(cbor, getters_pass_on_malformed_input_errors_and_keep_the_position)
{
    static const struct {
        const char *hex;
        otpca_err want;
    } cases[] = {{"1805", OTPCA_ERR_CBOR_NONCANONICAL}, {"1c", OTPCA_ERR_CBOR_MALFORMED},
                 {"f93e00", OTPCA_ERR_CBOR_TYPE},       {"19", OTPCA_ERR_CBOR_TRUNCATED},
                 {"62c080", OTPCA_ERR_CBOR_MALFORMED}};
    for (size_t i = 0; i < N_OF(cases); i++) {
        blob b = blob_hex(cases[i].hex);
        otpca_cbor_dec d;
        uint64_t v;
        size_t n;
        otpca_buf out;
        otpca_cbor_dec_init(&d, b.p, b.len);
        otpca_err got = otpca_cbor_get_uint(&d, UINT64_MAX, &v);
        cr_expect_eq(got, cases[i].want, "get_uint %s: %s", cases[i].hex, otpca_errname(got));
        if (cases[i].want != OTPCA_ERR_CBOR_TYPE) {
            got = otpca_cbor_get_array(&d, SIZE_MAX, &n);
            cr_expect_eq(got, cases[i].want, "get_array %s: %s", cases[i].hex,
                         otpca_errname(got));
            got = otpca_cbor_get_text(&d, 0, SIZE_MAX, &out);
            cr_expect_eq(got, cases[i].want, "get_text %s: %s", cases[i].hex,
                         otpca_errname(got));
        }
        cr_expect_eq(d.pos, 0, "%s: moved", cases[i].hex);
        blob_free(&b);
    }
}

/* ---------------------------------------------------------------- skip */

Test(cbor, skip_passes_over_whole_nested_items)
{
    static const struct {
        const char *item;
    } cases[] = {
        {"00"},
        {"1b000000e8d4a51000"},
        {"4401020304"},
        {"64f0908591"},
        {"8301820203820405"},
        {"98190102030405060708090a0b0c0d0e0f101112131415161718181819"},
        {"a26161016162820203"},
        {"826161a161626163"},
        {"c11a514b67b0"},
        {"d82076687474703a2f2f7777772e6578616d706c652e636f6d"},
        {"a2 01 c1a1 0182f5f6 02 83 40 60 a0"},
        {"f6"},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        blob item = blob_hex(cases[i].item);
        /* item, then 7, then the item again */
        size_t n = 2 * item.len + 1;
        uint8_t *buf = malloc(n);
        cr_assert_not_null(buf);
        memcpy(buf, item.p, item.len);
        buf[item.len] = 0x07;
        memcpy(buf + item.len + 1, item.p, item.len);
        otpca_cbor_dec d;
        uint64_t v = 0;
        otpca_cbor_dec_init(&d, buf, n);
        expect_err(otpca_cbor_skip(&d), OTPCA_ERR_OK, cases[i].item);
        cr_expect_eq(d.pos, item.len, "%s: skipped %zu bytes", cases[i].item, d.pos);
        expect_err(otpca_cbor_get_uint(&d, 7, &v), OTPCA_ERR_OK, "the 7 after");
        cr_expect_eq(v, 7);
        expect_err(otpca_cbor_skip(&d), OTPCA_ERR_OK, cases[i].item);
        expect_err(otpca_cbor_dec_finish(&d), OTPCA_ERR_OK, "all skipped");
        expect_err(otpca_cbor_skip(&d), OTPCA_ERR_CBOR_TRUNCATED, "skip at the end");
        cr_expect_eq(d.pos, n);
        free(buf);
        blob_free(&item);
    }

    /* skipping the inner part of an item that was entered with next */
    blob b = blob_hex("8301820203820405");
    otpca_cbor_dec d;
    otpca_cbor_item it;
    uint64_t v = 0;
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_next(&d, &it), OTPCA_ERR_OK, "outer");
    expect_err(otpca_cbor_skip(&d), OTPCA_ERR_OK, "1");
    expect_err(otpca_cbor_skip(&d), OTPCA_ERR_OK, "[2,3]");
    size_t n = 0;
    expect_err(otpca_cbor_get_array(&d, 2, &n), OTPCA_ERR_OK, "[4,5]");
    cr_expect_eq(n, 2);
    expect_err(otpca_cbor_get_uint(&d, 9, &v), OTPCA_ERR_OK, "4");
    cr_expect_eq(v, 4);
    blob_free(&b);
}

Test(cbor, peek_reads_without_moving_and_next_only_moves_on_success)
{
    blob b = blob_hex("6449455446 1903e8");
    otpca_cbor_dec d;
    otpca_cbor_item a, c;
    otpca_cbor_dec_init(&d, b.p, b.len);
    expect_err(otpca_cbor_peek(&d, &a), OTPCA_ERR_OK, "peek");
    expect_err(otpca_cbor_peek(&d, &c), OTPCA_ERR_OK, "peek again");
    cr_expect_eq(d.pos, 0);
    cr_expect_eq(a.type, OTPCA_CBOR_TEXT);
    cr_expect_eq(c.type, a.type);
    cr_expect_eq(c.str.p, a.str.p);
    cr_expect_eq(c.str.len, 4);
    expect_err(otpca_cbor_next(&d, &c), OTPCA_ERR_OK, "next");
    cr_expect_eq(d.pos, 5);
    expect_err(otpca_cbor_peek(&d, &a), OTPCA_ERR_OK, "peek 1000");
    cr_expect_eq(a.type, OTPCA_CBOR_UINT);
    cr_expect_eq(a.u, 1000);
    cr_expect_eq(d.pos, 5);
    expect_err(otpca_cbor_next(&d, &a), OTPCA_ERR_OK, "next 1000");
    cr_expect_eq(d.pos, 8);
    expect_err(otpca_cbor_next(&d, &a), OTPCA_ERR_CBOR_TRUNCATED, "past the end");
    expect_err(otpca_cbor_peek(&d, &a), OTPCA_ERR_CBOR_TRUNCATED, "peek past the end");
    cr_expect_eq(d.pos, 8);
    blob_free(&b);
}
