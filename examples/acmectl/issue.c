/* One certificate through libacme's acme_issue, with the fallback a hook
 * needs: when the hook declines a challenge type (uacme's convention:
 * non-zero from "begin"), that order is already committed to the type,
 * so it fails and is cleaned up by libacme; a new order follows with the
 * remaining types in --challenge order. At most one order per type. */
#include <stdio.h>
#include <string.h>

#include "acmectl.h"

static void list_types(const acme_challenge_type *t, size_t n, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(out);
        bprintf(out + used, len - used, "%s%s", i ? ", " : "", acme_challenge_type_name(t[i]));
    }
}

int issue_run_with(session *s, const issue_request *rq, acme_challenge_type *types, size_t n)
{
    const acmectl_opts *o = s->o;
    for (;;) {
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
        int rc = acme_issue(s->c, &ip);
        unsigned declined = provision_take_declined(s->prov);
        if (rc == ACME_OK || !declined || s->install_failed || s->out_failed)
            return rc;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (!(declined & (1u << types[i])))
                types[k++] = types[i];
        if (k == n) /* declined something not in our list: nothing to gain */
            return rc;
        n = k;
        char left[80];
        list_types(types, n, left, sizeof(left));
        if (n)
            progress(ACME_LOG_INFO, "placing a new order for %s with %s (the previous order was "
                     "abandoned after a decline)", rq->names[0], left);
    }
}

int issue_run(session *s, const issue_request *rq)
{
    acme_challenge_type types[MAX_CHALLENGES];
    size_t n = provision_types(s->prov, types, MAX_CHALLENGES);
    return issue_run_with(s, rq, types, n);
}
