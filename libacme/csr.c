/* PKCS#10 certificate signing requests for finalize (RFC 8555 §7.4).
 * See crypto.h for the contract. */
#include "crypto.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include <acme/error.h>

#include "b64url.h"

/* ub-common-name (RFC 5280 Appendix A): a longer CN cannot be encoded, and
 * CAs ignore the CN anyway once the SAN carries every name. */
#define CN_MAX 64

/* Printable ASCII without spaces: IDNs arrive as A-labels, and anything
 * else in a name would only be rejected later with a murkier error. */
static int plausible_name(const char *s)
{
    if (!s || !*s || strlen(s) > 255)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return 0;
    return 1;
}

/* An iPAddress SAN holds the 4 or 16 network-order bytes, never text. */
static int parse_ip(const char *s, unsigned char bin[16], unsigned *len)
{
    if (inet_pton(AF_INET, s, bin) == 1) {
        *len = 4;
        return 1;
    }
    if (inet_pton(AF_INET6, s, bin) == 1) {
        *len = 16;
        return 1;
    }
    return 0;
}

int csr_create(const acme_key *k, const char *const *names, size_t n, char **b64der)
{
    if (!b64der)
        return ACME_E_INVALID_ARG;
    *b64der = NULL;
    if (!k || !names || n == 0)
        return ACME_E_INVALID_ARG;
    for (size_t i = 0; i < n; i++)
        if (!plausible_name(names[i]))
            return ACME_E_INVALID_ARG;

    gnutls_x509_crq_t crq;
    if (gnutls_x509_crq_init(&crq) < 0)
        return ACME_E_NOMEM;
    int rc = ACME_E_CRYPTO;
    gnutls_datum_t der = { NULL, 0 };

    if (gnutls_x509_crq_set_version(crq, 1) < 0)
        goto done;
    const char *cn = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char bin[16];
        unsigned len;
        int r;
        if (parse_ip(names[i], bin, &len)) {
            r = gnutls_x509_crq_set_subject_alt_name(crq, GNUTLS_SAN_IPADDRESS,
                                                     bin, len, GNUTLS_FSAN_APPEND);
        } else {
            if (!cn)
                cn = names[i];
            r = gnutls_x509_crq_set_subject_alt_name(crq, GNUTLS_SAN_DNSNAME, names[i],
                                                     (unsigned)strlen(names[i]),
                                                     GNUTLS_FSAN_APPEND);
        }
        if (r < 0)
            goto done;
    }
    if (cn && strlen(cn) <= CN_MAX &&
        gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                      (unsigned)strlen(cn)) < 0)
        goto done;
    if (gnutls_x509_crq_set_pubkey(crq, key_gnutls_pubkey(k)) < 0)
        goto done;
    /* EdDSA hashes internally, so gnutls wants no digest named for it. */
    gnutls_digest_algorithm_t dig =
        key_get_type(k) == ACME_KEY_ED25519 ? GNUTLS_DIG_UNKNOWN : GNUTLS_DIG_SHA256;
    if (gnutls_x509_crq_privkey_sign(crq, key_gnutls_privkey(k), dig, 0) < 0)
        goto done;
    if (gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &der) < 0)
        goto done;
    *b64der = b64url_encode(der.data, der.size);
    rc = *b64der ? ACME_OK : ACME_E_NOMEM;
done:
    gnutls_free(der.data);
    gnutls_x509_crq_deinit(crq);
    return rc;
}
