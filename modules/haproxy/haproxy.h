/* The haproxy module's internal contract. HAProxy loads no third-party
 * code, so this module drives it from outside, over its runtime API (the
 * admin socket), and writes the same state to disk so that a restart
 * serves what the socket installed. Files:
 *
 *   haproxy_sock.c  one runtime-API command: connect, send (with an
 *                   optional << payload), read the reply, classify it
 *   haproxy_map.c   http-01: the challenge map (add map / del map)
 *   haproxy_ssl.c   certificates over the socket: transactions, crt-lists,
 *                   tls-alpn-01 challenge certificates, install
 *   haproxy_disk.c  PEM files and crt-list files on disk (atomic), the
 *                   local key check
 *   haproxy_etcd.c  a cluster of HAProxy hosts on etcd: every node's
 *                   answers into this HAProxy (an acme_etcd_sink), this
 *                   node's answers into etcd
 *   config.c        key=value configuration into struct hap
 *   module.c        the entry point and the hooks
 *
 * Everything is synchronous: HAProxy answers on a local socket in
 * microseconds, and every command is bounded by the `timeout` setting. */
#ifndef HAPROXY_HAPROXY_H
#define HAPROXY_HAPROXY_H

#include <stddef.h>

#include <acme/error.h>
#include <acme/module.h>

#define HAP_ERR 1024

/* ---- the socket client (haproxy_sock.c) ----------------------------- */

/* What a reply says. HAProxy 2.6 answers in free text: success is an empty
 * line (map commands) or a known sentence, every error is one or two
 * lines of English. */
typedef enum hap_kind {
    HAP_OK = 0,           /* a known success, or an empty line */
    HAP_EMPTY,            /* zero bytes: HAProxy closed without answering */
    HAP_PERMISSION,       /* "Permission denied": the socket's level is too low */
    HAP_UNKNOWN_COMMAND,  /* "Unknown command": too old, or level too low */
    HAP_NOT_FOUND,        /* key, entry, certificate or transaction absent */
    HAP_UNKNOWN_MAP,      /* the map is not referenced by haproxy.cfg */
    HAP_UNKNOWN_LIST,     /* the crt-list is not referenced by haproxy.cfg */
    HAP_NOT_REFERENCED,   /* "set ssl cert" of a certificate HAProxy does not know */
    HAP_EXISTS,           /* "new ssl cert" of one it knows */
    HAP_BUSY,             /* another certificate's transaction is open */
    HAP_IN_USE,           /* "del ssl cert" of a certificate still in a crt-list */
    HAP_KEY_MISMATCH,     /* commit: key and certificate do not belong together */
    HAP_ERROR             /* anything else: an error sentence */
} hap_kind;

typedef struct hap_sock {
    const char *path;        /* the admin socket */
    unsigned timeout_ms;     /* bound on one command, connect to last byte */
} hap_sock;

/* Send one command and read the whole reply (HAProxy closes the
 * connection after it in non-interactive mode). With payload != NULL the
 * command is sent as "<cmd> <<", then the payload (no empty line inside;
 * a final newline is added if missing), then the empty line that ends it.
 * ACME_OK with *reply (malloc'ed, NUL-terminated, NUL bytes inside turned
 * into spaces, never empty) whatever HAProxy said; otherwise
 * ACME_E_NETWORK or ACME_E_TIMEOUT with one line in err saying what and
 * why, and *reached = 0 if not even the connection was made. A refused or
 * missing socket is retried for 250 ms (HAProxy restarting); once the
 * command is sent nothing is retried. */
int hap_command(const hap_sock *s, const char *cmd, const char *payload, char **reply, int *reached,
                char *err, size_t errlen);

/* Classify a reply. */
hap_kind hap_classify(const char *reply);
/* The reply as one line for messages: lines joined with "; ", trimmed,
 * at most outlen-1 characters. */
void hap_reply_line(const char *reply, char *out, size_t outlen);
/* 1 if some line of the reply is exactly `line`. */
int hap_reply_has_line(const char *reply, const char *line);
/* Whether a word is safe on HAProxy's command line: no space, tab,
 * newline, ';', '\\', '#', quote or control character, not empty. */
int hap_word_ok(const char *s);

/* ---- an instance ------------------------------------------------------ */

typedef struct hap_cert_path {
    char *id;                /* certificate id */
    char *path;              /* its file, as haproxy.cfg names it */
} hap_cert_path;

typedef struct hap_alpn_pub {
    struct hap_alpn_pub *next;
    char *identifier;        /* as the challenge gave it */
    char *token;             /* the challenge it belongs to */
} hap_alpn_pub;

typedef struct hap_cluster hap_cluster;

typedef struct hap {
    acme_module_host host;
    hap_sock sock;
    char *socket_path;

    /* http-01 */
    char *map;               /* map file as haproxy.cfg references it */

    /* certificates */
    char *crt_list;          /* crt-list file of the TLS bind, or NULL */
    char *crt_dir;           /* or the directory of a "crt <dir>/" bind */
    char *cert_dir;          /* where <cert-id>.pem files go */
    char *crt_list_options;  /* "[alpn h2,http/1.1]" etc. for new lines, or NULL */
    unsigned cert_mode;      /* file mode of certificate files (0600) */
    hap_cert_path *paths;    /* cert-path.<id> overrides */
    size_t path_count;

    /* tls-alpn-01 */
    char *alpn_crt_list;     /* crt-list of the acme-tls/1 bind */
    char *alpn_prefix;       /* names of challenge certificates in HAProxy */
    hap_alpn_pub *alpn_pubs; /* what this instance published */

    hap_cluster *cluster;    /* etcd-endpoints given (haproxy_etcd.c), or NULL */

    unsigned types;          /* ACME_MODULE_CHALLENGE bits */
    int unreachable;         /* the last hap_run could not connect */
    char err[HAP_ERR];
} hap;

/* Record a one-line reason for last_error and return code. */
int hap_fail(hap *h, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void hap_log(hap *h, acme_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Run one command; on a reply, *kind and *reply (free it). On no reply,
 * records why (naming the socket) in h->err, sets h->unreachable when the
 * socket could not even be connected to, and returns the code
 * (ACME_E_CALLBACK for a failed exchange, ACME_E_TIMEOUT...). */
int hap_run(hap *h, const char *cmd, const char *payload, char **reply, hap_kind *kind);
/* The message for a connect failure etc. is in h->err. For a reply that
 * is an error: record "HAProxy refused `what`: <reply>" plus a hint for
 * the kinds that have one, and return the matching acme_code. */
int hap_refused(hap *h, const char *what, const char *reply, hap_kind kind);

/* config.c */
int hap_configure(hap *h, const char *const *keys, const char *const *values, size_t n, char *err,
                  size_t errlen);
void hap_config_free(hap *h);

/* haproxy_map.c (http-01) */
int hap_map_publish(hap *h, const char *token, const char *key_authorization);
int hap_map_unpublish(hap *h, const char *token);

/* haproxy_ssl.c */
int hap_alpn_publish(hap *h, const char *identifier, const char *cert_pem, const char *key_pem);
int hap_alpn_unpublish(hap *h, const char *identifier);
/* The name HAProxy knows the challenge certificate for identifier by
 * (malloc'ed), and the SNI the validator sends for it. */
char *hap_alpn_cert_name(const hap *h, const char *identifier);
char *hap_alpn_sni(const char *identifier);
/* Put chain+key where HAProxy serves it, live and on disk. */
int hap_install(hap *h, const char *cert_id, const char *chain_pem, const char *key_pem);
/* The file of a certificate id (malloc'ed), or NULL with h->err set. */
char *hap_cert_file(hap *h, const char *cert_id);

/* haproxy_etcd.c. The etcd-* keys (NULL-terminated); configure reads
 * them (h->cluster stays NULL without etcd-endpoints), start opens the
 * module's own client on etcd and attaches the sink (after the rest of
 * the configuration), free undoes both (before the settings are freed). */
struct modcfg;
extern const char *const hap_etcd_keys[];
int hap_cluster_configure(hap *h, struct modcfg *c);
int hap_cluster_start(hap *h, char *err, size_t errlen);
void hap_cluster_free(hap *h);
/* Around every runtime-API sequence of a hook: the sink runs on libacme's
 * etcd thread. No-ops without a cluster. */
void hap_lock(hap *h);
void hap_unlock(hap *h);
/* After the answer is in this HAProxy: into etcd, and wait until every
 * node's HAProxy has it. ACME_OK without a cluster; on failure h->err says
 * why and the answer is taken out of etcd again. */
int hap_cluster_publish(hap *h, const acme_challenge *ch);
void hap_cluster_unpublish(hap *h, const acme_challenge *ch);

/* haproxy_disk.c */
/* Chain and key as one PEM payload: "\r" and empty lines removed, each
 * part ending in a newline. NULL if either has no PEM block. */
char *hap_pem_payload(const char *chain_pem, const char *key_pem);
/* ACME_OK if the key belongs to the first certificate of the PEM text;
 * ACME_E_KEY_MISMATCH or ACME_E_CRYPTO (unparsable) with h->err set. */
int hap_pem_check(hap *h, const char *pem);
/* Upper-case hex SHA-1 of the first certificate (HAProxy's "SHA1
 * FingerPrint"), malloc'ed, or NULL. */
char *hap_pem_sha1(const char *pem);
/* Replace path with data: temp file (a dot file in the same directory,
 * which HAProxy's directory loading skips), fsync, rename, fsync of the
 * directory. mode for a new file; an existing file keeps its owner and
 * group (when we may) and its mode, minus any bit for others. Unchanged
 * content is not rewritten (*changed = 0). */
int hap_write_file(hap *h, const char *path, const char *data, size_t len, unsigned mode, int *changed);
/* Make sure the crt-list file has a line for cert_path (first word);
 * append "<cert_path>[ <options>]" if not. The file must exist. */
int hap_crt_list_file_add(hap *h, const char *list_path, const char *cert_path, const char *options);
/* 1 if the file exists (0, or -1 with errno for other errors). */
int hap_file_exists(const char *path);

#endif
