/* acmectl — the command-line host for libacme: what the files of this
 * program share. Each .c file has one job; this header is the contract
 * between them (the options, the exit codes, the session). */
#ifndef ACMECTL_H
#define ACMECTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <poll.h>
#include <sys/socket.h>
#include <acme/acme.h>
#include <acme/responder.h>

/* Exit codes. Documented in doc/man/acmectl.1 (EXIT STATUS); scripts rely
 * on them, so a number never changes meaning. */
enum {
    EXIT_OK = 0,          /* done (also: renew found nothing due) */
    EXIT_USAGE = 1,       /* bad arguments or input, nothing was sent */
    EXIT_ACCOUNT = 2,     /* no account, terms not agreed, EAB needed, account refused */
    EXIT_CHALLENGE = 3,   /* a challenge failed or none could be answered */
    EXIT_NETWORK = 4,     /* CA unreachable, TLS, timeout, malformed answer */
    EXIT_STORAGE = 5,     /* state dir, lock, --out files */
    EXIT_CA_REFUSED = 6,  /* the CA answered with a problem (rate limit, CAA, policy...) */
    EXIT_INSTALL = 7,     /* issued and stored, but the hook's install step failed */
    EXIT_INTERNAL = 8     /* out of memory, crypto failure, a bug */
};

#define MAX_CHALLENGES 5

typedef struct acmectl_opts {
    const char *command;         /* "issue", "renew", "revoke", "account", "run" */
    char **args;                 /* operands after the command */
    int arg_count;

    const char *directory;       /* the first --directory */
#define MAX_DIRECTORIES 8
    const char *directories[MAX_DIRECTORIES]; /* --directory repeated: CA failover, in order */
    size_t directory_count;
    const char *ca_file;
    const char *state_dir;       /* resolved default if not given */

    acme_challenge_type challenges[MAX_CHALLENGES];
    size_t challenge_count;
    int challenges_explicit;     /* --challenge given */

    unsigned http_port, tls_port;
    const char *bind;
    const char *webroot;
    const char *hook;
    int hook_install;            /* call "HOOK install ..." (default on) */
    const char *dns_provider;    /* --dns-provider: a module for dns-01 */
    const char *dns_config;      /* --dns-config: its key=value file */

    acme_key_type key_type;
    acme_key_type account_key_type;
    const char **contacts;
    size_t contact_count;
    int contacts_given;
    int agree_tos;
    const char *eab_kid, *eab_hmac;
    const char *preferred_chain;
    const char *profile;
    const char *out_dir;

    int json;
    int verbosity;               /* -1 quiet, 0 normal, 1 -v, 2 -vv */
    int verbosity_given;         /* -v or -q on the command line */
    const char *status_file;     /* run --status-file */
    const char *not_for_run;     /* an option run does not take, if given */
    int force;                   /* renew --force */
    int reason;                  /* revoke --reason */
    const char *key_file;        /* revoke --key */
    int yes;                     /* account deactivate --yes */
    const char *resolver;        /* dns-persist --resolver ADDR[:PORT] */
    const char *issuer;          /* dns-persist --issuer NAME */
    int64_t persist_until;       /* dns-persist --persist-until UNIXTIME (0: none) */
} acmectl_opts;

/* snprintf for messages: truncation is acceptable there (and gcc's
 * truncation warnings about it are not). */
void bprintf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- progress.c: messages for a person, on stderr ---------------------- */
void progress_init(int verbosity);
/* For `run`: wall-clock time stamps, no "still waiting" ticker, and
 * libacme's errors always shown (nobody prints them at the end).
 * verbosity -2 shows errors only. */
void progress_init_daemon(int verbosity);
/* Change the verbosity later (run: log-level of the configuration). */
void progress_set_verbosity(int verbosity);
void progress_shutdown(void);
/* One line with the time since start. level as libacme's. */
void progress(acme_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* libacme's log callback (ud unused). */
void progress_lib_log(void *ud, acme_log_level level, const char *msg);
/* What the program is blocked on now, for the "still waiting" line;
 * NULL clears it (the last message is used then). */
void progress_activity(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Text from the CA or the network (problem details, identifiers, URLs,
 * contacts, a module's reason) may carry terminal controls: an ESC
 * sequence that rewrites the screen, a newline that forges a line of our
 * own. Every line acmectl prints for a person goes through these, which
 * write C0 controls and DEL as \xHH, as libacme's log lines do
 * (backslashes stay as they are: text that spells "\x1b" is harmless).
 * --json output is escaped by the JSON encoder instead. */
/* Escape into out (always NUL-terminated, cut before an escape that does
 * not fit); returns the length written. */
size_t text_escape(const char *in, char *out, size_t outlen);
/* Escaped copy (malloc'ed), NULL without memory. */
char *text_escape_dup(const char *in);
/* Format, escape the whole line, write it and a newline. */
void print_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- names.c: identifiers given on the command line -------------------- */
/* 0 if name is a DNS name (optionally "*.") or an IP address; otherwise -1
 * with why in err. */
int name_check(const char *name, char *err, size_t errlen);

/* ---- statedir.c ---------------------------------------------------------- */
/* The default state directory (malloc'ed): /var/lib/acmectl for root,
 * else $XDG_STATE_HOME/acmectl or ~/.local/state/acmectl. */
char *state_dir_default(void);
/* mkdir -p (0700 for what we create). 0 or -1 with errno. */
int mkdir_p(const char *path, unsigned mode);
/* Take <dir>/acmectl.lock for this process's life. 0, or -1 with a message. */
int state_dir_lock(const char *dir, char *err, size_t errlen);

/* ---- files.c: --out ------------------------------------------------------- */
/* Write dir/name atomically (temp file, fsync, rename, fsync dir) with mode.
 * 0 or -1 with errno. */
int file_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                      unsigned mode);
/* The same in the directory open as dfd; name is never followed. */
int file_write_atomic_at(int dfd, const char *name, const void *data, size_t len, unsigned mode);
/* <dir>/<id>.key (0600) and <dir>/<id>.crt (0644) from cert, replaced as a
 * pair: on failure both old files are as they were. 0, or -1 with errno
 * and a sentence in err (modules/common/pairfile.h). */
int file_write_pair(const char *dir, const char *id, const acme_certificate *cert, char *err, size_t errlen);
/* Read a whole file (NUL-terminated, malloc'ed). NULL with errno. */
char *file_read_all(const char *path, size_t *len);

/* ---- hook.c --------------------------------------------------------------- */
typedef struct hook_env {
    const char *name, *value;
} hook_env;
/* Run hook with argv[1..] = args (argc of them) and extra environment;
 * stdin /dev/null, stdout to our stderr. Returns the exit status (0..255),
 * 256 + signal if killed, or -1 if it could not be started (errno). */
int hook_run(const char *hook, const char *const *args, size_t argc,
             const hook_env *env, size_t envc);

/* ---- webroot.c ------------------------------------------------------------ */
/* Write root/.well-known/acme-challenge/<token> = key_auth (0644, atomic);
 * 0 or -1 with a message. */
int webroot_publish(const char *root, const char *token, const char *key_auth,
                    char *err, size_t errlen);
/* Remove the file and the directories webroot_publish created (if empty). */
void webroot_unpublish(const char *root, const char *token);

/* ---- builtin.c: libacme's responders ------------------------------------ */
/* Bind and start the responder for http-01 or tls-alpn-01 on the options'
 * port and address, on its own thread. 0, or -1 after a warning that says
 * why (busy port, privileges). */
int builtin_start(const acmectl_opts *o, acme_challenge_type t, acme_responder **out);
/* The same; with serve = 0 the port is bound (connections wait in the
 * kernel's queue) but nothing answers until acme_responder_start_thread:
 * a cluster node first loads the answers other nodes published. */
int builtin_listen(const acmectl_opts *o, acme_challenge_type t, int serve, acme_responder **out);

/* ---- challenge_hook.c: a challenge for the hook ------------------------- */
/* Copied out of libacme's acme_challenge (valid only during a callback). */
typedef struct chal_rec {
    struct chal_rec *next;
    acme_challenge_type type;
    int wildcard;
    char *ident, *ident_type, *token;
    char *auth;                    /* the hook's AUTH argument (uacme's) */
    char *key_auth, *http_path, *dns_name;
    const acme_challenge *live;    /* libacme's object while published (modules need it) */
} chal_rec;
chal_rec *chal_rec_new(const acme_challenge *ch);
void chal_rec_free(chal_rec *x);
/* "HOOK method type ident token auth" with the ACMECTL_ and UACME_
 * environment; hook_run's result. */
int chal_hook_run(const acmectl_opts *o, const char *method, const chal_rec *x);

/* ---- modhost.c: a libacme module (acme_module_load) --------------------- */
/* Modules are loaded on the program's one client (its storage and log).
 * issue/renew call them in the caller's thread (modhost_call); `run`
 * hands them to its engine (modhost_set_engine): libacme's module thread
 * runs the hooks and reports to the engine (modhost_dispatch). */
typedef struct modhost modhost;
typedef struct modhost_params {
    const char *label;             /* for messages: "[module haproxy]", "--dns-provider" */
    const char *path;
    const char *config;            /* "key=value" lines, or NULL */
    acme_client *client;           /* the program's client; load on its thread */
} modhost_params;
/* Load and configure; -1 with the module's or libacme's reason in err. */
int modhost_load(const modhost_params *p, modhost **out, char *err, size_t errlen);
/* Stops the module's thread (a hook in progress finishes first), frees.
 * NULL is fine. */
void modhost_free(modhost *mh);
const char *modhost_label(const modhost *mh);
const char *modhost_name(const modhost *mh);
int modhost_handles(const modhost *mh, acme_challenge_type t);
/* Whether the module has an install hook (worth calling). */
int modhost_installs(const modhost *mh);
/* Synchronous calls (not under an engine). ACME_OK, ACME_E_DECLINED, or a
 * failure with the module's reason in why (one line). */
enum { MODOP_PUBLISH, MODOP_UNPUBLISH, MODOP_INSTALL };
int modhost_call(modhost *mh, int op, const void *object, char *why, size_t whylen);

/* Under an engine (run): acme_module_set_engine. e NULL stops the
 * module's thread (a hook in progress finishes, a wait gives up, queued
 * calls are dropped) and makes calls synchronous again. -1 with why. */
int modhost_set_engine(modhost *mh, acme_engine *e, char *err, size_t errlen);
/* The hook's answer as libacme gives it: under an engine ACME_E_PENDING
 * (the outcome goes to the engine), else as modhost_call without why. */
int modhost_submit(modhost *mh, int op, const void *object);
/* Readable when outcomes wait for modhost_dispatch; -1 before set_engine. */
int modhost_fd(const modhost *mh);
/* On the loop's thread: outcomes to the engine, log lines to the log. */
int modhost_dispatch(modhost *mh);

/* ---- provision.c: who answers which challenge -------------------------- */
typedef struct provision provision;
/* From the options: decide the provider per type; unless lazy, bind and
 * start the built-in responders now. Returns an exit code (EXIT_OK on
 * success), with the reason in err otherwise. */
int provision_start(const acmectl_opts *o, acme_client *client, int lazy, provision **out, char *err,
                    size_t errlen);
void provision_stop(provision *p);
/* The client, so unpublish can tell success from failure. */
void provision_bind_client(provision *p, acme_client *c);
/* Types still usable, in preference order. */
size_t provision_types(const provision *p, acme_challenge_type *out, size_t cap);
/* Types declined since the last call (bit 1 << type); clears them. */
unsigned provision_take_declined(provision *p);
/* The reason the last publish failed hard ("" if none); cleared by reset. */
const char *provision_failure(const provision *p);
void provision_reset_failure(provision *p);
int provision_publish(void *ud, const acme_challenge *ch);
/* Every libacme log line, to learn which challenges were validated. */
int provision_unpublish(void *ud, const acme_challenge *ch);

/* Take everything published down (an interrupt); returns how many. Never
 * returns the lock: the caller exits. */
size_t provision_interrupt(provision *p);

/* ---- route.c: what provision.c and run_route.c share --------------------- */
/* The built-in responder for type t (http-01 or tls-alpn-01), else NULL. */
acme_responder *route_builtin(acme_responder *http, acme_responder *alpn, acme_challenge_type t);
/* What acme_responder_remove wants for t: the token or the identifier. */
const char *route_builtin_key(acme_challenge_type t, const char *token, const char *ident);
/* Put ch into r (route_builtin's); libacme's code. */
int route_builtin_add(acme_responder *r, const acme_challenge *ch);
/* Take a challenge out of r again (r may be NULL). */
void route_builtin_remove(acme_responder *r, acme_challenge_type t, const char *token, const char *ident);
/* dns-persist-01 that nobody publishes: say so; ACME_OK. */
int route_persist(const acme_challenge *ch);

/* ---- signals.c: interrupts ---------------------------------------------- */
/* Block SIGINT/SIGTERM/SIGHUP in every thread and wait for them in one. */
void signals_start(void);
/* What to take down on an interrupt (NULL: nothing). */
void signals_watch(provision *p);

/* ---- output.c: results and errors ---------------------------------------- */
typedef struct result_cert {
    char *id;
    char **names;
    size_t name_count;
    int64_t not_before, not_after;
    char *issuer;
    char *chain_file, *key_file;   /* --out files, or NULL */
    int renewed;                   /* renew: issued now */
    char *error;                   /* renew: this one failed */
    int exit_code;
} result_cert;

typedef struct result {
    const char *command;
    result_cert *certs;
    size_t cert_count;
    /* account show etc. */
    const char *account_url, *account_status, *thumbprint;
    const char *const *contacts;
    size_t contact_count;
    const char *message;           /* a line for a person on success */
} result;

result_cert *result_add_cert(result *r);
void result_clear(result *r);
/* Map a libacme code (in context) to an exit code. */
int exit_code_for(int rc, const acme_client *c, const char *command);
const char *exit_code_name(int code);
/* Print success: JSON on stdout with --json, else a summary. */
void output_success(const acmectl_opts *o, const result *r);
/* Print the failure for a person on stderr (always) and as JSON on stdout
 * (--json). c may be NULL; extra (may be NULL) is acmectl's own
 * explanation, printed before the library's. */
void output_error(const acmectl_opts *o, const result *r, int exit_code, int rc,
                  const acme_client *c, const char *extra);
/* lib with libacme's API advice (agree_tos, eab_kid, acme_cert_load())
 * replaced by acmectl's options; lib itself or buf. */
const char *acmectl_wording(const char *lib, char *buf, size_t len);
/* "2026-11-23T15:04:05Z" */
void format_time(int64_t t, char *buf, size_t len);

/* ---- txt_lookup.c: one TXT query ------------------------------------------ */
#define TXT_MAX 16
#define TXT_LEN 1024
typedef struct txt_answer {
    size_t count;
    char text[TXT_MAX][TXT_LEN];   /* each record's strings joined, controls as '?' */
} txt_answer;
/* The TXT records at name, through resolver ("ADDR[:PORT]", IPv4) or the
 * system's (NULL). 0 (count 0 when the name or record does not exist);
 * -1 with err when the lookup failed. */
int txt_lookup(const char *resolver, const char *name, txt_answer *out, char *err, size_t errlen);

/* ---- session.c: one configured client ------------------------------------ */
typedef struct session {
    const acmectl_opts *o;
    acme_client *c;                /* the first CA's (owned by cas when there is a list) */
    acme_ca_list *cas;             /* issue/renew with several --directory: failover */
    provision *prov;               /* issue/renew only */
    result *res;
    result_cert *current;          /* where install records (NULL: a new entry) */
    int install_failed;            /* the hook's install step failed */
    int out_failed;                /* writing --out failed */
    char install_error[1024];
} session;

enum { SESSION_NO_CHALLENGES, SESSION_CHALLENGES_NOW, SESSION_CHALLENGES_LAZY };

/* Configure a client from the options (no network yet). Returns an exit
 * code; on failure the error is already printed. */
int session_open(session *s, const acmectl_opts *o, result *res, int challenges);
void session_close(session *s);
/* Register or find the account (creating it only with --agree-tos where
 * the CA has terms). Returns a libacme code. */
int session_account(session *s);
/* The exit code for a failed libacme call made in this session. */
int session_exit_code(const session *s, int rc);
/* acmectl's own explanation of the failure (install, --out, a challenge
 * provider), or NULL. */
const char *session_extra_error(const session *s);
/* Copy what a person and --json want to know about a certificate. */
void session_fill_cert(result_cert *rc, const acme_certificate *cert);

/* ---- issue.c: one certificate (a declined type is libacme's to fall back on) */
typedef struct issue_request {
    const char *const *names;
    size_t name_count;
    const char *cert_id;           /* NULL: the library's default */
    acme_key_type key_type;
} issue_request;
/* acme_issue with the types this run can answer; libacme moves on from a
 * declined type by itself. When every type was declined, install_error
 * says so. Returns a libacme code. */
int issue_run(session *s, const issue_request *rq);
/* The same with an explicit list of types (modified in place). */
int issue_run_with(session *s, const issue_request *rq, acme_challenge_type *types, size_t n);

/* ---- ca_failover.c: several --directory (issue, renew) -------------------- */
/* With more than one --directory: put s->c and one client per further
 * directory (configured like it) in a CA list. EXIT_OK or an exit code with
 * err filled. */
int session_open_cas(session *s, char *err, size_t errlen);
/* A client on url configured like the session's (session.c). */
int session_new_client(session *s, const char *url, acme_client **out);
/* acme_issue / acme_renew, through the CA list when there is one. */
int session_issue(session *s, const acme_issue_params *ip);
int session_renew(session *s, const char *id, int force, int *renewed);
/* The client that holds certificate id (the list's stored choice, else the
 * first that has it; s->c without a list). */
acme_client *session_holder(session *s, const char *id);
/* Every stored id at any CA of the session (duplicates skipped by cb). */
int session_cert_list(session *s, int (*cb)(void *ud, const char *id), void *ud);
/* Say which CA issued id and why, after a success (only with a list). */
void session_report_ca(session *s, const char *id);

/* ---- runconf.c: the configuration file of `run` ----------------------------
 * INI-like: [global], [module LABEL], [certificate LABEL]; "key = value";
 * whole-line and " #" comments. Everything acmectl can check without the
 * network is checked here; errors are "FILE:LINE: KEY: why". */
typedef struct run_kv {
    char *key, *value;
    int line;
} run_kv;

typedef struct run_module {
    char *label;
    int line;                      /* of the [module] header */
    char *path;
    run_kv *kv;                    /* the module's own settings, in order */
    size_t kv_count;
} run_module;

typedef struct run_cert {
    char *label;                   /* may be NULL */
    int line;
    char *id;                      /* id =, else the label, else NULL (the first name) */
    char **names;
    size_t name_count;
    int wildcard;                  /* a "*." name */
    acme_key_type key_type;
    int key_type_set;
    acme_challenge_type challenges[MAX_CHALLENGES];
    size_t challenge_count;        /* 0: the global list */
    char *profile, *preferred_chain;
} run_cert;

/* [global] storage = etcd and its settings (doc/cluster.md). */
typedef struct run_etcd {
    int on;                        /* storage = etcd */
    char **endpoints;
    size_t endpoint_count;
    char *prefix, *ca_file, *username, *password, *node_name;
    unsigned lock_ttl, poll;       /* 0: the defaults (15 s, 10 s) */
} run_etcd;
/* [ca LABEL]: one more CA to fail over to (issue 14 part 3), after
 * [global]'s directory when there is one, in file order. */
typedef struct run_ca {
    char *label;
    int line;
    char *directory, *ca_file;     /* ca_file: NULL = [global]'s */
    char *eab_kid, *eab_hmac;
} run_ca;

typedef struct run_config {
    char *file;
    char *directory, *ca_file, *state_dir, *out_dir, *status_file, *bind;
    char *metrics_listen, *metrics_file;  /* loopback ADDR:PORT; a file (run_metrics.c) */
    char **contacts;
    size_t contact_count;
    int agree_tos;
    char *eab_kid, *eab_hmac;
    acme_key_type key_type, account_key_type;
    acme_challenge_type challenges[MAX_CHALLENGES];
    size_t challenge_count;
    unsigned http_port, tls_port;  /* 0: that built-in responder is off */
    int verbosity, verbosity_set;  /* log-level as progress's verbosity */
    unsigned max_age, retry_min, retry_max;
    unsigned max_orders;         /* max-orders: the engine's orders at once, 0 = libacme's 16 */
    char *profile, *preferred_chain;  /* defaults for the certificates */
    run_module *modules;
    size_t module_count;
    run_cert *certs;
    size_t cert_count;
    run_etcd etcd;
    run_ca *cas;
    size_t ca_count;
} run_config;

/* Read and check path. 0, or -1 with the message in err. */
int runconf_load(const char *path, run_config **out, char *err, size_t errlen);
void runconf_free(run_config *cf);
/* The module's settings as "key=value" lines (malloc'ed). */
char *runconf_module_text(const run_module *m);
/* The line to blame for a module's refusal: that of the first of its keys
 * the message names, else the [module] line. */
int runconf_module_line(const run_module *m, const char *message);

/* ---- run_metrics.c: the engine's metrics for a scraper ------------------------
 * Prometheus text from acme_engine_metrics: over HTTP on a loopback
 * listener (metrics-listen, answered on a thread of its own from the
 * loop's last copy) and/or in a file replaced atomically (metrics-file). */
typedef struct run_metrics run_metrics;
/* listen_at, file: may be NULL. NULL with a sentence in err (a bad or
 * non-loopback address, a port in use). */
run_metrics *run_metrics_new(const char *listen_at, const char *file, char *err, size_t errlen);
void run_metrics_free(run_metrics *m);
/* run_listen.c: 0 if v is a loopback ADDR:PORT metrics-listen accepts
 * ("127.0.0.1:9465", "[::1]:9465"; port 0 = any); else -1 and why. */
int run_metrics_check_listen(const char *v, char *err, size_t errlen);
int run_listen_parse(const char *v, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen);
/* From the loop, after a step: make the metrics, hand them to the
 * listener's thread, rewrite metrics-file if they changed. 0, or -1 with
 * errno when the file could not be written (warned about unless
 * quiet_errors). */
int run_metrics_update(run_metrics *m, acme_engine *e, int quiet_errors);

/* ---- run_route.c: the host callbacks of `run` ------------------------------
 * publish: the first module that handles the type (on libacme's module
 * thread: the answer is ACME_E_PENDING, the outcome goes to the engine),
 * else the built-in responder of the type, else ACME_E_DECLINED.
 * install: out-dir, then every module with an install hook (on its
 * thread too). */
typedef struct router router;
typedef struct router_params {
    modhost **modules;
    size_t module_count;
    acme_responder *http, *alpn;   /* NULL: not running */
    const char *out_dir;           /* NULL: none */
} router_params;
router *router_new(const router_params *p);
void router_free(router *r);
/* The engine to report asynchronous results to. */
void router_bind_engine(router *r, acme_engine *e);
int router_publish(void *ud, const acme_challenge *ch);
int router_unpublish(void *ud, const acme_challenge *ch);
int router_install(void *ud, const acme_certificate *cert);
/* Whether something here answers type t. */
int router_serves(const router *r, acme_challenge_type t);

/* ---- cluster.c: run with storage = etcd (doc/cluster.md) -------------------
 * The host callbacks wrap the router's: publish also shares a built-in
 * responder's answer through etcd and waits for every node; install
 * remembers what this node installed; cluster_tick installs what other
 * nodes stored. */
typedef struct cluster cluster;
int cluster_storage(acme_client *c, const run_etcd *cfg);
cluster *cluster_new(acme_client *c, router *rt, acme_responder *http, acme_responder *alpn, const run_etcd *cfg);
void cluster_bind_engine(cluster *cl, acme_engine *e);
/* [ca NAME] sections: each CA's client (the first included) whose stored
 * certificates the poll reads; the newest of an id is installed. */
int cluster_poll_client(cluster *cl, acme_client *c);
void cluster_free(cluster *cl);
int cluster_publish(void *ud, const acme_challenge *ch);
int cluster_unpublish(void *ud, const acme_challenge *ch);
int cluster_install(void *ud, const acme_certificate *cert);
void cluster_tick(cluster *cl);
int cluster_timeout_ms(const cluster *cl);
/* The engine's status JSON with "storage_error" first (the etcd health,
 * "" while etcd answers). Valid until the next call. */
const char *cluster_status(cluster *cl, const char *engine_json);
/* The modules' descriptors (readable: outcomes to dispatch) into fds,
 * at most cap; returns how many. */
int router_poll_fds(const router *r, struct pollfd *fds, size_t cap);
/* Before a step: the modules' finished calls to the engine (never blocks). */
void router_collect(router *r);
/* After a step: forget what modules were handed once the engine is idle. */
void router_tick(router *r);
/* Shutdown: stop the modules' threads (a call in progress finishes), then
 * take down everything that may still be published. Before
 * acme_engine_free. */
void router_shutdown(router *r);

/* ---- commands -------------------------------------------------------------- */
int cmd_issue(const acmectl_opts *o);
int cmd_renew(const acmectl_opts *o);
int cmd_revoke(const acmectl_opts *o);
int cmd_account(const acmectl_opts *o);
int cmd_run(const acmectl_opts *o);
int cmd_dns_persist(const acmectl_opts *o);

#endif
