/*
 * fuzz_msg: the table-driven message codec (proto/src/msg.c).
 *
 * Every input is decoded with the descriptor of every type 0..40 that
 * otpca_msg_desc_of() knows, and with the two element descriptors
 * (DeviceEntry, Record) as if they were messages. Then:
 *   - at most one message type decodes, and otpca_msg_peek_type() names it;
 *   - a failed decode leaves the struct all zero (msg.h promises it);
 *   - a decoded message encodes again (otpca_msg_encode, counting and
 *     writing, and BUFFER_TOO_SMALL one byte short), and the encoding is
 *     byte-identical to the input when the input had no unknown keys
 *     (deterministic CBOR: one encoding per message; the decoder skips
 *     unknown keys, which the map's pair count reveals) and then no longer
 *     than otpca_msg_max_size() (for maps without lists); with unknown
 *     keys the encoding is shorter, decodes, and re-encodes to itself;
 *   - every list walks with otpca_list_iter_init/otpca_list_next (element
 *     descriptor &otpca_desc_device_entry, &otpca_desc_record or NULL for
 *     string lists) through exactly `count` elements to the end of its raw
 *     encoding, and every map element round-trips the same way.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "otpca/proto/msg.h"

typedef union any_msg {
    otpca_time_request time_request;
    otpca_time_response time_response;
    otpca_enroll_request enroll_request; /* also Claim */
    otpca_enroll_response enroll_response;
    otpca_enroll_confirm enroll_confirm;
    otpca_confirm_ack confirm_ack;
    otpca_rejoin rejoin;
    otpca_key_update key_update;
    otpca_error_msg error;
    otpca_window_open window_open;
    otpca_window_lease window_lease;
    otpca_sync_request sync_request;
    otpca_device_entry device_entry;
    otpca_sync_batch sync_batch;
    otpca_record record;
    otpca_record_upload record_upload;
    otpca_record_ack record_ack;
    otpca_notice notice;
    otpca_audit_entry audit_entry;
    otpca_window_close window_close;
} any_msg;

/* The struct size of a message type; 0 for types this file does not know. */
static size_t struct_size(unsigned type)
{
    switch (type) {
    case OTPCA_MSG_TIME_REQUEST: return sizeof(otpca_time_request);
    case OTPCA_MSG_TIME_RESPONSE: return sizeof(otpca_time_response);
    case OTPCA_MSG_ENROLL_REQUEST:
    case OTPCA_MSG_CLAIM: return sizeof(otpca_enroll_request);
    case OTPCA_MSG_ENROLL_RESPONSE: return sizeof(otpca_enroll_response);
    case OTPCA_MSG_ENROLL_CONFIRM: return sizeof(otpca_enroll_confirm);
    case OTPCA_MSG_CONFIRM_ACK: return sizeof(otpca_confirm_ack);
    case OTPCA_MSG_REJOIN: return sizeof(otpca_rejoin);
    case OTPCA_MSG_KEY_UPDATE: return sizeof(otpca_key_update);
    case OTPCA_MSG_ERROR: return sizeof(otpca_error_msg);
    case OTPCA_MSG_WINDOW_OPEN: return sizeof(otpca_window_open);
    case OTPCA_MSG_WINDOW_LEASE: return sizeof(otpca_window_lease);
    case OTPCA_MSG_SYNC_REQUEST: return sizeof(otpca_sync_request);
    case OTPCA_MSG_SYNC_BATCH: return sizeof(otpca_sync_batch);
    case OTPCA_MSG_RECORD_UPLOAD: return sizeof(otpca_record_upload);
    case OTPCA_MSG_RECORD_ACK: return sizeof(otpca_record_ack);
    case OTPCA_MSG_NOTICE: return sizeof(otpca_notice);
    case OTPCA_MSG_AUDIT_ENTRY: return sizeof(otpca_audit_entry);
    case OTPCA_MSG_WINDOW_CLOSE: return sizeof(otpca_window_close);
    default: return 0;
    }
}

static bool inside(const uint8_t *data, size_t size, otpca_buf b)
{
    return b.p >= data && b.len <= size && (size_t)(b.p - data) <= size - b.len;
}

/* One memcmp, not a byte loop: the loop's instrumented compares cost more
 * than the 21 decodes it checks. */
static bool all_zero(const void *p, size_t n)
{
    static const any_msg zero;
    return n <= sizeof zero && memcmp(p, &zero, n) == 0;
}

#define FILL 0xa5

/* Pair count of the map a message (or element) starts with. */
static uint64_t map_pairs(const uint8_t *p, size_t len)
{
    otpca_cbor_dec d;
    otpca_cbor_item it;
    otpca_cbor_dec_init(&d, p, len);
    FUZZ_CHECK(otpca_cbor_peek(&d, &it) == OTPCA_ERR_OK && it.type == OTPCA_CBOR_MAP);
    return it.u;
}

/* m was decoded from in[0..len) with d: encode it again and compare.
 * flat: d has no list fields (whose elements may hold unknown keys). */
static void roundtrip(const otpca_msg_desc *d, const void *m, bool flat, const uint8_t *in,
                      size_t len)
{
    size_t n, n2;
    FUZZ_CHECK(otpca_msg_encode(d, m, NULL, 0, &n) == OTPCA_ERR_OK);
    FUZZ_CHECK(n > 0 && n <= len);
    uint8_t *out = malloc(n);
    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(otpca_msg_encode(d, m, out, n - 1, &n2) == OTPCA_ERR_BUFFER_TOO_SMALL);
    FUZZ_CHECK(otpca_msg_encode(d, m, out, n, &n2) == OTPCA_ERR_OK && n2 == n);

    uint64_t in_pairs = map_pairs(in, len), out_pairs = map_pairs(out, n);
    if (in_pairs == out_pairs) {
        /* No unknown keys: the one deterministic encoding. */
        FUZZ_CHECK(n == len && memcmp(out, in, len) == 0);
        /* ... which otpca_msg_max_size bounds. */
        if (flat)
            FUZZ_CHECK(len <= otpca_msg_max_size(d));
    } else {
        /* Unknown keys were dropped: shorter, and a fixed point from here. */
        FUZZ_CHECK(out_pairs < in_pairs && n < len);
        any_msg m2;
        FUZZ_CHECK(otpca_msg_decode(d, out, n, &m2) == OTPCA_ERR_OK);
        uint8_t *again = malloc(n);
        FUZZ_CHECK(again != NULL);
        FUZZ_CHECK(otpca_msg_encode(d, &m2, again, n, &n2) == OTPCA_ERR_OK && n2 == n);
        FUZZ_CHECK(memcmp(again, out, n) == 0);
        free(again);
    }
    free(out);
}

/* Walks a decoded list; elem is the element descriptor or NULL (strings of
 * [min, max] bytes). */
static void walk_list(const otpca_list *l, const otpca_msg_desc *elem, size_t min, size_t max,
                      const uint8_t *data, size_t size)
{
    if (!l->raw.p) {
        FUZZ_CHECK(l->items == NULL && l->count == 0 && l->raw.len == 0);
        return;
    }
    FUZZ_CHECK(l->items == NULL && inside(data, size, l->raw));
    otpca_list_iter it;
    otpca_list_iter_init(&it, l);
    FUZZ_CHECK(it.left == l->count);
    for (size_t k = 0; k < l->count; k++) {
        size_t before = it.dec.pos;
        any_msg el;
        otpca_buf b = {NULL, 0};
        FUZZ_CHECK(otpca_list_next(&it, elem, elem ? (void *)&el : (void *)&b) == OTPCA_ERR_OK);
        FUZZ_CHECK(it.dec.pos > before && it.dec.pos <= l->raw.len);
        if (elem) {
            roundtrip(elem, &el, true, l->raw.p + before, it.dec.pos - before);
        } else {
            FUZZ_CHECK(b.p && inside(l->raw.p, l->raw.len, b));
            FUZZ_CHECK(b.len >= min && b.len <= max);
        }
    }
    any_msg el;
    otpca_buf b;
    FUZZ_CHECK(otpca_list_next(&it, elem, elem ? (void *)&el : (void *)&b) == OTPCA_ERR_NOT_FOUND);
    FUZZ_CHECK(it.dec.pos == l->raw.len);
}

static bool has_lists(unsigned type)
{
    return type == OTPCA_MSG_WINDOW_OPEN || type == OTPCA_MSG_WINDOW_LEASE ||
           type == OTPCA_MSG_SYNC_BATCH || type == OTPCA_MSG_RECORD_UPLOAD ||
           type == OTPCA_MSG_RECORD_ACK;
}

static void walk_lists(unsigned type, const any_msg *m, const uint8_t *data, size_t size)
{
    switch (type) {
    case OTPCA_MSG_WINDOW_OPEN:
        walk_list(&m->window_open.scope, NULL, 1, 64, data, size);
        break;
    case OTPCA_MSG_WINDOW_LEASE:
        walk_list(&m->window_lease.scope, NULL, 1, 64, data, size);
        break;
    case OTPCA_MSG_SYNC_BATCH:
        walk_list(&m->sync_batch.entries, &otpca_desc_device_entry, 0, 0, data, size);
        break;
    case OTPCA_MSG_RECORD_UPLOAD:
        walk_list(&m->record_upload.records, &otpca_desc_record, 0, 0, data, size);
        break;
    case OTPCA_MSG_RECORD_ACK:
        walk_list(&m->record_ack.ids, NULL, OTPCA_ID16_LEN, OTPCA_ID16_LEN, data, size);
        walk_list(&m->record_ack.flagged, NULL, OTPCA_ID16_LEN, OTPCA_ID16_LEN, data, size);
        break;
    default:
        break;
    }
}

/* Decodes with d; true if it decoded (and then all checks ran). */
static bool try_desc(const otpca_msg_desc *d, size_t struct_len, unsigned type,
                     const uint8_t *data, size_t size)
{
    any_msg m;
    FUZZ_CHECK(otpca_msg_name(d) != NULL);
    memset(&m, FILL, sizeof m);
    if (otpca_msg_decode(d, data, size, &m) != OTPCA_ERR_OK) {
        /* Nothing half-decoded: msg.h promises an all-zero struct. */
        FUZZ_CHECK(all_zero(&m, struct_len));
        return false;
    }
    FUZZ_CHECK(size <= otpca_msg_max_size(d) + OTPCA_MSG_UNKNOWN_MAX);
    roundtrip(d, &m, (type == 0 || struct_size(type)) && !has_lists(type), data, size);
    walk_lists(type, &m, data, size);
    return true;
}

/* The descriptors of types 0..40, looked up once (otpca_msg_desc_of scans
 * a table; 41 scans per input would cost a fifth of the run). */
static unsigned n_types;
static unsigned types[41];
static const otpca_msg_desc *descs[41];

static void load_descs(void)
{
    for (unsigned t = 0; t <= 40; t++) {
        const otpca_msg_desc *d = otpca_msg_desc_of(t);
        if (d) {
            types[n_types] = t;
            descs[n_types++] = d;
        }
    }
    FUZZ_CHECK(n_types > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned decoded = 0, which = 0;
    if (!n_types)
        load_descs();
    for (unsigned i = 0; i < n_types; i++) {
        unsigned t = types[i];
        size_t len = struct_size(t);
        if (try_desc(descs[i], len ? len : sizeof(uint32_t), t, data, size)) {
            decoded++;
            which = t;
        }
    }
    FUZZ_CHECK(decoded <= 1);
    if (decoded) {
        unsigned peeked;
        FUZZ_CHECK(otpca_msg_peek_type(data, size, &peeked) == OTPCA_ERR_OK && peeked == which);
    }
    /* The list elements on their own (no type key). */
    try_desc(&otpca_desc_device_entry, sizeof(otpca_device_entry), 0, data, size);
    try_desc(&otpca_desc_record, sizeof(otpca_record), 0, data, size);
    return 0;
}
