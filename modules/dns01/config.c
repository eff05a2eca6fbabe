/* The module's configuration: key=value pairs into struct dns01. Every
 * key is documented in doc/dns01.md. An unknown key, a repeated key or a
 * key of another back end is refused, so a typo never goes unnoticed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dns01.h"
#include "modcfg.h"

enum scope { ANY_BACKEND = -1 };

typedef struct key_def {
    const char *key;
    int scope;          /* a dns01_backend_kind, or ANY_BACKEND */
} key_def;

static const key_def keys_known[] = {
    {"backend", ANY_BACKEND},
    {"resolver", ANY_BACKEND},
    {"nameservers", ANY_BACKEND},
    {"nameserver-port", ANY_BACKEND},
    {"zone", ANY_BACKEND},
    {"propagation-timeout", ANY_BACKEND},
    {"propagation-interval", ANY_BACKEND},
    {"dns-timeout", ANY_BACKEND},
    {"server", DNS01_RFC2136},
    {"tsig-key-name", DNS01_RFC2136},
    {"tsig-algorithm", DNS01_RFC2136},
    {"tsig-secret", DNS01_RFC2136},
    {"tsig-secret-file", DNS01_RFC2136},
    {"ttl", DNS01_RFC2136},
    {"api-url", DNS01_ACMEDNS},
    {"ca-file", DNS01_ACMEDNS},
    {"http-timeout", DNS01_ACMEDNS},
    {"command", DNS01_HOOK},
    {"hook-timeout", DNS01_HOOK},
};

static const char *const backend_names[] = {"rfc2136", "acme-dns", "hook"};




static int get_server(modcfg *c, const char *key, const char *v, unsigned port, dns_server *out)
{
    const char *why = NULL;
    if (dns_server_parse(v, port, out, &why) != 0)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "%s=%s: not host[:port] (%s)", key, v, why);
    return ACME_OK;
}

/* The first "nameserver" of /etc/resolv.conf. */
static int system_resolver(modcfg *c, dns_server *out)
{
    FILE *f = fopen("/etc/resolv.conf", "r");
    char line[512];
    int rc = -1;
    while (f && rc != 0 && fgets(line, sizeof(line), f)) {
        char addr[300];
        if (sscanf(line, " nameserver %299s", addr) == 1) {
            char *pct = strchr(addr, '%'); /* fe80::1%eth0: no scope support */
            if (pct)
                continue;
            rc = dns_server_parse(addr, 53, out, NULL);
        }
    }
    if (f)
        fclose(f);
    if (rc != 0)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "resolver: not set and /etc/resolv.conf names no usable "
                   "nameserver; set resolver=host[:port]");
    return ACME_OK;
}

/* Secret from a file: the base64 text alone, or a BIND/Knot key file
 * (the value after "secret"). */
static int read_secret_file(dns01 *d, modcfg *c, const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "tsig-secret-file=%s: cannot open it: %s", path,
                   strerror(errno));
    /* Whoever reads the file can sign updates to the zone. Not refused
     * (a group of admins may share it on purpose), but said. */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
        dns01_log(d, ACME_LOG_WARNING, "tsig-secret-file=%s can be read by group or others (mode %04o): "
                  "anyone who reads it can change the zone; chmod 600 %s", path,
                  (unsigned)(st.st_mode & 07777), path);
    char buf[4097];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    int toolong = !feof(f);
    fclose(f);
    buf[n] = '\0';
    int rc = ACME_OK;
    if (toolong) {
        rc = modcfg_bad(c, ACME_E_INVALID_ARG, "tsig-secret-file=%s: larger than 4 KiB", path);
        goto out;
    }
    /* The keyword "secret" at a word start, followed by ':' (Knot) or a
     * quote (BIND); not, say, part of a key named "mysecret". */
    const char *s = buf, *kw = NULL;
    for (const char *p = strstr(buf, "secret"); p; p = strstr(p + 1, "secret")) {
        const char *q = p + 6;
        while (*q == ' ' || *q == '\t')
            q++;
        if ((p == buf || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n') && (*q == ':' || *q == '"')) {
            kw = p;
            s = q + 1;
            while (*s == ' ' || *s == '\t' || *s == '"')
                s++;
            break;
        }
    }
    size_t len = strcspn(s, kw ? "\";\r\n" : "");
    char *v = strndup(s, len);
    if (!v) {
        rc = modcfg_bad(c, ACME_E_NOMEM, "out of memory");
        goto out;
    }
    *out = v;
out:
    {
        volatile char *vb = buf;
        for (size_t i = 0; i < sizeof(buf); i++)
            vb[i] = 0;
    }
    return rc;
}

static int configure_tsig(dns01 *d, modcfg *c)
{
    const char *name = modcfg_get(c, "tsig-key-name");
    const char *alg_text = modcfg_get(c, "tsig-algorithm");
    const char *secret = modcfg_get(c, "tsig-secret");
    const char *file = modcfg_get(c, "tsig-secret-file");
    if (secret && file)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "tsig-secret and tsig-secret-file: give one, not both");
    if (!name && !secret && !file) {
        if (alg_text)
            return modcfg_bad(c, ACME_E_INVALID_ARG, "tsig-algorithm without tsig-key-name");
        return ACME_OK;
    }
    if (!name)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "tsig-key-name: required with a TSIG secret");
    if (!secret && !file)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "tsig-secret or tsig-secret-file: required with "
                   "tsig-key-name");
    tsig_alg alg = TSIG_HMAC_SHA256;
    if (alg_text && tsig_alg_parse(alg_text, &alg) != 0)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "tsig-algorithm=%s: want hmac-sha256 or hmac-sha512",
                   alg_text);
    char *from_file = NULL;
    if (file) {
        int rc = read_secret_file(d, c, file, &from_file);
        if (rc)
            return rc;
    }
    const char *why = NULL;
    int rc = tsig_key_set(&d->tsig, name, alg, file ? from_file : secret, &why);
    if (from_file) {
        volatile char *v = from_file;
        while (*v)
            *v++ = 0;
        free(from_file);
    }
    if (rc != 0)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "%s: %s", why && strstr(why, "key name") ? "tsig-key-name"
                   : file ? "tsig-secret-file" : "tsig-secret", why ? why : "unusable");
    d->have_tsig = 1;
    return ACME_OK;
}

static int configure_nameservers(dns01 *d, modcfg *c)
{
    const char *list = modcfg_get(c, "nameservers");
    if (!list)
        return ACME_OK;
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return modcfg_bad(c, ACME_E_NOMEM, "out of memory");
    int rc = ACME_OK;
    for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        if (d->nameserver_count == DNS01_MAX_NS) {
            rc = modcfg_bad(c, ACME_E_INVALID_ARG, "nameservers: more than %d", DNS01_MAX_NS);
            break;
        }
        if ((rc = get_server(c, "nameservers", tok, d->nameserver_port,
                             &d->nameservers[d->nameserver_count])))
            break;
        d->nameserver_count++;
    }
    free(copy);
    if (rc == ACME_OK && d->nameserver_count == 0)
        rc = modcfg_bad(c, ACME_E_INVALID_ARG, "nameservers: empty list");
    return rc;
}

int dns01_configure(dns01 *d, const char *const *keys, const char *const *values, size_t n,
                    char *err, size_t errlen)
{
    modcfg c = {keys, values, n, err, errlen};
    const char *backend = modcfg_get(&c, "backend");
    if (!backend)
        return modcfg_bad(&c, ACME_E_INVALID_ARG, "backend: required (rfc2136, acme-dns or hook)");
    int kind = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(backend, backend_names[i]))
            kind = i;
    if (kind < 0)
        return modcfg_bad(&c, ACME_E_INVALID_ARG, "backend=%s: want rfc2136, acme-dns or hook", backend);
    d->kind = (dns01_backend_kind)kind;
    d->backend = kind == DNS01_RFC2136 ? &dns01_backend_rfc2136
                 : kind == DNS01_ACMEDNS ? &dns01_backend_acmedns : &dns01_backend_hook;

    for (size_t i = 0; i < n; i++) {
        const key_def *def = NULL;
        for (size_t k = 0; k < sizeof(keys_known) / sizeof(keys_known[0]); k++)
            if (!strcmp(keys[i], keys_known[k].key))
                def = &keys_known[k];
        if (!def)
            return modcfg_bad(&c, ACME_E_INVALID_ARG, "%s: unknown key", keys[i]);
        if (def->scope != ANY_BACKEND && def->scope != kind)
            return modcfg_bad(&c, ACME_E_INVALID_ARG, "%s: a key of backend %s, not of %s", keys[i],
                       backend_names[def->scope], backend);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(keys[i], keys[j]))
                return modcfg_bad(&c, ACME_E_INVALID_ARG, "%s: given twice", keys[i]);
    }

    int rc;
    unsigned u;
    if ((rc = modcfg_uint(&c, "nameserver-port", 1, 65535, 53, &d->nameserver_port)) ||
        (rc = modcfg_uint(&c, "dns-timeout", 100, 60000, 3000, &d->query_timeout_ms)) ||
        (rc = modcfg_uint(&c, "propagation-timeout", 0, 86400, 120, &d->propagation_timeout_s)) ||
        (rc = modcfg_uint(&c, "propagation-interval", 50, 600000, 2000, &d->propagation_interval_ms)) ||
        (rc = modcfg_uint(&c, "ttl", 0, 604800, 60, &u)) ||
        (rc = modcfg_uint(&c, "http-timeout", 1, 600, 30, &d->http_timeout_s)) ||
        (rc = modcfg_uint(&c, "hook-timeout", 1, 3600, 120, &d->hook_timeout_s)))
        return rc;
    d->ttl = u;

    const char *v;
    if ((v = modcfg_get(&c, "resolver")) ? (rc = get_server(&c, "resolver", v, 53, &d->resolver))
                                  : (rc = system_resolver(&c, &d->resolver)))
        return rc;
    if ((rc = configure_nameservers(d, &c)))
        return rc;
    if ((v = modcfg_get(&c, "zone"))) {
        if (dns_name_from_text(&d->zone, v) != 0 || dns_name_is_root(&d->zone))
            return modcfg_bad(&c, ACME_E_INVALID_ARG, "zone=%s: not a domain name", v);
        d->have_zone = 1;
    }

    switch (d->kind) {
    case DNS01_RFC2136:
        if (!(v = modcfg_get(&c, "server")))
            return modcfg_bad(&c, ACME_E_INVALID_ARG, "server: required for backend rfc2136 (the primary "
                       "server, host[:port])");
        if ((rc = get_server(&c, "server", v, 53, &d->primary)))
            return rc;
        d->have_primary = 1;
        return configure_tsig(d, &c);
    case DNS01_ACMEDNS:
        if (!(v = modcfg_get(&c, "api-url")))
            return modcfg_bad(&c, ACME_E_INVALID_ARG, "api-url: required for backend acme-dns");
        if (strncasecmp(v, "https://", 8) != 0 || !v[8])
            return modcfg_bad(&c, ACME_E_INSECURE, "api-url=%s: must be an https:// URL (the API key "
                       "travels in it)", v);
        if (!(d->api_url = strdup(v)))
            return modcfg_bad(&c, ACME_E_NOMEM, "out of memory");
        if ((v = modcfg_get(&c, "ca-file")) && !(d->ca_file = strdup(v)))
            return modcfg_bad(&c, ACME_E_NOMEM, "out of memory");
        return ACME_OK;
    case DNS01_HOOK:
        if (!(v = modcfg_get(&c, "command")) || !*v)
            return modcfg_bad(&c, ACME_E_INVALID_ARG, "command: required for backend hook");
        if (!(d->command = strdup(v)))
            return modcfg_bad(&c, ACME_E_NOMEM, "out of memory");
        return ACME_OK;
    }
    return ACME_OK;
}

void dns01_config_free(dns01 *d)
{
    tsig_key_wipe(&d->tsig);
    free(d->api_url);
    free(d->ca_file);
    free(d->command);
    d->api_url = d->ca_file = d->command = NULL;
}
