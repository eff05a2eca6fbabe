/* Slow host tables for the engine tests and bench/slow_step.c: a host HTTP
 * transport (libcurl easy, loopback only) that adds a delay to every
 * request, with a blocking face (perform, optionally as an old-size 1.1
 * table) and an asynchronous one (submit + acme_http_call_complete from a
 * pool of threads, like an evented client); and an in-memory storage
 * table whose writes (put, remove, lock, unlock, refresh) take a delay.
 * Both count the calls made on the thread that drives the engine, which
 * must stay 0: an engine never calls a host table from a step. */
#ifndef SLOW_TABLES_H
#define SLOW_TABLES_H

#include <pthread.h>
#include <stddef.h>
#include <acme/acme.h>

typedef struct slow_transport slow_transport;

/* ca_file: what to trust (Pebble's); delay_ms per request; threads: the
 * asynchronous face's pool (0: only the blocking face). */
slow_transport *slow_transport_new(const char *ca_file, unsigned delay_ms, unsigned threads);
void slow_transport_free(slow_transport *t);
/* mode 0: asynchronous (submit only); 1: blocking, today's size; 2: blocking, the 1.1 size
 * (no submit member). */
acme_transport_ops slow_transport_ops(int mode);
/* The engine's thread: calls made on it are counted as "on the loop". */
void slow_transport_set_loop_thread(slow_transport *t, pthread_t loop);
unsigned slow_transport_requests(slow_transport *t);
unsigned slow_transport_on_loop(slow_transport *t);
unsigned slow_transport_peak_in_flight(slow_transport *t);

typedef struct slow_store slow_store;
slow_store *slow_store_new(unsigned write_delay_ms);
void slow_store_free(slow_store *s);
acme_storage_ops slow_store_ops(void);
/* The asynchronous face (submit only): a thread of the store's completes. */
acme_storage_ops slow_store_async_ops(void);
unsigned slow_store_submits(slow_store *s);
void slow_store_set_loop_thread(slow_store *s, pthread_t loop);
unsigned slow_store_writes(slow_store *s);
unsigned slow_store_calls(slow_store *s);
unsigned slow_store_on_loop(slow_store *s);
/* Keys that contain needle. */
size_t slow_store_count(slow_store *s, const char *needle);
/* Copy every key that contains from to the key with from replaced by to
 * (a stored certificate under another id); returns how many. */
size_t slow_store_clone(slow_store *s, const char *from, const char *to);
/* Count the gets of keys that contain needle from now on (one needle at a
 * time); slow_store_gets says how many so far. */
void slow_store_count_gets(slow_store *s, const char *needle);
unsigned slow_store_gets(slow_store *s);

#endif
