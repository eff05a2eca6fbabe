/* libacme — loadable modules (challenge providers, installers).
 *
 * A module is a shared object with one exported entry point,
 * `acme_module_entry`, returning a table of operations. libacme (and
 * acmectl --dns-provider / --module) loads it by path, hands it its
 * configuration as key/value pairs, and routes challenges of the types it
 * claims to it. The dns01 provider (modules/dns01) and the HAProxy adapter
 * (modules/haproxy) are modules.
 *
 * Versioning: the entry point receives the module ABI the host asks for
 * and returns NULL if it cannot serve it; libacme asks for
 * ACME_MODULE_ABI_VERSION (2) first, then for 1, so modules built for
 * ABI 1 keep loading. Both tables carry a leading size so either side can
 * grow by appending members.
 *
 * Module ABI 2 (doc/modules.md): publishing is split into present (quick:
 * send the record), wait (slow: until the CA can see it) and cleanup; a
 * hook may answer ACME_E_PENDING and finish later through
 * acme_module_host.done; the table says what the module does (flags).
 * A host driving the engine hands the module to it with
 * acme_module_set_engine: the module's hooks then run on a thread of the
 * module's own, never inside an engine step. */
#ifndef ACME_MODULE_H
#define ACME_MODULE_H

#include <stddef.h>
#include <acme/export.h>
#include <acme/host.h>
#include <acme/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ACME_MODULE_ABI_VERSION 2u
/* The oldest module ABI libacme still loads. */
#define ACME_MODULE_ABI_VERSION_MIN 1u
#define ACME_MODULE_ENTRY "acme_module_entry"

/* What libacme offers a module instance. */
typedef struct acme_module_host {
    size_t size;   /* sizeof(acme_module_host) as libacme compiled it */
    void *ud;      /* pass back to every function below */
    /* Storage scoped to this module ("modules/<name>/<key>" under the CA's
     * directory): credentials a module must keep (acme-dns registration). */
    int (*storage_get)(void *ud, const char *key, acme_buffer *out);
    int (*storage_put)(void *ud, const char *key, const void *data, size_t len, unsigned flags);
    void (*log)(void *ud, acme_log_level level, const char *msg);
    /* ---- module ABI 2 (check size) ---- */
    /* A hook that answered ACME_E_PENDING finished: object is the
     * acme_challenge or acme_certificate that hook was given, result
     * ACME_OK or an acme_code. Callable from any thread, once per
     * PENDING; object stays valid until this call. */
    void (*done)(void *ud, const void *object, int result);
    /* 1 when libacme is stopping the module's thread (the host frees the
     * module: shutting down): a long wait should then give up soon and
     * return ACME_E_STATE. Callable from any thread. */
    int (*stopping)(void *ud);
} acme_module_host;

/* Bits for acme_module_ops.challenge_types. */
#define ACME_MODULE_CHALLENGE(t) (1u << (unsigned)(t))

/* Bits for acme_module_ops.flags (module ABI 2) and acme_module_flags(). */
#define ACME_MODULE_PUBLISHES 0x1u  /* answers challenges */
#define ACME_MODULE_INSTALLS 0x2u   /* installs certificates */

typedef struct acme_module_ops {
    size_t size;              /* sizeof(acme_module_ops) as the module compiled it */
    unsigned abi_version;     /* ACME_MODULE_ABI_VERSION the module was built for */
    const char *name;         /* short, [a-z0-9_-], e.g. "dns01" */
    /* Make an instance. keys/values: the configuration, n pairs, strings
     * valid only during the call. On failure write one line into err
     * naming the key at fault and return an acme_code. */
    int (*create)(const acme_module_host *host, const char *const *keys,
                  const char *const *values, size_t n, void **instance,
                  char *err, size_t errlen);
    void (*destroy)(void *instance);
    /* Which challenge types this instance answers (ACME_MODULE_CHALLENGE bits). */
    unsigned (*challenge_types)(void *instance);
    /* Same contract as acme_host_callbacks.publish / unpublish / install.
     * Any may be NULL. publish returns only when the challenge is
     * answerable (for dns-01: visible at every authoritative server).
     * A module ABI 2 module sets present/wait/cleanup instead of
     * publish/unpublish (libacme uses them when both are set). */
    int (*publish)(void *instance, const acme_challenge *ch);
    int (*unpublish)(void *instance, const acme_challenge *ch);
    int (*install)(void *instance, const acme_certificate *cert);
    /* The reason for the last failure, one line, or NULL. */
    const char *(*last_error)(void *instance);
    /* ---- module ABI 2: a table for ABI 2 reaches through cleanup ---- */
    /* ACME_MODULE_PUBLISHES | ACME_MODULE_INSTALLS: what this module
     * does, so a host need not call it to find out. */
    unsigned flags;
    /* Quick: make the change (send the DNS update). Must not wait for
     * it to become visible. */
    int (*present)(void *instance, const acme_challenge *ch);
    /* Slow: return when the CA can see what present made (every
     * authoritative server answers it). May block for minutes; libacme
     * never calls it inside an engine step. NULL: present suffices. */
    int (*wait)(void *instance, const acme_challenge *ch);
    /* Remove what present made (also after a failed wait). */
    int (*cleanup)(void *instance, const acme_challenge *ch);
} acme_module_ops;

/* The symbol every module exports. */
typedef const acme_module_ops *(*acme_module_entry_fn)(unsigned host_abi_version);

/* ---- loading (host side) ---- */

struct acme_client;
typedef struct acme_module acme_module;

/* Load a module by path and configure it. config: "key=value" lines
 * ('#' comments and blank lines ignored), or NULL. The client gives the
 * module its storage and log; it must outlive the module.
 * On failure *out is NULL and acme_client_last_error(c) says why. */
ACME_EXPORT int acme_module_load(struct acme_client *c, const char *path, const char *config,
                                 acme_module **out);
ACME_EXPORT void acme_module_free(acme_module *m);
ACME_EXPORT const char *acme_module_name(const acme_module *m);
/* 1 if the module answers this challenge type. */
ACME_EXPORT int acme_module_handles(const acme_module *m, acme_challenge_type type);
/* Call the module's hooks; usable directly as acme_host_callbacks members
 * with ud = the module. publish of a type the module does not handle
 * returns ACME_E_DECLINED (the order tries the next type); unpublish and
 * install without a hook return ACME_OK. */
ACME_EXPORT int acme_module_publish(void *module, const acme_challenge *ch);
ACME_EXPORT int acme_module_unpublish(void *module, const acme_challenge *ch);
ACME_EXPORT int acme_module_install(void *module, const acme_certificate *cert);

/* ---- driving modules from an event loop (since 1.2) ---- */

struct acme_engine;

/* From now on the module's hooks run on a thread the module handle owns,
 * one call at a time, never in the caller: acme_module_publish,
 * acme_module_unpublish and acme_module_install answer ACME_E_PENDING at
 * once, and acme_module_dispatch reports each outcome to e with
 * acme_engine_done. e NULL: back to calling the hooks in the caller.
 * Call it while nothing is in flight. */
ACME_EXPORT int acme_module_set_engine(acme_module *m, struct acme_engine *e);
/* Readable when finished work waits for acme_module_dispatch; -1 until
 * acme_module_set_engine. Stable for the module's life once made. */
ACME_EXPORT int acme_module_fd(const acme_module *m);
/* On the loop's thread: hand finished work to the engine (and the
 * module's log lines to the client's log). Never blocks. Returns the
 * number of outcomes delivered. */
ACME_EXPORT int acme_module_dispatch(acme_module *m);
/* ACME_MODULE_PUBLISHES / ACME_MODULE_INSTALLS: what the module does
 * (from its table; for an ABI 1 module, from which hooks it has). */
ACME_EXPORT unsigned acme_module_flags(const acme_module *m);
/* The sentence of this module's last failure, or NULL: scoped to the
 * module, so another module's failure never replaces it. Valid until the
 * next call on m. */
ACME_EXPORT const char *acme_module_last_error(const acme_module *m);

#ifdef __cplusplus
}
#endif

#endif
