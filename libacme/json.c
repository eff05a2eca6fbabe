/* Thin helpers over jansson. */
#include <stdlib.h>

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
