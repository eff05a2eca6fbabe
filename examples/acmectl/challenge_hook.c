/* A challenge as the hook sees it: copied out of libacme's object (which
 * lives only during a callback) so it can also be taken down after an
 * interrupt, and the hook call with uacme's five arguments and
 * environment. */
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "acmectl.h"

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = al[(v >> 18) & 63];
        out[o++] = al[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = al[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = al[v & 63];
    }
    out[o] = '\0';
}

/* The AUTH argument as uacme passes it: the key authorization for http-01,
 * base64url(SHA-256(key authorization)) for dns-01 (the TXT value) and
 * for tls-alpn-01 (what goes into the acmeIdentifier extension). */
static char *dup_or_empty(const char *s);

static char *hook_auth(const acme_challenge *ch)
{
    const char *ka = acme_challenge_key_authorization(ch);
    switch (acme_challenge_get_type(ch)) {
    case ACME_CHALLENGE_DNS_01:
    case ACME_CHALLENGE_DNS_ACCOUNT_01:   /* at ACMECTL_DNS_NAME, not _acme-challenge */
    case ACME_CHALLENGE_DNS_PERSIST_01:   /* the persistent record's value */
        return strdup(acme_challenge_dns_value(ch));
    case ACME_CHALLENGE_TLS_ALPN_01: {
        unsigned char d[32];
        char out[48];
        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, ka, strlen(ka), d) < 0)
            return NULL;
        b64url(d, sizeof(d), out);
        return strdup(out);
    }
    default:
        return dup_or_empty(ka);
    }
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

void chal_rec_free(chal_rec *x)
{
    if (!x)
        return;
    free(x->ident);
    free(x->ident_type);
    free(x->token);
    free(x->auth);
    free(x->key_auth);
    free(x->http_path);
    free(x->dns_name);
    free(x);
}

chal_rec *chal_rec_new(const acme_challenge *ch)
{
    chal_rec *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->type = acme_challenge_get_type(ch);
    x->wildcard = acme_challenge_is_wildcard(ch);
    x->ident = dup_or_empty(acme_challenge_identifier(ch));
    x->ident_type = dup_or_empty(acme_challenge_identifier_type(ch));
    x->token = dup_or_empty(acme_challenge_token(ch));
    x->auth = hook_auth(ch);
    x->key_auth = dup_or_empty(acme_challenge_key_authorization(ch));
    x->http_path = dup_or_empty(acme_challenge_http_path(ch));
    x->dns_name = dup_or_empty(acme_challenge_dns_name(ch));
    if (!x->ident || !x->ident_type || !x->token || !x->auth || !x->key_auth || !x->http_path ||
        !x->dns_name) {
        chal_rec_free(x);
        return NULL;
    }
    return x;
}

int chal_hook_run(const acmectl_opts *o, const char *method, const chal_rec *x)
{
    const char *type = acme_challenge_type_name(x->type);
    const char *args[] = {method, type, x->ident, x->token, x->auth};
    char verbose[16];
    bprintf(verbose, sizeof(verbose), "%d", o->verbosity > 0 ? o->verbosity : 0);
    hook_env env[] = {
        {"ACMECTL_METHOD", method}, {"ACMECTL_TYPE", type}, {"ACMECTL_IDENT", x->ident},
        {"ACMECTL_IDENT_TYPE", x->ident_type}, {"ACMECTL_WILDCARD", x->wildcard ? "1" : "0"},
        {"ACMECTL_TOKEN", x->token}, {"ACMECTL_AUTH", x->auth}, {"ACMECTL_KEY_AUTH", x->key_auth},
        {"ACMECTL_HTTP_PATH", x->http_path}, {"ACMECTL_DNS_NAME", x->dns_name},
        {"ACMECTL_DIRECTORY", o->directory}, {"ACMECTL_STATE_DIR", o->state_dir},
        /* uacme's names, so its hook scripts run unchanged. */
        {"UACME_METHOD", method}, {"UACME_TYPE", type}, {"UACME_IDENT", x->ident},
        {"UACME_TOKEN", x->token}, {"UACME_AUTH", x->auth}, {"UACME_CONFDIR", o->state_dir},
        {"UACME_VERBOSE", verbose},
    };
    progress_activity("hook %s %s %s", method, type, x->ident);
    int st = hook_run(o->hook, args, sizeof(args) / sizeof(args[0]), env, sizeof(env) / sizeof(env[0]));
    progress_activity(NULL);
    return st;
}
