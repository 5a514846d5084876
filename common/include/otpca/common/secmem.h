/*
 * Secret memory: page-backed buffers that are mlock'ed (never swapped),
 * excluded from core dumps (MADV_DONTDUMP) and wiped before release;
 * a memzero the compiler cannot drop; constant-time comparison; and a
 * process hardening call for tools that handle PINs or keys.
 */
#ifndef OTPCA_COMMON_SECMEM_H
#define OTPCA_COMMON_SECMEM_H

#include <stddef.h>

/* Wipe len bytes; never optimised away (explicit_bzero). */
void otpca_memzero(void *p, size_t len);

/* 1 if the len bytes at a and b are equal, else 0; time depends on len only. */
int otpca_ct_equal(const void *a, const void *b, size_t len) __attribute__((warn_unused_result));

/* Allocate len zeroed bytes of secret memory, or NULL (errno set) if the
 * pages cannot be mapped or locked. Free only with otpca_secmem_free(). */
void *otpca_secmem_alloc(size_t len) __attribute__((warn_unused_result, malloc));
/* Wipe, unlock and unmap; NULL is accepted. len must be the allocated size. */
void otpca_secmem_free(void *p, size_t len);

/* No core dumps and no ptrace attach by other users for this process
 * (PR_SET_DUMPABLE 0, RLIMIT_CORE 0). Returns 0 or -1 with errno. */
int otpca_process_harden(void);

#endif
