/* dns-persist-01 in the dns01 module: the _validation-persist record is
 * created once and then left alone.
 *
 * publish:   ask the resolver for the TXT records at _validation-persist.<name>;
 *            one that already satisfies the challenge (libacme's
 *            acme_dns_persist_match: this CA, this account, wildcard policy
 *            when needed, persistUntil not passed) means nothing to do.
 *            Otherwise, with RFC 2136 credentials, add the record libacme
 *            formatted and wait until every authoritative server has it;
 *            without, decline (the order may try the next allowed type) and
 *            say which record the owner must create.
 * unpublish: nothing: the record is meant to stay for the renewals. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <acme/error.h>
#include <acme/host.h>

#include "dns01.h"
#include "persist.h"
#include "propagation.h"
#include "resolve.h"

#define MAX_ISSUERS 10

/* 1 when the resolver shows a record that will do, 0 when not, -1 when it
 * could not be asked (then we do not create a second record blindly). */
static int already_there(dns01 *d, const acme_challenge *ch, const dns_name *name)
{
    const char *issuers[MAX_ISSUERS];
    size_t n = acme_challenge_issuer_domain_count(ch);
    if (n > MAX_ISSUERS)
        n = MAX_ISSUERS;
    for (size_t i = 0; i < n; i++)
        issuers[i] = acme_challenge_issuer_domain(ch, i);
    dns_answer a;
    if (dns_answer_init(&a) != 0)
        return dns01_fail(d, ACME_E_NOMEM, "out of memory"), -1;
    char why[256];
    int found = 0;
    if (resolve_query(d, &d->resolver, name, DNS_T_TXT, 1, &a, why, sizeof(why)) != 0) {
        dns01_fail(d, ACME_E_NETWORK, "dns-persist-01: could not ask the resolver %s for TXT %s: %s",
                   d->resolver.text, dns01_name_text(name), why);
        found = -1;
    } else if (a.rcode == DNS_R_NOERROR) {
        dns_iter it;
        dns_rr rr;
        dns_iter_init(&it, &a.msg);
        while (!found && dns_iter_next(&it, &rr)) {
            char txt[1024];
            if (rr.section != DNS_S_ANSWER || rr.type != DNS_T_TXT || dns_rdata_txt(&a.msg, &rr, txt, sizeof(txt)))
                continue;
            const char *reason = NULL;
            if (acme_dns_persist_match(txt, issuers, n, acme_challenge_persist_accounturi(ch),
                                       acme_challenge_is_wildcard(ch), (int64_t)time(NULL), &reason))
                found = 1;
            else if (reason && strchr(txt, ';'))
                dns01_log(d, ACME_LOG_INFO, "%s TXT \"%.80s\" does not do: %s", dns01_name_text(name), txt,
                          reason);
        }
    } else if (a.rcode != DNS_R_NXDOMAIN) {
        dns01_fail(d, ACME_E_NETWORK, "dns-persist-01: the resolver %s answered %s for TXT %s", d->resolver.text,
                   dns_rcode_name(a.rcode), dns01_name_text(name));
        found = -1;
    }
    dns_answer_free(&a);
    return found;
}

int dns01_persist_publish(dns01 *d, const acme_challenge *ch)
{
    dns01_record r;
    memset(&r, 0, sizeof(r));
    const char *name = acme_challenge_dns_name(ch);
    r.value = acme_challenge_dns_value(ch);
    r.identifier = acme_challenge_identifier(ch);
    if (!name || !r.value || !r.identifier || dns_name_from_text(&r.challenge, name) != 0)
        return dns01_fail(d, ACME_E_INVALID_ARG, "the challenge name %s is not a domain name", name ? name : "(none)");
    int there = already_there(d, ch, &r.challenge);
    if (there < 0)
        return ACME_E_NETWORK;
    if (there) {
        dns01_log(d, ACME_LOG_INFO, "dns-persist-01: %s already holds a record for this CA and account; "
                  "nothing to change", name);
        return ACME_OK;
    }
    if (d->kind != DNS01_RFC2136) {
        dns01_log(d, ACME_LOG_WARNING, "dns-persist-01: create the TXT record %s \"%s\" once (this back end "
                  "does not create persistent records)", name, r.value);
        return dns01_fail(d, ACME_E_DECLINED, "dns-persist-01: no record at %s yet and backend=%s does not create "
                          "persistent records: create TXT \"%s\" there once", name, d->backend->name, r.value);
    }
    int rc = dns01_locate(d, &r);
    if (rc)
        return rc;
    dns01_log(d, ACME_LOG_INFO, "dns-persist-01: creating %s TXT \"%s\" (it stays for the renewals)",
              dns01_name_text(&r.target), r.value);
    if ((rc = d->backend->add(d, &r)) != ACME_OK)
        return rc;
    /* Not remembered as published: unpublish must not remove it. If the
     * wait fails it stays too: it is right, only slow, and the next order
     * finds it. */
    return propagation_wait(d, &r);
}
