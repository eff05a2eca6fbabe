/* The protocol core's internal contract: the client object and the small
 * typed helpers every protocol file uses. Crypto lives behind crypto.h,
 * storage behind store.c, HTTP behind net.c. */
#ifndef ACME_INTERNAL_H
#define ACME_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <jansson.h>

#include <acme/client.h>
#include "buf.h"
#include "crypto.h"
#include "http.h"
#include "util.h"

/* ---- problem documents (error.c) ---- */
struct acme_problem {
    char *type;
    char *detail;
    int status;
    char *id_type;        /* subproblems only */
    char *id_value;
    struct acme_problem *subs;
    size_t sub_count;
};
/* Parse an RFC 7807 document; NULL if the text is not one. */
acme_problem *problem_parse(const char *json, size_t len);
acme_problem *problem_from_json(json_t *obj);
void problem_free(acme_problem *p);
/* "urn:ietf:params:acme:error:badNonce" -> 1 for suffix "badNonce". */
int problem_is(const acme_problem *p, const char *suffix);
/* One line: "type: detail [sub: dns x: type: detail; ...]". malloc'ed. */
char *problem_describe(const acme_problem *p);

/* ---- the client ---- */
struct acme_client {
    char *directory_url;
    char *ca_id;                 /* storage prefix for this CA */
    char *lock_ca_id;            /* CA failover: the ca-id order locks are named by (the list's first CA), or NULL: ca_id */

    acme_host_callbacks host;
    void *host_ud;

    acme_storage_ops storage;
    void *storage_ud;
    void *file_storage;          /* our default storage, when in use */
    void *etcd_storage;          /* the etcd storage (storage_etcd.c), when in use */
    void *storage_shim;          /* the host table's submit face made synchronous (storage_submit.c) */
    struct store_async *sa;      /* an engine's storage thread (store_async.h), or NULL */

    acme_transport_ops transport;
    void *transport_ud;
    void *curl_transport;        /* our default transport, created lazily */
    char *ca_file;
    char *ca_pem;
    size_t ca_pem_len;
    struct trust_jit *trust_jit; /* trust-anchor lookup and its cache, or NULL */
    unsigned connect_ms, total_ms;

    size_t max_response;
    unsigned poll_limit_ms;
    acme_key_type account_key_type;
    acme_log_level log_level;

    /* directory */
    int have_directory;
    char *url_new_nonce, *url_new_account, *url_new_order;
    char *url_revoke, *url_key_change, *url_renewal_info;
    char *terms;
    int eab_required;
    json_t *profiles;            /* meta.profiles, or NULL */
    json_t *dir_meta;            /* the directory's meta object, or NULL */

    char *nonce;                 /* the next Replay-Nonce to use */

    /* account */
    acme_key *account_key;
    char *account_url;
    char *account_status;
    char **contacts;
    size_t contact_count;
    char *thumbprint;

    /* results of the last public call */
    char *last_error;
    acme_problem *problem;

    /* The host callback running now ("publish", "install", "socket"...),
     * NULL outside callbacks: a call back into libacme from there is
     * refused (reentry.h). */
    const char *in_callback;
};

/* ---- results and logging (error.c, log.c) ---- */
/* Start of every public call: forget the previous error and problem. */
/* result_reset at the entry of a public call that takes no other
 * precaution; does nothing inside one of the client's callbacks. */
void result_reset_entry(acme_client *c);
void result_reset(acme_client *c);
/* Record "what failed and what to do", log it, return code. */
int client_fail(acme_client *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same, logged as a warning: for a failure the caller expects to
 * recover from (a CA refusing "replaces"). */
int client_fail_soft(acme_client *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Keep a problem as the client's last problem (takes ownership). */
void keep_problem(acme_client *c, acme_problem *p);
void alog(acme_client *c, acme_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- JSON (json.c) ---- */
/* Parse; NULL if not JSON or not an object. */
json_t *json_parse_object(const char *text, size_t len);
/* The string member, or NULL if absent or not a string. */
const char *json_str(json_t *obj, const char *key);
/* Compact text, malloc'ed. */
char *json_text(json_t *v);
/* s as a JSON string literal (quotes included) appended to b, for the
 * long ASCII texts we store (PEM): jansson escapes byte by byte, this
 * copies the runs between escapes. ACME_E_INVALID_ARG on a byte >= 0x80
 * (b then holds a partial literal: the caller starts over with jansson). */
int json_append_ascii_string(acme_buf *b, const char *s);

/* Close the etcd storage c owns, if any (storage_etcd_client.c). */
void etcd_storage_drop(acme_client *c);
/* The etcd storage's last error for a sentence, "" if none or not etcd. */
const char *etcd_storage_error(acme_client *c);

/* ---- storage keys (store.c) ---- */
/* Derive the per-CA prefix from the directory URL. */
char *store_ca_id(const char *directory_url);
/* Make sure some storage is configured (default: none -> error). */
int store_ready(acme_client *c);
/* key = "<ca_id>/<rel>". */
int store_get(acme_client *c, const char *rel, acme_buf *out);
/* A stored JSON object of at most cap bytes, or NULL when absent or
 * unreadable; never leaves an error behind (for records that are advice:
 * history, back-off, per-certificate counters). */
json_t *store_get_advice(acme_client *c, const char *rel, size_t cap);
int store_put(acme_client *c, const char *rel, const void *data, size_t len, unsigned flags);
int store_remove(acme_client *c, const char *rel);
int store_list(acme_client *c, const char *rel_prefix, acme_storage_list_cb cb, void *cbdata);
/* Order locks (store_lock.c; the contract is in include/acme/storage.h).
 * ACME_OK: held (or the table has no locks: *held 0); ACME_E_PENDING: the
 * engine's storage thread asks the table, the answer comes to object
 * through acme_engine_done's path; else the table's refusal. */
int store_lock(acme_client *c, const char *name, const void *object, int *held);
void store_unlock(acme_client *c, const char *name);
/* object no longer waits for a pending store_lock (a held answer is released)
 * or store_barrier. */
void store_lock_forget(acme_client *c, const void *object);
/* Durable writes queued to an engine's storage thread so far (0 without one). */
unsigned long long store_durable_writes(acme_client *c);
/* ACME_E_PENDING: object hears (acme_engine_done's path) once every write
 * queued so far is on the table; ACME_OK at once without a storage thread. */
int store_barrier(acme_client *c, const void *object);

/* acme_engine_done with the outcome's own sentence (engine.c): a failed
 * outcome's why (a module's reason, module_async.c) is what the order's
 * failure quotes, whatever happened on the client between the delivery
 * and the step that takes it. why NULL: acme_engine_done. */
struct acme_engine;
int engine_done_reason(struct acme_engine *e, const void *object, int result, const char *why);

/* ---- network (net.c; the resumable form is in net.h) ---- */
/* Fetch the directory once (blocking). */
int net_directory(acme_client *c);
/* Signed POST, blocking. payload NULL = POST-as-GET. key NULL = the
 * account key with kid; with a key, that key with an embedded jwk.
 * Retries badNonce. Fails with a problem (ACME_E_PROBLEM or a mapped code)
 * on status >= 400. If json is non-NULL, the body must be a JSON object
 * and is returned. If resp is non-NULL it receives the response. */
int net_post(acme_client *c, const char *step, const char *url, const char *payload,
             const acme_key *key, acme_http_response *resp, json_t **json);
/* Check that a URL is https://. */
int net_url_ok(acme_client *c, const char *what, const char *url);

/* ---- account (account.c) ---- */
/* Load the stored key and URL, find the account if needed. */
int account_ensure(acme_client *c);
/* Load key and cached URL from storage, no network: ACME_OK, or
 * ACME_E_NOT_FOUND (key but no URL: look it up), or ACME_E_NO_ACCOUNT. */
int account_load_local(acme_client *c);
/* Take the answer of an onlyReturnExisting lookup (the engine's op). */
int account_take_lookup(acme_client *c, const acme_http_response *resp, json_t *acct);
/* Drop the in-memory account (key zeroed). */
void account_forget(acme_client *c);

/* ---- challenges (challenge.c) ---- */
struct acme_challenge {
    acme_challenge_type type;
    char *url;
    char *id_type;
    char *identifier;
    int wildcard;
    char *token;
    char *key_auth;
    char *http_path;
    char *dns_name;
    char *dns_value;
    char *alpn_cert;
    char *alpn_key;     /* secret */
    int validated;      /* the CA said valid */
    char *account_url;  /* what dns-persist-01 / dns-account-01 bind to */
    char **issuers;     /* dns-persist-01: the CA's issuer domain names */
    char *accounturi;   /* dns-persist-01: what the record's accounturi says */
    size_t issuer_count;
};
acme_challenge_type challenge_type_from_name(const char *name);
/* Build everything a host needs for one challenge object of an authz.
 * Refuses tokens that are not strict base64url (ACME_E_BAD_TOKEN). */
int challenge_prepare(acme_client *c, json_t *authz, json_t *chal, acme_challenge **out);
void challenge_free(acme_challenge *ch);
/* The challenge types to try for one identifier, best first: prefs minus
 * the ones in failed (a JSON array of type names), ordered by scores (a
 * JSON object type name -> integer, higher first), prefs' order breaking
 * ties. Returns how many were written to out (room for n). */
size_t challenge_rank(const acme_challenge_type *prefs, size_t n, json_t *scores, json_t *failed,
                      acme_challenge_type *out);
/* challenge_dns.c: the record name and value of dns-persist-01 and
 * dns-account-01 for ch (type, identifier, wildcard, key_auth and
 * account_url set), from the challenge object chal; the directory's meta
 * (may be NULL: its accountHashPrefix and the thumbprint make draft -02's
 * hashed accounturi, its issuerDomainNames / caaIdentities are checked
 * against the challenge's names). Sets ch->dns_name,
 * ch->dns_value (and ch->issuers). ACME_OK, or a code with *why a static
 * sentence (the CA's challenge object is malformed). */
int challenge_dns_prepare(acme_challenge *ch, json_t *chal, json_t *dir_meta, const char *thumbprint,
                          const char **why);
/* The directory's meta.accountHashPrefix, or NULL (no fetch). */
const char *dir_account_hash_prefix(const acme_client *c);
/* "<token>.<thumbprint>" */
char *key_authorization(const char *token, const char *thumbprint);
/* Identifier binding: what the CA says about identifiers must be what was
 * ordered. names are the ordered names ("*.x" for a wildcard, IPs as text).
 * 1 if value could be a DNS name or IP address we ordered: 1..253 printable
 * ASCII bytes, none of / \ " ' ` $ ; & | < > ( ) or space. */
int ident_value_safe(const char *value);
/* 1 if the CA's identifier (type "dns"/"ip", any case; value; the
 * authorization's wildcard flag) names the ordered name. order_form: value
 * as in the order's "identifiers" ("*.x" for a wildcard, no flag); else
 * as in an authorization (the base name, "wildcard": true). IP addresses
 * compare by value, names case-insensitively. */
int ident_is_name(const char *type, const char *value, int wildcard, int order_form, const char *name);
/* Which ordered name an authorization (its JSON object) is for: ACME_OK
 * and *index; ACME_E_PROTOCOL and *why (static text to follow the
 * identifier: "was not ordered"...) when the identifier is missing,
 * malformed, not ordered, or one whose taken[] entry is set (NULL: none). */
int authz_matches_order(const char *const *names, size_t n, const unsigned char *taken, json_t *authz,
                        size_t *index, const char **why);
/* The order object's "identifiers" (if present) are exactly the names,
 * each once: ACME_OK, else ACME_E_PROTOCOL and *why. */
int order_identifiers_match(const char *const *names, size_t n, json_t *order, const char **why);
/* The certificate's names (SANs as text) are exactly the ordered ones:
 * ACME_OK; else ACME_E_PROTOCOL with *missing (an ordered name it lacks)
 * or *extra (a name that was not ordered) pointing into the arguments. */
int cert_names_match(const char *const *names, size_t n, char *const *sans, size_t m, const char **missing,
                     const char **extra);

/* ---- certificates (certificate.c) ---- */
struct acme_certificate {
    char *id;
    char *chain;        /* normalised PEM */
    char *key;          /* secret */
    cert_info *info;
    json_t *params;     /* how it was ordered (names, key type...), for renewal */
};
int certificate_new(const char *id, const char *chain_pem, const char *key_pem,
                    acme_certificate **out);
/* certificate_new for a chain already read (cert_chain_read): takes
 * normalized and info, freed on failure too, and parses nothing again. */
int certificate_adopt(const char *id, char *normalized, cert_info *info, const char *key_pem,
                      acme_certificate **out);
void certificate_free(acme_certificate *cert);
/* Store atomically as one object, so key and chain never disagree. */
int certificate_store(acme_client *c, const acme_certificate *cert);
int certificate_load(acme_client *c, const char *id, acme_certificate **out);
/* When a certificate with this validity is due for renewal (Unix seconds). */
int64_t renewal_time(int64_t not_before, int64_t not_after);
/* A storage-safe id from a name ("*.x" -> "_.x"); NULL if impossible. */
char *certificate_id_for(const char *name);

#endif
