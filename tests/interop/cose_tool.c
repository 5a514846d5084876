/*
 * cose_tool: otpca's COSE_Sign1 on the command line, for the interop test
 * (cose_interop.js) that checks it against cose-js.
 *
 *   cose_tool pub KEYHEX              the 65-byte SEC1 public key, hex
 *   cose_tool sign KEYHEX PAYLOADHEX  a COSE_Sign1 of the payload, hex
 *   cose_tool verify PUBHEX COSEHEX   exit 0 and the payload hex if
 *                                     otpca_cose_sign1_decode and
 *                                     otpca_cose_sign1_verify accept it;
 *                                     exit 1 (reason on stderr) if not
 *   cose_tool msg KEYHEX              a COSE_Sign1 of an EnrollRequest,
 *                                     signed in place by otpca_msg_sign
 *
 * KEYHEX is a 32-byte private scalar, used as an otpca software key with
 * kid = otpca_p256_kid(pub). Usage errors and bad hex exit 2, so that a
 * test expecting a rejection (1) cannot pass on a typo.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otpca/common/hex.h"
#include "otpca/common/err.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"

enum { EXIT_REJECTED = 1, EXIT_USAGE = 2 };

static int usage(void)
{
    fputs("usage: cose_tool pub KEYHEX\n"
          "       cose_tool sign KEYHEX PAYLOADHEX\n"
          "       cose_tool verify PUBHEX COSEHEX\n"
          "       cose_tool msg KEYHEX\n",
          stderr);
    return EXIT_USAGE;
}

/* Decodes hex into a new buffer (at least 1 byte allocated). NULL on bad
 * hex or no memory. */
static uint8_t *unhex(const char *s, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2)
        return NULL;
    uint8_t *out = malloc(n / 2 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = otpca_hex_digit(s[2 * i]), lo = otpca_hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

static void puthex(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        printf("%02x", p[i]);
    putchar('\n');
}

static int fail(const char *what, otpca_err err, int code)
{
    fprintf(stderr, "cose_tool: %s: %s (%s)\n", what, otpca_errname(err), otpca_strerror(err));
    return code;
}

static int load_key(const char *hex, otpca_p256_soft *key)
{
    size_t len = 0;
    uint8_t *priv = unhex(hex, &len);
    if (!priv || len != OTPCA_P256_PRIV_LEN) {
        free(priv);
        fputs("cose_tool: KEYHEX must be 32 bytes of hex\n", stderr);
        return EXIT_USAGE;
    }
    otpca_err err = otpca_p256_soft_import(key, priv);
    free(priv);
    return err ? fail("key import", err, EXIT_USAGE) : 0;
}

static int cmd_pub(const char *keyhex)
{
    otpca_p256_soft key;
    int rc = load_key(keyhex, &key);
    if (rc)
        return rc;
    puthex(key.pub, sizeof key.pub);
    otpca_p256_soft_wipe(&key);
    return 0;
}

static int cmd_sign(const char *keyhex, const char *payhex)
{
    otpca_p256_soft key;
    int rc = load_key(keyhex, &key);
    if (rc)
        return rc;
    size_t plen = 0;
    uint8_t *payload = unhex(payhex, &plen);
    if (!payload) {
        otpca_p256_soft_wipe(&key);
        fputs("cose_tool: PAYLOADHEX is not hex\n", stderr);
        return EXIT_USAGE;
    }
    otpca_signer s = {otpca_p256_soft_sign, &key, {0}};
    otpca_p256_kid(key.pub, s.kid);
    size_t cap = plen + OTPCA_COSE_OVERHEAD + 16, len = 0;
    uint8_t *out = malloc(cap);
    otpca_err err = out ? otpca_cose_sign1_encode(&s, (otpca_buf){NULL, 0}, payload, plen, out,
                                                  cap, &len)
                        : OTPCA_ERR_NOMEM;
    otpca_p256_soft_wipe(&key);
    if (!err)
        puthex(out, len);
    else
        rc = fail("sign", err, EXIT_USAGE);
    free(out);
    free(payload);
    return rc;
}

static int cmd_verify(const char *pubhex, const char *cosehex)
{
    size_t publen = 0, len = 0;
    uint8_t *pub = unhex(pubhex, &publen);
    uint8_t *in = unhex(cosehex, &len);
    int rc = 0;
    if (!pub || !in) {
        fputs("cose_tool: PUBHEX and COSEHEX must be hex\n", stderr);
        rc = EXIT_USAGE;
    } else {
        otpca_cose_sign1 m;
        otpca_err err = otpca_cose_sign1_decode(in, len, &m);
        if (err)
            rc = fail("decode", err, EXIT_REJECTED);
        else if ((err = otpca_cose_sign1_verify(&m, pub, publen)))
            rc = fail("verify", err, EXIT_REJECTED);
        else
            puthex(m.payload.p, m.payload.len);
    }
    free(pub);
    free(in);
    return rc;
}

/* A real protocol message as payload, written in place by otpca_msg_sign
 * (the begin/end path rather than otpca_cose_sign1_encode's copy). */
static int cmd_msg(const char *keyhex)
{
    otpca_p256_soft key;
    int rc = load_key(keyhex, &key);
    if (rc)
        return rc;
    static const uint8_t nonce[OTPCA_NONCE_LEN] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                                   0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    static const uint8_t mac[6] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x01};
    otpca_enroll_request r;
    memset(&r, 0, sizeof r);
    r.nonce = (otpca_buf){nonce, sizeof nonce};
    r.time = 1767225600; /* 2026-01-01T00:00:00Z */
    r.serial = (otpca_buf){(const uint8_t *)"node-0001", 9};
    r.mac = (otpca_buf){mac, sizeof mac};
    r.pubkey = (otpca_buf){key.pub, sizeof key.pub};
    r.totp = 123456;
    r.fw = (otpca_buf){(const uint8_t *)"1.2.3", 5};
    otpca_signer s = {otpca_p256_soft_sign, &key, {0}};
    otpca_p256_kid(key.pub, s.kid);
    uint8_t out[OTPCA_MSG_NODE_MAX];
    size_t len = 0;
    otpca_err err = otpca_msg_sign(&otpca_desc_enroll_request, &r, &s, (otpca_buf){NULL, 0}, out,
                                   sizeof out, &len);
    otpca_p256_soft_wipe(&key);
    if (err)
        return fail("msg sign", err, EXIT_USAGE);
    puthex(out, len);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "pub") == 0)
        return cmd_pub(argv[2]);
    if (argc == 4 && strcmp(argv[1], "sign") == 0)
        return cmd_sign(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "verify") == 0)
        return cmd_verify(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "msg") == 0)
        return cmd_msg(argv[2]);
    return usage();
}
