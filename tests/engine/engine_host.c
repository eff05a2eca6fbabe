/* A small engine host for tests/engine/crash_test.sh (issue 4, test 4).
 *
 *   engine_host STATE_DIR NAME...        (under tests/harness/with-pebble)
 *
 * Manages one certificate per NAME (preference http-01, tls-alpn-01, both
 * served by the library's responders on the ports Pebble validates), on
 * the default file storage in STATE_DIR, driving the engine with its
 * event-loop face until every certificate is installed. Each installed
 * chain is checked against Pebble's root. Then it prints, on stdout,
 *
 *   SERIAL <cert id> <serial, lower-case hex>
 *
 * per certificate (after "ISSUED_AFTER_MS <ms from the start of main until
 * every certificate was installed>") and exits 0; on a timeout (120 s) it
 * prints the engine's
 * status and exits 1. The engine's log goes to stderr, unbuffered, so a
 * SIGKILL loses nothing already logged: the crash test reads the
 * "order: <url> created" and "resuming order <url>" lines from it. */
#include <stdio.h>
#include <time.h>
#include "etest.h"

static int all_installed(etest_host *h, void *arg)
{
    char **names = arg;
    for (size_t i = 0; names[i]; i++)
        if (!etest_installed(h, names[i]))
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    static const acme_challenge_type prefs[] = {ACME_CHALLENGE_HTTP_01,
                                                ACME_CHALLENGE_TLS_ALPN_01};
    double t_start = etest_now();
    itest_init("engine_host");
    if (argc < 3) {
        fprintf(stderr, "usage: %s STATE_DIR NAME...\n", argv[0]);
        return 2;
    }
    const char *state_dir = argv[1];
    char **names = argv + 2;   /* NULL-terminated, as argv is */

    acme_responder_set set = {.size = sizeof set};
    set.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    set.tlsalpn01 = etest_responder_at_pebble(ACME_RESPONDER_TLSALPN01);
    etest_host h;
    etest_host_init(&h, &set);
    acme_client *c = etest_client(&h, state_dir);
    /* Finds the stored account after the first run (the key is stored
     * before the CA sees it, so even a kill inside registration leaves at
     * most the same account). */
    itest_register(c, NULL);
    itest_log("account %s", acme_account_url(c));
    /* retry_min_s 1: if a resumed order turned out dead, the new one should
     * not wait a minute. */
    acme_engine *e = etest_engine(c, &h, 0, 1, 0);
    for (char **n = names; *n; n++)
        CHECK_OK(c, etest_manage1(e, *n, prefs, 2));

    if (!etest_drive(&h, e, all_installed, names, 120000, NULL)) {
        etest_dump_engine(e);
        fprintf(stderr, "engine_host: FAIL: not every certificate was installed in 120 s\n");
        return 1;
    }
    /* For the crash test's calibration: how long, from the start of main,
     * until everything was stored and installed (what follows - checks,
     * teardown - is not part of the issuance). */
    printf("ISSUED_AFTER_MS %.0f\n", (etest_now() - t_start) * 1000.0);
    char *root = itest_pebble_root(0);
    for (char **n = names; *n; n++) {
        const itest_cert *ic = etest_installed(&h, *n);
        const char *why = "";
        CHECK_MSG(c, itest_chain_verifies(ic->chain_pem, root, &why),
                  "%s: chain does not verify against Pebble's root: %s", *n, why);
        CHECK_MSG(c, itest_key_matches(ic->chain_pem, ic->key_pem), "%s: key mismatch", *n);
        char *serial = itest_leaf_serial(ic->chain_pem);
        printf("SERIAL %s %s\n", ic->id, serial);
        free(serial);
    }
    fflush(stdout);
    free(root);
    acme_engine_free(e);
    acme_client_free(c);
    acme_responder_free(set.http01);
    acme_responder_free(set.tlsalpn01);
    etest_host_clear(&h);
    return 0;
}
