/* mod_acme: ACME certificates for lighttpd, driven by libacme's engine
 * inside lighttpd's own event loop. See doc/lighttpd.md.
 *
 * Hook by hook:
 *   priv_defaults  (as root at first start, before mod_openssl reads its
 *                  files): read the config, make the directories, check
 *                  them as the user lighttpd will run as, put stored
 *                  certificates (or a placeholder) where ssl.pemfile says.
 *   set_defaults   the shared table (before workers fork).
 *   worker_init    (each worker) the driver; its descriptor joins the loop.
 *   handle_trigger once a second: lead, step.
 *   handle_uri_clean  http-01 answers from memory, and the status page.
 *   cleanup        (also at every graceful restart) free it all; whatever
 *                  must survive is in libacme's storage already. */
#include "mod_acme.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdevent.h"
#include "http_chunk.h"
#include "http_header.h"
#include "log.h"
#include "request.h"

#define CHALLENGE_PREFIX "/.well-known/acme-challenge/"

INIT_FUNC(mod_acme_init)
{
    return ck_calloc(1, sizeof(plugin_data));
}

FREE_FUNC(mod_acme_free)
{
    plugin_data *p = p_d;
    if (p->core) {
        if (p->fdn) {
            fdevent_fdnode_event_del(p->srv->ev, p->fdn);
            fdevent_unregister(p->srv->ev, p->fdn);
            p->fdn = NULL;
        }
        macme_core_free(p->core);
        p->core = NULL;
    }
    macme_shm_free(p->shm);
    p->shm = NULL;
    macme_conf_free(p->mc);
    p->mc = NULL;
    /* cvlist and p itself belong to lighttpd. */
}

static void host_log(void *ud, acme_log_level level, const char *msg)
{
    plugin_data *p = ud;
    static const char *const tag[] = {"ERROR: ", "WARNING: ", "", "debug: "};
    log_error(p->srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: %s%s", tag[level <= ACME_LOG_DEBUG ? level : 3], msg);
}

static void host_restart(void *ud)
{
    plugin_data *p = ud;
    pid_t target = getpid();
    if (p->srv->srvconf.max_worker) {
        /* Workers ignore SIGUSR1: the parent directs a graceful restart. */
        if (getppid() != p->parent_pid) {
            log_error(p->srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: ERROR: the lighttpd parent process %ld is gone; new certificates are served "
                      "after the next restart", (long)p->parent_pid);
            return;
        }
        target = p->parent_pid;
    }
    if (kill(target, SIGUSR1) != 0)
        log_perror(p->srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: kill(%ld, SIGUSR1)", (long)target);
}

/* ---- set-up ---- */

static void merge_config_cpv(plugin_config *pconf, const config_plugin_value_t *cpv)
{
    switch (cpv->k_id) {
    case K_STATUS_URL:
        pconf->status_url = buffer_is_blank(cpv->v.b) ? NULL : cpv->v.b;
        break;
    case K_STATUS_ALLOW:
        pconf->status_allow = cpv->v.a;
        break;
    default:
        break;
    }
}

static void merge_config(plugin_config *pconf, const config_plugin_value_t *cpv)
{
    do {
        merge_config_cpv(pconf, cpv);
    } while ((++cpv)->k_id != -1);
}

static void patch_config(request_st *r, plugin_data *p)
{
    p->conf = p->defaults;
    for (int i = 1, used = p->nconfig; i < used; ++i)
        if (config_check_cond(r, (uint32_t)p->cvlist[i].k_id))
            merge_config(&p->conf, p->cvlist + p->cvlist[i].v.u2[0]);
}

/* mod_acme writes the files the TLS module loads in its own
 * priv_defaults: it must come first. */
static int check_module_order(server *srv, plugin_data *p)
{
    static const char *const tls[] = {"openssl", "gnutls", "mbedtls", "wolfssl", "nss"};
    plugin **ps = srv->plugins.ptr;
    for (int i = 0; i < p->id - 1 && (uint32_t)i < srv->plugins.used; i++)
        for (size_t t = 0; t < sizeof(tls) / sizeof(tls[0]); t++)
            if (ps[i]->name && strcmp(ps[i]->name, tls[t]) == 0) {
                log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                          "mod_acme: list \"mod_acme\" before \"mod_%s\" in server.modules: mod_acme writes the "
                          "certificates mod_%s loads at start", tls[t], tls[t]);
                return -1;
            }
    return 0;
}

/* New certificates reach mod_openssl only through a graceful restart;
 * refuse set-ups where lighttpd cannot do one. */
static int check_restartable(server *srv)
{
    if (srv->srvconf.changeroot) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                  "mod_acme: server.chroot is set: lighttpd does not restart gracefully in a chroot, so it could "
                  "never load the certificates mod_acme obtains; remove server.chroot");
        return -1;
    }
    /* A graceful restart re-reads the config by the path given to -f:
     * a relative one breaks it (lighttpd exits). */
    for (int i = 1; srv->argv && srv->argv[i]; i++) {
        const char *a = srv->argv[i], *path = NULL;
        if (strcmp(a, "-f") == 0)
            path = srv->argv[i + 1];
        else if (strncmp(a, "-f", 2) == 0 && a[2] != '-')
            path = a + 2;
        if (path && path[0] != '/') {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: start lighttpd with an absolute -f path (got \"%s\"): the graceful restart that "
                      "loads new certificates re-reads the config by that path", path);
            return -1;
        }
        if (path)
            break;
    }
    return 0;
}

typedef struct run_as {
    int active;
    uid_t uid;
    gid_t gid;
    const char *user;
} run_as;

/* The user lighttpd runs as once it dropped root (server.username). */
static int resolve_user(server *srv, run_as *ra)
{
    memset(ra, 0, sizeof(*ra));
    ra->uid = geteuid();
    ra->gid = getegid();
    ra->user = "the current user";
    if (geteuid() != 0 || !srv->srvconf.username || buffer_is_blank(srv->srvconf.username))
        return 0;
    struct passwd *pw = getpwnam(srv->srvconf.username->ptr);
    if (!pw) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: server.username \"%s\" does not exist",
                  srv->srvconf.username->ptr);
        return -1;
    }
    ra->active = 1;
    ra->uid = pw->pw_uid;
    ra->gid = pw->pw_gid;
    ra->user = srv->srvconf.username->ptr;
    if (srv->srvconf.groupname && !buffer_is_blank(srv->srvconf.groupname)) {
        struct group *gr = getgrnam(srv->srvconf.groupname->ptr);
        if (gr)
            ra->gid = gr->gr_gid;
    }
    return 0;
}

static int check_access(server *srv, const run_as *ra, const char *path, int mode, const char *key)
{
    if (euidaccess(path, mode) == 0)
        return 0;
    int e = errno;
    log_error(srv->errh, MOD_ACME_SRC, __LINE__,
              "mod_acme: %s: \"%s\" is not %s by %s (uid %ld): %s", key, path,
              mode & R_OK ? "readable and writable" : "writable", ra->user, (long)ra->uid, strerror(e));
    return -1;
}

static int make_dirs(server *srv, const run_as *ra, const char *dir, mode_t mode, const char *key)
{
    char err[MACME_ERRLEN];
    if (afile_mkdirs(dir, (unsigned)mode, ra->active ? ra->uid : (uid_t)-1, ra->active ? ra->gid : (gid_t)-1, err,
                     sizeof(err)) == 0)
        return 0;
    log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: %s: %s", key, err);
    return -1;
}

static int prepare(server *srv, plugin_data *p)
{
    macme_conf *mc = p->mc;
    run_as ra;
    if (resolve_user(srv, &ra))
        return -1;
    /* As root (first start): directories the user must own. */
    if (make_dirs(srv, &ra, mc->state_dir, 0700, "acme.state-dir"))
        return -1;
    for (size_t i = 0; i < mc->alpn_dir_count; i++)
        if (make_dirs(srv, &ra, mc->alpn_dirs[i], 0700, "ssl.acme-tls-1"))
            return -1;
    for (size_t i = 0; i < mc->cert_count; i++) {
        char *d1 = afile_dirname(mc->certs[i].pemfile);
        char *d2 = mc->certs[i].privkey ? afile_dirname(mc->certs[i].privkey) : NULL;
        int bad = !d1 || make_dirs(srv, &ra, d1, 0755, "ssl.pemfile") ||
                  (d2 && make_dirs(srv, &ra, d2, 0755, "ssl.privkey"));
        free(d1);
        free(d2);
        if (bad)
            return -1;
    }
    /* The rest as that user: what it cannot do now it could not do after
     * the privileges are dropped, and what it creates it owns. */
    if (ra.active && (setegid(ra.gid) != 0 || seteuid(ra.uid) != 0)) {
        log_perror(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: cannot act as %s", ra.user);
        if (seteuid(0) != 0 || setegid(0) != 0)
            return -1;
        return -1;
    }
    int rc = check_access(srv, &ra, mc->state_dir, R_OK | W_OK | X_OK, "acme.state-dir");
    for (size_t i = 0; !rc && i < mc->alpn_dir_count; i++)
        rc = check_access(srv, &ra, mc->alpn_dirs[i], W_OK | X_OK, "ssl.acme-tls-1");
    for (size_t i = 0; !rc && i < mc->cert_count; i++) {
        char *d1 = afile_dirname(mc->certs[i].pemfile);
        char *d2 = mc->certs[i].privkey ? afile_dirname(mc->certs[i].privkey) : NULL;
        rc = !d1 || check_access(srv, &ra, d1, W_OK | X_OK, "ssl.pemfile") ||
             (d2 && check_access(srv, &ra, d2, W_OK | X_OK, "ssl.privkey"));
        free(d1);
        free(d2);
    }
    if (!rc) {
        char err[MACME_ERRLEN] = "";
        rc = macme_prepare_files(mc, host_log, p, err, sizeof(err));
        if (rc)
            log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: ERROR: %s", err);
    }
    if (ra.active && (seteuid(0) != 0 || setegid(0) != 0)) {
        log_perror(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: cannot return to root");
        return -1;
    }
    return rc;
}

SETDEFAULTS_FUNC(mod_acme_priv_defaults)
{
    plugin_data *const p = p_d;
    p->srv = srv;
    if (!config_plugin_values_init(srv, p, mod_acme_keys, "mod_acme"))
        return HANDLER_ERROR;
    if (p->nconfig > 0 && p->cvlist->v.u2[1]) {
        const config_plugin_value_t *cpv = p->cvlist + p->cvlist->v.u2[0];
        if (-1 != cpv->k_id)
            merge_config(&p->defaults, cpv);
    }
    if (mod_acme_config_build(srv, p, &p->mc))
        return HANDLER_ERROR;
    if (!p->mc)
        return HANDLER_GO_ON;
    if (check_module_order(srv, p) || check_restartable(srv) || prepare(srv, p))
        return HANDLER_ERROR;
    return HANDLER_GO_ON;
}

SETDEFAULTS_FUNC(mod_acme_set_defaults)
{
    plugin_data *const p = p_d;
    if (!p->mc)
        return HANDLER_GO_ON;
    /* Before server.max-worker forks: every worker shares it. */
    p->shm = macme_shm_new();
    if (!p->shm) {
        log_perror(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: shared memory");
        return HANDLER_ERROR;
    }
    return HANDLER_GO_ON;
}

static handler_t on_fd(void *ctx, int revents)
{
    (void)revents;
    plugin_data *p = ctx;
    if (p->core)
        macme_core_ready(p->core);
    return HANDLER_GO_ON;
}

SERVER_FUNC(mod_acme_worker_init)
{
    plugin_data *const p = p_d;
    if (!p->mc)
        return HANDLER_GO_ON;
    p->parent_pid = getppid();
    macme_core_host h = {p, host_log, host_restart};
    char err[MACME_ERRLEN] = "";
    if (macme_core_new(p->mc, p->shm, &h, &p->core, err, sizeof(err))) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: %s", err);
        return HANDLER_ERROR;
    }
    p->fdn = fdevent_register(srv->ev, macme_core_fd(p->core), on_fd, p);
    fdevent_fdnode_event_set(srv->ev, p->fdn, FDEVENT_IN);
    /* Start at once rather than at the first tick. */
    macme_core_tick(p->core);
    return HANDLER_GO_ON;
}

TRIGGER_FUNC(mod_acme_trigger)
{
    (void)srv;
    plugin_data *const p = p_d;
    if (p->core)
        macme_core_tick(p->core);
    return HANDLER_GO_ON;
}

/* ---- requests ---- */

/* acme.status-allow: addresses and prefixes ("127.0.0.1", "10.0.0.0/8",
 * "::1", "fd00::/8"); unset means loopback only. */
static int addr_match(const char *remote, const char *rule)
{
    unsigned char ra[16], rb[16];
    int rfam = AF_INET, bits = -1;
    if (inet_pton(AF_INET, remote, ra) != 1) {
        if (inet_pton(AF_INET6, remote, ra) != 1)
            return 0;
        rfam = AF_INET6;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(ra, mapped, 12) == 0) {
            memmove(ra, ra + 12, 4);
            rfam = AF_INET;
        }
    }
    char addr[64];
    const char *slash = strchr(rule, '/');
    size_t len = slash ? (size_t)(slash - rule) : strlen(rule);
    if (len >= sizeof(addr))
        return 0;
    memcpy(addr, rule, len);
    addr[len] = '\0';
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (*end || b < 0 || b > 128)
            return 0;
        bits = (int)b;
    }
    int fam = inet_pton(AF_INET, addr, rb) == 1 ? AF_INET : inet_pton(AF_INET6, addr, rb) == 1 ? AF_INET6 : 0;
    if (fam != rfam)
        return 0;
    int max = fam == AF_INET ? 32 : 128;
    if (bits < 0 || bits > max)
        bits = max;
    int full = bits / 8, rest = bits % 8;
    if (memcmp(ra, rb, (size_t)full) != 0)
        return 0;
    if (rest) {
        unsigned char m = (unsigned char)(0xff << (8 - rest));
        return (ra[full] & m) == (rb[full] & m);
    }
    return 1;
}

static int status_allowed(request_st *r, const array *allow)
{
    const char *remote = r->con->dst_addr_buf.ptr;
    if (!remote)
        return 0;
    if (!allow)
        return addr_match(remote, "127.0.0.0/8") || addr_match(remote, "::1");
    for (uint32_t i = 0; i < allow->used; i++) {
        const buffer *v = &((const data_string *)allow->data[i])->value;
        if (v->ptr && addr_match(remote, v->ptr))
            return 1;
    }
    return 0;
}

static handler_t finish(request_st *r, int status, const char *ctype, const char *body, size_t len)
{
    r->http_status = status;
    if (body) {
        http_header_response_set(r, HTTP_HEADER_CONTENT_TYPE, CONST_STR_LEN("Content-Type"), ctype, strlen(ctype));
        http_header_response_set(r, HTTP_HEADER_CACHE_CONTROL, CONST_STR_LEN("Cache-Control"),
                                 CONST_STR_LEN("no-store"));
        http_chunk_append_mem(r, body, len);
    }
    r->resp_body_finished = 1;
    return HANDLER_FINISHED;
}

/* "format=prometheus" among the query's &-separated parameters. */
static int wants_prometheus(const buffer *query)
{
    static const char want[] = "format=prometheus";
    const char *q = query->ptr;
    size_t n = buffer_clen(query), k = sizeof(want) - 1;
    for (size_t i = 0; q && i + k <= n; i++)
        if ((i == 0 || q[i - 1] == '&') && memcmp(q + i, want, k) == 0 && (i + k == n || q[i + k] == '&'))
            return 1;
    return 0;
}

URIHANDLER_FUNC(mod_acme_uri_handler)
{
    plugin_data *const p = p_d;
    if (!p->shm || NULL != r->handler_module)
        return HANDLER_GO_ON;
    const buffer *path = &r->uri.path;
    size_t plen = sizeof(CHALLENGE_PREFIX) - 1;
    if (buffer_clen(path) > plen && memcmp(path->ptr, CHALLENGE_PREFIX, plen) == 0) {
        /* http-01, from memory; unknown tokens are 404. */
        char ka[1024];
        size_t n = macme_shm_get_token(p->shm, path->ptr + plen, ka, sizeof(ka));
        if (!n) {
            /* Said at debug level only: scanners ask for tokens too. In a
             * cluster this is the line that shows a validator reaching a
             * host that did not have another host's answer. */
            if (p->mc && p->mc->log_level >= ACME_LOG_DEBUG)
                log_error(r->conf.errh, MOD_ACME_SRC, __LINE__, "mod_acme: debug: http-01 token %s: not known here (404)",
                          path->ptr + plen);
            return finish(r, 404, NULL, NULL, 0);
        }
        return finish(r, 200, "text/plain", ka, n);
    }
    patch_config(r, p);
    if (p->conf.status_url && buffer_is_equal(path, p->conf.status_url)) {
        if (!status_allowed(r, p->conf.status_allow))
            return finish(r, 403, NULL, NULL, 0);
        if (wants_prometheus(&r->uri.query)) {
            /* Before the engine's first step there is nothing to report:
             * an empty exposition is a valid one. */
            char *m = macme_shm_get_metrics(p->shm);
            handler_t h = finish(r, 200, "text/plain; version=0.0.4; charset=utf-8", m ? m : "", m ? strlen(m) : 0);
            free(m);
            return h;
        }
        char *s = macme_shm_get_status(p->shm);
        static const char none[] = "{\"pid\":null,\"account\":\"starting\",\"certificates\":[]}";
        handler_t h = finish(r, 200, "application/json", s ? s : none, s ? strlen(s) : sizeof(none) - 1);
        free(s);
        return h;
    }
    return HANDLER_GO_ON;
}

__attribute_cold__ __attribute__((visibility("default")))
int mod_acme_plugin_init(plugin *p);
int mod_acme_plugin_init(plugin *p)
{
    p->version = LIGHTTPD_VERSION_ID;
    p->name = "acme";
    p->init = mod_acme_init;
    p->priv_defaults = mod_acme_priv_defaults;
    p->set_defaults = mod_acme_set_defaults;
    p->worker_init = mod_acme_worker_init;
    p->handle_trigger = mod_acme_trigger;
    p->handle_uri_clean = mod_acme_uri_handler;
    p->cleanup = mod_acme_free;
    return 0;
}
