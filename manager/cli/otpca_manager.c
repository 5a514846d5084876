/*
 * otpca-manager: the switchable manager's CLI (verb-noun).
 *
 * Built: the CA ceremony (`ca init-root`, `ca certify`, `ca revoke` and
 * `ca crl`: the root's CRL of revoked managers) and `cert issue`
 * (a node certificate of the manager's profile, for a key the operator
 * checked by hand). Keys stay in their tokens: every signature is made
 * inside one through the wolfCrypt bridge. PINs come from the URI's
 * pin-source or a prompt, never from the command line.
 *
 * Windows: `window open` opens one and serves it in the foreground until
 * it closes (window.h), with a pid file beside the journal so that
 * `window close` (SIGTERM) and `window status` find it.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "otpca/cloud/curvekey.h"
#include "otpca/common/config.h"
#include "otpca/common/hex.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"
#include "otpca/common/signals.h"
#include "otpca/manager/config.h"
#include "otpca/manager/enroll.h"
#include "otpca/manager/mstore.h"
#include "otpca/manager/profile.h"
#include "otpca/manager/window.h"
#include "otpca/proto/p256.h"
#include "otpca/token/crl.h"
#include "otpca/token/pin.h"
#include "otpca/token/token.h"
#include "otpca/token/uri.h"

#define EXIT_USAGE 2
#define PROG "otpca-manager"
#define ROOT_DAYS 3650
#define MANAGER_DAYS 730
#define ROOT_CRL_DAYS 180
#define CURVE_LABEL "curve-secret"

struct opts {
    const char *key, *root, *root_cert, *ca, *ca_cert, *cn, *id, *out, *serial, *mac, *pubkey, *curve_label;
    const char *config, *lease, *cert, *crl;
    long days, pen, pin_fd, reason;
    int totp_stdin;
};

static const struct verb {
    const char *name, *args, *help;
} verbs[] = {
    {"ca init-root", "--key URI --cn NAME --out BASE [--days N]",
     "Self-sign the offline root CA (P-256 key in the root token; CA:TRUE, pathLen 1; default 3650 days); "
     "writes BASE.pem and BASE.der."},
    {"ca certify", "--root URI --root-cert FILE --key URI --id ID --out BASE [--days N] [--curve-label L]",
     "The root certifies a manager's token key as an intermediate CA (CA:TRUE, pathLen 0, keyCertSign|cRLSign, "
     "CN = ID; default 730 days), makes the manager's CURVE key in its token if it has none, and prints the "
     "otpca-cloud line that registers the manager."},
    {"ca revoke", "--root URI --root-cert FILE --cert FILE --out BASE [--crl FILE] [--reason N] [--days N]",
     "Revoke a manager: the root signs a new CRL (RFC 5280 v2) with the entries of the previous one (--crl, "
     "checked against the root) plus the manager certificate --cert (reason: RFC 5280 CRLReason number or name, "
     "default 0; "
     "cRLNumber the previous one + 1; nextUpdate in N days, default 180); writes BASE.pem and BASE.der. "
     "Then `otpca-cloud manager revoke ID` stops the cloud from taking its key."},
    {"ca crl", "--root URI --root-cert FILE --out BASE [--crl FILE] [--days N]",
     "Re-sign the root's CRL with the entries of --crl (none without it) and fresh dates, before its "
     "nextUpdate passes."},
    {"cert issue", "--ca URI --ca-cert FILE --serial S --mac MAC --pubkey FILE --out BASE [--days N] [--pen N]",
     "Issue one node certificate of the manager's profile (CN = serial, RFC 9039 device URNs, clientAuth) for a "
     "P-256 public key (PEM/DER SubjectPublicKeyInfo or SEC1 hex)."},
    {"window open", "--config FILE [--lease FILE] [--totp-stdin] [--pin-fd N]",
     "Open an enrollment window (lease with the operator's TOTP from the operator token, or typed on stdin; "
     "trust-list sync) and serve nodes until it closes; then print the summary. --lease: an offline lease for "
     "when the cloud does not answer."},
    {"window close", "--config FILE", "Close the open window (as SIGTERM would)."},
    {"window status", "--config FILE", "Show whether a window is open, its lease, and the journal's counts."},
    {"records upload", "--config FILE [--pin-fd N]",
     "Send the cloud the journaled records it has not acknowledged, outside a window (after an offline one)."},
};

static void usage(FILE *f)
{
    fputs("usage: " PROG " VERB [ARGS] [--help]\n\nverbs:\n", f);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(f, "  %-14s %s%s%s\n", verbs[i].name, verbs[i].args, verbs[i].args[0] ? "\n                 " : "",
                verbs[i].help);
    fputs("\nTokens are named by PKCS#11 URIs (RFC 7512) with their PIN source, e.g.\n"
          "  'pkcs11:token=otpca-root;object=root-key?pin-source=file:/rig/pins/otpca-root.pin'\n"
          "Without a pin-source the PIN is asked for on the terminal.\n",
          f);
}

static int fail(otpca_err e, const char *what)
{
    fprintf(stderr, PROG ": %s: %s (%s)\n", what, otpca_strerror(e), otpca_errname(e));
    return EXIT_FAILURE;
}

static int usage_error(const struct verb *v, const char *msg)
{
    fprintf(stderr, PROG ": %s\nusage: " PROG " %s %s\n", msg, v->name, v->args);
    return EXIT_USAGE;
}

static otpca_err read_file(const char *path, unsigned char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return OTPCA_ERR_IO;
    }
    *len = fread(buf, 1, cap, f);
    int bad = ferror(f) || !feof(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, PROG ": %s: unreadable or larger than %zu bytes\n", path, cap);
        return OTPCA_ERR_IO;
    }
    return OTPCA_ERR_OK;
}

/* BASE.pem and BASE.der, never over existing files (ceremony output). */
static otpca_err write_pair(const char *base, const char *pem, size_t pem_len, const unsigned char *der,
                            size_t der_len)
{
    char path[4096];
    const struct {
        const char *ext;
        const void *data;
        size_t len;
    } files[] = {{".pem", pem, pem_len}, {".der", der, der_len}};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s%s", base, files[i].ext);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0) {
            fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
            return OTPCA_ERR_IO;
        }
        int ok = write(fd, files[i].data, files[i].len) == (ssize_t)files[i].len && fsync(fd) == 0;
        ok = close(fd) == 0 && ok;
        if (!ok) {
            fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
            unlink(path);
            return OTPCA_ERR_IO;
        }
    }
    return OTPCA_ERR_OK;
}

static otpca_err write_cert(const char *base, const unsigned char *der, size_t der_len)
{
    static char pem[OTPCA_CERT_PEM_MAX];
    size_t pem_len = sizeof pem;
    otpca_err ret = otpca_cert_der_to_pem(der, der_len, pem, &pem_len);
    return ret ? ret : write_pair(base, pem, pem_len, der, der_len);
}

/* A token key named by a URI, opened and bound to wolfCrypt. */
struct tkey {
    otpca_p11_uri uri;
    otpca_token_t *tok;
    otpca_obj_t key;
    otpca_wolf_signer signer;
    int have_signer;
};

static void tkey_close(struct tkey *k)
{
    if (k->have_signer)
        otpca_wolf_signer_free(&k->signer);
    otpca_token_destroy(&k->tok);
    otpca_p11_uri_clear(&k->uri);
}

static otpca_err tkey_open(otpca_p11_t *p11, const char *text, struct tkey *k)
{
    memset(k, 0, sizeof *k);
    otpca_err ret = otpca_p11_uri_parse(text, &k->uri);
    if (ret) {
        fprintf(stderr, PROG ": '%s' is not a valid PKCS#11 URI\n", text);
        return ret;
    }
    if (k->uri.has_pin_value) {
        fputs(PROG ": pin-value on the command line is visible to every user; use pin-source=file:...\n", stderr);
        return OTPCA_ERR_USAGE;
    }
    otpca_pin_src src = {.kind = OTPCA_PIN_PROMPT, .fd = -1, .prompt = "Token PIN: "};
    ret = otpca_token_open_uri(p11, &k->uri, k->uri.pin_source[0] ? NULL : &src, &k->tok);
    if (!ret)
        ret = otpca_token_find_uri(k->tok, &k->uri, OTPCA_OBJ_PRIVATE_KEY, &k->key);
    if (!ret)
        ret = otpca_wolf_signer_init(&k->signer, k->tok, k->key);
    k->have_signer = ret == OTPCA_ERR_OK;
    return ret;
}

static otpca_err load_cert(const char *path, unsigned char *der, size_t *der_len)
{
    static unsigned char file[8192];
    size_t n = 0;
    otpca_err ret = read_file(path, file, sizeof file, &n);
    if (!ret && (ret = otpca_cert_to_der(file, n, der, der_len)))
        fprintf(stderr, PROG ": %s is not a certificate (PEM or DER)\n", path);
    return ret;
}

static int valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._:-", *s))
            return 0;
    return 1;
}

/* ---- ca init-root / ca certify ------------------------------------------ */

static int cmd_init_root(otpca_p11_t *p11, const struct opts *o)
{
    static unsigned char der[OTPCA_CERT_DER_MAX];
    size_t der_len = sizeof der;
    struct tkey k;
    otpca_cert_req req = {.common_name = o->cn, .is_ca = 1, .path_len = 1,
                          .days = (unsigned)(o->days ? o->days : ROOT_DAYS)};
    otpca_err ret = tkey_open(p11, o->key, &k);
    if (!ret)
        ret = otpca_cert_issue(&k.signer, &req, der, &der_len);
    if (!ret)
        ret = write_cert(o->out, der, der_len);
    tkey_close(&k);
    if (ret)
        return fail(ret, "ca init-root");
    printf("root CA '%s' written to %s.pem and %s.der (%u days)\n", o->cn, o->out, o->out, req.days);
    return EXIT_SUCCESS;
}

static int cmd_certify(otpca_p11_t *p11, const struct opts *o)
{
    static unsigned char root_der[OTPCA_CERT_DER_MAX], der[OTPCA_CERT_DER_MAX];
    size_t root_len = sizeof root_der, der_len = sizeof der;
    unsigned char pub[65], curve_pub[32];
    char z85[41];
    struct tkey root, mgr;
    memset(&root, 0, sizeof root);
    memset(&mgr, 0, sizeof mgr);
    otpca_cert_req req = {.common_name = o->id, .is_ca = 1, .path_len = 0,
                          .days = (unsigned)(o->days ? o->days : MANAGER_DAYS)};
    unsigned char *curve_sec = otpca_secmem_alloc(32);
    otpca_err ret = curve_sec ? load_cert(o->root_cert, root_der, &root_len) : OTPCA_ERR_NOMEM;
    if (!ret)
        ret = tkey_open(p11, o->key, &mgr);
    if (!ret)
        ret = otpca_token_pubkey_sec1(mgr.tok, mgr.key, pub);
    if (!ret)
        ret = tkey_open(p11, o->root, &root);
    if (!ret) {
        req.subject_sec1 = pub;
        req.issuer_der = root_der;
        req.issuer_der_len = root_len;
        ret = otpca_cert_issue(&root.signer, &req, der, &der_len);
    }
    /* The manager's transport identity lives on its token too. */
    if (!ret)
        ret = otpca_curve_key(mgr.tok, o->curve_label ? o->curve_label : CURVE_LABEL, 1, curve_pub, curve_sec);
    if (!ret)
        ret = write_cert(o->out, der, der_len);
    if (curve_sec)
        otpca_secmem_free(curve_sec, 32);
    tkey_close(&root);
    tkey_close(&mgr);
    if (ret)
        return fail(ret, "ca certify");
    zmq_z85_encode(z85, curve_pub, sizeof curve_pub);
    printf("manager %s certified: %s.pem and %s.der (CA, pathLen 0, %u days)\n", o->id, o->out, o->out, req.days);
    printf("register it with the cloud:\n  otpca-cloud manager add %s --ca-cert %s.pem --curve-key '%s'\n", o->id,
           o->out, z85);
    return EXIT_SUCCESS;
}

/* ---- ca revoke / ca crl: the root's CRL ------------------------------------ */

static void print_serial(const otpca_crl_entry *e)
{
    for (size_t i = 0; i < e->serial_len; i++)
        printf("%02X", e->serial[i]);
}

/* A new root CRL: the previous one's entries (--crl, verified under the
 * root certificate), plus --cert for `ca revoke`. The ceremony keeps no
 * state of its own: the last CRL is its memory of what was revoked. */
static int cmd_root_crl(otpca_p11_t *p11, const struct opts *o, int revoke)
{
    static unsigned char root_der[OTPCA_CERT_DER_MAX], file[1 << 20];
    size_t root_len = sizeof root_der, n = 0, count = 0;
    otpca_crl_entry *entries = NULL, *grown;
    otpca_crl_info prev = {0};
    unsigned char *der = NULL;
    char *pem = NULL;
    size_t der_len = 0, pem_len = 0;
    struct tkey root;
    memset(&root, 0, sizeof root);
    otpca_err ret = load_cert(o->root_cert, root_der, &root_len);
    if (!ret && o->crl && !(ret = read_file(o->crl, file, sizeof file, &n)) &&
        (ret = otpca_crl_read(file, n, root_der, root_len, &prev, &entries)))
        fprintf(stderr, PROG ": %s is not a CRL of this root\n", o->crl);
    count = prev.entries;
    if (!ret && revoke) {
        otpca_crl_entry e = {.revoked_at = (int64_t)time(NULL), .reason = (int)o->reason};
        if (!(ret = read_file(o->cert, file, sizeof file, &n)) &&
            (ret = otpca_crl_cert_issued_by(file, n, root_der, root_len)))
            fprintf(stderr, PROG ": %s is not a certificate issued by this root\n", o->cert);
        if (!ret && (ret = otpca_crl_cert_serial(file, n, &e, NULL)))
            fprintf(stderr, PROG ": %s: no usable serial number\n", o->cert);
        for (size_t i = 0; !ret && i < count; i++)
            if (entries[i].serial_len == e.serial_len && !memcmp(entries[i].serial, e.serial, e.serial_len)) {
                fprintf(stderr, PROG ": %s is already revoked in %s\n", o->cert, o->crl);
                ret = OTPCA_ERR_EXISTS;
            }
        if (!ret && !(grown = realloc(entries, (count + 1) * sizeof *entries)))
            ret = OTPCA_ERR_NOMEM;
        if (!ret) {
            entries = grown;
            entries[count++] = e;
        }
    }
    if (!ret)
        ret = tkey_open(p11, o->root, &root);
    if (!ret) {
        int64_t now = (int64_t)time(NULL);
        ret = otpca_crl_sign(root.tok, root.key, root_der, root_len, prev.number + 1, now,
                             now + 86400 * (int64_t)(o->days ? o->days : ROOT_CRL_DAYS), entries, count, &der,
                             &der_len);
    }
    if (!ret)
        ret = otpca_crl_to_pem(der, der_len, &pem, &pem_len);
    if (!ret)
        ret = write_pair(o->out, pem, pem_len, der, der_len);
    tkey_close(&root);
    free(der);
    free(pem);
    if (ret) {
        free(entries);
        return fail(ret, revoke ? "ca revoke" : "ca crl");
    }
    printf("root CRL number %llu, %zu entr%s, next update in %ld days: %s.pem and %s.der\n",
           (unsigned long long)(prev.number + 1), count, count == 1 ? "y" : "ies", o->days ? o->days : ROOT_CRL_DAYS,
           o->out, o->out);
    if (revoke) {
        printf("revoked serial ");
        print_serial(&entries[count - 1]);
        printf(" (reason %ld)\n", o->reason);
    }
    free(entries);
    return EXIT_SUCCESS;
}

/* ---- cert issue ----------------------------------------------------------- */

static otpca_err parse_mac(const char *s, uint8_t *mac, size_t *len)
{
    char hex[17];
    size_t n = 0;
    for (; *s && n < sizeof hex - 1; s++)
        if (*s != ':' && *s != '-')
            hex[n++] = *s;
    hex[n] = '\0';
    if (*s || (n != 12 && n != 16) || otpca_hex_decode(hex, n, mac, 8, len))
        return OTPCA_ERR_INVALID_ARG;
    return OTPCA_ERR_OK;
}

static int cmd_cert_issue(otpca_p11_t *p11, const struct opts *o)
{
    static unsigned char ca_der[OTPCA_CERT_DER_MAX], der[OTPCA_CERT_DER_MAX], file[4096];
    size_t ca_len = sizeof ca_der, der_len = sizeof der, n = 0, mac_len = 0;
    uint8_t mac[8], pub[65];
    struct tkey ca;
    memset(&ca, 0, sizeof ca);
    otpca_mgr_profile p;
    otpca_mgr_profile_default(&p);
    if (o->days)
        p.days = (unsigned)o->days;
    if (o->pen)
        p.pen = (unsigned)o->pen;
    if (parse_mac(o->mac, mac, &mac_len)) {
        fprintf(stderr, PROG ": --mac must be 6 or 8 hex bytes (e.g. 02:00:00:00:00:01)\n");
        return EXIT_USAGE;
    }
    otpca_err ret = load_cert(o->ca_cert, ca_der, &ca_len);
    if (!ret)
        ret = read_file(o->pubkey, file, sizeof file - 1, &n);
    if (!ret) {
        /* SEC1 hex, or PEM/DER SubjectPublicKeyInfo. */
        size_t len = 0;
        while (n && isspace(file[n - 1]))
            n--;
        file[n] = '\0';
        uint8_t raw[65];
        if (otpca_hex_decode((const char *)file, n, raw, sizeof raw, &len) == OTPCA_ERR_OK)
            ret = otpca_p256_pub_normalize(raw, len, pub);
        else
            ret = otpca_pubkey_parse(file, n, pub);
        if (ret)
            fprintf(stderr, PROG ": %s is not a P-256 public key\n", o->pubkey);
    }
    if (!ret)
        ret = tkey_open(p11, o->ca, &ca);
    if (!ret)
        ret = otpca_mgr_node_cert(&ca.signer, NULL, ca_der, ca_len, &p, o->serial, mac, mac_len, pub, der, &der_len);
    if (!ret)
        ret = write_cert(o->out, der, der_len);
    tkey_close(&ca);
    if (ret)
        return fail(ret, "cert issue");
    printf("node certificate for %s written to %s.pem and %s.der (%u days)\n", o->serial, o->out, o->out, p.days);
    return EXIT_SUCCESS;
}

/* ---- windows -------------------------------------------------------------- */

/* The pid file of the window on this journal: STORE.window. */
static void pid_path(const otpca_mgr_config *cfg, char *out, size_t cap)
{
    snprintf(out, cap, "%s.window", cfg->store);
}

/* The pid of the window open on this journal, or 0. The open window holds
 * an flock on the pid file for as long as it runs (the kernel drops it
 * when the process dies, even by SIGKILL), so a stale file whose pid the
 * system has given to another process since never reads as open. */
static long window_pid(const otpca_mgr_config *cfg)
{
    char path[OTPCA_MGR_CONFIG_VALUE_MAX + 16], text[32];
    long pid = 0;
    pid_path(cfg, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        ssize_t n = read(fd, text, sizeof text - 1);
        text[n > 0 ? n : 0] = '\0';
        char *end;
        pid = strtol(text, &end, 10);
        if (end == text || pid <= 0)
            pid = 0; /* held, but the pid not written yet (an instant): nothing to signal */
    }
    close(fd);
    return pid;
}

static int cmd_window_open(const otpca_mgr_config *cfg, const struct opts *o)
{
    char path[OTPCA_MGR_CONFIG_VALUE_MAX + 16];
    otpca_mgr_open_opts oo;
    otpca_mgr_summary sum;
    otpca_pin_src pin = {.kind = OTPCA_PIN_PROMPT, .fd = -1, .prompt = "Manager token PIN: "};
    memset(&oo, 0, sizeof oo);
    if (o->pin_fd >= 0) {
        pin.kind = OTPCA_PIN_FD;
        pin.fd = (int)o->pin_fd;
    }
    oo.pin = &pin;
    oo.lease_file = o->lease;
    if (o->totp_stdin) {
        char line[32];
        if (!fgets(line, sizeof line, stdin)) {
            fputs(PROG ": --totp-stdin: no code on stdin\n", stderr);
            return EXIT_USAGE;
        }
        char *end;
        unsigned long code = strtoul(line, &end, 10);
        if (end == line || (*end && *end != '\n') || code > 99999999ul) {
            fputs(PROG ": --totp-stdin: the operator's code is 6 to 8 digits\n", stderr);
            return EXIT_USAGE;
        }
        oo.have_totp = 1;
        oo.totp = (uint32_t)code;
        otpca_memzero(line, sizeof line);
    }
    /* The pid file, locked while the window runs (window_pid). */
    pid_path(cfg, path, sizeof path);
    int pfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (pfd < 0) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return EXIT_FAILURE;
    }
    if (flock(pfd, LOCK_EX | LOCK_NB) != 0) {
        close(pfd);
        fprintf(stderr, PROG ": a window is already open on %s (pid %ld)\n", cfg->store, window_pid(cfg));
        return EXIT_FAILURE;
    }
    char pidtext[32];
    int pn = snprintf(pidtext, sizeof pidtext, "%ld\n", (long)getpid());
    if (ftruncate(pfd, 0) != 0 || write(pfd, pidtext, (size_t)pn) != pn) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        close(pfd);
        return EXIT_FAILURE;
    }
    if (otpca_stop_on_signals() != 0) {
        perror("sigaction");
        unlink(path);
        close(pfd);
        return EXIT_FAILURE;
    }
    otpca_err ret = otpca_mgr_window_run(cfg, &oo, &otpca_stop_requested, stdout, &sum);
    unlink(path);
    close(pfd);
    if (ret)
        return fail(ret, "window open");
    printf("window closed (%s%s): %llu issued, %llu confirmed, %llu rejected", sum.closed_by,
           sum.offline ? ", offline" : "", (unsigned long long)sum.issued, (unsigned long long)sum.confirmed,
           (unsigned long long)sum.rejected);
    int shown = 0;
    for (int r = 1; r < 13; r++)
        if (sum.rejected_by[r])
            printf("%s%s: %llu", shown++ ? ", " : " (", otpca_mgr_reason_name(r), (unsigned long long)sum.rejected_by[r]);
    if (shown)
        printf(")");
    printf("; %llu records uploaded, %llu pending\n", (unsigned long long)sum.uploaded,
           (unsigned long long)sum.pending);
    if (sum.crl_number)
        printf("CRL %llu signed: %llu entries, %s\n", (unsigned long long)sum.crl_number,
               (unsigned long long)sum.crl_entries, sum.crl_published ? "published to the cloud" : "not published");
    return EXIT_SUCCESS;
}

static int cmd_window(const struct verb *v, const struct opts *o)
{
    otpca_mgr_config cfg;
    char err[512] = "";
    if (!o->config)
        return usage_error(v, "--config is required");
    if (otpca_mgr_config_load(o->config, &cfg, err, sizeof err)) {
        fprintf(stderr, PROG ": %s\n", err);
        return EXIT_FAILURE;
    }
    otpca_log_configure(cfg.log_level, cfg.log_format);
    if (!strcmp(v->name, "window open"))
        return cmd_window_open(&cfg, o);
    if (!strcmp(v->name, "records upload")) {
        otpca_pin_src pin = {.kind = o->pin_fd >= 0 ? OTPCA_PIN_FD : OTPCA_PIN_PROMPT, .fd = (int)o->pin_fd,
                             .prompt = "Manager token PIN: "};
        uint64_t up = 0, pending = 0;
        otpca_err ret = otpca_mgr_upload(&cfg, &pin, &up, &pending);
        printf("%llu records uploaded, %llu pending\n", (unsigned long long)up, (unsigned long long)pending);
        return ret ? fail(ret, "records upload") : EXIT_SUCCESS;
    }
    long pid = window_pid(&cfg);
    if (!strcmp(v->name, "window close")) {
        if (!pid) {
            fprintf(stderr, PROG ": no window is open on %s\n", cfg.store);
            return EXIT_FAILURE;
        }
        if (kill((pid_t)pid, SIGTERM) != 0) {
            fprintf(stderr, PROG ": pid %ld: %s\n", pid, strerror(errno));
            return EXIT_FAILURE;
        }
        printf("asked the window (pid %ld) to close\n", pid);
        return EXIT_SUCCESS;
    }
    otpca_mstore *st = NULL;
    uint64_t counts[5] = {0}, seq = 0;
    otpca_err ret = otpca_mstore_open(cfg.store, &st);
    if (!ret)
        ret = otpca_mstore_device_count(st, counts);
    if (!ret)
        ret = otpca_mstore_sync_seq(st, &seq);
    otpca_mstore_destroy(&st);
    if (ret)
        return fail(ret, cfg.store);
    printf("window      %s\n", pid ? "open" : "closed");
    if (pid)
        printf("pid         %ld\n", pid);
    printf("trust list  %llu devices (%llu approved, %llu enrolled, %llu revoked, %llu locked), sequence %llu\n",
           (unsigned long long)counts[0], (unsigned long long)counts[1], (unsigned long long)counts[2],
           (unsigned long long)counts[3], (unsigned long long)counts[4], (unsigned long long)seq);
    return EXIT_SUCCESS;
}

/* ---- main ----------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"key", required_argument, NULL, 'k'},       {"root", required_argument, NULL, 'r'},
        {"root-cert", required_argument, NULL, 'R'}, {"ca", required_argument, NULL, 'a'},
        {"ca-cert", required_argument, NULL, 'A'},   {"cn", required_argument, NULL, 'n'},
        {"id", required_argument, NULL, 'i'},        {"out", required_argument, NULL, 'o'},
        {"serial", required_argument, NULL, 's'},    {"mac", required_argument, NULL, 'm'},
        {"pubkey", required_argument, NULL, 'p'},    {"days", required_argument, NULL, 'd'},
        {"pen", required_argument, NULL, 'P'},       {"curve-label", required_argument, NULL, 'c'},
        {"config", required_argument, NULL, 'C'},    {"lease", required_argument, NULL, 'L'},
        {"totp-stdin", no_argument, NULL, 'T'},      {"pin-fd", required_argument, NULL, 'F'},
        {"cert", required_argument, NULL, 'e'},      {"crl", required_argument, NULL, 'l'},
        {"reason", required_argument, NULL, 'x'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct opts o;
    memset(&o, 0, sizeof o);
    o.pin_fd = -1;
    otpca_process_harden();
    otpca_log_configure(getenv("OTPCA_LOG_LEVEL"), getenv("OTPCA_LOG_FORMAT"));
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_SUCCESS;
    }
    const struct verb *v = NULL;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0] && !v && argc >= 3; i++) {
        const char *sp = strchr(verbs[i].name, ' ');
        if (strlen(argv[1]) == (size_t)(sp - verbs[i].name) && !strncmp(argv[1], verbs[i].name, (size_t)(sp - verbs[i].name)) &&
            !strcmp(argv[2], sp + 1))
            v = &verbs[i];
    }
    if (!v) {
        fprintf(stderr, PROG ": unknown verb '%s%s%s'\n", argv[1], argc >= 3 ? " " : "", argc >= 3 ? argv[2] : "");
        usage(stderr);
        return EXIT_USAGE;
    }
    int c;
    optind = 3;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'k': o.key = optarg; break;
        case 'r': o.root = optarg; break;
        case 'R': o.root_cert = optarg; break;
        case 'a': o.ca = optarg; break;
        case 'A': o.ca_cert = optarg; break;
        case 'n': o.cn = optarg; break;
        case 'i': o.id = optarg; break;
        case 'o': o.out = optarg; break;
        case 's': o.serial = optarg; break;
        case 'm': o.mac = optarg; break;
        case 'p': o.pubkey = optarg; break;
        case 'c': o.curve_label = optarg; break;
        case 'C': o.config = optarg; break;
        case 'L': o.lease = optarg; break;
        case 'T': o.totp_stdin = 1; break;
        case 'e': o.cert = optarg; break;
        case 'l': o.crl = optarg; break;
        case 'x':
            if ((o.reason = otpca_crl_reason_parse(optarg)) < 0)
                return usage_error(v, "--reason is an RFC 5280 CRLReason: 0-6, 9, 10 or its name (keyCompromise, ...)");
            break;
        case 'F':
            if (otpca_option_long(optarg, 0, 65535, &o.pin_fd))
                return usage_error(v, "--pin-fd wants a file descriptor number");
            break;
        case 'd':
            if (otpca_option_long(optarg, 1, 36500, &o.days))
                return usage_error(v, "--days must be 1 to 36500");
            break;
        case 'P':
            if (otpca_option_long(optarg, 1, 4294967295UL, &o.pen))
                return usage_error(v, "--pen must be a Private Enterprise Number (1 to 4294967295)");
            break;
        case 'h':
            printf("usage: " PROG " %s %s\n  %s\n", v->name, v->args, v->help);
            return EXIT_SUCCESS;
        default:
            return usage_error(v, "unknown option");
        }
    }
    if (optind < argc)
        return usage_error(v, "unexpected argument");
    if (!strncmp(v->name, "window ", 7) || !strcmp(v->name, "records upload"))
        return cmd_window(v, &o);
    if (!strcmp(v->name, "ca init-root") && (!o.key || !o.cn || !o.out))
        return usage_error(v, "--key, --cn and --out are required");
    if (!strcmp(v->name, "ca certify") && (!o.root || !o.root_cert || !o.key || !o.id || !o.out))
        return usage_error(v, "--root, --root-cert, --key, --id and --out are required");
    if (!strcmp(v->name, "ca revoke") && (!o.root || !o.root_cert || !o.cert || !o.out))
        return usage_error(v, "--root, --root-cert, --cert and --out are required");
    if (!strcmp(v->name, "ca crl") && (!o.root || !o.root_cert || !o.out))
        return usage_error(v, "--root, --root-cert and --out are required");
    if (!strcmp(v->name, "cert issue") && (!o.ca || !o.ca_cert || !o.serial || !o.mac || !o.pubkey || !o.out))
        return usage_error(v, "--ca, --ca-cert, --serial, --mac, --pubkey and --out are required");
    if ((o.id && !valid_id(o.id)) || (o.serial && !valid_id(o.serial)))
        return usage_error(v, "an id or serial is 1-64 characters [A-Za-z0-9._:-]");

    otpca_p11_t *p11 = NULL;
    otpca_err ret = otpca_p11_new(NULL, &p11);
    if (ret)
        return fail(ret, "PKCS#11 module");
    int rc;
    if (!strcmp(v->name, "ca init-root"))
        rc = cmd_init_root(p11, &o);
    else if (!strcmp(v->name, "ca certify"))
        rc = cmd_certify(p11, &o);
    else if (!strcmp(v->name, "ca revoke") || !strcmp(v->name, "ca crl"))
        rc = cmd_root_crl(p11, &o, !strcmp(v->name, "ca revoke"));
    else
        rc = cmd_cert_issue(p11, &o);
    otpca_p11_destroy(&p11);
    return rc;
}
