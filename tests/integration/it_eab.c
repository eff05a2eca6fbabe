/* External account binding (RFC 8555 §7.3.4) against Pebble run with
 * --eab: refused without it, refused with a wrong MAC key, accepted with
 * the harness's kid/HMAC, and the bound account can issue. */
#include <string.h>
#include <strings.h>
#include "itest.h"

int main(void)
{
    itest_init("it_eab");
    const char *kid = itest_env("ACME_TEST_EAB_KID");
    const char *hmac = itest_env("ACME_TEST_EAB_HMAC");
    itest_host h;
    itest_host_init(&h);

    /* Without EAB: the directory says it is required, and registration
     * fails with the specific code before any account exists. */
    char *d1 = itest_fresh_dir("noeab");
    acme_client *c = itest_client(&h, d1);
    CHECK_CODE(c, acme_directory_eab_required(c), 1);
    acme_account_params p = {.size = sizeof p, .agree_tos = 1};
    CHECK_CODE(c, acme_account_register(c, &p), ACME_E_EAB_REQUIRED);
    const char *msg = acme_client_last_error(c);
    CHECK_MSG(c, strcasestr(msg, "external account") || strcasestr(msg, "EAB"),
              "the message should name external account binding: \"%s\"", msg);
    CHECK(c, acme_account_url(c) == NULL || !*acme_account_url(c));
    itest_log("ok: without EAB: %s", msg);
    acme_client_free(c);

    /* A well-formed but wrong MAC key: the CA itself refuses. */
    char *d2 = itest_fresh_dir("badmac");
    c = itest_client(&h, d2);
    acme_account_params bad = {
        .size = sizeof bad, .agree_tos = 1, .eab_kid = kid,
        /* 32 bytes of base64url that are not the harness's key */
        .eab_hmac_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    };
    int rc = acme_account_register(c, &bad);
    CHECK_MSG(c, rc == ACME_E_PROBLEM && acme_client_problem(c),
              "wrong HMAC: rc %d (%s)", rc, acme_strerror(rc));
    CHECK(c, *acme_client_last_error(c));
    itest_log("ok: wrong MAC refused: %s", acme_client_last_error(c));
    acme_client_free(c);

    /* Only one of kid / key is a caller error. */
    c = itest_client(&h, d2);
    acme_account_params half = {.size = sizeof half, .agree_tos = 1, .eab_kid = kid};
    CHECK_CODE(c, acme_account_register(c, &half), ACME_E_INVALID_ARG);
    acme_client_free(c);

    /* The right binding: a valid account that can issue. */
    char *d3 = itest_fresh_dir("eab");
    c = itest_client(&h, d3);
    acme_account_params good = {
        .size = sizeof good, .agree_tos = 1, .eab_kid = kid, .eab_hmac_key = hmac,
    };
    CHECK_OK(c, acme_account_register(c, &good));
    CHECK(c, itest_streq(acme_account_status(c), "valid"));
    CHECK(c, acme_account_url(c) && !strncmp(acme_account_url(c), "https://", 8));
    /* Found again from storage without EAB data: binding is only for creation. */
    itest_host h2;
    itest_host_init(&h2);
    acme_client *c2 = itest_client(&h2, d3);
    CHECK_OK(c2, acme_account_find(c2));
    CHECK(c2, itest_streq(acme_account_url(c2), acme_account_url(c)));
    acme_client_free(c2);

    const char *names[] = {"eab.example"};
    itest_issue is = {.names = names, .name_count = 1};
    itest_issue_checked(c, &h, &is);
    acme_client_free(c);

    free(d1);
    free(d2);
    free(d3);
    itest_host_clear(&h);
    itest_host_clear(&h2);
    itest_done();
    return 0;
}
