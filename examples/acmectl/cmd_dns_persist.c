/* acmectl dns-persist NAME...: the one TXT record that lets this account
 * validate NAME with dns-persist-01 from now on (draft-ietf-acme-dns-persist),
 * and whether DNS already answers it.
 *
 * For each NAME ("*.x" asks for a record that also covers the wildcard):
 *   _validation-persist.x. IN TXT "<issuer>; accounturi=<account URL>[; policy=wildcard][; persistUntil=T]"
 * The issuer domain name is --issuer, else the first one the CA's directory
 * lists (meta.issuerDomainNames). accounturi is the account URL, or, at a
 * CA whose directory has accountHashPrefix (draft -02), the hashed URI for
 * that name (libacme's acme_dns_persist_hashed_uri). The account is found or registered like
 * for issue (--agree-tos where the CA has terms), since the record names
 * its URL. Then the record is looked up through --resolver ADDR[:PORT] or
 * the system's resolver, and every TXT there is judged the way the CA will
 * (libacme's acme_dns_persist_match, against every issuer name the CA
 * lists).
 *
 * Exit: 0 every record is in place, 3 one is missing or wrong, 4 a lookup
 * failed, 2 no account. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "acmectl.h"

#define MAX_ISSUERS 10

static int usage(const acmectl_opts *o, result *res, const char *msg)
{
    output_error(o, res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL, msg);
    return EXIT_USAGE;
}

/* Check one name's record; prints what DNS answers. Returns an exit code. */
static int check_one(const acmectl_opts *o, const char *base, int wildcard, const char *want,
                     const char *const *issuers, size_t ni, const char *acct)
{
    char rr[300], err[400];
    bprintf(rr, sizeof(rr), "_validation-persist.%s", base);
    txt_answer *a = malloc(sizeof(*a));
    if (!a)
        return EXIT_INTERNAL;
    const char *via = o->resolver ? o->resolver : "the system's resolver";
    int code;
    if (txt_lookup(o->resolver, rr, a, err, sizeof(err)) != 0) {
        progress(ACME_LOG_ERROR, "%s", err);
        code = EXIT_NETWORK;
    } else if (a->count == 0) {
        printf("  %s answers no TXT record at %s yet: create the record above\n", via, rr);
        code = EXIT_CHALLENGE;
    } else {
        code = EXIT_CHALLENGE;
        for (size_t i = 0; i < a->count; i++) {
            const char *why = NULL;
            char shown[TXT_LEN + 8];
            text_escape(a->text[i], shown, sizeof(shown));
            if (acme_dns_persist_match(a->text[i], issuers, ni, acct, wildcard, (int64_t)time(NULL), &why)) {
                printf("  in place: %s answers \"%s\"%s\n", via, shown,
                       strcmp(a->text[i], want) ? " (not the same text, but the CA accepts it)" : "");
                code = EXIT_OK;
            } else {
                printf("  %s answers \"%s\": it does not do, %s\n", via, shown, why ? why : "");
            }
        }
        if (code != EXIT_OK)
            printf("  no record at %s lets this account validate %s%s: add the record above\n", rr,
                   wildcard ? "*." : "", base);
    }
    free(a);
    return code;
}

int cmd_dns_persist(const acmectl_opts *o)
{
    result res = {.command = "dns-persist"};
    char err[600];
    if (o->arg_count < 1)
        return usage(o, &res, "dns-persist needs at least one NAME (the name to validate; *.NAME for a wildcard)");
    for (int i = 0; i < o->arg_count; i++) {
        if (name_check(o->args[i], err, sizeof(err)) != 0)
            return usage(o, &res, err);
        if (strchr(o->args[i], ':') || strspn(o->args[i], "0123456789.") == strlen(o->args[i]))
            return usage(o, &res, "dns-persist validates DNS names, not IP addresses");
    }
    if (o->json)
        return usage(o, &res, "dns-persist prints the record for a person; --json is not available here");

    session s;
    int code = session_open(&s, o, &res, SESSION_NO_CHALLENGES);
    if (code != EXIT_OK) {
        session_close(&s);
        return code;
    }
    int rc = session_account(&s);
    if (rc != ACME_OK) {
        code = session_exit_code(&s, rc);
        output_error(o, &res, code, rc, s.c, "the record names the account's URL, so the account must exist first");
        session_close(&s);
        return code;
    }
    const char *acct = acme_account_url(s.c);
    const char *hash_prefix = acme_directory_account_hash_prefix(s.c);
    const char *thumb = hash_prefix ? acme_account_thumbprint(s.c) : NULL;
    const char *issuers[MAX_ISSUERS];
    size_t ni = 0;
    size_t listed = acme_directory_issuer_domain_count(s.c);
    for (size_t i = 0; i < listed && ni < MAX_ISSUERS; i++)
        issuers[ni++] = acme_directory_issuer_domain(s.c, i);
    const char *issuer = o->issuer ? o->issuer : ni ? issuers[0] : NULL;
    if (!issuer) {
        output_error(o, &res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL,
                     "the CA's directory lists no issuer domain names (meta.issuerDomainNames); give "
                     "--issuer NAME as the CA's documentation says (Let's Encrypt: letsencrypt.org)");
        session_close(&s);
        return EXIT_USAGE;
    }
    if (o->issuer) {
        /* The CA accepts only its own names; --issuer may add one the
         * directory does not list, for CAs that list none. */
        size_t k = 0;
        while (k < ni && strcasecmp(issuers[k], o->issuer) != 0)
            k++;
        if (k == ni && ni)
            progress(ACME_LOG_WARNING, "--issuer %s is not among the names the CA lists; it will refuse the record",
                     o->issuer);
        if (k == ni && ni < MAX_ISSUERS)
            issuers[ni++] = o->issuer;
    }
    printf("Create once (the CA checks it at every order; do not remove it while renewals should work):\n");
    int worst = EXIT_OK;
    for (int i = 0; i < o->arg_count; i++) {
        const char *name = o->args[i];
        int wildcard = !strncmp(name, "*.", 2);
        const char *base = wildcard ? name + 2 : name;
        char lower[256];
        size_t bl = strlen(base) < sizeof(lower) - 1 ? strlen(base) : sizeof(lower) - 1;
        for (size_t k = 0; k < bl; k++)
            lower[k] = (char)((base[k] >= 'A' && base[k] <= 'Z') ? base[k] - 'A' + 'a' : base[k]);
        lower[bl] = '\0';
        acme_buffer *u = acme_buffer_new();
        if (u && hash_prefix)
            rc = acme_dns_persist_hashed_uri(hash_prefix, lower, thumb, acct, u);
        else if (u)
            rc = acme_buffer_append(u, acct, strlen(acct));
        const char *accounturi = u && rc == ACME_OK ? acme_buffer_data(u) : NULL;
        acme_buffer *b = acme_buffer_new();
        if (!b || !accounturi ||
            (rc = acme_dns_persist_value(issuer, accounturi, wildcard ? ACME_DNS_PERSIST_WILDCARD : 0,
                                         o->persist_until, b)) != ACME_OK) {
            bprintf(err, sizeof(err), "cannot form the record for %s with issuer %s and account %s (%s)", name, issuer,
                    acct, acme_strerror(b ? rc : ACME_E_NOMEM));
            output_error(o, &res, EXIT_USAGE, b ? rc : ACME_E_NOMEM, NULL, err);
            acme_buffer_free(b);
            acme_buffer_free(u);
            session_close(&s);
            return EXIT_USAGE;
        }
        const char *value = acme_buffer_data(b);
        printf("_validation-persist.%s. IN TXT \"%s\"\n", base, value);
        if (hash_prefix)
            printf("  (accounturi is the hashed URI this CA asks for: its directory has accountHashPrefix)\n");
        int c = check_one(o, base, wildcard, value, issuers, ni, accounturi);
        /* The worst outcome decides: a failed lookup over a missing record. */
        if (c == EXIT_NETWORK || (c != EXIT_OK && worst == EXIT_OK))
            worst = c;
        acme_buffer_free(b);
        acme_buffer_free(u);
    }
    session_close(&s);
    return worst;
}
