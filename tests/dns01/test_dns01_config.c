/* Unit tests: the dns01 module's entry point and configuration
 * (modules/dns01/module.c, config.c), through the module ABI as libacme
 * calls it. Every refusal must name the key at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include <acme/acme.h>

const acme_module_ops *acme_module_entry(unsigned host_abi_version);

typedef struct fake_host {
    int logs;
    char last_log[1024];
    char warnings[2048];   /* every warning, one per line */
} fake_host;

static int no_get(void *ud, const char *key, acme_buffer *out)
{
    (void)ud; (void)key; (void)out;
    return ACME_E_NOT_FOUND;
}

static int no_put(void *ud, const char *key, const void *data, size_t len, unsigned flags)
{
    (void)ud; (void)key; (void)data; (void)len; (void)flags;
    return ACME_OK;
}

static void on_log(void *ud, acme_log_level level, const char *msg)
{
    (void)level;
    fake_host *h = ud;
    h->logs++;
    snprintf(h->last_log, sizeof(h->last_log), "%s", msg);
    if (level == ACME_LOG_WARNING) {
        size_t used = strlen(h->warnings);
        snprintf(h->warnings + used, sizeof(h->warnings) - used, "%s\n", msg);
    }
}

static fake_host fh;
static const acme_module_host host = {
    .size = sizeof(acme_module_host),
    .ud = &fh,
    .storage_get = no_get,
    .storage_put = no_put,
    .log = on_log,
};

/* Create from "k=v" strings; returns the code, err filled. */
static int create(const char *const *kv, size_t n, void **inst, char *err, size_t errlen)
{
    const acme_module_ops *ops = acme_module_entry(ACME_MODULE_ABI_VERSION);
    assert_non_null(ops);
    char *keys[32], *values[32];
    assert_true(n <= 32);
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '=');
        assert_non_null(eq);
        keys[i] = strndup(kv[i], (size_t)(eq - kv[i]));
        values[i] = strdup(eq + 1);
    }
    err[0] = '\0';
    *inst = NULL;
    int rc = ops->create(&host, (const char *const *)keys, (const char *const *)values, n, inst,
                         err, errlen);
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        free(values[i]);
    }
    if (rc == ACME_OK) {
        assert_non_null(*inst);
    } else {
        assert_null(*inst);
        assert_true(strlen(err) > 0);
    }
    return rc;
}

#define CREATE(inst, err, ...)                                                                  \
    create((const char *const[]){__VA_ARGS__},                                                  \
           sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *), (inst), (err),    \
           sizeof(err))

static void destroy(void *inst)
{
    acme_module_entry(ACME_MODULE_ABI_VERSION)->destroy(inst);
}

static void entry_point(void **state)
{
    (void)state;
    const acme_module_ops *ops = acme_module_entry(ACME_MODULE_ABI_VERSION);
    assert_non_null(ops);
    assert_int_equal(ops->size, sizeof(acme_module_ops));
    assert_int_equal(ops->abi_version, ACME_MODULE_ABI_VERSION);
    assert_string_equal(ops->name, "dns01");
    assert_non_null(ops->create);
    assert_non_null(ops->publish);
    assert_non_null(ops->unpublish);
    assert_non_null(ops->last_error);
    assert_null(acme_module_entry(ACME_MODULE_ABI_VERSION + 1));
    assert_null(acme_module_entry(0));
}

static void expect_refusal(int rc, int want, const char *err, const char *names)
{
    assert_int_equal(rc, want);
    if (!strstr(err, names))
        fail_msg("error \"%s\" does not name \"%s\"", err, names);
}

static void good_configurations(void **state)
{
    (void)state;
    void *inst;
    char err[512];
    const acme_module_ops *ops = acme_module_entry(ACME_MODULE_ABI_VERSION);
    assert_int_equal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1:5353",
                            "resolver=127.0.0.1:5353", "tsig-key-name=k.", "tsig-algorithm=hmac-sha512",
                            "tsig-secret=bGliYWNtZSBkbnMwMSBUU0lHIGZpeHR1cmUga2V5ISE=",
                            "zone=acme.test", "ttl=30", "nameservers=127.0.0.1:5353, 127.0.0.2",
                            "nameserver-port=5353", "propagation-timeout=5",
                            "propagation-interval=100", "dns-timeout=500"),
                     ACME_OK);
    /* dns-01, and since 1.2 the account-labelled and the persistent record. */
    assert_int_equal(ops->challenge_types(inst), ACME_MODULE_CHALLENGE(ACME_CHALLENGE_DNS_01) |
                                                     ACME_MODULE_CHALLENGE(ACME_CHALLENGE_DNS_ACCOUNT_01) |
                                                     ACME_MODULE_CHALLENGE(ACME_CHALLENGE_DNS_PERSIST_01));
    assert_null(ops->last_error(inst));
    destroy(inst);

    assert_int_equal(CREATE(&inst, err, "backend=acme-dns", "api-url=https://127.0.0.1:4443/",
                            "ca-file=/dev/null", "resolver=127.0.0.1"),
                     ACME_OK);
    destroy(inst);
    assert_int_equal(CREATE(&inst, err, "backend=hook", "command=/bin/true", "hook-timeout=5",
                            "resolver=[::1]:53"),
                     ACME_OK);
    destroy(inst);

    /* Without TSIG: allowed, with a warning. */
    fh.logs = 0;
    assert_int_equal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1"),
                     ACME_OK);
    assert_true(fh.logs >= 1);
    destroy(inst);
}

static void refusals_name_the_key(void **state)
{
    (void)state;
    void *inst;
    char err[512];
    expect_refusal(CREATE(&inst, err, "server=127.0.0.1"), ACME_E_INVALID_ARG, err, "backend");
    expect_refusal(CREATE(&inst, err, "backend=route53"), ACME_E_INVALID_ARG, err, "backend=route53");
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "resolver=127.0.0.1"), ACME_E_INVALID_ARG,
                   err, "server");
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                          "tsig-secret=abc="),
                   ACME_E_INVALID_ARG, err, "tsig-key-name");
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                          "tsig-key-name=k"),
                   ACME_E_INVALID_ARG, err, "tsig-secret");
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                          "tsig-key-name=k", "tsig-secret=%%%"),
                   ACME_E_INVALID_ARG, err, "tsig-secret");
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                          "tsig-key-name=k", "tsig-secret=abcd", "tsig-algorithm=hmac-md5"),
                   ACME_E_INVALID_ARG, err, "tsig-algorithm");
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                          "tsig-key-name=k", "tsig-secret=abcd", "tsig-secret-file=/x"),
                   ACME_E_INVALID_ARG, err, "tsig-secret-file");
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1:99999",
                          "resolver=127.0.0.1"),
                   ACME_E_INVALID_ARG, err, "server=127.0.0.1:99999");
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                          "sever=x"),
                   ACME_E_INVALID_ARG, err, "sever");
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                          "ttl=1", "ttl=2"),
                   ACME_E_INVALID_ARG, err, "ttl");
    expect_refusal(CREATE(&inst, err, "backend=hook", "resolver=127.0.0.1", "command=x",
                          "server=127.0.0.1"),
                   ACME_E_INVALID_ARG, err, "server");
    expect_refusal(CREATE(&inst, err, "backend=hook", "resolver=127.0.0.1"), ACME_E_INVALID_ARG,
                   err, "command");
    expect_refusal(CREATE(&inst, err, "backend=acme-dns", "resolver=127.0.0.1",
                          "api-url=http://127.0.0.1/"),
                   ACME_E_INSECURE, err, "api-url");
    expect_refusal(CREATE(&inst, err, "backend=acme-dns", "resolver=127.0.0.1"), ACME_E_INVALID_ARG,
                   err, "api-url");
    expect_refusal(CREATE(&inst, err, "backend=hook", "command=x", "resolver=127.0.0.1",
                          "propagation-timeout=-1"),
                   ACME_E_INVALID_ARG, err, "propagation-timeout");
    expect_refusal(CREATE(&inst, err, "backend=hook", "command=x", "resolver=127.0.0.1",
                          "propagation-interval=10"),
                   ACME_E_INVALID_ARG, err, "propagation-interval");
    expect_refusal(CREATE(&inst, err, "backend=hook", "command=x", "resolver=127.0.0.1",
                          "zone=a..b"),
                   ACME_E_INVALID_ARG, err, "zone");
    expect_refusal(CREATE(&inst, err, "backend=hook", "command=x", "resolver=127.0.0.1",
                          "nameservers= , "),
                   ACME_E_INVALID_ARG, err, "nameservers");
    expect_refusal(CREATE(&inst, err, "backend=hook", "command=x", "resolver=nonsense:port"),
                   ACME_E_INVALID_ARG, err, "resolver");
}

static void secret_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_dns01_config.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char bind_style[256], knot_style[256], bare[256], empty[256];
    snprintf(bind_style, sizeof(bind_style), "%s/bind.key", dir);
    snprintf(knot_style, sizeof(knot_style), "%s/knot.conf", dir);
    snprintf(bare, sizeof(bare), "%s/bare", dir);
    snprintf(empty, sizeof(empty), "%s/empty", dir);
    FILE *f = fopen(bind_style, "w");
    fprintf(f, "key \"acme-update\" {\n\talgorithm hmac-sha256;\n\tsecret \"bGliYWNtZSBkbnMwMSBUU0lHIGZpeHR1cmUga2V5ISE=\";\n};\n");
    fclose(f);
    f = fopen(knot_style, "w");
    /* As keymgr -t prints it, with a key name that contains "secret". */
    fprintf(f, "# hmac-sha256:mysecret:bGliYWNtZSBkbnMwMSBUU0lHIGZpeHR1cmUga2V5ISE=\nkey:\n"
               "  - id: mysecret\n    algorithm: hmac-sha256\n"
               "    secret: bGliYWNtZSBkbnMwMSBUU0lHIGZpeHR1cmUga2V5ISE=\n");
    fclose(f);
    f = fopen(bare, "w");
    fprintf(f, "bGliYWNtZSBkbnMwMSBUU0lH\nIGZpeHR1cmUga2V5ISE=\n");
    fclose(f);
    f = fopen(empty, "w");
    fclose(f);

    void *inst;
    char err[512], opt[300];
    const char *files[] = {bind_style, knot_style, bare};
    for (size_t i = 0; i < 3; i++) {
        snprintf(opt, sizeof(opt), "tsig-secret-file=%s", files[i]);
        int rc = CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                        "tsig-key-name=acme-update", opt);
        if (rc)
            fail_msg("%s: %s", files[i], err);
        destroy(inst);
    }
    snprintf(opt, sizeof(opt), "tsig-secret-file=%s", empty);
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                          "tsig-key-name=acme-update", opt),
                   ACME_E_INVALID_ARG, err, "tsig-secret-file");
    snprintf(opt, sizeof(opt), "tsig-secret-file=%s/missing", dir);
    expect_refusal(CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                          "tsig-key-name=acme-update", opt),
                   ACME_E_INVALID_ARG, err, "missing");
    unlink(bind_style);
    unlink(knot_style);
    unlink(bare);
    unlink(empty);
    rmdir(dir);
}

/* A TSIG secret file others can read: a warning that names the file and
 * the fix; none for 0600. */
static void secret_file_permissions(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_dns01_config.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], opt[300], err[512], want[1024];
    snprintf(path, sizeof(path), "%s/tsig.key", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "bGliYWNtZSBkbnMwMSBUU0lHIGZpeHR1cmUga2V5ISE=\n");
    fclose(f);
    snprintf(opt, sizeof(opt), "tsig-secret-file=%s", path);
    static const struct { unsigned mode; int warned; } cases[] = {
        {0600, 0}, {0400, 0}, {0644, 1}, {0640, 1}, {0604, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(chmod(path, cases[i].mode), 0);
        fh.warnings[0] = '\0';
        void *inst;
        int rc = CREATE(&inst, err, "backend=rfc2136", "server=127.0.0.1", "resolver=127.0.0.1",
                        "tsig-key-name=acme-update", opt);
        if (rc)
            fail_msg("mode %04o: %s", cases[i].mode, err);
        destroy(inst);
        snprintf(want, sizeof(want), "tsig-secret-file=%s can be read by group or others (mode %04o): anyone "
                 "who reads it can change the zone; chmod 600 %s\n", path, cases[i].mode, path);
        if (cases[i].warned && !strstr(fh.warnings, want))
            fail_msg("mode %04o: no warning \"%s\" in \"%s\"", cases[i].mode, want, fh.warnings);
        if (!cases[i].warned && strstr(fh.warnings, "tsig-secret-file"))
            fail_msg("mode %04o: warned anyway: %s", cases[i].mode, fh.warnings);
    }
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(entry_point),
        cmocka_unit_test(good_configurations),
        cmocka_unit_test(refusals_name_the_key),
        cmocka_unit_test(secret_files),
        cmocka_unit_test(secret_file_permissions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
