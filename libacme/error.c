/* Result codes, problem documents, and the client's "last error". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

ACME_EXPORT const char *acme_strerror(int code)
{
    switch ((acme_code)code) {
    case ACME_OK: return "success";
    case ACME_E_INVALID_ARG: return "invalid argument";
    case ACME_E_NOMEM: return "out of memory";
    case ACME_E_STORAGE: return "storage failed";
    case ACME_E_NETWORK: return "could not reach the ACME server";
    case ACME_E_TLS: return "TLS connection to the ACME server failed";
    case ACME_E_TIMEOUT: return "timed out";
    case ACME_E_HTTP: return "unexpected HTTP status from the ACME server";
    case ACME_E_PROTOCOL: return "malformed response from the ACME server";
    case ACME_E_TOO_LARGE: return "response larger than the configured limit";
    case ACME_E_PROBLEM: return "the ACME server reported a problem";
    case ACME_E_CRYPTO: return "cryptographic operation failed";
    case ACME_E_BAD_TOKEN: return "the ACME server sent an unsafe challenge token";
    case ACME_E_CHALLENGE_FAILED: return "challenge validation failed";
    case ACME_E_ORDER_FAILED: return "the order failed";
    case ACME_E_NO_ACCOUNT: return "no account exists for this key";
    case ACME_E_TOS_REQUIRED: return "the terms of service must be agreed to";
    case ACME_E_EAB_REQUIRED: return "the CA requires external account binding";
    case ACME_E_UNSUPPORTED: return "not supported by this CA or by libacme";
    case ACME_E_KEY_MISMATCH: return "the certificate does not match the key";
    case ACME_E_CALLBACK: return "a host callback failed";
    case ACME_E_INSECURE: return "refused a non-https URL or redirect";
    case ACME_E_LOCKED: return "storage is locked by another process";
    case ACME_E_NOT_FOUND: return "not found";
    case ACME_E_STATE: return "not valid in the current state";
    case ACME_E_PENDING: return "pending";
    case ACME_E_DECLINED: return "the host declined this challenge type";
    case ACME_E_NO_CHALLENGE: return "no usable challenge type for an identifier";
    }
    return "unknown error code";
}

/* ---- problem documents ---- */

static char *dup_member(json_t *o, const char *k)
{
    const char *s = json_str(o, k);
    return strdup(s ? s : "");
}

static int problem_fill(acme_problem *p, json_t *o)
{
    p->type = dup_member(o, "type");
    p->detail = dup_member(o, "detail");
    json_t *st = json_object_get(o, "status");
    p->status = json_is_integer(st) ? (int)json_integer_value(st) : 0;
    json_t *id = json_object_get(o, "identifier");
    if (json_is_object(id)) {
        p->id_type = dup_member(id, "type");
        p->id_value = dup_member(id, "value");
    }
    if (!p->type || !p->detail)
        return ACME_E_NOMEM;
    json_t *subs = json_object_get(o, "subproblems");
    if (json_is_array(subs) && json_array_size(subs) > 0) {
        size_t n = json_array_size(subs);
        p->subs = calloc(n, sizeof(*p->subs));
        if (!p->subs)
            return ACME_E_NOMEM;
        for (size_t i = 0; i < n; i++) {
            json_t *s = json_array_get(subs, i);
            if (!json_is_object(s))
                continue;
            /* Subproblems are one level deep (RFC 8555 §6.7.1). */
            json_t *copy = json_deep_copy(s);
            if (!copy)
                return ACME_E_NOMEM;
            json_object_del(copy, "subproblems");
            int rc = problem_fill(&p->subs[p->sub_count++], copy);
            json_decref(copy);
            if (rc)
                return rc;
        }
    }
    return ACME_OK;
}

static void problem_clear(acme_problem *p)
{
    free(p->type);
    free(p->detail);
    free(p->id_type);
    free(p->id_value);
    for (size_t i = 0; i < p->sub_count; i++)
        problem_clear(&p->subs[i]);
    free(p->subs);
}

acme_problem *problem_from_json(json_t *obj)
{
    if (!json_is_object(obj) || !json_is_string(json_object_get(obj, "type")))
        return NULL;
    acme_problem *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (problem_fill(p, obj)) {
        problem_free(p);
        return NULL;
    }
    return p;
}

acme_problem *problem_parse(const char *json, size_t len)
{
    json_t *o = json_parse_object(json, len);
    if (!o)
        return NULL;
    acme_problem *p = problem_from_json(o);
    json_decref(o);
    return p;
}

void problem_free(acme_problem *p)
{
    if (!p)
        return;
    problem_clear(p);
    free(p);
}

int problem_is(const acme_problem *p, const char *suffix)
{
    static const char ns[] = "urn:ietf:params:acme:error:";
    if (!p || !p->type || strncmp(p->type, ns, sizeof(ns) - 1) != 0)
        return 0;
    return strcmp(p->type + sizeof(ns) - 1, suffix) == 0;
}

char *problem_describe(const acme_problem *p)
{
    acme_buf b;
    buf_init(&b, 0);
    buf_append_str(&b, p->type);
    if (p->detail && *p->detail) {
        buf_append_str(&b, ": ");
        buf_append_str(&b, p->detail);
    }
    for (size_t i = 0; i < p->sub_count; i++) {
        const acme_problem *s = &p->subs[i];
        buf_append_str(&b, i ? "; " : " [");
        if (s->id_value) {
            buf_append_str(&b, s->id_type ? s->id_type : "");
            buf_append_str(&b, " ");
            buf_append_str(&b, s->id_value);
            buf_append_str(&b, ": ");
        }
        buf_append_str(&b, s->type);
        if (s->detail && *s->detail) {
            buf_append_str(&b, ": ");
            buf_append_str(&b, s->detail);
        }
        if (i + 1 == p->sub_count)
            buf_append_str(&b, "]");
    }
    return buf_steal(&b, NULL);
}

ACME_EXPORT const char *acme_problem_type(const acme_problem *p) { return p ? p->type : NULL; }
ACME_EXPORT const char *acme_problem_detail(const acme_problem *p) { return p ? p->detail : NULL; }
ACME_EXPORT int acme_problem_status(const acme_problem *p) { return p ? p->status : 0; }
ACME_EXPORT size_t acme_problem_subproblem_count(const acme_problem *p) { return p ? p->sub_count : 0; }

ACME_EXPORT const acme_problem *acme_problem_subproblem(const acme_problem *p, size_t i)
{
    return (p && i < p->sub_count) ? &p->subs[i] : NULL;
}

ACME_EXPORT const char *acme_problem_identifier_type(const acme_problem *p) { return p ? p->id_type : NULL; }
ACME_EXPORT const char *acme_problem_identifier_value(const acme_problem *p) { return p ? p->id_value : NULL; }

/* ---- the client's last result ---- */

void result_reset(acme_client *c)
{
    free(c->last_error);
    c->last_error = NULL;
    problem_free(c->problem);
    c->problem = NULL;
}

void result_reset_entry(acme_client *c)
{
    /* A query made from inside one of our callbacks (the engine's fds or
     * timeout, say) must not wipe what the call around the callback is
     * recording: the sentence is that call's. */
    if (c && !c->in_callback)
        result_reset(c);
}

/* The sentence often quotes the CA (problem detail, identifiers, URLs):
 * control characters are escaped before anyone sees it, so the last error
 * is one line, like the log. */
static int fail_v(acme_client *c, acme_log_level first_level, int code, const char *fmt, va_list ap)
{
    char *raw = NULL;
    if (vasprintf(&raw, fmt, ap) < 0)
        raw = NULL;
    char *msg = raw && has_controls(raw) ? escape_controls(raw) : raw;
    if (msg != raw)
        free(raw);
    /* The first failure explains best; later ones (cleanup) only log. */
    if (!c->last_error) {
        c->last_error = msg;
        alog(c, first_level, "%s", msg ? msg : acme_strerror(code));
    } else {
        alog(c, ACME_LOG_WARNING, "%s", msg ? msg : acme_strerror(code));
        free(msg);
    }
    return code;
}

int client_fail(acme_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = fail_v(c, ACME_LOG_ERROR, code, fmt, ap);
    va_end(ap);
    return rc;
}

int client_fail_soft(acme_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = fail_v(c, ACME_LOG_WARNING, code, fmt, ap);
    va_end(ap);
    return rc;
}

void keep_problem(acme_client *c, acme_problem *p)
{
    problem_free(c->problem);
    c->problem = p;
}

ACME_EXPORT const char *acme_client_last_error(const acme_client *c)
{
    if (!c)
        return "no client";
    return c->last_error ? c->last_error : "";
}

ACME_EXPORT const acme_problem *acme_client_problem(const acme_client *c)
{
    return c ? c->problem : NULL;
}
