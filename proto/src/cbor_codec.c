/*
 * Deterministic CBOR on libcbor's streaming API. libcbor encodes every
 * integer and length in its shortest form already; on the way in it tells
 * us the width it found (uint8/16/32/64 callbacks, bytes read), which is
 * what lets us reject non-shortest forms. Everything else RFC 8949
 * section 4.2.1 asks for (definite lengths, sorted unique map keys) and
 * the limits are checked here. No malloc.
 */
#include "otpca/proto/cbor.h"

#include <string.h>

#include <cbor.h>

/* ---- encoder ---------------------------------------------------------- */

void otpca_cbor_enc_init(otpca_cbor_enc *e, uint8_t *buf, size_t cap)
{
    e->buf = buf;
    e->cap = buf ? cap : SIZE_MAX;
    e->len = 0;
    e->err = OTPCA_ERR_OK;
}

size_t otpca_cbor_head_size(uint64_t v)
{
    if (v < 24)
        return 1;
    if (v <= UINT8_MAX)
        return 2;
    if (v <= UINT16_MAX)
        return 3;
    if (v <= UINT32_MAX)
        return 5;
    return 9;
}

/* Reserves n bytes; returns where to write them, or NULL (counting mode or
 * error; the error is recorded). */
static uint8_t *reserve(otpca_cbor_enc *e, size_t n, bool *counting)
{
    *counting = false;
    if (e->err)
        return NULL;
    if (n > e->cap - e->len) {
        e->err = OTPCA_ERR_BUFFER_TOO_SMALL;
        return NULL;
    }
    if (!e->buf) {
        e->len += n;
        *counting = true;
        return NULL;
    }
    uint8_t *p = e->buf + e->len;
    e->len += n;
    return p;
}

typedef size_t (*head_fn)(uint64_t, unsigned char *, size_t);

static void put_head(otpca_cbor_enc *e, head_fn fn, uint64_t v)
{
    bool counting;
    size_t n = otpca_cbor_head_size(v);
    uint8_t *p = reserve(e, n, &counting);
    if (p && fn(v, p, n) != n)
        e->err = OTPCA_ERR_INTERNAL;
}

static size_t head_uint(uint64_t v, unsigned char *p, size_t n) { return cbor_encode_uint(v, p, n); }
static size_t head_nint(uint64_t v, unsigned char *p, size_t n) { return cbor_encode_negint(v, p, n); }
static size_t head_bytes(uint64_t v, unsigned char *p, size_t n)
{
    return cbor_encode_bytestring_start((size_t)v, p, n);
}
static size_t head_text(uint64_t v, unsigned char *p, size_t n)
{
    return cbor_encode_string_start((size_t)v, p, n);
}
static size_t head_array(uint64_t v, unsigned char *p, size_t n)
{
    return cbor_encode_array_start((size_t)v, p, n);
}
static size_t head_map(uint64_t v, unsigned char *p, size_t n)
{
    return cbor_encode_map_start((size_t)v, p, n);
}
static size_t head_tag(uint64_t v, unsigned char *p, size_t n) { return cbor_encode_tag(v, p, n); }

void otpca_cbor_put_uint(otpca_cbor_enc *e, uint64_t v) { put_head(e, head_uint, v); }

void otpca_cbor_put_int(otpca_cbor_enc *e, int64_t v)
{
    if (v >= 0)
        put_head(e, head_uint, (uint64_t)v);
    else
        put_head(e, head_nint, (uint64_t)(-(v + 1)));
}

void otpca_cbor_put_raw(otpca_cbor_enc *e, const uint8_t *p, size_t len)
{
    bool counting;
    uint8_t *dst = reserve(e, len, &counting);
    if (dst && len)
        memcpy(dst, p, len);
}

void otpca_cbor_put_bytes_head(otpca_cbor_enc *e, size_t len) { put_head(e, head_bytes, len); }

void otpca_cbor_put_bytes(otpca_cbor_enc *e, const uint8_t *p, size_t len)
{
    put_head(e, head_bytes, len);
    otpca_cbor_put_raw(e, p, len);
}

void otpca_cbor_put_text(otpca_cbor_enc *e, const char *p, size_t len)
{
    put_head(e, head_text, len);
    otpca_cbor_put_raw(e, (const uint8_t *)p, len);
}

void otpca_cbor_put_array(otpca_cbor_enc *e, size_t count) { put_head(e, head_array, count); }
void otpca_cbor_put_map(otpca_cbor_enc *e, size_t pairs) { put_head(e, head_map, pairs); }
void otpca_cbor_put_tag(otpca_cbor_enc *e, uint64_t tag) { put_head(e, head_tag, tag); }

void otpca_cbor_put_bool(otpca_cbor_enc *e, bool v)
{
    uint8_t b = v ? 0xf5 : 0xf4;
    otpca_cbor_put_raw(e, &b, 1);
}

void otpca_cbor_put_null(otpca_cbor_enc *e)
{
    uint8_t b = 0xf6;
    otpca_cbor_put_raw(e, &b, 1);
}

otpca_err otpca_cbor_enc_finish(const otpca_cbor_enc *e, size_t *len)
{
    if (e->err)
        return e->err;
    if (len)
        *len = e->len;
    return OTPCA_ERR_OK;
}

/* ---- decoder ---------------------------------------------------------- */

/* What the libcbor callbacks saw for one item. */
typedef struct head_ctx {
    otpca_cbor_item *it;
    bool seen;
    bool indefinite; /* indefinite length or break */
    bool float_;     /* a float: not in the subset */
} head_ctx;

#define CTX ((head_ctx *)c)
static void set(void *c, otpca_cbor_type t, uint64_t v)
{
    CTX->seen = true;
    CTX->it->type = t;
    CTX->it->u = v;
}
static void cb_u8(void *c, uint8_t v) { set(c, OTPCA_CBOR_UINT, v); }
static void cb_u16(void *c, uint16_t v) { set(c, OTPCA_CBOR_UINT, v); }
static void cb_u32(void *c, uint32_t v) { set(c, OTPCA_CBOR_UINT, v); }
static void cb_u64(void *c, uint64_t v) { set(c, OTPCA_CBOR_UINT, v); }
static void cb_n8(void *c, uint8_t v) { set(c, OTPCA_CBOR_NINT, v); }
static void cb_n16(void *c, uint16_t v) { set(c, OTPCA_CBOR_NINT, v); }
static void cb_n32(void *c, uint32_t v) { set(c, OTPCA_CBOR_NINT, v); }
static void cb_n64(void *c, uint64_t v) { set(c, OTPCA_CBOR_NINT, v); }
static void cb_bytes(void *c, cbor_data p, size_t n)
{
    set(c, OTPCA_CBOR_BYTES, n);
    CTX->it->str.p = p;
    CTX->it->str.len = n;
}
static void cb_text(void *c, cbor_data p, size_t n)
{
    set(c, OTPCA_CBOR_TEXT, n);
    CTX->it->str.p = p;
    CTX->it->str.len = n;
}
static void cb_array(void *c, size_t n) { set(c, OTPCA_CBOR_ARRAY, n); }
static void cb_map(void *c, size_t n) { set(c, OTPCA_CBOR_MAP, n); }
static void cb_tag(void *c, uint64_t v) { set(c, OTPCA_CBOR_TAG, v); }
static void cb_bool(void *c, bool v) { set(c, OTPCA_CBOR_BOOL, v); }
static void cb_null(void *c) { set(c, OTPCA_CBOR_NULL, 0); }
static void cb_refuse(void *c)
{
    CTX->seen = true;
    CTX->indefinite = true;
}
static void cb_refuse_f(void *c, float v)
{
    (void)v;
    CTX->seen = true;
    CTX->float_ = true;
}
static void cb_refuse_d(void *c, double v)
{
    (void)v;
    CTX->seen = true;
    CTX->float_ = true;
}
#undef CTX

static const struct cbor_callbacks callbacks = {
    .uint8 = cb_u8,
    .uint16 = cb_u16,
    .uint32 = cb_u32,
    .uint64 = cb_u64,
    .negint8 = cb_n8,
    .negint16 = cb_n16,
    .negint32 = cb_n32,
    .negint64 = cb_n64,
    .byte_string_start = cb_refuse, /* indefinite */
    .byte_string = cb_bytes,
    .string = cb_text,
    .string_start = cb_refuse, /* indefinite */
    .indef_array_start = cb_refuse,
    .array_start = cb_array,
    .indef_map_start = cb_refuse,
    .map_start = cb_map,
    .tag = cb_tag,
    .float2 = cb_refuse_f,
    .float4 = cb_refuse_f,
    .float8 = cb_refuse_d,
    .undefined = cb_refuse, /* never reached: refused before decoding */
    .null = cb_null,
    .boolean = cb_bool,
    .indef_break = cb_refuse,
};

void otpca_cbor_dec_init(otpca_cbor_dec *d, const uint8_t *buf, size_t len)
{
    d->buf = buf;
    d->len = buf ? len : 0;
    d->pos = 0;
}

/* Decodes the item at d->pos; *used = its head plus string content. */
static otpca_err decode_at(const otpca_cbor_dec *d, otpca_cbor_item *it, size_t *used)
{
    size_t left = d->len - d->pos;
    if (left == 0)
        return OTPCA_ERR_CBOR_TRUNCATED;
    const uint8_t *at = d->buf + d->pos;
    /* Reserved additional information (28..30) and the simple values
     * other than false/true/null: libcbor 0.8 reports some of them only as
     * NEDATA, so refuse them before asking it. */
    uint8_t ib = at[0], ai = ib & 0x1f;
    if (ai >= 28 && ai <= 30)
        return OTPCA_ERR_CBOR_MALFORMED;
    if ((ib & 0xe0) == 0xe0 && !(ib >= 0xf4 && ib <= 0xf6) && ib < 0xf9)
        return OTPCA_ERR_CBOR_MALFORMED;
    if (ib == 0xff) /* a break outside an indefinite-length item */
        return OTPCA_ERR_CBOR_MALFORMED;

    memset(it, 0, sizeof *it);
    /* libcbor 0.8 refuses the one-byte tag heads 6..20 as "unassigned",
     * yet COSE_Sign1 is tag 18: read those heads here. */
    if (ib >= 0xc6 && ib <= 0xd4) {
        it->type = OTPCA_CBOR_TAG;
        it->u = ai;
        *used = 1;
        return OTPCA_ERR_OK;
    }
    head_ctx ctx = {.it = it};
    struct cbor_decoder_result r = cbor_stream_decode(at, left, &callbacks, &ctx);
    if (r.status == CBOR_DECODER_NEDATA)
        return OTPCA_ERR_CBOR_TRUNCATED;
    if (r.status != CBOR_DECODER_FINISHED || !ctx.seen)
        return OTPCA_ERR_CBOR_MALFORMED;
    if (ctx.indefinite)
        return OTPCA_ERR_CBOR_NONCANONICAL;
    if (ctx.float_)
        return OTPCA_ERR_CBOR_TYPE;

    size_t head = r.read;
    if (it->type == OTPCA_CBOR_BYTES || it->type == OTPCA_CBOR_TEXT) {
        /* Never trust a length past the end of the input, whatever the
         * library made of it. */
        size_t off = (size_t)(it->str.p - at);
        if (off > left || it->str.len > left - off)
            return OTPCA_ERR_CBOR_TRUNCATED;
        head = off;
        *used = off + it->str.len;
    } else {
        *used = r.read;
    }
    bool simple = it->type == OTPCA_CBOR_BOOL || it->type == OTPCA_CBOR_NULL;
    if (!simple && head != otpca_cbor_head_size(it->u))
        return OTPCA_ERR_CBOR_NONCANONICAL;
    if (it->type == OTPCA_CBOR_TEXT && !otpca_utf8_valid(it->str.p, it->str.len))
        return OTPCA_ERR_CBOR_MALFORMED;
    return OTPCA_ERR_OK;
}

otpca_err otpca_cbor_peek(const otpca_cbor_dec *d, otpca_cbor_item *it)
{
    size_t used;
    return decode_at(d, it, &used);
}

otpca_err otpca_cbor_next(otpca_cbor_dec *d, otpca_cbor_item *it)
{
    size_t used = 0;
    otpca_err ret = decode_at(d, it, &used);
    if (!ret)
        d->pos += used;
    return ret;
}

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static otpca_err skip_depth(otpca_cbor_dec *d, unsigned depth)
{
    otpca_cbor_item it;
    if (depth > OTPCA_CBOR_MAX_DEPTH)
        return OTPCA_ERR_CBOR_LIMIT;
    otpca_err ret = otpca_cbor_next(d, &it);
    if (ret)
        return ret;
    switch (it.type) {
    case OTPCA_CBOR_ARRAY:
        /* Each element takes at least one byte: a count beyond what is left
         * cannot be satisfied (and must not spin for 2^64 rounds). */
        if (it.u > d->len - d->pos)
            return OTPCA_ERR_CBOR_TRUNCATED;
        for (uint64_t i = 0; i < it.u; i++)
            if ((ret = skip_depth(d, depth + 1)))
                return ret;
        return OTPCA_ERR_OK;
    case OTPCA_CBOR_MAP: {
        if (it.u > (d->len - d->pos) / 2)
            return OTPCA_ERR_CBOR_TRUNCATED;
        const uint8_t *prev = NULL;
        size_t prev_len = 0;
        for (uint64_t i = 0; i < it.u; i++) {
            size_t kstart = d->pos;
            if ((ret = skip_depth(d, depth + 1)))
                return ret;
            const uint8_t *k = d->buf + kstart;
            size_t klen = d->pos - kstart;
            if (prev && key_cmp(prev, prev_len, k, klen) >= 0)
                return OTPCA_ERR_CBOR_KEY_ORDER;
            prev = k;
            prev_len = klen;
            if ((ret = skip_depth(d, depth + 1)))
                return ret;
        }
        return OTPCA_ERR_OK;
    }
    case OTPCA_CBOR_TAG:
        return skip_depth(d, depth + 1);
    default:
        return OTPCA_ERR_OK;
    }
}

otpca_err otpca_cbor_skip(otpca_cbor_dec *d) { return skip_depth(d, 0); }

otpca_err otpca_cbor_validate(const uint8_t *buf, size_t len)
{
    otpca_cbor_dec d;
    otpca_cbor_dec_init(&d, buf, len);
    otpca_err ret = otpca_cbor_skip(&d);
    return ret ? ret : otpca_cbor_dec_finish(&d);
}

/* Reads an item of type t; on a type mismatch the position is kept. */
static otpca_err get_typed(otpca_cbor_dec *d, otpca_cbor_type t, otpca_cbor_item *it)
{
    size_t used = 0;
    otpca_err ret = decode_at(d, it, &used);
    if (ret)
        return ret;
    if (it->type != t)
        return OTPCA_ERR_CBOR_TYPE;
    d->pos += used;
    return OTPCA_ERR_OK;
}

otpca_err otpca_cbor_get_uint(otpca_cbor_dec *d, uint64_t max, uint64_t *v)
{
    otpca_cbor_item it;
    otpca_err ret = get_typed(d, OTPCA_CBOR_UINT, &it);
    if (ret)
        return ret;
    if (it.u > max)
        return OTPCA_ERR_CBOR_LIMIT;
    *v = it.u;
    return OTPCA_ERR_OK;
}

otpca_err otpca_cbor_get_int(otpca_cbor_dec *d, int64_t *v)
{
    otpca_cbor_item it;
    otpca_err ret = otpca_cbor_peek(d, &it);
    if (ret)
        return ret;
    if (it.type != OTPCA_CBOR_UINT && it.type != OTPCA_CBOR_NINT)
        return OTPCA_ERR_CBOR_TYPE;
    if (it.u > (uint64_t)INT64_MAX)
        return OTPCA_ERR_CBOR_LIMIT;
    ret = otpca_cbor_next(d, &it);
    if (ret)
        return ret;
    *v = it.type == OTPCA_CBOR_UINT ? (int64_t)it.u : -1 - (int64_t)it.u;
    return OTPCA_ERR_OK;
}

static otpca_err get_str(otpca_cbor_dec *d, otpca_cbor_type t, size_t min, size_t max,
                         otpca_buf *out)
{
    otpca_cbor_item it;
    otpca_err ret = get_typed(d, t, &it);
    if (ret)
        return ret;
    if (it.str.len < min || it.str.len > max)
        return OTPCA_ERR_CBOR_LIMIT;
    *out = it.str;
    return OTPCA_ERR_OK;
}

otpca_err otpca_cbor_get_bytes(otpca_cbor_dec *d, size_t min, size_t max, otpca_buf *out)
{
    return get_str(d, OTPCA_CBOR_BYTES, min, max, out);
}

otpca_err otpca_cbor_get_text(otpca_cbor_dec *d, size_t min, size_t max, otpca_buf *out)
{
    return get_str(d, OTPCA_CBOR_TEXT, min, max, out);
}

static otpca_err get_count(otpca_cbor_dec *d, otpca_cbor_type t, size_t max, size_t *n)
{
    otpca_cbor_item it;
    otpca_err ret = get_typed(d, t, &it);
    if (ret)
        return ret;
    if (it.u > max)
        return OTPCA_ERR_CBOR_LIMIT;
    *n = (size_t)it.u;
    return OTPCA_ERR_OK;
}

otpca_err otpca_cbor_get_array(otpca_cbor_dec *d, size_t max, size_t *count)
{
    return get_count(d, OTPCA_CBOR_ARRAY, max, count);
}

otpca_err otpca_cbor_get_map(otpca_cbor_dec *d, size_t max, size_t *pairs)
{
    return get_count(d, OTPCA_CBOR_MAP, max, pairs);
}

otpca_err otpca_cbor_get_tag(otpca_cbor_dec *d, uint64_t tag)
{
    otpca_cbor_item it;
    otpca_err ret = otpca_cbor_peek(d, &it);
    if (ret)
        return ret;
    /* Another tag number is the wrong type too: keep the position. */
    if (it.type != OTPCA_CBOR_TAG || it.u != tag)
        return OTPCA_ERR_CBOR_TYPE;
    return otpca_cbor_next(d, &it);
}

otpca_err otpca_cbor_get_bool(otpca_cbor_dec *d, bool *v)
{
    otpca_cbor_item it;
    otpca_err ret = get_typed(d, OTPCA_CBOR_BOOL, &it);
    if (ret)
        return ret;
    *v = it.u != 0;
    return OTPCA_ERR_OK;
}

otpca_err otpca_cbor_dec_finish(const otpca_cbor_dec *d)
{
    return d->pos == d->len ? OTPCA_ERR_OK : OTPCA_ERR_CBOR_TRAILING;
}

/* ---- UTF-8 -------------------------------------------------------------- */

/* Hand-written because libcbor 0.8 does not check text strings and this
 * must stay malloc-free C99 for node firmware (RFC 3629 table 4). */
bool otpca_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        size_t n;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return false;
        }
        if (n > len - i - 1)
            return false;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        i += n + 1;
    }
    return true;
}
