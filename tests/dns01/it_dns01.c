/* dns-01 through the dns01 module (modules/dns01), end to end, against a
 * real knotd (tests/dns01/with-knot) and a real Pebble resolving through it
 * (tests/harness/with-pebble --dnsserver).
 *
 *   it_dns01 MODULE_PATH rfc2136   one name, a wildcard with its base name
 *                                  (two values on one name, removed one at a
 *                                  time), a CNAME'd challenge name
 *   it_dns01 MODULE_PATH badkey    wrong TSIG secret / key name: a clear
 *                                  BADSIG / BADKEY error, nothing published,
 *                                  the authorization deactivated
 *   it_dns01 MODULE_PATH lag       (with-knot --lagging-secondary, Pebble
 *                                  asking the secondary): the module waits
 *                                  for the secondary; and names it when it
 *                                  never catches up
 *   it_dns01 MODULE_PATH acmedns   (under fake_acmedns_api.py) register once,
 *                                  the CNAME the user must add, update
 *   it_dns01 MODULE_PATH hook SCRIPT  the hook back end's calls
 *
 * The test never trusts the module's own DNS code: records are read with
 * kdig and changed with knsupdate / knotc. */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "itest.h"

#define LAG_MS 2000u
#define MAX_PUB 16

typedef struct dhost {
    acme_module *m;
    const char *mode;
    int publish_calls, unpublish_calls, outstanding, install_calls;
    char *chain, *key;
    struct {
        char name[300];
        char value[64];
    } pub[MAX_PUB];
    size_t npub;
    char last_value[64];
    char last_name[300];
    int exact_removal;              /* check each unpublish removed just its value */
    int exact_checks;
    const char *expect_target;      /* where the TXT must land (CNAME) */
    int target_checks;
    unsigned saw_deactivated, saw_two_servers, saw_ns2_answers, saw_cname_note;
    /* lag mode */
    int lag;
    uint64_t t_primary, t_refresh, t_secondary, t_return;
    int lag_ok;
    char lag_why[256];
} dhost;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- DNS through the real tools ------------------------------------------ */

/* The TXT values server (host:port) answers for name, no recursion, as
 * lines in out. Returns how many; -1 if kdig failed. */
static int txt_at(const char *server, const char *name, char *out, size_t outlen)
{
    char host[64];
    const char *colon = strrchr(server, ':');
    snprintf(host, sizeof(host), "%.*s", (int)(colon - server), server);
    char *cmd = itest_printf("kdig @%s -p %s +norec +short +time=2 +retry=1 TXT %s. 2>&1", host,
                             colon + 1, name);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p)
        return -1;
    char line[512];
    int n = 0;
    out[0] = '\0';
    while (fgets(line, sizeof(line), p)) {
        if (line[0] != '"')
            continue; /* a CNAME line */
        char *end = strrchr(line, '"');
        if (end && end > line)
            *end = '\0';
        size_t used = strlen(out);
        snprintf(out + used, outlen - used, "%s\n", line + 1);
        n++;
    }
    return pclose(p) == 0 ? n : -1;
}

static int has_txt(const char *server, const char *name, const char *value)
{
    char out[4096], want[128];
    if (txt_at(server, name, out, sizeof(out)) < 0)
        itest_fail(__FILE__, __LINE__, "kdig", NULL, "kdig @%s %s TXT failed", server, name);
    snprintf(want, sizeof(want), "%s\n", value);
    for (char *l = out; l && *l;) {
        if (!strncmp(l, want, strlen(want)))
            return 1;
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    return 0;
}

static int txt_count(const char *server, const char *name)
{
    char out[4096];
    int n = txt_at(server, name, out, sizeof(out));
    if (n < 0)
        itest_fail(__FILE__, __LINE__, "kdig", NULL, "kdig @%s %s TXT failed", server, name);
    return n;
}

/* Apply update lines to the zone with knsupdate and the test's key. */
static void knsupdate(const char *lines)
{
    const char *server = itest_env("DNS01_TEST_SERVER");
    const char *colon = strrchr(server, ':');
    char *cmd = itest_printf("knsupdate -y %s:%s:%s >&2", itest_env("DNS01_TEST_TSIG_ALGORITHM"),
                             itest_env("DNS01_TEST_TSIG_NAME"), itest_env("DNS01_TEST_TSIG_SECRET"));
    FILE *p = popen(cmd, "w");
    free(cmd);
    CHECK(NULL, p != NULL);
    fprintf(p, "server %.*s %s\nzone %s.\n%s\nsend\n", (int)(colon - server), server, colon + 1,
            itest_env("DNS01_TEST_ZONE"), lines);
    CHECK_MSG(NULL, pclose(p) == 0, "knsupdate failed for: %s", lines);
}

static void refresh_secondary(void)
{
    char *cmd = itest_printf("%s -s %s zone-refresh %s. >&2", itest_env("DNS01_TEST_KNOTC"),
                             itest_env("DNS01_TEST_SECONDARY_SOCKET"), itest_env("DNS01_TEST_ZONE"));
    CHECK_MSG(NULL, system(cmd) == 0, "%s failed", cmd);
    free(cmd);
}

/* ---- the lagging secondary, driven from a thread during publish ------------ */

static void *lagger(void *arg)
{
    dhost *h = arg;
    const char *primary = itest_env("DNS01_TEST_SERVER");
    const char *secondary = itest_env("DNS01_TEST_SECONDARY");
    uint64_t deadline = mono_ms() + 20000;
    while (!has_txt(primary, h->last_name, h->last_value)) {
        if (mono_ms() > deadline) {
            snprintf(h->lag_why, sizeof(h->lag_why), "the value never reached the primary");
            return NULL;
        }
        nap_ms(20);
    }
    h->t_primary = mono_ms();
    if (has_txt(secondary, h->last_name, h->last_value)) {
        snprintf(h->lag_why, sizeof(h->lag_why), "the secondary did not lag: it had the value at once");
        return NULL;
    }
    nap_ms(LAG_MS);
    if (has_txt(secondary, h->last_name, h->last_value)) {
        snprintf(h->lag_why, sizeof(h->lag_why), "the secondary got the value before the refresh");
        return NULL;
    }
    h->t_refresh = mono_ms();
    refresh_secondary();
    deadline = mono_ms() + 20000;
    while (!has_txt(secondary, h->last_name, h->last_value)) {
        if (mono_ms() > deadline) {
            snprintf(h->lag_why, sizeof(h->lag_why), "the secondary never got the value");
            return NULL;
        }
        nap_ms(10);
    }
    h->t_secondary = mono_ms();
    h->lag_ok = 1;
    return NULL;
}

/* ---- host callbacks: everything dns-01 goes to the module ----------------- */

static int cb_publish(void *ud, const acme_challenge *ch)
{
    dhost *h = ud;
    h->publish_calls++;
    CHECK(NULL, acme_challenge_get_type(ch) == ACME_CHALLENGE_DNS_01);
    snprintf(h->last_value, sizeof(h->last_value), "%s", acme_challenge_dns_value(ch));
    snprintf(h->last_name, sizeof(h->last_name), "%s", acme_challenge_dns_name(ch));
    itest_log("publish %s%s via the module", acme_challenge_is_wildcard(ch) ? "*." : "",
              acme_challenge_identifier(ch));
    pthread_t t;
    if (h->lag) {
        h->lag_ok = 0;
        h->lag_why[0] = '\0';
        CHECK(NULL, pthread_create(&t, NULL, lagger, h) == 0);
    }
    int rc = acme_module_publish(h->m, ch);
    h->t_return = mono_ms();
    if (h->lag)
        pthread_join(t, NULL);
    if (rc != ACME_OK)
        return rc;
    h->outstanding++;
    CHECK(NULL, h->npub < MAX_PUB);
    snprintf(h->pub[h->npub].name, sizeof(h->pub[0].name), "%s", h->last_name);
    snprintf(h->pub[h->npub].value, sizeof(h->pub[0].value), "%s", h->last_value);
    h->npub++;
    if (h->expect_target) {
        /* The record is at the CNAME's target, and visible. */
        CHECK_MSG(NULL, has_txt(itest_env("DNS01_TEST_SERVER"), h->expect_target, h->last_value),
                  "the TXT value is not at %s", h->expect_target);
        h->target_checks++;
    }
    return ACME_OK;
}

static int cb_unpublish(void *ud, const acme_challenge *ch)
{
    dhost *h = ud;
    const char *name = acme_challenge_dns_name(ch), *value = acme_challenge_dns_value(ch);
    int rc = acme_module_unpublish(h->m, ch);
    h->unpublish_calls++;
    h->outstanding--;
    size_t i;
    for (i = 0; i < h->npub; i++)
        if (!strcmp(h->pub[i].name, name) && !strcmp(h->pub[i].value, value))
            break;
    CHECK_MSG(NULL, i < h->npub, "unpublish of %s %s that was never published", name, value);
    h->pub[i] = h->pub[--h->npub];
    if (rc == ACME_OK && h->exact_removal) {
        /* Exactly this value went; the other values of the name stayed. */
        const char *primary = itest_env("DNS01_TEST_SERVER");
        CHECK_MSG(NULL, !has_txt(primary, name, value), "%s %s is still there", name, value);
        for (size_t k = 0; k < h->npub; k++)
            if (!strcmp(h->pub[k].name, name)) {
                CHECK_MSG(NULL, has_txt(primary, name, h->pub[k].value),
                          "removing one value of %s also removed %s", name, h->pub[k].value);
                h->exact_checks++;
            }
    }
    return rc;
}

static int cb_install(void *ud, const acme_certificate *cert)
{
    dhost *h = ud;
    free(h->chain);
    free(h->key);
    h->chain = itest_strdup(acme_certificate_chain_pem(cert));
    h->key = itest_strdup(acme_certificate_key_pem(cert));
    h->install_calls++;
    return ACME_OK;
}

static void cb_log(void *ud, acme_log_level level, const char *msg)
{
    dhost *h = ud;
    static const char *names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "[it_dns01 %s] libacme %s: %s\n", h->mode, (unsigned)level < 4 ? names[level] : "?",
            msg);
    if (strstr(msg, "deactivated the pending authorization"))
        h->saw_deactivated++;
    if (strstr(msg, "at 2 authoritative servers"))
        h->saw_two_servers++;
    if (strstr(msg, "ns2.acme.test (") && strstr(msg, ") answers the TXT value"))
        h->saw_ns2_answers++;
    if (strstr(msg, "leads by CNAME to"))
        h->saw_cname_note++;
    if (strchr(msg, '\n'))
        itest_fail(__FILE__, __LINE__, "log", NULL, "a log line holds a newline");
    const char *secret = getenv("DNS01_TEST_TSIG_SECRET");
    if (secret && strstr(msg, secret))
        itest_fail(__FILE__, __LINE__, "log", NULL, "the TSIG secret was logged");
}

static acme_client *client(dhost *h, itest_host *ih, const char *label)
{
    char *dir = itest_fresh_dir(label);
    acme_client *c = itest_client(ih, dir);
    free(dir);
    acme_host_callbacks cb = {
        .size = sizeof(cb),
        .publish = cb_publish,
        .unpublish = cb_unpublish,
        .install = cb_install,
        .log = cb_log,
    };
    CHECK_OK(c, acme_client_set_host(c, &cb, h));
    itest_register(c, NULL);
    return c;
}

static void load(acme_client *c, dhost *h, const char *path, const char *config)
{
    acme_module_free(h->m);
    h->m = NULL;
    CHECK_OK(c, acme_module_load(c, path, config, &h->m));
    CHECK(c, itest_streq(acme_module_name(h->m), "dns01"));
    CHECK(c, acme_module_handles(h->m, ACME_CHALLENGE_DNS_01));
    CHECK(c, !acme_module_handles(h->m, ACME_CHALLENGE_HTTP_01));
}

/* Common configuration: lookups at the primary, both servers found by NS. */
static char *config(const char *backend_lines, unsigned timeout_s)
{
    return itest_printf("# it_dns01\nresolver = %s\nnameserver-port = %s\n"
                        "propagation-timeout = %u\npropagation-interval = 100\n"
                        "dns-timeout = 1000\n%s",
                        itest_env("DNS01_TEST_SERVER"), itest_env("DNS01_TEST_PORT"), timeout_s,
                        backend_lines);
}

static char *rfc2136_lines(const char *key_name, const char *secret)
{
    return itest_printf("backend = rfc2136\nserver = %s\ntsig-key-name = %s\n"
                        "tsig-algorithm = %s\ntsig-secret = %s\nttl = 5\n",
                        itest_env("DNS01_TEST_SERVER"), key_name,
                        itest_env("DNS01_TEST_TSIG_ALGORITHM"), secret);
}

static int issue(acme_client *c, const char *const *names, size_t n)
{
    static const acme_challenge_type dns[] = {ACME_CHALLENGE_DNS_01};
    acme_issue_params p = {
        .size = sizeof(p),
        .names = names,
        .name_count = n,
        .challenges = dns,
        .challenge_count = 1,
    };
    return acme_issue(c, &p);
}

/* acme_issue, then the certificate checked independently. */
static void issue_ok(acme_client *c, dhost *h, const char *const *names, size_t n)
{
    int installs = h->install_calls;
    CHECK_OK(c, issue(c, names, n));
    CHECK(c, h->install_calls == installs + 1);
    CHECK(c, h->outstanding == 0);
    char *root = itest_pebble_root(0);
    const char *why = "";
    CHECK_MSG(c, itest_chain_verifies(h->chain, root, &why), "chain: %s", why);
    CHECK(c, itest_key_matches(h->chain, h->key));
    CHECK(c, itest_leaf_names_are(h->chain, names, n));
    free(root);
    itest_log("ok: certificate for %s%s", names[0], n > 1 ? " and more" : "");
}

static void no_txt_left(const char *name)
{
    CHECK_MSG(NULL, txt_count(itest_env("DNS01_TEST_SERVER"), name) == 0,
              "a TXT record is left at %s on the primary", name);
    if (!strcmp(itest_env("DNS01_TEST_LAGGING"), "0")) {
        /* The secondary follows by NOTIFY: give it a moment. */
        uint64_t deadline = mono_ms() + 5000;
        while (txt_count(itest_env("DNS01_TEST_SECONDARY"), name) != 0) {
            CHECK_MSG(NULL, mono_ms() < deadline, "a TXT record is left at %s on the secondary",
                      name);
            nap_ms(50);
        }
    }
}

static void expect_error(acme_client *c, const char *what)
{
    const char *e = acme_client_last_error(c);
    CHECK_MSG(c, e && strstr(e, what), "the error does not mention \"%s\"", what);
}

/* ---- modes ------------------------------------------------------------------ */

static void mode_rfc2136(const char *path, dhost *h, itest_host *ih)
{
    acme_client *c = client(h, ih, "rfc2136");
    char *lines = rfc2136_lines(itest_env("DNS01_TEST_TSIG_NAME"), itest_env("DNS01_TEST_TSIG_SECRET"));
    char *cfg = config(lines, 30);
    load(c, h, path, cfg);
    h->exact_removal = 1;

    const char *one[] = {"host.acme.test"};
    issue_ok(c, h, one, 1);
    CHECK(c, h->publish_calls == 1 && h->unpublish_calls == 1);
    CHECK_MSG(c, h->saw_two_servers >= 1, "the module did not wait for both NS of acme.test");
    CHECK_MSG(c, h->saw_ns2_answers >= 1, "the module never saw ns2 answer");
    no_txt_left("_acme-challenge.host.acme.test");

    /* A wildcard and its base name: two values on _acme-challenge.acme.test. */
    const char *wild[] = {"*.acme.test", "acme.test"};
    int pubs = h->publish_calls;
    issue_ok(c, h, wild, 2);
    CHECK(c, h->publish_calls == pubs + 2);
    CHECK_MSG(c, h->exact_checks >= 1, "the two values never stood side by side");
    no_txt_left("_acme-challenge.acme.test");

    /* A CNAME'd challenge name: the record goes to the target. */
    knsupdate("update add _acme-challenge.alias.acme.test. 60 CNAME alias-target.acme.test.");
    h->expect_target = "alias-target.acme.test";
    const char *alias[] = {"alias.acme.test"};
    issue_ok(c, h, alias, 1);
    CHECK(c, h->target_checks == 1 && h->saw_cname_note >= 1);
    h->expect_target = NULL;
    no_txt_left("alias-target.acme.test");

    acme_module_free(h->m);
    h->m = NULL;
    acme_client_free(c);
    free(cfg);
    free(lines);
}

static void expect_refused_update(acme_client *c, dhost *h, const char *name, const char *tsig_error)
{
    const char *names[] = {name};
    int pubs = h->publish_calls, unpubs = h->unpublish_calls, installs = h->install_calls;
    unsigned deact = h->saw_deactivated;
    int rc = issue(c, names, 1);
    CHECK_MSG(c, rc == ACME_E_CALLBACK, "acme_issue returned %d", rc);
    expect_error(c, tsig_error);
    expect_error(c, itest_env("DNS01_TEST_SERVER"));
    CHECK(c, h->publish_calls == pubs + 1 && h->unpublish_calls == unpubs);
    CHECK(c, h->outstanding == 0 && h->install_calls == installs);
    CHECK_MSG(c, h->saw_deactivated > deact, "the pending authorization was not deactivated");
    char *challenge = itest_printf("_acme-challenge.%s", name);
    CHECK_MSG(c, txt_count(itest_env("DNS01_TEST_SERVER"), challenge) == 0,
              "something was published at %s", challenge);
    free(challenge);
    itest_log("ok: %s refused with %s: %s", name, tsig_error, acme_client_last_error(c));
}

static void mode_badkey(const char *path, dhost *h, itest_host *ih)
{
    acme_client *c = client(h, ih, "badkey");
    /* The right key name, another secret. */
    const char *other = "d3Jvbmcgc2VjcmV0IGZvciB0aGUgZml4dHVyZSBrZXk=";
    CHECK(c, strcmp(other, itest_env("DNS01_TEST_TSIG_SECRET")) != 0);
    char *lines = rfc2136_lines(itest_env("DNS01_TEST_TSIG_NAME"), other);
    char *cfg = config(lines, 10);
    load(c, h, path, cfg);
    expect_refused_update(c, h, "badsig.acme.test", "BADSIG");
    free(lines);
    free(cfg);

    /* A key name the server does not know. */
    lines = rfc2136_lines("no-such-key.", itest_env("DNS01_TEST_TSIG_SECRET"));
    cfg = config(lines, 10);
    load(c, h, path, cfg);
    expect_refused_update(c, h, "badkey.acme.test", "BADKEY");
    free(lines);
    free(cfg);

    /* No key at all: the zone only takes signed updates. */
    lines = itest_printf("backend = rfc2136\nserver = %s\n", itest_env("DNS01_TEST_SERVER"));
    cfg = config(lines, 10);
    load(c, h, path, cfg);
    expect_refused_update(c, h, "unsigned.acme.test", "NOTAUTH");
    free(lines);
    free(cfg);

    acme_module_free(h->m);
    h->m = NULL;
    acme_client_free(c);
}

static void mode_lag(const char *path, dhost *h, itest_host *ih)
{
    CHECK_MSG(NULL, !strcmp(itest_env("DNS01_TEST_LAGGING"), "1"),
              "run under with-knot --lagging-secondary");
    acme_client *c = client(h, ih, "lag");
    char *lines = rfc2136_lines(itest_env("DNS01_TEST_TSIG_NAME"), itest_env("DNS01_TEST_TSIG_SECRET"));

    /* 1. The secondary never catches up: the error names it and what it said. */
    char *cfg = config(lines, 3);
    load(c, h, path, cfg);
    const char *never[] = {"never.acme.test"};
    uint64_t t0 = mono_ms();
    int rc = issue(c, never, 1);
    uint64_t took = mono_ms() - t0;
    CHECK_MSG(c, rc == ACME_E_CALLBACK, "acme_issue returned %d", rc);
    expect_error(c, "propagation");
    expect_error(c, "ns2.acme.test");
    expect_error(c, itest_env("DNS01_TEST_SECONDARY"));
    expect_error(c, "no TXT record");
    CHECK_MSG(c, took >= 3000 && took < 30000, "gave up after %llu ms", (unsigned long long)took);
    CHECK(c, h->outstanding == 0 && h->saw_deactivated >= 1);
    /* The failed publish took its record down again. */
    CHECK(c, txt_count(itest_env("DNS01_TEST_SERVER"), "_acme-challenge.never.acme.test") == 0);
    itest_log("ok: never caught up: %s", acme_client_last_error(c));
    free(cfg);

    /* 2. The secondary catches up LAG_MS after the primary: publish waits for
     *    it, and Pebble, which asks only the secondary, finds the value. */
    cfg = config(lines, 30);
    load(c, h, path, cfg);
    h->lag = 1;
    const char *lag[] = {"lag.acme.test"};
    issue_ok(c, h, lag, 1);
    h->lag = 0;
    CHECK_MSG(c, h->lag_ok, "the lag driver failed: %s", h->lag_why);
    itest_log("value at the primary t=0, secondary refreshed t=%llu ms, secondary answered "
              "t=%llu ms, publish returned t=%llu ms",
              (unsigned long long)(h->t_refresh - h->t_primary),
              (unsigned long long)(h->t_secondary - h->t_primary),
              (unsigned long long)(h->t_return - h->t_primary));
    /* Right before t_refresh the secondary was seen without the value, and
     * nothing else can bring it there (no NOTIFY, an hour's SOA refresh):
     * a publish that returned before t_refresh returned early. (t_secondary
     * is when this test's own kdig poll first saw it: later than the
     * module may see it, so it is not compared.) */
    CHECK_MSG(c, h->t_return > h->t_refresh, "publish returned before the secondary had the value");
    CHECK(c, h->t_return >= h->t_primary + LAG_MS);
    CHECK(c, h->saw_ns2_answers >= 1);
    /* Once the secondary follows again, nothing is left anywhere. */
    refresh_secondary();
    uint64_t deadline = mono_ms() + 10000;
    while (txt_count(itest_env("DNS01_TEST_SECONDARY"), "_acme-challenge.lag.acme.test") != 0) {
        CHECK(c, mono_ms() < deadline);
        nap_ms(50);
    }
    no_txt_left("_acme-challenge.lag.acme.test");
    free(cfg);
    free(lines);
    acme_module_free(h->m);
    h->m = NULL;
    acme_client_free(c);
}

/* ---- acme-dns -------------------------------------------------------------- */

static json_t *api_state(void)
{
    json_error_t err;
    json_t *s = json_load_file(itest_env("ACMEDNS_TEST_STATE"), 0, &err);
    CHECK_MSG(NULL, s != NULL, "state file: %s", err.text);
    return s;
}

static int api_count(const char *what)
{
    json_t *s = api_state();
    json_t *v = json_object_get(s, what);
    int n = json_is_array(v) ? (int)json_array_size(v) : (int)json_integer_value(v);
    json_decref(s);
    return n;
}

static char *api_fulldomain(void)
{
    json_t *s = api_state();
    json_t *accounts = json_object_get(s, "accounts");
    CHECK(NULL, json_object_size(accounts) == 1);
    const char *k;
    json_t *v;
    char *full = NULL;
    json_object_foreach(accounts, k, v) full = itest_strdup(json_string_value(v));
    json_decref(s);
    return full;
}

static char found_creds[1024];

static int find_creds(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_F && strstr(p, "/modules/dns01/acme-dns/ad.acme.test.json")) {
        snprintf(found_creds, sizeof(found_creds), "%s", p);
        CHECK_MSG(NULL, (st->st_mode & 077) == 0, "%s is readable by others", p);
    }
    return 0;
}

static void mode_acmedns(const char *path, dhost *h, itest_host *ih)
{
    acme_client *c = client(h, ih, "acmedns");
    char *lines = itest_printf("backend = acme-dns\napi-url = %s\nca-file = %s\n",
                               itest_env("ACMEDNS_TEST_API"), itest_env("ACMEDNS_TEST_CA_FILE"));
    char *cfg = config(lines, 30);
    int lrc = acme_module_load(c, path, cfg, &h->m);
    if (lrc == ACME_E_UNSUPPORTED && strstr(acme_client_last_error(c), "acme_buffer_new")) {
        /* Built against a libacme without module storage reads. */
        itest_log("SKIP: %s", acme_client_last_error(c));
        exit(77);
    }
    CHECK_OK(c, lrc);
    const char *one[] = {"ad.acme.test"};

    /* 1. First use: registers, stores the credentials, and says which CNAME
     *    to create (there is none yet), so the order is abandoned. */
    int rc = issue(c, one, 1);
    CHECK_MSG(c, rc == ACME_E_CALLBACK, "acme_issue returned %d", rc);
    CHECK(c, api_count("registrations") == 1 && api_count("updates") == 0);
    char *full = api_fulldomain();
    expect_error(c, full);
    expect_error(c, "CNAME");
    expect_error(c, "_acme-challenge.ad.acme.test");
    CHECK(c, h->saw_deactivated >= 1 && h->outstanding == 0);
    found_creds[0] = '\0';
    CHECK(c, nftw(itest_env("ACME_TEST_TMPDIR"), find_creds, 16, FTW_PHYS) == 0);
    CHECK_MSG(c, found_creds[0], "no stored credentials under modules/dns01/acme-dns/");
    itest_log("ok: registered; stored %s; told: %s", found_creds, acme_client_last_error(c));

    /* 2. The user adds the CNAME; the same instance issues without
     *    registering again. */
    char *cname = itest_printf("update add _acme-challenge.ad.acme.test. 60 CNAME %s.", full);
    knsupdate(cname);
    h->expect_target = full;
    issue_ok(c, h, one, 1);
    CHECK(c, api_count("registrations") == 1 && api_count("updates") == 1);
    CHECK(c, h->target_checks == 1);

    /* 3. A new instance (as after a restart) finds the stored credentials:
     *    the wildcard and the base name, two values in acme-dns's two slots. */
    load(c, h, path, cfg);
    const char *wild[] = {"*.ad.acme.test", "ad.acme.test"};
    issue_ok(c, h, wild, 2);
    CHECK(c, api_count("registrations") == 1 && api_count("updates") == 3);
    CHECK(c, api_count("refused") == 0);
    h->expect_target = NULL;

    free(cname);
    free(full);
    free(cfg);
    free(lines);
    acme_module_free(h->m);
    h->m = NULL;
    acme_client_free(c);
}

/* ---- hook ------------------------------------------------------------------- */

static char **read_lines(const char *file, size_t *n)
{
    FILE *f = fopen(file, "r");
    char **lines = NULL;
    *n = 0;
    if (!f)
        return NULL;
    char buf[1024];
    while (fgets(buf, sizeof(buf), f)) {
        buf[strcspn(buf, "\n")] = '\0';
        lines = realloc(lines, (*n + 1) * sizeof(char *));
        lines[(*n)++] = itest_strdup(buf);
    }
    fclose(f);
    return lines;
}

static void expect_hook_calls(const char *log, size_t from, const char *const *want, size_t n)
{
    size_t got_n;
    char **got = read_lines(log, &got_n);
    CHECK_MSG(NULL, got_n == from + n, "the hook was called %zu times, expected %zu", got_n, from + n);
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(NULL, !strcmp(got[from + i], want[i]), "hook call %zu: \"%s\", expected \"%s\"",
                  from + i, got[from + i], want[i]);
    for (size_t i = 0; i < got_n; i++)
        free(got[i]);
    free(got);
}

static void mode_hook(const char *path, const char *script, dhost *h, itest_host *ih)
{
    acme_client *c = client(h, ih, "hook");
    char *log = itest_printf("%s/hook-calls.log", itest_env("ACME_TEST_TMPDIR"));
    CHECK(c, setenv("DNS01_HOOK_LOG", log, 1) == 0);
    char *lines = itest_printf("backend = hook\ncommand = %s\nhook-timeout = 20\n", script);
    char *cfg = config(lines, 30);
    load(c, h, path, cfg);
    h->exact_removal = 1;

    const char *one[] = {"hook.acme.test"};
    issue_ok(c, h, one, 1);
    char *add = itest_printf("add _acme-challenge.hook.acme.test %s zone=acme.test id=hook.acme.test",
                             h->last_value);
    char *del = itest_printf("del _acme-challenge.hook.acme.test %s zone=acme.test id=hook.acme.test",
                             h->last_value);
    const char *want1[] = {add, del};
    expect_hook_calls(log, 0, want1, 2);
    no_txt_left("_acme-challenge.hook.acme.test");
    free(add);
    free(del);

    /* Through a CNAME: the hook is told the target. */
    knsupdate("update add _acme-challenge.hk.acme.test. 60 CNAME hk-target.acme.test.");
    h->expect_target = "hk-target.acme.test";
    const char *cn[] = {"hk.acme.test"};
    issue_ok(c, h, cn, 1);
    h->expect_target = NULL;
    add = itest_printf("add hk-target.acme.test %s zone=acme.test id=hk.acme.test", h->last_value);
    del = itest_printf("del hk-target.acme.test %s zone=acme.test id=hk.acme.test", h->last_value);
    const char *want2[] = {add, del};
    expect_hook_calls(log, 2, want2, 2);
    free(add);
    free(del);

    /* A failing hook: its own words reach the caller. */
    CHECK(c, setenv("DNS01_HOOK_FAIL", "the provider API says no", 1) == 0);
    const char *bad[] = {"hf.acme.test"};
    int rc = issue(c, bad, 1);
    CHECK_MSG(c, rc == ACME_E_CALLBACK, "acme_issue returned %d", rc);
    expect_error(c, "the provider API says no");
    expect_error(c, "exited with status 3");
    add = itest_printf("add _acme-challenge.hf.acme.test %s zone=acme.test id=hf.acme.test",
                       h->last_value);
    const char *want3[] = {add};
    expect_hook_calls(log, 4, want3, 1);
    CHECK(c, h->outstanding == 0 && h->saw_deactivated >= 1);
    unsetenv("DNS01_HOOK_FAIL");
    free(add);

    free(cfg);
    free(lines);
    free(log);
    acme_module_free(h->m);
    h->m = NULL;
    acme_client_free(c);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: it_dns01 MODULE_PATH rfc2136|badkey|lag|acmedns|hook [SCRIPT]\n");
        return 2;
    }
    const char *path = argv[1], *mode = argv[2];
    char *name = itest_printf("it_dns01_%s", mode);
    itest_init(name);
    itest_host ih;
    itest_host_init(&ih);
    dhost h;
    memset(&h, 0, sizeof(h));
    h.mode = mode;
    if (!strcmp(mode, "rfc2136"))
        mode_rfc2136(path, &h, &ih);
    else if (!strcmp(mode, "badkey"))
        mode_badkey(path, &h, &ih);
    else if (!strcmp(mode, "lag"))
        mode_lag(path, &h, &ih);
    else if (!strcmp(mode, "acmedns"))
        mode_acmedns(path, &h, &ih);
    else if (!strcmp(mode, "hook") && argc > 3)
        mode_hook(path, argv[3], &h, &ih);
    else
        CHECK_MSG(NULL, 0, "unknown mode %s", mode);
    free(h.chain);
    free(h.key);
    itest_host_clear(&ih);
    itest_done();
    free(name);
    return 0;
}
