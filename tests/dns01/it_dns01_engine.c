/* The dns01 module under the engine (acme_module_set_engine), end to end,
 * against a real knotd whose secondary lags (tests/dns01/with-knot
 * --lagging-secondary) and a real Pebble that asks only that secondary
 * (with-pebble --dnsserver {secondary}).
 *
 *   it_dns01_engine MODULE_PATH
 *
 * One certificate, *.eng.acme.test + eng.acme.test (two TXT values on one
 * name), dns-01 only, driven by a poll() loop over the engine's
 * descriptors and the module's. The test holds the secondary back for
 * LAG_MS after the values reach the primary, then refreshes it. It
 * asserts what an event-loop host needs:
 *   - every publish/unpublish answers ACME_E_PENDING at once (< 20 ms);
 *   - no engine step comes near the wait (each < 250 ms while the wait
 *     takes LAG_MS or more): the wait runs on the module's thread;
 *   - no certificate before the secondary has the values (the test
 *     refreshes it LAG_MS after each value reaches the primary; until
 *     then only the primary has it, and Pebble asks the secondary);
 *   - the module's log lines reach the log callback on the loop's thread;
 *   - the wildcard certificate is installed, the records removed, and the
 *     module has no last error.
 * Records are read with kdig; the secondary is refreshed with knotc. */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#define LAG_MS 2500u
#define STEP_BOUND_US 250000u
#define CALL_BOUND_US 20000u

typedef struct ehost {
    acme_module *m;
    long loop_tid;
    int publish_calls, unpublish_calls, install_calls;
    uint64_t slowest_call_us;
    int pending_answers;
    char *chain;
    unsigned module_lines, module_lines_off_loop, saw_waiting;
} ehost;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* How many TXT values server (host:port) answers for name (no recursion). */
static int txt_count(const char *server, const char *name)
{
    const char *colon = strrchr(server, ':');
    char *cmd = itest_printf("kdig @%.*s -p %s +norec +short +time=2 +retry=1 TXT %s. 2>&1",
                             (int)(colon - server), server, colon + 1, name);
    FILE *p = popen(cmd, "r");
    free(cmd);
    CHECK(NULL, p != NULL);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), p))
        n += line[0] == '"';
    CHECK_MSG(NULL, pclose(p) == 0, "kdig @%s TXT %s failed", server, name);
    return n;
}

static void refresh_secondary(void)
{
    char *cmd = itest_printf("%s -s %s zone-refresh %s. >&2", itest_env("DNS01_TEST_KNOTC"),
                             itest_env("DNS01_TEST_SECONDARY_SOCKET"), itest_env("DNS01_TEST_ZONE"));
    CHECK_MSG(NULL, system(cmd) == 0, "%s failed", cmd);
    free(cmd);
}

static void timed(ehost *h, uint64_t t0, int rc)
{
    uint64_t d = now_us() - t0;
    if (d > h->slowest_call_us)
        h->slowest_call_us = d;
    h->pending_answers += rc == ACME_E_PENDING;
}

static int cb_publish(void *ud, const acme_challenge *ch)
{
    ehost *h = ud;
    h->publish_calls++;
    uint64_t t0 = now_us();
    int rc = acme_module_publish(h->m, ch);
    timed(h, t0, rc);
    return rc;
}

static int cb_unpublish(void *ud, const acme_challenge *ch)
{
    ehost *h = ud;
    h->unpublish_calls++;
    uint64_t t0 = now_us();
    int rc = acme_module_unpublish(h->m, ch);
    timed(h, t0, rc);
    return rc;
}

static int cb_install(void *ud, const acme_certificate *cert)
{
    ehost *h = ud;
    free(h->chain);
    h->chain = itest_strdup(acme_certificate_chain_pem(cert));
    h->install_calls++;
    return ACME_OK;
}

static void cb_log(void *ud, acme_log_level level, const char *msg)
{
    ehost *h = ud;
    fprintf(stderr, "[it_dns01_engine] libacme %d: %s\n", (int)level, msg);
    if (!strncmp(msg, "dns01: ", 7)) {
        h->module_lines++;
        if ((long)syscall(SYS_gettid) != h->loop_tid)
            h->module_lines_off_loop++;
        if (strstr(msg, "waiting for _acme-challenge.eng.acme.test TXT at 2 authoritative servers"))
            h->saw_waiting++;
    }
    const char *secret = getenv("DNS01_TEST_TSIG_SECRET");
    if (secret && strstr(msg, secret))
        itest_fail(__FILE__, __LINE__, "log", NULL, "the TSIG secret was logged");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: it_dns01_engine MODULE_PATH\n");
        return 2;
    }
    itest_init("it_dns01_engine");
    CHECK_MSG(NULL, !strcmp(itest_env("DNS01_TEST_LAGGING"), "1"), "run under with-knot --lagging-secondary");
    const char *primary = itest_env("DNS01_TEST_SERVER"), *secondary = itest_env("DNS01_TEST_SECONDARY");
    const char *challenge = "_acme-challenge.eng.acme.test";
    ehost h;
    memset(&h, 0, sizeof(h));
    h.loop_tid = (long)syscall(SYS_gettid);

    itest_host ih;
    itest_host_init(&ih);
    char *dir = itest_fresh_dir("engine");
    acme_client *c = itest_client(&ih, dir);
    free(dir);
    acme_host_callbacks cb = {.size = sizeof(cb), .publish = cb_publish, .unpublish = cb_unpublish,
                              .install = cb_install, .log = cb_log};
    CHECK_OK(c, acme_client_set_host(c, &cb, &h));
    itest_register(c, NULL);

    char *cfg = itest_printf("resolver = %s\nnameserver-port = %s\npropagation-timeout = 60\n"
                             "propagation-interval = 100\ndns-timeout = 1000\nbackend = rfc2136\n"
                             "server = %s\ntsig-key-name = %s\ntsig-algorithm = %s\ntsig-secret = %s\nttl = 5\n",
                             primary, itest_env("DNS01_TEST_PORT"), primary, itest_env("DNS01_TEST_TSIG_NAME"),
                             itest_env("DNS01_TEST_TSIG_ALGORITHM"), itest_env("DNS01_TEST_TSIG_SECRET"));
    CHECK_OK(c, acme_module_load(c, argv[1], cfg, &h.m));
    free(cfg);
    CHECK(c, acme_module_flags(h.m) == ACME_MODULE_PUBLISHES);

    acme_engine *e = NULL;
    CHECK_OK(c, acme_engine_new(c, NULL, &e));
    CHECK(c, acme_module_fd(h.m) == -1);
    CHECK_OK(c, acme_module_set_engine(h.m, e));
    int mfd = acme_module_fd(h.m);
    CHECK(c, mfd >= 0);

    static const acme_challenge_type dns[] = {ACME_CHALLENGE_DNS_01};
    const char *names[] = {"*.eng.acme.test", "eng.acme.test"};
    acme_issue_params p = {.size = sizeof(p), .names = names, .name_count = 2, .challenges = dns,
                           .challenge_count = 1};
    CHECK_OK(c, acme_engine_manage(e, &p));

    uint64_t start = now_us(), t_primary = 0, longest = 0, longest_in_wait = 0;
    unsigned steps = 0, dispatched = 0, refreshes = 0;
    int at_primary = 0;
    while (!(h.install_calls > 0 && acme_engine_idle(e))) {
        CHECK_MSG(c, now_us() - start < 150000000u, "no certificate within 150 s (%d publishes, %d installs)",
                  h.publish_calls, h.install_calls);
        struct pollfd fds[64];
        size_t n = 0;
        CHECK_OK(c, acme_engine_fds(e, fds, 63, &n));
        fds[n].fd = mfd;
        fds[n].events = POLLIN;
        fds[n].revents = 0;
        int t = acme_engine_timeout_ms(e);
        if (t < 0 || t > 100)
            t = 100; /* the lag driver below looks every 100 ms */
        poll(fds, n + 1, t);
        if (fds[n].revents & POLLIN)
            dispatched += (unsigned)acme_module_dispatch(h.m);
        uint64_t s0 = now_us();
        acme_engine_step(e);
        uint64_t d = now_us() - s0;
        steps++;
        if (d > longest)
            longest = d;
        if (t_primary && d > longest_in_wait)
            longest_in_wait = d;
        /* The lag driver, outside the timed step: each value that reaches
         * the primary reaches the secondary LAG_MS later (the engine hands
         * the module one challenge at a time, so the values come one
         * after the other). */
        if (h.install_calls)
            continue;
        int n_primary = txt_count(primary, challenge);
        if (n_primary > at_primary) {
            at_primary = n_primary;
            t_primary = now_us();
            itest_log("%d value(s) at the primary after %llu ms", n_primary,
                      (unsigned long long)((t_primary - start) / 1000));
        } else if (n_primary < at_primary) {
            at_primary = n_primary;
        }
        if (t_primary && now_us() - t_primary >= LAG_MS * 1000u) {
            CHECK_MSG(c, txt_count(secondary, challenge) < at_primary, "the secondary is not lagging");
            refresh_secondary();
            refreshes++;
            t_primary = 0;
            itest_log("secondary refreshed; longest step while the module waited: %llu us",
                      (unsigned long long)longest_in_wait);
        }
    }
    itest_log("issued after %u steps; longest step %llu us; slowest publish/unpublish call %llu us; "
              "%u outcomes dispatched", steps, (unsigned long long)longest,
              (unsigned long long)h.slowest_call_us, dispatched);
    CHECK_MSG(c, refreshes >= 1, "the secondary was never refreshed");
    CHECK_MSG(c, longest < STEP_BOUND_US, "an engine step took %llu us: the wait ran inside a step",
              (unsigned long long)longest);
    CHECK_MSG(c, h.slowest_call_us < CALL_BOUND_US, "a publish/unpublish call took %llu us",
              (unsigned long long)h.slowest_call_us);
    CHECK(c, h.publish_calls == 2 && h.unpublish_calls == 2);
    CHECK_MSG(c, h.pending_answers == 4, "%d of 4 calls answered ACME_E_PENDING", h.pending_answers);
    CHECK(c, dispatched >= 4);
    CHECK_MSG(c, h.saw_waiting >= 1 && h.module_lines >= 4 && h.module_lines_off_loop == 0,
              "module log lines: %u, %u off the loop's thread, waiting seen %u", h.module_lines,
              h.module_lines_off_loop, h.saw_waiting);
    CHECK(c, h.install_calls == 1 && h.chain);
    CHECK(c, itest_leaf_names_are(h.chain, names, 2));
    CHECK(c, acme_module_last_error(h.m) == NULL);
    CHECK_MSG(c, txt_count(primary, challenge) == 0, "TXT values left at the primary");

    acme_module_free(h.m);
    acme_engine_free(e);
    acme_client_free(c);
    free(h.chain);
    itest_host_clear(&ih);
    itest_done();
    return 0;
}
