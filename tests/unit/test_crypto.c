/* Keys, JWK, RFC 7638 thumbprints, JWS and EAB.
 *
 * Signatures are checked with gnutls directly, against a public key rebuilt
 * from the JWK we publish: that way one test covers both that we sign what
 * we claim and that the JWK we hand to the CA really is our key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <acme/error.h>

#include "b64url.h"
#include "buf.h"
#include "crypto.h"

/* ---- helpers ---- */

static unsigned char *b64d(const char *s, size_t *len)
{
    unsigned char *out = NULL;
    assert_non_null(s);
    assert_int_equal(b64url_decode(s, strlen(s), &out, len), ACME_OK);
    return out;
}

static json_t *b64_json(const char *s)
{
    size_t len;
    unsigned char *raw = b64d(s, &len);
    json_error_t err;
    json_t *j = json_loadb((const char *)raw, len, 0, &err);
    free(raw);
    assert_non_null(j);
    return j;
}

/* A gnutls public key built only from the JWK's members. */
static gnutls_pubkey_t pub_from_jwk(const json_t *jwk)
{
    gnutls_pubkey_t pub;
    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    assert_non_null(kty);
    if (strcmp(kty, "RSA") == 0) {
        size_t nl, el;
        unsigned char *n = b64d(json_string_value(json_object_get(jwk, "n")), &nl);
        unsigned char *e = b64d(json_string_value(json_object_get(jwk, "e")), &el);
        /* RFC 7518 §6.3.1.1: no leading zero octets. */
        assert_true(n[0] != 0);
        assert_true(e[0] != 0);
        gnutls_datum_t dn = { n, (unsigned)nl }, de = { e, (unsigned)el };
        assert_int_equal(gnutls_pubkey_import_rsa_raw(pub, &dn, &de), 0);
        free(n);
        free(e);
    } else if (strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        assert_non_null(crv);
        gnutls_ecc_curve_t curve = strcmp(crv, "P-256") == 0 ? GNUTLS_ECC_CURVE_SECP256R1
                                                             : GNUTLS_ECC_CURVE_SECP384R1;
        size_t width = curve == GNUTLS_ECC_CURVE_SECP256R1 ? 32 : 48;
        size_t xl, yl;
        unsigned char *x = b64d(json_string_value(json_object_get(jwk, "x")), &xl);
        unsigned char *y = b64d(json_string_value(json_object_get(jwk, "y")), &yl);
        /* RFC 7518 §6.2.1.2: always the full field size. */
        assert_int_equal(xl, width);
        assert_int_equal(yl, width);
        gnutls_datum_t dx = { x, (unsigned)xl }, dy = { y, (unsigned)yl };
        assert_int_equal(gnutls_pubkey_import_ecc_raw(pub, curve, &dx, &dy), 0);
        free(x);
        free(y);
    } else {
        assert_string_equal(kty, "OKP");
        assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "Ed25519");
        size_t xl;
        unsigned char *x = b64d(json_string_value(json_object_get(jwk, "x")), &xl);
        assert_int_equal(xl, 32);
        gnutls_datum_t dx = { x, (unsigned)xl };
        assert_int_equal(gnutls_pubkey_import_ecc_raw(pub, GNUTLS_ECC_CURVE_ED25519, &dx, NULL), 0);
        free(x);
    }
    return pub;
}

static gnutls_sign_algorithm_t sign_algo(const char *alg)
{
    if (strcmp(alg, "ES256") == 0) return GNUTLS_SIGN_ECDSA_SHA256;
    if (strcmp(alg, "ES384") == 0) return GNUTLS_SIGN_ECDSA_SHA384;
    if (strcmp(alg, "RS256") == 0) return GNUTLS_SIGN_RSA_SHA256;
    assert_string_equal(alg, "EdDSA");
    return GNUTLS_SIGN_EDDSA_ED25519;
}

/* Verify a JWS-form signature (raw r||s for ECDSA) over data. Returns the
 * gnutls result so callers can also assert failure. */
static int verify_raw(const json_t *jwk, const char *alg, const void *data, size_t len,
                      const unsigned char *sig, size_t siglen)
{
    gnutls_pubkey_t pub = pub_from_jwk(jwk);
    gnutls_datum_t d = { (unsigned char *)data, (unsigned)len };
    gnutls_datum_t s = { (unsigned char *)sig, (unsigned)siglen };
    gnutls_datum_t der = { NULL, 0 };
    if (alg[0] == 'E' && alg[1] == 'S') {
        size_t half = strcmp(alg, "ES256") == 0 ? 32 : 48;
        assert_int_equal(siglen, 2 * half);
        gnutls_datum_t r = { (unsigned char *)sig, (unsigned)half };
        gnutls_datum_t ss = { (unsigned char *)sig + half, (unsigned)half };
        assert_int_equal(gnutls_encode_rs_value(&der, &r, &ss), 0);
        s = der;
    }
    int ret = gnutls_pubkey_verify_data2(pub, sign_algo(alg), 0, &d, &s);
    gnutls_free(der.data);
    gnutls_pubkey_deinit(pub);
    return ret;
}

/* Independent thumbprint: jansson's sorted compact dump of a JWK that holds
 * exactly the required members is the canonical form. */
static char *thumb_independent(const json_t *jwk)
{
    char *txt = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(txt);
    unsigned char d[32];
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, txt, strlen(txt), d), 0);
    free(txt);
    return b64url_encode(d, sizeof(d));
}

static const acme_key_type all_types[] = {
    ACME_KEY_EC_P256, ACME_KEY_EC_P384, ACME_KEY_RSA_2048, ACME_KEY_ED25519,
};

/* ---- tests ---- */

static void test_sha256_b64url(void **state)
{
    (void)state;
    char *s = NULL;
    assert_int_equal(sha256_b64url("abc", 3, &s), ACME_OK);
    assert_string_equal(s, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    free(s);
    assert_int_equal(sha256_b64url("", 0, &s), ACME_OK);
    assert_string_equal(s, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    free(s);
    assert_int_equal(sha256_b64url(NULL, 3, &s), ACME_E_INVALID_ARG);
}

/* RFC 7638 §3.1 example key and thumbprint. */
static const char rfc7638_n[] =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxu"
    "hDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_R"
    "N5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvR"
    "L5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_x"
    "BniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
static const char rfc7638_thumb[] = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

static void test_rfc7638_from_pubkey(void **state)
{
    (void)state;
    /* Build the key as gnutls would hold it, then go through our own JWK
     * encoder: n's top byte is 0xd2, so a leaked sign byte would show. */
    size_t nl, el;
    unsigned char *n = b64d(rfc7638_n, &nl);
    unsigned char *e = b64d("AQAB", &el);
    gnutls_datum_t dn = { n, (unsigned)nl }, de = { e, (unsigned)el };
    gnutls_pubkey_t pub;
    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    assert_int_equal(gnutls_pubkey_import_rsa_raw(pub, &dn, &de), 0);
    json_t *jwk = jwk_from_pubkey(pub);
    assert_non_null(jwk);
    assert_int_equal(json_object_size(jwk), 3);
    assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "RSA");
    assert_string_equal(json_string_value(json_object_get(jwk, "n")), rfc7638_n);
    assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
    char *t = NULL;
    assert_int_equal(jwk_thumbprint_json(jwk, &t), ACME_OK);
    assert_string_equal(t, rfc7638_thumb);
    free(t);
    json_decref(jwk);
    gnutls_pubkey_deinit(pub);
    free(n);
    free(e);
}

static void test_rfc7638_from_json(void **state)
{
    (void)state;
    /* Members in a non-canonical order plus optional ones (the RFC's own
     * example has alg and kid) must not change the digest. */
    json_t *jwk = json_pack("{s:s, s:s, s:s, s:s, s:s}", "n", rfc7638_n, "kty", "RSA",
                            "kid", "2011-04-29", "e", "AQAB", "alg", "RS256");
    assert_non_null(jwk);
    char *t = NULL;
    assert_int_equal(jwk_thumbprint_json(jwk, &t), ACME_OK);
    assert_string_equal(t, rfc7638_thumb);
    free(t);

    /* Missing, mistyped or escape-needing members are refused. */
    json_object_del(jwk, "e");
    assert_int_equal(jwk_thumbprint_json(jwk, &t), ACME_E_INVALID_ARG);
    assert_null(t);
    json_object_set_new(jwk, "e", json_integer(65537));
    assert_int_equal(jwk_thumbprint_json(jwk, &t), ACME_E_INVALID_ARG);
    json_object_set_new(jwk, "e", json_string("AQ\"AB"));
    assert_int_equal(jwk_thumbprint_json(jwk, &t), ACME_E_INVALID_ARG);
    json_object_set_new(jwk, "e", json_string("AQAB"));
    json_object_set_new(jwk, "kty", json_string("oct"));
    assert_int_equal(jwk_thumbprint_json(jwk, &t), ACME_E_INVALID_ARG);
    json_decref(jwk);
    assert_int_equal(jwk_thumbprint_json(NULL, &t), ACME_E_INVALID_ARG);
}

static void check_key_shape(const acme_key *k, acme_key_type type)
{
    assert_int_equal(key_get_type(k), type);
    json_t *jwk = key_jwk(k);
    assert_non_null(jwk);
    const char *alg = key_jws_alg(k);
    switch (type) {
    case ACME_KEY_EC_P256:
    case ACME_KEY_EC_P384: {
        int p256 = type == ACME_KEY_EC_P256;
        assert_string_equal(alg, p256 ? "ES256" : "ES384");
        assert_int_equal(json_object_size(jwk), 4);
        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
        assert_string_equal(json_string_value(json_object_get(jwk, "crv")), p256 ? "P-256" : "P-384");
        /* 32 bytes -> 43 chars, 48 -> 64. */
        assert_int_equal(strlen(json_string_value(json_object_get(jwk, "x"))), p256 ? 43 : 64);
        assert_int_equal(strlen(json_string_value(json_object_get(jwk, "y"))), p256 ? 43 : 64);
        break;
    }
    case ACME_KEY_RSA_2048:
    case ACME_KEY_RSA_3072:
    case ACME_KEY_RSA_4096: {
        assert_string_equal(alg, "RS256");
        assert_int_equal(json_object_size(jwk), 3);
        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "RSA");
        size_t nl;
        unsigned char *n = b64d(json_string_value(json_object_get(jwk, "n")), &nl);
        size_t bits = type == ACME_KEY_RSA_2048 ? 2048 : type == ACME_KEY_RSA_3072 ? 3072 : 4096;
        assert_int_equal(nl, bits / 8);
        assert_true(n[0] & 0x80);
        free(n);
        assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
        break;
    }
    case ACME_KEY_ED25519:
        assert_string_equal(alg, "EdDSA");
        assert_int_equal(json_object_size(jwk), 3);
        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "OKP");
        assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "Ed25519");
        assert_int_equal(strlen(json_string_value(json_object_get(jwk, "x"))), 43);
        break;
    default:
        fail();
    }
    char *t = NULL;
    assert_int_equal(key_thumbprint(k, &t), ACME_OK);
    char *expect = thumb_independent(jwk);
    assert_string_equal(t, expect);
    free(expect);
    free(t);
    json_decref(jwk);
}

static void test_generate_types(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
        acme_key *k = NULL;
        assert_int_equal(key_generate(all_types[i], &k), ACME_OK);
        check_key_shape(k, all_types[i]);
        key_free(k);
    }
    acme_key *k = NULL;
    assert_int_equal(key_generate(ACME_KEY_DEFAULT, &k), ACME_OK);
    check_key_shape(k, ACME_KEY_EC_P256);
    key_free(k);
    assert_int_equal(key_generate((acme_key_type)99, &k), ACME_E_INVALID_ARG);
    assert_null(k);
    key_free(NULL);
}

static void test_generate_big_rsa(void **state)
{
    (void)state;
    static const acme_key_type big[] = { ACME_KEY_RSA_3072, ACME_KEY_RSA_4096 };
    for (size_t i = 0; i < 2; i++) {
        acme_key *k = NULL;
        assert_int_equal(key_generate(big[i], &k), ACME_OK);
        check_key_shape(k, big[i]);
        unsigned char *sig;
        size_t siglen;
        assert_int_equal(key_sign(k, "x", 1, &sig, &siglen), ACME_OK);
        assert_int_equal(siglen, big[i] == ACME_KEY_RSA_3072 ? 384 : 512);
        json_t *jwk = key_jwk(k);
        assert_int_equal(verify_raw(jwk, "RS256", "x", 1, sig, siglen), 0);
        json_decref(jwk);
        free(sig);
        key_free(k);
    }
}

static void jws_roundtrip(acme_key_type type)
{
    acme_key *k = NULL;
    assert_int_equal(key_generate(type, &k), ACME_OK);
    const char *payload = "{\"termsOfServiceAgreed\":true}";
    const char *url = "https://ca.example/acme/new-acct";
    char *out = NULL;
    assert_int_equal(jws_sign(k, NULL, "nonce-123_abc", url, payload, &out), ACME_OK);

    json_error_t err;
    json_t *jws = json_loads(out, 0, &err);
    assert_non_null(jws);
    assert_int_equal(json_object_size(jws), 3);
    const char *p64 = json_string_value(json_object_get(jws, "protected"));
    const char *pl64 = json_string_value(json_object_get(jws, "payload"));
    const char *s64 = json_string_value(json_object_get(jws, "signature"));
    assert_non_null(p64);
    assert_non_null(pl64);
    assert_non_null(s64);

    json_t *hdr = b64_json(p64);
    assert_int_equal(json_object_size(hdr), 4);
    assert_string_equal(json_string_value(json_object_get(hdr, "alg")), key_jws_alg(k));
    assert_string_equal(json_string_value(json_object_get(hdr, "nonce")), "nonce-123_abc");
    assert_string_equal(json_string_value(json_object_get(hdr, "url")), url);
    assert_null(json_object_get(hdr, "kid"));
    json_t *jwk = json_object_get(hdr, "jwk");
    json_t *mine = key_jwk(k);
    assert_true(json_equal(jwk, mine));
    json_decref(mine);

    size_t plen;
    unsigned char *pl = b64d(pl64, &plen);
    assert_int_equal(plen, strlen(payload));
    assert_memory_equal(pl, payload, plen);
    free(pl);

    size_t siglen;
    unsigned char *sig = b64d(s64, &siglen);
    char *input = NULL;
    assert_true(asprintf(&input, "%s.%s", p64, pl64) > 0);
    assert_int_equal(verify_raw(jwk, key_jws_alg(k), input, strlen(input), sig, siglen), 0);
    /* Negative control: the check above can fail. */
    input[0] ^= 1;
    assert_true(verify_raw(jwk, key_jws_alg(k), input, strlen(input), sig, siglen) < 0);
    free(input);
    free(sig);
    json_decref(hdr);
    json_decref(jws);
    free(out);

    /* kid form, no nonce (keyChange inner JWS shape), POST-as-GET body. */
    assert_int_equal(jws_sign(k, "https://ca.example/acct/1", NULL, url, NULL, &out), ACME_OK);
    jws = json_loads(out, 0, &err);
    assert_non_null(jws);
    p64 = json_string_value(json_object_get(jws, "protected"));
    pl64 = json_string_value(json_object_get(jws, "payload"));
    s64 = json_string_value(json_object_get(jws, "signature"));
    assert_string_equal(pl64, "");
    hdr = b64_json(p64);
    assert_int_equal(json_object_size(hdr), 3);
    assert_null(json_object_get(hdr, "nonce"));
    assert_null(json_object_get(hdr, "jwk"));
    assert_string_equal(json_string_value(json_object_get(hdr, "kid")), "https://ca.example/acct/1");
    sig = b64d(s64, &siglen);
    assert_true(asprintf(&input, "%s.", p64) > 0);
    mine = key_jwk(k);
    assert_int_equal(verify_raw(mine, key_jws_alg(k), input, strlen(input), sig, siglen), 0);
    json_decref(mine);
    free(input);
    free(sig);
    json_decref(hdr);
    json_decref(jws);
    free(out);
    key_free(k);
}

static void test_jws_es256(void **state) { (void)state; jws_roundtrip(ACME_KEY_EC_P256); }
static void test_jws_es384(void **state) { (void)state; jws_roundtrip(ACME_KEY_EC_P384); }
static void test_jws_rs256(void **state) { (void)state; jws_roundtrip(ACME_KEY_RSA_2048); }
static void test_jws_eddsa(void **state) { (void)state; jws_roundtrip(ACME_KEY_ED25519); }

static void test_jws_bad_args(void **state)
{
    (void)state;
    acme_key *k = NULL;
    assert_int_equal(key_generate(ACME_KEY_EC_P256, &k), ACME_OK);
    char *out = (char *)1;
    assert_int_equal(jws_sign(k, NULL, "n", NULL, "{}", &out), ACME_E_INVALID_ARG);
    assert_null(out);
    assert_int_equal(jws_sign(NULL, NULL, "n", "https://x", "{}", &out), ACME_E_INVALID_ARG);
    /* Invalid UTF-8 cannot go into a JSON header. */
    assert_int_equal(jws_sign(k, NULL, "n", "https://x/\xff", "{}", &out), ACME_E_INVALID_ARG);
    assert_null(out);
    key_free(k);
}

/* ECDSA: raw r||s of exactly 2*field bytes, including the signatures where
 * r or s is numerically short, which DER would encode shorter. */
static void raw_ecdsa_lengths(acme_key_type type, size_t half, int tries)
{
    acme_key *k = NULL;
    assert_int_equal(key_generate(type, &k), ACME_OK);
    json_t *jwk = key_jwk(k);
    int short_seen = 0;
    for (int i = 0; i < tries && !short_seen; i++) {
        unsigned char msg[8];
        memcpy(msg, &i, sizeof(i));
        memset(msg + sizeof(i), 0x5a, sizeof(msg) - sizeof(i));
        unsigned char *sig;
        size_t siglen;
        assert_int_equal(key_sign(k, msg, sizeof(msg), &sig, &siglen), ACME_OK);
        assert_int_equal(siglen, 2 * half);
        if (sig[0] == 0 || sig[half] == 0) {
            short_seen = 1;
            assert_int_equal(verify_raw(jwk, key_jws_alg(k), msg, sizeof(msg), sig, siglen), 0);
        }
        free(sig);
    }
    /* P(no short value in 3000 P-256 signatures) ~ 1e-10. */
    if (type == ACME_KEY_EC_P256)
        assert_true(short_seen);
    json_decref(jwk);
    key_free(k);
}

static void test_ecdsa_raw_p256(void **state) { (void)state; raw_ecdsa_lengths(ACME_KEY_EC_P256, 32, 3000); }
static void test_ecdsa_raw_p384(void **state) { (void)state; raw_ecdsa_lengths(ACME_KEY_EC_P384, 48, 50); }

/* A P-256 key with a coordinate below 2^248 still gets a 32-byte x/y. */
static void test_jwk_short_coordinate(void **state)
{
    (void)state;
    int found = 0;
    for (int i = 0; i < 3000 && !found; i++) {
        acme_key *k = NULL;
        assert_int_equal(key_generate(ACME_KEY_EC_P256, &k), ACME_OK);
        json_t *jwk = key_jwk(k);
        size_t xl, yl;
        unsigned char *x = b64d(json_string_value(json_object_get(jwk, "x")), &xl);
        unsigned char *y = b64d(json_string_value(json_object_get(jwk, "y")), &yl);
        assert_int_equal(xl, 32);
        assert_int_equal(yl, 32);
        if (x[0] == 0 || y[0] == 0) {
            found = 1;
            char *out = NULL;
            assert_int_equal(jws_sign(k, NULL, "n", "https://x", "{}", &out), ACME_OK);
            json_t *jws = json_loads(out, 0, NULL);
            const char *p64 = json_string_value(json_object_get(jws, "protected"));
            const char *pl64 = json_string_value(json_object_get(jws, "payload"));
            char *input = NULL;
            assert_true(asprintf(&input, "%s.%s", p64, pl64) > 0);
            size_t siglen;
            unsigned char *sig = b64d(json_string_value(json_object_get(jws, "signature")), &siglen);
            /* pub_from_jwk rebuilds the point from the padded coordinates. */
            assert_int_equal(verify_raw(jwk, "ES256", input, strlen(input), sig, siglen), 0);
            free(sig);
            free(input);
            json_decref(jws);
            free(out);
        }
        free(x);
        free(y);
        json_decref(jwk);
        key_free(k);
    }
    assert_true(found);
}

static void test_pem_roundtrip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
        acme_key *k = NULL, *k2 = NULL;
        assert_int_equal(key_generate(all_types[i], &k), ACME_OK);
        char *pem = NULL;
        assert_int_equal(key_to_pem(k, &pem), ACME_OK);
        assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
        assert_non_null(strstr(pem, "-----END PRIVATE KEY-----"));
        assert_int_equal(key_from_pem(pem, strlen(pem), &k2), ACME_OK);
        assert_int_equal(key_get_type(k2), all_types[i]);
        json_t *a = key_jwk(k), *b = key_jwk(k2);
        assert_true(json_equal(a, b));
        /* The re-imported key signs for the original public key. */
        unsigned char *sig;
        size_t siglen;
        assert_int_equal(key_sign(k2, "hello", 5, &sig, &siglen), ACME_OK);
        assert_int_equal(verify_raw(a, key_jws_alg(k), "hello", 5, sig, siglen), 0);
        free(sig);
        /* Exporting again is stable. */
        char *pem2 = NULL;
        assert_int_equal(key_to_pem(k2, &pem2), ACME_OK);
        assert_string_equal(pem, pem2);
        secure_free_str(pem2);
        json_decref(a);
        json_decref(b);
        secure_free_str(pem);
        key_free(k);
        key_free(k2);
    }
}

/* Traditional "EC PRIVATE KEY" / "RSA PRIVATE KEY" files, as older tools
 * and openssl's defaults write them. */
static void traditional(gnutls_pk_algorithm_t pk, unsigned bits, const char *header,
                        acme_key_type expect)
{
    gnutls_x509_privkey_t x;
    assert_int_equal(gnutls_x509_privkey_init(&x), 0);
    assert_int_equal(gnutls_x509_privkey_generate2(x, pk, bits, 0, NULL, 0), 0);
    gnutls_datum_t pem = { NULL, 0 };
    assert_int_equal(gnutls_x509_privkey_export2(x, GNUTLS_X509_FMT_PEM, &pem), 0);
    assert_true(strncmp((char *)pem.data, header, strlen(header)) == 0);

    acme_key *k = NULL;
    assert_int_equal(key_from_pem((char *)pem.data, pem.size, &k), ACME_OK);
    assert_int_equal(key_get_type(k), expect);

    gnutls_privkey_t priv;
    gnutls_pubkey_t pub;
    assert_int_equal(gnutls_privkey_init(&priv), 0);
    assert_int_equal(gnutls_privkey_import_x509(priv, x, 0), 0);
    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    assert_int_equal(gnutls_pubkey_import_privkey(pub, priv, 0, 0), 0);
    json_t *want = jwk_from_pubkey(pub);
    json_t *got = key_jwk(k);
    assert_true(json_equal(want, got));
    json_decref(want);
    json_decref(got);

    /* Re-exported as PKCS#8, whatever came in. */
    char *p8 = NULL;
    assert_int_equal(key_to_pem(k, &p8), ACME_OK);
    assert_true(strncmp(p8, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
    secure_free_str(p8);

    gnutls_pubkey_deinit(pub);
    gnutls_privkey_deinit(priv);
    gnutls_free(pem.data);
    gnutls_x509_privkey_deinit(x);
    key_free(k);
}

static void test_pem_traditional(void **state)
{
    (void)state;
    traditional(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                "-----BEGIN EC PRIVATE KEY-----", ACME_KEY_EC_P256);
    traditional(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1),
                "-----BEGIN EC PRIVATE KEY-----", ACME_KEY_EC_P384);
    traditional(GNUTLS_PK_RSA, 2048, "-----BEGIN RSA PRIVATE KEY-----", ACME_KEY_RSA_2048);
}

static void expect_pem_refused(gnutls_pk_algorithm_t pk, unsigned bits, int encrypted)
{
    gnutls_x509_privkey_t x;
    assert_int_equal(gnutls_x509_privkey_init(&x), 0);
    assert_int_equal(gnutls_x509_privkey_generate2(x, pk, bits, 0, NULL, 0), 0);
    gnutls_datum_t pem = { NULL, 0 };
    if (encrypted)
        assert_int_equal(gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, "secret",
                                                           GNUTLS_PKCS_PBES2_AES_256, &pem), 0);
    else
        assert_int_equal(gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL,
                                                           GNUTLS_PKCS_PLAIN, &pem), 0);
    acme_key *k = (acme_key *)1;
    assert_int_equal(key_from_pem((char *)pem.data, pem.size, &k), ACME_E_CRYPTO);
    assert_null(k);
    gnutls_free(pem.data);
    gnutls_x509_privkey_deinit(x);
}

static void test_pem_refused(void **state)
{
    (void)state;
    acme_key *k = (acme_key *)1;
    const char *junk = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
    assert_int_equal(key_from_pem(junk, strlen(junk), &k), ACME_E_CRYPTO);
    assert_null(k);
    assert_int_equal(key_from_pem("hello", 5, &k), ACME_E_CRYPTO);
    assert_int_equal(key_from_pem("", 0, &k), ACME_E_INVALID_ARG);
    assert_int_equal(key_from_pem(NULL, 10, &k), ACME_E_INVALID_ARG);
    /* Weak, unsupported-curve and password-protected keys. */
    expect_pem_refused(GNUTLS_PK_RSA, 1024, 0);
    expect_pem_refused(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP521R1), 0);
    expect_pem_refused(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 1);

    /* A PEM that is not NUL-terminated where len says it ends. */
    acme_key *g = NULL;
    assert_int_equal(key_generate(ACME_KEY_EC_P256, &g), ACME_OK);
    char *pem = NULL;
    assert_int_equal(key_to_pem(g, &pem), ACME_OK);
    size_t len = strlen(pem);
    char *copy = malloc(len);
    memcpy(copy, pem, len);
    assert_int_equal(key_from_pem(copy, len, &k), ACME_OK);
    key_free(k);
    secure_free(copy, len);
    secure_free_str(pem);
    key_free(g);
}

static void test_rsa_sig_length(void **state)
{
    (void)state;
    acme_key *k = NULL;
    assert_int_equal(key_generate(ACME_KEY_RSA_2048, &k), ACME_OK);
    json_t *jwk = key_jwk(k);
    for (int i = 0; i < 20; i++) {
        unsigned char *sig;
        size_t siglen;
        assert_int_equal(key_sign(k, &i, sizeof(i), &sig, &siglen), ACME_OK);
        assert_int_equal(siglen, 256);
        assert_int_equal(verify_raw(jwk, "RS256", &i, sizeof(i), sig, siglen), 0);
        free(sig);
    }
    /* Empty input is a valid thing to sign. */
    unsigned char *sig;
    size_t siglen;
    assert_int_equal(key_sign(k, NULL, 0, &sig, &siglen), ACME_OK);
    assert_int_equal(verify_raw(jwk, "RS256", "", 0, sig, siglen), 0);
    free(sig);
    json_decref(jwk);
    key_free(k);
}

static void test_eab(void **state)
{
    (void)state;
    acme_key *k = NULL;
    assert_int_equal(key_generate(ACME_KEY_EC_P256, &k), ACME_OK);
    unsigned char mac_key[32];
    for (size_t i = 0; i < sizeof(mac_key); i++)
        mac_key[i] = (unsigned char)(i * 7 + 1);
    const char *url = "https://ca.example/acme/new-account";
    json_t *eab = NULL;
    assert_int_equal(jws_eab(k, "kid-42", mac_key, sizeof(mac_key), url, &eab), ACME_OK);
    assert_true(json_is_object(eab));
    assert_int_equal(json_object_size(eab), 3);
    const char *p64 = json_string_value(json_object_get(eab, "protected"));
    const char *pl64 = json_string_value(json_object_get(eab, "payload"));
    const char *s64 = json_string_value(json_object_get(eab, "signature"));
    assert_non_null(p64);
    assert_non_null(pl64);
    assert_non_null(s64);

    json_t *hdr = b64_json(p64);
    assert_int_equal(json_object_size(hdr), 3);
    assert_string_equal(json_string_value(json_object_get(hdr, "alg")), "HS256");
    assert_string_equal(json_string_value(json_object_get(hdr, "kid")), "kid-42");
    assert_string_equal(json_string_value(json_object_get(hdr, "url")), url);
    json_decref(hdr);

    json_t *payload = b64_json(pl64);
    json_t *jwk = key_jwk(k);
    assert_true(json_equal(payload, jwk));
    json_decref(payload);
    json_decref(jwk);

    /* Recompute the MAC from the transmitted pieces. */
    char *input = NULL;
    assert_true(asprintf(&input, "%s.%s", p64, pl64) > 0);
    unsigned char mac[32];
    assert_int_equal(gnutls_hmac_fast(GNUTLS_MAC_SHA256, mac_key, sizeof(mac_key),
                                      input, strlen(input), mac), 0);
    size_t siglen;
    unsigned char *sig = b64d(s64, &siglen);
    assert_int_equal(siglen, 32);
    assert_memory_equal(sig, mac, 32);
    free(sig);
    free(input);
    json_decref(eab);

    assert_int_equal(jws_eab(k, "kid", mac_key, 0, url, &eab), ACME_E_INVALID_ARG);
    assert_null(eab);
    assert_int_equal(jws_eab(k, NULL, mac_key, 32, url, &eab), ACME_E_INVALID_ARG);
    assert_int_equal(jws_eab(k, "kid", mac_key, 32, NULL, &eab), ACME_E_INVALID_ARG);
    key_free(k);
}

static void test_init_idempotent(void **state)
{
    (void)state;
    assert_int_equal(crypto_init(), ACME_OK);
    assert_int_equal(crypto_init(), ACME_OK);
}

int main(void)
{
    if (crypto_init() != ACME_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_idempotent),
        cmocka_unit_test(test_sha256_b64url),
        cmocka_unit_test(test_rfc7638_from_pubkey),
        cmocka_unit_test(test_rfc7638_from_json),
        cmocka_unit_test(test_generate_types),
        cmocka_unit_test(test_generate_big_rsa),
        cmocka_unit_test(test_jws_es256),
        cmocka_unit_test(test_jws_es384),
        cmocka_unit_test(test_jws_rs256),
        cmocka_unit_test(test_jws_eddsa),
        cmocka_unit_test(test_jws_bad_args),
        cmocka_unit_test(test_ecdsa_raw_p256),
        cmocka_unit_test(test_ecdsa_raw_p384),
        cmocka_unit_test(test_jwk_short_coordinate),
        cmocka_unit_test(test_pem_roundtrip),
        cmocka_unit_test(test_pem_traditional),
        cmocka_unit_test(test_pem_refused),
        cmocka_unit_test(test_rsa_sig_length),
        cmocka_unit_test(test_eab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
