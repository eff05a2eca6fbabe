/* mod_acme: files on disk — atomic replacement, comparison, the
 * self-signed placeholder, and putting a certificate where ssl.pemfile /
 * ssl.privkey point. */
#include "macme.h"
#include "afile.h"
#include "pairfile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The temp + fsync + rename itself lives in modules/common/afile.c (one
 * home for acmectl, mod_acme and the HAProxy module); this says what
 * failed in mod_acme's words. */
int macme_write_atomic(const char *path, const void *data, size_t len, mode_t mode, int durable,
                       char *err, size_t errlen)
{
    afile_opts o = {.mode = (unsigned)mode, .durable = durable, .uid = (uid_t)-1, .gid = (gid_t)-1, .tag = "acme-"};
    afile_fault f = {0};
    if (afile_replace_at(AT_FDCWD, path, data, len, &o, &f) == 0)
        return 0;
    int e = errno;
    if (f.step && !strcmp(f.step, "create"))
        return fail(err, errlen, "cannot create a file next to %s: %s", path, strerror(e));
    return fail(err, errlen, "cannot write %s: %s", path, strerror(e));
}

/* chain + key in one buffer, with a line break between. */
static char *concat_pem(const char *chain, const char *key, size_t *len)
{
    size_t a = strlen(chain), b = strlen(key);
    int nl = a && chain[a - 1] != '\n';
    char *s = malloc(a + (size_t)nl + b + 1);
    if (!s)
        return NULL;
    memcpy(s, chain, a);
    if (nl)
        s[a] = '\n';
    memcpy(s + a + (size_t)nl, key, b + 1);
    *len = a + (size_t)nl + b;
    return s;
}

int macme_install_files(const macme_cert *cert, const char *chain_pem, const char *key_pem,
                        int *changed, char *err, size_t errlen)
{
    *changed = 0;
    if (cert->privkey) {
        size_t cl = strlen(chain_pem), kl = strlen(key_pem);
        if (afile_equals(cert->pemfile, chain_pem, cl) && afile_equals(cert->privkey, key_pem, kl))
            return 0;
        /* As a pair (modules/common/pairfile.c, shared with acmectl): both
         * new files are written and fsync'ed before either is renamed into
         * place, so a full disk leaves the old key and certificate, never a
         * new key beside the old certificate (lighttpd would refuse to
         * start with that). */
        if (pairfile_write(cert->privkey, key_pem, kl, cert->pemfile, chain_pem, cl, 0644, err, errlen))
            return -1;
        *changed = 1;
        return 0;
    }
    size_t len = 0;
    char *both = concat_pem(chain_pem, key_pem, &len);
    if (!both)
        return fail(err, errlen, "out of memory");
    int rc = 0;
    if (!afile_equals(cert->pemfile, both, len)) {
        rc = macme_write_atomic(cert->pemfile, both, len, 0600, 1, err, errlen);
        if (!rc)
            *changed = 1;
    }
    explicit_bzero(both, len); /* it holds the key */
    free(both);
    return rc;
}

/* ---- the placeholder ---- */

static char *datum_str(gnutls_datum_t *d)
{
    char *s = malloc(d->size + 1);
    if (s) {
        memcpy(s, d->data, d->size);
        s[d->size] = '\0';
    }
    /* The placeholder's key passes through here. */
    if (d->data)
        explicit_bzero(d->data, d->size);
    gnutls_free(d->data);
    d->data = NULL;
    return s;
}

int macme_placeholder(const macme_cert *cert, char **chain_pem, char **key_pem,
                      char *err, size_t errlen)
{
    *chain_pem = *key_pem = NULL;
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t d = {NULL, 0};
    int grc;
    const char *what = "generating the key";
    if ((grc = gnutls_x509_privkey_init(&key)) < 0 ||
        (grc = gnutls_x509_privkey_generate2(key, GNUTLS_PK_ECDSA,
                                             GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0)) < 0)
        goto out;
    what = "making the certificate";
    if ((grc = gnutls_x509_crt_init(&crt)) < 0 || (grc = gnutls_x509_crt_set_version(crt, 3)) < 0)
        goto out;
    unsigned char serial[16];
    if ((grc = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial))) < 0)
        goto out;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    time_t now = time(NULL);
    if ((grc = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
        (grc = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
        (grc = gnutls_x509_crt_set_expiration_time(crt, now + 90L * 86400)) < 0)
        goto out;
    const char *cn = "mod_acme placeholder";
    if ((grc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, (unsigned)strlen(cn))) < 0 ||
        (grc = gnutls_x509_crt_set_issuer_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, (unsigned)strlen(cn))) < 0)
        goto out;
    for (size_t i = 0; i < cert->name_count; i++) {
        const char *n = cert->names[i];
        unsigned char ip[16];
        if (inet_pton(AF_INET, n, ip) == 1)
            grc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4, GNUTLS_FSAN_APPEND);
        else if (inet_pton(AF_INET6, n, ip) == 1)
            grc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16, GNUTLS_FSAN_APPEND);
        else
            grc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, n, (unsigned)strlen(n),
                                                       GNUTLS_FSAN_APPEND);
        if (grc < 0)
            goto out;
    }
    if ((grc = gnutls_x509_crt_set_key(crt, key)) < 0 || (grc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
        (grc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
        (grc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0)
        goto out;
    what = "signing the certificate";
    if ((grc = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0)
        goto out;
    what = "exporting";
    if ((grc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d)) < 0)
        goto out;
    *chain_pem = datum_str(&d);
    if ((grc = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d)) < 0)
        goto out;
    *key_pem = datum_str(&d);
    if (!*chain_pem || !*key_pem)
        grc = GNUTLS_E_MEMORY_ERROR;
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    if (grc < 0) {
        free(*chain_pem);
        if (*key_pem) {
            explicit_bzero(*key_pem, strlen(*key_pem));
            free(*key_pem);
        }
        *chain_pem = *key_pem = NULL;
        return fail(err, errlen, "placeholder for %s: %s failed: %s", cert->id, what, gnutls_strerror(grc));
    }
    return 0;
}
