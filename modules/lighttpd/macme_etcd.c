/* mod_acme on a cluster: acme.storage = "etcd" (doc/cluster.md).
 *
 * Several lighttpd hosts behind a load balancer share one etcd. libacme's
 * etcd storage gives one order per certificate (fenced locks) and carries
 * the challenge answers; this file connects it to mod_acme:
 *  - every answer any host publishes reaches this host's shared table
 *    (http-01) and ssl.acme-tls-1 files (tls-alpn-01) through an
 *    acme_etcd_sink, so the validator may reach any host;
 *  - this host's own publish also goes into etcd, and the engine hears of
 *    it once every host has loaded it (ACME_E_PENDING until then: the
 *    lighttpd loop never waits for the others);
 *  - every acme.etcd-poll-seconds the stored certificates are read back
 *    and one that differs from the files here (another host ordered it)
 *    is installed here too. */
#include "macme.h"
#include "hostclient.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <acme/etcd.h>

#define DEFAULT_POLL_S 10
#define PUBLISH_WAIT_S 5
/* Storage calls run on the leader worker's loop: short timeouts bound
 * how long a step may take while an etcd member is unreachable. */
#define ETCD_REQUEST_MS 2000
#define ETCD_CONNECT_MS 500

typedef struct pending_pub {
    const acme_challenge *ch;
    time_t deadline;
} pending_pub;

struct macme_cluster {
    const macme_conf *conf;
    macme_shm *shm;
    acme_client *c;            /* publishes, and the sink's */
    acme_client **polled;      /* whose stored certificates a poll reads: c, then each fallback CA's */
    size_t polled_count;
    pending_pub *pending;
    size_t pending_count;
    time_t next_poll;
    void (*log)(void *ud, acme_log_level level, const char *msg);
    void *log_ud;
    unsigned answers;   /* other hosts' answers served here (atomic: the etcd thread counts) */
};

static void cl_log(macme_cluster *cl, acme_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cl_log(macme_cluster *cl, acme_log_level level, const char *fmt, ...)
{
    if (!cl->log || level > cl->conf->log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    cl->log(cl->log_ud, level, line);
}

int macme_storage_set(const macme_conf *mc, acme_client *c)
{
    if (!mc->storage_etcd)
        return acme_client_set_storage_dir(c, mc->state_dir);
    acme_etcd_options o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.endpoints = (const char *const *)mc->etcd_endpoints;
    o.endpoint_count = mc->etcd_endpoint_count;
    o.prefix = mc->etcd_prefix;
    o.ca_file = mc->etcd_ca_file;
    o.username = mc->etcd_username;
    o.password = mc->etcd_password;
    o.lock_ttl_s = mc->etcd_lock_ttl;
    o.node_name = mc->etcd_node_name;
    o.request_timeout_ms = ETCD_REQUEST_MS;
    o.connect_timeout_ms = ETCD_CONNECT_MS;
    /* A graceful restart frees the client and makes a new one under the
     * same node name: the other hosts keep waiting for this host's
     * acknowledgements meanwhile, so none of their validators meets the
     * new generation before it loaded their answers. */
    o.flags = ACME_ETCD_KEEP_NODE; /* node_name: acme.etcd-node-name or the host name */
    return acme_client_set_storage_etcd(c, &o);
}

/* ---- the sink: answers other hosts published ---- */

static int sink_http01(void *ud, const char *token, const char *key_authorization)
{
    macme_cluster *cl = ud;
    int rc = macme_shm_put_token(cl->shm, token, key_authorization);
    if (rc == ACME_OK)
        __atomic_add_fetch(&cl->answers, 1, __ATOMIC_RELAXED);
    return rc;
}

static const char *ident_type(const char *identifier)
{
    unsigned char a[16];
    return inet_pton(AF_INET, identifier, a) == 1 || inet_pton(AF_INET6, identifier, a) == 1 ? "ip" : "dns";
}

static int sink_tlsalpn01(void *ud, const char *identifier, const char *cert_pem, const char *key_pem)
{
    macme_cluster *cl = ud;
    char err[MACME_ERRLEN] = "";
    if (macme_alpn_write(cl->conf->alpn_dirs, cl->conf->alpn_dir_count, ident_type(identifier), identifier, cert_pem,
                         key_pem, err, sizeof(err)) != 0) {
        cl_log(cl, ACME_LOG_ERROR, "cluster: the tls-alpn-01 answer for %s: %s", identifier, err);
        return ACME_E_STORAGE;
    }
    __atomic_add_fetch(&cl->answers, 1, __ATOMIC_RELAXED);
    return ACME_OK;
}

static void sink_remove(void *ud, acme_responder_kind kind, const char *what)
{
    macme_cluster *cl = ud;
    if (__atomic_load_n(&cl->answers, __ATOMIC_RELAXED))
        __atomic_sub_fetch(&cl->answers, 1, __ATOMIC_RELAXED);
    if (kind == ACME_RESPONDER_HTTP01)
        macme_shm_del_token(cl->shm, what);
    else
        macme_alpn_remove(cl->conf->alpn_dirs, cl->conf->alpn_dir_count, ident_type(what), what);
}

int macme_cluster_new(const macme_conf *mc, macme_shm *shm, acme_client *c,
                      void (*log)(void *ud, acme_log_level level, const char *msg), void *log_ud,
                      macme_cluster **out)
{
    *out = NULL;
    macme_cluster *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return ACME_E_NOMEM;
    cl->conf = mc;
    cl->shm = shm;
    cl->c = c;
    cl->log = log;
    cl->log_ud = log_ud;
    /* The first look soon after start: a host that joins late installs
     * what the others already have. */
    cl->next_poll = time(NULL) + 1;
    acme_etcd_sink s;
    memset(&s, 0, sizeof(s));
    s.size = sizeof(s);
    s.ud = cl;
    s.add_http01 = sink_http01;
    s.add_tlsalpn01 = mc->alpn_dir_count ? sink_tlsalpn01 : NULL;
    s.remove = sink_remove;
    int rc = acme_client_etcd_attach_sink(c, &s);
    if (rc != ACME_OK) {
        free(cl);
        return rc;
    }
    *out = cl;
    return ACME_OK;
}

void macme_cluster_free(macme_cluster *cl)
{
    if (!cl)
        return;
    free(cl->pending);
    free(cl->polled);
    free(cl);
}

int macme_cluster_poll_client(macme_cluster *cl, acme_client *c)
{
    acme_client **n = realloc(cl->polled, (cl->polled_count + 1) * sizeof(*n));
    if (!n)
        return ACME_E_NOMEM;
    cl->polled = n;
    n[cl->polled_count++] = c;
    return ACME_OK;
}

static int shared_type(const macme_cluster *cl, const acme_challenge *ch)
{
    acme_challenge_type t = acme_challenge_get_type(ch);
    return t == ACME_CHALLENGE_HTTP_01 || (t == ACME_CHALLENGE_TLS_ALPN_01 && cl->conf->alpn_dir_count);
}

int macme_cluster_publish(macme_cluster *cl, const acme_challenge *ch)
{
    if (!shared_type(cl, ch))
        return ACME_OK; /* dns-01: one host publishing is enough */
    pending_pub *np = realloc(cl->pending, (cl->pending_count + 1) * sizeof(*np));
    if (!np)
        return ACME_E_NOMEM;
    cl->pending = np;
    int rc = acme_client_etcd_publish(cl->c, ch, ACME_ETCD_NO_WAIT);
    if (rc == ACME_E_PENDING) {
        np[cl->pending_count].ch = ch;
        np[cl->pending_count].deadline = time(NULL) + PUBLISH_WAIT_S;
        cl->pending_count++;
        return ACME_E_PENDING;
    }
    if (rc != ACME_OK)
        cl_log(cl, ACME_LOG_ERROR, "cluster: sharing the %s answer for %s failed: %s",
             acme_challenge_type_name(acme_challenge_get_type(ch)), acme_challenge_identifier(ch),
             acme_client_last_error(cl->c));
    return rc;
}

void macme_cluster_unpublish(macme_cluster *cl, const acme_challenge *ch)
{
    for (size_t i = 0; i < cl->pending_count; i++)
        if (cl->pending[i].ch == ch) {
            cl->pending[i] = cl->pending[--cl->pending_count];
            break;
        }
    if (shared_type(cl, ch))
        acme_client_etcd_unpublish(cl->c, ch);
}

int macme_cluster_timeout_ms(const macme_cluster *cl)
{
    if (cl->pending_count)
        return 50; /* look at the acknowledgements again soon */
    time_t now = time(NULL);
    return cl->next_poll <= now ? 0 : (int)(cl->next_poll - now) * 1000;
}

typedef struct poll_ctx {
    macme_cluster *cl;
    acme_engine *e;
    char **ids;
    size_t n;
    int (*install)(void *ud, const acme_certificate *cert);
    void *ud;
} poll_ctx;

/* The stored ids this host is configured for and not ordering itself
 * (it installs its own), each once (several CAs may hold it). */
static int collect(void *ud, const char *id)
{
    poll_ctx *p = ud;
    if (!macme_conf_cert(p->cl->conf, id))
        return 0;
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->ids[i], id))
            return 0;
    acme_cert_status st;
    memset(&st, 0, sizeof(st));
    st.size = sizeof(st);
    if (acme_engine_cert_status(p->e, id, &st) == ACME_OK && st.state == ACME_CERT_STATE_ORDERING)
        return 0;
    char **n = realloc(p->ids, (p->n + 1) * sizeof(char *));
    if (!n)
        return 1;
    p->ids = n;
    if ((n[p->n] = strdup(id)))
        p->n++;
    return 0;
}

static int poll_cb(void *ud, const acme_certificate *cert)
{
    poll_ctx *p = ud;
    /* What the store holds is the newest any host got; install() writes
     * only when it differs from the files here. */
    if (acme_certificate_not_after(cert) <= (int64_t)time(NULL))
        return ACME_OK;
    return p->install(p->ud, cert);
}

void macme_cluster_tick(macme_cluster *cl, acme_engine *e, int (*install)(void *ud, const acme_certificate *cert),
                        void *ud)
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
            cl_log(cl, ACME_LOG_WARNING,
                   "cluster: the %s answer for %s did not reach every host in %d s (a host is slow or cut off from "
                   "etcd)", acme_challenge_type_name(acme_challenge_get_type(ch)), acme_challenge_identifier(ch),
                   PUBLISH_WAIT_S);
            rc = ACME_E_TIMEOUT;
        }
        cl->pending[i] = cl->pending[--cl->pending_count];
        /* A failure goes to the engine, which unpublishes (here and in
         * etcd) and retries later. */
        acme_engine_done(e, ch, rc);
    }
    if (now < cl->next_poll)
        return;
    cl->next_poll = now + (cl->conf->etcd_poll_s ? cl->conf->etcd_poll_s : DEFAULT_POLL_S);
    poll_ctx p = {cl, e, NULL, 0, install, ud};
    /* Listed first (one range request per CA), loaded after: no callback
     * runs inside the listing. A failure (etcd down) shows in the status.
     * With acme.fallback a certificate may be stored at several CAs (the
     * old one where it was before it moved): the newest is the one every
     * host serves, or the files would flip between the two. */
    acme_client *one[1] = {cl->c};
    acme_client **cs = cl->polled_count ? cl->polled : one;
    size_t nc = cl->polled_count ? cl->polled_count : 1;
    int listed = 1;
    for (size_t j = 0; j < nc && listed; j++)
        listed = acme_cert_list(cs[j], collect, &p) == ACME_OK;
    for (size_t i = 0; listed && i < p.n; i++)
        acme_cert_load(cs[hostclient_newest(cs, nc, p.ids[i])], p.ids[i], poll_cb, &p);
    for (size_t i = 0; i < p.n; i++)
        free(p.ids[i]);
    free(p.ids);
}

unsigned macme_cluster_answers(const macme_cluster *cl)
{
    return __atomic_load_n(&cl->answers, __ATOMIC_RELAXED);
}

const char *macme_cluster_health(macme_cluster *cl)
{
    return acme_client_etcd_health(cl->c);
}
