/* One certificate through libacme's acme_issue. A challenge type the hook
 * declines (uacme's convention: non-zero from "begin") or a module
 * declines needs nothing here: libacme answers ACME_E_DECLINED by trying
 * the next allowed type for the same authorization, and a failed
 * validation with a new order (order.c: the one home of that fallback).
 * What is left for acmectl is to say so when every type was declined. */
#include <stdio.h>
#include <string.h>

#include "acmectl.h"

int issue_run_with(session *s, const issue_request *rq, acme_challenge_type *types, size_t n)
{
    const acmectl_opts *o = s->o;
    if (n == 0) {
        bprintf(s->install_error, sizeof(s->install_error),
                 "every challenge type was declined by the hook or cannot be answered here; "
                 "check --challenge, the hook's exit status for \"begin\", and the warnings above");
        return ACME_E_UNSUPPORTED;
    }
    acme_issue_params ip;
    memset(&ip, 0, sizeof(ip));
    ip.size = sizeof(ip);
    ip.names = rq->names;
    ip.name_count = rq->name_count;
    ip.key_type = rq->key_type;
    ip.challenges = types;
    ip.challenge_count = n;
    ip.preferred_chain = o->preferred_chain;
    ip.profile = o->profile;
    ip.cert_id = rq->cert_id;
    provision_reset_failure(s->prov);
    (void)provision_take_declined(s->prov);
    int rc = session_issue(s, &ip);
    unsigned declined = provision_take_declined(s->prov);
    int all = 1;
    for (size_t i = 0; i < n; i++)
        all &= !!(declined & (1u << types[i]));
    if (rc != ACME_OK && all && !s->install_failed && !s->out_failed)
        bprintf(s->install_error, sizeof(s->install_error),
                 "every challenge type was declined by the hook or cannot be answered here; "
                 "check --challenge, the hook's exit status for \"begin\", and the warnings above");
    return rc;
}

int issue_run(session *s, const issue_request *rq)
{
    acme_challenge_type types[MAX_CHALLENGES];
    size_t n = provision_types(s->prov, types, MAX_CHALLENGES);
    return issue_run_with(s, rq, types, n);
}
