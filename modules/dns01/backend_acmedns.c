/* Back end: the acme-dns HTTP API.
 *
 * acme-dns is a small DNS server that serves only TXT records for
 * dns-01, set through an HTTP API:
 *
 *   POST <api>/register          -> 201 {"username","password","fulldomain","subdomain","allowfrom"}
 *   POST <api>/update  X-Api-User: <username>  X-Api-Key: <password>
 *        {"subdomain": "...", "txt": "<43 characters>"}   -> 200 {"txt": "..."}
 *
 * It keeps the two most recent values of a subdomain, which is what a
 * wildcard and its base name need, and has no delete. The user points
 * _acme-challenge.<name> at <fulldomain> with a CNAME, once.
 *
 * The first publish for a name registers and keeps the credentials in the
 * module's storage (modules/dns01/acme-dns/<name>.json, secret); later
 * ones reuse them. If the CNAME is not there yet the publish fails with
 * the exact record to create. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "dns01.h"
#include "resolve.h"

/* Stored credentials are read back through a buffer the module owns
 * (acme_buffer_new & co.). */

#define MAX_BODY (64 * 1024)

typedef struct creds {
    char *api_url, *username, *password, *fulldomain, *subdomain;
} creds;

static void wipe_str(char *s)
{
    if (!s)
        return;
    volatile char *v = s;
    while (*v)
        *v++ = 0;
    free(s);
}

static void creds_free(creds *c)
{
    free(c->api_url);
    wipe_str(c->username);
    wipe_str(c->password);
    free(c->fulldomain);
    free(c->subdomain);
    memset(c, 0, sizeof(*c));
}

/* Credentials go into HTTP headers: short, printable, no CR/LF. */
static int creds_sane(const char *const *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(fields[i]);
        if (!len || len > 256)
            return 0;
        for (const char *p = fields[i]; *p; p++)
            if (*p < 0x21 || *p > 0x7e)
                return 0;
    }
    return 1;
}

/* "acme-dns/<identifier>.json" with anything outside [a-z0-9.-] folded. */
static void storage_key(const char *identifier, char *out, size_t len)
{
    char id[256];
    size_t n = 0;
    for (const char *p = identifier; *p && n < sizeof(id) - 1; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        id[n++] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.') ? c : '_';
    }
    id[n] = '\0';
    snprintf(out, len, "acme-dns/%s.json", (n && id[0] != '.') ? id : "_");
}

/* ---- storage ---------------------------------------------------------- */

static int storage_read(dns01 *d, const char *key, char **text)
{
    *text = NULL;
    acme_buffer *b = acme_buffer_new();
    if (!b)
        return ACME_E_NOMEM;
    int rc = d->host.storage_get(d->host.ud, key, b);
    if (rc == ACME_OK) {
        *text = strndup(acme_buffer_data(b), acme_buffer_len(b));
        if (!*text)
            rc = ACME_E_NOMEM;
    }
    acme_buffer_free(b);
    return rc;
}

static int load_creds(dns01 *d, const char *key, creds *c)
{
    char *text = NULL;
    int rc = storage_read(d, key, &text);
    if (rc)
        return rc;
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    wipe_str(text);
    const char *api = NULL, *u = NULL, *p = NULL, *f = NULL, *s = NULL;
    if (!o || json_unpack(o, "{s:s, s:s, s:s, s:s, s:s}", "api_url", &api, "username", &u,
                          "password", &p, "fulldomain", &f, "subdomain", &s) != 0 ||
        !creds_sane((const char *const[]){u, p, f, s}, 4)) {
        json_decref(o);
        dns01_log(d, ACME_LOG_WARNING, "acme-dns: the stored credentials %s are unreadable; "
                  "registering again", key);
        return ACME_E_NOT_FOUND;
    }
    c->api_url = strdup(api);
    c->username = strdup(u);
    c->password = strdup(p);
    c->fulldomain = strdup(f);
    c->subdomain = strdup(s);
    json_decref(o);
    if (!c->api_url || !c->username || !c->password || !c->fulldomain || !c->subdomain) {
        creds_free(c);
        return ACME_E_NOMEM;
    }
    return ACME_OK;
}

static int save_creds(dns01 *d, const char *key, const creds *c)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "api_url", c->api_url, "username",
                          c->username, "password", c->password, "fulldomain", c->fulldomain,
                          "subdomain", c->subdomain);
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!text)
        return dns01_fail(d, ACME_E_NOMEM, "out of memory");
    int rc = d->host.storage_put(d->host.ud, key, text, strlen(text), ACME_STORAGE_SECRET);
    wipe_str(text);
    if (rc)
        return dns01_fail(d, ACME_E_STORAGE, "acme-dns: could not store the credentials as %s "
                          "(%d); nothing was registered twice, but the next run will register "
                          "again", key, rc);
    return ACME_OK;
}

/* ---- HTTP ------------------------------------------------------------- */

typedef struct body {
    char *data;
    size_t len;
    int too_big;
} body;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    body *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > MAX_BODY) {
        b->too_big = 1;
        return 0;
    }
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, ptr, n);
    b->len += n;
    grown[b->len] = '\0';
    b->data = grown;
    return n;
}

/* POST api_url + path. *status and *resp (malloc'ed, may be NULL) on
 * ACME_OK; transport failures return a code with d->err set. */
static int post(dns01 *d, const char *path, const creds *c, const char *json, long *status,
                char **resp)
{
    *status = 0;
    *resp = NULL;
    size_t ul = strlen(d->api_url);
    while (ul && d->api_url[ul - 1] == '/')
        ul--;
    char url[1200];
    if (ul + strlen(path) >= sizeof(url))
        return dns01_fail(d, ACME_E_INVALID_ARG, "acme-dns: api-url is too long");
    memcpy(url, d->api_url, ul);
    strcpy(url + ul, path);

    CURL *h = curl_easy_init();
    if (!h)
        return dns01_fail(d, ACME_E_NOMEM, "acme-dns: curl_easy_init failed");
    struct curl_slist *hdrs = NULL;
    char user_hdr[600], key_hdr[600];
    body b = {0};
    int rc = ACME_OK;
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (json)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (c) {
        /* Both are checked to be at most 256 characters (creds_sane). */
        snprintf(user_hdr, sizeof(user_hdr), "X-Api-User: %.256s", c->username);
        snprintf(key_hdr, sizeof(key_hdr), "X-Api-Key: %.256s", c->password);
        hdrs = curl_slist_append(hdrs, user_hdr);
        hdrs = curl_slist_append(hdrs, key_hdr);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json ? json : "");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)d->http_timeout_s);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "libacme-dns01");
    if (d->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, d->ca_file);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        int code = ACME_E_NETWORK;
        if (cc == CURLE_OPERATION_TIMEDOUT)
            code = ACME_E_TIMEOUT;
        else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR ||
                 cc == CURLE_SSL_CACERT_BADFILE)
            code = ACME_E_TLS;
        else if (b.too_big)
            code = ACME_E_TOO_LARGE;
        rc = dns01_fail(d, code, "acme-dns: POST %s: %s", url, *errbuf ? errbuf : curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        *resp = b.data;
        b.data = NULL;
    }
    if (b.data) {
        /* /register answers with the password. */
        volatile char *bv = b.data;
        for (size_t i = 0; i < b.len; i++)
            bv[i] = 0;
        free(b.data);
    }
    /* The headers held the API key and user: our buffers, and libcurl's
     * copies in the list (curl_slist_append duplicates each string, and
     * curl_slist_free_all frees them as they are). */
    volatile char *v = key_hdr;
    for (size_t i = 0; i < sizeof(key_hdr); i++)
        v[i] = 0;
    v = user_hdr;
    for (size_t i = 0; i < sizeof(user_hdr); i++)
        v[i] = 0;
    for (struct curl_slist *l = hdrs; l; l = l->next) {
        volatile char *h = l->data;
        while (h && *h)
            *h++ = 0;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

/* A short, printable excerpt of a response body for messages. */
static void excerpt(const char *s, char *out, size_t len)
{
    size_t o = 0;
    for (; s && *s && o + 1 < len && o < 200; s++)
        out[o++] = (*s >= 0x20 && *s < 0x7f) ? *s : ' ';
    out[o] = '\0';
}

static int do_register(dns01 *d, const char *key, const char *identifier, creds *c)
{
    long status = 0;
    char *resp = NULL;
    int rc = post(d, "/register", NULL, NULL, &status, &resp);
    if (rc)
        return rc;
    char ex[256];
    excerpt(resp, ex, sizeof(ex));
    json_t *o = (status == 201 || status == 200) && resp ? json_loads(resp, 0, NULL) : NULL;
    wipe_str(resp);
    const char *u = NULL, *p = NULL, *f = NULL, *s = NULL;
    dns_name check;
    if (!o || json_unpack(o, "{s:s, s:s, s:s, s:s}", "username", &u, "password", &p,
                          "fulldomain", &f, "subdomain", &s) != 0 ||
        !creds_sane((const char *const[]){u, p, f, s}, 4) || dns_name_from_text(&check, f) != 0) {
        json_decref(o);
        if (status != 201 && status != 200)
            return dns01_fail(d, ACME_E_HTTP, "acme-dns: POST %s/register answered HTTP %ld: %s",
                              d->api_url, status, ex);
        return dns01_fail(d, ACME_E_PROTOCOL, "acme-dns: the /register answer lacks username, "
                          "password, fulldomain or subdomain");
    }
    c->api_url = strdup(d->api_url);
    c->username = strdup(u);
    c->password = strdup(p);
    c->fulldomain = strdup(f);
    c->subdomain = strdup(s);
    json_decref(o);
    if (!c->api_url || !c->username || !c->password || !c->fulldomain || !c->subdomain) {
        creds_free(c);
        return dns01_fail(d, ACME_E_NOMEM, "out of memory");
    }
    if ((rc = save_creds(d, key, c)) != ACME_OK) {
        creds_free(c);
        return rc;
    }
    dns01_log(d, ACME_LOG_INFO, "acme-dns: registered %s at %s; stored the credentials as %s. "
              "Create the record: _acme-challenge.%s. CNAME %s.", identifier, d->api_url, key,
              identifier, c->fulldomain);
    return ACME_OK;
}

/* The credentials for identifier: stored ones for this api-url, or a new
 * registration. */
static int get_creds(dns01 *d, const char *identifier, creds *c, char *key, size_t keylen)
{
    storage_key(identifier, key, keylen);
    int rc = load_creds(d, key, c);
    if (rc == ACME_OK && strcmp(c->api_url, d->api_url) != 0) {
        dns01_log(d, ACME_LOG_WARNING, "acme-dns: the stored credentials for %s belong to %s, not "
                  "%s; registering again", identifier, c->api_url, d->api_url);
        creds_free(c);
        rc = ACME_E_NOT_FOUND;
    }
    if (rc == ACME_OK) {
        dns01_log(d, ACME_LOG_DEBUG, "acme-dns: using the stored credentials %s", key);
        return ACME_OK;
    }
    if (rc != ACME_E_NOT_FOUND)
        return dns01_fail(d, ACME_E_STORAGE, "acme-dns: could not read %s from storage (%d)", key, rc);
    return do_register(d, key, identifier, c);
}

static int acmedns_prepare(dns01 *d, dns01_record *r)
{
    creds c = {0};
    char key[320];
    int rc = get_creds(d, r->identifier, &c, key, sizeof(key));
    if (rc)
        return rc;
    dns_name full, chain;
    if (dns_name_from_text(&full, c.fulldomain) != 0) {
        rc = dns01_fail(d, ACME_E_PROTOCOL, "acme-dns: the stored fulldomain %s is not a name",
                        c.fulldomain);
        goto out;
    }
    /* The user's CNAME must lead there; otherwise the CA looks elsewhere. */
    if ((rc = resolve_cname_chain(d, &r->challenge, &chain)) != ACME_OK)
        goto out;
    if (!dns_name_equal(&chain, &full)) {
        const char *ch = dns01_name_text(&r->challenge);
        char now[DNS_NAME_TEXT + 32];
        if (dns_name_equal(&chain, &r->challenge))
            snprintf(now, sizeof(now), "it has no CNAME");
        else
            snprintf(now, sizeof(now), "its CNAME leads to %s", dns01_name_text(&chain));
        rc = dns01_fail(d, ACME_E_CALLBACK, "acme-dns: %s must be a CNAME for %s, but %s; create "
                        "the record \"%s. CNAME %s.\" at the DNS host of %s, then try again", ch,
                        c.fulldomain, now, ch, c.fulldomain, r->identifier);
        goto out;
    }
    r->target = full;
out:
    creds_free(&c);
    return rc;
}

static int acmedns_add(dns01 *d, const dns01_record *r)
{
    creds c = {0};
    char key[320];
    int rc = get_creds(d, r->identifier, &c, key, sizeof(key));
    if (rc)
        return rc;
    json_t *o = json_pack("{s:s, s:s}", "subdomain", c.subdomain, "txt", r->value);
    char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!json) {
        creds_free(&c);
        return dns01_fail(d, ACME_E_NOMEM, "out of memory");
    }
    long status = 0;
    char *resp = NULL;
    rc = post(d, "/update", &c, json, &status, &resp);
    free(json);
    if (rc == ACME_OK && status != 200) {
        char ex[256];
        excerpt(resp, ex, sizeof(ex));
        rc = dns01_fail(d, ACME_E_HTTP, "acme-dns: POST %s/update for %s answered HTTP %ld%s: %s",
                        d->api_url, c.fulldomain, status,
                        status == 401 ? " (credentials refused; delete the stored ones to register "
                                        "again)" : "", ex);
    }
    if (rc == ACME_OK)
        dns01_log(d, ACME_LOG_INFO, "acme-dns: set %s TXT \"%s\" through %s", c.fulldomain,
                  r->value, d->api_url);
    free(resp);
    creds_free(&c);
    return rc;
}

/* acme-dns has no delete: it keeps the last two values and the CA never
 * looks again. Nothing to do. */
static int acmedns_del(dns01 *d, const dns01_record *r)
{
    dns01_log(d, ACME_LOG_DEBUG, "acme-dns: nothing to remove for %s (the API has no delete)",
              dns01_name_text(&r->target));
    return ACME_OK;
}

const dns01_backend dns01_backend_acmedns = {
    .name = "acme-dns",
    .prepare = acmedns_prepare,
    .add = acmedns_add,
    .del = acmedns_del,
};
