/*
 * Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/) with
 * the library's own encoders: a few valid encodings per target, small.
 * Run once by hand when the formats change, then check the files in:
 *
 *   build/tests/fuzz/fuzz_gen_corpus tests/fuzz/corpus
 *
 * ECIES and ECDSA are randomised, so a rerun gives other bytes for the
 * envelopes and signatures (equally valid); sealed seeds come out the same
 * (the fixed seed box of fuzz.h). COSE messages are signed by, and
 * envelopes and seeds sealed to, the fixed key of fuzz.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "otpca/proto/cbor.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/ecies.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/seedbox.h"

static const char *root;

static void die(const char *what, otpca_err err)
{
    fprintf(stderr, "gen_corpus: %s: %s\n", what, otpca_errname(err));
    exit(1);
}

static void put_file(const char *target, const char *name, const uint8_t *p, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    printf("%s/%s: %zu bytes\n", target, name, len);
}

static uint8_t nonce[OTPCA_NONCE_LEN], id16[OTPCA_ID16_LEN], id16b[OTPCA_ID16_LEN],
    hash[OTPCA_HASH_LEN], mac6[6], mac8[8], kid[OTPCA_KID_LEN], pubc[OTPCA_P256_PUB_C_LEN],
    cert[96], envelope[OTPCA_ECIES_OVERHEAD + 16], seed20[20],
    sealed_seed[OTPCA_SEEDBOX_SEALED_LEN(20)];

#define BUF(p, n) ((otpca_buf){(const uint8_t *)(p), (n)})
#define STR(s) BUF(s, sizeof(s) - 1)
#define ARR(a) BUF(a, sizeof(a))

/* Encodes m with d; writes it to msg/ (and returns it in out). */
static size_t msg_file(const char *name, const otpca_msg_desc *d, const void *m, uint8_t *out,
                       size_t cap)
{
    size_t len;
    otpca_err err = otpca_msg_encode(d, m, out, cap, &len);
    if (err)
        die(name, err);
    put_file("msg", name, out, len);
    return len;
}

static void gen_msg(uint8_t *time_request, size_t *time_request_len, uint8_t *enroll_response,
                    size_t *enroll_response_len)
{
    const otpca_p256_soft *key = fuzz_key();
    uint8_t out[2048];

    otpca_time_request treq = {.nonce = ARR(nonce)};
    *time_request_len = msg_file("01-time-request", &otpca_desc_time_request, &treq,
                                 time_request, 256);
    otpca_time_response tresp = {.nonce = ARR(nonce), .time = 1700000000};
    msg_file("02-time-response", &otpca_desc_time_response, &tresp, out, sizeof out);

    otpca_enroll_request ereq = {.nonce = ARR(nonce),
                                 .time = 1700000001,
                                 .serial = STR("node-000001"),
                                 .mac = ARR(mac6),
                                 .pubkey = BUF(key->pub, sizeof key->pub),
                                 .totp = 123456,
                                 .fw = STR("1.2.3"),
                                 .ca = ARR(kid)};
    msg_file("03-enroll-request", &otpca_desc_enroll_request, &ereq, out, sizeof out);
    otpca_enroll_request claim = ereq;
    claim.mac = ARR(mac8);
    claim.pubkey = ARR(pubc);
    claim.ca.p = NULL;
    claim.totp = 99999999;
    msg_file("09-claim", &otpca_desc_claim, &claim, out, sizeof out);

    otpca_enroll_response eresp = {.nonce = ARR(nonce),
                                   .record = ARR(id16),
                                   .time = 1700000002,
                                   .cert = ARR(cert),
                                   .netkey = ARR(envelope),
                                   .netkey_epoch = 7};
    *enroll_response_len = msg_file("04-enroll-response", &otpca_desc_enroll_response, &eresp,
                                    enroll_response, 1024);

    otpca_enroll_confirm conf = {.nonce = ARR(nonce), .record = ARR(id16), .time = 1700000003,
                                 .cert_hash = ARR(hash)};
    msg_file("05-enroll-confirm", &otpca_desc_enroll_confirm, &conf, out, sizeof out);
    otpca_confirm_ack ack = {.nonce = ARR(nonce), .record = ARR(id16)};
    msg_file("06-confirm-ack", &otpca_desc_confirm_ack, &ack, out, sizeof out);
    otpca_rejoin rejoin = {.nonce = ARR(nonce), .time = 1700000004, .serial = STR("node-000002"),
                           .cert_hash = ARR(hash), .totp = 1};
    msg_file("07-rejoin", &otpca_desc_rejoin, &rejoin, out, sizeof out);
    otpca_key_update ku = {.nonce = ARR(nonce), .time = 1700000005, .serial = STR("n.3"),
                           .cert_hash = ARR(hash), .pubkey = ARR(pubc), .totp = 654321};
    msg_file("08-key-update", &otpca_desc_key_update, &ku, out, sizeof out);
    otpca_error_msg err = {.present = OTPCA_MSG_BIT(3), .code = OTPCA_WIRE_BUSY,
                           .nonce = ARR(nonce), .retry_after = 30, .detail = STR("busy, \xc3\xa9t\xc3\xa9")};
    msg_file("15-error", &otpca_desc_error, &err, out, sizeof out);

    otpca_buf scope[2] = {STR("batch-A"), STR("batch:b_2")};
    otpca_window_open wo = {.present = OTPCA_MSG_BIT(7), .nonce = ARR(nonce), .time = 1700000010,
                            .manager = STR("mgr-1"), .operator_ = STR("alice"), .totp = 424242,
                            .duration = 3600, .max_enroll = 50, .scope = {scope, 2, {NULL, 0}}};
    msg_file("20-window-open", &otpca_desc_window_open, &wo, out, sizeof out);
    otpca_window_lease wl = {.present = OTPCA_MSG_BIT(9), .nonce = ARR(nonce), .window = ARR(id16),
                             .manager = STR("mgr-1"), .operator_ = STR("alice"),
                             .not_before = 1700000010, .not_after = 1700003610, .max_enroll = 50,
                             .scope = {scope, 1, {NULL, 0}}, .offline = true};
    msg_file("21-window-lease", &otpca_desc_window_lease, &wl, out, sizeof out);
    otpca_sync_request sr = {.present = OTPCA_MSG_BIT(3), .window = ARR(id16), .since = 12,
                             .max = 100, .cursor = STR("c1")};
    msg_file("22-sync-request", &otpca_desc_sync_request, &sr, out, sizeof out);

    otpca_device_entry dev[2] = {
        {.present = OTPCA_MSG_BIT(7) | OTPCA_MSG_BIT(8) | OTPCA_MSG_BIT(9) | OTPCA_MSG_BIT(10) |
                    OTPCA_MSG_BIT(11),
         .serial = STR("node-000001"), .seq = 41, .state = OTPCA_DEV_ENROLLED, .mac = ARR(mac6),
         .pubkey = ARR(pubc), .batch = STR("batch-A"), .seed = ARR(sealed_seed), .digits = 6,
         .period = 30, .algorithm = 1, .last_step = 56666666, .failures = 0,
         .cert_hash = ARR(hash)},
        {.serial = STR("node-000002"), .seq = 42, .state = OTPCA_DEV_APPROVED},
    };
    msg_file("e0-device-entry", &otpca_desc_device_entry, &dev[0], out, sizeof out);
    otpca_sync_batch sb = {.present = OTPCA_MSG_BIT(8), .window = ARR(id16),
                           .kind = OTPCA_SYNC_DELTA, .from = 12, .to = 42,
                           .entries = {dev, 2, {NULL, 0}}, .more = true, .cursor = STR("c2"),
                           .chunk = 1, .seedkey = BUF(fuzz_seedbox()->eph, OTPCA_P256_PUB_LEN)};
    msg_file("23-sync-batch", &otpca_desc_sync_batch, &sb, out, sizeof out);

    otpca_record rec[2] = {
        {.present = OTPCA_MSG_BIT(5) | OTPCA_MSG_BIT(6), .id = ARR(id16),
         .kind = OTPCA_REC_ISSUED, .serial = STR("node-000001"), .time = 1700000002,
         .cert = BUF(cert, 40), .step = 56666666, .reason = 0, .audit = ARR(hash),
         .pubkey = BUF(key->pub, sizeof key->pub)},
        {.id = ARR(id16b), .kind = OTPCA_REC_CONFIRMED, .serial = STR("node-000001"),
         .time = 1700000003},
    };
    msg_file("e1-record", &otpca_desc_record, &rec[0], out, sizeof out);
    otpca_record_upload ru = {.window = ARR(id16), .manager = STR("mgr-1"),
                              .records = {rec, 2, {NULL, 0}}};
    msg_file("24-record-upload", &otpca_desc_record_upload, &ru, out, sizeof out);
    otpca_buf ids[2] = {ARR(id16), ARR(id16b)};
    otpca_record_ack ra = {.window = ARR(id16), .ids = {ids, 2, {NULL, 0}},
                           .flagged = {ids + 1, 1, {NULL, 0}}};
    msg_file("25-record-ack", &otpca_desc_record_ack, &ra, out, sizeof out);

    otpca_notice no = {.present = OTPCA_MSG_BIT(5), .seq = 3, .kind = OTPCA_NOTICE_REVOKED,
                       .serial = STR("node-000002"), .time = 1700000100, .reason = 1};
    msg_file("26-notice", &otpca_desc_notice, &no, out, sizeof out);
    otpca_audit_entry ae = {.seq = 9, .prev = ARR(hash), .time = 1700000200,
                            .actor = STR("alice"), .event = 300, .subject = STR("node-000001"),
                            .detail = STR("approved"), .window = ARR(id16)};
    msg_file("27-audit-entry", &otpca_desc_audit_entry, &ae, out, sizeof out);
    otpca_window_close wc = {.window = ARR(id16), .time = 1700003610, .enrolled = 2,
                             .rejected = 1};
    msg_file("28-window-close", &otpca_desc_window_close, &wc, out, sizeof out);
    static const uint8_t crl[] = {0x30, 0x03, 0x02, 0x01, 0x01}; /* DER-shaped; the decoder only sees bytes */
    otpca_crl_publish cp = {.window = ARR(id16), .manager = STR("mgr-01"), .number = 4, .crl = ARR(crl)};
    msg_file("29-crl-publish", &otpca_desc_crl_publish, &cp, out, sizeof out);

    /* A TimeRequest with an unknown key (7: "x"), which decoders skip. */
    otpca_cbor_enc e;
    size_t len;
    otpca_cbor_enc_init(&e, out, sizeof out);
    otpca_cbor_put_map(&e, 3);
    otpca_cbor_put_uint(&e, 0);
    otpca_cbor_put_uint(&e, OTPCA_MSG_TIME_REQUEST);
    otpca_cbor_put_uint(&e, 1);
    otpca_cbor_put_bytes(&e, nonce, sizeof nonce);
    otpca_cbor_put_uint(&e, 7);
    otpca_cbor_put_text(&e, "x", 1);
    if (otpca_cbor_enc_finish(&e, &len))
        die("unknown key", OTPCA_ERR_INTERNAL);
    put_file("msg", "u1-time-request-unknown-key", out, len);
}

static void gen_cose(const uint8_t *treq, size_t treq_len, const uint8_t *eresp, size_t eresp_len)
{
    const otpca_p256_soft *key = fuzz_key();
    otpca_signer s = {otpca_p256_soft_sign, (void *)key, {0}};
    otpca_p256_kid(key->pub, s.kid);
    uint8_t out[1024];
    size_t len;
    otpca_err err;

    if ((err = otpca_cose_sign1_encode(&s, (otpca_buf){NULL, 0}, treq, treq_len, out, sizeof out,
                                       &len)))
        die("cose 1", err);
    put_file("cose", "01-time-request", out, len);
    put_file("cbor", "05-cose-time-request", out, len);
    if ((err = otpca_cose_sign1_encode(&s, ARR(cert), eresp, eresp_len, out, sizeof out, &len)))
        die("cose 2", err);
    put_file("cose", "02-enroll-response-x5chain", out, len);
    if ((err = otpca_cose_sign1_encode(&s, (otpca_buf){NULL, 0}, NULL, 0, out, sizeof out, &len)))
        die("cose 3", err);
    put_file("cose", "03-empty-payload", out, len);

    /* The unprotected header is not signed: rebuild message 1 with x5chain
     * as an array of one, and an unknown label (-1: 0), still valid. */
    if ((err = otpca_cose_sign1_encode(&s, (otpca_buf){NULL, 0}, treq, treq_len, out, sizeof out,
                                       &len)))
        die("cose 4", err);
    otpca_cose_sign1 m;
    if ((err = otpca_cose_sign1_decode(out, len, &m)))
        die("cose 4 decode", err);
    uint8_t out2[1024];
    otpca_cbor_enc e;
    otpca_cbor_enc_init(&e, out2, sizeof out2);
    otpca_cbor_put_tag(&e, OTPCA_COSE_TAG_SIGN1);
    otpca_cbor_put_array(&e, 4);
    otpca_cbor_put_bytes(&e, m.protected_hdr.p, m.protected_hdr.len);
    otpca_cbor_put_map(&e, 3);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_KID);
    otpca_cbor_put_bytes(&e, m.kid.p, m.kid.len);
    otpca_cbor_put_uint(&e, OTPCA_COSE_HDR_X5CHAIN);
    otpca_cbor_put_array(&e, 1);
    otpca_cbor_put_bytes(&e, cert, 48);
    otpca_cbor_put_int(&e, -1);
    otpca_cbor_put_uint(&e, 0);
    otpca_cbor_put_bytes(&e, m.payload.p, m.payload.len);
    otpca_cbor_put_bytes(&e, m.sig.p, m.sig.len);
    if ((err = otpca_cbor_enc_finish(&e, &len)))
        die("cose 4 encode", err);
    if ((err = otpca_cose_sign1_decode(out2, len, &m)) ||
        (err = otpca_cose_sign1_verify(&m, key->pub, sizeof key->pub)))
        die("cose 4 check", err);
    put_file("cose", "04-x5chain-array-unknown-label", out2, len);
}

static void gen_ecies(void)
{
    const otpca_p256_soft *key = fuzz_key();
    static const size_t sizes[] = {0, 16, 64};
    uint8_t pt[64], out[64 + OTPCA_ECIES_OVERHEAD];
    size_t len;
    otpca_err err;
    for (size_t i = 0; i < sizeof pt; i++)
        pt[i] = (uint8_t)(0x40 + i);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char name[32];
        if ((err = otpca_ecies_seal(key->pub, sizeof key->pub, OTPCA_ECIES_LABEL_NETKEY, NULL, 0, pt,
                                    sizes[i], out, sizeof out, &len)))
            die("ecies", err);
        snprintf(name, sizeof name, "0%zu-netkey-%zu", i + 1, sizes[i]);
        put_file("ecies", name, out, len);
    }
    /* Another label (the one seeds had before seed boxes): well-formed,
     * never opens with "netkey". */
    if ((err = otpca_ecies_seal(key->pub, sizeof key->pub, "seed", NULL, 0, pt, 20, out, sizeof out,
                                &len)))
        die("ecies seed", err);
    put_file("ecies", "04-seed-20", out, len);
    /* The envelope the messages carry (16 bytes, "netkey"). */
    if ((err = otpca_ecies_seal(key->pub, sizeof key->pub, OTPCA_ECIES_LABEL_NETKEY, NULL, 0, pt, 16,
                                envelope, sizeof envelope, &len)) ||
        len != sizeof envelope)
        die("ecies envelope", err);
}

/* Inputs of fuzz_seedbox: a serial-length byte, the serial and a seed
 * sealed in the fixed box; or 0x80 and a seedkey. Also the sealed seed the
 * SyncBatch and DeviceEntry seeds carry. */
static void gen_seedbox(void)
{
    const otpca_seedbox *box = fuzz_seedbox();
    static const char serial64[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._";
    static const struct {
        const char *name, *serial;
        size_t seed_len;
    } files[] = {{"01-node-000001-20", "node-000001", 20},
                 {"02-serial-1-seed-16", "a", 16},
                 {"03-serial-64-seed-64", serial64, 64}};
    uint8_t seed[64], out[1 + 64 + OTPCA_SEEDBOX_SEALED_MAX];
    size_t len;
    otpca_err err;
    for (size_t i = 0; i < sizeof seed; i++)
        seed[i] = (uint8_t)(0x31 + i % 10); /* "1234567890..." as in RFC 6238 */
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t n = strlen(files[i].serial);
        out[0] = (uint8_t)n;
        memcpy(out + 1, files[i].serial, n);
        if ((err = otpca_seedbox_seal(box, (const uint8_t *)files[i].serial, n, seed, files[i].seed_len,
                                      out + 1 + n, sizeof out - 1 - n, &len)))
            die("seedbox", err);
        put_file("seedbox", files[i].name, out, 1 + n + len);
    }
    /* The batch's seedkey, and one off the curve. */
    out[0] = 0x80;
    memcpy(out + 1, box->eph, OTPCA_P256_PUB_LEN);
    put_file("seedbox", "04-seedkey", out, 1 + OTPCA_P256_PUB_LEN);
    out[OTPCA_P256_PUB_LEN] ^= 0x01;
    put_file("seedbox", "05-seedkey-off-curve", out, 1 + OTPCA_P256_PUB_LEN);
    /* The seed the messages carry. */
    memcpy(seed20, seed, sizeof seed20);
    if ((err = otpca_seedbox_seal(box, (const uint8_t *)"node-000001", 11, seed20, sizeof seed20,
                                  sealed_seed, sizeof sealed_seed, &len)))
        die("seedbox sealed_seed", err);
}

static void gen_cbor(void)
{
    uint8_t out[256];
    size_t len;
    otpca_cbor_enc e;

    /* Every head width and major type. */
    otpca_cbor_enc_init(&e, out, sizeof out);
    otpca_cbor_put_array(&e, 12);
    otpca_cbor_put_uint(&e, 23);
    otpca_cbor_put_uint(&e, 24);
    otpca_cbor_put_uint(&e, 0x1234);
    otpca_cbor_put_uint(&e, 0x12345678);
    otpca_cbor_put_uint(&e, UINT64_MAX);
    otpca_cbor_put_int(&e, -1);
    otpca_cbor_put_int(&e, INT64_MIN);
    otpca_cbor_put_bytes(&e, (const uint8_t *)"\x00\x01\x02", 3);
    otpca_cbor_put_text(&e, "h\xc3\xa9llo \xf0\x9f\x94\x91", 11);
    otpca_cbor_put_bool(&e, true);
    otpca_cbor_put_bool(&e, false);
    otpca_cbor_put_null(&e);
    if (otpca_cbor_enc_finish(&e, &len))
        die("cbor 1", OTPCA_ERR_INTERNAL);
    put_file("cbor", "01-scalars", out, len);

    /* Nesting: a map with sorted keys of mixed types, tags, nested arrays. */
    otpca_cbor_enc_init(&e, out, sizeof out);
    otpca_cbor_put_map(&e, 4);
    otpca_cbor_put_uint(&e, 1);
    otpca_cbor_put_array(&e, 2);
    otpca_cbor_put_array(&e, 1);
    otpca_cbor_put_array(&e, 0);
    otpca_cbor_put_map(&e, 0);
    otpca_cbor_put_int(&e, -7);
    otpca_cbor_put_tag(&e, 18);
    otpca_cbor_put_bytes(&e, NULL, 0);
    otpca_cbor_put_text(&e, "a", 1);
    otpca_cbor_put_tag(&e, 1000);
    otpca_cbor_put_uint(&e, 5);
    otpca_cbor_put_text(&e, "bb", 2);
    otpca_cbor_put_map(&e, 1);
    otpca_cbor_put_bytes(&e, (const uint8_t *)"k", 1);
    otpca_cbor_put_text(&e, "", 0);
    if (otpca_cbor_enc_finish(&e, &len))
        die("cbor 2", OTPCA_ERR_INTERNAL);
    put_file("cbor", "02-nested", out, len);

    /* Eight levels deep: the limit. */
    otpca_cbor_enc_init(&e, out, sizeof out);
    for (int i = 0; i < OTPCA_CBOR_MAX_DEPTH; i++)
        otpca_cbor_put_array(&e, 1);
    otpca_cbor_put_uint(&e, 0);
    if (otpca_cbor_enc_finish(&e, &len))
        die("cbor 3", OTPCA_ERR_INTERNAL);
    put_file("cbor", "03-depth-8", out, len);

    /* Not deterministic (a one-byte value in a two-byte head), refused. */
    static const uint8_t noncanon[] = {0x82, 0x18, 0x05, 0xf9, 0x3c, 0x00};
    put_file("cbor", "04-noncanonical-float", noncanon, sizeof noncanon);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        perror(root);
        return 1;
    }
    const otpca_p256_soft *key = fuzz_key();
    for (size_t i = 0; i < sizeof nonce; i++)
        nonce[i] = (uint8_t)(0x10 + i);
    for (size_t i = 0; i < sizeof id16; i++) {
        id16[i] = (uint8_t)(0xa0 + i);
        id16b[i] = (uint8_t)(0xb0 + i);
    }
    for (size_t i = 0; i < sizeof hash; i++)
        hash[i] = (uint8_t)(0xc0 + i);
    for (size_t i = 0; i < sizeof mac8; i++)
        mac8[i] = mac6[i % 6] = (uint8_t)(0x02 + i);
    for (size_t i = 0; i < sizeof cert; i++)
        cert[i] = (uint8_t)(0x30 ^ i);
    otpca_p256_kid(key->pub, kid);
    otpca_err err = otpca_p256_pub_compress(key->pub, pubc);
    if (err)
        die("compress", err);

    uint8_t treq[256], eresp[1024];
    size_t treq_len, eresp_len;
    gen_ecies();
    gen_seedbox();
    gen_cbor();
    gen_msg(treq, &treq_len, eresp, &eresp_len);
    gen_cose(treq, treq_len, eresp, eresp_len);
    return 0;
}
