/* Who answers which challenge type, and the publish/unpublish callbacks
 * libacme calls.
 *
 *   http-01      --webroot if given, else --hook if given, else the
 *                built-in responder on --http-port
 *   tls-alpn-01  --hook if given, else the built-in responder on --tls-port
 *   dns-01       the --dns-provider module if given, else --hook; without
 *                either it is not offered
 *   dns-account-01  as dns-01 (the hook writes at ACMECTL_DNS_NAME)
 *   dns-persist-01  the --dns-provider module if given (it checks the record
 *                and may create it once); else nothing: the owner created
 *                the record (acmectl dns-persist NAME prints it). Only when
 *                listed in --challenge.
 *
 * Built-in responders run on their own threads (acme_issue blocks). For
 * `issue` they are bound before anything is sent, so a busy or privileged
 * port is reported before an order exists; for `renew` they are bound on
 * first use, so a run with nothing due touches no port. A type whose
 * responder cannot listen is dropped with a warning, and the next type in
 * --challenge order is used.
 *
 * A hook "declines" a challenge by exiting non-zero from `begin` (uacme's
 * convention), a module by answering ACME_E_DECLINED: libacme then tries
 * the next allowed type for the same authorization; issue.c places a new
 * order without the declined type only if libacme gave up on this one.
 *
 * The --dns-provider module is called synchronously (acme_issue blocks
 * anyway) through modhost.c, on the session's client. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "acmectl.h"

/* P_PERSIST: dns-persist-01 with no module: the owner made the record once,
 * nothing to publish. */
typedef enum provider { P_NONE, P_BUILTIN, P_WEBROOT, P_HOOK, P_MODULE, P_PERSIST } provider;

struct provision {
    pthread_mutex_t mu;                /* publish/unpublish vs. an interrupt */
    chal_rec *published;               /* what is up now, newest first */
    const acmectl_opts *o;
    acme_client *c;
    provider by_type[6];               /* indexed by acme_challenge_type */
    acme_challenge_type order[MAX_CHALLENGES];
    size_t order_count;
    int unusable[6];                   /* a responder that could not listen */
    acme_responder *http, *alpn;
    modhost *dns;                      /* --dns-provider */
    acme_client *client;               /* the session's: the module lives on it */
    unsigned declined;
    char failure[512];
};

static const char *tname(acme_challenge_type t)
{
    return acme_challenge_type_name(t);
}

/* Bind and start one built-in responder (once). 0 on success. */
static int start_builtin(provision *p, acme_challenge_type t)
{
    acme_responder **slot = t == ACME_CHALLENGE_HTTP_01 ? &p->http : &p->alpn;
    if (*slot)
        return 0;
    if (p->unusable[t])
        return -1;
    if (builtin_start(p->o, t, slot) != 0) {
        p->unusable[t] = 1;
        return -1;
    }
    return 0;
}

/* --dns-provider [--dns-config]: load it now, so that a bad setting
 * costs no order. */
static int load_dns_provider(provision *p, char *err, size_t errlen)
{
    const acmectl_opts *o = p->o;
    char *text = NULL;
    size_t text_len = 0;
    if (o->dns_config && !(text = file_read_all(o->dns_config, &text_len))) {
        bprintf(err, errlen, "--dns-config %s: %s", o->dns_config, strerror(errno));
        return EXIT_USAGE;
    }
    char why[700];
    modhost_params mp = {"--dns-provider", o->dns_provider, text, p->client};
    int rc = modhost_load(&mp, &p->dns, why, sizeof(why));
    if (text) {
        /* --dns-config holds the TSIG secret or the like. */
        explicit_bzero(text, text_len);
        free(text);
    }
    if (rc != 0) {
        bprintf(err, errlen, "--dns-provider %s%s%s: %s", o->dns_provider, o->dns_config ? " with " : "",
                o->dns_config ? o->dns_config : "", why);
        return EXIT_USAGE;
    }
    if (!modhost_handles(p->dns, ACME_CHALLENGE_DNS_01)) {
        bprintf(err, errlen, "--dns-provider %s: the module %s does not answer dns-01", o->dns_provider,
                modhost_name(p->dns));
        return EXIT_USAGE;
    }
    progress(ACME_LOG_INFO, "dns-01 through the module %s (%s)", modhost_name(p->dns), o->dns_provider);
    return EXIT_OK;
}

int provision_start(const acmectl_opts *o, acme_client *client, int lazy, provision **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    provision *p = calloc(1, sizeof(*p));
    if (!p) {
        bprintf(err, errlen, "out of memory");
        return EXIT_INTERNAL;
    }
    p->o = o;
    p->client = client;
    pthread_mutex_init(&p->mu, NULL);
    for (size_t i = 0; i < o->challenge_count; i++) {
        acme_challenge_type t = o->challenges[i];
        provider pv = P_NONE;
        switch (t) {
        case ACME_CHALLENGE_HTTP_01:
            pv = o->webroot ? P_WEBROOT : o->hook ? P_HOOK : P_BUILTIN;
            break;
        case ACME_CHALLENGE_TLS_ALPN_01:
            pv = o->hook ? P_HOOK : P_BUILTIN;
            break;
        case ACME_CHALLENGE_DNS_PERSIST_01:
            if (!o->dns_provider) {
                pv = P_PERSIST;
                break;
            }
            /* FALLTHROUGH */
        case ACME_CHALLENGE_DNS_01:
        case ACME_CHALLENGE_DNS_ACCOUNT_01:
            if (p->dns) {
                pv = P_MODULE;
            } else if (o->dns_provider) {
                int code = load_dns_provider(p, err, errlen);
                if (code != EXIT_OK) {
                    provision_stop(p);
                    return code;
                }
                pv = P_MODULE;
            } else if (o->hook) {
                pv = P_HOOK;
            } else if (o->challenges_explicit) {
                bprintf(err, errlen, "%s needs --dns-provider (a DNS module, doc/dns01.md) or --hook", tname(t));
                provision_stop(p);
                return EXIT_USAGE;
            }
            if (pv == P_MODULE && !modhost_handles(p->dns, t)) {
                if (t == ACME_CHALLENGE_DNS_PERSIST_01) {
                    pv = P_PERSIST; /* the module cannot check it: rely on the record */
                } else {
                    bprintf(err, errlen, "--dns-provider %s: the module %s does not answer %s", o->dns_provider,
                            modhost_name(p->dns), tname(t));
                    provision_stop(p);
                    return EXIT_USAGE;
                }
            }
            break;
        default:
            break;
        }
        if (pv == P_NONE)
            continue;
        if (pv == P_WEBROOT) {
            /* Checked now so that a typo costs no order; the document root
             * itself is never created (no web server would serve it). */
            struct stat st;
            int e = stat(o->webroot, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
            if (e) {
                bprintf(err, errlen, "--webroot %s: %s", o->webroot, strerror(e));
                provision_stop(p);
                return EXIT_USAGE;
            }
        }
        p->by_type[t] = pv;
        p->order[p->order_count++] = t;
    }
    if (!lazy) {
        for (size_t i = 0; i < p->order_count; i++)
            if (p->by_type[p->order[i]] == P_BUILTIN)
                (void)start_builtin(p, p->order[i]);
    }
    acme_challenge_type tmp[MAX_CHALLENGES];
    if (provision_types(p, tmp, MAX_CHALLENGES) == 0) {
        bprintf(err, errlen, "no challenge type can be answered here (see the warnings above): "
                 "free the port, use --http-port/--tls-port with a forwarded port, --webroot, or --hook");
        provision_stop(p);
        return EXIT_CHALLENGE;
    }
    *out = p;
    return EXIT_OK;
}

void provision_stop(provision *p)
{
    if (!p)
        return;
    signals_watch(NULL);
    /* free stops the thread and closes every connection. */
    acme_responder_free(p->http);
    acme_responder_free(p->alpn);
    modhost_free(p->dns);
    while (p->published) {
        chal_rec *n = p->published->next;
        chal_rec_free(p->published);
        p->published = n;
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void provision_bind_client(provision *p, acme_client *c)
{
    p->c = c;
}

size_t provision_types(const provision *p, acme_challenge_type *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < p->order_count && n < cap; i++)
        if (!p->unusable[p->order[i]])
            out[n++] = p->order[i];
    return n;
}

unsigned provision_take_declined(provision *p)
{
    unsigned d = p->declined;
    p->declined = 0;
    return d;
}

const char *provision_failure(const provision *p)
{
    return p->failure;
}

void provision_reset_failure(provision *p)
{
    p->failure[0] = '\0';
}

/* ---- the callbacks ---- */

static int decline(provision *p, acme_challenge_type t)
{
    p->declined |= 1u << t;
    /* libacme then tries the next allowed type in the same order. */
    return ACME_E_DECLINED;
}

static int publish_locked(provision *p, const acme_challenge *ch, chal_rec *x)
{
    acme_challenge_type t = x->type;
    const char *ident = x->ident;
    int rc;
    if (t <= ACME_CHALLENGE_NONE || t > ACME_CHALLENGE_DNS_ACCOUNT_01 || p->by_type[t] == P_NONE ||
        p->unusable[t]) {
        /* renew re-orders with the types stored at issue time; one this run
         * cannot answer is declined like a hook would. */
        progress(ACME_LOG_INFO, "%s for %s cannot be answered with these options; declining it", tname(t), ident);
        return decline(p, t);
    }
    switch (p->by_type[t]) {
    case P_BUILTIN:
        if (start_builtin(p, t) != 0)
            return decline(p, t);
        rc = route_builtin_add(route_builtin(p->http, p->alpn, t), ch);
        if (rc != ACME_OK) {
            bprintf(p->failure, sizeof(p->failure), "the built-in %s responder refused the challenge for %s (%s)",
                    tname(t), ident, acme_strerror(rc));
            return rc;
        }
        return ACME_OK;
    case P_WEBROOT: {
        char err[400];
        if (webroot_publish(p->o->webroot, x->token, x->key_auth, err, sizeof(err)) != 0) {
            bprintf(p->failure, sizeof(p->failure), "http-01 for %s: %s", ident, err);
            return ACME_E_STORAGE;
        }
        progress(ACME_LOG_INFO, "wrote %s/.well-known/acme-challenge/%s", p->o->webroot, x->token);
        return ACME_OK;
    }
    case P_MODULE: {
        char why[600];
        rc = modhost_call(p->dns, MODOP_PUBLISH, ch, why, sizeof(why));
        if (rc == ACME_E_DECLINED) {
            progress(ACME_LOG_INFO, "the DNS module declined %s for %s", tname(t), ident);
            return decline(p, t);
        }
        if (rc != ACME_OK) {
            bprintf(p->failure, sizeof(p->failure), "%s for %s: %s", tname(t), ident, why);
            return rc;
        }
        x->live = ch;
        return ACME_OK;
    }
    case P_PERSIST:
        return route_persist(ch);
    case P_HOOK: {
        int st = chal_hook_run(p->o, "begin", x);
        if (st == 0)
            return ACME_OK;
        if (st < 0 || st >= 256) {
            if (st < 0)
                bprintf(p->failure, sizeof(p->failure), "cannot run the hook %s: %s", p->o->hook, strerror(errno));
            else
                bprintf(p->failure, sizeof(p->failure), "the hook %s was killed by signal %d during begin %s %s",
                        p->o->hook, st - 256, tname(t), ident);
            return ACME_E_CALLBACK;
        }
        progress(ACME_LOG_INFO, "the hook declined %s for %s (exit status %d)", tname(t), ident, st);
        return decline(p, t);
    }
    default:
        return decline(p, t);
    }
}

int provision_publish(void *ud, const acme_challenge *ch)
{
    provision *p = ud;
    chal_rec *x = chal_rec_new(ch);
    if (!x)
        return ACME_E_NOMEM;
    pthread_mutex_lock(&p->mu);
    int rc = publish_locked(p, ch, x);
    if (rc == ACME_OK) {
        x->next = p->published;
        p->published = x;
        x = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    chal_rec_free(x);
    return rc;
}

/* Take one down; method is "done" or "failed" for the hook. */
static void take_down(provision *p, const chal_rec *x, const char *method)
{
    switch (p->by_type[x->type]) {
    case P_BUILTIN:
        route_builtin_remove(route_builtin(p->http, p->alpn, x->type), x->type, x->token, x->ident);
        break;
    case P_WEBROOT:
        webroot_unpublish(p->o->webroot, x->token);
        break;
    case P_MODULE: {
        char why[600];
        if (x->live && modhost_call(p->dns, MODOP_UNPUBLISH, x->live, why, sizeof(why)) != ACME_OK)
            progress(ACME_LOG_WARNING, "the DNS module could not remove %s for %s: %s", tname(x->type), x->ident, why);
        break;
    }
    case P_HOOK: {
        int st = chal_hook_run(p->o, method, x);
        if (st != 0)
            progress(ACME_LOG_WARNING, "the hook's %s for %s %s exited with status %d; check that "
                     "nothing is left published", method, tname(x->type), x->ident, st);
        break;
    }
    default:
        break;
    }
}

int provision_unpublish(void *ud, const acme_challenge *ch)
{
    provision *p = ud;
    acme_challenge_type t = acme_challenge_get_type(ch);
    const char *token = acme_challenge_token(ch);
    if (!token)
        token = ""; /* dns-persist-01 may have none; chal_rec holds "" then */
    pthread_mutex_lock(&p->mu);
    chal_rec **pp = &p->published;
    while (*pp && !((*pp)->type == t && !strcmp((*pp)->token, token)))
        pp = &(*pp)->next;
    chal_rec *x = *pp;
    if (x) {
        *pp = x->next;
        take_down(p, x, acme_challenge_validated(ch) ? "done" : "failed");
    }
    pthread_mutex_unlock(&p->mu);
    chal_rec_free(x);
    return ACME_OK;
}

size_t provision_interrupt(provision *p)
{
    /* Waits for a publish or unpublish in progress (a hook running),
     * then never lets go: the process exits after this. */
    pthread_mutex_lock(&p->mu);
    size_t n = 0;
    for (chal_rec *x = p->published; x; x = x->next, n++)
        take_down(p, x, "failed");
    return n;
}
