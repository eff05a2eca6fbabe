/* Issue 12: the engine's timer queue, against real Pebble.
 *
 * 12 certificates, at most 3 orders at once, and max_age_s = 8, so every
 * certificate comes due again 8 s after its notBefore (Pebble 2.4 has no
 * ARI; its certificates live for years, so the age cap is the renewal
 * point). The test drives the engine itself and checks:
 *  A. first issuance: all 12 installed; never more than 3 orders at once
 *     (certificates parked for a slot are granted it in turn);
 *  B. renewals start in the order of their renewal points (the queue pops
 *     the earliest first), and none is installed before its point;
 *  C. a restart mid-way (the engine freed while renewals are in flight, a
 *     new client and engine on the same storage): every stored certificate
 *     is installed at start, and each one's next renewal again waits for
 *     its own point. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "etest.h"

#define COUNT 12
#define MAX_ORDERS 3
#define MAX_AGE 8

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};

/* Wall time of each install, indexed like h->installs. */
static double install_wall[1024];
static size_t install_seen;

static void note_installs(etest_host *h)
{
    while (install_seen < h->install_count && install_seen < 1024)
        install_wall[install_seen++] = etest_wall();
}

/* Most orders ever in flight, from the "ordering" / "issued" / "failed"
 * log lines in [from, to). */
static int peak_orders(const etest_host *h, size_t from)
{
    int now = 0, peak = 0;
    for (size_t i = from; i < h->line_count; i++) {
        const char *l = h->lines[i];
        if (strncmp(l, "engine: ordering ", 17) == 0)
            now++;
        else if (strncmp(l, "engine: ", 8) == 0 && (strstr(l, " issued in ") || strstr(l, " failed (")))
            now--;
        if (now > peak)
            peak = now;
    }
    return peak;
}

struct until_renewals {
    size_t installs;
};

static int until_installs_noted(etest_host *h, void *arg)
{
    note_installs(h);
    return h->install_count >= ((struct until_renewals *)arg)->installs;
}

/* Every certificate in names installed at least once from index `from`. */
struct until_each {
    size_t from;
    char **names;
};

static int until_each_renewed(etest_host *h, void *arg)
{
    struct until_each *u = arg;
    note_installs(h);
    for (int k = 0; k < COUNT; k++) {
        int seen = 0;
        for (size_t i = u->from; i < h->install_count && !seen; i++)
            seen = strcmp(h->installs[i].id, u->names[k]) == 0;
        if (!seen)
            return 0;
    }
    return 1;
}

static acme_engine *engine_with_age(acme_client *c, etest_host *h)
{
    acme_engine_options o = {.size = sizeof o, .max_orders = MAX_ORDERS, .retry_min_s = 3600, .max_age_s = MAX_AGE};
    return etest_engine_with(c, h, &o);
}

/* The index in `names` of the certificate an "engine: ordering <id>" line
 * names, or -1. */
static int ordered_index(const char *line, char *const *names)
{
    if (strncmp(line, "engine: ordering ", 17) != 0)
        return -1;
    for (int i = 0; i < COUNT; i++) {
        size_t n = strlen(names[i]);
        if (strncmp(line + 17, names[i], n) == 0 && line[17 + n] == ' ')
            return i;
    }
    return -1;
}

int main(void)
{
    itest_init("it_engine_sched");
    etest_watchdog(280);

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_host h;
    etest_host_init(&h, &set);
    h.quiet = 1;
    char *dir = itest_fresh_dir("sched");
    acme_client *c = etest_client(&h, dir);
    itest_register(c, NULL);
    acme_engine *e = engine_with_age(c, &h);

    char *names[COUNT];
    for (int i = 0; i < COUNT; i++) {
        names[i] = itest_printf("sched%02d.example", i);
        CHECK_OK(c, etest_manage1(e, names[i], http, 1));
    }

    /* ---- A ---------------------------------------------------------------- */
    struct until_renewals u = {COUNT};
    if (!etest_drive(&h, e, until_installs_noted, &u, 120000, NULL)) {
        etest_dump_log(&h, 60);
        CHECK_MSG(NULL, 0, "A: %zu of %d installed", h.install_count, COUNT);
    }
    int64_t first_nb[COUNT];
    for (int i = 0; i < COUNT; i++) {
        const itest_cert *ic = etest_installed(&h, names[i]);
        CHECK_MSG(NULL, ic != NULL, "A: %s not installed", names[i]);
        first_nb[i] = ic->not_before;
        const char *one[] = {names[i]};
        etest_check_installed(&h, names[i], one, 1);
    }
    int peak = peak_orders(&h, 0);
    CHECK_MSG(NULL, peak >= 2 && peak <= MAX_ORDERS, "A: %d orders at once (want 2..%d)", peak, MAX_ORDERS);
    itest_log("ok: A. %d installed, at most %d orders at once", COUNT, peak);

    /* The per-certificate query and the paged status agree with what was
     * installed. */
    for (int i = 0; i < COUNT; i++) {
        acme_cert_status st = {.size = sizeof st};
        CHECK_OK(c, acme_engine_cert_status(e, names[i], &st));
        CHECK_MSG(NULL, st.state == ACME_CERT_STATE_VALID, "%s: state %d", names[i], (int)st.state);
        CHECK_MSG(NULL, st.not_after == etest_installed(&h, names[i])->not_after, "%s: not_after %lld",
                  names[i], (long long)st.not_after);
        CHECK_MSG(NULL, st.attempts == 1 && st.failures == 0 && st.last_code == ACME_OK && !st.last_error,
                  "%s: attempts %u failures %u code %d", names[i], st.attempts, st.failures, st.last_code);
    }
    acme_cert_status small = {.size = sizeof(small) - 1};
    CHECK_MSG(NULL, acme_engine_cert_status(e, names[0], &small) == ACME_E_INVALID_ARG, "short size accepted");
    acme_cert_status none = {.size = sizeof none};
    CHECK_MSG(NULL, acme_engine_cert_status(e, "never.example", &none) == ACME_E_NOT_FOUND,
              "an id never managed was found");
    int seen[COUNT] = {0};
    size_t total = 0, listed = 0;
    for (size_t off = 0; off < COUNT + 5; off += 5) {
        json_error_t jerr;
        json_t *page = json_loads(acme_engine_status_json_page(e, off, 5, &total), 0, &jerr);
        CHECK_MSG(NULL, json_is_array(page), "page at %zu is no JSON array: %s", off, jerr.text);
        CHECK_MSG(NULL, json_array_size(page) == (off >= COUNT ? 0 : off + 5 <= COUNT ? 5 : COUNT - off),
                  "page at %zu has %zu entries", off, json_array_size(page));
        size_t k;
        json_t *ent;
        json_array_foreach(page, k, ent) {
            const char *id = json_string_value(json_object_get(ent, "id"));
            for (int j = 0; j < COUNT; j++)
                if (itest_streq(id, names[j]))
                    seen[j]++;
            listed++;
        }
        json_decref(page);
    }
    CHECK_MSG(NULL, total == COUNT && listed == COUNT, "paging: total %zu, listed %zu", total, listed);
    for (int j = 0; j < COUNT; j++)
        CHECK_MSG(NULL, seen[j] == 1, "paging: %s listed %d times", names[j], seen[j]);
    itest_log("ok: A. per-certificate status and %zu entries in pages of 5", listed);

    /* ---- B ---------------------------------------------------------------- */
    size_t mark = h.line_count, inst_mark = h.install_count;
    u.installs = inst_mark + COUNT / 2;
    if (!etest_drive(&h, e, until_installs_noted, &u, 120000, NULL)) {
        etest_dump_log(&h, 60);
        CHECK_MSG(NULL, 0, "B: only %zu renewals", h.install_count - inst_mark);
    }
    /* Renewals started earliest point first: notBefore (whole seconds)
     * never goes down along the "ordering" lines. */
    int64_t last = 0;
    int started = 0;
    for (size_t i = mark; i < h.line_count; i++) {
        int k = ordered_index(h.lines[i], names);
        if (k < 0)
            continue;
        started++;
        CHECK_MSG(NULL, first_nb[k] >= last, "B: %s (notBefore %lld) started after one with notBefore %lld",
                  names[k], (long long)first_nb[k], (long long)last);
        last = first_nb[k];
    }
    CHECK_MSG(NULL, started >= COUNT / 2, "B: %d renewals started", started);
    for (size_t i = inst_mark; i < h.install_count; i++) {
        const itest_cert *ic = &h.installs[i];
        int k = -1;
        for (int j = 0; j < COUNT; j++)
            if (strcmp(ic->id, names[j]) == 0)
                k = j;
        CHECK_MSG(NULL, k >= 0, "B: unknown install %s", ic->id);
        CHECK_MSG(NULL, install_wall[i] >= (double)(first_nb[k] + MAX_AGE),
                  "B: %s renewed at %.2f, before its point %lld", ic->id, install_wall[i],
                  (long long)(first_nb[k] + MAX_AGE));
    }
    CHECK_MSG(NULL, peak_orders(&h, mark) <= MAX_ORDERS, "B: more than %d orders at once", MAX_ORDERS);
    itest_log("ok: B. %d renewals started in renewal-point order, none early", started);

    /* ---- C: restart mid-way ----------------------------------------------- */
    acme_engine_free(e);
    acme_client_free(c);
    size_t before = h.install_count;
    mark = h.line_count;
    c = etest_client(&h, dir);
    e = engine_with_age(c, &h);
    for (int i = 0; i < COUNT; i++)
        CHECK_OK(c, etest_manage1(e, names[i], http, 1));
    /* At start every stored certificate is handed to the host. */
    u.installs = before + COUNT;
    CHECK_MSG(NULL, etest_drive(&h, e, until_installs_noted, &u, 30000, NULL),
              "C: %zu stored certificates installed at start (want %d)", h.install_count - before, COUNT);
    CHECK_MSG(NULL, etest_count_lines(&h, mark, "has a valid stored certificate") == COUNT,
              "C: %zu 'valid stored certificate' lines", etest_count_lines(&h, mark, "has a valid stored certificate"));
    int64_t stored_nb[COUNT];
    for (int i = 0; i < COUNT; i++)
        stored_nb[i] = etest_installed(&h, names[i])->not_before;
    size_t restart_installs = h.install_count;
    struct until_each each = {restart_installs, names};
    if (!etest_drive(&h, e, until_each_renewed, &each, 120000, NULL)) {
        etest_dump_log(&h, 60);
        CHECK_MSG(NULL, 0, "C: %zu renewals after the restart", h.install_count - restart_installs);
    }
    int renewed[COUNT] = {0};
    for (size_t i = restart_installs; i < h.install_count; i++) {
        const itest_cert *ic = &h.installs[i];
        for (int k = 0; k < COUNT; k++) {
            if (strcmp(ic->id, names[k]) != 0 || renewed[k]++)
                continue;
            CHECK_MSG(NULL, install_wall[i] >= (double)(stored_nb[k] + MAX_AGE),
                      "C: %s renewed at %.2f, before its point %lld", ic->id, install_wall[i],
                      (long long)(stored_nb[k] + MAX_AGE));
        }
    }
    for (int k = 0; k < COUNT; k++)
        CHECK_MSG(NULL, renewed[k] >= 1, "C: %s not renewed after the restart", names[k]);
    itest_log("ok: C. restart: %d stored installed at start, each renewed at its own point", COUNT);

    etest_drive(&h, e, etest_until_idle, NULL, 20000, NULL);
    acme_engine_free(e);
    acme_client_free(c);
    for (int i = 0; i < COUNT; i++)
        free(names[i]);
    itest_responders_stop(&set);
    etest_host_clear(&h);
    free(dir);
    itest_done();
    return 0;
}
