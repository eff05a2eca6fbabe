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

#include <acme/acme.h>

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
                   "module %s: the module does not support module ABI 1, the one this libacme supports "
                   "(its acme_module_entry returned no table); rebuild the module against this libacme");
}

static void table_without_abi_version(void **state)
{
    (void)state;
    char fmt[512];
    snprintf(fmt, sizeof(fmt), "module %%s: its operations table is %zu bytes, too small to say which module "
             "ABI it was built for; rebuild the module against this libacme (module ABI 1)", sizeof(size_t));
    expect_refusal("MOD_TINY", ACME_E_UNSUPPORTED, fmt);
}

static void table_too_small_for_abi(void **state)
{
    (void)state;
    char fmt[512];
    snprintf(fmt, sizeof(fmt), "module %%s: its operations table is %zu bytes, smaller than module ABI 1's "
             "(at least %zu); rebuild the module against this libacme",
             offsetof(acme_module_ops, abi_version) + sizeof(unsigned), offsetof(acme_module_ops, last_error));
    expect_refusal("MOD_SHORT", ACME_E_UNSUPPORTED, fmt);
}

static void other_abi(void **state)
{
    (void)state;
    expect_refusal("MOD_ABI0", ACME_E_UNSUPPORTED,
                   "module %s: the module asked for module ABI 0; this libacme supports module ABI 1 only; "
                   "rebuild the module against this libacme");
    expect_refusal("MOD_ABI2", ACME_E_UNSUPPORTED,
                   "module %s: the module asked for module ABI 2; this libacme supports module ABI 1 only; "
                   "rebuild the module against this libacme");
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
    snprintf(line, sizeof(line), "module testmod loaded from %s\n", real);
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
    snprintf(line, sizeof(line), "module testmod loaded from %s\n", real);
    assert_non_null(strstr(logged, line));
    acme_module_free(m);

    assert_int_equal(acme_module_load(c, "./no-such-module.so", NULL, &m), ACME_E_INVALID_ARG);
    assert_string_equal(acme_client_last_error(c), "module ./no-such-module.so: No such file or directory");
    acme_client_free(c);
    assert_int_equal(chdir(cwd), 0);
    free(dir);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
