/* Calls back into libacme from inside its own callbacks are refused.
 *
 * A host callback (publish, unpublish, install, log, the engine's socket
 * and timer callbacks) runs in the middle of an engine step or a blocking
 * call: the order, the multi handle and the timer queue are half-way
 * through a change. A call back into the engine or the client from there
 * would run an order twice or free what the caller still uses, so every
 * entry point that drives or changes state asks reentry_refused() first
 * and returns ACME_E_STATE with a sentence naming the call. */
#ifndef ACME_REENTRY_H
#define ACME_REENTRY_H

#include "internal.h"

/* Around a host callback: the previous name is restored by leave, so a
 * log line written while another callback runs keeps that one's name. */
static inline const char *callback_enter(acme_client *c, const char *name)
{
    const char *prev = c->in_callback;
    c->in_callback = name;
    return prev;
}

static inline void callback_leave(acme_client *c, const char *prev)
{
    c->in_callback = prev;
}

/* ACME_E_STATE (sentence in c's last error) when called from inside a
 * callback, else ACME_OK. call: the public name, e.g. "acme_engine_step". */
int reentry_refused(acme_client *c, const char *call);

#endif
