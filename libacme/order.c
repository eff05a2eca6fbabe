/* The order driver: one order from newOrder to an installed certificate,
 * as a state machine that does one exchange (or one host callback) per
 * step. acme_issue() is a loop over order_step(); the event-driven engine
 * drives the same steps. All retry and cleanup state lives here. */
#include <arpa/inet.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef enum order_state {
    OS_NEW_ORDER,
    OS_FETCH_AUTHZ,
    OS_PUBLISH,
    OS_RESPOND,
    OS_POLL_AUTHZ,
    OS_UNPUBLISH,
    OS_FINALIZE,
    OS_POLL_ORDER,
    OS_DOWNLOAD,
    OS_INSTALL,
    OS_CLEANUP,
    OS_DONE
} order_state;

typedef struct authz_slot {
    char *url;
    char *status;             /* as last seen */
    acme_challenge *ch;       /* the challenge we answer, if any */
    int published;
} authz_slot;

#define MAX_PREFS 8

typedef struct order_run {
    acme_client *c;
    order_state state;
    int rc;                   /* first failure */

    char **names;
    size_t name_count;
    acme_key_type key_type;
    acme_challenge_type prefs[MAX_PREFS];
    size_t pref_count;
    char *preferred_chain;
    char *cert_id;

    acme_key *cert_key;
    char *order_url;
    char *finalize_url;
    char *cert_url;
    authz_slot *authz;
    size_t authz_count;
    size_t cursor;
    char *chain;
    json_t *params;
} order_run;

static int is_ip(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static void run_free(order_run *r)
{
    for (size_t i = 0; i < r->name_count; i++)
        free(r->names[i]);
    free(r->names);
    free(r->preferred_chain);
    free(r->cert_id);
    key_free(r->cert_key);
    free(r->order_url);
    free(r->finalize_url);
    free(r->cert_url);
    for (size_t i = 0; i < r->authz_count; i++) {
        free(r->authz[i].url);
        free(r->authz[i].status);
        challenge_free(r->authz[i].ch);
    }
    free(r->authz);
    free(r->chain);
    json_decref(r->params);
}

/* Record the first failure and switch to cleanup. */
static int order_fail(order_run *r, int rc)
{
    if (!r->rc)
        r->rc = rc;
    r->state = OS_CLEANUP;
    return ACME_OK;
}

static const char *first_name(const order_run *r)
{
    return r->name_count ? r->names[0] : "?";
}

/* ---- steps ---- */

static int step_new_order(order_run *r)
{
    acme_client *c = r->c;
    alog(c, ACME_LOG_INFO, "order: %zu name(s) starting with %s: generating the %s certificate key",
         r->name_count, first_name(r), acme_key_type_name(r->key_type));
    int rc = key_generate(r->key_type, &r->cert_key);
    if (rc)
        return order_fail(r, client_fail(c, rc, "order for %s: could not generate the certificate key (%s)",
                                  first_name(r), acme_strerror(rc)));
    json_t *ids = json_array();
    for (size_t i = 0; i < r->name_count; i++)
        json_array_append_new(ids, json_pack("{s:s,s:s}", "type", is_ip(r->names[i]) ? "ip" : "dns",
                                             "value", r->names[i]));
    json_t *payload = json_pack("{s:o}", "identifiers", ids);
    char *text = payload ? json_text(payload) : NULL;
    json_decref(payload);
    if (!text)
        return order_fail(r, ACME_E_NOMEM);
    acme_http_response resp;
    http_response_init(&resp, c->max_response);
    json_t *order = NULL;
    rc = net_post(c, "newOrder", c->url_new_order, text, NULL, &resp, &order);
    free(text);
    if (!rc) {
        const char *loc = http_response_header(&resp, "Location");
        const char *fin = json_str(order, "finalize");
        json_t *auths = json_object_get(order, "authorizations");
        if (!loc || !fin || !json_is_array(auths) || json_array_size(auths) == 0)
            rc = client_fail(c, ACME_E_PROTOCOL, "newOrder: the CA's order lacks Location, finalize or authorizations");
        else if (!(rc = net_url_ok(c, "order", loc)) && !(rc = net_url_ok(c, "finalize", fin))) {
            r->order_url = strdup(loc);
            r->finalize_url = strdup(fin);
            r->authz_count = json_array_size(auths);
            r->authz = calloc(r->authz_count, sizeof(*r->authz));
            if (!r->order_url || !r->finalize_url || !r->authz)
                rc = ACME_E_NOMEM;
            for (size_t i = 0; !rc && i < r->authz_count; i++) {
                const char *u = json_string_value(json_array_get(auths, i));
                if ((rc = net_url_ok(c, "authorization", u)))
                    break;
                if (!(r->authz[i].url = strdup(u)))
                    rc = ACME_E_NOMEM;
            }
            if (!rc)
                alog(c, ACME_LOG_INFO, "order: %s created with %zu authorization(s)", r->order_url, r->authz_count);
        }
    }
    json_decref(order);
    http_response_clear(&resp);
    if (rc)
        return order_fail(r, rc);
    r->state = OS_FETCH_AUTHZ;
    r->cursor = 0;
    return ACME_OK;
}

static void list_types(json_t *chals, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(chals) && n < cap; i++) {
        const char *t = json_str(json_array_get(chals, i), "type");
        int w = snprintf(out + n, cap - n, "%s%s", i ? ", " : "", t ? t : "?");
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

static int set_status(authz_slot *s, const char *st)
{
    free(s->status);
    s->status = strdup(st ? st : "");
    return s->status ? ACME_OK : ACME_E_NOMEM;
}

static int step_fetch_authz(order_run *r)
{
    acme_client *c = r->c;
    if (r->cursor >= r->authz_count) {
        r->state = OS_PUBLISH;
        r->cursor = 0;
        return ACME_OK;
    }
    authz_slot *s = &r->authz[r->cursor];
    json_t *authz = NULL;
    int rc = net_post(c, "authorization", s->url, NULL, NULL, NULL, &authz);
    if (rc)
        return order_fail(r, rc);
    const char *st = json_str(authz, "status");
    const char *idv = json_str(json_object_get(authz, "identifier"), "value");
    rc = set_status(s, st);
    if (!rc && st && strcmp(st, "valid") == 0) {
        alog(c, ACME_LOG_INFO, "authorization for %s is already valid", idv ? idv : "?");
    } else if (!rc && st && strcmp(st, "pending") == 0) {
        json_t *chals = json_object_get(authz, "challenges");
        json_t *pick = NULL;
        for (size_t p = 0; p < r->pref_count && !pick; p++)
            for (size_t i = 0; i < json_array_size(chals) && !pick; i++) {
                json_t *ch = json_array_get(chals, i);
                if (challenge_type_from_name(json_str(ch, "type")) == r->prefs[p])
                    pick = ch;
            }
        if (!pick) {
            char offered[200];
            list_types(chals, offered, sizeof(offered));
            acme_buf wanted;
            buf_init(&wanted, 0);
            for (size_t p = 0; p < r->pref_count; p++) {
                buf_append_str(&wanted, p ? ", " : "");
                buf_append_str(&wanted, acme_challenge_type_name(r->prefs[p]));
            }
            rc = client_fail(c, ACME_E_UNSUPPORTED, "authorization for %s offers %s; none of the allowed "
                      "challenge types (%s) — allow one of the offered types%s", idv ? idv : "?",
                      offered, wanted.data ? wanted.data : "",
                      json_is_true(json_object_get(authz, "wildcard")) ? " (wildcards need dns-01)" : "");
            buf_clear(&wanted);
        } else {
            rc = challenge_prepare(c, authz, pick, &s->ch);
        }
    } else if (!rc) {
        rc = client_fail(c, ACME_E_ORDER_FAILED, "authorization for %s is \"%s\"; it cannot be used — "
                  "place a new order", idv ? idv : "?", st ? st : "(no status)");
    }
    json_decref(authz);
    if (rc)
        return order_fail(r, rc);
    r->cursor++;
    return ACME_OK;
}

/* Publish every challenge before responding to any, so the CA's
 * validators (which arrive in parallel, from several places) find all of
 * them in place, and slow publishing (DNS) overlaps. */
static int step_publish(order_run *r)
{
    acme_client *c = r->c;
    for (; r->cursor < r->authz_count; r->cursor++) {
        authz_slot *s = &r->authz[r->cursor];
        if (!s->ch || s->published)
            continue;
        if (!c->host.publish)
            return order_fail(r, client_fail(c, ACME_E_STATE, "%s for %s: no publish callback set "
                                      "(acme_client_set_host)", acme_challenge_type_name(s->ch->type),
                                      s->ch->identifier));
        alog(c, ACME_LOG_INFO, "publishing %s for %s", acme_challenge_type_name(s->ch->type), s->ch->identifier);
        int rc = c->host.publish(c->host_ud, s->ch);
        if (rc)
            return order_fail(r, client_fail(c, ACME_E_CALLBACK, "publishing %s for %s failed in the host "
                                      "(%s); check the host's challenge set-up",
                                      acme_challenge_type_name(s->ch->type), s->ch->identifier,
                                      acme_strerror(rc)));
        s->published = 1;
        r->cursor++;
        return ACME_OK; /* one callback per step */
    }
    r->state = OS_RESPOND;
    r->cursor = 0;
    return ACME_OK;
}

static int step_respond(order_run *r)
{
    acme_client *c = r->c;
    for (; r->cursor < r->authz_count; r->cursor++) {
        authz_slot *s = &r->authz[r->cursor];
        if (!s->ch)
            continue;
        json_t *chal = NULL;
        /* "{}" tells the CA we are ready (RFC 8555 §7.5.1). */
        int rc = net_post(c, "challenge response", s->ch->url, "{}", NULL, NULL, &chal);
        json_decref(chal);
        if (rc)
            return order_fail(r, rc);
        alog(c, ACME_LOG_INFO, "asked the CA to validate %s for %s",
             acme_challenge_type_name(s->ch->type), s->ch->identifier);
        r->cursor++;
        return ACME_OK;
    }
    r->state = OS_POLL_AUTHZ;
    r->cursor = 0;
    return ACME_OK;
}

static const char *challenge_hint(acme_challenge_type t)
{
    switch (t) {
    case ACME_CHALLENGE_HTTP_01:
        return "check that the name resolves to this host, port 80 reaches the responder, and "
               "/.well-known/acme-challenge/ is served";
    case ACME_CHALLENGE_TLS_ALPN_01:
        return "check that the name resolves to this host and port 443 reaches a responder that "
               "answers ALPN acme-tls/1";
    case ACME_CHALLENGE_DNS_01:
        return "check that the TXT record is visible at every authoritative server of the zone";
    default:
        return "see the problem detail";
    }
}

static int step_poll_authz(order_run *r)
{
    acme_client *c = r->c;
    for (; r->cursor < r->authz_count; r->cursor++) {
        authz_slot *s = &r->authz[r->cursor];
        if (!s->ch)
            continue;
        json_t *authz = NULL;
        int rc = net_poll(c, "authorization", s->url, &authz);
        if (rc)
            return order_fail(r, rc);
        const char *st = json_str(authz, "status");
        rc = set_status(s, st);
        if (!rc && (!st || strcmp(st, "valid") != 0)) {
            /* Find the CA's reason on the challenge we answered. */
            acme_problem *p = NULL;
            json_t *chals = json_object_get(authz, "challenges");
            for (size_t i = 0; i < json_array_size(chals) && !p; i++) {
                json_t *ch = json_array_get(chals, i);
                const char *u = json_str(ch, "url");
                if (u && strcmp(u, s->ch->url) == 0)
                    p = problem_from_json(json_object_get(ch, "error"));
            }
            char *desc = p ? problem_describe(p) : NULL;
            if (p)
                keep_problem(c, p);
            rc = client_fail(c, ACME_E_CHALLENGE_FAILED, "%s for %s failed (authorization %s): %s; %s",
                      acme_challenge_type_name(s->ch->type), s->ch->identifier, st ? st : "?",
                      desc ? desc : "the CA gave no reason", challenge_hint(s->ch->type));
            free(desc);
        }
        if (!rc)
            alog(c, ACME_LOG_INFO, "%s for %s: valid", acme_challenge_type_name(s->ch->type), s->ch->identifier);
        json_decref(authz);
        if (rc)
            return order_fail(r, rc);
        r->cursor++;
        return ACME_OK;
    }
    r->state = OS_UNPUBLISH;
    r->cursor = 0;
    return ACME_OK;
}

/* Take down what we published. A failure here is worth a warning, not
 * the certificate: validation is already done. */
static void unpublish_all(order_run *r)
{
    acme_client *c = r->c;
    for (size_t i = 0; i < r->authz_count; i++) {
        authz_slot *s = &r->authz[i];
        if (!s->published)
            continue;
        s->published = 0;
        if (!c->host.unpublish)
            continue;
        int rc = c->host.unpublish(c->host_ud, s->ch);
        if (rc)
            alog(c, ACME_LOG_WARNING, "unpublishing %s for %s failed in the host (%s); remove it by hand",
                 acme_challenge_type_name(s->ch->type), s->ch->identifier, acme_strerror(rc));
    }
}

static int step_finalize(order_run *r)
{
    acme_client *c = r->c;
    char *csr = NULL;
    int rc = csr_create(r->cert_key, (const char *const *)r->names, r->name_count, &csr);
    if (rc)
        return order_fail(r, client_fail(c, rc, "finalize for %s: could not make the CSR (%s)", first_name(r),
                                  acme_strerror(rc)));
    json_t *p = json_pack("{s:s}", "csr", csr);
    char *text = p ? json_text(p) : NULL;
    json_decref(p);
    free(csr);
    if (!text)
        return order_fail(r, ACME_E_NOMEM);
    json_t *order = NULL;
    rc = net_post(c, "finalize", r->finalize_url, text, NULL, NULL, &order);
    free(text);
    json_decref(order);
    if (rc)
        return order_fail(r, rc);
    alog(c, ACME_LOG_INFO, "order for %s finalized; waiting for the certificate", first_name(r));
    r->state = OS_POLL_ORDER;
    return ACME_OK;
}

static int step_poll_order(order_run *r)
{
    acme_client *c = r->c;
    json_t *order = NULL;
    int rc = net_poll(c, "order", r->order_url, &order);
    if (rc)
        return order_fail(r, rc);
    const char *st = json_str(order, "status");
    const char *cu = json_str(order, "certificate");
    if (st && strcmp(st, "valid") == 0 && cu) {
        if (!(rc = net_url_ok(c, "certificate", cu)) && !(r->cert_url = strdup(cu)))
            rc = ACME_E_NOMEM;
    } else {
        acme_problem *p = problem_from_json(json_object_get(order, "error"));
        char *desc = p ? problem_describe(p) : NULL;
        if (p)
            keep_problem(c, p);
        rc = client_fail(c, ACME_E_ORDER_FAILED, "order %s for %s is \"%s\"%s%s; place a new order",
                  r->order_url, first_name(r), st ? st : "?", desc ? ": " : "", desc ? desc : "");
        free(desc);
    }
    json_decref(order);
    if (rc)
        return order_fail(r, rc);
    r->state = OS_DOWNLOAD;
    return ACME_OK;
}

static int chain_matches_issuer(const char *pem, const char *want)
{
    cert_info *ci = NULL;
    if (cert_info_parse(pem, strlen(pem), &ci))
        return 0;
    int hit = ci->issuer_cn && strcmp(ci->issuer_cn, want) == 0;
    for (size_t i = 0; !hit && i < ci->cert_count; i++)
        hit = ci->issuer_cns[i] && strcmp(ci->issuer_cns[i], want) == 0;
    cert_info_free(ci);
    return hit;
}

/* Download one chain; check it is ours before anything else looks at it. */
static int download(order_run *r, const char *url, char **chain, char ***alts, size_t *alt_count)
{
    acme_client *c = r->c;
    acme_http_response resp;
    http_response_init(&resp, c->max_response);
    int rc = net_post(c, "certificate download", url, NULL, NULL, &resp, NULL);
    if (!rc) {
        const char *ct = http_response_header(&resp, "Content-Type");
        if (!ct || ascii_ncasecmp(ct, "application/pem-certificate-chain", 33) != 0)
            rc = client_fail(c, ACME_E_PROTOCOL, "certificate download %s: content type \"%s\", expected "
                      "application/pem-certificate-chain", url, ct ? ct : "(none)");
    }
    cert_info *ci = NULL;
    if (!rc && cert_info_parse(resp.body.data, resp.body.len, &ci))
        rc = client_fail(c, ACME_E_PROTOCOL, "certificate download %s: the body is not a PEM certificate chain", url);
    if (!rc && cert_matches_key(resp.body.data, resp.body.len, r->cert_key))
        rc = client_fail(c, ACME_E_KEY_MISMATCH, "certificate download %s: the certificate is not for our key; "
                  "nothing was installed — report this to the CA", url);
    for (size_t i = 0; !rc && i < r->name_count; i++) {
        int found = 0;
        for (size_t j = 0; j < ci->name_count && !found; j++)
            found = ascii_casecmp(ci->names[j], r->names[i]) == 0;
        if (!found)
            rc = client_fail(c, ACME_E_PROTOCOL, "certificate download %s: the certificate does not name %s; "
                      "nothing was installed", url, r->names[i]);
    }
    cert_info_free(ci);
    if (!rc && alts)
        rc = http_response_links(&resp, "alternate", alts, alt_count);
    if (!rc && !(*chain = strndup(resp.body.data, resp.body.len)))
        rc = ACME_E_NOMEM;
    http_response_clear(&resp);
    return rc;
}

static int step_download(order_run *r)
{
    acme_client *c = r->c;
    char **alts = NULL;
    size_t alt_count = 0;
    int rc = download(r, r->cert_url, &r->chain, &alts, &alt_count);
    if (!rc && r->preferred_chain && !chain_matches_issuer(r->chain, r->preferred_chain)) {
        /* RFC 8555 §7.4.2: alternates are the same certificate under other issuers. */
        for (size_t i = 0; i < alt_count; i++) {
            char *alt = NULL;
            if (net_url_ok(c, "alternate chain", alts[i]) || download(r, alts[i], &alt, NULL, NULL)) {
                alog(c, ACME_LOG_WARNING, "alternate chain %s unusable; skipped", alts[i]);
                result_reset(c);
                continue;
            }
            if (chain_matches_issuer(alt, r->preferred_chain)) {
                alog(c, ACME_LOG_INFO, "using the alternate chain issued by \"%s\"", r->preferred_chain);
                free(r->chain);
                r->chain = alt;
                break;
            }
            free(alt);
        }
        if (!chain_matches_issuer(r->chain, r->preferred_chain))
            alog(c, ACME_LOG_INFO, "no chain issued by \"%s\"; keeping the default chain", r->preferred_chain);
    }
    http_links_free(alts, alt_count);
    if (rc)
        return order_fail(r, rc);
    r->state = OS_INSTALL;
    return ACME_OK;
}

static int step_install(order_run *r)
{
    acme_client *c = r->c;
    char *key_pem = NULL;
    acme_certificate *cert = NULL;
    int rc = key_to_pem(r->cert_key, &key_pem);
    if (!rc)
        rc = certificate_new(r->cert_id, r->chain, key_pem, &cert);
    secure_free_str(key_pem);
    if (rc)
        return order_fail(r, client_fail(c, rc, "could not prepare the certificate for %s (%s)", first_name(r),
                                  acme_strerror(rc)));
    cert->params = json_incref(r->params);
    rc = certificate_store(c, cert);
    if (!rc) {
        alog(c, ACME_LOG_INFO, "certificate for %s stored as %s (valid until %lld)", first_name(r),
             r->cert_id, (long long)cert->info->not_after);
        if (c->host.install && (rc = c->host.install(c->host_ud, cert)))
            rc = client_fail(c, ACME_E_CALLBACK, "installing the certificate %s failed in the host (%s); it is "
                      "stored, install it again with acme_cert_load()", r->cert_id, acme_strerror(rc));
    }
    certificate_free(cert);
    if (rc) {
        r->rc = rc;
        r->state = OS_DONE; /* the order itself succeeded: nothing to clean up */
        return ACME_OK;
    }
    r->state = OS_DONE;
    return ACME_OK;
}

/* Leave nothing behind: challenges taken down, pending authorizations
 * deactivated (they would otherwise count against the CA's limits). The
 * first failure's message and problem stay what the caller sees. */
static void cleanup(order_run *r)
{
    acme_client *c = r->c;
    unpublish_all(r);
    acme_problem *kept = c->problem;
    c->problem = NULL;
    for (size_t i = 0; i < r->authz_count; i++) {
        authz_slot *s = &r->authz[i];
        if (!s->status || strcmp(s->status, "pending") != 0)
            continue;
        json_t *res = NULL;
        if (net_post(c, "authorization deactivation", s->url, "{\"status\":\"deactivated\"}", NULL, NULL, &res) == ACME_OK)
            alog(c, ACME_LOG_INFO, "deactivated the pending authorization %s", s->url);
        json_decref(res);
    }
    problem_free(c->problem);
    c->problem = kept;
}

static int order_step(order_run *r)
{
    switch (r->state) {
    case OS_NEW_ORDER: return step_new_order(r);
    case OS_FETCH_AUTHZ: return step_fetch_authz(r);
    case OS_PUBLISH: return step_publish(r);
    case OS_RESPOND: return step_respond(r);
    case OS_POLL_AUTHZ: return step_poll_authz(r);
    case OS_UNPUBLISH:
        unpublish_all(r);
        r->state = OS_FINALIZE;
        return ACME_OK;
    case OS_FINALIZE: return step_finalize(r);
    case OS_POLL_ORDER: return step_poll_order(r);
    case OS_DOWNLOAD: return step_download(r);
    case OS_INSTALL: return step_install(r);
    case OS_CLEANUP:
        cleanup(r);
        r->state = OS_DONE;
        return ACME_OK;
    case OS_DONE: break;
    }
    return ACME_OK;
}

/* ---- public entry points ---- */

static int setup_run(acme_client *c, const acme_issue_params *p, order_run *r)
{
    memset(r, 0, sizeof(*r));
    r->c = c;
    if (!p || p->size < offsetof(acme_issue_params, cert_id) + sizeof(p->cert_id) || !p->name_count ||
        !p->names)
        return client_fail(c, ACME_E_INVALID_ARG, "issue: no names given (or params.size not set)");
    if (p->key_type < ACME_KEY_DEFAULT || p->key_type > ACME_KEY_RSA_4096)
        return client_fail(c, ACME_E_INVALID_ARG, "issue: key type %d cannot be a certificate key (use EC or RSA)",
                    (int)p->key_type);
    r->key_type = p->key_type == ACME_KEY_DEFAULT ? ACME_KEY_EC_P256 : p->key_type;
    r->names = calloc(p->name_count, sizeof(char *));
    if (!r->names)
        return ACME_E_NOMEM;
    for (size_t i = 0; i < p->name_count; i++) {
        const char *n = p->names[i];
        if (!n || !*n || strlen(n) > 253 || strpbrk(n, " /\\\t\r\n"))
            return client_fail(c, ACME_E_INVALID_ARG, "issue: \"%s\" is not a DNS name or IP address", n ? n : "(null)");
        for (size_t j = 0; j < i; j++)
            if (ascii_casecmp(r->names[j], n) == 0)
                return client_fail(c, ACME_E_INVALID_ARG, "issue: %s is listed twice", n);
        if (!(r->names[r->name_count++] = strdup(n)))
            return ACME_E_NOMEM;
    }
    static const acme_challenge_type defaults[] = {
        ACME_CHALLENGE_HTTP_01, ACME_CHALLENGE_TLS_ALPN_01, ACME_CHALLENGE_DNS_01,
    };
    const acme_challenge_type *prefs = p->challenges ? p->challenges : defaults;
    size_t np = p->challenges ? p->challenge_count : 3;
    for (size_t i = 0; i < np && r->pref_count < MAX_PREFS; i++) {
        if (prefs[i] < ACME_CHALLENGE_HTTP_01 || prefs[i] > ACME_CHALLENGE_TLS_ALPN_01)
            return client_fail(c, ACME_E_INVALID_ARG, "issue: unknown challenge type %d", (int)prefs[i]);
        r->prefs[r->pref_count++] = prefs[i];
    }
    if (!r->pref_count)
        return client_fail(c, ACME_E_INVALID_ARG, "issue: an empty list of challenge types");
    if (p->preferred_chain && !(r->preferred_chain = strdup(p->preferred_chain)))
        return ACME_E_NOMEM;
    r->cert_id = p->cert_id ? strdup(p->cert_id) : certificate_id_for(r->names[0]);
    if (!r->cert_id || !*r->cert_id || strchr(r->cert_id, '/') || r->cert_id[0] == '.')
        return client_fail(c, ACME_E_INVALID_ARG, "issue: \"%s\" cannot be a certificate id",
                    p->cert_id ? p->cert_id : r->names[0]);
    /* Remember how it was ordered, so renewal can do it again. */
    json_t *names = json_array(), *chals = json_array();
    for (size_t i = 0; i < r->name_count; i++)
        json_array_append_new(names, json_string(r->names[i]));
    for (size_t i = 0; i < r->pref_count; i++)
        json_array_append_new(chals, json_string(acme_challenge_type_name(r->prefs[i])));
    r->params = json_pack("{s:o,s:s,s:o,s:s?}", "names", names, "key_type",
                          acme_key_type_name(r->key_type), "challenges", chals,
                          "preferred_chain", r->preferred_chain);
    return r->params ? ACME_OK : ACME_E_NOMEM;
}

static int run_order(acme_client *c, order_run *r)
{
    int rc = account_ensure(c);
    if (rc)
        return rc;
    uint64_t start = now_ms();
    while (r->state != OS_DONE)
        order_step(r);
    if (!r->rc)
        alog(c, ACME_LOG_INFO, "order for %s done in %llu ms", first_name(r),
             (unsigned long long)(now_ms() - start));
    return r->rc;
}

ACME_EXPORT int acme_issue(acme_client *c, const acme_issue_params *p)
{
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    order_run r;
    int rc = setup_run(c, p, &r);
    if (!rc)
        rc = run_order(c, &r);
    run_free(&r);
    return rc;
}

ACME_EXPORT int acme_renew(acme_client *c, const char *cert_id, int force, int *renewed)
{
    if (renewed)
        *renewed = 0;
    if (!c || !cert_id)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    acme_certificate *cert = NULL;
    int rc = certificate_load(c, cert_id, &cert);
    if (rc)
        return rc;
    int64_t due = renewal_time(cert->info->not_before, cert->info->not_after);
    if (!force && (int64_t)time(NULL) < due) {
        alog(c, ACME_LOG_INFO, "certificate %s is not due for renewal until %lld", cert_id, (long long)due);
        certificate_free(cert);
        return ACME_OK;
    }
    /* Order the same names and key type as before. */
    json_t *params = cert->params;
    json_t *jnames = json_object_get(params, "names");
    size_t n = json_array_size(jnames);
    const char **names = NULL;
    acme_challenge_type chals[MAX_PREFS];
    size_t nch = 0;
    acme_issue_params ip = { .size = sizeof(ip), .cert_id = cert_id };
    if (n) {
        names = calloc(n, sizeof(char *));
        if (!names) {
            certificate_free(cert);
            return ACME_E_NOMEM;
        }
        for (size_t i = 0; i < n; i++)
            names[i] = json_string_value(json_array_get(jnames, i));
        ip.names = names;
        ip.name_count = n;
    } else {
        /* Stored by a host storage without params: the certificate's own names. */
        ip.names = (const char *const *)cert->info->names;
        ip.name_count = cert->info->name_count;
    }
    acme_key_type kt = ACME_KEY_DEFAULT;
    if (json_str(params, "key_type"))
        acme_key_type_from_name(json_str(params, "key_type"), &kt);
    ip.key_type = kt;
    json_t *jch = json_object_get(params, "challenges");
    for (size_t i = 0; i < json_array_size(jch) && nch < MAX_PREFS; i++) {
        acme_challenge_type t = challenge_type_from_name(json_string_value(json_array_get(jch, i)));
        if (t != ACME_CHALLENGE_NONE)
            chals[nch++] = t;
    }
    if (nch) {
        ip.challenges = chals;
        ip.challenge_count = nch;
    }
    ip.preferred_chain = json_str(params, "preferred_chain");
    alog(c, ACME_LOG_INFO, "renewing certificate %s%s", cert_id, force ? " (forced)" : "");
    rc = acme_issue(c, &ip);
    if (!rc && renewed)
        *renewed = 1;
    free(names);
    certificate_free(cert);
    return rc;
}
