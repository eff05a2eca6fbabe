/* Distributed challenges over etcd: the node that publishes an http-01 or
 * tls-alpn-01 answer puts it under P.challenges/<kind>/<id>; every node's
 * background thread polls that prefix, loads new answers into its attached
 * responders and acknowledges under P.acks/<kind>/<id>/<node>. The
 * publisher waits until every node listed under P.nodes/<kind>/ has
 * acknowledged before it returns, so the CA is told to validate only once
 * any node the validator may reach can answer.
 *
 * Answers and node entries live on the node's own lease: a node that dies
 * drops out of P.nodes/ (nobody waits for it) and its answers vanish. */
#include "storage_etcd.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <acme/error.h>
#include <acme/host.h>

#include "buf.h"
#include "storage_etcd_json.h"
#include "util.h"

#define NODE_TTL_S 10
#define POLL_WAIT_MS 100
#define MAX_RESPONDERS 4

void *etcd_chal_state(storage_etcd *s);
void etcd_chal_set_state(storage_etcd *s, void *st);

typedef struct loaded {
    struct loaded *next;
    int kind;
    char *id;             /* key component under P.challenges/<kind>/ */
    char *served_as;      /* what the responder knows it by: token or identifier */
    int64_t mod_revision;
    int seen;             /* still in the store at the last poll */
} loaded;

typedef struct chal_state {
    pthread_mutex_t mu;
    /* One poll at a time: the background thread's, or the first one an
     * attach makes on the caller's thread. Held across the requests. */
    pthread_mutex_t poll_mu;
    acme_responder *resp[MAX_RESPONDERS];   /* NULL: sink[i] instead */
    acme_etcd_sink sink[MAX_RESPONDERS];
    int kind[MAX_RESPONDERS];
    size_t nresp;
    int64_t node_lease;
    uint64_t node_next_keepalive;
    int registered[3];    /* P.nodes/<kind>/<node> written on the current lease */
    loaded *loaded;
    /* acme_client_etcd_published: one look at .nodes/ and .acks/ of a type
     * serves every pending answer for SNAPSHOT_MS. */
    json_t *snap_nodes[3], *snap_acks[3];
    uint64_t snap_at[3];
} chal_state;

#define SNAPSHOT_MS 100

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *kind_name(int kind)
{
    return kind == ACME_RESPONDER_HTTP01 ? "http-01" : "tls-alpn-01";
}

static chal_state *state(storage_etcd *s)
{
    chal_state *st = etcd_chal_state(s);
    if (!st && (st = calloc(1, sizeof(*st)))) {
        pthread_mutex_init(&st->mu, NULL);
        pthread_mutex_init(&st->poll_mu, NULL);
        etcd_chal_set_state(s, st);
    }
    return st;
}

/* A key component from an identifier (an IPv6 address has ':'). */
static char *id_of(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 2);
    if (!out)
        return NULL;
    out[0] = 'x';
    for (size_t i = 0; i < n; i++)
        sprintf(out + 1 + 2 * i, "%02x", (unsigned char)s[i]);
    out[1 + 2 * n] = '\0';
    return out;
}

static int txn_ops(storage_etcd *s, int bg, json_t *ops)
{
    json_t *txn = etcd_req_txn(NULL, 0, ops, NULL);
    json_t *a = NULL;
    int rc = txn ? etcd_call(s, bg, "/v3/kv/txn", txn, &a) : ACME_E_NOMEM;
    json_decref(txn);
    json_decref(a);
    return rc;
}

static int delete_prefix(storage_etcd *s, int bg, const char *prefix)
{
    char *end = etcd_prefix_end(prefix);
    char *k = etcd_b64_encode(prefix, strlen(prefix));
    char *e = end ? etcd_b64_encode(end, strlen(end)) : NULL;
    json_t *req = k && e ? json_pack("{s:s,s:s}", "key", k, "range_end", e) : NULL;
    free(end);
    free(k);
    free(e);
    json_t *a = NULL;
    int rc = req ? etcd_call(s, bg, "/v3/kv/deleterange", req, &a) : ACME_E_NOMEM;
    json_decref(req);
    json_decref(a);
    return rc;
}

/* Every kv under prefix (values too). *kvs borrowed from *answer. */
static int range_prefix(storage_etcd *s, int bg, const char *prefix, int keys_only, json_t **answer)
{
    char *end = etcd_prefix_end(prefix);
    json_t *req = end ? etcd_req_range(prefix, end, keys_only, 0) : NULL;
    free(end);
    int rc = req ? etcd_call(s, bg, "/v3/kv/range", req, answer) : ACME_E_NOMEM;
    json_decref(req);
    return rc;
}

long long etcd_node_lease(storage_etcd *s)
{
    chal_state *st = state(s);
    if (!st)
        return 0;
    pthread_mutex_lock(&st->mu);
    long long l = st->node_lease;
    pthread_mutex_unlock(&st->mu);
    return l;
}

/* Grant or keep alive this node's lease; register under P.nodes/. */
static void node_lease_tick(storage_etcd *s, chal_state *st, int bg)
{
    uint64_t now = mono_ms();
    pthread_mutex_lock(&st->mu);
    int64_t lease = st->node_lease;
    int due = now >= st->node_next_keepalive;
    pthread_mutex_unlock(&st->mu);
    if (lease && due) {
        char ids[24];
        snprintf(ids, sizeof(ids), "%" PRId64, lease);
        json_t *req = json_pack("{s:s}", "ID", ids);
        json_t *a = NULL;
        int rc = req ? etcd_call(s, bg, "/v3/lease/keepalive", req, &a) : ACME_E_NOMEM;
        json_decref(req);
        json_t *r = json_object_get(a, "result");
        int64_t ttl = etcd_int(r ? r : a, "TTL");
        json_decref(a);
        pthread_mutex_lock(&st->mu);
        if (rc == ACME_OK && ttl <= 0) {
            /* Expired (etcd was away longer than the TTL): start over. */
            st->node_lease = 0;
            memset(st->registered, 0, sizeof(st->registered));
        } else {
            st->node_next_keepalive = now + (rc == ACME_OK ? NODE_TTL_S * 1000u / 3u : 1000u);
        }
        lease = st->node_lease;
        pthread_mutex_unlock(&st->mu);
    }
    if (!lease) {
        json_t *req = json_pack("{s:I}", "TTL", (json_int_t)NODE_TTL_S);
        json_t *a = NULL;
        int rc = req ? etcd_call(s, bg, "/v3/lease/grant", req, &a) : ACME_E_NOMEM;
        json_decref(req);
        lease = rc == ACME_OK ? etcd_int(a, "ID") : 0;
        json_decref(a);
        if (!lease)
            return;
        pthread_mutex_lock(&st->mu);
        st->node_lease = lease;
        st->node_next_keepalive = now + NODE_TTL_S * 1000u / 3u;
        memset(st->registered, 0, sizeof(st->registered));
        /* Answers loaded on the old lease were acknowledged on it: again. */
        for (loaded *l = st->loaded; l; l = l->next)
            l->mod_revision = -1;
        pthread_mutex_unlock(&st->mu);
    }
    for (int kind = 1; kind <= 2; kind++) {
        pthread_mutex_lock(&st->mu);
        int want = 0;
        for (size_t i = 0; i < st->nresp; i++)
            want |= st->kind[i] == kind;
        int done = st->registered[kind];
        pthread_mutex_unlock(&st->mu);
        if (!want || done)
            continue;
        char *key = xasprintf("%s.nodes/%s/%s", etcd_prefix(s), kind_name(kind), etcd_node(s));
        json_t *ops = json_array();
        if (key && ops)
            json_array_append_new(ops, etcd_op_put(key, "1", 1, lease));
        if (key && ops && txn_ops(s, bg, ops) == ACME_OK) {
            pthread_mutex_lock(&st->mu);
            st->registered[kind] = 1;
            pthread_mutex_unlock(&st->mu);
        } else if (!key) {
            json_decref(ops);
        }
        free(key);
    }
}

/* Load one answer into every responder of its kind. */
static int load_answer(chal_state *st, int kind, const unsigned char *value, size_t len, char **served_as)
{
    *served_as = NULL;
    json_t *v = json_loadb((const char *)value, len, 0, NULL);
    int rc = ACME_E_STORAGE;
    if (kind == ACME_RESPONDER_HTTP01) {
        const char *tok = json_string_value(json_object_get(v, "token"));
        const char *ka = json_string_value(json_object_get(v, "key_authorization"));
        if (tok && ka) {
            rc = ACME_OK;
            for (size_t i = 0; i < st->nresp; i++)
                if (st->kind[i] == kind && (st->resp[i] ? acme_responder_add_http01(st->resp[i], tok, ka)
                                                        : st->sink[i].add_http01(st->sink[i].ud, tok, ka)) != ACME_OK)
                    rc = ACME_E_STORAGE;
            *served_as = strdup(tok);
        }
    } else {
        const char *id = json_string_value(json_object_get(v, "identifier"));
        const char *cert = json_string_value(json_object_get(v, "cert"));
        const char *key = json_string_value(json_object_get(v, "key"));
        if (id && cert && key) {
            rc = ACME_OK;
            for (size_t i = 0; i < st->nresp; i++)
                if (st->kind[i] == kind &&
                    (st->resp[i] ? acme_responder_add_tlsalpn01(st->resp[i], id, cert, key)
                                 : st->sink[i].add_tlsalpn01(st->sink[i].ud, id, cert, key)) != ACME_OK)
                    rc = ACME_E_STORAGE;
            *served_as = strdup(id);
        }
    }
    json_decref(v);
    return rc;
}

static void poll_kind(storage_etcd *s, chal_state *st, int bg, int kind, int64_t lease)
{
    char *prefix = xasprintf("%s.challenges/%s/", etcd_prefix(s), kind_name(kind));
    json_t *a = NULL;
    if (!prefix || range_prefix(s, bg, prefix, 0, &a) != ACME_OK) {
        free(prefix);
        return; /* etcd away: serve what we have */
    }
    size_t plen = strlen(prefix);
    pthread_mutex_lock(&st->mu);
    for (loaded *l = st->loaded; l; l = l->next)
        if (l->kind == kind)
            l->seen = 0;
    pthread_mutex_unlock(&st->mu);
    json_t *kvs = etcd_resp_kvs(a);
    size_t i;
    json_t *o;
    json_array_foreach(kvs, i, o) {
        etcd_kv kv;
        if (etcd_kv_parse(o, &kv))
            continue;
        const char *id = kv.key + plen;
        pthread_mutex_lock(&st->mu);
        loaded *l = st->loaded;
        while (l && !(l->kind == kind && strcmp(l->id, id) == 0))
            l = l->next;
        int fresh = !l || l->mod_revision != kv.mod_revision;
        if (l)
            l->seen = 1;
        char *served = NULL;
        int ok = fresh ? load_answer(st, kind, kv.value, kv.len, &served) == ACME_OK : 0;
        if (fresh && ok) {
            if (!l && (l = calloc(1, sizeof(*l)))) {
                l->kind = kind;
                l->id = strdup(id);
                l->next = st->loaded;
                st->loaded = l;
            }
            if (l) {
                free(l->served_as);
                l->served_as = served;
                served = NULL;
                l->mod_revision = kv.mod_revision;
                l->seen = 1;
            }
        }
        free(served);
        pthread_mutex_unlock(&st->mu);
        if (fresh && ok) {
            char *ack = xasprintf("%s.acks/%s/%s/%s", etcd_prefix(s), kind_name(kind), id, etcd_node(s));
            json_t *ops = json_array();
            if (ack && ops) {
                json_array_append_new(ops, etcd_op_put(ack, "1", 1, lease));
                txn_ops(s, bg, ops);
            } else {
                json_decref(ops);
            }
            free(ack);
        }
        etcd_kv_clear(&kv);
    }
    json_decref(a);
    free(prefix);
    /* Gone from the store: stop serving. */
    pthread_mutex_lock(&st->mu);
    for (loaded **pp = &st->loaded; *pp;) {
        loaded *l = *pp;
        if (l->kind == kind && !l->seen) {
            for (size_t r = 0; r < st->nresp; r++)
                if (st->kind[r] == kind && l->served_as) {
                    if (st->resp[r])
                        acme_responder_remove(st->resp[r], l->served_as);
                    else if (st->sink[r].remove)
                        st->sink[r].remove(st->sink[r].ud, (acme_responder_kind)kind, l->served_as);
                }
            *pp = l->next;
            free(l->id);
            free(l->served_as);
            free(l);
        } else {
            pp = &l->next;
        }
    }
    pthread_mutex_unlock(&st->mu);
}

static void chal_tick(storage_etcd *s, chal_state *st, int bg)
{
    pthread_mutex_lock(&st->mu);
    size_t n = st->nresp;
    int kinds = 0;
    for (size_t i = 0; i < n; i++)
        kinds |= 1 << st->kind[i];
    pthread_mutex_unlock(&st->mu);
    if (!n && !etcd_node_lease(s))
        return;
    node_lease_tick(s, st, bg);
    int64_t lease = etcd_node_lease(s);
    if (!lease)
        return;
    for (int kind = 1; kind <= 2; kind++)
        if (kinds & (1 << kind))
            poll_kind(s, st, bg, kind, lease);
}

void etcd_chal_tick(storage_etcd *s)
{
    chal_state *st = etcd_chal_state(s);
    if (!st)
        return;
    pthread_mutex_lock(&st->poll_mu);
    chal_tick(s, st, 1);
    pthread_mutex_unlock(&st->poll_mu);
}

/* After an attach: register and load what the store holds now, on the
 * caller's thread, before the call returns. A host that starts serving
 * right after (a web server's new generation after a graceful restart)
 * then already has every answer another node may have told the CA to
 * validate; the thread keeps it current from there. etcd away: the
 * thread catches up when it answers. */
static int attached(storage_etcd *s, chal_state *st)
{
    pthread_mutex_lock(&st->poll_mu);
    chal_tick(s, st, 0);
    pthread_mutex_unlock(&st->poll_mu);
    return etcd_thread_need(s);
}

void etcd_chal_free(storage_etcd *s)
{
    chal_state *st = etcd_chal_state(s);
    if (!st)
        return;
    /* Leave the cluster at once rather than when the node lease runs out,
     * unless the host comes back at once under the same node name (a web
     * server's graceful restart): then the other nodes keep waiting for
     * its acknowledgements, which its next generation gives once it has
     * loaded their answers. */
    if (st->node_lease && !(etcd_flags(s) & ACME_ETCD_KEEP_NODE)) {
        char ids[24];
        snprintf(ids, sizeof(ids), "%" PRId64, st->node_lease);
        json_t *req = json_pack("{s:s}", "ID", ids);
        json_t *a = NULL;
        if (req)
            etcd_call(s, 0, "/v3/lease/revoke", req, &a);
        json_decref(req);
        json_decref(a);
    }
    for (int k = 0; k < 3; k++) {
        json_decref(st->snap_nodes[k]);
        json_decref(st->snap_acks[k]);
    }
    while (st->loaded) {
        loaded *l = st->loaded;
        st->loaded = l->next;
        free(l->id);
        free(l->served_as);
        free(l);
    }
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->poll_mu);
    free(st);
    etcd_chal_set_state(s, NULL);
}

int storage_etcd_attach_responder(storage_etcd *s, acme_responder *r)
{
    if (!r)
        return ACME_E_INVALID_ARG;
    chal_state *st = state(s);
    if (!st)
        return ACME_E_NOMEM;
    pthread_mutex_lock(&st->mu);
    if (st->nresp == MAX_RESPONDERS) {
        pthread_mutex_unlock(&st->mu);
        return ACME_E_INVALID_ARG;
    }
    st->resp[st->nresp] = r;
    st->kind[st->nresp] = (int)acme_responder_get_kind(r);
    st->nresp++;
    pthread_mutex_unlock(&st->mu);
    return attached(s, st);
}

int storage_etcd_attach_sink(storage_etcd *s, const acme_etcd_sink *sink)
{
    if (!sink || sink->size < sizeof(acme_etcd_sink) || (!sink->add_http01 && !sink->add_tlsalpn01))
        return ACME_E_INVALID_ARG;
    chal_state *st = state(s);
    if (!st)
        return ACME_E_NOMEM;
    int want = (sink->add_http01 ? 1 : 0) + (sink->add_tlsalpn01 ? 1 : 0);
    pthread_mutex_lock(&st->mu);
    if (st->nresp + (size_t)want > MAX_RESPONDERS) {
        pthread_mutex_unlock(&st->mu);
        return ACME_E_INVALID_ARG;
    }
    /* One entry per kind it takes, so the rest of this file sees a
     * responder-like slot of one kind. */
    for (int kind = ACME_RESPONDER_HTTP01; kind <= ACME_RESPONDER_TLSALPN01; kind++) {
        if (kind == ACME_RESPONDER_HTTP01 ? !sink->add_http01 : !sink->add_tlsalpn01)
            continue;
        st->resp[st->nresp] = NULL;
        st->sink[st->nresp] = *sink;
        st->kind[st->nresp] = kind;
        st->nresp++;
    }
    pthread_mutex_unlock(&st->mu);
    return attached(s, st);
}

static int chal_kind(const acme_challenge *ch)
{
    acme_challenge_type t = acme_challenge_get_type(ch);
    return t == ACME_CHALLENGE_HTTP_01 ? ACME_RESPONDER_HTTP01 : t == ACME_CHALLENGE_TLS_ALPN_01 ? ACME_RESPONDER_TLSALPN01 : 0;
}

static char *chal_id(const acme_challenge *ch, int kind)
{
    return kind == ACME_RESPONDER_HTTP01 ? strdup(acme_challenge_token(ch)) : id_of(acme_challenge_identifier(ch));
}

/* Names of the keys under prefix, relative to it, as a JSON array. */
static json_t *names_under(storage_etcd *s, const char *prefix, int *rc)
{
    json_t *a = NULL;
    json_t *out = json_array();
    *rc = range_prefix(s, 0, prefix, 1, &a);
    size_t plen = strlen(prefix), i;
    json_t *o;
    json_array_foreach(etcd_resp_kvs(a), i, o) {
        etcd_kv kv;
        if (etcd_kv_parse(o, &kv) == 0) {
            json_array_append_new(out, json_string(kv.key + plen));
            etcd_kv_clear(&kv);
        }
    }
    json_decref(a);
    return out;
}

static int contains(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        if (strcmp(json_string_value(v), s) == 0)
            return 1;
    return 0;
}

int storage_etcd_publish(storage_etcd *s, const acme_challenge *ch, unsigned wait_ms)
{
    int kind = chal_kind(ch);
    if (!kind)
        return ACME_E_UNSUPPORTED;
    chal_state *st = state(s);
    if (!st)
        return ACME_E_NOMEM;
    /* The answer lives on this node's lease: if we die, it goes. */
    if (!etcd_node_lease(s))
        node_lease_tick(s, st, 0);
    int64_t lease = etcd_node_lease(s);
    int rc = etcd_thread_need(s);
    if (rc)
        return rc;
    if (!lease)
        return ACME_E_STORAGE;
    json_t *v = kind == ACME_RESPONDER_HTTP01
                    ? json_pack("{s:s,s:s}", "token", acme_challenge_token(ch), "key_authorization",
                                acme_challenge_key_authorization(ch))
                    : json_pack("{s:s,s:s,s:s}", "identifier", acme_challenge_identifier(ch), "cert",
                                acme_challenge_alpn_cert_pem(ch), "key", acme_challenge_alpn_key_pem(ch));
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    char *id = chal_id(ch, kind);
    char *key = id ? xasprintf("%s.challenges/%s/%s", etcd_prefix(s), kind_name(kind), id) : NULL;
    char *acks = id ? xasprintf("%s.acks/%s/%s/", etcd_prefix(s), kind_name(kind), id) : NULL;
    char *nodes = xasprintf("%s.nodes/%s/", etcd_prefix(s), kind_name(kind));
    rc = text && key && acks && nodes ? ACME_OK : ACME_E_NOMEM;
    if (rc == ACME_OK) {
        /* Old acknowledgements (of an earlier answer with this id) do not count. */
        delete_prefix(s, 0, acks);
        json_t *ops = json_array();
        json_array_append_new(ops, etcd_op_put(key, text, strlen(text), lease));
        rc = txn_ops(s, 0, ops);
    }
    if (rc == ACME_OK) {
        /* acme_client_etcd_published must judge by a look taken after this
         * put: a node listed in it has registered before the answer was
         * stored, so it is waited for; a node that registers later loads
         * the answer in its first poll, which follows its registration.
         * An older look could miss a node that joined meanwhile, or still
         * hold acknowledgements of an earlier answer with this id. */
        json_decref(st->snap_nodes[kind]);
        json_decref(st->snap_acks[kind]);
        st->snap_nodes[kind] = NULL;
        st->snap_acks[kind] = NULL;
    }
    if (text)
        secure_free_str(text); /* a tls-alpn-01 key, though a throwaway one */
    uint64_t deadline = mono_ms() + (wait_ms ? wait_ms : 3000);
    if (rc == ACME_OK && wait_ms == ACME_ETCD_NO_WAIT) {
        rc = ACME_E_PENDING; /* the caller asks acme_client_etcd_published */
        etcd_thread_need(s);
    }
    while (rc == ACME_OK) {
        int r1 = 0, r2 = 0;
        json_t *want = names_under(s, nodes, &r1);
        json_t *have = names_under(s, acks, &r2);
        int all = !r1 && !r2;
        size_t i;
        json_t *n;
        json_array_foreach(want, i, n)
            if (!contains(have, json_string_value(n)))
                all = 0;
        json_decref(want);
        json_decref(have);
        if (all)
            break;
        if (mono_ms() >= deadline) {
            rc = ACME_E_TIMEOUT;
            break;
        }
        etcd_thread_need(s); /* our own node loads it on its next tick */
        usleep(POLL_WAIT_MS * 1000);
    }
    free(id);
    free(key);
    free(acks);
    free(nodes);
    return rc;
}

int storage_etcd_unpublish(storage_etcd *s, const acme_challenge *ch)
{
    int kind = chal_kind(ch);
    if (!kind)
        return ACME_E_UNSUPPORTED;
    char *id = chal_id(ch, kind);
    char *key = id ? xasprintf("%s.challenges/%s/%s", etcd_prefix(s), kind_name(kind), id) : NULL;
    char *acks = id ? xasprintf("%s.acks/%s/%s/", etcd_prefix(s), kind_name(kind), id) : NULL;
    int rc = key && acks ? ACME_OK : ACME_E_NOMEM;
    if (rc == ACME_OK) {
        json_t *ops = json_array();
        json_array_append_new(ops, etcd_op_delete(key));
        rc = txn_ops(s, 0, ops);
        delete_prefix(s, 0, acks);
    }
    free(id);
    free(key);
    free(acks);
    return rc;
}

/* Every key under prefix, relative to it, as a JSON array; NULL on failure. */
static json_t *keys_under(storage_etcd *s, const char *prefix)
{
    int rc = 0;
    json_t *k = names_under(s, prefix, &rc);
    if (rc) {
        json_decref(k);
        return NULL;
    }
    return k;
}

int storage_etcd_published(storage_etcd *s, const acme_challenge *ch)
{
    int kind = chal_kind(ch);
    if (!kind)
        return ACME_E_UNSUPPORTED;
    chal_state *st = state(s);
    if (!st)
        return ACME_E_NOMEM;
    uint64_t now = mono_ms();
    if (!st->snap_nodes[kind] || now >= st->snap_at[kind] + SNAPSHOT_MS) {
        char *nodes = xasprintf("%s.nodes/%s/", etcd_prefix(s), kind_name(kind));
        char *acks = xasprintf("%s.acks/%s/", etcd_prefix(s), kind_name(kind));
        json_t *n = nodes ? keys_under(s, nodes) : NULL;
        json_t *a = n && acks ? keys_under(s, acks) : NULL;
        free(nodes);
        free(acks);
        if (!n || !a) {
            json_decref(n);
            json_decref(a);
            return ACME_E_STORAGE;
        }
        json_decref(st->snap_nodes[kind]);
        json_decref(st->snap_acks[kind]);
        st->snap_nodes[kind] = n;
        st->snap_acks[kind] = a;
        st->snap_at[kind] = now;
    }
    char *id = chal_id(ch, kind);
    if (!id)
        return ACME_E_NOMEM;
    int all = 1;
    size_t i;
    json_t *n;
    json_array_foreach(st->snap_nodes[kind], i, n) {
        char *want = xasprintf("%s/%s", id, json_string_value(n));
        if (!want || !contains(st->snap_acks[kind], want))
            all = 0;
        free(want);
    }
    free(id);
    return all ? ACME_OK : ACME_E_PENDING;
}
