/* A libacme module (acme_module_load), for `--dns-provider` and `run`.
 *
 * Modules are loaded on the program's one client (the one that places
 * the orders): libacme gives a module its storage and its log through it.
 * What the module does (answers challenges, installs certificates) comes
 * from acme_module_flags: the module is never opened a second time.
 *
 * issue/renew call the hooks in the caller's thread (modhost_call: the
 * engine runs to completion there). `run` hands each module to its
 * engine (modhost_set_engine = acme_module_set_engine): libacme runs the
 * hooks on the module's own thread, so a dns-01 provider waiting minutes
 * for propagation never stalls the loop, and reports each outcome, with
 * the module's own sentence, to the engine from modhost_dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acmectl.h"

struct modhost {
    char *label;
    acme_module *m;
    acme_client *c;                /* the client it is loaded on */
    int installs;
};

int modhost_load(const modhost_params *p, modhost **out, char *err, size_t errlen)
{
    *out = NULL;
    modhost *mh = calloc(1, sizeof(*mh));
    if (!mh || !(mh->label = strdup(p->label ? p->label : p->path))) {
        free(mh);
        bprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = acme_module_load(p->client, p->path, p->config, &mh->m);
    if (rc != ACME_OK) {
        const char *why = acme_client_last_error(p->client);
        bprintf(err, errlen, "%s", *why ? why : acme_strerror(rc));
        modhost_free(mh);
        return -1;
    }
    mh->c = p->client;
    mh->installs = (acme_module_flags(mh->m) & ACME_MODULE_INSTALLS) != 0;
    *out = mh;
    return 0;
}

void modhost_free(modhost *mh)
{
    if (!mh)
        return;
    /* A hook in progress on the module's thread finishes first. */
    acme_module_free(mh->m);
    free(mh->label);
    free(mh);
}

const char *modhost_label(const modhost *mh)
{
    return mh->label;
}

const char *modhost_name(const modhost *mh)
{
    return acme_module_name(mh->m);
}

int modhost_handles(const modhost *mh, acme_challenge_type t)
{
    return acme_module_handles(mh->m, t);
}

int modhost_installs(const modhost *mh)
{
    return mh->installs;
}

static const char *op_name(int op)
{
    return op == MODOP_PUBLISH ? "publish" : op == MODOP_UNPUBLISH ? "unpublish" : "install";
}

int modhost_call(modhost *mh, int op, const void *object, char *why, size_t whylen)
{
    why[0] = '\0';
    int rc = op == MODOP_PUBLISH ? acme_module_publish(mh->m, object)
             : op == MODOP_UNPUBLISH ? acme_module_unpublish(mh->m, object)
                                     : acme_module_install(mh->m, object);
    if (rc == ACME_E_PENDING) {
        /* Only a module handed to an engine answers so: not here. */
        bprintf(why, whylen, "module %s: %s answered ACME_E_PENDING outside an engine loop", modhost_name(mh),
                op_name(op));
        rc = ACME_E_CALLBACK;
    } else if (rc != ACME_OK && rc != ACME_E_DECLINED) {
        /* The module's own sentence: no other module's call replaced it. */
        const char *e = acme_module_last_error(mh->m);
        bprintf(why, whylen, "%s", e && *e ? e : acme_strerror(rc));
    }
    return rc;
}

/* ---- under an engine (run) ------------------------------------------------ */

int modhost_set_engine(modhost *mh, acme_engine *e, char *err, size_t errlen)
{
    int rc = acme_module_set_engine(mh->m, e);
    if (rc != ACME_OK) {
        const char *why = acme_client_last_error(mh->c);
        bprintf(err, errlen, "%s", why && *why ? why : acme_strerror(rc));
        return -1;
    }
    return 0;
}

int modhost_submit(modhost *mh, int op, const void *object)
{
    return op == MODOP_PUBLISH ? acme_module_publish(mh->m, object)
           : op == MODOP_UNPUBLISH ? acme_module_unpublish(mh->m, object)
                                   : acme_module_install(mh->m, object);
}

int modhost_fd(const modhost *mh)
{
    return acme_module_fd(mh->m);
}

int modhost_dispatch(modhost *mh)
{
    return acme_module_dispatch(mh->m);
}
