/*
 * otpca-bench-mstore: the manager journal's trust-list writes alone, the
 * part of a window's first open that is the manager's own work after the
 * sync's signatures are checked: a first snapshot of N devices applied in
 * chunks of 2,048 (the cloud's) into an empty journal, then a delta of K
 * changes (devices enrolled elsewhere) in batches of 1,000. Each entry is
 * checked as a synced one is (its key on the curve), so this is what
 * otpca_mstore_snapshot_chunk and otpca_mstore_apply_delta cost per device,
 * without the network, the decoding of the batches or the cloud. CPU time
 * of the thread (and wall time), R rounds on a fresh journal each; the
 * journal lives in a throw-away directory under TMPDIR (default /tmp).
 * Exit status 0 done, 1 a failure, 2 bad usage.
 *
 *   otpca-bench-mstore [--devices N] [--delta K] [--rounds R] [--json]
 *   # defaults: N = 100,000, K = 10,000, R = 3
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"
#include "otpca/common/log.h"
#include "otpca/manager/mstore.h"
#include "otpca/proto/p256.h"
#include "otpca/proto/msg.h"

#define PROG "otpca-bench-mstore"
#define CHUNK 2048
#define DELTA_BATCH 1000

struct entries {
    otpca_device_entry e[CHUNK];
    char serial[CHUNK][16];
    uint8_t mac[6], seed[48], hash[32];
    otpca_p256_soft key;
};

/* Entries [first, first + n): serials SN00000000 on, as the cloud lists
 * them; a snapshot's approved, a delta's enrolled with a certificate hash
 * and an accepted step. */
static void fill(struct entries *x, size_t first, size_t n, uint64_t seq0, int delta)
{
    for (size_t j = 0; j < n; j++) {
        otpca_device_entry *e = &x->e[j];
        snprintf(x->serial[j], sizeof x->serial[j], "SN%08zu", first + j);
        memset(e, 0, sizeof *e);
        e->serial = (otpca_buf){(const uint8_t *)x->serial[j], strlen(x->serial[j])};
        e->seq = seq0 + j + 1;
        e->state = delta ? OTPCA_DEV_ENROLLED : OTPCA_DEV_APPROVED;
        e->mac = (otpca_buf){x->mac, sizeof x->mac};
        e->pubkey = (otpca_buf){x->key.pub, sizeof x->key.pub};
        e->batch = (otpca_buf){(const uint8_t *)"batch-1", 7};
        e->seed = (otpca_buf){x->seed, sizeof x->seed};
        if (delta) {
            e->cert_hash = (otpca_buf){x->hash, sizeof x->hash};
            e->last_step = 60000000;
            e->present |= OTPCA_MSG_BIT(10);
        }
    }
}

static otpca_sync_batch batch_of(struct entries *x, size_t n, uint64_t from, uint64_t to, int kind, int more)
{
    otpca_sync_batch b;
    memset(&b, 0, sizeof b);
    b.kind = (uint64_t)kind;
    b.from = from;
    b.to = to;
    b.entries.items = x->e;
    b.entries.count = n;
    b.seedkey = (otpca_buf){x->key.pub, sizeof x->key.pub};
    if (more)
        b.cursor = (otpca_buf){(const uint8_t *)"more", 4};
    return b;
}

/* One round: the snapshot's and the delta's CPU and wall seconds. */
static int round_run(const char *path, struct entries *x, size_t n, size_t k, double out[4])
{
    otpca_mstore *s = NULL;
    otpca_err ret = otpca_mstore_open(path, &s);
    double c0 = bench_cpu_s(), w0 = bench_now_s();
    if (!ret)
        ret = otpca_mstore_snapshot_begin(s);
    for (size_t i = 0; !ret && i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        fill(x, i, m, i, 0);
        otpca_sync_batch b = batch_of(x, m, 0, n, OTPCA_SYNC_SNAPSHOT, i + m < n);
        ret = otpca_mstore_snapshot_chunk(s, &b);
    }
    if (!ret)
        ret = otpca_mstore_snapshot_commit(s, n);
    out[0] = bench_cpu_s() - c0;
    out[1] = bench_now_s() - w0;
    c0 = bench_cpu_s(), w0 = bench_now_s();
    uint64_t seq = n;
    for (size_t i = 0; !ret && i < k; i += DELTA_BATCH) {
        size_t m = k - i < DELTA_BATCH ? k - i : DELTA_BATCH;
        fill(x, i, m, seq, 1);
        otpca_sync_batch b = batch_of(x, m, seq, seq + m, OTPCA_SYNC_DELTA, 0);
        ret = otpca_mstore_apply_delta(s, &b);
        seq += m;
    }
    out[2] = bench_cpu_s() - c0;
    out[3] = bench_now_s() - w0;
    otpca_mstore_destroy(&s);
    if (ret)
        fprintf(stderr, PROG ": the journal refused a batch: %s\n", otpca_strerror(ret));
    return ret ? -1 : 0;
}

/* The journal file and its WAL and shared-memory files. */
static void remove_journal(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char p[4200];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

static int num(const char *v, size_t lo, size_t hi, size_t *out)
{
    char *end = NULL;
    unsigned long long x = v ? strtoull(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > hi)
        return -1;
    *out = (size_t)x;
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = 100000, k = 10000, rounds = 3;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--devices"))
            bad = num(v, 1, 10000000, &n), i++;
        else if (!strcmp(a, "--delta"))
            bad = num(v, 0, 10000000, &k), i++;
        else if (!strcmp(a, "--rounds"))
            bad = num(v, 1, 100, &rounds), i++;
        else if (!strcmp(a, "--json"))
            json = 1;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "usage: " PROG " [--devices N] [--delta K] [--rounds R] [--json]\n");
            return 2;
        }
    }
    if (k > n)
        k = n; /* the delta changes devices the snapshot wrote */
    otpca_log_init(PROG, OTPCA_LOG_WARN, OTPCA_LOG_TEXT);
    struct entries *x = calloc(1, sizeof *x);
    const char *tmp = getenv("TMPDIR");
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/otpca-bench-mstore.XXXXXX", tmp && *tmp && strlen(tmp) < 4000 ? tmp : "/tmp");
    if (!x || !mkdtemp(dir)) {
        fprintf(stderr, PROG ": no memory or no temporary directory\n");
        free(x);
        return 1;
    }
    snprintf(path, sizeof path, "%s/journal.db", dir);
    memset(x->mac, 0x02, sizeof x->mac);
    memset(x->seed, 0x5a, sizeof x->seed);
    memset(x->hash, 0x77, sizeof x->hash);
    int rc = otpca_p256_soft_generate(&x->key) ? 1 : 0;
    double best[4] = {0, 0, 0, 0}, sum[4] = {0, 0, 0, 0};
    for (size_t r = 0; !rc && r < rounds; r++) {
        double t[4];
        remove_journal(path); /* each round into an empty journal */
        if (round_run(path, x, n, k, t)) {
            rc = 1;
            break;
        }
        for (int j = 0; j < 4; j++) {
            sum[j] += t[j];
            if (r == 0 || t[j] < best[j])
                best[j] = t[j];
        }
    }
    remove_journal(path);
    rmdir(dir);
    otpca_p256_soft_wipe(&x->key);
    free(x);
    if (rc)
        return 1;
    if (json) {
        printf("{\"benchmark\":\"mstore\",\"devices\":%zu,\"delta\":%zu,\"rounds\":%zu,"
               "\"snapshot_cpu_s\":{\"best\":%.4f,\"mean\":%.4f},\"snapshot_wall_s\":{\"best\":%.4f,\"mean\":%.4f},"
               "\"delta_cpu_s\":{\"best\":%.4f,\"mean\":%.4f},\"delta_wall_s\":{\"best\":%.4f,\"mean\":%.4f},"
               "\"snapshot_us_per_device\":%.3f}\n",
               n, k, rounds, best[0], sum[0] / rounds, best[1], sum[1] / rounds, best[2], sum[2] / rounds, best[3],
               sum[3] / rounds, best[0] * 1e6 / (double)n);
        return 0;
    }
    printf(PROG ": the journal's trust-list writes, %zu rounds (best / mean)\n", rounds);
    printf("  first snapshot of %zu devices   CPU %.3f / %.3f s, wall %.3f / %.3f s (%.2f us of CPU a device)\n", n,
           best[0], sum[0] / rounds, best[1], sum[1] / rounds, best[0] * 1e6 / (double)n);
    printf("  delta of %zu changes            CPU %.3f / %.3f s, wall %.3f / %.3f s\n", k, best[2], sum[2] / rounds,
           best[3], sum[3] / rounds);
    return 0;
}
