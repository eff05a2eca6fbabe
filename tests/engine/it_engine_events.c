/* Issue 14 part 5: the host table's typed events, against real Pebble.
 *
 *  A. One issuance (http-01, served where Pebble looks): the events for
 *     the certificate come in the order lock taken < ordering < published
 *     < validated < issued < installed < renewal scheduled, each with its
 *     fields (identifier and challenge type on published/validated, the
 *     order URL on ordering, notAfter of the installed certificate on
 *     issued/installed, a renewal time inside its lifetime). The metrics
 *     of the engine then report that certificate valid with its notAfter.
 *  B. A failure: tls-alpn-01 published to a responder Pebble never
 *     reaches. The FAILED event carries the acme_code, the sentence the
 *     status shows, the problem type Pebble's validation sent and the
 *     identifier whose challenge failed; no issued or installed event
 *     follows for it.
 *  C. A new engine on the same storage: installed (the stored
 *     certificate, its notAfter) < renewal scheduled, and no order.
 *     Its attempts and last success (status and metrics) are those from
 *     before the restart, for the issued and for the failed certificate.
 *  D. acme_issue(), the blocking call, sends the same sequence as A up
 *     to installed.
 *
 * retry_min_s is an hour: nothing is retried inside the test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "etest.h"

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
static const acme_challenge_type alpn[] = {ACME_CHALLENGE_TLS_ALPN_01};

static int scheduled(etest_host *h, void *id)
{
    return etest_find_event(h, 0, ACME_EVENT_RENEWAL_SCHEDULED, id) != (size_t)-1;
}

/* A renewal-scheduled event at or after index *from. */
static int scheduled_after(etest_host *h, void *from)
{
    return etest_find_event(h, *(size_t *)from, ACME_EVENT_RENEWAL_SCHEDULED, NULL) != (size_t)-1;
}

static int failed(etest_host *h, void *id)
{
    return etest_find_event(h, 0, ACME_EVENT_FAILED, id) != (size_t)-1 && acme_engine_idle(h->engine);
}

static void dump_events(const etest_host *h)
{
    for (size_t i = 0; i < h->event_count; i++)
        itest_log("  event %zu: %s %s %s", i, acme_event_code_name(h->events[i].code),
                  h->events[i].cert_id ? h->events[i].cert_id : "-",
                  h->events[i].identifier ? h->events[i].identifier : "-");
}

/* The index of code for id, after `after`; fails the test if absent. */
static size_t must_follow(const etest_host *h, size_t after, acme_event_code code, const char *id)
{
    size_t i = etest_find_event(h, after == (size_t)-1 ? 0 : after + 1, code, id);
    if (i == (size_t)-1) {
        dump_events(h);
        CHECK_MSG(NULL, 0, "no %s event for %s after event %zd", acme_event_code_name(code), id, (ssize_t)after);
    }
    return i;
}

/* The value of metric `name` for certificate id in the exposition, or -1. */
static long long metric(const char *text, const char *name, const char *id)
{
    char *pre = itest_printf("\n%s{id=\"%s\"} ", name, id);
    const char *at = strstr(text, pre);
    long long v = at ? strtoll(at + strlen(pre), NULL, 10) : -1;
    free(pre);
    return v;
}

/* What a restart must keep of a certificate: its status' attempts and
 * last_success, and the two series of the exposition. */
typedef struct kept {
    long long attempts, last_success, m_attempts, m_last_success;
} kept;

static kept snapshot(acme_engine *e, const char *id)
{
    kept k;
    json_t *st = etest_status(e, id);
    CHECK_MSG(NULL, st != NULL, "no status entry for %s", id);
    json_t *ls = json_object_get(st, "last_success");
    k.attempts = json_is_integer(json_object_get(st, "attempts")) ? json_integer_value(json_object_get(st, "attempts"))
                                                                  : -1;
    k.last_success = json_is_integer(ls) ? json_integer_value(ls) : 0;
    json_decref(st);
    acme_buffer *m = acme_buffer_new();
    CHECK_MSG(NULL, m && acme_engine_metrics(e, m) == ACME_OK, "acme_engine_metrics failed");
    k.m_attempts = metric(acme_buffer_data(m), "acme_certificate_attempts_total", id);
    k.m_last_success = metric(acme_buffer_data(m), "acme_certificate_last_success_timestamp_seconds", id);
    acme_buffer_free(m);
    itest_log("%s: attempts %lld, last_success %lld; metrics %lld, %lld", id, k.attempts, k.last_success,
              k.m_attempts, k.m_last_success);
    return k;
}

int main(void)
{
    itest_init("it_engine_events");
    etest_watchdog(280);

    acme_responder_set set = {.size = sizeof set};
    set.http01 = etest_responder_at_pebble(ACME_RESPONDER_HTTP01);
    set.tlsalpn01 = etest_responder_elsewhere(ACME_RESPONDER_TLSALPN01);
    etest_host h;
    etest_host_init(&h, &set);
    h.quiet = 1;
    char *dir = itest_fresh_dir("events");
    acme_client *c = etest_client(&h, dir);
    itest_register(c, NULL);
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);

    /* ---- A ---------------------------------------------------------------- */
    const char *a = "events-a.example";
    CHECK_OK(c, etest_manage1(e, a, http, 1));
    if (!etest_drive(&h, e, scheduled, (void *)a, 90000, NULL)) {
        etest_dump_log(&h, 60);
        dump_events(&h);
        CHECK_MSG(NULL, 0, "A: no renewal-scheduled event for %s within 90 s", a);
    }
    const itest_cert *ic = etest_installed(&h, a);
    CHECK_MSG(NULL, ic != NULL, "A: %s not installed", a);
    size_t lock = must_follow(&h, (size_t)-1, ACME_EVENT_LOCK_TAKEN, a);
    size_t ord = must_follow(&h, lock, ACME_EVENT_ORDERING, a);
    size_t pub = must_follow(&h, ord, ACME_EVENT_PUBLISHED, a);
    size_t val = must_follow(&h, pub, ACME_EVENT_VALIDATED, a);
    size_t iss = must_follow(&h, val, ACME_EVENT_ISSUED, a);
    size_t ins = must_follow(&h, iss, ACME_EVENT_INSTALLED, a);
    size_t sch = must_follow(&h, ins, ACME_EVENT_RENEWAL_SCHEDULED, a);
    CHECK_MSG(NULL, etest_find_event(&h, 0, ACME_EVENT_FAILED, a) == (size_t)-1, "A: a failed event");
    const etest_event *ev = h.events;
    CHECK_MSG(NULL, itest_streq(ev[pub].identifier, a) && ev[pub].challenge == ACME_CHALLENGE_HTTP_01,
              "A: published names %s / %s", ev[pub].identifier ? ev[pub].identifier : "(null)",
              acme_challenge_type_name(ev[pub].challenge));
    CHECK_MSG(NULL, itest_streq(ev[val].identifier, a) && ev[val].challenge == ACME_CHALLENGE_HTTP_01,
              "A: validated names %s", ev[val].identifier ? ev[val].identifier : "(null)");
    CHECK_MSG(NULL, ev[iss].not_after == ic->not_after && ev[ins].not_after == ic->not_after,
              "A: notAfter %lld / %lld, the installed certificate says %lld", (long long)ev[iss].not_after,
              (long long)ev[ins].not_after, (long long)ic->not_after);
    CHECK_MSG(NULL, ev[sch].renew_at > ic->not_before && ev[sch].renew_at < ic->not_after,
              "A: renewal at %lld, outside [%lld, %lld]", (long long)ev[sch].renew_at,
              (long long)ic->not_before, (long long)ic->not_after);
    for (size_t i = lock; i <= sch; i++)
        CHECK_MSG(NULL, h.events[i].time > 0 && (i == lock || h.events[i].time >= h.events[i - 1].time),
                  "A: event %zu goes back in time", i);
    acme_cert_status st = {.size = sizeof st};
    CHECK_OK(c, acme_engine_cert_status(e, a, &st));
    CHECK_MSG(NULL, st.next_renewal == ev[sch].renew_at, "A: status says renewal at %lld, the event %lld",
              (long long)st.next_renewal, (long long)ev[sch].renew_at);
    itest_log("ok: A. lock-taken < ordering < published < validated < issued < installed < renewal-scheduled");

    acme_buffer *m = acme_buffer_new();
    CHECK_OK(c, acme_engine_metrics(e, m));
    char want[256];
    snprintf(want, sizeof want, "\nacme_certificate_not_after_timestamp_seconds{id=\"%s\"} %lld\n", a,
             (long long)ic->not_after);
    CHECK_MSG(NULL, strstr(acme_buffer_data(m), want) != NULL, "A: metrics lack%s%s", want, acme_buffer_data(m));
    snprintf(want, sizeof want, "\nacme_certificate_state{id=\"%s\",state=\"valid\"} 1\n", a);
    CHECK_MSG(NULL, strstr(acme_buffer_data(m), want) != NULL, "A: metrics lack%s", want);
    snprintf(want, sizeof want, "\nacme_certificate_last_success_timestamp_seconds{id=\"%s\"} ", a);
    CHECK_MSG(NULL, strstr(acme_buffer_data(m), want) != NULL, "A: metrics lack%s", want);
    acme_buffer_free(m);
    itest_log("ok: A. the metrics report it valid until %lld", (long long)ic->not_after);

    /* ---- B ---------------------------------------------------------------- */
    const char *b = "events-b.example";
    size_t mark = h.event_count;
    CHECK_OK(c, etest_manage1(e, b, alpn, 1));
    if (!etest_drive(&h, e, failed, (void *)b, 90000, NULL)) {
        etest_dump_log(&h, 60);
        dump_events(&h);
        CHECK_MSG(NULL, 0, "B: no failed event for %s within 90 s", b);
    }
    size_t bpub = must_follow(&h, mark - 1, ACME_EVENT_PUBLISHED, b);
    size_t bf = must_follow(&h, bpub, ACME_EVENT_FAILED, b);
    const etest_event *f = &h.events[bf];
    itest_log("B: failed: %s (%s): %s", acme_strerror(f->result), f->problem_type ? f->problem_type : "(none)",
              f->message ? f->message : "(none)");
    CHECK_MSG(NULL, f->result == ACME_E_CHALLENGE_FAILED, "B: result %s", acme_strerror(f->result));
    /* Pebble 2.4's validator cannot connect to the TLS port; it reports
     * that as an "unauthorized" problem whose detail says so. */
    CHECK_MSG(NULL, itest_streq(f->problem_type, "urn:ietf:params:acme:error:unauthorized"),
              "B: problem type %s", f->problem_type ? f->problem_type : "(none)");
    CHECK_MSG(NULL, f->message && strstr(f->message, "Failed to connect"), "B: the sentence lacks the CA's detail");
    CHECK_MSG(NULL, itest_streq(f->identifier, b), "B: the failed event names %s, not %s",
              f->identifier ? f->identifier : "(null)", b);
    CHECK_MSG(NULL, f->message && itest_streq(f->message, etest_last_error(e, b)),
              "B: the event's sentence differs from the status' last_error");
    CHECK_MSG(NULL, etest_find_event(&h, mark, ACME_EVENT_VALIDATED, b) == (size_t)-1 &&
                    etest_find_event(&h, mark, ACME_EVENT_ISSUED, b) == (size_t)-1 &&
                    etest_find_event(&h, mark, ACME_EVENT_INSTALLED, b) == (size_t)-1,
              "B: validated/issued/installed after a failed challenge");
    m = acme_buffer_new();
    CHECK_OK(c, acme_engine_metrics(e, m));
    snprintf(want, sizeof want, "\nacme_certificate_consecutive_failures{id=\"%s\"} 1\n", b);
    CHECK_MSG(NULL, strstr(acme_buffer_data(m), want) != NULL, "B: metrics lack%s%s", want, acme_buffer_data(m));
    snprintf(want, sizeof want, "\nacme_certificate_state{id=\"%s\",state=\"waiting\"} 1\n", b);
    CHECK_MSG(NULL, strstr(acme_buffer_data(m), want) != NULL, "B: metrics lack%s", want);
    acme_buffer_free(m);
    itest_log("ok: B. failed with %s", f->problem_type);

    kept ka = snapshot(e, a), kb = snapshot(e, b);
    CHECK_MSG(NULL, ka.attempts == 1 && ka.last_success > 0 && ka.m_attempts == 1 &&
              ka.m_last_success == ka.last_success, "A: attempts/last_success before the restart are wrong");
    CHECK_MSG(NULL, kb.attempts == 1 && kb.last_success == 0 && kb.m_attempts == 1 && kb.m_last_success == -1,
              "B: attempts/last_success before the restart are wrong");
    acme_engine_free(e);
    acme_client_free(c);

    /* ---- C: a restart hands the stored certificate over ------------------- */
    mark = h.event_count;
    size_t installs = h.install_count;
    c = etest_client(&h, dir);
    e = etest_engine(c, &h, 0, 3600, 0);
    CHECK_OK(c, etest_manage1(e, a, http, 1));
    if (!etest_drive(&h, e, scheduled_after, &mark, 30000, NULL)) {
        dump_events(&h);
        CHECK_MSG(NULL, 0, "C: no renewal-scheduled event for %s after the restart", a);
    }
    size_t cins = must_follow(&h, mark - 1, ACME_EVENT_INSTALLED, a);
    must_follow(&h, cins, ACME_EVENT_RENEWAL_SCHEDULED, a);
    CHECK_MSG(NULL, h.events[cins].not_after == ic->not_after, "C: installed notAfter %lld, stored %lld",
              (long long)h.events[cins].not_after, (long long)ic->not_after);
    CHECK_MSG(NULL, etest_find_event(&h, mark, ACME_EVENT_ORDERING, a) == (size_t)-1 &&
                    etest_find_event(&h, mark, ACME_EVENT_ISSUED, a) == (size_t)-1,
              "C: the stored certificate was ordered again");
    CHECK_MSG(NULL, h.install_count == installs + 1, "C: %zu installs at start", h.install_count - installs);
    itest_log("ok: C. after a restart: installed (the stored one) < renewal-scheduled, nothing ordered");
    /* The failed one is held back (stored back-off, retry_min_s an hour):
     * managing it orders nothing, so its numbers can only come from storage. */
    CHECK_OK(c, etest_manage1(e, b, alpn, 1));
    etest_drive(&h, e, etest_until_idle, NULL, 3000, NULL);
    CHECK_MSG(NULL, etest_find_event(&h, mark, ACME_EVENT_ORDERING, b) == (size_t)-1, "C: %s ordered again", b);
    kept ra = snapshot(e, a), rb = snapshot(e, b);
    CHECK_MSG(NULL, !memcmp(&ra, &ka, sizeof ra), "C: %s after the restart: attempts %lld last_success %lld "
              "(metrics %lld, %lld); before: %lld %lld", a, ra.attempts, ra.last_success, ra.m_attempts,
              ra.m_last_success, ka.attempts, ka.last_success);
    CHECK_MSG(NULL, !memcmp(&rb, &kb, sizeof rb), "C: %s after the restart: attempts %lld last_success %lld "
              "(metrics %lld, %lld); before: %lld %lld", b, rb.attempts, rb.last_success, rb.m_attempts,
              rb.m_last_success, kb.attempts, kb.last_success);
    itest_log("ok: C. attempts and last success kept across the restart (status and metrics)");
    acme_engine_free(e);

    /* ---- D: acme_issue, the blocking call, sends the same events ----------- */
    const char *d = "events-d.example";
    mark = h.event_count;
    const char *dn[] = {d};
    acme_issue_params ip = {.size = sizeof ip, .names = dn, .name_count = 1, .challenges = http, .challenge_count = 1};
    CHECK_OK(c, acme_issue(c, &ip));
    size_t dl = must_follow(&h, mark - 1, ACME_EVENT_LOCK_TAKEN, d);
    size_t dord = must_follow(&h, dl, ACME_EVENT_ORDERING, d);
    size_t dpub = must_follow(&h, dord, ACME_EVENT_PUBLISHED, d);
    size_t dval = must_follow(&h, dpub, ACME_EVENT_VALIDATED, d);
    size_t diss = must_follow(&h, dval, ACME_EVENT_ISSUED, d);
    must_follow(&h, diss, ACME_EVENT_INSTALLED, d);
    itest_log("ok: D. acme_issue: lock-taken < ordering < published < validated < issued < installed");
    acme_client_free(c);
    acme_responder_free(set.http01);
    acme_responder_free(set.tlsalpn01);
    etest_host_clear(&h);
    free(dir);
    itest_done();
    return 0;
}
