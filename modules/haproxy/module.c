/* The haproxy module: entry point, instances, and the three hooks.
 *
 *   publish    http-01      add map <map> <token> <key authorization>
 *              tls-alpn-01  new/set/commit ssl cert + add ssl crt-list
 *                           (the acme-tls/1 bind's own list)
 *   unpublish  the reverse: del map; del ssl crt-list + del ssl cert
 *   install    set ssl cert + commit ssl cert (new ssl cert + add ssl
 *              crt-list for a new name), then the same PEM to disk
 *
 * With etcd-endpoints (a cluster of HAProxy hosts, haproxy_etcd.c)
 * publish also shares the answer through etcd and waits until every
 * node's HAProxy has it, and the answers of the other nodes come into this
 * HAProxy from libacme's etcd thread: each hook's runtime-API commands run
 * under hap_lock.
 *
 * The only exported symbol is acme_module_entry (haproxy.map). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <acme/error.h>
#include <acme/host.h>
#include <acme/module.h>

#include "haproxy.h"

const acme_module_ops *acme_module_entry(unsigned host_abi_version);

/* ---- helpers for every file ------------------------------------------- */

static void one_line(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

int hap_fail(hap *h, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->err, sizeof(h->err), fmt, ap);
    va_end(ap);
    one_line(h->err);
    return code;
}

void hap_log(hap *h, acme_log_level level, const char *fmt, ...)
{
    if (!h->host.log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    one_line(msg);
    h->host.log(h->host.ud, level, msg);
}

int hap_run(hap *h, const char *cmd, const char *payload, char **reply, hap_kind *kind)
{
    char err[HAP_ERR];
    int reached = 0;
    *reply = NULL;
    *kind = HAP_EMPTY;
    hap_log(h, ACME_LOG_DEBUG, "-> %s%s", cmd, payload ? " << (payload)" : "");
    int rc = hap_command(&h->sock, cmd, payload, reply, &reached, err, sizeof(err));
    h->unreachable = !reached;
    /* ACME_E_NETWORK reads "could not reach the ACME server" in the
     * engine's messages: the admin socket is the host's side. */
    if (rc == ACME_E_NETWORK)
        rc = ACME_E_CALLBACK;
    if (rc != ACME_OK)
        return hap_fail(h, rc, "%s", err);
    *kind = hap_classify(*reply);
    if (h->host.log) {
        char line[300];
        hap_reply_line(*reply, line, sizeof(line));
        hap_log(h, ACME_LOG_DEBUG, "<- %s", *line ? line : "(empty line)");
    }
    return ACME_OK;
}

int hap_refused(hap *h, const char *what, const char *reply, hap_kind kind)
{
    char line[600];
    hap_reply_line(reply, line, sizeof(line));
    const char *hint = "";
    int code = ACME_E_CALLBACK;
    switch (kind) {
    case HAP_PERMISSION:
        hint = " — the admin socket needs `level admin` (stats socket <path> ... level admin)";
        break;
    case HAP_UNKNOWN_COMMAND:
        hint = " — HAProxy 2.6 or later and an admin socket at `level admin` are needed";
        break;
    case HAP_UNKNOWN_MAP:
        hint = " — the map must be referenced by haproxy.cfg when HAProxy starts (the `http-request "
               "return ... map(<map>)` lines of doc/haproxy.md), with exactly the name of the module's "
               "`map` setting";
        code = ACME_E_INVALID_ARG;
        break;
    case HAP_UNKNOWN_LIST:
        hint = " — the crt-list must be loaded by a bind line of haproxy.cfg (`crt-list <file>`, or "
               "`crt <dir>/` for crt-dir) when HAProxy starts";
        code = ACME_E_INVALID_ARG;
        break;
    case HAP_KEY_MISMATCH:
        code = ACME_E_KEY_MISMATCH;
        break;
    case HAP_BUSY:
        hint = " — another certificate update is in progress over the admin socket; try again once it is "
               "finished";
        break;
    default:
        break;
    }
    return hap_fail(h, code, "HAProxy refused `%s`: %s%s", what, *line ? line : "(no text)", hint);
}

/* ---- the operations --------------------------------------------------- */

static int hap_create(const acme_module_host *host, const char *const *keys, const char *const *values,
                      size_t n, void **instance, char *err, size_t errlen)
{
    *instance = NULL;
    hap *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return ACME_E_NOMEM;
    }
    if (host) {
        size_t sz = host->size < sizeof(h->host) ? host->size : sizeof(h->host);
        memcpy(&h->host, host, sz);
    }
    int rc = hap_configure(h, keys, values, n, err, errlen);
    if (rc == ACME_OK)
        hap_log(h, ACME_LOG_INFO, "admin socket %s; http-01 %s; tls-alpn-01 %s; certificates in %s%s%s",
                h->socket_path, h->map ? h->map : "off", h->alpn_crt_list ? h->alpn_crt_list : "off",
                h->cert_dir, h->crt_list ? ", crt-list " : (h->crt_dir ? ", crt dir " : ""),
                h->crt_list ? h->crt_list : (h->crt_dir ? h->crt_dir : ""));
    /* On a cluster: join it and load the answers stored there. */
    if (rc == ACME_OK)
        rc = hap_cluster_start(h, err, errlen);
    if (rc) {
        hap_config_free(h);
        free(h);
        return rc;
    }
    *instance = h;
    return ACME_OK;
}

static void hap_destroy(void *instance)
{
    hap *h = instance;
    if (!h)
        return;
    hap_config_free(h);
    free(h);
}

static unsigned hap_types(void *instance)
{
    return ((hap *)instance)->types;
}

static int check_type(hap *h, const acme_challenge *ch)
{
    acme_challenge_type t = acme_challenge_get_type(ch);
    if (t == ACME_CHALLENGE_HTTP_01 && h->map)
        return ACME_OK;
    if (t == ACME_CHALLENGE_TLS_ALPN_01 && h->alpn_crt_list)
        return ACME_OK;
    if (t == ACME_CHALLENGE_HTTP_01 || t == ACME_CHALLENGE_TLS_ALPN_01)
        return hap_fail(h, ACME_E_UNSUPPORTED, "%s is not configured: set `%s`", acme_challenge_type_name(t),
                        t == ACME_CHALLENGE_HTTP_01 ? "map" : "alpn-crt-list");
    return hap_fail(h, ACME_E_UNSUPPORTED, "the haproxy module answers http-01 and tls-alpn-01, not %s",
                    acme_challenge_type_name(t));
}

static int publish_here(hap *h, const acme_challenge *ch)
{
    if (acme_challenge_get_type(ch) == ACME_CHALLENGE_HTTP_01)
        return hap_map_publish(h, acme_challenge_token(ch), acme_challenge_key_authorization(ch));
    int rc = hap_alpn_publish(h, acme_challenge_identifier(ch), acme_challenge_alpn_cert_pem(ch),
                              acme_challenge_alpn_key_pem(ch));
    if (rc == ACME_OK) {
        /* Remember whose certificate is up, so that unpublishing an older
         * challenge for the same name leaves the newer one alone. */
        hap_alpn_pub *p = calloc(1, sizeof(*p));
        if (p && (p->identifier = strdup(acme_challenge_identifier(ch))) &&
            (p->token = strdup(acme_challenge_token(ch)))) {
            for (hap_alpn_pub **pp = &h->alpn_pubs; *pp; pp = &(*pp)->next)
                if (!strcmp((*pp)->identifier, p->identifier)) {
                    hap_alpn_pub *old = *pp;
                    *pp = old->next;
                    free(old->identifier);
                    free(old->token);
                    free(old);
                    break;
                }
            p->next = h->alpn_pubs;
            h->alpn_pubs = p;
        } else if (p) {
            free(p->identifier);
            free(p);
        }
    }
    return rc;
}

static int unpublish_here(hap *h, const acme_challenge *ch)
{
    if (acme_challenge_get_type(ch) == ACME_CHALLENGE_HTTP_01)
        return hap_map_unpublish(h, acme_challenge_token(ch));
    const char *ident = acme_challenge_identifier(ch), *token = acme_challenge_token(ch);
    for (hap_alpn_pub **pp = &h->alpn_pubs; *pp; pp = &(*pp)->next) {
        hap_alpn_pub *p = *pp;
        if (strcmp(p->identifier, ident) != 0)
            continue;
        if (strcmp(p->token, token) != 0) {
            hap_log(h, ACME_LOG_DEBUG, "tls-alpn-01 for %s: a newer challenge is up; leaving it", ident);
            return ACME_OK;
        }
        *pp = p->next;
        free(p->identifier);
        free(p->token);
        free(p);
        break;
    }
    return hap_alpn_unpublish(h, ident);
}

static int hap_publish(void *instance, const acme_challenge *ch)
{
    hap *h = instance;
    h->err[0] = '\0';
    int rc = check_type(h, ch);
    if (rc)
        return rc;
    hap_lock(h);
    rc = publish_here(h, ch);
    hap_unlock(h);
    /* On a cluster, then into etcd: returns once every node's HAProxy has
     * it (not under the lock: this node's own sink loads it too). */
    if (rc == ACME_OK && (rc = hap_cluster_publish(h, ch)) != ACME_OK) {
        char why[HAP_ERR];
        snprintf(why, sizeof(why), "%s", h->err);
        hap_lock(h);
        unpublish_here(h, ch);
        hap_unlock(h);
        snprintf(h->err, sizeof(h->err), "%s", why);
    }
    return rc;
}

static int hap_unpublish(void *instance, const acme_challenge *ch)
{
    hap *h = instance;
    h->err[0] = '\0';
    int rc = check_type(h, ch);
    if (rc)
        return rc;
    /* The store keys a tls-alpn-01 answer by its name: leave a newer
     * challenge's there too. */
    int newer = 0;
    if (acme_challenge_get_type(ch) == ACME_CHALLENGE_TLS_ALPN_01)
        for (hap_alpn_pub *p = h->alpn_pubs; p; p = p->next)
            newer |= !strcmp(p->identifier, acme_challenge_identifier(ch)) &&
                     strcmp(p->token, acme_challenge_token(ch)) != 0;
    if (!newer)
        hap_cluster_unpublish(h, ch);
    hap_lock(h);
    rc = unpublish_here(h, ch);
    hap_unlock(h);
    return rc;
}

static int hap_install_hook(void *instance, const acme_certificate *cert)
{
    hap *h = instance;
    h->err[0] = '\0';
    const char *id = acme_certificate_id(cert);
    const char *chain = acme_certificate_chain_pem(cert), *key = acme_certificate_key_pem(cert);
    if (!id || !chain || !key)
        return hap_fail(h, ACME_E_INVALID_ARG, "the certificate has no id, chain or key");
    hap_lock(h);
    int rc = hap_install(h, id, chain, key);
    hap_unlock(h);
    return rc;
}

static const char *hap_last_error(void *instance)
{
    hap *h = instance;
    return h && h->err[0] ? h->err : NULL;
}

static const acme_module_ops hap_ops = {
    .size = sizeof(acme_module_ops),
    .abi_version = ACME_MODULE_ABI_VERSION,
    .name = "haproxy",
    .create = hap_create,
    .destroy = hap_destroy,
    .challenge_types = hap_types,
    .publish = hap_publish,
    .unpublish = hap_unpublish,
    .install = hap_install_hook,
    .last_error = hap_last_error,
    /* Module ABI 2: said here, so hosts need not probe. publish is quick
     * (one command on HAProxy's socket): no present/wait split. */
    .flags = ACME_MODULE_PUBLISHES | ACME_MODULE_INSTALLS,
};

__attribute__((visibility("default"))) const acme_module_ops *acme_module_entry(unsigned host_abi_version)
{
    return host_abi_version == ACME_MODULE_ABI_VERSION ? &hap_ops : NULL;
}
