/* Certificate chain reading. The chain (root -> intermediate -> leaf) is
 * minted here with gnutls so every field has a known value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
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

#define ROOT_CN "Test Root R\xc3\xbc" "1"      /* UTF-8 on purpose */
#define INTER_CN "Test Intermediate X1"
#define NOT_BEFORE 1700000000
#define NOT_AFTER 1707776000

typedef struct fixture {
    acme_key *leaf_key;
    gnutls_x509_privkey_t root_key, inter_key;
    gnutls_x509_crt_t root, inter, leaf;
    char *leaf_pem, *inter_pem, *root_pem;
    char *chain;          /* leaf + intermediate */
    gnutls_datum_t leaf_der;
} fixture;

static char *export_pem(gnutls_x509_crt_t crt)
{
    gnutls_datum_t d = { NULL, 0 };
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
    char *s = malloc(d.size + 1);
    memcpy(s, d.data, d.size);
    s[d.size] = '\0';
    gnutls_free(d.data);
    return s;
}

static gnutls_x509_privkey_t ec_key(void)
{
    gnutls_x509_privkey_t k;
    assert_int_equal(gnutls_x509_privkey_init(&k), 0);
    assert_int_equal(gnutls_x509_privkey_generate2(k, GNUTLS_PK_ECDSA,
                     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0), 0);
    return k;
}

static gnutls_x509_crt_t new_crt(const char *cn, const unsigned char *serial, size_t slen, int ca)
{
    gnutls_x509_crt_t c;
    assert_int_equal(gnutls_x509_crt_init(&c), 0);
    assert_int_equal(gnutls_x509_crt_set_version(c, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(c, serial, slen), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(c, NOT_BEFORE), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(c, NOT_AFTER), 0);
    if (cn)
        assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0,
                                                       cn, (unsigned)strlen(cn)), 0);
    else
        assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
                                                       "No CN Org", 9), 0);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(c, ca, -1), 0);
    return c;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->root_key = ec_key();
    f->inter_key = ec_key();
    assert_int_equal(key_generate(ACME_KEY_EC_P256, &f->leaf_key), ACME_OK);

    static const unsigned char s_root[] = { 0x01 }, s_inter[] = { 0x02 };
    /* High bit set in the first value byte: DER needs a 0x00 pad, and the
     * contract says the hex keeps it. */
    static const unsigned char s_leaf[] = { 0x00, 0x9f, 0x01, 0x02, 0xab };

    f->root = new_crt(ROOT_CN, s_root, sizeof(s_root), 1);
    assert_int_equal(gnutls_x509_crt_set_key(f->root, f->root_key), 0);
    assert_int_equal(gnutls_x509_crt_sign2(f->root, f->root, f->root_key, GNUTLS_DIG_SHA256, 0), 0);

    f->inter = new_crt(INTER_CN, s_inter, sizeof(s_inter), 1);
    assert_int_equal(gnutls_x509_crt_set_key(f->inter, f->inter_key), 0);
    assert_int_equal(gnutls_x509_crt_sign2(f->inter, f->root, f->root_key, GNUTLS_DIG_SHA256, 0), 0);

    f->leaf = new_crt("example.org", s_leaf, sizeof(s_leaf), 0);
    assert_int_equal(gnutls_x509_crt_set_pubkey(f->leaf, key_gnutls_pubkey(f->leaf_key)), 0);
    unsigned char v4[4], v6[16];
    inet_pton(AF_INET, "198.51.100.5", v4);
    inet_pton(AF_INET6, "2001:db8::5", v6);
    assert_int_equal(gnutls_x509_crt_set_subject_alt_name(f->leaf, GNUTLS_SAN_DNSNAME,
                     "example.org", 11, GNUTLS_FSAN_APPEND), 0);
    assert_int_equal(gnutls_x509_crt_set_subject_alt_name(f->leaf, GNUTLS_SAN_IPADDRESS,
                     v4, 4, GNUTLS_FSAN_APPEND), 0);
    /* Not a DNS name or IP: not reported. */
    assert_int_equal(gnutls_x509_crt_set_subject_alt_name(f->leaf, GNUTLS_SAN_RFC822NAME,
                     "hostmaster@example.org", 22, GNUTLS_FSAN_APPEND), 0);
    assert_int_equal(gnutls_x509_crt_set_subject_alt_name(f->leaf, GNUTLS_SAN_DNSNAME,
                     "www.example.org", 15, GNUTLS_FSAN_APPEND), 0);
    assert_int_equal(gnutls_x509_crt_set_subject_alt_name(f->leaf, GNUTLS_SAN_IPADDRESS,
                     v6, 16, GNUTLS_FSAN_APPEND), 0);
    assert_int_equal(gnutls_x509_crt_sign2(f->leaf, f->inter, f->inter_key, GNUTLS_DIG_SHA256, 0), 0);

    f->leaf_pem = export_pem(f->leaf);
    f->inter_pem = export_pem(f->inter);
    f->root_pem = export_pem(f->root);
    assert_true(asprintf(&f->chain, "%s%s", f->leaf_pem, f->inter_pem) > 0);
    assert_int_equal(gnutls_x509_crt_export2(f->leaf, GNUTLS_X509_FMT_DER, &f->leaf_der), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    gnutls_x509_crt_deinit(f->root);
    gnutls_x509_crt_deinit(f->inter);
    gnutls_x509_crt_deinit(f->leaf);
    gnutls_x509_privkey_deinit(f->root_key);
    gnutls_x509_privkey_deinit(f->inter_key);
    key_free(f->leaf_key);
    free(f->leaf_pem);
    free(f->inter_pem);
    free(f->root_pem);
    free(f->chain);
    gnutls_free(f->leaf_der.data);
    free(f);
    return 0;
}

static void test_info_fields(void **state)
{
    fixture *f = *state;
    cert_info *ci = NULL;
    assert_int_equal(cert_info_parse(f->chain, strlen(f->chain), &ci), ACME_OK);
    assert_non_null(ci);
    assert_int_equal(ci->name_count, 4);
    assert_string_equal(ci->names[0], "example.org");
    assert_string_equal(ci->names[1], "198.51.100.5");
    assert_string_equal(ci->names[2], "www.example.org");
    assert_string_equal(ci->names[3], "2001:db8::5");
    assert_int_equal(ci->not_before, NOT_BEFORE);
    assert_int_equal(ci->not_after, NOT_AFTER);
    assert_int_equal(ci->cert_count, 2);
    assert_string_equal(ci->issuer_cns[0], INTER_CN);
    assert_string_equal(ci->issuer_cns[1], ROOT_CN);
    assert_string_equal(ci->issuer_cn, ROOT_CN);
    assert_string_equal(ci->serial_hex, "009f0102ab");
    cert_info_free(ci);

    /* With the root appended, the last issuer is the root itself. */
    char *three = NULL;
    assert_true(asprintf(&three, "%s%s", f->chain, f->root_pem) > 0);
    assert_int_equal(cert_info_parse(three, strlen(three), &ci), ACME_OK);
    assert_int_equal(ci->cert_count, 3);
    assert_string_equal(ci->issuer_cns[2], ROOT_CN);
    assert_string_equal(ci->issuer_cn, ROOT_CN);
    cert_info_free(ci);
    free(three);

    /* Leaf alone. */
    assert_int_equal(cert_info_parse(f->leaf_pem, strlen(f->leaf_pem), &ci), ACME_OK);
    assert_int_equal(ci->cert_count, 1);
    assert_string_equal(ci->issuer_cn, INTER_CN);
    cert_info_free(ci);
    cert_info_free(NULL);
}

static void test_no_san_no_cn(void **state)
{
    (void)state;
    /* Self-signed, subject without CN and no SAN at all. */
    gnutls_x509_privkey_t k = ec_key();
    static const unsigned char serial[] = { 0x7f };
    gnutls_x509_crt_t c = new_crt(NULL, serial, 1, 0);
    assert_int_equal(gnutls_x509_crt_set_key(c, k), 0);
    assert_int_equal(gnutls_x509_crt_sign2(c, c, k, GNUTLS_DIG_SHA256, 0), 0);
    char *pem = export_pem(c);
    cert_info *ci = NULL;
    assert_int_equal(cert_info_parse(pem, strlen(pem), &ci), ACME_OK);
    assert_int_equal(ci->name_count, 0);
    assert_string_equal(ci->issuer_cn, "");
    assert_string_equal(ci->issuer_cns[0], "");
    assert_string_equal(ci->serial_hex, "7f");
    cert_info_free(ci);
    free(pem);
    gnutls_x509_crt_deinit(c);
    gnutls_x509_privkey_deinit(k);
}

static void test_matches_key(void **state)
{
    fixture *f = *state;
    assert_int_equal(cert_matches_key(f->chain, strlen(f->chain), f->leaf_key), ACME_OK);
    static const acme_key_type others[] = { ACME_KEY_EC_P256, ACME_KEY_EC_P384, ACME_KEY_RSA_2048 };
    for (size_t i = 0; i < 3; i++) {
        acme_key *o = NULL;
        assert_int_equal(key_generate(others[i], &o), ACME_OK);
        assert_int_equal(cert_matches_key(f->chain, strlen(f->chain), o), ACME_E_KEY_MISMATCH);
        key_free(o);
    }
    /* The intermediate's key is in the chain, but not in the leaf. */
    assert_int_equal(cert_matches_key(f->inter_pem, strlen(f->inter_pem), f->leaf_key),
                     ACME_E_KEY_MISMATCH);
    /* Garbage is a parse error, never "matches" nor "mismatch". */
    assert_int_equal(cert_matches_key("nope", 4, f->leaf_key), ACME_E_PROTOCOL);
    assert_int_equal(cert_matches_key(f->chain, strlen(f->chain), NULL), ACME_E_INVALID_ARG);
}

static void test_leaf_b64der(void **state)
{
    fixture *f = *state;
    char *b64 = NULL;
    assert_int_equal(cert_leaf_b64der(f->chain, strlen(f->chain), &b64), ACME_OK);
    unsigned char *der;
    size_t len;
    assert_int_equal(b64url_decode(b64, strlen(b64), &der, &len), ACME_OK);
    assert_int_equal(len, f->leaf_der.size);
    assert_memory_equal(der, f->leaf_der.data, len);
    /* base64url alphabet, no padding. */
    assert_null(strpbrk(b64, "+/=\n"));
    free(der);
    free(b64);
}

/* Replace "\n" with "\r\n". */
static char *crlf(const char *s)
{
    char *out = malloc(strlen(s) * 2 + 1), *o = out;
    for (; *s; s++) {
        if (*s == '\n')
            *o++ = '\r';
        *o++ = *s;
    }
    *o = '\0';
    return out;
}

static void test_normalize(void **state)
{
    fixture *f = *state;
    char *leaf_crlf = crlf(f->leaf_pem);
    char *messy = NULL;
    assert_true(asprintf(&messy, "Subject: example.org\nIssuer: whoever\n%s\nsome text between\n%s\ntrailing words",
                         leaf_crlf, f->inter_pem) > 0);
    char *out = NULL;
    assert_int_equal(cert_chain_normalize(messy, strlen(messy), &out), ACME_OK);
    assert_string_equal(out, f->chain);

    /* Lenient there, strict here: text between certificates is refused. */
    cert_info *ci = (cert_info *)1;
    assert_int_equal(cert_info_parse(messy, strlen(messy), &ci), ACME_E_PROTOCOL);
    assert_null(ci);
    assert_int_equal(cert_info_parse(out, strlen(out), &ci), ACME_OK);
    assert_int_equal(ci->cert_count, 2);
    cert_info_free(ci);
    free(out);

    /* Explanatory text before the first block and CRLF lines are fine. */
    char *lead = NULL;
    char *chain_crlf = crlf(f->chain);
    assert_true(asprintf(&lead, "Certificate chain for example.org\r\n%s\r\n\r\n", chain_crlf) > 0);
    assert_int_equal(cert_info_parse(lead, strlen(lead), &ci), ACME_OK);
    assert_int_equal(ci->cert_count, 2);
    assert_string_equal(ci->serial_hex, "009f0102ab");
    cert_info_free(ci);

    /* Other PEM blocks: skipped by normalize, refused by the parser. */
    char *withkey = NULL;
    assert_true(asprintf(&withkey, "%s-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n%s",
                         f->leaf_pem, f->inter_pem) > 0);
    assert_int_equal(cert_chain_normalize(withkey, strlen(withkey), &out), ACME_OK);
    assert_string_equal(out, f->chain);
    free(out);
    assert_int_equal(cert_info_parse(withkey, strlen(withkey), &ci), ACME_E_PROTOCOL);

    /* Input need not be NUL-terminated: len is the bound. */
    size_t n = strlen(f->leaf_pem);
    char *exact = malloc(n);
    memcpy(exact, f->leaf_pem, n);
    assert_int_equal(cert_chain_normalize(exact, n, &out), ACME_OK);
    assert_string_equal(out, f->leaf_pem);
    free(out);
    /* One byte short cuts the END line: truncated. */
    assert_int_equal(cert_chain_normalize(exact, n - 2, &out), ACME_E_PROTOCOL);
    assert_null(out);
    free(exact);

    free(withkey);
    free(lead);
    free(chain_crlf);
    free(messy);
    free(leaf_crlf);
}

static void expect_bad(const char *pem, size_t len)
{
    cert_info *ci = (cert_info *)1;
    char *s = (char *)1;
    assert_int_not_equal(cert_info_parse(pem, len, &ci), ACME_OK);
    assert_null(ci);
    assert_int_not_equal(cert_leaf_b64der(pem, len, &s), ACME_OK);
    assert_null(s);
    s = (char *)1;
    assert_int_not_equal(cert_chain_normalize(pem, len, &s), ACME_OK);
    assert_null(s);
}

static void test_garbage(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {
        "",
        "hello world",
        "-----BEGIN CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\n!!!!not base64!!!!\n-----END CERTIFICATE-----\n",
        /* valid base64 of "hello world, not DER" */
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQsIG5vdCBERVI=\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE----------END CERTIFICATE-----",
        "-----BEGIN ",
        "-----END CERTIFICATE-----\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad(bad[i], strlen(bad[i]));
    expect_bad(NULL, 10);

    /* A block without its END line, followed by a good one. */
    char *cut = NULL;
    assert_true(asprintf(&cut, "-----BEGIN CERTIFICATE-----\nMIIB\n%s", f->leaf_pem) > 0);
    expect_bad(cut, strlen(cut));
    free(cut);

    /* A good certificate followed by a broken one: all or nothing. */
    char *mixed = NULL;
    assert_true(asprintf(&mixed, "%s%s", f->leaf_pem, bad[4]) > 0);
    expect_bad(mixed, strlen(mixed));
    free(mixed);

    /* Every truncation and many single-byte corruptions of a good chain:
     * any answer is acceptable, a crash or a sanitizer report is not. */
    size_t len = strlen(f->chain);
    char *buf = malloc(len);
    for (size_t cut = 0; cut < len; cut += 3) {
        memcpy(buf, f->chain, cut);
        cert_info *ci = NULL;
        if (cert_info_parse(buf, cut, &ci) == ACME_OK)
            cert_info_free(ci);
    }
    unsigned seed = 12345;
    for (int i = 0; i < 300; i++) {
        memcpy(buf, f->chain, len);
        seed = seed * 1103515245u + 12345u;
        size_t pos = (seed >> 8) % len;
        seed = seed * 1103515245u + 12345u;
        buf[pos] = (char)(seed >> 16);
        cert_info *ci = NULL;
        if (cert_info_parse(buf, len, &ci) == ACME_OK)
            cert_info_free(ci);
        char *s = NULL;
        if (cert_chain_normalize(buf, len, &s) == ACME_OK)
            free(s);
        int r = cert_matches_key(buf, len, f->leaf_key);
        assert_true(r == ACME_OK || r == ACME_E_KEY_MISMATCH || r == ACME_E_PROTOCOL);
    }
    free(buf);
}

int main(void)
{
    if (crypto_init() != ACME_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_info_fields, setup, teardown),
        cmocka_unit_test(test_no_san_no_cn),
        cmocka_unit_test_setup_teardown(test_matches_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_b64der, setup, teardown),
        cmocka_unit_test_setup_teardown(test_normalize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
