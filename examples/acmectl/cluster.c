/* `run` on a cluster: storage = etcd (doc/cluster.md).
 *
 * Three jobs on top of the etcd storage libacme ships:
 *  - publish: the built-in responder's answer also goes into etcd, and the
 *    call returns once every node's responder has loaded it, so the CA may
 *    validate against whichever node its connection reaches;
 *  - every node installs: every cluster-poll seconds the stored certificates
 *    this node manages are read back, and one newer than what this node
 *    installed (another node ordered it) is installed here too;
 *  - the status file says when etcd cannot be reached. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <acme/acme.h>

#include "acmectl.h"
#include "hostclient.h"

#define DEFAULT_POLL_S 10
#define PUBLISH_WAIT_MS 5000

typedef struct seen_cert {
    char *id;
    int64_t not_after;  /* of what was installed here */
} seen_cert;

/* A publish waiting for every node's acknowledgement. */
typedef struct pending_pub {
    const acme_challenge *ch;
    time_t deadline;
} pending_pub;

struct cluster {
    pending_pub *pending;
    size_t pending_count;
    acme_client *c;           /* publishes; its responders hear every node */
    acme_client **polled;     /* [ca NAME] sections: every CA's client, c first */
    size_t polled_count;
    router *rt;
    acme_engine *e;
    int builtin_http, builtin_alpn;
    unsigned poll_s;
    time_t next_poll;
    seen_cert *seen;
    size_t seen_count;
    char *status;
    int was_bad;      /* etcd's health at the last status */
};

int cluster_storage(acme_client *c, const run_etcd *cfg)
{
    acme_etcd_options o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.endpoints = (const char *const *)cfg->endpoints;
    o.endpoint_count = cfg->endpoint_count;
    o.prefix = cfg->prefix;
    o.ca_file = cfg->ca_file;
    o.username = cfg->username;
    o.password = cfg->password;
    o.lock_ttl_s = cfg->lock_ttl;
    o.node_name = cfg->node_name;
    return acme_client_set_storage_etcd(c, &o);
}

cluster *cluster_new(acme_client *c, router *rt, acme_responder *http, acme_responder *alpn, const run_etcd *cfg)
{
    cluster *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    cl->c = c;
    cl->rt = rt;
    cl->poll_s = cfg->poll ? cfg->poll : DEFAULT_POLL_S;
    cl->next_poll = time(NULL) + cl->poll_s;
    /* Every node's built-in responders answer what any node publishes. */
    if (http && acme_client_etcd_attach_responder(c, http) == ACME_OK)
        cl->builtin_http = 1;
    if (alpn && acme_client_etcd_attach_responder(c, alpn) == ACME_OK)
        cl->builtin_alpn = 1;
    return cl;
}

void cluster_bind_engine(cluster *cl, acme_engine *e)
{
    cl->e = e;
}

void cluster_free(cluster *cl)
{
    if (!cl)
        return;
    for (size_t i = 0; i < cl->seen_count; i++)
        free(cl->seen[i].id);
    free(cl->seen);
    free(cl->pending);
    free(cl->polled);
    free(cl->status);
    free(cl);
}

int cluster_poll_client(cluster *cl, acme_client *c)
{
    acme_client **n = realloc(cl->polled, (cl->polled_count + 1) * sizeof(*n));
    if (!n)
        return ACME_E_NOMEM;
    cl->polled = n;
    n[cl->polled_count++] = c;
    return ACME_OK;
}

static seen_cert *seen_of(cluster *cl, const char *id)
{
    for (size_t i = 0; i < cl->seen_count; i++)
        if (!strcmp(cl->seen[i].id, id))
            return &cl->seen[i];
    seen_cert *n = realloc(cl->seen, (cl->seen_count + 1) * sizeof(*n));
    if (!n)
        return NULL;
    cl->seen = n;
    n[cl->seen_count].id = strdup(id);
    n[cl->seen_count].not_after = 0;
    if (!n[cl->seen_count].id)
        return NULL;
    return &n[cl->seen_count++];
}

int cluster_publish(void *ud, const acme_challenge *ch)
{
    cluster *cl = ud;
    int rc = router_publish(cl->rt, ch);
    acme_challenge_type t = acme_challenge_get_type(ch);
    int shared = (t == ACME_CHALLENGE_HTTP_01 && cl->builtin_http) || (t == ACME_CHALLENGE_TLS_ALPN_01 && cl->builtin_alpn);
    /* A module's answer (webroot, a server's own map) is that module's
     * business; the built-in responders' is shared through etcd. */
    if (rc != ACME_OK || !shared)
        return rc;
    /* Stored now; the engine goes on with other orders while the other
     * nodes load it (cluster_tick reports back), so publishes overlap. */
    pending_pub *np = realloc(cl->pending, (cl->pending_count + 1) * sizeof(*np));
    if (np)
        cl->pending = np;
    rc = np ? acme_client_etcd_publish(cl->c, ch, ACME_ETCD_NO_WAIT) : ACME_E_NOMEM;
    if (rc == ACME_E_PENDING) {
        cl->pending[cl->pending_count].ch = ch;
        cl->pending[cl->pending_count].deadline = time(NULL) + (PUBLISH_WAIT_MS + 999) / 1000;
        cl->pending_count++;
        return ACME_E_PENDING;
    }
    if (rc != ACME_OK) {
        progress(ACME_LOG_WARNING, "%s", acme_client_last_error(cl->c));
        router_unpublish(cl->rt, ch);
    }
    return rc;
}

int cluster_unpublish(void *ud, const acme_challenge *ch)
{
    cluster *cl = ud;
    acme_challenge_type t = acme_challenge_get_type(ch);
    if ((t == ACME_CHALLENGE_HTTP_01 && cl->builtin_http) || (t == ACME_CHALLENGE_TLS_ALPN_01 && cl->builtin_alpn))
        acme_client_etcd_unpublish(cl->c, ch);
    return router_unpublish(cl->rt, ch);
}

int cluster_install(void *ud, const acme_certificate *cert)
{
    cluster *cl = ud;
    int rc = router_install(cl->rt, cert);
    seen_cert *s;
    if ((rc == ACME_OK || rc == ACME_E_PENDING) && (s = seen_of(cl, acme_certificate_id(cert))))
        s->not_after = acme_certificate_not_after(cert);
    return rc;
}

static int install_if_newer(void *ud, const acme_certificate *cert)
{
    cluster *cl = ud;
    seen_cert *s = seen_of(cl, acme_certificate_id(cert));
    if (!s || acme_certificate_not_after(cert) <= s->not_after)
        return ACME_OK;
    progress(ACME_LOG_INFO, "%s: a newer certificate is in the cluster store (ordered by another node): installing it",
             acme_certificate_id(cert));
    return cluster_install(cl, cert);
}

typedef struct poll_ctx {
    cluster *cl;
    char **ids;
    size_t n;
} poll_ctx;

static int collect(void *ud, const char *id)
{
    poll_ctx *p = ud;
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->ids[i], id))
            return 0; /* held at another CA of the list too */
    acme_cert_status st;
    memset(&st, 0, sizeof(st));
    st.size = sizeof(st);
    /* Only what this node manages, and never under a running order. */
    if (acme_engine_cert_status(p->cl->e, id, &st) != ACME_OK || st.state == ACME_CERT_STATE_ORDERING)
        return 0;
    char **n = realloc(p->ids, (p->n + 1) * sizeof(char *));
    if (!n)
        return 1;
    p->ids = n;
    if ((n[p->n] = strdup(id)))
        p->n++;
    return 0;
}

/* Publishes whose answer every node has loaded (or that ran out of
 * time) are handed back to the engine. */
static void pending_tick(cluster *cl)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < cl->pending_count;) {
        const acme_challenge *ch = cl->pending[i].ch;
        int rc = acme_client_etcd_published(cl->c, ch);
        if (rc == ACME_E_PENDING && now < cl->pending[i].deadline) {
            i++;
            continue;
        }
        if (rc != ACME_OK) {
            progress(ACME_LOG_WARNING, "cluster: the %s answer for %s did not reach every node in %d s "
                     "(a node is slow or cut off from etcd)", acme_challenge_type_name(acme_challenge_get_type(ch)),
                     acme_challenge_identifier(ch), (PUBLISH_WAIT_MS + 999) / 1000);
            rc = ACME_E_TIMEOUT;
            acme_client_etcd_unpublish(cl->c, ch);
            router_unpublish(cl->rt, ch);
        }
        cl->pending[i] = cl->pending[--cl->pending_count];
        if (cl->e)
            acme_engine_done(cl->e, ch, rc);
    }
}

void cluster_tick(cluster *cl)
{
    if (cl->pending_count)
        pending_tick(cl);
    time_t now = time(NULL);
    if (!cl->e || now < cl->next_poll)
        return;
    cl->next_poll = now + cl->poll_s;
    poll_ctx p = {cl, NULL, 0};
    /* Listed first, loaded after: no callback runs inside the listing.
     * With a CA list a certificate that moved is stored at two CAs (the
     * old one at the first): the newest is the one to serve. */
    acme_client *one[1] = {cl->c};
    acme_client **cs = cl->polled_count ? cl->polled : one;
    size_t nc = cl->polled_count ? cl->polled_count : 1;
    int listed = 1;
    for (size_t j = 0; j < nc && listed; j++)
        listed = acme_cert_list(cs[j], collect, &p) == ACME_OK;
    for (size_t i = 0; listed && i < p.n; i++)
        acme_cert_load(cs[hostclient_newest(cs, nc, p.ids[i])], p.ids[i], install_if_newer, cl);
    for (size_t i = 0; i < p.n; i++)
        free(p.ids[i]);
    free(p.ids);
}

int cluster_timeout_ms(const cluster *cl)
{
    if (cl->pending_count)
        return 50; /* look at the acknowledgements again soon */
    time_t now = time(NULL);
    return cl->next_poll <= now ? 0 : (int)(cl->next_poll - now) * 1000;
}

const char *cluster_status(cluster *cl, const char *engine_json)
{
    /* In a cluster the file is {"storage_error": "..." | null,
     * "certificates": [the engine's array]}: a node that cannot reach etcd
     * still serves what it has, and says so here. */
    const char *h = acme_client_etcd_health(cl->c);
    int bad = h && *h;
    if (bad != cl->was_bad) {
        if (bad)
            progress(ACME_LOG_WARNING, "cluster storage: %s; serving what is installed until etcd answers again", h);
        else
            progress(ACME_LOG_INFO, "cluster storage: etcd answers again");
        cl->was_bad = bad;
    }
    free(cl->status);
    cl->status = NULL;
    if (!engine_json)
        return NULL;
    acme_buffer *b = acme_buffer_new();
    if (!b)
        return engine_json;
    if (bad) {
        acme_buffer_append(b, "{\"storage_error\":\"", 18);
        for (const char *p = h; *p; p++) {
            char esc[8];
            if (*p == '"' || *p == '\\')
                snprintf(esc, sizeof(esc), "\\%c", *p);
            else if ((unsigned char)*p < 0x20)
                snprintf(esc, sizeof(esc), "\\u%04x", (unsigned char)*p);
            else
                snprintf(esc, sizeof(esc), "%c", *p);
            acme_buffer_append(b, esc, strlen(esc));
        }
        acme_buffer_append(b, "\",", 2);
    } else {
        acme_buffer_append(b, "{\"storage_error\":null,", 22);
    }
    acme_buffer_append(b, "\"certificates\":", 15);
    acme_buffer_append(b, engine_json, strlen(engine_json));
    acme_buffer_append(b, "}", 1);
    cl->status = strdup(acme_buffer_data(b));
    acme_buffer_free(b);
    return cl->status ? cl->status : engine_json;
}
