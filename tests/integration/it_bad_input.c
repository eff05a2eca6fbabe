/* Faults Pebble cannot produce, against fault_acme_server.py (a deliberately
 * broken stand-in, started here on 127.0.0.1): malformed, incomplete,
 * mislabelled, oversized and truncated directories, redirects, and a
 * certificate that does not belong to the CSR's key. Each must fail with
 * its specific code and a message naming what failed, install nothing and
 * leave storage as it was.
 *
 * usage: it_bad_input PYTHON3 fault_acme_server.py */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <jansson.h>

#include "itest.h"

/* ------------------------------------------- throwaway PKI for the stand-in */

static gnutls_x509_privkey_t new_key(void)
{
    gnutls_x509_privkey_t k;
    CHECK(NULL, gnutls_x509_privkey_init(&k) == 0);
    CHECK(NULL, gnutls_x509_privkey_generate(
                    k, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) == 0);
    return k;
}

/* A v3 certificate: a CA when issuer is NULL (self-signed), else a server
 * certificate for dns_name and/or 127.0.0.1. */
static gnutls_x509_crt_t new_cert(gnutls_x509_privkey_t key, const char *cn, const char *dns_name,
                                  int loopback_ip, gnutls_x509_crt_t issuer,
                                  gnutls_x509_privkey_t issuer_key)
{
    gnutls_x509_crt_t crt;
    unsigned char serial[8], kid[64];
    size_t kid_len = sizeof kid;
    time_t now = time(NULL);
    int ca = issuer == NULL;

    CHECK(NULL, gnutls_x509_crt_init(&crt) == 0);
    CHECK(NULL, gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial) == 0);
    serial[0] &= 0x7f;
    CHECK(NULL, gnutls_x509_crt_set_version(crt, 3) == 0);
    CHECK(NULL, gnutls_x509_crt_set_serial(crt, serial, sizeof serial) == 0);
    CHECK(NULL, gnutls_x509_crt_set_activation_time(crt, now - 3600) == 0);
    CHECK(NULL, gnutls_x509_crt_set_expiration_time(crt, now + 7 * 86400) == 0);
    CHECK(NULL, gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                              (unsigned)strlen(cn)) == 0);
    CHECK(NULL, gnutls_x509_crt_set_key(crt, key) == 0);
    CHECK(NULL, gnutls_x509_crt_set_basic_constraints(crt, ca, -1) == 0);
    CHECK(NULL, gnutls_x509_crt_set_key_usage(
                    crt, ca ? GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN
                            : GNUTLS_KEY_DIGITAL_SIGNATURE) == 0);
    if (!ca)
        CHECK(NULL, gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) == 0);
    if (dns_name)
        CHECK(NULL, gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, dns_name,
                                                         (unsigned)strlen(dns_name),
                                                         GNUTLS_FSAN_APPEND) == 0);
    if (loopback_ip) {
        static const unsigned char lo[4] = {127, 0, 0, 1};
        CHECK(NULL, gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, lo, 4,
                                                         GNUTLS_FSAN_APPEND) == 0);
    }
    CHECK(NULL, gnutls_x509_privkey_get_key_id(key, 0, kid, &kid_len) == 0);
    CHECK(NULL, gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len) == 0);
    if (!ca) {
        kid_len = sizeof kid;
        CHECK(NULL, gnutls_x509_privkey_get_key_id(issuer_key, 0, kid, &kid_len) == 0);
        CHECK(NULL, gnutls_x509_crt_set_authority_key_id(crt, kid, kid_len) == 0);
    }
    CHECK(NULL, gnutls_x509_crt_sign2(crt, ca ? crt : issuer, ca ? key : issuer_key,
                                      GNUTLS_DIG_SHA256, 0) == 0);
    return crt;
}

static char *crt_pem(gnutls_x509_crt_t crt)
{
    gnutls_datum_t d;
    CHECK(NULL, gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d) == 0);
    char *s = itest_printf("%.*s", (int)d.size, (char *)d.data);
    gnutls_free(d.data);
    return s;
}

static char *key_pem(gnutls_x509_privkey_t k)
{
    gnutls_datum_t d;
    CHECK(NULL, gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL,
                                                  GNUTLS_PKCS_PLAIN, &d) == 0);
    char *s = itest_printf("%.*s", (int)d.size, (char *)d.data);
    gnutls_free(d.data);
    return s;
}

static char *write_file(const char *dir, const char *name, const char *text)
{
    char *path = itest_printf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK_MSG(NULL, f && fputs(text, f) >= 0 && fclose(f) == 0, "write %s", path);
    return path;
}

typedef struct pki {
    char *ca_file, *cert_file, *key_file, *mismatch_file;
} pki;

/* One CA that signs both the stand-in's TLS certificate and the
 * "issued" certificate for mismatch.example, whose key nobody else has. */
static void make_pki(const char *dir, pki *out)
{
    gnutls_x509_privkey_t ca_key = new_key(), srv_key = new_key(), other_key = new_key();
    gnutls_x509_crt_t ca = new_cert(ca_key, "fault stand-in test CA (not a CA)", NULL, 0, NULL, NULL);
    gnutls_x509_crt_t srv = new_cert(srv_key, "127.0.0.1", "localhost", 1, ca, ca_key);
    gnutls_x509_crt_t other = new_cert(other_key, "mismatch.example", "mismatch.example", 0, ca, ca_key);
    char *ca_pem = crt_pem(ca), *srv_pem = crt_pem(srv), *other_pem = crt_pem(other);
    char *srv_key_pem = key_pem(srv_key);
    char *chain = itest_printf("%s%s", other_pem, ca_pem);

    /* The checker the other tests rely on must be able to say no. */
    CHECK(NULL, itest_key_matches(srv_pem, srv_key_pem));
    CHECK(NULL, !itest_key_matches(chain, srv_key_pem));

    out->ca_file = write_file(dir, "ca.pem", ca_pem);
    out->cert_file = write_file(dir, "server.pem", srv_pem);
    out->key_file = write_file(dir, "server.key", srv_key_pem);
    out->mismatch_file = write_file(dir, "mismatch-chain.pem", chain);

    free(ca_pem);
    free(srv_pem);
    free(other_pem);
    free(srv_key_pem);
    free(chain);
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_crt_deinit(srv);
    gnutls_x509_crt_deinit(other);
    gnutls_x509_privkey_deinit(ca_key);
    gnutls_x509_privkey_deinit(srv_key);
    gnutls_x509_privkey_deinit(other_key);
}

/* ------------------------------------------------------- the stand-in */

static pid_t server_pid;

static void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
        server_pid = 0;
    }
}

static unsigned start_server(const char *python, const char *script, const pki *k)
{
    int pfd[2];
    CHECK(NULL, pipe(pfd) == 0);
    pid_t parent = getpid();
    server_pid = fork();
    CHECK(NULL, server_pid >= 0);
    if (server_pid == 0) {
        /* Die with the test, whatever way it ends. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(python, python, script, "--cert", k->cert_file, "--key", k->key_file,
              "--mismatch-chain", k->mismatch_file, "--lifetime", "240", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", python, strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    atexit(stop_server);

    char line[128];
    size_t len = 0;
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
        CHECK_MSG(NULL, poll(&p, 1, 20000) == 1, "fault stand-in did not print its port in 20 s");
        ssize_t n = read(pfd[0], line + len, sizeof line - 1 - len);
        CHECK_MSG(NULL, n > 0, "fault stand-in exited before printing its port");
        len += (size_t)n;
    }
    line[len] = '\0';
    close(pfd[0]);
    unsigned port = 0;
    CHECK_MSG(NULL, sscanf(line, "PORT %u", &port) == 1 && port > 0, "stand-in said: %s", line);
    return port;
}

/* ------------------------------------------------------- the cases */

static unsigned port;
static const char *ca_file;

static acme_client *client_for(itest_host *h, const char *dir, const char *fault)
{
    char *url = itest_printf("https://127.0.0.1:%u/%s/dir", port, fault);
    acme_client *c = itest_client_at(h, dir, url, ca_file);
    /* Bounded, so a hang shows up as a failure rather than a timeout. */
    CHECK_OK(c, acme_client_set_timeouts(c, 5000, 20000));
    free(url);
    return c;
}

/* 1 if msg contains one of the '|'-separated words, case-insensitively. */
static int mentions(const char *msg, const char *words)
{
    char *w = itest_strdup(words), *save = NULL;
    int hit = 0;
    for (char *t = strtok_r(w, "|", &save); t && !hit; t = strtok_r(NULL, "|", &save))
        hit = strcasestr(msg, t) != NULL;
    free(w);
    return hit;
}

typedef struct dir_case {
    const char *fault;
    int code, alt_code;       /* alt_code: a second acceptable code, or -1 */
    size_t max_response;      /* 0 = the library's default */
    const char *words;        /* the message must mention one of these */
} dir_case;

/* A broken directory: fetching it fails with the code, and so does
 * registering (which needs the directory first) without touching storage. */
static void run_dir_case(const dir_case *dc)
{
    itest_host h;
    itest_host_init(&h);
    char *dir = itest_fresh_dir(dc->fault);
    acme_client *c = client_for(&h, dir, dc->fault);
    if (dc->max_response)
        CHECK_OK(c, acme_client_set_max_response(c, dc->max_response));
    itest_snapshot before, after;
    itest_snapshot_take(dir, &before);

    time_t t0 = time(NULL);
    int rc = acme_directory_fetch(c);
    if (rc != dc->code && rc != dc->alt_code)
        itest_fail_code(__FILE__, __LINE__, dc->fault, c, rc, dc->code);
    const char *msg = acme_client_last_error(c);
    CHECK_MSG(c, msg && *msg, "%s: no message", dc->fault);
    CHECK_MSG(c, mentions(msg, dc->words), "%s: message does not say what failed "
              "(expected one of: %s): \"%s\"", dc->fault, dc->words, msg);
    itest_log("ok: %s -> %s: %s", dc->fault, acme_strerror(rc), msg);

    acme_account_params p = {.size = sizeof p, .agree_tos = 1};
    rc = acme_account_register(c, &p);
    if (rc != dc->code && rc != dc->alt_code)
        itest_fail_code(__FILE__, __LINE__, "register after a bad directory", c, rc, dc->code);
    CHECK(c, *acme_client_last_error(c));
    CHECK_MSG(c, time(NULL) - t0 < 30, "%s: took %lld s", dc->fault, (long long)(time(NULL) - t0));
    CHECK(c, h.install_calls == 0 && h.publish_calls == 0);
    itest_snapshot_take(dir, &after);
    CHECK_MSG(c, itest_snapshot_same(&before, &after), "%s: storage changed", dc->fault);

    itest_snapshot_free(&before);
    itest_snapshot_free(&after);
    acme_client_free(c);
    itest_host_clear(&h);
    free(dir);
}

/* A redirect to another https:// URL is not a downgrade: the directory it
 * leads to (the tiny flow's) is used, and an account can be made there. */
static void https_redirect(void)
{
    itest_host h;
    itest_host_init(&h);
    char *dir = itest_fresh_dir("redirect-https");
    acme_client *c = client_for(&h, dir, "redirect-https");
    CHECK_OK(c, acme_directory_fetch(c));
    itest_register(c, NULL);
    CHECK(c, !strncmp(acme_account_url(c), "https://127.0.0.1:", 18) &&
             strstr(acme_account_url(c), "/mismatch/acct/1"));
    itest_log("ok: redirect-https followed to a working directory");
    acme_client_free(c);
    itest_host_clear(&h);
    free(dir);
}

static int never_loaded(void *ud, const acme_certificate *cert)
{
    (void)ud;
    (void)cert;
    itest_fail(__FILE__, __LINE__, "acme_cert_load found a certificate", NULL, NULL);
}

/* The tiny flow: account fine, authorization already valid, but the
 * certificate served does not belong to the CSR's key. */
static void key_mismatch(void)
{
    itest_host h;
    itest_host_init(&h);
    char *dir = itest_fresh_dir("mismatch");
    acme_client *c = client_for(&h, dir, "mismatch");
    itest_register(c, NULL);

    itest_snapshot before, after;
    itest_snapshot_take(dir, &before);
    const char *names[] = {"mismatch.example"};
    acme_issue_params p = {.size = sizeof p, .names = names, .name_count = 1};
    CHECK_CODE(c, acme_issue(c, &p), ACME_E_KEY_MISMATCH);
    const char *msg = acme_client_last_error(c);
    CHECK_MSG(c, mentions(msg, "key"), "message does not mention the key: \"%s\"", msg);
    CHECK_MSG(c, h.install_calls == 0, "install was called for a foreign certificate");
    CHECK_MSG(c, h.publish_calls == 0, "published although the authorization was valid");
    /* The one thing a failed order stores is the retry schedule for its
     * names (doc/engine.md "After a failure"): check it, then take it out
     * and compare the rest. */
    char *pat = itest_printf("%s/*/backoff/*.json", dir);
    glob_t g;
    CHECK_MSG(c, glob(pat, 0, NULL, &g) == 0 && g.gl_pathc == 1, "no single back-off record after the failure");
    json_t *rec = json_load_file(g.gl_pathv[0], 0, NULL);
    CHECK_MSG(c, rec && json_integer_value(json_object_get(rec, "failures")) == 1, "back-off record: not one failure");
    json_decref(rec);
    char *bdir = itest_strdup(g.gl_pathv[0]);
    *strrchr(bdir, '/') = '\0';
    CHECK_MSG(c, unlink(g.gl_pathv[0]) == 0 && rmdir(bdir) == 0, "cannot remove the back-off record");
    free(bdir);
    globfree(&g);
    free(pat);
    itest_snapshot_take(dir, &after);
    CHECK_MSG(c, itest_snapshot_same(&before, &after), "storage changed by a failed issuance");
    itest_log("ok: mismatch -> %s: %s", acme_strerror(ACME_E_KEY_MISMATCH), msg);

    /* Nothing was stored under the certificate's id either. */
    CHECK_CODE(c, acme_cert_load(c, "mismatch.example", never_loaded, NULL), ACME_E_NOT_FOUND);

    itest_snapshot_free(&before);
    itest_snapshot_free(&after);
    acme_client_free(c);
    itest_host_clear(&h);
    free(dir);
}

int main(int argc, char **argv)
{
    itest_init("it_bad_input");
    CHECK_MSG(NULL, argc == 3, "usage: %s PYTHON3 fault_acme_server.py", argv[0]);
    signal(SIGPIPE, SIG_IGN);

    char *pki_dir = itest_fresh_dir("pki");
    pki k;
    make_pki(pki_dir, &k);
    ca_file = k.ca_file;
    port = start_server(argv[1], argv[2], &k);
    itest_log("fault stand-in on 127.0.0.1:%u", port);

    static const dir_case cases[] = {
        {"malformed", ACME_E_PROTOCOL, -1, 0, "JSON|directory"},
        {"no-newNonce", ACME_E_PROTOCOL, -1, 0, "newNonce"},
        {"no-newAccount", ACME_E_PROTOCOL, -1, 0, "newAccount"},
        {"no-newOrder", ACME_E_PROTOCOL, -1, 0, "newOrder"},
        {"html", ACME_E_PROTOCOL, -1, 0, "content type|content-type|text/html"},
        {"oversize", ACME_E_TOO_LARGE, -1, 8192, "large|limit|bytes|size"},
        {"oversize-chunked", ACME_E_TOO_LARGE, -1, 8192, "large|limit|bytes|size"},
        {"huge", ACME_E_TOO_LARGE, -1, 0, "large|limit|bytes|size"},
        /* A short body is a dropped connection or a malformed answer. */
        {"truncated", ACME_E_NETWORK, ACME_E_PROTOCOL, 0, "directory|truncat|partial|short|connection|closed"},
        {"redirect-http", ACME_E_INSECURE, -1, 0, "http://|redirect|https"},
        /* Following redirects must stop somewhere. */
        {"redirect-loop", ACME_E_HTTP, ACME_E_PROTOCOL, 0, "redirect"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_dir_case(&cases[i]);
    https_redirect();
    key_mismatch();

    stop_server();
    free(k.ca_file);
    free(k.cert_file);
    free(k.key_file);
    free(k.mismatch_file);
    free(pki_dir);
    itest_done();
    return 0;
}
