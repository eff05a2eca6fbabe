/* libacme 1.2 — CA failover: an ordered list of CAs, each its own client
 * (directory URL, trust settings, account with its own EAB). When the CA
 * a certificate is issued from fails in a way that is not the host's to
 * fix (it cannot be reached, it is down, it rate-limits, it refuses the
 * names by policy, it keeps failing internally), the next CA in the list
 * issues. Which CA a certificate comes from, and why, is kept in storage,
 * so a restart goes on with the same CA. See doc/api.md "CA failover". */
#ifndef ACME_CA_LIST_H
#define ACME_CA_LIST_H

#include <stddef.h>
#include <acme/export.h>
#include <acme/client.h>
#include <acme/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct acme_ca_list acme_ca_list;

/* One CA of the list. */
typedef struct acme_ca_params {
    size_t size;                 /* sizeof(acme_ca_params) */
    const char *name;            /* a label for logs and status: [A-Za-z0-9._-], unique in the list */
    const char *eab_kid;         /* external account binding at this CA, both or neither */
    const char *eab_hmac_key;    /* base64url, as CAs hand it out */
} acme_ca_params;

/* account: what every CA's account is registered with (contacts, terms
 * agreed; its EAB fields are ignored: each CA has its own). Copied. */
ACME_EXPORT int acme_ca_list_new(const acme_account_params *account, acme_ca_list **out);
/* Frees the list and every client added to it. NULL is fine. */
ACME_EXPORT void acme_ca_list_free(acme_ca_list *l);
/* Append a CA: c is configured by the host (host callbacks, storage,
 * trust, timeouts) and belongs to the list from now on, also when the
 * call fails. Every client of one list must use the same storage. */
ACME_EXPORT int acme_ca_list_add(acme_ca_list *l, const acme_ca_params *p, acme_client *c);
ACME_EXPORT size_t acme_ca_list_count(const acme_ca_list *l);
/* The i-th client (borrowed), or NULL. */
ACME_EXPORT acme_client *acme_ca_list_client(acme_ca_list *l, size_t i);
ACME_EXPORT const char *acme_ca_list_name(const acme_ca_list *l, size_t i);

/* acme_issue() at the CA the certificate was last issued from (else the
 * first), then at the others in list order while the failure is not the
 * host's to fix. Registers the account at a CA on first use. On success
 * the choice and its reason are stored. */
ACME_EXPORT int acme_ca_list_issue(acme_ca_list *l, const acme_issue_params *p);
/* acme_renew() at the CA holding the certificate; when that fails in a
 * way not the host's to fix, the certificate is issued (same params) at
 * the next CA. */
ACME_EXPORT int acme_ca_list_renew(acme_ca_list *l, const char *cert_id, int force, int *renewed);
/* Which CA the certificate comes from, as JSON (valid until the next call
 * on l): {"cert_id","ca","directory","reason","since","failover",
 * "attempts":[{"ca","error"}...]}; NULL when none is stored. */
ACME_EXPORT const char *acme_ca_list_status_json(acme_ca_list *l, const char *cert_id);
/* An engine (acme/engine.h: every acme_engine_* call works on it) that
 * manages each certificate at one CA of the list: where it was last
 * (stored), else the first; a certificate whose order, directory or
 * account step fails there in a way not the host's to fix moves to the
 * next CA and stays there. The account at each CA is found or registered
 * as the engine's first step there (acme_engine_set_account replaces the
 * contacts and terms for all). Status JSON entries gain "ca" and
 * "ca_reason". Free the engine before the list. */
ACME_EXPORT int acme_ca_list_engine_new(acme_ca_list *l, const acme_engine_options *opts, acme_engine **out);

/* What failed in the last call on l, at every CA tried. "" after success. */
ACME_EXPORT const char *acme_ca_list_last_error(const acme_ca_list *l);

#ifdef __cplusplus
}
#endif
#endif
