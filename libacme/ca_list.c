/* CA failover (include/acme/ca_list.h): an ordered list of clients, one
 * per CA. A certificate is issued and renewed at the CA that issued it
 * last (kept in storage under failover/<cert-id>.json, the one key that
 * lives outside a CA's directory, since it says which CA's directory to
 * look in); when that CA fails in a way the host cannot fix, the next one
 * issues. The rule of what counts is ca_failure_not_ours(). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <acme/ca_list.h>

#include "buf.h"
#include "ca_list_int.h"
#include "event_internal.h"
#include "internal.h"
#include "issue_spec.h"
#include "storage_etcd.h"
#include "util.h"

#define RECORD_CAP (64 * 1024)

typedef struct ca_entry {
    char *name;
    char *eab_kid;
    char *eab_hmac;
    acme_client *c;
    int account_ready;
} ca_entry;

struct acme_ca_list {
    ca_entry *v;
    size_t n, cap;
    char **contacts;
    size_t contact_count;
    int agree_tos;
    char *last_error;
    char *status;
    json_t *attempts;   /* of the call in progress: [{"ca","error"}] */
};

static int name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 64 || *s == '.')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static void set_error(acme_ca_list *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(acme_ca_list *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    free(l->last_error);
    l->last_error = s;
}

ACME_EXPORT int acme_ca_list_new(const acme_account_params *account, acme_ca_list **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    if (account && account->size < offsetof(acme_account_params, eab_kid))
        return ACME_E_INVALID_ARG;
    acme_ca_list *l = calloc(1, sizeof(*l));
    if (!l)
        return ACME_E_NOMEM;
    if (account) {
        l->agree_tos = account->agree_tos;
        if (account->contact_count) {
            l->contacts = calloc(account->contact_count, sizeof(char *));
            if (!l->contacts) {
                free(l);
                return ACME_E_NOMEM;
            }
            for (size_t i = 0; i < account->contact_count; i++) {
                l->contacts[i] = strdup(account->contacts[i] ? account->contacts[i] : "");
                if (!l->contacts[i]) {
                    l->contact_count = i;
                    acme_ca_list_free(l);
                    return ACME_E_NOMEM;
                }
            }
            l->contact_count = account->contact_count;
        }
    }
    *out = l;
    return ACME_OK;
}

static void entry_clear(ca_entry *e)
{
    free(e->name);
    free(e->eab_kid);
    if (e->eab_hmac) {
        explicit_bzero(e->eab_hmac, strlen(e->eab_hmac));
        free(e->eab_hmac);
    }
    acme_client_free(e->c);
}

ACME_EXPORT void acme_ca_list_free(acme_ca_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        entry_clear(&l->v[i]);
    free(l->v);
    for (size_t i = 0; i < l->contact_count; i++)
        free(l->contacts[i]);
    free(l->contacts);
    free(l->last_error);
    free(l->status);
    json_decref(l->attempts);
    free(l);
}

ACME_EXPORT int acme_ca_list_add(acme_ca_list *l, const acme_ca_params *p, acme_client *c)
{
    if (!l || !p || !c || p->size < offsetof(acme_ca_params, eab_hmac_key) + sizeof(p->eab_hmac_key)) {
        acme_client_free(c);
        if (l)
            set_error(l, "ca list: add needs a list, its params (size set) and a client");
        return ACME_E_INVALID_ARG;
    }
    int rc = ACME_E_INVALID_ARG;
    if (!name_ok(p->name))
        set_error(l, "ca list: CA name \"%s\" must be 1-64 of [A-Za-z0-9._-], not starting with '.'",
                  p->name ? p->name : "(null)");
    else if (!p->eab_kid != !p->eab_hmac_key)
        set_error(l, "ca list: CA %s: give both eab_kid and eab_hmac_key, or neither", p->name);
    else
        rc = ACME_OK;
    for (size_t i = 0; rc == ACME_OK && i < l->n; i++) {
        if (!strcmp(l->v[i].name, p->name)) {
            set_error(l, "ca list: CA name %s is given twice; name each CA once", p->name);
            rc = ACME_E_INVALID_ARG;
        } else if (!strcmp(l->v[i].c->directory_url, c->directory_url)) {
            set_error(l, "ca list: CA %s has the same directory URL as %s (%s); list each CA once", p->name,
                      l->v[i].name, c->directory_url);
            rc = ACME_E_INVALID_ARG;
        }
    }
    if (rc) {
        acme_client_free(c);
        return rc;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        ca_entry *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            acme_client_free(c);
            return ACME_E_NOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    /* One order lock per certificate for the whole list, named by the
     * first CA: a certificate is ordered once, whatever CA each node is
     * at (doc/cluster.md "CA failover"). */
    const char *scope = l->n ? l->v[0].c->ca_id : c->ca_id;
    free(c->lock_ca_id);
    c->lock_ca_id = strdup(scope);
    if (!c->lock_ca_id || (c->etcd_storage && storage_etcd_set_lock_scope(c->etcd_storage, scope))) {
        acme_client_free(c);
        return ACME_E_NOMEM;
    }
    ca_entry *e = &l->v[l->n];
    memset(e, 0, sizeof(*e));
    e->c = c;
    e->name = strdup(p->name);
    e->eab_kid = p->eab_kid ? strdup(p->eab_kid) : NULL;
    e->eab_hmac = p->eab_hmac_key ? strdup(p->eab_hmac_key) : NULL;
    if (!e->name || (p->eab_kid && (!e->eab_kid || !e->eab_hmac))) {
        entry_clear(e);
        return ACME_E_NOMEM;
    }
    l->n++;
    free(l->last_error);
    l->last_error = NULL;
    return ACME_OK;
}

ACME_EXPORT size_t acme_ca_list_count(const acme_ca_list *l) { return l ? l->n : 0; }

ACME_EXPORT acme_client *acme_ca_list_client(acme_ca_list *l, size_t i)
{
    return l && i < l->n ? l->v[i].c : NULL;
}

ACME_EXPORT const char *acme_ca_list_name(const acme_ca_list *l, size_t i)
{
    return l && i < l->n ? l->v[i].name : NULL;
}

ACME_EXPORT const char *acme_ca_list_last_error(const acme_ca_list *l)
{
    return l && l->last_error ? l->last_error : "";
}

/* ---- what is not ours to fix ---- */

static int type_is(const acme_problem *p, const char *suffix)
{
    const char *t = p ? acme_problem_type(p) : NULL;
    const char *pre = "urn:ietf:params:acme:error:";
    return t && !strncmp(t, pre, strlen(pre)) && !strcmp(t + strlen(pre), suffix);
}

static int problem_not_ours(const acme_problem *p)
{
    if (!p)
        return 0;
    /* The CA is down or limits us (a paused account comes as rateLimited
     * too: another CA is the way to a certificate meanwhile), or refuses
     * the names by its policy (CAA naming other CAs included). */
    static const char *const types[] = {"rateLimited", "rejectedIdentifier", "unsupportedIdentifier", "caa",
                                        "serverInternal"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (type_is(p, types[i]))
            return 1;
    if (acme_problem_status(p) >= 500)
        return 1;
    for (size_t i = 0; i < acme_problem_subproblem_count(p); i++)
        if (problem_not_ours(acme_problem_subproblem(p, i)))
            return 1;
    return 0;
}

/* Whether the failure of the last call on c is one another CA may not
 * have: outage, rate limit, policy refusal, server errors that outlasted
 * the order's own retries. A failed validation, a callback, storage, a
 * configuration (trust, EAB, terms) or the back-off schedule are the
 * host's to fix, and another CA would fail the same way or must not be
 * asked. */
int ca_list_not_ours(int rc, const acme_problem *p)
{
    switch (rc) {
    case ACME_E_NETWORK:
    case ACME_E_TIMEOUT:
        return 1;
    case ACME_E_HTTP:
        return !p || problem_not_ours(p);
    case ACME_E_PROBLEM:
    case ACME_E_ORDER_FAILED:
        return problem_not_ours(p);
    default:
        return 0;
    }
}

static int ca_failure_not_ours(acme_client *c, int rc) { return ca_list_not_ours(rc, c->problem); }

/* ---- the stored choice ---- */

static char *record_key(const char *cert_id) { return xasprintf("failover/%s.json", cert_id); }

static json_t *record_load(acme_ca_list *l, const char *cert_id)
{
    acme_client *c = l->v[0].c;
    if (!c->storage.get)
        return NULL;
    char *key = record_key(cert_id);
    acme_buf b;
    buf_init(&b, RECORD_CAP);
    json_t *o = NULL;
    if (key && c->storage.get(c->storage_ud, key, &b) == ACME_OK)
        o = json_parse_object(b.data, b.len);
    buf_clear(&b);
    free(key);
    if (o && !json_str(o, "directory")) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static void record_save(acme_ca_list *l, const char *cert_id, size_t at, const char *reason, int failover);
static size_t find_directory(const acme_ca_list *l, const char *url);

void ca_list_record(acme_ca_list *l, const char *cert_id, size_t at, const char *reason, int failover)
{
    json_decref(l->attempts);
    l->attempts = NULL;
    record_save(l, cert_id, at, reason, failover);
}

int ca_list_recorded(acme_ca_list *l, const char *cert_id, size_t *at, char **reason)
{
    json_t *rec = l->n ? record_load(l, cert_id) : NULL;
    size_t i = rec ? find_directory(l, json_str(rec, "directory")) : l->n;
    if (i < l->n && reason) {
        const char *r = json_str(rec, "reason");
        *reason = r ? strdup(r) : NULL;
    }
    json_decref(rec);
    if (i >= l->n)
        return -1;
    *at = i;
    return 0;
}

void ca_list_account_params(const acme_ca_list *l, size_t i, acme_account_params *out)
{
    memset(out, 0, sizeof(*out));
    out->size = sizeof(*out);
    out->contacts = (const char *const *)l->contacts;
    out->contact_count = l->contact_count;
    out->agree_tos = l->agree_tos;
    if (i < l->n) {
        out->eab_kid = l->v[i].eab_kid;
        out->eab_hmac_key = l->v[i].eab_hmac;
    }
}

static void record_save(acme_ca_list *l, const char *cert_id, size_t at, const char *reason, int failover)
{
    acme_client *c = l->v[0].c;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:b,s:o}", "cert_id", cert_id, "ca", l->v[at].name, "directory",
                          l->v[at].c->directory_url, "reason", reason, "since", (json_int_t)time(NULL), "failover",
                          failover, "attempts", l->attempts ? json_incref(l->attempts) : json_array());
    char *text = o ? json_text(o) : NULL;
    char *key = record_key(cert_id);
    int rc = text && key && c->storage.put ? c->storage.put(c->storage_ud, key, text, strlen(text), 0)
                                           : ACME_E_NOMEM;
    if (rc)
        alog(l->v[at].c, ACME_LOG_WARNING, "ca list: could not keep that %s comes from %s (%s); after a restart "
             "the next renewal starts at the first CA again", cert_id, l->v[at].name, acme_strerror(rc));
    free(text);
    free(key);
    json_decref(o);
}

static size_t find_directory(const acme_ca_list *l, const char *url)
{
    for (size_t i = 0; url && i < l->n; i++)
        if (!strcmp(l->v[i].c->directory_url, url))
            return i;
    return l->n;
}

/* ---- trying the CAs ---- */

static int ensure_account(acme_ca_list *l, ca_entry *e)
{
    if (e->account_ready)
        return ACME_OK;
    int rc = acme_account_find(e->c);
    if (rc == ACME_E_NO_ACCOUNT) {
        acme_account_params ap = {.size = sizeof ap, .contacts = (const char *const *)l->contacts,
                                  .contact_count = l->contact_count, .agree_tos = l->agree_tos,
                                  .eab_kid = e->eab_kid, .eab_hmac_key = e->eab_hmac};
        rc = acme_account_register(e->c, &ap);
    }
    e->account_ready = rc == ACME_OK;
    return rc;
}

static void note_attempt(acme_ca_list *l, size_t i, const char *error)
{
    if (!l->attempts)
        l->attempts = json_array();
    json_array_append_new(l->attempts, json_pack("{s:s,s:s}", "ca", l->v[i].name, "error", error));
}

static void begin(acme_ca_list *l)
{
    json_decref(l->attempts);
    l->attempts = json_array();
    free(l->last_error);
    l->last_error = NULL;
}

/* The sentence of every failed CA, in order. */
static void attempts_error(acme_ca_list *l, const char *tail)
{
    acme_buf b;
    buf_init(&b, 0);
    size_t i;
    json_t *a;
    json_array_foreach(l->attempts, i, a) {
        if (i)
            buf_append_str(&b, "; ");
        buf_append_str(&b, "CA ");
        buf_append_str(&b, json_str(a, "ca"));
        buf_append_str(&b, ": ");
        buf_append_str(&b, json_str(a, "error"));
    }
    if (tail)
        buf_append_str(&b, tail);
    buf_append(&b, "", 1);
    free(l->last_error);
    l->last_error = buf_steal(&b, NULL);
    buf_clear(&b);
}

/* Issue p at CAs from start on (start first, then the rest in list
 * order), skipping skip. Returns the rc of the last CA tried; *at: the
 * CA that issued. */
static int issue_from(acme_ca_list *l, const acme_issue_params *p, const char *cert_id, size_t start, size_t skip,
                      size_t *at, int *failover)
{
    int rc = ACME_E_STATE;
    size_t tried = 0;
    for (size_t k = 0; k < l->n; k++) {
        size_t i = k == 0 ? start : (k <= start ? k - 1 : k);
        if (i == skip)
            continue;
        ca_entry *e = &l->v[i];
        if (tried)
            alog(e->c, ACME_LOG_WARNING, "ca list: %s: trying CA %s (%s) after %s", cert_id, e->name,
                 e->c->directory_url, acme_ca_list_last_error(l));
        tried++;
        rc = ensure_account(l, e);
        if (rc == ACME_OK)
            rc = acme_issue(e->c, p);
        if (rc == ACME_OK || rc == ACME_E_CALLBACK) {
            *at = i;
            return rc;
        }
        const char *why = acme_client_last_error(e->c);
        note_attempt(l, i, *why ? why : acme_strerror(rc));
        if (!ca_failure_not_ours(e->c, rc)) {
            attempts_error(l, "; not a failure another CA can help with: fix it, then try again");
            return rc;
        }
        *failover = 1;
        attempts_error(l, NULL);
    }
    attempts_error(l, "; every CA in the list failed");
    return rc;
}

/* from: the CA tried first (where a failover left from). */
static void saved(acme_ca_list *l, const char *cert_id, size_t from, size_t at, int failover,
                  const char *plain_reason)
{
    char *reason = failover ? xasprintf("failed over to %s: %s", l->v[at].name, acme_ca_list_last_error(l))
                            : strdup(plain_reason);
    record_save(l, cert_id, at, reason ? reason : "", failover);
    if (failover) {
        alog(l->v[at].c, ACME_LOG_WARNING, "ca list: %s issued by CA %s (%s)", cert_id, l->v[at].name,
             reason ? reason : "");
        event_failover(l->v[at].c, cert_id, l->v[at].name, l->v[from].c->directory_url, l->v[from].name,
                       reason ? reason : "");
    }
    free(reason);
    free(l->last_error);
    l->last_error = NULL;
}

ACME_EXPORT int acme_ca_list_issue(acme_ca_list *l, const acme_issue_params *p)
{
    if (!l || !p)
        return ACME_E_INVALID_ARG;
    if (!l->n) {
        set_error(l, "ca list: no CA in the list; add one with acme_ca_list_add");
        return ACME_E_STATE;
    }
    begin(l);
    /* The id the certificate is stored under, checked like acme_issue does. */
    int rc;
    issue_spec *spec = issue_spec_new(l->v[0].c, p, &rc);
    if (!spec) {
        set_error(l, "%s", acme_client_last_error(l->v[0].c));
        return rc;
    }
    json_t *rec = record_load(l, spec->cert_id);
    size_t start = find_directory(l, json_str(rec, "directory"));
    if (start == l->n)
        start = 0;
    json_decref(rec);
    size_t at = 0;
    int failover = 0;
    rc = issue_from(l, p, spec->cert_id, start, l->n, &at, &failover);
    if (rc == ACME_OK || rc == ACME_E_CALLBACK)
        saved(l, spec->cert_id, start, at, failover, start ? "issued by the CA it came from before" : "the first CA in the list");
    issue_spec_free(spec);
    return rc;
}

/* The CA holding cert_id: the stored choice, else the first CA in list
 * order that has it stored. l->n when none. */
static size_t holder(acme_ca_list *l, const char *cert_id, json_t **rec)
{
    *rec = record_load(l, cert_id);
    size_t i = find_directory(l, json_str(*rec, "directory"));
    if (i < l->n)
        return i;
    for (i = 0; i < l->n; i++) {
        acme_certificate *cert = NULL;
        if (certificate_load(l->v[i].c, cert_id, &cert) == ACME_OK) {
            certificate_free(cert);
            return i;
        }
        result_reset(l->v[i].c);
    }
    return l->n;
}

ACME_EXPORT int acme_ca_list_renew(acme_ca_list *l, const char *cert_id, int force, int *renewed)
{
    if (renewed)
        *renewed = 0;
    if (!l || !cert_id)
        return ACME_E_INVALID_ARG;
    if (!l->n) {
        set_error(l, "ca list: no CA in the list; add one with acme_ca_list_add");
        return ACME_E_STATE;
    }
    begin(l);
    json_t *rec = NULL;
    size_t cur = holder(l, cert_id, &rec);
    if (cur == l->n) {
        json_decref(rec);
        set_error(l, "renew: no stored certificate \"%s\" at any CA of the list; issue it first", cert_id);
        return ACME_E_NOT_FOUND;
    }
    ca_entry *e = &l->v[cur];
    int did = 0;
    /* The account the certificate was ordered with is in storage: a call
     * that finds nothing due must not need the network (nor fail over
     * because the CA is down while nothing is due). */
    int rc = acme_renew(e->c, cert_id, force, &did);
    if (rc == ACME_E_NO_ACCOUNT && ensure_account(l, e) == ACME_OK)
        rc = acme_renew(e->c, cert_id, force, &did);
    if (rc == ACME_OK || rc == ACME_E_CALLBACK) {
        if (renewed)
            *renewed = did;
        /* Renewed where it was: the stored choice and its reason stand. */
        if (!rec)
            saved(l, cert_id, cur, cur, 0, "the first CA in the list that has it");
        json_decref(rec);
        return rc;
    }
    json_decref(rec);
    const char *why = acme_client_last_error(e->c);
    note_attempt(l, cur, *why ? why : acme_strerror(rc));
    if (!ca_failure_not_ours(e->c, rc) || l->n == 1) {
        attempts_error(l, l->n == 1 ? NULL : "; not a failure another CA can help with: fix it, then try again");
        return rc;
    }
    attempts_error(l, NULL);
    /* The params the certificate was ordered with, from where it is stored. */
    acme_certificate *cert = NULL;
    int lrc = certificate_load(e->c, cert_id, &cert);
    issue_spec *spec = lrc ? NULL : issue_spec_from_stored(e->c, cert, &lrc);
    certificate_free(cert);
    if (!spec) {
        attempts_error(l, "; and its stored params could not be read to order it elsewhere");
        return rc;
    }
    acme_issue_params ip = {.size = sizeof ip, .names = (const char *const *)spec->names,
                            .name_count = spec->name_count, .key_type = spec->key_type,
                            .challenges = spec->prefs, .challenge_count = spec->pref_count,
                            .preferred_chain = spec->preferred_chain, .cert_id = spec->cert_id,
                            .profile = spec->profile};
    size_t at = 0;
    int failover = 1;
    rc = issue_from(l, &ip, cert_id, cur + 1 < l->n ? cur + 1 : 0, cur, &at, &failover);
    if (rc == ACME_OK || rc == ACME_E_CALLBACK) {
        if (renewed)
            *renewed = 1;
        saved(l, cert_id, cur, at, 1, NULL);
    }
    issue_spec_free(spec);
    return rc;
}

ACME_EXPORT const char *acme_ca_list_status_json(acme_ca_list *l, const char *cert_id)
{
    if (!l || !cert_id || !l->n)
        return NULL;
    json_t *rec = record_load(l, cert_id);
    if (!rec)
        return NULL;
    size_t i = find_directory(l, json_str(rec, "directory"));
    /* The name is the list's today; the stored one is the name then. */
    if (i < l->n)
        json_object_set_new(rec, "ca", json_string(l->v[i].name));
    json_object_set_new(rec, "in_list", json_boolean(i < l->n));
    free(l->status);
    l->status = json_text(rec);
    json_decref(rec);
    return l->status;
}
