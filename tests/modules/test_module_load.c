/* The module loader (libacme/module.c) against small modules built for
 * the test (test_module.c): a module that returns no table, a table too
 * small to hold abi_version, one too small for module ABI 1, one built
 * for another ABI, and a good one. Each refusal's sentence is checked
 * word for word: it must say which ABI the module asked for and which
 * this libacme supports. Under ASan the too-small tables would show any
 * read past them. Paths: a bare name is refused, a relative one is
 * resolved once (the log names the file loaded).
 *
 * The module paths come from the environment (meson sets them). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>

#include <acme/acme.h>
#include "internal.h"

static char logged[4096];

static void on_log(void *ud, acme_log_level level, const char *msg)
{
    (void)ud;
    (void)level;
    size_t used = strlen(logged);
    snprintf(logged + used, sizeof(logged) - used, "%s\n", msg);
}

static acme_client *client(void)
{
    acme_client *c = NULL;
    /* Nothing is fetched: loading a module needs no CA. */
    assert_int_equal(acme_client_new("https://127.0.0.1:9/dir", &c), ACME_OK);
    acme_host_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.size = sizeof(cb);
    cb.log = on_log;
    acme_client_set_host(c, &cb, NULL);
    logged[0] = '\0';
    return c;
}

static const char *module_path(const char *var, char *real)
{
    const char *p = getenv(var);
    if (!p)
        fail_msg("%s is not set (run through meson test)", var);
    if (!realpath(p, real))
        fail_msg("%s=%s: not found", var, p);
    return p;
}

/* Load path: expect rc and, with "%s" standing for the resolved path, the
 * exact last error. */
static void expect_refusal(const char *var, int want_rc, const char *want_fmt)
{
    char real[PATH_MAX], want[2048];
    const char *path = module_path(var, real);
    acme_client *c = client();
    acme_module *m = (acme_module *)&m; /* must come back NULL */
    int rc = acme_module_load(c, path, NULL, &m);
    assert_int_equal(rc, want_rc);
    assert_null(m);
    snprintf(want, sizeof(want), want_fmt, real);
    assert_string_equal(acme_client_last_error(c), want);
    acme_client_free(c);
}

static void no_table(void **state)
{
    (void)state;
    expect_refusal("MOD_NULL", ACME_E_UNSUPPORTED,
                   "module %s: the module supports neither module ABI 2 nor 1, the ones this libacme supports "
                   "(its acme_module_entry returned no table); rebuild the module against this libacme");
}

static void table_without_abi_version(void **state)
{
    (void)state;
    char fmt[512];
    snprintf(fmt, sizeof(fmt), "module %%s: its operations table is %zu bytes, too small to say which module "
             "ABI it was built for; rebuild the module against this libacme (module ABI 2)", sizeof(size_t));
    expect_refusal("MOD_TINY", ACME_E_UNSUPPORTED, fmt);
}

static void table_too_small_for_abi(void **state)
{
    (void)state;
    char fmt[512];
    /* KIND_SHORT claims ABI 2, whose required part ends at cleanup. */
    snprintf(fmt, sizeof(fmt), "module %%s: its operations table is %zu bytes, smaller than module ABI 2's "
             "(at least %zu); rebuild the module against this libacme",
             offsetof(acme_module_ops, abi_version) + sizeof(unsigned),
             offsetof(acme_module_ops, cleanup) + sizeof(((acme_module_ops *)0)->cleanup));
    expect_refusal("MOD_SHORT", ACME_E_UNSUPPORTED, fmt);
}

static void other_abi(void **state)
{
    (void)state;
    expect_refusal("MOD_ABI0", ACME_E_UNSUPPORTED,
                   "module %s: the module asked for module ABI 0; this libacme supports module ABI 1 to 2 "
                   "only; rebuild the module against this libacme");
    expect_refusal("MOD_ABI3", ACME_E_UNSUPPORTED,
                   "module %s: the module asked for module ABI 3; this libacme supports module ABI 1 to 2 "
                   "only; rebuild the module against this libacme");
}

static void good_module(void **state)
{
    (void)state;
    char real[PATH_MAX], line[PATH_MAX + 64];
    const char *path = module_path("MOD_OK", real);
    acme_client *c = client();
    acme_module *m = NULL;
    assert_int_equal(acme_module_load(c, path, "a = 1\n", &m), ACME_OK);
    assert_string_equal(acme_module_name(m), "testmod");
    assert_true(acme_module_handles(m, ACME_CHALLENGE_DNS_01));
    snprintf(line, sizeof(line), "module testmod loaded from %s (module ABI 2)\n", real);
    assert_non_null(strstr(logged, line));
    acme_module_free(m);
    acme_client_free(c);
}

/* A bare name is what dlopen() would search its own path for: refused,
 * even when a file of that name is in the working directory. */
static void bare_name_refused(void **state)
{
    (void)state;
    char real[PATH_MAX], cwd[PATH_MAX];
    module_path("MOD_OK", real);
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    char *dir = strdup(real), *slash = strrchr(dir, '/');
    *slash = '\0';
    assert_int_equal(chdir(dir), 0);
    acme_client *c = client();
    acme_module *m = NULL;
    char want[2 * PATH_MAX + 200];
    snprintf(want, sizeof(want), "module %s: give the module's path (e.g. ./%s or an absolute path): a bare "
             "name would be searched for in the dynamic linker's path", slash + 1, slash + 1);
    assert_int_equal(acme_module_load(c, slash + 1, NULL, &m), ACME_E_INVALID_ARG);
    assert_null(m);
    assert_string_equal(acme_client_last_error(c), want);

    /* The same file as ./NAME: resolved once, against this directory. */
    char rel[PATH_MAX + 4], line[PATH_MAX + 64];
    snprintf(rel, sizeof(rel), "./%s", slash + 1);
    logged[0] = '\0';
    assert_int_equal(acme_module_load(c, rel, NULL, &m), ACME_OK);
    snprintf(line, sizeof(line), "module testmod loaded from %s (module ABI 2)\n", real);
    assert_non_null(strstr(logged, line));
    acme_module_free(m);

    assert_int_equal(acme_module_load(c, "./no-such-module.so", NULL, &m), ACME_E_INVALID_ARG);
    assert_string_equal(acme_client_last_error(c), "module ./no-such-module.so: No such file or directory");
    acme_client_free(c);
    assert_int_equal(chdir(cwd), 0);
    free(dir);
}

/* ---- modules that do something --------------------------------------- */

static acme_challenge *dns_challenge(const char *ident, const char *value)
{
    acme_challenge *ch = calloc(1, sizeof(*ch));
    assert_non_null(ch);
    ch->type = ACME_CHALLENGE_DNS_01;
    ch->id_type = strdup("dns");
    ch->identifier = strdup(ident);
    char name[300];
    snprintf(name, sizeof(name), "_acme-challenge.%s", ident);
    ch->dns_name = strdup(name);
    ch->dns_value = strdup(value);
    ch->token = strdup("tok");
    ch->key_auth = strdup("tok.thumb");
    return ch;
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "<hook> <ident> tid=" in the log, and the thread it named (0 if absent). */
static long logged_tid(const char *what)
{
    const char *p = strstr(logged, what);
    if (!p || !(p = strstr(p, "tid=")))
        return 0;
    return strtol(p + 4, NULL, 10);
}

static acme_module *load(acme_client *c, const char *var)
{
    char real[PATH_MAX];
    acme_module *m = NULL;
    int rc = acme_module_load(c, module_path(var, real), NULL, &m);
    if (rc)
        fail_msg("%s: %s", var, acme_client_last_error(c));
    return m;
}

/* A module built for module ABI 1 loads (libacme asks for ABI 2, it
 * answers NULL, libacme asks for 1), says what it does, and publishes in
 * the caller's thread; its failure is its own last error. */
static void v1_module_blocking(void **state)
{
    (void)state;
    acme_client *c = client();
    acme_module *m = load(c, "MOD_V1");
    assert_non_null(strstr(logged, "(module ABI 1)"));
    assert_int_equal(acme_module_flags(m), ACME_MODULE_PUBLISHES);
    acme_challenge *ok = dns_challenge("a.test", "v1"), *bad = dns_challenge("fail.test", "v2");
    assert_int_equal(acme_module_publish(m, ok), ACME_OK);
    assert_int_equal(logged_tid("publish a.test"), (long)syscall(SYS_gettid));
    assert_null(acme_module_last_error(m));
    assert_int_equal(acme_module_publish(m, bad), ACME_E_CALLBACK);
    assert_string_equal(acme_module_last_error(m),
                        "module testv1: publish failed: publish refused for fail.test by the test module");
    assert_string_equal(acme_client_last_error(c), acme_module_last_error(m));
    assert_int_equal(acme_module_unpublish(m, ok), ACME_OK);
    assert_non_null(strstr(logged, "testv1: unpublish a.test"));
    challenge_free(ok);
    challenge_free(bad);
    acme_module_free(m);
    acme_client_free(c);
}

/* Module ABI 2 without an engine (acme_issue's case): publish runs
 * present, waits for the module's own done (sent from another thread),
 * then runs wait, all before it returns. A failed wait is cleaned up. */
static void v2_module_blocking(void **state)
{
    (void)state;
    acme_client *c = client();
    acme_module *m = load(c, "MOD_V2");
    assert_int_equal(acme_module_flags(m), ACME_MODULE_PUBLISHES | ACME_MODULE_INSTALLS);
    acme_challenge *ok = dns_challenge("a.test", "v1"), *bad = dns_challenge("fail.test", "v2");
    uint64_t t0 = ms_now();
    assert_int_equal(acme_module_publish(m, ok), ACME_OK);
    assert_true(ms_now() - t0 >= 300); /* the wait ran to completion */
    const char *pr = strstr(logged, "testv2: present a.test"), *wt = strstr(logged, "testv2: wait a.test");
    assert_non_null(pr);
    assert_non_null(wt);
    assert_true(pr < wt);
    assert_int_equal(acme_module_publish(m, bad), ACME_E_TIMEOUT);
    assert_non_null(strstr(logged, "testv2: cleanup fail.test"));
    assert_string_equal(acme_module_last_error(m),
                        "module testv2: wait failed: wait refused for fail.test by the test module");
    assert_int_equal(acme_module_unpublish(m, ok), ACME_OK);
    assert_non_null(strstr(logged, "testv2: cleanup a.test"));
    assert_null(strstr(logged, "testv2: unpublish")); /* cleanup replaces it */
    challenge_free(ok);
    challenge_free(bad);
    acme_module_free(m);
    acme_client_free(c);
}

/* Freeing a module whose thread is inside a long wait: host->stopping
 * tells the wait to give up, so the free does not wait 30 s. */
static void free_stops_a_long_wait(void **state)
{
    (void)state;
    acme_client *c = client();
    char dir[] = "/tmp/test_module_load.XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(acme_client_set_storage_dir(c, dir), ACME_OK);
    acme_engine *e = NULL;
    assert_int_equal(acme_engine_new(c, NULL, &e), ACME_OK);
    acme_module *m = load(c, "MOD_V2");
    assert_int_equal(acme_module_set_engine(m, e), ACME_OK);
    acme_challenge *slow = dns_challenge("slow.test", "v1");
    assert_int_equal(acme_module_publish(m, slow), ACME_E_PENDING);
    struct timespec ts = {0, 300 * 1000000L}; /* present (50 ms), then into the wait */
    nanosleep(&ts, NULL);
    uint64_t t0 = ms_now();
    acme_module_free(m);
    assert_true(ms_now() - t0 < 2000);
    challenge_free(slow);
    acme_engine_free(e);
    acme_client_free(c);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

typedef struct call_arg { acme_module *m; const acme_challenge *ch; int rc; } call_arg;

static void *publish_elsewhere(void *p)
{
    call_arg *a = p;
    a->rc = acme_module_publish(a->m, a->ch);
    return NULL;
}

/* One client, two modules: each keeps its own last error, and a call
 * from a thread other than the one that loaded the module (a host's
 * worker) leaves the client's last error alone. */
static void last_error_is_the_modules(void **state)
{
    (void)state;
    acme_client *c = client();
    acme_module *m1 = load(c, "MOD_V1"), *m2 = load(c, "MOD_V2");
    acme_challenge *bad = dns_challenge("fail.test", "v1"), *ok = dns_challenge("a.test", "v2");
    assert_int_equal(acme_module_publish(m1, bad), ACME_E_CALLBACK);
    assert_int_equal(acme_module_publish(m2, ok), ACME_OK);
    assert_int_equal(acme_module_publish(m2, bad), ACME_E_TIMEOUT);
    assert_string_equal(acme_module_last_error(m1),
                        "module testv1: publish failed: publish refused for fail.test by the test module");
    assert_string_equal(acme_module_last_error(m2),
                        "module testv2: wait failed: wait refused for fail.test by the test module");

    /* A setter clears the client's last error; the worker's failure must
     * not reappear there. */
    assert_int_equal(acme_client_set_log_level(c, ACME_LOG_DEBUG), ACME_OK);
    assert_string_equal(acme_client_last_error(c), "");
    acme_challenge *bad2 = dns_challenge("fail.test", "v3");
    call_arg a = {m1, bad2, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, publish_elsewhere, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, ACME_E_CALLBACK);
    assert_string_equal(acme_client_last_error(c), "");
    assert_non_null(acme_module_last_error(m1));
    challenge_free(bad);
    challenge_free(bad2);
    challenge_free(ok);
    acme_module_free(m1);
    acme_module_free(m2);
    acme_client_free(c);
}

/* Wait until the module's fd is readable, then dispatch. */
static int dispatch_within(acme_module *m, int ms)
{
    struct pollfd p = {.fd = acme_module_fd(m), .events = POLLIN};
    int n = 0;
    uint64_t end = ms_now() + (uint64_t)ms;
    while (n == 0 && ms_now() < end) {
        if (poll(&p, 1, (int)(end - ms_now())) > 0)
            n = acme_module_dispatch(m);
    }
    return n;
}

/* With an engine: every call answers ACME_E_PENDING at once and the hooks
 * run on the module's thread, not the caller's; outcomes and log lines
 * arrive through acme_module_fd / acme_module_dispatch. (The engine has
 * no order waiting for these objects, so acme_engine_done finds none; a
 * failure is then logged with its sentence.) Each module keeps its own
 * last error. Both ABIs. */
static void modules_with_engine(void **state)
{
    (void)state;
    acme_client *c = client();
    char dir[] = "/tmp/test_module_load.XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(acme_client_set_storage_dir(c, dir), ACME_OK);
    acme_engine *e = NULL;
    assert_int_equal(acme_engine_new(c, NULL, &e), ACME_OK);
    acme_module *m1 = load(c, "MOD_V1"), *m2 = load(c, "MOD_V2");
    assert_int_equal(acme_module_fd(m2), -1);
    assert_int_equal(acme_module_set_engine(m1, e), ACME_OK);
    assert_int_equal(acme_module_set_engine(m2, e), ACME_OK);
    assert_true(acme_module_fd(m2) >= 0);
    acme_challenge *ok = dns_challenge("a.test", "v1"), *bad = dns_challenge("fail.test", "v2");
    logged[0] = '\0';

    uint64_t t0 = ms_now();
    assert_int_equal(acme_module_publish(m2, ok), ACME_E_PENDING);
    assert_int_equal(acme_module_publish(m2, bad), ACME_E_PENDING);
    assert_int_equal(acme_module_publish(m1, bad), ACME_E_PENDING);
    assert_true(ms_now() - t0 < 100); /* nothing ran here */
    assert_null(strstr(logged, "present"));

    int got = 0;
    while (got < 2) {
        int n = dispatch_within(m2, 5000);
        assert_true(n > 0);
        got += n;
    }
    /* Both presents went out before the first wait started. */
    const char *p1 = strstr(logged, "testv2: present a.test"), *p2 = strstr(logged, "testv2: present fail.test");
    const char *w1 = strstr(logged, "testv2: wait a.test");
    assert_non_null(p1);
    assert_non_null(p2);
    assert_non_null(w1);
    assert_true(p2 < w1);
    long tid = logged_tid("testv2: present a.test");
    assert_true(tid != 0 && tid != (long)syscall(SYS_gettid));
    assert_non_null(strstr(logged, "testv2: cleanup fail.test"));
    assert_true(dispatch_within(m1, 5000) >= 1);
    assert_true(logged_tid("testv1: publish fail.test") != (long)syscall(SYS_gettid));

    assert_string_equal(acme_module_last_error(m2),
                        "module testv2: wait failed: wait refused for fail.test by the test module");
    assert_string_equal(acme_module_last_error(m1),
                        "module testv1: publish failed: publish refused for fail.test by the test module");
    assert_non_null(strstr(logged, "module testv2: wait failed"));

    assert_int_equal(acme_module_set_engine(m2, NULL), ACME_OK);
    assert_int_equal(acme_module_fd(m2), -1);
    assert_int_equal(acme_module_unpublish(m2, ok), ACME_OK); /* in the caller again */
    assert_int_equal(logged_tid("testv2: cleanup a.test"), (long)syscall(SYS_gettid));
    challenge_free(ok);
    challenge_free(bad);
    acme_module_free(m1);
    acme_module_free(m2);
    acme_engine_free(e);
    acme_client_free(c);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_table),
        cmocka_unit_test(table_without_abi_version),
        cmocka_unit_test(table_too_small_for_abi),
        cmocka_unit_test(other_abi),
        cmocka_unit_test(good_module),
        cmocka_unit_test(bare_name_refused),
        cmocka_unit_test(v1_module_blocking),
        cmocka_unit_test(v2_module_blocking),
        cmocka_unit_test(modules_with_engine),
        cmocka_unit_test(last_error_is_the_modules),
        cmocka_unit_test(free_stops_a_long_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
