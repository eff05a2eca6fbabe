/* One configured libacme client for one acmectl run: state directory
 * (locked), trust, logging, the challenge providers, the account, and the
 * install step (--out files, then the hook's "install"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acmectl.h"
#include "hostclient.h"

static int on_publish(void *ud, const acme_challenge *ch)
{
    session *s = ud;
    return s->prov ? provision_publish(s->prov, ch) : ACME_E_UNSUPPORTED;
}

static int on_unpublish(void *ud, const acme_challenge *ch)
{
    session *s = ud;
    return s->prov ? provision_unpublish(s->prov, ch) : ACME_OK;
}

/* libacme's log: to the person. */
static void on_log(void *ud, acme_log_level level, const char *msg)
{
    (void)ud;
    progress_lib_log(NULL, level, msg);
}

static char *join_names(const acme_certificate *cert, char sep)
{
    size_t n = acme_certificate_name_count(cert), len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(acme_certificate_name(cert, i)) + 1;
    char *out = calloc(1, len);
    for (size_t i = 0; out && i < n; i++) {
        if (i)
            out[strlen(out)] = sep; /* calloc'ed: the next byte is already NUL */
        strcat(out, acme_certificate_name(cert, i));
    }
    return out;
}

void session_fill_cert(result_cert *rc, const acme_certificate *cert)
{
    free(rc->id);
    rc->id = strdup(acme_certificate_id(cert));
    for (size_t i = 0; i < rc->name_count; i++)
        free(rc->names[i]);
    free(rc->names);
    rc->name_count = 0;
    size_t n = acme_certificate_name_count(cert);
    rc->names = calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; rc->names && i < n; i++)
        if ((rc->names[rc->name_count] = strdup(acme_certificate_name(cert, i))))
            rc->name_count++;
    rc->not_before = acme_certificate_not_before(cert);
    rc->not_after = acme_certificate_not_after(cert);
    free(rc->issuer);
    const char *iss = acme_certificate_issuer(cert);
    rc->issuer = strdup(iss ? iss : "");
}

/* --out: <dir>/<id>.key and <id>.crt, replaced as a pair (file_write_pair):
 * a failure (a full disk) leaves the old pair, never a new key beside the
 * old chain. */
static int write_out(session *s, result_cert *rc, const acme_certificate *cert)
{
    const char *dir = s->o->out_dir, *id = acme_certificate_id(cert);
    char crt[512], key[512];
    bprintf(crt, sizeof(crt), "%s.crt", id);
    bprintf(key, sizeof(key), "%s.key", id);
    char why[700];
    if (file_write_pair(dir, id, cert, why, sizeof(why)) != 0) {
        bprintf(s->install_error, sizeof(s->install_error),
                 "--out: %s; the new certificate is stored in the state directory: fix --out, "
                 "then write it again with `acmectl renew --force %s`", why, id);
        s->out_failed = 1;
        return ACME_E_STORAGE;
    }
    free(rc->chain_file);
    free(rc->key_file);
    if (asprintf(&rc->chain_file, "%s/%s", dir, crt) < 0)
        rc->chain_file = NULL;
    if (asprintf(&rc->key_file, "%s/%s", dir, key) < 0)
        rc->key_file = NULL;
    progress(ACME_LOG_INFO, "wrote %s/%s and %s/%s", dir, crt, dir, key);
    return ACME_OK;
}

/* "HOOK install ID CHAIN-FILE KEY-FILE NAMES". Without --out the files
 * are written to a private temporary directory for the hook's run. */
static int hook_install(session *s, result_cert *rc, const acme_certificate *cert)
{
    const acmectl_opts *o = s->o;
    char tmpdir[4096] = "", chain[4096], key[4096];
    const char *id = acme_certificate_id(cert);
    if (rc->chain_file && rc->key_file) {
        bprintf(chain, sizeof(chain), "%s", rc->chain_file);
        bprintf(key, sizeof(key), "%s", rc->key_file);
    } else {
        const char *t = getenv("TMPDIR");
        bprintf(tmpdir, sizeof(tmpdir), "%s/acmectl.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) {
            bprintf(s->install_error, sizeof(s->install_error),
                     "cannot make a temporary directory for the hook's install: %s", strerror(errno));
            s->install_failed = 1;
            return ACME_E_CALLBACK;
        }
        bprintf(chain, sizeof(chain), "%s/%s.crt", tmpdir, id);
        bprintf(key, sizeof(key), "%s/%s.key", tmpdir, id);
        const char *kp = acme_certificate_key_pem(cert), *cp = acme_certificate_chain_pem(cert);
        char kn[512], cn[512];
        bprintf(kn, sizeof(kn), "%s.key", id);
        bprintf(cn, sizeof(cn), "%s.crt", id);
        if (file_write_atomic(tmpdir, kn, kp, strlen(kp), 0600) != 0 ||
            file_write_atomic(tmpdir, cn, cp, strlen(cp), 0644) != 0) {
            bprintf(s->install_error, sizeof(s->install_error),
                     "cannot write temporary files for the hook's install: %s", strerror(errno));
            unlink(key);
            unlink(chain);
            rmdir(tmpdir);
            s->install_failed = 1;
            return ACME_E_CALLBACK;
        }
    }
    char *names = join_names(cert, ',');
    char not_after[32];
    format_time(acme_certificate_not_after(cert), not_after, sizeof(not_after));
    const char *args[] = {"install", id, chain, key, names ? names : ""};
    hook_env env[] = {
        {"ACMECTL_METHOD", "install"}, {"ACMECTL_CERT_ID", id}, {"ACMECTL_CHAIN_FILE", chain},
        {"ACMECTL_KEY_FILE", key}, {"ACMECTL_NAMES", names ? names : ""},
        {"ACMECTL_NOT_AFTER", not_after}, {"ACMECTL_DIRECTORY", o->directory},
        {"ACMECTL_STATE_DIR", o->state_dir},
    };
    progress_activity("hook install %s", id);
    int st = hook_run(o->hook, args, 5, env, sizeof(env) / sizeof(env[0]));
    progress_activity(NULL);
    int e = errno;
    free(names);
    if (tmpdir[0]) {
        unlink(key);
        unlink(chain);
        rmdir(tmpdir);
    }
    if (st != 0) {
        if (st < 0)
            bprintf(s->install_error, sizeof(s->install_error), "cannot run the hook %s: %s", o->hook, strerror(e));
        else if (st >= 256)
            bprintf(s->install_error, sizeof(s->install_error), "the hook %s was killed by signal %d during install",
                     o->hook, st - 256);
        else
            bprintf(s->install_error, sizeof(s->install_error),
                     "the hook %s failed to install %s (exit status %d); the certificate is stored%s: "
                     "fix the hook, then install it again with `acmectl renew --force %s` (a hook written "
                     "for uacme rejects \"install\": use --no-hook-install)",
                     o->hook, id, st, rc->chain_file ? " and in --out" : "", id);
        s->install_failed = 1;
        return ACME_E_CALLBACK;
    }
    progress(ACME_LOG_INFO, "the hook installed %s", id);
    return ACME_OK;
}

static int on_install(void *ud, const acme_certificate *cert)
{
    session *s = ud;
    result_cert *rc = s->current ? s->current : result_add_cert(s->res);
    if (!rc)
        return ACME_E_NOMEM;
    session_fill_cert(rc, cert);
    rc->renewed = 1;
    int r = ACME_OK;
    if (s->o->out_dir)
        r = write_out(s, rc, cert);
    if (r == ACME_OK && s->o->hook && s->o->hook_install)
        r = hook_install(s, rc, cert);
    return r;
}

int session_new_client(session *s, const char *url, acme_client **out)
{
    const acmectl_opts *o = s->o;
    acme_host_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.size = sizeof(cb);
    cb.publish = on_publish;
    cb.unpublish = on_unpublish;
    cb.install = on_install;
    cb.log = on_log;
    /* The same set-up as the first CA's (session_open). */
    hostclient_cfg hc = {
        .directory = url, .state_dir = o->state_dir, .ca_file = o->ca_file,
        .account_key_type = o->account_key_type,
        .log_level = o->verbosity >= 1 ? ACME_LOG_DEBUG : ACME_LOG_INFO,
        .host = &cb, .host_ud = s,
    };
    return hostclient_open(&hc, out);
}

int session_open(session *s, const acmectl_opts *o, result *res, int challenges)
{
    memset(s, 0, sizeof(*s));
    s->o = o;
    s->res = res;
    char err[600];

    if (o->ca_file && access(o->ca_file, R_OK) != 0) {
        bprintf(err, sizeof(err), "--ca-file %s: %s", o->ca_file, strerror(errno));
        output_error(o, res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL, err);
        return EXIT_USAGE;
    }
    if (mkdir_p(o->state_dir, 0700) != 0) {
        bprintf(err, sizeof(err), "cannot create the state directory %s: %s", o->state_dir, strerror(errno));
        output_error(o, res, EXIT_STORAGE, ACME_E_STORAGE, NULL, err);
        return EXIT_STORAGE;
    }
    if (state_dir_lock(o->state_dir, err, sizeof(err)) != 0) {
        output_error(o, res, EXIT_STORAGE, ACME_E_LOCKED, NULL, err);
        return EXIT_STORAGE;
    }
    acme_host_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.size = sizeof(cb);
    cb.publish = on_publish;
    cb.unpublish = on_unpublish;
    cb.install = on_install;
    cb.log = on_log;
    /* modules/common/hostclient.c: the set-up `run` and mod_acme share. */
    hostclient_cfg hc = {
        .directory = o->directory, .state_dir = o->state_dir, .ca_file = o->ca_file,
        .account_key_type = o->account_key_type,
        .log_level = o->verbosity >= 1 ? ACME_LOG_DEBUG : ACME_LOG_INFO,
        .host = &cb, .host_ud = s,
    };
    int rc = hostclient_open(&hc, &s->c);
    if (rc != ACME_OK && !s->c) {
        bprintf(err, sizeof(err), "cannot use the directory URL %s (%s)", o->directory, acme_strerror(rc));
        int code = rc == ACME_E_NOMEM ? EXIT_INTERNAL : EXIT_USAGE;
        output_error(o, res, code, rc, NULL, err);
        return code;
    }
    if (rc != ACME_OK) {
        int code = exit_code_for(rc, s->c, o->command);
        output_error(o, res, code, rc, s->c, NULL);
        return code;
    }

    if (challenges != SESSION_NO_CHALLENGES) {
        int code = provision_start(o, s->c, challenges == SESSION_CHALLENGES_LAZY, &s->prov, err, sizeof(err));
        if (code != EXIT_OK) {
            output_error(o, res, code, code == EXIT_USAGE ? ACME_E_INVALID_ARG : ACME_E_UNSUPPORTED, NULL, err);
            return code;
        }
        provision_bind_client(s->prov, s->c);
        signals_watch(s->prov);
    }
    if (o->directory_count > 1) {
        int code = session_open_cas(s, err, sizeof(err));
        if (code != EXIT_OK) {
            output_error(o, res, code, ACME_E_INVALID_ARG, NULL, err);
            return code;
        }
    }
    return EXIT_OK;
}

void session_close(session *s)
{
    provision_stop(s->prov);
    s->prov = NULL;
    if (s->cas)
        acme_ca_list_free(s->cas); /* s->c with it */
    else
        acme_client_free(s->c);
    s->cas = NULL;
    s->c = NULL;
}

int session_account(session *s)
{
    const acmectl_opts *o = s->o;
    /* With a CA list the account at each CA is found or registered when
     * that CA is first used: the first may be the one that is down. */
    if (s->cas)
        return ACME_OK;
    acme_account_params ap = hostclient_account_params(o->contacts, o->contact_count, o->agree_tos, o->eab_kid,
                                                       o->eab_hmac);
    return acme_account_register(s->c, &ap);
}

int session_exit_code(const session *s, int rc)
{
    if (rc == ACME_OK)
        return EXIT_OK;
    if (s->out_failed)
        return EXIT_STORAGE;
    if (s->install_failed)
        return EXIT_INSTALL;
    /* libacme says UNSUPPORTED both for "no challenge type fits" and for
     * "this CA has no profiles": only the first is a challenge problem. */
    if (rc == ACME_E_UNSUPPORTED && s->o->profile && strstr(acme_client_last_error(s->c), "profile"))
        return EXIT_CA_REFUSED;
    return exit_code_for(rc, s->c, s->o->command);
}

const char *session_extra_error(const session *s)
{
    if (s->install_error[0])
        return s->install_error;
    if (s->cas && *acme_ca_list_last_error(s->cas))
        return acme_ca_list_last_error(s->cas);
    if (s->prov && provision_failure(s->prov)[0])
        return provision_failure(s->prov);
    return NULL;
}
