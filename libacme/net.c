/* Talking to the CA: directory, nonces, signed POSTs — as resumable
 * operations (net.h), plus blocking wrappers for the simple API. Every
 * failure leaves a sentence in the client saying what failed and what to
 * do. */
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "internal.h"
#include "net.h"
#include "http_host.h"
#include "transport_curl.h"

#define MAX_REDIRECTS 3
#define MAX_BAD_NONCE_RETRIES 30 /* a CA that rejects half of all nonces (Pebble in tests) still gets through */

enum {
    PH_START,
    PH_NONCE_SENT,
    PH_SIGNING,
    PH_POST_SENT,
    PH_DIR_SENT,
    PH_DONE
};

int net_url_ok(acme_client *c, const char *what, const char *url)
{
    if (url && strncmp(url, "https://", 8) == 0 && url[8])
        return ACME_OK;
    return client_fail(c, ACME_E_INSECURE,
                       "%s: refusing non-https URL \"%s\"; ACME requires https — check the directory URL",
                       what, url ? url : "(none)");
}

int net_transport_ready(acme_client *c)
{
    if (c->transport.perform || c->transport.submit)
        return ACME_OK;
    transport_curl_config cfg = {
        .ca_file = c->ca_file,
        .ca_pem = c->ca_pem,
        .ca_pem_len = c->ca_pem_len,
        .connect_timeout_ms = c->connect_ms,
        .total_timeout_ms = c->total_ms,
        .user_agent = "libacme/" ACME_VERSION_STRING,
        .jit = c->trust_jit,
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
        return "check the CA trust (acme_client_set_ca_file, or the trust-anchor lookup) and the server certificate";
    case ACME_E_TIMEOUT:
        return "the server did not answer in time; check it is up, or raise the timeouts";
    case ACME_E_TOO_LARGE:
        return "the server sent more than the response limit (acme_client_set_max_response)";
    case ACME_E_NETWORK:
        return "the connection failed or was cut; check that the server is up and reachable";
    case ACME_E_CALLBACK:
        return "fix the transport's perform: set the status (acme_http_response_set_status) before returning "
               "ACME_OK, or return the error code that says what failed";
    default:
        return "see the detail";
    }
}

/* ---- exchanges ---- */

static int exchange_set(http_exchange *x, size_t limit, const char *method, const char *url,
                        const char *ctype, const char *body)
{
    free(x->url);
    free(x->body);
    x->url = strdup(url);
    x->body = body ? strdup(body) : NULL;
    if (!x->url || (body && !x->body))
        return ACME_E_NOMEM;
    http_response_clear(&x->resp);
    http_response_init(&x->resp, limit);
    x->req = (acme_http_request){
        .size = sizeof(acme_http_request),
        .method = method,
        .url = x->url,
        .content_type = ctype,
        .body = x->body,
        .body_len = body ? strlen(body) : 0,
    };
    x->rc = ACME_E_STATE;
    return ACME_OK;
}

static void exchange_clear(http_exchange *x)
{
    free(x->url);
    free(x->body);
    x->url = x->body = NULL;
    http_response_clear(&x->resp);
}

void net_exchange_perform(acme_client *c, http_exchange *x)
{
    x->rc = net_transport_ready(c);
    if (x->rc)
        return;
    alog(c, ACME_LOG_DEBUG, "%s %s", x->req.method, x->req.url);
    if (!c->transport.perform) {
        /* An asynchronous-only table: submit and wait for its completion. */
        http_host_perform_wait(c, x);
        return;
    }
    x->rc = c->transport.perform(c->transport_ud, &x->req, &x->resp);
    if (x->rc == ACME_OK && x->resp.status < 100) {
        /* Not the network's fault: the table broke its contract. Said as
         * such (and not retried as a transient fault would be), so the
         * author of the transport looks at perform, not at the CA. */
        x->rc = ACME_E_CALLBACK;
        acme_http_response_set_error(&x->resp, "the transport table's perform returned ACME_OK without an HTTP "
                                               "status: a bug in the transport, not a network failure");
    }
}

/* Look at a finished exchange: transport failure becomes the op's error. */
static int exchange_result(acme_client *c, http_exchange *x)
{
    if (x->rc)
        return client_fail(c, x->rc, "%s %s failed: %s%s%s; %s", x->req.method, x->req.url,
                           acme_strerror(x->rc), x->resp.error ? " — " : "",
                           x->resp.error ? x->resp.error : "", transport_hint(x->rc));
    take_nonce(c, &x->resp);
    return ACME_OK;
}

static int is_json_type(const acme_http_response *resp, const char *want)
{
    const char *ct = http_response_header(resp, "Content-Type");
    if (!ct)
        return 0;
    size_t n = strlen(want);
    return ascii_ncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* ---- ops ---- */

static void op_reset(net_op *op)
{
    memset(op, 0, sizeof(*op));
    http_response_init(&op->x.resp, 0);
}

int net_op_post(net_op *op, acme_client *c, const char *step, const char *url, const char *payload,
                const acme_key *key, int want_json)
{
    op_reset(op);
    op->kind = NET_OP_POST;
    op->step = step;
    op->key = key;
    op->want_json = want_json;
    op->url = xstrdup(url);
    op->payload = xstrdup(payload);
    op->x.patient = step && strcmp(step, "finalize") == 0;
    (void)c;
    return (url && !op->url) || (payload && !op->payload) ? ACME_E_NOMEM : ACME_OK;
}

int net_op_directory(net_op *op, acme_client *c)
{
    op_reset(op);
    op->kind = NET_OP_DIRECTORY;
    op->step = "directory";
    op->url = xstrdup(c->directory_url);
    return op->url ? ACME_OK : ACME_E_NOMEM;
}

void net_op_clear(net_op *op)
{
    free(op->job.nonce);
    free(op->job.jws);
    op->job.nonce = op->job.jws = NULL;
    free(op->url);
    free(op->payload);
    exchange_clear(&op->x);
    json_decref(op->json);
    op->url = op->payload = NULL;
    op->json = NULL;
}

static net_want op_done(net_op *op, int rc)
{
    op->rc = rc;
    op->phase = PH_DONE;
    return NET_DONE;
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
        { "unauthorized", "the CA refused this account the request; check the account status and the resource" },
        { "malformed", "the CA found the request malformed; check the inputs (names, EAB key) — if they are right, report a libacme bug" },
        { "serverInternal", "the CA had an internal error; try again later" },
        { "alreadyRevoked", "nothing to do: the certificate is already revoked" },
        { "alreadyReplaced", "the certificate was already replaced; order without \"replaces\"" },
        { "invalidProfile", "the CA does not offer this profile; choose one from its directory" },
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

static void job_sign(work_job *j)
{
    j->rc = jws_sign(j->sign_key, j->kid, j->nonce, j->url, j->payload, &j->jws);
}

/* RSA signatures cost milliseconds on a desktop and most of a second on a
 * small CPU: they go to the worker. ECDSA and EdDSA are cheap. */
static int slow_to_sign(const acme_key *k)
{
    acme_key_type t = key_get_type(k);
    return t == ACME_KEY_RSA_2048 || t == ACME_KEY_RSA_3072 || t == ACME_KEY_RSA_4096;
}

static net_want post_signed(acme_client *c, net_op *op, int rc, char *jws)
{
    if (rc)
        return op_done(op, client_fail(c, rc, "%s: could not sign the request (%s)", op->step, acme_strerror(rc)));
    rc = exchange_set(&op->x, c->max_response, "POST", op->url, "application/jose+json", jws);
    if (rc)
        return op_done(op, rc);
    op->phase = PH_POST_SENT;
    return NET_HTTP;
}

static net_want post_send(acme_client *c, net_op *op)
{
    if (!c->nonce) {
        int rc = exchange_set(&op->x, c->max_response, "HEAD", c->url_new_nonce, NULL, NULL);
        if (rc)
            return op_done(op, rc);
        op->phase = PH_NONCE_SENT;
        return NET_HTTP;
    }
    char *nonce = c->nonce;
    c->nonce = NULL;
    const acme_key *key = op->key ? op->key : c->account_key;
    const char *kid = op->key ? NULL : c->account_url;
    if (slow_to_sign(key)) {
        free(op->job.nonce);
        free(op->job.jws);
        op->job = (work_job){ .fn = job_sign, .sign_key = key, .kid = kid, .url = op->url,
                              .payload = op->payload, .nonce = nonce };
        op->phase = PH_SIGNING;
        return NET_WORK;
    }
    char *jws = NULL;
    int rc = jws_sign(key, kid, nonce, op->url, op->payload, &jws);
    free(nonce);
    net_want w = post_signed(c, op, rc, jws);
    free(jws);
    return w;
}

static net_want post_answer(acme_client *c, net_op *op)
{
    acme_http_response *resp = &op->x.resp;
    if (resp->status >= 400) {
        acme_problem *p = problem_parse(resp->body.data, resp->body.len);
        /* badNonce is the CA asking us to try again with the nonce it just sent. */
        if (p && problem_is(p, "badNonce") && op->attempts < MAX_BAD_NONCE_RETRIES) {
            alog(c, ACME_LOG_DEBUG, "%s: badNonce, retrying with the fresh nonce", op->step);
            problem_free(p);
            op->attempts++;
            return post_send(c, op);
        }
        if (!p)
            return op_done(op, client_fail(c, ACME_E_HTTP, "%s: %s answered HTTP %d without a problem document",
                                           op->step, op->url, resp->status));
        char *desc = problem_describe(p);
        const char *hint = problem_hint(p);
        int rc = problem_code(p);
        keep_problem(c, p);
        rc = (op->soft_problem ? client_fail_soft : client_fail)(c, rc, "%s: the CA refused (HTTP %d) %s; %s",
                                                                 op->step, resp->status, desc ? desc : "", hint);
        free(desc);
        return op_done(op, rc);
    }
    if (resp->status >= 300) {
        const char *loc = http_response_header(resp, "Location");
        return op_done(op, client_fail(c, loc && strncmp(loc, "https://", 8) ? ACME_E_INSECURE : ACME_E_HTTP,
                                       "%s: %s answered HTTP %d%s%s; ACME requests are not redirected",
                                       op->step, op->url, resp->status, loc ? " to " : "", loc ? loc : ""));
    }
    if (op->want_json) {
        if (!is_json_type(resp, "application/json")) {
            const char *ct = http_response_header(resp, "Content-Type");
            return op_done(op, client_fail(c, ACME_E_PROTOCOL,
                                           "%s: %s answered with content type \"%s\", expected application/json",
                                           op->step, op->url, ct ? ct : "(none)"));
        }
        op->json = json_parse_object(resp->body.data, resp->body.len);
        if (!op->json)
            return op_done(op, client_fail(c, ACME_E_PROTOCOL,
                                           "%s: %s answered with a body that is not a JSON object (%zu bytes)",
                                           op->step, op->url, resp->body.len));
    }
    return op_done(op, ACME_OK);
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

/* Take a directory object into the client; a bad one changes nothing. */
static int adopt_directory(acme_client *c, json_t *dir)
{
    char *nn = NULL, *na = NULL, *no = NULL, *rv = NULL, *kc = NULL, *ri = NULL;
    int rc = dir_url(c, dir, "newNonce", 1, &nn);
    if (!rc) rc = dir_url(c, dir, "newAccount", 1, &na);
    if (!rc) rc = dir_url(c, dir, "newOrder", 1, &no);
    if (!rc) rc = dir_url(c, dir, "revokeCert", 0, &rv);
    if (!rc) rc = dir_url(c, dir, "keyChange", 0, &kc);
    if (!rc) rc = dir_url(c, dir, "renewalInfo", 0, &ri);
    /* Two fetches may race (the engine's and an order's): the first one
     * to arrive is the directory; later ones change nothing. */
    if (rc || c->have_directory) {
        free(nn); free(na); free(no); free(rv); free(kc); free(ri);
        return rc;
    }
    c->url_new_nonce = nn;
    c->url_new_account = na;
    c->url_new_order = no;
    c->url_revoke = rv;
    c->url_key_change = kc;
    c->url_renewal_info = ri;
    json_t *meta = json_object_get(dir, "meta");
    const char *tos = json_is_object(meta) ? json_str(meta, "termsOfService") : NULL;
    c->terms = tos ? strdup(tos) : NULL;
    c->eab_required = json_is_object(meta) && json_is_true(json_object_get(meta, "externalAccountRequired"));
    json_t *profiles = json_is_object(meta) ? json_object_get(meta, "profiles") : NULL;
    c->profiles = json_is_object(profiles) ? json_incref(profiles) : NULL;
    c->dir_meta = json_is_object(meta) ? json_incref(meta) : NULL;
    c->have_directory = 1;
    return ACME_OK;
}

static net_want dir_answer(acme_client *c, net_op *op)
{
    acme_http_response *resp = &op->x.resp;
    if (resp->status >= 300 && resp->status < 400) {
        /* A directory may move, but only to another https URL. */
        const char *loc = http_response_header(resp, "Location");
        if (!loc || op->attempts >= MAX_REDIRECTS)
            return op_done(op, client_fail(c, ACME_E_HTTP, "directory %s: HTTP %d redirect %s; use the final directory URL",
                                           c->directory_url, resp->status, loc ? "loops" : "without Location"));
        if (strncmp(loc, "https://", 8) != 0)
            return op_done(op, client_fail(c, ACME_E_INSECURE,
                                           "directory %s redirects to \"%s\", which is not https; refusing — "
                                           "use the https directory URL of your CA", c->directory_url, loc));
        op->attempts++;
        char *next = strdup(loc);
        if (!next)
            return op_done(op, ACME_E_NOMEM);
        free(op->url);
        op->url = next;
        int rc = exchange_set(&op->x, c->max_response, "GET", op->url, NULL, NULL);
        if (rc)
            return op_done(op, rc);
        return NET_HTTP;
    }
    if (resp->status != 200)
        return op_done(op, client_fail(c, ACME_E_HTTP, "directory %s: HTTP status %d (expected 200); check the directory URL",
                                       op->url, resp->status));
    if (!is_json_type(resp, "application/json")) {
        const char *ct = http_response_header(resp, "Content-Type");
        return op_done(op, client_fail(c, ACME_E_PROTOCOL,
                                       "directory %s: content type \"%s\" is not application/json; check the directory URL",
                                       op->url, ct ? ct : "(none)"));
    }
    json_t *dir = json_parse_object(resp->body.data, resp->body.len);
    if (!dir)
        return op_done(op, client_fail(c, ACME_E_PROTOCOL,
                                       "directory %s: the body is not a JSON object; check the directory URL", op->url));
    int rc = adopt_directory(c, dir);
    json_decref(dir);
    if (!rc)
        alog(c, ACME_LOG_DEBUG, "directory %s loaded", op->url);
    return op_done(op, rc);
}

net_want net_op_next(acme_client *c, net_op *op)
{
    int rc;
    switch (op->phase) {
    case PH_START:
        if ((rc = net_url_ok(c, op->step, op->url)))
            return op_done(op, rc);
        if (op->kind == NET_OP_DIRECTORY) {
            if ((rc = exchange_set(&op->x, c->max_response, "GET", op->url, NULL, NULL)))
                return op_done(op, rc);
            op->phase = PH_DIR_SENT;
            return NET_HTTP;
        }
        if (!op->key && (!c->account_key || !c->account_url))
            return op_done(op, client_fail(c, ACME_E_STATE, "%s: no account loaded; register or find the account first",
                                           op->step));
        return post_send(c, op);
    case PH_NONCE_SENT:
        if ((rc = exchange_result(c, &op->x)))
            return op_done(op, rc);
        if (!c->nonce)
            return op_done(op, client_fail(c, ACME_E_PROTOCOL, "newNonce %s: no valid Replay-Nonce header (HTTP %d)",
                                           c->url_new_nonce, op->x.resp.status));
        return post_send(c, op);
    case PH_SIGNING: {
        net_want w = post_signed(c, op, op->job.rc, op->job.jws);
        free(op->job.jws);
        free(op->job.nonce);
        op->job.jws = op->job.nonce = NULL;
        return w;
    }
    case PH_POST_SENT:
        if ((rc = exchange_result(c, &op->x)))
            return op_done(op, rc);
        return post_answer(c, op);
    case PH_DIR_SENT:
        if ((rc = exchange_result(c, &op->x)))
            return op_done(op, rc);
        return dir_answer(c, op);
    default:
        return NET_DONE;
    }
}

int net_op_run(acme_client *c, net_op *op)
{
    for (;;) {
        net_want w = net_op_next(c, op);
        if (w == NET_HTTP)
            net_exchange_perform(c, &op->x);
        else if (w == NET_WORK)
            op->job.fn(&op->job);
        else
            return op->rc;
    }
}

/* ---- blocking wrappers for the simple API ---- */

int net_directory(acme_client *c)
{
    if (c->have_directory)
        return ACME_OK;
    net_op op;
    int rc = net_op_directory(&op, c);
    if (!rc)
        rc = net_op_run(c, &op);
    net_op_clear(&op);
    return rc;
}

int net_post(acme_client *c, const char *step, const char *url, const char *payload,
             const acme_key *key, acme_http_response *resp, json_t **json)
{
    if (json)
        *json = NULL;
    net_op op;
    int rc = net_op_post(&op, c, step, url, payload, key, json != NULL);
    if (!rc)
        rc = net_op_run(c, &op);
    if (!rc && json) {
        *json = op.json;
        op.json = NULL;
    }
    if (resp) {
        /* Hand the response (headers: Location, Link) to the caller. */
        http_response_clear(resp);
        *resp = op.x.resp;
        http_response_init(&op.x.resp, 0);
    }
    net_op_clear(&op);
    return rc;
}
