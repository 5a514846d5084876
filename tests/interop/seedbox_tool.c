/*
 * seedbox_tool: otpca's seed boxes (proto/include/otpca/proto/seedbox.h)
 * on the command line, for the interop test (seedbox_interop.js) that
 * checks them against node's crypto module.
 *
 *   seedbox_tool seal EPHHEX RCPTPUBHEX [SERIAL SEEDHEX]...
 *       the box of the ephemeral scalar EPHHEX (otpca_seedbox_sender_kat)
 *       to the recipient key RCPTPUBHEX (33 or 65 bytes): a line "E PRK",
 *       then one line per entry, the sealed seed
 *   seedbox_tool fresh RCPTPUBHEX [SERIAL SEEDHEX]...
 *       the same with a fresh ephemeral key (otpca_seedbox_sender): a line
 *       "E", then the sealed seeds
 *   seedbox_tool open RCPTPRIVHEX EHEX [SERIAL SEALEDHEX]...
 *       the receiver's box (otpca_seedbox_receiver, the private scalar as
 *       an otpca software key behind otpca_p256_soft_ecdh), then one line
 *       per entry, the seed; exit 1 at the first refusal (the reason on
 *       stderr)
 *
 * SERIAL is taken as its bytes. Usage errors, bad hex and failures to seal
 * exit 2, so that a test expecting a refusal (1) cannot pass on a typo.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otpca/common/err.h"
#include "otpca/common/hex.h"
#include "otpca/proto/p256.h"
#include "otpca/proto/seedbox.h"

enum { EXIT_REJECTED = 1, EXIT_USAGE = 2 };

#define HEX_MAX 128 /* bytes of any hex argument */

static int usage(void)
{
    fputs("usage: seedbox_tool seal EPHHEX RCPTPUBHEX [SERIAL SEEDHEX]...\n"
          "       seedbox_tool fresh RCPTPUBHEX [SERIAL SEEDHEX]...\n"
          "       seedbox_tool open RCPTPRIVHEX EHEX [SERIAL SEALEDHEX]...\n",
          stderr);
    return EXIT_USAGE;
}

static int unhex(const char *what, const char *s, uint8_t out[HEX_MAX], size_t *len)
{
    if (otpca_hex_decode(s, strlen(s), out, HEX_MAX, len) != OTPCA_ERR_OK) {
        fprintf(stderr, "seedbox_tool: %s is not hex of at most %d bytes\n", what, HEX_MAX);
        return EXIT_USAGE;
    }
    return 0;
}

static void puthex(const uint8_t *p, size_t len, const char *end)
{
    for (size_t i = 0; i < len; i++)
        printf("%02x", p[i]);
    fputs(end, stdout);
}

static int fail(const char *what, otpca_err err, int code)
{
    fprintf(stderr, "seedbox_tool: %s: %s (%s)\n", what, otpca_errname(err), otpca_strerror(err));
    return code;
}

/* Seals every SERIAL SEEDHEX pair of argv in b, one line each. */
static int seal_entries(const otpca_seedbox *b, int argc, char **argv)
{
    for (int i = 0; i + 1 < argc; i += 2) {
        uint8_t seed[HEX_MAX], out[OTPCA_SEEDBOX_SEALED_MAX];
        size_t seed_len, len;
        int rc = unhex("SEEDHEX", argv[i + 1], seed, &seed_len);
        if (rc)
            return rc;
        otpca_err err = otpca_seedbox_seal(b, (const uint8_t *)argv[i], strlen(argv[i]), seed, seed_len,
                                           out, sizeof out, &len);
        if (err)
            return fail("seal", err, EXIT_USAGE);
        puthex(out, len, "\n");
    }
    return 0;
}

static int cmd_seal(int argc, char **argv, int fresh)
{
    uint8_t eph[HEX_MAX], rcpt[HEX_MAX];
    size_t eph_len = 0, rcpt_len;
    otpca_seedbox b;
    otpca_err err;
    int rc;
    if (!fresh && (rc = unhex("EPHHEX", *argv++, eph, &eph_len)))
        return rc;
    if (!fresh)
        argc--;
    if ((rc = unhex("RCPTPUBHEX", *argv++, rcpt, &rcpt_len)))
        return rc;
    argc--;
    if (argc % 2)
        return usage();
    if (!fresh && eph_len != OTPCA_P256_PRIV_LEN) {
        fputs("seedbox_tool: EPHHEX must be 32 bytes\n", stderr);
        return EXIT_USAGE;
    }
    err = fresh ? otpca_seedbox_sender(&b, rcpt, rcpt_len)
                : otpca_seedbox_sender_kat(&b, eph, rcpt, rcpt_len);
    if (err)
        return fail("sender", err, EXIT_USAGE);
    puthex(b.eph, sizeof b.eph, fresh ? "\n" : " ");
    if (!fresh)
        puthex(b.prk, sizeof b.prk, "\n");
    rc = seal_entries(&b, argc, argv);
    otpca_seedbox_wipe(&b);
    return rc;
}

static int cmd_open(int argc, char **argv)
{
    uint8_t priv[HEX_MAX], eph[HEX_MAX];
    size_t priv_len, eph_len;
    otpca_p256_soft key;
    otpca_seedbox b;
    otpca_err err;
    int rc;
    if ((rc = unhex("RCPTPRIVHEX", argv[0], priv, &priv_len)) || (rc = unhex("EHEX", argv[1], eph, &eph_len)))
        return rc;
    if ((argc - 2) % 2)
        return usage();
    if (priv_len != OTPCA_P256_PRIV_LEN || (err = otpca_p256_soft_import(&key, priv))) {
        fputs("seedbox_tool: RCPTPRIVHEX must be a P-256 private scalar of 32 bytes\n", stderr);
        return EXIT_USAGE;
    }
    if (eph_len != OTPCA_P256_PUB_LEN) {
        otpca_p256_soft_wipe(&key);
        return fail("receiver: E is not 65 bytes", OTPCA_ERR_BAD_KEY, EXIT_REJECTED);
    }
    if ((err = otpca_seedbox_receiver(&b, eph, key.pub, otpca_p256_soft_ecdh, &key))) {
        otpca_p256_soft_wipe(&key);
        return fail("receiver", err, EXIT_REJECTED);
    }
    for (int i = 2; i + 1 < argc && !rc; i += 2) {
        uint8_t in[HEX_MAX], seed[OTPCA_SEEDBOX_SEED_MAX];
        size_t in_len, seed_len;
        if ((rc = unhex("SEALEDHEX", argv[i + 1], in, &in_len)))
            break;
        err = otpca_seedbox_open(&b, (const uint8_t *)argv[i], strlen(argv[i]), in, in_len, seed,
                                 sizeof seed, &seed_len);
        if (err) {
            char what[96];
            snprintf(what, sizeof what, "open entry %d (%.64s)", (i - 2) / 2, argv[i]);
            rc = fail(what, err, EXIT_REJECTED);
        } else {
            puthex(seed, seed_len, "\n");
        }
    }
    otpca_seedbox_wipe(&b);
    otpca_p256_soft_wipe(&key);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "seal") == 0)
        return cmd_seal(argc - 2, argv + 2, 0);
    if (argc >= 3 && strcmp(argv[1], "fresh") == 0)
        return cmd_seal(argc - 2, argv + 2, 1);
    if (argc >= 4 && strcmp(argv[1], "open") == 0)
        return cmd_open(argc - 2, argv + 2);
    return usage();
}
