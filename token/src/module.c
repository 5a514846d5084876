/*
 * Module side of libotpca-token: libp11 loads the module (C_Initialize
 * with OS locking, C_Finalize on unload); libp11 (and so OpenSSL) headers
 * live in this file only. Slots and tokens are then enumerated here on the
 * module's own function list, taken from the already-loaded module with
 * dlopen(RTLD_NOLOAD) — the same initialised instance, never a second
 * C_Initialize.
 *
 * Why not libp11 for the rest: 0.4.12 fails a whole slot enumeration when
 * one token answers C_GetTokenInfo with an error (SoftHSM does so while
 * another process rewrites that token), which would make every token
 * unreachable; it cannot generate EC keys, has no HMAC and no object
 * handles, and keeps a heap copy of the PIN for re-login.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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
    pthread_mutex_init(&p->cache_mu, NULL);
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
    pthread_mutex_destroy(&p->cache_mu);
    free(p->seen);
    free(p);
    *pp = NULL;
    pthread_mutex_lock(&loaded_mu);
    loaded = 0;
    pthread_mutex_unlock(&loaded_mu);
}

otpca_err otpca_p11_each_token(otpca_p11_t *p11,
                               int (*visit)(CK_SLOT_ID, const CK_TOKEN_INFO *, void *), void *arg)
{
    CK_FUNCTION_LIST *fn = p11->fn;
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    otpca_err ret = otpca_ckr(fn->C_GetSlotList(CK_TRUE, NULL, &n), "C_GetSlotList");
    /* Slots may appear between the two calls (a token initialised by
     * someone else): ask again with room for a few more, a bounded number
     * of times; n only ever counts what the array holds. */
    for (int tries = 0; ret == OTPCA_ERR_OK; tries++) {
        if (tries == 4) {
            ret = OTPCA_ERR_PKCS11;
            break;
        }
        CK_ULONG room = n + 8;
        free(slots);
        slots = calloc(room, sizeof *slots);
        if (!slots)
            return OTPCA_ERR_NOMEM;
        n = room;
        CK_RV rv = fn->C_GetSlotList(CK_TRUE, slots, &n);
        if (rv != CKR_BUFFER_TOO_SMALL) {
            ret = otpca_ckr(rv, "C_GetSlotList");
            break;
        }
    }
    struct otpca_slot_seen *seen = ret == OTPCA_ERR_OK && n ? calloc(n, sizeof *seen) : NULL;
    size_t nseen = 0;
    int complete = 1;
    for (CK_ULONG i = 0; ret == OTPCA_ERR_OK && i < n; i++) {
        CK_TOKEN_INFO ti;
        CK_RV rv = fn->C_GetTokenInfo(slots[i], &ti);
        /* SoftHSM fails a token (CKR_GENERAL_ERROR) for a moment while
         * another process rewrites its files; measured here: over 10 ms
         * under load. Ask again, backing off 1, 2, 4 ... 64 ms (at most
         * 127 ms in all), before skipping it. */
        for (long wait_ms = 1; rv == CKR_GENERAL_ERROR && wait_ms <= 64; wait_ms *= 2) {
            nanosleep(&(struct timespec){0, wait_ms * 1000000L}, NULL);
            rv = fn->C_GetTokenInfo(slots[i], &ti);
        }
        if (rv != CKR_OK) {
            log_debug("slot %lu skipped: C_GetTokenInfo CKR 0x%lx", (unsigned long)slots[i],
                      (unsigned long)rv);
            continue;
        }
        if (seen) {
            seen[nseen].slot = slots[i];
            seen[nseen++].ti = ti;
        }
        if (visit(slots[i], &ti, arg)) {
            complete = 0;
            break;
        }
    }
    if (ret == OTPCA_ERR_OK && complete && (seen || n == 0)) { /* the cache: this complete scan */
        pthread_mutex_lock(&p11->cache_mu);
        free(p11->seen);
        p11->seen = seen;
        p11->nseen = nseen;
        pthread_mutex_unlock(&p11->cache_mu);
        seen = NULL;
    }
    free(seen);
    free(slots);
    return ret;
}

struct list_ctx {
    otpca_token_info *infos;
    size_t cap, found;
};

static int list_one(CK_SLOT_ID slot, const CK_TOKEN_INFO *ti, void *arg)
{
    struct list_ctx *c = arg;
    if (c->found < c->cap) {
        otpca_token_info *o = &c->infos[c->found];
        memset(o, 0, sizeof *o);
        otpca_p11_unpad(o->label, ti->label, sizeof ti->label);
        otpca_p11_unpad(o->manufacturer, ti->manufacturerID, sizeof ti->manufacturerID);
        otpca_p11_unpad(o->model, ti->model, sizeof ti->model);
        otpca_p11_unpad(o->serial, ti->serialNumber, sizeof ti->serialNumber);
        o->slot_id = slot;
        o->initialized = !!(ti->flags & CKF_TOKEN_INITIALIZED);
        o->user_pin_set = !!(ti->flags & CKF_USER_PIN_INITIALIZED);
        o->user_pin_locked = !!(ti->flags & CKF_USER_PIN_LOCKED);
        o->login_required = !!(ti->flags & CKF_LOGIN_REQUIRED);
    }
    c->found++;
    return 0;
}

otpca_err otpca_p11_list(otpca_p11_t *p11, otpca_token_info *infos, size_t cap, size_t *count)
{
    struct list_ctx c = {infos, cap, 0};
    otpca_err ret = otpca_p11_each_token(p11, list_one, &c);
    *count = c.found;
    return ret;
}

struct find_ctx {
    const otpca_p11_uri *uri;
    CK_SLOT_ID slot;
    char label[OTPCA_P11_LABEL_MAX + 1];
    unsigned matches;
};

static int field_matches(const char *want, const unsigned char *have, size_t n)
{
    char text[OTPCA_P11_LABEL_MAX + 1];
    if (want[0] == '\0')
        return 1;
    otpca_p11_unpad(text, have, n);
    return strcmp(want, text) == 0;
}

static int find_one(CK_SLOT_ID slot, const CK_TOKEN_INFO *ti, void *arg)
{
    struct find_ctx *c = arg;
    const otpca_p11_uri *u = c->uri;
    if (!(ti->flags & CKF_TOKEN_INITIALIZED) || !field_matches(u->token, ti->label, sizeof ti->label) ||
        !field_matches(u->serial, ti->serialNumber, sizeof ti->serialNumber) ||
        !field_matches(u->manufacturer, ti->manufacturerID, sizeof ti->manufacturerID) ||
        !field_matches(u->model, ti->model, sizeof ti->model))
        return 0;
    if (c->matches++ == 0) {
        c->slot = slot;
        otpca_p11_unpad(c->label, ti->label, sizeof ti->label);
    }
    return 0;
}

otpca_err otpca_p11_find_slot(otpca_p11_t *p11, const otpca_p11_uri *uri, CK_SLOT_ID *slot,
                              char label[OTPCA_P11_LABEL_MAX + 1])
{
    struct find_ctx c = {.uri = uri};
    /* First the last scan's view: one match there, still that token now
     * (one C_GetTokenInfo), is the answer. Anything else (no match, two,
     * a token gone or changed) asks every slot again. */
    pthread_mutex_lock(&p11->cache_mu);
    for (size_t i = 0; i < p11->nseen; i++)
        find_one(p11->seen[i].slot, &p11->seen[i].ti, &c);
    pthread_mutex_unlock(&p11->cache_mu);
    if (c.matches == 1) {
        CK_TOKEN_INFO ti;
        struct find_ctx now = {.uri = uri};
        if (p11->fn->C_GetTokenInfo(c.slot, &ti) == CKR_OK && (find_one(c.slot, &ti, &now), now.matches == 1)) {
            *slot = now.slot;
            memcpy(label, now.label, sizeof now.label);
            return OTPCA_ERR_OK;
        }
    }
    memset(&c, 0, sizeof c);
    c.uri = uri;
    otpca_err ret = otpca_p11_each_token(p11, find_one, &c);
    if (ret)
        return ret;
    if (c.matches == 0)
        return OTPCA_ERR_TOKEN_NOT_FOUND;
    if (c.matches > 1)
        return OTPCA_ERR_TOKEN_AMBIGUOUS;
    *slot = c.slot;
    memcpy(label, c.label, sizeof c.label);
    return OTPCA_ERR_OK;
}
