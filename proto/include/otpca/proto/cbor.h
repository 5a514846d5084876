/*
 * Deterministic CBOR (RFC 8949 section 4.2.1) for otpca messages: an encoder
 * into a caller-provided buffer and a strict pull decoder over a
 * caller-provided buffer, both on libcbor's streaming primitives and both
 * free of malloc so that node firmware can use them.
 *
 * The subset: unsigned and negative integers, byte and text strings,
 * definite arrays and maps, tags, true/false/null. Floats, undefined, other
 * simple values and every indefinite length are refused by the decoder, as
 * is any integer or length not in its shortest form and any text string
 * that is not valid UTF-8. Decoded strings point into the input (no copy).
 *
 * C99; no I/O.
 */
#ifndef OTPCA_PROTO_CBOR_H
#define OTPCA_PROTO_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"

/* Deepest nesting of arrays, maps and tags the decoder follows. */
#define OTPCA_CBOR_MAX_DEPTH 8

/* A span of bytes inside some buffer (not owned). p == NULL: absent. */
typedef struct otpca_buf {
    const uint8_t *p;
    size_t len;
} otpca_buf;

/*
 * Encoder. Errors are sticky: after the first failure every put is a no-op
 * and otpca_cbor_enc_finish() reports it. With buf == NULL the encoder
 * only counts (to learn a size before writing).
 */
typedef struct otpca_cbor_enc {
    uint8_t *buf;
    size_t cap;
    size_t len;
    otpca_err err;
} otpca_cbor_enc;

void otpca_cbor_enc_init(otpca_cbor_enc *e, uint8_t *buf, size_t cap);
void otpca_cbor_put_uint(otpca_cbor_enc *e, uint64_t v);
/* Any int64 (negative values as CBOR major type 1). */
void otpca_cbor_put_int(otpca_cbor_enc *e, int64_t v);
void otpca_cbor_put_bytes(otpca_cbor_enc *e, const uint8_t *p, size_t len);
/* Only the header of a byte string of len bytes; the caller writes them. */
void otpca_cbor_put_bytes_head(otpca_cbor_enc *e, size_t len);
void otpca_cbor_put_text(otpca_cbor_enc *e, const char *p, size_t len);
void otpca_cbor_put_array(otpca_cbor_enc *e, size_t count);
void otpca_cbor_put_map(otpca_cbor_enc *e, size_t pairs);
void otpca_cbor_put_tag(otpca_cbor_enc *e, uint64_t tag);
void otpca_cbor_put_bool(otpca_cbor_enc *e, bool v);
void otpca_cbor_put_null(otpca_cbor_enc *e);
/* Bytes that already are encoded CBOR, copied as they are. */
void otpca_cbor_put_raw(otpca_cbor_enc *e, const uint8_t *p, size_t len);
/* OTPCA_ERR_OK and *len = bytes written, or the first error
 * (OTPCA_ERR_BUFFER_TOO_SMALL when the buffer ran out). */
otpca_err otpca_cbor_enc_finish(const otpca_cbor_enc *e, size_t *len);

/* Encoded size of the head of an item whose argument is v (1, 2, 3, 5, 9). */
size_t otpca_cbor_head_size(uint64_t v);

/* Decoder. */
typedef enum otpca_cbor_type {
    OTPCA_CBOR_UINT,
    OTPCA_CBOR_NINT, /* value -1 - u */
    OTPCA_CBOR_BYTES,
    OTPCA_CBOR_TEXT,
    OTPCA_CBOR_ARRAY,
    OTPCA_CBOR_MAP,
    OTPCA_CBOR_TAG,
    OTPCA_CBOR_BOOL,
    OTPCA_CBOR_NULL
} otpca_cbor_type;

typedef struct otpca_cbor_item {
    otpca_cbor_type type;
    /* UINT/NINT: the argument; ARRAY/MAP: element/pair count; TAG: number;
     * BOOL: 0 or 1; BYTES/TEXT: the length (also in str.len). */
    uint64_t u;
    otpca_buf str; /* BYTES/TEXT: the content */
} otpca_cbor_item;

typedef struct otpca_cbor_dec {
    const uint8_t *buf;
    size_t len;
    size_t pos;
} otpca_cbor_dec;

void otpca_cbor_dec_init(otpca_cbor_dec *d, const uint8_t *buf, size_t len);

/* Reads one item head (and a string's content) at the current position;
 * for arrays, maps and tags the contents follow as further items. */
__attribute__((warn_unused_result)) otpca_err otpca_cbor_next(otpca_cbor_dec *d,
                                                              otpca_cbor_item *it);
/* Like otpca_cbor_next() without moving on. */
__attribute__((warn_unused_result)) otpca_err otpca_cbor_peek(const otpca_cbor_dec *d,
                                                              otpca_cbor_item *it);
/* Skips one whole item with everything nested in it (at most
 * OTPCA_CBOR_MAX_DEPTH levels), checking it as otpca_cbor_next() does. */
__attribute__((warn_unused_result)) otpca_err otpca_cbor_skip(otpca_cbor_dec *d);

/* Typed reads: OTPCA_ERR_CBOR_TYPE on another type, OTPCA_ERR_CBOR_LIMIT
 * outside [min, max]. */
__attribute__((warn_unused_result)) otpca_err otpca_cbor_get_uint(otpca_cbor_dec *d, uint64_t max,
                                                                  uint64_t *v);
__attribute__((warn_unused_result)) otpca_err otpca_cbor_get_int(otpca_cbor_dec *d, int64_t *v);
__attribute__((warn_unused_result)) otpca_err otpca_cbor_get_bytes(otpca_cbor_dec *d, size_t min,
                                                                   size_t max, otpca_buf *out);
__attribute__((warn_unused_result)) otpca_err otpca_cbor_get_text(otpca_cbor_dec *d, size_t min,
                                                                  size_t max, otpca_buf *out);
__attribute__((warn_unused_result)) otpca_err otpca_cbor_get_array(otpca_cbor_dec *d, size_t max,
                                                                   size_t *count);
__attribute__((warn_unused_result)) otpca_err otpca_cbor_get_map(otpca_cbor_dec *d, size_t max,
                                                                 size_t *pairs);
__attribute__((warn_unused_result)) otpca_err otpca_cbor_get_tag(otpca_cbor_dec *d, uint64_t tag);
__attribute__((warn_unused_result)) otpca_err otpca_cbor_get_bool(otpca_cbor_dec *d, bool *v);
/* OTPCA_ERR_CBOR_TRAILING unless the whole input was consumed. */
__attribute__((warn_unused_result)) otpca_err otpca_cbor_dec_finish(const otpca_cbor_dec *d);

/* Checks that buf holds exactly one well-formed deterministic item within
 * the depth limit (map keys sorted bytewise and unique at every level). */
__attribute__((warn_unused_result)) otpca_err otpca_cbor_validate(const uint8_t *buf, size_t len);

/* true if p[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool otpca_utf8_valid(const uint8_t *p, size_t len);

#endif
