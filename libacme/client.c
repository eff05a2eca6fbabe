/* The client handle: configuration and life cycle. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "storage_file.h"
#include "storage_submit.h"
#include "transport_curl.h"
#include "trust_anchor.h"
#include "reentry.h"

#define DEFAULT_MAX_RESPONSE (1024u * 1024u)
#define DEFAULT_POLL_LIMIT_MS 120000u

ACME_EXPORT int acme_client_new(const char *directory_url, acme_client **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    if (!directory_url || strncmp(directory_url, "https://", 8) != 0 || !directory_url[8])
        return directory_url ? ACME_E_INSECURE : ACME_E_INVALID_ARG;
    int rc = crypto_init();
    if (rc)
        return rc;
    acme_client *c = calloc(1, sizeof(*c));
    if (!c)
        return ACME_E_NOMEM;
    c->directory_url = strdup(directory_url);
    c->ca_id = store_ca_id(directory_url);
    c->max_response = DEFAULT_MAX_RESPONSE;
    c->poll_limit_ms = DEFAULT_POLL_LIMIT_MS;
    c->account_key_type = ACME_KEY_EC_P256;
    c->log_level = ACME_LOG_INFO;
    if (!c->directory_url || !c->ca_id) {
        acme_client_free(c);
        return ACME_E_NOMEM;
    }
    *out = c;
    return ACME_OK;
}

static void free_directory(acme_client *c)
{
    free(c->url_new_nonce);
    free(c->url_new_account);
    free(c->url_new_order);
    free(c->url_revoke);
    free(c->url_key_change);
    free(c->url_renewal_info);
    free(c->terms);
    json_decref(c->profiles);
    c->profiles = NULL;
    json_decref(c->dir_meta);
    c->dir_meta = NULL;
    c->url_new_nonce = c->url_new_account = c->url_new_order = NULL;
    c->url_revoke = c->url_key_change = c->url_renewal_info = c->terms = NULL;
    c->have_directory = 0;
}


static void trust_jit_free(acme_client *c)
{
    if (c->trust_jit) {
        trust_cache_free(c->trust_jit->cache);
        free(c->trust_jit);
        c->trust_jit = NULL;
    }
}

ACME_EXPORT void acme_client_free(acme_client *c)
{
    if (reentry_refused(c, "acme_client_free"))
        return; /* freeing what the caller is inside of: leak rather than crash */
    if (!c)
        return;
    free(c->directory_url);
    free(c->ca_id);
    free(c->lock_ca_id);
    if (c->file_storage)
        storage_file_close(c->file_storage);
    etcd_storage_drop(c);
    storage_submit_free(c->storage_shim);
    if (c->curl_transport)
        transport_curl_free(c->curl_transport);
    free(c->ca_file);
    secure_free(c->ca_pem, c->ca_pem_len);
    trust_jit_free(c);
    free_directory(c);
    free(c->nonce);
    account_forget(c);
    result_reset(c);
    free(c);
}

/* A host's size-versioned table: given, and at least as large as the
 * members every version has (need). The sentence names the setter, the
 * struct and both sizes: a size left 0 is the usual day-one mistake. */
static int table_ok(acme_client *c, const char *setter, const char *type, const void *table, size_t size,
                    size_t need)
{
    if (!table)
        return client_fail(c, ACME_E_INVALID_ARG, "%s: no table given", setter);
    if (size < need)
        return client_fail(c, ACME_E_INVALID_ARG, "%s: %s.size is %zu, at least %zu expected: set .size = sizeof(%s)",
                           setter, type, size, need, type);
    return ACME_OK;
}
#define TABLE_OK(c, setter, type, t, last) \
    table_ok((c), (setter), #type, (t), (t) ? (t)->size : 0, offsetof(type, last) + sizeof(((type *)0)->last))

ACME_EXPORT int acme_client_set_host(acme_client *c, const acme_host_callbacks *cb, void *ud)
{
    int refused = reentry_refused(c, "acme_client_set_host");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    int rc = TABLE_OK(c, "acme_client_set_host", acme_host_callbacks, cb, log);
    if (rc)
        return rc;
    /* Copy only what the host's version of the struct has; the rest stays NULL. */
    memset(&c->host, 0, sizeof(c->host));
    memcpy(&c->host, cb, cb->size < sizeof(c->host) ? cb->size : sizeof(c->host));
    c->host.size = sizeof(c->host);
    c->host_ud = ud;
    return ACME_OK;
}

ACME_EXPORT int acme_client_set_storage_dir(acme_client *c, const char *dir)
{
    int refused = reentry_refused(c, "acme_client_set_storage_dir");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    if (!dir || !*dir)
        return client_fail(c, ACME_E_INVALID_ARG, "acme_client_set_storage_dir: no directory given");
    if (c->sa)
        return client_fail(c, ACME_E_STATE, "acme_client_set_storage_dir: an engine runs on this client and "
                           "calls its storage; free the engine (acme_engine_free) first");
    void *ud = NULL;
    int rc = storage_file_open(dir, &ud);
    if (rc) {
        /* The file storage's own sentence says what to fix (an unsafe
         * directory, a missing parent...); the generic hint is the fallback. */
        const char *why = storage_file_open_error();
        if (*why)
            return client_fail(c, rc, "storage: cannot use %s as the state directory: %s", dir, why);
        return client_fail(c, rc, "storage: cannot use %s as the state directory (%s); "
                    "check that it is a writable directory", dir, acme_strerror(rc));
    }
    if (c->file_storage)
        storage_file_close(c->file_storage);
    etcd_storage_drop(c);
    storage_submit_free(c->storage_shim);
    c->storage_shim = NULL;
    c->file_storage = ud;
    c->storage = storage_file_ops;
    c->storage_ud = ud;
    return ACME_OK;
}

ACME_EXPORT int acme_client_set_storage(acme_client *c, const acme_storage_ops *ops, void *ud)
{
    int refused = reentry_refused(c, "acme_client_set_storage");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    int rc = TABLE_OK(c, "acme_client_set_storage", acme_storage_ops, ops, unlock);
    if (rc)
        return rc;
    if (c->sa)
        return client_fail(c, ACME_E_STATE, "acme_client_set_storage: an engine runs on this client and "
                           "calls its storage; free the engine (acme_engine_free) first");
    /* submit (1.2) only where the host's size says the member is there. */
    int has_submit = ops->size >= offsetof(acme_storage_ops, submit) + sizeof(ops->submit) && ops->submit;
    if (!has_submit && (!ops->get || !ops->put || !ops->remove))
        return client_fail(c, ACME_E_INVALID_ARG,
                           "acme_client_set_storage: the table has no %s (get, put and remove are required, "
                           "or submit)", !ops->get ? "get" : !ops->put ? "put" : "remove");
    acme_storage_ops table;
    void *table_ud = ud, *shim = NULL;
    memset(&table, 0, sizeof(table));
    if (has_submit) {
        /* The rest of libacme calls synchronous members: they submit and wait. */
        if ((rc = storage_submit_wrap(ops, ud, &table, &shim)))
            return rc;
        table_ud = shim;
    } else {
        memcpy(&table, ops, ops->size < sizeof(table) ? ops->size : sizeof(table));
    }
    if (c->file_storage) {
        storage_file_close(c->file_storage);
        c->file_storage = NULL;
    }
    etcd_storage_drop(c);
    storage_submit_free(c->storage_shim);
    c->storage_shim = shim;
    c->storage = table;
    c->storage_ud = table_ud;
    return ACME_OK;
}

ACME_EXPORT int acme_client_set_transport(acme_client *c, const acme_transport_ops *ops, void *ud)
{
    int refused = reentry_refused(c, "acme_client_set_transport");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    int rc = TABLE_OK(c, "acme_client_set_transport", acme_transport_ops, ops, perform);
    if (rc)
        return rc;
    /* submit (1.2) only where the host's size says the member is there. */
    int has_submit = ops->size >= offsetof(acme_transport_ops, submit) + sizeof(ops->submit) && ops->submit;
    if (!ops->perform && !has_submit)
        return client_fail(c, ACME_E_INVALID_ARG, "acme_client_set_transport: the table has neither perform nor submit");
    memset(&c->transport, 0, sizeof(c->transport));
    memcpy(&c->transport, ops, ops->size < sizeof(c->transport) ? ops->size : sizeof(c->transport));
    c->transport_ud = ud;
    return ACME_OK;
}

/* Trust or timeouts changed: the default transport is rebuilt on next use. */
static void drop_default_transport(acme_client *c)
{
    if (c->curl_transport) {
        transport_curl_free(c->curl_transport);
        c->curl_transport = NULL;
        memset(&c->transport, 0, sizeof(c->transport));
    }
}

ACME_EXPORT int acme_client_set_ca_file(acme_client *c, const char *path)
{
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    char *p = NULL;
    if (path && !(p = strdup(path)))
        return ACME_E_NOMEM;
    free(c->ca_file);
    c->ca_file = p;
    /* One source of trust at a time. */
    secure_free(c->ca_pem, c->ca_pem_len);
    c->ca_pem = NULL;
    c->ca_pem_len = 0;
    drop_default_transport(c);
    return ACME_OK;
}

ACME_EXPORT int acme_client_set_ca_pem(acme_client *c, const char *pem, size_t len)
{
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    if (pem && !len)
        return client_fail(c, ACME_E_INVALID_ARG, "acme_client_set_ca_pem: len is 0 (pass the PEM's length, or "
                           "NULL to go back to the system store)");
    char *p = NULL;
    if (pem) {
        if (!(p = malloc(len + 1)))
            return ACME_E_NOMEM;
        memcpy(p, pem, len);
        p[len] = '\0';
    }
    secure_free(c->ca_pem, c->ca_pem_len);
    c->ca_pem = p;
    c->ca_pem_len = p ? len : 0;
    free(c->ca_file);
    c->ca_file = NULL;
    drop_default_transport(c);
    return ACME_OK;
}

ACME_EXPORT int acme_client_set_trust_anchor_lookup(acme_client *c, const acme_trust_anchor_ops *ops, void *ud)
{
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    if (ops) {
        int rc = TABLE_OK(c, "acme_client_set_trust_anchor_lookup", acme_trust_anchor_ops, ops, cache_ttl_s);
        if (rc)
            return rc;
        if (!ops->lookup)
            return client_fail(c, ACME_E_INVALID_ARG,
                               "acme_client_set_trust_anchor_lookup: the table has no lookup");
    }
    trust_jit *j = NULL;
    if (ops) {
        if (!(j = calloc(1, sizeof(*j))))
            return ACME_E_NOMEM;
        memcpy(&j->ops, ops, ops->size < sizeof(j->ops) ? ops->size : sizeof(j->ops));
        j->ops.size = sizeof(j->ops);
        j->ud = ud;
        int rc = trust_cache_new(j->ops.cache_entries, j->ops.cache_ttl_s, &j->cache);
        if (rc) {
            free(j);
            return rc;
        }
    }
    /* The old lookup's bindings go with it: its roots were its answers.
     * The transport holds a pointer to it, so it is rebuilt first. */
    drop_default_transport(c);
    trust_jit_free(c);
    c->trust_jit = j;
    return ACME_OK;
}

ACME_EXPORT int acme_client_set_timeouts(acme_client *c, unsigned connect_ms, unsigned total_ms)
{
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    c->connect_ms = connect_ms;
    c->total_ms = total_ms;
    drop_default_transport(c);
    return ACME_OK;
}

ACME_EXPORT int acme_client_set_max_response(acme_client *c, size_t bytes)
{
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    if (bytes < 1024)
        return client_fail(c, ACME_E_INVALID_ARG, "acme_client_set_max_response: %zu bytes is below the minimum "
                           "of 1024", bytes);
    c->max_response = bytes;
    return ACME_OK;
}

ACME_EXPORT int acme_client_set_poll_limit(acme_client *c, unsigned ms)
{
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    if (!ms)
        return client_fail(c, ACME_E_INVALID_ARG, "acme_client_set_poll_limit: 0 ms would give up before the "
                           "first poll; pass the limit in milliseconds (default 120000)");
    c->poll_limit_ms = ms;
    return ACME_OK;
}

ACME_EXPORT int acme_client_set_account_key_type(acme_client *c, acme_key_type type)
{
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    if (type < ACME_KEY_DEFAULT || type > ACME_KEY_ED25519)
        return client_fail(c, ACME_E_INVALID_ARG, "acme_client_set_account_key_type: %d is not an acme_key_type",
                           (int)type);
    c->account_key_type = type == ACME_KEY_DEFAULT ? ACME_KEY_EC_P256 : type;
    return ACME_OK;
}

ACME_EXPORT int acme_client_set_log_level(acme_client *c, acme_log_level level)
{
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    if (level < ACME_LOG_ERROR || level > ACME_LOG_DEBUG)
        return client_fail(c, ACME_E_INVALID_ARG, "acme_client_set_log_level: %d is not an acme_log_level "
                           "(ACME_LOG_ERROR to ACME_LOG_DEBUG)", (int)level);
    c->log_level = level;
    return ACME_OK;
}

/* ---- key type names ---- */

static const struct {
    const char *name;
    acme_key_type type;
} key_names[] = {
    { "ec-256", ACME_KEY_EC_P256 }, { "p256", ACME_KEY_EC_P256 }, { "p-256", ACME_KEY_EC_P256 },
    { "es256", ACME_KEY_EC_P256 }, { "ec-384", ACME_KEY_EC_P384 }, { "p384", ACME_KEY_EC_P384 },
    { "p-384", ACME_KEY_EC_P384 }, { "es384", ACME_KEY_EC_P384 },
    { "rsa-2048", ACME_KEY_RSA_2048 }, { "rsa2048", ACME_KEY_RSA_2048 }, { "rsa", ACME_KEY_RSA_2048 },
    { "rsa-3072", ACME_KEY_RSA_3072 }, { "rsa3072", ACME_KEY_RSA_3072 },
    { "rsa-4096", ACME_KEY_RSA_4096 }, { "rsa4096", ACME_KEY_RSA_4096 },
    { "ed25519", ACME_KEY_ED25519 }, { "eddsa", ACME_KEY_ED25519 },
};

ACME_EXPORT int acme_key_type_from_name(const char *name, acme_key_type *out)
{
    if (!name || !out)
        return ACME_E_INVALID_ARG;
    for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
        if (ascii_casecmp(name, key_names[i].name) == 0) {
            *out = key_names[i].type;
            return ACME_OK;
        }
    }
    return ACME_E_INVALID_ARG;
}

ACME_EXPORT const char *acme_key_type_name(acme_key_type type)
{
    switch (type) {
    case ACME_KEY_DEFAULT: return "default";
    case ACME_KEY_EC_P256: return "ec-256";
    case ACME_KEY_EC_P384: return "ec-384";
    case ACME_KEY_RSA_2048: return "rsa-2048";
    case ACME_KEY_RSA_3072: return "rsa-3072";
    case ACME_KEY_RSA_4096: return "rsa-4096";
    case ACME_KEY_ED25519: return "ed25519";
    }
    return "unknown";
}
