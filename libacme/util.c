/* Small helpers; see util.h. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void explicit_zero(void *p, size_t len)
{
    /* A volatile function pointer keeps the call from being optimised out. */
    static void *(*const volatile zero)(void *, int, size_t) = memset;
    if (p && len)
        zero(p, 0, len);
}

char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = malloc((size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

char *str_join(const char *const *parts, size_t n)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        total += strlen(parts[i]);
    char *p = malloc(total);
    if (!p)
        return NULL;
    char *at = p;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(parts[i]);
        memcpy(at, parts[i], len);
        at += len;
    }
    *at = '\0';
    return p;
}

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sleep_ms(uint64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int ascii_ncasecmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int d = lower((unsigned char)a[i]) - lower((unsigned char)b[i]);
        if (d || !a[i])
            return d;
    }
    return 0;
}

int ascii_casecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int d = lower((unsigned char)*a) - lower((unsigned char)*b);
        if (d || !*a)
            return d;
    }
}

const char *fmt_utc(int64_t t, char buf[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, 32, "%lld", (long long)t);
    return buf;
}

/* The byte at s[i] starts a character escape_controls() escapes; *len is
 * how many bytes it spans. */
static int control_at(const unsigned char *s, size_t *len)
{
    *len = 1;
    if (s[0] < 0x20 || s[0] == 0x7f)
        return 1;
    if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
        *len = 2;
        return 1;
    }
    return 0;
}

int has_controls(const char *s)
{
    size_t n;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
        if (control_at(p, &n))
            return 1;
    return 0;
}

char *escape_controls(const char *s)
{
    if (!s)
        return NULL;
    size_t len = strlen(s);
    if (len > (SIZE_MAX - 1) / 4)
        return NULL;
    char *out = malloc(len * 4 + 1), *o = out;
    if (!out)
        return NULL;
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n;
        if (control_at(p, &n)) {
            for (size_t i = 0; i < n; i++) {
                *o++ = '\\';
                *o++ = 'x';
                *o++ = hex[p[i] >> 4];
                *o++ = hex[p[i] & 15];
            }
            p += n;
        } else {
            *o++ = (char)*p++;
        }
    }
    *o = '\0';
    return out;
}

char *text_excerpt(const char *s, size_t max)
{
    if (!s)
        return strdup("(none)");
    size_t len = strlen(s);
    if (len <= max)
        return strdup(s);
    /* Back up to the start of a UTF-8 character. */
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return xasprintf("%.*s... (%zu bytes)", (int)max, s, len);
}
