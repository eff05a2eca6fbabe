/* Resumable network operations. Each operation is a small state machine
 * that asks for one HTTP exchange at a time; whoever drives it performs
 * the exchange (blocking: the transport table; the engine: a libcurl multi
 * handle) and calls it again. The protocol logic — nonces, badNonce
 * retries, problem documents, redirects — exists once, here. */
#ifndef ACME_NET_H
#define ACME_NET_H

#include <jansson.h>
#include <acme/transport.h>
#include "http.h"

struct acme_client;
struct acme_key;

/* One request and its response. */
typedef struct http_exchange {
    acme_http_request req;
    acme_http_response resp;
    char *url;           /* owned storage behind req.url */
    char *body;          /* owned storage behind req.body */
    int rc;              /* the transport's result once performed */
    int patient;         /* may rightly take long (finalize at a CA that signs while we wait):
                          * never given up as stalled (http_async.c) */
} http_exchange;

/* Slow work a step must not do itself (RSA key generation and signing,
 * CSR signing). fn runs anywhere — a worker thread or in place — and
 * touches only the job. */
typedef struct work_job {
    void (*fn)(struct work_job *job);
    int key_type;                /* keygen: in (an acme_key_type) */
    struct acme_key *key;        /* keygen: out; csr: in (borrowed) */
    char **names;                /* csr: in (borrowed) */
    size_t name_count;
    char *csr;                   /* csr: out */
    const struct acme_key *sign_key; /* sign: in (borrowed) */
    const char *kid, *url, *payload; /* sign: in (borrowed) */
    char *nonce;                 /* sign: in (owned) */
    char *jws;                   /* sign: out */
    int rc;
} work_job;

typedef enum net_want {
    NET_DONE = 0,        /* op->rc holds the result */
    NET_HTTP = 1,        /* perform op->x, then call the op again */
    NET_WORK = 2         /* run op->job (on a worker if you can), then call again */
} net_want;

typedef enum net_kind { NET_OP_POST, NET_OP_DIRECTORY } net_kind;

typedef struct net_op {
    net_kind kind;
    const char *step;    /* for messages: "newOrder", "authorization"... (static) */
    char *url;
    char *payload;       /* NULL = POST-as-GET */
    const struct acme_key *key; /* NULL = account key with kid */
    int want_json;
    int phase;
    int attempts;
    http_exchange x;
    work_job job;        /* signing with a slow (RSA) key */
    json_t *json;        /* the answer, when want_json */
    int soft_problem;    /* the caller recovers from a problem answer: log it as a warning */
    int rc;
} net_op;

/* Prepare a signed POST. No I/O. */
int net_op_post(net_op *op, struct acme_client *c, const char *step, const char *url,
                const char *payload, const struct acme_key *key, int want_json);
/* Prepare a directory fetch (with https-only redirects). */
int net_op_directory(net_op *op, struct acme_client *c);
/* Advance. */
net_want net_op_next(struct acme_client *c, net_op *op);
/* Release everything the op holds (json included). */
void net_op_clear(net_op *op);

/* Perform an exchange synchronously through the client's transport. */
void net_exchange_perform(struct acme_client *c, http_exchange *x);
/* Make sure the client has a transport (the default one if none set). */
int net_transport_ready(struct acme_client *c);
/* Run an op to the end, blocking. Returns op->rc. */
int net_op_run(struct acme_client *c, net_op *op);

#endif
