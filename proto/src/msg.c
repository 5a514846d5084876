/*
 * The protocol's messages as tables: one descriptor per message lists its
 * fields (key, type, limits, required or not) and where they sit in the C
 * struct. One encoder and one decoder walk the tables, so every message
 * gets the same strict checks and the limits live in one place, next to
 * the numbers PROTOCOL.md states.
 */
#include "otpca/proto/msg.h"

#include <stddef.h>
#include <string.h>

#include "otpca/proto/ecies.h"
#include "otpca/proto/p256.h"
#include "otpca/proto/seedbox.h"

typedef enum kind {
    K_UINT,      /* uint64_t in [min, max] */
    K_BOOL,      /* bool */
    K_BSTR,      /* byte string, length in [min, max] */
    K_TSTR,      /* UTF-8 text string, length in [min, max] */
    K_ID,        /* text [A-Za-z0-9._:-], length in [min, max] */
    K_PUBKEY,    /* SEC1 P-256 key: 33 bytes (02/03) or 65 bytes (04) */
    K_EUI,       /* MAC: 6 (EUI-48) or 8 (EUI-64) bytes */
    K_LIST_BSTR, /* array of at most `count` byte strings of [min, max] */
    K_LIST_ID,   /* array of at most `count` K_ID strings */
    K_LIST_MAP   /* array of at most `count` maps of descriptor elem */
} kind;

typedef struct field {
    uint8_t key;
    uint8_t kind;
    uint8_t required;
    uint16_t off;
    uint64_t min, max;
    uint32_t count;
    const otpca_msg_desc *elem;
} field;

/* A key that becomes required when an element of one of the map's lists
 * carries a given key: SyncBatch needs its seedkey (9) as soon as one
 * DeviceEntry has a sealed seed (6). Checked by the decoder from the
 * elements it decodes anyway, so it costs nothing extra there. */
typedef struct dep_rule {
    uint8_t list_key, elem_key, needs_key;
} dep_rule;

struct otpca_msg_desc {
    const char *name;
    uint8_t type; /* 0: an element map, which has no type key */
    uint8_t nfields;
    size_t size;
    const field *fields;
    const dep_rule *dep; /* NULL: none */
};

#define TIME_MAX UINT64_C(0xffffffffff) /* seconds; year 36812 */
#define TOTP_MAX UINT64_C(99999999)     /* 8 digits */
#define ID_MAX 64
#define CERT_MAX 2048

/* Field constructors: R = required, O = optional. */
#define F(k, kd, rq, st, mb, mn, mx, cnt, el) {k, kd, rq, (uint16_t)offsetof(st, mb), mn, mx, cnt, el}
#define UINT(k, rq, st, mb, mn, mx) F(k, K_UINT, rq, st, mb, mn, mx, 0, NULL)
#define BOOL(k, rq, st, mb) F(k, K_BOOL, rq, st, mb, 0, 1, 0, NULL)
#define BSTR(k, rq, st, mb, mn, mx) F(k, K_BSTR, rq, st, mb, mn, mx, 0, NULL)
#define TSTR(k, rq, st, mb, mn, mx) F(k, K_TSTR, rq, st, mb, mn, mx, 0, NULL)
#define ID(k, rq, st, mb) F(k, K_ID, rq, st, mb, 1, ID_MAX, 0, NULL)
#define NONCE(k, rq, st, mb) BSTR(k, rq, st, mb, OTPCA_NONCE_LEN, OTPCA_NONCE_LEN)
#define ID16(k, rq, st, mb) BSTR(k, rq, st, mb, OTPCA_ID16_LEN, OTPCA_ID16_LEN)
#define HASH(k, rq, st, mb) BSTR(k, rq, st, mb, OTPCA_HASH_LEN, OTPCA_HASH_LEN)
#define TIME(k, rq, st, mb) UINT(k, rq, st, mb, 0, TIME_MAX)
#define TOTP(k, rq, st, mb) UINT(k, rq, st, mb, 0, TOTP_MAX)
#define PUBKEY(k, rq, st, mb) F(k, K_PUBKEY, rq, st, mb, 33, 65, 0, NULL)
#define PUBKEY65(k, rq, st, mb) F(k, K_PUBKEY, rq, st, mb, 65, 65, 0, NULL)
#define EUI(k, rq, st, mb) F(k, K_EUI, rq, st, mb, 6, 8, 0, NULL)
#define LIST_ID(k, rq, st, mb, cnt) F(k, K_LIST_ID, rq, st, mb, 1, ID_MAX, cnt, NULL)
#define LIST_ID16(k, rq, st, mb, cnt) F(k, K_LIST_BSTR, rq, st, mb, 16, 16, cnt, NULL)
#define LIST_MAP(k, rq, st, mb, cnt, el) F(k, K_LIST_MAP, rq, st, mb, 0, 0, cnt, el)
#define R 1
#define O 0

/* An ECIES envelope holding 16..64 bytes (the network key). */
#define ENV_MIN (OTPCA_ECIES_OVERHEAD + 16)
#define ENV_MAX (OTPCA_ECIES_OVERHEAD + 64)

#define DESC_DEP(var, nm, ty, st, tbl, dep)                                                          \
    const otpca_msg_desc var = {nm, ty, (uint8_t)(sizeof tbl / sizeof tbl[0]), sizeof(st), tbl, dep}
#define DESC(var, nm, ty, st, tbl) DESC_DEP(var, nm, ty, st, tbl, NULL)

/* ---- node <-> manager ---- */

static const field f_time_request[] = {
    NONCE(1, R, otpca_time_request, nonce),
};
DESC(otpca_desc_time_request, "TimeRequest", OTPCA_MSG_TIME_REQUEST, otpca_time_request, f_time_request);

static const field f_time_response[] = {
    NONCE(1, R, otpca_time_response, nonce),
    TIME(2, R, otpca_time_response, time),
};
DESC(otpca_desc_time_response, "TimeResponse", OTPCA_MSG_TIME_RESPONSE, otpca_time_response,
     f_time_response);

static const field f_enroll_request[] = {
    NONCE(1, R, otpca_enroll_request, nonce),
    TIME(2, R, otpca_enroll_request, time),
    ID(3, R, otpca_enroll_request, serial),
    EUI(4, R, otpca_enroll_request, mac),
    PUBKEY(5, R, otpca_enroll_request, pubkey),
    TOTP(6, R, otpca_enroll_request, totp),
    TSTR(7, R, otpca_enroll_request, fw, 1, 32),
    BSTR(8, O, otpca_enroll_request, ca, OTPCA_KID_LEN, OTPCA_KID_LEN),
};
DESC(otpca_desc_enroll_request, "EnrollRequest", OTPCA_MSG_ENROLL_REQUEST, otpca_enroll_request,
     f_enroll_request);
DESC(otpca_desc_claim, "Claim", OTPCA_MSG_CLAIM, otpca_enroll_request, f_enroll_request);

static const field f_enroll_response[] = {
    NONCE(1, R, otpca_enroll_response, nonce),
    ID16(2, R, otpca_enroll_response, record),
    TIME(3, R, otpca_enroll_response, time),
    BSTR(4, O, otpca_enroll_response, cert, 1, CERT_MAX),
    BSTR(5, R, otpca_enroll_response, netkey, ENV_MIN, ENV_MAX),
    UINT(6, R, otpca_enroll_response, netkey_epoch, 0, UINT32_MAX),
};
DESC(otpca_desc_enroll_response, "EnrollResponse", OTPCA_MSG_ENROLL_RESPONSE, otpca_enroll_response,
     f_enroll_response);

static const field f_enroll_confirm[] = {
    NONCE(1, R, otpca_enroll_confirm, nonce),
    ID16(2, R, otpca_enroll_confirm, record),
    TIME(3, R, otpca_enroll_confirm, time),
    HASH(4, R, otpca_enroll_confirm, cert_hash),
};
DESC(otpca_desc_enroll_confirm, "EnrollConfirm", OTPCA_MSG_ENROLL_CONFIRM, otpca_enroll_confirm,
     f_enroll_confirm);

static const field f_confirm_ack[] = {
    NONCE(1, R, otpca_confirm_ack, nonce),
    ID16(2, R, otpca_confirm_ack, record),
};
DESC(otpca_desc_confirm_ack, "ConfirmAck", OTPCA_MSG_CONFIRM_ACK, otpca_confirm_ack, f_confirm_ack);

static const field f_rejoin[] = {
    NONCE(1, R, otpca_rejoin, nonce),
    TIME(2, R, otpca_rejoin, time),
    ID(3, R, otpca_rejoin, serial),
    HASH(4, R, otpca_rejoin, cert_hash),
    TOTP(5, R, otpca_rejoin, totp),
};
DESC(otpca_desc_rejoin, "Rejoin", OTPCA_MSG_REJOIN, otpca_rejoin, f_rejoin);

static const field f_key_update[] = {
    NONCE(1, R, otpca_key_update, nonce),
    TIME(2, R, otpca_key_update, time),
    ID(3, R, otpca_key_update, serial),
    HASH(4, R, otpca_key_update, cert_hash),
    PUBKEY(5, R, otpca_key_update, pubkey),
    TOTP(6, R, otpca_key_update, totp),
};
DESC(otpca_desc_key_update, "KeyUpdate", OTPCA_MSG_KEY_UPDATE, otpca_key_update, f_key_update);

static const field f_error[] = {
    UINT(1, R, otpca_error_msg, code, 1, 255),
    NONCE(2, O, otpca_error_msg, nonce),
    UINT(3, O, otpca_error_msg, retry_after, 0, 86400),
    TSTR(4, O, otpca_error_msg, detail, 0, 256),
};
DESC(otpca_desc_error, "Error", OTPCA_MSG_ERROR, otpca_error_msg, f_error);

/* ---- manager <-> cloud ---- */

static const field f_window_open[] = {
    NONCE(1, R, otpca_window_open, nonce),
    TIME(2, R, otpca_window_open, time),
    ID(3, R, otpca_window_open, manager),
    ID(4, R, otpca_window_open, operator_),
    TOTP(5, R, otpca_window_open, totp),
    UINT(6, R, otpca_window_open, duration, 1, 30 * 86400),
    UINT(7, O, otpca_window_open, max_enroll, 1, 100000000),
    LIST_ID(8, O, otpca_window_open, scope, 64),
};
DESC(otpca_desc_window_open, "WindowOpen", OTPCA_MSG_WINDOW_OPEN, otpca_window_open, f_window_open);

static const field f_window_lease[] = {
    NONCE(1, R, otpca_window_lease, nonce),
    ID16(2, R, otpca_window_lease, window),
    ID(3, R, otpca_window_lease, manager),
    ID(4, R, otpca_window_lease, operator_),
    TIME(5, R, otpca_window_lease, not_before),
    TIME(6, R, otpca_window_lease, not_after),
    UINT(7, R, otpca_window_lease, max_enroll, 1, 100000000),
    LIST_ID(8, O, otpca_window_lease, scope, 64),
    BOOL(9, O, otpca_window_lease, offline),
};
DESC(otpca_desc_window_lease, "WindowLease", OTPCA_MSG_WINDOW_LEASE, otpca_window_lease,
     f_window_lease);

static const field f_sync_request[] = {
    ID16(1, R, otpca_sync_request, window),
    UINT(2, R, otpca_sync_request, since, 0, INT64_MAX),
    UINT(3, O, otpca_sync_request, max, 1, 4096),
    BSTR(4, O, otpca_sync_request, cursor, 1, 64),
};
DESC(otpca_desc_sync_request, "SyncRequest", OTPCA_MSG_SYNC_REQUEST, otpca_sync_request,
     f_sync_request);

static const field f_device_entry[] = {
    ID(0, R, otpca_device_entry, serial),
    UINT(1, R, otpca_device_entry, seq, 0, INT64_MAX),
    UINT(2, R, otpca_device_entry, state, OTPCA_DEV_APPROVED, OTPCA_DEV_DELETED),
    EUI(3, O, otpca_device_entry, mac),
    PUBKEY(4, O, otpca_device_entry, pubkey),
    ID(5, O, otpca_device_entry, batch),
    BSTR(6, O, otpca_device_entry, seed, OTPCA_SEEDBOX_SEALED_MIN, OTPCA_SEEDBOX_SEALED_MAX),
    UINT(7, O, otpca_device_entry, digits, 6, 8),
    UINT(8, O, otpca_device_entry, period, 1, 3600),
    UINT(9, O, otpca_device_entry, algorithm, 1, 2),
    UINT(10, O, otpca_device_entry, last_step, 0, INT64_MAX),
    UINT(11, O, otpca_device_entry, failures, 0, UINT32_MAX),
    HASH(12, O, otpca_device_entry, cert_hash),
    TIME(13, O, otpca_device_entry, revoked_at),
    UINT(14, O, otpca_device_entry, revoke_reason, 0, 10),
    BOOL(15, O, otpca_device_entry, unclaimed),
};
DESC(otpca_desc_device_entry, "DeviceEntry", 0, otpca_device_entry, f_device_entry);

static const field f_sync_batch[] = {
    ID16(1, R, otpca_sync_batch, window),
    UINT(2, R, otpca_sync_batch, kind, OTPCA_SYNC_DELTA, OTPCA_SYNC_SNAPSHOT),
    UINT(3, R, otpca_sync_batch, from, 0, INT64_MAX),
    UINT(4, R, otpca_sync_batch, to, 0, INT64_MAX),
    LIST_MAP(5, R, otpca_sync_batch, entries, 4096, &otpca_desc_device_entry),
    BOOL(6, R, otpca_sync_batch, more),
    BSTR(7, O, otpca_sync_batch, cursor, 1, 64),
    UINT(8, O, otpca_sync_batch, chunk, 0, UINT32_MAX),
    PUBKEY65(9, O, otpca_sync_batch, seedkey),
};
/* An entry with a sealed seed (6) needs the batch's seedkey (9). */
static const dep_rule seed_needs_seedkey = {5, 6, 9};
DESC_DEP(otpca_desc_sync_batch, "SyncBatch", OTPCA_MSG_SYNC_BATCH, otpca_sync_batch, f_sync_batch,
         &seed_needs_seedkey);

static const field f_record[] = {
    ID16(0, R, otpca_record, id),
    UINT(1, R, otpca_record, kind, OTPCA_REC_ISSUED, OTPCA_REC_LOCKED),
    ID(2, R, otpca_record, serial),
    TIME(3, R, otpca_record, time),
    BSTR(4, O, otpca_record, cert, 1, CERT_MAX),
    UINT(5, O, otpca_record, step, 0, INT64_MAX),
    UINT(6, O, otpca_record, reason, 0, 255),
    HASH(7, O, otpca_record, audit),
    PUBKEY(8, O, otpca_record, pubkey),
};
DESC(otpca_desc_record, "Record", 0, otpca_record, f_record);

static const field f_record_upload[] = {
    ID16(1, R, otpca_record_upload, window),
    ID(2, R, otpca_record_upload, manager),
    LIST_MAP(3, R, otpca_record_upload, records, 256, &otpca_desc_record),
};
DESC(otpca_desc_record_upload, "RecordUpload", OTPCA_MSG_RECORD_UPLOAD, otpca_record_upload,
     f_record_upload);

static const field f_record_ack[] = {
    ID16(1, R, otpca_record_ack, window),
    LIST_ID16(2, R, otpca_record_ack, ids, 256),
    LIST_ID16(3, O, otpca_record_ack, flagged, 256),
};
DESC(otpca_desc_record_ack, "RecordAck", OTPCA_MSG_RECORD_ACK, otpca_record_ack, f_record_ack);

static const field f_notice[] = {
    UINT(1, R, otpca_notice, seq, 0, INT64_MAX),
    UINT(2, R, otpca_notice, kind, OTPCA_NOTICE_REVOKED, OTPCA_NOTICE_UNLOCKED),
    ID(3, R, otpca_notice, serial),
    TIME(4, R, otpca_notice, time),
    UINT(5, O, otpca_notice, reason, 0, 255),
};
DESC(otpca_desc_notice, "Notice", OTPCA_MSG_NOTICE, otpca_notice, f_notice);

static const field f_audit_entry[] = {
    UINT(1, R, otpca_audit_entry, seq, 0, INT64_MAX),
    HASH(2, R, otpca_audit_entry, prev),
    TIME(3, R, otpca_audit_entry, time),
    ID(4, R, otpca_audit_entry, actor),
    UINT(5, R, otpca_audit_entry, event, 1, 65535),
    ID(6, O, otpca_audit_entry, subject),
    TSTR(7, O, otpca_audit_entry, detail, 0, 512),
    ID16(8, O, otpca_audit_entry, window),
};
DESC(otpca_desc_audit_entry, "AuditEntry", OTPCA_MSG_AUDIT_ENTRY, otpca_audit_entry, f_audit_entry);

static const field f_window_close[] = {
    ID16(1, R, otpca_window_close, window),
    TIME(2, R, otpca_window_close, time),
    UINT(3, R, otpca_window_close, enrolled, 0, UINT32_MAX),
    UINT(4, R, otpca_window_close, rejected, 0, UINT32_MAX),
};
DESC(otpca_desc_window_close, "WindowClose", OTPCA_MSG_WINDOW_CLOSE, otpca_window_close,
     f_window_close);

static const field f_crl_publish[] = {
    ID16(1, R, otpca_crl_publish, window),
    ID(2, R, otpca_crl_publish, manager),
    UINT(3, R, otpca_crl_publish, number, 0, INT64_MAX),
    BSTR(4, R, otpca_crl_publish, crl, 1, OTPCA_CRL_DER_MAX),
};
DESC(otpca_desc_crl_publish, "CrlPublish", OTPCA_MSG_CRL_PUBLISH, otpca_crl_publish, f_crl_publish);

static const otpca_msg_desc *const all[] = {
    &otpca_desc_time_request,   &otpca_desc_time_response, &otpca_desc_enroll_request,
    &otpca_desc_enroll_response, &otpca_desc_enroll_confirm, &otpca_desc_confirm_ack,
    &otpca_desc_rejoin,         &otpca_desc_key_update,    &otpca_desc_claim,
    &otpca_desc_error,          &otpca_desc_window_open,   &otpca_desc_window_lease,
    &otpca_desc_sync_request,   &otpca_desc_sync_batch,    &otpca_desc_record_upload,
    &otpca_desc_record_ack,     &otpca_desc_notice,        &otpca_desc_audit_entry,
    &otpca_desc_window_close,   &otpca_desc_crl_publish,
};

const otpca_msg_desc *otpca_msg_desc_of(unsigned type)
{
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->type == type)
            return all[i];
    return NULL;
}

const char *otpca_msg_name(const otpca_msg_desc *d) { return d->name; }

/* ---- value checks shared by encoder and decoder ---- */

static bool id_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

static otpca_err check_string(const field *f, otpca_buf b)
{
    if (b.len < f->min || b.len > f->max)
        return OTPCA_ERR_CBOR_LIMIT;
    switch (f->kind) {
    case K_ID:
    case K_LIST_ID:
        for (size_t i = 0; i < b.len; i++)
            if (!id_char(b.p[i]))
                return OTPCA_ERR_PROTO_VALUE;
        return OTPCA_ERR_OK;
    case K_TSTR:
        return otpca_utf8_valid(b.p, b.len) ? OTPCA_ERR_OK : OTPCA_ERR_CBOR_MALFORMED;
    case K_PUBKEY:
        if ((b.len == 33 && (b.p[0] == 2 || b.p[0] == 3)) || (b.len == 65 && b.p[0] == 4))
            return OTPCA_ERR_OK;
        return OTPCA_ERR_PROTO_VALUE;
    case K_EUI:
        return b.len == 7 ? OTPCA_ERR_PROTO_VALUE : OTPCA_ERR_OK;
    default:
        return OTPCA_ERR_OK;
    }
}

static bool is_text(const field *f) { return f->kind == K_TSTR || f->kind == K_ID || f->kind == K_LIST_ID; }

static const field *find_field(const otpca_msg_desc *d, uint64_t key)
{
    for (size_t i = 0; i < d->nfields; i++)
        if (d->fields[i].key == key)
            return &d->fields[i];
    return NULL;
}

/* Largest element struct of any list (a decode target on the stack). */
typedef union elem_storage {
    otpca_device_entry device;
    otpca_record record;
} elem_storage;

/* The present bits of a decoded element (the first member of every
 * element struct). */
static uint32_t elem_present(const elem_storage *e) { return *(const uint32_t *)(const void *)e; }

/* ---- sizes ---- */

static size_t str_max(uint64_t max) { return otpca_cbor_head_size(max) + (size_t)max; }

size_t otpca_msg_max_size(const otpca_msg_desc *d)
{
    /* Key 0 (one byte) and the type, then every field at its largest. */
    size_t n = otpca_cbor_head_size(d->nfields + 1u) + (d->type ? 1 + otpca_cbor_head_size(d->type) : 0);
    for (size_t i = 0; i < d->nfields; i++) {
        const field *f = &d->fields[i];
        n += otpca_cbor_head_size(f->key);
        switch (f->kind) {
        case K_UINT:
            n += otpca_cbor_head_size(f->max);
            break;
        case K_BOOL:
            n += 1;
            break;
        case K_LIST_BSTR:
        case K_LIST_ID:
            n += otpca_cbor_head_size(f->count) + f->count * str_max(f->max);
            break;
        case K_LIST_MAP:
            n += otpca_cbor_head_size(f->count) + f->count * otpca_msg_max_size(f->elem);
            break;
        default:
            n += str_max(f->max);
        }
    }
    return n;
}

/* ---- encoder ---- */

#define AT(m, f, T) ((T *)((char *)(m) + (f)->off))
#define CAT(m, f, T) ((const T *)((const char *)(m) + (f)->off))

static bool field_present(const field *f, const void *m)
{
    uint32_t present = *(const uint32_t *)m;
    switch (f->kind) {
    case K_UINT:
    case K_BOOL:
        return f->required || (present & OTPCA_MSG_BIT(f->key));
    case K_LIST_BSTR:
    case K_LIST_ID:
    case K_LIST_MAP: {
        const otpca_list *l = CAT(m, f, otpca_list);
        return l->items || l->raw.p;
    }
    default:
        return CAT(m, f, otpca_buf)->p != NULL;
    }
}

static otpca_err encode_map(otpca_cbor_enc *e, const otpca_msg_desc *d, const void *m, unsigned depth);

/* The encoder's side of the descriptor's dep_rule: PROTO_MISSING if the
 * needed key is absent while an element of the list has the other. Only
 * then are the elements looked at; a list kept encoded (re-encoding a
 * decoded message) is walked. */
static otpca_err check_dep(const otpca_msg_desc *d, const void *m)
{
    const dep_rule *r = d->dep;
    if (!r || field_present(find_field(d, r->needs_key), m))
        return OTPCA_ERR_OK;
    const field *lf = find_field(d, r->list_key);
    const field *ef = find_field(lf->elem, r->elem_key);
    const otpca_list *l = CAT(m, lf, otpca_list);
    if (l->items) {
        for (size_t i = 0; i < l->count; i++)
            if (field_present(ef, (const char *)l->items + i * lf->elem->size))
                return OTPCA_ERR_PROTO_MISSING;
        return OTPCA_ERR_OK;
    }
    otpca_list_iter it;
    elem_storage tmp;
    otpca_err ret;
    otpca_list_iter_init(&it, l);
    while ((ret = otpca_list_next(&it, lf->elem, &tmp)) == OTPCA_ERR_OK)
        if (elem_present(&tmp) & OTPCA_MSG_BIT(r->elem_key))
            return OTPCA_ERR_PROTO_MISSING;
    return ret == OTPCA_ERR_NOT_FOUND ? OTPCA_ERR_OK : ret;
}

static otpca_err encode_list(otpca_cbor_enc *e, const field *f, const otpca_list *l, unsigned depth)
{
    if (!l->items) {
        /* Re-encoding a decoded list: it was checked when decoded. */
        otpca_cbor_put_raw(e, l->raw.p, l->raw.len);
        return OTPCA_ERR_OK;
    }
    if (l->count > f->count)
        return OTPCA_ERR_CBOR_LIMIT;
    otpca_cbor_put_array(e, l->count);
    for (size_t i = 0; i < l->count; i++) {
        if (f->kind == K_LIST_MAP) {
            const char *elem = (const char *)l->items + i * f->elem->size;
            otpca_err ret = encode_map(e, f->elem, elem, depth + 1);
            if (ret)
                return ret;
        } else {
            otpca_buf b = ((const otpca_buf *)l->items)[i];
            otpca_err ret = b.p ? check_string(f, b) : OTPCA_ERR_INVALID_ARG;
            if (ret)
                return ret;
            if (is_text(f))
                otpca_cbor_put_text(e, (const char *)b.p, b.len);
            else
                otpca_cbor_put_bytes(e, b.p, b.len);
        }
    }
    return OTPCA_ERR_OK;
}

static otpca_err encode_map(otpca_cbor_enc *e, const otpca_msg_desc *d, const void *m, unsigned depth)
{
    size_t pairs = d->type ? 1 : 0;
    otpca_err ret;
    if (depth > 2)
        return OTPCA_ERR_CBOR_LIMIT;
    for (size_t i = 0; i < d->nfields; i++) {
        const field *f = &d->fields[i];
        if (field_present(f, m))
            pairs++;
        else if (f->required)
            return OTPCA_ERR_PROTO_MISSING;
    }
    if ((ret = check_dep(d, m)))
        return ret;
    otpca_cbor_put_map(e, pairs);
    if (d->type) {
        otpca_cbor_put_uint(e, 0);
        otpca_cbor_put_uint(e, d->type);
    }
    for (size_t i = 0; i < d->nfields; i++) {
        const field *f = &d->fields[i];
        if (!field_present(f, m))
            continue;
        otpca_cbor_put_uint(e, f->key);
        switch (f->kind) {
        case K_UINT: {
            uint64_t v = *CAT(m, f, uint64_t);
            if (v < f->min || v > f->max)
                return OTPCA_ERR_PROTO_VALUE;
            otpca_cbor_put_uint(e, v);
            break;
        }
        case K_BOOL:
            otpca_cbor_put_bool(e, *CAT(m, f, bool));
            break;
        case K_LIST_BSTR:
        case K_LIST_ID:
        case K_LIST_MAP:
            if ((ret = encode_list(e, f, CAT(m, f, otpca_list), depth)))
                return ret;
            break;
        default: {
            otpca_buf b = *CAT(m, f, otpca_buf);
            if ((ret = check_string(f, b)))
                return ret;
            if (is_text(f))
                otpca_cbor_put_text(e, (const char *)b.p, b.len);
            else
                otpca_cbor_put_bytes(e, b.p, b.len);
        }
        }
    }
    return OTPCA_ERR_OK;
}

otpca_err otpca_msg_encode(const otpca_msg_desc *d, const void *m, uint8_t *buf, size_t cap, size_t *len)
{
    otpca_cbor_enc e;
    otpca_cbor_enc_init(&e, buf, cap);
    otpca_err ret = encode_map(&e, d, m, 0);
    return ret ? ret : otpca_cbor_enc_finish(&e, len);
}

otpca_err otpca_msg_sign(const otpca_msg_desc *d, const void *m, const otpca_signer *s,
                         otpca_buf x5chain, uint8_t *buf, size_t cap, size_t *len)
{
    size_t plen, off;
    otpca_err ret = otpca_msg_encode(d, m, NULL, 0, &plen);
    if (ret)
        return ret;
    if (!buf)
        return OTPCA_ERR_INVALID_ARG;
    otpca_cbor_enc e;
    otpca_cbor_enc_init(&e, buf, cap);
    otpca_cose_sign1_begin(&e, s, x5chain, plen, &off);
    if ((ret = encode_map(&e, d, m, 0)))
        return ret;
    if ((ret = otpca_cose_sign1_end(&e, s, off, plen)))
        return ret;
    return otpca_cbor_enc_finish(&e, len);
}

/* ---- decoder ---- */

static otpca_err decode_map(otpca_cbor_dec *dec, const otpca_msg_desc *d, void *m, unsigned depth);

static otpca_err decode_string(otpca_cbor_dec *dec, const field *f, otpca_buf *out)
{
    otpca_err ret = is_text(f) ? otpca_cbor_get_text(dec, 0, SIZE_MAX, out)
                               : otpca_cbor_get_bytes(dec, 0, SIZE_MAX, out);
    return ret ? ret : check_string(f, *out);
}

/* *elem_seen collects the keys present in any element of a map list. */
static otpca_err decode_list(otpca_cbor_dec *dec, const field *f, otpca_list *l, unsigned depth,
                             uint32_t *elem_seen)
{
    size_t start = dec->pos, n;
    otpca_err ret = otpca_cbor_get_array(dec, f->count, &n);
    if (ret)
        return ret;
    for (size_t i = 0; i < n; i++) {
        if (f->kind == K_LIST_MAP) {
            elem_storage tmp;
            ret = decode_map(dec, f->elem, &tmp, depth + 1);
            if (!ret)
                *elem_seen |= elem_present(&tmp);
        } else {
            otpca_buf b;
            ret = decode_string(dec, f, &b);
        }
        if (ret)
            return ret;
    }
    l->items = NULL;
    l->count = n;
    l->raw.p = dec->buf + start;
    l->raw.len = dec->pos - start;
    return OTPCA_ERR_OK;
}

static otpca_err decode_map(otpca_cbor_dec *dec, const otpca_msg_desc *d, void *m, unsigned depth)
{
    size_t pairs;
    uint64_t key, prev = 0;
    bool first = true;
    uint32_t seen = 0, elem_seen = 0;
    size_t unknown = 0, unknown_keys = 0;
    otpca_err ret;
    if (depth > 2)
        return OTPCA_ERR_CBOR_LIMIT;
    memset(m, 0, d->size);
    /* Known fields, the type, and up to OTPCA_MSG_UNKNOWN_KEYS unknown ones
     * (counted exactly below). */
    if ((ret = otpca_cbor_get_map(dec, d->nfields + (d->type ? 1u : 0u) + OTPCA_MSG_UNKNOWN_KEYS, &pairs)))
        return ret;
    if (d->type) {
        uint64_t type;
        if (pairs == 0)
            return OTPCA_ERR_PROTO_MSG_TYPE;
        if ((ret = otpca_cbor_get_uint(dec, UINT32_MAX, &key)))
            return ret;
        if (key != 0)
            return OTPCA_ERR_PROTO_MSG_TYPE;
        if ((ret = otpca_cbor_get_uint(dec, UINT32_MAX, &type)))
            return ret;
        if (type != d->type)
            return OTPCA_ERR_PROTO_MSG_TYPE;
        pairs--;
        first = false;
    }
    for (size_t i = 0; i < pairs; i++) {
        if ((ret = otpca_cbor_get_uint(dec, UINT32_MAX, &key)))
            return ret;
        if (!first && key <= prev)
            return OTPCA_ERR_CBOR_KEY_ORDER;
        first = false;
        prev = key;
        const field *f = find_field(d, key);
        if (!f) {
            /* Unknown keys are skipped (PROTOCOL.md, versioning), within a
             * budget so that they cannot stretch a message without bound. */
            size_t start = dec->pos;
            if ((ret = otpca_cbor_skip(dec)))
                return ret;
            unknown += dec->pos - start;
            if (unknown > OTPCA_MSG_UNKNOWN_MAX || ++unknown_keys > OTPCA_MSG_UNKNOWN_KEYS)
                return OTPCA_ERR_CBOR_LIMIT;
            continue;
        }
        switch (f->kind) {
        case K_UINT:
            ret = otpca_cbor_get_uint(dec, f->max, AT(m, f, uint64_t));
            if (!ret && *AT(m, f, uint64_t) < f->min)
                ret = OTPCA_ERR_CBOR_LIMIT;
            break;
        case K_BOOL:
            ret = otpca_cbor_get_bool(dec, AT(m, f, bool));
            break;
        case K_LIST_BSTR:
        case K_LIST_ID:
        case K_LIST_MAP: {
            uint32_t es = 0;
            ret = decode_list(dec, f, AT(m, f, otpca_list), depth, &es);
            if (d->dep && d->dep->list_key == f->key)
                elem_seen = es;
            break;
        }
        default:
            ret = decode_string(dec, f, AT(m, f, otpca_buf));
        }
        if (ret)
            return ret;
        seen |= OTPCA_MSG_BIT(f->key);
    }
    for (size_t i = 0; i < d->nfields; i++)
        if (d->fields[i].required && !(seen & OTPCA_MSG_BIT(d->fields[i].key)))
            return OTPCA_ERR_PROTO_MISSING;
    if (d->dep && (elem_seen & OTPCA_MSG_BIT(d->dep->elem_key)) &&
        !(seen & OTPCA_MSG_BIT(d->dep->needs_key)))
        return OTPCA_ERR_PROTO_MISSING;
    *(uint32_t *)m = seen;
    return OTPCA_ERR_OK;
}

otpca_err otpca_msg_decode(const otpca_msg_desc *d, const uint8_t *in, size_t len, void *m)
{
    otpca_cbor_dec dec;
    memset(m, 0, d->size); /* a failure never leaves stale fields behind */
    if (!in || len > otpca_msg_max_size(d) + OTPCA_MSG_UNKNOWN_MAX)
        return OTPCA_ERR_CBOR_LIMIT;
    otpca_cbor_dec_init(&dec, in, len);
    otpca_err ret = decode_map(&dec, d, m, 0);
    if (!ret)
        ret = otpca_cbor_dec_finish(&dec);
    if (ret)
        memset(m, 0, d->size);
    return ret;
}

otpca_err otpca_msg_peek_type(const uint8_t *in, size_t len, unsigned *type)
{
    otpca_cbor_dec dec;
    size_t pairs;
    uint64_t key, t;
    otpca_cbor_dec_init(&dec, in, len);
    otpca_err ret = otpca_cbor_get_map(&dec, 64, &pairs);
    if (ret)
        return ret;
    if (pairs == 0)
        return OTPCA_ERR_PROTO_MSG_TYPE;
    if ((ret = otpca_cbor_get_uint(&dec, UINT32_MAX, &key)))
        return ret;
    if (key != 0)
        return OTPCA_ERR_PROTO_MSG_TYPE;
    if ((ret = otpca_cbor_get_uint(&dec, UINT32_MAX, &t)))
        return ret;
    *type = (unsigned)t;
    return OTPCA_ERR_OK;
}

void otpca_list_iter_init(otpca_list_iter *it, const otpca_list *l)
{
    otpca_cbor_dec_init(&it->dec, l->raw.p, l->raw.len);
    it->left = 0;
    size_t n;
    if (l->raw.p && otpca_cbor_get_array(&it->dec, SIZE_MAX, &n) == OTPCA_ERR_OK)
        it->left = n;
}

otpca_err otpca_list_next(otpca_list_iter *it, const otpca_msg_desc *elem, void *out)
{
    if (it->left == 0)
        return OTPCA_ERR_NOT_FOUND;
    otpca_err ret;
    if (elem) {
        ret = decode_map(&it->dec, elem, out, 1);
    } else {
        otpca_cbor_item item;
        ret = otpca_cbor_next(&it->dec, &item);
        if (!ret && item.type != OTPCA_CBOR_BYTES && item.type != OTPCA_CBOR_TEXT)
            ret = OTPCA_ERR_CBOR_TYPE;
        if (!ret)
            *(otpca_buf *)out = item.str;
    }
    if (ret)
        it->left = 0;
    else
        it->left--;
    return ret;
}

/* ---- the audit chain ---- */

/* The largest AuditEntry encodes in 731 bytes (a 512-byte detail, 64-byte
 * actor and subject, the window id); the encoder refuses anything larger. */
#define AUDIT_ENTRY_BUF 768

void otpca_record_confirm_id(const uint8_t issued[OTPCA_ID16_LEN], uint8_t out[OTPCA_ID16_LEN])
{
    uint8_t in[32 + OTPCA_ID16_LEN], h[32];
    memcpy(in, "otpca-confirmed-record-id-v1....", 32);
    memcpy(in + 32, issued, OTPCA_ID16_LEN);
    otpca_sha256(in, sizeof in, h);
    memcpy(out, h, OTPCA_ID16_LEN);
}

otpca_err otpca_audit_entry_hash(const otpca_audit_entry *e, uint8_t hash[OTPCA_HASH_LEN])
{
    uint8_t buf[AUDIT_ENTRY_BUF];
    size_t len = 0;
    otpca_err ret = otpca_msg_encode(&otpca_desc_audit_entry, e, buf, sizeof buf, &len);
    if (ret)
        return ret;
    otpca_sha256(buf, len, hash);
    return OTPCA_ERR_OK;
}
