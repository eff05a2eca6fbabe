/* The account step: get the account (find it, or register it with the
 * terms agreed and EAB) as a state machine that asks for one thing per
 * step, like the order driver (order.h). The engine drives it without
 * blocking (acme_engine_set_account); acme_account_register and
 * acme_account_find run it to the end in the caller's thread. One
 * implementation of what registering means, for both faces. */
#ifndef ACME_ACCOUNT_RUN_H
#define ACME_ACCOUNT_RUN_H

#include <acme/client.h>
#include "order.h"

typedef enum account_goal {
    ACCOUNT_REGISTER, /* find it, or create it when allowed (acme_account_register) */
    ACCOUNT_FIND,     /* find it only (acme_account_find) */
    ACCOUNT_ENSURE    /* the engine: nothing to do if the key and URL are stored; else REGISTER */
} account_goal;

typedef struct account_run account_run;

/* p (may be NULL) is copied; it must have passed account_params_check. */
account_run *account_run_new(struct acme_client *c, const acme_account_params *p, account_goal goal, int *rc);
void account_run_free(account_run *a);
/* A fresh run with the same params and goal (a retry after a failure). */
account_run *account_run_again(const account_run *a, int *rc);
/* OW_CONTINUE, OW_HTTP (account_run_exchange), OW_WORK (account_run_job),
 * OW_DONE (account_run_result). Never OW_TIME or OW_EXTERNAL: retrying a
 * failed attempt is the driver's business (the engine backs off). */
order_want account_run_step(account_run *a);
http_exchange *account_run_exchange(account_run *a);
work_job *account_run_job(account_run *a);
int account_run_result(const account_run *a);
const char *account_run_error(const account_run *a);
/* Seconds the CA asked to wait (Retry-After of the failing answer), 0 if none. */
unsigned account_run_retry_after_s(const account_run *a);
/* Move the run's sentence and problem into the client. */
void account_run_hand_result(account_run *a);
/* Run a fresh account step to the end in this thread (the blocking calls). */
int account_run_to_end(struct acme_client *c, const acme_account_params *p, account_goal goal);

/* account.c: the pieces the step is made of (shared with account_ensure). */
/* ACME_OK, or ACME_E_INVALID_ARG with a sentence naming the member (who: "account", "engine"). */
int account_params_check(struct acme_client *c, const char *who, const acme_account_params *p);
int account_key_load(struct acme_client *c);
int account_key_adopt(struct acme_client *c, struct acme_key *k);
int account_settle_rollover(struct acme_client *c);
int account_may_create(const struct acme_client *c, const acme_account_params *p);
int account_refusal(struct acme_client *c, const acme_account_params *p);
int account_payload(struct acme_client *c, const acme_account_params *p, char **out);
int account_take_answer(struct acme_client *c, const char *step, const acme_http_response *resp, json_t *acct);

#endif
