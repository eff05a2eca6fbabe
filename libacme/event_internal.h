/* Emitting events (acme/event.h) to the host's `event` callback: one call
 * per thing that happened, from wherever it happened (order.c, engine.c).
 * Each helper costs one test when the host set no callback. */
#ifndef ACME_EVENT_INTERNAL_H
#define ACME_EVENT_INTERNAL_H

#include <stdint.h>
#include <jansson.h>
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
/* FAILED: the code, the sentence and the CA's problem (any may be 0/NULL). */
void event_failed(struct acme_client *c, const char *cert_id, int rc, const char *message, const acme_problem *p);
/* LOCK_TAKEN, LOCK_LOST, FAILOVER: nothing but the certificate (and the CA). */
void event_plain(struct acme_client *c, acme_event_code code, const char *cert_id);

/* metrics.c: the exposition of certificates given as the engine's status
 * entries (acme_engine_status_json's objects), appended to out. Apart
 * from the engine so the format can be tested with any ids and names. */
int metrics_format(const json_t *certs, acme_buf *out);

#endif
