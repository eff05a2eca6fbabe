/* slow_step — the longest acme_engine_step while COUNT certificates are
 * issued through slow host tables, against a peer pass in the same run.
 *
 *   slow_step -d DIRECTORY_URL -c CA_FILE [-n COUNT] [-t TRANSPORT_MS] [-s STORE_MS]
 *
 * Two passes, each with a fresh account, fresh names and a fresh
 * in-memory storage table (tests/engine/slow_tables.c):
 *   zero  a host transport (asynchronous face) and storage table with no delay;
 *   slow  the same with TRANSPORT_MS (default 100) added to every request
 *         and STORE_MS (default 20) to every storage write, lock and unlock.
 * The program drives the engine itself (acme_engine_fds + poll + step) and
 * times every step. Prints one line per pass:
 *   pass=P transport_ms=T store_ms=S certs=N wall_s=W steps=K
 *   longest_step_us=L p99_step_us=Q median_step_us=M requests=R writes=X
 * Exit 0 only if every certificate of both passes was installed.
 * Needs PEBBLE_VA_ALWAYS_VALID=1 (publish serves nothing). Used by
 * bench/slow_step_bench.sh. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <poll.h>
#include <sys/resource.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <acme/acme.h>

#include "slow_tables.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct pass_state {
    unsigned installs;
} pass_state;

static int ok_cb(void *ud, const acme_challenge *ch)
{
    (void)ud, (void)ch;
    return ACME_OK; /* Pebble validates nothing (PEBBLE_VA_ALWAYS_VALID) */
}

static int on_install(void *ud, const acme_certificate *cert)
{
    (void)cert;
    ((pass_state *)ud)->installs++;
    return ACME_OK;
}

static uint64_t cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Voluntary context switches of this thread: a step that waited (a lock,
 * a condition, a sleeping system call) has some; one only preempted has none. */
static long vcsw(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_nvcsw;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int run_pass(const char *label, const char *dir_url, const char *ca, int count, unsigned t_ms,
                    unsigned s_ms)
{
    slow_transport *t = slow_transport_new(ca, t_ms, 16);
    slow_store *s = slow_store_new(s_ms);
    pass_state ps = {0};
    acme_client *c = NULL;
    int rc = acme_client_new(dir_url, &c);
    if (rc) {
        fprintf(stderr, "slow_step: acme_client_new: %s\n", acme_strerror(rc));
        return 1;
    }
    acme_host_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.size = sizeof(cb);
    cb.publish = ok_cb;
    cb.unpublish = ok_cb;
    cb.install = on_install;
    acme_transport_ops to = slow_transport_ops(0);
    acme_storage_ops so = slow_store_ops();
    acme_account_params ap;
    memset(&ap, 0, sizeof(ap));
    ap.size = sizeof(ap);
    ap.agree_tos = 1;
    acme_engine *e = NULL;
    if ((rc = acme_client_set_host(c, &cb, &ps)) || (rc = acme_client_set_transport(c, &to, t)) ||
        (rc = acme_client_set_storage(c, &so, s)) || (rc = acme_account_register(c, &ap)) ||
        (rc = acme_engine_new(c, NULL, &e))) {
        fprintf(stderr, "slow_step: set-up: %s (%s)\n", acme_strerror(rc), acme_client_last_error(c));
        return 1;
    }
    for (int i = 0; i < count; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s%03d.bench.example", label, i);
        const char *names[] = {name};
        acme_issue_params ip;
        memset(&ip, 0, sizeof(ip));
        ip.size = sizeof(ip);
        ip.names = names;
        ip.name_count = 1;
        if ((rc = acme_engine_manage(e, &ip))) {
            fprintf(stderr, "slow_step: manage %s: %s\n", name, acme_strerror(rc));
            return 1;
        }
    }
    size_t cap = 1024, nsteps = 0;
    uint64_t *steps = malloc(cap * sizeof(*steps));
    uint64_t cpu_max = 0;
    unsigned waited = 0;
    struct pollfd fds[256];
    double t0 = now_s();
    while ((int)ps.installs < count && now_s() - t0 < 600) {
        size_t n = 0;
        if (acme_engine_fds(e, fds, 256, &n) != ACME_OK)
            n = 0;
        poll(fds, n, acme_engine_timeout_ms(e));
        double a = now_s();
        uint64_t ca0 = cpu_us();
        long v0 = vcsw();
        acme_engine_step(e);
        if (vcsw() != v0)
            waited++;
        uint64_t us = (uint64_t)((now_s() - a) * 1e6);
        /* CPU time of this thread in the step: what it did itself, without
         * the time the kernel gave other threads (2 shared cores here). */
        uint64_t cu = cpu_us() - ca0;
        if (cu > cpu_max)
            cpu_max = cu;
        if (nsteps == cap && !(steps = realloc(steps, (cap *= 2) * sizeof(*steps))))
            return 1;
        steps[nsteps++] = us;
    }
    double wall = now_s() - t0;
    qsort(steps, nsteps, sizeof(*steps), cmp_u64);
    uint64_t longest = nsteps ? steps[nsteps - 1] : 0;
    uint64_t p99 = nsteps ? steps[(nsteps * 99) / 100] : 0;
    uint64_t med = nsteps ? steps[nsteps / 2] : 0;
    printf("pass=%s transport_ms=%u store_ms=%u certs=%u wall_s=%.2f steps=%zu longest_step_us=%llu "
           "p99_step_us=%llu median_step_us=%llu engine_longest_us=%llu longest_step_cpu_us=%llu steps_that_waited=%u requests=%u writes=%u\n",
           label, t_ms, s_ms, ps.installs, wall, nsteps, (unsigned long long)longest, (unsigned long long)p99,
           (unsigned long long)med, (unsigned long long)acme_engine_longest_step_us(e), (unsigned long long)cpu_max, waited,
           slow_transport_requests(t), slow_store_writes(s));
    fflush(stdout);
    free(steps);
    acme_engine_free(e);
    acme_client_free(c);
    slow_transport_free(t);
    slow_store_free(s);
    return (int)ps.installs == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *dir_url = NULL, *ca = NULL;
    int count = 50;
    unsigned t_ms = 100, s_ms = 20;
    int opt;
    while ((opt = getopt(argc, argv, "d:c:n:t:s:")) != -1) {
        switch (opt) {
        case 'd': dir_url = optarg; break;
        case 'c': ca = optarg; break;
        case 'n': count = atoi(optarg); break;
        case 't': t_ms = (unsigned)atoi(optarg); break;
        case 's': s_ms = (unsigned)atoi(optarg); break;
        default:
            fprintf(stderr, "usage: slow_step -d DIRECTORY_URL -c CA_FILE [-n COUNT] [-t MS] [-s MS]\n");
            return 2;
        }
    }
    if (!dir_url || !ca || count < 1) {
        fprintf(stderr, "usage: slow_step -d DIRECTORY_URL -c CA_FILE [-n COUNT] [-t MS] [-s MS]\n");
        return 2;
    }
    int bad = run_pass("zero", dir_url, ca, count, 0, 0);
    bad |= run_pass("slow", dir_url, ca, count, t_ms, s_ms);
    return bad;
}
