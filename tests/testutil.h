/* Small helpers shared by the unit tests. */
#ifndef OTPCA_TESTS_TESTUTIL_H
#define OTPCA_TESTS_TESTUTIL_H

#include <stddef.h>

/* 1 if all n bytes at p are zero (a wiped buffer or a cleared struct). */
static inline int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

#endif
