/*
 * CRLs with OpenSSL's X509_CRL, signed inside the token (crl.h). This file
 * holds OpenSSL headers only (never wolfSSL's).
 *
 * The signing key: OpenSSL signs through an EVP_PKEY; ours is an EC_KEY
 * holding only the public key, with an EC_KEY_METHOD whose sign functions
 * ask the token (otpca_token_sign_digest). libp11 can make such a key too,
 * but only from its own slot and session objects, which this library does
 * not use (module.c says why), and OpenSSL 3's replacement for key methods
 * is a whole provider. EC_KEY_METHOD is deprecated in 3.0, hence the API
 * level below; OpenSSL 3.0 still takes a key with a non-default method
 * through its legacy path.
 */
#define OPENSSL_API_COMPAT 0x10101000L

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "otpca/common/log.h"
#include "otpca/token/crl.h"

/* ------------------------------------------------------- the token's key */

struct token_key {
    otpca_token_t *tok;
    otpca_obj_t key;
};

static pthread_once_t method_once = PTHREAD_ONCE_INIT;
static EC_KEY_METHOD *token_method; /* made once, kept for the process */
static int token_ex = -1;

static void token_key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static int token_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig, unsigned int *siglen,
                      const BIGNUM *kinv, const BIGNUM *r, EC_KEY *ec)
{
    (void)type, (void)kinv, (void)r;
    const struct token_key *k = EC_KEY_get_ex_data(ec, token_ex);
    size_t len = (size_t)ECDSA_size(ec);
    if (!k || dlen <= 0 || otpca_token_sign_digest(k->tok, k->key, dgst, (size_t)dlen, OTPCA_SIG_DER, sig, &len))
        return 0;
    *siglen = (unsigned)len;
    return 1;
}

static ECDSA_SIG *token_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv, const BIGNUM *r,
                                 EC_KEY *ec)
{
    (void)kinv, (void)r;
    const struct token_key *k = EC_KEY_get_ex_data(ec, token_ex);
    unsigned char raw[OTPCA_SIG_RAW_LEN];
    size_t len = sizeof raw;
    if (!k || dlen <= 0 || otpca_token_sign_digest(k->tok, k->key, dgst, (size_t)dlen, OTPCA_SIG_RAW, raw, &len) ||
        len != sizeof raw)
        return NULL;
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(raw, 32, NULL), *bs = BN_bin2bn(raw + 32, 32, NULL);
    if (!s || !br || !bs || !ECDSA_SIG_set0(s, br, bs)) {
        BN_free(br);
        BN_free(bs);
        ECDSA_SIG_free(s);
        return NULL;
    }
    return s;
}

static void method_init(void)
{
    token_ex = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, token_key_free);
    EC_KEY_METHOD *m = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
    if (!m || token_ex < 0) {
        EC_KEY_METHOD_free(m);
        return;
    }
    EC_KEY_METHOD_set_sign(m, token_sign, NULL, token_sign_sig);
    token_method = m;
}

/* An EVP_PKEY whose signatures are made by key in tok (which must outlive
 * it). NULL on failure (logged). */
static EVP_PKEY *token_pkey(otpca_token_t *tok, otpca_obj_t key, otpca_err *err)
{
    unsigned char pub[OTPCA_EC_P256_SEC1_LEN];
    EVP_PKEY *pk = NULL;
    EC_KEY *ec = NULL;
    struct token_key *k = NULL;
    pthread_once(&method_once, method_init);
    if (!token_method) {
        *err = OTPCA_ERR_INTERNAL;
        return NULL;
    }
    if ((*err = otpca_token_pubkey_sec1(tok, key, pub)))
        return NULL;
    *err = OTPCA_ERR_NOMEM;
    const unsigned char *p = pub;
    if (!(ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1)) || !(k = calloc(1, sizeof *k)))
        goto fail;
    if (!o2i_ECPublicKey(&ec, &p, sizeof pub)) {
        *err = OTPCA_ERR_BAD_KEY;
        goto fail;
    }
    k->tok = tok;
    k->key = key;
    if (!EC_KEY_set_method(ec, token_method) || !EC_KEY_set_ex_data(ec, token_ex, k))
        goto fail;
    k = NULL; /* the EC_KEY's now (token_key_free) */
    if (!(pk = EVP_PKEY_new()) || !EVP_PKEY_assign_EC_KEY(pk, ec))
        goto fail;
    *err = OTPCA_ERR_OK;
    return pk;
fail:
    EVP_PKEY_free(pk);
    EC_KEY_free(ec);
    free(k);
    return NULL;
}

/* -------------------------------------------------------------- helpers */

static int whole_der(const unsigned char *start, const unsigned char *end, size_t len)
{
    return (size_t)(end - start) == len;
}

/* A certificate in DER or PEM; NULL if it is neither. */
static X509 *cert_load(const unsigned char *buf, size_t len)
{
    const unsigned char *p = buf;
    if (len > (size_t)INT32_MAX)
        return NULL;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x && whole_der(buf, p, len))
        return x;
    X509_free(x);
    BIO *b = BIO_new_mem_buf(buf, (int)len);
    x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

static X509_CRL *crl_load(const unsigned char *buf, size_t len)
{
    const unsigned char *p = buf;
    if (len > (size_t)INT32_MAX)
        return NULL;
    X509_CRL *c = d2i_X509_CRL(NULL, &p, (long)len);
    if (c && whole_der(buf, p, len))
        return c;
    X509_CRL_free(c);
    BIO *b = BIO_new_mem_buf(buf, (int)len);
    c = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return c;
}

static int time_get(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    *out = (int64_t)timegm(&tm);
    return 1;
}

/* The serial's big-endian bytes; 0 if it is negative or too long. */
static int serial_get(const ASN1_INTEGER *a, unsigned char out[OTPCA_CRL_SERIAL_MAX], size_t *len)
{
    BIGNUM *bn = a ? ASN1_INTEGER_to_BN(a, NULL) : NULL;
    int ok = bn && !BN_is_negative(bn) && BN_num_bytes(bn) <= OTPCA_CRL_SERIAL_MAX;
    if (ok)
        *len = (size_t)BN_bn2bin(bn, out);
    BN_free(bn);
    return ok;
}

static void ossl_log(const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    log_error("crl: %s%s%s", what, e ? ": " : "", e ? buf : "");
    ERR_clear_error();
}

int otpca_crl_reason_ok(int reason)
{
    return reason >= 0 && reason <= 10 && reason != 7 && reason != 8;
}

int otpca_crl_reason_parse(const char *s)
{
    static const char *const names[] = {"unspecified",  "keyCompromise",        "CACompromise",
                                        "affiliationChanged", "superseded", "cessationOfOperation",
                                        "certificateHold", NULL, NULL, "privilegeWithdrawn", "AACompromise"};
    if (!s || !*s)
        return -1;
    if (s[0] >= '0' && s[0] <= '9') {
        char *end;
        long v = strtol(s, &end, 10);
        return *end == '\0' && v >= 0 && v <= 10 && otpca_crl_reason_ok((int)v) ? (int)v : -1;
    }
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (names[i] && !strcasecmp(s, names[i]))
            return i;
    return -1;
}

/* ------------------------------------------------------------------ API */

otpca_err otpca_crl_cert_serial(const unsigned char *cert, size_t len, otpca_crl_entry *e, int64_t *not_after)
{
    X509 *x = cert_load(cert, len);
    otpca_err ret = OTPCA_ERR_CERT;
    if (x && serial_get(X509_get0_serialNumber(x), e->serial, &e->serial_len) &&
        (!not_after || time_get(X509_get0_notAfter(x), not_after)))
        ret = OTPCA_ERR_OK;
    X509_free(x);
    ERR_clear_error();
    return ret;
}

otpca_err otpca_crl_cert_issued_by(const unsigned char *cert, size_t len, const unsigned char *issuer_cert,
                                   size_t issuer_len)
{
    X509 *x = cert_load(cert, len), *ca = cert_load(issuer_cert, issuer_len);
    otpca_err ret = OTPCA_ERR_CERT;
    if (x && ca)
        ret = X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca)) == 0 &&
                      X509_verify(x, X509_get0_pubkey(ca)) == 1
                  ? OTPCA_ERR_OK
                  : OTPCA_ERR_SIGNATURE;
    X509_free(x);
    X509_free(ca);
    ERR_clear_error();
    return ret;
}

static int add_revoked(X509_CRL *crl, const otpca_crl_entry *e)
{
    X509_REVOKED *r = X509_REVOKED_new();
    BIGNUM *bn = BN_bin2bn(e->serial, (int)e->serial_len, NULL);
    ASN1_INTEGER *sn = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    ASN1_TIME *t = ASN1_TIME_set(NULL, (time_t)e->revoked_at);
    ASN1_ENUMERATED *why = e->reason ? ASN1_ENUMERATED_new() : NULL;
    int ok = r && sn && t && X509_REVOKED_set_serialNumber(r, sn) && X509_REVOKED_set_revocationDate(r, t) &&
             (!e->reason || (why && ASN1_ENUMERATED_set(why, e->reason) &&
                             X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, why, 0, 0) == 1)) &&
             X509_CRL_add0_revoked(crl, r);
    if (ok)
        r = NULL;
    X509_REVOKED_free(r);
    BN_free(bn);
    ASN1_INTEGER_free(sn);
    ASN1_TIME_free(t);
    ASN1_ENUMERATED_free(why);
    return ok;
}

/* cRLNumber and authorityKeyIdentifier (the issuer's SKI, or its key's
 * SHA-1 as RFC 5280 4.2.1.2 method 1 if it has none). */
static int add_crl_exts(X509_CRL *crl, X509 *ca, uint64_t number)
{
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
    int ok = num && akid && ASN1_INTEGER_set_uint64(num, number);
    if (ok && ski)
        ok = (akid->keyid = ASN1_OCTET_STRING_dup(ski)) != NULL;
    else if (ok)
        ok = X509_pubkey_digest(ca, EVP_sha1(), md, &mdlen) && (akid->keyid = ASN1_OCTET_STRING_new()) &&
             ASN1_OCTET_STRING_set(akid->keyid, md, (int)mdlen);
    ok = ok && X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) == 1 &&
         X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0) == 1;
    ASN1_INTEGER_free(num);
    AUTHORITY_KEYID_free(akid);
    return ok;
}

otpca_err otpca_crl_sign(otpca_token_t *tok, otpca_obj_t key, const unsigned char *issuer_cert, size_t issuer_len,
                         uint64_t number, int64_t this_update, int64_t next_update, const otpca_crl_entry *e,
                         size_t n, unsigned char **der, size_t *der_len)
{
    otpca_err ret;
    X509 *ca = NULL;
    X509_CRL *crl = NULL;
    EVP_PKEY *pk = NULL;
    ASN1_TIME *t0 = NULL, *t1 = NULL;
    unsigned char *out = NULL;
    *der = NULL;
    *der_len = 0;
    if (next_update <= this_update || this_update < 0 || (n && !e)) {
        log_error("crl: nextUpdate must follow thisUpdate");
        return OTPCA_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++)
        if (!otpca_crl_reason_ok(e[i].reason) || !e[i].serial_len || e[i].serial_len > OTPCA_CRL_SERIAL_MAX ||
            e[i].revoked_at < 0) {
            log_error("crl: entry %zu has a bad reason, serial or date", i);
            return OTPCA_ERR_INVALID_ARG;
        }
    if (!(ca = cert_load(issuer_cert, issuer_len)) || X509_check_ca(ca) < 1) {
        ossl_log("the issuer certificate does not parse or is not a CA");
        ret = OTPCA_ERR_CERT;
        goto out;
    }
    if (!(pk = token_pkey(tok, key, &ret)))
        goto out;
    if (EVP_PKEY_eq(pk, X509_get0_pubkey(ca)) != 1) {
        log_error("crl: the token key is not the issuer certificate's key");
        ret = OTPCA_ERR_SIGNATURE;
        goto out;
    }
    ret = OTPCA_ERR_NOMEM;
    if (!(crl = X509_CRL_new()) || !(t0 = ASN1_TIME_set(NULL, (time_t)this_update)) ||
        !(t1 = ASN1_TIME_set(NULL, (time_t)next_update)))
        goto out;
    if (!X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) || !X509_CRL_set1_lastUpdate(crl, t0) ||
        !X509_CRL_set1_nextUpdate(crl, t1) || !add_crl_exts(crl, ca, number))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (!add_revoked(crl, &e[i]))
            goto out;
    if (!X509_CRL_sort(crl))
        goto out;
    if (!X509_CRL_sign(crl, pk, EVP_sha256())) {
        ossl_log("signing in the token failed");
        ret = OTPCA_ERR_CRYPTO;
        goto out;
    }
    if (X509_CRL_verify(crl, X509_get0_pubkey(ca)) != 1) {
        ossl_log("the signed CRL does not verify under the issuer certificate");
        ret = OTPCA_ERR_SIGNATURE;
        goto out;
    }
    int len = i2d_X509_CRL(crl, NULL);
    unsigned char *p;
    if (len <= 0 || !(out = malloc((size_t)len)))
        goto out;
    p = out;
    if (i2d_X509_CRL(crl, &p) != len)
        goto out;
    *der = out;
    *der_len = (size_t)len;
    out = NULL;
    ret = OTPCA_ERR_OK;
out:
    if (ret == OTPCA_ERR_NOMEM)
        ossl_log("building the CRL failed");
    free(out);
    ASN1_TIME_free(t0);
    ASN1_TIME_free(t1);
    X509_CRL_free(crl);
    EVP_PKEY_free(pk);
    X509_free(ca);
    ERR_clear_error();
    return ret;
}

otpca_err otpca_crl_read(const unsigned char *crlbuf, size_t len, const unsigned char *issuer_cert, size_t issuer_len,
                         otpca_crl_info *info, otpca_crl_entry **entries)
{
    otpca_err ret = OTPCA_ERR_CERT;
    X509 *ca = NULL;
    X509_CRL *crl = NULL;
    ASN1_INTEGER *num = NULL;
    otpca_crl_entry *list = NULL;
    memset(info, 0, sizeof *info);
    if (entries)
        *entries = NULL;
    if (!(ca = cert_load(issuer_cert, issuer_len)) || !(crl = crl_load(crlbuf, len))) {
        log_error("crl: %s does not parse", ca ? "the CRL" : "the issuer certificate");
        goto out;
    }
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0 ||
        X509_CRL_verify(crl, X509_get0_pubkey(ca)) != 1) {
        log_error("crl: not signed by the issuer certificate's key (or another issuer's name)");
        ret = OTPCA_ERR_SIGNATURE;
        goto out;
    }
    if (!(num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL)) ||
        !ASN1_INTEGER_get_uint64(&info->number, num) || !time_get(X509_CRL_get0_lastUpdate(crl), &info->this_update) ||
        !time_get(X509_CRL_get0_nextUpdate(crl), &info->next_update)) {
        log_error("crl: no cRLNumber, thisUpdate or nextUpdate");
        goto out;
    }
    STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
    int count = revs ? sk_X509_REVOKED_num(revs) : 0;
    info->entries = count > 0 ? (size_t)count : 0;
    if (entries && count > 0) {
        if (!(list = calloc((size_t)count, sizeof *list))) {
            ret = OTPCA_ERR_NOMEM;
            goto out;
        }
        for (int i = 0; i < count; i++) {
            X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
            ASN1_ENUMERATED *why = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
            long reason = why ? ASN1_ENUMERATED_get(why) : 0;
            ASN1_ENUMERATED_free(why);
            list[i].reason = (int)reason;
            if (!serial_get(X509_REVOKED_get0_serialNumber(r), list[i].serial, &list[i].serial_len) ||
                !time_get(X509_REVOKED_get0_revocationDate(r), &list[i].revoked_at) ||
                !otpca_crl_reason_ok(list[i].reason)) {
                log_error("crl: entry %d has a bad serial, date or reason", i);
                goto out;
            }
        }
        *entries = list;
        list = NULL;
    }
    ret = OTPCA_ERR_OK;
out:
    free(list);
    ASN1_INTEGER_free(num);
    X509_CRL_free(crl);
    X509_free(ca);
    ERR_clear_error();
    return ret;
}

otpca_err otpca_crl_to_pem(const unsigned char *der, size_t len, char **pem, size_t *pem_len)
{
    otpca_err ret = OTPCA_ERR_CERT;
    X509_CRL *crl = NULL;
    BIO *b = NULL;
    const unsigned char *p = der;
    char *data;
    *pem = NULL;
    *pem_len = 0;
    if (len > (size_t)INT32_MAX || !(crl = d2i_X509_CRL(NULL, &p, (long)len)) || !whole_der(der, p, len))
        goto out;
    ret = OTPCA_ERR_NOMEM;
    if (!(b = BIO_new(BIO_s_mem())) || !PEM_write_bio_X509_CRL(b, crl))
        goto out;
    long n = BIO_get_mem_data(b, &data);
    if (n <= 0 || !(*pem = malloc((size_t)n + 1)))
        goto out;
    memcpy(*pem, data, (size_t)n);
    (*pem)[n] = '\0';
    *pem_len = (size_t)n;
    ret = OTPCA_ERR_OK;
out:
    BIO_free(b);
    X509_CRL_free(crl);
    ERR_clear_error();
    return ret;
}
