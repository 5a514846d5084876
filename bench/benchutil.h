/*
 * benchutil: the scaffolding that otpca-bench-token and otpca-bench-proto
 * share, and nothing of what they measure. It parses the common command line
 * (--seconds S, --rounds N, --json, --help and one option of the
 * benchmark's own that takes an argument) with the same limits and messages
 * in both; catches SIGINT and SIGTERM into bench_stop, which the timing
 * loops poll to stop at the next operation; reads the clocks (monotonic
 * wall time, the thread's CPU time; inline, as the timing loops call them
 * between operations); gathers the machine facts every report carries (CPU
 * model from /proc/cpuinfo, cores online and configured, kernel, build
 * type) and prints them for the text header and the JSON object; and
 * writes JSON strings. The tallies, the interleaving of the two sides and
 * the tables stay in each benchmark: they differ.
 */
#ifndef OTPCA_BENCH_BENCHUTIL_H
#define OTPCA_BENCH_BENCHUTIL_H

#include <signal.h>
#include <stdio.h>
#include <time.h>

#define BENCH_EXIT_USAGE 2    /* bad command line */
#define BENCH_EXIT_SIGNAL 130 /* stopped by SIGINT or SIGTERM */

#define BENCH_MIN_SECONDS 0.05
#define BENCH_MAX_SECONDS 3600.0
#define BENCH_MAX_ROUNDS 1000u
#define BENCH_WARMUP_MAX_SECONDS 0.5
#define BENCH_MAX_OPS_PER_SLICE 10000000ull /* a slice also ends at this count */

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

/* s as a JSON string, quotes included. */
void bench_json_str(FILE *f, const char *s);

#endif
