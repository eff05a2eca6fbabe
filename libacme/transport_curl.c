/* The default transport: one libcurl easy handle (GnuTLS build) per
 * transport.
 *
 * The handle lives as long as the transport because libcurl keeps its
 * connection cache in it: an ACME exchange is a burst of requests to one
 * host, and a new connection costs a TLS handshake plus (with the GnuTLS
 * back end) a fresh read and parse of the whole trust store. Between
 * requests the handle is curl_easy_reset, which drops every per-request
 * option but keeps live connections, so a HEAD after a POST cannot inherit
 * a stale method or body.
 *
 * Policy that never changes: HTTPS only, certificate and host name always
 * verified, redirects never followed (libacme decides about them), TLS 1.2
 * or later. Proxies from the environment (https_proxy) are honoured as
 * libcurl does by default. A transport serves one request at a time. */
#include "transport_curl.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <acme/error.h>

#include "buf.h"
#include "http.h"
#include "trust_anchor.h"
#include "util.h"

#define DEFAULT_CONNECT_MS 10000u
#define DEFAULT_TOTAL_MS 30000u

typedef enum trust_mode {
    TRUST_SYSTEM, /* libcurl's built-in default store */
    TRUST_FILE,   /* ca_path is the caller's CA file */
    TRUST_BLOB,   /* ca_pem handed to libcurl in memory */
    TRUST_MEMFD,  /* ca_pem in a sealed memfd; ca_path is /proc/self/fd/N */
} trust_mode;

typedef struct transport_curl {
    CURL *h;
    trust_mode trust;
    char *ca_path;
    char *ca_pem;
    size_t ca_pem_len;
    int memfd;
    long connect_ms;
    long total_ms;
    char *user_agent;
    trust_jit *jit;   /* the host's trust-anchor lookup, or NULL (the client's) */
    int blob_ok;      /* libcurl takes CAINFO_BLOB (probed once) */
} transport_curl;

/* Is there at least one certificate in this PEM? Checked once when the
 * transport is made, so a bad CA bundle is a configuration error at start
 * instead of an opaque TLS failure on the first request. */
static int pem_has_cert(const void *pem, size_t len)
{
    if (!pem || !len || len > 0x7fffffffu)
        return 0;
    gnutls_datum_t d = { (unsigned char *)(uintptr_t)pem, (unsigned)len };
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    int rc = gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0)
        return 0;
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    return n > 0;
}

static int file_has_cert(const char *path)
{
    gnutls_datum_t d = { NULL, 0 };
    if (gnutls_load_file(path, &d) < 0)
        return 0;
    int ok = pem_has_cert(d.data, d.size);
    gnutls_free(d.data);
    return ok;
}

/* libcurl with GnuTLS before 8.x answers CURLOPT_CAINFO_BLOB with
 * CURLE_NOT_BUILT_IN (measured: 7.88.1 / GnuTLS 3.7.9). Probe instead of
 * trusting a version number, so a newer libcurl gets the direct path. */
static int blob_supported(CURL *h, const char *pem, size_t len)
{
    struct curl_blob b = { (void *)(uintptr_t)pem, len, CURL_BLOB_NOCOPY };
    int ok = curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b) == CURLE_OK;
    curl_easy_reset(h);
    return ok;
}

/* Put the PEM where a file-only libcurl can read it without it ever
 * touching a disk (trust_memfd: a sealed memfd named /proc/self/fd/N).
 * libcurl re-opens that path for every new connection. */
static int pem_to_memfd(transport_curl *tc, const char *pem, size_t len)
{
    return trust_memfd(pem, len, &tc->memfd, &tc->ca_path);
}

int transport_curl_new(const transport_curl_config *cfg, void **ud)
{
    if (!ud)
        return ACME_E_INVALID_ARG;
    *ud = NULL;
    transport_curl_config none;
    if (!cfg) {
        memset(&none, 0, sizeof(none));
        cfg = &none;
    }
    /* Two trust sources would be ambiguous; refuse rather than pick one. */
    if (cfg->ca_file && cfg->ca_pem)
        return ACME_E_INVALID_ARG;
    if (cfg->ca_file && !file_has_cert(cfg->ca_file))
        return ACME_E_INVALID_ARG;
    if (cfg->ca_pem && !pem_has_cert(cfg->ca_pem, cfg->ca_pem_len))
        return ACME_E_INVALID_ARG;

    /* Reference-counted by libcurl and thread-safe in the 7.84+ builds
     * that report CURL_VERSION_THREADSAFE; paired with the cleanup in free. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ACME_E_NOMEM;
    transport_curl *tc = calloc(1, sizeof(*tc));
    if (!tc) {
        curl_global_cleanup();
        return ACME_E_NOMEM;
    }
    tc->memfd = -1;
    tc->connect_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DEFAULT_CONNECT_MS;
    tc->total_ms = cfg->total_timeout_ms ? cfg->total_timeout_ms : DEFAULT_TOTAL_MS;
    tc->user_agent = cfg->user_agent ? xstrdup(cfg->user_agent)
                                     : xasprintf("libacme/%s", acme_version());
    int rc = ACME_OK;
    if (!tc->user_agent || !(tc->h = curl_easy_init())) {
        rc = ACME_E_NOMEM;
        goto fail;
    }
    if (cfg->ca_file) {
        tc->trust = TRUST_FILE;
        if (!(tc->ca_path = xstrdup(cfg->ca_file))) {
            rc = ACME_E_NOMEM;
            goto fail;
        }
    } else if (cfg->ca_pem) {
        if (blob_supported(tc->h, cfg->ca_pem, cfg->ca_pem_len)) {
            tc->trust = TRUST_BLOB;
            if (!(tc->ca_pem = malloc(cfg->ca_pem_len))) {
                rc = ACME_E_NOMEM;
                goto fail;
            }
            memcpy(tc->ca_pem, cfg->ca_pem, cfg->ca_pem_len);
            tc->ca_pem_len = cfg->ca_pem_len;
        } else {
            tc->trust = TRUST_MEMFD;
            if ((rc = pem_to_memfd(tc, cfg->ca_pem, cfg->ca_pem_len)) != ACME_OK)
                goto fail;
        }
    } else if (cfg->jit) {
        /* A lookup and nothing pinned: trust nothing but what the host
         * returns, and do not pay for reading the system store (an empty
         * trust file is accepted by libcurl; the handshake then fails
         * verification with the server's chain in CURLINFO_CERTINFO). */
        tc->trust = TRUST_MEMFD;
        if ((rc = pem_to_memfd(tc, "", 0)) != ACME_OK)
            goto fail;
    } else {
        tc->trust = TRUST_SYSTEM;
    }
    if ((tc->jit = cfg->jit))
        tc->blob_ok = blob_supported(tc->h, "-", 1);
    *ud = tc;
    return ACME_OK;

fail:
    transport_curl_free(tc);
    return rc;
}

void transport_curl_free(void *ud)
{
    transport_curl *tc = ud;
    if (!tc)
        return;
    if (tc->h)
        curl_easy_cleanup(tc->h); /* closes the cached connections */
    if (tc->memfd >= 0)
        close(tc->memfd);
    free(tc->ca_path);
    free(tc->ca_pem);
    free(tc->user_agent);
    free(tc);
    curl_global_cleanup();
}

/* ---- one request ---- */

typedef struct req_state {
    acme_http_response *resp;
    acme_buf line;    /* the header field being assembled (obs-fold) */
    int interim;      /* inside a 1xx response: its fields are not ours */
    int done;         /* past the final header block: trailers are ignored */
    int rc;           /* why a callback stopped the transfer */
} req_state;

/* Hand the assembled field to the response. A field that is not a
 * "name: value" line, or whose name or value is malformed, is dropped:
 * no ACME field looks like that, and RFC 9112 lets a client ignore it.
 * Size caps and allocation failures do stop the transfer. */
static int flush_field(req_state *st)
{
    if (!st->line.len)
        return ACME_OK;
    const char *s = st->line.data;
    size_t n = st->line.len;
    const char *colon = memchr(s, ':', n);
    int rc = ACME_OK;
    if (colon) {
        size_t nl = (size_t)(colon - s);
        rc = acme_http_response_add_header(st->resp, s, nl, colon + 1, n - nl - 1);
        if (rc == ACME_E_PROTOCOL)
            rc = ACME_OK;
    }
    st->line.len = 0;
    return rc;
}

/* "HTTP/1.1 200 OK", "HTTP/2 200": the status code, or -1. */
static int status_of(const char *p, size_t n)
{
    size_t i = 5; /* past "HTTP/" */
    while (i < n && p[i] != ' ')
        i++;
    while (i < n && p[i] == ' ')
        i++;
    if (i + 3 > n)
        return -1;
    int code = 0;
    for (size_t k = 0; k < 3; k++) {
        if (p[i + k] < '0' || p[i + k] > '9')
            return -1;
        code = code * 10 + (p[i + k] - '0');
    }
    if (i + 3 < n && p[i + 3] != ' ')
        return -1;
    return code;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    req_state *st = ud;
    size_t len = size * nmemb;
    size_t n = len;
    while (n && (ptr[n - 1] == '\n' || ptr[n - 1] == '\r'))
        n--;
    int rc = ACME_OK;

    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        /* A status line starts a new response: a 1xx one ("100 Continue")
         * is followed by the real one on the same transfer. */
        if ((rc = flush_field(st)) != ACME_OK)
            goto stop;
        int code = status_of(ptr, n);
        st->interim = code >= 100 && code < 200;
        st->done = 0;
        if (code >= 200 && (rc = acme_http_response_set_status(st->resp, code)) != ACME_OK)
            goto stop;
        return len;
    }
    if (st->done || st->interim)
        return len;
    if (n == 0) {
        /* End of the header block. */
        if ((rc = flush_field(st)) != ACME_OK)
            goto stop;
        st->done = 1;
        return len;
    }
    if (ptr[0] == ' ' || ptr[0] == '\t') {
        /* obs-fold (RFC 9112 §5.2): a continuation of the previous field,
         * to be joined with a space. With nothing to continue, drop it. */
        if (!st->line.len)
            return len;
        size_t k = 0;
        while (k < n && (ptr[k] == ' ' || ptr[k] == '\t'))
            k++;
        if ((rc = buf_append(&st->line, " ", 1)) != ACME_OK ||
            (rc = buf_append(&st->line, ptr + k, n - k)) != ACME_OK)
            goto stop;
        return len;
    }
    if ((rc = flush_field(st)) != ACME_OK || (rc = buf_append(&st->line, ptr, n)) != ACME_OK)
        goto stop;
    return len;

stop:
    st->rc = rc;
    return 0; /* any count but len aborts the transfer */
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    req_state *st = ud;
    size_t len = size * nmemb;
    int rc = acme_http_response_append_body(st->resp, ptr, len);
    if (rc != ACME_OK) {
        st->rc = rc;
        return len ? 0 : 1; /* anything but len stops the transfer */
    }
    return len;
}

static int map_curl_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return ACME_E_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION: /* also CURLE_SSL_CACERT */
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CLIENTCERT:
        return ACME_E_TLS;
    case CURLE_FILESIZE_EXCEEDED: /* Content-Length above the cap */
        return ACME_E_TOO_LARGE;
    case CURLE_UNSUPPORTED_PROTOCOL:
        return ACME_E_INSECURE; /* only https is enabled */
    case CURLE_URL_MALFORMAT:
        return ACME_E_INVALID_ARG;
    case CURLE_OUT_OF_MEMORY:
        return ACME_E_NOMEM;
    default:
        /* Couldn't resolve/connect, send/recv errors, got nothing, partial
         * file, HTTP/2 stream errors: the exchange did not complete. */
        return ACME_E_NETWORK;
    }
}

/* "host:port" of the URL for messages, e.g. "acme.example:443". */
static char *host_of(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *out = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        out = xasprintf("%s:%s", host, port);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out ? out : xstrdup("(unparsable URL)");
}

static void explain(acme_http_response *resp, const acme_http_request *req,
                    const char *fmt_detail)
{
    char *host = host_of(req->url);
    char *msg = xasprintf("%s %s: %s", req->method, host ? host : "?", fmt_detail);
    if (msg)
        (void)acme_http_response_set_error(resp, msg);
    free(msg);
    free(host);
}

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* Every option, every request (after curl_easy_reset). Safety options must
 * take; a few that only narrow the attack surface further may be missing
 * from an older libcurl. */
static CURLcode set_options(transport_curl *tc, CURL *h, char *errbuf, const acme_http_request *req,
                            req_state *st, struct curl_slist *hdrs, const trust_entry *anchor)
{
    CURLcode c = CURLE_OK;
#define SET(opt, val) \
    do { \
        if (c == CURLE_OK) \
            c = curl_easy_setopt(h, opt, val); \
    } while (0)

    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_NOSIGNAL, 1L); /* no SIGALRM in a library that may run in threads */
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SET(CURLOPT_CONNECTTIMEOUT_MS, tc->connect_ms);
    SET(CURLOPT_TIMEOUT_MS, req->timeout_ms ? (long)req->timeout_ms : tc->total_ms);
    SET(CURLOPT_USERAGENT, tc->user_agent);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, st);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, st);
    SET(CURLOPT_HTTPHEADER, hdrs);

    if (tc->jit) /* the server's chain, for the lookup when it does not verify */
        SET(CURLOPT_CERTINFO, 1L);
    if (anchor) {
        /* This host's chain verified with the root the host's lookup
         * returned: that root is the only anchor for it. */
        size_t alen = 0;
        const char *apem = trust_entry_pem(anchor, &alen);
        if (tc->blob_ok) {
            struct curl_blob b = { (void *)(uintptr_t)apem, alen, CURL_BLOB_NOCOPY };
            SET(CURLOPT_CAINFO_BLOB, &b);
            SET(CURLOPT_CAINFO, (char *)NULL);
        } else {
            SET(CURLOPT_CAINFO, trust_entry_path(anchor));
        }
        SET(CURLOPT_CAPATH, (char *)NULL);
    } else switch (tc->trust) {
    case TRUST_SYSTEM:
        break; /* libcurl's compiled-in bundle/directory */
    case TRUST_FILE:
    case TRUST_MEMFD:
        SET(CURLOPT_CAINFO, tc->ca_path);
        /* Only the pinned roots: not also the distribution's directory. */
        SET(CURLOPT_CAPATH, (char *)NULL);
        break;
    case TRUST_BLOB: {
        struct curl_blob b = { tc->ca_pem, tc->ca_pem_len, CURL_BLOB_NOCOPY };
        SET(CURLOPT_CAINFO_BLOB, &b);
        SET(CURLOPT_CAINFO, (char *)NULL);
        SET(CURLOPT_CAPATH, (char *)NULL);
        break;
    }
    }

    if (strcmp(req->method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "POST") == 0) {
        /* Always give POSTFIELDS: without it libcurl would read the body
         * from stdin. */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
    } else {
        SET(CURLOPT_HTTPGET, 1L);
    }

    /* A server-declared Content-Length above the cap fails before any of
     * the body is read (the write callback catches the rest). Not for
     * HEAD: libcurl applies the check to the bodiless answer's
     * Content-Length too (measured with 7.88), failing a valid response. */
    if (strcmp(req->method, "HEAD") != 0 && st->resp->body.limit &&
        st->resp->body.limit <= (size_t)INT64_MAX)
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)st->resp->body.limit);
#undef SET
    if (c != CURLE_OK)
        return c;

#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    (void)curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    (void)curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
#endif
    (void)curl_easy_setopt(h, CURLOPT_MAXREDIRS, 0L);
    /* A proxy's "200 Connection established" is not the server's answer. */
    (void)curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    return CURLE_OK;
}

/* One request in flight: everything that must live until it finishes. */
struct curl_call {
    transport_curl *tc;
    CURL *h;
    int own_handle;            /* the engine's calls get a handle each */
    const acme_http_request *req;
    acme_http_response *resp;
    req_state st;
    struct curl_slist *hdrs;
    char *ct;
    char *hostport;            /* "host:port", when a lookup is configured */
    trust_entry *anchor;       /* the host's root for hostport, held while in use */
    int looked_up;             /* one lookup per request */
    char errbuf[CURL_ERROR_SIZE];
};

void transport_curl_call_free(curl_call *call)
{
    if (!call)
        return;
    if (call->own_handle && call->h)
        curl_easy_cleanup(call->h);
    curl_slist_free_all(call->hdrs);
    free(call->ct);
    free(call->hostport);
    trust_entry_release(call->anchor);
    buf_clear(&call->st.line);
    free(call);
}

/* Validate the request and configure h for it. */
static int call_prepare(transport_curl *tc, CURL *h, const acme_http_request *req, acme_http_response *resp,
                        curl_call **out)
{
    *out = NULL;
    if (!tc || !req || !resp ||
        req->size < offsetof(acme_http_request, timeout_ms) + sizeof(req->timeout_ms) ||
        !req->method || !req->url || has_crlf(req->url))
        return ACME_E_INVALID_ARG;
    int is_post = strcmp(req->method, "POST") == 0;
    if (!is_post && strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return ACME_E_INVALID_ARG;
    if ((req->content_type && has_crlf(req->content_type)) || (!req->body && req->body_len))
        return ACME_E_INVALID_ARG;
    if (ascii_ncasecmp(req->url, "https://", 8) != 0) {
        (void)acme_http_response_set_error(resp, "refusing a non-https URL");
        return ACME_E_INSECURE;
    }
    curl_call *call = calloc(1, sizeof(*call));
    if (!call)
        return ACME_E_NOMEM;
    call->tc = tc;
    call->h = h;
    call->req = req;
    call->resp = resp;
    call->st.resp = resp;
    /* Room for a field at the cap plus its separator and whitespace. */
    buf_init(&call->st.line, 2 * HTTP_MAX_HEADER_BYTES);

    /* "Expect:" removes the 100-continue round trip libcurl would add for
     * larger POST bodies; ACME servers answer POSTs immediately. */
    struct curl_slist *t;
    if (is_post) {
        call->ct = req->content_type ? xasprintf("Content-Type: %s", req->content_type)
                                     : xstrdup("Content-Type:"); /* no form default */
        if (!call->ct || !(t = curl_slist_append(NULL, call->ct)))
            goto nomem;
        call->hdrs = t;
        if (!(t = curl_slist_append(call->hdrs, "Expect:")))
            goto nomem;
        call->hdrs = t;
    }
    if (tc->jit) {
        if (!(call->hostport = host_of(req->url)))
            goto nomem;
        call->anchor = trust_cache_get(tc->jit->cache, call->hostport, now_ms());
    }
    int rc = transport_curl_call_rearm(call);
    if (rc) {
        transport_curl_call_free(call);
        return rc;
    }
    *out = call;
    return ACME_OK;
nomem:
    transport_curl_call_free(call);
    return ACME_E_NOMEM;
}

int transport_curl_call_rearm(curl_call *call)
{
    CURL *h = call->h;
    curl_easy_reset(h); /* per-request options only; connections stay */
    CURLcode cc = set_options(call->tc, h, call->errbuf, call->req, &call->st, call->hdrs, call->anchor);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_PRIVATE, call);
    if (cc != CURLE_OK) {
        /* Without every safety option in place there is no verified
         * connection to offer: refuse rather than go ahead. */
        explain(call->resp, call->req, curl_easy_strerror(cc));
        return cc == CURLE_OUT_OF_MEMORY ? ACME_E_NOMEM : ACME_E_TLS;
    }
    return ACME_OK;
}

/* "aa:bb:cc" for a sentence. */
static void hex_id(char *out, size_t cap, const unsigned char *id, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 4 <= cap; i++)
        o += (size_t)snprintf(out + o, cap - o, i ? ":%02x" : "%02x", id[i]);
    if (!n)
        snprintf(out, cap, "none");
}

/* "127.0.0.1" from "127.0.0.1:14000", "::1" from "[::1]:443". */
static char *bare_host(const char *hostport)
{
    const char *colon = strrchr(hostport, ':');
    size_t n = colon ? (size_t)(colon - hostport) : strlen(hostport);
    if (n >= 2 && hostport[0] == '[' && hostport[n - 1] == ']') {
        hostport++;
        n -= 2;
    }
    char *h = malloc(n + 1);
    if (h) {
        memcpy(h, hostport, n);
        h[n] = '\0';
    }
    return h;
}

/* The server's chain did not verify. Hand what it sent to the host's
 * lookup; verify the chain with exactly the root(s) it returns; bind the
 * host to them and ask for a retry. ACME_OK means "not ours to handle"
 * (no lookup, the host declined, no chain to show): the caller reports
 * the verification failure as it always did. */
static int trust_lookup(curl_call *call)
{
    transport_curl *tc = call->tc;
    trust_jit *jit = tc->jit;
    if (call->anchor) {
        /* The root bound to this host does not verify what it sends now
         * (the CA changed its chain, or libcurl refused what we accepted):
         * forget the binding, and ask again if this request has not. */
        trust_cache_forget(jit->cache, call->anchor);
        trust_entry_release(call->anchor);
        call->anchor = NULL;
    }
    if (call->looked_up || !jit->ops.lookup)
        return ACME_OK;
    call->looked_up = 1;
    struct curl_certinfo *ci = NULL;
    if (curl_easy_getinfo(call->h, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci || ci->num_of_certs <= 0) {
        /* libcurl's GnuTLS back end fills the chain in before it verifies
         * and keeps it after a failure (measured with 7.88); one that does
         * not leaves the host nothing to look up: say so. */
        char *m = xasprintf("%s; libcurl gave no server chain, so the trust-anchor lookup could not be asked",
                            call->errbuf[0] ? call->errbuf : "server certificate verification failed");
        explain(call->resp, call->req, m ? m : "server certificate verification failed");
        free(m);
        return ACME_E_TLS;
    }
    const char *pems[TRUST_MAX_LINKS];
    size_t n = 0;
    for (int i = 0; i < ci->num_of_certs && n < TRUST_MAX_LINKS; i++)
        for (struct curl_slist *f = ci->certinfo[i]; f; f = f->next)
            if (strncmp(f->data, "Cert:", 5) == 0) {
                pems[n++] = f->data + 5;
                break;
            }
    acme_trust_chain *ch = NULL;
    int rc = trust_chain_new(call->hostport, pems, n, &ch);
    if (rc)
        return rc == ACME_E_NOMEM ? rc : ACME_OK;

    acme_buf roots;
    buf_init(&roots, 1024u * 1024u); /* a root is a few KiB; a blob of them stays small */
    char *why = NULL, *msg = NULL;
    char akid[3 * TRUST_MAX_KEYID + 8];
    hex_id(akid, sizeof(akid), ch->links[0].akid, ch->links[0].akid_len);
    char *host = bare_host(call->hostport);
    if (!host) {
        rc = ACME_E_NOMEM;
        goto out;
    }
    /* Another request to this host may have bound a root since this one
     * started (the engine runs several at once): if it verifies what this
     * connection was shown, use it without asking the host again. */
    trust_entry *bound = trust_cache_get(jit->cache, call->hostport, now_ms());
    if (bound) {
        size_t blen = 0;
        const char *bpem = trust_entry_pem(bound, &blen);
        if (trust_chain_verify(ch, bpem, blen, host, &why) == ACME_OK) {
            call->anchor = bound;
            rc = TRANSPORT_CURL_AGAIN;
            goto out;
        }
        free(why);
        why = NULL;
        trust_cache_forget(jit->cache, bound);
        trust_entry_release(bound);
    }
    int lr = jit->ops.lookup(jit->ud, ch, &roots);
    if (lr == ACME_E_DECLINED) {
        rc = ACME_OK;
        goto out;
    }
    rc = ACME_E_TLS;
    if (lr != ACME_OK) {
        msg = xasprintf("the server's chain (leaf %s, AKID %s) did not verify and the host's trust-anchor "
                        "lookup failed (%s); fix the lookup, or pin the root with acme_client_set_ca_pem",
                        ch->links[0].subject, akid, acme_strerror(lr));
        goto out;
    }
    int vr = roots.len ? trust_chain_verify(ch, roots.data, roots.len, host, &why) : ACME_E_INVALID_ARG;
    if (vr == ACME_E_INVALID_ARG) {
        msg = xasprintf("the host's trust-anchor lookup returned no PEM certificate for the server's chain "
                        "(leaf %s, AKID %s); return the root's PEM, or ACME_E_DECLINED",
                        ch->links[0].subject, akid);
        goto out;
    }
    if (vr != ACME_OK) {
        rc = vr == ACME_E_NOMEM ? vr : ACME_E_TLS;
        msg = xasprintf("the root the host's trust-anchor lookup returned does not verify the server's chain "
                        "(leaf %s, AKID %s): %s; the server is not trusted: check that the lookup returns "
                        "the root whose SKID is that AKID, and that the server is the one intended",
                        ch->links[0].subject, akid, why ? why : "verification failed");
        goto out;
    }
    if ((rc = trust_cache_put(jit->cache, call->hostport, roots.data, roots.len, now_ms())) != ACME_OK)
        goto out;
    call->anchor = trust_cache_get(jit->cache, call->hostport, now_ms());
    if (!call->anchor) {
        rc = ACME_E_NOMEM;
        goto out;
    }
    if (!tc->blob_ok && !trust_entry_path(call->anchor)) {
        rc = ACME_E_UNSUPPORTED;
        msg = xasprintf("the host's root for the server verified, but this libcurl reads trust only from "
                        "files and /proc/self/fd is not available; mount /proc or pin the root with "
                        "acme_client_set_ca_file");
        trust_cache_forget(jit->cache, call->anchor);
        goto out;
    }
    rc = TRANSPORT_CURL_AGAIN;
out:
    if (msg)
        explain(call->resp, call->req, msg);
    else if (rc == ACME_E_NOMEM)
        explain(call->resp, call->req, "out of memory checking the server's chain");
    free(msg);
    free(why);
    free(host);
    buf_clear(&roots);
    trust_chain_free(ch);
    return rc;
}

int transport_curl_call_finish(curl_call *call, int curl_code)
{
    CURLcode cc = (CURLcode)curl_code;
    const acme_http_request *req = call->req;
    acme_http_response *resp = call->resp;
    req_state *st = &call->st;
    int rc;
    if (cc == CURLE_OK && (rc = flush_field(st)) != ACME_OK)
        st->rc = rc;

    if (st->rc != ACME_OK) {
        /* One of our callbacks stopped it: that reason beats curl's
         * generic "write error". */
        rc = st->rc;
        char detail[160];
        if (rc == ACME_E_TOO_LARGE)
            snprintf(detail, sizeof(detail),
                     "response exceeds the limit (%zu body bytes, %d headers of %d bytes)",
                     resp->body.limit, HTTP_MAX_HEADERS, HTTP_MAX_HEADER_BYTES);
        else
            snprintf(detail, sizeof(detail), "reading the response failed (code %d)", rc);
        explain(resp, req, detail);
        return rc;
    }
    if (cc == CURLE_PEER_FAILED_VERIFICATION && call->tc->jit) {
        rc = trust_lookup(call);
        if (rc != ACME_OK)
            return rc; /* TRANSPORT_CURL_AGAIN, or refused with its sentence */
    }
    if (cc != CURLE_OK) {
        rc = map_curl_error(cc);
        if (rc == ACME_E_TOO_LARGE) {
            char detail[96];
            snprintf(detail, sizeof(detail), "declared body exceeds the %zu-byte limit",
                     resp->body.limit);
            explain(resp, req, detail);
        } else {
            explain(resp, req, call->errbuf[0] ? call->errbuf : curl_easy_strerror(cc));
        }
        return rc;
    }
    long code = 0;
    if (curl_easy_getinfo(call->h, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code < 100 ||
        code > 999) {
        explain(resp, req, "no HTTP status line received");
        return ACME_E_NETWORK;
    }
    return acme_http_response_set_status(resp, (int)code);
}

int transport_curl_call_new(void *ud, const acme_http_request *req, acme_http_response *resp, curl_call **out)
{
    *out = NULL;
    CURL *h = curl_easy_init();
    if (!h)
        return ACME_E_NOMEM;
    int rc = call_prepare(ud, h, req, resp, out);
    if (rc) {
        curl_easy_cleanup(h);
        return rc;
    }
    (*out)->own_handle = 1;
    return ACME_OK;
}

void *transport_curl_call_easy(curl_call *call)
{
    return call->h;
}

static int tc_perform(void *ud, const acme_http_request *req, acme_http_response *resp)
{
    transport_curl *tc = ud;
    curl_call *call = NULL;
    int rc = call_prepare(tc, tc ? tc->h : NULL, req, resp, &call);
    if (rc)
        return rc;
    rc = transport_curl_call_finish(call, curl_easy_perform(tc->h));
    /* At most once: the lookup runs once per request. */
    while (rc == TRANSPORT_CURL_AGAIN && (rc = transport_curl_call_rearm(call)) == ACME_OK)
        rc = transport_curl_call_finish(call, curl_easy_perform(tc->h));
    transport_curl_call_free(call);
    return rc;
}

const acme_transport_ops transport_curl_ops = {
    .size = sizeof(acme_transport_ops),
    .perform = tc_perform,
};
