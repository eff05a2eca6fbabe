/* Fuzz target: an HTTP response head as a peer sends it, through the code
 * that reads it: libcurl's header callback of the default transport
 * (libacme/transport_curl.c: status line, 1xx interim responses, obs-fold,
 * trailers), acme_http_response_add_header (libacme/http_response.c:
 * name/value checks and caps), then the readers the protocol uses on the
 * result: header lookup, Link (RFC 8288) and Retry-After.
 *
 * The input is the head as bytes on the wire; it is handed to the callback
 * one line at a time (line end included), as libcurl does. transport_curl.c
 * is compiled into this file to reach its static callback; nothing of it
 * that talks to the network is called.
 *
 * Promises checked: a status is 0 or three digits; at most
 * HTTP_MAX_HEADERS headers; every stored name is a non-empty token,
 * every value is free of CR, LF and NUL and has no surrounding
 * whitespace, name + value within HTTP_MAX_HEADER_BYTES; lookup finds
 * every stored name; a Link target is a substring of a Link value with no
 * '>' in it; Retry-After is -1 or a non-negative number of milliseconds. */
#include "../../libacme/transport_curl.c"

#include "fuzz.h"

#define T "fuzz_http_head"

static int is_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_links(const acme_http_response *r, const char *rel)
{
    char **urls = NULL;
    size_t n = 0;
    int rc = http_response_links(r, rel, &urls, &n);
    FUZZ_CHECK(T, rc == ACME_OK || rc == ACME_E_NOMEM, "Link parse result");
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(T, urls[i] != NULL, "Link target");
        FUZZ_CHECK(T, strchr(urls[i], '>') == NULL, "'>' inside a Link target");
        int found = 0;
        for (size_t h = 0; h < r->header_count && !found; h++)
            found = !ascii_casecmp(r->headers[h].name, "Link") && strstr(r->headers[h].value, urls[i]);
        FUZZ_CHECK(T, found, "Link target not taken from a Link header");
    }
    http_links_free(urls, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    acme_http_response resp;
    http_response_init(&resp, 1 << 16);
    req_state st;
    memset(&st, 0, sizeof(st));
    st.resp = &resp;
    buf_init(&st.line, 2 * HTTP_MAX_HEADER_BYTES);

    /* Line by line, the way libcurl calls the header callback. */
    const char *p = (const char *)data, *end = p + size;
    int stopped = 0;
    while (p < end && !stopped) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl + 1 - p) : (size_t)(end - p);
        /* libcurl hands over a copy it owns; so do we (exact size). */
        char *line = malloc(len);
        if (!line)
            abort();
        memcpy(line, p, len);
        size_t used = on_header(line, 1, len, &st);
        free(line);
        if (used != len) {
            FUZZ_CHECK(T, st.rc != ACME_OK, "a stopped transfer without a reason");
            stopped = 1;
        }
        p += len;
    }
    if (!stopped)
        (void)flush_field(&st); /* a head cut short: what was assembled so far */
    buf_clear(&st.line);

    FUZZ_CHECK(T, resp.status == 0 || (resp.status >= 100 && resp.status <= 999), "status range");
    FUZZ_CHECK(T, resp.header_count <= HTTP_MAX_HEADERS, "header count cap");
    for (size_t i = 0; i < resp.header_count; i++) {
        const char *n = resp.headers[i].name, *v = resp.headers[i].value;
        size_t nl = strlen(n), vl = strlen(v);
        FUZZ_CHECK(T, nl > 0, "empty header name");
        for (size_t k = 0; k < nl; k++)
            FUZZ_CHECK(T, is_token_char((unsigned char)n[k]), "header name is a token");
        FUZZ_CHECK(T, !strpbrk(v, "\r\n"), "CR or LF inside a header value");
        FUZZ_CHECK(T, vl == 0 || (v[0] != ' ' && v[0] != '\t' && v[vl - 1] != ' ' && v[vl - 1] != '\t'),
                   "header value trimmed");
        FUZZ_CHECK(T, nl + vl <= HTTP_MAX_HEADER_BYTES, "header size cap");
        FUZZ_CHECK(T, http_response_header(&resp, n) != NULL, "lookup of a stored name");
    }
    check_links(&resp, "next");
    check_links(&resp, "up");
    check_links(&resp, "alternate");
    check_links(&resp, "index");
    long long ms = http_response_retry_after_ms(&resp);
    FUZZ_CHECK(T, ms >= -1, "Retry-After range");
    (void)http_response_header(&resp, "Replay-Nonce");
    (void)http_response_header(&resp, "Location");
    http_response_clear(&resp);
    free(resp.headers);
    return 0;
}
