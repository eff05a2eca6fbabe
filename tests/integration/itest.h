/* Shared helpers for the integration programs (tests/integration/it_*.c).
 *
 * Every program runs under tests/harness/with-pebble, which describes the
 * throwaway Pebble CA through ACME_TEST_* variables. The helpers use only
 * libacme's public API; certificates are checked independently with gnutls
 * and Pebble's management interface is read with libcurl, so a test never
 * trusts libacme to judge its own output. */
#ifndef ITEST_H
#define ITEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <acme/acme.h>
#include <acme/responder.h>

/* ---- failing loudly ------------------------------------------------------ */

/* Print file:line, what was expected, the client's last error and problem
 * (when c is not NULL), then exit(1). */
void itest_fail(const char *file, int line, const char *expr, const acme_client *c,
                const char *fmt, ...) __attribute__((noreturn, format(printf, 5, 6)));
void itest_fail_code(const char *file, int line, const char *expr, const acme_client *c,
                     int got, int want) __attribute__((noreturn));

#define CHECK(c, expr) \
    do { if (!(expr)) itest_fail(__FILE__, __LINE__, #expr, (c), NULL); } while (0)
#define CHECK_MSG(c, expr, ...) \
    do { if (!(expr)) itest_fail(__FILE__, __LINE__, #expr, (c), __VA_ARGS__); } while (0)
#define CHECK_CODE(c, call, want) \
    do { int rc_ = (call); \
         if (rc_ != (want)) itest_fail_code(__FILE__, __LINE__, #call, (c), rc_, (want)); \
    } while (0)
#define CHECK_OK(c, call) CHECK_CODE(c, call, ACME_OK)

/* ---- environment --------------------------------------------------------- */

/* The test's name, used as log prefix and in state dir names. Call first. */
void itest_init(const char *name);
/* Print PASS and remove scratch directories this program made itself. */
void itest_done(void);
/* The variable's value; fails with a clear message if unset or empty. */
const char *itest_env(const char *name);
/* A port from a numeric variable (ACME_TEST_HTTP_PORT...). */
unsigned itest_env_port(const char *name);
/* A fresh, empty directory under ACME_TEST_TMPDIR (or $TMPDIR when the
 * test does not need Pebble). malloc'ed. */
char *itest_fresh_dir(const char *label);

/* ---- the host side of a client ------------------------------------------- */

/* A copy of what the install callback received. */
typedef struct itest_cert {
    char *chain_pem;
    char *key_pem;
    char **names;
    size_t name_count;
    int64_t not_before, not_after;
    char *issuer;
    char *id;
} itest_cert;

void itest_cert_clear(itest_cert *ic);

#define ITEST_MAX_TXT 16

/* The host callbacks every test client uses. dns-01 is published through
 * pebble-challtestsrv; other types go to `responders` when set. */
typedef struct itest_host {
    acme_responder_set *responders;     /* http-01 / tls-alpn-01, or NULL */
    int install_calls;
    int install_result;                 /* what install returns (ACME_OK) */
    itest_cert last;                    /* the last installed certificate */
    int publish_calls, unpublish_calls;
    int outstanding;                    /* published and not yet unpublished */
    unsigned types_seen;                /* bit (1 << acme_challenge_type) */
    /* dns-01 TXT records currently set, so that unpublishing one value of a
     * name shared by two (wildcard + base name) keeps the other. */
    struct { char *host; char *value; } txt[ITEST_MAX_TXT];
    size_t txt_count;
    unsigned log_count;
    unsigned log_bad_nonce;             /* log lines mentioning badNonce */
} itest_host;

void itest_host_init(itest_host *h);
void itest_host_clear(itest_host *h);

/* A client on directory ACME_TEST_DIRECTORY trusting ACME_TEST_CA_FILE, with
 * storage in state_dir and the host callbacks of h. Fails the test on error.
 * ITEST_DEBUG=1 in the environment turns on debug logging. */
acme_client *itest_client(itest_host *h, const char *state_dir);
/* Same, for any directory URL and CA file (the fault server). */
/* A client with the given callbacks, trust, storage and log level (the
 * shared part of itest_client_at and the engine tests' etest_client_at). */
acme_client *itest_client_with(const acme_host_callbacks *cb, void *ud, const char *state_dir,
                               const char *directory_url, const char *ca_file);
/* Fail unless Pebble's log says it rejects 50 % of nonces. */
void itest_expect_nonce_rejection(void);
acme_client *itest_client_at(itest_host *h, const char *state_dir,
                             const char *directory_url, const char *ca_file);

/* Register with agree_tos and one contact (may be NULL). Checks the account
 * is valid and has a URL. */
void itest_register(acme_client *c, const char *contact);

/* ---- issuance with every check ------------------------------------------- */

typedef struct itest_issue {
    const char *const *names;
    size_t name_count;
    acme_key_type key_type;                  /* ACME_KEY_DEFAULT = P-256 */
    const acme_challenge_type *challenges;   /* NULL = dns-01 only */
    size_t challenge_count;
    const char *preferred_chain;
    const char *root_pem;                    /* trust anchor; NULL = Pebble root 0 */
} itest_issue;

/* acme_issue, then: install called exactly once, nothing left published,
 * the chain verifies against the root, the leaf's key is the installed key
 * and of the requested type, the leaf names are exactly the requested ones,
 * the reported issuer is the root's CN. Returns h->last. */
const itest_cert *itest_issue_checked(acme_client *c, itest_host *h, const itest_issue *p);

/* ---- Pebble management and certificates ---------------------------------- */

/* GET ACME_TEST_MGMT + path, trusting ACME_TEST_CA_FILE. Returns the HTTP
 * status; *body malloc'ed (may be NULL to discard). */
long itest_mgmt_get(const char *path, char **body);
/* Pebble's root (index 0 = the default chain's). malloc'ed PEM; fails the
 * test if absent. */
char *itest_pebble_root(int index);
/* The subject CN of the first certificate in pem. malloc'ed. */
char *itest_subject_cn(const char *pem);
/* The issuer CN of the last certificate in a chain. malloc'ed. */
char *itest_top_issuer_cn(const char *chain_pem);
/* 1 if the chain (leaf first) verifies up to root_pem; on failure *why says
 * what gnutls reported (static storage). */
int itest_chain_verifies(const char *chain_pem, const char *root_pem, const char **why);
/* 1 if the leaf's public key is the public half of key_pem. */
int itest_key_matches(const char *chain_pem, const char *key_pem);
/* "P-256", "P-384", "RSA-2048"... for the leaf's key (static storage). */
const char *itest_leaf_key_kind(const char *chain_pem);
/* 1 if the leaf's SANs (DNS names and IPs as text) are exactly names. */
int itest_leaf_names_are(const char *chain_pem, const char *const *names, size_t n);
/* The leaf's serial as Pebble prints it: lower-case hex, no leading zeros. */
char *itest_leaf_serial(const char *chain_pem);
/* The status of a certificate at Pebble: "Valid" / "Revoked", and the
 * revocation reason (-1 if none). */
void itest_cert_status(const char *chain_pem, char **status, int *reason);

/* ---- storage snapshots (for "nothing stored changed") -------------------- */

/* A sorted "path\0content" listing of every file under dir. */
typedef struct itest_snapshot {
    char **paths;
    char **contents;
    size_t *lens;
    size_t count;
} itest_snapshot;

void itest_snapshot_take(const char *dir, itest_snapshot *s);
/* 1 if identical; otherwise prints the differences and returns 0. */
int itest_snapshot_same(const itest_snapshot *a, const itest_snapshot *b);
void itest_snapshot_free(itest_snapshot *s);
/* Copy a directory tree (files and dirs, modes kept). */
void itest_copy_tree(const char *from, const char *to);

/* ---- small things ---------------------------------------------------------- */

void itest_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *itest_strdup(const char *s);
/* strcmp equality that is false (not a crash) when either side is NULL. */
int itest_streq(const char *a, const char *b);
char *itest_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- built-in responders on the ports Pebble validates ------------------- */

/* Start the library's http-01 responder on 127.0.0.1:ACME_TEST_HTTP_PORT
 * and/or the tls-alpn-01 one on 127.0.0.1:ACME_TEST_TLS_PORT, each on its
 * own thread, and fill set. */
void itest_responders_start(acme_responder_set *set, int http01, int tlsalpn01);
void itest_responders_stop(acme_responder_set *set);

#endif
