/*
 * fuzz_seedbox: opening sealed seeds and taking seedkeys (proto/src/seedbox.c).
 *
 * The first byte picks the mode.
 *
 * Below 0x80: it is the serial's length n (0..127; only 1..64 are
 * allowed), then come n bytes of serial and the sealed seed, which is
 * opened with the fixed box (fuzz_seedbox() in fuzz.h: the seeds were
 * sealed in it). Random input must never open (an AES-GCM tag forgery:
 * negligible); only the seeds and inputs equal to them do. Checked:
 *   - only OK, INVALID_ARG (serial length), PROTO_VALUE (sealed length
 *     outside 32..80) or DECRYPT come back, INVALID_ARG and PROTO_VALUE
 *     exactly in their cases;
 *   - OK gives exactly len - 16 bytes, and sealing them again in the same
 *     box under the same serial gives back the input byte for byte;
 *   - on failure *seed_len is untouched; after DECRYPT the first len - 16
 *     bytes of the output are zero, after the other refusals the output
 *     is untouched (the fill pattern);
 *   - a well-formed input with one byte too little room is refused with
 *     BUFFER_TOO_SMALL and nothing written.
 *
 * 0x80 and above: the rest, if it is 65 bytes, is a seedkey for
 * otpca_seedbox_receiver with the fixed key. Checked: only OK or BAD_KEY;
 * OK exactly when otpca_p256_pub_normalize accepts the point and it is in
 * uncompressed form; after BAD_KEY the box is all zero; for the seeds'
 * own seedkey, the box equals fuzz_seedbox().
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "otpca/proto/seedbox.h"

#define FILL 0xaa

static bool all(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void fuzz_receiver(const uint8_t *eph, size_t size)
{
    const otpca_p256_soft *key = fuzz_key();
    otpca_seedbox b;
    uint8_t norm[OTPCA_P256_PUB_LEN];
    if (size != OTPCA_P256_PUB_LEN)
        return;
    bool valid = eph[0] == 0x04 && otpca_p256_pub_normalize(eph, size, norm) == OTPCA_ERR_OK;
    memset(&b, FILL, sizeof b);
    otpca_err r = otpca_seedbox_receiver(&b, eph, key->pub, otpca_p256_soft_ecdh, (void *)key);
    FUZZ_CHECK(r == OTPCA_ERR_OK || r == OTPCA_ERR_BAD_KEY);
    FUZZ_CHECK((r == OTPCA_ERR_OK) == valid);
    if (r != OTPCA_ERR_OK) {
        FUZZ_CHECK(all((const uint8_t *)&b, sizeof b, 0));
        return;
    }
    FUZZ_CHECK(memcmp(b.eph, eph, OTPCA_P256_PUB_LEN) == 0);
    if (memcmp(eph, fuzz_seedbox()->eph, OTPCA_P256_PUB_LEN) == 0)
        FUZZ_CHECK(memcmp(&b, fuzz_seedbox(), sizeof b) == 0);
    otpca_seedbox_wipe(&b);
}

static void fuzz_open(const uint8_t *data, size_t size)
{
    const otpca_seedbox *box = fuzz_seedbox();
    static uint8_t seed[OTPCA_SEEDBOX_SEALED_MAX + 16], again[OTPCA_SEEDBOX_SEALED_MAX];
    const size_t none = (size_t)-1;
    size_t n = data[0], seed_len = none;
    if (size - 1 < n)
        return; /* the serial runs past the input */
    const uint8_t *serial = data + 1, *in = data + 1 + n;
    size_t len = size - 1 - n;
    bool serial_ok = n >= 1 && n <= OTPCA_SEEDBOX_SERIAL_MAX;
    bool shaped = len >= OTPCA_SEEDBOX_SEALED_MIN && len <= OTPCA_SEEDBOX_SEALED_MAX;

    if (serial_ok && shaped) {
        memset(seed, FILL, sizeof seed);
        FUZZ_CHECK(otpca_seedbox_open(box, serial, n, in, len, seed, len - OTPCA_SEEDBOX_TAG_LEN - 1,
                                      &seed_len) == OTPCA_ERR_BUFFER_TOO_SMALL);
        FUZZ_CHECK(seed_len == none && all(seed, sizeof seed, FILL));
    }

    memset(seed, FILL, sizeof seed);
    otpca_err r = otpca_seedbox_open(box, serial, n, in, len, seed, sizeof seed, &seed_len);
    if (r == OTPCA_ERR_OK) {
        size_t again_len = 0;
        FUZZ_CHECK(serial_ok && shaped && seed_len == len - OTPCA_SEEDBOX_TAG_LEN);
        FUZZ_CHECK(otpca_seedbox_seal(box, serial, n, seed, seed_len, again, sizeof again,
                                      &again_len) == OTPCA_ERR_OK);
        FUZZ_CHECK(again_len == len && memcmp(again, in, len) == 0);
        return;
    }
    FUZZ_CHECK(seed_len == none);
    FUZZ_CHECK((r == OTPCA_ERR_INVALID_ARG) == !serial_ok);
    if (serial_ok)
        FUZZ_CHECK((r == OTPCA_ERR_PROTO_VALUE) == !shaped);
    if (r == OTPCA_ERR_DECRYPT) {
        FUZZ_CHECK(all(seed, len - OTPCA_SEEDBOX_TAG_LEN, 0));
        FUZZ_CHECK(all(seed + len - OTPCA_SEEDBOX_TAG_LEN, sizeof seed - (len - OTPCA_SEEDBOX_TAG_LEN),
                       FILL));
    } else {
        FUZZ_CHECK(r == OTPCA_ERR_INVALID_ARG || r == OTPCA_ERR_PROTO_VALUE);
        FUZZ_CHECK(all(seed, sizeof seed, FILL));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 0x80)
        fuzz_receiver(data + 1, size - 1);
    else
        fuzz_open(data, size);
    return 0;
}
