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

#include "account_run.h"
#include "ari.h"
#include "engine_loop.h"
#include "backoff.h"
#include "ca_list_int.h"
#include "cert_stats.h"
#include "engine_chain.h"
#include "engine_one.h"
#include "event_internal.h"
#include "http_async.h"
#include "internal.h"
#include "issue_spec.h"
#include "order.h"
#include "reentry.h"
#include "storage_etcd.h"
#include "store_async.h"
#include "timerq.h"
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

/* Why a certificate is out of the timer queue although it has work: it
 * waits for a free order slot (max_orders) or for the directory (which
 * says whether the CA speaks ARI). A parked certificate costs nothing per
 * step; the event it waits for puts it back. */
typedef enum park_kind { P_NONE, P_SLOT, P_DIRECTORY, P_FETCH } park_kind;

/* Start-up, a new certificate's stored keys: still in the table; asked
 * for (a slice on the storage thread); in memory; or to be read from the
 * table directly (no read-ahead: the table cannot list, or no memory).
 * F_ASKED and F_IN hold a place in the window. */
typedef enum fetch_state { F_NONE, F_ASKED, F_IN, F_DIRECT } fetch_state;

/* What an HTTP exchange's cookie points at, so a completion finds its
 * owner without a search. */
typedef enum tag_kind { T_RUN, T_ARI, T_DIRECTORY, T_ACCOUNT } tag_kind;
typedef struct wake_tag {
    tag_kind kind;
} wake_tag;

typedef struct managed {
    char *id;
    issue_spec *spec;         /* how to order it (validated once) */
    mstate state;
    int64_t not_before, not_after;
    int64_t renew_at;         /* wall clock; 0 = unknown */
    uint64_t next_ms;         /* monotonic: when to look again */
    unsigned failures;
    unsigned attempts;
    int64_t last_success;     /* wall clock of the last successful order; 0 = none yet */
    char *last_error;
    int last_code;
    char *ari_id;             /* of the current certificate, for "replaces" */
    int has_valid;
    int install_due;          /* stored, but the host's install failed: retry it */
    int names_changed;        /* the stored certificate was ordered for other names: order now */
    int64_t hold_until;       /* wall clock: back-off, no order before (backoff.c) */
    char *issued_profile;     /* the profile the stored certificate was ordered with */
    char *move_reason;        /* CA failover: move to the next CA after this step, why */
    char *ca_reason;          /* CA failover: why it is at this CA (status) */
    int move_first;           /* CA failover: the move goes to the first CA (a renewal trying it again) */
    int64_t back_for;         /* CA failover: the notAfter whose renewal tried the first CA already */

    order_run *run;
    wait_kind wait;
    int ready;                /* the awaited thing arrived */
    uint64_t run_started;
    uint64_t pending_until;   /* W_EXTERNAL: monotonic ms the host has to call done */
    int64_t pending_since;    /* W_EXTERNAL: Unix s the callback answered PENDING */

    http_exchange ari;        /* renewalInfo GET in flight */
    int ari_busy;
    int removed;

    /* Scheduling (see the "scheduling" section): every certificate with
     * work is either in the timer queue, parked, or waiting for an event
     * (HTTP, worker, host) that re-queues it. */
    timerq_node due;
    size_t pos;               /* index in e->certs */
    size_t run_pos;           /* index in e->running while m->run */
    park_kind parked;
    fetch_state fetch;        /* M_NEW: where its stored keys are */
    struct managed *park_next, *park_prev;
    int slot_granted;         /* unparked for a free slot: pass it on if unused */
    uint64_t seen_step;       /* the step that last looked at it */
    wake_tag run_tag, ari_tag;
} managed;

/* A stored certificate whose install the host answered ACME_E_PENDING:
 * the object stays valid until acme_engine_done() (the contract every
 * PENDING callback has); nothing else waits for it. */
typedef struct held_install {
    struct held_install *next;
    acme_certificate *cert;
    char *id;
} held_install;

typedef struct park_list {
    managed *head, *tail;
    size_t n;
} park_list;

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
    int over_budget;          /* the last step left due certificates unvisited */

    /* Scheduling: nothing here is walked per step. */
    timerq queue;              /* certificates by when they next need a look */
    park_list wait_slot, wait_directory;
    park_list wait_fetch;     /* new certificates whose stored keys are not asked for yet */
    size_t fetch_out;         /* ... asked for or in memory, not looked at yet */
    managed **running;        /* certificates with an order in flight */
    size_t running_n;
    size_t new_n, ari_n;      /* in state M_NEW; with an ARI GET in flight */
    json_t *index;            /* id -> position in certs (an integer) */
    uint64_t step_no;
    wake_tag dir_tag;
    int freeing;              /* acme_engine_free: no more scheduling */
    int own_sa;               /* this engine started the client's storage thread */

    /* The engine of one behind the blocking calls (engine_one.h): no
     * multi handle and no worker; exchanges run inline and report at the
     * next step, like a host transport's. */
    engine_one *one;
    int dir_failed;           /* one: the directory could not be fetched */
    wake_tag *inline_done[4]; /* one: finished inline, not reported yet */
    size_t inline_n;

    /* The account step (acme_engine_set_account): while acct is set, no
     * order starts; certificates that want one wait with those waiting
     * for the directory. NULL once the account is there. */
    account_run *acct;
    wait_kind acct_wait;      /* W_HTTP, W_WORK in flight; W_TIME backing off */
    int acct_ready;           /* the awaited exchange or job finished */
    unsigned acct_failures;
    uint64_t acct_next_ms;
    wake_tag acct_tag;

    engine_loop loop;         /* socket/timer callbacks, PENDING deadline (engine_socket.c) */
    held_install *held;       /* stored certificates the host is still installing */

    /* CA failover (acme_ca_list_engine_new, engine_chain.h): the engine of
     * the next CA of the list, and this one's place in it. Every public
     * call on the first engine covers the whole chain. */
    acme_engine *next;
    acme_engine *first;       /* the chain's first engine (the preferred CA) */
    acme_ca_list *cas;
    size_t ca_index;
};

engine_loop *engine_loop_of(acme_engine *e)
{
    return &e->loop;
}

static int engine_step_one(acme_engine *e);
static managed *find(acme_engine *e, const char *id);
static int engine_fds_one(acme_engine *e, struct pollfd *fds, size_t cap, size_t *n);
static int engine_timeout_one(acme_engine *e);
static void want_move(acme_engine *e, managed *m, int rc, const acme_problem *p, const char *why);
static int want_back(acme_engine *e, managed *m);
static void do_moves(acme_engine *e);
static int chain_manage(acme_engine *e, issue_spec *spec);

/* Start-up reads what is stored of each certificate a slice at a time on
 * the storage thread (store_async_fetch), ahead of the look that uses it,
 * so memory holds the window, not 100,000 chains at once: at most
 * FETCH_WINDOW certificates asked for or waiting to be looked at, asked
 * in slices of FETCH_SLICE (one job each) once a slice's room is free. */
#define FETCH_WINDOW 256u
#define FETCH_SLICE 64u

/* A step stops taking on more certificates after this much time; the rest
 * go first in the next step (acme_engine_timeout_ms() is then 0). Durable
 * writes (fsync) are what make a single order's turn cost milliseconds.
 * Half the 10 ms a host's loop can spare: the check comes after a
 * certificate's turn, so a step ends up to one turn past the budget
 * (seen: 10.0 ms budget, 12-16 ms steps at start-up with 10,000 stored). */
#define STEP_BUDGET_US 5000u

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

/* ---- scheduling primitives ---- */

#define MANAGED_OF(ptr, member) ((managed *)(void *)((char *)(ptr) - offsetof(managed, member)))

static void queue_at(acme_engine *e, managed *m, uint64_t due)
{
    if (m->parked || e->freeing)
        return;
    /* Without room in the heap the certificate would be lost from the
     * schedule: retry at the next step, where timerq_set tries again. */
    if (timerq_set(&e->queue, &m->due, due) != ACME_OK)
        e->over_budget = 1;
}

static void queue_now(acme_engine *e, managed *m)
{
    queue_at(e, m, now_ms());
}

static park_list *park_list_of(acme_engine *e, park_kind k)
{
    return k == P_SLOT ? &e->wait_slot : k == P_DIRECTORY ? &e->wait_directory : &e->wait_fetch;
}

static void park(acme_engine *e, managed *m, park_kind why)
{
    if (m->parked)
        return;
    park_list *l = park_list_of(e, why);
    timerq_remove(&e->queue, &m->due);
    m->parked = why;
    m->park_next = NULL;
    m->park_prev = l->tail;
    if (l->tail)
        l->tail->park_next = m;
    else
        l->head = m;
    l->tail = m;
    l->n++;
}

static void unpark(acme_engine *e, managed *m)
{
    if (!m->parked)
        return;
    park_list *l = park_list_of(e, m->parked);
    if (m->park_prev)
        m->park_prev->park_next = m->park_next;
    else
        l->head = m->park_next;
    if (m->park_next)
        m->park_next->park_prev = m->park_prev;
    else
        l->tail = m->park_prev;
    m->park_next = m->park_prev = NULL;
    m->parked = P_NONE;
    l->n--;
}

/* A slot freed: the certificate that waited longest gets it. */
static void grant_slot(acme_engine *e)
{
    managed *m = e->wait_slot.head;
    if (!m || e->freeing || e->running_n >= e->opt.max_orders)
        return;
    unpark(e, m);
    m->slot_granted = 1;
    queue_now(e, m);
}

static void set_running(acme_engine *e, managed *m, int on)
{
    if (on) {
        m->run_pos = e->running_n;
        e->running[e->running_n++] = m;
        return;
    }
    managed *last = e->running[--e->running_n];
    e->running[m->run_pos] = last;
    last->run_pos = m->run_pos;
    grant_slot(e);
}

/* Ask the storage thread for the next slices of parked new certificates'
 * stored keys, while the window has a slice's room. */
static void fetch_refill(acme_engine *e)
{
    acme_client *c = e->c;
    while (e->wait_fetch.head && e->fetch_out + FETCH_SLICE <= FETCH_WINDOW && !e->freeing) {
        managed *slice[FETCH_SLICE];
        size_t n = 0;
        acme_buf keys, tags;
        buf_init(&keys, 0);
        buf_init(&tags, 0);
        int rc = ACME_OK;
        while (n < FETCH_SLICE && e->wait_fetch.head) {
            managed *m = e->wait_fetch.head;
            unpark(e, m);
            slice[n++] = m;
            /* What its first look reads: the stored chain and key
             * (certificate.c), its numbers (cert_stats.c). An unfinished
             * order's state is read when its order takes the lock. */
            char *chain = xasprintf("%s/certs/%s/cert.json", c->ca_id, m->id);
            char *rel = cert_stats_key(m->id);
            char *stats = rel ? xasprintf("%s/%s", c->ca_id, rel) : NULL;
            if (!chain || !stats || buf_append(&keys, chain, strlen(chain) + 1) ||
                buf_append(&keys, stats, strlen(stats) + 1) || buf_append(&tags, m->id, strlen(m->id) + 1))
                rc = ACME_E_NOMEM;
            free(chain);
            free(rel);
            free(stats);
        }
        if (rc == ACME_OK)
            rc = store_async_fetch(c->sa, keys.data, keys.len, tags.data, tags.len);
        buf_clear(&keys);
        buf_clear(&tags);
        for (size_t i = 0; i < n; i++) {
            managed *m = slice[i];
            /* Not asked: memory answers already (nothing stored), or
             * there is no start-up list or no memory, and its reads ask
             * the table one by one, as without read-ahead. */
            m->fetch = rc == ACME_E_PENDING ? F_ASKED : F_DIRECT;
            if (m->fetch == F_DIRECT)
                queue_now(e, m);
        }
        if (rc == ACME_E_PENDING)
            e->fetch_out += n;
    }
}

/* The storage thread read a new certificate's stored keys (tag: its id). */
static void engine_fetched(void *ud, const char *tag)
{
    acme_engine *e = ud;
    managed *m = find(e, tag);
    if (m && m->state == M_NEW && m->fetch == F_ASKED) {
        m->fetch = F_IN;
        queue_now(e, m);
    }
}

/* m leaves M_NEW (looked at, or unmanaged): its room in the window frees. */
static void fetch_done(acme_engine *e, managed *m)
{
    int counted = m->fetch == F_ASKED || m->fetch == F_IN;
    m->fetch = F_NONE;
    if (counted && e->fetch_out)
        e->fetch_out--;
    fetch_refill(e);
}

static void set_ari_busy(acme_engine *e, managed *m, int v)
{
    if (!m->ari_busy && v)
        e->ari_n++;
    else if (m->ari_busy && !v)
        e->ari_n--;
    m->ari_busy = v;
}

/* ---- the edges: async for a host's engine, inline for the engine of one ---- */

static int edge_http_start(acme_engine *e, http_exchange *x, wake_tag *t)
{
    if (e->http)
        return http_async_start(e->http, x, t);
    if (e->inline_n == sizeof(e->inline_done) / sizeof(e->inline_done[0]))
        return ACME_E_NOMEM; /* cannot happen: one run, one ARI GET, one directory */
    alog(e->c, ACME_LOG_DEBUG, "%s %s", x->req.method, x->req.url);
    net_exchange_perform(e->c, x);
    e->inline_done[e->inline_n++] = t;
    return ACME_OK;
}

static void edge_http_cancel(acme_engine *e, wake_tag *t)
{
    if (e->http) {
        http_async_cancel(e->http, t);
        return;
    }
    for (size_t i = 0; i < e->inline_n; i++)
        if (e->inline_done[i] == t) {
            e->inline_done[i] = e->inline_done[--e->inline_n];
            i--;
        }
}

static void on_http_done(void *ud, void *cookie);

static void edge_http_step(acme_engine *e)
{
    if (e->http) {
        http_async_step(e->http, on_http_done, e);
        return;
    }
    while (e->inline_n) {
        wake_tag *t = e->inline_done[0];
        e->inline_done[0] = e->inline_done[--e->inline_n];
        on_http_done(e, t);
    }
}

static void edge_work_cancel(acme_engine *e, managed *m)
{
    if (e->work)
        worker_cancel(e->work, m);
}

/* ---- life cycle ---- */

/* What start-up lists without reading: every certificate's chain, key and
 * numbers are read a slice at a time, ahead of their first look. */
static const char *const lazy_at_start[] = {"certs/", "stats/", NULL};

/* A host transport's or the storage thread's completion: make the first
 * descriptor readable (any thread). */
static void wake_fd(void *ud)
{
    worker_wake(ud);
}

/* The storage thread's answer to an order's lock (store_async.h). */
static int engine_locked(void *ud, const void *object, int rc)
{
    return acme_engine_done(ud, object, rc) == ACME_OK;
}

/* The order lock `name` was lost (a refresh said so, or the etcd table
 * knows its lease is gone): the order holding it stops at once — its
 * exchange or job is cancelled, it writes nothing more, and it ends as
 * failed (ACME_E_LOCKED: this engine's own back-off, nothing stored). */
static void engine_lock_lost(void *ud, const char *name, const char *why)
{
    acme_engine *e = ud;
    acme_client *c = e->c;
    const char *id = strstr(name, ".order.");
    for (size_t i = 0; i < e->running_n; i++) {
        managed *m = e->running[i];
        const char *held = m->run ? order_lock_name(m->run) : NULL;
        if (!held || strcmp(held, name) != 0)
            continue;
        /* Once per run: the etcd check and the storage thread's refresh
         * may both find it (order_lock_name is NULL after the first). */
        alog(c, ACME_LOG_WARNING, "storage: the lock %s was lost (%s); stopping its order — another node or "
             "process may take it over", name, why ? why : "its lease could not be refreshed");
        if (id)
            event_plain(c, ACME_EVENT_LOCK_LOST, id + 7);
        if (!order_lock_lost(m->run, why))
            return;
        if (m->wait == W_HTTP)
            edge_http_cancel(e, &m->run_tag);
        if (m->wait == W_WORK)
            edge_work_cancel(e, m);
        /* A host callback still out (or the storage thread's barrier) is
         * waited for: its completion steps the run into its clean-up. */
        if (m->wait == W_HTTP || m->wait == W_WORK || m->wait == W_TIME || m->wait == W_NONE) {
            m->wait = W_NONE;
            m->ready = 1;
        }
        queue_now(e, m);
        return;
    }
    alog(c, ACME_LOG_DEBUG, "storage: the lock %s was lost (%s); no order of this engine holds it now", name,
         why ? why : "");
}

/* The etcd table knows within a keep-alive (TTL/3) that a lease is gone,
 * long before the storage thread's next refresh (every 100 s): ask it,
 * from memory without a request, whether a running order's lock is. */
static void engine_check_locks(acme_engine *e)
{
    acme_client *c = e->c;
    if (!c->etcd_storage)
        return;
    for (size_t i = 0; i < e->running_n; i++) {
        managed *m = e->running[i];
        const char *held = m->run ? order_lock_name(m->run) : NULL;
        if (held && storage_etcd_lock_lost(c->etcd_storage, held)) {
            char *name = xstrdup(held);
            const char *why = storage_etcd_last_error(c->etcd_storage);
            char *copy = xstrdup(why && *why ? why : "etcd: its lease expired or was revoked");
            size_t before = e->running_n;
            if (name)
                engine_lock_lost(e, name, copy);
            free(name);
            free(copy);
            if (e->running_n != before)
                i = (size_t)-1; /* the array changed: look again */
        }
    }
}

static int engine_make(acme_client *c, const acme_engine_options *opts, engine_one *one, acme_engine **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    size_t need = offsetof(acme_engine_options, jitter_percent) + sizeof(opts->jitter_percent);
    if (opts && opts->size < need)
        return client_fail(c, ACME_E_INVALID_ARG, "engine: acme_engine_options.size is %zu, at least %zu expected: "
                           "set .size = sizeof(acme_engine_options)", opts->size, need);
    int rc = store_ready(c);
    if (rc)
        return rc;
    acme_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return ACME_E_NOMEM;
    e->c = c;
    e->one = one;
    e->dir_tag.kind = T_DIRECTORY;
    e->acct_tag.kind = T_ACCOUNT;
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
    if (one) {
        /* One call, one decision: nothing to spread, nothing to retry. */
        e->opt.jitter_percent = 0;
        e->opt.max_orders = 1;
    }
    e->running = calloc(e->opt.max_orders, sizeof(*e->running));
    e->index = json_object();
    if (!e->running || !e->index) {
        acme_engine_free(e);
        return ACME_E_NOMEM;
    }
    if (one)
        rc = net_transport_ready(c);
    else if (!(rc = http_async_new(c, &e->http)) && !(rc = worker_new(&e->work))) {
        /* Nothing a step does may wait for the host's tables: their calls
         * run on threads that wake the loop when done (doc/engine.md). */
        http_async_set_wake(e->http, wake_fd, e->work);
        if (!c->sa && !(rc = store_async_start(c, wake_fd, e->work, lazy_at_start)))
            e->own_sa = 1;
    }
    if (rc) {
        acme_engine_free(e);
        return client_fail(c, rc, "engine: could not start (%s)", acme_strerror(rc));
    }
    http_response_init(&e->dir_op.x.resp, 0);
    engine_loop_init(&e->loop, c, e->http, e->work);
    *out = e;
    return ACME_OK;
}

ACME_EXPORT int acme_engine_new(acme_client *c, const acme_engine_options *opts, acme_engine **out)
{
    return engine_make(c, opts, NULL, out);
}

int engine_new_one(acme_client *c, engine_one *one, acme_engine **out)
{
    return engine_make(c, NULL, one, out);
}

static void stop_run(acme_engine *e, managed *m)
{
    if (!m->run)
        return;
    edge_http_cancel(e, &m->run_tag);
    edge_work_cancel(e, m);
    order_free(m->run);
    m->run = NULL;
    m->wait = W_NONE;
    set_running(e, m, 0);
}

static void managed_free(acme_engine *e, managed *m)
{
    stop_run(e, m);
    if (m->ari_busy)
        edge_http_cancel(e, &m->ari_tag);
    free(m->ari.url);
    free(m->ari.body);
    http_response_clear(&m->ari.resp);
    free(m->id);
    issue_spec_free(m->spec);
    free(m->last_error);
    free(m->ari_id);
    free(m->issued_profile);
    free(m->move_reason);
    free(m->ca_reason);
    free(m);
}

ACME_EXPORT void acme_engine_free(acme_engine *e)
{
    if (!e)
        return;
    if (reentry_refused(e->c, "acme_engine_free"))
        return; /* freeing what the caller is inside of: leak rather than crash */
    acme_engine_free(e->next);
    /* The host's loop lets go of every descriptor while all are open. */
    engine_loop_close(&e->loop);
    /* The queue points into the certificates: empty it before they go.
     * Runs next: their exchanges and jobs must be gone before the multi
     * handle and the worker are. */
    e->freeing = 1;
    timerq_free(&e->queue);
    while (e->held) {
        held_install *h = e->held;
        e->held = h->next;
        certificate_free(h->cert);
        free(h->id);
        free(h);
    }
    for (size_t i = 0; i < e->count; i++)
        managed_free(e, e->certs[i]);
    free(e->certs);
    free(e->running);
    json_decref(e->index);
    if (e->dir_busy)
        edge_http_cancel(e, &e->dir_tag);
    if (e->acct) {
        edge_http_cancel(e, &e->acct_tag);
        if (e->work)
            worker_cancel(e->work, &e->acct_tag);
        account_run_free(e->acct);
    }
    net_op_clear(&e->dir_op);
    if (e->own_sa)
        store_async_stop(e->c); /* every queued write reaches the table */
    /* A host transport's thread may still complete a call: it must not
     * wake the worker once the worker is gone. */
    if (e->http)
        http_async_set_wake(e->http, NULL, NULL);
    worker_free(e->work);
    http_async_free(e->http);
    free(e->status);
    free(e);
}

/* ---- declaring certificates ---- */

/* The same set of names, whatever the order and case. The stored side is
 * the "params" an order stored (the host's names as it gave them), not
 * the certificate's SANs, whose text form is the CA's (an IPv6 address,
 * say): comparing against those could order again for ever. */
static int has_name(char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_casecmp(names[i], name) == 0)
            return 1;
    return 0;
}

static int spec_names_equal(const issue_spec *a, const issue_spec *b)
{
    if (a->name_count != b->name_count)
        return 0;
    for (size_t i = 0; i < a->name_count; i++)
        if (!has_name(b->names, b->name_count, a->names[i]))
            return 0;
    return 1;
}

/* 1 if the stored certificate was ordered for other names than spec's;
 * 0 when it was, or when its storage kept no params to say. */
static int stored_names_differ(const issue_spec *spec, const json_t *params)
{
    const json_t *names = json_object_get(params, "names");
    if (!json_is_array(names))
        return 0;
    if (json_array_size(names) != spec->name_count)
        return 1;
    for (size_t i = 0; i < json_array_size(names); i++) {
        const char *n = json_string_value(json_array_get(names, i));
        if (!n || !has_name(spec->names, spec->name_count, n))
            return 1;
    }
    return 0;
}

/* By id, through a hash (jansson's object: already a dependency, O(1)). */
static managed *find(acme_engine *e, const char *id)
{
    json_t *at = json_object_get(e->index, id);
    if (!json_is_integer(at))
        return NULL;
    managed *m = e->certs[json_integer_value(at)];
    return m->removed ? NULL : m;
}

ACME_EXPORT int acme_engine_manage(acme_engine *e, const acme_issue_params *p)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    acme_client *c = e->c;
    int rc0 = reentry_refused(c, "acme_engine_manage");
    if (rc0)
        return rc0;
    result_reset(c);
    /* Validated exactly as acme_issue does, once: every order of this
     * certificate then reads the same spec. */
    int rc;
    issue_spec *spec = issue_spec_new(c, p, &rc);
    if (!spec)
        return rc;
    if (spec->profile && c->have_directory && (!c->profiles || !json_object_get(c->profiles, spec->profile))) {
        rc = client_fail(c, ACME_E_INVALID_ARG, "engine: the CA (%s) has no profile \"%s\"; choose one it offers",
                         c->directory_url, spec->profile);
        issue_spec_free(spec);
        return rc;
    }
    rc = chain_manage(e, spec);
    issue_spec_free(spec);
    engine_loop_sync(&e->loop, acme_engine_timeout_ms(e));
    return rc;
}

int engine_manage_spec(acme_engine *e, issue_spec *spec)
{
    acme_client *c = e->c;
    managed *m = find(e, spec->cert_id);
    if (m) {
        /* New names for a certificate that is valid: order now, not at
         * the old one's renewal point (it serves until then). */
        if (m->has_valid && !spec_names_equal(m->spec, spec)) {
            m->names_changed = 1;
            m->renew_at = 0;
            alog(c, ACME_LOG_INFO, "engine: %s: the names changed; ordering a certificate for them", m->id);
        }
        issue_spec_free(m->spec);
        m->spec = issue_spec_ref(spec);
        m->next_ms = 0;
        if (!m->run && !m->ari_busy)
            queue_now(e, m);
        return ACME_OK;
    }
    char *id = strdup(spec->cert_id);
    m = calloc(1, sizeof(*m));
    managed **grown = realloc(e->certs, (e->count + 1) * sizeof(*grown));
    if (!m || !grown || !id) {
        free(m);
        if (grown)
            e->certs = grown;
        free(id);
        return ACME_E_NOMEM;
    }
    e->certs = grown;
    m->id = id;
    m->spec = issue_spec_ref(spec);
    http_response_init(&m->ari.resp, 0);
    timerq_node_init(&m->due);
    m->run_tag.kind = T_RUN;
    m->ari_tag.kind = T_ARI;
    if (json_object_set_new(e->index, id, json_integer((json_int_t)e->count))) {
        free(id);
        issue_spec_free(m->spec);
        free(m);
        return ACME_E_NOMEM;
    }
    m->pos = e->count;
    e->certs[e->count++] = m;
    e->new_n++;
    queue_now(e, m);
    if (!e->one)
        alog(c, ACME_LOG_INFO, "engine: managing %s", id);
    return ACME_OK;
}

ACME_EXPORT int acme_engine_unmanage(acme_engine *e, const char *cert_id)
{
    if (!e || !cert_id)
        return ACME_E_INVALID_ARG;
    int rc = reentry_refused(e->c, "acme_engine_unmanage");
    if (rc)
        return rc;
    result_reset(e->c);
    managed *m = find(e, cert_id);
    if (!m)
        return e->next ? acme_engine_unmanage(e->next, cert_id)
                       : client_fail(e->c, ACME_E_NOT_FOUND, "engine: unmanage: no certificate \"%s\" is managed",
                                     cert_id);
    /* Stopping a run mid-way leaves its saved state: a later manage() of
     * the same id resumes it. */
    size_t i = m->pos;
    timerq_remove(&e->queue, &m->due);
    unpark(e, m);
    if (m->state == M_NEW) {
        e->new_n--;
        fetch_done(e, m);
    }
    if (m->ari_busy)
        e->ari_n--;
    json_object_del(e->index, m->id);
    managed_free(e, m);
    e->certs[i] = e->certs[--e->count];
    if (i < e->count) {
        e->certs[i]->pos = i;
        json_object_set_new(e->index, e->certs[i]->id, json_integer((json_int_t)i));
    }
    engine_loop_sync(&e->loop, acme_engine_timeout_ms(e));
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
    event_renewal(e->c, m->id, m->renew_at);
}

/* What the plan needs of m's current certificate. */
static void note_profile(managed *m, const char *profile)
{
    free(m->issued_profile);
    m->issued_profile = profile ? strdup(profile) : NULL;
}

static void note_facts(managed *m, const cert_info *ci)
{
    m->not_before = ci->not_before;
    m->not_after = ci->not_after;
    free(m->ari_id);
    m->ari_id = ci->ari_id ? strdup(ci->ari_id) : NULL;
    m->has_valid = m->not_after > (int64_t)time(NULL);
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
    note_facts(m, cert->info);
    int differ = m->has_valid && stored_names_differ(m->spec, cert->params);
    if (differ && !m->names_changed)
        alog(c, ACME_LOG_INFO, "engine: %s: the stored certificate was ordered for other names; it serves until "
             "one for the names now managed is issued", m->id);
    m->names_changed = differ;
    /* A renewal asks for the profile the certificate was issued under. */
    note_profile(m, json_str(cert->params, "profile"));
    if (install && m->has_valid && c->host.install) {
        result_reset(c);
        const char *cb = callback_enter(c, "install");
        int irc = c->host.install(c->host_ud, cert);
        callback_leave(c, cb);
        if (irc == ACME_OK)
            event_cert(c, ACME_EVENT_INSTALLED, m->id, m->not_after);
        if (irc && irc != ACME_E_PENDING)
            alog(c, ACME_LOG_WARNING, "engine: installing the stored certificate %s failed in the host (%s)%s%s",
                 m->id, acme_strerror(irc), c->last_error ? ": " : "", c->last_error ? c->last_error : "");
        /* A pending install of a stored certificate has nothing to wait
         * for; the object lives until the host says it is done (a failure
         * then is retried like one answered at once). */
        if (irc == ACME_E_PENDING) {
            held_install *h = calloc(1, sizeof(*h));
            if (h && (h->id = strdup(m->id))) {
                h->cert = cert;
                cert = NULL;
                h->next = e->held;
                e->held = h;
            } else {
                free(h);
            }
        }
        if (install_rc)
            *install_rc = irc == ACME_E_PENDING ? ACME_OK : irc;
    }
    certificate_free(cert);
    return ACME_OK;
}

static void one_finish(acme_engine *e, int rc)
{
    e->one->finished = 1;
    e->one->rc = rc;
}

/* A renewal asks for the profile the certificate was issued under when
 * the host names none, as long as the CA still offers it. NULL: use
 * m->spec as it is. */
static issue_spec *engine_kept_profile(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    if (m->spec->profile || !m->issued_profile)
        return NULL;
    if (!c->profiles || !json_object_get(c->profiles, m->issued_profile)) {
        alog(c, ACME_LOG_WARNING, "engine: %s was issued under profile \"%s\", which the CA no longer offers; "
             "renewing with the CA's default", m->id, m->issued_profile);
        return NULL;
    }
    int rc;
    issue_spec *s = issue_spec_with_profile(c, m->spec, m->issued_profile, &rc);
    result_reset(c);
    return s;
}

/* Rules of failing well (doc/engine.md "After a failure"): the
 * schedule and the paused signal are backoff.c's; this records one
 * failed order for the certificate's set of names and says how long to
 * wait. */
static uint64_t note_failure(acme_engine *e, managed *m, int rc)
{
    acme_client *c = e->c;
    m->failures++;
    if (rc == ACME_E_LOCKED) {
        /* Another process (or engine) is ordering it right now: nothing
         * failed at the CA, so nothing goes into the stored schedule that
         * every holder of the storage would then obey. This engine alone
         * looks again, doubling from retry_min_s (the holder is usually
         * done within seconds, and then its certificate is installed). */
        uint64_t w = (uint64_t)e->opt.retry_min_s << (m->failures - 1 < 20 ? m->failures - 1 : 20);
        return w > e->opt.retry_max_s ? e->opt.retry_max_s : w;
    }
    uint64_t wait = backoff_delay_s(m->failures, e->opt.retry_min_s, e->opt.retry_max_s);
    if (m->run && order_retry_after_s(m->run) > wait)
        wait = order_retry_after_s(m->run);
    char *url = NULL;
    if (m->run && backoff_paused(order_problem(m->run), &url)) {
        /* Retrying sooner cannot help: only the admin can unpause. */
        char *why = backoff_paused_sentence(m->spec->names[0], url);
        if (why) {
            set_error(m, rc, why);
            free(why);
        }
        free(url);
        if (wait < e->opt.retry_max_s)
            wait = e->opt.retry_max_s;
    }
    m->hold_until = (int64_t)time(NULL) + (int64_t)wait;
    backoff_rec r = { m->failures, m->hold_until, m->last_error };
    backoff_save(c, (const char *const *)m->spec->names, m->spec->name_count, &r);
    return wait;
}

static void note_success(acme_engine *e, managed *m)
{
    if (m->failures || m->hold_until)
        backoff_clear(e->c, (const char *const *)m->spec->names, m->spec->name_count);
    m->hold_until = 0;
}

/* At start: a schedule that survived a restart. */
static void restore_backoff(acme_engine *e, managed *m)
{
    backoff_rec r;
    if (backoff_load(e->c, (const char *const *)m->spec->names, m->spec->name_count, &r))
        return;
    m->failures = r.failures;
    m->hold_until = r.until;
    if (r.until > (int64_t)time(NULL)) {
        set_error(m, ACME_E_STATE, r.error);
        alog(e->c, ACME_LOG_INFO, "engine: %s failed %u time(s) in a row before; no order before the stored "
             "back-off ends", m->id, r.failures);
    }
    backoff_rec_free(&r);
}

/* At start: the order count and last success a restart would lose.
 * Never lower than what this process counted already (a certificate that
 * moved to this CA's engine brings its numbers along). */
static void restore_stats(acme_engine *e, managed *m)
{
    cert_stats st;
    /* The blocking calls have no status or metrics to show them. */
    if (e->one || cert_stats_load(e->c, m->id, &st))
        return;
    if (st.attempts > m->attempts)
        m->attempts = st.attempts;
    if (st.last_success > m->last_success)
        m->last_success = st.last_success;
}

static void save_stats(acme_engine *e, managed *m)
{
    if (e->one)
        return;
    cert_stats st = {m->attempts, m->last_success};
    cert_stats_save(e->c, m->id, &st);
}

static void start_order(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    int rc;
    result_reset(c);
    issue_spec *kept = engine_kept_profile(e, m);
    m->run = order_new_spec(c, kept ? kept : m->spec, &rc);
    issue_spec_free(kept);
    if (!m->run) {
        set_error(m, rc, c->last_error);
        event_failed(c, m->id, rc, m->last_error, NULL, NULL);
        m->state = M_FAILED;
        m->next_ms = now_ms() + (uint64_t)e->opt.retry_max_s * 1000u;
        if (e->one)
            one_finish(e, rc);
        return;
    }
    /* RFC 9773 §5: "replaces" only to a CA that speaks ARI (look_at waits
     * for the directory to know). */
    if (m->ari_id && m->has_valid && c->url_renewal_info)
        order_set_replaces(m->run, m->ari_id);
    /* Another host sharing the storage may store it first (doc/cluster.md);
     * acme_issue and a forced acme_renew order whatever is stored. */
    if (!e->one || e->one->mode == ONE_RENEW)
        order_set_recheck(m->run, m->not_after);
    set_running(e, m, 1);
    m->state = M_ORDERING;
    m->wait = W_NONE;
    m->ready = 1;
    m->attempts++;
    save_stats(e, m);
    m->run_started = now_ms();
    if (!e->one)
        alog(c, ACME_LOG_INFO, "engine: ordering %s (attempt %u)", m->id, m->attempts);
    else if (e->one->mode != ONE_ISSUE)
        alog(c, ACME_LOG_INFO, "renewing certificate %s%s", m->id, e->one->mode == ONE_RENEW_FORCE ? " (forced)" : "");
}

static void finish_order(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    int rc = order_result(m->run);
    if (e->one) {
        /* The call ends with this order: nothing to plan, nothing to
         * reload (parsing the new chain again is a tenth of an issuance). */
        result_reset(c);
        if (rc == ACME_OK || rc == ACME_E_CALLBACK)
            note_success(e, m);
        else {
            set_error(m, rc, order_error(m->run));
            note_failure(e, m, rc);
        }
        result_reset(c);
        one_finish(e, rc);
        e->one->ordered = 1;
        if (rc == ACME_OK)
            alog(c, ACME_LOG_INFO, "order for %s done in %llu ms", m->spec->names[0],
                 (unsigned long long)(now_ms() - m->run_started));
        order_hand_result(m->run);
        order_free(m->run);
        m->run = NULL;
        m->wait = W_NONE;
        set_running(e, m, 0);
        return;
    }
    /* The facts of what the run stored, else (it stored nothing: a publish
     * callback failed) those of the certificate stored before. */
    int known = 0;
    const cert_info *issued = NULL;
    if (rc == ACME_OK || rc == ACME_E_CALLBACK) {
        issued = order_stored_info(m->run);
        if (issued) {
            note_facts(m, issued);
            note_profile(m, order_profile(m->run));
            known = 1;
        } else {
            known = load_current(e, m, 0, NULL) == ACME_OK;
        }
    }
    if (rc == ACME_OK || (rc == ACME_E_CALLBACK && known && m->has_valid && m->not_after > 0)) {
        /* Issued for the names now managed, unless a manage() changed
         * them while this order ran. */
        if (issued)
            m->names_changed = !spec_names_equal(m->spec, order_spec(m->run));
        m->last_success = (int64_t)time(NULL);
        save_stats(e, m);
        note_success(e, m);
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
        /* The recommended schedule, never sooner than the CA asked. */
        uint64_t wait = note_failure(e, m, rc);
        want_move(e, m, rc, order_problem(m->run), m->last_error);
        m->next_ms = now_ms() + jitter_ms(wait * 1000u, e->opt.jitter_percent);
        m->state = m->has_valid ? M_FAILED : M_WAITING;
        alog(c, ACME_LOG_WARNING, "engine: %s failed (%s); next attempt in %llu s", m->id,
             m->last_error ? m->last_error : acme_strerror(rc), (unsigned long long)wait);
    }
    result_reset(c);
    order_free(m->run);
    m->run = NULL;
    m->wait = W_NONE;
    set_running(e, m, 0);
}

/* ---- driving ---- */

static void on_http_done(void *ud, void *cookie)
{
    acme_engine *e = ud;
    wake_tag *t = cookie;
    if (t->kind == T_DIRECTORY) {
        e->dir_busy = 2;
        return;
    }
    if (t->kind == T_ACCOUNT) {
        e->acct_ready = 1;
        return;
    }
    managed *m = t->kind == T_RUN ? MANAGED_OF(t, run_tag) : MANAGED_OF(t, ari_tag);
    if (t->kind == T_RUN && m->wait == W_HTTP)
        m->ready = 1;
    else if (t->kind == T_ARI)
        m->ari_busy = 2;
    queue_now(e, m);
}

/* The host answered ACME_E_PENDING and did not call acme_engine_done() in
 * time: the callback counts as failed, with a sentence the order's own
 * failure message carries. */
static void pending_expired(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    const void *obj = NULL;
    const char *what = order_pending_callback(m->run, &obj);
    if (!what) {
        m->ready = 1; /* nothing left to wait for */
        return;
    }
    long long waited = (long long)time(NULL) - (long long)m->pending_since;
    client_fail(c, ACME_E_TIMEOUT, "the host's %s callback for %s answered ACME_E_PENDING %lld s ago and has not "
                "called acme_engine_done(); the engine stopped waiting (the deadline is set with "
                "acme_engine_set_pending_timeout())", what, m->id, waited);
    order_external_done(m->run, obj, ACME_E_TIMEOUT);
    m->ready = 1;
}

static void drive_run(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    for (int n = 0; n < MAX_STEPS_PER_RUN; n++) {
        if (m->wait == W_TIME && now_ms() >= order_wake_at(m->run))
            m->ready = 1;
        if (m->wait == W_EXTERNAL && !m->ready && now_ms() >= m->pending_until)
            pending_expired(e, m);
        if (m->wait != W_NONE && !m->ready)
            return;
        m->wait = W_NONE;
        m->ready = 0;
        order_want w = order_step(m->run);
        switch (w) {
        case OW_CONTINUE:
            continue;
        case OW_HTTP:
            if (e->one) {
                /* Inline: the next step of the order can follow at once. */
                alog(c, ACME_LOG_DEBUG, "%s %s", order_exchange(m->run)->req.method, order_exchange(m->run)->req.url);
                net_exchange_perform(c, order_exchange(m->run));
                continue;
            }
            m->wait = W_HTTP;
            if (http_async_start(e->http, order_exchange(m->run), &m->run_tag) != ACME_OK) {
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
            if (!e->work || worker_submit(e->work, order_job(m->run), m) != ACME_OK) {
                work_job *j = order_job(m->run);
                j->fn(j); /* no thread to hand it to: do it here */
                continue;
            }
            m->wait = W_WORK;
            return;
        case OW_EXTERNAL:
            if (e->one) {
                order_refuse_pending(m->run);
                continue;
            }
            m->wait = W_EXTERNAL;
            m->pending_until = engine_loop_pending_deadline(&e->loop, now_ms());
            m->pending_since = (int64_t)time(NULL);
            return;
        case OW_DONE:
            finish_order(e, m);
            return;
        }
    }
}

/* ARI: ask when to renew; the answer sets renew_at. */
static void drive_ari(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    if (m->ari_busy == 1)
        return;
    if (m->ari_busy == 2) {
        set_ari_busy(e, m, 0);
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
            m->renew_at = cap_age(e, m, e->one ? start : ari_pick(start, end));
            char a[32], b[32], w[32];
            alog(c, ACME_LOG_INFO, "engine: %s: the CA suggests renewing between %s and %s; chose %s", m->id,
                 fmt_utc(start, a), fmt_utc(end, b), fmt_utc(m->renew_at, w));
            /* A window already past (e.g. the certificate was revoked): now. */
            if (end < now)
                m->renew_at = now;
        }
        free(why);
        event_renewal(c, m->id, m->renew_at);
        uint64_t until = ms_until_wall(m->renew_at);
        m->next_ms = now_ms() + (until < recheck ? until : recheck);
        if (until == 0)
            m->next_ms = now_ms();
        m->state = M_VALID;
        return;
    }
    if (ari_prepare(&m->ari, c->max_response, c->url_renewal_info, m->ari_id) == ACME_OK &&
        edge_http_start(e, &m->ari, &m->ari_tag) == ACME_OK)
        set_ari_busy(e, m, 1);
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
            if (edge_http_start(e, &e->dir_op.x, &e->dir_tag) == ACME_OK)
                e->dir_busy = 1;
            return;
        }
        if (e->dir_op.rc && e->one) {
            /* One call: decide by the lifetime rule; an order then tries
             * the directory itself and says why it failed. */
            e->dir_failed = 1;
            result_reset(c);
        } else if (e->dir_op.rc) {
            /* The CA is down at start-up: try again, without hammering it. */
            alog(c, ACME_LOG_WARNING, "engine: directory: %s; retrying in 10 s",
                 c->last_error ? c->last_error : acme_strerror(e->dir_op.rc));
            for (managed *m = e->wait_directory.head; m; m = m->park_next)
                want_move(e, m, e->dir_op.rc, c->problem, c->last_error);
            e->dir_next_ms = now_ms() + 10000;
            result_reset(c);
        }
        net_op_clear(&e->dir_op);
        return;
    }
    if (c->have_directory || e->dir_failed || now_ms() < e->dir_next_ms)
        return;
    if (net_op_directory(&e->dir_op, c))
        return;
    result_reset(c);
    if (net_op_next(c, &e->dir_op) == NET_HTTP && edge_http_start(e, &e->dir_op.x, &e->dir_tag) == ACME_OK)
        e->dir_busy = 1;
    else
        net_op_clear(&e->dir_op);
}

/* ---- the account step ---- */

static void account_finished(acme_engine *e)
{
    acme_client *c = e->c;
    int rc = account_run_result(e->acct);
    if (rc == ACME_OK) {
        alog(c, ACME_LOG_INFO, "engine: account %s ready", c->account_url ? c->account_url : "");
        account_run_free(e->acct);
        e->acct = NULL;
        e->acct_failures = 0;
        e->acct_wait = W_NONE;
        return; /* the step unparks the certificates waiting for it */
    }
    e->acct_failures++;
    uint64_t wait = (uint64_t)e->opt.retry_min_s << (e->acct_failures - 1 < 20 ? e->acct_failures - 1 : 20);
    if (wait > e->opt.retry_max_s)
        wait = e->opt.retry_max_s;
    if (account_run_retry_after_s(e->acct) > wait)
        wait = account_run_retry_after_s(e->acct);
    const char *why = account_run_error(e->acct);
    alog(c, ACME_LOG_WARNING, "engine: account: %s; next attempt in %llu s", why ? why : acme_strerror(rc),
         (unsigned long long)wait);
    /* The certificates waiting for it say why in their status. */
    for (managed *m = e->wait_directory.head; m; m = m->park_next) {
        set_error(m, rc, why);
        want_move(e, m, rc, NULL, why);
    }
    e->acct_wait = W_TIME;
    e->acct_next_ms = now_ms() + jitter_ms(wait * 1000u, e->opt.jitter_percent);
}

static void drive_account(acme_engine *e)
{
    acme_client *c = e->c;
    /* After the directory: it says whether terms and EAB are needed. */
    if (!e->acct || !c->have_directory)
        return;
    if (e->acct_wait == W_TIME) {
        if (now_ms() < e->acct_next_ms)
            return;
        int rc;
        account_run *again = account_run_again(e->acct, &rc);
        if (!again) {
            e->acct_next_ms = now_ms() + (uint64_t)e->opt.retry_min_s * 1000u;
            return;
        }
        account_run_free(e->acct);
        e->acct = again;
        e->acct_wait = W_NONE;
    }
    if (e->acct_wait != W_NONE && !e->acct_ready)
        return;
    e->acct_wait = W_NONE;
    e->acct_ready = 0;
    result_reset(c);
    for (int n = 0; n < MAX_STEPS_PER_RUN; n++) {
        order_want w = account_run_step(e->acct);
        if (w == OW_CONTINUE)
            continue;
        if (w == OW_HTTP) {
            e->acct_wait = W_HTTP;
            if (edge_http_start(e, account_run_exchange(e->acct), &e->acct_tag) != ACME_OK) {
                account_run_exchange(e->acct)->rc = ACME_E_NOMEM;
                e->acct_ready = 1;
            }
            return;
        }
        if (w == OW_WORK) {
            if (!e->work || worker_submit(e->work, account_run_job(e->acct), &e->acct_tag) != ACME_OK) {
                work_job *j = account_run_job(e->acct);
                j->fn(j);
                continue;
            }
            e->acct_wait = W_WORK;
            return;
        }
        /* OW_DONE (the step never waits for time or the host) */
        account_finished(e);
        result_reset(c);
        return;
    }
}

static int set_account_one(acme_engine *e, const acme_account_params *p);

ACME_EXPORT int acme_engine_set_account(acme_engine *e, const acme_account_params *p)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    if (e->cas && e->ca_index == 0 && p && account_params_check(e->c, "engine", p) == ACME_OK) {
        /* The chain: p's contacts and terms at every CA, each CA's own EAB. */
        for (acme_engine *x = e; x; x = x->next) {
            acme_account_params ap;
            ca_list_account_params(x->cas, x->ca_index, &ap);
            ap.contacts = p->contacts;
            ap.contact_count = p->contact_count;
            ap.agree_tos = p->agree_tos;
            int rc = set_account_one(x, &ap);
            if (rc)
                return rc;
        }
        return ACME_OK;
    }
    return set_account_one(e, p);
}

static int set_account_one(acme_engine *e, const acme_account_params *p)
{
    acme_client *c = e->c;
    int rc0 = reentry_refused(c, "acme_engine_set_account");
    if (rc0)
        return rc0;
    result_reset(c);
    int rc = account_params_check(c, "engine", p);
    if (rc)
        return rc;
    account_run *a = account_run_new(c, p, ACCOUNT_ENSURE, &rc);
    if (!a)
        return rc;
    if (e->acct) {
        /* New params replace a step in flight: it starts again with them. */
        edge_http_cancel(e, &e->acct_tag);
        if (e->work)
            worker_cancel(e->work, &e->acct_tag);
        account_run_free(e->acct);
    }
    e->acct = a;
    e->acct_wait = W_NONE;
    e->acct_ready = 0;
    e->acct_failures = 0;
    engine_loop_sync(&e->loop, acme_engine_timeout_ms(e));
    return ACME_OK;
}

static void look_at(acme_engine *e, managed *m)
{
    acme_client *c = e->c;
    if (m->run) {
        result_reset(c);
        drive_run(e, m);
        return;
    }
    if (m->state == M_NEW && e->own_sa && (m->fetch == F_NONE || m->fetch == F_ASKED)) {
        /* Its stored keys first (in a slice, off the loop): it is looked
         * at again when they are in memory (engine_fetched). */
        if (m->fetch == F_NONE) {
            park(e, m, P_FETCH);
            fetch_refill(e);
        }
        return;
    }
    if (m->state == M_NEW) {
        /* At start: hand the host what is already stored and valid. */
        int irc = ACME_OK;
        /* The blocking calls only order: installing is the host's own
         * business there. */
        load_current(e, m, !e->one, &irc);
        if (irc) {
            m->install_due = 1;
            m->failures = 1;
            set_error(m, ACME_E_CALLBACK, c->last_error ? c->last_error : acme_strerror(irc));
        }
        m->state = m->has_valid ? M_VALID : M_WAITING;
        e->new_n--;
        char until[32];
        if (m->has_valid && !e->one)
            alog(c, ACME_LOG_INFO, "engine: %s has a valid stored certificate (until %s)", m->id,
                 fmt_utc(m->not_after, until));
        m->renew_at = 0;
        m->next_ms = m->install_due ? now_ms() + (uint64_t)e->opt.retry_min_s * 1000u : 0;
        restore_backoff(e, m);
        restore_stats(e, m);
        fetch_done(e, m);
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
    int forced = e->one && e->one->mode != ONE_RENEW;
    if (forced && m->has_valid && m->ari_id && !c->have_directory && !e->dir_failed) {
        /* Whether to send "replaces" depends on the directory. */
        park(e, m, P_DIRECTORY);
        return;
    }
    if (!forced && m->has_valid && !m->names_changed && (m->state == M_VALID || m->state == M_FAILED)) {
        int ari = c->url_renewal_info && m->ari_id;
        if (m->renew_at == 0) {
            if (!c->have_directory && !e->dir_failed) {
                /* The directory says whether the CA speaks ARI. */
                park(e, m, P_DIRECTORY);
                return;
            }
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
    if (!forced && m->hold_until > (int64_t)time(NULL)) {
        /* Backing off after failures (kept across restarts); the forced
         * calls are the admin asking to try now. */
        if (e->one) {
            char when[32];
            client_fail(c, ACME_E_STATE, "renew: %s failed %u time(s) in a row, so no order before %s%s%s%s; "
                        "renew with force to try now", m->id, m->failures, fmt_utc(m->hold_until, when),
                        m->last_error ? " (last error: " : "", m->last_error ? m->last_error : "",
                        m->last_error ? ")" : "");
            one_finish(e, ACME_E_STATE);
            return;
        }
        if (m->state == M_VALID)
            m->state = M_FAILED;
        else if (!m->has_valid)
            m->state = M_WAITING;
        schedule_at_wall(m, m->hold_until);
        return;
    }
    if (want_back(e, m))
        return; /* renewed at the preferred CA instead (do_moves) */
    if (e->acct) {
        /* Every order needs the account the engine is getting. */
        park(e, m, P_DIRECTORY);
        return;
    }
    if (e->running_n >= e->opt.max_orders) {
        park(e, m, P_SLOT);
        return;
    }
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
        /* The cookie is the certificate; a cancelled run's jobs are never
         * collected (worker_cancel drops them). */
        for (size_t i = 0; i < n; i++) {
            if (done[i] == &e->acct_tag) {
                e->acct_ready = 1;
                continue;
            }
            managed *m = done[i];
            if (m->wait == W_WORK) {
                m->ready = 1;
                queue_now(e, m);
            }
        }
        if (n < 64)
            break;
    }
}

/* Where m goes after a look: back in the queue at the time it next needs
 * one, or nowhere while it waits for an event that re-queues it (an HTTP
 * completion, a worker result, acme_engine_done) or sits parked. */
static void reschedule(acme_engine *e, managed *m)
{
    if (m->parked)
        return;
    uint64_t now = now_ms();
    if (m->run) {
        if (m->wait == W_TIME)
            queue_at(e, m, order_wake_at(m->run));
        else if (m->wait == W_EXTERNAL && !m->ready && m->pending_until != UINT64_MAX)
            queue_at(e, m, m->pending_until); /* its deadline (acme_engine_done re-queues it sooner) */
        else if (m->ready || m->wait == W_NONE)
            queue_at(e, m, now);
        else
            timerq_remove(&e->queue, &m->due);
    } else if ((m->state == M_NEW && m->fetch != F_ASKED) || m->ari_busy == 2) {
        queue_at(e, m, now);
    } else if (m->ari_busy || m->state == M_NEW) {
        /* An ARI GET in flight; a new certificate's keys being read. */
        timerq_remove(&e->queue, &m->due);
    } else {
        queue_at(e, m, m->next_ms);
    }
}

/* The engine of one: a certificate with nothing to do now has nothing to
 * do in this call (a renewal not due yet; ONE_RENEW only, the forced
 * modes order at once). */
static void one_check(acme_engine *e, managed *m)
{
    if (e->one->finished || m->run || m->ari_busy || m->parked || m->state == M_NEW || m->state == M_ORDERING)
        return;
    if (m->has_valid && m->renew_at && ms_until_wall(m->renew_at) > 0) {
        char when[32];
        alog(e->c, ACME_LOG_INFO, "certificate %s is not due for renewal until %s", m->id,
             fmt_utc(m->renew_at, when));
        e->one->due = m->renew_at;
        one_finish(e, ACME_OK);
    }
}

static uint64_t us_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (uint64_t)(t1.tv_sec - t0->tv_sec) * 1000000u + (uint64_t)((t1.tv_nsec - t0->tv_nsec) / 1000);
}

/* The public calls clear the client's last error on entry; the drivers
 * that loop over step/timeout/fds (acme_engine_perform, the engine of
 * one) call these instead, so a sentence set in one step stays for the
 * call that loops. */
int engine_step_run(acme_engine *e)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    int rc = reentry_refused(e->c, "acme_engine_step");
    if (rc)
        return rc;
    if (e->cas && e->ca_index == 0) {
        /* The chain: each CA's engine, then the moves they asked for. */
        for (acme_engine *x = e; x; x = x->next)
            engine_step_one(x);
        for (acme_engine *x = e; x; x = x->next)
            do_moves(x);
        /* The host's one timer is the first engine's: the chain's earliest. */
        engine_loop_sync(&e->loop, acme_engine_timeout_ms(e));
        return ACME_OK;
    }
    return engine_step_one(e);
}

static int engine_step_one(acme_engine *e)
{
    e->over_budget = 0;
    e->step_no++;
    struct timespec ts0;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    if (e->work)
        collect_work(e); /* drains the pipe: take the storage thread's answers after it */
    if (e->own_sa)
        store_async_begin_step(e->c, engine_locked, engine_lock_lost, engine_fetched, e);
    engine_check_locks(e);
    edge_http_step(e);
    drive_directory(e);
    drive_account(e);
    if ((e->c->have_directory || e->dir_failed) && !e->acct)
        while (e->wait_directory.head) {
            managed *m = e->wait_directory.head;
            unpark(e, m);
            queue_now(e, m);
        }
    /* Only what is due, earliest first; each certificate at most once per
     * step, and no new one after the budget (the rest is still due, so
     * acme_engine_timeout_ms() says 0). */
    uint64_t now = now_ms();
    timerq_node *top;
    while ((top = timerq_top(&e->queue)) != NULL && top->due <= now) {
        managed *m = MANAGED_OF(top, due);
        if (m->seen_step == e->step_no || us_since(&ts0) > STEP_BUDGET_US) {
            e->over_budget = 1;
            break;
        }
        m->seen_step = e->step_no;
        timerq_remove(&e->queue, &m->due);
        int granted = m->slot_granted;
        m->slot_granted = 0;
        look_at(e, m);
        reschedule(e, m);
        if (e->one)
            one_check(e, m);
        /* A slot handed to a certificate that did not order goes on. */
        if (granted && !m->run)
            grant_slot(e);
    }
    if (e->own_sa)
        store_async_end_step(e->c);
    uint64_t us = us_since(&ts0);
    if (us > e->longest_step_us)
        e->longest_step_us = us;
    engine_loop_sync(&e->loop, engine_timeout_run(e));
    return ACME_OK;
}

ACME_EXPORT int acme_engine_step(acme_engine *e)
{
    /* Refused from inside a callback before anything is cleared. */
    if (e && !e->c->in_callback)
        result_reset(e->c);
    return engine_step_run(e);
}

static int engine_fds_run(acme_engine *e, struct pollfd *fds, size_t cap, size_t *n)
{
    if (!e || !n || (cap && !fds))
        return ACME_E_INVALID_ARG;
    if (e->next) {
        /* The chain: this CA's descriptors, then the next ones'. */
        size_t mine = 0, rest = 0;
        int rc = engine_fds_one(e, fds, cap, &mine);
        size_t used = rc == ACME_OK ? mine : 0;
        int rc2 = acme_engine_fds(e->next, fds ? fds + used : NULL, cap - used, &rest);
        *n = mine + rest;
        return rc ? rc : rc2;
    }
    return engine_fds_one(e, fds, cap, n);
}

static int engine_fds_one(acme_engine *e, struct pollfd *fds, size_t cap, size_t *n)
{
    if (!e->http)
        return ACME_E_STATE; /* the engine of one has nothing to watch */
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

ACME_EXPORT int acme_engine_fds(acme_engine *e, struct pollfd *fds, size_t cap, size_t *n)
{
    if (e)
        result_reset_entry(e->c);
    return engine_fds_run(e, fds, cap, n);
}

int engine_timeout_run(acme_engine *e)
{
    if (!e)
        return -1;
    int mine = engine_timeout_one(e);
    if (!e->next)
        return mine;
    int rest = acme_engine_timeout_ms(e->next);
    return mine < 0 ? rest : rest < 0 ? mine : mine < rest ? mine : rest;
}

static int engine_timeout_one(acme_engine *e)
{
    uint64_t now = now_ms();
    if (e->over_budget)
        return 0;
    long best = e->http ? http_async_timeout_ms(e->http) : e->inline_n ? 0 : -1;
#define CONSIDER(at) do { long d_ = (at) <= now ? 0 : (long)((at) - now); if (best < 0 || d_ < best) best = d_; } while (0)
    acme_client *c = e->c;
    if (!c->have_directory && !e->dir_busy && !e->dir_failed)
        CONSIDER(e->dir_next_ms);
    if (e->dir_busy == 2 || ((c->have_directory || e->dir_failed) && !e->acct && e->wait_directory.head))
        CONSIDER(now);
    if (e->acct && e->acct_wait == W_TIME)
        CONSIDER(e->acct_next_ms);
    else if (e->acct && c->have_directory && (e->acct_wait == W_NONE || e->acct_ready))
        CONSIDER(now);
    /* The earliest certificate in the queue; parked ones and those waiting
     * for an event are not in it (their event wakes the loop: an fd). */
    timerq_node *top = timerq_top(&e->queue);
    if (top)
        CONSIDER(top->due);
    /* The etcd table: look at its locks every second while orders run
     * (engine_check_locks). */
    if (c->etcd_storage && e->running_n)
        CONSIDER(now + 1000u);
#undef CONSIDER
    /* poll() takes an int; a day is far enough to look ahead. */
    if (best > 86400000L)
        best = 86400000L;
    return (int)best;
}

ACME_EXPORT int acme_engine_timeout_ms(acme_engine *e)
{
    if (e)
        result_reset_entry(e->c);
    return engine_timeout_run(e);
}

ACME_EXPORT int acme_engine_idle(const acme_engine *e)
{
    if (!e)
        return 1;
    /* Storage writes still queued count as work: a host that stops when
     * idle finds everything in its table. */
    return !e->dir_busy && !e->running_n && !e->ari_n && !e->new_n && !(e->acct && e->acct_wait != W_TIME) &&
           !(e->own_sa && store_async_pending(e->c->sa)) && acme_engine_idle(e->next);
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
    if (e->next) {
        int c2;
        if (!all_valid(e->next, &c2)) {
            if (ok || !*code)
                *code = c2;
            ok = 0;
        }
    }
    return ok;
}

ACME_EXPORT int acme_engine_perform(acme_engine *e, int timeout_ms)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    int rc = reentry_refused(e->c, "acme_engine_perform");
    if (rc)
        return rc;
    result_reset(e->c);
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
    struct pollfd *fds = NULL;
    size_t cap = 0;
    for (;;) {
        engine_step_run(e);
        /* all_valid() walks every certificate: only where the loop may
         * end, not after every step (100,000 certificates, thousands of
         * steps). */
        int code = ACME_OK, valid = 0;
        int wait = engine_timeout_run(e);
        uint64_t now = now_ms();
        int idle = acme_engine_idle(e);
        if (idle || now >= deadline)
            valid = all_valid(e, &code);
        if (idle) {
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
        if (engine_fds_run(e, fds, cap, &n) != ACME_OK) {
            struct pollfd *grown = realloc(fds, (n + 8) * sizeof(*fds));
            if (!grown) {
                free(fds);
                return ACME_E_NOMEM;
            }
            fds = grown;
            cap = n + 8;
            engine_fds_run(e, fds, cap, &n);
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

/* The host finished installing a stored certificate (load_current). */
static int held_done(acme_engine *e, const void *object, int result)
{
    held_install **pp = &e->held;
    while (*pp && (const void *)(*pp)->cert != object)
        pp = &(*pp)->next;
    held_install *h = *pp;
    if (!h)
        return 0;
    *pp = h->next;
    managed *m = find(e, h->id);
    if (m && result == ACME_OK) {
        event_cert(e->c, ACME_EVENT_INSTALLED, m->id, m->not_after);
    } else if (m) {
        alog(e->c, ACME_LOG_WARNING, "engine: installing the stored certificate %s failed in the host (%s)", m->id,
             acme_strerror(result));
        m->install_due = 1;
        m->failures++;
        set_error(m, ACME_E_CALLBACK, acme_strerror(result));
        uint64_t wait = (uint64_t)e->opt.retry_min_s << (m->failures - 1 < 20 ? m->failures - 1 : 20);
        if (wait > e->opt.retry_max_s)
            wait = e->opt.retry_max_s;
        m->next_ms = now_ms() + jitter_ms(wait * 1000u, e->opt.jitter_percent);
        queue_at(e, m, m->next_ms);
    }
    certificate_free(h->cert);
    free(h->id);
    free(h);
    return 1;
}

ACME_EXPORT int acme_engine_done(acme_engine *e, const void *object, int result)
{
    return engine_done_reason(e, object, result, NULL);
}

int engine_done_reason(acme_engine *e, const void *object, int result, const char *why)
{
    if (!e || !object)
        return ACME_E_INVALID_ARG;
    int rc = reentry_refused(e->c, "acme_engine_done");
    if (rc)
        return rc;
    result_reset(e->c);
    if (held_done(e, object, result))
        return ACME_OK;
    /* Only runs can wait for the host: at most max_orders to ask. */
    for (size_t i = 0; i < e->running_n; i++) {
        managed *m = e->running[i];
        if (order_external_done_why(m->run, object, result, why)) {
            if (m->wait == W_EXTERNAL) {
                m->ready = 1;
                queue_now(e, m);
                /* A host already in poll() with an earlier timeout must
                 * wake for this: the engine's first descriptor becomes
                 * readable. */
                if (e->work)
                    worker_wake(e->work);
                /* A host on the timer callback: a call now. */
                engine_loop_sync(&e->loop, 0);
            }
            return ACME_OK;
        }
    }
    return e->next ? engine_done_reason(e->next, object, result, why) : ACME_E_NOT_FOUND;
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

static json_t *status_entry(const managed *m)
{
    int host = m->run && m->wait == W_EXTERNAL && !m->ready;
    json_t *names = json_array();
    for (size_t i = 0; names && i < m->spec->name_count; i++)
        json_array_append_new(names, json_string(m->spec->names[i]));
    json_t *o = json_pack("{s:s,s:o,s:s,s:I,s:I}", "id", m->id, "names", names,
                          "state", state_name(m), "attempts", (json_int_t)m->attempts, "failures",
                          (json_int_t)m->failures);
    if (!o)
        return NULL;
    json_object_set_new(o, "not_after", m->has_valid ? json_integer(m->not_after) : json_null());
    json_object_set_new(o, "next_renewal", m->renew_at ? json_integer(m->renew_at) : json_null());
    json_object_set_new(o, "last_error", m->last_error ? json_string(m->last_error) : json_null());
    json_object_set_new(o, "waiting_on", host ? json_string("host") : json_null());
    json_object_set_new(o, "waiting_since", host ? json_integer(m->pending_since) : json_null());
    json_object_set_new(o, "last_success", m->last_success ? json_integer(m->last_success) : json_null());
    return o;
}

/* The whole chain's certificates in one sequence: the first CA's, then
 * the next's. */
static size_t chain_count(const acme_engine *e)
{
    size_t n = 0;
    for (; e; e = e->next)
        n += e->count;
    return n;
}

static json_t *chain_entry(acme_engine *e, size_t i)
{
    for (; e && i >= e->count; e = e->next)
        i -= e->count;
    if (!e)
        return NULL;
    json_t *o = status_entry(e->certs[i]);
    if (o && e->cas) {
        /* Which CA of the list it is with, and why (CA failover). */
        json_object_set_new(o, "ca", json_string(acme_ca_list_name(e->cas, e->ca_index)));
        json_object_set_new(o, "ca_reason", e->certs[i]->ca_reason ? json_string(e->certs[i]->ca_reason)
                                                                  : json_null());
    }
    return o;
}

static const char *status_of_range(acme_engine *e, size_t from, size_t to)
{
    json_t *arr = json_array();
    size_t total = chain_count(e);
    for (size_t i = from; i < to && i < total; i++)
        json_array_append_new(arr, chain_entry(e, i));
    free(e->status);
    e->status = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return e->status;
}

ACME_EXPORT const char *acme_engine_status_json(acme_engine *e)
{
    if (!e)
        return NULL;
    result_reset_entry(e->c);
    return status_of_range(e, 0, chain_count(e));
}

ACME_EXPORT const char *acme_engine_status_json_page(acme_engine *e, size_t offset, size_t limit, size_t *total)
{
    if (!e)
        return NULL;
    result_reset_entry(e->c);
    size_t count = chain_count(e);
    if (total)
        *total = count;
    size_t end = offset < count ? offset + (limit < count - offset ? limit : count - offset) : offset;
    return status_of_range(e, offset, end);
}

static acme_cert_state public_state(const managed *m)
{
    switch (m->state) {
    case M_VALID: return ACME_CERT_STATE_VALID;
    case M_ORDERING: return ACME_CERT_STATE_ORDERING;
    case M_WAITING: return ACME_CERT_STATE_WAITING;
    case M_FAILED: return ACME_CERT_STATE_FAILED;
    case M_NEW: break;
    }
    return ACME_CERT_STATE_NEW;
}

ACME_EXPORT int acme_engine_cert_status(acme_engine *e, const char *cert_id, acme_cert_status *out)
{
    if (e)
        result_reset_entry(e->c);
    if (!e || !cert_id || !out)
        return ACME_E_INVALID_ARG;
    if (out->size < sizeof(*out))
        return client_fail(e->c, ACME_E_INVALID_ARG, "engine: acme_cert_status.size is %zu, %zu expected: set "
                           ".size = sizeof(acme_cert_status)", out->size, sizeof(*out));
    managed *m = find(e, cert_id);
    if (!m)
        return e->next ? acme_engine_cert_status(e->next, cert_id, out) : ACME_E_NOT_FOUND;
    size_t size = out->size;
    memset(out, 0, sizeof(*out));
    out->size = size;
    out->state = public_state(m);
    out->not_after = m->has_valid ? m->not_after : 0;
    out->next_renewal = m->renew_at;
    out->attempts = m->attempts;
    out->failures = m->failures;
    out->last_code = m->last_error ? m->last_code : ACME_OK;
    out->last_error = m->last_error;
    return ACME_OK;
}

ACME_EXPORT uint64_t acme_engine_longest_step_us(const acme_engine *e)
{
    if (!e)
        return 0;
    uint64_t rest = acme_engine_longest_step_us(e->next);
    return e->longest_step_us > rest ? e->longest_step_us : rest;
}

/* ---- CA failover: the chain of engines of a CA list (engine_chain.h) ----
 *
 * Each CA of the list has its own engine (client, account, directory,
 * back-off records); a certificate is managed by exactly one of them. When
 * it fails at its CA in a way that is not the host's to fix
 * (ca_list_not_ours: outage, 5xx, rate limit, policy refusal), it moves to
 * the next CA's engine after the step, and the move is stored
 * (failover/<id>.json) so that a restart manages it there. It stays there
 * until that CA fails the same way; the last CA keeps it. */

acme_engine *engine_chain_next(const acme_engine *e)
{
    return e->next;
}

void engine_chain_first(acme_engine *e, acme_engine *first)
{
    e->first = first;
}

int engine_chain_link(acme_engine *e, acme_engine *next, acme_ca_list *l, size_t index)
{
    if (!e || !l)
        return ACME_E_INVALID_ARG;
    e->cas = l;
    e->ca_index = index;
    e->next = next;
    return ACME_OK;
}

static void want_move(acme_engine *e, managed *m, int rc, const acme_problem *p, const char *why)
{
    if (!e->next || m->move_reason || !ca_list_not_ours(rc, p))
        return;
    m->move_reason = xasprintf("CA %s: %s", acme_ca_list_name(e->cas, e->ca_index), why ? why : acme_strerror(rc));
}

/* A certificate that failed over is renewed at the first (preferred) CA
 * again: the reason it left may be gone (an outage, a rate limit). Once
 * per certificate: if the first CA fails the same way, the renewal falls
 * back down the list as before and is not sent back until the next one. */
static int want_back(acme_engine *e, managed *m)
{
    if (!e->cas || e->ca_index == 0 || !e->first || !m->has_valid || m->move_reason ||
        m->back_for == m->not_after)
        return 0;
    m->back_for = m->not_after;
    m->move_first = 1;
    m->move_reason = xasprintf("renewal: back at the preferred CA %s (the certificate was at %s)",
                               acme_ca_list_name(e->cas, 0), acme_ca_list_name(e->cas, e->ca_index));
    return m->move_reason != NULL;
}

static void do_moves(acme_engine *e)
{
    /* Backwards: unmanaging moves the last certificate into the hole. */
    for (size_t i = e->count; i-- > 0;) {
        if (i >= e->count)
            continue;
        managed *m = e->certs[i];
        if (!m->move_reason || m->run)
            continue;
        char *why = m->move_reason;
        m->move_reason = NULL;
        int back = m->move_first;
        acme_engine *to = back && e->first ? e->first : e->next;
        const char *name = acme_ca_list_name(to->cas, to->ca_index);
        issue_spec *spec = issue_spec_ref(m->spec);
        char *id = strdup(m->id);
        char *reason = back ? strdup(why) : xasprintf("failed over to %s: %s", name, why);
        alog(e->c, ACME_LOG_WARNING, "engine: %s moves to CA %s (%s)", m->id, name, why);
        /* Its history goes along: it is the certificate's, not the CA's. */
        unsigned attempts = m->attempts;
        int64_t last_success = m->last_success, back_for = m->back_for;
        acme_engine_unmanage(e, m->id);
        if (id && reason && engine_manage_spec(to, spec) == ACME_OK) {
            managed *n = find(to, id);
            if (n) {
                free(n->ca_reason);
                n->ca_reason = strdup(reason);
                n->attempts = attempts;
                n->last_success = last_success;
                n->back_for = back_for;
                save_stats(to, n);
            }
            /* A return to the preferred CA is no failover: stored (a
             * restart renews there too), but no FAILOVER event. */
            ca_list_record(e->cas, id, to->ca_index, reason, !back);
            if (!back)
                event_failover(to->c, id, name, e->c->directory_url, acme_ca_list_name(e->cas, e->ca_index),
                               reason);
        } else {
            alog(e->c, ACME_LOG_ERROR, "engine: %s could not move to CA %s (out of memory); it is no longer "
                 "managed: declare it again", id ? id : "?", name);
        }
        issue_spec_free(spec);
        free(id);
        free(reason);
        free(why);
    }
}

static int chain_manage(acme_engine *e, issue_spec *spec)
{
    if (!e->cas || e->ca_index != 0)
        return engine_manage_spec(e, spec);
    for (acme_engine *x = e; x; x = x->next)
        if (find(x, spec->cert_id))
            return engine_manage_spec(x, spec);
    /* Where a restart left it. */
    size_t at = 0;
    char *reason = NULL;
    acme_engine *to = e;
    if (ca_list_recorded(e->cas, spec->cert_id, &at, &reason) == 0)
        for (acme_engine *x = e; x; x = x->next)
            if (x->ca_index == at)
                to = x;
    int rc = engine_manage_spec(to, spec);
    managed *m = rc == ACME_OK ? find(to, spec->cert_id) : NULL;
    if (m && reason) {
        free(m->ca_reason);
        m->ca_reason = reason;
        reason = NULL;
    }
    free(reason);
    return rc;
}

/* ---- metrics.c's view (event_internal.h) ---- */

size_t engine_cert_count(const acme_engine *e)
{
    return chain_count(e);
}

void engine_cert_facts(const acme_engine *e, size_t i, metrics_cert *out)
{
    /* A CA list's engines one after the other (chain_count). */
    for (; e->next && i >= e->count; e = e->next)
        i -= e->count;
    const managed *m = e->certs[i];
    out->id = m->id;
    out->names = (const char *const *)m->spec->names;
    out->name_count = m->spec->name_count;
    out->state = state_name(m);
    out->not_after = m->has_valid ? m->not_after : 0;
    out->renew_at = m->renew_at;
    out->last_success = m->last_success;
    out->failures = m->failures;
    out->attempts = m->attempts;
}
