/*
 * otpca-token: the command-line face of libotpca-token. Verb-noun
 * commands (list, keygen, pubkey, seed import, otp, sign, cert selfsign,
 * cert issue, rig create); objects are named by RFC 7512 PKCS#11 URIs and
 * PINs come from pin-source, --pin-file, --pin-fd or a prompt, never argv.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "otpca/common/hex.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"
#include "otpca/token/rig.h"
#include "otpca/token/token.h"
#include "otpca/token/wolf.h"

#define EXIT_USAGE 2

struct opts {
    const char *module, *pin_file, *out, *in, *seed_file, *cn, *org, *ca, *pubkey, *format;
    int pin_fd, seed_fd, pin_prompt, digits, period, sha256, der, is_ca, path_len, days, help, aes;
    long long time_at, counter;
    unsigned nodes, managers;
};

static const struct verb {
    const char *name, *args, *help;
} verbs[] = {
    {"list", "[--module PATH]", "List the tokens the PKCS#11 module presents."},
    {"keygen", "URI [--aes 128|256] [PIN]",
     "Generate a non-extractable P-256 key pair, or with --aes an AES key, named by the URI's object."},
    {"pubkey", "URI [--format pem|der|sec1] [--out FILE]",
     "Export the public key of a key pair (PEM SubjectPublicKeyInfo by default; sec1 = hex)."},
    {"seed import", "URI (--seed-file FILE | --seed-fd N) [PIN]",
     "Import a hex TOTP seed (16-64 bytes) as a non-extractable HMAC key."},
    {"otp", "URI [--time UNIX | --counter N] [--digits 6] [--period 30] [--sha256] [PIN]",
     "Print the TOTP (or HOTP) code computed inside the token."},
    {"sign", "URI --in FILE [--der] [--out FILE] [PIN]",
     "SHA-256 the file and sign the digest with the token key (raw r||s or DER)."},
    {"cert selfsign", "URI --cn NAME [--org O] [--days N] [--ca [--path-len N]] [--out FILE] [PIN]",
     "Self-signed certificate for the token key pair (PEM)."},
    {"cert issue", "URI --issuer CERT --pubkey PEM --cn NAME [--org O] [--days N] [--ca] [--out FILE] [PIN]",
     "Certificate for a public key, signed by the token key under the issuer certificate."},
    {"rig create", "DIR [--nodes N] [--managers M] [--module PATH]",
     "Create a SoftHSM rig: root, cloud, manager/operator and node tokens plus manifest.csv."},
};

static void usage_verb(FILE *f, const struct verb *v)
{
    fprintf(f, "usage: otpca-token %s %s\n  %s\n", v->name, v->args, v->help);
}

static void usage(FILE *f)
{
    fputs("usage: otpca-token VERB [ARGS] [--help]\n\nverbs:\n", f);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(f, "  %-14s %s\n", verbs[i].name, verbs[i].help);
    fputs("\nURI: RFC 7512, e.g. 'pkcs11:token=node-000001;object=totp?pin-source=file:/rig/pins/node-000001.pin'\n"
          "PIN: pin-source in the URI, --pin-file FILE, --pin-fd N or --pin-prompt; never on the command line.\n"
          "Module: --module PATH, the URI's module-path, $OTPCA_PKCS11_MODULE, or SoftHSM.\n"
          "Logging: OTPCA_LOG_LEVEL=debug|info|warn|error, OTPCA_LOG_FORMAT=text|json.\n",
          f);
}

static int fail(otpca_err e, const char *what)
{
    fprintf(stderr, "otpca-token: %s: %s (%s)\n", what, otpca_strerror(e), otpca_errname(e));
    return EXIT_FAILURE;
}

static int usage_error(const struct verb *v, const char *msg)
{
    fprintf(stderr, "otpca-token: %s\n", msg);
    usage_verb(stderr, v);
    return EXIT_USAGE;
}

static otpca_err read_file(const char *path, unsigned char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "otpca-token: %s: %s\n", path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    *len = fread(buf, 1, cap, f);
    int bad = ferror(f) || !feof(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "otpca-token: %s: unreadable or larger than %zu bytes\n", path, cap);
        return OTPCA_ERR_IO;
    }
    return OTPCA_ERR_OK;
}

/* Write to --out (created 0644, replaced) or stdout. */
static otpca_err write_out(const char *path, const void *data, size_t len)
{
    FILE *f = path ? fopen(path, "wb") : stdout;
    if (!f) {
        fprintf(stderr, "otpca-token: %s: %s\n", path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    int ok = fwrite(data, 1, len, f) == len;
    ok = (path ? fclose(f) : fflush(f)) == 0 && ok;
    return ok ? OTPCA_ERR_OK : OTPCA_ERR_IO;
}

/* The parsed URI (module and PIN taken into account) and a loaded module. */
struct session {
    otpca_p11_uri uri;
    otpca_p11_t *p11;
    otpca_token_t *tok;
};

static void session_end(struct session *s)
{
    otpca_token_destroy(&s->tok);
    otpca_p11_destroy(&s->p11);
    otpca_p11_uri_clear(&s->uri);
}

static otpca_err session_begin(struct session *s, const char *uri, const struct opts *o, int login)
{
    otpca_err ret = otpca_p11_uri_parse(uri, &s->uri);
    if (ret) {
        fprintf(stderr, "otpca-token: '%s' is not a valid PKCS#11 URI\n", uri);
        return ret;
    }
    if (s->uri.has_pin_value) {
        fprintf(stderr, "otpca-token: pin-value on the command line is visible to every user; "
                        "use pin-source=file:..., --pin-file or --pin-fd\n");
        return OTPCA_ERR_USAGE;
    }
    if (!s->uri.token[0] && !s->uri.serial[0]) {
        fprintf(stderr, "otpca-token: the URI must name a token (token= or serial=)\n");
        return OTPCA_ERR_USAGE;
    }
    const char *module = o->module ? o->module : s->uri.module_path[0] ? s->uri.module_path : NULL;
    ret = otpca_p11_new(module, &s->p11);
    if (ret)
        return ret;
    otpca_pin_src src = {.kind = OTPCA_PIN_NONE, .fd = -1};
    if (o->pin_file) {
        src.kind = OTPCA_PIN_FILE;
        src.path = o->pin_file;
    } else if (o->pin_fd >= 0) {
        src.kind = OTPCA_PIN_FD;
        src.fd = o->pin_fd;
    } else if (o->pin_prompt || (login && !s->uri.pin_source[0])) {
        src.kind = OTPCA_PIN_PROMPT;
        src.prompt = "Token PIN: ";
    }
    if (!login) {
        otpca_p11_uri nopin = s->uri;
        nopin.pin_source[0] = '\0';
        ret = otpca_token_open(s->p11, &nopin, NULL, &s->tok);
        otpca_p11_uri_clear(&nopin);
        return ret;
    }
    return otpca_token_open_uri(s->p11, &s->uri, &src, &s->tok);
}

static int by_label(const void *a, const void *b)
{
    const otpca_token_info *x = a, *y = b;
    if (x->initialized != y->initialized) /* free slots last */
        return y->initialized - x->initialized;
    return strcmp(x->label, y->label);
}

static int cmd_list(const struct opts *o)
{
    otpca_p11_t *p11 = NULL;
    otpca_err ret = otpca_p11_new(o->module, &p11);
    if (ret)
        return fail(ret, "module");
    size_t n = 0;
    ret = otpca_p11_list(p11, NULL, 0, &n);
    otpca_token_info *infos = n ? calloc(n, sizeof *infos) : NULL;
    if (!ret && n && !infos)
        ret = OTPCA_ERR_NOMEM;
    if (!ret && n)
        ret = otpca_p11_list(p11, infos, n, &n);
    if (!ret && n)
        qsort(infos, n, sizeof *infos, by_label);
    if (!ret) {
        printf("%-10s %-32s %-16s %-8s %s\n", "slot", "label", "serial", "state", "uri");
        for (size_t i = 0; i < n; i++) {
            const otpca_token_info *t = &infos[i];
            const char *state = !t->initialized ? "free" : t->user_pin_locked ? "locked" : "ready";
            if (t->initialized)
                printf("%-10lu %-32s %-16s %-8s pkcs11:token=%s\n", t->slot_id, t->label, t->serial,
                       state, t->label);
            else
                printf("%-10lu %-32s %-16s %-8s -\n", t->slot_id, "(uninitialised)", t->serial, state);
        }
    }
    free(infos);
    otpca_p11_destroy(&p11);
    return ret ? fail(ret, "list") : EXIT_SUCCESS;
}

static int cmd_keygen(const char *uri, const struct opts *o)
{
    struct session s = {0};
    unsigned char sec1[OTPCA_EC_P256_SEC1_LEN];
    otpca_obj_t priv;
    otpca_err ret = session_begin(&s, uri, o, 1);
    if (!ret && !s.uri.object[0]) {
        fprintf(stderr, "otpca-token: the URI must name the key (object=LABEL)\n");
        ret = OTPCA_ERR_USAGE;
    }
    if (!ret && o->aes) {
        if (s.uri.has_id) {
            fprintf(stderr, "otpca-token: AES keys are named by label only (no id=)\n");
            ret = OTPCA_ERR_USAGE;
        }
        if (!ret)
            ret = otpca_token_keygen_aes(s.tok, s.uri.object, (unsigned)o->aes, NULL);
        if (!ret)
            log_info("generated AES-%d key %s in token %s", o->aes, s.uri.object, s.uri.token);
        session_end(&s);
        return ret ? fail(ret, "keygen") : EXIT_SUCCESS;
    }
    if (!ret)
        ret = otpca_token_keygen_p256(s.tok, s.uri.object, s.uri.has_id ? s.uri.id : NULL, s.uri.id_len,
                                      &priv, NULL);
    if (!ret)
        ret = otpca_token_pubkey_sec1(s.tok, priv, sec1);
    if (!ret) {
        char pem[256];
        size_t len = sizeof pem;
        ret = otpca_pubkey_sec1_to_pem(sec1, pem, &len);
        if (!ret)
            ret = write_out(o->out, pem, len);
        log_info("generated P-256 key %s in token %s", s.uri.object, s.uri.token);
    }
    session_end(&s);
    return ret ? fail(ret, "keygen") : EXIT_SUCCESS;
}

static int cmd_pubkey(const char *uri, const struct opts *o)
{
    struct session s = {0};
    otpca_obj_t key;
    unsigned char sec1[OTPCA_EC_P256_SEC1_LEN];
    char text[512];
    size_t len = sizeof text;
    const char *fmt = o->format ? o->format : "pem";
    if (strcmp(fmt, "pem") && strcmp(fmt, "der") && strcmp(fmt, "sec1")) {
        fprintf(stderr, "otpca-token: --format must be pem, der or sec1\n");
        return EXIT_USAGE;
    }
    otpca_err ret = session_begin(&s, uri, o, 0);
    if (!ret)
        ret = otpca_token_find_uri(s.tok, &s.uri, OTPCA_OBJ_PUBLIC_KEY, &key);
    if (!ret)
        ret = otpca_token_pubkey_sec1(s.tok, key, sec1);
    if (!ret && strcmp(fmt, "sec1") == 0) {
        for (size_t i = 0; i < sizeof sec1; i++)
            sprintf(text + 2 * i, "%02x", sec1[i]);
        strcat(text, "\n");
        ret = write_out(o->out, text, strlen(text));
    } else if (!ret) {
        ret = otpca_pubkey_sec1_to_pem(sec1, text, &len);
        if (!ret && strcmp(fmt, "der") == 0) {
            unsigned char der[128];
            int n = wc_PubKeyPemToDer((unsigned char *)text, (int)len, der, sizeof der);
            ret = n > 0 ? write_out(o->out, der, (size_t)n) : OTPCA_ERR_CRYPTO;
        } else if (!ret) {
            ret = write_out(o->out, text, len);
        }
    }
    session_end(&s);
    return ret ? fail(ret, "pubkey") : EXIT_SUCCESS;
}

/* Read a hex seed from a file or fd into secret memory (seed, OTPCA_SEED_MAX). */
static otpca_err read_seed(const struct opts *o, unsigned char *seed, size_t *seed_len)
{
    char *text = otpca_secmem_alloc(4 * OTPCA_SEED_MAX);
    size_t n = 0, out = 0;
    otpca_err ret = OTPCA_ERR_PIN_SOURCE;
    if (!text)
        return OTPCA_ERR_NOMEM;
    int fd = o->seed_file ? open(o->seed_file, O_RDONLY | O_CLOEXEC) : o->seed_fd;
    if (fd < 0) {
        fprintf(stderr, "otpca-token: seed: %s\n", strerror(errno));
        ret = OTPCA_ERR_IO;
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, text + n, 4 * OTPCA_SEED_MAX - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n >= 4 * OTPCA_SEED_MAX - 1)
            break;
    }
    if (o->seed_file)
        close(fd);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    if (n % 2 || n / 2 < OTPCA_SEED_MIN || n / 2 > OTPCA_SEED_MAX) {
        fprintf(stderr, "otpca-token: the seed must be %d to %d bytes of hex\n", OTPCA_SEED_MIN,
                OTPCA_SEED_MAX);
        ret = OTPCA_ERR_INVALID_ARG;
        goto out;
    }
    for (size_t i = 0; i < n; i += 2) {
        int h = otpca_hex_digit((unsigned char)text[i]), l = otpca_hex_digit((unsigned char)text[i + 1]);
        if (h < 0 || l < 0) {
            fprintf(stderr, "otpca-token: the seed is not hex\n");
            ret = OTPCA_ERR_INVALID_ARG;
            goto out;
        }
        seed[out++] = (unsigned char)(h * 16 + l);
    }
    *seed_len = out;
    ret = OTPCA_ERR_OK;
out:
    otpca_secmem_free(text, 4 * OTPCA_SEED_MAX);
    return ret;
}

static int cmd_seed_import(const char *uri, const struct opts *o)
{
    struct session s = {0};
    size_t len = 0;
    if (!o->seed_file && o->seed_fd < 0) {
        fprintf(stderr, "otpca-token: give the seed with --seed-file FILE or --seed-fd N (never argv)\n");
        return EXIT_USAGE;
    }
    unsigned char *seed = otpca_secmem_alloc(OTPCA_SEED_MAX);
    if (!seed)
        return fail(OTPCA_ERR_NOMEM, "seed import");
    otpca_err ret = read_seed(o, seed, &len);
    if (!ret)
        ret = session_begin(&s, uri, o, 1);
    if (!ret && !s.uri.object[0]) {
        fprintf(stderr, "otpca-token: the URI must name the seed (object=LABEL)\n");
        ret = OTPCA_ERR_USAGE;
    }
    if (!ret)
        ret = otpca_token_seed_import(s.tok, s.uri.object, s.uri.has_id ? s.uri.id : NULL, s.uri.id_len,
                                      seed, len, NULL);
    otpca_secmem_free(seed, OTPCA_SEED_MAX);
    if (!ret)
        log_info("imported a %zu-byte seed as %s in token %s", len, s.uri.object, s.uri.token);
    session_end(&s);
    return ret ? fail(ret, "seed import") : EXIT_SUCCESS;
}

static int cmd_otp(const char *uri, const struct opts *o)
{
    struct session s = {0};
    otpca_obj_t key;
    uint32_t code = 0;
    otpca_otp_alg alg = o->sha256 ? OTPCA_OTP_SHA256 : OTPCA_OTP_SHA1;
    if (o->digits < 6 || o->digits > 8 || o->period <= 0) {
        fprintf(stderr, "otpca-token: --digits must be 6..8 and --period positive\n");
        return EXIT_USAGE;
    }
    otpca_err ret = session_begin(&s, uri, o, 1);
    if (!ret)
        ret = otpca_token_find_uri(s.tok, &s.uri, OTPCA_OBJ_SECRET_KEY, &key);
    if (!ret && o->counter >= 0)
        ret = otpca_token_hotp(s.tok, key, alg, (uint64_t)o->counter, (unsigned)o->digits, &code);
    else if (!ret)
        ret = otpca_token_totp(s.tok, key, alg, o->time_at >= 0 ? (time_t)o->time_at : time(NULL),
                               (unsigned)o->period, (unsigned)o->digits, &code);
    if (!ret)
        printf("%0*u\n", o->digits, code);
    session_end(&s);
    return ret ? fail(ret, "otp") : EXIT_SUCCESS;
}

static int cmd_sign(const char *uri, const struct opts *o)
{
    struct session s = {0};
    otpca_obj_t key;
    unsigned char digest[WC_SHA256_DIGEST_SIZE], sig[OTPCA_SIG_DER_MAX], buf[65536];
    size_t sig_len = sizeof sig;
    wc_Sha256 sha;
    if (!o->in) {
        fprintf(stderr, "otpca-token: sign needs --in FILE\n");
        return EXIT_USAGE;
    }
    FILE *f = fopen(o->in, "rb");
    if (!f) {
        fprintf(stderr, "otpca-token: %s: %s\n", o->in, strerror(errno));
        return EXIT_FAILURE;
    }
    wc_InitSha256(&sha);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        wc_Sha256Update(&sha, buf, (word32)n);
    int bad = ferror(f);
    fclose(f);
    wc_Sha256Final(&sha, digest);
    wc_Sha256Free(&sha);
    if (bad)
        return fail(OTPCA_ERR_IO, o->in);
    otpca_err ret = session_begin(&s, uri, o, 1);
    if (!ret)
        ret = otpca_token_find_uri(s.tok, &s.uri, OTPCA_OBJ_PRIVATE_KEY, &key);
    if (!ret)
        ret = otpca_token_sign_digest(s.tok, key, digest, sizeof digest,
                                      o->der ? OTPCA_SIG_DER : OTPCA_SIG_RAW, sig, &sig_len);
    if (!ret)
        ret = write_out(o->out, sig, sig_len);
    session_end(&s);
    return ret ? fail(ret, "sign") : EXIT_SUCCESS;
}

static int cmd_cert(const char *uri, const struct opts *o, int self)
{
    struct session s = {0};
    otpca_obj_t key;
    otpca_wolf_signer signer;
    int have_signer = 0;
    static unsigned char issuer[OTPCA_CERT_DER_MAX], der[OTPCA_CERT_DER_MAX], file[8192];
    unsigned char sec1[OTPCA_EC_P256_SEC1_LEN];
    static char pem[OTPCA_CERT_PEM_MAX];
    size_t issuer_len = sizeof issuer, der_len = sizeof der, pem_len = sizeof pem, n = 0;
    otpca_err ret = OTPCA_ERR_OK;
    otpca_cert_req req = {.common_name = o->cn, .organization = o->org, .is_ca = o->is_ca,
                          .path_len = o->path_len, .days = (unsigned)o->days};
    if (!o->cn || o->days <= 0) {
        fprintf(stderr, "otpca-token: --cn is required and --days must be positive\n");
        return EXIT_USAGE;
    }
    if (!self) {
        if (!o->ca || !o->pubkey) {
            fprintf(stderr, "otpca-token: cert issue needs --issuer CERT and --pubkey PEM\n");
            return EXIT_USAGE;
        }
        ret = read_file(o->ca, file, sizeof file, &n);
        if (!ret)
            ret = otpca_cert_to_der(file, n, issuer, &issuer_len);
        if (!ret)
            ret = read_file(o->pubkey, file, sizeof file, &n);
        if (!ret)
            ret = otpca_pubkey_parse(file, n, sec1);
        if (ret)
            return fail(ret, "cert issue: inputs");
        req.issuer_der = issuer;
        req.issuer_der_len = issuer_len;
        req.subject_sec1 = sec1;
    }
    ret = session_begin(&s, uri, o, 1);
    if (!ret)
        ret = otpca_token_find_uri(s.tok, &s.uri, OTPCA_OBJ_PRIVATE_KEY, &key);
    if (!ret)
        ret = otpca_wolf_signer_init(&signer, s.tok, key);
    have_signer = ret == OTPCA_ERR_OK;
    if (!ret)
        ret = otpca_cert_issue(&signer, &req, der, &der_len);
    if (!ret)
        ret = otpca_cert_der_to_pem(der, der_len, pem, &pem_len);
    if (!ret)
        ret = write_out(o->out, pem, pem_len);
    if (have_signer)
        otpca_wolf_signer_free(&signer);
    session_end(&s);
    return ret ? fail(ret, self ? "cert selfsign" : "cert issue") : EXIT_SUCCESS;
}

static void rig_progress(unsigned done, unsigned total, void *arg)
{
    int tty = *(int *)arg;
    if (tty) {
        int width = 40, filled = (int)((unsigned long)done * (unsigned)width / total);
        fprintf(stderr, "\r[%.*s%*s] %u/%u tokens", filled, "########################################",
                width - filled, "", done, total);
        if (done == total)
            fputc('\n', stderr);
    } else if (done == total || done % 100 == 0) {
        fprintf(stderr, "rig: %u/%u tokens\n", done, total);
    }
}

static int cmd_rig_create(const char *dir, const struct opts *o)
{
    int tty = isatty(STDERR_FILENO);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    otpca_err ret = otpca_rig_create(dir, o->module, o->nodes, o->managers, rig_progress, &tty);
    if (ret)
        return fail(ret, "rig create");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("rig %s: root, cloud, %u manager(s) with operator tokens, %u node(s) in %.1f s\n"
           "  export SOFTHSM2_CONF=%s/softhsm2.conf\n"
           "  manifest (secret, 0600): %s/manifest.csv\n",
           dir, o->managers, o->nodes, secs, dir, dir);
    return EXIT_SUCCESS;
}

static int parse_num(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    otpca_log_init("otpca-token", OTPCA_LOG_WARN, OTPCA_LOG_TEXT);
    otpca_process_harden();
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_SUCCESS;
    }
    /* Two-word verbs ("seed import") take two argv slots. */
    const struct verb *v = NULL;
    int consumed = 1;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0] && !v; i++) {
        const char *sp = strchr(verbs[i].name, ' ');
        if (!sp && strcmp(argv[1], verbs[i].name) == 0)
            v = &verbs[i];
        else if (sp && argc > 2 && strncmp(argv[1], verbs[i].name, (size_t)(sp - verbs[i].name)) == 0 &&
                 strlen(argv[1]) == (size_t)(sp - verbs[i].name) && strcmp(argv[2], sp + 1) == 0)
            v = &verbs[i], consumed = 2;
    }
    if (!v) {
        fprintf(stderr, "otpca-token: unknown verb '%s'\n", argv[1]);
        usage(stderr);
        return EXIT_USAGE;
    }
    struct opts o = {.pin_fd = -1, .seed_fd = -1, .digits = 6, .period = 30, .path_len = -1,
                     .days = 365, .time_at = -1, .counter = -1, .nodes = 0, .managers = 1};
    enum { O_MODULE = 256, O_PIN_FILE, O_PIN_FD, O_PIN_PROMPT, O_OUT, O_IN, O_SEED_FILE, O_SEED_FD,
           O_TIME, O_COUNTER, O_DIGITS, O_PERIOD, O_SHA256, O_DER, O_CN, O_ORG, O_CA, O_ISSUER,
           O_PUBKEY, O_PATHLEN, O_DAYS, O_NODES, O_MANAGERS, O_FORMAT, O_AES };
    static const struct option lo[] = {
        {"help", no_argument, NULL, 'h'},          {"module", required_argument, NULL, O_MODULE},
        {"pin-file", required_argument, NULL, O_PIN_FILE}, {"pin-fd", required_argument, NULL, O_PIN_FD},
        {"pin-prompt", no_argument, NULL, O_PIN_PROMPT}, {"out", required_argument, NULL, O_OUT},
        {"in", required_argument, NULL, O_IN},      {"seed-file", required_argument, NULL, O_SEED_FILE},
        {"seed-fd", required_argument, NULL, O_SEED_FD}, {"time", required_argument, NULL, O_TIME},
        {"counter", required_argument, NULL, O_COUNTER}, {"digits", required_argument, NULL, O_DIGITS},
        {"period", required_argument, NULL, O_PERIOD}, {"sha256", no_argument, NULL, O_SHA256},
        {"der", no_argument, NULL, O_DER},          {"cn", required_argument, NULL, O_CN},
        {"org", required_argument, NULL, O_ORG},    {"ca", no_argument, NULL, O_CA},
        {"issuer", required_argument, NULL, O_ISSUER}, {"pubkey", required_argument, NULL, O_PUBKEY},
        {"path-len", required_argument, NULL, O_PATHLEN}, {"days", required_argument, NULL, O_DAYS},
        {"nodes", required_argument, NULL, O_NODES}, {"managers", required_argument, NULL, O_MANAGERS},
        {"format", required_argument, NULL, O_FORMAT}, {"aes", required_argument, NULL, O_AES},
        {NULL, 0, NULL, 0}};
    int c;
    long long num;
    argc -= consumed;
    argv += consumed;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'h': o.help = 1; break;
        case O_MODULE: o.module = optarg; break;
        case O_PIN_FILE: o.pin_file = optarg; break;
        case O_PIN_FD: bad = parse_num(optarg, 0, INT_MAX, &num); o.pin_fd = (int)num; break;
        case O_PIN_PROMPT: o.pin_prompt = 1; break;
        case O_OUT: o.out = optarg; break;
        case O_IN: o.in = optarg; break;
        case O_SEED_FILE: o.seed_file = optarg; break;
        case O_SEED_FD: bad = parse_num(optarg, 0, INT_MAX, &num); o.seed_fd = (int)num; break;
        case O_TIME: bad = parse_num(optarg, 0, LLONG_MAX, &o.time_at); break;
        case O_COUNTER: bad = parse_num(optarg, 0, LLONG_MAX, &o.counter); break;
        case O_DIGITS: bad = parse_num(optarg, 6, 8, &num); o.digits = (int)num; break;
        case O_PERIOD: bad = parse_num(optarg, 1, 86400, &num); o.period = (int)num; break;
        case O_SHA256: o.sha256 = 1; break;
        case O_DER: o.der = 1; break;
        case O_CN: o.cn = optarg; break;
        case O_ORG: o.org = optarg; break;
        case O_CA: o.is_ca = 1; break;
        case O_ISSUER: o.ca = optarg; break;
        case O_PUBKEY: o.pubkey = optarg; break;
        case O_PATHLEN: bad = parse_num(optarg, 0, 255, &num); o.path_len = (int)num; break;
        case O_DAYS: bad = parse_num(optarg, 1, 36500, &num); o.days = (int)num; break;
        case O_NODES: bad = parse_num(optarg, 0, OTPCA_RIG_MAX_NODES, &num); o.nodes = (unsigned)num; break;
        case O_MANAGERS: bad = parse_num(optarg, 0, OTPCA_RIG_MAX_MANAGERS, &num); o.managers = (unsigned)num; break;
        case O_FORMAT: o.format = optarg; break;
        case O_AES:
            bad = parse_num(optarg, 128, 256, &num) || (num != 128 && num != 256);
            o.aes = (int)num;
            break;
        default: return usage_error(v, "unknown option or missing value");
        }
        if (bad)
            return usage_error(v, "option value out of range");
    }
    if (o.help) {
        usage_verb(stdout, v);
        return EXIT_SUCCESS;
    }
    const char *arg = optind < argc ? argv[optind] : NULL;
    int needs_arg = strcmp(v->name, "list") != 0;
    if ((needs_arg && (!arg || optind + 1 != argc)) || (!needs_arg && arg))
        return usage_error(v, needs_arg ? "expected exactly one URI or directory" : "unexpected argument");

    if (strcmp(v->name, "list") == 0) return cmd_list(&o);
    if (strcmp(v->name, "keygen") == 0) return cmd_keygen(arg, &o);
    if (strcmp(v->name, "pubkey") == 0) return cmd_pubkey(arg, &o);
    if (strcmp(v->name, "seed import") == 0) return cmd_seed_import(arg, &o);
    if (strcmp(v->name, "otp") == 0) return cmd_otp(arg, &o);
    if (strcmp(v->name, "sign") == 0) return cmd_sign(arg, &o);
    if (strcmp(v->name, "cert selfsign") == 0) return cmd_cert(arg, &o, 1);
    if (strcmp(v->name, "cert issue") == 0) return cmd_cert(arg, &o, 0);
    return cmd_rig_create(arg, &o);
}
