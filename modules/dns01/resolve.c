/* DNS lookups: CNAME chain, SOA walk, NS set, TXT check. See resolve.h. */
#include "resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

int dns_answer_init(dns_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->buf = malloc(DNS_MAX_MSG);
    return a->buf ? 0 : -1;
}

void dns_answer_free(dns_answer *a)
{
    free(a->buf);
    memset(a, 0, sizeof(*a));
}

static uint16_t random_id(void)
{
    uint16_t id = 0;
    if (gnutls_rnd(GNUTLS_RND_NONCE, &id, sizeof(id)) < 0)
        id = (uint16_t)(dns_now_ms() * 2654435761u);
    return id;
}

int resolve_query(dns01 *d, const dns_server *s, const dns_name *name, uint16_t type, int rd,
                  dns_answer *a, char *why, size_t whylen)
{
    uint8_t q[DNS_MAX_NAME + 64];
    dns_builder b;
    uint16_t id = random_id();
    dns_builder_init(&b, q, sizeof(q), id, rd ? DNS_F_RD : 0);
    dns_builder_question(&b, name, type, DNS_C_IN);
    size_t qlen = dns_builder_finish(&b);
    if (!qlen) {
        snprintf(why, whylen, "cannot build the query");
        return -1;
    }
    dns_net_status st = dns_exchange(s, q, qlen, a->buf, DNS_MAX_MSG, &a->len,
                                     d->query_timeout_ms, 0, why, whylen);
    a->net = st;
    if (st != DNS_NET_OK)
        return -1;
    const char *bad = NULL;
    if (dns_parse(&a->msg, a->buf, a->len, &bad) != 0) {
        snprintf(why, whylen, "malformed answer (%s)", bad);
        return -1;
    }
    const dns_msg *m = &a->msg;
    if (!(m->flags & DNS_F_QR) || DNS_FLAGS_OPCODE(m->flags) != DNS_OP_QUERY) {
        snprintf(why, whylen, "the answer is not a query response");
        return -1;
    }
    a->rcode = DNS_FLAGS_RCODE(m->flags);
    /* FORMERR/NOTIMP answers may omit the question; others must echo it. */
    if (m->has_question
            ? (!dns_name_equal(&m->qname, name) || m->qtype != type || m->qclass != DNS_C_IN)
            : (a->rcode == DNS_R_NOERROR || a->rcode == DNS_R_NXDOMAIN)) {
        snprintf(why, whylen, "the answer is for another question");
        return -1;
    }
    return 0;
}

/* ---- CNAME chain ------------------------------------------------------ */

int resolve_cname_chain(dns01 *d, const dns_name *name, dns_name *target)
{
    dns_answer a;
    if (dns_answer_init(&a) != 0)
        return dns01_fail(d, ACME_E_NOMEM, "out of memory");
    dns_name cur = *name;
    unsigned hops = 0;
    int rc = ACME_OK;
    for (;;) {
        char why[256];
        if (resolve_query(d, &d->resolver, &cur, DNS_T_TXT, 1, &a, why, sizeof(why)) != 0) {
            rc = dns01_fail(d, ACME_E_NETWORK, "looking up %s TXT at the resolver %s: %s",
                            dns01_name_text(&cur), d->resolver.text, why);
            break;
        }
        if (a.rcode != DNS_R_NOERROR && a.rcode != DNS_R_NXDOMAIN) {
            rc = dns01_fail(d, ACME_E_NETWORK, "the resolver %s answered %s for %s TXT",
                            d->resolver.text, dns_rcode_name(a.rcode), dns01_name_text(&cur));
            break;
        }
        /* Follow the chain as far as this answer carries it. */
        int moved = 0, again = 1;
        while (again) {
            again = 0;
            dns_iter it;
            dns_rr rr;
            dns_iter_init(&it, &a.msg);
            while (dns_iter_next(&it, &rr)) {
                dns_name next;
                if (rr.section != DNS_S_ANSWER || rr.type != DNS_T_CNAME ||
                    !dns_name_equal(&rr.owner, &cur) || dns_rdata_name(&a.msg, &rr, &next) != 0)
                    continue;
                if (++hops > DNS01_MAX_CNAME) {
                    rc = dns01_fail(d, ACME_E_PROTOCOL, "the CNAME chain from %s is longer than %d "
                                    "records (a loop?)", dns01_name_text(name), DNS01_MAX_CNAME);
                    goto out;
                }
                dns01_log(d, ACME_LOG_DEBUG, "%s is a CNAME for %s", dns01_name_text(&cur),
                          dns01_name_text(&next));
                cur = next;
                moved = again = 1;
                break;
            }
        }
        if (!moved)
            break;
        /* Ask again for where the chain ended: its target may live in a
         * zone this answer did not cover. */
    }
out:
    dns_answer_free(&a);
    if (rc == ACME_OK)
        *target = cur;
    return rc;
}

/* ---- zone cut --------------------------------------------------------- */

int resolve_zone(dns01 *d, const dns_name *name, dns_name *zone)
{
    dns_answer a;
    if (dns_answer_init(&a) != 0)
        return dns01_fail(d, ACME_E_NOMEM, "out of memory");
    dns_name cur = *name;
    int rc = ACME_OK;
    unsigned last_rcode = DNS_R_NOERROR;
    for (;;) {
        char why[256];
        if (resolve_query(d, &d->resolver, &cur, DNS_T_SOA, 1, &a, why, sizeof(why)) != 0) {
            rc = dns01_fail(d, ACME_E_NETWORK, "finding the zone of %s: SOA query for %s at the "
                            "resolver %s: %s", dns01_name_text(name), dns01_name_text(&cur),
                            d->resolver.text, why);
            break;
        }
        last_rcode = a.rcode;
        if (a.rcode == DNS_R_SERVFAIL) {
            rc = dns01_fail(d, ACME_E_NETWORK, "finding the zone of %s: the resolver %s answered "
                            "SERVFAIL for %s SOA", dns01_name_text(name), d->resolver.text,
                            dns01_name_text(&cur));
            break;
        }
        if (a.rcode == DNS_R_NOERROR || a.rcode == DNS_R_NXDOMAIN) {
            /* An SOA owned by cur in the answer, or the SOA of the zone
             * above cur in the authority section (negative answers). */
            dns_iter it;
            dns_rr rr;
            int found = 0;
            dns_iter_init(&it, &a.msg);
            while (dns_iter_next(&it, &rr)) {
                if (rr.type != DNS_T_SOA)
                    continue;
                if ((rr.section == DNS_S_ANSWER && dns_name_equal(&rr.owner, &cur)) ||
                    (rr.section == DNS_S_AUTHORITY && dns_name_is_below(&cur, &rr.owner))) {
                    *zone = rr.owner;
                    found = 1;
                    break;
                }
            }
            if (found)
                break;
        }
        /* REFUSED (a server not serving this part of the tree) or no SOA:
         * one label up. */
        if (dns_name_is_root(&cur) || dns_name_parent(&cur, &cur) != 0) {
            rc = dns01_fail(d, ACME_E_PROTOCOL, "no zone found above %s through the resolver %s "
                            "(last answer %s); set zone=", dns01_name_text(name), d->resolver.text,
                            dns_rcode_name(last_rcode));
            break;
        }
    }
    dns_answer_free(&a);
    if (rc == ACME_OK)
        dns01_log(d, ACME_LOG_DEBUG, "%s is in the zone %s", dns01_name_text(name),
                  dns01_name_text(zone));
    return rc;
}

/* ---- authoritative servers -------------------------------------------- */

static int add_server(dns01_ns *out, size_t max, size_t *count, const char *host,
                      const dns_server *s)
{
    for (size_t i = 0; i < *count; i++)
        if (dns_server_equal(&out[i].addr, s))
            return 0;
    if (*count >= max)
        return -1;
    snprintf(out[*count].host, sizeof(out[*count].host), "%.255s", host);
    out[*count].addr = *s;
    (*count)++;
    return 0;
}

/* Addresses of host from msg's records (glue), or by asking the resolver. */
static int ns_addresses(dns01 *d, const dns_msg *m, const dns_name *host, dns01_ns *out,
                        size_t max, size_t *count)
{
    char text[DNS_NAME_TEXT];
    dns_name_to_text(host, text, sizeof(text));
    size_t before = *count;
    dns_iter it;
    dns_rr rr;
    uint8_t addr[16];
    dns_iter_init(&it, m);
    while (dns_iter_next(&it, &rr)) {
        int n;
        if (rr.section == DNS_S_ADDITIONAL && dns_name_equal(&rr.owner, host) &&
            (n = dns_rdata_addr(m, &rr, addr)) > 0) {
            dns_server s;
            dns_server_from_addr(addr, n, d->nameserver_port, &s);
            add_server(out, max, count, text, &s);
        }
    }
    if (*count > before)
        return 0;
    dns_answer a;
    if (dns_answer_init(&a) != 0)
        return -1;
    static const uint16_t types[] = {DNS_T_A, DNS_T_AAAA};
    for (size_t t = 0; t < 2; t++) {
        char why[256];
        if (resolve_query(d, &d->resolver, host, types[t], 1, &a, why, sizeof(why)) != 0) {
            dns01_log(d, ACME_LOG_WARNING, "looking up %s %s at the resolver %s: %s", text,
                      dns_type_name(types[t]), d->resolver.text, why);
            continue;
        }
        dns_iter_init(&it, &a.msg);
        while (dns_iter_next(&it, &rr)) {
            int n;
            /* Accept the records of the host or of what it is a CNAME for. */
            if (rr.section == DNS_S_ANSWER && rr.type == types[t] &&
                (n = dns_rdata_addr(&a.msg, &rr, addr)) > 0) {
                dns_server s;
                dns_server_from_addr(addr, n, d->nameserver_port, &s);
                add_server(out, max, count, text, &s);
            }
        }
    }
    dns_answer_free(&a);
    return 0;
}

int resolve_nameservers(dns01 *d, const dns_name *zone, dns01_ns *out, size_t max, size_t *count)
{
    *count = 0;
    if (d->nameserver_count) {
        for (size_t i = 0; i < d->nameserver_count && i < max; i++)
            add_server(out, max, count, d->nameservers[i].text, &d->nameservers[i]);
        return ACME_OK;
    }
    dns_answer a;
    if (dns_answer_init(&a) != 0)
        return dns01_fail(d, ACME_E_NOMEM, "out of memory");
    char why[256];
    int rc = ACME_OK;
    if (resolve_query(d, &d->resolver, zone, DNS_T_NS, 1, &a, why, sizeof(why)) != 0) {
        rc = dns01_fail(d, ACME_E_NETWORK, "NS query for %s at the resolver %s: %s",
                        dns01_name_text(zone), d->resolver.text, why);
        goto out;
    }
    if (a.rcode != DNS_R_NOERROR) {
        rc = dns01_fail(d, ACME_E_NETWORK, "the resolver %s answered %s for %s NS",
                        d->resolver.text, dns_rcode_name(a.rcode), dns01_name_text(zone));
        goto out;
    }
    dns_iter it;
    dns_rr rr;
    size_t hosts = 0;
    dns_iter_init(&it, &a.msg);
    while (dns_iter_next(&it, &rr)) {
        dns_name host;
        if (rr.type != DNS_T_NS || rr.section == DNS_S_ADDITIONAL ||
            !dns_name_equal(&rr.owner, zone) || dns_rdata_name(&a.msg, &rr, &host) != 0)
            continue;
        hosts++;
        size_t before = *count;
        if (ns_addresses(d, &a.msg, &host, out, max, count) != 0) {
            rc = dns01_fail(d, ACME_E_NOMEM, "out of memory");
            goto out;
        }
        if (*count == before)
            dns01_log(d, ACME_LOG_WARNING, "the name server %s of %s has no address; skipping it",
                      dns01_name_text(&host), dns01_name_text(zone));
    }
    if (*count == 0)
        rc = dns01_fail(d, ACME_E_NETWORK, "%s: no usable authoritative server (%zu NS records at "
                        "the resolver %s); set nameservers=", dns01_name_text(zone), hosts,
                        d->resolver.text);
out:
    dns_answer_free(&a);
    return rc;
}

/* ---- TXT check -------------------------------------------------------- */

static void append(char *buf, size_t len, const char *fmt, const char *s)
{
    size_t used = strlen(buf);
    if (used < len)
        snprintf(buf + used, len - used, fmt, s);
}

int resolve_txt_has(dns01 *d, const dns_server *s, const dns_name *name, const char *value,
                    char *seen, size_t seenlen)
{
    dns_answer a;
    if (dns_answer_init(&a) != 0) {
        snprintf(seen, seenlen, "out of memory");
        return -1;
    }
    char why[256];
    int result;
    if (resolve_query(d, s, name, DNS_T_TXT, 0, &a, why, sizeof(why)) != 0) {
        snprintf(seen, seenlen, "no usable answer: %s", why);
        result = a.net == DNS_NET_UNREACHABLE ? -2 : -1;
        goto out;
    }
    if (a.rcode != DNS_R_NOERROR) {
        snprintf(seen, seenlen, "%s%s", dns_rcode_name(a.rcode),
                 a.rcode == DNS_R_NXDOMAIN ? " (the name does not exist there)" : "");
        result = 0;
        goto out;
    }
    dns_iter it;
    dns_rr rr;
    unsigned txts = 0;
    result = 0;
    snprintf(seen, seenlen, "NOERROR");
    dns_iter_init(&it, &a.msg);
    while (dns_iter_next(&it, &rr)) {
        char txt[1024];
        if (rr.section != DNS_S_ANSWER || rr.type != DNS_T_TXT || !dns_name_equal(&rr.owner, name))
            continue;
        if (dns_rdata_txt(&a.msg, &rr, txt, sizeof(txt)) != 0)
            continue;
        if (!strcmp(txt, value))
            result = 1;
        append(seen, seenlen, txts ? ", \"%.64s\"" : " with TXT \"%.64s\"", txt);
        txts++;
    }
    if (!txts)
        append(seen, seenlen, "%s", " but no TXT record");
    if (!(a.msg.flags & DNS_F_AA))
        append(seen, seenlen, "%s", " (not authoritative)");
out:
    dns_answer_free(&a);
    return result;
}
