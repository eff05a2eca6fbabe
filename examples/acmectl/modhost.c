/* A libacme module (acme_module_load), for `--dns-provider` and `run`.
 *
 * Modules are loaded on the program's one client (the one that places
 * the orders): libacme gives a module its storage and its log through it.
 * What the module does (answers challenges, installs certificates) comes
 * from acme_module_flags: the module is never opened a second time.
 *
 * Calls into one module are serialized (call_mu): modules are not
 * required to be thread-safe. `run` makes publish and unpublish
 * asynchronous: a worker thread per module takes them from a queue, so a
 * dns-01 provider waiting minutes for propagation never stalls the event
 * loop. A call from that worker leaves the client alone (libacme writes
 * the client's last error only on the thread that loaded the module); the
 * reason of a failure is the module's own, acme_module_last_error. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acmectl.h"

struct modhost {
    char *label;
    acme_module *m;
    int installs;
    pthread_mutex_t call_mu;       /* one call into the module at a time */

    /* The worker (run). */
    int worker_on;
    pthread_t thread;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    modjob *queued, *done;           /* oldest first */
    modjob *running;
    int stop;
    int notify_fd;
};

int modhost_load(const modhost_params *p, modhost **out, char *err, size_t errlen)
{
    *out = NULL;
    modhost *mh = calloc(1, sizeof(*mh));
    if (!mh || !(mh->label = strdup(p->label ? p->label : p->path))) {
        free(mh);
        bprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&mh->call_mu, NULL);
    pthread_mutex_init(&mh->qmu, NULL);
    pthread_cond_init(&mh->qcv, NULL);
    mh->notify_fd = -1;
    int rc = acme_module_load(p->client, p->path, p->config, &mh->m);
    if (rc != ACME_OK) {
        const char *why = acme_client_last_error(p->client);
        bprintf(err, errlen, "%s", *why ? why : acme_strerror(rc));
        modhost_free(mh);
        return -1;
    }
    mh->installs = (acme_module_flags(mh->m) & ACME_MODULE_INSTALLS) != 0;
    *out = mh;
    return 0;
}

void modhost_free(modhost *mh)
{
    if (!mh)
        return;
    modjob *left = modhost_stop_worker(mh);
    while (left) {
        modjob *n = left->next;
        free(left);
        left = n;
    }
    left = modhost_take_done(mh);
    while (left) {
        modjob *n = left->next;
        free(left);
        left = n;
    }
    acme_module_free(mh->m);
    pthread_mutex_destroy(&mh->call_mu);
    pthread_mutex_destroy(&mh->qmu);
    pthread_cond_destroy(&mh->qcv);
    free(mh->label);
    free(mh);
}

const char *modhost_label(const modhost *mh)
{
    return mh->label;
}

const char *modhost_name(const modhost *mh)
{
    return acme_module_name(mh->m);
}

int modhost_handles(const modhost *mh, acme_challenge_type t)
{
    return acme_module_handles(mh->m, t);
}

int modhost_installs(const modhost *mh)
{
    return mh->installs;
}

static const char *op_name(int op)
{
    return op == MODOP_PUBLISH ? "publish" : op == MODOP_UNPUBLISH ? "unpublish" : "install";
}

int modhost_call(modhost *mh, int op, const void *object, char *why, size_t whylen)
{
    why[0] = '\0';
    pthread_mutex_lock(&mh->call_mu);
    int rc = op == MODOP_PUBLISH ? acme_module_publish(mh->m, object)
             : op == MODOP_UNPUBLISH ? acme_module_unpublish(mh->m, object)
                                     : acme_module_install(mh->m, object);
    if (rc == ACME_E_PENDING) {
        /* A module cannot report completion to its host: a bug in it. */
        bprintf(why, whylen, "module %s: %s answered ACME_E_PENDING, which a module cannot finish later",
                modhost_name(mh), op_name(op));
        rc = ACME_E_CALLBACK;
    } else if (rc != ACME_OK && rc != ACME_E_DECLINED) {
        /* The module's own sentence: no other module's call replaced it. */
        const char *e = acme_module_last_error(mh->m);
        bprintf(why, whylen, "%s", e && *e ? e : acme_strerror(rc));
    }
    pthread_mutex_unlock(&mh->call_mu);
    return rc;
}

/* ---- the worker --------------------------------------------------------- */

static void append(modjob **list, modjob *j)
{
    j->next = NULL;
    while (*list)
        list = &(*list)->next;
    *list = j;
}

static void *worker(void *arg)
{
    modhost *mh = arg;
    pthread_mutex_lock(&mh->qmu);
    for (;;) {
        while (!mh->queued && !mh->stop)
            pthread_cond_wait(&mh->qcv, &mh->qmu);
        if (mh->stop)
            break;
        modjob *j = mh->queued;
        mh->queued = j->next;
        mh->running = j;
        pthread_mutex_unlock(&mh->qmu);
        j->rc = modhost_call(mh, j->op, j->object, j->why, sizeof(j->why));
        pthread_mutex_lock(&mh->qmu);
        mh->running = NULL;
        append(&mh->done, j);
        if (mh->notify_fd >= 0 && write(mh->notify_fd, "", 1) < 0) {
            /* The pipe is non-blocking: full means the loop is already woken. */
        }
    }
    pthread_mutex_unlock(&mh->qmu);
    return NULL;
}

int modhost_start_worker(modhost *mh, int notify_fd)
{
    if (mh->worker_on)
        return 0;
    mh->notify_fd = notify_fd;
    mh->stop = 0;
    if (pthread_create(&mh->thread, NULL, worker, mh) != 0)
        return -1;
    mh->worker_on = 1;
    return 0;
}

int modhost_queue(modhost *mh, int op, const void *object)
{
    if (!mh->worker_on)
        return -1;
    modjob *j = calloc(1, sizeof(*j));
    if (!j)
        return -1;
    j->mh = mh;
    j->op = op;
    j->object = object;
    pthread_mutex_lock(&mh->qmu);
    append(&mh->queued, j);
    pthread_cond_signal(&mh->qcv);
    pthread_mutex_unlock(&mh->qmu);
    return 0;
}

modjob *modhost_take_done(modhost *mh)
{
    pthread_mutex_lock(&mh->qmu);
    modjob *d = mh->done;
    mh->done = NULL;
    pthread_mutex_unlock(&mh->qmu);
    return d;
}

void modhost_running(modhost *mh, char *out, size_t len)
{
    pthread_mutex_lock(&mh->qmu);
    if (mh->running)
        bprintf(out, len, "%s", op_name(mh->running->op));
    else
        out[0] = '\0';
    pthread_mutex_unlock(&mh->qmu);
}

modjob *modhost_stop_worker(modhost *mh)
{
    if (!mh->worker_on)
        return NULL;
    pthread_mutex_lock(&mh->qmu);
    mh->stop = 1;
    modjob *left = mh->queued;
    mh->queued = NULL;
    pthread_cond_signal(&mh->qcv);
    pthread_mutex_unlock(&mh->qmu);
    pthread_join(mh->thread, NULL);
    mh->worker_on = 0;
    for (modjob *j = left; j; j = j->next)
        j->rc = ACME_E_STATE;
    return left;
}
