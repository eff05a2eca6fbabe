/* The worker thread; see worker.h. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <acme/error.h>

typedef struct item {
    work_job *job;
    void *cookie;
    struct item *next;
} item;

struct worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* queue not empty, or stopping, or running job done */
    item *queue, *queue_tail;
    item *done;
    void *running;          /* cookie of the job being run */
    int stop;
    int pipe_rd, pipe_wr;
};

static void *run(void *arg)
{
    worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->queue && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        item *it = w->queue;
        w->queue = it->next;
        if (!w->queue)
            w->queue_tail = NULL;
        w->running = it->cookie;
        pthread_mutex_unlock(&w->mu);
        it->job->fn(it->job);
        pthread_mutex_lock(&w->mu);
        w->running = NULL;
        it->next = w->done;
        w->done = it;
        pthread_cond_broadcast(&w->cv);
        /* One byte per job; a full pipe already says "look". Written with
         * the lock released: the byte wakes the host's loop, which may
         * preempt this thread on its own core and would then block in
         * worker_collect on a lock held by a thread that cannot run. The
         * job is in done already, so a collect before the byte finds it
         * and the byte only costs an empty look. */
        pthread_mutex_unlock(&w->mu);
        char b = 1;
        ssize_t n = write(w->pipe_wr, &b, 1);
        (void)n;
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int worker_new(worker **out)
{
    *out = NULL;
    worker *w = calloc(1, sizeof(*w));
    if (!w)
        return ACME_E_NOMEM;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(w);
        return ACME_E_NOMEM;
    }
    w->pipe_rd = p[0];
    w->pipe_wr = p[1];
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        close(p[0]);
        close(p[1]);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return ACME_E_NOMEM;
    }
    *out = w;
    return ACME_OK;
}

static void free_list(item *it)
{
    while (it) {
        item *next = it->next;
        free(it);
        it = next;
    }
}

void worker_free(worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    free_list(w->queue);
    free_list(w->done);
    close(w->pipe_rd);
    close(w->pipe_wr);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

int worker_submit(worker *w, work_job *job, void *cookie)
{
    item *it = calloc(1, sizeof(*it));
    if (!it)
        return ACME_E_NOMEM;
    it->job = job;
    it->cookie = cookie;
    pthread_mutex_lock(&w->mu);
    if (w->queue_tail)
        w->queue_tail->next = it;
    else
        w->queue = it;
    w->queue_tail = it;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return ACME_OK;
}

int worker_fd(const worker *w)
{
    return w->pipe_rd;
}

void worker_wake(worker *w)
{
    char b = 1;
    /* A full pipe is readable already: nothing lost. */
    ssize_t k = write(w->pipe_wr, &b, 1);
    (void)k;
}

size_t worker_collect(worker *w, void **cookies, size_t cap)
{
    char drain[64];
    while (read(w->pipe_rd, drain, sizeof(drain)) > 0)
        ;
    size_t n = 0;
    pthread_mutex_lock(&w->mu);
    while (w->done && n < cap) {
        item *it = w->done;
        w->done = it->next;
        cookies[n++] = it->cookie;
        free(it);
    }
    if (w->done) {
        /* More than cap: make sure the host looks again. */
        char b = 1;
        ssize_t k = write(w->pipe_wr, &b, 1);
        (void)k;
    }
    pthread_mutex_unlock(&w->mu);
    return n;
}

static void drop_cookie(item **list, item **tail, void *cookie)
{
    item *prev = NULL;
    for (item *it = *list; it;) {
        item *next = it->next;
        if (it->cookie == cookie) {
            if (prev)
                prev->next = next;
            else
                *list = next;
            if (tail && *tail == it)
                *tail = prev;
            free(it);
        } else {
            prev = it;
        }
        it = next;
    }
}

void worker_cancel(worker *w, void *cookie)
{
    pthread_mutex_lock(&w->mu);
    drop_cookie(&w->queue, &w->queue_tail, cookie);
    while (w->running == cookie)
        pthread_cond_wait(&w->cv, &w->mu);
    drop_cookie(&w->done, NULL, cookie);
    pthread_mutex_unlock(&w->mu);
}
