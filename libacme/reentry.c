/* The re-entrancy guard (reentry.h). */
#include <stdlib.h>

#include "reentry.h"

int reentry_refused(acme_client *c, const char *call)
{
    if (!c || !c->in_callback)
        return ACME_OK;
    /* The sentence goes where the host looks right after the refused call;
     * the step that runs the callback resets it before it goes on. */
    const char *cb = c->in_callback;
    c->in_callback = NULL; /* client_fail logs: the log callback may run */
    /* This refusal is what the host asks about next, whatever the call
     * around the callback recorded before (client_fail keeps the first). */
    free(c->last_error);
    c->last_error = NULL;
    int rc = client_fail(c, ACME_E_STATE,
                         "%s() was called from inside the host's %s callback; libacme takes no calls from its own "
                         "callbacks: return first (answer ACME_E_PENDING and call acme_engine_done() from the loop "
                         "if the work is not finished)", call, cb);
    c->in_callback = cb;
    return rc;
}
