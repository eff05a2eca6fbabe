/* The trust-anchor lookup through the engine (http_async.c): a client
 * that trusts nothing, a lookup that finds the listener's root in a trust
 * blob. The engine's own first handshake fails verification, the lookup
 * runs inside a step (no handshake of its own: the chain comes from
 * libcurl's CURLINFO_CERTINFO), the request is re-run on the multi handle
 * with the root, and the certificate is issued. A second certificate
 * needs no lookup. A wrong root fails the certificate with the sentence. */
#include <stdio.h>
#include <string.h>

#include "etest.h"
#include "ttest.h"

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};

static int has_install(etest_host *h, void *id)
{
    return etest_install_count(h, id) > 0;
}

static int has_error(etest_host *h, void *id)
{
    return acme_engine_idle(h->engine) && *etest_last_error(h->engine, id);
}

int main(void)
{
    itest_init("it_trust_engine");
    etest_watchdog(240);
    const char *url = itest_env("ACME_TEST_DIRECTORY");
    char *listener_ca = ttest_read_file(itest_env("ACME_TEST_CA_FILE"), NULL);
    char *root0 = itest_pebble_root(0);
    char *flash = itest_printf("%s%s", root0, listener_ca);

    acme_responder_set set = {.size = sizeof set};
    set.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    etest_host h;
    etest_host_init(&h, &set);
    char *dir = itest_fresh_dir("engine");

    /* The account, made by a client that pins the listener's CA, so the
     * engine's client below starts with nothing cached. */
    acme_client *reg = etest_client(&h, dir);
    itest_register(reg, NULL);
    acme_client_free(reg);

    ttest_lookup l = {.blob = flash, .blob_len = strlen(flash)};
    acme_client *c = etest_client_at(&h, dir, url, NULL);
    ttest_set_lookup(c, &l, 0, 0);
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);
    CHECK_OK(c, etest_manage1(e, "engine-trust1.example", http, 1));
    etest_drive_stats st = {0};
    if (!etest_drive(&h, e, has_install, "engine-trust1.example", 60000, &st)) {
        etest_dump_log(&h, 60);
        CHECK_MSG(NULL, 0, "not installed within 60 s: %s", etest_last_error(e, "engine-trust1.example"));
    }
    const char *n1[] = {"engine-trust1.example"};
    etest_check_installed(&h, n1[0], n1, 1);
    CHECK_MSG(c, l.calls == 1 && l.last_found, "%d lookups (found %d) for one certificate", l.calls, l.last_found);
    itest_log("engine: issued with the looked-up root; longest step %llu us over %u steps",
              (unsigned long long)st.max_step_us, st.steps);

    CHECK_OK(c, etest_manage1(e, "engine-trust2.example", http, 1));
    if (!etest_drive(&h, e, has_install, "engine-trust2.example", 60000, NULL)) {
        etest_dump_log(&h, 60);
        CHECK_MSG(NULL, 0, "second not installed: %s", etest_last_error(e, "engine-trust2.example"));
    }
    CHECK_MSG(c, l.calls == 1, "%d lookups after a second certificate", l.calls);
    etest_drive(&h, e, etest_until_idle, NULL, 20000, NULL);
    acme_engine_free(e);
    acme_client_free(c);

    /* A wrong root: the certificate fails with the sentence. */
    ttest_lookup wl = {.fixed = root0};
    char *dir2 = itest_fresh_dir("engine-wrong");
    c = etest_client_at(&h, dir2, url, NULL);
    ttest_set_lookup(c, &wl, 0, 0);
    e = etest_engine(c, &h, 0, 3600, 0);
    CHECK_OK(c, etest_manage1(e, "engine-wrong.example", http, 1));
    if (!etest_drive(&h, e, has_error, "engine-wrong.example", 30000, NULL))
        CHECK_MSG(NULL, 0, "no error for the wrong root within 30 s");
    const char *err = etest_last_error(e, "engine-wrong.example");
    CHECK_MSG(c, strstr(err, "does not verify the server's chain"), "\"%s\"", err);
    CHECK(c, wl.calls >= 1 && etest_install_count(&h, "engine-wrong.example") == 0);
    itest_log("engine: wrong root refused: %s", err);
    acme_engine_free(e);
    acme_client_free(c);

    ttest_lookup_clear(&l);
    ttest_lookup_clear(&wl);
    etest_host_clear(&h);
    acme_responder_free(set.http01);
    free(dir);
    free(dir2);
    free(flash);
    free(root0);
    free(listener_ca);
    itest_done();
    return 0;
}
