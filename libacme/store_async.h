/* The engine's storage thread (doc/storage.md, "Who calls the table").
 *
 * While an engine exists, every call into the client's storage table is
 * made from one libacme thread, in the order the calls were made; a step
 * never waits for the table (a table may fsync, or be a database):
 * - writes (put, remove) made in a step are queued (write-behind) and at
 *   once visible to later reads through an in-memory overlay;
 * - the CA's keys are listed once, in one batch on the thread, while
 *   acme_engine_new waits (before the host's loop steps anything), with
 *   the values of every key but those under the lazy prefixes (the
 *   certificates'); those are read a slice at a time when the engine asks
 *   (store_async_fetch), so memory holds a window of them, not all; from
 *   then on the overlay answers every read and list a step makes;
 * - order locks are taken on the thread (the order waits like for a host
 *   callback), refreshed there every lease/3, released there;
 * - a call outside a step (the host's acme_cert_load, a blocking call)
 *   runs on the thread too and waits for it: same order, same thread.
 * store.c and store_lock.c route through here when c->sa is set. */
#ifndef ACME_STORE_ASYNC_H
#define ACME_STORE_ASYNC_H

#include <stddef.h>
#include <acme/storage.h>
#include "buf.h"

struct acme_client;
typedef struct store_async store_async;

/* Start the thread for c's table (sets c->sa) and read the stored state
 * in one batch (waits for it). wake(wake_ud) is called from the thread
 * when something finished (any thread-safe wake-up). lazy: NULL, or
 * prefixes relative to the ca-id ("certs/"), NULL-terminated, whose keys
 * the batch lists without reading their values. */
int store_async_start(struct acme_client *c, void (*wake)(void *), void *wake_ud, const char *const *lazy);
/* Write every queued operation, release the locks still held, stop. */
void store_async_stop(struct acme_client *c);
/* A step begins: take finished operations. A lock's answer goes to
 * locked(ud, object, rc), which returns 1 if object still wants it. A
 * lock whose refresh said it is no longer held (ACME_E_LOCKED), or whose
 * lease ran out unrefreshed, goes to lost(ud, name, why): from then on
 * the thread drops every queued write to the keys it covered
 * ("<ca-id>/certs/<cert-id>/", failed with ACME_E_LOCKED) until the
 * name is unlocked or locked again. */
/* A slice asked for with store_async_fetch is in memory: fetched(ud, tag)
 * for each of its tags. */
void store_async_begin_step(struct acme_client *c, int (*locked)(void *ud, const void *object, int rc),
                            void (*lost)(void *ud, const char *name, const char *why),
                            void (*fetched)(void *ud, const char *tag), void *ud);
void store_async_end_step(struct acme_client *c);
/* 1 once the start-up reads are in. */
int store_async_ready(const store_async *sa);
/* Operations queued and not finished. */
size_t store_async_pending(const store_async *sa);

/* Full keys (with the ca-id), as the table sees them. Return the table's
 * answer (or the queued write's ACME_OK); *why gets a malloc'ed sentence
 * of the table's failure when there is one. */
int store_async_get(store_async *sa, const char *key, acme_buf *out, char **why);
int store_async_put(store_async *sa, const char *key, const void *data, size_t len, unsigned flags, char **why);
int store_async_remove(store_async *sa, const char *key, char **why);
int store_async_list(store_async *sa, const char *prefix, acme_storage_list_cb cb, void *cbdata);
/* In a step: ACME_E_PENDING, queued, the answer comes through
 * begin_step's locked(). Outside one: waits, returns the table's answer. */
int store_async_lock(store_async *sa, const char *name, const void *object);
/* Read ahead, without waiting: keys is a NUL-separated list of full keys,
 * each a prefix when it ends in '/' (every key under it). ACME_E_PENDING:
 * queued; once the values are in memory (a later read of them answers at
 * once, then lets the value go), begin_step's fetched() hears each of the
 * NUL-separated tags. Keys memory already answers (held, absent, or not
 * in the start-up list) are not asked for. ACME_OK: nothing to wait for
 * (all answered, or the start-up list failed, so reads ask the table as
 * before); other codes: out of memory. */
int store_async_fetch(store_async *sa, const char *keys, size_t keys_len, const char *tags, size_t tags_len);
void store_async_unlock(store_async *sa, const char *name);
/* Writes queued in steps that must be durable (not ACME_STORAGE_NO_SYNC),
 * counted: a change tells a step it queued one. */
unsigned long long store_async_durable(const store_async *sa);
/* ACME_E_PENDING: object is told (through locked(), rc: ACME_OK or the
 * code of a write that failed since the last barrier) once everything
 * queued before has reached the table. */
int store_async_barrier(store_async *sa, const void *object);
/* The lease locks taken from now on ask for (default ACME_LOCK_LEASE_S
 * with a refresh member, else ACME_LOCK_LEASE_LONG_S), refreshed every
 * third of it: tests shorten it to see a refresh within seconds. */
void store_async_set_lease(store_async *sa, unsigned lease_s);
/* object stops waiting for a lock (freed): a yes is released, not told. */
void store_async_forget(store_async *sa, const void *object);

#endif
