/* JWS in the flattened JSON serialisation, and the EAB inner JWS.
 * See crypto.h for the contract. */
#include "crypto.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include <acme/error.h>

#include "b64url.h"
#include "buf.h"
#include "util.h"

/* Sorted and compact so the same inputs always give the same bytes: the
 * signature covers this exact text, and stable output makes tests and
 * debugging saner. */
#define JWS_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

/* base64url(JSON text of o). */
static int b64_json(const json_t *o, char **out)
{
    char *txt = json_dumps(o, JWS_JSON_FLAGS);
    if (!txt)
        return ACME_E_NOMEM;
    *out = b64url_encode(txt, strlen(txt));
    free(txt);
    return *out ? ACME_OK : ACME_E_NOMEM;
}

/* json_string refuses invalid UTF-8; a URL or nonce like that is the
 * caller's (or the server's) fault, not an allocation failure. */
static int set_text(json_t *o, const char *key, const char *val)
{
    json_t *s = json_string(val);
    if (!s)
        return ACME_E_INVALID_ARG;
    return json_object_set_new(o, key, s) == 0 ? ACME_OK : ACME_E_NOMEM;
}

/* "<b64 protected>.<b64 payload>": the JWS Signing Input (RFC 7515 §5.1). */
static char *signing_input(const char *prot, const char *payload)
{
    const char *parts[] = {prot, ".", payload};
    return str_join(parts, 3);
}

int jws_sign(const acme_key *k, const char *kid, const char *nonce,
             const char *url, const char *payload, char **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    if (!k || !url)
        return ACME_E_INVALID_ARG;
    const char *alg = key_jws_alg(k);
    if (!alg)
        return ACME_E_CRYPTO;

    int rc;
    char *prot = NULL, *pay = NULL, *input = NULL, *sig64 = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    json_t *hdr = json_object();
    if (!hdr)
        return ACME_E_NOMEM;
    rc = set_text(hdr, "alg", alg);
    if (rc == ACME_OK && nonce)
        rc = set_text(hdr, "nonce", nonce);
    if (rc == ACME_OK)
        rc = set_text(hdr, "url", url);
    if (rc == ACME_OK) {
        if (kid) {
            rc = set_text(hdr, "kid", kid);
        } else {
            json_t *jwk = key_jwk(k);
            if (!jwk)
                rc = ACME_E_CRYPTO;
            else if (json_object_set_new(hdr, "jwk", jwk) != 0)
                rc = ACME_E_NOMEM;
        }
    }
    if (rc == ACME_OK)
        rc = b64_json(hdr, &prot);
    if (rc == ACME_OK) {
        /* POST-as-GET (RFC 8555 §6.3) signs an empty payload, which is
         * not the same as the base64 of "{}" or of "". */
        pay = payload ? b64url_encode(payload, strlen(payload)) : strdup("");
        if (!pay)
            rc = ACME_E_NOMEM;
    }
    if (rc == ACME_OK && !(input = signing_input(prot, pay)))
        rc = ACME_E_NOMEM;
    if (rc == ACME_OK)
        rc = key_sign(k, input, strlen(input), &sig, &siglen);
    if (rc == ACME_OK && !(sig64 = b64url_encode(sig, siglen)))
        rc = ACME_E_NOMEM;
    if (rc == ACME_OK) {
        /* Every piece is base64url, so plain formatting cannot produce
         * invalid JSON and keeps the member order human-friendly. */
        const char *parts[] = {"{\"protected\":\"", prot, "\",\"payload\":\"", pay, "\",\"signature\":\"", sig64,
                               "\"}"};
        *out = str_join(parts, sizeof(parts) / sizeof(parts[0]));
        if (!*out)
            rc = ACME_E_NOMEM;
    }
    json_decref(hdr);
    free(prot);
    free(pay);
    free(input);
    free(sig);
    free(sig64);
    return rc;
}

int jws_eab(const acme_key *account_key, const char *eab_kid,
            const unsigned char *hmac_key, size_t hmac_key_len,
            const char *url, json_t **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    /* An empty MAC key would "work" and authenticate nothing. */
    if (!account_key || !eab_kid || !*eab_kid || !hmac_key || hmac_key_len == 0 || !url)
        return ACME_E_INVALID_ARG;

    int rc;
    char *prot = NULL, *pay = NULL, *input = NULL, *sig64 = NULL;
    unsigned char mac[32];
    json_t *jwk = key_jwk(account_key);
    json_t *hdr = json_object();
    json_t *res = NULL;
    if (!jwk || !hdr) {
        rc = jwk ? ACME_E_NOMEM : ACME_E_CRYPTO;
        goto done;
    }
    rc = set_text(hdr, "alg", "HS256");
    if (rc == ACME_OK)
        rc = set_text(hdr, "kid", eab_kid);
    if (rc == ACME_OK)
        rc = set_text(hdr, "url", url);
    if (rc == ACME_OK)
        rc = b64_json(hdr, &prot);
    /* RFC 8555 §7.3.4: the payload is the account's JWK, the same one the
     * outer JWS carries. */
    if (rc == ACME_OK)
        rc = b64_json(jwk, &pay);
    if (rc == ACME_OK && !(input = signing_input(prot, pay)))
        rc = ACME_E_NOMEM;
    if (rc == ACME_OK &&
        gnutls_hmac_fast(GNUTLS_MAC_SHA256, hmac_key, hmac_key_len,
                         input, strlen(input), mac) < 0)
        rc = ACME_E_CRYPTO;
    if (rc == ACME_OK && !(sig64 = b64url_encode(mac, sizeof(mac))))
        rc = ACME_E_NOMEM;
    if (rc == ACME_OK) {
        res = json_pack("{s:s, s:s, s:s}", "protected", prot, "payload", pay,
                        "signature", sig64);
        if (!res)
            rc = ACME_E_NOMEM;
    }
done:
    json_decref(jwk);
    json_decref(hdr);
    free(prot);
    free(pay);
    free(input);
    free(sig64);
    if (rc == ACME_OK)
        *out = res;
    return rc;
}
