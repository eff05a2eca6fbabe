/* acmectl account show|update|deactivate|rollover: the ACME account of
 * the stored account key at this CA. "show" never creates anything;
 * "update" creates the account when there is none yet (with --agree-tos
 * where the CA has terms), otherwise replaces its contacts. */
#include <stdio.h>
#include <string.h>

#include "acmectl.h"

static void fill_account(result *res, acme_client *c)
{
    res->account_url = acme_account_url(c);
    res->account_status = acme_account_status(c);
    res->thumbprint = acme_account_thumbprint(c);
    static const char *contacts[64];
    size_t n = acme_account_contact_count(c);
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        contacts[i] = acme_account_contact(c, i);
    res->contacts = contacts;
    res->contact_count = n;
}

static int usage(const acmectl_opts *o, result *res, const char *msg)
{
    output_error(o, res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL, msg);
    return EXIT_USAGE;
}

int cmd_account(const acmectl_opts *o)
{
    static char cmd[32];
    const char *sub = o->arg_count ? o->args[0] : "";
    bprintf(cmd, sizeof(cmd), "account %s", sub);
    result res = { .command = cmd };
    int show = !strcmp(sub, "show"), update = !strcmp(sub, "update");
    int deact = !strcmp(sub, "deactivate"), roll = !strcmp(sub, "rollover");
    if (!show && !update && !deact && !roll)
        return usage(o, &res, "account needs one of: show, update, deactivate, rollover");
    if (o->arg_count > 1)
        return usage(o, &res, "account takes no names; contacts go in --contact URI");
    if (deact && !o->yes)
        return usage(o, &res, "account deactivate cannot be undone: the CA will refuse this account "
                              "for good. Add --yes to do it");

    session s;
    int code = session_open(&s, o, &res, SESSION_NO_CHALLENGES);
    if (code != EXIT_OK) {
        session_close(&s);
        return code;
    }
    int rc;
    if (show) {
        rc = acme_account_find(s.c);
    } else if (update) {
        rc = acme_account_find(s.c);
        if (rc == ACME_E_NO_ACCOUNT) {
            progress(ACME_LOG_INFO, "no account yet for this key; registering one");
            rc = session_account(&s);
        } else if (rc == ACME_OK) {
            if (!o->contacts_given) {
                session_close(&s);
                return usage(o, &res, "account update: nothing to change; give --contact URI "
                                      "(repeatable), or --contact '' to remove every contact");
            }
            rc = acme_account_update_contacts(s.c, o->contacts, o->contact_count);
        }
    } else if (deact) {
        rc = acme_account_deactivate(s.c);
    } else {
        rc = acme_account_rollover(s.c, o->account_key_type);
    }
    if (rc != ACME_OK) {
        code = session_exit_code(&s, rc);
        const char *extra = NULL;
        if (rc == ACME_E_NO_ACCOUNT)
            extra = "no account for the stored key at this CA: create one with "
                    "`acmectl account update --agree-tos [--contact URI]` or by issuing a certificate";
        output_error(o, &res, code, rc, s.c, extra);
    } else {
        fill_account(&res, s.c);
        if (deact)
            res.message = "account deactivated";
        else if (roll)
            res.message = "account key replaced";
        output_success(o, &res);
    }
    session_close(&s);
    return code;
}
