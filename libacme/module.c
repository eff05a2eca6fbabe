/* Loading modules (challenge providers, installers) by path; see
 * include/acme/module.h. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <acme/module.h>
#include "internal.h"
#include "storage_file.h"

struct acme_module {
    void *handle;             /* dlopen handle */
    const acme_module_ops *ops;
    acme_module_ops table;    /* our copy, zero-filled past the module's size */
    void *instance;
    acme_client *client;
    acme_module_host host;
    char *name;
};

/* Module storage lives under "modules/<name>/" of the CA's directory. */
static char *module_key(acme_module *m, const char *key)
{
    if (!key || !*key || !storage_key_valid(key))
        return NULL;
    return xasprintf("modules/%s/%s", m->name, key);
}

static int host_storage_get(void *ud, const char *key, acme_buffer *out)
{
    acme_module *m = ud;
    char *rel = module_key(m, key);
    if (!rel)
        return ACME_E_INVALID_ARG;
    int rc = store_get(m->client, rel, out);
    free(rel);
    return rc;
}

static int host_storage_put(void *ud, const char *key, const void *data, size_t len, unsigned flags)
{
    acme_module *m = ud;
    char *rel = module_key(m, key);
    if (!rel)
        return ACME_E_INVALID_ARG;
    int rc = store_put(m->client, rel, data, len, flags);
    free(rel);
    return rc;
}

static void host_log(void *ud, acme_log_level level, const char *msg)
{
    acme_module *m = ud;
    alog(m->client, level, "%s: %s", m->name, msg);
}

/* Split "key=value" lines into two arrays. Whitespace around both is trimmed. */
static int parse_config(const char *text, char ***keys, char ***values, size_t *n, size_t *bad_line)
{
    *keys = *values = NULL;
    *n = 0;
    *bad_line = 0;
    if (!text)
        return ACME_OK;
    size_t cap = 0, line_no = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        line_no++;
        const char *s = p, *e = p + len;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (s < e && *s != '#') {
            const char *eq = memchr(s, '=', (size_t)(e - s));
            if (!eq || eq == s) {
                *bad_line = line_no;
                return ACME_E_INVALID_ARG;
            }
            const char *ke = eq, *vs = eq + 1;
            while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t'))
                ke--;
            while (vs < e && (*vs == ' ' || *vs == '\t'))
                vs++;
            if (*n == cap) {
                cap = cap ? cap * 2 : 8;
                char **nk = realloc(*keys, cap * sizeof(char *));
                if (nk)
                    *keys = nk;
                char **nv = realloc(*values, cap * sizeof(char *));
                if (nv)
                    *values = nv;
                if (!nk || !nv)
                    return ACME_E_NOMEM;
            }
            (*keys)[*n] = strndup(s, (size_t)(ke - s));
            (*values)[*n] = strndup(vs, (size_t)(e - vs));
            if (!(*keys)[*n] || !(*values)[*n]) {
                free((*keys)[*n]);
                secure_free_str((*values)[*n]);
                return ACME_E_NOMEM;
            }
            (*n)++;
        }
        p = eol ? eol + 1 : p + len;
    }
    return ACME_OK;
}

static void free_config(char **keys, char **values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        /* Values may hold secrets (TSIG keys, passwords). */
        secure_free_str(values[i]);
    }
    free(keys);
    free(values);
}

static int name_ok(const char *name)
{
    if (!name || !*name || strlen(name) > 64)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

ACME_EXPORT int acme_module_load(acme_client *c, const char *path, const char *config, acme_module **out)
{
    if (!out)
        return ACME_E_INVALID_ARG;
    *out = NULL;
    if (!c || !path)
        return ACME_E_INVALID_ARG;
    result_reset(c);
    acme_module *m = calloc(1, sizeof(*m));
    if (!m)
        return ACME_E_NOMEM;
    m->client = c;
    char **keys = NULL, **values = NULL, *real = NULL;
    size_t n = 0, bad_line = 0;
    int rc;
    /* A module is code run with the host's privileges: load exactly the
     * file named. dlopen() would look a bare name up in its own search
     * path (LD_LIBRARY_PATH, the cache, the system directories), and a
     * relative path depends on the working directory at this moment, so
     * a bare name is refused and the path is resolved once, here. */
    if (!strchr(path, '/')) {
        rc = client_fail(c, ACME_E_INVALID_ARG, "module %s: give the module's path (e.g. ./%s or an absolute "
                         "path): a bare name would be searched for in the dynamic linker's path", path, path);
        goto out;
    }
    real = realpath(path, NULL);
    if (!real) {
        int e = errno;
        rc = e == ENOMEM ? ACME_E_NOMEM
                         : client_fail(c, ACME_E_INVALID_ARG, "module %s: %s", path, strerror(e));
        goto out;
    }
    /* RTLD_LOCAL: two modules may carry helpers with the same names. */
    m->handle = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!m->handle) {
        const char *why = dlerror();
        rc = client_fail(c, ACME_E_INVALID_ARG, "module %s: cannot load it: %s", real, why ? why : "?");
        goto out;
    }
    acme_module_entry_fn entry;
    /* POSIX blesses this cast for dlsym results. */
    *(void **)&entry = dlsym(m->handle, ACME_MODULE_ENTRY);
    if (!entry) {
        rc = client_fail(c, ACME_E_INVALID_ARG, "module %s: no %s symbol; is it a libacme module?", real,
                         ACME_MODULE_ENTRY);
        goto out;
    }
    m->ops = entry(ACME_MODULE_ABI_VERSION);
    /* Nothing but size is read before size says the member is there. */
    if (!m->ops) {
        rc = client_fail(c, ACME_E_UNSUPPORTED, "module %s: the module does not support module ABI %u, the "
                         "one this libacme supports (its %s returned no table); rebuild the module against "
                         "this libacme", real, ACME_MODULE_ABI_VERSION, ACME_MODULE_ENTRY);
        goto out;
    }
    if (m->ops->size < offsetof(acme_module_ops, abi_version) + sizeof(m->ops->abi_version)) {
        rc = client_fail(c, ACME_E_UNSUPPORTED, "module %s: its operations table is %zu bytes, too small to "
                         "say which module ABI it was built for; rebuild the module against this libacme "
                         "(module ABI %u)", real, m->ops->size, ACME_MODULE_ABI_VERSION);
        goto out;
    }
    if (m->ops->abi_version != ACME_MODULE_ABI_VERSION) {
        rc = client_fail(c, ACME_E_UNSUPPORTED, "module %s: the module asked for module ABI %u; this libacme "
                         "supports module ABI %u only; rebuild the module against this libacme", real,
                         m->ops->abi_version, ACME_MODULE_ABI_VERSION);
        goto out;
    }
    if (m->ops->size < offsetof(acme_module_ops, last_error)) {
        rc = client_fail(c, ACME_E_UNSUPPORTED, "module %s: its operations table is %zu bytes, smaller than "
                         "module ABI %u's (at least %zu); rebuild the module against this libacme", real,
                         m->ops->size, ACME_MODULE_ABI_VERSION, offsetof(acme_module_ops, last_error));
        goto out;
    }
    memcpy(&m->table, m->ops, m->ops->size < sizeof(m->table) ? m->ops->size : sizeof(m->table));
    if (!name_ok(m->table.name) || !m->table.create) {
        rc = client_fail(c, ACME_E_UNSUPPORTED, "module %s: bad name or no create()", real);
        goto out;
    }
    if (!(m->name = strdup(m->table.name))) {
        rc = ACME_E_NOMEM;
        goto out;
    }
    rc = parse_config(config, &keys, &values, &n, &bad_line);
    if (rc) {
        rc = client_fail(c, rc, "module %s: configuration line %zu is not key=value", m->name, bad_line);
        goto out;
    }
    m->host = (acme_module_host){
        .size = sizeof(acme_module_host),
        .ud = m,
        .storage_get = host_storage_get,
        .storage_put = host_storage_put,
        .log = host_log,
    };
    char err[512] = "";
    rc = m->table.create(&m->host, (const char *const *)keys, (const char *const *)values, n, &m->instance,
                         err, sizeof(err));
    if (rc) {
        err[sizeof(err) - 1] = '\0';
        rc = client_fail(c, rc, "module %s: configuration refused: %s", m->name, *err ? err : acme_strerror(rc));
        m->instance = NULL;
        goto out;
    }
    alog(c, ACME_LOG_INFO, "module %s loaded from %s", m->name, real);
out:
    free(real);
    free_config(keys, values, n);
    if (rc) {
        acme_module_free(m);
        return rc;
    }
    *out = m;
    return ACME_OK;
}

ACME_EXPORT void acme_module_free(acme_module *m)
{
    if (!m)
        return;
    if (m->instance && m->table.destroy)
        m->table.destroy(m->instance);
    if (m->handle)
        dlclose(m->handle);
    free(m->name);
    free(m);
}

ACME_EXPORT const char *acme_module_name(const acme_module *m)
{
    return m ? m->name : NULL;
}

ACME_EXPORT int acme_module_handles(const acme_module *m, acme_challenge_type type)
{
    if (!m || !m->table.challenge_types)
        return 0;
    return (m->table.challenge_types(m->instance) & ACME_MODULE_CHALLENGE(type)) != 0;
}

/* Carry the module's own reason into the client's error. */
static int module_result(acme_module *m, const char *what, int rc)
{
    if (rc == ACME_OK || rc == ACME_E_PENDING || rc == ACME_E_DECLINED)
        return rc;
    const char *why = m->table.last_error ? m->table.last_error(m->instance) : NULL;
    return client_fail(m->client, rc, "module %s: %s failed: %s", m->name, what, why ? why : acme_strerror(rc));
}

ACME_EXPORT int acme_module_publish(void *module, const acme_challenge *ch)
{
    acme_module *m = module;
    if (!m || !ch)
        return ACME_E_INVALID_ARG;
    /* Not ours to answer: let the order try another type. */
    if (!m->table.publish || !acme_module_handles(m, acme_challenge_get_type(ch)))
        return ACME_E_DECLINED;
    return module_result(m, "publish", m->table.publish(m->instance, ch));
}

ACME_EXPORT int acme_module_unpublish(void *module, const acme_challenge *ch)
{
    acme_module *m = module;
    if (!m || !ch)
        return ACME_E_INVALID_ARG;
    if (!m->table.unpublish)
        return ACME_OK;
    return module_result(m, "unpublish", m->table.unpublish(m->instance, ch));
}

ACME_EXPORT int acme_module_install(void *module, const acme_certificate *cert)
{
    acme_module *m = module;
    if (!m || !cert)
        return ACME_E_INVALID_ARG;
    if (!m->table.install)
        return ACME_OK;
    return module_result(m, "install", m->table.install(m->instance, cert));
}
