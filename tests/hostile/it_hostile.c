/* A hostile CA against libacme's real API: hostile_ca_standin.py (a
 * deliberately hostile stand-in, started here on 127.0.0.1) sends what
 * Pebble never does — authorizations for names nobody ordered, 2000 of
 * them, identifiers that are paths or shell or terminal escapes, leaf
 * certificates with names nobody asked for, absurd Retry-After values,
 * problem details with newlines. Each case runs acme_issue() with a host
 * that records every callback and asserts: the right code; no publish,
 * unpublish or install callback ever saw a name that was not ordered;
 * nothing stored; the sentence and every log line free of control
 * characters and naming what really happened.
 *
 * usage: it_hostile PYTHON3 hostile_ca_standin.py CASE */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include <acme/acme.h>
#include "internal.h"
#include "order.h"

/* ------------------------------------------------------------ failing */

static const char *case_name = "?";

static void fail(const char *file, int line, const char *expr, const acme_client *c, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 5, 6)));
static void fail(const char *file, int line, const char *expr, const acme_client *c, const char *fmt, ...)
{
    fprintf(stderr, "FAIL %s: %s:%d: %s\n", case_name, file, line, expr);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs("  ", stderr);
        vfprintf(stderr, fmt, ap);
        fputs("\n", stderr);
        va_end(ap);
    }
    if (c)
        fprintf(stderr, "  last error: %s\n", acme_client_last_error(c));
    exit(1);
}

#define CHECK(c, e) do { if (!(e)) fail(__FILE__, __LINE__, #e, (c), NULL); } while (0)
#define CHECK_MSG(c, e, ...) do { if (!(e)) fail(__FILE__, __LINE__, #e, (c), __VA_ARGS__); } while (0)
#define CHECK_CODE(c, call, want) do { int rc_ = (call); if (rc_ != (want)) \
    fail(__FILE__, __LINE__, #call, (c), "got %d (%s), want %d (%s)", rc_, acme_strerror(rc_), (want), \
         acme_strerror(want)); } while (0)

static char *sprintf_dup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sprintf_dup(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    CHECK(NULL, vasprintf(&s, fmt, ap) >= 0);
    va_end(ap);
    return s;
}

/* ------------------------------------------------------------ the stand-in */

static pid_t standin_pid;
static char *workdir;
static unsigned standin_port;

static void stop_standin(void)
{
    if (standin_pid > 0) {
        kill(standin_pid, SIGTERM);
        waitpid(standin_pid, NULL, 0);
        standin_pid = 0;
    }
}

static void start_standin(const char *python, const char *script)
{
    const char *tmp = getenv("TMPDIR");
    char *tmpl = sprintf_dup("%s/hostile-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK_MSG(NULL, mkdtemp(tmpl), "mkdtemp %s: %s", tmpl, strerror(errno));
    workdir = tmpl;
    int out[2];
    CHECK(NULL, pipe(out) == 0);
    standin_pid = fork();
    CHECK(NULL, standin_pid >= 0);
    if (standin_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execlp(python, python, script, "--workdir", workdir, "--lifetime", "60", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    atexit(stop_standin);
    char buf[128];
    size_t len = 0;
    for (;;) {
        struct pollfd p = { .fd = out[0], .events = POLLIN };
        CHECK_MSG(NULL, poll(&p, 1, 20000) == 1, "the stand-in did not start within 20 s");
        ssize_t n = read(out[0], buf + len, sizeof(buf) - 1 - len);
        CHECK_MSG(NULL, n > 0, "the stand-in exited before serving");
        len += (size_t)n;
        buf[len] = '\0';
        if (strchr(buf, '\n'))
            break;
        CHECK(NULL, len < sizeof(buf) - 1);
    }
    close(out[0]);
    CHECK_MSG(NULL, sscanf(buf, "PORT %u", &standin_port) == 1, "stand-in said: %s", buf);
}

static char *ca_file(void)
{
    return sprintf_dup("%s/ca.pem", workdir);
}

/* Requests the stand-in saw, by kind ("authz", "order", "deactivate"...). */
static int events(const char *kind)
{
    char *path = sprintf_dup("%s/events", workdir);
    FILE *f = fopen(path, "r");
    free(path);
    int n = 0;
    char line[8192];
    while (f && fgets(line, sizeof(line), f)) {
        json_t *o = json_loads(line, 0, NULL);
        if (o && strcmp(json_string_value(json_object_get(o, "kind")) ? json_string_value(json_object_get(o, "kind")) : "",
                        kind) == 0)
            n++;
        json_decref(o);
    }
    if (f)
        fclose(f);
    return n;
}

/* GET <scenario>/flip: the stand-in changes its story (resume case). */
static void flip(const char *scenario)
{
    CURL *h = curl_easy_init();
    CHECK(NULL, h);
    char *url = sprintf_dup("https://127.0.0.1:%u/%s/flip", standin_port, scenario);
    char *ca = ca_file();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fwrite);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, stderr);
    CHECK_MSG(NULL, curl_easy_perform(h) == CURLE_OK, "flip %s", url);
    curl_easy_cleanup(h);
    free(url);
    free(ca);
}

/* ------------------------------------------------------------ the recording host */

#define MAX_SEEN 64
#define MAX_LOG 4096

typedef struct rec {
    const char *const *names;   /* what was ordered */
    size_t name_count;
    int publish, unpublish, install;
    char *seen[MAX_SEEN];       /* every identifier a callback received */
    size_t seen_count;
    struct { acme_log_level level; char *msg; } log[MAX_LOG];
    size_t log_count;
    char *install_names[8];
    size_t install_name_count;
} rec;

static void saw(rec *r, const char *ident)
{
    if (r->seen_count < MAX_SEEN)
        r->seen[r->seen_count++] = strdup(ident ? ident : "(null)");
}

static int cb_publish(void *ud, const acme_challenge *ch)
{
    rec *r = ud;
    r->publish++;
    saw(r, acme_challenge_identifier(ch));
    /* What a DNS hook or module would be handed. */
    const char *dn = acme_challenge_dns_name(ch);
    if (dn)
        saw(r, strncmp(dn, "_acme-challenge.", 16) == 0 ? dn + 16 : dn);
    /* The stand-in validates whatever it is told; nothing to serve. */
    return ACME_OK;
}

static int cb_unpublish(void *ud, const acme_challenge *ch)
{
    rec *r = ud;
    r->unpublish++;
    saw(r, acme_challenge_identifier(ch));
    return ACME_OK;
}

static int cb_install(void *ud, const acme_certificate *cert)
{
    rec *r = ud;
    r->install++;
    for (size_t i = 0; i < acme_certificate_name_count(cert) && r->install_name_count < 8; i++)
        r->install_names[r->install_name_count++] = strdup(acme_certificate_name(cert, i));
    return ACME_OK;
}

static void cb_log(void *ud, acme_log_level level, const char *msg)
{
    rec *r = ud;
    if (getenv("HOSTILE_DEBUG"))
        fprintf(stderr, "  log %d: %s\n", (int)level, msg);
    if (r->log_count < MAX_LOG) {
        r->log[r->log_count].level = level;
        r->log[r->log_count++].msg = strdup(msg);
    }
}

static int has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 1;
    return 0;
}

/* Every identifier a callback saw is one we ordered (wildcards as the
 * base name, the way the challenge names them). */
static void check_seen_only_ordered(const rec *r)
{
    for (size_t i = 0; i < r->seen_count; i++) {
        int ok = 0;
        for (size_t j = 0; j < r->name_count && !ok; j++) {
            const char *n = r->names[j];
            ok = strcmp(r->seen[i], strncmp(n, "*.", 2) == 0 ? n + 2 : n) == 0;
        }
        CHECK_MSG(NULL, ok, "a callback received the identifier \"%s\", which was not ordered", r->seen[i]);
    }
}

static void check_log_clean(const rec *r)
{
    for (size_t i = 0; i < r->log_count; i++)
        CHECK_MSG(NULL, !has_control(r->log[i].msg), "log line %zu has a control character: %s", i, r->log[i].msg);
}

static int log_has(const rec *r, acme_log_level level, const char *needle)
{
    for (size_t i = 0; i < r->log_count; i++)
        if (r->log[i].level == level && (!needle || strstr(r->log[i].msg, needle)))
            return 1;
    return 0;
}

/* ------------------------------------------------------------ storage */

/* 1 if some file under dir is named name. */
static int find_named(const char *dir, const char *name)
{
    char *cmd = sprintf_dup("find '%s' -name '%s' -print -quit 2>/dev/null", dir, name);
    FILE *p = popen(cmd, "r");
    free(cmd);
    CHECK(NULL, p);
    char line[4096];
    int found = fgets(line, sizeof(line), p) != NULL;
    pclose(p);
    return found;
}

/* ------------------------------------------------------------ one client */

static const acme_challenge_type all_types[] = {
    ACME_CHALLENGE_TLS_ALPN_01, ACME_CHALLENGE_DNS_01, ACME_CHALLENGE_HTTP_01,
};

typedef struct run {
    acme_client *c;
    rec r;
    char *state;
    const char *scenario;
    acme_host_callbacks cb;
} run;

static void run_open(run *x, const char *scenario, const char *const *names, size_t n, unsigned poll_ms)
{
    memset(x, 0, sizeof(*x));
    x->scenario = scenario;
    x->r.names = names;
    x->r.name_count = n;
    x->state = sprintf_dup("%s/state-%s", workdir, scenario);
    CHECK(NULL, mkdir(x->state, 0700) == 0 || errno == EEXIST);
    char *url = sprintf_dup("https://127.0.0.1:%u/%s/dir", standin_port, scenario);
    char *ca = ca_file();
    CHECK_CODE(NULL, acme_client_new(url, &x->c), ACME_OK);
    x->cb = (acme_host_callbacks){ .size = sizeof(acme_host_callbacks), .publish = cb_publish,
                                   .unpublish = cb_unpublish, .install = cb_install, .log = cb_log };
    CHECK_CODE(x->c, acme_client_set_host(x->c, &x->cb, &x->r), ACME_OK);
    CHECK_CODE(x->c, acme_client_set_log_level(x->c, ACME_LOG_DEBUG), ACME_OK);
    CHECK_CODE(x->c, acme_client_set_ca_file(x->c, ca), ACME_OK);
    CHECK_CODE(x->c, acme_client_set_storage_dir(x->c, x->state), ACME_OK);
    CHECK_CODE(x->c, acme_client_set_poll_limit(x->c, poll_ms), ACME_OK);
    acme_account_params ap = { .size = sizeof(ap), .agree_tos = 1 };
    CHECK_CODE(x->c, acme_account_register(x->c, &ap), ACME_OK);
    free(url);
    free(ca);
}

static int run_issue(run *x)
{
    acme_issue_params p = { .size = sizeof(p), .names = x->r.names, .name_count = x->r.name_count,
                            .challenges = all_types, .challenge_count = 3 };
    return acme_issue(x->c, &p);
}

/* The checks every case shares. */
static void run_check(run *x, int want_rc, int rc, int keep_order)
{
    acme_client *c = x->c;
    const char *err = acme_client_last_error(c);
    CHECK_MSG(c, rc == want_rc, "got %d (%s), want %d (%s)", rc, acme_strerror(rc), want_rc, acme_strerror(want_rc));
    CHECK_MSG(c, !has_control(err), "the last error has a control character");
    check_log_clean(&x->r);
    check_seen_only_ordered(&x->r);
    CHECK_MSG(c, x->r.publish == x->r.unpublish, "published %d, unpublished %d", x->r.publish, x->r.unpublish);
    if (want_rc) {
        CHECK_MSG(c, x->r.install == 0, "install was called %d time(s) after a failure", x->r.install);
        CHECK_MSG(c, !find_named(x->state, "cert.json"), "a certificate was stored under %s", x->state);
        CHECK_MSG(c, find_named(x->state, "order.json") == keep_order, "order.json %s",
                  keep_order ? "was not kept" : "was left behind");
        CHECK_MSG(c, log_has(&x->r, ACME_LOG_ERROR, NULL), "no error line was logged");
    }
}

static void run_close(run *x)
{
    acme_client_free(x->c);
    for (size_t i = 0; i < x->r.seen_count; i++)
        free(x->r.seen[i]);
    for (size_t i = 0; i < x->r.log_count; i++)
        free(x->r.log[i].msg);
    for (size_t i = 0; i < x->r.install_name_count; i++)
        free(x->r.install_names[i]);
    free(x->state);
}

#define CONTAINS(c, hay, needle) \
    CHECK_MSG(c, strstr((hay), (needle)), "\"%s\" not found in \"%s\"", (needle), (hay))

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ cases */

static const char *const one[] = { "a.example" };
static const char *const two[] = { "a.example", "b.example" };

/* A correct CA gets its certificate: the binding accepts wildcards (as
 * base name + flag) and IP addresses, the SAN check a correct leaf. */
static void case_ok(void)
{
    static const char *const names[] = { "a.example", "*.w.example", "127.0.0.1" };
    run x;
    run_open(&x, "ok", names, 3, 5000);
    int rc = run_issue(&x);
    run_check(&x, ACME_OK, rc, 0);
    CHECK(x.c, x.r.publish == 3 && x.r.install == 1);
    CHECK(x.c, x.r.install_name_count == 3);
    CHECK(x.c, find_named(x.state, "cert.json"));
    CHECK(x.c, !find_named(x.state, "order.json"));
    CHECK(x.c, !log_has(&x.r, ACME_LOG_ERROR, NULL));
    run_close(&x);
}

/* Issue 12: a request the CA took and never answers, on its own open
 * connection, while the CA answers everything else. Two certificates on
 * one engine, two orders at once: the stalled newOrder is given up after
 * 8 s without a byte (STALL_MS in http_async.c) because the other order's
 * later requests were answered, and sent again; both certificates are
 * installed long before the 30 s request timeout would have let go. */
static void case_stall_neworder(void)
{
    run x;
    run_open(&x, "stall-neworder", two, 2, 20000);
    acme_engine_options eo = { .size = sizeof(eo), .max_orders = 2 };
    acme_engine *e = NULL;
    CHECK_CODE(x.c, acme_engine_new(x.c, &eo, &e), ACME_OK);
    for (size_t i = 0; i < 2; i++) {
        acme_issue_params p = { .size = sizeof(p), .names = &two[i], .name_count = 1,
                                .challenges = all_types, .challenge_count = 3 };
        CHECK_CODE(x.c, acme_engine_manage(e, &p), ACME_OK);
    }
    uint64_t t0 = ms_now();
    int rc = acme_engine_perform(e, 28000);
    uint64_t took = ms_now() - t0;
    CHECK_MSG(x.c, rc == ACME_OK, "perform: %d (%s) after %llu ms", rc, acme_strerror(rc), (unsigned long long)took);
    CHECK_MSG(x.c, x.r.install == 2, "%d installs", x.r.install);
    CHECK_MSG(x.c, events("stalled") == 1, "%d stalled newOrders", events("stalled"));
    CHECK_MSG(x.c, events("new-order") == 3, "%d newOrders (want 2 and the one sent again)", events("new-order"));
    CHECK_MSG(x.c, log_has(&x.r, ACME_LOG_WARNING, "nothing moved for"), "no warning about the stalled request");
    /* 8 s stall + 1 s back-off + the issuance: well under the 30 s the
     * request timeout would have held the order. */
    CHECK_MSG(x.c, took < 20000, "took %llu ms", (unsigned long long)took);
    check_log_clean(&x.r);
    check_seen_only_ordered(&x.r);
    fprintf(stderr, "stall-neworder: both installed in %llu ms\n", (unsigned long long)took);
    acme_engine_free(e);
    run_close(&x);
}

/* Issue 10 #1: the status in the sentence was read from freed JSON. */
static void case_stuck_processing(void)
{
    run x;
    run_open(&x, "stuck-processing", one, 1, 300);
    int rc = run_issue(&x);
    run_check(&x, ACME_E_TIMEOUT, rc, 1);
    CONTAINS(x.c, acme_client_last_error(x.c), "is still \"processing\" after the poll limit (300 ms)");
    CHECK(x.c, events("order") >= 2);
    run_close(&x);
}

/* Order answers with an absurd Retry-After: clamped to 30 days, which is
 * past the poll limit at once. The answer to finalize already carries it
 * (it is the order, RFC 8555 §7.4), so no poll at all, no sleep, the real
 * status. */
static void case_order_ra(const char *v, int clamped)
{
    char *scen = sprintf_dup("order-ra-%s", v);
    run x;
    run_open(&x, scen, one, 1, 1500);
    uint64_t t0 = ms_now();
    int rc = run_issue(&x);
    uint64_t took = ms_now() - t0;
    run_check(&x, ACME_E_TIMEOUT, rc, 1);
    const char *err = acme_client_last_error(x.c);
    CONTAINS(x.c, err, "is still \"processing\"");
    if (clamped) {
        CONTAINS(x.c, err, "asks to come back in 2592000 s");
        CHECK_MSG(x.c, took < 1000, "took %llu ms", (unsigned long long)took);
        CHECK_MSG(x.c, events("order") == 0, "%d order polls", events("order"));
    } else {
        /* A negative Retry-After is no Retry-After: the usual back-off. */
        CONTAINS(x.c, err, "after the poll limit");
        CHECK_MSG(x.c, events("order") >= 4, "%d order polls", events("order"));
    }
    run_close(&x);
    free(scen);
}

/* Issue 10 #8: Retry-After on authorization polls was read after the
 * response was freed, i.e. never honoured. */
static void case_authz_ra(const char *v, int clamped)
{
    char *scen = sprintf_dup("authz-ra-%s", v);
    run x;
    run_open(&x, scen, one, 1, 1500);
    uint64_t t0 = ms_now();
    int rc = run_issue(&x);
    uint64_t took = ms_now() - t0;
    run_check(&x, ACME_E_TIMEOUT, rc, 1);
    const char *err = acme_client_last_error(x.c);
    /* Neither the first fetch nor the deactivation in cleanup is a poll. */
    int polls = events("authz") - 1 - events("deactivate");
    if (clamped == 1) {
        CONTAINS(x.c, err, "asks to come back in 2592000 s");
        CHECK_MSG(x.c, polls == 1, "%d authorization polls", polls);
        CHECK_MSG(x.c, took < 1000, "took %llu ms", (unsigned long long)took);
    } else if (clamped == 2) {
        /* Retry-After: 1 within a 1.5 s limit: two polls a second apart. */
        CONTAINS(x.c, err, "asks to come back in 1 s");
        CHECK_MSG(x.c, polls == 2, "%d authorization polls", polls);
        CHECK_MSG(x.c, took >= 1000, "took %llu ms", (unsigned long long)took);
    } else {
        CONTAINS(x.c, err, "still validating after 1500 ms");
        CHECK_MSG(x.c, polls >= 4, "%d authorization polls", polls);
    }
    CHECK(x.c, x.r.publish == 1);
    run_close(&x);
    free(scen);
}

/* A 503 with Retry-After 4294967296: that was 0 after the cast to
 * unsigned, so the order was not kept for the retry the CA asked for. */
static void case_finalize_503(void)
{
    run x;
    run_open(&x, "finalize-503", one, 1, 2000);
    int rc = run_issue(&x);
    run_check(&x, ACME_E_PROBLEM, rc, 1);
    CONTAINS(x.c, acme_client_last_error(x.c), "finalize: the CA refused (HTTP 503)");
    run_close(&x);
}

/* Identifier binding: refused before any callback, with a sentence that
 * says what the CA sent and whose fault it is. */
static void case_refused(const char *scenario, const char *const *names, size_t n, const char *expect1,
                         const char *expect2, int want_deactivate)
{
    run x;
    run_open(&x, scenario, names, n, 2000);
    int rc = run_issue(&x);
    run_check(&x, ACME_E_PROTOCOL, rc, 0);
    const char *err = acme_client_last_error(x.c);
    CHECK_MSG(x.c, x.r.publish == 0, "publish was called %d time(s)", x.r.publish);
    CONTAINS(x.c, err, "the CA is at fault");
    char *ordered = sprintf_dup("(ordered: %s", names[0]);
    CONTAINS(x.c, err, ordered);
    free(ordered);
    if (expect1)
        CONTAINS(x.c, err, expect1);
    if (expect2)
        CONTAINS(x.c, err, expect2);
    CHECK_MSG(x.c, strlen(err) < 1024, "a %zu-byte sentence", strlen(err));
    if (want_deactivate >= 0)
        CHECK_MSG(x.c, events("deactivate") == want_deactivate, "%d deactivations, want %d", events("deactivate"),
                  want_deactivate);
    CHECK_MSG(x.c, events("chall") == 0, "a challenge was answered");
    run_close(&x);
}

/* The leaf names something we did not order, or misses a name. */
static void case_bad_leaf(const char *scenario, const char *expect)
{
    run x;
    run_open(&x, scenario, two, 2, 2000);
    int rc = run_issue(&x);
    run_check(&x, ACME_E_PROTOCOL, rc, 0);
    CONTAINS(x.c, acme_client_last_error(x.c), expect);
    CONTAINS(x.c, acme_client_last_error(x.c), "nothing was installed or stored");
    CHECK(x.c, x.r.publish == 2);
    run_close(&x);
}

/* Issue 10 #7: CA text with newlines and ESC in the sentence and the log. */
static void case_problem_detail(void)
{
    run x;
    run_open(&x, "problem-detail", one, 1, 2000);
    int rc = run_issue(&x);
    run_check(&x, ACME_E_PROBLEM, rc, 0);
    const char *err = acme_client_last_error(x.c);
    CONTAINS(x.c, err, "line one\\x0aline two \\x1b[2J\\x1b[31mred\\x7f");
    CONTAINS(x.c, err, "x\\x0a\\x1bexample");
    /* The accessors give the CA's text as sent (documented raw). */
    const acme_problem *p = acme_client_problem(x.c);
    CHECK(x.c, p && strchr(acme_problem_detail(p), '\n') && strchr(acme_problem_detail(p), 0x1b));
    CHECK(x.c, log_has(&x.r, ACME_LOG_ERROR, "line one\\x0aline two"));
    run_close(&x);
}

/* Issue 10 #12b: a refused "replaces" is recovered from: a warning, never
 * an error line. Driven through the order driver, as the engine does. */
static void case_already_replaced(void)
{
    run x;
    run_open(&x, "already-replaced", one, 1, 2000);
    acme_issue_params p = { .size = sizeof(p), .names = one, .name_count = 1, .challenges = all_types,
                            .challenge_count = 3 };
    int rc = ACME_OK;
    order_run *r = order_new(x.c, &p, &rc);
    CHECK_CODE(x.c, rc, ACME_OK);
    CHECK_CODE(x.c, order_set_replaces(r, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"), ACME_OK);
    rc = order_run_blocking(r);
    order_hand_result(r);
    order_free(r);
    run_check(&x, ACME_OK, rc, 0);
    CHECK(x.c, x.r.install == 1);
    CHECK_MSG(x.c, log_has(&x.r, ACME_LOG_WARNING, "alreadyReplaced"), "no warning names alreadyReplaced");
    for (size_t i = 0; i < x.r.log_count; i++)
        CHECK_MSG(x.c, x.r.log[i].level != ACME_LOG_ERROR, "an error line for a recovered refusal: %s",
                  x.r.log[i].msg);
    CHECK(x.c, events("new-order") == 2);
    run_close(&x);
}

/* A resumed order (order.json) is held to the same rules. */
static void case_resume_unordered(void)
{
    run x;
    run_open(&x, "resume-unordered", one, 1, 300);
    int rc = run_issue(&x);
    run_check(&x, ACME_E_TIMEOUT, rc, 1);
    int published = x.r.publish;
    flip("resume-unordered");
    rc = run_issue(&x);
    run_check(&x, ACME_E_PROTOCOL, rc, 0);
    CHECK(x.c, log_has(&x.r, ACME_LOG_INFO, "resuming the order"));
    CHECK_MSG(x.c, x.r.publish == published, "publish called on the resumed hostile order");
    CONTAINS(x.c, acme_client_last_error(x.c), "\"dns evil.example\" was not ordered");
    CHECK_MSG(x.c, events("new-order") == 1, "a new order was placed instead of resuming");
    run_close(&x);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PYTHON3 hostile_ca_standin.py CASE\n", argv[0]);
        return 2;
    }
    case_name = argv[3];
    start_standin(argv[1], argv[2]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *k = argv[3];
    static const char *const wild[] = { "*.w.example" };
    static const char *const plain_w[] = { "w.example" };
    if (!strcmp(k, "ok")) case_ok();
    else if (!strcmp(k, "stuck-processing")) case_stuck_processing();
    else if (!strcmp(k, "order-ra-big")) case_order_ra("big", 1);
    else if (!strcmp(k, "order-ra-huge")) case_order_ra("huge", 1);
    else if (!strcmp(k, "order-ra-date")) case_order_ra("date", 1);
    else if (!strcmp(k, "order-ra-neg")) case_order_ra("neg", 0);
    else if (!strcmp(k, "authz-ra-big")) case_authz_ra("big", 1);
    else if (!strcmp(k, "authz-ra-huge")) case_authz_ra("huge", 1);
    else if (!strcmp(k, "authz-ra-date")) case_authz_ra("date", 1);
    else if (!strcmp(k, "authz-ra-1")) case_authz_ra("1", 2);
    else if (!strcmp(k, "authz-ra-neg")) case_authz_ra("neg", 0);
    else if (!strcmp(k, "finalize-503")) case_finalize_503();
    else if (!strcmp(k, "unordered"))
        case_refused(k, one, 1, "the CA's identifier \"dns evil.example\" was not ordered", NULL, 1);
    else if (!strcmp(k, "dup2000"))
        case_refused(k, one, 1, "lists 2000 authorizations for 1 ordered identifier", NULL, 0);
    else if (!strcmp(k, "dup2"))
        case_refused(k, two, 2, "\"dns a.example\" is covered by another authorization", NULL, 2);
    else if (!strcmp(k, "ident-dotdot"))
        case_refused(k, one, 1, "\"dns ../../etc/passwd\"", "cannot be a DNS name or IP address", 1);
    else if (!strcmp(k, "ident-newline"))
        case_refused(k, one, 1, "\"dns a.example\\x0ab.example\"", "cannot be a DNS name", 1);
    else if (!strcmp(k, "ident-subst"))
        case_refused(k, one, 1, "\"dns $(touch pwned).example\"", "cannot be a DNS name", 1);
    else if (!strcmp(k, "ident-esc"))
        case_refused(k, one, 1, "\"dns \\x1b[31ma.example\"", "cannot be a DNS name", 1);
    else if (!strcmp(k, "ident-empty"))
        case_refused(k, one, 1, "\"dns \"", "cannot be a DNS name", 1);
    else if (!strcmp(k, "ident-long"))
        case_refused(k, one, 1, "aaaaaaaa... (4004 bytes)", "cannot be a DNS name", 1);
    else if (!strcmp(k, "ident-missing"))
        case_refused(k, one, 1, "has no identifier (type and value)", NULL, 1);
    else if (!strcmp(k, "ident-type"))
        case_refused(k, one, 1, "\"email a.example\" was not ordered", NULL, 1);
    else if (!strcmp(k, "wild-flag-missing"))
        case_refused(k, wild, 1, "\"dns w.example\" was not ordered", NULL, 1);
    else if (!strcmp(k, "wild-flag-extra"))
        case_refused(k, plain_w, 1, "\"dns w.example (wildcard)\" was not ordered", NULL, 1);
    else if (!strcmp(k, "echo-mismatch"))
        case_refused(k, two, 2, "evil.example", "do not match", 0);
    else if (!strcmp(k, "authz-switch")) {
        run x;
        run_open(&x, k, one, 1, 2000);
        int rc = run_issue(&x);
        run_check(&x, ACME_E_PROTOCOL, rc, 0);
        CHECK(x.c, x.r.publish == 1 && x.r.unpublish == 1);
        CONTAINS(x.c, acme_client_last_error(x.c), "names another identifier than it did");
        run_close(&x);
    } else if (!strcmp(k, "extra-san"))
        case_bad_leaf(k, "the certificate also names \"evil.example\", which was not ordered");
    else if (!strcmp(k, "missing-san"))
        case_bad_leaf(k, "the certificate does not name b.example");
    else if (!strcmp(k, "problem-detail")) case_problem_detail();
    else if (!strcmp(k, "already-replaced")) case_already_replaced();
    else if (!strcmp(k, "stall-neworder")) case_stall_neworder();
    else if (!strcmp(k, "resume-unordered")) case_resume_unordered();
    else {
        fprintf(stderr, "unknown case %s\n", k);
        return 2;
    }
    curl_global_cleanup();
    stop_standin();
    char *cmd = sprintf_dup("rm -rf '%s'", workdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", workdir);
    free(cmd);
    free(workdir);
    printf("PASS %s\n", case_name);
    return 0;
}
