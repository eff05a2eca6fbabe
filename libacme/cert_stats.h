/* What the status and the metrics say of a certificate's history — how
 * many orders were started for it and when one last succeeded — kept in
 * storage (stats/<cert-id>.json under the CA's directory) so that a
 * restart shows the same values instead of starting from zero. */
#ifndef ACME_CERT_STATS_H
#define ACME_CERT_STATS_H

#include <stdint.h>
#include <acme/client.h>

typedef struct cert_stats {
    unsigned attempts;      /* orders started, over the certificate's life */
    int64_t last_success;   /* wall clock of the last successful order; 0 = none */
} cert_stats;

/* 0 and *out filled when a record is stored; -1 (and *out zeroed) when
 * none or unreadable. Never leaves an error in the client. */
int cert_stats_load(acme_client *c, const char *cert_id, cert_stats *out);
/* Queued like every engine write; a failure is logged, not returned:
 * the numbers are for people, an order never depends on them. */
void cert_stats_save(acme_client *c, const char *cert_id, const cert_stats *s);
/* The record's key relative to the CA ("stats/<cert-id>.json"), malloc'ed:
 * the engine reads it ahead at start-up. */
char *cert_stats_key(const char *cert_id);

#endif
