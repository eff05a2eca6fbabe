/* base64url without padding; see b64url.h. */
#include "b64url.h"

#include <stdlib.h>
#include <string.h>

#include <acme/error.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *b64url_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    size_t olen = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
    char *out = malloc(olen + 1);
    if (!out)
        return NULL;
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = alphabet[v >> 6 & 63];
        *o++ = alphabet[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = alphabet[v >> 6 & 63];
    }
    *o = '\0';
    return out;
}

static int value_of(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

int b64url_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (slen % 4 == 1)
        return ACME_E_INVALID_ARG;
    unsigned char *buf = malloc(slen / 4 * 3 + 3 + 1);
    if (!buf)
        return ACME_E_NOMEM;
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < slen; i++) {
        int v = value_of((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            return ACME_E_INVALID_ARG;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero, or two strings would decode alike. */
    if (acc != 0) {
        free(buf);
        return ACME_E_INVALID_ARG;
    }
    buf[n] = 0;
    *out = buf;
    *outlen = n;
    return ACME_OK;
}

int b64url_is_token(const char *s, size_t max_len)
{
    if (!s || !*s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= max_len || value_of((unsigned char)s[n]) < 0)
            return 0;
    }
    return 1;
}
