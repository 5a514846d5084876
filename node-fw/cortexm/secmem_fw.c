/*
 * The two functions of common/src/secmem.c the core and libotpca-proto
 * call, for a bare-metal build (secmem.c itself is POSIX: mmap, mlock,
 * explicit_bzero). Same contracts as otpca/common/secmem.h.
 */
#include <stddef.h>

#include "otpca/common/secmem.h"

void otpca_memzero(void *p, size_t len)
{
    volatile unsigned char *v = p;
    while (p && len--)
        *v++ = 0;
}

int otpca_ct_equal(const void *a, const void *b, size_t len)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < len; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    return (int)((((unsigned)d) - 1u) >> 8) & 1;
}
