/* What acmectl says at the end: a summary for a person (stdout), or with
 * --json one JSON object for a program (stdout); errors always also go to
 * stderr in words, with the CA's problem document spelled out. The exit
 * code mapping lives here too, so the man page has one place to match. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "acmectl.h"

result_cert *result_add_cert(result *r)
{
    result_cert *n = realloc(r->certs, (r->cert_count + 1) * sizeof(*n));
    if (!n)
        return NULL;
    r->certs = n;
    memset(&n[r->cert_count], 0, sizeof(*n));
    return &n[r->cert_count++];
}

void result_clear(result *r)
{
    for (size_t i = 0; i < r->cert_count; i++) {
        result_cert *c = &r->certs[i];
        free(c->id);
        for (size_t j = 0; j < c->name_count; j++)
            free(c->names[j]);
        free(c->names);
        free(c->issuer);
        free(c->chain_file);
        free(c->key_file);
        free(c->error);
    }
    free(r->certs);
    r->certs = NULL;
    r->cert_count = 0;
}

void format_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        bprintf(buf, len, "%lld", (long long)t);
}

const char *exit_code_name(int code)
{
    switch (code) {
    case EXIT_OK: return "ok";
    case EXIT_USAGE: return "usage";
    case EXIT_ACCOUNT: return "account";
    case EXIT_CHALLENGE: return "challenge-failed";
    case EXIT_NETWORK: return "network";
    case EXIT_STORAGE: return "storage";
    case EXIT_CA_REFUSED: return "ca-refused";
    case EXIT_INSTALL: return "install-failed";
    default: return "internal";
    }
}

static int problem_is(const acme_problem *p, const char *suffix)
{
    const char *t = p ? acme_problem_type(p) : NULL;
    static const char pfx[] = "urn:ietf:params:acme:error:";
    return t && strncmp(t, pfx, sizeof(pfx) - 1) == 0 && strcmp(t + sizeof(pfx) - 1, suffix) == 0;
}

int exit_code_for(int rc, const acme_client *c, const char *command)
{
    int issuing = command && (!strcmp(command, "issue") || !strcmp(command, "renew"));
    int revoking = command && !strcmp(command, "revoke");
    const acme_problem *p = c ? acme_client_problem(c) : NULL;
    switch (rc) {
    case ACME_OK:
        return EXIT_OK;
    case ACME_E_INVALID_ARG:
        return EXIT_USAGE;
    case ACME_E_STORAGE:
    case ACME_E_LOCKED:
    case ACME_E_NOT_FOUND:
        return EXIT_STORAGE;
    case ACME_E_NETWORK:
    case ACME_E_TLS:
    case ACME_E_TIMEOUT:
    case ACME_E_HTTP:
    case ACME_E_PROTOCOL:
    case ACME_E_TOO_LARGE:
    case ACME_E_INSECURE:
    case ACME_E_BAD_TOKEN:
        return EXIT_NETWORK;
    case ACME_E_CHALLENGE_FAILED:
    case ACME_E_NO_CHALLENGE:
    case ACME_E_DECLINED:
        return EXIT_CHALLENGE;
    case ACME_E_NO_ACCOUNT:
    case ACME_E_TOS_REQUIRED:
    case ACME_E_EAB_REQUIRED:
        return EXIT_ACCOUNT;
    case ACME_E_UNSUPPORTED:
        /* While issuing: no offered challenge type can be answered here. */
        return issuing ? EXIT_CHALLENGE : EXIT_CA_REFUSED;
    case ACME_E_KEY_MISMATCH:
        /* revoke --key with another certificate's key is the user's slip. */
        return revoking ? EXIT_USAGE : EXIT_CA_REFUSED;
    case ACME_E_CALLBACK:
        return issuing ? EXIT_CHALLENGE : EXIT_INTERNAL;
    case ACME_E_PROBLEM:
    case ACME_E_ORDER_FAILED:
        if (problem_is(p, "accountDoesNotExist") || problem_is(p, "externalAccountRequired") ||
            problem_is(p, "userActionRequired") || (problem_is(p, "unauthorized") && !revoking))
            return EXIT_ACCOUNT;
        return EXIT_CA_REFUSED;
    default: /* NOMEM, CRYPTO, STATE, PENDING */
        return EXIT_INTERNAL;
    }
}

/* ---- JSON ---- */

static json_t *problem_json(const acme_problem *p)
{
    json_t *o = json_pack("{s:s,s:s}", "type", acme_problem_type(p), "detail", acme_problem_detail(p));
    if (!o)
        return NULL;
    if (acme_problem_status(p))
        json_object_set_new(o, "status", json_integer(acme_problem_status(p)));
    const char *it = acme_problem_identifier_type(p), *iv = acme_problem_identifier_value(p);
    if (it && iv)
        json_object_set_new(o, "identifier", json_pack("{s:s,s:s}", "type", it, "value", iv));
    size_t n = acme_problem_subproblem_count(p);
    if (n) {
        json_t *subs = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(subs, problem_json(acme_problem_subproblem(p, i)));
        json_object_set_new(o, "subproblems", subs);
    }
    return o;
}

static json_t *cert_json(const result_cert *c)
{
    json_t *o = json_object();
    json_t *names = json_array();
    for (size_t i = 0; i < c->name_count; i++)
        json_array_append_new(names, json_string(c->names[i]));
    json_object_set_new(o, "id", json_string(c->id ? c->id : ""));
    json_object_set_new(o, "names", names);
    if (c->not_after) {
        char nb[32], na[32];
        format_time(c->not_before, nb, sizeof(nb));
        format_time(c->not_after, na, sizeof(na));
        json_object_set_new(o, "notBefore", json_string(nb));
        json_object_set_new(o, "notAfter", json_string(na));
    }
    if (c->issuer)
        json_object_set_new(o, "issuer", json_string(c->issuer));
    json_object_set_new(o, "renewed", json_boolean(c->renewed));
    if (c->chain_file || c->key_file)
        json_object_set_new(o, "files", json_pack("{s:s?,s:s?}", "chain", c->chain_file, "key", c->key_file));
    if (c->error)
        json_object_set_new(o, "error", json_pack("{s:s,s:i,s:s}", "code", exit_code_name(c->exit_code),
                                                  "exitStatus", c->exit_code, "message", c->error));
    return o;
}

static json_t *base_json(const result *r, int ok)
{
    json_t *o = json_pack("{s:b,s:s}", "ok", ok, "command", r->command ? r->command : "");
    if (r->cert_count || (r->command && (!strcmp(r->command, "issue") || !strcmp(r->command, "renew")))) {
        json_t *arr = json_array();
        for (size_t i = 0; i < r->cert_count; i++)
            json_array_append_new(arr, cert_json(&r->certs[i]));
        json_object_set_new(o, "certificates", arr);
    }
    if (r->account_url) {
        json_t *contacts = json_array();
        for (size_t i = 0; i < r->contact_count; i++)
            json_array_append_new(contacts, json_string(r->contacts[i]));
        json_object_set_new(o, "account", json_pack("{s:s,s:s?,s:o,s:s?}", "url", r->account_url,
                                                     "status", r->account_status, "contacts", contacts,
                                                     "thumbprint", r->thumbprint));
    }
    if (r->message)
        json_object_set_new(o, "message", json_string(r->message));
    return o;
}

static void print_json(json_t *o)
{
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text) {
        /* The encoder escapes every C0 control but passes DEL through; a
         * raw 0x7f can only sit inside a string, where \u007f means the
         * same. */
        for (char *d = strchr(text, 0x7f); d; d = strchr(d + 1, 0x7f)) {
            size_t at = (size_t)(d - text), len = strlen(text);
            char *g = realloc(text, len + 6);
            if (!g)
                break;
            text = g;
            memmove(text + at + 6, text + at + 1, len - at);
            memcpy(text + at, "\\u007f", 6);
            d = text + at + 5;
        }
        fputs(text, stdout);
        fputc('\n', stdout);
        free(text);
    }
    fflush(stdout);
    json_decref(o);
}

/* ---- people ---- */

void output_success(const acmectl_opts *o, const result *r)
{
    if (o->json) {
        print_json(base_json(r, 1));
        return;
    }
    if (o->verbosity < 0)
        return;
    for (size_t i = 0; i < r->cert_count; i++) {
        const result_cert *c = &r->certs[i];
        char na[32];
        format_time(c->not_after, na, sizeof(na));
        /* One line, built whole, so that print_line escapes all of it. */
        size_t len = 64 + strlen(na) + (c->id ? strlen(c->id) : 1) + (c->issuer ? strlen(c->issuer) : 0);
        for (size_t j = 0; j < c->name_count; j++)
            len += strlen(c->names[j]) + 1;
        char *names = calloc(1, len);
        for (size_t j = 0; names && j < c->name_count; j++) {
            if (j)
                strcat(names, " ");
            strcat(names, c->names[j]);
        }
        print_line(stdout, "%s: %s [%s], valid until %s%s%s%s", c->id ? c->id : "?",
                   c->error ? "FAILED" : c->renewed ? "issued" : "not due", names ? names : "?", na,
                   c->issuer && *c->issuer ? ", issuer \"" : "", c->issuer && *c->issuer ? c->issuer : "",
                   c->issuer && *c->issuer ? "\"" : "");
        free(names);
        if (c->chain_file) {
            print_line(stdout, "  chain: %s", c->chain_file);
            print_line(stdout, "  key:   %s", c->key_file ? c->key_file : "?");
        }
        if (c->error)
            print_line(stdout, "  error: %s", c->error);
    }
    if (r->account_url) {
        print_line(stdout, "account: %s", r->account_url);
        print_line(stdout, "status: %s", r->account_status ? r->account_status : "?");
        for (size_t i = 0; i < r->contact_count; i++)
            print_line(stdout, "contact: %s", r->contacts[i]);
        if (r->thumbprint)
            print_line(stdout, "key thumbprint: %s", r->thumbprint);
    }
    if (r->message)
        print_line(stdout, "%s", r->message);
    fflush(stdout);
}

static void print_problem(const acme_problem *p, const char *indent)
{
    int st = acme_problem_status(p);
    const char *it = acme_problem_identifier_type(p), *iv = acme_problem_identifier_value(p);
    char status[24] = "";
    if (st)
        bprintf(status, sizeof(status), " (HTTP %d)", st);
    if (it && iv)
        print_line(stderr, "acmectl: %sfor %s %s: %s%s: %s", indent, it, iv, acme_problem_type(p), status,
                   acme_problem_detail(p));
    else
        print_line(stderr, "acmectl: %sCA problem: %s%s: %s", indent, acme_problem_type(p), status,
                   acme_problem_detail(p));
    for (size_t i = 0; i < acme_problem_subproblem_count(p); i++)
        print_problem(acme_problem_subproblem(p, i), "  ");
}

/* libacme's sentences name its own API (agree_tos, eab_kid,
 * acme_cert_load()); a person at acmectl's command line needs acmectl's
 * options instead. Library log lines are matched by their advice (they
 * carry no code); the final error is recognized by its code in
 * account_sentence() below. */
static const struct { const char *lib, *tool; } wording[] = {
    {"read them and set agree_tos", "read them, then run again with --agree-tos"},
    {"pass eab_kid and eab_hmac_key", "give --eab-kid KID with --eab-hmac-key-file FILE (or set "
                                      "ACMECTL_EAB_HMAC_KEY)"},
    {"install it again with acme_cert_load()", "acmectl run retries the install; by hand: "
                                               "acmectl renew --force ID"},
    {"eab_hmac_key is not base64url", "the EAB HMAC key (--eab-hmac-key-file, ACMECTL_EAB_HMAC_KEY or "
                                      "--eab-hmac-key) is not base64url"},
    {"(acme_client_set_ca_file)", "(--ca-file, or ca-file in the configuration of run)"},
};

const char *acmectl_wording(const char *lib, char *buf, size_t len)
{
    if (!lib)
        return lib;
    for (size_t i = 0; i < sizeof(wording) / sizeof(wording[0]); i++) {
        const char *at = strstr(lib, wording[i].lib);
        if (at) {
            bprintf(buf, len, "%.*s%s%s", (int)(at - lib), lib, wording[i].tool, at + strlen(wording[i].lib));
            return buf;
        }
    }
    return lib;
}

/* acmectl's own sentence for an account failure the person fixes with
 * acmectl's options, or NULL. */
static const char *account_sentence(int rc, const acme_client *c, char *buf, size_t len)
{
    const acme_problem *p = c ? acme_client_problem(c) : NULL;
    if (rc == ACME_E_TOS_REQUIRED) {
        /* The directory is loaded by now: asking for the terms fetches nothing. */
        const char *terms = c ? acme_directory_terms((acme_client *)c) : NULL;
        bprintf(buf, len, "the CA's terms of service%s%s%s must be agreed to before an account is created: "
                "read them, then run again with --agree-tos", terms ? " (" : "", terms ? terms : "",
                terms ? ")" : "");
        return buf;
    }
    if (rc == ACME_E_EAB_REQUIRED || ((rc == ACME_E_PROBLEM || rc == ACME_E_ORDER_FAILED) &&
                                      problem_is(p, "externalAccountRequired"))) {
        bprintf(buf, len, "this CA requires external account binding for a new account: get a key id and an "
                "HMAC key from the CA, then give --eab-kid KID with --eab-hmac-key-file FILE (or set "
                "ACMECTL_EAB_HMAC_KEY)");
        return buf;
    }
    return NULL;
}

void output_error(const acmectl_opts *o, const result *r, int exit_code, int rc,
                  const acme_client *c, const char *extra)
{
    char own[800], reworded[1200];
    const char *lib = c ? acme_client_last_error(c) : "";
    const acme_problem *p = c ? acme_client_problem(c) : NULL;
    const char *sentence = account_sentence(rc, c, own, sizeof(own));
    if (sentence)
        lib = sentence;
    else if (rc == ACME_E_CALLBACK && extra && *extra)
        /* acmectl is the host: its own explanation of what its callback
         * did (the hook, --out) is the whole story. */
        lib = "";
    else
        lib = acmectl_wording(lib, reworded, sizeof(reworded));
    if (extra && *extra)
        print_line(stderr, "acmectl: error: %s", extra);
    if (lib && *lib && (!extra || strcmp(extra, lib) != 0))
        print_line(stderr, "acmectl: %s%s", extra && *extra ? "" : "error: ", lib);
    if ((!extra || !*extra) && (!lib || !*lib))
        print_line(stderr, "acmectl: error: %s", acme_strerror(rc));
    if (p)
        print_problem(p, "");
    print_line(stderr, "acmectl: exit status %d (%s)", exit_code, exit_code_name(exit_code));
    fflush(stderr);
    if (!o || !o->json || !r)
        return;
    json_t *root = base_json(r, 0);
    json_t *err = json_pack("{s:s,s:i,s:i,s:s}", "code", exit_code_name(exit_code), "exitStatus", exit_code,
                            "libacmeCode", rc, "libacmeError", acme_strerror(rc));
    char *msg = NULL;
    if (extra && *extra && lib && *lib && strcmp(extra, lib) != 0) {
        if (asprintf(&msg, "%s; %s", extra, lib) < 0)
            msg = NULL;
    }
    json_object_set_new(err, "message", json_string(msg ? msg : extra && *extra ? extra : lib && *lib ? lib
                                                                                              : acme_strerror(rc)));
    free(msg);
    if (p)
        json_object_set_new(err, "problem", problem_json(p));
    json_object_set_new(root, "error", err);
    print_json(root);
}
