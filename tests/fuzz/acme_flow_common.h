/* Shared by the ACME flow fuzz target and the tool that captures its seeds
 * from a real Pebble: what is ordered, and the memory storage both use.
 * An input of the flow target is the CA's side of one acme_issue run:
 * one HTTP response per request, in order, separated by FUZZ_SEP, each
 * as "HTTP/1.1 <status>\r\n", header lines, an empty line, the body. */
#ifndef FUZZ_ACME_FLOW_COMMON_H
#define FUZZ_ACME_FLOW_COMMON_H

#include <stdlib.h>
#include <string.h>

#include <acme/acme.h>

#define FLOW_DIRECTORY "https://ca.invalid/dir"
static const char *const flow_names[] = {"fuzz.test", "*.fuzz.test", "127.0.0.1"};
#define FLOW_NAME_COUNT 3
static const acme_challenge_type flow_challenges[] = {ACME_CHALLENGE_HTTP_01, ACME_CHALLENGE_DNS_01,
                                                      ACME_CHALLENGE_TLS_ALPN_01};

/* ---- memory storage: no file is written by a fuzz run ---- */
#define MEM_MAX 64
typedef struct mem_entry {
    char *key;
    char *data;
    size_t len;
} mem_entry;
typedef struct mem_store {
    mem_entry e[MEM_MAX];
    size_t n;
} mem_store;

static mem_entry *mem_find(mem_store *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->e[i].key, key))
            return &s->e[i];
    return NULL;
}

static int mem_get(void *ud, const char *key, acme_buffer *out)
{
    mem_entry *e = mem_find(ud, key);
    if (!e)
        return ACME_E_NOT_FOUND;
    return acme_buffer_append(out, e->data, e->len);
}

static int mem_put(void *ud, const char *key, const void *data, size_t len, unsigned flags)
{
    mem_store *s = ud;
    (void)flags;
    mem_entry *e = mem_find(s, key);
    if (!e) {
        if (s->n == MEM_MAX)
            return ACME_E_STORAGE;
        e = &s->e[s->n++];
        e->key = strdup(key);
        e->data = NULL;
    }
    char *d = malloc(len + 1);
    if (!e->key || !d) {
        free(d);
        return ACME_E_NOMEM;
    }
    if (len)
        memcpy(d, data, len);
    d[len] = '\0';
    free(e->data);
    e->data = d;
    e->len = len;
    return ACME_OK;
}

static int mem_remove(void *ud, const char *key)
{
    mem_store *s = ud;
    mem_entry *e = mem_find(s, key);
    if (e) {
        free(e->key);
        free(e->data);
        *e = s->e[--s->n];
    }
    return ACME_OK;
}

static int mem_list(void *ud, const char *prefix, acme_storage_list_cb cb, void *cbdata)
{
    mem_store *s = ud;
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < s->n; i++)
        if (!strncmp(s->e[i].key, prefix, pl) && cb(cbdata, s->e[i].key))
            break;
    return ACME_OK;
}

static void mem_clear(mem_store *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->e[i].key);
        free(s->e[i].data);
    }
    s->n = 0;
}

static const acme_storage_ops mem_ops = {
    .size = sizeof(acme_storage_ops),
    .get = mem_get,
    .put = mem_put,
    .remove = mem_remove,
    .list = mem_list,
};

#endif
