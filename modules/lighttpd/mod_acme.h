/* mod_acme: the lighttpd side (the only files including lighttpd's
 * headers). Built against a configured lighttpd source tree of the exact
 * version installed (see fetch-lighttpd-src.sh): struct layouts come from
 * its config.h. */
#ifndef MOD_ACME_H
#define MOD_ACME_H

#include "first.h"

#include "base.h"
#include "plugin.h"

#include "macme.h"

/* Per request (may differ per $HTTP["host"], $HTTP["remoteip"]...). */
typedef struct {
    const buffer *status_url;     /* acme.status-url; NULL = off */
    const array *status_allow;    /* acme.status-allow; NULL = loopback */
} plugin_config;

typedef struct {
    PLUGIN_DATA;
    plugin_config defaults;
    plugin_config conf;
    server *srv;
    macme_conf *mc;     /* NULL: nothing to manage, the module stays out of the way */
    macme_shm *shm;     /* made before lighttpd forks its workers */
    macme_core *core;   /* per worker, after fork */
    fdnode *fdn;
    pid_t parent_pid;   /* server.max-worker: the process to signal */
} plugin_data;

/* Indexes into mod_acme_keys[] (mod_acme_config.c). */
enum {
    K_DIRECTORY, K_CA_FILE, K_STATE_DIR, K_CONTACT, K_AGREE_TOS, K_DOMAINS, K_CHALLENGE,
    K_KEY_TYPE, K_PROFILE, K_EAB_KID, K_EAB_HMAC, K_STATUS_URL, K_STATUS_ALLOW,
    K_RENEW_AFTER, K_RETRY, K_LOG_LEVEL, K_DNS_MODULE, K_DNS_MODULE_CONFIG,
    K_STORAGE, K_ETCD_ENDPOINTS, K_ETCD_PREFIX, K_ETCD_CA_FILE, K_ETCD_USERNAME, K_ETCD_PASSWORD,
    K_ETCD_LOCK_TTL, K_ETCD_NODE_NAME, K_ETCD_POLL, K_MAX_ORDERS,
    K_FALLBACK, K_FALLBACK_EAB, K_COUNT
};

extern const config_plugin_keys_t mod_acme_keys[];

/* Read every acme.* key (and the ssl.* keys that say where certificates
 * go) into a macme_conf. *out stays NULL when nothing is to be managed.
 * Returns 0, or -1 after logging what is wrong, naming the key. */
int mod_acme_config_build(server *srv, plugin_data *p, macme_conf **out);

/* The file name log_error() shows (not the build's relative path). */
#define MOD_ACME_SRC "mod_acme.c"

#define DEFAULT_STATE_DIR "/var/lib/lighttpd/acme"

#endif
