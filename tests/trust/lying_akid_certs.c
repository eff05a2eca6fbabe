/* Makes the lying leaf for lying_akid_standin.sh:
 *
 *     lying_akid_certs REAL_ROOT.pem OUTDIR
 *
 * writes OUTDIR/leaf.pem and OUTDIR/leaf.key: a server certificate for
 * 127.0.0.1 whose issuer name is the real root's and whose Authority Key
 * Identifier is the real root's SKID, but which a fresh key of our own
 * signed. Made with gnutls because Debian's certtool (3.7) cannot put a
 * chosen key identifier in a certificate (its templates have no such
 * field): the identifiers always follow the signing key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

static void die(const char *what, int rc)
{
    fprintf(stderr, "lying_akid_certs: %s: %s\n", what, rc < 0 ? gnutls_strerror(rc) : "failed");
    exit(2);
}

#define TRY(what, call) do { int rc_ = (call); if (rc_ < 0) die(what, rc_); } while (0)

static void write_datum(const char *dir, const char *name, const gnutls_datum_t *d)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(d->data, 1, d->size, f) != d->size || fclose(f) != 0)
        die(path, 0);
}

static gnutls_x509_privkey_t new_key(void)
{
    gnutls_x509_privkey_t k;
    TRY("key init", gnutls_x509_privkey_init(&k));
    TRY("key generation", gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA,
                                                        GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
    return k;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: lying_akid_certs REAL_ROOT.pem OUTDIR\n");
        return 2;
    }
    gnutls_datum_t in = {NULL, 0};
    TRY("reading the real root", gnutls_load_file(argv[1], &in));
    gnutls_x509_crt_t real;
    TRY("crt init", gnutls_x509_crt_init(&real));
    TRY("parsing the real root", gnutls_x509_crt_import(real, &in, GNUTLS_X509_FMT_PEM));
    unsigned char skid[64];
    size_t skid_len = sizeof skid;
    TRY("the real root's SKID", gnutls_x509_crt_get_subject_key_id(real, skid, &skid_len, NULL));
    gnutls_datum_t dn = {NULL, 0};
    TRY("the real root's name", gnutls_x509_crt_get_dn2(real, &dn));

    /* The impostor CA: the real root's name and claimed identifier, our key. */
    gnutls_x509_privkey_t ca_key = new_key(), leaf_key = new_key();
    time_t now = time(NULL);
    gnutls_x509_crt_t ca;
    TRY("crt init", gnutls_x509_crt_init(&ca));
    TRY("version", gnutls_x509_crt_set_version(ca, 3));
    TRY("serial", gnutls_x509_crt_set_serial(ca, "\x01\x23", 2));
    TRY("dn", gnutls_x509_crt_set_dn(ca, (const char *)dn.data, NULL));
    TRY("key", gnutls_x509_crt_set_key(ca, ca_key));
    TRY("times", gnutls_x509_crt_set_activation_time(ca, now - 3600));
    TRY("times", gnutls_x509_crt_set_expiration_time(ca, now + 86400));
    TRY("ca", gnutls_x509_crt_set_basic_constraints(ca, 1, -1));
    TRY("usage", gnutls_x509_crt_set_key_usage(ca, GNUTLS_KEY_KEY_CERT_SIGN));
    TRY("skid", gnutls_x509_crt_set_subject_key_id(ca, skid, skid_len));
    TRY("self-signing the impostor", gnutls_x509_crt_sign2(ca, ca, ca_key, GNUTLS_DIG_SHA256, 0));

    gnutls_x509_crt_t leaf;
    TRY("crt init", gnutls_x509_crt_init(&leaf));
    TRY("version", gnutls_x509_crt_set_version(leaf, 3));
    TRY("serial", gnutls_x509_crt_set_serial(leaf, "\x45\x67", 2));
    TRY("dn", gnutls_x509_crt_set_dn(leaf, "CN=localhost", NULL));
    TRY("key", gnutls_x509_crt_set_key(leaf, leaf_key));
    TRY("times", gnutls_x509_crt_set_activation_time(leaf, now - 3600));
    TRY("times", gnutls_x509_crt_set_expiration_time(leaf, now + 86400));
    TRY("not a ca", gnutls_x509_crt_set_basic_constraints(leaf, 0, -1));
    TRY("usage", gnutls_x509_crt_set_key_usage(leaf, GNUTLS_KEY_DIGITAL_SIGNATURE));
    TRY("purpose", gnutls_x509_crt_set_key_purpose_oid(leaf, GNUTLS_KP_TLS_WWW_SERVER, 0));
    static const unsigned char ip[4] = {127, 0, 0, 1};
    TRY("san ip", gnutls_x509_crt_set_subject_alt_name(leaf, GNUTLS_SAN_IPADDRESS, ip, 4, GNUTLS_FSAN_APPEND));
    TRY("san dns", gnutls_x509_crt_set_subject_alt_name(leaf, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_APPEND));
    TRY("akid", gnutls_x509_crt_set_authority_key_id(leaf, skid, skid_len));
    TRY("signing the leaf", gnutls_x509_crt_sign2(leaf, ca, ca_key, GNUTLS_DIG_SHA256, 0));

    gnutls_datum_t out = {NULL, 0};
    TRY("export", gnutls_x509_crt_export2(leaf, GNUTLS_X509_FMT_PEM, &out));
    write_datum(argv[2], "leaf.pem", &out);
    gnutls_free(out.data);
    TRY("export", gnutls_x509_privkey_export2(leaf_key, GNUTLS_X509_FMT_PEM, &out));
    write_datum(argv[2], "leaf.key", &out);
    gnutls_free(out.data);

    gnutls_x509_crt_deinit(leaf);
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_crt_deinit(real);
    gnutls_x509_privkey_deinit(ca_key);
    gnutls_x509_privkey_deinit(leaf_key);
    gnutls_free(dn.data);
    gnutls_free(in.data);
    return 0;
}
