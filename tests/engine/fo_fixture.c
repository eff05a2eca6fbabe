/* The CA failover tests' shared set-up and checks (fo_fixture.h). */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fo_fixture.h"

void fo_env_init(fo_env *env)
{
    memset(env, 0, sizeof *env);
    env->one = getenv("ACME_TEST_DIRECTORY");
    env->two = getenv("ACME_TEST_DIRECTORY2");
    CHECK_MSG(NULL, env->one && env->two && getenv("ACME_TEST_MGMT2"), "needs with-pebble --second");
    /* A port that refuses connections: bound, never listening, held. */
    env->hold = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    CHECK_MSG(NULL, env->hold >= 0 && bind(env->hold, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              getsockname(env->hold, (struct sockaddr *)&sa, &sl) == 0, "cannot hold a loopback port");
    snprintf(env->down, sizeof env->down, "https://127.0.0.1:%u/dir", (unsigned)ntohs(sa.sin_port));
    env->root[0] = itest_pebble_root(0);
    /* itest's management calls go to ACME_TEST_MGMT: point it at the second for a moment. */
    char *mgmt1 = itest_strdup(getenv("ACME_TEST_MGMT"));
    setenv("ACME_TEST_MGMT", getenv("ACME_TEST_MGMT2"), 1);
    env->root[1] = itest_pebble_root(0);
    setenv("ACME_TEST_MGMT", mgmt1, 1);
    free(mgmt1);
}

void fo_env_clear(fo_env *env)
{
    if (env->hold >= 0)
        close(env->hold);
    free(env->root[0]);
    free(env->root[1]);
    memset(env, 0, sizeof *env);
    env->hold = -1;
}

acme_ca_list *fo_make_list(etest_host *h, const char *dir, const fo_ca *cas, size_t n)
{
    acme_account_params ap = {.size = sizeof ap, .agree_tos = 1};
    acme_ca_list *l = NULL;
    CHECK_MSG(NULL, acme_ca_list_new(&ap, &l) == ACME_OK, "acme_ca_list_new failed");
    for (size_t i = 0; i < n; i++) {
        acme_client *c = etest_client_at(h, dir, cas[i].url,
                                        cas[i].ca_file ? cas[i].ca_file : getenv("ACME_TEST_CA_FILE"));
        acme_ca_params p = {.size = sizeof p, .name = cas[i].name};
        int rc = acme_ca_list_add(l, &p, c);
        CHECK_MSG(NULL, rc == ACME_OK, "acme_ca_list_add %s: %s", cas[i].name, acme_ca_list_last_error(l));
    }
    return l;
}

void fo_issued_by(const fo_env *env, const etest_host *h, const char *id, int which)
{
    const itest_cert *ic = etest_installed(h, id);
    CHECK_MSG(NULL, ic != NULL, "%s was never installed", id);
    const char *why = "";
    CHECK_MSG(NULL, itest_chain_verifies(ic->chain_pem, env->root[which], &why), "%s: not issued by Pebble %d: %s",
              id, which + 1, why);
    CHECK_MSG(NULL, !itest_chain_verifies(ic->chain_pem, env->root[!which], &why), "%s: verifies against Pebble %d "
              "too", id, 2 - which);
    CHECK_MSG(NULL, itest_key_matches(ic->chain_pem, ic->key_pem), "%s: installed key is not the leaf's", id);
}

void fo_stop_first_pebble(void)
{
    pid_t pid = (pid_t)atoi(getenv("ACME_TEST_PEBBLE_PID") ? getenv("ACME_TEST_PEBBLE_PID") : "0");
    CHECK_MSG(NULL, pid > 1, "ACME_TEST_PEBBLE_PID not set: run under with-pebble --second");
    CHECK_MSG(NULL, kill(pid, SIGTERM) == 0, "cannot stop the first Pebble: %s", strerror(errno));
    /* Gone, or a zombie its harness has not reaped yet (kill(0) then still
     * succeeds): 10 s at most either way. */
    for (int i = 0; i < 100 && kill(pid, 0) == 0; i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    itest_log("first Pebble (pid %d) stopped", (int)pid);
}

void fo_check_record(const char *dir, const char *id, const char *ca)
{
    char *path = itest_printf("%s/failover/%s.json", dir, id);
    json_t *r = json_load_file(path, 0, NULL);
    CHECK_MSG(NULL, r != NULL, "no stored choice %s", path);
    CHECK_MSG(NULL, itest_streq(json_string_value(json_object_get(r, "ca")), ca) &&
              json_is_true(json_object_get(r, "failover")), "stored choice is not a failover to %s", ca);
    json_decref(r);
    free(path);
}

static const char *or_none(const char *s)
{
    return s ? s : "(none)";
}

size_t fo_check_event(const etest_host *h, size_t from, const char *id, const char *from_name,
                      const char *from_url, const char *to_name, const char *to_url, const char *reason_has)
{
    size_t i = etest_find_event(h, from, ACME_EVENT_FAILOVER, id);
    CHECK_MSG(NULL, i != (size_t)-1, "no FAILOVER event for %s", id);
    const etest_event *ev = &h->events[i];
    itest_log("event failover %s: %s (%s) -> %s (%s): %s", id, or_none(ev->from_ca_name),
              or_none(ev->from_directory_url), or_none(ev->ca_name), or_none(ev->directory_url),
              or_none(ev->message));
    CHECK_MSG(NULL, ev->code == ACME_EVENT_FAILOVER && itest_streq(acme_event_code_name(ev->code), "failover"),
              "event code %d", (int)ev->code);
    CHECK_MSG(NULL, itest_streq(ev->from_ca_name, from_name) && itest_streq(ev->from_directory_url, from_url),
              "FAILOVER from %s (%s), want %s (%s)", or_none(ev->from_ca_name), or_none(ev->from_directory_url),
              from_name, from_url);
    CHECK_MSG(NULL, itest_streq(ev->ca_name, to_name) && itest_streq(ev->directory_url, to_url),
              "FAILOVER to %s (%s), want %s (%s)", or_none(ev->ca_name), or_none(ev->directory_url), to_name, to_url);
    CHECK_MSG(NULL, ev->message && strstr(ev->message, reason_has), "FAILOVER reason lacks \"%s\": %s", reason_has,
              or_none(ev->message));
    CHECK_MSG(NULL, ev->result == ACME_OK, "FAILOVER carries result %d", ev->result);
    return i;
}
