/* Certificates: the object hosts receive, and how it is kept. Key and
 * chain are stored as ONE object (certs/<id>/cert.json), so a crash can
 * never pair a new key with an old chain. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "storage_file.h"

char *certificate_id_for(const char *name)
{
    if (!name || !*name)
        return NULL;
    char *id = malloc(strlen(name) + 1);
    if (!id)
        return NULL;
    size_t n = 0;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        /* "*." and IPv6 colons are not file-name friendly. */
        if (ch == '*' || ch == ':')
            ch = '_';
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_')) {
            free(id);
            return NULL;
        }
        id[n++] = ch;
    }
    id[n] = '\0';
    if (!strcmp(id, ".") || !strcmp(id, "..")) {
        free(id);
        return NULL;
    }
    return id;
}

void certificate_free(acme_certificate *cert)
{
    if (!cert)
        return;
    free(cert->id);
    free(cert->chain);
    secure_free_str(cert->key);
    cert_info_free(cert->info);
    json_decref(cert->params);
    free(cert);
}

int certificate_adopt(const char *id, char *normalized, cert_info *info, const char *key_pem,
                      acme_certificate **out)
{
    *out = NULL;
    acme_certificate *cert = calloc(1, sizeof(*cert));
    if (!cert) {
        free(normalized);
        cert_info_free(info);
        return ACME_E_NOMEM;
    }
    cert->chain = normalized;
    cert->info = info;
    cert->id = strdup(id);
    cert->key = strdup(key_pem);
    if (!cert->id || !cert->key) {
        certificate_free(cert);
        return ACME_E_NOMEM;
    }
    *out = cert;
    return ACME_OK;
}

int certificate_new(const char *id, const char *chain_pem, const char *key_pem, acme_certificate **out)
{
    *out = NULL;
    char *normalized = NULL;
    cert_info *info = NULL;
    /* Lenient, as normalizing always was: text outside the blocks goes. */
    int rc = cert_chain_read(chain_pem, strlen(chain_pem), 0, NULL, &normalized, &info);
    if (rc)
        return rc;
    return certificate_adopt(id, normalized, info, key_pem, out);
}

static char *cert_rel(const char *id)
{
    return xasprintf("certs/%s/cert.json", id);
}

/* cert.json's text: {"chain":..,"key":..,"params":..}. The two PEMs are
 * written by json_append_ascii_string (a quarter of jansson's cost for
 * these kilobytes, measured per issuance); jansson only when a PEM holds
 * something other than ASCII, which a normalized chain and our own key
 * never do. */
static char *cert_json_text(const acme_certificate *cert)
{
    acme_buf b;
    buf_init(&b, 0);
    b.secret = 1;
    char *params = cert->params ? json_dumps(cert->params, JSON_COMPACT) : NULL;
    int rc = (cert->params && !params) ? ACME_E_NOMEM : ACME_OK;
    if (!rc)
        rc = buf_append_str(&b, "{\n \"chain\": ");
    if (!rc)
        rc = json_append_ascii_string(&b, cert->chain);
    if (!rc)
        rc = buf_append_str(&b, ",\n \"key\": ");
    if (!rc)
        rc = json_append_ascii_string(&b, cert->key);
    if (!rc && params) {
        rc = buf_append_str(&b, ",\n \"params\": ");
        if (!rc)
            rc = buf_append_str(&b, params);
    }
    if (!rc)
        rc = buf_append_str(&b, "\n}");
    free(params);
    if (!rc)
        return buf_steal(&b, NULL);
    buf_clear(&b);
    if (rc != ACME_E_INVALID_ARG)
        return NULL;
    json_t *o = json_pack("{s:s,s:s,s:O?}", "chain", cert->chain, "key", cert->key, "params", cert->params);
    char *text = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
    json_decref(o);  /* jansson does not zero; the text copy is what we control */
    return text;
}

int certificate_store(acme_client *c, const acme_certificate *cert)
{
    char *text = cert_json_text(cert);
    char *rel = cert_rel(cert->id);
    int rc = (text && rel) ? store_put(c, rel, text, strlen(text), ACME_STORAGE_SECRET) : ACME_E_NOMEM;
    secure_free_str(text);
    free(rel);
    return rc;
}

int certificate_load(acme_client *c, const char *id, acme_certificate **out)
{
    *out = NULL;
    char *rel = cert_rel(id);
    if (!rel)
        return ACME_E_NOMEM;
    acme_buf b;
    buf_init(&b, 1024 * 1024);
    b.secret = 1;
    int rc = store_get(c, rel, &b);
    json_t *o = NULL;
    if (!rc) {
        o = json_parse_object(b.data, b.len);
        const char *chain = o ? json_str(o, "chain") : NULL;
        const char *key = o ? json_str(o, "key") : NULL;
        if (!chain || !key)
            rc = client_fail(c, ACME_E_STORAGE, "stored certificate %s/%s is damaged; issue it again", c->ca_id, rel);
        else if ((rc = certificate_new(id, chain, key, out)))
            rc = client_fail(c, rc, "stored certificate %s/%s cannot be parsed (%s); issue it again",
                      c->ca_id, rel, acme_strerror(rc));
        else if (json_is_object(json_object_get(o, "params")))
            (*out)->params = json_incref(json_object_get(o, "params"));
    }
    json_decref(o);
    buf_clear(&b);
    free(rel);
    return rc;
}

ACME_EXPORT const char *acme_certificate_chain_pem(const acme_certificate *c) { return c ? c->chain : NULL; }
ACME_EXPORT const char *acme_certificate_key_pem(const acme_certificate *c) { return c ? c->key : NULL; }
ACME_EXPORT size_t acme_certificate_name_count(const acme_certificate *c) { return c ? c->info->name_count : 0; }

ACME_EXPORT const char *acme_certificate_name(const acme_certificate *c, size_t i)
{
    return (c && i < c->info->name_count) ? c->info->names[i] : NULL;
}

ACME_EXPORT int64_t acme_certificate_not_before(const acme_certificate *c) { return c ? c->info->not_before : 0; }
ACME_EXPORT int64_t acme_certificate_not_after(const acme_certificate *c) { return c ? c->info->not_after : 0; }
ACME_EXPORT const char *acme_certificate_issuer(const acme_certificate *c) { return c ? c->info->issuer_cn : NULL; }
ACME_EXPORT const char *acme_certificate_id(const acme_certificate *c) { return c ? c->id : NULL; }

/* Renewal point without ARI: when a third of the lifetime is left, or half
 * for certificates shorter than ten days (there is less room to retry). */
int64_t renewal_time(int64_t not_before, int64_t not_after)
{
    int64_t life = not_after - not_before;
    if (life <= 0)
        return not_before;
    return life < 10 * 86400 ? not_after - life / 2 : not_after - life / 3;
}

/* ---- stored certificates ---- */

struct list_ctx {
    int (*cb)(void *ud, const char *cert_id);
    void *ud;
    int stopped;
};

static int list_one(void *d, const char *key)
{
    struct list_ctx *l = d;
    /* key = "certs/<id>/cert.json" */
    const char *id = key + strlen("certs/");
    const char *slash = strchr(id, '/');
    if (!slash || strcmp(slash, "/cert.json") != 0)
        return 0;
    char *copy = strndup(id, (size_t)(slash - id));
    if (!copy)
        return 1;
    int r = l->cb(l->ud, copy);
    free(copy);
    if (r)
        l->stopped = 1;
    return r;
}

ACME_EXPORT int acme_cert_list(acme_client *c, int (*cb)(void *ud, const char *cert_id), void *ud)
{
    if (!c || !cb)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    struct list_ctx l = { cb, ud, 0 };
    return store_list(c, "certs/", list_one, &l);
}

ACME_EXPORT int acme_cert_load(acme_client *c, const char *cert_id,
                               int (*cb)(void *ud, const acme_certificate *cert), void *ud)
{
    if (!c || !cert_id || !cb)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    if (!storage_key_valid(cert_id) || strchr(cert_id, '/'))
        return client_fail(c, ACME_E_INVALID_ARG, "\"%s\" is not a certificate id", cert_id);
    acme_certificate *cert = NULL;
    int rc = certificate_load(c, cert_id, &cert);
    if (rc == ACME_E_NOT_FOUND)
        return client_fail(c, rc, "no stored certificate \"%s\" for %s", cert_id, c->directory_url);
    if (rc)
        return rc;
    rc = cb(ud, cert);
    certificate_free(cert);
    return rc;
}
