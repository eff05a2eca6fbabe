/* Trust on small devices against Pebble (doc/api.md, "Trust on small
 * devices"). Pebble's listener serves a leaf issued by the harness's
 * throwaway CA and not that CA itself, so a client that trusts nothing
 * must get the root from somewhere:
 *
 *  - pinned sets: several roots in one PEM blob or file, in any order;
 *  - the trust-anchor lookup: returns the right root (issuance works, a
 *    second connection needs no lookup, the TTL ends the binding), a wrong
 *    root (refused, with a sentence; nothing cached), declines (the
 *    verification failure as without a lookup).
 *
 * With argv "lying URL" it runs the lying-AKID case against the TLS
 * stand-in of lying_akid_standin.sh instead. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "ttest.h"

static char *cat3(const char *a, const char *b, const char *c)
{
    return itest_printf("%s%s%s", a, b, c ? c : "");
}

static acme_client *client_no_trust(itest_host *h, const char *label, const char *url)
{
    char *dir = itest_fresh_dir(label);
    acme_client *c = itest_client_at(h, dir, url, NULL);
    free(dir);
    return c;
}

static void pinned_sets(const char *listener_ca, const char *root0, const char *root1)
{
    const char *url = itest_env("ACME_TEST_DIRECTORY");
    itest_host h;
    itest_host_init(&h);

    /* Several roots in one blob, the listener's in the middle or first. */
    char *blob = cat3(root0, listener_ca, root1);
    acme_client *c = client_no_trust(&h, "pin-blob", url);
    CHECK_OK(c, acme_client_set_ca_pem(c, blob, strlen(blob)));
    CHECK_OK(c, acme_directory_fetch(c));
    acme_client_free(c);

    char *blob2 = cat3(listener_ca, root1, root0);
    c = client_no_trust(&h, "pin-blob2", url);
    CHECK_OK(c, acme_client_set_ca_pem(c, blob2, strlen(blob2)));
    CHECK_OK(c, acme_directory_fetch(c));
    acme_client_free(c);

    /* The same blob as a file. */
    char *path = itest_printf("%s/roots.pem", itest_env("ACME_TEST_TMPDIR"));
    FILE *f = fopen(path, "w");
    CHECK(NULL, f && fputs(blob, f) >= 0 && fclose(f) == 0);
    c = client_no_trust(&h, "pin-file", url);
    CHECK_OK(c, acme_client_set_ca_file(c, path));
    CHECK_OK(c, acme_directory_fetch(c));
    acme_client_free(c);

    /* A set without the listener's root is refused. */
    char *others = cat3(root0, root1, NULL);
    c = client_no_trust(&h, "pin-others", url);
    CHECK_OK(c, acme_client_set_ca_pem(c, others, strlen(others)));
    CHECK_CODE(c, acme_directory_fetch(c), ACME_E_TLS);
    char *without = itest_strdup(acme_client_last_error(c));
    acme_client_free(c);

    /* The same set with a lookup that declines: the same sentence, after
     * exactly one question. */
    ttest_lookup l = {.decline = 1};
    c = client_no_trust(&h, "pin-decline", url);
    CHECK_OK(c, acme_client_set_ca_pem(c, others, strlen(others)));
    ttest_set_lookup(c, &l, 0, 0);
    CHECK_CODE(c, acme_directory_fetch(c), ACME_E_TLS);
    CHECK_MSG(c, !strcmp(acme_client_last_error(c), without),
              "declined: \"%s\", without a lookup: \"%s\"", acme_client_last_error(c), without);
    CHECK_MSG(c, l.calls == 1, "%d lookups", l.calls);
    acme_client_free(c);
    itest_log("pinned sets: ok; refused as \"%s\"", without);

    ttest_lookup_clear(&l);
    itest_host_clear(&h);
    free(blob);
    free(blob2);
    free(others);
    free(without);
    free(path);
}

static void lookup_cases(const char *listener_ca, const char *root0, const char *root1)
{
    const char *url = itest_env("ACME_TEST_DIRECTORY");
    unsigned char skid[64];
    size_t skid_len = ttest_skid(listener_ca, skid, sizeof skid);
    /* "127.0.0.1:P" from https://127.0.0.1:P/dir */
    char *hostport = itest_strdup(url + 8);
    *strchr(hostport, '/') = '\0';
    char *flash = cat3(root0, root1, listener_ca); /* the device's trust blob */

    /* Nothing trusted, the lookup declines: refused. */
    itest_host h;
    itest_host_init(&h);
    ttest_lookup dl = {.decline = 1};
    acme_client *c = client_no_trust(&h, "decline", url);
    ttest_set_lookup(c, &dl, 0, 0);
    CHECK_CODE(c, acme_directory_fetch(c), ACME_E_TLS);
    CHECK_MSG(c, strstr(acme_client_last_error(c), "certificate"), "\"%s\"", acme_client_last_error(c));
    CHECK(c, dl.calls == 1);
    /* What it was shown: the leaf Pebble serves, naming its root by AKID. */
    CHECK_MSG(c, itest_streq(dl.last_host, hostport), "host %s", dl.last_host);
    CHECK_MSG(c, dl.last_count == 1, "%zu certificates shown", dl.last_count);
    CHECK_MSG(c, strstr(dl.last_leaf_subject, "CN=localhost"), "leaf %s", dl.last_leaf_subject);
    CHECK(c, dl.last_akid_len == skid_len && !memcmp(dl.last_akid, skid, skid_len));
    acme_client_free(c);

    /* A wrong root (a real CA, but not this server's): refused with a
     * sentence, and not remembered: the next request asks again. */
    ttest_lookup wl = {.fixed = root0};
    c = client_no_trust(&h, "wrong", url);
    ttest_set_lookup(c, &wl, 0, 0);
    CHECK_CODE(c, acme_directory_fetch(c), ACME_E_TLS);
    const char *e = acme_client_last_error(c);
    CHECK_MSG(c, strstr(e, "does not verify the server's chain") && strstr(e, "not trusted"), "\"%s\"", e);
    itest_log("wrong root refused: %s", e);
    CHECK_CODE(c, acme_directory_fetch(c), ACME_E_TLS);
    CHECK_MSG(c, wl.calls == 2, "%d lookups for two refused requests", wl.calls);
    acme_client_free(c);

    /* A lookup that answers OK with no certificate, or fails: refused,
     * each with its own sentence. */
    ttest_lookup junk = {.fixed = "no certificate here\n"};
    c = client_no_trust(&h, "junk", url);
    ttest_set_lookup(c, &junk, 0, 0);
    CHECK_CODE(c, acme_directory_fetch(c), ACME_E_TLS);
    CHECK_MSG(c, strstr(acme_client_last_error(c), "returned no PEM certificate"), "\"%s\"",
              acme_client_last_error(c));
    acme_client_free(c);
    ttest_lookup broken = {.fail = ACME_E_STORAGE};
    c = client_no_trust(&h, "broken", url);
    ttest_set_lookup(c, &broken, 0, 0);
    CHECK_CODE(c, acme_directory_fetch(c), ACME_E_TLS);
    CHECK_MSG(c, strstr(acme_client_last_error(c), "trust-anchor lookup failed"), "\"%s\"",
              acme_client_last_error(c));
    acme_client_free(c);
    ttest_lookup_clear(&junk);
    ttest_lookup_clear(&broken);

    /* Nothing trusted, the lookup finds the root in the flash blob:
     * register and issue, with one lookup for the whole issuance. */
    ttest_lookup gl = {.blob = flash, .blob_len = strlen(flash)};
    c = client_no_trust(&h, "good", url);
    ttest_set_lookup(c, &gl, 0, 0);
    itest_register(c, NULL);
    CHECK_MSG(c, gl.calls == 1 && gl.last_found, "%d lookups, found %d", gl.calls, gl.last_found);
    const char *names[] = {"trust1.example"};
    itest_issue is = {.names = names, .name_count = 1};
    itest_issue_checked(c, &h, &is);
    CHECK_MSG(c, gl.calls == 1, "%d lookups after one issuance", gl.calls);
    /* A new transport is a new connection (new handshake): the binding
     * answers it, no lookup. */
    CHECK_OK(c, acme_client_set_timeouts(c, 0, 0));
    const char *names2[] = {"trust2.example"};
    itest_issue is2 = {.names = names2, .name_count = 1};
    itest_issue_checked(c, &h, &is2);
    CHECK_MSG(c, gl.calls == 1, "%d lookups after a second connection", gl.calls);
    acme_client_free(c);

    /* The binding lasts its TTL: after it, a new connection asks again. */
    ttest_lookup tl = {.blob = flash, .blob_len = strlen(flash)};
    c = client_no_trust(&h, "ttl", url);
    ttest_set_lookup(c, &tl, 0, 1);
    CHECK_OK(c, acme_directory_fetch(c));
    CHECK(c, tl.calls == 1);
    CHECK_OK(c, acme_client_set_timeouts(c, 0, 0));
    usleep(1200 * 1000);
    itest_register(c, NULL);
    CHECK_MSG(c, tl.calls == 2, "%d lookups after the TTL ran out", tl.calls);
    acme_client_free(c);
    itest_log("lookup: declined, wrong root, right root (1 lookup for 2 issuances), TTL: ok");

    ttest_lookup_clear(&dl);
    ttest_lookup_clear(&wl);
    ttest_lookup_clear(&gl);
    ttest_lookup_clear(&tl);
    itest_host_clear(&h);
    free(flash);
    free(hostport);
}

/* The stand-in serves a leaf whose AKID is the real root's SKID, signed by
 * another key. The lookup, shown that AKID, returns the real root: libacme
 * must find that the root does not sign the leaf, refuse, and cache nothing. */
static void lying(const char *url, const char *real_root)
{
    unsigned char skid[64];
    size_t skid_len = ttest_skid(real_root, skid, sizeof skid);
    itest_host h;
    itest_host_init(&h);
    ttest_lookup l = {.blob = real_root, .blob_len = strlen(real_root)};
    acme_client *c = client_no_trust(&h, "lying", url);
    ttest_set_lookup(c, &l, 0, 0);
    CHECK_CODE(c, acme_directory_fetch(c), ACME_E_TLS);
    CHECK_MSG(c, l.calls == 1 && l.last_found, "%d lookups, found %d", l.calls, l.last_found);
    CHECK_MSG(c, l.last_akid_len == skid_len && !memcmp(l.last_akid, skid, skid_len),
              "the stand-in's leaf should claim the real root's SKID");
    const char *e = acme_client_last_error(c);
    CHECK_MSG(c, strstr(e, "does not verify the server's chain") && strstr(e, "not trusted"), "\"%s\"", e);
    itest_log("lying AKID refused: %s", e);
    CHECK_CODE(c, acme_directory_fetch(c), ACME_E_TLS);
    CHECK_MSG(c, l.calls == 2, "%d lookups: a refused root must not be cached", l.calls);
    acme_client_free(c);
    ttest_lookup_clear(&l);
    itest_host_clear(&h);
}

int main(int argc, char **argv)
{
    itest_init("it_trust");
    char *listener_ca = ttest_read_file(itest_env("ACME_TEST_CA_FILE"), NULL);
    if (argc == 3 && !strcmp(argv[1], "lying")) {
        lying(argv[2], listener_ca);
    } else {
        char *root0 = itest_pebble_root(0); /* issuance roots: real CAs, not the listener's */
        char *root1 = itest_pebble_root(1);
        pinned_sets(listener_ca, root0, root1);
        lookup_cases(listener_ca, root0, root1);
        free(root0);
        free(root1);
    }
    free(listener_ca);
    itest_done();
    return 0;
}
