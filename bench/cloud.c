/*
 * otpca-bench-cloud: the cloud registry against the targets of issue #4,
 * end to end with the real binaries in a throw-away directory: a SoftHSM
 * rig made by `otpca-token rig create`, a store made by `otpca-cloud init`,
 * N devices imported by `otpca-cloud device import --approve`, and
 * `otpca-cloud serve` (2 workers) on loopback, which this process talks to
 * through the client library as manager mgr-01 (requests signed in the
 * rig's manager token, the window opened with the operator's TOTP computed
 * in the operator token). Each measure comes with a baseline taken in the
 * same run:
 *
 *   import    wall time of the import process;
 *             baseline: `sqlite3 .import` of the same CSV into a plain table
 *   snapshot  otpca_cloud_sync from 0, every batch verified and every entry
 *             decoded (otpca_list_next); baseline: the crypto floor measured
 *             in this process (per device one otpca_seed_open and one
 *             otpca_seedbox_seal; per batch one seed box, one token signature
 *             and one verify; the SHA-256 of every signed payload at both
 *             ends), on one core: the request/answer protocol keeps one
 *             batch in flight, so server and client take turns
 *   delta     C devices changed by RecordUploads of REJECTED records, then a
 *             delta sync from the snapshot; baseline: an empty delta
 *   RSS       the server's VmHWM just before SIGTERM; baseline: after start
 *   ingest    records per second through 1, 2, 4 ... `otpca-cloud serve` on
 *             the same store (issue #8), each an ISSUED + CONFIRMED pair as
 *             a window uploads them; afterwards the store must hold exactly
 *             the records sent; baseline: the first instance count's rate
 *
 * --store postgres runs it on a throw-away PostgreSQL cluster
 * (deploy/postgres.sh; baseline of the import: psql \copy); --store both
 * runs every measure on SQLite, then on PostgreSQL, side by side.
 *
 * Targets (issue #4) are for 1,000,000 devices and 1,000 changes and scale
 * linearly with --devices and --changes. A missed target is reported, not
 * an error; a step that fails (a child's exit status, an entry too many or
 * too few, a seed that does not open to the manifest's) is.
 */
#define _GNU_SOURCE /* pipe2 */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "otpca/cloud/client.h"
#include "otpca/cloud/seeds.h"
#include "otpca/cloud/store.h"
#include "otpca/common/hex.h"
#include "otpca/common/log.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "otpca/proto/seedbox.h"
#include "otpca/token/pin.h"
#include "otpca/token/rig.h"
#include "otpca/token/token.h"
#include "otpca/token/uri.h"

#include "benchutil.h"

#define PROG "otpca-bench-cloud"

/* Issue #4's targets, for TARGET_DEVICES devices and TARGET_CHANGES changes. */
#define TARGET_DEVICES 1000000.0
#define TARGET_CHANGES 1000.0
#define TARGET_IMPORT_S 30.0
#define TARGET_SNAPSHOT_S 10.0
#define TARGET_DELTA_MS 100.0

#define DEFAULT_DEVICES 1000000ul
#define DEFAULT_CHANGES 1000ul
#define MAX_DEVICES 10000000ul /* serials have 8 digits */
#define MAX_CHANGES 1000000ul
#define SERIAL_PREFIX "bench-"
#define SERIAL_FMT SERIAL_PREFIX "%08lu"
#define SEED_LEN 20
#define MANAGER_ID "mgr-01"
#define MANAGER_TOKEN "otpca-mgr-01"
#define OPERATOR_ID "otpca-op-01" /* the rig's operator token label, as tests/cloudtest.h registers it */
#define WORKERS 2
#define SYNC_DEFAULT_MAX 2048 /* the server's entries per SyncBatch for max 0 (server.c) */
#define UPLOAD_MAX 256        /* records per RecordUpload */
#define REJECT_REASON 8
#define REPEATS 5             /* empty and repeated deltas: median of this many */
#define SAMPLES 64            /* snapshot entries whose seed is opened and compared */
#define FLOOR_POOL 1024       /* sealed seeds the floor walks */
#define FLOOR_ITERS 100000u   /* seed open + seal */
#define FLOOR_BATCH_ITERS 20u /* seed box, token signature, verify, payload hash */
#define FLOOR_HASH_BYTES (300u * 1024u) /* about one 2048-entry SyncBatch */

#define STORE_SQLITE 1
#define STORE_PG 2

#define INGEST_THREADS 4      /* client connections uploading at once, each to every instance */
#define INGEST_MAX_INSTANCES 8
#define INGEST_CHECKS 16      /* devices per connection read back from the store after a round */
#define DEFAULT_RECORDS 20000ul /* records per instance count */
#define MAX_RECORDS 1000000ul

/* Bounds on every wait (seconds). */
#define LIMIT_SHORT 120.0
#define LIMIT_RIG 600.0
#define LIMIT_SERVER_START 30.0
#define LIMIT_SERVER_STOP 20.0 /* the server drains for up to 10 s */
#define LIMIT_NOTICES 10.0
#define KILL_GRACE 5.0
#define CLIENT_TIMEOUT_MS 120000

/* ---- state -------------------------------------------------------------- */

struct child_end {
    int status;     /* exit status, or 128 + signal */
    double secs;    /* wall time from before fork to reaping */
    long maxrss_kb; /* its peak RSS (getrusage) */
};

/* CPU seconds of a process, by thread: the main thread (the server's
 * broker), ZeroMQ's I/O threads, and the rest (workers, ZAP). */
struct proc_cpu {
    double main, zmq, rest;
};

/* One snapshot entry kept to check its seed afterwards. */
struct sample {
    unsigned long idx;
    uint8_t serial[OTPCA_SEEDBOX_SERIAL_MAX];
    size_t serial_len;
    uint8_t sealed[OTPCA_SEEDBOX_SEALED_MAX];
    size_t sealed_len;
    uint8_t eph[OTPCA_P256_PUB_LEN];
};

/* What a sync's batches held (the callback's state). */
struct walk {
    unsigned long devices;
    uint64_t kind; /* OTPCA_SYNC_SNAPSHOT or OTPCA_SYNC_DELTA: every batch must be one */
    uint64_t batches, entries, seeded, bytes, distinct;
    uint64_t tail;  /* snapshot: delta batches after the chunks */
    uint64_t boxed; /* batches with a seed box (seedkey) */
    uint8_t *seen;          /* devices bytes: 1 once an entry of the device came */
    const uint8_t *changed; /* delta: the devices that must come, NULL: any */
    struct sample *samples; /* snapshot: every stride-th batch's first entry */
    size_t nsamples, stride;
    const char *why; /* what did not check out */
};

struct floor_cost {
    uint64_t iters;
    double dev_us, dev_wall_us;     /* seed open + seed-box seal */
    double box_us, sign_us, ver_us; /* per batch */
    double sha_ns_per_byte;         /* SHA-256 of a signed batch's payload */
};

struct results {
    int pg;                    /* this pass ran on PostgreSQL */
    char conf[PATH_MAX];       /* its cloud.conf */
    double rig_s, manifest_s;
    uint64_t manifest_bytes;
    double baseline_s, import_s;
    long import_rss_kb;
    unsigned long imported;
    char import_line[256];
    struct floor_cost fl;
    double snap_s;
    uint64_t snap_to;
    struct walk snap;
    struct proc_cpu srv0, srv1;
    double cli_cpu;
    unsigned samples_ok;
    double empty_ms[REPEATS];
    uint64_t empty_bytes;
    double upload_s;
    unsigned uploads;
    double delta_first_ms, delta_ms[REPEATS];
    struct walk delta;
    uint64_t delta_to;
    unsigned notices, notices_approved;
    long rss_start_kb, rss_peak_kb, rss_now_kb;
    int server_exit;
    struct ingest {
        unsigned instances;
        uint64_t records, uploads, devices;
        uint64_t checked;  /* devices read back from the store: enrolled by mgr-01 with the certificate */
        uint64_t replayed; /* records uploaded again afterwards: acknowledged, none stored twice */
        double secs;
    } ingest[INGEST_MAX_INSTANCES];
    size_t ningest;
    double run_s, busy_s, steal_s, own_s; /* the machine during the run */
};

/* One RecordUpload's records and the bytes they point to. */
struct batch {
    otpca_record rec[UPLOAD_MAX];
    uint8_t ids[UPLOAD_MAX][16], audit[32];
    char serials[UPLOAD_MAX][32];
    size_t n;
};

struct run {
    unsigned long devices, changes, records;
    int json, keep;
    int stores;                    /* --store: STORE_SQLITE, STORE_PG or both bits */
    int pg;                        /* the pass running now is on PostgreSQL (a throw-away cluster) */
    char pg_dir[PATH_MAX];         /* ... once started ("" before) */
    char store[PATH_MAX + 64];     /* cloud.conf's store: the SQLite file or the cluster's URL */
    unsigned instances[INGEST_MAX_INSTANCES];
    size_t ninstances;
    pthread_mutex_t sign_mu;       /* the manager token's session: one signature at a time */
    struct bench_host host;
    const char *module;
    char ecc[160];
    char bin_cloud[PATH_MAX], bin_token[PATH_MAX];
    struct bench_rig tmp; /* the throw-away directory */
    char rig[PATH_MAX], conf[PATH_MAX], db[PATH_MAX], manifest[PATH_MAX], log[PATH_MAX];
    char server_log[PATH_MAX];
    const char *sfx; /* in the names of the pass's files: "" or "-pg" (the second pass of --store both) */
    uint8_t *seeds;   /* devices x SEED_LEN: the manifest's seeds */
    uint8_t *changed; /* devices bytes: 1 for each device the uploads change */
    char node_pub[2 * OTPCA_P256_PUB_LEN + 1];
    uint8_t cloud_curve[32], cloud_pub[OTPCA_P256_PUB_LEN];
    uint8_t curve_pub[32], curve_sec[32]; /* mgr-01's CURVE key pair */
    otpca_p11_t *p11;
    otpca_token_t *mgr, *op, *cloud;
    otpca_obj_t mgr_key, op_seed, cloud_sign, cloud_wrap;
    uint8_t mgr_pub[OTPCA_P256_PUB_LEN];
    pid_t server;
    int server_out; /* read end of the server's stdout, kept open while it runs */
    char listen[256], notices[256];
    otpca_cloud_client *client;
    otpca_cloud_lease lease;
    struct batch batch; /* make_changes' uploads */
    uint8_t *cert;    /* the DER certificate the ingest's ISSUED records carry */
    size_t cert_len;
    char failed[768]; /* the first failure; "" while none */
    struct results pass[2]; /* one per store, in the order run: SQLite first */
    size_t npass;
    struct results *res;    /* the pass running now */
};

/* ---- small helpers ------------------------------------------------------ */

static int fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct run *r, const char *fmt, ...)
{
    if (!r->failed[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->failed, sizeof r->failed, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int lib_fail(struct run *r, otpca_err err, const char *what)
{
    return fail(r, "%s: %s", what, otpca_strerror(err));
}

static void progress(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const struct run *r, const char *fmt, ...)
{
    if (r->json)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* 1234567 as "1,234,567" (at most 26 characters). */
static const char *thousands(char *buf, size_t cap, uint64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, size_t n)
{
    double s[REPEATS];
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double minimum(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL); /* a signal ends it early: the callers loop */
}

/* The value after "key = " in a file of such lines. */
static int file_value(const char *path, const char *key, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    size_t kl = strlen(key);
    int found = 0;
    if (!f)
        return 0;
    for (int k = 0; k < 1000 && !found && fgets(line, sizeof line, f); k++)
        if (!strncmp(line, key, kl) && !strncmp(line + kl, " = ", 3)) {
            line[strcspn(line, "\r\n")] = '\0';
            found = snprintf(out, cap, "%s", line + kl + 3) < (int)cap;
        }
    fclose(f);
    return found;
}

/* The first line of a file starting with prefix, newline removed. */
static int file_line(const char *path, const char *prefix, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int found = 0;
    if (!f)
        return 0;
    for (int k = 0; k < 1000 && !found && fgets(line, sizeof line, f); k++)
        if (!strncmp(line, prefix, strlen(prefix))) {
            line[strcspn(line, "\r\n")] = '\0';
            found = snprintf(out, cap, "%s", line) < (int)cap;
        }
    fclose(f);
    return found;
}

/* Field col (0-based) of data row `row` (1 = the first after the header)
 * of a CSV file without quoting, such as the rig's manifest. */
static int csv_field(const char *path, unsigned row, unsigned col, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    int found = 0;
    if (!f)
        return 0;
    for (unsigned k = 0; k <= row && fgets(line, sizeof line, f); k++) {
        if (k != row)
            continue;
        char *p = line;
        for (unsigned c = 0; c < col && p; c++)
            p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        if (p) {
            p[strcspn(p, ",\r\n")] = '\0';
            found = *p && snprintf(out, cap, "%s", p) < (int)cap;
        }
    }
    fclose(f);
    return found;
}

/* The last `lines` lines of a file on stderr (after a failure: the logs go
 * with the throw-away directory). */
static void dump_tail(const char *path, const char *title, unsigned lines)
{
    FILE *f = fopen(path, "r");
    char buf[65536];
    if (!f)
        return;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    long from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
    size_t n = size > 0 && fseek(f, from, SEEK_SET) == 0 ? fread(buf, 1, sizeof buf - 1, f) : 0;
    fclose(f);
    buf[n] = '\0';
    const char *p = buf + n;
    unsigned k = 0;
    if (p > buf && p[-1] == '\n')
        p--;
    while (p > buf && !(p[-1] == '\n' && ++k == lines))
        p--;
    if (n)
        fprintf(stderr, "---- %s (last %u lines) ----\n%s%s", title, lines, p, buf[n - 1] == '\n' ? "" : "\n");
}

/* ---- children: every one in a process group of its own (a Ctrl-C reaches
 * only us; we stop them), dying with us (PR_SET_PDEATHSIG) ----------------- */

static void log_command(const struct run *r, char *const argv[], const char *in, const char *out)
{
    FILE *f = fopen(r->log, "a");
    if (!f)
        return;
    fputs("$", f);
    for (size_t i = 0; argv[i]; i++)
        fprintf(f, strpbrk(argv[i], " ;?&'") ? " '%s'" : " %s", argv[i]);
    if (in)
        fprintf(f, " < %s", in);
    if (out)
        fprintf(f, " > %s", out);
    fputc('\n', f);
    fclose(f);
}

/* Starts argv[0] (a path, or a name looked up in PATH). stdin: the file in,
 * or an empty pipe; stdout: the file out, else out_fd, else the log;
 * stderr: the file err, else the log. -1 after a failure is recorded. */
static pid_t spawn(struct run *r, char *const argv[], const char *in, const char *out, int out_fd,
                   const char *err)
{
    int in_fd = -1, o_fd = -1, e_fd = -1, log_fd, p[2];
    log_command(r, argv, in, out);
    log_fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (in) {
        in_fd = open(in, O_RDONLY | O_CLOEXEC);
    } else if (pipe2(p, O_CLOEXEC) == 0) {
        in_fd = p[0];
        close(p[1]); /* EOF at once */
    }
    if (out)
        o_fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (err)
        e_fd = open(err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int fd1 = out ? o_fd : out_fd >= 0 ? out_fd : log_fd, fd2 = err ? e_fd : log_fd;
    pid_t parent = getpid(), pid = -1;
    if (log_fd >= 0 && in_fd >= 0 && fd1 >= 0 && fd2 >= 0)
        pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls from here to exec. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        if (dup2(in_fd, 0) < 0 || dup2(fd1, 1) < 0 || dup2(fd2, 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    int saved = errno;
    if (in_fd >= 0)
        close(in_fd);
    if (o_fd >= 0)
        close(o_fd);
    if (e_fd >= 0)
        close(e_fd);
    if (log_fd >= 0)
        close(log_fd);
    if (pid < 0)
        fail(r, "cannot start %s: %s", argv[0], strerror(saved));
    return pid;
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Signals pid's process group (spawn makes each child a group leader), so
 * that what a script runs (deploy/postgres.sh: initdb) stops with it. */
static void kill_group(pid_t pid, int sig)
{
    if (kill(-pid, sig) != 0)
        kill(pid, sig);
}

/* Waits for pid, polling every 2 ms, at most limit seconds from t0; when
 * the limit passes, or a signal stops us and stop_on_signal, SIGTERM, then
 * SIGKILL after KILL_GRACE s, to its process group. e is filled either
 * way; 0 if it ended by itself, -1 if it had to be ended. */
static int reap(pid_t pid, double t0, double limit, int stop_on_signal, struct child_end *e)
{
    struct rusage ru;
    int status = 0, killed = 0;
    double term_at = 0;
    for (;;) {
        pid_t w = wait4(pid, &status, WNOHANG, &ru);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            status = 127 << 8;
            memset(&ru, 0, sizeof ru);
            break;
        }
        double now = bench_now_s();
        if (!killed && ((stop_on_signal && bench_stop) || now - t0 > limit)) {
            kill_group(pid, SIGTERM);
            killed = 1;
            term_at = now;
        } else if (killed == 1 && now - term_at > KILL_GRACE) {
            kill_group(pid, SIGKILL);
            killed = 2;
        }
        sleep_s(0.002);
    }
    e->secs = bench_now_s() - t0;
    e->status = exit_code(status);
    e->maxrss_kb = ru.ru_maxrss;
    return killed ? -1 : 0;
}

/* Runs a command to its end (a Ctrl-C stops it unless stop_on_signal is
 * 0: a clean-up that must run to its end, bounded by limit all the same);
 * 0 when it exited 0. */
static int run_cmd_ex(struct run *r, const char *what, char *const argv[], const char *in, const char *out,
                      double limit, struct child_end *e, int stop_on_signal)
{
    struct child_end scratch;
    if (!e)
        e = &scratch;
    double t0 = bench_now_s();
    pid_t pid = spawn(r, argv, in, out, -1, NULL);
    if (pid < 0)
        return -1;
    if (reap(pid, t0, limit, stop_on_signal, e) != 0)
        return fail(r, "%s: %s", what, stop_on_signal && bench_stop ? "interrupted" : "did not finish in time, stopped");
    if (e->status != 0)
        return fail(r, "%s: exit status %d", what, e->status);
    return 0;
}

static int run_cmd(struct run *r, const char *what, char *const argv[], const char *in, const char *out,
                   double limit, struct child_end *e)
{
    return run_cmd_ex(r, what, argv, in, out, limit, e, 1);
}

/* ---- /proc: the server's memory and CPU time ---------------------------- */

static long proc_status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    long kb = -1;
    size_t kl = strlen(key);
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    for (int k = 0; k < 200 && kb < 0 && fgets(line, sizeof line, f); k++)
        if (!strncmp(line, key, kl) && line[kl] == ':')
            kb = strtol(line + kl + 1, NULL, 10);
    fclose(f);
    return kb;
}

static int proc_cpu(pid_t pid, struct proc_cpu *c)
{
    char path[96];
    long tick = sysconf(_SC_CLK_TCK);
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    DIR *d = opendir(path);
    if (!d || tick <= 0) {
        if (d)
            closedir(d);
        return -1;
    }
    struct dirent *de;
    for (int k = 0; k < 1000 && (de = readdir(d)) != NULL; k++) {
        char buf[1024];
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        if (snprintf(path, sizeof path, "/proc/%ld/task/%.20s/stat", (long)pid, de->d_name) >= (int)sizeof path)
            continue;
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* tid (comm) state ppid ... utime (14) stime (15) */
        char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (!lp || !rp ||
            sscanf(rp + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
            continue;
        double s = (double)(ut + st) / (double)tick;
        if (strtol(de->d_name, NULL, 10) == (long)pid)
            c->main += s;
        else if (!strncmp(lp + 1, "ZMQbg/", 6))
            c->zmq += s;
        else
            c->rest += s;
    }
    closedir(d);
    return 0;
}

/* CPU seconds the whole machine was busy (user, nice, system, irq,
 * softirq) and stolen by the hypervisor, from /proc/stat. */
static int machine_cpu(double *busy, double *steal)
{
    unsigned long long v[8] = {0};
    long tick = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");
    int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                       &v[6], &v[7])
              : 0;
    if (f)
        fclose(f);
    if (n != 8 || tick <= 0)
        return -1;
    *busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / (double)tick;
    *steal = (double)v[7] / (double)tick;
    return 0;
}

/* CPU seconds of this process and of its reaped children. */
static double tree_cpu_s(void)
{
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    getrusage(RUSAGE_CHILDREN, &b);
    return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec + b.ru_stime.tv_sec) +
           (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec + b.ru_stime.tv_usec) * 1e-6;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ---- set-up: rig, manifest, store ---------------------------------------- */

static int find_binaries(struct run *r)
{
    char self[PATH_MAX];
    const char *dir = getenv("OTPCA_BIN");
    if (!dir || !*dir) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return fail(r, "cannot find my own directory (set OTPCA_BIN)");
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (!slash)
            return fail(r, "cannot find my own directory (set OTPCA_BIN)");
        *slash = '\0';
        dir = self;
    }
    if (join(r->bin_cloud, sizeof r->bin_cloud, dir, "otpca-cloud") || access(r->bin_cloud, X_OK) ||
        join(r->bin_token, sizeof r->bin_token, dir, "otpca-token") || access(r->bin_token, X_OK))
        return fail(r, "no otpca-cloud and otpca-token in %s (build the targets otpca-cloud-cli and "
                       "otpca-token-cli, or set OTPCA_BIN)", dir);
    return 0;
}

static int make_rig(struct run *r)
{
    struct child_end e;
    char conf[PATH_MAX];
    char *argv[] = {r->bin_token, "rig", "create", r->rig, "--nodes", "1", "--managers", "1", NULL};
    if (join(r->rig, sizeof r->rig, r->tmp.dir, "rig") || join(conf, sizeof conf, r->rig, "softhsm2.conf"))
        return fail(r, "path too long");
    progress(r, "creating the SoftHSM rig (otpca-token rig create %s --nodes 1 --managers 1) ...", r->rig);
    if (run_cmd(r, "otpca-token rig create", argv, NULL, NULL, LIMIT_RIG, &e))
        return -1;
    r->res->rig_s = e.secs;
    /* For us and every child from now on. */
    if (setenv("SOFTHSM2_CONF", conf, 1) != 0)
        return fail(r, "setenv: %s", strerror(errno));
    return 0;
}

static int fill_random(uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR && !bench_stop)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* N rows: unique serials, locally administered MACs, the rig node's public
 * key on every row, a random 20-byte seed each (kept for the checks). */
static int write_manifest(struct run *r)
{
    char rig_manifest[PATH_MAX];
    static const char hex[] = "0123456789abcdef";
    double t0 = bench_now_s();
    if (join(rig_manifest, sizeof rig_manifest, r->rig, "manifest.csv") ||
        !csv_field(rig_manifest, 1, 2, r->node_pub, sizeof r->node_pub) || strlen(r->node_pub) < 66)
        return fail(r, "the rig's manifest.csv has no public key in its first row");
    if (!(r->seeds = malloc(r->devices * SEED_LEN)) || !(r->changed = calloc(r->devices, 1)))
        return fail(r, "out of memory for %lu seeds", r->devices);
    if (fill_random(r->seeds, r->devices * SEED_LEN))
        return fail(r, "getrandom: %s", bench_stop ? "interrupted" : strerror(errno));
    int fd = open(r->manifest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600); /* seeds: secret */
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return fail(r, "%s: %s", r->manifest, strerror(errno));
    }
    static char iobuf[1 << 20];
    setvbuf(f, iobuf, _IOFBF, sizeof iobuf);
    fputs("serial,mac,public_key,seed,algorithm,digits,period\n", f);
    int ok = 1;
    for (unsigned long i = 1; ok && i <= r->devices; i++) {
        char seed_hex[2 * SEED_LEN + 1];
        const uint8_t *s = r->seeds + (i - 1) * SEED_LEN;
        for (int k = 0; k < SEED_LEN; k++) {
            seed_hex[2 * k] = hex[s[k] >> 4];
            seed_hex[2 * k + 1] = hex[s[k] & 15];
        }
        seed_hex[2 * SEED_LEN] = '\0';
        ok = fprintf(f, SERIAL_FMT ",02:bc:%02lx:%02lx:%02lx:%02lx,%s,%s,SHA1,6,30\n", i, (i >> 24) & 0xff,
                     (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, r->node_pub, seed_hex) > 0 &&
             !(i % 65536 == 0 && bench_stop);
    }
    r->res->manifest_bytes = ok ? (uint64_t)ftell(f) : 0;
    if (fclose(f) != 0 || !ok)
        return fail(r, "%s: %s", r->manifest, bench_stop ? "interrupted" : "write error");
    r->res->manifest_s = bench_now_s() - t0;
    return 0;
}

static int write_file(struct run *r, const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return fail(r, "%s: %s", path, strerror(errno));
    }
    int ok = fputs(text, f) >= 0;
    if (fclose(f) != 0 || !ok)
        return fail(r, "%s: write error", path);
    return 0;
}

/* The configuration, `otpca-cloud init`, and the keys a manager pins. */
static int init_store(struct run *r)
{
    char text[4 * PATH_MAX], out[PATH_MAX], value[256];
    size_t len = 0;
    int n = snprintf(text, sizeof text,
                     "store = %s\ntoken = pkcs11:token=%s?pin-source=file:%s/pins/%s.pin\n"
                     "listen = tcp://127.0.0.1:*\nnotices = tcp://127.0.0.1:*\nworkers = %d\nlog_level = info\n",
                     r->store, OTPCA_RIG_CLOUD_TOKEN, r->rig, OTPCA_RIG_CLOUD_TOKEN, WORKERS);
    if (n < 0 || (size_t)n >= sizeof text || join(out, sizeof out, r->tmp.dir, "init.out"))
        return fail(r, "path too long");
    if (write_file(r, r->conf, text))
        return -1;
    char *argv[] = {r->bin_cloud, "--config", r->conf, "init", NULL};
    if (run_cmd(r, "otpca-cloud init", argv, NULL, out, LIMIT_SHORT, NULL))
        return -1;
    if (!file_value(out, "cloud_curve_key", value, sizeof value) || strlen(value) != 40 ||
        !zmq_z85_decode(r->cloud_curve, value))
        return fail(r, "otpca-cloud init printed no cloud_curve_key");
    if (!file_value(out, "cloud_sign_key", value, sizeof value) ||
        otpca_hex_decode(value, strlen(value), r->cloud_pub, sizeof r->cloud_pub, &len) || len != 65)
        return fail(r, "otpca-cloud init printed no cloud_sign_key");
    return 0;
}

/* ---- step 3: import, and sqlite3 .import of the same CSV ----------------- */

static int import_baseline(struct run *r)
{
    char db[PATH_MAX], script[PATH_MAX], out[PATH_MAX], text[2 * PATH_MAX], count[64] = "";
    struct child_end e;
    if (join(db, sizeof db, r->tmp.dir, "baseline.db") || join(script, sizeof script, r->tmp.dir, "baseline.sql") ||
        join(out, sizeof out, r->tmp.dir, "baseline.out"))
        return fail(r, "path too long");
    /* The store's durability (WAL, synchronous=FULL); one transaction
     * (.import makes one); no key, no index, no check, no crypto. */
    int n = snprintf(text, sizeof text,
                     "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\n"
                     "CREATE TABLE devices(serial TEXT, mac TEXT, public_key TEXT, seed TEXT, algorithm TEXT, "
                     "digits INTEGER, period INTEGER);\n"
                     ".import --csv --skip 1 \"%s\" devices\n",
                     r->manifest);
    if (n < 0 || (size_t)n >= sizeof text || write_file(r, script, text))
        return fail(r, "cannot write %s", script);
    char *argv[] = {"sqlite3", "-batch", "-bail", db, NULL};
    progress(r, "baseline: sqlite3 .import of the same CSV into a plain table ...");
    if (run_cmd(r, "sqlite3 .import (baseline)", argv, script, out, LIMIT_SHORT + (double)r->devices * 1e-3, &e))
        return -1;
    r->res->baseline_s = e.secs;
    char *cargv[] = {"sqlite3", "-batch", "-bail", db, "SELECT count(*) FROM devices;", NULL};
    if (run_cmd(r, "sqlite3 count (baseline)", cargv, NULL, out, LIMIT_SHORT, NULL))
        return -1;
    if (!file_line(out, "", count, sizeof count) || strtoul(count, NULL, 10) != r->devices)
        return fail(r, "sqlite3 .import (baseline) stored %s rows, not %lu", count, r->devices);
    unlink(db); /* 200+ MB we do not need any more */
    return 0;
}

/* On PostgreSQL: psql's \copy of the same CSV into a plain table of the
 * store's database (the server's default durability, as the store's:
 * synchronous_commit on), counted, then dropped. */
static int import_baseline_pg(struct run *r)
{
    char out[PATH_MAX], copy[2 * PATH_MAX], count[64] = "";
    struct child_end e;
    if (join(out, sizeof out, r->tmp.dir, "baseline.out"))
        return fail(r, "path too long");
    int n = snprintf(copy, sizeof copy, "\\copy bench_baseline FROM '%s' WITH (FORMAT csv, HEADER true)",
                     r->manifest);
    if (n < 0 || (size_t)n >= sizeof copy || strchr(r->manifest, '\''))
        return fail(r, "manifest path unusable in psql");
    char *argv[] = {"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", r->store, "-c",
                    "CREATE TABLE bench_baseline(serial TEXT, mac TEXT, public_key TEXT, seed TEXT, algorithm TEXT, "
                    "digits INTEGER, period INTEGER)",
                    "-c", copy, NULL};
    progress(r, "baseline: psql \\copy of the same CSV into a plain table ...");
    if (run_cmd(r, "psql \\copy (baseline)", argv, NULL, out, LIMIT_SHORT + (double)r->devices * 1e-3, &e))
        return -1;
    r->res->baseline_s = e.secs;
    char *cargv[] = {"psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", r->store, "-c",
                     "SELECT count(*) FROM bench_baseline", "-c", "DROP TABLE bench_baseline", NULL};
    if (run_cmd(r, "psql count (baseline)", cargv, NULL, out, LIMIT_SHORT, NULL))
        return -1;
    if (!file_line(out, "", count, sizeof count) || strtoul(count, NULL, 10) != r->devices)
        return fail(r, "psql \\copy (baseline) stored %s rows, not %lu", count, r->devices);
    return 0;
}

static int import_devices(struct run *r)
{
    char out[PATH_MAX];
    struct child_end e;
    unsigned long imported = 0, present = 0, rejected = 0;
    if (join(out, sizeof out, r->tmp.dir, "import.out"))
        return fail(r, "path too long");
    char *argv[] = {r->bin_cloud, "--config", r->conf, "device", "import", r->manifest, "--approve", NULL};
    progress(r, "import: otpca-cloud device import of %lu devices --approve ...", r->devices);
    if (run_cmd(r, "otpca-cloud device import", argv, NULL, out, LIMIT_SHORT + (double)r->devices * 1e-3, &e))
        return -1;
    r->res->import_s = e.secs;
    r->res->import_rss_kb = e.maxrss_kb;
    if (!file_line(out, "imported ", r->res->import_line, sizeof r->res->import_line) ||
        sscanf(r->res->import_line, "imported %lu devices (%*[^)]), %lu already present, %lu rejected", &imported,
               &present, &rejected) != 3)
        return fail(r, "otpca-cloud device import printed no summary");
    r->res->imported = imported;
    if (imported != r->devices || present || rejected)
        return fail(r, "import: %s (expected %lu new devices)", r->res->import_line, r->devices);
    return 0;
}

/* ---- step 4: manager, operator, tokens, server, client ------------------- */

/* The DER of the certificate in pem (openssl x509), for the ingest's
 * ISSUED records: a real X.509 certificate of the size a window issues
 * (the cloud stores it and hashes it; it does not parse it). */
static int load_cert(struct run *r, const char *pem)
{
    char der[PATH_MAX];
    if (join(der, sizeof der, r->tmp.dir, "mgr-01.der"))
        return fail(r, "path too long");
    char *argv[] = {"openssl", "x509", "-in", (char *)pem, "-outform", "DER", "-out", der, NULL};
    if (run_cmd(r, "openssl x509 -outform DER", argv, NULL, NULL, LIMIT_SHORT, NULL))
        return -1;
    FILE *f = fopen(der, "rb");
    if (!f)
        return fail(r, "%s: %s", der, strerror(errno));
    r->cert = malloc(OTPCA_STORE_CERT_MAX);
    r->cert_len = r->cert ? fread(r->cert, 1, OTPCA_STORE_CERT_MAX, f) : 0;
    fclose(f);
    if (!r->cert_len || r->cert_len == OTPCA_STORE_CERT_MAX)
        return fail(r, "%s: empty or larger than %d bytes", der, OTPCA_STORE_CERT_MAX);
    return 0;
}

static int register_parties(struct run *r)
{
    char pem[PATH_MAX], seed_file[PATH_MAX], ops[PATH_MAX], uri[2 * PATH_MAX], z85pub[41], z85sec[41];
    char seed_hex[2 * OTPCA_SEED_MAX + 2];
    if (join(pem, sizeof pem, r->tmp.dir, "mgr-01.pem") || join(seed_file, sizeof seed_file, r->tmp.dir, "op.seed") ||
        join(ops, sizeof ops, r->rig, "operators.csv"))
        return fail(r, "path too long");
    int n = snprintf(uri, sizeof uri, "pkcs11:token=%s;object=%s?pin-source=file:%s/pins/%s.pin", MANAGER_TOKEN,
                     OTPCA_RIG_MANAGER_KEY, r->rig, MANAGER_TOKEN);
    if (n < 0 || (size_t)n >= sizeof uri)
        return fail(r, "path too long");
    char *cert[] = {r->bin_token, "cert", "selfsign", uri, "--cn", MANAGER_ID, "--ca", "--out", pem, NULL};
    if (run_cmd(r, "otpca-token cert selfsign", cert, NULL, NULL, LIMIT_SHORT, NULL) || (!r->cert && load_cert(r, pem)))
        return -1;
    if (zmq_curve_keypair(z85pub, z85sec) != 0 || !zmq_z85_decode(r->curve_pub, z85pub) ||
        !zmq_z85_decode(r->curve_sec, z85sec))
        return fail(r, "zmq_curve_keypair failed");
    explicit_bzero(z85sec, sizeof z85sec);
    char *mgr[] = {r->bin_cloud, "--config", r->conf, "manager", "add", MANAGER_ID, "--ca-cert", pem, "--curve-key",
                   z85pub, NULL};
    if (run_cmd(r, "otpca-cloud manager add", mgr, NULL, NULL, LIMIT_SHORT, NULL))
        return -1;
    /* The rig's operator: its seed from operators.csv (row 1, column 3). */
    if (!csv_field(ops, 1, 2, seed_hex, sizeof seed_hex - 1))
        return fail(r, "the rig's operators.csv has no seed");
    strcat(seed_hex, "\n");
    int w = write_file(r, seed_file, seed_hex);
    explicit_bzero(seed_hex, sizeof seed_hex);
    if (w)
        return -1;
    char *op[] = {r->bin_cloud, "--config", r->conf, "operator", "add", OPERATOR_ID, "--seed-file", seed_file, NULL};
    if (run_cmd(r, "otpca-cloud operator add", op, NULL, NULL, LIMIT_SHORT, NULL))
        return -1;
    char *allow[] = {r->bin_cloud, "--config", r->conf, "operator", "allow", OPERATOR_ID, "--manager", MANAGER_ID, NULL};
    return run_cmd(r, "otpca-cloud operator allow", allow, NULL, NULL, LIMIT_SHORT, NULL);
}

static int open_token(struct run *r, const char *label, otpca_token_t **tok)
{
    char uri_s[128], pin_path[PATH_MAX], pins[PATH_MAX];
    otpca_p11_uri uri;
    memset(&uri, 0, sizeof uri);
    snprintf(uri_s, sizeof uri_s, "pkcs11:token=%s", label);
    if (join(pins, sizeof pins, r->rig, "pins") ||
        snprintf(pin_path, sizeof pin_path, "%s/%s.pin", pins, label) >= (int)sizeof pin_path)
        return fail(r, "path too long");
    otpca_err err = otpca_p11_uri_parse(uri_s, &uri);
    if (!err) {
        otpca_pin_src pin = {.kind = OTPCA_PIN_FILE, .path = pin_path};
        err = otpca_token_open_uri(r->p11, &uri, &pin, tok);
    }
    otpca_p11_uri_clear(&uri);
    if (err)
        return fail(r, "token %s: %s", label, otpca_strerror(err));
    return 0;
}

/* The manager, operator and cloud tokens in this process: requests are
 * signed and the TOTP computed in the tokens, as a manager would. */
static int open_tokens(struct run *r)
{
    otpca_err err = otpca_p11_new(r->module, &r->p11);
    if (err)
        return fail(r, "PKCS#11 module %s: %s", r->module, otpca_strerror(err));
    if (open_token(r, MANAGER_TOKEN, &r->mgr) || open_token(r, OPERATOR_ID, &r->op) ||
        open_token(r, OTPCA_RIG_CLOUD_TOKEN, &r->cloud))
        return -1;
    if ((err = otpca_token_find(r->mgr, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_MANAGER_KEY, NULL, 0, &r->mgr_key)) ||
        (err = otpca_token_pubkey_sec1(r->mgr, r->mgr_key, r->mgr_pub)) ||
        (err = otpca_token_find(r->op, OTPCA_OBJ_SECRET_KEY, OTPCA_RIG_OPERATOR_SEED, NULL, 0, &r->op_seed)) ||
        (err = otpca_token_find(r->cloud, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_CLOUD_KEY, NULL, 0, &r->cloud_sign)) ||
        (err = otpca_token_find(r->cloud, OTPCA_OBJ_SECRET_KEY, OTPCA_RIG_CLOUD_WRAP, NULL, 0, &r->cloud_wrap)))
        return lib_fail(r, err, "token keys");
    return 0;
}

static otpca_err mgr_sign(void *ctx, const uint8_t digest[32], uint8_t sig[OTPCA_P256_SIG_LEN])
{
    struct run *r = ctx;
    size_t len = OTPCA_P256_SIG_LEN;
    pthread_mutex_lock(&r->sign_mu); /* the ingest threads share the token session */
    otpca_err err = otpca_token_sign_digest(r->mgr, r->mgr_key, digest, 32, OTPCA_SIG_RAW, sig, &len);
    pthread_mutex_unlock(&r->sign_mu);
    return err;
}

static otpca_err mgr_ecdh(void *ctx, const uint8_t peer[OTPCA_P256_PUB_LEN], uint8_t z[32])
{
    struct run *r = ctx;
    return otpca_token_ecdh(r->mgr, r->mgr_key, peer, OTPCA_P256_PUB_LEN, z);
}

/* `otpca-cloud serve`, up once it printed "listening EP notices EP"
 * (listen and notices: 256 bytes each); *out is the read end of its
 * stdout, kept open while it runs. */
static int serve_start(struct run *r, const char *log, pid_t *pid, int *out, char *listen, char *notices)
{
    int p[2];
    char line[600] = "";
    size_t used = 0;
    if (pipe2(p, O_CLOEXEC) != 0)
        return fail(r, "pipe: %s", strerror(errno));
    char *argv[] = {r->bin_cloud, "--config", r->conf, "serve", NULL};
    double t0 = bench_now_s();
    *pid = spawn(r, argv, NULL, NULL, p[1], log);
    close(p[1]);
    *out = p[0];
    if (*pid < 0)
        return -1;
    while (used < sizeof line - 1 && !strchr(line, '\n') && !bench_stop && bench_now_s() - t0 < LIMIT_SERVER_START) {
        struct pollfd pf = {*out, POLLIN, 0};
        int rc = poll(&pf, 1, 100);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc <= 0)
            continue;
        ssize_t n = read(*out, line + used, sizeof line - 1 - used);
        if (n <= 0)
            break; /* it closed stdout: it is gone */
        used += (size_t)n;
        line[used] = '\0';
    }
    if (sscanf(line, "listening %255s notices %255s", listen, notices) != 2)
        return fail(r, "otpca-cloud serve did not start%s", bench_stop ? " (interrupted)" : "");
    return 0;
}

/* SIGTERM and wait (bounded, also after Ctrl-C: it is stopping already);
 * the exit status, or -1 if it had to be killed. */
static int serve_stop(pid_t *pid, int *out)
{
    struct child_end e;
    int rc = 0;
    if (*pid > 0) {
        kill(*pid, SIGTERM);
        rc = reap(*pid, bench_now_s(), LIMIT_SERVER_STOP, 0, &e) ? -1 : e.status;
    }
    *pid = -1;
    if (*out >= 0)
        close(*out);
    *out = -1;
    return rc;
}

static int server_start(struct run *r)
{
    if (serve_start(r, r->server_log, &r->server, &r->server_out, r->listen, r->notices))
        return -1;
    r->res->rss_start_kb = proc_status_kb(r->server, "VmHWM");
    return 0;
}

static int server_stop(struct run *r)
{
    return serve_stop(&r->server, &r->server_out);
}

/* A client of mgr-01 to endpoint (one instance or a list), with the
 * notices endpoint(s) or NULL. */
static otpca_err client_new(struct run *r, const char *endpoint, const char *notices, otpca_cloud_client **out)
{
    otpca_cloud_client_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.endpoint = endpoint;
    cfg.notices = notices;
    memcpy(cfg.server_key, r->cloud_curve, 32);
    memcpy(cfg.public_key, r->curve_pub, 32);
    memcpy(cfg.secret_key, r->curve_sec, 32);
    memcpy(cfg.cloud_sign_pub, r->cloud_pub, 65);
    cfg.manager_id = MANAGER_ID;
    cfg.signer.sign = mgr_sign;
    cfg.signer.ctx = r;
    otpca_p256_kid(r->mgr_pub, cfg.signer.kid);
    cfg.timeout_ms = CLIENT_TIMEOUT_MS;
    cfg.retries = -1; /* a retry would hide a slow answer */
    otpca_err err = otpca_cloud_client_new(&cfg, out);
    explicit_bzero(cfg.secret_key, sizeof cfg.secret_key);
    return err;
}

static int client_open(struct run *r)
{
    otpca_notice nt;
    char serial[OTPCA_SEEDBOX_SERIAL_MAX + 1];
    uint32_t code = 0;
    otpca_err err = client_new(r, r->listen, r->notices, &r->client);
    if (err)
        return lib_fail(r, err, "otpca_cloud_client_new");
    /* Subscribe now, so that no notice of the changes is missed. */
    err = otpca_cloud_notice_wait(r->client, 0, &nt, serial, sizeof serial, NULL);
    if (err && err != OTPCA_ERR_TIMEOUT)
        return lib_fail(r, err, "subscribing to notices");
    if ((err = otpca_token_totp(r->op, r->op_seed, OTPCA_OTP_SHA1, time(NULL), 30, 6, &code)))
        return lib_fail(r, err, "operator TOTP");
    err = otpca_cloud_window_open(r->client, OPERATOR_ID, code, 3600, 0, NULL, 0, &r->lease);
    if (err) {
        const char *detail = "";
        unsigned wire = otpca_cloud_client_error(r->client, &detail);
        return fail(r, "window open: %s (%u %s)", otpca_strerror(err), wire, detail);
    }
    return 0;
}

/* ---- syncs ---------------------------------------------------------------- */

/* The manifest index of a serial SERIAL_PREFIX + 8 digits; 0 if none. */
static unsigned long serial_index(otpca_buf s)
{
    size_t pl = sizeof SERIAL_PREFIX - 1;
    unsigned long v = 0;
    if (!s.p || s.len != pl + 8 || memcmp(s.p, SERIAL_PREFIX, pl) != 0)
        return 0;
    for (size_t i = pl; i < s.len; i++) {
        if (!isdigit(s.p[i]))
            return 0;
        v = v * 10 + (unsigned long)(s.p[i] - '0');
    }
    return v;
}

/* Every batch: the kind, then each entry walked and decoded; it must be a
 * device of the manifest, once, and for a delta one of the changed ones. */
static otpca_err on_batch(void *arg, const otpca_sync_batch *b, const uint8_t *raw, size_t len)
{
    struct walk *w = arg;
    otpca_list_iter it;
    otpca_device_entry e;
    otpca_err ret;
    uint64_t k = 0;
    (void)raw;
    if (bench_stop) {
        w->why = "interrupted";
        return OTPCA_ERR_STATE;
    }
    /* A snapshot's chunks are followed by the deltas after its `to`
     * (otpca_cloud_sync): here nothing changes meanwhile, so one empty one. */
    int tail = w->kind == OTPCA_SYNC_SNAPSHOT && b->kind == OTPCA_SYNC_DELTA && w->batches > 0;
    if (b->kind != w->kind && !tail) {
        w->why = "a batch of the other kind (snapshot/delta)";
        return OTPCA_ERR_PROTO_VALUE;
    }
    w->tail += tail;
    w->boxed += b->seedkey.p != NULL;
    int sample = w->samples && w->batches % w->stride == 0 && w->nsamples < SAMPLES && b->seedkey.p &&
                 b->seedkey.len == OTPCA_P256_PUB_LEN;
    w->batches++;
    w->bytes += len;
    otpca_list_iter_init(&it, &b->entries);
    while ((ret = otpca_list_next(&it, &otpca_desc_device_entry, &e)) == OTPCA_ERR_OK) {
        unsigned long idx = serial_index(e.serial);
        if (!idx || idx > w->devices) {
            w->why = "an entry for a device not in the manifest";
            return OTPCA_ERR_PROTO_VALUE;
        }
        if (w->seen[idx - 1]) {
            w->why = "a device twice";
            return OTPCA_ERR_PROTO_VALUE;
        }
        if (w->changed && !w->changed[idx - 1]) {
            w->why = "an entry for a device that did not change";
            return OTPCA_ERR_PROTO_VALUE;
        }
        w->seen[idx - 1] = 1;
        w->distinct++;
        if (e.seed.p)
            w->seeded++;
        if (sample && k == 0 && e.seed.p && e.seed.len <= OTPCA_SEEDBOX_SEALED_MAX) {
            struct sample *s = &w->samples[w->nsamples++];
            s->idx = idx;
            memcpy(s->serial, e.serial.p, e.serial.len);
            s->serial_len = e.serial.len;
            memcpy(s->sealed, e.seed.p, e.seed.len);
            s->sealed_len = e.seed.len;
            memcpy(s->eph, b->seedkey.p, OTPCA_P256_PUB_LEN);
        }
        k++;
    }
    if (ret != OTPCA_ERR_NOT_FOUND) {
        w->why = "an entry does not decode";
        return ret;
    }
    if (k != b->entries.count) {
        w->why = "fewer entries than the batch says";
        return OTPCA_ERR_PROTO_VALUE;
    }
    w->entries += k;
    return OTPCA_ERR_OK;
}

static void walk_init(struct walk *w, const struct run *r, uint64_t kind, uint8_t *seen, const uint8_t *changed)
{
    memset(w, 0, sizeof *w);
    w->devices = r->devices;
    w->kind = kind;
    w->seen = seen;
    w->changed = changed;
    memset(seen, 0, r->devices);
}

/* One sync from since; wall seconds in *secs. */
static int sync_once(struct run *r, const char *what, uint64_t since, struct walk *w, double *secs, uint64_t *to)
{
    double t0 = bench_now_s();
    otpca_err err = otpca_cloud_sync(r->client, r->lease.window, since, 0, on_batch, w, to);
    *secs = bench_now_s() - t0;
    if (err) {
        const char *detail = "";
        unsigned wire = err == OTPCA_ERR_REFUSED ? otpca_cloud_client_error(r->client, &detail) : 0;
        if (w->why)
            return fail(r, "%s: %s (%s)", what, w->why, otpca_strerror(err));
        if (wire)
            return fail(r, "%s: %s (wire error %u: %s)", what, otpca_strerror(err), wire, detail);
        return fail(r, "%s: %s", what, otpca_strerror(err));
    }
    return 0;
}

/* The snapshot's sampled seeds, opened with the manager token, must be the
 * manifest's. */
static int check_samples(struct run *r)
{
    const struct walk *w = &r->res->snap;
    for (size_t i = 0; i < w->nsamples && !bench_stop; i++) {
        const struct sample *s = &w->samples[i];
        otpca_seedbox box;
        uint8_t seed[OTPCA_SEEDBOX_SEED_MAX];
        size_t len = 0;
        otpca_err err = otpca_seedbox_receiver(&box, s->eph, r->mgr_pub, mgr_ecdh, r);
        if (!err)
            err = otpca_seedbox_open(&box, s->serial, s->serial_len, s->sealed, s->sealed_len, seed, sizeof seed,
                                     &len);
        otpca_seedbox_wipe(&box);
        if (err || len != SEED_LEN || memcmp(seed, r->seeds + (s->idx - 1) * SEED_LEN, SEED_LEN) != 0)
            return fail(r, "the seed of " SERIAL_FMT " in the snapshot %s", s->idx,
                        err ? otpca_strerror(err) : "is not the manifest's");
        r->res->samples_ok++;
    }
    return bench_stop ? fail(r, "interrupted") : 0;
}

/* ---- step 4 baseline: the crypto floor of a snapshot, in this process ---- */

struct floor_seed {
    char serial[24];
    uint8_t env[SEED_LEN + OTPCA_SEED_ENV_OVERHEAD];
    size_t env_len;
};

static int measure_floor(struct run *r)
{
    struct floor_cost *fl = &r->res->fl;
    char path[PATH_MAX];
    otpca_store *st = NULL;
    otpca_seed_key *key = NULL;
    struct floor_seed *pool = calloc(FLOOR_POOL, sizeof *pool);
    uint8_t *payload = calloc(1, FLOOR_HASH_BYTES);
    otpca_seedbox box;
    uint8_t seed[OTPCA_SEED_MAX], out[OTPCA_SEEDBOX_SEALED_MAX], digest[32], sig[OTPCA_P256_SIG_LEN];
    size_t len = 0, olen = 0;
    int ret = -1;
    otpca_err err = OTPCA_ERR_OK;
    memset(&box, 0, sizeof box);
    if (!pool || !payload || join(path, sizeof path, r->tmp.dir, "floor.db")) {
        fail(r, "floor: out of memory or path too long");
        goto out;
    }
    /* A seed key of a scratch store, unwrapped by the cloud token's
     * seed-wrap key: the key the server holds, in the same kind of memory. */
    if ((err = otpca_store_open(path, &st)) || (err = otpca_seed_key_load(r->cloud, r->cloud_wrap, st, 1, &key))) {
        lib_fail(r, err, "floor: seed key");
        goto out;
    }
    for (unsigned i = 0; i < FLOOR_POOL; i++) {
        unsigned long idx = 1 + (unsigned long)i % r->devices;
        snprintf(pool[i].serial, sizeof pool[i].serial, SERIAL_FMT, (unsigned long)i + 1);
        if ((err = otpca_seed_seal(key, pool[i].serial, r->seeds + (idx - 1) * SEED_LEN, SEED_LEN, pool[i].env,
                                   sizeof pool[i].env, &pool[i].env_len))) {
            lib_fail(r, err, "floor: otpca_seed_seal");
            goto out;
        }
    }
    if ((err = otpca_seedbox_sender(&box, r->mgr_pub, sizeof r->mgr_pub))) {
        lib_fail(r, err, "floor: otpca_seedbox_sender");
        goto out;
    }
    /* Per device: open the sealed seed, seal it into the batch's box. A
     * warm-up of 1 %, then FLOOR_ITERS timed. */
    double c0 = 0, w0 = 0;
    for (unsigned i = 0; i < FLOOR_ITERS + FLOOR_ITERS / 100; i++) {
        if (i == FLOOR_ITERS / 100) {
            c0 = bench_cpu_s();
            w0 = bench_now_s();
        }
        const struct floor_seed *p = &pool[i % FLOOR_POOL];
        if ((err = otpca_seed_open(key, p->serial, p->env, p->env_len, seed, sizeof seed, &len)) ||
            (err = otpca_seedbox_seal(&box, (const uint8_t *)p->serial, strlen(p->serial), seed, len, out, sizeof out,
                                      &olen))) {
            lib_fail(r, err, "floor: seed open + seal");
            goto out;
        }
        if (i % 4096 == 0 && bench_stop) {
            fail(r, "interrupted");
            goto out;
        }
    }
    fl->iters = FLOOR_ITERS;
    fl->dev_us = (bench_cpu_s() - c0) * 1e6 / FLOOR_ITERS;
    fl->dev_wall_us = (bench_now_s() - w0) * 1e6 / FLOOR_ITERS;
    /* Per batch: a seed box (ephemeral key + ECDH), the SHA-256 of the
     * payload (COSE Sig_structure; both ends hash it), the token's
     * signature of the digest, the client's verify of it. */
    memset(digest, 0x5a, sizeof digest);
    double t[4] = {0, 0, 0, 0};
    for (unsigned i = 0; i < FLOOR_BATCH_ITERS && !bench_stop; i++) {
        otpca_seedbox b2;
        size_t sl = sizeof sig;
        double c = bench_cpu_s();
        err = otpca_seedbox_sender(&b2, r->mgr_pub, sizeof r->mgr_pub);
        otpca_seedbox_wipe(&b2);
        t[0] += bench_cpu_s() - c;
        c = bench_cpu_s();
        if (!err)
            err = otpca_token_sign_digest(r->cloud, r->cloud_sign, digest, sizeof digest, OTPCA_SIG_RAW, sig, &sl);
        t[1] += bench_cpu_s() - c;
        c = bench_cpu_s();
        if (!err)
            err = otpca_p256_verify(r->cloud_pub, sizeof r->cloud_pub, digest, sig);
        t[2] += bench_cpu_s() - c;
        c = bench_cpu_s();
        otpca_sha256(payload, FLOOR_HASH_BYTES, digest);
        t[3] += bench_cpu_s() - c;
        payload[i] ^= digest[0];
        if (err) {
            lib_fail(r, err, "floor: seed box, token signature, verify");
            goto out;
        }
    }
    if (bench_stop) {
        fail(r, "interrupted");
        goto out;
    }
    fl->box_us = t[0] * 1e6 / FLOOR_BATCH_ITERS;
    fl->sign_us = t[1] * 1e6 / FLOOR_BATCH_ITERS;
    fl->ver_us = t[2] * 1e6 / FLOOR_BATCH_ITERS;
    fl->sha_ns_per_byte = t[3] * 1e9 / ((double)FLOOR_BATCH_ITERS * FLOOR_HASH_BYTES);
    ret = 0;
out:
    explicit_bzero(seed, sizeof seed);
    otpca_seedbox_wipe(&box);
    otpca_seed_key_destroy(&key);
    otpca_store_destroy(&st);
    free(pool);
    free(payload);
    unlink(path);
    return ret;
}

/* Seconds the floor gives a sync of `devices` seeds in `batches` signed
 * batches of `bytes` in all, `boxed` of them with a seed box. */
static double floor_s(const struct floor_cost *fl, uint64_t devices, uint64_t batches, uint64_t boxed,
                      uint64_t bytes)
{
    return ((double)devices * fl->dev_us + (double)boxed * fl->box_us +
            (double)batches * (fl->sign_us + fl->ver_us) + 2.0 * (double)bytes * fl->sha_ns_per_byte * 1e-3) *
           1e-6;
}

/* ---- step 5: changes ------------------------------------------------------ */

/* Record j of b: a fresh random id, kind and serial (manifest number idx). */
static void batch_record(struct batch *b, size_t j, uint64_t kind, unsigned long idx)
{
    snprintf(b->serials[j], sizeof b->serials[j], SERIAL_FMT, idx);
    memset(&b->rec[j], 0, sizeof b->rec[j]);
    b->rec[j].id = (otpca_buf){b->ids[j], 16};
    b->rec[j].kind = kind;
    b->rec[j].serial = (otpca_buf){(const uint8_t *)b->serials[j], strlen(b->serials[j])};
    b->rec[j].time = (uint64_t)time(NULL);
}

/* n REJECTED records (reason REJECT_REASON: a wrong TOTP, which counts a
 * failure on the device) for the devices idx[0..n) (manifest numbers). */
static int batch_rejected(struct batch *b, const unsigned long *idx, size_t n)
{
    if (otpca_random(&b->ids[0][0], n * 16) != OTPCA_ERR_OK)
        return -1;
    for (size_t j = 0; j < n; j++) {
        batch_record(b, j, OTPCA_REC_REJECTED, idx[j]);
        b->rec[j].reason = REJECT_REASON;
        b->rec[j].present |= OTPCA_MSG_BIT(6);
    }
    b->n = n;
    return 0;
}

/* What a window uploads for n/2 enrollments (manager/src/window.c
 * upload_some): per device an ISSUED record (the certificate, the TOTP
 * step, an audit hash) followed by its CONFIRMED record (the id
 * otpca_record_confirm_id derives from the ISSUED one, no time), for the
 * devices dev, dev + 1, ... (manifest numbers, wrapping); n even. */
static int batch_enrolled(struct run *r, struct batch *b, unsigned long dev, size_t n)
{
    if (otpca_random(&b->ids[0][0], n * 16) != OTPCA_ERR_OK || otpca_random(b->audit, sizeof b->audit))
        return -1;
    for (size_t j = 0; j + 1 < n; j += 2) {
        unsigned long idx = 1 + (dev + j / 2) % r->devices;
        batch_record(b, j, OTPCA_REC_ISSUED, idx);
        b->rec[j].cert = (otpca_buf){r->cert, r->cert_len};
        b->rec[j].step = (uint64_t)time(NULL) / 30;
        b->rec[j].present |= OTPCA_MSG_BIT(5);
        b->rec[j].audit = (otpca_buf){b->audit, sizeof b->audit};
        batch_record(b, j + 1, OTPCA_REC_CONFIRMED, idx);
        otpca_record_confirm_id(b->ids[j], b->ids[j + 1]);
        b->rec[j + 1].time = 0;
    }
    b->n = n;
    return 0;
}

/* Uploads b; every record must be acknowledged and none flagged. NULL, or
 * what went wrong (in why). */
static const char *batch_send(struct run *r, otpca_cloud_client *c, const struct batch *b, char *why, size_t cap)
{
    uint8_t acked[UPLOAD_MAX], flagged[UPLOAD_MAX];
    otpca_err err = otpca_cloud_upload(c, r->lease.window, b->rec, b->n, acked, flagged);
    if (err) {
        const char *detail = "";
        unsigned wire = otpca_cloud_client_error(c, &detail);
        snprintf(why, cap, "upload: %s (%u %s)", otpca_strerror(err), wire, detail);
        return why;
    }
    for (size_t j = 0; j < b->n; j++)
        if (!acked[j] || flagged[j]) {
            snprintf(why, cap, "upload: record for %s %s", b->serials[j], acked[j] ? "flagged" : "not acknowledged");
            return why;
        }
    return NULL;
}

/* C REJECTED records for C distinct devices spread over the manifest, in
 * uploads of up to 256; every one acknowledged, none flagged. */
static int make_changes(struct run *r)
{
    unsigned long idx[UPLOAD_MAX];
    char why[512];
    double t0 = bench_now_s();
    for (unsigned long k = 0; k < r->changes && !bench_stop; k += UPLOAD_MAX) {
        size_t n = r->changes - k < UPLOAD_MAX ? r->changes - k : UPLOAD_MAX;
        for (size_t j = 0; j < n; j++) {
            idx[j] = 1 + (unsigned long)(((uint64_t)(k + j) * r->devices) / r->changes);
            r->changed[idx[j] - 1] = 1;
        }
        if (batch_rejected(&r->batch, idx, n))
            return fail(r, "otpca_random failed");
        if (batch_send(r, r->client, &r->batch, why, sizeof why))
            return fail(r, "%s", why);
        r->res->uploads++;
    }
    r->res->upload_s = bench_now_s() - t0;
    return bench_stop ? fail(r, "interrupted") : 0;
}

/* The notices the changes caused, until C came or none for a second. */
static void drain_notices(struct run *r)
{
    double t0 = bench_now_s();
    while (r->res->notices < r->changes && !bench_stop && bench_now_s() - t0 < LIMIT_NOTICES) {
        otpca_notice nt;
        char serial[OTPCA_SEEDBOX_SERIAL_MAX + 1];
        if (otpca_cloud_notice_wait(r->client, 1000, &nt, serial, sizeof serial, NULL) != OTPCA_ERR_OK)
            break;
        r->res->notices++;
        r->res->notices_approved += nt.kind == OTPCA_NOTICE_APPROVED;
    }
}

/* ---- step 6: records ingested with 1, 2, 4 ... instances ------------------ */

/* One client connection (to every instance of the round) enrolling its
 * share of the round's devices: ISSUED + CONFIRMED each. */
struct ingest_job {
    struct run *r;
    const char *endpoints;
    unsigned long first, devices; /* manifest offsets (0-based, wrapping) */
    uint64_t uploads;
    struct batch b[2]; /* the first upload (kept: sent again afterwards), the others */
    char why[512];     /* "" unless it failed */
};

static void *ingest_thread(void *arg)
{
    struct ingest_job *j = arg;
    struct run *r = j->r;
    otpca_cloud_client *c = NULL;
    otpca_err err = client_new(r, j->endpoints, NULL, &c);
    if (err) {
        snprintf(j->why, sizeof j->why, "otpca_cloud_client_new: %s", otpca_strerror(err));
        return NULL;
    }
    for (unsigned long k = 0; k < j->devices && !bench_stop; k += UPLOAD_MAX / 2) {
        size_t n = j->devices - k < UPLOAD_MAX / 2 ? j->devices - k : UPLOAD_MAX / 2;
        struct batch *b = &j->b[k > 0];
        if (batch_enrolled(r, b, j->first + k, 2 * n)) {
            snprintf(j->why, sizeof j->why, "otpca_random failed");
            break;
        }
        if (batch_send(r, c, b, j->why, sizeof j->why))
            break;
        j->uploads++;
    }
    if (bench_stop && !j->why[0])
        snprintf(j->why, sizeof j->why, "interrupted");
    otpca_cloud_client_destroy(&c);
    return NULL;
}

static int record_count(struct run *r, otpca_store *st, uint64_t *n)
{
    otpca_err err = otpca_store_record_count(st, n);
    return err ? lib_fail(r, err, "counting the store's records") : 0;
}

/* Up to INGEST_CHECKS of a job's devices, spread over its share, read back
 * from the store: enrolled by mgr-01 with the certificate uploaded. */
static int check_enrolled(struct run *r, otpca_store *st, const struct ingest_job *j, uint64_t *checked)
{
    uint8_t hash[32];
    otpca_sha256(r->cert, r->cert_len, hash);
    unsigned long step = (j->devices + INGEST_CHECKS - 1) / INGEST_CHECKS;
    for (unsigned long k = 0; k < j->devices && !bench_stop; k += step) {
        otpca_device d;
        char serial[32];
        snprintf(serial, sizeof serial, SERIAL_FMT, 1 + (j->first + k) % r->devices);
        otpca_err err = otpca_store_device_get(st, serial, &d);
        if (err)
            return fail(r, "ingest: reading %s back: %s", serial, otpca_strerror(err));
        if (d.state != OTPCA_STORE_ENROLLED || strcmp(d.manager, MANAGER_ID) || !d.has_cert ||
            memcmp(d.cert_hash, hash, 32))
            return fail(r, "ingest: %s is not enrolled by " MANAGER_ID " with the uploaded certificate (state %d, "
                           "manager '%s', %s)",
                        serial, d.state, d.manager, d.has_cert ? "another certificate" : "no certificate");
        (*checked)++;
    }
    return 0;
}
/* For each instance count K of --instances: K `otpca-cloud serve` on the
 * store (the first K of those started so far), INGEST_THREADS client
 * connections each listing all K, the round's records (ISSUED + CONFIRMED
 * for distinct devices, in uploads of UPLOAD_MAX) split among them; the
 * wall time from the first upload to the last acknowledgement. Then the
 * store must hold exactly that many more records (none lost, none twice),
 * sampled devices must read back enrolled, and the first upload sent
 * again (a manager's retry) must be acknowledged and stored no second time. */
static int measure_ingest(struct run *r)
{
    pid_t pid[INGEST_MAX_INSTANCES];
    int out[INGEST_MAX_INSTANCES], ret = -1;
    char listen[INGEST_MAX_INSTANCES][256], notices[INGEST_MAX_INSTANCES][256], log[PATH_MAX], why[512];
    char eps[INGEST_MAX_INSTANCES * 257];
    static struct ingest_job jobs[INGEST_THREADS]; /* 4 x 2 uploads of 256 records: not on the stack */
    pthread_t th[INGEST_THREADS];
    size_t started = 0;
    unsigned long offset = 0, per_round = r->records / 2 < r->devices ? r->records / 2 : r->devices;
    otpca_cloud_client *c = NULL;
    otpca_store *st = NULL;
    otpca_err err = otpca_store_open(r->store, &st);
    if (err)
        return lib_fail(r, err, "opening the store to count records");
    for (size_t i = 0; i < INGEST_MAX_INSTANCES; i++) {
        pid[i] = -1;
        out[i] = -1;
    }
    for (size_t round = 0; round < r->ninstances && !bench_stop; round++) {
        unsigned k = r->instances[round];
        for (; started < k; started++) {
            char name[32];
            snprintf(name, sizeof name, "server%s-%zu.log", r->sfx, started + 1);
            if (join(log, sizeof log, r->tmp.dir, name) ||
                serve_start(r, log, &pid[started], &out[started], listen[started], notices[started]))
                goto out;
        }
        size_t used = 0;
        for (unsigned i = 0; i < k; i++)
            used += (size_t)snprintf(eps + used, sizeof eps - used, "%s%s", i ? "," : "", listen[i]);
        progress(r, "ingest: %lu enrollments (ISSUED + CONFIRMED) through %u instance(s), %d connections ...",
                 per_round, k, INGEST_THREADS);
        uint64_t before = 0, after = 0, again = 0;
        if (record_count(r, st, &before))
            goto out;
        size_t nth = 0;
        double t0 = bench_now_s();
        for (unsigned i = 0; i < INGEST_THREADS; i++) {
            unsigned long share = per_round / INGEST_THREADS + (i < per_round % INGEST_THREADS);
            memset(&jobs[i], 0, sizeof jobs[i]);
            jobs[i].r = r, jobs[i].endpoints = eps, jobs[i].first = offset, jobs[i].devices = share;
            offset += share;
            if (share && pthread_create(&th[nth], NULL, ingest_thread, &jobs[i]) == 0)
                nth++;
            else if (share)
                snprintf(jobs[i].why, sizeof jobs[i].why, "pthread_create failed");
        }
        for (size_t i = 0; i < nth; i++)
            pthread_join(th[i], NULL);
        double secs = bench_now_s() - t0;
        struct ingest *g = &r->res->ingest[r->res->ningest];
        *g = (struct ingest){.instances = k, .records = 2 * (uint64_t)per_round, .devices = per_round, .secs = secs};
        for (unsigned i = 0; i < INGEST_THREADS; i++) {
            if (jobs[i].why[0]) {
                fail(r, "ingest with %u instance(s): %s", k, jobs[i].why);
                goto out;
            }
            g->uploads += jobs[i].uploads;
        }
        if (record_count(r, st, &after))
            goto out;
        if (after - before != g->records) {
            fail(r, "ingest with %u instance(s): the store holds %llu new records, not %llu", k,
                 (unsigned long long)(after - before), (unsigned long long)g->records);
            goto out;
        }
        for (unsigned i = 0; i < INGEST_THREADS; i++)
            if (check_enrolled(r, st, &jobs[i], &g->checked))
                goto out;
        /* A retry of an acknowledged upload, to every instance. */
        if ((err = client_new(r, eps, NULL, &c))) {
            lib_fail(r, err, "otpca_cloud_client_new");
            goto out;
        }
        if (batch_send(r, c, &jobs[0].b[0], why, sizeof why)) {
            fail(r, "ingest with %u instance(s), the first upload again: %s", k, why);
            goto out;
        }
        otpca_cloud_client_destroy(&c);
        if (record_count(r, st, &again))
            goto out;
        if (again != after) {
            fail(r, "ingest with %u instance(s): the first upload sent again added %llu records", k,
                 (unsigned long long)(again - after));
            goto out;
        }
        g->replayed = jobs[0].b[0].n;
        r->res->ningest++;
    }
    ret = bench_stop ? fail(r, "interrupted") : 0;
out:
    otpca_cloud_client_destroy(&c);
    for (size_t i = 0; i < started; i++) {
        int rc = serve_stop(&pid[i], &out[i]);
        if (rc != 0 && !ret)
            ret = fail(r, "otpca-cloud serve (ingest instance %zu): %s %d after SIGTERM", i + 1,
                       rc < 0 ? "killed," : "exit status", rc);
    }
    otpca_store_destroy(&st);
    return ret;
}

/* ---- PostgreSQL: a throw-away cluster (deploy/postgres.sh) ---------------- */

static const char *pg_script(void)
{
    const char *s = getenv("OTPCA_POSTGRES_SH");
    return s && *s ? s : OTPCA_SOURCE_DIR "/deploy/postgres.sh";
}

static int pg_start(struct run *r)
{
    char out[PATH_MAX], url[PATH_MAX];
    if (join(r->pg_dir, sizeof r->pg_dir, r->tmp.dir, "pg") || join(out, sizeof out, r->tmp.dir, "pg.out") ||
        join(url, sizeof url, r->pg_dir, "url"))
        return fail(r, "path too long");
    char *argv[] = {(char *)pg_script(), "start", r->pg_dir, NULL};
    progress(r, "starting a throw-away PostgreSQL cluster (%s start) ...", argv[0]);
    if (run_cmd(r, "deploy/postgres.sh start", argv, NULL, out, LIMIT_SHORT, NULL))
        return -1;
    if (!file_line(url, "postgresql://", r->store, sizeof r->store))
        return fail(r, "deploy/postgres.sh wrote no URL to %s", url);
    return 0;
}

static void pg_stop(struct run *r)
{
    if (!r->pg_dir[0])
        return;
    /* --remove: the cluster may live outside the temp dir (the postgres
     * user cannot enter a 0700 directory of root's), which would be left;
     * also after a Ctrl-C, which must not cut the stop short */
    char *argv[] = {(char *)pg_script(), "stop", r->pg_dir, "--remove", NULL};
    if (run_cmd_ex(r, "deploy/postgres.sh stop", argv, NULL, NULL, LIMIT_SHORT, NULL, 0))
        fprintf(stderr, PROG ": the PostgreSQL cluster in %s did not stop cleanly\n", r->pg_dir);
    r->pg_dir[0] = '\0';
}

/* ---- the whole run ---------------------------------------------------------- */

/* One pass on one store (pg: PostgreSQL): the first pass also makes what
 * every pass shares (the rig, the manifest, the tokens, the floor). */
static int run_pass(struct run *r, int pg)
{
    struct results *res = r->res = &r->pass[r->npass++];
    const struct results *first = &r->pass[0];
    uint8_t *seen = NULL;
    int ret = -1;
    double secs = 0;
    uint64_t to = 0;
    char name[32];

    res->pg = r->pg = pg;
    r->sfx = pg && (r->stores & STORE_SQLITE) ? "-pg" : ""; /* --store both: the second pass's files */
    snprintf(name, sizeof name, "cloud%s.conf", r->sfx);
    if (join(r->conf, sizeof r->conf, r->tmp.dir, name))
        return fail(r, "path too long");
    snprintf(name, sizeof name, "server%s.log", r->sfx);
    if (join(r->server_log, sizeof r->server_log, r->tmp.dir, name))
        return fail(r, "path too long");
    snprintf(res->conf, sizeof res->conf, "%s", r->conf);
    snprintf(r->store, sizeof r->store, "%s", r->db);
    if (res != first) {
        memset(r->changed, 0, r->devices);
        res->rig_s = first->rig_s;
        res->manifest_s = first->manifest_s;
        res->manifest_bytes = first->manifest_bytes;
    } else {
        if (make_rig(r))
            return -1;
        progress(r, "writing the manifest of %lu devices ...", r->devices);
        if (write_manifest(r))
            return -1;
    }
    if ((r->pg && pg_start(r)) || init_store(r) || (r->pg ? import_baseline_pg(r) : import_baseline(r)) ||
        import_devices(r))
        return -1;
    progress(r, "import: %.2f s (baseline %.2f s); registering mgr-01 and %s ...", res->import_s, res->baseline_s,
             OPERATOR_ID);
    if (register_parties(r))
        return -1;
    if (res != first) {
        res->fl = first->fl;
    } else {
        progress(r, "crypto floor: %u x (seed open + seed-box seal) in this process ...", FLOOR_ITERS);
        if (open_tokens(r) || measure_floor(r))
            return -1;
    }
    if (server_start(r))
        return -1;
    progress(r, "server pid %ld on %s; opening a window ...", (long)r->server, r->listen);
    if (client_open(r))
        return -1;
    struct sample *samples = calloc(SAMPLES, sizeof *samples);
    if (!(seen = malloc(r->devices)) || !samples) {
        fail(r, "out of memory");
        goto out;
    }

    /* Snapshot from 0. */
    progress(r, "snapshot sync of %lu devices ...", r->devices);
    walk_init(&res->snap, r, OTPCA_SYNC_SNAPSHOT, seen, NULL);
    uint64_t expect_batches = (r->devices + SYNC_DEFAULT_MAX - 1) / SYNC_DEFAULT_MAX;
    res->snap.samples = samples;
    res->snap.stride = expect_batches > SAMPLES ? (expect_batches + SAMPLES - 1) / SAMPLES : 1;
    proc_cpu(r->server, &res->srv0);
    double cli0 = self_cpu_s();
    if (sync_once(r, "snapshot sync", 0, &res->snap, &res->snap_s, &res->snap_to))
        goto out;
    res->cli_cpu = self_cpu_s() - cli0;
    proc_cpu(r->server, &res->srv1);
    if (res->snap.entries != r->devices || res->snap.distinct != r->devices || res->snap.seeded != r->devices) {
        fail(r, "snapshot sync: %llu entries (%llu devices, %llu with a seed), not %lu",
             (unsigned long long)res->snap.entries, (unsigned long long)res->snap.distinct,
             (unsigned long long)res->snap.seeded, r->devices);
        goto out;
    }
    progress(r, "snapshot: %.2f s, %llu batches; checking %zu sampled seeds with the manager token ...", res->snap_s,
             (unsigned long long)res->snap.batches, res->snap.nsamples);
    if (check_samples(r))
        goto out;

    /* Empty deltas: nothing changed since the snapshot. */
    for (unsigned i = 0; i < REPEATS; i++) {
        struct walk w;
        walk_init(&w, r, OTPCA_SYNC_DELTA, seen, r->changed);
        if (sync_once(r, "empty delta sync", res->snap_to, &w, &secs, &to))
            goto out;
        if (w.entries != 0 || to != res->snap_to) {
            fail(r, "empty delta sync: %llu entries", (unsigned long long)w.entries);
            goto out;
        }
        res->empty_ms[i] = secs * 1e3;
        res->empty_bytes = w.bytes;
    }

    /* C changes, then the delta that brings them. */
    progress(r, "uploading %lu REJECTED records ...", r->changes);
    if (make_changes(r))
        goto out;
    for (unsigned i = 0; i <= REPEATS; i++) {
        struct walk again;
        struct walk *w = i ? &again : &res->delta;
        walk_init(w, r, OTPCA_SYNC_DELTA, seen, r->changed);
        if (sync_once(r, "delta sync", res->snap_to, w, &secs, &to))
            goto out;
        if (w->entries != r->changes || w->distinct != r->changes) {
            fail(r, "delta sync: %llu entries, not %lu", (unsigned long long)w->entries, r->changes);
            goto out;
        }
        if (i == 0) {
            res->delta_first_ms = secs * 1e3;
            res->delta_to = to;
            /* Let the notices the changes caused go out before the repeats. */
            drain_notices(r);
        } else {
            res->delta_ms[i - 1] = secs * 1e3;
        }
    }

    /* The server's peak memory, then a clean stop. */
    res->rss_peak_kb = proc_status_kb(r->server, "VmHWM");
    res->rss_now_kb = proc_status_kb(r->server, "VmRSS");
    otpca_cloud_client_destroy(&r->client);
    res->server_exit = server_stop(r);
    if (res->server_exit != 0) {
        fail(r, "otpca-cloud serve: %s %d after SIGTERM", res->server_exit < 0 ? "killed," : "exit status",
             res->server_exit);
        goto out;
    }
    if (r->ninstances && measure_ingest(r))
        goto out;
    ret = 0;
out:
    res->snap.samples = NULL;
    free(samples);
    free(seen);
    return ret;
}

/* --store sqlite, postgres, or both: SQLite first. */
static int run_all(struct run *r)
{
    if (join(r->db, sizeof r->db, r->tmp.dir, "cloud.db") ||
        join(r->manifest, sizeof r->manifest, r->tmp.dir, "manifest.csv") ||
        join(r->log, sizeof r->log, r->tmp.dir, "commands.log"))
        return fail(r, "path too long");
    if ((r->stores & STORE_SQLITE) && run_pass(r, 0))
        return -1;
    if ((r->stores & STORE_PG) && run_pass(r, 1))
        return -1;
    return 0;
}

/* ---- report --------------------------------------------------------------- */

struct row {
    const char *name, *label, *unit;
    double value, target, base;
    const char *base_what;
    int has_target;
};

static void make_rows(const struct run *r, const struct results *s, struct row rows[5], char labels[5][96])
{
    char n[32], c[32];
    double dev_scale = (double)r->devices / TARGET_DEVICES, chg_scale = (double)r->changes / TARGET_CHANGES;
    thousands(n, sizeof n, r->devices);
    thousands(c, sizeof c, r->changes);
    snprintf(labels[0], sizeof labels[0], "import, %s devices", n);
    snprintf(labels[1], sizeof labels[1], "snapshot sync, %s devices", n);
    snprintf(labels[2], sizeof labels[2], "delta sync, %s changes (first)", c);
    snprintf(labels[3], sizeof labels[3], "delta sync, %s changes (median of %d)", c, REPEATS);
    snprintf(labels[4], sizeof labels[4], "server peak RSS (VmHWM)");
    rows[0] = (struct row){"import", labels[0], "s", s->import_s, TARGET_IMPORT_S * dev_scale, s->baseline_s,
                           s->pg ? "psql \\copy, plain table" : "sqlite3 .import, plain table", 1};
    rows[1] = (struct row){"snapshot_sync", labels[1], "s", s->snap_s, TARGET_SNAPSHOT_S * dev_scale,
                           floor_s(&s->fl, r->devices, s->snap.batches, s->snap.boxed, s->snap.bytes), "crypto floor, one core", 1};
    double empty = median(s->empty_ms, REPEATS);
    rows[2] = (struct row){"delta_sync_first", labels[2], "ms", s->delta_first_ms, TARGET_DELTA_MS * chg_scale, empty,
                           "empty delta (median)", 1};
    rows[3] = (struct row){"delta_sync", labels[3], "ms", median(s->delta_ms, REPEATS), TARGET_DELTA_MS * chg_scale,
                           empty, "empty delta (median)", 1};
    rows[4] = (struct row){"server_peak_rss", labels[4], "MiB", (double)s->rss_peak_kb / 1024.0, 0,
                           (double)s->rss_start_kb / 1024.0, "VmHWM after start", 0};
}

/* v with 3 significant digits at least, and its unit. */
static const char *value_text(char *buf, size_t cap, double v, const char *unit)
{
    snprintf(buf, cap, v >= 100 ? "%.0f %s" : v >= 10 ? "%.1f %s" : v >= 1 ? "%.2f %s" : "%.3f %s", v, unit);
    return buf;
}

static const char *store_name(const struct results *s)
{
    return s->pg ? "PostgreSQL" : "SQLite";
}

/* What every pass shares: the machine, the counts, the manifest and rig
 * (their figures are the first pass's), the machine's other load. */
static void print_header(const struct run *r)
{
    const struct results *s = &r->pass[0];
    char a[32], b[32];

    printf("otpca-bench-cloud: the cloud registry against issue #4's targets, end to end\n");
    bench_print_host(stdout, &r->host, 0);
    printf("  wolfSSL  %s\n", r->ecc);
    printf("  run      %s devices, %s changes, `otpca-cloud serve` with %d workers; temp dir %s (%s)\n",
           thousands(a, sizeof a, r->devices), thousands(b, sizeof b, r->changes), WORKERS, r->tmp.dir,
           r->keep ? "kept" : "removed at the end");
    for (size_t i = 0; i < r->npass; i++)
        printf("  store    %s%s\n", r->npass > 1 ? (i ? "then " : "first ") : "",
               r->pass[i].pg ? "PostgreSQL, a throw-away cluster on loopback (deploy/postgres.sh)"
                             : "SQLite, a file in the temp dir");
    printf("  manifest %.1f MB, written in %.2f s; the public_key column repeats the rig node's key on every "
           "row\n  rig      otpca-token rig create DIR --nodes 1 --managers 1: %.1f s\n",
           (double)s->manifest_bytes / 1e6, s->manifest_s, s->rig_s);
    double others = s->busy_s - s->own_s;
    printf("  machine  the run took %.1f s; this process and its children used %.1f CPU-s, other processes "
           "%.1f CPU-s (%.0f %% of one core)%s, steal %.1f s\n\n",
           s->run_s, s->own_s, others > 0 ? others : 0.0, others > 0 ? 100.0 * others / s->run_s : 0.0,
           others > 0.1 * s->run_s ? ": other load disturbed the numbers" : "", s->steal_s);
}

/* One pass's table, then per measure its command line and details. */
static void print_pass(const struct run *r, const struct results *s)
{
    struct row rows[5];
    char labels[5][96], a[32];
    make_rows(r, s, rows, labels);
    int scaled = r->devices != DEFAULT_DEVICES || r->changes != DEFAULT_CHANGES;

    printf("%-40s %12s %14s  %-30s %11s %7s  %s\n", "measure", "value", "target", "baseline", "", "ratio", "verdict");
    for (int i = 0; i < 5; i++) {
        const struct row *w = &rows[i];
        char v[32], t[40], bv[32];
        value_text(v, sizeof v, w->value, w->unit);
        value_text(bv, sizeof bv, w->base, w->unit);
        if (w->has_target) {
            char tv[32];
            snprintf(t, sizeof t, "<= %s", value_text(tv, sizeof tv, w->target, w->unit));
        } else {
            snprintf(t, sizeof t, "(reported)");
        }
        printf("%-40s %12s %14s  %-30s %11s %6.1fx  %s\n", w->label, v, t, w->base_what, bv,
               w->base > 0 ? w->value / w->base : 0.0, !w->has_target ? "-" : w->value <= w->target ? "ok" : "MISSED");
    }
    if (scaled)
        printf("(targets scaled from %.0f devices / %.0f changes to this run's counts)\n", TARGET_DEVICES,
               TARGET_CHANGES);

    char n1[32], n2[32], n3[32];
    printf("\nimport    $ %s --config %s device import %s --approve\n", r->bin_cloud, s->conf, r->manifest);
    printf("          %.2f s wall = %s rows/s; it says: %s; its peak RSS %.1f MiB\n", s->import_s,
           thousands(n1, sizeof n1, (uint64_t)((double)r->devices / s->import_s)), s->import_line,
           (double)s->import_rss_kb / 1024.0);
    if (s->pg)
        printf("baseline  $ psql URL -c 'CREATE TABLE bench_baseline(7 columns)' -c '\\copy bench_baseline FROM "
               "MANIFEST WITH (FORMAT csv, HEADER true)'\n");
    else
        printf("baseline  $ sqlite3 -batch -bail %s/baseline.db < %s/baseline.sql\n          (PRAGMA "
               "journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE devices(7 columns); .import --csv --skip 1 "
               "MANIFEST devices):\n",
               r->tmp.dir, r->tmp.dir);
    printf("          %.2f s = %s rows/s, one transaction, no key, index, check, change log or crypto\n",
           s->baseline_s, thousands(n1, sizeof n1, (uint64_t)((double)r->devices / s->baseline_s)));
    double srv = (s->srv1.main + s->srv1.zmq + s->srv1.rest) - (s->srv0.main + s->srv0.zmq + s->srv0.rest);
    printf("snapshot  otpca_cloud_sync(since 0, max 0 = the server's %d per batch) from this process to\n"
           "          $ %s --config %s serve   (workers = %d)\n",
           SYNC_DEFAULT_MAX, r->bin_cloud, s->conf, WORKERS);
    char tail[48] = "";
    if (s->snap.tail)
        snprintf(tail, sizeof tail, ", then %llu delta", (unsigned long long)s->snap.tail);
    printf("          %s entries (%s with a sealed seed) in %s batches (%llu snapshot chunks%s), %.1f MB "
           "received:\n          %s entries/s, to = seq %llu\n",
           thousands(n1, sizeof n1, s->snap.entries), thousands(n2, sizeof n2, s->snap.seeded),
           thousands(n3, sizeof n3, s->snap.batches), (unsigned long long)(s->snap.batches - s->snap.tail), tail,
           (double)s->snap.bytes / 1e6,
           thousands(a, sizeof a, (uint64_t)((double)s->snap.entries / s->snap_s)), (unsigned long long)s->snap_to);
    printf("          CPU during it: server %.2f s (main thread/broker %.2f, workers %.2f, ZeroMQ I/O %.2f), this "
           "process %.2f s (verify, decode, walk, ZeroMQ)\n",
           srv, s->srv1.main - s->srv0.main, s->srv1.rest - s->srv0.rest, s->srv1.zmq - s->srv0.zmq, s->cli_cpu);
    printf("          crypto floor = %s x %.3f us (otpca_seed_open + otpca_seedbox_seal, CPU, %llu iterations; "
           "%.3f us wall)\n          + %s x %.1f us seed box + %s x (%.1f us token signature + %.1f us verify)\n"
           "          + 2 x %.1f MB x %.2f ns/B SHA-256 of the signed payloads (server and client) = %.3f s on one "
           "core\n",
           thousands(n1, sizeof n1, r->devices), s->fl.dev_us, (unsigned long long)s->fl.iters, s->fl.dev_wall_us,
           thousands(n2, sizeof n2, s->snap.boxed), s->fl.box_us, thousands(n3, sizeof n3, s->snap.batches),
           s->fl.sign_us, s->fl.ver_us, (double)s->snap.bytes / 1e6, s->fl.sha_ns_per_byte,
           floor_s(&s->fl, r->devices, s->snap.batches, s->snap.boxed, s->snap.bytes));
    printf("          seeds: %u sampled entries (the first of one batch in %zu) open with the manager token to "
           "the manifest's seed\n",
           s->samples_ok, s->snap.stride);
    printf("delta     %s REJECTED records (reason %d) for distinct devices in %u RecordUploads of <= %d: %.1f ms\n",
           thousands(n1, sizeof n1, r->changes), REJECT_REASON, s->uploads, UPLOAD_MAX, s->upload_s * 1e3);
    printf("          otpca_cloud_sync(since %llu = the snapshot's to): %llu entries, %llu batch(es), %.1f KB, to "
           "= seq %llu\n",
           (unsigned long long)s->snap_to, (unsigned long long)s->delta.entries,
           (unsigned long long)s->delta.batches, (double)s->delta.bytes / 1e3, (unsigned long long)s->delta_to);
    printf("          first right after the last upload: %.1f ms; then %u notices (%u 'approved') came on the PUB "
           "socket;\n          repeats: median %.1f ms, min %.1f ms; empty delta: median %.2f ms, min %.2f ms (%llu "
           "bytes)\n",
           s->delta_first_ms, s->notices, s->notices_approved, median(s->delta_ms, REPEATS),
           minimum(s->delta_ms, REPEATS), median(s->empty_ms, REPEATS), minimum(s->empty_ms, REPEATS),
           (unsigned long long)s->empty_bytes);
    printf("server    VmHWM %.1f MiB just before SIGTERM (VmRSS %.1f MiB; VmHWM %.1f MiB after start), exit status "
           "%d\n",
           (double)s->rss_peak_kb / 1024.0, (double)s->rss_now_kb / 1024.0, (double)s->rss_start_kb / 1024.0,
           s->server_exit);
    if (s->ningest)
        printf("\ningest    per device an ISSUED record (a %zu-byte certificate, TOTP step, audit hash) and its "
               "CONFIRMED record,\n          distinct devices, RecordUploads of <= %d from %d connections each "
               "listing every instance;\n          then (checked) the store holds exactly that many more records, "
               "sampled devices read back\n          enrolled by " MANAGER_ID " with that certificate, and the "
               "first upload sent again adds none:\n",
               r->cert_len, UPLOAD_MAX, INGEST_THREADS);
    for (size_t i = 0; i < s->ningest; i++) {
        const struct ingest *g = &s->ingest[i];
        double rate = (double)g->records / g->secs, base = (double)s->ingest[0].records / s->ingest[0].secs;
        printf("          %u instance%s: %s records (%s enrollments) in %.2f s = %s records/s (%.2fx the first "
               "row);\n          %llu devices read back, %llu records sent again\n",
               g->instances, g->instances == 1 ? " " : "s", thousands(n1, sizeof n1, g->records),
               thousands(n3, sizeof n3, g->devices), g->secs, thousands(n2, sizeof n2, (uint64_t)rate), rate / base,
               (unsigned long long)g->checked, (unsigned long long)g->replayed);
    }
    fflush(stdout);
}

/* --store both: the two passes' main figures side by side. */
static void print_side_by_side(const struct run *r)
{
    const struct results *q = &r->pass[0], *p = &r->pass[1];
    struct row a[5], b[5];
    char la[5][96], lb[5][96], v1[32], v2[32], label[96];
    make_rows(r, q, a, la);
    make_rows(r, p, b, lb);
    printf("\n==== side by side ====\n%-44s %14s %14s %14s\n", "measure", store_name(q), store_name(p), "target");
    for (int i = 0; i < 5; i++) {
        char t[40] = "(reported)", tv[32];
        if (a[i].has_target)
            snprintf(t, sizeof t, "<= %s", value_text(tv, sizeof tv, a[i].target, a[i].unit));
        printf("%-44s %14s %14s %14s\n", a[i].label, value_text(v1, sizeof v1, a[i].value, a[i].unit),
               value_text(v2, sizeof v2, b[i].value, b[i].unit), t);
        if (i == 0)
            printf("%-44s %14s %14s\n", "  baseline: plain-table load of the CSV", value_text(v1, sizeof v1, a[0].base, "s"),
                   value_text(v2, sizeof v2, b[0].base, "s"));
    }
    for (size_t i = 0; i < q->ningest && i < p->ningest; i++) {
        snprintf(label, sizeof label, "records ingested/s, %u instance%s", q->ingest[i].instances,
                 q->ingest[i].instances == 1 ? "" : "s");
        printf("%-44s %14s %14s\n", label,
               thousands(v1, sizeof v1, (uint64_t)((double)q->ingest[i].records / q->ingest[i].secs)),
               thousands(v2, sizeof v2, (uint64_t)((double)p->ingest[i].records / p->ingest[i].secs)));
    }
    fflush(stdout);
}

static void print_table(const struct run *r)
{
    print_header(r);
    for (size_t i = 0; i < r->npass; i++) {
        if (r->npass > 1)
            printf("%s==== %s ====\n", i ? "\n" : "", store_name(&r->pass[i]));
        print_pass(r, &r->pass[i]);
    }
    if (r->npass > 1)
        print_side_by_side(r);
}

static void json_num(const char *key, double v, int comma)
{
    printf("%s\"%s\":%.6g", comma ? "," : "", key, v);
}

/* One pass's members, "store" to "ingest"; 1 if it met every target. */
static int json_pass(const struct run *r, const struct results *s)
{
    struct row rows[5];
    char labels[5][96];
    make_rows(r, s, rows, labels);
    printf("\"store\":\"%s\",\"results\":[", s->pg ? "postgresql" : "sqlite");
    int all = 1;
    for (int i = 0; i < 5; i++) {
        const struct row *w = &rows[i];
        printf("%s{\"name\":\"%s\",\"label\":", i ? "," : "", w->name);
        bench_json_str(stdout, w->label);
        printf(",\"unit\":\"%s\"", w->unit);
        json_num("value", w->value, 1);
        if (w->has_target)
            json_num("target", w->target, 1);
        else
            printf(",\"target\":null");
        printf(",\"baseline\":");
        bench_json_str(stdout, w->base_what);
        json_num("baseline_value", w->base, 1);
        json_num("ratio", w->base > 0 ? w->value / w->base : 0, 1);
        if (w->has_target) {
            printf(",\"pass\":%s}", w->value <= w->target ? "true" : "false");
            all &= w->value <= w->target;
        } else {
            printf(",\"pass\":null}");
        }
    }
    printf("],\"import\":{\"command\":");
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "%s --config %s device import %s --approve", r->bin_cloud, s->conf, r->manifest);
    bench_json_str(stdout, cmd);
    printf(",\"summary\":");
    bench_json_str(stdout, s->import_line);
    json_num("seconds", s->import_s, 1);
    json_num("rows_per_s", (double)r->devices / s->import_s, 1);
    json_num("peak_rss_kib", (double)s->import_rss_kb, 1);
    printf(",\"baseline_command\":");
    if (s->pg)
        snprintf(cmd, sizeof cmd, "psql URL -c 'CREATE TABLE bench_baseline(7 columns)' -c '\\copy bench_baseline "
                                  "FROM %s WITH (FORMAT csv, HEADER true)'", r->manifest);
    else
        snprintf(cmd, sizeof cmd, "sqlite3 -batch -bail %s/baseline.db < %s/baseline.sql", r->tmp.dir, r->tmp.dir);
    bench_json_str(stdout, cmd);
    json_num("baseline_seconds", s->baseline_s, 1);
    printf("},\"snapshot\":{\"command\":");
    snprintf(cmd, sizeof cmd, "otpca_cloud_sync(since 0, max 0) against %s --config %s serve", r->bin_cloud, s->conf);
    bench_json_str(stdout, cmd);
    json_num("seconds", s->snap_s, 1);
    printf(",\"entries\":%llu,\"seeded\":%llu,\"batches\":%llu,\"bytes\":%llu,\"to\":%llu",
           (unsigned long long)s->snap.entries, (unsigned long long)s->snap.seeded,
           (unsigned long long)s->snap.batches, (unsigned long long)s->snap.bytes, (unsigned long long)s->snap_to);
    json_num("server_cpu_main_s", s->srv1.main - s->srv0.main, 1);
    json_num("server_cpu_workers_s", s->srv1.rest - s->srv0.rest, 1);
    json_num("server_cpu_zmq_s", s->srv1.zmq - s->srv0.zmq, 1);
    json_num("client_cpu_s", s->cli_cpu, 1);
    printf(",\"floor\":{\"iterations\":%llu", (unsigned long long)s->fl.iters);
    json_num("device_us", s->fl.dev_us, 1);
    json_num("device_wall_us", s->fl.dev_wall_us, 1);
    json_num("seedbox_us", s->fl.box_us, 1);
    json_num("token_sign_us", s->fl.sign_us, 1);
    json_num("verify_us", s->fl.ver_us, 1);
    json_num("sha256_ns_per_byte", s->fl.sha_ns_per_byte, 1);
    json_num("seconds", floor_s(&s->fl, r->devices, s->snap.batches, s->snap.boxed, s->snap.bytes), 1);
    printf("},\"seeds_checked\":%u},\"delta\":{\"uploads\":%u", s->samples_ok, s->uploads);
    json_num("upload_ms", s->upload_s * 1e3, 1);
    printf(",\"entries\":%llu,\"batches\":%llu,\"bytes\":%llu", (unsigned long long)s->delta.entries,
           (unsigned long long)s->delta.batches, (unsigned long long)s->delta.bytes);
    json_num("first_ms", s->delta_first_ms, 1);
    printf(",\"repeat_ms\":[");
    for (int i = 0; i < REPEATS; i++)
        printf("%s%.3f", i ? "," : "", s->delta_ms[i]);
    printf("],\"empty_ms\":[");
    for (int i = 0; i < REPEATS; i++)
        printf("%s%.3f", i ? "," : "", s->empty_ms[i]);
    printf("],\"notices\":%u,\"notices_approved\":%u},\"server\":{", s->notices, s->notices_approved);
    printf("\"vmhwm_kib\":%ld,\"vmrss_kib\":%ld,\"vmhwm_after_start_kib\":%ld,\"exit\":%d},", s->rss_peak_kb,
           s->rss_now_kb, s->rss_start_kb, s->server_exit);
    printf("\"ingest\":[");
    for (size_t i = 0; i < s->ningest; i++) {
        const struct ingest *g = &s->ingest[i];
        printf("%s{\"instances\":%u,\"records\":%llu,\"kinds\":\"ISSUED+CONFIRMED\",\"devices\":%llu,"
               "\"cert_bytes\":%zu,\"uploads\":%llu,\"devices_checked\":%llu,\"records_sent_again\":%llu",
               i ? "," : "", g->instances, (unsigned long long)g->records, (unsigned long long)g->devices,
               r->cert_len, (unsigned long long)g->uploads, (unsigned long long)g->checked,
               (unsigned long long)g->replayed);
        json_num("seconds", g->secs, 1);
        json_num("records_per_s", (double)g->records / g->secs, 1);
        printf("}");
    }
    printf("]");
    return all;
}

/* The first pass's members at the top (what bench/run.sh reads), the
 * second's (--store both) under "postgres". */
static void print_json(const struct run *r)
{
    const struct results *s = &r->pass[0];
    printf("{\"benchmark\":\"cloud\",");
    bench_json_host(stdout, &r->host, 0);
    printf(",\"ecc\":");
    bench_json_str(stdout, r->ecc);
    printf(",\"devices\":%lu,\"changes\":%lu,\"workers\":%d,\"manifest_bytes\":%llu,"
           "\"manifest_public_key\":\"the rig node's key on every row\",\"targets_scaled\":%s,",
           r->devices, r->changes, WORKERS, (unsigned long long)s->manifest_bytes,
           r->devices != DEFAULT_DEVICES || r->changes != DEFAULT_CHANGES ? "true" : "false");
    int all = json_pass(r, s);
    if (r->npass > 1) {
        printf(",\"postgres\":{");
        int ok = json_pass(r, &r->pass[1]);
        printf(",\"pass\":%s}", ok ? "true" : "false");
        all &= ok;
    }
    printf(",\"machine\":{\"run_s\":%.3f,\"own_cpu_s\":%.3f,\"busy_cpu_s\":%.3f,\"steal_s\":%.3f},\"pass\":%s}\n",
           s->run_s, s->own_s, s->busy_s, s->steal_s, all ? "true" : "false");
    fflush(stdout);
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [--devices N] [--changes C] [--store sqlite|postgres|both] [--instances LIST]\n"
            "       [--records R] [--json] [--keep] [--help]\n"
            "  The cloud registry against the targets of issue #4, end to end with the real\n"
            "  otpca-token and otpca-cloud (found beside this binary, or in $OTPCA_BIN), in a\n"
            "  throw-away directory under $TMPDIR: import N devices (target 30 s per million;\n"
            "  baseline sqlite3 .import, or psql \\copy, of the same CSV), snapshot-sync them to one\n"
            "  manager (10 s per million; baseline the crypto floor measured in this process),\n"
            "  delta-sync C changes (100 ms per thousand; baseline an empty delta), the server's\n"
            "  peak RSS, then records ingested per second with 1, 2, 4 ... `otpca-cloud serve` on\n"
            "  the same store (issue #8; baseline the rate with the first count of the list).\n"
            "  --devices N  devices in the manifest, 1..%lu (default %lu)\n"
            "  --changes C  devices changed before the delta, 1..%lu and at most N (default %lu)\n"
            "  --store S    sqlite (default: a file), postgres (a throw-away cluster started with\n"
            "               deploy/postgres.sh, or $OTPCA_POSTGRES_SH, and stopped at the end), or\n"
            "               both: every measure on SQLite, then on PostgreSQL, side by side\n"
            "  --instances L  instance counts for the ingest measure (default 1,2,4; 0: none)\n"
            "  --records R  records per instance count: ISSUED + CONFIRMED for R/2 distinct devices\n"
            "               (default %lu, at most 2N)\n"
            "  --json       one JSON object on stdout instead of the table\n"
            "  --keep       keep the directory (rig, store, manifest, logs) and print its path\n"
            "  Exit status: 0 when every step ran (a missed target is reported, not an error), 1 when\n"
            "  a step failed, 2 on bad usage, 130 when interrupted. Needs sqlite3 and openssl in\n"
            "  PATH, and psql for postgres.\n",
            MAX_DEVICES, DEFAULT_DEVICES, MAX_CHANGES, DEFAULT_CHANGES, DEFAULT_RECORDS);
}

static int parse_count(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end || errno || v < 1 || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

/* "1,2,4": instance counts for the ingest measure; "0": none. */
static int parse_instances(const char *s, struct run *r)
{
    r->ninstances = 0;
    if (!strcmp(s, "0"))
        return 0;
    for (const char *p = s;;) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || errno || v < 1 || v > INGEST_MAX_INSTANCES || r->ninstances == INGEST_MAX_INSTANCES)
            return -1;
        r->instances[r->ninstances++] = (unsigned)v;
        if (!*end)
            return 0;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
}

static int parse_args(int argc, char **argv, struct run *r)
{
    static const struct option lo[] = {
        {"devices", required_argument, NULL, 'd'}, {"changes", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},          {"keep", no_argument, NULL, 'k'},
        {"store", required_argument, NULL, 's'},   {"instances", required_argument, NULL, 'i'},
        {"records", required_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, changes_given = 0;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (parse_count(optarg, MAX_DEVICES, &r->devices)) {
                fprintf(stderr, PROG ": --devices wants 1..%lu\n", MAX_DEVICES);
                return BENCH_EXIT_USAGE;
            }
            break;
        case 'c':
            if (parse_count(optarg, MAX_CHANGES, &r->changes)) {
                fprintf(stderr, PROG ": --changes wants 1..%lu\n", MAX_CHANGES);
                return BENCH_EXIT_USAGE;
            }
            changes_given = 1;
            break;
        case 's':
            r->stores = !strcmp(optarg, "sqlite") ? STORE_SQLITE : !strcmp(optarg, "postgres") ? STORE_PG
                       : !strcmp(optarg, "both")                                        ? STORE_SQLITE | STORE_PG
                                                                                        : 0;
            if (!r->stores) {
                fprintf(stderr, PROG ": --store wants sqlite, postgres or both\n");
                return BENCH_EXIT_USAGE;
            }
            break;
        case 'i':
            if (parse_instances(optarg, r)) {
                fprintf(stderr, PROG ": --instances wants a list of 1..%d, at most %d of them (e.g. 1,2,4), or 0\n",
                        INGEST_MAX_INSTANCES, INGEST_MAX_INSTANCES);
                return BENCH_EXIT_USAGE;
            }
            break;
        case 'r':
            if (parse_count(optarg, MAX_RECORDS, &r->records) || r->records < 2) {
                fprintf(stderr, PROG ": --records wants 2..%lu\n", MAX_RECORDS);
                return BENCH_EXIT_USAGE;
            }
            break;
        case 'j':
            r->json = 1;
            break;
        case 'k':
            r->keep = 1;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return BENCH_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return BENCH_EXIT_USAGE;
    }
    if (r->changes > r->devices) {
        if (changes_given) {
            fprintf(stderr, PROG ": --changes must be at most --devices\n");
            return BENCH_EXIT_USAGE;
        }
        r->changes = r->devices;
    }
    return -1;
}

static void teardown(struct run *r)
{
    otpca_cloud_client_destroy(&r->client);
    if (r->server > 0) {
        int rc = server_stop(r);
        if (rc != 0)
            fprintf(stderr, PROG ": otpca-cloud serve: %s %d at the end\n", rc < 0 ? "killed," : "exit status", rc);
    }
    if (r->server_out >= 0)
        close(r->server_out);
    r->server_out = -1;
    pg_stop(r); /* after every server that used it */
    otpca_token_destroy(&r->mgr);
    otpca_token_destroy(&r->op);
    otpca_token_destroy(&r->cloud);
    otpca_p11_destroy(&r->p11);
    explicit_bzero(r->curve_sec, sizeof r->curve_sec);
    if (r->seeds)
        explicit_bzero(r->seeds, r->devices * SEED_LEN);
    free(r->seeds);
    free(r->changed);
    free(r->cert);
    r->cert = NULL;
    r->seeds = r->changed = NULL;
}

int main(int argc, char **argv)
{
    static struct run r;
    int ret = EXIT_FAILURE;
    r.devices = DEFAULT_DEVICES;
    r.changes = DEFAULT_CHANGES;
    r.records = DEFAULT_RECORDS;
    r.stores = STORE_SQLITE;
    r.instances[0] = 1, r.instances[1] = 2, r.instances[2] = 4;
    r.ninstances = 3;
    pthread_mutex_init(&r.sign_mu, NULL);
    r.server = -1;
    r.server_out = -1;
    otpca_log_init(PROG, OTPCA_LOG_WARN, OTPCA_LOG_TEXT);
    int rc = parse_args(argc, argv, &r);
    if (rc >= 0)
        return rc;
    bench_catch_signals();
    bench_host_probe(&r.host);
    bench_ecc_config(r.ecc, sizeof r.ecc, 1);
    r.module = bench_pkcs11_module(otpca_p11_default_module());

    if (find_binaries(&r) != 0) {
        fprintf(stderr, PROG ": %s\n", r.failed);
        return EXIT_FAILURE;
    }
    if (bench_rig_open(&r.tmp, PROG, NULL, " and store", 1) != 0)
        return EXIT_FAILURE;
    progress(&r, "working in %s%s", r.tmp.dir, r.keep ? " (kept)" : "");
    double busy0 = 0, steal0 = 0, busy1 = 0, steal1 = 0, t0 = bench_now_s();
    int have_stat = machine_cpu(&busy0, &steal0) == 0;
    int ok = run_all(&r) == 0;
    teardown(&r); /* every child reaped: RUSAGE_CHILDREN has them all */
    r.pass[0].run_s = bench_now_s() - t0; /* the machine during the whole run: with the first pass */
    r.pass[0].own_s = tree_cpu_s();
    if (have_stat && machine_cpu(&busy1, &steal1) == 0) {
        r.pass[0].busy_s = busy1 - busy0;
        r.pass[0].steal_s = steal1 - steal0;
    }
    if (ok) {
        if (r.json)
            print_json(&r);
        else
            print_table(&r);
        ret = EXIT_SUCCESS;
    } else if (bench_stop) {
        fprintf(stderr, PROG ": interrupted\n");
        ret = BENCH_EXIT_SIGNAL;
    } else {
        dump_tail(r.log, "commands.log", 20);
        dump_tail(r.server_log, "server.log", 20);
        fprintf(stderr, PROG ": %s\n", r.failed[0] ? r.failed : "failed");
    }
    if (r.keep)
        fprintf(stderr, PROG ": kept %s\n", r.tmp.dir);
    else
        bench_rig_close(&r.tmp);
    return ret;
}
