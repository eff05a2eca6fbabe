/* alpn_server — a minimal host of libacme's tls-alpn-01 responder, for
 * bench/alpn_bench.sh.
 *
 *   alpn_server -n NAME -k KEY_AUTH [-b 127.0.0.1] [-p PORT] [-m MAX_CONN]
 *
 * Makes one RFC 8737 challenge certificate for NAME in-process with gnutls
 * (ECDSA P-256, self-signed, SAN dNSName NAME, critical acmeIdentifier =
 * OCTET STRING(SHA-256(KEY_AUTH))), hands it to
 * acme_responder_add_tlsalpn01, runs the responder on its own thread
 * (acme_responder_start_thread) and waits for SIGTERM or SIGINT. Prints
 * "ready port=N" on stdout once it accepts connections. Exit 0 after a clean
 * stop. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <acme/error.h>
#include <acme/responder.h>

#define ACME_ID_OID "1.3.6.1.5.5.7.1.31"

static char *datum_to_str(gnutls_datum_t *d)
{
    char *s = malloc(d->size + 1);
    if (s) {
        memcpy(s, d->data, d->size);
        s[d->size] = '\0';
    }
    gnutls_free(d->data);
    d->data = NULL;
    return s;
}

#define CK(x)                                                                        \
    do {                                                                             \
        int ck_ = (x);                                                               \
        if (ck_ < 0) {                                                               \
            fprintf(stderr, "alpn_server: %s: %s\n", #x, gnutls_strerror(ck_));      \
            return -1;                                                               \
        }                                                                            \
    } while (0)

/* The challenge certificate and its key, PEM (malloc'd). */
static int make_challenge_cert(const char *name, const char *key_auth, char **cert_pem,
                               char **key_pem)
{
    gnutls_x509_privkey_t xkey;
    gnutls_privkey_t key;
    gnutls_x509_crt_t crt;
    CK(gnutls_x509_privkey_init(&xkey));
    CK(gnutls_x509_privkey_generate(xkey, GNUTLS_PK_ECDSA,
                                    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
    CK(gnutls_privkey_init(&key));
    CK(gnutls_privkey_import_x509(key, xkey, 0));
    CK(gnutls_x509_crt_init(&crt));
    CK(gnutls_x509_crt_set_version(crt, 3));
    unsigned char serial[16];
    CK(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)));
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    CK(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)));
    time_t now = time(NULL);
    CK(gnutls_x509_crt_set_activation_time(crt, now - 3600));
    CK(gnutls_x509_crt_set_expiration_time(crt, now + 7 * 86400));
    CK(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
                                     (unsigned)strlen(name)));
    CK(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                            (unsigned)strlen(name), GNUTLS_FSAN_SET));
    unsigned char ext[34] = { 0x04, 0x20 };
    CK(gnutls_hash_fast(GNUTLS_DIG_SHA256, key_auth, strlen(key_auth), ext + 2));
    CK(gnutls_x509_crt_set_extension_by_oid(crt, ACME_ID_OID, ext, sizeof(ext), 1));
    CK(gnutls_x509_crt_set_key(crt, xkey));
    CK(gnutls_x509_crt_privkey_sign(crt, crt, key, GNUTLS_DIG_SHA256, 0));
    gnutls_datum_t d;
    CK(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d));
    *cert_pem = datum_to_str(&d);
    CK(gnutls_x509_privkey_export2_pkcs8(xkey, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                         &d));
    *key_pem = datum_to_str(&d);
    gnutls_x509_crt_deinit(crt);
    gnutls_privkey_deinit(key);
    gnutls_x509_privkey_deinit(xkey);
    return (*cert_pem && *key_pem) ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *name = NULL, *key_auth = NULL, *bind = "127.0.0.1";
    unsigned port = 0, max_conn = 64;
    int opt;
    while ((opt = getopt(argc, argv, "n:k:b:p:m:")) != -1) {
        switch (opt) {
        case 'n': name = optarg; break;
        case 'k': key_auth = optarg; break;
        case 'b': bind = optarg; break;
        case 'p': port = (unsigned)atoi(optarg); break;
        case 'm': max_conn = (unsigned)atoi(optarg); break;
        default: name = NULL; optind = argc; break;
        }
    }
    if (!name || !key_auth || port > 65535 || max_conn < 1 || max_conn > 4096) {
        fprintf(stderr, "usage: alpn_server -n NAME -k KEY_AUTH [-b ADDR] [-p PORT] [-m MAX]\n");
        return 2;
    }

    /* The responder's thread inherits this mask: only sigwait sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    char *cert_pem = NULL, *key_pem = NULL;
    if (make_challenge_cert(name, key_auth, &cert_pem, &key_pem) < 0)
        return 1;

    acme_responder_options o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.bind_address = bind;
    o.port = port;
    o.max_connections = max_conn;
    acme_responder *r = NULL;
    int rc = acme_responder_new(ACME_RESPONDER_TLSALPN01, &o, &r);
    if (rc != ACME_OK) {
        fprintf(stderr, "alpn_server: acme_responder_new: %s\n", acme_strerror(rc));
        return 1;
    }
    rc = acme_responder_add_tlsalpn01(r, name, cert_pem, key_pem);
    /* the PEM is parsed and not kept by the responder */
    memset(key_pem, 0, strlen(key_pem));
    free(key_pem);
    free(cert_pem);
    if (rc != ACME_OK) {
        fprintf(stderr, "alpn_server: acme_responder_add_tlsalpn01: %s\n", acme_strerror(rc));
        acme_responder_free(r);
        return 1;
    }
    rc = acme_responder_start_thread(r);
    if (rc != ACME_OK) {
        fprintf(stderr, "alpn_server: acme_responder_start_thread: %s\n", acme_strerror(rc));
        acme_responder_free(r);
        return 1;
    }
    printf("ready port=%u\n", acme_responder_port(r));
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    acme_responder_stop_thread(r);
    acme_responder_free(r);
    return 0;
}
