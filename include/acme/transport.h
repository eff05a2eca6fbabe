/* libacme — the HTTP transport plug-in table.
 *
 * One HTTP request in, one response out. The default is libcurl (gnutls),
 * with connect/total timeouts, a response size cap, keep-alive, and trust
 * from a CA file, an in-memory PEM blob, or the system store. A host that
 * already has an HTTP stack plugs it in with acme_client_set_transport.
 *
 * A transport must not follow redirects: libacme decides about them. */
#ifndef ACME_TRANSPORT_H
#define ACME_TRANSPORT_H

#include <stddef.h>
#include <acme/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct acme_http_request {
    size_t size;              /* sizeof(acme_http_request) as libacme compiled it */
    const char *method;       /* "GET", "HEAD" or "POST" */
    const char *url;          /* always https:// */
    const char *content_type; /* for POST ("application/jose+json"), else NULL */
    const void *body;         /* for POST */
    size_t body_len;
    unsigned timeout_ms;      /* whole request, 0 = transport default */
} acme_http_request;

/* The response under construction. Owned by libacme. */
typedef struct acme_http_response acme_http_response;

ACME_EXPORT int acme_http_response_set_status(acme_http_response *resp, int status);
/* One header; name and value need not be NUL-terminated. */
ACME_EXPORT int acme_http_response_add_header(acme_http_response *resp,
                                              const char *name, size_t name_len,
                                              const char *value, size_t value_len);
/* ACME_E_TOO_LARGE once the body passes the cap: stop reading and return it. */
ACME_EXPORT int acme_http_response_append_body(acme_http_response *resp,
                                               const void *data, size_t len);

/* One request handed to an asynchronous transport (submit below). Owned
 * by libacme; valid from submit until acme_http_call_complete. */
typedef struct acme_http_call acme_http_call;

typedef struct acme_transport_ops {
    size_t size; /* sizeof(acme_transport_ops) as the host compiled it */
    /* Perform the request. ACME_OK once a status line was received (any
     * status); ACME_E_NETWORK, ACME_E_TLS, ACME_E_TIMEOUT or ACME_E_TOO_LARGE
     * otherwise. May set a message with acme_http_response_set_error.
     * An engine calls perform from one libacme thread of its own, never
     * from acme_engine_step, and one request at a time; the blocking calls
     * (acme_issue...) call it from the caller's thread. May be NULL when
     * submit is set. */
    int (*perform)(void *ud, const acme_http_request *req, acme_http_response *resp);
    /* Since 1.2 (the table's size covers it): start the request and return
     * at once, for an evented HTTP client. ACME_OK: the request is the
     * transport's, and it calls acme_http_call_complete(call, result)
     * exactly once later (result as perform would return it), from any
     * thread, possibly before submit returns. Until then req and resp stay
     * valid and resp may be filled from any one thread; after it neither may
     * be touched. Any other return: the request was not started, and no
     * completion follows. The transport enforces req->timeout_ms (completes
     * with ACME_E_TIMEOUT): libacme waits for the completion. When set, the
     * engine uses submit and never perform; the blocking calls use perform
     * if there is one, else submit and wait. */
    int (*submit)(void *ud, const acme_http_request *req, acme_http_response *resp,
                  acme_http_call *call);
} acme_transport_ops;

/* An asynchronous transport's answer to one submitted request; wakes the
 * engine (its first descriptor from acme_engine_fds becomes readable).
 * Safe from any thread, also after the engine was freed (the call is then
 * only released). ACME_E_INVALID_ARG for a NULL call; ACME_E_STATE if the
 * call was completed already. */
ACME_EXPORT int acme_http_call_complete(acme_http_call *call, int result);

/* A transport's explanation of a failure, copied ("connect to 127.0.0.1:14000 refused"). */
ACME_EXPORT int acme_http_response_set_error(acme_http_response *resp, const char *msg);

#ifdef __cplusplus
}
#endif

#endif
