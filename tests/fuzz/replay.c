/*
 * Replay driver for builds without libFuzzer (gcc, the default): feeds
 * every file named on the command line, and every regular file in every
 * directory named there (not recursive, in name order), to
 * LLVMFuzzerTestOneInput once. Each input sits in a heap block of exactly
 * its size, so a sanitizer build (OTPCA_SANITIZE) catches reads past it.
 *
 *   fuzz_<target> FILE|DIR...
 *
 * Exit 0 after replaying at least one input; 1 if none was found or a
 * file could not be read. A failed invariant aborts (as under libFuzzer).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replay_file(const char *path, unsigned *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f) || !buf;
    fclose(f);
    if (err) {
        fprintf(stderr, "replay: %s: read failed\n", path);
        free(buf);
        return -1;
    }
    /* Exactly len bytes, so that any overread is outside the block. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    if (len)
        memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    (*count)++;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int replay_path(const char *path, unsigned *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path, count);
    struct dirent **names;
    int n = scandir(path, &names, NULL, by_name);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int ret = 0;
    for (int i = 0; i < n; i++) {
        char full[4096];
        int w = snprintf(full, sizeof full, "%s/%s", path, names[i]->d_name);
        if (ret == 0 && w > 0 && (size_t)w < sizeof full && names[i]->d_name[0] != '.' &&
            stat(full, &st) == 0 && S_ISREG(st.st_mode))
            ret = replay_file(full, count);
        free(names[i]);
    }
    free(names);
    return ret;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (replay_path(argv[i], &count) != 0)
            return 1;
    printf("replayed %u inputs\n", count);
    return count ? 0 : 1;
}
