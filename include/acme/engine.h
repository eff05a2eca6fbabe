/* libacme — the engine: a certificate manager driven without blocking.
 *
 * The host declares the certificates it wants (acme_engine_manage); the
 * engine keeps them valid: it installs stored ones at start, orders new
 * ones, renews them (RFC 9773 ARI when the CA offers it, else at a third
 * of the lifetime left), falls back to another challenge type in a new
 * order when one fails, and persists every step so a restarted process
 * resumes the same order.
 *
 * Driving it, in the style of libcurl's multi interface:
 *
 *   for (;;) {
 *       size_t n;
 *       acme_engine_fds(e, fds, 64, &n);
 *       poll(fds, n, acme_engine_timeout_ms(e));
 *       acme_engine_step(e);          // never blocks on the network
 *   }
 *
 * or, for hosts without a loop, acme_engine_perform(e, ms), which is that
 * loop. Loops that keep watchers (libuv, epoll) can be told instead of
 * asking: acme_engine_set_socket_callback / _set_timer_callback with
 * acme_engine_socket_action / _timeout_action (since 1.2). Slow work
 * (RSA key generation, CSR signing) runs on a worker thread; a step only
 * collects its result.
 *
 * Host callbacks may answer ACME_E_PENDING and report the outcome later
 * with acme_engine_done() (within acme_engine_set_pending_timeout's
 * deadline). No callback may call back into the engine or its client:
 * such calls return ACME_E_STATE. A host storage or transport table is
 * called from inside steps: a blocking one blocks the step (the defaults
 * don't). */
#ifndef ACME_ENGINE_H
#define ACME_ENGINE_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <acme/client.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct acme_engine acme_engine;

typedef struct acme_engine_options {
    size_t size;                  /* sizeof(acme_engine_options); at least up to jitter_percent */
    unsigned max_orders;          /* orders in flight at once; 0 = 16 */
    unsigned retry_min_s;         /* first wait after a failed attempt; 0 = 60 */
    unsigned retry_max_s;         /* cap of the doubling wait; 0 = 86400 */
    unsigned recheck_s;           /* how often to re-ask ARI / re-check; 0 = 21600 (6 h) */
    unsigned jitter_percent;      /* spread of renewal times; 0 = 5 */
    unsigned max_age_s;           /* renew once a certificate is this old, even if the
                                     CA's window or the lifetime rule says later; 0 = off */
} acme_engine_options;

/* c must outlive the engine; its host callbacks are the engine's. */
ACME_EXPORT int acme_engine_new(acme_client *c, const acme_engine_options *opts, acme_engine **out);
ACME_EXPORT void acme_engine_free(acme_engine *e);

/* Keep this certificate valid (params as for acme_issue; cert_id defaults
 * to the first name). Declaring the same id again replaces its params.
 * A profile unknown to the CA fails here when the directory is known,
 * else at the first order, before any order is placed. */
ACME_EXPORT int acme_engine_manage(acme_engine *e, const acme_issue_params *p);
ACME_EXPORT int acme_engine_unmanage(acme_engine *e, const char *cert_id);

/* Let the engine get the account itself, for a host that starts with
 * none: before its first order it finds the account of the stored key, or
 * registers one with p (contacts, agree_tos, EAB; copied; NULL = no
 * contacts, terms not agreed), generating and storing the key first. All
 * without blocking, like an order's steps; a failure (terms not agreed,
 * EAB missing or wrong, CA down) is retried after retry_min_s, doubling
 * up to retry_max_s, and shows in every waiting certificate's last_error.
 * No order starts until the account is there. With a key and account URL
 * already stored nothing is sent. Calling it again replaces the params.
 * ACME_E_INVALID_ARG for params acme_account_register would refuse.
 * (since 1.2) */
ACME_EXPORT int acme_engine_set_account(acme_engine *e, const acme_account_params *p);

/* The descriptors to watch. ACME_E_INVALID_ARG (and *n = what is needed)
 * if cap is too small. The set changes between steps: ask again after
 * every acme_engine_step() and unmanage (acme_engine_fds(3)). */
ACME_EXPORT int acme_engine_fds(acme_engine *e, struct pollfd *fds, size_t cap, size_t *n);
/* Milliseconds until a step is due even without fd activity; -1 = none. */
ACME_EXPORT int acme_engine_timeout_ms(acme_engine *e);
/* Do whatever is ready. Never waits for the network. */
ACME_EXPORT int acme_engine_step(acme_engine *e);

/* ---- Or: the engine tells the host's loop what to watch (since 1.2) ----
 *
 * Like libcurl's CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION, for
 * hosts on libuv, libevent, epoll...: instead of asking for the fd set
 * after every step, the host is told when a descriptor is to be watched,
 * changed or forgotten, and when the engine next needs a call. The
 * callbacks run only from inside the host's own calls on e (never from
 * another thread) and must not call back into e or its client (that
 * returns ACME_E_STATE). See acme_engine_set_socket_callback(3).
 *
 * Descriptors: libcurl's sockets to the CA and the engine's wake-up pipe
 * (readable when slow work finished or acme_engine_done() was called).
 * The engine owns them: the host never closes one. ACME_POLL_REMOVE comes
 * before a descriptor is closed, always, so a loop that aborts on a closed
 * descriptor it still watches (libuv) never sees one; a number may come
 * back later as a new descriptor. Responders are the host's own objects:
 * their descriptors are not in this set (acme_responder_fds). */
typedef enum acme_poll_events {
    ACME_POLL_IN = 1,       /* readable */
    ACME_POLL_OUT = 2,      /* writable */
    ACME_POLL_INOUT = 3,
    ACME_POLL_REMOVE = 4,   /* socket callback: stop watching fd (it is about to close) */
    ACME_POLL_ERR = 8       /* socket action: error or hang-up on fd */
} acme_poll_events;

/* events: ACME_POLL_IN, _OUT or _INOUT to watch fd for (replacing what
 * was asked before for it), ACME_POLL_REMOVE to stop. */
typedef void (*acme_engine_socket_fn)(void *ud, int fd, int events);
/* Call acme_engine_timeout_action() in timeout_ms (0 = as soon as the
 * loop is back, never from inside this callback); -1 = no timer. Each
 * call replaces the previous timer. */
typedef void (*acme_engine_timer_fn)(void *ud, int timeout_ms);

/* Set (cb) or remove (NULL) the callback. Setting it tells cb at once of
 * every descriptor to watch; removing it (or setting another) unwatches
 * them all through the old one first, so a host can leave its loop
 * cleanly. ACME_E_STATE on the engine of the blocking calls. */
ACME_EXPORT int acme_engine_set_socket_callback(acme_engine *e, acme_engine_socket_fn cb, void *ud);
/* Set (cb) or remove (NULL) the timer callback; cb is told the current
 * deadline at once. */
ACME_EXPORT int acme_engine_set_timer_callback(acme_engine *e, acme_engine_timer_fn cb, void *ud);
/* fd is ready for events (ACME_POLL_IN / _OUT / _ERR): do that and then
 * whatever else is due, like acme_engine_step(). An fd the engine does not
 * know (an event that raced an unwatch) is ignored. */
ACME_EXPORT int acme_engine_socket_action(acme_engine *e, int fd, int events);
/* The timer set through the timer callback expired. */
ACME_EXPORT int acme_engine_timeout_action(acme_engine *e);

/* How long a host callback that answered ACME_E_PENDING (publish,
 * unpublish, install) may take to call acme_engine_done(): past it the
 * engine stops waiting, the callback counts as failed with ACME_E_TIMEOUT
 * (a publish fails the order, which is retried with back-off) and the
 * status says why. 0 = wait for ever. Default 600 s. Applies to callbacks
 * answered from then on. (since 1.2) */
ACME_EXPORT int acme_engine_set_pending_timeout(acme_engine *e, unsigned seconds);
/* Blocking loop over fds/timeout/step until nothing is in flight and no
 * certificate needs work within timeout_ms (or timeout_ms passes;
 * -1 = until idle). ACME_OK when every managed certificate is valid. */
ACME_EXPORT int acme_engine_perform(acme_engine *e, int timeout_ms);

/* A callback that returned ACME_E_PENDING finished: object is the
 * acme_challenge or acme_certificate it was given (still valid until this
 * call), result ACME_OK or an acme_code. */
ACME_EXPORT int acme_engine_done(acme_engine *e, const void *object, int result);

/* 1 when no order is in flight and no callback is pending. */
ACME_EXPORT int acme_engine_idle(const acme_engine *e);

/* State of every managed certificate as JSON (valid until the next call
 * on e): [{"id","names":[...],"state":"new"|"valid"|"ordering"|"waiting"|
 * "failed","not_after","next_renewal" (Unix s or null),"last_error" (or
 * null),"attempts","failures","waiting_on" ("host" while a callback that
 * answered ACME_E_PENDING is not done, else null),"waiting_since" (Unix s
 * or null),"last_success" (Unix s or null; 1.2)}]. "failed": the last
 * attempt failed but a valid certificate still serves; "waiting": none is
 * valid yet. */
ACME_EXPORT const char *acme_engine_status_json(acme_engine *e);

/* One certificate's state, for hosts that carry too many certificates to
 * read them all as one JSON text (since 1.1). */
typedef enum acme_cert_state {
    ACME_CERT_STATE_NEW = 0,       /* declared, not looked at yet */
    ACME_CERT_STATE_VALID = 1,     /* a valid certificate is installed */
    ACME_CERT_STATE_ORDERING = 2,  /* an order is in flight */
    ACME_CERT_STATE_WAITING = 3,   /* no valid certificate yet; waiting to retry */
    ACME_CERT_STATE_FAILED = 4     /* the last attempt failed; a valid one still serves */
} acme_cert_state;

typedef struct acme_cert_status {
    size_t size;                   /* sizeof(acme_cert_status), set by the caller */
    acme_cert_state state;
    int64_t not_after;             /* Unix s of the valid certificate; 0 if none */
    int64_t next_renewal;          /* Unix s; 0 until planned */
    unsigned attempts;             /* orders started */
    unsigned failures;             /* failures since the last success */
    int last_code;                 /* acme_code of the last failure; ACME_OK if none */
    const char *last_error;        /* its sentence or NULL; valid until the next call on e */
} acme_cert_status;

/* The state of one managed certificate, in O(1) whatever the number
 * managed. ACME_E_NOT_FOUND if cert_id is not managed, ACME_E_INVALID_ARG
 * if out->size is smaller than this struct of libacme 1.1. (since 1.1) */
ACME_EXPORT int acme_engine_cert_status(acme_engine *e, const char *cert_id, acme_cert_status *out);

/* acme_engine_status_json() one page at a time: the entries [offset,
 * offset + limit) in declaration order (an unmanage moves the last
 * certificate into the gap), *total the number managed. "[]" past the
 * end. Valid until the next call on e. (since 1.1) */
ACME_EXPORT const char *acme_engine_status_json_page(acme_engine *e, size_t offset, size_t limit,
                                                     size_t *total);

/* The longest single step so far, in microseconds (for measuring). */
ACME_EXPORT uint64_t acme_engine_longest_step_us(const acme_engine *e);

#ifdef __cplusplus
}
#endif

#endif
