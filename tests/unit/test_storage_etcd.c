/* The etcd gateway encoding (libacme/storage_etcd_json.c): base64, prefix
 * ranges, txn bodies and the answers' quirks (numbers as strings, zero
 * fields left out). No etcd needed; tests/cluster runs the real one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <acme/acme.h>

#include "storage_etcd.h"
#include "storage_etcd_json.h"

static void check_b64(const char *in, size_t len, const char *want)
{
    char *e = etcd_b64_encode(in, len);
    assert_string_equal(e, want);
    unsigned char *d = NULL;
    size_t n = 0;
    assert_int_equal(etcd_b64_decode(e, &d, &n), 0);
    assert_int_equal(n, len);
    assert_memory_equal(d, in, len);
    free(d);
    free(e);
}

static void test_b64(void **st)
{
    (void)st;
    /* RFC 4648 §10 test vectors. */
    check_b64("", 0, "");
    check_b64("f", 1, "Zg==");
    check_b64("fo", 2, "Zm8=");
    check_b64("foo", 3, "Zm9v");
    check_b64("foob", 4, "Zm9vYg==");
    check_b64("fooba", 5, "Zm9vYmE=");
    check_b64("foobar", 6, "Zm9vYmFy");
    check_b64("\xff\xfe\x00\x01", 4, "//4AAQ==");
    unsigned char *d;
    size_t n;
    /* Malformed: wrong length, bad characters, padding in the middle, url alphabet. */
    assert_int_equal(etcd_b64_decode("Zm9", &d, &n), -1);
    assert_int_equal(etcd_b64_decode("Zm9*", &d, &n), -1);
    assert_int_equal(etcd_b64_decode("Zg==Zm9v", &d, &n), -1);
    assert_int_equal(etcd_b64_decode("Z===", &d, &n), -1);
    assert_int_equal(etcd_b64_decode("_-4A", &d, &n), -1);
    assert_null(d);
}

static void test_prefix_end(void **st)
{
    (void)st;
    char *e = etcd_prefix_end("/libacme/ca/certs/");
    assert_string_equal(e, "/libacme/ca/certs0"); /* '/' + 1 */
    free(e);
    e = etcd_prefix_end("a\xff");
    assert_string_equal(e, "b");
    free(e);
    assert_null(etcd_prefix_end(""));
    assert_null(etcd_prefix_end("\xff\xff"));
}

static void test_range_body(void **st)
{
    (void)st;
    json_t *r = etcd_req_range("/p/x", "/p/y", 1, 1000);
    char *s = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"key\":\"L3AveA==\",\"keys_only\":true,\"limit\":\"1000\",\"range_end\":\"L3AveQ==\"}");
    free(s);
    json_decref(r);
    r = etcd_req_range("/p/x", NULL, 0, 0);
    s = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"key\":\"L3AveA==\"}");
    free(s);
    json_decref(r);
}

static void test_txn_body(void **st)
{
    (void)st;
    /* The fenced write: the lock key must still have our create_revision. */
    etcd_cmp cmp = {"/p/.locks/l", ETCD_CMP_CREATE, 42};
    json_t *ok = json_array(), *fail = json_array();
    json_array_append_new(ok, etcd_op_put("/p/k", "v", 1, 0));
    json_array_append_new(fail, etcd_op_range("/p/.locks/l"));
    json_t *t = etcd_req_txn(&cmp, 1, ok, fail);
    char *s = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s,
        "{\"compare\":[{\"create_revision\":\"42\",\"key\":\"L3AvLmxvY2tzL2w=\",\"result\":\"EQUAL\",\"target\":\"CREATE\"}],"
        "\"failure\":[{\"request_range\":{\"key\":\"L3AvLmxvY2tzL2w=\"}}],"
        "\"success\":[{\"request_put\":{\"key\":\"L3Avaw==\",\"value\":\"dg==\"}}]}");
    free(s);
    json_decref(t);
    /* The acquire: create only if absent, on a lease (64-bit, as a string). */
    etcd_cmp absent = {"/l", ETCD_CMP_CREATE, 0};
    ok = json_array();
    json_array_append_new(ok, etcd_op_put("/l", "n", 1, 7587870093478424577LL));
    json_array_append_new(ok, etcd_op_delete("/d"));
    t = etcd_req_txn(&absent, 1, ok, NULL);
    s = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s,
        "{\"compare\":[{\"create_revision\":\"0\",\"key\":\"L2w=\",\"result\":\"EQUAL\",\"target\":\"CREATE\"}],"
        "\"success\":[{\"request_put\":{\"key\":\"L2w=\",\"lease\":\"7587870093478424577\",\"value\":\"bg==\"}},"
        "{\"request_delete_range\":{\"key\":\"L2Q=\"}}]}");
    free(s);
    json_decref(t);
    etcd_cmp lease = {"/l", ETCD_CMP_LEASE, 5};
    t = etcd_req_txn(&lease, 1, NULL, NULL);
    s = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"compare\":[{\"key\":\"L2w=\",\"lease\":\"5\",\"result\":\"EQUAL\",\"target\":\"LEASE\"}]}");
    free(s);
    json_decref(t);
}

static void test_answers(void **st)
{
    (void)st;
    /* As etcd 3.4's gateway sends them. */
    const char *failed =
        "{\"header\":{\"cluster_id\":\"5051155234404994239\",\"revision\":\"2\",\"raft_term\":\"2\"},"
        "\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"Zm9v\","
        "\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"1\",\"value\":\"YmFy\",\"lease\":\"77\"}],"
        "\"count\":\"1\"}}]}";
    json_t *a = json_loads(failed, 0, NULL);
    assert_false(etcd_txn_succeeded(a));
    assert_int_equal(etcd_revision(a), 2);
    json_t *kvs = etcd_resp_kvs(etcd_txn_range(a, 0));
    assert_non_null(kvs);
    etcd_kv kv;
    assert_int_equal(etcd_kv_parse(json_array_get(kvs, 0), &kv), 0);
    assert_string_equal(kv.key, "foo");
    assert_int_equal(kv.len, 3);
    assert_memory_equal(kv.value, "bar", 3);
    assert_int_equal(kv.create_revision, 2);
    assert_int_equal(kv.mod_revision, 3);
    assert_int_equal(kv.lease, 77);
    etcd_kv_clear(&kv);
    json_decref(a);

    a = json_loads("{\"header\":{\"revision\":\"9\"},\"succeeded\":true,\"responses\":[{\"response_put\":{}}]}", 0, NULL);
    assert_true(etcd_txn_succeeded(a));
    assert_int_equal(etcd_revision(a), 9);
    assert_null(etcd_txn_range(a, 0));
    json_decref(a);

    /* An empty value is left out; a range that matched nothing has no kvs. */
    a = json_loads("{\"kvs\":[{\"key\":\"eA==\",\"create_revision\":\"4\",\"version\":\"1\"}],\"count\":\"1\"}", 0, NULL);
    assert_int_equal(etcd_kv_parse(json_array_get(etcd_resp_kvs(a), 0), &kv), 0);
    assert_int_equal(kv.len, 0);
    assert_non_null(kv.value);
    assert_int_equal(kv.lease, 0);
    etcd_kv_clear(&kv);
    json_decref(a);
    a = json_loads("{\"header\":{\"revision\":\"9\"}}", 0, NULL);
    assert_null(etcd_resp_kvs(a));
    json_decref(a);
    a = json_loads("{\"kvs\":[{\"key\":\"!!\"}]}", 0, NULL);
    assert_int_equal(etcd_kv_parse(json_array_get(etcd_resp_kvs(a), 0), &kv), -1);
    json_decref(a);
    a = json_loads("{\"error\":\"etcdserver: requested lease not found\",\"code\":5}", 0, NULL);
    assert_string_equal(etcd_error_text(a), "etcdserver: requested lease not found");
    json_decref(a);
    a = json_loads("{\"ID\":\"7587870093478424577\",\"TTL\":15,\"x\":\"12a\"}", 0, NULL);
    assert_true(etcd_int(a, "ID") == 7587870093478424577LL);
    assert_int_equal(etcd_int(a, "TTL"), 15);
    assert_int_equal(etcd_int(a, "x"), 0);
    assert_int_equal(etcd_int(a, "missing"), 0);
    json_decref(a);
}

static void test_options(void **st)
{
    (void)st;
    storage_etcd *s = NULL;
    char err[300];
    acme_etcd_options o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    assert_int_equal(storage_etcd_open(&o, &s, err, sizeof(err)), ACME_E_INVALID_ARG);
    assert_non_null(strstr(err, "endpoints"));
    const char *bad[] = {"127.0.0.1:2379"};
    o.endpoints = bad;
    o.endpoint_count = 1;
    assert_int_equal(storage_etcd_open(&o, &s, err, sizeof(err)), ACME_E_INVALID_ARG);
    assert_non_null(strstr(err, "127.0.0.1:2379 is not an http"));
    const char *good[] = {"http://127.0.0.1:1/", "https://10.0.0.2:2379"};
    o.endpoints = good;
    o.endpoint_count = 2;
    o.prefix = "/no-slash";
    assert_int_equal(storage_etcd_open(&o, &s, err, sizeof(err)), ACME_E_INVALID_ARG);
    assert_non_null(strstr(err, "must end in '/'"));
    o.prefix = NULL;
    o.password = "x";
    assert_int_equal(storage_etcd_open(&o, &s, err, sizeof(err)), ACME_E_INVALID_ARG);
    o.password = NULL;
    o.size = offsetof(acme_etcd_options, lock_ttl_s);
    assert_int_equal(storage_etcd_open(&o, &s, err, sizeof(err)), ACME_E_INVALID_ARG);
    o.size = sizeof(o);
    o.node_name = "web 1/a";
    assert_int_equal(storage_etcd_open(&o, &s, err, sizeof(err)), ACME_OK);
    assert_string_equal(etcd_prefix(s), "/libacme/");
    assert_string_equal(etcd_node(s), "web_1_a");
    assert_string_equal(storage_etcd_health(s), "");
    storage_etcd_close(s);

    /* Through the client: the sentence reaches acme_client_last_error. */
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("https://127.0.0.1:1/dir", &c), ACME_OK);
    o.endpoints = bad;
    o.endpoint_count = 1;
    assert_int_equal(acme_client_set_storage_etcd(c, &o), ACME_E_INVALID_ARG);
    assert_non_null(strstr(acme_client_last_error(c), "not an http"));
    assert_null(acme_client_etcd_health(c));
    o.endpoints = good;
    o.endpoint_count = 2;
    assert_int_equal(acme_client_set_storage_etcd(c, &o), ACME_OK);
    assert_string_equal(acme_client_etcd_health(c), "");
    /* Setting it again closes the first handle. */
    assert_int_equal(acme_client_set_storage_etcd(c, &o), ACME_OK);
    acme_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_prefix_end),
        cmocka_unit_test(test_range_body),
        cmocka_unit_test(test_txn_body),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
