/* Issue 13: a lost order lock has consequences (real Pebble outside, a
 * real 3-member etcd inside: with-pebble -- with-etcd -- it_etcd_lock).
 *
 * Node A (an engine on etcd storage, lock_ttl_s 3) orders a certificate
 * whose publish its host answers late, so the order holds its lock
 * "<ca-id>.order.lostlock.example" with its state saved. The test
 * revokes A's lease with etcdctl, as etcd does when a holder was paused
 * past its TTL. Then:
 * - A emits ACME_EVENT_LOCK_LOST for the certificate within seconds, and
 *   its order ends as failed (ACME_EVENT_FAILED, ACME_E_LOCKED) with a
 *   sentence saying the lock was lost and another node may take over,
 *   while its publish callback is still out; it takes its challenge down
 *   but never answers it;
 * - no write of A lands after the revoke: every key under
 *   <ca-id>/certs/lostlock.example/ keeps a mod_revision from before, and
 *   the saved order state is still there for a successor;
 * - node B (another client, another node name) then takes the lock,
 *   resumes A's saved order and installs a certificate that verifies
 *   against Pebble's root;
 * - node A, whose engine (and storage thread) started before B stored
 *   anything, sees B's certificate in acme_cert_list and acme_cert_load
 *   (how acmectl and mod_acme poll the cluster), with B's chain. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <acme/etcd.h>

#include "etest.h"

#define NAME "lostlock.example"

static char *endpoints[8];
static size_t endpoint_count;
static char prefix[64];

static acme_client *etcd_client(etest_host *h, const char *dir, const char *node)
{
    acme_client *c = etest_client(h, dir);
    acme_etcd_options o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.endpoints = (const char *const *)endpoints;
    o.endpoint_count = endpoint_count;
    o.prefix = prefix;
    o.node_name = node;
    o.lock_ttl_s = 3;
    o.request_timeout_ms = 2000;
    o.connect_timeout_ms = 500;
    CHECK_OK(c, acme_client_set_storage_etcd(c, &o));
    return c;
}

/* etcdctl's output (stdout), malloc'ed; NULL when it failed. */
static char *etcdctl(const char *args)
{
    char *cmd = itest_printf("ETCDCTL_API=3 etcdctl --endpoints=%s %s 2>/dev/null", endpoints[0], args);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    size_t got;
    while (out && (got = fread(out + n, 1, cap - 1 - n, p)) > 0)
        n += got;
    int st = pclose(p);
    if (!out || st != 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    return out;
}

/* The highest mod_revision under key prefix p, and the cluster's revision. */
static long long max_mod_revision(const char *p, long long *cluster_rev, size_t *count)
{
    char *args = itest_printf("get --prefix -w json '%s'", p);
    char *out = etcdctl(args);
    free(args);
    CHECK_MSG(NULL, out != NULL, "etcdctl get --prefix %s failed", p);
    json_error_t err;
    json_t *j = json_loads(out, JSON_DECODE_INT_AS_REAL, &err);
    free(out);
    CHECK_MSG(NULL, j != NULL, "etcdctl's JSON: %s", err.text);
    long long best = 0;
    *cluster_rev = (long long)json_number_value(json_object_get(json_object_get(j, "header"), "revision"));
    json_t *kvs = json_object_get(j, "kvs");
    *count = json_array_size(kvs);
    for (size_t i = 0; i < json_array_size(kvs); i++) {
        long long m = (long long)json_number_value(json_object_get(json_array_get(kvs, i), "mod_revision"));
        if (m > best)
            best = m;
    }
    json_decref(j);
    return best;
}

static int key_exists(const char *k)
{
    char *args = itest_printf("get -w json '%s'", k);
    char *out = etcdctl(args);
    free(args);
    CHECK_MSG(NULL, out != NULL, "etcdctl get %s failed", k);
    json_t *j = json_loads(out, JSON_DECODE_INT_AS_REAL, NULL);
    free(out);
    int n = (int)json_array_size(json_object_get(j, "kvs"));
    json_decref(j);
    return n > 0;
}

static int until_published(etest_host *h, void *arg)
{
    (void)arg;
    return h->pub_count >= 1;
}

static int list_cb(void *ud, const char *id)
{
    if (strcmp(id, NAME) == 0)
        (*(int *)ud)++;
    return 0;
}

static int load_cb(void *ud, const acme_certificate *cert)
{
    char **out = ud;
    *out = strdup(acme_certificate_chain_pem(cert));
    return ACME_OK;
}

static int until_lost(etest_host *h, void *arg)
{
    (void)arg;
    return etest_find_event(h, 0, ACME_EVENT_LOCK_LOST, NAME) != (size_t)-1 ||
           etest_find_event(h, 0, ACME_EVENT_FAILED, NAME) != (size_t)-1;
}

static int until_failed(etest_host *h, void *arg)
{
    (void)arg;
    return etest_find_event(h, 0, ACME_EVENT_FAILED, NAME) != (size_t)-1;
}

static int until_idle_run(etest_host *h, void *arg)
{
    (void)arg;
    return acme_engine_idle(h->engine);
}

int main(void)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    itest_init("it_etcd_lock");
    etest_watchdog(280);
    const char *eps = getenv("ETCD_TEST_ENDPOINTS");
    CHECK_MSG(NULL, eps != NULL, "run under tests/cluster/with-etcd (inside tests/harness/with-pebble)");
    char *copy = strdup(eps);
    for (char *t = strtok(copy, ","); t && endpoint_count < 8; t = strtok(NULL, ","))
        endpoints[endpoint_count++] = strdup(t);
    free(copy);
    snprintf(prefix, sizeof(prefix), "/itlock%ld/", (long)getpid());
    char *dir = itest_fresh_dir("etcdlock");

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);

    {
        /* The account first, in etcd, so both nodes share it. */
        etest_host h0;
        etest_host_init(&h0, NULL);
        acme_client *c0 = etcd_client(&h0, dir, "setup");
        itest_register(c0, NULL);
        acme_client_free(c0);
        etest_host_clear(&h0);
    }

    /* ---- node A: holds the lock, its publish answered late ---- */
    etest_host ha;
    etest_host_init(&ha, &set);
    ha.pending_publish = 1;
    ha.pending_ms = 8000;
    acme_client *ca = etcd_client(&ha, dir, "node-a");
    char *ca_id = NULL;
    {
        /* The ca-id as libacme makes it (doc/storage.md): read it back
         * from the account key's path in etcd. */
        char *args = itest_printf("get --prefix --keys-only '%s'", prefix);
        char *out = etcdctl(args);
        free(args);
        CHECK_MSG(NULL, out != NULL, "etcdctl get --keys-only");
        char *k = strstr(out, "/account/");
        CHECK_MSG(NULL, k != NULL, "no account stored in etcd: %s", out);
        *k = '\0';
        char *start = strrchr(out, '\n');
        start = start ? start + 1 : out;
        ca_id = strdup(start + strlen(prefix));
        free(out);
    }
    acme_engine *ea = etest_engine(ca, &ha, 0, 3600, 0);
    CHECK_OK(ca, etest_manage1(ea, NAME, http, 1));
    int ok = etest_drive(&ha, ea, until_published, NULL, 60000, NULL);
    CHECK_MSG(NULL, ok, "node A never published: %s", etest_last_error(ea, NAME));
    CHECK_MSG(NULL, etest_find_event(&ha, 0, ACME_EVENT_LOCK_TAKEN, NAME) != (size_t)-1, "node A took no lock");
    char *certs = itest_printf("%s%s/certs/" NAME "/", prefix, ca_id);
    char *order_json = itest_printf("%sorder.json", certs);
    CHECK_MSG(NULL, key_exists(order_json), "node A saved no order state at %s", order_json);

    /* Revoke A's lease, as etcd does to a holder paused past its TTL. */
    char *lock_key = itest_printf("%s.locks/%s.order." NAME, prefix, ca_id);
    char *args = itest_printf("get --print-value-only '%s'", lock_key);
    char *val = etcdctl(args);
    free(args);
    CHECK_MSG(NULL, val && strstr(val, "node-a lease="), "the lock key %s: %s", lock_key, val ? val : "(none)");
    char lease[32] = "";
    sscanf(strstr(val, "lease=") + 6, "%31[0-9a-fA-F]", lease);
    free(val);
    args = itest_printf("lease revoke %s", lease);
    val = etcdctl(args);
    free(args);
    CHECK_MSG(NULL, val != NULL, "etcdctl lease revoke %s failed", lease);
    free(val);
    double t_revoke = etest_now();
    long long rev_at_revoke = 0;
    size_t keys_before = 0;
    long long before = max_mod_revision(certs, &rev_at_revoke, &keys_before);
    CHECK_MSG(NULL, before <= rev_at_revoke && keys_before >= 1, "the certificate's keys before the revoke");
    size_t lines_from = ha.line_count;

    ok = etest_drive(&ha, ea, until_lost, NULL, 30000, NULL);
    double t_lost = etest_now() - t_revoke;
    CHECK_MSG(NULL, ok && etest_find_event(&ha, 0, ACME_EVENT_LOCK_LOST, NAME) != (size_t)-1,
              "no ACME_EVENT_LOCK_LOST within 30 s of the revoke");
    /* The keep-alive (every TTL/3 = 1 s) finds the lease gone; the engine
     * looks at its locks every second. */
    CHECK_MSG(NULL, t_lost < 5.0, "LOCK_LOST %.1f s after the revoke", t_lost);
    CHECK_MSG(NULL, etest_find_event(&ha, 0, ACME_EVENT_FAILED, NAME) == (size_t)-1 ||
              ha.pending_finished == 0, "the order failed before the lock loss was seen");
    ok = etest_drive(&ha, ea, until_failed, NULL, 30000, NULL);
    if (!ok)
        etest_dump_log(&ha, 40);
    CHECK_MSG(NULL, ok, "node A's order did not end after its lease was revoked: %s", etest_last_error(ea, NAME));
    double t_failed = etest_now() - t_revoke;
    size_t lost = etest_find_event(&ha, 0, ACME_EVENT_LOCK_LOST, NAME);
    size_t failed = etest_find_event(&ha, 0, ACME_EVENT_FAILED, NAME);
    CHECK_MSG(NULL, lost != (size_t)-1, "no ACME_EVENT_LOCK_LOST for " NAME);
    CHECK_MSG(NULL, lost < failed, "LOCK_LOST came after the failure");
    const etest_event *fe = &ha.events[failed];
    CHECK_MSG(NULL, fe->result == ACME_E_LOCKED, "the failure's code is %d, not ACME_E_LOCKED", fe->result);
    CHECK_MSG(NULL, fe->message && strstr(fe->message, "was lost") && strstr(fe->message, "may take the order over"),
              "the failure's sentence: %s", fe->message ? fe->message : "(none)");
    /* It waited only for its host's publish still out (8 s from the
     * publish), to take the challenge down: not for the CA. */
    CHECK_MSG(NULL, t_failed < 12.0, "node A's order ended %.1f s after the revoke", t_failed);
    const char *why = etest_last_error(ea, NAME);
    CHECK_MSG(NULL, strstr(why, "was lost"), "A's status last_error: %s", why);
    ok = etest_drive(&ha, ea, until_idle_run, NULL, 30000, NULL);
    CHECK_MSG(NULL, ok, "node A did not become idle");
    CHECK_MSG(NULL, ha.unpublish_calls >= 1, "node A left its challenge published");
    size_t n_lost = 0;
    for (size_t i = 0; i < ha.event_count; i++)
        n_lost += ha.events[i].code == ACME_EVENT_LOCK_LOST;
    CHECK_MSG(NULL, n_lost == 1, "node A sent %zu LOCK_LOST events for one lost lock", n_lost);
    CHECK_MSG(NULL, etest_count_lines(&ha, lines_from, "asked the CA to validate") == 0 &&
              etest_count_lines(&ha, lines_from, "deactivated the pending authorization") == 0,
              "node A went on with the order (answered or deactivated) after losing the lock");
    long long rev_now = 0;
    size_t keys_after = 0;
    long long after = max_mod_revision(certs, &rev_now, &keys_after);
    CHECK_MSG(NULL, after <= rev_at_revoke && keys_after == keys_before,
              "a write of node A landed under the lost lock (mod_revision %lld > %lld, keys %zu -> %zu)", after,
              rev_at_revoke, keys_before, keys_after);
    CHECK_MSG(NULL, key_exists(order_json), "node A removed the saved order state under the lost lock");
    printf("LOCK_LOST %.2f s and the failure %.2f s after the revoke (lock_ttl_s 3, publish pending 8 s)\n", t_lost,
           t_failed);

    /* ---- node B: takes over, resumes A's order, installs ---- */
    etest_host hb;
    etest_host_init(&hb, &set);
    acme_client *cb = etcd_client(&hb, dir, "node-b");
    acme_engine *eb = etest_engine(cb, &hb, 0, 3600, 0);
    CHECK_OK(cb, etest_manage1(eb, NAME, http, 1));
    size_t one = 1;
    ok = etest_drive(&hb, eb, etest_until_installs, &one, 90000, NULL);
    if (!ok)
        etest_dump_log(&hb, 40);
    CHECK_MSG(NULL, ok, "node B did not complete the certificate: %s", etest_last_error(eb, NAME));
    const char *names[] = {NAME};
    etest_check_installed(&hb, NAME, names, 1);
    CHECK_MSG(NULL, etest_count_lines(&hb, 0, "resuming the order") == 1, "node B did not resume A's saved order");
    CHECK_MSG(NULL, !key_exists(order_json), "the order state is still there after B stored the certificate");
    etest_drive(&hb, eb, etest_until_idle, NULL, 20000, NULL);

    /* Node A's poll (outside a step, its engine running) sees what B
     * stored after A's engine read the store at start. */
    int seen = 0;
    CHECK_OK(ca, acme_cert_list(ca, list_cb, &seen));
    CHECK_MSG(NULL, seen == 1, "node A's acme_cert_list does not show node B's certificate %s", NAME);
    char *chain = NULL;
    CHECK_OK(ca, acme_cert_load(ca, NAME, load_cb, &chain));
    const itest_cert *bi = etest_installed(&hb, NAME);
    CHECK_MSG(NULL, chain && bi && strcmp(chain, bi->chain_pem) == 0, "node A loaded another chain than B's");
    free(chain);

    acme_engine_free(eb);
    acme_client_free(cb);
    etest_host_clear(&hb);
    acme_engine_free(ea);
    acme_client_free(ca);
    etest_host_clear(&ha);
    itest_responders_stop(&set);
    free(certs);
    free(order_json);
    free(lock_key);
    free(ca_id);
    free(dir);
    for (size_t i = 0; i < endpoint_count; i++)
        free(endpoints[i]);
    itest_done();
    return 0;
}
