/* The etcd storage table against a real 3-member etcd (tests/cluster/with-etcd):
 * the key-value contract, locks with leases, fencing of a holder that lost
 * its lease (deleted under it; paused with SIGSTOP), a SIGKILLed holder,
 * member failover and a cluster that is down and comes back; a host's own
 * answer table (acme_etcd_sink) fed from the store, loaded before the
 * attach returns, and ACME_ETCD_KEEP_NODE; refresh of a revoked lease. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <acme/acme.h>

#include "buf.h"
#include "storage_etcd.h"
#include "storage_etcd_json.h"

static char *endpoints[8];
static size_t endpoint_count;
static const char *etcd_dir;
static char prefix[64];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static storage_etcd *open_node(const char *node, unsigned ttl)
{
    acme_etcd_options o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.endpoints = (const char *const *)endpoints;
    o.endpoint_count = endpoint_count;
    o.prefix = prefix;
    o.lock_ttl_s = ttl;
    o.node_name = node;
    o.request_timeout_ms = 2000;
    o.connect_timeout_ms = 500;
    storage_etcd *s = NULL;
    char err[300];
    assert_int_equal(storage_etcd_open(&o, &s, err, sizeof(err)), ACME_OK);
    return s;
}

static int get_str(storage_etcd *s, const char *key, char *out, size_t cap)
{
    acme_buffer *b = acme_buffer_new();
    int rc = storage_etcd_ops.get(s, key, b);
    if (rc == ACME_OK)
        snprintf(out, cap, "%s", acme_buffer_data(b));
    acme_buffer_free(b);
    return rc;
}

static int put_str(storage_etcd *s, const char *key, const char *v)
{
    return storage_etcd_ops.put(s, key, v, strlen(v), 0);
}

static int count_cb(void *ud, const char *key)
{
    (void)key;
    (*(int *)ud)++;
    return 0;
}

static void test_kv(void **st)
{
    (void)st;
    storage_etcd *s = open_node("kv", 0);
    char v[256];
    assert_int_equal(get_str(s, "ca-1/account/account.json", v, sizeof(v)), ACME_E_NOT_FOUND);
    assert_int_equal(put_str(s, "ca-1/account/account.json", "{\"url\":\"x\"}"), ACME_OK);
    assert_int_equal(get_str(s, "ca-1/account/account.json", v, sizeof(v)), ACME_OK);
    assert_string_equal(v, "{\"url\":\"x\"}");
    /* Binary and empty values survive base64. */
    unsigned char bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)i;
    assert_int_equal(storage_etcd_ops.put(s, "ca-1/bin", bin, sizeof(bin), ACME_STORAGE_SECRET), ACME_OK);
    acme_buffer *b = acme_buffer_new();
    assert_int_equal(storage_etcd_ops.get(s, "ca-1/bin", b), ACME_OK);
    assert_int_equal(acme_buffer_len(b), 256);
    assert_memory_equal(acme_buffer_data(b), bin, 256);
    acme_buffer_free(b);
    assert_int_equal(put_str(s, "ca-1/empty", ""), ACME_OK);
    assert_int_equal(get_str(s, "ca-1/empty", v, sizeof(v)), ACME_OK);
    assert_string_equal(v, "");
    /* list: prefix only, more than one page. */
    char key[80];
    for (int i = 0; i < 1205; i += 1) {
        if (i % 100 == 0 || i > 1100) {
            snprintf(key, sizeof(key), "ca-1/certs/n%04d/cert.json", i);
            assert_int_equal(put_str(s, key, "c"), ACME_OK);
        }
    }
    int n = 0;
    assert_int_equal(storage_etcd_ops.list(s, "ca-1/certs/", count_cb, &n), ACME_OK);
    assert_int_equal(n, 12 + 104);
    n = 0;
    assert_int_equal(storage_etcd_ops.list(s, "ca-1/", count_cb, &n), ACME_OK);
    assert_int_equal(n, 12 + 104 + 3);
    assert_int_equal(storage_etcd_ops.remove(s, "ca-1/bin"), ACME_OK);
    assert_int_equal(storage_etcd_ops.remove(s, "ca-1/bin"), ACME_OK); /* absent is fine */
    assert_int_equal(get_str(s, "ca-1/bin", v, sizeof(v)), ACME_E_NOT_FOUND);
    assert_int_equal(put_str(s, "../x", "no"), ACME_E_INVALID_ARG);
    assert_string_equal(storage_etcd_health(s), "");
    storage_etcd_close(s);
}

static void test_lock_exclusion(void **st)
{
    (void)st;
    storage_etcd *a = open_node("a", 5), *b = open_node("b", 5);
    assert_int_equal(storage_etcd_ops.lock(a, "ca-1.order.www", 3600), ACME_OK);
    assert_int_equal(storage_etcd_ops.lock(b, "ca-1.order.www", 3600), ACME_E_LOCKED);
    assert_non_null(strstr(storage_etcd_last_error(b), "held by a"));
    /* The holder renews. */
    assert_int_equal(storage_etcd_ops.lock(a, "ca-1.order.www", 3600), ACME_OK);
    /* The keys it fences: the holder writes, the other is refused. */
    assert_int_equal(put_str(a, "ca-1/certs/www/order.json", "a"), ACME_OK);
    assert_int_equal(put_str(b, "ca-1/certs/www/order.json", "b"), ACME_E_LOCKED);
    assert_int_equal(storage_etcd_ops.remove(b, "ca-1/certs/www/order.json"), ACME_E_LOCKED);
    char v[64];
    assert_int_equal(get_str(b, "ca-1/certs/www/order.json", v, sizeof(v)), ACME_OK);
    assert_string_equal(v, "a");
    /* Unrelated keys are not fenced. */
    assert_int_equal(put_str(b, "ca-1/certs/other/order.json", "b"), ACME_OK);
    /* The keep-alive thread holds the lease past its TTL. */
    sleep(7);
    assert_int_equal(storage_etcd_ops.lock(b, "ca-1.order.www", 3600), ACME_E_LOCKED);
    assert_int_equal(put_str(a, "ca-1/certs/www/order.json", "a2"), ACME_OK);
    assert_int_equal(storage_etcd_ops.unlock(b, "ca-1.order.www"), ACME_E_STATE);
    assert_int_equal(storage_etcd_ops.unlock(a, "ca-1.order.www"), ACME_OK);
    assert_int_equal(storage_etcd_ops.lock(b, "ca-1.order.www", 3600), ACME_OK);
    assert_int_equal(put_str(b, "ca-1/certs/www/order.json", "b"), ACME_OK);
    assert_int_equal(storage_etcd_ops.unlock(b, "ca-1.order.www"), ACME_OK);
    /* Nobody holds it: anyone may write. */
    assert_int_equal(put_str(a, "ca-1/certs/www/order.json", "free"), ACME_OK);
    storage_etcd_close(a);
    storage_etcd_close(b);
}

/* The lock key deleted under a live holder (as when its lease expired in
 * etcd but the holder has not noticed yet): a successor takes it, and the
 * old holder's write is refused by etcd's compare, not by our clock. */
static void test_fence_txn(void **st)
{
    (void)st;
    storage_etcd *a = open_node("a", 30), *b = open_node("b", 30);
    assert_int_equal(storage_etcd_ops.lock(a, "ca-1.order.fence", 3600), ACME_OK);
    assert_int_equal(put_str(a, "ca-1/certs/fence/cert.json", "from a"), ACME_OK);
    char lk[200];
    snprintf(lk, sizeof(lk), "%s.locks/ca-1.order.fence", prefix);
    json_t *ops = json_array();
    json_array_append_new(ops, etcd_op_delete(lk));
    json_t *txn = etcd_req_txn(NULL, 0, ops, NULL), *ans = NULL;
    assert_int_equal(etcd_call(b, 0, "/v3/kv/txn", txn, &ans), ACME_OK);
    json_decref(txn);
    json_decref(ans);
    assert_int_equal(storage_etcd_ops.lock(b, "ca-1.order.fence", 3600), ACME_OK);
    assert_int_equal(put_str(b, "ca-1/certs/fence/cert.json", "from b"), ACME_OK);
    assert_int_equal(put_str(a, "ca-1/certs/fence/cert.json", "stale a"), ACME_E_LOCKED);
    assert_non_null(strstr(storage_etcd_last_error(a), "fencing"));
    assert_int_equal(storage_etcd_ops.remove(a, "ca-1/certs/fence/cert.json"), ACME_E_LOCKED);
    char v[64];
    assert_int_equal(get_str(a, "ca-1/certs/fence/cert.json", v, sizeof(v)), ACME_OK);
    assert_string_equal(v, "from b");
    /* A renews: it learns it lost the lock. */
    assert_int_equal(storage_etcd_ops.lock(a, "ca-1.order.fence", 3600), ACME_E_LOCKED);
    assert_int_equal(storage_etcd_ops.unlock(a, "ca-1.order.fence"), ACME_E_LOCKED);
    assert_int_equal(storage_etcd_ops.unlock(b, "ca-1.order.fence"), ACME_OK);
    storage_etcd_close(a);
    storage_etcd_close(b);
}

/* refresh (the table member the engine's storage thread calls) of a lock
 * whose lease was revoked, as etcd does when its holder was paused past
 * its TTL: the keep-alive finds the lease gone, refresh answers
 * ACME_E_LOCKED (no longer "OK until a write is refused"), writes are
 * refused, and another node takes the name. */
static void test_refresh_revoked(void **st)
{
    (void)st;
    storage_etcd *a = open_node("a", 3), *b = open_node("b", 3);
    assert_non_null(storage_etcd_ops.refresh);
    assert_int_equal(storage_etcd_ops.lock(a, "ca-1.order.rv", 300), ACME_OK);
    assert_int_equal(storage_etcd_ops.refresh(a, "ca-1.order.rv", 300), ACME_OK);
    assert_int_equal(storage_etcd_lock_lost(a, "ca-1.order.rv"), 0);
    assert_int_equal(storage_etcd_ops.refresh(a, "ca-1.order.none", 300), ACME_E_LOCKED);
    /* The lock key's value names the lease: "a lease=<hex>". */
    char lk[200], v[128];
    snprintf(lk, sizeof(lk), "%s.locks/ca-1.order.rv", prefix);
    json_t *req = etcd_req_range(lk, NULL, 1, 0), *ans = NULL;
    assert_int_equal(etcd_call(b, 0, "/v3/kv/range", req, &ans), ACME_OK);
    json_decref(req);
    etcd_kv kv;
    assert_int_equal(etcd_kv_parse(json_array_get(etcd_resp_kvs(ans), 0), &kv), 0);
    char ids[32];
    snprintf(ids, sizeof(ids), "%lld", (long long)kv.lease);
    etcd_kv_clear(&kv);
    json_decref(ans);
    req = json_pack("{s:s}", "ID", ids);
    ans = NULL;
    assert_int_equal(etcd_call(b, 0, "/v3/lease/revoke", req, &ans), ACME_OK);
    json_decref(req);
    json_decref(ans);
    /* The keep-alive thread (every TTL/3 = 1 s) finds out without a write. */
    double t0 = now_s();
    while (!storage_etcd_lock_lost(a, "ca-1.order.rv")) {
        assert_true(now_s() - t0 < 5);
        usleep(100000);
    }
    assert_int_equal(storage_etcd_ops.refresh(a, "ca-1.order.rv", 300), ACME_E_LOCKED);
    assert_non_null(strstr(storage_etcd_last_error(a), "was lost"));
    assert_int_equal(put_str(a, "ca-1/certs/rv/order.json", "stale"), ACME_E_LOCKED);
    assert_int_equal(storage_etcd_ops.lock(b, "ca-1.order.rv", 300), ACME_OK);
    assert_int_equal(put_str(b, "ca-1/certs/rv/order.json", "b"), ACME_OK);
    assert_int_equal(get_str(a, "ca-1/certs/rv/order.json", v, sizeof(v)), ACME_OK);
    assert_string_equal(v, "b");
    assert_int_equal(storage_etcd_ops.unlock(a, "ca-1.order.rv"), ACME_E_LOCKED);
    assert_int_equal(storage_etcd_ops.refresh(b, "ca-1.order.rv", 300), ACME_OK);
    assert_int_equal(storage_etcd_ops.unlock(b, "ca-1.order.rv"), ACME_OK);
    storage_etcd_close(a);
    storage_etcd_close(b);
}

/* CA failover on etcd: node a orders a certificate at CA ca-1 (the
 * list's first), node b is at ca-2. Both name the order lock by ca-1
 * (lock scope), so b cannot take it while a holds it, and b's writes of
 * the certificate under ca-2 are fenced by a's lock; once a is done, b
 * takes it and writes. Without the scope the lock at ca-2 is another
 * name: both would order. */
static void test_ca_list_lock(void **st)
{
    (void)st;
    storage_etcd *a = open_node("a", 30), *b = open_node("b", 30);
    assert_int_equal(storage_etcd_set_lock_scope(a, "ca-1"), ACME_OK);
    assert_int_equal(storage_etcd_set_lock_scope(b, "ca-1"), ACME_OK);
    assert_int_equal(storage_etcd_ops.lock(a, "ca-1.order.multi", 3600), ACME_OK);
    assert_int_equal(storage_etcd_ops.lock(b, "ca-1.order.multi", 3600), ACME_E_LOCKED);
    /* a's writes at either CA pass its own fence. */
    assert_int_equal(put_str(a, "ca-1/certs/multi/order.json", "a at ca-1"), ACME_OK);
    assert_int_equal(put_str(a, "ca-2/certs/multi/cert.json", "a at ca-2"), ACME_OK);
    /* b, at the second CA, is fenced out by a's lock. */
    assert_int_equal(put_str(b, "ca-2/certs/multi/cert.json", "b at ca-2"), ACME_E_LOCKED);
    assert_non_null(strstr(storage_etcd_last_error(b), "holds the lock"));
    char v[64];
    assert_int_equal(get_str(b, "ca-2/certs/multi/cert.json", v, sizeof(v)), ACME_OK);
    assert_string_equal(v, "a at ca-2");
    /* Keys outside certs/ (the failover record) are shared, unfenced. */
    assert_int_equal(put_str(b, "failover/multi.json", "{\"ca\":\"two\"}"), ACME_OK);
    assert_int_equal(get_str(a, "failover/multi.json", v, sizeof(v)), ACME_OK);
    assert_int_equal(storage_etcd_ops.unlock(a, "ca-1.order.multi"), ACME_OK);
    assert_int_equal(storage_etcd_ops.lock(b, "ca-1.order.multi", 3600), ACME_OK);
    assert_int_equal(put_str(b, "ca-2/certs/multi/cert.json", "b at ca-2"), ACME_OK);
    assert_int_equal(put_str(a, "ca-2/certs/multi/cert.json", "stale a"), ACME_E_LOCKED);
    assert_int_equal(storage_etcd_ops.unlock(b, "ca-1.order.multi"), ACME_OK);
    storage_etcd_close(a);
    storage_etcd_close(b);
}

/* A child takes the lock and then does what the parent says, over pipes. */
static void child_holder(int cmd_fd, int ans_fd, const char *name, unsigned ttl)
{
    storage_etcd *s = open_node("child", ttl);
    int rc = storage_etcd_ops.lock(s, name, 3600);
    char key[200];
    snprintf(key, sizeof(key), "ca-1/certs/%s/cert.json", strstr(name, ".order.") + 7);
    if (rc == ACME_OK)
        rc = put_str(s, key, "child before");
    if (write(ans_fd, &rc, sizeof(rc)) != sizeof(rc))
        _exit(3);
    char c;
    while (read(cmd_fd, &c, 1) == 1) {
        if (c == 'w') {
            rc = put_str(s, key, "child after");
            if (write(ans_fd, &rc, sizeof(rc)) != sizeof(rc))
                _exit(3);
        } else if (c == 'k') {
            kill(getpid(), SIGKILL); /* die holding it */
        }
    }
    storage_etcd_close(s);
    _exit(0);
}

static pid_t spawn_holder(const char *name, unsigned ttl, int *cmd, int *ans)
{
    int c[2], a[2];
    assert_int_equal(pipe(c), 0);
    assert_int_equal(pipe(a), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(c[1]);
        close(a[0]);
        child_holder(c[0], a[1], name, ttl);
    }
    close(c[0]);
    close(a[1]);
    *cmd = c[1];
    *ans = a[0];
    int rc = -1;
    assert_int_equal(read(*ans, &rc, sizeof(rc)), sizeof(rc));
    assert_int_equal(rc, ACME_OK);
    return pid;
}

static void test_sigkill_holder(void **st)
{
    (void)st;
    int cmd, ans;
    pid_t pid = spawn_holder("ca-1.order.killed", 3, &cmd, &ans);
    storage_etcd *b = open_node("b", 3);
    assert_int_equal(storage_etcd_ops.lock(b, "ca-1.order.killed", 3600), ACME_E_LOCKED);
    double t0 = now_s();
    assert_int_equal(write(cmd, "k", 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    while (storage_etcd_ops.lock(b, "ca-1.order.killed", 3600) == ACME_E_LOCKED) {
        assert_true(now_s() - t0 < 3 + 1 + 1.5); /* TTL + one keep-alive interval + slack */
        usleep(100000);
    }
    /* The dead holder's lock is gone only once its lease ran out. */
    assert_true(now_s() - t0 >= 1.0);
    assert_int_equal(put_str(b, "ca-1/certs/killed/cert.json", "b"), ACME_OK);
    assert_int_equal(storage_etcd_ops.unlock(b, "ca-1.order.killed"), ACME_OK);
    close(cmd);
    close(ans);
    storage_etcd_close(b);
}

static void test_sigstop_holder(void **st)
{
    (void)st;
    int cmd, ans;
    pid_t pid = spawn_holder("ca-1.order.paused", 3, &cmd, &ans);
    storage_etcd *b = open_node("b", 3);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    double t0 = now_s();
    while (storage_etcd_ops.lock(b, "ca-1.order.paused", 3600) == ACME_E_LOCKED) {
        assert_true(now_s() - t0 < 6);
        usleep(100000);
    }
    assert_int_equal(put_str(b, "ca-1/certs/paused/cert.json", "successor"), ACME_OK);
    assert_int_equal(kill(pid, SIGCONT), 0);
    assert_int_equal(write(cmd, "w", 1), 1);
    int rc = -1;
    assert_int_equal(read(ans, &rc, sizeof(rc)), sizeof(rc));
    assert_int_equal(rc, ACME_E_LOCKED); /* fenced */
    char v[64];
    assert_int_equal(get_str(b, "ca-1/certs/paused/cert.json", v, sizeof(v)), ACME_OK);
    assert_string_equal(v, "successor");
    close(cmd);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(ans);
    assert_int_equal(storage_etcd_ops.unlock(b, "ca-1.order.paused"), ACME_OK);
    storage_etcd_close(b);
}

static void member(int i, const char *what)
{
    char cmdline[600];
    if (strcmp(what, "kill") == 0)
        snprintf(cmdline, sizeof(cmdline), "kill -9 $(cat %s/m%d.pid) && rm -f %s/m%d.pid", etcd_dir, i, etcd_dir, i);
    else
        snprintf(cmdline, sizeof(cmdline), "%s/m%d.start", etcd_dir, i);
    assert_int_equal(system(cmdline), 0);
}

/* ---- acme_etcd_sink ---- */

typedef struct sink_log {
    pthread_mutex_t mu;
    char added[128];
    char removed[128];
    int adds, removes;
} sink_log;

static int sink_add(void *ud, const char *token, const char *ka)
{
    sink_log *l = ud;
    pthread_mutex_lock(&l->mu);
    snprintf(l->added, sizeof(l->added), "%s=%s", token, ka);
    l->adds++;
    pthread_mutex_unlock(&l->mu);
    return ACME_OK;
}

static void sink_remove(void *ud, acme_responder_kind kind, const char *what)
{
    sink_log *l = ud;
    pthread_mutex_lock(&l->mu);
    snprintf(l->removed, sizeof(l->removed), "%d:%s", (int)kind, what);
    l->removes++;
    pthread_mutex_unlock(&l->mu);
}

/* One put or delete straight through the gateway (the challenge and node
 * keys are outside the storage table's grammar). */
static void raw_txn(storage_etcd *s, json_t *op)
{
    json_t *ops = json_array();
    json_array_append_new(ops, op);
    json_t *txn = etcd_req_txn(NULL, 0, ops, NULL);
    json_t *a = NULL;
    assert_int_equal(etcd_call(s, 0, "/v3/kv/txn", txn, &a), ACME_OK);
    json_decref(txn);
    json_decref(a);
}

static int raw_exists(storage_etcd *s, const char *key)
{
    json_t *req = etcd_req_range(key, NULL, 1, 0);
    json_t *a = NULL;
    assert_int_equal(etcd_call(s, 0, "/v3/kv/range", req, &a), ACME_OK);
    int n = (int)json_array_size(etcd_resp_kvs(a));
    json_decref(req);
    json_decref(a);
    return n;
}

static void test_sink(void **st)
{
    (void)st;
    storage_etcd *pub = open_node("sink-pub", 0);
    char key[200], ack[200], node[200];
    snprintf(key, sizeof(key), "%s.challenges/http-01/tok-sink", prefix);
    snprintf(ack, sizeof(ack), "%s.acks/http-01/tok-sink/sink-host", prefix);
    snprintf(node, sizeof(node), "%s.nodes/http-01/sink-host", prefix);
    const char *v = "{\"token\":\"tok-sink\",\"key_authorization\":\"tok-sink.thumb\"}";
    raw_txn(pub, etcd_op_put(key, v, strlen(v), 0));

    sink_log l;
    memset(&l, 0, sizeof(l));
    pthread_mutex_init(&l.mu, NULL);
    acme_etcd_sink sk;
    memset(&sk, 0, sizeof(sk));
    sk.ud = &l;
    sk.add_http01 = sink_add;
    sk.remove = sink_remove;
    storage_etcd *host = open_node("sink-host", 0);
    assert_int_equal(storage_etcd_attach_sink(host, &sk), ACME_E_INVALID_ARG); /* no size */
    sk.size = sizeof(sk);
    /* The answer already stored is served when the attach returns: a web
     * server's new generation has it before its first request. */
    assert_int_equal(storage_etcd_attach_sink(host, &sk), ACME_OK);
    pthread_mutex_lock(&l.mu);
    assert_int_equal(l.adds, 1);
    assert_string_equal(l.added, "tok-sink=tok-sink.thumb");
    pthread_mutex_unlock(&l.mu);
    assert_int_equal(raw_exists(pub, node), 1);
    assert_int_equal(raw_exists(pub, ack), 1);

    /* Gone from the store: removed from the host's table by the thread. */
    raw_txn(pub, etcd_op_delete(key));
    double t0 = now_s();
    for (;;) {
        pthread_mutex_lock(&l.mu);
        int done = l.removes;
        pthread_mutex_unlock(&l.mu);
        if (done || now_s() - t0 > 5)
            break;
        usleep(50000);
    }
    assert_int_equal(l.removes, 1);
    assert_string_equal(l.removed, "1:tok-sink");
    /* Freed without ACME_ETCD_KEEP_NODE: out of the answering nodes at once. */
    storage_etcd_close(host);
    assert_int_equal(raw_exists(pub, node), 0);

    /* With it: the entry stays (until its lease ends) for the host's next
     * generation, which registers under the same name. */
    acme_etcd_options o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.endpoints = (const char *const *)endpoints;
    o.endpoint_count = endpoint_count;
    o.prefix = prefix;
    o.node_name = "sink-host";
    o.flags = ACME_ETCD_KEEP_NODE;
    char err[300];
    assert_int_equal(storage_etcd_open(&o, &host, err, sizeof(err)), ACME_OK);
    assert_int_equal(storage_etcd_attach_sink(host, &sk), ACME_OK);
    assert_int_equal(raw_exists(pub, node), 1);
    storage_etcd_close(host);
    assert_int_equal(raw_exists(pub, node), 1);
    raw_txn(pub, etcd_op_delete(node));
    pthread_mutex_destroy(&l.mu);
    storage_etcd_close(pub);
}

static void test_failover(void **st)
{
    (void)st;
    storage_etcd *s = open_node("f", 5);
    assert_int_equal(put_str(s, "ca-1/f", "1"), ACME_OK);
    member(1, "kill"); /* the first endpoint, the one in use */
    char v[16];
    assert_int_equal(put_str(s, "ca-1/f", "2"), ACME_OK);
    assert_int_equal(get_str(s, "ca-1/f", v, sizeof(v)), ACME_OK);
    assert_string_equal(v, "2");
    assert_int_equal(storage_etcd_ops.lock(s, "ca-1.order.f", 60), ACME_OK);
    assert_int_equal(storage_etcd_ops.unlock(s, "ca-1.order.f"), ACME_OK);
    /* Every member down: a clear error naming an endpoint, then recovery. */
    member(2, "kill");
    member(3, "kill");
    assert_int_not_equal(put_str(s, "ca-1/f", "3"), ACME_OK);
    const char *h = storage_etcd_health(s);
    assert_non_null(strstr(h, "etcd http://127.0.0.1:"));
    assert_non_null(strstr(h, "is the cluster up"));
    member(1, "start");
    member(2, "start");
    member(3, "start");
    double t0 = now_s();
    while (put_str(s, "ca-1/f", "4") != ACME_OK) {
        assert_true(now_s() - t0 < 30);
        usleep(200000);
    }
    assert_string_equal(storage_etcd_health(s), "");
    assert_int_equal(get_str(s, "ca-1/f", v, sizeof(v)), ACME_OK);
    assert_string_equal(v, "4");
    storage_etcd_close(s);
}

int main(void)
{
    const char *eps = getenv("ETCD_TEST_ENDPOINTS");
    etcd_dir = getenv("ETCD_TEST_DIR");
    if (!eps || !etcd_dir) {
        fprintf(stderr, "run under tests/cluster/with-etcd\n");
        return 1;
    }
    char *copy = strdup(eps);
    for (char *t = strtok(copy, ","); t && endpoint_count < 8; t = strtok(NULL, ","))
        endpoints[endpoint_count++] = strdup(t);
    free(copy);
    snprintf(prefix, sizeof(prefix), "/it%ld/", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv),
        cmocka_unit_test(test_lock_exclusion),
        cmocka_unit_test(test_fence_txn),
        cmocka_unit_test(test_refresh_revoked),
        cmocka_unit_test(test_ca_list_lock),
        cmocka_unit_test(test_sigkill_holder),
        cmocka_unit_test(test_sigstop_holder),
        cmocka_unit_test(test_sink),
        cmocka_unit_test(test_failover),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (size_t i = 0; i < endpoint_count; i++)
        free(endpoints[i]);
    return rc;
}
