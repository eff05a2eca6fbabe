/* dns-01 issuance against Pebble, TXT records published through
 * pebble-challtestsrv: one name, a wildcard with its base name in one
 * order (two TXT values on one name), then the stored-certificate calls
 * (list, load, renew). */
#include <string.h>
#include "itest.h"

typedef struct ids {
    int count;
    int saw_single, saw_wild;
} ids;

static int on_id(void *ud, const char *id)
{
    ids *s = ud;
    s->count++;
    if (!strcmp(id, "dns1.example"))
        s->saw_single = 1;
    if (!strcmp(id, "_.wild.example"))
        s->saw_wild = 1;
    return 0;
}

static int on_load(void *ud, const acme_certificate *cert)
{
    char **out = ud;
    *out = itest_strdup(acme_certificate_chain_pem(cert));
    return ACME_OK;
}

int main(void)
{
    static const acme_challenge_type dns[] = {ACME_CHALLENGE_DNS_01};
    itest_init("it_issue_dns");
    itest_host h;
    itest_host_init(&h);
    char *dir = itest_fresh_dir("dns");
    acme_client *c = itest_client(&h, dir);
    itest_register(c, NULL);

    const char *single[] = {"dns1.example"};
    itest_issue one = {.names = single, .name_count = 1, .challenges = dns, .challenge_count = 1};
    itest_issue_checked(c, &h, &one);
    char *first_chain = itest_strdup(h.last.chain_pem);

    /* The wildcard and its base name both validate at
     * _acme-challenge.wild.example: two TXT values on one name. */
    const char *wild[] = {"*.wild.example", "wild.example"};
    int pubs = h.publish_calls;
    itest_issue w = {.names = wild, .name_count = 2, .challenges = dns, .challenge_count = 1};
    itest_issue_checked(c, &h, &w);
    CHECK_MSG(c, h.publish_calls - pubs == 2, "%d publishes for two authorizations",
              h.publish_calls - pubs);
    CHECK(c, h.txt_count == 0);

    /* Both are stored under their ids... */
    ids s = {0};
    CHECK_OK(c, acme_cert_list(c, on_id, &s));
    CHECK_MSG(c, s.count == 2 && s.saw_single && s.saw_wild, "listed %d ids", s.count);
    /* ...and load returns what was installed. */
    char *loaded = NULL;
    CHECK_OK(c, acme_cert_load(c, "dns1.example", on_load, &loaded));
    CHECK(c, loaded && !strcmp(loaded, first_chain));
    free(loaded);
    CHECK_CODE(c, acme_cert_load(c, "never-issued.example", on_load, &loaded), ACME_E_NOT_FOUND);

    /* A fresh certificate is not due; forcing renews it with a new key.
     * Renewal picks challenges itself (the API takes no preferences), so
     * every type is answerable from here on. */
    acme_responder_set set;
    itest_responders_start(&set, 1, 1);
    h.responders = &set;
    int renewed = -1, installs = h.install_calls;
    CHECK_OK(c, acme_renew(c, "dns1.example", 0, &renewed));
    CHECK(c, renewed == 0 && h.install_calls == installs);
    char *old_key = itest_strdup(h.last.key_pem);
    h.types_seen = 0;
    CHECK_OK(c, acme_renew(c, "dns1.example", 1, &renewed));
    CHECK(c, renewed == 1 && h.install_calls == installs + 1);
    CHECK(c, !strcmp(h.last.id, "dns1.example"));
    CHECK(c, strcmp(h.last.chain_pem, first_chain) != 0);
    CHECK_MSG(c, strcmp(h.last.key_pem, old_key) != 0, "renewal reused the certificate key");
    char *root = itest_pebble_root(0);
    const char *why = "";
    CHECK_MSG(c, itest_chain_verifies(h.last.chain_pem, root, &why), "renewed chain: %s", why);
    CHECK(c, itest_key_matches(h.last.chain_pem, h.last.key_pem));
    CHECK(c, itest_leaf_names_are(h.last.chain_pem, single, 1));
    CHECK(c, h.outstanding == 0);
    itest_log("ok: forced renewal of dns1.example (challenge mask %#x)", h.types_seen);
    h.responders = NULL;
    itest_responders_stop(&set);

    acme_client_free(c);
    free(root);
    free(old_key);
    free(first_chain);
    free(dir);
    itest_host_clear(&h);
    itest_done();
    return 0;
}
