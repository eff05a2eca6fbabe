/* Issue 11 item 2: the engine gets the account itself (acme_engine_set_account)
 * for a host that starts with none, without blocking, retried like an
 * order's steps.
 *
 *   usage: it_engine_account plain|eab     (under with-pebble; eab: with-pebble --eab)
 *
 * plain (Pebble has terms of service):
 *  - a host with an empty state directory, no acme_account_register, an
 *    RSA-3072 account key type (key generation and every signature are
 *    slow work: they must run on the worker, not in a step), declares a
 *    certificate and sets account params WITHOUT agree_tos: no order is
 *    placed, the certificate waits and its last_error is the terms
 *    sentence acme_account_register gives;
 *  - the engine retries by itself (retry_min_s 1): more "account" warnings;
 *  - new params with agree_tos: the account is created and the certificate
 *    is issued and installed; no step took 250 ms (an RSA-3072 key takes
 *    far longer to make);
 *  - a second host on the same storage: nothing new ("account: created" or
 *    "found" never logged), the stored account orders.
 * eab (Pebble requires external account binding):
 *  - without EAB: waits with the EAB sentence; with the harness's kid/HMAC:
 *    created, issued. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "etest.h"

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};

static size_t lines_with(const etest_host *h, size_t from, const char *needle)
{
    size_t n = 0;
    for (size_t i = from; i < h->line_count; i++)
        if (strstr(h->lines[i], needle))
            n++;
    return n;
}

typedef struct warned {
    size_t from, want;
} warned;

static int until_account_warnings(etest_host *h, void *arg)
{
    warned *w = arg;
    return lines_with(h, w->from, "engine: account:") >= w->want;
}

static void check_waiting(acme_client *c, acme_engine *e, const char *id, const char *needle)
{
    acme_cert_status st = {.size = sizeof st};
    CHECK_OK(c, acme_engine_cert_status(e, id, &st));
    CHECK_MSG(c, st.state == ACME_CERT_STATE_WAITING, "state %d, expected waiting", (int)st.state);
    CHECK_MSG(c, st.attempts == 0, "%u order(s) started without an account", st.attempts);
    CHECK_MSG(c, st.last_error && strcasestr(st.last_error, needle),
              "last_error should say \"%s\": %s", needle, st.last_error ? st.last_error : "(none)");
    itest_log("ok: waiting without an account: %s", st.last_error);
}

int main(int argc, char **argv)
{
    itest_init("it_engine_account");
    CHECK_MSG(NULL, argc == 2 && (!strcmp(argv[1], "plain") || !strcmp(argv[1], "eab")),
              "usage: %s plain|eab", argv[0]);
    int eab = !strcmp(argv[1], "eab");
    etest_watchdog(250);

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_host h;
    etest_host_init(&h, &set);
    char *dir = itest_fresh_dir("account");
    acme_client *c = etest_client(&h, dir);
    if (!eab)
        CHECK_OK(c, acme_client_set_account_key_type(c, ACME_KEY_RSA_3072));
    acme_engine *e = etest_engine(c, &h, 0, 1, 0);
    const char *name = eab ? "eab-account.example" : "engine-account.example";
    CHECK_OK(c, etest_manage1(e, name, http, 1));

    /* Bad params are refused at once, in words. */
    acme_account_params half = {.size = sizeof half, .agree_tos = 1, .eab_kid = "kid-only"};
    CHECK_CODE(c, acme_engine_set_account(e, &half), ACME_E_INVALID_ARG);
    CHECK(c, strstr(acme_client_last_error(c), "eab_kid"));
    acme_account_params small = {.size = 8};
    CHECK_CODE(c, acme_engine_set_account(e, &small), ACME_E_INVALID_ARG);

    /* ---- params the CA refuses: the certificate waits, retried ------------ */
    acme_account_params first = {.size = sizeof first, .agree_tos = !!eab};
    CHECK_OK(c, acme_engine_set_account(e, &first));
    warned w = {h.line_count, 2};
    etest_drive_stats st1;
    if (!etest_drive(&h, e, until_account_warnings, &w, 60000, &st1)) {
        etest_dump_log(&h, 40);
        CHECK_MSG(c, 0, "no two account failures within 60 s");
    }
    check_waiting(c, e, name, eab ? "external account" : "terms of service");
    CHECK_MSG(c, h.install_count == 0 && h.pub_count == 0, "something was published or installed");
    CHECK_MSG(c, acme_account_url(c) == NULL, "an account URL without an account: %s", acme_account_url(c));
    itest_log("ok: retried by itself (%zu failures logged), longest step %llu us", lines_with(&h, w.from, "engine: account:"),
              (unsigned long long)st1.max_step_us);

    /* ---- the right params: account, then the certificate ----------------- */
    acme_account_params good = {.size = sizeof good, .agree_tos = 1};
    const char *contacts[] = {"mailto:engine-account@example.com"};
    good.contacts = contacts;
    good.contact_count = 1;
    if (eab) {
        good.eab_kid = itest_env("ACME_TEST_EAB_KID");
        good.eab_hmac_key = itest_env("ACME_TEST_EAB_HMAC");
    }
    size_t mark = h.line_count;
    CHECK_OK(c, acme_engine_set_account(e, &good));
    size_t one = 1;
    etest_drive_stats st2;
    if (!etest_drive(&h, e, etest_until_installs, &one, 120000, &st2)) {
        etest_dump_log(&h, 40);
        etest_dump_engine(e);
        CHECK_MSG(c, 0, "not installed within 120 s after the account params were fixed: %s",
                  etest_last_error(e, name));
    }
    const char *names[] = {name};
    etest_check_installed(&h, name, names, 1);
    CHECK_MSG(c, lines_with(&h, mark, "account: created") == 1, "the account was not created exactly once");
    CHECK_MSG(c, acme_account_url(c) && !strncmp(acme_account_url(c), "https://", 8), "no account URL");
    CHECK_MSG(c, acme_account_contact_count(c) == 1 && itest_streq(acme_account_contact(c, 0), contacts[0]),
              "contacts not taken");
    uint64_t longest = st1.max_step_us > st2.max_step_us ? st1.max_step_us : st2.max_step_us;
    itest_log("ok: account %s created by the engine, certificate installed; longest step %llu us",
              acme_account_url(c), (unsigned long long)longest);
    if (!eab)
        CHECK_MSG(c, longest < 250000, "a step took %llu us: the RSA-3072 account key work ran in a step?",
                  (unsigned long long)longest);
    acme_engine_free(e);
    acme_client_free(c);

    /* ---- a restart on the same storage: nothing to ask ------------------- */
    etest_host h2;
    etest_host_init(&h2, &set);
    acme_client *c2 = etest_client(&h2, dir);
    acme_engine *e2 = etest_engine(c2, &h2, 0, 1, 0);
    const char *other = eab ? "eab-account-2.example" : "engine-account-2.example";
    CHECK_OK(c2, etest_manage1(e2, other, http, 1));
    CHECK_OK(c2, acme_engine_set_account(e2, NULL));
    if (!etest_drive(&h2, e2, etest_until_installs, &one, 120000, NULL)) {
        etest_dump_log(&h2, 40);
        CHECK_MSG(c2, 0, "the second host did not issue with the stored account: %s", etest_last_error(e2, other));
    }
    CHECK_MSG(c2, lines_with(&h2, 0, "account: created") == 0 && lines_with(&h2, 0, "account: found") == 0 &&
                  lines_with(&h2, 0, "generating a new") == 0,
              "the stored account was asked for or made again");
    itest_log("ok: restart on the same storage used the stored account");
    acme_engine_free(e2);
    acme_client_free(c2);
    etest_host_clear(&h2);
    etest_host_clear(&h);
    itest_responders_stop(&set);
    free(dir);
    itest_log("PASS");
    return 0;
}
