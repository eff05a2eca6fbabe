/* The module's configuration: key=value pairs into struct hap. Every key
 * is documented in doc/haproxy.md. An unknown or repeated key is refused,
 * so a typo never goes unnoticed.
 *
 *   socket            admin socket (required)
 *   timeout           ms per runtime-API command (3000)
 *   map               http-01 map, as haproxy.cfg names it
 *   alpn-crt-list     crt-list of the acme-tls/1 bind (tls-alpn-01)
 *   alpn-cert-prefix  names of challenge certificates ("/acme-tls-alpn-01/")
 *   cert-dir          where <cert-id>.pem files go (required unless crt-dir)
 *   crt-list          crt-list of the TLS bind: new names are added to it
 *   crt-dir           or: the directory of a `crt <dir>/` TLS bind
 *   crt-list-options  "[...]" options for lines added to crt-list
 *   cert-mode         mode of certificate files (0600)
 *   cert-path.<id>    the file of one certificate id, if not cert-dir/<id>.pem
 *   etcd-*            a cluster of HAProxy hosts (haproxy_etcd.c) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haproxy.h"
#include "modcfg.h"

#define PATH_PREFIX "cert-path."

static const char *const keys_known[] = {
    "socket", "timeout", "map", "alpn-crt-list", "alpn-cert-prefix", "cert-dir", "crt-list", "crt-dir",
    "crt-list-options", "cert-mode",
};



/* A path that goes on HAProxy's command line: one word. must_abs: it is
 * also written on disk by us, so it must not depend on our cwd. */
static int get_path(modcfg *c, const char *key, int must_abs, char **out)
{
    const char *v = modcfg_get(c, key);
    *out = NULL;
    if (!v)
        return ACME_OK;
    if (!*v)
        return modcfg_bad(c, ACME_E_INVALID_ARG, "%s: empty", key);
    if (!hap_word_ok(v))
        return modcfg_bad(c, ACME_E_INVALID_ARG, "%s: \"%s\" has a space, tab, quote, '#', ';' or '\\'; HAProxy's "
                   "command line cannot carry it", key, v);
    if (must_abs && v[0] != '/')
        return modcfg_bad(c, ACME_E_INVALID_ARG, "%s: \"%s\" is not an absolute path", key, v);
    if (!(*out = strdup(v)))
        return modcfg_bad(c, ACME_E_NOMEM, "out of memory");
    return ACME_OK;
}

static void strip_slashes(char *p)
{
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
}

int hap_configure(hap *h, const char *const *keys, const char *const *values, size_t n, char *err,
                  size_t errlen)
{
    modcfg c = {.keys = keys, .values = values, .n = n, .err = err, .errlen = errlen};
    int rc;
    size_t npaths = 0;
    for (size_t i = 0; i < n; i++) {
        int known = 0;
        for (size_t k = 0; k < sizeof(keys_known) / sizeof(keys_known[0]); k++)
            known |= !strcmp(keys[i], keys_known[k]);
        for (size_t k = 0; hap_etcd_keys[k]; k++)
            known |= !strcmp(keys[i], hap_etcd_keys[k]);
        if (!strncmp(keys[i], PATH_PREFIX, strlen(PATH_PREFIX))) {
            known = 1;
            npaths++;
        }
        if (!known)
            return modcfg_bad(&c, ACME_E_INVALID_ARG, "%s: unknown key (see doc/haproxy.md)", keys[i]);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(keys[i], keys[j]))
                return modcfg_bad(&c, ACME_E_INVALID_ARG, "%s: given twice", keys[i]);
    }

    /* The socket is only ever connect()ed, never sent as a word. */
    const char *sock = modcfg_get(&c, "socket");
    if (!sock || !*sock)
        return modcfg_bad(&c, ACME_E_INVALID_ARG, "socket: missing (the path of HAProxy's admin socket, from a "
                   "`stats socket <path> level admin` line)");
    if (strlen(sock) >= 108)
        return modcfg_bad(&c, ACME_E_INVALID_ARG, "socket: longer than a Unix socket path can be (107 bytes)");
    if (!(h->socket_path = strdup(sock)))
        return modcfg_bad(&c, ACME_E_NOMEM, "out of memory");

    unsigned timeout = 3000;
    const char *t = modcfg_get(&c, "timeout");
    if (t) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(t, &end, 10);
        if (errno || end == t || *end || v < 100 || v > 60000)
            return modcfg_bad(&c, ACME_E_INVALID_ARG, "timeout: \"%s\" is not a number of milliseconds in "
                       "100..60000", t);
        timeout = (unsigned)v;
    }
    h->sock.path = h->socket_path;
    h->sock.timeout_ms = timeout;

    if ((rc = get_path(&c, "map", 0, &h->map)) || (rc = get_path(&c, "alpn-crt-list", 0, &h->alpn_crt_list)) ||
        (rc = get_path(&c, "alpn-cert-prefix", 1, &h->alpn_prefix)) ||
        (rc = get_path(&c, "cert-dir", 1, &h->cert_dir)) || (rc = get_path(&c, "crt-list", 1, &h->crt_list)) ||
        (rc = get_path(&c, "crt-dir", 1, &h->crt_dir)))
        return rc;
    if (h->crt_list && h->crt_dir)
        return modcfg_bad(&c, ACME_E_INVALID_ARG, "crt-dir: give crt-list or crt-dir, not both");
    if (h->crt_dir)
        strip_slashes(h->crt_dir); /* HAProxy names the list without the slash */
    if (h->cert_dir)
        strip_slashes(h->cert_dir);
    if (!h->cert_dir && h->crt_dir && !(h->cert_dir = strdup(h->crt_dir)))
        return modcfg_bad(&c, ACME_E_NOMEM, "out of memory");
    if (!h->cert_dir)
        return modcfg_bad(&c, ACME_E_INVALID_ARG, "cert-dir: missing (the directory where certificate files "
                   "<cert-id>.pem are written), or give crt-dir");
    if (!h->alpn_prefix && !(h->alpn_prefix = strdup("/acme-tls-alpn-01/")))
        return modcfg_bad(&c, ACME_E_NOMEM, "out of memory");

    const char *opts = modcfg_get(&c, "crt-list-options");
    if (opts && *opts) {
        size_t len = strlen(opts);
        if (opts[0] != '[' || opts[len - 1] != ']' || strpbrk(opts, "\r\n"))
            return modcfg_bad(&c, ACME_E_INVALID_ARG, "crt-list-options: \"%s\" is not one \"[...]\" block of "
                       "crt-list options", opts);
        if (!(h->crt_list_options = strdup(opts)))
            return modcfg_bad(&c, ACME_E_NOMEM, "out of memory");
    }

    h->cert_mode = 0600;
    const char *mode = modcfg_get(&c, "cert-mode");
    if (mode) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(mode, &end, 8);
        if (errno || end == mode || *end || (v & ~0640ul) || !(v & 0400))
            return modcfg_bad(&c, ACME_E_INVALID_ARG, "cert-mode: \"%s\" must be octal, owner-readable, and give "
                       "nothing to others (0600, 0640, 0400, 0440); the files hold private keys", mode);
        h->cert_mode = (unsigned)v;
    }

    if (npaths) {
        h->paths = calloc(npaths, sizeof(*h->paths));
        if (!h->paths)
            return modcfg_bad(&c, ACME_E_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            if (strncmp(keys[i], PATH_PREFIX, strlen(PATH_PREFIX)) != 0)
                continue;
            const char *id = keys[i] + strlen(PATH_PREFIX);
            if (!*id)
                return modcfg_bad(&c, ACME_E_INVALID_ARG, "%s: no certificate id after \"" PATH_PREFIX "\"", keys[i]);
            hap_cert_path *p = &h->paths[h->path_count++];
            if ((rc = get_path(&c, keys[i], 1, &p->path)))
                return rc;
            if (!(p->id = strdup(id)))
                return modcfg_bad(&c, ACME_E_NOMEM, "out of memory");
        }
    }

    if ((rc = hap_cluster_configure(h, &c)))
        return rc;

    h->types = 0;
    if (h->map)
        h->types |= ACME_MODULE_CHALLENGE(ACME_CHALLENGE_HTTP_01);
    if (h->alpn_crt_list)
        h->types |= ACME_MODULE_CHALLENGE(ACME_CHALLENGE_TLS_ALPN_01);
    return ACME_OK;
}

void hap_config_free(hap *h)
{
    hap_cluster_free(h); /* its sink uses the settings below */
    free(h->socket_path);
    free(h->map);
    free(h->crt_list);
    free(h->crt_dir);
    free(h->cert_dir);
    free(h->crt_list_options);
    for (size_t i = 0; i < h->path_count; i++) {
        free(h->paths[i].id);
        free(h->paths[i].path);
    }
    free(h->paths);
    free(h->alpn_crt_list);
    free(h->alpn_prefix);
    while (h->alpn_pubs) {
        hap_alpn_pub *p = h->alpn_pubs;
        h->alpn_pubs = p->next;
        free(p->identifier);
        free(p->token);
        free(p);
    }
}
