/* The host callbacks of `acmectl run`: who answers which challenge, and
 * where a new certificate goes.
 *
 *   publish    the first [module] that handles the type: libacme runs its
 *              hooks on the module's own thread (acme_module_set_engine,
 *              cmd_run.c) and reports the outcome, with the module's own
 *              sentence, to the engine (ACME_E_PENDING now); else the
 *              built-in responder of the type (http-port / tls-port);
 *              else ACME_E_DECLINED, and the order tries the next type.
 *   unpublish  whoever published it.
 *   install    out-dir (as --out), then every module with an install hook
 *              (on its thread; libacme hands it a copy, so the engine's
 *              certificate may go). With several installing modules the
 *              engine takes the first outcome to arrive; a later failure
 *              is logged with the module's reason.
 *
 * What went to a module or a responder is remembered, so that a shutdown
 * takes it down: the module's outcome goes to the engine, not here, so a
 * challenge handed to a module counts as possibly up until the engine
 * asks for its removal, and the list is emptied whenever the engine is
 * idle (no order holds a challenge then). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acmectl.h"

/* PUB_HANDED: a module has it (publishing, or published: the engine
 * knows which); PUB_CLEANING: its removal is handed to the module;
 * PUB_UP: a built-in responder serves it. */
enum { PUB_HANDED, PUB_UP, PUB_CLEANING };

typedef struct pub {
    struct pub *next;
    const acme_challenge *ch;
    modhost *mh;                   /* NULL: a built-in responder */
    acme_challenge_type type;
    int state;
    char *key;                     /* what acme_responder_remove wants */
    char what[300];                /* "http-01 for www.example.org" */
} pub;

struct router {
    router_params p;
    acme_engine *e;
    pub *pubs;
};

router *router_new(const router_params *p)
{
    router *r = calloc(1, sizeof(*r));
    if (r)
        r->p = *p;
    return r;
}

void router_free(router *r)
{
    if (!r)
        return;
    while (r->pubs) {
        pub *n = r->pubs->next;
        free(r->pubs->key);
        free(r->pubs);
        r->pubs = n;
    }
    free(r);
}

void router_bind_engine(router *r, acme_engine *e)
{
    r->e = e;
}

static modhost *module_for(const router *r, acme_challenge_type t)
{
    for (size_t i = 0; i < r->p.module_count; i++)
        if (modhost_handles(r->p.modules[i], t))
            return r->p.modules[i];
    return NULL;
}

static acme_responder *builtin_for(const router *r, acme_challenge_type t)
{
    return route_builtin(r->p.http, r->p.alpn, t);
}

int router_serves(const router *r, acme_challenge_type t)
{
    /* dns-persist-01 needs nobody: the owner created the record once. */
    return module_for(r, t) || builtin_for(r, t) || t == ACME_CHALLENGE_DNS_PERSIST_01;
}

static pub **find(router *r, const void *ch)
{
    pub **pp = &r->pubs;
    while (*pp && (*pp)->ch != ch)
        pp = &(*pp)->next;
    return pp;
}

static void drop(router *r, const void *ch)
{
    pub **pp = find(r, ch);
    pub *x = *pp;
    if (x) {
        *pp = x->next;
        free(x->key);
        free(x);
    }
}

int router_publish(void *ud, const acme_challenge *ch)
{
    router *r = ud;
    acme_challenge_type t = acme_challenge_get_type(ch);
    const char *ident = acme_challenge_identifier(ch);
    modhost *mh = module_for(r, t);
    acme_responder *resp = mh ? NULL : builtin_for(r, t);
    if (!mh && t == ACME_CHALLENGE_DNS_PERSIST_01)
        return route_persist(ch); /* nothing remembered: unpublish finds nothing to take down */
    if (!mh && !resp) {
        progress(ACME_LOG_INFO, "nothing here answers %s (for %s): declined", acme_challenge_type_name(t), ident);
        return ACME_E_DECLINED;
    }
    /* A challenge of an order that is gone, at the same address. */
    drop(r, ch);
    pub *x = calloc(1, sizeof(*x));
    if (!x)
        return ACME_E_NOMEM;
    x->ch = ch;
    x->mh = mh;
    x->type = t;
    bprintf(x->what, sizeof(x->what), "%s for %s%s", acme_challenge_type_name(t),
            acme_challenge_is_wildcard(ch) ? "*." : "", ident);
    int rc;
    if (mh) {
        rc = modhost_submit(mh, MODOP_PUBLISH, ch);
        if (rc != ACME_E_PENDING && rc != ACME_OK) {
            if (rc == ACME_E_DECLINED)
                progress(ACME_LOG_INFO, "%s: module %s declined it", x->what, modhost_label(mh));
            else
                progress(ACME_LOG_ERROR, "%s: module %s could not take it (%s)", x->what, modhost_label(mh),
                         acme_strerror(rc));
            free(x);
            return rc;
        }
        x->state = PUB_HANDED;
        progress(ACME_LOG_INFO, "%s: handed to module %s", x->what, modhost_label(mh));
    } else {
        x->key = strdup(route_builtin_key(t, acme_challenge_token(ch), ident));
        if (!x->key) {
            free(x);
            return ACME_E_NOMEM;
        }
        rc = route_builtin_add(resp, ch);
        if (rc != ACME_OK) {
            progress(ACME_LOG_ERROR, "%s: the built-in responder refused it (%s)", x->what, acme_strerror(rc));
            free(x->key);
            free(x);
            return rc;
        }
        x->state = PUB_UP;
    }
    x->next = r->pubs;
    r->pubs = x;
    return rc;
}

int router_unpublish(void *ud, const acme_challenge *ch)
{
    router *r = ud;
    pub *x = *find(r, ch);
    if (!x || x->state == PUB_CLEANING)
        return ACME_OK;
    if (x->mh) {
        int rc = modhost_submit(x->mh, MODOP_UNPUBLISH, ch);
        if (rc == ACME_E_PENDING) {
            x->state = PUB_CLEANING; /* until the engine is idle, or the shutdown */
            return rc;
        }
        if (rc != ACME_OK)
            progress(ACME_LOG_WARNING, "%s: module %s could not take it down (%s)", x->what, modhost_label(x->mh),
                     acme_strerror(rc));
        drop(r, ch);
        return rc;
    }
    acme_responder *resp = builtin_for(r, x->type);
    if (resp)
        (void)acme_responder_remove(resp, x->key);
    drop(r, ch);
    return ACME_OK;
}

int router_poll_fds(const router *r, struct pollfd *fds, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < r->p.module_count && n < cap; i++) {
        int fd = modhost_fd(r->p.modules[i]);
        if (fd >= 0)
            fds[n++] = (struct pollfd){fd, POLLIN, 0};
    }
    return (int)n;
}

void router_collect(router *r)
{
    /* Never blocks: outcomes go to the engine, log lines to the log. */
    for (size_t i = 0; i < r->p.module_count; i++)
        (void)modhost_dispatch(r->p.modules[i]);
}

void router_tick(router *r)
{
    /* Idle: no order holds a challenge, every outcome was delivered. */
    if (!r->e || !acme_engine_idle(r->e))
        return;
    pub **pp = &r->pubs;
    while (*pp) {
        pub *x = *pp;
        if (x->mh) {
            *pp = x->next;
            free(x->key);
            free(x);
        } else {
            pp = &x->next;
        }
    }
}

void router_shutdown(router *r)
{
    /* Stop each module's thread: a hook in progress finishes (a dns-01
     * provider's wait gives up at its next look, host->stopping), queued
     * calls are dropped, and the engine hears nothing more. */
    for (size_t i = 0; i < r->p.module_count; i++) {
        modhost *mh = r->p.modules[i];
        size_t held = 0;
        for (pub *x = r->pubs; x; x = x->next)
            held += x->mh == mh;
        if (held)
            progress(ACME_LOG_INFO, "waiting for module %s to finish its call in progress (%zu challenge(s) "
                     "handed to it)", modhost_label(mh), held);
        char err[600];
        if (modhost_set_engine(mh, NULL, err, sizeof(err)) != 0)
            progress(ACME_LOG_WARNING, "module %s: %s", modhost_label(mh), err);
    }
    /* Now in this thread: take down whatever may be up. A module's
     * removal of a record its publish never made (or already removed)
     * finds nothing to remove. */
    size_t n = 0;
    while (r->pubs) {
        pub *x = r->pubs;
        if (x->mh) {
            char why[600];
            if (modhost_call(x->mh, MODOP_UNPUBLISH, x->ch, why, sizeof(why)) != ACME_OK)
                progress(ACME_LOG_WARNING, "%s: module %s could not take it down: %s", x->what,
                         modhost_label(x->mh), why);
            n++;
        } else if (x->state == PUB_UP && builtin_for(r, x->type)) {
            (void)acme_responder_remove(builtin_for(r, x->type), x->key);
            n++;
        }
        drop(r, x->ch);
    }
    if (n)
        progress(ACME_LOG_INFO, "took down %zu challenge(s); the order resumes at the next start", n);
}

/* ---- install ------------------------------------------------------------- */

/* out-dir: <id>.key and <id>.crt replaced as a pair, as --out does. */
static int write_out(const char *dir, const acme_certificate *cert)
{
    const char *id = acme_certificate_id(cert);
    char crt[512], key[512];
    bprintf(crt, sizeof(crt), "%s.crt", id);
    bprintf(key, sizeof(key), "%s.key", id);
    char why[700];
    if (file_write_pair(dir, id, cert, why, sizeof(why)) != 0) {
        progress(ACME_LOG_ERROR, "%s: out-dir: %s; the new certificate is stored in the state directory",
                 id, why);
        return ACME_E_STORAGE;
    }
    progress(ACME_LOG_INFO, "%s: wrote %s/%s and %s/%s", id, dir, crt, dir, key);
    return ACME_OK;
}

int router_install(void *ud, const acme_certificate *cert)
{
    router *r = ud;
    const char *id = acme_certificate_id(cert);
    char until[32];
    format_time(acme_certificate_not_after(cert), until, sizeof(until));
    int someone = r->p.out_dir != NULL;
    for (size_t i = 0; i < r->p.module_count; i++)
        someone |= modhost_installs(r->p.modules[i]);
    progress(someone ? ACME_LOG_INFO : ACME_LOG_DEBUG, "%s: %s the certificate valid until %s", id,
             someone ? "installing" : "nothing installs (no out-dir, no module with an install hook)", until);
    int rc = ACME_OK;
    if (r->p.out_dir)
        rc = write_out(r->p.out_dir, cert);
    int handed = 0;
    for (size_t i = 0; i < r->p.module_count; i++) {
        modhost *mh = r->p.modules[i];
        if (!modhost_installs(mh))
            continue;
        int mrc = modhost_submit(mh, MODOP_INSTALL, cert);
        if (mrc == ACME_E_PENDING) {
            progress(ACME_LOG_INFO, "%s: handed to module %s to install", id, modhost_label(mh));
            handed = 1;
        } else if (mrc == ACME_OK) {
            progress(ACME_LOG_INFO, "%s: installed by module %s", id, modhost_label(mh));
        } else {
            progress(ACME_LOG_ERROR, "%s: module %s could not take it (%s)", id, modhost_label(mh),
                     acme_strerror(mrc));
            if (rc == ACME_OK)
                rc = ACME_E_CALLBACK;
        }
    }
    /* The module's outcome (and its reason) reaches the engine. */
    return rc == ACME_OK && handed ? ACME_E_PENDING : rc;
}
