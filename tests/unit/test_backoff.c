/* Failing well (libacme/backoff.c): the retry schedule after failed
 * orders, its record per set of names (kept by a second client on the same
 * storage, as after a restart), and the reading of a CA's "paused" problem. */
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
#include "backoff.h"
#include "internal.h"

static void schedule_is_lets_encrypts(void **state)
{
    (void)state;
    /* 1 min, 10 min, 100 min, then daily (defaults 60 s / 86400 s). */
    assert_int_equal(backoff_delay_s(0, 60, 86400), 0);
    assert_int_equal(backoff_delay_s(1, 60, 86400), 60);
    assert_int_equal(backoff_delay_s(2, 60, 86400), 600);
    assert_int_equal(backoff_delay_s(3, 60, 86400), 6000);
    assert_int_equal(backoff_delay_s(4, 60, 86400), 86400);
    assert_int_equal(backoff_delay_s(50, 60, 86400), 86400);
    assert_int_equal(backoff_delay_s(1000, 60, 86400), 86400);
    /* A host's tighter bounds scale it and cap it. */
    assert_int_equal(backoff_delay_s(1, 2, 100), 2);
    assert_int_equal(backoff_delay_s(2, 2, 100), 20);
    assert_int_equal(backoff_delay_s(3, 2, 100), 100);
    assert_int_equal(backoff_delay_s(4, 2, 100), 100);
}

static char root[64];

static acme_client *client(void)
{
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("https://ca.example/dir", &c), ACME_OK);
    assert_int_equal(acme_client_set_storage_dir(c, root), ACME_OK);
    return c;
}

static void record_survives_restart_per_set(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/test_backoff.XXXXXX");
    assert_non_null(mkdtemp(root));
    const char *ab[] = {"a.example", "B.example"};
    const char *ba[] = {"b.example", "a.example"};
    const char *a[] = {"a.example"};
    acme_client *c = client();
    backoff_rec r = {3, 1900000000, "the CA said no"};
    backoff_save(c, ab, 2, &r);
    acme_client_free(c);

    c = client(); /* a restart: a new client on the same storage */
    backoff_rec got;
    /* Same set in another order and case: the same record. */
    assert_int_equal(backoff_load(c, ba, 2, &got), 0);
    assert_int_equal(got.failures, 3);
    assert_true(got.until == 1900000000);
    assert_string_equal(got.error, "the CA said no");
    backoff_rec_free(&got);
    /* Another set: none. */
    assert_int_not_equal(backoff_load(c, a, 1, &got), 0);
    backoff_clear(c, ab, 2);
    assert_int_not_equal(backoff_load(c, ba, 2, &got), 0);
    acme_client_free(c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

static acme_problem *problem(const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    assert_non_null(o);
    acme_problem *p = problem_from_json(o);
    json_decref(o);
    assert_non_null(p);
    return p;
}

static void paused_is_recognised(void **state)
{
    (void)state;
    char *url = NULL;
    acme_problem *p = problem("{\"type\":\"urn:ietf:params:acme:error:rateLimited\",\"status\":429,"
                              "\"detail\":\"Your account is temporarily prevented from requesting certificates for "
                              "x.example and possibly others. Please visit: "
                              "https://portal.ca.example/sfe/v1/unpause?jwt=aa.bb.cc.\"}");
    assert_true(backoff_paused(p, &url));
    assert_string_equal(url, "https://portal.ca.example/sfe/v1/unpause?jwt=aa.bb.cc");
    char *s = backoff_paused_sentence("x.example", url);
    assert_non_null(strstr(s, "unpause at https://portal.ca.example/sfe/v1/unpause?jwt=aa.bb.cc"));
    assert_non_null(strstr(s, "x.example"));
    free(s);
    free(url);
    problem_free(p);

    /* A plain rate limit is not a pause. */
    p = problem("{\"type\":\"urn:ietf:params:acme:error:rateLimited\",\"status\":429,"
                "\"detail\":\"too many certificates (5) already issued for this exact set of identifiers\"}");
    assert_false(backoff_paused(p, &url));
    assert_null(url);
    problem_free(p);

    /* In a subproblem, without a link. */
    p = problem("{\"type\":\"urn:ietf:params:acme:error:malformed\",\"detail\":\"some\",\"subproblems\":[{"
                "\"type\":\"urn:ietf:params:acme:error:unauthorized\",\"detail\":\"Your account is temporarily "
                "prevented from requesting certificates for y.example\",\"identifier\":{\"type\":\"dns\","
                "\"value\":\"y.example\"}}]}");
    assert_true(backoff_paused(p, &url));
    assert_null(url);
    s = backoff_paused_sentence("y.example", url);
    assert_non_null(strstr(s, "CA's web site"));
    free(s);
    problem_free(p);
    assert_false(backoff_paused(NULL, &url));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schedule_is_lets_encrypts),
        cmocka_unit_test(record_survives_restart_per_set),
        cmocka_unit_test(paused_is_recognised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
