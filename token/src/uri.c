/*
 * RFC 7512 PKCS#11 URI parser. Written by hand because neither libp11 nor
 * wolfSSL parses URIs, and p11-kit's parser would bring a second PKCS#11
 * stack into the process; the grammar is small (RFC 7512 §2.3).
 */
#include "otpca/common/hex.h"
#include "otpca/token/uri.h"

#include <ctype.h>
#include <string.h>

#include "otpca/common/secmem.h"

/* Percent-decode [s, s+n) into out. Text mode needs room for a NUL
 * (cap includes it) and refuses a decoded NUL. Returns the decoded
 * length, or -1 on a bad escape or overflow. */
static long pct_decode(const char *s, size_t n, unsigned char *out, size_t cap, int text)
{
    size_t room = text ? cap - 1 : cap, o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3)
                return -1;
            int h = otpca_hex_digit((unsigned char)s[i + 1]), l = otpca_hex_digit((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
            if (text && c == 0)
                return -1;
        }
        if (o >= room)
            return -1;
        out[o++] = (unsigned char)c;
    }
    if (text)
        out[o] = '\0';
    return (long)o;
}

static otpca_err set_text(char *dst, size_t cap, int *seen, const char *v, size_t n)
{
    if (*seen)
        return OTPCA_ERR_URI_ATTR;
    *seen = 1;
    if (pct_decode(v, n, (unsigned char *)dst, cap, 1) < 0)
        return OTPCA_ERR_URI_SYNTAX;
    return OTPCA_ERR_OK;
}

static int key_is(const char *k, size_t kn, const char *name)
{
    return strlen(name) == kn && memcmp(k, name, kn) == 0;
}

struct seen {
    int token, manufacturer, serial, model, object, id, type, lib_man, lib_desc, lib_ver;
    int pin_source, pin_value, module_path, module_name;
};

static otpca_err path_attr(otpca_p11_uri *u, struct seen *sn, const char *k, size_t kn,
                           const char *v, size_t vn)
{
    char scratch[OTPCA_P11_OBJECT_MAX + 1];
    if (key_is(k, kn, "token"))
        return set_text(u->token, sizeof u->token, &sn->token, v, vn);
    if (key_is(k, kn, "manufacturer"))
        return set_text(u->manufacturer, sizeof u->manufacturer, &sn->manufacturer, v, vn);
    if (key_is(k, kn, "serial"))
        return set_text(u->serial, sizeof u->serial, &sn->serial, v, vn);
    if (key_is(k, kn, "model"))
        return set_text(u->model, sizeof u->model, &sn->model, v, vn);
    if (key_is(k, kn, "object"))
        return set_text(u->object, sizeof u->object, &sn->object, v, vn);
    if (key_is(k, kn, "id")) {
        if (sn->id)
            return OTPCA_ERR_URI_ATTR;
        sn->id = 1;
        long n = pct_decode(v, vn, u->id, sizeof u->id, 0);
        if (n < 0)
            return OTPCA_ERR_URI_SYNTAX;
        u->id_len = (size_t)n;
        u->has_id = 1;
        return OTPCA_ERR_OK;
    }
    if (key_is(k, kn, "type")) {
        otpca_err e = set_text(scratch, sizeof scratch, &sn->type, v, vn);
        if (e)
            return e;
        static const struct {
            const char *name;
            otpca_obj_type t;
        } types[] = {{"private", OTPCA_OBJ_PRIVATE_KEY}, {"public", OTPCA_OBJ_PUBLIC_KEY},
                     {"secret-key", OTPCA_OBJ_SECRET_KEY}, {"cert", OTPCA_OBJ_CERT},
                     {"data", OTPCA_OBJ_DATA}};
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcmp(scratch, types[i].name) == 0) {
                u->type = types[i].t;
                return OTPCA_ERR_OK;
            }
        return OTPCA_ERR_URI_SYNTAX;
    }
    /* Library attributes are valid RFC 7512 but say
     * nothing otpca matches on (tokens are chosen by label or serial). */
    if (key_is(k, kn, "library-manufacturer"))
        return set_text(scratch, sizeof scratch, &sn->lib_man, v, vn);
    if (key_is(k, kn, "library-description"))
        return set_text(scratch, sizeof scratch, &sn->lib_desc, v, vn);
    if (key_is(k, kn, "library-version"))
        return set_text(scratch, sizeof scratch, &sn->lib_ver, v, vn);
    if (kn > 2 && memcmp(k, "x-", 2) == 0)
        return OTPCA_ERR_OK;
    return OTPCA_ERR_URI_ATTR;
}

static otpca_err query_attr(otpca_p11_uri *u, struct seen *sn, const char *k, size_t kn,
                            const char *v, size_t vn)
{
    if (key_is(k, kn, "pin-source"))
        return set_text(u->pin_source, sizeof u->pin_source, &sn->pin_source, v, vn);
    if (key_is(k, kn, "pin-value")) {
        otpca_err e = set_text(u->pin_value, sizeof u->pin_value, &sn->pin_value, v, vn);
        u->has_pin_value = e == OTPCA_ERR_OK;
        return e;
    }
    if (key_is(k, kn, "module-path"))
        return set_text(u->module_path, sizeof u->module_path, &sn->module_path, v, vn);
    if (key_is(k, kn, "module-name"))
        return set_text(u->module_name, sizeof u->module_name, &sn->module_name, v, vn);
    if (kn > 2 && memcmp(k, "x-", 2) == 0)
        return OTPCA_ERR_OK;
    return OTPCA_ERR_URI_ATTR;
}

/* Split [s, end) on sep into key=value pairs and hand each to fn. */
static otpca_err each_attr(otpca_p11_uri *u, struct seen *sn, const char *s, const char *end,
                           char sep,
                           otpca_err (*fn)(otpca_p11_uri *, struct seen *, const char *, size_t,
                                           const char *, size_t))
{
    while (s < end) {
        const char *next = memchr(s, sep, (size_t)(end - s));
        if (!next)
            next = end;
        const char *eq = memchr(s, '=', (size_t)(next - s));
        if (!eq || eq == s)
            return OTPCA_ERR_URI_SYNTAX;
        otpca_err e = fn(u, sn, s, (size_t)(eq - s), eq + 1, (size_t)(next - eq - 1));
        if (e)
            return e;
        if (next == end)
            break;
        s = next + 1;
        if (s == end) /* trailing separator */
            return OTPCA_ERR_URI_SYNTAX;
    }
    return OTPCA_ERR_OK;
}

otpca_err otpca_p11_uri_parse(const char *s, otpca_p11_uri *out)
{
    otpca_err ret;
    struct seen sn = {0};
    memset(out, 0, sizeof *out);
    if (strncmp(s, "pkcs11:", 7) != 0) {
        ret = OTPCA_ERR_URI_SYNTAX;
        goto out;
    }
    const char *p = s + 7, *end = s + strlen(s);
    const char *q = strchr(p, '?');
    if (strchr(p, '#')) { /* fragments are not part of the grammar */
        ret = OTPCA_ERR_URI_SYNTAX;
        goto out;
    }
    ret = each_attr(out, &sn, p, q ? q : end, ';', path_attr);
    if (ret == OTPCA_ERR_OK && q)
        ret = each_attr(out, &sn, q + 1, end, '&', query_attr);
    if (ret == OTPCA_ERR_OK && sn.pin_source && sn.pin_value)
        ret = OTPCA_ERR_URI_ATTR; /* which one would win is unclear: refuse */
out:
    if (ret != OTPCA_ERR_OK)
        otpca_p11_uri_clear(out);
    return ret;
}

void otpca_p11_uri_clear(otpca_p11_uri *u)
{
    otpca_memzero(u, sizeof *u);
}
