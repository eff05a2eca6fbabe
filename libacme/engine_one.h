/* The blocking calls as an engine of one (libcurl's easy = multi).
 *
 * acme_issue() and acme_renew() declare one certificate to an engine made
 * for the call and run it to completion, so the renewal decision (ARI
 * window, lifetime rule, max age), "replaces", and the order driver's
 * fallback, history and retries are the same code for both faces. The
 * engine of one differs from a host's engine only at its edges:
 *  - every HTTP exchange runs inline through the client's transport (the
 *    client's kept connections, a host transport called synchronously);
 *  - slow work runs inline (no worker thread);
 *  - a host callback answering ACME_E_PENDING fails the order (nobody can
 *    report completion);
 *  - nothing stored is installed at start, and the run ends after one
 *    order or one "not due" decision;
 *  - renewal time is deterministic: the lifetime rule without jitter, an
 *    ARI window's start (a call run from cron cannot schedule itself for a
 *    random point in the window; RFC 9773 §4.2 then says renew now). */
#ifndef ACME_ENGINE_ONE_H
#define ACME_ENGINE_ONE_H

#include <acme/engine.h>

struct issue_spec;

typedef enum one_mode {
    ONE_ISSUE,        /* order now, whatever is stored (acme_issue) */
    ONE_RENEW,        /* decide (acme_renew) */
    ONE_RENEW_FORCE   /* order now; "replaces" the stored one (acme_renew force) */
} one_mode;

typedef struct engine_one {
    one_mode mode;
    int finished;
    int ordered;      /* an order ran (and its result was handed to the client) */
    int rc;
    int64_t due;      /* ONE_RENEW, not due: when it will be (wall clock) */
} engine_one;

/* engine.c: an engine in one-shot mode; one stays the caller's. */
int engine_new_one(acme_client *c, engine_one *one, acme_engine **out);
/* engine.c: declare a validated spec (acme_engine_manage after checks). */
int engine_manage_spec(acme_engine *e, struct issue_spec *spec);
/* engine.c: acme_engine_step / acme_engine_timeout_ms without clearing the
 * client's last error first (for drivers that loop over them). */
int engine_step_run(acme_engine *e);
int engine_timeout_run(acme_engine *e);

#endif
