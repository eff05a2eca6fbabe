/* Back end: RFC 2136 dynamic update to the primary server, signed with
 * TSIG (RFC 8945) when a key is configured.
 *
 * Adding puts exactly one TXT record (name, value) into the zone; deleting
 * removes exactly that record (class NONE, RFC 2136 §2.5.4), so the
 * wildcard's and the base name's values, which share one name, are
 * removed one at a time. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "dns01.h"

static const char *tsig_hint(unsigned error)
{
    switch (error) {
    case DNS_R_BADSIG: return "the server computed another signature: tsig-secret is wrong";
    case DNS_R_BADKEY: return "the server does not know this key name and algorithm";
    case DNS_R_BADTIME: return "the clocks of this host and the server differ by more than 300 s";
    case DNS_R_BADTRUNC: return "the server refused a truncated MAC";
    default: return "the server refused the signature";
    }
}

static const char *rcode_hint(unsigned rcode, int signed_update)
{
    switch (rcode) {
    case DNS_R_NOTAUTH:
        return signed_update ? "the server is not authoritative for the zone, or this key may not "
                               "update it"
                             : "the server is not authoritative for the zone, or wants updates "
                               "signed (set tsig-key-name and tsig-secret)";
    case DNS_R_REFUSED: return "the server's policy does not allow this update";
    case DNS_R_NOTZONE: return "the name is not inside the zone";
    case DNS_R_NOTIMP: return "the server does not implement dynamic update";
    case DNS_R_SERVFAIL: return "the server failed to apply it";
    default: return "";
    }
}

static int send_update(dns01 *d, const dns01_record *r, int add)
{
    uint8_t msg[1024], answer[4096];
    uint8_t rdata[600];
    const char *name = dns01_name_text(&r->target);
    const char *what = add ? "adding" : "deleting";
    size_t rdlen = dns_txt_rdata(r->value, rdata, sizeof(rdata));
    if (!rdlen)
        return dns01_fail(d, ACME_E_INVALID_ARG, "the TXT value for %s is too long", name);

    uint16_t id;
    if (gnutls_rnd(GNUTLS_RND_NONCE, &id, sizeof(id)) < 0)
        return dns01_fail(d, ACME_E_CRYPTO, "no random numbers for a message ID");
    dns_builder b;
    dns_builder_init(&b, msg, sizeof(msg), id, DNS_OPCODE_FLAGS(DNS_OP_UPDATE));
    dns_builder_question(&b, &r->zone, DNS_T_SOA, DNS_C_IN);
    if (add)
        dns_builder_rr(&b, DNS_S_UPDATE, &r->target, DNS_T_TXT, DNS_C_IN, d->ttl, rdata, rdlen);
    else
        dns_builder_rr(&b, DNS_S_UPDATE, &r->target, DNS_T_TXT, DNS_C_NONE, 0, rdata, rdlen);
    size_t len = dns_builder_finish(&b);
    uint8_t mac[TSIG_MAX_MAC];
    size_t mac_len = 0;
    if (!len || (d->have_tsig && tsig_sign(&d->tsig, msg, &len, sizeof(msg), (uint64_t)time(NULL),
                                           TSIG_DEFAULT_FUDGE, mac, &mac_len) != 0))
        return dns01_fail(d, ACME_E_INVALID_ARG, "the update for %s does not fit a message", name);

    char why[256];
    size_t alen = 0;
    dns_net_status st = dns_exchange(&d->primary, msg, len, answer, sizeof(answer), &alen,
                                     d->query_timeout_ms, 0, why, sizeof(why));
    if (st != DNS_NET_OK)
        return dns01_fail(d, st == DNS_NET_TIMEOUT ? ACME_E_TIMEOUT : ACME_E_NETWORK,
                          "%s %s TXT at the primary %s: %s", what, name, d->primary.text, why);
    dns_msg m;
    const char *bad = NULL;
    if (dns_parse(&m, answer, alen, &bad) != 0 || !(m.flags & DNS_F_QR) ||
        DNS_FLAGS_OPCODE(m.flags) != DNS_OP_UPDATE)
        return dns01_fail(d, ACME_E_PROTOCOL, "%s %s TXT: the primary %s sent a malformed answer "
                          "(%s)", what, name, d->primary.text, bad ? bad : "not an update response");
    unsigned rcode = DNS_FLAGS_RCODE(m.flags);
    if (d->have_tsig) {
        unsigned terr = 0;
        tsig_status ts = tsig_verify(&d->tsig, &m, mac, mac_len, (uint64_t)time(NULL), &terr);
        if (ts == TSIG_SERVER_ERROR)
            return dns01_fail(d, ACME_E_CALLBACK, "%s %s TXT: the primary %s answered %s with TSIG "
                              "error %s for key %s (%s): %s", what, name, d->primary.text,
                              dns_rcode_name(rcode), dns_rcode_name(terr),
                              dns01_name_text(&d->tsig.name), tsig_alg_text(d->tsig.alg),
                              tsig_hint(terr));
        if (rcode == DNS_R_NOERROR && ts != TSIG_VERIFIED)
            return dns01_fail(d, ACME_E_PROTOCOL, "%s %s TXT: the primary %s said NOERROR but %s; "
                              "not trusting it", what, name, d->primary.text, tsig_status_text(ts));
    }
    if (rcode != DNS_R_NOERROR) {
        const char *hint = rcode_hint(rcode, d->have_tsig);
        return dns01_fail(d, ACME_E_CALLBACK, "%s %s TXT in zone %s: the primary %s answered %s%s%s",
                          what, name, dns01_name_text(&r->zone), d->primary.text,
                          dns_rcode_name(rcode), *hint ? ": " : "", hint);
    }
    dns01_log(d, ACME_LOG_INFO, "%s %s TXT \"%s\" in zone %s at %s: done%s", what, name, r->value,
              dns01_name_text(&r->zone), d->primary.text, dns_exchange_used_tcp() ? " (over TCP)" : "");
    return ACME_OK;
}

static int rfc2136_add(dns01 *d, const dns01_record *r)
{
    return send_update(d, r, 1);
}

static int rfc2136_del(dns01 *d, const dns01_record *r)
{
    return send_update(d, r, 0);
}

const dns01_backend dns01_backend_rfc2136 = {
    .name = "rfc2136",
    .add = rfc2136_add,
    .del = rfc2136_del,
};
