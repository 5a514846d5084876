/*
 * libotpca-token against SoftHSM: module loading, token selection, login
 * errors, key generation and seed import (non-extractable), object lookup,
 * sessions for threads, and token removal.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "otpca/token/rig.h"
#include "otpca/token/token.h"
#include "testrig.h"

static otpca_p11_t *p11;

static void load(void) { cr_assert_eq(otpca_p11_new(NULL, &p11), OTPCA_ERR_OK); }
static void unload(void) { otpca_p11_destroy(&p11); }

static otpca_err open_with_pin(const char *label, const char *pin, otpca_token_t **tok)
{
    otpca_p11_uri uri;
    memset(&uri, 0, sizeof uri);
    snprintf(uri.token, sizeof uri.token, "%s", label);
    return otpca_token_open(p11, &uri, pin, tok);
}

Test(token, module_that_does_not_exist)
{
    otpca_p11_t *p = NULL;
    cr_expect_eq(otpca_p11_new("/nonexistent/libnothing.so", &p), OTPCA_ERR_MODULE_LOAD);
    cr_expect_null(p);
}

Test(token, file_that_is_not_a_module)
{
    char path[] = "/tmp/otpca-notamodule-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "not an ELF file\n", 16), 16);
    close(fd);
    otpca_p11_t *p = NULL;
    cr_expect_eq(otpca_p11_new(path, &p), OTPCA_ERR_MODULE_LOAD);
    cr_expect_null(p);
    unlink(path);
    /* A failed load leaves the process free to load the real module. */
    cr_expect_eq(otpca_p11_new(NULL, &p), OTPCA_ERR_OK);
    otpca_p11_destroy(&p);
}

Test(token, one_module_per_process, .init = load, .fini = unload)
{
    otpca_p11_t *second = NULL;
    cr_expect_eq(otpca_p11_new(NULL, &second), OTPCA_ERR_STATE);
    cr_expect_null(second);
}

Test(token, lists_the_rig_tokens, .init = load, .fini = unload)
{
    size_t n = 0;
    cr_assert_eq(otpca_p11_list(p11, NULL, 0, &n), OTPCA_ERR_OK);
    cr_assert_geq(n, 12); /* root, cloud, mgr, op, 8 nodes (+ a free slot) */
    otpca_token_info *infos = calloc(n, sizeof *infos);
    cr_assert_eq(otpca_p11_list(p11, infos, n, &n), OTPCA_ERR_OK);
    int root = 0, nodes = 0;
    for (size_t i = 0; i < n; i++) {
        root += strcmp(infos[i].label, "otpca-root") == 0;
        nodes += strncmp(infos[i].label, "node-", 5) == 0;
    }
    free(infos);
    cr_expect_eq(root, 1);
    cr_expect_eq(nodes, 8);
}

Test(token, wrong_pin_is_pin_incorrect_and_leaks_nothing, .init = load, .fini = unload)
{
    otpca_token_t *tok = NULL;
    cr_expect_eq(open_with_pin("node-000004", "not-the-pin", &tok), OTPCA_ERR_PIN_INCORRECT);
    cr_expect_null(tok);
    cr_expect_eq(otpca_p11_open_sessions(p11), 0, "the failed login closed its session");
    /* The failed attempt left no session or login behind: the right PIN
     * still logs in, and a handle opened without a PIN is not logged in. */
    otpca_token_t *anon = NULL;
    cr_assert_eq(open_with_pin("node-000004", NULL, &anon), OTPCA_ERR_OK);
    otpca_obj_t key;
    cr_expect_eq(otpca_token_find(anon, OTPCA_OBJ_PRIVATE_KEY, "device-key", NULL, 0, &key),
                 OTPCA_ERR_OBJECT_NOT_FOUND, "private objects are invisible before login");
    otpca_token_destroy(&anon);
    tok = testrig_open(p11, "node-000004");
    cr_expect_eq(otpca_token_find(tok, OTPCA_OBJ_PRIVATE_KEY, "device-key", NULL, 0, &key), OTPCA_ERR_OK);
    otpca_token_destroy(&tok);
}

Test(token, missing_token_and_ambiguous_uri, .init = load, .fini = unload)
{
    otpca_token_t *tok = NULL;
    cr_expect_eq(open_with_pin("no-such-token", "1234", &tok), OTPCA_ERR_TOKEN_NOT_FOUND);
    cr_expect_eq(otpca_p11_open_sessions(p11), 0);
    otpca_p11_uri any;
    memset(&any, 0, sizeof any); /* matches every token */
    cr_expect_eq(otpca_token_open(p11, &any, NULL, &tok), OTPCA_ERR_TOKEN_AMBIGUOUS);
    cr_expect_null(tok);
    cr_expect_eq(otpca_p11_open_sessions(p11), 0);
}

Test(token, token_by_serial, .init = load, .fini = unload)
{
    otpca_token_info infos[64];
    size_t n = 0;
    cr_assert_eq(otpca_p11_list(p11, infos, 64, &n), OTPCA_ERR_OK);
    const char *serial = NULL;
    for (size_t i = 0; i < n && i < 64; i++)
        if (strcmp(infos[i].label, "node-000005") == 0)
            serial = infos[i].serial;
    cr_assert_not_null(serial);
    otpca_p11_uri uri;
    memset(&uri, 0, sizeof uri);
    snprintf(uri.serial, sizeof uri.serial, "%s", serial);
    otpca_token_t *tok = NULL;
    cr_assert_eq(otpca_token_open(p11, &uri, NULL, &tok), OTPCA_ERR_OK);
    cr_expect_str_eq(otpca_token_label(tok), "node-000005");
    otpca_token_destroy(&tok);
}

Test(token, keygen_is_non_extractable_and_findable_by_kid, .init = load, .fini = unload)
{
    otpca_token_t *tok = testrig_open(p11, "node-000004");
    const char *label = testrig_unique("kg");
    otpca_obj_t priv, pub, found;
    unsigned char sec1[OTPCA_EC_P256_SEC1_LEN], again[OTPCA_EC_P256_SEC1_LEN];
    cr_assert_eq(otpca_token_keygen_p256(tok, label, NULL, 0, &priv, &pub), OTPCA_ERR_OK);
    cr_expect_eq(otpca_token_keygen_p256(tok, label, NULL, 0, NULL, NULL), OTPCA_ERR_EXISTS);

    int sensitive, extractable, refused;
    cr_assert_eq(otpca_token_obj_protection(tok, priv, &sensitive, &extractable, &refused), OTPCA_ERR_OK);
    cr_expect_eq(sensitive, 1);
    cr_expect_eq(extractable, 0);
    cr_expect_eq(refused, 1);

    cr_assert_eq(otpca_token_pubkey_sec1(tok, priv, sec1), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_pubkey_sec1(tok, pub, again), OTPCA_ERR_OK);
    cr_expect_eq(sec1[0], 0x04);
    cr_expect_arr_eq(sec1, again, sizeof sec1);

    /* The id is the first 8 bytes of SHA-256(SEC1): compute it in the
     * token and look the key up by it. */
    unsigned char kid[WC_SHA256_DIGEST_SIZE];
    cr_assert_eq(wc_Sha256Hash(sec1, sizeof sec1, kid), 0);
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_PRIVATE_KEY, NULL, kid, 8, &found), OTPCA_ERR_OK);
    cr_expect_eq(found, priv);
    otpca_token_destroy(&tok);
}

Test(token, seed_is_non_extractable, .init = load, .fini = unload)
{
    otpca_token_t *tok = testrig_open(p11, "node-000004");
    otpca_obj_t seed;
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_SECRET_KEY, "totp", NULL, 0, &seed), OTPCA_ERR_OK);
    int sensitive, extractable, refused;
    cr_assert_eq(otpca_token_obj_protection(tok, seed, &sensitive, &extractable, &refused), OTPCA_ERR_OK);
    cr_expect_eq(sensitive, 1);
    cr_expect_eq(extractable, 0);
    cr_expect_eq(refused, 1);
    static const unsigned char s[20] = "abcdefghijabcdefghij";
    cr_expect_eq(otpca_token_seed_import(tok, "totp", NULL, 0, s, sizeof s, NULL), OTPCA_ERR_EXISTS);
    otpca_token_destroy(&tok);
}

Test(token, unknown_and_ambiguous_objects, .init = load, .fini = unload)
{
    otpca_token_t *tok = testrig_open(p11, "node-000004");
    otpca_obj_t o;
    cr_expect_eq(otpca_token_find(tok, OTPCA_OBJ_PRIVATE_KEY, "no-such-key", NULL, 0, &o),
                 OTPCA_ERR_OBJECT_NOT_FOUND);
    /* device-key names a private and a public object. */
    cr_expect_eq(otpca_token_find(tok, OTPCA_OBJ_ANY, "device-key", NULL, 0, &o), OTPCA_ERR_OBJECT_AMBIGUOUS);
    otpca_p11_uri uri;
    cr_assert_eq(otpca_p11_uri_parse("pkcs11:token=node-000004;object=device-key;type=public", &uri),
                 OTPCA_ERR_OK);
    cr_expect_eq(otpca_token_find_uri(tok, &uri, OTPCA_OBJ_ANY, &o), OTPCA_ERR_OK);
    otpca_token_destroy(&tok);
}

Test(token, sign_raw_and_der, .init = load, .fini = unload)
{
    otpca_token_t *tok = testrig_open(p11, "node-000004");
    otpca_obj_t key;
    unsigned char digest[32] = {1, 2, 3}, sig[OTPCA_SIG_DER_MAX];
    size_t len = sizeof sig;
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_PRIVATE_KEY, "device-key", NULL, 0, &key), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_sign_digest(tok, key, digest, 32, OTPCA_SIG_RAW, sig, &len), OTPCA_ERR_OK);
    cr_expect_eq(len, OTPCA_SIG_RAW_LEN);
    len = sizeof sig;
    cr_assert_eq(otpca_token_sign_digest(tok, key, digest, 32, OTPCA_SIG_DER, sig, &len), OTPCA_ERR_OK);
    cr_expect(len >= 8 && len <= OTPCA_SIG_DER_MAX);
    cr_expect_eq(sig[0], 0x30);
    cr_expect_eq((size_t)sig[1] + 2, len);
    len = 10;
    cr_expect_eq(otpca_token_sign_digest(tok, key, digest, 32, OTPCA_SIG_RAW, sig, &len),
                 OTPCA_ERR_BUFFER_TOO_SMALL);
    /* A secret key cannot make an ECDSA signature. */
    otpca_obj_t seed;
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_SECRET_KEY, "totp", NULL, 0, &seed), OTPCA_ERR_OK);
    len = sizeof sig;
    cr_expect_neq(otpca_token_sign_digest(tok, seed, digest, 32, OTPCA_SIG_RAW, sig, &len), OTPCA_ERR_OK);
    otpca_token_destroy(&tok);
}

struct worker {
    otpca_token_t *tok;
    otpca_obj_t key;
    int ok;
};

static void *sign_many(void *arg)
{
    struct worker *w = arg;
    unsigned char digest[32] = {9}, sig[OTPCA_SIG_RAW_LEN];
    w->ok = 0;
    for (int i = 0; i < 50; i++) {
        size_t len = sizeof sig;
        if (otpca_token_sign_digest(w->tok, w->key, digest, 32, OTPCA_SIG_RAW, sig, &len) == OTPCA_ERR_OK)
            w->ok++;
    }
    return NULL;
}

Test(token, clones_share_the_login_across_threads, .init = load, .fini = unload)
{
    otpca_token_t *tok = testrig_open(p11, "node-000004");
    struct worker w[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(otpca_token_clone(tok, &w[i].tok), OTPCA_ERR_OK);
        cr_assert_eq(otpca_token_find(w[i].tok, OTPCA_OBJ_PRIVATE_KEY, "device-key", NULL, 0, &w[i].key),
                     OTPCA_ERR_OK);
        pthread_create(&th[i], NULL, sign_many, &w[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(w[i].ok, 50);
    }
    /* The original goes first; the clones keep the login until the last. */
    otpca_token_destroy(&tok);
    otpca_obj_t key;
    cr_expect_eq(otpca_token_find(w[0].tok, OTPCA_OBJ_PRIVATE_KEY, "device-key", NULL, 0, &key), OTPCA_ERR_OK);
    cr_expect_eq(otpca_p11_open_sessions(p11), 2);
    otpca_token_destroy(&w[0].tok);
    otpca_token_destroy(&w[1].tok);
    cr_expect_eq(otpca_p11_open_sessions(p11), 0);
}

/* The directory of the SoftHSM token labelled label (file backend). */
static int token_dir(const char *rig, const char *label, char *out, size_t cap)
{
    char tokens[512];
    snprintf(tokens, sizeof tokens, "%s/tokens", rig);
    DIR *d = opendir(tokens);
    if (!d)
        return -1;
    struct dirent *e;
    int found = -1;
    while ((e = readdir(d)) && found < 0) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024], buf[4096];
        snprintf(path, sizeof path, "%s/%s/token.object", tokens, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (memmem(buf, n, label, strlen(label))) {
            snprintf(out, cap, "%s/%s", tokens, e->d_name);
            found = 0;
        }
    }
    closedir(d);
    return found;
}

Test(token, removal_is_reported)
{
    /* A rig of its own (this test runs in its own process): pulling a
     * token out of the shared rig would disturb tests running beside it. */
    char rig[] = "/tmp/otpca-removal-XXXXXX", dir[1200], cmd[1300], uri_text[600];
    cr_assert_not_null(mkdtemp(rig));
    cr_assert_eq(otpca_rig_create(rig, NULL, 1, 0, NULL, NULL), OTPCA_ERR_OK);
    cr_assert_eq(otpca_p11_new(NULL, &p11), OTPCA_ERR_OK);
    snprintf(uri_text, sizeof uri_text, "pkcs11:token=node-000001?pin-source=file:%s/pins/node-000001.pin", rig);
    otpca_p11_uri uri;
    otpca_token_t *tok = NULL;
    cr_assert_eq(otpca_p11_uri_parse(uri_text, &uri), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_open_uri(p11, &uri, NULL, &tok), OTPCA_ERR_OK);
    otpca_obj_t key;
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_PRIVATE_KEY, "device-key", NULL, 0, &key), OTPCA_ERR_OK);
    cr_assert_eq(otpca_token_present(tok), OTPCA_ERR_OK);

    cr_assert_eq(token_dir(rig, "node-000001", dir, sizeof dir), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    cr_expect_eq(otpca_token_present(tok), OTPCA_ERR_TOKEN_REMOVED);
    unsigned char digest[32] = {0}, sig[OTPCA_SIG_RAW_LEN];
    size_t len = sizeof sig;
    cr_expect_neq(otpca_token_sign_digest(tok, key, digest, 32, OTPCA_SIG_RAW, sig, &len), OTPCA_ERR_OK);
    otpca_token_destroy(&tok);
    otpca_p11_destroy(&p11);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", rig);
    cr_expect_eq(system(cmd), 0);
}
