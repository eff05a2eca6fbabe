/* Trust anchors fetched from the host by Authority Key Identifier (the
 * "JIT trust" of doc/api.md, "Trust on small devices"): what the server
 * sent, described for the host; the full check of that chain against the
 * root the host returned; and the bounded host -> root cache with a TTL.
 *
 * Nothing here opens a connection: the default transport hands in the
 * certificates libcurl saw in the failed handshake (CURLINFO_CERTINFO)
 * and retries with the cached root as its only anchor. */
#ifndef ACME_TRUST_ANCHOR_H
#define ACME_TRUST_ANCHOR_H

#include <stddef.h>
#include <stdint.h>
#include <acme/client.h>

#define TRUST_DEFAULT_ENTRIES 16u
#define TRUST_DEFAULT_TTL_S 3600u
/* A key identifier longer than this is treated as absent: real ones are
 * 20 bytes (SHA-1) or 32 (SHA-256). */
#define TRUST_MAX_KEYID 64u
/* Certificates of a server chain looked at; the rest are ignored (a
 * hostile server cannot make us parse a hundred). */
#define TRUST_MAX_LINKS 8u

typedef struct trust_link {
    char *subject;                      /* RFC 4514 */
    char *issuer;
    unsigned char skid[TRUST_MAX_KEYID];
    size_t skid_len;                    /* 0: none */
    unsigned char akid[TRUST_MAX_KEYID];
    size_t akid_len;                    /* 0: none, or issuer+serial form only */
    unsigned char *der;
    size_t der_len;
} trust_link;

struct acme_trust_chain {
    char *host;                         /* "host:port" */
    size_t count;
    trust_link links[TRUST_MAX_LINKS];
};

/* The chain from the PEM of each certificate, in the order sent (leaf
 * first). ACME_E_CRYPTO if none parses; unparsable extras are skipped. */
int trust_chain_new(const char *host, const char *const *pems, size_t n, acme_trust_chain **out);
void trust_chain_free(acme_trust_chain *ch);

/* Full verification of the chain with the certificates in roots (PEM) as
 * the only anchors: signatures, validity, basic constraints, the name
 * (hostname: no port, no brackets) and the TLS server key purpose.
 * ACME_OK, or ACME_E_TLS with *why (malloc'ed) saying what gnutls found;
 * ACME_E_INVALID_ARG when roots holds no certificate. */
int trust_chain_verify(const acme_trust_chain *ch, const char *roots, size_t roots_len,
                       const char *hostname, char **why);

/* ---- the host -> root cache ---- */

typedef struct trust_cache trust_cache;
typedef struct trust_entry trust_entry;

/* 0 means the default for either. */
int trust_cache_new(unsigned max_entries, unsigned ttl_s, trust_cache **out);
/* Entries still held by a call stay alive until released. */
void trust_cache_free(trust_cache *tc);
/* The live entry for host (a reference the caller releases), or NULL.
 * Expired entries are dropped on the way. */
trust_entry *trust_cache_get(trust_cache *tc, const char *host, uint64_t now_ms);
/* Bind host to roots (replacing its old binding). When full, the entry
 * that would expire first goes. */
int trust_cache_put(trust_cache *tc, const char *host, const char *roots, size_t len, uint64_t now_ms);
void trust_cache_drop(trust_cache *tc, const char *host);
/* Unbind e, if it is still the binding (not one made since). */
void trust_cache_forget(trust_cache *tc, const trust_entry *e);
size_t trust_cache_count(const trust_cache *tc);
void trust_entry_release(trust_entry *e);
const char *trust_entry_pem(const trust_entry *e, size_t *len);
/* A path libcurl can open for the entry's roots (a sealed memfd), or
 * NULL without /proc. */
const char *trust_entry_path(const trust_entry *e);

/* PEM into a sealed anonymous file named /proc/self/fd/N, for a libcurl
 * that reads trust only from files. *fd and *path are the caller's. */
int trust_memfd(const char *pem, size_t len, int *fd, char **path);

/* What the client keeps for the lookup (client.c owns it). */
typedef struct trust_jit {
    acme_trust_anchor_ops ops;
    void *ud;
    trust_cache *cache;
} trust_jit;

#endif
