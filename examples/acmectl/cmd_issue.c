/* acmectl issue NAME...: check the names, prepare the challenge
 * providers, make sure there is an account, and order one certificate for
 * all the names. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "acmectl.h"

/* --out must be writable before anything is ordered: an issued
 * certificate that cannot be written still counts against rate limits. */
static int check_out_dir(const acmectl_opts *o, result *res)
{
    char err[600];
    if (!o->out_dir)
        return EXIT_OK;
    if (mkdir_p(o->out_dir, 0755) != 0 || access(o->out_dir, W_OK | X_OK) != 0) {
        bprintf(err, sizeof(err), "--out %s: %s", o->out_dir, strerror(errno));
        output_error(o, res, EXIT_STORAGE, ACME_E_STORAGE, NULL, err);
        return EXIT_STORAGE;
    }
    return EXIT_OK;
}

int cmd_issue(const acmectl_opts *o)
{
    result res = { .command = "issue" };
    char err[600];
    if (o->arg_count == 0) {
        output_error(o, &res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL,
                     "issue needs at least one name: acmectl issue NAME...");
        return EXIT_USAGE;
    }
    for (int i = 0; i < o->arg_count; i++) {
        if (name_check(o->args[i], err, sizeof(err)) != 0) {
            output_error(o, &res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL, err);
            return EXIT_USAGE;
        }
        for (int j = 0; j < i; j++) {
            if (strcasecmp(o->args[i], o->args[j]) == 0) {
                bprintf(err, sizeof(err), "%s is given twice", o->args[i]);
                output_error(o, &res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL, err);
                return EXIT_USAGE;
            }
        }
    }
    /* A wildcard can only be validated by a DNS type: dns-01 or
     * dns-account-01, which only a DNS module or a hook answers, or
     * dns-persist-01 (its record says policy=wildcard): say so before an
     * order is placed. */
    int dns_ok = 0;
    for (size_t i = 0; i < o->challenge_count; i++)
        dns_ok |= ((o->challenges[i] == ACME_CHALLENGE_DNS_01 || o->challenges[i] == ACME_CHALLENGE_DNS_ACCOUNT_01) &&
                   (o->dns_provider || o->hook)) ||
                  o->challenges[i] == ACME_CHALLENGE_DNS_PERSIST_01;
    for (int i = 0; i < o->arg_count && !dns_ok; i++) {
        if (!strncmp(o->args[i], "*.", 2)) {
            bprintf(err, sizeof(err), "%s: a wildcard needs dns-01, which acmectl answers only through "
                     "--dns-provider or --hook (and --challenge must allow dns-01)", o->args[i]);
            output_error(o, &res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL, err);
            return EXIT_USAGE;
        }
    }
    int code = check_out_dir(o, &res);
    if (code != EXIT_OK)
        return code;

    session s;
    code = session_open(&s, o, &res, SESSION_CHALLENGES_NOW);
    if (code != EXIT_OK) {
        session_close(&s);
        return code;
    }
    progress(ACME_LOG_INFO, "issuing a certificate for %s%s from %s", o->args[0],
             o->arg_count > 1 ? " and more" : "", o->directory);
    int rc = session_account(&s);
    if (rc == ACME_OK) {
        issue_request rq = { (const char *const *)o->args, (size_t)o->arg_count, NULL, o->key_type };
        rc = issue_run(&s, &rq);
    }
    if (rc != ACME_OK) {
        code = session_exit_code(&s, rc);
        output_error(o, &res, code, rc, s.c, session_extra_error(&s));
    } else {
        code = EXIT_OK;
        char id[300];
        bprintf(id, sizeof(id), "%s%s", strncmp(o->args[0], "*.", 2) ? "" : "_.",
                strncmp(o->args[0], "*.", 2) ? o->args[0] : o->args[0] + 2);
        session_report_ca(&s, id);
        output_success(o, &res);
    }
    session_close(&s);
    result_clear(&res);
    return code;
}
