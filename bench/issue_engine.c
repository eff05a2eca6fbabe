/* issue_engine — libacme, concurrent: one process, one client, one account,
 * an engine (include/acme/engine.h) managing COUNT single-name certificates,
 * driven by a poll() loop of its own until idle, as a host's loop would
 * (http-01 published into a webroot, as the peer clients do). Each step is
 * timed in wall time (acme_engine_longest_step_us) and in this thread's
 * CPU time: on a loaded machine a step can be descheduled, and the CPU
 * figure tells the engine's work from the wait for a core.
 *
 *   issue_engine -d DIRECTORY_URL -c CA_FILE -s STATE_DIR -w WEBROOT
 *                -o OUT_DIR -n COUNT -p PREFIX [-j MAX_ORDERS] [-m] [-v]
 *
 * Prints "issued=N failed=M ordered=K seconds=S longest_step_us=U
 * longest_step_cpu_us=C steps=T steps_waited=W longest_waited_us=X
 * longest_unwaited_us=Y" (K: orders of the certificates' lives, restored
 * from storage; W: steps in which this thread blocked, which must stay 0;
 * X and Y: the longest wall time of those steps and of the others). Exit 0 only if
 * every certificate is valid. Bounded: the loop runs at most 600 s.
 * Used by bench/issuance_bench.sh, scale_bench.sh, startup_bench.sh. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "issue_common.h"

#include <poll.h>
#include <sys/resource.h>

#include <acme/engine.h>

#define LOOP_BOUND_MS 600000

static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The host's loop: step, then wait for the engine's descriptors or its
 * timeout. Ends when the engine is idle and its next piece of work lies
 * beyond the bound (every certificate valid: the next renewal). */
/* Voluntary context switches of this thread: a step that made one
 * blocked (a lock, a read, a wait for another thread), which a step must
 * never do; a step descheduled for a core makes involuntary ones only. */
static long thread_waits_now(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nvcsw : 0;
}

static unsigned long steps_run, steps_waited;
static double longest_waited, longest_unwaited; /* wall, s: steps that blocked, and the others */

static void run_loop(acme_engine *e, double *longest_cpu)
{
    struct pollfd *fds = NULL;
    size_t cap = 0;
    double end = bench_now() + LOOP_BOUND_MS / 1000.0;
    *longest_cpu = 0;
    for (;;) {
        double c0 = thread_cpu_now(), t0 = bench_now();
        long w0 = thread_waits_now();
        acme_engine_step(e);
        double used = thread_cpu_now() - c0, took = bench_now() - t0;
        int waited = thread_waits_now() != w0;
        steps_run++;
        steps_waited += (unsigned long)waited;
        double *worst = waited ? &longest_waited : &longest_unwaited;
        if (took > *worst)
            *worst = took;
        if (used > *longest_cpu)
            *longest_cpu = used;
        int wait = acme_engine_timeout_ms(e);
        double now = bench_now();
        if (now >= end || (acme_engine_idle(e) && (wait < 0 || now + wait / 1000.0 > end)))
            break;
        size_t n = 0;
        while (acme_engine_fds(e, fds, cap, &n) != ACME_OK) {
            struct pollfd *grown = realloc(fds, (n + 8) * sizeof(*fds));
            if (!grown)
                break;
            fds = grown;
            cap = n + 8;
        }
        int ms = wait < 0 || wait > 1000 ? 1000 : wait;
        poll(fds, n <= cap ? n : cap, ms);
    }
    free(fds);
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse(argc, argv, &o, 1);
    double t0 = bench_now();
    acme_client *c = bench_client(&o, "issue_engine");
    if (!c)
        return 1;
    acme_engine_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.size = sizeof(eo);
    eo.max_orders = (unsigned)o.jobs;
    acme_engine *e = NULL;
    int rc = acme_engine_new(c, &eo, &e);
    if (rc != ACME_OK) {
        fprintf(stderr, "issue_engine: acme_engine_new: %s\n", acme_strerror(rc));
        acme_client_free(c);
        return 1;
    }
    for (int i = 0; i < o.count; i++) {
        acme_issue_params ip;
        bench_fill_params(&ip, (const char *const *)&o.names[i]);
        rc = acme_engine_manage(e, &ip);
        if (rc != ACME_OK) {
            fprintf(stderr, "issue_engine: manage %s: %s (%s)\n", o.names[i], acme_strerror(rc),
                    acme_client_last_error(c));
            acme_engine_free(e);
            acme_client_free(c);
            return 1;
        }
    }
    double longest_cpu;
    run_loop(e, &longest_cpu);

    /* Count the states the engine reports, one certificate at a time: the
     * whole status as one JSON text would cost more memory than the
     * engine carrying 100,000 certificates, and peak RSS is measured. */
    int valid = 0, shown = 0;
    unsigned long ordered = 0;
    for (int i = 0; i < o.count; i++) {
        acme_cert_status st;
        memset(&st, 0, sizeof(st));
        st.size = sizeof(st);
        int src = acme_engine_cert_status(e, o.names[i], &st);
        ordered += src == ACME_OK ? st.attempts : 0;
        if (src == ACME_OK && st.state == ACME_CERT_STATE_VALID) {
            valid++;
        } else if (shown++ < 5) {
            fprintf(stderr, "issue_engine: %s: state %d (%s)\n", o.names[i], (int)st.state,
                    st.last_error ? st.last_error : "");
        }
    }
    unsigned long long longest = (unsigned long long)acme_engine_longest_step_us(e);
    acme_engine_free(e);
    acme_client_free(c);
    printf("issued=%d failed=%d ordered=%lu seconds=%.3f longest_step_us=%llu longest_step_cpu_us=%.0f "
           "steps=%lu steps_waited=%lu longest_waited_us=%.0f longest_unwaited_us=%.0f\n",
           o.installed, o.count - valid, ordered, bench_now() - t0, longest, longest_cpu * 1e6, steps_run,
           steps_waited, longest_waited * 1e6, longest_unwaited * 1e6);
    return (valid == o.count && o.installed == o.count) ? 0 : 1;
}
