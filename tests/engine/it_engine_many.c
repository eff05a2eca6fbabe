/* Issue 4, test 3: 50 certificates (distinct names) managed by one engine
 * in one thread, issued concurrently. The test drives the engine itself
 * with acme_engine_fds + poll + acme_engine_step (the event-loop face, not
 * acme_engine_perform), times every step, and checks:
 *  - all 50 installed once, each chain verifying against Pebble's root;
 *  - orders really overlapped (more than one challenge published at once)
 *    and never more than max_orders (default 16) at once;
 *  - the engine does not spin: most loop turns must not be "timeout 0,
 *    nothing ready" (34 certificates queue behind max_orders here);
 *  - no step took long: a sanity bound of 2 s only — benchmarks live in
 *    bench/; this prints the numbers ("longest step: N us"). */
#include <stdio.h>
#include <time.h>
#include "etest.h"

#define COUNT 50
#define DEFAULT_MAX_ORDERS 16

int main(void)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    itest_init("it_engine_many");
    etest_watchdog(560);

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_host h;
    etest_host_init(&h, &set);
    h.quiet = 1;   /* 50 orders log a lot; the tail is dumped on failure */
    char *dir = itest_fresh_dir("many");
    acme_client *c = etest_client(&h, dir);
    /* An RSA account key: every signature is slow work, which the engine
     * must hand to its worker thread (50 orders, ~10 signed requests each). */
    CHECK_OK(c, acme_client_set_account_key_type(c, ACME_KEY_RSA_2048));
    itest_register(c, NULL);
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);

    char *names[COUNT];
    for (int i = 0; i < COUNT; i++) {
        names[i] = itest_printf("many%02d.example", i);
        CHECK_OK(c, etest_manage1(e, names[i], http, 1));
    }

    size_t want = COUNT;
    etest_drive_stats st;
    double t0 = etest_now();
    int ok = etest_drive(&h, e, etest_until_installs, &want, 480000, &st);
    double wall = etest_now() - t0;
    if (!ok) {
        etest_dump_log(&h, 80);
        etest_dump_engine(e);
    }
    CHECK_MSG(NULL, ok, "%zu of %d installed after %.1f s", h.install_count, COUNT, wall);
    etest_drive_stats idle;
    etest_drive(&h, e, etest_until_idle, NULL, 30000, &idle);   /* the last unpublishes */

    for (int i = 0; i < COUNT; i++) {
        const char *one[] = {names[i]};
        CHECK_MSG(NULL, etest_install_count(&h, names[i]) == 1, "%s installed %zu times",
                  names[i], etest_install_count(&h, names[i]));
        CHECK_MSG(NULL, itest_streq(etest_state(e, names[i]), "valid"), "%s: state \"%s\"",
                  names[i], etest_state(e, names[i]));
        etest_check_installed(&h, names[i], one, 1);
    }
    CHECK_MSG(NULL, h.install_count == COUNT, "%zu installs for %d certificates",
              h.install_count, COUNT);
    CHECK_MSG(NULL, h.outstanding == 0, "%d challenge(s) left published", h.outstanding);

    uint64_t longest = acme_engine_longest_step_us(e);
    printf("50 certificates in %.2f s wall, %u steps\n", wall, st.steps + idle.steps);
    printf("longest step: %llu us (engine), %llu us (measured around acme_engine_step)\n",
           (unsigned long long)longest,
           (unsigned long long)(st.max_step_us > idle.max_step_us ? st.max_step_us
                                                                  : idle.max_step_us));
    printf("peak challenges published at once: %d\n", h.peak_outstanding);
    printf("turns where acme_engine_timeout_ms() was 0 and no fd was ready: %u of %u\n",
           st.zero_waits + idle.zero_waits, st.steps + idle.steps);
    /* What the longest step did, for whoever makes it shorter. */
    etest_drive_stats *worst = st.max_step_us >= idle.max_step_us ? &st : &idle;
    printf("the longest step (#%u of its loop) logged %zu line(s):\n", worst->max_step,
           worst->max_lines[1] - worst->max_lines[0]);
    for (size_t i = worst->max_lines[0]; i < worst->max_lines[1] && i < worst->max_lines[0] + 20;
         i++)
        printf("  %s\n", h.lines[i]);
    fflush(stdout);

    CHECK_MSG(NULL, longest > 0, "acme_engine_longest_step_us() is 0 after %u steps", st.steps);
    CHECK_MSG(NULL, longest < 2000000, "a step took %llu us (sanity bound 2 s)",
              (unsigned long long)longest);
    CHECK_MSG(NULL, st.max_step_us < 2000000, "a step took %llu us by the test's clock",
              (unsigned long long)st.max_step_us);
    /* The test's clock includes the engine's; the engine's own figure
     * cannot be much larger than what the caller saw. */
    CHECK_MSG(NULL, longest <= st.max_step_us + idle.max_step_us + 1000,
              "engine says %llu us, the caller never saw a step longer than %llu us",
              (unsigned long long)longest, (unsigned long long)st.max_step_us);
    /* Busy-waiting: a turn where the engine asked for a 0 ms wait and then
     * had nothing ready is CPU burnt for nothing; an event-loop host cannot
     * afford thousands of them (ACME-NOTES §1). A few are normal (curl asks
     * for 0 ms now and then). */
    unsigned spins = st.zero_waits + idle.zero_waits, turns = st.steps + idle.steps;
    CHECK_MSG(NULL, spins < 1000 || spins * 2 < turns,
              "%u of %u loop turns: acme_engine_timeout_ms() said 0 and no descriptor was ready "
              "(the engine spins, e.g. while certificates wait for a free order slot)",
              spins, turns);
    CHECK_MSG(NULL, h.peak_outstanding > 1,
              "never more than one challenge published at once: the orders did not overlap");
    CHECK_MSG(NULL, h.peak_outstanding <= DEFAULT_MAX_ORDERS,
              "%d challenges published at once, max_orders defaults to %d", h.peak_outstanding,
              DEFAULT_MAX_ORDERS);

    acme_engine_free(e);
    acme_client_free(c);
    itest_responders_stop(&set);
    for (int i = 0; i < COUNT; i++)
        free(names[i]);
    etest_host_clear(&h);
    free(dir);
    itest_done();
    return 0;
}
