/* Growable byte buffer: the one container every layer passes bytes in.
 * Also the concrete type behind the public acme_buffer. */
#ifndef ACME_BUF_H
#define ACME_BUF_H

#include <stddef.h>

struct acme_buffer {
    char *data;     /* always NUL-terminated when non-NULL (not counted in len) */
    size_t len;
    size_t cap;
    size_t limit;   /* 0 = no cap; otherwise append fails with ACME_E_TOO_LARGE */
    int secret;     /* zero the memory when it is released or moved */
};
typedef struct acme_buffer acme_buf;

void buf_init(acme_buf *b, size_t limit);
int buf_append(acme_buf *b, const void *data, size_t len);
int buf_append_str(acme_buf *b, const char *s);
/* Hand the NUL-terminated contents to the caller (free with free or
 * secure_free); the buffer is left empty. Never NULL on success (may be ""). */
char *buf_steal(acme_buf *b, size_t *len);
void buf_clear(acme_buf *b);   /* zeroes first when secret */

/* Zero then free. For key material. */
void secure_free(void *p, size_t len);
/* secure_free for NUL-terminated strings. */
void secure_free_str(char *s);

#endif
