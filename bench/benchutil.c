/* benchutil: see benchutil.h. */
#include "benchutil.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

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
