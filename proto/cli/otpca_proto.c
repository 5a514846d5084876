/*
 * otpca-proto: look at protocol messages. `decode` prints any otpca message
 * (plain map or COSE_Sign1, nested signatures included) in CBOR diagnostic
 * notation, names it and checks it against its descriptor; `sizes` builds a
 * realistic instance of every message and prints its encoded size, the
 * table PROTOCOL.md quotes.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "otpca/common/hex.h"
#include "otpca/proto/cbor.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/ecies.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/seedbox.h"

#define EXIT_USAGE 2
#define INPUT_MAX OTPCA_MSG_CLOUD_MAX

static void usage(FILE *f)
{
    fputs("usage: otpca-proto VERB [ARGS]\n\n"
          "verbs:\n"
          "  decode [--hex] [FILE]   Print a message (binary or hex; stdin if no FILE) in CBOR\n"
          "                          diagnostic notation, check it, and name its type.\n"
          "  sizes [--markdown]      Encoded size of a realistic instance of every message.\n",
          f);
}

/* ---- decode ---------------------------------------------------------- */

static void print_str(const otpca_cbor_item *it)
{
    if (it->type == OTPCA_CBOR_BYTES) {
        fputs("h'", stdout);
        for (size_t i = 0; i < it->str.len; i++)
            printf("%02x", it->str.p[i]);
        putchar('\'');
        return;
    }
    putchar('"');
    for (size_t i = 0; i < it->str.len; i++) {
        uint8_t c = it->str.p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c); /* UTF-8 was validated by the decoder */
    }
    putchar('"');
}

/* Diagnostic notation of one item (RFC 8949 section 8). */
static otpca_err diag(otpca_cbor_dec *d, int indent)
{
    otpca_cbor_item it;
    otpca_err ret = otpca_cbor_next(d, &it);
    if (ret)
        return ret;
    switch (it.type) {
    case OTPCA_CBOR_UINT:
        printf("%llu", (unsigned long long)it.u);
        return OTPCA_ERR_OK;
    case OTPCA_CBOR_NINT:
        if (it.u == UINT64_MAX)
            printf("-18446744073709551616");
        else
            printf("-%llu", (unsigned long long)it.u + 1);
        return OTPCA_ERR_OK;
    case OTPCA_CBOR_BYTES:
    case OTPCA_CBOR_TEXT:
        print_str(&it);
        return OTPCA_ERR_OK;
    case OTPCA_CBOR_BOOL:
        fputs(it.u ? "true" : "false", stdout);
        return OTPCA_ERR_OK;
    case OTPCA_CBOR_NULL:
        fputs("null", stdout);
        return OTPCA_ERR_OK;
    case OTPCA_CBOR_TAG:
        printf("%llu(", (unsigned long long)it.u);
        if (indent > 2 * OTPCA_CBOR_MAX_DEPTH)
            return OTPCA_ERR_CBOR_LIMIT;
        ret = diag(d, indent);
        putchar(')');
        return ret;
    case OTPCA_CBOR_ARRAY:
    case OTPCA_CBOR_MAP: {
        int map = it.type == OTPCA_CBOR_MAP;
        if (indent > 2 * OTPCA_CBOR_MAX_DEPTH)
            return OTPCA_ERR_CBOR_LIMIT;
        if (it.u > d->len - d->pos)
            return OTPCA_ERR_CBOR_TRUNCATED;
        putchar(map ? '{' : '[');
        for (uint64_t i = 0; i < it.u; i++) {
            printf("%s\n%*s", i ? "," : "", indent + 2, "");
            if ((ret = diag(d, indent + 2)))
                return ret;
            if (map) {
                fputs(": ", stdout);
                if ((ret = diag(d, indent + 2)))
                    return ret;
            }
        }
        if (it.u)
            printf("\n%*s", indent, "");
        putchar(map ? '}' : ']');
        return OTPCA_ERR_OK;
    }
    }
    return OTPCA_ERR_INTERNAL;
}

static int decode_message(const uint8_t *in, size_t len, int level);

/* A SyncBatch's seed box (PROTOCOL.md section 5.1): the decoder has made
 * sure entries with a sealed seed come with a seedkey; whether the seedkey
 * is a point on P-256 is the receiver's check, done here too. */
static int check_sync_batch(const otpca_sync_batch *b, int level)
{
    otpca_list_iter it;
    otpca_device_entry e;
    size_t n = 0, sealed = 0;
    otpca_list_iter_init(&it, &b->entries);
    while (otpca_list_next(&it, &otpca_desc_device_entry, &e) == OTPCA_ERR_OK) {
        n++;
        sealed += e.seed.p != NULL;
    }
    if (!b->seedkey.p) {
        printf("%*sseed box: none (no seedkey, key 9); %zu entries, none with a sealed seed\n", level * 2, "",
               n);
        return EXIT_SUCCESS;
    }
    uint8_t pub[OTPCA_P256_PUB_LEN];
    if (otpca_p256_pub_normalize(b->seedkey.p, b->seedkey.len, pub) != OTPCA_ERR_OK) {
        fputs("otpca-proto: invalid SyncBatch: the seedkey (key 9) is not a point on P-256\n", stderr);
        return EXIT_FAILURE;
    }
    uint8_t kid[OTPCA_KID_LEN];
    otpca_p256_kid(pub, kid);
    printf("%*sseed box: seedkey (key 9) a P-256 point, key id ", level * 2, "");
    for (size_t i = 0; i < sizeof kid; i++)
        printf("%02x", kid[i]);
    printf("; %zu of %zu entries carry a sealed seed (%d..%d bytes each)\n", sealed, n,
           OTPCA_SEEDBOX_SEALED_MIN, OTPCA_SEEDBOX_SEALED_MAX);
    return EXIT_SUCCESS;
}

/* A COSE_Sign1: its headers, then its payload as a message. */
static int decode_cose(const uint8_t *in, size_t len, int level)
{
    otpca_cose_sign1 m;
    otpca_err ret = otpca_cose_sign1_decode(in, len, &m);
    if (ret) {
        fprintf(stderr, "otpca-proto: not a valid otpca COSE_Sign1: %s (%s)\n", otpca_strerror(ret),
                otpca_errname(ret));
        return EXIT_FAILURE;
    }
    printf("%*sCOSE_Sign1 ES256, kid ", level * 2, "");
    for (size_t i = 0; i < m.kid.len; i++)
        printf("%02x", m.kid.p[i]);
    if (m.x5chain.p)
        printf(", x5chain: one certificate of %zu bytes", m.x5chain.len);
    printf(", payload %zu bytes, %zu bytes in all\n", m.payload.len, len);
    printf("%*s(signature not checked: no key given)\n", level * 2, "");
    return decode_message(m.payload.p, m.payload.len, level + 1);
}

static int decode_message(const uint8_t *in, size_t len, int level)
{
    if (len && in[0] == 0xd2) /* tag 18 */
        return decode_cose(in, len, level);
    otpca_err ret = otpca_cbor_validate(in, len);
    if (ret) {
        fprintf(stderr, "otpca-proto: not deterministic CBOR: %s (%s)\n", otpca_strerror(ret),
                otpca_errname(ret));
        return EXIT_FAILURE;
    }
    unsigned type = 0;
    const otpca_msg_desc *desc = NULL;
    if (otpca_msg_peek_type(in, len, &type) == OTPCA_ERR_OK)
        desc = otpca_msg_desc_of(type);
    printf("%*s%s (type %u), %zu bytes\n%*s", level * 2, "", desc ? otpca_msg_name(desc) : "unknown message",
           type, len, level * 2, "");
    otpca_cbor_dec d;
    otpca_cbor_dec_init(&d, in, len);
    if ((ret = diag(&d, level * 2)))
        return EXIT_FAILURE;
    putchar('\n');
    if (!desc) {
        fprintf(stderr, "otpca-proto: unknown message type %u\n", type);
        return EXIT_FAILURE;
    }
    /* Large enough for any message struct. */
    union {
        otpca_enroll_request a;
        otpca_enroll_response b;
        otpca_window_lease c;
        otpca_sync_batch e;
        otpca_audit_entry f;
        otpca_window_open g;
    } m;
    if ((ret = otpca_msg_decode(desc, in, len, &m))) {
        fprintf(stderr, "otpca-proto: invalid %s: %s (%s)\n", otpca_msg_name(desc), otpca_strerror(ret),
                otpca_errname(ret));
        return EXIT_FAILURE;
    }
    if (type == OTPCA_MSG_SYNC_BATCH)
        return check_sync_batch(&m.e, level);
    return EXIT_SUCCESS;
}

static int cmd_decode(int argc, char **argv)
{
    int hex = 0;
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--hex"))
            hex = 1;
        else if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            return EXIT_SUCCESS;
        } else if (!path)
            path = argv[i];
        else {
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    FILE *f = path && strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        perror(path);
        return EXIT_FAILURE;
    }
    uint8_t *buf = malloc(2 * INPUT_MAX + 1);
    if (!buf) {
        if (f != stdin)
            fclose(f);
        return EXIT_FAILURE;
    }
    size_t n = fread(buf, 1, 2 * INPUT_MAX + 1, f);
    if (f != stdin)
        fclose(f);
    int rc = EXIT_FAILURE;
    if (hex) {
        size_t out = 0;
        int hi = -1;
        for (size_t i = 0; i < n; i++) {
            if (isspace(buf[i]))
                continue;
            int v = otpca_hex_digit(buf[i]);
            if (v < 0) {
                fprintf(stderr, "otpca-proto: not hex at offset %zu\n", i);
                goto out;
            }
            if (hi < 0)
                hi = v;
            else {
                buf[out++] = (uint8_t)(hi << 4 | v);
                hi = -1;
            }
        }
        if (hi >= 0) {
            fputs("otpca-proto: odd number of hex digits\n", stderr);
            goto out;
        }
        n = out;
    }
    if (n > INPUT_MAX) {
        fprintf(stderr, "otpca-proto: input larger than the %d-byte message limit\n", INPUT_MAX);
        goto out;
    }
    rc = decode_message(buf, n, 0);
out:
    free(buf);
    return rc;
}

/* ---- sizes ----------------------------------------------------------- */

/* A certificate shaped like the node certificates a manager issues (CN and
 * URI SAN from the serial, SKI/AKI, key usage), signed by a software CA, to
 * measure the responses that carry one. */
static int make_cert(ecc_key *ca, ecc_key *subject, const char *cn, int is_ca, const uint8_t *ca_der,
                     size_t ca_der_len, uint8_t *der, size_t *der_len)
{
    Cert c;
    WC_RNG rng;
    int rc = -1;
    if (wc_InitCert(&c) || wc_InitRng(&rng))
        return -1;
    c.sigType = CTC_SHA256wECDSA;
    c.daysValid = is_ca ? 3650 : 365;
    c.isCA = is_ca;
    strncpy(c.subject.commonName, cn, CTC_NAME_SIZE - 1);
    strncpy(c.subject.org, "otpca", CTC_NAME_SIZE - 1);
    if (!is_ca) {
        /* SEQUENCE { [6] IA5String uri } */
        size_t ulen = strlen(cn);
        c.altNames[0] = 0x30;
        c.altNames[1] = (uint8_t)(ulen + 2);
        c.altNames[2] = 0x86;
        c.altNames[3] = (uint8_t)ulen;
        memcpy(c.altNames + 4, cn, ulen);
        c.altNamesSz = (int)ulen + 4;
        wc_SetKeyUsage(&c, "digitalSignature,keyAgreement");
        wc_SetExtKeyUsage(&c, "clientAuth,serverAuth");
        if (wc_SetIssuerBuffer(&c, ca_der, (int)ca_der_len) || wc_SetAuthKeyIdFromPublicKey(&c, NULL, ca))
            goto out;
    } else {
        wc_SetKeyUsage(&c, "keyCertSign,cRLSign");
    }
    if (wc_SetSubjectKeyIdFromPublicKey(&c, NULL, subject))
        goto out;
    int n = wc_MakeCert_ex(&c, der, (word32)*der_len, ECC_TYPE, subject, &rng);
    if (n <= 0)
        goto out;
    n = wc_SignCert_ex(c.bodySz, c.sigType, der, (word32)*der_len, ECC_TYPE, ca, &rng);
    if (n <= 0)
        goto out;
    *der_len = (size_t)n;
    rc = 0;
out:
    wc_FreeRng(&rng);
    return rc;
}

static int load_soft(const otpca_p256_soft *s, ecc_key *k)
{
    return wc_ecc_init(k) ||
           wc_ecc_import_private_key_ex(s->priv, 32, s->pub, 65, k, ECC_SECP256R1);
}

struct size_row {
    const char *name, *note;
    size_t len, max;
};

static int sizes(int markdown)
{
    otpca_p256_soft dev, mgr, cloud;
    ecc_key kdev, kmgr;
    uint8_t nonce[16], id16[16], hash[32], mac[6] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x01};
    uint8_t dev_c[33], mgr_der[1024], node_der[1024], env[128];
    size_t mgr_len = sizeof mgr_der, node_len = sizeof node_der, env_len;
    uint8_t out[16384];
    struct size_row rows[32];
    size_t nrows = 0;
    uint64_t now = (uint64_t)time(NULL);
    const char *serial = "node-000001";
    otpca_buf s_serial = {(const uint8_t *)serial, strlen(serial)};

    if (otpca_p256_soft_generate(&dev) || otpca_p256_soft_generate(&mgr) ||
        otpca_p256_soft_generate(&cloud) || otpca_p256_pub_compress(dev.pub, dev_c) ||
        otpca_random(nonce, sizeof nonce) || otpca_random(id16, sizeof id16) || otpca_random(hash, sizeof hash))
        return EXIT_FAILURE;
    if (load_soft(&dev, &kdev) || load_soft(&mgr, &kmgr))
        return EXIT_FAILURE;
    if (make_cert(&kmgr, &kmgr, "otpca manager mgr-01", 1, NULL, 0, mgr_der, &mgr_len) ||
        make_cert(&kmgr, &kdev, "urn:dev:os:otpca-node-000001", 0, mgr_der, mgr_len, node_der, &node_len)) {
        fputs("otpca-proto: could not build sample certificates\n", stderr);
        return EXIT_FAILURE;
    }
    uint8_t netkey[16] = {0}, seed[20] = {0}, aad[27];
    memcpy(aad, serial, 11);
    memcpy(aad + 11, nonce, 16);
    otpca_seedbox box; /* the SyncBatch's seeds, sealed to the manager */
    uint8_t seedkey[OTPCA_P256_PUB_LEN];
    if (otpca_ecies_seal(dev.pub, 65, OTPCA_ECIES_LABEL_NETKEY, aad, sizeof aad, netkey, sizeof netkey, env,
                         sizeof env, &env_len) ||
        otpca_seedbox_sender(&box, mgr.pub, sizeof mgr.pub))
        return EXIT_FAILURE;
    memcpy(seedkey, box.eph, sizeof seedkey);

    otpca_signer sdev = {otpca_p256_soft_sign, &dev, {0}}, smgr = {otpca_p256_soft_sign, &mgr, {0}},
                 scloud = {otpca_p256_soft_sign, &cloud, {0}};
    otpca_p256_kid(dev.pub, sdev.kid);
    otpca_p256_kid(mgr.pub, smgr.kid);
    otpca_p256_kid(cloud.pub, scloud.kid);
    otpca_buf none = {NULL, 0}, chain = {mgr_der, mgr_len};
    otpca_buf b_nonce = {nonce, 16}, b_id = {id16, 16}, b_hash = {hash, 32};

#define ROW(nm, nt, expr, d)                                                                          \
    do {                                                                                              \
        otpca_err e_ = (expr);                                                                        \
        if (e_) {                                                                                     \
            fprintf(stderr, "otpca-proto: %s: %s\n", nm, otpca_strerror(e_));                         \
            return EXIT_FAILURE;                                                                      \
        }                                                                                             \
        rows[nrows++] = (struct size_row){nm, nt, len_, otpca_msg_max_size(d)};                      \
    } while (0)
    size_t len_;

    otpca_time_request tq = {.nonce = b_nonce};
    ROW("TimeRequest", "plain", otpca_msg_encode(&otpca_desc_time_request, &tq, out, sizeof out, &len_),
        &otpca_desc_time_request);
    otpca_time_response tr = {.nonce = b_nonce, .time = now};
    ROW("TimeResponse", "manager-signed, x5chain (manager certificate)",
        otpca_msg_sign(&otpca_desc_time_response, &tr, &smgr, chain, out, sizeof out, &len_),
        &otpca_desc_time_response);
    otpca_enroll_request er = {.nonce = b_nonce, .time = now, .serial = s_serial,
                               .mac = {mac, 6}, .pubkey = {dev_c, 33}, .totp = 123456,
                               .fw = {(const uint8_t *)"1.0.0", 5}, .ca = {smgr.kid, 8}};
    ROW("EnrollRequest", "device-signed, compressed key, `ca` set",
        otpca_msg_sign(&otpca_desc_enroll_request, &er, &sdev, none, out, sizeof out, &len_),
        &otpca_desc_enroll_request);
    otpca_enroll_response ep = {.nonce = b_nonce, .record = b_id, .time = now,
                                .cert = {node_der, node_len}, .netkey = {env, env_len}, .netkey_epoch = 1};
    ROW("EnrollResponse", "manager-signed, node certificate, 16-byte network key",
        otpca_msg_sign(&otpca_desc_enroll_response, &ep, &smgr, none, out, sizeof out, &len_),
        &otpca_desc_enroll_response);
    ROW("EnrollResponse", "as above plus x5chain (node did not hold the manager certificate)",
        otpca_msg_sign(&otpca_desc_enroll_response, &ep, &smgr, chain, out, sizeof out, &len_),
        &otpca_desc_enroll_response);
    otpca_enroll_confirm ec = {.nonce = b_nonce, .record = b_id, .time = now, .cert_hash = b_hash};
    ROW("EnrollConfirm", "device-signed",
        otpca_msg_sign(&otpca_desc_enroll_confirm, &ec, &sdev, none, out, sizeof out, &len_),
        &otpca_desc_enroll_confirm);
    otpca_confirm_ack ca = {.nonce = b_nonce, .record = b_id};
    ROW("ConfirmAck", "manager-signed", otpca_msg_sign(&otpca_desc_confirm_ack, &ca, &smgr, none, out, sizeof out, &len_),
        &otpca_desc_confirm_ack);
    otpca_rejoin rj = {.nonce = b_nonce, .time = now, .serial = s_serial, .cert_hash = b_hash, .totp = 123456};
    ROW("Rejoin", "device-signed", otpca_msg_sign(&otpca_desc_rejoin, &rj, &sdev, none, out, sizeof out, &len_),
        &otpca_desc_rejoin);
    otpca_enroll_response rr = ep;
    rr.cert = none;
    ROW("EnrollResponse", "answer to Rejoin (no certificate)",
        otpca_msg_sign(&otpca_desc_enroll_response, &rr, &smgr, none, out, sizeof out, &len_),
        &otpca_desc_enroll_response);
    otpca_key_update ku = {.nonce = b_nonce, .time = now, .serial = s_serial, .cert_hash = b_hash,
                           .pubkey = {dev_c, 33}, .totp = 123456};
    {
        uint8_t inner[512];
        size_t ilen;
        otpca_err e = otpca_msg_sign(&otpca_desc_key_update, &ku, &sdev, none, inner, sizeof inner, &ilen);
        ROW("KeyUpdate", "signed by the new key, then by the old key",
            e ? e : otpca_cose_sign1_encode(&sdev, none, inner, ilen, out, sizeof out, &len_),
            &otpca_desc_key_update);
        er.mac = (otpca_buf){mac, 6};
        e = otpca_msg_sign(&otpca_desc_claim, &er, &sdev, none, inner, sizeof inner, &ilen);
        ROW("Claim", "signed by the new key, then by the product key",
            e ? e : otpca_cose_sign1_encode(&sdev, none, inner, ilen, out, sizeof out, &len_),
            &otpca_desc_claim);
    }
    otpca_error_msg em = {.present = OTPCA_MSG_BIT(3), .code = OTPCA_WIRE_AUTH_FAILED, .nonce = b_nonce,
                          .retry_after = 30};
    ROW("Error", "plain, to a node", otpca_msg_encode(&otpca_desc_error, &em, out, sizeof out, &len_),
        &otpca_desc_error);

    otpca_buf scope_ids[1] = {{(const uint8_t *)"batch-2026-11", 13}};
    otpca_window_open wo = {.present = OTPCA_MSG_BIT(7), .nonce = b_nonce, .time = now,
                            .manager = {(const uint8_t *)"mgr-01", 6}, .operator_ = {(const uint8_t *)"op-01", 5},
                            .totp = 654321, .duration = 3600, .max_enroll = 10000,
                            .scope = {scope_ids, 1, {NULL, 0}}};
    ROW("WindowOpen", "manager-signed", otpca_msg_sign(&otpca_desc_window_open, &wo, &smgr, none, out, sizeof out, &len_),
        &otpca_desc_window_open);
    otpca_window_lease wl = {.nonce = b_nonce, .window = b_id, .manager = wo.manager, .operator_ = wo.operator_,
                             .not_before = now, .not_after = now + 3600, .max_enroll = 10000,
                             .scope = {scope_ids, 1, {NULL, 0}}};
    ROW("WindowLease", "cloud-signed", otpca_msg_sign(&otpca_desc_window_lease, &wl, &scloud, none, out, sizeof out, &len_),
        &otpca_desc_window_lease);
    otpca_sync_request sq = {.present = OTPCA_MSG_BIT(3), .window = b_id, .since = 0, .max = 1024};
    ROW("SyncRequest", "plain (CURVE-authenticated)",
        otpca_msg_encode(&otpca_desc_sync_request, &sq, out, sizeof out, &len_), &otpca_desc_sync_request);

    static otpca_device_entry ents[1024];
    static char serials[1024][16];
    static uint8_t sealed[1024][OTPCA_SEEDBOX_SEALED_LEN(sizeof seed)];
    for (size_t i = 0; i < 1024; i++) {
        size_t sealed_len;
        snprintf(serials[i], sizeof serials[i], "node-%06zu", i + 1);
        if (otpca_seedbox_seal(&box, (const uint8_t *)serials[i], strlen(serials[i]), seed, sizeof seed,
                               sealed[i], sizeof sealed[i], &sealed_len))
            return EXIT_FAILURE;
        ents[i] = (otpca_device_entry){
            .present = OTPCA_MSG_BIT(7) | OTPCA_MSG_BIT(8) | OTPCA_MSG_BIT(9) | OTPCA_MSG_BIT(10) |
                       OTPCA_MSG_BIT(11),
            .serial = {(const uint8_t *)serials[i], strlen(serials[i])}, .seq = 1000 + i,
            .state = OTPCA_DEV_APPROVED, .mac = {mac, 6}, .pubkey = {dev.pub, 65},
            .seed = {sealed[i], sealed_len}, .digits = 6, .period = 30, .algorithm = 1,
            .last_step = now / 30, .failures = 0};
    }
    otpca_seedbox_wipe(&box);
    otpca_sync_batch sb = {.window = b_id, .kind = OTPCA_SYNC_DELTA, .from = 999, .to = 1000,
                           .entries = {ents, 1, {NULL, 0}}, .more = false,
                           .seedkey = {seedkey, sizeof seedkey}};
    ROW("SyncBatch", "cloud-signed, 1 device",
        otpca_msg_sign(&otpca_desc_sync_batch, &sb, &scloud, none, out, sizeof out, &len_), &otpca_desc_sync_batch);
    size_t one = len_;
    {
        static uint8_t big[OTPCA_MSG_CLOUD_MAX];
        sb.entries.count = 1024;
        sb.to = 2023;
        ROW("SyncBatch", "cloud-signed, 1,024 devices",
            otpca_msg_sign(&otpca_desc_sync_batch, &sb, &scloud, none, big, sizeof big, &len_),
            &otpca_desc_sync_batch);
        rows[nrows - 1].max = (len_ - one) / 1023; /* bytes per extra device */
        rows[nrows - 1].note = "cloud-signed, 1,024 devices (max column: bytes per device)";
    }
    otpca_record rec = {.present = OTPCA_MSG_BIT(5), .id = b_id, .kind = OTPCA_REC_ISSUED, .serial = s_serial,
                        .time = now, .cert = {node_der, node_len}, .step = now / 30, .audit = b_hash};
    otpca_record_upload ru = {.window = b_id, .manager = wo.manager, .records = {&rec, 1, {NULL, 0}}};
    ROW("RecordUpload", "manager-signed, 1 issued record with its certificate",
        otpca_msg_sign(&otpca_desc_record_upload, &ru, &smgr, none, out, sizeof out, &len_),
        &otpca_desc_record_upload);
    otpca_buf ids[1] = {b_id};
    otpca_record_ack ra = {.window = b_id, .ids = {ids, 1, {NULL, 0}}};
    ROW("RecordAck", "cloud-signed, 1 id", otpca_msg_sign(&otpca_desc_record_ack, &ra, &scloud, none, out, sizeof out, &len_),
        &otpca_desc_record_ack);
    otpca_notice no = {.present = OTPCA_MSG_BIT(5), .seq = 4242, .kind = OTPCA_NOTICE_REVOKED, .serial = s_serial,
                       .time = now, .reason = 1};
    ROW("Notice", "cloud-signed", otpca_msg_sign(&otpca_desc_notice, &no, &scloud, none, out, sizeof out, &len_),
        &otpca_desc_notice);
    otpca_audit_entry ae = {.seq = 17, .prev = b_hash, .time = now, .actor = wo.manager, .event = 3,
                            .subject = s_serial, .window = b_id};
    ROW("AuditEntry", "plain, hash-chained", otpca_msg_encode(&otpca_desc_audit_entry, &ae, out, sizeof out, &len_),
        &otpca_desc_audit_entry);
    otpca_window_close wc = {.window = b_id, .time = now, .enrolled = 1000, .rejected = 3};
    ROW("WindowClose", "manager-signed", otpca_msg_sign(&otpca_desc_window_close, &wc, &smgr, none, out, sizeof out, &len_),
        &otpca_desc_window_close);
    /* The CRL's bytes stand in for a real one of the same size: a
     * manager's v2 CRL is 204 bytes empty and about 51 more per entry with
     * a reason (measured on the CRLs of the README's tour: 306 bytes with
     * two entries), so 255 with one. */
    static uint8_t crl_bytes[255];
    memset(crl_bytes, 0x30, sizeof crl_bytes);
    otpca_crl_publish cp = {.window = b_id, .manager = wo.manager, .number = 12,
                            .crl = {crl_bytes, sizeof crl_bytes}};
    ROW("CrlPublish", "manager-signed, a CRL of one entry (255 bytes)",
        otpca_msg_sign(&otpca_desc_crl_publish, &cp, &smgr, none, out, sizeof out, &len_), &otpca_desc_crl_publish);

    if (markdown) {
        printf("| message | instance | bytes | decoder limit (payload) |\n|---|---|---:|---:|\n");
        for (size_t i = 0; i < nrows; i++)
            printf("| %s | %s | %zu | %zu |\n", rows[i].name, rows[i].note, rows[i].len, rows[i].max);
        printf("\nNode certificate in these messages: %zu bytes; manager certificate: %zu bytes.\n", node_len,
               mgr_len);
    } else {
        for (size_t i = 0; i < nrows; i++)
            printf("%-15s %7zu  %s\n", rows[i].name, rows[i].len, rows[i].note);
        printf("(node certificate %zu bytes, manager certificate %zu bytes)\n", node_len, mgr_len);
    }
    wc_ecc_free(&kdev);
    wc_ecc_free(&kmgr);
    otpca_p256_soft_wipe(&dev);
    otpca_p256_soft_wipe(&mgr);
    otpca_p256_soft_wipe(&cloud);
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_SUCCESS;
    }
    if (!strcmp(argv[1], "decode"))
        return cmd_decode(argc - 2, argv + 2);
    if (!strcmp(argv[1], "sizes")) {
        int md = argc > 2 && !strcmp(argv[2], "--markdown");
        if (argc > 3 || (argc == 3 && !md)) {
            usage(stderr);
            return EXIT_USAGE;
        }
        return sizes(md);
    }
    fprintf(stderr, "otpca-proto: unknown verb '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
