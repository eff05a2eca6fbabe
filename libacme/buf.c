/* Growable byte buffer; see buf.h. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include <acme/error.h>
#include <acme/storage.h>

#include "util.h"

void buf_init(acme_buf *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

static int buf_reserve(acme_buf *b, size_t need)
{
    if (need + 1 <= b->cap)
        return ACME_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need + 1) {
        if (cap > SIZE_MAX / 2)
            return ACME_E_NOMEM;
        cap *= 2;
    }
    char *p = malloc(cap);
    if (!p)
        return ACME_E_NOMEM;
    if (b->data) {
        memcpy(p, b->data, b->len + 1);
        /* Secret buffers never leave stale copies on the heap. */
        if (b->secret)
            explicit_zero(b->data, b->cap);
        free(b->data);
    }
    b->data = p;
    b->cap = cap;
    return ACME_OK;
}

int buf_append(acme_buf *b, const void *data, size_t len)
{
    if (len > SIZE_MAX - b->len - 1)
        return ACME_E_NOMEM;
    if (b->limit && b->len + len > b->limit)
        return ACME_E_TOO_LARGE;
    int rc = buf_reserve(b, b->len + len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return ACME_OK;
}

int buf_append_str(acme_buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

char *buf_steal(acme_buf *b, size_t *len)
{
    if (!b->data && buf_reserve(b, 0))
        return NULL;
    if (!b->data)
        return NULL;
    b->data[b->len] = '\0';
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void buf_clear(acme_buf *b)
{
    if (b->data) {
        if (b->secret)
            explicit_zero(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}

void secure_free(void *p, size_t len)
{
    if (!p)
        return;
    explicit_zero(p, len);
    free(p);
}

void secure_free_str(char *s)
{
    if (s)
        secure_free(s, strlen(s));
}

ACME_EXPORT int acme_buffer_append(acme_buffer *buf, const void *data, size_t len)
{
    if (!buf || (!data && len))
        return ACME_E_INVALID_ARG;
    return buf_append(buf, data, len);
}

ACME_EXPORT acme_buffer *acme_buffer_new(void)
{
    acme_buffer *b = calloc(1, sizeof(*b));
    if (b) {
        buf_init(b, 0);
        b->secret = 1;
    }
    return b;
}

ACME_EXPORT void acme_buffer_free(acme_buffer *buf)
{
    if (!buf)
        return;
    buf_clear(buf);
    free(buf);
}

ACME_EXPORT const char *acme_buffer_data(const acme_buffer *buf)
{
    return (buf && buf->data) ? buf->data : "";
}

ACME_EXPORT size_t acme_buffer_len(const acme_buffer *buf)
{
    return buf ? buf->len : 0;
}
