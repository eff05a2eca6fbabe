/* Identifiers from the command line are checked here, before anything is
 * sent: a typo should cost nothing, and a name such as "../etc" must never
 * come near a file name (the certificate id and --out files derive from
 * it). libacme checks too, but only after it has contacted the CA. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "acmectl.h"

static int is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int label_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

int name_check(const char *name, char *err, size_t errlen)
{
    size_t len = strlen(name);
    if (len == 0) {
        bprintf(err, errlen, "an empty name");
        return -1;
    }
    if (is_ip(name))
        return 0;
    const char *p = name;
    if (strncmp(p, "*.", 2) == 0)
        p += 2; /* a wildcard: one "*." in front, nowhere else */
    if (len > 253) {
        bprintf(err, errlen, "\"%s\" is longer than 253 characters", name);
        return -1;
    }
    if (!*p) {
        bprintf(err, errlen, "\"%s\" has no name after the wildcard", name);
        return -1;
    }
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0) {
            bprintf(err, errlen, "\"%s\" has an empty label (\"..\" or a leading/trailing dot)", name);
            return -1;
        }
        if (n > 63) {
            bprintf(err, errlen, "\"%s\" has a label longer than 63 characters", name);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c >= 0x80) {
                bprintf(err, errlen, "\"%s\" is not ASCII: give an internationalized name in its "
                         "xn-- (punycode) form", name);
                return -1;
            }
            if (!label_char(c)) {
                bprintf(err, errlen, "\"%s\" contains '%c', which a DNS name cannot (letters, digits, "
                         "'-' and '.' only; '*.' only in front)", name, c == ' ' || c >= 0x21 ? c : '?');
                return -1;
            }
        }
        if (p[0] == '-' || p[n - 1] == '-') {
            bprintf(err, errlen, "\"%s\" has a label starting or ending with '-'", name);
            return -1;
        }
        p += n;
        if (*p == '.') {
            p++;
            if (!*p) {
                bprintf(err, errlen, "\"%s\" ends with a dot: give the name without it", name);
                return -1;
            }
        }
    }
    return 0;
}
