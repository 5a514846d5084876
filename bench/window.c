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
 *     K enrollments (request -> EnrollResponse -> EnrollConfirm ->
 *     ConfirmAck) of the first K devices, C in flight on C DEALER sockets
 *     from one thread; one JSON object on stdout: enrolled, failed,
 *     seconds, per second, latency percentiles, bytes on the wire, and the
 *     client's own CPU time (it shares the machine with the manager).
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
                    "  The client half of bench/window.sh (see there).\n");
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
};

struct load {
    struct device *devs;
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
    if (otpca_cose_sign1_decode(ans, n, &c) != OTPCA_ERR_OK ||
        otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r) != OTPCA_ERR_OK ||
        !r.cert.p)
        return -1;
    struct device *d = &l->devs[s->dev];
    uint8_t hash[32], nonce[16], out[REQ_MAX];
    size_t len = 0;
    otpca_sha256(r.cert.p, r.cert.len, hash);
    if (otpca_random(nonce, 16) != OTPCA_ERR_OK)
        return -1;
    otpca_enroll_confirm cm = {.nonce = {nonce, 16}, .record = r.record, .time = (uint64_t)time(NULL),
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
            otpca_mgr_totp_at(d->seed, SEED_LEN, 6, 1, now / 30, &totp) != OTPCA_ERR_OK)
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

static int load(const char *endpoint, const char *file, long count, long conc)
{
    struct load l;
    memset(&l, 0, sizeof l);
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "otpca-bench-window: %s: %s\n", file, strerror(errno));
        return 1;
    }
    l.count = count;
    l.devs = calloc((size_t)count, sizeof *l.devs);
    l.req = calloc((size_t)count, sizeof *l.req);
    l.req_len = calloc((size_t)count, sizeof *l.req_len);
    l.lat = calloc((size_t)count, sizeof *l.lat);
    if (!l.devs || !l.req || !l.req_len || !l.lat) {
        fclose(f);
        fprintf(stderr, "otpca-bench-window: out of memory\n");
        return 1;
    }
    size_t got = fread(l.devs, sizeof *l.devs, (size_t)count, f);
    fclose(f);
    if (got != (size_t)count) {
        fprintf(stderr, "otpca-bench-window: %s holds %zu devices, %ld asked for\n", file, got, count);
        return 1;
    }
    /* Not across a TOTP step boundary: start early in a step. */
    for (int i = 0; i < 300 && time(NULL) % 30 > 15; i++)
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
    /* Bounded: every answer moves a slot on; 10 s without one ends the run. */
    while (!rc && active > 0) {
        int n = zmq_poll(items, (int)conc, 10000);
        if (n <= 0) {
            fprintf(stderr, "otpca-bench-window: no answer for 10 s; %ld in flight\n", active);
            l.failed += active;
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
            if (s->phase == 1 && n_ans > 0 && ans[0] == 0xd2)
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
    otpca_memzero(l.devs, (size_t)count * sizeof *l.devs);
    free(l.devs);
    free(l.req);
    free(l.req_len);
    free(l.lat);
    return rc || l.failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *endpoint = NULL, *devices = NULL;
    long count = 0, conc = 16;
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
        } else if (!strcmp(a, "--out"))
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
    if (!strcmp(argv[1], "load") && endpoint && devices && count)
        return load(endpoint, devices, count, conc);
    return usage();
}
