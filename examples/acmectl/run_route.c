/* The host callbacks of `acmectl run`: who answers which challenge, and
 * where a new certificate goes.
 *
 *   publish    the first [module] that handles the type, on that module's
 *              worker thread (ACME_E_PENDING now, acme_engine_done when it
 *              finished); else the built-in responder of the type
 *              (http-port / tls-port); else ACME_E_DECLINED, and the order
 *              tries the next type.
 *   unpublish  whoever published it.
 *   install    out-dir (as --out), then every module with an install hook,
 *              synchronously: the certificate object lives only during
 *              the call (the engine hands over stored certificates at
 *              start that way), and an install is a few local operations.
 *
 * Everything published is remembered (the challenge object stays valid
 * until it is unpublished), so that a shutdown takes it down. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acmectl.h"

enum { PUB_PUBLISHING, PUB_UP, PUB_UNPUBLISHING };

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
        x->state = PUB_PUBLISHING;
        if (modhost_queue(mh, MODOP_PUBLISH, ch) != 0) {
            free(x);
            return ACME_E_NOMEM;
        }
        progress(ACME_LOG_DEBUG, "%s: module %s publishes it", x->what, modhost_label(mh));
        rc = ACME_E_PENDING;
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
    if (!x || x->state != PUB_UP)
        return ACME_OK;
    if (x->mh) {
        if (modhost_queue(x->mh, MODOP_UNPUBLISH, ch) == 0) {
            x->state = PUB_UNPUBLISHING;
            return ACME_E_PENDING;
        }
        /* Out of memory for a job: do it here. */
        char why[600];
        int rc = modhost_call(x->mh, MODOP_UNPUBLISH, ch, why, sizeof(why));
        if (rc != ACME_OK)
            progress(ACME_LOG_WARNING, "%s: module %s could not take it down: %s", x->what,
                     modhost_label(x->mh), why);
        drop(r, ch);
        return rc;
    }
    acme_responder *resp = builtin_for(r, x->type);
    if (resp)
        (void)acme_responder_remove(resp, x->key);
    drop(r, ch);
    return ACME_OK;
}

void router_collect(router *r)
{
    for (size_t i = 0; i < r->p.module_count; i++) {
        modjob *j = modhost_take_done(r->p.modules[i]);
        while (j) {
            modjob *next = j->next;
            pub *x = *find(r, j->object);
            const char *what = x ? x->what : "a challenge";
            if (j->op == MODOP_PUBLISH) {
                if (j->rc == ACME_OK && x) {
                    x->state = PUB_UP;
                    progress(ACME_LOG_INFO, "%s: published by module %s", what, modhost_label(j->mh));
                } else {
                    if (j->rc == ACME_E_DECLINED)
                        progress(ACME_LOG_INFO, "%s: module %s declined it", what, modhost_label(j->mh));
                    else
                        progress(ACME_LOG_ERROR, "%s: module %s could not publish it: %s", what,
                                 modhost_label(j->mh), j->why);
                    drop(r, j->object);
                }
            } else if (j->op == MODOP_UNPUBLISH) {
                if (j->rc != ACME_OK)
                    progress(ACME_LOG_WARNING, "%s: module %s could not take it down: %s", what,
                             modhost_label(j->mh), j->why);
                drop(r, j->object);
            }
            if (r->e && acme_engine_done(r->e, j->object, j->rc) != ACME_OK)
                progress(ACME_LOG_DEBUG, "%s: the engine no longer waits for it", what);
            free(j);
            j = next;
        }
    }
}

void router_shutdown(router *r)
{
    /* Let running module calls finish (a dns-01 provider may be waiting
     * for propagation: say so), drop the queued ones. */
    for (size_t i = 0; i < r->p.module_count; i++) {
        modhost *mh = r->p.modules[i];
        char running[32];
        modhost_running(mh, running, sizeof(running));
        if (running[0])
            progress(ACME_LOG_INFO, "waiting for module %s to finish its %s", modhost_label(mh), running);
        modjob *left = modhost_stop_worker(mh);
        while (left) {
            modjob *n = left->next;
            pub *x = *find(r, left->object);
            if (x && left->op == MODOP_PUBLISH)
                drop(r, left->object);         /* never published */
            else if (x && left->op == MODOP_UNPUBLISH)
                x->state = PUB_UP;             /* still up: below */
            free(left);
            left = n;
        }
    }
    acme_engine *e = r->e;
    r->e = NULL; /* the results are recorded, the engine is not told */
    router_collect(r);
    size_t n = 0;
    while (r->pubs) {
        pub *x = r->pubs;
        if (x->state == PUB_UP || x->state == PUB_UNPUBLISHING) {
            if (x->mh) {
                char why[600];
                if (modhost_call(x->mh, MODOP_UNPUBLISH, x->ch, why, sizeof(why)) != ACME_OK)
                    progress(ACME_LOG_WARNING, "%s: module %s could not take it down: %s", x->what,
                             modhost_label(x->mh), why);
            } else if (builtin_for(r, x->type)) {
                (void)acme_responder_remove(builtin_for(r, x->type), x->key);
            }
            n++;
        }
        drop(r, x->ch);
    }
    if (n)
        progress(ACME_LOG_INFO, "took down %zu challenge(s); the order resumes at the next start", n);
    r->e = e;
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
    for (size_t i = 0; i < r->p.module_count; i++) {
        modhost *mh = r->p.modules[i];
        if (!modhost_installs(mh))
            continue;
        char why[600];
        int mrc = modhost_call(mh, MODOP_INSTALL, cert, why, sizeof(why));
        if (mrc == ACME_OK) {
            progress(ACME_LOG_INFO, "%s: installed by module %s", id, modhost_label(mh));
        } else {
            progress(ACME_LOG_ERROR, "%s: module %s could not install it: %s", id, modhost_label(mh), why);
            if (rc == ACME_OK)
                rc = ACME_E_CALLBACK;
        }
    }
    return rc;
}
