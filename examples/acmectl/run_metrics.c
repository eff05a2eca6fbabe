/* run: the engine's metrics (libacme's acme_engine_metrics, Prometheus
 * text 0.0.4) for a scraper. metrics-listen = ADDR:PORT serves them over
 * HTTP on a loopback address only (nothing in them is secret, but a
 * daemon that talks to a CA has no business exposing a server to the
 * network by default); metrics-file = PATH keeps them in a file replaced
 * atomically (for node_exporter's textfile collector), rewritten when
 * they change.
 *
 * The listener is one non-blocking socket in the daemon's poll(). A
 * scrape is answered at once: the request is read with a short bound
 * (SCRAPE_WAIT_MS, loopback clients send it with the connect), the
 * answer written, the connection closed. A client that sends nothing
 * costs the loop at most that bound. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "acmectl.h"

#define SCRAPE_WAIT_MS 200
#define SCRAPES_PER_WAKE 8

struct run_metrics {
    int fd;                /* the listener, -1 without metrics-listen */
    char *file;            /* metrics-file, or NULL */
    char *written;         /* what metrics-file holds */
};

run_metrics *run_metrics_new(const char *listen_at, const char *file, char *err, size_t errlen)
{
    run_metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        bprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->fd = -1;
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
    progress(ACME_LOG_INFO, "metrics on http://%s%s%s:%u/metrics", got.ss_family == AF_INET6 ? "[" : "", shown,
             got.ss_family == AF_INET6 ? "]" : "", port);
    return m;
}

void run_metrics_free(run_metrics *m)
{
    if (!m)
        return;
    if (m->fd >= 0)
        close(m->fd);
    free(m->file);
    free(m->written);
    free(m);
}

int run_metrics_fd(const run_metrics *m)
{
    return m ? m->fd : -1;
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

static void answer(int fd, int status, const char *reason, const char *ctype, const char *body)
{
    char head[256];
    size_t blen = strlen(body);
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, reason, ctype, blen);
    write_all(fd, head, (size_t)hl);
    write_all(fd, body, blen);
}

/* One connection: read the request line (bounded), answer, close. */
static void serve_one(int fd, acme_engine *e)
{
    char req[2048];
    size_t got = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (got < sizeof(req) - 1 && !memmem(req, got, "\r\n\r\n", 4) && !memmem(req, got, "\n\n", 2)) {
        if (poll(&p, 1, SCRAPE_WAIT_MS) <= 0)
            break;
        ssize_t r = read(fd, req + got, sizeof(req) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    req[got] = 0;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    char method[8] = "", target[256] = "";
    if (sscanf(req, "%7s %255s", method, target) != 2) {
        answer(fd, 400, "Bad Request", "text/plain", "a request line was expected\n");
        return;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        answer(fd, 405, "Method Not Allowed", "text/plain", "GET /metrics\n");
        return;
    }
    char *q = strchr(target, '?');
    if (q)
        *q = 0;
    if (strcmp(target, "/metrics") && strcmp(target, "/")) {
        answer(fd, 404, "Not Found", "text/plain", "the metrics are at /metrics\n");
        return;
    }
    char *text = metrics_text(e);
    if (!text) {
        answer(fd, 500, "Internal Server Error", "text/plain", "out of memory\n");
        return;
    }
    answer(fd, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", strcmp(method, "HEAD") ? text : "");
    free(text);
}

void run_metrics_serve(run_metrics *m, acme_engine *e)
{
    if (!m || m->fd < 0)
        return;
    for (int i = 0; i < SCRAPES_PER_WAKE; i++) {
        int c = accept4(m->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return; /* EAGAIN: none left */
        serve_one(c, e);
        close(c);
    }
}

int run_metrics_write(run_metrics *m, acme_engine *e, int quiet_errors)
{
    if (!m || !m->file)
        return 0;
    char *text = metrics_text(e);
    if (!text)
        return 0;
    if (m->written && !strcmp(m->written, text)) {
        free(text);
        return 0;
    }
    char *dcopy = strdup(m->file), *bcopy = strdup(m->file);
    int rc = -1;
    if (dcopy && bcopy)
        rc = file_write_atomic(dirname(dcopy), basename(bcopy), text, strlen(text), 0644);
    int err = errno;
    if (rc == 0) {
        free(m->written);
        m->written = text;
        text = NULL;
    } else if (!quiet_errors) {
        progress(ACME_LOG_WARNING, "cannot write metrics-file %s: %s", m->file, strerror(err));
    }
    free(text);
    free(dcopy);
    free(bcopy);
    errno = err;
    return rc;
}
