/* Issue 14, part 3: CA failover in the engine (acme_ca_list_engine_new)
 * against two real Pebbles (with-pebble --second).
 *
 *  A. First CA down (a loopback port that refuses connections): the
 *     certificate moves to the second CA and is issued there; the status
 *     entry names the CA and the reason; the move is stored.
 *  B. A restart (new clients, list and engine on the same storage) manages
 *     it at the second CA at once: the stored certificate is installed,
 *     nothing is ordered, the status still says why.
 *  C. First CA a real Pebble that issues; then it stops. A restarted
 *     engine renews (max_age_s) and, the first CA refusing connections
 *     after the order's retries, moves the certificate to the second,
 *     which issues.
 *  E. (before C) A's certificate, at the second CA, renewed: the first CA
 *     of the list (now the working first Pebble) is tried again and issues;
 *     the return is stored, shown and kept across a restart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fo_fixture.h"

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
static fo_env env;

static void issued_by(const etest_host *h, const char *id, int which)
{
    fo_issued_by(&env, h, id, which);
}

typedef struct cas {
    const char *name[2];
    const char *url[2];
} cas;

static acme_ca_list *make_list(etest_host *h, const char *dir, const cas *k)
{
    fo_ca v[2] = {{k->name[0], k->url[0], NULL}, {k->name[1], k->url[1], NULL}};
    return fo_make_list(h, dir, v, 2);
}

static acme_engine *make_engine(etest_host *h, acme_ca_list *l, const acme_engine_options *o)
{
    acme_engine *e = NULL;
    int rc = acme_ca_list_engine_new(l, o, &e);
    CHECK_MSG(NULL, rc == ACME_OK, "acme_ca_list_engine_new: %s", acme_strerror(rc));
    h->engine = e;
    return e;
}

static void check_entry(acme_engine *e, const char *id, const char *ca, const char *reason_has)
{
    json_t *st = etest_status(e, id);
    CHECK_MSG(NULL, st != NULL, "no status entry for %s", id);
    const char *got = json_string_value(json_object_get(st, "ca"));
    const char *why = json_string_value(json_object_get(st, "ca_reason"));
    itest_log("status %s: ca %s, ca_reason %s", id, got ? got : "(none)", why ? why : "(none)");
    CHECK_MSG(NULL, itest_streq(got, ca), "status says CA %s, want %s", got ? got : "(none)", ca);
    if (reason_has)
        CHECK_MSG(NULL, why && strstr(why, reason_has), "ca_reason lacks \"%s\": %s", reason_has,
                  why ? why : "(none)");
    else
        CHECK_MSG(NULL, why == NULL, "ca_reason set without a failover: %s", why);
    json_decref(st);
}

/* Returns the state directory, for part E. */
static char *part_ab(etest_host *h, const cas *k)
{
    const char *name = "efo-a.example";
    char *dir = itest_fresh_dir("efo-a");
    acme_ca_list *l = make_list(h, dir, k);
    acme_engine_options o = {.size = sizeof o, .retry_min_s = 1};
    acme_engine *e = make_engine(h, l, &o);
    size_t ev0 = h->event_count;
    CHECK_OK(NULL, etest_manage1(e, name, http, 1));
    size_t want = h->install_count + 1;
    CHECK_MSG(NULL, etest_drive(h, e, etest_until_installs, &want, 60000, NULL), "not issued within 60 s");
    issued_by(h, name, 1);
    check_entry(e, name, "two", "CA down: ");
    /* The event names both CAs and says why: the first CA's connection failure. */
    size_t fo = fo_check_event(h, ev0, name, "down", k->url[0], "two", k->url[1], "CA down: ");
    size_t is = etest_find_event(h, ev0, ACME_EVENT_ISSUED, name);
    CHECK_MSG(NULL, is != (size_t)-1 && fo < is, "no FAILOVER event before ISSUED");
    CHECK_MSG(NULL, etest_find_event(h, fo + 1, ACME_EVENT_FAILOVER, name) == (size_t)-1, "two FAILOVER events "
              "for one move");
    fo_check_record(dir, name, "two");
    acme_engine_free(e);
    acme_ca_list_free(l);
    itest_log("ok: A. the first CA down: moved to the second, issued there");

    size_t lines = h->line_count;
    l = make_list(h, dir, k);
    e = make_engine(h, l, &o);
    CHECK_OK(NULL, etest_manage1(e, name, http, 1));
    check_entry(e, name, "two", "CA down: ");
    want = h->install_count + 1;
    double t0 = etest_now();
    CHECK_MSG(NULL, etest_drive(h, e, etest_until_installs, &want, 10000, NULL), "the stored certificate was not "
              "installed after the restart");
    etest_drive(h, e, etest_until_idle, NULL, 3000, NULL);
    char **urls;
    size_t n = etest_created_orders(h, lines, &urls);
    etest_free_strings(urls, n);
    itest_log("B: restart installed the second CA's certificate in %.1f s, %zu orders", etest_now() - t0, n);
    CHECK_MSG(NULL, n == 0, "the restarted engine ordered again (%zu orders)", n);
    CHECK_MSG(NULL, itest_streq(etest_state(e, name), "valid"), "state %s after the restart", etest_state(e, name));
    issued_by(h, name, 1);
    acme_engine_free(e);
    acme_ca_list_free(l);
    itest_log("ok: B. restart: managed at the second CA, nothing ordered");
    return dir;
}

static void check_return_record(const char *dir, const char *id)
{
    char *path = itest_printf("%s/failover/%s.json", dir, id);
    json_t *r = json_load_file(path, 0, NULL);
    const char *why = json_string_value(json_object_get(r, "reason"));
    CHECK_MSG(NULL, r && itest_streq(json_string_value(json_object_get(r, "ca")), "one") &&
              json_is_false(json_object_get(r, "failover")) && why && strstr(why, "back at the preferred CA one"),
              "%s does not say the certificate is back at CA one: %s", path, why ? why : "(none)");
    json_decref(r);
    free(path);
}

/* E. The certificate of A, at the second CA since its failover, is due
 * (max_age_s): its renewal tries the first CA of the list again — now
 * one that works (the first Pebble) — and stays there; the return is
 * stored with its reason, shown in status, kept across a restart, and
 * is no FAILOVER. */
static void part_e(etest_host *h, const cas *k, char *dir)
{
    const char *name = "efo-a.example";
    acme_ca_list *l = make_list(h, dir, k);
    acme_engine_options o = {.size = sizeof o, .retry_min_s = 1, .max_age_s = 2};
    acme_engine *e = make_engine(h, l, &o);
    size_t ev0 = h->event_count;
    CHECK_OK(NULL, etest_manage1(e, name, http, 1));
    size_t want = h->install_count + 2; /* the second CA's at start, then the first's */
    CHECK_MSG(NULL, etest_drive(h, e, etest_until_installs, &want, 60000, NULL), "E: no renewal within 60 s");
    issued_by(h, name, 0);
    check_entry(e, name, "one", "renewal: back at the preferred CA one (the certificate was at two)");
    CHECK_MSG(NULL, etest_find_event(h, ev0, ACME_EVENT_FAILOVER, name) == (size_t)-1,
              "E: the return to the preferred CA sent a FAILOVER event");
    check_return_record(dir, name);
    acme_engine_free(e);
    acme_ca_list_free(l);

    l = make_list(h, dir, k);
    acme_engine_options o2 = {.size = sizeof o2, .retry_min_s = 1};
    e = make_engine(h, l, &o2);
    CHECK_OK(NULL, etest_manage1(e, name, http, 1));
    check_entry(e, name, "one", "renewal: back at the preferred CA one");
    acme_engine_free(e);
    acme_ca_list_free(l);
    free(dir);
    itest_log("ok: E. the renewal went back to the preferred CA, kept across a restart");
}

static void part_c(etest_host *h, const cas *k)
{
    const char *name = "efo-c.example";
    char *dir = itest_fresh_dir("efo-c");
    acme_ca_list *l = make_list(h, dir, k);
    acme_engine_options o = {.size = sizeof o, .retry_min_s = 1};
    acme_engine *e = make_engine(h, l, &o);
    CHECK_OK(NULL, etest_manage1(e, name, http, 1));
    size_t want = h->install_count + 1;
    CHECK_MSG(NULL, etest_drive(h, e, etest_until_installs, &want, 60000, NULL), "not issued within 60 s");
    issued_by(h, name, 0);
    check_entry(e, name, "one", NULL);
    acme_engine_free(e);
    acme_ca_list_free(l);

    fo_stop_first_pebble();
    l = make_list(h, dir, k);
    acme_engine_options o2 = {.size = sizeof o2, .retry_min_s = 1, .max_age_s = 2};
    e = make_engine(h, l, &o2);
    CHECK_OK(NULL, etest_manage1(e, name, http, 1));
    want = h->install_count + 2; /* the stored one at start, then the second CA's */
    size_t ev0 = h->event_count;
    CHECK_MSG(NULL, etest_drive(h, e, etest_until_installs, &want, 90000, NULL), "no failover renewal in 90 s");
    fo_check_event(h, ev0, name, "one", k->url[0], "two", k->url[1], "CA one: ");
    issued_by(h, name, 1);
    check_entry(e, name, "two", "CA one: ");
    fo_check_record(dir, name, "two");
    acme_engine_free(e);
    acme_ca_list_free(l);
    free(dir);
    itest_log("ok: C. the first Pebble stopped: the renewal moved to the second");
}

int main(void)
{
    itest_init("it_engine_failover");
    etest_watchdog(280);
    fo_env_init(&env);
    acme_responder_set good = {.size = sizeof good};
    good.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    etest_host h;
    etest_host_init(&h, &good);
    cas ab = {{"down", "two"}, {env.down, env.two}};
    char *dir = part_ab(&h, &ab);
    cas c = {{"one", "two"}, {env.one, env.two}};
    part_e(&h, &c, dir);
    part_c(&h, &c);
    etest_host_clear(&h);
    acme_responder_free(good.http01);
    fo_env_clear(&env);
    itest_done();
    return 0;
}
