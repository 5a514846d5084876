/*
 * Secret memory. Buffers are whole anonymous pages so that mlock and
 * MADV_DONTDUMP cover exactly them; a guard against reuse is not needed
 * because every free wipes first.
 */
#include "otpca/common/secmem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

void otpca_memzero(void *p, size_t len)
{
    if (p && len)
        explicit_bzero(p, len);
}

int otpca_ct_equal(const void *a, const void *b, size_t len)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < len; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    /* (d - 1) >> 8 is 1 only when d == 0, without a data-dependent branch. */
    return (int)((((unsigned)d) - 1u) >> 8) & 1;
}

static size_t round_pages(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (len + page - 1) / page * page;
}

void *otpca_secmem_alloc(size_t len)
{
    if (len == 0) {
        errno = EINVAL;
        return NULL;
    }
    size_t size = round_pages(len);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (mlock(p, size) != 0 || madvise(p, size, MADV_DONTDUMP) != 0) {
        int e = errno;
        munmap(p, size);
        errno = e;
        return NULL;
    }
    return p; /* anonymous pages are already zero */
}

void otpca_secmem_free(void *p, size_t len)
{
    if (!p)
        return;
    size_t size = round_pages(len);
    explicit_bzero(p, size);
    munlock(p, size);
    munmap(p, size);
}

int otpca_process_harden(void)
{
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0)
        return -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return -1;
    return 0;
}
