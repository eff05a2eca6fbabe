/* Challenge history (libacme/history.c): what it remembers, that one record
 * costs the same number of storage operations and bytes whatever the
 * number of identifiers, that old records age out, that the legacy single
 * file is migrated, and that a new client (a restart) reads what an earlier
 * one wrote.
 *
 * The storage is an in-memory host table (the ABI's acme_storage_ops) that
 * counts what libacme asks of it: cost is measured in operations and bytes,
 * not seconds, so the test holds on a busy machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <acme/acme.h>
#include "history.h"

typedef struct {
    char *key;
    char *val;
    size_t len;
} entry;

typedef struct {
    entry *e;
    size_t n, cap;
    size_t gets, puts, removes, lists;
    size_t bytes_read, bytes_written;
} memstore;

static entry *find(memstore *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->e[i].key, key) == 0)
            return &m->e[i];
    return NULL;
}

static int ms_get(void *ud, const char *key, acme_buffer *out)
{
    memstore *m = ud;
    m->gets++;
    entry *e = find(m, key);
    if (!e)
        return ACME_E_NOT_FOUND;
    m->bytes_read += e->len;
    return acme_buffer_append(out, e->val, e->len);
}

static int ms_put(void *ud, const char *key, const void *data, size_t len, unsigned flags)
{
    (void)flags;
    memstore *m = ud;
    m->puts++;
    m->bytes_written += len;
    entry *e = find(m, key);
    if (!e) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 64;
            m->e = realloc(m->e, m->cap * sizeof *m->e);
            assert_non_null(m->e);
        }
        e = &m->e[m->n++];
        e->key = strdup(key);
        e->val = NULL;
    }
    free(e->val);
    e->val = malloc(len + 1);
    memcpy(e->val, data, len);
    e->val[len] = '\0';
    e->len = len;
    return ACME_OK;
}

static int ms_remove(void *ud, const char *key)
{
    memstore *m = ud;
    m->removes++;
    entry *e = find(m, key);
    if (e) {
        free(e->key);
        free(e->val);
        *e = m->e[--m->n];
    }
    return ACME_OK;
}

static int ms_list(void *ud, const char *prefix, acme_storage_list_cb cb, void *cbdata)
{
    memstore *m = ud;
    m->lists++;
    /* Collect first: the callback may remove entries. */
    size_t n = 0;
    char **keys = calloc(m->n + 1, sizeof *keys);
    for (size_t i = 0; i < m->n; i++)
        if (strncmp(m->e[i].key, prefix, strlen(prefix)) == 0)
            keys[n++] = strdup(m->e[i].key);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = cb(cbdata, keys[i]);
        free(keys[i]);
    }
    free(keys);
    return ACME_OK;
}

static int ms_lock(void *ud, const char *name, unsigned lease)
{
    (void)ud, (void)name, (void)lease;
    return ACME_OK;
}

static int ms_unlock(void *ud, const char *name)
{
    (void)ud, (void)name;
    return ACME_OK;
}

static const acme_storage_ops ms_ops = {
    .size = sizeof(acme_storage_ops), .get = ms_get, .put = ms_put, .remove = ms_remove,
    .list = ms_list, .lock = ms_lock, .unlock = ms_unlock,
};

static void ms_free(memstore *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].key);
        free(m->e[i].val);
    }
    free(m->e);
    memset(m, 0, sizeof *m);
}

static size_t ms_count_prefix(memstore *m, const char *infix)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += strstr(m->e[i].key, infix) != NULL;
    return n;
}

static acme_client *client_on(memstore *m)
{
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("https://ca.example/dir", &c), ACME_OK);
    assert_int_equal(acme_client_set_storage(c, &ms_ops, m), ACME_OK);
    return c;
}

static long score(json_t *scores, const char *type)
{
    return (long)json_integer_value(json_object_get(scores, type));
}

#define T0 1800000000LL

static void remembers_per_identifier_and_tally(void **state)
{
    (void)state;
    memstore m = {0};
    acme_client *c = client_on(&m);
    history_record_at(c, "a.example", "http-01", 1, T0);
    history_record_at(c, "A.Example", "http-01", 1, T0);  /* same name */
    history_record_at(c, "a.example", "dns-01", 0, T0);
    history_record_at(c, "*.b.example", "dns-01", 1, T0);

    json_t *s = history_scores_at(c, "a.EXAMPLE", T0);
    assert_int_equal(score(s, "http-01"), 2);
    assert_int_equal(score(s, "dns-01"), -1);
    json_decref(s);
    /* A wildcard is its own identifier. */
    s = history_scores_at(c, "*.b.example", T0);
    assert_int_equal(score(s, "dns-01"), 1);
    assert_int_equal(score(s, "http-01"), 0);
    json_decref(s);
    /* A name never seen gets the tally over all of them. */
    s = history_scores_at(c, "never.example", T0);
    assert_int_equal(score(s, "http-01"), 2);
    assert_int_equal(score(s, "dns-01"), 0);
    json_decref(s);
    /* No error left behind by the misses. */
    assert_string_equal(acme_client_last_error(c), "");
    acme_client_free(c);
    ms_free(&m);
}

/* Storage operations and bytes of one history_record + one lookup for a
 * new name, measured after n other names are stored. */
static void cost_after(size_t n, size_t *ops, size_t *bytes)
{
    memstore m = {0};
    acme_client *c = client_on(&m);
    char name[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "host-%zu.example", i);
        history_record_at(c, name, i % 3 ? "http-01" : "dns-01", 1, T0);
    }
    size_t o0 = m.gets + m.puts + m.removes + m.lists, b0 = m.bytes_read + m.bytes_written;
    json_decref(history_scores_at(c, "fresh.example", T0));
    history_record_at(c, "fresh.example", "http-01", 1, T0);
    json_decref(history_scores_at(c, "host-0.example", T0));
    *ops = m.gets + m.puts + m.removes + m.lists - o0;
    *bytes = m.bytes_read + m.bytes_written - b0;
    acme_client_free(c);
    ms_free(&m);
}

static void cost_does_not_grow_with_names(void **state)
{
    (void)state;
    size_t ops10, bytes10, ops5k, bytes5k;
    cost_after(10, &ops10, &bytes10);
    cost_after(5000, &ops5k, &bytes5k);
    print_message("history: after 10 names %zu ops, %zu bytes; after 5000 names %zu ops, %zu bytes\n",
                  ops10, bytes10, ops5k, bytes5k);
    /* The same operations; bytes may differ by a few digits of the counts. */
    assert_int_equal(ops10, ops5k);
    assert_true(bytes5k <= bytes10 + 32);
    assert_true(ops10 <= 8);
}

static void old_records_age_out(void **state)
{
    (void)state;
    memstore m = {0};
    acme_client *c = client_on(&m);
    for (int i = 0; i < 200; i++) {
        char name[64];
        snprintf(name, sizeof name, "old-%d.example", i);
        history_record_at(c, name, "dns-01", 1, T0);
    }
    history_record_at(c, "kept.example", "http-01", 1, T0);
    assert_int_equal(ms_count_prefix(&m, "/history/id/"), 201);

    /* Past the age limit a record no longer speaks for its name: the
     * lookup falls back to the tally. */
    int64_t later = T0 + HISTORY_MAX_AGE_S + 86400;
    history_record_at(c, "kept.example", "http-01", 1, later - 86400 * 2);
    json_t *s = history_scores_at(c, "old-7.example", later);
    assert_int_equal(score(s, "dns-01"), 200); /* the tally, not old-7's own 1 */
    json_decref(s);
    s = history_scores_at(c, "kept.example", later);
    assert_int_equal(score(s, "http-01"), 2);
    json_decref(s);

    /* The sweep: one bucket per hour; after 64 hours every bucket was seen
     * and only the fresh record is left. */
    for (int h = 0; h < 64; h++)
        history_record_at(c, "kept.example", "http-01", 1, later + (int64_t)h * HISTORY_SWEEP_EVERY_S);
    assert_int_equal(ms_count_prefix(&m, "/history/id/"), 1);
    s = history_scores_at(c, "kept.example", later + 64 * HISTORY_SWEEP_EVERY_S);
    assert_int_equal(score(s, "http-01"), 66);
    json_decref(s);
    acme_client_free(c);
    ms_free(&m);
}

static void legacy_file_is_migrated_once(void **state)
{
    (void)state;
    memstore m = {0};
    acme_client *c = client_on(&m);
    /* Write the old layout through the client's own key prefix. */
    history_record_at(c, "probe.example", "http-01", 1, T0);
    entry *probe = NULL;
    for (size_t i = 0; i < m.n; i++)
        if (strstr(m.e[i].key, "/history/all.json"))
            probe = &m.e[i];
    assert_non_null(probe);
    char *ca = strndup(probe->key, (size_t)(strstr(probe->key, "/history/") - probe->key));
    ms_free(&m);

    char key[512];
    snprintf(key, sizeof key, "%s/history/challenges.json", ca);
    const char *legacy = "{\"*\":{\"dns-01\":5},\"x.example\":{\"tls-alpn-01\":3,\"http-01\":-1}}";
    ms_put(&m, key, legacy, strlen(legacy), 0);
    json_t *s = history_scores_at(c, "x.example", T0);
    assert_int_equal(score(s, "tls-alpn-01"), 3);
    assert_int_equal(score(s, "http-01"), -1);
    json_decref(s);
    s = history_scores_at(c, "unknown.example", T0);
    assert_int_equal(score(s, "dns-01"), 5);
    json_decref(s);
    assert_null(find(&m, key));
    size_t puts = m.puts;
    json_decref(history_scores_at(c, "x.example", T0));
    assert_int_equal(m.puts, puts); /* migrated once, not on every lookup */
    free(ca);
    acme_client_free(c);
    ms_free(&m);
}

static void restart_reads_what_was_written(void **state)
{
    (void)state;
    memstore m = {0};
    acme_client *c = client_on(&m);
    history_record_at(c, "r.example", "tls-alpn-01", 1, T0);
    history_record_at(c, "r.example", "http-01", 0, T0);
    acme_client_free(c);

    c = client_on(&m); /* a new process on the same storage */
    json_t *s = history_scores_at(c, "r.example", T0 + 60);
    assert_int_equal(score(s, "tls-alpn-01"), 1);
    assert_int_equal(score(s, "http-01"), -1);
    json_decref(s);
    acme_client_free(c);
    ms_free(&m);
}

static void garbage_records_are_ignored(void **state)
{
    (void)state;
    memstore m = {0};
    acme_client *c = client_on(&m);
    history_record_at(c, "g.example", "dns-01", 1, T0);
    /* Find g's record and replace it: first with text that is no JSON,
     * then with another name's record planted under g's key. */
    entry *rec = NULL;
    for (size_t i = 0; i < m.n; i++)
        if (strstr(m.e[i].key, "/history/id/"))
            rec = &m.e[i];
    assert_non_null(rec);
    char *k = strdup(rec->key);
    ms_put(&m, k, "{not json", 9, 0);
    json_t *s = history_scores_at(c, "g.example", T0);
    assert_int_equal(score(s, "dns-01"), 1); /* the tally */
    json_decref(s);
    const char *planted = "{\"i\":\"other.example\",\"t\":1800000000,\"s\":{\"http-01\":99}}";
    ms_put(&m, k, planted, strlen(planted), 0);
    s = history_scores_at(c, "g.example", T0);
    assert_int_equal(score(s, "http-01"), 0);
    json_decref(s);
    assert_string_equal(acme_client_last_error(c), "");
    free(k);
    acme_client_free(c);
    ms_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(remembers_per_identifier_and_tally),
        cmocka_unit_test(cost_does_not_grow_with_names),
        cmocka_unit_test(old_records_age_out),
        cmocka_unit_test(legacy_file_is_migrated_once),
        cmocka_unit_test(restart_reads_what_was_written),
        cmocka_unit_test(garbage_records_are_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
