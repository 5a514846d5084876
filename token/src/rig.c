/*
 * SoftHSM test rig (see rig.h for the layout). Uses only the public token
 * API, like any other client of libotpca-token.
 */
#include "otpca/token/rig.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "otpca/common/log.h"
#include "otpca/common/secmem.h"
#include "otpca/token/token.h"

#define RIG_SEED_LEN 20 /* RFC 4226 §4 R6 recommends 160 bits */
#define RIG_PIN_HEX 8   /* 8 random bytes, 16 hex digits */

struct rig {
    const char *dir;
    otpca_p11_t *p11;
    FILE *manifest, *operators;
    char *pins; /* secret memory: user and SO PIN text */
};

static void hex(char *out, const unsigned char *in, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* dir/name into out, or -1 if it does not fit. */
static int join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int fill_random(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Create path exclusively with mode 0600 and write text to it. */
static otpca_err write_secret_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("%s: %s", path, strerror(errno));
        return errno == EEXIST ? OTPCA_ERR_EXISTS : OTPCA_ERR_IO;
    }
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int ok = w == (ssize_t)n && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    return ok ? OTPCA_ERR_OK : OTPCA_ERR_IO;
}

static FILE *open_secret_stream(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f)
        close(fd);
    return f;
}

/* Initialise a token with fresh random PINs (saved under pins/), then open
 * it logged in. */
static otpca_err new_token(struct rig *r, const char *label, otpca_token_t **tok)
{
    unsigned char raw[2 * RIG_PIN_HEX];
    char *user = r->pins, *so = r->pins + 64, path[PATH_MAX];
    otpca_err ret = OTPCA_ERR_IO;
    if (fill_random(raw, sizeof raw) != 0)
        goto out;
    hex(user, raw, RIG_PIN_HEX);
    hex(so, raw + RIG_PIN_HEX, RIG_PIN_HEX);
    unsigned long slot = 0;
    ret = otpca_p11_init_token(r->p11, label, so, user, &slot);
    if (ret)
        goto out;
    if (snprintf(path, sizeof path, "%s/pins/%s.pin", r->dir, label) >= (int)sizeof path) {
        ret = OTPCA_ERR_INVALID_ARG;
        goto out;
    }
    strcat(user, "\n");
    ret = write_secret_file(path, user);
    user[strlen(user) - 1] = '\0';
    if (ret)
        goto out;
    if (snprintf(path, sizeof path, "%s/pins/%s.so-pin", r->dir, label) >= (int)sizeof path) {
        ret = OTPCA_ERR_INVALID_ARG;
        goto out;
    }
    ret = write_secret_file(path, so);
    if (ret)
        goto out;
    ret = otpca_token_open_slot(r->p11, slot, user, tok);
out:
    otpca_memzero(raw, sizeof raw);
    otpca_memzero(r->pins, 128);
    return ret;
}

static otpca_err keypair(otpca_token_t *tok, const char *label, char pub_hex[2 * OTPCA_EC_P256_SEC1_LEN + 1])
{
    otpca_obj_t priv;
    unsigned char sec1[OTPCA_EC_P256_SEC1_LEN];
    otpca_err ret = otpca_token_keygen_p256(tok, label, NULL, 0, &priv, NULL);
    if (!ret)
        ret = otpca_token_pubkey_sec1(tok, priv, sec1);
    if (!ret && pub_hex)
        hex(pub_hex, sec1, sizeof sec1);
    return ret;
}

/* A fresh TOTP seed imported into tok; its hex goes to seed_hex (secret). */
static otpca_err seed(otpca_token_t *tok, const char *label, char seed_hex[2 * RIG_SEED_LEN + 1])
{
    unsigned char s[RIG_SEED_LEN];
    otpca_err ret = fill_random(s, sizeof s) == 0 ? OTPCA_ERR_OK : OTPCA_ERR_IO;
    if (!ret)
        ret = otpca_token_seed_import(tok, label, NULL, 0, s, sizeof s, NULL);
    if (!ret)
        hex(seed_hex, s, sizeof s);
    otpca_memzero(s, sizeof s);
    return ret;
}

static otpca_err one_key_token(struct rig *r, const char *label, const char *key_label)
{
    otpca_token_t *tok = NULL;
    otpca_err ret = new_token(r, label, &tok);
    if (!ret)
        ret = keypair(tok, key_label, NULL);
    otpca_token_destroy(&tok);
    return ret;
}

/* The cloud's signing key pair and the AES key its seeds are sealed under. */
static otpca_err cloud_token(struct rig *r)
{
    otpca_token_t *tok = NULL;
    otpca_err ret = new_token(r, OTPCA_RIG_CLOUD_TOKEN, &tok);
    if (!ret)
        ret = keypair(tok, OTPCA_RIG_CLOUD_KEY, NULL);
    if (!ret)
        ret = otpca_token_keygen_aes(tok, OTPCA_RIG_CLOUD_WRAP, 256, NULL);
    otpca_token_destroy(&tok);
    return ret;
}

static otpca_err manager(struct rig *r, unsigned i, char *seed_hex)
{
    char label[OTPCA_P11_LABEL_MAX + 1], op[OTPCA_P11_LABEL_MAX + 1];
    otpca_token_t *tok = NULL;
    snprintf(label, sizeof label, OTPCA_RIG_MANAGER_FMT, i);
    snprintf(op, sizeof op, OTPCA_RIG_OPERATOR_FMT, i);
    otpca_err ret = one_key_token(r, label, OTPCA_RIG_MANAGER_KEY);
    if (!ret)
        ret = new_token(r, op, &tok);
    if (!ret)
        ret = seed(tok, OTPCA_RIG_OPERATOR_SEED, seed_hex);
    if (!ret && fprintf(r->operators, "%s,%s,%s,SHA1,6,30\n", op, op, seed_hex) < 0)
        ret = OTPCA_ERR_IO;
    otpca_token_destroy(&tok);
    return ret;
}

static otpca_err node(struct rig *r, unsigned i, char *seed_hex)
{
    char label[OTPCA_P11_LABEL_MAX + 1], pub[2 * OTPCA_EC_P256_SEC1_LEN + 1];
    otpca_token_t *tok = NULL;
    snprintf(label, sizeof label, OTPCA_RIG_NODE_FMT, i);
    otpca_err ret = new_token(r, label, &tok);
    if (!ret)
        ret = keypair(tok, OTPCA_RIG_DEVICE_KEY, pub);
    if (!ret)
        ret = seed(tok, OTPCA_RIG_DEVICE_SEED, seed_hex);
    /* Locally administered unicast MACs, one per node. */
    if (!ret && fprintf(r->manifest, "%s,02:00:00:%02x:%02x:%02x,%s,%s,SHA1,6,30\n", label,
                        (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, pub, seed_hex) < 0)
        ret = OTPCA_ERR_IO;
    otpca_token_destroy(&tok);
    return ret;
}

static otpca_err make_dirs(const char *dir)
{
    char path[PATH_MAX];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return OTPCA_ERR_IO;
    if (join(path, sizeof path, dir, "tokens") != 0)
        return OTPCA_ERR_INVALID_ARG;
    if (mkdir(path, 0700) != 0) {
        if (errno == EEXIST)
            log_error("%s already holds a rig; remove it first", dir);
        return errno == EEXIST ? OTPCA_ERR_EXISTS : OTPCA_ERR_IO;
    }
    if (join(path, sizeof path, dir, "pins") != 0)
        return OTPCA_ERR_INVALID_ARG;
    if (mkdir(path, 0700) != 0)
        return errno == EEXIST ? OTPCA_ERR_EXISTS : OTPCA_ERR_IO;
    return OTPCA_ERR_OK;
}

static int close_stream(FILE **f)
{
    int ok = 1;
    if (*f) {
        ok = fflush(*f) == 0 && fsync(fileno(*f)) == 0;
        ok = fclose(*f) == 0 && ok;
        *f = NULL;
    }
    return ok;
}

otpca_err otpca_rig_create(const char *dir_in, const char *module_path, unsigned nodes,
                           unsigned managers, otpca_rig_progress progress, void *arg)
{
    struct rig r = {0};
    char dir[PATH_MAX], path[PATH_MAX], text[PATH_MAX * 2 + 512];
    char *seed_hex = NULL;
    otpca_err ret;
    if (!dir_in || nodes > OTPCA_RIG_MAX_NODES || managers > OTPCA_RIG_MAX_MANAGERS)
        return OTPCA_ERR_INVALID_ARG;
    ret = make_dirs(dir_in);
    if (ret)
        return ret;
    if (!realpath(dir_in, dir))
        return OTPCA_ERR_IO;
    r.dir = dir;

    if (join(path, sizeof path, dir, "softhsm2.conf") != 0)
        return OTPCA_ERR_INVALID_ARG;
    int tn = snprintf(text, sizeof text,
             "# SoftHSM configuration of an otpca test rig\n"
             "directories.tokendir = %s/tokens\nobjectstore.backend = file\n"
             "log.level = ERROR\nslots.removable = false\n",
             dir);
    if (tn < 0 || (size_t)tn >= sizeof text)
        return OTPCA_ERR_INVALID_ARG;
    ret = write_secret_file(path, text);
    if (ret)
        return ret;
    if (setenv("SOFTHSM2_CONF", path, 1) != 0)
        return OTPCA_ERR_IO;

    r.pins = otpca_secmem_alloc(128);
    seed_hex = otpca_secmem_alloc(2 * RIG_SEED_LEN + 1);
    if (!r.pins || !seed_hex) {
        ret = OTPCA_ERR_NOMEM;
        goto out;
    }
    ret = otpca_p11_new(module_path, &r.p11);
    if (ret)
        goto out;
    if (join(path, sizeof path, dir, "manifest.csv") == 0)
        r.manifest = open_secret_stream(path);
    if (join(path, sizeof path, dir, "operators.csv") == 0)
        r.operators = open_secret_stream(path);
    if (!r.manifest || !r.operators) {
        ret = OTPCA_ERR_IO;
        goto out;
    }
    fputs("serial,mac,public_key,seed,algorithm,digits,period\n", r.manifest);
    fputs("operator,token,seed,algorithm,digits,period\n", r.operators);

    unsigned total = 2 + 2 * managers + nodes, done = 0;
    ret = one_key_token(&r, OTPCA_RIG_ROOT_TOKEN, OTPCA_RIG_ROOT_KEY);
    if (!ret && progress)
        progress(++done, total, arg);
    if (!ret)
        ret = cloud_token(&r);
    if (!ret && progress)
        progress(++done, total, arg);
    for (unsigned i = 1; !ret && i <= managers; i++) {
        ret = manager(&r, i, seed_hex);
        done += 2;
        if (!ret && progress)
            progress(done, total, arg);
    }
    for (unsigned i = 1; !ret && i <= nodes; i++) {
        ret = node(&r, i, seed_hex);
        if (!ret && progress)
            progress(++done, total, arg);
    }
    if (ret)
        goto out;
    if (!close_stream(&r.manifest) || !close_stream(&r.operators)) {
        ret = OTPCA_ERR_IO;
        goto out;
    }
    tn = snprintf(text, sizeof text,
             "# otpca SoftHSM rig\nsofthsm2_conf = %s/softhsm2.conf\nmodule = %s\n"
             "root_token = %s\ncloud_token = %s\nmanagers = %u\nnodes = %u\n"
             "manifest = %s/manifest.csv\noperators = %s/operators.csv\npins = %s/pins\n",
             dir, module_path ? module_path : otpca_p11_default_module(), OTPCA_RIG_ROOT_TOKEN,
             OTPCA_RIG_CLOUD_TOKEN, managers, nodes, dir, dir, dir);
    if (tn < 0 || (size_t)tn >= sizeof text || join(path, sizeof path, dir, "rig.conf") != 0) {
        ret = OTPCA_ERR_INVALID_ARG;
        goto out;
    }
    ret = write_secret_file(path, text);
out:
    close_stream(&r.manifest);
    close_stream(&r.operators);
    otpca_p11_destroy(&r.p11);
    otpca_secmem_free(seed_hex, 2 * RIG_SEED_LEN + 1);
    otpca_secmem_free(r.pins, 128);
    return ret;
}
