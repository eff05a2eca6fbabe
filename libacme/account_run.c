/* The account step (account_run.h): directory, key (made as slow work,
 * stored before the CA sees it), then newAccount — a lookup first when
 * this call may not create an account — one exchange per step. */
#include <stdlib.h>
#include <string.h>

#include "account_run.h"
#include "internal.h"

typedef enum account_state {
    AS_START,
    AS_DIRECTORY,
    AS_KEY,
    AS_KEYGEN,
    AS_LOOKUP,
    AS_REGISTER,
    AS_DONE
} account_state;

struct account_run {
    acme_client *c;
    account_goal goal;
    account_goal asked;        /* goal as given (ENSURE becomes REGISTER) */
    account_state state;
    acme_account_params p;     /* a private copy of the host's */
    char **contacts;
    char *eab_kid, *eab_hmac_key;
    net_op op;
    int op_active;
    work_job job;              /* account key generation */
    int rc;
    char *error;
    acme_problem *problem;
    unsigned retry_after_s;
};

static void free_params(account_run *a)
{
    for (size_t i = 0; i < a->p.contact_count; i++)
        free(a->contacts[i]);
    free(a->contacts);
    free(a->eab_kid);
    secure_free_str(a->eab_hmac_key); /* a secret */
}

void account_run_free(account_run *a)
{
    if (!a)
        return;
    free_params(a);
    if (a->op_active)
        net_op_clear(&a->op);
    key_free(a->job.key);
    free(a->error);
    problem_free(a->problem);
    free(a);
}

account_run *account_run_new(acme_client *c, const acme_account_params *p, account_goal goal, int *rc)
{
    account_run *a = calloc(1, sizeof(*a));
    if (!a) {
        *rc = ACME_E_NOMEM;
        return NULL;
    }
    a->c = c;
    a->goal = a->asked = goal;
    a->p.size = sizeof(a->p);
    http_response_init(&a->op.x.resp, 0);
    *rc = ACME_OK;
    if (!p)
        return a;
    a->p.agree_tos = p->agree_tos;
    if (p->contact_count && !(a->contacts = calloc(p->contact_count, sizeof(char *))))
        *rc = ACME_E_NOMEM;
    for (size_t i = 0; !*rc && i < p->contact_count; i++) {
        if (!(a->contacts[i] = strdup(p->contacts[i])))
            *rc = ACME_E_NOMEM;
        else
            a->p.contact_count++;
    }
    if (!*rc && p->eab_kid &&
        (!(a->eab_kid = strdup(p->eab_kid)) || !(a->eab_hmac_key = strdup(p->eab_hmac_key))))
        *rc = ACME_E_NOMEM;
    if (*rc) {
        account_run_free(a);
        return NULL;
    }
    a->p.contacts = (const char *const *)a->contacts;
    a->p.eab_kid = a->eab_kid;
    a->p.eab_hmac_key = a->eab_hmac_key;
    return a;
}

/* Keep the first failure's sentence and problem (an engine's client is
 * shared; the driver hands them on). */
static order_want fail(account_run *a, int rc)
{
    acme_client *c = a->c;
    if (a->goal == ACCOUNT_FIND && rc == ACME_E_NO_ACCOUNT) {
        /* Say it in our words too: the problem stays available. */
        free(c->last_error);
        c->last_error = xasprintf("account: %s has no account for the stored key; register one", c->directory_url);
    }
    if (!a->rc) {
        a->rc = rc ? rc : ACME_E_STATE;
        a->error = xstrdup(c->last_error ? c->last_error : acme_strerror(a->rc));
        a->problem = c->problem;
        c->problem = NULL;
    }
    result_reset(c);
    if (a->op_active) {
        net_op_clear(&a->op);
        a->op_active = 0;
    }
    a->state = AS_DONE;
    return OW_DONE;
}

static order_want done(account_run *a)
{
    a->state = AS_DONE;
    return OW_DONE;
}

/* Drive the op; OW_CONTINUE once it has finished (a->op.rc). */
static order_want drive(account_run *a)
{
    net_want w = net_op_next(a->c, &a->op);
    if (w == NET_HTTP)
        return OW_HTTP;
    if (w == NET_WORK)
        return OW_WORK;
    return OW_CONTINUE;
}

static void job_keygen(work_job *j)
{
    j->rc = key_generate((acme_key_type)j->key_type, &j->key);
}

static order_want post_new_account(account_run *a, const char *step, const char *payload, int soft)
{
    acme_client *c = a->c;
    int rc = net_op_post(&a->op, c, step, c->url_new_account, payload, c->account_key, 1);
    if (rc)
        return fail(a, rc);
    a->op.soft_problem = soft;
    a->op_active = 1;
    return drive(a);
}

/* The answer to a newAccount: OW_CONTINUE with the op's rc in *rc. */
static int take(account_run *a, const char *step)
{
    int rc = a->op.rc;
    if (rc && http_response_retry_after_ms(&a->op.x.resp) >= 0)
        a->retry_after_s = http_response_retry_after_s(&a->op.x.resp);
    if (!rc)
        rc = account_take_answer(a->c, step, &a->op.x.resp, a->op.json);
    net_op_clear(&a->op);
    a->op_active = 0;
    return rc;
}

order_want account_run_step(account_run *a)
{
    acme_client *c = a->c;
    switch (a->state) {
    case AS_START:
        if (a->goal == ACCOUNT_ENSURE) {
            /* Key and URL stored: the account exists, nothing to ask.
             * No key yet is the normal start of a host with no account:
             * nothing to report (the log shows the key being made). */
            int rc = account_key_load(c);
            if (rc == ACME_OK)
                rc = account_load_local(c);
            if (rc == ACME_OK)
                return done(a);
            result_reset(c);
            a->goal = ACCOUNT_REGISTER;
        }
        a->state = AS_DIRECTORY;
        return OW_CONTINUE;
    case AS_DIRECTORY:
        if (!a->op_active) {
            if (c->have_directory) {
                a->state = AS_KEY;
                return OW_CONTINUE;
            }
            int rc = net_op_directory(&a->op, c);
            if (rc)
                return fail(a, rc);
            a->op_active = 1;
        }
        {
            order_want w = drive(a);
            if (w != OW_CONTINUE)
                return w;
            int rc = a->op.rc;
            net_op_clear(&a->op);
            a->op_active = 0;
            if (rc)
                return fail(a, rc);
            a->state = AS_KEY;
            return OW_CONTINUE;
        }
    case AS_KEY: {
        int rc = account_key_load(c);
        if (rc == ACME_E_NOT_FOUND && a->goal == ACCOUNT_FIND)
            return fail(a, client_fail(c, ACME_E_NO_ACCOUNT, "account: no account key stored for %s; "
                                       "register an account first", c->directory_url));
        if (rc == ACME_E_NOT_FOUND) {
            /* A new key is made off the step (RSA takes seconds) and
             * stored before the CA ever sees it. */
            result_reset(c);
            alog(c, ACME_LOG_INFO, "account: generating a new %s account key",
                 acme_key_type_name(c->account_key_type));
            memset(&a->job, 0, sizeof(a->job));
            a->job.fn = job_keygen;
            a->job.key_type = (int)c->account_key_type;
            a->state = AS_KEYGEN;
            return OW_WORK;
        }
        if (rc)
            return fail(a, rc);
        /* An interrupted rollover (key-next.pem) is settled here, in place:
         * rare, and it must be resolved before the key is used. */
        if ((rc = account_settle_rollover(c)))
            return fail(a, rc);
        a->state = (a->goal == ACCOUNT_FIND || !account_may_create(c, &a->p)) ? AS_LOOKUP : AS_REGISTER;
        return OW_CONTINUE;
    }
    case AS_KEYGEN: {
        acme_key *k = a->job.key;
        a->job.key = NULL;
        if (a->job.rc)
            return fail(a, client_fail(c, a->job.rc, "account: could not generate a %s key (%s)",
                                       acme_key_type_name(c->account_key_type), acme_strerror(a->job.rc)));
        int rc = account_key_adopt(c, k);
        if (rc)
            return fail(a, rc);
        a->state = (a->goal == ACCOUNT_FIND || !account_may_create(c, &a->p)) ? AS_LOOKUP : AS_REGISTER;
        return OW_CONTINUE;
    }
    case AS_LOOKUP: {
        /* Unless finding is all we were asked, "no such account" is
         * followed by the sentence that says why none was created (terms,
         * EAB): the lookup's own refusal is only a warning. */
        if (!a->op_active)
            return post_new_account(a, "account lookup", "{\"onlyReturnExisting\":true}", a->goal != ACCOUNT_FIND);
        order_want w = drive(a);
        if (w != OW_CONTINUE)
            return w;
        int rc = take(a, "account lookup");
        if (rc == ACME_E_NO_ACCOUNT && a->goal != ACCOUNT_FIND)
            rc = account_refusal(c, &a->p);
        return rc ? fail(a, rc) : done(a);
    }
    case AS_REGISTER: {
        if (!a->op_active) {
            char *payload = NULL;
            int rc = account_payload(c, &a->p, &payload);
            if (rc)
                return fail(a, rc);
            order_want w = post_new_account(a, "account registration", payload, 0);
            free(payload);
            return w;
        }
        order_want w = drive(a);
        if (w != OW_CONTINUE)
            return w;
        int rc = take(a, "account registration");
        return rc ? fail(a, rc) : done(a);
    }
    case AS_DONE:
        return OW_DONE;
    }
    return OW_DONE;
}

account_run *account_run_again(const account_run *a, int *rc)
{
    return account_run_new(a->c, &a->p, a->asked, rc);
}

http_exchange *account_run_exchange(account_run *a) { return &a->op.x; }
work_job *account_run_job(account_run *a) { return a->state == AS_KEYGEN ? &a->job : &a->op.job; }
int account_run_result(const account_run *a) { return a->rc; }
const char *account_run_error(const account_run *a) { return a->error; }
unsigned account_run_retry_after_s(const account_run *a) { return a->retry_after_s; }

void account_run_hand_result(account_run *a)
{
    acme_client *c = a->c;
    result_reset(c);
    c->last_error = a->error;
    c->problem = a->problem;
    a->error = NULL;
    a->problem = NULL;
}

int account_run_to_end(acme_client *c, const acme_account_params *p, account_goal goal)
{
    int rc;
    account_run *a = account_run_new(c, p, goal, &rc);
    if (!a)
        return rc;
    for (;;) {
        order_want w = account_run_step(a);
        if (w == OW_HTTP) {
            net_exchange_perform(c, account_run_exchange(a));
        } else if (w == OW_WORK) {
            work_job *j = account_run_job(a);
            j->fn(j);
        } else if (w == OW_DONE) {
            break;
        }
    }
    rc = account_run_result(a);
    account_run_hand_result(a);
    account_run_free(a);
    return rc;
}
