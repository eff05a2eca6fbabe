/* base64url without padding (RFC 4648 §5), as JOSE and ACME use it. */
#ifndef ACME_B64URL_H
#define ACME_B64URL_H

#include <stddef.h>

/* malloc'ed, NUL-terminated; NULL on allocation failure. */
char *b64url_encode(const void *data, size_t len);
/* Strict: only the 64 url-safe characters, no padding, no whitespace, no
 * impossible trailing bits. ACME_OK or ACME_E_INVALID_ARG / ACME_E_NOMEM.
 * *out is malloc'ed (NUL-terminated for convenience). */
int b64url_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen);
/* 1 if s is a non-empty string of only [A-Za-z0-9_-], at most max_len long.
 * This is the guard every challenge token passes before a host sees it. */
int b64url_is_token(const char *s, size_t max_len);

#endif
