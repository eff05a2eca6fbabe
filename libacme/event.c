/* Events: fill one acme_event and hand it to the host. The emitters stay
 * one line each in the files that know what happened; what every event
 * carries (size, time, the CA) is set here once. */
#include <string.h>
#include <time.h>

#include "event_internal.h"
#include "internal.h"
#include "reentry.h"

ACME_EXPORT const char *acme_event_code_name(acme_event_code code)
{
    switch (code) {
    case ACME_EVENT_ORDERING: return "ordering";
    case ACME_EVENT_PUBLISHED: return "published";
    case ACME_EVENT_VALIDATED: return "validated";
    case ACME_EVENT_ISSUED: return "issued";
    case ACME_EVENT_INSTALLED: return "installed";
    case ACME_EVENT_RENEWAL_SCHEDULED: return "renewal-scheduled";
    case ACME_EVENT_FAILED: return "failed";
    case ACME_EVENT_FAILOVER: return "failover";
    case ACME_EVENT_LOCK_TAKEN: return "lock-taken";
    case ACME_EVENT_LOCK_LOST: return "lock-lost";
    }
    return "unknown";
}

static void init(acme_event *ev, const acme_client *c, acme_event_code code, const char *cert_id)
{
    memset(ev, 0, sizeof(*ev));
    ev->size = sizeof(*ev);
    ev->code = code;
    ev->cert_id = cert_id;
    ev->time = (int64_t)time(NULL);
    ev->directory_url = c->directory_url;
}

/* Every emitter checks c->host.event first: no event is built for a host
 * that does not listen. Inside, calls back into the client are refused
 * like those from any other callback (reentry.h). */
static void emit(acme_client *c, const acme_event *ev)
{
    const char *prev = callback_enter(c, "event");
    c->host.event(c->host_ud, ev);
    callback_leave(c, prev);
}

void event_step(acme_client *c, acme_event_code code, const char *cert_id, const char *ident,
                acme_challenge_type type, const char *order_url)
{
    if (!c->host.event)
        return;
    acme_event ev;
    init(&ev, c, code, cert_id);
    ev.identifier = ident;
    ev.challenge = type;
    ev.order_url = order_url;
    emit(c, &ev);
}

void event_cert(acme_client *c, acme_event_code code, const char *cert_id, int64_t not_after)
{
    if (!c->host.event)
        return;
    acme_event ev;
    init(&ev, c, code, cert_id);
    ev.not_after = not_after;
    emit(c, &ev);
}

void event_renewal(acme_client *c, const char *cert_id, int64_t renew_at)
{
    if (!c->host.event)
        return;
    acme_event ev;
    init(&ev, c, ACME_EVENT_RENEWAL_SCHEDULED, cert_id);
    ev.renew_at = renew_at;
    emit(c, &ev);
}

void event_failed(acme_client *c, const char *cert_id, int rc, const char *message, const acme_problem *p,
                  const char *ident)
{
    if (!c->host.event)
        return;
    acme_event ev;
    init(&ev, c, ACME_EVENT_FAILED, cert_id);
    ev.result = rc ? rc : ACME_E_STATE;
    ev.message = message ? message : acme_strerror(ev.result);
    ev.problem = p;
    ev.identifier = ident;
    if (p) {
        ev.problem_type = p->type;
        ev.problem_detail = p->detail;
        /* Else the identifier the document names, or its first
         * subproblem's (a CA reports per-name failures there). */
        if (!ev.identifier)
            ev.identifier = p->id_value;
        for (size_t i = 0; !ev.identifier && i < p->sub_count; i++)
            ev.identifier = p->subs[i].id_value;
    }
    emit(c, &ev);
}

void event_plain(acme_client *c, acme_event_code code, const char *cert_id)
{
    if (!c->host.event)
        return;
    acme_event ev;
    init(&ev, c, code, cert_id);
    emit(c, &ev);
}

void event_failover(acme_client *c, const char *cert_id, const char *to_name, const char *from_url,
                    const char *from_name, const char *reason)
{
    if (!c->host.event)
        return;
    acme_event ev;
    init(&ev, c, ACME_EVENT_FAILOVER, cert_id);
    ev.ca_name = to_name;
    ev.from_directory_url = from_url;
    ev.from_ca_name = from_name;
    ev.message = reason;
    emit(c, &ev);
}
