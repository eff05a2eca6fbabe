/* mod_acme: certificate files written off lighttpd's loop.
 *
 * Installing a certificate writes the chain and the key beside each other
 * and fsyncs both and their directory (macme_install_files): 1 to 35 ms on
 * a real disk, all of it inside an engine step, and so inside the
 * lighttpd loop that serves every connection of the worker. The engine
 * lets the install callback answer ACME_E_PENDING; this file is the other
 * half: one thread takes the writes in order (two installs of one
 * certificate never race) and an eventfd in the core's epoll set says
 * when results wait, which the loop thread collects and hands to the
 * engine (acme_engine_done). Copies of the PEM texts go to the thread;
 * the key's copy is zeroed when the job ends. */
#include "macme.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct job {
    struct job *next;
    const macme_cert *cert;
    const void *tag;
    int64_t not_after;
    char *chain, *key;
    size_t key_len;
    int rc, changed;
    char err[MACME_ERRLEN];
} job;

struct macme_installer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *queue, **queue_tail;   /* oldest first */
    job *done, **done_tail;
    size_t busy;              /* submitted, not yet collected */
    int stop;
    int efd;
};

static void job_free(job *j)
{
    if (!j)
        return;
    free(j->chain);
    if (j->key) {
        explicit_bzero(j->key, j->key_len);
        free(j->key);
    }
    free(j);
}

static void *run(void *arg)
{
    macme_installer *in = arg;
    pthread_mutex_lock(&in->mu);
    for (;;) {
        while (!in->queue && !in->stop)
            pthread_cond_wait(&in->cv, &in->mu);
        job *j = in->queue;
        if (!j)
            break; /* stop, and nothing left: queued writes are never dropped */
        in->queue = j->next;
        if (!in->queue)
            in->queue_tail = &in->queue;
        pthread_mutex_unlock(&in->mu);
        j->rc = macme_install_files(j->cert, j->chain, j->key, &j->changed, j->err, sizeof(j->err)) ? -1 : 0;
        /* The key is on disk (or not): the copy has done its work. */
        explicit_bzero(j->key, j->key_len);
        pthread_mutex_lock(&in->mu);
        j->next = NULL;
        *in->done_tail = j;
        in->done_tail = &j->next;
        /* Said with the lock released: the eventfd wakes lighttpd's loop,
         * which takes the lock at once (macme_installer_collect) and would
         * block there if its wake-up preempted this thread holding it. */
        pthread_mutex_unlock(&in->mu);
        uint64_t one = 1;
        if (write(in->efd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
            /* Cannot happen with an eventfd below its maximum; collect
             * still finds the job at the next step. */
        }
        pthread_mutex_lock(&in->mu);
    }
    pthread_mutex_unlock(&in->mu);
    return NULL;
}

int macme_installer_new(macme_installer **out)
{
    *out = NULL;
    macme_installer *in = calloc(1, sizeof(*in));
    if (!in)
        return ACME_E_NOMEM;
    in->queue_tail = &in->queue;
    in->done_tail = &in->done;
    in->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (in->efd < 0) {
        free(in);
        return ACME_E_STORAGE;
    }
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    if (pthread_create(&in->thread, NULL, run, in) != 0) {
        pthread_mutex_destroy(&in->mu);
        pthread_cond_destroy(&in->cv);
        close(in->efd);
        free(in);
        return ACME_E_STORAGE;
    }
    *out = in;
    return ACME_OK;
}

int macme_installer_fd(const macme_installer *in)
{
    return in->efd;
}

size_t macme_installer_busy(macme_installer *in)
{
    pthread_mutex_lock(&in->mu);
    size_t n = in->busy;
    pthread_mutex_unlock(&in->mu);
    return n;
}

int macme_installer_submit(macme_installer *in, const macme_cert *cert, const char *chain_pem, const char *key_pem,
                           int64_t not_after, const void *tag)
{
    job *j = calloc(1, sizeof(*j));
    if (!j)
        return ACME_E_NOMEM;
    j->cert = cert;
    j->tag = tag;
    j->not_after = not_after;
    j->chain = strdup(chain_pem ? chain_pem : "");
    j->key_len = key_pem ? strlen(key_pem) : 0;
    j->key = malloc(j->key_len + 1);
    if (!j->chain || !j->key) {
        job_free(j);
        return ACME_E_NOMEM;
    }
    memcpy(j->key, key_pem ? key_pem : "", j->key_len + 1);
    pthread_mutex_lock(&in->mu);
    *in->queue_tail = j;
    in->queue_tail = &j->next;
    in->busy++;
    pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
    return ACME_OK;
}

void macme_installer_collect(macme_installer *in, macme_install_done done, void *ud)
{
    uint64_t v;
    while (read(in->efd, &v, sizeof(v)) > 0) {
    }
    pthread_mutex_lock(&in->mu);
    job *list = in->done;
    in->done = NULL;
    in->done_tail = &in->done;
    pthread_mutex_unlock(&in->mu);
    while (list) {
        job *j = list;
        list = j->next;
        done(ud, j->cert, j->tag, j->not_after, j->rc, j->changed, j->err);
        pthread_mutex_lock(&in->mu);
        in->busy--;
        pthread_mutex_unlock(&in->mu);
        job_free(j);
    }
}

void macme_installer_free(macme_installer *in)
{
    if (!in)
        return;
    pthread_mutex_lock(&in->mu);
    in->stop = 1;
    pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
    pthread_join(in->thread, NULL);
    /* Written, but nobody is left to hear it. */
    while (in->done) {
        job *j = in->done;
        in->done = j->next;
        job_free(j);
    }
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    close(in->efd);
    free(in);
}
