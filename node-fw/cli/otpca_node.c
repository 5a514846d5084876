/*
 * otpca-node: the node firmware core on a host. `enroll`, `rejoin`,
 * `rotate` (KeyUpdate), `claim` and `show` act for one node whose key and
 * TOTP seed are in its PKCS#11 token (a rig node, or any URI) or in a
 * software key file, with its flash as a file image; `sim` runs many rig
 * nodes in one process, concurrently, and summarises enrollments (by
 * result, latency percentiles, bytes on the wire). Exit status: 0 success,
 * 1 failure, 2 usage. PINs come from the URI's pin-source (the rig's pin
 * files), never from the command line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "otpca/common/config.h"
#include "otpca/common/hex.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"
#include "otpca/node/node.h"
#include "otpca/node/posix.h"
#include "otpca/proto/p256.h"
#include "otpca/token/crl.h"
#include "otpca/token/wolf.h"

#define EXIT_USAGE 2
#define FLASH_SIZE (2 * OTPCA_NODE_SLOT_SIZE)
#define ROOT_MAX 4096

static const char usage_text[] =
    "usage: otpca-node COMMAND [options]\n"
    "\n"
    "commands (one node):\n"
    "  enroll   signed time, then EnrollRequest -> commit -> EnrollConfirm\n"
    "  rejoin   a fresh network key for the current certificate\n"
    "  rotate   KeyUpdate: a new key in the token, a certificate for it\n"
    "  claim    batch claim: the product key proves, a new unique key is certified\n"
    "  confirm  send the EnrollConfirm a reboot left pending\n"
    "  show     the credentials in the node's flash image\n"
    "  sim      enroll N rig nodes in one process, C at a time, and summarise\n"
    "\n"
    "options:\n"
    "  --manager ENDPOINT  the manager's node endpoint (tcp://HOST:PORT)\n"
    "  --root FILE         the root certificate to pin (PEM or DER)\n"
    "  --root-crl FILE     the root's CRL (PEM or DER, checked against --root): managers it revoked are refused\n"
    "  --rig DIR           a SoftHSM rig (otpca-token rig create): tokens, pins/, manifest.csv\n"
    "  --serial S          the node (rig: its token label, e.g. node-000001)\n"
    "  --token URI         the node's token instead of the rig's (pin-source=... in the URI)\n"
    "  --soft-key FILE     a software key file instead of a token (created if missing)\n"
    "  --mac MAC           the node's MAC (default: from the rig's manifest)\n"
    "  --sha256            TOTP with HMAC-SHA-256 (default SHA-1, or the manifest's)\n"
    "  --digits N --period S   TOTP digits (6..8) and period (default: the manifest's, or 6 and 30)\n"
    "  --state DIR         where flash images (SERIAL.flash) live (default .)\n"
    "  --no-time           skip the signed-time exchange (trust the host clock)\n"
    "  --timeout MS        first wait for an answer (default 3000; doubles per resend, 4 sends)\n"
    "  --cert-out FILE     write the current certificate (PEM)\n"
    "  --keep-old-key      rotate: keep the replaced key in the token (tests; default: destroyed after the confirm)\n"
    "  --count N --concurrency C   sim: nodes node-000001..N, C at a time (default 8, 4)\n"
    "  --json              sim: the summary as JSON\n"
    "  --log-level L       debug|info|warn|error (default warn)\n"
    "  -h, --help\n";

typedef struct opts {
    const char *cmd, *manager, *root, *rig, *serial, *token, *soft, *mac, *state, *cert_out, *root_crl;
    bool sha256, no_time, json, sha256_set, keep_old_key;
    long digits, period, timeout, count, conc;
} opts;

typedef struct nodeinfo {
    char serial[65];
    uint8_t mac[8];
    size_t mac_len;
    bool sha256;
    unsigned digits, period;
} nodeinfo;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "otpca-node: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'otpca-node --help'.\n");
    return EXIT_USAGE;
}

static int parse_mac(const char *s, uint8_t *mac, size_t *len)
{
    size_t n = 0;
    while (*s && n < 8) {
        int hi = otpca_hex_digit(s[0]), lo = s[1] ? otpca_hex_digit(s[1]) : -1;
        if (hi < 0 || lo < 0)
            return -1;
        mac[n++] = (uint8_t)(hi << 4 | lo);
        s += 2;
        if (*s == ':' || *s == '-')
            s++;
    }
    *len = n;
    return *s == '\0' && (n == 6 || n == 8) ? 0 : -1;
}

/* The manifest's line for serial: MAC and TOTP parameters (the seed column
 * is read past and wiped, never kept). Returns 0, or -1 if not found. */
static int manifest_lookup(const char *rig, nodeinfo *ni)
{
    char path[4096], line[1024];
    int found = -1;
    snprintf(path, sizeof path, "%s/manifest.csv", rig);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t sl = strlen(ni->serial);
    while (found < 0 && fgets(line, sizeof line, f)) {
        if (strncmp(line, ni->serial, sl) != 0 || line[sl] != ',')
            continue;
        char *fields[7], *save = NULL, *t = strtok_r(line, ",\r\n", &save);
        int nf = 0;
        while (t && nf < 7) {
            fields[nf++] = t;
            t = strtok_r(NULL, ",\r\n", &save);
        }
        if (nf == 7 && parse_mac(fields[1], ni->mac, &ni->mac_len) == 0) {
            ni->sha256 = strcmp(fields[4], "SHA256") == 0;
            ni->digits = (unsigned)atoi(fields[5]);
            ni->period = (unsigned)atoi(fields[6]);
            found = 0;
        }
    }
    otpca_memzero(line, sizeof line);
    fclose(f);
    return found;
}

static int read_root(const char *path, uint8_t *der, size_t *der_len)
{
    uint8_t buf[8192];
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "otpca-node: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    *der_len = ROOT_MAX;
    if (n == 0 || otpca_cert_to_der(buf, n, der, der_len) != OTPCA_ERR_OK) {
        fprintf(stderr, "otpca-node: %s: not a certificate (PEM or DER)\n", path);
        return -1;
    }
    return 0;
}

/* The manager certificates the root revoked, from --root-crl (checked
 * against the root); every node opened here is given them. */
static otpca_node_serial *g_revoked;
static size_t g_n_revoked;

static int read_root_crl(const char *path, const uint8_t *root, size_t root_len)
{
    static uint8_t buf[1 << 20];
    otpca_crl_info info;
    otpca_crl_entry *e = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "otpca-node: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n == 0 || n == sizeof buf || otpca_crl_read(buf, n, root, root_len, &info, &e) != OTPCA_ERR_OK) {
        fprintf(stderr, "otpca-node: %s: not a CRL signed by the pinned root\n", path);
        return -1;
    }
    if (info.next_update < (int64_t)time(NULL))
        fprintf(stderr, "otpca-node: warning: %s is past its nextUpdate; ask the root's ceremony for a fresh one\n",
                path);
    if (info.entries && !(g_revoked = calloc(info.entries, sizeof *g_revoked))) {
        free(e);
        return -1;
    }
    for (size_t i = 0; i < info.entries; i++) {
        const uint8_t *p = e[i].serial;
        size_t k = e[i].serial_len;
        while (k > 1 && p[0] == 0)
            p++, k--;
        g_revoked[i].len = (uint8_t)k;
        memcpy(g_revoked[i].v, p, k);
    }
    g_n_revoked = info.entries;
    free(e);
    return 0;
}

static const char *flow_name(otpca_node_flow f)
{
    static const char *const names[] = {"none", "time", "enroll", "confirm", "rejoin", "rotate", "claim"};
    return names[f];
}

/* One node, opened: its port, store, core. */
typedef struct node {
    otpca_node_posix *port;
    otpca_node_slots slots;
    otpca_node_ctx core;
    otpca_node_hal hal; /* the port's, possibly with key_destroy off */
    uint8_t scratch[OTPCA_NODE_SLOT_SIZE];
    uint8_t out[OTPCA_NODE_OUT_SIZE], work[OTPCA_NODE_WORK_SIZE];
} node;

static otpca_err node_open(node *nd, const opts *o, const nodeinfo *ni, otpca_p11_t *p11, void *zctx,
                           const uint8_t *root, size_t root_len)
{
    char uri[4200], flash[4200], soft[4200];
    otpca_node_posix_config pc;
    otpca_node_config cfg;
    otpca_err ret;
    memset(&pc, 0, sizeof pc);
    memset(&cfg, 0, sizeof cfg);
    pc.serial = ni->serial;
    if (o->soft) {
        snprintf(soft, sizeof soft, "%s", o->soft);
        pc.soft_key_file = soft;
    } else {
        if (o->token)
            snprintf(uri, sizeof uri, "%s", o->token);
        else
            snprintf(uri, sizeof uri, "pkcs11:token=%s?pin-source=file:%s/pins/%s.pin", ni->serial, o->rig,
                     ni->serial);
        pc.token_uri = uri;
        pc.p11 = p11;
    }
    pc.hmac_sha256 = ni->sha256;
    snprintf(flash, sizeof flash, "%s/%s.flash", o->state, ni->serial);
    pc.flash_path = flash;
    pc.flash_size = FLASH_SIZE;
    pc.endpoint = o->manager ? o->manager : "tcp://127.0.0.1:1";
    pc.zmq_ctx = zctx;
    if ((ret = otpca_node_posix_new(&pc, &nd->port)) != OTPCA_ERR_OK)
        return ret;
    nd->hal = *otpca_node_posix_hal(nd->port);
    if (o->keep_old_key)
        nd->hal.key_destroy = NULL;
    const otpca_node_hal *hal = &nd->hal;
    if ((ret = otpca_node_slots_init(&nd->slots, hal, 0, OTPCA_NODE_SLOT_SIZE, nd->scratch)) != OTPCA_ERR_OK)
        return ret;
    if (!root)
        return OTPCA_ERR_OK;
    cfg.hal = hal;
    cfg.store = &nd->slots;
    cfg.serial = ni->serial;
    cfg.mac = ni->mac;
    cfg.mac_len = ni->mac_len;
    cfg.fw = "otpca-node-" OTPCA_NODE_FW_VERSION;
    cfg.root_der = root;
    cfg.root_len = root_len;
    cfg.revoked = g_revoked;
    cfg.n_revoked = g_n_revoked;
    cfg.totp_digits = ni->digits;
    cfg.totp_period = ni->period;
    cfg.has_clock = o->no_time;
    cfg.timeout_ms = (uint32_t)o->timeout;
    if ((ret = otpca_node_posix_factory_pub(nd->port, cfg.factory_pub)) != OTPCA_ERR_OK)
        return ret;
    return otpca_node_init(&nd->core, &cfg, nd->out, sizeof nd->out, nd->work, sizeof nd->work);
}

static void node_close(node *nd)
{
    otpca_node_free(&nd->core);
    otpca_node_posix_destroy(&nd->port);
    otpca_memzero(nd, sizeof *nd);
}

/* Time (unless --no-time), then the flow. */
static otpca_err node_run(node *nd, const opts *o, otpca_node_flow flow)
{
    otpca_err ret = OTPCA_ERR_OK;
    bool need_time = !o->no_time || flow == OTPCA_NODE_FLOW_CONFIRM;
    if (need_time && (ret = otpca_node_posix_run(nd->port, &nd->core, OTPCA_NODE_FLOW_TIME)) != OTPCA_ERR_OK)
        return ret;
    return otpca_node_posix_run(nd->port, &nd->core, flow);
}

static void print_error(const char *serial, const char *what, const node *nd, otpca_err e)
{
    unsigned wire = 0;
    if (nd && nd->core.cfg.hal)
        otpca_node_last_error(&nd->core, &wire);
    if (e == OTPCA_ERR_REFUSED && wire)
        fprintf(stderr, "otpca-node: %s: %s: the manager refused (wire error %u%s)\n", serial, what, wire,
                wire == 2 ? ", AUTH_FAILED" : wire == 3 ? ", WINDOW_CLOSED" : wire == 5 ? ", UNSUPPORTED" : "");
    else
        fprintf(stderr, "otpca-node: %s: %s: %s\n", serial, what, otpca_strerror(e));
}

static void print_cred(const char *label, const otpca_node_cred *c)
{
    uint8_t kid[8], h[32];
    otpca_p256_kid(c->pub, kid);
    otpca_sha256(c->cert, c->cert_len, h);
    printf("%s\n  generation   %u\n  confirmed    %s\n  key id       ", label, c->generation,
           (c->flags & OTPCA_NODE_CRED_CONFIRMED) ? "yes" : "no");
    for (int i = 0; i < 8; i++)
        printf("%02x", kid[i]);
    printf("\n  cert sha256  ");
    for (int i = 0; i < 32; i++)
        printf("%02x", h[i]);
    printf("\n  cert bytes   %u\n  manager kid  ", c->cert_len);
    for (int i = 0; i < 8; i++)
        printf("%02x", c->mgr_kid[i]);
    printf("\n  netkey epoch %u\n", c->netkey_epoch);
}

static int write_pem(const char *path, const otpca_node_cred *c)
{
    char pem[OTPCA_CERT_PEM_MAX];
    size_t len = sizeof pem;
    if (otpca_cert_der_to_pem(c->cert, c->cert_len, pem, &len) != OTPCA_ERR_OK)
        return -1;
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int bad = fwrite(pem, 1, len, f) != len;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

static int cmd_single(const opts *o)
{
    static node nd;
    static uint8_t root[ROOT_MAX];
    size_t root_len = 0;
    nodeinfo ni;
    otpca_p11_t *p11 = NULL;
    int rc = EXIT_FAILURE;
    otpca_err ret;
    bool show = !strcmp(o->cmd, "show");
    memset(&ni, 0, sizeof ni);
    snprintf(ni.serial, sizeof ni.serial, "%s", o->serial);
    if (o->rig && manifest_lookup(o->rig, &ni) != 0 && !o->mac) {
        fprintf(stderr, "otpca-node: %s: not in %s/manifest.csv (give --mac)\n", o->serial, o->rig);
        return EXIT_FAILURE;
    }
    if (o->mac && parse_mac(o->mac, ni.mac, &ni.mac_len) != 0)
        return usage_error("--mac: '%s' is not an EUI-48 or EUI-64", o->mac);
    if (o->sha256_set)
        ni.sha256 = o->sha256;
    if (o->digits)
        ni.digits = (unsigned)o->digits;
    if (o->period)
        ni.period = (unsigned)o->period;
    if (!show && read_root(o->root, root, &root_len) != 0)
        return EXIT_FAILURE;
    if (!show && o->root_crl && read_root_crl(o->root_crl, root, root_len) != 0)
        return EXIT_FAILURE;
    if (!o->soft && (ret = otpca_p11_new(NULL, &p11)) != OTPCA_ERR_OK) {
        fprintf(stderr, "otpca-node: PKCS#11 module: %s\n", otpca_strerror(ret));
        return EXIT_FAILURE;
    }
    if ((ret = node_open(&nd, o, &ni, p11, NULL, show ? NULL : root, root_len)) != OTPCA_ERR_OK) {
        print_error(ni.serial, "open", NULL, ret);
        goto out;
    }
    if (show) {
        otpca_node_cred *c = calloc(1, sizeof *c);
        uint8_t pub[65], kid[8];
        if (!c)
            goto out;
        if (otpca_node_posix_factory_pub(nd.port, pub) == OTPCA_ERR_OK) {
            otpca_p256_kid(pub, kid);
            printf("serial         %s\nfactory key id ", ni.serial);
            for (int i = 0; i < 8; i++)
                printf("%02x", kid[i]);
            printf("\n");
        }
        ret = otpca_node_slots_load(&nd.slots, c);
        if (ret == OTPCA_ERR_NOT_FOUND) {
            printf("current        none (not enrolled)\n");
            rc = EXIT_SUCCESS;
        } else if (ret == OTPCA_ERR_OK) {
            print_cred("current", c);
            rc = EXIT_SUCCESS;
            if (o->cert_out && write_pem(o->cert_out, c) != 0) {
                fprintf(stderr, "otpca-node: %s: cannot write the certificate\n", o->cert_out);
                rc = EXIT_FAILURE;
            }
            if (otpca_node_slots_load_previous(&nd.slots, c) == OTPCA_ERR_OK)
                print_cred("previous", c);
        } else {
            print_error(ni.serial, "flash", NULL, ret);
        }
        otpca_memzero(c, sizeof *c);
        free(c);
        goto out;
    }
    otpca_node_flow flow = !strcmp(o->cmd, "enroll")    ? OTPCA_NODE_FLOW_ENROLL
                           : !strcmp(o->cmd, "rejoin")  ? OTPCA_NODE_FLOW_REJOIN
                           : !strcmp(o->cmd, "rotate")  ? OTPCA_NODE_FLOW_KEYUPDATE
                           : !strcmp(o->cmd, "confirm") ? OTPCA_NODE_FLOW_CONFIRM
                                                        : OTPCA_NODE_FLOW_CLAIM;
    if ((ret = node_run(&nd, o, flow)) != OTPCA_ERR_OK) {
        print_error(ni.serial, flow_name(flow), &nd, ret);
        goto out;
    }
    const otpca_node_cred *c = otpca_node_credential(&nd.core);
    printf("%s %s: generation %u, %s, netkey epoch %u, %llu bytes sent, %llu received\n", ni.serial,
           flow_name(flow), c ? c->generation : 0, c && (c->flags & OTPCA_NODE_CRED_CONFIRMED) ? "confirmed" : "pending",
           c ? c->netkey_epoch : 0, (unsigned long long)nd.core.bytes_out, (unsigned long long)nd.core.bytes_in);
    if (o->cert_out && c && write_pem(o->cert_out, c) != 0) {
        fprintf(stderr, "otpca-node: %s: cannot write the certificate\n", o->cert_out);
        goto out;
    }
    rc = EXIT_SUCCESS;
out:
    node_close(&nd);
    otpca_p11_destroy(&p11);
    return rc;
}

/* ---- sim ---- */

typedef struct sim_result {
    otpca_err err;
    unsigned wire;
    double ms;
    uint64_t bytes;
} sim_result;

typedef struct sim {
    const opts *o;
    otpca_p11_t *p11;
    void *zctx;
    const uint8_t *root;
    size_t root_len;
    nodeinfo *nodes;
    sim_result *res;
    long count;
    long next, done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} sim;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *sim_worker(void *arg)
{
    sim *s = arg;
    node *nd = calloc(1, sizeof *nd);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        long i = s->next < s->count ? s->next++ : -1;
        pthread_mutex_unlock(&s->mu);
        if (i < 0)
            break;
        sim_result *r = &s->res[i];
        double t0 = mono_ms();
        if (!nd) {
            r->err = OTPCA_ERR_NOMEM;
        } else {
            r->err = node_open(nd, s->o, &s->nodes[i], s->p11, s->zctx, s->root, s->root_len);
            if (r->err == OTPCA_ERR_OK)
                r->err = node_run(nd, s->o, OTPCA_NODE_FLOW_ENROLL);
            if (nd->core.cfg.hal) {
                otpca_node_last_error(&nd->core, &r->wire);
                r->bytes = nd->core.bytes_out + nd->core.bytes_in;
            }
            if (r->err != OTPCA_ERR_REFUSED)
                r->wire = 0;
            node_close(nd);
        }
        r->ms = mono_ms() - t0;
        pthread_mutex_lock(&s->mu);
        s->done++;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    free(nd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
    return v[i == 0 ? 0 : (i > n ? n : i) - 1];
}

static void progress(long done, long total, double t0, int final)
{
    int width = 40, fill = total ? (int)(width * done / total) : width;
    double el = (mono_ms() - t0) / 1000.0;
    fprintf(stderr, "\r[%.*s%*s] %ld/%ld  %.1f/s", fill, "########################################", width - fill, "",
            done, total, el > 0 ? done / el : 0.0);
    if (final)
        fputc('\n', stderr);
}

static int cmd_sim(const opts *o)
{
    static uint8_t root[ROOT_MAX];
    sim s;
    int rc = EXIT_FAILURE;
    otpca_err ret;
    pthread_t *th = NULL;
    long started = 0;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.count = o->count;
    if (read_root(o->root, root, &s.root_len) != 0)
        return EXIT_FAILURE;
    if (o->root_crl && read_root_crl(o->root_crl, root, s.root_len) != 0)
        return EXIT_FAILURE;
    s.root = root;
    s.nodes = calloc((size_t)s.count, sizeof *s.nodes);
    s.res = calloc((size_t)s.count, sizeof *s.res);
    th = calloc((size_t)o->conc, sizeof *th);
    if (!s.nodes || !s.res || !th)
        goto out;
    for (long i = 0; i < s.count; i++) {
        snprintf(s.nodes[i].serial, sizeof s.nodes[i].serial, "node-%06ld", i + 1);
        if (manifest_lookup(o->rig, &s.nodes[i]) != 0) {
            fprintf(stderr, "otpca-node: %s: not in %s/manifest.csv (the rig has fewer nodes?)\n", s.nodes[i].serial,
                    o->rig);
            goto out;
        }
    }
    /* One PKCS#11 owner for the process; every node opens its own token on it. */
    if ((ret = otpca_p11_new(NULL, &s.p11)) != OTPCA_ERR_OK) {
        fprintf(stderr, "otpca-node: PKCS#11 module: %s\n", otpca_strerror(ret));
        goto out;
    }
    if (!(s.zctx = zmq_ctx_new()))
        goto out;
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    int tty = isatty(2);
    double t0 = mono_ms();
    for (; started < o->conc; started++)
        if (pthread_create(&th[started], NULL, sim_worker, &s) != 0)
            break;
    if (started == 0) {
        fprintf(stderr, "otpca-node: no worker thread could start\n");
        goto out_sync;
    }
    pthread_mutex_lock(&s.mu);
    while (s.done < s.count) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s.cv, &s.mu, &ts);
        if (tty)
            progress(s.done, s.count, t0, 0);
    }
    pthread_mutex_unlock(&s.mu);
    for (long i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double elapsed = mono_ms() - t0;
    if (tty)
        progress(s.count, s.count, t0, 1);

    /* Summary. */
    double *lat = calloc((size_t)s.count, sizeof *lat);
    long ok = 0;
    uint64_t bytes = 0;
    struct reason {
        otpca_err e;
        unsigned wire;
        long n;
    } reasons[32];
    size_t nr = 0;
    for (long i = 0; i < s.count && lat; i++) {
        if (s.res[i].err == OTPCA_ERR_OK) {
            lat[ok++] = s.res[i].ms;
            bytes += s.res[i].bytes;
            continue;
        }
        size_t k = 0;
        while (k < nr && (reasons[k].e != s.res[i].err || reasons[k].wire != s.res[i].wire))
            k++;
        if (k == nr && nr < 32)
            reasons[nr++] = (struct reason){s.res[i].err, s.res[i].wire, 0};
        if (k < nr)
            reasons[k].n++;
    }
    if (!lat)
        goto out_sync;
    qsort(lat, (size_t)ok, sizeof *lat, cmp_double);
    double rate = elapsed > 0 ? ok / (elapsed / 1000.0) : 0;
    double per = ok ? (double)bytes / (double)ok : 0;
    if (o->json) {
        printf("{\"nodes\":%ld,\"concurrency\":%ld,\"enrolled\":%ld,\"failed\":%ld,\"failures\":{", s.count, o->conc, ok,
               s.count - ok);
        for (size_t k = 0; k < nr; k++)
            printf("%s\"%s%s%u\":%ld", k ? "," : "", otpca_errname(reasons[k].e), reasons[k].wire ? "/wire-" : "",
                   reasons[k].wire, reasons[k].n);
        printf("},\"seconds\":%.3f,\"per_second\":%.1f,\"latency_ms\":{\"p50\":%.1f,\"p95\":%.1f,\"p99\":%.1f},"
               "\"wire_bytes_per_enrollment\":%.0f,\"signed_time\":%s}\n",
               elapsed / 1000.0, rate, pct(lat, (size_t)ok, 50), pct(lat, (size_t)ok, 95), pct(lat, (size_t)ok, 99), per,
               o->no_time ? "false" : "true");
    } else {
        printf("nodes          %ld (concurrency %ld)\nenrolled       %ld\nfailed         %ld\n", s.count, o->conc, ok,
               s.count - ok);
        for (size_t k = 0; k < nr; k++) {
            if (reasons[k].wire)
                printf("  %-28s %ld\n", reasons[k].wire == 2 ? "refused: AUTH_FAILED"
                                        : reasons[k].wire == 3 ? "refused: WINDOW_CLOSED"
                                                               : "refused by the manager",
                       reasons[k].n);
            else
                printf("  %-28s %ld\n", otpca_strerror(reasons[k].e), reasons[k].n);
        }
        printf("elapsed        %.2f s (%.1f enrollments/s)\nlatency        p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n"
               "wire bytes     %.0f per enrollment (%s)\n",
               elapsed / 1000.0, rate, pct(lat, (size_t)ok, 50), pct(lat, (size_t)ok, 95), pct(lat, (size_t)ok, 99),
               per, o->no_time ? "no signed time" : "with signed time");
    }
    free(lat);
    rc = ok == s.count ? EXIT_SUCCESS : EXIT_FAILURE;
out_sync:
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
out:
    if (s.zctx)
        zmq_ctx_term(s.zctx);
    otpca_p11_destroy(&s.p11);
    free(th);
    free(s.nodes);
    free(s.res);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"manager", required_argument, 0, 'm'}, {"root", required_argument, 0, 'r'},
        {"root-crl", required_argument, 0, 'L'},
        {"rig", required_argument, 0, 'R'},     {"serial", required_argument, 0, 's'},
        {"token", required_argument, 0, 't'},   {"soft-key", required_argument, 0, 'k'},
        {"mac", required_argument, 0, 'M'},     {"sha256", no_argument, 0, '2'},
        {"digits", required_argument, 0, 'd'},  {"period", required_argument, 0, 'p'},
        {"state", required_argument, 0, 'S'},   {"no-time", no_argument, 0, 'T'},
        {"timeout", required_argument, 0, 'o'}, {"cert-out", required_argument, 0, 'c'},
        {"count", required_argument, 0, 'n'},   {"concurrency", required_argument, 0, 'C'},
        {"json", no_argument, 0, 'j'},          {"log-level", required_argument, 0, 'l'},
        {"keep-old-key", no_argument, 0, 'K'},  {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    opts o;
    memset(&o, 0, sizeof o);
    o.state = ".";
    o.count = 8;
    o.conc = 4;
    o.timeout = 3000;
    const char *level = "warn";
    if (argc < 2)
        return usage_error("%s", "a command is required");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage_text, stdout);
        return EXIT_SUCCESS;
    }
    o.cmd = argv[1];
    static const char *const cmds[] = {"enroll", "rejoin", "rotate", "claim", "confirm", "show", "sim"};
    bool known = false;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        known |= !strcmp(o.cmd, cmds[i]);
    if (!known)
        return usage_error("unknown command '%s'", o.cmd);
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': o.manager = optarg; break;
        case 'r': o.root = optarg; break;
        case 'L': o.root_crl = optarg; break;
        case 'R': o.rig = optarg; break;
        case 's': o.serial = optarg; break;
        case 't': o.token = optarg; break;
        case 'k': o.soft = optarg; break;
        case 'M': o.mac = optarg; break;
        case '2': o.sha256 = o.sha256_set = true; break;
        case 'd':
            if (otpca_option_long(optarg, 6, 8, &o.digits) != 0)
                return usage_error("--digits: '%s' is not 6, 7 or 8", optarg);
            break;
        case 'p':
            if (otpca_option_long(optarg, 1, 3600, &o.period) != 0)
                return usage_error("--period: '%s' is not 1..3600 seconds", optarg);
            break;
        case 'S': o.state = optarg; break;
        case 'T': o.no_time = true; break;
        case 'o':
            if (otpca_option_long(optarg, 10, 600000, &o.timeout) != 0)
                return usage_error("--timeout: '%s' is not 10..600000 ms", optarg);
            break;
        case 'c': o.cert_out = optarg; break;
        case 'n':
            if (otpca_option_long(optarg, 1, 999999, &o.count) != 0)
                return usage_error("--count: '%s' is not 1..999999", optarg);
            break;
        case 'C':
            if (otpca_option_long(optarg, 1, 256, &o.conc) != 0)
                return usage_error("--concurrency: '%s' is not 1..256", optarg);
            break;
        case 'j': o.json = true; break;
        case 'K': o.keep_old_key = true; break;
        case 'l': level = optarg; break;
        case 'h': fputs(usage_text, stdout); return EXIT_SUCCESS;
        default: return usage_error("%s", "bad option");
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    int lvl = otpca_log_level_parse(level);
    if (lvl < 0)
        return usage_error("--log-level: '%s' is not debug|info|warn|error|off", level);
    otpca_log_init("otpca-node", (otpca_log_level)lvl, OTPCA_LOG_TEXT);
    bool show = !strcmp(o.cmd, "show"), sim_cmd = !strcmp(o.cmd, "sim");
    if (!show && (!o.manager || !o.root))
        return usage_error("%s", "--manager and --root are required");
    if (sim_cmd) {
        if (!o.rig)
            return usage_error("%s", "sim needs --rig");
        if (o.conc > o.count)
            o.conc = o.count;
    } else {
        if (!o.serial)
            return usage_error("%s", "--serial is required");
        if ((o.rig != NULL) + (o.token != NULL) + (o.soft != NULL) == 0)
            return usage_error("%s", "one of --rig, --token or --soft-key is required");
        if (o.token && o.soft)
            return usage_error("%s", "--token and --soft-key exclude each other");
        if (!o.rig && !o.mac && !show)
            return usage_error("%s", "--mac is required without --rig");
    }
    if (mkdir(o.state, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "otpca-node: %s: %s\n", o.state, strerror(errno));
        return EXIT_FAILURE;
    }
    return sim_cmd ? cmd_sim(&o) : cmd_single(&o);
}
