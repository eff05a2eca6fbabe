/* Emitting events (acme/event.h) to the host's `event` callback: one call
 * per thing that happened, from wherever it happened (order.c, engine.c).
 * Each helper costs one test when the host set no callback. */
#ifndef ACME_EVENT_INTERNAL_H
#define ACME_EVENT_INTERNAL_H

#include <stdint.h>
#include <acme/event.h>
#include "buf.h"

struct acme_client;

/* PUBLISHED, VALIDATED (ident and challenge type), ORDERING (order_url). */
void event_step(struct acme_client *c, acme_event_code code, const char *cert_id, const char *ident,
                acme_challenge_type type, const char *order_url);
/* ISSUED, INSTALLED: the certificate's notAfter. */
void event_cert(struct acme_client *c, acme_event_code code, const char *cert_id, int64_t not_after);
/* RENEWAL_SCHEDULED at renew_at (Unix s). */
void event_renewal(struct acme_client *c, const char *cert_id, int64_t renew_at);
/* FAILED: the code, the sentence, the CA's problem and the identifier at
 * fault (any may be 0/NULL; without ident, the one the problem names). */
void event_failed(struct acme_client *c, const char *cert_id, int rc, const char *message, const acme_problem *p,
                  const char *ident);
/* LOCK_TAKEN, LOCK_LOST: nothing but the certificate (and the CA). */
void event_plain(struct acme_client *c, acme_event_code code, const char *cert_id);
/* FAILOVER, through the client of the CA it goes to (to_name), from the
 * CA at from_url (from_name), and why. */
void event_failover(struct acme_client *c, const char *cert_id, const char *to_name, const char *from_url,
                    const char *from_name, const char *reason);

/* What the metrics say of one certificate (metrics.c), filled by the
 * engine (engine_cert_facts) or by a test. Strings are borrowed. A time
 * of 0 is unknown: its series is left out. */
typedef struct metrics_cert {
    const char *id;
    const char *const *names;
    size_t name_count;
    const char *state;        /* "new", "valid", "ordering", "waiting", "failed" */
    int64_t not_after, renew_at, last_success;
    unsigned failures, attempts;
} metrics_cert;

/* The exposition of n certificates, appended to out. Apart from the
 * engine so the format can be tested with any ids and names. */
int metrics_format(const metrics_cert *certs, size_t n, acme_buf *out);

/* engine.c: how many certificates the engine manages, and the facts of
 * the i-th (declaration order), for metrics.c without a JSON round trip. */
struct acme_engine;
size_t engine_cert_count(const struct acme_engine *e);
void engine_cert_facts(const struct acme_engine *e, size_t i, metrics_cert *out);

#endif
