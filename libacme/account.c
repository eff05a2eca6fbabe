/* The account: key, registration, lookup, contacts, deactivation, key
 * rollover. The account key is stored before the CA ever sees it, so a
 * crash can never leave an account whose key we lost. */
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "account_run.h"
#include "internal.h"
#include "reentry.h"

#define KEY_REL "account/key.pem"
#define NEXT_KEY_REL "account/key-next.pem"
#define ACCOUNT_REL "account/account.json"

void account_forget(acme_client *c)
{
    key_free(c->account_key);
    c->account_key = NULL;
    free(c->account_url);
    free(c->account_status);
    free(c->thumbprint);
    c->account_url = c->account_status = c->thumbprint = NULL;
    for (size_t i = 0; i < c->contact_count; i++)
        free(c->contacts[i]);
    free(c->contacts);
    c->contacts = NULL;
    c->contact_count = 0;
}

static int load_key(acme_client *c, const char *rel, acme_key **out)
{
    acme_buf b;
    buf_init(&b, 64 * 1024);
    b.secret = 1;
    int rc = store_get(c, rel, &b);
    if (rc == ACME_OK) {
        rc = key_from_pem(b.data, b.len, out);
        if (rc)
            rc = client_fail(c, rc, "account: the stored key %s/%s cannot be read (%s); restore it from a "
                      "backup — a new key would be a new account", c->ca_id, rel, acme_strerror(rc));
    }
    buf_clear(&b);
    return rc;
}

static int store_key(acme_client *c, const char *rel, const acme_key *k)
{
    char *pem = NULL;
    int rc = key_to_pem(k, &pem);
    if (rc)
        return client_fail(c, rc, "account: could not encode the key (%s)", acme_strerror(rc));
    rc = store_put(c, rel, pem, strlen(pem), ACME_STORAGE_SECRET);
    secure_free_str(pem);
    return rc;
}

int account_key_load(acme_client *c)
{
    if (c->account_key)
        return ACME_OK;
    return load_key(c, KEY_REL, &c->account_key);
}

int account_key_adopt(acme_client *c, acme_key *k)
{
    int rc = store_key(c, KEY_REL, k);
    if (rc) {
        key_free(k);
        return rc;
    }
    key_free(c->account_key);
    c->account_key = k;
    return ACME_OK;
}

int account_settle_rollover(acme_client *c);

/* Load the stored key, or make and store a new one when allowed. */
static int key_ready(acme_client *c, int create)
{
    if (c->account_key)
        return ACME_OK;
    int rc = load_key(c, KEY_REL, &c->account_key);
    if (rc != ACME_E_NOT_FOUND)
        return rc;
    if (!create)
        return client_fail(c, ACME_E_NO_ACCOUNT, "account: no account key stored for %s; "
                    "register an account first", c->directory_url);
    alog(c, ACME_LOG_INFO, "account: generating a new %s account key", acme_key_type_name(c->account_key_type));
    acme_key *k = NULL;
    rc = key_generate(c->account_key_type, &k);
    if (rc)
        return client_fail(c, rc, "account: could not generate a %s key (%s)",
                    acme_key_type_name(c->account_key_type), acme_strerror(rc));
    rc = store_key(c, KEY_REL, k);
    if (rc) {
        key_free(k);
        return rc;
    }
    c->account_key = k;
    return ACME_OK;
}

static int save_account(acme_client *c)
{
    json_t *o = json_pack("{s:s}", "url", c->account_url);
    char *text = o ? json_text(o) : NULL;
    json_decref(o);
    if (!text)
        return ACME_E_NOMEM;
    int rc = store_put(c, ACCOUNT_REL, text, strlen(text), 0);
    free(text);
    return rc;
}

/* Take url/status/contacts from a server's account object. */
static int adopt_account(acme_client *c, const char *url, json_t *acct)
{
    if (url) {
        char *u = strdup(url);
        if (!u)
            return ACME_E_NOMEM;
        free(c->account_url);
        c->account_url = u;
    }
    const char *st = json_str(acct, "status");
    free(c->account_status);
    c->account_status = strdup(st ? st : "valid");
    json_t *contact = json_object_get(acct, "contact");
    for (size_t i = 0; i < c->contact_count; i++)
        free(c->contacts[i]);
    free(c->contacts);
    c->contacts = NULL;
    c->contact_count = 0;
    if (json_is_array(contact) && json_array_size(contact)) {
        c->contacts = calloc(json_array_size(contact), sizeof(char *));
        if (!c->contacts)
            return ACME_E_NOMEM;
        for (size_t i = 0; i < json_array_size(contact); i++) {
            json_t *v = json_array_get(contact, i);
            if (json_is_string(v) && (c->contacts[c->contact_count] = strdup(json_string_value(v))))
                c->contact_count++;
        }
    }
    return c->account_status ? ACME_OK : ACME_E_NOMEM;
}

static int url_is_plain_ascii(const char *u)
{
    for (; *u; u++)
        if ((unsigned char)*u <= 0x20 || (unsigned char)*u >= 0x7f)
            return 0;
    return 1;
}

/* The CA's answer to newAccount (200 = existing, 201 = created). */
int account_take_answer(acme_client *c, const char *step, const acme_http_response *resp, json_t *acct)
{
    int rc = ACME_OK;
    {
        const char *loc = http_response_header(resp, "Location");
        if (!loc || strncmp(loc, "https://", 8) != 0)
            rc = client_fail(c, ACME_E_PROTOCOL, "%s: the CA sent no https Location for the account", step);
        else if (!url_is_plain_ascii(loc))
            /* A URL is ASCII (RFC 3986); anything else could not even be
             * stored as JSON text (found by fuzz_acme_flow). */
            rc = client_fail(c, ACME_E_PROTOCOL,
                             "%s: the CA sent an account URL with bytes that are not printable ASCII; "
                             "the CA is at fault, report it to the CA", step);
        else if ((rc = adopt_account(c, loc, acct)) == ACME_OK)
            rc = save_account(c);
        if (rc == ACME_OK)
            alog(c, ACME_LOG_INFO, "account: %s %s (%s)", resp->status == 201 ? "created" : "found",
                 c->account_url, c->account_status);
    }
    return rc;
}

/* POST newAccount signed with the jwk. */
static int new_account(acme_client *c, json_t *payload, const char *step)
{
    char *text = json_text(payload);
    if (!text)
        return ACME_E_NOMEM;
    acme_http_response resp;
    http_response_init(&resp, c->max_response);
    json_t *acct = NULL;
    int rc = net_post(c, step, c->url_new_account, text, c->account_key, &resp, &acct);
    free(text);
    if (rc == ACME_OK)
        rc = account_take_answer(c, step, &resp, acct);
    json_decref(acct);
    http_response_clear(&resp);
    return rc;
}

static int find_existing(acme_client *c)
{
    json_t *p = json_pack("{s:b}", "onlyReturnExisting", 1);
    if (!p)
        return ACME_E_NOMEM;
    int rc = new_account(c, p, "account lookup");
    json_decref(p);
    return rc;
}

/* A rollover interrupted between the CA's answer and our rename leaves
 * key-next.pem behind: find out which key the CA knows and keep that one. */
int account_settle_rollover(acme_client *c)
{
    acme_key *next = NULL;
    int rc = load_key(c, NEXT_KEY_REL, &next);
    if (rc == ACME_E_NOT_FOUND)
        return ACME_OK;
    if (rc)
        return rc;
    rc = find_existing(c);
    if (rc == ACME_E_NO_ACCOUNT) {
        result_reset(c);
        keep_problem(c, NULL);
        key_free(c->account_key);
        c->account_key = next;
        next = NULL;
        rc = find_existing(c);
        if (rc == ACME_OK)
            rc = store_key(c, KEY_REL, c->account_key);
    }
    key_free(next);
    if (rc == ACME_OK)
        rc = store_remove(c, NEXT_KEY_REL);
    return rc;
}

int account_load_local(acme_client *c)
{
    if (c->account_key && c->account_url)
        return ACME_OK;
    int rc = key_ready(c, 0);
    if (rc)
        return rc;
    acme_buf b;
    buf_init(&b, 64 * 1024);
    /* key-next.pem means an interrupted rollover: settle it (rare, blocking).
     * Only its presence matters here, but what was read is a private key. */
    b.secret = 1;
    rc = store_get(c, NEXT_KEY_REL, &b);
    buf_clear(&b);
    b.secret = 0;
    if (rc == ACME_OK)
        return account_ensure(c);
    result_reset(c);
    rc = store_get(c, ACCOUNT_REL, &b);
    if (rc == ACME_OK) {
        json_t *o = json_parse_object(b.data, b.len);
        const char *u = o ? json_str(o, "url") : NULL;
        if (u && strncmp(u, "https://", 8) == 0) {
            c->account_url = strdup(u);
            free(c->account_status);
            c->account_status = strdup("valid");
        }
        json_decref(o);
    }
    buf_clear(&b);
    if (rc && rc != ACME_E_NOT_FOUND)
        return rc;
    result_reset(c);
    return c->account_url ? ACME_OK : ACME_E_NOT_FOUND;
}

int account_take_lookup(acme_client *c, const acme_http_response *resp, json_t *acct)
{
    const char *loc = http_response_header(resp, "Location");
    if (!loc || strncmp(loc, "https://", 8) != 0)
        return client_fail(c, ACME_E_PROTOCOL, "account lookup: the CA sent no https Location for the account");
    int rc = adopt_account(c, loc, acct);
    if (!rc)
        rc = save_account(c);
    return rc;
}

int account_ensure(acme_client *c)
{
    if (c->account_key && c->account_url)
        return ACME_OK;
    int rc = net_directory(c);
    if (!rc)
        rc = key_ready(c, 0);
    if (!rc)
        rc = account_settle_rollover(c);
    if (rc || c->account_url)
        return rc;
    /* The URL is cached in storage; without it, ask the CA. */
    acme_buf b;
    buf_init(&b, 64 * 1024);
    rc = store_get(c, ACCOUNT_REL, &b);
    if (rc == ACME_OK) {
        json_t *o = json_parse_object(b.data, b.len);
        const char *u = o ? json_str(o, "url") : NULL;
        if (u && strncmp(u, "https://", 8) == 0) {
            c->account_url = strdup(u);
            c->account_status = strdup("valid");
        }
        json_decref(o);
    }
    buf_clear(&b);
    if (c->account_url)
        return ACME_OK;
    return find_existing(c);
}

ACME_EXPORT int acme_directory_fetch(acme_client *c)
{
    int refused = reentry_refused(c, "acme_directory_fetch");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    return net_directory(c);
}

ACME_EXPORT const char *acme_directory_terms(acme_client *c)
{
    if (c)
        result_reset(c);
    if (!c || net_directory(c))
        return NULL;
    return c->terms;
}

ACME_EXPORT int acme_directory_eab_required(acme_client *c)
{
    if (c)
        result_reset(c);
    if (!c || net_directory(c))
        return 0;
    return c->eab_required;
}

/* The params a host passes, checked member by member so the sentence
 * names the one mistake (a size left 0 is the usual one). who starts the
 * sentence ("account", "engine"). */
int account_params_check(acme_client *c, const char *who, const acme_account_params *p)
{
    if (!p)
        return ACME_OK;
    size_t need = offsetof(acme_account_params, eab_hmac_key) + sizeof(p->eab_hmac_key);
    if (p->size < need)
        return client_fail(c, ACME_E_INVALID_ARG, "%s: acme_account_params.size is %zu, at least %zu expected: "
                           "set .size = sizeof(acme_account_params)", who, p->size, need);
    if (p->contact_count && !p->contacts)
        return client_fail(c, ACME_E_INVALID_ARG, "%s: acme_account_params.contact_count is %zu but .contacts is "
                           "NULL", who, p->contact_count);
    for (size_t i = 0; i < p->contact_count; i++)
        if (!p->contacts[i])
            return client_fail(c, ACME_E_INVALID_ARG, "%s: acme_account_params.contacts[%zu] is NULL (%zu "
                               "contacts counted)", who, i, p->contact_count);
    if (!p->eab_kid != !p->eab_hmac_key)
        return client_fail(c, ACME_E_INVALID_ARG, "%s: acme_account_params.%s is set but .%s is not: external "
                           "account binding needs both (or neither)", who, p->eab_kid ? "eab_kid" : "eab_hmac_key",
                           p->eab_kid ? "eab_hmac_key" : "eab_kid");
    return ACME_OK;
}

/* Whether an account may be created with p: the user agreed to the
 * terms (if the CA has any) and EAB is given (if the CA requires it).
 * Otherwise we may still find one that already exists; we never create one. */
int account_may_create(const acme_client *c, const acme_account_params *p)
{
    int agree = p && p->agree_tos;
    int have_eab = p && p->eab_kid;
    return !((c->terms && !agree) || (c->eab_required && !have_eab));
}

/* Why no account could be created after the lookup found none. */
int account_refusal(acme_client *c, const acme_account_params *p)
{
    result_reset(c);
    if (c->terms && !(p && p->agree_tos))
        return client_fail(c, ACME_E_TOS_REQUIRED, "account: the CA's terms of service (%s) must be "
                    "agreed to before an account is created; read them and set agree_tos", c->terms);
    return client_fail(c, ACME_E_EAB_REQUIRED, "account: %s requires external account binding; "
                "get a key id and HMAC key from the CA and pass eab_kid and eab_hmac_key",
                c->directory_url);
}

int account_payload(acme_client *c, const acme_account_params *p, char **out)
{
    *out = NULL;
    json_t *payload = json_object();
    if (!payload)
        return ACME_E_NOMEM;
    if (p && p->agree_tos)
        json_object_set_new(payload, "termsOfServiceAgreed", json_true());
    if (p && p->contact_count) {
        json_t *arr = json_array();
        for (size_t i = 0; i < p->contact_count; i++)
            json_array_append_new(arr, json_string(p->contacts[i]));
        json_object_set_new(payload, "contact", arr);
    }
    if (p && p->eab_kid) {
        unsigned char *mac = NULL;
        size_t maclen = 0;
        int rc = b64url_decode(p->eab_hmac_key, strlen(p->eab_hmac_key), &mac, &maclen);
        if (rc || maclen == 0) {
            free(mac);
            json_decref(payload);
            return client_fail(c, ACME_E_INVALID_ARG, "account: eab_hmac_key is not base64url; copy it exactly as the CA gave it");
        }
        json_t *eab = NULL;
        rc = jws_eab(c->account_key, p->eab_kid, mac, maclen, c->url_new_account, &eab);
        secure_free(mac, maclen);
        if (rc) {
            json_decref(payload);
            return client_fail(c, rc, "account: could not sign the external account binding (%s)", acme_strerror(rc));
        }
        json_object_set_new(payload, "externalAccountBinding", eab);
    }
    *out = json_text(payload);
    json_decref(payload);
    return *out ? ACME_OK : ACME_E_NOMEM;
}

/* The blocking calls are the account step (account_run.c) run to the end:
 * the engine's acme_engine_set_account runs the same one. */
ACME_EXPORT int acme_account_register(acme_client *c, const acme_account_params *p)
{
    int refused = reentry_refused(c, "acme_account_register");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    int rc = account_params_check(c, "account", p);
    if (rc)
        return rc;
    return account_run_to_end(c, p, ACCOUNT_REGISTER);
}

ACME_EXPORT int acme_account_find(acme_client *c)
{
    int refused = reentry_refused(c, "acme_account_find");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    return account_run_to_end(c, NULL, ACCOUNT_FIND);
}

/* POST to the account URL and take the updated account object. */
static int update_account(acme_client *c, json_t *payload, const char *step)
{
    char *text = json_text(payload);
    if (!text)
        return ACME_E_NOMEM;
    json_t *acct = NULL;
    int rc = net_post(c, step, c->account_url, text, NULL, NULL, &acct);
    free(text);
    if (rc == ACME_OK)
        rc = adopt_account(c, NULL, acct);
    json_decref(acct);
    return rc;
}

ACME_EXPORT int acme_account_update_contacts(acme_client *c, const char *const *contacts, size_t n)
{
    int refused = reentry_refused(c, "acme_account_update_contacts");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    if (n && !contacts)
        return client_fail(c, ACME_E_INVALID_ARG, "account: update_contacts: n is %zu but contacts is NULL", n);
    int rc = account_ensure(c);
    if (rc)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(contacts[i] ? contacts[i] : ""));
    json_t *p = json_pack("{s:o}", "contact", arr);
    if (!p)
        return ACME_E_NOMEM;
    rc = update_account(c, p, "account update");
    json_decref(p);
    return rc;
}

ACME_EXPORT int acme_account_deactivate(acme_client *c)
{
    int refused = reentry_refused(c, "acme_account_deactivate");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    int rc = account_ensure(c);
    if (rc)
        return rc;
    json_t *p = json_pack("{s:s}", "status", "deactivated");
    if (!p)
        return ACME_E_NOMEM;
    rc = update_account(c, p, "account deactivation");
    json_decref(p);
    if (rc == ACME_OK)
        alog(c, ACME_LOG_INFO, "account: %s deactivated", c->account_url);
    return rc;
}

ACME_EXPORT int acme_account_rollover(acme_client *c, acme_key_type new_type)
{
    int refused = reentry_refused(c, "acme_account_rollover");
    if (refused)
        return refused;
    if (!c || new_type < ACME_KEY_DEFAULT || new_type > ACME_KEY_ED25519)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    int rc = account_ensure(c);
    if (rc)
        return rc;
    if (!c->url_key_change)
        return client_fail(c, ACME_E_UNSUPPORTED, "account rollover: the CA's directory has no keyChange URL");
    acme_key *next = NULL;
    rc = key_generate(new_type == ACME_KEY_DEFAULT ? ACME_KEY_EC_P256 : new_type, &next);
    if (rc)
        return client_fail(c, rc, "account rollover: could not generate the new key (%s)", acme_strerror(rc));
    /* The new key is on disk before the CA learns of it. */
    rc = store_key(c, NEXT_KEY_REL, next);
    char *inner = NULL, *outer_payload = NULL;
    json_t *inner_payload = NULL;
    if (!rc) {
        inner_payload = json_pack("{s:s,s:o}", "account", c->account_url, "oldKey", key_jwk(c->account_key));
        char *ip = inner_payload ? json_text(inner_payload) : NULL;
        rc = ip ? jws_sign(next, NULL, NULL, c->url_key_change, ip, &inner) : ACME_E_NOMEM;
        free(ip);
        if (rc)
            rc = client_fail(c, rc, "account rollover: could not sign with the new key (%s)", acme_strerror(rc));
    }
    if (!rc) {
        outer_payload = inner;
        inner = NULL;
        rc = net_post(c, "account rollover", c->url_key_change, outer_payload, NULL, NULL, NULL);
    }
    if (!rc) {
        rc = store_key(c, KEY_REL, next);
        if (!rc) {
            store_remove(c, NEXT_KEY_REL);
            key_free(c->account_key);
            c->account_key = next;
            next = NULL;
            free(c->thumbprint);
            c->thumbprint = NULL;
            alog(c, ACME_LOG_INFO, "account: key rolled over to %s", acme_key_type_name(new_type));
        }
    } else if (c->problem) {
        /* The CA answered and kept the old key: forget the new one. Without
         * an answer we cannot know, so key-next.pem stays for
         * settle_rollover() to resolve on the next use. */
        store_remove(c, NEXT_KEY_REL);
    }
    json_decref(inner_payload);
    free(inner);
    free(outer_payload);
    key_free(next);
    return rc;
}

ACME_EXPORT const char *acme_account_url(const acme_client *c) { return c ? c->account_url : NULL; }
ACME_EXPORT const char *acme_account_status(const acme_client *c) { return c ? c->account_status : NULL; }
ACME_EXPORT size_t acme_account_contact_count(const acme_client *c) { return c ? c->contact_count : 0; }

ACME_EXPORT const char *acme_account_contact(const acme_client *c, size_t i)
{
    return (c && i < c->contact_count) ? c->contacts[i] : NULL;
}

ACME_EXPORT const char *acme_account_thumbprint(acme_client *c)
{
    if (!c)
        return NULL;
    result_reset(c);
    if (!c->thumbprint) {
        if (!c->account_key && key_ready(c, 0))
            return NULL;
        if (key_thumbprint(c->account_key, &c->thumbprint))
            c->thumbprint = NULL;
    }
    return c->thumbprint;
}
