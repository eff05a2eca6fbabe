/* A module's own thread, for hosts that drive the engine
 * (acme_module_set_engine); see module_internal.h and doc/modules.md.
 *
 * Why a thread of libacme's and not one per module: a module's wait is a
 * plain blocking function (dns01 polls every authoritative server for
 * minutes), as simple to write as acmez's Wait; libacme owns the one
 * thread that calls it, so no module has to carry threads or an event
 * loop of its own, and the host's loop never runs a hook:
 *
 *   loop thread                          module thread
 *   acme_module_publish -> copy, queue   present; queue its wait behind
 *     answers ACME_E_PENDING               the other presents
 *                                        wait (minutes); cleanup if it failed
 *   fd readable <- done list ----------- outcome, its sentence, log lines
 *   acme_module_dispatch: log lines,
 *     acme_engine_done(e, original, rc)
 *
 * One thread per module handle calls its instance one hook at a time
 * (the module contract asks no more of a module). Presents run before
 * waits queued earlier, so challenges handed over together are all sent
 * before the first wait starts and propagate in parallel (today's engine
 * hands over one challenge of an order at a time). The hooks see a copy of the challenge or certificate:
 * the engine's object may go (an install of a stored certificate at
 * start is not waited for), the copy lives until the outcome is
 * delivered. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <acme/engine.h>
#include "module_internal.h"

typedef struct mod_job {
    struct mod_job *next;
    mod_op op;
    const void *original;        /* the engine's object: acme_engine_done gets this */
    acme_challenge *ch;          /* our copies: what the hooks see */
    acme_certificate *cert;
    int rc;
    char *why;
} mod_job;

typedef struct mod_line {
    struct mod_line *next;
    acme_log_level level;
    char *text;
} mod_line;

struct mod_async {
    acme_engine *e;
    pthread_t thread;
    int running;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mod_job *queue, *done;       /* oldest first */
    mod_line *lines;             /* oldest first */
    int pipe_rd, pipe_wr;
};

static _Thread_local const acme_module *on_thread;

static void append_job(mod_job **list, mod_job *j)
{
    j->next = NULL;
    while (*list)
        list = &(*list)->next;
    *list = j;
}

/* A wait goes behind every present already queued, before later ones. */
static void insert_wait(mod_job **list, mod_job *j)
{
    while (*list && (*list)->op == MOD_PUBLISH)
        list = &(*list)->next;
    j->next = *list;
    *list = j;
}

static void free_job(mod_job *j)
{
    if (!j)
        return;
    challenge_free(j->ch);
    certificate_free(j->cert);
    free(j->why);
    free(j);
}

static void wake(mod_async *a)
{
    char b = 1;
    /* Non-blocking: a full pipe is readable already. */
    ssize_t n = write(a->pipe_wr, &b, 1);
    (void)n;
}

static void *run(void *arg)
{
    acme_module *m = arg;
    mod_async *a = m->async;
    on_thread = m;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->queue && !a->stop)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->stop)
            break;
        mod_job *j = a->queue;
        a->queue = j->next;
        pthread_mutex_unlock(&a->mu);
        const void *obj = j->ch ? (const void *)j->ch : (const void *)j->cert;
        int needs_wait = 0;
        j->rc = module_run(m, j->op, obj, 0, &needs_wait, &j->why);
        pthread_mutex_lock(&a->mu);
        if (needs_wait) {
            j->op = MOD_WAIT;
            insert_wait(&a->queue, j);
            continue;
        }
        append_job(&a->done, j);
        /* The wake-up outside the lock: the host's loop it wakes takes
         * the lock at once (acme_module_dispatch) and must not find it
         * held by a thread its wake-up preempted. */
        pthread_mutex_unlock(&a->mu);
        wake(a);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int module_async_on_thread(const acme_module *m)
{
    return m && on_thread == m;
}

void module_async_log(acme_module *m, acme_log_level level, const char *msg)
{
    mod_async *a = m->async;
    mod_line *l = calloc(1, sizeof(*l));
    if (!l || !(l->text = strdup(msg ? msg : ""))) {
        free(l);
        return;
    }
    l->level = level;
    pthread_mutex_lock(&a->mu);
    mod_line **pp = &a->lines;
    while (*pp)
        pp = &(*pp)->next;
    *pp = l;
    pthread_mutex_unlock(&a->mu);
    wake(a); /* unlocked, as in run() */
}

int module_async_start(acme_module *m, acme_engine *e)
{
    if (m->async) {
        m->async->e = e;
        return ACME_OK;
    }
    mod_async *a = calloc(1, sizeof(*a));
    if (!a)
        return ACME_E_NOMEM;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
        int err = errno;
        free(a);
        return client_fail(m->client, ACME_E_NOMEM, "module %s: cannot make its wake-up pipe: %s", m->name,
                           strerror(err));
    }
    a->pipe_rd = p[0];
    a->pipe_wr = p[1];
    a->e = e;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    m->async = a;
    if (pthread_create(&a->thread, NULL, run, m) != 0) {
        m->async = NULL;
        close(p[0]);
        close(p[1]);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a);
        return client_fail(m->client, ACME_E_NOMEM, "module %s: cannot start its thread", m->name);
    }
    a->running = 1;
    return ACME_OK;
}

static void free_jobs(mod_job *j)
{
    while (j) {
        mod_job *n = j->next;
        free_job(j);
        j = n;
    }
}

static void free_lines(mod_line *l)
{
    while (l) {
        mod_line *n = l->next;
        free(l->text);
        free(l);
        l = n;
    }
}

int module_async_stopping(const acme_module *m)
{
    /* Read from the module's thread while the stopping thread holds the
     * handle still: the flag, not the struct, is what changes. */
    mod_async *a = m->async;
    return a && __atomic_load_n(&a->stop, __ATOMIC_ACQUIRE);
}

void module_async_stop(acme_module *m)
{
    mod_async *a = m->async;
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    __atomic_store_n(&a->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    /* A hook in progress finishes first; host->stopping now says 1, and
     * a long wait (dns01's) gives up at its next look. */
    if (a->running)
        pthread_join(a->thread, NULL);
    free_jobs(a->queue);
    free_jobs(a->done);
    free_lines(a->lines);
    close(a->pipe_rd);
    close(a->pipe_wr);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
    m->async = NULL;
}

static char *dup_str(const char *s, int *bad)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *bad = 1;
    return d;
}

static acme_challenge *copy_challenge(const acme_challenge *ch)
{
    acme_challenge *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    int bad = 0;
    c->type = ch->type;
    c->wildcard = ch->wildcard;
    c->validated = ch->validated;
    c->url = dup_str(ch->url, &bad);
    c->id_type = dup_str(ch->id_type, &bad);
    c->identifier = dup_str(ch->identifier, &bad);
    c->token = dup_str(ch->token, &bad);
    c->key_auth = dup_str(ch->key_auth, &bad);
    c->http_path = dup_str(ch->http_path, &bad);
    c->dns_name = dup_str(ch->dns_name, &bad);
    c->dns_value = dup_str(ch->dns_value, &bad);
    c->alpn_cert = dup_str(ch->alpn_cert, &bad);
    c->alpn_key = dup_str(ch->alpn_key, &bad);
    if (bad) {
        challenge_free(c);
        return NULL;
    }
    return c;
}

int module_async_queue(acme_module *m, mod_op op, const void *object)
{
    mod_async *a = m->async;
    mod_job *j = calloc(1, sizeof(*j));
    if (!j)
        return ACME_E_NOMEM;
    j->op = op;
    j->original = object;
    int rc = ACME_OK;
    if (op == MOD_INSTALL) {
        const acme_certificate *cert = object;
        rc = certificate_new(cert->id, cert->chain, cert->key, &j->cert);
    } else if (!(j->ch = copy_challenge(object))) {
        rc = ACME_E_NOMEM;
    }
    if (rc != ACME_OK) {
        free_job(j);
        return client_fail(m->client, rc, "module %s: cannot queue the call (%s)", m->name, acme_strerror(rc));
    }
    pthread_mutex_lock(&a->mu);
    append_job(&a->queue, j);
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return ACME_E_PENDING;
}

ACME_EXPORT int acme_module_fd(const acme_module *m)
{
    return m && m->async ? m->async->pipe_rd : -1;
}

ACME_EXPORT int acme_module_dispatch(acme_module *m)
{
    if (!m || !m->async)
        return 0;
    mod_async *a = m->async;
    char drain[64];
    while (read(a->pipe_rd, drain, sizeof(drain)) > 0)
        ;
    pthread_mutex_lock(&a->mu);
    mod_job *done = a->done;
    mod_line *lines = a->lines;
    a->done = NULL;
    a->lines = NULL;
    pthread_mutex_unlock(&a->mu);
    for (mod_line *l = lines; l; l = l->next)
        alog(m->client, l->level, "%s: %s", m->name, l->text);
    free_lines(lines);
    int n = 0;
    while (done) {
        mod_job *j = done;
        done = j->next;
        /* First: acme_engine_done starts by clearing the client's last
         * error (every public call does), and the module's sentence is
         * what this call leaves there. The engine keeps the sentence for
         * the step that takes the outcome: the order's failure (status,
         * log, event) quotes it. */
        int drc = a->e ? engine_done_reason(a->e, j->original, j->rc, j->why) : ACME_E_NOT_FOUND;
        if (j->why) {
            free(m->last_error);
            m->last_error = j->why;
            j->why = NULL;
            /* Logged here: the engine takes the outcome in a later step,
             * after other work may have replaced the client's last error. */
            alog(m->client, ACME_LOG_ERROR, "%s", m->last_error);
            module_client_error(m, m->last_error);
        }
        if (drc == ACME_E_NOT_FOUND && j->rc != ACME_OK)
            alog(m->client, ACME_LOG_WARNING, "module %s: no order waits for this outcome any more (%s)", m->name,
                 acme_strerror(j->rc));
        free_job(j);
        n++;
    }
    return n;
}
