/* base64url: RFC 4648 test vectors, strictness, and the token guard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <acme/error.h>
#include "b64url.h"

static void encode_vectors(void **state)
{
    (void)state;
    /* RFC 4648 §10, without padding. */
    const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *out[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
    for (size_t i = 0; i < 7; i++) {
        char *e = b64url_encode(in[i], strlen(in[i]));
        assert_non_null(e);
        assert_string_equal(e, out[i]);
        unsigned char *d = NULL;
        size_t dl = 0;
        assert_int_equal(b64url_decode(e, strlen(e), &d, &dl), ACME_OK);
        assert_int_equal(dl, strlen(in[i]));
        assert_memory_equal(d, in[i], dl);
        free(d);
        free(e);
    }
}

static void url_alphabet(void **state)
{
    (void)state;
    const unsigned char bytes[] = { 0xfb, 0xff, 0xbf };
    char *e = b64url_encode(bytes, sizeof(bytes));
    assert_string_equal(e, "-_-_");
    free(e);
}

static void decode_is_strict(void **state)
{
    (void)state;
    unsigned char *d = NULL;
    size_t dl = 0;
    assert_int_equal(b64url_decode("Zg==", 4, &d, &dl), ACME_E_INVALID_ARG);  /* padding */
    assert_int_equal(b64url_decode("Zm9v+A", 6, &d, &dl), ACME_E_INVALID_ARG); /* std alphabet */
    assert_int_equal(b64url_decode("Zm 9v", 5, &d, &dl), ACME_E_INVALID_ARG);  /* space */
    assert_int_equal(b64url_decode("Z", 1, &d, &dl), ACME_E_INVALID_ARG);      /* impossible length */
    assert_int_equal(b64url_decode("Zh", 2, &d, &dl), ACME_E_INVALID_ARG);     /* non-zero trailing bits */
    assert_null(d);
}

static void token_guard(void **state)
{
    (void)state;
    assert_true(b64url_is_token("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", 256));
    assert_false(b64url_is_token("", 256));
    assert_false(b64url_is_token(NULL, 256));
    assert_false(b64url_is_token("../../etc/passwd", 256));
    assert_false(b64url_is_token("abc/def", 256));
    assert_false(b64url_is_token("abc.def", 256));
    assert_false(b64url_is_token("abc%2fdef", 256));
    assert_false(b64url_is_token("abc def", 256));
    assert_false(b64url_is_token("abc=", 256));
    assert_false(b64url_is_token("abcdef", 5)); /* over the length bound */
    assert_true(b64url_is_token("abcde", 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_vectors),
        cmocka_unit_test(url_alphabet),
        cmocka_unit_test(decode_is_strict),
        cmocka_unit_test(token_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
