/*
 * Unit tests for seed boxes (proto/src/seedbox.c, seedbox.h; PROTOCOL.md
 * section 5.1): the known-answer vector of tests/golden/seedbox_kat.txt
 * (computed with node's crypto module, which tests/interop/ checks again),
 * a second derivation here with wolfCrypt's wc_HKDF and AES-GCM called
 * directly on the layout the header states, round trips with software
 * keys, every way an open must fail (wrong serial, box or key, any flipped
 * byte, cuts and extensions) with the output wiped, the length limits, bad
 * ephemeral points, seal and open on one box from several threads, and a
 * SyncBatch carrying the seedkey and sealed seeds through the message
 * codec.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "otpca/common/hex.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "otpca/proto/seedbox.h"
#include "testutil.h"

#define PRE 0xa5 /* what output buffers hold before a call */
#define TAG OTPCA_SEEDBOX_TAG_LEN
#define SEALED_MAX OTPCA_SEEDBOX_SEALED_MAX

/* ------------------------------------------------------------ helpers */

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 31);
}

static const uint8_t *u8(const char *s) { return (const uint8_t *)s; }

static bool all_byte(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

/* A recipient key, a sender box to it and the receiver's box from E. */
typedef struct pair_fixture {
    otpca_p256_soft rcpt;
    otpca_seedbox tx, rx;
} pair_fixture;

static void pair_init(pair_fixture *f)
{
    cr_assert_eq(otpca_p256_soft_generate(&f->rcpt), OTPCA_ERR_OK);
    cr_assert_eq(otpca_seedbox_sender(&f->tx, f->rcpt.pub, sizeof f->rcpt.pub), OTPCA_ERR_OK);
    cr_assert_eq(otpca_seedbox_receiver(&f->rx, f->tx.eph, f->rcpt.pub, otpca_p256_soft_ecdh,
                                        &f->rcpt),
                 OTPCA_ERR_OK);
}

static void pair_free(pair_fixture *f)
{
    otpca_seedbox_wipe(&f->tx);
    otpca_seedbox_wipe(&f->rx);
    otpca_p256_soft_wipe(&f->rcpt);
}

/* Seals into out, which has exactly n + 16 bytes of room. */
static size_t seal_ok(const otpca_seedbox *b, const char *serial, const uint8_t *seed, size_t n,
                      uint8_t *out)
{
    size_t len = 0;
    otpca_err r = otpca_seedbox_seal(b, u8(serial), strlen(serial), seed, n, out,
                                     OTPCA_SEEDBOX_SEALED_LEN(n), &len);
    cr_assert_eq(r, OTPCA_ERR_OK, "seal %s (%zu bytes): %s", serial, n, otpca_errname(r));
    cr_assert_eq(len, n + TAG);
    return len;
}

/* Opens in[0..len) for serial into a PRE-filled buffer: the result, and
 * on failure checks that the first len - 16 bytes are zero (or, for the
 * refusals before anything is written, that nothing changed) and that
 * *seed_len was left alone. */
static otpca_err open_checked(const otpca_seedbox *b, const char *serial, size_t serial_len,
                              const uint8_t *in, size_t len, uint8_t out[SEALED_MAX])
{
    const size_t untouched = 12345;
    size_t got = untouched;
    memset(out, PRE, SEALED_MAX);
    otpca_err r = otpca_seedbox_open(b, u8(serial), serial_len, in, len, out, SEALED_MAX, &got);
    if (r == OTPCA_ERR_OK) {
        cr_expect_eq(got, len - TAG);
        return r;
    }
    cr_expect_eq(got, untouched, "seed_len written after %s", otpca_errname(r));
    if (r == OTPCA_ERR_DECRYPT) {
        cr_expect(all_zero(out, len - TAG), "output not wiped after DECRYPT (%zu bytes)", len);
        cr_expect(all_byte(out + len - TAG, SEALED_MAX - (len - TAG), PRE),
                  "bytes past the seed length written");
    } else {
        cr_expect(all_byte(out, SEALED_MAX, PRE), "output written before %s", otpca_errname(r));
    }
    return r;
}

/* ----------------------------------------------- the known-answer vector */

#define KAT_MAX_ENTRIES 8

typedef struct kat_entry {
    char serial[OTPCA_SEEDBOX_SERIAL_MAX + 1];
    uint8_t seed[64], okm[28], sealed[SEALED_MAX];
    size_t seed_len, sealed_len;
} kat_entry;

typedef struct kat {
    uint8_t eph_priv[32], rcpt_priv[32], rcpt_pub[65], eph_pub[65], z[32], prk[32];
    kat_entry e[KAT_MAX_ENTRIES];
    size_t n;
} kat;

static void kat_hex(const char *name, const char *v, uint8_t *out, size_t cap, size_t want,
                    size_t *len)
{
    size_t n = 0;
    otpca_err r = otpca_hex_decode(v, strlen(v), out, cap, &n);
    cr_assert_eq(r, OTPCA_ERR_OK, "seedbox_kat.txt: %s: %s", name, otpca_errname(r));
    if (want)
        cr_assert_eq(n, want, "seedbox_kat.txt: %s: %zu bytes, want %zu", name, n, want);
    if (len)
        *len = n;
}

/* tests/golden/seedbox_kat.txt, found next to this file through __FILE__. */
static void kat_load(kat *k)
{
    char path[4096], line[512];
    const char *slash = strrchr(__FILE__, '/');
    if (slash)
        snprintf(path, sizeof path, "%.*sgolden/seedbox_kat.txt", (int)(slash - __FILE__ + 1),
                 __FILE__);
    else
        snprintf(path, sizeof path, "golden/seedbox_kat.txt");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    memset(k, 0, sizeof *k);
    unsigned have = 0;
    kat_entry *e = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *v = strchr(line, ' ');
        cr_assert_not_null(v, "seedbox_kat.txt: line without a value: %s", line);
        *v++ = '\0';
        if (!strcmp(line, "eph_priv"))
            kat_hex(line, v, k->eph_priv, 32, 32, NULL), have |= 1;
        else if (!strcmp(line, "recipient_priv"))
            kat_hex(line, v, k->rcpt_priv, 32, 32, NULL), have |= 2;
        else if (!strcmp(line, "recipient_pub"))
            kat_hex(line, v, k->rcpt_pub, 65, 65, NULL), have |= 4;
        else if (!strcmp(line, "eph_pub"))
            kat_hex(line, v, k->eph_pub, 65, 65, NULL), have |= 8;
        else if (!strcmp(line, "z"))
            kat_hex(line, v, k->z, 32, 32, NULL), have |= 16;
        else if (!strcmp(line, "prk"))
            kat_hex(line, v, k->prk, 32, 32, NULL), have |= 32;
        else if (!strcmp(line, "serial")) {
            cr_assert_lt(k->n, KAT_MAX_ENTRIES);
            e = &k->e[k->n++];
            cr_assert_leq(strlen(v), OTPCA_SEEDBOX_SERIAL_MAX);
            strcpy(e->serial, v);
        } else {
            cr_assert_not_null(e, "seedbox_kat.txt: %s before the first serial", line);
            if (!strcmp(line, "seed"))
                kat_hex(line, v, e->seed, sizeof e->seed, 0, &e->seed_len);
            else if (!strcmp(line, "okm"))
                kat_hex(line, v, e->okm, 28, 28, NULL);
            else if (!strcmp(line, "sealed"))
                kat_hex(line, v, e->sealed, sizeof e->sealed, 0, &e->sealed_len);
            else
                cr_assert_fail("seedbox_kat.txt: unknown name %s", line);
        }
    }
    fclose(f);
    cr_assert_eq(have, 63, "seedbox_kat.txt: a key value is missing");
    cr_assert_geq(k->n, 4, "seedbox_kat.txt: %zu entries", k->n);
    for (size_t i = 0; i < k->n; i++)
        cr_assert_eq(k->e[i].sealed_len, k->e[i].seed_len + TAG, "entry %zu", i);
}

Test(seedbox, kat_sender_gives_the_vector)
{
    kat k;
    otpca_seedbox b;
    uint8_t out[SEALED_MAX];
    kat_load(&k);
    cr_assert_eq(otpca_seedbox_sender_kat(&b, k.eph_priv, k.rcpt_pub, 65), OTPCA_ERR_OK);
    cr_expect(memcmp(b.eph, k.eph_pub, 65) == 0, "E differs from the vector");
    cr_expect(memcmp(b.prk, k.prk, 32) == 0, "PRK differs from the vector");
    for (size_t i = 0; i < k.n; i++) {
        const kat_entry *e = &k.e[i];
        size_t len = seal_ok(&b, e->serial, e->seed, e->seed_len, out);
        cr_expect(len == e->sealed_len && memcmp(out, e->sealed, len) == 0,
                  "entry %zu (%s): sealed seed differs from the vector", i, e->serial);
    }
    /* The compressed form of R gives the same box (R enters the salt
     * uncompressed). */
    uint8_t rc[33];
    otpca_seedbox b2;
    cr_assert_eq(otpca_p256_pub_compress(k.rcpt_pub, rc), OTPCA_ERR_OK);
    cr_assert_eq(otpca_seedbox_sender_kat(&b2, k.eph_priv, rc, sizeof rc), OTPCA_ERR_OK);
    cr_expect(memcmp(&b, &b2, sizeof b) == 0, "compressed recipient key gives another box");
    otpca_seedbox_wipe(&b);
    otpca_seedbox_wipe(&b2);
}

Test(seedbox, kat_receiver_opens_the_vector)
{
    kat k;
    otpca_p256_soft rcpt;
    otpca_seedbox b;
    uint8_t out[SEALED_MAX], z[32];
    kat_load(&k);
    cr_assert_eq(otpca_p256_soft_import(&rcpt, k.rcpt_priv), OTPCA_ERR_OK);
    cr_assert(memcmp(rcpt.pub, k.rcpt_pub, 65) == 0, "recipient_pub is not recipient_priv * G");
    cr_assert_eq(otpca_p256_soft_ecdh(&rcpt, k.eph_pub, z), OTPCA_ERR_OK);
    cr_expect(memcmp(z, k.z, 32) == 0, "Z differs from the vector");
    cr_assert_eq(otpca_seedbox_receiver(&b, k.eph_pub, rcpt.pub, otpca_p256_soft_ecdh, &rcpt),
                 OTPCA_ERR_OK);
    cr_expect(memcmp(b.prk, k.prk, 32) == 0, "receiver's PRK differs from the vector");
    cr_expect(memcmp(b.eph, k.eph_pub, 65) == 0);
    for (size_t i = 0; i < k.n; i++) {
        const kat_entry *e = &k.e[i];
        cr_assert_eq(open_checked(&b, e->serial, strlen(e->serial), e->sealed, e->sealed_len, out),
                     OTPCA_ERR_OK, "entry %zu (%s)", i, e->serial);
        cr_expect(memcmp(out, e->seed, e->seed_len) == 0, "entry %zu: wrong seed", i);
    }
    otpca_seedbox_wipe(&b);
    otpca_p256_soft_wipe(&rcpt);
}

/* The same derivation with wolfCrypt's own HKDF (wc_HKDF: extract and
 * expand in one) and AES-GCM, on the layout the header states: checks
 * the vector's okm values and otpca's output for fresh boxes. */
static void spec_seal(const uint8_t z[32], const uint8_t e[65], const uint8_t r[65],
                      const char *serial, const uint8_t *seed, size_t n, uint8_t okm[28],
                      uint8_t *out)
{
    uint8_t salt[130], info[14 + 64];
    size_t sl = strlen(serial);
    memcpy(salt, e, 65);
    memcpy(salt + 65, r, 65);
    memcpy(info, "otpca-seed-v1 ", 14);
    memcpy(info + 14, serial, sl);
    cr_assert_eq(wc_HKDF(WC_SHA256, z, 32, salt, sizeof salt, info, (word32)(14 + sl), okm, 28), 0);
    Aes aes;
    cr_assert_eq(wc_AesInit(&aes, NULL, INVALID_DEVID), 0);
    cr_assert_eq(wc_AesGcmSetKey(&aes, okm, 16), 0);
    cr_assert_eq(wc_AesGcmEncrypt(&aes, out, seed, (word32)n, okm + 16, 12, out + n, 16, u8(serial),
                                  (word32)sl),
                 0);
    wc_AesFree(&aes);
}

Test(seedbox, matches_wolfcrypt_hkdf_and_gcm_by_the_spec)
{
    kat k;
    uint8_t okm[28], want[SEALED_MAX], got[SEALED_MAX], z[32], seed[64];
    kat_load(&k);
    for (size_t i = 0; i < k.n; i++) {
        spec_seal(k.z, k.eph_pub, k.rcpt_pub, k.e[i].serial, k.e[i].seed, k.e[i].seed_len, okm, want);
        cr_expect(memcmp(okm, k.e[i].okm, 28) == 0, "entry %zu: okm", i);
        cr_expect(memcmp(want, k.e[i].sealed, k.e[i].sealed_len) == 0, "entry %zu: sealed", i);
    }
    for (int round = 0; round < 4; round++) {
        pair_fixture f;
        pair_init(&f);
        cr_assert_eq(otpca_p256_soft_ecdh(&f.rcpt, f.tx.eph, z), OTPCA_ERR_OK);
        for (size_t n = OTPCA_SEEDBOX_SEED_MIN; n <= OTPCA_SEEDBOX_SEED_MAX; n += 12) {
            char serial[32];
            snprintf(serial, sizeof serial, "node-%06zu", n * 7 + (size_t)round);
            fill(seed, n, (uint8_t)n);
            spec_seal(z, f.tx.eph, f.rcpt.pub, serial, seed, n, okm, want);
            seal_ok(&f.tx, serial, seed, n, got);
            cr_expect(memcmp(got, want, n + TAG) == 0, "round %d, %zu-byte seed", round, n);
        }
        pair_free(&f);
    }
}

/* ------------------------------------------------------------ round trips */

Test(seedbox, round_trip_every_seed_length_both_key_forms)
{
    for (int compressed = 0; compressed < 2; compressed++) {
        otpca_p256_soft rcpt;
        otpca_seedbox tx, rx;
        uint8_t rc[33], seed[64], sealed[SEALED_MAX], again[SEALED_MAX], out[SEALED_MAX];
        cr_assert_eq(otpca_p256_soft_generate(&rcpt), OTPCA_ERR_OK);
        cr_assert_eq(otpca_p256_pub_compress(rcpt.pub, rc), OTPCA_ERR_OK);
        cr_assert_eq(otpca_seedbox_sender(&tx, compressed ? rc : rcpt.pub, compressed ? 33 : 65),
                     OTPCA_ERR_OK);
        cr_expect_eq(tx.eph[0], 0x04, "E is uncompressed");
        cr_assert_eq(otpca_seedbox_receiver(&rx, tx.eph, rcpt.pub, otpca_p256_soft_ecdh, &rcpt),
                     OTPCA_ERR_OK);
        cr_expect(memcmp(&tx, &rx, sizeof tx) == 0, "sender and receiver boxes differ");
        for (size_t n = OTPCA_SEEDBOX_SEED_MIN; n <= OTPCA_SEEDBOX_SEED_MAX; n++) {
            fill(seed, n, (uint8_t)(n + compressed));
            size_t len = seal_ok(&tx, "OTP-0000001", seed, n, sealed);
            /* Deterministic: the same box, serial and seed seal the same. */
            seal_ok(&tx, "OTP-0000001", seed, n, again);
            cr_expect(memcmp(sealed, again, len) == 0, "%zu: two seals differ", n);
            cr_expect(memcmp(sealed, seed, n) != 0, "%zu: ciphertext equals the seed", n);
            cr_assert_eq(open_checked(&rx, "OTP-0000001", 11, sealed, len, out), OTPCA_ERR_OK,
                         "%zu-byte seed", n);
            cr_expect(memcmp(out, seed, n) == 0, "%zu-byte seed came back changed", n);
        }
        otpca_seedbox_wipe(&tx);
        otpca_seedbox_wipe(&rx);
        otpca_p256_soft_wipe(&rcpt);
    }
}

Test(seedbox, open_into_exactly_sized_buffer)
{
    pair_fixture f;
    uint8_t seed[20], sealed[SEALED_MAX], out[20];
    size_t len, got = 0;
    pair_init(&f);
    fill(seed, sizeof seed, 3);
    len = seal_ok(&f.tx, "x", seed, sizeof seed, sealed);
    cr_assert_eq(otpca_seedbox_open(&f.rx, u8("x"), 1, sealed, len, out, sizeof out, &got),
                 OTPCA_ERR_OK);
    cr_expect_eq(got, 20);
    cr_expect(memcmp(out, seed, 20) == 0);
    /* Seal exactly into seed length + 16. */
    uint8_t exact[36];
    cr_expect_eq(otpca_seedbox_seal(&f.tx, u8("x"), 1, seed, 20, exact, sizeof exact, &got),
                 OTPCA_ERR_OK);
    cr_expect(memcmp(exact, sealed, 36) == 0);
    pair_free(&f);
}

/* A snapshot chunk: many serials in one box, all distinct ciphertexts
 * for one seed (every (K, N) differs), every one opens with its serial
 * only. */
Test(seedbox, many_serials_in_one_box)
{
    enum { N = 2000 };
    static uint8_t sealed[N][36];
    pair_fixture f;
    uint8_t seed[20], out[SEALED_MAX];
    char serial[32];
    pair_init(&f);
    fill(seed, sizeof seed, 0x42); /* the same seed for every device */
    for (unsigned i = 0; i < N; i++) {
        snprintf(serial, sizeof serial, "node-%06u", i);
        seal_ok(&f.tx, serial, seed, sizeof seed, sealed[i]);
    }
    size_t same = 0;
    for (unsigned i = 0; i < N; i++)
        for (unsigned j = i + 1; j < N; j++)
            if (memcmp(sealed[i], sealed[j], 16) == 0)
                same++;
    cr_expect_eq(same, 0, "%zu pairs of serials share ciphertext blocks", same);
    for (unsigned i = 0; i < N; i++) {
        snprintf(serial, sizeof serial, "node-%06u", i);
        cr_assert_eq(open_checked(&f.rx, serial, strlen(serial), sealed[i], 36, out), OTPCA_ERR_OK,
                     "%s", serial);
        cr_expect(memcmp(out, seed, sizeof seed) == 0);
        /* ... and not with its neighbour's serial. */
        snprintf(serial, sizeof serial, "node-%06u", (i + 1) % N);
        cr_expect_eq(open_checked(&f.rx, serial, strlen(serial), sealed[i], 36, out),
                     OTPCA_ERR_DECRYPT, "entry %u opened with %s", i, serial);
    }
    pair_free(&f);
}

Test(seedbox, every_sender_box_is_fresh)
{
    otpca_p256_soft rcpt;
    otpca_seedbox a, b;
    uint8_t seed[20], sa[36], sb[36];
    cr_assert_eq(otpca_p256_soft_generate(&rcpt), OTPCA_ERR_OK);
    cr_assert_eq(otpca_seedbox_sender(&a, rcpt.pub, 65), OTPCA_ERR_OK);
    cr_assert_eq(otpca_seedbox_sender(&b, rcpt.pub, 65), OTPCA_ERR_OK);
    cr_expect(memcmp(a.eph, b.eph, 65) != 0, "two batches share E");
    cr_expect(memcmp(a.prk, b.prk, 32) != 0, "two batches share PRK");
    fill(seed, sizeof seed, 9);
    seal_ok(&a, "OTP-0000001", seed, sizeof seed, sa);
    seal_ok(&b, "OTP-0000001", seed, sizeof seed, sb);
    cr_expect(memcmp(sa, sb, 36) != 0, "one serial and seed seal the same in two batches");
    otpca_seedbox_wipe(&a);
    otpca_seedbox_wipe(&b);
    otpca_p256_soft_wipe(&rcpt);
}

/* ------------------------------------------------- opens that must fail */

Test(seedbox, wrong_serial_is_decrypt_and_wiped)
{
    pair_fixture f;
    uint8_t seed[32], sealed[SEALED_MAX], out[SEALED_MAX];
    pair_init(&f);
    fill(seed, sizeof seed, 5);
    size_t len = seal_ok(&f.tx, "OTP-0000001", seed, sizeof seed, sealed);
    static const char *const wrong[] = {"OTP-0000002", "OTP-000000", "OTP-00000011", "otp-0000001",
                                        "OTP-0000001 ", "1000000-PTO", "O"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        cr_expect_eq(open_checked(&f.rx, wrong[i], strlen(wrong[i]), sealed, len, out),
                     OTPCA_ERR_DECRYPT, "opened with serial '%s'", wrong[i]);
    /* The serial's bytes count, not a C string: "OTP-0000001" with its NUL. */
    cr_expect_eq(open_checked(&f.rx, "OTP-0000001", 12, sealed, len, out), OTPCA_ERR_DECRYPT);
    pair_free(&f);
}

Test(seedbox, every_flipped_byte_is_decrypt_and_wiped)
{
    pair_fixture f;
    uint8_t seed[20], sealed[SEALED_MAX], out[SEALED_MAX];
    pair_init(&f);
    fill(seed, sizeof seed, 6);
    size_t len = seal_ok(&f.tx, "node-000007", seed, sizeof seed, sealed);
    static const uint8_t flips[] = {0x01, 0x80, 0xff};
    size_t bad = 0;
    for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < sizeof flips; k++) {
            sealed[i] ^= flips[k];
            if (open_checked(&f.rx, "node-000007", 11, sealed, len, out) != OTPCA_ERR_DECRYPT)
                bad++;
            sealed[i] ^= flips[k];
        }
    cr_expect_eq(bad, 0, "%zu flipped bytes were not DECRYPT", bad);
    cr_expect_eq(open_checked(&f.rx, "node-000007", 11, sealed, len, out), OTPCA_ERR_OK);
    pair_free(&f);
}

Test(seedbox, wrong_box_is_decrypt)
{
    pair_fixture f, g;
    otpca_seedbox wrong_key;
    uint8_t seed[20], sealed[SEALED_MAX], out[SEALED_MAX];
    pair_init(&f);
    pair_init(&g);
    fill(seed, sizeof seed, 7);
    size_t len = seal_ok(&f.tx, "node-000001", seed, sizeof seed, sealed);
    /* Another batch's box to another key; another batch's box to the same
     * key; the right E opened with another private key (and its own or
     * the right public key in the salt). */
    cr_expect_eq(open_checked(&g.rx, "node-000001", 11, sealed, len, out), OTPCA_ERR_DECRYPT);
    otpca_seedbox other;
    cr_assert_eq(otpca_seedbox_sender(&other, f.rcpt.pub, 65), OTPCA_ERR_OK);
    cr_expect_eq(open_checked(&other, "node-000001", 11, sealed, len, out), OTPCA_ERR_DECRYPT);
    cr_assert_eq(otpca_seedbox_receiver(&wrong_key, f.tx.eph, g.rcpt.pub, otpca_p256_soft_ecdh,
                                        &g.rcpt),
                 OTPCA_ERR_OK);
    cr_expect_eq(open_checked(&wrong_key, "node-000001", 11, sealed, len, out), OTPCA_ERR_DECRYPT);
    cr_assert_eq(otpca_seedbox_receiver(&wrong_key, f.tx.eph, f.rcpt.pub, otpca_p256_soft_ecdh,
                                        &g.rcpt),
                 OTPCA_ERR_OK);
    cr_expect_eq(open_checked(&wrong_key, "node-000001", 11, sealed, len, out), OTPCA_ERR_DECRYPT);
    /* The receiver's salt holds R: the right ECDH with the wrong R fails. */
    cr_assert_eq(otpca_seedbox_receiver(&wrong_key, f.tx.eph, g.rcpt.pub, otpca_p256_soft_ecdh,
                                        &f.rcpt),
                 OTPCA_ERR_OK);
    cr_expect_eq(open_checked(&wrong_key, "node-000001", 11, sealed, len, out), OTPCA_ERR_DECRYPT);
    /* A wiped box opens nothing. */
    otpca_seedbox wiped = f.rx;
    otpca_seedbox_wipe(&wiped);
    cr_expect(all_zero(&wiped, sizeof wiped), "wipe left bytes");
    cr_expect_eq(open_checked(&wiped, "node-000001", 11, sealed, len, out), OTPCA_ERR_DECRYPT);
    otpca_seedbox_wipe(NULL); /* accepted */
    otpca_seedbox_wipe(&other);
    otpca_seedbox_wipe(&wrong_key);
    pair_free(&f);
    pair_free(&g);
}

/* Cut or extended: DECRYPT (wiped) while 32..80 bytes remain, PROTO_VALUE
 * (nothing written) outside, as a malformed ECIES envelope. */
Test(seedbox, truncated_or_extended_is_refused)
{
    pair_fixture f;
    uint8_t seed[64], sealed[SEALED_MAX + 8], out[SEALED_MAX];
    pair_init(&f);
    fill(seed, sizeof seed, 8);
    for (size_t n = 16; n <= 64; n += 4) {
        size_t len = seal_ok(&f.tx, "node-000009", seed, n, sealed);
        for (size_t cut = 0; cut < len; cut++) {
            otpca_err want = cut >= OTPCA_SEEDBOX_SEALED_MIN ? OTPCA_ERR_DECRYPT : OTPCA_ERR_PROTO_VALUE;
            cr_expect_eq(open_checked(&f.rx, "node-000009", 11, sealed, cut, out), want,
                         "%zu-byte sealed seed cut to %zu", len, cut);
        }
        /* The tag moved by one byte: the first or last byte dropped. */
        if (len > OTPCA_SEEDBOX_SEALED_MIN)
            cr_expect_eq(open_checked(&f.rx, "node-000009", 11, sealed + 1, len - 1, out),
                         OTPCA_ERR_DECRYPT);
        sealed[len] = 0x00;
        otpca_err want = len + 1 <= SEALED_MAX ? OTPCA_ERR_DECRYPT : OTPCA_ERR_PROTO_VALUE;
        cr_expect_eq(open_checked(&f.rx, "node-000009", 11, sealed, len + 1, out), want,
                     "%zu-byte sealed seed with one byte more", len);
    }
    pair_free(&f);
}

/* ------------------------------------------------------- keys and points */

static int ecdh_calls;

static otpca_err counting_ecdh(void *ctx, const uint8_t peer[OTPCA_P256_PUB_LEN], uint8_t z[32])
{
    ecdh_calls++;
    return otpca_p256_soft_ecdh(ctx, peer, z);
}

static otpca_err failing_ecdh(void *ctx, const uint8_t peer[OTPCA_P256_PUB_LEN], uint8_t z[32])
{
    (void)ctx;
    (void)peer;
    memset(z, 0x5a, 32); /* half-written output must not leak into a box */
    ecdh_calls++;
    return OTPCA_ERR_PKCS11;
}

Test(seedbox, receiver_refuses_bad_ephemeral_points_before_the_ecdh)
{
    pair_fixture f;
    uint8_t bad[65];
    pair_init(&f);
    for (int k = 0; k < 7; k++) {
        memcpy(bad, f.tx.eph, 65);
        const char *what = "";
        switch (k) {
        case 0:
            bad[64] ^= 0x01;
            what = "y changed (off the curve)";
            break;
        case 1:
            bad[10] ^= 0x40;
            what = "x changed";
            break;
        case 2:
            bad[0] = 0x02;
            what = "prefix 02";
            break;
        case 3:
            bad[0] = 0x00;
            what = "prefix 00";
            break;
        case 4:
            memset(bad + 1, 0, 64);
            what = "(0, 0)";
            break;
        case 5:
            memset(bad + 1, 0xff, 64);
            what = "coordinates above p";
            break;
        default:
            bad[0] = 0x06; /* hybrid form, which SEC1 allows and the protocol does not */
            what = "prefix 06";
        }
        otpca_seedbox b;
        memset(&b, PRE, sizeof b);
        ecdh_calls = 0;
        cr_expect_eq(otpca_seedbox_receiver(&b, bad, f.rcpt.pub, counting_ecdh, &f.rcpt),
                     OTPCA_ERR_BAD_KEY, "%s", what);
        cr_expect_eq(ecdh_calls, 0, "%s: ECDH ran", what);
        cr_expect(all_zero(&b, sizeof b), "%s: box not zero", what);
        /* The same defects in the receiver's own key. */
        memset(&b, PRE, sizeof b);
        cr_expect_eq(otpca_seedbox_receiver(&b, f.tx.eph, bad, counting_ecdh, &f.rcpt),
                     OTPCA_ERR_BAD_KEY, "own key: %s", what);
        cr_expect_eq(ecdh_calls, 0);
        cr_expect(all_zero(&b, sizeof b));
    }
    pair_free(&f);
}

Test(seedbox, receiver_passes_an_ecdh_error_on_and_keeps_nothing)
{
    pair_fixture f;
    otpca_seedbox b;
    pair_init(&f);
    memset(&b, PRE, sizeof b);
    ecdh_calls = 0;
    cr_expect_eq(otpca_seedbox_receiver(&b, f.tx.eph, f.rcpt.pub, failing_ecdh, NULL),
                 OTPCA_ERR_PKCS11);
    cr_expect_eq(ecdh_calls, 1);
    cr_expect(all_zero(&b, sizeof b), "box not zero after an ECDH error");
    cr_expect_eq(otpca_seedbox_receiver(&b, f.tx.eph, f.rcpt.pub, NULL, NULL),
                 OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_receiver(NULL, f.tx.eph, f.rcpt.pub, otpca_p256_soft_ecdh, &f.rcpt),
                 OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_receiver(&b, NULL, f.rcpt.pub, otpca_p256_soft_ecdh, &f.rcpt),
                 OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_receiver(&b, f.tx.eph, NULL, otpca_p256_soft_ecdh, &f.rcpt),
                 OTPCA_ERR_INVALID_ARG);
    pair_free(&f);
}

Test(seedbox, sender_refuses_bad_recipient_keys)
{
    otpca_p256_soft rcpt;
    otpca_seedbox b;
    uint8_t k[66];
    cr_assert_eq(otpca_p256_soft_generate(&rcpt), OTPCA_ERR_OK);
    memcpy(k, rcpt.pub, 65);
    k[65] = 0;
    static const size_t lens[] = {0, 1, 32, 33, 64, 66};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        memset(&b, PRE, sizeof b);
        cr_expect_eq(otpca_seedbox_sender(&b, k, lens[i]), OTPCA_ERR_BAD_KEY, "%zu bytes", lens[i]);
        cr_expect(all_zero(&b, sizeof b));
    }
    k[64] ^= 1;
    memset(&b, PRE, sizeof b);
    cr_expect_eq(otpca_seedbox_sender(&b, k, 65), OTPCA_ERR_BAD_KEY, "off the curve");
    cr_expect(all_zero(&b, sizeof b));
    cr_expect_eq(otpca_seedbox_sender(&b, NULL, 65), OTPCA_ERR_BAD_KEY);
    cr_expect_eq(otpca_seedbox_sender(NULL, rcpt.pub, 65), OTPCA_ERR_INVALID_ARG);
    /* The test-only entry point checks the same, and its scalar. */
    uint8_t zero[32] = {0}, order[32];
    static const char n_hex[] = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
    size_t ol;
    cr_assert_eq(otpca_hex_decode(n_hex, 64, order, sizeof order, &ol), OTPCA_ERR_OK);
    cr_expect_eq(otpca_seedbox_sender_kat(&b, zero, rcpt.pub, 65), OTPCA_ERR_BAD_KEY, "scalar 0");
    cr_expect_eq(otpca_seedbox_sender_kat(&b, order, rcpt.pub, 65), OTPCA_ERR_BAD_KEY, "scalar n");
    cr_expect(all_zero(&b, sizeof b));
    cr_expect_eq(otpca_seedbox_sender_kat(&b, rcpt.priv, k, 65), OTPCA_ERR_BAD_KEY);
    cr_expect_eq(otpca_seedbox_sender_kat(&b, NULL, rcpt.pub, 65), OTPCA_ERR_INVALID_ARG);
    otpca_p256_soft_wipe(&rcpt);
}

/* ------------------------------------------------------------ limits */

Test(seedbox, seed_and_serial_length_limits)
{
    pair_fixture f;
    uint8_t seed[66], out[SEALED_MAX + 2], opened[SEALED_MAX];
    char serial[66];
    size_t len;
    pair_init(&f);
    fill(seed, sizeof seed, 1);
    memset(serial, 'S', sizeof serial);
    /* Seeds: 16..64 bytes. */
    static const struct {
        size_t n;
        otpca_err want;
    } seeds[] = {{0, OTPCA_ERR_INVALID_ARG},  {1, OTPCA_ERR_INVALID_ARG}, {15, OTPCA_ERR_INVALID_ARG},
                 {16, OTPCA_ERR_OK},           {64, OTPCA_ERR_OK},         {65, OTPCA_ERR_INVALID_ARG},
                 {66, OTPCA_ERR_INVALID_ARG}};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        len = 0;
        cr_expect_eq(otpca_seedbox_seal(&f.tx, u8("s"), 1, seed, seeds[i].n, out, sizeof out, &len),
                     seeds[i].want, "%zu-byte seed", seeds[i].n);
        if (seeds[i].want == OTPCA_ERR_OK)
            cr_expect_eq(len, seeds[i].n + TAG);
    }
    /* Serials: 1..64 bytes, in seal and open. */
    len = seal_ok(&f.tx, "s", seed, 20, out);
    static const struct {
        size_t n;
        otpca_err want;
    } serials[] = {{0, OTPCA_ERR_INVALID_ARG}, {1, OTPCA_ERR_OK}, {64, OTPCA_ERR_OK},
                   {65, OTPCA_ERR_INVALID_ARG}};
    for (size_t i = 0; i < sizeof serials / sizeof serials[0]; i++) {
        size_t l2 = 0, got = 0;
        otpca_err r = otpca_seedbox_seal(&f.tx, u8(serial), serials[i].n, seed, 20, out, sizeof out, &l2);
        cr_expect_eq(r, serials[i].want, "seal, %zu-byte serial", serials[i].n);
        if (r == OTPCA_ERR_OK)
            cr_expect_eq(otpca_seedbox_open(&f.rx, u8(serial), serials[i].n, out, l2, opened,
                                            sizeof opened, &got),
                         OTPCA_ERR_OK, "open, %zu-byte serial", serials[i].n);
        else
            cr_expect_eq(open_checked(&f.rx, serial, serials[i].n, out, 36, opened),
                         OTPCA_ERR_INVALID_ARG, "open, %zu-byte serial", serials[i].n);
    }
    pair_free(&f);
}

Test(seedbox, small_buffers_and_null_arguments)
{
    pair_fixture f;
    uint8_t seed[20], sealed[SEALED_MAX], out[SEALED_MAX];
    size_t len, got;
    pair_init(&f);
    fill(seed, sizeof seed, 2);
    len = seal_ok(&f.tx, "node-1", seed, sizeof seed, sealed);
    /* seal: one byte short of seed + 16, and every capacity below. */
    for (size_t cap = 0; cap < len; cap++) {
        memset(out, PRE, sizeof out);
        got = 777;
        cr_expect_eq(otpca_seedbox_seal(&f.tx, u8("node-1"), 6, seed, 20, out, cap, &got),
                     OTPCA_ERR_BUFFER_TOO_SMALL, "seal cap %zu", cap);
        cr_expect(all_byte(out, sizeof out, PRE) && got == 777, "seal cap %zu wrote", cap);
    }
    /* open: room for one byte less than the seed. */
    for (size_t cap = 0; cap < sizeof seed; cap++) {
        memset(out, PRE, sizeof out);
        got = 777;
        cr_expect_eq(otpca_seedbox_open(&f.rx, u8("node-1"), 6, sealed, len, out, cap, &got),
                     OTPCA_ERR_BUFFER_TOO_SMALL, "open cap %zu", cap);
        cr_expect(all_byte(out, sizeof out, PRE) && got == 777, "open cap %zu wrote", cap);
    }
    cr_expect_eq(otpca_seedbox_open(&f.rx, u8("node-1"), 6, sealed, len, NULL, 64, &got),
                 OTPCA_ERR_BUFFER_TOO_SMALL);
    /* NULL pointers. */
    cr_expect_eq(otpca_seedbox_seal(NULL, u8("n"), 1, seed, 20, out, sizeof out, &got), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_seal(&f.tx, NULL, 1, seed, 20, out, sizeof out, &got), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_seal(&f.tx, u8("n"), 1, NULL, 20, out, sizeof out, &got), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_seal(&f.tx, u8("n"), 1, seed, 20, NULL, sizeof out, &got), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_seal(&f.tx, u8("n"), 1, seed, 20, out, sizeof out, NULL), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_open(NULL, u8("node-1"), 6, sealed, len, out, sizeof out, &got), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_open(&f.rx, NULL, 6, sealed, len, out, sizeof out, &got), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_open(&f.rx, u8("node-1"), 6, NULL, len, out, sizeof out, &got), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seedbox_open(&f.rx, u8("node-1"), 6, sealed, len, out, sizeof out, NULL), OTPCA_ERR_INVALID_ARG);
    pair_free(&f);
}

/* ------------------------------------------------------------ threads */

/* The cloud seals on two threads with one box; the manager may open on
 * several. Each thread seals and opens the same entries as the main
 * thread did alone and must get the same bytes. */
enum { T_THREADS = 4, T_ENTRIES = 400, T_ROUNDS = 5 };

typedef struct thread_job {
    const otpca_seedbox *tx, *rx;
    const uint8_t (*want)[36];
    unsigned bad;
} thread_job;

static void entry_of(unsigned i, char serial[32], uint8_t seed[20])
{
    snprintf(serial, 32, "node-%06u", i);
    fill(seed, 20, (uint8_t)(i * 13));
}

static void *thread_main(void *arg)
{
    thread_job *j = arg;
    char serial[32];
    uint8_t seed[20], sealed[36], out[SEALED_MAX];
    for (unsigned r = 0; r < T_ROUNDS; r++)
        for (unsigned i = 0; i < T_ENTRIES; i++) {
            size_t len = 0, got = 0;
            entry_of(i, serial, seed);
            if (otpca_seedbox_seal(j->tx, u8(serial), strlen(serial), seed, 20, sealed,
                                   sizeof sealed, &len) != OTPCA_ERR_OK ||
                len != 36 || memcmp(sealed, j->want[i], 36) != 0)
                j->bad++;
            if (otpca_seedbox_open(j->rx, u8(serial), strlen(serial), j->want[i], 36, out,
                                   sizeof out, &got) != OTPCA_ERR_OK ||
                got != 20 || memcmp(out, seed, 20) != 0)
                j->bad++;
        }
    return NULL;
}

Test(seedbox, seal_and_open_on_one_box_from_several_threads)
{
    static uint8_t want[T_ENTRIES][36];
    pair_fixture f;
    char serial[32];
    uint8_t seed[20];
    pair_init(&f);
    for (unsigned i = 0; i < T_ENTRIES; i++) {
        entry_of(i, serial, seed);
        seal_ok(&f.tx, serial, seed, 20, want[i]);
    }
    const otpca_seedbox tx = f.tx, rx = f.rx;
    pthread_t th[T_THREADS];
    thread_job jobs[T_THREADS];
    for (unsigned t = 0; t < T_THREADS; t++) {
        jobs[t] = (thread_job){&tx, &rx, (const uint8_t(*)[36])want, 0};
        cr_assert_eq(pthread_create(&th[t], NULL, thread_main, &jobs[t]), 0);
    }
    for (unsigned t = 0; t < T_THREADS; t++) {
        cr_assert_eq(pthread_join(th[t], NULL), 0);
        cr_expect_eq(jobs[t].bad, 0, "thread %u: %u wrong results", t, jobs[t].bad);
    }
    cr_expect(memcmp(&tx, &f.tx, sizeof tx) == 0 && memcmp(&rx, &f.rx, sizeof rx) == 0,
              "a box changed under seal/open");
    pair_free(&f);
}

/* ------------------------------------------------- through the codec */

/* What the cloud and the manager do with a SyncBatch: seal each entry's
 * seed, put E in key 9, sign nothing (msg tests do); decode, rebuild the
 * box from the decoded seedkey, open every decoded entry. */
Test(seedbox, sync_batch_carries_the_seedkey_and_every_seed_opens)
{
    enum { N = 64 };
    static otpca_device_entry ents[N];
    static char serials[N][16];
    static uint8_t seeds[N][32], sealed[N][48], buf[65536];
    uint8_t window[16], out[SEALED_MAX];
    pair_fixture f;
    pair_init(&f);
    fill(window, sizeof window, 0x20);
    for (unsigned i = 0; i < N; i++) {
        snprintf(serials[i], sizeof serials[i], "node-%06u", i + 1);
        size_t n = 16 + i % 17; /* 16..32 bytes */
        fill(seeds[i], n, (uint8_t)i);
        memset(&ents[i], 0, sizeof ents[i]);
        ents[i].serial = (otpca_buf){u8(serials[i]), strlen(serials[i])};
        ents[i].seq = 100 + i;
        ents[i].state = OTPCA_DEV_APPROVED;
        if (i % 5 != 4) { /* some entries carry no seed */
            size_t len = seal_ok(&f.tx, serials[i], seeds[i], n, sealed[i]);
            ents[i].seed = (otpca_buf){sealed[i], len};
        }
    }
    otpca_sync_batch sb = {0};
    sb.window = (otpca_buf){window, 16};
    sb.kind = OTPCA_SYNC_SNAPSHOT;
    sb.to = 100 + N;
    sb.entries = (otpca_list){ents, N, {NULL, 0}};
    sb.seedkey = (otpca_buf){f.tx.eph, 65};
    size_t len = 0;
    cr_assert_eq(otpca_msg_encode(&otpca_desc_sync_batch, &sb, buf, sizeof buf, &len), OTPCA_ERR_OK);

    otpca_sync_batch g;
    cr_assert_eq(otpca_msg_decode(&otpca_desc_sync_batch, buf, len, &g), OTPCA_ERR_OK);
    cr_assert_not_null(g.seedkey.p);
    cr_assert_eq(g.seedkey.len, 65);
    otpca_seedbox rx;
    cr_assert_eq(otpca_seedbox_receiver(&rx, g.seedkey.p, f.rcpt.pub, otpca_p256_soft_ecdh, &f.rcpt),
                 OTPCA_ERR_OK);
    otpca_list_iter it;
    otpca_device_entry e;
    unsigned i = 0, opened = 0;
    otpca_list_iter_init(&it, &g.entries);
    while (otpca_list_next(&it, &otpca_desc_device_entry, &e) == OTPCA_ERR_OK) {
        cr_assert_lt(i, N);
        if (i % 5 != 4) {
            cr_assert_not_null(e.seed.p, "entry %u lost its seed", i);
            cr_assert_eq(open_checked(&rx, (const char *)e.serial.p, e.serial.len, e.seed.p,
                                      e.seed.len, out),
                         OTPCA_ERR_OK, "entry %u", i);
            cr_expect(memcmp(out, seeds[i], e.seed.len - TAG) == 0, "entry %u: wrong seed", i);
            opened++;
        } else {
            cr_expect_null(e.seed.p);
        }
        i++;
    }
    cr_expect_eq(i, N);
    cr_expect_eq(opened, N - N / 5);
    /* Without key 9 the same batch is not encoded. */
    sb.seedkey = (otpca_buf){NULL, 0};
    cr_expect_eq(otpca_msg_encode(&otpca_desc_sync_batch, &sb, buf, sizeof buf, &len),
                 OTPCA_ERR_PROTO_MISSING);
    otpca_seedbox_wipe(&rx);
    pair_free(&f);
}
