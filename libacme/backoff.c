/* Retry schedule after failed orders, persisted per set of names, and
 * the CA's "paused" signal. See backoff.h and doc/engine.md. */
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "buf.h"
#include "crypto.h"
#include "internal.h"
#include "util.h"

#define BACKOFF_CAP (16 * 1024)

unsigned backoff_delay_s(unsigned failures, unsigned min_s, unsigned max_s)
{
    if (failures == 0)
        return 0;
    uint64_t d = min_s;
    if (failures >= 4)
        d = max_s;
    else
        for (unsigned i = 1; i < failures; i++)
            d *= 10;
    return d > max_s ? max_s : (unsigned)d;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One key per set of names, whatever their order or case: the CA's
 * limits count the set ("exact set of identifiers"). */
static char *rec_key(const char *const *names, size_t n)
{
    char **f = calloc(n ? n : 1, sizeof(char *));
    if (!f)
        return NULL;
    acme_buf b;
    buf_init(&b, 0);
    char *key = NULL, *h = NULL;
    size_t i;
    for (i = 0; i < n; i++) {
        if (!(f[i] = strdup(names[i])))
            goto out;
        for (char *p = f[i]; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    }
    qsort(f, n, sizeof(char *), cmp_str);
    for (i = 0; i < n; i++)
        if (buf_append(&b, f[i], strlen(f[i])) || buf_append(&b, "\n", 1))
            goto out;
    if (sha256_b64url(b.data ? b.data : "", b.len, &h) == 0)
        key = xasprintf("backoff/%s.json", h);
out:
    for (i = 0; i < n; i++)
        free(f[i]);
    free(f);
    free(h);
    buf_clear(&b);
    return key;
}

int backoff_load(acme_client *c, const char *const *names, size_t n, backoff_rec *out)
{
    memset(out, 0, sizeof(*out));
    char *key = rec_key(names, n);
    if (!key)
        return -1;
    json_t *o = store_get_advice(c, key, BACKOFF_CAP);
    free(key);
    if (!o)
        return -1;
    json_t *f = json_object_get(o, "failures"), *u = json_object_get(o, "until");
    int rc = -1;
    if (json_is_integer(f) && json_is_integer(u) && json_integer_value(f) > 0) {
        out->failures = json_integer_value(f) > 1000 ? 1000u : (unsigned)json_integer_value(f);
        out->until = (int64_t)json_integer_value(u);
        const char *e = json_str(o, "error");
        out->error = e ? strdup(e) : NULL;
        rc = 0;
    }
    json_decref(o);
    return rc;
}

void backoff_save(acme_client *c, const char *const *names, size_t n, const backoff_rec *r)
{
    char *key = rec_key(names, n);
    json_t *jn = json_array();
    for (size_t i = 0; jn && i < n; i++)
        json_array_append_new(jn, json_string(names[i]));
    json_t *o = key && jn ? json_pack("{s:O,s:I,s:I}", "names", jn, "failures", (json_int_t)r->failures, "until",
                                      (json_int_t)r->until)
                          : NULL;
    if (o && r->error)
        json_object_set_new(o, "error", json_string(r->error));
    char *text = o ? json_text(o) : NULL;
    /* Durable: the point is that a restart sees it. */
    if (text && store_put(c, key, text, strlen(text), 0) != ACME_OK)
        alog(c, ACME_LOG_WARNING, "engine: could not keep the retry schedule of %s (%s); a restart will retry "
             "sooner", n ? names[0] : "?", c->last_error ? c->last_error : "storage failed");
    result_reset(c);
    free(text);
    json_decref(o);
    json_decref(jn);
    free(key);
}

void backoff_clear(acme_client *c, const char *const *names, size_t n)
{
    char *key = rec_key(names, n);
    if (key)
        store_remove(c, key);
    result_reset(c);
    free(key);
}

void backoff_rec_free(backoff_rec *r)
{
    free(r->error);
    r->error = NULL;
}

/* The CA's page to unpause at: the first https URL in the detail. */
static char *find_url(const char *detail)
{
    const char *s = strstr(detail, "https://");
    if (!s)
        return NULL;
    size_t n = strcspn(s, " \t\r\n\"'<>");
    while (n > 8 && (s[n - 1] == '.' || s[n - 1] == ',' || s[n - 1] == ')'))
        n--;
    return strndup(s, n);
}

int backoff_paused(const acme_problem *p, char **url)
{
    if (url)
        *url = NULL;
    if (!p)
        return 0;
    const char *d = acme_problem_detail(p);
    /* Let's Encrypt's words (its problem is rateLimited or unauthorized,
     * so the type alone cannot tell a pause from a plain limit); the
     * unpause link is the reliable part. */
    if (d && (strstr(d, "temporarily prevented from requesting certificates") || strstr(d, "/unpause"))) {
        if (url)
            *url = find_url(d);
        return 1;
    }
    for (size_t i = 0; i < acme_problem_subproblem_count(p); i++)
        if (backoff_paused(acme_problem_subproblem(p, i), url))
            return 1;
    return 0;
}

char *backoff_paused_sentence(const char *first_name, const char *url)
{
    if (url)
        return xasprintf("the CA has paused new certificates for %s on this account after too many failed "
                         "validations; fix what made validation fail, then unpause at %s (open it in a browser); "
                         "until then one attempt a day", first_name, url);
    return xasprintf("the CA has paused new certificates for %s on this account after too many failed "
                     "validations; fix what made validation fail, then unpause it on the CA's web site (its "
                     "problem detail says where); until then one attempt a day", first_name);
}
