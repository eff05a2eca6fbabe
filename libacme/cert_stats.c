/* The stored history of a certificate (cert_stats.h). */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cert_stats.h"
#include "internal.h"
#include "util.h"

#define STATS_CAP (4 * 1024)

char *cert_stats_key(const char *cert_id) { return xasprintf("stats/%s.json", cert_id); }

int cert_stats_load(acme_client *c, const char *cert_id, cert_stats *out)
{
    memset(out, 0, sizeof(*out));
    char *key = cert_stats_key(cert_id);
    if (!key)
        return -1;
    json_t *o = store_get_advice(c, key, STATS_CAP);
    free(key);
    if (!o)
        return -1;
    json_t *a = json_object_get(o, "attempts"), *s = json_object_get(o, "last_success");
    int rc = -1;
    /* A record that does not parse as ours counts as none: the values are
     * advice for people, not worth an error. */
    if (json_is_integer(a) && json_integer_value(a) >= 0 && json_integer_value(a) <= 0x7fffffff &&
        json_is_integer(s) && json_integer_value(s) >= 0) {
        out->attempts = (unsigned)json_integer_value(a);
        out->last_success = (int64_t)json_integer_value(s);
        rc = 0;
    }
    json_decref(o);
    return rc;
}

void cert_stats_save(acme_client *c, const char *cert_id, const cert_stats *s)
{
    char *key = cert_stats_key(cert_id);
    json_t *o = key ? json_pack("{s:s,s:I,s:I}", "cert_id", cert_id, "attempts", (json_int_t)s->attempts,
                                "last_success", (json_int_t)s->last_success)
                    : NULL;
    char *text = o ? json_text(o) : NULL;
    if (!text || store_put(c, key, text, strlen(text), 0) != ACME_OK)
        alog(c, ACME_LOG_WARNING, "engine: could not keep the order count of %s (%s); after a restart its "
             "status and metrics start from what was kept before", cert_id,
             c->last_error ? c->last_error : "out of memory");
    result_reset(c);
    free(text);
    json_decref(o);
    free(key);
}
