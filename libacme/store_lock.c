/* Order locks: the one place that calls a table's lock and unlock (the
 * contract is in include/acme/storage.h and doc/storage.md, "Locks").
 * With an engine the table is asked on its storage thread; the blocking
 * calls ask it in place. Also the durability barrier an order waits at
 * after queueing a write (store_barrier). */
#include "internal.h"
#include "store_async.h"

int store_lock(acme_client *c, const char *name, const void *object, int *held)
{
    *held = 0;
    if (!c->storage.lock)
        return ACME_OK;
    if (c->sa) {
        int rc = store_async_lock(c->sa, name, object);
        if (rc == ACME_E_PENDING || rc == ACME_OK)
            *held = 1; /* PENDING: if the answer is yes */
        return rc;
    }
    int rc = c->storage.lock(c->storage_ud, name, ACME_LOCK_LEASE_LONG_S);
    *held = rc == ACME_OK;
    return rc;
}

void store_unlock(acme_client *c, const char *name)
{
    if (!c->storage.lock)
        return;
    if (c->sa) {
        store_async_unlock(c->sa, name);
        return;
    }
    if (c->storage.unlock && c->storage.unlock(c->storage_ud, name))
        alog(c, ACME_LOG_WARNING, "could not release the storage lock %s", name);
}

void store_lock_forget(acme_client *c, const void *object)
{
    if (c->sa)
        store_async_forget(c->sa, object);
}

unsigned long long store_durable_writes(acme_client *c)
{
    return c->sa ? store_async_durable(c->sa) : 0;
}

int store_barrier(acme_client *c, const void *object)
{
    return c->sa ? store_async_barrier(c->sa, object) : ACME_OK;
}
