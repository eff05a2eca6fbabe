/* The engine: keeps a set of certificates valid from the host's event
 * loop. It owns no protocol logic of its own — orders are order.c's
 * state machines, exchanges are net.c's ops — it only decides when each
 * certificate needs work (renewal point, ARI window, back-off after a
 * failure) and carries each run's requests to libcurl's multi handle,
 * its slow work to the worker thread, and its waits to the host's poll(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <acme/engine.h>

#include "ari.h"
#include "http_async.h"
#include "internal.h"
#include "order.h"
#include "worker.h"

#define MAX_STEPS_PER_RUN 64

typedef enum mstate {
    M_NEW,        /* declared; nothing looked at yet */
    M_VALID,      /* a valid certificate is installed */
    M_ORDERING,   /* an order is in flight */
    M_WAITING,    /* no valid certificate; waiting to retry */
    M_FAILED      /* last attempt failed (a valid one may still serve) */
} mstate;

typedef enum wait_kind { W_NONE, W_HTTP, W_TIME, W_WORK, W_EXTERNAL } wait_kind;

typedef struct managed {
    char *id;
    json_t *params;           /* how to order it (see certificate_params) */
    mstate state;
    int64_t not_before, not_after;
    int64_t renew_at;         /* wall clock; 0 = unknown */
    uint64_t next_ms;         /* monotonic: when to look again */
    unsigned failures;
    unsigned attempts;
    char *last_error;
    int last_code;
    char *ari_id;             /* of the current certificate, for "replaces" */
    int has_valid;
    int install_due;          /* stored, but the host's install failed: retry it */

    order_run *run;
    wait_kind wait;
    int ready;                /* the awaited thing arrived */
    uint64_t run_started;

    http_exchange ari;        /* renewalInfo GET in flight */
    int ari_busy;
    int removed;
} managed;

struct acme_engine {
    acme_client *c;
    acme_engine_options opt;
    managed **certs;
    size_t count;
    http_async *http;
    worker *work;
    net_op dir_op;
    int dir_busy;
    uint64_t dir_next_ms;
    char *status;
    uint64_t longest_step_us;
    size_t next_look;         /* round-robin start for the step budget */
    int over_budget;          /* the last step left certificates unvisited */
};

/* A step stops taking on more certificates after this much time; the rest
 * go first in the next step (acme_engine_timeout_ms() is then 0). Durable
 * writes (fsync) are what make a single order's turn cost milliseconds. */
#define STEP_BUDGET_US 10000u

static uint64_t jitter_ms(uint64_t base, unsigned percent)
{
    if (!percent || !base)
        return base;
    uint32_t r = 0;
    if (gnutls_rnd(GNUTLS_RND_NONCE, &r, sizeof(r)) < 0)
        return base;
    uint64_t spread = base * percent / 100;
    return base - spread + (spread ? (uint64_t)r % (2 * spread + 1) : 0);
}

static void set_error(managed *m, int code, const char *msg)
{
    free(m->last_error);
    m->last_error = msg ? strdup(msg) : NULL;
    m->last_code = code;
}

/* ---- life cycle ---- */

ACME_EXPORT int acme_engine_new(acme_client *c, const acme_engine_options *opts, acme_engine **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    if (!c || (opts && opts->size < offsetof(acme_engine_options, jitter_percent) + sizeof(opts->jitter_percent)))
        return ACME_E_INVALID_ARG;
    result_reset(c);
    int rc = store_ready(c);
    if (rc)
        return rc;
    acme_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return ACME_E_NOMEM;
    e->c = c;
    /* Copy what the host's version of the struct has; the rest stays 0. */
    if (opts)
        memcpy(&e->opt, opts, opts->size < sizeof(e->opt) ? opts->size : sizeof(e->opt));
    e->opt.size = sizeof(e->opt);
    if (!e->opt.max_orders)
        e->opt.max_orders = 16;
    if (!e->opt.retry_min_s)
        e->opt.retry_min_s = 60;
    if (!e->opt.retry_max_s)
        e->opt.retry_max_s = 86400;
    if (!e->opt.recheck_s)
        e->opt.recheck_s = 21600;
    if (!e->opt.jitter_percent)
        e->opt.jitter_percent = 5;
    if ((rc = http_async_new(c, &e->http)) || (rc = worker_new(&e->work))) {
        acme_engine_free(e);
        return client_fail(c, rc, "engine: could not start (%s)", acme_strerror(rc));
    }
    http_response_init(&e->dir_op.x.resp, 0);
    *out = e;
    return ACME_OK;
}

static void stop_run(acme_engine *e, managed *m)
{
    if (!m->run)
        return;
    http_async_cancel(e->http, m);
    worker_cancel(e->work, m);
    order_free(m->run);
    m->run = NULL;
    m->wait = W_NONE;
}

static void managed_free(acme_engine *e, managed *m)
{
    stop_run(e, m);
    if (m->ari_busy)
        http_async_cancel(e->http, &m->ari);
    free(m->ari.url);
    free(m->ari.body);
    http_response_clear(&m->ari.resp);
    free(m->id);
    json_decref(m->params);
    free(m->last_error);
    free(m->ari_id);
    free(m);
}

ACME_EXPORT void acme_engine_free(acme_engine *e)
{
    if (!e)
        return;
    /* Runs first: their exchanges and jobs must be gone before the
     * multi handle and the worker are. */
    for (size_t i = 0; i < e->count; i++)
        managed_free(e, e->certs[i]);
    free(e->certs);
    if (e->dir_busy)
        http_async_cancel(e->http, &e->dir_op);
    net_op_clear(&e->dir_op);
    worker_free(e->work);
    http_async_free(e->http);
    free(e->status);
    free(e);
}

/* ---- declaring certificates ---- */

static managed *find(acme_engine *e, const char *id)
{
    for (size_t i = 0; i < e->count; i++)
        if (!e->certs[i]->removed && strcmp(e->certs[i]->id, id) == 0)
            return e->certs[i];
    return NULL;
}

ACME_EXPORT int acme_engine_manage(acme_engine *e, const acme_issue_params *p)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    acme_client *c = e->c;
    result_reset(c);
    /* order_new validates exactly as acme_issue does, and gives the params
     * their stored form. */
    int rc;
    order_run *probe = order_new(c, p, &rc);
    if (!probe)
        return rc;
    const char *profile = p->size >= offsetof(acme_issue_params, profile) + sizeof(p->profile) ? p->profile : NULL;
    if (profile && c->have_directory && (!c->profiles || !json_object_get(c->profiles, profile))) {
        order_free(probe);
        return client_fail(c, ACME_E_INVALID_ARG, "engine: the CA (%s) has no profile \"%s\"; choose one it offers",
                           c->directory_url, profile);
    }
    json_t *params = json_incref(order_params(probe));
    char *id = strdup(order_cert_id(probe));
    order_free(probe);
    if (!id || !params) {
        free(id);
        json_decref(params);
        return ACME_E_NOMEM;
    }
    managed *m = find(e, id);
    if (m) {
        json_decref(m->params);
        m->params = params;
        free(id);
        m->next_ms = 0;
        return ACME_OK;
    }
    m = calloc(1, sizeof(*m));
    managed **grown = realloc(e->certs, (e->count + 1) * sizeof(*grown));
    if (!m || !grown) {
        free(m);
        if (grown)
            e->certs = grown;
        free(id);
        json_decref(params);
        return ACME_E_NOMEM;
    }
    e->certs = grown;
    m->id = id;
    m->params = params;
    http_response_init(&m->ari.resp, 0);
    e->certs[e->count++] = m;
    alog(c, ACME_LOG_INFO, "engine: managing %s", id);
    return ACME_OK;
}

ACME_EXPORT int acme_engine_unmanage(acme_engine *e, const char *cert_id)
{
    if (!e || !cert_id)
        return ACME_E_INVALID_ARG;
    managed *m = find(e, cert_id);
    if (!m)
        return ACME_E_NOT_FOUND;
    /* Stopping a run mid-way leaves its saved state: a later manage() of
     * the same id resumes it. */
    for (size_t i = 0; i < e->count; i++)
        if (e->certs[i] == m) {
            managed_free(e, m);
            e->certs[i] = e->certs[--e->count];
            break;
        }
    return ACME_OK;
}

/* ---- scheduling ---- */

/* Milliseconds from now until the wall-clock second `when` begins (0 if
 * past). Whole-second time() would wake up to a second late. */
static uint64_t ms_until_wall(int64_t when)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms_wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t at = when * 1000;
    return at > now_ms_wall ? (uint64_t)(at - now_ms_wall) : 0;
}

static void schedule_at_wall(managed *m, int64_t when)
{
    m->next_ms = now_ms() + ms_until_wall(when);
}

/* The host's own limit on a certificate's age wins over later advice. */
static int64_t cap_age(const acme_engine *e, const managed *m, int64_t at)
{
    if (e->opt.max_age_s && m->not_before + (int64_t)e->opt.max_age_s < at)
        return m->not_before + (int64_t)e->opt.max_age_s;
    return at;
}

/* The lifetime rule (no ARI): a third of the lifetime left, half for
 * short-lived certificates, minus a random share so a fleet does not
 * renew in step. */
static void plan_renewal(acme_engine *e, managed *m)
{
    int64_t now = (int64_t)time(NULL);
    int64_t at = renewal_time(m->not_before, m->not_after);
    int64_t life = m->not_after - m->not_before;
    int64_t spread = life > 0 ? life * (int64_t)e->opt.jitter_percent / 100 / 2 : 0;
    if (spread > 0) {
        uint32_t r = 0;
        gnutls_rnd(GNUTLS_RND_NONCE, &r, sizeof(r));
        at -= (int64_t)(r % (uint32_t)(spread + 1));
    }
    m->renew_at = cap_age(e, m, at);
    schedule_at_wall(m, m->renew_at > now ? m->renew_at : now);
}

/* Load the stored certificate into m; with install, hand it to the host
 * (*install_rc: the host's answer). */
static int load_current(acme_engine *e, managed *m, int install, int *install_rc)
{
    if (install_rc)
        *install_rc = ACME_OK;
    acme_client *c = e->c;
    acme_certificate *cert = NULL;
    int rc = certificate_load(c, m->id, &cert);
    if (rc) {
        result_reset(c);
        return rc;
    }
    m->not_before = cert->info->not_before;
    m->not_after = cert->info->not_after;
    free(m->ari_id);
    m->ari_id = NULL;
    if (ari_cert_id(cert->chain, strlen(cert->chain), &m->ari_id))
        m->ari_id = NULL;
    m->has_valid = m->not_after > (int64_t)time(NULL);
    if (install && m->has_valid && c->host.install) {
        result_reset(c);
        int irc = c->host.install(c->host_ud, cert);
        if (irc && irc != ACME_E_PENDING)
            alog(c, ACME_LOG_WARNING, "engine: installing the stored certificate %s failed in the host (%s)%s%s",
                 m->id, acme_strerror(irc), c->last_error ? ": " : "", c->last_error ? c->last_error : "");
        /* A pending install of a stored certificate has nothing to wait for. */
        if (install_rc)
            *install_rc = irc == ACME_E_PENDING ? ACME_OK : irc;
    }
    certificate_free(cert);
    return ACME_OK;
}

static void start_order(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    acme_issue_params ip;
    acme_challenge_type chals[8];
    const char **names = NULL;
    acme_certificate shell;
    memset(&shell, 0, sizeof(shell));
    shell.id = m->id;
    shell.params = m->params;
    cert_info none;
    memset(&none, 0, sizeof(none));
    shell.info = &none;
    int rc = certificate_params(&shell, &ip, chals, 8, &names);
    if (!rc) {
        result_reset(c);
        m->run = order_new(c, &ip, &rc);
    }
    free(names);
    if (!m->run) {
        set_error(m, rc, c->last_error);
        m->state = M_FAILED;
        m->next_ms = now_ms() + (uint64_t)e->opt.retry_max_s * 1000u;
        return;
    }
    if (m->ari_id && c->url_renewal_info && m->has_valid)
        order_set_replaces(m->run, m->ari_id);
    m->state = M_ORDERING;
    m->wait = W_NONE;
    m->ready = 1;
    m->attempts++;
    m->run_started = now_ms();
    alog(c, ACME_LOG_INFO, "engine: ordering %s (attempt %u)", m->id, m->attempts);
}

static void finish_order(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    int rc = order_result(m->run);
    if (rc == ACME_OK || (rc == ACME_E_CALLBACK && load_current(e, m, 0, NULL) == ACME_OK && m->has_valid &&
                          m->not_after > 0)) {
        load_current(e, m, 0, NULL);
        m->failures = 0;
        m->state = M_VALID;
        set_error(m, rc, rc ? order_error(m->run) : NULL);
        if (rc == ACME_E_CALLBACK) {
            /* Stored, not installed (the host's server was down?): try the
             * install again soon rather than at the next renewal. */
            m->install_due = 1;
            m->failures = 1;
        }
        alog(c, ACME_LOG_INFO, "engine: %s issued in %llu ms", m->id,
             (unsigned long long)(now_ms() - m->run_started));
        /* look_at() plans the renewal (ARI or lifetime) next. */
        m->renew_at = 0;
        m->next_ms = m->install_due ? now_ms() + jitter_ms((uint64_t)e->opt.retry_min_s * 1000u, e->opt.jitter_percent)
                                    : 0;
    } else {
        set_error(m, rc, order_error(m->run));
        m->failures++;
        /* Doubling back-off with a cap, never sooner than the CA asked. */
        uint64_t wait = (uint64_t)e->opt.retry_min_s << (m->failures - 1 < 20 ? m->failures - 1 : 20);
        if (wait > e->opt.retry_max_s)
            wait = e->opt.retry_max_s;
        if (order_retry_after_s(m->run) > wait)
            wait = order_retry_after_s(m->run);
        m->next_ms = now_ms() + jitter_ms(wait * 1000u, e->opt.jitter_percent);
        m->state = m->has_valid ? M_FAILED : M_WAITING;
        alog(c, ACME_LOG_WARNING, "engine: %s failed (%s); next attempt in %llu s", m->id,
             m->last_error ? m->last_error : acme_strerror(rc), (unsigned long long)wait);
    }
    order_free(m->run);
    m->run = NULL;
    m->wait = W_NONE;
    result_reset(c);
}

static size_t runs_in_flight(const acme_engine *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->count; i++)
        n += e->certs[i]->run != NULL;
    return n;
}

/* ---- driving ---- */

static void on_http_done(void *ud, void *cookie)
{
    acme_engine *e = ud;
    if (cookie == &e->dir_op) {
        e->dir_busy = 2;
        return;
    }
    for (size_t i = 0; i < e->count; i++) {
        managed *m = e->certs[i];
        if (cookie == m && m->wait == W_HTTP)
            m->ready = 1;
        else if (cookie == &m->ari)
            m->ari_busy = 2;
    }
}

static void drive_run(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    for (int n = 0; n < MAX_STEPS_PER_RUN; n++) {
        if (m->wait == W_TIME && now_ms() >= order_wake_at(m->run))
            m->ready = 1;
        if (m->wait != W_NONE && !m->ready)
            return;
        m->wait = W_NONE;
        m->ready = 0;
        order_want w = order_step(m->run);
        switch (w) {
        case OW_CONTINUE:
            continue;
        case OW_HTTP:
            m->wait = W_HTTP;
            if (http_async_start(e->http, order_exchange(m->run), m) != ACME_OK) {
                order_exchange(m->run)->rc = ACME_E_NOMEM;
                m->ready = 1;
            }
            return;
        case OW_TIME:
            m->wait = W_TIME;
            if (now_ms() >= order_wake_at(m->run)) {
                m->ready = 1;
                continue;
            }
            return;
        case OW_WORK:
            m->wait = W_WORK;
            if (worker_submit(e->work, order_job(m->run), m) != ACME_OK) {
                work_job *j = order_job(m->run);
                j->fn(j); /* no thread to hand it to: do it here */
                m->ready = 1;
            }
            return;
        case OW_EXTERNAL:
            m->wait = W_EXTERNAL;
            return;
        case OW_DONE:
            finish_order(e, m);
            return;
        }
    }
    (void)c;
}

/* ARI: ask when to renew; the answer sets renew_at. */
static void drive_ari(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    if (m->ari_busy == 1)
        return;
    if (m->ari_busy == 2) {
        m->ari_busy = 0;
        int64_t start = 0, end = 0;
        unsigned ra = 0;
        char *why = NULL;
        int rc = m->ari.rc;
        if (!rc)
            rc = ari_parse(&m->ari, &start, &end, &ra, &why);
        else
            why = xasprintf("renewalInfo %s: %s%s%s", m->ari.req.url, acme_strerror(rc),
                            m->ari.resp.error ? " — " : "", m->ari.resp.error ? m->ari.resp.error : "");
        uint64_t recheck = (uint64_t)(ra > 0 ? ra : e->opt.recheck_s) * 1000u;
        if (rc) {
            /* Without ARI's answer, the lifetime rule still holds. */
            alog(c, ACME_LOG_WARNING, "engine: %s: %s; using the lifetime rule", m->id, why ? why : "");
            m->renew_at = cap_age(e, m, renewal_time(m->not_before, m->not_after));
        } else {
            int64_t now = (int64_t)time(NULL);
            m->renew_at = cap_age(e, m, ari_pick(start, end));
            char a[32], b[32], w[32];
            alog(c, ACME_LOG_INFO, "engine: %s: the CA suggests renewing between %s and %s; chose %s", m->id,
                 fmt_utc(start, a), fmt_utc(end, b), fmt_utc(m->renew_at, w));
            /* A window already past (e.g. the certificate was revoked): now. */
            if (end < now)
                m->renew_at = now;
        }
        free(why);
        uint64_t until = ms_until_wall(m->renew_at);
        m->next_ms = now_ms() + (until < recheck ? until : recheck);
        if (until == 0)
            m->next_ms = now_ms();
        m->state = M_VALID;
        return;
    }
    if (ari_prepare(&m->ari, c->max_response, c->url_renewal_info, m->ari_id) == ACME_OK &&
        http_async_start(e->http, &m->ari, &m->ari) == ACME_OK)
        m->ari_busy = 1;
}

static void drive_directory(acme_engine *e)
{
    acme_client *c = e->c;
    if (e->dir_busy == 1)
        return; /* in flight */
    if (e->dir_busy == 2) {
        e->dir_busy = 0;
        if (c->have_directory) {
            /* An order fetched it meanwhile: nothing left to do. */
            net_op_clear(&e->dir_op);
            return;
        }
        result_reset(c);
        if (net_op_next(c, &e->dir_op) == NET_HTTP) {
            if (http_async_start(e->http, &e->dir_op.x, &e->dir_op) == ACME_OK)
                e->dir_busy = 1;
            return;
        }
        if (e->dir_op.rc) {
            /* The CA is down at start-up: try again, without hammering it. */
            alog(c, ACME_LOG_WARNING, "engine: directory: %s; retrying in 10 s",
                 c->last_error ? c->last_error : acme_strerror(e->dir_op.rc));
            e->dir_next_ms = now_ms() + 10000;
            result_reset(c);
        }
        net_op_clear(&e->dir_op);
        return;
    }
    if (c->have_directory || now_ms() < e->dir_next_ms)
        return;
    if (net_op_directory(&e->dir_op, c))
        return;
    result_reset(c);
    if (net_op_next(c, &e->dir_op) == NET_HTTP && http_async_start(e->http, &e->dir_op.x, &e->dir_op) == ACME_OK)
        e->dir_busy = 1;
    else
        net_op_clear(&e->dir_op);
}

static void look_at(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    if (m->run) {
        result_reset(c);
        drive_run(e, m);
        return;
    }
    if (m->state == M_NEW) {
        /* At start: hand the host what is already stored and valid. */
        int irc = ACME_OK;
        load_current(e, m, 1, &irc);
        if (irc) {
            m->install_due = 1;
            m->failures = 1;
            set_error(m, ACME_E_CALLBACK, c->last_error ? c->last_error : acme_strerror(irc));
        }
        m->state = m->has_valid ? M_VALID : M_WAITING;
        char until[32];
        if (m->has_valid)
            alog(c, ACME_LOG_INFO, "engine: %s has a valid stored certificate (until %s)", m->id,
                 fmt_utc(m->not_after, until));
        m->renew_at = 0;
        m->next_ms = m->install_due ? now_ms() + (uint64_t)e->opt.retry_min_s * 1000u : 0;
    }
    if (m->install_due && m->has_valid && !m->ari_busy && now_ms() >= m->next_ms) {
        int irc = ACME_OK;
        load_current(e, m, 1, &irc);
        if (irc == ACME_OK) {
            alog(c, ACME_LOG_INFO, "engine: %s installed on retry", m->id);
            m->install_due = 0;
            m->failures = 0;
            set_error(m, ACME_OK, NULL);
            m->renew_at = 0;
            m->next_ms = 0;
        } else {
            m->failures++;
            uint64_t wait = (uint64_t)e->opt.retry_min_s << (m->failures - 1 < 20 ? m->failures - 1 : 20);
            if (wait > e->opt.retry_max_s)
                wait = e->opt.retry_max_s;
            set_error(m, ACME_E_CALLBACK, c->last_error ? c->last_error : acme_strerror(irc));
            m->next_ms = now_ms() + jitter_ms(wait * 1000u, e->opt.jitter_percent);
            return;
        }
    }
    if (m->ari_busy) {
        if (m->ari_busy == 2)
            drive_ari(e, m);
        return;
    }
    if (now_ms() < m->next_ms)
        return;
    if (m->has_valid && (m->state == M_VALID || m->state == M_FAILED)) {
        int ari = c->url_renewal_info && m->ari_id;
        if (m->renew_at == 0) {
            if (!c->have_directory)
                return; /* the directory says whether the CA speaks ARI */
            if (ari) {
                drive_ari(e, m);
                return;
            }
            plan_renewal(e, m);
            if (now_ms() < m->next_ms)
                return;
        } else if (ms_until_wall(m->renew_at) > 0) {
            /* Woken to re-check: ARI may have moved the window. */
            if (ari) {
                drive_ari(e, m);
                return;
            }
            schedule_at_wall(m, m->renew_at);
            return;
        }
    }
    if (runs_in_flight(e) >= e->opt.max_orders)
        return;
    start_order(e, m);
    if (m->run) {
        result_reset(c);
        drive_run(e, m);
    }
}

static void collect_work(acme_engine *e)
{
    void *done[64];
    size_t n;
    while ((n = worker_collect(e->work, done, 64)) > 0) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < e->count; j++)
                if (e->certs[j] == done[i] && e->certs[j]->wait == W_WORK)
                    e->certs[j]->ready = 1;
        if (n < 64)
            break;
    }
}

ACME_EXPORT int acme_engine_step(acme_engine *e)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    e->over_budget = 0;
    uint64_t t0 = now_ms();
    struct timespec ts0;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    collect_work(e);
    http_async_step(e->http, on_http_done, e);
    drive_directory(e);
    struct timespec ts1;
    size_t n = e->count;
    for (size_t k = 0; k < n; k++) {
        size_t i = (e->next_look + k) % n;
        look_at(e, e->certs[i]);
        clock_gettime(CLOCK_MONOTONIC, &ts1);
        uint64_t spent = (uint64_t)(ts1.tv_sec - ts0.tv_sec) * 1000000u + (uint64_t)((ts1.tv_nsec - ts0.tv_nsec) / 1000);
        if (spent > STEP_BUDGET_US && k + 1 < n) {
            e->next_look = (i + 1) % n;
            e->over_budget = 1;
            break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    uint64_t us = (uint64_t)(ts1.tv_sec - ts0.tv_sec) * 1000000u + (uint64_t)((ts1.tv_nsec - ts0.tv_nsec) / 1000);
    if (us > e->longest_step_us)
        e->longest_step_us = us;
    (void)t0;
    return ACME_OK;
}

ACME_EXPORT int acme_engine_fds(acme_engine *e, struct pollfd *fds, size_t cap, size_t *n)
{
    if (!e || !n || (cap && !fds))
        return ACME_E_INVALID_ARG;
    size_t need = 1 + http_async_fds(e->http, NULL, 0);
    *n = need;
    if (cap < need)
        return ACME_E_INVALID_ARG;
    fds[0].fd = worker_fd(e->work);
    fds[0].events = POLLIN;
    fds[0].revents = 0;
    *n = 1 + http_async_fds(e->http, fds + 1, cap - 1);
    return ACME_OK;
}

ACME_EXPORT int acme_engine_timeout_ms(acme_engine *e)
{
    if (!e)
        return -1;
    uint64_t now = now_ms();
    if (e->over_budget)
        return 0;
    long best = http_async_timeout_ms(e->http);
#define CONSIDER(at) do { long d_ = (at) <= now ? 0 : (long)((at) - now); if (best < 0 || d_ < best) best = d_; } while (0)
    acme_client *c = e->c;
    if (!c->have_directory && !e->dir_busy)
        CONSIDER(e->dir_next_ms);
    if (e->dir_busy == 2)
        CONSIDER(now);
    /* Certificates waiting for a free order slot are not due: a running
     * order's own fd or timer wakes the step that frees one. */
    int full = runs_in_flight(e) >= e->opt.max_orders;
    for (size_t i = 0; i < e->count; i++) {
        managed *m = e->certs[i];
        if (m->run) {
            if (m->wait == W_TIME)
                CONSIDER(order_wake_at(m->run));
            else if (m->ready || m->wait == W_NONE)
                CONSIDER(now);
        } else if (m->state == M_NEW || m->ari_busy == 2) {
            CONSIDER(now);
        } else if (!m->ari_busy && !(full && m->next_ms <= now)) {
            CONSIDER(m->next_ms);
        }
    }
#undef CONSIDER
    /* poll() takes an int; a day is far enough to look ahead. */
    if (best > 86400000L)
        best = 86400000L;
    return (int)best;
}

ACME_EXPORT int acme_engine_idle(const acme_engine *e)
{
    if (!e)
        return 1;
    if (e->dir_busy)
        return 0;
    for (size_t i = 0; i < e->count; i++) {
        const managed *m = e->certs[i];
        if (m->run || m->ari_busy || m->state == M_NEW)
            return 0;
    }
    return 1;
}

static int all_valid(const acme_engine *e, int *code)
{
    *code = ACME_OK;
    int ok = 1;
    for (size_t i = 0; i < e->count; i++)
        if (!e->certs[i]->has_valid || e->certs[i]->state == M_WAITING) {
            ok = 0;
            if (!*code)
                *code = e->certs[i]->last_code ? e->certs[i]->last_code : ACME_E_ORDER_FAILED;
        }
    return ok;
}

ACME_EXPORT int acme_engine_perform(acme_engine *e, int timeout_ms)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
    struct pollfd *fds = NULL;
    size_t cap = 0;
    for (;;) {
        acme_engine_step(e);
        int code;
        int valid = all_valid(e, &code);
        int wait = acme_engine_timeout_ms(e);
        uint64_t now = now_ms();
        if (acme_engine_idle(e)) {
            /* Nothing in flight: stop when the next piece of work lies
             * beyond what the caller asked to wait for. */
            uint64_t next = wait < 0 ? UINT64_MAX : now + (uint64_t)wait;
            if (timeout_ms < 0 ? (valid || wait != 0) : next > deadline) {
                free(fds);
                return valid ? ACME_OK : code;
            }
        }
        if (now >= deadline) {
            free(fds);
            return valid ? ACME_OK : ACME_E_TIMEOUT;
        }
        size_t n = 0;
        if (acme_engine_fds(e, fds, cap, &n) != ACME_OK) {
            struct pollfd *grown = realloc(fds, (n + 8) * sizeof(*fds));
            if (!grown) {
                free(fds);
                return ACME_E_NOMEM;
            }
            fds = grown;
            cap = n + 8;
            acme_engine_fds(e, fds, cap, &n);
        }
        uint64_t left = deadline - now;
        int ms = wait;
        if (ms < 0 || (uint64_t)ms > left)
            ms = left > 86400000u ? 86400000 : (int)left;
        if (ms < 0 || ms > 1000)
            ms = ms < 0 ? 1000 : ms;
        poll(fds, n, ms);
    }
}

ACME_EXPORT int acme_engine_done(acme_engine *e, const void *object, int result)
{
    if (!e || !object)
        return ACME_E_INVALID_ARG;
    for (size_t i = 0; i < e->count; i++) {
        managed *m = e->certs[i];
        if (m->run && order_external_done(m->run, object, result)) {
            if (m->wait == W_EXTERNAL)
                m->ready = 1;
            return ACME_OK;
        }
    }
    return ACME_E_NOT_FOUND;
}

static const char *state_name(const managed *m)
{
    switch (m->state) {
    case M_VALID: return "valid";
    case M_ORDERING: return "ordering";
    case M_WAITING: return "waiting";
    case M_FAILED: return "failed";
    case M_NEW: return "new";
    }
    return "?";
}

ACME_EXPORT const char *acme_engine_status_json(acme_engine *e)
{
    if (!e)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; i < e->count; i++) {
        managed *m = e->certs[i];
        json_t *o = json_pack("{s:s,s:O,s:s,s:I,s:I}", "id", m->id, "names", json_object_get(m->params, "names"),
                              "state", state_name(m), "attempts", (json_int_t)m->attempts, "failures",
                              (json_int_t)m->failures);
        if (!o)
            continue;
        json_object_set_new(o, "not_after", m->has_valid ? json_integer(m->not_after) : json_null());
        json_object_set_new(o, "next_renewal", m->renew_at ? json_integer(m->renew_at) : json_null());
        json_object_set_new(o, "last_error", m->last_error ? json_string(m->last_error) : json_null());
        json_array_append_new(arr, o);
    }
    free(e->status);
    e->status = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return e->status;
}

ACME_EXPORT uint64_t acme_engine_longest_step_us(const acme_engine *e)
{
    return e ? e->longest_step_us : 0;
}
