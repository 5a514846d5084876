/*
 * benchutil: the scaffolding that otpca-bench-token, otpca-bench-proto and
 * otpca-bench-crypto share, and nothing of what they measure. It starts a
 * benchmark: parses the common command line (--seconds S, --rounds N,
 * --json, --help and one option of the benchmark's own that takes an
 * argument) with the same limits and messages in all, catches SIGINT and
 * SIGTERM into bench_stop, which the timing loops poll to stop at the next
 * operation, and gathers the machine facts every report carries (CPU model
 * from /proc/cpuinfo, cores online and configured, kernel, build type, and
 * how the wolfSSL headers built against do P-256), printed for the text
 * header and the JSON object. It reads the clocks (monotonic wall time, the
 * thread's CPU time; inline, as the timing loops call them between
 * operations); runs an operation for a slice of CPU time and folds slices
 * into tallies, rates, their range over the rounds and the CPU share;
 * writes JSON strings; makes the SoftHSM rig's directory for the token
 * benchmarks (a throw-away one, removed at the end, or --rig DIR checked)
 * and picks their PKCS#11 module; and records what failed and reports it
 * (or the interruption) with the exit status. The operations, the
 * interleaving of the sides and the tables stay in each benchmark: they
 * differ.
 */
#ifndef OTPCA_BENCH_BENCHUTIL_H
#define OTPCA_BENCH_BENCHUTIL_H

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define BENCH_EXIT_USAGE 2    /* bad command line */
#define BENCH_EXIT_SIGNAL 130 /* stopped by SIGINT or SIGTERM */

#define BENCH_MIN_SECONDS 0.05
#define BENCH_MAX_SECONDS 3600.0
#define BENCH_MAX_ROUNDS 1000u
#define BENCH_WARMUP_MAX_SECONDS 0.5
#define BENCH_MAX_OPS_PER_SLICE 10000000ull /* a slice also ends at this count */
#define BENCH_WALL_FACTOR 4.0 /* a CPU-time slice also ends at this many times its CPU time, wall */

/* Set by SIGINT and SIGTERM once bench_catch_signals has run. */
extern volatile sig_atomic_t bench_stop;

void bench_catch_signals(void);

static inline double bench_clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline double bench_now_s(void) { return bench_clock_s(CLOCK_MONOTONIC); }
static inline double bench_cpu_s(void) { return bench_clock_s(CLOCK_THREAD_CPUTIME_ID); }

/* The warm-up per side: a quarter of the measurement, at most
 * BENCH_WARMUP_MAX_SECONDS. */
static inline double bench_warmup(double seconds)
{
    return seconds / 4 < BENCH_WARMUP_MAX_SECONDS ? seconds / 4 : BENCH_WARMUP_MAX_SECONDS;
}

/* Each benchmark defines its own struct bench (the state its operations
 * work on); here it is only passed through. An operation gets the running
 * count i of its calls (to walk a pool of keys) and returns 0, or -1 after
 * recording the failure. */
struct bench;
typedef int (*bench_op)(struct bench *b, uint64_t i);

/* What one side did. secs is the time the rate is per: the thread's CPU
 * time (bench_run_slice), or wall time where a benchmark times by the wall
 * clock (otpca-bench-token, which leaves wall at 0); wall is the wall time
 * where secs is CPU time. */
struct bench_tally {
    uint64_t ops;
    double secs;
    double wall;
};

static inline double bench_rate(const struct bench_tally *t)
{
    return t->secs > 0 ? (double)t->ops / t->secs : 0.0;
}

/* Microseconds per operation at r ops/s; 0 for no rate. */
static inline double bench_us_per(double r) { return r > 0 ? 1e6 / r : 0.0; }

/* Run f for slice seconds of CPU time, or BENCH_WALL_FACTOR * slice of wall
 * time (when other processes take the core), or BENCH_MAX_OPS_PER_SLICE
 * calls, whichever ends first, reading the clocks every clock_every calls;
 * *counter is the i of the next call. Adds to *t; returns -1 when f failed
 * or a signal stopped the run, else 0. */
int bench_run_slice(struct bench *b, bench_op f, double slice, unsigned clock_every,
                    uint64_t *counter, struct bench_tally *t);

/* sum += t, field by field. */
void bench_tally_add(struct bench_tally *sum, const struct bench_tally *t);

/* Widen [*lo, *hi] to take q (a round's rate or ratio). */
void bench_range(double q, double *lo, double *hi);

/* CPU time / wall time of t, 0 without wall time. */
double bench_cpu_share(const struct bench_tally *t);

/* "\nCPU time / wall time over the measurements: <share> %[ (...noise)]\n"
 * on stdout; the note when share < 0.9. */
void bench_print_cpu_share(double share);

/* The end of a JSON object whose last member so far is an array:
 * "],\"cpu_share\":<share>}\n" on stdout, flushed. */
void bench_json_end_cpu_share(double share);

/* The command line. seconds and rounds hold the benchmark's defaults when
 * bench_parse_args is called; extra is the argument of its own option. */
struct bench_args {
    double seconds;
    unsigned rounds;
    int json;
    const char *extra;
};

/* Parse argv with getopt_long: --seconds, --rounds, --json, --<extra_name>
 * ARG (when extra_name is not NULL) and --help. Messages start with prog;
 * usage(f) prints the benchmark's help. Returns -1 to go on, else the exit
 * status for main: EXIT_SUCCESS after --help, BENCH_EXIT_USAGE on a bad
 * command line. */
int bench_parse_args(int argc, char **argv, const char *prog, const char *extra_name,
                     void (*usage)(FILE *f), struct bench_args *a);

/* The machine the numbers come from. */
struct bench_host {
    char cpu[256], os[256];
    long cores, cores_conf; /* online, configured */
    const char *build;      /* CMAKE_BUILD_TYPE, +asan+ubsan when sanitized */
};

void bench_host_probe(struct bench_host *h);

/* "  host     <cpu>, <n> cores online[ (<m> configured)]; <os>; build <b>\n" */
void bench_print_host(FILE *f, const struct bench_host *h, int with_configured);

/* "cpu":...,"cores":n[,"cores_configured":m],"os":...,"build":... with no
 * comma or brace around. */
void bench_json_host(FILE *f, const struct bench_host *h, int with_configured);

/* The start of every benchmark: bench_parse_args, and when that says go on
 * (-1), bench_catch_signals and bench_host_probe(host). Returns what
 * bench_parse_args returned. */
int bench_start(int argc, char **argv, const char *prog, const char *extra_name,
                void (*usage)(FILE *f), struct bench_args *a, struct bench_host *host);

/* The PKCS#11 module: $OTPCA_PKCS11_MODULE, or fallback when that is unset
 * or empty. */
const char *bench_pkcs11_module(const char *fallback);

/* s as a JSON string, quotes included. */
void bench_json_str(FILE *f, const char *s);

/* How the wolfSSL headers built against do P-256 (what the numbers depend
 * on): "SP P-256 code[ (x86-64 assembly)]", "generic ECC on sp_int (no
 * WOLFSSL_HAVE_SP_ECC)" or "generic ECC", then ", FP_ECC", ", ECC_SHAMIR",
 * ", ECC_TIMING_RESISTANT" where set and ", AES-NI" or ", no AES-NI". The
 * assembly note only when say_asm. */
void bench_ecc_config(char *out, size_t cap, int say_asm);

/* The SoftHSM rig a token benchmark works on. */
struct bench_rig {
    char dir[PATH_MAX]; /* its real path; empty until bench_rig_open succeeds */
    int throwaway;      /* dir is a new directory of ours: bench_rig_close removes it */
};

/* With path (--rig DIR): an existing rig, whose directory must hold
 * softhsm2.conf; SOFTHSM2_CONF is set to that. Without: a new empty
 * directory $TMPDIR/otpca-bench-XXXXXX (/tmp without TMPDIR) for a
 * throw-away rig, which the caller then fills (otpca_rig_create), announced
 * on stderr unless quiet: "creating a throw-away rig<what> in <dir> ...".
 * Returns 0, or -1 after a message starting with prog. */
int bench_rig_open(struct bench_rig *r, const char *prog, const char *path, const char *what,
                   int quiet);

/* A throw-away rig: remove its directory and everything below it, as much
 * as can be (perror for the rest). An existing rig stays. */
void bench_rig_close(struct bench_rig *r);

/* What failed, for the report at the end (bench_fail_wc). */
struct bench_failure {
    const char *what; /* the call or the step; NULL while nothing failed */
    int err;          /* the library's error (an otpca_err) when wc is 0 */
    int wc;           /* a wolfCrypt error code; 0: none */
};

/* Record a failure of the library (err) or of wolfCrypt (rc, kept as it
 * is); both return -1. */
int bench_lib_fail(struct bench_failure *f, int err, const char *what);
int bench_wc_fail(struct bench_failure *f, int rc, const char *what);

/* The end of a failed run. When a signal stopped it, "<prog>: interrupted"
 * and BENCH_EXIT_SIGNAL; else, when what is not NULL, "<prog>: <what>:
 * <why>", and EXIT_FAILURE. All on stderr. */
int bench_fail(const char *prog, const char *what, const char *why);

/* bench_fail with why "wolfCrypt error <f->wc>" when f->wc is not 0, else
 * err_text (the text of f->err). */
int bench_fail_wc(const char *prog, const struct bench_failure *f, const char *err_text);

#endif
