/* Issue 14, part 3: CA failover (acme_ca_list) against two real Pebbles
 * (with-pebble --second: two independent CAs, own roots and accounts).
 *
 *  C. A failure that is the host's to fix (validation cannot work) does
 *     not fail over: one CA tried, the error says so, nothing stored.
 *  A. First CA down (a directory URL on a loopback port that refuses
 *     connections): the second issues; the status says which CA and why
 *     (the first's connection failure); the certificate is in the second
 *     CA's storage only. A restart (new list, same storage) shows the same
 *     choice and renews at the second CA at once, without waiting on the
 *     first.
 *  B. First CA a real Pebble that issues; then it is stopped (outage): the
 *     forced renewal fails there (connection refused after the order's
 *     retries) and the second Pebble issues; status and restart as in A.
 *     Before that, a renewal that is not due succeeds without moving.
 *  D. Refusals Pebble 2.4 cannot be made to send for chosen names, from
 *     the stand-in (fake_ari_ca_standin.py) in front of the first Pebble:
 *     rejectedIdentifier (policy), rateLimited with Retry-After 3600 (not
 *     retried within the order; the stand-in CA's back-off record then
 *     waits at least that long) and serverInternal (retried three times
 *     within the order, then the next CA). Each is issued by the second.
 *
 *   usage: it_ca_failover PYTHON3 fake_ari_ca_standin.py   (under with-pebble --second) */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fo_fixture.h"

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
static fo_env env; /* the two Pebbles, their roots, a CA that is down */

static void issued_by(const etest_host *h, const char *id, int which)
{
    fo_issued_by(&env, h, id, which);
}

typedef fo_ca ca_spec;

static acme_ca_list *make_list(etest_host *h, const char *dir, const ca_spec *cas, size_t n)
{
    return fo_make_list(h, dir, cas, n);
}

static json_t *status(acme_ca_list *l, const char *id)
{
    const char *s = acme_ca_list_status_json(l, id);
    if (!s)
        return NULL;
    itest_log("status %s: %s", id, s);
    json_t *o = json_loads(s, 0, NULL);
    CHECK_MSG(NULL, o != NULL, "status JSON does not parse: %s", s);
    return o;
}

static void check_status(acme_ca_list *l, const char *id, const char *ca, int failover, const char *reason_has)
{
    json_t *o = status(l, id);
    CHECK_MSG(NULL, o != NULL, "no status stored for %s", id);
    const char *got = json_string_value(json_object_get(o, "ca"));
    const char *reason = json_string_value(json_object_get(o, "reason"));
    CHECK_MSG(NULL, itest_streq(got, ca), "status says %s comes from CA %s, want %s", id, got ? got : "(none)", ca);
    CHECK_MSG(NULL, json_is_true(json_object_get(o, "failover")) == !!failover, "status failover %s, want %s",
              json_is_true(json_object_get(o, "failover")) ? "true" : "false", failover ? "true" : "false");
    CHECK_MSG(NULL, reason && strstr(reason, reason_has), "status reason lacks \"%s\": %s", reason_has,
              reason ? reason : "(none)");
    json_decref(o);
}

static int seen(void *ud, const acme_certificate *cert)
{
    (void)cert;
    *(int *)ud = 1;
    return ACME_OK;
}

/* Whether the i-th CA's client has the certificate stored (no network). */
static int stored_at(acme_ca_list *l, size_t i, const char *id)
{
    int ok = 0;
    int rc = acme_cert_load(acme_ca_list_client(l, i), id, seen, &ok);
    CHECK_MSG(NULL, rc == ACME_OK || rc == ACME_E_NOT_FOUND, "acme_cert_load %s: %s", id,
              acme_client_last_error(acme_ca_list_client(l, i)));
    return rc == ACME_OK && ok;
}

static void part_c(etest_host *h, const ca_spec *cas)
{
    const char *name = "fo-c.example";
    acme_responder_set bad = {.size = sizeof bad};
    bad.http01 = etest_responder_elsewhere(ACME_RESPONDER_HTTP01);
    h->responders = &bad;
    char *dir = itest_fresh_dir("fo-c");
    acme_ca_list *l = make_list(h, dir, cas, 2);
    acme_issue_params ip = {.size = sizeof ip, .names = &name, .name_count = 1, .challenges = http,
                            .challenge_count = 1};
    int rc = acme_ca_list_issue(l, &ip);
    const char *err = acme_ca_list_last_error(l);
    itest_log("C: rc %d: %s", rc, err);
    CHECK_MSG(NULL, rc != ACME_OK, "issued although validation cannot work");
    CHECK_MSG(NULL, strstr(err, "CA one: ") && !strstr(err, "CA two: ") &&
              strstr(err, "not a failure another CA can help with"),
              "a validation failure was taken to the next CA, or the error does not say why not: %s", err);
    CHECK_MSG(NULL, status(l, name) == NULL, "a choice was stored for a certificate never issued");
    CHECK_MSG(NULL, !stored_at(l, 1, name), "the second CA issued after a failure that is ours");
    acme_ca_list_free(l);
    acme_responder_free(bad.http01);
    free(dir);
    itest_log("ok: C. a validation failure stays at the first CA");
}

static void part_a(etest_host *h, const char *down_url, const char *second_url)
{
    const char *name = "fo-a.example";
    char *dir = itest_fresh_dir("fo-a");
    ca_spec cas[] = {{"down", down_url, NULL}, {"two", second_url, NULL}};
    acme_ca_list *l = make_list(h, dir, cas, 2);
    acme_issue_params ip = {.size = sizeof ip, .names = &name, .name_count = 1, .challenges = http,
                            .challenge_count = 1};
    size_t inst = h->install_count, ev0 = h->event_count;
    int rc = acme_ca_list_issue(l, &ip);
    CHECK_MSG(NULL, rc == ACME_OK, "failover issue failed: %s", acme_ca_list_last_error(l));
    fo_check_event(h, ev0, name, "down", down_url, "two", second_url, "CA down: ");
    CHECK_MSG(NULL, h->install_count == inst + 1, "nothing installed");
    issued_by(h, name, 1);
    check_status(l, name, "two", 1, "CA down: ");
    CHECK_MSG(NULL, stored_at(l, 1, name) && !stored_at(l, 0, name), "the certificate is not (only) in the "
              "second CA's storage");
    acme_ca_list_free(l);

    /* The restart. */
    l = make_list(h, dir, cas, 2);
    check_status(l, name, "two", 1, "CA down: ");
    double t0 = etest_now();
    int renewed = 0;
    rc = acme_ca_list_renew(l, name, 1, &renewed);
    double took = etest_now() - t0;
    itest_log("A: renewal after the restart took %.1f s", took);
    CHECK_MSG(NULL, rc == ACME_OK && renewed == 1, "renewal after the restart: rc %d renewed %d: %s", rc, renewed,
              acme_ca_list_last_error(l));
    CHECK_MSG(NULL, took < 5, "the renewal took %.1f s: it went to the down CA first (its retries take 7 s)", took);
    issued_by(h, name, 1);
    check_status(l, name, "two", 1, "CA down: ");
    CHECK_MSG(NULL, !stored_at(l, 0, name), "stored at the down CA");
    acme_ca_list_free(l);
    free(dir);
    itest_log("ok: A. down first CA: the second issued; the choice kept across a restart");
}

static void part_b(etest_host *h, const ca_spec *cas)
{
    const char *name = "fo-b.example";
    char *dir = itest_fresh_dir("fo-b");
    acme_ca_list *l = make_list(h, dir, cas, 2);
    acme_issue_params ip = {.size = sizeof ip, .names = &name, .name_count = 1, .challenges = http,
                            .challenge_count = 1};
    int rc = acme_ca_list_issue(l, &ip);
    CHECK_MSG(NULL, rc == ACME_OK, "issue at the first Pebble failed: %s", acme_ca_list_last_error(l));
    check_status(l, name, "one", 0, "first CA in the list");
    issued_by(h, name, 0);
    CHECK_MSG(NULL, stored_at(l, 0, name) && !stored_at(l, 1, name), "not issued by the first CA");

    /* The outage: the first Pebble stops. */
    fo_stop_first_pebble();
    /* Not due: nothing to do, and no reason to move (nor to reach the CA). */
    int renewed = -1;
    rc = acme_ca_list_renew(l, name, 0, &renewed);
    CHECK_MSG(NULL, rc == ACME_OK && renewed == 0, "a renewal that is not due, with the CA down: rc %d renewed %d: %s",
              rc, renewed, acme_ca_list_last_error(l));
    check_status(l, name, "one", 0, "first CA in the list");
    size_t ev0 = h->event_count;
    rc = acme_ca_list_renew(l, name, 1, &renewed);
    CHECK_MSG(NULL, rc == ACME_OK && renewed == 1, "no failover renewal: rc %d: %s", rc, acme_ca_list_last_error(l));
    fo_check_event(h, ev0, name, "one", cas[0].url, "two", cas[1].url, "CA one: ");
    check_status(l, name, "two", 1, "CA one: ");
    issued_by(h, name, 1);
    CHECK_MSG(NULL, stored_at(l, 1, name), "the renewal is not in the second CA's storage");
    acme_ca_list_free(l);

    l = make_list(h, dir, cas, 2);
    check_status(l, name, "two", 1, "CA one: ");
    double t0 = etest_now();
    rc = acme_ca_list_renew(l, name, 1, &renewed);
    double took = etest_now() - t0;
    CHECK_MSG(NULL, rc == ACME_OK && renewed == 1 && took < 5, "renewal after the restart: rc %d, %.1f s: %s", rc,
              took, acme_ca_list_last_error(l));
    acme_ca_list_free(l);
    free(dir);
    itest_log("ok: B. first Pebble stopped: the second renewed; kept across a restart");
}

/* newOrders the stand-in saw for name. */
static size_t standin_orders(const etest_standin *s, const char *name)
{
    json_t *events = etest_standin_events(s), *ev;
    size_t i, n = 0;
    json_array_foreach(events, i, ev) {
        if (!itest_streq(json_string_value(json_object_get(ev, "kind")), "newOrder") ||
            itest_streq(json_string_value(json_object_get(ev, "problem")), "urn:ietf:params:acme:error:badNonce"))
            continue;
        json_t *ids = json_object_get(ev, "identifiers");
        n += json_array_size(ids) == 1 && itest_streq(json_string_value(json_array_get(ids, 0)), name);
    }
    json_decref(events);
    return n;
}

static void part_d(etest_host *h, const char *python, const char *script, const char *second_url)
{
    etest_standin s;
    etest_standin_start(&s, python, script,
                        "{\"refuse\": {"
                        "\"fo-d1.example\": {\"type\": \"rejectedIdentifier\", \"status\": 400, "
                        "\"detail\": \"policy forbids issuing for fo-d1.example\"}, "
                        "\"fo-d2.example\": {\"type\": \"rateLimited\", \"status\": 429, \"retry_after\": 3600, "
                        "\"detail\": \"too many certificates for this name\"}, "
                        "\"fo-d3.example\": {\"type\": \"serverInternal\", \"status\": 500}}}");
    char *dir = itest_fresh_dir("fo-d");
    ca_spec cas[] = {{"std", s.directory_url, s.ca_file}, {"two", second_url, NULL}};
    acme_ca_list *l = make_list(h, dir, cas, 2);
    static const struct {
        const char *name, *type;
        size_t orders; /* at the stand-in: the first and the order's own retries */
    } want[] = {{"fo-d1.example", "rejectedIdentifier", 1},
                {"fo-d2.example", "rateLimited", 1},
                {"fo-d3.example", "serverInternal", 4}};
    for (size_t i = 0; i < 3; i++) {
        const char *name = want[i].name;
        acme_issue_params ip = {.size = sizeof ip, .names = &name, .name_count = 1, .challenges = http,
                                .challenge_count = 1};
        size_t ev0 = h->event_count;
        int rc = acme_ca_list_issue(l, &ip);
        CHECK_MSG(NULL, rc == ACME_OK, "%s: no failover after %s: %s", name, want[i].type,
                  acme_ca_list_last_error(l));
        fo_check_event(h, ev0, name, "std", s.directory_url, "two", second_url, want[i].type);
        issued_by(h, name, 1);
        check_status(l, name, "two", 1, want[i].type);
        size_t n = standin_orders(&s, name);
        itest_log("D: %s: %zu newOrder(s) at the refusing CA, then the second issued", want[i].type, n);
        CHECK_MSG(NULL, n == want[i].orders, "%s: %zu newOrders at the refusing CA, want %zu", want[i].type, n,
                  want[i].orders);
    }
    /* Retry-After 3600 on the rate limit: the refusing CA's back-off for
     * that name waits at least as long. */
    char *pat = itest_printf("%s/*/backoff/*.json", dir);
    glob_t g;
    int found = 0;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            json_t *r = json_load_file(g.gl_pathv[i], 0, NULL);
            json_t *names = json_object_get(r, "names");
            if (itest_streq(json_string_value(json_array_get(names, 0)), "fo-d2.example")) {
                double left = (double)json_integer_value(json_object_get(r, "until")) - etest_wall();
                itest_log("D: back-off at the rate-limiting CA: %.0f s left", left);
                CHECK_MSG(NULL, left >= 3500, "Retry-After 3600 not honoured: the back-off ends in %.0f s", left);
                found = 1;
            }
            json_decref(r);
        }
        globfree(&g);
    }
    CHECK_MSG(NULL, found, "no back-off record for the rate-limited name at the refusing CA");
    free(pat);
    acme_ca_list_free(l);
    etest_standin_stop(&s);
    free(dir);
    itest_log("ok: D. rejectedIdentifier, rateLimited (Retry-After kept), serverInternal: the second CA issued");
}

int main(int argc, char **argv)
{
    itest_init("it_ca_failover");
    CHECK_MSG(NULL, argc == 3, "usage: %s PYTHON3 fake_ari_ca_standin.py", argv[0]);
    etest_watchdog(280);
    fo_env_init(&env);
    etest_host h;
    etest_host_init(&h, NULL);
    ca_spec cas[] = {{"one", env.one, NULL}, {"two", env.two, NULL}};
    part_c(&h, cas);
    acme_responder_set good = {.size = sizeof good};
    good.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    h.responders = &good;
    part_d(&h, argv[1], argv[2], env.two);
    part_a(&h, env.down, env.two);
    part_b(&h, cas);
    acme_responder_free(good.http01);
    etest_host_clear(&h);
    fo_env_clear(&env);
    itest_done();
    return 0;
}
