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
 *     which issues. */
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
static char *root[2];

static void issued_by(const etest_host *h, const char *id, int which)
{
    const itest_cert *ic = etest_installed(h, id);
    CHECK_MSG(NULL, ic != NULL, "%s was never installed", id);
    const char *why = "";
    CHECK_MSG(NULL, itest_chain_verifies(ic->chain_pem, root[which], &why), "%s: not issued by Pebble %d: %s", id,
              which + 1, why);
    CHECK_MSG(NULL, !itest_chain_verifies(ic->chain_pem, root[!which], &why), "%s: verifies against Pebble %d too",
              id, 2 - which);
}

typedef struct cas {
    const char *name[2];
    const char *url[2];
} cas;

static acme_ca_list *make_list(etest_host *h, const char *dir, const cas *k)
{
    acme_account_params ap = {.size = sizeof ap, .agree_tos = 1};
    acme_ca_list *l = NULL;
    CHECK_MSG(NULL, acme_ca_list_new(&ap, &l) == ACME_OK, "acme_ca_list_new failed");
    for (size_t i = 0; i < 2; i++) {
        acme_client *c = etest_client_at(h, dir, k->url[i], getenv("ACME_TEST_CA_FILE"));
        acme_ca_params p = {.size = sizeof p, .name = k->name[i]};
        CHECK_MSG(NULL, acme_ca_list_add(l, &p, c) == ACME_OK, "add: %s", acme_ca_list_last_error(l));
    }
    return l;
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

static void check_record(const char *dir, const char *id, const char *ca)
{
    char *path = itest_printf("%s/failover/%s.json", dir, id);
    json_t *r = json_load_file(path, 0, NULL);
    CHECK_MSG(NULL, r != NULL, "no stored choice %s", path);
    CHECK_MSG(NULL, itest_streq(json_string_value(json_object_get(r, "ca")), ca) &&
              json_is_true(json_object_get(r, "failover")), "stored choice is not a failover to %s", ca);
    json_decref(r);
    free(path);
}

static void part_ab(etest_host *h, const cas *k)
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
    size_t fo = etest_find_event(h, ev0, ACME_EVENT_FAILOVER, name);
    size_t is = etest_find_event(h, ev0, ACME_EVENT_ISSUED, name);
    CHECK_MSG(NULL, fo != (size_t)-1 && is != (size_t)-1 && fo < is, "no FAILOVER event before ISSUED");
    check_record(dir, name, "two");
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
    free(dir);
    itest_log("ok: B. restart: managed at the second CA, nothing ordered");
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

    pid_t pid = (pid_t)atoi(getenv("ACME_TEST_PEBBLE_PID") ? getenv("ACME_TEST_PEBBLE_PID") : "0");
    CHECK_MSG(NULL, pid > 1 && kill(pid, SIGTERM) == 0, "cannot stop the first Pebble: %s", strerror(errno));
    for (int i = 0; i < 100 && kill(pid, 0) == 0; i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    itest_log("C: first Pebble stopped");
    l = make_list(h, dir, k);
    acme_engine_options o2 = {.size = sizeof o2, .retry_min_s = 1, .max_age_s = 2};
    e = make_engine(h, l, &o2);
    CHECK_OK(NULL, etest_manage1(e, name, http, 1));
    want = h->install_count + 2; /* the stored one at start, then the second CA's */
    size_t ev0 = h->event_count;
    CHECK_MSG(NULL, etest_drive(h, e, etest_until_installs, &want, 90000, NULL), "no failover renewal in 90 s");
    CHECK_MSG(NULL, etest_find_event(h, ev0, ACME_EVENT_FAILOVER, name) != (size_t)-1, "no FAILOVER event");
    issued_by(h, name, 1);
    check_entry(e, name, "two", "CA one: ");
    check_record(dir, name, "two");
    acme_engine_free(e);
    acme_ca_list_free(l);
    free(dir);
    itest_log("ok: C. the first Pebble stopped: the renewal moved to the second");
}

int main(void)
{
    itest_init("it_engine_failover");
    etest_watchdog(280);
    const char *one = getenv("ACME_TEST_DIRECTORY"), *two = getenv("ACME_TEST_DIRECTORY2");
    CHECK_MSG(NULL, one && two, "needs with-pebble --second");
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    CHECK_MSG(NULL, hold >= 0 && bind(hold, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              getsockname(hold, (struct sockaddr *)&sa, &sl) == 0, "cannot hold a loopback port");
    char down[64];
    snprintf(down, sizeof down, "https://127.0.0.1:%u/dir", (unsigned)ntohs(sa.sin_port));
    root[0] = itest_pebble_root(0);
    char *mgmt1 = itest_strdup(getenv("ACME_TEST_MGMT"));
    setenv("ACME_TEST_MGMT", getenv("ACME_TEST_MGMT2"), 1);
    root[1] = itest_pebble_root(0);
    setenv("ACME_TEST_MGMT", mgmt1, 1);
    free(mgmt1);

    acme_responder_set good = {.size = sizeof good};
    good.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    etest_host h;
    etest_host_init(&h, &good);
    cas ab = {{"down", "two"}, {down, two}};
    part_ab(&h, &ab);
    cas c = {{"one", "two"}, {one, two}};
    part_c(&h, &c);
    etest_host_clear(&h);
    acme_responder_free(good.http01);
    close(hold);
    free(root[0]);
    free(root[1]);
    itest_done();
    return 0;
}
