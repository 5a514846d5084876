/*
 * fuzz_ecies: opening ECIES envelopes (proto/src/ecies.c).
 *
 * Every input is an envelope opened with the fixed software key
 * (otpca_p256_soft_ecdh), label "netkey" and no aad, the parameters the
 * seeds were sealed with. Random input must never open (an AES-GCM tag
 * forgery: negligible); only the seeds and inputs equal to them do. Checked:
 *   - only OK, PROTO_VALUE (malformed) or DECRYPT come back;
 *   - OK gives exactly len - OTPCA_ECIES_OVERHEAD bytes of plaintext;
 *   - on failure *pt_len is untouched and no plaintext is left in pt (every
 *     byte is the fill pattern or wiped to zero);
 *   - a well-formed envelope with one byte too little room is refused with
 *     BUFFER_TOO_SMALL before any ECDH.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "otpca/proto/ecies.h"

#define FILL 0xaa

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const otpca_p256_soft *key = fuzz_key();
    static uint8_t pt[OTPCA_ECIES_MAX_PLAINTEXT];
    const size_t none = (size_t)-1;
    size_t pt_len = none;

    bool shaped = size >= OTPCA_ECIES_OVERHEAD && data[0] == OTPCA_ECIES_VERSION &&
                  size - OTPCA_ECIES_OVERHEAD <= OTPCA_ECIES_MAX_PLAINTEXT;
    if (shaped && size > OTPCA_ECIES_OVERHEAD) {
        size_t n = size - OTPCA_ECIES_OVERHEAD;
        FUZZ_CHECK(otpca_ecies_open(otpca_p256_soft_ecdh, (void *)key, key->pub,
                                    OTPCA_ECIES_LABEL_NETKEY, NULL, 0, data, size, pt, n - 1,
                                    &pt_len) == OTPCA_ERR_BUFFER_TOO_SMALL);
        FUZZ_CHECK(pt_len == none);
    }

    memset(pt, FILL, sizeof pt);
    otpca_err r = otpca_ecies_open(otpca_p256_soft_ecdh, (void *)key, key->pub,
                                   OTPCA_ECIES_LABEL_NETKEY, NULL, 0, data, size, pt, sizeof pt,
                                   &pt_len);
    if (r == OTPCA_ERR_OK) {
        FUZZ_CHECK(shaped && pt_len == size - OTPCA_ECIES_OVERHEAD);
        return 0;
    }
    FUZZ_CHECK(r == OTPCA_ERR_PROTO_VALUE || r == OTPCA_ERR_DECRYPT);
    FUZZ_CHECK(r != OTPCA_ERR_PROTO_VALUE || !shaped);
    FUZZ_CHECK(pt_len == none);
    for (size_t i = 0; i < sizeof pt; i++)
        FUZZ_CHECK(pt[i] == FILL || pt[i] == 0);
    return 0;
}
