/* The engine driven by the host's event loop through callbacks, like
 * libcurl's multi socket interface (engine_loop.h, acme_engine_set_socket_
 * callback(3)). The engine's descriptors are libcurl's sockets to the CA
 * and the worker's pipe; both are forwarded to the host as they come and
 * go, and every REMOVE reaches the host before the descriptor is closed
 * (libcurl reports a socket's removal before closing it, http_async.c
 * forwards it at once; the pipe is unwatched before the worker goes). */
#include <poll.h>
#include <stdlib.h>

#include <acme/engine.h>

#include "engine_chain.h"
#include "engine_loop.h"
#include "internal.h"
#include "reentry.h"

void engine_loop_init(engine_loop *l, acme_client *c, http_async *http, worker *work)
{
    l->c = c;
    l->http = http;
    l->work = work;
    l->pending_timeout_s = ENGINE_PENDING_TIMEOUT_S;
}

static void tell_socket(engine_loop *l, acme_engine_socket_fn cb, void *ud, int fd, int events)
{
    const char *prev = callback_enter(l->c, "socket");
    cb(ud, fd, events);
    callback_leave(l->c, prev);
}

/* http_async's watch hook: libcurl added, changed or is about to close fd. */
static void forward(void *ud, int fd, int events)
{
    engine_loop *l = ud;
    if (l->sock_cb)
        tell_socket(l, l->sock_cb, l->sock_ud, fd, events);
}

static int events_of(short poll_events)
{
    return ((poll_events & POLLIN) ? ACME_POLL_IN : 0) | ((poll_events & POLLOUT) ? ACME_POLL_OUT : 0);
}

/* Every descriptor to watch now, each told to cb with its events (or
 * ACME_POLL_REMOVE with remove). */
static void tell_all(engine_loop *l, acme_engine_socket_fn cb, void *ud, int remove)
{
    tell_socket(l, cb, ud, worker_fd(l->work), remove ? ACME_POLL_REMOVE : ACME_POLL_IN);
    size_t n = http_async_fds(l->http, NULL, 0);
    if (!n)
        return;
    struct pollfd *fds = calloc(n, sizeof(*fds));
    if (!fds)
        return; /* out of memory: libcurl's next report of each socket still comes */
    n = http_async_fds(l->http, fds, n);
    for (size_t i = 0; i < n; i++)
        tell_socket(l, cb, ud, fds[i].fd, remove ? ACME_POLL_REMOVE : events_of(fds[i].events));
    free(fds);
}

void engine_loop_close(engine_loop *l)
{
    if (l->sock_cb && l->http) {
        acme_engine_socket_fn cb = l->sock_cb;
        l->sock_cb = NULL;
        http_async_set_watch(l->http, NULL, NULL);
        tell_all(l, cb, l->sock_ud, 1);
    }
    if (l->timer_cb && l->timer_armed) {
        const char *prev = callback_enter(l->c, "timer");
        l->timer_cb(l->timer_ud, -1);
        callback_leave(l->c, prev);
    }
    l->timer_cb = NULL;
    l->timer_armed = 0;
}

static void tell_timer(engine_loop *l, int ms)
{
    const char *prev = callback_enter(l->c, "timer");
    l->timer_cb(l->timer_ud, ms);
    callback_leave(l->c, prev);
}

void engine_loop_sync(engine_loop *l, int timeout_ms)
{
    if (!l->timer_cb)
        return;
    if (timeout_ms < 0) {
        if (l->timer_armed) {
            l->timer_armed = 0;
            tell_timer(l, -1);
        }
        return;
    }
    uint64_t due = now_ms() + (uint64_t)timeout_ms;
    /* A timer already set no later than this fires in time: the call it
     * brings finds the new deadline. (1 ms of slack: the two clocks reads
     * behind timeout_ms and due differ by that.) */
    if (l->timer_armed && l->timer_due <= due + 1)
        return;
    l->timer_armed = 1;
    l->timer_due = due;
    tell_timer(l, timeout_ms);
}

uint64_t engine_loop_pending_deadline(const engine_loop *l, uint64_t since_ms)
{
    return l->pending_timeout_s ? since_ms + (uint64_t)l->pending_timeout_s * 1000u : UINT64_MAX;
}

ACME_EXPORT int acme_engine_set_socket_callback(acme_engine *e, acme_engine_socket_fn cb, void *ud)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    engine_loop *l = engine_loop_of(e);
    int rc = reentry_refused(l->c, "acme_engine_set_socket_callback");
    if (rc)
        return rc;
    result_reset(l->c);
    if (!l->http || !l->work)
        return client_fail(l->c, ACME_E_STATE, "acme_engine_set_socket_callback: this engine runs a blocking "
                           "call and has no descriptors; use an engine made with acme_engine_new()");
    if (l->sock_cb) {
        /* Let the old watcher go of everything before the new one starts. */
        acme_engine_socket_fn old = l->sock_cb;
        l->sock_cb = NULL;
        http_async_set_watch(l->http, NULL, NULL);
        tell_all(l, old, l->sock_ud, 1);
    }
    l->sock_cb = cb;
    l->sock_ud = cb ? ud : NULL;
    if (cb) {
        http_async_set_watch(l->http, forward, l);
        tell_all(l, cb, ud, 0);
    }
    /* A CA list's engine (engine_chain.h): every CA's sockets go to the
     * same watcher; socket_action hands each fd to all of them. */
    acme_engine *next = engine_chain_next(e);
    return next ? acme_engine_set_socket_callback(next, cb, ud) : ACME_OK;
}

ACME_EXPORT int acme_engine_set_timer_callback(acme_engine *e, acme_engine_timer_fn cb, void *ud)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    engine_loop *l = engine_loop_of(e);
    int rc = reentry_refused(l->c, "acme_engine_set_timer_callback");
    if (rc)
        return rc;
    result_reset(l->c);
    if (!l->http)
        return client_fail(l->c, ACME_E_STATE, "acme_engine_set_timer_callback: this engine runs a blocking "
                           "call; use an engine made with acme_engine_new()");
    if (l->timer_cb && l->timer_armed && l->timer_cb != cb)
        tell_timer(l, -1);
    l->timer_cb = cb;
    l->timer_ud = cb ? ud : NULL;
    l->timer_armed = 0;
    engine_loop_sync(l, acme_engine_timeout_ms(e));
    return ACME_OK;
}

ACME_EXPORT int acme_engine_socket_action(acme_engine *e, int fd, int events)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    engine_loop *l = engine_loop_of(e);
    int rc = reentry_refused(l->c, "acme_engine_socket_action");
    if (rc)
        return rc;
    /* libcurl's socket: libcurl reads or writes it now; the worker's pipe
     * (or an fd already forgotten): the step collects what is there. */
    if (l->http && fd >= 0)
        for (acme_engine *x = e; x; x = engine_chain_next(x))
            http_async_socket_action(engine_loop_of(x)->http, fd, events);
    return acme_engine_step(e);
}

ACME_EXPORT int acme_engine_timeout_action(acme_engine *e)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    engine_loop *l = engine_loop_of(e);
    int rc = reentry_refused(l->c, "acme_engine_timeout_action");
    if (rc)
        return rc;
    l->timer_armed = 0; /* it fired: whatever comes next must be told */
    return acme_engine_step(e);
}

ACME_EXPORT int acme_engine_set_pending_timeout(acme_engine *e, unsigned seconds)
{
    if (!e)
        return ACME_E_INVALID_ARG;
    engine_loop *l = engine_loop_of(e);
    int rc = reentry_refused(l->c, "acme_engine_set_pending_timeout");
    if (rc)
        return rc;
    result_reset(l->c);
    l->pending_timeout_s = seconds;
    acme_engine *next = engine_chain_next(e);
    return next ? acme_engine_set_pending_timeout(next, seconds) : ACME_OK;
}
