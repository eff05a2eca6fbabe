/* A host's transport table as the engine drives it: a blocking table runs
 * on a libacme thread of its own (one request at a time, in order), an
 * asynchronous one (acme_transport_ops.submit) is handed the request and
 * completes it later from any thread. Either way the step only starts
 * requests and picks up finished ones; a finished request wakes the host
 * through the wake function (the engine's first descriptor). */
#ifndef ACME_HTTP_HOST_H
#define ACME_HTTP_HOST_H

#include <stddef.h>
#include "net.h"

struct acme_client;
typedef struct http_host http_host;

int http_host_new(struct acme_client *c, http_host **out);
/* Abandons requests in flight (a running blocking request is waited for;
 * an asynchronous one is released when the host completes it). */
void http_host_free(http_host *h);
/* Called (from any thread) when a request finished. */
void http_host_set_wake(http_host *h, void (*wake)(void *), void *ud);
/* Start x; x->rc and x->resp are set when done() reports cookie. */
int http_host_start(http_host *h, http_exchange *x, void *cookie);
void http_host_cancel(http_host *h, void *cookie);
/* Report finished requests (done may start new ones). */
void http_host_collect(http_host *h, void (*done)(void *ud, void *cookie), void *ud);
/* 1 if finished requests wait for http_host_collect. */
int http_host_ready(http_host *h);
size_t http_host_busy(const http_host *h);
/* The blocking calls with a submit-only table: submit and wait. */
void http_host_perform_wait(struct acme_client *c, http_exchange *x);

#endif
