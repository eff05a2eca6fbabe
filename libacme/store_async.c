/* The engine's storage thread; see store_async.h and doc/storage.md. */
#include "store_async.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event_internal.h"
#include "internal.h"
#include "storage_file.h"

typedef enum { J_GET, J_PUT, J_REMOVE, J_LIST, J_PRELOAD, J_FETCH, J_LOCK, J_UNLOCK, J_NOTE, J_BARRIER } j_kind;

typedef struct kv {
    char *key, *val;
    size_t len;
    int absent;              /* J_FETCH: the table said it has no such key */
} kv;

typedef struct sa_job {
    j_kind kind;
    char *key;               /* key, prefix or lock name */
    char *data;
    size_t len;
    unsigned flags;
    const void *object;      /* lock: who waits for the answer */
    int rc;
    char *why;               /* the table's sentence for a failure */
    acme_buf *out;           /* J_GET (waited for) */
    kv *kvs;                 /* J_LIST, J_PRELOAD, J_FETCH: what was found */
    char *tags;              /* J_FETCH: who is told, NUL-separated (data: the keys) */
    size_t tags_len;
    size_t kv_n, kv_cap;
    int want_values;
    int kvs_ok;              /* J_LOCK: kvs are the certificate's keys, read again */
    int lost;                /* J_NOTE: the lock is lost (else the refresh only failed, for now) */
    int sync, finished;      /* a caller waits for it (sa->cv) */
    struct sa_job *next;
} sa_job;

/* E_STORED: in the table, value not held here (read it from the table).
 * A certificate's value (a key under a lazy prefix: chain, private key,
 * order state, numbers) is held only until it is read once or its write
 * is done: the overlay is for writes in flight and the start-up slices,
 * not a cache of every chain (100,000 certificates would be 400 MB). The
 * other keys are small and read again and again inside steps (the
 * challenge history's tally and records, back-off, the account): memory
 * keeps them, so such a read never waits for the table. */
typedef enum { E_PRESENT, E_ABSENT, E_UNKNOWN, E_STORED } e_state;

/* The overlay: what the table holds as far as this process knows, and
 * every write not yet done. Touched only from the client's thread. */
typedef struct entry {
    char *key;
    e_state state;
    char *val;
    size_t len;
    unsigned pending;        /* writes queued, not finished */
    struct entry *next;
} entry;

#define BUCKETS 512       /* at first; grows with the keys */

/* A lock the thread holds (the thread's own list). */
typedef struct held {
    char *name;
    char *guards;            /* "<ca-id>/certs/<cert-id>/": the keys it covers */
    uint64_t refresh_at;     /* monotonic ms */
    uint64_t lease_end;      /* monotonic ms: the lease as last taken or refreshed */
    int lost;                /* the table said it is no longer ours: writes under it are dropped */
    struct held *next;
} held;

/* How soon a refresh that failed for another reason than a lost lock is
 * tried again, while the lease lasts. */
#define REFRESH_RETRY_MS 10000u

typedef void (*wake_fn)(void *);

struct store_async {
    acme_client *c;
    acme_storage_ops ops;
    void *ud;
    void *file;              /* the default storage, for its sentences */
    char *prefix;            /* "<ca-id>/" */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sa_job *queue, *queue_tail;
    sa_job *done, *done_tail;
    sa_job *running;         /* the job the thread is on */
    int stop;
    wake_fn wake;
    void *wake_ud;
    held *locks;             /* thread only */
    int thread_fail;         /* thread only: a queued write failed since the last barrier */
    unsigned lease_s;

    char **lazy;             /* full prefixes whose values start-up leaves in the table */
    size_t lazy_n;
    int ready;               /* the start-up reads are in */
    int complete;            /* ... and listed everything: a miss is absent */
    int shared;              /* other hosts write the table too (etcd): calls outside a step ask it */
    int in_step;
    size_t pending;
    unsigned long long durable;  /* writes queued that must reach the table */
    entry **table;
    size_t nbuckets, nentries;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static char *copy_bytes(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static void kvs_free(sa_job *j)
{
    for (size_t i = 0; i < j->kv_n; i++) {
        free(j->kvs[i].key);
        if (j->kvs[i].val)
            secure_free(j->kvs[i].val, j->kvs[i].len);
    }
    free(j->kvs);
    j->kvs = NULL;
    j->kv_n = 0;
}

static void job_free(sa_job *j)
{
    if (!j)
        return;
    free(j->key);
    if (j->data)
        secure_free(j->data, j->len);
    free(j->why);
    free(j->tags);
    kvs_free(j);
    free(j);
}

static sa_job *job_new(j_kind kind, const char *key)
{
    sa_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->kind = kind;
    if (key && !(j->key = strdup(key))) {
        free(j);
        return NULL;
    }
    return j;
}

/* ---- the thread ---- */

static char *table_why(store_async *sa, int rc)
{
    const char *detail = sa->file ? storage_file_last_error(sa->file) : NULL;
    if (detail && *detail)
        return xasprintf("%s (%s)", acme_strerror(rc), detail);
    return xstrdup(acme_strerror(rc));
}

static int collect_key(void *d, const char *key)
{
    sa_job *j = d;
    if (j->kv_n == j->kv_cap) {
        size_t cap = j->kv_cap ? j->kv_cap * 2 : 64;
        kv *n = realloc(j->kvs, cap * sizeof(*n));
        if (!n)
            return 1;
        j->kvs = n;
        j->kv_cap = cap;
    }
    kv *e = &j->kvs[j->kv_n];
    memset(e, 0, sizeof(*e));
    if (!(e->key = strdup(key)))
        return 1;
    j->kv_n++;
    return 0;
}

static int is_lazy(const store_async *sa, const char *key)
{
    for (size_t i = 0; i < sa->lazy_n; i++)
        if (strncmp(key, sa->lazy[i], strlen(sa->lazy[i])) == 0)
            return 1;
    return 0;
}

/* Read the values of j->kvs[from..] (thread). At start-up the keys under
 * a lazy prefix are only listed: their values are read when the engine
 * asks for them, a slice at a time (store_async_fetch), so start-up with
 * 100,000 stored certificates never holds them all. */
static void read_values(store_async *sa, sa_job *j, size_t from, int skip_lazy)
{
    for (size_t i = from; i < j->kv_n; i++) {
        if (skip_lazy && is_lazy(sa, j->kvs[i].key))
            continue;
        acme_buf b;
        buf_init(&b, 4 * 1024 * 1024);
        b.secret = 1;
        int rc = sa->ops.get(sa->ud, j->kvs[i].key, &b);
        if (rc == ACME_OK) {
            j->kvs[i].val = copy_bytes(b.data ? b.data : "", b.len);
            j->kvs[i].len = b.len;
        } else if (rc == ACME_E_NOT_FOUND) {
            j->kvs[i].absent = 1;
        }
        buf_clear(&b);
        /* A key that vanished or cannot be read is left unknown (val
         * NULL): a later read asks the table again. */
    }
}

static void do_list_at(store_async *sa, sa_job *j, const char *prefix)
{
    if (!sa->ops.list) {
        j->rc = ACME_E_UNSUPPORTED;
        return;
    }
    size_t from = j->kv_n;
    j->rc = sa->ops.list(sa->ud, prefix, collect_key, j);
    if (j->rc || !j->want_values)
        return;
    read_values(sa, j, from, j->kind == J_PRELOAD);
}

static void do_list(store_async *sa, sa_job *j)
{
    do_list_at(sa, j, j->key);
}

/* J_FETCH (thread): each of the NUL-separated names in j->data is a key,
 * or a prefix when it ends in '/' (every key under it). */
static void do_fetch(store_async *sa, sa_job *j)
{
    int first = ACME_OK;
    for (size_t off = 0; off < j->len; off += strlen(j->data + off) + 1) {
        const char *name = j->data + off;
        size_t n = strlen(name);
        if (n && name[n - 1] == '/') {
            do_list_at(sa, j, name);
        } else {
            size_t from = j->kv_n;
            j->rc = collect_key(j, name) ? ACME_E_NOMEM : ACME_OK;
            if (!j->rc)
                read_values(sa, j, from, 0);
        }
        if (j->rc && !first)
            first = j->rc;
    }
    j->rc = first;
}

static void held_free(held *h)
{
    free(h->name);
    free(h->guards);
    free(h);
}

/* Drop the thread's record of lock name (unlock, or a new lock of it). */
static void held_drop(store_async *sa, const char *name)
{
    for (held **pp = &sa->locks; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0) {
            held *h = *pp;
            *pp = h->next;
            held_free(h);
            return;
        }
}

/* A write to a key covered by a lock that was lost: the lost holder's
 * order queued it, and it must not reach the table (a successor may own
 * the key now). The lock's name, or NULL. */
static const char *fenced_by(store_async *sa, const char *key)
{
    for (held *h = sa->locks; h; h = h->next)
        if (h->lost && h->guards && strncmp(key, h->guards, strlen(h->guards)) == 0)
            return h->name;
    return NULL;
}

static void run_job(store_async *sa, sa_job *j)
{
    if (j->kind == J_PUT || j->kind == J_REMOVE) {
        const char *lost = fenced_by(sa, j->key);
        if (lost) {
            j->rc = ACME_E_LOCKED;
            j->why = xasprintf("not written: the storage lock %s was lost, another process may own the key now", lost);
            if (!j->sync)
                sa->thread_fail = j->rc;
            return;
        }
    }
    switch (j->kind) {
    case J_GET:
        j->rc = sa->ops.get(sa->ud, j->key, j->out);
        break;
    case J_PUT:
        j->rc = sa->ops.put(sa->ud, j->key, j->data, j->len, j->flags);
        break;
    case J_REMOVE:
        j->rc = sa->ops.remove(sa->ud, j->key);
        break;
    case J_LIST:
    case J_PRELOAD:
        do_list(sa, j);
        break;
    case J_FETCH:
        do_fetch(sa, j);
        break;
    case J_LOCK:
        j->rc = sa->ops.lock ? sa->ops.lock(sa->ud, j->key, sa->lease_s) : ACME_OK;
        if (j->rc == ACME_OK && sa->ops.lock) {
            held_drop(sa, j->key); /* a lost one of the same name gives way */
            held *h = calloc(1, sizeof(*h));
            const char *ord = strstr(j->key, ".order.");
            if (h && (h->name = strdup(j->key))) {
                uint64_t now = mono_ms();
                h->refresh_at = now + sa->lease_s * 1000u / 3u;
                h->lease_end = now + sa->lease_s * 1000u;
                if (ord && ord > j->key)
                    h->guards = xasprintf("%scerts/%s/", sa->prefix, ord + 7);
                h->next = sa->locks;
                sa->locks = h;
            } else {
                free(h);
            }
            /* Another host may have written this certificate's keys since
             * the start-up read (a shared store): read them again now that
             * we hold its lock, before the order looks at them. */
            /* "<ca-id>.order.<cert-id>"; in a CA list the ca-id is the
             * list's first CA's (lock_ca_id), the keys this CA's own. */
            if (ord && ord > j->key && (j->data = xasprintf("%scerts/%s/", sa->prefix, ord + 7)) != NULL) {
                j->len = strlen(j->data);
                j->want_values = 1;
                int lrc = j->rc;
                do_list_at(sa, j, j->data);
                j->kvs_ok = j->rc == ACME_OK;
                j->rc = lrc;
            }
        }
        break;
    case J_UNLOCK:
        held_drop(sa, j->key);
        j->rc = sa->ops.unlock ? sa->ops.unlock(sa->ud, j->key) : ACME_OK;
        break;
    case J_NOTE:
        break;
    case J_BARRIER:
        /* Everything queued before is done (one thread, in order). */
        j->rc = sa->thread_fail;
        sa->thread_fail = 0;
        return;
    }
    if (j->rc && (j->kind == J_PUT || j->kind == J_REMOVE) && !j->sync)
        sa->thread_fail = j->rc;
    if (j->rc && j->rc != ACME_E_NOT_FOUND && !j->why)
        j->why = table_why(sa, j->rc);
}

/* Keep the leases of the orders in flight alive (thread only). Returns
 * the next time one is due, 0 if none. */
static uint64_t refresh_due(store_async *sa, sa_job **notes)
{
    if (!sa->ops.refresh)
        return 0;
    uint64_t now = mono_ms(), next = 0;
    for (held *h = sa->locks; h; h = h->next) {
        if (h->lost)
            continue;
        if (h->refresh_at <= now) {
            int rc = sa->ops.refresh(sa->ud, h->name, sa->lease_s);
            now = mono_ms();
            h->refresh_at = now + sa->lease_s * 1000u / 3u;
            if (rc == ACME_OK)
                h->lease_end = now + sa->lease_s * 1000u;
            else if (rc != ACME_E_LOCKED && now + REFRESH_RETRY_MS < h->lease_end)
                h->refresh_at = now + REFRESH_RETRY_MS; /* the store failed: the lease still runs */
            else
                h->lost = 1; /* not ours any more, or the lease ran out unrefreshed */
            if (rc) {
                sa_job *n = job_new(J_NOTE, h->name);
                if (n) {
                    n->rc = rc;
                    n->lost = h->lost;
                    n->why = table_why(sa, rc);
                    n->next = *notes;
                    *notes = n;
                }
            }
            if (h->lost)
                continue;
        }
        if (!next || h->refresh_at < next)
            next = h->refresh_at;
    }
    return next;
}

/* With sa->mu held. Returns the wake-up the engine is owed (NULL when a
 * caller waits on the condition instead): run() calls it once the lock is
 * released. */
static wake_fn finish_locked(store_async *sa, sa_job *j)
{
    if (j->sync) {
        j->finished = 1;
        pthread_cond_broadcast(&sa->cv);
        return NULL;
    }
    /* Appended at the tail: completions are taken in queue order. */
    j->next = NULL;
    if (sa->done_tail)
        sa->done_tail->next = j;
    else
        sa->done = j;
    sa->done_tail = j;
    return sa->wake;
}

static void *run(void *arg)
{
    store_async *sa = arg;
    /* The wake-up is written with the lock released: the loop it wakes
     * takes the lock at once (store_async_begin_step), and a wake-up that
     * preempts this thread while it still holds the lock made the step
     * sleep in futex() until this thread ran again (seen in lighttpd:
     * ticks that waited, up to 10 ms on a busy machine). A step that takes
     * the answer before the byte arrives only makes the next look empty.
     * The target (the engine's worker) outlives this thread. */
    wake_fn wake = NULL;
    pthread_mutex_lock(&sa->mu);
    for (;;) {
        sa_job *notes = NULL;
        pthread_mutex_unlock(&sa->mu);
        if (wake) {
            wake(sa->wake_ud);
            wake = NULL;
        }
        uint64_t next = refresh_due(sa, &notes);
        pthread_mutex_lock(&sa->mu);
        while (notes) {
            sa_job *n = notes;
            notes = n->next;
            wake_fn w = finish_locked(sa, n);
            if (w)
                wake = w;
        }
        if (!sa->queue) {
            if (sa->stop)
                break;
            if (wake)
                continue; /* said before sleeping */
            if (next) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                uint64_t wait = next > mono_ms() ? next - mono_ms() : 0;
                ts.tv_sec += (time_t)(wait / 1000u);
                ts.tv_nsec += (long)(wait % 1000u) * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&sa->cv, &sa->mu, &ts);
            } else {
                pthread_cond_wait(&sa->cv, &sa->mu);
            }
            continue;
        }
        sa_job *j = sa->queue;
        sa->queue = j->next;
        if (!sa->queue)
            sa->queue_tail = NULL;
        sa->running = j;
        pthread_mutex_unlock(&sa->mu);
        run_job(sa, j);
        pthread_mutex_lock(&sa->mu);
        sa->running = NULL;
        wake_fn w = finish_locked(sa, j);
        if (w)
            wake = w;
    }
    pthread_mutex_unlock(&sa->mu);
    if (wake)
        wake(sa->wake_ud);
    /* Stopping: what this engine still holds goes (its orders are gone). */
    while (sa->locks) {
        held *h = sa->locks;
        sa->locks = h->next;
        if (sa->ops.unlock)
            sa->ops.unlock(sa->ud, h->name);
        held_free(h);
    }
    return NULL;
}

static void enqueue(store_async *sa, sa_job *j)
{
    pthread_mutex_lock(&sa->mu);
    j->next = NULL;
    if (sa->queue_tail)
        sa->queue_tail->next = j;
    else
        sa->queue = j;
    sa->queue_tail = j;
    pthread_cond_broadcast(&sa->cv);
    pthread_mutex_unlock(&sa->mu);
}

/* Queue j and wait for it (a call outside a step, or a read the overlay
 * cannot answer). */
static void run_waiting(store_async *sa, sa_job *j)
{
    j->sync = 1;
    enqueue(sa, j);
    pthread_mutex_lock(&sa->mu);
    while (!j->finished)
        pthread_cond_wait(&sa->cv, &sa->mu);
    pthread_mutex_unlock(&sa->mu);
}

/* ---- the overlay ---- */

/* How much of key decides its bucket: for "<ca-id>/certs/<cert-id>/..."
 * the certificate's prefix, so that all of a certificate's keys share a
 * bucket and what concerns one certificate (the lock's re-read of its
 * keys) walks one chain instead of the whole table (at 10,000 certificates
 * that walk was 2 ms per issuance, 14 ms in one step); else the key. */
static size_t hash_span(const char *key)
{
    const char *slash = strchr(key, '/');
    if (slash && strncmp(slash + 1, "certs/", 6) == 0) {
        const char *end = strchr(slash + 7, '/');
        if (end)
            return (size_t)(end + 1 - key);
    }
    return strlen(key);
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0, n = hash_span(s); i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Four times the buckets once there are two keys per bucket: a lookup
 * stays O(1) at 100,000 certificates. On failure the chains only grow. */
static void grow(store_async *sa)
{
    size_t nb = sa->nbuckets * 4;
    entry **t = calloc(nb, sizeof(*t));
    if (!t)
        return;
    for (size_t b = 0; b < sa->nbuckets; b++)
        while (sa->table[b]) {
            entry *e = sa->table[b];
            sa->table[b] = e->next;
            size_t i = hash(e->key) % nb;
            e->next = t[i];
            t[i] = e;
        }
    free(sa->table);
    sa->table = t;
    sa->nbuckets = nb;
}

/* *adopt, when given, is a malloc'ed copy of key that a new entry takes
 * over (set to NULL then): start-up lists 100,000 keys, and two copies of
 * each were a good part of its peak. */
static entry *lookup_adopt(store_async *sa, const char *key, int create, char **adopt)
{
    size_t b = hash(key) % sa->nbuckets;
    for (entry *e = sa->table[b]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    if (!create)
        return NULL;
    entry *e = calloc(1, sizeof(*e));
    if (e && adopt && *adopt) {
        e->key = *adopt;
        *adopt = NULL;
    } else if (e && !(e->key = strdup(key))) {
        free(e);
        e = NULL;
    }
    if (!e)
        return NULL;
    e->state = E_UNKNOWN;
    e->next = sa->table[b];
    sa->table[b] = e;
    if (++sa->nentries > 2 * sa->nbuckets)
        grow(sa);
    return e;
}

static entry *lookup(store_async *sa, const char *key, int create)
{
    return lookup_adopt(sa, key, create, NULL);
}

static void set_value(entry *e, e_state st, const void *val, size_t len)
{
    /* Values are often private keys. */
    if (e->val)
        secure_free(e->val, e->len);
    e->val = NULL;
    e->len = 0;
    e->state = st;
    if (st == E_PRESENT) {
        e->val = copy_bytes(val, len);
        if (e->val)
            e->len = len;
        else
            e->state = E_UNKNOWN;
    }
}

/* ---- the client's side ---- */

static void preload_in(store_async *sa, sa_job *j);

static void lazy_free(store_async *sa)
{
    for (size_t i = 0; i < sa->lazy_n; i++)
        free(sa->lazy[i]);
    free(sa->lazy);
    sa->lazy = NULL;
    sa->lazy_n = 0;
}

static int lazy_set(store_async *sa, const char *const *lazy)
{
    size_t n = 0;
    while (lazy && lazy[n])
        n++;
    if (!n)
        return ACME_OK;
    if (!(sa->lazy = calloc(n, sizeof(*sa->lazy))))
        return ACME_E_NOMEM;
    for (; sa->lazy_n < n; sa->lazy_n++)
        if (!(sa->lazy[sa->lazy_n] = xasprintf("%s/%s", sa->c->ca_id, lazy[sa->lazy_n]))) {
            lazy_free(sa);
            return ACME_E_NOMEM;
        }
    return ACME_OK;
}

int store_async_start(acme_client *c, void (*wake)(void *), void *wake_ud, const char *const *lazy)
{
    store_async *sa = calloc(1, sizeof(*sa));
    if (!sa)
        return ACME_E_NOMEM;
    sa->c = c;
    sa->ops = c->storage;
    sa->ud = c->storage_ud;
    sa->file = c->file_storage;
    sa->wake = wake;
    sa->wake_ud = wake_ud;
    sa->lease_s = sa->ops.refresh ? ACME_LOCK_LEASE_S : ACME_LOCK_LEASE_LONG_S;
    sa->shared = c->etcd_storage != NULL;
    sa->prefix = xasprintf("%s/", c->ca_id);
    sa->nbuckets = BUCKETS;
    sa->table = calloc(sa->nbuckets, sizeof(*sa->table));
    sa_job *pre = sa->prefix && sa->table && !lazy_set(sa, lazy) ? job_new(J_PRELOAD, sa->prefix) : NULL;
    if (!pre) {
        lazy_free(sa);
        free(sa->table);
        free(sa->prefix);
        free(sa);
        return ACME_E_NOMEM;
    }
    pre->want_values = 1;
    pthread_mutex_init(&sa->mu, NULL);
    pthread_cond_init(&sa->cv, NULL);
    if (pthread_create(&sa->thread, NULL, run, sa) != 0) {
        pthread_mutex_destroy(&sa->mu);
        pthread_cond_destroy(&sa->cv);
        job_free(pre);
        lazy_free(sa);
        free(sa->table);
        free(sa->prefix);
        free(sa);
        return ACME_E_NOMEM;
    }
    /* The start-up reads, in one batch on the thread; the caller
     * (acme_engine_new, before the host's loop steps anything) waits for
     * them, so every step after finds the stored state in memory. */
    c->sa = sa;
    run_waiting(sa, pre);
    preload_in(sa, pre);
    job_free(pre);
    return ACME_OK;
}

typedef void (*lost_fn)(void *, const char *, const char *);
typedef void (*fetched_fn)(void *, const char *);
static void take_done(store_async *sa, int (*locked)(void *, const void *, int), lost_fn lost, fetched_fn fetched,
                      void *ud);

void store_async_stop(acme_client *c)
{
    store_async *sa = c->sa;
    if (!sa)
        return;
    pthread_mutex_lock(&sa->mu);
    sa->stop = 1;
    sa->wake = NULL; /* the engine is going */
    pthread_cond_broadcast(&sa->cv);
    pthread_mutex_unlock(&sa->mu);
    /* The thread empties the queue first: every write reaches the table. */
    pthread_join(sa->thread, NULL);
    c->sa = NULL;
    take_done(sa, NULL, NULL, NULL, NULL);
    for (size_t b = 0; b < sa->nbuckets; b++)
        while (sa->table[b]) {
            entry *e = sa->table[b];
            sa->table[b] = e->next;
            set_value(e, E_ABSENT, NULL, 0);
            free(e->key);
            free(e);
        }
    free(sa->table);
    pthread_mutex_destroy(&sa->mu);
    pthread_cond_destroy(&sa->cv);
    lazy_free(sa);
    free(sa->prefix);
    free(sa);
}

int store_async_ready(const store_async *sa)
{
    return sa->ready;
}

size_t store_async_pending(const store_async *sa)
{
    return sa->pending;
}

static void preload_in(store_async *sa, sa_job *j)
{
    sa->ready = 1;
    if (j->rc) {
        /* No list (or it failed): reads the overlay does not know go to
         * the thread and wait; correct, only not free of waits. */
        alog(sa->c, ACME_LOG_WARNING, "storage: could not read the stored state up front (%s); "
             "reads will wait for the storage table inside engine steps%s",
             j->rc == ACME_E_UNSUPPORTED ? "the table has no list()" : (j->why ? j->why : acme_strerror(j->rc)),
             j->rc == ACME_E_UNSUPPORTED ? " — give the table a list() to avoid that" : "");
        return;
    }
    for (size_t i = 0; i < j->kv_n; i++) {
        /* Looked up by a key the entry may take over: copy the pointer. */
        char *key = j->kvs[i].key;
        entry *e = lookup_adopt(sa, key, 1, &j->kvs[i].key);
        if (!e || e->pending || e->state != E_UNKNOWN)
            continue; /* a write made meanwhile is newer */
        if (!j->kvs[i].val && is_lazy(sa, e->key)) {
            e->state = E_STORED; /* listed; its value is read when asked for */
            continue;
        }
        if (j->kvs[i].val) {
            /* Moved, not copied: two copies of the whole store at once
             * were the peak of a start-up with 100,000 certificates. */
            set_value(e, E_ABSENT, NULL, 0);
            e->state = E_PRESENT;
            e->val = j->kvs[i].val;
            e->len = j->kvs[i].len;
            j->kvs[i].val = NULL;
        }
    }
    sa->complete = 1;
    alog(sa->c, ACME_LOG_DEBUG, "storage: %zu stored keys read at start", j->kv_n);
}

/* A lock's fresh read of its certificate's keys replaces what memory had
 * (writes of ours still queued are newer and stay). */
static void lock_reread_in(store_async *sa, sa_job *j)
{
    size_t n = j->len;
    /* j->data is "<ca-id>/certs/<cert-id>/": its keys are in its bucket. */
    for (entry *e = sa->table[hash(j->data) % sa->nbuckets]; e; e = e->next)
        if (!e->pending && strncmp(e->key, j->data, n) == 0)
            set_value(e, E_ABSENT, NULL, 0);
    for (size_t i = 0; i < j->kv_n; i++) {
        entry *e = lookup(sa, j->kvs[i].key, 1);
        if (!e || e->pending)
            continue;
        if (j->kvs[i].val)
            set_value(e, E_PRESENT, j->kvs[i].val, j->kvs[i].len);
        else
            set_value(e, E_UNKNOWN, NULL, 0);
    }
}

/* A slice's values are in: into memory, unless a write of ours is newer
 * or memory already holds the value. */
static void fetch_in(store_async *sa, sa_job *j)
{
    for (size_t i = 0; i < j->kv_n; i++) {
        kv *k = &j->kvs[i];
        char *key = k->key;
        entry *e = lookup_adopt(sa, key, k->val != NULL, &k->key);
        if (!e || e->pending || (e->state != E_STORED && e->state != E_UNKNOWN))
            continue;
        if (k->val) {
            set_value(e, E_ABSENT, NULL, 0);
            e->state = E_PRESENT;
            e->val = k->val; /* moved */
            e->len = k->len;
            k->val = NULL;
        } else if (k->absent) {
            set_value(e, E_ABSENT, NULL, 0);
        }
    }
}

static void take_done(store_async *sa, int (*locked)(void *, const void *, int), lost_fn lost, fetched_fn fetched,
                      void *ud)
{
    pthread_mutex_lock(&sa->mu);
    sa_job *list = sa->done;
    sa->done = sa->done_tail = NULL;
    pthread_mutex_unlock(&sa->mu);
    while (list) {
        sa_job *j = list;
        list = j->next;
        if (j->kind != J_NOTE && sa->pending)
            sa->pending--;
        switch (j->kind) {
        case J_PUT:
        case J_REMOVE: {
            entry *e = lookup(sa, j->key, 0);
            if (e && e->pending)
                e->pending--;
            if (j->rc) {
                /* The table keeps its old value (a put is atomic): forget
                 * what we thought, ask the table next time. */
                if (e && !e->pending)
                    set_value(e, E_UNKNOWN, NULL, 0);
                if (j->rc == ACME_E_LOCKED)
                    alog(sa->c, ACME_LOG_WARNING, "storage: %s %s dropped (%s)", j->kind == J_PUT ? "write of" :
                         "removal of", j->key, j->why ? j->why : acme_strerror(j->rc));
                else
                    alog(sa->c, ACME_LOG_ERROR, "storage: could not %s %s (%s); the previous value is unchanged — "
                         "check the storage (free space, permissions of the state directory)",
                         j->kind == J_PUT ? "write" : "remove", j->key, j->why ? j->why : acme_strerror(j->rc));
            } else if (e && !e->pending && e->state == E_PRESENT && is_lazy(sa, e->key)) {
                set_value(e, E_STORED, NULL, 0); /* written: the table holds it */
            }
            break;
        }
        case J_PRELOAD:
            preload_in(sa, j);
            break;
        case J_LOCK:
            if (j->rc == ACME_OK && j->kvs_ok)
                lock_reread_in(sa, j);
            /* Without locked() the engine is stopping: the thread released
             * what it held when it ended. */
            if (locked && (!j->object || !locked(ud, j->object, j->rc))) {
                /* Its order went away while the table was asked. */
                if (j->rc == ACME_OK)
                    store_async_unlock(sa, j->key);
            }
            break;
        case J_UNLOCK:
            if (j->rc)
                alog(sa->c, ACME_LOG_WARNING, "could not release the storage lock %s (%s)", j->key,
                     j->why ? j->why : acme_strerror(j->rc));
            break;
        case J_NOTE: {
            if (!j->lost) {
                alog(sa->c, ACME_LOG_WARNING, "storage: the lease of the lock %s could not be refreshed (%s); "
                     "trying again in %u s, while the lease lasts", j->key, j->why ? j->why : acme_strerror(j->rc),
                     REFRESH_RETRY_MS / 1000u);
                break;
            }
            if (lost) {
                lost(ud, j->key, j->why ? j->why : acme_strerror(j->rc));
                break;
            }
            alog(sa->c, ACME_LOG_WARNING, "storage: the lock %s was lost (%s); another process may take the "
                 "order over", j->key, j->why ? j->why : acme_strerror(j->rc));
            /* "<ca-id>.order.<cert-id>": the host hears which certificate. */
            const char *id = strstr(j->key, ".order.");
            if (locked && id)
                event_plain(sa->c, ACME_EVENT_LOCK_LOST, id + 7);
            break;
        }
        case J_BARRIER:
            if (j->object && locked)
                locked(ud, j->object, j->rc);
            break;
        case J_FETCH:
            if (j->rc)
                alog(sa->c, ACME_LOG_WARNING, "storage: could not read ahead what start-up needs (%s); those reads "
                     "will wait for the storage table inside engine steps", j->why ? j->why : acme_strerror(j->rc));
            fetch_in(sa, j);
            for (size_t off = 0; fetched && off < j->tags_len; off += strlen(j->tags + off) + 1)
                fetched(ud, j->tags + off);
            break;
        case J_GET:
        case J_LIST:
            break;
        }
        job_free(j);
    }
}

void store_async_begin_step(acme_client *c, int (*locked)(void *, const void *, int), lost_fn lost,
                            fetched_fn fetched, void *ud)
{
    store_async *sa = c->sa;
    if (!sa)
        return;
    take_done(sa, locked, lost, fetched, ud);
    sa->in_step = 1;
}

void store_async_end_step(acme_client *c)
{
    if (c->sa)
        c->sa->in_step = 0;
}

int store_async_fetch(store_async *sa, const char *keys, size_t keys_len, const char *tags, size_t tags_len)
{
    /* Without the start-up list nothing is known to be in the table:
     * reads ask it one by one, as they did. */
    if (!sa->complete || !keys_len)
        return ACME_OK;
    /* Only what memory cannot answer goes to the thread: a key the
     * start-up list did not see is absent, one held or absent is known.
     * (A prefix always goes: memory has no index by prefix.) */
    acme_buf need;
    buf_init(&need, 0);
    for (size_t off = 0; off < keys_len; off += strlen(keys + off) + 1) {
        const char *k = keys + off;
        size_t n = strlen(k);
        entry *e = n && k[n - 1] == '/' ? NULL : lookup(sa, k, 0);
        if (n && k[n - 1] != '/' && (!e || (e->state != E_STORED && e->state != E_UNKNOWN)))
            continue;
        if (buf_append(&need, k, n + 1)) {
            buf_clear(&need);
            return ACME_E_NOMEM;
        }
    }
    if (!need.len) {
        buf_clear(&need);
        return ACME_OK;
    }
    sa_job *j = job_new(J_FETCH, NULL);
    if (!j || !(j->tags = copy_bytes(tags, tags_len))) {
        job_free(j);
        buf_clear(&need);
        return ACME_E_NOMEM;
    }
    j->data = buf_steal(&need, &j->len);
    if (!j->data) {
        job_free(j);
        return ACME_E_NOMEM;
    }
    j->tags_len = tags_len;
    j->want_values = 1;
    sa->pending++;
    enqueue(sa, j);
    return ACME_E_PENDING;
}

int store_async_get(store_async *sa, const char *key, acme_buf *out, char **why)
{
    *why = NULL;
    entry *e = lookup(sa, key, 0);
    /* A shared table outside a step (the host looking for what other
     * nodes stored): the table's value, unless a write of ours is queued. */
    int ask = sa->shared && !sa->in_step && !(e && e->pending);
    if (!ask && e && e->state == E_PRESENT) {
        int rc = buf_append(out, e->val, e->len);
        /* A certificate's value read once (the start-up slice is read by
         * its first look): the table has it; memory need not. */
        if (rc == ACME_OK && !e->pending && is_lazy(sa, e->key))
            set_value(e, E_STORED, NULL, 0);
        return rc;
    }
    if (!ask && e && e->state == E_ABSENT)
        return ACME_E_NOT_FOUND;
    if (!ask && !e && sa->complete)
        return ACME_E_NOT_FOUND;
    /* Unknown: ask the table, after every write queued before. */
    sa_job *j = job_new(J_GET, key);
    if (!j)
        return ACME_E_NOMEM;
    j->out = out;
    size_t before = out->len;
    if (sa->in_step)
        alog(sa->c, ACME_LOG_DEBUG, "storage: %s not known in memory; the step waits for the table", key);
    run_waiting(sa, j);
    int rc = j->rc;
    if (rc == ACME_OK || rc == ACME_E_NOT_FOUND) {
        entry *n = lookup(sa, key, 1);
        if (n && !n->pending) {
            if (rc)
                set_value(n, E_ABSENT, NULL, 0);
            else if (is_lazy(sa, key) || (sa->shared && !sa->in_step))
                set_value(n, E_STORED, NULL, 0);
            else
                set_value(n, E_PRESENT, out->data + before, out->len - before); /* kept: see E_STORED */
        }
    } else {
        *why = j->why;
        j->why = NULL;
    }
    job_free(j);
    return rc;
}

static int write_op(store_async *sa, j_kind kind, const char *key, const void *data, size_t len,
                    unsigned flags, char **why)
{
    *why = NULL;
    sa_job *j = job_new(kind, key);
    if (!j)
        return ACME_E_NOMEM;
    if (kind == J_PUT && !(j->data = copy_bytes(data, len))) {
        job_free(j);
        return ACME_E_NOMEM;
    }
    j->len = len;
    j->flags = flags;
    entry *e = lookup(sa, key, 1);
    if (!e) {
        job_free(j);
        return ACME_E_NOMEM;
    }
    if (sa->in_step) {
        /* Write-behind: later reads see it now, the table gets it soon;
         * a failure is logged when it comes back (take_done). */
        set_value(e, kind == J_PUT ? E_PRESENT : E_ABSENT, data, len);
        e->pending++;
        sa->pending++;
        if (!(flags & ACME_STORAGE_NO_SYNC))
            sa->durable++;
        enqueue(sa, j);
        return ACME_OK;
    }
    /* Outside a step the caller expects it done when we return. */
    run_waiting(sa, j);
    int rc = j->rc;
    if (rc == ACME_OK) {
        if (!e->pending && kind == J_PUT && !is_lazy(sa, key))
            set_value(e, E_PRESENT, data, len);
        else if (!e->pending)
            set_value(e, kind == J_PUT ? E_STORED : E_ABSENT, NULL, 0);
    } else {
        if (!e->pending)
            set_value(e, E_UNKNOWN, NULL, 0);
        *why = j->why;
        j->why = NULL;
    }
    job_free(j);
    return rc;
}

int store_async_put(store_async *sa, const char *key, const void *data, size_t len, unsigned flags, char **why)
{
    return write_op(sa, J_PUT, key, data, len, flags, why);
}

int store_async_remove(store_async *sa, const char *key, char **why)
{
    return write_op(sa, J_REMOVE, key, NULL, 0, 0, why);
}

int store_async_list(store_async *sa, const char *prefix, acme_storage_list_cb cb, void *cbdata)
{
    size_t n = strlen(prefix);
    /* A shared table outside a step: other nodes' keys too (below). */
    if (sa->complete && !(sa->shared && !sa->in_step)) {
        /* The overlay is the table as this process knows it. Collect
         * first: cb may write (a sweep removes what it is shown). */
        sa_job tmp;
        memset(&tmp, 0, sizeof(tmp));
        for (size_t b = 0; b < sa->nbuckets; b++)
            for (entry *e = sa->table[b]; e; e = e->next)
                if ((e->state == E_PRESENT || e->state == E_STORED) && strncmp(e->key, prefix, n) == 0 &&
                    collect_key(&tmp, e->key)) {
                    kvs_free(&tmp);
                    return ACME_E_NOMEM;
                }
        int rc = ACME_OK;
        for (size_t i = 0; i < tmp.kv_n; i++)
            if (cb(cbdata, tmp.kvs[i].key))
                break;
        kvs_free(&tmp);
        return rc;
    }
    sa_job *j = job_new(J_LIST, prefix);
    if (!j)
        return ACME_E_NOMEM;
    run_waiting(sa, j);
    int rc = j->rc;
    /* The table's answer, corrected by the writes still queued: a removal
     * hides a key, a put not yet done adds one. */
    int stop = 0;
    for (size_t i = 0; rc == ACME_OK && i < j->kv_n && !stop; i++) {
        entry *e = lookup(sa, j->kvs[i].key, 0);
        if (e && e->state == E_ABSENT && (e->pending || !sa->shared))
            continue;
        stop = cb(cbdata, j->kvs[i].key) != 0;
    }
    if (rc == ACME_OK && !stop && sa->pending) {
        sa_job extra;
        memset(&extra, 0, sizeof(extra));
        for (size_t b = 0; b < sa->nbuckets; b++)
            for (entry *e = sa->table[b]; e; e = e->next) {
                if (!e->pending || e->state != E_PRESENT || strncmp(e->key, prefix, n) != 0)
                    continue;
                size_t i = 0;
                while (i < j->kv_n && strcmp(j->kvs[i].key, e->key) != 0)
                    i++;
                if (i == j->kv_n && collect_key(&extra, e->key)) {
                    kvs_free(&extra);
                    job_free(j);
                    return ACME_E_NOMEM;
                }
            }
        for (size_t i = 0; i < extra.kv_n; i++)
            if (cb(cbdata, extra.kvs[i].key))
                break;
        kvs_free(&extra);
    }
    job_free(j);
    return rc;
}

int store_async_lock(store_async *sa, const char *name, const void *object)
{
    sa_job *j = job_new(J_LOCK, name);
    if (!j)
        return ACME_E_NOMEM;
    if (!sa->in_step) {
        /* A blocking call on a client whose engine exists: it waits. */
        run_waiting(sa, j);
        int rc = j->rc;
        if (rc == ACME_OK && j->kvs_ok)
            lock_reread_in(sa, j);
        job_free(j);
        return rc;
    }
    j->object = object;
    sa->pending++;
    enqueue(sa, j);
    return ACME_E_PENDING;
}

void store_async_unlock(store_async *sa, const char *name)
{
    sa_job *j = job_new(J_UNLOCK, name);
    if (!j)
        return; /* the lease frees it */
    sa->pending++;
    enqueue(sa, j);
}

void store_async_forget(store_async *sa, const void *object)
{
    /* Its answer must not reach whoever gets the same address next. */
    pthread_mutex_lock(&sa->mu);
    for (sa_job *j = sa->queue; j; j = j->next)
        if (j->object == object)
            j->object = NULL;
    for (sa_job *j = sa->done; j; j = j->next)
        if (j->object == object)
            j->object = NULL;
    if (sa->running && sa->running->object == object)
        sa->running->object = NULL;
    pthread_mutex_unlock(&sa->mu);
}

void store_async_set_lease(store_async *sa, unsigned lease_s)
{
    pthread_mutex_lock(&sa->mu);
    sa->lease_s = lease_s ? lease_s : 1;
    pthread_mutex_unlock(&sa->mu);
}

unsigned long long store_async_durable(const store_async *sa)
{
    return sa->durable;
}

int store_async_barrier(store_async *sa, const void *object)
{
    sa_job *j = job_new(J_BARRIER, NULL);
    if (!j)
        return ACME_E_NOMEM;
    j->object = object;
    sa->pending++;
    enqueue(sa, j);
    return ACME_E_PENDING;
}
