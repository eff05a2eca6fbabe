/* Fuzz target: the JSON bodies (and heads) of every ACME object libacme
 * reads, in the order a CA sends them: directory, nonce, account, order,
 * authorizations with their challenges, challenge and order polls,
 * finalize, the certificate chain, problem documents at any step. The
 * input is the CA's half of an acme_account_register + issuance run (see
 * acme_flow_common.h for its form); a stand-in transport serves it
 * response by response, so the real state machines (libacme/net.c,
 * account.c, order.c, challenge.c, error.c, x509.c) parse it. Waits are
 * skipped (a poll loop costs an input piece, not time) and storage is in
 * memory. When the input runs out the transport fails like a dropped
 * connection.
 *
 * Promises checked: every request goes to an https:// URL whatever URLs
 * the input hands out; what a publish callback receives is bound to an
 * ordered name (no control or shell characters), its token is strict
 * base64url and the http-01 path is the well-known one for that token; a
 * failed run leaves a one-line error with no control characters; a
 * succeeded one has a stored certificate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <acme/acme.h>

#include "fuzz.h"
#include "internal.h"
#include "order.h"

#include "acme_flow_common.h"

#define T "fuzz_acme_flow"
#define MAX_STEPS 4000

typedef struct stub {
    fuzz_pieces it;
    unsigned served;
} stub;

/* One piece as a response: status line, header lines, empty line, body. */
static int serve(const uint8_t *p, size_t n, acme_http_response *resp)
{
    const uint8_t *end = p + n;
    int first = 1;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *le = nl ? nl : end;
        size_t len = (size_t)(le - p);
        if (len && p[len - 1] == '\r')
            len--;
        const uint8_t *next = nl ? nl + 1 : end;
        if (len == 0) {
            p = next;
            break; /* the body follows */
        }
        if (first) {
            first = 0;
            const uint8_t *sp = memchr(p, ' ', len);
            int code = 0;
            for (const uint8_t *d = sp ? sp + 1 : p + len; d < p + len && *d >= '0' && *d <= '9' && code < 100000;
                 d++)
                code = code * 10 + (*d - '0');
            if (acme_http_response_set_status(resp, code) != ACME_OK)
                return ACME_E_NETWORK; /* what a transport reports for a broken status line */
        } else {
            const uint8_t *colon = memchr(p, ':', len);
            if (colon) {
                int rc = acme_http_response_add_header(resp, (const char *)p, (size_t)(colon - p),
                                                       (const char *)colon + 1, len - (size_t)(colon + 1 - p));
                if (rc == ACME_E_TOO_LARGE || rc == ACME_E_NOMEM)
                    return rc;
            }
        }
        p = next;
    }
    if (first)
        return ACME_E_NETWORK; /* not even a status line */
    if (p < end) {
        int rc = acme_http_response_append_body(resp, p, (size_t)(end - p));
        if (rc != ACME_OK)
            return rc;
    }
    return ACME_OK;
}

static int stub_perform(void *ud, const acme_http_request *req, acme_http_response *resp)
{
    stub *s = ud;
    FUZZ_CHECK(T, req && req->url && strncmp(req->url, "https://", 8) == 0, "a request to a non-https URL");
    const uint8_t *piece;
    size_t len;
    if (!fuzz_next_piece(&s->it, &piece, &len)) {
        acme_http_response_set_error(resp, "fuzz input exhausted");
        return ACME_E_NETWORK;
    }
    s->served++;
    return serve(piece, len, resp);
}

static int b64url_only(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_'))
            return 0;
    return 1;
}

static int host_publish(void *ud, const acme_challenge *ch)
{
    (void)ud;
    FUZZ_CHECK(T, ch->identifier && !fuzz_has_control(ch->identifier), "identifier text");
    FUZZ_CHECK(T, !strpbrk(ch->identifier, "/\\\"'`$;&|<>() "), "shell or path character in an identifier");
    int bound = 0;
    for (size_t i = 0; i < FLOW_NAME_COUNT; i++) {
        const char *n = flow_names[i];
        if (!strncmp(n, "*.", 2))
            n += 2;
        bound |= ascii_casecmp(n, ch->identifier) == 0;
    }
    FUZZ_CHECK(T, bound, "a challenge for a name that was not ordered");
    FUZZ_CHECK(T, b64url_only(ch->token), "token is strict base64url");
    FUZZ_CHECK(T, ch->key_auth && !strncmp(ch->key_auth, ch->token, strlen(ch->token)) &&
                  ch->key_auth[strlen(ch->token)] == '.',
               "key authorization starts with the token");
    if (ch->type == ACME_CHALLENGE_HTTP_01) {
        static const char wk[] = "/.well-known/acme-challenge/";
        FUZZ_CHECK(T, ch->http_path && !strncmp(ch->http_path, wk, sizeof(wk) - 1) &&
                      !strcmp(ch->http_path + sizeof(wk) - 1, ch->token),
                   "http-01 path");
    }
    if (ch->type == ACME_CHALLENGE_DNS_01)
        FUZZ_CHECK(T, ch->dns_name && !strncmp(ch->dns_name, "_acme-challenge.", 16), "dns-01 name");
    return ACME_OK;
}

static int host_unpublish(void *ud, const acme_challenge *ch)
{
    (void)ud;
    (void)ch;
    return ACME_OK;
}

static int host_install(void *ud, const acme_certificate *cert)
{
    (void)ud;
    FUZZ_CHECK(T, cert->chain && strstr(cert->chain, "-----BEGIN CERTIFICATE-----") == cert->chain,
               "installed chain is PEM");
    return ACME_OK;
}

/* The account key is made once and reused: key generation is not what is
 * being fuzzed, and it would dominate the run time. */
static char *account_key_name, *account_key_pem;
static size_t account_key_len;

static void remember_account_key(mem_store *m)
{
    if (account_key_pem)
        return;
    for (size_t i = 0; i < m->n; i++)
        if (strstr(m->e[i].key, "account") && strstr(m->e[i].data, "PRIVATE KEY")) {
            account_key_name = strdup(m->e[i].key);
            account_key_pem = malloc(m->e[i].len + 1);
            memcpy(account_key_pem, m->e[i].data, m->e[i].len + 1);
            account_key_len = m->e[i].len;
            return;
        }
}

static void check_error_line(acme_client *c, const char *what, int rc)
{
    const char *e = acme_client_last_error(c);
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "%s: %s failed (%d): %s\n", T, what, rc, e ? e : "(no message)");
    (void)rc;
    FUZZ_CHECK(T, e && *e, "a failure without a message");
    FUZZ_CHECK(T, !fuzz_has_control(e), "control character in the error message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mem_store mem = {0};
    if (account_key_pem)
        mem_put(&mem, account_key_name, account_key_pem, account_key_len, 0);
    stub s = {.served = 0};
    fuzz_pieces_init(&s.it, data, size);

    acme_client *c = NULL;
    if (acme_client_new(FLOW_DIRECTORY, &c) != ACME_OK)
        abort();
    acme_transport_ops tops = {.size = sizeof(tops), .perform = stub_perform};
    acme_host_callbacks host = {.size = sizeof(host), .publish = host_publish, .unpublish = host_unpublish,
                                .install = host_install};
    acme_client_set_transport(c, &tops, &s);
    acme_client_set_storage(c, &mem_ops, &mem);
    acme_client_set_host(c, &host, NULL);
    acme_client_set_max_response(c, 64 * 1024);

    acme_account_params ap = {.size = sizeof(ap), .agree_tos = 1};
    int rc = acme_account_register(c, &ap);
    remember_account_key(&mem);
    if (rc != ACME_OK) {
        check_error_line(c, "account registration", rc);
        goto out;
    }
    FUZZ_CHECK(T, acme_account_url(c) && !strncmp(acme_account_url(c), "https://", 8),
               "account URL is https");

    acme_issue_params ip = {.size = sizeof(ip), .names = flow_names, .name_count = FLOW_NAME_COUNT,
                            .challenges = flow_challenges, .challenge_count = 3, .cert_id = "fuzz.test"};
    order_run *r = order_new(c, &ip, &rc);
    if (!r) {
        check_error_line(c, "order set-up", rc);
        goto out;
    }
    unsigned steps = 0;
    for (int done = 0; !done && steps < MAX_STEPS; steps++) {
        switch (order_step(r)) {
        case OW_CONTINUE:
        case OW_TIME: /* no waiting: the next poll answer is the next piece */
            break;
        case OW_HTTP:
            net_exchange_perform(c, order_exchange(r));
            break;
        case OW_WORK: {
            work_job *j = order_job(r);
            j->fn(j);
            break;
        }
        case OW_EXTERNAL:
            FUZZ_CHECK(T, 0, "a callback that answered synchronously left the order waiting");
            break;
        case OW_DONE:
            done = 1;
            break;
        }
    }
    if (steps < MAX_STEPS) {
        rc = order_result(r);
        if (rc != ACME_OK) {
            const char *e = order_error(r);
            FUZZ_CHECK(T, e && *e, "a failed order without a message");
            FUZZ_CHECK(T, !fuzz_has_control(e), "control character in the order's error");
        } else {
            FUZZ_CHECK(T, acme_cert_load(c, "fuzz.test", host_install, NULL) == ACME_OK,
                       "issued but not stored");
        }
    }
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "%s: %u responses served, %u steps, result %d: %s\n", T, s.served, steps, rc,
                rc ? order_error(r) : "issued");
    order_free(r);
out:
    acme_client_free(c);
    mem_clear(&mem);
    return 0;
}
