/* CA failover in the engine: one engine per CA of a CA list, chained
 * (engine.c's last section; built by acme_ca_list_engine_new in
 * engine_failover.c). */
#ifndef ACME_ENGINE_CHAIN_H
#define ACME_ENGINE_CHAIN_H

#include <stddef.h>
#include <acme/ca_list.h>
#include <acme/engine.h>

/* e is CA `index` of l; next is the engine of the CA after it, or NULL. */
int engine_chain_link(acme_engine *e, acme_engine *next, acme_ca_list *l, size_t index);
/* first: the engine of the list's first CA, where a renewal of a
 * certificate that failed over tries again (NULL: never). */
void engine_chain_first(acme_engine *e, acme_engine *first);
/* The engine of the next CA, or NULL (not in a chain, or the last). */
acme_engine *engine_chain_next(const acme_engine *e);

#endif
