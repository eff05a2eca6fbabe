/* UDP/TCP exchange of one DNS message. See dns_net.h. */
#include "dns_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define UDP_TRIES 3

static _Thread_local int last_tcp;

uint64_t dns_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void describe(dns_server *s)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (s->sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&s->sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(s->text, sizeof(s->text), "%s:%u", host, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&s->sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(s->text, sizeof(s->text), "[%s]:%u", host, port);
    }
}

void dns_server_from_addr(const uint8_t *addr, int addrlen, unsigned port, dns_server *out)
{
    memset(out, 0, sizeof(*out));
    if (addrlen == 4) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->sa;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        memcpy(&in->sin_addr, addr, 4);
        out->salen = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->sa;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        memcpy(&in6->sin6_addr, addr, 16);
        out->salen = sizeof(*in6);
    }
    describe(out);
}

static int parse_port(const char *s, unsigned *port)
{
    char *end;
    if (!*s)
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v == 0 || v > 65535 || *s == '-' || *s == '+')
        return -1;
    *port = (unsigned)v;
    return 0;
}

int dns_server_parse(const char *spec, unsigned default_port, dns_server *out, const char **why)
{
    static const char *dummy;
    if (!why)
        why = &dummy;
    memset(out, 0, sizeof(*out));
    if (!spec || !*spec || strlen(spec) > 300) {
        *why = "empty or too long";
        return -1;
    }
    char host[301];
    unsigned port = default_port;
    const char *colon = strrchr(spec, ':');
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || (close[1] && close[1] != ':')) {
            *why = "an IPv6 address in brackets must be followed by nothing or :port";
            return -1;
        }
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = '\0';
        if (close[1] == ':' && parse_port(close + 2, &port) != 0) {
            *why = "the port is not a number from 1 to 65535";
            return -1;
        }
    } else if (colon && strchr(spec, ':') == colon) {
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        if (parse_port(colon + 1, &port) != 0) {
            *why = "the port is not a number from 1 to 65535";
            return -1;
        }
    } else {
        strcpy(host, spec); /* a bare IPv6 address or a host without port */
    }
    uint8_t a[16];
    if (inet_pton(AF_INET, host, a) == 1) {
        dns_server_from_addr(a, 4, port, out);
        return 0;
    }
    if (inet_pton(AF_INET6, host, a) == 1) {
        dns_server_from_addr(a, 16, port, out);
        return 0;
    }
    if (!*host) {
        *why = "no host";
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_ADDRCONFIG;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) {
        *why = "the host name does not resolve";
        return -1;
    }
    if (res->ai_family == AF_INET)
        dns_server_from_addr((const uint8_t *)&((struct sockaddr_in *)res->ai_addr)->sin_addr, 4,
                             port, out);
    else
        dns_server_from_addr((const uint8_t *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr,
                             16, port, out);
    freeaddrinfo(res);
    return 0;
}

int dns_server_equal(const dns_server *a, const dns_server *b)
{
    return a->salen == b->salen && !strcmp(a->text, b->text);
}

static dns_net_status errno_status(int e, const char *what, char *why, size_t whylen)
{
    snprintf(why, whylen, "%s: %s", what, strerror(e));
    switch (e) {
    case ECONNREFUSED:
    case ECONNRESET:
        return DNS_NET_REFUSED;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EAFNOSUPPORT:
    case EADDRNOTAVAIL:
        return DNS_NET_UNREACHABLE;
    case ETIMEDOUT:
        return DNS_NET_TIMEOUT;
    default:
        return DNS_NET_ERROR;
    }
}

/* Wait for fd to become ready for events, until the deadline. 1 ready,
 * 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = dns_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        uint64_t left = deadline - now;
        int rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc > 0)
            return 1;
    }
}

static dns_net_status udp_exchange(const dns_server *s, const uint8_t *q, size_t qlen,
                                   uint8_t *resp, size_t cap, size_t *rlen, uint64_t deadline,
                                   char *why, size_t whylen)
{
    int fd = socket(s->sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return errno_status(errno, "socket", why, whylen);
    /* Connected: the kernel drops datagrams from anyone else and reports
     * ICMP errors to us. */
    if (connect(fd, (const struct sockaddr *)&s->sa, s->salen) != 0) {
        dns_net_status st = errno_status(errno, "connect", why, whylen);
        close(fd);
        return st;
    }
    uint64_t start = dns_now_ms();
    uint64_t total = deadline > start ? deadline - start : 0;
    for (int attempt = 0; attempt < UDP_TRIES; attempt++) {
        if (send(fd, q, qlen, 0) < 0) {
            dns_net_status st = errno_status(errno, "send", why, whylen);
            close(fd);
            return st;
        }
        uint64_t try_end = attempt + 1 == UDP_TRIES ? deadline : start + total * (uint64_t)(attempt + 1) / UDP_TRIES;
        for (;;) {
            int w = wait_fd(fd, POLLIN, try_end);
            if (w < 0) {
                dns_net_status st = errno_status(errno, "poll", why, whylen);
                close(fd);
                return st;
            }
            if (w == 0)
                break; /* re-send */
            ssize_t n = recv(fd, resp, cap, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    continue;
                dns_net_status st = errno_status(errno, "receive", why, whylen);
                close(fd);
                return st;
            }
            if (n >= 12 && resp[0] == q[0] && resp[1] == q[1]) {
                *rlen = (size_t)n;
                close(fd);
                return DNS_NET_OK;
            }
            /* A stray or late datagram: keep waiting. */
        }
    }
    close(fd);
    snprintf(why, whylen, "no answer over UDP within %llu ms", (unsigned long long)total);
    return DNS_NET_TIMEOUT;
}

static dns_net_status tcp_io(int fd, uint8_t *buf, size_t n, int writing, uint64_t deadline,
                             char *why, size_t whylen)
{
    size_t done = 0;
    while (done < n) {
        int w = wait_fd(fd, writing ? POLLOUT : POLLIN, deadline);
        if (w < 0)
            return errno_status(errno, "poll", why, whylen);
        if (w == 0) {
            snprintf(why, whylen, "TCP %s timed out", writing ? "send" : "receive");
            return DNS_NET_TIMEOUT;
        }
        ssize_t r = writing ? send(fd, buf + done, n - done, MSG_NOSIGNAL) : recv(fd, buf + done, n - done, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return errno_status(errno, writing ? "TCP send" : "TCP receive", why, whylen);
        }
        if (r == 0) {
            snprintf(why, whylen, "the server closed the TCP connection early");
            return DNS_NET_ERROR;
        }
        done += (size_t)r;
    }
    return DNS_NET_OK;
}

static dns_net_status tcp_exchange(const dns_server *s, const uint8_t *q, size_t qlen,
                                   uint8_t *resp, size_t cap, size_t *rlen, uint64_t deadline,
                                   char *why, size_t whylen)
{
    if (qlen > 65535)
        return DNS_NET_ERROR;
    int fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return errno_status(errno, "socket", why, whylen);
    dns_net_status st = DNS_NET_OK;
    if (connect(fd, (const struct sockaddr *)&s->sa, s->salen) != 0) {
        if (errno != EINPROGRESS) {
            st = errno_status(errno, "TCP connect", why, whylen);
            goto out;
        }
        int w = wait_fd(fd, POLLOUT, deadline);
        if (w <= 0) {
            st = w < 0 ? errno_status(errno, "poll", why, whylen) : DNS_NET_TIMEOUT;
            if (w == 0)
                snprintf(why, whylen, "TCP connect timed out");
            goto out;
        }
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
            st = errno_status(err ? err : errno, "TCP connect", why, whylen);
            goto out;
        }
    }
    uint8_t *out = malloc(qlen + 2);
    if (!out) {
        st = DNS_NET_ERROR;
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    out[0] = (uint8_t)(qlen >> 8);
    out[1] = (uint8_t)qlen;
    memcpy(out + 2, q, qlen);
    st = tcp_io(fd, out, qlen + 2, 1, deadline, why, whylen);
    free(out);
    if (st)
        goto out;
    /* Answers with another ID (none expected on a fresh connection) are
     * skipped, up to a few. */
    for (int i = 0; i < 4; i++) {
        uint8_t lb[2];
        if ((st = tcp_io(fd, lb, 2, 0, deadline, why, whylen)))
            goto out;
        size_t n = ((size_t)lb[0] << 8) | lb[1];
        if (n < 12 || n > cap) {
            snprintf(why, whylen, "TCP answer of %zu bytes", n);
            st = DNS_NET_ERROR;
            goto out;
        }
        if ((st = tcp_io(fd, resp, n, 0, deadline, why, whylen)))
            goto out;
        if (resp[0] == q[0] && resp[1] == q[1]) {
            *rlen = n;
            goto out;
        }
    }
    snprintf(why, whylen, "no TCP answer with our message ID");
    st = DNS_NET_ERROR;
out:
    close(fd);
    return st;
}

dns_net_status dns_exchange(const dns_server *s, const uint8_t *q, size_t qlen, uint8_t *resp,
                            size_t cap, size_t *rlen, unsigned timeout_ms, int tcp, char *why,
                            size_t whylen)
{
    uint64_t deadline = dns_now_ms() + timeout_ms;
    last_tcp = 0;
    if (why && whylen)
        why[0] = '\0';
    if (qlen < 12)
        return DNS_NET_ERROR;
    if (!tcp) {
        dns_net_status st = udp_exchange(s, q, qlen, resp, cap, rlen, deadline, why, whylen);
        if (st != DNS_NET_OK)
            return st;
        if (!(resp[2] & 0x02)) /* TC */
            return DNS_NET_OK;
    }
    last_tcp = 1;
    return tcp_exchange(s, q, qlen, resp, cap, rlen, deadline, why, whylen);
}

int dns_exchange_used_tcp(void)
{
    return last_tcp;
}
