/* issue_common.h — what bench/issue_seq.c and bench/issue_engine.c share:
 * option parsing and a webroot-style host (the same work the peer clients
 * do in the issuance benchmark: write the http-01 token file into a
 * webroot, remove it afterwards, write each certificate and key out).
 *
 * Options (both programs):
 *   -d DIRECTORY_URL  the CA's ACME directory
 *   -c CA_FILE        trust this PEM for the CA's HTTPS, and only it
 *   -s STATE_DIR      libacme storage
 *   -w WEBROOT        http-01 files go to WEBROOT/.well-known/acme-challenge/
 *   -o OUT_DIR        NAME.crt / NAME.key are written here
 *   -n COUNT          certificates to issue (1..100000)
 *   -p PREFIX         names are PREFIX<i>.bench.example, i = 1..COUNT
 *   -j N              (issue_engine only) orders in flight, 0 = the default
 *   -t SECONDS        (issue_engine only) bound on its loop, default 600
 *   -K K              (issue_engine only, under valgrind --tool=callgrind
 *                     --instr-atstart=no) count the last K issuances only:
 *                     instrumentation on and counters zeroed when COUNT-K
 *                     certificates are installed, a dump when all are
 *                     (K < COUNT: the window opens at an install)
 *   -m                install into memory only: count the certificate, write
 *                     nothing (a host that loads certificates into its TLS
 *                     context; start-up benchmarks measure the engine, not
 *                     200,000 file writes)
 *   -v                log libacme's INFO lines to stderr
 */
#ifndef BENCH_ISSUE_COMMON_H
#define BENCH_ISSUE_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <acme/client.h>
#include <acme/error.h>
#include <acme/host.h>

#define BENCH_MAX_COUNT 100000

typedef struct bench_opts {
    const char *dir_url, *ca_file, *state, *webroot, *out_dir, *prefix;
    int count, jobs, verbose, memory_install;
    int bound_s, window; /* -t, -K (issue_engine only) */
    char challenge_dir[4096];
    char **names; /* count names */
    int installed;
} bench_opts;

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    size_t len = strlen(text);
    int ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

static int bench_mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return (mkdir(buf, 0755) < 0 && errno != EEXIST) ? -1 : 0;
}

/* ---- host callbacks: a webroot, as the peers use it -------------------- */

static int bench_publish(void *ud, const acme_challenge *ch)
{
    bench_opts *o = ud;
    if (acme_challenge_get_type(ch) != ACME_CHALLENGE_HTTP_01)
        return ACME_E_UNSUPPORTED;
    char path[8192];
    snprintf(path, sizeof(path), "%s/%s", o->challenge_dir, acme_challenge_token(ch));
    return bench_write_file(path, acme_challenge_key_authorization(ch), 0644) == 0
               ? ACME_OK
               : ACME_E_CALLBACK;
}

static int bench_unpublish(void *ud, const acme_challenge *ch)
{
    bench_opts *o = ud;
    char path[8192];
    snprintf(path, sizeof(path), "%s/%s", o->challenge_dir, acme_challenge_token(ch));
    unlink(path);
    return ACME_OK;
}

static int bench_install(void *ud, const acme_certificate *cert)
{
    bench_opts *o = ud;
    if (o->memory_install) {
        o->installed++;
        return acme_certificate_chain_pem(cert) && acme_certificate_key_pem(cert) ? ACME_OK : ACME_E_CALLBACK;
    }
    char crt[8192], key[8192];
    snprintf(crt, sizeof(crt), "%s/%s.crt", o->out_dir, acme_certificate_id(cert));
    snprintf(key, sizeof(key), "%s/%s.key", o->out_dir, acme_certificate_id(cert));
    if (bench_write_file(key, acme_certificate_key_pem(cert), 0600) < 0 ||
        bench_write_file(crt, acme_certificate_chain_pem(cert), 0644) < 0)
        return ACME_E_CALLBACK;
    o->installed++;
    return ACME_OK;
}

static double bench_t0;

static void bench_log(void *ud, acme_log_level level, const char *msg)
{
    bench_opts *o = ud;
    if (o->verbose || level <= ACME_LOG_WARNING)
        fprintf(stderr, "%8.3f libacme: %s\n", bench_now() - bench_t0, msg);
}

static void bench_usage(const char *prog, int engine)
{
    fprintf(stderr,
            "usage: %s -d DIRECTORY_URL -c CA_FILE -s STATE_DIR -w WEBROOT -o OUT_DIR\n"
            "          -n COUNT -p PREFIX%s [-m] [-v]\n",
            prog, engine ? " [-j MAX_ORDERS] [-t SECONDS] [-K LAST]" : "");
    exit(2);
}

static void bench_parse(int argc, char **argv, bench_opts *o, int engine)
{
    int opt;
    bench_t0 = bench_now();
    memset(o, 0, sizeof(*o));
    o->count = 0;
    while ((opt = getopt(argc, argv, "d:c:s:w:o:n:p:j:t:K:mv")) != -1) {
        switch (opt) {
        case 'd': o->dir_url = optarg; break;
        case 'c': o->ca_file = optarg; break;
        case 's': o->state = optarg; break;
        case 'w': o->webroot = optarg; break;
        case 'o': o->out_dir = optarg; break;
        case 'n': o->count = atoi(optarg); break;
        case 'p': o->prefix = optarg; break;
        case 'j': o->jobs = atoi(optarg); break;
        case 't': o->bound_s = atoi(optarg); break;
        case 'K': o->window = atoi(optarg); break;
        case 'm': o->memory_install = 1; break;
        case 'v': o->verbose = 1; break;
        default: bench_usage(argv[0], engine);
        }
    }
    if (!o->dir_url || !o->ca_file || !o->state || !o->webroot || !o->out_dir || !o->prefix ||
        o->count < 1 || o->count > BENCH_MAX_COUNT || o->jobs < 0 || o->jobs > 1000 ||
        o->bound_s < 0 || o->window < 0 || o->window >= o->count ||
        (!engine && (o->bound_s || o->window)))
        bench_usage(argv[0], engine);
    snprintf(o->challenge_dir, sizeof(o->challenge_dir), "%s/.well-known/acme-challenge",
             o->webroot);
    if (bench_mkdirs(o->challenge_dir) < 0 || bench_mkdirs(o->out_dir) < 0) {
        fprintf(stderr, "%s: cannot create %s or %s\n", argv[0], o->challenge_dir, o->out_dir);
        exit(1);
    }
    o->names = calloc((size_t)o->count, sizeof(char *));
    for (int i = 0; o->names && i < o->count; i++) {
        size_t n = strlen(o->prefix) + 32;
        o->names[i] = malloc(n);
        if (!o->names[i])
            exit(1);
        snprintf(o->names[i], n, "%s%d.bench.example", o->prefix, i + 1);
    }
    if (!o->names)
        exit(1);
}

/* A client on the CA with this host, trust, storage; account registered. */
static acme_client *bench_client(bench_opts *o, const char *prog)
{
    acme_client *c = NULL;
    int rc = acme_client_new(o->dir_url, &c);
    if (rc != ACME_OK) {
        fprintf(stderr, "%s: acme_client_new: %s\n", prog, acme_strerror(rc));
        return NULL;
    }
    acme_host_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.size = sizeof(cb);
    cb.publish = bench_publish;
    cb.unpublish = bench_unpublish;
    cb.install = bench_install;
    cb.log = bench_log;
    acme_account_params ap;
    memset(&ap, 0, sizeof(ap));
    ap.size = sizeof(ap);
    ap.agree_tos = 1;
    if ((rc = acme_client_set_ca_file(c, o->ca_file)) != ACME_OK ||
        (rc = acme_client_set_storage_dir(c, o->state)) != ACME_OK ||
        (rc = acme_client_set_host(c, &cb, o)) != ACME_OK ||
        (rc = acme_account_register(c, &ap)) != ACME_OK) {
        fprintf(stderr, "%s: setting up the account: %s (%s)\n", prog, acme_strerror(rc),
                acme_client_last_error(c));
        acme_client_free(c);
        return NULL;
    }
    return c;
}

static void bench_fill_params(acme_issue_params *ip, const char *const *name)
{
    static const acme_challenge_type http01[] = { ACME_CHALLENGE_HTTP_01 };
    memset(ip, 0, sizeof(*ip));
    ip->size = sizeof(*ip);
    ip->names = name;
    ip->name_count = 1;
    ip->key_type = ACME_KEY_EC_P256;
    ip->challenges = http01;
    ip->challenge_count = 1;
}

#endif
