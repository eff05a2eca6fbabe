/* The public face of the etcd storage: the client setter and the cluster
 * calls (include/acme/etcd.h). The client owns the handle. */
#include <stdlib.h>
#include <string.h>

#include <acme/etcd.h>

#include "internal.h"
#include "storage_etcd.h"

void etcd_storage_drop(acme_client *c)
{
    if (c->etcd_storage) {
        storage_etcd_close(c->etcd_storage);
        c->etcd_storage = NULL;
        memset(&c->storage, 0, sizeof(c->storage));
        c->storage_ud = NULL;
    }
}

const char *etcd_storage_error(acme_client *c)
{
    return c->etcd_storage ? storage_etcd_last_error(c->etcd_storage) : "";
}

ACME_EXPORT int acme_client_set_storage_etcd(acme_client *c, const acme_etcd_options *opts)
{
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    char err[600] = "";
    storage_etcd *s = NULL;
    int rc = storage_etcd_open(opts, &s, err, sizeof(err));
    if (rc)
        return *err ? client_fail(c, rc, "%s", err) : rc;
    /* Through the generic setter, which drops whatever was there before. */
    rc = acme_client_set_storage(c, &storage_etcd_ops, s);
    if (rc) {
        storage_etcd_close(s);
        return rc;
    }
    c->etcd_storage = s;
    /* Already in a CA list: fence by the list's order lock. */
    return c->lock_ca_id ? storage_etcd_set_lock_scope(s, c->lock_ca_id) : ACME_OK;
}

ACME_EXPORT int acme_client_etcd_attach_responder(acme_client *c, acme_responder *r)
{
    result_reset_entry(c); /* called from inside the host's callbacks too */
    if (!c || !r)
        return ACME_E_INVALID_ARG;
    if (!c->etcd_storage)
        return client_fail(c, ACME_E_STATE, "acme_client_etcd_attach_responder: the client does not use etcd "
                                            "storage (call acme_client_set_storage_etcd first)");
    return storage_etcd_attach_responder(c->etcd_storage, r);
}

ACME_EXPORT int acme_client_etcd_attach_sink(acme_client *c, const acme_etcd_sink *sink)
{
    result_reset_entry(c); /* called from inside the host's callbacks too */
    if (!c)
        return ACME_E_INVALID_ARG;
    if (!c->etcd_storage)
        return ACME_E_STATE;
    int rc = storage_etcd_attach_sink(c->etcd_storage, sink);
    if (rc == ACME_E_INVALID_ARG)
        return client_fail(c, rc, "acme_client_etcd_attach_sink: %s",
                           !sink || sink->size < sizeof(acme_etcd_sink)
                               ? "the sink is missing or its size field is too small (set size = sizeof(acme_etcd_sink))"
                           : !sink->add_http01 && !sink->add_tlsalpn01 ? "the sink has neither add_http01 nor add_tlsalpn01"
                                                                        : "at most 4 responders and sink kinds per client");
    return rc;
}

ACME_EXPORT int acme_client_etcd_publish(acme_client *c, const acme_challenge *ch, unsigned wait_ms)
{
    result_reset_entry(c); /* called from inside the host's callbacks too */
    if (!c || !ch)
        return ACME_E_INVALID_ARG;
    if (!c->etcd_storage)
        return ACME_E_STATE;
    int rc = storage_etcd_publish(c->etcd_storage, ch, wait_ms);
    if (rc && rc != ACME_E_UNSUPPORTED && rc != ACME_E_PENDING)
        return client_fail(c, rc, "cluster: the %s answer for %s %s: %s", acme_challenge_type_name(acme_challenge_get_type(ch)),
                           acme_challenge_identifier(ch),
                           rc == ACME_E_TIMEOUT ? "did not reach every node in time (a node is slow or cut off from etcd)"
                                                : "could not be stored",
                           storage_etcd_last_error(c->etcd_storage));
    return rc;
}

ACME_EXPORT int acme_client_etcd_published(acme_client *c, const acme_challenge *ch)
{
    result_reset_entry(c); /* called from inside the host's callbacks too */
    if (!c || !ch)
        return ACME_E_INVALID_ARG;
    if (!c->etcd_storage)
        return ACME_E_STATE;
    return storage_etcd_published(c->etcd_storage, ch);
}

ACME_EXPORT int acme_client_etcd_unpublish(acme_client *c, const acme_challenge *ch)
{
    result_reset_entry(c); /* called from inside the host's callbacks too */
    if (!c || !ch)
        return ACME_E_INVALID_ARG;
    if (!c->etcd_storage)
        return ACME_E_STATE;
    return storage_etcd_unpublish(c->etcd_storage, ch);
}

ACME_EXPORT const char *acme_client_etcd_health(acme_client *c)
{
    result_reset_entry(c);
    if (!c || !c->etcd_storage)
        return NULL;
    return storage_etcd_health(c->etcd_storage);
}
