/* The engine's storage thread (libacme/store_async.c) against a table the
 * test controls: writes made in a step are queued and visible at once
 * (read-your-writes) while the table has not got them yet; they reach the
 * table in order; a failed write is reported by the next barrier and the
 * key is asked again; list answers from memory; locks are answered
 * through the callback; the start-up batch read fills memory; stopping
 * writes everything still queued; a lock whose refresh says it is lost
 * is reported once and its certificate's queued writes never reach the
 * table. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"
#include "store_async.h"

typedef struct kv {
    char *key, *val;
    struct kv *next;
} kv;

typedef struct table {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int gate_closed;          /* put waits while set */
    int fail_put;             /* put answers ACME_E_STORAGE */
    int gets, puts, locks, unlocks, lists, refreshes;
    int lock_gone;            /* refresh answers ACME_E_LOCKED (another holder took it) */
    char *locked;             /* the one lock name held */
    pthread_t loop;           /* the test's thread: no call may come from it in a step */
    int in_step, calls_in_step;
    kv *items;
} table;

static kv *find(table *t, const char *key)
{
    for (kv *i = t->items; i; i = i->next)
        if (strcmp(i->key, key) == 0)
            return i;
    return NULL;
}

static void note_call(table *t)
{
    if (t->in_step && pthread_equal(pthread_self(), t->loop))
        t->calls_in_step++;
}

static int t_get(void *ud, const char *key, acme_buffer *out)
{
    table *t = ud;
    pthread_mutex_lock(&t->mu);
    note_call(t);
    t->gets++;
    kv *i = find(t, key);
    int rc = i ? acme_buffer_append(out, i->val, strlen(i->val)) : ACME_E_NOT_FOUND;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int t_put(void *ud, const char *key, const void *data, size_t len, unsigned flags)
{
    (void)flags;
    table *t = ud;
    pthread_mutex_lock(&t->mu);
    note_call(t);
    while (t->gate_closed)
        pthread_cond_wait(&t->cv, &t->mu);
    int rc = ACME_OK;
    if (t->fail_put) {
        rc = ACME_E_STORAGE;
    } else {
        kv *i = find(t, key);
        if (!i) {
            i = calloc(1, sizeof(*i));
            i->key = strdup(key);
            i->next = t->items;
            t->items = i;
        }
        free(i->val);
        i->val = strndup(data, len);
    }
    t->puts++;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int t_remove(void *ud, const char *key)
{
    table *t = ud;
    pthread_mutex_lock(&t->mu);
    note_call(t);
    for (kv **pp = &t->items; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->key, key) == 0) {
            kv *i = *pp;
            *pp = i->next;
            free(i->key);
            free(i->val);
            free(i);
            break;
        }
    pthread_mutex_unlock(&t->mu);
    return ACME_OK;
}

static int t_list(void *ud, const char *prefix, acme_storage_list_cb cb, void *cbdata)
{
    table *t = ud;
    pthread_mutex_lock(&t->mu);
    note_call(t);
    t->lists++;
    char *keys[64];
    size_t n = 0;
    for (kv *i = t->items; i && n < 64; i = i->next)
        if (strncmp(i->key, prefix, strlen(prefix)) == 0)
            keys[n++] = strdup(i->key);
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < n; i++) {
        cb(cbdata, keys[i]);
        free(keys[i]);
    }
    return ACME_OK;
}

static int t_lock(void *ud, const char *name, unsigned lease)
{
    (void)lease;
    table *t = ud;
    pthread_mutex_lock(&t->mu);
    note_call(t);
    t->locks++;
    int rc = t->locked ? ACME_E_LOCKED : ACME_OK;
    if (!rc)
        t->locked = strdup(name);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int t_unlock(void *ud, const char *name)
{
    table *t = ud;
    pthread_mutex_lock(&t->mu);
    note_call(t);
    t->unlocks++;
    int rc = t->locked && strcmp(t->locked, name) == 0 ? ACME_OK : ACME_E_STATE;
    if (!rc) {
        free(t->locked);
        t->locked = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int t_refresh(void *ud, const char *name, unsigned lease)
{
    (void)lease;
    table *t = ud;
    pthread_mutex_lock(&t->mu);
    note_call(t);
    t->refreshes++;
    int rc = !t->locked || strcmp(t->locked, name) != 0 || t->lock_gone ? ACME_E_LOCKED : ACME_OK;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static const acme_storage_ops t_ops = {
    .size = sizeof(acme_storage_ops), .get = t_get, .put = t_put, .remove = t_remove,
    .list = t_list, .lock = t_lock, .unlock = t_unlock, .refresh = t_refresh,
};

static void nop_wake(void *ud)
{
    (void)ud;
}

typedef struct answer {
    const void *object;
    int rc, count;
} answer;

static int on_answer(void *ud, const void *object, int rc)
{
    answer *a = ud;
    a->object = object;
    a->rc = rc;
    a->count++;
    return 1;
}

typedef struct fixture {
    table t;
    acme_client *c;
    answer a;
    int lost_count;
    char lost_name[128];
    const char *const *lazy;  /* store_async_start's */
    int fetched_count;
    char fetched[128];
} fixture;

static void on_lost(void *ud, const char *name, const char *why)
{
    fixture *f = (fixture *)((char *)ud - offsetof(fixture, a));
    assert_non_null(why);
    f->lost_count++;
    snprintf(f->lost_name, sizeof(f->lost_name), "%s", name);
}

static void on_fetched(void *ud, const char *tag)
{
    fixture *f = (fixture *)((char *)ud - offsetof(fixture, a));
    f->fetched_count++;
    snprintf(f->fetched, sizeof(f->fetched), "%s", tag);
}

/* One engine "step": take what finished, stay in it. */
static void step_in(fixture *f)
{
    f->t.in_step = 0;
    store_async_begin_step(f->c, on_answer, on_lost, on_fetched, &f->a);
    f->t.in_step = 1;
}

static void step_out(fixture *f)
{
    f->t.in_step = 0;
    store_async_end_step(f->c);
}

/* Step until cond or 5 s. */
#define STEP_UNTIL(f, cond) do { \
        for (int i_ = 0; i_ < 500 && !(cond); i_++) { step_in(f); step_out(f); if (!(cond)) usleep(10000); } \
        assert_true(cond); } while (0)

static void put_direct(table *t, const char *key, const char *val)
{
    kv *i = calloc(1, sizeof(*i));
    i->key = strdup(key);
    i->val = strdup(val);
    i->next = t->items;
    t->items = i;
}

static void del_direct(table *t, const char *key)
{
    for (kv **pp = &t->items; *pp;) {
        kv *i = *pp;
        if (strcmp(i->key, key) == 0) {
            *pp = i->next;
            free(i->key);
            free(i->val);
            free(i);
        } else {
            pp = &i->next;
        }
    }
}

static int setup_with(void **state, const char *const *lazy)
{
    fixture *f = calloc(1, sizeof(*f));
    f->lazy = lazy;
    pthread_mutex_init(&f->t.mu, NULL);
    pthread_cond_init(&f->t.cv, NULL);
    f->t.loop = pthread_self();
    assert_int_equal(acme_client_new("https://127.0.0.1:1/dir", &f->c), ACME_OK);
    assert_int_equal(acme_client_set_storage(f->c, &t_ops, &f->t), ACME_OK);
    /* Stored before the engine starts: the batch read must find it. */
    char *k = xasprintf("%s/certs/old/cert.json", f->c->ca_id);
    put_direct(&f->t, k, "old-value");
    free(k);
    assert_int_equal(store_async_start(f->c, nop_wake, NULL, f->lazy), ACME_OK);
    STEP_UNTIL(f, store_async_ready(f->c->sa));
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, NULL);
}

/* As the engine starts it: the certificates' keys listed, not read. */
static const char *const lazy_certs[] = {"certs/", NULL};

static int setup_lazy(void **state)
{
    return setup_with(state, lazy_certs);
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->c->sa)
        store_async_stop(f->c);
    acme_client_free(f->c);
    while (f->t.items) {
        kv *i = f->t.items;
        f->t.items = i->next;
        free(i->key);
        free(i->val);
        free(i);
    }
    free(f->t.locked);
    pthread_mutex_destroy(&f->t.mu);
    pthread_cond_destroy(&f->t.cv);
    free(f);
    return 0;
}

static char *get_str(acme_client *c, const char *rel, int *rc)
{
    acme_buf b;
    buf_init(&b, 0);
    *rc = store_get(c, rel, &b);
    char *s = *rc == ACME_OK ? strndup(b.data ? b.data : "", b.len) : NULL;
    buf_clear(&b);
    return s;
}

/* rel reads as want (the read's code ACME_OK). */
static void value_is(fixture *f, const char *rel, const char *want)
{
    int rc;
    char *v = get_str(f->c, rel, &rc);
    assert_int_equal(rc, ACME_OK);
    assert_string_equal(v, want);
    free(v);
}

/* Ask for lock name inside a step, as an order does; the answer's code. */
static int lock_answer(fixture *f, const char *name, const void *obj)
{
    int held;
    step_in(f);
    assert_int_equal(store_lock(f->c, name, obj, &held), ACME_E_PENDING);
    step_out(f);
    f->a.count = 0;
    STEP_UNTIL(f, f->a.count == 1);
    assert_ptr_equal(f->a.object, obj);
    return f->a.rc;
}

static int table_has(table *t, acme_client *c, const char *rel, const char *want)
{
    char *k = xasprintf("%s/%s", c->ca_id, rel);
    pthread_mutex_lock(&t->mu);
    kv *i = find(t, k);
    int ok = want ? (i && strcmp(i->val, want) == 0) : !i;
    pthread_mutex_unlock(&t->mu);
    free(k);
    return ok;
}

static int count_key(void *d, const char *key)
{
    (void)key;
    (*(int *)d)++;
    return 0;
}

/* Start-up lists the certificates' keys without their values; a slice
 * asked for is read on the thread, told through fetched(), answered from
 * memory once, then let go (the table holds it). */
static void test_lazy_values_read_when_asked(void **state)
{
    fixture *f = *state;
    assert_int_equal(f->t.gets, 0); /* listed only */
    /* Written by another process after the start-up list: a slice reads
     * what its prefix holds now. */
    char *late = xasprintf("%s/certs/late/cert.json", f->c->ca_id);
    pthread_mutex_lock(&f->t.mu);
    put_direct(&f->t, late, "late-value");
    pthread_mutex_unlock(&f->t.mu);
    free(late);

    step_in(f);
    char *pfx = xasprintf("%s/certs/", f->c->ca_id);
    int listed = 0;
    assert_int_equal(store_async_list(f->c->sa, pfx, count_key, &listed), ACME_OK);
    assert_int_equal(listed, 1); /* the start-up list, from memory */
    assert_int_equal(f->t.lists, 1);
    char keys[256], tags[64];
    int kn = snprintf(keys, sizeof(keys), "%sold/%c%slate/", pfx, '\0', pfx);
    memcpy(tags, "old\0late", 9);
    assert_int_equal(store_async_fetch(f->c->sa, keys, (size_t)kn + 1, tags, 9), ACME_E_PENDING);
    /* A key the start-up list did not see is absent: nothing to read. */
    char *none = xasprintf("%snothere/cert.json", pfx);
    assert_int_equal(store_async_fetch(f->c->sa, none, strlen(none) + 1, "x", 2), ACME_OK);
    free(none);
    free(pfx);
    step_out(f);
    STEP_UNTIL(f, f->fetched_count == 2);
    assert_string_equal(f->fetched, "late"); /* the tags in their order */
    assert_int_equal(f->t.gets, 2);

    step_in(f);
    value_is(f, "certs/old/cert.json", "old-value");
    value_is(f, "certs/late/cert.json", "late-value");
    step_out(f);
    assert_int_equal(f->t.gets, 2);         /* both from memory */
    assert_int_equal(f->t.calls_in_step, 0);
    /* Read once: memory let it go, the table answers the next read. */
    value_is(f, "certs/old/cert.json", "old-value");
    assert_int_equal(f->t.gets, 3);
}

static void test_batch_read_at_start(void **state)
{
    fixture *f = *state;
    int rc;
    step_in(f);
    value_is(f, "certs/old/cert.json", "old-value");
    /* A key the batch did not find is absent without asking the table. */
    char *v = get_str(f->c, "certs/none/cert.json", &rc);
    assert_int_equal(rc, ACME_E_NOT_FOUND);
    assert_null(v);
    step_out(f);
    assert_int_equal(f->t.calls_in_step, 0);
    assert_int_equal(f->t.lists, 1);
}

static void test_write_behind_read_your_writes(void **state)
{
    fixture *f = *state;
    pthread_mutex_lock(&f->t.mu);
    f->t.gate_closed = 1; /* the table is "slow": put cannot finish */
    pthread_mutex_unlock(&f->t.mu);
    step_in(f);
    assert_int_equal(store_put(f->c, "certs/a/cert.json", "one", 3, 0), ACME_OK);
    assert_int_equal(store_put(f->c, "certs/a/cert.json", "two", 3, 0), ACME_OK);
    value_is(f, "certs/a/cert.json", "two");
    assert_true(store_async_pending(f->c->sa) >= 2);
    step_out(f);
    assert_true(table_has(&f->t, f->c, "certs/a/cert.json", NULL));
    pthread_mutex_lock(&f->t.mu);
    f->t.gate_closed = 0;
    pthread_cond_broadcast(&f->t.cv);
    pthread_mutex_unlock(&f->t.mu);
    STEP_UNTIL(f, store_async_pending(f->c->sa) == 0);
    /* In order: the last write wins on the table too. */
    assert_true(table_has(&f->t, f->c, "certs/a/cert.json", "two"));
    assert_int_equal(f->t.calls_in_step, 0);
}

static void test_failed_write_reaches_the_barrier(void **state)
{
    fixture *f = *state;
    int rc, token;
    pthread_mutex_lock(&f->t.mu);
    f->t.fail_put = 1;
    pthread_mutex_unlock(&f->t.mu);
    step_in(f);
    unsigned long long d0 = store_durable_writes(f->c);
    assert_int_equal(store_put(f->c, "certs/b/order.json", "x", 1, 0), ACME_OK);
    assert_true(store_durable_writes(f->c) > d0);
    /* Advice is not waited for. */
    unsigned long long d1 = store_durable_writes(f->c);
    assert_int_equal(store_put(f->c, "history/h.json", "y", 1, ACME_STORAGE_NO_SYNC), ACME_OK);
    assert_true(store_durable_writes(f->c) == d1);
    assert_int_equal(store_barrier(f->c, &token), ACME_E_PENDING);
    step_out(f);
    f->a.count = 0;
    STEP_UNTIL(f, f->a.count == 1);
    assert_ptr_equal(f->a.object, &token);
    assert_int_not_equal(f->a.rc, ACME_OK);
    pthread_mutex_lock(&f->t.mu);
    f->t.fail_put = 0;
    pthread_mutex_unlock(&f->t.mu);
    /* Forgotten, so the table is asked: it has nothing. */
    step_in(f);
    char *v = get_str(f->c, "certs/b/order.json", &rc);
    assert_null(v);
    assert_int_equal(rc, ACME_E_NOT_FOUND);
    step_out(f);
    /* A barrier after good writes says OK. */
    step_in(f);
    assert_int_equal(store_put(f->c, "certs/b/order.json", "z", 1, 0), ACME_OK);
    assert_int_equal(store_barrier(f->c, &token), ACME_E_PENDING);
    step_out(f);
    f->a.count = 0;
    STEP_UNTIL(f, f->a.count == 1);
    assert_int_equal(f->a.rc, ACME_OK);
    assert_true(table_has(&f->t, f->c, "certs/b/order.json", "z"));
}

static int collect(void *ud, const char *key)
{
    char *buf = ud;
    strcat(buf, key);
    strcat(buf, ";");
    return 0;
}

static void test_list_from_memory(void **state)
{
    fixture *f = *state;
    char seen[512] = "";
    step_in(f);
    assert_int_equal(store_put(f->c, "certs/c/cert.json", "c", 1, 0), ACME_OK);
    assert_int_equal(store_remove(f->c, "certs/old/cert.json"), ACME_OK);
    assert_int_equal(store_list(f->c, "certs/", collect, seen), ACME_OK);
    step_out(f);
    assert_non_null(strstr(seen, "certs/c/cert.json;"));
    assert_null(strstr(seen, "certs/old/"));
    assert_int_equal(f->t.lists, 1); /* only the batch read at start */
    assert_int_equal(f->t.calls_in_step, 0);
}

static void test_locks_through_the_thread(void **state)
{
    fixture *f = *state;
    int held, obj1 = 1, obj2 = 2;
    assert_int_equal(lock_answer(f, "ca.order.x", &obj1), ACME_OK);
    assert_int_equal(lock_answer(f, "ca.order.x", &obj2), ACME_E_LOCKED);
    /* Outside a step a lock call waits and answers itself. */
    assert_int_equal(store_lock(f->c, "ca.order.x", &obj2, &held), ACME_E_LOCKED);
    step_in(f);
    store_unlock(f->c, "ca.order.x");
    step_out(f);
    STEP_UNTIL(f, store_async_pending(f->c->sa) == 0);
    assert_int_equal(f->t.unlocks, 1);
    assert_null(f->t.locked);
    assert_int_equal(f->t.calls_in_step, 0);
}

/* An order's lock reads its certificate's keys again (another process may
 * have written them): memory then holds the table's values for that
 * certificate, found in the one bucket a certificate's keys share, and
 * nothing of another certificate changes. */
static void test_lock_rereads_its_certificate(void **state)
{
    fixture *f = *state;
    int rc, obj = 0;
    step_in(f);
    for (int i = 0; i < 600; i++) { /* enough keys for the table to grow */
        char rel[64];
        snprintf(rel, sizeof(rel), "certs/n%d/cert.json", i);
        assert_int_equal(store_put(f->c, rel, "n", 1, 0), ACME_OK);
    }
    assert_int_equal(store_put(f->c, "certs/x/cert.json", "mine", 4, 0), ACME_OK);
    assert_int_equal(store_put(f->c, "certs/x/order.json", "state", 5, 0), ACME_OK);
    assert_int_equal(store_put(f->c, "certs/xy/cert.json", "other", 5, 0), ACME_OK);
    step_out(f);
    STEP_UNTIL(f, store_async_pending(f->c->sa) == 0);
    /* Another host writes x's keys behind this process's back. */
    char *k1 = xasprintf("%s/certs/x/cert.json", f->c->ca_id);
    char *k2 = xasprintf("%s/certs/x/order.json", f->c->ca_id);
    char *k3 = xasprintf("%s/certs/xy/cert.json", f->c->ca_id);
    pthread_mutex_lock(&f->t.mu);
    put_direct(&f->t, k1, "theirs");
    del_direct(&f->t, k2); /* their order finished: its state is gone */
    put_direct(&f->t, k3, "changed");
    pthread_mutex_unlock(&f->t.mu);
    free(k1);
    free(k2);
    free(k3);
    step_in(f);
    char *v = get_str(f->c, "certs/x/cert.json", &rc);
    assert_string_equal(v, "mine"); /* memory, before the lock */
    free(v);
    step_out(f);
    assert_int_equal(lock_answer(f, "ca.order.x", &obj), ACME_OK);
    int gets = f->t.gets;
    step_in(f);
    v = get_str(f->c, "certs/x/cert.json", &rc);
    assert_string_equal(v, "theirs");
    free(v);
    v = get_str(f->c, "certs/x/order.json", &rc);
    assert_int_equal(rc, ACME_E_NOT_FOUND);
    assert_null(v);
    v = get_str(f->c, "certs/xy/cert.json", &rc); /* not under "certs/x/" */
    assert_string_equal(v, "other");
    free(v);
    step_out(f);
    assert_int_equal(f->t.gets, gets); /* all from memory */
    assert_int_equal(f->t.calls_in_step, 0);
}

static void test_stop_writes_everything(void **state)
{
    fixture *f = *state;
    int held, obj;
    step_in(f);
    for (int i = 0; i < 20; i++) {
        char rel[64], val[16];
        snprintf(rel, sizeof(rel), "certs/s%d/cert.json", i);
        snprintf(val, sizeof(val), "v%d", i);
        assert_int_equal(store_put(f->c, rel, val, strlen(val), 0), ACME_OK);
    }
    assert_int_equal(store_lock(f->c, "ca.order.s", &obj, &held), ACME_E_PENDING);
    step_out(f);
    store_async_stop(f->c);
    assert_null(f->c->sa);
    assert_true(table_has(&f->t, f->c, "certs/s19/cert.json", "v19"));
    assert_true(table_has(&f->t, f->c, "certs/s0/cert.json", "v0"));
    /* The lock its (gone) order never heard about was released. */
    assert_null(f->t.locked);
}

static void test_lost_lock_fences_its_keys(void **state)
{
    fixture *f = *state;
    int obj = 0, token;
    store_async_set_lease(f->c->sa, 3); /* refreshed every second */
    assert_int_equal(lock_answer(f, "ca.order.x", &obj), ACME_OK);
    /* Held and refreshed: its writes land. */
    step_in(f);
    assert_int_equal(store_put(f->c, "certs/x/order.json", "mine", 4, 0), ACME_OK);
    step_out(f);
    STEP_UNTIL(f, f->t.refreshes >= 1 && store_async_pending(f->c->sa) == 0);
    assert_true(table_has(&f->t, f->c, "certs/x/order.json", "mine"));
    assert_int_equal(f->lost_count, 0);
    /* Another holder takes it over: the next refresh says so, once. */
    pthread_mutex_lock(&f->t.mu);
    f->t.lock_gone = 1;
    pthread_mutex_unlock(&f->t.mu);
    STEP_UNTIL(f, f->lost_count == 1);
    assert_string_equal(f->lost_name, "ca.order.x");
    /* Writes under it are dropped before they reach the table, the
     * barrier says so; other certificates' writes land. */
    int puts = f->t.puts;
    step_in(f);
    assert_int_equal(store_put(f->c, "certs/x/cert.json", "stale", 5, 0), ACME_OK);
    assert_int_equal(store_remove(f->c, "certs/x/order.json"), ACME_OK);
    assert_int_equal(store_put(f->c, "certs/y/cert.json", "other", 5, 0), ACME_OK);
    assert_int_equal(store_barrier(f->c, &token), ACME_E_PENDING);
    step_out(f);
    f->a.count = 0;
    STEP_UNTIL(f, f->a.count == 1);
    assert_ptr_equal(f->a.object, &token);
    assert_int_equal(f->a.rc, ACME_E_LOCKED);
    assert_true(table_has(&f->t, f->c, "certs/x/cert.json", NULL));
    assert_true(table_has(&f->t, f->c, "certs/x/order.json", "mine"));
    assert_true(table_has(&f->t, f->c, "certs/y/cert.json", "other"));
    assert_int_equal(f->t.puts, puts + 1);
    /* What memory thought was written is asked again: the table's value. */
    step_in(f);
    value_is(f, "certs/x/order.json", "mine");
    step_out(f);
    /* No second report, however many refreshes are due. */
    usleep(1500000);
    STEP_UNTIL(f, store_async_pending(f->c->sa) == 0);
    assert_int_equal(f->lost_count, 1);
    /* Unlocked (the order ended): the fence goes with it. */
    pthread_mutex_lock(&f->t.mu);
    f->t.lock_gone = 0;
    pthread_mutex_unlock(&f->t.mu);
    step_in(f);
    store_unlock(f->c, "ca.order.x");
    assert_int_equal(store_put(f->c, "certs/x/cert.json", "later", 5, 0), ACME_OK);
    step_out(f);
    STEP_UNTIL(f, store_async_pending(f->c->sa) == 0);
    assert_true(table_has(&f->t, f->c, "certs/x/cert.json", "later"));
    assert_int_equal(f->t.calls_in_step, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_read_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_values_read_when_asked, setup_lazy, teardown),
        cmocka_unit_test_setup_teardown(test_write_behind_read_your_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_reaches_the_barrier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_from_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locks_through_the_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_rereads_its_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_writes_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_lock_fences_its_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
