/* acmectl revoke CERTFILE [--reason N] [--key KEYFILE]: ask the CA to
 * revoke a certificate. Signed by the account key, or with --key by the
 * certificate's own key (which needs no account: the way to revoke a
 * certificate whose key leaked when the account is gone). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acmectl.h"

static void wipe_free(char *p, size_t len)
{
    if (!p)
        return;
    volatile char *v = p;
    for (size_t i = 0; i < len; i++)
        v[i] = 0;
    free(p);
}

int cmd_revoke(const acmectl_opts *o)
{
    result res = { .command = "revoke" };
    char err[600];
    if (o->arg_count != 1) {
        output_error(o, &res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL,
                     "revoke needs exactly one certificate file: acmectl revoke CERTFILE [--reason N] [--key KEYFILE]");
        return EXIT_USAGE;
    }
    size_t cert_len = 0, key_len = 0;
    char *cert = file_read_all(o->args[0], &cert_len);
    if (!cert || !strstr(cert, "-----BEGIN CERTIFICATE-----")) {
        bprintf(err, sizeof(err), "%s: %s", o->args[0], cert ? "no PEM certificate in it" : strerror(errno));
        free(cert);
        output_error(o, &res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL, err);
        return EXIT_USAGE;
    }
    char *key = NULL;
    if (o->key_file && !(key = file_read_all(o->key_file, &key_len))) {
        bprintf(err, sizeof(err), "--key %s: %s", o->key_file, strerror(errno));
        free(cert);
        output_error(o, &res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL, err);
        return EXIT_USAGE;
    }
    session s;
    int code = session_open(&s, o, &res, SESSION_NO_CHALLENGES);
    if (code == EXIT_OK) {
        progress(ACME_LOG_INFO, "revoking %s (reason %d), signed by the %s key", o->args[0], o->reason,
                 key ? "certificate" : "account");
        int rc = acme_revoke(s.c, cert, cert_len, o->reason, key, key_len);
        if (rc != ACME_OK) {
            code = session_exit_code(&s, rc);
            output_error(o, &res, code, rc, s.c, NULL);
        } else {
            bprintf(err, sizeof(err), "revoked %s", o->args[0]);
            res.message = err;
            output_success(o, &res);
        }
    }
    session_close(&s);
    free(cert);
    wipe_free(key, key_len);
    return code;
}
