/* CSRs: parsed back with gnutls, self-signature, subject, SANs, key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include <acme/error.h>

#include "b64url.h"
#include "crypto.h"

typedef struct san {
    unsigned type;
    unsigned char data[256];
    size_t len;
} san;

/* Decode and parse; fails the test on anything but a well-formed request
 * whose self-signature verifies. */
static gnutls_x509_crq_t load(const char *b64)
{
    unsigned char *der;
    size_t len;
    assert_int_equal(b64url_decode(b64, strlen(b64), &der, &len), ACME_OK);
    gnutls_x509_crq_t crq;
    assert_int_equal(gnutls_x509_crq_init(&crq), 0);
    gnutls_datum_t d = { der, (unsigned)len };
    assert_int_equal(gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_DER), 0);
    assert_true(gnutls_x509_crq_verify(crq, 0) >= 0);
    free(der);
    return crq;
}

static size_t sans_of(gnutls_x509_crq_t crq, san *out, size_t max)
{
    size_t n = 0;
    for (unsigned i = 0;; i++) {
        san s;
        size_t size = sizeof(s.data);
        unsigned critical = 0;
        int r = gnutls_x509_crq_get_subject_alt_name(crq, i, s.data, &size, &s.type, &critical);
        if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        assert_true(r >= 0);
        s.len = size;
        assert_true(n < max);
        out[n++] = s;
    }
    return n;
}

/* The CN of the subject, or NULL if there is none. */
static char *cn_of(gnutls_x509_crq_t crq)
{
    char buf[256];
    size_t size = sizeof(buf);
    int r = gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size);
    if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
        return NULL;
    assert_int_equal(r, 0);
    return strdup(buf);
}

static void assert_same_key(gnutls_x509_crq_t crq, const acme_key *k)
{
    gnutls_pubkey_t pub;
    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    assert_int_equal(gnutls_pubkey_import_x509_crq(pub, crq, 0), 0);
    json_t *a = jwk_from_pubkey(pub), *b = key_jwk(k);
    assert_non_null(a);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    gnutls_pubkey_deinit(pub);
}

static void test_mixed_names(void **state)
{
    (void)state;
    acme_key *k = NULL;
    assert_int_equal(key_generate(ACME_KEY_EC_P256, &k), ACME_OK);
    const char *names[] = { "example.com", "www.example.com", "192.0.2.1", "2001:db8::1", "*.example.com" };
    char *b64 = NULL;
    assert_int_equal(csr_create(k, names, 5, &b64), ACME_OK);
    gnutls_x509_crq_t crq = load(b64);

    assert_int_equal(gnutls_x509_crq_get_signature_algorithm(crq), GNUTLS_SIGN_ECDSA_SHA256);
    assert_same_key(crq, k);
    char *cn = cn_of(crq);
    assert_non_null(cn);
    assert_string_equal(cn, "example.com");
    free(cn);

    san s[8];
    size_t n = sans_of(crq, s, 8);
    assert_int_equal(n, 5);
    assert_int_equal(s[0].type, GNUTLS_SAN_DNSNAME);
    assert_int_equal(s[0].len, strlen("example.com"));
    assert_memory_equal(s[0].data, "example.com", s[0].len);
    assert_int_equal(s[1].type, GNUTLS_SAN_DNSNAME);
    assert_memory_equal(s[1].data, "www.example.com", s[1].len);
    unsigned char v4[4], v6[16];
    inet_pton(AF_INET, "192.0.2.1", v4);
    inet_pton(AF_INET6, "2001:db8::1", v6);
    assert_int_equal(s[2].type, GNUTLS_SAN_IPADDRESS);
    assert_int_equal(s[2].len, 4);
    assert_memory_equal(s[2].data, v4, 4);
    assert_int_equal(s[3].type, GNUTLS_SAN_IPADDRESS);
    assert_int_equal(s[3].len, 16);
    assert_memory_equal(s[3].data, v6, 16);
    assert_int_equal(s[4].type, GNUTLS_SAN_DNSNAME);
    assert_memory_equal(s[4].data, "*.example.com", s[4].len);

    gnutls_x509_crq_deinit(crq);
    free(b64);
    key_free(k);
}

static void test_key_types(void **state)
{
    (void)state;
    static const struct { acme_key_type t; gnutls_sign_algorithm_t sig; } cases[] = {
        { ACME_KEY_EC_P384, GNUTLS_SIGN_ECDSA_SHA256 },
        { ACME_KEY_RSA_2048, GNUTLS_SIGN_RSA_SHA256 },
        { ACME_KEY_ED25519, GNUTLS_SIGN_EDDSA_ED25519 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        acme_key *k = NULL;
        assert_int_equal(key_generate(cases[i].t, &k), ACME_OK);
        const char *names[] = { "a.example.net" };
        char *b64 = NULL;
        assert_int_equal(csr_create(k, names, 1, &b64), ACME_OK);
        gnutls_x509_crq_t crq = load(b64);
        assert_int_equal(gnutls_x509_crq_get_signature_algorithm(crq), cases[i].sig);
        assert_same_key(crq, k);
        san s[2];
        assert_int_equal(sans_of(crq, s, 2), 1);
        gnutls_x509_crq_deinit(crq);
        free(b64);
        key_free(k);
    }
}

static void test_ip_only_has_empty_subject(void **state)
{
    (void)state;
    acme_key *k = NULL;
    assert_int_equal(key_generate(ACME_KEY_EC_P256, &k), ACME_OK);
    const char *names[] = { "198.51.100.7", "::1" };
    char *b64 = NULL;
    assert_int_equal(csr_create(k, names, 2, &b64), ACME_OK);
    gnutls_x509_crq_t crq = load(b64);
    assert_null(cn_of(crq));
    san s[4];
    assert_int_equal(sans_of(crq, s, 4), 2);
    assert_int_equal(s[0].type, GNUTLS_SAN_IPADDRESS);
    assert_int_equal(s[1].type, GNUTLS_SAN_IPADDRESS);
    assert_int_equal(s[1].len, 16);
    gnutls_x509_crq_deinit(crq);
    free(b64);
    key_free(k);
}

static void test_long_first_name(void **state)
{
    (void)state;
    acme_key *k = NULL;
    assert_int_equal(key_generate(ACME_KEY_EC_P256, &k), ACME_OK);
    /* 65 bytes: one over ub-common-name. */
    const char *longname = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.org";
    assert_int_equal(strlen(longname), 65);
    const char *names[] = { longname, "short.example.org" };
    char *b64 = NULL;
    assert_int_equal(csr_create(k, names, 2, &b64), ACME_OK);
    gnutls_x509_crq_t crq = load(b64);
    /* The contract is "CN = first DNS name if it fits", not "some name". */
    assert_null(cn_of(crq));
    san s[4];
    assert_int_equal(sans_of(crq, s, 4), 2);
    assert_int_equal(s[0].len, 65);
    assert_memory_equal(s[0].data, longname, 65);
    gnutls_x509_crq_deinit(crq);
    free(b64);

    /* Exactly 64 still goes in the CN. */
    const char *n64[] = { longname + 1 };
    assert_int_equal(csr_create(k, n64, 1, &b64), ACME_OK);
    crq = load(b64);
    char *cn = cn_of(crq);
    assert_non_null(cn);
    assert_string_equal(cn, longname + 1);
    free(cn);
    gnutls_x509_crq_deinit(crq);
    free(b64);
    key_free(k);
}

static void test_bad_input(void **state)
{
    (void)state;
    acme_key *k = NULL;
    assert_int_equal(key_generate(ACME_KEY_EC_P256, &k), ACME_OK);
    char *b64 = (char *)1;
    const char *empty[] = { "" };
    const char *space[] = { "a b.example" };
    const char *null[] = { "ok.example", NULL };
    assert_int_equal(csr_create(k, empty, 0, &b64), ACME_E_INVALID_ARG);
    assert_null(b64);
    assert_int_equal(csr_create(k, empty, 1, &b64), ACME_E_INVALID_ARG);
    assert_int_equal(csr_create(k, space, 1, &b64), ACME_E_INVALID_ARG);
    assert_int_equal(csr_create(k, null, 2, &b64), ACME_E_INVALID_ARG);
    assert_int_equal(csr_create(NULL, space, 1, &b64), ACME_E_INVALID_ARG);
    assert_null(b64);
    key_free(k);
}

int main(void)
{
    if (crypto_init() != ACME_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_names),
        cmocka_unit_test(test_key_types),
        cmocka_unit_test(test_ip_only_has_empty_subject),
        cmocka_unit_test(test_long_first_name),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
