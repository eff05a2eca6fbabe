/* Reading issued certificate chains. See crypto.h for the contract. */
#include "crypto.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <gnutls/x509-ext.h>

#include <acme/error.h>

#include "b64url.h"
#include "buf.h"
#include "util.h"

#define PEM_BEGIN "-----BEGIN "
#define CERT_BEGIN "-----BEGIN CERTIFICATE-----"
#define PEM_END "-----END "
#define CERT_END "-----END CERTIFICATE-----"
#define OID_SAN "2.5.29.17"
/* Real chains have 2-4 certificates; the bound only keeps a hostile
 * download from turning into unbounded work. */
#define MAX_CHAIN 32

typedef struct chain {
    gnutls_x509_crt_t crt[MAX_CHAIN];
    /* The DER exactly as the CA sent it: revokeCert and re-encoding must
     * not depend on gnutls reproducing the encoding byte for byte. */
    gnutls_datum_t der[MAX_CHAIN];
    size_t n;
} chain;

static void chain_free(chain *c)
{
    for (size_t i = 0; i < c->n; i++) {
        gnutls_x509_crt_deinit(c->crt[i]);
        gnutls_free(c->der[i].data);
    }
    c->n = 0;
}

static int only_space(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return 0;
    return 1;
}

static const char *find(const char *hay, const char *end, const char *needle)
{
    return memmem(hay, (size_t)(end - hay), needle, strlen(needle));
}

static int add_block(chain *c, const char *p, size_t len)
{
    if (c->n == MAX_CHAIN)
        return ACME_E_PROTOCOL;
    gnutls_datum_t pem = { (unsigned char *)p, (unsigned)len };
    gnutls_datum_t der = { NULL, 0 };
    if (gnutls_pem_base64_decode2("CERTIFICATE", &pem, &der) < 0)
        return ACME_E_PROTOCOL;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0) {
        gnutls_free(der.data);
        return ACME_E_NOMEM;
    }
    if (gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) < 0) {
        gnutls_x509_crt_deinit(crt);
        gnutls_free(der.data);
        return ACME_E_PROTOCOL;
    }
    c->crt[c->n] = crt;
    c->der[c->n] = der;
    c->n++;
    return ACME_OK;
}

/* Split a PEM text into certificates. Text before the first block and
 * after the last is explanatory text (RFC 7468 §5.2) and ignored. In strict
 * mode anything but whitespace between blocks, or a block that is not a
 * certificate, is refused: an application/pem-certificate-chain from the CA
 * has no business carrying either. Lenient mode skips such things. */
static int chain_load(const char *pem, size_t len, int strict, chain *c)
{
    memset(c, 0, sizeof(*c));
    if (!pem || len == 0 || (uint64_t)len > UINT32_MAX)
        return ACME_E_PROTOCOL;
    const char *end = pem + len;
    const char *p = pem;
    int rc = ACME_OK;
    while (rc == ACME_OK) {
        const char *b = find(p, end, PEM_BEGIN);
        if (!b)
            break;
        if (strict && c->n > 0 && !only_space(p, b)) {
            rc = ACME_E_PROTOCOL;
            break;
        }
        int is_cert = (size_t)(end - b) >= strlen(CERT_BEGIN) &&
                      memcmp(b, CERT_BEGIN, strlen(CERT_BEGIN)) == 0;
        const char *e = find(b + strlen(PEM_BEGIN), end, is_cert ? CERT_END : PEM_END);
        /* No END, or another BEGIN before it: a block was cut short. */
        if (!e || find(b + strlen(PEM_BEGIN), e, PEM_BEGIN)) {
            rc = ACME_E_PROTOCOL;
            break;
        }
        if (!is_cert) {
            if (strict) {
                rc = ACME_E_PROTOCOL;
                break;
            }
            /* Skip to the end of this block's END line. */
            const char *nl = memchr(e, '\n', (size_t)(end - e));
            p = nl ? nl + 1 : end;
            continue;
        }
        e += strlen(CERT_END);
        rc = add_block(c, b, (size_t)(e - b));
        p = e;
    }
    if (rc == ACME_OK && c->n == 0)
        rc = ACME_E_PROTOCOL;
    if (rc != ACME_OK)
        chain_free(c);
    return rc;
}

/* A DN attribute of the issuer as text; "" when absent. */
static int issuer_cn(gnutls_x509_crt_t crt, char **out)
{
    size_t size = 0;
    int r = gnutls_x509_crt_get_issuer_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0,
                                                 NULL, &size);
    if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
        *out = strdup("");
        return *out ? ACME_OK : ACME_E_NOMEM;
    }
    if (r != GNUTLS_E_SHORT_MEMORY_BUFFER && r < 0)
        return ACME_E_PROTOCOL;
    char *s = calloc(1, size + 1);
    if (!s)
        return ACME_E_NOMEM;
    size_t have = size + 1;
    if (gnutls_x509_crt_get_issuer_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0,
                                             s, &have) < 0) {
        free(s);
        return ACME_E_PROTOCOL;
    }
    *out = s;
    return ACME_OK;
}

static int push_name(cert_info *ci, char *s)
{
    if (!s)
        return ACME_E_NOMEM;
    char **v = realloc(ci->names, (ci->name_count + 1) * sizeof(*v));
    if (!v) {
        free(s);
        return ACME_E_NOMEM;
    }
    ci->names = v;
    ci->names[ci->name_count++] = s;
    return ACME_OK;
}

/* DNS names and IP addresses from the SAN; other kinds are not ours to
 * report. A leaf without a SAN simply has no names. */
static int leaf_names(gnutls_x509_crt_t crt, cert_info *ci)
{
    gnutls_datum_t ext = { NULL, 0 };
    unsigned critical = 0;
    int r = gnutls_x509_crt_get_extension_by_oid2(crt, OID_SAN, 0, &ext, &critical);
    if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
        return ACME_OK;
    if (r < 0)
        return ACME_E_PROTOCOL;
    gnutls_subject_alt_names_t sans;
    if (gnutls_subject_alt_names_init(&sans) < 0) {
        gnutls_free(ext.data);
        return ACME_E_NOMEM;
    }
    int rc = ACME_OK;
    if (gnutls_x509_ext_import_subject_alt_names(&ext, sans, 0) < 0)
        rc = ACME_E_PROTOCOL;
    for (unsigned i = 0; rc == ACME_OK; i++) {
        unsigned type;
        gnutls_datum_t san;
        r = gnutls_subject_alt_names_get(sans, i, &type, &san, NULL);
        if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (r < 0) {
            rc = ACME_E_PROTOCOL;
            break;
        }
        if (type == GNUTLS_SAN_DNSNAME) {
            /* An embedded NUL would let "a.com\0.evil" pass as "a.com". */
            if (memchr(san.data, 0, san.size)) {
                rc = ACME_E_PROTOCOL;
                break;
            }
            char *s = malloc((size_t)san.size + 1);
            if (s) {
                memcpy(s, san.data, san.size);
                s[san.size] = '\0';
            }
            rc = push_name(ci, s);
        } else if (type == GNUTLS_SAN_IPADDRESS) {
            char txt[INET6_ADDRSTRLEN];
            int af = san.size == 4 ? AF_INET : san.size == 16 ? AF_INET6 : 0;
            if (!af || !inet_ntop(af, san.data, txt, sizeof(txt))) {
                rc = ACME_E_PROTOCOL;
                break;
            }
            rc = push_name(ci, strdup(txt));
        }
    }
    gnutls_subject_alt_names_deinit(sans);
    gnutls_free(ext.data);
    return rc;
}

static int leaf_serial(gnutls_x509_crt_t crt, char **out)
{
    unsigned char serial[64];
    size_t size = sizeof(serial);
    if (gnutls_x509_crt_get_serial(crt, serial, &size) < 0 || size == 0)
        return ACME_E_PROTOCOL;
    static const char hex[] = "0123456789abcdef";
    char *s = malloc(size * 2 + 1);
    if (!s)
        return ACME_E_NOMEM;
    for (size_t i = 0; i < size; i++) {
        s[2 * i] = hex[serial[i] >> 4];
        s[2 * i + 1] = hex[serial[i] & 15];
    }
    s[size * 2] = '\0';
    *out = s;
    return ACME_OK;
}

/* RFC 9773 §4.1 certID of the leaf: base64url(AKI keyIdentifier) "."
 * base64url(serial content octets). NULL (not an error) when the leaf has
 * no AKI: such a certificate simply has no ARI. */
static int leaf_ari_id(gnutls_x509_crt_t crt, char **out)
{
    *out = NULL;
    unsigned char aki[128], serial[64];
    size_t aki_len = sizeof(aki), serial_len = sizeof(serial);
    unsigned critical = 0;
    if (gnutls_x509_crt_get_authority_key_id(crt, aki, &aki_len, &critical) < 0 ||
        gnutls_x509_crt_get_serial(crt, serial, &serial_len) < 0 || !aki_len || !serial_len)
        return ACME_OK;
    char *a = b64url_encode(aki, aki_len);
    char *sn = b64url_encode(serial, serial_len);
    *out = (a && sn) ? xasprintf("%s.%s", a, sn) : NULL;
    free(a);
    free(sn);
    return *out ? ACME_OK : ACME_E_NOMEM;
}

/* The facts of a loaded chain (see cert_info in crypto.h). */
static int chain_facts(const chain *c, cert_info **out)
{
    *out = NULL;
    int rc = ACME_OK;
    cert_info *ci = calloc(1, sizeof(*ci));
    if (!ci)
        return ACME_E_NOMEM;
    ci->issuer_cns = calloc(c->n, sizeof(char *));
    if (!ci->issuer_cns)
        rc = ACME_E_NOMEM;
    for (size_t i = 0; i < c->n && rc == ACME_OK; i++) {
        rc = issuer_cn(c->crt[i], &ci->issuer_cns[i]);
        if (rc == ACME_OK)
            ci->cert_count++;
    }
    if (rc == ACME_OK) {
        ci->issuer_cn = strdup(ci->issuer_cns[c->n - 1]);
        if (!ci->issuer_cn)
            rc = ACME_E_NOMEM;
    }
    if (rc == ACME_OK)
        rc = leaf_names(c->crt[0], ci);
    if (rc == ACME_OK)
        rc = leaf_serial(c->crt[0], &ci->serial_hex);
    if (rc == ACME_OK)
        rc = leaf_ari_id(c->crt[0], &ci->ari_id);
    if (rc == ACME_OK) {
        time_t nb = gnutls_x509_crt_get_activation_time(c->crt[0]);
        time_t na = gnutls_x509_crt_get_expiration_time(c->crt[0]);
        if (nb == (time_t)-1 || na == (time_t)-1)
            rc = ACME_E_PROTOCOL;
        ci->not_before = (int64_t)nb;
        ci->not_after = (int64_t)na;
    }
    if (rc != ACME_OK) {
        cert_info_free(ci);
        return rc;
    }
    *out = ci;
    return ACME_OK;
}

int cert_info_parse(const char *pem, size_t len, cert_info **out)
{
    return out ? cert_chain_read(pem, len, 1, NULL, NULL, out) : ACME_E_INVALID_ARG;
}

void cert_info_free(cert_info *ci)
{
    if (!ci)
        return;
    for (size_t i = 0; i < ci->name_count; i++)
        free(ci->names[i]);
    free(ci->names);
    if (ci->issuer_cns)
        for (size_t i = 0; i < ci->cert_count; i++)
            free(ci->issuer_cns[i]);
    free(ci->issuer_cns);
    free(ci->issuer_cn);
    free(ci->serial_hex);
    free(ci->ari_id);
    free(ci);
}

/* SubjectPublicKeyInfo DER as gnutls re-encodes it from the key parameters,
 * so both sides of a comparison come out of the same encoder. */
static int spki_der(gnutls_pubkey_t pub, gnutls_datum_t *out)
{
    return gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out) < 0 ? ACME_E_CRYPTO : ACME_OK;
}

static int leaf_matches(const chain *c, const acme_key *k)
{
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t a = { NULL, 0 }, b = { NULL, 0 };
    int rc = ACME_E_CRYPTO;
    if (gnutls_pubkey_init(&pub) < 0) {
        pub = NULL;
        goto done;
    }
    /* A leaf whose key gnutls cannot load cannot be ours either. */
    if (gnutls_pubkey_import_x509(pub, c->crt[0], 0) < 0) {
        rc = ACME_E_KEY_MISMATCH;
        goto done;
    }
    if (spki_der(pub, &a) != ACME_OK || spki_der(key_gnutls_pubkey(k), &b) != ACME_OK)
        goto done;
    rc = (a.size == b.size && memcmp(a.data, b.data, a.size) == 0)
        ? ACME_OK : ACME_E_KEY_MISMATCH;
done:
    gnutls_free(a.data);
    gnutls_free(b.data);
    if (pub)
        gnutls_pubkey_deinit(pub);
    return rc;
}

int cert_matches_key(const char *pem, size_t len, const acme_key *k)
{
    if (!k)
        return ACME_E_INVALID_ARG;
    chain c;
    int rc = chain_load(pem, len, 0, &c);
    if (rc != ACME_OK)
        return rc;
    rc = leaf_matches(&c, k);
    chain_free(&c);
    return rc;
}

int cert_leaf_b64der(const char *pem, size_t len, char **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    chain c;
    int rc = chain_load(pem, len, 0, &c);
    if (rc != ACME_OK)
        return rc;
    *out = b64url_encode(c.der[0].data, c.der[0].size);
    chain_free(&c);
    return *out ? ACME_OK : ACME_E_NOMEM;
}

static int chain_pem(const chain *c, char **out)
{
    *out = NULL;
    int rc = ACME_OK;
    acme_buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < c->n && rc == ACME_OK; i++) {
        gnutls_datum_t txt = { NULL, 0 };
        if (gnutls_pem_base64_encode2("CERTIFICATE", &c->der[i], &txt) < 0) {
            rc = ACME_E_CRYPTO;
            break;
        }
        rc = buf_append(&b, txt.data, txt.size);
        /* Every block ends its own line, whatever the encoder does. */
        if (rc == ACME_OK && (txt.size == 0 || txt.data[txt.size - 1] != '\n'))
            rc = buf_append_str(&b, "\n");
        gnutls_free(txt.data);
    }
    if (rc == ACME_OK) {
        *out = buf_steal(&b, NULL);
        if (!*out)
            rc = ACME_E_NOMEM;
    }
    buf_clear(&b);
    return rc;
}

int cert_chain_normalize(const char *pem, size_t len, char **out)
{
    return out ? cert_chain_read(pem, len, 0, NULL, out, NULL) : ACME_E_INVALID_ARG;
}

/* Everything the other functions here each load the chain for, from one
 * load: an issuance used to parse the same chain five times. */
int cert_chain_read(const char *pem, size_t len, int strict, const acme_key *k, char **normalized,
                    cert_info **info)
{
    if (normalized)
        *normalized = NULL;
    if (info)
        *info = NULL;
    chain c;
    int rc = chain_load(pem, len, strict, &c);
    if (rc != ACME_OK)
        return rc;
    if (k)
        rc = leaf_matches(&c, k);
    if (rc == ACME_OK && info)
        rc = chain_facts(&c, info);
    if (rc == ACME_OK && normalized)
        rc = chain_pem(&c, normalized);
    chain_free(&c);
    if (rc != ACME_OK && info) {
        cert_info_free(*info);
        *info = NULL;
    }
    return rc;
}
