/* Shared host side of the trust tests (tests/trust/it_trust*.c): a
 * trust-anchor lookup that counts its calls and records what libacme
 * showed it, and independent gnutls readers of key identifiers. */
#ifndef TTEST_H
#define TTEST_H

#include <stddef.h>
#include <acme/acme.h>

typedef struct ttest_lookup {
    const char *blob;        /* the "trust blob in flash": searched by AKID */
    size_t blob_len;
    const char *fixed;       /* when set: returned whatever was asked (a wrong root) */
    int decline;             /* answer ACME_E_DECLINED */
    int fail;                /* when not 0: answer this code (a broken lookup) */
    int calls;
    char *last_host;
    size_t last_count;
    char *last_leaf_subject;
    unsigned char last_akid[64];   /* the leaf's */
    size_t last_akid_len;
    int last_found;          /* the blob had a root for one of the AKIDs */
} ttest_lookup;

int ttest_lookup_cb(void *ud, const acme_trust_chain *ch, acme_buffer *out);
/* Install l as c's lookup (cache_entries / ttl 0 = defaults). */
void ttest_set_lookup(acme_client *c, ttest_lookup *l, unsigned entries, unsigned ttl_s);
void ttest_lookup_clear(ttest_lookup *l);

/* The SKID of the first certificate in pem, read with gnutls (not
 * libacme). Returns its length; fails the test if there is none. */
size_t ttest_skid(const char *pem, unsigned char *out, size_t cap);
/* Whole file, NUL-terminated, malloc'ed. */
char *ttest_read_file(const char *path, size_t *len);

#endif
