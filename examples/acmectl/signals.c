/* Ctrl-C, SIGTERM, SIGHUP: take down what is published before exiting.
 * Without this an interrupted run would leave challenge files in the
 * webroot and TXT records behind the hook. libacme's blocking calls
 * cannot be cancelled, so one thread waits for the signal (blocked in
 * every other thread) and, once no hook is running, unpublishes
 * everything and exits. libacme keeps the order on disk, so the next run
 * resumes it. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acmectl.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static provision *watched;
static sigset_t sigs;

static void *waiter(void *arg)
{
    (void)arg;
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0)
        return NULL;
    pthread_mutex_lock(&mu);
    fprintf(stderr, "acmectl: interrupted (%s)%s\n", strsignal(sig),
            watched ? "; taking down what is published" : "");
    if (watched) {
        size_t n = provision_interrupt(watched);
        if (n)
            fprintf(stderr, "acmectl: took down %zu challenge(s); the order resumes on the next run\n", n);
    }
    fflush(stderr);
    _exit(128 + sig);
}

void signals_start(void)
{
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    /* Before any other thread exists, so that all of them inherit it. */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, waiter, NULL) == 0)
        pthread_detach(t);
    else
        pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
}

void signals_watch(provision *p)
{
    pthread_mutex_lock(&mu);
    watched = p;
    pthread_mutex_unlock(&mu);
}
