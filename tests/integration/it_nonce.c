/* badNonce handling (RFC 8555 §6.5) against Pebble rejecting half of all
 * valid nonces (PEBBLE_WFE_NONCEREJECT=50): registration and five
 * issuances in a row must all succeed, the retries invisible to the host. */
#include <stdio.h>
#include "itest.h"

int main(void)
{
    itest_init("it_nonce");
    itest_host h;
    itest_host_init(&h);
    char *dir = itest_fresh_dir("nonce");
    itest_expect_nonce_rejection();
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
