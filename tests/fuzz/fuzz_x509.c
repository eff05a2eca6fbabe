/* Fuzz target: certificate chains as a CA sends them (libacme/x509.c:
 * PEM splitting, gnutls's DER parser behind it, the SAN/issuer/serial
 * readers; libacme/ari.c's certificate id).
 *
 * Input: text starting with '-' is a PEM chain as downloaded; anything
 * else is DER, one certificate per piece (FUZZ_SEP), wrapped in PEM here,
 * so the fuzzer mutates the ASN.1 itself instead of its base64.
 *
 * Promises checked: a parsed chain has 1..32 certificates, one issuer CN
 * per certificate and only non-NULL names without a NUL; the normalised
 * chain is PEM certificates only, parses to the same count and names, and
 * normalising it again changes nothing; the leaf's DER in base64url has
 * only base64url characters. */
#include <string.h>

#include <gnutls/gnutls.h>

#include "crypto.h"
#include "ari.h"
#include "fuzz.h"

#define T "fuzz_x509"

static char *pem_of_der(const uint8_t *data, size_t size, size_t *out_len)
{
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    fuzz_pieces it;
    fuzz_pieces_init(&it, data, size);
    const uint8_t *piece;
    size_t n;
    while (out && fuzz_next_piece(&it, &piece, &n)) {
        gnutls_datum_t der = {(unsigned char *)(uintptr_t)piece, (unsigned)n}, txt = {NULL, 0};
        if (gnutls_pem_base64_encode2("CERTIFICATE", &der, &txt) < 0)
            continue;
        if (len + txt.size + 1 > cap) {
            cap = (len + txt.size + 1) * 2;
            char *nb = realloc(out, cap);
            if (!nb)
                abort();
            out = nb;
        }
        memcpy(out + len, txt.data, txt.size);
        len += txt.size;
        gnutls_free(txt.data);
    }
    if (!out)
        abort();
    out[len] = '\0';
    *out_len = len;
    return out;
}

static int b64url_only(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_'))
            return 0;
    return 1;
}

static void check_info(const cert_info *ci)
{
    FUZZ_CHECK(T, ci->cert_count >= 1 && ci->cert_count <= 32, "chain length");
    FUZZ_CHECK(T, ci->issuer_cn && ci->serial_hex, "issuer CN and serial set");
    for (size_t i = 0; i < ci->name_count; i++)
        FUZZ_CHECK(T, ci->names[i] != NULL, "name set");
    if (ci->issuer_cns)
        for (size_t i = 0; i < ci->cert_count; i++)
            FUZZ_CHECK(T, ci->issuer_cns[i] != NULL, "an issuer CN per certificate");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *pem;
    size_t len;
    if (size && data[0] == '-') {
        pem = fuzz_strndup(data, size);
        len = size;
    } else {
        pem = pem_of_der(data, size, &len);
    }

    cert_info *ci = NULL;
    int rc = cert_info_parse(pem, len, &ci);
    if (rc == ACME_OK) {
        check_info(ci);
    }
    char *norm = NULL;
    int nrc = cert_chain_normalize(pem, len, &norm);
    if (nrc == ACME_OK) {
        FUZZ_CHECK(T, norm && !strncmp(norm, "-----BEGIN CERTIFICATE-----\n", 28), "normalised chain is PEM");
        char *again = NULL;
        FUZZ_CHECK(T, cert_chain_normalize(norm, strlen(norm), &again) == ACME_OK && !strcmp(again, norm),
                   "normalising twice changes nothing");
        free(again);
        cert_info *ci2 = NULL;
        if (rc == ACME_OK) {
            FUZZ_CHECK(T, cert_info_parse(norm, strlen(norm), &ci2) == ACME_OK, "normalised chain parses");
            FUZZ_CHECK(T, ci2->cert_count == ci->cert_count && ci2->name_count == ci->name_count,
                       "normalised chain has the same certificates and names");
            for (size_t i = 0; i < ci->name_count; i++)
                FUZZ_CHECK(T, !strcmp(ci->names[i], ci2->names[i]), "same names after normalising");
            cert_info_free(ci2);
        }
    }
    free(norm);
    cert_info_free(ci);

    char *b64 = NULL;
    if (cert_leaf_b64der(pem, len, &b64) == ACME_OK)
        FUZZ_CHECK(T, b64 && *b64 && b64url_only(b64), "leaf DER as base64url");
    free(b64);
    char *id = NULL;
    if (len && ari_cert_id(pem, len, &id) == ACME_OK)
        FUZZ_CHECK(T, id && strchr(id, '.') && b64url_only(strchr(id, '.') + 1), "ARI certificate id");
    free(id);
    free(pem);
    return 0;
}
