/* Problem documents: parsing, subproblems, description, result codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"
#include <acme/engine.h>

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

static int no_get(void *ud, const char *k, acme_buffer *o) { (void)ud, (void)k, (void)o; return ACME_E_NOT_FOUND; }
static int no_put(void *ud, const char *k, const void *d, size_t n, unsigned f)
{
    (void)ud, (void)k, (void)d, (void)n, (void)f;
    return ACME_OK;
}

/* Day-one mistakes with the plug-in tables and the params get a sentence
 * that names the member or the size, not a bare ACME_E_INVALID_ARG. */
static void setter_errors_name_the_mistake(void **state)
{
    (void)state;
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("https://ca.example/dir", &c), ACME_OK);

    char want[512];
    acme_host_callbacks cb = {0};
    assert_int_equal(acme_client_set_host(c, &cb, NULL), ACME_E_INVALID_ARG);
    snprintf(want, sizeof want, "acme_client_set_host: acme_host_callbacks.size is 0, at least %zu expected: set "
             ".size = sizeof(acme_host_callbacks)", offsetof(acme_host_callbacks, log) + sizeof(cb.log));
    assert_string_equal(acme_client_last_error(c), want);

    acme_storage_ops so = {0};
    assert_int_equal(acme_client_set_storage(c, &so, NULL), ACME_E_INVALID_ARG);
    assert_non_null(strstr(acme_client_last_error(c), "acme_storage_ops.size is 0"));
    so.size = sizeof so;
    so.get = no_get;
    assert_int_equal(acme_client_set_storage(c, &so, NULL), ACME_E_INVALID_ARG);
    assert_string_equal(acme_client_last_error(c),
                        "acme_client_set_storage: the table has no put (get, put and remove are required, or submit)");
    so.put = no_put;
    assert_int_equal(acme_client_set_storage(c, &so, NULL), ACME_E_INVALID_ARG);
    assert_non_null(strstr(acme_client_last_error(c), "has no remove"));

    acme_transport_ops to = {.size = sizeof to};
    assert_int_equal(acme_client_set_transport(c, &to, NULL), ACME_E_INVALID_ARG);
    assert_non_null(strstr(acme_client_last_error(c), "has neither perform nor submit"));
    assert_int_equal(acme_client_set_transport(c, NULL, NULL), ACME_E_INVALID_ARG);
    assert_non_null(strstr(acme_client_last_error(c), "no table given"));

    /* The params: a size not set is said to be that, not "no names". */
    const char *names[] = {"a.example"};
    acme_issue_params p = {.names = names, .name_count = 1};
    assert_int_equal(acme_issue(c, &p), ACME_E_INVALID_ARG);
    assert_non_null(strstr(acme_client_last_error(c), "acme_issue_params.size is 0"));
    assert_null(strstr(acme_client_last_error(c), "no names"));
    acme_issue_params q = {.size = sizeof q};
    assert_int_equal(acme_issue(c, &q), ACME_E_INVALID_ARG);
    assert_string_equal(acme_client_last_error(c), "issue: no names given (set .names and .name_count)");
    p.size = 8; /* wrong, not 0: still the size that is reported */
    assert_int_equal(acme_issue(c, &p), ACME_E_INVALID_ARG);
    snprintf(want, sizeof want, "issue: acme_issue_params.size is 8, at least %zu expected: set .size = "
             "sizeof(acme_issue_params)", offsetof(acme_issue_params, cert_id) + sizeof(p.cert_id));
    assert_string_equal(acme_client_last_error(c), want);

    /* Account params: the member, not "bad parameters". */
    acme_account_params ap = {.size = 8};
    assert_int_equal(acme_account_register(c, &ap), ACME_E_INVALID_ARG);
    snprintf(want, sizeof want, "account: acme_account_params.size is 8, at least %zu expected: set .size = "
             "sizeof(acme_account_params)", offsetof(acme_account_params, eab_hmac_key) + sizeof(ap.eab_hmac_key));
    assert_string_equal(acme_client_last_error(c), want);
    ap = (acme_account_params){.size = sizeof ap, .contact_count = 2};
    assert_int_equal(acme_account_register(c, &ap), ACME_E_INVALID_ARG);
    assert_string_equal(acme_client_last_error(c), "account: acme_account_params.contact_count is 2 but .contacts "
                        "is NULL");
    const char *contacts[] = {"mailto:a@example.org", NULL};
    ap.contacts = contacts;
    assert_int_equal(acme_account_register(c, &ap), ACME_E_INVALID_ARG);
    assert_string_equal(acme_client_last_error(c), "account: acme_account_params.contacts[1] is NULL (2 contacts "
                        "counted)");
    ap = (acme_account_params){.size = sizeof ap, .eab_hmac_key = "c2VjcmV0"};
    assert_int_equal(acme_account_register(c, &ap), ACME_E_INVALID_ARG);
    assert_string_equal(acme_client_last_error(c), "account: acme_account_params.eab_hmac_key is set but .eab_kid "
                        "is not: external account binding needs both (or neither)");

    /* Engine options and the plain setters. */
    assert_int_equal(acme_client_set_storage_dir(c, ""), ACME_E_INVALID_ARG);
    assert_string_equal(acme_client_last_error(c), "acme_client_set_storage_dir: no directory given");
    acme_engine_options eo = {.size = 4};
    acme_engine *e = NULL;
    assert_int_equal(acme_engine_new(c, &eo, &e), ACME_E_INVALID_ARG);
    assert_null(e);
    snprintf(want, sizeof want, "engine: acme_engine_options.size is 4, at least %zu expected: set .size = "
             "sizeof(acme_engine_options)", offsetof(acme_engine_options, jitter_percent) + sizeof(eo.jitter_percent));
    assert_string_equal(acme_client_last_error(c), want);
    assert_int_equal(acme_client_set_max_response(c, 10), ACME_E_INVALID_ARG);
    assert_string_equal(acme_client_last_error(c), "acme_client_set_max_response: 10 bytes is below the minimum of 1024");
    /* And the next successful setter leaves no earlier sentence behind. */
    acme_host_callbacks ok = {.size = sizeof ok};
    assert_int_equal(acme_client_set_host(c, &ok, NULL), ACME_OK);
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


/* ---- CA text in sentences and log lines (issue 10 #7) ---- */

typedef struct log_rec {
    char lines[8][2048];
    int levels[8];
    int n;
} log_rec;

static void rec_log(void *ud, acme_log_level level, const char *msg)
{
    log_rec *r = ud;
    if (r->n < 8) {
        snprintf(r->lines[r->n], sizeof(r->lines[0]), "%s", msg);
        r->levels[r->n++] = (int)level;
    }
}

static void assert_no_controls(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        assert_true(*p >= 0x20 && *p != 0x7f);
        assert_false(p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f);
    }
}

static void escape_rules(void **state)
{
    (void)state;
    char *e = escape_controls("a\nb\r\tc\x1b[2J\x7f\xc2\x9b" "d \xc3\xa9 ok");
    assert_string_equal(e, "a\\x0ab\\x0d\\x09c\\x1b[2J\\x7f\\xc2\\x9bd \xc3\xa9 ok");
    free(e);
    e = escape_controls("plain text, \\ kept");
    assert_string_equal(e, "plain text, \\ kept");
    free(e);
    assert_null(escape_controls(NULL));
    assert_true(has_controls("x\ny"));
    assert_true(has_controls("\xc2\x85"));
    assert_false(has_controls("caf\xc3\xa9"));
    assert_false(has_controls(NULL));
    char *x = text_excerpt("abcdef", 3);
    assert_string_equal(x, "abc... (6 bytes)");
    free(x);
    x = text_excerpt("ab\xc3\xa9", 3); /* never half a character */
    assert_string_equal(x, "ab... (4 bytes)");
    free(x);
    x = text_excerpt("abc", 3);
    assert_string_equal(x, "abc");
    free(x);
}

static void sentence_and_log_are_one_line(void **state)
{
    (void)state;
    acme_client *c = NULL;
    log_rec r = { .n = 0 };
    assert_int_equal(acme_client_new("https://ca.example/dir", &c), ACME_OK);
    acme_host_callbacks cb = { .size = sizeof(cb), .log = rec_log };
    assert_int_equal(acme_client_set_host(c, &cb, &r), ACME_OK);
    assert_int_equal(acme_client_set_log_level(c, ACME_LOG_DEBUG), ACME_OK);
    const char *detail = "bad\nINFO forged line\x1b[2J\x7f";
    assert_int_equal(client_fail(c, ACME_E_PROBLEM, "newOrder: the CA refused: %s", detail), ACME_E_PROBLEM);
    assert_string_equal(acme_client_last_error(c), "newOrder: the CA refused: bad\\x0aINFO forged line\\x1b[2J\\x7f");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.levels[0], ACME_LOG_ERROR);
    assert_string_equal(r.lines[0], acme_client_last_error(c));
    /* A later failure only logs, escaped too; a plain alog as well. */
    client_fail(c, ACME_E_NETWORK, "cleanup: %s", "x\r\ny");
    alog(c, ACME_LOG_INFO, "order %s is %s", "https://ca.example/o/1\n", "\x1b]0;title\x07");
    assert_int_equal(r.n, 3);
    assert_int_equal(r.levels[1], ACME_LOG_WARNING);
    assert_string_equal(r.lines[1], "cleanup: x\\x0d\\x0ay");
    assert_string_equal(r.lines[2], "order https://ca.example/o/1\\x0a is \\x1b]0;title\\x07");
    for (int i = 0; i < r.n; i++)
        assert_no_controls(r.lines[i]);
    /* The soft form records the same sentence and logs it as a warning. */
    result_reset(c);
    assert_int_equal(client_fail_soft(c, ACME_E_PROBLEM, "refused\n%s", "replaces"), ACME_E_PROBLEM);
    assert_string_equal(acme_client_last_error(c), "refused\\x0areplaces");
    assert_int_equal(r.levels[3], ACME_LOG_WARNING);
    acme_client_free(c);
}

/* The accessors give the CA's text as sent (documented: a host printing
 * them escapes them itself); problem_describe too, as the sentence is
 * escaped where it is made. */
static void problem_accessors_raw(void **state)
{
    (void)state;
    const char *doc = "{\"type\":\"urn:ietf:params:acme:error:malformed\",\"detail\":\"a\\nb\\u001b[1m\","
                      "\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
                      "\"identifier\":{\"type\":\"dns\",\"value\":\"x\\ny\"}}]}";
    acme_problem *p = problem_parse(doc, strlen(doc));
    assert_non_null(p);
    assert_string_equal(acme_problem_detail(p), "a\nb\x1b[1m");
    assert_string_equal(acme_problem_identifier_value(acme_problem_subproblem(p, 0)), "x\ny");
    problem_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_with_subproblems),
        cmocka_unit_test(not_a_problem),
        cmocka_unit_test(strerror_covers_codes),
        cmocka_unit_test(client_result),
        cmocka_unit_test(ca_ids_differ),
        cmocka_unit_test(escape_rules),
        cmocka_unit_test(sentence_and_log_are_one_line),
        cmocka_unit_test(problem_accessors_raw),
        cmocka_unit_test(setter_errors_name_the_mistake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
