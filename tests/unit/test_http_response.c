/* Tests for the HTTP response (headers, Link, Retry-After, caps) and for
 * the libcurl transport against fake_https_server: a GnuTLS test stand-in
 * on 127.0.0.1 that answers fixed responses, some of them deliberately
 * faulty. No traffic leaves the loopback interface. */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <acme/error.h>

#include "http.h"
#include "transport_curl.h"

/* ------------------------------------------------------------------ */
/* Response object and parsers                                         */
/* ------------------------------------------------------------------ */

static void add(acme_http_response *r, const char *name, const char *value)
{
    assert_int_equal(acme_http_response_add_header(r, name, strlen(name), value, strlen(value)),
                     ACME_OK);
}

static void test_header_lookup(void **state)
{
    (void)state;
    acme_http_response r;
    http_response_init(&r, 0);
    add(&r, "Replay-Nonce", "  abc-123 \t");
    add(&r, "content-TYPE", "application/json\r\n");
    add(&r, "X-Dup", "first");
    add(&r, "x-dup", "second");
    /* Not NUL-terminated input, as a transport may pass a slice of a line. */
    const char line[] = "Location: https://ca/acct/1XYZ";
    assert_int_equal(acme_http_response_add_header(&r, line, 8, line + 9, 18), ACME_OK);

    assert_string_equal(http_response_header(&r, "replay-nonce"), "abc-123");
    assert_string_equal(http_response_header(&r, "Content-Type"), "application/json");
    assert_string_equal(http_response_header(&r, "X-DUP"), "first");
    assert_string_equal(http_response_header(&r, "location"), "https://ca/acct/1");
    assert_null(http_response_header(&r, "Retry-After"));
    assert_null(http_response_header(&r, "Replay"));
    /* Empty value is a value. */
    add(&r, "X-Empty", "   ");
    assert_string_equal(http_response_header(&r, "x-empty"), "");
    http_response_clear(&r);
}

static void test_header_rejects(void **state)
{
    (void)state;
    acme_http_response r;
    http_response_init(&r, 0);
    assert_int_equal(acme_http_response_add_header(&r, "", 0, "v", 1), ACME_E_PROTOCOL);
    assert_int_equal(acme_http_response_add_header(&r, "Bad Name", 8, "v", 1), ACME_E_PROTOCOL);
    assert_int_equal(acme_http_response_add_header(&r, "A:B", 3, "v", 1), ACME_E_PROTOCOL);
    assert_int_equal(acme_http_response_add_header(&r, "X", 1, "a\r\nSet-Cookie: x", 17),
                     ACME_E_PROTOCOL);
    assert_int_equal(acme_http_response_add_header(&r, "X", 1, "a\0b", 3), ACME_E_PROTOCOL);
    assert_int_equal(acme_http_response_add_header(NULL, "X", 1, "v", 1), ACME_E_INVALID_ARG);
    assert_int_equal(acme_http_response_add_header(&r, NULL, 1, "v", 1), ACME_E_INVALID_ARG);
    assert_int_equal(r.header_count, 0);
    http_response_clear(&r);
}

static void test_header_caps(void **state)
{
    (void)state;
    acme_http_response r;
    http_response_init(&r, 0);
    char name[32];
    for (int i = 0; i < HTTP_MAX_HEADERS; i++) {
        snprintf(name, sizeof(name), "X-H%d", i);
        add(&r, name, "v");
    }
    assert_int_equal(acme_http_response_add_header(&r, "X-One-More", 10, "v", 1),
                     ACME_E_TOO_LARGE);
    assert_int_equal(r.header_count, HTTP_MAX_HEADERS);
    assert_string_equal(http_response_header(&r, "x-h99"), "v");
    http_response_clear(&r);
    assert_int_equal(r.header_count, 0);
    assert_null(r.headers);

    /* One field: name + value at most HTTP_MAX_HEADER_BYTES. */
    size_t big = HTTP_MAX_HEADER_BYTES;
    char *v = malloc(big + 1);
    assert_non_null(v);
    memset(v, 'a', big + 1);
    assert_int_equal(acme_http_response_add_header(&r, "X", 1, v, big - 1), ACME_OK);
    assert_int_equal(acme_http_response_add_header(&r, "X", 1, v, big), ACME_E_TOO_LARGE);
    assert_int_equal(acme_http_response_add_header(&r, v, big + 1, "v", 1), ACME_E_TOO_LARGE);
    free(v);
    http_response_clear(&r);
}

static void test_body_cap(void **state)
{
    (void)state;
    acme_http_response r;
    http_response_init(&r, 10);
    assert_int_equal(acme_http_response_append_body(&r, "123456", 6), ACME_OK);
    assert_int_equal(acme_http_response_append_body(&r, "78901", 5), ACME_E_TOO_LARGE);
    assert_int_equal(r.body.len, 6);
    assert_int_equal(acme_http_response_append_body(&r, "7890", 4), ACME_OK);
    assert_memory_equal(r.body.data, "1234567890", 10);
    assert_int_equal(acme_http_response_append_body(&r, "x", 1), ACME_E_TOO_LARGE);
    assert_int_equal(acme_http_response_append_body(&r, NULL, 0), ACME_OK);
    assert_int_equal(acme_http_response_append_body(&r, NULL, 1), ACME_E_INVALID_ARG);
    http_response_clear(&r);
    /* The cap survives a clear. */
    assert_int_equal(r.body.limit, 10);
    assert_int_equal(r.body.len, 0);
    http_response_clear(&r);
}

static void test_status_and_error(void **state)
{
    (void)state;
    acme_http_response r;
    http_response_init(&r, 0);
    assert_int_equal(r.status, 0);
    assert_int_equal(acme_http_response_set_status(&r, 99), ACME_E_INVALID_ARG);
    assert_int_equal(acme_http_response_set_status(&r, 1000), ACME_E_INVALID_ARG);
    assert_int_equal(acme_http_response_set_status(&r, 201), ACME_OK);
    assert_int_equal(r.status, 201);
    assert_int_equal(acme_http_response_set_error(&r, "connect refused"), ACME_OK);
    assert_string_equal(r.error, "connect refused");
    assert_int_equal(acme_http_response_set_error(&r, "second"), ACME_OK);
    assert_string_equal(r.error, "second");
    assert_int_equal(acme_http_response_set_error(&r, NULL), ACME_OK);
    assert_null(r.error);
    char longmsg[5000];
    memset(longmsg, 'e', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    assert_int_equal(acme_http_response_set_error(&r, longmsg), ACME_OK);
    assert_true(strlen(r.error) <= 1024);
    http_response_clear(&r);
    assert_null(r.error);
    assert_int_equal(r.status, 0);
}

static void expect_links(const acme_http_response *r, const char *rel,
                         size_t n, const char *const *want)
{
    char **urls = (char **)0x1;
    size_t count = 99;
    assert_int_equal(http_response_links(r, rel, &urls, &count), ACME_OK);
    assert_int_equal(count, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(urls[i], want[i]);
    http_links_free(urls, count);
}

static void test_links(void **state)
{
    (void)state;
    acme_http_response r;
    http_response_init(&r, 0);
    add(&r, "Link", "<https://ca/1>;rel=\"up\", <https://ca/2>; rel=alternate");
    add(&r, "Content-Type", "text/plain");
    add(&r, "link", "<https://ca/3>; rel=\"alternate up\"");
    /* Commas and semicolons inside the URI and inside a quoted title. */
    add(&r, "Link", "<https://ca/4,x;y>; title=\"a, b; <c>\" ; rel=up");
    /* Parameter name and relation type are case-insensitive. */
    add(&r, "LINK", "<https://ca/5>; REL=\"UP\"");
    /* Only the first rel counts. */
    add(&r, "Link", "<https://ca/6>; rel=next; rel=up");
    /* A malformed link-value does not spoil the rest of the header. */
    add(&r, "Link", "garbage, <https://ca/7>;rel=up, <https://ca/8> junk, <https://ca/9>; rel=up;");
    /* Escapes in a quoted-string; a parameter without a value. */
    add(&r, "Link", "<https://ca/10>; anchor; rel=\"u\\p\"");
    /* Unterminated quote: that link is dropped. */
    add(&r, "Link", "<https://ca/11>; rel=\"up");
    /* Unterminated URI: nothing from there on. */
    add(&r, "Link", "<https://ca/12; rel=up");

    static const char *const up[] = {
        "https://ca/1", "https://ca/3", "https://ca/4,x;y", "https://ca/5",
        "https://ca/7", "https://ca/9", "https://ca/10",
    };
    expect_links(&r, "up", 7, up);
    static const char *const alt[] = { "https://ca/2", "https://ca/3" };
    expect_links(&r, "alternate", 2, alt);
    static const char *const next[] = { "https://ca/6" };
    expect_links(&r, "next", 1, next);
    expect_links(&r, "index", 0, NULL);

    char **urls;
    size_t count;
    assert_int_equal(http_response_links(&r, NULL, &urls, &count), ACME_E_INVALID_ARG);
    http_response_clear(&r);
    expect_links(&r, "up", 0, NULL);
}

static long long retry_after(const char *v)
{
    acme_http_response r;
    http_response_init(&r, 0);
    if (v)
        add(&r, "Retry-After", v);
    long long ms = http_response_retry_after_ms(&r);
    http_response_clear(&r);
    return ms;
}

/* An IMF-fixdate for t, built by hand: strftime's names follow the locale. */
static void imf_date(time_t t, char *out, size_t n)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const mons[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(retry_after(NULL), -1);
    assert_int_equal(retry_after("120"), 120000);
    assert_int_equal(retry_after(" 7 "), 7000);
    assert_int_equal(retry_after("0"), 0);
    assert_int_equal(retry_after("-1"), -1);
    assert_int_equal(retry_after("1.5"), -1);
    assert_int_equal(retry_after("12s"), -1);
    assert_int_equal(retry_after("soon"), -1);
    assert_int_equal(retry_after(""), -1);
    /* Absurd values are clamped to 30 days at the parse (issue 10 #8):
     * 4294967296 s used to become 0 after the cast to unsigned. */
    const long long max_ms = 30LL * 24 * 3600 * 1000;
    assert_true(retry_after("99999999999999999999999999") == max_ms);
    assert_true(retry_after("99999999999999999999") == max_ms);
    assert_true(retry_after("4294967296") == max_ms);
    assert_true(retry_after("2592000") == max_ms);
    assert_true(retry_after("2591999") == max_ms - 1000);
    assert_int_equal(retry_after("-5"), -1);
    assert_int_equal(retry_after("-99999999999999999999"), -1);

    /* Past dates in all three HTTP-date forms mean "now". */
    assert_int_equal(retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), 0);
    assert_int_equal(retry_after("Sunday, 06-Nov-94 08:49:37 GMT"), 0);
    assert_int_equal(retry_after("Sun Nov  6 08:49:37 1994"), 0);

    char d[64];
    time_t now = time(NULL);
    imf_date(now + 100, d, sizeof(d));
    long long ms = retry_after(d);
    assert_true(ms >= 98000 && ms <= 100000);

    /* A date 20 days ahead: checks the whole conversion, not just "positive". */
    imf_date(now + 20 * 86400, d, sizeof(d));
    ms = retry_after(d);
    long long want = (now + 20 * 86400 - (long long)time(NULL)) * 1000;
    assert_true(ms >= want - 2000 && ms <= want + 2000);
    /* A far date is clamped like a far delay. */
    assert_true(retry_after("Fri, 01 Jan 2100 00:00:00 GMT") == max_ms);
    assert_true(retry_after("Fri Jan  1 00:00:00 2100") == max_ms);

    assert_int_equal(retry_after("Sun, 06 Nov 1994 08:49:37 PST"), -1);
    assert_int_equal(retry_after("Sun, 32 Nov 1994 08:49:37 GMT"), -1);
    assert_int_equal(retry_after("Sun, 06 Foo 1994 08:49:37 GMT"), -1);
    assert_int_equal(retry_after("Sun, 06 Nov 1994 25:49:37 GMT"), -1);
    assert_int_equal(retry_after("Sun, 06 Nov 1994 08:49:37 GMT x"), -1);
    assert_int_equal(retry_after("Sun, 6 Nov 1994 08:49:37 GMT"), -1);

    /* Whole seconds, rounded up, for the callers that keep seconds: the
     * clamp keeps the sum and the quotient inside an unsigned. */
    acme_http_response r;
    const struct { const char *v; unsigned s; } secs[] = {
        { "4294967296", 2592000u }, { "99999999999999999999", 2592000u }, { "7", 7u },
        { "0", 0u }, { "-1", 0u }, { "soon", 0u }, { "Fri, 01 Jan 2100 00:00:00 GMT", 2592000u },
    };
    for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
        http_response_init(&r, 0);
        add(&r, "Retry-After", secs[i].v);
        assert_int_equal(http_response_retry_after_s(&r), secs[i].s);
        http_response_clear(&r);
    }
    http_response_init(&r, 0);
    assert_int_equal(http_response_retry_after_s(&r), 0);
    http_response_clear(&r);
}

/* ------------------------------------------------------------------ */
/* fake_https_server: a TLS test stand-in on 127.0.0.1                 */
/* ------------------------------------------------------------------ */

typedef struct pem_pair {
    char *cert; /* PEM */
    char *key;  /* PEM */
} pem_pair;

typedef struct test_pki {
    pem_pair ca;        /* trusted by the tests that should succeed */
    pem_pair leaf;      /* the server's certificate, issued by ca */
    pem_pair other_ca;  /* an unrelated CA: trusting it must fail */
    char *chain;        /* leaf + ca, what the server presents */
    char ca_file[64];   /* ca.cert written to disk */
} test_pki;

static test_pki pki;

static char *datum_str(gnutls_datum_t *d)
{
    char *s = malloc(d->size + 1);
    assert_non_null(s);
    memcpy(s, d->data, d->size);
    s[d->size] = '\0';
    gnutls_free(d->data);
    return s;
}

/* A certificate for cn/127.0.0.1, signed by issuer (or self-signed). */
static void make_cert(pem_pair *out, const char *cn, int is_ca, const pem_pair *issuer)
{
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(
                         key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                     0);
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
    unsigned char serial[8];
    assert_int_equal(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)), 0);
    serial[0] &= 0x7f;
    assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), 0);
    time_t now = time(NULL);
    assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 3600), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 86400), 0);
    assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                                   (unsigned)strlen(cn)),
                     0);
    assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, is_ca, -1), 0);
    if (is_ca) {
        assert_int_equal(gnutls_x509_crt_set_key_usage(
                             crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
                         0);
    } else {
        static const unsigned char lo[4] = { 127, 0, 0, 1 };
        assert_int_equal(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
        assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, lo,
                                                              sizeof(lo), GNUTLS_FSAN_SET),
                         0);
        assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0),
                         0);
    }
    unsigned char kid[64];
    size_t kid_len = sizeof(kid);
    assert_int_equal(gnutls_x509_crt_get_key_id(crt, 0, kid, &kid_len), 0);
    assert_int_equal(gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len), 0);

    if (issuer) {
        gnutls_x509_crt_t icrt;
        gnutls_x509_privkey_t ikey;
        gnutls_datum_t c = { (unsigned char *)issuer->cert, (unsigned)strlen(issuer->cert) };
        gnutls_datum_t k = { (unsigned char *)issuer->key, (unsigned)strlen(issuer->key) };
        assert_int_equal(gnutls_x509_crt_init(&icrt), 0);
        assert_int_equal(gnutls_x509_privkey_init(&ikey), 0);
        assert_int_equal(gnutls_x509_crt_import(icrt, &c, GNUTLS_X509_FMT_PEM), 0);
        assert_int_equal(gnutls_x509_privkey_import(ikey, &k, GNUTLS_X509_FMT_PEM), 0);
        assert_int_equal(gnutls_x509_crt_sign2(crt, icrt, ikey, GNUTLS_DIG_SHA256, 0), 0);
        gnutls_x509_crt_deinit(icrt);
        gnutls_x509_privkey_deinit(ikey);
    } else {
        assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
    }
    gnutls_datum_t d;
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
    out->cert = datum_str(&d);
    assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d), 0);
    out->key = datum_str(&d);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
}

typedef struct fake_https_server {
    int listen_fd;
    int port;
    pthread_t thread;
    gnutls_certificate_credentials_t cred;
    atomic_int stop;
    atomic_int accepts;
    atomic_int requests;
    pthread_mutex_t mu; /* guards the "last request" record */
    char last_method[16];
    char last_path[128];
    char last_ctype[128];
    char last_ua[128];
    int last_expect;
    long last_body_len;
} fake_https_server;

static fake_https_server srv;

/* Wait until the connection has data. 0 means give up on it: the test is
 * ending, or a new connection is waiting (the client abandoned this one). */
static int conn_wait(gnutls_session_t s, int fd)
{
    if (gnutls_record_check_pending(s))
        return 1;
    for (;;) {
        if (atomic_load(&srv.stop))
            return 0;
        struct pollfd p[2] = { { fd, POLLIN, 0 }, { srv.listen_fd, POLLIN, 0 } };
        int n = poll(p, 2, 50);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return 0;
        if (p[0].revents)
            return 1;
        if (p[1].revents & POLLIN)
            return 0;
    }
}

static ssize_t conn_recv(gnutls_session_t s, int fd, char *buf, size_t len)
{
    if (!conn_wait(s, fd))
        return -1;
    ssize_t n;
    do
        n = gnutls_record_recv(s, buf, len);
    while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
    return n > 0 ? n : -1;
}

static int conn_send(gnutls_session_t s, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = gnutls_record_send(s, p, len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

__attribute__((format(printf, 2, 3)))
static int conn_sendf(gnutls_session_t s, const char *fmt, ...)
{
    char buf[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return -1;
    return conn_send(s, buf, (size_t)n);
}

/* Case-insensitive "Name:" value of a request header, copied. */
static void req_header(const char *head, const char *name, char *out, size_t n)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t len = e ? (size_t)(e - v) : strlen(v);
            if (len >= n)
                len = n - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return;
        }
    }
}

/* Answer one request. Returns 0 to keep the connection, -1 to drop it. */
static int answer(gnutls_session_t s, const char *method, const char *path,
                  const char *body, long body_len)
{
    if (strcmp(path, "/ok") == 0)
        return conn_sendf(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Replay-Nonce: abc\r\n"
                             "Link: <https://127.0.0.1/dir>;rel=\"index\"\r\n"
                             "Content-Length: 5\r\n\r\n%s",
                          strcmp(method, "HEAD") == 0 ? "" : "hello");
    if (strcmp(path, "/nonce") == 0)
        return conn_sendf(s, "HTTP/1.1 200 OK\r\nReplay-Nonce: n-%d\r\n"
                             "Cache-Control: no-store\r\nContent-Length: 0\r\n\r\n",
                          atomic_load(&srv.requests));
    if (strcmp(path, "/echo") == 0) {
        if (conn_sendf(s, "HTTP/1.1 201 Created\r\nX-Body-Len: %ld\r\n"
                          "Content-Length: %ld\r\n\r\n",
                       body_len, body_len < 1000 ? body_len : 0L))
            return -1;
        return body_len < 1000 ? conn_send(s, body, (size_t)body_len) : 0;
    }
    if (strcmp(path, "/redirect") == 0)
        return conn_sendf(s, "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n");
    if (strcmp(path, "/big") == 0 && strcmp(method, "HEAD") == 0)
        return conn_sendf(s, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    if (strcmp(path, "/big") == 0 || strcmp(path, "/bigchunked") == 0) {
        int chunked = strcmp(path, "/bigchunked") == 0;
        if (chunked ? conn_sendf(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    : conn_sendf(s, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"))
            return -1;
        char chunk[4000];
        memset(chunk, 'a', sizeof(chunk));
        for (int i = 0; i < 25; i++) {
            if (chunked && conn_sendf(s, "%zx\r\n", sizeof(chunk)))
                return -1;
            if (conn_send(s, chunk, sizeof(chunk)))
                return -1;
            if (chunked && conn_send(s, "\r\n", 2))
                return -1;
        }
        return chunked ? conn_sendf(s, "0\r\n\r\n") : 0;
    }
    if (strcmp(path, "/cut") == 0) {
        /* Promise 1000 bytes, deliver 10, then vanish without close_notify. */
        conn_sendf(s, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
        return -1;
    }
    if (strcmp(path, "/slow") == 0) {
        for (int i = 0; i < 100 && !atomic_load(&srv.stop); i++)
            usleep(20000);
        return -1;
    }
    if (strcmp(path, "/continue") == 0)
        return conn_sendf(s, "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
                             "HTTP/1.1 201 Created\r\nLocation: https://127.0.0.1/acct/1\r\n"
                             "Content-Length: 2\r\n\r\nok");
    if (strcmp(path, "/fold") == 0)
        return conn_sendf(s, "HTTP/1.1 200 OK\r\nX-Folded: first\r\n \t second\r\n"
                             "X-After: 1\r\nContent-Length: 0\r\n\r\n");
    if (strcmp(path, "/many") == 0) {
        if (conn_sendf(s, "HTTP/1.1 200 OK\r\n"))
            return -1;
        for (int i = 0; i < 150; i++)
            if (conn_sendf(s, "X-Filler-%d: %d\r\n", i, i))
                return -1;
        return conn_sendf(s, "Content-Length: 0\r\n\r\n");
    }
    return conn_sendf(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
}

static void serve_conn(int fd)
{
    gnutls_session_t s;
    if (gnutls_init(&s, GNUTLS_SERVER) < 0) {
        close(fd);
        return;
    }
    gnutls_set_default_priority(s);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, srv.cred);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 5000);
    int rc;
    do
        rc = gnutls_handshake(s);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0)
        goto done; /* e.g. the client rejected our certificate */

    char *req = malloc(1 << 20);
    if (!req)
        goto done;
    for (;;) {
        size_t have = 0;
        char *end = NULL;
        req[0] = '\0';
        while (!(end = strstr(req, "\r\n\r\n"))) {
            if (have + 1 >= (1 << 20))
                goto out;
            ssize_t n = conn_recv(s, fd, req + have, (1 << 20) - 1 - have);
            if (n < 0)
                goto out;
            have += (size_t)n;
            req[have] = '\0';
        }
        *end = '\0'; /* req is the head now */
        char method[16] = "", path[128] = "", clen[32], ctype[128], ua[128], expect[64];
        sscanf(req, "%15s %127s", method, path);
        req_header(req, "Content-Length", clen, sizeof(clen));
        req_header(req, "Content-Type", ctype, sizeof(ctype));
        req_header(req, "User-Agent", ua, sizeof(ua));
        req_header(req, "Expect", expect, sizeof(expect));
        long body_len = clen[0] ? atol(clen) : 0;
        size_t head_len = (size_t)(end - req) + 4;
        if (body_len < 0 || (size_t)body_len > (1 << 20) - 1 - head_len)
            goto out;
        size_t body_have = have - head_len;
        while (body_have < (size_t)body_len) {
            ssize_t n = conn_recv(s, fd, req + head_len + body_have,
                                  (size_t)body_len - body_have);
            if (n < 0)
                goto out;
            body_have += (size_t)n;
        }
        pthread_mutex_lock(&srv.mu);
        snprintf(srv.last_method, sizeof(srv.last_method), "%s", method);
        snprintf(srv.last_path, sizeof(srv.last_path), "%s", path);
        snprintf(srv.last_ctype, sizeof(srv.last_ctype), "%s", ctype);
        snprintf(srv.last_ua, sizeof(srv.last_ua), "%s", ua);
        srv.last_expect = expect[0] != '\0';
        srv.last_body_len = body_len;
        pthread_mutex_unlock(&srv.mu);
        atomic_fetch_add(&srv.requests, 1);
        /* libcurl does not pipeline: the next read starts afresh. */
        if (answer(s, method, path, req + head_len, body_len) != 0)
            goto out;
    }
out:
    free(req);
done:
    gnutls_deinit(s);
    close(fd); /* abrupt: no close_notify, as a crashing server would */
}

static void *server_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&srv.stop)) {
        struct pollfd p = { srv.listen_fd, POLLIN, 0 };
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(srv.listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&srv.accepts, 1);
        serve_conn(fd);
    }
    return NULL;
}

static int server_start(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.mu, NULL);
    assert_int_equal(gnutls_certificate_allocate_credentials(&srv.cred), 0);
    gnutls_datum_t c = { (unsigned char *)pki.chain, (unsigned)strlen(pki.chain) };
    gnutls_datum_t k = { (unsigned char *)pki.leaf.key, (unsigned)strlen(pki.leaf.key) };
    assert_true(gnutls_certificate_set_x509_key_mem(srv.cred, &c, &k, GNUTLS_X509_FMT_PEM) >= 0);

    srv.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(srv.listen_fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only */
    a.sin_port = 0;
    assert_int_equal(bind(srv.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(srv.listen_fd, 16), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(srv.listen_fd, (struct sockaddr *)&a, &al), 0);
    srv.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&srv.thread, NULL, server_main, NULL), 0);
    return 0;
}

static int server_stop(void **state)
{
    (void)state;
    atomic_store(&srv.stop, 1);
    pthread_join(srv.thread, NULL);
    close(srv.listen_fd);
    gnutls_certificate_free_credentials(srv.cred);
    pthread_mutex_destroy(&srv.mu);
    return 0;
}

static int pki_setup(void **state)
{
    (void)state;
    make_cert(&pki.ca, "libacme test CA", 1, NULL);
    make_cert(&pki.leaf, "127.0.0.1", 0, &pki.ca);
    make_cert(&pki.other_ca, "unrelated test CA", 1, NULL);
    size_t n = strlen(pki.leaf.cert) + strlen(pki.ca.cert) + 1;
    pki.chain = malloc(n);
    assert_non_null(pki.chain);
    snprintf(pki.chain, n, "%s%s", pki.leaf.cert, pki.ca.cert);
    snprintf(pki.ca_file, sizeof(pki.ca_file), "/tmp/libacme-test-ca-XXXXXX");
    int fd = mkstemp(pki.ca_file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, pki.ca.cert, strlen(pki.ca.cert)), (ssize_t)strlen(pki.ca.cert));
    close(fd);
    return 0;
}

static int pki_teardown(void **state)
{
    (void)state;
    unlink(pki.ca_file);
    pem_pair *all[] = { &pki.ca, &pki.leaf, &pki.other_ca };
    for (size_t i = 0; i < 3; i++) {
        free(all[i]->cert);
        free(all[i]->key);
    }
    free(pki.chain);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Transport tests                                                     */
/* ------------------------------------------------------------------ */

static void *transport_with_pem(const char *pem)
{
    transport_curl_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.ca_pem = pem;
    cfg.ca_pem_len = strlen(pem);
    cfg.connect_timeout_ms = 5000;
    cfg.total_timeout_ms = 10000;
    void *t = NULL;
    assert_int_equal(transport_curl_new(&cfg, &t), ACME_OK);
    return t;
}

static int do_request(void *t, const char *method, const char *path, const char *body,
                      size_t body_len, unsigned timeout_ms, size_t limit,
                      acme_http_response *resp)
{
    char url[256];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", srv.port, path);
    acme_http_request req;
    memset(&req, 0, sizeof(req));
    req.size = sizeof(req);
    req.method = method;
    req.url = url;
    if (body) {
        req.content_type = "application/jose+json";
        req.body = body;
        req.body_len = body_len;
    }
    req.timeout_ms = timeout_ms;
    http_response_init(resp, limit);
    return transport_curl_ops.perform(t, &req, resp);
}

static void check_ok_response(acme_http_response *r)
{
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body.len, 5);
    assert_memory_equal(r->body.data, "hello", 5);
    assert_string_equal(http_response_header(r, "replay-nonce"), "abc");
    static const char *const idx[] = { "https://127.0.0.1/dir" };
    expect_links(r, "index", 1, idx);
    assert_null(r->error);
}

static void test_trust_ca_file(void **state)
{
    (void)state;
    transport_curl_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.ca_file = pki.ca_file;
    void *t = NULL;
    assert_int_equal(transport_curl_new(&cfg, &t), ACME_OK);
    acme_http_response r;
    assert_int_equal(do_request(t, "GET", "/ok", NULL, 0, 0, 4096, &r), ACME_OK);
    check_ok_response(&r);
    http_response_clear(&r);
    transport_curl_free(t);
}

/* How many of our descriptors are the transport's CA memfd. */
static int count_ca_memfds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char p[300], target[256];
        snprintf(p, sizeof(p), "/proc/self/fd/%s", de->d_name);
        ssize_t k = readlink(p, target, sizeof(target) - 1);
        if (k <= 0)
            continue;
        target[k] = '\0';
        n += strstr(target, "memfd:libacme-ca") != NULL;
    }
    closedir(d);
    return n;
}

static void test_trust_ca_pem(void **state)
{
    (void)state;
    assert_int_equal(count_ca_memfds(), 0);
    void *t = transport_with_pem(pki.ca.cert);
    /* libcurl+GnuTLS without CAINFO_BLOB support goes through a memfd. */
    int memfds = count_ca_memfds();
    assert_true(memfds == 0 || memfds == 1);
    print_message("in-memory PEM trust via %s\n", memfds ? "memfd" : "CURLOPT_CAINFO_BLOB");
    acme_http_response r;
    assert_int_equal(do_request(t, "GET", "/ok", NULL, 0, 0, 4096, &r), ACME_OK);
    check_ok_response(&r);
    http_response_clear(&r);
    /* Trust is read per connection, not per request: a second request on
     * the same connection works the same. */
    assert_int_equal(do_request(t, "GET", "/ok", NULL, 0, 0, 4096, &r), ACME_OK);
    check_ok_response(&r);
    http_response_clear(&r);
    transport_curl_free(t);
    assert_int_equal(count_ca_memfds(), 0); /* closed with the transport */
}

static void test_untrusted_cert(void **state)
{
    (void)state;
    void *t = transport_with_pem(pki.other_ca.cert);
    acme_http_response r;
    assert_int_equal(do_request(t, "GET", "/ok", NULL, 0, 0, 4096, &r), ACME_E_TLS);
    assert_non_null(r.error);
    print_message("untrusted: %s\n", r.error);
    assert_non_null(strstr(r.error, "127.0.0.1"));
    assert_int_equal(atomic_load(&srv.requests), 0);
    http_response_clear(&r);
    transport_curl_free(t);

    /* The system store does not know our test CA either. */
    assert_int_equal(transport_curl_new(NULL, &t), ACME_OK);
    assert_int_equal(do_request(t, "GET", "/ok", NULL, 0, 0, 4096, &r), ACME_E_TLS);
    http_response_clear(&r);
    transport_curl_free(t);
}

static void test_bad_config(void **state)
{
    (void)state;
    transport_curl_config cfg;
    void *t = (void *)0x1;
    memset(&cfg, 0, sizeof(cfg));
    cfg.ca_pem = "not a certificate";
    cfg.ca_pem_len = strlen(cfg.ca_pem);
    assert_int_equal(transport_curl_new(&cfg, &t), ACME_E_INVALID_ARG);
    assert_null(t);
    cfg.ca_pem = pki.ca.cert;
    cfg.ca_pem_len = strlen(pki.ca.cert);
    cfg.ca_file = pki.ca_file;
    assert_int_equal(transport_curl_new(&cfg, &t), ACME_E_INVALID_ARG);
    memset(&cfg, 0, sizeof(cfg));
    cfg.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(transport_curl_new(&cfg, &t), ACME_E_INVALID_ARG);
}

static void test_body_cap_declared(void **state)
{
    (void)state;
    void *t = transport_with_pem(pki.ca.cert);
    acme_http_response r;
    assert_int_equal(do_request(t, "GET", "/big", NULL, 0, 0, 1000, &r), ACME_E_TOO_LARGE);
    assert_true(r.body.len <= 1000);
    assert_non_null(r.error);
    print_message("declared: %s\n", r.error);
    http_response_clear(&r);
    /* HEAD has no body: a large Content-Length is only a number there. */
    assert_int_equal(do_request(t, "HEAD", "/big", NULL, 0, 0, 1000, &r), ACME_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    http_response_clear(&r);
    transport_curl_free(t);
}

static void test_body_cap_streamed(void **state)
{
    (void)state;
    void *t = transport_with_pem(pki.ca.cert);
    acme_http_response r;
    assert_int_equal(do_request(t, "GET", "/bigchunked", NULL, 0, 0, 1000, &r), ACME_E_TOO_LARGE);
    assert_true(r.body.len <= 1000);
    http_response_clear(&r);
    /* The handle is still usable afterwards. */
    assert_int_equal(do_request(t, "GET", "/ok", NULL, 0, 0, 1000, &r), ACME_OK);
    check_ok_response(&r);
    http_response_clear(&r);
    transport_curl_free(t);
}

static void test_header_flood(void **state)
{
    (void)state;
    void *t = transport_with_pem(pki.ca.cert);
    acme_http_response r;
    assert_int_equal(do_request(t, "GET", "/many", NULL, 0, 0, 1000, &r), ACME_E_TOO_LARGE);
    assert_true(r.header_count <= HTTP_MAX_HEADERS);
    http_response_clear(&r);
    transport_curl_free(t);
}

static void test_cut_mid_response(void **state)
{
    (void)state;
    void *t = transport_with_pem(pki.ca.cert);
    acme_http_response r;
    assert_int_equal(do_request(t, "GET", "/cut", NULL, 0, 0, 4096, &r), ACME_E_NETWORK);
    assert_non_null(r.error);
    print_message("cut: %s\n", r.error);
    assert_non_null(strstr(r.error, "127.0.0.1"));
    http_response_clear(&r);
    transport_curl_free(t);
}

static void test_redirect_not_followed(void **state)
{
    (void)state;
    void *t = transport_with_pem(pki.ca.cert);
    acme_http_response r;
    assert_int_equal(do_request(t, "GET", "/redirect", NULL, 0, 0, 4096, &r), ACME_OK);
    assert_int_equal(r.status, 302);
    assert_string_equal(http_response_header(&r, "Location"), "/ok");
    assert_int_equal(atomic_load(&srv.requests), 1);
    http_response_clear(&r);
    transport_curl_free(t);
}

static void test_keepalive_and_methods(void **state)
{
    (void)state;
    void *t = transport_with_pem(pki.ca.cert);
    acme_http_response r;

    assert_int_equal(do_request(t, "HEAD", "/nonce", NULL, 0, 0, 4096, &r), ACME_OK);
    assert_int_equal(r.status, 200);
    /* The stand-in numbers its nonces by requests seen, this one included. */
    assert_string_equal(http_response_header(&r, "Replay-Nonce"), "n-1");
    assert_int_equal(r.body.len, 0);
    pthread_mutex_lock(&srv.mu);
    assert_string_equal(srv.last_method, "HEAD");
    pthread_mutex_unlock(&srv.mu);
    http_response_clear(&r);

    const char body[] = "{\"protected\":\"x\",\"payload\":\"\",\"signature\":\"y\"}";
    assert_int_equal(do_request(t, "POST", "/echo", body, strlen(body), 0, 4096, &r), ACME_OK);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.body.len, strlen(body));
    assert_memory_equal(r.body.data, body, strlen(body));
    pthread_mutex_lock(&srv.mu);
    assert_string_equal(srv.last_method, "POST");
    assert_string_equal(srv.last_ctype, "application/jose+json");
    assert_true(strncmp(srv.last_ua, "libacme/", 8) == 0);
    pthread_mutex_unlock(&srv.mu);
    http_response_clear(&r);

    /* GET after POST: the method and body must not leak into it. */
    assert_int_equal(do_request(t, "GET", "/ok", NULL, 0, 0, 4096, &r), ACME_OK);
    check_ok_response(&r);
    pthread_mutex_lock(&srv.mu);
    assert_string_equal(srv.last_method, "GET");
    assert_int_equal(srv.last_body_len, 0);
    pthread_mutex_unlock(&srv.mu);
    http_response_clear(&r);

    /* A large POST goes out at once, without waiting for 100-continue. */
    size_t big = 200000;
    char *b = malloc(big);
    assert_non_null(b);
    memset(b, 'x', big);
    assert_int_equal(do_request(t, "POST", "/echo", b, big, 0, 4096, &r), ACME_OK);
    assert_string_equal(http_response_header(&r, "X-Body-Len"), "200000");
    pthread_mutex_lock(&srv.mu);
    assert_false(srv.last_expect);
    pthread_mutex_unlock(&srv.mu);
    free(b);
    http_response_clear(&r);

    assert_int_equal(atomic_load(&srv.requests), 4);
    assert_int_equal(atomic_load(&srv.accepts), 1); /* one connection for all */
    transport_curl_free(t);
}

static void test_timeout(void **state)
{
    (void)state;
    void *t = transport_with_pem(pki.ca.cert);
    acme_http_response r;
    assert_int_equal(do_request(t, "GET", "/slow", NULL, 0, 300, 4096, &r), ACME_E_TIMEOUT);
    assert_non_null(r.error);
    print_message("timeout: %s\n", r.error);
    http_response_clear(&r);
    transport_curl_free(t);
}

static void test_interim_and_fold(void **state)
{
    (void)state;
    void *t = transport_with_pem(pki.ca.cert);
    acme_http_response r;
    assert_int_equal(do_request(t, "GET", "/continue", NULL, 0, 0, 4096, &r), ACME_OK);
    assert_int_equal(r.status, 201);
    assert_string_equal(http_response_header(&r, "Location"), "https://127.0.0.1/acct/1");
    assert_null(http_response_header(&r, "X-Interim"));
    assert_memory_equal(r.body.data, "ok", 2);
    http_response_clear(&r);

    assert_int_equal(do_request(t, "GET", "/fold", NULL, 0, 0, 4096, &r), ACME_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_response_header(&r, "X-Folded"), "first second");
    assert_string_equal(http_response_header(&r, "X-After"), "1");
    http_response_clear(&r);
    transport_curl_free(t);
}

static void test_refused_and_insecure(void **state)
{
    (void)state;
    void *t = transport_with_pem(pki.ca.cert);
    /* A port nobody listens on: bind one, note it, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);

    char url[64], hostport[32];
    snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(url, sizeof(url), "https://%s/", hostport);
    acme_http_request req;
    memset(&req, 0, sizeof(req));
    req.size = sizeof(req);
    req.method = "GET";
    req.url = url;
    acme_http_response r;
    http_response_init(&r, 4096);
    assert_int_equal(transport_curl_ops.perform(t, &req, &r), ACME_E_NETWORK);
    assert_non_null(r.error);
    print_message("refused: %s\n", r.error);
    assert_non_null(strstr(r.error, hostport));
    http_response_clear(&r);

    req.url = "http://127.0.0.1/";
    assert_int_equal(transport_curl_ops.perform(t, &req, &r), ACME_E_INSECURE);
    http_response_clear(&r);
    req.url = "https://127.0.0.1/";
    req.method = "PUT";
    assert_int_equal(transport_curl_ops.perform(t, &req, &r), ACME_E_INVALID_ARG);
    http_response_clear(&r);
    transport_curl_free(t);
}

int main(void)
{
    /* The stand-in server writes to sockets the client may have closed. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest parse_tests[] = {
        cmocka_unit_test(test_header_lookup),
        cmocka_unit_test(test_header_rejects),
        cmocka_unit_test(test_header_caps),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_status_and_error),
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_retry_after),
    };
#define WITH_SERVER(f) cmocka_unit_test_setup_teardown(f, server_start, server_stop)
    const struct CMUnitTest transport_tests[] = {
        WITH_SERVER(test_trust_ca_file),
        WITH_SERVER(test_trust_ca_pem),
        WITH_SERVER(test_untrusted_cert),
        cmocka_unit_test(test_bad_config),
        WITH_SERVER(test_body_cap_declared),
        WITH_SERVER(test_body_cap_streamed),
        WITH_SERVER(test_header_flood),
        WITH_SERVER(test_cut_mid_response),
        WITH_SERVER(test_redirect_not_followed),
        WITH_SERVER(test_keepalive_and_methods),
        WITH_SERVER(test_timeout),
        WITH_SERVER(test_interim_and_fold),
        WITH_SERVER(test_refused_and_insecure),
    };
    int failed = cmocka_run_group_tests_name("http_response", parse_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("transport_curl", transport_tests, pki_setup,
                                          pki_teardown);
    return failed ? 1 : 0;
}
