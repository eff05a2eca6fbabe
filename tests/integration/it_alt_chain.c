/* Alternate chains (RFC 8555 §7.4.2 Link rel="alternate") against Pebble
 * with PEBBLE_ALTERNATE_ROOTS=1: preferred_chain names the alternate root
 * and gets that chain; a name matching no chain gets the default one. */
#include <string.h>
#include "itest.h"

int main(void)
{
    itest_init("it_alt_chain");
    /* Pebble's roots are "Pebble Root CA <hex>", fresh per run: learn them. */
    char *root0 = itest_pebble_root(0);
    char *root1 = itest_pebble_root(1);
    char *cn0 = itest_subject_cn(root0), *cn1 = itest_subject_cn(root1);
    CHECK_MSG(NULL, *cn0 && *cn1 && strcmp(cn0, cn1), "roots \"%s\" and \"%s\"", cn0, cn1);
    itest_log("default root \"%s\", alternate root \"%s\"", cn0, cn1);

    itest_host h;
    itest_host_init(&h);
    char *dir = itest_fresh_dir("alt");
    acme_client *c = itest_client(&h, dir);
    itest_register(c, NULL);

    /* No preference: the default chain up to root 0. */
    const char *n0[] = {"default-chain.example"};
    itest_issue p0 = {.names = n0, .name_count = 1, .root_pem = root0};
    itest_issue_checked(c, &h, &p0);

    /* The alternate root by name: the chain verifies up to root 1 and its
     * top issuer (and acme_certificate_issuer) is root 1's name. */
    const char *n1[] = {"alt-chain.example"};
    itest_issue p1 = {.names = n1, .name_count = 1, .preferred_chain = cn1, .root_pem = root1};
    itest_issue_checked(c, &h, &p1);
    const char *why = "";
    CHECK_MSG(c, !itest_chain_verifies(h.last.chain_pem, root0, &why),
              "the alternate chain also verifies against the default root");

    /* The default root by name: also fine, and the default chain. */
    const char *n2[] = {"named-default.example"};
    itest_issue p2 = {.names = n2, .name_count = 1, .preferred_chain = cn0, .root_pem = root0};
    itest_issue_checked(c, &h, &p2);

    /* A name that matches nothing is a preference, not a requirement. */
    const char *n3[] = {"no-such-chain.example"};
    itest_issue p3 = {.names = n3, .name_count = 1, .preferred_chain = "No Such Root CA",
                      .root_pem = root0};
    itest_issue_checked(c, &h, &p3);

    acme_client_free(c);
    free(root0);
    free(root1);
    free(cn0);
    free(cn1);
    free(dir);
    itest_host_clear(&h);
    itest_done();
    return 0;
}
