/* The etcd storage table: libacme's keys in an etcd cluster, and order
 * locks that stay safe when their holder pauses or is cut off.
 *
 * Why fencing: a lease-based lock alone does not stop a holder that was
 * paused (SIGSTOP, a long GC, a VM migration) or partitioned from writing
 * after its lease ran out and another node took the lock — it simply does
 * not know yet. So the lock key's create_revision is kept as a fencing
 * token, and every write to the keys a lock protects (certs/<id>/ of the
 * lock <ca-id>.order.<id>) is a txn that compares the lock key's
 * create_revision with that token: the successor's lock has another
 * revision, and etcd refuses the stale write. A node that does not hold
 * the lock writes there only while nobody does (create_revision == 0).
 * On top, a holder whose lease was not confirmed before a monotonic
 * deadline stops writing at once, without asking.
 *
 * Leases: a lock's lease is granted with lock_ttl_s and kept alive every
 * TTL/3 by our own thread while libacme keeps calling lock() (the engine
 * renews every lease/3) or until lease_seconds since the last call, so a
 * dead process (SIGKILL) frees its locks within TTL, and a live one that
 * stopped renewing frees them within its lease. */
#include "storage_etcd.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <acme/error.h>

#include "buf.h"
#include "storage_etcd_json.h"
#include "storage_file.h"
#include "util.h"

#define DEFAULT_PREFIX "/libacme/"
#define DEFAULT_REQUEST_MS 5000
#define DEFAULT_CONNECT_MS 1000
#define DEFAULT_LOCK_TTL_S 15
#define MIN_LOCK_TTL_S 3
#define MAX_ENDPOINTS 16
#define ANSWER_MAX (64u << 20)     /* a range over every certificate stays below */
#define LIST_PAGE 1000
/* The deadline a holder stops writing at is its last confirmed lease end
 * less this, so a write that is on its way still lands inside the lease. */
#define WRITE_MARGIN_MS 1000
#define TICK_MS 250

typedef struct etcd_conn {
    CURL *h;
    pthread_mutex_t mu;
} etcd_conn;

typedef struct held_lock {
    struct held_lock *next;
    char *name;           /* the libacme lock name */
    char *key;            /* P.locks/<name> */
    char *guards;         /* P<ca-id>/certs/<cert-id>/: what it fences; NULL if none */
    int64_t lease;
    int64_t token;        /* the lock key's create_revision */
    unsigned ttl_s;
    uint64_t confirmed_ms; /* monotonic: the lease is known to live until then */
    uint64_t hold_until_ms;/* monotonic: keep alive until then (last lock() + lease) */
    uint64_t next_keepalive_ms;
    int lost;             /* the lease ended or another took the lock */
    int lost_reported;    /* lock() said so once */
} held_lock;

struct storage_etcd {
    char **endpoints;
    size_t endpoint_count;
    size_t current;               /* the member that answered last */
    char *prefix;
    char *ca_file;
    char *username, *password;
    char *auth_token;
    unsigned request_ms, connect_ms, lock_ttl_s;
    char node[200];
    unsigned flags;               /* ACME_ETCD_* of acme_etcd_options.flags */

    pthread_mutex_t mu;           /* guards everything below and the fields above that change */
    etcd_conn fg, bg;             /* callers' requests; the background thread's */
    held_lock *held;
    char err[700];
    char health[700];             /* the last failed request, "" once one succeeds */
    unsigned long requests;

    pthread_t thread;
    int thread_started, stop;
    pthread_cond_t cv;

    void *chal;                   /* storage_etcd_chal.c's state */
    char *lock_scope;             /* CA failover: the ca-id every order lock is named by (NULL: each key's own) */
};

void *etcd_chal_state(storage_etcd *s);
void etcd_chal_set_state(storage_etcd *s, void *st);
void *etcd_chal_state(storage_etcd *s) { return s->chal; }
void etcd_chal_set_state(storage_etcd *s, void *st) { s->chal = st; }

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

__attribute__((format(printf, 2, 3)))
static void set_err(storage_etcd *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&s->mu);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    pthread_mutex_unlock(&s->mu);
    va_end(ap);
}

static _Thread_local char err_copy[700];

const char *storage_etcd_last_error(storage_etcd *s)
{
    pthread_mutex_lock(&s->mu);
    snprintf(err_copy, sizeof(err_copy), "%s", s->err);
    pthread_mutex_unlock(&s->mu);
    return err_copy;
}

const char *storage_etcd_health(storage_etcd *s)
{
    pthread_mutex_lock(&s->mu);
    snprintf(err_copy, sizeof(err_copy), "%s", s->health);
    pthread_mutex_unlock(&s->mu);
    return err_copy;
}

unsigned long storage_etcd_requests(storage_etcd *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned long n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

const char *etcd_prefix(const storage_etcd *s) { return s->prefix; }
const char *etcd_node(const storage_etcd *s) { return s->node; }
unsigned etcd_flags(const storage_etcd *s) { return s->flags; }

/* ---- requests ---- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    acme_buf *b = ud;
    return buf_append(b, p, sz * n) == 0 ? sz * n : 0;
}

/* The gateway's words for "ask another member" and "log in again". */
static int is_failover_text(const char *t)
{
    return t && (strstr(t, "no leader") || strstr(t, "leader changed") || strstr(t, "timed out") ||
                 strstr(t, "not capable") || strstr(t, "too many requests") || strstr(t, "stopped"));
}

/* One POST to one member. *status: HTTP status, 0 if no answer. */
static int post_one(storage_etcd *s, etcd_conn *cn, const char *ep, const char *path, const char *body,
                    const char *token, long *status, acme_buf *out, char *why, size_t whylen)
{
    char url[600];
    snprintf(url, sizeof(url), "%s%s", ep, path);
    CURL *h = cn->h;
    curl_easy_reset(h);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[1200];
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: %s", token);
        hdr = curl_slist_append(hdr, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)s->request_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");   /* a cluster is never behind the host's proxy */
    if (s->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdr);
    pthread_mutex_lock(&s->mu);
    s->requests++;
    pthread_mutex_unlock(&s->mu);
    *status = 0;
    if (cc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(cc));
        return cc == CURLE_OPERATION_TIMEDOUT ? ACME_E_TIMEOUT : ACME_E_NETWORK;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return ACME_OK;
}

static int authenticate(storage_etcd *s, etcd_conn *cn, const char *ep, char *why, size_t whylen)
{
    json_t *b = json_pack("{s:s,s:s}", "name", s->username, "password", s->password ? s->password : "");
    char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!body)
        return ACME_E_NOMEM;
    acme_buf out;
    buf_init(&out, 1u << 20);
    long status = 0;
    int rc = post_one(s, cn, ep, "/v3/auth/authenticate", body, NULL, &status, &out, why, whylen);
    secure_free_str(body);
    if (rc) {
        buf_clear(&out);
        return rc;
    }
    json_t *a = json_loadb(out.data ? out.data : "", out.len, 0, NULL);
    buf_clear(&out);
    const char *tok = json_string_value(json_object_get(a, "token"));
    if (status != 200 || !tok) {
        const char *t = etcd_error_text(a);
        snprintf(why, whylen, "authentication as %s refused (HTTP %ld%s%s): check username and password",
                 s->username, status, t ? ": " : "", t ? t : "");
        json_decref(a);
        return ACME_E_STORAGE;
    }
    pthread_mutex_lock(&s->mu);
    free(s->auth_token);
    s->auth_token = strdup(tok);
    pthread_mutex_unlock(&s->mu);
    json_decref(a);
    return ACME_OK;
}

int etcd_call(storage_etcd *s, int bg, const char *path, json_t *body, json_t **answer)
{
    *answer = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return ACME_E_NOMEM;
    etcd_conn *cn = bg ? &s->bg : &s->fg;
    pthread_mutex_lock(&cn->mu);
    pthread_mutex_lock(&s->mu);
    size_t start = s->current;
    pthread_mutex_unlock(&s->mu);
    int rc = ACME_E_NETWORK;
    char why[600] = "";
    const char *failed_ep = s->endpoints[start];
    int answered = 0; /* a member gave a definite answer: etcd is up */
    for (size_t i = 0; i < s->endpoint_count; i++) {
        size_t idx = (start + i) % s->endpoint_count;
        const char *ep = s->endpoints[idx];
        failed_ep = ep;
        int auth_tries = 0;
    again:;
        char *token = NULL;
        if (s->username) {
            pthread_mutex_lock(&s->mu);
            token = s->auth_token ? strdup(s->auth_token) : NULL;
            pthread_mutex_unlock(&s->mu);
            if (!token) {
                if ((rc = authenticate(s, cn, ep, why, sizeof(why))) != ACME_OK) {
                    if (rc == ACME_E_STORAGE)
                        break; /* refused credentials: no other member will take them */
                    continue;
                }
                pthread_mutex_lock(&s->mu);
                token = s->auth_token ? strdup(s->auth_token) : NULL;
                pthread_mutex_unlock(&s->mu);
            }
        }
        acme_buf out;
        buf_init(&out, ANSWER_MAX);
        out.secret = 1; /* values may be private keys */
        long status = 0;
        rc = post_one(s, cn, ep, path, text, token, &status, &out, why, sizeof(why));
        free(token);
        if (rc) {
            buf_clear(&out);
            continue; /* unreachable or timed out: the next member */
        }
        json_error_t je;
        json_t *a = json_loadb(out.data ? out.data : "", out.len, 0, &je);
        buf_clear(&out);
        if (status == 200 && a) {
            pthread_mutex_lock(&s->mu);
            s->current = idx;
            s->health[0] = '\0';
            pthread_mutex_unlock(&s->mu);
            *answer = a;
            secure_free_str(text);
            pthread_mutex_unlock(&cn->mu);
            return ACME_OK;
        }
        const char *t = a ? etcd_error_text(a) : NULL;
        snprintf(why, sizeof(why), "HTTP %ld%s%s", status, t ? ": " : "", t ? t : (a ? "" : " (not JSON)"));
        if (s->username && t && (strstr(t, "invalid auth token") || strstr(t, "user name is empty")) &&
            auth_tries++ == 0) {
            json_decref(a);
            pthread_mutex_lock(&s->mu);
            free(s->auth_token);
            s->auth_token = NULL;
            pthread_mutex_unlock(&s->mu);
            goto again;
        }
        int next = status == 503 || status == 502 || status == 504 || is_failover_text(t);
        json_decref(a);
        rc = ACME_E_STORAGE;
        if (!next) {
            answered = 1;
            break; /* etcd said no: another member would say the same */
        }
    }
    secure_free_str(text);
    pthread_mutex_unlock(&cn->mu);
    pthread_mutex_lock(&s->mu);
    snprintf(s->err, sizeof(s->err), "etcd %s%s: %s%s", failed_ep, path, why,
             s->endpoint_count > 1 && (rc == ACME_E_NETWORK || rc == ACME_E_TIMEOUT)
                 ? " (and no other member answered either; is the cluster up?)" : "");
    /* Health is about reaching the cluster: a refusal (a lease already
     * gone, permission denied) is this request's failure, not etcd's. */
    if (answered)
        s->health[0] = '\0';
    else
        snprintf(s->health, sizeof(s->health), "%s", s->err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- the key map ---- */

static char *full_key(storage_etcd *s, const char *key)
{
    return xasprintf("%s%s", s->prefix, key);
}

/* "<ca-id>.order.<cert-id>" fences "<ca-id>/certs/<cert-id>/". */
static char *guard_of_lock(storage_etcd *s, const char *name)
{
    const char *o = strstr(name, ".order.");
    if (!o || o == name || !o[7])
        return NULL;
    return xasprintf("%s%.*s/certs/%s/", s->prefix, (int)(o - name), name, o + 7);
}

/* The lock name that fences a full key, if any: the inverse of the above. */
static char *lock_of_key(storage_etcd *s, const char *full)
{
    const char *k = full + strlen(s->prefix);
    const char *slash = strchr(k, '/');
    if (!slash || strncmp(slash, "/certs/", 7) != 0)
        return NULL;
    const char *id = slash + 7;
    const char *end = strchr(id, '/');
    if (!end || end == id)
        return NULL;
    /* In a CA list one lock covers the certificate at every CA of the
     * list (storage_etcd_set_lock_scope), so its keys under each CA are
     * fenced by that one lock. */
    pthread_mutex_lock(&s->mu);
    char *r = s->lock_scope ? xasprintf("%s.locks/%s.order.%.*s", s->prefix, s->lock_scope, (int)(end - id), id)
                            : xasprintf("%s.locks/%.*s.order.%.*s", s->prefix, (int)(slash - k), k, (int)(end - id), id);
    pthread_mutex_unlock(&s->mu);
    return r;
}

int storage_etcd_set_lock_scope(storage_etcd *s, const char *ca_id)
{
    char *v = ca_id ? strdup(ca_id) : NULL;
    if (ca_id && !v)
        return ACME_E_NOMEM;
    pthread_mutex_lock(&s->mu);
    free(s->lock_scope);
    s->lock_scope = v;
    pthread_mutex_unlock(&s->mu);
    return ACME_OK;
}

static held_lock *find_held(storage_etcd *s, const char *name)
{
    for (held_lock *h = s->held; h; h = h->next)
        if (strcmp(h->name, name) == 0)
            return h;
    return NULL;
}

static held_lock *find_held_key(storage_etcd *s, const char *lock_key)
{
    for (held_lock *h = s->held; h; h = h->next)
        if (strcmp(h->key, lock_key) == 0)
            return h;
    return NULL;
}

/* ---- the table ---- */

static int range_one(storage_etcd *s, const char *full, etcd_kv *kv)
{
    json_t *req = etcd_req_range(full, NULL, 0, 0);
    if (!req)
        return ACME_E_NOMEM;
    json_t *a = NULL;
    int rc = etcd_call(s, 0, "/v3/kv/range", req, &a);
    json_decref(req);
    if (rc)
        return rc;
    json_t *kvs = etcd_resp_kvs(a);
    if (!kvs) {
        json_decref(a);
        return ACME_E_NOT_FOUND;
    }
    rc = etcd_kv_parse(json_array_get(kvs, 0), kv) ? ACME_E_STORAGE : ACME_OK;
    if (rc)
        set_err(s, "etcd: a malformed answer to the range of %s", full);
    json_decref(a);
    return rc;
}

static int etcd_get(void *ud, const char *key, acme_buffer *out)
{
    storage_etcd *s = ud;
    if (!storage_key_valid(key))
        return ACME_E_INVALID_ARG;
    char *full = full_key(s, key);
    if (!full)
        return ACME_E_NOMEM;
    etcd_kv kv;
    int rc = range_one(s, full, &kv);
    free(full);
    if (rc)
        return rc;
    rc = acme_buffer_append(out, kv.value, kv.len);
    etcd_kv_clear(&kv);
    return rc;
}

/* A write (op: a put or a delete) of full key: plain when no lock fences
 * the key, else a txn conditioned on the lock being ours (or nobody's). */
static int fenced_write(storage_etcd *s, const char *full, json_t *op, const char *what)
{
    char *lock_key = lock_of_key(s, full);
    if (!lock_key) {
        json_t *a = NULL;
        json_t *ops = json_array();
        json_array_append_new(ops, op);
        json_t *txn = etcd_req_txn(NULL, 0, ops, NULL);
        if (!txn)
            return ACME_E_NOMEM;
        int rc = etcd_call(s, 0, "/v3/kv/txn", txn, &a);
        json_decref(txn);
        json_decref(a);
        return rc;
    }
    int64_t token = 0;
    pthread_mutex_lock(&s->mu);
    held_lock *h = find_held_key(s, lock_key);
    int refuse = 0;
    char name[300] = "";
    if (h) {
        snprintf(name, sizeof(name), "%s", h->name);
        token = h->token;
        uint64_t now = mono_ms();
        if (h->lost)
            refuse = 1;
        else if (now + WRITE_MARGIN_MS >= h->confirmed_ms) {
            /* Not confirmed in time: we may be the stale holder. */
            refuse = 2;
            h->lost = 1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (refuse) {
        set_err(s, "etcd: refusing to %s %s: the lock %s %s (fencing); another node may hold it now", what, full, name,
                refuse == 1 ? "was lost" : "has not had its lease confirmed in time");
        free(lock_key);
        json_decref(op);
        return ACME_E_LOCKED;
    }
    etcd_cmp cmp = {lock_key, ETCD_CMP_CREATE, token};
    json_t *ops = json_array();
    json_t *fail = json_array();
    json_array_append_new(ops, op);
    json_array_append_new(fail, etcd_op_range(lock_key));
    json_t *txn = etcd_req_txn(&cmp, 1, ops, fail);
    if (!txn) {
        free(lock_key);
        return ACME_E_NOMEM;
    }
    json_t *a = NULL;
    int rc = etcd_call(s, 0, "/v3/kv/txn", txn, &a);
    json_decref(txn);
    if (rc == ACME_OK && !etcd_txn_succeeded(a)) {
        etcd_kv kv;
        json_t *kvs = etcd_resp_kvs(etcd_txn_range(a, 0));
        char holder[200] = "nobody";
        int64_t theirs = 0;
        if (kvs && etcd_kv_parse(json_array_get(kvs, 0), &kv) == 0) {
            snprintf(holder, sizeof(holder), "%.*s", (int)kv.len, (const char *)kv.value);
            theirs = kv.create_revision;
            etcd_kv_clear(&kv);
        }
        if (h) {
            pthread_mutex_lock(&s->mu);
            if ((h = find_held_key(s, lock_key)))
                h->lost = 1;
            pthread_mutex_unlock(&s->mu);
            set_err(s, "etcd: refused to %s %s: the lock is now held by %s (fencing token %" PRId64 ", ours was %"
                    PRId64 "); this node's lease ran out", what, full, holder, theirs, token);
        } else {
            set_err(s, "etcd: refused to %s %s: %s holds the lock of this certificate (fencing token %" PRId64 ")",
                    what, full, holder, theirs);
        }
        rc = ACME_E_LOCKED;
    }
    json_decref(a);
    free(lock_key);
    return rc;
}

static int etcd_put(void *ud, const char *key, const void *data, size_t len, unsigned flags)
{
    storage_etcd *s = ud;
    (void)flags; /* secrecy is etcd's access control (auth, TLS): see doc/cluster.md */
    if (!storage_key_valid(key))
        return ACME_E_INVALID_ARG;
    char *full = full_key(s, key);
    if (!full)
        return ACME_E_NOMEM;
    json_t *op = etcd_op_put(full, data, len, 0);
    int rc = op ? fenced_write(s, full, op, "write") : ACME_E_NOMEM;
    free(full);
    return rc;
}

static int etcd_remove(void *ud, const char *key)
{
    storage_etcd *s = ud;
    if (!storage_key_valid(key))
        return ACME_E_INVALID_ARG;
    char *full = full_key(s, key);
    if (!full)
        return ACME_E_NOMEM;
    json_t *op = etcd_op_delete(full);
    int rc = op ? fenced_write(s, full, op, "remove") : ACME_E_NOMEM;
    free(full);
    return rc;
}

static int etcd_list(void *ud, const char *prefix, acme_storage_list_cb cb, void *cbdata)
{
    storage_etcd *s = ud;
    char *from = full_key(s, prefix);
    char *end = from ? etcd_prefix_end(from) : NULL;
    json_t *keys = json_array();
    int rc = from && end && keys ? ACME_OK : ACME_E_NOMEM;
    size_t skip = strlen(s->prefix);
    /* Pages of keys only; callbacks run after, with no request open, so a
     * callback may use the store. */
    while (rc == ACME_OK) {
        json_t *req = etcd_req_range(from, end, 1, LIST_PAGE);
        json_t *a = NULL;
        rc = req ? etcd_call(s, 0, "/v3/kv/range", req, &a) : ACME_E_NOMEM;
        json_decref(req);
        if (rc)
            break;
        json_t *kvs = etcd_resp_kvs(a);
        size_t i;
        json_t *v;
        const char *last = NULL;
        json_array_foreach(kvs, i, v) {
            etcd_kv kv;
            if (etcd_kv_parse(v, &kv))
                continue;
            if (strlen(kv.key) > skip && storage_key_valid(kv.key + skip))
                json_array_append_new(keys, json_string(kv.key + skip));
            etcd_kv_clear(&kv);
        }
        int more = json_is_true(json_object_get(a, "more"));
        if (more && json_array_size(keys)) {
            last = json_string_value(json_array_get(keys, json_array_size(keys) - 1));
            free(from);
            /* ' ' sorts before every key character, so "<last> " is the
             * first possible key after <last>: the next page starts there. */
            from = xasprintf("%s%s ", s->prefix, last);
            if (!from)
                rc = ACME_E_NOMEM;
        }
        json_decref(a);
        if (!more)
            break;
    }
    free(from);
    free(end);
    if (rc == ACME_OK) {
        size_t i;
        json_t *v;
        json_array_foreach(keys, i, v) {
            if (cb(cbdata, json_string_value(v)))
                break;
        }
    }
    json_decref(keys);
    return rc;
}

/* ---- leases and locks ---- */

static int lease_grant(storage_etcd *s, unsigned ttl, int64_t *id, unsigned *granted)
{
    json_t *req = json_pack("{s:I}", "TTL", (json_int_t)ttl);
    json_t *a = NULL;
    int rc = req ? etcd_call(s, 0, "/v3/lease/grant", req, &a) : ACME_E_NOMEM;
    json_decref(req);
    if (rc)
        return rc;
    *id = etcd_int(a, "ID");
    *granted = (unsigned)etcd_int(a, "TTL");
    json_decref(a);
    if (!*id || !*granted) {
        set_err(s, "etcd: lease grant answered without a lease");
        return ACME_E_STORAGE;
    }
    return ACME_OK;
}

static void lease_revoke(storage_etcd *s, int bg, int64_t id)
{
    char ids[24];
    snprintf(ids, sizeof(ids), "%" PRId64, id);
    json_t *req = json_pack("{s:s}", "ID", ids);
    json_t *a = NULL;
    if (req)
        etcd_call(s, bg, "/v3/lease/revoke", req, &a);
    json_decref(req);
    json_decref(a);
}

/* One keep-alive; *ttl: what etcd says is left (0: the lease is gone). */
static int lease_keepalive(storage_etcd *s, int bg, int64_t id, int64_t *ttl)
{
    char ids[24];
    snprintf(ids, sizeof(ids), "%" PRId64, id);
    json_t *req = json_pack("{s:s}", "ID", ids);
    json_t *a = NULL;
    int rc = req ? etcd_call(s, bg, "/v3/lease/keepalive", req, &a) : ACME_E_NOMEM;
    json_decref(req);
    if (rc)
        return rc;
    /* The gateway streams: one message, {"result":{...}}. */
    json_t *r = json_object_get(a, "result");
    *ttl = etcd_int(r ? r : a, "TTL");
    json_decref(a);
    return ACME_OK;
}

static void held_free(held_lock *h)
{
    free(h->name);
    free(h->key);
    free(h->guards);
    free(h);
}

/* Renew a lock we hold (s->mu held on entry and on return, dropped while
 * etcd is asked): a keep-alive, then the key must still be ours. */
static int refresh(storage_etcd *s, const char *name, unsigned lease_seconds)
{
    held_lock *h = find_held(s, name);
    if (!h)
        return ACME_E_STATE;
    int64_t lease = h->lease, token = h->token;
    char *key = strdup(h->key);
    if (!key)
        return ACME_E_NOMEM;
    pthread_mutex_unlock(&s->mu);
    uint64_t sent = mono_ms();
    int64_t ttl = 0;
    int rc = lease_keepalive(s, 0, lease, &ttl);
    etcd_kv kv;
    memset(&kv, 0, sizeof(kv));
    int still = 0;
    if (rc == ACME_OK && ttl > 0 && range_one(s, key, &kv) == ACME_OK)
        still = kv.create_revision == token && kv.lease == lease;
    etcd_kv_clear(&kv);
    free(key);
    pthread_mutex_lock(&s->mu);
    h = find_held(s, name);
    if (!h || h->lease != lease)
        return ACME_E_STATE; /* unlocked meanwhile */
    if (rc)
        return rc; /* etcd unreachable: the write deadline decides, not us */
    if (!still) {
        h->lost = 1;
        h->lost_reported = 1;
        return ACME_E_LOCKED;
    }
    h->confirmed_ms = sent + (uint64_t)ttl * 1000u;
    h->hold_until_ms = mono_ms() + (uint64_t)lease_seconds * 1000u;
    return ACME_OK;
}

static int etcd_lock(void *ud, const char *name, unsigned lease_seconds)
{
    storage_etcd *s = ud;
    if (!name || !*name || strchr(name, '/') || !storage_key_valid(name))
        return ACME_E_INVALID_ARG;
    if (lease_seconds == 0)
        lease_seconds = 1;
    pthread_mutex_lock(&s->mu);
    held_lock *h = find_held(s, name);
    if (h && !h->lost) {
        int rc = refresh(s, name, lease_seconds);
        pthread_mutex_unlock(&s->mu);
        if (rc == ACME_E_LOCKED)
            set_err(s, "etcd: the lock %s was lost (its lease ran out; another node may hold it)", name);
        return rc;
    }
    if (h && !h->lost_reported) {
        /* The run that held it must learn it lost it: its writes stay
         * refused until it unlocks (or a new lock() takes the name). */
        h->lost_reported = 1;
        pthread_mutex_unlock(&s->mu);
        set_err(s, "etcd: the lock %s was lost (its lease ran out; another node may hold it)", name);
        return ACME_E_LOCKED;
    }
    pthread_mutex_unlock(&s->mu);

    char *key = xasprintf("%s.locks/%s", s->prefix, name);
    if (!key)
        return ACME_E_NOMEM;
    unsigned ttl = s->lock_ttl_s < lease_seconds ? s->lock_ttl_s : lease_seconds;
    if (ttl < MIN_LOCK_TTL_S)
        ttl = MIN_LOCK_TTL_S;
    uint64_t sent = mono_ms();
    int64_t lease = 0;
    unsigned granted = 0;
    int rc = lease_grant(s, ttl, &lease, &granted);
    if (rc) {
        free(key);
        return rc;
    }
    char value[300];
    snprintf(value, sizeof(value), "%s lease=%" PRIx64, s->node, (uint64_t)lease);
    etcd_cmp cmp = {key, ETCD_CMP_CREATE, 0};
    json_t *ops = json_array(), *fail = json_array();
    json_array_append_new(ops, etcd_op_put(key, value, strlen(value), lease));
    json_array_append_new(fail, etcd_op_range(key));
    json_t *txn = etcd_req_txn(&cmp, 1, ops, fail);
    json_t *a = NULL;
    rc = txn ? etcd_call(s, 0, "/v3/kv/txn", txn, &a) : ACME_E_NOMEM;
    json_decref(txn);
    int64_t token = 0;
    if (rc == ACME_OK) {
        if (etcd_txn_succeeded(a)) {
            token = etcd_revision(a);
        } else {
            etcd_kv kv;
            json_t *kvs = etcd_resp_kvs(etcd_txn_range(a, 0));
            if (kvs && etcd_kv_parse(json_array_get(kvs, 0), &kv) == 0) {
                if (kv.lease == lease) {
                    token = kv.create_revision; /* our own txn, retried on another member */
                } else {
                    set_err(s, "etcd: the lock %s is held by %.*s (fencing token %" PRId64 ")", name, (int)kv.len,
                            (const char *)kv.value, kv.create_revision);
                    rc = ACME_E_LOCKED;
                }
                etcd_kv_clear(&kv);
            } else {
                rc = ACME_E_LOCKED; /* held a moment ago, gone now: try again later */
                set_err(s, "etcd: the lock %s was held a moment ago", name);
            }
        }
    }
    json_decref(a);
    if (rc || !token) {
        lease_revoke(s, 0, lease);
        free(key);
        return rc ? rc : ACME_E_STORAGE;
    }
    held_lock *n = calloc(1, sizeof(*n));
    if (!n || !(n->name = strdup(name))) {
        free(n);
        free(key);
        lease_revoke(s, 0, lease);
        return ACME_E_NOMEM;
    }
    n->key = key;
    n->guards = guard_of_lock(s, name);
    n->lease = lease;
    n->token = token;
    n->ttl_s = granted;
    uint64_t now = mono_ms();
    n->confirmed_ms = sent + (uint64_t)granted * 1000u;
    n->hold_until_ms = now + (uint64_t)lease_seconds * 1000u;
    n->next_keepalive_ms = now + (uint64_t)granted * 1000u / 3u;
    pthread_mutex_lock(&s->mu);
    /* A lost entry of the same name (reported) gives way to the new lock. */
    for (held_lock **pp = &s->held; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            held_lock *old = *pp;
            *pp = old->next;
            held_free(old);
            break;
        }
    }
    n->next = s->held;
    s->held = n;
    pthread_mutex_unlock(&s->mu);
    return etcd_thread_need(s);
}

static int release(storage_etcd *s, int bg, held_lock *h)
{
    etcd_cmp cmp = {h->key, ETCD_CMP_CREATE, h->token};
    json_t *ops = json_array();
    json_array_append_new(ops, etcd_op_delete(h->key));
    json_t *txn = etcd_req_txn(&cmp, 1, ops, NULL);
    json_t *a = NULL;
    int rc = txn ? etcd_call(s, bg, "/v3/kv/txn", txn, &a) : ACME_E_NOMEM;
    json_decref(txn);
    int ours = rc == ACME_OK && etcd_txn_succeeded(a);
    json_decref(a);
    /* Revoking also deletes the key, should the txn not have reached etcd. */
    lease_revoke(s, bg, h->lease);
    if (rc)
        return rc;
    return ours ? ACME_OK : ACME_E_LOCKED;
}

static int etcd_unlock(void *ud, const char *name)
{
    storage_etcd *s = ud;
    pthread_mutex_lock(&s->mu);
    held_lock *h = NULL;
    for (held_lock **pp = &s->held; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            h = *pp;
            *pp = h->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!h)
        return ACME_E_STATE;
    int rc = release(s, 0, h);
    if (rc == ACME_E_LOCKED || (rc == ACME_OK && h->lost))
        set_err(s, "etcd: the lock %s had been lost before unlock (another node took it over)", name);
    if (h->lost && rc == ACME_OK)
        rc = ACME_E_LOCKED;
    held_free(h);
    return rc;
}

/* The table's refresh (storage.h): ACME_E_LOCKED once the lock is known
 * lost — the keep-alive thread found the lease gone (expired, revoked), a
 * fenced write was refused, or the lease was not confirmed before the
 * write deadline — else a keep-alive and a look at the lock key. */
static int etcd_refresh(void *ud, const char *name, unsigned lease_seconds)
{
    storage_etcd *s = ud;
    if (!name || !*name)
        return ACME_E_INVALID_ARG;
    if (lease_seconds == 0)
        lease_seconds = 1;
    pthread_mutex_lock(&s->mu);
    held_lock *h = find_held(s, name);
    if (!h) {
        pthread_mutex_unlock(&s->mu);
        set_err(s, "etcd: refresh of the lock %s, which this node does not hold", name);
        return ACME_E_LOCKED;
    }
    if (!h->lost && mono_ms() + WRITE_MARGIN_MS >= h->confirmed_ms)
        h->lost = 1; /* not confirmed in time: writes are refused already */
    int rc = h->lost ? ACME_E_LOCKED : refresh(s, name, lease_seconds);
    if (rc == ACME_E_LOCKED && (h = find_held(s, name)) != NULL)
        h->lost_reported = 1;
    pthread_mutex_unlock(&s->mu);
    if (rc == ACME_E_LOCKED)
        set_err(s, "etcd: the lock %s was lost (its lease expired or was revoked, or was not confirmed in time); "
                "another node may hold it now", name);
    return rc;
}

int storage_etcd_lock_lost(storage_etcd *s, const char *name)
{
    pthread_mutex_lock(&s->mu);
    held_lock *h = find_held(s, name);
    int lost = 0;
    if (h) {
        if (!h->lost && mono_ms() + WRITE_MARGIN_MS >= h->confirmed_ms)
            h->lost = 1;
        lost = h->lost;
        if (lost)
            h->lost_reported = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return lost;
}

const acme_storage_ops storage_etcd_ops = {
    .size = sizeof(acme_storage_ops),
    .get = etcd_get,
    .put = etcd_put,
    .remove = etcd_remove,
    .list = etcd_list,
    .lock = etcd_lock,
    .unlock = etcd_unlock,
    .refresh = etcd_refresh,
};

/* ---- the background thread: keep-alives, challenge answers ---- */

static void keepalive_due(storage_etcd *s)
{
    for (;;) {
        uint64_t now = mono_ms();
        int64_t lease = 0;
        pthread_mutex_lock(&s->mu);
        for (held_lock *h = s->held; h; h = h->next) {
            if (h->lost || now < h->next_keepalive_ms)
                continue;
            if (now >= h->hold_until_ms) {
                /* libacme stopped renewing: let the lease run out. */
                h->next_keepalive_ms = UINT64_MAX;
                continue;
            }
            lease = h->lease;
            h->next_keepalive_ms = now + (uint64_t)h->ttl_s * 1000u / 3u;
            break;
        }
        pthread_mutex_unlock(&s->mu);
        if (!lease)
            return;
        int64_t ttl = 0;
        int rc = lease_keepalive(s, 1, lease, &ttl);
        pthread_mutex_lock(&s->mu);
        for (held_lock *h = s->held; h; h = h->next) {
            if (h->lease != lease)
                continue;
            if (rc == ACME_OK && ttl > 0)
                h->confirmed_ms = now + (uint64_t)ttl * 1000u;
            else if (rc == ACME_OK) {
                h->lost = 1; /* etcd forgot the lease: the lock is gone */
                snprintf(s->err, sizeof(s->err), "etcd: the lease of lock %s expired (this node was too slow "
                         "or cut off); its writes are refused from now on", h->name);
            } else {
                /* Try again soon, still within the lease. */
                h->next_keepalive_ms = now + 1000;
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static void *bg_main(void *arg)
{
    storage_etcd *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        keepalive_due(s);
        etcd_chal_tick(s);
        pthread_mutex_lock(&s->mu);
        if (s->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int etcd_thread_need(storage_etcd *s)
{
    pthread_mutex_lock(&s->mu);
    int rc = ACME_OK;
    if (!s->thread_started) {
        /* The thread must not take the host's signals (acmectl waits for
         * them on a signalfd). */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        if (pthread_create(&s->thread, NULL, bg_main, s) == 0)
            s->thread_started = 1;
        else
            rc = ACME_E_NOMEM;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- open / close ---- */

static int conn_init(etcd_conn *cn)
{
    cn->h = curl_easy_init();
    if (!cn->h)
        return -1;
    pthread_mutex_init(&cn->mu, NULL);
    return 0;
}

int storage_etcd_open(const acme_etcd_options *o, storage_etcd **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!o || o->size < offsetof(acme_etcd_options, node_name) + sizeof(o->node_name)) {
        snprintf(err, errlen, "acme_client_set_storage_etcd: no options, or options.size too small "
                 "(set it to sizeof(acme_etcd_options))");
        return ACME_E_INVALID_ARG;
    }
    if (!o->endpoints || o->endpoint_count == 0 || o->endpoint_count > MAX_ENDPOINTS) {
        snprintf(err, errlen, "etcd storage: give 1 to %d endpoints (client URLs such as http://127.0.0.1:2379)",
                 MAX_ENDPOINTS);
        return ACME_E_INVALID_ARG;
    }
    for (size_t i = 0; i < o->endpoint_count; i++) {
        const char *e = o->endpoints[i];
        if (!e || (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0) || strlen(e) > 400) {
            snprintf(err, errlen, "etcd storage: endpoint %s is not an http:// or https:// URL", e ? e : "(null)");
            return ACME_E_INVALID_ARG;
        }
    }
    const char *prefix = o->prefix && *o->prefix ? o->prefix : DEFAULT_PREFIX;
    if (prefix[strlen(prefix) - 1] != '/' || strlen(prefix) > 200) {
        snprintf(err, errlen, "etcd storage: prefix %s must end in '/' (e.g. /libacme/)", prefix);
        return ACME_E_INVALID_ARG;
    }
    if (o->password && !o->username) {
        snprintf(err, errlen, "etcd storage: a password without a username");
        return ACME_E_INVALID_ARG;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ACME_E_NOMEM;
    storage_etcd *s = calloc(1, sizeof(*s));
    if (!s) {
        curl_global_cleanup();
        return ACME_E_NOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    int bad = conn_init(&s->fg) || conn_init(&s->bg);
    s->endpoints = calloc(o->endpoint_count, sizeof(char *));
    bad = bad || !s->endpoints;
    for (size_t i = 0; !bad && i < o->endpoint_count; i++) {
        size_t n = strlen(o->endpoints[i]);
        while (n > 0 && o->endpoints[i][n - 1] == '/')
            n--;
        if (!(s->endpoints[i] = strndup(o->endpoints[i], n)))
            bad = 1;
        else
            s->endpoint_count++;
    }
    s->prefix = strdup(prefix);
    s->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
    s->username = o->username ? strdup(o->username) : NULL;
    s->password = o->password ? strdup(o->password) : NULL;
    bad = bad || !s->prefix || (o->ca_file && !s->ca_file) || (o->username && !s->username) ||
          (o->password && !s->password);
    s->request_ms = o->request_timeout_ms ? o->request_timeout_ms : DEFAULT_REQUEST_MS;
    s->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
    s->lock_ttl_s = o->lock_ttl_s ? o->lock_ttl_s : DEFAULT_LOCK_TTL_S;
    /* flags came with 1.2's second form of the struct: older sizes mean 0. */
    if (o->size >= offsetof(acme_etcd_options, flags) + sizeof(o->flags))
        s->flags = o->flags;
    if (s->lock_ttl_s < MIN_LOCK_TTL_S)
        s->lock_ttl_s = MIN_LOCK_TTL_S;
    if (o->node_name && *o->node_name) {
        snprintf(s->node, sizeof(s->node), "%s", o->node_name);
    } else {
        char host[128] = "host";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(s->node, sizeof(s->node), "%s:%ld", host, (long)getpid());
    }
    /* The node name goes into keys (.acks/, .nodes/): keep it a key component. */
    for (char *p = s->node; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '-' || *p == '_'))
            *p = '_';
    if (bad) {
        storage_etcd_close(s);
        return ACME_E_NOMEM;
    }
    *out = s;
    return ACME_OK;
}

void storage_etcd_close(storage_etcd *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    int started = s->thread_started;
    pthread_mutex_unlock(&s->mu);
    if (started)
        pthread_join(s->thread, NULL);
    /* Locks still held are released, so the next node need not wait for
     * their leases. */
    while (s->held) {
        held_lock *h = s->held;
        s->held = h->next;
        if (!h->lost && s->fg.h)
            release(s, 0, h);
        held_free(h);
    }
    if (s->fg.h)
        etcd_chal_free(s);
    if (s->fg.h) {
        curl_easy_cleanup(s->fg.h);
        pthread_mutex_destroy(&s->fg.mu);
    }
    if (s->bg.h) {
        curl_easy_cleanup(s->bg.h);
        pthread_mutex_destroy(&s->bg.mu);
    }
    for (size_t i = 0; i < s->endpoint_count; i++)
        free(s->endpoints[i]);
    free(s->endpoints);
    free(s->prefix);
    free(s->lock_scope);
    free(s->ca_file);
    free(s->username);
    secure_free_str(s->password);
    secure_free_str(s->auth_token);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    curl_global_cleanup();
}
