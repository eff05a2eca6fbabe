/* Issue 12: start-up with many stored certificates reads them a slice at
 * a time. Against the harness's Pebble, on a host storage table in memory:
 *  1. one certificate is issued for real; its stored keys are copied under
 *     COUNT - 1 other ids (the same names, so each is a valid stored
 *     certificate for what it is managed with);
 *  2. a new engine on that table: acme_engine_new lists the keys and reads
 *     no certificate's value (the table saw no get of a cert.json);
 *  3. stepping installs every one without a new order, and the engine
 *     never reads far ahead of what it installs: at every turn of the loop
 *     the cert.json gets minus the installs stay within the read-ahead
 *     window (doc/storage.md: 256 certificates), so memory holds a window
 *     of the stored values, not all of them;
 *  4. no table call is made on the thread that steps the engine. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etest.h"
#include "slow_tables.h"

#define COUNT 700u
#define WINDOW 256u   /* FETCH_WINDOW in libacme/engine.c */

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};

typedef struct ahead {
    slow_store *store;
    size_t want;
    unsigned most;    /* the largest gets - installs seen */
} ahead;

static int until_all_sampled(etest_host *h, void *arg)
{
    ahead *a = arg;
    unsigned gets = slow_store_gets(a->store);
    unsigned lead = gets > h->install_count ? gets - (unsigned)h->install_count : 0;
    if (lead > a->most)
        a->most = lead;
    return h->install_count >= a->want;
}

static acme_engine *engine_on(etest_host *h, acme_client **c, const char *dir, slow_store *store)
{
    *c = etest_client(h, dir);
    acme_storage_ops so = slow_store_ops();
    CHECK_OK(*c, acme_client_set_storage(*c, &so, store));
    return etest_engine(*c, h, 0, 3600, 0);
}

static int manage_as(acme_engine *e, const char *id, const char *name)
{
    const char *names[] = {name};
    acme_issue_params p = {
        .size = sizeof p, .names = names, .name_count = 1, .challenges = http, .challenge_count = 1,
        .cert_id = id,
    };
    return acme_engine_manage(e, &p);
}

int main(void)
{
    itest_init("it_engine_slices");
    etest_watchdog(280);
    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    slow_store *store = slow_store_new(0);
    char *dir = itest_fresh_dir("slices");
    const char *name = "slices.example";

    /* 1. One real certificate, then its copies. */
    etest_host h;
    etest_host_init(&h, &set);
    h.quiet = 1;
    acme_client *c;
    acme_engine *e = engine_on(&h, &c, dir, store);
    itest_register(c, NULL);
    CHECK_OK(c, manage_as(e, "slice0", name));
    size_t one = 1;
    CHECK_MSG(NULL, etest_drive(&h, e, etest_until_installs, &one, 120000, NULL), "the first certificate: %s",
              etest_last_error(e, "slice0"));
    etest_drive(&h, e, etest_until_idle, NULL, 30000, NULL);
    acme_engine_free(e);
    acme_client_free(c);
    etest_host_clear(&h);
    for (unsigned i = 1; i < COUNT; i++) {
        char to[64];
        snprintf(to, sizeof(to), "/certs/slice%u/", i);
        CHECK_MSG(NULL, slow_store_clone(store, "/certs/slice0/", to) >= 1, "no stored keys to copy to %s", to);
    }
    CHECK_MSG(NULL, slow_store_count(store, "/cert.json") == COUNT, "%zu certificates stored, want %u",
              slow_store_count(store, "/cert.json"), COUNT);

    /* 2. A new engine: the keys listed, no certificate read. */
    etest_host_init(&h, &set);
    h.quiet = 1;
    slow_store_count_gets(store, "/cert.json");
    slow_store_set_loop_thread(store, pthread_self());
    unsigned on_loop0 = slow_store_on_loop(store);
    e = engine_on(&h, &c, dir, store);
    CHECK_MSG(NULL, slow_store_gets(store) == 0,
              "acme_engine_new read %u stored certificates before the first step (want 0: they are read in "
              "slices, ahead of their look)", slow_store_gets(store));
    for (unsigned i = 0; i < COUNT; i++) {
        char id[32];
        snprintf(id, sizeof(id), "slice%u", i);
        CHECK_OK(c, manage_as(e, id, name));
    }

    /* 3. Every one installed, never far ahead. */
    ahead a = {store, COUNT, 0};
    etest_drive_stats st;
    int ok = etest_drive(&h, e, until_all_sampled, &a, 120000, &st);
    if (!ok) {
        etest_dump_log(&h, 40);
        etest_dump_engine(e);
    }
    CHECK_MSG(NULL, ok, "%zu of %u stored certificates installed", h.install_count, COUNT);
    etest_drive(&h, e, etest_until_idle, NULL, 30000, NULL);
    char **urls = NULL;
    size_t orders = etest_created_orders(&h, 0, &urls);
    etest_free_strings(urls, orders);
    unsigned gets = slow_store_gets(store);
    printf("it_engine_slices: %u stored certificates installed in %u steps (longest %llu us); %u cert.json "
           "reads; the most read ahead of the installs: %u (window %u)\n",
           COUNT, st.steps, (unsigned long long)st.max_step_us, gets, a.most, WINDOW);
    CHECK_MSG(NULL, orders == 0, "%zu new orders at start-up although every certificate was stored", orders);
    for (unsigned i = 0; i < COUNT; i += 97) {
        char id[32];
        snprintf(id, sizeof(id), "slice%u", i);
        const char *names[] = {name};
        CHECK_MSG(NULL, etest_install_count(&h, id) == 1, "%s installed %zu times", id, etest_install_count(&h, id));
        etest_check_installed(&h, id, names, 1);
    }
    CHECK_MSG(NULL, gets >= COUNT && gets <= COUNT + 2, "%u reads of cert.json for %u certificates", gets, COUNT);
    CHECK_MSG(NULL, a.most > 0 && a.most <= WINDOW, "the engine read %u certificates ahead of its installs "
              "(window %u)", a.most, WINDOW);
    CHECK_MSG(NULL, slow_store_on_loop(store) == on_loop0, "the storage table was called %u times on the "
              "engine's thread", slow_store_on_loop(store) - on_loop0);

    acme_engine_free(e);
    acme_client_free(c);
    etest_host_clear(&h);
    slow_store_free(store);
    free(dir);
    itest_responders_stop(&set);
    itest_done();
    return 0;
}
