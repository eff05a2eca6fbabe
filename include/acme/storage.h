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

/* The asynchronous face (since 1.2): one storage operation as a request. */
typedef enum acme_storage_op {
    ACME_STORAGE_OP_GET = 1,
    ACME_STORAGE_OP_PUT = 2,
    ACME_STORAGE_OP_REMOVE = 3,
    ACME_STORAGE_OP_LIST = 4,
    ACME_STORAGE_OP_LOCK = 5,
    ACME_STORAGE_OP_UNLOCK = 6,
    ACME_STORAGE_OP_REFRESH = 7
} acme_storage_op;

typedef struct acme_storage_request {
    size_t size;              /* sizeof(acme_storage_request) as libacme compiled it */
    acme_storage_op op;
    const char *key;          /* the key; LIST: the prefix; LOCK, UNLOCK, REFRESH: the lock name */
    const void *data;         /* PUT */
    size_t len;               /* PUT */
    unsigned flags;           /* PUT: ACME_STORAGE_SECRET, ACME_STORAGE_NO_SYNC */
    unsigned lease_seconds;   /* LOCK, REFRESH */
    acme_buffer *out;         /* GET: fill with acme_buffer_append */
} acme_storage_request;

/* One submitted operation. Owned by libacme; valid until completed. */
typedef struct acme_storage_call acme_storage_call;

/* LIST: report one key (copied). ACME_E_INVALID_ARG for NULL arguments. */
ACME_EXPORT int acme_storage_call_list_key(acme_storage_call *call, const char *key);
/* Finish a submitted operation with the result its synchronous member
 * would return (GET: ACME_OK or ACME_E_NOT_FOUND...). Exactly once, from
 * any thread, possibly before submit returns; after it neither call nor
 * req may be touched. ACME_E_INVALID_ARG for a NULL call. */
ACME_EXPORT int acme_storage_call_complete(acme_storage_call *call, int result);

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
    /* Advisory lock with a lease; see "The lock contract" below. */
    int (*lock)(void *ud, const char *name, unsigned lease_seconds);
    int (*unlock)(void *ud, const char *name);
    /* Since 1.2 (the table's size covers it; may be NULL): extend the lease
     * of a lock this table holds to lease_seconds from now. ACME_E_LOCKED if
     * it is no longer held (the lease ran out and another holder took it):
     * only then, since libacme stops the order at once (any other code is a
     * store failure, tried again while the lease lasts). */
    int (*refresh)(void *ud, const char *name, unsigned lease_seconds);
    /* Since 1.2 (the table's size covers it; may be NULL): the asynchronous
     * face, for a store with an evented client (a database driver, a
     * cluster store). When set, libacme uses it for every operation and
     * never the members above (which may then be NULL). ACME_OK: the
     * operation is the table's until acme_storage_call_complete; any other
     * return: it was not started and no completion follows. libacme waits
     * for the completion on the thread that submitted (an engine's storage
     * thread, or the caller of a blocking call such as acme_issue), so a
     * blocking call must not be made from the thread whose loop completes
     * the operation. */
    int (*submit)(void *ud, const acme_storage_request *req, acme_storage_call *call);
} acme_storage_ops;

/* Who calls the table. An engine (acme_engine_new) calls every member from
 * one libacme thread of its own, one call at a time, never from inside
 * acme_engine_step: a table may block (fsync, a database, a network
 * store). Writes are queued and reach the table in the order they were
 * made; the engine reads its own pending writes from memory. The blocking
 * calls (acme_issue, acme_cert_load...) call it from the caller's thread.
 * A table shared by several clients must therefore be thread-safe.
 *
 * The lock contract. Names are "<ca-id>.order.<cert-id>": one lock per
 * certificate per CA, taken by whoever orders it (libacme takes it before
 * an order's first request and releases it when the order ends), so two
 * processes or hosts on one store never order the same certificate at once.
 * - lock(name, lease): ACME_OK if the name was free and is now held for
 *   lease_seconds; ACME_E_LOCKED if another holder's lease is live; a
 *   second lock() of a name this table holds is ACME_E_LOCKED too (locks
 *   are not re-entrant). Any other code is a failure of the store.
 * - A holder whose lease expired holds nothing: the next lock() takes the
 *   name over. A table that can tell a holder is dead (the default file
 *   storage: the holder's flock is gone, or on the same host its pid is)
 *   takes the name over at once. A table must never refuse a name for
 *   longer than the lease after its holder died.
 * - refresh(name, lease) while the order runs: libacme takes a lease of
 *   ACME_LOCK_LEASE_S and refreshes it every third of that, so a dead
 *   holder blocks others for at most that long; without refresh it takes
 *   ACME_LOCK_LEASE_LONG_S once (orders waiting for DNS take minutes).
 * - A lost lock (refresh answered ACME_E_LOCKED, or the lease ran out
 *   before a refresh succeeded): the engine stops that order at once
 *   (ACME_EVENT_LOCK_LOST, then ACME_EVENT_FAILED with ACME_E_LOCKED),
 *   writes nothing more for it (writes still queued for the certificate's
 *   keys are dropped, not sent), leaves the saved order state for the next
 *   holder, and tries again with its back-off. A table need not refuse
 *   writes itself; one that can (fencing, like the etcd storage) also
 *   stops a holder that was paused past its lease without knowing.
 * - unlock(name): releases a lock this table holds; it must not release
 *   another holder's lock (a lease lost and taken over: ACME_E_LOCKED).
 * Leases are wall-clock times: hosts sharing a store need roughly
 * synchronised clocks. */
#define ACME_LOCK_LEASE_S 300u
#define ACME_LOCK_LEASE_LONG_S 3600u

#ifdef __cplusplus
}
#endif

#endif
