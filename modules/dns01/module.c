/* The dns01 module: entry point, instances, publish and unpublish.
 *
 * present:   [back end's prepare] -> follow the CNAME chain of
 *            _acme-challenge.<name> -> find the zone (zone= or SOA walk)
 *            -> back end add -> return (module ABI 2's quick step).
 * wait:      until every authoritative server answers the value (the slow
 *            step; libacme runs it off the host's loop, and calls cleanup
 *            if it fails).
 * cleanup / unpublish: back end del, at the place present used.
 * publish:   module ABI 1: present, wait, and on failure del, in one call.
 *
 * The only exported symbol is acme_module_entry (dns01.map). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <acme/error.h>
#include <acme/host.h>
#include <acme/module.h>

#include "dns01.h"
#include "persist.h"
#include "propagation.h"
#include "resolve.h"

/* The one exported symbol (see acme_module_entry_fn). */
const acme_module_ops *acme_module_entry(unsigned host_abi_version);

/* ---- helpers for every file ------------------------------------------- */

int dns01_fail(dns01 *d, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof(d->err), fmt, ap);
    va_end(ap);
    for (char *p = d->err; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return code;
}

void dns01_log(dns01 *d, acme_log_level level, const char *fmt, ...)
{
    if (!d->host.log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    d->host.log(d->host.ud, level, msg);
}

const char *dns01_name_text(const dns_name *n)
{
    static _Thread_local char ring[4][DNS_NAME_TEXT];
    static _Thread_local unsigned next;
    char *buf = ring[next++ % 4];
    if (dns_name_to_text(n, buf, DNS_NAME_TEXT) != 0)
        snprintf(buf, DNS_NAME_TEXT, "(unprintable name)");
    return buf;
}

/* ---- what we published ------------------------------------------------ */

static dns01_published **find_published(dns01 *d, const dns_name *challenge, const char *value)
{
    for (dns01_published **p = &d->published; *p; p = &(*p)->next)
        if (dns_name_equal(&(*p)->rec.challenge, challenge) && !strcmp((*p)->value, value))
            return p;
    return NULL;
}

static void free_published(dns01_published *p)
{
    free(p->identifier);
    free(p->value);
    free(p);
}

static int remember(dns01 *d, const dns01_record *r)
{
    dns01_published *p = calloc(1, sizeof(*p));
    if (!p)
        return ACME_E_NOMEM;
    p->rec = *r;
    p->identifier = strdup(r->identifier);
    p->value = strdup(r->value);
    if (!p->identifier || !p->value) {
        free_published(p);
        return ACME_E_NOMEM;
    }
    p->rec.identifier = p->identifier;
    p->rec.value = p->value;
    p->next = d->published;
    d->published = p;
    return ACME_OK;
}

static void forget(dns01 *d, const dns_name *challenge, const char *value)
{
    dns01_published **pp = find_published(d, challenge, value);
    if (pp) {
        dns01_published *p = *pp;
        *pp = p->next;
        free_published(p);
    }
}

/* ---- the record's place ------------------------------------------------ */

/* Fill r->target and r->zone for r->challenge. */
static int locate(dns01 *d, dns01_record *r)
{
    int rc;
    memset(&r->target, 0, sizeof(r->target));
    if (d->backend->prepare && (rc = d->backend->prepare(d, r)) != ACME_OK)
        return rc;
    if (!r->target.len && (rc = resolve_cname_chain(d, &r->challenge, &r->target)) != ACME_OK)
        return rc;
    if (!dns_name_equal(&r->target, &r->challenge))
        dns01_log(d, ACME_LOG_INFO, "%s leads by CNAME to %s; the record goes there",
                  dns01_name_text(&r->challenge), dns01_name_text(&r->target));
    if (d->have_zone) {
        if (!dns_name_is_below(&r->target, &d->zone))
            return dns01_fail(d, ACME_E_INVALID_ARG, "%s is not inside zone=%s",
                              dns01_name_text(&r->target), dns01_name_text(&d->zone));
        r->zone = d->zone;
        return ACME_OK;
    }
    return resolve_zone(d, &r->target, &r->zone);
}

int dns01_locate(dns01 *d, dns01_record *r)
{
    return locate(d, r);
}

static int fill_record(dns01 *d, const acme_challenge *ch, dns01_record *r)
{
    memset(r, 0, sizeof(*r));
    /* dns-account-01 is dns-01 at another name (libacme gives it). */
    acme_challenge_type t = acme_challenge_get_type(ch);
    if (t != ACME_CHALLENGE_DNS_01 && t != ACME_CHALLENGE_DNS_ACCOUNT_01) /* the order tries another type */
        return dns01_fail(d, ACME_E_DECLINED, "the dns01 module answers dns-01 and dns-account-01 only, not %s",
                          acme_challenge_type_name(acme_challenge_get_type(ch)));
    const char *name = acme_challenge_dns_name(ch);
    r->value = acme_challenge_dns_value(ch);
    r->identifier = acme_challenge_identifier(ch);
    if (!name || !r->value || !r->identifier || dns_name_from_text(&r->challenge, name) != 0)
        return dns01_fail(d, ACME_E_INVALID_ARG, "the challenge name %s is not a domain name",
                          name ? name : "(none)");
    return ACME_OK;
}

/* ---- the operations --------------------------------------------------- */

/* Module ABI 2's quick step: find the place, send the record. */
static int dns01_present(void *instance, const acme_challenge *ch)
{
    dns01 *d = instance;
    dns01_record r;
    d->err[0] = '\0';
    if (acme_challenge_get_type(ch) == ACME_CHALLENGE_DNS_PERSIST_01)
        return dns01_persist_publish(d, ch);
    int rc = fill_record(d, ch, &r);
    if (rc || (rc = locate(d, &r)))
        return rc;
    if ((rc = d->backend->add(d, &r)))
        return rc;
    if (remember(d, &r) != ACME_OK) {
        d->backend->del(d, &r);
        return dns01_fail(d, ACME_E_NOMEM, "out of memory");
    }
    return ACME_OK;
}

/* The slow step: until every authoritative server answers the value
 * present sent. libacme runs it off the host's loop and calls cleanup
 * when it fails. */
static int dns01_wait(void *instance, const acme_challenge *ch)
{
    dns01 *d = instance;
    dns01_record r;
    d->err[0] = '\0';
    /* dns-persist-01's present already waited: the record is created once
     * and checked at every server there (persist.c). */
    if (acme_challenge_get_type(ch) == ACME_CHALLENGE_DNS_PERSIST_01)
        return ACME_OK;
    int rc = fill_record(d, ch, &r);
    if (rc)
        return rc;
    dns01_published **pp = find_published(d, &r.challenge, r.value);
    if (!pp)
        return dns01_fail(d, ACME_E_STATE, "%s TXT \"%s\": wait without a present first",
                          dns01_name_text(&r.challenge), r.value);
    return propagation_wait(d, &(*pp)->rec);
}

static int dns01_unpublish(void *instance, const acme_challenge *ch);

/* Module ABI 1: both steps in one call. If the wait fails, the record is
 * removed again, so a failed publish leaves nothing behind. */
static int dns01_publish(void *instance, const acme_challenge *ch)
{
    dns01 *d = instance;
    int rc = dns01_present(d, ch);
    if (rc != ACME_OK || (rc = dns01_wait(d, ch)) == ACME_OK)
        return rc;
    /* Take it down again; the first reason is the one that counts. */
    char why[DNS01_ERR];
    memcpy(why, d->err, sizeof(why));
    if (dns01_unpublish(d, ch) != ACME_OK)
        dns01_log(d, ACME_LOG_WARNING, "could not remove %s TXT after the failed wait: %s",
                  acme_challenge_dns_name(ch), d->err);
    memcpy(d->err, why, sizeof(why));
    return rc;
}

static int dns01_unpublish(void *instance, const acme_challenge *ch)
{
    dns01 *d = instance;
    dns01_record r;
    d->err[0] = '\0';
    acme_challenge_type t = acme_challenge_get_type(ch);
    if (t != ACME_CHALLENGE_DNS_01 && t != ACME_CHALLENGE_DNS_ACCOUNT_01)
        return ACME_OK; /* never published here, or persistent (dns-persist-01) */
    int rc = fill_record(d, ch, &r);
    if (rc)
        return rc;
    dns01_published **pp = find_published(d, &r.challenge, r.value);
    if (pp) {
        rc = d->backend->del(d, &(*pp)->rec);
    } else if (d->kind == DNS01_ACMEDNS) {
        rc = ACME_OK; /* nothing to delete there, and nothing to register */
    } else {
        /* Not published by this instance (another process?): find the
         * place again and remove exactly this value. */
        if ((rc = locate(d, &r)) == ACME_OK)
            rc = d->backend->del(d, &r);
    }
    if (rc == ACME_OK)
        forget(d, &r.challenge, r.value);
    return rc;
}

static unsigned dns01_challenge_types(void *instance)
{
    (void)instance;
    return ACME_MODULE_CHALLENGE(ACME_CHALLENGE_DNS_01) | ACME_MODULE_CHALLENGE(ACME_CHALLENGE_DNS_ACCOUNT_01) |
           ACME_MODULE_CHALLENGE(ACME_CHALLENGE_DNS_PERSIST_01);
}

static const char *dns01_last_error(void *instance)
{
    dns01 *d = instance;
    return d && d->err[0] ? d->err : NULL;
}

static void dns01_destroy(void *instance)
{
    dns01 *d = instance;
    if (!d)
        return;
    while (d->published) {
        dns01_published *p = d->published;
        d->published = p->next;
        dns01_log(d, ACME_LOG_WARNING, "%s TXT \"%s\" is still published (never unpublished)",
                  dns01_name_text(&p->rec.target), p->value);
        free_published(p);
    }
    dns01_config_free(d);
    free(d);
}

static int dns01_create(const acme_module_host *host, const char *const *keys,
                        const char *const *values, size_t n, void **instance, char *err,
                        size_t errlen)
{
    *instance = NULL;
    if (!host || host->size < offsetof(acme_module_host, log) + sizeof(host->log)) {
        snprintf(err, errlen, "the host's module table is too old");
        return ACME_E_UNSUPPORTED;
    }
    dns01 *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return ACME_E_NOMEM;
    }
    memcpy(&d->host, host, host->size < sizeof(d->host) ? host->size : sizeof(d->host));
    int rc = dns01_configure(d, keys, values, n, err, errlen);
    if (rc == ACME_OK && d->kind == DNS01_ACMEDNS && (!d->host.storage_get || !d->host.storage_put)) {
        snprintf(err, errlen, "backend=acme-dns: the host gives the module no storage");
        rc = ACME_E_UNSUPPORTED;
    }
    if (rc != ACME_OK) {
        dns01_config_free(d);
        free(d);
        return rc;
    }
    if (d->kind == DNS01_RFC2136 && !d->have_tsig)
        dns01_log(d, ACME_LOG_WARNING, "rfc2136: no TSIG key configured; updates to %s are "
                  "unsigned", d->primary.text);
    dns01_log(d, ACME_LOG_DEBUG, "backend %s, resolver %s, propagation timeout %u s, interval %u ms",
              d->backend->name, d->resolver.text, d->propagation_timeout_s,
              d->propagation_interval_ms);
    *instance = d;
    return ACME_OK;
}

/* Module ABI 2: present / wait / cleanup, the wait run off the host's
 * loop by libacme. */
static const acme_module_ops dns01_ops = {
    .size = sizeof(acme_module_ops),
    .abi_version = 2,
    .name = "dns01",
    .create = dns01_create,
    .destroy = dns01_destroy,
    .challenge_types = dns01_challenge_types,
    .publish = dns01_publish,
    .unpublish = dns01_unpublish,
    .install = NULL,
    .last_error = dns01_last_error,
    .flags = ACME_MODULE_PUBLISHES,
    .present = dns01_present,
    .wait = dns01_wait,
    .cleanup = dns01_unpublish,
};

/* Module ABI 1, for a libacme that knows no other: the same table cut at
 * ABI 1's end, publish doing present and wait in one call. */
static const acme_module_ops dns01_ops_v1 = {
    .size = offsetof(acme_module_ops, flags),
    .abi_version = 1,
    .name = "dns01",
    .create = dns01_create,
    .destroy = dns01_destroy,
    .challenge_types = dns01_challenge_types,
    .publish = dns01_publish,
    .unpublish = dns01_unpublish,
    .install = NULL,
    .last_error = dns01_last_error,
};

__attribute__((visibility("default"))) const acme_module_ops *acme_module_entry(unsigned host_abi_version)
{
    if (host_abi_version == 2)
        return &dns01_ops;
    if (host_abi_version == 1)
        return &dns01_ops_v1;
    return NULL;
}
