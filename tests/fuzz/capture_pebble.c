/* Writes the seeds of the ACME fuzz targets from a real Pebble: the CA's
 * half of an account registration and an issuance (the same requests
 * fuzz_acme_flow makes, so the seed walks the whole state machine), every
 * response head, the JSON bodies, problem documents and the issued
 * chain. Not a test; run it when the seeds need refreshing:
 *
 *   tests/harness/with-pebble --env PEBBLE_VA_ALWAYS_VALID=1 -- \
 *       build/tests/fuzz/fuzz_capture_pebble tests/fuzz/corpus
 *
 * PEBBLE_VA_ALWAYS_VALID makes Pebble accept every challenge without
 * connecting back, so nothing needs to serve them. Talks to Pebble on
 * loopback only (ACME_TEST_DIRECTORY). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <acme/acme.h>

#include "fuzz.h"
#include "internal.h"
#include "order.h"

#include "acme_flow_common.h"

typedef struct recorder {
    acme_transport_ops inner;
    void *inner_ud;
    FILE *flow;
    const char *dir;
    unsigned n;
} recorder;

static void write_file(const char *dir, const char *sub, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "capture: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* The response as the flow target reads it. */
static char *render(const acme_http_response *r, size_t *len, int with_body)
{
    acme_buf b;
    buf_init(&b, 0);
    char line[64];
    snprintf(line, sizeof(line), "HTTP/1.1 %d\r\n", r->status);
    buf_append_str(&b, line);
    for (size_t i = 0; i < r->header_count; i++) {
        buf_append_str(&b, r->headers[i].name);
        buf_append_str(&b, ": ");
        buf_append_str(&b, r->headers[i].value);
        buf_append_str(&b, "\r\n");
    }
    buf_append_str(&b, "\r\n");
    if (with_body && r->body.len)
        buf_append(&b, r->body.data, r->body.len);
    return buf_steal(&b, len);
}

static int rec_perform(void *ud, const acme_http_request *req, acme_http_response *resp)
{
    recorder *r = ud;
    int rc = r->inner.perform(r->inner_ud, req, resp);
    if (rc != ACME_OK)
        return rc;
    size_t len;
    char *all = render(resp, &len, 1);
    if (r->n++)
        fputs(FUZZ_SEP, r->flow);
    fwrite(all, 1, len, r->flow);
    free(all);

    /* Heads and bodies one by one, named by what was asked. */
    const char *slash = strrchr(req->url, '/');
    char what[40];
    snprintf(what, sizeof(what), "%s", slash && slash[1] ? slash + 1 : "root");
    for (char *p = what; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            *p = '-';
    if (strlen(what) > 12)
        what[12] = '\0';
    char name[96];
    char *head = render(resp, &len, 0);
    snprintf(name, sizeof(name), "pebble-%02u-%d-%s.txt", r->n, resp->status, what);
    write_file(r->dir, "http_head", name, head, len);
    free(head);
    const char *ct = http_response_header(resp, "Content-Type");
    if (ct && strstr(ct, "problem+json")) {
        snprintf(name, sizeof(name), "pebble-%02u-%s.json", r->n, what);
        write_file(r->dir, "problem", name, resp->body.data, resp->body.len);
    }
    if (ct && strstr(ct, "pem-certificate-chain")) {
        write_file(r->dir, "x509", "pebble-chain.pem", resp->body.data, resp->body.len);
    }
    return ACME_OK;
}

static int host_ok(void *ud, const acme_challenge *ch)
{
    (void)ud;
    (void)ch;
    return ACME_OK;
}

int main(int argc, char **argv)
{
    const char *dir_url = getenv("ACME_TEST_DIRECTORY"), *ca = getenv("ACME_TEST_CA_FILE");
    if (argc != 2 || !dir_url || !ca) {
        fprintf(stderr, "usage: with-pebble --env PEBBLE_VA_ALWAYS_VALID=1 -- %s CORPUS-DIR\n", argv[0]);
        return 2;
    }
    recorder r = {.dir = argv[1]};
    char path[4096];
    snprintf(path, sizeof(path), "%s/acme_flow", argv[1]);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/acme_flow/pebble-issue.txt", argv[1]);
    r.flow = fopen(path, "wb");
    if (!r.flow) {
        perror(path);
        return 1;
    }
    mem_store mem = {0};
    acme_client *c = NULL;
    if (acme_client_new(dir_url, &c) || acme_client_set_ca_file(c, ca) || acme_client_set_storage(c, &mem_ops, &mem) ||
        net_transport_ready(c)) {
        fprintf(stderr, "capture: client set-up failed\n");
        return 1;
    }
    /* Record through the real transport. */
    r.inner = c->transport;
    r.inner_ud = c->transport_ud;
    c->transport.perform = rec_perform;
    c->transport_ud = &r;
    acme_host_callbacks host = {.size = sizeof(host), .publish = host_ok, .unpublish = host_ok};
    acme_client_set_host(c, &host, NULL);

    acme_account_params ap = {.size = sizeof(ap), .agree_tos = 1};
    int rc = acme_account_register(c, &ap);
    if (rc == ACME_OK) {
        acme_issue_params ip = {.size = sizeof(ip), .names = flow_names, .name_count = FLOW_NAME_COUNT,
                                .challenges = flow_challenges, .challenge_count = 3, .cert_id = "fuzz.test"};
        order_run *o = order_new(c, &ip, &rc);
        if (o) {
            rc = order_run_blocking(o);
            order_free(o);
        }
    }
    fclose(r.flow);
    if (rc != ACME_OK) {
        fprintf(stderr, "capture: the run failed: %s\n", acme_client_last_error(c));
        return 1;
    }
    /* A problem document of another kind: an order that does not exist. */
    char *bad = NULL;
    if (asprintf(&bad, "%.*s/my-order/no-such-order", (int)(strrchr(dir_url, '/') - dir_url), dir_url) > 0) {
        FILE *keep = r.flow;
        r.flow = fopen("/dev/null", "wb");
        json_t *j = NULL;
        (void)net_post(c, "missing order", bad, NULL, NULL, NULL, &j);
        json_decref(j);
        fclose(r.flow);
        r.flow = keep;
        free(bad);
    }
    acme_client_free(c);
    mem_clear(&mem);
    printf("capture: %u responses recorded\n", r.n);
    return 0;
}
