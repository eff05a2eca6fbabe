/* Keys: generation, PEM in/out, JWK, RFC 7638 thumbprint, JWS signatures.
 * See crypto.h for the contract. */
#include "crypto.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <acme/error.h>

#include "b64url.h"
#include "buf.h"
#include "util.h"

struct acme_key {
    acme_key_type type;            /* never ACME_KEY_DEFAULT once built */
    /* The x509 object owns the secret: it is the only handle that can
     * export PKCS#8. The abstract privkey merely borrows it for signing. */
    gnutls_x509_privkey_t x509;
    gnutls_privkey_t priv;
    gnutls_pubkey_t pub;
};

/* ---- init ---- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result = ACME_E_CRYPTO;

static void do_init(void)
{
    /* gnutls initialises itself from a constructor, but an application
     * built with GNUTLS_NO_IMPLICIT_INIT would not; one extra reference that
     * is never dropped keeps us correct either way. */
    init_result = gnutls_global_init() < 0 ? ACME_E_CRYPTO : ACME_OK;
}

int crypto_init(void)
{
    if (pthread_once(&init_once, do_init) != 0)
        return ACME_E_CRYPTO;
    return init_result;
}

/* ---- digests ---- */

int sha256_b64url(const void *data, size_t len, char **out)
{
    unsigned char digest[32];
    if (!out || (!data && len))
        return ACME_E_INVALID_ARG;
    *out = NULL;
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data ? data : "", len, digest) < 0)
        return ACME_E_CRYPTO;
    *out = b64url_encode(digest, sizeof(digest));
    return *out ? ACME_OK : ACME_E_NOMEM;
}

/* ---- construction ---- */

static int curve_type(gnutls_ecc_curve_t curve, acme_key_type *type)
{
    switch (curve) {
    case GNUTLS_ECC_CURVE_SECP256R1: *type = ACME_KEY_EC_P256; return ACME_OK;
    case GNUTLS_ECC_CURVE_SECP384R1: *type = ACME_KEY_EC_P384; return ACME_OK;
    default: return ACME_E_CRYPTO;
    }
}

/* Which acme_key_type a freshly imported key is. Sizes between the named
 * RSA sizes round down: the type only selects the JWS alg and a label,
 * and every RSA key signs RS256 alike. Below 2048 bits no CA accepts it. */
static int classify(gnutls_pubkey_t pub, acme_key_type *type)
{
    unsigned bits = 0;
    int pk = gnutls_pubkey_get_pk_algorithm(pub, &bits);
    switch (pk) {
    case GNUTLS_PK_RSA:
        if (bits < 2048)
            return ACME_E_CRYPTO;
        *type = bits >= 4096 ? ACME_KEY_RSA_4096
              : bits >= 3072 ? ACME_KEY_RSA_3072 : ACME_KEY_RSA_2048;
        return ACME_OK;
    case GNUTLS_PK_ECDSA: {
        gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
        gnutls_datum_t x = { NULL, 0 }, y = { NULL, 0 };
        if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, &y, 0) < 0)
            return ACME_E_CRYPTO;
        gnutls_free(x.data);
        gnutls_free(y.data);
        return curve_type(curve, type);
    }
    case GNUTLS_PK_EDDSA_ED25519:
        *type = ACME_KEY_ED25519;
        return ACME_OK;
    default:
        /* RSA-PSS-only keys, Ed448, P-521, DSA...: nothing ACME needs. */
        return ACME_E_CRYPTO;
    }
}

/* Takes ownership of x (also on failure). type DEFAULT = work it out. */
static int key_wrap(gnutls_x509_privkey_t x, acme_key_type type, acme_key **out)
{
    acme_key *k = calloc(1, sizeof(*k));
    if (!k) {
        gnutls_x509_privkey_deinit(x);
        return ACME_E_NOMEM;
    }
    k->x509 = x;
    int rc = ACME_E_CRYPTO;
    if (gnutls_privkey_init(&k->priv) < 0) {
        k->priv = NULL;
        goto fail;
    }
    if (gnutls_privkey_import_x509(k->priv, x, 0) < 0)
        goto fail;
    if (gnutls_pubkey_init(&k->pub) < 0) {
        k->pub = NULL;
        goto fail;
    }
    if (gnutls_pubkey_import_privkey(k->pub, k->priv, 0, 0) < 0)
        goto fail;
    if (type == ACME_KEY_DEFAULT) {
        rc = classify(k->pub, &type);
        if (rc != ACME_OK)
            goto fail;
    }
    k->type = type;
    *out = k;
    return ACME_OK;
fail:
    key_free(k);
    return rc;
}

int key_generate(acme_key_type type, acme_key **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    gnutls_pk_algorithm_t pk;
    unsigned bits;
    switch (type) {
    case ACME_KEY_DEFAULT:
        type = ACME_KEY_EC_P256;
        /* fall through */
    case ACME_KEY_EC_P256:
        pk = GNUTLS_PK_ECDSA;
        bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1);
        break;
    case ACME_KEY_EC_P384:
        pk = GNUTLS_PK_ECDSA;
        bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1);
        break;
    case ACME_KEY_RSA_2048: pk = GNUTLS_PK_RSA; bits = 2048; break;
    case ACME_KEY_RSA_3072: pk = GNUTLS_PK_RSA; bits = 3072; break;
    case ACME_KEY_RSA_4096: pk = GNUTLS_PK_RSA; bits = 4096; break;
    case ACME_KEY_ED25519:
        pk = GNUTLS_PK_EDDSA_ED25519;
        bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519);
        break;
    default:
        return ACME_E_INVALID_ARG;
    }
    int rc = crypto_init();
    if (rc != ACME_OK)
        return rc;
    gnutls_x509_privkey_t x;
    if (gnutls_x509_privkey_init(&x) < 0)
        return ACME_E_NOMEM;
    if (gnutls_x509_privkey_generate2(x, pk, bits, 0, NULL, 0) < 0) {
        gnutls_x509_privkey_deinit(x);
        return ACME_E_CRYPTO;
    }
    return key_wrap(x, type, out);
}

int key_from_pem(const char *pem, size_t len, acme_key **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    if (!pem || len == 0 || (uint64_t)len > UINT32_MAX)
        return ACME_E_INVALID_ARG;
    int rc = crypto_init();
    if (rc != ACME_OK)
        return rc;
    gnutls_x509_privkey_t x;
    if (gnutls_x509_privkey_init(&x) < 0)
        return ACME_E_NOMEM;
    /* import2 without a password accepts unencrypted PKCS#8 and the
     * traditional "RSA/EC PRIVATE KEY" forms; an encrypted key fails here
     * rather than prompting, which is what a library must do. */
    gnutls_datum_t d = { (unsigned char *)pem, (unsigned)len };
    if (gnutls_x509_privkey_import2(x, &d, GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
        gnutls_x509_privkey_deinit(x);
        return ACME_E_CRYPTO;
    }
    return key_wrap(x, ACME_KEY_DEFAULT, out);
}

/* Copy a gnutls-allocated secret into our own heap (callers release with
 * secure_free_str, which must not meet gnutls' allocator) and wipe the
 * original. */
static char *take_secret_datum(gnutls_datum_t *d)
{
    char *s = malloc((size_t)d->size + 1);
    if (s) {
        memcpy(s, d->data, d->size);
        s[d->size] = '\0';
    }
    explicit_zero(d->data, d->size);
    gnutls_free(d->data);
    d->data = NULL;
    d->size = 0;
    return s;
}

int key_to_pem(const acme_key *k, char **pem)
{
    if (!k || !pem)
        return ACME_E_INVALID_ARG;
    *pem = NULL;
    gnutls_datum_t d = { NULL, 0 };
    if (gnutls_x509_privkey_export2_pkcs8(k->x509, GNUTLS_X509_FMT_PEM, NULL,
                                          GNUTLS_PKCS_PLAIN, &d) < 0)
        return ACME_E_CRYPTO;
    *pem = take_secret_datum(&d);
    return *pem ? ACME_OK : ACME_E_NOMEM;
}

void key_free(acme_key *k)
{
    if (!k)
        return;
    /* Order matters: priv borrows x509. gnutls wipes its own copies. */
    if (k->pub)
        gnutls_pubkey_deinit(k->pub);
    if (k->priv)
        gnutls_privkey_deinit(k->priv);
    if (k->x509)
        gnutls_x509_privkey_deinit(k->x509);
    explicit_zero(k, sizeof(*k));
    free(k);
}

acme_key_type key_get_type(const acme_key *k)
{
    return k ? k->type : ACME_KEY_DEFAULT;
}

const char *key_jws_alg(const acme_key *k)
{
    if (!k)
        return NULL;
    switch (k->type) {
    case ACME_KEY_EC_P256: return "ES256";
    case ACME_KEY_EC_P384: return "ES384";
    case ACME_KEY_RSA_2048:
    case ACME_KEY_RSA_3072:
    case ACME_KEY_RSA_4096: return "RS256";
    case ACME_KEY_ED25519: return "EdDSA";
    default: return NULL;
    }
}

struct gnutls_privkey_st *key_gnutls_privkey(const acme_key *k)
{
    return k ? k->priv : NULL;
}

struct gnutls_pubkey_st *key_gnutls_pubkey(const acme_key *k)
{
    return k ? k->pub : NULL;
}

/* ---- JWK ---- */

/* Write the unsigned big-endian integer d into out[0..width) right-aligned.
 * gnutls hands out integers DER-style: a 0x00 sign byte in front whenever
 * the top bit is set (always from gnutls_decode_rs_value, and from the raw
 * exports unless GNUTLS_EXPORT_FLAG_NO_LZ), and short when the value is
 * small. Neither length is what JOSE wants, so normalise here. */
static int put_fixed(unsigned char *out, size_t width, const gnutls_datum_t *d)
{
    const unsigned char *p = d->data;
    size_t n = d->size;
    while (n > 0 && p[0] == 0) {
        p++;
        n--;
    }
    if (n > width)
        return ACME_E_CRYPTO;
    memset(out, 0, width - n);
    if (n)
        memcpy(out + (width - n), p, n);
    return ACME_OK;
}

/* base64url of an unsigned integer: exactly width bytes (EC coordinates,
 * RFC 7518 §6.2.1.2), or minimal when width is 0 (RSA n and e, §6.3.1). */
static char *b64_uint(const gnutls_datum_t *d, size_t width)
{
    unsigned char buf[48];
    if (width == 0) {
        size_t skip = 0;
        while (skip + 1 < d->size && d->data[skip] == 0)
            skip++;
        if (d->size == 0)
            return NULL;
        return b64url_encode(d->data + skip, d->size - skip);
    }
    if (width > sizeof(buf) || put_fixed(buf, width, d) != ACME_OK)
        return NULL;
    return b64url_encode(buf, width);
}

static int set_str(json_t *o, const char *key, char *val)
{
    if (!val)
        return -1;
    int r = json_object_set_new(o, key, json_string(val));
    free(val);
    return r;
}

json_t *jwk_from_pubkey(struct gnutls_pubkey_st *pub)
{
    if (!pub)
        return NULL;
    json_t *jwk = json_object();
    if (!jwk)
        return NULL;
    gnutls_datum_t a = { NULL, 0 }, b = { NULL, 0 };
    int ok = 0;
    switch (gnutls_pubkey_get_pk_algorithm(pub, NULL)) {
    case GNUTLS_PK_RSA:
        if (gnutls_pubkey_export_rsa_raw2(pub, &a, &b, GNUTLS_EXPORT_FLAG_NO_LZ) < 0)
            break;
        ok = set_str(jwk, "e", b64_uint(&b, 0)) == 0
          && json_object_set_new(jwk, "kty", json_string("RSA")) == 0
          && set_str(jwk, "n", b64_uint(&a, 0)) == 0;
        break;
    case GNUTLS_PK_ECDSA: {
        gnutls_ecc_curve_t curve;
        if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &a, &b, GNUTLS_EXPORT_FLAG_NO_LZ) < 0)
            break;
        const char *crv = curve == GNUTLS_ECC_CURVE_SECP256R1 ? "P-256"
                        : curve == GNUTLS_ECC_CURVE_SECP384R1 ? "P-384" : NULL;
        size_t width = curve == GNUTLS_ECC_CURVE_SECP256R1 ? 32 : 48;
        ok = crv
          && json_object_set_new(jwk, "crv", json_string(crv)) == 0
          && json_object_set_new(jwk, "kty", json_string("EC")) == 0
          && set_str(jwk, "x", b64_uint(&a, width)) == 0
          && set_str(jwk, "y", b64_uint(&b, width)) == 0;
        break;
    }
    case GNUTLS_PK_EDDSA_ED25519: {
        gnutls_ecc_curve_t curve;
        /* An Ed25519 public key is an opaque 32-byte string, not an
         * integer: its leading zero bytes are significant, so no NO_LZ. */
        if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &a, NULL, 0) < 0)
            break;
        if (a.size != 32)
            break;
        ok = json_object_set_new(jwk, "crv", json_string("Ed25519")) == 0
          && json_object_set_new(jwk, "kty", json_string("OKP")) == 0
          && set_str(jwk, "x", b64url_encode(a.data, a.size)) == 0;
        break;
    }
    default:
        break;
    }
    gnutls_free(a.data);
    gnutls_free(b.data);
    if (!ok) {
        json_decref(jwk);
        return NULL;
    }
    return jwk;
}

json_t *key_jwk(const acme_key *k)
{
    return k ? jwk_from_pubkey(k->pub) : NULL;
}

/* A value we may copy verbatim between quotes: anything JSON would escape
 * is refused, since no valid JWK member we hash contains it. */
static int plain_json_string(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == '"' || *p == '\\')
            return 0;
    return 1;
}

int jwk_thumbprint_json(const json_t *jwk, char **b64)
{
    static const char *const ec[] = { "crv", "kty", "x", "y", NULL };
    static const char *const rsa[] = { "e", "kty", "n", NULL };
    static const char *const okp[] = { "crv", "kty", "x", NULL };
    if (!b64)
        return ACME_E_INVALID_ARG;
    *b64 = NULL;
    if (!json_is_object(jwk))
        return ACME_E_INVALID_ARG;
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty)
        return ACME_E_INVALID_ARG;
    /* The member lists are already in lexicographic (code point) order;
     * RFC 7638 §3.2 needs exactly these members, no more. */
    const char *const *members = strcmp(kty, "EC") == 0 ? ec
                               : strcmp(kty, "RSA") == 0 ? rsa
                               : strcmp(kty, "OKP") == 0 ? okp : NULL;
    if (!members)
        return ACME_E_INVALID_ARG;
    acme_buf b;
    buf_init(&b, 0);
    int rc = buf_append_str(&b, "{");
    for (size_t i = 0; members[i] && rc == ACME_OK; i++) {
        const char *v = json_string_value(json_object_get(jwk, members[i]));
        if (!v || !plain_json_string(v)) {
            rc = ACME_E_INVALID_ARG;
            break;
        }
        if (i > 0)
            rc = buf_append_str(&b, ",");
        if (rc == ACME_OK) rc = buf_append_str(&b, "\"");
        if (rc == ACME_OK) rc = buf_append_str(&b, members[i]);
        if (rc == ACME_OK) rc = buf_append_str(&b, "\":\"");
        if (rc == ACME_OK) rc = buf_append_str(&b, v);
        if (rc == ACME_OK) rc = buf_append_str(&b, "\"");
    }
    if (rc == ACME_OK)
        rc = buf_append_str(&b, "}");
    if (rc == ACME_OK)
        rc = sha256_b64url(b.data, b.len, b64);
    buf_clear(&b);
    return rc;
}

int key_thumbprint(const acme_key *k, char **b64)
{
    if (!k || !b64)
        return ACME_E_INVALID_ARG;
    *b64 = NULL;
    json_t *jwk = key_jwk(k);
    if (!jwk)
        return ACME_E_CRYPTO;
    int rc = jwk_thumbprint_json(jwk, b64);
    json_decref(jwk);
    return rc;
}

/* ---- signatures ---- */

int key_sign(const acme_key *k, const void *data, size_t len,
             unsigned char **sig, size_t *siglen)
{
    if (!k || !sig || !siglen || (!data && len) || (uint64_t)len > UINT32_MAX)
        return ACME_E_INVALID_ARG;
    *sig = NULL;
    *siglen = 0;
    gnutls_sign_algorithm_t algo;
    size_t ec_width = 0;
    switch (k->type) {
    case ACME_KEY_EC_P256: algo = GNUTLS_SIGN_ECDSA_SHA256; ec_width = 32; break;
    case ACME_KEY_EC_P384: algo = GNUTLS_SIGN_ECDSA_SHA384; ec_width = 48; break;
    case ACME_KEY_RSA_2048:
    case ACME_KEY_RSA_3072:
    case ACME_KEY_RSA_4096: algo = GNUTLS_SIGN_RSA_SHA256; break;
    case ACME_KEY_ED25519: algo = GNUTLS_SIGN_EDDSA_ED25519; break;
    default: return ACME_E_CRYPTO;
    }
    gnutls_datum_t in = { (unsigned char *)(data ? data : ""), (unsigned)len };
    gnutls_datum_t raw = { NULL, 0 };
    if (gnutls_privkey_sign_data2(k->priv, algo, 0, &in, &raw) < 0)
        return ACME_E_CRYPTO;

    int rc = ACME_OK;
    unsigned char *out = NULL;
    size_t outlen = 0;
    if (ec_width) {
        /* gnutls speaks X.509's DER SEQUENCE { r, s }; JWS (RFC 7518 §3.4)
         * wants the fixed-width concatenation. */
        gnutls_datum_t r = { NULL, 0 }, s = { NULL, 0 };
        outlen = 2 * ec_width;
        out = malloc(outlen);
        if (!out)
            rc = ACME_E_NOMEM;
        else if (gnutls_decode_rs_value(&raw, &r, &s) < 0)
            rc = ACME_E_CRYPTO;
        else if ((rc = put_fixed(out, ec_width, &r)) == ACME_OK)
            rc = put_fixed(out + ec_width, ec_width, &s);
        gnutls_free(r.data);
        gnutls_free(s.data);
    } else {
        /* RFC 7518 §3.3 / RFC 8017: an RSA signature is exactly as long as
         * the modulus. Pad defensively in case a back end trims zeros. */
        size_t modlen = raw.size;
        if (algo == GNUTLS_SIGN_RSA_SHA256) {
            unsigned bits = 0;
            gnutls_pubkey_get_pk_algorithm(k->pub, &bits);
            modlen = (bits + 7) / 8;
        }
        if (raw.size > modlen) {
            rc = ACME_E_CRYPTO;
        } else {
            outlen = modlen;
            out = malloc(outlen ? outlen : 1);
            if (!out) {
                rc = ACME_E_NOMEM;
            } else {
                memset(out, 0, outlen - raw.size);
                memcpy(out + (outlen - raw.size), raw.data, raw.size);
            }
        }
    }
    gnutls_free(raw.data);
    if (rc != ACME_OK) {
        free(out);
        return rc;
    }
    *sig = out;
    *siglen = outlen;
    return ACME_OK;
}
