/*
 * The `key = value` configuration file of otpca-cloud (see config.h). Kept
 * by hand: the format is six lines of grammar and a library would add a
 * dependency for less than it takes to call it.
 */
#include "otpca/cloud/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct key {
    const char *name;
    size_t off, len;
};

#define KEY(n) {#n, offsetof(otpca_cloud_config, n), sizeof(((otpca_cloud_config *)0)->n)}
static const struct key keys[] = {
    KEY(store),     KEY(token),   KEY(sign_key),          KEY(wrap_key),         KEY(curve_key),
    KEY(listen),    KEY(notices), KEY(workers),           KEY(max_skew),         KEY(lease_max_seconds),
    KEY(lease_max_enroll),        KEY(log_level),         KEY(log_format),
};

static otpca_err set(otpca_cloud_config *cfg, const struct key *k, const char *value)
{
    size_t n = strlen(value);
    if (n >= k->len)
        return OTPCA_ERR_CONFIG;
    memcpy((char *)cfg + k->off, value, n + 1);
    return OTPCA_ERR_OK;
}

static const struct key *find(const char *name)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(keys[i].name, name))
            return &keys[i];
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

static otpca_err load_file(const char *path, otpca_cloud_config *cfg, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return OTPCA_ERR_CONFIG;
    }
    char line[2 * OTPCA_CLOUD_CONFIG_VALUE_MAX];
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
        const struct key *k = find(name);
        if (!k) {
            snprintf(err, err_len, "%s:%u: unknown key '%s'", path, lineno, name);
            ret = OTPCA_ERR_CONFIG;
            break;
        }
        if (set(cfg, k, value)) {
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

otpca_err otpca_cloud_config_load(const char *path, otpca_cloud_config *cfg, char *err, size_t err_len)
{
    char scratch[8];
    if (!err) {
        err = scratch;
        err_len = sizeof scratch;
    }
    memset(cfg, 0, sizeof *cfg);
    set(cfg, find("store"), "otpca-cloud.db");
    set(cfg, find("sign_key"), "cloud-sign");
    set(cfg, find("wrap_key"), "seed-wrap");
    set(cfg, find("curve_key"), "curve-secret");
    set(cfg, find("workers"), "2");
    set(cfg, find("max_skew"), "90");
    set(cfg, find("lease_max_seconds"), "86400");
    set(cfg, find("lease_max_enroll"), "100000");
    set(cfg, find("listen"), "tcp://127.0.0.1:7400");
    set(cfg, find("notices"), "tcp://127.0.0.1:7401");
    set(cfg, find("log_level"), "info");
    set(cfg, find("log_format"), "text");
    if (path && *path) {
        otpca_err ret = load_file(path, cfg, err, err_len);
        if (ret)
            return ret;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char env[64] = "OTPCA_CLOUD_";
        size_t n = strlen(env);
        for (const char *c = keys[i].name; *c && n < sizeof env - 1; c++)
            env[n++] = (char)toupper((unsigned char)*c);
        env[n] = '\0';
        const char *v = getenv(env);
        if (v && set(cfg, &keys[i], v)) {
            snprintf(err, err_len, "%s: value too long", env);
            return OTPCA_ERR_CONFIG;
        }
    }
    return OTPCA_ERR_OK;
}

otpca_err otpca_cloud_config_uint(const char *value, unsigned long min, unsigned long max, unsigned long *out)
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
