/* Moving DNS messages: server addresses, one request/answer exchange over
 * UDP with a fall-back to TCP when the answer is truncated. Bounded by a
 * deadline; nothing else here knows what the bytes mean. */
#ifndef DNS01_DNS_NET_H
#define DNS01_DNS_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct dns_server {
    struct sockaddr_storage sa;
    socklen_t salen;
    char text[64];      /* "127.0.0.1:53", "[::1]:5353": for messages */
} dns_server;

/* "192.0.2.1", "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]:5353", or a
 * host name (resolved once, with the system's resolver). 0, or -1 with
 * *why (static) set. */
int dns_server_parse(const char *spec, unsigned default_port, dns_server *out, const char **why);
/* From raw A (4 bytes) or AAAA (16 bytes) data. */
void dns_server_from_addr(const uint8_t *addr, int addrlen, unsigned port, dns_server *out);
int dns_server_equal(const dns_server *a, const dns_server *b);

typedef enum dns_net_status {
    DNS_NET_OK = 0,
    DNS_NET_TIMEOUT,       /* no answer within the bound */
    DNS_NET_REFUSED,       /* ICMP port unreachable / TCP RST: nothing listens */
    DNS_NET_UNREACHABLE,   /* no route to that address family or host */
    DNS_NET_ERROR          /* anything else (see why) */
} dns_net_status;

/* Send query q (its first two bytes are the ID) and wait for the answer
 * with the same ID: over UDP (re-sent a few times within timeout_ms), then
 * over TCP if the UDP answer is truncated or tcp is set. The answer goes
 * to resp (cap bytes). why gets one phrase on failure. */
dns_net_status dns_exchange(const dns_server *s, const uint8_t *q, size_t qlen, uint8_t *resp,
                            size_t cap, size_t *rlen, unsigned timeout_ms, int tcp, char *why,
                            size_t whylen);

/* 1 if the exchange went over TCP (the last call on this thread). */
int dns_exchange_used_tcp(void);

/* Monotonic milliseconds. */
uint64_t dns_now_ms(void);

#endif
