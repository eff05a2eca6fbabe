/* The plain corpus runner every fuzz target links when it is not built for
 * libFuzzer: each committed corpus file, then a fixed number of
 * deterministic mutations of it, goes through LLVMFuzzerTestOneInput. So
 * every CI build (gcc, clang, ASan+UBSan, valgrind) feeds each parser
 * hostile input without libFuzzer, and a fixed crash stays fixed (its
 * reproducer is a corpus file).
 *
 *   fuzz_X_corpus [--mutations N] [--seed S] PATH...
 *
 * PATH is a file or a directory (its files, in name order; names starting
 * with '.' and README files are skipped). The mutations are the same on
 * every run (a fixed xorshift seed), so a failure reproduces; the output
 * names the file and the mutation number. Each mutated input is passed in
 * an exact-size heap block, so ASan and valgrind see any read past it. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

#define MAX_SEED (1u << 20)

static uint64_t rng;
static unsigned long mutations = 1000;

/* What is running, for the crash report: the file, and which mutation. */
static const char *current_file;
static long current_mutation = -1;
static const uint8_t *current_input;
static size_t current_len;

/* On a crash (a broken promise aborts): say which input it was and keep a
 * copy of it in ./fuzz-crash-input, to add to the corpus once fixed. */
static void on_crash(int sig)
{
    char msg[4300];
    int n = snprintf(msg, sizeof(msg), "corpus runner: died on %s, %s %ld; input saved to ./fuzz-crash-input\n",
                     current_file ? current_file : "?", current_mutation < 0 ? "the file itself" : "mutation",
                     current_mutation);
    if (n > 0 && write(2, msg, (size_t)n) < 0)
        n = 0;
    FILE *f = fopen("fuzz-crash-input", "wb");
    if (f) {
        fwrite(current_input, 1, current_len, f);
        fclose(f);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Bytes that mean something to one of the parsers: JSON and header
 * punctuation, line ends, INI and key=value syntax, DNS label and pointer
 * octets. */
static const uint8_t interesting[] = {
    0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff, '"', '\\', '{', '}', '[', ']', ':', ',',
    '\r', '\n', '\t', ' ', '=', ';', '<', '>', '#', '.', '*', '-', '0', '9', '%', 'u',
};

/* One to four edits: flip a bit, write a meaningful byte, truncate, cut a
 * range, duplicate a range, copy one part over another, write a DNS
 * compression pointer or a small count. */
static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
    unsigned ops = 1 + (unsigned)(next_rand() % 4);
    for (unsigned i = 0; i < ops && *len; i++) {
        size_t at = (size_t)(next_rand() % *len);
        switch (next_rand() % 9) {
        case 0:
            buf[at] ^= (uint8_t)(1u << (next_rand() % 8));
            break;
        case 1:
        case 2:
            buf[at] = interesting[next_rand() % sizeof(interesting)];
            break;
        case 3:
            *len = at;
            break;
        case 4: { /* cut [at, at + n) */
            size_t n = 1 + (size_t)(next_rand() % 32);
            if (n > *len - at)
                n = *len - at;
            memmove(buf + at, buf + at + n, *len - at - n);
            *len -= n;
            break;
        }
        case 5: { /* duplicate [at, at + n) in place */
            size_t n = 1 + (size_t)(next_rand() % 32);
            if (n > *len - at)
                n = *len - at;
            if (n > cap - *len)
                n = cap - *len;
            memmove(buf + at + n, buf + at, *len - at);
            *len += n;
            break;
        }
        case 6: { /* copy another part over this one */
            size_t from = (size_t)(next_rand() % *len);
            size_t n = 1 + (size_t)(next_rand() % 16);
            if (n > *len - at)
                n = *len - at;
            if (n > *len - from)
                n = *len - from;
            memmove(buf + at, buf + from, n);
            break;
        }
        case 7:
            if (at + 1 < *len) {
                buf[at] = (uint8_t)(0xC0 | (next_rand() % 2));
                buf[at + 1] = (uint8_t)(next_rand() % *len);
            }
            break;
        default:
            buf[at] = (uint8_t)(next_rand() % 8);
            break;
        }
    }
}

static int run_one(const uint8_t *data, size_t len)
{
    /* An exact-size copy, so ASan and valgrind see any overread. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    if (len)
        memcpy(exact, data, len);
    current_input = exact;
    current_len = len;
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int run_file(const char *path, unsigned *files, unsigned long *runs)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    static uint8_t seed[MAX_SEED], buf[MAX_SEED + 4096];
    size_t n = fread(seed, 1, sizeof(seed), f);
    int big = !feof(f);
    fclose(f);
    if (big) {
        fprintf(stderr, "%s: larger than %u bytes; keep corpus files small\n", path, MAX_SEED);
        return -1;
    }
    /* The mutations of each file depend on its name, not on its place in
     * the list, so adding a file does not change the others' inputs. */
    rng = 0x9e3779b97f4a7c15ull;
    for (const char *s = strrchr(path, '/') ? strrchr(path, '/') + 1 : path; *s; s++)
        rng = (rng ^ (uint8_t)*s) * 0x100000001b3ull;
    if (!rng)
        rng = 1;
    current_file = path;
    current_mutation = -1;
    if (run_one(seed, n) != 0)
        return -1;
    for (unsigned long i = 0; i < mutations; i++) {
        current_mutation = (long)i;
        size_t len = n;
        memcpy(buf, seed, n);
        mutate(buf, &len, sizeof(buf));
        if (run_one(buf, len) != 0)
            return -1;
    }
    (*files)++;
    *runs += 1 + mutations;
    return 0;
}

static int wanted(const char *name)
{
    return name[0] != '.' && strncmp(name, "README", 6) != 0;
}

int main(int argc, char **argv)
{
    unsigned files = 0;
    unsigned long runs = 0;
    const char *self = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int paths = 0;
    signal(SIGABRT, on_crash);
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGFPE, on_crash);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mutations") && i + 1 < argc) {
            mutations = strtoul(argv[++i], NULL, 10);
            continue;
        }
        paths++;
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s: %s\n", self, argv[i], strerror(errno));
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i], &files, &runs) != 0)
                return 1;
            continue;
        }
        struct dirent **ents;
        int n = scandir(argv[i], &ents, NULL, alphasort);
        if (n < 0) {
            fprintf(stderr, "%s: %s: %s\n", self, argv[i], strerror(errno));
            return 1;
        }
        int rc = 0;
        for (int k = 0; k < n; k++) {
            if (!rc && wanted(ents[k]->d_name)) {
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s", argv[i], ents[k]->d_name);
                struct stat fst;
                if (stat(p, &fst) == 0 && S_ISREG(fst.st_mode) && run_file(p, &files, &runs) != 0)
                    rc = 1;
            }
            free(ents[k]);
        }
        free(ents);
        if (rc)
            return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (!paths) {
        fprintf(stderr, "usage: %s [--mutations N] CORPUS-DIR-OR-FILE...\n", self);
        return 2;
    }
    printf("%s: %u corpus files, %lu inputs in %.2f s, no broken promise\n", self, files, runs, secs);
    /* A corpus that went missing must not pass as a green run. */
    return files ? 0 : 1;
}
