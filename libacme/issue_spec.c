/* The issue spec (issue_spec.h): host params and stored params, validated
 * by one function into one immutable form. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "issue_spec.h"
#include "storage_file.h"

void issue_spec_free(issue_spec *s)
{
    if (!s || --s->refs)
        return;
    for (size_t i = 0; i < s->name_count; i++)
        free(s->names[i]);
    free(s->names);
    free(s->preferred_chain);
    free(s->profile);
    free(s->cert_id);
    free(s);
}

issue_spec *issue_spec_ref(issue_spec *s)
{
    if (s)
        s->refs++;
    return s;
}

json_t *issue_spec_stored_form(const issue_spec *s)
{
    json_t *names = json_array(), *chals = json_array();
    for (size_t i = 0; i < s->name_count; i++)
        json_array_append_new(names, json_string(s->names[i]));
    for (size_t i = 0; i < s->pref_count; i++)
        json_array_append_new(chals, json_string(acme_challenge_type_name(s->prefs[i])));
    return json_pack("{s:o,s:s,s:o,s:s?,s:s?}", "names", names, "key_type", acme_key_type_name(s->key_type),
                     "challenges", chals, "preferred_chain", s->preferred_chain, "profile", s->profile);
}

issue_spec *issue_spec_new(acme_client *c, const acme_issue_params *p, int *rcp)
{
    int rc = ACME_OK;
    issue_spec *s = calloc(1, sizeof(*s));
    if (!s) {
        *rcp = ACME_E_NOMEM;
        return NULL;
    }
    s->refs = 1;
#define BAD(...) do { rc = client_fail(c, ACME_E_INVALID_ARG, __VA_ARGS__); goto out; } while (0)
#define NOMEM() do { rc = ACME_E_NOMEM; goto out; } while (0)
    /* Say which mistake it is: a size not set reads as "no names" to
     * nobody who set the names. */
    if (!p)
        BAD("issue: no parameters given (pass an acme_issue_params)");
    if (p->size < offsetof(acme_issue_params, cert_id) + sizeof(p->cert_id))
        BAD("issue: acme_issue_params.size is %zu, at least %zu expected: set .size = sizeof(acme_issue_params)",
            p->size, offsetof(acme_issue_params, cert_id) + sizeof(p->cert_id));
    if (!p->name_count || !p->names)
        BAD("issue: no names given (set .names and .name_count)");
    if (p->key_type < ACME_KEY_DEFAULT || p->key_type > ACME_KEY_RSA_4096)
        BAD("issue: key type %d cannot be a certificate key (use EC or RSA)", (int)p->key_type);
    s->key_type = p->key_type == ACME_KEY_DEFAULT ? ACME_KEY_EC_P256 : p->key_type;
    if (!(s->names = calloc(p->name_count, sizeof(char *))))
        NOMEM();
    for (size_t i = 0; i < p->name_count; i++) {
        const char *n = p->names[i];
        if (!n || !*n || strlen(n) > 253 || strpbrk(n, " /\\\t\r\n\"'`$;&|<>"))
            BAD("issue: \"%s\" is not a DNS name or IP address", n ? n : "(null)");
        for (size_t j = 0; j < i; j++)
            if (ascii_casecmp(s->names[j], n) == 0)
                BAD("issue: %s is listed twice", n);
        if (!(s->names[s->name_count++] = strdup(n)))
            NOMEM();
    }
    static const acme_challenge_type defaults[] = {
        ACME_CHALLENGE_HTTP_01, ACME_CHALLENGE_TLS_ALPN_01, ACME_CHALLENGE_DNS_01,
    };
    const acme_challenge_type *prefs = p->challenges ? p->challenges : defaults;
    size_t np = p->challenges ? p->challenge_count : 3;
    for (size_t i = 0; i < np && s->pref_count < ISSUE_SPEC_MAX_PREFS; i++) {
        if (prefs[i] < ACME_CHALLENGE_HTTP_01 || prefs[i] > ACME_CHALLENGE_DNS_ACCOUNT_01)
            BAD("issue: unknown challenge type %d", (int)prefs[i]);
        s->prefs[s->pref_count++] = prefs[i];
    }
    if (!s->pref_count)
        BAD("issue: an empty list of challenge types");
    if (p->preferred_chain && !(s->preferred_chain = strdup(p->preferred_chain)))
        NOMEM();
    const char *profile = p->size >= offsetof(acme_issue_params, profile) + sizeof(p->profile) ? p->profile : NULL;
    if (profile && !(s->profile = strdup(profile)))
        NOMEM();
    s->cert_id = p->cert_id ? strdup(p->cert_id) : certificate_id_for(s->names[0]);
    if (!s->cert_id || !*s->cert_id || strchr(s->cert_id, '/') || s->cert_id[0] == '.' ||
        !storage_key_valid(s->cert_id))
        BAD("issue: \"%s\" cannot be a certificate id (use letters, digits, '.', '_' and '-')",
            p->cert_id ? p->cert_id : s->names[0]);
#undef NOMEM
#undef BAD
out:
    *rcp = rc;
    if (rc) {
        issue_spec_free(s);
        return NULL;
    }
    return s;
}

issue_spec *issue_spec_from_stored(acme_client *c, const acme_certificate *cert, int *rc)
{
    /* The stored form goes through the same checks as a host's params:
     * a damaged or hand-edited cert.json is refused with the same words. */
    acme_issue_params ip;
    memset(&ip, 0, sizeof(ip));
    ip.size = sizeof(ip);
    ip.cert_id = cert->id;
    json_t *params = cert->params;
    json_t *jnames = json_object_get(params, "names");
    size_t n = json_array_size(jnames);
    const char **names = NULL;
    if (n) {
        if (!(names = calloc(n, sizeof(char *)))) {
            *rc = ACME_E_NOMEM;
            return NULL;
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
    acme_challenge_type chals[ISSUE_SPEC_MAX_PREFS];
    json_t *jch = json_object_get(params, "challenges");
    size_t nch = 0;
    for (size_t i = 0; i < json_array_size(jch) && nch < ISSUE_SPEC_MAX_PREFS; i++) {
        acme_challenge_type t = challenge_type_from_name(json_string_value(json_array_get(jch, i)));
        if (t != ACME_CHALLENGE_NONE)
            chals[nch++] = t;
    }
    if (nch) {
        ip.challenges = chals;
        ip.challenge_count = nch;
    }
    ip.preferred_chain = json_str(params, "preferred_chain");
    ip.profile = json_str(params, "profile");
    issue_spec *s = issue_spec_new(c, &ip, rc);
    free(names);
    return s;
}

issue_spec *issue_spec_with_profile(acme_client *c, const issue_spec *s, const char *profile, int *rc)
{
    acme_issue_params ip;
    memset(&ip, 0, sizeof(ip));
    ip.size = sizeof(ip);
    ip.names = (const char *const *)s->names;
    ip.name_count = s->name_count;
    ip.key_type = s->key_type;
    ip.challenges = s->prefs;
    ip.challenge_count = s->pref_count;
    ip.preferred_chain = s->preferred_chain;
    ip.cert_id = s->cert_id;
    ip.profile = profile;
    return issue_spec_new(c, &ip, rc);
}
