/* libacme — result codes and ACME problem documents.
 *
 * Numbers are fixed forever: a code that is retired keeps its number and is
 * never reused. New codes are added at the end. */
#ifndef ACME_ERROR_H
#define ACME_ERROR_H

#include <stddef.h>
#include <acme/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum acme_code {
    ACME_OK = 0,
    ACME_E_INVALID_ARG = 1,      /* a caller passed something unusable */
    ACME_E_NOMEM = 2,            /* out of memory */
    ACME_E_STORAGE = 3,          /* the storage back end failed (disk, permissions) */
    ACME_E_NETWORK = 4,          /* could not reach the server / connection dropped */
    ACME_E_TLS = 5,              /* TLS failed: untrusted server certificate etc. */
    ACME_E_TIMEOUT = 6,          /* a request or a poll ran past its bound */
    ACME_E_HTTP = 7,             /* unexpected HTTP status without a problem document */
    ACME_E_PROTOCOL = 8,         /* malformed response: bad JSON, missing field, wrong type */
    ACME_E_TOO_LARGE = 9,        /* response body above the configured cap */
    ACME_E_PROBLEM = 10,         /* the CA answered with a problem document: see acme_client_problem() */
    ACME_E_CRYPTO = 11,          /* key generation, signing or certificate parsing failed */
    ACME_E_BAD_TOKEN = 12,       /* the CA sent a challenge token that is not strict base64url */
    ACME_E_CHALLENGE_FAILED = 13,/* the CA could not validate a challenge */
    ACME_E_ORDER_FAILED = 14,    /* the order became invalid */
    ACME_E_NO_ACCOUNT = 15,      /* no account exists for this key at this CA */
    ACME_E_TOS_REQUIRED = 16,    /* the CA has terms of service that were not agreed to */
    ACME_E_EAB_REQUIRED = 17,    /* the CA requires external account binding */
    ACME_E_UNSUPPORTED = 18,     /* a feature the CA or a table lacks (keyChange, revokeCert, profiles, list) */
    ACME_E_KEY_MISMATCH = 19,    /* the certificate does not belong to our key */
    ACME_E_CALLBACK = 20,        /* a host callback reported failure */
    ACME_E_INSECURE = 21,        /* a non-https URL or a redirect away from https */
    ACME_E_LOCKED = 22,          /* another holder (process, engine or client) has the storage lock */
    ACME_E_NOT_FOUND = 23,       /* the stored item does not exist */
    ACME_E_STATE = 24,           /* call not valid in the current state */
    ACME_E_PENDING = 25,         /* (callbacks) accepted, will complete later — engine only */
    ACME_E_DECLINED = 26,        /* (publish) the host cannot serve this challenge type: try another */
    ACME_E_NO_CHALLENGE = 27     /* no allowed challenge type is offered by the CA (or the host declined all) */
} acme_code;

/* A fixed English sentence for a code. Never NULL. */
ACME_EXPORT const char *acme_strerror(int code);

/* An ACME problem document (RFC 8555 §6.7, RFC 7807). Owned by whatever
 * returned it; valid until that owner's next call. The strings are the
 * CA's text as sent: they may hold newlines, terminal escapes or other
 * control characters, so escape them before printing. (The sentence of
 * acme_client_last_error() and every log line already have C0 controls,
 * DEL and C1 controls escaped as "\xNN".) */
typedef struct acme_problem acme_problem;

ACME_EXPORT const char *acme_problem_type(const acme_problem *p);   /* full URN, e.g. "urn:ietf:params:acme:error:badNonce" */
ACME_EXPORT const char *acme_problem_detail(const acme_problem *p); /* may be "" */
ACME_EXPORT int acme_problem_status(const acme_problem *p);         /* HTTP status, 0 if absent */
ACME_EXPORT size_t acme_problem_subproblem_count(const acme_problem *p);
ACME_EXPORT const acme_problem *acme_problem_subproblem(const acme_problem *p, size_t i);
/* For subproblems: the identifier they concern, or NULL. */
ACME_EXPORT const char *acme_problem_identifier_type(const acme_problem *p);
ACME_EXPORT const char *acme_problem_identifier_value(const acme_problem *p);

#ifdef __cplusplus
}
#endif

#endif
