/* Challenges: what a host needs to answer one, computed from the
 * authorization and the account key, and the accessors the host reads it
 * with. The token guard lives here: a token that is not strict base64url
 * never reaches a callback, where it could become a file name or a URL. */
#include <arpa/inet.h>
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
    [ACME_CHALLENGE_DNS_PERSIST_01] = "dns-persist-01",
    [ACME_CHALLENGE_DNS_ACCOUNT_01] = "dns-account-01",
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
    free(ch->account_url);
    free(ch->accounturi);
    for (size_t i = 0; i < ch->issuer_count; i++)
        free(ch->issuers[i]);
    free(ch->issuers);
    free(ch);
}

/* ---- identifier binding ----
 *
 * What the CA sends back about identifiers (an authorization's, the
 * order's echo, the issued certificate's names) must be exactly what was
 * ordered: identifiers become file names, DNS names, hook arguments and
 * TLS server names on the host. */

/* Same IP address (any textual form), or -1 when either is not one. */
static int ip_same(const char *a, const char *b)
{
    unsigned char x[16], y[16];
    int fa = inet_pton(AF_INET, a, x) == 1 ? AF_INET : inet_pton(AF_INET6, a, x) == 1 ? AF_INET6 : 0;
    int fb = inet_pton(AF_INET, b, y) == 1 ? AF_INET : inet_pton(AF_INET6, b, y) == 1 ? AF_INET6 : 0;
    if (!fa || !fb)
        return -1;
    return fa == fb && memcmp(x, y, fa == AF_INET ? 4 : 16) == 0;
}

static int is_ip_text(const char *s)
{
    return ip_same(s, s) == 1;
}

int ident_value_safe(const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (!n || n > 253)
        return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x21 || *p >= 0x7f || strchr("/\\\"'`$;&|<>()", *p))
            return 0;
    return 1;
}

int ident_is_name(const char *type, const char *value, int wildcard, int order_form, const char *name)
{
    if (!type || !value || !name || !ident_value_safe(value))
        return 0;
    if (is_ip_text(name))
        return ascii_casecmp(type, "ip") == 0 && !wildcard && ip_same(value, name) == 1;
    if (ascii_casecmp(type, "dns") != 0)
        return 0;
    int name_wild = strncmp(name, "*.", 2) == 0;
    if (order_form)
        return ascii_casecmp(value, name) == 0;
    /* RFC 8555 §7.1.4: a wildcard's authorization has the base name and
     * "wildcard": true; any other authorization has no "*." and no flag. */
    if (name_wild != (wildcard != 0) || strncmp(value, "*.", 2) == 0)
        return 0;
    return ascii_casecmp(value, name_wild ? name + 2 : name) == 0;
}

int authz_matches_order(const char *const *names, size_t n, const unsigned char *taken, json_t *authz,
                        size_t *index, const char **why)
{
    json_t *id = json_object_get(authz, "identifier");
    const char *type = json_str(id, "type"), *value = json_str(id, "value");
    json_t *wild = json_object_get(authz, "wildcard");
    *why = NULL;
    if (!json_is_object(id) || !type || !value) {
        *why = "has no identifier (type and value)";
        return ACME_E_PROTOCOL;
    }
    if (wild && !json_is_boolean(wild)) {
        *why = "comes with a \"wildcard\" member that is not a boolean";
        return ACME_E_PROTOCOL;
    }
    if (!ident_value_safe(value)) {
        *why = "cannot be a DNS name or IP address";
        return ACME_E_PROTOCOL;
    }
    int w = json_is_true(wild);
    for (size_t i = 0; i < n; i++) {
        if (!ident_is_name(type, value, w, 0, names[i]))
            continue;
        if (taken && taken[i]) {
            *why = "is covered by another authorization of the order already";
            return ACME_E_PROTOCOL;
        }
        *index = i;
        return ACME_OK;
    }
    *why = "was not ordered";
    return ACME_E_PROTOCOL;
}

int order_identifiers_match(const char *const *names, size_t n, json_t *order, const char **why)
{
    json_t *ids = json_object_get(order, "identifiers");
    *why = NULL;
    if (!ids)
        return ACME_OK; /* nothing echoed; the authorizations are still checked one by one */
    if (!json_is_array(ids) || json_array_size(ids) != n) {
        *why = "do not match: not as many as were ordered";
        return ACME_E_PROTOCOL;
    }
    unsigned char *seen = calloc(n ? n : 1, 1);
    if (!seen)
        return ACME_E_NOMEM;
    int rc = ACME_OK;
    for (size_t k = 0; k < n && !rc; k++) {
        json_t *id = json_array_get(ids, k);
        const char *type = json_str(id, "type"), *value = json_str(id, "value");
        size_t i = 0;
        while (i < n && (seen[i] || !ident_is_name(type, value, 0, 1, names[i])))
            i++;
        if (i == n) {
            *why = "do not match: one was not ordered, or is listed twice";
            rc = ACME_E_PROTOCOL;
        } else {
            seen[i] = 1;
        }
    }
    free(seen);
    return rc;
}

int cert_names_match(const char *const *names, size_t n, char *const *sans, size_t m, const char **missing,
                     const char **extra)
{
    *missing = *extra = NULL;
    for (size_t i = 0; i < n && !*missing; i++) {
        size_t j = 0;
        while (j < m && !(ip_same(sans[j], names[i]) == 1 || ascii_casecmp(sans[j], names[i]) == 0))
            j++;
        if (j == m)
            *missing = names[i];
    }
    for (size_t j = 0; j < m && !*extra; j++) {
        size_t i = 0;
        while (i < n && !(ip_same(sans[j], names[i]) == 1 || ascii_casecmp(sans[j], names[i]) == 0))
            i++;
        if (i == n)
            *extra = sans[j];
    }
    return *missing || *extra ? ACME_E_PROTOCOL : ACME_OK;
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
    /* The order driver has bound the identifier to a name we ordered;
     * this is the last guard for anyone else who hands us an authorization. */
    if (!ident_value_safe(id_value) || (ascii_casecmp(id_type, "dns") != 0 && ascii_casecmp(id_type, "ip") != 0)) {
        char *shown = text_excerpt(id_value, 80);
        int rc = client_fail(c, ACME_E_PROTOCOL, "authorization: the CA sent the identifier %s \"%s\", which "
                             "cannot be a DNS name or IP address; refusing to hand it to the host — the CA is at "
                             "fault, report it to the CA", id_type, shown ? shown : "?");
        free(shown);
        return rc;
    }
    acme_challenge_type t = challenge_type_from_name(type);
    /* dns-persist-01's record has no token in it, and some CAs send none. */
    int token_needed = t != ACME_CHALLENGE_DNS_PERSIST_01 || token;
    if (token_needed && !b64url_is_token(token, MAX_TOKEN_LEN))
        return client_fail(c, ACME_E_BAD_TOKEN, "authorization for %s: the CA sent a %s token that is not "
                    "strict base64url; refusing to hand it to the host (it could become a path). "
                    "Report this to the CA", id_value, type);
    const char *thumb = acme_account_thumbprint(c);
    if (!thumb)
        return client_fail(c, ACME_E_CRYPTO, "could not compute the account key thumbprint");

    acme_challenge *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return ACME_E_NOMEM;
    ch->type = t;
    ch->url = strdup(url);
    ch->id_type = strdup(id_type);
    ch->identifier = strdup(id_value);
    ch->wildcard = json_is_true(json_object_get(authz, "wildcard"));
    if (token) {
        ch->token = strdup(token);
        ch->key_auth = key_authorization(token, thumb);
    }
    if (c->account_url)
        ch->account_url = strdup(c->account_url);
    int rc = (ch->url && ch->id_type && ch->identifier && (!token || (ch->token && ch->key_auth)) &&
              (!c->account_url || ch->account_url))
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
        case ACME_CHALLENGE_DNS_PERSIST_01:
        case ACME_CHALLENGE_DNS_ACCOUNT_01: {
            const char *why = NULL;
            rc = challenge_dns_prepare(ch, chal, c->dir_meta, thumb, &why);
            if (rc && why)
                rc = client_fail(c, rc, "authorization for %s: the CA's %s challenge %s; %s", id_value, type, why,
                                 rc == ACME_E_STATE ? "register or find the account first"
                                                    : "the CA is at fault, report it to the CA");
            break;
        }
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
