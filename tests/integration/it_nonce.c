/* badNonce handling (RFC 8555 §6.5) against Pebble rejecting half of all
 * valid nonces (PEBBLE_WFE_NONCEREJECT=50): registration and five
 * issuances in a row must all succeed, the retries invisible to the host. */
#include <stdio.h>
#include "itest.h"

/* The test proves nothing if Pebble was not rejecting nonces: it says so
 * in its log at start-up (the harness names the log; Pebble does not log
 * each rejection). */
static void expect_nonce_faults_on(void)
{
    const char *log = getenv("ACME_TEST_PEBBLE_LOG");
    char line[512];
    int found = 0;
    if (!log || !*log) {
        itest_log("ACME_TEST_PEBBLE_LOG not set: cannot confirm nonce rejection is on");
        return;
    }
    FILE *f = fopen(log, "r");
    CHECK_MSG(NULL, f != NULL, "cannot read %s", log);
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "reject 50% of good nonces") != NULL;
    fclose(f);
    CHECK_MSG(NULL, found, "Pebble does not say it rejects 50%% of nonces: "
              "run with --env PEBBLE_WFE_NONCEREJECT=50");
}

int main(void)
{
    itest_init("it_nonce");
    itest_host h;
    itest_host_init(&h);
    char *dir = itest_fresh_dir("nonce");
    expect_nonce_faults_on();
    acme_client *c = itest_client(&h, dir);
    /* Retries are logged at debug level; counted below for information. */
    CHECK_OK(c, acme_client_set_log_level(c, ACME_LOG_DEBUG));
    itest_register(c, "mailto:nonce@example.com");

    for (int i = 0; i < 5; i++) {
        char *name = itest_printf("nonce%d.example", i);
        const char *names[] = {name};
        itest_issue p = {.names = names, .name_count = 1};
        itest_issue_checked(c, &h, &p);
        free(name);
    }
    /* Information only: the log wording is not part of the API. */
    itest_log("5 issuances; %u log lines mentioned badNonce", h.log_bad_nonce);

    acme_client_free(c);
    free(dir);
    itest_host_clear(&h);
    itest_done();
    return 0;
}
