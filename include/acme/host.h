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
    ACME_CHALLENGE_TLS_ALPN_01 = 3
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
/* The token: guaranteed strict base64url ([A-Za-z0-9_-]+), safe as a file name. */
ACME_EXPORT const char *acme_challenge_token(const acme_challenge *ch);
ACME_EXPORT const char *acme_challenge_key_authorization(const acme_challenge *ch);
/* http-01: "/.well-known/acme-challenge/<token>"; NULL for other types. */
ACME_EXPORT const char *acme_challenge_http_path(const acme_challenge *ch);
/* dns-01: "_acme-challenge.<name>" (no trailing dot) and the TXT value. */
ACME_EXPORT const char *acme_challenge_dns_name(const acme_challenge *ch);
ACME_EXPORT const char *acme_challenge_dns_value(const acme_challenge *ch);
/* tls-alpn-01: self-signed certificate (RFC 8737) and its P-256 key, PEM. */
ACME_EXPORT const char *acme_challenge_alpn_cert_pem(const acme_challenge *ch);
ACME_EXPORT const char *acme_challenge_alpn_key_pem(const acme_challenge *ch);
/* In unpublish: 1 if the CA validated this challenge, 0 if it failed or
 * was never answered (hooks that report "done"/"failed" need this). */
ACME_EXPORT int acme_challenge_validated(const acme_challenge *ch);

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
} acme_host_callbacks;

#ifdef __cplusplus
}
#endif

#endif
