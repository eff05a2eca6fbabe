/* Metrics: the engine's per-certificate state in the Prometheus text
 * exposition format, version 0.0.4. Every family is one "# HELP" line,
 * one "# TYPE" line, then its samples; label values escape backslash,
 * double quote and newline (our HELP texts have neither). The engine
 * hands over each certificate's facts as a metrics_cert
 * (engine_cert_facts): no status JSON is built and parsed again, which
 * cost three times the status text itself (doc/benchmarks.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <acme/engine.h>
#include "engine_loop.h"
#include "event_internal.h"
#include "internal.h"

static int put(acme_buf *out, const char *s)
{
    return buf_append_str(out, s);
}

/* A label value, between the quotes: runs without anything to escape go
 * in one append. */
static int put_label(acme_buf *out, const char *v)
{
    int rc = ACME_OK;
    const char *p = v ? v : "";
    while (*p && !rc) {
        size_t run = strcspn(p, "\\\"\n");
        if (run)
            rc = buf_append(out, p, run);
        p += run;
        if (!*p || rc)
            break;
        rc = put(out, *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : "\\n");
        p++;
    }
    return rc;
}

static int put_int(acme_buf *out, long long v)
{
    char n[32];
    snprintf(n, sizeof(n), "%lld", v);
    return put(out, n);
}

/* "# HELP name text\n# TYPE name type\n" (our HELP texts have no
 * backslash or newline to escape). */
static int family(acme_buf *out, const char *name, const char *type, const char *help)
{
    int rc = put(out, "# HELP ");
    if (!rc) rc = put(out, name);
    if (!rc) rc = put(out, " ");
    if (!rc) rc = put(out, help);
    if (!rc) rc = put(out, "\n# TYPE ");
    if (!rc) rc = put(out, name);
    if (!rc) rc = put(out, " ");
    if (!rc) rc = put(out, type);
    if (!rc) rc = put(out, "\n");
    return rc;
}

/* name{id="..."[,extra="..."]} value\n */
static int sample(acme_buf *out, const char *name, const char *id, const char *extra, const char *extra_v,
                  long long v)
{
    int rc = put(out, name);
    if (!rc) rc = put(out, "{id=\"");
    if (!rc) rc = put_label(out, id);
    if (!rc && extra) {
        rc = put(out, "\",");
        if (!rc) rc = put(out, extra);
        if (!rc) rc = put(out, "=\"");
        if (!rc) rc = put_label(out, extra_v);
    }
    if (!rc) rc = put(out, "\"} ");
    if (!rc) rc = put_int(out, v);
    if (!rc) rc = put(out, "\n");
    return rc;
}

static const char *const states[] = {"new", "valid", "ordering", "waiting", "failed"};

typedef enum field { F_NOT_AFTER, F_RENEW_AT, F_FAILURES, F_ATTEMPTS, F_LAST_SUCCESS } field;

typedef struct gauge {
    const char *name, *type, *help;
    field f;
    int optional;             /* 0 means unknown: leave the series out */
} gauge;

static const gauge gauges[] = {
    {"acme_certificate_not_after_timestamp_seconds", "gauge",
     "When the valid certificate expires (notAfter), seconds since the epoch.", F_NOT_AFTER, 1},
    {"acme_certificate_next_renewal_timestamp_seconds", "gauge",
     "When the engine plans to renew, seconds since the epoch.", F_RENEW_AT, 1},
    {"acme_certificate_consecutive_failures", "gauge",
     "Failed attempts since the last success.", F_FAILURES, 0},
    {"acme_certificate_attempts_total", "counter",
     "Orders started for this certificate (kept in storage across restarts).", F_ATTEMPTS, 0},
    {"acme_certificate_last_success_timestamp_seconds", "gauge",
     "When an order of this certificate last succeeded (kept in storage), seconds since the epoch.", F_LAST_SUCCESS, 1},
};

static long long value_of(const metrics_cert *m, field f)
{
    switch (f) {
    case F_NOT_AFTER: return (long long)m->not_after;
    case F_RENEW_AT: return (long long)m->renew_at;
    case F_FAILURES: return (long long)m->failures;
    case F_ATTEMPTS: return (long long)m->attempts;
    case F_LAST_SUCCESS: return (long long)m->last_success;
    }
    return 0;
}

/* acme_certificate_info{id="...",names="a,b"} 1 */
static int info(acme_buf *out, const metrics_cert *m)
{
    int rc = put(out, "acme_certificate_info{id=\"");
    if (!rc) rc = put_label(out, m->id);
    if (!rc) rc = put(out, "\",names=\"");
    for (size_t i = 0; i < m->name_count && !rc; i++) {
        if (i)
            rc = put(out, ",");
        if (!rc)
            rc = put_label(out, m->names[i]);
    }
    if (!rc) rc = put(out, "\"} 1\n");
    return rc;
}

int metrics_format(const metrics_cert *certs, size_t n, acme_buf *out)
{
    int rc = family(out, "acme_certificates_managed", "gauge", "Certificates the engine manages.");
    if (!rc) rc = put(out, "acme_certificates_managed ");
    if (!rc) rc = put_int(out, (long long)n);
    if (!rc) rc = put(out, "\n");

    if (!rc)
        rc = family(out, "acme_certificate_info", "gauge",
                    "A managed certificate and its names, comma-separated (always 1).");
    for (size_t i = 0; i < n && !rc; i++)
        rc = info(out, &certs[i]);

    if (!rc)
        rc = family(out, "acme_certificate_state", "gauge",
                    "The engine's state of a certificate: 1 for the state it is in, 0 for the others.");
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t k = 0; k < sizeof(states) / sizeof(states[0]) && !rc; k++)
            rc = sample(out, "acme_certificate_state", certs[i].id, "state", states[k],
                        certs[i].state && strcmp(certs[i].state, states[k]) == 0);

    for (size_t g = 0; g < sizeof(gauges) / sizeof(gauges[0]) && !rc; g++) {
        rc = family(out, gauges[g].name, gauges[g].type, gauges[g].help);
        for (size_t i = 0; i < n && !rc; i++) {
            long long v = value_of(&certs[i], gauges[g].f);
            if (v || !gauges[g].optional)
                rc = sample(out, gauges[g].name, certs[i].id, NULL, NULL, v);
        }
    }
    return rc;
}

ACME_EXPORT int acme_engine_metrics(acme_engine *e, acme_buffer *out)
{
    if (!e || !out)
        return ACME_E_INVALID_ARG;
    /* Like every call on an engine: the client's last error is this call's. */
    result_reset_entry(engine_loop_of(e)->c);
    size_t n = engine_cert_count(e);
    metrics_cert *certs = calloc(n ? n : 1, sizeof(*certs));
    if (!certs)
        return ACME_E_NOMEM;
    for (size_t i = 0; i < n; i++)
        engine_cert_facts(e, i, &certs[i]);
    int rc = metrics_format(certs, n, out);
    free(certs);
    return rc;
}
