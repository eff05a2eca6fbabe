/* Waiting until a TXT value is visible at every authoritative server of
 * its zone, so that the CA is asked only then. */
#ifndef DNS01_PROPAGATION_H
#define DNS01_PROPAGATION_H

#include "dns01.h"

/* Poll every authoritative server of r->zone (nameservers= or the NS set)
 * for r->value at r->target, every propagation-interval ms, until all
 * answer it or propagation-timeout s have passed. ACME_OK, or
 * ACME_E_TIMEOUT with d->err naming a server that never answered and what
 * it returned (other codes for lookup failures). */
int propagation_wait(dns01 *d, const dns01_record *r);

#endif
