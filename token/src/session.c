/*
 * Sessions and login on the module's function list: open a token by URI,
 * log in once per token (PKCS#11 login state is per application, shared
 * by every session), clone sessions for worker threads, detect removal,
 * and initialise fresh tokens for rigs.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"

otpca_err otpca_ckr(CK_RV rv, const char *what)
{
    if (rv == CKR_OK)
        return OTPCA_ERR_OK;
    log_debug("PKCS#11 %s: CKR 0x%lx", what, (unsigned long)rv);
    switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
        return OTPCA_ERR_PIN_INCORRECT;
    case CKR_PIN_LOCKED:
        return OTPCA_ERR_PIN_LOCKED;
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_SLOT_ID_INVALID:
        return OTPCA_ERR_TOKEN_REMOVED;
    case CKR_USER_NOT_LOGGED_IN:
        return OTPCA_ERR_NOT_LOGGED_IN;
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
        return OTPCA_ERR_MECHANISM;
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_KEY_HANDLE_INVALID:
        return OTPCA_ERR_OBJECT_NOT_FOUND;
    case CKR_HOST_MEMORY:
    case CKR_DEVICE_MEMORY:
        return OTPCA_ERR_NOMEM;
    case CKR_BUFFER_TOO_SMALL:
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    case CKR_ARGUMENTS_BAD:
    case CKR_DATA_LEN_RANGE:
    case CKR_ATTRIBUTE_VALUE_INVALID:
    case CKR_KEY_SIZE_RANGE:
        return OTPCA_ERR_INVALID_ARG;
    default:
        return OTPCA_ERR_PKCS11;
    }
}

void otpca_p11_unpad(char *dst, const unsigned char *src, size_t n)
{
    while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\0'))
        n--;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void pad_label(unsigned char out[32], const char *label)
{
    size_t n = strlen(label);
    memset(out, ' ', 32);
    memcpy(out, label, n > 32 ? 32 : n);
}

struct free_slot {
    const char *label;
    CK_SLOT_ID slot;
    int have, taken;
};

static int note_slot(CK_SLOT_ID slot, const CK_TOKEN_INFO *ti, void *arg)
{
    struct free_slot *f = arg;
    char have[OTPCA_P11_LABEL_MAX + 1];
    if (!(ti->flags & CKF_TOKEN_INITIALIZED)) {
        if (!f->have) {
            f->slot = slot;
            f->have = 1;
        }
        return 0;
    }
    otpca_p11_unpad(have, ti->label, sizeof ti->label);
    f->taken |= strcmp(have, f->label) == 0;
    return f->taken;
}

otpca_err otpca_p11_init_token(otpca_p11_t *p11, const char *label, const char *so_pin,
                               const char *user_pin, unsigned long *slot_id)
{
    CK_FUNCTION_LIST *fn = p11->fn;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    struct free_slot f = {.label = label};
    unsigned char padded[32];
    otpca_err ret;
    if (!label || !*label || strlen(label) > OTPCA_P11_LABEL_MAX || !so_pin || !user_pin)
        return OTPCA_ERR_INVALID_ARG;

    pthread_mutex_lock(&p11->mu);
    ret = otpca_p11_each_token(p11, note_slot, &f);
    if (ret)
        goto out;
    if (f.taken) {
        log_error("a token labelled %s already exists", label);
        ret = OTPCA_ERR_EXISTS;
        goto out;
    }
    if (!f.have) {
        log_error("no free slot to initialise a token in");
        ret = OTPCA_ERR_TOKEN_NOT_FOUND;
        goto out;
    }
    pad_label(padded, label);
    ret = otpca_ckr(fn->C_InitToken(f.slot, (CK_UTF8CHAR *)so_pin, strlen(so_pin), padded),
                    "C_InitToken");
    if (ret)
        goto out;
    ret = otpca_ckr(fn->C_OpenSession(f.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
                    "C_OpenSession");
    if (ret)
        goto out;
    ret = otpca_ckr(fn->C_Login(s, CKU_SO, (CK_UTF8CHAR *)so_pin, strlen(so_pin)), "C_Login(SO)");
    if (ret)
        goto out;
    ret = otpca_ckr(fn->C_InitPIN(s, (CK_UTF8CHAR *)user_pin, strlen(user_pin)), "C_InitPIN");
    fn->C_Logout(s);
    if (ret == OTPCA_ERR_OK && slot_id)
        *slot_id = f.slot;
out:
    if (s != CK_INVALID_HANDLE)
        fn->C_CloseSession(s);
    pthread_mutex_unlock(&p11->mu);
    return ret;
}

/* Find or add the login record of a slot; caller holds p11->mu. */
static struct otpca_login *login_ref(otpca_p11_t *p11, CK_SLOT_ID slot)
{
    for (struct otpca_login *l = p11->logins; l; l = l->next)
        if (l->slot == slot) {
            l->refs++;
            return l;
        }
    struct otpca_login *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->slot = slot;
    l->refs = 1;
    l->next = p11->logins;
    p11->logins = l;
    return l;
}

/* Drop a reference; the last one logs out (through session s). */
static void login_unref(otpca_p11_t *p11, struct otpca_login *l, CK_SESSION_HANDLE s)
{
    pthread_mutex_lock(&p11->mu);
    if (--l->refs == 0) {
        if (l->logged_in && s != CK_INVALID_HANDLE)
            p11->fn->C_Logout(s);
        for (struct otpca_login **pp = &p11->logins; *pp; pp = &(*pp)->next)
            if (*pp == l) {
                *pp = l->next;
                break;
            }
        free(l);
    }
    pthread_mutex_unlock(&p11->mu);
}

static otpca_err session_on(otpca_p11_t *p11, CK_SLOT_ID slot, const char *label,
                            otpca_token_t **out)
{
    otpca_token_t *t = calloc(1, sizeof *t);
    if (!t)
        return OTPCA_ERR_NOMEM;
    t->p11 = p11;
    t->slot = slot;
    snprintf(t->label, sizeof t->label, "%s", label);
    otpca_err ret = otpca_ckr(p11->fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                                                     NULL, &t->sess),
                              "C_OpenSession");
    if (ret) {
        free(t);
        return ret;
    }
    pthread_mutex_lock(&p11->mu);
    t->login = login_ref(p11, slot);
    p11->sessions++;
    pthread_mutex_unlock(&p11->mu);
    if (!t->login) {
        otpca_token_destroy(&t);
        return OTPCA_ERR_NOMEM;
    }
    *out = t;
    return OTPCA_ERR_OK;
}

otpca_err otpca_token_login(otpca_token_t *tok, const char *pin)
{
    otpca_p11_t *p11 = tok->p11;
    otpca_err ret = OTPCA_ERR_OK;
    if (!pin)
        return OTPCA_ERR_INVALID_ARG;
    pthread_mutex_lock(&p11->mu);
    if (!tok->login->logged_in) {
        CK_RV rv = p11->fn->C_Login(tok->sess, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
        if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
            tok->login->logged_in = 1;
        else
            ret = otpca_ckr(rv, "C_Login");
    }
    pthread_mutex_unlock(&p11->mu);
    if (ret)
        log_error("token %s: login failed: %s", tok->label, otpca_strerror(ret));
    return ret;
}

otpca_err otpca_token_open(otpca_p11_t *p11, const otpca_p11_uri *uri, const char *pin,
                           otpca_token_t **out)
{
    CK_SLOT_ID slot;
    char label[OTPCA_P11_LABEL_MAX + 1];
    *out = NULL;
    otpca_err ret = otpca_p11_find_slot(p11, uri, &slot, label);
    if (ret) {
        log_error("token %s%s%s: %s", uri->token[0] ? uri->token : "(any)",
                  uri->serial[0] ? " serial " : "", uri->serial, otpca_strerror(ret));
        return ret;
    }
    return otpca_token_open_slot(p11, slot, pin, out);
}

otpca_err otpca_token_open_slot(otpca_p11_t *p11, unsigned long slot_id, const char *pin,
                                otpca_token_t **out)
{
    CK_TOKEN_INFO ti;
    char label[OTPCA_P11_LABEL_MAX + 1];
    otpca_token_t *t = NULL;
    *out = NULL;
    otpca_err ret = otpca_ckr(p11->fn->C_GetTokenInfo(slot_id, &ti), "C_GetTokenInfo");
    if (ret)
        return ret == OTPCA_ERR_TOKEN_REMOVED ? OTPCA_ERR_TOKEN_NOT_FOUND : ret;
    if (!(ti.flags & CKF_TOKEN_INITIALIZED))
        return OTPCA_ERR_TOKEN_NOT_FOUND;
    otpca_p11_unpad(label, ti.label, sizeof ti.label);
    ret = session_on(p11, slot_id, label, &t);
    if (ret == OTPCA_ERR_OK && pin)
        ret = otpca_token_login(t, pin);
    if (ret == OTPCA_ERR_OK) {
        *out = t;
        t = NULL;
    }
    otpca_token_destroy(&t);
    return ret;
}

otpca_err otpca_token_open_uri(otpca_p11_t *p11, const otpca_p11_uri *uri,
                               const otpca_pin_src *pin_src, otpca_token_t **out)
{
    otpca_pin_src from_uri;
    otpca_token_t *t = NULL;
    char *pin = NULL;
    *out = NULL;
    otpca_err ret = otpca_pin_src_from_uri(uri, &from_uri);
    if (ret)
        return ret;
    const otpca_pin_src *src = pin_src && pin_src->kind != OTPCA_PIN_NONE ? pin_src : &from_uri;
    /* The token first, so that a missing token is reported as such and
     * nobody is asked for a PIN in vain. */
    ret = otpca_token_open(p11, uri, NULL, &t);
    if (ret || src->kind == OTPCA_PIN_NONE)
        goto out;
    pin = otpca_secmem_alloc(OTPCA_PIN_BUF);
    if (!pin) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    ret = otpca_pin_read(src, pin, OTPCA_PIN_BUF);
    if (ret == OTPCA_ERR_OK)
        ret = otpca_token_login(t, pin);
out:
    otpca_secmem_free(pin, OTPCA_PIN_BUF);
    if (ret == OTPCA_ERR_OK) {
        *out = t;
        t = NULL;
    }
    otpca_token_destroy(&t);
    return ret;
}

otpca_err otpca_token_clone(otpca_token_t *tok, otpca_token_t **out)
{
    *out = NULL;
    return session_on(tok->p11, tok->slot, tok->label, out);
}

void otpca_token_destroy(otpca_token_t **pt)
{
    if (!pt || !*pt)
        return;
    otpca_token_t *t = *pt;
    if (t->login)
        login_unref(t->p11, t->login, t->sess);
    /* A removed token may have closed the session already: ignore. */
    t->p11->fn->C_CloseSession(t->sess);
    pthread_mutex_lock(&t->p11->mu);
    t->p11->sessions--;
    pthread_mutex_unlock(&t->p11->mu);
    free(t);
    *pt = NULL;
}

otpca_err otpca_token_present(otpca_token_t *tok)
{
    CK_SLOT_INFO si;
    CK_SESSION_INFO sess;
    CK_TOKEN_INFO ti;
    CK_FUNCTION_LIST *fn = tok->p11->fn;
    if (fn->C_GetSlotInfo(tok->slot, &si) != CKR_OK || !(si.flags & CKF_TOKEN_PRESENT))
        return OTPCA_ERR_TOKEN_REMOVED;
    if (fn->C_GetSessionInfo(tok->sess, &sess) != CKR_OK)
        return OTPCA_ERR_TOKEN_REMOVED;
    /* A token whose store vanished (SoftHSM: its directory removed) may
     * leave a slot that still reads "present"; ask the token itself. */
    if (fn->C_GetTokenInfo(tok->slot, &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED))
        return OTPCA_ERR_TOKEN_REMOVED;
    char label[OTPCA_P11_LABEL_MAX + 1];
    otpca_p11_unpad(label, ti.label, sizeof ti.label);
    if (strcmp(label, tok->label) != 0) /* another token in the same slot */
        return OTPCA_ERR_TOKEN_REMOVED;
    return OTPCA_ERR_OK;
}

const char *otpca_token_label(const otpca_token_t *tok) { return tok->label; }

unsigned long otpca_p11_open_sessions(otpca_p11_t *p11)
{
    pthread_mutex_lock(&p11->mu);
    unsigned long n = p11->sessions;
    pthread_mutex_unlock(&p11->mu);
    return n;
}
