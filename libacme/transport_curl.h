/* The default transport: libcurl (gnutls build). */
#ifndef ACME_TRANSPORT_CURL_H
#define ACME_TRANSPORT_CURL_H

#include <stddef.h>
#include <acme/transport.h>

extern const acme_transport_ops transport_curl_ops;

typedef struct transport_curl_config {
    const char *ca_file;      /* PEM file of trusted roots, or NULL */
    const char *ca_pem;       /* in-memory PEM, or NULL */
    size_t ca_pem_len;
    unsigned connect_timeout_ms;
    unsigned total_timeout_ms;
    const char *user_agent;
    struct trust_jit *jit;    /* the host's trust-anchor lookup and its cache, or NULL;
                                 the client's, and it outlives the transport */
} transport_curl_config;

/* One easy handle, kept for keep-alive across requests (libcurl with GnuTLS
 * reads the trust store per new connection, so reuse is what saves CPU). */
int transport_curl_new(const transport_curl_config *cfg, void **ud);
void transport_curl_free(void *ud);

/* For the engine's libcurl multi handle: one request on its own easy
 * handle, configured exactly as the blocking path configures its own.
 * Add transport_curl_call_easy() to a multi handle; when libcurl reports
 * it done, transport_curl_call_finish() fills the response's status and
 * error and returns the acme_code. req and resp must outlive the call. */
typedef struct curl_call curl_call;
int transport_curl_call_new(void *ud, const acme_http_request *req, acme_http_response *resp, curl_call **out);
void *transport_curl_call_easy(curl_call *call);   /* a CURL * */
int transport_curl_call_finish(curl_call *call, int curl_code);
/* transport_curl_call_finish's answer when the server's chain did not
 * verify and the host's trust-anchor lookup gave a root that verifies it:
 * take the handle off the multi, transport_curl_call_rearm() (the root is
 * now the call's only anchor), and run it again. Happens at most once per
 * call. Never an acme_code. */
#define TRANSPORT_CURL_AGAIN (-1)
int transport_curl_call_rearm(curl_call *call);
void transport_curl_call_free(curl_call *call);

#endif
