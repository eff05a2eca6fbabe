/* A dns-01 module (module ABI 2) for tests/acmectl/run_module.sh: its
 * present sets the TXT record in pebble-challtestsrv (curl), its wait is
 * slow on purpose, its cleanup clears the record. Configuration:
 *
 *   challtestsrv = URL       pebble-challtestsrv's management API (required)
 *   release-file = PATH      wait blocks until PATH exists (at most 120 s;
 *                            gives up when libacme stops the module);
 *                            PATH.waiting is created when a wait starts
 *   wait-ms = N              else wait sleeps N ms (default 0)
 *   fail = NAME              wait fails for the identifier NAME, with a
 *                            sentence of this module's own
 *
 * Each hook logs "<hook> <identifier>" through the host. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <acme/error.h>
#include <acme/module.h>

#define EXPORT __attribute__((visibility("default")))

extern char **environ;

typedef struct slow {
    acme_module_host host;
    char *url, *release, *fail;
    long wait_ms;
    char err[400];
} slow;

static void say(slow *s, const char *what, const char *ident)
{
    char line[300];
    snprintf(line, sizeof(line), "%s %s", what, ident);
    s->host.log(s->host.ud, ACME_LOG_INFO, line);
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int s_create(const acme_module_host *host, const char *const *keys, const char *const *values, size_t n,
                    void **instance, char *err, size_t errlen)
{
    slow *s = calloc(1, sizeof(*s));
    if (!s)
        return ACME_E_NOMEM;
    memcpy(&s->host, host, host->size < sizeof(s->host) ? host->size : sizeof(s->host));
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(keys[i], "challtestsrv"))
            s->url = strdup(values[i]);
        else if (!strcmp(keys[i], "release-file"))
            s->release = strdup(values[i]);
        else if (!strcmp(keys[i], "fail"))
            s->fail = strdup(values[i]);
        else if (!strcmp(keys[i], "wait-ms"))
            s->wait_ms = strtol(values[i], NULL, 10);
        else {
            snprintf(err, errlen, "unknown key %s (challtestsrv, release-file, wait-ms, fail)", keys[i]);
            free(s);
            return ACME_E_INVALID_ARG;
        }
    }
    if (!s->url) {
        snprintf(err, errlen, "challtestsrv: missing (pebble-challtestsrv's management URL)");
        free(s);
        return ACME_E_INVALID_ARG;
    }
    *instance = s;
    return ACME_OK;
}

static void s_destroy(void *p)
{
    slow *s = p;
    free(s->url);
    free(s->release);
    free(s->fail);
    free(s);
}

static unsigned s_types(void *p)
{
    (void)p;
    return ACME_MODULE_CHALLENGE(ACME_CHALLENGE_DNS_01);
}

static const char *s_last_error(void *p)
{
    slow *s = p;
    return s->err[0] ? s->err : NULL;
}

/* POST body to url/path with curl; 0 on success. */
static int post(slow *s, const char *path, const char *body)
{
    char url[600];
    snprintf(url, sizeof(url), "%s/%s", s->url, path);
    char *argv[] = {"curl", "-sS", "--fail", "-o", "/dev/null", "-X", "POST", "-d", (char *)body, url, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "curl", NULL, NULL, argv, environ) != 0)
        return -1;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int s_present(void *p, const acme_challenge *ch)
{
    slow *s = p;
    say(s, "present", acme_challenge_identifier(ch));
    char body[600];
    snprintf(body, sizeof(body), "{\"host\":\"%s.\",\"value\":\"%s\"}", acme_challenge_dns_name(ch),
             acme_challenge_dns_value(ch));
    if (post(s, "set-txt", body) != 0) {
        snprintf(s->err, sizeof(s->err), "testslow: pebble-challtestsrv at %s refused set-txt", s->url);
        return ACME_E_CALLBACK;
    }
    return ACME_OK;
}

static int s_wait(void *p, const acme_challenge *ch)
{
    slow *s = p;
    const char *ident = acme_challenge_identifier(ch);
    say(s, "wait-start", ident);
    if (s->fail && !strcmp(ident, s->fail)) {
        snprintf(s->err, sizeof(s->err),
                 "testslow: the TXT record %s never showed at the test's nameserver (this module fails %s on purpose)",
                 acme_challenge_dns_name(ch), ident);
        return ACME_E_TIMEOUT;
    }
    if (s->release) {
        char mark[600];
        snprintf(mark, sizeof(mark), "%s.waiting", s->release);
        int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
            close(fd);
        struct stat st;
        for (int i = 0; stat(s->release, &st) != 0; i++) {
            if (i >= 2400 || (s->host.size > offsetof(acme_module_host, stopping) && s->host.stopping(s->host.ud))) {
                snprintf(s->err, sizeof(s->err), "testslow: %s never appeared (or the module is stopping)",
                         s->release);
                return ACME_E_STATE;
            }
            nap_ms(50);
        }
    } else if (s->wait_ms > 0) {
        nap_ms(s->wait_ms);
    }
    say(s, "wait-done", ident);
    return ACME_OK;
}

static int s_cleanup(void *p, const acme_challenge *ch)
{
    slow *s = p;
    say(s, "cleanup", acme_challenge_identifier(ch));
    char body[600];
    snprintf(body, sizeof(body), "{\"host\":\"%s.\"}", acme_challenge_dns_name(ch));
    if (post(s, "clear-txt", body) != 0) {
        snprintf(s->err, sizeof(s->err), "testslow: pebble-challtestsrv at %s refused clear-txt", s->url);
        return ACME_E_CALLBACK;
    }
    return ACME_OK;
}

static const acme_module_ops ops = {
    .size = sizeof(acme_module_ops),
    .abi_version = ACME_MODULE_ABI_VERSION,
    .name = "testslow",
    .create = s_create,
    .destroy = s_destroy,
    .challenge_types = s_types,
    .last_error = s_last_error,
    .flags = ACME_MODULE_PUBLISHES,
    .present = s_present,
    .wait = s_wait,
    .cleanup = s_cleanup,
};

EXPORT const acme_module_ops *acme_module_entry(unsigned host_abi_version)
{
    return host_abi_version == ACME_MODULE_ABI_VERSION ? &ops : NULL;
}
