/* What the engine's CA failover (engine_failover.c) needs of a CA list
 * (ca_list.c): the rule of what is not ours to fix, and the stored choice. */
#ifndef ACME_CA_LIST_INT_H
#define ACME_CA_LIST_INT_H

#include <stddef.h>
#include <acme/ca_list.h>

/* Whether a failure (code and the CA's problem, may be NULL) is one
 * another CA may not have: outage, rate limit, policy refusal, 5xx. */
int ca_list_not_ours(int rc, const acme_problem *p);
/* Store that cert_id is now with CA `at`, and why. */
void ca_list_record(acme_ca_list *l, const char *cert_id, size_t at, const char *reason, int failover);
/* The stored CA of cert_id (0, *at, *reason malloc'd when reason is not
 * NULL) or -1 when none or no longer in the list. */
int ca_list_recorded(acme_ca_list *l, const char *cert_id, size_t *at, char **reason);
/* The account params for CA i: the list's contacts and terms, the CA's EAB. */
void ca_list_account_params(const acme_ca_list *l, size_t i, acme_account_params *out);

#endif
