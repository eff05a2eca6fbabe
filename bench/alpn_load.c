/* alpn_load — a load generator that behaves like a tls-alpn-01 validator.
 *
 * Each of C threads loops: TCP connect, TLS handshake offering only ALPN
 * "acme-tls/1" with SNI = the challenge name, checks what a validator checks
 * (the negotiated protocol is acme-tls/1; the certificate names the
 * identifier as its only dNSName SAN and carries the critical acmeIdentifier
 * extension, OID 1.3.6.1.5.5.7.1.31, holding SHA-256 of the key
 * authorization), reads until the server's close_notify (or EOF), sends its
 * own close_notify and closes. Every connection is a full handshake (no
 * session resumption).
 *
 *   alpn_load -p PORT -s NAME -k KEY_AUTH [-H 127.0.0.1] [-c CONC]
 *             [-d SECONDS | -n COUNT] [-w WARMUP_S] [-t TIMEOUT_MS]
 *             [-P PRIORITY]
 *
 * -d: run for a fixed time (default 5 s) after -w seconds of warm-up
 * (default 0.5; handshakes finishing in the warm-up are not counted);
 * -n: run exactly COUNT connections instead. Both are bounded: at most
 * 3600 s and 10^8 connections. Prints one line, key=value:
 *   handshakes= seconds= rate= errors= unclean= p50_ms= p99_ms= max_ms= tls=
 * "unclean" counts connections the server ended without close_notify (not an
 * error for a validator, but a responder should send it). The first few
 * errors are described on stderr. Exit status 0 if at least one handshake
 * succeeded and none failed, 1 otherwise, 2 on bad usage.
 *
 * Loopback only in practice: the host is given numerically. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define ACME_ID_OID "1.3.6.1.5.5.7.1.31"
#define MAX_CONC 1024
#define MAX_SECONDS 3600.0
#define MAX_COUNT 100000000L
#define LAT_CAP_PER_THREAD (1u << 20)
#define ERRORS_SHOWN 5

static struct {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const char *sni;
    unsigned char expect_ext[34]; /* DER OCTET STRING of the SHA-256 */
    int timeout_ms;
    gnutls_priority_t prio;
    gnutls_certificate_credentials_t cred;
    /* time window (monotonic seconds) */
    double t_start, t_count_from, t_stop;
    long count; /* -n mode: total connections, else -1 */
} G;

static atomic_long next_ticket;   /* -n mode */
static atomic_long handshakes;    /* counted successes */
static atomic_long errors;        /* counted failures */
static atomic_long unclean;
static atomic_int errors_shown;
static char tls_desc[256];
static atomic_int tls_desc_set;

typedef struct {
    uint32_t *lat_us;
    size_t n, cap;
} thread_stats;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report_error(const char *what, const char *detail)
{
    int k = atomic_fetch_add(&errors_shown, 1);
    if (k < ERRORS_SHOWN)
        fprintf(stderr, "alpn_load: %s: %s\n", what, detail ? detail : "");
    else if (k == ERRORS_SHOWN)
        fprintf(stderr, "alpn_load: (further errors not shown)\n");
}

/* The validator's checks on the leaf certificate. NULL if fine. */
static const char *check_cert(gnutls_session_t s)
{
    unsigned n = 0;
    const gnutls_datum_t *list = gnutls_certificate_get_peers(s, &n);
    if (!list || n == 0)
        return "no certificate";
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return "out of memory";
    const char *bad = NULL;
    if (gnutls_x509_crt_import(crt, &list[0], GNUTLS_X509_FMT_DER) < 0) {
        bad = "certificate does not parse";
        goto out;
    }
    /* exactly one SAN, a dNSName equal to the SNI (case-insensitively) */
    char san[256];
    size_t san_len = sizeof(san);
    unsigned crit = 0;
    int t = gnutls_x509_crt_get_subject_alt_name(crt, 0, san, &san_len, &crit);
    if (t != GNUTLS_SAN_DNSNAME || strcasecmp(san, G.sni) != 0) {
        bad = "certificate SAN is not the challenge name";
        goto out;
    }
    san_len = sizeof(san);
    if (gnutls_x509_crt_get_subject_alt_name(crt, 1, san, &san_len, &crit) !=
        GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
        bad = "certificate has more than one SAN";
        goto out;
    }
    /* acmeIdentifier: critical, OCTET STRING(SHA-256(key authorization)) */
    unsigned char ext[64];
    size_t ext_len = sizeof(ext);
    crit = 0;
    if (gnutls_x509_crt_get_extension_by_oid(crt, ACME_ID_OID, 0, ext, &ext_len, &crit) < 0) {
        bad = "no acmeIdentifier extension";
        goto out;
    }
    if (!crit) {
        bad = "acmeIdentifier extension not critical";
        goto out;
    }
    if (ext_len != sizeof(G.expect_ext) || memcmp(ext, G.expect_ext, ext_len) != 0)
        bad = "acmeIdentifier does not match the key authorization";
out:
    gnutls_x509_crt_deinit(crt);
    return bad;
}

/* One validation. Returns 0 on success (*was_clean set), -1 on failure. */
static int one_connection(int *was_clean)
{
    *was_clean = 0;
    int fd = socket(G.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        report_error("socket", strerror(errno));
        return -1;
    }
    struct timeval tv = { G.timeout_ms / 1000, (G.timeout_ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&G.addr, G.addrlen) < 0) {
        report_error("connect", strerror(errno));
        close(fd);
        return -1;
    }
    gnutls_session_t s;
    int rc = -1;
    if (gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL) < 0) {
        report_error("gnutls_init", "failed");
        close(fd);
        return -1;
    }
    gnutls_datum_t proto = { (unsigned char *)"acme-tls/1", 10 };
    gnutls_priority_set(s, G.prio);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, G.cred);
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, G.sni, strlen(G.sni));
    gnutls_alpn_set_protocols(s, &proto, 1, 0);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, (unsigned)G.timeout_ms);

    int ret;
    do {
        ret = gnutls_handshake(s);
    } while (ret < 0 && !gnutls_error_is_fatal(ret));
    if (ret < 0) {
        report_error("handshake", gnutls_strerror(ret));
        goto out;
    }
    gnutls_datum_t sel;
    if (gnutls_alpn_get_selected_protocol(s, &sel) < 0 || sel.size != 10 ||
        memcmp(sel.data, "acme-tls/1", 10) != 0) {
        report_error("alpn", "acme-tls/1 was not negotiated");
        goto out;
    }
    const char *bad = check_cert(s);
    if (bad) {
        report_error("certificate", bad);
        goto out;
    }
    if (!atomic_exchange(&tls_desc_set, 1)) {
        char *d = gnutls_session_get_desc(s);
        if (d) {
            snprintf(tls_desc, sizeof(tls_desc), "%s", d);
            gnutls_free(d);
        }
    }
    /* The server sends no data: read until its close_notify or EOF. */
    char buf[256];
    for (int i = 0; i < 64; i++) {
        ret = (int)gnutls_record_recv(s, buf, sizeof(buf));
        if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
            continue; /* SO_RCVTIMEO bounds each wait */
        break;
    }
    if (ret == 0) {
        *was_clean = 1;
    } else if (ret == GNUTLS_E_PREMATURE_TERMINATION || ret == GNUTLS_E_PULL_ERROR ||
               ret == GNUTLS_E_PUSH_ERROR) {
        /* EOF/RST without close_notify: counted as unclean, not failed. */
    } else if (ret > 0) {
        report_error("read", "server sent application data");
        goto out;
    } else {
        report_error("read", gnutls_strerror(ret));
        goto out;
    }
    /* What a Go validator's Close() does: its own close_notify, then close. */
    gnutls_bye(s, GNUTLS_SHUT_WR);
    rc = 0;
out:
    gnutls_deinit(s);
    close(fd);
    return rc;
}

static void *worker(void *arg)
{
    thread_stats *st = arg;
    for (;;) {
        if (G.count >= 0) {
            if (atomic_fetch_add(&next_ticket, 1) >= G.count)
                break;
        } else if (now_s() >= G.t_stop) {
            break;
        }
        double t0 = now_s();
        int clean = 0;
        int r = one_connection(&clean);
        double t1 = now_s();
        /* Duration mode: count only what finished inside the window. */
        if (G.count < 0 && (t1 < G.t_count_from || t1 > G.t_stop))
            continue;
        if (r < 0) {
            atomic_fetch_add(&errors, 1);
            continue;
        }
        atomic_fetch_add(&handshakes, 1);
        if (!clean)
            atomic_fetch_add(&unclean, 1);
        if (st->n == st->cap && st->cap < LAT_CAP_PER_THREAD) {
            size_t nc = st->cap ? st->cap * 2 : 4096;
            uint32_t *p = realloc(st->lat_us, nc * sizeof(*p));
            if (p) {
                st->lat_us = p;
                st->cap = nc;
            }
        }
        if (st->n < st->cap)
            st->lat_us[st->n++] = (uint32_t)((t1 - t0) * 1e6);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: alpn_load -p PORT -s NAME -k KEY_AUTH [-H ADDR] [-c CONC]\n"
                    "                 [-d SECONDS | -n COUNT] [-w WARMUP_S] [-t TIMEOUT_MS]\n"
                    "                 [-P PRIORITY]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *key_auth = NULL, *priority = NULL;
    int port = 0, conc = 1, opt;
    double seconds = 5.0, warmup = 0.5;
    G.count = -1;
    G.timeout_ms = 10000;
    while ((opt = getopt(argc, argv, "H:p:s:k:c:d:n:w:t:P:")) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 's': G.sni = optarg; break;
        case 'k': key_auth = optarg; break;
        case 'c': conc = atoi(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'n': G.count = atol(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 't': G.timeout_ms = atoi(optarg); break;
        case 'P': priority = optarg; break;
        default: usage();
        }
    }
    if (port <= 0 || port > 65535 || !G.sni || !key_auth || conc < 1 || conc > MAX_CONC ||
        !(seconds > 0 && seconds <= MAX_SECONDS) || !(warmup >= 0 && warmup <= 60) ||
        G.count == 0 || G.count > MAX_COUNT || G.timeout_ms < 100 || G.timeout_ms > 60000)
        usage();

    memset(&G.addr, 0, sizeof(G.addr));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&G.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&G.addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        G.addrlen = sizeof(*a4);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        G.addrlen = sizeof(*a6);
    } else {
        fprintf(stderr, "alpn_load: -H wants a numeric address\n");
        return 2;
    }

    /* expected acmeIdentifier value: 04 20 || SHA-256(key authorization) */
    G.expect_ext[0] = 0x04;
    G.expect_ext[1] = 0x20;
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, key_auth, strlen(key_auth), G.expect_ext + 2) < 0)
        return 2;

    if (gnutls_global_init() < 0 || gnutls_certificate_allocate_credentials(&G.cred) < 0)
        return 2;
    const char *err = NULL;
    if (gnutls_priority_init(&G.prio, priority, &err) < 0) {
        fprintf(stderr, "alpn_load: bad priority string near '%s'\n", err ? err : "");
        return 2;
    }

    thread_stats *st = calloc((size_t)conc, sizeof(*st));
    pthread_t *th = calloc((size_t)conc, sizeof(*th));
    if (!st || !th)
        return 2;
    G.t_start = now_s();
    G.t_count_from = G.t_start + (G.count < 0 ? warmup : 0);
    G.t_stop = G.t_count_from + seconds;
    for (int i = 0; i < conc; i++) {
        if (pthread_create(&th[i], NULL, worker, &st[i]) != 0) {
            fprintf(stderr, "alpn_load: cannot start thread %d\n", i);
            return 2;
        }
    }
    for (int i = 0; i < conc; i++)
        pthread_join(th[i], NULL);
    double t_end = now_s();
    double elapsed = G.count < 0 ? seconds : t_end - G.t_start;

    size_t total = 0;
    for (int i = 0; i < conc; i++)
        total += st[i].n;
    uint32_t *all = malloc((total ? total : 1) * sizeof(*all));
    size_t k = 0;
    for (int i = 0; i < conc; i++) {
        if (all && st[i].n)
            memcpy(all + k, st[i].lat_us, st[i].n * sizeof(*all));
        k += st[i].n;
        free(st[i].lat_us);
    }
    double p50 = 0, p99 = 0, mx = 0;
    if (all && total) {
        qsort(all, total, sizeof(*all), cmp_u32);
        p50 = all[total / 2] / 1000.0;
        p99 = all[(total * 99) / 100 < total ? (total * 99) / 100 : total - 1] / 1000.0;
        mx = all[total - 1] / 1000.0;
    }
    long hs = atomic_load(&handshakes), er = atomic_load(&errors);
    printf("handshakes=%ld seconds=%.3f rate=%.1f errors=%ld unclean=%ld p50_ms=%.2f "
           "p99_ms=%.2f max_ms=%.2f tls=%s\n",
           hs, elapsed, elapsed > 0 ? (double)hs / elapsed : 0.0, er, atomic_load(&unclean), p50,
           p99, mx, tls_desc[0] ? tls_desc : "-");
    free(all);
    free(st);
    free(th);
    gnutls_priority_deinit(G.prio);
    gnutls_certificate_free_credentials(G.cred);
    gnutls_global_deinit();
    return (hs > 0 && er == 0) ? 0 : 1;
}
