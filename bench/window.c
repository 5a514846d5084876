/*
 * otpca-bench-window: the client half of bench/window.sh, which measures
 * full enrollments through a real `otpca-manager window open` (checks,
 * token-signed certificate, ECIES, group-committed journal, ZeroMQ, the
 * node's confirm and the ConfirmAck) against the crypto bound of the same
 * run.
 *
 *   otpca-bench-window gen --count N --out DIR
 *     N simulated devices with software keys (bench-000001 ...): DIR/manifest.csv
 *     for `otpca-cloud device import` and DIR/devices.bin (private keys
 *     and seeds, 0600) for the load.
 *   otpca-bench-window load --endpoint EP --devices DIR/devices.bin --count K [--concurrency C]
 *                           [--plan FILE] [--record FILE] [--timeout MS]
 *     K enrollments (request -> EnrollResponse -> EnrollConfirm ->
 *     ConfirmAck) of the first K devices, C in flight on C DEALER sockets
 *     from one thread; one JSON object on stdout: enrolled, failed,
 *     seconds, per second, latency percentiles, bytes on the wire, and the
 *     client's own CPU time (it shares the machine with the manager).
 *     For bench/faults.sh: --plan FILE enrolls the devices it lists
 *     instead ("INDEX STEP" per line: the device's 0-based index in
 *     devices.bin and the TOTP time step its request is signed for);
 *     --record FILE appends what each node heard, one line per event
 *     ("issued SERIAL RECORD CERT-SHA256 STEP", "confirmed SERIAL RECORD",
 *     "refused SERIAL STEP" for an answer that is not a certificate,
 *     "unacked SERIAL RECORD" for a confirm answered otherwise, "lost
 *     SERIAL STEP" when the run gave up waiting); --timeout MS is how long
 *     the run waits without any answer before it gives up (default 10 s).
 *   otpca-bench-window flood --endpoint EP --count N [--devices FILE] [--server-key Z85]
 *     N malformed or unauthenticated messages (see flood() below), as fast
 *     as they go, then a JSON summary. Without --server-key the endpoint is
 *     a manager's node endpoint; with it (the cloud's CURVE public key) the
 *     cloud's.
 *
 * Software device keys so that the nodes' side costs little next to the
 * manager's: the requests are signed before the clock starts (valid for
 * the current TOTP step and the next), and only the confirms are signed
 * during the run (its CPU time is reported). The responses are not
 * verified here (the tests and otpca-node do that): this is a load.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zmq.h>

#include "otpca/common/config.h"
#include "otpca/common/secmem.h"
#include "otpca/manager/enroll.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"

#define SEED_LEN 20
#define REQ_MAX 1024
#define ANS_MAX 4096
#define CONCURRENCY_MAX 256
#define TIMEOUT_MS 10000
#define COUNT_MAX 10000000L

struct device {
    char serial[16];
    uint8_t priv[32];
    uint8_t pub[65];
    uint8_t seed[SEED_LEN];
};

static int usage(void)
{
    fprintf(stderr, "usage: otpca-bench-window gen --count N --out DIR\n"
                    "       otpca-bench-window load --endpoint EP --devices FILE --count K [--concurrency C]\n"
                    "                               [--plan FILE] [--record FILE] [--timeout MS]\n"
                    "       otpca-bench-window flood --endpoint EP --count N [--devices FILE] [--server-key Z85]\n"
                    "  The client half of bench/window.sh and bench/faults.sh (see there).\n");
    return 2;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int gen(long count, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.csv", dir);
    FILE *csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/devices.bin", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE *bin = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!csv || !bin) {
        fprintf(stderr, "otpca-bench-window: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    fprintf(csv, "serial,mac,public_key,seed,algorithm,digits,period\n");
    int rc = 0;
    for (long i = 0; i < count && !rc; i++) {
        struct device d;
        otpca_p256_soft k;
        memset(&d, 0, sizeof d);
        snprintf(d.serial, sizeof d.serial, "bench-%07d", (int)((i + 1) % COUNT_MAX)); /* COUNT_MAX: 7 digits */
        if (otpca_p256_soft_generate(&k) != OTPCA_ERR_OK || otpca_random(d.seed, SEED_LEN) != OTPCA_ERR_OK) {
            rc = 1;
            break;
        }
        memcpy(d.priv, k.priv, 32);
        memcpy(d.pub, k.pub, 65);
        otpca_p256_soft_wipe(&k);
        fprintf(csv, "%s,02:be:%02lx:%02lx:%02lx:%02lx,", d.serial, (i >> 24) & 0xff, (i >> 16) & 0xff,
                (i >> 8) & 0xff, i & 0xff);
        for (int b = 0; b < 65; b++)
            fprintf(csv, "%02x", d.pub[b]);
        fputc(',', csv);
        for (int b = 0; b < SEED_LEN; b++)
            fprintf(csv, "%02x", d.seed[b]);
        fprintf(csv, ",SHA1,6,30\n");
        if (fwrite(&d, sizeof d, 1, bin) != 1)
            rc = 1;
        otpca_memzero(&d, sizeof d);
    }
    if (fclose(csv) != 0 || fclose(bin) != 0)
        rc = 1;
    if (rc)
        fprintf(stderr, "otpca-bench-window: generating the devices failed\n");
    return rc;
}

/* One device's way through: request sent, then confirm sent. */
struct slot {
    void *sock;
    long dev;    /* index of the device in flight, -1: idle */
    int phase;   /* 0: waiting for the EnrollResponse, 1: for the ConfirmAck */
    double t0;
    uint8_t nonce[16];  /* the confirm's */
    uint8_t record[16]; /* the record it confirms */
};

struct load {
    struct device *devs; /* the devices of this run, in order */
    uint64_t *step;      /* each one's TOTP step; NULL: the current one */
    FILE *rec;           /* --record, or NULL */
    uint8_t (*req)[REQ_MAX];
    size_t *req_len;
    long count, next, enrolled, failed;
    double *lat;
    uint64_t bytes_out, bytes_in;
};

static int send_request(struct load *l, struct slot *s)
{
    if (l->next >= l->count) {
        s->dev = -1;
        return 0;
    }
    s->dev = l->next++;
    s->phase = 0;
    s->t0 = now_s();
    l->bytes_out += l->req_len[s->dev];
    return zmq_send(s->sock, l->req[s->dev], l->req_len[s->dev], 0) < 0 ? -1 : 0;
}

static int confirm(struct load *l, struct slot *s, const uint8_t *ans, size_t n)
{
    otpca_cose_sign1 c;
    otpca_enroll_response r;
    struct device *d = &l->devs[s->dev];
    if (otpca_cose_sign1_decode(ans, n, &c) != OTPCA_ERR_OK ||
        otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r) != OTPCA_ERR_OK ||
        !r.cert.p || r.record.len != 16) {
        if (l->rec)
            fprintf(l->rec, "refused %s %llu\n", d->serial, (unsigned long long)(l->step ? l->step[s->dev] : 0));
        return -1;
    }
    uint8_t hash[32], out[REQ_MAX];
    size_t len = 0;
    otpca_sha256(r.cert.p, r.cert.len, hash);
    memcpy(s->record, r.record.p, 16);
    if (l->rec) {
        fprintf(l->rec, "issued %s ", d->serial);
        for (int i = 0; i < 16; i++)
            fprintf(l->rec, "%02x", s->record[i]);
        fputc(' ', l->rec);
        for (int i = 0; i < 32; i++)
            fprintf(l->rec, "%02x", hash[i]);
        fprintf(l->rec, " %llu\n", (unsigned long long)(l->step ? l->step[s->dev] : 0));
        fflush(l->rec);
    }
    if (otpca_random(s->nonce, 16) != OTPCA_ERR_OK)
        return -1;
    otpca_enroll_confirm cm = {.nonce = {s->nonce, 16}, .record = r.record, .time = (uint64_t)time(NULL),
                               .cert_hash = {hash, 32}};
    otpca_p256_soft k;
    memcpy(k.priv, d->priv, 32);
    memcpy(k.pub, d->pub, 65);
    otpca_signer sg = {otpca_p256_soft_sign, &k, {0}};
    otpca_p256_kid(d->pub, sg.kid);
    otpca_err ret = otpca_msg_sign(&otpca_desc_enroll_confirm, &cm, &sg, (otpca_buf){NULL, 0}, out, sizeof out, &len);
    otpca_p256_soft_wipe(&k);
    if (ret)
        return -1;
    s->phase = 1;
    l->bytes_out += len;
    return zmq_send(s->sock, out, len, 0) < 0 ? -1 : 0;
}

/* A ConfirmAck to the slot's confirm (its nonce and record): 0, else -1.
 * Its signature is not checked here (this is a load, not a node). */
static int take_ack(struct load *l, const struct slot *s, const uint8_t *ans, size_t n)
{
    otpca_cose_sign1 c;
    otpca_confirm_ack a;
    int ok = n > 0 && otpca_cose_sign1_decode(ans, n, &c) == OTPCA_ERR_OK &&
             otpca_msg_decode(&otpca_desc_confirm_ack, c.payload.p, c.payload.len, &a) == OTPCA_ERR_OK &&
             a.nonce.len == 16 && !memcmp(a.nonce.p, s->nonce, 16) && a.record.len == 16 &&
             !memcmp(a.record.p, s->record, 16);
    if (l->rec) {
        fprintf(l->rec, "%s %s ", ok ? "confirmed" : "unacked", l->devs[s->dev].serial);
        for (int i = 0; i < 16; i++)
            fprintf(l->rec, "%02x", s->record[i]);
        fputc('\n', l->rec);
        fflush(l->rec);
    }
    return ok ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, long n, double p)
{
    if (n <= 0)
        return 0;
    long i = (long)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* Signs every request now: one TOTP step is good for the ±1 tolerance. */
static int prepare(struct load *l)
{
    uint64_t now = (uint64_t)time(NULL);
    for (long i = 0; i < l->count; i++) {
        struct device *d = &l->devs[i];
        uint8_t nonce[16], mac[6] = {2, 0xbe, 0, 0, 0, 0};
        uint32_t totp = 0;
        if (otpca_random(nonce, 16) != OTPCA_ERR_OK ||
            otpca_mgr_totp_at(d->seed, SEED_LEN, 6, 1, l->step ? l->step[i] : now / 30, &totp) != OTPCA_ERR_OK)
            return -1;
        otpca_enroll_request m;
        memset(&m, 0, sizeof m);
        m.nonce = (otpca_buf){nonce, 16};
        m.time = now;
        m.serial = (otpca_buf){(const uint8_t *)d->serial, strlen(d->serial)};
        m.mac = (otpca_buf){mac, 6};
        m.pubkey = (otpca_buf){d->pub, 65};
        m.totp = totp;
        m.fw = (otpca_buf){(const uint8_t *)"bench", 5};
        otpca_p256_soft k;
        memcpy(k.priv, d->priv, 32);
        memcpy(k.pub, d->pub, 65);
        otpca_signer sg = {otpca_p256_soft_sign, &k, {0}};
        otpca_p256_kid(d->pub, sg.kid);
        otpca_err ret =
            otpca_msg_sign(&otpca_desc_enroll_request, &m, &sg, (otpca_buf){NULL, 0}, l->req[i], REQ_MAX, &l->req_len[i]);
        otpca_p256_soft_wipe(&k);
        if (ret)
            return -1;
    }
    return 0;
}

/* --plan FILE: the devices ("INDEX STEP" lines) into l->devs and l->step;
 * the number of lines in *count. */
static int read_plan(struct load *l, FILE *devs, const char *plan, long *count)
{
    FILE *p = fopen(plan, "r");
    if (!p) {
        fprintf(stderr, "otpca-bench-window: %s: %s\n", plan, strerror(errno));
        return -1;
    }
    long n = 0, cap = 1024, idx;
    unsigned long long step;
    int rc = 0;
    l->devs = malloc((size_t)cap * sizeof *l->devs);
    l->step = malloc((size_t)cap * sizeof *l->step);
    while (!rc && l->devs && l->step && fscanf(p, "%ld %llu", &idx, &step) == 2) {
        if (n == COUNT_MAX || idx < 0 || idx >= COUNT_MAX) {
            rc = -1;
            break;
        }
        if (n == cap) {
            cap *= 2;
            void *a = realloc(l->devs, (size_t)cap * sizeof *l->devs), *b = realloc(l->step, (size_t)cap * sizeof *l->step);
            if (a)
                l->devs = a;
            if (b)
                l->step = b;
            if (!a || !b)
                break;
        }
        if (fseek(devs, idx * (long)sizeof *l->devs, SEEK_SET) != 0 || fread(&l->devs[n], sizeof *l->devs, 1, devs) != 1) {
            fprintf(stderr, "otpca-bench-window: %s: no device %ld in the devices file\n", plan, idx);
            rc = -1;
            break;
        }
        l->step[n++] = step;
    }
    if (!rc && (!l->devs || !l->step || !feof(p) || n == 0)) {
        fprintf(stderr, "otpca-bench-window: %s: not a plan (\"INDEX STEP\" lines) or out of memory\n", plan);
        rc = -1;
    }
    fclose(p);
    *count = n;
    return rc;
}

static int load(const char *endpoint, const char *file, long count, long conc, const char *plan, const char *record,
                long timeout_ms)
{
    struct load l;
    memset(&l, 0, sizeof l);
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "otpca-bench-window: %s: %s\n", file, strerror(errno));
        return 1;
    }
    if (plan && read_plan(&l, f, plan, &count) != 0) {
        fclose(f);
        return 1;
    }
    if (record && !(l.rec = fopen(record, "a"))) {
        fprintf(stderr, "otpca-bench-window: %s: %s\n", record, strerror(errno));
        fclose(f);
        return 1;
    }
    l.count = count;
    if (!plan)
        l.devs = calloc((size_t)count, sizeof *l.devs);
    l.req = calloc((size_t)count, sizeof *l.req);
    l.req_len = calloc((size_t)count, sizeof *l.req_len);
    l.lat = calloc((size_t)count, sizeof *l.lat);
    if (!l.devs || !l.req || !l.req_len || !l.lat) {
        fclose(f);
        fprintf(stderr, "otpca-bench-window: out of memory\n");
        return 1;
    }
    size_t got = plan ? (size_t)count : fread(l.devs, sizeof *l.devs, (size_t)count, f);
    fclose(f);
    if (got != (size_t)count) {
        fprintf(stderr, "otpca-bench-window: %s holds %zu devices, %ld asked for\n", file, got, count);
        return 1;
    }
    /* Not across a TOTP step boundary: start early in a step (a plan
     * names its steps). */
    for (int i = 0; i < 300 && !plan && time(NULL) % 30 > 15; i++)
        usleep(100000);
    double p0 = now_s();
    if (prepare(&l)) {
        fprintf(stderr, "otpca-bench-window: signing the requests failed\n");
        return 1;
    }
    double prep = now_s() - p0;

    void *ctx = zmq_ctx_new();
    struct slot slots[CONCURRENCY_MAX];
    zmq_pollitem_t items[CONCURRENCY_MAX];
    int linger = 0, rc = 0;
    for (long i = 0; i < conc; i++) {
        slots[i].sock = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(slots[i].sock, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(slots[i].sock, endpoint) != 0) {
            fprintf(stderr, "otpca-bench-window: %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
            return 1;
        }
        items[i] = (zmq_pollitem_t){slots[i].sock, 0, ZMQ_POLLIN, 0};
    }
    double t0 = now_s(), c0 = cpu_s();
    for (long i = 0; i < conc && !rc; i++)
        rc = send_request(&l, &slots[i]);
    long active = conc < count ? conc : count;
    static uint8_t ans[ANS_MAX];
    /* Bounded: every answer moves a slot on; timeout_ms without one ends
     * the run. */
    while (!rc && active > 0) {
        int n = zmq_poll(items, (int)conc, timeout_ms);
        if (n <= 0) {
            fprintf(stderr, "otpca-bench-window: no answer for %ld ms; %ld in flight\n", timeout_ms, active);
            l.failed += active;
            for (long i = 0; i < conc && l.rec; i++)
                if (slots[i].dev >= 0)
                    fprintf(l.rec, "lost %s %llu\n", l.devs[slots[i].dev].serial,
                            (unsigned long long)(l.step ? l.step[slots[i].dev] : 0));
            break;
        }
        for (long i = 0; i < conc && !rc; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            struct slot *s = &slots[i];
            int len = zmq_recv(s->sock, ans, sizeof ans, ZMQ_DONTWAIT);
            if (len < 0 || s->dev < 0)
                continue;
            l.bytes_in += (uint64_t)len;
            size_t n_ans = (size_t)len > sizeof ans ? sizeof ans : (size_t)len;
            if (s->phase == 0 && confirm(&l, s, ans, n_ans) == 0)
                continue;
            if (s->phase == 1 && take_ack(&l, s, ans, n_ans) == 0)
                l.lat[l.enrolled++] = now_s() - s->t0;
            else
                l.failed++;
            rc = send_request(&l, s);
            if (s->dev < 0)
                active--;
        }
    }
    double secs = now_s() - t0, cpu = cpu_s() - c0;
    for (long i = 0; i < conc; i++)
        zmq_close(slots[i].sock);
    zmq_ctx_term(ctx);
    qsort(l.lat, (size_t)l.enrolled, sizeof *l.lat, cmp_double);
    printf("{\"enrolled\":%ld,\"failed\":%ld,\"concurrency\":%ld,\"seconds\":%.3f,\"per_second\":%.1f,"
           "\"latency_ms\":{\"p50\":%.2f,\"p95\":%.2f,\"p99\":%.2f},\"bytes_per_enrollment\":%.0f,"
           "\"client_cpu_seconds\":%.3f,\"requests_signed_before_s\":%.3f}\n",
           l.enrolled, l.failed, conc, secs, secs > 0 ? (double)l.enrolled / secs : 0, 1e3 * pct(l.lat, l.enrolled, 0.5),
           1e3 * pct(l.lat, l.enrolled, 0.95), 1e3 * pct(l.lat, l.enrolled, 0.99),
           l.enrolled ? (double)(l.bytes_in + l.bytes_out) / (double)(l.enrolled + l.failed) : 0, cpu, prep);
    if (l.rec)
        fclose(l.rec);
    otpca_memzero(l.devs, (size_t)count * sizeof *l.devs);
    free(l.devs);
    free(l.step);
    free(l.req);
    free(l.req_len);
    free(l.lat);
    return rc || l.failed ? 1 : 0;
}

/* ---- flood ---------------------------------------------------------------- */

static uint32_t rnd32(void)
{
    uint32_t v = 0;
    if (otpca_random((uint8_t *)&v, sizeof v) != OTPCA_ERR_OK)
        v = (uint32_t)rand();
    return v;
}

static void rnd_bytes(uint8_t *p, size_t n)
{
    if (otpca_random(p, n) != OTPCA_ERR_OK)
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)rand();
}

/* One raw TCP connection to the endpoint's port on loopback: n bytes
 * written (a ZMTP greeting first if greet), then closed. */
static int tcp_junk(const char *endpoint, int greet, size_t n)
{
    const char *colon = strrchr(endpoint, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (strncmp(endpoint, "tcp://127.0.0.1:", 16) || port <= 0 || port > 65535)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    uint8_t buf[4096 + 64];
    size_t off = 0;
    if (greet) { /* ZMTP 3.0: signature, version 3.0, mechanism CURVE, as-server 0, filler */
        static const uint8_t g[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'C', 'U', 'R', 'V', 'E'};
        memcpy(buf, g, sizeof g);
        off = sizeof g;
    }
    if (n > sizeof buf - off)
        n = sizeof buf - off;
    rnd_bytes(buf + off, n);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, buf, off + n) >= 0 ? 0 : -1;
    close(fd);
    return rc;
}

/* A request of device d's shape: signed by key k (d's own key, or another),
 * with code as its TOTP and serial as its serial. */
static size_t flood_request(const struct device *d, const char *serial, const otpca_p256_soft *k, uint32_t code,
                            uint8_t *out, size_t cap)
{
    uint8_t nonce[16], mac[6] = {2, 0xbe, 0, 0, 0, 0};
    rnd_bytes(nonce, sizeof nonce);
    otpca_enroll_request m;
    memset(&m, 0, sizeof m);
    m.nonce = (otpca_buf){nonce, 16};
    m.time = (uint64_t)time(NULL);
    m.serial = (otpca_buf){(const uint8_t *)serial, strlen(serial)};
    m.mac = (otpca_buf){mac, 6};
    m.pubkey = (otpca_buf){d ? d->pub : k->pub, 65};
    m.totp = code;
    m.fw = (otpca_buf){(const uint8_t *)"flood", 5};
    otpca_p256_soft key = *k;
    otpca_signer sg = {otpca_p256_soft_sign, &key, {0}};
    otpca_p256_kid(key.pub, sg.kid);
    size_t len = 0;
    otpca_err ret = otpca_msg_sign(&otpca_desc_enroll_request, &m, &sg, (otpca_buf){NULL, 0}, out, cap, &len);
    otpca_p256_soft_wipe(&key);
    return ret ? 0 : len;
}

#define FLOOD_SOCKS 8

/* N messages at a manager's node endpoint (no server key) or at the
 * cloud's (server key: its CURVE public key), each of a kind in turn:
 *   node: 0 random bytes (0..1200, sometimes none), 1 a signed request cut
 *   short, 2 a request for a real device with a wrong TOTP and its
 *   signature changed, 3 a request for a real device signed by another key
 *   (with that key), 4 an EnrollConfirm for a random record with its
 *   signature changed, 5 a request for an unknown serial, 6 two or three
 *   frames of random bytes, 7 a raw TCP connection that writes random
 *   bytes (every other time after a ZMTP greeting) and hangs up;
 *   cloud: 0 a plain DEALER (no CURVE) sends random bytes, 1 a CURVE client
 *   with a key the cloud does not know does, 2 and 3 raw TCP as node kind 7.
 * Answers are read and counted; a send that would block is dropped. */
static int flood(const char *endpoint, const char *file, long count, const char *server_key)
{
    struct device *devs = NULL;
    long ndev = 0;
    if (file) {
        FILE *f = fopen(file, "rb");
        struct stat st;
        if (!f || fstat(fileno(f), &st) != 0) {
            fprintf(stderr, "otpca-bench-window: %s: %s\n", file, strerror(errno));
            if (f)
                fclose(f);
            return 1;
        }
        ndev = (long)(st.st_size / (off_t)sizeof *devs);
        if (ndev > 100000)
            ndev = 100000;
        devs = calloc((size_t)(ndev ? ndev : 1), sizeof *devs);
        if (!devs || fread(devs, sizeof *devs, (size_t)ndev, f) != (size_t)ndev) {
            fclose(f);
            free(devs);
            fprintf(stderr, "otpca-bench-window: %s: cannot read the devices\n", file);
            return 1;
        }
        fclose(f);
    }
    uint8_t srv[32];
    if (server_key && (strlen(server_key) != 40 || !zmq_z85_decode(srv, server_key))) {
        fprintf(stderr, "otpca-bench-window: --server-key: 40 Z85 characters\n");
        free(devs);
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *socks[FLOOD_SOCKS] = {0};
    int linger = 0, hwm = 1000;
    long sent = 0, dropped = 0, answers = 0, tcp = 0, sockets = 0;
    static uint8_t msg[REQ_MAX + 1024], ans[ANS_MAX];
    double t0 = now_s();
    otpca_p256_soft other;
    if (otpca_p256_soft_generate(&other) != OTPCA_ERR_OK) {
        fprintf(stderr, "otpca-bench-window: no key\n");
        return 1;
    }
    if (!server_key)
        for (int i = 0; i < FLOOD_SOCKS; i++) {
            socks[i] = zmq_socket(ctx, ZMQ_DEALER);
            zmq_setsockopt(socks[i], ZMQ_LINGER, &linger, sizeof linger);
            zmq_setsockopt(socks[i], ZMQ_SNDHWM, &hwm, sizeof hwm);
            if (zmq_connect(socks[i], endpoint) != 0) {
                fprintf(stderr, "otpca-bench-window: %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
                return 1;
            }
            sockets++;
        }
    for (long i = 0; i < count; i++) {
        int kind = server_key ? (int)(i % 4) : (int)(i % 8);
        size_t len = 0;
        int frames = 1;
        if (server_key) {
            if (kind >= 2) {
                tcp += tcp_junk(endpoint, kind == 3, 16 + rnd32() % 2048) == 0;
                continue;
            }
            /* a fresh connection per message: every one is a new handshake */
            void *z = zmq_socket(ctx, ZMQ_DEALER);
            zmq_setsockopt(z, ZMQ_LINGER, &linger, sizeof linger);
            if (kind == 1) {
                char pub[41], sec[41], srvz[41];
                snprintf(srvz, sizeof srvz, "%s", server_key);
                if (zmq_curve_keypair(pub, sec) == 0) {
                    zmq_setsockopt(z, ZMQ_CURVE_SERVERKEY, srvz, 40);
                    zmq_setsockopt(z, ZMQ_CURVE_PUBLICKEY, pub, 40);
                    zmq_setsockopt(z, ZMQ_CURVE_SECRETKEY, sec, 40);
                }
            }
            len = 1 + rnd32() % 600;
            rnd_bytes(msg, len);
            if (zmq_connect(z, endpoint) == 0 && zmq_send(z, msg, len, ZMQ_DONTWAIT) >= 0)
                sent++;
            else
                dropped++;
            sockets++;
            /* give the handshake a moment to happen before the close */
            zmq_pollitem_t it = {z, 0, ZMQ_POLLIN, 0};
            if (zmq_poll(&it, 1, 5) > 0 && zmq_recv(z, ans, sizeof ans, ZMQ_DONTWAIT) >= 0)
                answers++;
            zmq_close(z);
            continue;
        }
        const struct device *d = ndev ? &devs[rnd32() % (uint32_t)ndev] : NULL;
        switch (kind) {
        case 0:
            len = rnd32() % 8 ? rnd32() % 1200 : 0;
            rnd_bytes(msg, len);
            break;
        case 1:
            len = d ? flood_request(d, d->serial, &other, rnd32() % 1000000, msg, sizeof msg) : 0;
            len = len ? rnd32() % len : 0;
            if (!d)
                rnd_bytes(msg, len = 100);
            break;
        case 2:
            if (d) {
                otpca_p256_soft k;
                memcpy(k.priv, d->priv, 32);
                memcpy(k.pub, d->pub, 65);
                len = flood_request(d, d->serial, &k, rnd32() % 1000000, msg, sizeof msg);
                otpca_p256_soft_wipe(&k);
                if (len > 10)
                    msg[len - 1 - rnd32() % 60] ^= (uint8_t)(1u << (rnd32() % 8));
            }
            break;
        case 3:
            len = d ? flood_request(NULL, d->serial, &other, rnd32() % 1000000, msg, sizeof msg) : 0;
            break;
        case 4: {
            uint8_t nonce[16], rec[16], hash[32];
            rnd_bytes(nonce, 16);
            rnd_bytes(rec, 16);
            rnd_bytes(hash, 32);
            otpca_enroll_confirm cm = {.nonce = {nonce, 16}, .record = {rec, 16}, .time = (uint64_t)time(NULL),
                                       .cert_hash = {hash, 32}};
            otpca_p256_soft k = other;
            otpca_signer sg = {otpca_p256_soft_sign, &k, {0}};
            if (d)
                otpca_p256_kid(d->pub, sg.kid); /* claims to be the device */
            else
                otpca_p256_kid(other.pub, sg.kid);
            if (otpca_msg_sign(&otpca_desc_enroll_confirm, &cm, &sg, (otpca_buf){NULL, 0}, msg, sizeof msg, &len))
                len = 0;
            otpca_p256_soft_wipe(&k);
            if (len > 10)
                msg[len - 1 - rnd32() % 60] ^= 0x40;
            break;
        }
        case 5: {
            char serial[16];
            snprintf(serial, sizeof serial, "flood-%06u", (unsigned)(rnd32() % 1000000));
            len = flood_request(NULL, serial, &other, rnd32() % 1000000, msg, sizeof msg);
            break;
        }
        case 6:
            frames = 2 + (int)(rnd32() % 2);
            len = 1 + rnd32() % 300;
            rnd_bytes(msg, len);
            break;
        default:
            tcp += tcp_junk(endpoint, (int)(i / 8) % 2, 16 + rnd32() % 2048) == 0;
            continue;
        }
        void *z = socks[i % FLOOD_SOCKS];
        int ok = 1;
        for (int fr = 0; fr < frames && ok; fr++)
            ok = zmq_send(z, msg, len, ZMQ_DONTWAIT | (fr + 1 < frames ? ZMQ_SNDMORE : 0)) >= 0;
        if (ok)
            sent++;
        else
            dropped++;
        for (int k = 0; k < FLOOD_SOCKS; k++) /* drain what came back */
            while (zmq_recv(socks[k], ans, sizeof ans, ZMQ_DONTWAIT) >= 0)
                answers++;
    }
    /* the last answers: at most one second */
    for (double end = now_s() + 1.0; !server_key && now_s() < end;) {
        zmq_pollitem_t it[FLOOD_SOCKS];
        for (int k = 0; k < FLOOD_SOCKS; k++)
            it[k] = (zmq_pollitem_t){socks[k], 0, ZMQ_POLLIN, 0};
        if (zmq_poll(it, FLOOD_SOCKS, 200) <= 0)
            break;
        for (int k = 0; k < FLOOD_SOCKS; k++)
            while (zmq_recv(socks[k], ans, sizeof ans, ZMQ_DONTWAIT) >= 0)
                answers++;
    }
    for (int k = 0; k < FLOOD_SOCKS; k++)
        if (socks[k])
            zmq_close(socks[k]);
    zmq_ctx_term(ctx);
    otpca_p256_soft_wipe(&other);
    if (devs)
        otpca_memzero(devs, (size_t)ndev * sizeof *devs);
    free(devs);
    printf("{\"target\":\"%s\",\"messages\":%ld,\"sent\":%ld,\"dropped\":%ld,\"answers\":%ld,\"tcp_connections\":%ld,"
           "\"zmq_sockets\":%ld,\"seconds\":%.3f}\n",
           server_key ? "cloud" : "manager", count, sent, dropped, answers, tcp, sockets, now_s() - t0);
    return 0;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *endpoint = NULL, *devices = NULL, *plan = NULL, *record = NULL, *server_key = NULL;
    long count = 0, conc = 16, timeout_ms = TIMEOUT_MS;
    if (argc < 2)
        return usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help"))
            return usage() & 0;
        if (!v)
            return usage();
        if (!strcmp(a, "--count") || !strcmp(a, "--concurrency")) {
            int is_count = !strcmp(a, "--count");
            if (otpca_option_long(v, 1, is_count ? COUNT_MAX : CONCURRENCY_MAX, is_count ? &count : &conc)) {
                fprintf(stderr, "otpca-bench-window: %s: a number from 1 to %ld\n", a,
                        is_count ? COUNT_MAX : CONCURRENCY_MAX);
                return 2;
            }
        } else if (!strcmp(a, "--timeout")) {
            if (otpca_option_long(v, 1, 600000, &timeout_ms)) {
                fprintf(stderr, "otpca-bench-window: --timeout: milliseconds, 1 to 600000\n");
                return 2;
            }
        } else if (!strcmp(a, "--plan"))
            plan = v;
        else if (!strcmp(a, "--record"))
            record = v;
        else if (!strcmp(a, "--server-key"))
            server_key = v;
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--endpoint"))
            endpoint = v;
        else if (!strcmp(a, "--devices"))
            devices = v;
        else
            return usage();
        i++;
    }
    if (!strcmp(argv[1], "gen") && out && count)
        return gen(count, out);
    if (!strcmp(argv[1], "load") && endpoint && devices && (count || plan))
        return load(endpoint, devices, count, conc, plan, record, timeout_ms);
    if (!strcmp(argv[1], "flood") && endpoint && count)
        return flood(endpoint, devices, count, server_key);
    return usage();
}
