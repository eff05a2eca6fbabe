/* Issue 4, test 2: challenge fallback in a new order, and the success
 * history that makes the next certificate start with what worked
 * (ACME-NOTES §4: one failed challenge kills the authorization and the
 * order, so the next type needs a NEW order; newOrder is rate limited, so
 * try first what succeeded before).
 *
 *  1. Preference {http-01, tls-alpn-01}. http-01 is published to a
 *     responder on a port Pebble never connects to (so publish succeeds and
 *     validation fails: nothing listens on ACME_TEST_HTTP_PORT), tls-alpn-01
 *     is served on ACME_TEST_TLS_PORT. The certificate is still issued, by a
 *     second order ("order: <url> created" logged twice, two URLs), after
 *     http-01 was tried first.
 *  2. A new client + engine on the same state dir, another name, same
 *     preference: the first publish is tls-alpn-01 and one order suffices,
 *     because the stored history says tls-alpn-01 works here.
 *  3. Neither type can validate: the engine gives up with one error
 *     (status last_error) naming every attempt (http-01 and tls-alpn-01),
 *     having placed one order per type.
 *
 * retry_min_s is an hour throughout: the fallback must not wait for the
 * retry timer, and a failure must not be retried inside the test. */
#include <stdio.h>
#include <time.h>
#include "etest.h"

static const acme_challenge_type prefs[] = {ACME_CHALLENGE_HTTP_01, ACME_CHALLENGE_TLS_ALPN_01};

static int has_install(etest_host *h, void *id)
{
    return etest_install_count(h, id) > 0;
}

/* Done when the engine reports an error naming both attempts and has
 * nothing left in flight. */
static int gave_up(etest_host *h, void *id)
{
    const char *err = etest_last_error(h->engine, id);
    return acme_engine_idle(h->engine) && strstr(err, "http-01") && strstr(err, "tls-alpn-01");
}

static void fail_with_state(etest_host *h, acme_engine *e, const char *what)
{
    etest_dump_log(h, 80);
    etest_dump_engine(e);
    CHECK_MSG(NULL, 0, "%s", what);
}

static void print_publishes(const etest_host *h, const char *name)
{
    size_t idx[32];
    size_t n = etest_publishes_for(h, name, idx, 32);
    for (size_t i = 0; i < n && i < 32; i++)
        itest_log("  publish #%zu for %s: %s", i + 1, name,
                  acme_challenge_type_name(h->pubs[idx[i]].type));
}

int main(void)
{
    itest_init("it_engine_fallback");
    etest_watchdog(280);

    /* http-01 goes nowhere Pebble looks; tls-alpn-01 is where it looks. */
    acme_responder_set set = {.size = sizeof set};
    set.http01 = etest_responder_elsewhere(ACME_RESPONDER_HTTP01);
    set.tlsalpn01 = etest_responder_at_pebble(ACME_RESPONDER_TLSALPN01);

    etest_host h;
    etest_host_init(&h, &set);
    char *dir = itest_fresh_dir("fallback");

    /* ---- 1: http-01 fails, tls-alpn-01 in a second order ------------------ */
    acme_client *c = etest_client(&h, dir);
    itest_register(c, NULL);
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);
    const char *one[] = {"fallback1.example"};
    CHECK_OK(c, etest_manage(e, one, 1, prefs, 2, NULL));
    if (!etest_drive(&h, e, has_install, (void *)one[0], 90000, NULL))
        fail_with_state(&h, e, "fallback1.example was not installed within 90 s");
    etest_drive(&h, e, etest_until_idle, NULL, 20000, NULL);   /* let it unpublish */
    etest_check_installed(&h, one[0], one, 1);
    CHECK_MSG(NULL, itest_streq(etest_state(e, one[0]), "valid"), "state \"%s\"",
              etest_state(e, one[0]));

    size_t idx[32];
    size_t np = etest_publishes_for(&h, one[0], idx, 32);
    print_publishes(&h, one[0]);
    CHECK_MSG(NULL, np >= 2, "%zu publish calls for %s, expected http-01 then tls-alpn-01", np,
              one[0]);
    CHECK_MSG(NULL, h.pubs[idx[0]].type == ACME_CHALLENGE_HTTP_01,
              "the first publish was %s, the preference says http-01 first",
              acme_challenge_type_name(h.pubs[idx[0]].type));
    CHECK_MSG(NULL, h.pubs[idx[np - 1]].type == ACME_CHALLENGE_TLS_ALPN_01,
              "the last publish was %s, expected tls-alpn-01",
              acme_challenge_type_name(h.pubs[idx[np - 1]].type));
    char **urls;
    size_t orders = etest_created_orders(&h, 0, &urls);
    for (size_t i = 0; i < orders; i++)
        itest_log("  order %zu: %s", i + 1, urls[i]);
    CHECK_MSG(NULL, orders == 2, "%zu orders created (\"order: <url> created\" lines), expected 2: "
              "one for http-01, a new one for tls-alpn-01", orders);
    etest_free_strings(urls, orders);
    CHECK_MSG(NULL, h.outstanding == 0, "%d challenge(s) left published", h.outstanding);
    itest_log("ok: 1. http-01 failed, tls-alpn-01 issued it in a second order");

    /* ---- 2: the persisted history puts tls-alpn-01 first ------------------ */
    /* A new client and engine: only storage carries the history over. */
    acme_engine_free(e);
    acme_client_free(c);
    size_t line_mark = h.line_count;
    c = etest_client(&h, dir);
    e = etest_engine(c, &h, 0, 3600, 0);
    const char *two[] = {"fallback2.example"};
    CHECK_OK(c, etest_manage(e, two, 1, prefs, 2, NULL));
    if (!etest_drive(&h, e, has_install, (void *)two[0], 90000, NULL))
        fail_with_state(&h, e, "fallback2.example was not installed within 90 s");
    etest_drive(&h, e, etest_until_idle, NULL, 20000, NULL);
    etest_check_installed(&h, two[0], two, 1);
    np = etest_publishes_for(&h, two[0], idx, 32);
    print_publishes(&h, two[0]);
    CHECK_MSG(NULL, np >= 1 && h.pubs[idx[0]].type == ACME_CHALLENGE_TLS_ALPN_01,
              "the first publish for %s was %s: the stored success history should have put "
              "tls-alpn-01 first", two[0],
              np ? acme_challenge_type_name(h.pubs[idx[0]].type) : "(none)");
    orders = etest_created_orders(&h, line_mark, &urls);
    etest_free_strings(urls, orders);
    CHECK_MSG(NULL, orders == 1, "%zu orders for %s, expected 1", orders, two[0]);
    itest_log("ok: 2. a new name on the same state dir started with tls-alpn-01");

    /* ---- 3: nothing validates: one error naming every attempt -------------- */
    acme_responder_free(set.tlsalpn01);
    set.tlsalpn01 = etest_responder_elsewhere(ACME_RESPONDER_TLSALPN01);
    line_mark = h.line_count;
    size_t installs_before = h.install_count;
    const char *three[] = {"fallback3.example"};
    CHECK_OK(c, etest_manage(e, three, 1, prefs, 2, NULL));
    if (!etest_drive(&h, e, gave_up, (void *)three[0], 90000, NULL))
        fail_with_state(&h, e, "within 90 s the engine did not go idle with a last_error for "
                        "fallback3.example naming both http-01 and tls-alpn-01");
    const char *err = etest_last_error(e, three[0]);
    const char *state = etest_state(e, three[0]);
    json_t *st = etest_status(e, three[0]);
    char *dump = json_dumps(st, JSON_COMPACT);
    itest_log("status of %s: %s", three[0], dump);
    free(dump);
    json_decref(st);
    CHECK_MSG(NULL, itest_streq(state, "failed") || itest_streq(state, "waiting"),
              "state \"%s\" after both challenge types failed", state);
    CHECK_MSG(NULL, h.install_count == installs_before, "something was installed");
    orders = etest_created_orders(&h, line_mark, &urls);
    for (size_t i = 0; i < orders; i++)
        itest_log("  order %zu: %s", i + 1, urls[i]);
    etest_free_strings(urls, orders);
    CHECK_MSG(NULL, orders == 2, "%zu orders for %s, expected one per challenge type (2)", orders,
              three[0]);
    print_publishes(&h, three[0]);
    CHECK_MSG(NULL, h.outstanding == 0, "%d challenge(s) left published", h.outstanding);
    itest_log("ok: 3. both failed; the error names both: %s", err);

    acme_engine_free(e);
    acme_client_free(c);
    acme_responder_free(set.http01);
    acme_responder_free(set.tlsalpn01);
    etest_host_clear(&h);
    free(dir);
    itest_done();
    return 0;
}
