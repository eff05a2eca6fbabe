/* dns-persist-01 and dns-account-01: the record a host must create, the
 * record check, the account label against the draft's test vector, and
 * how challenge objects from the CA are taken or refused. */
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

#define ACCT "https://ca.example/acme/acct/123"

static acme_client *client_with_account(void)
{
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("https://ca.example/dir", &c), ACME_OK);
    assert_int_equal(key_generate(ACME_KEY_EC_P256, &c->account_key), ACME_OK);
    c->account_url = strdup(ACCT);
    return c;
}

static char *persist(const char *issuer, const char *acct, unsigned flags, int64_t until, int *rc)
{
    acme_buffer *b = acme_buffer_new();
    assert_non_null(b);
    *rc = acme_dns_persist_value(issuer, acct, flags, until, b);
    char *s = strdup(acme_buffer_data(b) ? acme_buffer_data(b) : "");
    acme_buffer_free(b);
    return s;
}

static void persist_value_forms(void **state)
{
    (void)state;
    int rc;
    char *v = persist("authority.example", ACCT, 0, 0, &rc);
    assert_int_equal(rc, ACME_OK);
    assert_string_equal(v, "authority.example; accounturi=https://ca.example/acme/acct/123");
    free(v);
    v = persist("authority.example", ACCT, ACME_DNS_PERSIST_WILDCARD, 0, &rc);
    assert_int_equal(rc, ACME_OK);
    assert_string_equal(v, "authority.example; accounturi=https://ca.example/acme/acct/123; policy=wildcard");
    free(v);
    v = persist("authority.example", ACCT, 0, 1767225600, &rc);
    assert_int_equal(rc, ACME_OK);
    assert_string_equal(v, "authority.example; accounturi=https://ca.example/acme/acct/123; persistUntil=1767225600");
    free(v);
    v = persist("Authority.Example", ACCT, ACME_DNS_PERSIST_WILDCARD, 1767225600, &rc);
    assert_int_equal(rc, ACME_OK);
    /* The issuer is lowercased; the account URL is kept byte for byte. */
    assert_string_equal(v, "authority.example; accounturi=https://ca.example/acme/acct/123; policy=wildcard; "
                           "persistUntil=1767225600");
    free(v);
    /* What cannot go into the record. */
    const char *bad_issuers[] = {"", ".example", "example.", "a..b", "a b", "ca;x", NULL};
    for (size_t i = 0; bad_issuers[i]; i++) {
        v = persist(bad_issuers[i], ACCT, 0, 0, &rc);
        assert_int_equal(rc, ACME_E_INVALID_ARG);
        assert_string_equal(v, "");
        free(v);
    }
    const char *bad_urls[] = {"http://ca.example/acct/1", "https://", "https://ca.example/a b",
                              "https://ca.example/a;policy=wildcard", "https://ca.example/\"", NULL};
    for (size_t i = 0; bad_urls[i]; i++) {
        v = persist("ca.example", bad_urls[i], 0, 0, &rc);
        assert_int_equal(rc, ACME_E_INVALID_ARG);
        free(v);
    }
    v = persist("ca.example", ACCT, 4, 0, &rc);
    assert_int_equal(rc, ACME_E_INVALID_ARG);
    free(v);
    v = persist("ca.example", ACCT, 0, -1, &rc);
    assert_int_equal(rc, ACME_E_INVALID_ARG);
    free(v);
    assert_int_equal(acme_dns_persist_value("ca.example", ACCT, 0, 0, NULL), ACME_E_INVALID_ARG);
}

static void persist_match_rules(void **state)
{
    (void)state;
    const char *iss[] = {"authority.example", "ca.example.net"};
    const int64_t now = 1800000000;
    struct {
        const char *txt;
        int wildcard;
        int want;
        const char *why; /* a word of the reason */
    } cases[] = {
        {"authority.example; accounturi=" ACCT, 0, 1, NULL},
        {"ca.example.net;accounturi=" ACCT, 0, 1, NULL},
        {"  Authority.Example.  ;  AccountURI = " ACCT "  ;;  ", 0, 1, NULL},
        {"authority.example; accounturi=" ACCT "; unknown=x; other=y", 0, 1, NULL},
        {"authority.example; accounturi=" ACCT "; policy=WildCard", 1, 1, NULL},
        {"authority.example; accounturi=" ACCT "; persistUntil=1800000000", 0, 1, NULL},
        {"authority.example; accounturi=" ACCT, 1, 0, "wildcard"},
        {"authority.example; accounturi=" ACCT "; policy=other", 1, 0, "wildcard"},
        {"other.example; accounturi=" ACCT, 0, 0, "another CA"},
        {"; accounturi=" ACCT, 0, 0, "issuer"},
        {"authority.example", 0, 0, "no accounturi"},
        {"authority.example; accounturi=", 0, 0, "no accounturi"},
        {"authority.example; accounturi=https://ca.example/acme/acct/1234", 0, 0, "another account"},
        {"authority.example; accounturi=HTTPS://ca.example/acme/acct/123", 0, 0, "another account"},
        {"authority.example; accounturi=" ACCT "; accounturi=" ACCT, 0, 0, "repeats"},
        {"authority.example; accounturi=" ACCT "; POLICY=wildcard; policy=wildcard", 1, 0, "repeats"},
        {"authority.example; accounturi=" ACCT "; persistUntil=1799999999", 0, 0, "passed"},
        {"authority.example; accounturi=" ACCT "; persistUntil=soon", 0, 0, "base-10"},
        {"authority.example; accounturi=" ACCT "; persistUntil=", 0, 0, "empty"},
        {"authority.example; accounturi=" ACCT "; junk", 0, 0, "="},
        {"", 0, 0, "issuer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = "unset";
        int got = acme_dns_persist_match(cases[i].txt, iss, 2, ACCT, cases[i].wildcard, now, &why);
        if (got != cases[i].want)
            fail_msg("case %zu \"%s\": got %d (%s)", i, cases[i].txt, got, why ? why : "");
        if (cases[i].want)
            assert_null(why);
        else if (!why || !strstr(why, cases[i].why))
            fail_msg("case %zu: reason \"%s\" does not mention \"%s\"", i, why ? why : "(null)", cases[i].why);
    }
    /* What we format, we accept. */
    int rc;
    char *v = persist("ca.example.net", ACCT, ACME_DNS_PERSIST_WILDCARD, now + 10, &rc);
    assert_int_equal(acme_dns_persist_match(v, iss, 2, ACCT, 1, now, NULL), 1);
    free(v);
}

static char *label_of(const char *url)
{
    acme_buffer *b = acme_buffer_new();
    assert_int_equal(acme_dns_account_label(url, b), ACME_OK);
    char *s = strdup(acme_buffer_data(b));
    acme_buffer_free(b);
    return s;
}

static void account_label_vectors(void **state)
{
    (void)state;
    /* draft-ietf-acme-dns-account-label's example. */
    char *l = label_of("https://example.com/acme/acct/ExampleAccount");
    assert_string_equal(l, "_ujmmovf2vn55tgye");
    free(l);
    /* Recomputed here from SHA-256 and RFC 4648 base32, bit by bit. */
    const char *url = "https://ca.example/acme/acct/42";
    unsigned char d[32];
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, url, strlen(url), d), 0);
    char expect[18] = "_";
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int k = 0; k < 5; k++) {
            int bit = i * 5 + k;
            v = v << 1 | ((d[bit / 8] >> (7 - bit % 8)) & 1);
        }
        expect[1 + i] = "abcdefghijklmnopqrstuvwxyz234567"[v];
    }
    expect[17] = 0;
    l = label_of(url);
    assert_string_equal(l, expect);
    free(l);
    acme_buffer *b = acme_buffer_new();
    assert_int_equal(acme_dns_account_label("", b), ACME_E_INVALID_ARG);
    assert_int_equal(acme_dns_account_label(NULL, b), ACME_E_INVALID_ARG);
    acme_buffer_free(b);
}

static json_t *authz_with(const char *ident, int wildcard, json_t *chal)
{
    return json_pack("{s:{s:s,s:s},s:s,s:b,s:[o]}", "identifier", "type", "dns", "value", ident, "status",
                     "pending", "wildcard", wildcard, "challenges", chal);
}

static int prepare(acme_client *c, json_t *a, acme_challenge **ch)
{
    return challenge_prepare(c, a, json_array_get(json_object_get(a, "challenges"), 0), ch);
}

static void persist_challenge_taken(void **state)
{
    (void)state;
    acme_client *c = client_with_account();
    /* No token: the record is the same for every order. */
    json_t *a = authz_with("dev.example.org", 0,
                           json_pack("{s:s,s:s,s:s,s:[s,s]}", "type", "dns-persist-01", "url",
                                     "https://ca.example/chall/7", "status", "pending", "issuer-domain-names",
                                     "authority.example", "ca.example.net"));
    acme_challenge *ch = NULL;
    assert_int_equal(prepare(c, a, &ch), ACME_OK);
    assert_int_equal(acme_challenge_get_type(ch), ACME_CHALLENGE_DNS_PERSIST_01);
    assert_string_equal(acme_challenge_type_name(ACME_CHALLENGE_DNS_PERSIST_01), "dns-persist-01");
    assert_null(acme_challenge_token(ch));
    assert_null(acme_challenge_key_authorization(ch));
    assert_string_equal(acme_challenge_dns_name(ch), "_validation-persist.dev.example.org");
    assert_string_equal(acme_challenge_dns_value(ch), "authority.example; accounturi=" ACCT);
    assert_int_equal(acme_challenge_issuer_domain_count(ch), 2);
    assert_string_equal(acme_challenge_issuer_domain(ch, 1), "ca.example.net");
    assert_null(acme_challenge_issuer_domain(ch, 2));
    assert_string_equal(acme_challenge_account_url(ch), ACCT);
    assert_string_equal(acme_challenge_persist_accounturi(ch), ACCT); /* no accountHashPrefix: the URL */
    challenge_free(ch);
    json_decref(a);

    /* draft -02's member name, a token, and a wildcard. */
    a = authz_with("example.org", 1,
                   json_pack("{s:s,s:s,s:s,s:s,s:[s]}", "type", "dns-persist-01", "url", "https://ca.example/chall/8",
                             "status", "pending", "token", "tokTOK", "issuerDomainNames", "authority.example"));
    assert_int_equal(prepare(c, a, &ch), ACME_OK);
    assert_string_equal(acme_challenge_dns_name(ch), "_validation-persist.example.org");
    assert_string_equal(acme_challenge_dns_value(ch), "authority.example; accounturi=" ACCT "; policy=wildcard");
    assert_string_equal(acme_challenge_token(ch), "tokTOK");
    challenge_free(ch);
    json_decref(a);
    acme_client_free(c);
}

static void persist_challenge_refused(void **state)
{
    (void)state;
    acme_client *c = client_with_account();
    json_t *lists[] = {
        json_pack("[]"),
        json_pack("[s,s,s,s,s,s,s,s,s,s,s]", "a.x", "b.x", "c.x", "d.x", "e.x", "f.x", "g.x", "h.x", "i.x", "j.x",
                  "k.x"),
        json_pack("[s]", "Authority.Example"),
        json_pack("[s]", "authority.example."),
        json_pack("[i]", 7),
        json_pack("s", "authority.example"),
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        json_t *a = authz_with("dev.example.org", 0,
                               json_pack("{s:s,s:s,s:o}", "type", "dns-persist-01", "url", "https://ca.example/c/1",
                                         "issuer-domain-names", lists[i]));
        acme_challenge *ch = NULL;
        assert_int_equal(prepare(c, a, &ch), ACME_E_PROTOCOL);
        assert_null(ch);
        assert_non_null(strstr(acme_client_last_error(c), "issuer domain name"));
        result_reset(c);
        json_decref(a);
    }
    /* Missing altogether. */
    json_t *a = authz_with("dev.example.org", 0, json_pack("{s:s,s:s}", "type", "dns-persist-01", "url", "https://x/c"));
    acme_challenge *ch = NULL;
    assert_int_equal(prepare(c, a, &ch), ACME_E_PROTOCOL);
    json_decref(a);
    /* A token, when sent, is still held to the token rules. */
    a = authz_with("dev.example.org", 0,
                   json_pack("{s:s,s:s,s:s,s:[s]}", "type", "dns-persist-01", "url", "https://x/c", "token", "../x",
                             "issuer-domain-names", "ca.example"));
    assert_int_equal(prepare(c, a, &ch), ACME_E_BAD_TOKEN);
    json_decref(a);
    /* Without an account URL there is nothing to bind the record to. */
    free(c->account_url);
    c->account_url = NULL;
    a = authz_with("dev.example.org", 0,
                   json_pack("{s:s,s:s,s:[s]}", "type", "dns-persist-01", "url", "https://x/c", "issuer-domain-names",
                             "ca.example"));
    assert_int_equal(prepare(c, a, &ch), ACME_E_STATE);
    json_decref(a);
    acme_client_free(c);
}

static void account_challenge_values(void **state)
{
    (void)state;
    acme_client *c = client_with_account();
    free(c->account_url);
    c->account_url = strdup("https://example.com/acme/acct/ExampleAccount");
    json_t *a = authz_with("example.org", 1,
                           json_pack("{s:s,s:s,s:s,s:s}", "type", "dns-account-01", "url", "https://ca.example/c/2",
                                     "status", "pending", "token", "AAAAtokenBBBB"));
    acme_challenge *ch = NULL;
    assert_int_equal(prepare(c, a, &ch), ACME_OK);
    assert_int_equal(acme_challenge_get_type(ch), ACME_CHALLENGE_DNS_ACCOUNT_01);
    assert_string_equal(acme_challenge_type_name(ACME_CHALLENGE_DNS_ACCOUNT_01), "dns-account-01");
    /* The wildcard's record sits on the base name, under the account's label. */
    assert_string_equal(acme_challenge_dns_name(ch), "_ujmmovf2vn55tgye._acme-challenge.example.org");
    const char *ka = acme_challenge_key_authorization(ch);
    unsigned char d[32];
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, ka, strlen(ka), d), 0);
    char *expect = b64url_encode(d, 32);
    assert_string_equal(acme_challenge_dns_value(ch), expect);
    free(expect);
    assert_int_equal(acme_challenge_issuer_domain_count(ch), 0);
    challenge_free(ch);
    json_decref(a);
    /* dns-account-01 needs its token like dns-01. */
    a = authz_with("example.org", 0, json_pack("{s:s,s:s}", "type", "dns-account-01", "url", "https://x/c"));
    assert_int_equal(prepare(c, a, &ch), ACME_E_BAD_TOKEN);
    json_decref(a);
    acme_client_free(c);
}

static void hashed_uri_vectors(void **state)
{
    (void)state;
    /* draft-ietf-acme-dns-persist-02 §10.2. */
    const char *prefix = "https://ca.example/account-hash/", *thumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    const char *url = "https://ca.example/acct/123";
    acme_buffer *b = acme_buffer_new();
    assert_int_equal(acme_dns_persist_hashed_uri(prefix, "example.com", thumb, url, b), ACME_OK);
    assert_string_equal(acme_buffer_data(b),
                        "https://ca.example/account-hash/sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw");
    acme_buffer_free(b);
    b = acme_buffer_new();
    assert_int_equal(acme_dns_persist_hashed_uri(prefix, NULL, thumb, url, b), ACME_OK);
    assert_string_equal(acme_buffer_data(b),
                        "https://ca.example/account-hash/sha-256/NpDnSwUthQK8zCgFdefYxAdAVPnygMLbs9US6oO-5ug");
    /* The §10.2 record, formatted and judged. */
    acme_buffer *v = acme_buffer_new();
    assert_int_equal(acme_dns_persist_value("authority.example", acme_buffer_data(b), 0, 0, v), ACME_OK);
    const char *iss[] = {"authority.example"};
    assert_int_equal(acme_dns_persist_match(acme_buffer_data(v), iss, 1, acme_buffer_data(b), 0, 0, NULL), 1);
    assert_int_equal(acme_dns_persist_match(acme_buffer_data(v), iss, 1, url, 0, 0, NULL), 0);
    acme_buffer_free(v);
    acme_buffer_free(b);
    b = acme_buffer_new();
    assert_int_equal(acme_dns_persist_hashed_uri(prefix, "Example.com", thumb, url, b), ACME_E_INVALID_ARG);
    assert_int_equal(acme_dns_persist_hashed_uri("http://x/", "example.com", thumb, url, b), ACME_E_INVALID_ARG);
    assert_int_equal(acme_dns_persist_hashed_uri(prefix, "example.com", "", url, b), ACME_E_INVALID_ARG);
    assert_string_equal(acme_buffer_data(b), "");
    acme_buffer_free(b);
}

static void hashed_when_the_directory_asks(void **state)
{
    (void)state;
    acme_client *c = client_with_account();
    c->dir_meta = json_pack("{s:s}", "accountHashPrefix", "https://ca.example/account-hash/");
    json_t *a = authz_with("dev.example.org", 0,
                           json_pack("{s:s,s:s,s:[s]}", "type", "dns-persist-01", "url", "https://ca.example/c/9",
                                     "issuerDomainNames", "authority.example"));
    acme_challenge *ch = NULL;
    assert_int_equal(prepare(c, a, &ch), ACME_OK);
    acme_buffer *b = acme_buffer_new();
    assert_int_equal(acme_dns_persist_hashed_uri("https://ca.example/account-hash/", "dev.example.org",
                                                 acme_account_thumbprint(c), ACCT, b), ACME_OK);
    assert_string_equal(acme_challenge_persist_accounturi(ch), acme_buffer_data(b));
    char *want = xasprintf("authority.example; accounturi=%s", acme_buffer_data(b));
    assert_string_equal(acme_challenge_dns_value(ch), want);
    assert_string_equal(acme_challenge_account_url(ch), ACCT);
    free(want);
    acme_buffer_free(b);
    challenge_free(ch);
    json_decref(a);
    acme_client_free(c);
}

static void issuers_checked_against_directory(void **state)
{
    (void)state;
    acme_client *c = client_with_account();
    struct {
        const char *meta;
        int want;
    } cases[] = {
        {"{\"issuerDomainNames\": [\"authority.example\"]}", ACME_OK},
        {"{\"issuerDomainNames\": [\"ca.example.net\"]}", ACME_E_PROTOCOL},   /* D not within C */
        {"{\"caaIdentities\": [\"authority.example\", \"x.example\"]}", ACME_OK},
        {"{\"caaIdentities\": [\"x.example\"]}", ACME_E_PROTOCOL},          /* C not within I */
        {"{\"issuerDomainNames\": \"authority.example\"}", ACME_OK},         /* not an array: no check */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_decref(c->dir_meta);
        c->dir_meta = json_loads(cases[i].meta, 0, NULL);
        assert_non_null(c->dir_meta);
        json_t *a = authz_with("dev.example.org", 0,
                               json_pack("{s:s,s:s,s:[s]}", "type", "dns-persist-01", "url", "https://x/c",
                                         "issuer-domain-names", "authority.example"));
        acme_challenge *ch = NULL;
        int rc = prepare(c, a, &ch);
        if (rc != cases[i].want)
            fail_msg("case %zu (%s): %d", i, cases[i].meta, rc);
        if (rc)
            assert_non_null(strstr(acme_client_last_error(c), "issuer domain name"));
        challenge_free(ch);
        result_reset(c);
        json_decref(a);
    }
    acme_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(persist_value_forms),
        cmocka_unit_test(persist_match_rules),
        cmocka_unit_test(account_label_vectors),
        cmocka_unit_test(persist_challenge_taken),
        cmocka_unit_test(persist_challenge_refused),
        cmocka_unit_test(account_challenge_values),
        cmocka_unit_test(hashed_uri_vectors),
        cmocka_unit_test(hashed_when_the_directory_asks),
        cmocka_unit_test(issuers_checked_against_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
