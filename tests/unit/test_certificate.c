/* Certificate ids and the renewal point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"

static void ids_are_storage_safe(void **state)
{
    (void)state;
    char *id = certificate_id_for("*.Example.ORG");
    assert_string_equal(id, "_.example.org");
    free(id);
    id = certificate_id_for("2001:db8::1");
    assert_string_equal(id, "2001_db8__1");
    free(id);
    assert_null(certificate_id_for("../etc"));
    assert_null(certificate_id_for("a/b"));
    assert_null(certificate_id_for(".."));
    assert_null(certificate_id_for(""));
    assert_null(certificate_id_for("a b"));
}

/* cert.json's PEM members: our escaper must give what jansson reads back
 * byte for byte, and refuse what it cannot write (non-ASCII). */
static void pem_json_literal(void **state)
{
    (void)state;
    const char *cases[] = {
        "",
        "-----BEGIN CERTIFICATE-----\nMIIB+zCCAaGgAwIBAgI=\n-----END CERTIFICATE-----\n",
        "quote \" backslash \\ tab \t cr \r nul-less \x01\x1f end",
        "\"\\\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        acme_buf b;
        buf_init(&b, 0);
        assert_int_equal(json_append_ascii_string(&b, cases[i]), ACME_OK);
        json_error_t err;
        json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY, &err);
        assert_non_null(v);
        assert_true(json_is_string(v));
        assert_string_equal(json_string_value(v), cases[i]);
        json_decref(v);
        buf_clear(&b);
    }
    acme_buf b;
    buf_init(&b, 0);
    assert_int_equal(json_append_ascii_string(&b, "caf\xc3\xa9"), ACME_E_INVALID_ARG);
    buf_clear(&b);
}

static void renewal_point(void **state)
{
    (void)state;
    const int64_t day = 86400, nb = 1700000000;
    /* 90 days: renew with 30 days left. */
    assert_int_equal(renewal_time(nb, nb + 90 * day), nb + 60 * day);
    /* 6 days (short-lived): renew at half. */
    assert_int_equal(renewal_time(nb, nb + 6 * day), nb + 3 * day);
    /* Exactly 10 days counts as long-lived. */
    assert_int_equal(renewal_time(nb, nb + 10 * day), nb + 10 * day - (10 * day) / 3);
    /* Broken validity: due at once. */
    assert_int_equal(renewal_time(nb, nb - 1), nb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_are_storage_safe),
        cmocka_unit_test(renewal_point),
        cmocka_unit_test(pem_json_literal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
