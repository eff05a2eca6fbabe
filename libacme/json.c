/* Thin helpers over jansson. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

json_t *json_parse_object(const char *text, size_t len)
{
    if (!text)
        return NULL;
    json_error_t err;
    /* REJECT_DUPLICATES: two "status" members would let a server say two things. */
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

const char *json_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

char *json_text(json_t *v)
{
    return json_dumps(v, JSON_COMPACT);
}

int json_append_ascii_string(acme_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (buf_append(b, "\"", 1))
        return ACME_E_NOMEM;
    const char *run = s;
    for (const char *p = s;; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch >= 0x80)
            return ACME_E_INVALID_ARG;
        /* Copy the plain run up to here in one piece: a PEM is kilobytes
         * of base64 with a newline every 64 characters. */
        if (ch && ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        if (buf_append(b, run, (size_t)(p - run)))
            return ACME_E_NOMEM;
        if (!ch)
            break;
        char esc[6] = {'\\', (char)ch, 0, 0, 0, 0};
        size_t n = 2;
        if (ch == '\n') {
            esc[1] = 'n';
        } else if (ch < 0x20) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            n = 6;
        }
        if (buf_append(b, esc, n))
            return ACME_E_NOMEM;
        run = p + 1;
    }
    return buf_append(b, "\"", 1) ? ACME_E_NOMEM : ACME_OK;
}
