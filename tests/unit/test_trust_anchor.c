/* The trust-anchor lookup's pure parts (libacme/trust_anchor.c): reading
 * SKID and AKID from what a server sent, the full verification with one
 * root, picking roots out of a trust blob, and the host -> root cache
 * (bound, TTL, replacement, entries held by a call). Certificates are
 * minted here with gnutls so every identifier has a known value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <acme/acme.h>

#include "buf.h"
#include "trust_anchor.h"

typedef struct cert {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    char *pem;
} cert;

static const unsigned char ROOT_SKID[20] = {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa,
                                            0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3, 0xb4};
static const unsigned char OTHER_SKID[20] = {0x01, 0x02, 0x03};
static const unsigned char LEAF_SKID[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};

static char *to_pem(gnutls_x509_crt_t crt)
{
    gnutls_datum_t d = {NULL, 0};
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
    char *s = malloc(d.size + 1);
    memcpy(s, d.data, d.size);
    s[d.size] = '\0';
    gnutls_free(d.data);
    return s;
}

typedef struct spec {
    const char *dn;
    int ca;
    const unsigned char *skid;     /* NULL: no SKID extension */
    size_t skid_len;
    const unsigned char *akid;     /* NULL: none */
    size_t akid_len;
    const char *dns;               /* SAN, leaf only */
    int client_only;               /* clientAuth instead of serverAuth */
    time_t not_after;              /* 0: a day from now */
} spec;

/* issuer NULL: self-signed. */
static void mint(cert *c, const spec *s, const cert *issuer)
{
    assert_int_equal(gnutls_x509_privkey_init(&c->key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(c->key, GNUTLS_PK_ECDSA,
                                                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
    assert_int_equal(gnutls_x509_crt_init(&c->crt), 0);
    time_t now = time(NULL);
    gnutls_x509_crt_t crt = c->crt;
    assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
    unsigned char serial[4] = {0x10, (unsigned char)(rand() & 0x7f), 0x20, 0x30};
    assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, sizeof serial), 0);
    assert_int_equal(gnutls_x509_crt_set_dn(crt, s->dn, NULL), 0);
    assert_int_equal(gnutls_x509_crt_set_key(crt, c->key), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 7200), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, s->not_after ? s->not_after : now + 86400), 0);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, s->ca, -1), 0);
    assert_int_equal(gnutls_x509_crt_set_key_usage(crt, s->ca ? GNUTLS_KEY_KEY_CERT_SIGN
                                                             : GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
    if (s->skid)
        assert_int_equal(gnutls_x509_crt_set_subject_key_id(crt, s->skid, s->skid_len), 0);
    if (s->akid)
        assert_int_equal(gnutls_x509_crt_set_authority_key_id(crt, s->akid, s->akid_len), 0);
    if (s->dns) {
        assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, s->dns,
                                                              (unsigned)strlen(s->dns), GNUTLS_FSAN_APPEND), 0);
        assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(
                             crt, s->client_only ? GNUTLS_KP_TLS_WWW_CLIENT : GNUTLS_KP_TLS_WWW_SERVER, 0), 0);
    }
    const cert *by = issuer ? issuer : c;
    assert_int_equal(gnutls_x509_crt_sign2(crt, by->crt, by->key, GNUTLS_DIG_SHA256, 0), 0);
    c->pem = to_pem(crt);
}

static void cert_free(cert *c)
{
    gnutls_x509_crt_deinit(c->crt);
    gnutls_x509_privkey_deinit(c->key);
    free(c->pem);
}

/* root (ROOT_SKID) -> leaf for device.example (AKID ROOT_SKID, LEAF_SKID);
 * other: an unrelated root; impostor: self-signed with ROOT_SKID, another key. */
typedef struct world {
    cert root, other, impostor, leaf, liar, expired, client_leaf, bare;
} world;

static int setup(void **state)
{
    world *w = calloc(1, sizeof(*w));
    spec root = {.dn = "CN=Device Root R1,O=libacme test", .ca = 1, .skid = ROOT_SKID, .skid_len = 20};
    spec other = {.dn = "CN=Other Root,O=libacme test", .ca = 1, .skid = OTHER_SKID, .skid_len = 20};
    spec imp = root; /* the same name and identifier: only the key differs */
    spec leaf = {.dn = "CN=device.example", .skid = LEAF_SKID, .skid_len = 8, .akid = ROOT_SKID,
                 .akid_len = 20, .dns = "device.example"};
    spec expired = leaf;
    expired.not_after = time(NULL) - 3600;
    spec client = leaf;
    client.client_only = 1;
    spec bare = {.dn = "CN=bare.example", .dns = "bare.example"}; /* no SKID, no AKID */
    mint(&w->root, &root, NULL);
    mint(&w->other, &other, NULL);
    mint(&w->impostor, &imp, NULL);
    mint(&w->leaf, &leaf, &w->root);
    mint(&w->liar, &leaf, &w->impostor); /* claims ROOT_SKID, signed by the impostor */
    mint(&w->expired, &expired, &w->root);
    mint(&w->client_leaf, &client, &w->root);
    mint(&w->bare, &bare, &w->root);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    cert *all[] = {&w->root, &w->other, &w->impostor, &w->leaf, &w->liar, &w->expired, &w->client_leaf, &w->bare};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        cert_free(all[i]);
    free(w);
    return 0;
}

static acme_trust_chain *chain_of(const char *host, const char *const *pems, size_t n)
{
    acme_trust_chain *ch = NULL;
    assert_int_equal(trust_chain_new(host, pems, n, &ch), ACME_OK);
    return ch;
}

static void test_ids_extracted(void **state)
{
    world *w = *state;
    const char *pems[] = {w->leaf.pem, w->root.pem, w->bare.pem};
    acme_trust_chain *ch = chain_of("device.example:443", pems, 3);
    assert_string_equal(acme_trust_chain_host(ch), "device.example:443");
    assert_int_equal(acme_trust_chain_count(ch), 3);
    assert_string_equal(acme_trust_chain_subject(ch, 0), "CN=device.example");
    assert_string_equal(acme_trust_chain_issuer(ch, 0), "CN=Device Root R1,O=libacme test");
    size_t n = 99;
    const unsigned char *id = acme_trust_chain_skid(ch, 0, &n);
    assert_int_equal(n, 8);
    assert_memory_equal(id, LEAF_SKID, 8);
    id = acme_trust_chain_akid(ch, 0, &n);
    assert_int_equal(n, 20);
    assert_memory_equal(id, ROOT_SKID, 20);
    /* The root: its SKID is what the leaf's AKID names. */
    id = acme_trust_chain_skid(ch, 1, &n);
    assert_int_equal(n, 20);
    assert_memory_equal(id, ROOT_SKID, 20);
    /* No identifiers at all: NULL and 0, not garbage. */
    assert_null(acme_trust_chain_skid(ch, 2, &n));
    assert_int_equal(n, 0);
    assert_null(acme_trust_chain_akid(ch, 2, &n));
    assert_int_equal(n, 0);
    /* Past the end, and NULL handles. */
    assert_null(acme_trust_chain_subject(ch, 3));
    assert_null(acme_trust_chain_akid(ch, 3, NULL));
    assert_int_equal(acme_trust_chain_count(NULL), 0);
    assert_null(acme_trust_chain_host(NULL));
    trust_chain_free(ch);
}

static void test_chain_input_bounds(void **state)
{
    world *w = *state;
    /* Garbage among certificates is skipped; only garbage fails. */
    const char *mixed[] = {"not a certificate", w->leaf.pem, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"};
    acme_trust_chain *ch = chain_of("h:1", mixed, 3);
    assert_int_equal(acme_trust_chain_count(ch), 1);
    assert_string_equal(acme_trust_chain_subject(ch, 0), "CN=device.example");
    trust_chain_free(ch);
    const char *junk[] = {"junk", ""};
    assert_int_equal(trust_chain_new("h:1", junk, 2, &ch), ACME_E_CRYPTO);
    assert_null(ch);
    /* A server sending many certificates: at most TRUST_MAX_LINKS read. */
    const char *many[20];
    for (size_t i = 0; i < 20; i++)
        many[i] = w->root.pem;
    ch = chain_of("h:1", many, 20);
    assert_int_equal(acme_trust_chain_count(ch), TRUST_MAX_LINKS);
    trust_chain_free(ch);
}

static int verify(const char *leaf, const char *roots, const char *host, char **why)
{
    const char *pems[] = {leaf};
    acme_trust_chain *ch = chain_of("x:443", pems, 1);
    int rc = trust_chain_verify(ch, roots, roots ? strlen(roots) : 0, host, why);
    trust_chain_free(ch);
    return rc;
}

static void test_verify_full(void **state)
{
    world *w = *state;
    char *why = NULL;
    assert_int_equal(verify(w->leaf.pem, w->root.pem, "device.example", &why), ACME_OK);
    assert_null(why);
    /* Several roots returned (a cross-sign): any of them may anchor. */
    char *two = malloc(strlen(w->other.pem) + strlen(w->root.pem) + 1);
    strcpy(two, w->other.pem);
    strcat(two, w->root.pem);
    assert_int_equal(verify(w->leaf.pem, two, "device.example", &why), ACME_OK);
    free(two);

    /* Each of these must fail, with gnutls's reason. */
    struct { const char *leaf, *roots, *host; } bad[] = {
        {w->leaf.pem, w->other.pem, "device.example"},     /* not its root */
        {w->liar.pem, w->root.pem, "device.example"},      /* AKID lies: another key signed it */
        {w->leaf.pem, w->impostor.pem, "device.example"},  /* right name and SKID, wrong key */
        {w->leaf.pem, w->root.pem, "other.example"},       /* not this server's name */
        {w->expired.pem, w->root.pem, "device.example"},   /* past notAfter */
        {w->client_leaf.pem, w->root.pem, "device.example"}, /* not for TLS servers */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = verify(bad[i].leaf, bad[i].roots, bad[i].host, &why);
        if (rc != ACME_E_TLS)
            fail_msg("case %zu verified (rc %d)", i, rc);
        assert_non_null(why);
        assert_true(strlen(why) > 5);
        assert_true(why[strlen(why) - 1] != ' ');
        free(why);
        why = NULL;
    }
    /* Nothing usable returned. */
    assert_int_equal(verify(w->leaf.pem, "no pem here", "device.example", &why), ACME_E_INVALID_ARG);
    assert_int_equal(verify(w->leaf.pem, NULL, "device.example", &why), ACME_E_INVALID_ARG);
}

static void test_blob_find(void **state)
{
    world *w = *state;
    size_t n = strlen(w->other.pem) + strlen(w->root.pem) + strlen(w->bare.pem);
    char *blob = malloc(n + 1);
    strcpy(blob, w->other.pem);
    strcat(blob, w->bare.pem);
    strcat(blob, w->root.pem);
    acme_buffer *out = acme_buffer_new();
    assert_int_equal(acme_trust_blob_find(blob, n, ROOT_SKID, 20, out), ACME_OK);
    /* Exactly the root, which then verifies the leaf. */
    char *why = NULL;
    assert_int_equal(verify(w->leaf.pem, acme_buffer_data(out), "device.example", &why), ACME_OK);
    const char *first = strstr(acme_buffer_data(out), "-----END CERTIFICATE-----");
    assert_non_null(first);
    assert_null(strstr(first + 1, "BEGIN CERTIFICATE"));
    acme_buffer_free(out);

    out = acme_buffer_new();
    static const unsigned char none[20] = {0xee};
    assert_int_equal(acme_trust_blob_find(blob, n, none, 20, out), ACME_E_NOT_FOUND);
    /* A prefix of a real SKID is not that SKID. */
    assert_int_equal(acme_trust_blob_find(blob, n, ROOT_SKID, 19, out), ACME_E_NOT_FOUND);
    assert_int_equal(acme_buffer_len(out), 0);
    assert_int_equal(acme_trust_blob_find("garbage", 7, ROOT_SKID, 20, out), ACME_E_INVALID_ARG);
    assert_int_equal(acme_trust_blob_find(blob, n, NULL, 0, out), ACME_E_INVALID_ARG);
    acme_buffer_free(out);
    free(blob);
}

static const char PEM_A[] = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n";
static const char PEM_B[] = "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n";

static void test_cache_bound(void **state)
{
    (void)state;
    trust_cache *tc = NULL;
    assert_int_equal(trust_cache_new(3, 60, &tc), ACME_OK);
    char host[32];
    for (int i = 0; i < 4; i++) {
        snprintf(host, sizeof host, "h%d:443", i);
        /* later puts expire later: h0 is the first to go */
        assert_int_equal(trust_cache_put(tc, host, PEM_A, sizeof PEM_A - 1, 1000u + (uint64_t)i), ACME_OK);
    }
    assert_int_equal(trust_cache_count(tc), 3);
    assert_null(trust_cache_get(tc, "h0:443", 2000));
    for (int i = 1; i < 4; i++) {
        snprintf(host, sizeof host, "h%d:443", i);
        trust_entry *e = trust_cache_get(tc, host, 2000);
        assert_non_null(e);
        trust_entry_release(e);
    }
    /* Rebinding a host replaces, it does not add. */
    assert_int_equal(trust_cache_put(tc, "H3:443", PEM_B, sizeof PEM_B - 1, 3000), ACME_OK);
    assert_int_equal(trust_cache_count(tc), 3);
    trust_entry *e = trust_cache_get(tc, "h3:443", 3000); /* host names are case-blind */
    size_t len = 0;
    assert_non_null(e);
    assert_string_equal(trust_entry_pem(e, &len), PEM_B);
    assert_int_equal(len, sizeof PEM_B - 1);
    trust_entry_release(e);
    trust_cache_free(tc);

    /* The default bound is 16. */
    assert_int_equal(trust_cache_new(0, 0, &tc), ACME_OK);
    for (int i = 0; i < 40; i++) {
        snprintf(host, sizeof host, "d%d:443", i);
        assert_int_equal(trust_cache_put(tc, host, PEM_A, sizeof PEM_A - 1, (uint64_t)i), ACME_OK);
    }
    assert_int_equal(trust_cache_count(tc), TRUST_DEFAULT_ENTRIES);
    assert_int_equal(TRUST_DEFAULT_ENTRIES, 16);
    e = trust_cache_get(tc, "d39:443", 100);
    assert_non_null(e);
    trust_entry_release(e);
    assert_null(trust_cache_get(tc, "d23:443", 100));
    trust_cache_free(tc);
}

static void test_cache_ttl(void **state)
{
    (void)state;
    trust_cache *tc = NULL;
    assert_int_equal(trust_cache_new(4, 10, &tc), ACME_OK);
    assert_int_equal(trust_cache_put(tc, "a:1", PEM_A, sizeof PEM_A - 1, 5000), ACME_OK);
    trust_entry *e = trust_cache_get(tc, "a:1", 5000 + 9999);
    assert_non_null(e);
    trust_entry_release(e);
    assert_null(trust_cache_get(tc, "a:1", 5000 + 10000)); /* the TTL is over */
    assert_int_equal(trust_cache_count(tc), 0);            /* and the entry gone */
    trust_cache_free(tc);

    /* The default TTL is an hour. */
    assert_int_equal(trust_cache_new(0, 0, &tc), ACME_OK);
    assert_int_equal(trust_cache_put(tc, "a:1", PEM_A, sizeof PEM_A - 1, 0), ACME_OK);
    e = trust_cache_get(tc, "a:1", 3599999);
    assert_non_null(e);
    trust_entry_release(e);
    assert_null(trust_cache_get(tc, "a:1", 3600000));
    trust_cache_free(tc);
}

static void test_cache_entry_outlives_eviction(void **state)
{
    (void)state;
    trust_cache *tc = NULL;
    assert_int_equal(trust_cache_new(1, 10, &tc), ACME_OK);
    assert_int_equal(trust_cache_put(tc, "a:1", PEM_A, sizeof PEM_A - 1, 0), ACME_OK);
    trust_entry *held = trust_cache_get(tc, "a:1", 1);
    assert_non_null(held);
    /* libcurl may still open the entry's file: it must stay valid while a
     * call holds it, whatever the cache does meanwhile. */
    const char *path = trust_entry_path(held);
    assert_non_null(path);
    assert_int_equal(trust_cache_put(tc, "b:1", PEM_B, sizeof PEM_B - 1, 2), ACME_OK); /* evicts a */
    assert_null(trust_cache_get(tc, "a:1", 3));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[128] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    assert_int_equal(n, sizeof PEM_A - 1);
    assert_string_equal(buf, PEM_A);
    /* Forgetting an entry that is no longer the binding leaves the new one. */
    trust_cache_forget(tc, held);
    assert_int_equal(trust_cache_count(tc), 1);
    trust_entry_release(held);
    trust_entry *b = trust_cache_get(tc, "b:1", 3);
    assert_non_null(b);
    trust_cache_forget(tc, b);
    assert_int_equal(trust_cache_count(tc), 0);
    trust_entry_release(b);
    trust_cache_drop(tc, "nothing:1");
    assert_int_equal(trust_cache_put(tc, "a:1", NULL, 0, 0), ACME_E_INVALID_ARG);
    trust_cache_free(tc);
}

int main(void)
{
    gnutls_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_extracted),
        cmocka_unit_test(test_chain_input_bounds),
        cmocka_unit_test(test_verify_full),
        cmocka_unit_test(test_blob_find),
        cmocka_unit_test(test_cache_bound),
        cmocka_unit_test(test_cache_ttl),
        cmocka_unit_test(test_cache_entry_outlives_eviction),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    gnutls_global_deinit();
    return rc;
}
