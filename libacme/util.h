/* Small helpers every file may use. */
#ifndef ACME_UTIL_H
#define ACME_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <acme/export.h>

/* memset that the compiler may not drop. */
void explicit_zero(void *p, size_t len);
/* strdup that returns NULL for NULL. */
char *xstrdup(const char *s);
/* malloc'ed printf. NULL on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The n strings one after another, malloc'ed (NULL when out of memory).
 * For the long texts of every request (a JWS is kilobytes of base64):
 * printf's "%s" costs several times a copy there. */
char *str_join(const char *const *parts, size_t n);
/* Monotonic milliseconds. */
uint64_t now_ms(void);
/* Sleep, in milliseconds. */
void sleep_ms(uint64_t ms);
/* "2031-11-23 15:02:03 UTC" for log lines people read. */
const char *fmt_utc(int64_t t, char buf[32]);
/* Case-insensitive ASCII compare of n bytes / whole strings. */
int ascii_casecmp(const char *a, const char *b);
int ascii_ncasecmp(const char *a, const char *b, size_t n);
/* Text from the CA made safe for one log line: C0 controls, DEL and the
 * UTF-8 form of C1 controls (U+0080..U+009F) become "\xNN" (one escape per
 * byte), so a CA cannot end a line or send a terminal escape through us.
 * Everything else is kept. malloc'ed; NULL on NULL or out of memory. */
char *escape_controls(const char *s);
/* 1 if s holds a byte escape_controls() would escape. */
int has_controls(const char *s);
/* At most max bytes of s for a message ("..." appended when cut; never
 * cuts inside a UTF-8 sequence). malloc'ed; "(none)" for NULL. */
char *text_excerpt(const char *s, size_t max);

#endif
