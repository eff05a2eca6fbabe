/* Challenge values: key authorization, dns-01 record, tls-alpn-01
 * material, and the token guard that keeps unsafe tokens from hosts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <gnutls/crypto.h>
#include "b64url.h"
#include "internal.h"

static acme_client *client_with_key(void)
{
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("https://ca.example/dir", &c), ACME_OK);
    assert_int_equal(key_generate(ACME_KEY_EC_P256, &c->account_key), ACME_OK);
    return c;
}

static json_t *authz_json(const char *ident, int wildcard, const char *type, const char *token)
{
    return json_pack("{s:{s:s,s:s},s:s,s:b,s:[{s:s,s:s,s:s,s:s}]}",
                     "identifier", "type", "dns", "value", ident,
                     "status", "pending", "wildcard", wildcard,
                     "challenges", "type", type, "url", "https://ca.example/chall/1",
                     "token", token, "status", "pending");
}

static void sha256_known_answer(void **state)
{
    (void)state;
    char *v = NULL;
    assert_int_equal(sha256_b64url("abc", 3, &v), ACME_OK);
    /* SHA-256("abc") = ba7816bf...15ad, in base64url. */
    assert_string_equal(v, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    free(v);
}

static void key_authorization_format(void **state)
{
    (void)state;
    char *ka = key_authorization("tok_en-1", "thumbPrint");
    assert_string_equal(ka, "tok_en-1.thumbPrint");
    free(ka);
}

static void http01_values(void **state)
{
    (void)state;
    acme_client *c = client_with_key();
    const char *token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
    json_t *a = authz_json("www.example.org", 0, "http-01", token);
    acme_challenge *ch = NULL;
    assert_int_equal(challenge_prepare(c, a, json_array_get(json_object_get(a, "challenges"), 0), &ch), ACME_OK);
    assert_int_equal(acme_challenge_get_type(ch), ACME_CHALLENGE_HTTP_01);
    assert_string_equal(acme_challenge_token(ch), token);
    char *expect = xasprintf("%s.%s", token, acme_account_thumbprint(c));
    assert_string_equal(acme_challenge_key_authorization(ch), expect);
    assert_string_equal(acme_challenge_http_path(ch), "/.well-known/acme-challenge/evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA");
    assert_null(acme_challenge_dns_name(ch));
    free(expect);
    challenge_free(ch);
    json_decref(a);
    acme_client_free(c);
}

static void dns01_wildcard_values(void **state)
{
    (void)state;
    acme_client *c = client_with_key();
    json_t *a = authz_json("example.org", 1, "dns-01", "AAAAtokenBBBB");
    acme_challenge *ch = NULL;
    assert_int_equal(challenge_prepare(c, a, json_array_get(json_object_get(a, "challenges"), 0), &ch), ACME_OK);
    assert_true(acme_challenge_is_wildcard(ch));
    /* The wildcard's record sits on the base name. */
    assert_string_equal(acme_challenge_dns_name(ch), "_acme-challenge.example.org");
    /* Recompute the value independently of sha256_b64url. */
    const char *ka = acme_challenge_key_authorization(ch);
    unsigned char d[32];
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, ka, strlen(ka), d), 0);
    char *expect = b64url_encode(d, 32);
    assert_string_equal(acme_challenge_dns_value(ch), expect);
    assert_int_equal(strlen(expect), 43);
    free(expect);
    challenge_free(ch);
    json_decref(a);
    acme_client_free(c);
}

static void tls_alpn01_material(void **state)
{
    (void)state;
    acme_client *c = client_with_key();
    json_t *a = authz_json("alpn.example.org", 0, "tls-alpn-01", "tokenTOKEN_token");
    acme_challenge *ch = NULL;
    assert_int_equal(challenge_prepare(c, a, json_array_get(json_object_get(a, "challenges"), 0), &ch), ACME_OK);
    assert_non_null(strstr(acme_challenge_alpn_cert_pem(ch), "BEGIN CERTIFICATE"));
    assert_non_null(strstr(acme_challenge_alpn_key_pem(ch), "PRIVATE KEY"));
    challenge_free(ch);
    json_decref(a);
    acme_client_free(c);
}

static void unsafe_tokens_refused(void **state)
{
    (void)state;
    const char *bad[] = { "../../etc/passwd", "a/b", "tok.en", "", "tok en", "%2e%2e", "tok=" };
    acme_client *c = client_with_key();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *a = authz_json("www.example.org", 0, "http-01", bad[i]);
        acme_challenge *ch = (acme_challenge *)0x1;
        assert_int_equal(challenge_prepare(c, a, json_array_get(json_object_get(a, "challenges"), 0), &ch),
                         ACME_E_BAD_TOKEN);
        assert_null(ch);
        assert_non_null(strstr(acme_client_last_error(c), "base64url"));
        result_reset(c);
        json_decref(a);
    }
    /* A token that is not a string at all. */
    json_t *a = json_pack("{s:{s:s,s:s},s:[{s:s,s:s,s:i}]}", "identifier", "type", "dns", "value", "x.org",
                          "challenges", "type", "http-01", "url", "https://ca.example/c", "token", 5);
    acme_challenge *ch = NULL;
    assert_int_equal(challenge_prepare(c, a, json_array_get(json_object_get(a, "challenges"), 0), &ch),
                     ACME_E_BAD_TOKEN);
    json_decref(a);
    acme_client_free(c);
}

static void type_names(void **state)
{
    (void)state;
    assert_int_equal(challenge_type_from_name("http-01"), ACME_CHALLENGE_HTTP_01);
    assert_int_equal(challenge_type_from_name("dns-01"), ACME_CHALLENGE_DNS_01);
    assert_int_equal(challenge_type_from_name("tls-alpn-01"), ACME_CHALLENGE_TLS_ALPN_01);
    assert_int_equal(challenge_type_from_name("dns-account-01"), ACME_CHALLENGE_NONE);
    assert_int_equal(challenge_type_from_name(NULL), ACME_CHALLENGE_NONE);
    assert_string_equal(acme_challenge_type_name(ACME_CHALLENGE_TLS_ALPN_01), "tls-alpn-01");
    assert_string_equal(acme_challenge_type_name((acme_challenge_type)77), "unknown");
}

static void ranking_follows_history(void **state)
{
    (void)state;
    const acme_challenge_type prefs[] = { ACME_CHALLENGE_HTTP_01, ACME_CHALLENGE_TLS_ALPN_01, ACME_CHALLENGE_DNS_01 };
    acme_challenge_type out[3];
    /* No history: the host's order. */
    assert_int_equal(challenge_rank(prefs, 3, NULL, NULL, out), 3);
    assert_int_equal(out[0], ACME_CHALLENGE_HTTP_01);
    assert_int_equal(out[1], ACME_CHALLENGE_TLS_ALPN_01);
    assert_int_equal(out[2], ACME_CHALLENGE_DNS_01);
    /* http-01 failed once, tls-alpn-01 worked: tls-alpn-01 first next time. */
    json_t *scores = json_pack("{s:i,s:i}", "http-01", -1, "tls-alpn-01", 1);
    assert_int_equal(challenge_rank(prefs, 3, scores, NULL, out), 3);
    assert_int_equal(out[0], ACME_CHALLENGE_TLS_ALPN_01);
    assert_int_equal(out[1], ACME_CHALLENGE_DNS_01);   /* score 0 beats -1 */
    assert_int_equal(out[2], ACME_CHALLENGE_HTTP_01);
    /* Within one run, a type that failed is not tried again. */
    json_t *failed = json_pack("[s]", "tls-alpn-01");
    assert_int_equal(challenge_rank(prefs, 3, scores, failed, out), 2);
    assert_int_equal(out[0], ACME_CHALLENGE_DNS_01);
    assert_int_equal(out[1], ACME_CHALLENGE_HTTP_01);
    /* Everything failed: nothing left, which is what ends the fallback. */
    json_t *all = json_pack("[s,s,s]", "http-01", "tls-alpn-01", "dns-01");
    assert_int_equal(challenge_rank(prefs, 3, scores, all, out), 0);
    /* Equal scores keep the configured order (stability). */
    json_t *tie = json_pack("{s:i,s:i,s:i}", "http-01", 2, "tls-alpn-01", 2, "dns-01", 2);
    assert_int_equal(challenge_rank(prefs, 3, tie, NULL, out), 3);
    assert_int_equal(out[0], ACME_CHALLENGE_HTTP_01);
    assert_int_equal(out[1], ACME_CHALLENGE_TLS_ALPN_01);
    json_decref(scores);
    json_decref(failed);
    json_decref(all);
    json_decref(tie);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_known_answer),
        cmocka_unit_test(key_authorization_format),
        cmocka_unit_test(http01_values),
        cmocka_unit_test(dns01_wildcard_values),
        cmocka_unit_test(tls_alpn01_material),
        cmocka_unit_test(unsafe_tokens_refused),
        cmocka_unit_test(type_names),
        cmocka_unit_test(ranking_follows_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
