/* Issue 11, item 3: the host's tables never run inside a step. Against the
 * harness's Pebble, with a host HTTP transport that adds 100 ms to every
 * request and a storage table whose every write takes 20 ms:
 *  1. the asynchronous transport face (submit + acme_http_call_complete):
 *     6 certificates issued and installed, the longest acme_engine_step
 *     well under the per-request delay (bound 50 ms, generous so the test
 *     is not timing-flaky; the bench measures the real figure), and no
 *     table call ever made on the thread that steps the engine;
 *  2. an old-size (1.1) blocking transport table: 2 certificates the same
 *     way (it runs on libacme's transport thread);
 *  3. a restart over the same storage table: what was stored (through the
 *     write-behind queue) is read back at start in one batch, every
 *     certificate is installed from storage, no new order is made;
 *  4. both tables asynchronous (the storage table's submit face too).
 * In every run no read inside a step waits for the storage table (the
 * history's tally, read at every issuance, stays in memory). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etest.h"
#include "slow_tables.h"

#define STEP_BOUND_US 50000u
#define TRANSPORT_DELAY_MS 100u
#define STORE_DELAY_MS 20u

static void run(const char *label, acme_responder_set *set, slow_store *store, int mode, int store_async,
                size_t count, int expect_orders)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    slow_transport *t = slow_transport_new(itest_env("ACME_TEST_CA_FILE"), TRANSPORT_DELAY_MS, 16);
    CHECK_MSG(NULL, t, "slow_transport_new");
    etest_host h;
    etest_host_init(&h, set);
    h.quiet = 1;
    char *dir = itest_fresh_dir(label);
    acme_client *c = etest_client(&h, dir);
    /* At debug level the storage thread says when a step had to wait for
     * the table (a key memory did not hold): counted below. */
    CHECK_OK(c, acme_client_set_log_level(c, ACME_LOG_DEBUG));
    acme_transport_ops to = slow_transport_ops(mode);
    CHECK_OK(c, acme_client_set_transport(c, &to, t));
    acme_storage_ops so = store_async ? slow_store_async_ops() : slow_store_ops();
    CHECK_OK(c, acme_client_set_storage(c, &so, store));
    /* The blocking call runs on this thread (that is its contract). */
    itest_register(c, NULL);
    unsigned req0 = slow_transport_requests(t);
    slow_transport_set_loop_thread(t, pthread_self());
    slow_store_set_loop_thread(store, pthread_self());
    unsigned store_loop0 = slow_store_on_loop(store);
    unsigned writes0 = slow_store_writes(store);

    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);
    char **names = calloc(count, sizeof(*names));
    for (size_t i = 0; i < count; i++) {
        names[i] = itest_printf("slow%zu.%s.example", i, label);
        CHECK_OK(c, etest_manage1(e, names[i], http, 1));
    }
    etest_drive_stats st;
    double t0 = etest_now();
    int ok = etest_drive(&h, e, etest_until_installs, &count, 240000, &st);
    double wall = etest_now() - t0;
    if (!ok) {
        etest_dump_log(&h, 60);
        etest_dump_engine(e);
    }
    CHECK_MSG(NULL, ok, "%s: %zu of %zu installed after %.1f s", label, h.install_count, count, wall);
    etest_drive_stats idle;
    etest_drive(&h, e, etest_until_idle, NULL, 30000, &idle);
    for (size_t i = 0; i < count; i++) {
        const char *one[] = {names[i]};
        CHECK_MSG(NULL, itest_streq(etest_state(e, names[i]), "valid"), "%s: %s is \"%s\" (%s)", label,
                  names[i], etest_state(e, names[i]), etest_last_error(e, names[i]));
        etest_check_installed(&h, names[i], one, 1);
    }
    char **urls = NULL;
    size_t orders = etest_created_orders(&h, 0, &urls);
    etest_free_strings(urls, orders);

    uint64_t longest = acme_engine_longest_step_us(e);
    uint64_t seen = st.max_step_us > idle.max_step_us ? st.max_step_us : idle.max_step_us;
    unsigned reqs = slow_transport_requests(t) - req0;
    unsigned writes = slow_store_writes(store) - writes0;
    printf("%s: %zu certificates in %.2f s, %u steps, %u requests (peak %u in flight), %u storage writes, "
           "%zu orders; longest step %llu us (engine), %llu us (measured)\n",
           label, count, wall, st.steps + idle.steps, reqs, slow_transport_peak_in_flight(t), writes, orders,
           (unsigned long long)longest, (unsigned long long)seen);
    etest_drive_stats *worst = st.max_step_us >= idle.max_step_us ? &st : &idle;
    for (size_t i = worst->max_lines[0]; i < worst->max_lines[1] && i < worst->max_lines[0] + 12; i++)
        printf("  longest step logged: %s\n", h.lines[i]);
    fflush(stdout);

    if (expect_orders) {
        CHECK_MSG(NULL, orders == count, "%s: %zu orders for %zu certificates", label, orders, count);
        CHECK_MSG(NULL, reqs >= 5 * count, "%s: only %u requests went through the host transport", label, reqs);
        CHECK_MSG(NULL, writes >= 2 * count, "%s: only %u writes reached the storage table", label, writes);
    } else {
        CHECK_MSG(NULL, orders == 0, "%s: %zu new orders although every certificate was stored", label, orders);
    }
    /* A read memory could not answer waits inside the step for the table,
     * behind every queued write (here 20 ms each). */
    size_t waited = etest_count_lines(&h, 0, "the step waits for the table");
    for (size_t i = 0; waited && i < h.line_count; i++)
        if (strstr(h.lines[i], "the step waits for the table"))
            fprintf(stderr, "%s: %s\n", label, h.lines[i]);
    CHECK_MSG(NULL, waited == 0, "%s: %zu reads inside steps waited for the storage table", label, waited);
    /* A table call made inside a step would cost the step its delay. */
    CHECK_MSG(NULL, slow_transport_on_loop(t) == 0 || mode == 0,
              "%s: the blocking transport was called %u times on the engine's thread", label,
              slow_transport_on_loop(t));
    CHECK_MSG(NULL, slow_store_on_loop(store) == store_loop0,
              "%s: the storage table was called %u times on the engine's thread", label,
              slow_store_on_loop(store) - store_loop0);
    CHECK_MSG(NULL, longest > 0 && longest < STEP_BOUND_US,
              "%s: the longest step took %llu us with a %u ms transport and %u ms writes (bound %u us)", label,
              (unsigned long long)longest, TRANSPORT_DELAY_MS, STORE_DELAY_MS, STEP_BOUND_US);
    CHECK_MSG(NULL, seen < STEP_BOUND_US, "%s: a step took %llu us by the test's clock (bound %u us)", label,
              (unsigned long long)seen, STEP_BOUND_US);

    /* Freeing the engine writes what is still queued. */
    acme_engine_free(e);
    acme_client_free(c);
    slow_transport_free(t);
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    etest_host_clear(&h);
    free(dir);
}

int main(void)
{
    itest_init("it_engine_slow_tables");
    etest_watchdog(560);
    acme_responder_set set;
    itest_responders_start(&set, 1, 0);

    slow_store *store = slow_store_new(STORE_DELAY_MS);
    run("async", &set, store, 0, 0, 6, 1);
    /* Everything the engine queued reached the table before free returned. */
    CHECK_MSG(NULL, slow_store_count(store, "/cert.json") >= 6, "%zu certificates in the storage table",
              slow_store_count(store, "/cert.json"));
    CHECK_MSG(NULL, slow_store_count(store, "/order.json") == 0, "%zu order states left behind",
              slow_store_count(store, "/order.json"));
    run("async", &set, store, 0, 0, 6, 0);   /* the restart: names as in the first run */

    slow_store *store2 = slow_store_new(STORE_DELAY_MS);
    run("v1-blocking", &set, store2, 2, 0, 2, 1);
    slow_store_free(store2);

    /* Both tables asynchronous: the storage table's submit face. */
    slow_store *store3 = slow_store_new(STORE_DELAY_MS);
    run("async-store", &set, store3, 0, 1, 3, 1);
    CHECK_MSG(NULL, slow_store_submits(store3) >= 10, "only %u operations submitted to the storage table",
              slow_store_submits(store3));
    CHECK_MSG(NULL, slow_store_count(store3, "/cert.json") >= 3, "%zu certificates in the asynchronous table",
              slow_store_count(store3, "/cert.json"));
    slow_store_free(store3);
    slow_store_free(store);
    itest_responders_stop(&set);
    itest_done();
    return 0;
}
