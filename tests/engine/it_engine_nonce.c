/* Issue 4, test 1: badNonce under the engine. Pebble rejects half of all
 * good nonces (harness: --env PEBBLE_WFE_NONCEREJECT=50). One client, one
 * engine; 20 single-name certificates one after another: manage one,
 * acme_engine_perform until idle, check it was installed and verifies
 * against Pebble's root, then the next. All 20 must succeed: the engine's
 * requests retry badNonce (RFC 8555 §6.5) as acme_issue's do, invisibly to
 * the host. */
#include <stdio.h>
#include <time.h>
#include "etest.h"

#define COUNT 20

int main(void)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    itest_init("it_engine_nonce");
    etest_watchdog(540);
    itest_expect_nonce_rejection();

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_host h;
    etest_host_init(&h, &set);
    char *dir = itest_fresh_dir("nonce");
    acme_client *c = etest_client(&h, dir);
    /* badNonce retries are logged at debug level; counted for information. */
    CHECK_OK(c, acme_client_set_log_level(c, ACME_LOG_DEBUG));
    itest_register(c, "mailto:engine-nonce@example.com");
    /* retry_min_s large: a failure must show as a failure here, not be
     * papered over by a retry a minute later. */
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);

    double t0 = etest_now();
    for (int i = 0; i < COUNT; i++) {
        char *name = itest_printf("nonce%02d.example", i);
        const char *names[] = {name};
        CHECK_OK(c, etest_manage1(e, name, http, 1));
        int rc = acme_engine_perform(e, -1);
        if (rc != ACME_OK || etest_install_count(&h, name) != 1) {
            etest_dump_log(&h, 60);
            etest_dump_engine(e);
        }
        CHECK_MSG(c, rc == ACME_OK, "issuance %d (%s): acme_engine_perform returned %d (%s); "
                  "last_error: %s", i, name, rc, acme_strerror(rc), etest_last_error(e, name));
        CHECK_MSG(c, etest_install_count(&h, name) == 1, "%s installed %zu times", name,
                  etest_install_count(&h, name));
        CHECK_MSG(c, acme_engine_idle(e), "perform returned but the engine is not idle");
        CHECK_MSG(c, h.outstanding == 0, "%d challenge(s) left published", h.outstanding);
        CHECK_MSG(c, itest_streq(etest_state(e, name), "valid"), "%s: state \"%s\"", name,
                  etest_state(e, name));
        etest_check_installed(&h, name, names, 1);
        itest_log("ok: %d/%d %s", i + 1, COUNT, name);
        free(name);
    }
    /* Every earlier certificate is still valid and was not re-issued. */
    for (int i = 0; i < COUNT; i++) {
        char *name = itest_printf("nonce%02d.example", i);
        CHECK_MSG(c, etest_install_count(&h, name) == 1, "%s installed %zu times", name,
                  etest_install_count(&h, name));
        CHECK_MSG(c, itest_streq(etest_state(e, name), "valid"), "%s: state \"%s\"", name,
                  etest_state(e, name));
        free(name);
    }
    /* Information only: the log wording is not part of the API. */
    itest_log("%d issuances in %.1f s; %zu log lines mentioned badNonce; longest step %llu us",
              COUNT, etest_now() - t0, etest_count_lines(&h, 0, "badNonce"),
              (unsigned long long)acme_engine_longest_step_us(e));

    acme_engine_free(e);
    acme_client_free(c);
    itest_responders_stop(&set);
    etest_host_clear(&h);
    free(dir);
    itest_done();
    return 0;
}
