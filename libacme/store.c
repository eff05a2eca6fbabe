/* Storage keys: every key libacme writes lives under one directory per CA,
 * so staging and production (or two CAs) never share an account or a
 * certificate. See doc/storage.md for the layout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "internal.h"
#include "storage_file.h"
#include "store_async.h"

char *store_ca_id(const char *url)
{
    /* Readable part: host, port and path with unsafe characters folded;
     * a short hash of the exact URL keeps two similar URLs apart. */
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    char readable[80];
    size_t n = 0;
    for (; *p && n < sizeof(readable) - 1; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '.' || ch == '-';
        readable[n++] = ok ? ch : '_';
    }
    while (n > 0 && readable[n - 1] == '_')
        n--;
    readable[n] = '\0';
    unsigned char digest[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, url, strlen(url), digest) < 0)
        return NULL;
    return xasprintf("%s-%02x%02x%02x%02x", readable[0] == '.' ? "ca" : readable,
                     digest[0], digest[1], digest[2], digest[3]);
}

int store_ready(acme_client *c)
{
    if (c->storage.get)
        return ACME_OK;
    return client_fail(c, ACME_E_STATE,
                "no storage configured: call acme_client_set_storage_dir() "
                "or acme_client_set_storage() before this");
}

/* The storage's own account of a failure, when it is one of ours. */
static const char *table_error(acme_client *c)
{
    return c->file_storage ? storage_file_last_error(c->file_storage) : etcd_storage_error(c);
}

static char *full_key(acme_client *c, const char *rel)
{
    return xasprintf("%s/%s", c->ca_id, rel);
}

int store_get(acme_client *c, const char *rel, acme_buf *out)
{
    int rc = store_ready(c);
    if (rc)
        return rc;
    char *k = full_key(c, rel);
    if (!k)
        return ACME_E_NOMEM;
    if (c->sa) {
        char *why = NULL;
        rc = store_async_get(c->sa, k, out, &why);
        if (rc && rc != ACME_E_NOT_FOUND)
            rc = client_fail(c, ACME_E_STORAGE, "storage: could not read %s (%s)", k, why ? why : acme_strerror(rc));
        free(why);
        free(k);
        return rc;
    }
    rc = c->storage.get(c->storage_ud, k, out);
    if (rc && rc != ACME_E_NOT_FOUND)
        rc = client_fail(c, ACME_E_STORAGE, "storage: could not read %s (%s)%s%s", k,
                  acme_strerror(rc), *table_error(c) ? ": " : "", table_error(c));
    free(k);
    return rc;
}

json_t *store_get_advice(acme_client *c, const char *rel, size_t cap)
{
    acme_buf b;
    buf_init(&b, cap);
    json_t *o = NULL;
    if (store_get(c, rel, &b) == ACME_OK)
        o = json_parse_object(b.data, b.len);
    result_reset(c);
    buf_clear(&b);
    return o;
}

int store_put(acme_client *c, const char *rel, const void *data, size_t len, unsigned flags)
{
    int rc = store_ready(c);
    if (rc)
        return rc;
    char *k = full_key(c, rel);
    if (!k)
        return ACME_E_NOMEM;
    if (c->sa) {
        char *why = NULL;
        rc = store_async_put(c->sa, k, data, len, flags, &why);
        if (rc)
            rc = client_fail(c, ACME_E_STORAGE,
                             "storage: could not write %s (%s); the previous value is unchanged — "
                             "check free space and permissions of the state directory", k,
                             why ? why : acme_strerror(rc));
        free(why);
        free(k);
        return rc;
    }
    rc = c->storage.put(c->storage_ud, k, data, len, flags);
    if (rc)
        rc = client_fail(c, ACME_E_STORAGE,
                  "storage: could not write %s (%s)%s%s; the previous value is unchanged — "
                  "check free space and permissions of the state directory", k,
                  acme_strerror(rc), *table_error(c) ? ": " : "", table_error(c));
    free(k);
    return rc;
}

int store_remove(acme_client *c, const char *rel)
{
    int rc = store_ready(c);
    if (rc)
        return rc;
    char *k = full_key(c, rel);
    if (!k)
        return ACME_E_NOMEM;
    char *why = NULL;
    rc = c->sa ? store_async_remove(c->sa, k, &why) : c->storage.remove(c->storage_ud, k);
    if (rc)
        rc = client_fail(c, ACME_E_STORAGE, "storage: could not remove %s (%s)%s%s", k,
                         why ? why : acme_strerror(rc), !why && *table_error(c) ? ": " : "", why ? "" : table_error(c));
    free(why);
    free(k);
    return rc;
}

struct strip_ctx {
    size_t skip;
    acme_storage_list_cb cb;
    void *cbdata;
};

static int strip_prefix(void *d, const char *key)
{
    struct strip_ctx *s = d;
    if (strlen(key) < s->skip)
        return 0;
    return s->cb(s->cbdata, key + s->skip);
}

int store_list(acme_client *c, const char *rel_prefix, acme_storage_list_cb cb, void *cbdata)
{
    int rc = store_ready(c);
    if (rc)
        return rc;
    if (!c->storage.list)
        return client_fail(c, ACME_E_UNSUPPORTED, "storage: the host storage has no list()");
    char *k = full_key(c, rel_prefix);
    if (!k)
        return ACME_E_NOMEM;
    /* Callers see keys relative to the CA directory, as they wrote them. */
    struct strip_ctx s = { strlen(c->ca_id) + 1, cb, cbdata };
    rc = c->sa ? store_async_list(c->sa, k, strip_prefix, &s) : c->storage.list(c->storage_ud, k, strip_prefix, &s);
    free(k);
    if (rc)
        return client_fail(c, ACME_E_STORAGE, "storage: could not list %s (%s)%s%s", rel_prefix, acme_strerror(rc),
                           *table_error(c) ? ": " : "", table_error(c));
    return ACME_OK;
}
