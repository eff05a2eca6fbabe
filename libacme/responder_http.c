/* The challenge responders' engine (see responder_io.h) and the http-01
 * protocol on top of it.
 *
 * Shape of the engine: one listening socket, at most max_conns accepted
 * connections, each with a hard deadline from its accept and a shorter one
 * for its request head / ClientHello (validators send at once; a peer
 * that connects and says nothing is not one). When all slots are taken, a
 * new connection evicts the oldest one that is idle (has sent no complete
 * head although we looked, and is past a short grace) or only lingering;
 * when none is, the listening socket leaves the poll set, so further
 * validators wait in the kernel's accept queue instead of being refused.
 * When the slots are full, an address (an IPv6 /64) holding max_per_src
 * of them may only replace its own idle ones (see make_room), so idle
 * connections from a few hosts cannot keep validators out.
 * One step = one zero-timeout poll over everything + as much work as can
 * be done without waiting. The thread mode is only a poll() loop that calls
 * the same step. */
#include "responder_io.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include <acme/error.h>
#include <acme/host.h>

#include "b64url.h"
#include "util.h"

/* Large enough that a burst of validators (and retries) fits while the
 * slots are busy; the kernel caps it at net.core.somaxconn anyway. */
#define RIO_BACKLOG 511
/* After answering, how long we keep reading (and discarding) what the peer
 * still sends. Closing a socket with unread input makes the kernel send a
 * RST, which can destroy our last bytes (the response, close_notify, an
 * alert) before the peer has read them. Bounded again by the deadline. */
#define RIO_LINGER_MS 2000
/* Accepts per step: keeps one step short even under a connection flood. */
#define RIO_ACCEPT_PER_STEP 16
/* Out of descriptors or memory: stop accepting a moment rather than spin
 * on a listening socket that stays readable. */
#define RIO_ACCEPT_PAUSE_MS 100
/* A connection that has sent no complete head is evicted only once it is
 * this old: the request or ClientHello follows the connection within
 * microseconds from a remote validator, but a client on a loaded host
 * may be some milliseconds late with it, and must not lose its slot to
 * the next newcomer for that. Short, because while every slot is held by
 * idle connections younger than this, newcomers wait in the queue. */
#define RIO_EVICT_GRACE_MS 100
/* A step stops taking on new work after this long (see run_step). */
#define RIO_STEP_BUDGET_MS 10

#define RIO_DEFAULT_TIMEOUT_MS 10000u
/* Validators send the request or ClientHello with the connection; 2 s is
 * room for a slow path and retransmissions, and short enough that idle
 * connections do not pile up. */
#define RIO_DEFAULT_HEAD_MS 2000u
/* Validators use distinct addresses (3-6 perspectives); a few retries
 * from one of them fit too. */
#define RIO_DEFAULT_PER_SRC 8u
#define RIO_DEFAULT_MAX_HEADER 8192u
#define RIO_MAX_CONNS_LIMIT 4096u
#define RIO_MIN_HEADER 256u

/* ======================================================================
 * Table of published items
 * ====================================================================== */

static void entry_free(rio_entry *e)
{
    if (e->free_value)
        e->free_value(e->value);
    free(e->key);
    free(e);
}

static rio_entry **table_find_locked(acme_responder *r, const char *key)
{
    rio_entry **link = &r->table;
    while (*link && strcmp((*link)->key, key) != 0)
        link = &(*link)->next;
    return link;
}

rio_entry *rio_table_get(acme_responder *r, const char *key)
{
    pthread_mutex_lock(&r->lock);
    rio_entry *e = *table_find_locked(r, key);
    if (e)
        e->refs++;
    pthread_mutex_unlock(&r->lock);
    return e;
}

void rio_entry_release(acme_responder *r, rio_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&r->lock);
    int last = --e->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (last)
        entry_free(e);
}

int rio_table_put(acme_responder *r, char *key, void *value, void (*free_value)(void *))
{
    rio_entry *e = calloc(1, sizeof(*e));
    if (!e) {
        free(key);
        if (free_value)
            free_value(value);
        return ACME_E_NOMEM;
    }
    e->key = key;
    e->value = value;
    e->free_value = free_value;
    e->refs = 1; /* the table's own reference */

    pthread_mutex_lock(&r->lock);
    rio_entry **link = table_find_locked(r, key);
    rio_entry *old = *link;
    if (old) {
        e->next = old->next;
        *link = e;
    } else {
        e->next = r->table;
        r->table = e;
    }
    pthread_mutex_unlock(&r->lock);
    /* A connection may still hold the old one; it goes with the last ref. */
    rio_entry_release(r, old);
    return ACME_OK;
}

static int table_remove(acme_responder *r, const char *key)
{
    pthread_mutex_lock(&r->lock);
    rio_entry **link = table_find_locked(r, key);
    rio_entry *e = *link;
    if (e)
        *link = e->next;
    pthread_mutex_unlock(&r->lock);
    if (!e)
        return ACME_E_NOT_FOUND;
    rio_entry_release(r, e);
    return ACME_OK;
}

/* ======================================================================
 * Sockets
 * ====================================================================== */

static int listen_on(const char *addr, unsigned port, int *out)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    char svc[16];
    snprintf(svc, sizeof(svc), "%u", port);
    struct addrinfo *res = NULL;
    if (getaddrinfo(addr, svc, &hints, &res) != 0 || !res)
        return ACME_E_INVALID_ARG;

    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return ACME_E_NETWORK;
    }
    int one = 1, zero = 0;
    /* A restarted host must be able to rebind while old connections sit
     * in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (res->ai_family == AF_INET6) {
        /* "::" serves IPv4 too (mapped addresses) whatever the system
         * default for bindv6only is. */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    int ok = bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, RIO_BACKLOG) == 0;
    freeaddrinfo(res);
    if (!ok) {
        close(fd);
        return ACME_E_NETWORK;
    }
    *out = fd;
    return ACME_OK;
}

static unsigned bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* ======================================================================
 * Connections
 * ====================================================================== */

/* The peer's address as the per-address cap counts it: IPv4 as a mapped
 * IPv6 address, IPv6 by its /64 (one host usually owns a whole /64, so
 * counting single addresses would not cap it at all). */
static void source_key(const struct sockaddr_storage *ss, unsigned char key[16])
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
        /* a mapped IPv4 peer on a dual-stack socket is one IPv4 address */
        memcpy(key, a, memcmp(a, mapped, 12) == 0 ? 16 : 8);
    }
}

static void conn_release_state(acme_responder *r, rio_conn *c)
{
    if (c->state)
        r->proto->close(r, c);
    c->state = NULL;
}

static void conn_close(acme_responder *r, size_t i)
{
    rio_conn *c = &r->conns[i];
    conn_release_state(r, c);
    close(c->fd);
    r->conns[i] = r->conns[--r->nconns]; /* keep the array dense */
}

/* Close the connections marked dead. Done apart from the work loop so that
 * indexes stay stable while it runs. */
static void reap(acme_responder *r)
{
    for (size_t i = r->nconns; i-- > 0;)
        if (r->conns[i].dead)
            conn_close(r, i);
}

/* Read and discard; RIO_MORE while the peer may still send, RIO_DROP at
 * EOF or error. */
static int conn_drain(rio_conn *c)
{
    char sink[4096];
    for (int k = 0; k < 16; k++) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return RIO_MORE;
        return RIO_DROP;
    }
    return RIO_MORE; /* a chatty peer: come back next step */
}

/* Act on what the protocol's io returned for c. */
static void conn_after_io(acme_responder *r, rio_conn *c, int rc, uint64_t now)
{
    if (rc == RIO_MORE)
        return;
    if (rc == RIO_DONE) {
        /* Free the protocol state (TLS session, certificate reference)
         * now; only the socket lingers. */
        conn_release_state(r, c);
        shutdown(c->fd, SHUT_WR);
        c->lingering = 1;
        c->want = POLLIN;
        c->linger_end = now + RIO_LINGER_MS < c->deadline ? now + RIO_LINGER_MS : c->deadline;
        if (conn_drain(c) == RIO_MORE)
            return;
    }
    c->dead = 1;
}

static void conn_io(acme_responder *r, rio_conn *c, uint64_t now)
{
    c->tried = 1;
    conn_after_io(r, c, r->proto->io(r, c), now);
}

static uint64_t conn_end(const rio_conn *c)
{
    if (c->lingering)
        return c->linger_end;
    return c->head_done ? c->deadline : c->head_end;
}

/* An idle candidate for eviction: no complete head although we looked. */
static int conn_idle(const rio_conn *c)
{
    return !c->dead && !c->lingering && !c->head_done && c->tried;
}

/* How readily c gives its slot to a newcomer: 0 never (a request or
 * handshake in progress, not looked at yet: its bytes may be waiting
 * unread, or idle but younger than the grace), 1 an idle peer, 2 an
 * answered connection only lingering for the peer's close. */
static int evict_rank(const rio_conn *c, uint64_t now)
{
    if (c->dead)
        return 0;
    if (c->lingering)
        return 2;
    return conn_idle(c) && now - c->accepted >= RIO_EVICT_GRACE_MS ? 1 : 0;
}

/* The connection to evict: the best rank, the oldest within it; from
 * source src only if src is given. -1 if none may go. */
static ssize_t evict_pick(const acme_responder *r, const unsigned char *src, uint64_t now)
{
    ssize_t best = -1;
    int best_rank = 0;
    for (size_t i = 0; i < r->nconns; i++) {
        const rio_conn *c = &r->conns[i];
        if (src && memcmp(c->src, src, sizeof(c->src)) != 0)
            continue;
        int rank = evict_rank(c, now);
        if (rank > best_rank || (rank && rank == best_rank && c->serial < r->conns[best].serial)) {
            best = (ssize_t)i;
            best_rank = rank;
        }
    }
    return best;
}

static int accepting(const acme_responder *r, uint64_t now)
{
    if (now < r->accept_pause_until)
        return 0;
    return r->nconns < r->max_conns || evict_pick(r, NULL, now) >= 0;
}

static int over_budget(uint64_t start)
{
    return now_ms() - start >= RIO_STEP_BUDGET_MS;
}

/* Give slot i up for a newcomer. A lingering connection was answered:
 * read what it sent first, so the close does not turn into a RST that
 * could destroy the answer the peer has not read yet. */
static void conn_evict(acme_responder *r, size_t i)
{
    if (r->conns[i].lingering)
        conn_drain(&r->conns[i]);
    conn_close(r, i);
}

/* Make room for a connection from src, or say it must be refused (0).
 *
 * The per-address cap only decides who gives way when every slot is
 * taken: a CA validating many orders at once may well do so from one
 * address (a host with 16 orders in flight sees 16 connections from the
 * same validator), so while slots are free every address gets one. When
 * they are full, an address at its cap may only replace one of its own
 * idle connections; any other address takes the oldest idle slot. Idle
 * connections from a few hosts thus never keep a validator out, and a
 * host flooding from one address cannot take a slot from anyone else. */
static int make_room(acme_responder *r, const unsigned char *src, uint64_t now)
{
    if (r->nconns >= r->max_conns)
        reap(r); /* slots freed by this step's own work come first */
    if (r->nconns < r->max_conns)
        return 1;
    size_t same = 0;
    for (size_t i = 0; i < r->nconns; i++)
        same += !r->conns[i].dead && memcmp(r->conns[i].src, src, sizeof(r->conns[i].src)) == 0;
    ssize_t victim = evict_pick(r, same >= r->max_per_src ? src : NULL, now);
    if (victim < 0)
        return 0;
    conn_evict(r, (size_t)victim);
    return 1;
}

static void accept_some(acme_responder *r, uint64_t now, uint64_t start)
{
    for (int k = 0; k < RIO_ACCEPT_PER_STEP && accepting(r, now); k++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        memset(&ss, 0, sizeof(ss));
        int fd = accept4(r->listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                r->accept_pause_until = now + RIO_ACCEPT_PAUSE_MS;
            return; /* EAGAIN: queue empty */
        }
        unsigned char src[16];
        source_key(&ss, src);
        if (!make_room(r, src, now)) {
            /* Over its address's cap with nothing of its own to replace:
             * refused now rather than left to hold the accept queue. */
            close(fd);
            continue;
        }
        /* Handshake flights and responses are small: do not let Nagle
         * hold a segment back waiting for a delayed ACK. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        rio_conn *c = &r->conns[r->nconns];
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->want = POLLIN;
        c->serial = r->next_serial++;
        c->accepted = now;
        c->deadline = now + r->timeout_ms;
        c->head_end = now + r->head_ms;
        memcpy(c->src, src, sizeof(c->src));
        if (r->proto->open(r, c) != ACME_OK) {
            close(fd);
            continue;
        }
        r->nconns++;
        /* The request or ClientHello often arrives with the connection:
         * try at once rather than after another round of poll — unless
         * this step has used its time; then the next poll reports it. */
        if (!over_budget(start))
            conn_io(r, c, now);
    }
}

/* The one step every mode runs. Never waits for a peer, and stops taking
 * on work once it has used RIO_STEP_BUDGET_MS, so that a burst of
 * handshakes (each one costs real CPU on a small device) is spread over
 * several steps and the host's own loop gets its turn in between. Work
 * left over stays ready in the kernel, so the host's next poll returns at
 * once. */
static int run_step(acme_responder *r)
{
    uint64_t start = now_ms();
    struct pollfd *p = r->pfds;
    p[0].fd = r->listen_fd;
    p[0].events = POLLIN;
    p[0].revents = 0;
    for (size_t i = 0; i < r->nconns; i++) {
        p[i + 1].fd = r->conns[i].fd;
        p[i + 1].events = r->conns[i].want;
        p[i + 1].revents = 0;
    }
    size_t n = r->nconns;
    if (poll(p, n + 1, 0) < 0 && errno != EINTR)
        return ACME_E_NETWORK;

    uint64_t now = now_ms();
    int spent = 0;
    size_t first = n ? r->cursor % n : 0;
    for (size_t k = 0; k < n; k++) {
        /* Start where the last step ran out of time, so no connection
         * is starved by the ones before it. */
        size_t i = (first + k) % n;
        rio_conn *c = &r->conns[i];
        if (now >= conn_end(c)) {
            /* The deadline is absolute: a slow peer never keeps a slot
             * past it, whatever it is in the middle of. The head
             * deadline is the peer's to meet too, but bytes already
             * waiting when it passes (we were busy) are still read. */
            if (c->lingering || c->head_done || now >= c->deadline || !p[i + 1].revents) {
                c->dead = 1;
                continue;
            }
        }
        if (!p[i + 1].revents) {
            /* Looked at after accept and nothing there: an idle peer,
             * even if its accept came when the step had no time left to
             * try a read. */
            c->tried = 1;
            continue;
        }
        if (spent)
            continue;
        if (c->lingering) {
            if (conn_drain(c) != RIO_MORE)
                c->dead = 1;
        } else {
            conn_io(r, c, now);
        }
        if (over_budget(start)) {
            spent = 1;
            r->cursor = i + 1;
        }
    }
    reap(r);
    /* After the connections, so that slots freed just now are reused in
     * the same step. */
    if (!spent && (p[0].revents & POLLIN)) {
        accept_some(r, now, start);
        reap(r);
    }
    return ACME_OK;
}

static size_t fill_fds(const acme_responder *r, struct pollfd *p, uint64_t now)
{
    size_t n = 0;
    if (accepting(r, now)) {
        p[n].fd = r->listen_fd;
        p[n].events = POLLIN;
        p[n].revents = 0;
        n++;
    }
    for (size_t i = 0; i < r->nconns; i++) {
        p[n].fd = r->conns[i].fd;
        p[n].events = r->conns[i].want;
        p[n].revents = 0;
        n++;
    }
    return n;
}

static int next_timeout(const acme_responder *r, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < r->nconns; i++) {
        uint64_t t = conn_end(&r->conns[i]);
        if (t < next)
            next = t;
    }
    if (r->nconns < r->max_conns && r->accept_pause_until > now && r->accept_pause_until < next)
        next = r->accept_pause_until;
    /* Full: the listening socket is back in the set once an idle
     * connection outgrows its grace, so wake up then. */
    for (size_t i = 0; r->nconns >= r->max_conns && i < r->nconns; i++) {
        uint64_t t = r->conns[i].accepted + RIO_EVICT_GRACE_MS;
        if (conn_idle(&r->conns[i]) && t > now && t < next)
            next = t;
    }
    if (next == UINT64_MAX)
        return -1;
    if (next <= now)
        return 0;
    return next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

/* ======================================================================
 * Public: life cycle
 * ====================================================================== */

int acme_responder_new(acme_responder_kind kind, const acme_responder_options *opts,
                       acme_responder **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    const rio_proto *proto = kind == ACME_RESPONDER_HTTP01      ? &rio_http_proto
                             : kind == ACME_RESPONDER_TLSALPN01 ? &rio_alpn_proto
                                                                : NULL;
    if (!proto)
        return ACME_E_INVALID_ARG;

    /* Take the fields the host knows about; the rest keep their defaults. */
    acme_responder_options o;
    memset(&o, 0, sizeof(o));
    if (opts) {
        if (opts->size < sizeof(size_t))
            return ACME_E_INVALID_ARG;
        memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
    }
    if (o.port > 65535 || o.max_connections > RIO_MAX_CONNS_LIMIT ||
        o.max_per_address > RIO_MAX_CONNS_LIMIT ||
        (o.max_header_bytes && o.max_header_bytes < RIO_MIN_HEADER))
        return ACME_E_INVALID_ARG;

    acme_responder *r = calloc(1, sizeof(*r));
    if (!r)
        return ACME_E_NOMEM;
    r->kind = kind;
    r->proto = proto;
    r->listen_fd = -1;
    r->wake[0] = r->wake[1] = -1;
    r->max_conns = o.max_connections ? o.max_connections : proto->default_max_connections;
    r->timeout_ms = o.timeout_ms ? o.timeout_ms : RIO_DEFAULT_TIMEOUT_MS;
    r->max_header = o.max_header_bytes ? o.max_header_bytes : RIO_DEFAULT_MAX_HEADER;
    r->head_ms = o.head_timeout_ms ? o.head_timeout_ms : RIO_DEFAULT_HEAD_MS;
    if (r->head_ms > r->timeout_ms)
        r->head_ms = r->timeout_ms;
    r->max_per_src = o.max_per_address ? o.max_per_address : RIO_DEFAULT_PER_SRC;
    atomic_init(&r->thread_on, 0);
    atomic_init(&r->thread_stop, 0);
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return ACME_E_NOMEM;
    }
    int rc = ACME_E_NOMEM;
    r->conns = calloc(r->max_conns, sizeof(*r->conns));
    r->pfds = calloc(r->max_conns + 1, sizeof(*r->pfds));
    if (!r->conns || !r->pfds)
        goto fail;
    if (proto->init && (rc = proto->init(r)) != ACME_OK)
        goto fail;
    if (o.bind_address) {
        rc = listen_on(o.bind_address, o.port, &r->listen_fd);
    } else {
        rc = listen_on("::", o.port, &r->listen_fd);
        if (rc != ACME_OK) /* a host without IPv6 */
            rc = listen_on("0.0.0.0", o.port, &r->listen_fd);
    }
    if (rc != ACME_OK)
        goto fail;
    r->port = bound_port(r->listen_fd);
    *out = r;
    return ACME_OK;
fail:
    acme_responder_free(r);
    return rc;
}

void acme_responder_free(acme_responder *r)
{
    if (!r)
        return;
    acme_responder_stop_thread(r);
    /* Connections first: they hold references into the table. */
    while (r->nconns)
        conn_close(r, r->nconns - 1);
    if (r->listen_fd >= 0)
        close(r->listen_fd);
    if (r->proto->destroy)
        r->proto->destroy(r);
    rio_entry *e = r->table;
    while (e) {
        rio_entry *next = e->next;
        rio_entry_release(r, e);
        e = next;
    }
    pthread_mutex_destroy(&r->lock);
    free(r->conns);
    free(r->pfds);
    free(r->tpfds);
    free(r);
}

unsigned acme_responder_port(const acme_responder *r)
{
    return r ? r->port : 0;
}

acme_responder_kind acme_responder_get_kind(const acme_responder *r)
{
    return r ? r->kind : (acme_responder_kind)0;
}

int acme_responder_remove(acme_responder *r, const char *token_or_identifier)
{
    if (!r || !token_or_identifier)
        return ACME_E_INVALID_ARG;
    char *key = NULL;
    int rc = r->proto->make_key(token_or_identifier, &key);
    if (rc != ACME_OK)
        return rc == ACME_E_NOMEM ? rc : ACME_E_NOT_FOUND; /* could never have been added */
    rc = table_remove(r, key);
    free(key);
    return rc;
}

/* ======================================================================
 * Public: event-loop mode
 * ====================================================================== */

int acme_responder_fds(acme_responder *r, struct pollfd *fds, size_t cap, size_t *n)
{
    if (!r || !n || (cap && !fds))
        return ACME_E_INVALID_ARG;
    if (atomic_load(&r->thread_on))
        return ACME_E_STATE;
    uint64_t now = now_ms();
    size_t need = (accepting(r, now) ? 1 : 0) + r->nconns;
    *n = need;
    if (cap < need)
        return ACME_E_INVALID_ARG;
    fill_fds(r, fds, now);
    return ACME_OK;
}

int acme_responder_timeout_ms(acme_responder *r)
{
    if (!r || atomic_load(&r->thread_on))
        return -1;
    return next_timeout(r, now_ms());
}

int acme_responder_step(acme_responder *r)
{
    if (!r)
        return ACME_E_INVALID_ARG;
    if (atomic_load(&r->thread_on))
        return ACME_E_STATE;
    return run_step(r);
}

/* ======================================================================
 * Public: blocking mode — a poll() loop over the step above
 * ====================================================================== */

static void *thread_main(void *arg)
{
    acme_responder *r = arg;
    struct pollfd *p = r->tpfds;
    while (!atomic_load(&r->thread_stop)) {
        uint64_t now = now_ms();
        size_t n = fill_fds(r, p, now);
        p[n].fd = r->wake[0];
        p[n].events = POLLIN;
        p[n].revents = 0;
        int rc = poll(p, n + 1, next_timeout(r, now));
        if (rc < 0 && errno != EINTR)
            sleep_ms(10); /* should not happen; never spin */
        if (p[n].revents) {
            char sink[64];
            while (read(r->wake[0], sink, sizeof(sink)) > 0)
                ;
        }
        if (atomic_load(&r->thread_stop))
            break;
        run_step(r);
    }
    return NULL;
}

int acme_responder_start_thread(acme_responder *r)
{
    if (!r)
        return ACME_E_INVALID_ARG;
    if (atomic_load(&r->thread_on))
        return ACME_E_STATE;
    /* Room for everything fill_fds can give, plus the wake-up pipe. */
    if (!r->tpfds && !(r->tpfds = calloc(r->max_conns + 2, sizeof(*r->tpfds))))
        return ACME_E_NOMEM;
    if (pipe2(r->wake, O_NONBLOCK | O_CLOEXEC) != 0)
        return ACME_E_NETWORK;
    atomic_store(&r->thread_stop, 0);
    atomic_store(&r->thread_on, 1);
    /* The host's signals belong to the host's threads: ours blocks them
     * all (the new thread inherits the mask in force at creation). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(&r->thread, NULL, thread_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        atomic_store(&r->thread_on, 0);
        close(r->wake[0]);
        close(r->wake[1]);
        r->wake[0] = r->wake[1] = -1;
        return ACME_E_NOMEM;
    }
    return ACME_OK;
}

int acme_responder_stop_thread(acme_responder *r)
{
    if (!r)
        return ACME_E_INVALID_ARG;
    if (!atomic_load(&r->thread_on))
        return ACME_OK;
    atomic_store(&r->thread_stop, 1);
    ssize_t w;
    do
        w = write(r->wake[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(r->thread, NULL);
    close(r->wake[0]);
    close(r->wake[1]);
    r->wake[0] = r->wake[1] = -1;
    atomic_store(&r->thread_on, 0);
    return ACME_OK;
}

/* ======================================================================
 * Public: host callback adapters
 * ====================================================================== */

static int read_set(void *ud, acme_responder_set *s)
{
    const acme_responder_set *in = ud;
    if (!in || in->size < sizeof(size_t))
        return ACME_E_INVALID_ARG;
    memset(s, 0, sizeof(*s));
    memcpy(s, in, in->size < sizeof(*s) ? in->size : sizeof(*s));
    return ACME_OK;
}

int acme_responder_publish(void *ud, const acme_challenge *ch)
{
    /* A type this set has no responder for is declined, so the order can
     * try the next type the CA offers instead of failing. */
    acme_responder_set s;
    if (!ch || read_set(ud, &s) != ACME_OK)
        return ACME_E_INVALID_ARG;
    switch (acme_challenge_get_type(ch)) {
    case ACME_CHALLENGE_HTTP_01:
        if (!s.http01)
            return ACME_E_DECLINED;
        return acme_responder_add_http01(s.http01, acme_challenge_token(ch),
                                         acme_challenge_key_authorization(ch));
    case ACME_CHALLENGE_TLS_ALPN_01:
        if (!s.tlsalpn01)
            return ACME_E_DECLINED;
        return acme_responder_add_tlsalpn01(s.tlsalpn01, acme_challenge_identifier(ch),
                                            acme_challenge_alpn_cert_pem(ch),
                                            acme_challenge_alpn_key_pem(ch));
    default:
        return ACME_E_DECLINED;
    }
}

int acme_responder_unpublish(void *ud, const acme_challenge *ch)
{
    acme_responder_set s;
    if (!ch || read_set(ud, &s) != ACME_OK)
        return ACME_E_INVALID_ARG;
    int rc;
    switch (acme_challenge_get_type(ch)) {
    case ACME_CHALLENGE_HTTP_01:
        if (!s.http01)
            return ACME_E_UNSUPPORTED;
        rc = acme_responder_remove(s.http01, acme_challenge_token(ch));
        break;
    case ACME_CHALLENGE_TLS_ALPN_01:
        if (!s.tlsalpn01)
            return ACME_E_UNSUPPORTED;
        rc = acme_responder_remove(s.tlsalpn01, acme_challenge_identifier(ch));
        break;
    default:
        return ACME_E_UNSUPPORTED;
    }
    /* unpublish must be idempotent: the goal state is "not served". */
    return rc == ACME_E_NOT_FOUND ? ACME_OK : rc;
}

/* ======================================================================
 * http-01
 * ====================================================================== */

#define WELL_KNOWN "/.well-known/acme-challenge/"
/* Real tokens are 43 characters; anything far longer is not one. */
#define TOKEN_MAX 256

typedef struct http_conn {
    char *in;        /* r->max_header bytes */
    size_t in_len;
    char *out;       /* the whole response, once decided */
    size_t out_len, out_off;
} http_conn;

typedef struct http_req {
    int head_only;             /* HEAD: headers without body */
    char token[TOKEN_MAX + 1]; /* valid when the parse returns 200 */
} http_req;

static int http_make_key(const char *in, char **out)
{
    /* The token is the only thing from the request that reaches the
     * table, and only after this guard: no path, no percent-decoding. */
    if (!b64url_is_token(in, TOKEN_MAX))
        return ACME_E_BAD_TOKEN;
    *out = strdup(in);
    return *out ? ACME_OK : ACME_E_NOMEM;
}

int acme_responder_add_http01(acme_responder *r, const char *token, const char *key_auth)
{
    if (!r || !token || !key_auth || r->kind != ACME_RESPONDER_HTTP01)
        return ACME_E_INVALID_ARG;
    char *key = NULL;
    int rc = http_make_key(token, &key);
    if (rc != ACME_OK)
        return rc;
    char *value = strdup(key_auth);
    if (!value) {
        free(key);
        return ACME_E_NOMEM;
    }
    return rio_table_put(r, key, value, free);
}

static int is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int all_tchars(const char *s, size_t n)
{
    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/* One line starting at *pos (ending in LF, optional CR before it); no
 * control characters except HTAB allowed inside. 0 ok, -1 malformed. */
static int next_line(const char *buf, size_t end, size_t *pos, const char **line, size_t *len)
{
    const char *s = buf + *pos;
    const char *nl = memchr(s, '\n', end - *pos);
    if (!nl)
        return -1;
    size_t n = (size_t)(nl - s);
    *pos += n + 1;
    if (n && s[n - 1] == '\r')
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -1; /* bare CR, NUL & co. */
    }
    *line = s;
    *len = n;
    return 0;
}

/* Parse a request head. Returns 0 while incomplete, otherwise the HTTP
 * status to answer with; 200 means "a well-formed token path" (q->token),
 * still to be looked up. */
static int http_parse(const char *buf, size_t len, http_req *q)
{
    size_t pos = 0;
    /* RFC 9112 §2.2: ignore empty lines before the request line. */
    while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n'))
        pos++;
    /* Complete once an empty line ends the head. */
    size_t end = 0;
    for (size_t i = pos; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n') {
            end = i + 2;
            break;
        }
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            end = i + 3;
            break;
        }
    }
    if (!end)
        return 0;

    const char *line;
    size_t n;
    if (next_line(buf, end, &pos, &line, &n) != 0)
        return 400;
    /* method SP request-target SP HTTP-version, single spaces */
    const char *sp1 = memchr(line, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
    if (!sp1 || !sp2 || memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - line)) ||
        memchr(line, '\t', n))
        return 400;
    const char *method = line, *target = sp1 + 1, *version = sp2 + 1;
    size_t mlen = (size_t)(sp1 - line), tlen = (size_t)(sp2 - target);
    size_t vlen = n - (size_t)(version - line);
    if (!all_tchars(method, mlen) || tlen == 0)
        return 400;
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)target[i] > 0x7e)
            return 400;
    if (vlen != 8 || memcmp(version, "HTTP/", 5) != 0 || version[6] != '.' ||
        version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
        return 400;
    int http11 = 0;
    if (version[5] == '1' && version[7] == '1')
        http11 = 1;
    else if (!(version[5] == '1' && version[7] == '0'))
        return 505;

    int hosts = 0;
    for (;;) {
        if (next_line(buf, end, &pos, &line, &n) != 0)
            return 400;
        if (n == 0)
            break;
        if (line[0] == ' ' || line[0] == '\t')
            return 400; /* obsolete line folding: refused (RFC 9112 §5.2) */
        const char *colon = memchr(line, ':', n);
        if (!colon || !all_tchars(line, (size_t)(colon - line)))
            return 400;
        if ((size_t)(colon - line) == 4 && ascii_ncasecmp(line, "host", 4) == 0)
            hosts++;
    }
    /* RFC 9112 §3.2: exactly one Host in HTTP/1.1. */
    if (hosts > 1 || (http11 && hosts != 1))
        return 400;

    if (mlen == 3 && memcmp(method, "GET", 3) == 0)
        q->head_only = 0;
    else if (mlen == 4 && memcmp(method, "HEAD", 4) == 0)
        q->head_only = 1;
    else
        return 405;

    /* origin-form "/path", or absolute-form "http://authority/path". */
    const char *path = target, *tend = target + tlen;
    if (tlen >= 7 && ascii_ncasecmp(target, "http://", 7) == 0) {
        path = memchr(target + 7, '/', tlen - 7);
        if (!path)
            return 404;
    } else if (target[0] != '/') {
        return 400;
    }
    const char *query = memchr(path, '?', (size_t)(tend - path));
    if (query)
        tend = query;
    size_t plen = (size_t)(tend - path), wlen = strlen(WELL_KNOWN);
    if (plen <= wlen || memcmp(path, WELL_KNOWN, wlen) != 0 || plen - wlen > TOKEN_MAX)
        return 404;
    memcpy(q->token, path + wlen, plen - wlen);
    q->token[plen - wlen] = '\0';
    /* "../x", "a/b", "%2e%2e" all fail here: they are simply not tokens. */
    if (!b64url_is_token(q->token, TOKEN_MAX))
        return 404;
    return 200;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

static char *http_response(int status, int head_only, const char *body, size_t *len)
{
    char *s = xasprintf("HTTP/1.1 %d %s\r\n"
                        "Content-Type: text/plain\r\n"
                        "Content-Length: %zu\r\n"
                        "%s"
                        "Cache-Control: no-store\r\n"
                        "Connection: close\r\n"
                        "\r\n"
                        "%s",
                        status, reason(status), strlen(body),
                        status == 405 ? "Allow: GET, HEAD\r\n" : "",
                        head_only ? "" : body);
    if (s)
        *len = strlen(s);
    return s;
}

static int http_open(acme_responder *r, rio_conn *c)
{
    http_conn *h = calloc(1, sizeof(*h));
    if (!h)
        return ACME_E_NOMEM;
    h->in = malloc(r->max_header);
    if (!h->in) {
        free(h);
        return ACME_E_NOMEM;
    }
    c->state = h;
    c->want = POLLIN;
    return ACME_OK;
}

static void http_close(acme_responder *r, rio_conn *c)
{
    (void)r;
    http_conn *h = c->state;
    if (!h)
        return;
    free(h->in);
    free(h->out);
    free(h);
    c->state = NULL;
}

/* Decide the response once the head is in (or can never be). */
static int http_answer(acme_responder *r, http_conn *h, int status, const http_req *q)
{
    const char *body;
    rio_entry *e = NULL;
    if (status == 200) {
        e = rio_table_get(r, q->token);
        if (!e)
            status = 404;
    }
    switch (status) {
    case 200: body = e->value; break;
    case 404: body = "no such challenge\n"; break;
    case 405: body = "only GET and HEAD\n"; break;
    case 431: body = "request head too large\n"; break;
    case 505: body = "HTTP/1.x only\n"; break;
    default: body = "bad request\n"; break;
    }
    h->out = http_response(status, q->head_only, body, &h->out_len);
    rio_entry_release(r, e);
    return h->out ? ACME_OK : ACME_E_NOMEM;
}

static int http_io(acme_responder *r, rio_conn *c)
{
    http_conn *h = c->state;
    if (!h->out) {
        int eof = 0;
        while (h->in_len < r->max_header) {
            ssize_t n = recv(c->fd, h->in + h->in_len, r->max_header - h->in_len, 0);
            if (n > 0) {
                h->in_len += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n < 0)
                return RIO_DROP;
            eof = 1;
            break;
        }
        http_req q;
        memset(&q, 0, sizeof(q));
        int status = http_parse(h->in, h->in_len, &q);
        if (status == 0) {
            if (h->in_len >= r->max_header)
                status = 431;
            else if (eof)
                return RIO_DROP; /* gave up mid-request: nobody to answer */
            else {
                c->want = POLLIN;
                return RIO_MORE;
            }
        }
        c->head_done = 1;
        if (http_answer(r, h, status, &q) != ACME_OK)
            return RIO_DROP;
    }
    while (h->out_off < h->out_len) {
        ssize_t n = send(c->fd, h->out + h->out_off, h->out_len - h->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            h->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->want = POLLOUT;
            return RIO_MORE;
        }
        return RIO_DROP;
    }
    return RIO_DONE;
}

const rio_proto rio_http_proto = {
    .default_max_connections = 32,
    .make_key = http_make_key,
    .init = NULL,
    .destroy = NULL,
    .open = http_open,
    .io = http_io,
    .close = http_close,
};
