/* The engine shared by the two challenge responders: listening socket,
 * bounded connection slots (the oldest idle connection gives way to a new
 * one; a per-address cap), per-connection deadlines (a short one for the
 * request head / ClientHello), lingering close, the
 * table of published items, the non-blocking step and the thread that
 * loops over it. A protocol (http-01, tls-alpn-01) plugs in a small table
 * of functions and only ever sees one connection at a time.
 *
 * The engine lives in responder_http.c (the build lists no separate file
 * for it); responder_alpn.c supplies rio_alpn_proto. */
#ifndef ACME_RESPONDER_IO_H
#define ACME_RESPONDER_IO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <acme/responder.h>

/* What a protocol's io function asks the engine to do next. */
enum {
    RIO_MORE = 0,  /* wait for c->want on c->fd */
    RIO_DONE = 1,  /* finished (answered, or refused with an alert): close gracefully */
    RIO_DROP = 2   /* the peer is gone or hopeless: close now */
};

typedef struct rio_conn {
    int fd;
    short want;            /* POLLIN or POLLOUT: what the protocol waits for */
    int lingering;         /* our side is shut; draining until EOF or linger_end */
    int dead;              /* to be closed at the end of this step */
    uint64_t deadline;     /* accept time + timeout: the hard end, never extended */
    uint64_t linger_end;
    uint64_t serial;       /* accept order: the oldest idle connection is evicted first */
    uint64_t accepted;     /* when (an idle connection is not evicted at once) */
    uint64_t head_end;     /* accept + head timeout: the request head or ClientHello
                            * must be in by then (validators send at once) */
    int head_done;         /* set by the protocol once that head / ClientHello is complete */
    int tried;             /* the protocol's io has looked at the socket at least once */
    unsigned char src[16]; /* the peer's address as the per-address cap counts it */
    void *state;           /* the protocol's */
} rio_conn;

/* A published item: http-01 token → key authorization, or tls-alpn-01
 * SNI name → gnutls credentials. Reference counted so that removing an
 * item while a connection still uses it is safe; counts change under
 * acme_responder.lock only. */
typedef struct rio_entry {
    struct rio_entry *next;
    char *key;
    void *value;
    void (*free_value)(void *value);
    unsigned refs;
} rio_entry;

typedef struct rio_proto {
    unsigned default_max_connections;
    /* Turn what the host passed to add/remove into the table key
     * (malloc'ed into *out). An acme_code. */
    int (*make_key)(const char *in, char **out);
    /* Protocol-wide state (r->proto_ctx), once at new / free. May be NULL. */
    int (*init)(acme_responder *r);
    void (*destroy)(acme_responder *r);
    /* A fresh connection: set c->state and c->want. An acme_code. */
    int (*open)(acme_responder *r, rio_conn *c);
    /* Progress as far as possible without blocking; a RIO_* value. */
    int (*io)(acme_responder *r, rio_conn *c);
    /* Release c->state (the engine closes the fd). */
    void (*close)(acme_responder *r, rio_conn *c);
} rio_proto;

struct acme_responder {
    acme_responder_kind kind;
    const rio_proto *proto;
    void *proto_ctx;

    unsigned port;
    unsigned max_conns;
    unsigned timeout_ms;
    unsigned max_header;
    unsigned head_ms;             /* time from accept to a complete head / ClientHello */
    unsigned max_per_src;         /* live connections from one address */

    int listen_fd;
    uint64_t accept_pause_until;  /* after EMFILE & co.: do not spin on accept */
    uint64_t next_serial;         /* for rio_conn.serial */
    rio_conn *conns;              /* dense, nconns in use */
    size_t nconns;
    size_t cursor;                /* where the next step starts serving */
    struct pollfd *pfds;          /* scratch for the step's own poll: 1 + max_conns */

    pthread_mutex_t lock;         /* guards table and the entries' refs */
    rio_entry *table;

    pthread_t thread;
    struct pollfd *tpfds;         /* the thread's poll set: the engine's + the wake pipe */
    atomic_int thread_on;         /* step from outside is refused while set */
    atomic_int thread_stop;
    int wake[2];                  /* self-pipe to interrupt the thread's poll */
};

extern const rio_proto rio_http_proto;
extern const rio_proto rio_alpn_proto;

/* Look key up and take a reference (NULL if absent). */
rio_entry *rio_table_get(acme_responder *r, const char *key);
/* Drop a reference taken with rio_table_get. */
void rio_entry_release(acme_responder *r, rio_entry *e);
/* Insert or replace; takes ownership of key and value (released on failure). */
int rio_table_put(acme_responder *r, char *key, void *value, void (*free_value)(void *));

#endif
