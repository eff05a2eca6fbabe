/* Revocation (RFC 8555 §7.6), signed by the account key or by the
 * certificate's own key. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "reentry.h"

static int reason_ok(int reason)
{
    /* RFC 5280 codes a subscriber may ask for; 2 (cACompromise) and the
     * CA-only codes are not ours to claim. */
    return reason == 0 || reason == 1 || (reason >= 3 && reason <= 5);
}

ACME_EXPORT int acme_revoke(acme_client *c, const char *cert_pem, size_t cert_len, int reason,
                            const char *key_pem, size_t key_len)
{
    int refused = reentry_refused(c, "acme_revoke");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    if (!cert_pem || !cert_len)
        return client_fail(c, ACME_E_INVALID_ARG, "revoke: no certificate given");
    if (!reason_ok(reason))
        return client_fail(c, ACME_E_INVALID_ARG, "revoke: reason %d is not one a subscriber may give "
                    "(0 unspecified, 1 keyCompromise, 3 affiliationChanged, 4 superseded, "
                    "5 cessationOfOperation)", reason);
    char *der = NULL;
    int rc = cert_leaf_b64der(cert_pem, cert_len, &der);
    if (rc)
        return client_fail(c, rc, "revoke: the certificate is not PEM (%s)", acme_strerror(rc));
    acme_key *cert_key = NULL;
    if (key_pem) {
        rc = key_from_pem(key_pem, key_len, &cert_key);
        if (rc)
            rc = client_fail(c, rc, "revoke: the certificate key cannot be read (%s)", acme_strerror(rc));
        else if ((rc = cert_matches_key(cert_pem, cert_len, cert_key)))
            rc = client_fail(c, rc, "revoke: the key given is not the certificate's key");
    }
    if (!rc)
        rc = cert_key ? net_directory(c) : account_ensure(c);
    if (!rc && !c->url_revoke)
        rc = client_fail(c, ACME_E_UNSUPPORTED, "revoke: the CA's directory has no revokeCert URL");
    if (!rc) {
        json_t *p = json_pack("{s:s,s:i}", "certificate", der, "reason", reason);
        char *text = p ? json_text(p) : NULL;
        json_decref(p);
        rc = text ? net_post(c, "revocation", c->url_revoke, text, cert_key, NULL, NULL) : ACME_E_NOMEM;
        free(text);
        if (!rc)
            alog(c, ACME_LOG_INFO, "certificate revoked (reason %d, signed by the %s key)", reason,
                 cert_key ? "certificate" : "account");
    }
    key_free(cert_key);
    free(der);
    return rc;
}
