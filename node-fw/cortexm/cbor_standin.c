/*
 * A stand-in for the eight libcbor 0.8 functions libotpca-proto calls,
 * linked by node-fw/cortexm/size.sh ONLY when libcbor's source is not at
 * hand (Debian's source package could not be fetched and LIBCBOR_SRC is
 * not set); the report then says so and gives libcbor's size as an
 * estimate. It follows the same contracts for the subset proto uses
 * (definite-length heads, the width callbacks, strings, arrays, maps,
 * tags, false/true/null; floats and indefinite items reported through
 * their callbacks), so its size is what a minimal replacement would cost.
 * Not tested against proto's suites: size only.
 */
#include <cbor.h>

static size_t put_head(unsigned mt, uint64_t v, unsigned char *p, size_t n)
{
    size_t len = v < 24 ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffffu ? 5 : 9;
    if (n < len)
        return 0;
    p[0] = (unsigned char)(mt << 5 | (len == 1 ? v : len == 2 ? 24 : len == 3 ? 25 : len == 5 ? 26 : 27));
    for (size_t i = len - 1; i >= 1; i--, v >>= 8)
        p[i] = (unsigned char)v;
    return len;
}

size_t cbor_encode_uint(uint64_t v, unsigned char *p, size_t n) { return put_head(0, v, p, n); }
size_t cbor_encode_negint(uint64_t v, unsigned char *p, size_t n) { return put_head(1, v, p, n); }
size_t cbor_encode_bytestring_start(size_t v, unsigned char *p, size_t n) { return put_head(2, v, p, n); }
size_t cbor_encode_string_start(size_t v, unsigned char *p, size_t n) { return put_head(3, v, p, n); }
size_t cbor_encode_array_start(size_t v, unsigned char *p, size_t n) { return put_head(4, v, p, n); }
size_t cbor_encode_map_start(size_t v, unsigned char *p, size_t n) { return put_head(5, v, p, n); }
size_t cbor_encode_tag(uint64_t v, unsigned char *p, size_t n) { return put_head(6, v, p, n); }

struct cbor_decoder_result cbor_stream_decode(cbor_data b, size_t n, const struct cbor_callbacks *cb, void *ctx)
{
    struct cbor_decoder_result r = {0, CBOR_DECODER_NEDATA, 1};
    if (n < 1)
        return r;
    unsigned mt = b[0] >> 5, ai = b[0] & 0x1f;
    size_t w = ai < 24 ? 0 : ai <= 27 ? (size_t)1 << (ai - 24) : 0;
    uint64_t v = ai < 24 ? ai : 0;
    if (ai >= 28 && !(ai == 31 && mt >= 2)) {
        r.status = CBOR_DECODER_ERROR;
        r.required = 0;
        return r;
    }
    if (n < 1 + w) {
        r.required = 1 + w;
        return r;
    }
    for (size_t i = 1; i <= w; i++)
        v = v << 8 | b[i];
    r.read = 1 + w;
    r.status = CBOR_DECODER_FINISHED;
    r.required = 0;
    switch (mt) {
    case 0:
    case 1: {
        void (*f8)(void *, uint8_t) = mt ? cb->negint8 : cb->uint8;
        void (*f16)(void *, uint16_t) = mt ? cb->negint16 : cb->uint16;
        void (*f32)(void *, uint32_t) = mt ? cb->negint32 : cb->uint32;
        void (*f64)(void *, uint64_t) = mt ? cb->negint64 : cb->uint64;
        if (w <= 1)
            f8(ctx, (uint8_t)v);
        else if (w == 2)
            f16(ctx, (uint16_t)v);
        else if (w == 4)
            f32(ctx, (uint32_t)v);
        else
            f64(ctx, v);
        break;
    }
    case 2:
    case 3:
        if (ai == 31) {
            (mt == 2 ? cb->byte_string_start : cb->string_start)(ctx);
            break;
        }
        if (v > n - r.read) {
            r.status = CBOR_DECODER_NEDATA;
            r.required = r.read + (size_t)v;
            r.read = 0;
            return r;
        }
        (mt == 2 ? cb->byte_string : cb->string)(ctx, b + r.read, (size_t)v);
        r.read += (size_t)v;
        break;
    case 4:
    case 5:
        if (ai == 31)
            (mt == 4 ? cb->indef_array_start : cb->indef_map_start)(ctx);
        else
            (mt == 4 ? cb->array_start : cb->map_start)(ctx, (size_t)v);
        break;
    case 6:
        cb->tag(ctx, v);
        break;
    default:
        if (ai == 20 || ai == 21)
            cb->boolean(ctx, ai == 21);
        else if (ai == 22)
            cb->null(ctx);
        else if (ai == 23)
            cb->undefined(ctx);
        else if (ai == 31)
            cb->indef_break(ctx);
        else if (ai == 25)
            cb->float2(ctx, 0.0f);
        else if (ai == 26)
            cb->float4(ctx, 0.0f);
        else if (ai == 27)
            cb->float8(ctx, 0.0);
        else
            r.status = CBOR_DECODER_ERROR;
    }
    return r;
}
