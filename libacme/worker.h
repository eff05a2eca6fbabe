/* One background thread for slow work (RSA key generation, CSR signing),
 * so an engine step never does it. Finished jobs are announced on a pipe
 * the host's poll() watches. */
#ifndef ACME_WORKER_H
#define ACME_WORKER_H

#include <stddef.h>
#include "order.h"

typedef struct worker worker;

int worker_new(worker **out);
/* Waits for the job being run, drops queued ones (their cookies are lost). */
void worker_free(worker *w);
int worker_submit(worker *w, work_job *job, void *cookie);
/* Readable when a job finished. */
int worker_fd(const worker *w);
/* Make worker_fd() readable without a job, so a host sitting in poll()
 * wakes up (the engine calls it when acme_engine_done() readied work). */
void worker_wake(worker *w);
/* Take finished jobs' cookies (up to cap); returns how many. */
size_t worker_collect(worker *w, void **cookies, size_t cap);
/* Forget a cookie's queued or finished job (its owner is going away).
 * If the job is running now, waits for it. */
void worker_cancel(worker *w, void *cookie);

#endif
