/* See slow_tables.h. */
#include "slow_tables.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- transport ---- */

typedef struct job {
    const acme_http_request *req;
    acme_http_response *resp;
    acme_http_call *call;
    struct job *next;
} job;

struct slow_transport {
    char *ca_file;
    unsigned delay_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    int stop;
    pthread_t *pool;
    unsigned threads;
    pthread_t loop;
    int have_loop;
    unsigned requests, on_loop, in_flight, peak;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    return acme_http_response_append_body(ud, p, sz * n) == ACME_OK ? sz * n : 0;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    size_t len = sz * n;
    const char *colon = memchr(p, ':', len);
    if (!colon || (len >= 5 && strncmp(p, "HTTP/", 5) == 0))
        return len;
    const char *v = colon + 1;
    const char *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    return acme_http_response_add_header(ud, p, (size_t)(colon - p), v, (size_t)(end - v)) == ACME_OK ? len : 0;
}

static void count(slow_transport *t, int delta)
{
    pthread_mutex_lock(&t->mu);
    if (delta > 0) {
        t->requests++;
        if (t->have_loop && pthread_equal(pthread_self(), t->loop))
            t->on_loop++;
        if (++t->in_flight > t->peak)
            t->peak = t->in_flight;
    } else {
        t->in_flight--;
    }
    pthread_mutex_unlock(&t->mu);
}

/* One request with libcurl easy, after the configured delay (the "RTT").
 * keep: a pool thread's handle, reused so its connection stays open (an
 * evented client keeps its connections too); NULL: a handle of its own. */
static int do_request(slow_transport *t, CURL *keep, const acme_http_request *req, acme_http_response *resp)
{
    sleep_ms(t->delay_ms);
    CURL *h = keep ? keep : curl_easy_init();
    if (!h)
        return ACME_E_NOMEM;
    if (keep)
        curl_easy_reset(h);
    struct curl_slist *hdrs = NULL;
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CAINFO, t->ca_file);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms ? req->timeout_ms : 30000u));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
        char ct[128];
        snprintf(ct, sizeof(ct), "Content-Type: %s", req->content_type ? req->content_type : "application/jose+json");
        hdrs = curl_slist_append(hdrs, ct);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    }
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    if (!keep)
        curl_easy_cleanup(h);
    if (cc != CURLE_OK) {
        acme_http_response_set_error(resp, curl_easy_strerror(cc));
        return cc == CURLE_OPERATION_TIMEDOUT ? ACME_E_TIMEOUT : ACME_E_NETWORK;
    }
    acme_http_response_set_status(resp, (int)status);
    return ACME_OK;
}

static int st_perform(void *ud, const acme_http_request *req, acme_http_response *resp)
{
    slow_transport *t = ud;
    count(t, 1);
    int rc = do_request(t, NULL, req, resp);
    count(t, -1);
    return rc;
}

static void *pool_run(void *arg)
{
    slow_transport *t = arg;
    CURL *keep = curl_easy_init();
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->head && !t->stop)
            pthread_cond_wait(&t->cv, &t->mu);
        if (!t->head)
            break;
        job *j = t->head;
        t->head = j->next;
        if (!t->head)
            t->tail = NULL;
        pthread_mutex_unlock(&t->mu);
        int rc = do_request(t, keep, j->req, j->resp);
        count(t, -1);
        acme_http_call_complete(j->call, rc);
        free(j);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    if (keep)
        curl_easy_cleanup(keep);
    return NULL;
}

static int st_submit(void *ud, const acme_http_request *req, acme_http_response *resp, acme_http_call *call)
{
    slow_transport *t = ud;
    job *j = calloc(1, sizeof(*j));
    if (!j)
        return ACME_E_NOMEM;
    j->req = req;
    j->resp = resp;
    j->call = call;
    count(t, 1); /* the submit itself is what runs on the caller's thread */
    pthread_mutex_lock(&t->mu);
    if (t->tail)
        t->tail->next = j;
    else
        t->head = j;
    t->tail = j;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return ACME_OK;
}

slow_transport *slow_transport_new(const char *ca_file, unsigned delay_ms, unsigned threads)
{
    slow_transport *t = calloc(1, sizeof(*t));
    if (!t || !(t->ca_file = strdup(ca_file))) {
        free(t);
        return NULL;
    }
    t->delay_ms = delay_ms;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->pool = threads ? calloc(threads, sizeof(*t->pool)) : NULL;
    for (unsigned i = 0; i < threads; i++)
        if (pthread_create(&t->pool[i], NULL, pool_run, t) == 0)
            t->threads++;
    return t;
}

void slow_transport_free(slow_transport *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    /* Threads finish what is queued first: every call gets its completion. */
    for (unsigned i = 0; i < t->threads; i++)
        pthread_join(t->pool[i], NULL);
    free(t->pool);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->ca_file);
    free(t);
}

acme_transport_ops slow_transport_ops(int mode)
{
    acme_transport_ops o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    if (mode == 0) {
        o.submit = st_submit;
    } else {
        o.perform = st_perform;
        if (mode == 2) /* what a host built against 1.1 passes */
            o.size = offsetof(acme_transport_ops, perform) + sizeof(o.perform);
    }
    return o;
}

void slow_transport_set_loop_thread(slow_transport *t, pthread_t loop)
{
    pthread_mutex_lock(&t->mu);
    t->loop = loop;
    t->have_loop = 1;
    pthread_mutex_unlock(&t->mu);
}

#define GETTER(type, name, field) \
    unsigned name(type *x) { pthread_mutex_lock(&x->mu); unsigned v = x->field; pthread_mutex_unlock(&x->mu); return v; }
GETTER(slow_transport, slow_transport_requests, requests)
GETTER(slow_transport, slow_transport_on_loop, on_loop)
GETTER(slow_transport, slow_transport_peak_in_flight, peak)

/* ---- storage ---- */

typedef struct item {
    char *key;
    char *val;
    size_t len;
    struct item *next;
} item;

typedef struct lockent {
    char *name;
    struct lockent *next;
} lockent;

typedef struct sjob {
    const acme_storage_request *req;
    acme_storage_call *call;
    struct sjob *next;
} sjob;

struct slow_store {
    pthread_mutex_t mu;
    /* the asynchronous face: a thread of the "database client" */
    pthread_cond_t cv;
    sjob *head, *tail;
    pthread_t thread;
    int threaded, stop;
    unsigned submits;
    unsigned delay_ms;
    item *items;
    lockent *locks;
    pthread_t loop;
    int have_loop;
    unsigned writes, calls, on_loop;
    char *get_needle;
    unsigned gets;
};

static void enter(slow_store *s, int write)
{
    pthread_mutex_lock(&s->mu);
    s->calls++;
    if (write)
        s->writes++;
    if (s->have_loop && pthread_equal(pthread_self(), s->loop))
        s->on_loop++;
    pthread_mutex_unlock(&s->mu);
    if (write)
        sleep_ms(s->delay_ms); /* a durable write: an fsync, a database commit */
}

static item *find(slow_store *s, const char *key)
{
    for (item *i = s->items; i; i = i->next)
        if (strcmp(i->key, key) == 0)
            return i;
    return NULL;
}

static int ss_get(void *ud, const char *key, acme_buffer *out)
{
    slow_store *s = ud;
    enter(s, 0);
    pthread_mutex_lock(&s->mu);
    item *i = find(s, key);
    int rc = i ? acme_buffer_append(out, i->val, i->len) : ACME_E_NOT_FOUND;
    if (s->get_needle && strstr(key, s->get_needle))
        s->gets++;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int ss_put(void *ud, const char *key, const void *data, size_t len, unsigned flags)
{
    (void)flags;
    slow_store *s = ud;
    enter(s, 1);
    char *v = malloc(len ? len : 1);
    if (!v)
        return ACME_E_NOMEM;
    memcpy(v, data, len);
    pthread_mutex_lock(&s->mu);
    item *i = find(s, key);
    if (!i && (i = calloc(1, sizeof(*i))) != NULL) {
        if ((i->key = strdup(key)) != NULL) {
            i->next = s->items;
            s->items = i;
        } else {
            free(i);
            i = NULL;
        }
    }
    int rc = ACME_E_NOMEM;
    if (i) {
        free(i->val);
        i->val = v;
        i->len = len;
        v = NULL;
        rc = ACME_OK;
    }
    pthread_mutex_unlock(&s->mu);
    free(v);
    return rc;
}

static int ss_remove(void *ud, const char *key)
{
    slow_store *s = ud;
    enter(s, 1);
    pthread_mutex_lock(&s->mu);
    for (item **pp = &s->items; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->key, key) == 0) {
            item *i = *pp;
            *pp = i->next;
            free(i->key);
            free(i->val);
            free(i);
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return ACME_OK;
}

static int ss_list(void *ud, const char *prefix, acme_storage_list_cb cb, void *cbdata)
{
    slow_store *s = ud;
    enter(s, 0);
    /* Copy first: cb may call back into the table. */
    pthread_mutex_lock(&s->mu);
    size_t n = 0, k = 0;
    for (item *i = s->items; i; i = i->next)
        n++;
    char **keys = calloc(n ? n : 1, sizeof(*keys));
    for (item *i = s->items; keys && i; i = i->next)
        if (strncmp(i->key, prefix, strlen(prefix)) == 0)
            keys[k++] = strdup(i->key);
    pthread_mutex_unlock(&s->mu);
    if (!keys)
        return ACME_E_NOMEM;
    int stop = 0;
    for (size_t i = 0; i < k; i++) {
        if (!stop && keys[i])
            stop = cb(cbdata, keys[i]);
        free(keys[i]);
    }
    free(keys);
    return ACME_OK;
}

static int ss_lock(void *ud, const char *name, unsigned lease)
{
    (void)lease;
    slow_store *s = ud;
    enter(s, 1);
    pthread_mutex_lock(&s->mu);
    int rc = ACME_OK;
    for (lockent *l = s->locks; l; l = l->next)
        if (strcmp(l->name, name) == 0)
            rc = ACME_E_LOCKED;
    if (!rc) {
        lockent *l = calloc(1, sizeof(*l));
        if (l && (l->name = strdup(name))) {
            l->next = s->locks;
            s->locks = l;
        } else {
            free(l);
            rc = ACME_E_NOMEM;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int ss_unlock(void *ud, const char *name)
{
    slow_store *s = ud;
    enter(s, 1);
    pthread_mutex_lock(&s->mu);
    int rc = ACME_E_STATE;
    for (lockent **pp = &s->locks; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0) {
            lockent *l = *pp;
            *pp = l->next;
            free(l->name);
            free(l);
            rc = ACME_OK;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int ss_refresh(void *ud, const char *name, unsigned lease)
{
    (void)lease;
    slow_store *s = ud;
    enter(s, 1);
    pthread_mutex_lock(&s->mu);
    int rc = ACME_E_LOCKED;
    for (lockent *l = s->locks; l; l = l->next)
        if (strcmp(l->name, name) == 0)
            rc = ACME_OK;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

slow_store *slow_store_new(unsigned write_delay_ms)
{
    slow_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->delay_ms = write_delay_ms;
    return s;
}

static int list_into_call(void *cbdata, const char *key)
{
    return acme_storage_call_list_key(cbdata, key) != ACME_OK;
}

static void *store_run(void *arg)
{
    slow_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head)
            break;
        sjob *j = s->head;
        s->head = j->next;
        if (!s->head)
            s->tail = NULL;
        pthread_mutex_unlock(&s->mu);
        const acme_storage_request *r = j->req;
        int rc = ACME_E_UNSUPPORTED;
        switch (r->op) {
        case ACME_STORAGE_OP_GET: rc = ss_get(s, r->key, r->out); break;
        case ACME_STORAGE_OP_PUT: rc = ss_put(s, r->key, r->data, r->len, r->flags); break;
        case ACME_STORAGE_OP_REMOVE: rc = ss_remove(s, r->key); break;
        case ACME_STORAGE_OP_LIST: rc = ss_list(s, r->key, list_into_call, j->call); break;
        case ACME_STORAGE_OP_LOCK: rc = ss_lock(s, r->key, r->lease_seconds); break;
        case ACME_STORAGE_OP_UNLOCK: rc = ss_unlock(s, r->key); break;
        case ACME_STORAGE_OP_REFRESH: rc = ss_refresh(s, r->key, r->lease_seconds); break;
        }
        acme_storage_call_complete(j->call, rc);
        free(j);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int ss_submit(void *ud, const acme_storage_request *req, acme_storage_call *call)
{
    slow_store *s = ud;
    sjob *j = calloc(1, sizeof(*j));
    if (!j)
        return ACME_E_NOMEM;
    j->req = req;
    j->call = call;
    pthread_mutex_lock(&s->mu);
    s->submits++;
    if (!s->threaded && pthread_create(&s->thread, NULL, store_run, s) == 0)
        s->threaded = 1;
    if (!s->threaded) {
        pthread_mutex_unlock(&s->mu);
        free(j);
        return ACME_E_NOMEM;
    }
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return ACME_OK;
}

acme_storage_ops slow_store_async_ops(void)
{
    acme_storage_ops o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.submit = ss_submit;
    return o;
}

void slow_store_free(slow_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->threaded)
        pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    free(s->get_needle);
    while (s->items) {
        item *i = s->items;
        s->items = i->next;
        free(i->key);
        free(i->val);
        free(i);
    }
    while (s->locks) {
        lockent *l = s->locks;
        s->locks = l->next;
        free(l->name);
        free(l);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

acme_storage_ops slow_store_ops(void)
{
    acme_storage_ops o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.get = ss_get;
    o.put = ss_put;
    o.remove = ss_remove;
    o.list = ss_list;
    o.lock = ss_lock;
    o.unlock = ss_unlock;
    o.refresh = ss_refresh;
    return o;
}

void slow_store_set_loop_thread(slow_store *s, pthread_t loop)
{
    pthread_mutex_lock(&s->mu);
    s->loop = loop;
    s->have_loop = 1;
    pthread_mutex_unlock(&s->mu);
}

GETTER(slow_store, slow_store_writes, writes)
GETTER(slow_store, slow_store_calls, calls)
GETTER(slow_store, slow_store_on_loop, on_loop)
GETTER(slow_store, slow_store_submits, submits)

size_t slow_store_clone(slow_store *s, const char *from, const char *to)
{
    size_t n = 0, fl = strlen(from), tl = strlen(to);
    pthread_mutex_lock(&s->mu);
    item *made = NULL;
    for (item *i = s->items; i; i = i->next) {
        const char *at = strstr(i->key, from);
        if (!at)
            continue;
        item *c = calloc(1, sizeof(*c));
        size_t kl = strlen(i->key) - fl + tl;
        if (!c || !(c->key = malloc(kl + 1)) || !(c->val = malloc(i->len ? i->len : 1))) {
            if (c)
                free(c->key);
            free(c);
            break;
        }
        size_t pre = (size_t)(at - i->key);
        memcpy(c->key, i->key, pre);
        memcpy(c->key + pre, to, tl);
        strcpy(c->key + pre + tl, at + fl);
        memcpy(c->val, i->val, i->len);
        c->len = i->len;
        c->next = made;
        made = c;
        n++;
    }
    while (made) {
        item *c = made;
        made = c->next;
        c->next = s->items;
        s->items = c;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

void slow_store_count_gets(slow_store *s, const char *needle)
{
    pthread_mutex_lock(&s->mu);
    free(s->get_needle);
    s->get_needle = needle ? strdup(needle) : NULL;
    s->gets = 0;
    pthread_mutex_unlock(&s->mu);
}

unsigned slow_store_gets(slow_store *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->gets;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t slow_store_count(slow_store *s, const char *needle)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (item *i = s->items; i; i = i->next)
        n += strstr(i->key, needle) != NULL;
    pthread_mutex_unlock(&s->mu);
    return n;
}
