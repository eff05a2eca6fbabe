/* Events and metrics: the Prometheus text exposition (format 0.0.4) of
 * the engine's certificates — HELP and TYPE before every family's
 * samples, label values escaped, the values of the status entries — and
 * the event fields a host reads. */
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
#include "event_internal.h"
#include "internal.h"

/* The exposition of the certificates described as the engine's status
 * entries (the test's own notation: absent or null times are unknown). */
static char *format(const char *status_json)
{
    json_t *certs = json_loads(status_json, 0, NULL);
    assert_non_null(certs);
    size_t n = json_array_size(certs);
    metrics_cert *mc = calloc(n ? n : 1, sizeof(*mc));
    const char **names = calloc(64, sizeof(*names));
    size_t used = 0;
    assert_non_null(mc);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(certs, i);
        mc[i].id = json_string_value(json_object_get(o, "id"));
        mc[i].state = json_string_value(json_object_get(o, "state"));
        json_t *nm = json_object_get(o, "names");
        mc[i].names = names + used;
        mc[i].name_count = json_array_size(nm);
        for (size_t k = 0; k < json_array_size(nm); k++)
            names[used++] = json_string_value(json_array_get(nm, k));
        mc[i].not_after = json_integer_value(json_object_get(o, "not_after"));
        mc[i].renew_at = json_integer_value(json_object_get(o, "next_renewal"));
        mc[i].last_success = json_integer_value(json_object_get(o, "last_success"));
        mc[i].failures = (unsigned)json_integer_value(json_object_get(o, "failures"));
        mc[i].attempts = (unsigned)json_integer_value(json_object_get(o, "attempts"));
    }
    acme_buf out;
    buf_init(&out, 0);
    assert_int_equal(metrics_format(mc, n, &out), ACME_OK);
    free(mc);
    free(names);
    json_decref(certs);
    return buf_steal(&out, NULL);
}

/* Every line is "# HELP name text", "# TYPE name gauge|counter", or a
 * sample of the family whose HELP and TYPE came last; no family twice;
 * the text ends with a newline. Returns the number of samples. */
static size_t check_shape(const char *text)
{
    char help[128] = "", type[128] = "", seen[4096] = " ";
    size_t samples = 0;
    assert_true(*text && text[strlen(text) - 1] == '\n');
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        assert_non_null(nl);
        char line[1024];
        size_t n = (size_t)(nl - l);
        assert_true(n > 0 && n < sizeof(line));
        memcpy(line, l, n);
        line[n] = 0;
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%127s", help), 1);
            assert_true(strncmp(help, "acme_", 5) == 0);
            char key[140];
            snprintf(key, sizeof(key), " %s ", help);
            assert_null(strstr(seen, key)); /* one family, one block */
            strncat(seen, key + 1, sizeof(seen) - strlen(seen) - 1);
            type[0] = 0;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char kind[32];
            assert_int_equal(sscanf(line + 7, "%127s %31s", type, kind), 2);
            assert_string_equal(type, help);
            assert_true(strcmp(kind, "gauge") == 0 || strcmp(kind, "counter") == 0);
        } else {
            assert_true(line[0] != '#');
            size_t k = strlen(type);
            assert_true(k > 0);
            assert_memory_equal(line, type, k);
            assert_true(line[k] == '{' || line[k] == ' ');
            /* The value: an integer after the last space. */
            const char *v = strrchr(line, ' ');
            char *end;
            strtoll(v + 1, &end, 10);
            assert_true(*end == 0 && end > v + 1);
            samples++;
        }
        l = nl + 1;
    }
    return samples;
}

static void families_and_values(void **state)
{
    (void)state;
    char *t = format("[{\"id\":\"www.example\",\"names\":[\"www.example\",\"example\"],\"state\":\"valid\","
                     "\"not_after\":1800000000,\"next_renewal\":1790000000,\"attempts\":3,\"failures\":0,"
                     "\"last_error\":null,\"last_success\":1780000000},"
                     "{\"id\":\"new.example\",\"names\":[\"new.example\"],\"state\":\"waiting\",\"not_after\":null,"
                     "\"next_renewal\":null,\"attempts\":2,\"failures\":2,\"last_error\":\"x\",\"last_success\":null}]");
    /* managed 1 + info 2 + state 10 + not_after 1 + next 1 + failures 2 + attempts 2 + last_success 1 */
    assert_int_equal(check_shape(t), 20);
    assert_non_null(strstr(t, "# TYPE acme_certificates_managed gauge\nacme_certificates_managed 2\n"));
    assert_non_null(strstr(t, "\nacme_certificate_info{id=\"www.example\",names=\"www.example,example\"} 1\n"));
    assert_non_null(strstr(t, "\nacme_certificate_state{id=\"www.example\",state=\"valid\"} 1\n"));
    assert_non_null(strstr(t, "\nacme_certificate_state{id=\"www.example\",state=\"waiting\"} 0\n"));
    assert_non_null(strstr(t, "\nacme_certificate_state{id=\"new.example\",state=\"waiting\"} 1\n"));
    assert_non_null(strstr(t, "\nacme_certificate_state{id=\"new.example\",state=\"valid\"} 0\n"));
    assert_non_null(strstr(t, "\nacme_certificate_not_after_timestamp_seconds{id=\"www.example\"} 1800000000\n"));
    assert_non_null(strstr(t, "\nacme_certificate_next_renewal_timestamp_seconds{id=\"www.example\"} 1790000000\n"));
    assert_non_null(strstr(t, "\nacme_certificate_last_success_timestamp_seconds{id=\"www.example\"} 1780000000\n"));
    assert_non_null(strstr(t, "\nacme_certificate_consecutive_failures{id=\"new.example\"} 2\n"));
    assert_non_null(strstr(t, "# TYPE acme_certificate_attempts_total counter\n"));
    assert_non_null(strstr(t, "\nacme_certificate_attempts_total{id=\"www.example\"} 3\n"));
    /* Unknown times are left out, not reported as 0. */
    assert_null(strstr(t, "not_after_timestamp_seconds{id=\"new.example\"}"));
    assert_null(strstr(t, "last_success_timestamp_seconds{id=\"new.example\"}"));
    free(t);
}

static void label_values_escaped(void **state)
{
    (void)state;
    /* Ids and names never hold these in the engine; the format must not
     * depend on that. */
    char *t = format("[{\"id\":\"a\\\"b\\\\c\\nd\",\"names\":[\"x\\\"y\"],\"state\":\"new\",\"attempts\":0,"
                     "\"failures\":0}]");
    check_shape(t);
    assert_non_null(strstr(t, "acme_certificate_info{id=\"a\\\"b\\\\c\\nd\",names=\"x\\\"y\"} 1\n"));
    assert_non_null(strstr(t, "acme_certificate_state{id=\"a\\\"b\\\\c\\nd\",state=\"new\"} 1\n"));
    free(t);
}

static void empty_engine_still_has_families(void **state)
{
    (void)state;
    char *t = format("[]");
    assert_int_equal(check_shape(t), 1);
    assert_non_null(strstr(t, "acme_certificates_managed 0\n"));
    assert_non_null(strstr(t, "# HELP acme_certificate_not_after_timestamp_seconds "));
    free(t);
}

/* acme_engine_metrics reads a real engine: a declared certificate is "new"
 * until the first step looks at it. */
static void engine_metrics(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_metrics.XXXXXX";
    assert_non_null(mkdtemp(dir));
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("https://ca.example/dir", &c), ACME_OK);
    assert_int_equal(acme_client_set_storage_dir(c, dir), ACME_OK);
    acme_engine *e = NULL;
    assert_int_equal(acme_engine_new(c, NULL, &e), ACME_OK);
    const char *names[] = {"a.example", "b.example"};
    acme_issue_params p = {.size = sizeof p, .names = names, .name_count = 2, .cert_id = "site"};
    assert_int_equal(acme_engine_manage(e, &p), ACME_OK);
    acme_buffer *b = acme_buffer_new();
    assert_int_equal(acme_engine_metrics(e, b), ACME_OK);
    const char *t = acme_buffer_data(b);
    assert_int_equal(check_shape(t), 1 + 1 + 5 + 2);
    assert_non_null(strstr(t, "acme_certificates_managed 1\n"));
    assert_non_null(strstr(t, "acme_certificate_info{id=\"site\",names=\"a.example,b.example\"} 1\n"));
    assert_non_null(strstr(t, "acme_certificate_state{id=\"site\",state=\"new\"} 1\n"));
    assert_non_null(strstr(t, "acme_certificate_attempts_total{id=\"site\"} 0\n"));
    assert_int_equal(acme_engine_metrics(NULL, b), ACME_E_INVALID_ARG);
    assert_int_equal(acme_engine_metrics(e, NULL), ACME_E_INVALID_ARG);
    acme_buffer_free(b);
    acme_engine_free(e);
    acme_client_free(c);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static acme_event got;
static char got_type[128], got_ident[64], got_msg[256];
static int got_n;

static void on_event(void *ud, const acme_event *ev)
{
    (void)ud;
    got = *ev;
    got_n++;
    snprintf(got_type, sizeof(got_type), "%s", ev->problem_type ? ev->problem_type : "");
    snprintf(got_ident, sizeof(got_ident), "%s", ev->identifier ? ev->identifier : "");
    snprintf(got_msg, sizeof(got_msg), "%s", ev->message ? ev->message : "");
}

static int reenter_rc;

static void on_event_reentering(void *ud, const acme_event *ev)
{
    (void)ev;
    acme_client *c = ud;
    acme_host_callbacks none = {.size = sizeof none};
    reenter_rc = acme_client_set_host(c, &none, NULL);
}

static void event_fields(void **state)
{
    (void)state;
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("https://ca.example/dir", &c), ACME_OK);
    /* A table of 1.1's size has no event member: nothing is called. */
    acme_host_callbacks old = {.size = offsetof(acme_host_callbacks, event)};
    assert_int_equal(acme_client_set_host(c, &old, NULL), ACME_OK);
    event_plain(c, ACME_EVENT_LOCK_TAKEN, "x");
    assert_int_equal(got_n, 0);

    acme_host_callbacks cb = {.size = sizeof cb, .event = on_event};
    assert_int_equal(acme_client_set_host(c, &cb, NULL), ACME_OK);
    const char *doc = "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\",\"detail\":\"no\","
                      "\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
                      "\"detail\":\"not this one\",\"identifier\":{\"type\":\"dns\",\"value\":\"bad.example\"}}]}";
    acme_problem *p = problem_parse(doc, strlen(doc));
    assert_non_null(p);
    event_failed(c, "site", ACME_E_PROBLEM, "newOrder failed", p, NULL);
    assert_int_equal(got_n, 1);
    assert_int_equal(got.size, sizeof(acme_event));
    assert_int_equal(got.code, ACME_EVENT_FAILED);
    assert_int_equal(got.result, ACME_E_PROBLEM);
    assert_string_equal(got_type, "urn:ietf:params:acme:error:rejectedIdentifier");
    assert_string_equal(got_ident, "bad.example");
    assert_string_equal(got_msg, "newOrder failed");
    assert_true(got.time > 1700000000);

    /* The identifier whose challenge failed wins over the problem's. */
    event_failed(c, "site", ACME_E_CHALLENGE_FAILED, "http-01 failed", p, "other.example");
    assert_string_equal(got_ident, "other.example");
    assert_int_equal(got.result, ACME_E_CHALLENGE_FAILED);
    problem_free(p);

    event_renewal(c, "site", 1800000000);
    assert_int_equal(got.code, ACME_EVENT_RENEWAL_SCHEDULED);
    assert_int_equal(got.renew_at, 1800000000);
    assert_null(got.problem);
    acme_client_free(c);

    /* Inside the event callback, calls that change the client are
     * refused, as from every other callback. */
    assert_int_equal(acme_client_new("https://ca.example/dir", &c), ACME_OK);
    acme_host_callbacks re = {.size = sizeof re, .event = on_event_reentering};
    assert_int_equal(acme_client_set_host(c, &re, c), ACME_OK);
    reenter_rc = 0;
    event_plain(c, ACME_EVENT_LOCK_TAKEN, "site");
    assert_int_equal(reenter_rc, ACME_E_STATE);
    assert_non_null(strstr(acme_client_last_error(c), "acme_client_set_host"));
    acme_client_free(c);

    /* The numbers are the ABI: they never change. */
    assert_int_equal(ACME_EVENT_ORDERING, 1);
    assert_int_equal(ACME_EVENT_LOCK_LOST, 10);
    assert_string_equal(acme_event_code_name(ACME_EVENT_RENEWAL_SCHEDULED), "renewal-scheduled");
    assert_string_equal(acme_event_code_name(ACME_EVENT_LOCK_LOST), "lock-lost");
    assert_string_equal(acme_event_code_name((acme_event_code)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(families_and_values),
        cmocka_unit_test(label_values_escaped),
        cmocka_unit_test(empty_engine_still_has_families),
        cmocka_unit_test(engine_metrics),
        cmocka_unit_test(event_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
