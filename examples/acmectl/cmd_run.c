/* acmectl run CONFIG: the daemon. Loads the modules and starts the
 * built-in responders the configuration names, registers the account,
 * hands every [certificate] to libacme's engine and drives it with a
 * poll() loop until SIGTERM or SIGINT. SIGHUP reads the configuration
 * again and restarts everything with it (a configuration that does not
 * parse is refused and the running one kept); SIGUSR1 prints the engine's
 * status on stderr; status-file gets it after every change.
 *
 * Threads: the loop runs the engine; the built-in responders run on their
 * own threads (they must answer the CA's validators whatever the loop is
 * doing: registering the account at start, or a module's synchronous
 * install); every module is loaded on the one client that places the
 * orders and handed to the engine (acme_module_set_engine): its hooks run
 * on libacme's module thread, the outcomes come back through the
 * module's descriptor in the loop's poll set (run_route.c);
 * metrics-listen answers on a thread of its own from the copy the loop
 * makes after each step (run_metrics.c).
 * Signals are blocked in every thread and read from a signalfd in the
 * loop. */
#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "acmectl.h"
#include "hostclient.h"

typedef struct rund {
    const acmectl_opts *o;
    run_config *cf;
    int sigfd;
    acme_client *c;
    modhost **mods;
    size_t mod_count;
    acme_responder *http, *alpn;
    router *rt;
    cluster *cl;                   /* storage = etcd; NULL otherwise */
    acme_engine *e;
    run_metrics *metrics;          /* metrics-listen / metrics-file, or NULL */
    acme_ca_list *cas;             /* [ca NAME] sections: CA failover; owns c */
    char *status;                  /* what status-file holds */
    acme_challenge_type (*types)[MAX_CHALLENGES];  /* per certificate: what is answered here */
    size_t *type_count;
    run_config *next;              /* SIGHUP: the configuration to restart with */
    int stop;
} rund;

enum { ACT_NONE, ACT_STOP, ACT_RELOAD };

static void config_error(const char *msg, int code)
{
    /* msg may quote a module's reason (a DNS or HTTP answer): escaped. */
    print_line(stderr, "acmectl: error: %s", msg);
    print_line(stderr, "acmectl: exit status %d (%s)", code, exit_code_name(code));
    fflush(stderr);
}

/* ---- signals --------------------------------------------------------------- */

static void print_status(rund *d)
{
    const char *s = d->e ? acme_engine_status_json(d->e) : "[]";
    progress(ACME_LOG_INFO, "status (SIGUSR1) follows");
    fprintf(stderr, "%s\n", s);
    fflush(stderr);
}

static int handle_signals(rund *d)
{
    struct signalfd_siginfo si;
    int act = ACT_NONE;
    while (read(d->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGTERM || sig == SIGINT) {
            progress(ACME_LOG_INFO, "%s: shutting down", strsignal(sig));
            act = ACT_STOP;
        } else if (sig == SIGUSR1) {
            print_status(d);
        } else if (sig == SIGHUP && act == ACT_NONE) {
            char err[700];
            run_config *n = NULL;
            if (runconf_load(d->cf->file, &n, err, sizeof(err)) != 0) {
                progress(ACME_LOG_ERROR, "SIGHUP: %s; keeping the running configuration", err);
                continue;
            }
            progress(ACME_LOG_INFO, "SIGHUP: %s read; restarting with it", d->cf->file);
            runconf_free(d->next);
            d->next = n;
            act = ACT_RELOAD;
        }
    }
    if (act == ACT_STOP) {
        runconf_free(d->next);
        d->next = NULL;
    }
    return act;
}

/* Sleep ms, or less if a signal asks for something. */
static int wait_signals(rund *d, int ms)
{
    struct pollfd p = {d->sigfd, POLLIN, 0};
    if (poll(&p, 1, ms) > 0)
        return handle_signals(d);
    return ACT_NONE;
}

/* ---- status-file ----------------------------------------------------------- */

static int status_write(rund *d, int quiet_errors)
{
    const char *path = d->cf->status_file;
    if (!path)
        return 0;
    const char *s = acme_engine_status_json(d->e);
    if (d->cl)
        s = cluster_status(d->cl, s);
    if (!s || (d->status && !strcmp(d->status, s)))
        return 0;
    char *dcopy = strdup(path), *bcopy = strdup(path), *text = NULL;
    int rc = -1;
    if (dcopy && bcopy && asprintf(&text, "%s\n", s) >= 0)
        rc = file_write_atomic(dirname(dcopy), basename(bcopy), text, strlen(text), 0644);
    int e = errno;
    if (rc == 0) {
        free(d->status);
        d->status = strdup(s);
    } else if (!quiet_errors) {
        progress(ACME_LOG_WARNING, "cannot write status-file %s: %s", path, strerror(e));
    }
    free(dcopy);
    free(bcopy);
    free(text);
    errno = e;
    return rc;
}

/* ---- set-up ---------------------------------------------------------------- */

static int lock_state_dir(const char *dir)
{
    /* The lock lives as long as the process: a restart (SIGHUP) with the
     * same directory keeps it. */
    static char *locked;
    char err[600];
    if (locked && !strcmp(locked, dir))
        return EXIT_OK;
    if (mkdir_p(dir, 0700) != 0) {
        bprintf(err, sizeof(err), "cannot create the state directory %s: %s", dir, strerror(errno));
        config_error(err, EXIT_STORAGE);
        return EXIT_STORAGE;
    }
    if (state_dir_lock(dir, err, sizeof(err)) != 0) {
        config_error(err, EXIT_STORAGE);
        return EXIT_STORAGE;
    }
    free(locked);
    locked = strdup(dir);
    return EXIT_OK;
}

static int load_modules(rund *d)
{
    run_config *cf = d->cf;
    d->mods = calloc(cf->module_count ? cf->module_count : 1, sizeof(modhost *));
    if (!d->mods)
        return EXIT_INTERNAL;
    /* The modules live on the one client, which has its log already
     * (hostclient_open in setup); the rest of the host table follows
     * once the router exists. */
    for (size_t i = 0; i < cf->module_count; i++) {
        run_module *m = &cf->modules[i];
        char *text = runconf_module_text(m), err[700];
        if (!text)
            return EXIT_INTERNAL;
        modhost_params mp = {m->label, m->path, text, d->c};
        int rc = modhost_load(&mp, &d->mods[i], err, sizeof(err));
        explicit_bzero(text, strlen(text)); /* the module's secrets */
        free(text);
        if (rc != 0) {
            char msg[1000];
            bprintf(msg, sizeof(msg), "%s:%d: [module %s]: %s", cf->file, runconf_module_line(m, err), m->label, err);
            config_error(msg, EXIT_USAGE);
            return EXIT_USAGE;
        }
        d->mod_count++;
        char types[96] = "";
        static const acme_challenge_type all[] = {ACME_CHALLENGE_HTTP_01, ACME_CHALLENGE_TLS_ALPN_01,
                                                  ACME_CHALLENGE_DNS_01, ACME_CHALLENGE_DNS_PERSIST_01,
                                                  ACME_CHALLENGE_DNS_ACCOUNT_01};
        for (size_t t = 0; t < sizeof(all) / sizeof(all[0]); t++)
            if (modhost_handles(d->mods[i], all[t])) {
                size_t used = strlen(types);
                bprintf(types + used, sizeof(types) - used, "%s%s", used ? ", " : "", acme_challenge_type_name(all[t]));
            }
        progress(ACME_LOG_INFO, "module %s (%s): answers %s%s", m->label, modhost_name(d->mods[i]),
                 types[0] ? types : "no challenges", modhost_installs(d->mods[i]) ? "; installs certificates" : "");
    }
    return EXIT_OK;
}

static void start_responders(rund *d)
{
    acmectl_opts bo;
    memset(&bo, 0, sizeof(bo));
    bo.bind = d->cf->bind;
    bo.http_port = d->cf->http_port;
    bo.tls_port = d->cf->tls_port;
    /* A port that cannot be bound drops the type with a warning (builtin.c).
     * With etcd the responders answer only once the node has registered
     * and loaded what other nodes published (serve_responders): a
     * validation routed here meanwhile waits in the kernel's queue instead
     * of finding no answer (cluster_run3 saw two orders killed so, nodes 2
     * and 3 starting while node 1 validated). */
    int serve = !d->cf->etcd.on;
    if (bo.http_port)
        (void)builtin_listen(&bo, ACME_CHALLENGE_HTTP_01, serve, &d->http);
    if (bo.tls_port)
        (void)builtin_listen(&bo, ACME_CHALLENGE_TLS_ALPN_01, serve, &d->alpn);
}

static void serve_responders(rund *d)
{
    acme_responder *rs[2] = {d->http, d->alpn};
    for (int i = 0; i < 2; i++)
        if (rs[i] && acme_responder_start_thread(rs[i]) != ACME_OK)
            progress(ACME_LOG_WARNING, "the built-in responder on port %u cannot start its thread",
                     acme_responder_port(rs[i]));
}

/* The types of list that something here answers; the others are dropped
 * with a warning when the configuration asked for them. */
static size_t servable(rund *d, const acme_challenge_type *list, size_t n, int explicit_list, const char *who,
                       acme_challenge_type *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (router_serves(d->rt, list[i])) {
            out[k++] = list[i];
            continue;
        }
        const char *t = acme_challenge_type_name(list[i]);
        const char *how = list[i] == ACME_CHALLENGE_HTTP_01 ? "no module answers it and http-port is not set or "
                                                              "cannot be bound"
                          : list[i] == ACME_CHALLENGE_TLS_ALPN_01 ? "no module answers it and tls-port is not set or "
                                                                    "cannot be bound"
                                                                  : "no module answers it";
        progress(explicit_list ? ACME_LOG_WARNING : ACME_LOG_INFO, "%s: %s dropped from the challenge list: %s", who,
                 t, how);
    }
    return k;
}

/* Which types each certificate can use here; a certificate left with none
 * (or a wildcard without dns-01) is a configuration error, found before
 * anything is sent. */
static int plan(rund *d)
{
    run_config *cf = d->cf;
    static const acme_challenge_type defaults[] = {ACME_CHALLENGE_HTTP_01, ACME_CHALLENGE_TLS_ALPN_01,
                                                   ACME_CHALLENGE_DNS_01};
    acme_challenge_type glist[MAX_CHALLENGES] = {ACME_CHALLENGE_NONE};
    char who[300], msg[800];
    bprintf(who, sizeof(who), "%s: [global]", cf->file);
    size_t gn = cf->challenge_count ? servable(d, cf->challenges, cf->challenge_count, 1, who, glist)
                                    : servable(d, defaults, 3, 0, who, glist);
    d->types = calloc(cf->cert_count, sizeof(*d->types));
    d->type_count = calloc(cf->cert_count, sizeof(size_t));
    if (!d->types || !d->type_count)
        return EXIT_INTERNAL;
    for (size_t i = 0; i < cf->cert_count; i++) {
        run_cert *rc = &cf->certs[i];
        bprintf(who, sizeof(who), "%s:%d: [certificate%s%s]", cf->file, rc->line, rc->label ? " " : "",
                rc->label ? rc->label : "");
        acme_challenge_type *types = d->types[i];
        size_t n = gn;
        if (rc->challenge_count)
            n = servable(d, rc->challenges, rc->challenge_count, 1, who, types);
        else
            memcpy(types, glist, sizeof(glist));
        d->type_count[i] = n;
        int dns = 0;
        for (size_t k = 0; k < n; k++)
            dns |= types[k] == ACME_CHALLENGE_DNS_01 || types[k] == ACME_CHALLENGE_DNS_ACCOUNT_01 ||
                   types[k] == ACME_CHALLENGE_DNS_PERSIST_01;
        if (n == 0 || (rc->wildcard && !dns)) {
            bprintf(msg, sizeof(msg), "%s: %s", who,
                    n == 0 ? "challenge: none of its challenge types can be answered here (see the warnings above): "
                             "set http-port or tls-port, or add a [module] that answers one"
                           : "names: a wildcard needs dns-01 (or another DNS type), and nothing here answers dns-01 "
                             "or dns-account-01: add a [module] for it (doc/dns01.md), or list dns-persist-01");
            config_error(msg, EXIT_CHALLENGE);
            return EXIT_CHALLENGE;
        }
    }
    return EXIT_OK;
}

static int manage_all(rund *d)
{
    run_config *cf = d->cf;
    for (size_t i = 0; i < cf->cert_count; i++) {
        run_cert *rc = &cf->certs[i];
        acme_issue_params ip;
        memset(&ip, 0, sizeof(ip));
        ip.size = sizeof(ip);
        ip.names = (const char *const *)rc->names;
        ip.name_count = rc->name_count;
        ip.key_type = rc->key_type_set ? rc->key_type : cf->key_type;
        ip.challenges = d->types[i];
        ip.challenge_count = d->type_count[i];
        ip.preferred_chain = rc->preferred_chain ? rc->preferred_chain : cf->preferred_chain;
        ip.profile = rc->profile ? rc->profile : cf->profile;
        ip.cert_id = rc->id;
        int lrc = acme_engine_manage(d->e, &ip);
        if (lrc != ACME_OK) {
            int code = exit_code_for(lrc, d->c, "issue");
            if (lrc == ACME_E_UNSUPPORTED && ip.profile && strstr(acme_client_last_error(d->c), "profile"))
                code = EXIT_CA_REFUSED;
            char msg[400];
            bprintf(msg, sizeof(msg), "%s:%d: [certificate%s%s]: the engine refused it", cf->file, rc->line,
                    rc->label ? " " : "", rc->label ? rc->label : "");
            output_error(d->o, NULL, code, lrc, d->c, msg);
            return code;
        }
    }
    return EXIT_OK;
}

/* Register (or find) the account. A CA that cannot be reached is tried
 * again with back-off: a daemon outlives outages. */
static int account(rund *d, int *act)
{
    run_config *cf = d->cf;
    acme_account_params ap = hostclient_account_params((const char *const *)cf->contacts, cf->contact_count,
                                                       cf->agree_tos, cf->eab_kid, cf->eab_hmac);
    unsigned wait_s = 5;
    /* With [ca] sections the engine finds or registers the account at each
     * CA as its first step there: the first CA may be the one that is down. */
    if (d->cas)
        return EXIT_OK;
    for (;;) {
        int rc = acme_account_register(d->c, &ap);
        if (rc == ACME_OK) {
            progress(ACME_LOG_INFO, "account %s", acme_account_url(d->c));
            return EXIT_OK;
        }
        int code = exit_code_for(rc, d->c, "account");
        if (code != EXIT_NETWORK) {
            output_error(d->o, NULL, code, rc, d->c, NULL);
            return code;
        }
        progress(ACME_LOG_WARNING, "the CA cannot be reached (%s); trying again in %u s",
                 acme_client_last_error(d->c), wait_s);
        if ((*act = wait_signals(d, (int)wait_s * 1000)) != ACT_NONE)
            return EXIT_OK;
        wait_s = wait_s * 2 > 300 ? 300 : wait_s * 2;
    }
}

/* Bound and writable before anything is sent, like status-file. */
static int metrics_start(rund *d)
{
    run_config *cf = d->cf;
    char err[700], msg[800];
    if (!cf->metrics_listen && !cf->metrics_file)
        return EXIT_OK;
    if (!(d->metrics = run_metrics_new(cf->metrics_listen, cf->metrics_file, err, sizeof(err)))) {
        bprintf(msg, sizeof(msg), "%s: %s", cf->file, err);
        config_error(msg, EXIT_USAGE);
        return EXIT_USAGE;
    }
    if (run_metrics_update(d->metrics, d->e, 1) != 0) {
        bprintf(msg, sizeof(msg), "%s: metrics-file %s: %s", cf->file, cf->metrics_file, strerror(errno));
        config_error(msg, EXIT_STORAGE);
        return EXIT_STORAGE;
    }
    return EXIT_OK;
}

/* [ca NAME] sections: [global]'s directory (as "default") and then each
 * section's, in file order, as a CA list the engine fails over along. */
static int make_ca_list(rund *d, const acme_host_callbacks *cb, acme_log_level level)
{
    run_config *cf = d->cf;
    char err[700];
    acme_account_params ap;
    memset(&ap, 0, sizeof(ap));
    ap.size = sizeof(ap);
    ap.contacts = (const char *const *)cf->contacts;
    ap.contact_count = cf->contact_count;
    ap.agree_tos = cf->agree_tos;
    if (acme_ca_list_new(&ap, &d->cas) != ACME_OK)
        return EXIT_INTERNAL;
    size_t from = 0;
    acme_ca_params p;
    memset(&p, 0, sizeof(p));
    p.size = sizeof(p);
    if (cf->directory) {
        p.name = "default";
        p.eab_kid = cf->eab_kid;
        p.eab_hmac_key = cf->eab_hmac;
    } else {
        p.name = cf->cas[0].label;
        p.eab_kid = cf->cas[0].eab_kid;
        p.eab_hmac_key = cf->cas[0].eab_hmac;
        if (cf->cas[0].ca_file)
            acme_client_set_ca_file(d->c, cf->cas[0].ca_file);
        from = 1;
    }
    acme_client *c = d->c;
    for (size_t i = from;; i++) {
        /* storage = etcd: every CA's client on the cluster's store (one
         * prefix for all: the first CA's client publishes and hears every
         * CA's answers), each read back by the cluster poll. */
        if (d->cl && cluster_poll_client(d->cl, c) != ACME_OK) {
            if (c != d->c)
                acme_client_free(c);
            return EXIT_INTERNAL;
        }
        if (acme_ca_list_add(d->cas, &p, c) != ACME_OK) {
            if (c == d->c)
                d->c = NULL; /* the list freed it */
            bprintf(err, sizeof(err), "%s: %s", cf->file, acme_ca_list_last_error(d->cas));
            config_error(err, EXIT_USAGE);
            return EXIT_USAGE;
        }
        if (i >= cf->ca_count)
            break;
        run_ca *k = &cf->cas[i];
        /* Set up like the first CA's client (hostclient.c), with its own trust. */
        hostclient_cfg hc = {
            .directory = k->directory, .state_dir = cf->state_dir, .ca_file = k->ca_file ? k->ca_file : cf->ca_file,
            .account_key_type = cf->account_key_type, .log_level = level, .host = cb,
            .host_ud = d->cl ? (void *)d->cl : (void *)d->rt,
        };
        c = NULL;
        int rc = hostclient_open(&hc, &c);
        if (rc == ACME_OK && cf->etcd.on)
            rc = cluster_storage(c, &cf->etcd);
        if (rc != ACME_OK) {
            bprintf(err, sizeof(err), "%s: [ca %s] (line %d): %s", cf->file, k->label, k->line,
                    c && *acme_client_last_error(c) ? acme_client_last_error(c) : acme_strerror(rc));
            acme_client_free(c);
            config_error(err, rc == ACME_E_NOMEM ? EXIT_INTERNAL : EXIT_USAGE);
            return rc == ACME_E_NOMEM ? EXIT_INTERNAL : EXIT_USAGE;
        }
        memset(&p, 0, sizeof(p));
        p.size = sizeof(p);
        p.name = k->label;
        p.eab_kid = k->eab_kid;
        p.eab_hmac_key = k->eab_hmac;
    }
    progress(ACME_LOG_INFO, "%zu CAs in the configuration's order; a certificate moves to the next when its CA "
             "is down, rate-limits or refuses its names", acme_ca_list_count(d->cas));
    return EXIT_OK;
}

static int setup(rund *d, int *act)
{
    run_config *cf = d->cf;
    const acmectl_opts *o = d->o;
    int verbosity = o->verbosity_given ? o->verbosity : cf->verbosity_set ? cf->verbosity : 0;
    progress_set_verbosity(verbosity);
    acme_log_level level = verbosity >= 1 ? ACME_LOG_DEBUG : ACME_LOG_INFO;
    char err[700];
    if (!cf->state_dir && !(cf->state_dir = state_dir_default())) {
        config_error("no state directory: give state-dir in [global] (neither root nor $HOME set)", EXIT_USAGE);
        return EXIT_USAGE;
    }
    if (o->status_file) {
        free(cf->status_file);
        cf->status_file = strdup(o->status_file);
    }
    int code = lock_state_dir(cf->state_dir);
    if (code != EXIT_OK)
        return code;
    if (cf->out_dir && (mkdir_p(cf->out_dir, 0755) != 0 || access(cf->out_dir, W_OK | X_OK) != 0)) {
        bprintf(err, sizeof(err), "%s: out-dir %s: %s", cf->file, cf->out_dir, strerror(errno));
        config_error(err, EXIT_STORAGE);
        return EXIT_STORAGE;
    }
    /* modules/common/hostclient.c: the set-up issue/renew and mod_acme
     * share. The log first: the modules, loaded on this client, log
     * through it; the rest of the host table comes once the router
     * exists (it needs the modules). */
    acme_host_callbacks logcb;
    memset(&logcb, 0, sizeof(logcb));
    logcb.size = sizeof(logcb);
    logcb.log = progress_lib_log;
    const char *first = cf->directory ? cf->directory : cf->cas[0].directory;
    hostclient_cfg hc = {
        .directory = first, .state_dir = cf->state_dir, .ca_file = cf->ca_file,
        .account_key_type = cf->account_key_type, .log_level = level, .host = &logcb,
    };
    int rc = hostclient_open(&hc, &d->c);
    if (rc != ACME_OK && !d->c) {
        bprintf(err, sizeof(err), "%s: directory %s: %s", cf->file, first, acme_strerror(rc));
        config_error(err, rc == ACME_E_NOMEM ? EXIT_INTERNAL : EXIT_USAGE);
        return rc == ACME_E_NOMEM ? EXIT_INTERNAL : EXIT_USAGE;
    }
    if (rc != ACME_OK) {
        output_error(o, NULL, EXIT_STORAGE, rc, d->c, NULL);
        return EXIT_STORAGE;
    }
    if ((code = load_modules(d)) != EXIT_OK)
        return code;
    start_responders(d);
    router_params rp = {d->mods, d->mod_count, d->http, d->alpn, cf->out_dir};
    if (!(d->rt = router_new(&rp)))
        return EXIT_INTERNAL;
    acme_host_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.size = sizeof(cb);
    cb.publish = router_publish;
    cb.unpublish = router_unpublish;
    cb.install = router_install;
    cb.log = progress_lib_log;
    if (cf->etcd.on) {
        /* The state directory stays this host's (its lock); the data is
         * the cluster's: the etcd storage replaces the file storage
         * hostclient_open set. */
        if ((rc = cluster_storage(d->c, &cf->etcd)) != ACME_OK ||
            !(d->cl = cluster_new(d->c, d->rt, d->http, d->alpn, &cf->etcd))) {
            output_error(o, NULL, EXIT_STORAGE, rc ? rc : ACME_E_NOMEM, d->c, NULL);
            return EXIT_STORAGE;
        }
        cb.publish = cluster_publish;
        cb.unpublish = cluster_unpublish;
        cb.install = cluster_install;
        acme_client_set_host(d->c, &cb, d->cl);
        serve_responders(d);
    } else {
        acme_client_set_host(d->c, &cb, d->rt);
    }

    acme_engine_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.size = sizeof(eo);
    eo.max_age_s = cf->max_age;
    eo.retry_min_s = cf->retry_min;
    eo.retry_max_s = cf->retry_max;
    eo.max_orders = cf->max_orders;
    /* The engine before the account: a certificate it cannot serve is a
     * configuration error worth reporting before anything is sent. */
    if (cf->ca_count && (code = make_ca_list(d, &cb, level)) != EXIT_OK)
        return code;
    if ((rc = d->cas ? acme_ca_list_engine_new(d->cas, &eo, &d->e) : acme_engine_new(d->c, &eo, &d->e)) != ACME_OK) {
        output_error(o, NULL, EXIT_INTERNAL, rc, d->c, NULL);
        return EXIT_INTERNAL;
    }
    router_bind_engine(d->rt, d->e);
    /* One driver: libacme's module thread runs each module's hooks and
     * reports to this engine (the outcome with the module's sentence). */
    for (size_t i = 0; i < d->mod_count; i++)
        if (modhost_set_engine(d->mods[i], d->e, err, sizeof(err)) != 0) {
            char msg[800];
            bprintf(msg, sizeof(msg), "[module %s]: %s", modhost_label(d->mods[i]), err);
            config_error(msg, EXIT_INTERNAL);
            return EXIT_INTERNAL;
        }
    if (d->cl)
        cluster_bind_engine(d->cl, d->e);
    if ((code = plan(d)) != EXIT_OK)
        return code;
    /* The status file must be writable before anything is sent. */
    if (status_write(d, 1) != 0) {
        bprintf(err, sizeof(err), "%s: status-file %s: %s", cf->file, cf->status_file, strerror(errno));
        config_error(err, EXIT_STORAGE);
        return EXIT_STORAGE;
    }
    if ((code = metrics_start(d)) != EXIT_OK)
        return code;
    if ((code = account(d, act)) != EXIT_OK || *act != ACT_NONE)
        return code;
    if ((code = manage_all(d)) != EXIT_OK)
        return code;
    status_write(d, 0);
    return EXIT_OK;
}

static void teardown(rund *d)
{
    if (d->rt)
        router_shutdown(d->rt);
    /* In-flight orders stay on disk (order.json): the next start resumes them. */
    if (d->e)
        progress(ACME_LOG_INFO, "longest engine step: %.1f ms",
                 (double)acme_engine_longest_step_us(d->e) / 1000.0);
    run_metrics_free(d->metrics);
    acme_engine_free(d->e);
    for (size_t i = 0; i < d->mod_count; i++)
        modhost_free(d->mods[i]);
    free(d->mods);
    /* The client first: its etcd storage feeds the responders from a
     * thread of its own. */
    if (d->cas)
        acme_ca_list_free(d->cas); /* d->c with it */
    else
        acme_client_free(d->c);
    cluster_free(d->cl);
    acme_responder_free(d->http);
    acme_responder_free(d->alpn);
    router_free(d->rt);
    free(d->status);
    free(d->types);
    free(d->type_count);
}

/* ---- the loop -------------------------------------------------------------- */

static int loop(rund *d)
{
    size_t cap = 64;
    struct pollfd *fds = malloc(cap * sizeof(*fds));
    if (!fds)
        return ACT_STOP;
    progress(ACME_LOG_INFO, "running (pid %ld)", (long)getpid());
    for (;;) {
        /* [0] signals, then one per module (its finished calls), then the
         * engine's. */
        size_t head = 1 + d->mod_count, n = 0;
        if (cap < head + 16) {
            struct pollfd *g = realloc(fds, (head + 16) * sizeof(*fds));
            if (!g) {
                free(fds);
                return ACT_STOP;
            }
            fds = g;
            cap = head + 16;
        }
        fds[0] = (struct pollfd){d->sigfd, POLLIN, 0};
        head = 1 + (size_t)router_poll_fds(d->rt, fds + 1, cap - 1);
        while (acme_engine_fds(d->e, fds + head, cap - head, &n) == ACME_E_INVALID_ARG) {
            struct pollfd *g = realloc(fds, (n + head + 16) * sizeof(*fds));
            if (!g) {
                free(fds);
                return ACT_STOP;
            }
            fds = g;
            cap = n + head + 16;
        }
        int timeout = acme_engine_timeout_ms(d->e);
        if (d->cl) {
            /* Also wake for the cluster poll, and at least once a second
             * so the status file follows etcd's health. */
            int ct = cluster_timeout_ms(d->cl);
            if (ct > 1000)
                ct = 1000;
            if (timeout < 0 || ct < timeout)
                timeout = ct;
        }
        if (poll(fds, n + head, timeout) < 0 && errno != EINTR) {
            progress(ACME_LOG_ERROR, "poll: %s", strerror(errno));
            free(fds);
            return ACT_STOP;
        }
        if (fds[0].revents) {
            int act = handle_signals(d);
            if (act != ACT_NONE) {
                free(fds);
                return act;
            }
        }
        router_collect(d->rt);
        acme_engine_step(d->e);
        router_tick(d->rt);
        if (d->cl)
            cluster_tick(d->cl);
        status_write(d, 0);
        run_metrics_update(d->metrics, d->e, 0);
    }
}

/* One life of the daemon with one configuration. Returns an exit code;
 * *started says whether it got as far as the loop. */
static int run_once(rund *d, int *started)
{
    *started = 0;
    int act = ACT_NONE;
    int code = setup(d, &act);
    if (code == EXIT_OK && act == ACT_NONE) {
        *started = 1;
        act = loop(d);
    }
    teardown(d);
    if (act == ACT_STOP)
        progress(ACME_LOG_INFO, "stopped");
    return code;
}

int cmd_run(const acmectl_opts *o)
{
    if (o->arg_count != 1) {
        config_error("run needs one argument: the configuration file (acmectl run /etc/acmectl/run.conf)", EXIT_USAGE);
        return EXIT_USAGE;
    }
    /* Before any thread exists, so that every thread inherits it. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0) {
        config_error("signalfd failed", EXIT_INTERNAL);
        return EXIT_INTERNAL;
    }
    char err[700];
    run_config *cf = NULL, *prev = NULL;
    if (runconf_load(o->args[0], &cf, err, sizeof(err)) != 0) {
        config_error(err, EXIT_USAGE);
        close(sigfd);
        return EXIT_USAGE;
    }
    int code;
    for (;;) {
        rund d;
        memset(&d, 0, sizeof(d));
        d.o = o;
        d.cf = cf;
        d.sigfd = sigfd;
        int started;
        code = run_once(&d, &started);
        if (d.next) {
            runconf_free(prev);
            prev = cf;
            cf = d.next;
            continue;
        }
        if (!started && code != EXIT_OK && prev) {
            progress(ACME_LOG_ERROR, "the configuration read on SIGHUP could not be started (exit status %d); "
                     "going back to the previous one", code);
            runconf_free(cf);
            cf = prev;
            prev = NULL;
            continue;
        }
        break;
    }
    runconf_free(cf);
    runconf_free(prev);
    close(sigfd);
    return code;
}
