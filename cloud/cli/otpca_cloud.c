/*
 * otpca-cloud: the registry's admin CLI (verb-noun): init, device import
 * (factory manifest CSV; seeds are sealed at rest on the way in), device
 * list|show|approve|revoke|unlock, batch add, manager add|revoke|list,
 * operator add (its seed sealed like a device's), lease issue (a signed
 * offline lease), key create|rewrap (rotating the cloud's keys), audit
 * verify, and serve (server.c).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "otpca/cloud/certinfo.h"
#include "otpca/cloud/config.h"
#include "otpca/cloud/curvekey.h"
#include "otpca/cloud/seeds.h"
#include "otpca/cloud/server.h"
#include "otpca/cloud/store.h"
#include "otpca/common/config.h"
#include "otpca/common/files.h"
#include "otpca/common/hex.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"
#include "otpca/common/signals.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "otpca/token/crl.h"
#include "otpca/token/token.h"
#include "otpca/token/uri.h"
#include "otpca/token/wolf.h"

#define EXIT_USAGE 2
#define IMPORT_CHUNK 10000 /* rows per transaction and per otpca_store_device_add_many */
_Static_assert(IMPORT_CHUNK <= OTPCA_STORE_ADD_MANY_MAX, "one add_many call per chunk");
#define ACTOR "admin"

/* Audit events of PROTOCOL.md section 7.6. */
enum {
    EV_IMPORTED = 9, EV_APPROVED = 10, EV_REVOKED = 11, EV_MANAGER_ADDED = 12, EV_MANAGER_REVOKED = 13,
    EV_LEASE_ISSUED = 15, EV_UNLOCKED = 16, EV_OPERATOR_ADDED = 17, EV_BATCH_ADDED = 18, EV_INIT = 19,
    EV_OPERATOR_ALLOWED = 20, EV_KEY_CREATED = 22, EV_SEED_KEY_REWRAPPED = 23
};

/* Operators' seeds are sealed under "op:" || id, so their AAD never equals
 * a device's (device serials may not start with it). */
#define OPERATOR_AAD_PREFIX "op:"
#define OPERATOR_ID_MAX (OTPCA_STORE_ID_MAX - (sizeof OPERATOR_AAD_PREFIX - 1))

struct opts {
    const char *config, *state, *reason;
    const char *product_key, *ca_cert, *curve_key, *seed_file, *algorithm;
    const char *manager, *operator_, *scope, *out;
    const char *new_sign, *new_curve, *new_wrap, *to;
    int approve, all, help, der;
    long limit, digits, period, duration, max_enroll;
};

static const struct verb {
    const char *name, *args, *help;
} verbs[] = {
    {"init", "",
     "Create or migrate the store and the cloud token's keys (seed-wrap, seed key, CURVE key); print the "
     "cloud's public identity for managers."},
    {"device import", "FILE [--approve]",
     "Import a factory manifest: CSV (header serial,mac,public_key,seed[,algorithm,digits,period,batch]) or JSON "
     "(an array of objects, or JSON Lines, with those keys); seeds are sealed at rest. A row with a batch and no "
     "public_key is a batch device: it proves the batch's product key once (Claim) for a key of its own."},
    {"device list", "[--state S] [--limit N]", "List devices (state: pending|approved|enrolled|revoked|locked)."},
    {"device show", "SERIAL", "Show one device."},
    {"device approve", "SERIAL | --all", "Approve a pending device (or every pending one) for enrollment."},
    {"device revoke", "SERIAL [--reason R]",
     "Revoke a device (R: RFC 5280 CRLReason number or name, e.g. keyCompromise; default 0). Open windows hear it "
     "at once; each manager lists the device's certificates in its next CRL."},
    {"device unlock", "SERIAL", "Clear a locked device's failure count and lock."},
    {"audit verify", "", "Recompute the audit chain; exit 1 at the first broken link."},
    {"serve", "", "Run the registry server for managers (ZeroMQ + CURVE) until SIGTERM or SIGINT."},
    {"batch add", "ID --product-key FILE",
     "Register a batch's P-256 product key (PEM or DER SubjectPublicKeyInfo, or SEC1 hex)."},
    {"manager add", "ID --ca-cert FILE --curve-key Z85",
     "Register a manager: its intermediate CA certificate (PEM or DER, P-256, CA:TRUE) and its ZeroMQ CURVE "
     "public key (40 Z85 characters)."},
    {"manager revoke", "ID", "Revoke a manager."},
    {"manager list", "", "List managers: id, active or revoked, CA key id, CURVE key."},
    {"operator add", "ID --seed-file FILE [--digits N] [--period S] [--algorithm SHA1|SHA256]",
     "Register an operator; the TOTP seed (hex, 16-64 bytes) is sealed in the token."},
    {"operator allow", "ID --manager MGR",
     "Let an operator open windows on a manager (an operator may open none until allowed)."},
    {"crl get", "--manager ID [--out FILE] [--der]",
     "The latest CRL the manager published (PEM, or DER with --der), checked again against its certificate, to "
     "FILE (replaced atomically) or stdout; exit 1 if it published none."},
    {"lease issue", "--manager ID --operator ID --duration S --out FILE [--max-enroll N] [--scope B1,B2]",
     "Write a signed offline lease: the manager may open a window on its cached trust list without the cloud."},
    {"key create", "--sign LABEL | --curve LABEL | --wrap LABEL",
     "Make a new cloud key beside the old ones (P-256 signing key, CURVE secret or AES-256 seed-wrap key; never "
     "extractable; a label already in the token is refused) and print what managers pin for it."},
    {"key rewrap", "--to LABEL",
     "Wrap the store's seed key under the seed-wrap key LABEL instead of wrap_key (one transaction); then set "
     "wrap_key = LABEL. Running instances keep working until restarted."},
};

static void usage(FILE *f)
{
    fputs("usage: otpca-cloud [--config FILE] VERB [ARGS] [--help]\n\nverbs:\n", f);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(f, "  %-15s %s%s%s\n", verbs[i].name, verbs[i].args, verbs[i].args[0] ? "\n                  " : "",
                verbs[i].help);
    fputs("\nConfiguration: --config FILE (key = value: store, token, sign_key, wrap_key, curve_key,\n"
          "listen, notices, workers, log_level, log_format, ...), overridden by OTPCA_CLOUD_<KEY> in the\n"
          "environment.\n"
          "token is the cloud token's PKCS#11 URI with its pin-source, e.g.\n"
          "  token = pkcs11:token=otpca-cloud?pin-source=file:/rig/pins/otpca-cloud.pin\n",
          f);
}

static int fail(otpca_err e, const char *what)
{
    fprintf(stderr, "otpca-cloud: %s: %s (%s)\n", what, otpca_strerror(e), otpca_errname(e));
    return EXIT_FAILURE;
}

/* The store URL as it may be printed: without a password. */
static const char *store_shown(const char *url)
{
    static char buf[512];
    otpca_store_url_redact(url, buf, sizeof buf);
    return buf;
}

static int usage_error(const struct verb *v, const char *msg)
{
    fprintf(stderr, "otpca-cloud: %s\nusage: otpca-cloud %s %s\n", msg, v->name, v->args);
    return EXIT_USAGE;
}

/* ---- the cloud token ---------------------------------------------------- */

struct cloud_token {
    otpca_p11_t *p11;
    otpca_token_t *tok;
    otpca_obj_t wrap;
    otpca_seed_key *seeds; /* the store's seed key, unwrapped by wrap */
};

static void token_close(struct cloud_token *t)
{
    otpca_seed_key_destroy(&t->seeds);
    otpca_token_destroy(&t->tok);
    otpca_p11_destroy(&t->p11);
}

/* Opens the cloud token (logged in with its pin-source), nothing more. */
static otpca_err token_connect(const otpca_cloud_config *cfg, struct cloud_token *t)
{
    otpca_p11_uri uri;
    memset(t, 0, sizeof *t);
    if (!cfg->token[0]) {
        fputs("otpca-cloud: no cloud token configured (token = pkcs11:...)\n", stderr);
        return OTPCA_ERR_CONFIG;
    }
    otpca_err ret = otpca_p11_uri_parse(cfg->token, &uri);
    if (ret)
        return ret;
    ret = otpca_p11_new(uri.module_path[0] ? uri.module_path : NULL, &t->p11);
    if (!ret)
        ret = otpca_token_open_uri(t->p11, &uri, NULL, &t->tok);
    otpca_p11_uri_clear(&uri);
    if (ret)
        token_close(t);
    return ret;
}

/* Opens the cloud token and loads the store's seed key (st) with its
 * seed-wrap key; create: make the wrap key and the seed key if missing. */
static otpca_err token_open(const otpca_cloud_config *cfg, otpca_store *st, int create, struct cloud_token *t)
{
    otpca_err ret = token_connect(cfg, t);
    if (!ret) {
        ret = otpca_token_find(t->tok, OTPCA_OBJ_SECRET_KEY, cfg->wrap_key, NULL, 0, &t->wrap);
        if (ret == OTPCA_ERR_OBJECT_NOT_FOUND && create) {
            ret = otpca_token_keygen_aes(t->tok, cfg->wrap_key, 256, &t->wrap);
            if (!ret)
                printf("created seed-wrap key '%s' (AES-256, never extractable) in token %s\n", cfg->wrap_key,
                       otpca_token_label(t->tok));
        }
    }
    if (!ret)
        ret = otpca_seed_key_load(t->tok, t->wrap, st, create, &t->seeds);
    if (ret)
        token_close(t);
    return ret;
}

/* ---- helpers ------------------------------------------------------------ */

static const char *state_name(int s)
{
    static const char *names[] = {"?", "approved", "enrolled", "revoked", "locked", "deleted", "pending"};
    return s >= 1 && s <= 6 ? names[s] : names[0];
}

static int state_of(const char *name)
{
    for (int s = 1; s <= 6; s++)
        if (!strcmp(name, state_name(s)))
            return s;
    return 0;
}

static otpca_err audit(otpca_store *st, unsigned event, const char *subject, const char *detail)
{
    otpca_audit a;
    memset(&a, 0, sizeof a);
    a.time = (uint64_t)time(NULL);
    snprintf(a.actor, sizeof a.actor, "%s", ACTOR);
    a.event = event;
    if (subject)
        snprintf(a.subject, sizeof a.subject, "%s", subject);
    if (detail)
        snprintf(a.detail, sizeof a.detail, "%s", detail);
    return otpca_store_audit_append(st, &a);
}

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

/* prefix followed by the key id of pub in hex; returns the length. */
static size_t kid_text(char *out, size_t cap, const char *prefix, const uint8_t pub[65])
{
    uint8_t kid[8];
    otpca_p256_kid(pub, kid);
    int n = snprintf(out, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof kid && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%02x", kid[i]);
    return n > 0 && (size_t)n < cap ? (size_t)n : strlen(out);
}

/* What a manager pins: the lines go into its configuration as they are. */
static void print_sign_pin(const uint8_t pub[65])
{
    printf("cloud_sign_key = ");
    print_hex(pub, 65);
    printf("\n");
}

static void print_curve_pin(const uint8_t pub[32])
{
    char z85[41];
    zmq_z85_encode(z85, pub, 32);
    printf("cloud_curve_key = %s\n", z85);
}

/* The public half of the CURVE key label (create: made if missing); the
 * secret only passes through locked memory. */
static otpca_err curve_public(struct cloud_token *t, const char *label, int create, uint8_t pub[32])
{
    uint8_t *sec = otpca_secmem_alloc(32);
    otpca_err ret = sec ? otpca_curve_key(t->tok, label, create, pub, sec) : OTPCA_ERR_NOMEM;
    otpca_secmem_free(sec, 32);
    return ret;
}

/* ---- init --------------------------------------------------------------- */

static int cmd_init(const otpca_cloud_config *cfg)
{
    otpca_store *st = NULL;
    struct cloud_token t;
    otpca_obj_t sign;
    uint8_t pub[65], kid[8];
    otpca_err ret = otpca_store_open(cfg->store, &st);
    if (ret)
        return fail(ret, store_shown(cfg->store));
    printf("store %s at schema version %u\n", store_shown(cfg->store), otpca_store_schema_version(st));
    if ((ret = token_open(cfg, st, 1, &t))) {
        otpca_store_destroy(&st);
        return fail(ret, "cloud token");
    }
    ret = otpca_token_find(t.tok, OTPCA_OBJ_PRIVATE_KEY, cfg->sign_key, NULL, 0, &sign);
    if (!ret)
        ret = otpca_token_pubkey_sec1(t.tok, sign, pub);
    if (ret) {
        token_close(&t);
        otpca_store_destroy(&st);
        return fail(ret, "cloud signing key");
    }
    otpca_p256_kid(pub, kid);
    printf("signing key '%s' kid ", cfg->sign_key);
    print_hex(kid, sizeof kid);
    printf("\nseed-wrap key '%s' present\n", cfg->wrap_key);
    uint8_t curve_pub[32];
    if ((ret = curve_public(&t, cfg->curve_key, 1, curve_pub))) {
        token_close(&t);
        otpca_store_destroy(&st);
        return fail(ret, "CURVE key");
    }
    print_curve_pin(curve_pub);
    print_sign_pin(pub);
    ret = audit(st, EV_INIT, NULL, "store initialised");
    token_close(&t);
    otpca_store_destroy(&st);
    return ret ? fail(ret, "audit") : EXIT_SUCCESS;
}

/* ---- device import ------------------------------------------------------ */

struct import_stats {
    unsigned long rows, imported, present, rejected;
};

/* Splits a CSV line (no quoting: none of the fields needs it) in place. */
static size_t split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *c = strchr(p, ',');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

static int valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OTPCA_STORE_ID_MAX)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._:-", *s))
            return 0;
    return 1;
}

static const char *parse_mac(const char *s, uint8_t *mac, size_t *len)
{
    char hex[32];
    size_t n = 0;
    for (; *s && n < sizeof hex - 1; s++)
        if (*s != ':' && *s != '-')
            hex[n++] = *s;
    if (*s)
        return "MAC too long";
    if (otpca_hex_decode(hex, n, mac, 8, len) || (*len != 6 && *len != 8))
        return "MAC is not 6 or 8 hex bytes";
    return NULL;
}

/* A manifest's columns (CSV header names, JSON keys); serial, mac and seed
 * are required, and a row needs a public_key or a batch (an unclaimed
 * batch device proves the batch's product key, PROTOCOL.md 6.7). */
#define MANIFEST_COLS 8
static const char *const manifest_cols[MANIFEST_COLS] = {"serial",    "mac",    "public_key", "seed",
                                                        "algorithm", "digits", "period",     "batch"};

/* One manifest row into d (seed sealed); NULL or the reason it is refused. */
static const char *parse_row(char **f, size_t nf, const int col[MANIFEST_COLS], struct cloud_token *t, int approve,
                             otpca_device *d, uint8_t *seed)
{
    size_t len;
    memset(d, 0, sizeof *d);
    for (int i = 0; i < MANIFEST_COLS; i++)
        if (col[i] >= (int)nf)
            return "missing columns";
    const char *serial = f[col[0]], *mac = f[col[1]], *pub = col[2] >= 0 ? f[col[2]] : "", *seed_hex = f[col[3]];
    if (!valid_id(serial))
        return "serial must be 1-64 characters [A-Za-z0-9._:-]";
    if (!strncmp(serial, OPERATOR_AAD_PREFIX, sizeof OPERATOR_AAD_PREFIX - 1))
        return "serial must not begin with '" OPERATOR_AAD_PREFIX "' (reserved for operators' seeds)";
    snprintf(d->serial, sizeof d->serial, "%s", serial);
    const char *why = parse_mac(mac, d->mac, &d->mac_len);
    if (why)
        return why;
    if (*pub) {
        uint8_t raw[65];
        if (otpca_hex_decode(pub, strlen(pub), raw, sizeof raw, &len) ||
            otpca_p256_pub_normalize(raw, len, d->pubkey))
            return "public key is not a P-256 point (SEC1 hex)";
        d->pubkey_len = 65;
    }
    if (col[7] >= 0 && *f[col[7]]) {
        if (!valid_id(f[col[7]]))
            return "batch must be 1-64 characters [A-Za-z0-9._:-]";
        snprintf(d->batch, sizeof d->batch, "%s", f[col[7]]);
    }
    if (otpca_hex_decode(seed_hex, strlen(seed_hex), seed, OTPCA_SEED_MAX, &len) || len < 16)
        return "seed is not 16-64 hex bytes";
    d->algorithm = 1;
    d->digits = 6;
    d->period = 30;
    if (col[4] >= 0 && *f[col[4]]) {
        if (!strcasecmp(f[col[4]], "SHA1"))
            d->algorithm = 1;
        else if (!strcasecmp(f[col[4]], "SHA256"))
            d->algorithm = 2;
        else
            return "algorithm must be SHA1 or SHA256";
    }
    if (col[5] >= 0 && *f[col[5]]) {
        char *end;
        long v = strtol(f[col[5]], &end, 10);
        if (*end || v < 6 || v > 8)
            return "digits must be 6 to 8";
        d->digits = (unsigned)v;
    }
    if (col[6] >= 0 && *f[col[6]]) {
        char *end;
        long v = strtol(f[col[6]], &end, 10);
        if (*end || v < 1 || v > 3600)
            return "period must be 1 to 3600 seconds";
        d->period = (unsigned)v;
    }
    if (!d->pubkey_len && !d->batch[0]) {
        otpca_memzero(seed, OTPCA_SEED_MAX);
        return "a device needs a public_key, or a batch whose product key it proves";
    }
    otpca_err ret = otpca_seed_seal(t->seeds, d->serial, seed, len, d->seed_env, sizeof d->seed_env,
                                    &d->seed_env_len);
    otpca_memzero(seed, OTPCA_SEED_MAX);
    if (ret)
        return otpca_strerror(ret);
    d->state = approve ? OTPCA_STORE_APPROVED : OTPCA_STORE_PENDING;
    return NULL;
}

static void progress(const struct import_stats *s, int tty, int done)
{
    if (tty) {
        fprintf(stderr, "\rimport: %lu rows, %lu imported, %lu already present, %lu rejected%s", s->rows,
                s->imported, s->present, s->rejected, done ? "\n" : "");
    } else if (done ? s->rows % 100000 != 0 : s->rows % 100000 == 0) {
        fprintf(stderr, "import: %lu rows, %lu imported, %lu already present, %lu rejected\n", s->rows,
                s->imported, s->present, s->rejected);
    }
}

/* Column indexes of serial, mac, public_key, seed, algorithm, digits,
 * period from the header line (-1 for an optional one that is absent). */
static int header_columns(char *line, int col[MANIFEST_COLS])
{
    char *f[16];
    size_t nf = split(line, f, 16);
    for (int i = 0; i < MANIFEST_COLS; i++) {
        col[i] = -1;
        for (size_t j = 0; j < nf; j++)
            if (!strcmp(f[j], manifest_cols[i]))
                col[i] = (int)j;
    }
    return col[0] >= 0 && col[1] >= 0 && col[3] >= 0;
}

/* A manifest's rows, from CSV (header line first) or JSON: a top-level
 * array of objects, or objects one after another (JSON Lines), each with
 * the CSV column names as keys. JSON is read one object at a time
 * (jansson's JSON_DISABLE_EOF_CHECK stops after each value), so a large
 * array never sits in memory whole; the bytes between the array's
 * elements are skipped by hand, as jansson only reads whole values. */
struct rows {
    FILE *in;
    const char *path;
    int json, array, done;
    int col[MANIFEST_COLS];
    char line[4096];
    char text[MANIFEST_COLS][256]; /* a JSON row's fields as text */
    unsigned long where; /* line (CSV) or object (JSON) number */
};

static int skip_space(FILE *in)
{
    int c;
    while ((c = getc(in)) != EOF && isspace(c))
        ;
    return c;
}

/* 1 and the row's fields in f (MANIFEST_COLS, in col order for JSON), 0 at
 * the end, -1 on a fatal error (reported), -2 for a bad row (reported; skip
 * it). */
static int next_row(struct rows *r, char **f, size_t *nf)
{
    const char *const *names = manifest_cols;
    if (r->done)
        return 0;
    if (!r->json) {
        for (;;) {
            if (!fgets(r->line, sizeof r->line, r->in)) {
                r->done = 1;
                if (ferror(r->in)) {
                    fprintf(stderr, "otpca-cloud: %s: read error\n", r->path);
                    return -1;
                }
                return 0;
            }
            r->where++;
            if (!strchr(r->line, '\n') && !feof(r->in)) {
                fprintf(stderr, "otpca-cloud: %s:%lu: line too long\n", r->path, r->where);
                return -1;
            }
            r->line[strcspn(r->line, "\r\n")] = '\0';
            if (r->line[0]) {
                *nf = split(r->line, f, 16);
                return 1;
            }
        }
    }
    int c = skip_space(r->in);
    if (r->array && r->where > 0 && c != ']') {
        if (c != ',') {
            fprintf(stderr, "otpca-cloud: %s: object %lu: expected ',' or ']'\n", r->path, r->where + 1);
            return -1;
        }
        c = skip_space(r->in);
    }
    if ((r->array && c == ']') || (!r->array && c == EOF)) {
        r->done = 1;
        if (r->array && skip_space(r->in) != EOF) {
            fprintf(stderr, "otpca-cloud: %s: data after the array\n", r->path);
            return -1;
        }
        return 0;
    }
    if (c != '{') {
        fprintf(stderr, "otpca-cloud: %s: object %lu: expected '{'%s\n", r->path, r->where + 1,
                r->array ? ", ',' or ']'" : "");
        return -1;
    }
    ungetc(c, r->in);
    r->where++;
    json_error_t err;
    json_t *o = json_loadf(r->in, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &err);
    if (!o) {
        fprintf(stderr, "otpca-cloud: %s: object %lu: %s\n", r->path, r->where, err.text);
        return -1;
    }
    int bad = 0;
    for (int i = 0; i < MANIFEST_COLS; i++) {
        json_t *v = json_object_get(o, names[i]);
        r->text[i][0] = '\0';
        if (!v || json_is_null(v))
            continue;
        if (json_is_string(v) && json_string_length(v) < sizeof r->text[i])
            snprintf(r->text[i], sizeof r->text[i], "%s", json_string_value(v));
        else if (json_is_integer(v) && (i == 5 || i == 6)) /* digits, period */
            snprintf(r->text[i], sizeof r->text[i], "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else
            bad = 1;
    }
    /* The seed may be in the jansson value still: wipe what we can reach. */
    json_t *seed = json_object_get(o, "seed");
    if (json_is_string(seed))
        otpca_memzero((void *)json_string_value(seed), json_string_length(seed));
    json_decref(o);
    for (int i = 0; i < MANIFEST_COLS; i++)
        f[i] = r->text[i];
    *nf = MANIFEST_COLS;
    if (bad) {
        fprintf(stderr, "%s: object %lu: fields must be strings (digits and period may be numbers)\n", r->path,
                r->where);
        return -2;
    }
    return 1;
}

static int rows_open(struct rows *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->in = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!r->in) {
        fprintf(stderr, "otpca-cloud: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int c = skip_space(r->in);
    if (c == '[' || c == '{') {
        r->json = 1;
        r->array = c == '[';
        if (c == '{')
            ungetc(c, r->in);
        for (int i = 0; i < MANIFEST_COLS; i++)
            r->col[i] = i;
        return 0;
    }
    if (c != EOF)
        ungetc(c, r->in);
    if (!fgets(r->line, sizeof r->line, r->in) ||
        !(r->line[strcspn(r->line, "\r\n")] = '\0', header_columns(r->line, r->col))) {
        fprintf(stderr, "otpca-cloud: %s: first line must be a header naming serial, mac and seed columns "
                        "(or the file JSON)\n", path);
        return -1;
    }
    r->where = 1;
    return 0;
}

static void rows_close(struct rows *r)
{
    if (r->in && r->in != stdin)
        fclose(r->in);
    otpca_memzero(r->line, sizeof r->line);
    otpca_memzero(r->text, sizeof r->text);
    r->in = NULL;
}

/* The rows held for one otpca_store_device_add_many call. */
struct import_chunk {
    otpca_device d[IMPORT_CHUNK];
    otpca_err res[IMPORT_CHUNK];
    unsigned long where[IMPORT_CHUNK]; /* each row's line or object number */
    size_t n;
};

/* Adds the chunk's devices and commits them in one transaction; counts
 * and reports each row's fate. */
static otpca_err import_flush(otpca_store *st, struct import_chunk *c, struct import_stats *s, const struct rows *r,
                              int tty, unsigned long *shown)
{
    otpca_err ret = c->n ? otpca_store_begin(st) : OTPCA_ERR_OK;
    if (!c->n || ret)
        return ret;
    ret = otpca_store_device_add_many(st, c->d, c->n, c->res);
    if (!ret)
        ret = otpca_store_commit(st);
    else
        otpca_store_rollback(st);
    for (size_t i = 0; !ret && i < c->n; i++) {
        const char *why = NULL;
        switch (c->res[i]) {
        case OTPCA_ERR_OK:
            s->imported++;
            break;
        case OTPCA_ERR_EXISTS:
            s->present++;
            break;
        case OTPCA_ERR_NOT_FOUND:
            why = "unknown batch (register it first: otpca-cloud batch add)";
            break;
        default:
            why = "not a valid device";
            break;
        }
        if (why) {
            s->rejected++;
            if ((*shown)++ < 10)
                fprintf(stderr, "%s%s:%s%lu: %s\n", tty ? "\n" : "", r->path, r->json ? " object " : "", c->where[i],
                        why);
        }
    }
    otpca_memzero(c->d, c->n * sizeof c->d[0]);
    c->n = 0;
    return ret;
}

static int cmd_device_import(const otpca_cloud_config *cfg, const char *path, const struct opts *o)
{
    struct rows *r = otpca_secmem_alloc(sizeof *r); /* rows hold seeds in the clear */
    if (!r || rows_open(r, path)) {
        if (!r)
            fail(OTPCA_ERR_NOMEM, "secret memory");
        otpca_secmem_free(r, sizeof *r);
        return EXIT_FAILURE;
    }
    otpca_store *st = NULL;
    struct cloud_token t = {0};
    struct import_stats s = {0};
    uint8_t *seed = otpca_secmem_alloc(OTPCA_SEED_MAX);
    struct import_chunk *c = calloc(1, sizeof *c); /* sealed seeds only */
    int tty = isatty(2), rc = EXIT_FAILURE, got;
    unsigned long shown = 0;
    struct timespec t0, t1;
    otpca_err ret;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!seed || !c) {
        ret = OTPCA_ERR_NOMEM;
        fail(ret, "memory");
        goto out;
    }
    if ((ret = otpca_store_open(cfg->store, &st))) {
        fail(ret, store_shown(cfg->store));
        goto out;
    }
    if ((ret = token_open(cfg, st, 1, &t))) {
        fail(ret, "cloud token");
        goto out;
    }
    char *f[16];
    size_t nf = 0;
    while ((got = next_row(r, f, &nf)) != 0) {
        if (got == -1)
            goto out;
        otpca_device *d = &c->d[c->n];
        s.rows++;
        const char *why = got == -2 ? "" : parse_row(f, nf, r->col, &t, o->approve, d, seed);
        if (why) {
            otpca_memzero(d, sizeof *d);
            s.rejected++;
            if (*why && shown++ < 10)
                fprintf(stderr, "%s%s:%s%lu: %s\n", tty ? "\n" : "", path, r->json ? " object " : "", r->where, why);
            continue;
        }
        c->where[c->n++] = r->where;
        if (c->n == IMPORT_CHUNK) {
            if ((ret = import_flush(st, c, &s, r, tty, &shown))) {
                fail(ret, "store");
                goto out;
            }
            progress(&s, tty, 0);
        }
    }
    if ((ret = import_flush(st, c, &s, r, tty, &shown))) {
        fail(ret, "store");
        goto out;
    }
    progress(&s, tty, 1);
    char detail[128];
    snprintf(detail, sizeof detail, "%lu imported, %lu already present, %lu rejected", s.imported, s.present,
             s.rejected);
    if ((ret = audit(st, EV_IMPORTED, NULL, detail))) {
        fail(ret, "audit");
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("imported %lu devices (%s), %lu already present, %lu rejected, in %.1f s (%.0f rows/s)\n", s.imported,
           o->approve ? "approved" : "pending approval", s.present, s.rejected, secs, secs > 0 ? s.rows / secs : 0.0);
    rc = s.rejected ? EXIT_FAILURE : EXIT_SUCCESS;
out:
    if (c) {
        otpca_memzero(c, sizeof *c);
        free(c);
    }
    otpca_secmem_free(seed, OTPCA_SEED_MAX);
    token_close(&t);
    otpca_store_destroy(&st);
    rows_close(r);
    otpca_secmem_free(r, sizeof *r);
    return rc;
}

/* ---- device list / show / state changes --------------------------------- */

struct list_ctx {
    int state;
    long left;
    unsigned long shown;
    char last[OTPCA_STORE_ID_MAX + 1];
};

static int list_one(const otpca_device *d, void *arg)
{
    struct list_ctx *c = arg;
    snprintf(c->last, sizeof c->last, "%s", d->serial);
    if (c->state && d->state != c->state)
        return 0;
    printf("%-24s %-9s seq %-8llu %s%s\n", d->serial, state_name(d->state), (unsigned long long)d->seq,
           d->manager[0] ? d->manager : "-", d->flagged ? "  FLAGGED: enrolled by two managers" : "");
    c->shown++;
    return c->left > 0 && --c->left == 0;
}

static int cmd_device_list(otpca_store *st, const struct opts *o)
{
    struct list_ctx c = {0};
    c.left = o->limit;
    if (o->state && !(c.state = state_of(o->state))) {
        fprintf(stderr, "otpca-cloud: unknown state '%s'\n", o->state);
        return EXIT_USAGE;
    }
    for (;;) {
        char after[OTPCA_STORE_ID_MAX + 1];
        snprintf(after, sizeof after, "%s", c.last);
        unsigned long before = c.shown;
        c.last[0] = '\0';
        otpca_err ret = otpca_store_device_scan(st, after, 1000, list_one, &c);
        if (ret)
            return fail(ret, "store");
        if (!c.last[0] || (o->limit > 0 && c.left == 0 && c.shown > before))
            break;
    }
    uint64_t counts[7];
    if (otpca_store_device_counts(st, counts) == OTPCA_ERR_OK)
        fprintf(stderr, "%llu devices: %llu pending, %llu approved, %llu enrolled, %llu revoked, %llu locked\n",
                (unsigned long long)counts[0], (unsigned long long)counts[OTPCA_STORE_PENDING],
                (unsigned long long)counts[OTPCA_STORE_APPROVED], (unsigned long long)counts[OTPCA_STORE_ENROLLED],
                (unsigned long long)counts[OTPCA_STORE_REVOKED], (unsigned long long)counts[OTPCA_STORE_LOCKED]);
    return EXIT_SUCCESS;
}

static int cmd_device_show(otpca_store *st, const char *serial)
{
    otpca_device d;
    otpca_err ret = otpca_store_device_get(st, serial, &d);
    if (ret)
        return fail(ret, serial);
    printf("serial      %s\nstate       %s\nmac         ", d.serial, state_name(d.state));
    for (size_t i = 0; i < d.mac_len; i++)
        printf("%s%02x", i ? ":" : "", d.mac[i]);
    printf("\npublic key  ");
    if (d.pubkey_len) {
        uint8_t kid[8];
        print_hex(d.pubkey, d.pubkey_len);
        otpca_p256_kid(d.pubkey, kid);
        printf("\nkey id      ");
        print_hex(kid, sizeof kid);
    } else {
        printf("- (batch %s)", d.batch[0] ? d.batch : "?");
    }
    printf("\ntotp        %s, %u digits, %u s; seed sealed at rest (%zu bytes)\n",
           d.algorithm == 2 ? "SHA256" : "SHA1", d.digits, d.period, d.seed_env_len);
    printf("last step   %llu\nfailures    %u\n", (unsigned long long)d.last_step, (unsigned)d.failures);
    printf("certificate ");
    if (d.has_cert)
        print_hex(d.cert_hash, sizeof d.cert_hash);
    else
        printf("-");
    printf("\nmanager     %s\nseq         %llu\n", d.manager[0] ? d.manager : "-", (unsigned long long)d.seq);
    if (d.flagged)
        printf("FLAGGED     enrolled by more than one manager (see the audit log)\n");
    otpca_memzero(&d, sizeof d);
    return EXIT_SUCCESS;
}

/* Moves one device from one of the allowed states to `to`. */
/* reason: the CRLReason of a revocation (to == REVOKED), else ignored. */
static otpca_err set_state(otpca_store *st, const char *serial, const int *from, size_t nfrom, int to,
                           unsigned event, const char *detail, int reason)
{
    otpca_device d;
    otpca_err ret = otpca_store_begin(st);
    if (ret)
        return ret;
    ret = otpca_store_device_get(st, serial, &d);
    if (!ret) {
        size_t i;
        for (i = 0; i < nfrom && d.state != from[i]; i++)
            ;
        if (i == nfrom) {
            fprintf(stderr, "otpca-cloud: %s is %s\n", serial, state_name(d.state));
            ret = OTPCA_ERR_STATE;
        }
    }
    if (!ret) {
        if (to == OTPCA_STORE_APPROVED && d.state == OTPCA_STORE_LOCKED)
            to = d.has_cert ? OTPCA_STORE_ENROLLED : OTPCA_STORE_APPROVED;
        d.state = to;
        if (event == EV_UNLOCKED)
            d.failures = 0;
        if (to == OTPCA_STORE_REVOKED) {
            d.revoked_at = (uint64_t)time(NULL);
            d.revoke_reason = (unsigned)reason;
        }
        ret = otpca_store_device_update(st, &d);
    }
    if (!ret)
        ret = audit(st, event, serial, detail);
    if (!ret)
        ret = otpca_store_commit(st);
    else
        otpca_store_rollback(st);
    otpca_memzero(&d, sizeof d);
    return ret;
}

struct approve_ctx {
    char (*serials)[OTPCA_STORE_ID_MAX + 1];
    size_t n, cap;
    char last[OTPCA_STORE_ID_MAX + 1];
};

static int collect_pending(const otpca_device *d, void *arg)
{
    struct approve_ctx *c = arg;
    snprintf(c->last, sizeof c->last, "%s", d->serial);
    if (d->state != OTPCA_STORE_PENDING)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 1024;
        void *p = realloc(c->serials, cap * sizeof *c->serials);
        if (!p)
            return 1;
        c->serials = p;
        c->cap = cap;
    }
    snprintf(c->serials[c->n++], sizeof c->serials[0], "%s", d->serial);
    return 0;
}

static int cmd_device_approve_all(otpca_store *st)
{
    struct approve_ctx c = {0};
    otpca_err ret;
    static const int from[] = {OTPCA_STORE_PENDING};
    do {
        char after[OTPCA_STORE_ID_MAX + 1];
        snprintf(after, sizeof after, "%s", c.last);
        c.last[0] = '\0';
        if ((ret = otpca_store_device_scan(st, after, 10000, collect_pending, &c))) {
            free(c.serials);
            return fail(ret, "store");
        }
    } while (c.last[0]);
    size_t done = 0;
    ret = otpca_store_begin(st);
    for (size_t i = 0; !ret && i < c.n; i++) {
        otpca_device d;
        ret = otpca_store_device_get(st, c.serials[i], &d);
        if (!ret && d.state == from[0]) {
            d.state = OTPCA_STORE_APPROVED;
            ret = otpca_store_device_update(st, &d);
            done++;
        }
        otpca_memzero(&d, sizeof d);
        if (!ret && (i + 1) % IMPORT_CHUNK == 0 && !(ret = otpca_store_commit(st)))
            ret = otpca_store_begin(st);
    }
    char detail[64];
    snprintf(detail, sizeof detail, "%zu devices approved", done);
    if (!ret)
        ret = audit(st, EV_APPROVED, NULL, detail);
    if (!ret)
        ret = otpca_store_commit(st);
    else
        otpca_store_rollback(st);
    free(c.serials);
    if (ret)
        return fail(ret, "approve");
    printf("approved %zu devices\n", done);
    return EXIT_SUCCESS;
}

static int cmd_device_state(otpca_store *st, const char *verb, const char *serial, const struct opts *o)
{
    otpca_err ret;
    char detail[64] = "";
    if (!strcmp(verb, "approve")) {
        static const int from[] = {OTPCA_STORE_PENDING};
        ret = set_state(st, serial, from, 1, OTPCA_STORE_APPROVED, EV_APPROVED, NULL, 0);
    } else if (!strcmp(verb, "revoke")) {
        static const int from[] = {OTPCA_STORE_PENDING, OTPCA_STORE_APPROVED, OTPCA_STORE_ENROLLED,
                                   OTPCA_STORE_LOCKED};
        int reason = o->reason ? otpca_crl_reason_parse(o->reason) : 0;
        snprintf(detail, sizeof detail, "reason %d", reason);
        ret = set_state(st, serial, from, 4, OTPCA_STORE_REVOKED, EV_REVOKED, detail, reason);
    } else {
        static const int from[] = {OTPCA_STORE_LOCKED};
        ret = set_state(st, serial, from, 1, OTPCA_STORE_APPROVED, EV_UNLOCKED, NULL, 0);
    }
    if (ret)
        return fail(ret, serial);
    printf("%s: %sd\n", serial, verb);
    return EXIT_SUCCESS;
}

static int cmd_audit_verify(otpca_store *st)
{
    uint64_t entries = 0, bad = 0;
    otpca_err ret = otpca_store_audit_verify(st, &entries, &bad);
    if (ret == OTPCA_ERR_SIGNATURE) {
        fprintf(stderr, "otpca-cloud: audit chain broken at entry %llu (of %llu)\n", (unsigned long long)bad,
                (unsigned long long)entries);
        return EXIT_FAILURE;
    }
    if (ret)
        return fail(ret, "audit verify");
    printf("audit chain intact: %llu entries\n", (unsigned long long)entries);
    return EXIT_SUCCESS;
}

/* ---- files -------------------------------------------------------------- */

/* Reads all of path into buf (at most cap bytes: a longer file is an
 * error); prints why on failure. Plain read(2): no stdio buffer keeps a
 * copy of a seed file's text. */
static int read_small_file(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "otpca-cloud: %s: %s\n", path, strerror(errno));
        return -1;
    }
    const char *why = NULL;
    *len = 0;
    for (;;) {
        uint8_t extra;
        ssize_t n = *len < cap ? read(fd, buf + *len, cap - *len) : read(fd, &extra, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            why = strerror(errno);
            break;
        }
        if (n == 0)
            break;
        if (*len == cap) {
            why = "file too large";
            break;
        }
        *len += (size_t)n;
    }
    close(fd);
    if (!why && *len == 0)
        why = "file is empty";
    if (why) {
        fprintf(stderr, "otpca-cloud: %s: %s\n", path, why);
        return -1;
    }
    return 0;
}

static int all_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (otpca_hex_digit(p[i]) < 0 && !isspace(p[i]))
            return 0;
    return 1;
}

/* Runs one store change and its audit entry in one transaction. */
static otpca_err commit_with_audit(otpca_store *st, otpca_err ret, unsigned event, const char *subject,
                                   const char *detail)
{
    if (!ret)
        ret = audit(st, event, subject, detail);
    if (!ret)
        ret = otpca_store_commit(st);
    else
        otpca_store_rollback(st);
    return ret;
}

/* ---- batch add ---------------------------------------------------------- */

static int cmd_batch_add(otpca_store *st, const char *id, const struct opts *o)
{
    uint8_t buf[4096];
    size_t len;
    otpca_batch b;
    memset(&b, 0, sizeof b);
    if (read_small_file(o->product_key, buf, sizeof buf, &len))
        return EXIT_FAILURE;
    otpca_err ret;
    if (len > 5 && !memcmp(buf, "-----", 5)) {
        ret = otpca_pubkey_parse(buf, len, b.product_pub);
    } else if (all_hex(buf, len)) {
        uint8_t raw[65];
        size_t n;
        ret = otpca_hex_decode((const char *)buf, len, raw, sizeof raw, &n);
        if (!ret)
            ret = otpca_p256_pub_normalize(raw, n, b.product_pub);
    } else {
        ret = otpca_pubkey_parse(buf, len, b.product_pub);
    }
    if (ret) {
        fprintf(stderr, "otpca-cloud: %s: not a P-256 public key (PEM or DER SubjectPublicKeyInfo, or SEC1 hex)\n",
                o->product_key);
        return EXIT_FAILURE;
    }
    snprintf(b.id, sizeof b.id, "%s", id);
    char detail[64];
    kid_text(detail, sizeof detail, "product key ", b.product_pub);
    if (!(ret = otpca_store_begin(st)))
        ret = commit_with_audit(st, otpca_store_batch_add(st, &b), EV_BATCH_ADDED, id, detail);
    if (ret == OTPCA_ERR_EXISTS) {
        fprintf(stderr, "otpca-cloud: batch %s is already registered\n", id);
        return EXIT_FAILURE;
    }
    if (ret)
        return fail(ret, id);
    printf("batch %s added, %s\n", id, detail);
    return EXIT_SUCCESS;
}

/* ---- managers ----------------------------------------------------------- */

static int cmd_manager_add(otpca_store *st, const char *id, const struct opts *o)
{
    uint8_t buf[8192];
    size_t len;
    int is_ca = 0;
    otpca_manager m;
    memset(&m, 0, sizeof m);
    if (strlen(o->curve_key) != 40 || !zmq_z85_decode(m.curve_pub, o->curve_key)) {
        fputs("otpca-cloud: --curve-key is not a CURVE public key (40 Z85 characters for 32 bytes)\n", stderr);
        return EXIT_FAILURE;
    }
    if (read_small_file(o->ca_cert, buf, sizeof buf, &len))
        return EXIT_FAILURE;
    m.ca_cert_len = sizeof m.ca_cert;
    otpca_err ret = otpca_cert_to_der(buf, len, m.ca_cert, &m.ca_cert_len);
    if (!ret)
        ret = otpca_cert_info(m.ca_cert, m.ca_cert_len, m.ca_pub, &is_ca);
    if (ret == OTPCA_ERR_BAD_KEY) {
        fprintf(stderr, "otpca-cloud: %s: the certificate's key is not a P-256 key\n", o->ca_cert);
        return EXIT_FAILURE;
    }
    if (ret) {
        fprintf(stderr, "otpca-cloud: %s: not a certificate (PEM or DER, at most %d bytes)\n", o->ca_cert,
                OTPCA_STORE_CERT_MAX);
        return EXIT_FAILURE;
    }
    if (!is_ca) {
        fprintf(stderr, "otpca-cloud: %s: not a CA certificate (basicConstraints CA:TRUE missing)\n", o->ca_cert);
        return EXIT_FAILURE;
    }
    snprintf(m.id, sizeof m.id, "%s", id);
    char detail[128];
    size_t n = kid_text(detail, sizeof detail, "ca key ", m.ca_pub);
    snprintf(detail + n, sizeof detail - n, ", curve key %s", o->curve_key);
    if (!(ret = otpca_store_begin(st)))
        ret = commit_with_audit(st, otpca_store_manager_add(st, &m), EV_MANAGER_ADDED, id, detail);
    if (ret == OTPCA_ERR_EXISTS) {
        fprintf(stderr, "otpca-cloud: manager %s or its CURVE key is already registered\n", id);
        return EXIT_FAILURE;
    }
    if (ret)
        return fail(ret, id);
    printf("manager %s added, %s\n", id, detail);
    return EXIT_SUCCESS;
}

static int cmd_manager_revoke(otpca_store *st, const char *id)
{
    otpca_manager m;
    otpca_err ret = otpca_store_begin(st);
    if (ret)
        return fail(ret, "store");
    ret = otpca_store_manager_get(st, id, &m);
    if (!ret && m.revoked) {
        otpca_store_rollback(st);
        fprintf(stderr, "otpca-cloud: manager %s is already revoked\n", id);
        return EXIT_FAILURE;
    }
    if (!ret)
        ret = otpca_store_manager_revoke(st, id);
    ret = commit_with_audit(st, ret, EV_MANAGER_REVOKED, id, NULL);
    if (ret)
        return fail(ret, id);
    printf("manager %s: revoked\n", id);
    return EXIT_SUCCESS;
}

static int list_manager(const otpca_manager *m, void *arg)
{
    char z85[41];
    uint8_t kid[8];
    unsigned long *count = arg;
    otpca_p256_kid(m->ca_pub, kid);
    if (!zmq_z85_encode(z85, m->curve_pub, sizeof m->curve_pub))
        snprintf(z85, sizeof z85, "?");
    printf("%-24s %-7s ca-kid ", m->id, m->revoked ? "revoked" : "active");
    print_hex(kid, sizeof kid);
    printf("  curve %s\n", z85);
    ++*count;
    return 0;
}

static int cmd_manager_list(otpca_store *st)
{
    unsigned long count = 0;
    otpca_err ret = otpca_store_manager_scan(st, list_manager, &count);
    if (ret)
        return fail(ret, "store");
    fprintf(stderr, "%lu managers\n", count);
    return EXIT_SUCCESS;
}

/* ---- operator add ------------------------------------------------------- */

static int cmd_operator_add(const otpca_cloud_config *cfg, const char *id, const struct opts *o)
{
    enum { TEXT_MAX = 512 };
    otpca_operator op;
    struct cloud_token t = {0};
    otpca_store *st = NULL;
    char aad_id[OTPCA_STORE_ID_MAX + 1];
    size_t text_len = 0, len = 0;
    int rc = EXIT_FAILURE;
    otpca_err ret;
    memset(&op, 0, sizeof op);
    op.algorithm = 1;
    op.digits = 6;
    op.period = 30;
    if (strlen(id) > OPERATOR_ID_MAX) {
        fprintf(stderr, "otpca-cloud: an operator id has at most %zu characters\n", (size_t)OPERATOR_ID_MAX);
        return EXIT_USAGE;
    }
    if (o->algorithm) {
        if (!strcasecmp(o->algorithm, "SHA256"))
            op.algorithm = 2;
        else if (strcasecmp(o->algorithm, "SHA1")) {
            fputs("otpca-cloud: --algorithm must be SHA1 or SHA256\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (o->digits)
        op.digits = (unsigned)o->digits;
    if (o->period)
        op.period = (unsigned)o->period;
    /* The file's text and the seed both live in locked memory. */
    uint8_t *text = otpca_secmem_alloc(TEXT_MAX), *seed = otpca_secmem_alloc(OTPCA_SEED_MAX);
    if (!text || !seed) {
        fail(OTPCA_ERR_NOMEM, "secret memory");
        goto out;
    }
    if (read_small_file(o->seed_file, text, TEXT_MAX, &text_len))
        goto out;
    if (!all_hex(text, text_len) ||
        otpca_hex_decode((const char *)text, text_len, seed, OTPCA_SEED_MAX, &len) || len < 16) {
        fprintf(stderr, "otpca-cloud: %s: the seed must be 16-64 bytes in hex\n", o->seed_file);
        goto out;
    }
    otpca_memzero(text, TEXT_MAX);
    if ((ret = otpca_store_open(cfg->store, &st))) {
        fail(ret, store_shown(cfg->store));
        goto out;
    }
    if ((ret = token_open(cfg, st, 1, &t))) {
        fail(ret, "cloud token");
        goto out;
    }
    snprintf(op.id, sizeof op.id, "%s", id);
    snprintf(aad_id, sizeof aad_id, "%s%s", OPERATOR_AAD_PREFIX, id);
    ret = otpca_seed_seal(t.seeds, aad_id, seed, len, op.seed_env, sizeof op.seed_env, &op.seed_env_len);
    otpca_memzero(seed, OTPCA_SEED_MAX);
    if (ret) {
        fail(ret, "seal the seed");
        goto out;
    }
    char detail[64];
    snprintf(detail, sizeof detail, "%s, %u digits, %u s", op.algorithm == 2 ? "SHA256" : "SHA1", op.digits,
             op.period);
    if (!(ret = otpca_store_begin(st)))
        ret = commit_with_audit(st, otpca_store_operator_add(st, &op), EV_OPERATOR_ADDED, id, detail);
    if (ret == OTPCA_ERR_EXISTS) {
        fprintf(stderr, "otpca-cloud: operator %s is already registered\n", id);
        goto out;
    }
    if (ret) {
        fail(ret, id);
        goto out;
    }
    printf("operator %s added (%s); seed sealed at rest\n", id, detail);
    rc = EXIT_SUCCESS;
out:
    otpca_secmem_free(text, TEXT_MAX);
    otpca_secmem_free(seed, OTPCA_SEED_MAX);
    otpca_memzero(&op, sizeof op);
    token_close(&t);
    otpca_store_destroy(&st);
    return rc;
}

/* ---- lease issue ---------------------------------------------------------- */

struct sign_ctx {
    otpca_token_t *tok;
    otpca_obj_t key;
};

static otpca_err token_sign(void *ctx, const uint8_t digest[32], uint8_t sig[OTPCA_P256_SIG_LEN])
{
    struct sign_ctx *c = ctx;
    size_t len = OTPCA_P256_SIG_LEN;
    return otpca_token_sign_digest(c->tok, c->key, digest, 32, OTPCA_SIG_RAW, sig, &len);
}

/* An offline lease: stored like any lease (so the window's records are
 * accepted later) and written as the signed WindowLease, offline = true,
 * with a random nonce. No operator TOTP: the registry's administrator
 * issues it, and the audit log says who for. */
static int cmd_lease_issue(const otpca_cloud_config *cfg, const struct opts *o)
{
    otpca_store *st = NULL;
    struct cloud_token t = {0};
    struct sign_ctx sc;
    otpca_manager m;
    otpca_operator op;
    otpca_lease l;
    otpca_window_lease w;
    otpca_signer signer;
    otpca_buf scope[64];
    uint8_t nonce[16], pub[65], out[4096];
    size_t len = 0, n = 0;
    int rc = EXIT_FAILURE, fd = -1;
    char scope_copy[sizeof l.scope];
    memset(&l, 0, sizeof l);
    memset(&w, 0, sizeof w);
    otpca_err ret = otpca_store_open(cfg->store, &st);
    if (ret) {
        fail(ret, store_shown(cfg->store));
        goto out;
    }
    if ((ret = otpca_store_manager_get(st, o->manager, &m)) || m.revoked) {
        fprintf(stderr, "otpca-cloud: manager %s is %s\n", o->manager, ret ? "not registered" : "revoked");
        goto out;
    }
    if ((ret = otpca_store_operator_get(st, o->operator_, &op))) {
        fprintf(stderr, "otpca-cloud: operator %s is not registered\n", o->operator_);
        goto out;
    }
    if (o->scope) {
        snprintf(scope_copy, sizeof scope_copy, "%s", o->scope);
        for (char *save = NULL, *b = strtok_r(scope_copy, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
            otpca_batch bt;
            if (n == 64 || !valid_id(b) || otpca_store_batch_get(st, b, &bt)) {
                fprintf(stderr, "otpca-cloud: --scope: %s is not a registered batch (at most 64)\n", b);
                goto out;
            }
            scope[n++] = (otpca_buf){(const uint8_t *)b, strlen(b)};
        }
        snprintf(l.scope, sizeof l.scope, "%s", o->scope);
    }
    memset(&t, 0, sizeof t);
    otpca_p11_uri uri;
    if (!cfg->token[0] || (ret = otpca_p11_uri_parse(cfg->token, &uri))) {
        fail(ret ? ret : OTPCA_ERR_CONFIG, "cloud token");
        goto out;
    }
    ret = otpca_p11_new(uri.module_path[0] ? uri.module_path : NULL, &t.p11);
    if (!ret)
        ret = otpca_token_open_uri(t.p11, &uri, NULL, &t.tok);
    otpca_p11_uri_clear(&uri);
    if (!ret)
        ret = otpca_token_find(t.tok, OTPCA_OBJ_PRIVATE_KEY, cfg->sign_key, NULL, 0, &sc.key);
    if (!ret)
        ret = otpca_token_pubkey_sec1(t.tok, sc.key, pub);
    if (ret) {
        fail(ret, "cloud signing key");
        goto out;
    }
    sc.tok = t.tok;
    signer.sign = token_sign;
    signer.ctx = &sc;
    otpca_p256_kid(pub, signer.kid);

    if ((ret = otpca_random(l.window, sizeof l.window)) || (ret = otpca_random(nonce, sizeof nonce))) {
        fail(ret, "random");
        goto out;
    }
    snprintf(l.manager, sizeof l.manager, "%s", o->manager);
    snprintf(l.operator_, sizeof l.operator_, "%s", o->operator_);
    l.not_before = (uint64_t)time(NULL);
    l.not_after = l.not_before + (uint64_t)o->duration;
    l.max_enroll = o->max_enroll ? (uint64_t)o->max_enroll : 100000;
    l.offline = 1;
    w.nonce = (otpca_buf){nonce, sizeof nonce};
    w.window = (otpca_buf){l.window, sizeof l.window};
    w.manager = (otpca_buf){(const uint8_t *)l.manager, strlen(l.manager)};
    w.operator_ = (otpca_buf){(const uint8_t *)l.operator_, strlen(l.operator_)};
    w.not_before = l.not_before;
    w.not_after = l.not_after;
    w.max_enroll = l.max_enroll;
    if (n) {
        w.scope.items = scope;
        w.scope.count = n;
    }
    w.offline = true;
    w.present |= OTPCA_MSG_BIT(9);
    if ((ret = otpca_msg_sign(&otpca_desc_window_lease, &w, &signer, (otpca_buf){NULL, 0}, out, sizeof out, &len))) {
        fail(ret, "sign the lease");
        goto out;
    }
    char detail[160];
    snprintf(detail, sizeof detail, "offline lease for operator %s, %ld s, up to %llu enrollments", o->operator_,
             o->duration, (unsigned long long)l.max_enroll);
    if (!(ret = otpca_store_begin(st))) {
        ret = otpca_store_lease_add(st, &l);
        if (!ret) {
            otpca_audit a;
            memset(&a, 0, sizeof a);
            a.time = (uint64_t)time(NULL);
            snprintf(a.actor, sizeof a.actor, "%s", ACTOR);
            a.event = EV_LEASE_ISSUED;
            snprintf(a.subject, sizeof a.subject, "%s", o->manager);
            snprintf(a.detail, sizeof a.detail, "%s", detail);
            ret = otpca_store_audit_append(st, &a);
        }
        if (ret)
            otpca_store_rollback(st);
        else
            ret = otpca_store_commit(st);
    }
    if (ret) {
        fail(ret, "store the lease");
        goto out;
    }
    /* Written only after the lease is on record; never over an existing file. */
    fd = open(o->out, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || write(fd, out, len) != (ssize_t)len || fsync(fd) != 0) {
        fprintf(stderr, "otpca-cloud: %s: %s\n", o->out, strerror(errno));
        goto out;
    }
    printf("offline lease for %s written to %s (%zu bytes): window ", o->manager, o->out, len);
    print_hex(l.window, sizeof l.window);
    printf(", until %llu\n", (unsigned long long)l.not_after);
    rc = EXIT_SUCCESS;
out:
    if (fd >= 0)
        close(fd);
    token_close(&t);
    otpca_store_destroy(&st);
    return rc;
}

/* ---- crl get -------------------------------------------------------------- */

static int cmd_crl_get(const otpca_cloud_config *cfg, const struct opts *o)
{
    otpca_store *st = NULL;
    otpca_manager m;
    otpca_crl_info info;
    uint64_t number = 0, t0 = 0, t1 = 0;
    size_t len = 0, pem_len = 0;
    char *pem = NULL;
    int rc = EXIT_FAILURE;
    uint8_t *der = malloc(OTPCA_STORE_CRL_MAX);
    otpca_err ret = der ? otpca_store_open(cfg->store, &st) : OTPCA_ERR_NOMEM;
    if (!ret && (ret = otpca_store_manager_get(st, o->manager, &m)) == OTPCA_ERR_NOT_FOUND) {
        fprintf(stderr, "otpca-cloud: manager %s is not registered\n", o->manager);
        goto out;
    }
    if (!ret && (ret = otpca_store_crl_get(st, o->manager, &number, &t0, &t1, der, OTPCA_STORE_CRL_MAX, &len)) ==
                    OTPCA_ERR_NOT_FOUND) {
        fprintf(stderr, "otpca-cloud: manager %s has published no CRL yet (it does when a window opens)\n",
                o->manager);
        goto out;
    }
    /* Kept only after this check at ingest; checked again in case the
     * store was changed behind the cloud's back. */
    if (!ret && (ret = otpca_crl_read(der, len, m.ca_cert, m.ca_cert_len, &info, NULL)))
        fprintf(stderr, "otpca-cloud: the stored CRL of %s does not verify under its certificate\n", o->manager);
    if (!ret && !o->der)
        ret = otpca_crl_to_pem(der, len, &pem, &pem_len);
    if (ret) {
        fail(ret, "crl get");
        goto out;
    }
    const void *data = o->der ? (const void *)der : (const void *)pem;
    size_t n = o->der ? len : pem_len;
    if (o->out ? otpca_file_replace(o->out, data, n) != OTPCA_ERR_OK : (fwrite(data, 1, n, stdout) != n || fflush(stdout))) {
        fprintf(stderr, "otpca-cloud: %s: %s\n", o->out ? o->out : "stdout", strerror(errno));
        goto out;
    }
    if (o->out)
        printf("CRL %llu of %s (%zu entries, next update %lld) written to %s\n", (unsigned long long)number,
               o->manager, info.entries, (long long)info.next_update, o->out);
    rc = EXIT_SUCCESS;
out:
    free(pem);
    free(der);
    otpca_store_destroy(&st);
    return rc;
}

/* ---- key create, key rewrap: rotating the cloud's keys (DEPLOY.md) -------- */

/* Opens the store and the cloud token (nothing loaded from it) for a key
 * verb: EXIT_SUCCESS, or EXIT_FAILURE said and nothing left open. */
static int key_verb_open(const otpca_cloud_config *cfg, otpca_store **st, struct cloud_token *t)
{
    otpca_err ret = otpca_store_open(cfg->store, st);
    if (ret)
        return fail(ret, store_shown(cfg->store));
    if ((ret = token_connect(cfg, t))) {
        otpca_store_destroy(st);
        return fail(ret, "cloud token");
    }
    return EXIT_SUCCESS;
}

/* A new key of one kind beside the old ones, made as init and the rig make
 * theirs (never extractable). A label already in the token, whatever its
 * kind, is refused: a later find by label must find one object. */
static int cmd_key_create(const otpca_cloud_config *cfg, const struct opts *o)
{
    const char *label = o->new_sign ? o->new_sign : o->new_curve ? o->new_curve : o->new_wrap;
    const char *kind = o->new_sign ? "signing key" : o->new_curve ? "CURVE key" : "seed-wrap key";
    otpca_store *st = NULL;
    struct cloud_token t;
    otpca_obj_t obj;
    uint8_t pub[65];
    char detail[128];
    int rc = EXIT_FAILURE;
    if (key_verb_open(cfg, &st, &t))
        return EXIT_FAILURE;
    otpca_err ret = otpca_token_find(t.tok, OTPCA_OBJ_ANY, label, NULL, 0, &obj);
    if (ret != OTPCA_ERR_OBJECT_NOT_FOUND) {
        if (!ret || ret == OTPCA_ERR_OBJECT_AMBIGUOUS)
            fprintf(stderr, "otpca-cloud: token %s already holds an object labelled '%s': choose a new label\n",
                    otpca_token_label(t.tok), label);
        else
            fail(ret, label);
        goto out;
    }
    if (o->new_sign) {
        ret = otpca_token_keygen_p256(t.tok, label, NULL, 0, &obj, NULL);
        if (!ret)
            ret = otpca_token_pubkey_sec1(t.tok, obj, pub);
        if (!ret)
            kid_text(detail, sizeof detail, "signing key, kid ", pub);
    } else if (o->new_curve) {
        ret = curve_public(&t, label, 1, pub);
        if (!ret) {
            char z85[41];
            zmq_z85_encode(z85, pub, 32);
            snprintf(detail, sizeof detail, "CURVE key, public %s", z85);
        }
    } else {
        ret = otpca_token_keygen_aes(t.tok, label, 256, NULL);
        snprintf(detail, sizeof detail, "seed-wrap key, AES-256");
    }
    if (ret) {
        fail(ret, kind);
        goto out;
    }
    printf("created %s '%s' (never extractable) in token %s\n", kind, label, otpca_token_label(t.tok));
    if (o->new_sign)
        print_sign_pin(pub);
    else if (o->new_curve)
        print_curve_pin(pub);
    else
        printf("next: otpca-cloud key rewrap --to %s\n", label);
    if (!(ret = otpca_store_begin(st)))
        ret = commit_with_audit(st, OTPCA_ERR_OK, EV_KEY_CREATED, label, detail);
    rc = ret ? fail(ret, "audit") : EXIT_SUCCESS;
out:
    token_close(&t);
    otpca_store_destroy(&st);
    return rc;
}

/* The store's seed key moves from wrap_key to --to; the seed key, and so
 * every sealed seed, stays what it was. */
static int cmd_key_rewrap(const otpca_cloud_config *cfg, const struct opts *o)
{
    otpca_store *st = NULL;
    struct cloud_token t;
    otpca_obj_t from, to;
    char detail[OTPCA_CLOUD_CONFIG_VALUE_MAX + 16];
    int rc = EXIT_FAILURE;
    otpca_err ret;
    if (key_verb_open(cfg, &st, &t))
        return EXIT_FAILURE;
    if ((ret = otpca_token_find(t.tok, OTPCA_OBJ_SECRET_KEY, cfg->wrap_key, NULL, 0, &from))) {
        fprintf(stderr, "otpca-cloud: token %s has no seed-wrap key '%s' (wrap_key): %s\n", otpca_token_label(t.tok),
                cfg->wrap_key, otpca_strerror(ret));
        goto out;
    }
    if ((ret = otpca_token_find(t.tok, OTPCA_OBJ_SECRET_KEY, o->to, NULL, 0, &to))) {
        fprintf(stderr, "otpca-cloud: token %s has no AES key '%s' (otpca-cloud key create --wrap %s): %s\n",
                otpca_token_label(t.tok), o->to, o->to, otpca_strerror(ret));
        goto out;
    }
    snprintf(detail, sizeof detail, "from '%s'", cfg->wrap_key);
    if (!(ret = otpca_store_begin(st)))
        ret = commit_with_audit(st, otpca_seed_key_rewrap(t.tok, from, to, o->to, st), EV_SEED_KEY_REWRAPPED, o->to,
                                detail);
    if (ret == OTPCA_ERR_STATE) {
        fputs("otpca-cloud: the store's seed key changed meanwhile (another key rewrap?); nothing changed\n", stderr);
        goto out;
    }
    if (ret) {
        fail(ret, "key rewrap");
        goto out;
    }
    printf("the store's seed key is now wrapped by '%s' (was '%s')\n"
           "set wrap_key = %s in every instance's configuration: running instances keep working until they "
           "restart; one started with wrap_key = %s refuses to start\n",
           o->to, cfg->wrap_key, o->to, cfg->wrap_key);
    rc = EXIT_SUCCESS;
out:
    token_close(&t);
    otpca_store_destroy(&st);
    return rc;
}

/* ---- serve ---------------------------------------------------------------- */

static int cmd_serve(const otpca_cloud_config *cfg)
{
    if (otpca_stop_on_signals() != 0) {
        perror("sigaction");
        return EXIT_FAILURE;
    }
    otpca_err ret = otpca_cloud_serve(cfg, &otpca_stop_requested, stdout);
    return ret ? fail(ret, "serve") : EXIT_SUCCESS;
}

/* ---- main ----------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"config", required_argument, NULL, 'c'}, {"state", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'},  {"reason", required_argument, NULL, 'r'},
        {"approve", no_argument, NULL, 'a'},      {"all", no_argument, NULL, 'A'},
        {"product-key", required_argument, NULL, 'P'}, {"ca-cert", required_argument, NULL, 'C'},
        {"curve-key", required_argument, NULL, 'K'},   {"seed-file", required_argument, NULL, 'S'},
        {"digits", required_argument, NULL, 'd'},      {"period", required_argument, NULL, 'p'},
        {"algorithm", required_argument, NULL, 'g'},   {"help", no_argument, NULL, 'h'},
        {"manager", required_argument, NULL, 'M'},     {"operator", required_argument, NULL, 'O'},
        {"duration", required_argument, NULL, 'D'},    {"max-enroll", required_argument, NULL, 'E'},
        {"scope", required_argument, NULL, 'X'},       {"out", required_argument, NULL, 'o'},
        {"der", no_argument, NULL, 'R'},               {"sign", required_argument, NULL, 'i'},
        {"curve", required_argument, NULL, 'v'},       {"wrap", required_argument, NULL, 'w'},
        {"to", required_argument, NULL, 't'},          {NULL, 0, NULL, 0}};
    struct opts o = {0};
    int c;
    otpca_process_harden();
    while ((c = getopt_long(argc, argv, "+c:h", lo, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.config = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    /* Verb: one word, or two for the noun-verb pairs. */
    const struct verb *v = NULL;
    int words = 0;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0] && !v; i++) {
        const char *sp = strchr(verbs[i].name, ' ');
        if (!sp && !strcmp(argv[optind], verbs[i].name)) {
            v = &verbs[i];
            words = 1;
        } else if (sp && optind + 1 < argc && strlen(argv[optind]) == (size_t)(sp - verbs[i].name) &&
                   !strncmp(argv[optind], verbs[i].name, (size_t)(sp - verbs[i].name)) &&
                   !strcmp(argv[optind + 1], sp + 1)) {
            v = &verbs[i];
            words = 2;
        }
    }
    if (!v) {
        fprintf(stderr, "otpca-cloud: unknown verb '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    optind += words;
    int vargc = argc - optind + 1;
    char **vargv = argv + optind - 1;
    optind = 0; /* 0: glibc re-initialises (the first pass stopped at the verb) */
    while ((c = getopt_long(vargc, vargv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.config = optarg;
            break;
        case 's':
            o.state = optarg;
            break;
        case 'l':
            if (otpca_option_long(optarg, 1, LONG_MAX, &o.limit))
                return usage_error(v, "--limit wants a positive number");
            break;
        case 'r':
            if (otpca_crl_reason_parse(optarg) < 0)
                return usage_error(v, "--reason is an RFC 5280 CRLReason: 0-6, 9, 10 or its name (keyCompromise, ...)");
            o.reason = optarg;
            break;
        case 'a':
            o.approve = 1;
            break;
        case 'R':
            o.der = 1;
            break;
        case 'A':
            o.all = 1;
            break;
        case 'P':
            o.product_key = optarg;
            break;
        case 'C':
            o.ca_cert = optarg;
            break;
        case 'K':
            o.curve_key = optarg;
            break;
        case 'S':
            o.seed_file = optarg;
            break;
        case 'g':
            o.algorithm = optarg;
            break;
        case 'M':
            o.manager = optarg;
            break;
        case 'O':
            o.operator_ = optarg;
            break;
        case 'X':
            o.scope = optarg;
            break;
        case 'o':
            o.out = optarg;
            break;
        case 'i':
            o.new_sign = optarg;
            break;
        case 'v':
            o.new_curve = optarg;
            break;
        case 'w':
            o.new_wrap = optarg;
            break;
        case 't':
            o.to = optarg;
            break;
        case 'D':
            if (otpca_option_long(optarg, 1, 2592000, &o.duration))
                return usage_error(v, "--duration must be 1 to 2592000 seconds");
            break;
        case 'E':
            if (otpca_option_long(optarg, 1, 100000000, &o.max_enroll))
                return usage_error(v, "--max-enroll must be 1 to 100000000");
            break;
        case 'd':
            if (otpca_option_long(optarg, 6, 8, &o.digits))
                return usage_error(v, "--digits must be 6 to 8");
            break;
        case 'p':
            if (otpca_option_long(optarg, 1, 3600, &o.period))
                return usage_error(v, "--period must be 1 to 3600 seconds");
            break;
        case 'h':
            printf("usage: otpca-cloud %s %s\n  %s\n", v->name, v->args, v->help);
            return EXIT_SUCCESS;
        default:
            return usage_error(v, "unknown option");
        }
    }
    const char *arg = optind < vargc ? vargv[optind] : NULL;
    if (optind + (arg ? 1 : 0) < vargc)
        return usage_error(v, "too many arguments");

    otpca_cloud_config cfg;
    char err[512] = "";
    otpca_err ret = otpca_cloud_config_load(o.config, &cfg, err, sizeof err);
    if (ret) {
        fprintf(stderr, "otpca-cloud: %s\n", err);
        return EXIT_FAILURE;
    }
    otpca_log_configure(cfg.log_level, cfg.log_format);

    if (!strcmp(v->name, "init"))
        return arg ? usage_error(v, "init takes no argument") : cmd_init(&cfg);
    if (!strcmp(v->name, "device import")) {
        if (!arg)
            return usage_error(v, "which manifest file?");
        return cmd_device_import(&cfg, arg, &o);
    }
    if (!strcmp(v->name, "device list") || !strcmp(v->name, "device show") ||
        !strcmp(v->name, "device approve") || !strcmp(v->name, "device revoke") ||
        !strcmp(v->name, "device unlock") || !strcmp(v->name, "audit verify")) {
        int needs_serial = strcmp(v->name, "device list") && strcmp(v->name, "audit verify") &&
                           !(o.all && !strcmp(v->name, "device approve"));
        if (needs_serial && !arg)
            return usage_error(v, "which device (SERIAL)?");
        if (!needs_serial && arg)
            return usage_error(v, "unexpected argument");
        otpca_store *st = NULL;
        if ((ret = otpca_store_open(cfg.store, &st)))
            return fail(ret, store_shown(cfg.store));
        int rc;
        if (!strcmp(v->name, "device list"))
            rc = cmd_device_list(st, &o);
        else if (!strcmp(v->name, "device show"))
            rc = cmd_device_show(st, arg);
        else if (!strcmp(v->name, "audit verify"))
            rc = cmd_audit_verify(st);
        else if (o.all)
            rc = cmd_device_approve_all(st);
        else
            rc = cmd_device_state(st, v->name + strlen("device "), arg, &o);
        otpca_store_destroy(&st);
        return rc;
    }
    if (!strcmp(v->name, "operator add")) {
        if (!arg)
            return usage_error(v, "which operator (ID)?");
        if (!valid_id(arg))
            return usage_error(v, "an id is 1-64 characters [A-Za-z0-9._:-]");
        if (!o.seed_file)
            return usage_error(v, "--seed-file is required");
        return cmd_operator_add(&cfg, arg, &o);
    }
    if (!strcmp(v->name, "operator allow")) {
        if (!arg || !o.manager)
            return usage_error(v, "which operator (ID) and --manager?");
        if (!valid_id(arg) || !valid_id(o.manager))
            return usage_error(v, "an id is 1-64 characters [A-Za-z0-9._:-]");
        otpca_store *st = NULL;
        if ((ret = otpca_store_open(cfg.store, &st)))
            return fail(ret, store_shown(cfg.store));
        char detail[128];
        snprintf(detail, sizeof detail, "may open windows on %s", o.manager);
        if (!(ret = otpca_store_begin(st)))
            ret = commit_with_audit(st, otpca_store_operator_grant(st, arg, o.manager), EV_OPERATOR_ALLOWED, arg, detail);
        otpca_store_destroy(&st);
        if (ret == OTPCA_ERR_EXISTS) {
            fprintf(stderr, "otpca-cloud: operator %s may already open windows on %s\n", arg, o.manager);
            return EXIT_FAILURE;
        }
        if (ret == OTPCA_ERR_NOT_FOUND) {
            fprintf(stderr, "otpca-cloud: operator %s or manager %s is not registered\n", arg, o.manager);
            return EXIT_FAILURE;
        }
        if (ret)
            return fail(ret, arg);
        printf("operator %s may open windows on %s\n", arg, o.manager);
        return EXIT_SUCCESS;
    }
    if (!strcmp(v->name, "batch add") || !strcmp(v->name, "manager add") || !strcmp(v->name, "manager revoke") ||
        !strcmp(v->name, "manager list")) {
        int list = !strcmp(v->name, "manager list");
        if (list && arg)
            return usage_error(v, "unexpected argument");
        if (!list && !arg)
            return usage_error(v, "which ID?");
        if (!list && !valid_id(arg))
            return usage_error(v, "an id is 1-64 characters [A-Za-z0-9._:-]");
        if (!strcmp(v->name, "batch add") && !o.product_key)
            return usage_error(v, "--product-key is required");
        if (!strcmp(v->name, "manager add") && (!o.ca_cert || !o.curve_key))
            return usage_error(v, "--ca-cert and --curve-key are required");
        otpca_store *st = NULL;
        if ((ret = otpca_store_open(cfg.store, &st)))
            return fail(ret, store_shown(cfg.store));
        int rc;
        if (!strcmp(v->name, "batch add"))
            rc = cmd_batch_add(st, arg, &o);
        else if (!strcmp(v->name, "manager add"))
            rc = cmd_manager_add(st, arg, &o);
        else if (!strcmp(v->name, "manager revoke"))
            rc = cmd_manager_revoke(st, arg);
        else
            rc = cmd_manager_list(st);
        otpca_store_destroy(&st);
        return rc;
    }
    if (!strcmp(v->name, "crl get")) {
        if (arg)
            return usage_error(v, "unexpected argument");
        if (!o.manager || !valid_id(o.manager))
            return usage_error(v, "--manager ID is required");
        return cmd_crl_get(&cfg, &o);
    }
    if (!strcmp(v->name, "lease issue")) {
        if (arg)
            return usage_error(v, "unexpected argument");
        if (!o.manager || !o.operator_ || !o.duration || !o.out)
            return usage_error(v, "--manager, --operator, --duration and --out are required");
        if (!valid_id(o.manager) || !valid_id(o.operator_))
            return usage_error(v, "an id is 1-64 characters [A-Za-z0-9._:-]");
        return cmd_lease_issue(&cfg, &o);
    }
    if (!strcmp(v->name, "key create")) {
        if (arg)
            return usage_error(v, "unexpected argument");
        if (!!o.new_sign + !!o.new_curve + !!o.new_wrap != 1)
            return usage_error(v, "one of --sign, --curve or --wrap, with the new key's label");
        if (!valid_id(o.new_sign ? o.new_sign : o.new_curve ? o.new_curve : o.new_wrap))
            return usage_error(v, "a label is 1-64 characters [A-Za-z0-9._:-]");
        return cmd_key_create(&cfg, &o);
    }
    if (!strcmp(v->name, "key rewrap")) {
        if (arg)
            return usage_error(v, "unexpected argument");
        if (!o.to || !valid_id(o.to))
            return usage_error(v, "--to LABEL (1-64 characters [A-Za-z0-9._:-]) is required");
        if (!strcmp(o.to, cfg.wrap_key))
            return usage_error(v, "--to names the seed-wrap key in use (wrap_key): nothing to do");
        return cmd_key_rewrap(&cfg, &o);
    }
    if (!strcmp(v->name, "serve")) {
        if (arg)
            return usage_error(v, "serve takes no argument");
        return cmd_serve(&cfg);
    }
    fprintf(stderr, "otpca-cloud: %s: %s (issue #4 continues)\n", v->name, otpca_strerror(OTPCA_ERR_UNSUPPORTED));
    return EXIT_FAILURE;
}
