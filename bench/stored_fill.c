/* stored_fill — give a libacme file storage COUNT stored, valid
 * certificates without ordering them, so start-up with 100,000 stored
 * certificates can be measured (issuing that many from Pebble would take
 * longer than the measurement is worth, and Pebble 2.4 holds every
 * certificate in memory).
 *
 *   stored_fill CA_STATE_DIR TEMPLATE_ID PREFIX COUNT
 *
 * CA_STATE_DIR is the storage directory of one CA (STATE/<ca id>/, with a
 * real certificate TEMPLATE_ID issued into it by the CA). For i = 2..COUNT,
 * certs/PREFIX<i>.bench.example/cert.json is written: a leaf for that one
 * name, valid from an hour ago for 90 days, with the template's key (the
 * engine checks at load that the key is the leaf's), signed by a bench CA
 * made here, the chain leaf + bench CA; "params" the template's with the
 * name replaced, so each one is what an issuance for that name would have
 * stored. One shared leaf key: what is measured is the engine loading and
 * installing certificates, which does not depend on the keys differing.
 *
 * Writes use a temporary file + rename (mode 0600, as the file storage
 * writes secrets) but no fsync: the directory is the benchmark's scratch.
 * Prints "filled=N seconds=S". */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>

#define FILL_MAX 1000000

static void die(const char *what, int rc)
{
    fprintf(stderr, "stored_fill: %s%s%s\n", what, rc ? ": " : "", rc ? gnutls_strerror(rc) : "");
    exit(1);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0, got;
    do {
        if (len + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
    } while (got > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static int write_replace(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.fill-tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text);
    int ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    if (!ok)
        unlink(tmp);
    return ok ? 0 : -1;
}

static void set_serial(gnutls_x509_crt_t crt, unsigned long n)
{
    unsigned char s[9];
    s[0] = 0x01; /* positive, never zero */
    for (int i = 8; i >= 1; i--, n >>= 8)
        s[i] = (unsigned char)(n & 0xff);
    gnutls_x509_crt_set_serial(crt, s, sizeof(s));
}

static char *export_pem(gnutls_x509_crt_t crt)
{
    gnutls_datum_t d = {NULL, 0};
    int rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d);
    if (rc < 0)
        die("exporting a certificate", rc);
    char *s = malloc(d.size + 1);
    if (!s)
        die("out of memory", 0);
    memcpy(s, d.data, d.size);
    s[d.size] = '\0';
    gnutls_free(d.data);
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s CA_STATE_DIR TEMPLATE_ID PREFIX COUNT\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1], *tid = argv[2], *prefix = argv[3];
    long count = strtol(argv[4], NULL, 10);
    if (count < 1 || count > FILL_MAX) {
        fprintf(stderr, "stored_fill: COUNT must be 1..%d\n", FILL_MAX);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    char path[4096];
    snprintf(path, sizeof(path), "%s/certs/%s/cert.json", dir, tid);
    char *text = read_text(path);
    json_error_t jerr;
    json_t *tpl = text ? json_loads(text, 0, &jerr) : NULL;
    free(text);
    const char *key_pem = json_string_value(json_object_get(tpl, "key"));
    json_t *params = json_object_get(tpl, "params");
    if (!key_pem || !json_is_object(params)) {
        fprintf(stderr, "stored_fill: %s is not a stored certificate with key and params\n", path);
        return 1;
    }

    int rc;
    gnutls_x509_privkey_t leaf_key, ca_key;
    gnutls_datum_t kd = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
    if ((rc = gnutls_x509_privkey_init(&leaf_key)) < 0 ||
        (rc = gnutls_x509_privkey_import(leaf_key, &kd, GNUTLS_X509_FMT_PEM)) < 0)
        die("reading the template's key", rc);
    if ((rc = gnutls_x509_privkey_init(&ca_key)) < 0 ||
        (rc = gnutls_x509_privkey_generate(ca_key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                           0)) < 0)
        die("making the bench CA key", rc);

    time_t now = time(NULL);
    gnutls_x509_crt_t ca;
    if ((rc = gnutls_x509_crt_init(&ca)) < 0)
        die("gnutls_x509_crt_init", rc);
    gnutls_x509_crt_set_version(ca, 3);
    set_serial(ca, 1);
    gnutls_x509_crt_set_dn_by_oid(ca, GNUTLS_OID_X520_COMMON_NAME, 0, "libacme bench stored CA", 23);
    gnutls_x509_crt_set_key(ca, ca_key);
    gnutls_x509_crt_set_activation_time(ca, now - 3600);
    gnutls_x509_crt_set_expiration_time(ca, now + 365 * 86400);
    gnutls_x509_crt_set_basic_constraints(ca, 1, -1);
    gnutls_x509_crt_set_key_usage(ca, GNUTLS_KEY_KEY_CERT_SIGN);
    unsigned char ski[64];
    size_t ski_len = sizeof(ski);
    if ((rc = gnutls_x509_crt_get_key_id(ca, GNUTLS_KEYID_USE_SHA1, ski, &ski_len)) < 0)
        die("the bench CA's key id", rc);
    gnutls_x509_crt_set_subject_key_id(ca, ski, ski_len);
    if ((rc = gnutls_x509_crt_sign2(ca, ca, ca_key, GNUTLS_DIG_SHA256, 0)) < 0)
        die("signing the bench CA", rc);
    char *ca_pem = export_pem(ca);

    long filled = 0;
    for (long i = 2; i <= count; i++) {
        char name[256];
        snprintf(name, sizeof(name), "%s%ld.bench.example", prefix, i);
        gnutls_x509_crt_t crt;
        if ((rc = gnutls_x509_crt_init(&crt)) < 0)
            die("gnutls_x509_crt_init", rc);
        gnutls_x509_crt_set_version(crt, 3);
        set_serial(crt, (unsigned long)i + 1000);
        gnutls_x509_crt_set_key(crt, leaf_key);
        gnutls_x509_crt_set_activation_time(crt, now - 3600);
        gnutls_x509_crt_set_expiration_time(crt, now + 90 * 86400);
        gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name, (unsigned)strlen(name),
                                             GNUTLS_FSAN_SET);
        gnutls_x509_crt_set_authority_key_id(crt, ski, ski_len);
        gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
        gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
        if ((rc = gnutls_x509_crt_sign2(crt, ca, ca_key, GNUTLS_DIG_SHA256, 0)) < 0)
            die("signing a leaf", rc);
        char *leaf_pem = export_pem(crt);
        gnutls_x509_crt_deinit(crt);

        size_t chain_len = strlen(leaf_pem) + strlen(ca_pem) + 1;
        char *chain = malloc(chain_len);
        if (!chain)
            die("out of memory", 0);
        snprintf(chain, chain_len, "%s%s", leaf_pem, ca_pem);
        free(leaf_pem);

        json_t *p = json_deep_copy(params);
        json_object_set_new(p, "names", json_pack("[s]", name));
        json_t *o = json_pack("{s:s,s:s,s:o}", "chain", chain, "key", key_pem, "params", p);
        free(chain);
        char *out = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
        json_decref(o);
        if (!out)
            die("formatting cert.json", 0);
        snprintf(path, sizeof(path), "%s/certs/%s", dir, name);
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "stored_fill: mkdir %s: %s\n", path, strerror(errno));
            return 1;
        }
        snprintf(path, sizeof(path), "%s/certs/%s/cert.json", dir, name);
        if (write_replace(path, out) != 0) {
            fprintf(stderr, "stored_fill: writing %s: %s\n", path, strerror(errno));
            return 1;
        }
        free(out);
        filled++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("filled=%ld seconds=%.3f\n", filled, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(ca_pem);
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_privkey_deinit(ca_key);
    gnutls_x509_privkey_deinit(leaf_key);
    json_decref(tpl);
    return 0;
}
