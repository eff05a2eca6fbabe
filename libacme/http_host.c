/* A host transport table driven without blocking a step; see http_host.h
 * and doc/engine.md ("Host transports"). */
#include "http_host.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* What the engine and the host's threads share. Counted: the http_host
 * holds one reference, every call not yet released one more, so a host
 * completing a call after acme_engine_free only releases it. */
typedef struct hub {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* queue not empty / stop / a call completed */
    int refs;
    int alive;                  /* the http_host still exists: wake it */
    void (*wake)(void *);
    void *wake_ud;
    int waking;                 /* completions calling wake() outside the lock */
    struct acme_http_call *queue, *queue_tail; /* blocking: not started yet */
    int stop;
} hub;

enum { C_QUEUED, C_RUNNING, C_DONE };

struct acme_http_call {
    hub *h;
    acme_http_request req;      /* points at the copies below */
    char *method, *url, *ctype;
    void *body;
    acme_http_response resp;
    http_exchange *x;           /* engine thread only */
    void *cookie;
    int rc;
    int state;                  /* under h->mu */
    int abandoned;              /* under h->mu: nobody collects it */
    struct acme_http_call *qnext;   /* blocking queue */
    struct acme_http_call *next;    /* http_host's list (engine thread) */
};

struct http_host {
    hub *h;
    acme_client *c;
    int (*perform)(void *, const acme_http_request *, acme_http_response *);
    int (*submit)(void *, const acme_http_request *, acme_http_response *, acme_http_call *);
    void *ud;
    pthread_t thread;
    int threaded;
    struct acme_http_call *calls;
    size_t busy;
};

static void hub_unref_locked(hub *h, int *gone)
{
    *gone = --h->refs == 0;
}

static void hub_free(hub *h)
{
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

static hub *hub_new(void)
{
    hub *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->refs = 1;
    h->alive = 1;
    return h;
}

static void call_free(struct acme_http_call *k)
{
    free(k->method);
    free(k->url);
    free(k->ctype);
    free(k->body);
    http_response_clear(&k->resp);
    buf_clear(&k->resp.body);
    free(k);
}

static struct acme_http_call *call_new(hub *h, const http_exchange *x)
{
    struct acme_http_call *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->h = h;
    k->req = x->req;
    k->req.size = sizeof(k->req);
    k->method = xstrdup(x->req.method);
    k->url = xstrdup(x->req.url);
    k->ctype = x->req.content_type ? xstrdup(x->req.content_type) : NULL;
    if (x->req.body_len) {
        k->body = malloc(x->req.body_len);
        if (k->body)
            memcpy(k->body, x->req.body, x->req.body_len);
    }
    http_response_init(&k->resp, x->resp.body.limit);
    if (!k->method || !k->url || (x->req.content_type && !k->ctype) || (x->req.body_len && !k->body)) {
        call_free(k);
        return NULL;
    }
    k->req.method = k->method;
    k->req.url = k->url;
    k->req.content_type = k->ctype;
    k->req.body = k->body;
    return k;
}

ACME_EXPORT int acme_http_call_complete(acme_http_call *k, int result)
{
    if (!k)
        return ACME_E_INVALID_ARG;
    hub *h = k->h;
    int gone = 0;
    pthread_mutex_lock(&h->mu);
    if (k->state == C_DONE) {
        pthread_mutex_unlock(&h->mu);
        return ACME_E_STATE;
    }
    k->rc = result;
    k->state = C_DONE;
    void (*wake)(void *) = NULL;
    void *wake_ud = NULL;
    if (k->abandoned) {
        call_free(k);
        hub_unref_locked(h, &gone);
    } else if (h->alive && h->wake) {
        wake = h->wake;
        wake_ud = h->wake_ud;
        h->waking++;
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (wake) {
        /* With the lock released: the loop it wakes collects at once
         * (taking h->mu), and a wake-up that preempted this thread while
         * it held the lock made that step sleep until this thread ran
         * again. The target stays valid while waking is counted:
         * http_host_set_wake and http_host_free wait for it to drop. */
        wake(wake_ud);
        pthread_mutex_lock(&h->mu);
        if (--h->waking == 0)
            pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    if (gone)
        hub_free(h);
    return ACME_OK;
}

/* The blocking table's thread: one request at a time, in order, as the
 * table always was called (a table need not be thread-safe). */
static void *run_blocking(void *arg)
{
    http_host *hh = arg;
    hub *h = hh->h;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->queue && !h->stop)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->stop)
            break;
        struct acme_http_call *k = h->queue;
        h->queue = k->qnext;
        if (!h->queue)
            h->queue_tail = NULL;
        k->state = C_RUNNING;
        pthread_mutex_unlock(&h->mu);
        int rc = hh->perform(hh->ud, &k->req, &k->resp);
        acme_http_call_complete(k, rc);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int http_host_new(acme_client *c, http_host **out)
{
    *out = NULL;
    http_host *hh = calloc(1, sizeof(*hh));
    if (!hh || !(hh->h = hub_new())) {
        free(hh);
        return ACME_E_NOMEM;
    }
    hh->c = c;
    hh->perform = c->transport.perform;
    hh->submit = c->transport.submit;
    hh->ud = c->transport_ud;
    if (!hh->submit) {
        if (pthread_create(&hh->thread, NULL, run_blocking, hh) != 0) {
            hub_free(hh->h);
            free(hh);
            return ACME_E_NOMEM;
        }
        hh->threaded = 1;
    }
    *out = hh;
    return ACME_OK;
}

void http_host_set_wake(http_host *hh, void (*wake)(void *), void *ud)
{
    hub *h = hh->h;
    pthread_mutex_lock(&h->mu);
    h->wake = wake;
    h->wake_ud = ud;
    /* A completion still calling the old target: it may be freed after
     * this returns. */
    while (h->waking)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

/* Engine thread, h->mu held: forget k (released now, or by its completion). */
static void drop_locked(http_host *hh, struct acme_http_call *k, int *unref)
{
    hub *h = hh->h;
    if (k->state == C_QUEUED) {
        struct acme_http_call **pp = &h->queue, *prev = NULL;
        while (*pp && *pp != k) {
            prev = *pp;
            pp = &(*pp)->qnext;
        }
        if (*pp) {
            *pp = k->qnext;
            if (h->queue_tail == k)
                h->queue_tail = prev;
        }
        call_free(k);
        (*unref)++;
    } else if (k->state == C_DONE) {
        call_free(k);
        (*unref)++;
    } else {
        k->abandoned = 1;
    }
}

void http_host_free(http_host *hh)
{
    if (!hh)
        return;
    hub *h = hh->h;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    h->alive = 0;
    pthread_cond_broadcast(&h->cv);
    while (h->waking)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    /* A request the thread is performing finishes first (as worker_free
     * waits for its job): its table must not be called after this. */
    if (hh->threaded)
        pthread_join(hh->thread, NULL);
    int unref = 0;
    pthread_mutex_lock(&h->mu);
    while (hh->calls) {
        struct acme_http_call *k = hh->calls;
        hh->calls = k->next;
        drop_locked(hh, k, &unref);
    }
    h->refs -= unref + 1;
    int gone = h->refs == 0;
    pthread_mutex_unlock(&h->mu);
    if (gone)
        hub_free(h);
    free(hh);
}

int http_host_start(http_host *hh, http_exchange *x, void *cookie)
{
    hub *h = hh->h;
    struct acme_http_call *k = call_new(h, x);
    if (!k)
        return ACME_E_NOMEM;
    k->x = x;
    k->cookie = cookie;
    pthread_mutex_lock(&h->mu);
    h->refs++;
    pthread_mutex_unlock(&h->mu);
    k->next = hh->calls;
    hh->calls = k;
    hh->busy++;
    alog(hh->c, ACME_LOG_DEBUG, "%s %s", x->req.method, x->req.url);
    if (hh->threaded) {
        pthread_mutex_lock(&h->mu);
        if (h->queue_tail)
            h->queue_tail->qnext = k;
        else
            h->queue = k;
        h->queue_tail = k;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
        return ACME_OK;
    }
    pthread_mutex_lock(&h->mu);
    k->state = C_RUNNING;
    pthread_mutex_unlock(&h->mu);
    int rc = hh->submit(hh->ud, &k->req, &k->resp, k);
    if (rc != ACME_OK) {
        /* Not started: no completion will come; report the failure at the
         * next collect like any other. */
        pthread_mutex_lock(&h->mu);
        k->rc = rc;
        k->state = C_DONE;
        pthread_mutex_unlock(&h->mu);
    }
    return ACME_OK;
}

void http_host_cancel(http_host *hh, void *cookie)
{
    int unref = 0;
    pthread_mutex_lock(&hh->h->mu);
    for (struct acme_http_call **pp = &hh->calls; *pp;) {
        struct acme_http_call *k = *pp;
        if (k->cookie == cookie) {
            *pp = k->next;
            hh->busy--;
            drop_locked(hh, k, &unref);
        } else {
            pp = &k->next;
        }
    }
    hh->h->refs -= unref;
    pthread_mutex_unlock(&hh->h->mu);
}

int http_host_ready(http_host *hh)
{
    int any = 0;
    pthread_mutex_lock(&hh->h->mu);
    for (struct acme_http_call *k = hh->calls; k && !any; k = k->next)
        any = k->state == C_DONE;
    pthread_mutex_unlock(&hh->h->mu);
    return any;
}

size_t http_host_busy(const http_host *hh)
{
    return hh->busy;
}

/* The call's answer into its exchange (the exchange's old response goes). */
static void hand_over(struct acme_http_call *k)
{
    http_exchange *x = k->x;
    http_response_clear(&x->resp);
    buf_clear(&x->resp.body);
    x->resp = k->resp;
    http_response_init(&k->resp, 0);
    x->rc = k->rc;
    if (x->rc == ACME_OK && x->resp.status < 100)
        x->rc = ACME_E_NETWORK;
}

void http_host_collect(http_host *hh, void (*done)(void *ud, void *cookie), void *ud)
{
    hub *h = hh->h;
    for (;;) {
        struct acme_http_call *k = NULL;
        pthread_mutex_lock(&h->mu);
        for (struct acme_http_call **pp = &hh->calls; *pp; pp = &(*pp)->next)
            if ((*pp)->state == C_DONE) {
                k = *pp;
                *pp = k->next;
                h->refs--;
                break;
            }
        pthread_mutex_unlock(&h->mu);
        if (!k)
            return;
        hh->busy--;
        hand_over(k);
        void *cookie = k->cookie;
        call_free(k);
        /* After the bookkeeping: done() may start new requests. */
        done(ud, cookie);
    }
}

/* ---- the blocking calls with a submit-only table ---- */

void http_host_perform_wait(acme_client *c, http_exchange *x)
{
    hub *h = hub_new();
    struct acme_http_call *k = h ? call_new(h, x) : NULL;
    if (!k) {
        if (h)
            hub_free(h);
        x->rc = ACME_E_NOMEM;
        return;
    }
    k->x = x;
    h->refs++;
    k->state = C_RUNNING;
    int rc = c->transport.submit(c->transport_ud, &k->req, &k->resp, k);
    pthread_mutex_lock(&h->mu);
    if (rc != ACME_OK) {
        k->rc = rc;
        k->state = C_DONE;
    }
    /* The caller asked to block: wait for the host's completion. */
    while (k->state != C_DONE)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    hand_over(k);
    call_free(k);
    hub_free(h);
}
