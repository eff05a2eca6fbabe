/* libacme — the client: one CA directory, one account, its certificates. */
#ifndef ACME_CLIENT_H
#define ACME_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <acme/export.h>
#include <acme/error.h>
#include <acme/host.h>
#include <acme/storage.h>
#include <acme/transport.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct acme_client acme_client;

typedef enum acme_key_type {
    ACME_KEY_DEFAULT = 0,   /* ES256 for accounts, P-256 for certificates */
    ACME_KEY_EC_P256 = 1,
    ACME_KEY_EC_P384 = 2,
    ACME_KEY_RSA_2048 = 3,
    ACME_KEY_RSA_3072 = 4,
    ACME_KEY_RSA_4096 = 5,
    ACME_KEY_ED25519 = 6    /* accounts only, where the CA accepts EdDSA */
} acme_key_type;

/* Parse "ec-256", "p256", "ec-384", "rsa-2048", "rsa2048", "ed25519"...;
 * ACME_E_INVALID_ARG if unknown. */
ACME_EXPORT int acme_key_type_from_name(const char *name, acme_key_type *out);
ACME_EXPORT const char *acme_key_type_name(acme_key_type type);

/* ---- life cycle and configuration ------------------------------------ */

/* directory_url must be https://. Nothing is fetched yet. */
ACME_EXPORT int acme_client_new(const char *directory_url, acme_client **out);
/* Releases everything; keys are zeroed. NULL is fine. */
ACME_EXPORT void acme_client_free(acme_client *c);

/* Host callbacks (copied; ud is passed back unchanged). */
ACME_EXPORT int acme_client_set_host(acme_client *c, const acme_host_callbacks *cb, void *ud);
/* Default storage: a directory (created 0700 if missing). */
ACME_EXPORT int acme_client_set_storage_dir(acme_client *c, const char *dir);
/* Host storage (copied table; ud stays the host's). */
ACME_EXPORT int acme_client_set_storage(acme_client *c, const acme_storage_ops *ops, void *ud);
/* Host transport (copied table; ud stays the host's). */
ACME_EXPORT int acme_client_set_transport(acme_client *c, const acme_transport_ops *ops, void *ud);

/* Trust for the default transport: one CA file or one in-memory PEM (the
 * later call replaces the other), each holding one or several roots; NULL
 * goes back to the system store. */
ACME_EXPORT int acme_client_set_ca_file(acme_client *c, const char *path);
ACME_EXPORT int acme_client_set_ca_pem(acme_client *c, const char *pem, size_t len);
/* Default transport bounds. 0 keeps the default (10 s connect, 30 s total). */
ACME_EXPORT int acme_client_set_timeouts(acme_client *c, unsigned connect_ms, unsigned total_ms);
/* Cap on any response body (default 1 MiB, at least 1024). */
ACME_EXPORT int acme_client_set_max_response(acme_client *c, size_t bytes);
/* Bound on the total time spent polling one authorization or order
 * (default 120 s, must be > 0). Retry-After is honoured inside it. */
ACME_EXPORT int acme_client_set_poll_limit(acme_client *c, unsigned ms);
/* Key type for a new account key (default ES256). */
ACME_EXPORT int acme_client_set_account_key_type(acme_client *c, acme_key_type type);
/* Least level passed to the log callback (default ACME_LOG_INFO). */
ACME_EXPORT int acme_client_set_log_level(acme_client *c, acme_log_level level);

/* ---- results ----------------------------------------------------------- */

/* A sentence saying what failed in the last call and what to do. "" after
 * success. Valid until the next call on c. */
ACME_EXPORT const char *acme_client_last_error(const acme_client *c);
/* The last problem document the CA sent, or NULL. */
ACME_EXPORT const acme_problem *acme_client_problem(const acme_client *c);

/* ---- directory --------------------------------------------------------- */

/* Fetch the directory (done on demand by every call below too). */
ACME_EXPORT int acme_directory_fetch(acme_client *c);
/* Terms of service URL from the directory meta, or NULL. */
ACME_EXPORT const char *acme_directory_terms(acme_client *c);
/* Whether the CA requires external account binding. */
ACME_EXPORT int acme_directory_eab_required(acme_client *c);
/* 1.2. The issuer domain names a dns-persist-01 record may name, from the
 * directory's meta "issuerDomainNames" (draft-ietf-acme-dns-persist §3.2;
 * fetched on demand): 0 / NULL when the CA lists none. */
ACME_EXPORT size_t acme_directory_issuer_domain_count(acme_client *c);
ACME_EXPORT const char *acme_directory_issuer_domain(acme_client *c, size_t i);
/* 1.2. The directory's meta "accountHashPrefix" (draft-ietf-acme-dns-persist
 * -02 §4.1): the CA wants hashed accounturi values under it. NULL when absent. */
ACME_EXPORT const char *acme_directory_account_hash_prefix(acme_client *c);

/* ---- account ----------------------------------------------------------- */

typedef struct acme_account_params {
    size_t size;                    /* sizeof(acme_account_params) */
    const char *const *contacts;    /* "mailto:..." URLs, may be NULL */
    size_t contact_count;
    int agree_tos;                  /* the user agreed to acme_directory_terms() */
    const char *eab_kid;            /* external account binding, both or neither */
    const char *eab_hmac_key;       /* base64url, as CAs hand it out */
} acme_account_params;

/* Create the account, or find it if this key already has one. Generates and
 * stores the account key on first use. */
ACME_EXPORT int acme_account_register(acme_client *c, const acme_account_params *p);
/* Find the existing account for the stored key (onlyReturnExisting).
 * ACME_E_NO_ACCOUNT if there is none. */
ACME_EXPORT int acme_account_find(acme_client *c);
ACME_EXPORT int acme_account_update_contacts(acme_client *c, const char *const *contacts, size_t n);
/* Deactivate for good. The CA refuses the key afterwards. */
ACME_EXPORT int acme_account_deactivate(acme_client *c);
/* Replace the account key (keyChange). The old key is kept in storage
 * until the CA confirmed, so nothing is lost on a crash. */
ACME_EXPORT int acme_account_rollover(acme_client *c, acme_key_type new_type);
/* After register/find: the account URL and status ("valid", "deactivated"). */
ACME_EXPORT const char *acme_account_url(const acme_client *c);
ACME_EXPORT const char *acme_account_status(const acme_client *c);
/* The account's contacts as the CA last returned them. */
ACME_EXPORT size_t acme_account_contact_count(const acme_client *c);
ACME_EXPORT const char *acme_account_contact(const acme_client *c, size_t i);
/* RFC 7638 thumbprint of the account key (base64url). */
ACME_EXPORT const char *acme_account_thumbprint(acme_client *c);

/* ---- issuance ---------------------------------------------------------- */

typedef struct acme_issue_params {
    size_t size;                     /* sizeof(acme_issue_params) */
    const char *const *names;        /* DNS names ("*.x" allowed) and IP addresses */
    size_t name_count;
    acme_key_type key_type;          /* certificate key, default P-256 */
    const acme_challenge_type *challenges; /* preference order; NULL = http-01, tls-alpn-01, dns-01 */
    size_t challenge_count;
    const char *preferred_chain;     /* issuer common name to prefer among alternates, or NULL */
    const char *cert_id;             /* storage id: [A-Za-z0-9._-], not starting with '.';
                                        NULL = the first name ("*." becomes "_.") */
    const char *profile;             /* CA profile (draft-aaron-acme-profiles), or NULL */
} acme_issue_params;

/* Obtain the certificate: authorize every name (publish, validate,
 * unpublish), finalize with a fresh key, download, check the certificate
 * against the key, store it, call install. When a challenge fails and
 * another allowed type is offered, a new order tries it (RFC 8555 §7.5.1:
 * one failed challenge kills the order). On failure, what was published
 * is taken down and pending authorizations are deactivated; the stored
 * certificate and account are untouched. The order's saved state
 * (certs/<id>/order.json) is kept only after a failure worth resuming
 * (network, timeout, Retry-After), so the next call continues that order;
 * the per-CA challenge history records what worked. If install fails the
 * new certificate is stored all the same (ACME_E_CALLBACK). */
ACME_EXPORT int acme_issue(acme_client *c, const acme_issue_params *p);

/* Reissue a stored certificate with the params it was ordered with (names,
 * key type, challenge types, chain, profile) if it is due — once the CA's
 * ARI window (RFC 9773) has opened, or without ARI a third of its lifetime
 * left, half for certificates shorter than ten days — or force is set; the
 * new order "replaces" the old one where the CA speaks ARI. *renewed (may be NULL) says whether a new one was stored (also when
 * the host's install then failed: ACME_E_CALLBACK). */
ACME_EXPORT int acme_renew(acme_client *c, const char *cert_id, int force, int *renewed);
/* Call cb for each stored certificate id of this CA. */
ACME_EXPORT int acme_cert_list(acme_client *c, int (*cb)(void *ud, const char *cert_id), void *ud);
/* Load a stored certificate and hand it to cb (same accessors as install). */
ACME_EXPORT int acme_cert_load(acme_client *c, const char *cert_id,
                               int (*cb)(void *ud, const acme_certificate *cert), void *ud);

/* RFC 5280 reason codes accepted by revocation. */
typedef enum acme_revoke_reason {
    ACME_REVOKE_UNSPECIFIED = 0,
    ACME_REVOKE_KEY_COMPROMISE = 1,
    ACME_REVOKE_AFFILIATION_CHANGED = 3,
    ACME_REVOKE_SUPERSEDED = 4,
    ACME_REVOKE_CESSATION_OF_OPERATION = 5
} acme_revoke_reason;

/* Revoke a certificate (PEM, leaf first). With key_pem == NULL the request
 * is signed by the account key; otherwise by that certificate key. */
ACME_EXPORT int acme_revoke(acme_client *c, const char *cert_pem, size_t cert_len,
                            int reason, const char *key_pem, size_t key_len);

/* ---- trust on small devices (1.2) ------------------------------------ */

/* What the ACME server sent in a handshake that did not verify, as the
 * trust-anchor lookup sees it: the certificates in the order sent (leaf
 * first), each with its subject, issuer, Subject Key Identifier (SKID)
 * and Authority Key Identifier (AKID). Valid during the lookup only. */
typedef struct acme_trust_chain acme_trust_chain;

/* "host:port" of the server. */
ACME_EXPORT const char *acme_trust_chain_host(const acme_trust_chain *ch);
ACME_EXPORT size_t acme_trust_chain_count(const acme_trust_chain *ch);
/* RFC 4514 distinguished names; NULL past the end. */
ACME_EXPORT const char *acme_trust_chain_subject(const acme_trust_chain *ch, size_t i);
ACME_EXPORT const char *acme_trust_chain_issuer(const acme_trust_chain *ch, size_t i);
/* The raw key identifier bytes and their length, or NULL (and *len 0)
 * when the certificate has none. len may be NULL. */
ACME_EXPORT const unsigned char *acme_trust_chain_skid(const acme_trust_chain *ch, size_t i, size_t *len);
ACME_EXPORT const unsigned char *acme_trust_chain_akid(const acme_trust_chain *ch, size_t i, size_t *len);

typedef struct acme_trust_anchor_ops {
    size_t size;                /* sizeof(acme_trust_anchor_ops) */
    /* The server's chain did not verify. Append the PEM of the root (or
     * roots, for cross-signs) to trust for it to root_pem and return
     * ACME_OK; or return ACME_E_DECLINED. libacme verifies the chain with
     * exactly those roots before it trusts them. */
    int (*lookup)(void *ud, const acme_trust_chain *chain, acme_buffer *root_pem);
    unsigned cache_entries;     /* host -> root bindings kept; 0 = 16 */
    unsigned cache_ttl_s;       /* how long one is kept; 0 = 3600 */
} acme_trust_anchor_ops;

/* The default transport asks ops->lookup for a trust anchor when a
 * server's chain does not verify, then retries with it (copied table;
 * ud stays the host's). With a lookup and no CA file or PEM, the system
 * store is not read: only the roots the host returns are trusted. NULL
 * ops removes the lookup. */
ACME_EXPORT int acme_client_set_trust_anchor_lookup(acme_client *c, const acme_trust_anchor_ops *ops, void *ud);

/* Append to out the PEM of every certificate in blob (PEM, several
 * roots) whose SKID is skid: the lookup for a trust blob in flash.
 * ACME_OK, ACME_E_NOT_FOUND, ACME_E_INVALID_ARG. */
ACME_EXPORT int acme_trust_blob_find(const char *blob, size_t blob_len, const unsigned char *skid,
                                     size_t skid_len, acme_buffer *out);

#ifdef __cplusplus
}
#endif

#endif
