/*
 * Module and slot side of libotpca-token, on libp11: loading the module
 * (libp11 calls C_Initialize with OS locking, and C_Finalize on unload),
 * enumerating slots and matching tokens. libp11 (and so OpenSSL) headers
 * live in this file only.
 *
 * libp11 0.4.12 cannot generate EC keys, does not expose object handles
 * or HMAC, and keeps a heap copy of the PIN for re-login; so login,
 * objects, HMAC and signing use the module's own function list, taken
 * from the already-loaded module with dlopen(RTLD_NOLOAD) — the same
 * initialised instance, never a second C_Initialize.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libp11.h>

#include "internal.h"
#include "otpca/common/log.h"

#ifndef OTPCA_DEFAULT_MODULE
#define OTPCA_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

static pthread_mutex_t loaded_mu = PTHREAD_MUTEX_INITIALIZER;
static int loaded;

const char *otpca_p11_default_module(void) { return OTPCA_DEFAULT_MODULE; }

otpca_err otpca_p11_new(const char *module_path, otpca_p11_t **out)
{
    otpca_err ret;
    otpca_p11_t *p = NULL;
    *out = NULL;
    if (!module_path || !*module_path)
        module_path = getenv("OTPCA_PKCS11_MODULE");
    if (!module_path || !*module_path)
        module_path = OTPCA_DEFAULT_MODULE;

    pthread_mutex_lock(&loaded_mu);
    if (loaded) {
        pthread_mutex_unlock(&loaded_mu);
        log_error("a PKCS#11 module is already loaded in this process");
        return OTPCA_ERR_STATE;
    }
    loaded = 1;
    pthread_mutex_unlock(&loaded_mu);

    struct stat st;
    if (stat(module_path, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_error("PKCS#11 module %s: no such file", module_path);
        ret = OTPCA_ERR_MODULE_LOAD;
        goto out;
    }
    if (strlen(module_path) > OTPCA_P11_PATH_MAX) {
        ret = OTPCA_ERR_MODULE_LOAD;
        goto out;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    pthread_mutex_init(&p->mu, NULL);
    strcpy(p->path, module_path);
    p->ctx = PKCS11_CTX_new();
    if (!p->ctx) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    if (PKCS11_CTX_load(p->ctx, module_path) != 0) {
        log_error("PKCS#11 module %s could not be loaded or initialised", module_path);
        PKCS11_CTX_free(p->ctx);
        p->ctx = NULL;
        ret = OTPCA_ERR_MODULE_LOAD;
        goto out;
    }
    p->dl = dlopen(module_path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    CK_C_GetFunctionList gfl = p->dl ? (CK_C_GetFunctionList)dlsym(p->dl, "C_GetFunctionList") : NULL;
    if (!gfl || gfl(&p->fn) != CKR_OK || !p->fn) {
        log_error("PKCS#11 module %s: no function list", module_path);
        ret = OTPCA_ERR_MODULE_LOAD;
        goto out;
    }
    log_debug("PKCS#11 module %s loaded (%s)", module_path,
              p->ctx->manufacturer ? p->ctx->manufacturer : "?");
    *out = p;
    p = NULL;
    ret = OTPCA_ERR_OK;
out:
    if (p)
        otpca_p11_destroy(&p);
    else if (ret != OTPCA_ERR_OK) {
        pthread_mutex_lock(&loaded_mu);
        loaded = 0;
        pthread_mutex_unlock(&loaded_mu);
    }
    return ret;
}

void otpca_p11_destroy(otpca_p11_t **pp)
{
    if (!pp || !*pp)
        return;
    otpca_p11_t *p = *pp;
    if (p->logins)
        log_warn("PKCS#11 module unloaded with tokens still open");
    while (p->logins) {
        struct otpca_login *l = p->logins;
        p->logins = l->next;
        free(l);
    }
    if (p->ctx) {
        PKCS11_CTX_unload(p->ctx); /* C_Finalize */
        PKCS11_CTX_free(p->ctx);
    }
    if (p->dl)
        dlclose(p->dl);
    pthread_mutex_destroy(&p->mu);
    free(p);
    *pp = NULL;
    pthread_mutex_lock(&loaded_mu);
    loaded = 0;
    pthread_mutex_unlock(&loaded_mu);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

otpca_err otpca_p11_list(otpca_p11_t *p11, otpca_token_info *infos, size_t cap, size_t *count)
{
    PKCS11_SLOT *slots = NULL;
    unsigned int n = 0;
    size_t found = 0;
    pthread_mutex_lock(&p11->mu);
    if (PKCS11_enumerate_slots(p11->ctx, &slots, &n) != 0) {
        pthread_mutex_unlock(&p11->mu);
        return OTPCA_ERR_PKCS11;
    }
    for (unsigned int i = 0; i < n; i++) {
        PKCS11_TOKEN *t = slots[i].token;
        if (!t)
            continue;
        if (found < cap) {
            otpca_token_info *o = &infos[found];
            memset(o, 0, sizeof *o);
            copy_str(o->label, sizeof o->label, t->label);
            copy_str(o->manufacturer, sizeof o->manufacturer, t->manufacturer);
            copy_str(o->model, sizeof o->model, t->model);
            copy_str(o->serial, sizeof o->serial, t->serialnr);
            o->slot_id = PKCS11_get_slotid_from_slot(&slots[i]);
            o->initialized = t->initialized;
            o->user_pin_set = t->userPinSet;
            o->user_pin_locked = t->userPinLocked;
            o->login_required = t->loginRequired;
        }
        found++;
    }
    PKCS11_release_all_slots(p11->ctx, slots, n);
    pthread_mutex_unlock(&p11->mu);
    *count = found;
    return OTPCA_ERR_OK;
}

static int field_matches(const char *want, const char *have)
{
    return want[0] == '\0' || (have && strcmp(want, have) == 0);
}

otpca_err otpca_p11_find_slot(otpca_p11_t *p11, const otpca_p11_uri *uri, CK_SLOT_ID *slot,
                              char label[OTPCA_P11_LABEL_MAX + 1])
{
    PKCS11_SLOT *slots = NULL;
    unsigned int n = 0, matches = 0;
    pthread_mutex_lock(&p11->mu);
    if (PKCS11_enumerate_slots(p11->ctx, &slots, &n) != 0) {
        pthread_mutex_unlock(&p11->mu);
        return OTPCA_ERR_PKCS11;
    }
    for (unsigned int i = 0; i < n; i++) {
        PKCS11_TOKEN *t = slots[i].token;
        if (!t || !t->initialized)
            continue;
        if (!field_matches(uri->token, t->label) || !field_matches(uri->serial, t->serialnr) ||
            !field_matches(uri->manufacturer, t->manufacturer) ||
            !field_matches(uri->model, t->model))
            continue;
        if (matches++ == 0) {
            *slot = PKCS11_get_slotid_from_slot(&slots[i]);
            copy_str(label, OTPCA_P11_LABEL_MAX + 1, t->label);
        }
    }
    PKCS11_release_all_slots(p11->ctx, slots, n);
    pthread_mutex_unlock(&p11->mu);
    if (matches == 0)
        return OTPCA_ERR_TOKEN_NOT_FOUND;
    return matches == 1 ? OTPCA_ERR_OK : OTPCA_ERR_TOKEN_AMBIGUOUS;
}
