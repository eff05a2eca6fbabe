/* The engine's HTTP: libcurl's multi interface with socket and timer
 * callbacks, so the host's poll() sees exactly libcurl's sockets and a
 * step never waits for the network. See http_async.h. */
#include "http_async.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include <acme/engine.h>

#include "http_host.h"
#include "internal.h"
#include "transport_curl.h"

typedef struct xfer {
    http_exchange *x;
    void *cookie;
    curl_call *call;        /* NULL in sync mode */
    int finished;
    uint64_t started_ms;    /* monotonic */
    uint64_t progress_ms;   /* the last time a byte moved, either way */
    curl_off_t moved;       /* bytes sent + received by then */
    struct xfer *next;
} xfer;

/* A transfer that has moved no byte for this long, while a request that
 * started after its last byte was answered in full, is given up (issue
 * 12: at 2,000 certificates POSTs got 0 bytes in 30 s on one connection
 * while others were answered; each held its order for the whole 30 s
 * timeout). The order retries it as it does a dropped connection. Only
 * when the CA answers others: a CA that answers nobody is slow or down,
 * and the request's own timeout is the rule then. */
#define STALL_MS 8000u

typedef struct sockent {
    curl_socket_t fd;
    int what;               /* CURL_POLL_IN / OUT / INOUT */
} sockent;

struct http_async {
    acme_client *c;
    CURLM *multi;
    int sync;               /* the host's own transport */
    http_host *host;        /* ... driven off the step (http_host.c) */
    xfer *list;
    sockent *socks;
    size_t sock_count, sock_cap;
    int timer_armed;
    uint64_t timer_at;
    size_t busy;
    uint64_t newest_answered;   /* latest start of a transfer answered in full */
    void (*watch)(void *ud, int fd, int events);
    void *watch_ud;
};

static int acme_events(int what)
{
    return ((what & CURL_POLL_IN) ? ACME_POLL_IN : 0) | ((what & CURL_POLL_OUT) ? ACME_POLL_OUT : 0);
}

static void collect(http_async *a);
static void collect_done(http_async *a);

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    http_async *a = userp;
    size_t i = 0;
    while (i < a->sock_count && a->socks[i].fd != fd)
        i++;
    if (what == CURL_POLL_REMOVE) {
        if (i < a->sock_count) {
            a->socks[i] = a->socks[--a->sock_count];
            /* libcurl reports this before it closes fd: the host's loop
             * lets go of it while it is still open. */
            if (a->watch)
                a->watch(a->watch_ud, (int)fd, ACME_POLL_REMOVE);
        }
        return 0;
    }
    if (i == a->sock_count) {
        if (a->sock_count == a->sock_cap) {
            size_t cap = a->sock_cap ? a->sock_cap * 2 : 16;
            sockent *n = realloc(a->socks, cap * sizeof(*n));
            if (!n)
                return -1;
            a->socks = n;
            a->sock_cap = cap;
        }
        a->socks[a->sock_count].fd = CURL_SOCKET_BAD;
        a->socks[a->sock_count].what = 0;
        a->sock_count++;
    }
    int changed = a->socks[i].fd != fd || a->socks[i].what != what;
    a->socks[i].fd = fd;
    a->socks[i].what = what;
    if (a->watch && changed)
        a->watch(a->watch_ud, (int)fd, acme_events(what));
    return 0;
}

void http_async_set_watch(http_async *a, void (*fn)(void *ud, int fd, int events), void *ud)
{
    a->watch = fn;
    a->watch_ud = ud;
}

/* Give up transfers stalled while the CA answers others (STALL_MS). */
static void give_up_stalled(http_async *a)
{
    if (!a->newest_answered || a->busy < 1)
        return;
    uint64_t now = now_ms();
    for (xfer *t = a->list; t; t = t->next) {
        if (t->finished || !t->call || t->x->patient)
            continue;
        CURL *easy = transport_curl_call_easy(t->call);
        curl_off_t up = 0, down = 0;
        long header = 0;
        curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
        curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
        curl_easy_getinfo(easy, CURLINFO_HEADER_SIZE, &header);
        curl_off_t moved = up + down + header;
        if (moved != t->moved) {
            t->moved = moved;
            t->progress_ms = now;
            continue;
        }
        if (now - t->progress_ms < STALL_MS || a->newest_answered <= t->progress_ms)
            continue;
        alog(a->c, ACME_LOG_WARNING,
             "%s %s: nothing moved for %llu s while later requests to the CA were answered; giving up this "
             "connection (the request is sent again)",
             t->x->req.method, t->x->req.url, (unsigned long long)((now - t->progress_ms) / 1000));
        curl_multi_remove_handle(a->multi, easy);
        transport_curl_call_free(t->call);
        t->call = NULL;
        t->x->rc = ACME_E_NETWORK;
        t->finished = 1;
        a->busy--;
    }
}

int http_async_socket_action(http_async *a, int fd, int events)
{
    if (!a->multi)
        return 0;
    size_t i = 0;
    while (i < a->sock_count && a->socks[i].fd != fd)
        i++;
    if (i == a->sock_count)
        return 0;
    int mask = ((events & ACME_POLL_IN) ? CURL_CSELECT_IN : 0) | ((events & ACME_POLL_OUT) ? CURL_CSELECT_OUT : 0) |
               ((events & ACME_POLL_ERR) ? CURL_CSELECT_ERR : 0);
    int running = 0;
    curl_multi_socket_action(a->multi, fd, mask, &running);
    collect(a);
    return 1;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    http_async *a = userp;
    a->timer_armed = timeout_ms >= 0;
    a->timer_at = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    return 0;
}

int http_async_new(acme_client *c, http_async **out)
{
    *out = NULL;
    int rc = net_transport_ready(c);
    if (rc)
        return rc;
    http_async *a = calloc(1, sizeof(*a));
    if (!a)
        return ACME_E_NOMEM;
    a->c = c;
    a->sync = c->transport.perform != transport_curl_ops.perform;
    if (a->sync) {
        rc = http_host_new(c, &a->host);
        if (rc) {
            free(a);
            return rc;
        }
    } else {
        if (!(a->multi = curl_multi_init())) {
            free(a);
            return ACME_E_NOMEM;
        }
        curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
        curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, on_timer);
        curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
        /* One CA, many orders: share a few connections (HTTP/2 streams
         * where the CA speaks it) instead of a handshake per request. */
        curl_multi_setopt(a->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 4L);
        curl_multi_setopt(a->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    }
    *out = a;
    return ACME_OK;
}

static void xfer_drop(http_async *a, xfer *t)
{
    if (t->call) {
        curl_multi_remove_handle(a->multi, transport_curl_call_easy(t->call));
        transport_curl_call_free(t->call);
    }
    if (!t->finished)
        a->busy--;
    free(t);
}

void http_async_free(http_async *a)
{
    if (!a)
        return;
    while (a->list) {
        xfer *t = a->list;
        a->list = t->next;
        xfer_drop(a, t);
    }
    if (a->multi)
        curl_multi_cleanup(a->multi);
    http_host_free(a->host);
    free(a->socks);
    free(a);
}

void http_async_set_wake(http_async *a, void (*wake)(void *), void *ud)
{
    if (a->host)
        http_host_set_wake(a->host, wake, ud);
}

int http_async_start(http_async *a, http_exchange *x, void *cookie)
{
    if (a->host)
        return http_host_start(a->host, x, cookie);
    xfer *t = calloc(1, sizeof(*t));
    if (!t)
        return ACME_E_NOMEM;
    t->x = x;
    t->cookie = cookie;
    t->started_ms = t->progress_ms = now_ms();
    alog(a->c, ACME_LOG_DEBUG, "%s %s", x->req.method, x->req.url);
    {
        x->rc = transport_curl_call_new(a->c->transport_ud, &x->req, &x->resp, &t->call);
        if (x->rc == ACME_OK) {
            CURL *easy = transport_curl_call_easy(t->call);
            curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
            if (curl_multi_add_handle(a->multi, easy) != CURLM_OK)
                x->rc = ACME_E_NOMEM;
        }
        if (x->rc) {
            transport_curl_call_free(t->call);
            t->call = NULL;
            t->finished = 1;
        } else {
            a->busy++;
        }
    }
    t->next = a->list;
    a->list = t;
    return ACME_OK;
}

void http_async_cancel(http_async *a, void *cookie)
{
    if (a->host) {
        http_host_cancel(a->host, cookie);
        return;
    }
    for (xfer **pp = &a->list; *pp;) {
        xfer *t = *pp;
        if (t->cookie == cookie) {
            *pp = t->next;
            xfer_drop(a, t);
        } else {
            pp = &t->next;
        }
    }
}

size_t http_async_fds(http_async *a, struct pollfd *fds, size_t cap)
{
    for (size_t i = 0; i < a->sock_count && i < cap; i++) {
        fds[i].fd = a->socks[i].fd;
        fds[i].events = (short)(((a->socks[i].what & CURL_POLL_IN) ? POLLIN : 0) |
                                ((a->socks[i].what & CURL_POLL_OUT) ? POLLOUT : 0));
        fds[i].revents = 0;
    }
    return a->sock_count;
}

long http_async_timeout_ms(http_async *a)
{
    if (a->host)
        return http_host_ready(a->host) ? 0 : -1;
    for (xfer *t = a->list; t; t = t->next)
        if (t->finished)
            return 0;
    /* While a transfer could turn out stalled, look again every second. */
    long stall_check = (a->newest_answered && a->busy) ? 1000 : -1;
    if (!a->timer_armed)
        return stall_check;
    uint64_t now = now_ms();
    long t = a->timer_at <= now ? 0 : (long)(a->timer_at - now);
    return stall_check >= 0 && stall_check < t ? stall_check : t;
}

size_t http_async_busy(const http_async *a)
{
    if (a->host)
        return http_host_busy(a->host);
    return a->busy;
}

static void give_up_stalled(http_async *a);

static void collect(http_async *a)
{
    collect_done(a);
    give_up_stalled(a);
}

static void collect_done(http_async *a)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(a->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        for (xfer *t = a->list; t; t = t->next) {
            if (t->call && transport_curl_call_easy(t->call) == msg->easy_handle) {
                t->x->rc = transport_curl_call_finish(t->call, (int)msg->data.result);
                if (t->x->rc == TRANSPORT_CURL_AGAIN) {
                    /* The host's trust-anchor lookup gave a root that
                     * verifies this server: the same request again, with
                     * it as the only anchor (once; nothing blocked here). */
                    CURL *easy = msg->easy_handle; /* msg dies with the removal */
                    curl_multi_remove_handle(a->multi, easy);
                    t->x->rc = transport_curl_call_rearm(t->call);
                    if (t->x->rc == ACME_OK) {
                        curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
                        if (curl_multi_add_handle(a->multi, easy) == CURLM_OK)
                            break;
                        t->x->rc = ACME_E_NOMEM;
                    }
                }
                if (t->x->rc == ACME_OK && t->x->resp.status < 100)
                    t->x->rc = ACME_E_NETWORK;
                if (t->x->rc == ACME_OK && t->started_ms > a->newest_answered)
                    a->newest_answered = t->started_ms;
                curl_multi_remove_handle(a->multi, transport_curl_call_easy(t->call));
                transport_curl_call_free(t->call);
                t->call = NULL;
                t->finished = 1;
                a->busy--;
                break;
            }
        }
    }
}

void http_async_step(http_async *a, void (*done)(void *ud, void *cookie), void *ud)
{
    if (a->host) {
        http_host_collect(a->host, done, ud);
        return;
    }
    if (a->multi) {
        /* Which of libcurl's sockets are ready: ask the kernel without
         * waiting, then hand each event to libcurl. */
        size_t n = a->sock_count;
        struct pollfd *pf = n ? calloc(n, sizeof(*pf)) : NULL;
        int running = 0;
        if (pf) {
            http_async_fds(a, pf, n);
            if (poll(pf, n, 0) > 0) {
                for (size_t i = 0; i < n; i++) {
                    if (!pf[i].revents)
                        continue;
                    int mask = ((pf[i].revents & POLLIN) ? CURL_CSELECT_IN : 0) |
                               ((pf[i].revents & POLLOUT) ? CURL_CSELECT_OUT : 0) |
                               ((pf[i].revents & (POLLERR | POLLHUP | POLLNVAL)) ? CURL_CSELECT_ERR : 0);
                    curl_multi_socket_action(a->multi, pf[i].fd, mask, &running);
                }
            }
            free(pf);
        }
        if (a->timer_armed && now_ms() >= a->timer_at) {
            a->timer_armed = 0;
            curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        collect(a);
    }
    /* Report after the bookkeeping: done() may start new exchanges. */
    for (;;) {
        xfer **pp = &a->list;
        while (*pp && !(*pp)->finished)
            pp = &(*pp)->next;
        if (!*pp)
            break;
        xfer *t = *pp;
        *pp = t->next;
        void *cookie = t->cookie;
        free(t);
        done(ud, cookie);
    }
}
