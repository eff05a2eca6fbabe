/* dns-persist-01: check the persistent record, create it once (persist.c). */
#ifndef DNS01_PERSIST_H
#define DNS01_PERSIST_H

#include <acme/host.h>

#include "dns01.h"

/* ACME_OK when _validation-persist.<name> already holds a record that will
 * do, or once it was created (rfc2136) and reached every authoritative
 * server; ACME_E_DECLINED (with d->err saying what to create) when this
 * back end cannot create it; another code when DNS failed. */
int dns01_persist_publish(dns01 *d, const acme_challenge *ch);

#endif
