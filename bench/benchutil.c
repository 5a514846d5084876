/* benchutil: see benchutil.h. */
#define _XOPEN_SOURCE 700 /* nftw */

#include "benchutil.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h> /* as the benchmarks see it, through ecc.h */

#ifndef OTPCA_BENCH_BUILD
#define OTPCA_BENCH_BUILD "?"
#endif

volatile sig_atomic_t bench_stop;

static void on_signal(int sig)
{
    (void)sig;
    bench_stop = 1;
}

void bench_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int bench_run_slice(struct bench *b, bench_op f, double slice, unsigned clock_every,
                    uint64_t *counter, struct bench_tally *t)
{
    uint64_t n = 0;
    double c0 = bench_cpu_s(), w0 = bench_now_s();
    while (n < BENCH_MAX_OPS_PER_SLICE && !bench_stop) {
        if (f(b, (*counter)++) != 0)
            return -1;
        n++;
        if (n % clock_every == 0 &&
            (bench_cpu_s() - c0 >= slice || bench_now_s() - w0 >= BENCH_WALL_FACTOR * slice))
            break;
    }
    t->ops += n;
    t->secs += bench_cpu_s() - c0;
    t->wall += bench_now_s() - w0;
    return bench_stop ? -1 : 0;
}

void bench_tally_add(struct bench_tally *sum, const struct bench_tally *t)
{
    sum->ops += t->ops;
    sum->secs += t->secs;
    sum->wall += t->wall;
}

void bench_range(double q, double *lo, double *hi)
{
    *lo = q < *lo ? q : *lo;
    *hi = q > *hi ? q : *hi;
}

double bench_cpu_share(const struct bench_tally *t)
{
    return t->wall > 0 ? t->secs / t->wall : 0.0;
}

void bench_print_cpu_share(double share)
{
    printf("\nCPU time / wall time over the measurements: %.1f %%%s\n", 100.0 * share,
           share < 0.9 ? " (other processes took the core part of the time: the rates "
                         "are per CPU-second, but expect more noise)"
                       : "");
}

void bench_json_end_cpu_share(double share)
{
    printf("],\"cpu_share\":%.4f}\n", share);
    fflush(stdout);
}

int bench_parse_args(int argc, char **argv, const char *prog, const char *extra_name,
                     void (*usage)(FILE *f), struct bench_args *a)
{
    struct option lo[] = {
        {"seconds", required_argument, NULL, 's'}, {"rounds", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},          {extra_name, required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int c;
    if (!extra_name)
        memmove(&lo[3], &lo[4], 2 * sizeof lo[0]);
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end;
        switch (c) {
        case 's':
            a->seconds = strtod(optarg, &end);
            if (end == optarg || *end || !isfinite(a->seconds) || a->seconds < BENCH_MIN_SECONDS ||
                a->seconds > BENCH_MAX_SECONDS) {
                fprintf(stderr, "%s: --seconds wants %.2f..%.0f\n", prog, BENCH_MIN_SECONDS,
                        BENCH_MAX_SECONDS);
                return BENCH_EXIT_USAGE;
            }
            break;
        case 'r': {
            unsigned long v = strtoul(optarg, &end, 10);
            if (end == optarg || *end || v < 1 || v > BENCH_MAX_ROUNDS) {
                fprintf(stderr, "%s: --rounds wants 1..%u\n", prog, BENCH_MAX_ROUNDS);
                return BENCH_EXIT_USAGE;
            }
            a->rounds = (unsigned)v;
            break;
        }
        case 'j':
            a->json = 1;
            break;
        case 'x':
            a->extra = optarg;
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
    return -1;
}

int bench_start(int argc, char **argv, const char *prog, const char *extra_name,
                void (*usage)(FILE *f), struct bench_args *a, struct bench_host *host)
{
    int rc = bench_parse_args(argc, argv, prog, extra_name, usage, a);
    if (rc < 0) {
        bench_catch_signals();
        bench_host_probe(host);
    }
    return rc;
}

const char *bench_pkcs11_module(const char *fallback)
{
    const char *m = getenv("OTPCA_PKCS11_MODULE");
    return m && *m ? m : fallback;
}

static void cpu_model(char *out, size_t cap)
{
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(out, cap, "?");
    if (!f)
        return;
    for (int k = 0; k < 100000 && fgets(line, sizeof line, f); k++) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        colon += strspn(colon + 1, " \t") + 1;
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(out, cap, "%s", colon);
        break;
    }
    fclose(f);
}

void bench_host_probe(struct bench_host *h)
{
    struct utsname un;
    memset(h, 0, sizeof *h);
    h->cores = sysconf(_SC_NPROCESSORS_ONLN);
    h->cores_conf = sysconf(_SC_NPROCESSORS_CONF);
    cpu_model(h->cpu, sizeof h->cpu);
    if (uname(&un) == 0)
        snprintf(h->os, sizeof h->os, "%s %s %s", un.sysname, un.release, un.machine);
    else
        snprintf(h->os, sizeof h->os, "?");
    h->build = OTPCA_BENCH_BUILD;
}

void bench_print_host(FILE *f, const struct bench_host *h, int with_configured)
{
    fprintf(f, "  host     %s, %ld cores online", h->cpu, h->cores);
    if (with_configured)
        fprintf(f, " (%ld configured)", h->cores_conf);
    fprintf(f, "; %s; build %s\n", h->os, h->build);
}

void bench_json_host(FILE *f, const struct bench_host *h, int with_configured)
{
    fprintf(f, "\"cpu\":");
    bench_json_str(f, h->cpu);
    fprintf(f, ",\"cores\":%ld", h->cores);
    if (with_configured)
        fprintf(f, ",\"cores_configured\":%ld", h->cores_conf);
    fprintf(f, ",\"os\":");
    bench_json_str(f, h->os);
    fprintf(f, ",\"build\":");
    bench_json_str(f, h->build);
}

void bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

void bench_ecc_config(char *out, size_t cap, int say_asm)
{
    const char *asm_note = "";
#if defined(WOLFSSL_HAVE_SP_ECC) && defined(WOLFSSL_SP_X86_64_ASM)
    if (say_asm)
        asm_note = " (x86-64 assembly)";
#else
    (void)say_asm;
#endif
    snprintf(out, cap, "%s%s%s%s%s%s",
#if defined(WOLFSSL_HAVE_SP_ECC)
             "SP P-256 code",
#elif defined(WOLFSSL_SP_MATH_ALL)
             "generic ECC on sp_int (no WOLFSSL_HAVE_SP_ECC)",
#else
             "generic ECC",
#endif
             asm_note,
#ifdef FP_ECC
             ", FP_ECC",
#else
             "",
#endif
#ifdef ECC_SHAMIR
             ", ECC_SHAMIR",
#else
             "",
#endif
#ifdef ECC_TIMING_RESISTANT
             ", ECC_TIMING_RESISTANT",
#else
             "",
#endif
#ifdef WOLFSSL_AESNI
             ", AES-NI"
#else
             ", no AES-NI"
#endif
    );
}

int bench_rig_open(struct bench_rig *r, const char *prog, const char *path, const char *what,
                   int quiet)
{
    char conf[PATH_MAX];
    r->throwaway = 0;
    if (path) {
        if (!realpath(path, r->dir) ||
            snprintf(conf, sizeof conf, "%s/softhsm2.conf", r->dir) >= (int)sizeof conf ||
            access(conf, R_OK) != 0) {
            fprintf(stderr, "%s: %s is no rig (no softhsm2.conf)\n", prog, path);
            r->dir[0] = '\0';
            return -1;
        }
        setenv("SOFTHSM2_CONF", conf, 1);
        return 0;
    }
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    if (snprintf(r->dir, sizeof r->dir, "%s/otpca-bench-XXXXXX", base) >= (int)sizeof r->dir ||
        !mkdtemp(r->dir)) {
        fprintf(stderr, "%s: mkdtemp: %s\n", prog, strerror(errno)); /* as perror */
        r->dir[0] = '\0';
        return -1;
    }
    r->throwaway = 1;
    if (!quiet)
        fprintf(stderr, "creating a throw-away rig%s in %s ...\n", what, r->dir);
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
    if (rc != 0)
        perror(path);
    return 0; /* keep going: remove as much as we can */
}

void bench_rig_close(struct bench_rig *r)
{
    if (r->throwaway && r->dir[0] && nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        perror(r->dir);
}

int bench_lib_fail(struct bench_failure *f, int err, const char *what)
{
    f->err = err;
    f->wc = 0;
    f->what = what;
    return -1;
}

int bench_wc_fail(struct bench_failure *f, int rc, const char *what)
{
    f->err = 0;
    f->wc = rc;
    f->what = what;
    return -1;
}

int bench_fail(const char *prog, const char *what, const char *why)
{
    if (bench_stop) {
        fprintf(stderr, "%s: interrupted\n", prog);
        return BENCH_EXIT_SIGNAL;
    }
    if (what)
        fprintf(stderr, "%s: %s: %s\n", prog, what, why);
    return EXIT_FAILURE;
}

int bench_fail_wc(const char *prog, const struct bench_failure *f, const char *err_text)
{
    char why[48];
    if (f->wc)
        snprintf(why, sizeof why, "wolfCrypt error %d", f->wc);
    return bench_fail(prog, f->what, f->wc ? why : err_text);
}
