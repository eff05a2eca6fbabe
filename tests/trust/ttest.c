/* See ttest.h. */
#include "ttest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "itest.h"

int ttest_lookup_cb(void *ud, const acme_trust_chain *ch, acme_buffer *out)
{
    ttest_lookup *l = ud;
    l->calls++;
    free(l->last_host);
    free(l->last_leaf_subject);
    l->last_host = itest_strdup(acme_trust_chain_host(ch));
    l->last_count = acme_trust_chain_count(ch);
    l->last_leaf_subject = itest_strdup(acme_trust_chain_subject(ch, 0) ? acme_trust_chain_subject(ch, 0) : "");
    size_t n = 0;
    const unsigned char *akid = acme_trust_chain_akid(ch, 0, &n);
    l->last_akid_len = akid && n <= sizeof(l->last_akid) ? n : 0;
    if (l->last_akid_len)
        memcpy(l->last_akid, akid, n);
    itest_log("trust lookup #%d for %s: %zu certificate(s), leaf %s", l->calls, l->last_host,
              l->last_count, l->last_leaf_subject);
    if (l->decline)
        return ACME_E_DECLINED;
    if (l->fail)
        return l->fail;
    if (l->fixed)
        return acme_buffer_append(out, l->fixed, strlen(l->fixed));
    /* Every AKID the server showed, leaf first (a cross-signed or
     * misordered chain names its parent further up). */
    l->last_found = 0;
    for (size_t i = 0; i < acme_trust_chain_count(ch); i++) {
        const unsigned char *id = acme_trust_chain_akid(ch, i, &n);
        if (id && acme_trust_blob_find(l->blob, l->blob_len, id, n, out) == ACME_OK) {
            l->last_found = 1;
            return ACME_OK;
        }
    }
    return ACME_E_DECLINED;
}

void ttest_set_lookup(acme_client *c, ttest_lookup *l, unsigned entries, unsigned ttl_s)
{
    acme_trust_anchor_ops ops = {
        .size = sizeof ops,
        .lookup = ttest_lookup_cb,
        .cache_entries = entries,
        .cache_ttl_s = ttl_s,
    };
    CHECK_OK(c, acme_client_set_trust_anchor_lookup(c, &ops, l));
}

void ttest_lookup_clear(ttest_lookup *l)
{
    free(l->last_host);
    free(l->last_leaf_subject);
    l->last_host = l->last_leaf_subject = NULL;
}

size_t ttest_skid(const char *pem, unsigned char *out, size_t cap)
{
    gnutls_x509_crt_t crt;
    gnutls_datum_t d = {(unsigned char *)(uintptr_t)pem, (unsigned)strlen(pem)};
    CHECK(NULL, gnutls_x509_crt_init(&crt) >= 0);
    CHECK_MSG(NULL, gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0, "not a PEM certificate");
    size_t n = cap;
    unsigned crit = 0;
    CHECK_MSG(NULL, gnutls_x509_crt_get_subject_key_id(crt, out, &n, &crit) >= 0, "certificate has no SKID");
    gnutls_x509_crt_deinit(crt);
    return n;
}

char *ttest_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK_MSG(NULL, f != NULL, "cannot open %s", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            CHECK(NULL, buf != NULL);
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}
