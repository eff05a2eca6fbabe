/* Shared readers for module settings; see modcfg.h. */
#include "modcfg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <acme/error.h>

int modcfg_bad(modcfg *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    /* The sentence quotes values as given; a CR, LF or escape inside one
     * must not break the "one line" the module ABI promises. */
    for (char *p = c->err; c->errlen && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return code;
}

const char *modcfg_get(const modcfg *c, const char *key)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->keys[i], key))
            return c->values[i];
    return NULL;
}

int modcfg_uint(modcfg *c, const char *key, unsigned min, unsigned max, unsigned def, unsigned *out)
{
    const char *v = modcfg_get(c, key);
    if (!v) {
        *out = def;
        return ACME_OK;
    }
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || errno || *v == '-' || *v == '+' || n < min || n > max)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "%s=%s: want a whole number from %u to %u", key, v, min, max);
    *out = (unsigned)n;
    return ACME_OK;
}
