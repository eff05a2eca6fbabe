/* Trust anchors by AKID: the chain description, its verification with
 * one host-given root, the host -> root cache. See trust_anchor.h. */
#include "trust_anchor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <acme/error.h>

#include "buf.h"
#include "util.h"

/* ---- the chain the server sent ---- */

static char *dn_of(gnutls_x509_crt_t crt, int issuer)
{
    gnutls_datum_t d = { NULL, 0 };
    int rc = issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &d, 0) : gnutls_x509_crt_get_dn3(crt, &d, 0);
    char *s = rc >= 0 ? xstrdup((const char *)d.data) : xstrdup("");
    gnutls_free(d.data);
    return s;
}

static int link_fill(trust_link *l, const char *pem)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return ACME_E_NOMEM;
    size_t len = strlen(pem);
    gnutls_datum_t in = { (unsigned char *)(uintptr_t)pem, (unsigned)len };
    int rc = ACME_E_CRYPTO;
    if (len > 0x7fffffffu || gnutls_x509_crt_import(crt, &in, GNUTLS_X509_FMT_PEM) < 0)
        goto out;
    gnutls_datum_t der = { NULL, 0 };
    if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0)
        goto out;
    l->der = malloc(der.size);
    if (l->der) {
        memcpy(l->der, der.data, der.size);
        l->der_len = der.size;
    }
    gnutls_free(der.data);
    l->subject = dn_of(crt, 0);
    l->issuer = dn_of(crt, 1);
    if (!l->der || !l->subject || !l->issuer) {
        rc = ACME_E_NOMEM;
        goto out;
    }
    /* Either identifier may be missing, or too long to be a real one: the
     * host then simply has less to go on. Never truncated. */
    size_t n = sizeof(l->skid);
    unsigned crit = 0;
    if (gnutls_x509_crt_get_subject_key_id(crt, l->skid, &n, &crit) >= 0 && n <= sizeof(l->skid))
        l->skid_len = n;
    n = sizeof(l->akid);
    if (gnutls_x509_crt_get_authority_key_id(crt, l->akid, &n, &crit) >= 0 && n <= sizeof(l->akid))
        l->akid_len = n;
    rc = ACME_OK;
out:
    gnutls_x509_crt_deinit(crt);
    return rc;
}

static void link_clear(trust_link *l)
{
    free(l->subject);
    free(l->issuer);
    free(l->der);
    memset(l, 0, sizeof(*l));
}

void trust_chain_free(acme_trust_chain *ch)
{
    if (!ch)
        return;
    for (size_t i = 0; i < ch->count; i++)
        link_clear(&ch->links[i]);
    free(ch->host);
    free(ch);
}

int trust_chain_new(const char *host, const char *const *pems, size_t n, acme_trust_chain **out)
{
    *out = NULL;
    acme_trust_chain *ch = calloc(1, sizeof(*ch));
    if (!ch || !(ch->host = xstrdup(host ? host : ""))) {
        free(ch);
        return ACME_E_NOMEM;
    }
    for (size_t i = 0; i < n && ch->count < TRUST_MAX_LINKS; i++) {
        int rc = link_fill(&ch->links[ch->count], pems[i]);
        if (rc == ACME_OK) {
            ch->count++;
        } else {
            link_clear(&ch->links[ch->count]);
            if (rc == ACME_E_NOMEM) {
                trust_chain_free(ch);
                return rc;
            }
        }
    }
    if (!ch->count) {
        trust_chain_free(ch);
        return ACME_E_CRYPTO;
    }
    *out = ch;
    return ACME_OK;
}

int trust_chain_verify(const acme_trust_chain *ch, const char *roots, size_t roots_len,
                       const char *hostname, char **why)
{
    *why = NULL;
    if (!ch || !ch->count || !roots || !roots_len || roots_len > 0x7fffffffu)
        return ACME_E_INVALID_ARG;
    gnutls_datum_t rd = { (unsigned char *)(uintptr_t)roots, (unsigned)roots_len };
    gnutls_x509_crt_t *cas = NULL;
    unsigned ncas = 0;
    if (gnutls_x509_crt_list_import2(&cas, &ncas, &rd, GNUTLS_X509_FMT_PEM, 0) < 0 || !ncas) {
        gnutls_free(cas);
        return ACME_E_INVALID_ARG;
    }
    gnutls_x509_trust_list_t tl = NULL;
    gnutls_x509_crt_t chain[TRUST_MAX_LINKS];
    size_t nchain = 0;
    int rc = ACME_E_NOMEM;
    if (gnutls_x509_trust_list_init(&tl, 0) < 0) {
        for (unsigned i = 0; i < ncas; i++)
            gnutls_x509_crt_deinit(cas[i]);
        gnutls_free(cas);
        return rc;
    }
    /* The list owns the roots from here on (the array is ours). */
    (void)gnutls_x509_trust_list_add_cas(tl, cas, ncas, 0);
    gnutls_free(cas);

    for (size_t i = 0; i < ch->count; i++) {
        gnutls_datum_t d = { ch->links[i].der, (unsigned)ch->links[i].der_len };
        if (gnutls_x509_crt_init(&chain[nchain]) < 0)
            goto out;
        if (gnutls_x509_crt_import(chain[nchain], &d, GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(chain[nchain]);
            rc = ACME_E_CRYPTO;
            goto out;
        }
        nchain++;
    }
    gnutls_typed_vdata_st data[2];
    memset(data, 0, sizeof(data));
    data[0].type = GNUTLS_DT_DNS_HOSTNAME; /* an IP literal is matched against IP SANs */
    data[0].data = (unsigned char *)(uintptr_t)hostname;
    data[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
    data[1].data = (unsigned char *)(uintptr_t)GNUTLS_KP_TLS_WWW_SERVER;
    unsigned status = 0;
    int vr = gnutls_x509_trust_list_verify_crt2(tl, chain, (unsigned)nchain, data, 2, 0, &status, NULL);
    if (vr < 0) {
        *why = xasprintf("verification could not run (%s)", gnutls_strerror(vr));
        rc = ACME_E_TLS;
    } else if (status) {
        gnutls_datum_t txt = { NULL, 0 };
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) >= 0)
            *why = xstrdup((const char *)txt.data);
        else
            *why = xasprintf("status 0x%x", status);
        gnutls_free(txt.data);
        /* gnutls ends its text with ". ": the sentence goes on after it. */
        for (size_t n = *why ? strlen(*why) : 0; n && (*why)[n - 1] == ' '; n--)
            (*why)[n - 1] = '\0';
        rc = ACME_E_TLS;
    } else {
        rc = ACME_OK;
    }
out:
    for (size_t i = 0; i < nchain; i++)
        gnutls_x509_crt_deinit(chain[i]);
    gnutls_x509_trust_list_deinit(tl, 1);
    return rc;
}

/* ---- public accessors ---- */

ACME_EXPORT const char *acme_trust_chain_host(const acme_trust_chain *ch)
{
    return ch ? ch->host : NULL;
}

ACME_EXPORT size_t acme_trust_chain_count(const acme_trust_chain *ch)
{
    return ch ? ch->count : 0;
}

ACME_EXPORT const char *acme_trust_chain_subject(const acme_trust_chain *ch, size_t i)
{
    return ch && i < ch->count ? ch->links[i].subject : NULL;
}

ACME_EXPORT const char *acme_trust_chain_issuer(const acme_trust_chain *ch, size_t i)
{
    return ch && i < ch->count ? ch->links[i].issuer : NULL;
}

static const unsigned char *keyid(const unsigned char *id, size_t n, size_t *len)
{
    if (len)
        *len = n;
    return n ? id : NULL;
}

ACME_EXPORT const unsigned char *acme_trust_chain_skid(const acme_trust_chain *ch, size_t i, size_t *len)
{
    if (!ch || i >= ch->count)
        return keyid(NULL, 0, len);
    return keyid(ch->links[i].skid, ch->links[i].skid_len, len);
}

ACME_EXPORT const unsigned char *acme_trust_chain_akid(const acme_trust_chain *ch, size_t i, size_t *len)
{
    if (!ch || i >= ch->count)
        return keyid(NULL, 0, len);
    return keyid(ch->links[i].akid, ch->links[i].akid_len, len);
}

ACME_EXPORT int acme_trust_blob_find(const char *blob, size_t blob_len, const unsigned char *skid,
                                     size_t skid_len, acme_buffer *out)
{
    if (!blob || !blob_len || blob_len > 0x7fffffffu || !skid || !skid_len || !out)
        return ACME_E_INVALID_ARG;
    gnutls_datum_t d = { (unsigned char *)(uintptr_t)blob, (unsigned)blob_len };
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    if (gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0) < 0)
        return ACME_E_INVALID_ARG;
    int rc = ACME_E_NOT_FOUND;
    for (unsigned i = 0; i < n; i++) {
        unsigned char id[TRUST_MAX_KEYID];
        size_t idlen = sizeof(id);
        unsigned crit = 0;
        if (rc != ACME_E_NOMEM && gnutls_x509_crt_get_subject_key_id(crts[i], id, &idlen, &crit) >= 0 &&
            idlen == skid_len && memcmp(id, skid, idlen) == 0) {
            gnutls_datum_t pem = { NULL, 0 };
            if (gnutls_x509_crt_export2(crts[i], GNUTLS_X509_FMT_PEM, &pem) < 0 ||
                buf_append(out, pem.data, pem.size) != ACME_OK)
                rc = ACME_E_NOMEM;
            else
                rc = ACME_OK;
            gnutls_free(pem.data);
        }
        gnutls_x509_crt_deinit(crts[i]);
    }
    gnutls_free(crts);
    return rc;
}

/* ---- the cache ---- */

struct trust_entry {
    unsigned refs;          /* the cache's own, plus one per call using it */
    char *host;
    uint64_t expires_ms;
    char *pem;
    size_t pem_len;
    int fd;
    char *path;
};

struct trust_cache {
    trust_entry **slot;
    unsigned max, used;
    uint64_t ttl_ms;
};

int trust_memfd(const char *pem, size_t len, int *fd_out, char **path_out)
{
    *fd_out = -1;
    *path_out = NULL;
    int fd = memfd_create("libacme-ca", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return errno == ENOMEM ? ACME_E_NOMEM : ACME_E_UNSUPPORTED;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, pem + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return ACME_E_NOMEM;
        }
        off += (size_t)n;
    }
    /* Sealed, so nothing can change what we trust behind our back. */
    (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    char *path = xasprintf("/proc/self/fd/%d", fd);
    if (!path) {
        close(fd);
        return ACME_E_NOMEM;
    }
    /* Without /proc (a bare chroot) the path would not open: say so now. */
    if (access(path, R_OK) != 0) {
        free(path);
        close(fd);
        return ACME_E_UNSUPPORTED;
    }
    *fd_out = fd;
    *path_out = path;
    return ACME_OK;
}

int trust_cache_new(unsigned max_entries, unsigned ttl_s, trust_cache **out)
{
    *out = NULL;
    trust_cache *tc = calloc(1, sizeof(*tc));
    if (!tc)
        return ACME_E_NOMEM;
    tc->max = max_entries ? max_entries : TRUST_DEFAULT_ENTRIES;
    tc->ttl_ms = (uint64_t)(ttl_s ? ttl_s : TRUST_DEFAULT_TTL_S) * 1000u;
    if (!(tc->slot = calloc(tc->max, sizeof(*tc->slot)))) {
        free(tc);
        return ACME_E_NOMEM;
    }
    *out = tc;
    return ACME_OK;
}

void trust_entry_release(trust_entry *e)
{
    if (!e || --e->refs)
        return;
    /* The fd goes only now: a call may still have libcurl open the path. */
    if (e->fd >= 0)
        close(e->fd);
    free(e->path);
    free(e->host);
    free(e->pem);
    free(e);
}

static void remove_at(trust_cache *tc, unsigned i)
{
    trust_entry_release(tc->slot[i]);
    tc->slot[i] = tc->slot[--tc->used];
    tc->slot[tc->used] = NULL;
}

void trust_cache_free(trust_cache *tc)
{
    if (!tc)
        return;
    while (tc->used)
        remove_at(tc, tc->used - 1);
    free(tc->slot);
    free(tc);
}

static int find(const trust_cache *tc, const char *host)
{
    for (unsigned i = 0; i < tc->used; i++)
        if (ascii_casecmp(tc->slot[i]->host, host) == 0)
            return (int)i;
    return -1;
}

trust_entry *trust_cache_get(trust_cache *tc, const char *host, uint64_t now_ms)
{
    if (!tc || !host)
        return NULL;
    int i = find(tc, host);
    if (i < 0)
        return NULL;
    trust_entry *e = tc->slot[i];
    if (now_ms >= e->expires_ms) {
        remove_at(tc, (unsigned)i);
        return NULL;
    }
    e->refs++;
    return e;
}

int trust_cache_put(trust_cache *tc, const char *host, const char *roots, size_t len, uint64_t now_ms)
{
    if (!tc || !host || !roots || !len)
        return ACME_E_INVALID_ARG;
    trust_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return ACME_E_NOMEM;
    e->refs = 1;
    e->fd = -1;
    e->expires_ms = now_ms + tc->ttl_ms;
    e->host = xstrdup(host);
    e->pem = malloc(len + 1);
    if (!e->host || !e->pem) {
        trust_entry_release(e);
        return ACME_E_NOMEM;
    }
    memcpy(e->pem, roots, len);
    e->pem[len] = '\0';
    e->pem_len = len;
    /* A libcurl that takes trust from memory does not need the file; one
     * that does needs /proc. Either way the PEM is the truth. */
    (void)trust_memfd(e->pem, e->pem_len, &e->fd, &e->path);

    int i = find(tc, host);
    if (i >= 0) {
        remove_at(tc, (unsigned)i);
    } else if (tc->used == tc->max) {
        /* Full: the binding closest to its end goes (the oldest, with one
         * TTL for all). */
        unsigned victim = 0;
        for (unsigned k = 1; k < tc->used; k++)
            if (tc->slot[k]->expires_ms < tc->slot[victim]->expires_ms)
                victim = k;
        remove_at(tc, victim);
    }
    tc->slot[tc->used++] = e;
    return ACME_OK;
}

void trust_cache_drop(trust_cache *tc, const char *host)
{
    if (!tc || !host)
        return;
    int i = find(tc, host);
    if (i >= 0)
        remove_at(tc, (unsigned)i);
}

void trust_cache_forget(trust_cache *tc, const trust_entry *e)
{
    if (!tc || !e)
        return;
    for (unsigned i = 0; i < tc->used; i++)
        if (tc->slot[i] == e) {
            remove_at(tc, i);
            return;
        }
}

size_t trust_cache_count(const trust_cache *tc)
{
    return tc ? tc->used : 0;
}

const char *trust_entry_pem(const trust_entry *e, size_t *len)
{
    *len = e->pem_len;
    return e->pem;
}

const char *trust_entry_path(const trust_entry *e)
{
    return e->path;
}
