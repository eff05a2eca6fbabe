/* The propagation check. See propagation.h. */
#include "propagation.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "resolve.h"

typedef struct ns_state {
    int done;            /* 1 answered the value, 2 unreachable from here */
    char seen[384];
} ns_state;

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The host is shutting the module down (module ABI 2's stopping). */
static int stopping(dns01 *d)
{
    return d->host.size >= offsetof(acme_module_host, stopping) + sizeof(d->host.stopping) &&
           d->host.stopping && d->host.stopping(d->host.ud);
}

/* Sleep ms, in slices, so that a host shutting down is not kept waiting
 * for a long propagation-interval. 1 if the host is stopping. */
static int nap(dns01 *d, uint64_t ms)
{
    while (ms > 0) {
        if (stopping(d))
            return 1;
        uint64_t slice = ms < 100 ? ms : 100;
        sleep_ms(slice);
        ms -= slice;
    }
    return stopping(d);
}

int propagation_wait(dns01 *d, const dns01_record *r)
{
    dns01_ns ns[DNS01_MAX_NS];
    size_t count = 0;
    int rc = resolve_nameservers(d, &r->zone, ns, DNS01_MAX_NS, &count);
    if (rc)
        return rc;
    ns_state st[DNS01_MAX_NS];
    memset(st, 0, sizeof(st));
    const char *target = dns01_name_text(&r->target);
    char servers[512] = "";
    for (size_t i = 0; i < count; i++) {
        size_t used = strlen(servers);
        if (used + 1 < sizeof(servers))
            snprintf(servers + used, sizeof(servers) - used, "%s%.120s (%.64s)", i ? ", " : "",
                     ns[i].host, ns[i].addr.text);
    }
    dns01_log(d, ACME_LOG_INFO, "waiting for %s TXT at %zu authoritative server%s: %s", target,
              count, count == 1 ? "" : "s", servers);

    uint64_t start = dns_now_ms();
    uint64_t deadline = start + (uint64_t)d->propagation_timeout_s * 1000u;
    unsigned round = 0;
    for (;;) {
        size_t pending = 0, answered = 0;
        round++;
        for (size_t i = 0; i < count; i++) {
            if (st[i].done)
                continue;
            int h = resolve_txt_has(d, &ns[i].addr, &r->target, r->value, st[i].seen,
                                    sizeof(st[i].seen));
            if (h == 1) {
                st[i].done = 1;
                dns01_log(d, ACME_LOG_INFO, "%s (%s) answers the TXT value for %s (after %llu ms)",
                          ns[i].host, ns[i].addr.text, target,
                          (unsigned long long)(dns_now_ms() - start));
            } else if (h == -2) {
                st[i].done = 2;
                dns01_log(d, ACME_LOG_WARNING, "%s (%s) cannot be reached from here (%s); not "
                          "waiting for it", ns[i].host, ns[i].addr.text, st[i].seen);
            } else {
                pending++;
                if (round == 1)
                    dns01_log(d, ACME_LOG_DEBUG, "%s (%s) does not answer the value yet: %s",
                              ns[i].host, ns[i].addr.text, st[i].seen);
            }
        }
        for (size_t i = 0; i < count; i++)
            answered += st[i].done == 1;
        if (!pending) {
            if (!answered)
                return dns01_fail(d, ACME_E_NETWORK, "propagation check for %s: none of the "
                                  "authoritative servers (%s) can be reached from here", target,
                                  servers);
            dns01_log(d, ACME_LOG_INFO, "%s TXT is visible at every authoritative server (%llu ms)",
                      target, (unsigned long long)(dns_now_ms() - start));
            return ACME_OK;
        }
        uint64_t now = dns_now_ms();
        if (now >= deadline) {
            size_t first = 0;
            while (st[first].done)
                first++;
            return dns01_fail(d, ACME_E_TIMEOUT, "propagation: after %u s the authoritative server "
                              "%s (%s) still does not answer the TXT value for %s; it answered: %s%s",
                              d->propagation_timeout_s, ns[first].host, ns[first].addr.text, target,
                              st[first].seen,
                              pending > 1 ? " (and other servers are behind too)" : "");
        }
        /* The last round falls on the deadline, not before it. */
        uint64_t left = deadline - now;
        if (nap(d, left < d->propagation_interval_ms ? left : d->propagation_interval_ms))
            return dns01_fail(d, ACME_E_STATE, "propagation check for %s: stopped, the host is shutting "
                              "the module down", target);
    }
}
