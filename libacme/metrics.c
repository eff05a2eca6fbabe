/* Metrics: the engine's per-certificate state in the Prometheus text
 * exposition format, version 0.0.4. Every family is one "# HELP" line,
 * one "# TYPE" line, then its samples; label values escape backslash,
 * double quote and newline, HELP text backslash and newline. The engine
 * is read through its status pages (the same facts a host reads), so
 * this file knows nothing of the engine's inside. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <acme/engine.h>
#include "event_internal.h"
#include "internal.h"

/* A page of the engine's status at a time: its JSON stays small. */
#define METRICS_PAGE 512

static int put(acme_buf *out, const char *s)
{
    return buf_append_str(out, s);
}

/* A label value, between the quotes. */
static int put_label(acme_buf *out, const char *v)
{
    int rc = ACME_OK;
    for (const char *p = v ? v : ""; *p && !rc; p++) {
        if (*p == '\\')
            rc = put(out, "\\\\");
        else if (*p == '"')
            rc = put(out, "\\\"");
        else if (*p == '\n')
            rc = put(out, "\\n");
        else
            rc = buf_append(out, p, 1);
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

/* A member that is an integer; absent or null: the series is left out
 * (a certificate with no valid one has no notAfter, not notAfter 0). */
static int int_member(const json_t *o, const char *key, long long *v)
{
    json_t *j = json_object_get(o, key);
    if (!json_is_integer(j))
        return 0;
    *v = (long long)json_integer_value(j);
    return 1;
}

static const char *const states[] = {"new", "valid", "ordering", "waiting", "failed"};

typedef struct gauge {
    const char *name, *type, *help, *key;
} gauge;

static const gauge gauges[] = {
    {"acme_certificate_not_after_timestamp_seconds", "gauge",
     "When the valid certificate expires (notAfter), seconds since the epoch.", "not_after"},
    {"acme_certificate_next_renewal_timestamp_seconds", "gauge",
     "When the engine plans to renew, seconds since the epoch.", "next_renewal"},
    {"acme_certificate_consecutive_failures", "gauge",
     "Failed attempts since the last success.", "failures"},
    {"acme_certificate_attempts_total", "counter",
     "Orders started for this certificate since the engine started.", "attempts"},
    {"acme_certificate_last_success_timestamp_seconds", "gauge",
     "When an order of this certificate last succeeded in this engine, seconds since the epoch.", "last_success"},
};

static int names_of(const json_t *o, acme_buf *joined)
{
    json_t *names = json_object_get(o, "names");
    int rc = ACME_OK;
    for (size_t i = 0; i < json_array_size(names) && !rc; i++) {
        const char *n = json_string_value(json_array_get(names, i));
        if (i)
            rc = put(joined, ",");
        if (!rc)
            rc = put(joined, n ? n : "");
    }
    return rc ? rc : put(joined, "");
}

int metrics_format(const json_t *certs, acme_buf *out)
{
    size_t n = json_array_size(certs);
    int rc = family(out, "acme_certificates_managed", "gauge", "Certificates the engine manages.");
    if (!rc) rc = put(out, "acme_certificates_managed ");
    if (!rc) rc = put_int(out, (long long)n);
    if (!rc) rc = put(out, "\n");

    if (!rc)
        rc = family(out, "acme_certificate_info", "gauge",
                    "A managed certificate and its names, comma-separated (always 1).");
    for (size_t i = 0; i < n && !rc; i++) {
        const json_t *o = json_array_get(certs, i);
        acme_buf joined;
        buf_init(&joined, 0);
        rc = names_of(o, &joined);
        if (!rc)
            rc = sample(out, "acme_certificate_info", json_string_value(json_object_get(o, "id")), "names",
                        joined.data, 1);
        buf_clear(&joined);
    }

    if (!rc)
        rc = family(out, "acme_certificate_state", "gauge",
                    "The engine's state of a certificate: 1 for the state it is in, 0 for the others.");
    for (size_t i = 0; i < n && !rc; i++) {
        const json_t *o = json_array_get(certs, i);
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *st = json_string_value(json_object_get(o, "state"));
        for (size_t k = 0; k < sizeof(states) / sizeof(states[0]) && !rc; k++)
            rc = sample(out, "acme_certificate_state", id, "state", states[k], st && strcmp(st, states[k]) == 0);
    }

    for (size_t g = 0; g < sizeof(gauges) / sizeof(gauges[0]) && !rc; g++) {
        rc = family(out, gauges[g].name, gauges[g].type, gauges[g].help);
        for (size_t i = 0; i < n && !rc; i++) {
            const json_t *o = json_array_get(certs, i);
            long long v;
            if (int_member(o, gauges[g].key, &v))
                rc = sample(out, gauges[g].name, json_string_value(json_object_get(o, "id")), NULL, NULL, v);
        }
    }
    return rc;
}

ACME_EXPORT int acme_engine_metrics(acme_engine *e, acme_buffer *out)
{
    if (!e || !out)
        return ACME_E_INVALID_ARG;
    json_t *all = json_array();
    if (!all)
        return ACME_E_NOMEM;
    size_t total = 0;
    int rc = ACME_OK;
    for (size_t at = 0; !rc; at += METRICS_PAGE) {
        const char *page = acme_engine_status_json_page(e, at, METRICS_PAGE, &total);
        json_t *arr = page ? json_loads(page, 0, NULL) : NULL;
        if (!json_is_array(arr) || json_array_extend(all, arr))
            rc = ACME_E_NOMEM;
        json_decref(arr);
        if (at + METRICS_PAGE >= total)
            break;
    }
    if (!rc)
        rc = metrics_format(all, out);
    json_decref(all);
    return rc;
}
