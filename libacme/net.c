/* Talking to the CA: directory, nonces, signed POSTs, polling. Every
 * request goes through the transport table; every failure leaves a
 * sentence in the client saying what failed and what to do. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "b64url.h"
#include "transport_curl.h"

#define MAX_REDIRECTS 3
#define MAX_BAD_NONCE_RETRIES 10

int net_url_ok(acme_client *c, const char *what, const char *url)
{
    if (url && strncmp(url, "https://", 8) == 0 && url[8])
        return ACME_OK;
    return client_fail(c, ACME_E_INSECURE,
                "%s: refusing non-https URL \"%s\"; ACME requires https — check the directory URL",
                what, url ? url : "(none)");
}

static int transport_ready(acme_client *c)
{
    if (c->transport.perform)
        return ACME_OK;
    transport_curl_config cfg = {
        .ca_file = c->ca_file,
        .ca_pem = c->ca_pem,
        .ca_pem_len = c->ca_pem_len,
        .connect_timeout_ms = c->connect_ms,
        .total_timeout_ms = c->total_ms,
        .user_agent = "libacme/" ACME_VERSION_STRING,
    };
    int rc = transport_curl_new(&cfg, &c->curl_transport);
    if (rc)
        return client_fail(c, rc, "could not set up the HTTP transport (%s)%s%s", acme_strerror(rc),
                    c->ca_file ? "; check the CA file " : "", c->ca_file ? c->ca_file : "");
    c->transport = transport_curl_ops;
    c->transport_ud = c->curl_transport;
    return ACME_OK;
}

static void take_nonce(acme_client *c, const acme_http_response *resp)
{
    const char *n = http_response_header(resp, "Replay-Nonce");
    /* A nonce is base64url (RFC 8555 §6.5.1); anything else is not reused. */
    if (n && b64url_is_token(n, 512)) {
        char *copy = strdup(n);
        if (copy) {
            free(c->nonce);
            c->nonce = copy;
        }
    }
}

static const char *transport_hint(int rc)
{
    switch (rc) {
    case ACME_E_TLS:
        return "check the CA trust (acme_client_set_ca_file) and the server certificate";
    case ACME_E_TIMEOUT:
        return "the server did not answer in time; check it is up, or raise the timeouts";
    case ACME_E_TOO_LARGE:
        return "the server sent more than the response limit (acme_client_set_max_response)";
    default:
        return "check that the server is up and reachable from here";
    }
}

static int perform(acme_client *c, const char *method, const char *url, const char *ctype,
                   const void *body, size_t body_len, acme_http_response *resp)
{
    int rc = net_url_ok(c, method, url);
    if (rc)
        return rc;
    rc = transport_ready(c);
    if (rc)
        return rc;
    http_response_clear(resp);
    acme_http_request req = {
        .size = sizeof(req),
        .method = method,
        .url = url,
        .content_type = ctype,
        .body = body,
        .body_len = body_len,
    };
    alog(c, ACME_LOG_DEBUG, "%s %s", method, url);
    rc = c->transport.perform(c->transport_ud, &req, resp);
    if (rc == ACME_OK && resp->status < 100)
        rc = ACME_E_NETWORK;
    if (rc)
        return client_fail(c, rc, "%s %s failed: %s%s%s; %s", method, url, acme_strerror(rc),
                    resp->error ? ": " : "", resp->error ? resp->error : "", transport_hint(rc));
    take_nonce(c, resp);
    return ACME_OK;
}

int net_get(acme_client *c, const char *method, const char *url, acme_http_response *resp)
{
    return perform(c, method, url, NULL, NULL, 0, resp);
}

static int is_json_type(const acme_http_response *resp, const char *want)
{
    const char *ct = http_response_header(resp, "Content-Type");
    if (!ct)
        return 0;
    size_t n = strlen(want);
    return ascii_ncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int dir_url(acme_client *c, json_t *dir, const char *name, int required, char **out)
{
    const char *u = json_str(dir, name);
    if (!u) {
        if (!required)
            return ACME_OK;
        return client_fail(c, ACME_E_PROTOCOL,
                    "directory %s has no \"%s\" URL; check that this is an ACME (RFC 8555) directory",
                    c->directory_url, name);
    }
    int rc = net_url_ok(c, name, u);
    if (rc)
        return rc;
    *out = strdup(u);
    return *out ? ACME_OK : ACME_E_NOMEM;
}

int net_directory(acme_client *c)
{
    if (c->have_directory)
        return ACME_OK;
    acme_http_response resp;
    http_response_init(&resp, c->max_response);
    char *url = strdup(c->directory_url);
    int rc = url ? ACME_OK : ACME_E_NOMEM;
    for (int hop = 0; rc == ACME_OK; hop++) {
        rc = net_get(c, "GET", url, &resp);
        if (rc || resp.status < 300 || resp.status >= 400)
            break;
        /* A directory may move, but only to another https URL. */
        const char *loc = http_response_header(&resp, "Location");
        if (!loc || hop >= MAX_REDIRECTS) {
            rc = client_fail(c, ACME_E_HTTP, "directory %s: HTTP %d redirect %s; use the final directory URL",
                      c->directory_url, resp.status, loc ? "loops" : "without Location");
            break;
        }
        if (strncmp(loc, "https://", 8) != 0) {
            rc = client_fail(c, ACME_E_INSECURE,
                      "directory %s redirects to \"%s\", which is not https; refusing — "
                      "use the https directory URL of your CA", c->directory_url, loc);
            break;
        }
        char *next = strdup(loc);
        free(url);
        url = next;
        if (!url)
            rc = ACME_E_NOMEM;
    }
    json_t *dir = NULL;
    if (rc == ACME_OK && resp.status != 200)
        rc = client_fail(c, ACME_E_HTTP, "directory %s: HTTP status %d (expected 200); check the directory URL",
                  url, resp.status);
    if (rc == ACME_OK && !is_json_type(&resp, "application/json"))
        rc = client_fail(c, ACME_E_PROTOCOL,
                  "directory %s: content type \"%s\" is not application/json; check the directory URL",
                  url, http_response_header(&resp, "Content-Type") ? http_response_header(&resp, "Content-Type") : "(none)");
    if (rc == ACME_OK && !(dir = json_parse_object(resp.body.data, resp.body.len)))
        rc = client_fail(c, ACME_E_PROTOCOL, "directory %s: the body is not a JSON object; check the directory URL", url);
    if (rc == ACME_OK) {
        /* Parse into temporaries first: a bad directory changes nothing. */
        char *nn = NULL, *na = NULL, *no = NULL, *rv = NULL, *kc = NULL, *ri = NULL;
        rc = dir_url(c, dir, "newNonce", 1, &nn);
        if (!rc) rc = dir_url(c, dir, "newAccount", 1, &na);
        if (!rc) rc = dir_url(c, dir, "newOrder", 1, &no);
        if (!rc) rc = dir_url(c, dir, "revokeCert", 0, &rv);
        if (!rc) rc = dir_url(c, dir, "keyChange", 0, &kc);
        if (!rc) rc = dir_url(c, dir, "renewalInfo", 0, &ri);
        if (rc) {
            free(nn); free(na); free(no); free(rv); free(kc); free(ri);
        } else {
            c->url_new_nonce = nn;
            c->url_new_account = na;
            c->url_new_order = no;
            c->url_revoke = rv;
            c->url_key_change = kc;
            c->url_renewal_info = ri;
            json_t *meta = json_object_get(dir, "meta");
            const char *tos = json_is_object(meta) ? json_str(meta, "termsOfService") : NULL;
            c->terms = tos ? strdup(tos) : NULL;
            c->eab_required = json_is_object(meta) &&
                              json_is_true(json_object_get(meta, "externalAccountRequired"));
            c->have_directory = 1;
            alog(c, ACME_LOG_DEBUG, "directory %s loaded", url);
        }
    }
    json_decref(dir);
    free(url);
    http_response_clear(&resp);
    http_response_init(&resp, 0);
    return rc;
}

static int fetch_nonce(acme_client *c, acme_http_response *resp)
{
    int rc = net_get(c, "HEAD", c->url_new_nonce, resp);
    if (rc)
        return rc;
    if (!c->nonce)
        return client_fail(c, ACME_E_PROTOCOL, "newNonce %s: no valid Replay-Nonce header (HTTP %d)",
                    c->url_new_nonce, resp->status);
    return ACME_OK;
}

/* What to tell a person for the problem types they can act on. */
static const char *problem_hint(const acme_problem *p)
{
    static const struct { const char *type, *hint; } hints[] = {
        { "accountDoesNotExist", "register an account first" },
        { "externalAccountRequired", "this CA needs external account binding: pass eab_kid and eab_hmac_key" },
        { "userActionRequired", "visit the CA's instructions URL / agree to the terms of service" },
        { "rateLimited", "the CA rate-limits this request; wait before retrying" },
        { "rejectedIdentifier", "the CA will not issue for this identifier" },
        { "unsupportedIdentifier", "the CA does not support this identifier type" },
        { "badCSR", "the CSR was refused; check the names and the key type" },
        { "badPublicKey", "the CA does not accept this key type; choose another" },
        { "badSignatureAlgorithm", "the CA does not accept this signature algorithm; choose another account key type" },
        { "caa", "a CAA record forbids this CA for the name; check the DNS CAA records" },
        { "dns", "the CA could not resolve the name; check its DNS records" },
        { "connection", "the CA could not connect; check that the name points here and the port is reachable" },
        { "tls", "the TLS handshake with the CA's validator failed; check the responder and the port" },
        { "incorrectResponse", "the CA saw a different response; check what is served for the challenge" },
        { "unauthorized", "the account is not allowed to do this (deactivated account, or foreign resource)" },
        { "malformed", "the request was malformed; please report this as a libacme bug" },
        { "serverInternal", "the CA had an internal error; try again later" },
    };
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
        if (problem_is(p, hints[i].type))
            return hints[i].hint;
    return "see the problem detail";
}

static int problem_code(const acme_problem *p)
{
    if (problem_is(p, "accountDoesNotExist"))
        return ACME_E_NO_ACCOUNT;
    if (problem_is(p, "externalAccountRequired"))
        return ACME_E_EAB_REQUIRED;
    if (problem_is(p, "userActionRequired") || problem_is(p, "agreementRequired"))
        return ACME_E_TOS_REQUIRED;
    return ACME_E_PROBLEM;
}

int net_post(acme_client *c, const char *step, const char *url, const char *payload,
             const acme_key *key, acme_http_response *resp, json_t **json)
{
    acme_http_response local;
    int rc = net_url_ok(c, step, url);
    if (rc)
        return rc;
    if (json)
        *json = NULL;
    if (!resp) {
        resp = &local;
        http_response_init(resp, c->max_response);
    }
    if (!key && (!c->account_key || !c->account_url)) {
        rc = client_fail(c, ACME_E_STATE, "%s: no account loaded; register or find the account first", step);
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        if (!c->nonce && (rc = fetch_nonce(c, resp)))
            goto out;
        char *nonce = c->nonce;
        c->nonce = NULL;
        char *jws = NULL;
        rc = jws_sign(key ? key : c->account_key, key ? NULL : c->account_url, nonce, url, payload, &jws);
        free(nonce);
        if (rc) {
            rc = client_fail(c, rc, "%s: could not sign the request (%s)", step, acme_strerror(rc));
            goto out;
        }
        rc = perform(c, "POST", url, "application/jose+json", jws, strlen(jws), resp);
        free(jws);
        if (rc)
            goto out;
        if (resp->status < 400)
            break;
        acme_problem *p = problem_parse(resp->body.data, resp->body.len);
        /* badNonce is the CA asking us to try again with the nonce it just sent. */
        if (p && problem_is(p, "badNonce") && attempt < MAX_BAD_NONCE_RETRIES) {
            alog(c, ACME_LOG_DEBUG, "%s: badNonce, retrying with the fresh nonce", step);
            problem_free(p);
            continue;
        }
        if (!p) {
            rc = client_fail(c, ACME_E_HTTP, "%s: %s answered HTTP %d without a problem document", step,
                      url, resp->status);
            goto out;
        }
        char *desc = problem_describe(p);
        const char *hint = problem_hint(p);
        rc = problem_code(p);
        keep_problem(c, p);
        rc = client_fail(c, rc, "%s: the CA refused (HTTP %d) %s; %s", step, resp->status,
                  desc ? desc : "", hint);
        free(desc);
        goto out;
    }
    if (resp->status >= 300) {
        const char *loc = http_response_header(resp, "Location");
        rc = client_fail(c, loc && strncmp(loc, "https://", 8) ? ACME_E_INSECURE : ACME_E_HTTP,
                  "%s: %s answered HTTP %d%s%s; ACME requests are not redirected", step, url,
                  resp->status, loc ? " to " : "", loc ? loc : "");
        goto out;
    }
    if (json) {
        if (!is_json_type(resp, "application/json")) {
            const char *ct = http_response_header(resp, "Content-Type");
            rc = client_fail(c, ACME_E_PROTOCOL, "%s: %s answered with content type \"%s\", expected application/json",
                      step, url, ct ? ct : "(none)");
            goto out;
        }
        *json = json_parse_object(resp->body.data, resp->body.len);
        if (!*json) {
            rc = client_fail(c, ACME_E_PROTOCOL, "%s: %s answered with a body that is not a JSON object "
                      "(%zu bytes)", step, url, resp->body.len);
            goto out;
        }
    }
    rc = ACME_OK;
out:
    if (resp == &local)
        http_response_clear(resp);
    return rc;
}

int net_poll(acme_client *c, const char *step, const char *url, json_t **json)
{
    /* Pebble and real CAs often finish within milliseconds; a fixed 1 s or
     * 5 s sleep is most of other clients' wall time. Start short, grow. */
    uint64_t start = now_ms(), deadline = start + c->poll_limit_ms;
    uint64_t backoff = 50;
    acme_http_response resp;
    http_response_init(&resp, c->max_response);
    int rc;
    for (;;) {
        json_t *obj = NULL;
        rc = net_post(c, step, url, NULL, NULL, &resp, &obj);
        if (rc)
            break;
        const char *st = json_str(obj, "status");
        if (!st) {
            json_decref(obj);
            rc = client_fail(c, ACME_E_PROTOCOL, "%s: %s has no \"status\"", step, url);
            break;
        }
        if (strcmp(st, "pending") != 0 && strcmp(st, "processing") != 0) {
            *json = obj;
            break;
        }
        json_decref(obj);
        uint64_t now = now_ms();
        long long ra = http_response_retry_after_ms(&resp);
        uint64_t wait = ra >= 0 ? (uint64_t)ra : backoff;
        if (now >= deadline || now + wait > deadline) {
            rc = client_fail(c, ACME_E_TIMEOUT, "%s: %s still \"%s\" after %llu ms (poll limit %u ms); "
                      "the CA is slow — raise the poll limit or try again later", step, url, st,
                      (unsigned long long)(now - start), c->poll_limit_ms);
            break;
        }
        alog(c, ACME_LOG_DEBUG, "%s: %s is %s, waiting %llu ms%s", step, url, st,
             (unsigned long long)wait, ra >= 0 ? " (Retry-After)" : "");
        sleep_ms(wait);
        if (backoff < 2000)
            backoff *= 2;
    }
    http_response_clear(&resp);
    return rc;
}
