/* acmectl renew [ID...]: reissue every stored certificate of this CA that
 * is due (libacme decides: the CA's ARI window has opened, or without
 * ARI less than a third of its lifetime is left), or
 * all of them with --force. One failure does not stop the others; the
 * exit code is the first failure's. Nothing due is success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "acmectl.h"

typedef struct id_list {
    char **v;
    size_t n;
} id_list;

static int collect_id(void *ud, const char *id)
{
    id_list *l = ud;
    char **nv = realloc(l->v, (l->n + 1) * sizeof(char *));
    if (!nv)
        return 1;
    l->v = nv;
    if (!(l->v[l->n] = strdup(id)))
        return 1;
    l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The key type of a stored certificate key, so that a fallback order
 * (after a decline) keeps what the certificate had. libacme keeps this in
 * its stored order parameters but does not expose them. */
static acme_key_type key_type_of(const char *pem)
{
    acme_key_type kt = ACME_KEY_DEFAULT;
    gnutls_x509_privkey_t k;
    if (gnutls_x509_privkey_init(&k) < 0)
        return kt;
    gnutls_datum_t d = { (unsigned char *)pem, (unsigned)strlen(pem) };
    if (gnutls_x509_privkey_import2(k, &d, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN) >= 0) {
        unsigned bits = 0;
        int alg = gnutls_x509_privkey_get_pk_algorithm2(k, &bits);
        if (alg == GNUTLS_PK_RSA)
            kt = bits >= 4096 ? ACME_KEY_RSA_4096 : bits >= 3072 ? ACME_KEY_RSA_3072 : ACME_KEY_RSA_2048;
        else if (alg == GNUTLS_PK_ECDSA)
            kt = bits > 256 ? ACME_KEY_EC_P384 : ACME_KEY_EC_P256;
    }
    gnutls_x509_privkey_deinit(k);
    return kt;
}

typedef struct loaded {
    result_cert *rc;
    acme_key_type key_type;
} loaded;

static int on_load(void *ud, const acme_certificate *cert)
{
    loaded *l = ud;
    session_fill_cert(l->rc, cert);
    l->key_type = key_type_of(acme_certificate_key_pem(cert));
    return ACME_OK;
}

static void record_failure(session *s, result_cert *rc, int code, int lrc)
{
    const char *extra = session_extra_error(s);
    const char *lib = acme_client_last_error(s->c);
    free(rc->error);
    rc->error = strdup(extra ? extra : *lib ? lib : acme_strerror(lrc));
    rc->exit_code = code;
    /* In words now, on stderr; --json gets the whole run at the end. */
    acmectl_opts words = *s->o;
    words.json = 0;
    print_line(stderr, "acmectl: renewing %s failed:", rc->id ? rc->id : "?");
    output_error(&words, NULL, code, lrc, s->c, extra);
}

static int renew_one(session *s, const char *id, result_cert *rc, int *lib_rc)
{
    const acmectl_opts *o = s->o;
    loaded ld = { rc, ACME_KEY_DEFAULT };
    int lrc = acme_cert_load(session_holder(s, id), id, on_load, &ld);
    if (lrc != ACME_OK) {
        rc->id = rc->id ? rc->id : strdup(id);
        *lib_rc = lrc;
        int code = session_exit_code(s, lrc);
        record_failure(s, rc, code, lrc);
        return code;
    }
    s->current = rc;
    provision_reset_failure(s->prov);
    (void)provision_take_declined(s->prov);
    int renewed = 0;
    lrc = session_renew(s, id, o->force, &renewed);
    unsigned declined = provision_take_declined(s->prov);
    if (lrc == ACME_E_CALLBACK && declined && !s->install_failed && !s->out_failed) {
        /* libacme renewed with the challenge types stored at issue time and
         * one was declined: order again with this run's types, minus it. */
        acme_challenge_type types[MAX_CHALLENGES];
        size_t n = provision_types(s->prov, types, MAX_CHALLENGES), k = 0;
        for (size_t i = 0; i < n; i++)
            if (!(declined & (1u << types[i])))
                types[k++] = types[i];
        issue_request rq = { (const char *const *)rc->names, rc->name_count, id, ld.key_type };
        if (k)
            progress(ACME_LOG_INFO, "renewing %s again with a new order (a challenge type was declined)", id);
        lrc = issue_run_with(s, &rq, types, k);
        renewed = lrc == ACME_OK;
    }
    s->current = NULL;
    *lib_rc = lrc;
    if (lrc != ACME_OK) {
        int code = session_exit_code(s, lrc);
        record_failure(s, rc, code, lrc);
        return code;
    }
    rc->renewed = renewed; /* libacme has said why not, and until when */
    if (renewed)
        session_report_ca(s, id);
    return EXIT_OK;
}

int cmd_renew(const acmectl_opts *o)
{
    result res = { .command = "renew" };
    char err[600];
    for (int i = 0; i < o->arg_count; i++) {
        /* Ids are file names in the state directory: same rule as names,
         * plus the "_." a wildcard's id starts with. */
        const char *a = o->args[i];
        if (!*a || strchr(a, '/') || a[0] == '.' || strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != strlen(a)) {
            bprintf(err, sizeof(err), "\"%s\" is not a certificate id (lower-case letters, digits, '.', '-', '_')", a);
            output_error(o, &res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL, err);
            return EXIT_USAGE;
        }
    }
    if (o->out_dir && (mkdir_p(o->out_dir, 0755) != 0)) {
        bprintf(err, sizeof(err), "--out %s: cannot create it", o->out_dir);
        output_error(o, &res, EXIT_STORAGE, ACME_E_STORAGE, NULL, err);
        return EXIT_STORAGE;
    }
    session s;
    int code = session_open(&s, o, &res, SESSION_CHALLENGES_LAZY);
    if (code != EXIT_OK) {
        session_close(&s);
        return code;
    }
    id_list ids = { NULL, 0 };
    int lrc = ACME_OK;
    if (o->arg_count) {
        for (int i = 0; i < o->arg_count && lrc == ACME_OK; i++)
            if (collect_id(&ids, o->args[i]))
                lrc = ACME_E_NOMEM;
    } else {
        lrc = session_cert_list(&s, collect_id, &ids);
        if (lrc == ACME_OK && ids.n > 1)
            qsort(ids.v, ids.n, sizeof(char *), cmp_str);
    }
    if (lrc != ACME_OK) {
        code = session_exit_code(&s, lrc);
        output_error(o, &res, code, lrc, s.c, "cannot list the stored certificates");
    } else {
        int first = EXIT_OK, first_lrc = ACME_OK;
        size_t failed = 0;
        if (ids.n == 0)
            res.message = "no certificates stored for this CA; nothing to renew";
        for (size_t i = 0; i < ids.n; i++) {
            result_cert *rc = result_add_cert(&res);
            if (!rc) {
                first = first ? first : EXIT_INTERNAL;
                first_lrc = first_lrc ? first_lrc : ACME_E_NOMEM;
                break;
            }
            s.install_failed = s.out_failed = 0;
            s.install_error[0] = '\0';
            int one_lrc = ACME_OK;
            int c = renew_one(&s, ids.v[i], rc, &one_lrc);
            if (c != EXIT_OK) {
                failed++;
                if (first == EXIT_OK) {
                    first = c;
                    first_lrc = one_lrc;
                }
            }
        }
        if (first != EXIT_OK) {
            bprintf(err, sizeof(err), "%zu of %zu certificate(s) could not be renewed (see above)", failed, ids.n);
            output_error(o, &res, first, first_lrc, NULL, err);
        } else {
            output_success(o, &res);
        }
        code = first;
    }
    for (size_t i = 0; i < ids.n; i++)
        free(ids.v[i]);
    free(ids.v);
    session_close(&s);
    result_clear(&res);
    return code;
}
