/* Helpers for the engine tests (tests/engine/it_engine_*.c, engine_host.c).
 *
 * They sit on top of tests/integration/itest.h (compiled in, not copied):
 * itest gives the environment, the Pebble checks and the responders; this
 * adds what driving acme_engine needs and itest's own host callbacks cannot
 * give: a record of every publish (type, name, time), every install, every
 * log line (the engine's "order: <url> created" / "resuming order <url>"
 * lines are how the tests count orders), host callbacks that answer
 * ACME_E_PENDING and finish later from the loop, and a poll loop that
 * times every acme_engine_step itself. */
#ifndef ETEST_H
#define ETEST_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "itest.h"

/* ---- time ---------------------------------------------------------------- */

double etest_now(void);       /* CLOCK_MONOTONIC, seconds */
double etest_wall(void);      /* CLOCK_REALTIME, seconds (to compare with the stand-in's log) */

/* Fail with a message (and the last 40 engine log lines) if the program is
 * still running after `seconds`: a hung engine must fail, not stall meson. */
void etest_watchdog(unsigned seconds);

/* ---- the host ------------------------------------------------------------ */

typedef struct etest_publish {
    acme_challenge_type type;
    char *identifier;
    double t;                 /* etest_now() when publish was called */
} etest_publish;

typedef struct etest_pending {
    int kind;                 /* 1 publish, 2 unpublish, 3 install */
    const void *object;       /* what the engine gave; valid until done */
    double due;               /* etest_now() at which the loop finishes it */
} etest_pending;

#define ETEST_MAX_PENDING 256

/* One event from the host table's event callback (acme/event.h), copied. */
typedef struct etest_event {
    acme_event_code code;
    char *cert_id;
    char *identifier;         /* NULL when the event had none */
    char *problem_type;       /* FAILED: the CA's problem type, or NULL */
    char *message;            /* FAILED: the sentence; FAILOVER: why */
    char *directory_url;      /* the CA's directory */
    char *from_directory_url; /* FAILOVER: the CA left, its name, the new CA's name (else NULL) */
    char *from_ca_name, *ca_name;
    int result;
    acme_challenge_type challenge;
    int64_t not_after, renew_at, time;
} etest_event;

typedef struct etest_host {
    acme_responder_set *responders;   /* where http-01 / tls-alpn-01 go */
    acme_engine *engine;              /* set after acme_engine_new, for done() */

    /* publish / unpublish */
    etest_publish *pubs;
    size_t pub_count, pub_cap;
    int publish_fail;                 /* what publish answers instead (0 = serve it) */
    int unpublish_calls;
    int outstanding, peak_outstanding;

    /* installs: a copy of every certificate handed to install */
    itest_cert *installs;
    size_t install_count, install_cap;

    /* every event, in order */
    etest_event *events;
    size_t event_count, event_cap;

    /* every log line, in order */
    char **lines;
    size_t line_count, line_cap;
    int quiet;                        /* 1: do not echo log lines to stderr */

    /* ACME_E_PENDING mode: answer PENDING and finish `pending_ms` later
     * from etest_drive's loop (acme_engine_done). */
    int pending_publish, pending_unpublish, pending_install;
    unsigned pending_install_fail;    /* this many pending installs finish with ACME_E_STORAGE */
    unsigned pending_ms;
    etest_pending pending[ETEST_MAX_PENDING];
    size_t pending_count;
    unsigned pending_started, pending_finished;
    unsigned pending_woke;            /* finished with an engine descriptor readable right after done */
} etest_host;

void etest_host_init(etest_host *h, acme_responder_set *responders);
void etest_host_clear(etest_host *h);

/* A client on directory_url trusting ca_file, storage in state_dir, the
 * callbacks of h. Log level INFO (DEBUG with ITEST_DEBUG=1). */
acme_client *etest_client_at(etest_host *h, const char *state_dir, const char *directory_url,
                             const char *ca_file);
/* The same on the harness's Pebble. */
acme_client *etest_client(etest_host *h, const char *state_dir);
/* Register the account in state_dir with a client of its own, so that the
 * processes a test forks afterwards share it. */
void etest_register_account(const char *state_dir);

/* acme_engine_new with these options (0 = the engine's default); sets h->engine. */
acme_engine *etest_engine_with(acme_client *c, etest_host *h, const acme_engine_options *o);
acme_engine *etest_engine(acme_client *c, etest_host *h, unsigned max_orders,
                          unsigned retry_min_s, unsigned recheck_s);

/* Declare one certificate: names, challenge preference (NULL = the
 * library's default), profile (may be NULL). Returns acme_engine_manage's code. */
int etest_manage(acme_engine *e, const char *const *names, size_t n,
                 const acme_challenge_type *prefs, size_t npref, const char *profile);
/* One name, default id. */
int etest_manage1(acme_engine *e, const char *name, const acme_challenge_type *prefs,
                  size_t npref);

/* ---- driving ------------------------------------------------------------- */

typedef struct etest_drive_stats {
    unsigned steps;
    uint64_t max_step_us;    /* measured around acme_engine_step by the test */
    unsigned max_step;       /* which step that was (0-based) */
    size_t max_lines[2];     /* the log lines it wrote: [from, to) */
    unsigned zero_waits;     /* turns where the engine asked for a 0 ms wait and no fd was ready */
    double seconds;
} etest_drive_stats;

/* Run fds + poll + step (and finish due pending callbacks) until
 * done(arg) is true (checked before every wait) or timeout_ms passes.
 * Returns 1 if done became true. A step returning an error is logged, not
 * fatal: the engine reports per-certificate failures in its status. */
int etest_drive(etest_host *h, acme_engine *e, int (*done)(etest_host *, void *), void *arg,
                int timeout_ms, etest_drive_stats *st);

/* Ready-made conditions for etest_drive. */
int etest_until_idle(etest_host *h, void *unused);
/* arg: const size_t * — at least that many installs. */
int etest_until_installs(etest_host *h, void *arg);

/* ---- what happened ------------------------------------------------------- */

/* The copy of the last install for this certificate id, or NULL. */
const itest_cert *etest_installed(const etest_host *h, const char *cert_id);
/* Number of installs for this id. */
size_t etest_install_count(const etest_host *h, const char *cert_id);
/* The chain of the last install for id verifies against Pebble's root 0,
 * the key matches, the names are exactly these. Fails the test otherwise. */
void etest_check_installed(const etest_host *h, const char *cert_id, const char *const *names,
                           size_t n);

/* Publishes recorded for this identifier, oldest first (indices into pubs). */
size_t etest_publishes_for(const etest_host *h, const char *identifier, size_t *idx, size_t cap);

/* Index of the first event from `from` on with this code (and this
 * cert_id unless NULL), or (size_t)-1. */
size_t etest_find_event(const etest_host *h, size_t from, acme_event_code code, const char *cert_id);

/* Log lines from index `from` on that contain needle. */
size_t etest_count_lines(const etest_host *h, size_t from, const char *needle);
/* Order URLs from "order: <url> created" lines (from index `from`), in
 * order, duplicates removed. *urls malloc'ed array of malloc'ed strings. */
size_t etest_created_orders(const etest_host *h, size_t from, char ***urls);
void etest_free_strings(char **v, size_t n);
/* Print the last n log lines to stderr (on failure). */
void etest_dump_log(const etest_host *h, size_t n);
/* Log the engine's loop state: idle, timeout, descriptors (on failure). */
void etest_dump_engine(acme_engine *e);

/* acme_engine_status_json parsed; the entry for id (a new reference) or
 * NULL. Fails the test if the JSON is malformed. */
json_t *etest_status(acme_engine *e, const char *id);
/* Convenience: state / last_error strings of id (static copies valid until
 * the next call; "" when null or absent). */
const char *etest_state(acme_engine *e, const char *id);
const char *etest_last_error(acme_engine *e, const char *id);

/* ---- responders ---------------------------------------------------------- */

/* A responder of this kind on 127.0.0.1, port chosen by the kernel (so
 * nothing Pebble validates against), running on its own thread. Publishing
 * to it succeeds; validation through it fails. */
acme_responder *etest_responder_elsewhere(acme_responder_kind kind);
/* The same on ACME_TEST_HTTP_PORT / ACME_TEST_TLS_PORT. */
acme_responder *etest_responder_at_pebble(acme_responder_kind kind);

/* ---- the fake ARI CA stand-in -------------------------------------------- */

typedef struct etest_standin {
    int pid;
    unsigned port;
    char *dir;            /* its scratch directory */
    char *ca_file;        /* trust this for https://127.0.0.1:port */
    char *control;        /* JSON file the stand-in re-reads on every request */
    char *events;         /* JSON lines it appends, one per request it saw */
    char *directory_url;  /* https://127.0.0.1:port/dir */
} etest_standin;

/* Start tests/engine/fake_ari_ca_standin.py (python and script paths from
 * argv) in front of the harness's Pebble, with control_json as the first
 * control file content. */
void etest_standin_start(etest_standin *s, const char *python, const char *script,
                         const char *control_json);
/* Replace the control file atomically. */
void etest_standin_control(etest_standin *s, const char *control_json);
/* Every event so far, as a JSON array (new reference). */
json_t *etest_standin_events(const etest_standin *s);
void etest_standin_stop(etest_standin *s);

/* ---- ARI certificate identifier, computed independently of libacme ------- */

/* base64url(AKI keyIdentifier) "." base64url(serial DER content octets) of
 * the first certificate in pem (RFC 9773 §4.1). malloc'ed. */
char *etest_ari_id(const char *pem);

#endif
