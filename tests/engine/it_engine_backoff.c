/* Issue 14, part 4: failing well, against the harness's real Pebble
 * (started with --validity 120: certificates live two minutes, long
 * enough for part C's certificate to outlive parts A and B).
 *
 *  A. The retry schedule survives a restart. Validation fails (http-01
 *     published to a responder Pebble never reaches) with retry_min_s 2:
 *     the engine waits 2 s, then 20 s (Let's Encrypt's 1/10/100 min, then
 *     daily schedule, scaled), and keeps it in storage per set of names
 *     (<ca>/backoff/<hash>.json: failures, until). A new client and engine
 *     on the same storage (a restart) with a working responder places no
 *     order before the stored time, shows the stored error, then issues
 *     once it has passed, and the record is gone.
 *  B. A short-lived certificate (120 s) is planned for renewal at half its
 *     life (minus at most the 5 % jitter), not at a third left, and is
 *     really renewed then.
 *  C. The blocking calls keep the same schedule (they are the engine run
 *     to completion). A certificate issued with acme_issue() at the start
 *     is due by the end of B; acme_renew(force) fails (validation cannot
 *     work) and stores the back-off; acme_renew without force then places
 *     no order and says until when, also from a new client on the same
 *     storage (a restart), and so does an engine. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "etest.h"

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};

static json_int_t status_int(acme_engine *e, const char *id, const char *key)
{
    json_t *st = etest_status(e, id);
    json_int_t v = json_integer_value(json_object_get(st, key));
    json_decref(st);
    return v;
}

static int never(etest_host *h, void *arg)
{
    (void)h;
    (void)arg;
    return 0;
}

typedef struct want_failures {
    const char *id;
    json_int_t n;
} want_failures;

static int until_failures(etest_host *h, void *arg)
{
    want_failures *w = arg;
    return status_int(h->engine, w->id, "failures") >= w->n && acme_engine_idle(h->engine);
}

/* The one back-off record under dir (NULL when none). */
static json_t *record(const char *dir)
{
    char pat[4096];
    snprintf(pat, sizeof pat, "%s/*/backoff/*.json", dir);
    glob_t g;
    json_t *o = NULL;
    if (glob(pat, 0, NULL, &g) == 0) {
        CHECK_MSG(NULL, g.gl_pathc == 1, "%zu back-off records for one set of names", (size_t)g.gl_pathc);
        o = json_load_file(g.gl_pathv[0], 0, NULL);
        CHECK_MSG(NULL, o != NULL, "unreadable back-off record %s", g.gl_pathv[0]);
    }
    globfree(&g);
    return o;
}

static void check_record(const char *dir, json_int_t failures, double wait_s)
{
    json_t *r = record(dir);
    CHECK_MSG(NULL, r != NULL, "no back-off record after %d failure(s)", (int)failures);
    json_int_t f = json_integer_value(json_object_get(r, "failures"));
    double until = (double)json_integer_value(json_object_get(r, "until"));
    double now = etest_wall();
    itest_log("record: failures %d, until now%+.1f s, error: %s", (int)f, until - now,
              json_string_value(json_object_get(r, "error")));
    CHECK_MSG(NULL, f == failures, "record says %d failures, want %d", (int)f, (int)failures);
    /* Written at the failure, a moment ago; whole seconds. */
    CHECK_MSG(NULL, until - now <= wait_s + 1.5 && until - now >= wait_s - 4,
              "record's until is now%+.1f s, want about +%.0f s", until - now, wait_s);
    CHECK_MSG(NULL, json_string_value(json_object_get(r, "error")) != NULL, "record keeps no error");
    json_decref(r);
}

static void part_a(etest_host *h)
{
    const char *name = "backoff-a.example";
    char *dir = itest_fresh_dir("backoff-a");
    acme_responder_set bad = {.size = sizeof bad};
    bad.http01 = etest_responder_elsewhere(ACME_RESPONDER_HTTP01);
    h->responders = &bad;
    acme_client *c = etest_client(h, dir);
    itest_register(c, NULL);
    acme_engine_options o = {.size = sizeof o, .retry_min_s = 2, .retry_max_s = 600, .jitter_percent = 1};
    acme_engine *e = etest_engine_with(c, h, &o);
    CHECK_OK(c, etest_manage1(e, name, http, 1));

    want_failures w = {name, 1};
    CHECK_MSG(c, etest_drive(h, e, until_failures, &w, 60000, NULL), "no first failure within 60 s");
    double t1 = etest_now();
    check_record(dir, 1, 2);
    w.n = 2;
    CHECK_MSG(c, etest_drive(h, e, until_failures, &w, 60000, NULL), "no second failure within 60 s");
    double gap = etest_now() - t1;
    itest_log("second failure %.1f s after the first", gap);
    CHECK_MSG(c, gap >= 1.9, "retried after %.1f s, before the 2 s back-off", gap);
    check_record(dir, 2, 20);
    char first_error[2048];
    snprintf(first_error, sizeof first_error, "%s", etest_last_error(e, name));
    acme_engine_free(e);
    acme_client_free(c);
    double restart = etest_now();

    /* The restart: validation would work now. */
    acme_responder_set good = {.size = sizeof good};
    good.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    h->responders = &good;
    c = etest_client(h, dir);
    e = etest_engine_with(c, h, &o);
    size_t lines = h->line_count, inst = h->install_count;
    CHECK_OK(c, etest_manage1(e, name, http, 1));
    etest_drive(h, e, never, NULL, 4000, NULL);
    char **urls;
    size_t n = etest_created_orders(h, lines, &urls);
    etest_free_strings(urls, n);
    CHECK_MSG(c, n == 0 && h->install_count == inst, "the restarted engine ordered at once (%zu orders) "
              "although the stored back-off has ~16 s to go", n);
    CHECK_MSG(c, status_int(e, name, "failures") == 2, "restarted engine shows %d failures, want the stored 2",
              (int)status_int(e, name, "failures"));
    CHECK_MSG(c, *etest_last_error(e, name), "restarted engine shows no error while backing off");
    itest_log("restart: no order, last_error kept: %s", etest_last_error(e, name));
    size_t want = inst + 1;
    CHECK_MSG(c, etest_drive(h, e, etest_until_installs, &want, 60000, NULL), "not issued after the back-off");
    double issued = etest_now() - restart;
    itest_log("issued %.1f s after the restart (back-off 20 s from the second failure)", issued);
    CHECK_MSG(c, issued >= 14, "issued %.1f s after the restart: the stored back-off was not kept", issued);
    etest_check_installed(h, name, &name, 1);
    json_t *r = record(dir);
    CHECK_MSG(c, r == NULL, "the back-off record is still there after the success");
    CHECK_MSG(c, status_int(e, name, "failures") == 0, "failures not reset");
    acme_engine_free(e);
    acme_client_free(c);
    acme_responder_free(bad.http01);
    acme_responder_free(good.http01);
    free(dir);
    (void)first_error;
    itest_log("ok: A. 2 s then 20 s, kept across a restart, cleared by the success");
}

static void part_b(etest_host *h)
{
    const char *name = "shortlived-b.example";
    char *dir = itest_fresh_dir("backoff-b");
    acme_responder_set good = {.size = sizeof good};
    good.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    h->responders = &good;
    acme_client *c = etest_client(h, dir);
    itest_register(c, NULL);
    acme_engine_options o = {.size = sizeof o, .retry_min_s = 2};
    acme_engine *e = etest_engine_with(c, h, &o);
    CHECK_OK(c, etest_manage1(e, name, http, 1));
    size_t want = h->install_count + 1;
    CHECK_MSG(c, etest_drive(h, e, etest_until_installs, &want, 60000, NULL), "not issued within 60 s");
    etest_drive(h, e, etest_until_idle, NULL, 2000, NULL);
    const itest_cert *ic = etest_installed(h, name);
    int64_t nb = ic->not_before, na = ic->not_after;
    json_int_t next = status_int(e, name, "next_renewal");
    int64_t life = na - nb;
    itest_log("life %lld s, renewal planned at not_before%+lld s", (long long)life, (long long)(next - nb));
    CHECK_MSG(c, life >= 110 && life <= 130, "Pebble issued a %lld s certificate, want 120 (--validity)",
              (long long)life);
    /* Half the life; the jitter takes at most 5 % of the life, half of it. */
    /* Whole seconds: Pebble's notAfter is inclusive (a 119 s span), so half may round up. */
    CHECK_MSG(c, next <= nb + life / 2 + 1 && next >= nb + life / 2 - life * 5 / 200 - 1,
              "renewal planned at not_before%+lld s, want about %lld (half the life)", (long long)(next - nb),
              (long long)(life / 2));
    double wall_first = etest_wall();
    want = h->install_count + 1;
    CHECK_MSG(c, etest_drive(h, e, etest_until_installs, &want, 120000, NULL), "not renewed within 120 s");
    double at = etest_wall();
    itest_log("renewed at not_before%+.0f s (%.0f s after the first install)", at - (double)nb, at - wall_first);
    CHECK_MSG(c, at >= (double)next - 1 && at < (double)nb + (double)life * 2 / 3,
              "renewed at not_before%+.0f s: not at half the life", at - (double)nb);
    acme_engine_free(e);
    acme_client_free(c);
    acme_responder_free(good.http01);
    free(dir);
    itest_log("ok: B. a 120 s certificate renewed at half its life");
}

/* C, first half: issued at the start so that it is due after B. */
static char *part_c_issue(etest_host *h, acme_responder_set *good, int64_t *nb, int64_t *na)
{
    const char *name = "blocking-c.example";
    char *dir = itest_fresh_dir("backoff-c");
    h->responders = good;
    acme_client *c = etest_client(h, dir);
    itest_register(c, NULL);
    acme_issue_params ip = {.size = sizeof ip, .names = &name, .name_count = 1, .challenges = http,
                            .challenge_count = 1};
    CHECK_OK(c, acme_issue(c, &ip));
    const itest_cert *ic = etest_installed(h, name);
    CHECK_MSG(c, ic != NULL, "acme_issue stored nothing the host saw installed");
    *nb = ic->not_before;
    *na = ic->not_after;
    acme_client_free(c);
    return dir;
}

static void part_c(etest_host *h, char *dir, int64_t nb, int64_t na)
{
    const char *name = "blocking-c.example";
    /* Due by either rule (half the life; ARI's window, if any, is earlier). */
    double due = (double)nb + (double)(na - nb) * 0.7;
    while (etest_wall() < due) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    acme_responder_set bad = {.size = sizeof bad};
    bad.http01 = etest_responder_elsewhere(ACME_RESPONDER_HTTP01);
    h->responders = &bad;
    acme_client *c = etest_client(h, dir);
    int renewed = -1;
    int rc = ACME_OK;
    /* Pebble may hand back the authorization the first order validated
     * (then the order needs no validation and succeeds): order again,
     * a fresh authorization cannot be validated. */
    for (int i = 0; i < 3 && rc == ACME_OK; i++) {
        renewed = -1;
        rc = acme_renew(c, name, 1, &renewed);
        itest_log("C: forced renewal with a responder Pebble cannot reach: rc %d %s", rc, acme_client_last_error(c));
    }
    CHECK_MSG(c, rc != ACME_OK && renewed == 0, "the forced renewal succeeded (rc %d) although validation "
              "cannot work", rc);
    /* The blocking calls run with the default options: 60 s after one failure. */
    check_record(dir, 1, 60);

    size_t lines = h->line_count;
    renewed = -1;
    rc = acme_renew(c, name, 0, &renewed);
    const char *why = acme_client_last_error(c);
    itest_log("C: renewal without force: rc %d: %s", rc, why);
    char **urls;
    size_t n = etest_created_orders(h, lines, &urls);
    etest_free_strings(urls, n);
    CHECK_MSG(c, rc == ACME_E_STATE && renewed == 0 && n == 0, "acme_renew without force during the back-off: "
              "rc %d, renewed %d, %zu orders (want ACME_E_STATE, none)", rc, renewed, n);
    CHECK_MSG(c, why && strstr(why, "no order before") && strstr(why, "force"), "the refusal does not say until "
              "when or how to try now: %s", why ? why : "(none)");
    acme_client_free(c);

    /* The restart: a new client on the same storage, a working responder. */
    acme_responder_set good = {.size = sizeof good};
    good.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    h->responders = &good;
    c = etest_client(h, dir);
    lines = h->line_count;
    rc = acme_renew(c, name, 0, &renewed);
    n = etest_created_orders(h, lines, &urls);
    etest_free_strings(urls, n);
    CHECK_MSG(c, rc == ACME_E_STATE && n == 0, "after a restart acme_renew without force ordered (rc %d, %zu "
              "orders): the stored back-off was lost", rc, n);
    acme_engine_options o = {.size = sizeof o};
    acme_engine *e = etest_engine_with(c, h, &o);
    CHECK_OK(c, etest_manage1(e, name, http, 1));
    etest_drive(h, e, never, NULL, 3000, NULL);
    n = etest_created_orders(h, lines, &urls);
    etest_free_strings(urls, n);
    CHECK_MSG(c, n == 0, "an engine on the same storage ordered during the blocking calls' back-off");
    CHECK_MSG(c, status_int(e, name, "failures") == 1, "the engine shows %d failures, want the stored 1",
              (int)status_int(e, name, "failures"));
    /* The administrator's forced renewal ignores it and clears it. */
    acme_engine_free(e);
    rc = acme_renew(c, name, 1, &renewed);
    CHECK_OK(c, rc);
    CHECK_MSG(c, renewed == 1 && record(dir) == NULL, "the forced renewal did not renew (%d) or left the record",
              renewed);
    acme_client_free(c);
    acme_responder_free(bad.http01);
    acme_responder_free(good.http01);
    free(dir);
    itest_log("ok: C. acme_renew keeps the schedule, across a restart; force ignores and clears it");
}

int main(void)
{
    itest_init("it_engine_backoff");
    etest_watchdog(300);
    etest_host h;
    etest_host_init(&h, NULL);
    acme_responder_set good = {.size = sizeof good};
    good.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    int64_t c_nb, c_na;
    char *c_dir = part_c_issue(&h, &good, &c_nb, &c_na);
    /* One responder on Pebble's port at a time: each part binds its own. */
    acme_responder_free(good.http01);
    part_a(&h);
    part_b(&h);
    part_c(&h, c_dir, c_nb, c_na);
    etest_host_clear(&h);
    itest_done();
    return 0;
}
