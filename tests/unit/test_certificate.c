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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
