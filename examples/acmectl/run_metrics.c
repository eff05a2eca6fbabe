/* run: the engine's metrics (libacme's acme_engine_metrics, Prometheus
 * text 0.0.4) for a scraper. metrics-listen = ADDR:PORT serves them over
 * HTTP on a loopback address only (nothing in them is secret, but a
 * daemon that talks to a CA has no business exposing a server to the
 * network by default); metrics-file = PATH keeps them in a file replaced
 * atomically (for node_exporter's textfile collector), rewritten when
 * they change.
 *
 * Threads: the engine may be called from the loop only, so the loop
 * makes the text after each step (run_metrics_update) and the listener's
 * own thread serves the last copy, each connection on a short-lived
 * thread of its own (at most MAX_SCRAPES at once; more are closed at
 * once). A scraper that connects and sends nothing, or reads slowly,
 * holds only its thread (bounded by SCRAPE_WAIT_MS per read and write):
 * never the loop, never another scrape. The text changes only in steps:
 * it holds no clock reading. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "acmectl.h"

#define SCRAPE_WAIT_MS 2000
#define MAX_SCRAPES 8

struct run_metrics {
    int fd;                /* the listener, -1 without metrics-listen */
    int stop[2];           /* the loop -> the thread: stop */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t gone;   /* a connection's thread ended */
    unsigned active;       /* connection threads running (under mu) */
    char *text;            /* the last metrics the loop made (under mu) */
    char *file;            /* metrics-file, or NULL */
    char *written;         /* what metrics-file holds */
};

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return; /* the scraper went away or stalled past SO_SNDTIMEO */
        p += w;
        n -= (size_t)w;
    }
}

static void answer(int fd, int status, const char *reason, const char *ctype, const char *body, int head_only)
{
    char head[256];
    size_t blen = strlen(body);
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, reason, ctype, blen);
    write_all(fd, head, (size_t)hl);
    if (!head_only)
        write_all(fd, body, blen);
}

/* One connection: read the request head (bounded), answer, close. */
static void serve_one(run_metrics *m, int fd)
{
    struct timeval tv = {SCRAPE_WAIT_MS / 1000, (SCRAPE_WAIT_MS % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char req[2048];
    size_t got = 0;
    while (got < sizeof(req) - 1 && !memmem(req, got, "\r\n\r\n", 4) && !memmem(req, got, "\n\n", 2)) {
        ssize_t r = read(fd, req + got, sizeof(req) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    req[got] = 0;
    char method[8] = "", target[256] = "";
    if (sscanf(req, "%7s %255s", method, target) != 2) {
        answer(fd, 400, "Bad Request", "text/plain", "a request line was expected\n", 0);
        return;
    }
    int head = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") && !head) {
        answer(fd, 405, "Method Not Allowed", "text/plain", "GET /metrics\n", 0);
        return;
    }
    char *q = strchr(target, '?');
    if (q)
        *q = 0;
    if (strcmp(target, "/metrics") && strcmp(target, "/")) {
        answer(fd, 404, "Not Found", "text/plain", "the metrics are at /metrics\n", head);
        return;
    }
    pthread_mutex_lock(&m->mu);
    char *text = m->text ? strdup(m->text) : strdup("");
    pthread_mutex_unlock(&m->mu);
    if (!text) {
        answer(fd, 500, "Internal Server Error", "text/plain", "out of memory\n", head);
        return;
    }
    answer(fd, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, head);
    free(text);
}

typedef struct scrape {
    run_metrics *m;
    int fd;
} scrape;

static void *serve_thread(void *arg)
{
    scrape *s = arg;
    run_metrics *m = s->m;
    serve_one(m, s->fd);
    close(s->fd);
    free(s);
    pthread_mutex_lock(&m->mu);
    m->active--;
    pthread_cond_signal(&m->gone);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* One thread per connection, detached; run_metrics_free waits for them. */
static void spawn(run_metrics *m, int fd)
{
    scrape *s = malloc(sizeof(*s));
    pthread_mutex_lock(&m->mu);
    int room = m->active < MAX_SCRAPES;
    if (room && s)
        m->active++;
    pthread_mutex_unlock(&m->mu);
    if (!room || !s) {
        free(s);
        close(fd);
        return;
    }
    s->m = m;
    s->fd = fd;
    pthread_attr_t a;
    pthread_t t;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, serve_thread, s) != 0) {
        close(fd);
        free(s);
        pthread_mutex_lock(&m->mu);
        m->active--;
        pthread_mutex_unlock(&m->mu);
    }
    pthread_attr_destroy(&a);
}

static void *serve(void *arg)
{
    run_metrics *m = arg;
    for (;;) {
        struct pollfd p[2] = {{m->stop[0], POLLIN, 0}, {m->fd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (p[0].revents)
            return NULL;
        if (!p[1].revents)
            continue;
        int c = accept4(m->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue; /* EAGAIN (another wake took it), or the client gave up */
        spawn(m, c);
    }
}

run_metrics *run_metrics_new(const char *listen_at, const char *file, char *err, size_t errlen)
{
    run_metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        bprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->fd = m->stop[0] = m->stop[1] = -1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->gone, NULL);
    if (file && !(m->file = strdup(file))) {
        run_metrics_free(m);
        bprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!listen_at)
        return m;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    if (run_listen_parse(listen_at, &ss, &len, err, errlen) != 0) {
        run_metrics_free(m);
        return NULL;
    }
    int one = 1;
    m->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m->fd < 0 || setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(m->fd, (struct sockaddr *)&ss, len) != 0 || listen(m->fd, 16) != 0) {
        bprintf(err, errlen, "metrics-listen %s: %s (is another program on that port?)", listen_at, strerror(errno));
        run_metrics_free(m);
        return NULL;
    }
    if (pipe2(m->stop, O_CLOEXEC) != 0 || pthread_create(&m->thread, NULL, serve, m) != 0) {
        bprintf(err, errlen, "metrics-listen %s: cannot start its thread: %s", listen_at, strerror(errno));
        run_metrics_free(m);
        return NULL;
    }
    m->started = 1;
    char shown[INET6_ADDRSTRLEN] = "?";
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);
    unsigned port = 0;
    if (getsockname(m->fd, (struct sockaddr *)&got, &gl) == 0) {
        if (got.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&got)->sin_addr, shown, sizeof(shown));
            port = ntohs(((struct sockaddr_in *)&got)->sin_port);
        } else {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&got)->sin6_addr, shown, sizeof(shown));
            port = ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
        }
    }
    int v6 = got.ss_family == AF_INET6;
    progress(ACME_LOG_INFO, "metrics on http://%s%s%s:%u/metrics", v6 ? "[" : "", shown, v6 ? "]" : "", port);
    return m;
}

void run_metrics_free(run_metrics *m)
{
    if (!m)
        return;
    if (m->started) {
        /* Scrapes being answered finish first (bounded by SCRAPE_WAIT_MS). */
        write_all(m->stop[1], "x", 1);
        pthread_join(m->thread, NULL);
        pthread_mutex_lock(&m->mu);
        while (m->active)
            pthread_cond_wait(&m->gone, &m->mu);
        pthread_mutex_unlock(&m->mu);
    }
    if (m->stop[0] >= 0) {
        close(m->stop[0]);
        close(m->stop[1]);
    }
    if (m->fd >= 0)
        close(m->fd);
    pthread_cond_destroy(&m->gone);
    pthread_mutex_destroy(&m->mu);
    free(m->text);
    free(m->file);
    free(m->written);
    free(m);
}

static char *metrics_text(acme_engine *e)
{
    acme_buffer *b = acme_buffer_new();
    char *text = NULL;
    if (b && acme_engine_metrics(e, b) == ACME_OK)
        text = strdup(acme_buffer_data(b) ? acme_buffer_data(b) : "");
    acme_buffer_free(b);
    return text;
}

static int file_write(run_metrics *m, const char *text, int quiet_errors)
{
    if (m->written && !strcmp(m->written, text))
        return 0;
    char *dcopy = strdup(m->file), *bcopy = strdup(m->file), *copy = strdup(text);
    int rc = -1;
    if (dcopy && bcopy && copy)
        rc = file_write_atomic(dirname(dcopy), basename(bcopy), text, strlen(text), 0644);
    int err = errno;
    if (rc == 0) {
        free(m->written);
        m->written = copy;
        copy = NULL;
    } else if (!quiet_errors) {
        progress(ACME_LOG_WARNING, "cannot write metrics-file %s: %s", m->file, strerror(err));
    }
    free(copy);
    free(dcopy);
    free(bcopy);
    errno = err;
    return rc;
}

int run_metrics_update(run_metrics *m, acme_engine *e, int quiet_errors)
{
    if (!m)
        return 0;
    char *text = metrics_text(e);
    if (!text)
        return 0; /* out of memory: serve and keep the last one */
    int rc = m->file ? file_write(m, text, quiet_errors) : 0;
    if (m->started) {
        pthread_mutex_lock(&m->mu);
        if (!m->text || strcmp(m->text, text)) {
            char *old = m->text;
            m->text = text;
            text = old;
        }
        pthread_mutex_unlock(&m->mu);
    }
    free(text);
    return rc;
}
