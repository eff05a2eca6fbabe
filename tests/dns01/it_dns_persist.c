/* dns-persist-01 and dns-account-01 end to end: libacme (and the dns01
 * module) against tests/integration/dns_persist_ca_standin.py, a stand-in
 * CA that validates by asking a real knotd on loopback (tests/dns01/with-knot).
 *
 *   it_dns_persist MODULE_PATH persist   one record, created once by the
 *       test (knsupdate): refused while absent, refused for another account,
 *       for a wildcard without policy=wildcard and after persistUntil;
 *       issued when right, and again (renewal) with no DNS change; a host
 *       with no publish callback. Then the dns01 module creates a missing
 *       record once over RFC 2136 and leaves it in place.
 *   it_dns_persist MODULE_PATH hashed    (stand-in with --hashed-accounturi,
 *       draft -02) the directory's accountHashPrefix; a record with the
 *       plain account URL refused; the hashed URI for the name and the
 *       domain-independent one ("*") accepted; the module creates the
 *       hashed record.
 *   it_dns_persist MODULE_PATH account   dns-account-01 through the module:
 *       two accounts validate the same name at the same time (one issues
 *       from inside the other's publish) without touching each other's
 *       record; a value at the plain dns-01 name is refused.
 *
 * Records are read with kdig and changed with knsupdate: the test does not
 * trust the module's DNS code, nor libacme's formatting (it spells the
 * expected records out itself). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>

#include "itest.h"

typedef struct phost {
    acme_module *m;          /* publish through the module, or NULL */
    int publish_calls, unpublish_calls, install_calls;
    char *chain, *key;
    char last_name[300], last_value[400];
    /* account mode: issue with this other client from inside publish */
    acme_client *nested;
    struct phost *nested_host;
    const char *nested_name;
    int nested_rc;
    int publish_to_dns01_name; /* the wrong place, by hand */
} phost;

/* ---- DNS through the real tools ------------------------------------------ */

static int txt_lines(const char *name, char *out, size_t outlen)
{
    const char *server = itest_env("DNS01_TEST_SERVER");
    const char *colon = strrchr(server, ':');
    char *cmd = itest_printf("kdig @%.*s -p %s +norec +short +time=2 +retry=1 TXT %s. 2>&1",
                             (int)(colon - server), server, colon + 1, name);
    FILE *p = popen(cmd, "r");
    free(cmd);
    CHECK(NULL, p != NULL);
    char line[1024];
    int n = 0;
    out[0] = '\0';
    while (fgets(line, sizeof(line), p)) {
        if (line[0] != '"')
            continue;
        /* kdig splits long strings: "abc" "def" */
        size_t used = strlen(out);
        for (char *q = line; *q; q++) {
            if (*q == '"' || *q == '\n' || (*q == ' ' && q > line && q[-1] == '"' && q[1] == '"'))
                continue;
            if (used + 2 < outlen)
                out[used++] = *q;
        }
        if (used + 1 < outlen)
            out[used++] = '\n';
        out[used] = '\0';
        n++;
    }
    CHECK_MSG(NULL, pclose(p) == 0, "kdig for %s failed", name);
    return n;
}

static int has_txt(const char *name, const char *value)
{
    char out[8192];
    txt_lines(name, out, sizeof(out));
    char *want = itest_printf("%s\n", value);
    int found = 0;
    for (char *l = out; l && *l && !found;) {
        found = !strncmp(l, want, strlen(want));
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    free(want);
    return found;
}

static void knsupdate(const char *lines)
{
    const char *server = itest_env("DNS01_TEST_SERVER");
    const char *colon = strrchr(server, ':');
    char *cmd = itest_printf("knsupdate -y %s:%s:%s >&2", itest_env("DNS01_TEST_TSIG_ALGORITHM"),
                             itest_env("DNS01_TEST_TSIG_NAME"), itest_env("DNS01_TEST_TSIG_SECRET"));
    FILE *p = popen(cmd, "w");
    free(cmd);
    CHECK(NULL, p != NULL);
    fprintf(p, "server %.*s %s\nzone %s.\n%s\nsend\n", (int)(colon - server), server, colon + 1,
            itest_env("DNS01_TEST_ZONE"), lines);
    CHECK_MSG(NULL, pclose(p) == 0, "knsupdate failed for: %s", lines);
}

/* Replace every TXT at name by value (NULL: none). */
static void set_txt(const char *name, const char *value)
{
    char *lines = value ? itest_printf("del %s. TXT\nadd %s. 60 TXT \"%s\"", name, name, value)
                        : itest_printf("del %s. TXT", name);
    knsupdate(lines);
    free(lines);
    if (value)
        CHECK_MSG(NULL, has_txt(name, value), "knotd does not answer the TXT just set at %s", name);
}

/* ---- host callbacks ---------------------------------------------------------- */

static int issue(acme_client *c, const char *name, acme_challenge_type type);

static int cb_publish(void *ud, const acme_challenge *ch)
{
    phost *h = ud;
    h->publish_calls++;
    snprintf(h->last_name, sizeof(h->last_name), "%s", acme_challenge_dns_name(ch));
    snprintf(h->last_value, sizeof(h->last_value), "%s", acme_challenge_dns_value(ch));
    itest_log("publish %s for %s%s", acme_challenge_type_name(acme_challenge_get_type(ch)),
              acme_challenge_is_wildcard(ch) ? "*." : "", acme_challenge_identifier(ch));
    int rc;
    if (h->publish_to_dns01_name) {
        char *plain = itest_printf("_acme-challenge.%s", acme_challenge_identifier(ch));
        set_txt(plain, acme_challenge_dns_value(ch));
        free(plain);
        rc = ACME_OK;
    } else {
        rc = h->m ? acme_module_publish(h->m, ch) : ACME_OK;
    }
    if (rc == ACME_OK && h->nested) {
        /* The other account validates the same name now, while this
         * account's record is in place. */
        itest_log("second account issues for %s while the first one's record is up", h->nested_name);
        h->nested_rc = issue(h->nested, h->nested_name, ACME_CHALLENGE_DNS_ACCOUNT_01);
        CHECK_MSG(NULL, has_txt(h->last_name, h->last_value),
                  "the second account's validation removed the first one's record at %s", h->last_name);
    }
    return rc;
}

static int cb_unpublish(void *ud, const acme_challenge *ch)
{
    phost *h = ud;
    h->unpublish_calls++;
    return h->m ? acme_module_unpublish(h->m, ch) : ACME_OK;
}

static int cb_install(void *ud, const acme_certificate *cert)
{
    phost *h = ud;
    h->install_calls++;
    free(h->chain);
    free(h->key);
    h->chain = itest_strdup(acme_certificate_chain_pem(cert));
    h->key = itest_strdup(acme_certificate_key_pem(cert));
    return ACME_OK;
}

static void cb_log(void *ud, acme_log_level level, const char *msg)
{
    (void)ud;
    if (level <= ACME_LOG_INFO || getenv("ITEST_DEBUG"))
        itest_log("libacme: %s", msg);
}

static acme_client *client(phost *h, const char *label, int with_publish)
{
    char *dir = itest_fresh_dir(label);
    acme_host_callbacks cb = {
        .size = sizeof(cb),
        .publish = with_publish ? cb_publish : NULL,
        .unpublish = with_publish ? cb_unpublish : NULL,
        .install = cb_install,
        .log = cb_log,
    };
    acme_client *c = itest_client_with(&cb, h, dir, itest_env("ACME_TEST_DIRECTORY"), itest_env("ACME_TEST_CA_FILE"));
    free(dir);
    itest_register(c, NULL);
    return c;
}

static void load(acme_client *c, phost *h, const char *path)
{
    char *cfg = itest_printf("resolver = %s\nnameserver-port = %s\npropagation-timeout = 30\n"
                             "propagation-interval = 100\ndns-timeout = 1000\nbackend = rfc2136\nserver = %s\n"
                             "tsig-key-name = %s\ntsig-algorithm = %s\ntsig-secret = %s\nttl = 5\n",
                             itest_env("DNS01_TEST_SERVER"), itest_env("DNS01_TEST_PORT"),
                             itest_env("DNS01_TEST_SERVER"), itest_env("DNS01_TEST_TSIG_NAME"),
                             itest_env("DNS01_TEST_TSIG_ALGORITHM"), itest_env("DNS01_TEST_TSIG_SECRET"));
    CHECK_OK(c, acme_module_load(c, path, cfg, &h->m));
    free(cfg);
    CHECK(c, acme_module_handles(h->m, ACME_CHALLENGE_DNS_PERSIST_01));
    CHECK(c, acme_module_handles(h->m, ACME_CHALLENGE_DNS_ACCOUNT_01));
}

static int issue(acme_client *c, const char *name, acme_challenge_type type)
{
    const char *names[] = {name};
    acme_issue_params p = {
        .size = sizeof(p),
        .names = names,
        .name_count = 1,
        .challenges = &type,
        .challenge_count = 1,
    };
    return acme_issue(c, &p);
}

static void issued_ok(acme_client *c, phost *h, const char *name, int installs_before)
{
    CHECK(c, h->install_calls == installs_before + 1);
    char *root = itest_pebble_root(0);
    const char *why = "";
    CHECK_MSG(c, itest_chain_verifies(h->chain, root, &why), "chain: %s", why);
    CHECK(c, itest_key_matches(h->chain, h->key));
    const char *names[] = {name};
    CHECK(c, itest_leaf_names_are(h->chain, names, 1));
    free(root);
    itest_log("ok: certificate for %s", name);
}

static void refused(acme_client *c, phost *h, const char *name, acme_challenge_type type, const char *detail_word)
{
    int installs = h->install_calls;
    CHECK_CODE(c, issue(c, name, type), ACME_E_CHALLENGE_FAILED);
    CHECK(c, h->install_calls == installs);
    const acme_problem *p = acme_client_problem(c);
    CHECK_MSG(c, p && itest_streq(acme_problem_type(p), "urn:ietf:params:acme:error:unauthorized"),
              "problem type %s", p ? acme_problem_type(p) : "(none)");
    CHECK_MSG(c, strstr(acme_problem_detail(p), detail_word), "detail \"%s\" lacks \"%s\"", acme_problem_detail(p),
              detail_word);
    const char *e = acme_client_last_error(c);
    CHECK_MSG(c, e && strstr(e, type == ACME_CHALLENGE_DNS_PERSIST_01 ? "dns-persist-01" : "dns-account-01"),
              "the error does not name the type: %s", e ? e : "");
    itest_log("ok: refused for %s (%s)", name, detail_word);
}

/* ---- modes ------------------------------------------------------------------ */

static void mode_persist(const char *module)
{
    const char *issuer = itest_env("ACME_TEST_ISSUER_DOMAIN");
    phost h = {0}, other_h = {0};
    /* No publish callback: the record is the owner's business. */
    acme_client *c = client(&h, "persist", 0);
    acme_client *other = client(&other_h, "persist-other", 0);
    const char *acct = acme_account_url(c);
    CHECK(c, acme_directory_issuer_domain_count(c) == 1);
    CHECK(c, itest_streq(acme_directory_issuer_domain(c, 0), issuer));

    const char *name = "dev.acme.test", *rr = "_validation-persist.dev.acme.test";
    set_txt(rr, NULL);
    refused(c, &h, name, ACME_CHALLENGE_DNS_PERSIST_01, "No TXT record");

    /* What the owner creates, spelled out here, not by libacme. */
    char *right = itest_printf("%s; accounturi=%s", issuer, acct);
    acme_buffer *b = acme_buffer_new();
    CHECK_OK(c, acme_dns_persist_value(issuer, acct, 0, 0, b));
    CHECK_MSG(c, itest_streq(acme_buffer_data(b), right), "libacme formats \"%s\"", acme_buffer_data(b));
    acme_buffer_free(b);

    char *other_acct = itest_printf("%s; accounturi=%s", issuer, acme_account_url(other));
    set_txt(rr, other_acct);
    refused(c, &h, name, ACME_CHALLENGE_DNS_PERSIST_01, "accounturi");
    char *wrong_ca = itest_printf("other-ca.example; accounturi=%s", acct);
    set_txt(rr, wrong_ca);
    refused(c, &h, name, ACME_CHALLENGE_DNS_PERSIST_01, "issuer-domain-name");
    char *expired = itest_printf("%s; accounturi=%s; persistUntil=%lld", issuer, acct, (long long)time(NULL) - 60);
    set_txt(rr, expired);
    refused(c, &h, name, ACME_CHALLENGE_DNS_PERSIST_01, "persistUntil");

    set_txt(rr, right);
    int installs = h.install_calls;
    CHECK_OK(c, issue(c, name, ACME_CHALLENGE_DNS_PERSIST_01));
    issued_ok(c, &h, name, installs);
    /* The renewal: the same record, untouched, issues again. */
    installs = h.install_calls;
    CHECK_OK(c, issue(c, name, ACME_CHALLENGE_DNS_PERSIST_01));
    issued_ok(c, &h, name, installs);
    CHECK(c, has_txt(rr, right));
    /* The other account is still refused by this record. */
    refused(other, &other_h, name, ACME_CHALLENGE_DNS_PERSIST_01, "accounturi");

    /* A wildcard needs policy=wildcard. */
    refused(c, &h, "*.dev.acme.test", ACME_CHALLENGE_DNS_PERSIST_01, "policy");
    char *wild = itest_printf("%s; accounturi=%s; policy=wildcard; persistUntil=%lld", issuer, acct,
                              (long long)time(NULL) + 86400);
    set_txt(rr, wild);
    installs = h.install_calls;
    CHECK_OK(c, issue(c, "*.dev.acme.test", ACME_CHALLENGE_DNS_PERSIST_01));
    issued_ok(c, &h, "*.dev.acme.test", installs);

    /* The dns01 module creates a missing record once, over RFC 2136. */
    phost mh = {0};
    acme_client *mc = client(&mh, "persist-module", 1);
    load(mc, &mh, module);
    const char *mname = "device.acme.test", *mrr = "_validation-persist.device.acme.test";
    set_txt(mrr, NULL);
    installs = mh.install_calls;
    CHECK_OK(mc, issue(mc, mname, ACME_CHALLENGE_DNS_PERSIST_01));
    issued_ok(mc, &mh, mname, installs);
    char *made = itest_printf("%s; accounturi=%s", issuer, acme_account_url(mc));
    CHECK_MSG(mc, itest_streq(mh.last_value, made), "the module was handed \"%s\"", mh.last_value);
    CHECK_MSG(mc, has_txt(mrr, made), "the module's record is not (or no longer) at %s", mrr);
    CHECK(mc, mh.unpublish_calls == mh.publish_calls);
    /* Found the second time: no update; the serial of the zone says so. */
    char before[256], after[256];
    char *soa = itest_printf("%s", itest_env("DNS01_TEST_ZONE"));
    {
        const char *server = itest_env("DNS01_TEST_SERVER");
        const char *colon = strrchr(server, ':');
        char *cmd = itest_printf("kdig @%.*s -p %s +norec +short SOA %s.", (int)(colon - server), server,
                                 colon + 1, soa);
        FILE *p = popen(cmd, "r");
        CHECK(NULL, p && fgets(before, sizeof(before), p));
        pclose(p);
        installs = mh.install_calls;
        CHECK_OK(mc, issue(mc, mname, ACME_CHALLENGE_DNS_PERSIST_01));
        issued_ok(mc, &mh, mname, installs);
        p = popen(cmd, "r");
        CHECK(NULL, p && fgets(after, sizeof(after), p));
        pclose(p);
        free(cmd);
    }
    CHECK_MSG(mc, itest_streq(before, after), "the zone changed on the second issuance: %s -> %s", before, after);
    char lines[8192];
    CHECK_MSG(mc, txt_lines(mrr, lines, sizeof(lines)) == 1, "more than one record at %s:\n%s", mrr, lines);

    free(soa);
    free(made);
    acme_module_free(mh.m);
    acme_client_free(mc);
    free(right);
    free(other_acct);
    free(wrong_ca);
    free(expired);
    free(wild);
    acme_client_free(c);
    acme_client_free(other);
    free(h.chain);
    free(h.key);
    free(mh.chain);
    free(mh.key);
    free(other_h.chain);
    free(other_h.key);
}

static char *b64url_of(const unsigned char *d, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = itest_printf("%*s", (int)(n * 4 / 3 + 4), "");
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        out[o++] = al[(v >> 18) & 63];
        out[o++] = al[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = al[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = al[v & 63];
    }
    out[o] = '\0';
    return out;
}

/* draft -02 §4.1, spelled out here: prefix "sha-256/" base64url(SHA-256(
 * len(domain) || domain || thumbprint || account URL)). */
static char *hashed(const char *prefix, const char *domain, const char *thumb, const char *url)
{
    char *in = itest_printf("%c%s%s%s", (char)strlen(domain), domain, thumb, url);
    unsigned char d[32];
    CHECK(NULL, gnutls_hash_fast(GNUTLS_DIG_SHA256, in, strlen(in), d) == 0);
    char *b = b64url_of(d, 32);
    char *out = itest_printf("%ssha-256/%s", prefix, b);
    free(in);
    free(b);
    return out;
}

static void mode_hashed(const char *module)
{
    const char *issuer = itest_env("ACME_TEST_ISSUER_DOMAIN");
    phost h = {0};
    acme_client *c = client(&h, "hashed", 0);
    const char *prefix = acme_directory_account_hash_prefix(c);
    CHECK_MSG(c, prefix && strstr(prefix, "/account-hash/"), "accountHashPrefix: %s", prefix ? prefix : "(none)");
    const char *acct = acme_account_url(c), *thumb = acme_account_thumbprint(c);
    const char *name = "hdev.acme.test", *rr = "_validation-persist.hdev.acme.test";

    char *plain = itest_printf("%s; accounturi=%s", issuer, acct);
    set_txt(rr, plain);
    refused(c, &h, name, ACME_CHALLENGE_DNS_PERSIST_01, "accounturi");

    char *uri = hashed(prefix, name, thumb, acct);
    acme_buffer *b = acme_buffer_new();
    CHECK_OK(c, acme_dns_persist_hashed_uri(prefix, name, thumb, acct, b));
    CHECK_MSG(c, itest_streq(acme_buffer_data(b), uri), "libacme hashes to %s, not %s", acme_buffer_data(b), uri);
    acme_buffer_free(b);
    char *right = itest_printf("%s; accounturi=%s", issuer, uri);
    set_txt(rr, right);
    int installs = h.install_calls;
    CHECK_OK(c, issue(c, name, ACME_CHALLENGE_DNS_PERSIST_01));
    issued_ok(c, &h, name, installs);

    /* The domain-independent form works for any name. */
    char *any = hashed(prefix, "*", thumb, acct);
    char *anyrec = itest_printf("%s; accounturi=%s", issuer, any);
    set_txt(rr, anyrec);
    installs = h.install_calls;
    CHECK_OK(c, issue(c, name, ACME_CHALLENGE_DNS_PERSIST_01));
    issued_ok(c, &h, name, installs);

    /* The module creates the hashed record. */
    phost mh = {0};
    acme_client *mc = client(&mh, "hashed-module", 1);
    load(mc, &mh, module);
    const char *mname = "hdevice.acme.test", *mrr = "_validation-persist.hdevice.acme.test";
    set_txt(mrr, NULL);
    installs = mh.install_calls;
    CHECK_OK(mc, issue(mc, mname, ACME_CHALLENGE_DNS_PERSIST_01));
    issued_ok(mc, &mh, mname, installs);
    char *muri = hashed(prefix, mname, acme_account_thumbprint(mc), acme_account_url(mc));
    char *made = itest_printf("%s; accounturi=%s", issuer, muri);
    CHECK_MSG(mc, itest_streq(mh.last_value, made), "the module was handed \"%s\", not \"%s\"", mh.last_value, made);
    CHECK_MSG(mc, has_txt(mrr, made), "the module's record is not at %s", mrr);

    free(muri);
    free(made);
    free(any);
    free(anyrec);
    free(plain);
    free(uri);
    free(right);
    acme_module_free(mh.m);
    acme_client_free(mc);
    acme_client_free(c);
    free(h.chain);
    free(h.key);
    free(mh.chain);
    free(mh.key);
}

static char *label_of(const char *url)
{
    unsigned char d[32];
    CHECK(NULL, gnutls_hash_fast(GNUTLS_DIG_SHA256, url, strlen(url), d) == 0);
    char *out = itest_printf("_%16s", "");
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int k = 0; k < 5; k++) {
            int bit = i * 5 + k;
            v = v << 1 | ((d[bit / 8] >> (7 - bit % 8)) & 1);
        }
        out[1 + i] = "abcdefghijklmnopqrstuvwxyz234567"[v];
    }
    return out;
}

static void mode_account(const char *module)
{
    phost a = {0}, b = {0};
    acme_client *ca = client(&a, "account-a", 1);
    acme_client *cb = client(&b, "account-b", 1);
    load(ca, &a, module);
    load(cb, &b, module);
    const char *name = "shared.acme.test";
    a.nested = cb;
    a.nested_host = &b;
    a.nested_name = name;
    a.nested_rc = -1;
    int installs = a.install_calls;
    CHECK_OK(ca, issue(ca, name, ACME_CHALLENGE_DNS_ACCOUNT_01));
    CHECK_MSG(cb, b.install_calls == 1 && b.nested_rc == ACME_OK, "the second account's issuance: %s",
              acme_strerror(b.nested_rc));
    issued_ok(ca, &a, name, installs);
    issued_ok(cb, &b, name, 0);
    /* Each at its own label, spelled out here. */
    char *la = label_of(acme_account_url(ca)), *lb = label_of(acme_account_url(cb));
    char *na = itest_printf("%s._acme-challenge.%s", la, name), *nb = itest_printf("%s._acme-challenge.%s", lb, name);
    CHECK_MSG(ca, itest_streq(a.last_name, na), "account A published at %s, not %s", a.last_name, na);
    CHECK_MSG(cb, itest_streq(b.last_name, nb), "account B published at %s, not %s", b.last_name, nb);
    CHECK(ca, strcmp(na, nb) != 0);
    char lines[4096];
    CHECK_MSG(ca, txt_lines(na, lines, sizeof(lines)) == 0, "left behind at %s", na);
    CHECK_MSG(cb, txt_lines(nb, lines, sizeof(lines)) == 0, "left behind at %s", nb);

    /* The value at the dns-01 name is not at the account's name. */
    a.nested = NULL;
    a.publish_to_dns01_name = 1;
    refused(ca, &a, "wrong.acme.test", ACME_CHALLENGE_DNS_ACCOUNT_01, "No TXT record");
    set_txt("_acme-challenge.wrong.acme.test", NULL);

    free(la);
    free(lb);
    free(na);
    free(nb);
    acme_module_free(a.m);
    acme_module_free(b.m);
    acme_client_free(ca);
    acme_client_free(cb);
    free(a.chain);
    free(a.key);
    free(b.chain);
    free(b.key);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: it_dns_persist MODULE_PATH persist|hashed|account\n");
        return 2;
    }
    itest_init(!strcmp(argv[2], "persist") ? "it_dns_persist"
               : !strcmp(argv[2], "hashed") ? "it_dns_persist_hashed" : "it_dns_account");
    if (!strcmp(argv[2], "persist"))
        mode_persist(argv[1]);
    else if (!strcmp(argv[2], "hashed"))
        mode_hashed(argv[1]);
    else if (!strcmp(argv[2], "account"))
        mode_account(argv[1]);
    else
        return 2;
    itest_done();
    return 0;
}
