/* http-01 through a map, no Lua. haproxy.cfg answers
 * /.well-known/acme-challenge/<token> with map(<map>) of the token (see
 * doc/haproxy.md); here we only change the map. A map must be referenced
 * by haproxy.cfg at start: HAProxy cannot load a new one at run time.
 *
 * The entries are not written to the map file: they live for seconds, a
 * stale one on disk would outlive a crash, and the engine places a new
 * order if HAProxy restarts in the middle of a validation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haproxy.h"

/* "del map" of the token; ACME_OK also when it was not there. */
static int del_token(hap *h, const char *token)
{
    char *cmd = NULL;
    if (asprintf(&cmd, "del map %s %s", h->map, token) < 0)
        return hap_fail(h, ACME_E_NOMEM, "out of memory");
    char *reply;
    hap_kind kind;
    int rc = hap_run(h, cmd, NULL, &reply, &kind);
    if (rc == ACME_OK) {
        if (kind != HAP_OK && kind != HAP_NOT_FOUND)
            rc = hap_refused(h, cmd, reply, kind);
        free(reply);
    }
    free(cmd);
    return rc;
}

int hap_map_publish(hap *h, const char *token, const char *key_authorization)
{
    if (!hap_word_ok(token) || !hap_word_ok(key_authorization))
        return hap_fail(h, ACME_E_INVALID_ARG, "http-01: the token or key authorization is not one word");
    /* "add map" of a key that is there adds a second entry and the first
     * keeps matching: a stale entry (a crash, an earlier attempt) goes first. */
    int rc = del_token(h, token);
    if (rc)
        return rc;
    char *cmd = NULL;
    if (asprintf(&cmd, "add map %s %s %s", h->map, token, key_authorization) < 0)
        return hap_fail(h, ACME_E_NOMEM, "out of memory");
    char *reply;
    hap_kind kind;
    rc = hap_run(h, cmd, NULL, &reply, &kind);
    free(cmd);
    if (rc)
        return rc;
    if (kind != HAP_OK) {
        /* The key authorization is public, but keeps the message short. */
        char *what = NULL;
        if (asprintf(&what, "add map %s %s ...", h->map, token) < 0)
            what = NULL;
        rc = hap_refused(h, what ? what : "add map", reply, kind);
        free(what);
    }
    free(reply);
    if (rc == ACME_OK)
        hap_log(h, ACME_LOG_DEBUG, "http-01 token %s is in map %s", token, h->map);
    return rc;
}

int hap_map_unpublish(hap *h, const char *token)
{
    if (!hap_word_ok(token))
        return hap_fail(h, ACME_E_INVALID_ARG, "http-01: the token is not one word");
    return del_token(h, token);
}
