/* A storage table's asynchronous face (acme_storage_ops.submit) behind the
 * synchronous members the rest of libacme calls: each member submits one
 * request and waits for its completion on the calling thread. With an
 * engine that thread is the storage thread (store_async.c), so a step never
 * waits; for the blocking calls it is the caller's, as with any table. */
#include "storage_submit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct shim {
    int (*submit)(void *ud, const acme_storage_request *req, acme_storage_call *call);
    void *ud;
} shim;

struct acme_storage_call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rc;
    char **keys;              /* LIST: what the table reported */
    size_t key_n, key_cap;
    int nomem;
};

ACME_EXPORT int acme_storage_call_list_key(acme_storage_call *k, const char *key)
{
    if (!k || !key)
        return ACME_E_INVALID_ARG;
    char *d = strdup(key);
    pthread_mutex_lock(&k->mu);
    int rc = ACME_OK;
    if (d && k->key_n == k->key_cap) {
        size_t cap = k->key_cap ? k->key_cap * 2 : 32;
        char **n = realloc(k->keys, cap * sizeof(*n));
        if (n) {
            k->keys = n;
            k->key_cap = cap;
        }
    }
    if (!d || k->key_n == k->key_cap) {
        free(d);
        k->nomem = 1;
        rc = ACME_E_NOMEM;
    } else {
        k->keys[k->key_n++] = d;
    }
    pthread_mutex_unlock(&k->mu);
    return rc;
}

ACME_EXPORT int acme_storage_call_complete(acme_storage_call *k, int result)
{
    if (!k)
        return ACME_E_INVALID_ARG;
    pthread_mutex_lock(&k->mu);
    k->rc = result;
    k->done = 1;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    return ACME_OK;
}

/* Submit req and wait; the call's keys are handed to cb afterwards. */
static int run(shim *s, acme_storage_request *req, acme_storage_list_cb cb, void *cbdata)
{
    acme_storage_call k;
    memset(&k, 0, sizeof(k));
    pthread_mutex_init(&k.mu, NULL);
    pthread_cond_init(&k.cv, NULL);
    req->size = sizeof(*req);
    int rc = s->submit(s->ud, req, &k);
    if (rc == ACME_OK) {
        pthread_mutex_lock(&k.mu);
        while (!k.done)
            pthread_cond_wait(&k.cv, &k.mu);
        rc = k.rc;
        pthread_mutex_unlock(&k.mu);
    }
    if (rc == ACME_OK && k.nomem)
        rc = ACME_E_NOMEM;
    /* The table is done with the call: call cb outside any lock (it may
     * call the table again). */
    int stop = 0;
    for (size_t i = 0; i < k.key_n; i++) {
        if (rc == ACME_OK && cb && !stop)
            stop = cb(cbdata, k.keys[i]);
        free(k.keys[i]);
    }
    free(k.keys);
    pthread_mutex_destroy(&k.mu);
    pthread_cond_destroy(&k.cv);
    return rc;
}

static int sh_get(void *ud, const char *key, acme_buffer *out)
{
    acme_storage_request r = {.op = ACME_STORAGE_OP_GET, .key = key, .out = out};
    return run(ud, &r, NULL, NULL);
}

static int sh_put(void *ud, const char *key, const void *data, size_t len, unsigned flags)
{
    acme_storage_request r = {.op = ACME_STORAGE_OP_PUT, .key = key, .data = data, .len = len, .flags = flags};
    return run(ud, &r, NULL, NULL);
}

static int sh_remove(void *ud, const char *key)
{
    acme_storage_request r = {.op = ACME_STORAGE_OP_REMOVE, .key = key};
    return run(ud, &r, NULL, NULL);
}

static int sh_list(void *ud, const char *prefix, acme_storage_list_cb cb, void *cbdata)
{
    acme_storage_request r = {.op = ACME_STORAGE_OP_LIST, .key = prefix};
    return run(ud, &r, cb, cbdata);
}

static int sh_lock(void *ud, const char *name, unsigned lease)
{
    acme_storage_request r = {.op = ACME_STORAGE_OP_LOCK, .key = name, .lease_seconds = lease};
    return run(ud, &r, NULL, NULL);
}

static int sh_unlock(void *ud, const char *name)
{
    acme_storage_request r = {.op = ACME_STORAGE_OP_UNLOCK, .key = name};
    return run(ud, &r, NULL, NULL);
}

static int sh_refresh(void *ud, const char *name, unsigned lease)
{
    acme_storage_request r = {.op = ACME_STORAGE_OP_REFRESH, .key = name, .lease_seconds = lease};
    return run(ud, &r, NULL, NULL);
}

int storage_submit_wrap(const acme_storage_ops *host, void *host_ud, acme_storage_ops *out, void **out_ud)
{
    shim *s = calloc(1, sizeof(*s));
    if (!s)
        return ACME_E_NOMEM;
    s->submit = host->submit;
    s->ud = host_ud;
    memset(out, 0, sizeof(*out));
    out->size = sizeof(*out);
    out->get = sh_get;
    out->put = sh_put;
    out->remove = sh_remove;
    out->list = sh_list;
    out->lock = sh_lock;
    out->unlock = sh_unlock;
    out->refresh = sh_refresh;
    *out_ud = s;
    return ACME_OK;
}

void storage_submit_free(void *ud)
{
    free(ud);
}
