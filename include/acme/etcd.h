/* libacme — storage in an etcd cluster, for several hosts that share their
 * certificates (doc/cluster.md).
 *
 * libacme talks to etcd's v3 JSON gateway (etcd 3.4 and later) over the
 * same libcurl it uses for the CA: no client library is needed. Values are
 * kept under a prefix, with the key grammar of the file storage
 * (doc/storage.md). Order locks are etcd leases with a fencing token: every
 * write made under a lock is a transaction that re-checks the lock, so a
 * holder that lost its lease (paused, partitioned) cannot overwrite its
 * successor's work. */
#ifndef ACME_ETCD_H
#define ACME_ETCD_H

#include <stddef.h>
#include <acme/export.h>
#include <acme/client.h>
#include <acme/responder.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every field 0/NULL means "the default". Grown by appending; set size. */
typedef struct acme_etcd_options {
    size_t size;                    /* sizeof(acme_etcd_options) as the host compiled it */
    const char *const *endpoints;   /* client URLs, "http://10.0.0.1:2379" or https://;
                                     * tried in turn when one fails. Required. */
    size_t endpoint_count;          /* 1..16 */
    const char *prefix;             /* every key starts with it; default "/libacme/" */
    const char *ca_file;            /* PEM trust for https:// endpoints; NULL: the system's */
    const char *username;           /* etcd auth (/v3/auth/authenticate); NULL: none */
    const char *password;
    unsigned request_timeout_ms;    /* one request to one member; default 5000 */
    unsigned connect_timeout_ms;    /* default 1000 */
    unsigned lock_ttl_s;            /* TTL of a lock's etcd lease, kept alive every TTL/3
                                     * while its holder lives; a dead holder's lock is
                                     * free after at most this. Default 15, at least 3. */
    const char *node_name;          /* this host in lock values and status; default
                                     * "<hostname>:<pid>" */
    unsigned flags;                 /* ACME_ETCD_KEEP_NODE; 0: none. A size that ends
                                     * before it means 0. */
} acme_etcd_options;

/* acme_etcd_options.flags: freeing the client does not take this node out
 * of the cluster at once; its entry lasts until its lease runs out (about
 * 10 s), so the other nodes keep waiting for its acknowledgement of their
 * challenge answers. For a host that restarts in place under the same
 * node_name (a web server's graceful restart): its next client
 * acknowledges once it has loaded them, and no validator reaches a node
 * that has not. Needs a fixed node_name. */
#define ACME_ETCD_KEEP_NODE 1u

/* Use etcd for c's storage (replacing any other). Nothing is sent yet: a
 * cluster that is down fails the first storage call, not this one.
 * ACME_E_INVALID_ARG for a missing endpoint, an endpoint that is not
 * http:// or https://, a prefix that does not end in '/', or a size too
 * small; the client's last error says which. */
ACME_EXPORT int acme_client_set_storage_etcd(acme_client *c, const acme_etcd_options *opts);

/* Distributed challenges: feed responder r (http-01 or tls-alpn-01) with
 * every answer any node publishes through acme_client_etcd_publish, and
 * announce this node as one that answers. Before it returns it loads what
 * the store holds now (on the caller's thread), so a host that starts
 * serving right after the call has every published answer; then a
 * background thread polls the store (every 250 ms) and adds or removes
 * the answers in r. c must use
 * etcd storage (ACME_E_STATE otherwise). r must outlive c, or be detached
 * by freeing c first. */
ACME_EXPORT int acme_client_etcd_attach_responder(acme_client *c, acme_responder *r);

/* The same for a host that serves answers itself (a web server module):
 * the store's answers are handed to the sink's callbacks instead of a
 * responder. The callbacks run on the client's etcd thread, one at a
 * time, and must not call into c; return ACME_OK once the answer is
 * served here (the node then acknowledges it). add_http01 / add_tlsalpn01
 * may be NULL for a type the host does not serve (at least one is set);
 * remove is called when an answer leaves the store. The sink is copied;
 * ud must outlive c. ACME_E_INVALID_ARG for a sink without size or
 * callbacks. */
typedef struct acme_etcd_sink {
    size_t size;   /* sizeof(acme_etcd_sink) as the host compiled it */
    void *ud;
    int (*add_http01)(void *ud, const char *token, const char *key_authorization);
    int (*add_tlsalpn01)(void *ud, const char *identifier, const char *cert_pem, const char *key_pem);
    void (*remove)(void *ud, acme_responder_kind kind, const char *token_or_identifier);
} acme_etcd_sink;
ACME_EXPORT int acme_client_etcd_attach_sink(acme_client *c, const acme_etcd_sink *sink);

/* Put the answer of ch (http-01 or tls-alpn-01) into the store, then wait
 * up to wait_ms (0: 3000) until every node that attached a responder of its
 * type has loaded it, so the CA may validate against any of them.
 * ACME_OK when all have; ACME_E_TIMEOUT when some had not (the answer
 * stays published); ACME_E_UNSUPPORTED for dns-01; ACME_E_STATE without
 * etcd storage. Call from the host's publish callback. */
ACME_EXPORT int acme_client_etcd_publish(acme_client *c, const acme_challenge *ch, unsigned wait_ms);
/* acme_client_etcd_publish's wait_ms for "do not wait": it stores the
 * answer and returns ACME_E_PENDING. */
#define ACME_ETCD_NO_WAIT 1u

/* Without waiting: publish with ACME_ETCD_NO_WAIT, answer the host callback with
 * ACME_E_PENDING, and call this from the host's loop until it returns
 * ACME_OK (every node has loaded the answer), then acme_engine_done. One
 * look at the store serves every pending answer of a type for 100 ms.
 * ACME_E_PENDING before; ACME_E_STORAGE when etcd cannot be asked. */
ACME_EXPORT int acme_client_etcd_published(acme_client *c, const acme_challenge *ch);
/* Remove what acme_client_etcd_publish put there. */
ACME_EXPORT int acme_client_etcd_unpublish(acme_client *c, const acme_challenge *ch);

/* The last error talking to etcd ("" when the last request succeeded), for a
 * status page: which endpoint and what it answered. NULL without etcd
 * storage. Valid until the next call on c. */
ACME_EXPORT const char *acme_client_etcd_health(acme_client *c);

#ifdef __cplusplus
}
#endif

#endif
