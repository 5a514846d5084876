/*
 * Seeds at rest at the cloud (cloud/src/seeds.c): the store's seed key is
 * created once, kept only wrapped by the rig cloud token's seed-wrap key,
 * and loads again to the same key; seals open only for their serial and
 * untouched; a wrapped key that was tampered with, or a store without one,
 * is refused with a clear error.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "otpca/cloud/seeds.h"
#include "otpca/cloud/store.h"
#include "otpca/token/rig.h"
#include "testrig.h"

static otpca_p11_t *p11;
static otpca_token_t *tok;
static otpca_obj_t wrap;
static char dir[] = "/tmp/otpca-seeds-XXXXXX";
static char path[256];

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/store.db", dir);
    cr_assert_eq(otpca_p11_new(NULL, &p11), OTPCA_ERR_OK);
    tok = testrig_open(p11, OTPCA_RIG_CLOUD_TOKEN);
    cr_assert_eq(otpca_token_find(tok, OTPCA_OBJ_SECRET_KEY, OTPCA_RIG_CLOUD_WRAP, NULL, 0, &wrap), OTPCA_ERR_OK);
}

static void teardown(void)
{
    char cmd[300];
    otpca_token_destroy(&tok);
    otpca_p11_destroy(&p11);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(seeds, .init = setup, .fini = teardown);

static otpca_store *open_store(void)
{
    otpca_store *st = NULL;
    cr_assert_eq(otpca_store_open(path, &st), OTPCA_ERR_OK);
    return st;
}

Test(seeds, the_key_is_made_once_and_seals_survive_a_reload)
{
    otpca_store *st = open_store();
    otpca_seed_key *k = NULL;
    uint8_t seed[20], env[128], back[64];
    size_t env_len = 0, len = 0;
    for (size_t i = 0; i < sizeof seed; i++)
        seed[i] = (uint8_t)(0x31 + i);
    cr_expect_eq(otpca_seed_key_load(tok, wrap, st, 0, &k), OTPCA_ERR_NOT_FOUND, "no key and no create");
    cr_expect_null(k);
    cr_assert_eq(otpca_seed_key_load(tok, wrap, st, 1, &k), OTPCA_ERR_OK);
    cr_assert_eq(otpca_seed_seal(k, "node-1", seed, sizeof seed, env, sizeof env, &env_len), OTPCA_ERR_OK);
    cr_expect_eq(env_len, sizeof seed + OTPCA_SEED_ENV_OVERHEAD);
    cr_expect(memmem(env, env_len, seed, sizeof seed) == NULL, "no plaintext in the seal");
    otpca_seed_key_destroy(&k);
    cr_expect_null(k);

    /* Reloaded (create or not): the same key opens the old seal. */
    cr_assert_eq(otpca_seed_key_load(tok, wrap, st, 0, &k), OTPCA_ERR_OK);
    cr_assert_eq(otpca_seed_open(k, "node-1", env, env_len, back, sizeof back, &len), OTPCA_ERR_OK);
    cr_expect_eq(len, sizeof seed);
    cr_expect_arr_eq(back, seed, sizeof seed);
    otpca_seed_key_destroy(&k);
    cr_assert_eq(otpca_seed_key_load(tok, wrap, st, 1, &k), OTPCA_ERR_OK);
    cr_expect_eq(otpca_seed_open(k, "node-1", env, env_len, back, sizeof back, &len), OTPCA_ERR_OK);
    otpca_seed_key_destroy(&k);
    otpca_store_destroy(&st);
}

Test(seeds, a_seal_opens_only_for_its_serial_and_untouched)
{
    otpca_store *st = open_store();
    otpca_seed_key *k = NULL;
    uint8_t seed[32], env[128], back[64], zero[64] = {0};
    size_t env_len = 0, len = 0;
    for (size_t i = 0; i < sizeof seed; i++)
        seed[i] = (uint8_t)(i * 11 + 5);
    cr_assert_eq(otpca_seed_key_load(tok, wrap, st, 1, &k), OTPCA_ERR_OK);
    cr_assert_eq(otpca_seed_seal(k, "node-2", seed, sizeof seed, env, sizeof env, &env_len), OTPCA_ERR_OK);
    cr_expect_eq(otpca_seed_open(k, "node-3", env, env_len, back, sizeof back, &len), OTPCA_ERR_DECRYPT);
    cr_expect_arr_eq(back, zero, sizeof back, "wiped on failure");
    for (size_t i = 0; i < env_len; i++) {
        env[i] ^= 0x04;
        memset(back, 0x55, sizeof back);
        cr_expect_eq(otpca_seed_open(k, "node-2", env, env_len, back, sizeof back, &len), OTPCA_ERR_DECRYPT,
                     "byte %zu flipped", i);
        cr_expect_arr_eq(back, zero, sizeof back);
        env[i] ^= 0x04;
    }
    cr_expect_eq(otpca_seed_open(k, "node-2", env, env_len - 1, back, sizeof back, &len), OTPCA_ERR_DECRYPT);
    cr_expect_eq(otpca_seed_open(k, "node-2", env, env_len, back, sizeof back, &len), OTPCA_ERR_OK);
    /* Two seals of one seed differ (fresh IV). */
    uint8_t env2[128];
    size_t env2_len = 0;
    cr_assert_eq(otpca_seed_seal(k, "node-2", seed, sizeof seed, env2, sizeof env2, &env2_len), OTPCA_ERR_OK);
    cr_expect(memcmp(env, env2, env_len) != 0);
    /* Limits. */
    cr_expect_eq(otpca_seed_seal(k, "node-2", seed, 15, env, sizeof env, &env_len), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seed_seal(k, "", seed, 16, env, sizeof env, &env_len), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_seed_seal(k, "node-2", seed, 16, env, 16 + OTPCA_SEED_ENV_OVERHEAD - 1, &env_len),
                 OTPCA_ERR_BUFFER_TOO_SMALL);
    otpca_seed_key_destroy(&k);
    otpca_store_destroy(&st);
}

Test(seeds, a_tampered_wrapped_key_is_refused)
{
    otpca_store *st = open_store();
    otpca_seed_key *k = NULL;
    cr_assert_eq(otpca_seed_key_load(tok, wrap, st, 1, &k), OTPCA_ERR_OK);
    otpca_seed_key_destroy(&k);
    otpca_store_destroy(&st);
    /* Flip one byte of the wrapped key behind the store's back. */
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    uint8_t w[128];
    int n = 0;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'seed_key'", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    n = sqlite3_column_bytes(q, 0);
    cr_assert(n > 30 && n <= (int)sizeof w);
    memcpy(w, sqlite3_column_blob(q, 0), (size_t)n);
    sqlite3_finalize(q);
    w[20] ^= 1;
    cr_assert_eq(sqlite3_prepare_v2(db, "UPDATE meta SET value = ?1 WHERE key = 'seed_key'", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_bind_blob(q, 1, w, n, SQLITE_STATIC), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);
    sqlite3_close(db);
    st = open_store();
    cr_expect_eq(otpca_seed_key_load(tok, wrap, st, 1, &k), OTPCA_ERR_DECRYPT, "never replaced by a new key");
    cr_expect_null(k);
    otpca_store_destroy(&st);
}
