/* Fuzz target: what HAProxy's runtime API answers, as the haproxy module
 * reads it (modules/haproxy/haproxy_sock.c: classifying a reply, one line
 * of it for messages, finding a line; haproxy_map.c and haproxy_ssl.c:
 * the http-01 map, "show ssl cert", transactions, crt-lists).
 *
 * The input is a sequence of replies (FUZZ_SEP between them). Each piece
 * goes through the reply readers directly; then the module's operations
 * run with hap_command replaced (the link option --wrap=hap_command) by a
 * stand-in that answers each command with the next piece, so no socket is
 * opened. A piece is a reply as hap_command hands it over: NUL bytes
 * turned into spaces; an empty piece is HAProxy closing without a word.
 *
 * Promises checked: the one-line form has no CR, LF or other control
 * character and fits its buffer; every command the module sends is one
 * line and every payload has no empty line inside (either would let a
 * reply-driven name end the command early); errors and log lines are one
 * line. */
#include <string.h>

#include "fuzz.h"
#include "haproxy.h"

#define T "fuzz_hap_reply"

static fuzz_pieces replies;

int __wrap_hap_command(const hap_sock *s, const char *cmd, const char *payload, char **reply, int *reached,
                       char *err, size_t errlen);
int __wrap_hap_command(const hap_sock *s, const char *cmd, const char *payload, char **reply, int *reached,
                       char *err, size_t errlen)
{
    (void)s;
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "%s: command `%s`%s\n", T, cmd, payload ? " with a payload" : "");
    FUZZ_CHECK(T, !strpbrk(cmd, "\r\n"), "a command of more than one line");
    FUZZ_CHECK(T, !payload || !strstr(payload, "\n\n"), "an empty line inside a payload");
    *reply = NULL;
    *reached = 0;
    const uint8_t *p;
    size_t n;
    if (!fuzz_next_piece(&replies, &p, &n)) {
        snprintf(err, errlen, "fuzz: no more replies");
        return ACME_E_NETWORK;
    }
    *reached = 1;
    if (n == 0) {
        snprintf(err, errlen, "HAProxy closed the admin connection without an answer");
        return ACME_E_NETWORK;
    }
    char *r = fuzz_strndup(p, n);
    for (size_t i = 0; i < n; i++)
        if (r[i] == '\0')
            r[i] = ' ';
    *reply = r;
    return ACME_OK;
}

static void host_log(void *ud, acme_log_level level, const char *msg)
{
    (void)ud;
    (void)level;
    FUZZ_CHECK(T, !strpbrk(msg, "\r\n"), "a log line of more than one line");
}

static void check_reply(const char *r)
{
    (void)hap_classify(r);
    char line[300];
    hap_reply_line(r, line, sizeof(line));
    FUZZ_CHECK(T, strlen(line) < sizeof(line), "one-line form fits");
    for (const char *c = line; *c; c++)
        FUZZ_CHECK(T, (unsigned char)*c >= 0x20, "one-line form has no control character");
    char tiny[4];
    hap_reply_line(r, tiny, sizeof(tiny));
    FUZZ_CHECK(T, strlen(tiny) < sizeof(tiny), "one-line form fits a small buffer");
    (void)hap_reply_has_line(r, "Success!");
    (void)hap_reply_has_line(r, "");
    (void)hap_word_ok(r);
}

static void check_err(const hap *h)
{
    FUZZ_CHECK(T, !strpbrk(h->err, "\r\n"), "an error of more than one line");
    FUZZ_CHECK(T, memchr(h->err, '\0', sizeof(h->err)) != NULL, "error is terminated");
}

static const char *const cfg_keys[] = {"socket", "map", "cert-dir", "crt-list", "alpn-crt-list"};
static const char *const cfg_values[] = {"/nonexistent/haproxy.sock", "/etc/haproxy/acme.map",
                                         "/nonexistent/certs", "/etc/haproxy/crt-list.txt",
                                         "/etc/haproxy/alpn.list"};

static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n";
static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\nMIIBAA==\n-----END PRIVATE KEY-----\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_pieces it;
    fuzz_pieces_init(&it, data, size);
    const uint8_t *p;
    size_t n;
    while (fuzz_next_piece(&it, &p, &n)) {
        char *r = fuzz_strndup(p, n);
        for (size_t i = 0; i < n; i++)
            if (r[i] == '\0')
                r[i] = ' ';
        check_reply(r);
        free(r);
    }

    hap h;
    memset(&h, 0, sizeof(h));
    h.host.size = sizeof(h.host);
    h.host.log = host_log;
    char err[256];
    if (hap_configure(&h, cfg_keys, cfg_values, 5, err, sizeof(err)) != ACME_OK)
        abort();
    fuzz_pieces_init(&replies, data, size);
    (void)hap_map_publish(&h, "tok_en-1", "tok_en-1.thumb");
    check_err(&h);
    (void)hap_map_unpublish(&h, "tok_en-1");
    check_err(&h);
    (void)hap_alpn_publish(&h, "fuzz.test", cert_pem, key_pem);
    check_err(&h);
    (void)hap_alpn_unpublish(&h, "fuzz.test");
    check_err(&h);
    hap_config_free(&h);
    return 0;
}
