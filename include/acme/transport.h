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

typedef struct acme_transport_ops {
    size_t size; /* sizeof(acme_transport_ops) as the host compiled it */
    /* Perform the request. ACME_OK once a status line was received (any
     * status); ACME_E_NETWORK, ACME_E_TLS, ACME_E_TIMEOUT or ACME_E_TOO_LARGE
     * otherwise. May set a message with acme_http_response_set_error. */
    int (*perform)(void *ud, const acme_http_request *req, acme_http_response *resp);
} acme_transport_ops;

/* A transport's explanation of a failure, copied ("connect to 127.0.0.1:14000 refused"). */
ACME_EXPORT int acme_http_response_set_error(acme_http_response *resp, const char *msg);

#ifdef __cplusplus
}
#endif

#endif
