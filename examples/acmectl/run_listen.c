/* run: the address metrics-listen takes — an IP literal and a port, on
 * loopback only. Apart from the listener so the configuration reader
 * (and its fuzzer) checks it with nothing else linked in. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "acmectl.h"

/* "127.0.0.1:9465", "[::1]:9465" into a socket address; only loopback
 * addresses. Port 0: the kernel picks one (the log line says which). */
int run_listen_parse(const char *v, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen)
{
    char host[64];
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof(host)) {
        bprintf(err, errlen, "metrics-listen \"%s\": give ADDRESS:PORT, e.g. 127.0.0.1:9465", v);
        return -1;
    }
    memcpy(host, v, (size_t)(colon - v));
    host[colon - v] = 0;
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || errno || port > 65535) {
        bprintf(err, errlen, "metrics-listen \"%s\": the port must be a number from 0 to 65535", v);
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    size_t hl = strlen(host);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
        if ((ntohl(a4->sin_addr.s_addr) >> 24) == 127)
            return 0;
    } else if (hl > 2 && host[0] == '[' && host[hl - 1] == ']' &&
               (host[hl - 1] = 0, inet_pton(AF_INET6, host + 1, &a6->sin6_addr) == 1)) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
        if (IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
            return 0;
    } else {
        bprintf(err, errlen, "metrics-listen \"%s\": the address must be an IP address (IPv6 in brackets), "
                "not a name", v);
        return -1;
    }
    bprintf(err, errlen, "metrics-listen \"%s\": only a loopback address (127.0.0.0/8, [::1]) is allowed; "
            "put a reverse proxy in front to reach it from elsewhere", v);
    return -1;
}

int run_metrics_check_listen(const char *v, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    return run_listen_parse(v, &ss, &len, err, errlen);
}

