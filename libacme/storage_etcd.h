/* The etcd storage table (doc/cluster.md): keys under a prefix in an etcd
 * cluster reached through its v3 JSON gateway, locks as leases with a
 * fencing token, and the shared challenge answers of a cluster.
 *
 * Layout under the prefix P:
 *   P<key>                         a libacme key, as in the file storage
 *   P.locks/<lock name>            a held lock, attached to its holder's lease;
 *                                  its create_revision is the fencing token
 *   P.challenges/<kind>/<id>       a published http-01 / tls-alpn-01 answer
 *   P.nodes/<kind>/<node>          a node answering <kind>, on its node lease
 *   P.acks/<kind>/<id>/<node>      <node> has loaded answer <id>
 * A ca-id never starts with '.', so these never meet a libacme key. */
#ifndef ACME_STORAGE_ETCD_H
#define ACME_STORAGE_ETCD_H

#include <acme/etcd.h>
#include <acme/storage.h>

typedef struct storage_etcd storage_etcd;

extern const acme_storage_ops storage_etcd_ops;

/* Check opts and make a handle; no request is sent. On failure, err says
 * which option is wrong. */
int storage_etcd_open(const acme_etcd_options *opts, storage_etcd **out, char *err, size_t errlen);
/* Stops the background thread, releases every lock still held (txn +
 * lease revoke), frees. */
void storage_etcd_close(storage_etcd *s);
/* CA failover: writes under <any ca-id>/certs/<id>/ are fenced by the
 * lock "<ca_id>.order.<id>" (the list's first CA), the one lock every CA
 * of the list takes for that certificate's order. NULL: each key's own
 * ca-id, as without a list. */
int storage_etcd_set_lock_scope(storage_etcd *s, const char *ca_id);
/* 1 if this node held the lock name and has lost it (its lease is gone or
 * unconfirmed past the write deadline); no request is made. */
int storage_etcd_lock_lost(storage_etcd *s, const char *name);
/* The last failure as "etcd <endpoint>: <what happened>"; "" if none.
 * A copy owned by the calling thread. */
const char *storage_etcd_last_error(storage_etcd *s);
/* "" while the last request succeeded, else the last error (a copy owned
 * by the calling thread). */
const char *storage_etcd_health(storage_etcd *s);
/* HTTP requests sent so far (for the benchmark). */
unsigned long storage_etcd_requests(storage_etcd *s);

/* Distributed challenges (storage_etcd_chal.c). kind: 1 http-01, 2 tls-alpn-01. */
int storage_etcd_attach_responder(storage_etcd *s, acme_responder *r);
int storage_etcd_attach_sink(storage_etcd *s, const acme_etcd_sink *sink);
int storage_etcd_publish(storage_etcd *s, const acme_challenge *ch, unsigned wait_ms);
int storage_etcd_unpublish(storage_etcd *s, const acme_challenge *ch);
/* One look (shared by all answers of a type for 100 ms): ACME_OK once
 * every node has loaded ch's answer, ACME_E_PENDING before. */
int storage_etcd_published(storage_etcd *s, const acme_challenge *ch);

/* ---- shared by storage_etcd*.c ---- */
#include <jansson.h>
/* POST body to path on the first member that answers. *answer: the parsed
 * JSON (caller decrefs). bg: use the background thread's connection. */
int etcd_call(storage_etcd *s, int bg, const char *path, json_t *body, json_t **answer);
/* The prefix (borrowed) and this node's name. */
const char *etcd_prefix(const storage_etcd *s);
const char *etcd_node(const storage_etcd *s);
unsigned etcd_flags(const storage_etcd *s);
/* Called by the background thread every tick (~250 ms) with no lock held. */
void etcd_chal_tick(storage_etcd *s);
void etcd_chal_free(storage_etcd *s);
/* Wake the background thread (started on first need). */
int etcd_thread_need(storage_etcd *s);
/* This node's own lease for its .nodes/ entries, granted and kept alive by
 * the background thread; 0 if none yet. */
long long etcd_node_lease(storage_etcd *s);

#endif
