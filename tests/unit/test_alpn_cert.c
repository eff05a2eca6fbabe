/* tls-alpn-01 certificates (RFC 8737), taken apart with gnutls. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <acme/error.h>

#include "buf.h"
#include "crypto.h"

#define OID_ACME_ID "1.3.6.1.5.5.7.1.31"

static gnutls_x509_crt_t load(const char *pem)
{
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    gnutls_datum_t d = { (unsigned char *)pem, (unsigned)strlen(pem) };
    assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    return crt;
}

/* Length of the DER element at p (header + content), 0 if malformed. */
static size_t der_elem(const unsigned char *p, size_t avail, size_t *hdr)
{
    if (avail < 2)
        return 0;
    size_t len = p[1], h = 2;
    if (len & 0x80) {
        size_t nb = len & 0x7f;
        if (nb == 0 || nb > 4 || avail < 2 + nb)
            return 0;
        len = 0;
        for (size_t i = 0; i < nb; i++)
            len = len << 8 | p[2 + i];
        h += nb;
    }
    if (h + len > avail)
        return 0;
    *hdr = h;
    return h + len;
}

/* Check the self-signature by hand: gnutls_x509_crt_verify would accept a
 * certificate that is its own trust anchor without looking at the
 * signature. Certificate ::= SEQUENCE { tbsCertificate, sigAlg, sig }. */
static void assert_self_signed(gnutls_x509_crt_t crt)
{
    gnutls_datum_t der = { NULL, 0 };
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der), 0);
    size_t hdr = 0, inner_hdr = 0;
    assert_true(der_elem(der.data, der.size, &hdr) == der.size);
    size_t tbs_len = der_elem(der.data + hdr, der.size - hdr, &inner_hdr);
    assert_true(tbs_len > 0);
    gnutls_datum_t tbs = { der.data + hdr, (unsigned)tbs_len };

    unsigned char sig[256];
    size_t siglen = sizeof(sig);
    assert_int_equal(gnutls_x509_crt_get_signature(crt, (char *)sig, &siglen), 0);
    gnutls_datum_t s = { sig, (unsigned)siglen };

    gnutls_pubkey_t pub;
    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    assert_int_equal(gnutls_pubkey_import_x509(pub, crt, 0), 0);
    int algo = gnutls_x509_crt_get_signature_algorithm(crt);
    assert_int_equal(algo, GNUTLS_SIGN_ECDSA_SHA256);
    assert_int_equal(gnutls_pubkey_verify_data2(pub, algo, 0, &tbs, &s), 0);
    /* Negative control. */
    tbs.data[tbs.size - 1] ^= 1;
    assert_true(gnutls_pubkey_verify_data2(pub, algo, 0, &tbs, &s) < 0);
    gnutls_pubkey_deinit(pub);
    gnutls_free(der.data);
    /* And issuer == subject. */
    assert_true(gnutls_x509_crt_check_issuer(crt, crt));
}

/* Exactly one SAN, of this type and value. */
static void assert_single_san(gnutls_x509_crt_t crt, unsigned type, const void *val, size_t len)
{
    unsigned char buf[256];
    size_t size = sizeof(buf);
    unsigned t = 0;
    assert_true(gnutls_x509_crt_get_subject_alt_name2(crt, 0, buf, &size, &t, NULL) >= 0);
    assert_int_equal(t, type);
    assert_int_equal(size, len);
    assert_memory_equal(buf, val, len);
    size = sizeof(buf);
    assert_int_equal(gnutls_x509_crt_get_subject_alt_name2(crt, 1, buf, &size, &t, NULL),
                     GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
}

static void assert_acme_identifier(gnutls_x509_crt_t crt, const char *key_auth)
{
    unsigned char want[34] = { 0x04, 0x20 };
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, key_auth, strlen(key_auth), want + 2), 0);
    gnutls_datum_t ext = { NULL, 0 };
    unsigned critical = 0;
    assert_int_equal(gnutls_x509_crt_get_extension_by_oid2(crt, OID_ACME_ID, 0, &ext, &critical), 0);
    assert_int_equal(critical, 1);
    assert_int_equal(ext.size, sizeof(want));
    assert_memory_equal(ext.data, want, sizeof(want));
    gnutls_free(ext.data);
    /* Only once. */
    assert_int_equal(gnutls_x509_crt_get_extension_by_oid2(crt, OID_ACME_ID, 1, &ext, &critical),
                     GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
}

static void assert_p256_and_key_matches(gnutls_x509_crt_t crt, const char *cert_pem, const char *key_pem)
{
    unsigned bits = 0;
    assert_int_equal(gnutls_x509_crt_get_pk_algorithm(crt, &bits), GNUTLS_PK_ECDSA);
    gnutls_ecc_curve_t curve;
    gnutls_datum_t x = { NULL, 0 }, y = { NULL, 0 };
    assert_int_equal(gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, &x, &y), 0);
    assert_int_equal(curve, GNUTLS_ECC_CURVE_SECP256R1);
    gnutls_free(x.data);
    gnutls_free(y.data);

    assert_true(strncmp(key_pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
    /* Independently of our key code: gnutls key IDs of both halves. */
    gnutls_x509_privkey_t priv;
    assert_int_equal(gnutls_x509_privkey_init(&priv), 0);
    gnutls_datum_t kd = { (unsigned char *)key_pem, (unsigned)strlen(key_pem) };
    assert_int_equal(gnutls_x509_privkey_import(priv, &kd, GNUTLS_X509_FMT_PEM), 0);
    unsigned char id1[64], id2[64];
    size_t l1 = sizeof(id1), l2 = sizeof(id2);
    assert_int_equal(gnutls_x509_privkey_get_key_id(priv, GNUTLS_KEYID_USE_SHA256, id1, &l1), 0);
    assert_int_equal(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id2, &l2), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(id1, id2, l1);
    gnutls_x509_privkey_deinit(priv);

    /* And through our own API. */
    acme_key *k = NULL;
    assert_int_equal(key_from_pem(key_pem, strlen(key_pem), &k), ACME_OK);
    assert_int_equal(key_get_type(k), ACME_KEY_EC_P256);
    assert_int_equal(cert_matches_key(cert_pem, strlen(cert_pem), k), ACME_OK);
    key_free(k);
}

static void assert_validity(gnutls_x509_crt_t crt)
{
    time_t now = time(NULL);
    time_t nb = gnutls_x509_crt_get_activation_time(crt);
    time_t na = gnutls_x509_crt_get_expiration_time(crt);
    assert_true(nb <= now - 86400 + 5 && nb >= now - 86400 - 60);
    assert_true(na >= now + 7 * 86400 - 60 && na <= now + 7 * 86400 + 5);
    assert_int_equal(gnutls_x509_crt_get_version(crt), 3);
}

static void test_dns(void **state)
{
    (void)state;
    const char *ka = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
    char *cert = NULL, *key = NULL;
    assert_int_equal(alpn_cert_create("www.example.org", 0, ka, &cert, &key), ACME_OK);
    assert_true(strncmp(cert, "-----BEGIN CERTIFICATE-----", 27) == 0);
    gnutls_x509_crt_t crt = load(cert);
    assert_single_san(crt, GNUTLS_SAN_DNSNAME, "www.example.org", strlen("www.example.org"));
    assert_acme_identifier(crt, ka);
    assert_self_signed(crt);
    assert_p256_and_key_matches(crt, cert, key);
    assert_validity(crt);

    /* Positive serial with no pad byte, and a fresh one every time. */
    unsigned char s1[32], s2[32];
    size_t l1 = sizeof(s1), l2 = sizeof(s2);
    assert_int_equal(gnutls_x509_crt_get_serial(crt, s1, &l1), 0);
    assert_int_equal(l1, 16);
    assert_true(s1[0] != 0 && s1[0] < 0x80);
    char *cert2 = NULL, *key2 = NULL;
    assert_int_equal(alpn_cert_create("www.example.org", 0, ka, &cert2, &key2), ACME_OK);
    gnutls_x509_crt_t crt2 = load(cert2);
    assert_int_equal(gnutls_x509_crt_get_serial(crt2, s2, &l2), 0);
    assert_false(l1 == l2 && memcmp(s1, s2, l1) == 0);
    /* Fresh key too. */
    assert_string_not_equal(key, key2);
    gnutls_x509_crt_deinit(crt2);
    free(cert2);
    secure_free_str(key2);

    gnutls_x509_crt_deinit(crt);
    free(cert);
    secure_free_str(key);
}

static void test_ip(void **state)
{
    (void)state;
    static const struct { const char *ip; int af; size_t len; } cases[] = {
        { "192.0.2.7", AF_INET, 4 },
        { "2001:db8::7", AF_INET6, 16 },
    };
    for (size_t i = 0; i < 2; i++) {
        char *cert = NULL, *key = NULL;
        assert_int_equal(alpn_cert_create(cases[i].ip, 1, "tok.thumb", &cert, &key), ACME_OK);
        gnutls_x509_crt_t crt = load(cert);
        unsigned char bin[16];
        assert_int_equal(inet_pton(cases[i].af, cases[i].ip, bin), 1);
        assert_single_san(crt, GNUTLS_SAN_IPADDRESS, bin, cases[i].len);
        assert_acme_identifier(crt, "tok.thumb");
        assert_self_signed(crt);
        assert_p256_and_key_matches(crt, cert, key);
        gnutls_x509_crt_deinit(crt);
        free(cert);
        secure_free_str(key);
    }
}

static void test_bad_input(void **state)
{
    (void)state;
    char *cert = (char *)1, *key = (char *)1;
    assert_int_equal(alpn_cert_create("example.org", 1, "ka", &cert, &key), ACME_E_INVALID_ARG);
    assert_null(cert);
    assert_null(key);
    assert_int_equal(alpn_cert_create("example.org", 0, "", &cert, &key), ACME_E_INVALID_ARG);
    assert_int_equal(alpn_cert_create("", 0, "ka", &cert, &key), ACME_E_INVALID_ARG);
    assert_int_equal(alpn_cert_create("a b", 0, "ka", &cert, &key), ACME_E_INVALID_ARG);
    assert_int_equal(alpn_cert_create(NULL, 0, "ka", &cert, &key), ACME_E_INVALID_ARG);
    assert_int_equal(alpn_cert_create("example.org", 0, NULL, &cert, &key), ACME_E_INVALID_ARG);
}

int main(void)
{
    if (crypto_init() != ACME_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns),
        cmocka_unit_test(test_ip),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
