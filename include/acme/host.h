/* libacme — what the host supplies: challenge publishing, certificate
 * installing, logging. libacme never assumes how a host serves challenges or
 * where its certificates go. */
#ifndef ACME_HOST_H
#define ACME_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <acme/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum acme_challenge_type {
    ACME_CHALLENGE_NONE = 0,
    ACME_CHALLENGE_HTTP_01 = 1,
    ACME_CHALLENGE_DNS_01 = 2,
    ACME_CHALLENGE_TLS_ALPN_01 = 3,
    /* 1.2: one persistent TXT record at _validation-persist.<name> names the
     * CA and our account (draft-ietf-acme-dns-persist). Never chosen unless
     * the host lists it. */
    ACME_CHALLENGE_DNS_PERSIST_01 = 4,
    /* 1.2: dns-01 at an account-specific name,
     * _<label>._acme-challenge.<name> (draft-ietf-acme-dns-account-label). */
    ACME_CHALLENGE_DNS_ACCOUNT_01 = 5
} acme_challenge_type;

typedef enum acme_log_level {
    ACME_LOG_ERROR = 0,
    ACME_LOG_WARNING = 1,
    ACME_LOG_INFO = 2,
    ACME_LOG_DEBUG = 3
} acme_log_level;

/* One challenge to publish. Valid only during the callback that received it;
 * copy what you need. Strings are never NULL unless said. */
typedef struct acme_challenge acme_challenge;

ACME_EXPORT acme_challenge_type acme_challenge_get_type(const acme_challenge *ch);
ACME_EXPORT const char *acme_challenge_type_name(acme_challenge_type type); /* "http-01"... */
/* "dns" or "ip" */
ACME_EXPORT const char *acme_challenge_identifier_type(const acme_challenge *ch);
/* The name or address being validated, without any "*." (see is_wildcard). */
ACME_EXPORT const char *acme_challenge_identifier(const acme_challenge *ch);
ACME_EXPORT int acme_challenge_is_wildcard(const acme_challenge *ch);
/* The token: guaranteed strict base64url ([A-Za-z0-9_-]+), safe as a file name.
 * NULL for dns-persist-01 when the CA sent none (its record has no token);
 * key_authorization is then NULL too. */
ACME_EXPORT const char *acme_challenge_token(const acme_challenge *ch);
ACME_EXPORT const char *acme_challenge_key_authorization(const acme_challenge *ch);
/* http-01: "/.well-known/acme-challenge/<token>"; NULL for other types. */
ACME_EXPORT const char *acme_challenge_http_path(const acme_challenge *ch);
/* The TXT record to publish (name without trailing dot, and its value):
 *   dns-01          "_acme-challenge.<name>", base64url(SHA-256(key authorization))
 *   dns-account-01  "_<label>._acme-challenge.<name>", the same value as dns-01
 *   dns-persist-01  "_validation-persist.<name>", the record
 *                   acme_dns_persist_value() makes from the CA's first issuer
 *                   domain name and our account URL ("; policy=wildcard" for
 *                   a wildcard's authorization). Persistent: create it once,
 *                   never remove it in unpublish.
 * NULL for other types. */
ACME_EXPORT const char *acme_challenge_dns_name(const acme_challenge *ch);
ACME_EXPORT const char *acme_challenge_dns_value(const acme_challenge *ch);
/* tls-alpn-01: self-signed certificate (RFC 8737) and its P-256 key, PEM. */
ACME_EXPORT const char *acme_challenge_alpn_cert_pem(const acme_challenge *ch);
ACME_EXPORT const char *acme_challenge_alpn_key_pem(const acme_challenge *ch);
/* In unpublish: 1 if the CA validated this challenge, 0 if it failed or
 * was never answered (hooks that report "done"/"failed" need this). */
ACME_EXPORT int acme_challenge_validated(const acme_challenge *ch);

/* 1.2. dns-persist-01: the CA's issuer domain names (1 to 10, lowercase, no
 * trailing dot), in the CA's order; 0 / NULL for other types. */
ACME_EXPORT size_t acme_challenge_issuer_domain_count(const acme_challenge *ch);
ACME_EXPORT const char *acme_challenge_issuer_domain(const acme_challenge *ch, size_t i);
/* 1.2. The account URL the challenge is answered for (dns-persist-01 and
 * dns-account-01 records are bound to it); never NULL in a callback. */
ACME_EXPORT const char *acme_challenge_account_url(const acme_challenge *ch);
/* 1.2. dns-persist-01: the accounturi the record carries: the account URL,
 * or, when the CA's directory has "accountHashPrefix" (draft -02), the
 * hashed URI for this name (acme_dns_persist_hashed_uri). NULL for other types. */
ACME_EXPORT const char *acme_challenge_persist_accounturi(const acme_challenge *ch);

/* The formatting functions below append to a struct acme_buffer (acme/storage.h:
 * acme_buffer_new, acme_buffer_data). */
struct acme_buffer;

/* 1.2. Flags of acme_dns_persist_value. */
#define ACME_DNS_PERSIST_WILDCARD 1u  /* "policy=wildcard": also *.name and subdomains */

/* 1.2. The value of a _validation-persist TXT record (draft-ietf-acme-dns-persist):
 * "<issuer>; accounturi=<account_url>[; policy=wildcard][; persistUntil=<t>]".
 * account_url: the account URL, or the hashed URI at a CA that wants one.
 * persist_until: Unix time after which CAs stop accepting it, 0 for none.
 * Appends to out (no NUL counted). ACME_E_INVALID_ARG when issuer is not a
 * domain name or account_url is not an https URL without spaces or ';'. */
ACME_EXPORT int acme_dns_persist_value(const char *issuer, const char *account_url, unsigned flags,
                                       int64_t persist_until, struct acme_buffer *out);
/* 1.2. Does one TXT record's text (its strings joined) satisfy dns-persist-01
 * for this account: issuer one of issuers (case and trailing dot ignored),
 * accounturi exactly account_url, policy=wildcard when wildcard, and
 * persistUntil (if any) not before now (Unix time)? 1 yes; 0 no, with *why
 * (if why) set to a static sentence saying which part is wrong. */
ACME_EXPORT int acme_dns_persist_match(const char *txt, const char *const *issuers, size_t n,
                                       const char *account_url, int wildcard, int64_t now,
                                       const char **why);
/* 1.2. draft-ietf-acme-dns-persist -02's hashed accounturi:
 * prefix + "sha-256/" + base64url(SHA-256(len(domain) || domain || thumbprint
 * || account_url)), domain lowercase without trailing dot, or NULL for the
 * domain-independent form ("*"). thumbprint: the account key's RFC 7638
 * thumbprint, base64url (acme_account_thumbprint). Appended to out. */
ACME_EXPORT int acme_dns_persist_hashed_uri(const char *prefix, const char *domain, const char *thumbprint,
                                            const char *account_url, struct acme_buffer *out);
/* 1.2. The dns-account-01 label of an account (draft-ietf-acme-dns-account-label):
 * "_" + base32 (lowercase, RFC 4648, no padding) of the first 10 bytes of
 * SHA-256(account_url): 17 characters. Appended to out. */
ACME_EXPORT int acme_dns_account_label(const char *account_url, struct acme_buffer *out);

/* An event (acme/event.h). */
struct acme_event;

/* A certificate to install. Valid only during the callback. */
typedef struct acme_certificate acme_certificate;

/* Leaf first, then the issuers, PEM. */
ACME_EXPORT const char *acme_certificate_chain_pem(const acme_certificate *c);
/* The private key, PKCS#8 PEM. Secret: do not log it. */
ACME_EXPORT const char *acme_certificate_key_pem(const acme_certificate *c);
ACME_EXPORT size_t acme_certificate_name_count(const acme_certificate *c);
ACME_EXPORT const char *acme_certificate_name(const acme_certificate *c, size_t i);
/* Seconds since the Unix epoch. */
ACME_EXPORT int64_t acme_certificate_not_before(const acme_certificate *c);
ACME_EXPORT int64_t acme_certificate_not_after(const acme_certificate *c);
/* Common name of the issuer of the top certificate of the chain, or "". */
ACME_EXPORT const char *acme_certificate_issuer(const acme_certificate *c);
/* The storage id under which libacme keeps this certificate. */
ACME_EXPORT const char *acme_certificate_id(const acme_certificate *c);

/* The host's callbacks. Every member may be NULL; size lets the table grow.
 * Callbacks return ACME_OK, or an acme_code to fail the step (the order is
 * then abandoned cleanly). */
typedef struct acme_host_callbacks {
    size_t size; /* sizeof(acme_host_callbacks) as the host compiled it */
    /* Make the challenge answerable (serve the file, set the TXT record,
     * load the certificate). Return only when it is. Return
     * ACME_E_DECLINED if this host cannot serve this type: libacme then
     * picks the next allowed type the CA offers for the same
     * authorization, in the same order (nothing was sent to the CA). */
    int (*publish)(void *ud, const acme_challenge *ch);
    /* Remove what publish made. Called for every successful publish. */
    int (*unpublish)(void *ud, const acme_challenge *ch);
    /* A new certificate, already stored. Put it where it serves. */
    int (*install)(void *ud, const acme_certificate *cert);
    /* One line, no newline, never containing key material. */
    void (*log)(void *ud, acme_log_level level, const char *msg);
    /* 1.2. What happened (ordering, published, validated, issued,
     * installed, renewal scheduled, failed...), as a typed event with a
     * stable code (acme/event.h). Tables of older sizes leave it NULL. */
    void (*event)(void *ud, const struct acme_event *ev);
} acme_host_callbacks;

#ifdef __cplusplus
}
#endif

#endif
