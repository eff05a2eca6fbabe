/* The client every host sets up the same way: acmectl (issue, renew, run)
 * and mod_acme make a client for a directory, with a state directory, an
 * optional CA file for the ACME server's HTTPS, the account key type, a
 * log level and their host callbacks, then register or find the account
 * from the same few settings. One home for that sequence, on the public
 * API only. Compiled into each host (no library of its own). */
#ifndef ACME_HOSTCLIENT_H
#define ACME_HOSTCLIENT_H

#include <stddef.h>
#include <acme/acme.h>

typedef struct hostclient_cfg {
    const char *directory;
    const char *state_dir;
    const char *ca_file;                  /* NULL: the system store */
    acme_key_type account_key_type;       /* ACME_KEY_DEFAULT: libacme's */
    acme_log_level log_level;
    const acme_host_callbacks *host;      /* NULL: no callbacks */
    void *host_ud;
} hostclient_cfg;

/* Make and configure the client. ACME_OK with *out set; otherwise the
 * code, and *out is the client when acme_client_new succeeded (so the
 * caller can read acme_client_last_error, then free it) or NULL when the
 * directory URL itself was refused. */
int hostclient_open(const hostclient_cfg *cfg, acme_client **out);

/* The account parameters from the settings every host has. */
acme_account_params hostclient_account_params(const char *const *contacts, size_t contact_count, int agree_tos,
                                              const char *eab_kid, const char *eab_hmac_key);

/* With a CA list a certificate that moved is stored at two CAs (the old
 * one at the CA it left): which of the n clients (one per CA, in list
 * order) holds the newest stored certificate id, by not-after; 0 when
 * none holds one. A cluster poll installs that one, or the files would
 * flip between the two. */
size_t hostclient_newest(acme_client *const *cs, size_t n, const char *id);

#endif
