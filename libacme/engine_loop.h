/* The engine's face to a host's event loop (engine_socket.c): the socket
 * and timer callbacks of acme_engine_set_socket_callback(3), in the style
 * of libcurl's CURLMOPT_SOCKETFUNCTION / TIMERFUNCTION, and the deadline
 * of host callbacks that answered ACME_E_PENDING.
 *
 * engine.c keeps one engine_loop in the engine and calls the hooks below;
 * everything a host's loop sees goes through here. */
#ifndef ACME_ENGINE_LOOP_H
#define ACME_ENGINE_LOOP_H

#include <stdint.h>
#include <acme/engine.h>

#include "http_async.h"
#include "worker.h"

typedef struct engine_loop {
    acme_client *c;
    http_async *http;             /* NULL for the engine of one */
    worker *work;
    acme_engine_socket_fn sock_cb;
    void *sock_ud;
    int wake_watched;             /* the worker pipe was handed to sock_cb */
    acme_engine_timer_fn timer_cb;
    void *timer_ud;
    int timer_armed;              /* what the host was told last */
    uint64_t timer_due;           /* monotonic ms */
    unsigned pending_timeout_s;   /* 0 = none */
} engine_loop;

#define ENGINE_PENDING_TIMEOUT_S 600u

void engine_loop_init(engine_loop *l, acme_client *c, http_async *http, worker *work);
/* acme_engine_free: every watched descriptor unwatched, before the multi
 * handle and the worker close theirs. */
void engine_loop_close(engine_loop *l);
/* End of a public call that may have moved the engine's next deadline:
 * tell the timer callback if it changed (timeout_ms: acme_engine_timeout_ms). */
void engine_loop_sync(engine_loop *l, int timeout_ms);

/* engine.c: the engine's loop state. */
engine_loop *engine_loop_of(acme_engine *e);

/* When a callback that answered ACME_E_PENDING at since_ms is given up
 * (monotonic ms); UINT64_MAX if never. */
uint64_t engine_loop_pending_deadline(const engine_loop *l, uint64_t since_ms);

#endif
