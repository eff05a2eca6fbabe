/* The order driver's contract with whoever drives it: acme_issue() (a
 * blocking loop) and the engine (an event loop over many orders). One
 * state machine; the drivers only differ in how they wait. */
#ifndef ACME_ORDER_H
#define ACME_ORDER_H

#include <stdint.h>
#include <jansson.h>
#include <acme/client.h>
#include "net.h"

typedef enum order_want {
    OW_CONTINUE,   /* call order_step again now */
    OW_HTTP,       /* perform order_exchange(), then step */
    OW_TIME,       /* step again at order_wake_at() (monotonic ms) */
    OW_WORK,       /* run order_job() (on a worker thread if you can), then step */
    OW_EXTERNAL,   /* a host callback answered ACME_E_PENDING: wait for order_external_done() */
    OW_DONE        /* finished: order_result() */
} order_want;


typedef struct order_run order_run;

/* Validate params and make a run. On failure *rc is set and the client's
 * last error says why. */
order_run *order_new(struct acme_client *c, const acme_issue_params *p, int *rc);
/* A run of an already validated spec (shared, not copied). */
struct issue_spec;
order_run *order_new_spec(struct acme_client *c, struct issue_spec *spec, int *rc);
void order_free(order_run *r);
order_want order_step(order_run *r);
http_exchange *order_exchange(order_run *r);
uint64_t order_wake_at(const order_run *r);
work_job *order_job(order_run *r);
/* ACME_OK, or the failure; with the sentence and problem it left. */
int order_result(const order_run *r);
const char *order_error(const order_run *r);
/* Move the run's error and problem into the client (for acme_issue). */
void order_hand_result(order_run *r);
/* Seconds the CA asked us to wait before trying again (Retry-After on the
 * failing answer), 0 if none. */
unsigned order_retry_after_s(const order_run *r);
/* The CA's problem behind the failure, or NULL (borrowed). */
const acme_problem *order_problem(const order_run *r);
/* The profile the order asked for, or NULL (borrowed). */
const char *order_profile(const order_run *r);
const char *order_cert_id(const order_run *r);
/* The facts of the certificate the run stored (NULL if it stored none):
 * what the engine plans the renewal by, without loading it again. */
const struct cert_info *order_stored_info(const order_run *r);
/* The spec the run orders (a manage() may have replaced the engine's since). */
const struct issue_spec *order_spec(const order_run *r);
/* The params in their stored form (borrowed). */
/* ARI: the certificate this order replaces (RFC 9773 "replaces"). */
int order_set_replaces(order_run *r, const char *ari_id);
/* Storage shared with other hosts: once the lock is taken, a stored
 * certificate with a later notAfter than known_not_after (0: none known)
 * that is not due yet is installed instead of ordered (doc/cluster.md). */
void order_set_recheck(order_run *r, int64_t known_not_after);
/* A pending callback finished. 1 if object belonged to this run. */
int order_external_done(order_run *r, const void *object, int result);
/* The same with a failure's own sentence (a module's, engine_done_reason):
 * the order's failure quotes it. */
int order_external_done_why(order_run *r, const void *object, int result, const char *why);
/* The callback the run waits for ("publish", "unpublish", "install") and
 * its object, or NULL: the engine's deadline finishes it with
 * order_external_done(r, object, ACME_E_TIMEOUT). */
const char *order_pending_callback(const order_run *r, const void **object);
/* The order lock the run holds ("<ca-id>.order.<cert-id>"), or NULL (none,
 * or lost). */
const char *order_lock_name(const order_run *r);
/* The run's lock was lost (a refresh said so; why: the table's reason):
 * the run fails with ACME_E_LOCKED and a sentence saying so, takes the
 * host's challenges down at its next step, and writes nothing more (no
 * deactivation either: the next holder resumes this order). The driver
 * must cancel the exchange or job the run waits for and step it. 1 if
 * the run stops; 0 if there is nothing to stop (no lock, done, or the
 * certificate is stored already). */
int order_lock_lost(order_run *r, const char *why);
/* OW_EXTERNAL for a driver that cannot wait for the host (the blocking
 * calls): fail the run with the sentence saying so, and clean up. */
void order_refuse_pending(order_run *r);
/* Run to the end in this thread with nothing around it (tests and fuzzers
 * drive one order this way; the public blocking calls run the engine,
 * engine_one.c, so that every rule above the order applies to them too). */
int order_run_blocking(order_run *r);

#endif
