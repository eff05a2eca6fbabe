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
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <acme/ca_list.h>
#include "etest.h"

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
static char *root[2]; /* each Pebble's root: which CA issued */

/* The last installed chain of id verifies against Pebble `which`'s root
 * and not the other's. */
static void issued_by(const etest_host *h, const char *id, int which)
{
    const itest_cert *ic = etest_installed(h, id);
    CHECK_MSG(NULL, ic != NULL, "%s was never installed", id);
    const char *why = "";
    CHECK_MSG(NULL, itest_chain_verifies(ic->chain_pem, root[which], &why), "%s: not issued by Pebble %d: %s", id,
              which + 1, why);
    CHECK_MSG(NULL, !itest_chain_verifies(ic->chain_pem, root[!which], &why), "%s: verifies against Pebble %d "
              "too", id, 2 - which);
    CHECK_MSG(NULL, itest_key_matches(ic->chain_pem, ic->key_pem), "%s: installed key is not the leaf's", id);
}

typedef struct ca_spec {
    const char *name;
    const char *url;
    const char *ca_file; /* NULL: the harness's */
} ca_spec;

static acme_ca_list *make_list(etest_host *h, const char *dir, const ca_spec *cas, size_t n)
{
    acme_account_params ap = {.size = sizeof ap, .agree_tos = 1};
    acme_ca_list *l = NULL;
    CHECK_MSG(NULL, acme_ca_list_new(&ap, &l) == ACME_OK, "acme_ca_list_new failed");
    for (size_t i = 0; i < n; i++) {
        acme_client *c = etest_client_at(h, dir, cas[i].url,
                                        cas[i].ca_file ? cas[i].ca_file : getenv("ACME_TEST_CA_FILE"));
        acme_ca_params p = {.size = sizeof p, .name = cas[i].name};
        int rc = acme_ca_list_add(l, &p, c);
        CHECK_MSG(NULL, rc == ACME_OK, "acme_ca_list_add %s: %s", cas[i].name, acme_ca_list_last_error(l));
    }
    return l;
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
    CHECK_MSG(NULL, etest_find_event(h, ev0, ACME_EVENT_FAILOVER, name) != (size_t)-1, "no FAILOVER event");
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
    pid_t pid = (pid_t)atoi(getenv("ACME_TEST_PEBBLE_PID") ? getenv("ACME_TEST_PEBBLE_PID") : "0");
    CHECK_MSG(NULL, pid > 1, "ACME_TEST_PEBBLE_PID not set: run under with-pebble --second");
    CHECK_MSG(NULL, kill(pid, SIGTERM) == 0, "cannot stop the first Pebble: %s", strerror(errno));
    for (int i = 0; i < 100 && kill(pid, 0) == 0; i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    itest_log("B: first Pebble (pid %d) stopped", (int)pid);
    /* Not due: nothing to do, and no reason to move (nor to reach the CA). */
    int renewed = -1;
    rc = acme_ca_list_renew(l, name, 0, &renewed);
    CHECK_MSG(NULL, rc == ACME_OK && renewed == 0, "a renewal that is not due, with the CA down: rc %d renewed %d: %s",
              rc, renewed, acme_ca_list_last_error(l));
    check_status(l, name, "one", 0, "first CA in the list");
    rc = acme_ca_list_renew(l, name, 1, &renewed);
    CHECK_MSG(NULL, rc == ACME_OK && renewed == 1, "no failover renewal: rc %d: %s", rc, acme_ca_list_last_error(l));
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
        int rc = acme_ca_list_issue(l, &ip);
        CHECK_MSG(NULL, rc == ACME_OK, "%s: no failover after %s: %s", name, want[i].type,
                  acme_ca_list_last_error(l));
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
    const char *one = getenv("ACME_TEST_DIRECTORY"), *two = getenv("ACME_TEST_DIRECTORY2");
    CHECK_MSG(NULL, one && two, "needs with-pebble --second");
    /* A port that refuses connections: bound, never listening, held. */
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    CHECK_MSG(NULL, hold >= 0 && bind(hold, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              getsockname(hold, (struct sockaddr *)&sa, &sl) == 0, "cannot hold a loopback port");
    char down[64];
    snprintf(down, sizeof down, "https://127.0.0.1:%u/dir", (unsigned)ntohs(sa.sin_port));

    root[0] = itest_pebble_root(0);
    /* itest's management calls go to ACME_TEST_MGMT: point it at the second for a moment. */
    char *mgmt1 = itest_strdup(getenv("ACME_TEST_MGMT"));
    setenv("ACME_TEST_MGMT", getenv("ACME_TEST_MGMT2"), 1);
    root[1] = itest_pebble_root(0);
    setenv("ACME_TEST_MGMT", mgmt1, 1);
    free(mgmt1);

    etest_host h;
    etest_host_init(&h, NULL);
    ca_spec cas[] = {{"one", one, NULL}, {"two", two, NULL}};
    part_c(&h, cas);
    acme_responder_set good = {.size = sizeof good};
    good.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    h.responders = &good;
    part_d(&h, argv[1], argv[2], two);
    part_a(&h, down, two);
    part_b(&h, cas);
    acme_responder_free(good.http01);
    etest_host_clear(&h);
    close(hold);
    free(root[0]);
    free(root[1]);
    itest_done();
    return 0;
}
