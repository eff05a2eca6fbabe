/* The key/value settings every module's create() receives, and the few
 * readers modules share: one error sentence, lookup, bounded numbers.
 * Linked statically into each module (modules stay self-contained). */
#ifndef ACME_MODCFG_H
#define ACME_MODCFG_H

#include <stddef.h>

typedef struct modcfg {
    const char *const *keys;
    const char *const *values;
    size_t n;
    char *err;         /* create()'s error buffer */
    size_t errlen;
} modcfg;

/* Write one line into err and return code. */
int modcfg_bad(modcfg *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The value of key, or NULL. */
const char *modcfg_get(const modcfg *c, const char *key);
/* A whole number in [min, max]; def when the key is absent. */
int modcfg_uint(modcfg *c, const char *key, unsigned min, unsigned max, unsigned def, unsigned *out);

#endif
