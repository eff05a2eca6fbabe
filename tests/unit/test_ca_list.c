/* CA failover (libacme/ca_list.c): what counts as not the host's to fix,
 * the list's argument checks, and the stored choice read back by a second
 * list on the same storage (as after a restart). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <acme/acme.h>
#include "ca_list_int.h"
#include "internal.h"

static acme_problem *problem(const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    assert_non_null(o);
    acme_problem *p = problem_from_json(o);
    json_decref(o);
    assert_non_null(p);
    return p;
}

static void not_ours(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        int rc, move;
    } cases[] = {
        {"{\"type\":\"urn:ietf:params:acme:error:rateLimited\",\"status\":429}", ACME_E_PROBLEM, 1},
        {"{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\",\"status\":400}", ACME_E_PROBLEM, 1},
        {"{\"type\":\"urn:ietf:params:acme:error:caa\",\"status\":403}", ACME_E_ORDER_FAILED, 1},
        {"{\"type\":\"urn:ietf:params:acme:error:serverInternal\",\"status\":500}", ACME_E_PROBLEM, 1},
        {"{\"type\":\"urn:ietf:params:acme:error:malformed\",\"status\":503}", ACME_E_PROBLEM, 1},
        /* A subproblem refusing one name by policy. */
        {"{\"type\":\"urn:ietf:params:acme:error:malformed\",\"status\":400,\"subproblems\":[{\"type\":"
         "\"urn:ietf:params:acme:error:rejectedIdentifier\",\"identifier\":{\"type\":\"dns\",\"value\":\"x.test\"}}]}",
         ACME_E_PROBLEM, 1},
        /* Ours to fix: validation, account, request. */
        {"{\"type\":\"urn:ietf:params:acme:error:unauthorized\",\"status\":403}", ACME_E_PROBLEM, 0},
        {"{\"type\":\"urn:ietf:params:acme:error:connection\",\"status\":400}", ACME_E_CHALLENGE_FAILED, 0},
        {"{\"type\":\"urn:ietf:params:acme:error:externalAccountRequired\",\"status\":403}", ACME_E_PROBLEM, 0},
        {"{\"type\":\"urn:ietf:params:acme:error:badCSR\",\"status\":400}", ACME_E_PROBLEM, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        acme_problem *p = problem(cases[i].doc);
        if (ca_list_not_ours(cases[i].rc, p) != cases[i].move)
            fail_msg("case %zu (%s): want %d", i, cases[i].doc, cases[i].move);
        problem_free(p);
    }
    assert_true(ca_list_not_ours(ACME_E_NETWORK, NULL));
    assert_true(ca_list_not_ours(ACME_E_TIMEOUT, NULL));
    assert_true(ca_list_not_ours(ACME_E_HTTP, NULL));
    assert_false(ca_list_not_ours(ACME_E_TLS, NULL));
    assert_false(ca_list_not_ours(ACME_E_STATE, NULL));
    assert_false(ca_list_not_ours(ACME_E_CALLBACK, NULL));
    assert_false(ca_list_not_ours(ACME_E_STORAGE, NULL));
}

static acme_client *client(const char *url, const char *dir)
{
    acme_client *c = NULL;
    assert_int_equal(acme_client_new(url, &c), ACME_OK);
    assert_int_equal(acme_client_set_storage_dir(c, dir), ACME_OK);
    return c;
}

static void checks_and_record(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_ca_list.XXXXXX";
    assert_non_null(mkdtemp(dir));
    acme_ca_list *l = NULL;
    assert_int_equal(acme_ca_list_new(NULL, &l), ACME_OK);
    acme_ca_params p = {.size = sizeof p, .name = "one"};
    assert_int_equal(acme_ca_list_add(l, &p, client("https://ca1.test/dir", dir)), ACME_OK);
    p.name = "one";
    assert_int_equal(acme_ca_list_add(l, &p, client("https://ca2.test/dir", dir)), ACME_E_INVALID_ARG);
    assert_non_null(strstr(acme_ca_list_last_error(l), "twice"));
    p.name = "two";
    assert_int_equal(acme_ca_list_add(l, &p, client("https://ca1.test/dir", dir)), ACME_E_INVALID_ARG);
    assert_non_null(strstr(acme_ca_list_last_error(l), "same directory"));
    p.name = "bad/name";
    assert_int_equal(acme_ca_list_add(l, &p, client("https://ca2.test/dir", dir)), ACME_E_INVALID_ARG);
    p.name = "two";
    p.eab_kid = "kid";
    assert_int_equal(acme_ca_list_add(l, &p, client("https://ca2.test/dir", dir)), ACME_E_INVALID_ARG);
    assert_non_null(strstr(acme_ca_list_last_error(l), "both"));
    p.eab_hmac_key = "aGVsbG8";
    assert_int_equal(acme_ca_list_add(l, &p, client("https://ca2.test/dir", dir)), ACME_OK);
    assert_int_equal(acme_ca_list_count(l), 2);
    assert_string_equal(acme_ca_list_name(l, 1), "two");
    assert_null(acme_ca_list_client(l, 2));
    assert_null(acme_ca_list_status_json(l, "www.test"));

    ca_list_record(l, "www.test", 1, "failed over to two: CA one: down", 1);
    acme_account_params ap;
    ca_list_account_params(l, 1, &ap);
    assert_string_equal(ap.eab_kid, "kid");
    acme_ca_list_free(l);

    /* A second list on the same storage: the choice is kept. */
    assert_int_equal(acme_ca_list_new(NULL, &l), ACME_OK);
    p = (acme_ca_params){.size = sizeof p, .name = "first"};
    assert_int_equal(acme_ca_list_add(l, &p, client("https://ca1.test/dir", dir)), ACME_OK);
    p.name = "second";
    assert_int_equal(acme_ca_list_add(l, &p, client("https://ca2.test/dir", dir)), ACME_OK);
    size_t at = 9;
    char *reason = NULL;
    assert_int_equal(ca_list_recorded(l, "www.test", &at, &reason), 0);
    assert_int_equal(at, 1);
    assert_string_equal(reason, "failed over to two: CA one: down");
    free(reason);
    const char *s = acme_ca_list_status_json(l, "www.test");
    assert_non_null(s);
    json_t *o = json_loads(s, 0, NULL);
    /* The list's name for that directory today. */
    assert_string_equal(json_string_value(json_object_get(o, "ca")), "second");
    assert_true(json_is_true(json_object_get(o, "failover")));
    assert_true(json_is_true(json_object_get(o, "in_list")));
    json_decref(o);
    acme_ca_list_free(l);

    /* A list without that CA starts over. */
    assert_int_equal(acme_ca_list_new(NULL, &l), ACME_OK);
    p.name = "only";
    assert_int_equal(acme_ca_list_add(l, &p, client("https://ca1.test/dir", dir)), ACME_OK);
    assert_int_equal(ca_list_recorded(l, "www.test", &at, NULL), -1);
    acme_ca_list_free(l);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(not_ours),
        cmocka_unit_test(checks_and_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
