/* Who answers which challenge type, and the publish/unpublish callbacks
 * libacme calls.
 *
 *   http-01      --webroot if given, else --hook if given, else the
 *                built-in responder on --http-port
 *   tls-alpn-01  --hook if given, else the built-in responder on --tls-port
 *   dns-01       --hook only (no DNS provider module yet); without a hook
 *                it is not offered
 *
 * Built-in responders run on their own threads (acme_issue blocks). For
 * `issue` they are bound before anything is sent, so a busy or privileged
 * port is reported before an order exists; for `renew` they are bound on
 * first use, so a run with nothing due touches no port. A type whose
 * responder cannot listen is dropped with a warning, and the next type in
 * --challenge order is used.
 *
 * A hook "declines" a challenge by exiting non-zero from `begin` (uacme's
 * convention). libacme has already chosen the challenge by then, so a
 * decline fails this order; issue.c then places a new one without the
 * declined type. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <pthread.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "acmectl.h"

typedef enum provider { P_NONE, P_BUILTIN, P_WEBROOT, P_HOOK } provider;

#define MAX_OUTCOMES 64

/* One published challenge, copied: enough to take it down without
 * libacme, which an interrupt needs (see provision_interrupt). */
typedef struct pub {
    struct pub *next;
    acme_challenge_type type;
    int wildcard;
    char *ident, *ident_type, *token, *auth, *key_auth, *http_path, *dns_name;
} pub;

struct provision {
    pthread_mutex_t mu;                /* publish/unpublish vs. an interrupt */
    pub *published;
    const acmectl_opts *o;
    acme_client *c;
    provider by_type[4];               /* indexed by acme_challenge_type */
    acme_challenge_type order[MAX_CHALLENGES];
    size_t order_count;
    int unusable[4];                   /* a responder that could not listen */
    acme_responder *http, *alpn;
    unsigned declined;
    char failure[512];
    /* "<type> for <ident>" -> validated or not, from libacme's progress
     * lines (see provision_note_log). */
    struct { char key[300]; int valid; } outcome[MAX_OUTCOMES];
    size_t outcome_count;
};

static const char *tname(acme_challenge_type t)
{
    return acme_challenge_type_name(t);
}

/* Why binding failed: libacme says only ACME_E_NETWORK, so try the same
 * bind here to get the errno a person can act on. */
static void bind_diagnosis(const char *addr, unsigned port, char *out, size_t len)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    int fam;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    const char *a = addr ? addr : "::";
    if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
        fam = AF_INET6;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
        fam = AF_INET;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else {
        bprintf(out, len, "not a numeric address");
        return;
    }
    int fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        bprintf(out, len, "%s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        if (e == EACCES)
            bprintf(out, len, "%s: ports below 1024 need root or CAP_NET_BIND_SERVICE", strerror(e));
        else if (e == EADDRINUSE)
            bprintf(out, len, "%s: another program (a web server?) listens there", strerror(e));
        else
            bprintf(out, len, "%s", strerror(e));
    } else {
        bprintf(out, len, "unknown reason");
    }
    close(fd);
}

/* Bind and start one built-in responder. 0 on success. */
static int start_builtin(provision *p, acme_challenge_type t)
{
    const acmectl_opts *o = p->o;
    acme_responder **slot = t == ACME_CHALLENGE_HTTP_01 ? &p->http : &p->alpn;
    if (*slot)
        return 0;
    if (p->unusable[t])
        return -1;
    acme_responder_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.size = sizeof(ro);
    ro.bind_address = o->bind;
    ro.port = t == ACME_CHALLENGE_HTTP_01 ? o->http_port : o->tls_port;
    acme_responder *r = NULL;
    int rc = acme_responder_new(t == ACME_CHALLENGE_HTTP_01 ? ACME_RESPONDER_HTTP01
                                                            : ACME_RESPONDER_TLSALPN01, &ro, &r);
    if (rc == ACME_OK && (rc = acme_responder_start_thread(r)) != ACME_OK) {
        acme_responder_free(r);
        r = NULL;
    }
    if (rc != ACME_OK) {
        char why[200];
        bind_diagnosis(o->bind, ro.port, why, sizeof(why));
        progress(ACME_LOG_WARNING, "%s not offered: the built-in responder cannot listen on %s port %u (%s; %s)",
                 tname(t), o->bind ? o->bind : "any address", ro.port, acme_strerror(rc), why);
        p->unusable[t] = 1;
        return -1;
    }
    progress(ACME_LOG_INFO, "built-in %s responder listening on %s port %u", tname(t),
             o->bind ? o->bind : "any address", acme_responder_port(r));
    *slot = r;
    return 0;
}

int provision_start(const acmectl_opts *o, int lazy, provision **out, char *err, size_t errlen)
{
    *out = NULL;
    provision *p = calloc(1, sizeof(*p));
    if (!p) {
        bprintf(err, errlen, "out of memory");
        return EXIT_INTERNAL;
    }
    p->o = o;
    pthread_mutex_init(&p->mu, NULL);
    for (size_t i = 0; i < o->challenge_count; i++) {
        acme_challenge_type t = o->challenges[i];
        provider pv = P_NONE;
        switch (t) {
        case ACME_CHALLENGE_HTTP_01:
            pv = o->webroot ? P_WEBROOT : o->hook ? P_HOOK : P_BUILTIN;
            break;
        case ACME_CHALLENGE_TLS_ALPN_01:
            pv = o->hook ? P_HOOK : P_BUILTIN;
            break;
        case ACME_CHALLENGE_DNS_01:
            if (o->hook)
                pv = P_HOOK;
            else if (o->challenges_explicit) {
                bprintf(err, errlen, "dns-01 needs --hook (acmectl has no DNS provider of its own yet)");
                free(p);
                return EXIT_USAGE;
            }
            break;
        default:
            break;
        }
        if (pv == P_NONE)
            continue;
        p->by_type[t] = pv;
        p->order[p->order_count++] = t;
    }
    if (!lazy) {
        for (size_t i = 0; i < p->order_count; i++)
            if (p->by_type[p->order[i]] == P_BUILTIN)
                (void)start_builtin(p, p->order[i]);
    }
    acme_challenge_type tmp[MAX_CHALLENGES];
    if (provision_types(p, tmp, MAX_CHALLENGES) == 0) {
        bprintf(err, errlen, "no challenge type can be answered here (see the warnings above): "
                 "free the port, use --http-port/--tls-port with a forwarded port, --webroot, or --hook");
        provision_stop(p);
        return EXIT_CHALLENGE;
    }
    *out = p;
    return EXIT_OK;
}

static void pub_free(pub *x)
{
    if (!x)
        return;
    free(x->ident);
    free(x->ident_type);
    free(x->token);
    free(x->auth);
    free(x->key_auth);
    free(x->http_path);
    free(x->dns_name);
    free(x);
}

void provision_stop(provision *p)
{
    if (!p)
        return;
    signals_watch(NULL);
    /* free stops the thread and closes every connection. */
    acme_responder_free(p->http);
    acme_responder_free(p->alpn);
    while (p->published) {
        pub *n = p->published->next;
        pub_free(p->published);
        p->published = n;
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void provision_bind_client(provision *p, acme_client *c)
{
    p->c = c;
}

size_t provision_types(const provision *p, acme_challenge_type *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < p->order_count && n < cap; i++)
        if (!p->unusable[p->order[i]])
            out[n++] = p->order[i];
    return n;
}

unsigned provision_take_declined(provision *p)
{
    unsigned d = p->declined;
    p->declined = 0;
    return d;
}

const char *provision_failure(const provision *p)
{
    return p->failure;
}

void provision_reset_failure(provision *p)
{
    p->failure[0] = '\0';
}

/* ---- challenge outcomes ----
 *
 * A uacme hook is told "done" or "failed" when a challenge is taken down,
 * but libacme's unpublish does not say which: it unpublishes after the
 * whole order, and before placing a new order when a challenge failed.
 * What libacme does say, on its log, is "<type> for <ident>: valid" and
 * "<type> for <ident> failed". Those lines are noted here; without one,
 * the presence of a recorded error decides. */

static void outcome_set(provision *p, const char *key, size_t keylen, int valid)
{
    if (keylen >= sizeof(p->outcome[0].key))
        return;
    size_t i;
    for (i = 0; i < p->outcome_count; i++)
        if (strlen(p->outcome[i].key) == keylen && !strncmp(p->outcome[i].key, key, keylen))
            break;
    if (i == p->outcome_count) {
        if (p->outcome_count == MAX_OUTCOMES)
            return;
        p->outcome_count++;
        memcpy(p->outcome[i].key, key, keylen);
        p->outcome[i].key[keylen] = '\0';
    }
    p->outcome[i].valid = valid;
}

void provision_note_log(provision *p, const char *msg)
{
    if (!p)
        return;
    static const char *const types[] = {"http-01 for ", "tls-alpn-01 for ", "dns-01 for "};
    for (size_t t = 0; t < 3; t++) {
        if (strncmp(msg, types[t], strlen(types[t])) != 0)
            continue;
        const char *ident = msg + strlen(types[t]);
        size_t n = strcspn(ident, ": ");
        if (!strncmp(ident + n, ": valid", 7) && ident[n + 7] == '\0')
            outcome_set(p, msg, (size_t)(ident + n - msg), 1);
        else if (!strncmp(ident + n, " failed", 7))
            outcome_set(p, msg, (size_t)(ident + n - msg), 0);
    }
}

/* 1 validated, 0 failed, -1 unknown. With forget, set it to unknown (a
 * new publish: what an earlier order said no longer applies). */
static int outcome_of(provision *p, const acme_challenge *ch, int forget)
{
    char key[300];
    const char *type = tname(acme_challenge_get_type(ch));
    const char *ident = acme_challenge_identifier(ch);
    /* libacme names a wildcard's authorization "*.name" or "name". */
    for (int pass = acme_challenge_is_wildcard(ch) ? 0 : 1; pass < 2; pass++) {
        bprintf(key, sizeof(key), "%s for %s%s", type, pass == 0 ? "*." : "", ident);
        for (size_t i = 0; i < p->outcome_count; i++) {
            if (strcmp(p->outcome[i].key, key) != 0)
                continue;
            if (forget)
                p->outcome[i].valid = -1;
            else if (p->outcome[i].valid >= 0)
                return p->outcome[i].valid;
        }
    }
    return -1;
}

/* ---- hook arguments ---- */

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = al[(v >> 18) & 63];
        out[o++] = al[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = al[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = al[v & 63];
    }
    out[o] = '\0';
}

/* The AUTH argument as uacme passes it: the key authorization for http-01,
 * base64url(SHA-256(key authorization)) for dns-01 (the TXT value) and
 * for tls-alpn-01 (what goes into the acmeIdentifier extension). */
static char *hook_auth(const acme_challenge *ch)
{
    const char *ka = acme_challenge_key_authorization(ch);
    switch (acme_challenge_get_type(ch)) {
    case ACME_CHALLENGE_DNS_01:
        return strdup(acme_challenge_dns_value(ch));
    case ACME_CHALLENGE_TLS_ALPN_01: {
        unsigned char d[32];
        char out[48];
        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, ka, strlen(ka), d) < 0)
            return NULL;
        b64url(d, sizeof(d), out);
        return strdup(out);
    }
    default:
        return strdup(ka);
    }
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static pub *pub_new(const acme_challenge *ch)
{
    pub *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->type = acme_challenge_get_type(ch);
    x->wildcard = acme_challenge_is_wildcard(ch);
    x->ident = dup_or_empty(acme_challenge_identifier(ch));
    x->ident_type = dup_or_empty(acme_challenge_identifier_type(ch));
    x->token = dup_or_empty(acme_challenge_token(ch));
    x->auth = hook_auth(ch);
    x->key_auth = dup_or_empty(acme_challenge_key_authorization(ch));
    x->http_path = dup_or_empty(acme_challenge_http_path(ch));
    x->dns_name = dup_or_empty(acme_challenge_dns_name(ch));
    if (!x->ident || !x->ident_type || !x->token || !x->auth || !x->key_auth || !x->http_path ||
        !x->dns_name) {
        pub_free(x);
        return NULL;
    }
    return x;
}

/* Run "HOOK method type ident token auth" with the environment a hook
 * script (acmectl's or uacme's) expects. */
static int run_challenge_hook(provision *p, const char *method, const pub *x)
{
    const acmectl_opts *o = p->o;
    const char *type = tname(x->type);
    const char *args[] = {method, type, x->ident, x->token, x->auth};
    char verbose[16];
    bprintf(verbose, sizeof(verbose), "%d", o->verbosity > 0 ? o->verbosity : 0);
    hook_env env[] = {
        {"ACMECTL_METHOD", method}, {"ACMECTL_TYPE", type}, {"ACMECTL_IDENT", x->ident},
        {"ACMECTL_IDENT_TYPE", x->ident_type}, {"ACMECTL_WILDCARD", x->wildcard ? "1" : "0"},
        {"ACMECTL_TOKEN", x->token}, {"ACMECTL_AUTH", x->auth}, {"ACMECTL_KEY_AUTH", x->key_auth},
        {"ACMECTL_HTTP_PATH", x->http_path}, {"ACMECTL_DNS_NAME", x->dns_name},
        {"ACMECTL_DIRECTORY", o->directory}, {"ACMECTL_STATE_DIR", o->state_dir},
        /* uacme's names, so its hook scripts run unchanged. */
        {"UACME_METHOD", method}, {"UACME_TYPE", type}, {"UACME_IDENT", x->ident},
        {"UACME_TOKEN", x->token}, {"UACME_AUTH", x->auth}, {"UACME_CONFDIR", o->state_dir},
        {"UACME_VERBOSE", verbose},
    };
    progress_activity("hook %s %s %s", method, type, x->ident);
    int st = hook_run(o->hook, args, sizeof(args) / sizeof(args[0]), env, sizeof(env) / sizeof(env[0]));
    progress_activity(NULL);
    return st;
}

/* ---- the callbacks ---- */

static int decline(provision *p, acme_challenge_type t)
{
    p->declined |= 1u << t;
    /* libacme wants a code; UNSUPPORTED reads right in its message. */
    return ACME_E_UNSUPPORTED;
}

static int publish_locked(provision *p, const acme_challenge *ch, pub *x)
{
    acme_challenge_type t = x->type;
    const char *ident = x->ident;
    int rc;
    if (t <= ACME_CHALLENGE_NONE || t > ACME_CHALLENGE_TLS_ALPN_01 || p->by_type[t] == P_NONE ||
        p->unusable[t]) {
        /* renew re-orders with the types stored at issue time; one this run
         * cannot answer is declined like a hook would. */
        progress(ACME_LOG_INFO, "%s for %s cannot be answered with these options; declining it", tname(t), ident);
        return decline(p, t);
    }
    switch (p->by_type[t]) {
    case P_BUILTIN:
        if (start_builtin(p, t) != 0)
            return decline(p, t);
        if (t == ACME_CHALLENGE_HTTP_01)
            rc = acme_responder_add_http01(p->http, x->token, x->key_auth);
        else
            rc = acme_responder_add_tlsalpn01(p->alpn, ident, acme_challenge_alpn_cert_pem(ch),
                                              acme_challenge_alpn_key_pem(ch));
        if (rc != ACME_OK) {
            bprintf(p->failure, sizeof(p->failure), "the built-in %s responder refused the challenge for %s (%s)",
                    tname(t), ident, acme_strerror(rc));
            return rc;
        }
        return ACME_OK;
    case P_WEBROOT: {
        char err[400];
        if (webroot_publish(p->o->webroot, x->token, x->key_auth, err, sizeof(err)) != 0) {
            bprintf(p->failure, sizeof(p->failure), "http-01 for %s: %s", ident, err);
            return ACME_E_STORAGE;
        }
        progress(ACME_LOG_INFO, "wrote %s/.well-known/acme-challenge/%s", p->o->webroot, x->token);
        return ACME_OK;
    }
    case P_HOOK: {
        (void)outcome_of(p, ch, 1);
        int st = run_challenge_hook(p, "begin", x);
        if (st == 0)
            return ACME_OK;
        if (st < 0 || st >= 256) {
            if (st < 0)
                bprintf(p->failure, sizeof(p->failure), "cannot run the hook %s: %s", p->o->hook, strerror(errno));
            else
                bprintf(p->failure, sizeof(p->failure), "the hook %s was killed by signal %d during begin %s %s",
                        p->o->hook, st - 256, tname(t), ident);
            return ACME_E_CALLBACK;
        }
        progress(ACME_LOG_INFO, "the hook declined %s for %s (exit status %d)", tname(t), ident, st);
        return decline(p, t);
    }
    default:
        return decline(p, t);
    }
}

int provision_publish(void *ud, const acme_challenge *ch)
{
    provision *p = ud;
    pub *x = pub_new(ch);
    if (!x)
        return ACME_E_NOMEM;
    pthread_mutex_lock(&p->mu);
    int rc = publish_locked(p, ch, x);
    if (rc == ACME_OK) {
        x->next = p->published;
        p->published = x;
        x = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    pub_free(x);
    return rc;
}

/* Take one down; method is "done" or "failed" for the hook. */
static void take_down(provision *p, const pub *x, const char *method)
{
    switch (p->by_type[x->type]) {
    case P_BUILTIN: {
        acme_responder *r = x->type == ACME_CHALLENGE_HTTP_01 ? p->http : p->alpn;
        if (r)
            (void)acme_responder_remove(r, x->type == ACME_CHALLENGE_HTTP_01 ? x->token : x->ident);
        break;
    }
    case P_WEBROOT:
        webroot_unpublish(p->o->webroot, x->token);
        break;
    case P_HOOK: {
        int st = run_challenge_hook(p, method, x);
        if (st != 0)
            progress(ACME_LOG_WARNING, "the hook's %s for %s %s exited with status %d; check that "
                     "nothing is left published", method, tname(x->type), x->ident, st);
        break;
    }
    default:
        break;
    }
}

int provision_unpublish(void *ud, const acme_challenge *ch)
{
    provision *p = ud;
    acme_challenge_type t = acme_challenge_get_type(ch);
    const char *token = acme_challenge_token(ch);
    pthread_mutex_lock(&p->mu);
    pub **pp = &p->published;
    while (*pp && !((*pp)->type == t && !strcmp((*pp)->token, token)))
        pp = &(*pp)->next;
    pub *x = *pp;
    if (x) {
        *pp = x->next;
        int valid = outcome_of(p, ch, 0);
        if (valid < 0)
            valid = !(p->c && acme_client_last_error(p->c)[0]);
        take_down(p, x, valid ? "done" : "failed");
    }
    pthread_mutex_unlock(&p->mu);
    pub_free(x);
    return ACME_OK;
}

size_t provision_interrupt(provision *p)
{
    /* Waits for a publish or unpublish in progress (a hook running),
     * then never lets go: the process exits after this. */
    pthread_mutex_lock(&p->mu);
    size_t n = 0;
    for (pub *x = p->published; x; x = x->next, n++)
        take_down(p, x, "failed");
    return n;
}
