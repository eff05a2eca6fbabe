/* Account life cycle against Pebble: register, find (same and fresh
 * storage), contact update, terms of service, deactivation. */
#include <string.h>
#include <strings.h>
#include "itest.h"

int main(void)
{
    itest_init("it_account");
    itest_host h1, h2, h3, h4;
    itest_host_init(&h1);
    itest_host_init(&h2);
    itest_host_init(&h3);
    itest_host_init(&h4);
    char *dir = itest_fresh_dir("main");

    /* Register: a valid account with the one contact we gave. */
    acme_client *c1 = itest_client(&h1, dir);
    CHECK_OK(c1, acme_directory_fetch(c1));
    const char *terms = acme_directory_terms(c1);
    CHECK_MSG(c1, terms && *terms, "Pebble's directory has termsOfService");
    CHECK(c1, acme_directory_eab_required(c1) == 0);
    itest_register(c1, "mailto:first@example.com");
    char *url = itest_strdup(acme_account_url(c1));
    CHECK(c1, acme_account_contact_count(c1) == 1);
    CHECK(c1, itest_streq(acme_account_contact(c1, 0), "mailto:first@example.com"));
    const char *tp = acme_account_thumbprint(c1);
    CHECK_MSG(c1, tp && strlen(tp) == 43, "thumbprint %s is not base64url SHA-256", tp ? tp : "(null)");
    char *thumb = itest_strdup(tp);

    /* Registering again with the same key finds the same account. */
    itest_register(c1, "mailto:first@example.com");
    CHECK(c1, itest_streq(acme_account_url(c1), url));

    /* A second client on the same storage finds it (key from storage). */
    acme_client *c2 = itest_client(&h2, dir);
    CHECK_OK(c2, acme_account_find(c2));
    CHECK_MSG(c2, itest_streq(acme_account_url(c2), url), "found %s, registered %s",
              acme_account_url(c2), url);
    CHECK(c2, itest_streq(acme_account_status(c2), "valid"));
    CHECK(c2, itest_streq(acme_account_thumbprint(c2), thumb));
    acme_client_free(c2);

    /* A client with fresh storage has a new key and so no account. */
    char *fresh = itest_fresh_dir("fresh");
    acme_client *c3 = itest_client(&h3, fresh);
    CHECK_CODE(c3, acme_account_find(c3), ACME_E_NO_ACCOUNT);
    CHECK(c3, *acme_client_last_error(c3));
    CHECK(c3, acme_account_url(c3) == NULL || !*acme_account_url(c3));
    acme_client_free(c3);

    /* Contacts update: the CA's answer carries the new contact, and a
     * later find sees it too. */
    const char *newc[] = {"mailto:second@example.com"};
    CHECK_OK(c1, acme_account_update_contacts(c1, newc, 1));
    CHECK(c1, acme_account_contact_count(c1) == 1);
    CHECK_MSG(c1, itest_streq(acme_account_contact(c1, 0), newc[0]), "contact is %s",
              acme_account_contact(c1, 0));
    c2 = itest_client(&h2, dir);
    CHECK_OK(c2, acme_account_find(c2));
    CHECK(c2, acme_account_contact_count(c2) == 1);
    CHECK_MSG(c2, itest_streq(acme_account_contact(c2, 0), newc[0]), "contact is %s",
              acme_account_contact(c2, 0));
    acme_client_free(c2);

    /* Pebble has terms of service: registering without agreeing fails
     * with the specific code and tells the user where the terms are. */
    char *notos_dir = itest_fresh_dir("notos");
    acme_client *c4 = itest_client(&h4, notos_dir);
    acme_account_params p = {.size = sizeof p, .agree_tos = 0};
    CHECK_CODE(c4, acme_account_register(c4, &p), ACME_E_TOS_REQUIRED);
    CHECK_MSG(c4, strstr(acme_client_last_error(c4), terms) ||
                  strcasestr(acme_client_last_error(c4), "terms"),
              "the message should point at the terms: \"%s\"", acme_client_last_error(c4));
    CHECK(c4, acme_account_url(c4) == NULL || !*acme_account_url(c4));
    acme_client_free(c4);

    /* Deactivation is final: status changes, and the CA refuses the key. */
    CHECK_OK(c1, acme_account_deactivate(c1));
    CHECK_MSG(c1, itest_streq(acme_account_status(c1), "deactivated"), "status %s",
              acme_account_status(c1));
    const char *names[] = {"deactivated.example"};
    acme_issue_params ip = {.size = sizeof ip, .names = names, .name_count = 1};
    int installs = h1.install_calls, publishes = h1.publish_calls;
    int rc = acme_issue(c1, &ip);
    CHECK_MSG(c1, rc != ACME_OK, "issuance with a deactivated account succeeded");
    const acme_problem *prob = acme_client_problem(c1);
    CHECK_MSG(c1, prob != NULL, "rc %d (%s) but no problem document kept", rc, acme_strerror(rc));
    CHECK_MSG(c1, itest_streq(acme_problem_type(prob), "urn:ietf:params:acme:error:unauthorized"),
              "problem type %s", acme_problem_type(prob));
    CHECK(c1, rc == ACME_E_PROBLEM);
    CHECK(c1, *acme_client_last_error(c1));
    CHECK(c1, h1.install_calls == installs && h1.publish_calls == publishes);
    itest_log("ok: deactivated account refused: %s", acme_client_last_error(c1));
    acme_client_free(c1);

    free(url);
    free(thumb);
    free(dir);
    free(fresh);
    free(notos_dir);
    itest_host_clear(&h1);
    itest_host_clear(&h2);
    itest_host_clear(&h3);
    itest_host_clear(&h4);
    itest_done();
    return 0;
}
