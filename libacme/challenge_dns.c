/* The two newer DNS challenge types, bound to the account rather than to
 * one token:
 *
 *   dns-persist-01 (draft-ietf-acme-dns-persist): one TXT record at
 *     _validation-persist.<name>, created once, that names the CA (one of
 *     the challenge's issuer domain names) and our account URL. The record
 *     syntax is RFC 8659's issue-value: "<issuer>; tag=value; ...".
 *     Current Pebble and Let's Encrypt take accounturi as the account URL
 *     itself; draft -02 replaces it by a hashed URI under the directory's
 *     "accountHashPrefix", used here exactly when the CA advertises one.
 *   dns-account-01 (draft-ietf-acme-dns-account-label): dns-01's value at
 *     _<label>._acme-challenge.<name>, label = base32(SHA-256(account URL)[0:10]),
 *     so several accounts validate one name without overwriting each other.
 *
 * Formatting, parsing and matching only: no I/O. */
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "buf.h"
#include "crypto.h"
#include "internal.h"

#define MAX_ISSUERS 10 /* draft-ietf-acme-dns-persist §3.1: more is malformed */

/* A domain name as the draft wants an issuer domain name: 1..253 octets of
 * LDH labels and dots, no empty label. Case is checked by the caller. */
static int domain_ok(const char *s, size_t n)
{
    if (!n || n > 253 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.') {
            if (!label)
                return 0;
            label = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_'))
            return 0;
        if (++label > 63)
            return 0;
    }
    return 1;
}

static int has_upper(const char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            return 1;
    return 0;
}

/* The value goes into a TXT record and, as accounturi, is compared byte
 * for byte: no spaces, controls, quotes or ';' that would split it. */
static int account_url_ok(const char *u)
{
    if (!u || strncmp(u, "https://", 8) != 0 || !u[8])
        return 0;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == ';' || *p == '"' || *p == '\\')
            return 0;
    return 1;
}

ACME_EXPORT int acme_dns_persist_value(const char *issuer, const char *account_url, unsigned flags,
                                       int64_t persist_until, struct acme_buffer *out)
{
    if (!issuer || !out || !domain_ok(issuer, strlen(issuer)) || !account_url_ok(account_url) ||
        (flags & ~ACME_DNS_PERSIST_WILDCARD) || persist_until < 0)
        return ACME_E_INVALID_ARG;
    /* The draft wants the issuer in lowercase; what the CA sent is already. */
    char *v;
    if (persist_until)
        v = xasprintf("%s; accounturi=%s%s; persistUntil=%lld", issuer, account_url,
                      (flags & ACME_DNS_PERSIST_WILDCARD) ? "; policy=wildcard" : "", (long long)persist_until);
    else
        v = xasprintf("%s; accounturi=%s%s", issuer, account_url,
                      (flags & ACME_DNS_PERSIST_WILDCARD) ? "; policy=wildcard" : "");
    if (!v)
        return ACME_E_NOMEM;
    for (char *p = v; *p && *p != ';'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    int rc = buf_append_str(out, v);
    free(v);
    return rc;
}

/* One "tag=value" part, trimmed: tag and value as [start, end). */
typedef struct span {
    const char *p;
    size_t n;
} span;

static span trim(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return (span){p, n};
}

static int span_is(span s, const char *word)
{
    return s.n == strlen(word) && ascii_ncasecmp(s.p, word, s.n) == 0;
}

/* Parse as current Pebble and Boulder do: issuer-domain-name, then
 * ';'-separated tag=value parameters, whitespace around each ignored,
 * empty parts skipped, tags case-insensitive, a repeated known tag
 * malformed, unknown tags ignored (the draft's forward compatibility). */
ACME_EXPORT int acme_dns_persist_match(const char *txt, const char *const *issuers, size_t n,
                                       const char *account_url, int wildcard, int64_t now, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!txt || !account_url) {
        *why = "there is no record text or no account URL";
        return 0;
    }
    const char *semi = strchr(txt, ';');
    span issuer = trim(txt, semi ? (size_t)(semi - txt) : strlen(txt));
    if (issuer.n && issuer.p[issuer.n - 1] == '.')
        issuer.n--;
    if (!issuer.n) {
        *why = "the record does not start with an issuer domain name";
        return 0;
    }
    span acct = {NULL, 0}, policy = {NULL, 0}, until = {NULL, 0};
    int have_acct = 0, have_policy = 0, have_until = 0;
    for (const char *p = semi; p && *p;) {
        p++; /* past ';' */
        const char *end = strchr(p, ';');
        span part = trim(p, end ? (size_t)(end - p) : strlen(p));
        p = end;
        if (!part.n)
            continue;
        const char *eq = memchr(part.p, '=', part.n);
        if (!eq) {
            *why = "a parameter of the record has no \"=\" (tag=value)";
            return 0;
        }
        span tag = trim(part.p, (size_t)(eq - part.p));
        span val = trim(eq + 1, part.n - (size_t)(eq + 1 - part.p));
        int *seen = span_is(tag, "accounturi") ? &have_acct : span_is(tag, "policy") ? &have_policy
                    : span_is(tag, "persistUntil") ? &have_until : NULL;
        if (!seen)
            continue;
        if (*seen) {
            *why = "the record repeats a parameter (accounturi, policy or persistUntil)";
            return 0;
        }
        *seen = 1;
        if (seen == &have_acct)
            acct = val;
        else if (seen == &have_policy)
            policy = val;
        else
            until = val;
    }
    size_t i = 0;
    while (i < n && !(issuers[i] && strlen(issuers[i]) == issuer.n && ascii_ncasecmp(issuers[i], issuer.p, issuer.n) == 0))
        i++;
    if (i == n) {
        *why = "the record names another CA (its issuer domain name is not one the CA offers)";
        return 0;
    }
    if (!have_acct || !acct.n) {
        *why = "the record has no accounturi";
        return 0;
    }
    if (acct.n != strlen(account_url) || memcmp(acct.p, account_url, acct.n) != 0) {
        *why = "the record's accounturi is another account's URL";
        return 0;
    }
    if (have_until) {
        if (!until.n) {
            *why = "the record's persistUntil is empty";
            return 0;
        }
        int64_t t = 0;
        for (size_t k = 0; k < until.n; k++) {
            if (until.p[k] < '0' || until.p[k] > '9' || t > (INT64_MAX - 9) / 10) {
                *why = "the record's persistUntil is not a base-10 Unix time";
                return 0;
            }
            t = t * 10 + (until.p[k] - '0');
        }
        if (now > t) {
            *why = "the record's persistUntil has passed";
            return 0;
        }
    }
    if (wildcard && !(have_policy && span_is(policy, "wildcard"))) {
        *why = "a wildcard needs \"policy=wildcard\" in the record";
        return 0;
    }
    return 1;
}

ACME_EXPORT int acme_dns_persist_hashed_uri(const char *prefix, const char *domain, const char *thumbprint,
                                            const char *account_url, struct acme_buffer *out)
{
    size_t dl = domain ? strlen(domain) : 1;
    if (!prefix || !account_url_ok(prefix) || !thumbprint || !*thumbprint || !account_url || !*account_url || !out ||
        (domain && (!domain_ok(domain, dl) || has_upper(domain))))
        return ACME_E_INVALID_ARG;
    /* H(length_of_domain || domain_name || key || account_URL), draft -02
     * §4.1: the length octet keeps the domain apart from what follows. */
    acme_buf in;
    buf_init(&in, 0);
    unsigned char len = (unsigned char)dl;
    int rc = buf_append(&in, &len, 1);
    if (!rc)
        rc = buf_append_str(&in, domain ? domain : "*");
    if (!rc)
        rc = buf_append_str(&in, thumbprint);
    if (!rc)
        rc = buf_append_str(&in, account_url);
    char *digest = NULL;
    if (!rc)
        rc = sha256_b64url(in.data, in.len, &digest);
    buf_clear(&in);
    if (!rc) {
        rc = buf_append_str(out, prefix);
        if (!rc)
            rc = buf_append_str(out, "sha-256/");
        if (!rc)
            rc = buf_append_str(out, digest);
    }
    free(digest);
    return rc;
}

ACME_EXPORT int acme_dns_account_label(const char *account_url, struct acme_buffer *out)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char d[32];
    if (!account_url || !*account_url || !out)
        return ACME_E_INVALID_ARG;
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, account_url, strlen(account_url), d) < 0)
        return ACME_E_CRYPTO;
    /* 10 bytes = 80 bits = 16 base32 digits exactly: no padding to drop. */
    char label[18];
    label[0] = '_';
    for (size_t i = 0; i < 16; i++) {
        size_t bit = i * 5;
        unsigned v = ((unsigned)d[bit / 8] << 8 | (bit / 8 + 1 < 10 ? d[bit / 8 + 1] : 0)) >> (11 - bit % 8);
        label[1 + i] = alphabet[v & 31];
    }
    label[17] = '\0';
    return buf_append_str(out, label);
}

/* The issuer domain names of a challenge object: "issuer-domain-names"
 * (draft -00/-01, current Pebble, Let's Encrypt) or "issuerDomainNames"
 * (draft -02). The draft's client rules: 1..10 names, each lowercase
 * A-label without trailing dot, at most 253 octets. */
static int take_issuers(acme_challenge *ch, json_t *chal, const char **why)
{
    json_t *arr = json_object_get(chal, "issuer-domain-names");
    if (!arr)
        arr = json_object_get(chal, "issuerDomainNames");
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0 || n > MAX_ISSUERS) {
        *why = "has no list of 1 to 10 issuer domain names (issuer-domain-names)";
        return ACME_E_PROTOCOL;
    }
    ch->issuers = calloc(n, sizeof(*ch->issuers));
    if (!ch->issuers)
        return ACME_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *v = json_string_value(json_array_get(arr, i));
        if (!v || !domain_ok(v, strlen(v)) || has_upper(v)) {
            *why = "lists an issuer domain name that is not a lowercase domain name without trailing dot";
            return ACME_E_PROTOCOL;
        }
        if (!(ch->issuers[ch->issuer_count++] = strdup(v)))
            return ACME_E_NOMEM;
    }
    return ACME_OK;
}

static int listed(json_t *arr, const char *name)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *v = json_string_value(json_array_get(arr, i));
        if (v && ascii_casecmp(v, name) == 0)
            return 1;
    }
    return 0;
}

/* draft-ietf-acme-dns-persist -02 §3.2, the client's side: every name the
 * directory lists for pre-provisioning (D) must be offered (C), and when
 * the CA lists caaIdentities (I), every offered name must be one of them;
 * otherwise the challenge is malformed. A missing or non-array D or I
 * makes its check unavailable, not a failure. */
static int issuers_consistent(const acme_challenge *ch, json_t *dir_meta, const char **why)
{
    json_t *d = json_object_get(dir_meta, "issuerDomainNames");
    json_t *caa = json_object_get(dir_meta, "caaIdentities");
    for (size_t i = 0; json_is_array(d) && i < json_array_size(d); i++) {
        const char *v = json_string_value(json_array_get(d, i));
        size_t k = 0;
        while (v && k < ch->issuer_count && ascii_casecmp(ch->issuers[k], v) != 0)
            k++;
        if (v && k == ch->issuer_count) {
            *why = "leaves out an issuer domain name the CA's directory lists";
            return ACME_E_PROTOCOL;
        }
    }
    for (size_t k = 0; json_is_array(caa) && k < ch->issuer_count; k++)
        if (!listed(caa, ch->issuers[k])) {
            *why = "offers an issuer domain name that is not among the directory's caaIdentities";
            return ACME_E_PROTOCOL;
        }
    return ACME_OK;
}

int challenge_dns_prepare(acme_challenge *ch, json_t *chal, json_t *dir_meta, const char *thumbprint,
                          const char **why)
{
    const char *hash_prefix = dir_meta ? json_str(dir_meta, "accountHashPrefix") : NULL;
    if (hash_prefix && !*hash_prefix)
        hash_prefix = NULL;
    *why = NULL;
    if (!ch->account_url) {
        *why = "cannot be answered before the account URL is known";
        return ACME_E_STATE;
    }
    acme_buf b;
    buf_init(&b, 0);
    int rc;
    if (ch->type == ACME_CHALLENGE_DNS_ACCOUNT_01) {
        if (!ch->key_auth) {
            *why = "has no token";
            return ACME_E_PROTOCOL;
        }
        rc = acme_dns_account_label(ch->account_url, &b);
        if (!rc)
            ch->dns_name = xasprintf("%s._acme-challenge.%s", b.data, ch->identifier);
        if (!rc && !ch->dns_name)
            rc = ACME_E_NOMEM;
        if (!rc)
            rc = sha256_b64url(ch->key_auth, strlen(ch->key_auth), &ch->dns_value);
    } else {
        if (ascii_casecmp(ch->id_type, "dns") != 0) {
            *why = "is offered for an IP address (dns-persist-01 validates DNS names)";
            return ACME_E_PROTOCOL;
        }
        if ((rc = take_issuers(ch, chal, why)) != ACME_OK)
            return rc;
        if (dir_meta && (rc = issuers_consistent(ch, dir_meta, why)) != ACME_OK)
            return rc;
        if (!account_url_ok(ch->account_url)) {
            *why = "cannot name our account URL in a TXT record (it holds spaces, quotes or ';')";
            return ACME_E_PROTOCOL;
        }
        if (hash_prefix) {
            if ((rc = acme_dns_persist_hashed_uri(hash_prefix, ch->identifier, thumbprint, ch->account_url, &b))) {
                *why = "cannot be answered: the directory's accountHashPrefix is not an https URL";
                buf_clear(&b);
                return rc == ACME_E_INVALID_ARG ? ACME_E_PROTOCOL : rc;
            }
            ch->accounturi = buf_steal(&b, NULL);
            buf_init(&b, 0);
        } else {
            ch->accounturi = strdup(ch->account_url);
        }
        if (!ch->accounturi)
            return ACME_E_NOMEM;
        rc = acme_dns_persist_value(ch->issuers[0], ch->accounturi, ch->wildcard ? ACME_DNS_PERSIST_WILDCARD : 0,
                                    0, &b);
        if (!rc) {
            ch->dns_value = buf_steal(&b, NULL);
            ch->dns_name = xasprintf("_validation-persist.%s", ch->identifier);
            if (!ch->dns_value || !ch->dns_name)
                rc = ACME_E_NOMEM;
        }
    }
    buf_clear(&b);
    return rc;
}

ACME_EXPORT size_t acme_challenge_issuer_domain_count(const acme_challenge *ch)
{
    return ch ? ch->issuer_count : 0;
}

ACME_EXPORT const char *acme_challenge_issuer_domain(const acme_challenge *ch, size_t i)
{
    return ch && i < ch->issuer_count ? ch->issuers[i] : NULL;
}

ACME_EXPORT const char *acme_challenge_account_url(const acme_challenge *ch)
{
    return ch ? ch->account_url : NULL;
}

ACME_EXPORT const char *acme_challenge_persist_accounturi(const acme_challenge *ch)
{
    return ch ? ch->accounturi : NULL;
}

const char *dir_account_hash_prefix(const acme_client *c)
{
    const char *p = c && c->dir_meta ? json_str(c->dir_meta, "accountHashPrefix") : NULL;
    return p && *p ? p : NULL;
}

ACME_EXPORT const char *acme_directory_account_hash_prefix(acme_client *c)
{
    if (!c)
        return NULL;
    result_reset(c);
    if (net_directory(c))
        return NULL;
    return dir_account_hash_prefix(c);
}

/* The directory lists the names so that an owner can create the record
 * before any order (draft-ietf-acme-dns-persist §3.2, §4.5). */
static json_t *dir_issuers(acme_client *c)
{
    if (!c)
        return NULL;
    result_reset(c);
    if (net_directory(c) || !c->dir_meta)
        return NULL;
    json_t *a = json_object_get(c->dir_meta, "issuerDomainNames");
    if (!a)
        a = json_object_get(c->dir_meta, "issuer-domain-names");
    return json_is_array(a) ? a : NULL;
}

ACME_EXPORT size_t acme_directory_issuer_domain_count(acme_client *c)
{
    json_t *a = dir_issuers(c);
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(a); i++)
        n += json_is_string(json_array_get(a, i));
    return n;
}

ACME_EXPORT const char *acme_directory_issuer_domain(acme_client *c, size_t i)
{
    json_t *a = dir_issuers(c);
    for (size_t k = 0; k < json_array_size(a); k++) {
        const char *v = json_string_value(json_array_get(a, k));
        if (v && i-- == 0)
            return v;
    }
    return NULL;
}
