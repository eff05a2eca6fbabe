/* What module.c (loading, the hooks in the caller's thread) and
 * module_async.c (the module's own thread, for engine hosts) share. */
#ifndef LIBACME_MODULE_INTERNAL_H
#define LIBACME_MODULE_INTERNAL_H

#include <pthread.h>

#include <acme/module.h>
#include "internal.h"

typedef struct mod_async mod_async;

/* What one call into the module is: the four ways libacme uses it. */
typedef enum mod_op {
    MOD_PUBLISH = 0,    /* present (+ wait), or ABI 1 publish */
    MOD_WAIT = 1,       /* the wait after a present (queued behind other presents) */
    MOD_UNPUBLISH = 2,  /* cleanup, or ABI 1 unpublish */
    MOD_INSTALL = 3
} mod_op;

struct acme_module {
    void *handle;             /* dlopen handle */
    const acme_module_ops *ops;
    acme_module_ops table;    /* our copy, zero-filled past the module's size */
    unsigned abi;             /* the module ABI it was loaded as (1 or 2) */
    unsigned types;           /* challenge_types(), asked once after create */
    void *instance;
    acme_client *client;
    acme_module_host host;
    char *name;
    char *last_error;         /* this module's last failure (acme_module_last_error) */
    pthread_t owner;          /* the thread that loaded it: the client's */

    /* A hook that answered ACME_E_PENDING: the caller waits here until
     * the module's host->done for that object (any thread). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const void *awaited;
    int answered, answer_rc;

    mod_async *async;         /* acme_module_set_engine */
};

/* Run op for object in the calling thread, to completion (a PENDING hook
 * is waited for). On failure *why is the sentence (malloc'ed). For
 * MOD_PUBLISH with a wait hook and run_wait 0, the wait is left to the
 * caller (returns ACME_OK after present, *needs_wait = 1). */
int module_run(acme_module *m, mod_op op, const void *object, int run_wait, int *needs_wait, char **why);

/* module_async.c */
int module_async_start(acme_module *m, struct acme_engine *e);
void module_async_stop(acme_module *m);
/* Queue op on the module's thread; the object is copied. ACME_E_PENDING. */
int module_async_queue(acme_module *m, mod_op op, const void *object);
/* 1 unless the caller is the thread that loaded the module: such a call
 * leaves the client alone (its last error, its storage wrapper). */
int module_foreign_thread(const acme_module *m);
/* The client's last error, unless one is set already; not logged. */
void module_client_error(acme_module *m, const char *why);
/* 1 if the caller is the module's thread (its log lines are queued). */
int module_async_on_thread(const acme_module *m);
void module_async_log(acme_module *m, acme_log_level level, const char *msg);
/* 1 once module_async_stop began. */
int module_async_stopping(const acme_module *m);

#endif
