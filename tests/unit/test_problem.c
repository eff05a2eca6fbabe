/* Problem documents: parsing, subproblems, description, result codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"

static void parse_with_subproblems(void **state)
{
    (void)state;
    /* The shape of RFC 8555 §6.7.1's example. */
    const char *doc =
        "{\"type\":\"urn:ietf:params:acme:error:malformed\","
        "\"detail\":\"Some of the identifiers requested were rejected\",\"status\":400,"
        "\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:malformed\","
        "\"detail\":\"Invalid underscore in DNS name \\\"_example.org\\\"\","
        "\"identifier\":{\"type\":\"dns\",\"value\":\"_example.org\"}},"
        "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
        "\"detail\":\"This CA will not issue for \\\"example.net\\\"\","
        "\"identifier\":{\"type\":\"dns\",\"value\":\"example.net\"}}]}";
    acme_problem *p = problem_parse(doc, strlen(doc));
    assert_non_null(p);
    assert_string_equal(acme_problem_type(p), "urn:ietf:params:acme:error:malformed");
    assert_int_equal(acme_problem_status(p), 400);
    assert_true(problem_is(p, "malformed"));
    assert_false(problem_is(p, "badNonce"));
    assert_int_equal(acme_problem_subproblem_count(p), 2);
    const acme_problem *s = acme_problem_subproblem(p, 1);
    assert_string_equal(acme_problem_type(s), "urn:ietf:params:acme:error:rejectedIdentifier");
    assert_string_equal(acme_problem_identifier_type(s), "dns");
    assert_string_equal(acme_problem_identifier_value(s), "example.net");
    assert_null(acme_problem_subproblem(p, 2));
    assert_null(acme_problem_identifier_value(p));
    char *d = problem_describe(p);
    assert_non_null(strstr(d, "dns example.net: urn:ietf:params:acme:error:rejectedIdentifier"));
    assert_non_null(strstr(d, "Some of the identifiers"));
    free(d);
    problem_free(p);
}

static void not_a_problem(void **state)
{
    (void)state;
    assert_null(problem_parse("<html>502 Bad Gateway</html>", 28));
    assert_null(problem_parse("{\"detail\":\"no type\"}", 20));
    assert_null(problem_parse("[1,2]", 5));
    assert_null(problem_parse("{\"type\":\"a\",\"type\":\"b\"}", 23)); /* duplicate members */
}

static void strerror_covers_codes(void **state)
{
    (void)state;
    for (int i = ACME_OK; i <= ACME_E_NO_CHALLENGE; i++) {
        const char *m = acme_strerror(i);
        assert_non_null(m);
        assert_string_not_equal(m, "unknown error code");
    }
    assert_string_equal(acme_strerror(9999), "unknown error code");
}

static void client_result(void **state)
{
    (void)state;
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("http://insecure.example/dir", &c), ACME_E_INSECURE);
    assert_null(c);
    assert_int_equal(acme_client_new("https://ca.example/dir", &c), ACME_OK);
    assert_string_equal(acme_client_last_error(c), "");
    assert_int_equal(client_fail(c, ACME_E_STORAGE, "first %d", 1), ACME_E_STORAGE);
    client_fail(c, ACME_E_NETWORK, "second");
    assert_string_equal(acme_client_last_error(c), "first 1"); /* the first cause wins */
    result_reset(c);
    assert_string_equal(acme_client_last_error(c), "");
    acme_client_free(c);
}

static void ca_ids_differ(void **state)
{
    (void)state;
    char *a = store_ca_id("https://acme-v02.api.letsencrypt.org/directory");
    char *b = store_ca_id("https://acme-staging-v02.api.letsencrypt.org/directory");
    char *d = store_ca_id("https://127.0.0.1:14000/dir");
    assert_non_null(strstr(a, "acme-v02.api.letsencrypt.org_directory-"));
    assert_string_not_equal(a, b);
    assert_null(strchr(d, ':'));
    assert_null(strchr(d, '/'));
    free(a);
    free(b);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_with_subproblems),
        cmocka_unit_test(not_a_problem),
        cmocka_unit_test(strerror_covers_codes),
        cmocka_unit_test(client_result),
        cmocka_unit_test(ca_ids_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
