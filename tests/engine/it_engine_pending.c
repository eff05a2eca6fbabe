/* Issue 4, test 7: host callbacks that answer ACME_E_PENDING.
 *
 * A host on an event loop cannot publish synchronously (it may have to
 * reload a server, wait for DNS...). Its publish returns ACME_E_PENDING
 * and, 200 ms later, from the loop, serves the challenge and calls
 * acme_engine_done(). Meanwhile the engine must keep going without
 * blocking: no step may last anywhere near the 200 ms (bound here: 150 ms,
 * so an engine that waited for the host inside a step fails), the engine
 * is not idle while a callback is pending, and it must not spin (steps per
 * pending period are counted). The challenge is served only at done(), so
 * an engine that asked the CA to validate before done() fails validation
 * and the test.
 *
 *  A. publish pending only.
 *  B. publish, unpublish and install all pending (install's object is the
 *     acme_certificate, valid until done()).
 *  C. acme_engine_done on an object the engine never gave out is refused.
 *  D. a restart with install pending: the stored certificates go to the
 *     host at start-up, their objects stay valid until done() (the loop
 *     reads them then: ASan sees a use after free) and done() is taken.
 *  E. one of those installs fails in done(): it is installed again after
 *     the back-off (1 s). */
#include <stdio.h>
#include <time.h>
#include "etest.h"

#define STEP_BOUND_US 150000

typedef struct watch {
    const char *id;
    int stage;                /* 0: until installed, 1: until idle */
    unsigned checks_pending;  /* loop turns while something was pending */
    unsigned idle_while_pending;
} watch;

static int until_done(etest_host *h, void *arg)
{
    watch *w = arg;
    if (h->pending_count > 0) {
        w->checks_pending++;
        if (acme_engine_idle(h->engine))
            w->idle_while_pending++;
        return 0;
    }
    if (w->stage == 0)
        return etest_install_count(h, w->id) > 0;
    return acme_engine_idle(h->engine);
}

typedef struct restart_watch {
    const char *id[2];
    size_t before[2];
} restart_watch;

static int until_reinstalled(etest_host *h, void *arg)
{
    restart_watch *w = arg;
    return h->pending_count == 0 && h->pending_install_fail == 0 &&
           etest_install_count(h, w->id[0]) > w->before[0] && etest_install_count(h, w->id[1]) > w->before[1];
}

static void run(etest_host *h, acme_engine *e, const char *name)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    const char *names[] = {name};
    watch w = {.id = name};
    etest_drive_stats a, b;
    unsigned started = h->pending_started;

    CHECK_OK(NULL, etest_manage1(e, name, http, 1));
    if (!etest_drive(h, e, until_done, &w, 60000, &a)) {
        etest_dump_log(h, 60);
        etest_dump_engine(e);
        CHECK_MSG(NULL, 0, "%s not installed within 60 s (pending started %u, finished %u)", name,
                  h->pending_started, h->pending_finished);
    }
    w.stage = 1;
    CHECK_MSG(NULL, etest_drive(h, e, until_done, &w, 20000, &b),
              "the engine did not become idle after installing %s", name);
    etest_check_installed(h, name, names, 1);
    CHECK_MSG(NULL, itest_streq(etest_state(e, name), "valid"), "%s: state \"%s\"", name,
              etest_state(e, name));
    unsigned periods = h->pending_started - started;
    CHECK_MSG(NULL, periods > 0, "no callback answered PENDING for %s", name);
    CHECK_MSG(NULL, h->pending_finished == h->pending_started, "%u pending callbacks unfinished",
              h->pending_started - h->pending_finished);
    CHECK_MSG(NULL, h->pending_woke == h->pending_finished,
              "%u of %u acme_engine_done calls left no descriptor readable (a host in poll() would sleep on)",
              h->pending_finished - h->pending_woke, h->pending_finished);
    CHECK_MSG(NULL, h->outstanding == 0, "%d challenge(s) left published", h->outstanding);
    uint64_t max_us = a.max_step_us > b.max_step_us ? a.max_step_us : b.max_step_us;
    itest_log("%s: %u pending period(s) of %u ms, %u loop turns while pending, "
              "%u+%u steps, longest step %llu us (test clock) / %llu us (engine)",
              name, periods, h->pending_ms, w.checks_pending, a.steps, b.steps,
              (unsigned long long)max_us, (unsigned long long)acme_engine_longest_step_us(e));
    CHECK_MSG(NULL, w.idle_while_pending == 0,
              "acme_engine_idle() said 1 while a callback was pending (%u times)",
              w.idle_while_pending);
    CHECK_MSG(NULL, max_us < STEP_BOUND_US, "a step took %llu us while callbacks were pending",
              (unsigned long long)max_us);
    CHECK_MSG(NULL, acme_engine_longest_step_us(e) < STEP_BOUND_US,
              "acme_engine_longest_step_us() = %llu us",
              (unsigned long long)acme_engine_longest_step_us(e));
    /* Spinning: acme_engine_timeout_ms() returning 0 while only waiting for
     * the host would turn the loop thousands of times in 200 ms. */
    CHECK_MSG(NULL, w.checks_pending < 400 * periods,
              "%u loop turns during %u pending periods: the engine asks to be stepped "
              "without anything to do", w.checks_pending, periods);
}

int main(void)
{
    itest_init("it_engine_pending");
    etest_watchdog(250);

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_host h;
    etest_host_init(&h, &set);
    h.pending_ms = 200;
    char *dir = itest_fresh_dir("pending");
    acme_client *c = etest_client(&h, dir);
    itest_register(c, NULL);
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);

    /* A. publish answers PENDING, served and done() 200 ms later. */
    h.pending_publish = 1;
    run(&h, e, "pending-a.example");
    itest_log("ok: A. publish pending");

    /* B. everything pending. */
    h.pending_unpublish = 1;
    h.pending_install = 1;
    run(&h, e, "pending-b.example");
    itest_log("ok: B. publish, unpublish and install pending");

    /* C. done() for something that is not pending. */
    int stray = 0;
    int rc = acme_engine_done(e, &stray, ACME_OK);
    CHECK_MSG(NULL, rc != ACME_OK, "acme_engine_done accepted an object it never gave out");
    itest_log("ok: C. stray done() refused: %s", acme_strerror(rc));

    /* D, E. */
    acme_engine_free(e);
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    restart_watch rw = {{"pending-a.example", "pending-b.example"}, {0, 0}};
    for (int i = 0; i < 2; i++)
        rw.before[i] = etest_install_count(&h, rw.id[i]);
    h.pending_publish = h.pending_unpublish = 0;
    h.pending_install = 1;
    h.pending_install_fail = 1;
    unsigned fin = h.pending_finished;
    acme_engine_options o = {.size = sizeof o, .retry_min_s = 1};
    e = etest_engine_with(c, &h, &o);
    for (int i = 0; i < 2; i++)
        CHECK_OK(NULL, etest_manage1(e, rw.id[i], http, 1));
    if (!etest_drive(&h, e, until_reinstalled, &rw, 20000, NULL)) {
        etest_dump_log(&h, 40);
        CHECK_MSG(NULL, 0, "after a restart with install pending: installs of a %zu -> %zu, b %zu -> %zu, "
                  "failures left to give %u", rw.before[0], etest_install_count(&h, rw.id[0]), rw.before[1],
                  etest_install_count(&h, rw.id[1]), h.pending_install_fail);
    }
    CHECK_MSG(NULL, h.pending_install_fail == 0, "no stored install was answered PENDING");
    CHECK_MSG(NULL, h.pending_finished - fin >= 3, "%u pending installs finished, want 3 (one failed, retried)",
              h.pending_finished - fin);
    for (int i = 0; i < 2; i++)
        CHECK_MSG(NULL, itest_streq(etest_state(e, rw.id[i]), "valid"), "%s: state \"%s\" after the restart",
                  rw.id[i], etest_state(e, rw.id[i]));
    itest_log("ok: D, E. stored installs pending at start-up: done() taken, %u finished, the failed one retried",
              h.pending_finished - fin);

    acme_engine_free(e);
    acme_client_free(c);
    itest_responders_stop(&set);
    etest_host_clear(&h);
    free(dir);
    itest_done();
    return 0;
}
