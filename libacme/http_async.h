/* HTTP exchanges without blocking, for the engine: a libcurl multi handle
 * over the default transport's configuration, its sockets exposed for the
 * host's poll(). A host-supplied transport goes through http_host.c: a
 * blocking table on a thread of its own, an asynchronous one by submit
 * and completion; their completions wake the host through the wake
 * function (http_async_set_wake). */
#ifndef ACME_HTTP_ASYNC_H
#define ACME_HTTP_ASYNC_H

#include <poll.h>
#include <stddef.h>
#include "net.h"

struct acme_client;
typedef struct http_async http_async;

int http_async_new(struct acme_client *c, http_async **out);
void http_async_free(http_async *a);
/* Who to wake (any thread) when a host transport finished a request. */
void http_async_set_wake(http_async *a, void (*wake)(void *), void *ud);
/* Start x; its owner learns it finished through http_async_step's done(). */
int http_async_start(http_async *a, http_exchange *x, void *cookie);
/* Abandon an exchange in flight (its owner goes away). */
void http_async_cancel(http_async *a, void *cookie);
/* Sockets to watch; returns how many there are (fills up to cap). */
size_t http_async_fds(http_async *a, struct pollfd *fds, size_t cap);
/* ms until libcurl wants a call without socket activity; -1 none. */
long http_async_timeout_ms(http_async *a);
/* Move transfers along; done(ud, cookie) for each finished one (x->rc set). */
void http_async_step(http_async *a, void (*done)(void *ud, void *cookie), void *ud);
/* The host's loop watches libcurl's sockets (engine_socket.c): fn hears
 * of every socket to watch (events ACME_POLL_IN/OUT) or to forget
 * (ACME_POLL_REMOVE, before libcurl closes it), as libcurl reports it.
 * NULL stops. */
void http_async_set_watch(http_async *a, void (*fn)(void *ud, int fd, int events), void *ud);
/* A socket of libcurl's is ready (ACME_POLL_IN/OUT/ERR): hand it to
 * libcurl. 0 if fd is not one of libcurl's. */
int http_async_socket_action(http_async *a, int fd, int events);
/* Exchanges in flight. */
size_t http_async_busy(const http_async *a);

#endif
