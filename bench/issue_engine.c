/* issue_engine — libacme, concurrent: one process, one client, one account,
 * an engine (include/acme/engine.h) managing COUNT single-name certificates,
 * driven by a poll() loop of its own until idle, as a host's loop would
 * (http-01 published into a webroot, as the peer clients do). Each step is
 * timed in wall time (acme_engine_longest_step_us) and in this thread's
 * CPU time: on a loaded machine a step can be descheduled, and the CPU
 * figure tells the engine's work from the wait for a core.
 *
 *   issue_engine -d DIRECTORY_URL -c CA_FILE -s STATE_DIR -w WEBROOT
 *                -o OUT_DIR -n COUNT -p PREFIX [-j MAX_ORDERS] [-t SECONDS]
 *                [-K LAST] [-m] [-v]
 *
 * Prints "issued=N failed=M ordered=K seconds=S longest_step_us=U
 * longest_step_cpu_us=C steps=T steps_waited=W longest_waited_us=X
 * longest_unwaited_us=Y" (K: orders of the certificates' lives, restored
 * from storage; W: steps in which this thread blocked, which must stay 0;
 * X and Y: the longest wall time of those steps and of the others); then "step_wall_us=... step_at=... over10_wall=..." (the
 * longest step in wall time: its CPU time, its wait for a core, its
 * voluntary and involuntary context switches and major faults, the
 * certificates installed when it ran; then how many steps took over 10 ms
 * of wall time, of CPU time, and of wall time less the wait for a core);
 * and with -K "window_installs=W window_seconds=S" (the installs
 * between the two callgrind marks and the wall time between them). Exit 0
 * only if every certificate is valid. Bounded: the loop runs at most
 * SECONDS (-t, default 600).
 *
 * -K LAST, for valgrind --tool=callgrind --instr-atstart=no
 * (bench/instr_at_scale.sh): when COUNT-LAST certificates are installed the
 * loop switches callgrind's instrumentation on and zeroes its counters;
 * when all COUNT are, it dumps them (the dump holds exactly the last LAST
 * issuances: from the end of the step that installed the one to the end of
 * the step that installed the other) and switches it off again, so the
 * status queries and teardown below are not in the dump. Done here rather
 * than by callgrind_control from a script polling the certificate count:
 * that lands up to a poll interval after the install, mid-issuance, and
 * cannot stop before the process exits. Outside valgrind the marks cost a
 * few instructions.
 * Used by bench/issuance_bench.sh, scale_bench.sh, startup_bench.sh,
 * instr_at_scale.sh. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "issue_common.h"

#include <poll.h>
#include <sys/resource.h>

#include <acme/engine.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND_H 1
#endif
#endif

#define LOOP_BOUND_S 600

/* The callgrind window of -K: its marks and what it saw. */
typedef struct window {
    int start_at; /* installs when it opens (>= 1); 0 = no window */
    int opened, closed;
    int installs_at_open, installs_at_close;
    double t_open, t_close;
} window;

static void window_check(window *w, const bench_opts *o)
{
    if (!w->start_at)
        return;
    if (!w->opened && o->installed >= w->start_at) {
        w->opened = 1;
        w->installs_at_open = o->installed;
        w->t_open = bench_now();
#ifdef HAVE_CALLGRIND_H
        CALLGRIND_START_INSTRUMENTATION;
        CALLGRIND_ZERO_STATS;
#endif
    } else if (w->opened && !w->closed && o->installed >= o->count) {
        w->closed = 1;
        w->installs_at_close = o->installed;
        w->t_close = bench_now();
#ifdef HAVE_CALLGRIND_H
        CALLGRIND_DUMP_STATS_AT("issue_engine -K window");
        CALLGRIND_STOP_INSTRUMENTATION;
#endif
    }
}

static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What a long step did besides computing: a voluntary context switch is a
 * wait (a lock, a read or write the kernel put to sleep), an involuntary
 * one a core taken away; a major fault a page read from disk. The
 * runqueue time (the second field of /proc/thread-self/schedstat) is how
 * long the thread was ready to run and waited for a core: wall - CPU -
 * runqueue is what it spent blocked. */
typedef struct step_view {
    double wall, cpu, runq;
    long vcsw, ivcsw, majflt;
    int installed; /* certificates installed when it ran */
} step_view;

typedef struct step_stats {
    step_view longest;     /* the longest in wall time */
    int over_10ms_wall;    /* steps over 10 ms, wall */
    int over_10ms_cpu;     /* and in this thread's CPU time */
    int over_10ms_no_runq; /* and in wall time less the runqueue wait */
    unsigned long steps, waited; /* steps, and those whose thread blocked (a voluntary switch) */
    double longest_waited, longest_unwaited; /* wall, s: of those that blocked, of the others */
    /* The steps of most CPU time, with when they began (CLOCK_MONOTONIC,
     * the clock of perf record -k CLOCK_MONOTONIC): a profile of the run
     * can then be cut to them (printed to stderr at the end). */
    struct { double t0, cpu, wall; int installed; } top[5];
} step_stats;

static void top_note(step_stats *ss, double t0, double cpu, double wall, int installed)
{
    size_t n = sizeof(ss->top) / sizeof(ss->top[0]);
    size_t i = n;
    while (i > 0 && cpu > ss->top[i - 1].cpu)
        i--;
    if (i == n)
        return;
    memmove(&ss->top[i + 1], &ss->top[i], (n - 1 - i) * sizeof(ss->top[0]));
    ss->top[i].t0 = t0;
    ss->top[i].cpu = cpu;
    ss->top[i].wall = wall;
    ss->top[i].installed = installed;
}

/* Seconds this thread has waited on a runqueue; 0 where the kernel does
 * not say (fd < 0). */
static double runq_now(int fd)
{
    char buf[128];
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long long on_cpu = 0, waiting = 0;
    if (sscanf(buf, "%llu %llu", &on_cpu, &waiting) != 2)
        return 0;
    return (double)waiting / 1e9;
}

static void thread_usage(long *vcsw, long *ivcsw, long *majflt)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0)
        memset(&ru, 0, sizeof(ru));
    *vcsw = ru.ru_nvcsw;
    *ivcsw = ru.ru_nivcsw;
    *majflt = ru.ru_majflt;
}

/* The host's loop: step, then wait for the engine's descriptors or its
 * timeout. Ends when the engine is idle and its next piece of work lies
 * beyond the bound (every certificate valid: the next renewal). */
static void run_loop(acme_engine *e, const bench_opts *o, window *win, double *longest_cpu,
                     step_stats *ss)
{
    struct pollfd *fds = NULL;
    size_t cap = 0;
    double end = bench_now() + (o->bound_s ? o->bound_s : LOOP_BOUND_S);
    *longest_cpu = 0;
    memset(ss, 0, sizeof(*ss));
    /* Counting instructions (-K), the loop reads nothing per step but the
     * clocks: its own getrusage, pread and sscanf would be counted as the
     * engine's (about 0.05 M instructions per issuance). */
    int detail = !win->start_at;
    int sched_fd = detail ? open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC) : -1;
    for (;;) {
        long v0 = 0, i0 = 0, f0 = 0, v1 = 0, i1 = 0, f1 = 0;
        if (detail)
            thread_usage(&v0, &i0, &f0);
        double r0 = runq_now(sched_fd);
        double w0 = bench_now(), c0 = thread_cpu_now();
        acme_engine_step(e);
        double used = thread_cpu_now() - c0, wall = bench_now() - w0;
        double runq = runq_now(sched_fd) - r0;
        if (detail)
            thread_usage(&v1, &i1, &f1);
        if (used > *longest_cpu)
            *longest_cpu = used;
        ss->over_10ms_wall += wall > 0.010;
        ss->over_10ms_cpu += used > 0.010;
        ss->over_10ms_no_runq += wall - runq > 0.010;
        /* A step must never block: one that made a voluntary switch did. */
        ss->steps++;
        ss->waited += v1 != v0;
        double *worst = v1 != v0 ? &ss->longest_waited : &ss->longest_unwaited;
        if (wall > *worst)
            *worst = wall;
        top_note(ss, w0, used, wall, o->installed);
        if (wall > ss->longest.wall) {
            step_view sv = { wall, used, runq, v1 - v0, i1 - i0, f1 - f0, o->installed };
            ss->longest = sv;
        }
        window_check(win, o);
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
    if (sched_fd >= 0)
        close(sched_fd);
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse(argc, argv, &o, 1);
#ifndef HAVE_CALLGRIND_H
    if (o.window) {
        fprintf(stderr, "issue_engine: -K needs <valgrind/callgrind.h> at build time\n");
        return 2;
    }
#endif
    window win;
    memset(&win, 0, sizeof(win));
    win.start_at = o.window ? o.count - o.window : 0; /* bench_parse: window < count */
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
    step_stats ss;
    run_loop(e, &o, &win, &longest_cpu, &ss);

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
           o.installed, o.count - valid, ordered, bench_now() - t0, longest, longest_cpu * 1e6, ss.steps, ss.waited,
           ss.longest_waited * 1e6, ss.longest_unwaited * 1e6);
    printf("step_wall_us=%.0f step_cpu_us=%.0f step_runq_us=%.0f step_vcsw=%ld step_ivcsw=%ld"
           " step_majflt=%ld step_at=%d over10_wall=%d over10_cpu=%d over10_less_runq=%d\n",
           ss.longest.wall * 1e6, ss.longest.cpu * 1e6, ss.longest.runq * 1e6, ss.longest.vcsw,
           ss.longest.ivcsw, ss.longest.majflt, ss.longest.installed, ss.over_10ms_wall, ss.over_10ms_cpu,
           ss.over_10ms_no_runq);
    for (size_t i = 0; i < sizeof(ss.top) / sizeof(ss.top[0]) && ss.top[i].cpu > 0; i++)
        fprintf(stderr, "issue_engine: step at %.6f (monotonic): %.0f us CPU, %.0f us wall, %d installed\n",
                ss.top[i].t0, ss.top[i].cpu * 1e6, ss.top[i].wall * 1e6, ss.top[i].installed);
    if (o.window)
        printf("window_installs=%d window_seconds=%.3f\n",
               win.closed ? win.installs_at_close - win.installs_at_open : -1,
               win.closed ? win.t_close - win.t_open : 0.0);
    return (valid == o.count && o.installed == o.count) ? 0 : 1;
}
