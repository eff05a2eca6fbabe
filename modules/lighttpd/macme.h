/* mod_acme internals that do not depend on lighttpd's headers.
 *
 * mod_acme is split in two halves:
 *   - the lighttpd glue (mod_acme.c, mod_acme_config.c): hooks, config
 *     keys, the request handlers; the only files that include lighttpd's
 *     headers;
 *   - the ACME side (macme_*.c): files on disk, the shared challenge
 *     table, the tls-alpn-01 files and the driver around libacme's engine.
 * All ACME logic stays in libacme; these files only connect it to a web
 * server that restarts gracefully and may run several worker processes. */
#ifndef MACME_H
#define MACME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <acme/acme.h>

#include "afile.h"

#define MACME_MAX_ALPN_DIRS 8
#define MACME_ERRLEN 512

/* One certificate the module keeps valid: one acme.domains list and the
 * ssl.pemfile / ssl.privkey that serve it. */
typedef struct macme_cert {
    char *id;            /* libacme's cert id: the first name, "*." as "_." */
    char **names;
    size_t name_count;
    char *pemfile;       /* ssl.pemfile in scope */
    char *privkey;       /* ssl.privkey in scope, or NULL: key appended to pemfile */
    char *where;         /* the config block, for messages */
} macme_cert;

/* Everything the module was configured with (see doc/lighttpd.md). */
/* One CA of acme.fallback (CA failover after acme.directory). */
typedef struct macme_ca {
    char *name;
    char *directory;
    char *eab_kid, *eab_hmac;
} macme_ca;

typedef struct macme_conf {
    char *directory;
    macme_ca *fallback;          /* acme.fallback, in order; trust: acme.ca-file */
    size_t fallback_count;
    char *ca_file;
    char *state_dir;
    char **contacts;
    size_t contact_count;
    int agree_tos;
    acme_challenge_type challenges[5];  /* every type at most once */
    size_t challenge_count;
    acme_key_type key_type;
    char *profile;
    char *eab_kid;
    char *eab_hmac;
    unsigned renew_after_s;      /* acme.renew-after-seconds -> max_age_s */
    unsigned retry_s;            /* acme.retry-seconds -> retry_min_s */
    unsigned max_orders;         /* acme.max-orders -> max_orders (0: libacme's 16) */
    acme_log_level log_level;
    char *alpn_dirs[MACME_MAX_ALPN_DIRS];  /* every distinct ssl.acme-tls-1 */
    size_t alpn_dir_count;
    char *dns_module;            /* acme.dns-module: a libacme module for dns-01, dns-account-01
                                  * (and dns-persist-01, which it checks or creates once) */
    char *dns_module_config;     /* "key=value\n"... */
    macme_cert *certs;
    size_t cert_count;
    /* acme.storage = "etcd": the state lives in an etcd cluster shared
     * with other hosts (doc/cluster.md); acme.state-dir then holds only
     * the leader lock of this host's workers. */
    int storage_etcd;
    char **etcd_endpoints;       /* acme.etcd-endpoints */
    size_t etcd_endpoint_count;
    char *etcd_prefix;           /* acme.etcd-prefix, NULL: libacme's default */
    char *etcd_ca_file;
    char *etcd_username;
    char *etcd_password;
    char *etcd_node_name;
    unsigned etcd_lock_ttl;      /* acme.etcd-lock-ttl, 0: libacme's default */
    unsigned etcd_poll_s;        /* acme.etcd-poll-seconds: look for certificates other hosts stored */
} macme_conf;

void macme_conf_free(macme_conf *mc);
/* The cert whose libacme id is id, or NULL. */
const macme_cert *macme_conf_cert(const macme_conf *mc, const char *id);

/* ---- files (macme_files.c) ---------------------------------------------- */

/* mkdir -p, the directory part of a path, comparing a file with bytes:
 * afile_mkdirs, afile_dirname, afile_equals (modules/common/afile.h). */
/* Replace path atomically (temp file in the same directory, rename): a
 * reader sees the old content or the new, never a mix. durable: fsync the
 * file and the directory too (certificates; not the short-lived
 * challenge files, which a restart publishes again anyway). */
int macme_write_atomic(const char *path, const void *data, size_t len, mode_t mode, int durable,
                       char *err, size_t errlen);
/* Put a chain and key where cert's files are, unless they already hold
 * exactly that (*changed = 0). The key (or a pemfile holding it) is 0600.
 * With ssl.privkey the two files are replaced as a pair (pairfile.h): on
 * failure both are as they were. */
int macme_install_files(const macme_cert *cert, const char *chain_pem, const char *key_pem,
                        int *changed, char *err, size_t errlen);
/* A self-signed P-256 certificate for cert's names, so that lighttpd can
 * start before the CA issued one. */
int macme_placeholder(const macme_cert *cert, char **chain_pem, char **key_pem,
                      char *err, size_t errlen);

/* ---- certificate files written off the loop (macme_install.c) --------- */

typedef struct macme_installer macme_installer;
/* tag: what the loop hands back to the engine (the acme_certificate of a
 * PENDING install), or NULL. err is "" on success. */
typedef void (*macme_install_done)(void *ud, const macme_cert *cert, const void *tag, int64_t not_after, int rc,
                                   int changed, const char *err);
/* Starts the writer thread. */
int macme_installer_new(macme_installer **out);
/* Readable while finished installs wait for macme_installer_collect. */
int macme_installer_fd(const macme_installer *in);
/* Copies the texts; the writes happen in submission order. */
int macme_installer_submit(macme_installer *in, const macme_cert *cert, const char *chain_pem, const char *key_pem,
                           int64_t not_after, const void *tag);
/* On the loop's thread: done() for every finished install. */
void macme_installer_collect(macme_installer *in, macme_install_done done, void *ud);
/* Submitted and not yet collected. */
size_t macme_installer_busy(macme_installer *in);
/* Finishes what is queued (nothing is dropped), then stops the thread. */
void macme_installer_free(macme_installer *in);

/* ---- the shared table (macme_shm.c) ------------------------------------- */

/* A MAP_SHARED mapping made before lighttpd forks its workers: the
 * http-01 answers and the status document, written by the worker that
 * runs the engine and read by every worker, and by the old generation
 * that a graceful restart leaves serving for a while (macme_shm.c). */
typedef struct macme_shm macme_shm;

macme_shm *macme_shm_new(void);
void macme_shm_free(macme_shm *s);
/* Drops the answers earlier generations put and this one did not put
 * again: called once this generation's engine has loaded what is current. */
void macme_shm_sweep(macme_shm *s);
/* 1 for lighttpd's first generation, then one more per restart: what a
 * log line shows to tell the table was handed over. */
unsigned macme_shm_epoch(macme_shm *s);
/* ACME_E_TOO_LARGE when the table is full or a value too long. */
int macme_shm_put_token(macme_shm *s, const char *token, const char *key_auth);
void macme_shm_del_token(macme_shm *s, const char *token);
/* Copies the key authorization for token into out; its length, 0 if none. */
size_t macme_shm_get_token(macme_shm *s, const char *token, char *out, size_t cap);
/* -1 when another worker is reading it: not written (the leader's loop
 * does not wait; it tries again at its next tick). */
int macme_shm_set_status(macme_shm *s, const char *json);
/* A malloc'ed copy of the last status document, or NULL if none yet. */
char *macme_shm_get_status(macme_shm *s);
/* The same for the engine's metrics (Prometheus text, acme_engine_metrics). */
int macme_shm_set_metrics(macme_shm *s, const char *text);
char *macme_shm_get_metrics(macme_shm *s);

/* ---- tls-alpn-01 files (macme_alpn.c) ----------------------------------- */

/* <dir>/<sni>.crt.pem and <dir>/<sni>.key.pem, in every dir; sni is the
 * identifier lower-cased, or for an IP address its reverse-DNS name. */
int macme_alpn_publish(char *const *dirs, size_t n, const acme_challenge *ch,
                       char *err, size_t errlen);
int macme_alpn_unpublish(char *const *dirs, size_t n, const acme_challenge *ch);
/* The same by identifier (ident_type "dns" or "ip"): answers another host
 * published (macme_etcd.c). */
int macme_alpn_write(char *const *dirs, size_t n, const char *ident_type, const char *ident, const char *cert,
                     const char *key, char *err, size_t errlen);
int macme_alpn_remove(char *const *dirs, size_t n, const char *ident_type, const char *ident);
/* The SNI name a validator sends for this identifier (RFC 8737/8738). */
int macme_alpn_sni_name(const char *ident_type, const char *ident, char *out, size_t cap);

/* ---- a cluster on etcd (macme_etcd.c) ---------------------------------- */

/* c's storage as configured: acme.state-dir, or the etcd cluster. */
int macme_storage_set(const macme_conf *mc, acme_client *c);

typedef struct macme_cluster macme_cluster;

/* On the leader's client (etcd storage): every answer any host publishes
 * goes into shm (http-01) and the ssl.acme-tls-1 files (tls-alpn-01). */
int macme_cluster_new(const macme_conf *mc, macme_shm *shm, acme_client *c,
                      void (*log)(void *ud, acme_log_level level, const char *msg), void *log_ud,
                      macme_cluster **out);
void macme_cluster_free(macme_cluster *cl);
/* With acme.fallback: every CA's client, primary first, whose stored
 * certificates the poll reads (the newest of an id wins). Without, the
 * poll reads the client given to macme_cluster_new. */
int macme_cluster_poll_client(macme_cluster *cl, acme_client *c);
/* After the local publish: share the answer. ACME_E_PENDING: the engine
 * hears the outcome from macme_cluster_tick (acme_engine_done). */
int macme_cluster_publish(macme_cluster *cl, const acme_challenge *ch);
void macme_cluster_unpublish(macme_cluster *cl, const acme_challenge *ch);
/* Hands finished publishes to e; every acme.etcd-poll-seconds loads the
 * stored certificates not being ordered here and calls install (which
 * writes only what differs from the files). */
void macme_cluster_tick(macme_cluster *cl, acme_engine *e, int (*install)(void *ud, const acme_certificate *cert),
                        void *ud);
/* When the next tick is due (ms), 50 while a publish waits. */
int macme_cluster_timeout_ms(const macme_cluster *cl);
/* How many answers (any host's) this host serves now: a graceful restart
 * waits for 0, since the new generation starts with an empty table and a
 * validator may be on its way. */
unsigned macme_cluster_answers(const macme_cluster *cl);
/* "" or etcd's last failure (which endpoint, what it answered). */
const char *macme_cluster_health(macme_cluster *cl);

/* ---- a tick's cost to the loop (macme_tick.c) --------------------------- */

/* The parts of one tick, in order; a tick that waited says in which. */
typedef enum macme_part {
    MACME_PART_INSTALLS,   /* finished certificate writes collected */
    MACME_PART_CLUSTER,    /* acme.storage = "etcd": other hosts' answers and certificates */
    MACME_PART_ENGINE,     /* acme_engine_step (and the host callbacks it calls) */
    MACME_PART_RESTART,    /* the graceful-restart check */
    MACME_PART_FD_SYNC,    /* the epoll set and the timer */
    MACME_PART_STATUS,     /* the account watch, the status document and the metrics */
    MACME_PART_N
} macme_part;

/* Over a generation's ticks. */
typedef struct macme_tick_stats {
    uint64_t longest_us;          /* wall clock of the longest tick */
    uint64_t longest_cpu_us;      /* the most CPU time one tick took */
    long longest_waits;           /* voluntary switches in the longest tick */
    long longest_preempted;       /* involuntary ones in it */
    unsigned long ticks, ticks_waited;
    unsigned long waited_in[MACME_PART_N];   /* ticks that waited in that part */
    unsigned long last_wait_tick;            /* the last tick that waited (1 = first), 0: none */
    unsigned last_wait_mask;                 /* its parts that waited (1 << macme_part) */
    long last_wait_waits;
    uint64_t last_wait_us;
} macme_tick_stats;

/* One tick being measured. */
typedef struct macme_tick {
    int have_ru;
    uint64_t t0, c0;
    long vol, invol0;
    long part_waits[MACME_PART_N];
    /* set by macme_tick_end */
    uint64_t wall_us, cpu_us;
    long waits, preempted;
    unsigned mask;
} macme_tick;

void macme_tick_begin(macme_tick *t);
/* Part p just ended: its voluntary switches are counted to it. */
void macme_tick_part(macme_tick *t, macme_part p);
/* The tick ended: its figures into t and s. */
void macme_tick_end(macme_tick *t, macme_tick_stats *s);
/* s as it would be if t ended now (the status document written inside a
 * tick shows that tick too: its longest_tick_us is never below the
 * engine's longest step). */
void macme_tick_peek(const macme_tick *t, const macme_tick_stats *s, macme_tick_stats *out);
const char *macme_part_name(macme_part p);
/* counts NULL: the names of mask's parts ("engine, fd_sync"); else every
 * part with a count ("engine 2, status 1"). "" if none. */
void macme_parts_text(unsigned mask, const unsigned long *counts, char *out, size_t cap);

/* ---- the driver (macme_core.c) ------------------------------------------ */

typedef struct macme_core macme_core;

typedef struct macme_core_host {
    void *ud;
    void (*log)(void *ud, acme_log_level level, const char *msg);
    /* Ask the server for a graceful restart (new certificates on disk). */
    void (*restart)(void *ud);
} macme_core_host;

/* conf and shm must outlive the core. Nothing is contacted yet. */
int macme_core_new(const macme_conf *conf, macme_shm *shm, const macme_core_host *host,
                   macme_core **out, char *err, size_t errlen);
void macme_core_free(macme_core *k);
/* One descriptor for the server's event loop (readable: call
 * macme_core_ready). Stable for the core's life. */
int macme_core_fd(const macme_core *k);
/* The descriptor was readable. Never blocks. */
void macme_core_ready(macme_core *k);
/* Once a second: become the leader if nobody is, collect the account
 * registration, step the engine. Never blocks. */
void macme_core_tick(macme_core *k);
/* 1 if this process runs the engine. */
int macme_core_is_leader(const macme_core *k);

/* At start-up, before the TLS module reads its files: put every stored,
 * still valid certificate on disk (so a crash between two renames, or a
 * restored state directory, never leaves lighttpd with files that do not
 * match) and a self-signed placeholder where there is no file at all.
 * Storage only, no network. Returns ACME_OK or fills err. */
int macme_prepare_files(const macme_conf *conf, void (*log)(void *ud, acme_log_level, const char *),
                        void *ud, char *err, size_t errlen);

#endif
