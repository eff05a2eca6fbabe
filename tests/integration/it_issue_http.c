/* http-01 issuance against Pebble through the library's own http-01
 * responder on ACME_TEST_HTTP_PORT: one name, three names, an IP address
 * (RFC 8738), each certificate key type; a wildcard cannot use http-01. */
#include <string.h>
#include "itest.h"

int main(void)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    itest_init("it_issue_http");
    itest_host h;
    itest_host_init(&h);
    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    h.responders = &set;
    char *dir = itest_fresh_dir("http");
    acme_client *c = itest_client(&h, dir);
    itest_register(c, "mailto:http@example.com");

    const char *one[] = {"http1.example"};
    itest_issue p1 = {.names = one, .name_count = 1, .challenges = http, .challenge_count = 1};
    itest_issue_checked(c, &h, &p1);

    int pubs = h.publish_calls;
    const char *three[] = {"http-a.example", "http-b.example", "http-c.example"};
    itest_issue p3 = {.names = three, .name_count = 3, .challenges = http, .challenge_count = 1};
    itest_issue_checked(c, &h, &p3);
    CHECK_MSG(c, h.publish_calls - pubs == 3, "%d publishes for three names", h.publish_calls - pubs);

    /* An IP identifier: validated over http-01 on the same responder. */
    const char *ip[] = {"127.0.0.1"};
    itest_issue pip = {.names = ip, .name_count = 1, .challenges = http, .challenge_count = 1};
    itest_issue_checked(c, &h, &pip);

    static const struct { acme_key_type type; const char *name; } keys[] = {
        {ACME_KEY_EC_P256, "p256.example"},
        {ACME_KEY_EC_P384, "p384.example"},
        {ACME_KEY_RSA_2048, "rsa2048.example"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *n[] = {keys[i].name};
        itest_issue pk = {.names = n, .name_count = 1, .key_type = keys[i].type,
                          .challenges = http, .challenge_count = 1};
        itest_issue_checked(c, &h, &pk);
    }

    /* Pebble offers only dns-01 for a wildcard: with http-01 as the only
     * preference there is nothing usable, and nothing is installed. */
    const char *wild[] = {"*.nohttp.example"};
    acme_issue_params pw = {.size = sizeof pw, .names = wild, .name_count = 1,
                            .challenges = http, .challenge_count = 1};
    int installs = h.install_calls;
    CHECK_CODE(c, acme_issue(c, &pw), ACME_E_NO_CHALLENGE);
    CHECK(c, *acme_client_last_error(c));
    CHECK(c, h.install_calls == installs && h.outstanding == 0);
    itest_log("ok: wildcard over http-01 refused: %s", acme_client_last_error(c));

    acme_client_free(c);
    itest_responders_stop(&set);
    free(dir);
    itest_host_clear(&h);
    itest_done();
    return 0;
}
