/*
 * Shared by the fuzz targets, the replay driver and the corpus generator:
 * the libFuzzer entry point, a check that survives NDEBUG, and the fixed
 * P-256 key the COSE, ECIES and seed-box targets use (the checked-in
 * seeds are signed by / sealed to it, so mutations start from inputs that
 * get past the kid check and the ephemeral-point check), and the seed box
 * of that key the seed-box target opens with.
 */
#ifndef OTPCA_TESTS_FUZZ_H
#define OTPCA_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "otpca/proto/p256.h"
#include "otpca/proto/seedbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the library: abort (libFuzzer then saves the input as a
 * crash) with the place and the condition. Independent of NDEBUG, which
 * the RelWithDebInfo default defines. */
#define FUZZ_CHECK(cond)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* The fixed private scalar: 0x01, 0x02, ..., 0x20 (below the group order). */
static inline void fuzz_key_scalar(uint8_t priv[OTPCA_P256_PRIV_LEN])
{
    for (unsigned i = 0; i < OTPCA_P256_PRIV_LEN; i++)
        priv[i] = (uint8_t)(i + 1);
}

/* The fixed key, imported once per process (a scalar multiplication). */
static inline const otpca_p256_soft *fuzz_key(void)
{
    static otpca_p256_soft key;
    static int loaded;
    if (!loaded) {
        uint8_t priv[OTPCA_P256_PRIV_LEN];
        fuzz_key_scalar(priv);
        if (otpca_p256_soft_import(&key, priv) != OTPCA_ERR_OK) {
            fprintf(stderr, "fuzz: cannot import the fixed P-256 key\n");
            abort();
        }
        loaded = 1;
    }
    return &key;
}

/* The seed box to the fixed key with the ephemeral scalar 0x21, 0x22,
 * ..., 0x40 (otpca_seedbox_sender_kat), made once per process: the
 * seed-box corpus is sealed in it. */
static inline const otpca_seedbox *fuzz_seedbox(void)
{
    static otpca_seedbox box;
    static int made;
    if (!made) {
        uint8_t eph[OTPCA_P256_PRIV_LEN];
        for (unsigned i = 0; i < OTPCA_P256_PRIV_LEN; i++)
            eph[i] = (uint8_t)(0x21 + i);
        if (otpca_seedbox_sender_kat(&box, eph, fuzz_key()->pub, OTPCA_P256_PUB_LEN) != OTPCA_ERR_OK) {
            fprintf(stderr, "fuzz: cannot make the fixed seed box\n");
            abort();
        }
        made = 1;
    }
    return &box;
}

#endif
