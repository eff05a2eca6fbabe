/* One client set-up for the hosts (see hostclient.h). */
#include "hostclient.h"

#include <string.h>

int hostclient_open(const hostclient_cfg *cfg, acme_client **out)
{
    *out = NULL;
    acme_client *c = NULL;
    int rc = acme_client_new(cfg->directory, &c);
    if (rc != ACME_OK)
        return rc;
    *out = c;
    if (cfg->host && (rc = acme_client_set_host(c, cfg->host, cfg->host_ud)) != ACME_OK)
        return rc;
    if ((rc = acme_client_set_log_level(c, cfg->log_level)) != ACME_OK)
        return rc;
    if ((rc = acme_client_set_storage_dir(c, cfg->state_dir)) != ACME_OK)
        return rc;
    if (cfg->ca_file && (rc = acme_client_set_ca_file(c, cfg->ca_file)) != ACME_OK)
        return rc;
    return acme_client_set_account_key_type(c, cfg->account_key_type);
}

acme_account_params hostclient_account_params(const char *const *contacts, size_t contact_count, int agree_tos,
                                              const char *eab_kid, const char *eab_hmac_key)
{
    acme_account_params ap;
    memset(&ap, 0, sizeof(ap));
    ap.size = sizeof(ap);
    ap.contacts = contacts;
    ap.contact_count = contact_count;
    ap.agree_tos = agree_tos;
    ap.eab_kid = eab_kid;
    ap.eab_hmac_key = eab_hmac_key;
    return ap;
}

static int peek_not_after(void *ud, const acme_certificate *cert)
{
    *(int64_t *)ud = acme_certificate_not_after(cert);
    return ACME_OK;
}

size_t hostclient_newest(acme_client *const *cs, size_t n, const char *id)
{
    size_t best = 0;
    int64_t best_na = 0;
    for (size_t j = 0; n > 1 && j < n; j++) {
        int64_t na = 0;
        if (acme_cert_load(cs[j], id, peek_not_after, &na) == ACME_OK && na > best_na) {
            best_na = na;
            best = j;
        }
    }
    return best;
}
