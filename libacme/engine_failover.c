/* acme_ca_list_engine_new: an engine that fails over between the CAs of a
 * CA list — one engine per CA, chained (engine.c, "CA failover"). */
#include <stdlib.h>

#include <acme/ca_list.h>
#include <acme/engine.h>

#include "ca_list_int.h"
#include "engine_chain.h"
#include "internal.h"

ACME_EXPORT int acme_ca_list_engine_new(acme_ca_list *l, const acme_engine_options *opts, acme_engine **out)
{
    if (!l || !out || !acme_ca_list_count(l))
        return ACME_E_INVALID_ARG;
    *out = NULL;
    size_t n = acme_ca_list_count(l);
    acme_engine **v = calloc(n, sizeof(*v));
    if (!v)
        return ACME_E_NOMEM;
    int rc = ACME_OK;
    for (size_t i = 0; i < n && rc == ACME_OK; i++)
        rc = acme_engine_new(acme_ca_list_client(l, i), opts, &v[i]);
    /* Linked from the last, so that a failure frees the chain once. */
    for (size_t i = n; rc == ACME_OK && i-- > 0;)
        engine_chain_link(v[i], i + 1 < n ? v[i + 1] : NULL, l, i);
    for (size_t i = 0; rc == ACME_OK && i < n; i++)
        engine_chain_first(v[i], v[0]);
    if (rc == ACME_OK) {
        /* The account at each CA: found or registered as the engine's
         * first step there, with the list's contacts and the CA's EAB. */
        acme_account_params ap;
        ca_list_account_params(l, 0, &ap);
        rc = acme_engine_set_account(v[0], &ap);
    }
    if (rc != ACME_OK) {
        /* Unlinked first, so that each engine is freed once. */
        for (size_t i = 0; i < n; i++)
            if (v[i])
                engine_chain_link(v[i], NULL, l, i);
        for (size_t i = 0; i < n; i++)
            acme_engine_free(v[i]);
        free(v);
        return rc;
    }
    *out = v[0];
    free(v);
    return ACME_OK;
}
