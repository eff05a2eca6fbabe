/* Which challenges the CA validated, for the hook's "done" or "failed".
 *
 * libacme's unpublish does not say: it takes challenges down after the
 * whole order, and before placing a new order when one failed. What it
 * does say, on its log, is "<type> for <ident>: valid" and "<type> for
 * <ident> failed". Those lines are noted here, keyed by type and
 * identifier; publishing the same again forgets the old answer. */
#include <stdlib.h>
#include <string.h>

#include "acmectl.h"

#define MAX_OUTCOMES 64

struct outcomes {
    struct { char key[300]; int valid; } v[MAX_OUTCOMES];
    size_t n;
};

outcomes *outcomes_new(void)
{
    return calloc(1, sizeof(outcomes));
}

void outcomes_free(outcomes *oc)
{
    free(oc);
}

static void set(outcomes *oc, const char *key, size_t keylen, int valid)
{
    if (keylen >= sizeof(oc->v[0].key))
        return;
    size_t i;
    for (i = 0; i < oc->n; i++)
        if (strlen(oc->v[i].key) == keylen && !strncmp(oc->v[i].key, key, keylen))
            break;
    if (i == oc->n) {
        if (oc->n == MAX_OUTCOMES) {
            /* Full: drop the oldest, the least likely to be asked for. */
            memmove(&oc->v[0], &oc->v[1], sizeof(oc->v[0]) * (MAX_OUTCOMES - 1));
            i = --oc->n;
        }
        oc->n++;
        memcpy(oc->v[i].key, key, keylen);
        oc->v[i].key[keylen] = '\0';
    }
    oc->v[i].valid = valid;
}

void outcomes_note(outcomes *oc, const char *msg)
{
    static const char *const types[] = {"http-01 for ", "tls-alpn-01 for ", "dns-01 for "};
    for (size_t t = 0; oc && t < 3; t++) {
        if (strncmp(msg, types[t], strlen(types[t])) != 0)
            continue;
        const char *ident = msg + strlen(types[t]);
        size_t n = strcspn(ident, ": ");
        if (!strcmp(ident + n, ": valid"))
            set(oc, msg, (size_t)(ident + n - msg), 1);
        else if (!strncmp(ident + n, " failed", 7))
            set(oc, msg, (size_t)(ident + n - msg), 0);
    }
}

int outcomes_get(outcomes *oc, const chal_rec *x, int forget)
{
    char key[300];
    const char *type = acme_challenge_type_name(x->type);
    /* libacme names a wildcard's authorization "*.name" or "name". */
    for (int pass = x->wildcard ? 0 : 1; oc && pass < 2; pass++) {
        bprintf(key, sizeof(key), "%s for %s%s", type, pass == 0 ? "*." : "", x->ident);
        for (size_t i = 0; i < oc->n; i++) {
            if (strcmp(oc->v[i].key, key) != 0)
                continue;
            if (forget)
                oc->v[i].valid = -1;
            else if (oc->v[i].valid >= 0)
                return oc->v[i].valid;
        }
    }
    return -1;
}
