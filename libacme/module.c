/* Loading modules (challenge providers, installers) by path, and calling
 * their hooks in the caller's thread; see include/acme/module.h and
 * doc/modules.md. module_async.c runs the same calls on a thread of the
 * module's own for hosts that drive the engine. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <acme/engine.h>
#include <acme/module.h>
#include "internal.h"
#include "module_internal.h"
#include "storage_file.h"

/* Module storage lives under "modules/<name>/" of the CA's directory. */
static char *module_key(acme_module *m, const char *key)
{
    if (!key || !*key || !storage_key_valid(key))
        return NULL;
    return xasprintf("modules/%s/%s", m->name, key);
}

/* Off the client's thread (the module's own, or a host's worker) the
 * storage table is called directly: the client's last error belongs to
 * the thread driving the engine, and the module reports its failures
 * through its own last_error anyway. */
static int direct_storage(acme_module *m, const char *rel, int put, acme_buffer *out, const void *data,
                          size_t len, unsigned flags)
{
    acme_client *c = m->client;
    if (put ? !c->storage.put : !c->storage.get)
        return ACME_E_STATE;
    char *k = xasprintf("%s/%s", c->ca_id, rel);
    if (!k)
        return ACME_E_NOMEM;
    int rc = put ? c->storage.put(c->storage_ud, k, data, len, flags) : c->storage.get(c->storage_ud, k, out);
    free(k);
    return rc;
}

static int host_storage_get(void *ud, const char *key, acme_buffer *out)
{
    acme_module *m = ud;
    char *rel = module_key(m, key);
    if (!rel)
        return ACME_E_INVALID_ARG;
    int rc = module_foreign_thread(m) ? direct_storage(m, rel, 0, out, NULL, 0, 0) : store_get(m->client, rel, out);
    free(rel);
    return rc;
}

static int host_storage_put(void *ud, const char *key, const void *data, size_t len, unsigned flags)
{
    acme_module *m = ud;
    char *rel = module_key(m, key);
    if (!rel)
        return ACME_E_INVALID_ARG;
    int rc = module_foreign_thread(m) ? direct_storage(m, rel, 1, NULL, data, len, flags)
                                       : store_put(m->client, rel, data, len, flags);
    free(rel);
    return rc;
}

static void host_log(void *ud, acme_log_level level, const char *msg)
{
    acme_module *m = ud;
    /* The client's log callback is the host's, made for its loop thread. */
    if (module_async_on_thread(m))
        module_async_log(m, level, msg);
    else
        alog(m->client, level, "%s: %s", m->name, msg);
}

/* The module finished a hook that answered ACME_E_PENDING. Any thread. */
static void host_done(void *ud, const void *object, int result)
{
    acme_module *m = ud;
    pthread_mutex_lock(&m->mu);
    if (object && object == m->awaited && !m->answered) {
        m->answered = 1;
        m->answer_rc = result;
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
}

static int host_stopping(void *ud)
{
    return module_async_stopping(ud);
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
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->owner = pthread_self();
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
    /* Ask for the newest ABI first; a module built for ABI 1 answers
     * NULL to 2 (as the ABI 1 documentation told it to) and its table to 1. */
    m->ops = entry(ACME_MODULE_ABI_VERSION);
    if (!m->ops)
        m->ops = entry(ACME_MODULE_ABI_VERSION_MIN);
    /* Nothing but size is read before size says the member is there. */
    if (!m->ops) {
        rc = client_fail(c, ACME_E_UNSUPPORTED, "module %s: the module supports neither module ABI %u nor %u, the "
                         "ones this libacme supports (its %s returned no table); rebuild the module against "
                         "this libacme", real, ACME_MODULE_ABI_VERSION, ACME_MODULE_ABI_VERSION_MIN, ACME_MODULE_ENTRY);
        goto out;
    }
    if (m->ops->size < offsetof(acme_module_ops, abi_version) + sizeof(m->ops->abi_version)) {
        rc = client_fail(c, ACME_E_UNSUPPORTED, "module %s: its operations table is %zu bytes, too small to "
                         "say which module ABI it was built for; rebuild the module against this libacme "
                         "(module ABI %u)", real, m->ops->size, ACME_MODULE_ABI_VERSION);
        goto out;
    }
    m->abi = m->ops->abi_version;
    if (m->abi < ACME_MODULE_ABI_VERSION_MIN || m->abi > ACME_MODULE_ABI_VERSION) {
        rc = client_fail(c, ACME_E_UNSUPPORTED, "module %s: the module asked for module ABI %u; this libacme "
                         "supports module ABI %u to %u only; rebuild the module against this libacme", real,
                         m->abi, ACME_MODULE_ABI_VERSION_MIN, ACME_MODULE_ABI_VERSION);
        goto out;
    }
    /* ABI 1's required part ends at install, ABI 2's at cleanup. */
    size_t need = m->abi == 1 ? offsetof(acme_module_ops, last_error)
                              : offsetof(acme_module_ops, cleanup) + sizeof(m->ops->cleanup);
    if (m->ops->size < need) {
        rc = client_fail(c, ACME_E_UNSUPPORTED, "module %s: its operations table is %zu bytes, smaller than "
                         "module ABI %u's (at least %zu); rebuild the module against this libacme", real,
                         m->ops->size, m->abi, need);
        goto out;
    }
    memcpy(&m->table, m->ops, m->ops->size < sizeof(m->table) ? m->ops->size : sizeof(m->table));
    if (m->abi == 1) {
        /* ABI 1 had none of these; whatever a table of that ABI carries
         * past its end is not ours to read. */
        size_t end = offsetof(acme_module_ops, flags);
        memset((char *)&m->table + end, 0, sizeof(m->table) - end);
    }
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
        .done = host_done,
        .stopping = host_stopping,
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
    /* An instance answers the same types for its whole life: asked once,
     * so that routing a challenge never calls into a module whose thread
     * may be inside another hook. */
    m->types = m->table.challenge_types ? m->table.challenge_types(m->instance) : 0;
    alog(c, ACME_LOG_INFO, "module %s loaded from %s (module ABI %u)", m->name, real, m->abi);
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
    /* The thread may be inside a hook: it finishes that one first. */
    module_async_stop(m);
    if (m->instance && m->table.destroy)
        m->table.destroy(m->instance);
    if (m->handle)
        dlclose(m->handle);
    free(m->name);
    free(m->last_error);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}

ACME_EXPORT const char *acme_module_name(const acme_module *m)
{
    return m ? m->name : NULL;
}

ACME_EXPORT int acme_module_handles(const acme_module *m, acme_challenge_type type)
{
    return m && (m->types & ACME_MODULE_CHALLENGE(type)) != 0;
}

ACME_EXPORT unsigned acme_module_flags(const acme_module *m)
{
    if (!m)
        return 0;
    if (m->abi >= 2 && m->table.flags)
        return m->table.flags & (ACME_MODULE_PUBLISHES | ACME_MODULE_INSTALLS);
    /* ABI 1 (or an ABI 2 table that leaves flags 0: an ABI 1 source built
     * against these headers) says it by which hooks it has. */
    return ((m->table.publish || m->table.present) && m->types ? ACME_MODULE_PUBLISHES : 0u) |
           (m->table.install ? ACME_MODULE_INSTALLS : 0u);
}

ACME_EXPORT const char *acme_module_last_error(const acme_module *m)
{
    return m ? m->last_error : NULL;
}

typedef enum hook_id { H_PUBLISH, H_UNPUBLISH, H_INSTALL, H_PRESENT, H_WAIT, H_CLEANUP } hook_id;

static int has_hook(const acme_module *m, hook_id h)
{
    const acme_module_ops *t = &m->table;
    switch (h) {
    case H_PUBLISH: return t->publish != NULL;
    case H_UNPUBLISH: return t->unpublish != NULL;
    case H_INSTALL: return t->install != NULL;
    case H_PRESENT: return t->present != NULL;
    case H_WAIT: return t->wait != NULL;
    case H_CLEANUP: return t->cleanup != NULL;
    }
    return 0;
}

/* One hook (each called through its own type). A PENDING answer (module
 * ABI 2) is waited for here: the module finishes it through host->done,
 * from whatever thread it likes. */
static int call_hook(acme_module *m, hook_id h, const void *object)
{
    const acme_module_ops *t = &m->table;
    if (!has_hook(m, h))
        return ACME_OK;
    pthread_mutex_lock(&m->mu);
    m->awaited = object;
    m->answered = 0;
    pthread_mutex_unlock(&m->mu);
    int rc = ACME_OK;
    switch (h) {
    case H_PUBLISH: rc = t->publish(m->instance, object); break;
    case H_UNPUBLISH: rc = t->unpublish(m->instance, object); break;
    case H_INSTALL: rc = t->install(m->instance, object); break;
    case H_PRESENT: rc = t->present(m->instance, object); break;
    case H_WAIT: rc = t->wait(m->instance, object); break;
    case H_CLEANUP: rc = t->cleanup(m->instance, object); break;
    }
    pthread_mutex_lock(&m->mu);
    if (rc == ACME_E_PENDING && m->abi >= 2) {
        while (!m->answered)
            pthread_cond_wait(&m->cv, &m->mu);
        rc = m->answer_rc;
    }
    m->awaited = NULL;
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static const char *op_word(mod_op op)
{
    switch (op) {
    case MOD_PUBLISH: return "publish";
    case MOD_WAIT: return "wait";
    case MOD_UNPUBLISH: return "unpublish";
    case MOD_INSTALL: return "install";
    }
    return "call";
}

/* The module's own reason, with what failed. */
static char *sentence(acme_module *m, mod_op op, int rc)
{
    const char *why = m->table.last_error ? m->table.last_error(m->instance) : NULL;
    char *s = rc == ACME_E_PENDING && m->abi < 2
                  ? xasprintf("module %s: %s answered ACME_E_PENDING, which a module ABI 1 module cannot "
                              "finish later; fix the module", m->name, op_word(op))
                  : xasprintf("module %s: %s failed: %s", m->name, op_word(op), why ? why : acme_strerror(rc));
    /* One line, like every last error: the module's text is its own. */
    for (char *p = s; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return s;
}

int module_run(acme_module *m, mod_op op, const void *object, int run_wait, int *needs_wait, char **why)
{
    *why = NULL;
    if (needs_wait)
        *needs_wait = 0;
    const acme_module_ops *t = &m->table;
    int v2 = m->abi >= 2 && t->present;
    int rc = ACME_OK;
    switch (op) {
    case MOD_PUBLISH:
        if (!v2) {
            rc = call_hook(m, H_PUBLISH, object);
            break;
        }
        rc = call_hook(m, H_PRESENT, object);
        if (rc != ACME_OK || !t->wait)
            break;
        if (!run_wait) {
            *needs_wait = 1;
            return ACME_OK;
        }
        /* present went out, now wait for it */
        __attribute__((fallthrough));
    case MOD_WAIT:
        rc = call_hook(m, H_WAIT, object);
        if (rc != ACME_OK) {
            /* Leave nothing behind: the order never calls unpublish for a
             * failed publish. The wait's reason is the one that counts. */
            *why = sentence(m, MOD_WAIT, rc);
            int crc = call_hook(m, t->cleanup ? H_CLEANUP : H_UNPUBLISH, object);
            if (crc != ACME_OK && crc != ACME_E_PENDING) {
                char *c2 = sentence(m, MOD_UNPUBLISH, crc);
                char *both = xasprintf("%s (and removing it again failed too: %s)", *why ? *why : "?", c2 ? c2 : "?");
                free(c2);
                if (both) {
                    free(*why);
                    *why = both;
                }
            }
            return rc;
        }
        break;
    case MOD_UNPUBLISH:
        rc = call_hook(m, v2 && t->cleanup ? H_CLEANUP : H_UNPUBLISH, object);
        break;
    case MOD_INSTALL:
        rc = call_hook(m, H_INSTALL, object);
        break;
    }
    if (rc != ACME_OK && rc != ACME_E_DECLINED)
        *why = sentence(m, op, rc);
    /* Only ABI 1 gets here with PENDING: it cannot report completion. */
    return rc == ACME_E_PENDING ? ACME_E_CALLBACK : rc;
}

void module_client_error(acme_module *m, const char *why)
{
    acme_client *c = m->client;
    /* The first failure explains best, as client_fail keeps it. */
    if (!c->last_error)
        c->last_error = xstrdup(why);
}

int module_foreign_thread(const acme_module *m)
{
    return !pthread_equal(pthread_self(), m->owner);
}

/* Record a failure: the module's last error, and the client's when the
 * caller is the client's thread (a host's worker thread must not write
 * into a client its loop is using). */
static int module_result(acme_module *m, int rc, char *why)
{
    if (why) {
        free(m->last_error);
        m->last_error = why;
        /* Not logged here: whoever called reports the failure with its
         * context (the order quotes the client's last error). */
        if (!module_foreign_thread(m))
            module_client_error(m, why);
    }
    return rc;
}

static int dispatch_call(acme_module *m, mod_op op, const void *object)
{
    if (m->async)
        return module_async_queue(m, op, object);
    char *why = NULL;
    int rc = module_run(m, op, object, 1, NULL, &why);
    return module_result(m, rc, why);
}

ACME_EXPORT int acme_module_publish(void *module, const acme_challenge *ch)
{
    acme_module *m = module;
    if (!m || !ch)
        return ACME_E_INVALID_ARG;
    /* Not ours to answer: let the order try another type. */
    int has = m->abi >= 2 && m->table.present ? 1 : m->table.publish != NULL;
    if (!has || !acme_module_handles(m, acme_challenge_get_type(ch)))
        return ACME_E_DECLINED;
    return dispatch_call(m, MOD_PUBLISH, ch);
}

ACME_EXPORT int acme_module_unpublish(void *module, const acme_challenge *ch)
{
    acme_module *m = module;
    if (!m || !ch)
        return ACME_E_INVALID_ARG;
    int has = m->abi >= 2 && m->table.present ? m->table.cleanup || m->table.unpublish : m->table.unpublish != NULL;
    if (!has)
        return ACME_OK;
    return dispatch_call(m, MOD_UNPUBLISH, ch);
}

ACME_EXPORT int acme_module_install(void *module, const acme_certificate *cert)
{
    acme_module *m = module;
    if (!m || !cert)
        return ACME_E_INVALID_ARG;
    if (!m->table.install)
        return ACME_OK;
    return dispatch_call(m, MOD_INSTALL, cert);
}

ACME_EXPORT int acme_module_set_engine(acme_module *m, acme_engine *e)
{
    if (!m)
        return ACME_E_INVALID_ARG;
    result_reset(m->client);
    if (!e) {
        module_async_stop(m);
        return ACME_OK;
    }
    return module_async_start(m, e);
}
