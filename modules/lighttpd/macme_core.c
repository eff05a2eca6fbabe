/* mod_acme: the driver around libacme's engine.
 *
 * - Election: with server.max-worker = N every worker loads the module;
 *   the one that holds an flock() on <state-dir>/mod_acme.lock runs the
 *   engine, the others only answer http-01 and the status page from the
 *   shared table. If the leader dies, the next worker's tick takes over.
 *   The lock file holds the leader's pid, so that after a graceful restart
 *   the new generation leads at once even while the forked-off old one
 *   still shares the flock (see held_by_our_past).
 * - Driving: one descriptor goes into lighttpd's event loop: an epoll set
 *   holding a timerfd (armed to acme_engine_timeout_ms) and, one-shot,
 *   whatever acme_engine_fds lists.
 *   Readable -> one acme_engine_step, then the set is synced again. Nothing
 *   here ever waits: lighttpd's loop never blocks on ACME work.
 * - The account: an engine step like the orders (acme_engine_set_account):
 *   found or registered without blocking, retried with the engine's
 *   back-off; no second client, no thread. The certificates are declared
 *   at once and wait for it.
 * - dns-01 (acme.dns-module): the module is loaded on the engine's client
 *   and handed to the engine (acme_module_set_engine); its publish, wait
 *   and cleanup run on the module's own thread, and its descriptor sits in
 *   the same epoll set: readable -> acme_module_dispatch, then a step.
 * - Installing: new files only when they differ from what is on disk;
 *   then one graceful restart, once no order is in flight (or after 30 s). */
#include "macme.h"
#include "hostclient.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define RESTART_BATCH_MS 30000u

struct macme_core {
    const macme_conf *conf;
    macme_shm *shm;
    macme_core_host host;
    pid_t pid;                 /* the process that made it */

    int lock_fd;               /* held flock: we lead */
    int leader;
    int epfd, tfd;

    acme_client *c;
    acme_engine *e;
    acme_ca_list *cas;         /* acme.fallback: the CAs in order; owns c */
    int managed;
    acme_module *dns;          /* acme.dns-module, on the engine's client */
    macme_cluster *cluster;    /* acme.storage = "etcd": answers and certificates of other hosts */
    macme_installer *inst;     /* the leader's file writer (macme_install.c) */

    char account_state[32];
    char account_error[MACME_ERRLEN];

    /* descriptors currently in the epoll set (besides tfd) */
    int *watched;
    size_t watched_n, watched_cap;
    struct pollfd *fds;
    size_t fds_cap;
    unsigned zero_timeouts;

    int restart_pending;
    uint64_t restart_since_ms;
    int restart_sent;
    unsigned installs, restarts;

    /* Every part of a tick, measured (macme_tick.c): a tick that waited
     * (a blocking syscall, a contended lock) is counted with the part it
     * waited in; wall time beyond CPU without a wait is the scheduler. */
    macme_tick_stats tick;
    char *last_status;
    char *last_metrics;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fmt_time(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    snprintf(out, cap, "%lld", (long long)t);
    if (gmtime_r(&tt, &tm))
        strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void klog(macme_core *k, acme_log_level level, const char *fmt, ...)
{
    if (!k->host.log || level > k->conf->log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    k->host.log(k->host.ud, level, line);
}

/* ---- the host callbacks libacme calls (from inside a step) ---- */

static int cb_unpublish(void *ud, const acme_challenge *ch);

/* In a cluster the answer also goes to the other hosts; the engine hears
 * once they all serve it (macme_cluster_tick). */
static int share(macme_core *k, const acme_challenge *ch)
{
    if (!k->cluster)
        return ACME_OK;
    int rc = macme_cluster_publish(k->cluster, ch);
    if (rc != ACME_OK && rc != ACME_E_PENDING)
        cb_unpublish(k, ch);
    return rc;
}

static int cb_publish(void *ud, const acme_challenge *ch)
{
    macme_core *k = ud;
    char err[MACME_ERRLEN] = "";
    switch (acme_challenge_get_type(ch)) {
    case ACME_CHALLENGE_HTTP_01: {
        int rc = macme_shm_put_token(k->shm, acme_challenge_token(ch), acme_challenge_key_authorization(ch));
        if (rc) {
            klog(k, ACME_LOG_ERROR, "http-01 for %s: the challenge table is full", acme_challenge_identifier(ch));
            return rc;
        }
        klog(k, ACME_LOG_INFO, "published http-01 for %s (token %s)", acme_challenge_identifier(ch),
             acme_challenge_token(ch));
        return share(k, ch);
    }
    case ACME_CHALLENGE_TLS_ALPN_01:
        if (macme_alpn_publish(k->conf->alpn_dirs, k->conf->alpn_dir_count, ch, err, sizeof(err))) {
            klog(k, ACME_LOG_ERROR, "%s", err);
            return ACME_E_STORAGE;
        }
        klog(k, ACME_LOG_INFO, "published tls-alpn-01 for %s in %s", acme_challenge_identifier(ch),
             k->conf->alpn_dirs[0]);
        return share(k, ch);
    case ACME_CHALLENGE_DNS_PERSIST_01:
        /* The owner created _validation-persist.<name> once; a module
         * that answers the type checks it (or creates it once). */
        if (!k->dns || !acme_module_handles(k->dns, ACME_CHALLENGE_DNS_PERSIST_01)) {
            klog(k, ACME_LOG_INFO, "dns-persist-01 for %s: relying on the TXT record at %s",
                 acme_challenge_identifier(ch), acme_challenge_dns_name(ch));
            return ACME_OK;
        }
        return acme_module_publish(k->dns, ch);
    case ACME_CHALLENGE_DNS_01:
    case ACME_CHALLENGE_DNS_ACCOUNT_01:
        /* The module's thread sends the record and waits for every
         * authoritative server; this answers ACME_E_PENDING at once and
         * macme_core_ready hands the outcome to the engine. */
        if (k->dns && acme_module_handles(k->dns, acme_challenge_get_type(ch)))
            return acme_module_publish(k->dns, ch);
        __attribute__((fallthrough));
    default:
        klog(k, ACME_LOG_ERROR, "%s for %s: mod_acme answers http-01, tls-alpn-01, dns-persist-01%s",
             acme_challenge_type_name(acme_challenge_get_type(ch)), acme_challenge_identifier(ch),
             k->conf->dns_module ? " (dns-01, dns-account-01: the DNS module did not load or does not answer it)"
                                 : " and, with acme.dns-module, dns-01 and dns-account-01");
        return ACME_E_UNSUPPORTED;
    }
}

static int cb_unpublish(void *ud, const acme_challenge *ch)
{
    macme_core *k = ud;
    if (k->cluster)
        macme_cluster_unpublish(k->cluster, ch);
    switch (acme_challenge_get_type(ch)) {
    case ACME_CHALLENGE_HTTP_01:
        macme_shm_del_token(k->shm, acme_challenge_token(ch));
        return ACME_OK;
    case ACME_CHALLENGE_TLS_ALPN_01:
        return macme_alpn_unpublish(k->conf->alpn_dirs, k->conf->alpn_dir_count, ch) ? ACME_E_STORAGE : ACME_OK;
    case ACME_CHALLENGE_DNS_01:
    case ACME_CHALLENGE_DNS_ACCOUNT_01:
    case ACME_CHALLENGE_DNS_PERSIST_01:
        /* Only what the module published: a persist record relied on is
         * the owner's and stays. */
        return k->dns && acme_module_handles(k->dns, acme_challenge_get_type(ch)) ? acme_module_unpublish(k->dns, ch)
                                                                                  : ACME_OK;
    default:
        return ACME_OK;
    }
}

/* What an install did, on the loop's thread: written by the installer
 * thread, or at once when there is none. */
static void install_done(void *ud, const macme_cert *mc, const void *tag, int64_t not_after, int rc, int changed,
                         const char *err)
{
    macme_core *k = ud;
    rc = rc ? ACME_E_STORAGE : ACME_OK;
    if (rc)
        klog(k, ACME_LOG_ERROR, "installing %s: %s", mc->id, err);
    else if (!changed)
        klog(k, ACME_LOG_DEBUG, "%s: %s already holds the current certificate", mc->id, mc->pemfile);
    else {
        k->installs++;
        char until[32];
        fmt_time(not_after, until, sizeof(until));
        klog(k, ACME_LOG_INFO,
             "installed a new certificate for %s in %s%s%s (valid until %s); a graceful restart follows", mc->id,
             mc->pemfile, mc->privkey ? " and " : "", mc->privkey ? mc->privkey : "", until);
        if (!k->restart_pending) {
            k->restart_pending = 1;
            k->restart_since_ms = mono_ms();
        }
    }
    if (tag && k->e)
        acme_engine_done(k->e, tag, rc);
}

/* tag: the engine's certificate when the engine waits for the outcome
 * (ACME_E_PENDING), NULL for a cluster host's certificate. */
static int install_cert(macme_core *k, const acme_certificate *cert, const void *tag)
{
    const macme_cert *mc = macme_conf_cert(k->conf, acme_certificate_id(cert));
    if (!mc)
        return ACME_OK; /* stored, but no longer configured */
    int64_t until = acme_certificate_not_after(cert);
    /* The fsyncs go to the installer's thread, not into this step. */
    if (k->inst && macme_installer_submit(k->inst, mc, acme_certificate_chain_pem(cert),
                                          acme_certificate_key_pem(cert), until, tag) == ACME_OK)
        return tag ? ACME_E_PENDING : ACME_OK;
    char err[MACME_ERRLEN] = "";
    int changed = 0;
    int rc = macme_install_files(mc, acme_certificate_chain_pem(cert), acme_certificate_key_pem(cert), &changed, err,
                                 sizeof(err));
    install_done(k, mc, NULL, until, rc, changed, err);
    return rc ? ACME_E_STORAGE : ACME_OK;
}

static int cb_install(void *ud, const acme_certificate *cert)
{
    return install_cert(ud, cert, cert);
}

/* Another cluster host's certificate (macme_cluster_tick): nobody waits. */
static int cluster_install(void *ud, const acme_certificate *cert)
{
    return install_cert(ud, cert, NULL);
}

static void cb_log(void *ud, acme_log_level level, const char *msg)
{
    macme_core *k = ud;
    if (k->host.log)
        k->host.log(k->host.ud, level, msg);
}

/* ---- life cycle ---- */

static int add_to_epoll(int epfd, int fd)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int macme_core_new(const macme_conf *conf, macme_shm *shm, const macme_core_host *host, macme_core **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    macme_core *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    k->conf = conf;
    k->shm = shm;
    k->host = *host;
    k->pid = getpid();
    k->lock_fd = -1;
    k->epfd = epoll_create1(EPOLL_CLOEXEC);
    k->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (k->epfd < 0 || k->tfd < 0 || add_to_epoll(k->epfd, k->tfd)) {
        snprintf(err, errlen, "cannot set up its event descriptors: %s", strerror(errno));
        macme_core_free(k);
        return -1;
    }
    snprintf(k->account_state, sizeof(k->account_state), "not leader");
    *out = k;
    return 0;
}

int macme_core_fd(const macme_core *k)
{
    return k->epfd;
}

int macme_core_is_leader(const macme_core *k)
{
    return k->leader;
}

void macme_core_free(macme_core *k)
{
    if (!k)
        return;
    if (k->pid == getpid()) {
        /* Queued writes finish (a certificate is never left half
         * installed); nobody hears of them any more. */
        macme_installer_free(k->inst);
        /* The module's thread reports to the engine: gone first. */
        acme_module_free(k->dns);
        acme_engine_free(k->e);
        if (k->cas)
            acme_ca_list_free(k->cas); /* k->c with it */
        else
            acme_client_free(k->c);
        /* After its client: the client's etcd thread calls into it. */
        macme_cluster_free(k->cluster);
    }
    /* else: a fork()ed copy (server.graceful-restart-bg keeps the old
     * generation alive in a child): threads did not come along, so the
     * engine is left alone; the process exits soon. */
    if (k->lock_fd >= 0)
        close(k->lock_fd);
    if (k->epfd >= 0)
        close(k->epfd);
    if (k->tfd >= 0)
        close(k->tfd);
    free(k->watched);
    free(k->fds);
    free(k->last_status);
    free(k->last_metrics);
    free(k);
}

static int client_setup_at(macme_core *k, const char *directory, acme_client **out)
{
    const macme_conf *mc = k->conf;
    acme_host_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.size = sizeof(cb);
    cb.publish = cb_publish;
    cb.unpublish = cb_unpublish;
    cb.install = cb_install;
    cb.log = cb_log;
    /* modules/common/hostclient.c: the set-up acmectl shares. */
    hostclient_cfg hc = {
        .directory = directory, .state_dir = mc->state_dir, .ca_file = mc->ca_file,
        .account_key_type = ACME_KEY_DEFAULT, .log_level = mc->log_level,
        .host = &cb, .host_ud = k,
    };
    acme_client *c = NULL;
    int rc = hostclient_open(&hc, &c);
    /* acme.storage = "etcd": the cluster's store replaces the file
     * storage hostclient_open set (the state dir keeps the lock). */
    if (!rc && mc->storage_etcd)
        rc = macme_storage_set(mc, c);
    if (rc) {
        klog(k, ACME_LOG_ERROR, "setting up the ACME client for %s failed: %s%s%s", directory, acme_strerror(rc),
             c && *acme_client_last_error(c) ? " — " : "", c ? acme_client_last_error(c) : "");
        acme_client_free(c);
        return rc;
    }
    *out = c;
    return ACME_OK;
}

static int client_setup(macme_core *k, acme_client **out)
{
    return client_setup_at(k, k->conf->directory, out);
}

/* acme.fallback: acme.directory ("primary") and each fallback CA, as a CA
 * list whose engine moves a certificate to the next CA when its own is
 * down, rate-limits or refuses its names. Takes k->c. */
static int make_ca_list(macme_core *k, const acme_engine_options *o)
{
    const macme_conf *mc = k->conf;
    acme_account_params ap = hostclient_account_params((const char *const *)mc->contacts, mc->contact_count,
                                                       mc->agree_tos, NULL, NULL);
    int rc = acme_ca_list_new(&ap, &k->cas);
    acme_ca_params p;
    memset(&p, 0, sizeof(p));
    p.size = sizeof(p);
    p.name = "primary";
    p.eab_kid = mc->eab_kid;
    p.eab_hmac_key = mc->eab_hmac;
    acme_client *c = k->c;
    k->c = NULL; /* the list's from here on */
    for (size_t i = 0; rc == ACME_OK; i++) {
        rc = acme_ca_list_add(k->cas, &p, c);
        if (rc == ACME_OK && i == 0)
            k->c = c;
        if (rc != ACME_OK || i == mc->fallback_count)
            break;
        const macme_ca *ca = &mc->fallback[i];
        if ((rc = client_setup_at(k, ca->directory, &c)) != ACME_OK)
            break;
        memset(&p, 0, sizeof(p));
        p.size = sizeof(p);
        p.name = ca->name;
        p.eab_kid = ca->eab_kid;
        p.eab_hmac_key = ca->eab_hmac;
    }
    if (rc == ACME_OK)
        rc = acme_ca_list_engine_new(k->cas, o, &k->e);
    if (rc != ACME_OK) {
        klog(k, ACME_LOG_ERROR, "cannot set up the CA list (acme.fallback): %s",
             k->cas && *acme_ca_list_last_error(k->cas) ? acme_ca_list_last_error(k->cas) : acme_strerror(rc));
        acme_ca_list_free(k->cas);
        k->cas = NULL;
        k->c = NULL;
    }
    return rc;
}

static void manage_all(macme_core *k)
{
    const macme_conf *mc = k->conf;
    for (size_t i = 0; i < mc->cert_count; i++) {
        const macme_cert *ct = &mc->certs[i];
        acme_issue_params p;
        memset(&p, 0, sizeof(p));
        p.size = sizeof(p);
        p.names = (const char *const *)ct->names;
        p.name_count = ct->name_count;
        p.key_type = mc->key_type;
        p.challenges = mc->challenges;
        p.challenge_count = mc->challenge_count;
        p.profile = mc->profile;
        int rc = acme_engine_manage(k->e, &p);
        if (rc)
            klog(k, ACME_LOG_ERROR, "cannot manage %s (%s): %s", ct->id, ct->where,
                 *acme_client_last_error(k->c) ? acme_client_last_error(k->c) : acme_strerror(rc));
    }
    k->managed = 1;
}

/* ---- the account ---- */

/* The engine finds or registers the account before its first order and
 * retries with back-off; a failure shows in every waiting certificate's
 * last error. This turns that into the status page's account state and
 * one log line per change. */
static void account_watch(macme_core *k)
{
    if (!k->e || !strcmp(k->account_state, "ready"))
        return;
    const char *url = acme_account_url(k->c);
    if (url) {
        snprintf(k->account_state, sizeof(k->account_state), "ready");
        k->account_error[0] = '\0';
        klog(k, ACME_LOG_INFO, "account at %s: %s", k->conf->directory, url);
        return;
    }
    /* No order starts before the account: a failure now is the account's. */
    acme_cert_status st;
    memset(&st, 0, sizeof(st));
    st.size = sizeof(st);
    if (!k->conf->cert_count || acme_engine_cert_status(k->e, k->conf->certs[0].id, &st) != ACME_OK ||
        !st.last_error)
        return;
    if (strcmp(k->account_error, st.last_error) != 0) {
        snprintf(k->account_error, sizeof(k->account_error), "%s", st.last_error);
        klog(k, ACME_LOG_ERROR, "account at %s: %s (%s); the engine tries again with back-off", k->conf->directory,
             acme_strerror(st.last_code), st.last_error);
    }
    snprintf(k->account_state, sizeof(k->account_state), "failed");
}

/* ---- leading ---- */

/* acme.dns-module on the engine's own client (one client per host): its
 * hooks run on the module's thread, its outcomes arrive on a descriptor
 * in our epoll set. A module that does not load leaves dns-01 refused,
 * with the reason logged; http-01 and tls-alpn-01 go on. */
static void load_dns_module(macme_core *k)
{
    int rc = acme_module_load(k->c, k->conf->dns_module, k->conf->dns_module_config, &k->dns);
    /* It must answer every type acme.challenge publishes through it
     * (dns-persist-01 works without: the record is the owner's). */
    for (size_t i = 0; rc == ACME_OK && i < k->conf->challenge_count; i++) {
        acme_challenge_type t = k->conf->challenges[i];
        if ((t == ACME_CHALLENGE_DNS_01 || t == ACME_CHALLENGE_DNS_ACCOUNT_01) && !acme_module_handles(k->dns, t)) {
            klog(k, ACME_LOG_ERROR, "acme.dns-module %s (%s) does not answer %s", k->conf->dns_module,
                 acme_module_name(k->dns), acme_challenge_type_name(t));
            acme_module_free(k->dns);
            k->dns = NULL;
            return;
        }
    }
    if (rc == ACME_OK)
        rc = acme_module_set_engine(k->dns, k->e);
    if (rc == ACME_OK && add_to_epoll(k->epfd, acme_module_fd(k->dns)) != 0)
        rc = ACME_E_NOMEM;
    if (rc != ACME_OK) {
        klog(k, ACME_LOG_ERROR, "acme.dns-module %s: %s; dns-01 is off", k->conf->dns_module,
             *acme_client_last_error(k->c) ? acme_client_last_error(k->c) : acme_strerror(rc));
        acme_module_free(k->dns);
        k->dns = NULL;
    }
}

static int open_lock_file(macme_core *k)
{
    size_t n = strlen(k->conf->state_dir);
    char *path = malloc(n + sizeof("/mod_acme.lock"));
    if (!path)
        return -1;
    memcpy(path, k->conf->state_dir, n);
    memcpy(path + n, "/mod_acme.lock", sizeof("/mod_acme.lock"));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(path);
    return fd;
}

/* The lock file names the pid that leads: the flock alone cannot tell our
 * own previous generation from another process. Always the same width
 * (the pid, spaces, a line break), written over what is there: no
 * ftruncate, which frees the file's block and, on a file system mounted
 * with discard, waits for the device in lighttpd's loop (seen as a
 * D-state wait in blkdev_issue_discard at each graceful restart). */
static void note_leader(int fd)
{
    char line[32];
    int n = snprintf(line, sizeof(line), "%-20ld\n", (long)getpid());
    if (n > 0 && pwrite(fd, line, (size_t)n, 0) == n) {
    }
}

/* The lock is held, but is the holder our own previous generation? With
 * server.graceful-restart-bg lighttpd forks the old generation off to
 * finish its connections; the child shares the lock's open file
 * description until its first tick closes it (up to a second). Waiting
 * for that would leave this generation without the cluster's answers
 * for that long, so it leads at once and takes the flock when it is
 * free (macme_core_tick). */
static int held_by_our_past(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtol(buf, NULL, 10) == (long)getpid();
}

static void try_lead(macme_core *k)
{
    int fd = open_lock_file(k);
    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int ours = held_by_our_past(fd);
        close(fd);
        if (!ours)
            return;
        fd = -1;
    } else {
        note_leader(fd);
    }
    k->lock_fd = fd;
    /* The leader writes certificate files on a thread of its own; without
     * one (no thread, no descriptor) it writes them inside the step. */
    if (!k->inst && macme_installer_new(&k->inst) == ACME_OK && add_to_epoll(k->epfd, macme_installer_fd(k->inst))) {
        macme_installer_free(k->inst);
        k->inst = NULL;
    }
    acme_engine_options o;
    memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.retry_min_s = k->conf->retry_s;
    o.max_age_s = k->conf->renew_after_s;
    o.max_orders = k->conf->max_orders;
    if (k->conf->fallback_count) {
        if (client_setup(k, &k->c) == ACME_OK)
            make_ca_list(k, &o);
    } else if (client_setup(k, &k->c) == ACME_OK) {
        int rc = acme_engine_new(k->c, &o, &k->e);
        if (rc) {
            klog(k, ACME_LOG_ERROR, "cannot start the engine: %s", acme_client_last_error(k->c));
            acme_client_free(k->c);
            k->c = NULL;
        }
    }
    if (!k->e) {
        /* Let another worker (or a later tick) try. */
        if (k->lock_fd >= 0)
            close(k->lock_fd);
        k->lock_fd = -1;
        return;
    }
    if (k->conf->storage_etcd) {
        int rc = macme_cluster_new(k->conf, k->shm, k->c, k->host.log, k->host.ud, &k->cluster);
        /* acme.fallback: the etcd prefix is the cluster's, not a CA's, so
         * the primary's client publishes and hears every CA's answers;
         * certificates are read back from each CA's keys. */
        for (size_t i = 0; rc == ACME_OK && k->cas && i < acme_ca_list_count(k->cas); i++)
            rc = macme_cluster_poll_client(k->cluster, acme_ca_list_client(k->cas, i));
        if (rc != ACME_OK)
            klog(k, ACME_LOG_ERROR, "cluster: cannot serve the other hosts' challenge answers: %s",
                 *acme_client_last_error(k->c) ? acme_client_last_error(k->c) : acme_strerror(rc));
    }
    /* What is current is loaded now (our own answers come with our own
     * orders): what earlier generations left can go. */
    macme_shm_sweep(k->shm);
    klog(k, ACME_LOG_DEBUG, "shared answer table: generation %u", macme_shm_epoch(k->shm));
    if (k->conf->dns_module)
        load_dns_module(k);
    k->leader = 1;
    klog(k, ACME_LOG_INFO, "pid %ld runs the ACME engine for %zu certificate(s) from %s", (long)getpid(),
         k->conf->cert_count, k->conf->directory);
    const macme_conf *mc = k->conf;
    acme_account_params ap = hostclient_account_params((const char *const *)mc->contacts, mc->contact_count,
                                                       mc->agree_tos, mc->eab_kid, mc->eab_hmac);
    int rc = acme_engine_set_account(k->e, &ap);
    if (rc != ACME_OK)
        klog(k, ACME_LOG_ERROR, "account at %s: %s", mc->directory,
             *acme_client_last_error(k->c) ? acme_client_last_error(k->c) : acme_strerror(rc));
    snprintf(k->account_state, sizeof(k->account_state), "registering");
    manage_all(k);
}

/* ---- driving ---- */

static void sync_fds(macme_core *k)
{
    size_t n = 0;
    if (acme_engine_fds(k->e, k->fds, k->fds_cap, &n) != ACME_OK) {
        struct pollfd *g = realloc(k->fds, (n + 8) * sizeof(*g));
        if (!g)
            return;
        k->fds = g;
        k->fds_cap = n + 8;
        if (acme_engine_fds(k->e, k->fds, k->fds_cap, &n) != ACME_OK)
            return;
    }
    /* Drop what is no longer listed (a closed descriptor left the set
     * by itself; ENOENT/EBADF are fine). */
    for (size_t i = 0; i < k->watched_n; i++) {
        int fd = k->watched[i], still = 0;
        for (size_t j = 0; j < n && !still; j++)
            still = k->fds[j].fd == fd;
        if (!still)
            epoll_ctl(k->epfd, EPOLL_CTL_DEL, fd, NULL);
    }
    if (n > k->watched_cap) {
        int *g = realloc(k->watched, n * sizeof(*g));
        if (!g)
            return;
        k->watched = g;
        k->watched_cap = n;
    }
    size_t w = 0;
    for (size_t j = 0; j < n; j++) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof(ev));
        /* One-shot: an event wakes one step, the next sync re-arms. */
        ev.events = EPOLLONESHOT | ((k->fds[j].events & POLLIN) ? EPOLLIN : 0u) |
                    ((k->fds[j].events & POLLOUT) ? EPOLLOUT : 0u);
        ev.data.fd = k->fds[j].fd;
        if (epoll_ctl(k->epfd, EPOLL_CTL_MOD, k->fds[j].fd, &ev) != 0 &&
            (errno != ENOENT || epoll_ctl(k->epfd, EPOLL_CTL_ADD, k->fds[j].fd, &ev) != 0))
            continue;
        k->watched[w++] = k->fds[j].fd;
    }
    k->watched_n = w;

    int t = acme_engine_timeout_ms(k->e);
    if (k->cluster) {
        int ct = macme_cluster_timeout_ms(k->cluster);
        if (t < 0 || ct < t)
            t = ct;
    }
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    if (t == 0) {
        /* Due now. A value that stays 0 would spin: back off a little. */
        k->zero_timeouts++;
        its.it_value.tv_nsec = k->zero_timeouts > 50 ? 20000000L : 1000000L;
    } else {
        k->zero_timeouts = 0;
        if (t > 0) {
            its.it_value.tv_sec = t / 1000;
            its.it_value.tv_nsec = (long)(t % 1000) * 1000000L;
        }
        /* t < 0: nothing due; the once-a-second tick looks anyway. */
    }
    timerfd_settime(k->tfd, 0, &its, NULL);
}

/* The status URL's ?format=prometheus: rewritten in shared memory when it changed. */
static void publish_metrics(macme_core *k)
{
    if (!k->e)
        return;
    acme_buffer *b = acme_buffer_new();
    if (!b || acme_engine_metrics(k->e, b) != ACME_OK || !acme_buffer_data(b)) {
        acme_buffer_free(b);
        return;
    }
    const char *text = acme_buffer_data(b);
    if (!k->last_metrics || strcmp(text, k->last_metrics) != 0) {
        char *copy = strdup(text);
        /* Not written while a worker reads it: the next tick tries again. */
        if (copy && macme_shm_set_metrics(k->shm, copy) == 0) {
            free(k->last_metrics);
            k->last_metrics = copy;
        } else {
            free(copy);
        }
    }
    acme_buffer_free(b);
}

static void publish_status(macme_core *k, const macme_tick *now)
{
    const char *certs = k->e && k->managed ? acme_engine_status_json(k->e) : "[]";
    json_t *arr = certs ? json_loads(certs, 0, NULL) : NULL;
    json_t *o = json_object();
    if (!o) {
        json_decref(arr);
        return;
    }
    json_object_set_new(o, "pid", json_integer((json_int_t)getpid()));
    json_object_set_new(o, "directory", json_string(k->conf->directory));
    if (k->cas) {
        json_t *cas = json_array();
        for (size_t i = 0; i < acme_ca_list_count(k->cas); i++)
            json_array_append_new(cas, json_pack("{s:s,s:s}", "name", acme_ca_list_name(k->cas, i), "directory",
                                                 i ? k->conf->fallback[i - 1].directory : k->conf->directory));
        json_object_set_new(o, "cas", cas);
    }
    json_object_set_new(o, "account", json_string(k->account_state));
    json_object_set_new(o, "account_error", k->account_error[0] ? json_string(k->account_error) : json_null());
    json_object_set_new(o, "longest_step_us",
                        json_integer((json_int_t)(k->e ? acme_engine_longest_step_us(k->e) : 0)));
    macme_tick_stats peek;
    macme_tick_peek(now, &k->tick, &peek);
    const macme_tick_stats *ts = &peek;
    json_object_set_new(o, "longest_tick_us", json_integer((json_int_t)ts->longest_us));
    json_object_set_new(o, "longest_tick_cpu_us", json_integer((json_int_t)ts->longest_cpu_us));
    json_object_set_new(o, "longest_tick_waits", json_integer((json_int_t)ts->longest_waits));
    json_object_set_new(o, "longest_tick_preempted", json_integer((json_int_t)ts->longest_preempted));
    json_object_set_new(o, "ticks", json_integer((json_int_t)ts->ticks));
    json_object_set_new(o, "ticks_waited", json_integer((json_int_t)ts->ticks_waited));
    json_t *in = json_object();
    for (int p = 0; in && p < MACME_PART_N; p++)
        json_object_set_new(in, macme_part_name((macme_part)p), json_integer((json_int_t)ts->waited_in[p]));
    json_object_set_new(o, "ticks_waited_in", in ? in : json_null());
    json_t *last = NULL;
    if (ts->last_wait_tick && (last = json_object()) != NULL) {
        json_t *parts = json_array();
        for (int p = 0; parts && p < MACME_PART_N; p++)
            if (ts->last_wait_mask & (1u << p))
                json_array_append_new(parts, json_string(macme_part_name((macme_part)p)));
        json_object_set_new(last, "tick", json_integer((json_int_t)ts->last_wait_tick));
        json_object_set_new(last, "in", parts ? parts : json_null());
        json_object_set_new(last, "waits", json_integer((json_int_t)ts->last_wait_waits));
        json_object_set_new(last, "tick_us", json_integer((json_int_t)ts->last_wait_us));
    }
    json_object_set_new(o, "last_wait", last ? last : json_null());
    /* The DNS module's own last failure: the certificate's last_error
     * says that publishing failed, this says why. */
    const char *dns_err = k->dns ? acme_module_last_error(k->dns) : NULL;
    json_object_set_new(o, "dns_module_error", dns_err ? json_string(dns_err) : json_null());
    /* In a cluster: a host that cannot reach etcd keeps serving what it
     * has, and says so here. */
    const char *etcd_err = k->cluster ? macme_cluster_health(k->cluster) : NULL;
    json_object_set_new(o, "storage_error", etcd_err && *etcd_err ? json_string(etcd_err) : json_null());
    json_object_set_new(o, "installs", json_integer(k->installs));
    json_object_set_new(o, "restart_pending", json_boolean(k->restart_pending));
    json_object_set_new(o, "certificates", arr ? arr : json_array());
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return;
    if ((!k->last_status || strcmp(s, k->last_status) != 0) && macme_shm_set_status(k->shm, s) == 0) {
        free(k->last_status);
        k->last_status = s;
    } else {
        free(s);
    }
    publish_metrics(k);
}

static void maybe_restart(macme_core *k)
{
    if (!k->restart_pending || k->restart_sent)
        return;
    /* One restart for a batch: wait until no order is in flight, and in a
     * cluster until no host's challenge answer is served here either (a
     * validator sent here must not meet the restart). */
    int busy = !acme_engine_idle(k->e) || (k->inst && macme_installer_busy(k->inst)) ||
               (k->cluster && macme_cluster_answers(k->cluster) > 0);
    if (busy && mono_ms() - k->restart_since_ms < RESTART_BATCH_MS)
        return;
    k->restart_sent = 1;
    k->restarts++;
    const macme_tick_stats *ts = &k->tick;
    char in[160];
    macme_parts_text(0, ts->waited_in, in, sizeof(in));
    klog(k, ACME_LOG_INFO,
         "new certificate(s) on disk: asking lighttpd for a graceful restart (longest engine step in this run: "
         "%llu us; with fd sync %llu us, %llu us of CPU; %lu of %lu ticks waited%s%s)",
         (unsigned long long)acme_engine_longest_step_us(k->e), (unsigned long long)ts->longest_us,
         (unsigned long long)ts->longest_cpu_us, ts->ticks_waited, ts->ticks, *in ? ": " : "", in);
    if (k->host.restart)
        k->host.restart(k->host.ud);
}

static void do_step(macme_core *k)
{
    macme_tick t;
    macme_tick_begin(&t);
    if (k->inst)
        macme_installer_collect(k->inst, install_done, k);
    macme_tick_part(&t, MACME_PART_INSTALLS);
    if (k->cluster)
        macme_cluster_tick(k->cluster, k->e, cluster_install, k);
    macme_tick_part(&t, MACME_PART_CLUSTER);
    acme_engine_step(k->e);
    macme_tick_part(&t, MACME_PART_ENGINE);
    maybe_restart(k);
    macme_tick_part(&t, MACME_PART_RESTART);
    sync_fds(k);
    macme_tick_part(&t, MACME_PART_FD_SYNC);
    /* Part of the tick too (the loop runs it); the document it writes
     * shows this tick up to here. */
    account_watch(k);
    publish_status(k, &t);
    macme_tick_part(&t, MACME_PART_STATUS);
    macme_tick_end(&t, &k->tick);
    if (t.waits > 0 || t.wall_us > 5000) {
        char in[96];
        macme_parts_text(t.mask, NULL, in, sizeof(in));
        klog(k, ACME_LOG_DEBUG, "tick %lu took %llu us (%llu us of CPU; %ld wait(s)%s%s; preempted %ld time(s))",
             k->tick.ticks, (unsigned long long)t.wall_us, (unsigned long long)t.cpu_us, t.waits, *in ? " in " : "",
             in, t.preempted);
    }
}

void macme_core_ready(macme_core *k)
{
    /* Drain first: the descriptor is level-triggered in lighttpd's loop. */
    uint64_t v;
    while (read(k->tfd, &v, sizeof(v)) > 0) {
    }
    struct epoll_event evs[32];
    while (epoll_wait(k->epfd, evs, 32, 0) == 32) {
    }
    if (k->pid != getpid()) {
        /* A fork()ed old generation: nothing to drive here, ever. */
        struct itimerspec off;
        memset(&off, 0, sizeof(off));
        timerfd_settime(k->tfd, 0, &off, NULL);
        return;
    }
    if (!k->leader)
        return;
    if (k->dns)
        acme_module_dispatch(k->dns);
    do_step(k);
}

void macme_core_tick(macme_core *k)
{
    if (k->pid != getpid()) {
        /* A fork()ed old generation: give the lead back at once. */
        if (k->lock_fd >= 0) {
            close(k->lock_fd);
            k->lock_fd = -1;
        }
        k->leader = 0;
        return;
    }
    if (!k->leader) {
        try_lead(k);
        if (!k->leader)
            return;
    } else if (k->lock_fd < 0) {
        /* Leading since a graceful restart while our old generation still
         * held the flock: take it now that it is free. */
        int fd = open_lock_file(k);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            note_leader(fd);
            k->lock_fd = fd;
        } else if (fd >= 0) {
            close(fd);
        }
    }
    do_step(k);
}

/* ---- start-up: files before the TLS module reads them ---- */

typedef struct prep {
    const macme_cert *cert;
    void (*log)(void *, acme_log_level, const char *);
    void *ud;
    int found;
    int rc;
    char *err;
    size_t errlen;
} prep;

static void plog(prep *p, acme_log_level level, const char *fmt, ...)
{
    if (!p->log)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    p->log(p->ud, level, line);
}

static int prep_cb(void *ud, const acme_certificate *cert)
{
    prep *p = ud;
    if (acme_certificate_not_after(cert) <= (int64_t)time(NULL))
        return ACME_OK; /* expired: leave the files alone */
    p->found = 1;
    int changed = 0;
    if (macme_install_files(p->cert, acme_certificate_chain_pem(cert), acme_certificate_key_pem(cert), &changed,
                            p->err, p->errlen)) {
        p->rc = -1;
        return ACME_E_STORAGE;
    }
    if (changed) {
        char until[32];
        fmt_time(acme_certificate_not_after(cert), until, sizeof(until));
        plog(p, ACME_LOG_INFO, "%s: put the stored certificate (valid until %s) into %s", p->cert->id, until,
             p->cert->pemfile);
    }
    return ACME_OK;
}

static int peek_cb(void *ud, const acme_certificate *cert)
{
    *(int64_t *)ud = acme_certificate_not_after(cert);
    return ACME_OK;
}

int macme_prepare_files(const macme_conf *conf, void (*log)(void *, acme_log_level, const char *), void *ud,
                        char *err, size_t errlen)
{
    /* Only the storage is used (no host callbacks, nothing sent). The
     * stored certificate may be at any CA of acme.fallback (the one it
     * moved to): each CA's client, the newest certificate wins. */
    size_t nc = 1 + conf->fallback_count;
    acme_client **cs = calloc(nc, sizeof(*cs));
    if (!cs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int ret = -1;
    for (size_t i = 0; i < nc; i++) {
        const char *dir = i ? conf->fallback[i - 1].directory : conf->directory;
        hostclient_cfg hc = {
            .directory = dir, .state_dir = conf->state_dir, .ca_file = conf->ca_file,
            .account_key_type = ACME_KEY_DEFAULT, .log_level = conf->log_level,
        };
        int rc = hostclient_open(&hc, &cs[i]);
        if (!rc && conf->storage_etcd)
            rc = macme_storage_set(conf, cs[i]);
        if (rc) {
            snprintf(err, errlen, "%s \"%s\" (for %s): %s", conf->storage_etcd ? "acme.etcd-endpoints" : "acme.state-dir",
                     conf->storage_etcd ? conf->etcd_endpoints[0] : conf->state_dir, dir,
                     cs[i] && *acme_client_last_error(cs[i]) ? acme_client_last_error(cs[i]) : acme_strerror(rc));
            goto out;
        }
    }
    for (size_t i = 0; i < conf->cert_count; i++) {
        const macme_cert *ct = &conf->certs[i];
        prep p = {ct, log, ud, 0, 0, err, errlen};
        /* The newest: after a failover the old CA still holds the old one. */
        size_t best = 0;
        int64_t best_na = 0;
        for (size_t j = 0; j < nc; j++) {
            int64_t na = 0;
            if (acme_cert_load(cs[j], ct->id, peek_cb, &na) == ACME_OK && na > best_na) {
                best_na = na;
                best = j;
            }
        }
        acme_cert_load(cs[best], ct->id, prep_cb, &p);
        if (p.rc)
            goto out;
        if (p.found)
            continue;
        struct stat st;
        int have = stat(ct->pemfile, &st) == 0 && (!ct->privkey || stat(ct->privkey, &st) == 0);
        if (have)
            continue;
        char *chain = NULL, *key = NULL;
        int changed = 0;
        if (macme_placeholder(ct, &chain, &key, err, errlen) ||
            macme_install_files(ct, chain, key, &changed, err, errlen)) {
            free(chain);
            if (key)
                explicit_bzero(key, strlen(key));
            free(key);
            goto out;
        }
        explicit_bzero(key, strlen(key));
        free(chain);
        free(key);
        plog(&p, ACME_LOG_INFO, "%s: no certificate yet; wrote a self-signed placeholder to %s until the CA issues one",
             ct->id, ct->pemfile);
    }
    ret = 0;
out:
    for (size_t i = 0; i < nc; i++)
        acme_client_free(cs[i]);
    free(cs);
    return ret;
}
