/* Account key rollover (RFC 8555 §7.3.5) and revocation (§7.6) against
 * Pebble: ES256 account issues, rolls over to ES384 and issues again; the
 * old key no longer finds the account. The first certificate is revoked
 * with the account key (superseded), the second with its own key (key
 * compromise); Pebble's management interface confirms both. */
#include <string.h>
#include "itest.h"

static void expect_revoked(const char *chain, int reason)
{
    char *status = NULL;
    int got = -2;
    itest_cert_status(chain, &status, &got);
    CHECK_MSG(NULL, !strcmp(status, "Revoked") && got == reason,
              "Pebble says %s reason %d, expected Revoked reason %d", status, got, reason);
    free(status);
}

static void expect_valid(const char *chain)
{
    char *status = NULL;
    int got = -2;
    itest_cert_status(chain, &status, &got);
    CHECK_MSG(NULL, !strcmp(status, "Valid"), "Pebble says %s before revocation", status);
    free(status);
}

int main(void)
{
    itest_init("it_rollover_revoke");
    itest_host h;
    itest_host_init(&h);
    char *dir = itest_fresh_dir("acct");
    acme_client *c = itest_client(&h, dir);
    CHECK_OK(c, acme_client_set_account_key_type(c, ACME_KEY_EC_P256));
    itest_register(c, NULL);
    char *url = itest_strdup(acme_account_url(c));
    char *thumb1 = itest_strdup(acme_account_thumbprint(c));

    const char *n1[] = {"before-rollover.example"};
    itest_issue i1 = {.names = n1, .name_count = 1};
    itest_issue_checked(c, &h, &i1);
    char *chain1 = itest_strdup(h.last.chain_pem);

    /* Keep the storage as it was with the old key. */
    char *old_copy = itest_fresh_dir("oldkey");
    itest_copy_tree(dir, old_copy);

    CHECK_OK(c, acme_account_rollover(c, ACME_KEY_EC_P384));
    CHECK(c, itest_streq(acme_account_url(c), url));
    CHECK(c, itest_streq(acme_account_status(c), "valid"));
    const char *thumb2 = acme_account_thumbprint(c);
    CHECK_MSG(c, thumb2 && strcmp(thumb2, thumb1), "thumbprint unchanged by rollover");
    char *thumb2c = itest_strdup(thumb2);

    /* The new key works for the same account. */
    const char *n2[] = {"after-rollover.example"};
    itest_issue i2 = {.names = n2, .name_count = 1};
    itest_issue_checked(c, &h, &i2);
    char *chain2 = itest_strdup(h.last.chain_pem);
    char *key2 = itest_strdup(h.last.key_pem);

    /* A fresh client on the same storage loads the new key and finds the
     * account; one on the copy with the old key finds nothing. */
    itest_host h2;
    itest_host_init(&h2);
    acme_client *c2 = itest_client(&h2, dir);
    CHECK_OK(c2, acme_account_find(c2));
    CHECK(c2, itest_streq(acme_account_url(c2), url));
    CHECK(c2, itest_streq(acme_account_thumbprint(c2), thumb2c));
    acme_client_free(c2);
    c2 = itest_client(&h2, old_copy);
    CHECK(c2, itest_streq(acme_account_thumbprint(c2), thumb1));
    CHECK_CODE(c2, acme_account_find(c2), ACME_E_NO_ACCOUNT);
    acme_client_free(c2);
    itest_log("ok: rollover; the old key no longer finds %s", url);

    /* Roll over again, to RSA: its signatures take the "slow work" path
     * (a job, run in place by acme_issue, on the worker by the engine). */
    CHECK_OK(c, acme_account_rollover(c, ACME_KEY_RSA_2048));
    CHECK(c, itest_streq(acme_account_url(c), url));
    const char *n3[] = {"rsa-account.example"};
    itest_issue i3 = {.names = n3, .name_count = 1};
    itest_issue_checked(c, &h, &i3);
    itest_log("ok: an RSA account key signs orders (RS256)");

    /* Revoke #1 with the account key, #2 with the certificate's own key. */
    expect_valid(chain1);
    expect_valid(chain2);
    CHECK_OK(c, acme_revoke(c, chain1, strlen(chain1), ACME_REVOKE_SUPERSEDED, NULL, 0));
    expect_revoked(chain1, 4);
    expect_valid(chain2);
    CHECK_OK(c, acme_revoke(c, chain2, strlen(chain2), ACME_REVOKE_KEY_COMPROMISE,
                            key2, strlen(key2)));
    expect_revoked(chain2, 1);
    itest_log("ok: both certificates revoked with their reasons");

    /* Revoking again is the CA's call: alreadyRevoked. */
    CHECK_CODE(c, acme_revoke(c, chain1, strlen(chain1), ACME_REVOKE_SUPERSEDED, NULL, 0),
               ACME_E_PROBLEM);
    CHECK(c, acme_client_problem(c) &&
             itest_streq(acme_problem_type(acme_client_problem(c)),
                     "urn:ietf:params:acme:error:alreadyRevoked"));
    /* 2 (cACompromise) is not among the reasons the API accepts. */
    CHECK_CODE(c, acme_revoke(c, chain2, strlen(chain2), 2, NULL, 0), ACME_E_INVALID_ARG);

    acme_client_free(c);
    free(url);
    free(thumb1);
    free(thumb2c);
    free(chain1);
    free(chain2);
    free(key2);
    free(dir);
    free(old_copy);
    itest_host_clear(&h);
    itest_host_clear(&h2);
    itest_done();
    return 0;
}
