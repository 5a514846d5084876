/*
 * The window's answer cache (answers.h): a chained hash table keyed by
 * serial. Written here for the same reason as nonces.c (no table in libc
 * that deletes or replaces); serials are chosen by whoever sends a request,
 * so the bucket comes from a keyed hash.
 */
#include "answers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otpca/common/secmem.h"
#include "otpca/proto/p256.h"

#define BUCKETS 4096

struct entry {
    struct entry *next;
    char serial[65];
    uint8_t req_hash[32];
    size_t len;
    uint8_t answer[]; /* len bytes */
};

struct mgr_answers {
    pthread_mutex_t mu;
    uint8_t key[32];
    struct entry *bucket[BUCKETS];
};

static size_t bucket_of(const mgr_answers *a, const char *serial)
{
    uint8_t in[32 + 65], h[32];
    size_t n = strnlen(serial, 64);
    memcpy(in, a->key, 32);
    memcpy(in + 32, serial, n);
    otpca_sha256(in, 32 + n, h);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (size_t)(v % BUCKETS);
}

mgr_answers *mgr_answers_new(void)
{
    mgr_answers *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    if (otpca_random(a->key, sizeof a->key) != OTPCA_ERR_OK) {
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

void mgr_answers_destroy(mgr_answers **p)
{
    if (!p || !*p)
        return;
    mgr_answers *a = *p;
    for (size_t i = 0; i < BUCKETS; i++)
        for (struct entry *e = a->bucket[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    pthread_mutex_destroy(&a->mu);
    free(a);
    *p = NULL;
}

int mgr_answers_put(mgr_answers *a, const char *serial, const uint8_t req_hash[32], const uint8_t *answer, size_t len)
{
    struct entry *e = malloc(sizeof *e + len);
    if (!e)
        return -1;
    snprintf(e->serial, sizeof e->serial, "%s", serial);
    memcpy(e->req_hash, req_hash, 32);
    memcpy(e->answer, answer, len);
    e->len = len;
    size_t b = bucket_of(a, serial);
    pthread_mutex_lock(&a->mu);
    struct entry **pp = &a->bucket[b];
    while (*pp && strcmp((*pp)->serial, serial) != 0)
        pp = &(*pp)->next;
    struct entry *old = *pp;
    e->next = old ? old->next : NULL;
    *pp = e;
    pthread_mutex_unlock(&a->mu);
    free(old);
    return 0;
}

size_t mgr_answers_get(mgr_answers *a, const char *serial, const uint8_t req_hash[32], uint8_t *out, size_t cap)
{
    size_t len = 0, b = bucket_of(a, serial);
    pthread_mutex_lock(&a->mu);
    for (struct entry *e = a->bucket[b]; e; e = e->next)
        if (!strcmp(e->serial, serial)) {
            if (otpca_ct_equal(e->req_hash, req_hash, 32) && e->len <= cap) {
                memcpy(out, e->answer, e->len);
                len = e->len;
            }
            break;
        }
    pthread_mutex_unlock(&a->mu);
    return len;
}
