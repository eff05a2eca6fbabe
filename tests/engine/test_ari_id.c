/* Issue 4, test 5a: the ARI certificate identifier (RFC 9773 §4.1),
 * libacme's internal ari_cert_id() (libacme/ari.h).
 *
 * The identifier is base64url(AKI keyIdentifier) "." base64url(the DER
 * content octets of the serial number), without padding. RFC 9773's worked
 * example: a certificate whose Authority Key Identifier keyIdentifier is
 * 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4 and whose
 * serial is 0x87654321 (DER content 00 87 65 43 21: the high bit is set,
 * so a leading zero keeps it positive) has the identifier
 * "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE". The certificates are built here
 * with gnutls with exactly that AKI and serial (the identifier depends on
 * nothing else), so the test carries no copied certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <acme/error.h>
#include "ari.h"

static const unsigned char rfc_aki[20] = {
    0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
    0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
};
static const unsigned char rfc_serial[5] = {0x00, 0x87, 0x65, 0x43, 0x21};
#define RFC_ID "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"

static gnutls_x509_privkey_t key;

static int setup(void **state)
{
    (void)state;
    if (gnutls_global_init() < 0 || gnutls_x509_privkey_init(&key) < 0 ||
        gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gnutls_x509_privkey_deinit(key);
    gnutls_global_deinit();
    return 0;
}

/* A PEM certificate with this serial and (if aki) this AKI keyIdentifier.
 * Self-signed with a throwaway key: the signature is irrelevant to the ID. */
static char *make_cert(const unsigned char *serial, size_t serial_len, const unsigned char *aki,
                       size_t aki_len, const char *cn)
{
    gnutls_x509_crt_t c;
    gnutls_datum_t d = {0};
    time_t now = time(NULL);
    assert_int_equal(gnutls_x509_crt_init(&c), 0);
    assert_int_equal(gnutls_x509_crt_set_version(c, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(c, serial, serial_len), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(c, now - 60), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(c, now + 86400), 0);
    assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                                   strlen(cn)), 0);
    assert_int_equal(gnutls_x509_crt_set_key(c, key), 0);
    if (aki)
        assert_int_equal(gnutls_x509_crt_set_authority_key_id(c, aki, aki_len), 0);
    assert_int_equal(gnutls_x509_crt_sign2(c, c, key, GNUTLS_DIG_SHA256, 0), 0);
    assert_int_equal(gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_PEM, &d), 0);
    char *pem = malloc(d.size + 1);
    assert_non_null(pem);
    memcpy(pem, d.data, d.size);
    pem[d.size] = '\0';
    gnutls_free(d.data);

    /* The test is only as good as its certificate: read back what gnutls
     * wrote and make sure it is the AKI and serial intended. */
    unsigned char buf[64];
    size_t len = sizeof buf;
    assert_int_equal(gnutls_x509_crt_get_serial(c, buf, &len), 0);
    assert_int_equal(len, serial_len);
    assert_memory_equal(buf, serial, serial_len);
    if (aki) {
        unsigned crit = 0;
        len = sizeof buf;
        assert_int_equal(gnutls_x509_crt_get_authority_key_id(c, buf, &len, &crit), 0);
        assert_int_equal(len, aki_len);
        assert_memory_equal(buf, aki, aki_len);
    }
    gnutls_x509_crt_deinit(c);
    return pem;
}

static void expect_id(const char *pem, size_t len, const char *want)
{
    char *out = NULL;
    assert_int_equal(ari_cert_id(pem, len, &out), ACME_OK);
    assert_non_null(out);
    assert_string_equal(out, want);
    free(out);
}

static void expect_error(const char *pem, size_t len)
{
    char *out = NULL;
    assert_int_not_equal(ari_cert_id(pem, len, &out), ACME_OK);
    assert_null(out);
}

/* The RFC's example. */
static void test_rfc9773_example(void **state)
{
    (void)state;
    char *pem = make_cert(rfc_serial, sizeof rfc_serial, rfc_aki, sizeof rfc_aki, "ari example");
    expect_id(pem, strlen(pem), RFC_ID);
    free(pem);
}

/* A serial whose top bit is clear has no leading zero: 01 02 03 -> AQID. */
static void test_serial_without_high_bit(void **state)
{
    (void)state;
    static const unsigned char serial[3] = {0x01, 0x02, 0x03};
    char *pem = make_cert(serial, sizeof serial, rfc_aki, sizeof rfc_aki, "small serial");
    expect_id(pem, strlen(pem), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AQID");
    free(pem);
}

/* A 16-byte random-looking serial as real CAs use, top bit set: the
 * leading zero octet is part of the encoding (17 octets -> 23 chars). */
static void test_long_serial(void **state)
{
    (void)state;
    static const unsigned char serial[17] = {0x00, 0xfa, 0xf3, 0x3c, 0x2b, 0x11, 0x00, 0x01,
                                             0x80, 0x7f, 0xff, 0x00, 0x10, 0x20, 0x30, 0x40, 0xfe};
    char *pem = make_cert(serial, sizeof serial, rfc_aki, sizeof rfc_aki, "long serial");
    expect_id(pem, strlen(pem), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.APrzPCsRAAGAf_8AECAwQP4");
    free(pem);
}

/* A chain (leaf first, as downloaded): the leaf's identifier. */
static void test_chain_uses_leaf(void **state)
{
    (void)state;
    static const unsigned char other_aki[4] = {1, 2, 3, 4};
    static const unsigned char other_serial[1] = {0x05};
    char *leaf = make_cert(rfc_serial, sizeof rfc_serial, rfc_aki, sizeof rfc_aki, "leaf");
    char *issuer = make_cert(other_serial, 1, other_aki, sizeof other_aki, "issuer");
    size_t ll = strlen(leaf), il = strlen(issuer);
    char *chain = malloc(ll + il + 1);
    memcpy(chain, leaf, ll);
    memcpy(chain + ll, issuer, il + 1);
    expect_id(chain, ll + il, RFC_ID);
    /* And the other way round gives the other certificate's ID. */
    memcpy(chain, issuer, il);
    memcpy(chain + il, leaf, ll + 1);
    expect_id(chain, ll + il, "AQIDBA.BQ");
    free(chain);
    free(leaf);
    free(issuer);
}

/* len is honoured: the PEM in a buffer with no terminating NUL. */
static void test_length_not_nul_terminated(void **state)
{
    (void)state;
    char *pem = make_cert(rfc_serial, sizeof rfc_serial, rfc_aki, sizeof rfc_aki, "no nul");
    size_t len = strlen(pem);
    char *copy = malloc(len);   /* exactly len bytes: reading past is a bug (ASan) */
    memcpy(copy, pem, len);
    expect_id(copy, len, RFC_ID);
    free(copy);
    free(pem);
}

/* No AKI: there is no identifier (the engine must then fall back to
 * lifetime-based renewal, not send a bogus ID). */
static void test_no_aki(void **state)
{
    (void)state;
    char *pem = make_cert(rfc_serial, sizeof rfc_serial, NULL, 0, "no aki");
    expect_error(pem, strlen(pem));
    free(pem);
}

static void test_garbage(void **state)
{
    (void)state;
    static const char junk[] = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"
                               "-----END CERTIFICATE-----\n";
    expect_error(junk, strlen(junk));
    expect_error("hello", 5);
    expect_error("", 0);
    /* A truncated certificate. */
    char *pem = make_cert(rfc_serial, sizeof rfc_serial, rfc_aki, sizeof rfc_aki, "cut");
    expect_error(pem, strlen(pem) / 2);
    free(pem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc9773_example),
        cmocka_unit_test(test_serial_without_high_bit),
        cmocka_unit_test(test_long_serial),
        cmocka_unit_test(test_chain_uses_leaf),
        cmocka_unit_test(test_length_not_nul_terminated),
        cmocka_unit_test(test_no_aki),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
