/* Helpers for the engine tests. See etest.h. */
#include "etest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* ------------------------------------------------------------------ time */

double etest_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double etest_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static etest_host *watched_host;

static void on_alarm(int sig)
{
    (void)sig;
    /* Not async-signal-safe, but the program is about to die anyway and
     * the log tail is what tells why it hung. */
    fprintf(stderr, "FAIL: watchdog: the test did not finish in time\n");
    if (watched_host)
        etest_dump_log(watched_host, 40);
    _exit(1);
}

void etest_watchdog(unsigned seconds)
{
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

/* ------------------------------------------------------------------ growing arrays */

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(p, n * elem);
    CHECK_MSG(NULL, q != NULL, "out of memory");
    memset((char *)q + *cap * elem, 0, (n - *cap) * elem);
    *cap = n;
    return q;
}

/* The log callback may run on whatever thread the engine logs from (its
 * worker thread included), so the line store is locked. */
static pthread_mutex_t line_lock = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------------ host callbacks */

static int serve(etest_host *h, const acme_challenge *ch)
{
    if (!h->responders)
        return ACME_E_UNSUPPORTED;
    int rc = acme_responder_publish(h->responders, ch);
    if (rc == ACME_OK) {
        h->outstanding++;
        if (h->outstanding > h->peak_outstanding)
            h->peak_outstanding = h->outstanding;
    }
    return rc;
}

static int unserve(etest_host *h, const acme_challenge *ch)
{
    h->outstanding--;
    return h->responders ? acme_responder_unpublish(h->responders, ch) : ACME_OK;
}

static void add_pending(etest_host *h, int kind, const void *obj)
{
    CHECK_MSG(NULL, h->pending_count < ETEST_MAX_PENDING, "too many pending callbacks");
    etest_pending *p = &h->pending[h->pending_count++];
    p->kind = kind;
    p->object = obj;
    p->due = etest_now() + h->pending_ms / 1000.0;
    h->pending_started++;
}

static int cb_publish(void *ud, const acme_challenge *ch)
{
    etest_host *h = ud;
    h->pubs = grow(h->pubs, &h->pub_cap, h->pub_count + 1, sizeof *h->pubs);
    etest_publish *p = &h->pubs[h->pub_count++];
    p->type = acme_challenge_get_type(ch);
    p->identifier = itest_strdup(acme_challenge_identifier(ch));
    p->t = etest_now();
    itest_log("publish %s for %s%s", acme_challenge_type_name(p->type), p->identifier,
              h->pending_publish ? " (answering PENDING)" : "");
    if (h->publish_fail)
        return h->publish_fail;
    if (h->pending_publish) {
        add_pending(h, 1, ch);
        return ACME_E_PENDING;
    }
    return serve(h, ch);
}

static int cb_unpublish(void *ud, const acme_challenge *ch)
{
    etest_host *h = ud;
    h->unpublish_calls++;
    if (h->pending_unpublish) {
        add_pending(h, 2, ch);
        return ACME_E_PENDING;
    }
    return unserve(h, ch);
}

static void copy_cert(etest_host *h, const acme_certificate *cert)
{
    h->installs = grow(h->installs, &h->install_cap, h->install_count + 1, sizeof *h->installs);
    itest_cert *ic = &h->installs[h->install_count++];
    ic->chain_pem = itest_strdup(acme_certificate_chain_pem(cert));
    ic->key_pem = itest_strdup(acme_certificate_key_pem(cert));
    ic->name_count = acme_certificate_name_count(cert);
    ic->names = calloc(ic->name_count ? ic->name_count : 1, sizeof *ic->names);
    for (size_t i = 0; i < ic->name_count; i++)
        ic->names[i] = itest_strdup(acme_certificate_name(cert, i));
    ic->not_before = acme_certificate_not_before(cert);
    ic->not_after = acme_certificate_not_after(cert);
    ic->issuer = itest_strdup(acme_certificate_issuer(cert));
    ic->id = itest_strdup(acme_certificate_id(cert));
    char *serial = itest_leaf_serial(ic->chain_pem);
    itest_log("install %s serial %s", ic->id, serial);
    free(serial);
}

static int cb_install(void *ud, const acme_certificate *cert)
{
    etest_host *h = ud;
    if (h->pending_install) {
        add_pending(h, 3, cert);
        return ACME_E_PENDING;
    }
    copy_cert(h, cert);
    return ACME_OK;
}

static void cb_log(void *ud, acme_log_level level, const char *msg)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    etest_host *h = ud;
    if (!msg)
        msg = "(null)";
    if (strstr(msg, "PRIVATE KEY") || strchr(msg, '\n')) {
        fprintf(stderr, "FAIL: a log line contains key material or a newline: %s\n", msg);
        exit(1);
    }
    pthread_mutex_lock(&line_lock);
    h->lines = grow(h->lines, &h->line_cap, h->line_count + 1, sizeof *h->lines);
    h->lines[h->line_count++] = itest_strdup(msg);
    pthread_mutex_unlock(&line_lock);
    if (!h->quiet)
        itest_log("libacme %s: %s", (unsigned)level < 4 ? names[level] : "?", msg);
}

static char *dup_or_null(const char *s)
{
    return s ? itest_strdup(s) : NULL;
}

static void cb_event(void *ud, const acme_event *ev)
{
    etest_host *h = ud;
    h->events = grow(h->events, &h->event_cap, h->event_count + 1, sizeof *h->events);
    etest_event *x = &h->events[h->event_count++];
    memset(x, 0, sizeof *x);
    x->code = ev->code;
    x->cert_id = dup_or_null(ev->cert_id);
    x->identifier = dup_or_null(ev->identifier);
    x->problem_type = dup_or_null(ev->problem_type);
    x->message = dup_or_null(ev->message);
    x->directory_url = dup_or_null(ev->directory_url);
    /* Members appended in 1.2: read only what the library's size covers. */
    if (ev->size >= offsetof(acme_event, from_ca_name) + sizeof(ev->from_ca_name)) {
        x->from_directory_url = dup_or_null(ev->from_directory_url);
        x->ca_name = dup_or_null(ev->ca_name);
        x->from_ca_name = dup_or_null(ev->from_ca_name);
    }
    x->result = ev->result;
    x->challenge = ev->challenge;
    x->not_after = ev->not_after;
    x->renew_at = ev->renew_at;
    x->time = ev->time;
    if (!h->quiet)
        itest_log("event %s %s%s%s", acme_event_code_name(ev->code), ev->cert_id ? ev->cert_id : "-",
                  ev->identifier ? " " : "", ev->identifier ? ev->identifier : "");
}

size_t etest_find_event(const etest_host *h, size_t from, acme_event_code code, const char *cert_id)
{
    for (size_t i = from; i < h->event_count; i++)
        if (h->events[i].code == code && (!cert_id || (h->events[i].cert_id && strcmp(h->events[i].cert_id, cert_id) == 0)))
            return i;
    return (size_t)-1;
}

void etest_host_init(etest_host *h, acme_responder_set *responders)
{
    memset(h, 0, sizeof *h);
    h->responders = responders;
    h->pending_ms = 200;
    watched_host = h;
}

void etest_host_clear(etest_host *h)
{
    for (size_t i = 0; i < h->pub_count; i++)
        free(h->pubs[i].identifier);
    free(h->pubs);
    for (size_t i = 0; i < h->install_count; i++)
        itest_cert_clear(&h->installs[i]);
    free(h->installs);
    for (size_t i = 0; i < h->line_count; i++)
        free(h->lines[i]);
    free(h->lines);
    for (size_t i = 0; i < h->event_count; i++) {
        free(h->events[i].cert_id);
        free(h->events[i].identifier);
        free(h->events[i].problem_type);
        free(h->events[i].message);
        free(h->events[i].directory_url);
        free(h->events[i].from_directory_url);
        free(h->events[i].ca_name);
        free(h->events[i].from_ca_name);
    }
    free(h->events);
    if (watched_host == h)
        watched_host = NULL;
    memset(h, 0, sizeof *h);
}

acme_client *etest_client_at(etest_host *h, const char *state_dir, const char *directory_url,
                             const char *ca_file)
{
    acme_host_callbacks cb = {
        .size = sizeof cb,
        .publish = cb_publish,
        .unpublish = cb_unpublish,
        .install = cb_install,
        .log = cb_log,
        .event = cb_event,
    };
    return itest_client_with(&cb, h, state_dir, directory_url, ca_file);
}

acme_client *etest_client(etest_host *h, const char *state_dir)
{
    return etest_client_at(h, state_dir, itest_env("ACME_TEST_DIRECTORY"),
                           itest_env("ACME_TEST_CA_FILE"));
}

void etest_register_account(const char *state_dir)
{
    etest_host h0;
    etest_host_init(&h0, NULL);
    acme_client *c0 = etest_client(&h0, state_dir);
    itest_register(c0, NULL);
    acme_client_free(c0);
    etest_host_clear(&h0);
}

acme_engine *etest_engine_with(acme_client *c, etest_host *h, const acme_engine_options *o)
{
    acme_engine *e = NULL;
    CHECK_OK(c, acme_engine_new(c, o, &e));
    CHECK(c, e != NULL);
    h->engine = e;
    return e;
}

acme_engine *etest_engine(acme_client *c, etest_host *h, unsigned max_orders,
                          unsigned retry_min_s, unsigned recheck_s)
{
    acme_engine_options o = {
        .size = sizeof o,
        .max_orders = max_orders,
        .retry_min_s = retry_min_s,
        .recheck_s = recheck_s,
    };
    return etest_engine_with(c, h, &o);
}

int etest_manage(acme_engine *e, const char *const *names, size_t n,
                 const acme_challenge_type *prefs, size_t npref, const char *profile)
{
    acme_issue_params p = {
        .size = sizeof p,
        .names = names,
        .name_count = n,
        .challenges = prefs,
        .challenge_count = prefs ? npref : 0,
        .profile = profile,
    };
    return acme_engine_manage(e, &p);
}

int etest_manage1(acme_engine *e, const char *name, const acme_challenge_type *prefs, size_t npref)
{
    const char *names[] = {name};
    return etest_manage(e, names, 1, prefs, npref, NULL);
}

/* ------------------------------------------------------------------ driving */

/* Pending callbacks whose time has come: do what the callback would have
 * done, then tell the engine. */
static void finish_due(etest_host *h, acme_engine *e)
{
    double now = etest_now();
    for (size_t i = 0; i < h->pending_count;) {
        etest_pending p = h->pending[i];
        if (p.due > now) {
            i++;
            continue;
        }
        h->pending[i] = h->pending[--h->pending_count];
        int rc = ACME_OK;
        if (p.kind == 1)
            rc = serve(h, p.object);
        else if (p.kind == 2)
            rc = unserve(h, p.object);
        else if (h->pending_install_fail) {
            h->pending_install_fail--;
            rc = ACME_E_STORAGE;
        } else {
            copy_cert(h, p.object);
        }
        h->pending_finished++;
        int drc = acme_engine_done(e, p.object, rc);
        CHECK_MSG(NULL, drc == ACME_OK, "acme_engine_done(kind %d) returned %d (%s)", p.kind, drc,
                  acme_strerror(drc));
        /* A host sitting in poll() must be woken by done: the engine's
         * descriptors say so at once. */
        struct pollfd fds[64];
        size_t nfds = 0;
        if (acme_engine_fds(e, fds, 64, &nfds) == ACME_OK && poll(fds, nfds, 0) > 0)
            h->pending_woke++;
    }
}

static int ms_until(double t)
{
    double d = (t - etest_now()) * 1000.0;
    if (d <= 0)
        return 0;
    return d > 1e9 ? 1000000000 : (int)d + 1;
}

int etest_drive(etest_host *h, acme_engine *e, int (*done)(etest_host *, void *), void *arg,
                int timeout_ms, etest_drive_stats *st)
{
    static struct pollfd *fds;
    static size_t cap;
    double t0 = etest_now(), deadline = t0 + timeout_ms / 1000.0;
    etest_drive_stats local = {0};
    if (!st)
        st = &local;
    memset(st, 0, sizeof *st);
    if (!fds) {
        cap = 64;
        fds = calloc(cap, sizeof *fds);
    }
    for (;;) {
        finish_due(h, e);
        if (st->steps > 0 && done(h, arg)) {
            st->seconds = etest_now() - t0;
            return 1;
        }
        if (etest_now() >= deadline) {
            st->seconds = etest_now() - t0;
            return 0;
        }
        size_t n = 0;
        int rc = acme_engine_fds(e, fds, cap, &n);
        if (rc == ACME_E_INVALID_ARG && n > cap) {
            cap = n * 2;
            free(fds);
            fds = calloc(cap, sizeof *fds);
            rc = acme_engine_fds(e, fds, cap, &n);
        }
        CHECK_MSG(NULL, rc == ACME_OK, "acme_engine_fds returned %d (%s), n=%zu", rc,
                  acme_strerror(rc), n);
        int wait = acme_engine_timeout_ms(e);
        int left = ms_until(deadline);
        if (wait < 0 || wait > left)
            wait = left;
        for (size_t i = 0; i < h->pending_count; i++) {
            int d = ms_until(h->pending[i].due);
            if (d < wait)
                wait = d;
        }
        int engine_wait = acme_engine_timeout_ms(e);
        if (st->steps == 0)
            wait = 0;   /* the first step starts the work */
        int ready = poll(fds, n, wait);
        if (ready < 0 && errno != EINTR)
            CHECK_MSG(NULL, 0, "poll: %s", strerror(errno));
        if (ready == 0 && engine_wait == 0)
            st->zero_waits++;
        size_t l0 = h->line_count;
        double s0 = etest_now();
        rc = acme_engine_step(e);
        uint64_t us = (uint64_t)((etest_now() - s0) * 1e6);
        if (us > st->max_step_us) {
            st->max_step_us = us;
            st->max_step = st->steps;
            st->max_lines[0] = l0;
            st->max_lines[1] = h->line_count;
        }
        st->steps++;
        if (rc != ACME_OK && rc != ACME_E_PENDING)
            itest_log("acme_engine_step returned %d (%s)", rc, acme_strerror(rc));
    }
}

int etest_until_idle(etest_host *h, void *unused)
{
    (void)unused;
    return h->pending_count == 0 && acme_engine_idle(h->engine);
}

int etest_until_installs(etest_host *h, void *arg)
{
    return h->install_count >= *(const size_t *)arg;
}

/* ------------------------------------------------------------------ what happened */

const itest_cert *etest_installed(const etest_host *h, const char *cert_id)
{
    for (size_t i = h->install_count; i-- > 0;)
        if (itest_streq(h->installs[i].id, cert_id))
            return &h->installs[i];
    return NULL;
}

size_t etest_install_count(const etest_host *h, const char *cert_id)
{
    size_t n = 0;
    for (size_t i = 0; i < h->install_count; i++)
        n += itest_streq(h->installs[i].id, cert_id);
    return n;
}

void etest_check_installed(const etest_host *h, const char *cert_id, const char *const *names,
                           size_t n)
{
    static char *root;
    if (!root)
        root = itest_pebble_root(0);
    const itest_cert *ic = etest_installed(h, cert_id);
    CHECK_MSG(NULL, ic != NULL, "%s was never installed", cert_id);
    const char *why = "";
    CHECK_MSG(NULL, itest_chain_verifies(ic->chain_pem, root, &why),
              "%s: chain does not verify against Pebble's root: %s", cert_id, why);
    CHECK_MSG(NULL, itest_key_matches(ic->chain_pem, ic->key_pem),
              "%s: the installed key is not the leaf's key", cert_id);
    CHECK_MSG(NULL, itest_leaf_names_are(ic->chain_pem, names, n), "%s: wrong names", cert_id);
    CHECK_MSG(NULL, ic->not_after > (int64_t)time(NULL), "%s: already expired", cert_id);
}

size_t etest_publishes_for(const etest_host *h, const char *identifier, size_t *idx, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < h->pub_count; i++) {
        if (!itest_streq(h->pubs[i].identifier, identifier))
            continue;
        if (n < cap)
            idx[n] = i;
        n++;
    }
    return n;
}

size_t etest_count_lines(const etest_host *h, size_t from, const char *needle)
{
    size_t n = 0;
    pthread_mutex_lock(&line_lock);
    for (size_t i = from; i < h->line_count; i++)
        n += strstr(h->lines[i], needle) != NULL;
    pthread_mutex_unlock(&line_lock);
    return n;
}

/* The URL after "order: " in a line ending in (or containing) " created". */
static char *created_url(const char *line)
{
    const char *p = strstr(line, "order: ");
    if (!p || !strstr(line, " created"))
        return NULL;
    p += strlen("order: ");
    if (strncmp(p, "https://", 8))
        return NULL;
    size_t len = strcspn(p, " \t");
    return strndup(p, len);
}

size_t etest_created_orders(const etest_host *h, size_t from, char ***urls)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&line_lock);
    for (size_t i = from; i < h->line_count; i++) {
        char *u = created_url(h->lines[i]);
        if (!u)
            continue;
        size_t j;
        for (j = 0; j < n && strcmp(v[j], u); j++)
            ;
        if (j < n) {
            free(u);
            continue;
        }
        v = grow(v, &cap, n + 1, sizeof *v);
        v[n++] = u;
    }
    pthread_mutex_unlock(&line_lock);
    *urls = v;
    return n;
}

void etest_free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void etest_dump_log(const etest_host *h, size_t n)
{
    size_t from = h->line_count > n ? h->line_count - n : 0;
    fprintf(stderr, "---- last %zu engine log lines ----\n", h->line_count - from);
    for (size_t i = from; i < h->line_count; i++)
        fprintf(stderr, "  %s\n", h->lines[i]);
    fprintf(stderr, "---- end ----\n");
}

void etest_dump_engine(acme_engine *e)
{
    struct pollfd fds[256];
    size_t n = 0;
    int rc = acme_engine_fds(e, fds, 256, &n);
    itest_log("engine: idle=%d timeout_ms=%d fds=%zu (rc %d) longest step %llu us",
              acme_engine_idle(e), acme_engine_timeout_ms(e), n, rc,
              (unsigned long long)acme_engine_longest_step_us(e));
    for (size_t i = 0; rc == ACME_OK && i < n; i++)
        itest_log("  fd %d events %#x", fds[i].fd, (unsigned)fds[i].events);
    itest_log("status: %s", acme_engine_status_json(e));
}

json_t *etest_status(acme_engine *e, const char *id)
{
    const char *s = acme_engine_status_json(e);
    CHECK_MSG(NULL, s != NULL, "acme_engine_status_json returned NULL");
    json_error_t err;
    json_t *all = json_loads(s, 0, &err);
    CHECK_MSG(NULL, all && json_is_array(all), "status is not a JSON array (%s): %s", err.text, s);
    json_t *found = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v) {
        json_t *jid = json_object_get(v, "id");
        if (json_is_string(jid) && !strcmp(json_string_value(jid), id)) {
            found = json_incref(v);
            break;
        }
    }
    json_decref(all);
    return found;
}

static const char *status_field(acme_engine *e, const char *id, const char *field, char *buf,
                                size_t size)
{
    json_t *st = etest_status(e, id);
    json_t *f = st ? json_object_get(st, field) : NULL;
    snprintf(buf, size, "%s", json_is_string(f) ? json_string_value(f) : "");
    json_decref(st);
    return buf;
}

const char *etest_state(acme_engine *e, const char *id)
{
    static char buf[64];
    return status_field(e, id, "state", buf, sizeof buf);
}

const char *etest_last_error(acme_engine *e, const char *id)
{
    static char buf[4096];
    return status_field(e, id, "last_error", buf, sizeof buf);
}

/* ------------------------------------------------------------------ responders */

static acme_responder *responder(acme_responder_kind kind, unsigned port)
{
    acme_responder *r = NULL;
    acme_responder_options o = {.size = sizeof o, .bind_address = "127.0.0.1", .port = port};
    CHECK_OK(NULL, acme_responder_new(kind, &o, &r));
    CHECK_OK(NULL, acme_responder_start_thread(r));
    return r;
}

acme_responder *etest_responder_elsewhere(acme_responder_kind kind)
{
    return responder(kind, 0);
}

acme_responder *etest_responder_at_pebble(acme_responder_kind kind)
{
    return responder(kind, itest_env_port(kind == ACME_RESPONDER_HTTP01 ? "ACME_TEST_HTTP_PORT"
                                                                       : "ACME_TEST_TLS_PORT"));
}

/* ------------------------------------------------------------------ the stand-in */

static void write_file(const char *path, const void *data, size_t len)
{
    char *tmp = itest_printf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK_MSG(NULL, fd >= 0, "open %s: %s", tmp, strerror(errno));
    CHECK_MSG(NULL, write(fd, data, len) == (ssize_t)len, "write %s: %s", tmp, strerror(errno));
    close(fd);
    /* rename: the stand-in re-reads the file on every request and must
     * never see half of it. */
    CHECK_MSG(NULL, rename(tmp, path) == 0, "rename %s: %s", tmp, strerror(errno));
    free(tmp);
}

static void gnutls_ok(int rc, const char *what)
{
    CHECK_MSG(NULL, rc >= 0, "%s: %s", what, gnutls_strerror(rc));
}

static gnutls_x509_privkey_t new_key(void)
{
    gnutls_x509_privkey_t k;
    gnutls_ok(gnutls_x509_privkey_init(&k), "privkey_init");
    gnutls_ok(gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA,
                                           GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
              "privkey_generate");
    return k;
}

/* A certificate for key k: a CA when ca == NULL (self-signed), else a
 * server certificate for 127.0.0.1 signed by ca/ca_key. */
static gnutls_x509_crt_t new_cert(gnutls_x509_privkey_t k, const char *cn, gnutls_x509_crt_t ca,
                                  gnutls_x509_privkey_t ca_key, unsigned char serial)
{
    gnutls_x509_crt_t c;
    unsigned char sn[2] = {0x01, serial};
    unsigned char kid[64];
    size_t kid_len = sizeof kid;
    time_t now = time(NULL);
    gnutls_ok(gnutls_x509_crt_init(&c), "crt_init");
    gnutls_ok(gnutls_x509_crt_set_version(c, 3), "set_version");
    gnutls_ok(gnutls_x509_crt_set_serial(c, sn, sizeof sn), "set_serial");
    gnutls_ok(gnutls_x509_crt_set_activation_time(c, now - 3600), "activation");
    gnutls_ok(gnutls_x509_crt_set_expiration_time(c, now + 7 * 86400), "expiration");
    gnutls_ok(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)),
              "set_dn");
    gnutls_ok(gnutls_x509_crt_set_key(c, k), "set_key");
    gnutls_ok(gnutls_x509_crt_get_key_id(c, GNUTLS_KEYID_USE_SHA1, kid, &kid_len), "key_id");
    gnutls_ok(gnutls_x509_crt_set_subject_key_id(c, kid, kid_len), "ski");
    if (!ca) {
        gnutls_ok(gnutls_x509_crt_set_basic_constraints(c, 1, -1), "bc");
        gnutls_ok(gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
                  "ku");
        gnutls_ok(gnutls_x509_crt_sign2(c, c, k, GNUTLS_DIG_SHA256, 0), "self-sign");
        return c;
    }
    static const unsigned char lo[4] = {127, 0, 0, 1};
    gnutls_ok(gnutls_x509_crt_set_basic_constraints(c, 0, -1), "bc");
    gnutls_ok(gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_DIGITAL_SIGNATURE), "ku");
    gnutls_ok(gnutls_x509_crt_set_key_purpose_oid(c, GNUTLS_KP_TLS_WWW_SERVER, 0), "eku");
    gnutls_ok(gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_IPADDRESS, lo, 4,
                                                   GNUTLS_FSAN_APPEND), "san ip");
    gnutls_ok(gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                                   GNUTLS_FSAN_APPEND), "san dns");
    kid_len = sizeof kid;
    gnutls_ok(gnutls_x509_crt_get_subject_key_id(ca, kid, &kid_len, NULL), "ca ski");
    gnutls_ok(gnutls_x509_crt_set_authority_key_id(c, kid, kid_len), "aki");
    gnutls_ok(gnutls_x509_crt_sign2(c, ca, ca_key, GNUTLS_DIG_SHA256, 0), "sign");
    return c;
}

static void export_crt(gnutls_x509_crt_t c, const char *path)
{
    gnutls_datum_t d = {0};
    gnutls_ok(gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_PEM, &d), "crt export");
    write_file(path, d.data, d.size);
    gnutls_free(d.data);
}

/* The stand-in's own TLS identity: a throwaway CA (what the client
 * trusts) and a certificate for 127.0.0.1 it signed. Made here, in C, so
 * the stand-in needs nothing but python3's standard library. */
static void make_pki(etest_standin *s, char **cert, char **key)
{
    gnutls_x509_privkey_t ca_key = new_key(), srv_key = new_key();
    gnutls_x509_crt_t ca = new_cert(ca_key, "ARI stand-in test CA (not a CA)", NULL, NULL, 1);
    gnutls_x509_crt_t srv = new_cert(srv_key, "127.0.0.1", ca, ca_key, 2);
    s->ca_file = itest_printf("%s/ca.pem", s->dir);
    *cert = itest_printf("%s/server.pem", s->dir);
    *key = itest_printf("%s/server.key", s->dir);
    export_crt(ca, s->ca_file);
    export_crt(srv, *cert);
    gnutls_datum_t d = {0};
    gnutls_ok(gnutls_x509_privkey_export2_pkcs8(srv_key, GNUTLS_X509_FMT_PEM, NULL,
                                                GNUTLS_PKCS_PLAIN, &d), "key export");
    write_file(*key, d.data, d.size);
    gnutls_free(d.data);
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_crt_deinit(srv);
    gnutls_x509_privkey_deinit(ca_key);
    gnutls_x509_privkey_deinit(srv_key);
}

void etest_standin_start(etest_standin *s, const char *python, const char *script,
                         const char *control_json)
{
    char *cert, *key;
    int out[2];
    memset(s, 0, sizeof *s);
    s->dir = itest_fresh_dir("standin");
    make_pki(s, &cert, &key);
    s->control = itest_printf("%s/control.json", s->dir);
    s->events = itest_printf("%s/events.jsonl", s->dir);
    etest_standin_control(s, control_json);
    CHECK_MSG(NULL, pipe(out) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    CHECK_MSG(NULL, pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Never outlive the test, even if it is SIGKILLed. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execl(python, python, script, "--upstream", itest_env("ACME_TEST_DIRECTORY"),
              "--upstream-ca", itest_env("ACME_TEST_CA_FILE"), "--cert", cert, "--key", key,
              "--control", s->control, "--events", s->events, "--lifetime", "600", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", python, strerror(errno));
        _exit(127);
    }
    close(out[1]);
    s->pid = pid;
    char line[128] = "";
    size_t len = 0;
    /* Read "PORT <n>\n" (at most 20 s: Python starts in well under 1 s). */
    while (len < sizeof line - 1 && !strchr(line, '\n')) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        CHECK_MSG(NULL, poll(&p, 1, 20000) == 1, "the ARI stand-in did not print its port in 20 s");
        ssize_t n = read(out[0], line + len, sizeof line - 1 - len);
        CHECK_MSG(NULL, n > 0, "the ARI stand-in exited before printing its port");
        len += (size_t)n;
        line[len] = '\0';
    }
    close(out[0]);
    CHECK_MSG(NULL, sscanf(line, "PORT %u", &s->port) == 1 && s->port > 0,
              "the stand-in said: %s", line);
    s->directory_url = itest_printf("https://127.0.0.1:%u/dir", s->port);
    itest_log("ARI stand-in on 127.0.0.1:%u in front of %s", s->port,
              itest_env("ACME_TEST_DIRECTORY"));
    free(cert);
    free(key);
}

void etest_standin_control(etest_standin *s, const char *control_json)
{
    json_error_t err;
    json_t *j = json_loads(control_json, 0, &err);
    CHECK_MSG(NULL, j != NULL, "bad control JSON (%s): %s", err.text, control_json);
    json_decref(j);
    write_file(s->control, control_json, strlen(control_json));
}

json_t *etest_standin_events(const etest_standin *s)
{
    json_t *all = json_array();
    FILE *f = fopen(s->events, "r");
    if (!f)
        return all;   /* nothing seen yet */
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t err;
        json_t *ev = json_loads(line, 0, &err);
        if (ev)   /* a line being written right now may be incomplete */
            json_array_append_new(all, ev);
    }
    free(line);
    fclose(f);
    return all;
}

void etest_standin_stop(etest_standin *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
    }
    free(s->dir);
    free(s->ca_file);
    free(s->control);
    free(s->events);
    free(s->directory_url);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ ARI id */

static char *b64url(const unsigned char *p, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(n / 3 * 4 + 5), *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = al[v >> 18 & 63];
        *o++ = al[v >> 12 & 63];
        *o++ = al[v >> 6 & 63];
        *o++ = al[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        *o++ = al[v >> 18 & 63];
        *o++ = al[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        *o++ = al[v >> 18 & 63];
        *o++ = al[v >> 12 & 63];
        *o++ = al[v >> 6 & 63];
    }
    *o = '\0';
    return out;
}

char *etest_ari_id(const char *pem)
{
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    gnutls_ok(gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0), "import");
    unsigned char aki[128], serial[64], der[65];
    size_t aki_len = sizeof aki, serial_len = sizeof serial;
    unsigned crit = 0;
    gnutls_ok(gnutls_x509_crt_get_authority_key_id(crts[0], aki, &aki_len, &crit), "aki");
    gnutls_ok(gnutls_x509_crt_get_serial(crts[0], serial, &serial_len), "serial");
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    /* The DER INTEGER content octets, whatever form gnutls hands back: no
     * redundant leading zeros, and one 0x00 when the top bit is set (the
     * serial is positive). */
    size_t s = 0;
    while (s + 1 < serial_len && serial[s] == 0 && !(serial[s + 1] & 0x80))
        s++;
    size_t len = 0;
    if (serial[s] & 0x80)
        der[len++] = 0;
    memcpy(der + len, serial + s, serial_len - s);
    len += serial_len - s;
    char *a = b64url(aki, aki_len), *b = b64url(der, len);
    char *id = itest_printf("%s.%s", a, b);
    free(a);
    free(b);
    return id;
}
