/* mod_acme: tls-alpn-01 through lighttpd's own ssl.acme-tls-1.
 *
 * lighttpd's TLS module answers an acme-tls/1 handshake with
 * <dir>/<SNI>.crt.pem and <dir>/<SNI>.key.pem, read at every such
 * handshake, where <dir> is ssl.acme-tls-1. Publishing is writing those
 * two files (key first, each atomically, the key 0600); unpublishing is
 * removing them. Normal handshakes never see them. */
#include "macme.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int macme_alpn_sni_name(const char *ident_type, const char *ident, char *out, size_t cap)
{
    unsigned char a[16];
    if (ident_type && strcmp(ident_type, "ip") == 0) {
        /* RFC 8738: the SNI is the reverse-DNS name of the address. */
        size_t o = 0;
        if (inet_pton(AF_INET, ident, a) == 1) {
            int n = snprintf(out, cap, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
            return n > 0 && (size_t)n < cap ? 0 : -1;
        }
        if (inet_pton(AF_INET6, ident, a) != 1 || cap < 16 * 4 + sizeof("ip6.arpa"))
            return -1;
        static const char hex[] = "0123456789abcdef";
        for (int i = 15; i >= 0; i--) {
            out[o++] = hex[a[i] & 0xf];
            out[o++] = '.';
            out[o++] = hex[a[i] >> 4];
            out[o++] = '.';
        }
        memcpy(out + o, "ip6.arpa", sizeof("ip6.arpa"));
        return 0;
    }
    size_t n = strlen(ident);
    if (!n || n >= cap || ident[0] == '.')
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)ident[i];
        if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_'))
            return -1;
        out[i] = (char)tolower(ch);
    }
    out[n] = '\0';
    return 0;
}

static char *path_of(const char *dir, const char *sni, const char *suffix)
{
    size_t a = strlen(dir), b = strlen(sni), c = strlen(suffix);
    char *p = malloc(a + 1 + b + c + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, sni, b);
    memcpy(p + a + 1 + b, suffix, c + 1);
    return p;
}

int macme_alpn_write(char *const *dirs, size_t n, const char *ident_type, const char *ident, const char *cert,
                     const char *key, char *err, size_t errlen)
{
    char sni[300];
    if (macme_alpn_sni_name(ident_type, ident, sni, sizeof(sni))) {
        snprintf(err, errlen, "tls-alpn-01: \"%s\" cannot be a file name in ssl.acme-tls-1", ident);
        return -1;
    }
    if (!n) {
        snprintf(err, errlen, "tls-alpn-01 for %s: ssl.acme-tls-1 is not set", sni);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char *kp = path_of(dirs[i], sni, ".key.pem"), *cp = path_of(dirs[i], sni, ".crt.pem");
        int rc = !kp || !cp ? (snprintf(err, errlen, "out of memory"), -1)
                            : macme_write_atomic(kp, key, strlen(key), 0600, 0, err, errlen);
        if (!rc)
            rc = macme_write_atomic(cp, cert, strlen(cert), 0600, 0, err, errlen);
        free(kp);
        free(cp);
        if (rc)
            return -1;
    }
    return 0;
}

int macme_alpn_publish(char *const *dirs, size_t n, const acme_challenge *ch, char *err, size_t errlen)
{
    return macme_alpn_write(dirs, n, acme_challenge_identifier_type(ch), acme_challenge_identifier(ch),
                            acme_challenge_alpn_cert_pem(ch), acme_challenge_alpn_key_pem(ch), err, errlen);
}

int macme_alpn_remove(char *const *dirs, size_t n, const char *ident_type, const char *ident)
{
    char sni[300];
    if (macme_alpn_sni_name(ident_type, ident, sni, sizeof(sni)))
        return 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char *kp = path_of(dirs[i], sni, ".key.pem"), *cp = path_of(dirs[i], sni, ".crt.pem");
        /* Certificate first: without it the key is never read. */
        if (cp && unlink(cp) != 0 && errno != ENOENT)
            rc = -1;
        if (kp && unlink(kp) != 0 && errno != ENOENT)
            rc = -1;
        free(kp);
        free(cp);
    }
    return rc;
}

int macme_alpn_unpublish(char *const *dirs, size_t n, const acme_challenge *ch)
{
    return macme_alpn_remove(dirs, n, acme_challenge_identifier_type(ch), acme_challenge_identifier(ch));
}
