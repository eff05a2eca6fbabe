/* tls-alpn-01 (RFC 8737) issuance against Pebble through the library's own
 * tls-alpn-01 responder on ACME_TEST_TLS_PORT, tls-alpn-01 as the only
 * preference: one name, two names, and an IP address (RFC 8738). */
#include <string.h>
#include "itest.h"

int main(void)
{
    static const acme_challenge_type alpn[] = {ACME_CHALLENGE_TLS_ALPN_01};
    itest_init("it_issue_alpn");
    itest_host h;
    itest_host_init(&h);
    acme_responder_set set;
    itest_responders_start(&set, 0, 1);
    h.responders = &set;
    char *dir = itest_fresh_dir("alpn");
    acme_client *c = itest_client(&h, dir);
    itest_register(c, NULL);

    const char *one[] = {"alpn1.example"};
    itest_issue p1 = {.names = one, .name_count = 1, .challenges = alpn, .challenge_count = 1};
    itest_issue_checked(c, &h, &p1);
    CHECK(c, h.types_seen == 1u << ACME_CHALLENGE_TLS_ALPN_01);

    /* Two identifiers served at once, told apart by SNI. */
    const char *two[] = {"alpn-a.example", "alpn-b.example"};
    itest_issue p2 = {.names = two, .name_count = 2, .key_type = ACME_KEY_EC_P384,
                      .challenges = alpn, .challenge_count = 1};
    itest_issue_checked(c, &h, &p2);

    /* An IP identifier: the validator's SNI is the reverse-DNS name. */
    const char *ip[] = {"127.0.0.1"};
    itest_issue pip = {.names = ip, .name_count = 1, .key_type = ACME_KEY_RSA_2048,
                       .challenges = alpn, .challenge_count = 1};
    itest_issue_checked(c, &h, &pip);

    acme_client_free(c);
    itest_responders_stop(&set);
    free(dir);
    itest_host_clear(&h);
    itest_done();
    return 0;
}
