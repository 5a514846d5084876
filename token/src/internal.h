/*
 * Private to libotpca-token: the structures behind the opaque handles and
 * helpers shared by the raw-PKCS#11 files. Includes neither OpenSSL nor
 * wolfSSL, so both sides may include it.
 */
#ifndef OTPCA_TOKEN_INTERNAL_H
#define OTPCA_TOKEN_INTERNAL_H

#include <pthread.h>

#include "p11.h"

#include "otpca/token/token.h"

struct PKCS11_ctx_st;

/* A token logged in by this process: PKCS#11 login state is shared by all
 * sessions of an application, so it is counted per slot. */
struct otpca_login {
    CK_SLOT_ID slot;
    unsigned refs;
    int logged_in;
    struct otpca_login *next;
};

struct otpca_p11 {
    struct PKCS11_ctx_st *ctx; /* libp11: load, C_Initialize, C_Finalize */
    CK_FUNCTION_LIST *fn;      /* the same module's function list (no second C_Initialize) */
    void *dl;
    pthread_mutex_t mu; /* guards logins and token initialisation */
    struct otpca_login *logins;
    unsigned long sessions; /* open through session_on(), under mu */
    char path[OTPCA_P11_PATH_MAX + 1];
    /* The tokens the last complete scan saw (otpca_p11_each_token), so
     * that finding one token by its URI does not ask every slot again:
     * SoftHSM answers C_GetTokenInfo from disk, and a process opening N
     * tokens of an N-token rig paid N^2 of them (otpca-node sim). */
    pthread_mutex_t cache_mu;
    struct otpca_slot_seen *seen;
    size_t nseen;
};

struct otpca_slot_seen {
    CK_SLOT_ID slot;
    CK_TOKEN_INFO ti;
};

struct otpca_token {
    otpca_p11_t *p11;
    struct otpca_login *login;
    CK_SESSION_HANDLE sess;
    CK_SLOT_ID slot;
    char label[OTPCA_P11_LABEL_MAX + 1];
};

/* Map a CK_RV to an otpca_err (and log it at debug level with what). */
otpca_err otpca_ckr(CK_RV rv, const char *what);

/* Call visit for every slot whose token answers C_GetTokenInfo (others
 * are skipped: one broken token must not hide the rest); stop when visit
 * returns non-zero. */
otpca_err otpca_p11_each_token(otpca_p11_t *p11,
                               int (*visit)(CK_SLOT_ID, const CK_TOKEN_INFO *, void *), void *arg);

/* Find the one initialised token matching uri (module.c). */
otpca_err otpca_p11_find_slot(otpca_p11_t *p11, const otpca_p11_uri *uri, CK_SLOT_ID *slot,
                              char label[OTPCA_P11_LABEL_MAX + 1]);

/* Copy a blank-padded PKCS#11 string field into a NUL-terminated one. */
void otpca_p11_unpad(char *dst, const unsigned char *src, size_t n);

#endif
