/* The haproxy module on a cluster: several HAProxy hosts behind a load
 * balancer, one etcd (doc/cluster.md, doc/haproxy.md "A cluster of
 * HAProxy hosts").
 *
 * The validator may reach any HAProxy, so every HAProxy's map must hold
 * every answer, whichever node published it. With the etcd-* settings the
 * module opens its own libacme client on the cluster's etcd (the host's
 * client is not reachable from a module, and a private one keeps its etcd
 * requests off the host's threads):
 *  - an acme_etcd_sink puts every answer any node publishes into this
 *    HAProxy's map (`add map`) or acme-tls/1 crt-list, and takes it out
 *    again when it leaves the store; the sink runs on libacme's etcd
 *    thread, so every sequence of runtime-API commands (hooks and sink)
 *    holds the module's mutex;
 *  - publish puts the answer into this HAProxy first, then into etcd, and
 *    returns once every node's HAProxy has loaded it (the hook may block:
 *    hosts run module hooks off their event loop).
 * Certificates are not this file's business: the host installs on every
 * node what any node ordered (acmectl run's cluster-poll). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <acme/client.h>
#include <acme/etcd.h>

#include "haproxy.h"
#include "modcfg.h"

#define MAX_ENDPOINTS 16
#define DEFAULT_WAIT_MS 5000

struct hap_cluster {
    acme_client *c;
    hap peer;                 /* the etcd thread's view: h's settings, its own error */
    pthread_mutex_t mu;       /* one runtime-API sequence at a time */
    int mu_made;
    char *endpoint_text;      /* for the log */
    char *endpoints[MAX_ENDPOINTS];
    size_t endpoint_count;
    char *prefix, *ca_file, *username, *password, *node_name;
    unsigned wait_ms;
    char last_sink_err[HAP_ERR]; /* logged once, not every poll */
};

const char *const hap_etcd_keys[] = {
    "etcd-endpoints", "etcd-prefix", "etcd-ca-file", "etcd-username", "etcd-password-file", "etcd-node-name",
    "etcd-wait", NULL,
};

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void cluster_free_settings(hap_cluster *cl)
{
    free(cl->endpoint_text);
    for (size_t i = 0; i < cl->endpoint_count; i++)
        free(cl->endpoints[i]);
    free(cl->prefix);
    free(cl->ca_file);
    free(cl->username);
    wipe_free(cl->password);
    free(cl->node_name);
}

static int dup_opt(modcfg *c, const char *key, char **out)
{
    const char *v = modcfg_get(c, key);
    *out = NULL;
    if (!v)
        return ACME_OK;
    if (!*v)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "%s: empty", key);
    if (!(*out = strdup(v)))
        return modcfg_bad(c, ACME_E_NOMEM, "out of memory");
    return ACME_OK;
}

static int read_password(modcfg *c, const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "etcd-password-file: %s: %s", path, strerror(errno));
    char line[512];
    int ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    if (!ok)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "etcd-password-file: %s is empty", path);
    line[strcspn(line, "\r\n")] = '\0';
    *out = strdup(line);
    explicit_bzero(line, sizeof(line));
    return *out ? ACME_OK : modcfg_bad(c, ACME_E_NOMEM, "out of memory");
}

int hap_cluster_configure(hap *h, modcfg *c)
{
    const char *eps = modcfg_get(c, "etcd-endpoints");
    if (!eps) {
        for (size_t i = 0; hap_etcd_keys[i]; i++)
            if (modcfg_get(c, hap_etcd_keys[i]))
                return modcfg_bad(c, ACME_E_INVALID_ARG, "%s: etcd settings without etcd-endpoints (the cluster's "
                                  "client URLs)", hap_etcd_keys[i]);
        return ACME_OK;
    }
    hap_cluster *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return modcfg_bad(c, ACME_E_NOMEM, "out of memory");
    h->cluster = cl;
    if (!(cl->endpoint_text = strdup(eps)))
        return modcfg_bad(c, ACME_E_NOMEM, "out of memory");
    /* Separated by spaces (as acmectl's [global] etcd-endpoints) or commas. */
    for (const char *p = eps; *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (!len)
            break;
        if (cl->endpoint_count == MAX_ENDPOINTS)
            return modcfg_bad(c, ACME_E_INVALID_ARG, "etcd-endpoints: more than %d", MAX_ENDPOINTS);
        if (strncmp(p, "http://", 7) && strncmp(p, "https://", 8))
            return modcfg_bad(c, ACME_E_INVALID_ARG, "etcd-endpoints: \"%.*s\": give etcd client URLs such as "
                              "http://10.0.0.1:2379", (int)len, p);
        if (!(cl->endpoints[cl->endpoint_count++] = strndup(p, len)))
            return modcfg_bad(c, ACME_E_NOMEM, "out of memory");
        p += len;
    }
    if (!cl->endpoint_count)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "etcd-endpoints: no endpoints");
    int rc;
    if ((rc = dup_opt(c, "etcd-prefix", &cl->prefix)) || (rc = dup_opt(c, "etcd-ca-file", &cl->ca_file)) ||
        (rc = dup_opt(c, "etcd-username", &cl->username)) || (rc = dup_opt(c, "etcd-node-name", &cl->node_name)))
        return rc;
    if (cl->prefix && cl->prefix[strlen(cl->prefix) - 1] != '/')
        return modcfg_bad(c, ACME_E_INVALID_ARG, "etcd-prefix: \"%s\": the prefix ends in '/' (e.g. /libacme/); "
                          "give the same as the host's", cl->prefix);
    const char *pw = modcfg_get(c, "etcd-password-file");
    if (pw && !cl->username)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "etcd-password-file: a password without etcd-username");
    if (pw && (rc = read_password(c, pw, &cl->password)))
        return rc;
    if ((rc = modcfg_uint(c, "etcd-wait", 500, 60000, DEFAULT_WAIT_MS, &cl->wait_ms)))
        return rc;
    if (!cl->node_name) {
        /* Not the host's own node name: if the host shares answers of its
         * own (acmectl's built-in responders), both are listed. */
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        if (asprintf(&cl->node_name, "%s:%ld:haproxy", host, (long)getpid()) < 0) {
            cl->node_name = NULL;
            return modcfg_bad(c, ACME_E_NOMEM, "out of memory");
        }
    }
    return ACME_OK;
}

/* ---- the sink: answers any node published, into this HAProxy ---------- */

static void sink_result(hap_cluster *cl, int rc, const char *what)
{
    hap *p = &cl->peer;
    if (rc == ACME_OK) {
        if (cl->last_sink_err[0]) {
            hap_log(p, ACME_LOG_INFO, "cluster: HAProxy takes the cluster's answers again");
            cl->last_sink_err[0] = '\0';
        }
        return;
    }
    /* libacme tries again at every poll (250 ms): one line per new reason. */
    if (strcmp(cl->last_sink_err, p->err) != 0) {
        hap_log(p, ACME_LOG_WARNING, "cluster: %s: %s; this node does not acknowledge it, so the publishing node's "
                "validation waits and then fails (it is retried later)", what, p->err);
        snprintf(cl->last_sink_err, sizeof(cl->last_sink_err), "%s", p->err);
    }
}

static int sink_http01(void *ud, const char *token, const char *key_authorization)
{
    hap_cluster *cl = ud;
    pthread_mutex_lock(&cl->mu);
    cl->peer.err[0] = '\0';
    int rc = hap_map_publish(&cl->peer, token, key_authorization);
    sink_result(cl, rc, "the http-01 answer of another node could not be put into the map");
    if (rc == ACME_OK)
        hap_log(&cl->peer, ACME_LOG_DEBUG, "cluster: http-01 token %s is in map %s", token, cl->peer.map);
    pthread_mutex_unlock(&cl->mu);
    return rc;
}

static int sink_tlsalpn01(void *ud, const char *identifier, const char *cert_pem, const char *key_pem)
{
    hap_cluster *cl = ud;
    pthread_mutex_lock(&cl->mu);
    cl->peer.err[0] = '\0';
    int rc = hap_alpn_publish(&cl->peer, identifier, cert_pem, key_pem);
    sink_result(cl, rc, "the tls-alpn-01 answer of another node could not be put into HAProxy");
    pthread_mutex_unlock(&cl->mu);
    return rc;
}

static void sink_remove(void *ud, acme_responder_kind kind, const char *what)
{
    hap_cluster *cl = ud;
    pthread_mutex_lock(&cl->mu);
    cl->peer.err[0] = '\0';
    int rc = kind == ACME_RESPONDER_HTTP01 ? hap_map_unpublish(&cl->peer, what) : hap_alpn_unpublish(&cl->peer, what);
    if (rc != ACME_OK)
        hap_log(&cl->peer, ACME_LOG_WARNING, "cluster: removing the answer for %s from HAProxy: %s", what,
                cl->peer.err);
    pthread_mutex_unlock(&cl->mu);
}

int hap_cluster_start(hap *h, char *err, size_t errlen)
{
    hap_cluster *cl = h->cluster;
    if (!cl)
        return ACME_OK;
    pthread_mutex_init(&cl->mu, NULL);
    cl->mu_made = 1;
    cl->peer = *h;          /* settings shared (read only), state its own */
    cl->peer.cluster = NULL;
    cl->peer.alpn_pubs = NULL;
    cl->peer.err[0] = '\0';
    /* The directory URL is never fetched: this client only talks to etcd. */
    int rc = acme_client_new("https://haproxy-module.invalid/directory", &cl->c);
    acme_etcd_options o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.endpoints = (const char *const *)cl->endpoints;
    o.endpoint_count = cl->endpoint_count;
    o.prefix = cl->prefix;
    o.ca_file = cl->ca_file;
    o.username = cl->username;
    o.password = cl->password;
    o.node_name = cl->node_name;
    /* Short, as mod_acme's: freeing the client (the host stopping or
     * reloading) revokes the node lease, member after member. */
    o.request_timeout_ms = 2000;
    o.connect_timeout_ms = 500;
    if (rc == ACME_OK && (rc = acme_client_set_storage_etcd(cl->c, &o)) != ACME_OK) {
        snprintf(err, errlen, "etcd-endpoints: %s", acme_client_last_error(cl->c));
        return rc;
    }
    if (rc != ACME_OK) {
        snprintf(err, errlen, "cannot make the module's etcd client: %s", acme_strerror(rc));
        return rc;
    }
    if (!h->map && !h->alpn_crt_list) {
        hap_log(h, ACME_LOG_INFO, "cluster: neither map nor alpn-crt-list is set: no answers to share");
        return ACME_OK;
    }
    acme_etcd_sink s;
    memset(&s, 0, sizeof(s));
    s.size = sizeof(s);
    s.ud = cl;
    s.add_http01 = h->map ? sink_http01 : NULL;
    s.add_tlsalpn01 = h->alpn_crt_list ? sink_tlsalpn01 : NULL;
    s.remove = sink_remove;
    /* Loads what the store holds now into HAProxy before it returns. */
    if ((rc = acme_client_etcd_attach_sink(cl->c, &s)) != ACME_OK) {
        snprintf(err, errlen, "etcd-endpoints: cannot follow the cluster's answers: %s",
                 *acme_client_last_error(cl->c) ? acme_client_last_error(cl->c) : acme_strerror(rc));
        return rc;
    }
    hap_log(h, ACME_LOG_INFO, "cluster: every answer published through etcd %s goes into this HAProxy (node %s)",
            cl->endpoint_text, cl->node_name);
    return ACME_OK;
}

void hap_cluster_free(hap *h)
{
    hap_cluster *cl = h->cluster;
    if (!cl)
        return;
    /* The client first: it stops the etcd thread that calls the sink, and
     * takes this node out of the list the publishers wait for. */
    acme_client_free(cl->c);
    if (cl->mu_made)
        pthread_mutex_destroy(&cl->mu);
    cluster_free_settings(cl);
    free(cl);
    h->cluster = NULL;
}

void hap_lock(hap *h)
{
    if (h->cluster && h->cluster->mu_made)
        pthread_mutex_lock(&h->cluster->mu);
}

void hap_unlock(hap *h)
{
    if (h->cluster && h->cluster->mu_made)
        pthread_mutex_unlock(&h->cluster->mu);
}

int hap_cluster_publish(hap *h, const acme_challenge *ch)
{
    hap_cluster *cl = h->cluster;
    if (!cl)
        return ACME_OK;
    const char *type = acme_challenge_type_name(acme_challenge_get_type(ch));
    const char *ident = acme_challenge_identifier(ch);
    int rc = acme_client_etcd_publish(cl->c, ch, cl->wait_ms);
    if (rc == ACME_OK) {
        hap_log(h, ACME_LOG_DEBUG, "cluster: every node's HAProxy has the %s answer for %s", type, ident);
        return ACME_OK;
    }
    if (rc == ACME_E_TIMEOUT)
        hap_fail(h, rc, "cluster: the %s answer for %s did not reach every node's HAProxy within %u ms (a node is "
                 "slow, cut off from etcd, or its HAProxy is down: see the warnings of that node's module); the "
                 "CA is not asked, the order is retried later", type, ident, cl->wait_ms);
    else
        hap_fail(h, rc, "cluster: sharing the %s answer for %s through etcd failed: %s", type, ident,
                 *acme_client_last_error(cl->c) ? acme_client_last_error(cl->c) : acme_strerror(rc));
    acme_client_etcd_unpublish(cl->c, ch);
    return rc;
}

void hap_cluster_unpublish(hap *h, const acme_challenge *ch)
{
    hap_cluster *cl = h->cluster;
    if (cl && acme_client_etcd_unpublish(cl->c, ch) != ACME_OK)
        hap_log(h, ACME_LOG_WARNING, "cluster: removing the %s answer for %s from etcd failed: %s (it goes with "
                "this node's lease)", acme_challenge_type_name(acme_challenge_get_type(ch)),
                acme_challenge_identifier(ch), acme_client_last_error(cl->c));
}
