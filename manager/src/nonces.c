/*
 * The window's nonce set (nonces.h): an open-addressing hash table.
 * Written here because libc's hsearch is one global table without delete,
 * and the alternatives (a SQLite insert per request) cost a write lock and
 * an fsync per request. Nonces are chosen by whoever sends a request, so
 * the slot comes from a keyed hash (SHA-256 over a per-process random key
 * and the nonce): nobody can aim requests at one chain of slots.
 */
#include "nonces.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "otpca/proto/p256.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/random.h>

struct entry {
    uint8_t nonce[16];
    uint64_t time;
    int used;
};

struct mgr_nonces {
    pthread_mutex_t mu;
    struct entry *tab;
    size_t cap, n; /* cap a power of two; n <= cap / 2 */
    uint8_t key[32];
};

static size_t slot(const mgr_nonces *s, const uint8_t nonce[16])
{
    uint8_t in[48], h[32];
    memcpy(in, s->key, 32);
    memcpy(in + 32, nonce, 16);
    otpca_sha256(in, sizeof in, h);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (size_t)(v & (s->cap - 1));
}

static void put(mgr_nonces *s, const struct entry *e)
{
    size_t i = slot(s, e->nonce);
    while (s->tab[i].used)
        i = (i + 1) & (s->cap - 1);
    s->tab[i] = *e;
    s->n++;
}

/* Rebuilds into a table of cap slots, keeping entries from `before` on. */
static int rebuild(mgr_nonces *s, size_t cap, uint64_t before)
{
    struct entry *old = s->tab;
    size_t old_cap = s->cap;
    struct entry *tab = calloc(cap, sizeof *tab);
    if (!tab)
        return -1;
    s->tab = tab;
    s->cap = cap;
    s->n = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].used && old[i].time >= before)
            put(s, &old[i]);
    free(old);
    return 0;
}

mgr_nonces *mgr_nonces_new(void)
{
    mgr_nonces *s = calloc(1, sizeof *s);
    WC_RNG rng;
    if (!s)
        return NULL;
    s->cap = 1024;
    s->tab = calloc(s->cap, sizeof *s->tab);
    int ok = s->tab && wc_InitRng(&rng) == 0;
    if (ok) {
        ok = wc_RNG_GenerateBlock(&rng, s->key, sizeof s->key) == 0;
        wc_FreeRng(&rng);
    }
    if (!ok) {
        free(s->tab);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void mgr_nonces_destroy(mgr_nonces **p)
{
    if (!p || !*p)
        return;
    pthread_mutex_destroy(&(*p)->mu);
    free((*p)->tab);
    free(*p);
    *p = NULL;
}

int mgr_nonces_add(mgr_nonces *s, const uint8_t nonce[16], uint64_t t)
{
    int ret = 0;
    pthread_mutex_lock(&s->mu);
    size_t i = slot(s, nonce);
    while (s->tab[i].used) {
        if (!memcmp(s->tab[i].nonce, nonce, 16)) {
            ret = 1;
            goto out;
        }
        i = (i + 1) & (s->cap - 1);
    }
    if (s->n + 1 > s->cap / 2) {
        if (s->cap > SIZE_MAX / 4 / sizeof *s->tab || rebuild(s, s->cap * 2, 0)) {
            ret = -1;
            goto out;
        }
    }
    struct entry e = {.time = t, .used = 1};
    memcpy(e.nonce, nonce, 16);
    put(s, &e);
out:
    pthread_mutex_unlock(&s->mu);
    return ret;
}

void mgr_nonces_prune(mgr_nonces *s, uint64_t before)
{
    pthread_mutex_lock(&s->mu);
    size_t cap = s->cap;
    size_t keep = 0;
    for (size_t i = 0; i < s->cap; i++)
        keep += s->tab[i].used && s->tab[i].time >= before;
    while (cap > 1024 && keep < cap / 8)
        cap /= 2;
    if (keep < s->n)
        (void)rebuild(s, cap, before); /* out of memory: keep them all */
    pthread_mutex_unlock(&s->mu);
}

size_t mgr_nonces_count(mgr_nonces *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}
