/* Certificates over the admin socket (HAProxy 2.6), and tls-alpn-01.
 *
 * A certificate is replaced in a transaction: `set ssl cert <f> <<` with
 * chain and key, then `commit ssl cert <f>`. HAProxy keeps ONE transaction
 * for the whole process, and 2.6 has a trap: `set ssl cert B` while a
 * transaction for A is open puts B's PEM into A's transaction ("Transaction
 * updated for certificate A"). So before every `set` we look at `show ssl
 * cert`: a transaction left by us (a crash between set and commit) is
 * aborted, anybody else's makes us fail and try again later. After any
 * failed set or commit the transaction is aborted, so the old certificate
 * keeps serving.
 *
 * A name HAProxy does not serve yet: `new ssl cert <f>`, set, commit, then
 * `add ssl crt-list <list> <<` with the line. Nothing set over the socket
 * survives a restart, so the same PEM goes to <f> on disk and the line to
 * the crt-list file.
 *
 * tls-alpn-01: HAProxy picks a certificate by SNI only, so the challenge
 * certificate goes into the crt-list of a separate bind (strict-sni, alpn
 * acme-tls/1) that a mode-tcp front end routes acme-tls/1 connections to;
 * see doc/haproxy.md. Challenge certificates exist in HAProxy's memory
 * only, under a name that starts with alpn-cert-prefix. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haproxy.h"

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* Run a command whose reply must be a success; anything else is refused. */
static int run_ok(hap *h, const char *cmd, const char *payload, hap_kind *kind_out)
{
    char *reply;
    hap_kind kind = HAP_OK;
    int rc = hap_run(h, cmd, payload, &reply, &kind);
    if (kind_out)
        *kind_out = kind;
    if (rc)
        return rc;
    if (kind != HAP_OK)
        rc = hap_refused(h, cmd, reply, kind);
    free(reply);
    return rc;
}

/* Best effort while cleaning up after a failure: the first reason stays. */
static void run_quietly(hap *h, const char *cmd)
{
    char keep[HAP_ERR];
    memcpy(keep, h->err, sizeof(keep));
    int unreachable = h->unreachable;
    char *reply = NULL;
    hap_kind kind = HAP_OK;
    if (hap_run(h, cmd, NULL, &reply, &kind) == ACME_OK && kind != HAP_OK && kind != HAP_NOT_FOUND) {
        char line[300];
        hap_reply_line(reply, line, sizeof(line));
        hap_log(h, ACME_LOG_WARNING, "cleaning up: `%s` answered: %s", cmd, line);
    }
    free(reply);
    memcpy(h->err, keep, sizeof(keep));
    h->unreachable = unreachable;
}

/* Walk the lines of a reply. */
#define FOR_LINES(reply, line, len)                                                       \
    for (const char *line = (reply), *eol_; line && *line; line = eol_ ? eol_ + 1 : NULL) \
        for (size_t len = ((eol_ = strchr(line, '\n')) ? (size_t)(eol_ - line) : strlen(line)), once_ = 1; \
             once_; once_ = 0)

static int line_is(const char *line, size_t len, const char *s)
{
    return strlen(s) == len && !memcmp(line, s, len);
}

/* ---- the transaction -------------------------------------------------- */

static int ours(const hap *h, const char *name)
{
    size_t n = strlen(h->cert_dir);
    if (!strncmp(name, h->cert_dir, n) && name[n] == '/')
        return 1;
    if (!strncmp(name, h->alpn_prefix, strlen(h->alpn_prefix)))
        return 1;
    for (size_t i = 0; i < h->path_count; i++)
        if (!strcmp(name, h->paths[i].path))
            return 1;
    return 0;
}

/* `show ssl cert`: whether HAProxy knows path, and clear the way for a
 * transaction on it. */
static int prepare_transaction(hap *h, const char *path, int *known)
{
    *known = 0;
    char *reply;
    hap_kind kind = HAP_OK;
    int rc = hap_run(h, "show ssl cert", NULL, &reply, &kind);
    if (rc)
        return rc;
    if (reply[0] != '#') {
        /* 2.6 answers "Can't allocate memory!" below level admin. */
        if (strstr(reply, "allocate memory"))
            rc = hap_fail(h, ACME_E_CALLBACK, "HAProxy refused `show ssl cert` (\"Can't allocate memory!\", its "
                          "answer below level admin): the admin socket needs `level admin` (stats socket <path> "
                          "... level admin)");
        else
            rc = hap_refused(h, "show ssl cert", reply, kind);
        free(reply);
        return rc;
    }
    char *open_tx = NULL;
    int section = 0;
    FOR_LINES(reply, line, len)
    {
        if (len && line[0] == '#') {
            section = line_is(line, len, "# transaction") ? 1 : 2;
            continue;
        }
        if (section == 1 && len > 1 && line[0] == '*' && !open_tx)
            open_tx = strndup(line + 1, len - 1);
        else if (section == 2 && line_is(line, len, path))
            *known = 1;
    }
    free(reply);
    if (!open_tx)
        return ACME_OK;
    /* The name goes back on the command line: a reply that is not one
     * word there (a CR, a ';' would start another command) is not used. */
    if (!hap_word_ok(open_tx)) {
        rc = hap_fail(h, ACME_E_CALLBACK, "HAProxy's `show ssl cert` names an open transaction that is not one "
                      "word (\"%.200s\"); abort it by hand (`abort ssl cert <name>`), then install again",
                      open_tx);
        free(open_tx);
        return rc;
    }
    if (strcmp(open_tx, path) != 0 && !ours(h, open_tx)) {
        rc = hap_fail(h, ACME_E_CALLBACK, "HAProxy has an open certificate transaction for %s, not made by "
                      "this module (a `set ssl cert` without commit): commit or abort it (`abort ssl cert %s`), "
                      "then install again; nothing was changed", open_tx, open_tx);
        free(open_tx);
        return rc;
    }
    hap_log(h, ACME_LOG_WARNING, "aborting a transaction for %s left open by an earlier attempt", open_tx);
    char *cmd = dup_printf("abort ssl cert %s", open_tx);
    free(open_tx);
    if (!cmd)
        return hap_fail(h, ACME_E_NOMEM, "out of memory");
    char *r2;
    rc = hap_run(h, cmd, NULL, &r2, &kind);
    if (rc == ACME_OK) {
        if (kind != HAP_OK && kind != HAP_NOT_FOUND)
            rc = hap_refused(h, cmd, r2, kind);
        free(r2);
    }
    free(cmd);
    return rc;
}

/* set + commit; on any failure the transaction is aborted. */
static int set_and_commit(hap *h, const char *path, const char *pem)
{
    char *cmd = dup_printf("set ssl cert %s", path);
    char *abort_cmd = dup_printf("abort ssl cert %s", path);
    char *commit = dup_printf("commit ssl cert %s", path);
    char *reply = NULL;
    hap_kind kind = HAP_OK;
    int rc = (cmd && abort_cmd && commit) ? ACME_OK : hap_fail(h, ACME_E_NOMEM, "out of memory");
    if (rc == ACME_OK)
        rc = hap_run(h, cmd, pem, &reply, &kind);
    if (rc == ACME_OK && kind != HAP_OK) {
        rc = hap_refused(h, cmd, reply, kind);
        /* A failed set can leave a transaction behind. */
        run_quietly(h, abort_cmd);
    } else if (rc == ACME_OK) {
        /* The 2.6 trap: the PEM went into the transaction it names. */
        const char *name = strstr(reply, "for certificate ");
        name = name ? name + strlen("for certificate ") : "";
        size_t n = strlen(path);
        if (strncmp(name, path, n) != 0 || name[n] != '!') {
            const char *end = strchr(name, '!');
            char other[512];
            snprintf(other, sizeof(other), "%.*s", end ? (int)(end - name) : 0, name);
            rc = hap_fail(h, ACME_E_CALLBACK, "HAProxy put the certificate for %s into the open transaction of "
                          "%s (someone else started it just now); that transaction is aborted and nothing "
                          "was changed", path, *other ? other : "another certificate");
            if (*other && hap_word_ok(other)) {
                char *other_abort = dup_printf("abort ssl cert %s", other);
                if (other_abort)
                    run_quietly(h, other_abort);
                free(other_abort);
            }
        }
    }
    free(reply);
    reply = NULL;
    if (rc == ACME_OK) {
        rc = hap_run(h, commit, NULL, &reply, &kind);
        if (rc == ACME_OK && !hap_reply_has_line(reply, "Success!"))
            rc = hap_refused(h, commit, reply, kind == HAP_OK ? HAP_ERROR : kind);
        /* Never leave it open: the old certificate keeps serving. */
        if (rc) {
            run_quietly(h, abort_cmd);
            size_t used = strlen(h->err);
            snprintf(h->err + used, sizeof(h->err) - used, "; transaction aborted, HAProxy keeps the old "
                     "certificate");
        }
    }
    free(reply);
    free(cmd);
    free(abort_cmd);
    free(commit);
    return rc;
}

/* ---- crt-lists ---------------------------------------------------------- */

/* Whether the crt-list has a line for path. */
static int crt_list_has(hap *h, const char *list, const char *path, int *has)
{
    *has = 0;
    char *cmd = dup_printf("show ssl crt-list %s", list);
    if (!cmd)
        return hap_fail(h, ACME_E_NOMEM, "out of memory");
    char *reply;
    hap_kind kind = HAP_OK;
    int rc = hap_run(h, cmd, NULL, &reply, &kind);
    if (rc == ACME_OK) {
        if (reply[0] != '#') {
            rc = hap_refused(h, cmd, reply, kind);
        } else {
            size_t n = strlen(path);
            FOR_LINES(reply, line, len)
            if (len >= n && !memcmp(line, path, n) && (len == n || line[n] == ' ' || line[n] == '\t'))
                *has = 1;
        }
        free(reply);
    }
    free(cmd);
    return rc;
}

/* Delete every line of the crt-list that names path (by line number:
 * `del ssl crt-list` without one refuses when there are several). */
static int crt_list_remove(hap *h, const char *list, const char *path)
{
    char *cmd = dup_printf("show ssl crt-list -n %s", list);
    if (!cmd)
        return hap_fail(h, ACME_E_NOMEM, "out of memory");
    char *reply;
    hap_kind kind = HAP_OK;
    int rc = hap_run(h, cmd, NULL, &reply, &kind);
    free(cmd);
    if (rc)
        return rc;
    if (reply[0] != '#') {
        rc = hap_refused(h, "show ssl crt-list", reply, kind);
        free(reply);
        return rc;
    }
    size_t n = strlen(path);
    FOR_LINES(reply, line, len)
    {
        if (rc || len <= n + 1 || memcmp(line, path, n) != 0 || line[n] != ':')
            continue;
        size_t d = n + 1;
        while (d < len && isdigit((unsigned char)line[d]))
            d++;
        if (d == n + 1 || (d < len && line[d] != ' '))
            continue;
        char *del = dup_printf("del ssl crt-list %s %.*s", list, (int)d, line);
        rc = del ? run_ok(h, del, NULL, NULL) : hap_fail(h, ACME_E_NOMEM, "out of memory");
        free(del);
    }
    free(reply);
    return rc;
}

/* ---- tls-alpn-01 -------------------------------------------------------- */

char *hap_alpn_cert_name(const hap *h, const char *identifier)
{
    char *s = dup_printf("%s%s.pem", h->alpn_prefix, identifier);
    if (s)
        for (char *p = s + strlen(h->alpn_prefix); *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return s;
}

char *hap_alpn_sni(const char *identifier)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, identifier, a) == 1)
        return dup_printf("%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
    if (inet_pton(AF_INET6, identifier, a) == 1) {
        /* RFC 8738 §6: the reverse-mapping name, nibble by nibble. */
        char *s = malloc(16 * 4 + sizeof("ip6.arpa"));
        if (!s)
            return NULL;
        static const char hex[] = "0123456789abcdef";
        char *p = s;
        for (int i = 15; i >= 0; i--) {
            *p++ = hex[a[i] & 0xf];
            *p++ = '.';
            *p++ = hex[a[i] >> 4];
            *p++ = '.';
        }
        strcpy(p, "ip6.arpa");
        return s;
    }
    char *s = strdup(identifier);
    if (s)
        for (char *p = s; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return s;
}

/* Take the challenge certificate out of the list and out of HAProxy. */
static int alpn_remove(hap *h, const char *name)
{
    int rc = crt_list_remove(h, h->alpn_crt_list, name);
    if (rc)
        return rc;
    char *cmd = dup_printf("del ssl cert %s", name);
    if (!cmd)
        return hap_fail(h, ACME_E_NOMEM, "out of memory");
    char *reply;
    hap_kind kind = HAP_OK;
    rc = hap_run(h, cmd, NULL, &reply, &kind);
    if (rc == ACME_OK) {
        if (kind != HAP_OK && kind != HAP_NOT_FOUND)
            rc = hap_refused(h, cmd, reply, kind);
        free(reply);
    }
    free(cmd);
    return rc;
}

int hap_alpn_publish(hap *h, const char *identifier, const char *cert_pem, const char *key_pem)
{
    char *name = hap_alpn_cert_name(h, identifier), *sni = hap_alpn_sni(identifier);
    char *pem = cert_pem && key_pem ? hap_pem_payload(cert_pem, key_pem) : NULL;
    char *cmd = NULL, *line = NULL;
    int rc = ACME_OK, made = 0;
    if (!cert_pem || !key_pem || (!pem && name && sni))
        rc = hap_fail(h, ACME_E_INVALID_ARG, "tls-alpn-01 for %s: no challenge certificate in PEM", identifier);
    else if (!name || !sni || !pem)
        rc = hap_fail(h, ACME_E_NOMEM, "out of memory");
    else if (!hap_word_ok(name) || !hap_word_ok(sni))
        rc = hap_fail(h, ACME_E_INVALID_ARG, "tls-alpn-01: \"%s\" cannot be a name on HAProxy's command line",
                      identifier);
    /* A certificate left from an earlier attempt (or a crash) goes first. */
    if (rc == ACME_OK)
        rc = alpn_remove(h, name);
    int known = 0;
    if (rc == ACME_OK)
        rc = prepare_transaction(h, name, &known);
    if (rc == ACME_OK) {
        hap_kind kind = HAP_OK;
        cmd = dup_printf("new ssl cert %s", name);
        rc = cmd ? run_ok(h, cmd, NULL, &kind) : hap_fail(h, ACME_E_NOMEM, "out of memory");
        if (rc && kind == HAP_EXISTS)
            rc = ACME_OK, h->err[0] = '\0';
        made = rc == ACME_OK;
    }
    if (rc == ACME_OK)
        rc = set_and_commit(h, name, pem);
    if (rc == ACME_OK) {
        free(cmd);
        cmd = dup_printf("add ssl crt-list %s", h->alpn_crt_list);
        line = dup_printf("%s %s", name, sni);
        rc = cmd && line ? run_ok(h, cmd, line, NULL) : hap_fail(h, ACME_E_NOMEM, "out of memory");
    }
    if (rc && made) {
        char keep[HAP_ERR];
        memcpy(keep, h->err, sizeof(keep));
        alpn_remove(h, name);
        memcpy(h->err, keep, sizeof(keep));
    }
    if (rc == ACME_OK)
        hap_log(h, ACME_LOG_DEBUG, "tls-alpn-01 certificate for %s (SNI %s) is in %s", identifier, sni,
                h->alpn_crt_list);
    if (pem) {
        explicit_bzero(pem, strlen(pem));
        free(pem);
    }
    free(name);
    free(sni);
    free(cmd);
    free(line);
    return rc;
}

int hap_alpn_unpublish(hap *h, const char *identifier)
{
    char *name = hap_alpn_cert_name(h, identifier);
    if (!name)
        return hap_fail(h, ACME_E_NOMEM, "out of memory");
    int rc = hap_word_ok(name) ? alpn_remove(h, name)
                               : hap_fail(h, ACME_E_INVALID_ARG, "tls-alpn-01: bad identifier \"%s\"", identifier);
    free(name);
    return rc;
}

/* ---- install ------------------------------------------------------------ */

char *hap_cert_file(hap *h, const char *cert_id)
{
    for (size_t i = 0; i < h->path_count; i++)
        if (!strcmp(h->paths[i].id, cert_id)) {
            char *s = strdup(h->paths[i].path);
            if (!s)
                hap_fail(h, ACME_E_NOMEM, "out of memory");
            return s;
        }
    if (!hap_word_ok(cert_id) || strchr(cert_id, '/') || cert_id[0] == '.' || strlen(cert_id) > 200) {
        hap_fail(h, ACME_E_INVALID_ARG, "certificate id \"%s\" cannot be a file name; give its file with "
                 "cert-path.<id>", cert_id);
        return NULL;
    }
    char *s = dup_printf("%s/%s.pem", h->cert_dir, cert_id);
    if (!s)
        hap_fail(h, ACME_E_NOMEM, "out of memory");
    return s;
}

/* HAProxy's SHA-1 fingerprint of what it serves from path, or NULL. */
static char *served_sha1(hap *h, const char *path)
{
    char *cmd = dup_printf("show ssl cert %s", path);
    char *reply = NULL, *fp = NULL;
    hap_kind kind = HAP_OK;
    if (cmd && hap_run(h, cmd, NULL, &reply, &kind) == ACME_OK) {
        FOR_LINES(reply, line, len)
        {
            static const char tag[] = "SHA1 FingerPrint: ";
            if (!fp && len > sizeof(tag) - 1 && !memcmp(line, tag, sizeof(tag) - 1))
                fp = strndup(line + sizeof(tag) - 1, len - (sizeof(tag) - 1));
        }
    }
    free(reply);
    free(cmd);
    return fp;
}

/* The check HAProxy's commit makes, for the times we write without one. */
static int check_pair(hap *h, const char *cert_id, const char *path, const char *pem)
{
    int rc = hap_pem_check(h, pem);
    if (rc) {
        char why[HAP_ERR];
        memcpy(why, h->err, sizeof(why));
        rc = hap_fail(h, rc, "certificate %s: %s; nothing written to %s, HAProxy keeps the old one", cert_id, why,
                      path);
    }
    return rc;
}

/* HAProxy cannot be reached: the disk is what it will serve at its next
 * start, so write it there (after checking the pair, which HAProxy's
 * commit would otherwise have done) and still report the failure. */
static int install_offline(hap *h, const char *cert_id, const char *path, const char *pem)
{
    char why[HAP_ERR];
    memcpy(why, h->err, sizeof(why));
    int rc = check_pair(h, cert_id, path, pem);
    if (rc)
        return rc;
    int existed = hap_file_exists(path) == 1;
    int changed = 0;
    rc = hap_write_file(h, path, pem, strlen(pem), h->cert_mode, &changed);
    if (rc == ACME_OK && !existed && h->crt_list)
        rc = hap_crt_list_file_add(h, h->crt_list, path, h->crt_list_options);
    if (rc)
        return rc;
    hap_log(h, ACME_LOG_WARNING, "HAProxy unreachable: certificate %s written to %s only", cert_id, path);
    return hap_fail(h, ACME_E_CALLBACK, "%s; the certificate %s was %s %s, so HAProxy serves it from its next "
                    "start", why, cert_id, changed ? "written to" : "already in", path);
}

int hap_install(hap *h, const char *cert_id, const char *chain_pem, const char *key_pem)
{
    char *path = hap_cert_file(h, cert_id);
    if (!path)
        return ACME_E_INVALID_ARG;
    char *pem = hap_pem_payload(chain_pem, key_pem);
    char *fp_new = pem ? hap_pem_sha1(pem) : NULL;
    char *fp_old = NULL, *cmd = NULL;
    const char *list = h->crt_list ? h->crt_list : h->crt_dir;
    int rc = ACME_OK, known = 0, live = 1, in_list = 0, changed = 0;
    if (!pem || !fp_new) {
        rc = hap_fail(h, ACME_E_INVALID_ARG, "certificate %s: the chain or the key is not PEM", cert_id);
        goto out;
    }
    /* Already served (the engine hands over stored certificates at every
     * start)? Then no transaction: only the disk may lag behind. */
    fp_old = served_sha1(h, path);
    if (h->unreachable) {
        rc = install_offline(h, cert_id, path, pem);
        goto out;
    }
    if (fp_old && !strcmp(fp_old, fp_new)) {
        live = 0;
        known = 1;
        hap_log(h, ACME_LOG_DEBUG, "HAProxy already serves this certificate from %s", path);
        if ((rc = check_pair(h, cert_id, path, pem)))
            goto out;
    } else if ((rc = prepare_transaction(h, path, &known))) {
        if (h->unreachable)
            rc = install_offline(h, cert_id, path, pem);
        goto out;
    }
    if (!known) {
        if (!list) {
            rc = hap_fail(h, ACME_E_INVALID_ARG, "HAProxy does not serve %s yet and neither crt-list nor crt-dir "
                          "is set, so it cannot be added; set one, or reference the file in haproxy.cfg", path);
            goto out;
        }
        /* Before anything is created: is the list there? */
        if ((rc = crt_list_has(h, list, path, &in_list)))
            goto out;
        hap_kind kind = HAP_OK;
        cmd = dup_printf("new ssl cert %s", path);
        if (!cmd || (rc = run_ok(h, cmd, NULL, &kind))) {
            if (!cmd)
                rc = hap_fail(h, ACME_E_NOMEM, "out of memory");
            else if (kind == HAP_EXISTS)
                rc = ACME_OK, h->err[0] = '\0';
            if (rc)
                goto out;
        }
    }
    if (live && (rc = set_and_commit(h, path, pem))) {
        if (!known) {
            free(cmd);
            cmd = dup_printf("del ssl cert %s", path);
            if (cmd)
                run_quietly(h, cmd);
        }
        goto out;
    }
    if (!known && !in_list) {
        free(cmd);
        cmd = dup_printf("add ssl crt-list %s", list);
        char *line = h->crt_list_options ? dup_printf("%s %s", path, h->crt_list_options) : strdup(path);
        rc = cmd && line ? run_ok(h, cmd, line, NULL) : hap_fail(h, ACME_E_NOMEM, "out of memory");
        free(line);
        if (rc)
            goto out;
        in_list = 1;
    } else if (known && h->crt_list && (rc = crt_list_has(h, h->crt_list, path, &in_list))) {
        goto out;
    }
    /* The disk, so that a restart serves the same. */
    rc = hap_write_file(h, path, pem, strlen(pem), h->cert_mode, &changed);
    if (rc == ACME_OK && in_list && h->crt_list)
        rc = hap_crt_list_file_add(h, h->crt_list, path, h->crt_list_options);
    if (rc) {
        char why[HAP_ERR];
        memcpy(why, h->err, sizeof(why));
        rc = hap_fail(h, rc, "HAProxy serves the new certificate %s now, but it is not on disk: %s; a restart of "
                      "HAProxy would serve the old one", cert_id, why);
        goto out;
    }
    hap_log(h, ACME_LOG_INFO, "certificate %s %s %s%s%s", cert_id, live ? "installed: HAProxy serves it from" :
            "already served from", path, !known ? ", added to " : "", !known ? list : "");
out:
    if (pem) {
        explicit_bzero(pem, strlen(pem));
        free(pem);
    }
    free(fp_new);
    free(fp_old);
    free(cmd);
    free(path);
    return rc;
}
