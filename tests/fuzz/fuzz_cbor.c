/*
 * fuzz_cbor: the deterministic CBOR decoder (proto/src/cbor_codec.c).
 *
 * On any input:
 *   - otpca_cbor_validate() agrees with otpca_cbor_skip() + "all consumed";
 *   - a walk with otpca_cbor_next() (and otpca_cbor_peek() before each step,
 *     which must see the same item and not move) always makes progress,
 *     keeps every string inside the input and every text string valid
 *     UTF-8, and re-encoding the items it accepted with the otpca_cbor_put_*
 *     encoder gives back exactly the bytes it consumed (the decoder accepts
 *     only the one deterministic encoding of each head); a valid input is
 *     walked to its end;
 *   - otpca_cbor_skip() from every array, map and tag of an invalid input
 *     either fails or moves forward within the input;
 *   - the typed getters at the first item agree with otpca_cbor_peek();
 *   - otpca_utf8_valid() agrees with an independent UTF-8 decoder.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "otpca/proto/cbor.h"

/* RFC 3629 by decoding code points (not by the byte-range table that
 * otpca_utf8_valid uses). */
static bool ref_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

static bool same_item(const otpca_cbor_item *a, const otpca_cbor_item *b)
{
    return a->type == b->type && a->u == b->u && a->str.p == b->str.p && a->str.len == b->str.len;
}

static bool inside(const uint8_t *data, size_t size, otpca_buf b)
{
    return b.p >= data && b.len <= size && (size_t)(b.p - data) <= size - b.len;
}

/* Encodes one accepted item again; at is where its head starts. */
static void reencode(otpca_cbor_enc *e, const otpca_cbor_item *it, const uint8_t *at)
{
    switch (it->type) {
    case OTPCA_CBOR_UINT:
        otpca_cbor_put_uint(e, it->u);
        break;
    case OTPCA_CBOR_NINT:
        if (it->u <= (uint64_t)INT64_MAX)
            otpca_cbor_put_int(e, -1 - (int64_t)it->u);
        else
            otpca_cbor_put_raw(e, at, 9); /* below INT64_MIN: no int64_t holds it */
        break;
    case OTPCA_CBOR_BYTES:
        otpca_cbor_put_bytes(e, it->str.p, it->str.len);
        break;
    case OTPCA_CBOR_TEXT:
        otpca_cbor_put_text(e, (const char *)it->str.p, it->str.len);
        break;
    case OTPCA_CBOR_ARRAY:
        otpca_cbor_put_array(e, (size_t)it->u);
        break;
    case OTPCA_CBOR_MAP:
        otpca_cbor_put_map(e, (size_t)it->u);
        break;
    case OTPCA_CBOR_TAG:
        otpca_cbor_put_tag(e, it->u);
        break;
    case OTPCA_CBOR_BOOL:
        otpca_cbor_put_bool(e, it->u != 0);
        break;
    case OTPCA_CBOR_NULL:
        otpca_cbor_put_null(e);
        break;
    }
}

/* The typed getters at the first item against what peek saw there. */
static void check_getters(const uint8_t *data, size_t size)
{
    otpca_cbor_dec d;
    otpca_cbor_item first;
    otpca_cbor_dec_init(&d, data, size);
    otpca_err pe = otpca_cbor_peek(&d, &first);
    size_t end = 0;
    if (!pe) {
        otpca_cbor_dec t = d;
        otpca_cbor_item it;
        FUZZ_CHECK(otpca_cbor_next(&t, &it) == OTPCA_ERR_OK);
        end = t.pos;
    }
#define EXPECT(call, ok_when)                                                                       \
    do {                                                                                            \
        otpca_cbor_dec_init(&d, data, size);                                                        \
        otpca_err r_ = (call);                                                                      \
        FUZZ_CHECK((r_ == OTPCA_ERR_OK) == (!pe && (ok_when)));                                     \
        FUZZ_CHECK(r_ != OTPCA_ERR_OK || d.pos == end);                                             \
    } while (0)

    uint64_t u;
    EXPECT(otpca_cbor_get_uint(&d, UINT64_MAX, &u), first.type == OTPCA_CBOR_UINT);
    if (!pe && first.type == OTPCA_CBOR_UINT)
        FUZZ_CHECK(u == first.u);
    if (!pe && first.type == OTPCA_CBOR_UINT && first.u > 0)
        EXPECT(otpca_cbor_get_uint(&d, first.u - 1, &u), false);

    int64_t i;
    EXPECT(otpca_cbor_get_int(&d, &i),
           (first.type == OTPCA_CBOR_UINT || first.type == OTPCA_CBOR_NINT) &&
               first.u <= (uint64_t)INT64_MAX);
    if (!pe && first.type == OTPCA_CBOR_UINT && first.u <= (uint64_t)INT64_MAX)
        FUZZ_CHECK(i == (int64_t)first.u);
    if (!pe && first.type == OTPCA_CBOR_NINT && first.u <= (uint64_t)INT64_MAX)
        FUZZ_CHECK(i == -1 - (int64_t)first.u);

    otpca_buf b;
    EXPECT(otpca_cbor_get_bytes(&d, 0, SIZE_MAX, &b), first.type == OTPCA_CBOR_BYTES);
    if (!pe && first.type == OTPCA_CBOR_BYTES) {
        FUZZ_CHECK(b.p == first.str.p && b.len == first.str.len);
        if (b.len > 0)
            EXPECT(otpca_cbor_get_bytes(&d, 0, b.len - 1, &b), false);
        EXPECT(otpca_cbor_get_bytes(&d, first.str.len + 1, SIZE_MAX, &b), false);
    }
    EXPECT(otpca_cbor_get_text(&d, 0, SIZE_MAX, &b), first.type == OTPCA_CBOR_TEXT);
    if (!pe && first.type == OTPCA_CBOR_TEXT)
        FUZZ_CHECK(b.p == first.str.p && b.len == first.str.len);

    size_t n;
    EXPECT(otpca_cbor_get_array(&d, SIZE_MAX, &n), first.type == OTPCA_CBOR_ARRAY);
    EXPECT(otpca_cbor_get_map(&d, SIZE_MAX, &n), first.type == OTPCA_CBOR_MAP);
    if (!pe && first.type == OTPCA_CBOR_MAP && first.u > 0)
        EXPECT(otpca_cbor_get_map(&d, (size_t)first.u - 1, &n), false);
    EXPECT(otpca_cbor_get_tag(&d, pe ? 18 : first.u), first.type == OTPCA_CBOR_TAG);
    EXPECT(otpca_cbor_get_tag(&d, pe ? 18 : first.u + 1), false);
    bool v;
    EXPECT(otpca_cbor_get_bool(&d, &v), first.type == OTPCA_CBOR_BOOL);
    if (!pe && first.type == OTPCA_CBOR_BOOL)
        FUZZ_CHECK(v == (first.u != 0));
#undef EXPECT
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    otpca_err valid = otpca_cbor_validate(data, size);
    if (size == 0)
        FUZZ_CHECK(valid != OTPCA_ERR_OK);

    /* The walk, re-encoding as it goes (also in counting mode). */
    uint8_t *out = malloc(size ? size : 1);
    FUZZ_CHECK(out != NULL);
    otpca_cbor_enc e, count;
    otpca_cbor_enc_init(&e, out, size);
    otpca_cbor_enc_init(&count, NULL, 0);
    otpca_cbor_dec d;
    otpca_cbor_dec_init(&d, data, size);
    while (d.pos < size) {
        size_t before = d.pos;
        otpca_cbor_item peeked, it;

        otpca_err pe = otpca_cbor_peek(&d, &peeked);
        FUZZ_CHECK(d.pos == before);
        /* Skip from the start (validate == skip + all consumed), and from
         * every array, map and tag inside an invalid input, past the point
         * where validate gave up (inside a valid one every skip succeeds;
         * msg.c skips unknown values from inside a message). For scalars
         * skip is next, checked below. */
        bool container = !pe && (peeked.type == OTPCA_CBOR_ARRAY ||
                                 peeked.type == OTPCA_CBOR_MAP || peeked.type == OTPCA_CBOR_TAG);
        if (before == 0 || (container && valid != OTPCA_ERR_OK)) {
            otpca_cbor_dec s = d;
            otpca_err sk = otpca_cbor_skip(&s);
            if (before == 0)
                FUZZ_CHECK((valid == OTPCA_ERR_OK) == (sk == OTPCA_ERR_OK && s.pos == size));
            if (sk == OTPCA_ERR_OK)
                FUZZ_CHECK(s.pos > before && s.pos <= size);
        }
        otpca_err ne = otpca_cbor_next(&d, &it);
        FUZZ_CHECK(pe == ne);
        if (ne) {
            FUZZ_CHECK(d.pos == before);
            break;
        }
        FUZZ_CHECK(same_item(&peeked, &it));
        FUZZ_CHECK(d.pos > before && d.pos <= size);
        if (it.type == OTPCA_CBOR_BYTES || it.type == OTPCA_CBOR_TEXT) {
            FUZZ_CHECK(it.u == it.str.len);
            FUZZ_CHECK(inside(data, size, it.str));
            FUZZ_CHECK(it.str.p + it.str.len == data + d.pos);
        }
        if (it.type == OTPCA_CBOR_TEXT)
            FUZZ_CHECK(otpca_utf8_valid(it.str.p, it.str.len));
        if (it.type == OTPCA_CBOR_BOOL)
            FUZZ_CHECK(it.u <= 1);
        reencode(&e, &it, data + before);
        reencode(&count, &it, data + before);
    }
    size_t elen, clen;
    FUZZ_CHECK(otpca_cbor_enc_finish(&e, &elen) == OTPCA_ERR_OK);
    FUZZ_CHECK(otpca_cbor_enc_finish(&count, &clen) == OTPCA_ERR_OK);
    FUZZ_CHECK(elen == d.pos && clen == d.pos);
    FUZZ_CHECK(elen == 0 || memcmp(out, data, elen) == 0);
    if (valid == OTPCA_ERR_OK)
        FUZZ_CHECK(d.pos == size);
    free(out);

    check_getters(data, size);
    FUZZ_CHECK(otpca_utf8_valid(data, size) == ref_utf8_valid(data, size));
    return 0;
}
