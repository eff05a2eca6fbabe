/* acmectl issue/renew with --directory given more than once: the CAs in
 * that order as a libacme CA list (acme_ca_list_*), so that a CA that is
 * down, rate-limits or refuses the names is replaced by the next one, and
 * the choice is kept in the state directory for the next run. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acmectl.h"

int session_open_cas(session *s, char *err, size_t errlen)
{
    const acmectl_opts *o = s->o;
    acme_account_params ap;
    memset(&ap, 0, sizeof(ap));
    ap.size = sizeof(ap);
    ap.contacts = o->contacts;
    ap.contact_count = o->contact_count;
    ap.agree_tos = o->agree_tos;
    if (acme_ca_list_new(&ap, &s->cas) != ACME_OK) {
        bprintf(err, errlen, "out of memory");
        return EXIT_INTERNAL;
    }
    for (size_t i = 0; i < o->directory_count; i++) {
        acme_client *c = s->c;
        if (i > 0) {
            int rc = session_new_client(s, o->directories[i], &c);
            if (rc != ACME_OK) {
                bprintf(err, errlen, "--directory %s: %s", o->directories[i],
                        c && *acme_client_last_error(c) ? acme_client_last_error(c) : acme_strerror(rc));
                acme_client_free(c);
                return rc == ACME_E_STORAGE ? EXIT_STORAGE : EXIT_USAGE;
            }
        }
        /* "ca1", "ca2"... in --directory order: the status also names the URL. */
        char name[16];
        bprintf(name, sizeof(name), "ca%zu", i + 1);
        acme_ca_params p;
        memset(&p, 0, sizeof(p));
        p.size = sizeof(p);
        p.name = name;
        if (i == 0) {
            /* --eab-kid/--eab-hmac-key belong to the first CA. */
            p.eab_kid = o->eab_kid;
            p.eab_hmac_key = o->eab_kid ? o->eab_hmac : NULL;
        }
        int rc = acme_ca_list_add(s->cas, &p, c); /* the list owns c, s->c included */
        if (rc != ACME_OK) {
            bprintf(err, errlen, "%s", acme_ca_list_last_error(s->cas));
            if (i == 0)
                s->c = NULL;
            return EXIT_USAGE;
        }
    }
    progress(ACME_LOG_INFO, "%zu CAs in --directory order; the next is used when one is down, rate-limits "
             "or refuses the names", o->directory_count);
    return EXIT_OK;
}

int session_issue(session *s, const acme_issue_params *ip)
{
    return s->cas ? acme_ca_list_issue(s->cas, ip) : acme_issue(s->c, ip);
}

int session_renew(session *s, const char *id, int force, int *renewed)
{
    return s->cas ? acme_ca_list_renew(s->cas, id, force, renewed) : acme_renew(s->c, id, force, renewed);
}

static int has_cert(void *ud, const acme_certificate *cert)
{
    (void)cert;
    *(int *)ud = 1;
    return ACME_OK;
}

acme_client *session_holder(session *s, const char *id)
{
    if (!s->cas)
        return s->c;
    const char *st = acme_ca_list_status_json(s->cas, id);
    json_t *o = st ? json_loads(st, 0, NULL) : NULL;
    const char *dir = o ? json_string_value(json_object_get(o, "directory")) : NULL;
    acme_client *found = NULL;
    for (size_t i = 0; dir && i < acme_ca_list_count(s->cas) && !found; i++)
        if (!strcmp(s->o->directories[i], dir))
            found = acme_ca_list_client(s->cas, i);
    json_decref(o);
    for (size_t i = 0; !found && i < acme_ca_list_count(s->cas); i++) {
        int ok = 0;
        acme_client *c = acme_ca_list_client(s->cas, i);
        if (acme_cert_load(c, id, has_cert, &ok) == ACME_OK && ok)
            found = c;
    }
    return found ? found : s->c;
}

typedef struct ids {
    char **v;
    size_t n;
} ids;

static int add_id(void *ud, const char *id)
{
    ids *l = ud;
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], id))
            return 0;
    char **nv = realloc(l->v, (l->n + 1) * sizeof(char *));
    if (!nv)
        return 1;
    l->v = nv;
    if (!(l->v[l->n] = strdup(id)))
        return 1;
    l->n++;
    return 0;
}

int session_cert_list(session *s, int (*cb)(void *ud, const char *id), void *ud)
{
    if (!s->cas)
        return acme_cert_list(s->c, cb, ud);
    ids all = {NULL, 0};
    int rc = ACME_OK;
    for (size_t i = 0; rc == ACME_OK && i < acme_ca_list_count(s->cas); i++)
        rc = acme_cert_list(acme_ca_list_client(s->cas, i), add_id, &all);
    for (size_t i = 0; i < all.n; i++) {
        if (rc == ACME_OK && cb(ud, all.v[i]))
            rc = ACME_E_NOMEM;
        free(all.v[i]);
    }
    free(all.v);
    return rc;
}

void session_report_ca(session *s, const char *id)
{
    if (!s->cas)
        return;
    const char *st = acme_ca_list_status_json(s->cas, id);
    json_t *o = st ? json_loads(st, 0, NULL) : NULL;
    if (o)
        progress(ACME_LOG_INFO, "%s comes from %s (%s): %s", id, json_string_value(json_object_get(o, "ca")),
                 json_string_value(json_object_get(o, "directory")),
                 json_string_value(json_object_get(o, "reason")));
    json_decref(o);
}
