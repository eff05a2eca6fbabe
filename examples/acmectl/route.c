/* What acmectl's two challenge routers do the same way: provision.c
 * (issue and renew, where acme_issue blocks) and run_route.c (run, the
 * engine in an event loop) differ in who may answer (a webroot, a hook,
 * a module on a worker) and in how they wait, but put a challenge into a
 * built-in responder, take it out again, and treat a dns-persist-01
 * challenge nobody publishes in one way, here. */
#include <stdlib.h>
#include <string.h>

#include "acmectl.h"

acme_responder *route_builtin(acme_responder *http, acme_responder *alpn, acme_challenge_type t)
{
    return t == ACME_CHALLENGE_HTTP_01 ? http : t == ACME_CHALLENGE_TLS_ALPN_01 ? alpn : NULL;
}

const char *route_builtin_key(acme_challenge_type t, const char *token, const char *ident)
{
    /* http-01 answers by token (the URL path), tls-alpn-01 by SNI name. */
    return t == ACME_CHALLENGE_HTTP_01 ? token : ident;
}

int route_builtin_add(acme_responder *r, const acme_challenge *ch)
{
    acme_challenge_type t = acme_challenge_get_type(ch);
    if (!r)
        return ACME_E_STATE;
    if (t == ACME_CHALLENGE_HTTP_01)
        return acme_responder_add_http01(r, acme_challenge_token(ch), acme_challenge_key_authorization(ch));
    return acme_responder_add_tlsalpn01(r, acme_challenge_identifier(ch), acme_challenge_alpn_cert_pem(ch),
                                        acme_challenge_alpn_key_pem(ch));
}

void route_builtin_remove(acme_responder *r, acme_challenge_type t, const char *token, const char *ident)
{
    if (r)
        (void)acme_responder_remove(r, route_builtin_key(t, token, ident));
}

int route_persist(const acme_challenge *ch)
{
    /* The owner created _validation-persist.<name> once (acmectl
     * dns-persist prints it): nothing to publish, nothing to take down. */
    progress(ACME_LOG_INFO, "dns-persist-01 for %s: relying on the TXT record at %s", acme_challenge_identifier(ch),
             acme_challenge_dns_name(ch));
    return ACME_OK;
}
