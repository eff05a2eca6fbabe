/* A small program that embeds libacme and hosts the haproxy module, the
 * way `acmectl run` will: a client, the module loaded with its
 * configuration, an engine managing the names given, with the module's
 * publish / unpublish / install as the host callbacks.
 *
 *   haproxy_host --state DIR --module SO --config FILE [options] NAME[,NAME...]...
 *
 *   --challenge T       http-01 or tls-alpn-01; repeat for a preference order
 *   --max-age S         renew stored certificates older than S seconds
 *                       (acme_engine_options.max_age_s): forces a renewal
 *   --timeout S         give up after S seconds (120)
 *   --no-install        store certificates without handing them to the module
 *   --install-stored ID no engine: load stored certificate ID and install it
 *                       through the module, then exit
 *
 * Each argument is one certificate (comma-separated names, id = the first).
 * The CA is the harness's Pebble (ACME_TEST_DIRECTORY, ACME_TEST_CA_FILE).
 *
 * Output on stdout, one line each:
 *   INSTALLED <id> <SHA-1 of the leaf, upper-case hex> <serial hex>
 *   ERROR <what> <id or name>: <reason>
 * Exit 0 when every certificate got a NEW certificate installed (one that
 * was not stored at start), 1 on the first failure or the timeout, 2 on
 * bad usage. The library's log goes to stderr (HAP_DEBUG=1: debug). */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <acme/acme.h>

#define MAX_CERTS 16

typedef struct cert_slot {
    char *id;
    const char *names[8];
    size_t name_count;
    char *old_sha1;     /* what was stored at start, or NULL */
    char *installed;    /* SHA-1 of the last successful install */
    int done;
} cert_slot;

static struct {
    acme_client *c;
    acme_module *m;
    cert_slot certs[MAX_CERTS];
    size_t count;
    int no_install;
    int failed;
} H;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "haproxy_host: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(code);
}

static char *leaf_info(const char *chain, char **serial_out)
{
    gnutls_x509_crt_t crt;
    char *hex = NULL;
    if (serial_out)
        *serial_out = NULL;
    const char *b = chain ? strstr(chain, "-----BEGIN CERTIFICATE-----") : NULL;
    if (!b || gnutls_x509_crt_init(&crt) < 0)
        return NULL;
    gnutls_datum_t d = {(unsigned char *)b, (unsigned)strlen(b)};
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) == 0) {
        unsigned char md[20], ser[64];
        size_t n = sizeof(md), ns = sizeof(ser);
        if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA1, md, &n) == 0 && (hex = malloc(2 * n + 1)))
            for (size_t i = 0; i < n; i++)
                snprintf(hex + 2 * i, 3, "%02X", md[i]);
        if (serial_out && gnutls_x509_crt_get_serial(crt, ser, &ns) == 0 && (*serial_out = malloc(2 * ns + 1)))
            for (size_t i = 0; i < ns; i++)
                snprintf(*serial_out + 2 * i, 3, "%02x", ser[i]);
    }
    gnutls_x509_crt_deinit(crt);
    return hex;
}

static cert_slot *slot_of(const char *id)
{
    for (size_t i = 0; i < H.count; i++)
        if (!strcmp(H.certs[i].id, id))
            return &H.certs[i];
    return NULL;
}

static void report(const char *what, const char *who, int rc)
{
    const char *why = acme_client_last_error(H.c);
    printf("ERROR %s %s: %s\n", what, who, why && *why ? why : acme_strerror(rc));
    fflush(stdout);
    H.failed = 1;
}

/* ---- host callbacks: the module, plus bookkeeping ---------------------- */

static int cb_publish(void *ud, const acme_challenge *ch)
{
    int rc = acme_module_publish(ud, ch);
    if (rc != ACME_OK && rc != ACME_E_PENDING)
        report("publish", acme_challenge_identifier(ch), rc);
    return rc;
}

static int cb_unpublish(void *ud, const acme_challenge *ch)
{
    int rc = acme_module_unpublish(ud, ch);
    if (rc != ACME_OK && rc != ACME_E_PENDING)
        report("unpublish", acme_challenge_identifier(ch), rc);
    return rc;
}

static int install_one(void *ud, const acme_certificate *cert)
{
    const char *id = acme_certificate_id(cert);
    char *serial = NULL;
    char *sha1 = leaf_info(acme_certificate_chain_pem(cert), &serial);
    int rc = H.no_install ? ACME_OK : acme_module_install(ud, cert);
    if (rc != ACME_OK && rc != ACME_E_PENDING) {
        report("install", id, rc);
    } else if (rc == ACME_OK) {
        cert_slot *s = slot_of(id);
        if (s) {
            free(s->installed);
            s->installed = sha1 ? strdup(sha1) : NULL;
            if (sha1 && (!s->old_sha1 || strcmp(s->old_sha1, sha1) != 0) && !s->done) {
                s->done = 1;
                printf("INSTALLED %s %s %s\n", id, sha1, serial ? serial : "?");
                fflush(stdout);
            }
        } else {
            printf("INSTALLED %s %s %s\n", id, sha1 ? sha1 : "?", serial ? serial : "?");
            fflush(stdout);
        }
    }
    free(sha1);
    free(serial);
    return rc;
}

static void cb_log(void *ud, acme_log_level level, const char *msg)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    (void)ud;
    fprintf(stderr, "[haproxy_host] %s: %s\n", (unsigned)level < 4 ? names[level] : "?", msg ? msg : "");
}

static int remember_stored(void *ud, const acme_certificate *cert)
{
    cert_slot *s = ud;
    s->old_sha1 = leaf_info(acme_certificate_chain_pem(cert), NULL);
    return ACME_OK;
}

static int find_id(void *ud, const char *cert_id)
{
    cert_slot *s = ud;
    if (!strcmp(cert_id, s->id))
        s->done = -1; /* stored; reset below */
    return 0;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(2, "cannot open %s", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf)
        die(2, "out of memory");
    buf[n] = '\0';
    return buf;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        die(2, "%s is not set (run under tests/harness/with-pebble)", name);
    return v;
}

int main(int argc, char **argv)
{
    const char *state = NULL, *module = NULL, *config = NULL, *install_stored = NULL;
    acme_challenge_type prefs[4];
    size_t npref = 0;
    unsigned max_age = 0, timeout_s = 120;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-install")) {
            H.no_install = 1;
            continue;
        }
        if (a[0] != '-' || !strcmp(a, "--"))
            break;
        if (!v)
            die(2, "%s needs a value", a);
        i++;
        if (!strcmp(a, "--state"))
            state = v;
        else if (!strcmp(a, "--module"))
            module = v;
        else if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--install-stored"))
            install_stored = v;
        else if (!strcmp(a, "--max-age"))
            max_age = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--timeout"))
            timeout_s = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--challenge")) {
            if (npref == 4)
                die(2, "too many --challenge");
            if (!strcmp(v, "http-01"))
                prefs[npref++] = ACME_CHALLENGE_HTTP_01;
            else if (!strcmp(v, "tls-alpn-01"))
                prefs[npref++] = ACME_CHALLENGE_TLS_ALPN_01;
            else
                die(2, "--challenge %s: http-01 or tls-alpn-01", v);
        } else
            die(2, "unknown option %s", a);
    }
    if (i < argc && !strcmp(argv[i], "--"))
        i++;
    if (!state || !module || !config || (i >= argc && !install_stored))
        die(2, "usage: haproxy_host --state DIR --module SO --config FILE [--challenge T]... [--max-age S] "
               "[--timeout S] [--no-install] [--install-stored ID] NAME[,NAME...]...");

    acme_host_callbacks cb = {
        .size = sizeof cb, .publish = cb_publish, .unpublish = cb_unpublish, .install = install_one, .log = cb_log};
    int rc;
    if ((rc = acme_client_new(env("ACME_TEST_DIRECTORY"), &H.c)) ||
        (rc = acme_client_set_ca_file(H.c, env("ACME_TEST_CA_FILE"))) ||
        (rc = acme_client_set_storage_dir(H.c, state)))
        die(1, "client: %s", acme_strerror(rc));
    const char *dbg = getenv("HAP_DEBUG");
    acme_client_set_log_level(H.c, dbg && *dbg == '1' ? ACME_LOG_DEBUG : ACME_LOG_INFO);
    /* The module's log goes through the client's log callback. */
    acme_client_set_host(H.c, &cb, NULL);
    char *conf_text = read_text(config);
    rc = acme_module_load(H.c, module, conf_text, &H.m);
    free(conf_text);
    if (rc) {
        printf("ERROR load %s: %s\n", module, acme_client_last_error(H.c));
        return 1;
    }
    if ((rc = acme_client_set_host(H.c, &cb, H.m)))
        die(1, "set_host: %s", acme_strerror(rc));

    if (install_stored) {
        rc = acme_cert_load(H.c, install_stored, install_one, H.m);
        if (rc && !H.failed)
            report("install", install_stored, rc);
        acme_module_free(H.m);
        acme_client_free(H.c);
        return H.failed ? 1 : 0;
    }

    acme_account_params ap = {.size = sizeof ap, .agree_tos = 1};
    if ((rc = acme_account_register(H.c, &ap))) {
        printf("ERROR account -: %s\n", acme_client_last_error(H.c));
        return 1;
    }
    acme_engine_options eo = {.size = sizeof eo, .retry_min_s = 1, .max_age_s = max_age};
    acme_engine *e = NULL;
    if ((rc = acme_engine_new(H.c, &eo, &e)))
        die(1, "engine: %s", acme_client_last_error(H.c));

    for (; i < argc && H.count < MAX_CERTS; i++) {
        cert_slot *s = &H.certs[H.count++];
        char *copy = strdup(argv[i]);
        for (char *tok = strtok(copy, ","); tok && s->name_count < 8; tok = strtok(NULL, ","))
            s->names[s->name_count++] = strdup(tok);
        free(copy);
        s->id = strdup(s->names[0]);
        acme_cert_list(H.c, find_id, s);
        if (s->done == -1) {
            s->done = 0;
            acme_cert_load(H.c, s->id, remember_stored, s);
        }
        acme_issue_params p = {
            .size = sizeof p,
            .names = s->names,
            .name_count = s->name_count,
            .challenges = npref ? prefs : NULL,
            .challenge_count = npref,
        };
        if ((rc = acme_engine_manage(e, &p)))
            die(1, "manage %s: %s", s->id, acme_client_last_error(H.c));
    }

    double deadline = now_s() + timeout_s, stop_at = 0;
    struct pollfd fds[64];
    for (;;) {
        size_t all = 0;
        for (size_t k = 0; k < H.count; k++)
            all += H.certs[k].done;
        if (all == H.count)
            break;
        if (H.failed && !stop_at)
            stop_at = now_s() + 5; /* let the engine clean up (unpublish, deactivate) */
        if ((stop_at && (acme_engine_idle(e) || now_s() > stop_at)) || now_s() > deadline)
            break;
        size_t n = 0;
        if (acme_engine_fds(e, fds, 64, &n))
            n = 0;
        int t = acme_engine_timeout_ms(e);
        if (t < 0 || t > 200)
            t = 200;
        poll(fds, n, t);
        acme_engine_step(e);
    }
    int ok = !H.failed;
    for (size_t k = 0; k < H.count; k++)
        ok &= H.certs[k].done;
    if (!ok) {
        if (!H.failed)
            printf("ERROR timeout -: not every certificate was installed in %u s\n", timeout_s);
        fprintf(stderr, "haproxy_host: engine status: %s\n", acme_engine_status_json(e));
    }
    acme_engine_free(e);
    acme_module_free(H.m);
    acme_client_free(H.c);
    for (size_t k = 0; k < H.count; k++) {
        for (size_t j = 0; j < H.certs[k].name_count; j++)
            free((char *)H.certs[k].names[j]);
        free(H.certs[k].id);
        free(H.certs[k].old_sha1);
        free(H.certs[k].installed);
    }
    return ok ? 0 : 1;
}
