/* Internal crypto contract (gnutls underneath). The only files that touch
 * private key material: crypto_key.c, jws.c, csr.c, alpn_cert.c, x509.c.
 * Everything returns an acme_code (ACME_OK on success). Strings handed out
 * are malloc'ed; secret ones must be released with secure_free_str. */
#ifndef ACME_CRYPTO_H
#define ACME_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include <acme/client.h>

/* Call once before any other crypto function (idempotent, thread-safe). */
int crypto_init(void);

/* ---- keys (crypto_key.c) ---- */
typedef struct acme_key acme_key;

/* type ACME_KEY_DEFAULT means P-256. */
int key_generate(acme_key_type type, acme_key **out);
/* PEM: PKCS#8 ("PRIVATE KEY"), or "EC PRIVATE KEY" / "RSA PRIVATE KEY". */
int key_from_pem(const char *pem, size_t len, acme_key **out);
/* Unencrypted PKCS#8 PEM. Secret: release with secure_free_str. */
int key_to_pem(const acme_key *k, char **pem);
void key_free(acme_key *k);                /* zeroes; NULL is fine */
acme_key_type key_get_type(const acme_key *k);
/* "ES256", "ES384", "RS256" or "EdDSA". */
const char *key_jws_alg(const acme_key *k);
/* The public JWK (RFC 7517/7518/8037), new reference. Only the required
 * members: EC {crv,kty,x,y}, RSA {e,kty,n}, OKP {crv,kty,x}. */
json_t *key_jwk(const acme_key *k);
/* RFC 7638 thumbprint: base64url(SHA-256(canonical JWK)). */
int key_thumbprint(const acme_key *k, char **b64);
/* Sign for JWS: ECDSA as raw r||s (each left-padded to the curve size),
 * RSA PKCS#1 v1.5 SHA-256, Ed25519 pure. */
int key_sign(const acme_key *k, const void *data, size_t len,
             unsigned char **sig, size_t *siglen);

/* ---- crypto-layer internals (added with the implementation) ----
 * Only the crypto files and the unit tests use these. The gnutls types are
 * forward-declared so that including this header does not drag gnutls into
 * every protocol file. */
struct gnutls_pubkey_st;
struct gnutls_privkey_st;
/* Borrowed handles, valid as long as k lives (csr.c and x509.c sign with
 * and compare against them). */
struct gnutls_privkey_st *key_gnutls_privkey(const acme_key *k);
struct gnutls_pubkey_st *key_gnutls_pubkey(const acme_key *k);
/* Public JWK of any supported gnutls public key (P-256, P-384, RSA,
 * Ed25519); new reference, NULL if the key is of another kind. key_jwk is
 * this applied to the key's public half. */
json_t *jwk_from_pubkey(struct gnutls_pubkey_st *pub);
/* RFC 7638 thumbprint of a JWK object: only the required members of its
 * kty are hashed, in canonical form. ACME_E_INVALID_ARG if a required
 * member is missing, not a string, or needs JSON escaping (the canonical
 * form of such a value is not something we want to get subtly wrong). */
int jwk_thumbprint_json(const json_t *jwk, char **b64);

/* ---- JWS (jws.c): flattened JSON serialisation (RFC 7515 §7.2.2) ---- */
/* protected = {alg, nonce?, url, kid | jwk}. kid NULL => embed jwk.
 * nonce NULL => no nonce member (the inner JWS of keyChange).
 * payload NULL => "" (POST-as-GET). Result is a compact JSON text. */
int jws_sign(const acme_key *k, const char *kid, const char *nonce,
             const char *url, const char *payload, char **out);
/* External account binding (RFC 8555 §7.3.4): protected {alg:HS256,kid,url},
 * payload = the account key's JWK, MAC with the decoded hmac key. */
int jws_eab(const acme_key *account_key, const char *eab_kid,
            const unsigned char *hmac_key, size_t hmac_key_len,
            const char *url, json_t **out);

/* ---- digests ---- */
/* base64url(SHA-256(data)) — the dns-01 TXT value of a key authorization. */
int sha256_b64url(const void *data, size_t len, char **out);

/* ---- CSR (csr.c) ---- */
/* PKCS#10, signed by k, SANs: DNS names and IP addresses (names that parse
 * as IPv4/IPv6 become iPAddress). Subject CN = first DNS name if it fits
 * in 64 bytes, else empty subject. Output: base64url of the DER. */
int csr_create(const acme_key *k, const char *const *names, size_t n, char **b64der);

/* ---- tls-alpn-01 (alpn_cert.c) ---- */
/* RFC 8737 challenge certificate: fresh P-256 key, self-signed, single SAN
 * (dNSName, or iPAddress for an IP identifier), critical acmeIdentifier
 * extension (1.3.6.1.5.5.7.1.31) = OCTET STRING of SHA-256(key_auth),
 * valid from now-1d to now+7d. cert_pem public; key_pem secret. */
int alpn_cert_create(const char *identifier, int is_ip, const char *key_auth,
                     char **cert_pem, char **key_pem);

/* ---- certificates (x509.c) ---- */
typedef struct cert_info {
    char **names;          /* leaf SANs: DNS names and IP addresses as text */
    size_t name_count;
    int64_t not_before;    /* Unix seconds */
    int64_t not_after;
    char *issuer_cn;       /* CN of the issuer of the LAST certificate in the chain, or "" */
    char **issuer_cns;     /* CN of the issuer of every certificate, leaf first */
    size_t cert_count;
    char *serial_hex;      /* leaf serial, lower-case hex, no leading zeros stripped */
    char *ari_id;          /* RFC 9773 certID of the leaf, NULL when it has no AKI */
} cert_info;

/* Parse a PEM chain (leaf first). ACME_E_PROTOCOL if no certificate or
 * garbage between certificates. */
int cert_info_parse(const char *pem, size_t len, cert_info **out);
void cert_info_free(cert_info *ci);
/* ACME_OK if the leaf's public key is k's, else ACME_E_KEY_MISMATCH. */
int cert_matches_key(const char *pem, size_t len, const acme_key *k);
/* base64url of the leaf's DER (for revokeCert). */
int cert_leaf_b64der(const char *pem, size_t len, char **out);
/* Re-encode the chain as clean PEM (drops text outside the blocks). */
int cert_chain_normalize(const char *pem, size_t len, char **out);
/* One load of the chain for all of the above: strict as cert_info_parse
 * (else lenient as cert_chain_normalize); with k, ACME_E_KEY_MISMATCH
 * unless the leaf is k's; then *info and *normalized where non-NULL. */
int cert_chain_read(const char *pem, size_t len, int strict, const acme_key *k, char **normalized,
                    cert_info **info);

#endif
