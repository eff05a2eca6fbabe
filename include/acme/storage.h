/* libacme — the storage plug-in table.
 *
 * libacme keeps everything it must not lose (account key, account URL,
 * certificate keys, certificates, order state) through this table. The
 * default is a directory on disk (acme_client_set_storage_dir); a host may
 * plug in its own (a database, a cluster store) with acme_client_set_storage.
 *
 * Keys are relative paths: components of [A-Za-z0-9._-] separated by '/',
 * never "." or "..", never starting with '/'. libacme prefixes every key with
 * one directory per CA directory URL, so staging and production never mix. */
#ifndef ACME_STORAGE_H
#define ACME_STORAGE_H

#include <stddef.h>
#include <acme/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A byte sink owned by libacme. Hosts fill it with acme_buffer_append. */
typedef struct acme_buffer acme_buffer;

/* Returns ACME_OK, ACME_E_NOMEM, or ACME_E_TOO_LARGE past the sink's cap. */
ACME_EXPORT int acme_buffer_append(acme_buffer *buf, const void *data, size_t len);

/* A buffer of the host's (or a module's) own, e.g. to read a value back
 * with acme_module_host.storage_get. Treated as secret: zeroed on free. */
ACME_EXPORT acme_buffer *acme_buffer_new(void);
ACME_EXPORT void acme_buffer_free(acme_buffer *buf);
/* The bytes so far, NUL-terminated for convenience ("" when empty). */
ACME_EXPORT const char *acme_buffer_data(const acme_buffer *buf);
ACME_EXPORT size_t acme_buffer_len(const acme_buffer *buf);

/* put() flag: the value is secret (a private key). Stored readable by the
 * owner only (0600 on disk); never logged. */
#define ACME_STORAGE_SECRET 0x1u
/* put() flag: advice only (e.g. which challenge type worked before): it may
 * be lost in a crash, so the store need not wait for the disk. It must
 * still never be torn. */
#define ACME_STORAGE_NO_SYNC 0x2u

typedef int (*acme_storage_list_cb)(void *cbdata, const char *key);

typedef struct acme_storage_ops {
    size_t size; /* sizeof(acme_storage_ops) as the host compiled it */
    /* Fill out with the value; ACME_E_NOT_FOUND if absent. */
    int (*get)(void *ud, const char *key, acme_buffer *out);
    /* Replace atomically: a reader sees the old value or the new, never a mix. */
    int (*put)(void *ud, const char *key, const void *data, size_t len, unsigned flags);
    /* ACME_OK also when the key was absent. */
    int (*remove)(void *ud, const char *key);
    /* Call cb for every key that starts with prefix (a directory: "ca/certs/");
     * stop early if cb returns non-zero. Order is unspecified. */
    int (*list)(void *ud, const char *prefix, acme_storage_list_cb cb, void *cbdata);
    /* Advisory lock with a lease; ACME_E_LOCKED if another holder's lease is live.
     * The engine takes "<ca-id>.order.<cert-id>" per order (storage.md). */
    int (*lock)(void *ud, const char *name, unsigned lease_seconds);
    int (*unlock)(void *ud, const char *name);
} acme_storage_ops;

#ifdef __cplusplus
}
#endif

#endif
