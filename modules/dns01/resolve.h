/* DNS lookups the module needs: one query, the CNAME chain of the
 * challenge name, the zone cut above a name (SOA walk), the zone's
 * authoritative servers (NS) and a TXT check at one server. */
#ifndef DNS01_RESOLVE_H
#define DNS01_RESOLVE_H

#include "dns01.h"

typedef struct dns_answer {
    uint8_t *buf;        /* DNS_MAX_MSG bytes */
    size_t len;
    dns_msg msg;
    unsigned rcode;
    dns_net_status net;  /* of the last exchange */
} dns_answer;

int dns_answer_init(dns_answer *a);
void dns_answer_free(dns_answer *a);

/* Ask s for (name, type), recursion desired or not. 0 with the parsed,
 * checked answer in a (ID, question and opcode match); -1 with why. */
int resolve_query(dns01 *d, const dns_server *s, const dns_name *name, uint16_t type, int rd,
                  dns_answer *a, char *why, size_t whylen);

/* Follow CNAMEs from name through the resolver; *target is where they
 * end (name itself when there is none). ACME_OK or a code (d->err set). */
int resolve_cname_chain(dns01 *d, const dns_name *name, dns_name *target);

/* The zone that holds name: SOA queries up the tree through the resolver.
 * ACME_OK or a code (d->err set). */
int resolve_zone(dns01 *d, const dns_name *name, dns_name *zone);

/* One authoritative server address. */
typedef struct dns01_ns {
    char host[256];             /* the NS name, or the configured spec */
    dns_server addr;
} dns01_ns;

/* The zone's authoritative servers: the configured list, or the NS set
 * with the addresses of each (glue or A/AAAA lookups), at
 * nameserver-port. ACME_OK or a code (d->err set). */
int resolve_nameservers(dns01 *d, const dns_name *zone, dns01_ns *out, size_t max, size_t *count);

/* Does s answer value among the TXT records at name (no recursion)?
 * 1 yes; 0 no, seen says what it answered; -1 no answer, seen says why;
 * -2 the address cannot be reached from here at all (no route, no such
 * address family). */
int resolve_txt_has(dns01 *d, const dns_server *s, const dns_name *name, const char *value,
                    char *seen, size_t seenlen);

#endif
