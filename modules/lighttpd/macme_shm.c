/* mod_acme: the table shared by lighttpd's worker processes, and by the
 * generations of one lighttpd.
 *
 * One worker runs the engine (see macme_core.c); a validator's request
 * may reach any worker. So the http-01 answers and the status document
 * live in a MAP_SHARED mapping made before the workers fork, guarded by a
 * robust process-shared mutex (a worker killed while holding it does not
 * wedge the others). Nothing here touches the disk.
 *
 * The mapping is a memfd whose descriptor survives exec and whose number
 * is in the environment (SHM_ENV): with server.graceful-restart-bg the
 * old generation is fork()ed off and keeps accepting until the new one is
 * ready, but a fork keeps no threads, so its table no longer hears of new
 * answers (on a cluster, other hosts' answers come through etcd on a
 * thread). Sharing one table, the old generation serves what the new one
 * loads (seen: a validation that reached the old generation right after
 * a restart got a 404 and killed another host's order). Each generation
 * bumps the epoch; macme_shm_sweep drops what earlier ones left once the
 * new engine has loaded what is current. The answers are public by
 * design (any client may fetch them); a CGI child inheriting the
 * descriptor learns nothing the web does not. */
#include "macme.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHM_ENV "LIBACME_MOD_ACME_SHM_FD"
#define SHM_MAGIC 0x6d61636d65736801ull /* "macmesh" + layout 1 */

#define SHM_TOKENS 64
#define SHM_TOKEN_MAX 256
#define SHM_KEYAUTH_MAX 512
#define SHM_STATUS_MAX (256 * 1024)
/* About 600 bytes per certificate: room for some 1,700. Pages never
 * written are never resident. */
#define SHM_METRICS_MAX (1024 * 1024)

typedef struct shm_token {
    unsigned epoch;                /* the generation that put it */
    char token[SHM_TOKEN_MAX];
    char key_auth[SHM_KEYAUTH_MAX];
} shm_token;

struct macme_shm {
    uint64_t magic;                /* SHM_MAGIC once set up */
    pthread_mutex_t mu;
    unsigned epoch;                /* this generation's (bumped by each) */
    unsigned used;                 /* slots in use: token[0] != 0 */
    shm_token tok[SHM_TOKENS];
    size_t status_len;             /* 0: none yet */
    char status[SHM_STATUS_MAX];
    size_t metrics_len;            /* 0: none yet */
    char metrics[SHM_METRICS_MAX]; /* Prometheus text (acme_engine_metrics) */
};

static void lock(macme_shm *s)
{
    int rc = pthread_mutex_lock(&s->mu);
    if (rc == EOWNERDEAD)
        pthread_mutex_consistent(&s->mu);
}

static void unlock(macme_shm *s)
{
    pthread_mutex_unlock(&s->mu);
}

/* For the leader's loop, which must not wait for a reader in another
 * worker (one preempted while holding the lock would hold it up). */
static int try_lock(macme_shm *s)
{
    int rc = pthread_mutex_trylock(&s->mu);
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&s->mu);
        rc = 0;
    }
    return rc == 0 ? 0 : -1;
}

/* The previous generation's table, if the environment names a memfd
 * of ours (same size, set up). */
static macme_shm *inherited(void)
{
    const char *v = getenv(SHM_ENV);
    if (!v)
        return NULL;
    char *end;
    long fd = strtol(v, &end, 10);
    struct stat st;
    if (*end || fd < 0 || fd > INT32_MAX || fstat((int)fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size != (off_t)sizeof(macme_shm))
        return NULL;
    void *m = mmap(NULL, sizeof(macme_shm), PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
    if (m == MAP_FAILED)
        return NULL;
    macme_shm *s = m;
    if (s->magic != SHM_MAGIC) {
        munmap(m, sizeof(macme_shm));
        return NULL;
    }
    return s;
}

static macme_shm *fresh(void)
{
    /* No MFD_CLOEXEC: the next generation (exec) maps it too. */
    int fd = memfd_create("mod_acme", 0);
    void *m = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, (off_t)sizeof(macme_shm)) == 0)
        m = mmap(NULL, sizeof(macme_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        /* No memfd: one generation's table, as before. */
        if (fd >= 0)
            close(fd);
        fd = -1;
        m = mmap(NULL, sizeof(macme_shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
    }
    macme_shm *s = m;
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (rc == 0) {
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        rc = pthread_mutex_init(&s->mu, &a);
        pthread_mutexattr_destroy(&a);
    }
    if (rc != 0) {
        munmap(m, sizeof(macme_shm));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    s->magic = SHM_MAGIC;
    if (fd >= 0) {
        char num[16];
        snprintf(num, sizeof(num), "%d", fd);
        setenv(SHM_ENV, num, 1);
    }
    return s;
}

macme_shm *macme_shm_new(void)
{
    macme_shm *s = inherited();
    if (!s)
        s = fresh();
    if (s) {
        lock(s);
        s->epoch++;
        unlock(s);
    }
    return s;
}

unsigned macme_shm_epoch(macme_shm *s)
{
    lock(s);
    unsigned e = s->epoch;
    unlock(s);
    return e;
}

void macme_shm_sweep(macme_shm *s)
{
    lock(s);
    for (unsigned i = 0; i < SHM_TOKENS; i++)
        if (s->tok[i].token[0] && s->tok[i].epoch != s->epoch) {
            memset(&s->tok[i], 0, sizeof(s->tok[i]));
            s->used--;
        }
    unlock(s);
}

void macme_shm_free(macme_shm *s)
{
    if (!s)
        return;
    /* Other processes may still map it: the mutex stays as it is. */
    munmap(s, sizeof(macme_shm));
}

int macme_shm_put_token(macme_shm *s, const char *token, const char *key_auth)
{
    size_t tl = strlen(token), kl = strlen(key_auth);
    if (!tl || tl >= SHM_TOKEN_MAX || kl >= SHM_KEYAUTH_MAX)
        return ACME_E_TOO_LARGE;
    lock(s);
    shm_token *slot = NULL;
    for (unsigned i = 0; i < SHM_TOKENS; i++) {
        if (strcmp(s->tok[i].token, token) == 0) {
            slot = &s->tok[i];
            break;
        }
        if (!slot && !s->tok[i].token[0])
            slot = &s->tok[i];
    }
    int rc = ACME_E_TOO_LARGE;
    if (slot) {
        if (!slot->token[0])
            s->used++;
        memcpy(slot->key_auth, key_auth, kl + 1);
        memcpy(slot->token, token, tl + 1);
        slot->epoch = s->epoch;
        rc = ACME_OK;
    }
    unlock(s);
    return rc;
}

void macme_shm_del_token(macme_shm *s, const char *token)
{
    lock(s);
    for (unsigned i = 0; i < SHM_TOKENS; i++)
        if (s->tok[i].token[0] && strcmp(s->tok[i].token, token) == 0) {
            memset(&s->tok[i], 0, sizeof(s->tok[i]));
            s->used--;
        }
    unlock(s);
}

size_t macme_shm_get_token(macme_shm *s, const char *token, char *out, size_t cap)
{
    size_t n = 0;
    if (!*token || strlen(token) >= SHM_TOKEN_MAX)
        return 0;
    lock(s);
    if (s->used)
        for (unsigned i = 0; i < SHM_TOKENS; i++)
            if (s->tok[i].token[0] && strcmp(s->tok[i].token, token) == 0) {
                n = strlen(s->tok[i].key_auth);
                if (n >= cap)
                    n = 0;
                else
                    memcpy(out, s->tok[i].key_auth, n + 1);
                break;
            }
    unlock(s);
    return n;
}

/* One text slot of cap bytes: the status document or the metrics. -1
 * when a reader holds the lock: nothing written, the caller tries again
 * at its next tick. */
static int set_text(macme_shm *s, char *slot, size_t cap, size_t *slot_len, const char *text, const char *too_big)
{
    size_t n = strlen(text);
    if (n >= cap) {
        text = too_big;
        n = strlen(too_big);
    }
    if (try_lock(s))
        return -1;
    memcpy(slot, text, n + 1);
    *slot_len = n;
    unlock(s);
    return 0;
}

/* The copy is allocated and its pages touched with the lock released
 * (up to 1 MiB for the metrics: page faults, maybe an mmap), then filled
 * if the length is still the same; a few rounds at most, since the
 * leader writes once a tick. */
static char *get_text(macme_shm *s, const char *slot, const size_t *slot_len)
{
    for (int round = 0;; round++) {
        lock(s);
        size_t n = *slot_len;
        if (!n || round == 8) {
            char *copy = n ? malloc(n + 1) : NULL;
            if (copy)
                memcpy(copy, slot, n + 1);
            unlock(s);
            return copy;
        }
        unlock(s);
        char *copy = malloc(n + 1);
        if (!copy)
            return NULL;
        memset(copy, 0, n + 1);
        lock(s);
        if (*slot_len == n) {
            memcpy(copy, slot, n + 1);
            unlock(s);
            return copy;
        }
        unlock(s);
        free(copy);
    }
}

int macme_shm_set_status(macme_shm *s, const char *json)
{
    return set_text(s, s->status, sizeof(s->status), &s->status_len, json, "{\"error\":\"status document too large\"}");
}

char *macme_shm_get_status(macme_shm *s)
{
    return get_text(s, s->status, &s->status_len);
}

int macme_shm_set_metrics(macme_shm *s, const char *text)
{
    /* Too many certificates for the slot: a scraper sees that, not a cut text. */
    return set_text(s, s->metrics, sizeof(s->metrics), &s->metrics_len, text,
             "# HELP acme_metrics_too_large The metrics exceed mod_acme's shared buffer (1 MiB).\n"
             "# TYPE acme_metrics_too_large gauge\nacme_metrics_too_large 1\n");
}

char *macme_shm_get_metrics(macme_shm *s)
{
    return get_text(s, s->metrics, &s->metrics_len);
}
