/*
 * otpca-cloud serve on loopback with the SoftHSM rig (cloudtest.h): a
 * manager opens a window with its operator's TOTP, syncs the trust list
 * (seeds open with the manager token's key to the manifest's seeds),
 * uploads records, sees a revocation as a signed notice and in the next
 * delta, and closes the window. Then the ways it can go wrong: unknown
 * and revoked managers, bad WindowOpens, malformed input, other managers'
 * leases, tampered batches, deltas against snapshots, repeated and
 * conflicting records, double enrollment, kill -9 during ingest and
 * SIGTERM during a sync. On PostgreSQL also two instances on one store,
 * one of them stopped or killed while a manager given both syncs and
 * uploads.
 */
#include "cloudtest.h"

#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "otpca/proto/seedbox.h"
#include "otpca/token/crl.h"

TestSuite(cloud, .init = ct_setup, .fini = ct_teardown, .timeout = 120);

/* A manager's view of the trust list, built from verified batches. */
#define VIEW_MAX 64
struct view {
    size_t n;
    struct {
        char serial[65];
        uint64_t seq, state, last_step;
        int has_cert;
        uint8_t seed[64];
        size_t seed_len;
    } dev[VIEW_MAX];
    unsigned batches, snapshots;
    uint64_t last_chunk;
    int mgr2; /* seeds sealed to mgr-02 (the rig's root key) */
};

/* The root token's ECDH (mgr-02's seed boxes). */
static otpca_err ct_mgr2_ecdh(void *ctx, const uint8_t peer[65], uint8_t z[32])
{
    (void)ctx;
    return otpca_token_ecdh(ct.root, ct.root_key, peer, 65, z);
}

static otpca_err apply_batch(void *arg, const otpca_sync_batch *b, const uint8_t *raw, size_t len)
{
    struct view *v = arg;
    otpca_list_iter it;
    otpca_device_entry e;
    otpca_seedbox box;
    int have_box = 0;
    (void)raw, (void)len;
    v->batches++;
    if (b->kind == OTPCA_SYNC_SNAPSHOT) {
        v->snapshots++;
        v->last_chunk = b->chunk;
    }
    if (b->seedkey.p) {
        cr_assert_eq(otpca_seedbox_receiver(&box, b->seedkey.p, v->mgr2 ? ct.root_pub : ct.mgr_pub,
                                            v->mgr2 ? ct_mgr2_ecdh : ct_mgr_ecdh, NULL),
                     OTPCA_ERR_OK);
        have_box = 1;
    }
    otpca_list_iter_init(&it, &b->entries);
    while (otpca_list_next(&it, &otpca_desc_device_entry, &e) == OTPCA_ERR_OK) {
        size_t i;
        for (i = 0; i < v->n; i++)
            if (strlen(v->dev[i].serial) == e.serial.len && !memcmp(v->dev[i].serial, e.serial.p, e.serial.len))
                break;
        cr_assert_lt(i, VIEW_MAX);
        if (i == v->n) {
            v->n++;
            memcpy(v->dev[i].serial, e.serial.p, e.serial.len);
            v->dev[i].serial[e.serial.len] = '\0';
        }
        v->dev[i].seq = e.seq;
        v->dev[i].state = e.state;
        v->dev[i].last_step = e.last_step;
        v->dev[i].has_cert = e.cert_hash.p != NULL;
        v->dev[i].seed_len = 0;
        if (e.seed.p) {
            cr_assert(have_box, "an entry with a seed needs the batch's seed key");
            cr_assert_eq(otpca_seedbox_open(&box, e.serial.p, e.serial.len, e.seed.p, e.seed.len, v->dev[i].seed,
                                            sizeof v->dev[i].seed, &v->dev[i].seed_len),
                         OTPCA_ERR_OK, "seed of %s opens with the manager token", v->dev[i].serial);
        }
    }
    if (have_box)
        otpca_seedbox_wipe(&box);
    return OTPCA_ERR_OK;
}

static int view_find(const struct view *v, const char *serial)
{
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->dev[i].serial, serial))
            return (int)i;
    return -1;
}

/* The manifest's seed of a serial, from the rig's manifest.csv. */
static size_t manifest_seed(const char *serial, uint8_t *seed, size_t cap)
{
    char path[512], line[1024];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/manifest.csv", testrig_dir());
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f)) {
        char *fields[8], *save = NULL;
        size_t n = 0;
        for (char *t = strtok_r(line, ",\n", &save); t && n < 8; t = strtok_r(NULL, ",\n", &save))
            fields[n++] = t;
        if (n >= 4 && !strcmp(fields[0], serial)) {
            cr_assert_eq(otpca_hex_decode(fields[3], strlen(fields[3]), seed, cap, &len), OTPCA_ERR_OK);
            break;
        }
    }
    fclose(f);
    return len;
}

Test(cloud, window_sync_records_notice_and_close)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    ct_open(c, &l);
    cr_expect_eq(l.offline, 0);
    cr_expect_str_eq(l.operator_, "otpca-op-01");
    cr_expect_eq(l.not_after - l.not_before, 3600);

    /* Snapshot (from 0) in chunks of 3: every rig node, seeds as made. */
    struct view v;
    memset(&v, 0, sizeof v);
    uint64_t to = 0;
    cr_assert_eq(otpca_cloud_sync(c, l.window, 0, 3, apply_batch, &v, &to), OTPCA_ERR_OK);
    cr_expect_eq(v.n, 8);
    cr_expect_geq(v.snapshots, 3, "8 devices in chunks of 3");
    cr_expect_gt(to, 0);
    for (size_t i = 0; i < v.n; i++) {
        uint8_t want[64];
        size_t n = manifest_seed(v.dev[i].serial, want, sizeof want);
        cr_expect_eq(v.dev[i].state, OTPCA_DEV_APPROVED);
        cr_expect_eq(v.dev[i].seed_len, n, "%s", v.dev[i].serial);
        cr_expect_arr_eq(v.dev[i].seed, want, n, "seed of %s", v.dev[i].serial);
    }

    /* Nothing new: an empty delta. */
    unsigned before = v.batches;
    uint64_t to2 = 0;
    cr_assert_eq(otpca_cloud_sync(c, l.window, to, 0, apply_batch, &v, &to2), OTPCA_ERR_OK);
    cr_expect_eq(to2, to);
    cr_expect_eq(v.batches, before + 1);

    /* A revocation by the admin CLI: a signed notice within a second, then
     * the delta brings it. */
    otpca_notice nt;
    char serial[65];
    cr_expect_eq(otpca_cloud_notice_wait(c, 300, &nt, serial, sizeof serial, NULL), OTPCA_ERR_TIMEOUT);
    cr_assert_eq(CT_CLOUD("device revoke node-000003 --reason 1"), 0);
    cr_assert_eq(otpca_cloud_notice_wait(c, 1500, &nt, serial, sizeof serial, NULL), OTPCA_ERR_OK,
                 "notice within 1.5 s");
    cr_expect_str_eq(serial, "node-000003");
    cr_expect_eq(nt.kind, OTPCA_NOTICE_REVOKED);
    cr_assert_eq(otpca_cloud_sync(c, l.window, to, 0, apply_batch, &v, &to2), OTPCA_ERR_OK);
    cr_expect_gt(to2, to);
    int i = view_find(&v, "node-000003");
    cr_assert_geq(i, 0);
    cr_expect_eq(v.dev[i].state, OTPCA_DEV_REVOKED);
    cr_expect_eq(v.dev[i].seed_len, 0, "no seed for a revoked device");

    /* Records: issued + confirmed for node-000001; acknowledged, and the
     * device is enrolled at the cloud. */
    uint8_t cert[300], rid[2][16], acked[2], flagged[2];
    memset(cert, 0x30, sizeof cert);
    otpca_record r[2];
    memset(r, 0, sizeof r);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(otpca_random(rid[k], 16), OTPCA_ERR_OK);
        r[k].id = (otpca_buf){rid[k], 16};
        r[k].serial = (otpca_buf){(const uint8_t *)"node-000001", 11};
        r[k].time = (uint64_t)time(NULL);
    }
    r[0].kind = OTPCA_REC_ISSUED;
    r[0].cert = (otpca_buf){cert, sizeof cert};
    r[0].step = (uint64_t)time(NULL) / 30;
    r[0].present |= OTPCA_MSG_BIT(5);
    r[1].kind = OTPCA_REC_CONFIRMED;
    otpca_record_confirm_id(rid[0], rid[1]); /* the confirmation of that issuance */
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, 2, acked, flagged), OTPCA_ERR_OK);
    cr_expect(acked[0] && acked[1]);
    cr_expect(!flagged[0] && !flagged[1]);
    cr_assert_eq(ct_sh("'%s/otpca-cloud' --config '%s' device show node-000001 >'%s/show.out'", ct_bin(), ct.conf,
                       ct.dir),
                 0);
    char path[256], state[64];
    snprintf(path, sizeof path, "%s/show.out", ct.dir);
    cr_expect(ct_sh("grep -q '^state *enrolled' '%s'", path) == 0, "device show says enrolled");
    cr_expect(ct_sh("grep -q '^manager *mgr-01' '%s'", path) == 0, "device show names the manager");
    (void)state;

    cr_expect_eq(otpca_cloud_window_close(c, l.window, 1, 0), OTPCA_ERR_OK);
    cr_expect_eq(otpca_cloud_window_close(c, l.window, 1, 0), OTPCA_ERR_OK, "a retried close is answered too");
    /* A closed window syncs no more. */
    cr_expect_eq(otpca_cloud_sync(c, l.window, to2, 0, apply_batch, &v, &to2), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), OTPCA_WIRE_LEASE_INVALID);
    otpca_cloud_client_destroy(&c);
    cr_expect_eq(CT_CLOUD("audit verify"), 0, "the audit chain verifies");
}

/* ---------------------------------------------------------------- helpers */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The wire code of an Error answer; -1 if the answer is not an Error. */
static long error_code(const uint8_t *ans, size_t len)
{
    unsigned type = 0;
    otpca_error_msg e;
    if (otpca_msg_peek_type(ans, len, &type) || type != OTPCA_MSG_ERROR ||
        otpca_msg_decode(&otpca_desc_error, ans, len, &e))
        return -1;
    return (long)e.code;
}

/* A WindowOpen of mgr-01 for 600 s, signed by s. */
static size_t window_open_signed(const otpca_signer *s, const uint8_t nonce[16], uint64_t t, const char *op,
                                 uint32_t totp, uint8_t *out, size_t cap)
{
    otpca_window_open m;
    size_t len = 0;
    memset(&m, 0, sizeof m);
    m.nonce = (otpca_buf){nonce, 16};
    m.time = t;
    m.manager = (otpca_buf){(const uint8_t *)"mgr-01", 6};
    m.operator_ = (otpca_buf){(const uint8_t *)op, strlen(op)};
    m.totp = totp;
    m.duration = 600;
    cr_assert_eq(otpca_msg_sign(&otpca_desc_window_open, &m, s, (otpca_buf){NULL, 0}, out, cap, &len), OTPCA_ERR_OK);
    return len;
}

/* n records of one kind for serial (NULL: the rig's nodes in turn), with
 * fresh random ids in ids. An issued record carries a certificate and a
 * TOTP step. */
static const uint8_t fake_cert[300] = {0x30};
static void make_records(otpca_record *r, uint8_t (*ids)[16], size_t n, unsigned kind, const char *serial)
{
    static char serials[8][16];
    cr_assert_eq(otpca_random(ids[0], 16 * n), OTPCA_ERR_OK);
    memset(r, 0, n * sizeof *r);
    for (size_t i = 0; i < n; i++) {
        const char *s = serial;
        if (!s) {
            snprintf(serials[i % 8], sizeof serials[0], "node-%06zu", i % 8 + 1);
            s = serials[i % 8];
        }
        r[i].id = (otpca_buf){ids[i], 16};
        r[i].kind = kind;
        r[i].serial = (otpca_buf){(const uint8_t *)s, strlen(s)};
        r[i].time = (uint64_t)time(NULL);
        if (kind == OTPCA_REC_ISSUED) {
            r[i].cert = (otpca_buf){fake_cert, sizeof fake_cert};
            r[i].step = (uint64_t)time(NULL) / 30;
            r[i].present |= OTPCA_MSG_BIT(5);
        }
        if (kind == OTPCA_REC_REJECTED) {
            r[i].reason = 8;
            r[i].present |= OTPCA_MSG_BIT(6);
        }
    }
}

/* An upload to window w and its close, both refused by the cloud with
 * wire error code (nothing stored). */
static void expect_upload_and_close_refused(otpca_cloud_client *c, const uint8_t w[16], unsigned code)
{
    otpca_record r[1];
    uint8_t ids[1][16], acked[1], flagged[1];
    make_records(r, ids, 1, OTPCA_REC_REJECTED, "node-000001");
    cr_expect_eq(otpca_cloud_upload(c, w, r, 1, acked, flagged), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), code);
    cr_expect_eq(otpca_cloud_window_close(c, w, 0, 0), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), code);
}

static int64_t records_stored(void)
{
    return ct_db_int("SELECT count(*) FROM records", NULL, 0);
}

static int64_t record_stored(const uint8_t id[16])
{
    return ct_db_int("SELECT count(*) FROM records WHERE id = ?1", id, 16);
}

/* ----------------------------------------------------------- CURVE / ZAP */

Test(cloud, unknown_curve_key_is_refused_at_once)
{
    char z85pub[41], z85sec[41];
    uint8_t pub[32], sec[32], window[16];
    struct view v;
    uint64_t to = 0;
    cr_assert_eq(zmq_curve_keypair(z85pub, z85sec), 0);
    cr_assert_not_null(zmq_z85_decode(pub, z85pub));
    cr_assert_not_null(zmq_z85_decode(sec, z85sec));
    otpca_cloud_client *stranger = ct_client_keys(pub, sec, 10000);
    memset(&v, 0, sizeof v);
    memset(window, 0x5a, sizeof window);
    for (int k = 0; k < 2; k++) { /* the second time on a fresh socket */
        uint64_t t0 = mono_ms();
        otpca_err e = otpca_cloud_sync(stranger, window, 0, 0, apply_batch, &v, &to);
        uint64_t ms = mono_ms() - t0;
        cr_expect_eq(e, OTPCA_ERR_AUTH, "an unknown CURVE key: %s", otpca_strerror(e));
        cr_expect_lt(ms, 3000, "refused after %llu ms (timeout 10 s)", (unsigned long long)ms);
    }
    cr_expect_eq(v.batches, 0);
    otpca_cloud_client_destroy(&stranger);

    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    ct_open(c, &l);
    cr_expect_eq(otpca_cloud_sync(c, l.window, 0, 0, apply_batch, &v, &to), OTPCA_ERR_OK);
    cr_expect_eq(v.n, 8, "mgr-01 is still served");
    otpca_cloud_client_destroy(&c);
}

/* ------------------------------------------------------------ CrlPublish */

static size_t read_all(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    cr_assert(n > 0 && n < cap);
    return n;
}

/* A CRL signed in tok by key for the CA certificate file cert. */
static unsigned char *crl_made(otpca_token_t *tok, otpca_obj_t key, const char *cert, uint64_t number, size_t *len)
{
    char path[256];
    uint8_t pem[4096];
    unsigned char *der = NULL;
    snprintf(path, sizeof path, "%s/%s", ct.dir, cert);
    size_t n = read_all(path, pem, sizeof pem);
    otpca_crl_entry e = {.serial = {0x42, 0x01}, .serial_len = 2, .revoked_at = 1790000000, .reason = 1};
    int64_t now = (int64_t)time(NULL);
    cr_assert_eq(otpca_crl_sign(tok, key, pem, n, number, now, now + 86400, &e, 1, &der, len), OTPCA_ERR_OK);
    return der;
}

static void expect_crl_refused(otpca_cloud_client *c, const uint8_t w[16], uint64_t number, const unsigned char *der,
                               size_t len, const char *why)
{
    cr_expect_eq(otpca_cloud_crl_publish(c, w, number, der, len), OTPCA_ERR_REFUSED, "%s", why);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), OTPCA_WIRE_BAD_REQUEST, "%s", why);
}

/* The cloud keeps a manager's CRL only if it is the manager's (issuer
 * and signature against its registered certificate) and numbered as the
 * message says; an older number is acknowledged and not kept; `crl get`
 * hands out exactly the bytes kept. */
Test(cloud, crl_publish_is_checked_and_only_a_newer_one_kept)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    ct_open(c, &l);
    size_t n3 = 0, n2 = 0, nx = 0;
    unsigned char *crl3 = crl_made(ct.mgr, ct.mgr_key, "mgr-01.pem", 3, &n3);
    unsigned char *crl2 = crl_made(ct.mgr, ct.mgr_key, "mgr-01.pem", 2, &n2);
    cr_assert_eq(otpca_cloud_crl_publish(c, l.window, 3, crl3, n3), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cloud_crl_publish(c, l.window, 3, crl3, n3), OTPCA_ERR_OK, "a retry is acknowledged");
    cr_assert_eq(otpca_cloud_crl_publish(c, l.window, 2, crl2, n2), OTPCA_ERR_OK, "an older one is acknowledged");
    char path[256];
    uint8_t got[4096];
    snprintf(path, sizeof path, "%s/got.crl", ct.dir);
    cr_assert_eq(CT_CLOUD("crl get --manager mgr-01 --der --out '%s'", path), 0);
    size_t gn = read_all(path, got, sizeof got);
    cr_expect(gn == n3 && !memcmp(got, crl3, n3), "the cloud hands out CRL 3, not the older 2");
    cr_expect_eq(ct_db_int("SELECT count(*) FROM audit WHERE event = 21", NULL, 0), 1, "one audit entry");

    expect_crl_refused(c, l.window, 9, crl3, n3, "a number the CRL does not carry");
    static const unsigned char junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    expect_crl_refused(c, l.window, 1, junk, sizeof junk, "not a CRL");
    ct_add_mgr2();
    unsigned char *other = crl_made(ct.root, ct.root_key, "mgr-02.pem", 5, &nx);
    expect_crl_refused(c, l.window, 5, other, nx, "another manager's CRL");
    crl3[n3 - 1] ^= 1; /* the signature's last byte */
    expect_crl_refused(c, l.window, 3, crl3, n3, "a CRL whose signature is broken");
    cr_assert_eq(CT_CLOUD("crl get --manager mgr-01 --der --out '%s'", path), 0);
    crl3[n3 - 1] ^= 1;
    gn = read_all(path, got, sizeof got);
    cr_expect(gn == n3 && !memcmp(got, crl3, n3), "still CRL 3");
    cr_expect_eq(CT_CLOUD("crl get --manager mgr-02"), 1, "mgr-02 published none");
    free(crl3);
    free(crl2);
    free(other);
    otpca_cloud_client_destroy(&c);
}

Test(cloud, revoked_manager_is_refused)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    struct view v;
    uint64_t to = 0;
    memset(&v, 0, sizeof v);
    ct_open(c, &l); /* c is connected (and admitted) from here on */
    cr_assert_eq(CT_CLOUD("manager revoke mgr-01"), 0);

    otpca_cloud_client *late = ct_client();
    uint64_t t0 = mono_ms();
    otpca_err e = otpca_cloud_sync(late, l.window, 0, 0, apply_batch, &v, &to);
    cr_expect_eq(e, OTPCA_ERR_AUTH, "a new connection of a revoked manager: %s", otpca_strerror(e));
    cr_expect_lt(mono_ms() - t0, 3000);
    otpca_cloud_client_destroy(&late);

    /* The connection made before the revocation: every request refused. */
    expect_upload_and_close_refused(c, l.window, OTPCA_WIRE_UNKNOWN_MANAGER);
    cr_expect_eq(otpca_cloud_sync(c, l.window, 0, 0, apply_batch, &v, &to), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), OTPCA_WIRE_UNKNOWN_MANAGER);
    cr_expect_eq(v.batches, 0, "no trust list for a revoked manager");
    cr_expect_eq(records_stored(), 0);
    otpca_cloud_client_destroy(&c);
}

/* ------------------------------------------------------------ WindowOpen */

Test(cloud, window_open_errors)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l, l2;
    otpca_signer s = ct_signer();
    uint8_t req[4096], ans[8192], nonce[16], window[16];
    size_t len, alen = 0;
    time_t now = time(NULL);
    uint32_t code = ct_totp(now), next = ct_totp(now + 30);

    /* A wrong TOTP (one no step of the window would give) and an unknown
     * operator. */
    uint32_t wrong = (code + 1) % 1000000;
    for (int k = 0; k < 8 && (wrong == ct_totp(now - 30) || wrong == next); k++)
        wrong = (wrong + 1) % 1000000;
    cr_expect_eq(otpca_cloud_window_open(c, "otpca-op-01", wrong, 600, 0, NULL, 0, &l), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), OTPCA_WIRE_OPERATOR_REJECTED);
    cr_expect_eq(otpca_cloud_window_open(c, "otpca-op-99", code, 600, 0, NULL, 0, &l), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), OTPCA_WIRE_OPERATOR_REJECTED);

    /* Ten minutes off the cloud's clock, either way. */
    for (int sign = -1; sign <= 1; sign += 2) {
        cr_assert_eq(otpca_random(nonce, sizeof nonce), OTPCA_ERR_OK);
        len = window_open_signed(&s, nonce, (uint64_t)(now + sign * 600), "otpca-op-01", code, req, sizeof req);
        cr_assert_eq(otpca_cloud_raw(c, req, len, ans, sizeof ans, &alen), OTPCA_ERR_OK);
        cr_expect_eq(error_code(ans, alen), OTPCA_WIRE_AUTH_FAILED, "time %+d s", sign * 600);
    }

    /* Signed by another key under the manager's key id. */
    otpca_p256_soft soft;
    cr_assert_eq(otpca_p256_soft_generate(&soft), OTPCA_ERR_OK);
    otpca_signer forged = s;
    forged.sign = otpca_p256_soft_sign;
    forged.ctx = &soft;
    cr_assert_eq(otpca_random(nonce, sizeof nonce), OTPCA_ERR_OK);
    len = window_open_signed(&forged, nonce, (uint64_t)now, "otpca-op-01", code, req, sizeof req);
    cr_assert_eq(otpca_cloud_raw(c, req, len, ans, sizeof ans, &alen), OTPCA_ERR_OK);
    cr_expect_eq(error_code(ans, alen), OTPCA_WIRE_SIGNATURE);
    otpca_p256_soft_wipe(&soft);

    /* A valid request, then the same bytes again: the same lease. */
    cr_assert_eq(otpca_random(nonce, sizeof nonce), OTPCA_ERR_OK);
    len = window_open_signed(&s, nonce, (uint64_t)time(NULL), "otpca-op-01", code, req, sizeof req);
    cr_assert_eq(otpca_cloud_raw(c, req, len, ans, sizeof ans, &alen), OTPCA_ERR_OK);
    cr_assert_eq(error_code(ans, alen), -1, "a lease, not error %ld", error_code(ans, alen));
    cr_assert_eq(otpca_cloud_lease_check(ct.cloud_pub, "mgr-01", nonce, ans, alen, &l), OTPCA_ERR_OK);
    memcpy(window, l.window, sizeof window);
    cr_assert_eq(otpca_cloud_raw(c, req, len, ans, sizeof ans, &alen), OTPCA_ERR_OK);
    cr_assert_eq(error_code(ans, alen), -1, "the retry is answered with a lease, not error %ld",
                 error_code(ans, alen));
    cr_assert_eq(otpca_cloud_lease_check(ct.cloud_pub, "mgr-01", nonce, ans, alen, &l2), OTPCA_ERR_OK);
    cr_expect_arr_eq(l2.window, window, 16, "a retry gets the same window");
    cr_expect_eq(l2.not_after, l.not_after);

    /* The same TOTP step with a fresh nonce: refused. */
    cr_expect_eq(otpca_cloud_window_open(c, "otpca-op-01", code, 600, 0, NULL, 0, &l2), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), OTPCA_WIRE_OPERATOR_REJECTED, "a TOTP step is accepted once");

    /* The next step with a scope naming an unknown batch: NOT_FOUND, and the
     * step is not spent on it. */
    const char *scope[] = {"no-such-batch"};
    cr_expect_eq(otpca_cloud_window_open(c, "otpca-op-01", next, 600, 0, scope, 1, &l2), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), OTPCA_WIRE_NOT_FOUND);
    cr_expect_eq(otpca_cloud_window_open(c, "otpca-op-01", next, 600, 0, NULL, 0, &l2), OTPCA_ERR_OK);
    cr_expect_arr_neq(l2.window, window, 16);
    otpca_cloud_client_destroy(&c);
}

/* -------------------------------------------------------- malformed input */

Test(cloud, malformed_input_gets_errors_and_the_server_goes_on)
{
    otpca_cloud_client *c = ct_client();
    uint8_t req[512], ans[4096];
    size_t len = 0, alen = 0;
    static const struct {
        const char *what;
        unsigned code;
    } want[] = {
        {"random bytes", OTPCA_WIRE_BAD_REQUEST},
        {"an empty frame", OTPCA_WIRE_BAD_REQUEST},
        {"a truncated COSE_Sign1", OTPCA_WIRE_BAD_REQUEST},
        {"an unsigned WindowOpen", OTPCA_WIRE_BAD_REQUEST},
        {"an EnrollRequest (node link)", OTPCA_WIRE_UNSUPPORTED},
        {"an unknown message type", OTPCA_WIRE_UNSUPPORTED},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        otpca_signer s = ct_signer();
        uint8_t nonce[16] = {1}, pubc[33];
        switch (k) {
        case 0:
            cr_assert_eq(otpca_random(req, 200), OTPCA_ERR_OK);
            req[0] = 0xfe; /* a reserved CBOR initial byte: never a message */
            len = 200;
            break;
        case 1:
            len = 0;
            break;
        case 2:
            len = window_open_signed(&s, nonce, (uint64_t)time(NULL), "otpca-op-01", 0, req, sizeof req) - 20;
            break;
        case 3: {
            otpca_window_open m;
            memset(&m, 0, sizeof m);
            m.nonce = (otpca_buf){nonce, 16};
            m.time = (uint64_t)time(NULL);
            m.manager = (otpca_buf){(const uint8_t *)"mgr-01", 6};
            m.operator_ = (otpca_buf){(const uint8_t *)"otpca-op-01", 11};
            m.totp = ct_totp(time(NULL));
            m.duration = 600;
            cr_assert_eq(otpca_msg_encode(&otpca_desc_window_open, &m, req, sizeof req, &len), OTPCA_ERR_OK);
            break;
        }
        case 4: {
            otpca_enroll_request m;
            memset(&m, 0, sizeof m);
            cr_assert_eq(otpca_p256_pub_compress(ct.mgr_pub, pubc), OTPCA_ERR_OK);
            m.nonce = (otpca_buf){nonce, 16};
            m.time = (uint64_t)time(NULL);
            m.serial = (otpca_buf){(const uint8_t *)"node-000001", 11};
            m.mac = (otpca_buf){nonce, 6};
            m.pubkey = (otpca_buf){pubc, sizeof pubc};
            m.totp = 123456;
            m.fw = (otpca_buf){(const uint8_t *)"1.0", 3};
            cr_assert_eq(otpca_msg_encode(&otpca_desc_enroll_request, &m, req, sizeof req, &len), OTPCA_ERR_OK);
            break;
        }
        case 5: { /* {0: 99, 1: h'00'} */
            static const uint8_t unknown[] = {0xa2, 0x00, 0x18, 0x63, 0x01, 0x41, 0x00};
            memcpy(req, unknown, sizeof unknown);
            len = sizeof unknown;
            break;
        }
        }
        otpca_err e = otpca_cloud_raw(c, req, len, ans, sizeof ans, &alen);
        cr_assert_eq(e, OTPCA_ERR_OK, "%s: no answer (%s)", want[k].what, otpca_strerror(e));
        cr_expect_eq(error_code(ans, alen), (long)want[k].code, "%s: error %ld, want %u", want[k].what,
                     error_code(ans, alen), want[k].code);
    }

    /* A ZeroMQ message of two frames is dropped unanswered: of it and the
     * one-frame request after it, only the latter is answered. */
    void *zctx = zmq_ctx_new(), *d = zmq_socket(zctx, ZMQ_DEALER);
    int linger = 0;
    cr_assert_not_null(d);
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, ct.cloud_curve, 32);
    zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, ct.curve_pub, 32);
    zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, ct.curve_sec, 32);
    cr_assert_eq(zmq_connect(d, ct.listen), 0);
    static const uint8_t enroll_type[] = {0xa1, 0x00, 0x03}; /* would be UNSUPPORTED */
    otpca_sync_request sr;
    uint8_t unknown_window[16];
    memset(&sr, 0, sizeof sr);
    memset(unknown_window, 0xee, sizeof unknown_window);
    sr.window = (otpca_buf){unknown_window, 16};
    cr_assert_eq(otpca_msg_encode(&otpca_desc_sync_request, &sr, req, sizeof req, &len), OTPCA_ERR_OK);
    cr_assert_eq(zmq_send(d, enroll_type, sizeof enroll_type, ZMQ_SNDMORE), (int)sizeof enroll_type);
    cr_assert_eq(zmq_send(d, enroll_type, sizeof enroll_type, 0), (int)sizeof enroll_type);
    cr_assert_eq(zmq_send(d, req, len, 0), (int)len);
    zmq_pollitem_t item = {d, 0, ZMQ_POLLIN, 0};
    cr_assert_eq(zmq_poll(&item, 1, 10000), 1, "the one-frame request is answered");
    int n = zmq_recv(d, ans, sizeof ans, 0);
    cr_assert_gt(n, 0);
    cr_expect_eq(error_code(ans, (size_t)n), OTPCA_WIRE_LEASE_INVALID, "the answer is the sync's");
    cr_expect_eq(zmq_poll(&item, 1, 300), 0, "nothing answers the two-frame message");
    zmq_close(d);
    zmq_ctx_term(zctx);

    /* And the server still opens windows. */
    otpca_cloud_lease l;
    ct_open(c, &l);
    otpca_cloud_client_destroy(&c);
}

/* ------------------------------------------------------------ lease checks */

Test(cloud, sync_needs_the_managers_own_lease)
{
    ct_add_mgr2();
    otpca_cloud_client *c = ct_client(), *c2 = ct_client_mgr2();
    otpca_cloud_lease l, l2;
    struct view v;
    uint64_t to = 0;
    uint8_t unknown[16];
    memset(&v, 0, sizeof v);
    ct_open(c, &l);
    otpca_err e = otpca_cloud_window_open(c2, "otpca-op-01", ct_totp(time(NULL) + 30), 600, 0, NULL, 0, &l2);
    cr_assert_eq(e, OTPCA_ERR_OK, "mgr-02 opens a window: %s (%u)", otpca_strerror(e),
                 otpca_cloud_client_error(c2, NULL));

    cr_assert_eq(otpca_random(unknown, sizeof unknown), OTPCA_ERR_OK);
    cr_expect_eq(otpca_cloud_sync(c, unknown, 0, 0, apply_batch, &v, &to), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), OTPCA_WIRE_LEASE_INVALID, "an unknown window");
    cr_expect_eq(otpca_cloud_sync(c, l2.window, 0, 0, apply_batch, &v, &to), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), OTPCA_WIRE_LEASE_INVALID, "mgr-02's window for mgr-01");
    cr_expect_eq(otpca_cloud_sync(c2, l.window, 0, 0, apply_batch, &v, &to), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c2, NULL), OTPCA_WIRE_LEASE_INVALID, "mgr-01's window for mgr-02");
    cr_expect_eq(v.batches, 0);

    /* Nor may it upload to, or close, another manager's window. */
    expect_upload_and_close_refused(c2, l.window, OTPCA_WIRE_LEASE_INVALID);
    cr_expect_eq(records_stored(), 0);

    /* Each on its own window: served (and mgr-01's was not closed). */
    cr_expect_eq(otpca_cloud_sync(c, l.window, 0, 0, apply_batch, &v, &to), OTPCA_ERR_OK);
    cr_expect_eq(v.n, 8);
    memset(&v, 0, sizeof v);
    v.mgr2 = 1;
    cr_expect_eq(otpca_cloud_sync(c2, l2.window, 0, 0, apply_batch, &v, &to), OTPCA_ERR_OK);
    cr_expect_eq(v.n, 8);
    otpca_cloud_client_destroy(&c2);
    otpca_cloud_client_destroy(&c);
}

/* -------------------------------------------------------------- SyncBatch */

/* The signed batches of a sync, as received. */
struct captured {
    size_t n;
    uint8_t *raw[32];
    size_t len[32];
};

static otpca_err capture_batch(void *arg, const otpca_sync_batch *b, const uint8_t *raw, size_t len)
{
    struct captured *cap = arg;
    (void)b;
    cr_assert_lt(cap->n, 32);
    cap->raw[cap->n] = malloc(len);
    cr_assert_not_null(cap->raw[cap->n]);
    memcpy(cap->raw[cap->n], raw, len);
    cap->len[cap->n++] = len;
    return OTPCA_ERR_OK;
}

static int is_decode_error(otpca_err e)
{
    return e <= OTPCA_ERR_CBOR_MALFORMED && e >= OTPCA_ERR_COSE_HEADER;
}

Test(cloud, tampered_sync_batch_is_rejected)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    struct captured one, all;
    uint64_t to = 0;
    memset(&one, 0, sizeof one);
    memset(&all, 0, sizeof all);
    ct_open(c, &l);
    cr_assert_eq(otpca_cloud_sync(c, l.window, 0, 1, capture_batch, &one, &to), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cloud_sync(c, l.window, 0, 0, capture_batch, &all, &to), OTPCA_ERR_OK);
    cr_assert_geq(one.n, 8, "a snapshot in chunks of one device");
    cr_assert_geq(all.n, 1);

    /* Every byte of a one-device batch (two flips each), every 7th byte of
     * the whole trust list. */
    struct {
        const uint8_t *raw;
        size_t len, stride;
    } cases[] = {{one.raw[0], one.len[0], 1}, {all.raw[0], all.len[0], 7}};
    unsigned tried = 0;
    for (size_t k = 0; k < 2; k++) {
        otpca_cose_sign1 cs;
        otpca_sync_batch b;
        size_t len = cases[k].len;
        uint8_t *t = malloc(len);
        cr_assert_not_null(t);
        cr_assert_eq(otpca_cose_sign1_decode(cases[k].raw, len, &cs), OTPCA_ERR_OK);
        size_t p0 = (size_t)(cs.payload.p - cases[k].raw), p1 = p0 + cs.payload.len;
        cr_assert_eq(otpca_cloud_batch_check(ct.cloud_pub, l.window, cases[k].raw, len, &b), OTPCA_ERR_OK);
        for (size_t i = 0; i < len; i += cases[k].stride) {
            static const uint8_t flips[] = {0x01, 0xa5};
            for (size_t f = 0; f < sizeof flips; f++) {
                memcpy(t, cases[k].raw, len);
                t[i] ^= flips[f];
                otpca_err e = otpca_cloud_batch_check(ct.cloud_pub, l.window, t, len, &b);
                tried++;
                cr_assert_neq(e, OTPCA_ERR_OK, "batch %zu: byte %zu of %zu ^ 0x%02x accepted", k, i, len, flips[f]);
                if (i >= p0 && i < p1)
                    cr_assert(e == OTPCA_ERR_SIGNATURE || is_decode_error(e),
                              "batch %zu: payload byte %zu ^ 0x%02x: %s", k, i, flips[f], otpca_errname(e));
            }
        }
        free(t);
    }
    cr_expect_gt(tried, 500);

    /* Untouched, but checked against another window: PROTO_VALUE. */
    uint8_t other[16];
    otpca_sync_batch b;
    memcpy(other, l.window, 16);
    other[15] ^= 1;
    for (size_t i = 0; i < one.n; i++)
        cr_expect_eq(otpca_cloud_batch_check(ct.cloud_pub, other, one.raw[i], one.len[i], &b), OTPCA_ERR_PROTO_VALUE);
    /* The same payload signed by another key: under the cloud's key id a
     * bad signature, under its own a key id that is not the cloud's. */
    otpca_p256_soft soft;
    otpca_cose_sign1 cs;
    otpca_signer forged;
    uint8_t *t = malloc(one.len[0] + 64);
    size_t tlen = 0;
    cr_assert_not_null(t);
    cr_assert_eq(otpca_p256_soft_generate(&soft), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cose_sign1_decode(one.raw[0], one.len[0], &cs), OTPCA_ERR_OK);
    memset(&forged, 0, sizeof forged);
    forged.sign = otpca_p256_soft_sign;
    forged.ctx = &soft;
    otpca_p256_kid(ct.cloud_pub, forged.kid);
    cr_assert_eq(otpca_cose_sign1_encode(&forged, (otpca_buf){NULL, 0}, cs.payload.p, cs.payload.len, t,
                                         one.len[0] + 64, &tlen),
                 OTPCA_ERR_OK);
    cr_expect_eq(otpca_cloud_batch_check(ct.cloud_pub, l.window, t, tlen, &b), OTPCA_ERR_SIGNATURE);
    otpca_p256_kid(soft.pub, forged.kid);
    cr_assert_eq(otpca_cose_sign1_encode(&forged, (otpca_buf){NULL, 0}, cs.payload.p, cs.payload.len, t,
                                         one.len[0] + 64, &tlen),
                 OTPCA_ERR_OK);
    cr_expect_neq(otpca_cloud_batch_check(ct.cloud_pub, l.window, t, tlen, &b), OTPCA_ERR_OK);
    otpca_p256_soft_wipe(&soft);
    free(t);
    for (size_t i = 0; i < one.n; i++)
        free(one.raw[i]);
    for (size_t i = 0; i < all.n; i++)
        free(all.raw[i]);
    otpca_cloud_client_destroy(&c);
}

/* Applies batches until the second, which it refuses. */
static otpca_err refuse_second(void *arg, const otpca_sync_batch *b, const uint8_t *raw, size_t len)
{
    unsigned *n = arg;
    (void)b, (void)raw, (void)len;
    return ++*n == 2 ? OTPCA_ERR_STATE : OTPCA_ERR_OK;
}

/* The client asks for the next batch before the callback has applied this
 * one; a callback that stops the sync leaves that request's answer behind,
 * which the next request must not take for its own. */
Test(cloud, a_sync_stopped_by_its_callback_leaves_no_answer_behind)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    struct view v;
    unsigned n = 0;
    uint64_t to = 0;
    memset(&v, 0, sizeof v);
    ct_open(c, &l);
    cr_assert_eq(otpca_cloud_sync(c, l.window, 0, 2, refuse_second, &n, &to), OTPCA_ERR_STATE);
    cr_expect_eq(n, 2);
    /* The next requests get their own answers: a whole snapshot, then an
     * upload's acknowledgement. */
    cr_assert_eq(otpca_cloud_sync(c, l.window, 0, 2, apply_batch, &v, &to), OTPCA_ERR_OK);
    cr_expect_eq(v.n, 8);
    cr_expect_eq(v.last_chunk, 3, "8 devices in chunks of 2");
    otpca_record r[1];
    uint8_t ids[1][16], acked[1] = {0}, flagged[1];
    make_records(&r[0], &ids[0], 1, OTPCA_REC_REJECTED, "node-000003");
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, 1, acked, flagged), OTPCA_ERR_OK);
    cr_expect(acked[0]);
    otpca_cloud_client_destroy(&c);
}

Test(cloud, delta_after_snapshot_equals_a_fresh_snapshot)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    struct view v, fresh;
    uint64_t t1 = 0, t2 = 0, t3 = 0;
    memset(&v, 0, sizeof v);
    memset(&fresh, 0, sizeof fresh);
    ct_open(c, &l);
    cr_assert_eq(otpca_cloud_sync(c, l.window, 0, 3, apply_batch, &v, &t1), OTPCA_ERR_OK);
    cr_assert_eq(v.n, 8);

    /* Changes: a revocation, a lock (a record) then an unlock, an issued
     * certificate with its TOTP step, a confirmed enrollment, a rejected
     * request (failure count). */
    otpca_record r[4];
    uint8_t ids[4][16], acked[4], flagged[4];
    make_records(&r[0], &ids[0], 1, OTPCA_REC_LOCKED, "node-000004");
    make_records(&r[1], &ids[1], 1, OTPCA_REC_ISSUED, "node-000005");
    make_records(&r[2], &ids[2], 1, OTPCA_REC_CONFIRMED, "node-000005");
    otpca_record_confirm_id(ids[1], ids[2]);
    make_records(&r[3], &ids[3], 1, OTPCA_REC_REJECTED, "node-000006");
    cr_assert_eq(CT_CLOUD("device revoke node-000002 --reason 1"), 0);
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, 4, acked, flagged), OTPCA_ERR_OK);
    cr_assert(acked[0] && acked[1] && acked[2] && acked[3]);
    cr_assert_eq(CT_CLOUD("device revoke node-000007"), 0);
    cr_assert_eq(CT_CLOUD("device unlock node-000004"), 0);
    make_records(&r[0], &ids[0], 1, OTPCA_REC_LOCKED, "node-000008");
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, 1, acked, flagged), OTPCA_ERR_OK);

    cr_assert_eq(otpca_cloud_sync(c, l.window, t1, 2, apply_batch, &v, &t2), OTPCA_ERR_OK);
    cr_expect_gt(t2, t1);
    cr_assert_eq(otpca_cloud_sync(c, l.window, 0, 3, apply_batch, &fresh, &t3), OTPCA_ERR_OK);
    cr_expect_eq(t3, t2, "the fresh snapshot ends where the delta did");
    cr_assert_eq(v.n, fresh.n);
    for (size_t i = 0; i < fresh.n; i++) {
        int j = view_find(&v, fresh.dev[i].serial);
        cr_assert_geq(j, 0, "%s is in both", fresh.dev[i].serial);
        cr_expect_eq(v.dev[j].state, fresh.dev[i].state, "state of %s", fresh.dev[i].serial);
        cr_expect_eq(v.dev[j].seq, fresh.dev[i].seq, "seq of %s", fresh.dev[i].serial);
        cr_expect_eq(v.dev[j].last_step, fresh.dev[i].last_step, "last step of %s", fresh.dev[i].serial);
        cr_expect_eq(v.dev[j].has_cert, fresh.dev[i].has_cert, "certificate of %s", fresh.dev[i].serial);
        cr_expect_eq(v.dev[j].seed_len, fresh.dev[i].seed_len, "seed of %s", fresh.dev[i].serial);
        cr_expect_arr_eq(v.dev[j].seed, fresh.dev[i].seed, fresh.dev[i].seed_len, "seed of %s",
                         fresh.dev[i].serial);
    }
    /* And the changes are the ones made. */
    static const struct {
        const char *serial;
        uint64_t state;
    } want[] = {{"node-000002", OTPCA_DEV_REVOKED}, {"node-000004", OTPCA_DEV_APPROVED},
                {"node-000005", OTPCA_DEV_ENROLLED}, {"node-000007", OTPCA_DEV_REVOKED},
                {"node-000008", OTPCA_DEV_LOCKED}, {"node-000001", OTPCA_DEV_APPROVED}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        int j = view_find(&fresh, want[k].serial);
        cr_assert_geq(j, 0);
        cr_expect_eq(fresh.dev[j].state, want[k].state, "%s", want[k].serial);
    }
    int j = view_find(&fresh, "node-000005");
    cr_expect_eq(fresh.dev[j].last_step, r[1].step, "the issued record's TOTP step");
    cr_expect(fresh.dev[j].has_cert);
    cr_expect_eq(fresh.dev[view_find(&fresh, "node-000002")].seed_len, 0, "no seed for a revoked device");
    otpca_cloud_client_destroy(&c);
}

/* A view that changes the registry (admin CLI) after the first batch of a
 * sync, while the rest of the snapshot is still to come. */
struct moving_view {
    struct view v;
    int changed;
    char early[65], late[65];
};

static otpca_err apply_and_change(void *arg, const otpca_sync_batch *b, const uint8_t *raw, size_t len)
{
    struct moving_view *m = arg;
    otpca_err ret = apply_batch(&m->v, b, raw, len);
    if (!m->changed++) {
        /* One device already sent, one still to come. */
        cr_assert_gt(m->v.n, 0);
        cr_assert_lt(m->v.n, 8, "the first chunk is not the whole list");
        snprintf(m->early, sizeof m->early, "%s", m->v.dev[0].serial);
        for (unsigned i = 8; i >= 1 && !m->late[0]; i--) {
            char serial[16];
            snprintf(serial, sizeof serial, "node-%06u", i);
            if (view_find(&m->v, serial) < 0)
                snprintf(m->late, sizeof m->late, "%s", serial);
        }
        cr_assert_eq(CT_CLOUD("device revoke %s", m->early), 0);
        cr_assert_eq(CT_CLOUD("device revoke %s", m->late), 0);
    }
    return ret;
}

Test(cloud, snapshot_taken_while_devices_change_catches_up)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    struct moving_view m;
    struct view fresh;
    uint64_t to = 0, to2 = 0;
    memset(&m, 0, sizeof m);
    memset(&fresh, 0, sizeof fresh);
    ct_open(c, &l);
    cr_assert_eq(otpca_cloud_sync(c, l.window, 0, 3, apply_and_change, &m, &to), OTPCA_ERR_OK);
    cr_assert_eq(otpca_cloud_sync(c, l.window, 0, 3, apply_batch, &fresh, &to2), OTPCA_ERR_OK);
    cr_expect_eq(to, to2, "the sync brought the manager up to the head (%llu, not %llu)", (unsigned long long)to2,
                 (unsigned long long)to);
    cr_assert_eq(m.v.n, 8, "%zu devices: %s is missing", m.v.n, view_find(&m.v, m.late) < 0 ? m.late : "?");
    cr_expect_leq(m.v.snapshots, 3, "one snapshot of 8 devices in chunks of 3, not %u chunks", m.v.snapshots);
    cr_expect_geq(m.v.batches - m.v.snapshots, 1, "then the delta of the changes made meanwhile");
    for (size_t i = 0; i < fresh.n; i++) {
        int j = view_find(&m.v, fresh.dev[i].serial);
        cr_assert_geq(j, 0);
        cr_expect_eq(m.v.dev[j].state, fresh.dev[i].state, "state of %s", fresh.dev[i].serial);
        cr_expect_eq(m.v.dev[j].seq, fresh.dev[i].seq, "seq of %s", fresh.dev[i].serial);
        cr_expect_eq(m.v.dev[j].seed_len, fresh.dev[i].seed_len, "seed of %s", fresh.dev[i].serial);
    }
    cr_expect_eq(m.v.dev[view_find(&m.v, m.early)].state, OTPCA_DEV_REVOKED, "%s (sent before)", m.early);
    cr_expect_eq(m.v.dev[view_find(&m.v, m.late)].state, OTPCA_DEV_REVOKED, "%s (to come)", m.late);
    otpca_cloud_client_destroy(&c);
}

/* ----------------------------------------------------------------- records */

Test(cloud, record_upload_is_idempotent_and_refuses_conflicts)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    otpca_record r[3], x[2];
    uint8_t ids[3][16], xids[2][16], acked[3], flagged[3];
    ct_open(c, &l);
    make_records(r, ids, 3, OTPCA_REC_REJECTED, NULL);
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, 3, acked, flagged), OTPCA_ERR_OK);
    cr_expect(acked[0] && acked[1] && acked[2]);
    cr_expect_eq(records_stored(), 3);
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, 3, acked, flagged), OTPCA_ERR_OK);
    cr_expect(acked[0] && acked[1] && acked[2], "a repeat is acknowledged too");
    cr_expect(!flagged[0] && !flagged[1] && !flagged[2]);
    cr_expect_eq(records_stored(), 3, "and stored once");
    cr_expect_eq(ct_db_int("SELECT failures FROM devices WHERE serial = 'node-000001'", NULL, 0), 1,
                 "a repeat's effect is not applied again");

    /* A new record and a record id reused with other content: refused,
     * and neither is stored. */
    make_records(&x[0], &xids[0], 1, OTPCA_REC_REJECTED, "node-000004");
    x[1] = r[2];
    x[1].time += 1;
    cr_assert_eq(otpca_cloud_upload(c, l.window, x, 2, acked, flagged), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, NULL), OTPCA_WIRE_CONFLICT);
    cr_expect(!acked[0] && !acked[1]);
    cr_expect_eq(records_stored(), 3);
    cr_expect_eq(record_stored(xids[0]), 0, "nothing of the refused upload is stored");
    cr_expect_eq(ct_db_int("SELECT failures FROM devices WHERE serial = 'node-000004'", NULL, 0), 0);
    cr_expect_eq(ct_db_int("SELECT time FROM records WHERE id = ?1", ids[2], 16), (int64_t)r[2].time);
    otpca_cloud_client_destroy(&c);
}

/* The cloud's current certificate (and key) of a device change with the
 * CONFIRMED record of an issuance, not with the issuance (PROTOCOL.md 7.3):
 * a certificate the node never committed never becomes current. */
Test(cloud, the_certificate_becomes_current_at_its_confirmation)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    otpca_record r[2];
    uint8_t ids[2][16], acked[2], flagged[2], hash[32], cert2[300];
    char hex[131], path[256];
    ct_open(c, &l);
    snprintf(path, sizeof path, "%s/show.out", ct.dir);
#define SHOW() ct_sh("'%s/otpca-cloud' --config '%s' device show node-000003 >'%s'", ct_bin(), ct.conf, path)
    make_records(&r[0], &ids[0], 1, OTPCA_REC_ISSUED, "node-000003");
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, 1, acked, flagged), OTPCA_ERR_OK);
    cr_assert_eq(SHOW(), 0);
    cr_expect_eq(ct_sh("grep -q '^certificate *-' '%s'", path), 0, "issued, not confirmed: no current certificate");
    make_records(&r[1], &ids[1], 1, OTPCA_REC_CONFIRMED, "node-000003");
    otpca_record_confirm_id(ids[0], ids[1]);
    cr_assert_eq(otpca_cloud_upload(c, l.window, &r[1], 1, acked, flagged), OTPCA_ERR_OK);
    otpca_sha256(fake_cert, sizeof fake_cert, hash);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    cr_assert_eq(SHOW(), 0);
    cr_expect_eq(ct_sh("grep -q '^certificate *%s' '%s'", hex, path), 0, "confirmed: that certificate");
    cr_expect_eq(ct_sh("grep -q '^state *enrolled' '%s'", path), 0);

    /* A KeyUpdate: the new key and certificate only with the confirmation. */
    otpca_p256_soft nk;
    cr_assert_eq(otpca_p256_soft_generate(&nk), 0);
    memset(cert2, 0x31, sizeof cert2);
    make_records(&r[0], &ids[0], 1, OTPCA_REC_KEY_UPDATED, "node-000003");
    r[0].cert = (otpca_buf){cert2, sizeof cert2};
    r[0].pubkey = (otpca_buf){nk.pub, 65};
    r[0].step = (uint64_t)time(NULL) / 30 + 1;
    r[0].present |= OTPCA_MSG_BIT(5);
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, 1, acked, flagged), OTPCA_ERR_OK);
    cr_assert_eq(SHOW(), 0);
    cr_expect_eq(ct_sh("grep -q '^certificate *%s' '%s'", hex, path), 0, "key updated, not confirmed: the old one");
    char khex[131];
    for (int i = 0; i < 65; i++)
        snprintf(khex + 2 * i, 3, "%02x", nk.pub[i]);
    cr_expect_neq(ct_sh("grep -q '^public key *%s' '%s'", khex, path), 0, "and the old key");
    make_records(&r[1], &ids[1], 1, OTPCA_REC_CONFIRMED, "node-000003");
    otpca_record_confirm_id(ids[0], ids[1]);
    cr_assert_eq(otpca_cloud_upload(c, l.window, &r[1], 1, acked, flagged), OTPCA_ERR_OK);
    otpca_sha256(cert2, sizeof cert2, hash);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    cr_assert_eq(SHOW(), 0);
    cr_expect_eq(ct_sh("grep -q '^certificate *%s' '%s'", hex, path), 0, "confirmed: the new certificate");
    cr_expect_eq(ct_sh("grep -q '^public key *%s' '%s'", khex, path), 0, "and the new key");
#undef SHOW
    otpca_p256_soft_wipe(&nk);
    otpca_cloud_client_destroy(&c);
}

Test(cloud, double_enrollment_is_flagged)
{
    ct_add_mgr2();
    otpca_cloud_client *c = ct_client(), *c2 = ct_client_mgr2();
    otpca_cloud_lease l, l2;
    otpca_record r[2], r2[1];
    uint8_t ids[2][16], ids2[1][16], acked[2], flagged[2];
    ct_open(c, &l);
    make_records(&r[0], &ids[0], 1, OTPCA_REC_ISSUED, "node-000001");
    make_records(&r[1], &ids[1], 1, OTPCA_REC_CONFIRMED, "node-000001");
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, 2, acked, flagged), OTPCA_ERR_OK);
    cr_expect(acked[0] && acked[1]);
    cr_expect(!flagged[0] && !flagged[1]);

    otpca_err e = otpca_cloud_window_open(c2, "otpca-op-01", ct_totp(time(NULL) + 30), 600, 0, NULL, 0, &l2);
    cr_assert_eq(e, OTPCA_ERR_OK, "mgr-02 opens a window: %s (%u)", otpca_strerror(e),
                 otpca_cloud_client_error(c2, NULL));
    make_records(r2, ids2, 1, OTPCA_REC_CONFIRMED, "node-000001");
    for (int k = 0; k < 2; k++) { /* the second time: a repeat, same verdict */
        acked[0] = flagged[0] = 0;
        cr_assert_eq(otpca_cloud_upload(c2, l2.window, r2, 1, acked, flagged), OTPCA_ERR_OK);
        cr_expect(acked[0], "upload %d acknowledged", k + 1);
        cr_expect(flagged[0], "upload %d flagged", k + 1);
    }
    cr_expect_eq(records_stored(), 3);
    /* mgr-01's own records repeated: still not flagged. */
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, 2, acked, flagged), OTPCA_ERR_OK);
    cr_expect(acked[0] && acked[1] && !flagged[0] && !flagged[1]);

    char path[256];
    snprintf(path, sizeof path, "%s/show.out", ct.dir);
    cr_assert_eq(ct_sh("'%s/otpca-cloud' --config '%s' device show node-000001 >'%s'", ct_bin(), ct.conf, path), 0);
    cr_expect(ct_sh("grep -q '^FLAGGED' '%s'", path) == 0, "device show prints the flag");
    cr_expect_eq(CT_CLOUD("audit verify"), 0, "the audit chain verifies");
    cr_expect_eq(ct_db_int("SELECT count(*) FROM audit WHERE event = 14", NULL, 0), 1,
                 "one double-enrollment audit entry");
    otpca_cloud_client_destroy(&c2);
    otpca_cloud_client_destroy(&c);
}

/* ---------------------------------------------------------- crash, signals */

struct killer {
    pid_t pid;
    unsigned delay_ms;
    atomic_int done;
};

static void *killer_main(void *arg)
{
    struct killer *k = arg;
    struct timespec ts = {(time_t)(k->delay_ms / 1000), (long)(k->delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    kill(k->pid, SIGKILL);
    atomic_store(&k->done, 1);
    return NULL;
}

#define INGEST_BATCHES_MAX 2000
#define INGEST_BATCH 50

Test(cloud, kill_9_during_ingest_loses_nothing_acknowledged)
{
    /* A short timeout: the upload in flight when the server dies ends with
     * it (a live server answers 50 records in milliseconds). */
    otpca_cloud_client *c = ct_client_keys(NULL, NULL, 2000);
    otpca_cloud_lease l;
    otpca_record r[INGEST_BATCH];
    uint8_t ids[INGEST_BATCH][16], acked[INGEST_BATCH], flagged[INGEST_BATCH];
    uint8_t(*done)[16] = malloc((size_t)INGEST_BATCHES_MAX * INGEST_BATCH * 16);
    size_t ndone = 0;
    uint16_t rnd = 0;
    cr_assert_not_null(done);
    ct_open(c, &l);

    struct killer k = {ct.server, 0, 0};
    cr_assert_eq(otpca_random((uint8_t *)&rnd, sizeof rnd), OTPCA_ERR_OK);
    k.delay_ms = 200 + rnd % 501;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, killer_main, &k), 0);
    otpca_err e = OTPCA_ERR_OK;
    unsigned batches = 0;
    for (; batches < INGEST_BATCHES_MAX; batches++) {
        make_records(r, ids, INGEST_BATCH, OTPCA_REC_REJECTED, NULL);
        if ((e = otpca_cloud_upload(c, l.window, r, INGEST_BATCH, acked, flagged)))
            break;
        for (size_t i = 0; i < INGEST_BATCH; i++) {
            cr_assert(acked[i], "batch %u: record %zu not acknowledged", batches, i);
            memcpy(done[ndone++], ids[i], 16);
        }
    }
    pthread_join(th, NULL);
    cr_assert(atomic_load(&k.done), "the server was killed");
    cr_assert_eq(e, OTPCA_ERR_TIMEOUT, "the loop ended with the server: %s", otpca_strerror(e));
    cr_expect_eq(ct_server_stop(SIGKILL), 128 + SIGKILL);
    cr_log_info("killed after %u ms, %u batches acknowledged", k.delay_ms, batches);
    otpca_cloud_client_destroy(&c);

    ct_server_start();
    int64_t stored = records_stored();
    cr_expect(stored == (int64_t)ndone || stored == (int64_t)ndone + INGEST_BATCH,
              "%lld records stored: %zu acknowledged and maybe the batch in flight", (long long)stored, ndone);
    size_t missing = 0;
    for (size_t i = 0; i < ndone; i++)
        missing += record_stored(done[i]) != 1;
    cr_expect_eq(missing, 0, "%zu of %zu acknowledged records lost", missing, ndone);

    /* The batch that was in flight: acknowledged now, stored once. */
    c = ct_client();
    cr_assert_eq(otpca_cloud_upload(c, l.window, r, INGEST_BATCH, acked, flagged), OTPCA_ERR_OK);
    size_t unacked = 0;
    missing = 0;
    for (size_t i = 0; i < INGEST_BATCH; i++) {
        unacked += !acked[i];
        missing += record_stored(ids[i]) != 1;
    }
    cr_expect_eq(unacked, 0, "the batch in flight is acknowledged when sent again");
    cr_expect_eq(missing, 0, "and stored");
    cr_expect_eq(records_stored(), (int64_t)ndone + INGEST_BATCH, "once");
    cr_expect_eq(CT_CLOUD("audit verify"), 0, "the audit chain survives the crash");
    free(done);
    otpca_cloud_client_destroy(&c);
}

struct syncer {
    uint8_t window[16];
    int ready; /* write end of a pipe: one byte after the first sync */
    unsigned rounds;
    otpca_err last;
};

static otpca_err count_batch(void *arg, const otpca_sync_batch *b, const uint8_t *raw, size_t len)
{
    (void)b, (void)raw, (void)len;
    (*(unsigned *)arg)++;
    return OTPCA_ERR_OK;
}

/* Syncs (snapshots in chunks of one device) until a sync fails. */
static void *syncer_main(void *arg)
{
    struct syncer *s = arg;
    otpca_cloud_client_config cfg;
    otpca_cloud_client *c = NULL;
    ct_client_config(&cfg, "mgr-01", ct_signer(), NULL, NULL, 1000);
    s->last = otpca_cloud_client_new(&cfg, &c);
    otpca_memzero(cfg.secret_key, sizeof cfg.secret_key);
    for (unsigned i = 0; !s->last && i < 100000; i++) {
        unsigned batches = 0;
        uint64_t to = 0;
        s->last = otpca_cloud_sync(c, s->window, 0, 1, count_batch, &batches, &to);
        if (!s->last) {
            s->rounds++;
            if (s->rounds == 1 && write(s->ready, "x", 1) != 1)
                s->last = OTPCA_ERR_IO;
        }
    }
    close(s->ready);
    otpca_cloud_client_destroy(&c);
    return NULL;
}

Test(cloud, sigterm_during_sync_stops_cleanly)
{
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    struct syncer s;
    int fds[2];
    char byte;
    memset(&s, 0, sizeof s);
    ct_open(c, &l);
    otpca_cloud_client_destroy(&c);
    memcpy(s.window, l.window, 16);
    cr_assert_eq(pipe(fds), 0);
    s.ready = fds[1];
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, syncer_main, &s), 0);
    struct pollfd p = {fds[0], POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 10000), 1);
    cr_assert_eq(read(fds[0], &byte, 1), 1, "the syncer is under way");
    close(fds[0]);

    uint64_t t0 = mono_ms();
    int status = ct_server_stop(SIGTERM);
    uint64_t ms = mono_ms() - t0;
    cr_expect_eq(status, 0, "exit status %d after SIGTERM mid-sync (-2: still running after 10 s)", status);
    cr_expect_lt(ms, 10000);
    pthread_join(th, NULL);
    cr_expect_eq(s.last, OTPCA_ERR_TIMEOUT, "the syncer ended for want of a server: %s", otpca_strerror(s.last));
    cr_expect_geq(s.rounds, 1);
    cr_log_info("stopped in %llu ms after %u syncs", (unsigned long long)ms, s.rounds);

    /* A new server on the same store serves the same window. */
    ct_server_start();
    struct view v;
    uint64_t to = 0;
    memset(&v, 0, sizeof v);
    c = ct_client();
    cr_expect_eq(otpca_cloud_sync(c, l.window, 0, 3, apply_batch, &v, &to), OTPCA_ERR_OK);
    cr_expect_eq(v.n, 8);
    otpca_cloud_client_destroy(&c);
}

/* An operator opens windows only on the managers it was allowed (checked
 * before its code): otpca-op-02 is registered but allowed none. */
Test(cloud, an_operator_needs_a_grant_for_the_manager)
{
    char path[256];
    snprintf(path, sizeof path, "%s/op2.seed", ct.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "3132333435363738393031323334353637383930\n");
    fclose(f);
    chmod(path, 0600);
    cr_assert_eq(CT_CLOUD("operator add otpca-op-02 --seed-file '%s'", path), 0);
    otpca_cloud_client *c = ct_client();
    otpca_cloud_lease l;
    const char *detail = "";
    cr_expect_eq(otpca_cloud_window_open(c, "otpca-op-02", 123456, 600, 0, NULL, 0, &l), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, &detail), OTPCA_WIRE_OPERATOR_REJECTED);
    cr_expect(strstr(detail, "may not open windows on mgr-01") != NULL, "detail: %s", detail);
    cr_assert_eq(CT_CLOUD("operator allow otpca-op-02 --manager mgr-01"), 0);
    cr_expect_eq(otpca_cloud_window_open(c, "otpca-op-02", 123456, 600, 0, NULL, 0, &l), OTPCA_ERR_REFUSED);
    cr_expect_eq(otpca_cloud_client_error(c, &detail), OTPCA_WIRE_OPERATOR_REJECTED);
    cr_expect(strstr(detail, "TOTP wrong") != NULL, "now its code is what fails: %s", detail);
    otpca_cloud_client_destroy(&c);
}

/* ------------------------------------------------- several instances */

/* Two `otpca-cloud serve` on one PostgreSQL database (SQLite is one
 * machine's store: one instance). */
static void need_postgresql(void)
{
    if (ct.pg_base[0])
        return;
    /* A skipped test does not reach the suite's fini: stop the server and
     * remove the test's files now (ct_teardown may run twice). */
    ct_teardown();
    cr_skip_test("several cloud instances share a PostgreSQL store; this run's store is SQLite "
                 "(unit.cloud_server_pg runs it)");
}

/* A client for mgr-01 given both instances (lists as the manager's
 * `cloud` and `cloud_notices` take them). */
static otpca_cloud_client *ct_client_both(int timeout_ms, int retries)
{
    otpca_cloud_client_config cfg;
    otpca_cloud_client *c = NULL;
    char eps[600], nts[600];
    snprintf(eps, sizeof eps, "%s,%s", ct.listen, ct.listen2);
    snprintf(nts, sizeof nts, "%s, %s", ct.notices, ct.notices2);
    ct_client_config(&cfg, "mgr-01", ct_signer(), NULL, NULL, timeout_ms);
    cfg.endpoint = eps;
    cfg.notices = nts;
    cfg.retries = retries;
    cr_assert_eq(otpca_cloud_client_new(&cfg, &c), OTPCA_ERR_OK);
    otpca_memzero(cfg.secret_key, sizeof cfg.secret_key);
    return c;
}

/* Waits up to timeout_ms for notices of kind about serial: how many
 * copies came (each instance publishes each change), all of one change. */
static unsigned notice_copies(otpca_cloud_client *c, const char *serial, unsigned kind, unsigned want,
                              int timeout_ms)
{
    otpca_notice nt;
    char got[65];
    unsigned copies = 0;
    uint64_t seq = 0, deadline = mono_ms() + (uint64_t)timeout_ms;
    for (unsigned i = 0; i < 64 && copies < want; i++) {
        uint64_t now = mono_ms();
        if (now >= deadline)
            break;
        otpca_err e = otpca_cloud_notice_wait(c, (int)(deadline - now), &nt, got, sizeof got, NULL);
        if (e == OTPCA_ERR_TIMEOUT)
            break;
        cr_assert_eq(e, OTPCA_ERR_OK, "notice: %s", otpca_strerror(e));
        if (strcmp(got, serial) != 0 || nt.kind != kind)
            continue;
        cr_assert(!copies || nt.seq == seq, "copies of one change carry its sequence");
        seq = nt.seq;
        copies++;
    }
    return copies;
}

struct multi_sync {
    struct view v;
    unsigned chunks;
    unsigned per_serial[VIEW_MAX];
    uint64_t stopped_at, killed_at;
};

/* Applies a batch and counts each snapshot entry per serial; after the
 * second chunk the first instance is stopped (SIGSTOP: the next request
 * that reaches it hangs), after the fifth it is killed (SIGKILL). */
static otpca_err multi_batch(void *arg, const otpca_sync_batch *b, const uint8_t *raw, size_t len)
{
    struct multi_sync *m = arg;
    otpca_list_iter it;
    otpca_device_entry e;
    otpca_err ret = apply_batch(&m->v, b, raw, len);
    if (b->kind == OTPCA_SYNC_SNAPSHOT) {
        otpca_list_iter_init(&it, &b->entries);
        while (otpca_list_next(&it, &otpca_desc_device_entry, &e) == OTPCA_ERR_OK)
            for (size_t i = 0; i < m->v.n; i++)
                if (strlen(m->v.dev[i].serial) == e.serial.len &&
                    !memcmp(m->v.dev[i].serial, e.serial.p, e.serial.len))
                    m->per_serial[i]++;
        m->chunks++;
    }
    if (m->chunks == 2 && !m->stopped_at) {
        cr_assert_eq(kill(ct.server, SIGSTOP), 0);
        m->stopped_at = mono_ms();
    } else if (m->chunks == 5 && !m->killed_at) {
        cr_assert_eq(kill(ct.server, SIGKILL), 0);
        m->killed_at = mono_ms();
    }
    return ret;
}

/* A manager given both instances: a revocation made by the CLI comes as a
 * notice from each; a snapshot sync in chunks goes on through the second
 * instance while the first hangs and is then killed, every device once;
 * records uploaded afterwards are stored once each; and a revocation
 * after the kill still comes, from the survivor. */
Test(cloud, two_instances_one_dies_mid_sync)
{
    need_postgresql();
    ct_server2_start();
    const int timeout_ms = 1500;
    otpca_cloud_client *c = ct_client_both(timeout_ms, 2);
    otpca_notice nt;
    char serial[65];
    otpca_cloud_lease l;
    /* The first wait subscribes to both; nothing is published yet. */
    cr_expect_eq(otpca_cloud_notice_wait(c, 1000, &nt, serial, sizeof serial, NULL), OTPCA_ERR_TIMEOUT);
    ct_open(c, &l);

    cr_assert_eq(CT_CLOUD("device revoke node-000008 --reason 1"), 0);
    cr_expect_eq(notice_copies(c, "node-000008", OTPCA_NOTICE_REVOKED, 2, 5000), 2,
                 "the revocation comes from each instance");

    /* The snapshot, one device per chunk. */
    struct multi_sync *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    uint64_t to = 0;
    otpca_err e = otpca_cloud_sync(c, l.window, 0, 1, multi_batch, m, &to);
    uint64_t done_at = mono_ms();
    cr_assert_eq(e, OTPCA_ERR_OK, "sync with one instance stopped, then killed: %s", otpca_strerror(e));
    cr_assert(m->stopped_at && m->killed_at, "the first instance was stopped and killed mid-sync (%u chunks)",
              m->chunks);
    cr_expect_eq(ct_server_stop(SIGKILL), 128 + SIGKILL, "the first instance died of SIGKILL");
    /* Requests alternate between the instances: of the two after the stop
     * one reached the stopped instance and was answered by the other only
     * after a timeout. */
    cr_expect_geq(m->killed_at - m->stopped_at, (uint64_t)timeout_ms,
                  "a request waited for the stopped instance (%llu ms)",
                  (unsigned long long)(m->killed_at - m->stopped_at));
    cr_log_info("sync: %u chunks, %llu ms from the stop to the end", m->chunks,
                (unsigned long long)(done_at - m->stopped_at));
    cr_expect_eq(m->v.n, 8, "every rig device");
    cr_expect_eq(m->chunks, 8, "one chunk per device");
    for (size_t i = 0; i < m->v.n; i++)
        cr_expect_eq(m->per_serial[i], 1, "%s in the snapshot %u times", m->v.dev[i].serial, m->per_serial[i]);
    int i8 = view_find(&m->v, "node-000008");
    cr_assert_geq(i8, 0);
    cr_expect_eq(m->v.dev[i8].state, OTPCA_DEV_REVOKED);
    for (size_t i = 0; i < m->v.n; i++) {
        uint8_t want[64];
        size_t n = manifest_seed(m->v.dev[i].serial, want, sizeof want);
        if (m->v.dev[i].state == OTPCA_DEV_APPROVED)
            cr_expect(m->v.dev[i].seed_len == n && !memcmp(m->v.dev[i].seed, want, n), "seed of %s",
                      m->v.dev[i].serial);
    }
    free(m);

    /* Records through the survivor: each acknowledged, stored once; a
     * batch sent again is acknowledged and not stored again. */
    enum { BATCHES = 3, PER = 20 };
    otpca_record r[BATCHES][PER];
    uint8_t ids[BATCHES][PER][16], acked[PER], flagged[PER];
    for (int b = 0; b < BATCHES; b++) {
        make_records(r[b], ids[b], PER, OTPCA_REC_REJECTED, NULL);
        cr_assert_eq(otpca_cloud_upload(c, l.window, r[b], PER, acked, flagged), OTPCA_ERR_OK, "batch %d", b);
        for (int k = 0; k < PER; k++)
            cr_expect(acked[k], "batch %d record %d acknowledged", b, k);
    }
    cr_assert_eq(otpca_cloud_upload(c, l.window, r[1], PER, acked, flagged), OTPCA_ERR_OK);
    for (int k = 0; k < PER; k++)
        cr_expect(acked[k], "resent record %d acknowledged", k);
    cr_expect_eq(records_stored(), BATCHES * PER, "every record stored");
    cr_expect_eq(ct_db_int("SELECT count(DISTINCT id) FROM records", NULL, 0), BATCHES * PER, "once");
    for (int b = 0; b < BATCHES; b++)
        for (int k = 0; k < PER; k++)
            cr_expect_eq(record_stored(ids[b][k]), 1);

    cr_assert_eq(CT_CLOUD("device revoke node-000007"), 0);
    cr_expect_eq(notice_copies(c, "node-000007", OTPCA_NOTICE_REVOKED, 1, 5000), 1,
                 "a revocation after the kill comes from the survivor");
    cr_expect_eq(otpca_cloud_window_close(c, l.window, 0, BATCHES * PER), OTPCA_ERR_OK);
    otpca_cloud_client_destroy(&c);
    cr_expect_eq(CT_CLOUD("audit verify"), 0, "the audit chain of both instances verifies");
}

/* A manager given both instances uploads batch after batch while the
 * first is killed at a random moment: every upload is acknowledged (the
 * one in flight at the dead instance through the other, after a
 * timeout), and the store holds each record exactly once. */
Test(cloud, two_instances_one_killed_during_ingest)
{
    need_postgresql();
    ct_server2_start();
    otpca_cloud_client *c = ct_client_both(2000, 2);
    otpca_cloud_lease l;
    otpca_record r[INGEST_BATCH];
    uint8_t ids[INGEST_BATCH][16], acked[INGEST_BATCH], flagged[INGEST_BATCH];
    size_t ndone = 0;
    uint16_t rnd = 0;
    ct_open(c, &l);

    struct killer k = {ct.server, 0, 0};
    cr_assert_eq(otpca_random((uint8_t *)&rnd, sizeof rnd), OTPCA_ERR_OK);
    k.delay_ms = 200 + rnd % 501;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, killer_main, &k), 0);
    unsigned batches = 0, after = 0;
    /* Until a few batches after the kill (all through the survivor). */
    for (; batches < INGEST_BATCHES_MAX && after < 5; batches++) {
        int killed = atomic_load(&k.done);
        make_records(r, ids, INGEST_BATCH, OTPCA_REC_REJECTED, NULL);
        otpca_err e = otpca_cloud_upload(c, l.window, r, INGEST_BATCH, acked, flagged);
        cr_assert_eq(e, OTPCA_ERR_OK, "batch %u (%s the kill): %s", batches, killed ? "after" : "before",
                     otpca_strerror(e));
        for (size_t i = 0; i < INGEST_BATCH; i++)
            cr_assert(acked[i], "batch %u: record %zu not acknowledged", batches, i);
        ndone += INGEST_BATCH;
        after += killed;
    }
    pthread_join(th, NULL);
    cr_assert(atomic_load(&k.done), "the first instance was killed");
    cr_assert_eq(after, 5, "uploads went on after the kill");
    cr_expect_eq(ct_server_stop(SIGKILL), 128 + SIGKILL);
    cr_log_info("killed after %u ms; %u batches acknowledged", k.delay_ms, batches);
    cr_expect_eq(records_stored(), (int64_t)ndone, "every acknowledged record stored");
    cr_expect_eq(ct_db_int("SELECT count(DISTINCT id) FROM records", NULL, 0), (int64_t)ndone, "each once");
    cr_expect_eq(otpca_cloud_window_close(c, l.window, 0, ndone), OTPCA_ERR_OK);
    otpca_cloud_client_destroy(&c);
    cr_expect_eq(CT_CLOUD("audit verify"), 0, "the audit chain verifies");
}

/* Endpoint lists are checked when the client is made. */
Test(cloud, endpoint_lists_are_checked)
{
    otpca_cloud_client_config cfg;
    otpca_cloud_client *c = NULL;
    char long_item[300], nine[400];
    memset(long_item, 'x', sizeof long_item - 1);
    long_item[sizeof long_item - 1] = '\0';
    snprintf(nine, sizeof nine, "%s", "tcp://127.0.0.1:1");
    for (int i = 0; i < 8; i++)
        strcat(nine, ",tcp://127.0.0.1:1");
    const char *bad[] = {"", ",", "tcp://127.0.0.1:1,", "tcp://127.0.0.1:1,,tcp://127.0.0.1:2", " , tcp://x:1",
                         long_item, nine};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ct_client_config(&cfg, "mgr-01", ct_signer(), NULL, NULL, 500);
        cfg.endpoint = bad[i];
        cr_expect_eq(otpca_cloud_client_new(&cfg, &c), OTPCA_ERR_INVALID_ARG, "endpoint list '%.40s'", bad[i]);
        cr_expect_null(c);
        ct_client_config(&cfg, "mgr-01", ct_signer(), NULL, NULL, 500);
        cfg.notices = bad[i][0] ? bad[i] : ",";
        cr_expect_eq(otpca_cloud_client_new(&cfg, &c), OTPCA_ERR_INVALID_ARG, "notices list '%.40s'", bad[i]);
        cr_expect_null(c);
    }
    /* Eight, with spaces around the items, is fine; the live one answers. */
    char eight[400];
    snprintf(eight, sizeof eight, " %s ", ct.listen);
    for (int i = 0; i < 7; i++)
        strcat(eight, ", tcp://127.0.0.1:1");
    ct_client_config(&cfg, "mgr-01", ct_signer(), NULL, NULL, 3000);
    cfg.endpoint = eight;
    cfg.retries = 1;
    cr_assert_eq(otpca_cloud_client_new(&cfg, &c), OTPCA_ERR_OK);
    otpca_memzero(cfg.secret_key, sizeof cfg.secret_key);
    otpca_cloud_lease l;
    ct_open(c, &l);
    otpca_cloud_client_destroy(&c);
}
