/* The blocking calls, acme_issue() and acme_renew(): one certificate
 * declared to an engine of one (engine_one.h) and stepped to the end in
 * the caller's thread. Every exchange and every piece of slow work runs
 * inline, so the only wait between steps is a timer of the order's own
 * (polling, Retry-After, back-off): sleeping until it is the whole loop. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_one.h"
#include "internal.h"
#include "issue_spec.h"
#include "reentry.h"

static int run_one(acme_client *c, issue_spec *spec, one_mode mode, int *ordered)
{
    engine_one one;
    memset(&one, 0, sizeof(one));
    one.mode = mode;
    acme_engine *e = NULL;
    int rc = engine_new_one(c, &one, &e);
    if (!rc)
        rc = engine_manage_spec(e, spec);
    while (!rc && !one.finished) {
        engine_step_run(e);
        if (one.finished)
            break;
        int ms = engine_timeout_run(e);
        if (ms < 0) {
            /* Nothing inline is left and nothing is due: a state the
             * engine of one never reaches. Say so rather than hang. */
            rc = client_fail(c, ACME_E_STATE, "issue: the engine has nothing left to do for %s but no result; "
                             "this is a bug in libacme, please report it", spec->cert_id);
            break;
        }
        if (ms > 0)
            sleep_ms((uint64_t)ms);
    }
    if (!rc)
        rc = one.rc;
    if (ordered)
        *ordered = one.ordered;
    acme_engine_free(e);
    return rc;
}

ACME_EXPORT int acme_issue(acme_client *c, const acme_issue_params *p)
{
    int refused = reentry_refused(c, "acme_issue");
    if (refused)
        return refused;
    if (!c)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    int rc;
    issue_spec *spec = issue_spec_new(c, p, &rc);
    if (!spec)
        return rc;
    rc = run_one(c, spec, ONE_ISSUE, NULL);
    issue_spec_free(spec);
    return rc;
}

ACME_EXPORT int acme_renew(acme_client *c, const char *cert_id, int force, int *renewed)
{
    if (renewed)
        *renewed = 0;
    int refused = reentry_refused(c, "acme_renew");
    if (refused)
        return refused;
    if (!c || !cert_id)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    acme_certificate *cert = NULL;
    int rc = certificate_load(c, cert_id, &cert);
    if (rc == ACME_E_NOT_FOUND)
        return client_fail(c, rc, "renew: no stored certificate \"%s\" for %s; issue it first", cert_id,
                           c->directory_url);
    if (rc)
        return rc;
    issue_spec *spec = issue_spec_from_stored(c, cert, &rc);
    certificate_free(cert);
    if (!spec)
        return rc;
    int ordered = 0;
    rc = run_one(c, spec, force ? ONE_RENEW_FORCE : ONE_RENEW, &ordered);
    issue_spec_free(spec);
    if (renewed && ordered && (rc == ACME_OK || rc == ACME_E_CALLBACK))
        *renewed = 1; /* stored; only the host's install failed */
    return rc;
}
