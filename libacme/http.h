/* The concrete HTTP response behind the public acme_http_response, and
 * the helpers the protocol layer reads it with. */
#ifndef ACME_HTTP_H
#define ACME_HTTP_H

#include <stddef.h>
#include <acme/transport.h>
#include "buf.h"

typedef struct http_header {
    char *name;
    char *value;
} http_header;

struct acme_http_response {
    int status;               /* 0 until set */
    http_header *headers;
    size_t header_count;
    acme_buf body;            /* body.limit is the response cap */
    char *error;              /* transport's message, or NULL */
};

/* Bounds on what a server can make us hold besides the body: past either,
 * acme_http_response_add_header returns ACME_E_TOO_LARGE (the transport then
 * aborts the transfer). One header's bytes are name + value. */
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_HEADER_BYTES 8192

void http_response_init(acme_http_response *r, size_t body_limit);
void http_response_clear(acme_http_response *r);   /* back to the init state, same limit */
/* First header with that name (case-insensitive), value trimmed; or NULL. */
const char *http_response_header(const acme_http_response *r, const char *name);
/* Every Link target with rel="<rel>" (RFC 8288), in order. *urls is a
 * malloc'ed array of malloc'ed strings; free with http_links_free.
 * Targets are returned as sent (a relative reference is not resolved).
 * ACME_OK with *count 0 when none match; ACME_E_NOMEM. */
int http_response_links(const acme_http_response *r, const char *rel,
                        char ***urls, size_t *count);
void http_links_free(char **urls, size_t count);
/* Retry-After (delta-seconds or HTTP-date) in milliseconds from now,
 * clamped to 30 days; -1 when absent or unparsable (a negative number is
 * unparsable). */
long long http_response_retry_after_ms(const acme_http_response *r);
/* The same in whole seconds, rounded up; 0 when absent or unparsable. */
unsigned http_response_retry_after_s(const acme_http_response *r);

#endif
