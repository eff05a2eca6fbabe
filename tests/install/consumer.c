/* The installed-tree consumer: a program that knows libacme only through
 * its installed headers and `pkg-config --cflags --libs libacme`, run under
 * tests/harness/with-pebble. It registers an account, serves http-01 with
 * the library's own responder, obtains a certificate for consumer.example
 * and checks what the install callback received. Before that, the etcd
 * storage API of <acme/etcd.h> as a cluster host would call it (no etcd
 * is contacted: setting the storage sends nothing).
 *
 *   consumer [CHAIN_OUT]   (CHAIN_OUT: where to write the chain, for an
 *                           independent check by run.sh)
 *
 * Exits 0 and prints PASS on success; otherwise prints what failed with
 * acme_client_last_error() and exits 1. Built by tests/install/run.sh,
 * never by meson, on purpose. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <acme/acme.h>
#include <acme/etcd.h>
#include <acme/responder.h>

#define NAME "consumer.example"

struct host {
    acme_responder_set responders;
    int installs;
    int leaf_ok;
    char *chain;
};

static int fail(acme_client *c, const char *what, int rc)
{
    fprintf(stderr, "consumer: FAIL: %s: %s (%d)\n", what, acme_strerror(rc), rc);
    if (c) {
        const acme_problem *p = acme_client_problem(c);
        fprintf(stderr, "consumer:   last error: %s\n", acme_client_last_error(c));
        if (p)
            fprintf(stderr, "consumer:   problem: %s: %s\n", acme_problem_type(p),
                    acme_problem_detail(p));
    }
    return 1;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "consumer: %s is not set: run me under tests/harness/with-pebble\n", name);
        exit(1);
    }
    return v;
}

static int sink_http01(void *ud, const char *token, const char *key_authorization)
{
    (void)ud;
    (void)token;
    (void)key_authorization;
    return ACME_OK;
}

/* <acme/etcd.h> from the installed tree: its options struct, its
 * argument checks and their sentences, without a cluster. */
static int etcd_api(const char *directory)
{
    acme_client *c = NULL;
    int rc = acme_client_new(directory, &c);
    if (rc != ACME_OK)
        return fail(NULL, "acme_client_new (etcd)", rc);
    int status = 1;
    static const char *const bad[] = { "ftp://127.0.0.1:2379" };
    static const char *const good[] = { "http://127.0.0.1:9", "http://127.0.0.1:10" };
    acme_etcd_options o;
    acme_etcd_sink s;
    if (acme_client_etcd_health(c) != NULL) {
        fprintf(stderr, "consumer: FAIL: acme_client_etcd_health without etcd storage is not NULL\n");
        goto out;
    }
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    s.add_http01 = sink_http01;
    if ((rc = acme_client_etcd_attach_sink(c, &s)) != ACME_E_STATE) {
        fprintf(stderr, "consumer: FAIL: acme_client_etcd_attach_sink without etcd storage: %s, want ACME_E_STATE\n",
                acme_strerror(rc));
        goto out;
    }
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.endpoints = bad;
    o.endpoint_count = 1;
    if ((rc = acme_client_set_storage_etcd(c, &o)) != ACME_E_INVALID_ARG || !strstr(acme_client_last_error(c), "ftp")) {
        fprintf(stderr, "consumer: FAIL: an ftp:// endpoint: %s (%s), want ACME_E_INVALID_ARG naming it\n",
                acme_strerror(rc), acme_client_last_error(c));
        goto out;
    }
    o.endpoints = good;
    o.endpoint_count = 2;
    o.node_name = "consumer";
    o.flags = ACME_ETCD_KEEP_NODE;
    if ((rc = acme_client_set_storage_etcd(c, &o)) != ACME_OK) {
        fail(c, "acme_client_set_storage_etcd", rc);
        goto out;
    }
    if (!acme_client_etcd_health(c)) {
        fprintf(stderr, "consumer: FAIL: acme_client_etcd_health with etcd storage is NULL\n");
        goto out;
    }
    s.size = 0;
    if ((rc = acme_client_etcd_attach_sink(c, &s)) != ACME_E_INVALID_ARG || !strstr(acme_client_last_error(c), "size")) {
        fprintf(stderr, "consumer: FAIL: a sink without size: %s (%s), want ACME_E_INVALID_ARG naming size\n",
                acme_strerror(rc), acme_client_last_error(c));
        goto out;
    }
    status = 0;
    fprintf(stderr, "consumer: <acme/etcd.h>: options, sink and their checks work from the installed tree\n");
out:
    acme_client_free(c);
    return status;
}

static int on_publish(void *ud, const acme_challenge *ch)
{
    struct host *h = ud;
    return acme_responder_publish(&h->responders, ch);
}

static int on_unpublish(void *ud, const acme_challenge *ch)
{
    struct host *h = ud;
    return acme_responder_unpublish(&h->responders, ch);
}

static int on_install(void *ud, const acme_certificate *cert)
{
    struct host *h = ud;
    const char *chain = acme_certificate_chain_pem(cert);
    size_t n = acme_certificate_name_count(cert);

    h->installs++;
    if (!chain || strncmp(chain, "-----BEGIN CERTIFICATE-----", 27) != 0) {
        fprintf(stderr, "consumer: install got no PEM chain\n");
        return ACME_E_CALLBACK;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(acme_certificate_name(cert, i), NAME) == 0)
            h->leaf_ok = 1;
    fprintf(stderr, "consumer: installed %s (%zu name(s), issuer \"%s\", not after %lld)\n",
            acme_certificate_id(cert), n, acme_certificate_issuer(cert),
            (long long)acme_certificate_not_after(cert));
    free(h->chain);
    h->chain = strdup(chain);
    return h->chain ? ACME_OK : ACME_E_NOMEM;
}

static void on_log(void *ud, acme_log_level level, const char *msg)
{
    (void)ud;
    fprintf(stderr, "consumer: libacme[%d]: %s\n", (int)level, msg);
}

int main(int argc, char **argv)
{
    const char *directory = env("ACME_TEST_DIRECTORY");
    const char *ca_file = env("ACME_TEST_CA_FILE");
    const char *tmpdir = env("ACME_TEST_TMPDIR");
    unsigned http_port = (unsigned)strtoul(env("ACME_TEST_HTTP_PORT"), NULL, 10);
    static const char *const names[] = { NAME };
    static const acme_challenge_type types[] = { ACME_CHALLENGE_HTTP_01 };
    struct host h;
    acme_client *c = NULL;
    acme_responder *http = NULL;
    acme_responder_options ro;
    acme_host_callbacks cb;
    acme_account_params ap;
    acme_issue_params ip;
    char state[4096];
    int rc, status = 1;

    memset(&h, 0, sizeof h);
    fprintf(stderr, "consumer: libacme %s (headers %s)\n", acme_version(), ACME_VERSION_STRING);
    snprintf(state, sizeof state, "%s/consumer-state", tmpdir);

    if (etcd_api(directory) != 0)
        return 1;
    if ((rc = acme_client_new(directory, &c)) != ACME_OK)
        return fail(NULL, "acme_client_new", rc);
    if ((rc = acme_client_set_ca_file(c, ca_file)) != ACME_OK) {
        fail(c, "acme_client_set_ca_file", rc);
        goto out;
    }
    if ((rc = acme_client_set_storage_dir(c, state)) != ACME_OK) {
        fail(c, "acme_client_set_storage_dir", rc);
        goto out;
    }

    /* http-01 on the port Pebble's validator connects to. */
    memset(&ro, 0, sizeof ro);
    ro.size = sizeof ro;
    ro.bind_address = "127.0.0.1";
    ro.port = http_port;
    if ((rc = acme_responder_new(ACME_RESPONDER_HTTP01, &ro, &http)) != ACME_OK) {
        fail(NULL, "acme_responder_new (http-01)", rc);
        goto out;
    }
    if ((rc = acme_responder_start_thread(http)) != ACME_OK) {
        fail(NULL, "acme_responder_start_thread", rc);
        goto out;
    }
    h.responders.size = sizeof h.responders;
    h.responders.http01 = http;

    memset(&cb, 0, sizeof cb);
    cb.size = sizeof cb;
    cb.publish = on_publish;
    cb.unpublish = on_unpublish;
    cb.install = on_install;
    cb.log = on_log;
    if ((rc = acme_client_set_host(c, &cb, &h)) != ACME_OK) {
        fail(c, "acme_client_set_host", rc);
        goto out;
    }

    memset(&ap, 0, sizeof ap);
    ap.size = sizeof ap;
    ap.agree_tos = 1;
    if ((rc = acme_account_register(c, &ap)) != ACME_OK) {
        fail(c, "acme_account_register", rc);
        goto out;
    }
    fprintf(stderr, "consumer: account %s\n", acme_account_url(c));

    memset(&ip, 0, sizeof ip);
    ip.size = sizeof ip;
    ip.names = names;
    ip.name_count = 1;
    ip.challenges = types;
    ip.challenge_count = 1;
    if ((rc = acme_issue(c, &ip)) != ACME_OK) {
        fail(c, "acme_issue " NAME, rc);
        goto out;
    }

    if (h.installs != 1) {
        fprintf(stderr, "consumer: FAIL: install called %d times, want 1\n", h.installs);
        goto out;
    }
    if (!h.leaf_ok) {
        fprintf(stderr, "consumer: FAIL: the installed certificate does not name " NAME "\n");
        goto out;
    }
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        int ok = f != NULL && fputs(h.chain, f) != EOF;
        if (f != NULL && fclose(f) != 0)
            ok = 0;
        if (!ok) {
            fprintf(stderr, "consumer: FAIL: cannot write %s\n", argv[1]);
            goto out;
        }
    }
    status = 0;
    printf("PASS: consumer obtained a certificate for " NAME "\n");

out:
    acme_responder_free(http); /* stops its thread */
    acme_client_free(c);
    free(h.chain);
    return status;
}
