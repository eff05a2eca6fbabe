/* The configuration file of `acmectl run` (acmectl(1), doc/acmectl-run.md):
 *
 *   [global]                 acmectl's own settings, once
 *   [module LABEL]           path = the .so; every other key goes to the module
 *   [certificate LABEL]      names = ..., and how to order them
 *
 * "key = value" lines; a line starting with '#' or ';' and anything after
 * whitespace + '#' is a comment. Every error names the file, the line and
 * the key. What a module accepts is for the module to say (at load). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "acmectl.h"

typedef enum { SEC_NONE, SEC_GLOBAL, SEC_MODULE, SEC_CERT, SEC_CA } sec_kind;

typedef struct parser {
    run_config *cf;
    const char *file;
    int line;
    sec_kind sec;
    int global_line;               /* where [global] was, 0 if not yet */
    run_kv seen[64];               /* keys of this [global]/[certificate] (values unused) */
    size_t seen_count;
    char *err;
    size_t errlen;
} parser;

static int fail(parser *p, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parser *p, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (key)
        bprintf(p->err, p->errlen, "%s:%d: %s: %s", p->file, p->line, key, msg);
    else
        bprintf(p->err, p->errlen, "%s:%d: %s", p->file, p->line, msg);
    /* The message quotes the file: a CR or ESC in it must not reach a
     * terminal or a log line as is (found by fuzz_runconf). */
    for (char *c = p->err; p->errlen && *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
            *c = '?';
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* ---- values ---------------------------------------------------------------- */

/* Zero then free: for values that may be secrets. */
static void wipe_str(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static int set_str(parser *p, const char *key, char **dst, const char *v)
{
    wipe_str(*dst);
    if (!(*dst = strdup(v)))
        return fail(p, key, "out of memory");
    return 0;
}

static int get_bool(parser *p, const char *key, const char *v, int *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") || !strcmp(v, "1"))
        *out = 1;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") || !strcmp(v, "0"))
        *out = 0;
    else
        return fail(p, key, "\"%s\" is not yes or no", v);
    return 0;
}

static int get_uint(parser *p, const char *key, const char *v, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || *end || end == v || *v == '-' || n < lo || n > hi)
        return fail(p, key, "\"%s\": give a number from %u to %u", v, lo, hi);
    *out = (unsigned)n;
    return 0;
}

/* Words separated by spaces or commas, into a NULL-free vector. */
static int split_words(parser *p, const char *key, const char *v, char ***out, size_t *n)
{
    char *copy = strdup(v), *save = NULL;
    if (!copy)
        return fail(p, key, "out of memory");
    for (char *t = strtok_r(copy, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
        char **nv = realloc(*out, (*n + 1) * sizeof(char *));
        if (!nv || !(nv[*n] = strdup(t))) {
            if (nv)
                *out = nv;
            free(copy);
            return fail(p, key, "out of memory");
        }
        *out = nv;
        (*n)++;
    }
    free(copy);
    return 0;
}

static void free_words(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int get_challenges(parser *p, const char *key, const char *v, acme_challenge_type *out, size_t *n)
{
    char **w = NULL;
    size_t wn = 0;
    if (split_words(p, key, v, &w, &wn))
        return -1;
    int rc = 0;
    *n = 0;
    for (size_t i = 0; i < wn && !rc; i++) {
        acme_challenge_type t = !strcmp(w[i], "http-01") ? ACME_CHALLENGE_HTTP_01
                                : !strcmp(w[i], "tls-alpn-01") ? ACME_CHALLENGE_TLS_ALPN_01
                                : !strcmp(w[i], "dns-01") ? ACME_CHALLENGE_DNS_01
                                : !strcmp(w[i], "dns-persist-01") ? ACME_CHALLENGE_DNS_PERSIST_01
                                : !strcmp(w[i], "dns-account-01") ? ACME_CHALLENGE_DNS_ACCOUNT_01
                                : ACME_CHALLENGE_NONE;
        if (t == ACME_CHALLENGE_NONE)
            rc = fail(p, key, "unknown challenge type \"%s\" (http-01, tls-alpn-01, dns-01, dns-persist-01, "
                      "dns-account-01)", w[i]);
        for (size_t j = 0; j < *n && !rc; j++)
            if (out[j] == t)
                rc = fail(p, key, "%s is listed twice", w[i]);
        if (!rc)
            out[(*n)++] = t;
    }
    if (!rc && *n == 0)
        rc = fail(p, key, "empty list");
    free_words(w, wn);
    return rc;
}

static int get_key_type(parser *p, const char *key, const char *v, int account, acme_key_type *out)
{
    if (acme_key_type_from_name(v, out) != ACME_OK || (!account && *out == ACME_KEY_ED25519))
        return fail(p, key, "\"%s\": give ec-256, ec-384, rsa-2048, rsa-3072, rsa-4096%s", v,
                    account ? " or ed25519" : "");
    return 0;
}

static int get_file(parser *p, const char *key, char **dst, const char *v, int mode)
{
    if (access(v, mode) != 0)
        return fail(p, key, "%s: %s", v, strerror(errno));
    return set_str(p, key, dst, v);
}

/* Certificate ids: what libacme accepts as a storage id. */
static int id_ok(const char *s)
{
    if (!*s || *s == '.' || strlen(s) > 200)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return 0;
    return 1;
}

/* ---- sections -------------------------------------------------------------- */

/* A key given twice in one [global] or [certificate]. */
static int once(parser *p, const char *key)
{
    for (size_t i = 0; i < p->seen_count; i++)
        if (!strcmp(p->seen[i].key, key))
            return fail(p, key, "given twice in this section (first on line %d)", p->seen[i].line);
    if (p->seen_count < sizeof(p->seen) / sizeof(p->seen[0])) {
        p->seen[p->seen_count].key = strdup(key);
        p->seen[p->seen_count].line = p->line;
        if (p->seen[p->seen_count].key)
            p->seen_count++;
    }
    return 0;
}

static void forget_seen(parser *p)
{
    for (size_t i = 0; i < p->seen_count; i++)
        free(p->seen[i].key);
    p->seen_count = 0;
}

/* storage = file | etcd, and the etcd-* settings (doc/cluster.md). */
static int storage_key(parser *p, const char *k, const char *v)
{
    run_etcd *e = &p->cf->etcd;
    if (!strcmp(k, "storage")) {
        if (!strcmp(v, "file") || !strcmp(v, "etcd")) {
            e->on = !strcmp(v, "etcd");
            return 0;
        }
        return fail(p, k, "\"%s\": give file (state-dir, the default) or etcd", v);
    }
    if (!strcmp(k, "etcd-endpoints")) {
        if (split_words(p, k, v, &e->endpoints, &e->endpoint_count))
            return -1;
        for (size_t i = 0; i < e->endpoint_count; i++)
            if (strncmp(e->endpoints[i], "http://", 7) && strncmp(e->endpoints[i], "https://", 8))
                return fail(p, k, "\"%s\": give etcd client URLs such as http://10.0.0.1:2379", e->endpoints[i]);
        return e->endpoint_count ? 0 : fail(p, k, "no endpoints");
    }
    if (!strcmp(k, "etcd-prefix")) {
        if (!*v || v[strlen(v) - 1] != '/')
            return fail(p, k, "\"%s\": the prefix ends in '/' (e.g. /libacme/)", v);
        return set_str(p, k, &e->prefix, v);
    }
    if (!strcmp(k, "etcd-ca-file"))
        return get_file(p, k, &e->ca_file, v, R_OK);
    if (!strcmp(k, "etcd-username"))
        return set_str(p, k, &e->username, v);
    if (!strcmp(k, "etcd-password-file")) {
        /* Kept out of the configuration file itself, read once here. */
        FILE *f = fopen(v, "re");
        char line[512];
        if (!f)
            return fail(p, k, "%s: %s", v, strerror(errno));
        int ok = fgets(line, sizeof(line), f) != NULL;
        fclose(f);
        if (!ok)
            return fail(p, k, "%s is empty", v);
        line[strcspn(line, "\r\n")] = '\0';
        int rc = set_str(p, k, &e->password, line);
        explicit_bzero(line, sizeof(line));
        return rc;
    }
    if (!strcmp(k, "etcd-lock-ttl"))
        return get_uint(p, k, v, 3, 3600, &e->lock_ttl);
    if (!strcmp(k, "etcd-node-name"))
        return set_str(p, k, &e->node_name, v);
    if (!strcmp(k, "cluster-poll"))
        return get_uint(p, k, v, 1, 86400, &e->poll);
    return 1;
}

static int global_key(parser *p, const char *k, const char *v)
{
    run_config *cf = p->cf;
    if (strcmp(k, "contact") && once(p, k))
        return -1;
    if (!strcmp(k, "directory")) {
        if (strncasecmp(v, "https://", 8) != 0)
            return fail(p, k, "\"%s\": the ACME directory must be an https:// URL", v);
        return set_str(p, k, &cf->directory, v);
    }
    if (!strcmp(k, "ca-file"))
        return get_file(p, k, &cf->ca_file, v, R_OK);
    if (!strcmp(k, "state-dir"))
        return set_str(p, k, &cf->state_dir, v);
    if (!strcmp(k, "out-dir"))
        return set_str(p, k, &cf->out_dir, v);
    if (!strcmp(k, "status-file"))
        return set_str(p, k, &cf->status_file, v);
    if (!strcmp(k, "metrics-listen")) {
        char why[300];
        if (run_metrics_check_listen(v, why, sizeof(why)) != 0)
            return fail(p, k, "%s", why);
        return set_str(p, k, &cf->metrics_listen, v);
    }
    if (!strcmp(k, "metrics-file"))
        return set_str(p, k, &cf->metrics_file, v);
    if (!strcmp(k, "contact")) {
        size_t before = cf->contact_count;
        if (split_words(p, k, v, &cf->contacts, &cf->contact_count))
            return -1;
        for (size_t i = before; i < cf->contact_count; i++)
            if (!strchr(cf->contacts[i], ':'))
                return fail(p, k, "\"%s\": give a URI such as mailto:admin@example.org", cf->contacts[i]);
        return 0;
    }
    if (!strcmp(k, "agree-tos"))
        return get_bool(p, k, v, &cf->agree_tos);
    if (!strcmp(k, "eab-kid"))
        return set_str(p, k, &cf->eab_kid, v);
    if (!strcmp(k, "eab-hmac-key"))
        return set_str(p, k, &cf->eab_hmac, v);
    if (!strcmp(k, "key-type"))
        return get_key_type(p, k, v, 0, &cf->key_type);
    if (!strcmp(k, "account-key-type"))
        return get_key_type(p, k, v, 1, &cf->account_key_type);
    if (!strcmp(k, "challenge"))
        return get_challenges(p, k, v, cf->challenges, &cf->challenge_count);
    if (!strcmp(k, "http-port"))
        return get_uint(p, k, v, 1, 65535, &cf->http_port);
    if (!strcmp(k, "tls-port"))
        return get_uint(p, k, v, 1, 65535, &cf->tls_port);
    if (!strcmp(k, "bind")) {
        unsigned char buf[16];
        if (inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1)
            return fail(p, k, "\"%s\": give a numeric IPv4 or IPv6 address", v);
        return set_str(p, k, &cf->bind, v);
    }
    if (!strcmp(k, "log-level")) {
        static const char *const levels[] = {"error", "warning", "info", "debug"};
        for (int i = 0; i < 4; i++)
            if (!strcasecmp(v, levels[i])) {
                cf->verbosity = i - 2;
                cf->verbosity_set = 1;
                return 0;
            }
        return fail(p, k, "\"%s\": give error, warning, info or debug", v);
    }
    if (!strcmp(k, "max-age"))
        return get_uint(p, k, v, 0, 1000u * 86400u, &cf->max_age);
    if (!strcmp(k, "retry-min"))
        return get_uint(p, k, v, 1, 86400, &cf->retry_min);
    if (!strcmp(k, "retry-max"))
        return get_uint(p, k, v, 1, 30u * 86400u, &cf->retry_max);
    if (!strcmp(k, "max-orders"))
        return get_uint(p, k, v, 1, 1024, &cf->max_orders);
    if (!strcmp(k, "profile"))
        return set_str(p, k, &cf->profile, v);
    if (!strcmp(k, "preferred-chain"))
        return set_str(p, k, &cf->preferred_chain, v);
    int src = storage_key(p, k, v);
    if (src <= 0)
        return src;
    return fail(p, k, "unknown key in [global] (see acmectl(1), CONFIGURATION FILE)");
}

static int cert_key(parser *p, const char *k, const char *v)
{
    run_cert *c = &p->cf->certs[p->cf->cert_count - 1];
    if (once(p, k))
        return -1;
    if (!strcmp(k, "names")) {
        if (split_words(p, k, v, &c->names, &c->name_count))
            return -1;
        char why[300];
        for (size_t i = 0; i < c->name_count; i++) {
            if (name_check(c->names[i], why, sizeof(why)) != 0)
                return fail(p, k, "%s", why);
            for (size_t j = 0; j < i; j++)
                if (!strcasecmp(c->names[i], c->names[j]))
                    return fail(p, k, "%s is given twice", c->names[i]);
            c->wildcard |= !strncmp(c->names[i], "*.", 2);
        }
        return c->name_count ? 0 : fail(p, k, "no names");
    }
    if (!strcmp(k, "id")) {
        if (!id_ok(v))
            return fail(p, k, "\"%s\": an id is letters, digits, '.', '_' and '-', not starting with '.'", v);
        return set_str(p, k, &c->id, v);
    }
    if (!strcmp(k, "key-type")) {
        c->key_type_set = 1;
        return get_key_type(p, k, v, 0, &c->key_type);
    }
    if (!strcmp(k, "challenge"))
        return get_challenges(p, k, v, c->challenges, &c->challenge_count);
    if (!strcmp(k, "profile"))
        return set_str(p, k, &c->profile, v);
    if (!strcmp(k, "preferred-chain"))
        return set_str(p, k, &c->preferred_chain, v);
    return fail(p, k, "unknown key in [certificate] (names, id, key-type, challenge, profile, preferred-chain)");
}

static int ca_key(parser *p, const char *k, const char *v)
{
    run_ca *c = &p->cf->cas[p->cf->ca_count - 1];
    if (once(p, k))
        return -1;
    if (!strcmp(k, "directory")) {
        if (strncasecmp(v, "https://", 8) != 0)
            return fail(p, k, "\"%s\": the ACME directory must be an https:// URL", v);
        return set_str(p, k, &c->directory, v);
    }
    if (!strcmp(k, "ca-file"))
        return get_file(p, k, &c->ca_file, v, R_OK);
    if (!strcmp(k, "eab-kid"))
        return set_str(p, k, &c->eab_kid, v);
    if (!strcmp(k, "eab-hmac-key"))
        return set_str(p, k, &c->eab_hmac, v);
    return fail(p, k, "unknown key in [ca] (directory, ca-file, eab-kid, eab-hmac-key)");
}

static int module_key(parser *p, const char *k, const char *v)
{
    run_module *m = &p->cf->modules[p->cf->module_count - 1];
    if (!strcmp(k, "path")) {
        if (m->path)
            return fail(p, k, "given twice in this section");
        /* Resolved once, here: what is checked is what libacme loads, not
         * whatever dlopen() would find for the name (doc/modules.md). */
        if (!strchr(v, '/'))
            return fail(p, k, "\"%s\": give the module's path (an absolute path, or ./%s): a bare name "
                        "would be searched for in the dynamic linker's path", v, v);
        char *real = realpath(v, NULL);
        if (!real || access(real, R_OK) != 0) {
            int e = errno;
            free(real);
            return fail(p, k, "%s: %s", v, strerror(e));
        }
        free(m->path);
        m->path = real;
        return 0;
    }
    for (size_t i = 0; i < m->kv_count; i++)
        if (!strcmp(m->kv[i].key, k))
            return fail(p, k, "given twice in this section (first on line %d)", m->kv[i].line);
    run_kv *n = realloc(m->kv, (m->kv_count + 1) * sizeof(*n));
    if (!n)
        return fail(p, k, "out of memory");
    m->kv = n;
    n[m->kv_count] = (run_kv){strdup(k), strdup(v), p->line};
    if (!n[m->kv_count].key || !n[m->kv_count].value) {
        free(n[m->kv_count].key);
        wipe_str(n[m->kv_count].value);
        return fail(p, k, "out of memory");
    }
    m->kv_count++;
    return 0;
}

/* The end of a section: what it must have. p->line is the line after it. */
static int close_section(parser *p)
{
    run_config *cf = p->cf;
    int line = p->line;
    if (p->sec == SEC_MODULE) {
        run_module *m = &cf->modules[cf->module_count - 1];
        p->line = m->line;
        if (!m->path)
            return fail(p, NULL, "[module %s] has no path (the module's .so file)", m->label);
    } else if (p->sec == SEC_CA) {
        run_ca *c = &cf->cas[cf->ca_count - 1];
        p->line = c->line;
        if (!c->directory)
            return fail(p, NULL, "[ca %s] has no directory (the CA's ACME directory URL)", c->label);
        if (!c->eab_kid != !c->eab_hmac)
            return fail(p, NULL, "[ca %s]: eab-kid and eab-hmac-key go together", c->label);
    } else if (p->sec == SEC_CERT) {
        run_cert *c = &cf->certs[cf->cert_count - 1];
        p->line = c->line;
        if (!c->name_count)
            return fail(p, NULL, "[certificate%s%s] has no names", c->label ? " " : "", c->label ? c->label : "");
    }
    p->line = line;
    forget_seen(p);
    return 0;
}

static int open_section(parser *p, char *head)
{
    if (close_section(p))
        return -1;
    char *end = strchr(head, ']');
    if (!end || *trim(end + 1))
        return fail(p, NULL, "a section header is [global], [module LABEL] or [certificate LABEL]");
    *end = '\0';
    char *kind = trim(head + 1), *label = kind + strcspn(kind, " \t");
    if (*label)
        *label++ = '\0';
    label = trim(label);
    run_config *cf = p->cf;
    if (!strcmp(kind, "global")) {
        if (*label)
            return fail(p, NULL, "[global] takes no label");
        if (p->global_line)
            return fail(p, NULL, "[global] given twice (first on line %d)", p->global_line);
        p->global_line = p->line;
        p->sec = SEC_GLOBAL;
        return 0;
    }
    if (!strcmp(kind, "module")) {
        if (!*label || strpbrk(label, " \t"))
            return fail(p, NULL, "give a module a one-word label: [module haproxy]");
        for (size_t i = 0; i < cf->module_count; i++)
            if (!strcmp(cf->modules[i].label, label))
                return fail(p, NULL, "[module %s] given twice (first on line %d)", label, cf->modules[i].line);
        run_module *n = realloc(cf->modules, (cf->module_count + 1) * sizeof(*n));
        if (!n)
            return fail(p, NULL, "out of memory");
        cf->modules = n;
        memset(&n[cf->module_count], 0, sizeof(*n));
        n[cf->module_count].line = p->line;
        if (!(n[cf->module_count].label = strdup(label)))
            return fail(p, NULL, "out of memory");
        cf->module_count++;
        p->sec = SEC_MODULE;
        return 0;
    }
    if (!strcmp(kind, "ca")) {
        /* The label names the CA in the status: the same rule as an id. */
        if (!*label || strpbrk(label, " \t") || !id_ok(label) || strlen(label) > 64)
            return fail(p, NULL, "give a CA a one-word label of letters, digits, '.', '_', '-': [ca backup]");
        for (size_t i = 0; i < cf->ca_count; i++)
            if (!strcmp(cf->cas[i].label, label))
                return fail(p, NULL, "[ca %s] given twice (first on line %d)", label, cf->cas[i].line);
        run_ca *n = realloc(cf->cas, (cf->ca_count + 1) * sizeof(*n));
        if (!n)
            return fail(p, NULL, "out of memory");
        cf->cas = n;
        memset(&n[cf->ca_count], 0, sizeof(*n));
        n[cf->ca_count].line = p->line;
        if (!(n[cf->ca_count].label = strdup(label)))
            return fail(p, NULL, "out of memory");
        cf->ca_count++;
        p->sec = SEC_CA;
        return 0;
    }
    if (!strcmp(kind, "certificate")) {
        if (strpbrk(label, " \t"))
            return fail(p, NULL, "a certificate's label is one word: [certificate www]");
        if (*label && !id_ok(label))
            return fail(p, NULL, "[certificate %s]: the label is the default id: letters, digits, '.', '_', '-'",
                        label);
        run_cert *n = realloc(cf->certs, (cf->cert_count + 1) * sizeof(*n));
        if (!n)
            return fail(p, NULL, "out of memory");
        cf->certs = n;
        memset(&n[cf->cert_count], 0, sizeof(*n));
        n[cf->cert_count].line = p->line;
        if (*label && !(n[cf->cert_count].label = strdup(label)))
            return fail(p, NULL, "out of memory");
        cf->cert_count++;
        p->sec = SEC_CERT;
        return 0;
    }
    return fail(p, NULL, "unknown section [%s] (global, module, certificate, ca)", kind);
}

/* The whole file. */
static int parse_text(parser *p, char *text)
{
    p->line = 0;
    for (char *ln = text, *next; ln; ln = next) {
        next = strchr(ln, '\n');
        if (next)
            *next++ = '\0';
        p->line++;
        /* Comments: a whole line, or from whitespace + '#' on. */
        for (char *h = strchr(ln, '#'); h; h = strchr(h + 1, '#'))
            if (h == ln || h[-1] == ' ' || h[-1] == '\t') {
                *h = '\0';
                break;
            }
        char *s = trim(ln);
        if (!*s || *s == ';')
            continue;
        if (*s == '[') {
            if (open_section(p, s))
                return -1;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq)
            return fail(p, NULL, "\"%s\" is not key = value", s);
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        if (!*k || strpbrk(k, " \t"))
            return fail(p, NULL, "\"%s\": a key is one word", k);
        if (!*v && p->sec != SEC_MODULE)
            return fail(p, k, "no value");
        int rc;
        switch (p->sec) {
        case SEC_GLOBAL: rc = global_key(p, k, v); break;
        case SEC_MODULE: rc = module_key(p, k, v); break;
        case SEC_CERT: rc = cert_key(p, k, v); break;
        case SEC_CA: rc = ca_key(p, k, v); break;
        default: rc = fail(p, k, "outside a section: start with [global]"); break;
        }
        if (rc)
            return -1;
    }
    p->line++;
    return close_section(p);
}

/* What needs all sections. */
static int check_whole(parser *p)
{
    run_config *cf = p->cf;
    p->line = p->global_line ? p->global_line : 1;
    if (!cf->directory && !cf->ca_count)
        return fail(p, "directory", "missing: the CA's ACME directory URL goes in [global] (or [ca NAME] sections)");
    for (size_t i = 0; i < cf->ca_count; i++)
        if ((cf->directory && !strcmp(cf->directory, cf->cas[i].directory)) ||
            (i && !strcmp(cf->cas[i - 1].directory, cf->cas[i].directory))) {
            p->line = cf->cas[i].line;
            return fail(p, NULL, "[ca %s] repeats a directory already listed: list each CA once", cf->cas[i].label);
        }
    if (!cf->eab_kid != !cf->eab_hmac)
        return fail(p, cf->eab_kid ? "eab-hmac-key" : "eab-kid", "eab-kid and eab-hmac-key go together");
    if (cf->retry_min && cf->retry_max && cf->retry_min > cf->retry_max)
        return fail(p, "retry-min", "larger than retry-max");
    if (cf->etcd.on && !cf->etcd.endpoint_count)
        return fail(p, "storage", "storage = etcd needs etcd-endpoints (the cluster's client URLs)");
    if (!cf->etcd.on && (cf->etcd.endpoint_count || cf->etcd.prefix || cf->etcd.username))
        return fail(p, "etcd-endpoints", "etcd settings without storage = etcd");
    if (cf->etcd.password && !cf->etcd.username)
        return fail(p, "etcd-password-file", "a password without etcd-username");
    if (cf->cert_count == 0)
        return fail(p, NULL, "no [certificate] section: nothing to do");
    for (size_t i = 0; i < cf->cert_count; i++) {
        run_cert *c = &cf->certs[i];
        if (!c->id && c->label && !(c->id = strdup(c->label)))
            return fail(p, NULL, "out of memory");
        for (size_t j = 0; j < i; j++) {
            const char *a = c->id ? c->id : c->names[0], *b = cf->certs[j].id ? cf->certs[j].id : cf->certs[j].names[0];
            if (!strcasecmp(a, b)) {
                p->line = c->line;
                return fail(p, "id", "\"%s\" is also the id of the certificate on line %d; give one of them "
                            "another id", a, cf->certs[j].line);
            }
        }
    }
    if (cf->http_port && cf->tls_port && cf->http_port == cf->tls_port)
        return fail(p, "tls-port", "the same port as http-port");
    return 0;
}

int runconf_load(const char *path, run_config **out, char *err, size_t errlen)
{
    *out = NULL;
    size_t len = 0;
    char *text = file_read_all(path, &len);
    if (!text) {
        bprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (strlen(text) != len) {
        bprintf(err, errlen, "%s: not a text file (it holds a NUL byte)", path);
        explicit_bzero(text, len);
        free(text);
        return -1;
    }
    run_config *cf = calloc(1, sizeof(*cf));
    if (!cf || !(cf->file = strdup(path))) {
        free(cf);
        explicit_bzero(text, len);
        free(text);
        bprintf(err, errlen, "out of memory");
        return -1;
    }
    parser p = {.cf = cf, .file = path, .err = err, .errlen = errlen};
    int rc = parse_text(&p, text);
    forget_seen(&p);
    if (!rc)
        rc = check_whole(&p);
    /* The file may hold secrets (eab-hmac-key, a module's TSIG secret or
     * password); the parser cut it into pieces, so wipe by length. */
    explicit_bzero(text, len);
    free(text);
    if (rc) {
        runconf_free(cf);
        return -1;
    }
    *out = cf;
    return 0;
}

void runconf_free(run_config *cf)
{
    if (!cf)
        return;
    free(cf->file);
    free(cf->directory);
    free(cf->ca_file);
    free(cf->state_dir);
    free(cf->out_dir);
    free(cf->status_file);
    free(cf->metrics_listen);
    free(cf->metrics_file);
    free(cf->bind);
    free_words(cf->contacts, cf->contact_count);
    free(cf->eab_kid);
    wipe_str(cf->eab_hmac);
    free(cf->profile);
    free(cf->preferred_chain);
    for (size_t i = 0; i < cf->module_count; i++) {
        run_module *m = &cf->modules[i];
        free(m->label);
        free(m->path);
        for (size_t j = 0; j < m->kv_count; j++) {
            free(m->kv[j].key);
            wipe_str(m->kv[j].value); /* a TSIG secret, a password */
        }
        free(m->kv);
    }
    free(cf->modules);
    for (size_t i = 0; i < cf->cert_count; i++) {
        run_cert *c = &cf->certs[i];
        free(c->label);
        free(c->id);
        free_words(c->names, c->name_count);
        free(c->profile);
        free(c->preferred_chain);
    }
    free(cf->certs);
    free_words(cf->etcd.endpoints, cf->etcd.endpoint_count);
    free(cf->etcd.prefix);
    free(cf->etcd.ca_file);
    free(cf->etcd.username);
    wipe_str(cf->etcd.password);
    free(cf->etcd.node_name);
    for (size_t i = 0; i < cf->ca_count; i++) {
        run_ca *c = &cf->cas[i];
        free(c->label);
        free(c->directory);
        free(c->ca_file);
        free(c->eab_kid);
        wipe_str(c->eab_hmac);
    }
    free(cf->cas);
    free(cf);
}

char *runconf_module_text(const run_module *m)
{
    size_t len = 1;
    for (size_t i = 0; i < m->kv_count; i++)
        len += strlen(m->kv[i].key) + strlen(m->kv[i].value) + 2;
    char *out = malloc(len), *o = out;
    for (size_t i = 0; out && i < m->kv_count; i++)
        o += sprintf(o, "%s=%s\n", m->kv[i].key, m->kv[i].value);
    if (out)
        *o = '\0';
    return out;
}

int runconf_module_line(const run_module *m, const char *message)
{
    /* Modules name the key at fault ("map=...: ...", "socket: ..."). */
    for (size_t i = 0; i < m->kv_count; i++) {
        size_t kl = strlen(m->kv[i].key);
        for (const char *s = strstr(message, m->kv[i].key); s; s = strstr(s + 1, m->kv[i].key)) {
            int start = s == message || !(isalnum((unsigned char)s[-1]) || s[-1] == '-' || s[-1] == '_' ||
                                          s[-1] == '.');
            char after = s[kl];
            if (start && (after == '=' || after == ':' || after == ' ' || after == '\0'))
                return m->kv[i].line;
        }
    }
    return m->line;
}
