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
} transport_curl_config;

/* One easy handle, kept for keep-alive across requests; trust loaded once. */
int transport_curl_new(const transport_curl_config *cfg, void **ud);
void transport_curl_free(void *ud);

#endif
