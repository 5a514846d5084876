/*
 * `key = value` configuration files (config.h). Kept by hand: the format is
 * six lines of grammar and a library would add a dependency for less than
 * it takes to call it.
 */
#include "otpca/common/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_LEN 4096

struct table {
    const otpca_config_key *keys;
    size_t n;
    void *cfg;
};

static otpca_err set(const struct table *t, const otpca_config_key *k, const char *value)
{
    size_t n = strlen(value);
    if (n >= k->len)
        return OTPCA_ERR_CONFIG;
    memcpy((char *)t->cfg + k->off, value, n + 1);
    return OTPCA_ERR_OK;
}

static const otpca_config_key *find(const struct table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->keys[i].name, name))
            return &t->keys[i];
    return NULL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static otpca_err load_file(const char *path, const struct table *t, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return OTPCA_ERR_CONFIG;
    }
    char line[LINE_MAX_LEN];
    unsigned lineno = 0;
    otpca_err ret = OTPCA_ERR_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, err_len, "%s:%u: line too long", path, lineno);
            ret = OTPCA_ERR_CONFIG;
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, err_len, "%s:%u: expected 'key = value'", path, lineno);
            ret = OTPCA_ERR_CONFIG;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        const otpca_config_key *k = find(t, name);
        if (!k) {
            snprintf(err, err_len, "%s:%u: unknown key '%s'", path, lineno, name);
            ret = OTPCA_ERR_CONFIG;
            break;
        }
        if (set(t, k, value)) {
            snprintf(err, err_len, "%s:%u: value of '%s' too long", path, lineno, name);
            ret = OTPCA_ERR_CONFIG;
            break;
        }
    }
    if (!ret && ferror(f)) {
        snprintf(err, err_len, "%s: read error", path);
        ret = OTPCA_ERR_CONFIG;
    }
    fclose(f);
    return ret;
}

otpca_err otpca_config_load(const char *path, const char *env_prefix, const otpca_config_key *keys, size_t nkeys,
                            void *cfg, size_t cfg_size, char *err, size_t err_len)
{
    char scratch[8];
    struct table t = {keys, nkeys, cfg};
    if (!err) {
        err = scratch;
        err_len = sizeof scratch;
    }
    memset(cfg, 0, cfg_size);
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].dflt && set(&t, &keys[i], keys[i].dflt)) {
            snprintf(err, err_len, "default of '%s' too long", keys[i].name);
            return OTPCA_ERR_CONFIG;
        }
    if (path && *path) {
        otpca_err ret = load_file(path, &t, err, err_len);
        if (ret)
            return ret;
    }
    for (size_t i = 0; i < nkeys; i++) {
        char env[96];
        size_t n = (size_t)snprintf(env, sizeof env, "%s", env_prefix);
        for (const char *c = keys[i].name; *c && n < sizeof env - 1; c++)
            env[n++] = (char)toupper((unsigned char)*c);
        env[n] = '\0';
        const char *v = getenv(env);
        if (v && set(&t, &keys[i], v)) {
            snprintf(err, err_len, "%s: value too long", env);
            return OTPCA_ERR_CONFIG;
        }
    }
    return OTPCA_ERR_OK;
}

otpca_err otpca_config_uint(const char *value, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    if (!value || !isdigit((unsigned char)*value))
        return OTPCA_ERR_CONFIG;
    unsigned long v = strtoul(value, &end, 10);
    if (errno || *end || v < min || v > max)
        return OTPCA_ERR_CONFIG;
    *out = v;
    return OTPCA_ERR_OK;
}

int otpca_option_long(const char *text, unsigned long min, unsigned long max, long *out)
{
    unsigned long v;
    if (max > (unsigned long)LONG_MAX || otpca_config_uint(text, min, max, &v))
        return -1;
    *out = (long)v;
    return 0;
}
