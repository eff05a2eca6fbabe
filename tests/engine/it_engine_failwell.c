/* Issue 14, part 4: failing well, what Pebble 2.4 cannot show, through the
 * stand-in (fake_ari_ca_standin.py) in front of the harness's Pebble.
 *
 *   usage: it_engine_failwell PYTHON3 fake_ari_ca_standin.py   (under with-pebble)
 *
 *  A. Paused: the stand-in answers newOrder for one name the way Let's
 *     Encrypt does for an identifier it paused for this account (429
 *     rateLimited, "temporarily prevented ... Please visit: <unpause URL>").
 *     The certificate's last_error says it is paused and gives that URL;
 *     the next attempt waits retry_max_s (the "daily" step, 3 s here)
 *     although it is the first failure (the schedule would say 1 s); once
 *     unpaused it is issued.
 *  B. Profiles kept on renewal: a certificate issued under a profile, then
 *     managed by a restarted engine that names no profile, is renewed
 *     (max_age_s forces it) with a newOrder asking for the same profile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "etest.h"

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};

/* newOrders for name (badNonce resends left out); *last: the last one. */
static size_t orders_for(const etest_standin *s, const char *name, json_t **last, double *times, size_t cap)
{
    json_t *events = etest_standin_events(s);
    size_t i, n = 0;
    json_t *ev;
    if (last)
        *last = NULL;
    json_array_foreach(events, i, ev) {
        if (!itest_streq(json_string_value(json_object_get(ev, "kind")), "newOrder") ||
            itest_streq(json_string_value(json_object_get(ev, "problem")), "urn:ietf:params:acme:error:badNonce"))
            continue;
        size_t j;
        json_t *id;
        json_array_foreach(json_object_get(ev, "identifiers"), j, id) {
            if (!itest_streq(json_string_value(id), name))
                continue;
            if (times && n < cap)
                times[n] = json_number_value(json_object_get(ev, "t"));
            n++;
            if (last) {
                json_decref(*last);
                *last = json_incref(ev);
            }
        }
    }
    json_decref(events);
    return n;
}

static int has_error(etest_host *h, void *id)
{
    return *etest_last_error(h->engine, id) != '\0' && acme_engine_idle(h->engine);
}

typedef struct want_orders {
    const etest_standin *s;
    const char *name;
    size_t n;
} want_orders;

static int until_orders(etest_host *h, void *arg)
{
    (void)h;
    want_orders *w = arg;
    return orders_for(w->s, w->name, NULL, NULL, 0) >= w->n;
}

int main(int argc, char **argv)
{
    itest_init("it_engine_failwell");
    CHECK_MSG(NULL, argc == 3, "usage: %s PYTHON3 fake_ari_ca_standin.py", argv[0]);
    etest_watchdog(280);
    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_host h;
    etest_host_init(&h, &set);

    const char *paused = "paused-a.example", *kept = "kept-b.example";
    char ctl[512];
    snprintf(ctl, sizeof ctl, "{\"profiles\": {\"classic\": \"the usual\", \"shortlived\": \"a few days\"}, "
             "\"paused\": [\"%s\"]}", paused);
    etest_standin s;
    etest_standin_start(&s, argv[1], argv[2], ctl);
    char *dir = itest_fresh_dir("failwell");
    acme_client *c = etest_client_at(&h, dir, s.directory_url, s.ca_file);
    itest_register(c, NULL);

    /* ---- A: paused --------------------------------------------------------- */
    acme_engine_options o = {.size = sizeof o, .retry_min_s = 1, .retry_max_s = 3, .jitter_percent = 1};
    acme_engine *e = etest_engine_with(c, &h, &o);
    CHECK_OK(c, etest_manage1(e, paused, http, 1));
    CHECK_MSG(c, etest_drive(&h, e, has_error, (void *)paused, 30000, NULL), "no failure within 30 s");
    const char *err = etest_last_error(e, paused);
    itest_log("A: last_error: %s", err);
    char url[256];
    snprintf(url, sizeof url, "unpause at https://127.0.0.1:%u/sfe/v1/unpause?jwt=standin.%s", s.port, paused);
    CHECK_MSG(c, strstr(err, "paused") && strstr(err, url), "the error does not say paused / where to unpause "
              "(want \"%s\"): %s", url, err);
    want_orders w = {&s, paused, 2};
    CHECK_MSG(c, etest_drive(&h, e, until_orders, &w, 30000, NULL), "no second attempt within 30 s");
    double t[2];
    orders_for(&s, paused, NULL, t, 2);
    itest_log("A: second newOrder %.1f s after the first", t[1] - t[0]);
    CHECK_MSG(c, t[1] - t[0] >= 2.5, "paused, but retried after %.1f s (want the 3 s retry_max_s step)",
              t[1] - t[0]);
    etest_standin_control(&s, "{\"profiles\": {\"classic\": \"the usual\", \"shortlived\": \"a few days\"}}");
    size_t want = h.install_count + 1;
    CHECK_MSG(c, etest_drive(&h, e, etest_until_installs, &want, 60000, NULL), "not issued once unpaused");
    etest_check_installed(&h, paused, &paused, 1);
    itest_log("ok: A. paused named with its unpause URL, retried at the daily step, issued once unpaused");

    /* ---- B: the profile is kept on renewal ---------------------------------- */
    const char *names[] = {kept};
    CHECK_OK(c, etest_manage(e, names, 1, http, 1, "shortlived"));
    want = h.install_count + 1;
    CHECK_MSG(c, etest_drive(&h, e, etest_until_installs, &want, 60000, NULL), "B: not issued");
    acme_engine_free(e);
    acme_client_free(c);
    c = etest_client_at(&h, dir, s.directory_url, s.ca_file);
    acme_engine_options o2 = {.size = sizeof o2, .retry_min_s = 1, .max_age_s = 2};
    e = etest_engine_with(c, &h, &o2);
    CHECK_OK(c, etest_manage(e, names, 1, http, 1, NULL)); /* no profile named */
    want = h.install_count + 2; /* the stored one at start, then the renewal */
    CHECK_MSG(c, etest_drive(&h, e, etest_until_installs, &want, 60000, NULL), "B: not renewed");
    json_t *last = NULL;
    size_t n = orders_for(&s, kept, &last, NULL, 0);
    const char *prof = json_string_value(json_object_get(last, "profile"));
    itest_log("B: %zu newOrders; the renewal asked for profile %s", n, prof ? prof : "(none)");
    CHECK_MSG(c, n >= 2 && itest_streq(prof, "shortlived"), "the renewal asked for profile %s, want the "
              "certificate's shortlived", prof ? prof : "(none)");
    json_decref(last);
    itest_log("ok: B. the renewal kept the profile the certificate was issued under");

    acme_engine_free(e);
    acme_client_free(c);
    etest_standin_stop(&s);
    itest_responders_stop(&set);
    etest_host_clear(&h);
    free(dir);
    itest_done();
    return 0;
}
