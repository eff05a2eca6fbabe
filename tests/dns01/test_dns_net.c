/* Unit tests: one DNS exchange (modules/dns01/dns_net.c) against small
 * servers on 127.0.0.1 run by this program: TCP fall-back when the UDP
 * answer is truncated, stray datagrams ignored, timeouts kept, refusals
 * reported, and server addresses parsed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns_net.h"
#include "dns_wire.h"

typedef enum mode {
    TRUNCATE_UDP,     /* UDP: header with TC; TCP: the full answer */
    STRAY_FIRST,      /* UDP: a datagram with another ID, then the answer */
    SILENT            /* never answer */
} mode;

typedef struct server {
    mode m;
    int udp, tcp;
    int stop[2];        /* written to end the thread */
    unsigned port;
    int udp_queries, tcp_queries;
    pthread_t thread;
} server;

/* A full answer: the query's header and question, QR set, 300 bytes of
 * TXT in the answer section. */
static size_t full_answer(const uint8_t *q, size_t qlen, uint8_t *out)
{
    memcpy(out, q, qlen);
    out[2] |= 0x80;
    out[7] = 1;
    size_t o = qlen;
    static const uint8_t rr[] = {0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0x01, 0x2d};
    memcpy(out + o, rr, sizeof(rr));
    o += sizeof(rr);
    out[o++] = 255;
    memset(out + o, 'x', 255);
    o += 255;
    out[o++] = 44;
    memset(out + o, 'y', 44);
    o += 44;
    return o;
}

static void *serve(void *arg)
{
    server *s = arg;
    uint8_t q[512], a[1024];
    for (;;) {
        struct pollfd p[3] = {{.fd = s->udp, .events = POLLIN}, {.fd = s->tcp, .events = POLLIN},
                              {.fd = s->stop[0], .events = POLLIN}};
        if (poll(p, 3, 10000) <= 0 || p[2].revents)
            return NULL;
        if (p[0].revents & POLLIN) {
            struct sockaddr_storage from;
            socklen_t fl = sizeof(from);
            ssize_t n = recvfrom(s->udp, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
            if (n < 12)
                continue;
            s->udp_queries++;
            if (s->m == SILENT)
                continue;
            if (s->m == STRAY_FIRST) {
                memcpy(a, q, (size_t)n);
                a[0] ^= 0xff;
                a[2] |= 0x80;
                sendto(s->udp, a, (size_t)n, 0, (struct sockaddr *)&from, fl);
                size_t len = full_answer(q, (size_t)n, a);
                sendto(s->udp, a, len, 0, (struct sockaddr *)&from, fl);
            } else {
                memcpy(a, q, (size_t)n);
                a[2] |= 0x80 | 0x02; /* QR, TC */
                sendto(s->udp, a, (size_t)n, 0, (struct sockaddr *)&from, fl);
            }
        }
        if (p[1].revents & POLLIN) {
            int c = accept(s->tcp, NULL, NULL);
            if (c < 0)
                continue;
            uint8_t lb[2];
            if (recv(c, lb, 2, MSG_WAITALL) == 2) {
                size_t n = ((size_t)lb[0] << 8) | lb[1];
                if (n <= sizeof(q) && recv(c, q, n, MSG_WAITALL) == (ssize_t)n) {
                    s->tcp_queries++;
                    size_t len = full_answer(q, n, a + 2);
                    a[0] = (uint8_t)(len >> 8);
                    a[1] = (uint8_t)len;
                    send(c, a, len + 2, MSG_NOSIGNAL);
                }
            }
            close(c);
        }
    }
}

static void server_start(server *s, mode m)
{
    memset(s, 0, sizeof(*s));
    s->m = m;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    s->tcp = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->tcp >= 0);
    assert_int_equal(bind(s->tcp, (struct sockaddr *)&in, sizeof(in)), 0);
    socklen_t l = sizeof(in);
    getsockname(s->tcp, (struct sockaddr *)&in, &l);
    s->port = ntohs(in.sin_port);
    assert_int_equal(listen(s->tcp, 4), 0);
    s->udp = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(bind(s->udp, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(pipe(s->stop), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(server *s)
{
    assert_int_equal(write(s->stop[1], "x", 1), 1);
    pthread_join(s->thread, NULL);
    close(s->stop[0]);
    close(s->stop[1]);
    close(s->udp);
    close(s->tcp);
}

static size_t query(uint8_t *q, uint16_t id)
{
    dns_builder b;
    dns_name n;
    dns_name_from_text(&n, "big.acme.test");
    dns_builder_init(&b, q, 512, id, DNS_F_RD);
    dns_builder_question(&b, &n, DNS_T_TXT, DNS_C_IN);
    return dns_builder_finish(&b);
}

static void tcp_fallback_on_truncation(void **state)
{
    (void)state;
    server s;
    server_start(&s, TRUNCATE_UDP);
    dns_server ds;
    uint8_t addr[4] = {127, 0, 0, 1};
    dns_server_from_addr(addr, 4, s.port, &ds);
    uint8_t q[512], a[DNS_MAX_MSG];
    size_t qlen = query(q, 0x4242), alen = 0;
    char why[128];
    assert_int_equal(dns_exchange(&ds, q, qlen, a, sizeof(a), &alen, 2000, 0, why, sizeof(why)),
                     DNS_NET_OK);
    assert_true(dns_exchange_used_tcp());
    assert_int_equal(s.udp_queries, 1);
    assert_int_equal(s.tcp_queries, 1);
    dns_msg m;
    assert_int_equal(dns_parse(&m, a, alen, NULL), 0);
    assert_false(m.flags & DNS_F_TC);
    assert_int_equal(m.id, 0x4242);
    dns_iter it;
    dns_rr rr;
    char txt[400];
    dns_iter_init(&it, &m);
    assert_true(dns_iter_next(&it, &rr));
    assert_int_equal(dns_rdata_txt(&m, &rr, txt, sizeof(txt)), 0);
    assert_int_equal(strlen(txt), 299);
    server_stop(&s);
}

static void stray_datagrams_ignored(void **state)
{
    (void)state;
    server s;
    server_start(&s, STRAY_FIRST);
    dns_server ds;
    uint8_t addr[4] = {127, 0, 0, 1};
    dns_server_from_addr(addr, 4, s.port, &ds);
    uint8_t q[512], a[DNS_MAX_MSG];
    size_t qlen = query(q, 0x1111), alen = 0;
    char why[128];
    assert_int_equal(dns_exchange(&ds, q, qlen, a, sizeof(a), &alen, 2000, 0, why, sizeof(why)),
                     DNS_NET_OK);
    assert_false(dns_exchange_used_tcp());
    assert_int_equal(a[0], 0x11);
    assert_int_equal(a[1], 0x11);
    server_stop(&s);
}

static void silent_server_times_out_within_bound(void **state)
{
    (void)state;
    server s;
    server_start(&s, SILENT);
    dns_server ds;
    uint8_t addr[4] = {127, 0, 0, 1};
    dns_server_from_addr(addr, 4, s.port, &ds);
    uint8_t q[512], a[DNS_MAX_MSG];
    size_t qlen = query(q, 7), alen = 0;
    char why[128];
    uint64_t t0 = dns_now_ms();
    assert_int_equal(dns_exchange(&ds, q, qlen, a, sizeof(a), &alen, 600, 0, why, sizeof(why)),
                     DNS_NET_TIMEOUT);
    uint64_t took = dns_now_ms() - t0;
    assert_true(took >= 550 && took < 1500);
    assert_int_equal(s.udp_queries, 3); /* sent three times within the bound */
    assert_non_null(strstr(why, "no answer"));
    server_stop(&s);
}

static void closed_port_is_refused(void **state)
{
    (void)state;
    /* Bind and close to find a port nobody listens on. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&in, sizeof(in));
    socklen_t l = sizeof(in);
    getsockname(fd, (struct sockaddr *)&in, &l);
    close(fd);
    dns_server ds;
    uint8_t addr[4] = {127, 0, 0, 1};
    dns_server_from_addr(addr, 4, ntohs(in.sin_port), &ds);
    uint8_t q[512], a[512];
    size_t qlen = query(q, 9), alen = 0;
    char why[128];
    assert_int_equal(dns_exchange(&ds, q, qlen, a, sizeof(a), &alen, 1000, 0, why, sizeof(why)),
                     DNS_NET_REFUSED);
    assert_int_equal(dns_exchange(&ds, q, qlen, a, sizeof(a), &alen, 1000, 1, why, sizeof(why)),
                     DNS_NET_REFUSED);
}

static void server_specs(void **state)
{
    (void)state;
    dns_server s;
    const char *why = NULL;
    assert_int_equal(dns_server_parse("127.0.0.1", 53, &s, &why), 0);
    assert_string_equal(s.text, "127.0.0.1:53");
    assert_int_equal(dns_server_parse("127.0.0.2:5353", 53, &s, &why), 0);
    assert_string_equal(s.text, "127.0.0.2:5353");
    assert_int_equal(dns_server_parse("::1", 53, &s, &why), 0);
    assert_string_equal(s.text, "[::1]:53");
    assert_int_equal(dns_server_parse("[::1]:8053", 53, &s, &why), 0);
    assert_string_equal(s.text, "[::1]:8053");
    assert_int_equal(dns_server_parse("127.0.0.1:0", 53, &s, &why), -1);
    assert_int_equal(dns_server_parse("127.0.0.1:65536", 53, &s, &why), -1);
    assert_int_equal(dns_server_parse("127.0.0.1:x", 53, &s, &why), -1);
    assert_int_equal(dns_server_parse("[::1", 53, &s, &why), -1);
    assert_int_equal(dns_server_parse("[::1]x", 53, &s, &why), -1);
    assert_int_equal(dns_server_parse("", 53, &s, &why), -1);
    assert_int_equal(dns_server_parse(":53", 53, &s, &why), -1);
    dns_server t;
    dns_server_parse("127.0.0.1:53", 0, &s, NULL);
    dns_server_parse("127.0.0.1", 53, &t, NULL);
    assert_true(dns_server_equal(&s, &t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tcp_fallback_on_truncation),
        cmocka_unit_test(stray_datagrams_ignored),
        cmocka_unit_test(silent_server_times_out_within_bound),
        cmocka_unit_test(closed_port_is_refused),
        cmocka_unit_test(server_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
