/* Issue 4, test 5b: ARI (RFC 9773) renewal against fake_ari_ca_standin.py,
 * an HTTPS proxy in front of the harness's Pebble that adds renewalInfo
 * to the directory and answers it (Debian's Pebble 2.4 has no ARI).
 *
 *   usage: it_engine_ari PYTHON3 fake_ari_ca_standin.py   (under with-pebble)
 *
 * The stand-in answers every renewalInfo GET with Retry-After: 3 and, for
 * the certificate's first GET, a window two months ahead (not due). From
 * the certificate's second GET on it serves a window from "now" (the
 * moment of that GET) to about 2 s later. Its first newOrder carrying
 * "replaces" is refused with 409 alreadyReplaced. Checked:
 *  - the engine asks renewalInfo for the certificate under the right
 *    certID (computed here independently: base64url(AKI keyIdentifier) "."
 *    base64url(serial)) and asks again, never sooner than Retry-After
 *    (3 s, while recheck_s is 1 s: an engine that ignored Retry-After in
 *    favour of its own recheck interval would poll every second);
 *  - the certificate, otherwise not due, is not renewed on the far window;
 *  - the renewal newOrder arrives inside the near window (whole-second
 *    window bounds, plus 1 s for an engine that schedules in whole
 *    seconds) and carries "replaces" = the old certificate's certID;
 *  - after the 409 the engine orders again WITHOUT "replaces", that order
 *    succeeds and the new certificate is installed and verifies;
 *  - exactly three newOrders in all (issue, refused renewal, renewal). */
#include <math.h>
#include <stdio.h>
#include <time.h>
#include "etest.h"

#define RETRY_AFTER 3

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static double num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int is_kind(json_t *ev, const char *kind)
{
    return itest_streq(str(ev, "kind"), kind);
}

static void dump_events(json_t *events)
{
    size_t i;
    json_t *ev;
    double t0 = json_array_size(events) ? num(json_array_get(events, 0), "t") : 0;
    json_array_foreach(events, i, ev) {
        if (is_kind(ev, "other") || is_kind(ev, "directory"))
            continue;
        char *s = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
        itest_log("  +%7.3f s %s", num(ev, "t") - t0, s);
        free(s);
    }
}

int main(int argc, char **argv)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    itest_init("it_engine_ari");
    CHECK_MSG(NULL, argc == 3, "usage: %s PYTHON3 fake_ari_ca_standin.py", argv[0]);
    etest_watchdog(290);

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_standin s;
    char *ctl = itest_printf("{\"retry_after\": %d, \"reject_replaces\": 1, "
                             "\"near_window\": {\"on_get\": 2, \"length\": 2}}", RETRY_AFTER);
    etest_standin_start(&s, argv[1], argv[2], ctl);
    free(ctl);

    etest_host h;
    etest_host_init(&h, &set);
    char *dir = itest_fresh_dir("ari");
    acme_client *c = etest_client_at(&h, dir, s.directory_url, s.ca_file);
    itest_register(c, NULL);
    /* recheck_s 1: the host asks to re-check often; Retry-After (3 s) must
     * still be the floor. retry_min_s 1: the retry after the 409 need not
     * wait a minute. */
    acme_engine *e = etest_engine(c, &h, 0, 1, 1);
    const char *names[] = {"ari.example"};
    CHECK_OK(c, etest_manage(e, names, 1, http, 1, NULL));

    /* ---- the first certificate ------------------------------------------ */
    size_t one = 1;
    if (!etest_drive(&h, e, etest_until_installs, &one, 60000, NULL)) {
        etest_dump_log(&h, 60);
        CHECK_MSG(NULL, 0, "the first certificate was not installed within 60 s: %s",
                  etest_last_error(e, names[0]));
    }
    etest_check_installed(&h, names[0], names, 1);
    char *old_chain = itest_strdup(h.installs[0].chain_pem);
    char *old_id = etest_ari_id(old_chain);
    char *old_serial = itest_leaf_serial(old_chain);
    int64_t nb = h.installs[0].not_before, na = h.installs[0].not_after;
    itest_log("first certificate: serial %s, ARI certID %s, lifetime %lld days", old_serial, old_id,
              (long long)((na - nb) / 86400));
    CHECK_MSG(NULL, na - (int64_t)time(NULL) > (na - nb) / 3,
              "Pebble's certificate is already due by lifetime: the test needs one that only ARI "
              "makes due");

    /* ---- ARI makes it due; the renewal ------------------------------------ */
    size_t two = 2;
    if (!etest_drive(&h, e, etest_until_installs, &two, 200000, NULL)) {
        json_t *ev = etest_standin_events(&s);
        dump_events(ev);
        json_decref(ev);
        etest_dump_log(&h, 60);
        etest_dump_engine(e);
        CHECK_MSG(NULL, 0, "no renewal within 200 s of the first certificate (the stand-in serves "
                  "a window starting now from the certificate's 2nd renewalInfo GET on)");
    }
    etest_drive(&h, e, etest_until_idle, NULL, 20000, NULL);
    /* A little longer, to see the polling of the new certificate. */
    etest_drive(&h, e, etest_until_installs, (size_t[]){3}, (RETRY_AFTER + 2) * 1000, NULL);

    const itest_cert *renewed = &h.installs[1];
    CHECK_MSG(NULL, itest_streq(renewed->id, names[0]), "second install is %s", renewed->id);
    etest_check_installed(&h, names[0], names, 1);
    char *new_serial = itest_leaf_serial(renewed->chain_pem);
    char *new_id = etest_ari_id(renewed->chain_pem);
    CHECK_MSG(NULL, strcmp(new_serial, old_serial), "the renewal installed the same serial %s",
              new_serial);
    CHECK_MSG(NULL, itest_streq(etest_state(e, names[0]), "valid"), "state \"%s\"",
              etest_state(e, names[0]));
    CHECK_MSG(NULL, h.install_count == 2, "%zu installs, expected 2", h.install_count);
    itest_log("renewed: serial %s, certID %s", new_serial, new_id);

    /* ---- what the stand-in saw -------------------------------------------- */
    json_t *events = etest_standin_events(&s);
    dump_events(events);
    size_t i;
    json_t *ev;

    /* renewalInfo: the right certIDs, spaced by Retry-After. */
    double last_old = -1, last_new = -1, near_t = -1, near_end = -1;
    unsigned gets_old = 0, gets_new = 0, gets_old_after_renewal = 0;
    double renewal_install_t = -1;
    json_array_foreach(events, i, ev) {
        if (!is_kind(ev, "renewalInfo"))
            continue;
        const char *id = str(ev, "cert_id");
        double t = num(ev, "t");
        CHECK_MSG(NULL, itest_streq(id, old_id) || itest_streq(id, new_id),
                  "renewalInfo GET for certID %s; the certificates' IDs are %s and %s",
                  id ? id : "(none)", old_id, new_id);
        double *last = itest_streq(id, old_id) ? &last_old : &last_new;
        if (*last >= 0) {
            itest_log("renewalInfo %s: %.3f s after the previous GET", id, t - *last);
            CHECK_MSG(NULL, t - *last >= RETRY_AFTER - 0.1,
                      "two renewalInfo GETs for %s %.3f s apart; Retry-After said %d s", id,
                      t - *last, RETRY_AFTER);
        }
        *last = t;
        if (itest_streq(id, old_id)) {
            gets_old++;
            if (json_is_true(json_object_get(ev, "near"))) {
                near_t = t;
                near_end = num(ev, "near_end");
            }
        } else {
            gets_new++;
        }
    }
    CHECK_MSG(NULL, gets_old >= 2, "%u renewalInfo GET(s) for the first certificate, expected "
              "at least 2 (one after issuance, one after Retry-After)", gets_old);
    CHECK_MSG(NULL, near_t > 0, "the near window was never served");

    /* newOrder: issue; renewal with replaces (refused); renewal without. */
    json_t *orders[8];
    size_t norders = 0;
    unsigned bad_nonce = 0;
    json_array_foreach(events, i, ev) {
        if (!is_kind(ev, "newOrder"))
            continue;
        /* Pebble refuses 5 % of good nonces; the engine resends the same
         * request. That is no order. */
        if (itest_streq(str(ev, "problem"), "urn:ietf:params:acme:error:badNonce")) {
            bad_nonce++;
            continue;
        }
        if (norders < 8)
            orders[norders++] = ev;
    }
    if (bad_nonce)
        itest_log("(%u newOrder(s) answered badNonce and resent, not counted)", bad_nonce);
    CHECK_MSG(NULL, norders == 3, "%zu newOrder requests, expected 3 (issue, renewal refused "
              "with alreadyReplaced, renewal without replaces)", norders);
    CHECK_MSG(NULL, !json_object_get(orders[0], "replaces"),
              "the first issuance carried replaces=%s", str(orders[0], "replaces"));
    CHECK_MSG(NULL, num(orders[0], "status") == 201, "first newOrder: HTTP %g",
              num(orders[0], "status"));
    CHECK_MSG(NULL, itest_streq(str(orders[1], "replaces"), old_id),
              "the renewal newOrder carried replaces=%s, expected the old certificate's certID %s",
              str(orders[1], "replaces") ? str(orders[1], "replaces") : "(none)", old_id);
    CHECK_MSG(NULL, num(orders[1], "status") == 409, "the stand-in answered %g, not 409",
              num(orders[1], "status"));
    double t_renew = num(orders[1], "t");
    itest_log("near window served at %.3f (ends %.0f); renewal newOrder at %.3f (+%.3f s)",
              near_t, near_end, t_renew, t_renew - near_t);
    CHECK_MSG(NULL, t_renew >= near_t, "the renewal started %.3f s BEFORE the window was served",
              near_t - t_renew);
    CHECK_MSG(NULL, t_renew <= near_end + 1.0,
              "the renewal started %.3f s after the served window ended", t_renew - near_end);
    CHECK_MSG(NULL, !json_object_get(orders[2], "replaces"),
              "after alreadyReplaced the engine sent replaces=%s again",
              str(orders[2], "replaces"));
    CHECK_MSG(NULL, num(orders[2], "status") == 201, "the retry's newOrder: HTTP %g",
              num(orders[2], "status"));
    renewal_install_t = num(orders[2], "t");
    json_array_foreach(events, i, ev) {
        if (is_kind(ev, "renewalInfo") && itest_streq(str(ev, "cert_id"), old_id) &&
            num(ev, "t") > renewal_install_t)
            gets_old_after_renewal++;
    }
    itest_log("renewalInfo GETs: %u for the old certificate (%u after its replacement was "
              "ordered), %u for the new one", gets_old, gets_old_after_renewal, gets_new);
    if (gets_old_after_renewal > 1)
        itest_log("note: the old certificate was still polled after it was replaced "
                  "(RFC 9773 §4.3: clients SHOULD stop)");
    json_decref(events);

    acme_engine_free(e);
    acme_client_free(c);
    etest_standin_stop(&s);
    itest_responders_stop(&set);
    free(old_chain);
    free(old_id);
    free(old_serial);
    free(new_serial);
    free(new_id);
    etest_host_clear(&h);
    free(dir);
    itest_done();
    return 0;
}
