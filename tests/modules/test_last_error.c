/* acme_client_last_error never shows an earlier call's sentence: every
 * public call that takes a client or an engine clears it on entry.
 *
 * The walk below plants a sentence, makes one call, and checks that the
 * planted sentence is gone, for every such call of the public headers.
 * tests/abi/check-last-error.sh fails when a public function that takes
 * an acme_client or acme_engine is missing from this walk, so a new call
 * cannot forget.
 *
 * Nothing here reaches a network: the client's transport is a table whose
 * perform returns ACME_OK without an HTTP status. That is also the case
 * the first test pins down: such a transport is called a bug in the
 * transport, not a network failure.
 *
 * Built here (not in tests/unit) because acme_module_set_engine needs a
 * module: MOD_V2 from this directory. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>

#include <cmocka.h>

#include <acme/acme.h>
#include <acme/etcd.h>
#include "internal.h"

#define PLANT "PLANTED: a sentence from an earlier call"

static int no_status(void *ud, const acme_http_request *req, acme_http_response *resp)
{
    (void)ud, (void)req, (void)resp;
    return ACME_OK; /* the bug: no acme_http_response_set_status */
}

static const acme_transport_ops broken_transport = {.size = sizeof(acme_transport_ops), .perform = no_status};

static char *fresh_dir(void)
{
    char tmpl[] = "/tmp/test_last_error.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void rm_tree(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static acme_client *new_client(const char *dir)
{
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("https://ca.test/dir", &c), ACME_OK);
    assert_int_equal(acme_client_set_storage_dir(c, dir), ACME_OK);
    assert_int_equal(acme_client_set_transport(c, &broken_transport, NULL), ACME_OK);
    return c;
}

/* A transport that returned OK without a status is named for what it is. */
static void transport_without_status(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    acme_client *c = new_client(dir);
    assert_int_equal(acme_directory_fetch(c), ACME_E_CALLBACK);
    assert_string_equal(acme_client_last_error(c),
                        "GET https://ca.test/dir failed: a host callback failed — the transport table's perform "
                        "returned ACME_OK without an HTTP status: a bug in the transport, not a network failure; "
                        "fix the transport's perform: set the status (acme_http_response_set_status) before "
                        "returning ACME_OK, or return the error code that says what failed");
    assert_null(strstr(acme_client_last_error(c), "connection failed"));
    acme_client_free(c);
    rm_tree(dir);
    free(dir);
}

static void plant(acme_client *c)
{
    result_reset(c);
    client_fail(c, ACME_E_STORAGE, PLANT);
    assert_string_equal(acme_client_last_error(c), PLANT);
}

static void gone(acme_client *c, const char *fn)
{
    const char *now = acme_client_last_error(c);
    if (strstr(now, PLANT))
        fail_msg("%s left the earlier call's sentence: \"%s\"", fn, now);
}

/* One call: plant, call, check. The name is what check-last-error.sh
 * looks for. */
#define WALK(fn, ...) do { plant(c); (void)fn(__VA_ARGS__); gone(c, #fn); } while (0)

static int list_cb(void *ud, const char *id)
{
    (void)ud, (void)id;
    return 0;
}

static int load_cb(void *ud, const acme_certificate *cert)
{
    (void)ud, (void)cert;
    return ACME_OK;
}

static void every_call_clears(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    acme_client *c = new_client(dir);

    /* client.h: configuration */
    acme_host_callbacks cb = {.size = sizeof cb};
    WALK(acme_client_set_host, c, &cb, NULL);
    WALK(acme_client_set_storage_dir, c, dir);
    acme_storage_ops so = {.size = sizeof so}; /* refused: no get */
    WALK(acme_client_set_storage, c, &so, NULL);
    WALK(acme_client_set_transport, c, &broken_transport, NULL);
    WALK(acme_client_set_ca_file, c, NULL);
    WALK(acme_client_set_ca_pem, c, NULL, 0);
    WALK(acme_client_set_trust_anchor_lookup, c, NULL, NULL);
    WALK(acme_client_set_timeouts, c, 1000, 5000);
    WALK(acme_client_set_max_response, c, 100); /* refused */
    WALK(acme_client_set_poll_limit, c, 0);     /* refused */
    WALK(acme_client_set_account_key_type, c, ACME_KEY_EC_P256);
    WALK(acme_client_set_log_level, c, ACME_LOG_DEBUG);

    /* etcd.h, on a client without etcd storage: refused, sentence fresh */
    WALK(acme_client_set_storage_etcd, c, NULL);
    WALK(acme_client_etcd_attach_responder, c, NULL);
    WALK(acme_client_etcd_attach_sink, c, NULL);
    WALK(acme_client_etcd_publish, c, NULL, 0);
    WALK(acme_client_etcd_published, c, NULL);
    WALK(acme_client_etcd_unpublish, c, NULL);
    WALK(acme_client_etcd_health, c);

    /* client.h: directory and account (each fails at once: no CA, no key) */
    WALK(acme_directory_fetch, c);
    WALK(acme_directory_terms, c);
    WALK(acme_directory_eab_required, c);
    WALK(acme_directory_account_hash_prefix, c);
    WALK(acme_directory_issuer_domain_count, c);
    WALK(acme_directory_issuer_domain, c, 0);
    acme_account_params ap = {.size = 4};
    WALK(acme_account_register, c, &ap);
    WALK(acme_account_find, c);
    WALK(acme_account_update_contacts, c, NULL, 1);
    WALK(acme_account_deactivate, c);
    WALK(acme_account_rollover, c, ACME_KEY_EC_P256);
    WALK(acme_account_thumbprint, c);

    /* client.h: certificates */
    acme_issue_params ip = {.size = 0};
    WALK(acme_issue, c, &ip);
    int renewed = 0;
    WALK(acme_renew, c, "nothing-stored", 0, &renewed);
    WALK(acme_revoke, c, NULL, 0, 0, NULL, 0);
    WALK(acme_cert_list, c, list_cb, NULL);
    WALK(acme_cert_load, c, "nothing-stored", load_cb, NULL);

    /* module.h */
    acme_module *m = NULL;
    WALK(acme_module_load, c, "/nonexistent/module.so", NULL, &m);
    assert_null(m);

    /* engine.h */
    acme_engine *e = NULL;
    acme_engine_options small = {.size = 4};
    WALK(acme_engine_new, c, &small, &e); /* refused: the size */
    assert_null(e);
    acme_engine_options eo = {.size = sizeof eo};
    WALK(acme_engine_new, c, &eo, &e);
    assert_non_null(e);
    const char *names[] = {"walk.test"};
    acme_issue_params mp = {.size = sizeof mp, .names = names, .name_count = 1, .cert_id = "walk"};
    WALK(acme_engine_manage, e, &mp);
    WALK(acme_engine_set_account, e, &ap);
    WALK(acme_engine_unmanage, e, "not-managed");
    WALK(acme_engine_step, e);
    struct pollfd fds[16];
    size_t n = 0;
    WALK(acme_engine_fds, e, fds, 16, &n);
    WALK(acme_engine_timeout_ms, e);
    WALK(acme_engine_perform, e, 0);
    int object = 0;
    WALK(acme_engine_done, e, &object, ACME_OK);
    WALK(acme_engine_status_json, e);
    size_t total = 0;
    WALK(acme_engine_status_json_page, e, 0, 10, &total);
    acme_cert_status st = {.size = sizeof st};
    WALK(acme_engine_cert_status, e, "walk", &st);
    /* the host-loop face (socket and timer callbacks) */
    WALK(acme_engine_set_socket_callback, e, NULL, NULL);
    WALK(acme_engine_set_timer_callback, e, NULL, NULL);
    WALK(acme_engine_socket_action, e, -1, 0);
    WALK(acme_engine_timeout_action, e);
    WALK(acme_engine_set_pending_timeout, e, 600);
    /* event.h */
    acme_buffer *mb = acme_buffer_new();
    assert_non_null(mb);
    WALK(acme_engine_metrics, e, mb);
    acme_buffer_free(mb);

    const char *path = getenv("MOD_V2");
    assert_non_null(path);
    assert_int_equal(acme_module_load(c, path, NULL, &m), ACME_OK);
    WALK(acme_module_set_engine, m, e);
    assert_int_equal(acme_module_set_engine(m, NULL), ACME_OK);
    acme_module_free(m);

    acme_engine_free(e);
    acme_client_free(c);
    rm_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(transport_without_status),
        cmocka_unit_test(every_call_clears),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
