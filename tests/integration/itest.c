/* Shared helpers for the integration programs. See itest.h. */
#include "itest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <jansson.h>

static const char *test_name = "itest";
static char *own_tmp_root;      /* created when not under the harness */
static unsigned dir_counter;

/* ------------------------------------------------------------------ basics */

void itest_log(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "[%s] ", test_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "[%s] FAIL: ", test_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

char *itest_strdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        die("out of memory");
    return d;
}

int itest_streq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

char *itest_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("out of memory");
    return s;
}

static void print_problem(const acme_problem *p, const char *indent)
{
    fprintf(stderr, "%sproblem: type=%s status=%d detail=%s\n", indent,
            acme_problem_type(p) ? acme_problem_type(p) : "(null)",
            acme_problem_status(p),
            acme_problem_detail(p) ? acme_problem_detail(p) : "(null)");
    for (size_t i = 0; i < acme_problem_subproblem_count(p); i++) {
        const acme_problem *s = acme_problem_subproblem(p, i);
        fprintf(stderr, "%s  sub [%s %s]: %s: %s\n", indent,
                acme_problem_identifier_type(s) ? acme_problem_identifier_type(s) : "-",
                acme_problem_identifier_value(s) ? acme_problem_identifier_value(s) : "-",
                acme_problem_type(s) ? acme_problem_type(s) : "(null)",
                acme_problem_detail(s) ? acme_problem_detail(s) : "(null)");
    }
}

static void print_client_state(const acme_client *c)
{
    if (!c)
        return;
    const char *e = acme_client_last_error(c);
    fprintf(stderr, "    last error: %s\n", e ? e : "(NULL)");
    const acme_problem *p = acme_client_problem(c);
    if (p)
        print_problem(p, "    ");
}

void itest_fail(const char *file, int line, const char *expr, const acme_client *c,
                const char *fmt, ...)
{
    fprintf(stderr, "[%s] FAIL %s:%d: %s\n", test_name, file, line, expr);
    if (fmt) {
        va_list ap;
        fputs("    ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    print_client_state(c);
    exit(1);
}

void itest_fail_code(const char *file, int line, const char *expr, const acme_client *c,
                     int got, int want)
{
    fprintf(stderr, "[%s] FAIL %s:%d: %s\n    returned %d (%s), expected %d (%s)\n",
            test_name, file, line, expr, got, acme_strerror(got), want, acme_strerror(want));
    print_client_state(c);
    exit(1);
}

/* ------------------------------------------------------------- environment */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void rmtree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void itest_init(const char *name)
{
    test_name = name;
    setvbuf(stderr, NULL, _IONBF, 0);
    if (gnutls_global_init() < 0)
        die("gnutls_global_init failed");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        die("curl_global_init failed");
}

/* A scratch root of our own is removed only after success, so a failure
 * keeps its evidence. Under the harness, the harness removes everything. */
void itest_done(void)
{
    if (own_tmp_root) {
        rmtree(own_tmp_root);
        free(own_tmp_root);
        own_tmp_root = NULL;
    }
    itest_log("PASS");
}

const char *itest_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        die("%s is not set: run this program under tests/harness/with-pebble "
            "(see tests/integration/meson.build)", name);
    return v;
}

unsigned itest_env_port(const char *name)
{
    const char *v = itest_env(name);
    char *end;
    unsigned long p = strtoul(v, &end, 10);
    if (*end || p == 0 || p > 65535)
        die("%s=%s is not a port number", name, v);
    return (unsigned)p;
}

char *itest_fresh_dir(const char *label)
{
    const char *base = getenv("ACME_TEST_TMPDIR");
    if (!base || !*base) {
        if (!own_tmp_root) {
            const char *t = getenv("TMPDIR");
            own_tmp_root = itest_printf("%s/%s.XXXXXX", t && *t ? t : "/tmp", test_name);
            if (!mkdtemp(own_tmp_root))
                die("mkdtemp %s: %s", own_tmp_root, strerror(errno));
        }
        base = own_tmp_root;
    }
    char *d = itest_printf("%s/%s-%s-%u", base, test_name, label, ++dir_counter);
    if (mkdir(d, 0700) != 0)
        die("mkdir %s: %s", d, strerror(errno));
    return d;
}

/* ------------------------------------------------------- challtestsrv (dns-01) */

typedef struct membuf {
    char *data;
    size_t len;
} membuf;

static size_t membuf_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    membuf *m = ud;
    size_t n = size * nmemb;
    char *d = realloc(m->data, m->len + n + 1);
    if (!d)
        return 0;
    memcpy(d + m->len, ptr, n);
    m->len += n;
    d[m->len] = '\0';
    m->data = d;
    return n;
}

/* One plain HTTP or HTTPS request to the test infrastructure (never to
 * libacme's code paths). Returns the status; *body malloc'ed or NULL. */
static long infra_request(const char *url, const char *post_json, const char *ca_file,
                          char **body)
{
    CURL *h = curl_easy_init();
    membuf m = {0};
    long status = 0;
    if (!h)
        die("curl_easy_init failed");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, membuf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
    if (ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
    struct curl_slist *hdrs = NULL;
    if (post_json) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_json);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        die("%s %s: %s", post_json ? "POST" : "GET", url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (body)
        *body = m.data;
    else
        free(m.data);
    return status;
}

static void challtestsrv_post(const char *op, const char *host, const char *value)
{
    json_t *o = value ? json_pack("{s:s, s:s}", "host", host, "value", value)
                      : json_pack("{s:s}", "host", host);
    char *text = json_dumps(o, JSON_COMPACT);
    char *url = itest_printf("%s/%s", itest_env("ACME_TEST_CHALLTESTSRV"), op);
    long st = infra_request(url, text, NULL, NULL);
    if (st != 200)
        die("challtestsrv %s for %s answered HTTP %ld", op, host, st);
    free(url);
    free(text);
    json_decref(o);
}

/* challtestsrv's set-txt ADDS a value to a name, and clear-txt drops every
 * value of that name. A wildcard and its base name share one TXT name, so
 * unpublishing one value clears the name and puts the others back. */
static int dns_publish(itest_host *h, const acme_challenge *ch)
{
    if (h->txt_count == ITEST_MAX_TXT)
        die("too many TXT records at once");
    char *host = itest_printf("%s.", acme_challenge_dns_name(ch));
    challtestsrv_post("set-txt", host, acme_challenge_dns_value(ch));
    h->txt[h->txt_count].host = host;
    h->txt[h->txt_count].value = itest_strdup(acme_challenge_dns_value(ch));
    h->txt_count++;
    return ACME_OK;
}

static int dns_unpublish(itest_host *h, const acme_challenge *ch)
{
    char *host = itest_printf("%s.", acme_challenge_dns_name(ch));
    const char *value = acme_challenge_dns_value(ch);
    size_t i;
    for (i = 0; i < h->txt_count; i++)
        if (!strcmp(h->txt[i].host, host) && !strcmp(h->txt[i].value, value))
            break;
    if (i == h->txt_count)
        die("unpublish of a dns-01 record never published: %s %s", host, value);
    free(h->txt[i].host);
    free(h->txt[i].value);
    h->txt[i] = h->txt[--h->txt_count];
    challtestsrv_post("clear-txt", host, NULL);
    for (i = 0; i < h->txt_count; i++)
        if (!strcmp(h->txt[i].host, host))
            challtestsrv_post("set-txt", host, h->txt[i].value);
    free(host);
    return ACME_OK;
}

/* ------------------------------------------------------------ host callbacks */

static int strict_b64url(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

/* What every challenge handed to a host must look like, whatever its type:
 * the accessors must agree with each other (RFC 8555 §8.1, §8.3, §8.4). */
static void check_challenge(const acme_challenge *ch)
{
    acme_challenge_type t = acme_challenge_get_type(ch);
    const char *id = acme_challenge_identifier(ch);
    const char *idtype = acme_challenge_identifier_type(ch);
    const char *token = acme_challenge_token(ch);
    const char *ka = acme_challenge_key_authorization(ch);

    if (!id || !*id || !idtype || (strcmp(idtype, "dns") && strcmp(idtype, "ip")))
        die("challenge with identifier %s/%s", idtype ? idtype : "(null)", id ? id : "(null)");
    if (!strncmp(id, "*.", 2))
        die("challenge identifier %s still carries the wildcard label", id);
    if (!strict_b64url(token))
        die("challenge token %s is not strict base64url", token ? token : "(null)");
    if (!ka || strncmp(ka, token, strlen(token)) || ka[strlen(token)] != '.' ||
        !strict_b64url(ka + strlen(token) + 1))
        die("key authorization %s is not <token>.<thumbprint>", ka ? ka : "(null)");

    switch (t) {
    case ACME_CHALLENGE_HTTP_01: {
        char *want = itest_printf("/.well-known/acme-challenge/%s", token);
        const char *path = acme_challenge_http_path(ch);
        if (!path || strcmp(path, want))
            die("http-01 path %s, expected %s", path ? path : "(null)", want);
        free(want);
        break;
    }
    case ACME_CHALLENGE_DNS_01: {
        char *want = itest_printf("_acme-challenge.%s", id);
        const char *name = acme_challenge_dns_name(ch);
        const char *value = acme_challenge_dns_value(ch);
        if (!name || strcmp(name, want))
            die("dns-01 name %s, expected %s", name ? name : "(null)", want);
        /* base64url of a SHA-256 digest: 43 characters. */
        if (!strict_b64url(value) || strlen(value) != 43)
            die("dns-01 value %s is not a base64url SHA-256", value ? value : "(null)");
        if (!strcmp(idtype, "ip"))
            die("dns-01 offered for IP identifier %s", id);
        free(want);
        break;
    }
    case ACME_CHALLENGE_TLS_ALPN_01: {
        const char *cert = acme_challenge_alpn_cert_pem(ch);
        const char *key = acme_challenge_alpn_key_pem(ch);
        if (!cert || !strstr(cert, "BEGIN CERTIFICATE") || !key || !strstr(key, "PRIVATE KEY"))
            die("tls-alpn-01 challenge without certificate/key PEM");
        if (!itest_key_matches(cert, key))
            die("tls-alpn-01 certificate does not match its key");
        break;
    }
    default:
        die("challenge of unknown type %d", (int)t);
    }
}

static int cb_publish(void *ud, const acme_challenge *ch)
{
    itest_host *h = ud;
    acme_challenge_type t = acme_challenge_get_type(ch);
    int rc;

    h->publish_calls++;
    h->types_seen |= 1u << (unsigned)t;
    check_challenge(ch);
    itest_log("publish %s for %s %s%s", acme_challenge_type_name(t),
              acme_challenge_identifier_type(ch), acme_challenge_is_wildcard(ch) ? "*." : "",
              acme_challenge_identifier(ch));
    if (t == ACME_CHALLENGE_DNS_01)
        rc = dns_publish(h, ch);
    else if (h->responders)
        rc = acme_responder_publish(h->responders, ch);
    else
        rc = ACME_E_UNSUPPORTED;
    if (rc == ACME_OK)
        h->outstanding++;
    return rc;
}

static int cb_unpublish(void *ud, const acme_challenge *ch)
{
    itest_host *h = ud;
    acme_challenge_type t = acme_challenge_get_type(ch);
    h->unpublish_calls++;
    h->outstanding--;
    if (t == ACME_CHALLENGE_DNS_01)
        return dns_unpublish(h, ch);
    if (h->responders)
        return acme_responder_unpublish(h->responders, ch);
    return ACME_E_UNSUPPORTED;
}

void itest_cert_clear(itest_cert *ic)
{
    free(ic->chain_pem);
    if (ic->key_pem) {
        memset(ic->key_pem, 0, strlen(ic->key_pem));
        free(ic->key_pem);
    }
    for (size_t i = 0; i < ic->name_count; i++)
        free(ic->names[i]);
    free(ic->names);
    free(ic->issuer);
    free(ic->id);
    memset(ic, 0, sizeof *ic);
}

static int cb_install(void *ud, const acme_certificate *cert)
{
    itest_host *h = ud;
    itest_cert *ic = &h->last;
    itest_cert_clear(ic);
    ic->chain_pem = itest_strdup(acme_certificate_chain_pem(cert));
    ic->key_pem = itest_strdup(acme_certificate_key_pem(cert));
    ic->name_count = acme_certificate_name_count(cert);
    ic->names = calloc(ic->name_count ? ic->name_count : 1, sizeof *ic->names);
    for (size_t i = 0; i < ic->name_count; i++)
        ic->names[i] = itest_strdup(acme_certificate_name(cert, i));
    ic->not_before = acme_certificate_not_before(cert);
    ic->not_after = acme_certificate_not_after(cert);
    ic->issuer = itest_strdup(acme_certificate_issuer(cert));
    ic->id = itest_strdup(acme_certificate_id(cert));
    h->install_calls++;
    itest_log("install %s (issuer \"%s\")", ic->id, ic->issuer);
    return h->install_result;
}

static void cb_log(void *ud, acme_log_level level, const char *msg)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    itest_host *h = ud;
    h->log_count++;
    if (msg && strstr(msg, "badNonce"))
        h->log_bad_nonce++;
    fprintf(stderr, "[%s] libacme %s: %s\n", test_name,
            (unsigned)level < 4 ? names[level] : "?", msg ? msg : "(null)");
    if (msg && (strstr(msg, "PRIVATE KEY") || strchr(msg, '\n')))
        die("a log line contains key material or a newline: %s", msg);
}

void itest_host_init(itest_host *h)
{
    memset(h, 0, sizeof *h);
    h->install_result = ACME_OK;
}

void itest_host_clear(itest_host *h)
{
    itest_cert_clear(&h->last);
    for (size_t i = 0; i < h->txt_count; i++) {
        free(h->txt[i].host);
        free(h->txt[i].value);
    }
    h->txt_count = 0;
}

acme_client *itest_client_with(const acme_host_callbacks *cb, void *ud, const char *state_dir,
                               const char *directory_url, const char *ca_file)
{
    acme_client *c = NULL;
    CHECK_OK(NULL, acme_client_new(directory_url, &c));
    CHECK(NULL, c != NULL);
    CHECK_OK(c, acme_client_set_host(c, cb, ud));
    CHECK_OK(c, acme_client_set_ca_file(c, ca_file));
    CHECK_OK(c, acme_client_set_storage_dir(c, state_dir));
    const char *dbg = getenv("ITEST_DEBUG");
    CHECK_OK(c, acme_client_set_log_level(c, dbg && *dbg == '1' ? ACME_LOG_DEBUG : ACME_LOG_INFO));
    return c;
}

acme_client *itest_client_at(itest_host *h, const char *state_dir,
                             const char *directory_url, const char *ca_file)
{
    acme_host_callbacks cb = {
        .size = sizeof cb,
        .publish = cb_publish,
        .unpublish = cb_unpublish,
        .install = cb_install,
        .log = cb_log,
    };
    return itest_client_with(&cb, h, state_dir, directory_url, ca_file);
}

acme_client *itest_client(itest_host *h, const char *state_dir)
{
    return itest_client_at(h, state_dir, itest_env("ACME_TEST_DIRECTORY"),
                           itest_env("ACME_TEST_CA_FILE"));
}

void itest_register(acme_client *c, const char *contact)
{
    const char *contacts[1] = {contact};
    acme_account_params p = {
        .size = sizeof p,
        .contacts = contact ? contacts : NULL,
        .contact_count = contact ? 1 : 0,
        .agree_tos = 1,
    };
    CHECK_OK(c, acme_account_register(c, &p));
    CHECK(c, acme_account_url(c) && !strncmp(acme_account_url(c), "https://", 8));
    CHECK(c, acme_account_status(c) && itest_streq(acme_account_status(c), "valid"));
    CHECK(c, itest_streq(acme_client_last_error(c), ""));
}

/* ------------------------------------------------------------- responders */

static acme_responder *responder_on(acme_responder_kind kind, const char *port_var)
{
    acme_responder *r = NULL;
    acme_responder_options o = {
        .size = sizeof o,
        .bind_address = "127.0.0.1",
        .port = itest_env_port(port_var),
    };
    CHECK_OK(NULL, acme_responder_new(kind, &o, &r));
    CHECK(NULL, acme_responder_port(r) == o.port);
    CHECK(NULL, acme_responder_get_kind(r) == kind);
    CHECK_OK(NULL, acme_responder_start_thread(r));
    return r;
}

void itest_responders_start(acme_responder_set *set, int http01, int tlsalpn01)
{
    memset(set, 0, sizeof *set);
    set->size = sizeof *set;
    if (http01)
        set->http01 = responder_on(ACME_RESPONDER_HTTP01, "ACME_TEST_HTTP_PORT");
    if (tlsalpn01)
        set->tlsalpn01 = responder_on(ACME_RESPONDER_TLSALPN01, "ACME_TEST_TLS_PORT");
}

void itest_responders_stop(acme_responder_set *set)
{
    acme_responder_free(set->http01);
    acme_responder_free(set->tlsalpn01);
    set->http01 = set->tlsalpn01 = NULL;
}

/* ------------------------------------------------------------ certificates */

static gnutls_x509_crt_t *import_chain(const char *pem, unsigned *n)
{
    gnutls_x509_crt_t *crts = NULL;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    int rc = gnutls_x509_crt_list_import2(&crts, n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || *n == 0)
        die("cannot parse certificate PEM (%s):\n%.400s", gnutls_strerror(rc), pem);
    return crts;
}

static void free_chain(gnutls_x509_crt_t *crts, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
}

static char *crt_cn(gnutls_x509_crt_t crt, int issuer)
{
    char buf[512];
    size_t size = sizeof buf;
    int rc = issuer
        ? gnutls_x509_crt_get_issuer_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size)
        : gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size);
    return itest_strdup(rc < 0 ? "" : buf);
}

char *itest_subject_cn(const char *pem)
{
    unsigned n;
    gnutls_x509_crt_t *crts = import_chain(pem, &n);
    char *cn = crt_cn(crts[0], 0);
    free_chain(crts, n);
    return cn;
}

char *itest_top_issuer_cn(const char *chain_pem)
{
    unsigned n;
    gnutls_x509_crt_t *crts = import_chain(chain_pem, &n);
    char *cn = crt_cn(crts[n - 1], 1);
    free_chain(crts, n);
    return cn;
}

int itest_chain_verifies(const char *chain_pem, const char *root_pem, const char **why)
{
    static char reason[512];
    unsigned n;
    unsigned status = 0;
    gnutls_x509_crt_t *crts = import_chain(chain_pem, &n);
    gnutls_x509_trust_list_t tl;
    gnutls_datum_t rd = {(unsigned char *)root_pem, (unsigned)strlen(root_pem)};

    if (gnutls_x509_trust_list_init(&tl, 0) < 0)
        die("gnutls_x509_trust_list_init failed");
    if (gnutls_x509_trust_list_add_trust_mem(tl, &rd, NULL, GNUTLS_X509_FMT_PEM, 0, 0) != 1)
        die("cannot load the root as a trust anchor");
    /* The chain as served (leaf, then however many intermediates). */
    int rc = gnutls_x509_trust_list_verify_crt2(tl, crts, n, NULL, 0, 0, &status, NULL);
    gnutls_x509_trust_list_deinit(tl, 1);
    free_chain(crts, n);
    if (rc < 0) {
        snprintf(reason, sizeof reason, "gnutls: %s", gnutls_strerror(rc));
    } else if (status) {
        gnutls_datum_t out = {0};
        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0);
        snprintf(reason, sizeof reason, "%s", out.data ? (char *)out.data : "invalid");
        gnutls_free(out.data);
    }
    if (why)
        *why = reason;
    return rc >= 0 && status == 0;
}

static void pubkey_der(gnutls_pubkey_t pub, gnutls_datum_t *out)
{
    if (gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out) < 0)
        die("cannot export a public key");
}

int itest_key_matches(const char *chain_pem, const char *key_pem)
{
    unsigned n;
    gnutls_x509_crt_t *crts = import_chain(chain_pem, &n);
    gnutls_pubkey_t from_cert, from_key;
    gnutls_privkey_t priv;
    gnutls_datum_t kd = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
    gnutls_datum_t a = {0}, b = {0};

    gnutls_pubkey_init(&from_cert);
    gnutls_pubkey_init(&from_key);
    gnutls_privkey_init(&priv);
    if (gnutls_pubkey_import_x509(from_cert, crts[0], 0) < 0)
        die("cannot read the leaf's public key");
    if (gnutls_privkey_import_x509_raw(priv, &kd, GNUTLS_X509_FMT_PEM, NULL, 0) < 0)
        die("cannot parse the installed private key PEM");
    if (gnutls_pubkey_import_privkey(from_key, priv, 0, 0) < 0)
        die("cannot derive the public key of the installed key");
    pubkey_der(from_cert, &a);
    pubkey_der(from_key, &b);
    int same = a.size == b.size && !memcmp(a.data, b.data, a.size);
    gnutls_free(a.data);
    gnutls_free(b.data);
    gnutls_pubkey_deinit(from_cert);
    gnutls_pubkey_deinit(from_key);
    gnutls_privkey_deinit(priv);
    free_chain(crts, n);
    return same;
}

const char *itest_leaf_key_kind(const char *chain_pem)
{
    static char kind[32];
    unsigned n, bits = 0;
    gnutls_x509_crt_t *crts = import_chain(chain_pem, &n);
    gnutls_pubkey_t pub;
    gnutls_pubkey_init(&pub);
    if (gnutls_pubkey_import_x509(pub, crts[0], 0) < 0)
        die("cannot read the leaf's public key");
    int alg = gnutls_pubkey_get_pk_algorithm(pub, &bits);
    if (alg == GNUTLS_PK_RSA) {
        snprintf(kind, sizeof kind, "RSA-%u", bits);
    } else if (alg == GNUTLS_PK_ECDSA) {
        gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
        gnutls_pubkey_export_ecc_raw(pub, &curve, NULL, NULL);
        snprintf(kind, sizeof kind, "%s",
                 curve == GNUTLS_ECC_CURVE_SECP256R1 ? "P-256" :
                 curve == GNUTLS_ECC_CURVE_SECP384R1 ? "P-384" :
                 curve == GNUTLS_ECC_CURVE_SECP521R1 ? "P-521" : "EC-other");
    } else if (alg == GNUTLS_PK_EDDSA_ED25519) {
        snprintf(kind, sizeof kind, "Ed25519");
    } else {
        snprintf(kind, sizeof kind, "alg-%d", alg);
    }
    gnutls_pubkey_deinit(pub);
    free_chain(crts, n);
    return kind;
}

static const char *expected_kind(acme_key_type t)
{
    switch (t) {
    case ACME_KEY_DEFAULT:
    case ACME_KEY_EC_P256: return "P-256";
    case ACME_KEY_EC_P384: return "P-384";
    case ACME_KEY_RSA_2048: return "RSA-2048";
    case ACME_KEY_RSA_3072: return "RSA-3072";
    case ACME_KEY_RSA_4096: return "RSA-4096";
    case ACME_KEY_ED25519: return "Ed25519";
    }
    return "?";
}

/* IP literals compare by address, names case-insensitively. */
static int same_name(const char *a, const char *b)
{
    unsigned char ba[16], bb[16];
    int fa = strchr(a, ':') ? AF_INET6 : AF_INET, fb = strchr(b, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(fa, a, ba) == 1 && inet_pton(fb, b, bb) == 1)
        return fa == fb && !memcmp(ba, bb, fa == AF_INET ? 4 : 16);
    return !strcasecmp(a, b);
}

int itest_leaf_names_are(const char *chain_pem, const char *const *names, size_t n)
{
    unsigned count;
    gnutls_x509_crt_t *crts = import_chain(chain_pem, &count);
    size_t found = 0, sans = 0;
    int ok = 1;
    for (unsigned i = 0;; i++) {
        unsigned char buf[1024];
        char text[INET6_ADDRSTRLEN + 1];
        size_t size = sizeof buf - 1;
        int type = gnutls_x509_crt_get_subject_alt_name(crts[0], i, buf, &size, NULL);
        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (type < 0)
            die("cannot read SAN %u: %s", i, gnutls_strerror(type));
        const char *san;
        if (type == GNUTLS_SAN_DNSNAME) {
            buf[size] = '\0';
            san = (const char *)buf;
        } else if (type == GNUTLS_SAN_IPADDRESS) {
            if (!inet_ntop(size == 4 ? AF_INET : AF_INET6, buf, text, sizeof text))
                die("bad IP SAN");
            san = text;
        } else {
            continue;
        }
        sans++;
        size_t j;
        for (j = 0; j < n; j++)
            if (same_name(san, names[j]))
                break;
        if (j == n) {
            itest_log("leaf has unexpected SAN %s", san);
            ok = 0;
        } else {
            found++;
        }
    }
    free_chain(crts, count);
    if (sans != n || found != n) {
        itest_log("leaf has %zu SANs, %zu of the %zu requested", sans, found, n);
        ok = 0;
    }
    return ok;
}

char *itest_leaf_serial(const char *chain_pem)
{
    unsigned n;
    unsigned char raw[64];
    size_t size = sizeof raw;
    gnutls_x509_crt_t *crts = import_chain(chain_pem, &n);
    if (gnutls_x509_crt_get_serial(crts[0], raw, &size) < 0)
        die("cannot read the leaf's serial");
    free_chain(crts, n);
    char *hex = calloc(2 * size + 2, 1);
    size_t o = 0;
    for (size_t i = 0; i < size; i++)
        o += (size_t)sprintf(hex + o, "%02x", raw[i]);
    size_t skip = strspn(hex, "0");
    if (skip == o)
        skip = o - 1;
    memmove(hex, hex + skip, o - skip + 1);
    return hex;
}

static int64_t leaf_time(const char *chain_pem, int after)
{
    unsigned n;
    gnutls_x509_crt_t *crts = import_chain(chain_pem, &n);
    time_t t = after ? gnutls_x509_crt_get_expiration_time(crts[0])
                     : gnutls_x509_crt_get_activation_time(crts[0]);
    free_chain(crts, n);
    return (int64_t)t;
}

/* ------------------------------------------------------------- management */

long itest_mgmt_get(const char *path, char **body)
{
    char *url = itest_printf("%s%s", itest_env("ACME_TEST_MGMT"), path);
    long st = infra_request(url, NULL, itest_env("ACME_TEST_CA_FILE"), body);
    free(url);
    return st;
}

char *itest_pebble_root(int index)
{
    char *path = itest_printf("/roots/%d", index);
    char *body = NULL;
    long st = itest_mgmt_get(path, &body);
    if (st != 200 || !body || !strstr(body, "BEGIN CERTIFICATE"))
        die("Pebble management %s answered HTTP %ld", path, st);
    free(path);
    return body;
}

void itest_cert_status(const char *chain_pem, char **status, int *reason)
{
    char *serial = itest_leaf_serial(chain_pem);
    char *path = itest_printf("/cert-status-by-serial/%s", serial);
    char *body = NULL;
    long st = itest_mgmt_get(path, &body);
    if (st != 200)
        die("Pebble management %s answered HTTP %ld: %s", path, st, body ? body : "");
    json_error_t err;
    json_t *o = json_loads(body, 0, &err);
    if (!o)
        die("Pebble management %s: not JSON: %s", path, err.text);
    json_t *s = json_object_get(o, "Status"), *r = json_object_get(o, "Reason");
    *status = itest_strdup(json_is_string(s) ? json_string_value(s) : "");
    *reason = json_is_integer(r) ? (int)json_integer_value(r) : -1;
    json_decref(o);
    free(body);
    free(path);
    free(serial);
}

/* ------------------------------------------------------------- issuance */

static char *root0;

static char *default_cert_id(const char *first)
{
    if (!strncmp(first, "*.", 2))
        return itest_printf("_.%s", first + 2);
    return itest_strdup(first);
}

const itest_cert *itest_issue_checked(acme_client *c, itest_host *h, const itest_issue *p)
{
    static const acme_challenge_type dns_only[] = {ACME_CHALLENGE_DNS_01};
    acme_issue_params ip = {
        .size = sizeof ip,
        .names = p->names,
        .name_count = p->name_count,
        .key_type = p->key_type,
        .challenges = p->challenges ? p->challenges : dns_only,
        .challenge_count = p->challenges ? p->challenge_count : 1,
        .preferred_chain = p->preferred_chain,
    };
    int installs = h->install_calls;
    unsigned allowed = 0;
    for (size_t i = 0; i < ip.challenge_count; i++)
        allowed |= 1u << (unsigned)ip.challenges[i];

    itest_log("issuing for %s%s (%zu names, key %s)", p->names[0],
              p->name_count > 1 ? ",..." : "", p->name_count, expected_kind(p->key_type));
    h->types_seen = 0;
    CHECK_OK(c, acme_issue(c, &ip));
    CHECK(c, itest_streq(acme_client_last_error(c), ""));
    CHECK_MSG(c, h->install_calls == installs + 1, "install called %d times",
              h->install_calls - installs);
    CHECK_MSG(c, h->outstanding == 0, "%d challenge(s) left published", h->outstanding);
    CHECK_MSG(c, (h->types_seen & ~allowed) == 0,
              "a challenge type outside the preferences was published (mask %#x)", h->types_seen);
    /* With authorization reuse off, every name needs a fresh validation. */
    CHECK_MSG(c, h->publish_calls > 0 && h->types_seen != 0, "nothing was published");

    const itest_cert *ic = &h->last;
    const char *root = p->root_pem;
    if (!root) {
        if (!root0)
            root0 = itest_pebble_root(0);
        root = root0;
    }
    const char *why = "";
    CHECK_MSG(c, itest_chain_verifies(ic->chain_pem, root, &why),
              "chain does not verify against Pebble's root: %s", why);
    CHECK_MSG(c, itest_key_matches(ic->chain_pem, ic->key_pem),
              "the installed key is not the leaf's key");
    CHECK_MSG(c, !strcmp(itest_leaf_key_kind(ic->chain_pem), expected_kind(p->key_type)),
              "leaf key is %s, asked for %s", itest_leaf_key_kind(ic->chain_pem),
              expected_kind(p->key_type));
    CHECK(c, itest_leaf_names_are(ic->chain_pem, p->names, p->name_count));
    CHECK_MSG(c, ic->name_count == p->name_count, "install reported %zu names", ic->name_count);
    for (size_t i = 0; i < ic->name_count; i++) {
        size_t j;
        for (j = 0; j < p->name_count; j++)
            if (same_name(ic->names[i], p->names[j]))
                break;
        CHECK_MSG(c, j < p->name_count, "install reported unexpected name %s", ic->names[i]);
    }
    char *root_cn = itest_subject_cn(root);
    CHECK_MSG(c, !strcmp(ic->issuer, root_cn), "issuer \"%s\", root is \"%s\"", ic->issuer, root_cn);
    char *top = itest_top_issuer_cn(ic->chain_pem);
    CHECK_MSG(c, !strcmp(top, root_cn), "chain's top issuer \"%s\", root is \"%s\"", top, root_cn);
    CHECK_MSG(c, ic->not_after == leaf_time(ic->chain_pem, 1), "not_after %lld vs leaf %lld",
              (long long)ic->not_after, (long long)leaf_time(ic->chain_pem, 1));
    CHECK_MSG(c, ic->not_before == leaf_time(ic->chain_pem, 0), "not_before %lld vs leaf %lld",
              (long long)ic->not_before, (long long)leaf_time(ic->chain_pem, 0));
    CHECK(c, ic->not_after > (int64_t)time(NULL));
    char *want_id = default_cert_id(p->names[0]);
    CHECK_MSG(c, !strcmp(ic->id, want_id), "certificate id \"%s\", expected \"%s\"", ic->id, want_id);
    free(want_id);
    free(top);
    free(root_cn);
    itest_log("ok: %s issued, %s key, issuer \"%s\"", ic->id, itest_leaf_key_kind(ic->chain_pem),
              ic->issuer);
    return ic;
}

/* ------------------------------------------------------------- snapshots */

static itest_snapshot *snap_cur;
static const char *snap_root;

static int snap_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    itest_snapshot *s = snap_cur;
    const char *rel = path + strlen(snap_root);
    if (!*rel)
        return 0; /* the root itself */
    /* The file storage's lock area is bookkeeping, not stored state
     * (doc/storage.md): locks come and go with every order. */
    if (strncmp(rel, "/.locks", 7) == 0 && (rel[7] == '\0' || rel[7] == '/'))
        return 0;
    s->paths = realloc(s->paths, (s->count + 1) * sizeof *s->paths);
    s->contents = realloc(s->contents, (s->count + 1) * sizeof *s->contents);
    s->lens = realloc(s->lens, (s->count + 1) * sizeof *s->lens);
    char *content = NULL;
    size_t len = 0;
    if (flag == FTW_F && S_ISREG(st->st_mode)) {
        FILE *f = fopen(path, "rb");
        if (!f)
            die("cannot read %s: %s", path, strerror(errno));
        content = malloc((size_t)st->st_size + 1);
        len = fread(content, 1, (size_t)st->st_size, f);
        fclose(f);
        s->paths[s->count] = itest_printf("%s (mode %o)", rel, (unsigned)(st->st_mode & 07777));
    } else {
        s->paths[s->count] = itest_printf("%s/", rel);
    }
    s->contents[s->count] = content;
    s->lens[s->count] = len;
    s->count++;
    return 0;
}

static int cmp_idx(const void *a, const void *b, void *paths)
{
    char **p = paths;
    return strcmp(p[*(const size_t *)a], p[*(const size_t *)b]);
}

void itest_snapshot_take(const char *dir, itest_snapshot *s)
{
    memset(s, 0, sizeof *s);
    snap_cur = s;
    snap_root = dir;
    if (nftw(dir, snap_entry, 16, FTW_PHYS) != 0)
        die("cannot walk %s: %s", dir, strerror(errno));
    /* Sort by path so two walks compare entry by entry. */
    size_t *idx = malloc((s->count + 1) * sizeof *idx);
    for (size_t i = 0; i < s->count; i++)
        idx[i] = i;
    qsort_r(idx, s->count, sizeof *idx, cmp_idx, s->paths);
    char **p = malloc((s->count + 1) * sizeof *p), **c = malloc((s->count + 1) * sizeof *c);
    size_t *l = malloc((s->count + 1) * sizeof *l);
    for (size_t i = 0; i < s->count; i++) {
        p[i] = s->paths[idx[i]];
        c[i] = s->contents[idx[i]];
        l[i] = s->lens[idx[i]];
    }
    free(s->paths);
    free(s->contents);
    free(s->lens);
    free(idx);
    s->paths = p;
    s->contents = c;
    s->lens = l;
}

int itest_snapshot_same(const itest_snapshot *a, const itest_snapshot *b)
{
    size_t i = 0, j = 0;
    int same = 1;
    while (i < a->count || j < b->count) {
        int d = i == a->count ? 1 : j == b->count ? -1 : strcmp(a->paths[i], b->paths[j]);
        if (d < 0) {
            itest_log("storage: %s disappeared", a->paths[i++]);
            same = 0;
        } else if (d > 0) {
            itest_log("storage: %s appeared", b->paths[j++]);
            same = 0;
        } else {
            if (a->lens[i] != b->lens[j] ||
                (a->lens[i] && memcmp(a->contents[i], b->contents[j], a->lens[i]))) {
                itest_log("storage: %s changed", a->paths[i]);
                same = 0;
            }
            i++;
            j++;
        }
    }
    return same;
}

void itest_snapshot_free(itest_snapshot *s)
{
    for (size_t i = 0; i < s->count; i++) {
        free(s->paths[i]);
        free(s->contents[i]);
    }
    free(s->paths);
    free(s->contents);
    free(s->lens);
    memset(s, 0, sizeof *s);
}

static const char *copy_from, *copy_to;

static int copy_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    char *dst = itest_printf("%s%s", copy_to, path + strlen(copy_from));
    if (flag == FTW_D) {
        if (mkdir(dst, st->st_mode & 07777) != 0 && errno != EEXIST)
            die("mkdir %s: %s", dst, strerror(errno));
    } else if (flag == FTW_F && S_ISREG(st->st_mode)) {
        int in = open(path, O_RDONLY);
        int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, st->st_mode & 07777);
        char buf[8192];
        ssize_t n;
        if (in < 0 || out < 0)
            die("copy %s -> %s: %s", path, dst, strerror(errno));
        while ((n = read(in, buf, sizeof buf)) > 0)
            if (write(out, buf, (size_t)n) != n)
                die("write %s: %s", dst, strerror(errno));
        close(in);
        close(out);
    }
    free(dst);
    return 0;
}

void itest_copy_tree(const char *from, const char *to)
{
    copy_from = from;
    copy_to = to;
    if (nftw(from, copy_entry, 16, FTW_PHYS) != 0)
        die("cannot copy %s: %s", from, strerror(errno));
}

/* A nonce-fault test proves nothing unless Pebble was rejecting nonces: it
 * says so in its log at start-up (the harness names the log; Pebble does
 * not log each rejection). */
void itest_expect_nonce_rejection(void)
{
    const char *log = getenv("ACME_TEST_PEBBLE_LOG");
    char line[512];
    int found = 0;
    if (!log || !*log) {
        itest_log("ACME_TEST_PEBBLE_LOG not set: cannot confirm nonce rejection is on");
        return;
    }
    FILE *f = fopen(log, "r");
    CHECK_MSG(NULL, f != NULL, "cannot read %s", log);
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "reject 50% of good nonces") != NULL;
    fclose(f);
    CHECK_MSG(NULL, found, "Pebble does not say it rejects 50%% of nonces: "
              "run with --env PEBBLE_WFE_NONCEREJECT=50");
}
