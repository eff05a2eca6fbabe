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
    assert_int_equal(challenge_type_from_name("dns-account-01"), ACME_CHALLENGE_DNS_ACCOUNT_01);
    assert_int_equal(challenge_type_from_name("dns-persist-01"), ACME_CHALLENGE_DNS_PERSIST_01);
    assert_int_equal(challenge_type_from_name("dns-02"), ACME_CHALLENGE_NONE);
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


/* ---- identifier binding (issue 10 #2) ---- */

static json_t *authz_ident(const char *type, const char *value, int wildcard)
{
    json_t *a = json_pack("{s:{s:s,s:s},s:s}", "identifier", "type", type, "value", value, "status", "pending");
    if (wildcard)
        json_object_set_new(a, "wildcard", json_true());
    return a;
}

static void ident_matching_rules(void **state)
{
    (void)state;
    /* Names case-insensitively, with the type. */
    assert_true(ident_is_name("dns", "A.Example", 0, 0, "a.example"));
    assert_true(ident_is_name("DNS", "a.example", 0, 0, "a.example"));
    assert_false(ident_is_name("ip", "a.example", 0, 0, "a.example"));
    assert_false(ident_is_name("email", "a.example", 0, 0, "a.example"));
    assert_false(ident_is_name("dns", "a.example.", 0, 0, "a.example"));
    assert_false(ident_is_name("dns", "b.example", 0, 0, "a.example"));
    /* Wildcards: an authorization has the base name and the flag... */
    assert_true(ident_is_name("dns", "w.example", 1, 0, "*.w.example"));
    assert_false(ident_is_name("dns", "w.example", 0, 0, "*.w.example"));
    assert_false(ident_is_name("dns", "*.w.example", 0, 0, "*.w.example"));
    assert_false(ident_is_name("dns", "*.w.example", 1, 0, "*.w.example"));
    assert_false(ident_is_name("dns", "w.example", 1, 0, "w.example"));
    /* ...the order's echo has "*." and no flag. */
    assert_true(ident_is_name("dns", "*.w.example", 0, 1, "*.w.example"));
    assert_false(ident_is_name("dns", "w.example", 0, 1, "*.w.example"));
    /* IP addresses by value, in any textual form; never as DNS. */
    assert_true(ident_is_name("ip", "127.0.0.1", 0, 0, "127.0.0.1"));
    assert_true(ident_is_name("ip", "0:0::1", 0, 0, "::1"));
    assert_true(ident_is_name("ip", "2001:DB8::1", 0, 0, "2001:db8:0::1"));
    assert_false(ident_is_name("dns", "127.0.0.1", 0, 0, "127.0.0.1"));
    assert_false(ident_is_name("ip", "127.0.0.2", 0, 0, "127.0.0.1"));
    assert_false(ident_is_name("ip", "::ffff:127.0.0.1", 0, 0, "127.0.0.1"));
    assert_false(ident_is_name("ip", "127.0.0.1", 1, 0, "127.0.0.1"));
    /* Values that must never reach a host, whatever was ordered. */
    char *long_name = calloc(4001, 1);
    memset(long_name, 'a', 4000);
    const char *bad[] = { "", "../../etc/passwd", "a.example\nb.example", "$(touch x).example", "\x1b[31ma.example",
                          "a b.example", "a.example\r", "a\x7f.example", "a;b.example", "a`b`.example", long_name };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(ident_value_safe(bad[i]));
        assert_false(ident_is_name("dns", bad[i], 0, 0, bad[i]));
    }
    free(long_name);
    assert_false(ident_is_name(NULL, "a.example", 0, 0, "a.example"));
    assert_false(ident_is_name("dns", NULL, 0, 0, "a.example"));
    assert_true(ident_value_safe("_a-b.example"));
    assert_true(ident_value_safe("2001:db8::1"));
}

static void authz_bound_to_order(void **state)
{
    (void)state;
    const char *const names[] = { "a.example", "*.w.example", "192.0.2.7" };
    size_t idx = 99;
    const char *why = NULL;
    json_t *a = authz_ident("dns", "A.EXAMPLE", 0);
    assert_int_equal(authz_matches_order(names, 3, NULL, a, &idx, &why), ACME_OK);
    assert_int_equal(idx, 0);
    assert_null(why);
    /* Each ordered identifier once: a second authorization for it is refused. */
    unsigned char taken[3] = { 1, 0, 0 };
    assert_int_equal(authz_matches_order(names, 3, taken, a, &idx, &why), ACME_E_PROTOCOL);
    assert_non_null(strstr(why, "another authorization"));
    json_decref(a);
    a = authz_ident("dns", "w.example", 1);
    assert_int_equal(authz_matches_order(names, 3, taken, a, &idx, &why), ACME_OK);
    assert_int_equal(idx, 1);
    json_decref(a);
    a = authz_ident("ip", "192.0.2.7", 0);
    assert_int_equal(authz_matches_order(names, 3, taken, a, &idx, &why), ACME_OK);
    assert_int_equal(idx, 2);
    json_decref(a);
    /* Not ordered; the wildcard flag missing; the base name with a flag. */
    const struct { const char *type, *value; int wild; const char *why; } refused[] = {
        { "dns", "evil.example", 0, "was not ordered" },
        { "dns", "w.example", 0, "was not ordered" },
        { "dns", "a.example", 1, "was not ordered" },
        { "dns", "*.w.example", 1, "was not ordered" },
        { "dns", "192.0.2.7", 0, "was not ordered" },
        { "email", "a.example", 0, "was not ordered" },
        { "dns", "../a.example", 0, "cannot be a DNS name" },
        { "dns", "a.example\n", 0, "cannot be a DNS name" },
        { "dns", "", 0, "cannot be a DNS name" },
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        a = authz_ident(refused[i].type, refused[i].value, refused[i].wild);
        why = NULL;
        assert_int_equal(authz_matches_order(names, 3, NULL, a, &idx, &why), ACME_E_PROTOCOL);
        assert_non_null(why);
        assert_non_null(strstr(why, refused[i].why));
        json_decref(a);
    }
    /* No identifier, or a malformed one. */
    a = json_pack("{s:s}", "status", "pending");
    assert_int_equal(authz_matches_order(names, 3, NULL, a, &idx, &why), ACME_E_PROTOCOL);
    assert_non_null(strstr(why, "no identifier"));
    json_decref(a);
    a = json_pack("{s:{s:s,s:i}}", "identifier", "type", "dns", "value", 7);
    assert_int_equal(authz_matches_order(names, 3, NULL, a, &idx, &why), ACME_E_PROTOCOL);
    json_decref(a);
    a = json_pack("{s:{s:s,s:s},s:s}", "identifier", "type", "dns", "value", "w.example", "wildcard", "yes");
    assert_int_equal(authz_matches_order(names, 3, NULL, a, &idx, &why), ACME_E_PROTOCOL);
    assert_non_null(strstr(why, "boolean"));
    json_decref(a);
}

static void order_echo_checked(void **state)
{
    (void)state;
    const char *const names[] = { "a.example", "*.w.example" };
    const char *why = NULL;
    json_t *o = json_pack("{s:[{s:s,s:s},{s:s,s:s}]}", "identifiers", "type", "dns", "value", "*.W.example",
                          "type", "dns", "value", "a.example");
    assert_int_equal(order_identifiers_match(names, 2, o, &why), ACME_OK);
    json_decref(o);
    o = json_pack("{s:s}", "status", "pending"); /* no echo: nothing to check here */
    assert_int_equal(order_identifiers_match(names, 2, o, &why), ACME_OK);
    json_decref(o);
    json_t *bad[] = {
        json_pack("{s:[{s:s,s:s}]}", "identifiers", "type", "dns", "value", "a.example"),
        json_pack("{s:[{s:s,s:s},{s:s,s:s}]}", "identifiers", "type", "dns", "value", "a.example", "type", "dns",
                  "value", "a.example"),
        json_pack("{s:[{s:s,s:s},{s:s,s:s}]}", "identifiers", "type", "dns", "value", "a.example", "type", "dns",
                  "value", "evil.example"),
        json_pack("{s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}]}", "identifiers", "type", "dns", "value", "a.example",
                  "type", "dns", "value", "*.w.example", "type", "dns", "value", "evil.example"),
        json_pack("{s:s}", "identifiers", "a.example"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(order_identifiers_match(names, 2, bad[i], &why), ACME_E_PROTOCOL);
        assert_non_null(why);
        json_decref(bad[i]);
    }
}

static void cert_names_exact(void **state)
{
    (void)state;
    const char *const names[] = { "a.example", "*.w.example", "::1" };
    char *good[] = { "*.W.example", "0:0::1", "A.example" };
    char *extra[] = { "a.example", "*.w.example", "::1", "evil.example" };
    char *missing[] = { "a.example", "::1" };
    const char *m = NULL, *x = NULL;
    assert_int_equal(cert_names_match(names, 3, good, 3, &m, &x), ACME_OK);
    assert_null(m);
    assert_null(x);
    assert_int_equal(cert_names_match(names, 3, extra, 4, &m, &x), ACME_E_PROTOCOL);
    assert_null(m);
    assert_string_equal(x, "evil.example");
    assert_int_equal(cert_names_match(names, 3, missing, 2, &m, &x), ACME_E_PROTOCOL);
    assert_string_equal(m, "*.w.example");
    assert_int_equal(cert_names_match(names, 3, NULL, 0, &m, &x), ACME_E_PROTOCOL);
    assert_string_equal(m, "a.example");
}

/* challenge_prepare is the last guard: an unsafe identifier never becomes
 * a challenge (a path, a DNS name, a TLS server name). */
static void unsafe_identifiers_refused(void **state)
{
    (void)state;
    acme_client *c = client_with_key();
    const char *token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
    const char *bad[] = { "", "../../etc/passwd", "a\nb.example", "$(id).example", "\x1b[2Ja.example" };
    const char *types[] = { "http-01", "dns-01", "tls-alpn-01" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        for (size_t t = 0; t < 3; t++) {
            json_t *a = authz_json(bad[i], 0, types[t], token);
            acme_challenge *ch = (acme_challenge *)0x1;
            assert_int_equal(challenge_prepare(c, a, json_array_get(json_object_get(a, "challenges"), 0), &ch),
                             ACME_E_PROTOCOL);
            assert_null(ch);
            const char *err = acme_client_last_error(c);
            assert_non_null(strstr(err, "the CA is at fault"));
            for (const char *p = err; *p; p++)
                assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
            result_reset(c);
            json_decref(a);
        }
    acme_client_free(c);
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
        cmocka_unit_test(ident_matching_rules),
        cmocka_unit_test(authz_bound_to_order),
        cmocka_unit_test(order_echo_checked),
        cmocka_unit_test(cert_names_exact),
        cmocka_unit_test(unsafe_identifiers_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
