/* Challenges: what a host needs to answer one, computed from the
 * authorization and the account key, and the accessors the host reads it
 * with. The token guard lives here: a token that is not strict base64url
 * never reaches a callback, where it could become a file name or a URL. */
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "internal.h"

/* RFC 8555 §8.1 asks for >= 128 bits of entropy; nobody needs more than this. */
#define MAX_TOKEN_LEN 256

static const char *const type_names[] = {
    [ACME_CHALLENGE_NONE] = "none",
    [ACME_CHALLENGE_HTTP_01] = "http-01",
    [ACME_CHALLENGE_DNS_01] = "dns-01",
    [ACME_CHALLENGE_TLS_ALPN_01] = "tls-alpn-01",
};

ACME_EXPORT const char *acme_challenge_type_name(acme_challenge_type type)
{
    if ((unsigned)type < sizeof(type_names) / sizeof(type_names[0]))
        return type_names[type];
    return "unknown";
}

acme_challenge_type challenge_type_from_name(const char *name)
{
    for (unsigned i = 1; name && i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (strcmp(name, type_names[i]) == 0)
            return (acme_challenge_type)i;
    return ACME_CHALLENGE_NONE;
}

char *key_authorization(const char *token, const char *thumbprint)
{
    return xasprintf("%s.%s", token, thumbprint);
}

void challenge_free(acme_challenge *ch)
{
    if (!ch)
        return;
    free(ch->url);
    free(ch->id_type);
    free(ch->identifier);
    free(ch->token);
    secure_free_str(ch->key_auth);
    free(ch->http_path);
    free(ch->dns_name);
    free(ch->dns_value);
    free(ch->alpn_cert);
    secure_free_str(ch->alpn_key);
    free(ch);
}

int challenge_prepare(acme_client *c, json_t *authz, json_t *chal, acme_challenge **out)
{
    *out = NULL;
    json_t *ident = json_object_get(authz, "identifier");
    const char *id_type = json_str(ident, "type");
    const char *id_value = json_str(ident, "value");
    const char *type = json_str(chal, "type");
    const char *url = json_str(chal, "url");
    const char *token = json_str(chal, "token");
    if (!id_type || !id_value || !type || !url)
        return client_fail(c, ACME_E_PROTOCOL, "authorization: the CA sent an authorization or challenge "
                    "without identifier/type/url");
    if (!b64url_is_token(token, MAX_TOKEN_LEN))
        return client_fail(c, ACME_E_BAD_TOKEN, "authorization for %s: the CA sent a %s token that is not "
                    "strict base64url; refusing to hand it to the host (it could become a path). "
                    "Report this to the CA", id_value, type);
    const char *thumb = acme_account_thumbprint(c);
    if (!thumb)
        return client_fail(c, ACME_E_CRYPTO, "could not compute the account key thumbprint");

    acme_challenge *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return ACME_E_NOMEM;
    ch->type = challenge_type_from_name(type);
    ch->url = strdup(url);
    ch->id_type = strdup(id_type);
    ch->identifier = strdup(id_value);
    ch->wildcard = json_is_true(json_object_get(authz, "wildcard"));
    ch->token = strdup(token);
    ch->key_auth = key_authorization(token, thumb);
    int rc = (ch->url && ch->id_type && ch->identifier && ch->token && ch->key_auth)
                 ? ACME_OK : ACME_E_NOMEM;
    if (!rc) {
        switch (ch->type) {
        case ACME_CHALLENGE_HTTP_01:
            ch->http_path = xasprintf("/.well-known/acme-challenge/%s", token);
            rc = ch->http_path ? ACME_OK : ACME_E_NOMEM;
            break;
        case ACME_CHALLENGE_DNS_01:
            /* A wildcard's authorization names the base domain already. */
            ch->dns_name = xasprintf("_acme-challenge.%s", id_value);
            rc = ch->dns_name ? sha256_b64url(ch->key_auth, strlen(ch->key_auth), &ch->dns_value)
                              : ACME_E_NOMEM;
            break;
        case ACME_CHALLENGE_TLS_ALPN_01:
            rc = alpn_cert_create(id_value, strcmp(id_type, "ip") == 0, ch->key_auth,
                                  &ch->alpn_cert, &ch->alpn_key);
            if (rc)
                rc = client_fail(c, rc, "tls-alpn-01 for %s: could not make the challenge certificate (%s)",
                          id_value, acme_strerror(rc));
            break;
        default:
            rc = client_fail(c, ACME_E_UNSUPPORTED, "challenge type %s is not supported", type);
        }
    }
    if (rc) {
        challenge_free(ch);
        return rc;
    }
    *out = ch;
    return ACME_OK;
}

ACME_EXPORT acme_challenge_type acme_challenge_get_type(const acme_challenge *ch)
{
    return ch ? ch->type : ACME_CHALLENGE_NONE;
}
ACME_EXPORT const char *acme_challenge_identifier_type(const acme_challenge *ch) { return ch ? ch->id_type : NULL; }
ACME_EXPORT const char *acme_challenge_identifier(const acme_challenge *ch) { return ch ? ch->identifier : NULL; }
ACME_EXPORT int acme_challenge_is_wildcard(const acme_challenge *ch) { return ch ? ch->wildcard : 0; }
ACME_EXPORT const char *acme_challenge_token(const acme_challenge *ch) { return ch ? ch->token : NULL; }
ACME_EXPORT const char *acme_challenge_key_authorization(const acme_challenge *ch) { return ch ? ch->key_auth : NULL; }
ACME_EXPORT const char *acme_challenge_http_path(const acme_challenge *ch) { return ch ? ch->http_path : NULL; }
ACME_EXPORT const char *acme_challenge_dns_name(const acme_challenge *ch) { return ch ? ch->dns_name : NULL; }
ACME_EXPORT const char *acme_challenge_dns_value(const acme_challenge *ch) { return ch ? ch->dns_value : NULL; }
ACME_EXPORT const char *acme_challenge_alpn_cert_pem(const acme_challenge *ch) { return ch ? ch->alpn_cert : NULL; }
ACME_EXPORT const char *acme_challenge_alpn_key_pem(const acme_challenge *ch) { return ch ? ch->alpn_key : NULL; }
ACME_EXPORT int acme_challenge_validated(const acme_challenge *ch) { return ch ? ch->validated : 0; }

static int in_list(json_t *names, const char *name)
{
    for (size_t i = 0; i < json_array_size(names); i++) {
        const char *v = json_string_value(json_array_get(names, i));
        if (v && strcmp(v, name) == 0)
            return 1;
    }
    return 0;
}

size_t challenge_rank(const acme_challenge_type *prefs, size_t n, json_t *scores, json_t *failed,
                      acme_challenge_type *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!in_list(failed, acme_challenge_type_name(prefs[i])))
            out[k++] = prefs[i];
    /* Stable insertion sort, best score first: ties keep the host's order. */
    for (size_t i = 1; i < k; i++) {
        acme_challenge_type t = out[i];
        json_int_t sc = json_integer_value(json_object_get(scores, acme_challenge_type_name(t)));
        size_t j = i;
        while (j > 0 && json_integer_value(json_object_get(scores, acme_challenge_type_name(out[j - 1]))) < sc) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = t;
    }
    return k;
}
