/* libacme — built-in challenge responders: a tiny http-01 server and a
 * tls-alpn-01 (RFC 8737) TLS server, for hosts that have no web server of
 * their own on port 80 / 443 (or that stop it while an order runs).
 *
 * One engine, two faces (like libcurl's easy/multi):
 *  - event-loop hosts ask for the descriptors to watch
 *    (acme_responder_fds), the next timeout (acme_responder_timeout_ms) and
 *    call acme_responder_step when one is ready or the timeout passed.
 *    A step never blocks: all sockets are non-blocking.
 *  - simple hosts call acme_responder_start_thread and forget about it; the
 *    thread runs poll() over the same descriptors and calls the same step.
 *
 * Publishing (add/remove) is safe from any thread at any time, also while
 * the responder's own thread runs. Everything else on one responder must
 * come from one thread at a time.
 *
 * Validators connect from several places at once (3–6 near-simultaneous
 * connections) and send their request or ClientHello at once. Concurrency
 * is bounded by max_connections. When every slot is taken, a new
 * connection takes the slot of the oldest idle one (a peer that has not
 * sent a complete request head / ClientHello, or one already answered
 * that only waits for the peer to close); when no slot can be freed that
 * way, new connections wait in the kernel's accept queue, they are not
 * dropped. While every slot is taken, an address (for IPv6, one /64)
 * that holds max_per_address of them may only replace its own oldest idle
 * one, else its new connection is closed at once; while slots are free,
 * any address gets one (a CA may validate many orders from one address).
 * A connection must send its
 * complete request head / ClientHello within head_timeout_ms of accept,
 * and lives at most timeout_ms from accept, whatever the peer does. */
#ifndef ACME_RESPONDER_H
#define ACME_RESPONDER_H

#include <stddef.h>
#include <poll.h>
#include <acme/export.h>
#include <acme/error.h>
#include <acme/host.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct acme_responder acme_responder;

typedef enum acme_responder_kind {
    ACME_RESPONDER_HTTP01 = 1,    /* plain HTTP/1.1, normally port 80 */
    ACME_RESPONDER_TLSALPN01 = 2  /* TLS with ALPN acme-tls/1 only, normally port 443 */
} acme_responder_kind;

/* Every field 0/NULL means "the default". */
typedef struct acme_responder_options {
    size_t size;               /* sizeof(acme_responder_options) as the host compiled it */
    const char *bind_address;  /* numeric; default "::" (dual stack), "0.0.0.0" if no IPv6 */
    unsigned port;             /* 0 = let the kernel pick (see acme_responder_port) */
    unsigned max_connections;  /* connections served at once, at most 4096; for
                                * tls-alpn-01 the bound on concurrent handshakes.
                                * Default 32 (http-01), 8 (tls-alpn-01). An
                                * answered connection keeps its slot while the
                                * peer closes, at most 2 s more. */
    unsigned timeout_ms;       /* life of one connection from accept (default 10000) */
    unsigned max_header_bytes; /* http-01: request line + headers, >= 256
                                * (default 8192); more is answered with 431 */
    /* Fields added later: a host compiled with an older, smaller struct
     * gets their defaults. */
    unsigned max_per_address;  /* connections at once from one address (an IPv6
                                * /64 counts as one address), at most 4096;
                                * default 8 */
    unsigned head_timeout_ms;  /* time from accept to a complete request head
                                * (http-01) or ClientHello (tls-alpn-01);
                                * default 2000, never more than timeout_ms */
} acme_responder_options;

/* Bind and listen now (so a busy port fails here, not later). opts may be
 * NULL. ACME_E_NETWORK if the address cannot be bound. */
ACME_EXPORT int acme_responder_new(acme_responder_kind kind,
                                   const acme_responder_options *opts,
                                   acme_responder **out);
/* Stops the thread if running, closes everything. NULL is fine. */
ACME_EXPORT void acme_responder_free(acme_responder *r);
/* The port actually bound (useful with port 0). */
ACME_EXPORT unsigned acme_responder_port(const acme_responder *r);
ACME_EXPORT acme_responder_kind acme_responder_get_kind(const acme_responder *r);

/* ---- what is served (thread-safe) -------------------------------------- */

/* http-01: serve key_auth at /.well-known/acme-challenge/<token>. The token
 * must be strict base64url (ACME_E_BAD_TOKEN otherwise). Replaces an
 * existing entry for the same token. */
ACME_EXPORT int acme_responder_add_http01(acme_responder *r, const char *token,
                                          const char *key_auth);
/* tls-alpn-01: serve this certificate (PEM) and key (PEM) to acme-tls/1
 * handshakes whose SNI names identifier: a DNS name, or an IP address
 * (RFC 8738: the SNI is then the reverse-DNS name, mapped here). The PEM
 * is parsed now (ACME_E_CRYPTO if unusable) and not kept. Replaces an
 * existing entry for the same identifier. */
ACME_EXPORT int acme_responder_add_tlsalpn01(acme_responder *r, const char *identifier,
                                             const char *cert_pem, const char *key_pem);
/* Stop serving a token (http-01) or an identifier (tls-alpn-01).
 * ACME_E_NOT_FOUND if there was none. Handshakes already running keep the
 * certificate they chose. */
ACME_EXPORT int acme_responder_remove(acme_responder *r, const char *token_or_identifier);

/* ---- event-loop mode ---------------------------------------------------- */

/* The descriptors to watch now, with POLLIN/POLLOUT in events (revents is
 * cleared), so fds can go straight to poll(). Call again before every wait:
 * the set changes. If cap is too small: ACME_E_INVALID_ARG and *n = the
 * number needed; 1 + max_connections is always enough. */
ACME_EXPORT int acme_responder_fds(acme_responder *r, struct pollfd *fds, size_t cap,
                                   size_t *n);
/* Milliseconds until acme_responder_step must run even if no descriptor is
 * ready; -1 = no deadline pending. */
ACME_EXPORT int acme_responder_timeout_ms(acme_responder *r);
/* Do the work that can be done without waiting: accept, read, write,
 * handshake, expire. Never blocks, and stops taking on new work after about
 * 10 ms (a burst of TLS handshakes is spread over several steps; what is
 * left stays ready, so the next poll returns at once). ACME_E_STATE while
 * the responder's thread runs. */
ACME_EXPORT int acme_responder_step(acme_responder *r);

/* ---- blocking mode ------------------------------------------------------ */

/* Run the event loop above on a thread the responder owns. */
ACME_EXPORT int acme_responder_start_thread(acme_responder *r);
/* Stop and join it. Fine if not running. Connections in progress stay
 * open: a later step, thread or acme_responder_free deals with them. */
ACME_EXPORT int acme_responder_stop_thread(acme_responder *r);

/* ---- host callback adapters --------------------------------------------- */

/* Drop acme_responder_publish / acme_responder_unpublish into
 * acme_host_callbacks.publish / .unpublish with ud = a pointer to this set
 * (which must outlive the client's use of it). Either member may be NULL:
 * publishing a challenge whose type has no responder here is declined
 * (ACME_E_DECLINED), so the order goes on with another type the CA
 * offers; dns-01 always is (publish it yourself and call these for the
 * others). Unpublishing such a challenge returns ACME_E_UNSUPPORTED. */
typedef struct acme_responder_set {
    size_t size;                 /* sizeof(acme_responder_set) */
    acme_responder *http01;      /* ACME_RESPONDER_HTTP01 or NULL */
    acme_responder *tlsalpn01;   /* ACME_RESPONDER_TLSALPN01 or NULL */
} acme_responder_set;

ACME_EXPORT int acme_responder_publish(void *ud, const acme_challenge *ch);
/* Removing something already gone is not an error. */
ACME_EXPORT int acme_responder_unpublish(void *ud, const acme_challenge *ch);

#ifdef __cplusplus
}
#endif

#endif
