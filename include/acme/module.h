/* libacme — loadable modules (challenge providers, installers).
 *
 * A module is a shared object with one exported entry point,
 * `acme_module_entry`, returning a table of operations. libacme (and
 * acmectl --dns-provider / --module) loads it by path, hands it its
 * configuration as key/value pairs, and routes challenges of the types it
 * claims to it. The dns01 provider (modules/dns01) and the HAProxy adapter
 * (modules/haproxy) are modules.
 *
 * Versioning: the entry point receives the host's ACME_MODULE_ABI_VERSION
 * and returns NULL if it cannot serve it; both tables carry a leading size
 * so either side can grow by appending members. */
#ifndef ACME_MODULE_H
#define ACME_MODULE_H

#include <stddef.h>
#include <acme/export.h>
#include <acme/host.h>
#include <acme/storage.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ACME_MODULE_ABI_VERSION 1u
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
} acme_module_host;

/* Bits for acme_module_ops.challenge_types. */
#define ACME_MODULE_CHALLENGE(t) (1u << (unsigned)(t))

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
     * answerable (for dns-01: visible at every authoritative server). */
    int (*publish)(void *instance, const acme_challenge *ch);
    int (*unpublish)(void *instance, const acme_challenge *ch);
    int (*install)(void *instance, const acme_certificate *cert);
    /* The reason for the last failure, one line, or NULL. */
    const char *(*last_error)(void *instance);
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

#ifdef __cplusplus
}
#endif

#endif
