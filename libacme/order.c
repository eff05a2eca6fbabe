/* The order driver: from newOrder to an installed certificate, as a state
 * machine that asks for one thing per step (an HTTP exchange, a wait, a
 * piece of slow work, a host callback). acme_issue() loops over it in one
 * thread; the engine drives many runs from an event loop. All retry,
 * fallback and cleanup state lives here, and what must survive a crash
 * (the key, the order URL, the failed challenge types) is persisted at
 * the step that creates it (certs/<id>/order.json). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "backoff.h"
#include "history.h"
#include "issue_spec.h"
#include "order.h"
#include "reentry.h"
#include "event_internal.h"
#include "storage_file.h"

typedef enum order_state {
    OS_START,
    OS_DIRECTORY,
    OS_ACCOUNT,
    OS_KEYGEN,
    OS_RESUME,
    OS_NEW_ORDER,
    OS_FETCH_AUTHZ,
    OS_PUBLISH,
    OS_RESPOND,
    OS_POLL_AUTHZ,
    OS_UNPUBLISH,
    OS_CSR,
    OS_FINALIZE,
    OS_POLL_ORDER,
    OS_DOWNLOAD,
    OS_ALTERNATE,
    OS_INSTALL,
    OS_CLEANUP,      /* unpublish + deactivate, then OS_RETRY_ORDER or OS_DONE */
    OS_DONE
} order_state;

typedef struct authz_slot {
    char *url;
    char *status;            /* as last seen */
    char *ident;             /* "name" or "*.name" (history/fallback key) */
    long name_idx;           /* the ordered name it is bound to, -1 before the fetch */
    acme_challenge *ch;      /* the challenge we answer, if any */
    unsigned offered;        /* bit per acme_challenge_type the CA offered */
    int published;
    int pending;             /* a host callback answered ACME_E_PENDING */
    int pending_rc;
    char *pending_why;       /* a failed answer's own sentence (a module's), or NULL */
    int deactivated;
    int responded;           /* the CA already has our answer (resumed order) */
    uint64_t poll_deadline;
    uint64_t poll_delay;
} authz_slot;

#define MAX_PREFS ISSUE_SPEC_MAX_PREFS
#define MAX_OP_RETRIES 3

struct order_run {
    acme_client *c;
    order_state state;
    int rc;
    char *error;
    acme_problem *problem;
    unsigned retry_after_s;
    uint64_t wake_at;
    uint64_t order_deadline;
    int retry_new_order;      /* after cleanup: place a new order (fallback) */

    /* what was asked (validated once, shared: issue_spec.h) */
    issue_spec *spec;
    char *replaces;

    /* progress */
    acme_key *cert_key;
    char *order_url;
    char *finalize_url;
    char *cert_url;
    authz_slot *authz;
    size_t authz_count;
    size_t cursor;
    char *csr;
    char *chain;             /* normalized PEM of the downloaded chain */
    cert_info *chain_info;   /* its facts, read with it (parsed once per issuance) */
    char **alts;
    size_t alt_count;
    size_t alt_cursor;
    json_t *failed;           /* {"ident": ["http-01", ...]} */
    json_t *attempts;         /* ["http-01 for x: why", ...] */
    int orders_placed;

    char *lock_name;          /* storage lock held while ordering */
    char *fail_ident;         /* the identifier whose challenge failed the run, for the event */
    int recheck;              /* after the lock: is a newer certificate stored? */
    int64_t known_not_after;  /* what the driver knew when it decided to order */
    int preloaded;            /* r->cert came from storage: install only */
    char *lock_try;           /* its name ("<ca-id>.order.<cert-id>") until held */
    int lock_lost;            /* the lock was lost: stop, write nothing more (order_lock_lost) */
    int lock_pending;         /* 1: the storage thread asks the table; 2: answered */
    int lock_rc;
    int barrier;              /* 1: waiting for queued writes to reach the table; 2: they did */
    int announce_created;     /* log the new order once its state is stored */
    int barrier_rc;
    order_want barrier_then;  /* what the step returned, handed on after the wait */

    /* the one thing in flight */
    net_op op;
    int op_active;
    int op_retries;
    int op_waiting;
    int op_job;               /* the awaited job is the op's (signing), not r->job */
    work_job job;
    acme_certificate *cert;   /* while install is pending */
    cert_info *stored_info;   /* facts of the certificate this run stored (for the engine's plan) */
    int install_pending;
    int install_rc;
    char *install_why;        /* a failed pending install's own sentence, or NULL */
};

/* ---- small helpers ---- */

static int is_ip(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static const char *first_name(const order_run *r)
{
    return r->spec->name_count ? r->spec->names[0] : "?";
}

/* "a.example, *.b.example" for sentences. malloc'ed (may be NULL). */
static char *names_list(const order_run *r)
{
    acme_buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < r->spec->name_count; i++) {
        buf_append_str(&b, i ? ", " : "");
        buf_append_str(&b, r->spec->names[i]);
    }
    return buf_steal(&b, NULL);
}

/* Refuse what the CA sent about identifiers: say what it was, what was
 * ordered, and whose fault it is. shown is the CA's text (cut short here;
 * client_fail escapes its control characters). */
static int refuse_ident(order_run *r, const char *what, const char *shown, const char *why)
{
    char *ex = text_excerpt(shown, 120), *ordered = names_list(r);
    int rc = client_fail(r->c, ACME_E_PROTOCOL, "%s%s%s%s %s (ordered: %s); refusing the order before any challenge "
                         "reached the host — the CA is at fault, report it to the CA", what, shown ? " \"" : "",
                         shown ? (ex ? ex : "?") : "", shown ? "\"" : "", why, ordered ? ordered : "?");
    free(ex);
    free(ordered);
    return rc;
}

static char *state_rel(const order_run *r)
{
    return xasprintf("certs/%s/order.json", r->spec->cert_id);
}

static void free_slots(order_run *r)
{
    for (size_t i = 0; i < r->authz_count; i++) {
        free(r->authz[i].url);
        free(r->authz[i].status);
        free(r->authz[i].ident);
        free(r->authz[i].pending_why);
        challenge_free(r->authz[i].ch);
    }
    free(r->authz);
    r->authz = NULL;
    r->authz_count = 0;
}

/* Forget the current order (not the key, not what failed). */
static void drop_order(order_run *r)
{
    free_slots(r);
    free(r->order_url);
    free(r->finalize_url);
    free(r->cert_url);
    free(r->csr);
    free(r->chain);
    cert_info_free(r->chain_info);
    r->chain_info = NULL;
    http_links_free(r->alts, r->alt_count);
    r->order_url = r->finalize_url = r->cert_url = r->csr = r->chain = NULL;
    r->alts = NULL;
    r->alt_count = r->alt_cursor = 0;
    r->cursor = 0;
}

void order_free(order_run *r)
{
    if (!r)
        return;
    if (r->lock_pending == 1)
        store_lock_forget(r->c, r);
    if (r->barrier == 1)
        store_lock_forget(r->c, &r->barrier);
    if (r->lock_name)
        store_unlock(r->c, r->lock_name);
    free(r->lock_name);
    free(r->lock_try);
    drop_order(r);
    issue_spec_free(r->spec);
    free(r->replaces);
    free(r->fail_ident);
    json_decref(r->failed);
    json_decref(r->attempts);
    /* The CSR job only borrows the certificate key (step_csr): a run
     * freed while that job is out must not free it twice. */
    if (r->job.key != r->cert_key)
        key_free(r->job.key);
    key_free(r->cert_key);
    free(r->error);
    free(r->install_why);
    problem_free(r->problem);
    if (r->op_active)
        net_op_clear(&r->op);
    free(r->job.csr);
    certificate_free(r->cert);
    cert_info_free(r->stored_info);
    free(r);
}

/* Keep the first failure: its sentence and problem move from the client
 * into the run (the client is shared by every run of an engine). */
static order_want order_fail(order_run *r, int rc)
{
    acme_client *c = r->c;
    if (!r->rc) {
        r->rc = rc ? rc : ACME_E_STATE;
        r->error = xstrdup(c->last_error ? c->last_error : acme_strerror(r->rc));
        r->problem = c->problem;
        c->problem = NULL;
    }
    result_reset(c);
    r->state = OS_CLEANUP;
    r->cursor = 0;
    return OW_CONTINUE;
}

/* Persist what a restart needs to resume this order. */
static int save_state(order_run *r)
{
    acme_client *c = r->c;
    char *key_pem = NULL;
    int rc = key_to_pem(r->cert_key, &key_pem);
    if (rc)
        return client_fail(c, rc, "could not encode the certificate key (%s)", acme_strerror(rc));
    json_t *names = json_array();
    for (size_t i = 0; i < r->spec->name_count; i++)
        json_array_append_new(names, json_string(r->spec->names[i]));
    json_t *o = json_pack("{s:o,s:s,s:s?,s:O,s:O}", "names", names, "key", key_pem, "order_url",
                          r->order_url, "failed", r->failed, "attempts", r->attempts);
    char *text = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
    json_decref(o);
    secure_free_str(key_pem);
    char *rel = state_rel(r);
    rc = (text && rel) ? store_put(c, rel, text, strlen(text), ACME_STORAGE_SECRET) : ACME_E_NOMEM;
    secure_free_str(text);
    free(rel);
    return rc;
}

static void remove_state(order_run *r)
{
    char *rel = state_rel(r);
    if (rel && store_remove(r->c, rel))
        result_reset(r->c);
    free(rel);
}

/* A stored run for the same names: take its key and its memory of what
 * failed, and (if it got that far) its order. */
static int load_state(order_run *r)
{
    acme_client *c = r->c;
    char *rel = state_rel(r);
    if (!rel)
        return ACME_E_NOMEM;
    acme_buf b;
    buf_init(&b, 1024 * 1024);
    b.secret = 1;
    int rc = store_get(c, rel, &b);
    free(rel);
    if (rc) {
        buf_clear(&b);
        if (rc == ACME_E_NOT_FOUND)
            return rc;
        result_reset(c);
        return ACME_E_NOT_FOUND; /* unreadable: start afresh, the next save replaces it */
    }
    json_t *o = json_parse_object(b.data, b.len);
    buf_clear(&b);
    rc = ACME_E_NOT_FOUND;
    json_t *names = json_object_get(o, "names");
    int same = json_array_size(names) == r->spec->name_count;
    for (size_t i = 0; same && i < r->spec->name_count; i++) {
        const char *n = json_string_value(json_array_get(names, i));
        same = n && ascii_casecmp(n, r->spec->names[i]) == 0;
    }
    const char *key = json_str(o, "key");
    if (same && key && key_from_pem(key, strlen(key), &r->cert_key) == ACME_OK) {
        const char *u = json_str(o, "order_url");
        if (u && strncmp(u, "https://", 8) == 0)
            r->order_url = strdup(u);
        json_t *f = json_object_get(o, "failed");
        if (json_is_object(f)) {
            json_decref(r->failed);
            r->failed = json_incref(f);
        }
        json_t *a = json_object_get(o, "attempts");
        if (json_is_array(a)) {
            json_decref(r->attempts);
            r->attempts = json_incref(a);
        }
        rc = ACME_OK;
    }
    json_decref(o);
    return rc;
}

/* ---- challenge history (per CA, history.c): which types worked for a name ---- */

static void history_note(order_run *r, const char *ident, acme_challenge_type t, int ok)
{
    history_record(r->c, ident, acme_challenge_type_name(t), ok);
}

static size_t ranked_types(order_run *r, const char *ident, acme_challenge_type *out)
{
    json_t *scores = history_scores(r->c, ident);
    size_t n = challenge_rank(r->spec->prefs, r->spec->pref_count, scores, json_object_get(r->failed, ident), out);
    json_decref(scores);
    return n;
}

/* ---- driving one network op, with retries for transient faults ---- */

static int start_op(order_run *r, const char *step, const char *url, const char *payload, const acme_key *key,
                    int want_json)
{
    int rc = net_op_post(&r->op, r->c, step, url, payload, key, want_json);
    r->op_active = 1;
    r->op_retries = 0;
    r->op_waiting = 0;
    return rc;
}

static int transient(const acme_client *c, const net_op *op)
{
    int st = op->x.resp.status;
    if (op->rc == ACME_E_NETWORK || op->rc == ACME_E_TIMEOUT)
        return 1;
    /* A paused account comes as a 429 too, but only the account's owner
     * can lift it (backoff.c): asking again within seconds cannot help. */
    if (st == 429 && backoff_paused(c->problem, NULL))
        return 0;
    /* 5xx and 429 are the CA saying "not now", not "no". */
    return (op->rc == ACME_E_PROBLEM || op->rc == ACME_E_HTTP) && (st >= 500 || st == 429);
}

/* OW_CONTINUE when the op has finished (result in r->op); else what to wait for. */
static order_want drive_op(order_run *r)
{
    acme_client *c = r->c;
    if (r->op_waiting) {
        if (now_ms() < r->wake_at)
            return OW_TIME;
        r->op_waiting = 0;
        net_op again;
        int rc = r->op.kind == NET_OP_DIRECTORY
                     ? net_op_directory(&again, c)
                     : net_op_post(&again, c, r->op.step, r->op.url, r->op.payload, r->op.key, r->op.want_json);
        again.soft_problem = r->op.soft_problem;
        net_op_clear(&r->op);
        r->op = again;
        if (rc) {
            r->op.rc = rc;
            r->op_active = 0;
            return OW_CONTINUE;
        }
    }
    r->op_job = 0;
    net_want nw = net_op_next(c, &r->op);
    if (nw == NET_HTTP)
        return OW_HTTP;
    if (nw == NET_WORK) {
        r->op_job = 1;
        return OW_WORK;
    }
    long long ra = http_response_retry_after_ms(&r->op.x.resp); /* at most 30 days */
    if (r->op.rc && ra >= 0)
        r->retry_after_s = http_response_retry_after_s(&r->op.x.resp);
    if (r->op.rc && transient(c, &r->op) && r->op_retries < MAX_OP_RETRIES &&
        (ra < 0 || ra <= 30000)) {
        uint64_t wait = ra >= 0 ? (uint64_t)ra : 1000ull << r->op_retries;
        alog(c, ACME_LOG_WARNING, "%s: %s; retrying in %llu ms", r->op.step,
             c->last_error ? c->last_error : acme_strerror(r->op.rc), (unsigned long long)wait);
        result_reset(c);
        r->op_retries++;
        r->op_waiting = 1;
        r->wake_at = now_ms() + wait;
        return OW_TIME;
    }
    r->op_active = 0;
    return OW_CONTINUE;
}

/* Finish with the op: its rc, and a failure recorded if any. */
static int op_rc(order_run *r)
{
    return r->op.rc;
}

/* ---- steps ---- */

/* Two processes (or two engines) on one storage must not order the same
 * certificate at once: the storage lock says who does. A holder that died
 * loses it (the default storage sees the dead holder; a lease bounds the rest). */

/* Storage shared by several hosts: between the driver's decision and the
 * lock, another holder may have done the work. A stored certificate newer
 * than the one the driver knew and not yet due is installed instead of
 * ordered again. 1 if so (r->state is set). */
static int order_recheck_stored(order_run *r)
{
    acme_client *c = r->c;
    acme_certificate *cur = NULL;
    if (certificate_load(c, r->spec->cert_id, &cur) != ACME_OK) {
        result_reset(c);
        return 0;
    }
    if (cur->info->not_after > r->known_not_after &&
        (int64_t)time(NULL) < renewal_time(cur->info->not_before, cur->info->not_after)) {
        char when[32];
        alog(c, ACME_LOG_INFO, "certificate %s was stored by another holder meanwhile (valid until %s): "
             "installing it, no new order", r->spec->cert_id, fmt_utc(cur->info->not_after, when));
        r->cert = cur;
        r->preloaded = 1;
        r->state = OS_INSTALL;
        return 1;
    }
    certificate_free(cur);
    return 0;
}

void order_set_recheck(order_run *r, int64_t known_not_after)
{
    r->recheck = 1;
    r->known_not_after = known_not_after;
}

static order_want step_start(order_run *r)
{
    acme_client *c = r->c;
    if (c->storage.lock && !r->lock_name) {
        /* In a CA list the lock is named by the first CA whatever CA
         * orders (lock_ca_id): two nodes at two CAs never both order. */
        int rc, held = 0;
        if (r->lock_pending == 1)
            return OW_EXTERNAL;
        if (r->lock_pending == 2) {
            rc = r->lock_rc;
            held = rc == ACME_OK;
            r->lock_pending = 0;
        } else {
            if (!r->lock_try && !(r->lock_try = xasprintf("%s.order.%s", c->lock_ca_id ? c->lock_ca_id : c->ca_id,
                                                       r->spec->cert_id)))
                return order_fail(r, ACME_E_NOMEM);
            rc = store_lock(c, r->lock_try, r, &held);
            if (rc == ACME_E_PENDING) {
                /* An engine asks the table on its storage thread. */
                r->lock_pending = 1;
                return OW_EXTERNAL;
            }
        }
        if (rc)
            return order_fail(r, client_fail(c, rc == ACME_E_LOCKED ? ACME_E_LOCKED : ACME_E_STORAGE,
                                             "order for %s: another process is ordering certificate %s right now "
                                             "(storage lock %s); wait for it to finish%s",
                                             first_name(r), r->spec->cert_id, r->lock_try,
                                             rc == ACME_E_LOCKED ? "" : " (the lock failed)"));
        if (held) {
            r->lock_name = r->lock_try;
            r->lock_try = NULL;
            event_plain(c, ACME_EVENT_LOCK_TAKEN, r->spec->cert_id);
        }
    }
    if (r->recheck && order_recheck_stored(r))
        return OW_CONTINUE;
    r->state = c->have_directory ? OS_ACCOUNT : OS_DIRECTORY;
    return OW_CONTINUE;
}

static order_want step_directory(order_run *r)
{
    if (!r->op_active) {
        int rc = net_op_directory(&r->op, r->c);
        r->op_active = 1;
        r->op_retries = 0;
        r->op_waiting = 0;
        if (rc)
            return order_fail(r, rc);
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    int rc = op_rc(r);
    net_op_clear(&r->op);
    if (rc)
        return order_fail(r, rc);
    r->state = OS_ACCOUNT;
    return OW_CONTINUE;
}

static order_want step_account(order_run *r)
{
    acme_client *c = r->c;
    if (!r->op_active) {
        int rc = account_load_local(c);
        if (rc == ACME_OK) {
            r->state = OS_KEYGEN;
            return OW_CONTINUE;
        }
        if (rc != ACME_E_NOT_FOUND)
            return order_fail(r, rc);
        /* Key but no cached URL: ask the CA which account it is. */
        if ((rc = start_op(r, "account lookup", c->url_new_account, "{\"onlyReturnExisting\":true}",
                           c->account_key, 1)))
            return order_fail(r, rc);
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    int rc = op_rc(r);
    if (!rc)
        rc = account_take_lookup(c, &r->op.x.resp, r->op.json);
    net_op_clear(&r->op);
    if (rc)
        return order_fail(r, rc);
    r->state = OS_KEYGEN;
    return OW_CONTINUE;
}

static int profile_ok(order_run *r);

static void job_keygen(work_job *j)
{
    j->rc = key_generate((acme_key_type)j->key_type, &j->key);
}

static void job_csr(work_job *j)
{
    j->rc = csr_create(j->key, (const char *const *)j->names, j->name_count, &j->csr);
}

static order_want step_keygen(order_run *r)
{
    acme_client *c = r->c;
    if (!r->job.fn) {
        /* A run that was here before (crash, restart) keeps its key and order. */
        if (!r->cert_key && load_state(r) == ACME_OK) {
            alog(c, ACME_LOG_INFO, "order for %s: found saved state%s", first_name(r),
                 r->order_url ? "; resuming the order" : "");
            r->state = r->order_url ? OS_RESUME : OS_NEW_ORDER;
            return OW_CONTINUE;
        }
        if (r->cert_key) {
            r->state = OS_NEW_ORDER;
            return OW_CONTINUE;
        }
        /* An unknown profile fails before any work or any order. */
        int prc = profile_ok(r);
        if (prc)
            return order_fail(r, prc);
        alog(c, ACME_LOG_INFO, "order for %s: generating the %s certificate key", first_name(r),
             acme_key_type_name(r->spec->key_type));
        memset(&r->job, 0, sizeof(r->job));
        r->job.fn = job_keygen;
        r->job.key_type = (int)r->spec->key_type;
        return OW_WORK;
    }
    r->job.fn = NULL;
    if (r->job.rc)
        return order_fail(r, client_fail(c, r->job.rc, "order for %s: could not generate the certificate key (%s)",
                                         first_name(r), acme_strerror(r->job.rc)));
    r->cert_key = r->job.key;
    r->job.key = NULL;
    /* Saved with the order URL once the CA made the order: before that a
     * crash loses only a key nobody has seen. */
    r->state = OS_NEW_ORDER;
    return OW_CONTINUE;
}

static int profile_ok(order_run *r)
{
    acme_client *c = r->c;
    if (!r->spec->profile)
        return ACME_OK;
    if (!c->profiles)
        return client_fail(c, ACME_E_UNSUPPORTED, "order for %s: profile \"%s\" asked for, but the CA (%s) "
                           "offers no profiles; drop the profile setting", first_name(r), r->spec->profile, c->directory_url);
    if (json_object_get(c->profiles, r->spec->profile))
        return ACME_OK;
    acme_buf b;
    buf_init(&b, 0);
    const char *k;
    json_t *v;
    json_object_foreach(c->profiles, k, v) {
        buf_append_str(&b, b.len ? ", " : "");
        buf_append_str(&b, k);
    }
    int rc = client_fail(c, ACME_E_INVALID_ARG, "order for %s: the CA has no profile \"%s\"; it offers: %s",
                         first_name(r), r->spec->profile, b.data ? b.data : "");
    buf_clear(&b);
    return rc;
}

static int take_order(order_run *r, json_t *order)
{
    acme_client *c = r->c;
    const char *fin = json_str(order, "finalize");
    json_t *auths = json_object_get(order, "authorizations");
    if (!fin || !json_is_array(auths) || json_array_size(auths) == 0)
        return client_fail(c, ACME_E_PROTOCOL, "order %s lacks finalize or authorizations", r->order_url);
    /* At most one authorization per ordered identifier (RFC 8555 §7.1.3):
     * each one may cost a host callback, a DNS update or a hook run. */
    if (json_array_size(auths) > r->spec->name_count) {
        char *what = xasprintf("order %s lists %zu authorizations for %zu ordered identifier(s);", r->order_url,
                               json_array_size(auths), r->spec->name_count);
        int rc = refuse_ident(r, what ? what : "order", NULL, "a CA owes at most one per identifier");
        free(what);
        return rc;
    }
    const char *why = NULL;
    int rc = order_identifiers_match((const char *const *)r->spec->names, r->spec->name_count, order, &why);
    if (rc == ACME_E_PROTOCOL) {
        char *got = json_dumps(json_object_get(order, "identifiers"), JSON_COMPACT | JSON_ENCODE_ANY);
        char *what = xasprintf("order %s: the CA's identifiers", r->order_url);
        rc = refuse_ident(r, what ? what : "order", got ? got : "?", why);
        free(what);
        free(got);
    }
    if (rc)
        return rc;
    rc = net_url_ok(c, "finalize", fin);
    if (rc)
        return rc;
    free_slots(r);
    free(r->finalize_url);
    r->finalize_url = strdup(fin);
    r->authz_count = json_array_size(auths);
    r->authz = calloc(r->authz_count, sizeof(*r->authz));
    if (!r->finalize_url || !r->authz)
        return ACME_E_NOMEM;
    for (size_t i = 0; i < r->authz_count; i++) {
        const char *u = json_string_value(json_array_get(auths, i));
        if ((rc = net_url_ok(c, "authorization", u)))
            return rc;
        if (!(r->authz[i].url = strdup(u)))
            return ACME_E_NOMEM;
        r->authz[i].name_idx = -1;
    }
    return ACME_OK;
}

static order_want step_new_order(order_run *r)
{
    acme_client *c = r->c;
    if (!r->op_active) {
        int rc = profile_ok(r);
        if (rc)
            return order_fail(r, rc);
        drop_order(r);
        json_t *ids = json_array();
        for (size_t i = 0; i < r->spec->name_count; i++)
            json_array_append_new(ids, json_pack("{s:s,s:s}", "type", is_ip(r->spec->names[i]) ? "ip" : "dns",
                                                 "value", r->spec->names[i]));
        json_t *payload = json_pack("{s:o}", "identifiers", ids);
        if (payload && r->replaces)
            json_object_set_new(payload, "replaces", json_string(r->replaces));
        if (payload && r->spec->profile)
            json_object_set_new(payload, "profile", json_string(r->spec->profile));
        char *text = payload ? json_text(payload) : NULL;
        json_decref(payload);
        rc = text ? start_op(r, "newOrder", c->url_new_order, text, NULL, 1) : ACME_E_NOMEM;
        free(text);
        if (rc)
            return order_fail(r, rc);
        /* A refusal of "replaces" is answered below by ordering without
         * it: a warning, not an error line. */
        r->op.soft_problem = r->replaces != NULL;
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    int rc = op_rc(r);
    if (rc && r->replaces && c->problem) {
        /* RFC 9773 §5: a CA may refuse "replaces" (already replaced, not
         * ours to replace); the certificate is still wanted. */
        alog(c, ACME_LOG_WARNING, "newOrder with replaces=%s refused (%s); ordering without it", r->replaces,
             c->last_error ? c->last_error : "");
        result_reset(c);
        free(r->replaces);
        r->replaces = NULL;
        net_op_clear(&r->op);
        return OW_CONTINUE;
    }
    if (!rc) {
        const char *loc = http_response_header(&r->op.x.resp, "Location");
        if (!loc)
            rc = client_fail(c, ACME_E_PROTOCOL, "newOrder: the CA's answer has no Location");
        else if (!(rc = net_url_ok(c, "order", loc))) {
            r->order_url = strdup(loc);
            rc = r->order_url ? take_order(r, r->op.json) : ACME_E_NOMEM;
        }
    }
    net_op_clear(&r->op);
    if (!rc)
        rc = save_state(r);
    if (rc)
        return order_fail(r, rc);
    r->orders_placed++;
    /* Said once the state is on the table (order_step): from that line on
     * a restart resumes this order. */
    r->announce_created = 1;
    r->state = OS_FETCH_AUTHZ;
    r->cursor = 0;
    return OW_CONTINUE;
}

/* After a restart: where did the saved order get to? */
static order_want step_resume(order_run *r)
{
    acme_client *c = r->c;
    if (!r->op_active) {
        alog(c, ACME_LOG_INFO, "resuming order %s", r->order_url);
        int rc = start_op(r, "order", r->order_url, NULL, NULL, 1);
        if (rc)
            return order_fail(r, rc);
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    int rc = op_rc(r);
    const char *st = rc ? NULL : json_str(r->op.json, "status");
    if (!rc && st && (strcmp(st, "pending") == 0 || strcmp(st, "ready") == 0 ||
                      strcmp(st, "processing") == 0 || strcmp(st, "valid") == 0)) {
        rc = take_order(r, r->op.json);
        const char *cu = json_str(r->op.json, "certificate");
        if (!rc && strcmp(st, "valid") == 0 && cu && !net_url_ok(c, "certificate", cu))
            r->cert_url = strdup(cu);
        if (!rc)
            r->state = strcmp(st, "pending") == 0 ? OS_FETCH_AUTHZ
                     : strcmp(st, "ready") == 0   ? OS_CSR
                     : r->cert_url                ? OS_DOWNLOAD
                                                  : OS_POLL_ORDER;
        r->cursor = 0;
    } else {
        /* Gone, expired or invalid: a new order with the same key. */
        alog(c, ACME_LOG_INFO, "saved order %s is %s; placing a new one", r->order_url, st ? st : "unusable");
        result_reset(c);
        rc = ACME_OK;
        r->state = OS_NEW_ORDER;
    }
    net_op_clear(&r->op);
    if (rc)
        return order_fail(r, rc);
    return OW_CONTINUE;
}

static void list_types(json_t *chals, acme_buf *out)
{
    for (size_t i = 0; i < json_array_size(chals); i++) {
        const char *t = json_str(json_array_get(chals, i), "type");
        buf_append_str(out, i ? ", " : "");
        buf_append_str(out, t ? t : "?");
    }
}

static int choose_challenge(order_run *r, authz_slot *s, json_t *authz)
{
    acme_client *c = r->c;
    json_t *chals = json_object_get(authz, "challenges");
    for (size_t i = 0; i < json_array_size(chals); i++)
        s->offered |= 1u << challenge_type_from_name(json_str(json_array_get(chals, i), "type"));
    acme_challenge_type ranked[MAX_PREFS];
    size_t n = ranked_types(r, s->ident, ranked);
    for (size_t p = 0; p < n; p++)
        for (size_t i = 0; i < json_array_size(chals); i++) {
            json_t *ch = json_array_get(chals, i);
            if (challenge_type_from_name(json_str(ch, "type")) == ranked[p]) {
                /* A resumed order may have answered already: answering a
                 * challenge twice is an error at some CAs. */
                const char *cst = json_str(ch, "status");
                s->responded = cst && (strcmp(cst, "processing") == 0 || strcmp(cst, "valid") == 0);
                return challenge_prepare(c, authz, ch, &s->ch);
            }
        }
    acme_buf offered, wanted;
    buf_init(&offered, 0);
    buf_init(&wanted, 0);
    list_types(chals, &offered);
    for (size_t p = 0; p < r->spec->pref_count; p++) {
        buf_append_str(&wanted, p ? ", " : "");
        buf_append_str(&wanted, acme_challenge_type_name(r->spec->prefs[p]));
    }
    int rc = client_fail(c, ACME_E_NO_CHALLENGE, "authorization for %s offers %s; none of the allowed challenge "
                         "types (%s)%s — allow one of the offered types%s", s->ident,
                         offered.data ? offered.data : "", wanted.data ? wanted.data : "",
                         json_object_get(r->failed, s->ident) ? " that has not failed already" : "",
                         json_is_true(json_object_get(authz, "wildcard")) ? " (wildcards need dns-01)" : "");
    buf_clear(&offered);
    buf_clear(&wanted);
    return rc;
}

static int set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = strdup(src ? src : "");
    return *dst ? ACME_OK : ACME_E_NOMEM;
}

/* Bind an authorization to the ordered name it is for, or refuse the
 * order: a CA must not make us publish, hook or serve a name we did not
 * order (RFC 8555 §7.1.4: one authorization per ordered identifier). On
 * success the authorization's identifier is rewritten to our spelling of
 * the name, so the host sees exactly what it asked for. */
static int bind_authz(order_run *r, authz_slot *s, json_t *authz)
{
    unsigned char *taken = calloc(r->spec->name_count, 1);
    if (!taken)
        return ACME_E_NOMEM;
    for (size_t i = 0; i < r->authz_count; i++)
        if (&r->authz[i] != s && r->authz[i].name_idx >= 0)
            taken[r->authz[i].name_idx] = 1;
    size_t idx = 0;
    const char *why = NULL;
    s->name_idx = -1;
    int rc = authz_matches_order((const char *const *)r->spec->names, r->spec->name_count, taken, authz, &idx, &why);
    free(taken);
    if (rc == ACME_E_PROTOCOL) {
        json_t *id = json_object_get(authz, "identifier");
        const char *type = json_str(id, "type"), *value = json_str(id, "value");
        char *what = xasprintf("authorization %.200s%s", s->url, type && value ? ": the CA's identifier" : "");
        char *shown = type && value ? xasprintf("%s %s%s", type, value,
                                               json_is_true(json_object_get(authz, "wildcard")) ? " (wildcard)" : "")
                                    : NULL;
        rc = refuse_ident(r, what ? what : "authorization", shown, why);
        free(what);
        free(shown);
        return rc;
    }
    if (rc)
        return rc;
    const char *name = r->spec->names[idx];
    json_t *id = json_object_get(authz, "identifier");
    if (json_object_set_new(id, "value", json_string(strncmp(name, "*.", 2) == 0 ? name + 2 : name)) ||
        json_object_set_new(id, "type", json_string(is_ip(name) ? "ip" : "dns")))
        return ACME_E_NOMEM;
    s->name_idx = (long)idx;
    return ACME_OK;
}

static order_want step_fetch_authz(order_run *r)
{
    acme_client *c = r->c;
    if (r->cursor >= r->authz_count) {
        r->state = OS_PUBLISH;
        r->cursor = 0;
        return OW_CONTINUE;
    }
    authz_slot *s = &r->authz[r->cursor];
    if (s->ch) {
        /* Already chosen (we are back here after a host declined another slot's type). */
        r->cursor++;
        return OW_CONTINUE;
    }
    if (!r->op_active) {
        int rc = start_op(r, "authorization", s->url, NULL, NULL, 1);
        if (rc)
            return order_fail(r, rc);
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    int rc = op_rc(r);
    json_t *authz = r->op.json;
    const char *st = json_str(authz, "status");
    /* Seen pending, it is deactivated in cleanup even when refused below. */
    if (!rc)
        rc = set_str(&s->status, st);
    if (!rc)
        rc = bind_authz(r, s, authz);
    if (!rc) {
        free(s->ident);
        s->ident = strdup(r->spec->names[s->name_idx]);
        rc = s->ident ? ACME_OK : ACME_E_NOMEM;
    }
    if (!rc && st && strcmp(st, "valid") == 0)
        alog(c, ACME_LOG_INFO, "authorization for %s is already valid", s->ident);
    else if (!rc && st && strcmp(st, "pending") == 0)
        rc = choose_challenge(r, s, authz);
    else if (!rc)
        rc = client_fail(c, ACME_E_ORDER_FAILED, "authorization for %s is \"%s\"; it cannot be used — place a new order",
                         s->ident, st ? st : "(no status)");
    net_op_clear(&r->op);
    if (rc)
        return order_fail(r, rc);
    r->cursor++;
    return OW_CONTINUE;
}

/* The step taking a pending answer: the sentence the answer came with
 * (order_external_done_why) becomes the client's last error, which the
 * failure below quotes; whatever the steps since its delivery left
 * there does not explain it. */
static void take_why(acme_client *c, char **why)
{
    if (!*why)
        return;
    free(c->last_error);
    c->last_error = *why;
    *why = NULL;
}

/* A host callback's answer: OW_CONTINUE to go on, OW_EXTERNAL to wait. */
static order_want callback_answer(order_run *r, authz_slot *s, int rc, const char *what)
{
    acme_client *c = r->c;
    if (rc == ACME_E_PENDING) {
        s->pending = 1;
        return OW_EXTERNAL;
    }
    if (rc)
        return order_fail(r, client_fail(c, ACME_E_CALLBACK, "%s %s for %s failed in the host (%s)%s%s; check the "
                                         "host's challenge set-up", what, acme_challenge_type_name(s->ch->type),
                                         s->ch->identifier, acme_strerror(rc),
                                         c->last_error ? ": " : "", c->last_error ? c->last_error : ""));
    return OW_CONTINUE;
}

/* The host cannot serve this type: nothing went to the CA yet, so the
 * authorization is still pending — choose again without that type. */
static order_want decline(order_run *r, authz_slot *s)
{
    acme_client *c = r->c;
    const char *tn = acme_challenge_type_name(s->ch->type);
    alog(c, ACME_LOG_INFO, "the host declined %s for %s; trying the next allowed type", tn, s->ident);
    json_t *arr = json_object_get(r->failed, s->ident);
    if (!arr) {
        arr = json_array();
        json_object_set_new(r->failed, s->ident, arr);
    }
    json_array_append_new(arr, json_string(tn));
    char *line = xasprintf("%s for %s: declined by the host", tn, s->ident);
    if (line)
        json_array_append_new(r->attempts, json_string(line));
    free(line);
    challenge_free(s->ch);
    s->ch = NULL;
    s->published = 0;
    s->pending = 0;
    result_reset(c);
    r->state = OS_FETCH_AUTHZ; /* cursor still points at this slot */
    return OW_CONTINUE;
}

/* Publish every challenge before responding to any, so the CA's
 * validators (which arrive in parallel, from several places) find all of
 * them in place, and slow publishing (DNS) overlaps. */
static order_want step_publish(order_run *r)
{
    acme_client *c = r->c;
    for (; r->cursor < r->authz_count; r->cursor++) {
        authz_slot *s = &r->authz[r->cursor];
        if (s->pending == 1)
            return OW_EXTERNAL;
        if (s->pending == 2) {
            s->pending = 0;
            take_why(c, &s->pending_why);
            if (s->pending_rc == ACME_E_DECLINED)
                return decline(r, s);
            s->published = s->pending_rc == ACME_OK;
            if (s->published)
                event_step(c, ACME_EVENT_PUBLISHED, r->spec->cert_id, s->ch->identifier, s->ch->type, NULL);
            order_want w = callback_answer(r, s, s->pending_rc, "publishing");
            /* A failure moved the run to its clean-up: publish no more. */
            if (w != OW_CONTINUE || r->rc)
                return w;
            continue;
        }
        if (!s->ch || s->published)
            continue;
        if (!c->host.publish && s->ch->type == ACME_CHALLENGE_DNS_PERSIST_01) {
            /* The owner created the persistent record once; a host that
             * wants to check it first sets publish. */
            alog(c, ACME_LOG_INFO, "dns-persist-01 for %s: relying on the TXT record at %s", s->ch->identifier,
                 s->ch->dns_name);
            continue;
        }
        if (!c->host.publish)
            return order_fail(r, client_fail(c, ACME_E_STATE, "%s for %s: no publish callback set (acme_client_set_host)",
                                             acme_challenge_type_name(s->ch->type), s->ch->identifier));
        alog(c, ACME_LOG_INFO, "publishing %s for %s", acme_challenge_type_name(s->ch->type), s->ch->identifier);
        const char *cb = callback_enter(c, "publish");
        int rc = c->host.publish(c->host_ud, s->ch);
        callback_leave(c, cb);
        if (rc == ACME_E_DECLINED)
            return decline(r, s);
        s->published = rc == ACME_OK;
        if (s->published)
            event_step(c, ACME_EVENT_PUBLISHED, r->spec->cert_id, s->ch->identifier, s->ch->type, NULL);
        order_want w = callback_answer(r, s, rc, "publishing");
        if (w != OW_CONTINUE)
            return w;
        r->cursor++;
        return OW_CONTINUE; /* one callback per step */
    }
    r->state = OS_RESPOND;
    r->cursor = 0;
    return OW_CONTINUE;
}

static order_want step_respond(order_run *r)
{
    acme_client *c = r->c;
    while (r->cursor < r->authz_count && (!r->authz[r->cursor].ch || r->authz[r->cursor].responded)) {
        authz_slot *done = &r->authz[r->cursor];
        if (done->ch) {
            done->poll_deadline = now_ms() + r->c->poll_limit_ms;
            done->poll_delay = 50;
        }
        r->cursor++;
    }
    if (r->cursor >= r->authz_count) {
        r->state = OS_POLL_AUTHZ;
        r->cursor = 0;
        return OW_CONTINUE;
    }
    authz_slot *s = &r->authz[r->cursor];
    if (!r->op_active) {
        /* "{}" tells the CA we are ready (RFC 8555 §7.5.1). */
        int rc = start_op(r, "challenge response", s->ch->url, "{}", NULL, 1);
        if (rc)
            return order_fail(r, rc);
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    int rc = op_rc(r);
    net_op_clear(&r->op);
    if (rc)
        return order_fail(r, rc);
    alog(c, ACME_LOG_INFO, "asked the CA to validate %s for %s", acme_challenge_type_name(s->ch->type),
         s->ch->identifier);
    s->poll_deadline = now_ms() + c->poll_limit_ms;
    s->poll_delay = 50;
    r->cursor++;
    return OW_CONTINUE;
}

static const char *challenge_hint(acme_challenge_type t)
{
    switch (t) {
    case ACME_CHALLENGE_HTTP_01:
        return "check that the name resolves to this host, port 80 reaches the responder, and "
               "/.well-known/acme-challenge/ is served";
    case ACME_CHALLENGE_TLS_ALPN_01:
        return "check that the name resolves to this host and port 443 reaches a responder that answers ALPN acme-tls/1";
    case ACME_CHALLENGE_DNS_01:
    case ACME_CHALLENGE_DNS_ACCOUNT_01:
        return "check that the TXT record is visible at every authoritative server of the zone";
    case ACME_CHALLENGE_DNS_PERSIST_01:
        return "check the _validation-persist TXT record (acmectl dns-persist NAME prints the one to create)";
    default:
        return "see the problem detail";
    }
}

/* The challenge failed: remember it, and decide between a new order with
 * the next type (one failed challenge kills the whole order, RFC 8555
 * §7.5.1) and giving up. */
static order_want challenge_failed(order_run *r, authz_slot *s, json_t *authz, const char *st)
{
    acme_client *c = r->c;
    acme_problem *p = NULL;
    json_t *chals = json_object_get(authz, "challenges");
    for (size_t i = 0; i < json_array_size(chals) && !p; i++) {
        json_t *ch = json_array_get(chals, i);
        const char *u = json_str(ch, "url");
        if (u && strcmp(u, s->ch->url) == 0)
            p = problem_from_json(json_object_get(ch, "error"));
    }
    char *desc = p ? problem_describe(p) : NULL;
    char *line = xasprintf("%s for %s: %s", acme_challenge_type_name(s->ch->type), s->ident,
                           desc ? desc : "the CA gave no reason");
    if (line)
        json_array_append_new(r->attempts, json_string(line));
    free(line);
    json_t *arr = json_object_get(r->failed, s->ident);
    if (!arr) {
        arr = json_array();
        json_object_set_new(r->failed, s->ident, arr);
    }
    json_array_append_new(arr, json_string(acme_challenge_type_name(s->ch->type)));
    history_note(r, s->ident, s->ch->type, 0);

    /* Is there another allowed, offered type left for this identifier? */
    acme_challenge_type ranked[MAX_PREFS];
    size_t n = ranked_types(r, s->ident, ranked);
    int more = 0;
    for (size_t i = 0; i < n && !more; i++)
        more = (s->offered >> ranked[i]) & 1u;
    if (p)
        keep_problem(c, p);
    if (more) {
        alog(c, ACME_LOG_WARNING, "%s for %s failed (%s); the order is dead — placing a new order with the next "
             "challenge type", acme_challenge_type_name(s->ch->type), s->ident, desc ? desc : "no reason given");
        free(desc);
        if (save_state(r))
            result_reset(c);
        result_reset(c);
        r->retry_new_order = 1;
        r->state = OS_CLEANUP;
        r->cursor = 0;
        return OW_CONTINUE;
    }
    int rc;
    if (json_array_size(r->attempts) > 1) {
        acme_buf all;
        buf_init(&all, 0);
        for (size_t i = 0; i < json_array_size(r->attempts); i++) {
            buf_append_str(&all, i ? "; " : "");
            buf_append_str(&all, json_string_value(json_array_get(r->attempts, i)));
        }
        rc = client_fail(c, ACME_E_CHALLENGE_FAILED, "every allowed challenge type failed for %s after %zu "
                         "attempts: %s; %s", s->ident, json_array_size(r->attempts), all.data ? all.data : "",
                         challenge_hint(s->ch->type));
        buf_clear(&all);
    } else {
        rc = client_fail(c, ACME_E_CHALLENGE_FAILED, "%s for %s failed (authorization %s): %s; %s",
                         acme_challenge_type_name(s->ch->type), s->ident, st ? st : "?",
                         desc ? desc : "the CA gave no reason", challenge_hint(s->ch->type));
    }
    free(desc);
    remove_state(r);
    if (!r->fail_ident)
        r->fail_ident = xstrdup(s->ch->identifier);
    return order_fail(r, rc);
}

static order_want step_poll_authz(order_run *r)
{
    acme_client *c = r->c;
    while (r->cursor < r->authz_count && !r->authz[r->cursor].ch)
        r->cursor++;
    if (r->cursor >= r->authz_count) {
        r->state = OS_UNPUBLISH;
        r->cursor = 0;
        return OW_CONTINUE;
    }
    authz_slot *s = &r->authz[r->cursor];
    if (!r->op_active) {
        if (now_ms() < r->wake_at)
            return OW_TIME;
        int rc = start_op(r, "authorization", s->url, NULL, NULL, 1);
        if (rc)
            return order_fail(r, rc);
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    int rc = op_rc(r);
    if (rc) {
        net_op_clear(&r->op);
        return order_fail(r, rc);
    }
    json_t *authz = r->op.json;
    r->op.json = NULL;
    /* Read before the op (and its response) is cleared. */
    long long ra = http_response_retry_after_ms(&r->op.x.resp);
    net_op_clear(&r->op);
    const char *st = json_str(authz, "status");
    json_t *id = json_object_get(authz, "identifier");
    if (s->name_idx < 0 || !ident_is_name(json_str(id, "type"), json_str(id, "value"),
                                          json_is_true(json_object_get(authz, "wildcard")), 0,
                                          r->spec->names[s->name_idx])) {
        /* The same URL now names another identifier: nothing it says can be trusted. */
        char *what = xasprintf("authorization %.200s, polled, names another identifier than it did; it", s->url);
        json_decref(authz);
        int rc = refuse_ident(r, what ? what : "authorization", NULL, "is not the one we answered");
        free(what);
        return order_fail(r, rc);
    }
    if (st && (strcmp(st, "pending") == 0 || strcmp(st, "processing") == 0)) {
        /* Pebble and real CAs often finish within milliseconds; a fixed
         * 1 s or 5 s sleep is most of other clients' wall time. Start
         * short, grow, honour Retry-After, stop at the poll limit. */
        uint64_t wait = ra >= 0 ? (uint64_t)ra : s->poll_delay;
        uint64_t now = now_ms();
        json_decref(authz);
        if (now + wait > s->poll_deadline && ra >= 0)
            return order_fail(r, client_fail(c, ACME_E_TIMEOUT, "%s for %s: the CA is still validating and asks to "
                                             "come back in %llu s, past the poll limit (%u ms); try again later",
                                             acme_challenge_type_name(s->ch->type), s->ident,
                                             (unsigned long long)((wait + 999) / 1000), c->poll_limit_ms));
        if (now + wait > s->poll_deadline)
            return order_fail(r, client_fail(c, ACME_E_TIMEOUT, "%s for %s: the CA is still validating after %u ms "
                                             "(poll limit); raise it or try again later",
                                             acme_challenge_type_name(s->ch->type), s->ident, c->poll_limit_ms));
        if (s->poll_delay < 2000)
            s->poll_delay *= 2;
        r->wake_at = now + wait;
        return OW_TIME;
    }
    if (st && strcmp(st, "valid") == 0) {
        set_str(&s->status, st);
        s->ch->validated = 1;
        alog(c, ACME_LOG_INFO, "%s for %s: valid", acme_challenge_type_name(s->ch->type), s->ident);
        history_note(r, s->ident, s->ch->type, 1);
        event_step(c, ACME_EVENT_VALIDATED, r->spec->cert_id, s->ch->identifier, s->ch->type, NULL);
        json_decref(authz);
        r->cursor++;
        r->wake_at = 0;
        return OW_CONTINUE;
    }
    set_str(&s->status, st);
    order_want fw = challenge_failed(r, s, authz, st);
    json_decref(authz);
    return fw;
}

/* Take down what we published. A failure here is worth a warning, not
 * the certificate: validation is already done. */
static order_want step_unpublish(order_run *r, order_state next)
{
    acme_client *c = r->c;
    for (; r->cursor < r->authz_count; r->cursor++) {
        authz_slot *s = &r->authz[r->cursor];
        if (s->pending == 1)
            return OW_EXTERNAL;
        if (s->pending == 2) {
            s->pending = 0;
            take_why(c, &s->pending_why);
            if (s->pending_rc)
                alog(c, ACME_LOG_WARNING, "unpublishing %s for %s failed in the host (%s)%s%s; remove it by hand",
                     acme_challenge_type_name(s->ch->type), s->ch->identifier, acme_strerror(s->pending_rc),
                     c->last_error ? ": " : "", c->last_error ? c->last_error : "");
            result_reset(c);
            continue;
        }
        if (!s->published)
            continue;
        s->published = 0;
        if (!c->host.unpublish)
            continue;
        const char *cb = callback_enter(c, "unpublish");
        int rc = c->host.unpublish(c->host_ud, s->ch);
        callback_leave(c, cb);
        if (rc == ACME_E_PENDING) {
            s->pending = 1;
            return OW_EXTERNAL;
        }
        if (rc)
            alog(c, ACME_LOG_WARNING, "unpublishing %s for %s failed in the host (%s); remove it by hand",
                 acme_challenge_type_name(s->ch->type), s->ch->identifier, acme_strerror(rc));
        result_reset(c);
    }
    r->state = next;
    r->cursor = 0;
    return OW_CONTINUE;
}

static order_want step_csr(order_run *r)
{
    acme_client *c = r->c;
    if (!r->job.fn) {
        memset(&r->job, 0, sizeof(r->job));
        r->job.fn = job_csr;
        r->job.key = r->cert_key;   /* borrowed */
        r->job.names = r->spec->names;
        r->job.name_count = r->spec->name_count;
        return OW_WORK;
    }
    r->job.fn = NULL;
    r->job.key = NULL;
    if (r->job.rc)
        return order_fail(r, client_fail(c, r->job.rc, "finalize for %s: could not make the CSR (%s)", first_name(r),
                                         acme_strerror(r->job.rc)));
    free(r->csr);
    r->csr = r->job.csr;
    r->job.csr = NULL;
    r->state = OS_FINALIZE;
    return OW_CONTINUE;
}

static order_want order_answer(order_run *r);

static order_want step_finalize(order_run *r)
{
    acme_client *c = r->c;
    if (!r->op_active) {
        json_t *p = json_pack("{s:s}", "csr", r->csr);
        char *text = p ? json_text(p) : NULL;
        json_decref(p);
        int rc = text ? start_op(r, "finalize", r->finalize_url, text, NULL, 1) : ACME_E_NOMEM;
        free(text);
        if (rc)
            return order_fail(r, rc);
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    int rc = op_rc(r);
    if (rc) {
        net_op_clear(&r->op);
        return order_fail(r, rc);
    }
    alog(c, ACME_LOG_INFO, "order for %s finalized; waiting for the certificate", first_name(r));
    r->state = OS_POLL_ORDER;
    r->wake_at = 0;
    r->cursor = 0;
    r->order_deadline = now_ms() + c->poll_limit_ms;
    /* The answer to finalize is the order (RFC 8555 §7.4): read it like a
     * poll's. A CA that issued at once sends "valid" and the certificate
     * URL, so no poll at all; one still "processing" is asked again after
     * its Retry-After or the first poll delay, not at once (against
     * Pebble an immediate poll was "processing" four times in five). */
    return order_answer(r);
}

static order_want step_poll_order(order_run *r)
{
    if (!r->op_active) {
        if (now_ms() < r->wake_at)
            return OW_TIME;
        int rc = start_op(r, "order", r->order_url, NULL, NULL, 1);
        if (rc)
            return order_fail(r, rc);
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    return order_answer(r);
}

/* An order object has come back (a poll, or the answer to finalize) in
 * r->op: wait and poll again, go on to the download, or fail. */
static order_want order_answer(order_run *r)
{
    acme_client *c = r->c;
    int rc = op_rc(r);
    json_t *order = r->op.json;
    const char *st = rc ? NULL : json_str(order, "status");
    const char *cu = rc ? NULL : json_str(order, "certificate");
    if (!rc && st && (strcmp(st, "processing") == 0 || strcmp(st, "ready") == 0 || strcmp(st, "pending") == 0)) {
        long long ra = http_response_retry_after_ms(&r->op.x.resp);
        /* cursor counts the polls: 50 ms, doubling to 3.2 s. */
        uint64_t delay = 50ull << (r->cursor < 6 ? r->cursor : 6);
        uint64_t wait = ra >= 0 ? (uint64_t)ra : delay;
        /* st points into the answer, which the clear below frees: one of
         * three known words, so keep our own. */
        const char *status = strcmp(st, "processing") == 0 ? "processing"
                           : strcmp(st, "ready") == 0      ? "ready"
                                                           : "pending";
        r->cursor++;
        net_op_clear(&r->op);
        st = NULL;
        if (!r->order_deadline)
            r->order_deadline = now_ms() + c->poll_limit_ms;
        if (now_ms() + wait > r->order_deadline) {
            if (ra >= 0)
                return order_fail(r, client_fail(c, ACME_E_TIMEOUT, "order %s for %s is still \"%s\" and the CA "
                                                 "asks to come back in %llu s, past the poll limit (%u ms); try again "
                                                 "later", r->order_url, first_name(r), status,
                                                 (unsigned long long)((wait + 999) / 1000), c->poll_limit_ms));
            return order_fail(r, client_fail(c, ACME_E_TIMEOUT, "order %s for %s is still \"%s\" after the poll "
                                             "limit (%u ms); try again later", r->order_url, first_name(r), status,
                                             c->poll_limit_ms));
        }
        r->wake_at = now_ms() + wait;
        return OW_TIME;
    }
    if (!rc && st && strcmp(st, "valid") == 0 && cu) {
        if (!(rc = net_url_ok(c, "certificate", cu)) && !(r->cert_url = strdup(cu)))
            rc = ACME_E_NOMEM;
    } else if (!rc) {
        acme_problem *p = problem_from_json(json_object_get(order, "error"));
        char *desc = p ? problem_describe(p) : NULL;
        if (p)
            keep_problem(c, p);
        rc = client_fail(c, ACME_E_ORDER_FAILED, "order %s for %s is \"%s\"%s%s; place a new order", r->order_url,
                         first_name(r), st ? st : "?", desc ? ": " : "", desc ? desc : "");
        free(desc);
    }
    net_op_clear(&r->op);
    if (rc)
        return order_fail(r, rc);
    r->cursor = 0;
    r->state = OS_DOWNLOAD;
    return OW_CONTINUE;
}

static int chain_matches_issuer(const cert_info *ci, const char *want)
{
    int hit = ci->issuer_cn && strcmp(ci->issuer_cn, want) == 0;
    for (size_t i = 0; !hit && i < ci->cert_count; i++)
        hit = ci->issuer_cns[i] && strcmp(ci->issuer_cns[i], want) == 0;
    return hit;
}

/* Check a downloaded chain is ours before anything else looks at it; on
 * success *chain and *info are the chain, normalized, and its facts (one
 * parse serves the check, the stored copy and what the engine plans by). */
static int check_chain(order_run *r, const char *url, const acme_http_response *resp, char **chain,
                       cert_info **info)
{
    acme_client *c = r->c;
    const char *ct = http_response_header(resp, "Content-Type");
    if (!ct || ascii_ncasecmp(ct, "application/pem-certificate-chain", 33) != 0)
        return client_fail(c, ACME_E_PROTOCOL, "certificate download %s: content type \"%s\", expected "
                           "application/pem-certificate-chain", url, ct ? ct : "(none)");
    cert_info *ci = NULL;
    char *text = NULL;
    int rc = cert_chain_read(resp->body.data, resp->body.len, 1, r->cert_key, &text, &ci);
    if (rc == ACME_E_KEY_MISMATCH)
        return client_fail(c, ACME_E_KEY_MISMATCH, "certificate download %s: the certificate is not for our key; "
                           "nothing was installed — report this to the CA", url);
    if (rc == ACME_E_NOMEM)
        return client_fail(c, rc, "certificate download %s: out of memory reading the chain", url);
    if (rc)
        return client_fail(c, ACME_E_PROTOCOL, "certificate download %s: the body is not a PEM certificate chain", url);
    /* Exactly the names ordered: one more would put a name on this host's
     * certificate that nobody here asked for (and the host serves it). */
    const char *missing = NULL, *extra = NULL;
    if (!rc && cert_names_match((const char *const *)r->spec->names, r->spec->name_count, ci->names, ci->name_count, &missing,
                                &extra)) {
        char *ex = text_excerpt(extra, 120);
        if (missing)
            rc = client_fail(c, ACME_E_PROTOCOL, "certificate download %s: the certificate does not name %s; "
                             "nothing was installed or stored — the CA is at fault, report it to the CA", url, missing);
        else
            rc = client_fail(c, ACME_E_PROTOCOL, "certificate download %s: the certificate also names \"%s\", "
                             "which was not ordered; nothing was installed or stored — the CA is at fault, report "
                             "it to the CA", url, ex ? ex : "?");
        free(ex);
    }
    if (rc) {
        cert_info_free(ci);
        free(text);
        return rc;
    }
    *chain = text;
    *info = ci;
    return ACME_OK;
}

static order_want step_download(order_run *r)
{
    if (!r->op_active) {
        int rc = start_op(r, "certificate download", r->cert_url, NULL, NULL, 0);
        if (rc)
            return order_fail(r, rc);
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    int rc = op_rc(r);
    if (!rc)
        rc = check_chain(r, r->cert_url, &r->op.x.resp, &r->chain, &r->chain_info);
    if (!rc)
        rc = http_response_links(&r->op.x.resp, "alternate", &r->alts, &r->alt_count);
    net_op_clear(&r->op);
    if (rc)
        return order_fail(r, rc);
    r->alt_cursor = 0;
    r->state = (r->spec->preferred_chain && !chain_matches_issuer(r->chain_info, r->spec->preferred_chain))
        ? OS_ALTERNATE : OS_INSTALL;
    return OW_CONTINUE;
}

/* RFC 8555 §7.4.2: alternates are the same certificate under other issuers. */
static order_want step_alternate(order_run *r)
{
    acme_client *c = r->c;
    if (r->alt_cursor >= r->alt_count) {
        alog(c, ACME_LOG_INFO, "no chain issued by \"%s\"; keeping the default chain", r->spec->preferred_chain);
        r->state = OS_INSTALL;
        return OW_CONTINUE;
    }
    const char *url = r->alts[r->alt_cursor];
    if (!r->op_active) {
        if (net_url_ok(c, "alternate chain", url) || start_op(r, "alternate chain", url, NULL, NULL, 0)) {
            result_reset(c);
            r->alt_cursor++;
            return OW_CONTINUE;
        }
    }
    order_want w = drive_op(r);
    if (w != OW_CONTINUE)
        return w;
    int rc = op_rc(r);
    char *alt = NULL;
    cert_info *alt_info = NULL;
    if (!rc)
        rc = check_chain(r, url, &r->op.x.resp, &alt, &alt_info);
    if (rc) {
        alog(c, ACME_LOG_WARNING, "alternate chain %s unusable; skipped", url);
        result_reset(c);
    } else if (chain_matches_issuer(alt_info, r->spec->preferred_chain)) {
        alog(c, ACME_LOG_INFO, "using the alternate chain issued by \"%s\"", r->spec->preferred_chain);
        free(r->chain);
        cert_info_free(r->chain_info);
        r->chain = alt;
        r->chain_info = alt_info;
        r->state = OS_INSTALL;
        net_op_clear(&r->op);
        return OW_CONTINUE;
    } else {
        free(alt);
        cert_info_free(alt_info);
    }
    net_op_clear(&r->op);
    r->alt_cursor++;
    return OW_CONTINUE;
}

static order_want step_install(order_run *r)
{
    acme_client *c = r->c;
    int rc;
    if (r->install_pending == 1)
        return OW_EXTERNAL;
    if (r->install_pending == 2) {
        r->install_pending = 0;
        take_why(c, &r->install_why);
        rc = r->install_rc;
    } else if (r->preloaded) {
        /* Stored by another holder (order_recheck_stored): only install. */
        rc = c->host.install ? c->host.install(c->host_ud, r->cert) : ACME_OK;
        if (rc == ACME_E_PENDING) {
            r->install_pending = 1;
            return OW_EXTERNAL;
        }
    } else if (r->install_pending == 3) {
        /* Stored (and, under an engine, on the table: order_step waited
         * for the storage thread): now the host may have it. */
        r->install_pending = 0;
        char when[32];
        alog(c, ACME_LOG_INFO, "certificate for %s stored as %s (valid until %s)", first_name(r), r->spec->cert_id,
             fmt_utc(r->cert->info->not_after, when));
        event_cert(c, ACME_EVENT_ISSUED, r->spec->cert_id, r->cert->info->not_after);
        const char *cb = callback_enter(c, "install");
        rc = c->host.install ? c->host.install(c->host_ud, r->cert) : ACME_OK;
        callback_leave(c, cb);
        if (rc == ACME_E_PENDING) {
            r->install_pending = 1;
            return OW_EXTERNAL;
        }
    } else {
        char *key_pem = NULL;
        rc = key_to_pem(r->cert_key, &key_pem);
        if (!rc) {
            rc = certificate_adopt(r->spec->cert_id, r->chain, r->chain_info, key_pem, &r->cert);
            r->chain = NULL;
            r->chain_info = NULL;
        }
        secure_free_str(key_pem);
        if (rc)
            return order_fail(r, client_fail(c, rc, "could not prepare the certificate for %s (%s)", first_name(r),
                                             acme_strerror(rc)));
        if (!(r->cert->params = issue_spec_stored_form(r->spec)))
            return order_fail(r, client_fail(c, ACME_E_NOMEM, "out of memory storing the certificate for %s", first_name(r)));
        /* Stored before the host sees it, and before the order state goes:
         * a crash in between leaves a valid certificate, never nothing. */
        rc = certificate_store(c, r->cert);
        if (rc)
            return order_fail(r, rc);
        remove_state(r);
        r->install_pending = 3;
        return OW_CONTINUE;
    }
    if (rc) {
        client_fail(c, ACME_E_CALLBACK, "installing the certificate %s failed in the host (%s)%s%s; it is stored, "
                    "install it again with acme_cert_load()", r->spec->cert_id, acme_strerror(rc),
                    c->last_error ? ": " : "", c->last_error ? c->last_error : "");
        /* The order itself succeeded: nothing to clean up. */
        order_fail(r, ACME_E_CALLBACK);
    } else if (c->host.install) {
        event_cert(c, ACME_EVENT_INSTALLED, r->spec->cert_id, r->cert->info->not_after);
    }
    /* Stored (an earlier return otherwise): the engine plans the renewal
     * from these facts instead of loading and parsing the chain again. */
    cert_info_free(r->stored_info);
    r->stored_info = r->cert->info;
    r->cert->info = NULL;
    certificate_free(r->cert);
    r->cert = NULL;
    r->state = OS_DONE;
    return OW_CONTINUE;
}

/* Leave nothing behind: challenges taken down, pending authorizations
 * deactivated (they would otherwise count against the CA's limits). */
static order_want step_cleanup(order_run *r)
{
    acme_client *c = r->c;
    /* First every unpublish (cursor walks the slots), then deactivations. */
    for (size_t i = 0; i < r->authz_count; i++) {
        if (r->authz[i].published || r->authz[i].pending) {
            order_state keep = r->state;
            r->cursor = i;
            order_want w = step_unpublish(r, keep);
            r->state = keep;
            if (w != OW_CONTINUE)
                return w;
        }
    }
    /* A lost lock: the next holder resumes this very order (order.json
     * names it), so its authorizations are left alone, as is the state. */
    for (size_t i = 0; i < r->authz_count && !r->lock_lost; i++) {
        authz_slot *s = &r->authz[i];
        if (s->deactivated || !s->status || strcmp(s->status, "pending") != 0)
            continue;
        if (!r->op_active && start_op(r, "authorization deactivation", s->url, "{\"status\":\"deactivated\"}", NULL, 1)) {
            s->deactivated = 1;
            continue;
        }
        order_want w = drive_op(r);
        if (w != OW_CONTINUE)
            return w;
        if (op_rc(r) == ACME_OK)
            alog(c, ACME_LOG_INFO, "deactivated the pending authorization %s", s->url);
        result_reset(c);
        net_op_clear(&r->op);
        s->deactivated = 1;
        return OW_CONTINUE;
    }
    if (r->retry_new_order && !r->rc && !r->lock_lost) {
        r->retry_new_order = 0;
        r->state = OS_NEW_ORDER;
        return OW_CONTINUE;
    }
    /* Keep the saved order only where resuming it can help: the CA was
     * unreachable or asked us to come back. Anything else is final, and
     * storage goes back to what it was. */
    if (r->rc != ACME_E_NETWORK && r->rc != ACME_E_TIMEOUT && !r->retry_after_s && r->rc != ACME_E_CALLBACK &&
        !r->lock_lost && (r->lock_name || !r->c->storage.lock))
        remove_state(r); /* never another holder's state */
    r->state = OS_DONE;
    return OW_CONTINUE;
}

/* The run ends here, once: a failed one tells the host with its problem. */
static order_want step_done(order_run *r)
{
    if (r->rc)
        event_failed(r->c, r->spec->cert_id, r->rc, r->error, r->problem, r->fail_ident);
    return OW_DONE;
}

static order_want order_dispatch(order_run *r);

/* Durable before anything depends on it: a step that queued a write to
 * an engine's storage thread (the order state before the CA hears of the
 * key, the certificate before the host gets it) waits, without blocking
 * the loop, until the thread has it on the table — what it returned then
 * follows (its exchange or job is still prepared). */
order_want order_step(order_run *r)
{
    acme_client *c = r->c;
    if (r->barrier == 1)
        return OW_EXTERNAL;
    if (r->barrier == 2) {
        r->barrier = 0;
        /* A write that failed was logged with the table's reason when it
         * came back. Where the run is between two actions, it stops here
         * as it would have at the write; an exchange or job it prepared
         * goes on (its failure path cleans up). */
        if (r->barrier_rc && !r->rc && (r->barrier_then == OW_CONTINUE || r->barrier_then == OW_DONE))
            return order_fail(r, client_fail(c, ACME_E_STORAGE,
                                             "order for %s: the storage table did not take a write (%s); the "
                                             "previous value is unchanged — check the storage (free space, "
                                             "permissions)", first_name(r), acme_strerror(r->barrier_rc)));
        /* A host callback the step left pending may have finished during
         * the wait: ask the step again (it answers OW_EXTERNAL while the
         * callback is still out). The lock lost meanwhile: what the step
         * prepared is not handed on (below). */
        if (r->lock_lost != 1 || r->barrier_then == OW_DONE)
            return r->barrier_then == OW_EXTERNAL ? OW_CONTINUE : r->barrier_then;
    }
    const void *waits_for = NULL;
    if (r->lock_lost == 1 && r->state != OS_DONE && !order_pending_callback(r, &waits_for)) {
        /* Lost while a step waited (order_lock_lost; the engine cancelled
         * its exchange or job): nothing it prepared goes on; only the
         * host's challenges are taken down. */
        for (size_t i = 0; r->state == OS_PUBLISH && i < r->authz_count; i++)
            if (r->authz[i].pending == 2) {
                /* A publish that finished meanwhile: it is up, take it down. */
                r->authz[i].pending = 0;
                r->authz[i].published = r->authz[i].pending_rc == ACME_OK;
            }
        r->lock_lost = 2;
        r->state = OS_CLEANUP;
        r->cursor = 0;
        r->op_active = 0;
        net_op_clear(&r->op);
        r->job.fn = NULL;
        r->job.key = NULL;
    }
    if (r->announce_created) {
        r->announce_created = 0;
        alog(c, ACME_LOG_INFO, "order: %s created with %zu authorization(s)", r->order_url, r->authz_count);
        event_step(c, ACME_EVENT_ORDERING, r->spec->cert_id, NULL, ACME_CHALLENGE_NONE, r->order_url);
    }
    unsigned long long before = store_durable_writes(c);
    order_want w = order_dispatch(r);
    if (store_durable_writes(c) != before) {
        int rc = store_barrier(c, &r->barrier);
        if (rc == ACME_E_PENDING) {
            r->barrier = 1;
            r->barrier_then = w;
            return OW_EXTERNAL;
        }
    }
    return w;
}

static order_want order_dispatch(order_run *r)
{
    switch (r->state) {
    case OS_START: return step_start(r);
    case OS_DIRECTORY: return step_directory(r);
    case OS_ACCOUNT: return step_account(r);
    case OS_KEYGEN: return step_keygen(r);
    case OS_RESUME: return step_resume(r);
    case OS_NEW_ORDER: return step_new_order(r);
    case OS_FETCH_AUTHZ: return step_fetch_authz(r);
    case OS_PUBLISH: return step_publish(r);
    case OS_RESPOND: return step_respond(r);
    case OS_POLL_AUTHZ: return step_poll_authz(r);
    case OS_UNPUBLISH: return step_unpublish(r, OS_CSR);
    case OS_CSR: return step_csr(r);
    case OS_FINALIZE: return step_finalize(r);
    case OS_POLL_ORDER: return step_poll_order(r);
    case OS_DOWNLOAD: return step_download(r);
    case OS_ALTERNATE: return step_alternate(r);
    case OS_INSTALL: return step_install(r);
    case OS_CLEANUP: return step_cleanup(r);
    case OS_DONE: return step_done(r);
    }
    return OW_DONE;
}

/* ---- accessors for drivers ---- */

http_exchange *order_exchange(order_run *r) { return &r->op.x; }
uint64_t order_wake_at(const order_run *r) { return r->wake_at; }
work_job *order_job(order_run *r) { return r->op_job ? &r->op.job : &r->job; }
int order_result(const order_run *r) { return r->rc; }
const char *order_error(const order_run *r) { return r->error; }
unsigned order_retry_after_s(const order_run *r) { return r->retry_after_s; }
const acme_problem *order_problem(const order_run *r) { return r->problem; }
const char *order_profile(const order_run *r) { return r->spec->profile; }
const char *order_cert_id(const order_run *r) { return r->spec->cert_id; }
const cert_info *order_stored_info(const order_run *r) { return r->stored_info; }
const issue_spec *order_spec(const order_run *r) { return r->spec; }

int order_set_replaces(order_run *r, const char *ari_id)
{
    free(r->replaces);
    r->replaces = xstrdup(ari_id);
    return ari_id && !r->replaces ? ACME_E_NOMEM : ACME_OK;
}

int order_external_done(order_run *r, const void *object, int result)
{
    return order_external_done_why(r, object, result, NULL);
}

/* Keep a failure's sentence with the answer it came with. */
static void keep_why(char **slot, int result, const char *why)
{
    free(*slot);
    *slot = result != ACME_OK && why && *why ? xstrdup(why) : NULL;
}

int order_external_done_why(order_run *r, const void *object, int result, const char *why)
{
    if (object == r && r->lock_pending == 1) {
        r->lock_rc = result;
        r->lock_pending = 2;
        return 1;
    }
    if (object == &r->barrier && r->barrier == 1) {
        r->barrier_rc = result;
        r->barrier = 2;
        return 1;
    }
    if (r->cert && object == r->cert && r->install_pending == 1) {
        keep_why(&r->install_why, result, why);
        r->install_rc = result;
        r->install_pending = 2;
        return 1;
    }
    for (size_t i = 0; i < r->authz_count; i++)
        if (r->authz[i].ch && object == r->authz[i].ch && r->authz[i].pending == 1) {
            keep_why(&r->authz[i].pending_why, result, why);
            r->authz[i].pending_rc = result;
            r->authz[i].pending = 2; /* answered; the step consumes it */
            return 1;
        }
    return 0;
}

const char *order_lock_name(const order_run *r)
{
    return r->lock_lost ? NULL : r->lock_name;
}

int order_lock_lost(order_run *r, const char *why)
{
    acme_client *c = r->c;
    if (!r->lock_name || r->lock_lost || r->state == OS_DONE)
        return 0;
    if (r->stored_info || (r->state == OS_INSTALL && r->install_pending)) {
        /* The certificate is stored already: nothing is left to write. */
        alog(c, ACME_LOG_WARNING, "order for %s: the storage lock %s was lost after the certificate was stored (%s)",
             first_name(r), r->lock_name, why ? why : "no reason given");
        return 0;
    }
    r->lock_lost = 1;
    if (!r->rc) {
        r->rc = client_fail(c, ACME_E_LOCKED, "order for %s: the storage lock %s was lost (%s); another node or "
                            "process may take the order over, so this one stopped it and writes nothing more for "
                            "certificate %s; it is tried again later", first_name(r), r->lock_name,
                            why ? why : "its lease could not be refreshed", r->spec->cert_id);
        r->error = xstrdup(c->last_error ? c->last_error : acme_strerror(r->rc));
        problem_free(r->problem);
        r->problem = NULL;
    }
    result_reset(c);
    return 1;
}

const char *order_pending_callback(const order_run *r, const void **object)
{
    if (r->cert && r->install_pending == 1) {
        *object = r->cert;
        return "install";
    }
    for (size_t i = 0; i < r->authz_count; i++)
        if (r->authz[i].ch && r->authz[i].pending == 1) {
            *object = r->authz[i].ch;
            /* Publishing comes before validation, unpublishing after. */
            return r->state == OS_PUBLISH ? "publish" : "unpublish";
        }
    *object = NULL;
    return NULL;
}

void order_hand_result(order_run *r)
{
    acme_client *c = r->c;
    result_reset(c);
    c->last_error = r->error;
    c->problem = r->problem;
    r->error = NULL;
    r->problem = NULL;
}

void order_refuse_pending(order_run *r)
{
    /* Without an engine the host has nobody to report completion to. */
    if (!r->rc)
        order_fail(r, client_fail(r->c, ACME_E_STATE, "a host callback answered ACME_E_PENDING; that "
                                  "needs the engine (acme_engine_*), not acme_issue()"));
    for (size_t i = 0; i < r->authz_count; i++)
        r->authz[i].pending = 0;
    r->install_pending = 0;
    r->state = r->state == OS_INSTALL ? OS_DONE : OS_CLEANUP;
}

int order_run_blocking(order_run *r)
{
    for (;;) {
        switch (order_step(r)) {
        case OW_CONTINUE:
            break;
        case OW_HTTP:
            net_exchange_perform(r->c, order_exchange(r));
            break;
        case OW_TIME: {
            uint64_t now = now_ms();
            if (r->wake_at > now)
                sleep_ms(r->wake_at - now);
            break;
        }
        case OW_WORK: {
            work_job *j = order_job(r);
            j->fn(j);
            break;
        }
        case OW_EXTERNAL:
            order_refuse_pending(r);
            break;
        case OW_DONE:
            return r->rc;
        }
    }
}

/* ---- making a run ---- */

order_run *order_new_spec(acme_client *c, issue_spec *spec, int *rcp)
{
    order_run *r = calloc(1, sizeof(*r));
    if (!r) {
        *rcp = ACME_E_NOMEM;
        return NULL;
    }
    r->c = c;
    r->spec = issue_spec_ref(spec);
    r->failed = json_object();
    r->attempts = json_array();
    http_response_init(&r->op.x.resp, 0);
    if (!r->failed || !r->attempts) {
        order_free(r);
        *rcp = ACME_E_NOMEM;
        return NULL;
    }
    *rcp = ACME_OK;
    return r;
}

order_run *order_new(acme_client *c, const acme_issue_params *p, int *rcp)
{
    issue_spec *spec = issue_spec_new(c, p, rcp);
    if (!spec)
        return NULL;
    order_run *r = order_new_spec(c, spec, rcp);
    issue_spec_free(spec);
    return r;
}
