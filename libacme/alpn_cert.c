/* tls-alpn-01 challenge certificates (RFC 8737 §3).
 * See crypto.h for the contract. */
#include "crypto.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <acme/error.h>


#define ACME_IDENTIFIER_OID "1.3.6.1.5.5.7.1.31"
#define CN_MAX 64
#define DAY 86400

static char *dup_datum(const gnutls_datum_t *d)
{
    char *s = malloc((size_t)d->size + 1);
    if (s) {
        memcpy(s, d->data, d->size);
        s[d->size] = '\0';
    }
    return s;
}

static int plausible_dns(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

int alpn_cert_create(const char *identifier, int is_ip, const char *key_auth,
                     char **cert_pem, char **key_pem)
{
    if (!cert_pem || !key_pem)
        return ACME_E_INVALID_ARG;
    *cert_pem = NULL;
    *key_pem = NULL;
    if (!identifier || !key_auth || !*key_auth)
        return ACME_E_INVALID_ARG;

    unsigned char ip[16];
    unsigned iplen = 0;
    if (is_ip) {
        if (inet_pton(AF_INET, identifier, ip) == 1)
            iplen = 4;
        else if (inet_pton(AF_INET6, identifier, ip) == 1)
            iplen = 16;
        else
            return ACME_E_INVALID_ARG;
    } else if (!plausible_dns(identifier)) {
        return ACME_E_INVALID_ARG;
    }

    /* acmeIdentifier's extnValue is the DER of an OCTET STRING holding the
     * digest, so the extension's own OCTET STRING wraps another one. */
    unsigned char ext[2 + 32] = { 0x04, 0x20 };
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, key_auth, strlen(key_auth), ext + 2) < 0)
        return ACME_E_CRYPTO;

    acme_key *k = NULL;
    int rc = key_generate(ACME_KEY_EC_P256, &k);
    if (rc != ACME_OK)
        return rc;

    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0) {
        key_free(k);
        return ACME_E_NOMEM;
    }
    gnutls_datum_t der = { NULL, 0 };
    rc = ACME_E_CRYPTO;

    /* 16 random bytes with the top bit clear: a positive INTEGER without a
     * pad byte, and a nonzero first byte keeps the DER minimal. Fresh
     * serials stop a client from caching an older challenge certificate. */
    unsigned char serial[16];
    if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0)
        goto done;
    serial[0] &= 0x7f;
    if (serial[0] == 0)
        serial[0] = 1;

    time_t now = time(NULL);
    if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
        gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
        /* A day of slack for a validator whose clock runs behind ours. */
        gnutls_x509_crt_set_activation_time(crt, now - DAY) < 0 ||
        gnutls_x509_crt_set_expiration_time(crt, now + 7 * DAY) < 0 ||
        gnutls_x509_crt_set_pubkey(crt, key_gnutls_pubkey(k)) < 0)
        goto done;
    /* The validator only looks at the SAN; a CN just makes the certificate
     * recognisable when someone inspects it by hand. */
    if (strlen(identifier) <= CN_MAX &&
        gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, identifier,
                                      (unsigned)strlen(identifier)) < 0)
        goto done;
    int r = iplen
        ? gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, iplen,
                                               GNUTLS_FSAN_SET)
        : gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, identifier,
                                               (unsigned)strlen(identifier),
                                               GNUTLS_FSAN_SET);
    if (r < 0)
        goto done;
    /* RFC 8737 §3: the extension MUST be critical, so that a TLS client that
     * does not know it never accepts this certificate for real traffic. */
    if (gnutls_x509_crt_set_extension_by_oid(crt, ACME_IDENTIFIER_OID, ext, sizeof(ext), 1) < 0)
        goto done;
    if (gnutls_x509_crt_privkey_sign(crt, crt, key_gnutls_privkey(k), GNUTLS_DIG_SHA256, 0) < 0)
        goto done;
    if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &der) < 0)
        goto done;
    char *cert = dup_datum(&der);
    if (!cert) {
        rc = ACME_E_NOMEM;
        goto done;
    }
    char *key = NULL;
    rc = key_to_pem(k, &key);
    if (rc != ACME_OK) {
        free(cert);
        goto done;
    }
    *cert_pem = cert;
    *key_pem = key;
    rc = ACME_OK;
done:
    gnutls_free(der.data);
    gnutls_x509_crt_deinit(crt);
    key_free(k);
    return rc;
}
