/* Issue 4, test 6: certificate profiles (draft-aaron-acme-profiles).
 *
 *   usage: it_engine_profile PYTHON3 fake_ari_ca_standin.py   (under with-pebble)
 *
 * A profile the CA does not list must fail before any order is placed,
 * with an error that names the profile: at acme_engine_manage when the
 * directory is already known, else at the first step.
 *
 *  A. Pebble 2.4 lists no profiles, a newer Pebble lists its own; either
 *     way BAD_PROFILE is unknown:
 *     A1. directory known (the client registered): manage fails, and
 *         acme_client_last_error names the profile;
 *     A2. a fresh client (directory not fetched yet): manage may accept;
 *         then the engine's first attempt fails with last_error naming the
 *         profile. Either way: no "order: <url> created" line, nothing
 *         published, nothing installed.
 *  B. Through the stand-in, whose directory meta lists profiles (its own
 *     when Pebble lists none, else Pebble's, never one Pebble would refuse):
 *     B1. a listed profile: the newOrder carries "profile" and the
 *         certificate is issued (Pebble 2.4 ignores the field, a newer one
 *         applies it);
 *     B2. a certificate without a profile: its newOrder has no "profile";
 *     B3. an unlisted profile: refused naming it, and the stand-in saw no
 *         newOrder for that name at all. */
#include <stdio.h>
#include <time.h>
#include "etest.h"

#define BAD_PROFILE "no-such-profile-xyz"

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};

static int errored(etest_host *h, void *id)
{
    return acme_engine_idle(h->engine) && *etest_last_error(h->engine, id) != '\0';
}

/* Either manage refuses (the message is the client's last error) or the
 * first attempt fails (the message is the status' last_error). Returns the
 * message (static). */
static const char *refuse_unknown(etest_host *h, acme_client *c, acme_engine *e,
                                  const char *name, int directory_known)
{
    static char msg[4096];
    const char *names[] = {name};
    int rc = etest_manage(e, names, 1, http, 1, BAD_PROFILE);
    if (rc != ACME_OK) {
        snprintf(msg, sizeof msg, "%s", acme_client_last_error(c));
        itest_log("%s: manage refused: %s (%s)", name, acme_strerror(rc), msg);
        return msg;
    }
    CHECK_MSG(c, !directory_known, "acme_engine_manage accepted unknown profile \"%s\" although "
              "the directory is known (engine.h: it fails here then)", BAD_PROFILE);
    if (!etest_drive(h, e, errored, (void *)name, 30000, NULL)) {
        etest_dump_log(h, 40);
        etest_dump_engine(e);
        CHECK_MSG(c, 0, "%s: no error within 30 s for unknown profile \"%s\"", name, BAD_PROFILE);
    }
    snprintf(msg, sizeof msg, "%s", etest_last_error(e, name));
    itest_log("%s: first step failed: state %s, last_error: %s", name, etest_state(e, name), msg);
    CHECK_MSG(c, !itest_streq(etest_state(e, name), "valid"), "state valid");
    return msg;
}

static void no_order_for(etest_host *h, size_t line_mark, size_t pub_mark, size_t inst_mark,
                         const char *name)
{
    char **urls;
    size_t n = etest_created_orders(h, line_mark, &urls);
    for (size_t i = 0; i < n; i++)
        itest_log("  unexpected order: %s", urls[i]);
    etest_free_strings(urls, n);
    CHECK_MSG(NULL, n == 0, "%zu order(s) created for %s despite the unknown profile", n, name);
    CHECK_MSG(NULL, h->pub_count == pub_mark, "something was published for %s", name);
    CHECK_MSG(NULL, h->install_count == inst_mark, "something was installed for %s", name);
}

static size_t standin_orders_for(const etest_standin *s, const char *name, json_t **last)
{
    json_t *events = etest_standin_events(s);
    size_t i, n = 0;
    json_t *ev;
    if (last)
        *last = NULL;
    json_array_foreach(events, i, ev) {
        json_t *ids = json_object_get(ev, "identifiers");
        if (!itest_streq(json_string_value(json_object_get(ev, "kind")), "newOrder"))
            continue;
        /* A badNonce answer is resent by the engine: not an order. */
        if (itest_streq(json_string_value(json_object_get(ev, "problem")),
                        "urn:ietf:params:acme:error:badNonce"))
            continue;
        size_t j;
        json_t *id;
        json_array_foreach(ids, j, id) {
            if (itest_streq(json_string_value(id), name)) {
                n++;
                if (last) {
                    json_decref(*last);
                    *last = json_incref(ev);
                }
            }
        }
    }
    json_decref(events);
    return n;
}

/* The profile B1 asks for: one the CA will really accept. Pebble 2.4 lists
 * none and ignores the field, so the stand-in's own "shortlived" is used; a
 * newer Pebble lists its own, which the stand-in passes on unchanged, and
 * only those are accepted. Returns a string owned by the caller. */
static char *listed_profile(const etest_standin *s)
{
    json_t *events = etest_standin_events(s);
    char *pick = NULL;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) {
        if (!itest_streq(json_string_value(json_object_get(ev, "kind")), "upstream"))
            continue;
        json_t *names = json_object_get(ev, "profiles");
        size_t j;
        json_t *n;
        json_array_foreach(names, j, n) {
            if (!pick || itest_streq(json_string_value(n), "shortlived")) {
                free(pick);
                pick = strdup(json_string_value(n));
            }
        }
    }
    json_decref(events);
    return pick ? pick : strdup("shortlived");
}

int main(int argc, char **argv)
{
    itest_init("it_engine_profile");
    CHECK_MSG(NULL, argc == 3, "usage: %s PYTHON3 fake_ari_ca_standin.py", argv[0]);
    etest_watchdog(280);

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_host h;
    etest_host_init(&h, &set);

    /* ---- A1: Pebble, directory known ------------------------------------- */
    char *dir = itest_fresh_dir("profile-pebble");
    acme_client *c = etest_client(&h, dir);
    itest_register(c, NULL);     /* fetches the directory */
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);
    size_t lm = h.line_count, pm = h.pub_count, im = h.install_count;
    const char *msg = refuse_unknown(&h, c, e, "profile-a1.example", 1);
    CHECK_MSG(c, strstr(msg, BAD_PROFILE), "the error does not name the profile: %s", msg);
    etest_drive(&h, e, etest_until_idle, NULL, 2000, NULL);
    no_order_for(&h, lm, pm, im, "profile-a1.example");
    acme_engine_free(e);
    acme_client_free(c);
    itest_log("ok: A1. refused at manage: %s", msg);

    /* ---- A2: Pebble, directory not fetched yet ---------------------------- */
    c = etest_client(&h, dir);   /* same account, nothing fetched */
    e = etest_engine(c, &h, 0, 3600, 0);
    lm = h.line_count, pm = h.pub_count, im = h.install_count;
    msg = refuse_unknown(&h, c, e, "profile-a2.example", 0);
    CHECK_MSG(c, strstr(msg, BAD_PROFILE), "the error does not name the profile: %s", msg);
    no_order_for(&h, lm, pm, im, "profile-a2.example");
    acme_engine_free(e);
    acme_client_free(c);
    free(dir);
    itest_log("ok: A2. refused before any order: %s", msg);

    /* ---- B: the stand-in lists profiles ----------------------------------- */
    etest_standin s;
    etest_standin_start(&s, argv[1], argv[2],
                        "{\"profiles\": {\"classic\": \"the usual\", "
                        "\"shortlived\": \"a few days\"}}");
    dir = itest_fresh_dir("profile-standin");
    c = etest_client_at(&h, dir, s.directory_url, s.ca_file);
    itest_register(c, NULL);
    e = etest_engine(c, &h, 0, 3600, 0);

    /* B1 + B2: both at once. */
    const char *b1[] = {"profile-b1.example"}, *b2[] = {"profile-b2.example"};
    char *want_profile = listed_profile(&s);
    itest_log("B1 asks for profile %s", want_profile);
    CHECK_OK(c, etest_manage(e, b1, 1, http, 1, want_profile));
    CHECK_OK(c, etest_manage(e, b2, 1, http, 1, NULL));
    size_t want = h.install_count + 2;
    if (!etest_drive(&h, e, etest_until_installs, &want, 90000, NULL)) {
        etest_dump_log(&h, 60);
        etest_dump_engine(e);
        CHECK_MSG(c, 0, "B: not both installed within 90 s");
    }
    etest_check_installed(&h, b1[0], b1, 1);
    etest_check_installed(&h, b2[0], b2, 1);
    json_t *last;
    size_t n = standin_orders_for(&s, b1[0], &last);
    CHECK_MSG(c, n == 1, "%zu newOrders for %s", n, b1[0]);
    const char *prof = json_string_value(json_object_get(last, "profile"));
    CHECK_MSG(c, itest_streq(prof, want_profile), "the newOrder for %s carried profile %s",
              b1[0], prof ? prof : "(none)");
    free(want_profile);
    json_decref(last);
    n = standin_orders_for(&s, b2[0], &last);
    CHECK_MSG(c, n == 1, "%zu newOrders for %s", n, b2[0]);
    CHECK_MSG(c, !json_object_get(last, "profile"), "the newOrder for %s (no profile asked) "
              "carried profile %s", b2[0], json_string_value(json_object_get(last, "profile")));
    json_decref(last);
    itest_log("ok: B1/B2. profile sent when asked, absent otherwise");

    /* B3: not in the list. */
    lm = h.line_count, pm = h.pub_count, im = h.install_count;
    msg = refuse_unknown(&h, c, e, "profile-b3.example", 1);
    CHECK_MSG(c, strstr(msg, BAD_PROFILE), "the error does not name the profile: %s", msg);
    etest_drive(&h, e, etest_until_idle, NULL, 2000, NULL);
    no_order_for(&h, lm, pm, im, "profile-b3.example");
    CHECK_MSG(c, standin_orders_for(&s, "profile-b3.example", NULL) == 0,
              "the CA received a newOrder for the unknown profile");
    itest_log("ok: B3. unlisted profile refused, no newOrder reached the CA: %s", msg);

    acme_engine_free(e);
    acme_client_free(c);
    etest_standin_stop(&s);
    itest_responders_stop(&set);
    etest_host_clear(&h);
    free(dir);
    itest_done();
    return 0;
}
