/* libacme — events and metrics (since 1.2).
 *
 * Events: what happened to a certificate, as it happens, through the host
 * table's `event` member (acme/host.h). Each event has a stable number
 * (never renumbered; a retired code keeps its number), so a host can log,
 * count or forward them without parsing log lines.
 *
 * Metrics: the engine's per-certificate state as Prometheus text
 * (exposition format 0.0.4), for a scrape endpoint or a textfile
 * collector. */
#ifndef ACME_EVENT_H
#define ACME_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <acme/export.h>
#include <acme/error.h>
#include <acme/host.h>
#include <acme/engine.h>
#include <acme/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum acme_event_code {
    ACME_EVENT_ORDERING = 1,           /* the CA accepted a new order (order_url set) */
    ACME_EVENT_PUBLISHED = 2,          /* a challenge is published (identifier, challenge) */
    ACME_EVENT_VALIDATED = 3,          /* the CA validated it (identifier, challenge) */
    ACME_EVENT_ISSUED = 4,             /* the certificate is downloaded and stored (not_after) */
    ACME_EVENT_INSTALLED = 5,          /* the host's install callback accepted it (not_after) */
    ACME_EVENT_RENEWAL_SCHEDULED = 6,  /* the engine planned the next renewal (renew_at) */
    ACME_EVENT_FAILED = 7,             /* an attempt failed (code, message, problem_*) */
    ACME_EVENT_FAILOVER = 8,           /* the next CA of the list takes over (directory_url: the new one;
                                          from_directory_url, ca_name, from_ca_name, message: why) */
    ACME_EVENT_LOCK_TAKEN = 9,         /* this process holds the storage lock of the certificate's order */
    ACME_EVENT_LOCK_LOST = 10          /* that lock is gone before the order ended */
} acme_event_code;

/* One event. Valid only during the callback; copy what you need. Strings
 * are NULL when they do not apply. */
typedef struct acme_event {
    size_t size;                   /* sizeof(acme_event) as libacme built it: read
                                      a member only if it lies within size */
    acme_event_code code;
    const char *cert_id;           /* the certificate's storage id */
    const char *identifier;        /* PUBLISHED, VALIDATED: the name or address;
                                      FAILED: the identifier whose challenge failed,
                                      else the one the problem names, if any */
    int64_t time;                  /* when, Unix seconds */
    acme_challenge_type challenge; /* PUBLISHED, VALIDATED; else ACME_CHALLENGE_NONE */
    int64_t not_after;             /* ISSUED, INSTALLED: the certificate's notAfter (Unix s) */
    int64_t renew_at;              /* RENEWAL_SCHEDULED: when the renewal is due (Unix s) */
    int result;                    /* FAILED: the acme_code; else ACME_OK */
    const char *message;           /* FAILED: the sentence saying what failed and what to do */
    const char *problem_type;      /* FAILED: the CA's problem type URN, when it sent one */
    const char *problem_detail;    /* FAILED: its detail */
    const acme_problem *problem;   /* FAILED: the whole document (subproblems), or NULL */
    const char *directory_url;     /* the CA's directory URL */
    const char *order_url;         /* ORDERING: the order's URL */
    /* Since 1.2 too, appended (check size): FAILOVER's other facts.
     * Its message (above) is the reason: what failed at the CA left. */
    const char *from_directory_url; /* FAILOVER: the CA the certificate leaves */
    const char *ca_name;            /* FAILOVER: the name of the CA it goes to (acme_ca_params.name) */
    const char *from_ca_name;       /* FAILOVER: the name of the CA it leaves */
} acme_event;

/* The host table's `event` member (acme_host_callbacks): called on the
 * thread that runs the engine step or the blocking call, never with a
 * libacme lock held. It must not call back into the engine. */
typedef void (*acme_event_fn)(void *ud, const acme_event *ev);

/* "ordering", "published", ... "lock-lost"; "unknown" for other values. */
ACME_EXPORT const char *acme_event_code_name(acme_event_code code);

/* Append the Prometheus text exposition (format 0.0.4) of every managed
 * certificate's state to out: acme_certificate_info, _state (one series
 * per state, the current one 1), _not_after_seconds,
 * _next_renewal_seconds, _consecutive_failures, _attempts_total,
 * _last_success_seconds, and acme_certificates_managed. ACME_OK, or
 * ACME_E_INVALID_ARG / ACME_E_NOMEM. */
ACME_EXPORT int acme_engine_metrics(acme_engine *e, acme_buffer *out);

#ifdef __cplusplus
}
#endif

#endif
